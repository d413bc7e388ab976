//! OpenID Connect sign-in (Google by default, any issuer by configuration):
//! authorization code with PKCE, state and nonce; the ID token's signature,
//! issuer, audience, expiry and nonce are checked here, on the server.
//!
//! A sign-in in progress is kept by the browser, not the server: its state,
//! nonce and PKCE verifier travel sealed (encrypted and authenticated, with
//! an expiry inside) in the `sb_oidc` cookie, so starting sign-ins costs the
//! server no memory and no flood of starts can crowd out a real one.

use std::time::Duration;

use chrono::Utc;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    reqwest, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet,
    EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use url::Url;

use super::sealed::SealingKey;
use super::tokens::constant_time_eq;
use crate::config::{OidcConfig, Secret};

/// How long a person has to finish signing in at the provider.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// The sealing key's purpose label for the sign-in cookie.
pub const SEALING_PURPOSE: &str = "oidc-state";
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

type DiscoveredClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("provider discovery failed: {0}")]
    Discovery(String),
    #[error("the sign-in expired or was started in another browser")]
    UnknownState,
    #[error("the provider refused the sign-in: {0}")]
    Provider(String),
    #[error("the code exchange failed: {0}")]
    Exchange(String),
    #[error("the ID token is invalid: {0}")]
    InvalidToken(String),
    #[error("the provider did not send an email address")]
    NoEmail,
    #[error("the provider has not verified this email address")]
    EmailUnverified,
}

impl OidcError {
    /// What the sign-in page is told (`/login?error=...`).
    pub fn page_code(&self) -> &'static str {
        match self {
            Self::EmailUnverified | Self::NoEmail => "email_unverified",
            Self::UnknownState => "oidc_expired",
            Self::Discovery(_) | Self::Provider(_) | Self::Exchange(_) | Self::InvalidToken(_) => "oidc_failed",
        }
    }
}

/// Who the provider says signed in.
#[derive(Debug, Clone)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub name: Option<String>,
    /// The invitation the sign-in was started with (REGISTRATION=invite): it
    /// lets a first sign-in create an account.
    pub invite: Option<String>,
}

/// A sign-in in progress, as sealed into the browser's `sb_oidc` cookie.
/// (No `Debug`: it holds the PKCE verifier.)
#[derive(Serialize, Deserialize)]
pub struct PendingSignIn {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Unix seconds after which the cookie is refused.
    pub expires: i64,
    /// An invitation code, carried from `/auth/oidc/login?invite=` to the callback.
    #[serde(default)]
    pub invite: Option<String>,
}

impl PendingSignIn {
    #[expect(clippy::expect_used, reason = "a struct of strings and an integer always serialises")]
    pub fn seal(&self, key: &SealingKey) -> String {
        key.seal(&serde_json::to_vec(self).expect("serialisable"))
    }

    /// The sign-in sealed in `cookie`, unless it was altered or has expired.
    pub fn open(key: &SealingKey, cookie: &str) -> Option<Self> {
        let pending: Self = serde_json::from_slice(&key.open(cookie)?).ok()?;
        (pending.expires > Utc::now().timestamp()).then_some(pending)
    }
}

pub struct OidcProvider {
    config: OidcConfig,
    redirect: RedirectUrl,
    http: reqwest::Client,
    /// Discovered on first use; a failed discovery is retried next time.
    client: OnceCell<DiscoveredClient>,
    cookie_key: SealingKey,
}

impl OidcProvider {
    pub fn new(config: OidcConfig, public_base: &Url, secret: &Secret) -> Result<Self, OidcError> {
        let redirect = public_base
            .join("auth/oidc/callback")
            .map_err(|e| OidcError::Discovery(e.to_string()))
            .map(RedirectUrl::from_url)?;
        let http = reqwest::Client::builder()
            // Following redirects would open the server to SSRF.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| OidcError::Discovery(e.to_string()))?;
        Ok(Self {
            config,
            redirect,
            http,
            client: OnceCell::new(),
            cookie_key: SealingKey::derive(secret, SEALING_PURPOSE),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    async fn client(&self) -> Result<&DiscoveredClient, OidcError> {
        self.client
            .get_or_try_init(|| async {
                let issuer =
                    IssuerUrl::new(self.config.issuer.clone()).map_err(|e| OidcError::Discovery(e.to_string()))?;
                let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| OidcError::Discovery(error_chain(&e)))?;
                Ok(CoreClient::from_provider_metadata(
                    metadata,
                    ClientId::new(self.config.client_id.clone()),
                    Some(ClientSecret::new(self.config.client_secret.expose().to_owned())),
                )
                .set_redirect_uri(self.redirect.clone()))
            })
            .await
    }

    /// Starts a sign-in: the provider URL to send the browser to, and the
    /// sealed sign-in for the browser to keep (in the `sb_oidc` cookie),
    /// which carries `invite` to the callback.
    pub async fn begin(&self, invite: Option<String>) -> Result<(Url, String), OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        let pending = PendingSignIn {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            expires: Utc::now().timestamp() + PENDING_TTL.as_secs() as i64,
            invite,
        };
        Ok((url, pending.seal(&self.cookie_key)))
    }

    /// Completes a sign-in from the provider's redirect. `cookie` is what
    /// this browser was given by [`begin`](Self::begin).
    pub async fn finish(&self, state: &str, cookie: &str, code: &str) -> Result<Identity, OidcError> {
        let pending = PendingSignIn::open(&self.cookie_key, cookie).ok_or(OidcError::UnknownState)?;
        if !constant_time_eq(state, &pending.state) {
            return Err(OidcError::UnknownState);
        }
        let client = self.client().await?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e)))?;
        let id_token = openidconnect::TokenResponse::id_token(&token)
            .ok_or_else(|| OidcError::InvalidToken("the provider sent no ID token".into()))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(pending.nonce))
            .map_err(|e| OidcError::InvalidToken(error_chain(&e)))?;
        let email = claims.email().ok_or(OidcError::NoEmail)?;
        if claims.email_verified() != Some(true) {
            return Err(OidcError::EmailUnverified);
        }
        Ok(Identity {
            issuer: claims.issuer().to_string(),
            subject: claims.subject().to_string(),
            email: email.to_string(),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
            invite: pending.invite,
        })
    }
}

/// An error and its causes on one line, for the log.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
