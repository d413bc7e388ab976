//! Files in rooms. `POST /api/rooms/{code}/files` stores one and posts it
//! to the room as a message. The uploader needs `files.upload` and a live
//! socket in that room, at most UPLOAD_RATE_PER_MIN uploads a minute, and
//! room for the file: under MAX_UPLOAD_MB, within their quota and the
//! server's (UPLOAD_QUOTA_MB, UPLOAD_TOTAL_MB), and within the disk's free
//! space above UPLOAD_DISK_RESERVE_MB. The type is recognised by content, not
//! name, and an upload that fails leaves no bytes behind.
//!
//! `GET /files/{code}/{token}` serves a file to those who may read its room:
//! a request must name the room's code (the code is what lets anyone join
//! and read the room) and the file's random token; holders of
//! `admin.messages` may read any file.

use std::path::{Path, PathBuf};

use actix_files::NamedFile;
use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType, HeaderValue};
use actix_web::{mime, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::client_ip::ClientIp;
use crate::auth::perm;
use crate::auth::session::Auth;
use crate::auth::tokens::random_token;
use crate::config::Config;
use crate::db::rooms::Room;
use crate::db::{self, audit::Event, messages::NewMessage, rooms, uploads};
use crate::error::ApiError;
use crate::ids::UserId;
use crate::metrics::Metrics;
use crate::realtime::protocol::RoomInfo;
use crate::realtime::registry::{InRoom, Post};
use crate::state::AppState;

/// Enough of a file's start to recognise its type.
const SNIFF_BYTES: usize = 8192;
const NAME_MAX_CHARS: usize = 200;
const UPLOADS_DIR: &str = "uploads";
/// Multipart framing around the file (boundaries, part headers).
const FORM_OVERHEAD_BYTES: u64 = 16 * 1024;
/// 16 bytes: 128 random bits name a file in its URL.
const TOKEN_BYTES: usize = 16;
const MB: u64 = 1024 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/rooms/{code}/files", web::post().to(upload))
        .route("/files/{code}/{token}", web::get().to(download));
}

async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    code: web::Path<String>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    auth.require(perm::FILES_UPLOAD)?;
    let code = code.into_inner();
    let room = db::run(&state.pool, move |conn| rooms::get(conn, &code)).await?;
    require_presence(&state, auth.user.id, &room).await?;
    count_upload(&state, auth.user.id)?;

    let dir = state.config.data_dir.join(UPLOADS_DIR);
    tokio::fs::create_dir_all(&dir).await.map_err(ApiError::internal)?;
    let allowance = allowance_now(&state, auth.user.id, &dir).await?;
    if declared_length(&req).is_some_and(|length| length > allowance.bytes.saturating_add(FORM_OVERHEAD_BYTES)) {
        return Err(allowance.refusal());
    }
    let stored_as = random_token(18);
    let mut bytes = Uncommitted::new(dir.join(format!("{stored_as}.part")));
    let mut file = tokio::fs::File::create(bytes.path())
        .await
        .map_err(ApiError::internal)?;
    let ReceivedFile {
        name,
        size,
        content_type,
    } = receive_file(&mut form, &mut file, allowance.bytes, || allowance.refusal()).await?;
    drop(file);
    let final_path = dir.join(&stored_as);
    tokio::fs::rename(bytes.path(), &final_path)
        .await
        .map_err(ApiError::internal)?;
    bytes.moved_to(final_path);
    // Kicked or banned while the bytes came in: the room is closed to them now.
    require_presence(&state, auth.user.id, &room).await?;

    let new = uploads::NewUpload {
        room_id: room.id,
        room: room.code.clone(),
        user_id: auth.user.id,
        name,
        size: size as i64,
        content_type,
        stored_as,
        token: random_token(TOKEN_BYTES),
    };
    let event = Event::new("upload")
        .by(auth.user.id, &auth.user.username)
        .ip(&ip.to_string())
        .room(room.code.as_str())
        .details(json!({"name": new.name, "size": new.size, "content_type": new.content_type}));
    let config = state.config.clone();
    let upload = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        db::immediate(conn, |tx| {
            // Uploads running side by side each passed the first look.
            let (by_user, total) = uploads::bytes_used(tx, new.user_id)?;
            let quotas = Allowance::tightest(&config, by_user, total, None);
            if size > quotas.bytes {
                return Err(quotas.refusal());
            }
            let upload = uploads::insert(tx, &new)?;
            event.record(tx)?;
            Ok(upload)
        })
    })
    .await?;
    bytes.keep();
    state.registry.do_send(Post {
        room: RoomInfo {
            code: room.code.clone(),
            name: room.name.clone(),
        },
        room_id: room.id,
        message: NewMessage {
            room_id: room.id,
            room: room.code,
            user_id: auth.user.id,
            username: auth.user.username.clone(),
            display_name: auth.user.display_name.clone(),
            text: upload.name.clone(),
            ip: ip.to_string(),
            nonce: None,
            attachment: Some(json!(upload)),
        },
    });
    Metrics::inc(&state.metrics.uploads);
    Metrics::add(&state.metrics.upload_bytes, size);
    Ok(HttpResponse::Created().json(upload))
}

