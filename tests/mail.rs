//! Mail against a real local SMTP server (tests/smtp/server.mjs): the
//! verification link after registration, ADMIN_EMAIL and live sockets at
//! verification, REQUIRE_VERIFIED_EMAIL, the welcome mail, resending, the
//! password reset end to end, changing the address (also by `PATCH
//! /api/me`), an SMTP server that is down at first (and a restart in
//! between: the outbox), permanent refusals, SMTP AUTH, `switchboard mail
//! test`, and everything without mail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use std::time::Duration;

use common::smtp::{free_port, link, smtp_url, token_of, MailServer, MAIL_WAIT};
use common::{assert_error, Api, Server, Ws, ADMIN_EMAIL, PASSWORD};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

const NEW_PASSWORD: &str = "a much better passphrase";

async fn server_with(mail: &MailServer, extra: &[(&str, &str)]) -> Server {
    let url = mail.url();
    let mut env = vec![("SMTP_URL", url.as_str()), ("MAIL_RATE_PER_MIN", "0")];
    env.extend_from_slice(extra);
    Server::start_with(&env).await
}

/// A client with no session and no CSRF token: a browser that opened a link.
fn stranger(server: &Server) -> Api {
    server.client()
}

async fn verify(server: &Server, token: &str) -> (StatusCode, Value) {
    stranger(server)
        .post("/api/auth/verify-email", json!({"token": token}))
        .await
}

