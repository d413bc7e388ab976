//! The web client: its pages and assets, embedded in the binary (or read
//! from WEB_DIR, for working on the client without rebuilding).

use std::borrow::Cow;
use std::path::{Component, Path};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

/// Page URL -> the HTML file that renders it.
const PAGES: &[(&str, &str)] = &[
    ("/", "index.html"),
    ("/login", "login.html"),
    ("/register", "register.html"),
    ("/choose-username", "choose-username.html"),
    ("/room/{code}", "room.html"),
    ("/profile", "profile.html"),
    ("/admin", "admin.html"),
    ("/verify-email", "verify-email.html"),
    ("/reset-password", "reset-password.html"),
];

pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, file) in PAGES {
        cfg.route(
            path,
            web::get().to(move |req: HttpRequest, state: web::Data<AppState>| serve(req, state, file)),
        );
    }
    cfg.route(
        "/{asset:(js|css|img)/.+|favicon\\.svg}",
        web::get().to(
            |req: HttpRequest, state: web::Data<AppState>, path: web::Path<String>| async move {
                serve(req, state, &path.into_inner()).await
            },
        ),
    );
}

async fn serve(req: HttpRequest, state: web::Data<AppState>, name: &str) -> Result<HttpResponse, ApiError> {
    let (body, etag) = match &state.config.web_dir {
        Some(dir) => (read_from_disk(dir, name).await?, None),
        None => {
            let file = Assets::get(name).ok_or(ApiError::NotFound)?;
            let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
            (file.data, Some(etag))
        }
    };
    if let Some(etag) = &etag {
        let fresh = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .is_some_and(|sent| sent.as_bytes() == etag.as_bytes());
        if fresh {
            return Ok(HttpResponse::NotModified()
                .insert_header((header::ETAG, etag.as_str()))
                .finish());
        }
    }
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let mut response = HttpResponse::Ok();
    response
        .content_type(mime.essence_str())
        // Revalidate every time: names carry no hash, and the ETag makes it cheap.
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if let Some(etag) = etag {
        response.insert_header((header::ETAG, etag));
    }
    Ok(response.body(body.into_owned()))
}

async fn read_from_disk(dir: &Path, name: &str) -> Result<Cow<'static, [u8]>, ApiError> {
    let relative = Path::new(name);
    if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(ApiError::NotFound);
    }
    let path = dir.join(relative);
    let bytes = web::block(move || std::fs::read(path))
        .await?
        .map_err(|_| ApiError::NotFound)?;
    Ok(Cow::Owned(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
