//! What each fuzz target does with its input. The targets in
//! `fuzz_targets/` call these, and `tests/fuzz_corpus.rs` replays the
//! committed corpus through the same functions on stable Rust, so a fixed
//! crash stays fixed even where cargo-fuzz is not installed.
//!
//! Each function feeds arbitrary bytes to one way input enters the server
//! and checks what must hold whatever the bytes: no panic, and the few
//! invariants written out below.

use std::cell::RefCell;
use std::path::Path;

use actix_multipart::Multipart;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::web::{Bytes, Query};
use futures_util::stream;
use serde::de::DeserializeOwned;
use switchboard::config::{Config, Settings};
use switchboard::error::ApiError;
use switchboard::http::{account, admin, auth, files, me, rooms, totp};
use switchboard::realtime::frame::{self, FrameError, OpCode, MAX_PAYLOAD};
use switchboard::realtime::protocol::ClientMsg;

/// Bytes from a client's socket: frame after frame as the reader takes
/// them, each text frame decoded as a [`ClientMsg`]; the server's own
/// framing of the same bytes measures back to its length.
pub fn ws_frames(data: &[u8]) {
    let mut buf = data.to_vec();
    let mut at = 0;
    while at < buf.len() {
        let have = &mut buf[at..];
        let available = have.len();
        match frame::parse(have) {
            Ok(None) => break,
            Err(error) => {
                if error == FrameError::TooBig {
                    // The reader skips the rest of a refused frame by its declared length.
                    let declared = frame::declared_frame_len(have);
                    assert!(declared.is_some_and(|len| len > MAX_PAYLOAD as u64));
                }
                break;
            }
            Ok(Some((header, _))) => {
                let len = header.frame_len();
                assert!(len <= available && header.payload_len <= MAX_PAYLOAD);
                let payload = &mut have[header.header_len..len];
                frame::unmask(payload, header.mask);
                decode_payload(header.opcode, payload);
                at += len;
            }
        }
    }
    let mut out = Vec::new();
    frame::put_frame(&mut out, OpCode::Text, data);
    assert_eq!(frame::server_frame_len(&out), Some(out.len()));
}

fn decode_payload(opcode: OpCode, payload: &[u8]) {
    match opcode {
        OpCode::Text => {
            if let Ok(text) = std::str::from_utf8(payload) {
                let _ = ClientMsg::parse(text);
            }
        }
        OpCode::Close => {
            if let Ok(Some(code)) = frame::close_status(payload) {
                assert!(code >= 1000, "reserved close codes are refused");
            }
        }
        _ => {}
    }
}

/// A TOML configuration file, then the typed [`Config`] built from it.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut settings = Settings::default();
    if settings.merge_toml_text(text, Path::new("fuzz.toml")).is_ok() {
        let _ = Config::from_settings(&settings);
    }
}

/// A JSON body (or query string) for one of the types the HTTP handlers
/// accept: the first byte picks the type, the rest is the body, decoded
/// as actix-web's `Json` and `Query` extractors decode it.
pub fn json_bodies(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    DECODERS[usize::from(pick) % DECODERS.len()](body);
}

/// Every body and query type, in a fixed order (the corpus's first bytes
/// refer to it: append, never reorder).
const DECODERS: &[fn(&[u8])] = &[
    json::<auth::RegisterRequest>,
    json::<auth::LoginRequest>,
    json::<auth::GuestRequest>,
    json::<me::UsernameRequest>,
    json::<me::PasswordRequest>,
    json::<totp::CodeRequest>,
    json::<rooms::CreateRequest>,
    json::<admin::users::UpdateRequest>,
    json::<admin::live::KickRequest>,
    json::<admin::live::MoveRequest>,
    json::<admin::live::BanRequest>,
    json::<admin::roles::NameRequest>,
    json::<admin::roles::GrantRequest>,
    query::<admin::users::ListQuery>,
    query::<admin::logs::FilterQuery>,
    query::<rooms::PageQuery>,
    query::<auth::CallbackQuery>,
    json::<totp::ConfirmRequest>,
    json::<account::TokenRequest>,
    json::<account::ResetRequest>,
    json::<account::ConfirmRequest>,
    json::<account::EmailChangeRequest>,
    json::<me::ProfileUpdate>,
    json::<admin::users::CreateRequest>,
    json::<admin::users::DisableTotpRequest>,
    json::<admin::invites::CreateRequest>,
    query::<auth::OidcLoginQuery>,
    json::<admin::voice::MuteRequest>,
    json::<admin::voice::DeafenRequest>,
];

fn json<T: DeserializeOwned>(body: &[u8]) {
    let _ = serde_json::from_slice::<T>(body);
}

fn query<T: DeserializeOwned>(body: &[u8]) {
    if let Ok(text) = std::str::from_utf8(body) {
        let _ = Query::<T>::from_query(text);
    }
}

/// Uploads are far smaller than MAX_UPLOAD_MB here; a small cap lets the
/// fuzzer reach the refusal.
const FUZZ_MAX_UPLOAD: u64 = 4096;

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// An upload request: the first line is the `Content-Type` header, the
/// rest the body, arriving in chunks whose size the body's first byte
/// picks, read by the upload handler's own form reader.
pub fn multipart(data: &[u8]) {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (&b"multipart/form-data; boundary=X"[..], data),
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    let chunk_len = body.first().map_or(1, |&b| usize::from(b % 64) + 1);
    let chunks: Vec<_> = body
        .chunks(chunk_len)
        .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
        .collect();
    let received = block_on(async move {
        let mut form = Multipart::new(&headers, stream::iter(chunks));
        let too_large = || ApiError::TooLarge("over the fuzz limit".into());
        files::receive_file(&mut form, &mut tokio::io::sink(), FUZZ_MAX_UPLOAD, too_large).await
    });
    if let Ok(file) = received {
        assert!(file.size > 0 && file.size <= FUZZ_MAX_UPLOAD);
        assert!(!file.name.is_empty() && file.name.chars().count() <= 200);
        assert!(!file.name.contains('/') && !file.name.chars().any(char::is_control));
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    RUNTIME.with(|cell| {
        let mut runtime = cell.borrow_mut();
        let runtime = runtime.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap_or_else(|e| panic!("cannot start a runtime: {e}"))
        });
        runtime.block_on(future)
    })
}