/// Counts an upload (a file or a picture) against UPLOAD_RATE_PER_MIN for
/// `user`: `RateLimited` past it.
pub(super) fn count_upload(state: &AppState, user: UserId) -> Result<(), ApiError> {
    state
        .uploads
        .hit(&format!("user:{user}"))
        .map_err(|refused| ApiError::RateLimited {
            retry_after_secs: refused.retry_after_secs,
        })
}

/// Deletes the partial files of uploads that a crash or a stop cut off: at
/// startup no upload is under way, so every `.part` file is such a
/// leftover. Answers how many there were.
pub fn remove_partial_uploads(data_dir: &Path) -> std::io::Result<usize> {
    let entries = match std::fs::read_dir(data_dir.join(UPLOADS_DIR)) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(error),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "part") {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Only someone in the room now posts to it: a live socket of theirs joined
/// to it (a kicked or banned user has none).
async fn require_presence(state: &AppState, user: UserId, room: &Room) -> Result<(), ApiError> {
    let present = state
        .registry
        .send(InRoom {
            user,
            code: room.code.clone(),
        })
        .await
        .map_err(ApiError::internal)?;
    if present {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// What stops an upload first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    FileSize,
    UserQuota,
    TotalQuota,
    Disk,
}

/// How many bytes an upload may have, and which limit it would meet: the
/// tightest of MAX_UPLOAD_MB, the uploader's quota, the server's, and (when
/// known) the disk's free space above the reserve.
#[derive(Debug, Clone, Copy)]
struct Allowance {
    bytes: u64,
    limit: Limit,
    max_upload: u64,
    user_quota: u64,
    total_quota: u64,
}

impl Allowance {
    /// `used_by_user` and `used_in_all` are bytes stored now; `free` is the
    /// disk's available space. A quota of 0 is no quota.
    fn tightest(config: &Config, used_by_user: u64, used_in_all: u64, free: Option<u64>) -> Self {
        let mut limits = vec![(config.max_upload_bytes, Limit::FileSize)];
        if config.upload_quota_bytes > 0 {
            limits.push((config.upload_quota_bytes.saturating_sub(used_by_user), Limit::UserQuota));
        }
        if config.upload_total_bytes > 0 {
            limits.push((config.upload_total_bytes.saturating_sub(used_in_all), Limit::TotalQuota));
        }
        if let Some(free) = free {
            limits.push((free.saturating_sub(config.upload_disk_reserve_bytes), Limit::Disk));
        }
        let (bytes, limit) = limits
            .into_iter()
            .min_by_key(|(bytes, _)| *bytes)
            .unwrap_or((config.max_upload_bytes, Limit::FileSize));
        Self {
            bytes,
            limit,
            max_upload: config.max_upload_bytes,
            user_quota: config.upload_quota_bytes,
            total_quota: config.upload_total_bytes,
        }
    }

    fn refusal(&self) -> ApiError {
        match self.limit {
            Limit::FileSize => too_large(self.max_upload),
            Limit::UserQuota => ApiError::QuotaExceeded(format!(
                "your files may take at most {} MB, and this one does not fit",
                self.user_quota / MB
            )),
            Limit::TotalQuota => ApiError::QuotaExceeded(format!(
                "this server keeps at most {} MB of files, and this one does not fit",
                self.total_quota / MB
            )),
            Limit::Disk => ApiError::InsufficientStorage,
        }
    }
}

/// The allowance of `user` now, from the database and the uploads' disk.
async fn allowance_now(state: &AppState, user: UserId, dir: &Path) -> Result<Allowance, ApiError> {
    let (by_user, total) = db::run(&state.pool, move |conn| uploads::bytes_used(conn, user)).await?;
    let dir = dir.to_owned();
    let free = web::block(move || rustix::fs::statvfs(&dir))
        .await?
        .map_err(ApiError::internal)?;
    let available = free.f_bavail.saturating_mul(free.f_frsize);
    Ok(Allowance::tightest(&state.config, by_user, total, Some(available)))
}

/// The bytes of an upload until they are committed: deleted when this is
/// dropped, which covers every failure, and a client gone mid-upload too
/// (its handler future is dropped), unless [`Uncommitted::keep`] came first.
struct Uncommitted {
    path: Option<PathBuf>,
}

impl Uncommitted {
    fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    fn moved_to(&mut self, path: PathBuf) {
        self.path = Some(path);
    }

    fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for Uncommitted {
    fn drop(&mut self) {
        let Some(path) = self.path.take() else {
            return;
        };
        let remove = move || {
            if let Err(error) = std::fs::remove_file(&path) {
                if error.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(%error, path = %path.display(), "cannot remove a failed upload");
                }
            }
        };
        // Off the worker thread: the server always runs inside a runtime.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

pub(super) fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn too_large(max: u64) -> ApiError {
    ApiError::TooLarge(format!("a file is at most {} MB", max / MB))
}

/// The form's `file` part; any other part is refused.
pub(super) async fn file_field(form: &mut Multipart) -> Result<Field, ApiError> {
    match form.next().await {
        Some(Ok(field)) if field.name() == Some("file") => Ok(field),
        Some(Ok(field)) => Err(ApiError::bad_request(format!(
            "unexpected form field {:?}: send one field named \"file\"",
            field.name().unwrap_or("")
        ))),
        Some(Err(error)) => Err(multipart_error(error)),
        None => Err(ApiError::bad_request("the form has no field named \"file\"")),
    }
}

pub(super) fn multipart_error(error: MultipartError) -> ApiError {
    match error {
        MultipartError::ContentTypeMissing | MultipartError::ContentTypeIncompatible => {
            ApiError::UnsupportedType("send the file as multipart/form-data".into())
        }
        other => ApiError::bad_request(format!("the upload could not be read: {other}")),
    }
}

/// A file taken from an upload form.
#[derive(Debug)]
pub struct ReceivedFile {
    /// The name to show, cleaned of paths and control characters.
    pub name: String,
    pub size: u64,
    /// The type to store and serve, recognised from the content.
    pub content_type: String,
}

/// Copies the form's one `file` part into `out`: refused when the form is
/// malformed, the file is empty or its content not a type we accept, and
/// with `over_limit`'s error past `limit` bytes.
pub async fn receive_file(
    form: &mut Multipart,
    out: &mut (impl AsyncWrite + Unpin),
    limit: u64,
    over_limit: impl Fn() -> ApiError,
) -> Result<ReceivedFile, ApiError> {
    let mut field = file_field(form).await?;
    let name = clean_name(
        field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .unwrap_or(""),
    );
    let declared_type = field.content_type().map(|m| m.essence_str().to_owned());
    let (size, head) = copy_field(&mut field, out, limit, over_limit).await?;
    let content_type = recognise(&head, declared_type.as_deref()).ok_or_else(|| {
        ApiError::UnsupportedType("accepted: PNG, JPEG, GIF, WebP, WebM, Ogg, MP3, WAV, M4A, PDF and plain text".into())
    })?;
    Ok(ReceivedFile {
        name,
        size,
        content_type,
    })
}

/// Writes the field to `out`, refusing it past `limit` bytes: its size and
/// its first bytes.
async fn copy_field(
    field: &mut Field,
    out: &mut (impl AsyncWrite + Unpin),
    limit: u64,
    over_limit: impl Fn() -> ApiError,
) -> Result<(u64, Vec<u8>), ApiError> {
    let mut size = 0u64;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(multipart_error)?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(over_limit());
        }
        if head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        out.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    out.flush().await.map_err(ApiError::internal)?;
    if size == 0 {
        return Err(ApiError::bad_request("the file is empty"));
    }
    Ok((size, head))
}

/// The type to store and serve, from the file's first bytes. The declared
/// type only tells a WebM voice note (audio) from a WebM video.
pub(super) fn recognise(head: &[u8], declared: Option<&str>) -> Option<String> {
    let served = match infer::get(head).map(|kind| kind.mime_type()) {
        Some(known @ ("image/png" | "image/jpeg" | "image/gif" | "image/webp" | "audio/ogg" | "audio/mpeg")) => known,
        Some("audio/opus") => "audio/ogg",
        Some("audio/x-wav") => "audio/wav",
        Some("audio/m4a") => "audio/mp4",
        Some("application/pdf") => "application/pdf",
        Some("video/webm") if declared.is_some_and(|d| d.starts_with("audio/")) => "audio/webm",
        Some("video/webm") => "video/webm",
        Some(_) => return None,
        None if is_plain_text(head) => "text/plain; charset=utf-8",
        None => return None,
    };
    Some(served.to_owned())
}

/// UTF-8 without NUL or other binary control bytes (a cut at the end of the
/// sniffed bytes may split one character).
fn is_plain_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or(""),
        Err(_) => return false,
    };
    !valid.is_empty()
        && !valid
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

/// The name to show: its last path component, without control characters,
/// at most 200 characters.
fn clean_name(raw: &str) -> String {
    let last = Path::new(raw.trim())
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .rsplit('\\')
        .next()
        .unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).take(NAME_MAX_CHARS).collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        "file".to_owned()
    } else {
        cleaned.to_owned()
    }
}

