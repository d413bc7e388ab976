//! OpenID Connect sign-in against a real local provider (tests/oidc/provider.mjs): the redirect with state, nonce and PKCE, first sign-in and choosing a username, returning users, unverified emails, ADMIN_EMAIL granted once on a verified address, tampered, expired or replayed state, floods of sign-in starts, provider errors, a wrong client secret, and MAX_USERS.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{assert_error, Api, Server, ADMIN_EMAIL, PASSWORD};
use futures_util::stream::{self, StreamExt};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};
use switchboard::auth::oidc::{PendingSignIn, SEALING_PURPOSE};
use switchboard::auth::sealed::SealingKey;
use switchboard::config::Secret;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const CLIENT_ID: &str = "switchboard-test";
const SECRET: &str = "s3cret-for-the-tests";

/// One provider process per test: its identity setting is global to it.
struct Provider {
    issuer: String,
    _child: Child,
}

impl Provider {
    async fn start() -> Provider {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/provider.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .env("OIDC_EXIT_ON_STDIN_EOF", "1")
            .env("OIDC_CLIENT_SECRET", SECRET)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tests/oidc/provider.mjs (npm ci --prefix tests first)");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the OIDC provider did not start within 30 s")
            .unwrap()
            .expect("the OIDC provider exited before listening");
        let started: Value = serde_json::from_str(&line).unwrap();
        let issuer = started["issuer"].as_str().unwrap().to_owned();
        Provider { issuer, _child: child }
    }

    /// Who signs in from now on.
    async fn set_identity(&self, identity: Value) {
        let response = reqwest::Client::new()
            .post(format!("{}/test/next-identity", self.issuer))
            .json(&identity)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{identity}");
    }

    async fn next_authorize_error(&self, error: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/test/next-authorize-error", self.issuer))
            .json(&json!({"error": error, "error_description": "the user said no"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

async fn start(provider: &Provider, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("OIDC_ISSUER", provider.issuer.as_str()),
        ("OIDC_CLIENT_ID", CLIENT_ID),
        ("OIDC_CLIENT_SECRET", SECRET),
    ];
    env.extend_from_slice(extra);
    Server::start_with(&env).await
}

fn location(response: &reqwest::Response) -> String {
    assert_eq!(
        response.status(),
        StatusCode::FOUND,
        "expected a redirect from {}",
        response.url()
    );
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .expect("a redirect without Location")
        .to_str()
        .unwrap()
        .to_owned()
}

fn query(url: &Url, key: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

fn sets_session_cookie(response: &reqwest::Response) -> bool {
    response.headers().get_all(reqwest::header::SET_COOKIE).iter().any(|c| {
        let c = c.to_str().unwrap();
        c.starts_with("sb_session=") && !c.starts_with("sb_session=;")
    })
}

/// The steps of one sign-in, each URL as followed.
struct RoundTrip {
    authorize: Url,
    callback: Url,
    /// Where the callback sends the browser.
    landing: String,
    session_cookie_set: bool,
}

/// Starts a sign-in and follows it to the provider and back to the callback.
async fn to_callback(server: &Server, api: &Api) -> (Url, Url) {
    to_callback_from(server, api, "/auth/oidc/login").await
}

/// The same, started at `start` (such as `/auth/oidc/login?invite=CODE`).
async fn to_callback_from(server: &Server, api: &Api, start: &str) -> (Url, Url) {
    let response = api.http.get(server.url(start)).send().await.unwrap();
    let to = location(&response);
    let authorize =
        Url::parse(&to).unwrap_or_else(|_| panic!("/auth/oidc/login should redirect to the provider, not to {to:?}"));
    let response = api.http.get(authorize.clone()).send().await.unwrap();
    let callback = Url::parse(&location(&response)).unwrap();
    (authorize, callback)
}

async fn follow_callback(api: &Api, callback: Url) -> (String, bool) {
    let response = api.http.get(callback).send().await.unwrap();
    let landing = location(&response);
    (landing, sets_session_cookie(&response))
}

/// Gives `to` the cookies that `from` would send to `url`.
fn copy_cookies(from: &Api, to: &Api, url: &str) {
    use reqwest::cookie::CookieStore;
    let url: Url = url.parse().unwrap();
    let header = from.jar.cookies(&url).expect("no cookies to copy");
    for cookie in header.to_str().unwrap().split("; ") {
        let name = cookie.split('=').next().unwrap();
        let path = if name == "sb_oidc" { "/auth/oidc" } else { "/" };
        to.jar.add_cookie_str(&format!("{cookie}; Path={path}"), &url);
    }
    assert!(to.jar.cookies(&url).is_some());
}

async fn round_trip(server: &Server, api: &Api) -> RoundTrip {
    let (authorize, callback) = to_callback(server, api).await;
    let (landing, session_cookie_set) = follow_callback(api, callback.clone()).await;
    RoundTrip {
        authorize,
        callback,
        landing,
        session_cookie_set,
    }
}

#[tokio::test]
async fn the_config_reports_oidc() {
    let provider = Provider::start().await;
    let server = start(&provider, &[]).await;
    let (status, config) = server.client().get("/api/auth/config").await;
    assert_eq!(status, 200);
    assert_eq!(config["oidc"], true, "{config}");
    assert!(config["oidc_name"].as_str().is_some_and(|n| !n.is_empty()), "{config}");
    // Without OIDC configuration it is off.
    let plain = Server::start().await;
    let (_, config) = plain.client().get("/api/auth/config").await;
    assert_eq!(config["oidc"], false, "{config}");
}

#[tokio::test]
async fn first_sign_in_chooses_a_username_and_later_ones_go_home() {
    let provider = Provider::start().await;
    provider
        .set_identity(
            json!({"sub": "oidc-1", "email": "Olive@Example.org", "email_verified": true, "name": "Olive Oyl"}),
        )
        .await;
    let server = start(&provider, &[]).await;
    let mut api = server.client();
    let trip = round_trip(&server, &api).await;

    // The redirect to the provider carries state, nonce and PKCE.
    let authorize = &trip.authorize;
    assert!(
        authorize
            .as_str()
            .starts_with(&format!("{}/authorize", provider.issuer)),
        "{authorize}"
    );
    assert_eq!(query(authorize, "response_type").as_deref(), Some("code"));
    assert_eq!(query(authorize, "client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(
        query(authorize, "redirect_uri").as_deref(),
        Some(server.url("/auth/oidc/callback").as_str())
    );
    assert_eq!(query(authorize, "code_challenge_method").as_deref(), Some("S256"));
    let challenge = query(authorize, "code_challenge").expect("code_challenge");
    assert!(challenge.len() >= 43, "{challenge}");
    let state = query(authorize, "state").expect("state");
    assert!(state.len() >= 16, "a guessable state: {state}");
    let nonce = query(authorize, "nonce").expect("nonce");
    assert!(nonce.len() >= 16, "a guessable nonce: {nonce}");
    let scope = query(authorize, "scope").expect("scope");
    assert!(scope.split(' ').any(|s| s == "openid"), "{scope}");
    assert!(scope.split(' ').any(|s| s == "email"), "{scope}");

    // The provider sends the browser back with a code and the same state.
    assert!(
        trip.callback.as_str().starts_with(&server.url("/auth/oidc/callback")),
        "{}",
        trip.callback
    );
    assert!(query(&trip.callback, "code").is_some());
    assert_eq!(query(&trip.callback, "state").as_deref(), Some(state.as_str()));

    // A first sign-in still needs a username.
    assert_eq!(trip.landing, "/choose-username");
    assert!(trip.session_cookie_set, "the callback did not sign in");
    let (status, body) = api.get("/api/me").await;
    assert_eq!(status, 200, "{body}");
    let user = body["user"].clone();
    assert_eq!(user["needs_username"], true, "{user}");
    assert_eq!(user["email"], "olive@example.org");
    assert_eq!(user["guest"], false);
    assert_eq!(user["is_admin"], false);
    assert_eq!(user["roles"], json!(["user"]));

    let (status, body) = api.post("/api/me/username", json!({"username": "oidcuser"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["username"], "oidcuser");
    assert_eq!(body["user"]["id"], user["id"]);
    assert_eq!(body["user"]["needs_username"], false);
    assert_eq!(api.me().await["needs_username"], false);

    // The same identity again, in a new browser: straight home, same account.
    let mut again = server.client();
    let trip = round_trip(&server, &again).await;
    assert_eq!(trip.landing, "/");
    assert!(trip.session_cookie_set);
    let me = again.me().await;
    assert_eq!(me["id"], user["id"]);
    assert_eq!(me["username"], "oidcuser");

    // Both sign-ins are in the audit log.
    let admin_provider_identity = json!({"sub": "oidc-admin", "email": ADMIN_EMAIL, "email_verified": true});
    provider.set_identity(admin_provider_identity).await;
    let mut admin = server.client();
    let trip = round_trip(&server, &admin).await;
    assert_eq!(trip.landing, "/choose-username");
    assert_eq!(admin.me().await["is_admin"], true, "a verified ADMIN_EMAIL");
    let logs = admin.logs(&[("user", &user["id"].to_string())]).await;
    let actions: Vec<&str> = logs["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"register"), "{logs}");
    assert_eq!(actions.iter().filter(|a| **a == "login").count(), 2, "{logs}");
}

#[tokio::test]
async fn a_taken_username_cannot_be_chosen() {
    let provider = Provider::start().await;
    provider
        .set_identity(json!({"sub": "oidc-2", "email": "pat@example.org", "email_verified": true}))
        .await;
    let server = start(&provider, &[]).await;
    server.user("taken").await;
    let mut api = server.client();
    let trip = round_trip(&server, &api).await;
    assert_eq!(trip.landing, "/choose-username");
    let (status, body) = api.get("/api/me").await;
    assert_eq!(status, 200, "{body}");
    for name in ["taken", "TAKEN"] {
        let (status, body) = api.post("/api/me/username", json!({"username": name})).await;
        assert_error(status, &body, 409, "conflict");
    }
    let (status, body) = api.post("/api/me/username", json!({"username": "a b"})).await;
    assert_error(status, &body, 400, "bad_request");
    assert_eq!(api.me().await["needs_username"], true);
}

#[tokio::test]
async fn an_unverified_or_missing_email_is_refused() {
    let provider = Provider::start().await;
    let server = start(&provider, &[]).await;
    for identity in [
        json!({"sub": "oidc-3", "email": "quinn@example.org", "email_verified": false}),
        json!({"sub": "oidc-4", "email": "quinn@example.org", "email_verified": null}),
        json!({"sub": "oidc-5", "email": null, "email_verified": true}),
    ] {
        provider.set_identity(identity.clone()).await;
        let mut api = server.client();
        let trip = round_trip(&server, &api).await;
        assert_eq!(trip.landing, "/login?error=email_unverified", "{identity}");
        assert!(!trip.session_cookie_set, "{identity}");
        assert!(api.session_cookie().is_none());
        let (status, body) = api.get("/api/me").await;
        assert_error(status, &body, 401, "unauthenticated");
    }
    // No account was made.
    let mut admin = server.admin().await;
    assert_eq!(admin.user_total().await, 1);
    let logs = admin.logs(&[("action", "login_failed")]).await;
    assert_eq!(logs["total"], 3, "{logs}");
}

#[tokio::test]
async fn the_admin_email_identity_becomes_an_admin() {
    let provider = Provider::start().await;
    provider
        .set_identity(json!({"sub": "boss", "email": "Admin@Example.ORG", "email_verified": true}))
        .await;
    let server = start(&provider, &[]).await;
    let mut api = server.client();
    let trip = round_trip(&server, &api).await;
    assert!(trip.session_cookie_set);
    let me = api.me().await;
    assert_eq!(me["is_admin"], true, "{me}");
    assert!(me["roles"].as_array().unwrap().iter().any(|r| r == "admin"), "{me}");
    let (status, _) = api.get("/api/admin/users").await;
    assert_eq!(status, 200);

    // Another identity is not.
    provider
        .set_identity(json!({"sub": "someone", "email": "someone@example.org", "email_verified": true}))
        .await;
    let mut other = server.client();
    round_trip(&server, &other).await;
    assert_eq!(other.me().await["is_admin"], false);
}

/// The ADMIN_EMAIL of the tests below: not the fixture admin's address, so
/// that both accounts can exist.
const BOSS_EMAIL: &str = "boss@example.org";

async fn set_admin(admin: &mut Api, user: &Value, is_admin: bool) {
    let (status, body) = admin
        .patch(
            &format!("/api/admin/users/{}", user["id"]),
            json!({"is_admin": is_admin}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["is_admin"], is_admin, "{body}");
}

#[tokio::test]
async fn an_admin_made_by_admin_email_stays_demoted_at_the_next_sign_in() {
    let provider = Provider::start().await;
    provider
        .set_identity(json!({"sub": "boss", "email": "Boss@Example.org", "email_verified": true}))
        .await;
    let server = start(&provider, &[("ADMIN_EMAIL", BOSS_EMAIL)]).await;
    let mut boss = server.client();
    round_trip(&server, &boss).await;
    let me = boss.me().await;
    assert_eq!(me["is_admin"], true, "created with a verified ADMIN_EMAIL: {me}");

    let mut admin = server.admin().await;
    set_admin(&mut admin, &me, false).await;
    let mut again = server.client();
    let trip = round_trip(&server, &again).await;
    assert!(trip.session_cookie_set);
    let me = again.me().await;
    assert_eq!(me["is_admin"], false, "a sign-in granted admin again: {me}");
    assert!(!me["roles"].as_array().unwrap().iter().any(|r| r == "admin"), "{me}");
    let granted = admin.logs(&[("action", "user_update")]).await;
    let grants = granted["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["details"]["reason"] == "ADMIN_EMAIL verified")
        .count();
    assert_eq!(grants, 1, "{granted}");
}

#[tokio::test]
async fn admin_email_on_a_password_account_waits_for_the_provider_to_verify_it() {
    let provider = Provider::start().await;
    let server = start(&provider, &[("ADMIN_EMAIL", BOSS_EMAIL)]).await;
    let mut early = server.register("boss", BOSS_EMAIL).await;
    assert_eq!(early.me().await["is_admin"], false, "an unverified address");
    let mut again = server.login_ok("boss", common::PASSWORD).await;
    assert_eq!(again.me().await["is_admin"], false, "a login verifies nothing");

    // The provider vouches for the address: the account is linked and
    // becomes an admin, once.
    provider
        .set_identity(json!({"sub": "boss-at-idp", "email": BOSS_EMAIL, "email_verified": true}))
        .await;
    let mut boss = server.client();
    let trip = round_trip(&server, &boss).await;
    assert_eq!(trip.landing, "/");
    let me = boss.me().await;
    assert_eq!(me["username"], "boss");
    assert_eq!(me["is_admin"], true, "{me}");

    let mut admin = server.admin().await;
    set_admin(&mut admin, &me, false).await;
    let mut later = server.client();
    round_trip(&server, &later).await;
    assert_eq!(later.me().await["is_admin"], false, "the demotion lasts");
}

#[tokio::test]
async fn a_flood_of_sign_in_starts_does_not_stop_a_real_sign_in() {
    let provider = Provider::start().await;
    provider
        .set_identity(json!({"sub": "real", "email": "real@example.org", "email_verified": true}))
        .await;
    let server = start(&provider, &[("OIDC_RATE_PER_MIN", "0")]).await;
    // More starts than any table of sign-ins in progress would hold; none
    // of them is ever finished.
    let client = server.client();
    let redirected = stream::iter(0..10_050)
        .map(|_| {
            let request = client.http.get(server.url("/auth/oidc/login"));
            async move { request.send().await.unwrap().status() == StatusCode::FOUND }
        })
        .buffer_unordered(16)
        .filter(|found| std::future::ready(*found))
        .count()
        .await;
    assert_eq!(redirected, 10_050);
    let mut api = server.client();
    let trip = round_trip(&server, &api).await;
    assert_eq!(trip.landing, "/choose-username");
    assert!(trip.session_cookie_set);
    assert_eq!(api.me().await["email"], "real@example.org");
}

#[tokio::test]
async fn sign_in_starts_are_limited_per_ip() {
    let provider = Provider::start().await;
    let server = start(
        &provider,
        &[("OIDC_RATE_PER_MIN", "2"), ("TRUSTED_PROXIES", "127.0.0.1")],
    )
    .await;
    let start_from = |ip: &str| {
        server
            .client()
            .http
            .get(server.url("/auth/oidc/login"))
            .header("X-Forwarded-For", ip)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(start_from("203.0.113.8").await.unwrap().status(), StatusCode::FOUND);
    }
    let refused = start_from("203.0.113.8").await.unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()[reqwest::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: Value = refused.json().await.unwrap();
    assert_error(StatusCode::TOO_MANY_REQUESTS, &body, 429, "rate_limited");
    assert_eq!(start_from("203.0.113.9").await.unwrap().status(), StatusCode::FOUND);
    let mut admin = server.admin().await;
    let logs = admin.logs(&[("action", "rate_limited")]).await;
    assert_eq!(logs["entries"][0]["details"]["what"], "oidc", "{logs}");
}

/// The `sb_oidc` cookie `api` holds, and the callback it was issued for.
async fn started_sign_in(server: &Server, api: &Api) -> (String, Url) {
    use reqwest::cookie::CookieStore;
    let (_, callback) = to_callback(server, api).await;
    let header = api.jar.cookies(&callback).expect("no sb_oidc cookie");
    let cookie = header
        .to_str()
        .unwrap()
        .split("; ")
        .find_map(|c| c.strip_prefix("sb_oidc="))
        .expect("no sb_oidc cookie")
        .to_owned();
    (cookie, callback)
}

/// Follows `callback` with `cookie` as the browser's `sb_oidc`.
async fn callback_with_cookie(callback: Url, cookie: &str) -> (String, bool, bool) {
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(callback)
        .header("Cookie", format!("sb_oidc={cookie}"))
        .send()
        .await
        .unwrap();
    let cleared = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("sb_oidc=;"));
    (location(&response), sets_session_cookie(&response), cleared)
}

#[tokio::test]
async fn a_tampered_or_expired_sign_in_cookie_fails_cleanly() {
    let provider = Provider::start().await;
    let server = start(&provider, &[]).await;

    // The cookie is sealed: nothing in it reads as the state, and any
    // change to it is refused.
    let (cookie, callback) = started_sign_in(&server, &server.client()).await;
    let state = query(&callback, "state").unwrap();
    assert!(!cookie.contains(&state), "the state is readable in the cookie");
    let mut tampered = cookie.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (landing, signed_in, cleared) = callback_with_cookie(callback.clone(), &tampered).await;
    assert_eq!(landing, "/login?error=oidc_expired");
    assert!(!signed_in);
    assert!(cleared, "the callback clears sb_oidc");

    // A cookie sealed with the server's key but past its expiry.
    let key = SealingKey::derive(&Secret::new("integration-test-secret-key"), SEALING_PURPOSE);
    let (_, callback) = started_sign_in(&server, &server.client()).await;
    let expired = PendingSignIn {
        state: query(&callback, "state").unwrap(),
        nonce: "n".repeat(22),
        pkce_verifier: "v".repeat(43),
        expires: chrono::Utc::now().timestamp() - 1,
        invite: None,
    };
    let (landing, signed_in, _) = callback_with_cookie(callback.clone(), &expired.seal(&key)).await;
    assert_eq!(landing, "/login?error=oidc_expired");
    assert!(!signed_in);

    // The untouched cookie still works: the failures above were the cookies'.
    let (cookie, callback) = started_sign_in(&server, &server.client()).await;
    let (landing, signed_in, cleared) = callback_with_cookie(callback, &cookie).await;
    assert_eq!(landing, "/choose-username");
    assert!(signed_in);
    assert!(cleared);
}

#[tokio::test]
async fn a_tampered_or_replayed_state_is_refused() {
    let provider = Provider::start().await;
    let server = start(&provider, &[]).await;

    // Tampered state.
    let api = server.client();
    let (_, mut callback) = to_callback(&server, &api).await;
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" { format!("{v}x") } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    callback.query_pairs_mut().clear().extend_pairs(pairs);
    let (landing, cookie) = follow_callback(&api, callback).await;
    assert!(landing.starts_with("/login?error="), "{landing}");
    assert!(!cookie);
    assert!(api.session_cookie().is_none());

    // A callback in a browser that did not start the sign-in.
    let starter = server.client();
    let (_, callback) = to_callback(&server, &starter).await;
    let stranger = server.client();
    let (landing, cookie) = follow_callback(&stranger, callback.clone()).await;
    assert!(landing.starts_with("/login?error="), "{landing}");
    assert!(!cookie);
    assert!(stranger.session_cookie().is_none());

    // A callback works once, even with the browser's cookies copied.
    let api = server.client();
    let (_, callback) = to_callback(&server, &api).await;
    let replay = server.client();
    copy_cookies(&api, &replay, &server.url("/auth/oidc/callback"));
    let (landing, cookie) = follow_callback(&api, callback.clone()).await;
    assert_eq!(landing, "/choose-username");
    assert!(cookie);
    let (landing, cookie) = follow_callback(&replay, callback).await;
    assert!(landing.starts_with("/login?error="), "a replayed callback: {landing}");
    assert!(!cookie);
    assert!(replay.session_cookie().is_none());

    // A callback without code or state.
    let (landing, cookie) = follow_callback(&server.client(), server.url("/auth/oidc/callback").parse().unwrap()).await;
    assert!(landing.starts_with("/login?error="), "{landing}");
    assert!(!cookie);
}

#[tokio::test]
async fn a_provider_refusal_lands_on_the_login_page() {
    let provider = Provider::start().await;
    let server = start(&provider, &[]).await;
    provider.next_authorize_error("access_denied").await;
    let api = server.client();
    let trip = round_trip(&server, &api).await;
    assert!(query(&trip.callback, "error").is_some(), "{}", trip.callback);
    assert!(trip.landing.starts_with("/login?error="), "{}", trip.landing);
    assert!(!trip.session_cookie_set);
    assert!(api.session_cookie().is_none());
}

#[tokio::test]
async fn a_wrong_client_secret_fails_the_exchange() {
    let provider = Provider::start().await;
    let server = Server::start_with(&[
        ("OIDC_ISSUER", provider.issuer.as_str()),
        ("OIDC_CLIENT_ID", CLIENT_ID),
        ("OIDC_CLIENT_SECRET", "not-the-secret"),
    ])
    .await;
    let api = server.client();
    let trip = round_trip(&server, &api).await;
    assert_eq!(trip.landing, "/login?error=oidc_failed");
    assert!(!trip.session_cookie_set);
}

#[tokio::test]
async fn max_users_applies_to_new_oidc_accounts() {
    let provider = Provider::start().await;
    let server = start(&provider, &[("MAX_USERS", "2")]).await;
    let mut admin = server.admin().await;
    server.user("rue").await;
    provider
        .set_identity(json!({"sub": "newcomer", "email": "newcomer@example.org", "email_verified": true}))
        .await;
    let api = server.client();
    let trip = round_trip(&server, &api).await;
    assert_eq!(trip.landing, "/login?error=user_limit");
    assert!(!trip.session_cookie_set);
    assert!(api.session_cookie().is_none());
    assert_eq!(admin.user_total().await, 2);
    let logs = admin.logs(&[("action", "user_limit_blocked")]).await;
    assert_eq!(logs["total"], 1, "{logs}");

    // An identity whose verified email is an existing account's signs in to it.
    provider
        .set_identity(json!({"sub": "rue-at-provider", "email": "rue@example.org", "email_verified": true}))
        .await;
    let mut rue = server.client();
    let trip = round_trip(&server, &rue).await;
    assert_eq!(trip.landing, "/");
    assert!(trip.session_cookie_set);
    assert_eq!(rue.me().await["username"], "rue");
    assert_eq!(admin.user_total().await, 2);
}

#[tokio::test]
async fn password_login_off_is_single_sign_on_only() {
    let provider = Provider::start().await;
    let server = start(&provider, &[("PASSWORD_LOGIN", "false")]).await;
    let mut api = server.client();
    let (_, config) = api.get("/api/auth/config").await;
    assert_eq!(config["password"], false, "{config}");
    assert_eq!(config["oidc"], true);

    let (status, body) = api
        .post(
            "/api/auth/register",
            json!({"username": "pat", "email": "pat@example.org", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 403, "password_login_disabled");
    let (status, body) = api
        .post("/api/auth/login", json!({"login": "pat", "password": PASSWORD}))
        .await;
    assert_error(status, &body, 403, "password_login_disabled");
    let (status, body) = api
        .post("/api/auth/password-reset", json!({"email": "pat@example.org"}))
        .await;
    assert_error(status, &body, 403, "password_login_disabled");

    // The provider's sign-in works, and its address counts as verified.
    let trip = round_trip(&server, &api).await;
    assert_eq!(trip.landing, "/choose-username");
    let me = api.me().await;
    assert_eq!(me["email_verified"], true, "{me}");
    assert!(me["avatar_url"].is_null());
}

#[tokio::test]
async fn password_login_off_without_oidc_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .env_clear()
        .env("PASSWORD_LOGIN", "false")
        .env("BIND", "127.0.0.1:0")
        .env("DATABASE_PATH", dir.path().join("sb.db"))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PASSWORD_LOGIN") && stderr.contains("OIDC"), "{stderr}");
}

#[tokio::test]
async fn registration_by_invite_holds_for_a_first_sign_in() {
    let provider = Provider::start().await;
    provider
        .set_identity(json!({"sub": "inv-1", "email": "quin@example.org", "email_verified": true}))
        .await;
    let server = start(&provider, &[("REGISTRATION", "invite")]).await;
    let trip = round_trip(&server, &server.client()).await;
    assert_eq!(trip.landing, "/login?error=registration_closed");
    assert!(!trip.session_cookie_set);

    let mut admin = server.admin().await;
    let (status, invite) = admin.post("/api/admin/invites", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{invite}");
    let code = invite["code"].as_str().unwrap();
    let api = server.client();
    let (_, callback) = to_callback_from(&server, &api, &format!("/auth/oidc/login?invite={code}")).await;
    let (landing, signed_in) = follow_callback(&api, callback).await;
    assert_eq!(landing, "/choose-username");
    assert!(signed_in);

    // The invitation is spent; the account signs in again without one.
    let (_, list) = admin.get("/api/admin/invites").await;
    assert_eq!(list["invites"][0]["uses_left"], 0, "{list}");
    let trip = round_trip(&server, &server.client()).await;
    assert!(trip.session_cookie_set, "{}", trip.landing);
    // Another new identity with the spent code is refused.
    provider
        .set_identity(json!({"sub": "inv-2", "email": "rex@example.org", "email_verified": true}))
        .await;
    let api = server.client();
    let (_, callback) = to_callback_from(&server, &api, &format!("/auth/oidc/login?invite={code}")).await;
    let (landing, signed_in) = follow_callback(&api, callback).await;
    assert_eq!(landing, "/login?error=registration_closed");
    assert!(!signed_in);
}

#[tokio::test]
async fn allowed_email_domains_hold_for_every_oidc_sign_in() {
    let provider = Provider::start().await;
    let server = start(&provider, &[("ALLOWED_EMAIL_DOMAINS", "example.org")]).await;
    provider
        .set_identity(json!({"sub": "dom-1", "email": "sam@elsewhere.example", "email_verified": true}))
        .await;
    let trip = round_trip(&server, &server.client()).await;
    assert_eq!(trip.landing, "/login?error=email_domain_not_allowed");
    assert!(!trip.session_cookie_set);
    provider
        .set_identity(json!({"sub": "dom-2", "email": "sam@example.org", "email_verified": true}))
        .await;
    let trip = round_trip(&server, &server.client()).await;
    assert_eq!(trip.landing, "/choose-username");
    let mut admin = server.admin().await;
    let logs = admin.logs(&[("action", "login_failed")]).await;
    let reasons: Vec<&Value> = logs["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["details"]["reason"])
        .collect();
    assert!(reasons.iter().any(|r| *r == "email_domain_not_allowed"), "{logs}");
}

#[tokio::test]
async fn a_first_oidc_sign_in_is_welcomed_by_mail() {
    let mail = common::smtp::MailServer::start().await;
    let provider = Provider::start().await;
    provider
        .set_identity(json!({"sub": "wel-1", "email": "tess@example.org", "email_verified": true, "name": "Tess"}))
        .await;
    let server = start(&provider, &[("SMTP_URL", &mail.url())]).await;
    round_trip(&server, &server.client()).await;
    let welcome = mail.mail("tess@example.org", "Welcome to Switchboard").await;
    assert!(welcome["text"].as_str().unwrap().contains("Tess"), "{welcome}");
    // No verification mail: the provider vouched for the address.
    round_trip(&server, &server.client()).await;
    assert_eq!(mail.mails_to("tess@example.org").len(), 1);
}