/// Rows waiting in the server's outbox, read from its database.
fn outbox(server: &Server) -> Vec<(i64, String)> {
    let conn = rusqlite::Connection::open(server.database_path()).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mut stmt = conn
        .prepare("SELECT attempts, to_address FROM outbox ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

/// Polls `check` until it holds, at most MAIL_WAIT.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {MAIL_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn registration_mails_a_link_that_verifies_the_address_once_then_welcomes() {
    let mail = MailServer::start().await;
    let server = server_with(&mail, &[("INSTANCE_NAME", "Acme Intercom")]).await;
    let mut ann = server.user("ann").await;
    assert_eq!(ann.me().await["email_verified"], false);
    assert!(ann.me().await["avatar_url"].is_null());

    let sent = mail.mail("ann@example.org", "Confirm your email address").await;
    assert!(sent["subject"].as_str().unwrap().contains("Acme Intercom"), "{sent}");
    assert_eq!(sent["from"], "\"Acme Intercom\" <noreply@127.0.0.1>");
    assert_eq!(sent["content_type"], "multipart/alternative");
    let url = link(&sent, &server.base, "/verify-email?token=");
    let token = token_of(&url);

    // A wrong token, then the real one from a browser with no session.
    let (status, body) = verify(&server, "not-the-token").await;
    assert_error(status, &body, 400, "invalid_token");
    let (status, body) = verify(&server, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["username"], "ann");
    assert_eq!(body["user"]["email_verified"], true);
    assert_eq!(ann.me().await["email_verified"], true);

    // Used once.
    let (status, body) = verify(&server, &token).await;
    assert_error(status, &body, 400, "invalid_token");

    // The first verification is welcomed, once.
    let welcome = mail.mail("ann@example.org", "Welcome to Acme Intercom").await;
    assert!(welcome["text"].as_str().unwrap().contains(&server.base), "{welcome}");
    let mut admin = server.admin().await;
    let logs = admin.logs(&[("action", "email_verified")]).await;
    assert_eq!(logs["total"], 1, "{logs}");
    assert_eq!(
        mail.mails_to("ann@example.org").len(),
        2,
        "verification and welcome only"
    );
}

#[tokio::test]
async fn verify_email_needs_no_csrf_token_even_with_a_session_cookie() {
    let mail = MailServer::start().await;
    let server = server_with(&mail, &[]).await;
    let mut bob = server.user("bob").await;
    let url = link(
        &mail.mail("bob@example.org", "Confirm").await,
        &server.base,
        "/verify-email?token=",
    );
    // The session cookie goes along, the CSRF header does not.
    bob.csrf = None;
    let (status, body) = bob
        .post("/api/auth/verify-email", json!({"token": token_of(&url)}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A foreign Origin is still refused.
    let (status, body) = bob
        .send(
            bob.http
                .post(server.url("/api/auth/verify-email"))
                .header("Origin", "http://evil.example")
                .json(&json!({"token": "x"})),
        )
        .await;
    assert_error(status, &body, 403, "csrf");
}

#[tokio::test]
async fn admin_email_takes_effect_at_verification_and_live_sockets_learn_it() {
    let mail = MailServer::start().await;
    let server = server_with(&mail, &[]).await;
    let mut boss = server.register("boss", ADMIN_EMAIL).await;
    assert_eq!(boss.me().await["is_admin"], false, "a registration proves nothing");
    let mut ws = Ws::connect(&boss).await;
    assert_eq!(ws.hello["user"]["is_admin"], false);

    let url = link(
        &mail.mail(ADMIN_EMAIL, "Confirm").await,
        &server.base,
        "/verify-email?token=",
    );
    let (status, body) = verify(&server, &token_of(&url)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["is_admin"], true);
    let frame = ws.next_of("user").await;
    assert_eq!(frame["user"]["is_admin"], true, "{frame}");
    assert_eq!(frame["user"]["email_verified"], true);
    // And the socket acts on it at once.
    ws.send(json!({"type": "admin_watch"})).await;
    ws.next_of("sessions").await;
    assert_eq!(boss.me().await["is_admin"], true);
}

#[tokio::test]
async fn require_verified_email_keeps_unverified_accounts_out_of_rooms_until_they_verify() {
    let mail = MailServer::start().await;
    let server = server_with(&mail, &[("REQUIRE_VERIFIED_EMAIL", "true")]).await;
    let mut cleo = server.user("cleo").await;
    let mut ws = Ws::connect(&cleo).await;
    ws.send(json!({"type": "join", "room": "lobby"})).await;
    let refusal = ws.next_of("error").await;
    assert_eq!(refusal["code"], "email_unverified", "{refusal}");
    let (status, body) = cleo.get("/api/rooms/lobby/messages").await;
    assert_error(status, &body, 403, "email_unverified");
    let (status, body) = cleo.post("/api/rooms", json!({"name": "Mine"})).await;
    assert_error(status, &body, 403, "email_unverified");

    // Guests have no address to verify.
    let guest = server.guest("Visitor").await;
    Ws::connect(&guest).await.join("lobby").await;

    // Verified, the same socket joins without reconnecting.
    let url = link(
        &mail.mail("cleo@example.org", "Confirm").await,
        &server.base,
        "/verify-email?token=",
    );
    let (status, _) = verify(&server, &token_of(&url)).await;
    assert_eq!(status, StatusCode::OK);
    ws.next_of("user").await;
    let joined = ws.join("lobby").await;
    assert_eq!(joined["room"]["code"], "lobby");
    let (status, _) = cleo.get("/api/rooms/lobby/messages").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn resending_replaces_the_link_and_is_limited() {
    let mail = MailServer::start().await;
    let server = Server::start_with(&[("SMTP_URL", &mail.url()), ("MAIL_RATE_PER_MIN", "2")]).await;
    let mut dora = server.user("dora").await;
    let first = link(
        &mail.mail("dora@example.org", "Confirm").await,
        &server.base,
        "/verify-email?token=",
    );

    let (status, body) = dora.post("/api/me/email/verify", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let second = link(
        &mail.nth_mail(2, "dora@example.org", "Confirm").await,
        &server.base,
        "/verify-email?token=",
    );
    assert_ne!(first, second);
    let (status, body) = dora.post("/api/me/email/verify", json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = dora.post("/api/me/email/verify", json!({})).await;
    assert_error(status, &body, 429, "rate_limited");

    // Only the newest link works.
    let (status, body) = verify(&server, &token_of(&first)).await;
    assert_error(status, &body, 400, "invalid_token");
    let third = link(
        &mail.nth_mail(3, "dora@example.org", "Confirm").await,
        &server.base,
        "/verify-email?token=",
    );
    let (status, body) = verify(&server, &token_of(&second)).await;
    assert_error(status, &body, 400, "invalid_token");
    let (status, body) = verify(&server, &token_of(&third)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Verified: nothing to resend. A guest has no address.
    let mut eddy = server.user("eddy").await;
    let url = link(
        &mail.mail("eddy@example.org", "Confirm").await,
        &server.base,
        "/verify-email?token=",
    );
    verify(&server, &token_of(&url)).await;
    let (status, body) = eddy.post("/api/me/email/verify", json!({})).await;
    assert_error(status, &body, 409, "conflict");
    let mut guest = server.guest("Visitor").await;
    let (status, body) = guest.post("/api/me/email/verify", json!({})).await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test]
async fn a_password_reset_by_mail_ends_every_session_and_verifies_the_address() {
    let mail = MailServer::start().await;
    let server = server_with(&mail, &[]).await;
    let mut first = server.user("fay").await;
    let mut other = server.login_ok("fay", PASSWORD).await;
    let mut socket = Ws::connect(&other).await;
    socket.join("lobby").await;

    // Asked for from a browser with no session; an unknown address gets the same answer.
    let (status, body) = stranger(&server)
        .post("/api/auth/password-reset", json!({"email": "nobody@example.org"}))
        .await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, Value::Null));
    let (status, body) = stranger(&server)
        .post("/api/auth/password-reset", json!({"email": "FAY@example.org"}))
        .await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, Value::Null));

    let sent = mail.mail("fay@example.org", "Reset your password").await;
    let url = link(&sent, &server.base, "/reset-password?token=");
    let token = token_of(&url);

    // A too-short password is refused before the link is used.
    let (status, body) = stranger(&server)
        .post(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "password": "short"}),
        )
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = stranger(&server)
        .post(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Every session ended, its socket closed like a logout.
    assert_eq!(socket.closed().await, Some(4001));
    let (status, _) = first.get("/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = other.get("/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The old password is refused, the new one works, and the address is verified.
    let (_, status, body) = server.login("fay", PASSWORD).await;
    assert_error(status, &body, 401, "invalid_credentials");
    let mut fay = server.login_ok("fay", NEW_PASSWORD).await;
    assert_eq!(fay.me().await["email_verified"], true);

    // Used once.
    let (status, body) = stranger(&server)
        .post(
            "/api/auth/password-reset/confirm",
            json!({"token": token, "password": "yet another passphrase"}),
        )
        .await;
    assert_error(status, &body, 400, "invalid_token");

    let mut admin = server.admin().await;
    let logs = admin.logs(&[("action", "password_reset")]).await;
    assert_eq!(logs["total"], 1, "{logs}");
    assert_eq!(logs["entries"][0]["username"], "fay");
    // The unknown address was asked for (and audited), and got no mail.
    let asked = admin.logs(&[("action", "password_reset_requested")]).await;
    assert_eq!(asked["total"], 2, "{asked}");
    assert!(mail.mails_to("nobody@example.org").is_empty());
}

#[tokio::test]
async fn reset_requests_are_limited_per_client_and_per_address() {
    let mail = MailServer::start().await;
    let server = Server::start_with(&[
        ("SMTP_URL", &mail.url()),
        ("MAIL_RATE_PER_MIN", "1"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    let ask = |ip: &str, email: &str| {
        let mut api = server.client_from(ip);
        let email = email.to_owned();
        async move { api.post("/api/auth/password-reset", json!({"email": email})).await }
    };
    assert_eq!(ask("203.0.113.1", "gus@example.org").await.0, StatusCode::ACCEPTED);
    // The same address from elsewhere: the address's allowance is spent.
    let (status, body) = ask("203.0.113.2", "gus@example.org").await;
    assert_error(status, &body, 429, "rate_limited");
    // Another address from the first client: the client's allowance is spent.
    let (status, body) = ask("203.0.113.1", "hal@example.org").await;
    assert_error(status, &body, 429, "rate_limited");
    // A fresh client and address.
    assert_eq!(ask("203.0.113.3", "ivy@example.org").await.0, StatusCode::ACCEPTED);
    // Malformed input is a 400, not a 202.
    let (status, body) = stranger(&server)
        .post("/api/auth/password-reset", json!({"email": "not an address"}))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = stranger(&server)
        .post("/api/auth/password-reset", json!({"email": "a@b.example", "extra": 1}))
        .await;
    assert_error(status, &body, 400, "bad_request");
}

#[tokio::test]
async fn changing_the_address_verifies_the_new_one_and_tells_the_old() {
    let mail = MailServer::start().await;
    let server = server_with(&mail, &[]).await;
    let mut joan = server.user("joan").await;
    let old_link = link(
        &mail.mail("joan@example.org", "Confirm").await,
        &server.base,
        "/verify-email?token=",
    );
    server.user("kim").await;

    let (status, body) = joan.post("/api/me/email", json!({"email": "joan@new.example"})).await;
    assert_error(status, &body, 400, "bad_request"); // the password is needed
    let (status, body) = joan
        .post(
            "/api/me/email",
            json!({"email": "joan@new.example", "password": "wrong password"}),
        )
        .await;
    assert_error(status, &body, 401, "invalid_credentials");
    let (status, body) = joan
        .post(
            "/api/me/email",
            json!({"email": "kim@example.org", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 409, "conflict");

    let (status, body) = joan
        .post(
            "/api/me/email",
            json!({"email": "Joan@New.example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["email"], "joan@new.example");
    assert_eq!(body["user"]["email_verified"], false);

    // The old address is told; the link sent to it no longer verifies anything.
    let notice = mail.mail("joan@example.org", "Your email address was changed").await;
    assert!(
        notice["text"].as_str().unwrap().contains("joan@new.example"),
        "{notice}"
    );
    let (status, body) = verify(&server, &token_of(&old_link)).await;
    assert_error(status, &body, 400, "invalid_token");

    let new_link = link(
        &mail.mail("joan@new.example", "Confirm").await,
        &server.base,
        "/verify-email?token=",
    );
    let (status, body) = verify(&server, &token_of(&new_link)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(joan.me().await["email_verified"], true);
    let (_, status, _) = server.login("joan@new.example", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn patch_me_changes_the_address_with_the_name_in_one_step() {
    let mail = MailServer::start().await;
    let server = server_with(&mail, &[]).await;
    let mut lena = server.user("lena").await;
    let old_link = link(
        &mail.mail("lena@example.org", "Confirm").await,
        &server.base,
        "/verify-email?token=",
    );
    let mut ws = Ws::connect(&lena).await;

    // Every field is checked before anything changes: a refused address
    // leaves the name as it was.
    let (status, body) = lena
        .patch(
            "/api/me",
            json!({"display_name": "Lena Q", "email": "lena@new.example"}),
        )
        .await;
    assert_error(status, &body, 400, "bad_request"); // the password is needed
    let (status, body) = lena
        .patch(
            "/api/me",
            json!({"display_name": "Lena Q", "email": "lena@new.example", "password": "wrong password"}),
        )
        .await;
    assert_error(status, &body, 401, "invalid_credentials");
    let (status, body) = lena.patch("/api/me", json!({"password": PASSWORD})).await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = lena
        .patch("/api/me", json!({"email": "not an address", "password": PASSWORD}))
        .await;
    assert_error(status, &body, 400, "bad_request");
    let me = lena.me().await;
    assert_eq!(me["display_name"], "lena");
    assert_eq!(me["email"], "lena@example.org");

    let (status, body) = lena
        .patch(
            "/api/me",
            json!({"display_name": "Lena Q", "email": "Lena@New.example", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user"]["display_name"], "Lena Q");
    assert_eq!(body["user"]["email"], "lena@new.example");
    assert_eq!(body["user"]["email_verified"], false);
    let frame = ws.next_of("user").await;
    assert_eq!(frame["user"]["email"], "lena@new.example", "{frame}");
    assert_eq!(frame["user"]["display_name"], "Lena Q", "{frame}");

    // The same mails as POST /api/me/email: a notice to the old address, a
    // link to the new one, and the old link verifies nothing.
    let notice = mail.mail("lena@example.org", "Your email address was changed").await;
    assert!(
        notice["text"].as_str().unwrap().contains("lena@new.example"),
        "{notice}"
    );
    let (status, body) = verify(&server, &token_of(&old_link)).await;
    assert_error(status, &body, 400, "invalid_token");
    let new_link = link(
        &mail.mail("lena@new.example", "Confirm").await,
        &server.base,
        "/verify-email?token=",
    );
    let (status, body) = verify(&server, &token_of(&new_link)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(lena.me().await["email_verified"], true);

    let mut admin = server.admin().await;
    let logs = admin.logs(&[("action", "user_update"), ("user", "lena")]).await;
    let entries = logs["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["details"]["email"]["to"] == "lena@new.example"),
        "{logs}"
    );
    assert!(
        entries.iter().any(|e| e["details"]["display_name"]["to"] == "Lena Q"),
        "{logs}"
    );
}

#[tokio::test]
async fn an_smtp_server_that_is_down_at_first_gets_the_mail_when_it_comes_back() {
    let port = free_port();
    let server = Server::start_with(&[("SMTP_URL", &smtp_url(port))]).await;
    // Registration answers at once: no request waits on SMTP.
    let started = std::time::Instant::now();
    server.user("lou").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    eventually("a failed attempt", || {
        outbox(&server).iter().any(|(attempts, _)| *attempts >= 1)
    })
    .await;

    let mail = MailServer::start_with(port, &[]).await;
    mail.mail("lou@example.org", "Confirm").await;
    eventually("an empty outbox", || outbox(&server).is_empty()).await;
    assert_eq!(mail.mails_to("lou@example.org").len(), 1);
}

#[tokio::test]
async fn queued_mail_survives_a_restart_of_the_server() {
    let port = free_port();
    let mut server = Server::start_with(&[("SMTP_URL", &smtp_url(port))]).await;
    server.user("moe").await;
    eventually("a failed attempt", || {
        outbox(&server).iter().any(|(attempts, _)| *attempts >= 1)
    })
    .await;
    server.kill9_and_restart().await;
    assert_eq!(outbox(&server).len(), 1, "the row survived the crash");

    let mail = MailServer::start_with(port, &[]).await;
    let sent = mail.mail("moe@example.org", "Confirm").await;
    eventually("an empty outbox", || outbox(&server).is_empty()).await;
    assert_eq!(mail.mails_to("moe@example.org").len(), 1);
    // The link from before the restart still works.
    let url = link(&sent, &server.base, "/verify-email?token=");
    assert_eq!(verify(&server, &token_of(&url)).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_permanent_refusal_is_given_up_at_once() {
    let mail = MailServer::start_with(0, &[("SMTP_REJECT", "bounce")]).await;
    let server = server_with(&mail, &[]).await;
    server.register("ned", "bounce@example.org").await;
    server.user("olga").await;
    mail.mail("olga@example.org", "Confirm").await;
    eventually("an empty outbox", || outbox(&server).is_empty()).await;
    assert!(mail.mails_to("bounce@example.org").is_empty());
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("switchboard_mail_failed_total 1"), "{metrics}");
    assert!(metrics.contains("switchboard_mail_sent_total 1"), "{metrics}");
}

#[tokio::test]
async fn smtp_auth_uses_the_credentials_of_the_url() {
    let mail = MailServer::start_with(0, &[("SMTP_USER", "switchboard"), ("SMTP_PASS", "p@ss:word")]).await;
    let url = format!("smtp://switchboard:p%40ss%3Aword@127.0.0.1:{}", mail.port);
    let server = Server::start_with(&[("SMTP_URL", &url), ("MAIL_FROM", "Ops <ops@example.org>")]).await;
    server.user("pia").await;
    let sent = mail.mail("pia@example.org", "Confirm").await;
    assert_eq!(sent["user"], "switchboard");
    assert_eq!(sent["envelope_from"], "ops@example.org");
    assert_eq!(sent["from"], "\"Ops\" <ops@example.org>");
}

#[tokio::test]
async fn without_smtp_mail_is_off_and_an_admin_link_resets_a_password() {
    let server = Server::start().await;
    let (status, config) = server.client().get("/api/auth/config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["mail"], false);
    assert_eq!(config["registration"], "open");
    assert_eq!(config["password"], true);

    let mut quinn = server.user("quinn").await;
    assert_eq!(quinn.me().await["email_verified"], false);
    let (status, body) = quinn.post("/api/me/email/verify", json!({})).await;
    assert_error(status, &body, 400, "mail_disabled");
    let (status, body) = quinn
        .post("/api/me/email", json!({"email": "q@new.example", "password": PASSWORD}))
        .await;
    assert_error(status, &body, 400, "mail_disabled");
    let (status, body) = quinn
        .patch("/api/me", json!({"email": "q@new.example", "password": PASSWORD}))
        .await;
    assert_error(status, &body, 400, "mail_disabled");
    let (status, body) = stranger(&server)
        .post("/api/auth/password-reset", json!({"email": "quinn@example.org"}))
        .await;
    assert_error(status, &body, 400, "mail_disabled");
    let (status, body) = verify(&server, "anything").await;
    assert_error(status, &body, 400, "invalid_token");

    // The way back in without mail: an admin hands over a one-time link.
    let mut admin = server.admin().await;
    let id = admin.find_user("quinn").await["id"].clone();
    let (status, body) = admin
        .post(&format!("/api/admin/users/{id}/reset-link"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = body["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/reset-password?token=", server.base)),
        "{url}"
    );
    assert!(common::is_rfc3339(body["expires_at"].as_str().unwrap()));
    let (status, _) = stranger(&server)
        .post(
            "/api/auth/password-reset/confirm",
            json!({"token": token_of(url), "password": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = quinn.get("/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old session ended");
    server.login_ok("quinn", NEW_PASSWORD).await;
    let logs = admin.logs(&[("action", "password_reset_link")]).await;
    assert_eq!(logs["total"], 1, "{logs}");
}

#[tokio::test]
async fn reset_links_obey_the_privilege_hierarchy() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    server.user("rae").await;
    let helper = server.user("sid").await;
    drop(helper);
    let (_, role) = admin.post("/api/admin/roles", json!({"name": "helpdesk"})).await;
    let (status, _) = admin
        .post(
            &format!("/api/admin/roles/{}/permissions", role["id"]),
            json!({"permission": "admin.users"}),
        )
        .await;
    assert!(status.is_success(), "{status}");
    let sid_id = admin.find_user("sid").await["id"].clone();
    let (status, body) = admin
        .patch(
            &format!("/api/admin/users/{sid_id}"),
            json!({"roles": ["user", "helpdesk"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut sid = server.login_ok("sid", PASSWORD).await;

    let rae_id = admin.find_user("rae").await["id"].clone();
    let admin_id = admin.find_user("admin").await["id"].clone();
    let (status, body) = sid
        .post(&format!("/api/admin/users/{rae_id}/reset-link"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = sid
        .post(&format!("/api/admin/users/{admin_id}/reset-link"), json!({}))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let mut rae = server.login_ok("rae", PASSWORD).await;
    let (status, body) = rae
        .post(&format!("/api/admin/users/{rae_id}/reset-link"), json!({}))
        .await;
    assert_error(status, &body, 403, "forbidden");
    let mut guest = server.guest("Visitor").await;
    let guest_id = guest.me().await["id"].clone();
    let (status, body) = admin
        .post(&format!("/api/admin/users/{guest_id}/reset-link"), json!({}))
        .await;
    assert_error(status, &body, 409, "conflict");
    let (status, body) = admin.post("/api/admin/users/999999/reset-link", json!({})).await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn the_command_line_sets_a_password_and_ends_the_sessions() {
    let server = Server::start().await;
    let mut tia = server.user("tia").await;
    let mut child = server
        .command(&["user", "set-password", "tia"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{NEW_PASSWORD}\n").as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (status, _) = tia.get("/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, status, _) = server.login("tia", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.login_ok("tia", NEW_PASSWORD).await;

    let output = server
        .command(&["user", "set-password", "nobody"])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no user named"));
}

#[tokio::test]
async fn mail_test_reports_success_or_the_smtp_error() {
    let mail = MailServer::start().await;
    let server = server_with(&mail, &[]).await;
    let output = server
        .command(&["mail", "test", "uma@example.org"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let sent = mail.mail("uma@example.org", "Test mail").await;
    assert!(sent["text"].as_str().unwrap().contains("mail settings work"), "{sent}");

    let down = free_port();
    let output = server
        .command(&["mail", "test", "uma@example.org"])
        .env("SMTP_URL", format!("smtp://user:hunter2@127.0.0.1:{down}"))
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SMTP"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    let output = server
        .command(&["mail", "test", "uma@example.org"])
        .env_remove("SMTP_URL")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("SMTP_URL is not set"));
}

#[tokio::test]
async fn an_address_change_keeps_to_the_allowed_domains() {
    let mail = MailServer::start().await;
    let server = server_with(&mail, &[("ALLOWED_EMAIL_DOMAINS", "example.org")]).await;
    let mut vic = server.user("vic").await;
    let (status, body) = vic
        .post(
            "/api/me/email",
            json!({"email": "vic@elsewhere.example", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 403, "email_domain_not_allowed");
    assert_eq!(vic.me().await["email"], "vic@example.org");
}
