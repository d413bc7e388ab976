//! Files in rooms. `POST /api/rooms/{code}/files` stores one (at most
//! MAX_UPLOAD_MB, recognised by its content, not its name) and posts it to
//! the room as a message; `GET /files/{id}` serves it to signed-in users.

use std::path::Path;

use actix_files::NamedFile;
use actix_multipart::{Field, Multipart, MultipartError};
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType, HeaderValue};
use actix_web::{mime, web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::client_ip::ClientIp;
use crate::auth::session::Auth;
use crate::auth::tokens::random_token;
use crate::db::{self, audit::Event, messages::NewMessage, rooms, uploads};
use crate::error::ApiError;
use crate::realtime::protocol::RoomInfo;
use crate::realtime::registry::Post;
use crate::state::AppState;

/// Enough of a file's start to recognise its type.
const SNIFF_BYTES: usize = 8192;
const NAME_MAX_CHARS: usize = 200;
const UPLOADS_DIR: &str = "uploads";
/// Multipart framing around the file (boundaries, part headers).
const FORM_OVERHEAD_BYTES: u64 = 16 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/rooms/{code}/files", web::post().to(upload))
        .route("/files/{id}", web::get().to(download));
}

async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    code: web::Path<String>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let max = state.config.max_upload_bytes;
    if declared_length(&req).is_some_and(|length| length > max + FORM_OVERHEAD_BYTES) {
        return Err(too_large(max));
    }
    let code = code.into_inner();
    let room = db::run(&state.pool, move |conn| rooms::get(conn, &code)).await?;
    let dir = state.config.data_dir.join(UPLOADS_DIR);
    tokio::fs::create_dir_all(&dir).await.map_err(ApiError::internal)?;
    let stored_as = random_token(18);
    let partial = dir.join(format!("{stored_as}.part"));
    let received = match tokio::fs::File::create(&partial).await {
        Ok(mut file) => receive_file(&mut form, &mut file, max).await,
        Err(error) => Err(ApiError::internal(error)),
    };
    let ReceivedFile {
        name,
        size,
        content_type,
    } = match received {
        Ok(received) => received,
        Err(refusal) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(refusal);
        }
    };
    let final_path = dir.join(&stored_as);
    tokio::fs::rename(&partial, &final_path)
        .await
        .map_err(ApiError::internal)?;

    let new = uploads::NewUpload {
        room_id: room.id,
        user_id: auth.user.id,
        name,
        size: size as i64,
        content_type,
        stored_as,
    };
    let event = Event::new("upload")
        .by(auth.user.id, &auth.user.username)
        .ip(&ip.to_string())
        .room(room.code.as_str())
        .details(json!({"name": new.name, "size": new.size, "content_type": new.content_type}));
    let saved = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        let upload = uploads::insert(conn, &new)?;
        event.record(conn)?;
        Ok(upload)
    })
    .await;
    let upload = match saved {
        Ok(upload) => upload,
        Err(error) => {
            let _ = tokio::fs::remove_file(&final_path).await;
            return Err(error);
        }
    };
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
            text: upload.name.clone(),
            ip: ip.to_string(),
            nonce: None,
            attachment: Some(json!(upload)),
        },
    });
    Ok(HttpResponse::Created().json(upload))
}

fn declared_length(req: &HttpRequest) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn too_large(max: u64) -> ApiError {
    ApiError::TooLarge(format!("a file is at most {} MB", max / (1024 * 1024)))
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
/// malformed, the file is empty or over `max` bytes, or its content is not
/// a type we accept.
pub async fn receive_file(
    form: &mut Multipart,
    out: &mut (impl AsyncWrite + Unpin),
    max: u64,
) -> Result<ReceivedFile, ApiError> {
    let mut field = file_field(form).await?;
    let name = clean_name(
        field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .unwrap_or(""),
    );
    let declared_type = field.content_type().map(|m| m.essence_str().to_owned());
    let (size, head) = copy_field(&mut field, out, max).await?;
    let content_type = recognise(&head, declared_type.as_deref()).ok_or_else(|| {
        ApiError::UnsupportedType("accepted: PNG, JPEG, GIF, WebP, WebM, Ogg, MP3, WAV, M4A, PDF and plain text".into())
    })?;
    Ok(ReceivedFile {
        name,
        size,
        content_type,
    })
}

/// The form's `file` part; any other part is refused.
async fn file_field(form: &mut Multipart) -> Result<Field, ApiError> {
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

fn multipart_error(error: MultipartError) -> ApiError {
    match error {
        MultipartError::ContentTypeMissing | MultipartError::ContentTypeIncompatible => {
            ApiError::UnsupportedType("send the file as multipart/form-data".into())
        }
        other => ApiError::bad_request(format!("the upload could not be read: {other}")),
    }
}

/// Writes the field to `out`, refusing it past `max` bytes: its size and
/// its first bytes.
async fn copy_field(
    field: &mut Field,
    out: &mut (impl AsyncWrite + Unpin),
    max: u64,
) -> Result<(u64, Vec<u8>), ApiError> {
    let mut size = 0u64;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(multipart_error)?;
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large(max));
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
fn recognise(head: &[u8], declared: Option<&str>) -> Option<String> {
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

/// Serves a file to signed-in users: images, audio and video inline with
/// their own type, everything else as a download; sandboxed either way.
async fn download(
    req: HttpRequest,
    state: web::Data<AppState>,
    _auth: Auth,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let upload = db::run(&state.pool, move |conn| uploads::get(conn, id)).await?;
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
