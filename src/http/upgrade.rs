//! The HTTP/1 upgrade path. actix-http hands every `Upgrade: websocket`
//! request, with its connection, to the service built by [`factory`]
//! instead of answering it from its own dispatcher. The request goes
//! through the App like any other, so routing, middleware and every check
//! of `GET /ws` apply. A 101 answer carrying a [`TakeOver`] is written and
//! the socket (with any bytes read past the request) is handed to it;
//! anything else is written back and the connection closed. Nothing of
//! actix-http (its dispatcher, its buffers) stays with an upgraded socket.

use std::rc::Rc;

use actix_codec::Framed;
use actix_http::body::{self, BodySize, MessageBody};
use actix_http::h1::{self, Message};
use actix_http::{ConnectionType, Request, Response, StatusCode};
use actix_service::{fn_factory, fn_service, Service, ServiceFactory};
use actix_web::dev::ServiceResponse;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use futures_util::SinkExt;
use tokio::net::TcpStream;

use crate::error::ApiError;

/// Marks a request that came through the upgrade path: only those can be
/// answered with a take-over (a plain GET /ws is answered 400).
#[derive(Debug, Clone, Copy)]
struct UpgradePath;

/// Starts whatever serves an upgraded connection, given the socket and the
/// bytes that arrived behind the request.
type Serve = Box<dyn FnOnce(TcpStream, &[u8])>;

/// A 101 answer's instruction to take the socket over (a response extension).
struct TakeOver(Serve);

/// Answers a WebSocket handshake with 101, `serve` to take the socket once
/// the answer is written; 400 when the request is not a handshake.
pub fn accept(req: &HttpRequest, serve: impl FnOnce(TcpStream, &[u8]) + 'static) -> Result<HttpResponse, ApiError> {
    let not_a_handshake = |why: String| ApiError::bad_request(format!("not a WebSocket handshake: {why}"));
    if req.extensions().get::<UpgradePath>().is_none() {
        return Err(not_a_handshake("no Upgrade: websocket".into()));
    }
    actix_http::ws::verify_handshake(req.head()).map_err(|e| not_a_handshake(e.to_string()))?;
    let accept = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|key| actix_http::ws::hash_key(key.as_bytes()))
        .and_then(|hash| HeaderValue::from_bytes(&hash).ok())
        .ok_or_else(|| not_a_handshake("no Sec-WebSocket-Key".into()))?;
    let mut response = HttpResponse::SwitchingProtocols()
        .upgrade("websocket")
        .insert_header((header::SEC_WEBSOCKET_ACCEPT, accept))
        .finish();
    response.extensions_mut().insert(TakeOver(Box::new(serve)));
    Ok(response)
}

/// The upgrade service for one worker: `app` is the same application the
/// worker serves ordinary requests with.
pub fn factory<SF, B>(
    app: SF,
) -> impl ServiceFactory<
    (Request, Framed<TcpStream, h1::Codec>),
    Config = (),
    Response = (),
    Error = actix_web::Error,
    InitError = (),
>
where
    SF: ServiceFactory<Request, Config = (), Response = ServiceResponse<B>, InitError = ()> + 'static,
    SF::Error: Into<Response<body::BoxBody>>,
    B: MessageBody + 'static,
{
    fn_factory(move || {
        let app = app.new_service(());
        async move {
            let app = Rc::new(app.await?);
            Ok(fn_service(move |(req, framed)| serve(app.clone(), req, framed)))
        }
    })
}

async fn serve<S, B>(app: Rc<S>, req: Request, mut framed: Framed<TcpStream, h1::Codec>) -> Result<(), actix_web::Error>
where
    S: Service<Request, Response = ServiceResponse<B>>,
    S::Error: Into<Response<body::BoxBody>>,
    B: MessageBody + 'static,
{
    req.extensions_mut().insert(UpgradePath);
    let response: Response<body::BoxBody> = match app.call(req).await {
        Ok(response) => Response::from(response).map_into_boxed_body(),
        Err(error) => error.into(),
    };
    let (mut head, body) = response.into_parts();
    let take_over = head.extensions_mut().remove::<TakeOver>();
    if let (StatusCode::SWITCHING_PROTOCOLS, Some(TakeOver(serve))) = (head.status(), take_over) {
        framed.send(Message::Item((head, BodySize::None))).await?;
        let parts = framed.into_parts();
        serve(parts.io, &parts.read_buf);
        return Ok(());
    }
    head.head_mut().set_connection_type(ConnectionType::Close);
    let body = body::to_bytes(body).await.unwrap_or_default();
    framed
        .send(Message::Item((head, BodySize::Sized(body.len() as u64))))
        .await?;
    if !body.is_empty() {
        framed.send(Message::Chunk(Some(body))).await?;
    }
    framed.close().await?;
    Ok(())
}
