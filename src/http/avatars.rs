//! Profile pictures. `POST /api/me/avatar` takes one (PNG, JPEG, GIF or
//! WebP, recognised by content, at most 1 MB and 2048 pixels a side, read
//! from the image's own header), `DELETE /api/me/avatar` removes it, and
//! `GET /avatars/{token}` serves it to anyone signed in. The bytes are not
//! re-encoded: they are served as what they were recognised to be, with
//! `nosniff` and a sandbox CSP, so a crafted file cannot become a page.

use actix_multipart::Multipart;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;

use super::client_ip::ClientIp;
use super::files::{count_upload, declared_length, file_field, multipart_error, recognise};
use super::me::{identity_changed, self_update};
use crate::auth::session::Auth;
use crate::auth::tokens::random_token;
use crate::db::avatars::Avatar;
use crate::db::{self, avatars, users};
use crate::error::ApiError;
use crate::state::AppState;

/// The largest picture taken, in bytes.
pub const MAX_BYTES: usize = 1024 * 1024;
/// The most pixels a picture may have on either side: browsers decode every
/// pixel, so a small file must not unfold into a huge bitmap.
pub const MAX_SIDE: usize = 2048;
/// Multipart framing around the file (boundaries, part headers).
const FORM_OVERHEAD_BYTES: u64 = 16 * 1024;
/// 16 bytes: 128 random bits name a picture in its URL.
const TOKEN_BYTES: usize = 16;
const IMAGE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/me/avatar", web::post().to(upload))
        .route("/api/me/avatar", web::delete().to(remove))
        .route("/avatars/{token}", web::get().to(serve));
}

/// Sets the user's picture. Guests have none; uploads count against
/// UPLOAD_RATE_PER_MIN like files.
async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    auth: Auth,
    ip: ClientIp,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    if auth.user.guest {
        return Err(ApiError::Forbidden);
    }
    count_upload(&state, auth.user.id)?;
    if declared_length(&req).is_some_and(|length| length > MAX_BYTES as u64 + FORM_OVERHEAD_BYTES) {
        return Err(too_large());
    }
    let bytes = receive(&mut form).await?;
    let (avatar, width, height) = checked(bytes)?;
    let token = random_token(TOKEN_BYTES);
    let details = json!({
        "avatar": "changed",
        "content_type": avatar.content_type,
        "size": avatar.bytes.len(),
        "width": width,
        "height": height,
    });
    let event = self_update(&auth, &ip.to_string(), details);
    let id = auth.user.id;
    let user = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        db::immediate(conn, |tx| -> Result<_, ApiError> {
            avatars::set(tx, id, &token, &avatar)?;
            event.record(tx)?;
            Ok(users::get(tx, id)?)
        })
    })
    .await?;
    identity_changed(&state, &user).await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

/// Removes the user's picture; answers the user either way.
async fn remove(state: web::Data<AppState>, auth: Auth, ip: ClientIp) -> Result<HttpResponse, ApiError> {
    let id = auth.user.id;
    let event = self_update(&auth, &ip.to_string(), json!({"avatar": "removed"}));
    let user = db::run(&state.pool, move |conn| -> Result<_, ApiError> {
        db::immediate(conn, |tx| -> Result<_, ApiError> {
            if avatars::remove(tx, id)? {
                event.record(tx)?;
            }
            Ok(users::get(tx, id)?)
        })
    })
    .await?;
    identity_changed(&state, &user).await?;
    Ok(HttpResponse::Ok().json(json!({"user": user})))
}

/// Serves a picture. Its URL changes with the picture, so it may be kept
/// for a year; private, because only signed-in people see pictures.
async fn serve(state: web::Data<AppState>, _auth: Auth, token: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let token = token.into_inner();
    let avatar = db::run(&state.pool, move |conn| avatars::by_token(conn, &token)).await?;
    Ok(HttpResponse::Ok()
        .content_type(avatar.content_type)
        .insert_header((header::CACHE_CONTROL, "private, max-age=31536000, immutable"))
        .insert_header((header::CONTENT_DISPOSITION, "inline"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox; default-src 'none'"),
        ))
        .body(avatar.bytes))
}

fn too_large() -> ApiError {
    ApiError::TooLarge(format!("a picture is at most {} MB", MAX_BYTES / (1024 * 1024)))
}

/// The form's `file`, in memory, refused past [`MAX_BYTES`].
async fn receive(form: &mut Multipart) -> Result<Vec<u8>, ApiError> {
    let mut field = file_field(form).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(multipart_error)?;
        if bytes.len() + chunk.len() > MAX_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the file is empty"));
    }
    Ok(bytes)
}

/// `bytes` as a picture to keep, with its width and height: an image type
/// recognised by its content, whose header gives a size within bounds.
fn checked(bytes: Vec<u8>) -> Result<(Avatar, usize, usize), ApiError> {
    let content_type = recognise(&bytes, None)
        .filter(|t| IMAGE_TYPES.contains(&t.as_str()))
        .ok_or_else(|| ApiError::UnsupportedType("a picture is a PNG, JPEG, GIF or WebP image".into()))?;
    let size = imagesize::blob_size(&bytes).map_err(|_| ApiError::bad_request("the picture could not be read"))?;
    if size.width == 0 || size.height == 0 || size.width > MAX_SIDE || size.height > MAX_SIDE {
        return Err(ApiError::bad_request(format!(
            "a picture has at most {MAX_SIDE} pixels a side; this one is {}x{}",
            size.width, size.height
        )));
    }
    Ok((Avatar { content_type, bytes }, size.width, size.height))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG header (signature and IHDR) claiming `width` x `height`.
    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
        bytes.extend_from_slice(b"IHDR");
        bytes.extend_from_slice(&width.to_be_bytes());
        bytes.extend_from_slice(&height.to_be_bytes());
        bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
        bytes
    }

    #[test]
    fn pictures_are_known_images_of_bounded_size() {
        let (avatar, width, height) = checked(png(64, 48)).unwrap();
        assert_eq!((avatar.content_type.as_str(), width, height), ("image/png", 64, 48));
        assert!(
            matches!(checked(png(4096, 16)), Err(ApiError::BadRequest(_))),
            "a pixel bomb"
        );
        assert!(matches!(checked(png(0, 16)), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            checked(b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec()),
            Err(ApiError::UnsupportedType(_))
        ));
        assert!(matches!(
            checked(b"%PDF-1.7\n".to_vec()),
            Err(ApiError::UnsupportedType(_))
        ));
        assert!(matches!(checked(b"hello".to_vec()), Err(ApiError::UnsupportedType(_))));
    }
}