/// Serves a file to whoever names its room and token (or holds
/// `admin.messages`): images, audio and video inline with their own type,
/// everything else as a download; sandboxed either way. Any other request,
/// a wrong room included, is 404, so nothing tells a guess that it was close.
async fn download(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Auth,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (code, token) = path.into_inner();
    let upload = db::run(&state.pool, move |conn| uploads::by_token(conn, &token)).await?;
    if upload.room.as_str() != code && !auth.user.can(perm::ADMIN_MESSAGES) {
        return Err(ApiError::NotFound);
    }
    let path = state.config.data_dir.join(UPLOADS_DIR).join(&upload.stored_as);
    let file = web::block(move || NamedFile::open(path))
        .await?
        .map_err(|_| ApiError::NotFound)?;
    let content_type: mime::Mime = upload.content_type.parse().unwrap_or(mime::APPLICATION_OCTET_STREAM);
    let inline = matches!(content_type.type_(), mime::IMAGE | mime::AUDIO | mime::VIDEO);
    let disposition = ContentDisposition {
        disposition: if inline {
            DispositionType::Inline
        } else {
            DispositionType::Attachment
        },
        parameters: vec![DispositionParam::Filename(upload.name)],
    };
    let mut response = file
        .set_content_type(content_type)
        .set_content_disposition(disposition)
        .into_response(&req);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let mut settings = Settings::default();
        for (key, value) in pairs {
            settings.set(key, *value).unwrap();
        }
        Config::from_settings(&settings).unwrap()
    }

    #[test]
    fn the_tightest_limit_decides() {
        let c = config(&[
            ("MAX_UPLOAD_MB", "50"),
            ("UPLOAD_QUOTA_MB", "100"),
            ("UPLOAD_TOTAL_MB", "1000"),
        ]);
        let fresh = Allowance::tightest(&c, 0, 0, Some(u64::MAX));
        assert_eq!((fresh.bytes, fresh.limit), (50 * MB, Limit::FileSize));
        let nearly_full = Allowance::tightest(&c, 90 * MB, 90 * MB, Some(u64::MAX));
        assert_eq!((nearly_full.bytes, nearly_full.limit), (10 * MB, Limit::UserQuota));
        let server_full = Allowance::tightest(&c, 0, 1000 * MB, Some(u64::MAX));
        assert_eq!((server_full.bytes, server_full.limit), (0, Limit::TotalQuota));
        let disk = Allowance::tightest(&c, 0, 0, Some(101 * MB));
        assert_eq!((disk.bytes, disk.limit), (MB, Limit::Disk), "100 MB stay in reserve");
        assert!(matches!(disk.refusal(), ApiError::InsufficientStorage));
        assert!(matches!(nearly_full.refusal(), ApiError::QuotaExceeded(_)));
        assert!(matches!(fresh.refusal(), ApiError::TooLarge(_)));
    }

    #[test]
    fn a_quota_of_zero_is_no_quota() {
        let c = config(&[
            ("UPLOAD_QUOTA_MB", "0"),
            ("UPLOAD_TOTAL_MB", "0"),
            ("UPLOAD_DISK_RESERVE_MB", "0"),
        ]);
        let allowance = Allowance::tightest(&c, u64::MAX / 2, u64::MAX / 2, None);
        assert_eq!(allowance.limit, Limit::FileSize);
    }

    #[test]
    fn leftover_partial_uploads_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(remove_partial_uploads(dir.path()).unwrap(), 0, "no uploads folder yet");
        let uploads = dir.path().join(UPLOADS_DIR);
        std::fs::create_dir(&uploads).unwrap();
        std::fs::write(uploads.join("cut-off.part"), b"x").unwrap();
        std::fs::write(uploads.join("complete"), b"x").unwrap();
        assert_eq!(remove_partial_uploads(dir.path()).unwrap(), 1);
        assert!(uploads.join("complete").exists());
    }

    #[test]
    fn uncommitted_bytes_are_removed_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (dropped, kept) = (dir.path().join("a.part"), dir.path().join("b"));
        std::fs::write(&dropped, b"x").unwrap();
        std::fs::write(&kept, b"x").unwrap();
        drop(Uncommitted::new(dropped.clone()));
        Uncommitted::new(kept.clone()).keep();
        assert!(!dropped.exists());
        assert!(kept.exists());
    }

    #[test]
    fn names_lose_their_paths_and_control_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\ann\\photo.png"), "photo.png");
        assert_eq!(clean_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(clean_name(""), "file");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(&"x".repeat(300)).chars().count(), 200);
    }

    #[test]
    fn types_come_from_content() {
        let png = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d];
        assert_eq!(recognise(&png, Some("text/plain")).as_deref(), Some("image/png"));
        assert_eq!(recognise(b"%PDF-1.7\n", None).as_deref(), Some("application/pdf"));
        assert_eq!(
            recognise("héllo\nwörld".as_bytes(), None).as_deref(),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(
            recognise(b"\x7fELF\x02\x01\x01\0\0\0", None),
            None,
            "executables are refused"
        );
        assert_eq!(recognise(b"MZ\x90\0\x03\0\0\0", None), None);
        assert_eq!(
            recognise(b"<html><script>alert(1)</script>", Some("image/png")),
            None,
            "HTML is not text here"
        );
        let webm = [
            0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81, 0x01, 0x42, 0xf7, 0x81, 0x01, 0x42, 0xf2, 0x81, 0x04, 0x42,
            0xf3, 0x81, 0x08, 0x42, 0x82, 0x84, b'w', b'e', b'b', b'm',
        ];
        let mut webm = webm.to_vec();
        webm.resize(300, 0); // a real recording is longer than the 256 bytes the check reads
        assert_eq!(recognise(&webm, Some("audio/webm")).as_deref(), Some("audio/webm"));
        assert_eq!(recognise(&webm, None).as_deref(), Some("video/webm"));
    }

    #[test]
    fn text_may_end_mid_character() {
        let mut head = "é".repeat(10).into_bytes();
        head.push(0xc3);
        assert!(is_plain_text(&head));
        assert!(!is_plain_text(b"abc\0def"));
    }
}
