//! The `users` table: accounts (registered, OIDC and guest) and their lookups.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::{now_ms, roles, to_time, DbError};
use crate::ids::UserId;

/// A user as the API shows it (the contract's `User`).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// The address has been proved: by the provider (OIDC), a verification
    /// link, or a completed password reset.
    pub email_verified: bool,
    /// Where the user's picture is served; a new picture, a new URL.
    pub avatar_url: Option<String>,
    pub is_admin: bool,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub guest: bool,
    pub totp_enabled: bool,
    pub created_at: DateTime<Utc>,
    /// True after a first OIDC sign-in, until a username is chosen.
    pub needs_username: bool,
}

impl User {
    pub fn can(&self, permission: &str) -> bool {
        self.is_admin || self.permissions.iter().any(|p| p == permission)
    }
}

/// What a password login needs to know, and nothing the API shows.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub id: UserId,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    pub is_guest: bool,
}

/// A new registered (non-guest) account.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub email_verified: bool,
    pub password_hash: Option<String>,
    pub oidc: Option<(String, String)>,
    pub needs_username: bool,
}

impl NewAccount {
    /// An account that signs in with a password; its display name starts as
    /// its username.
    pub fn with_password(username: String, email: String, password_hash: String) -> Self {
        Self {
            display_name: username.clone(),
            username,
            email,
            email_verified: false,
            password_hash: Some(password_hash),
            oidc: None,
            needs_username: false,
        }
    }
}

const USER_COLUMNS: &str = "id, username, display_name, email, is_guest, totp_secret IS NOT NULL, created_at, \
     needs_username, email_verified, (SELECT token FROM avatars WHERE avatars.user_id = users.id)";

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        display_name: row.get(2)?,
        email: row.get(3)?,
        guest: row.get(4)?,
        totp_enabled: row.get(5)?,
        created_at: to_time(row.get(6)?),
        needs_username: row.get(7)?,
        email_verified: row.get(8)?,
        avatar_url: row
            .get::<_, Option<String>>(9)?
            .map(|token| super::avatars::url(&token)),
        is_admin: false,
        roles: Vec::new(),
        permissions: Vec::new(),
    })
}

fn with_grants(conn: &Connection, mut user: User) -> Result<User, DbError> {
    let grants = roles::grants_of(conn, user.id)?;
    user.is_admin = grants.is_admin;
    user.roles = grants.roles;
    user.permissions = grants.permissions;
    Ok(user)
}

pub fn get(conn: &Connection, id: UserId) -> Result<User, DbError> {
    let user = conn
        .query_row(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
            [id],
            user_from_row,
        )
        .optional()?
        .ok_or(DbError::NotFound)?;
    with_grants(conn, user)
}

/// The users with these ids as they are now; an id with no user is skipped.
pub fn get_each(conn: &Connection, ids: &[UserId]) -> Result<Vec<User>, DbError> {
    let mut found = Vec::with_capacity(ids.len());
    for id in ids {
        match get(conn, *id) {
            Ok(user) => found.push(user),
            Err(DbError::NotFound) => {}
            Err(other) => return Err(other),
        }
    }
    Ok(found)
}

const CREDENTIAL_COLUMNS: &str = "id, username, email, password_hash, totp_secret, totp_last_step, is_guest";

fn credentials_from_row(row: &Row<'_>) -> rusqlite::Result<Credentials> {
    Ok(Credentials {
        id: row.get(0)?,
        username: row.get(1)?,
        email: row.get(2)?,
        password_hash: row.get(3)?,
        totp_secret: row.get(4)?,
        totp_last_step: row.get(5)?,
        is_guest: row.get(6)?,
    })
}

/// Finds an account by username (any case) or email.
pub fn find_credentials(conn: &Connection, login: &str) -> Result<Option<Credentials>, DbError> {
    let email = crate::config::normalise_email(login);
    Ok(conn
        .query_row(
            &format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM users
                 WHERE username = ?1 OR email = ?2 ORDER BY username = ?1 DESC LIMIT 1"
            ),
            params![login.trim(), email],
            credentials_from_row,
        )
        .optional()?)
}

/// The credentials of a signed-in user.
pub fn credentials(conn: &Connection, id: UserId) -> Result<Credentials, DbError> {
    conn.query_row(
        &format!("SELECT {CREDENTIAL_COLUMNS} FROM users WHERE id = ?1"),
        [id],
        credentials_from_row,
    )
    .optional()?
    .ok_or(DbError::NotFound)
}

pub fn find_by_oidc(conn: &Connection, issuer: &str, subject: &str) -> Result<Option<UserId>, DbError> {
    Ok(conn
        .query_row(
            "SELECT id FROM users WHERE oidc_issuer = ?1 AND oidc_subject = ?2",
            params![issuer, subject],
            |r| r.get(0),
        )
        .optional()?)
}

pub fn find_by_email(conn: &Connection, email: &str) -> Result<Option<UserId>, DbError> {
    Ok(conn
        .query_row("SELECT id FROM users WHERE email = ?1", [email], |r| r.get(0))
        .optional()?)
}

/// Links an OIDC identity to the account with the same email. The provider
/// has proved who owns the address; if the account had not, its password was
/// set by someone unproven, so it is dropped along with that account's
/// sessions (no pre-registered account can be taken over this way). True
/// when this verified the address for the first time.
pub fn link_oidc(conn: &Connection, id: UserId, issuer: &str, subject: &str) -> Result<bool, DbError> {
    let was_verified: bool = conn.query_row("SELECT email_verified FROM users WHERE id = ?1", [id], |r| r.get(0))?;
    if !was_verified {
        conn.execute("UPDATE users SET password_hash = NULL WHERE id = ?1", [id])?;
        super::sessions::delete_for_user(conn, id)?;
    }
    conn.execute(
        "UPDATE users SET oidc_issuer = ?2, oidc_subject = ?3, email_verified = 1 WHERE id = ?1",
        params![id, issuer, subject],
    )?;
    Ok(!was_verified)
}

pub fn count_registered(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row("SELECT count(*) FROM users WHERE is_guest = 0", [], |r| r.get(0))?)
}

pub fn username_taken(conn: &Connection, username: &str) -> Result<bool, DbError> {
    Ok(conn
        .query_row("SELECT 1 FROM users WHERE username = ?1", [username], |_| Ok(()))
        .optional()?
        .is_some())
}

/// `UserLimit` when `max_users` accounts exist already, `Conflict` when the
/// username or email is taken. Registration asks before it hashes the
/// password, and [`create_account`] again in its transaction.
pub fn check_new_account(conn: &Connection, username: &str, email: &str, max_users: u32) -> Result<(), DbError> {
    if count_registered(conn)? >= i64::from(max_users) {
        return Err(DbError::UserLimit);
    }
    if username_taken(conn, username)? {
        return Err(DbError::Conflict("that username is taken".into()));
    }
    if find_by_email(conn, email)?.is_some() {
        return Err(DbError::Conflict("that email is already registered".into()));
    }
    Ok(())
}

/// Creates a registered account with the `user` role, unless
/// [`check_new_account`] refuses. Call inside an IMMEDIATE transaction so the
/// limit check cannot race.
pub fn create_account(conn: &Connection, account: &NewAccount, max_users: u32) -> Result<UserId, DbError> {
    check_new_account(conn, &account.username, &account.email, max_users)?;
    let (issuer, subject) = account.oidc.clone().unzip();
    conn.execute(
        "INSERT INTO users (username, display_name, email, email_verified, password_hash,
                            oidc_issuer, oidc_subject, needs_username, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            account.username,
            account.display_name,
            account.email,
            account.email_verified,
            account.password_hash,
            issuer,
            subject,
            account.needs_username,
            now_ms()
        ],
    )
    .map_err(|e| DbError::conflict_on_unique(e, "that username or email is taken"))?;
    let id = UserId(conn.last_insert_rowid());
    roles::add_role(conn, id, roles::USER)?;
    Ok(id)
}

/// Creates a guest account with the `guest` role.
pub fn create_guest(conn: &Connection, username: &str, display_name: &str) -> Result<UserId, DbError> {
    conn.execute(
        "INSERT INTO users (username, display_name, is_guest, created_at) VALUES (?1, ?2, 1, ?3)",
        params![username, display_name, now_ms()],
    )
    .map_err(|e| DbError::conflict_on_unique(e, "that guest name is taken"))?;
    let id = UserId(conn.last_insert_rowid());
    roles::add_role(conn, id, roles::GUEST)?;
    Ok(id)
}

pub fn set_username(conn: &Connection, id: UserId, username: &str) -> Result<(), DbError> {
    let changed = conn
        .execute(
            "UPDATE users SET username = ?2, needs_username = 0 WHERE id = ?1",
            params![id, username],
        )
        .map_err(|e| DbError::conflict_on_unique(e, "that username is taken"))?;
    if changed == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// What marking an address verified found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The account has another address now (the link was for an old one).
    NotTheAddress,
    AlreadyVerified,
    /// Verified now, and not before.
    NewlyVerified,
}

/// Marks `email` verified on the account, if it is still the account's address.
pub fn verify_email(conn: &Connection, id: UserId, email: &str) -> Result<Verification, DbError> {
    let was_verified: Option<bool> = conn
        .query_row(
            "SELECT email_verified FROM users WHERE id = ?1 AND email = ?2",
            params![id, email],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match was_verified {
        None => Verification::NotTheAddress,
        Some(true) => Verification::AlreadyVerified,
        Some(false) => {
            conn.execute("UPDATE users SET email_verified = 1 WHERE id = ?1", [id])?;
            Verification::NewlyVerified
        }
    })
}

/// Records the account's first verified address: true the first time only
/// (when the welcome mail is due).
pub fn mark_welcomed(conn: &Connection, id: UserId) -> Result<bool, DbError> {
    let changed = conn.execute(
        "UPDATE users SET welcomed_at = ?2 WHERE id = ?1 AND welcomed_at IS NULL",
        params![id, now_ms()],
    )?;
    Ok(changed == 1)
}

/// Gives the account a new address, unverified until its link is used.
pub fn change_email(conn: &Connection, id: UserId, email: &str) -> Result<(), DbError> {
    let changed = conn
        .execute(
            "UPDATE users SET email = ?2, email_verified = 0 WHERE id = ?1",
            params![id, email],
        )
        .map_err(|e| DbError::conflict_on_unique(e, "that email is already registered"))?;
    if changed == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

pub fn set_display_name(conn: &Connection, id: UserId, display_name: &str) -> Result<(), DbError> {
    match conn.execute(
        "UPDATE users SET display_name = ?2 WHERE id = ?1",
        params![id, display_name],
    )? {
        0 => Err(DbError::NotFound),
        _ => Ok(()),
    }
}

pub fn set_password_hash(conn: &Connection, id: UserId, hash: &str) -> Result<(), DbError> {
    conn.execute("UPDATE users SET password_hash = ?2 WHERE id = ?1", params![id, hash])?;
    Ok(())
}

/// Two-factor state: the active secret, one being set up, the last used step.
#[derive(Debug, Clone, Default)]
pub struct Totp {
    pub secret: Option<String>,
    pub pending: Option<String>,
    pub last_step: Option<i64>,
}

pub fn totp(conn: &Connection, id: UserId) -> Result<Totp, DbError> {
    conn.query_row(
        "SELECT totp_secret, totp_pending, totp_last_step FROM users WHERE id = ?1",
        [id],
        |r| {
            Ok(Totp {
                secret: r.get(0)?,
                pending: r.get(1)?,
                last_step: r.get(2)?,
            })
        },
    )
    .optional()?
    .ok_or(DbError::NotFound)
}

pub fn set_totp_pending(conn: &Connection, id: UserId, secret: &str) -> Result<(), DbError> {
    conn.execute("UPDATE users SET totp_pending = ?2 WHERE id = ?1", params![id, secret])?;
    Ok(())
}

/// Turns the pending secret on, remembering the step its first code used.
pub fn enable_totp(conn: &Connection, id: UserId, step: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE users SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = ?2
         WHERE id = ?1 AND totp_pending IS NOT NULL",
        params![id, step],
    )?;
    Ok(())
}

/// Seals every two-factor secret (active or pending) that is still stored in
/// clear, that is without `sealed_prefix`; the number of accounts changed.
/// Run at start-up: a database from before sealing is brought up to date,
/// and a second run finds nothing to do.
pub fn seal_plain_totp_secrets(
    conn: &mut Connection,
    sealed_prefix: &str,
    seal: impl Fn(&str) -> String,
) -> Result<usize, DbError> {
    let tx = conn.transaction()?;
    let plain: Vec<(UserId, Option<String>, Option<String>)> = {
        let mut stmt = tx.prepare(
            "SELECT id,
                    CASE WHEN substr(totp_secret, 1, length(?1)) <> ?1 THEN totp_secret END,
                    CASE WHEN substr(totp_pending, 1, length(?1)) <> ?1 THEN totp_pending END
             FROM users
             WHERE substr(totp_secret, 1, length(?1)) <> ?1 OR substr(totp_pending, 1, length(?1)) <> ?1",
        )?;
        let rows = stmt.query_map([sealed_prefix], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (id, secret, pending) in &plain {
        if let Some(secret) = secret {
            tx.execute(
                "UPDATE users SET totp_secret = ?2 WHERE id = ?1",
                params![id, seal(secret)],
            )?;
        }
        if let Some(pending) = pending {
            tx.execute(
                "UPDATE users SET totp_pending = ?2 WHERE id = ?1",
                params![id, seal(pending)],
            )?;
        }
    }
    tx.commit()?;
    Ok(plain.len())
}

/// Turns two-factor sign-in off: the secrets and the recovery codes go.
pub fn disable_totp(conn: &Connection, id: UserId) -> Result<(), DbError> {
    conn.execute(
        "UPDATE users SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL WHERE id = ?1",
        [id],
    )?;
    super::recovery_codes::delete_for_user(conn, id)
}

/// Records a used step; false if a code of this step or later was used
/// meanwhile (two sign-ins racing with one code).
pub fn use_totp_step(conn: &Connection, id: UserId, step: i64) -> Result<bool, DbError> {
    let changed = conn.execute(
        "UPDATE users SET totp_last_step = ?2 WHERE id = ?1 AND (totp_last_step IS NULL OR totp_last_step < ?2)",
        params![id, step],
    )?;
    Ok(changed == 1)
}

pub fn record_login(conn: &Connection, id: UserId) -> Result<(), DbError> {
    conn.execute(
        "UPDATE users SET last_login_at = ?2 WHERE id = ?1",
        params![id, now_ms()],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, id: UserId) -> Result<(), DbError> {
    match conn.execute("DELETE FROM users WHERE id = ?1", [id])? {
        0 => Err(DbError::NotFound),
        _ => Ok(()),
    }
}

/// Deletes guest accounts that no login session leads to any more and that
/// are older than `grace_ms`: a guest has no password, so such an account
/// can never be used again. Their messages keep their name.
pub fn purge_abandoned_guests(conn: &Connection, grace_ms: i64) -> Result<usize, DbError> {
    Ok(conn.execute(
        "DELETE FROM users WHERE is_guest = 1 AND created_at < ?1
         AND NOT EXISTS (SELECT 1 FROM sessions WHERE sessions.user_id = users.id)",
        [now_ms() - grace_ms],
    )?)
}

/// A page of users whose username, display name or email contains `q`.
pub fn search(conn: &Connection, q: &str, page: u32, per_page: u32) -> Result<(Vec<User>, i64), DbError> {
    let pattern = super::filter::contains_pattern(q.trim());
    let matches = "username LIKE ?1 ESCAPE '\\' OR display_name LIKE ?1 ESCAPE '\\' OR email LIKE ?1 ESCAPE '\\'";
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM users WHERE {matches}"),
        [&pattern],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE {matches} ORDER BY is_guest, username LIMIT ?2 OFFSET ?3"
    ))?;
    let offset = i64::from(page.max(1) - 1) * i64::from(per_page);
    let rows = stmt
        .query_map(params![pattern, per_page, offset], user_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let users = rows
        .into_iter()
        .map(|u| with_grants(conn, u))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((users, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory;

    fn account(name: &str, email: &str) -> NewAccount {
        NewAccount {
            username: name.into(),
            display_name: name.into(),
            email: email.into(),
            email_verified: false,
            password_hash: Some("$2b$04$x".into()),
            oidc: None,
            needs_username: false,
        }
    }

    #[test]
    fn usernames_are_unique_without_regard_to_case() {
        let conn = memory();
        create_account(&conn, &account("Alice", "a@x.org"), 50).unwrap();
        let err = create_account(&conn, &account("alice", "b@x.org"), 50).unwrap_err();
        assert!(matches!(err, DbError::Conflict(_)));
        let err = create_account(&conn, &account("bob", "a@x.org"), 50).unwrap_err();
        assert!(matches!(err, DbError::Conflict(_)));
    }

    #[test]
    fn the_user_limit_counts_registered_accounts_only() {
        let conn = memory();
        create_guest(&conn, "guest-1", "G").unwrap();
        create_account(&conn, &account("a1", "a1@x.org"), 2).unwrap();
        create_account(&conn, &account("a2", "a2@x.org"), 2).unwrap();
        assert!(matches!(
            create_account(&conn, &account("a3", "a3@x.org"), 2),
            Err(DbError::UserLimit)
        ));
    }

    #[test]
    fn login_finds_by_username_or_email() {
        let conn = memory();
        let id = create_account(&conn, &account("Carol", "carol@x.org"), 50).unwrap();
        assert_eq!(find_credentials(&conn, "carol").unwrap().unwrap().id, id);
        assert_eq!(find_credentials(&conn, " CAROL@x.org ").unwrap().unwrap().id, id);
        assert!(find_credentials(&conn, "nobody").unwrap().is_none());
    }

    #[test]
    fn new_accounts_get_the_user_role() {
        let conn = memory();
        let id = create_account(&conn, &account("dave", "d@x.org"), 50).unwrap();
        let user = get(&conn, id).unwrap();
        assert_eq!(user.roles, vec!["user"]);
        assert!(user.can("rooms.create"));
        assert!(!user.can("admin.users"));
    }

    #[test]
    fn verification_holds_for_the_current_address_and_welcomes_once() {
        let conn = memory();
        let id = create_account(&conn, &account("erin", "erin@x.org"), 50).unwrap();
        assert!(!get(&conn, id).unwrap().email_verified);
        assert_eq!(
            verify_email(&conn, id, "old@x.org").unwrap(),
            Verification::NotTheAddress
        );
        assert_eq!(
            verify_email(&conn, id, "erin@x.org").unwrap(),
            Verification::NewlyVerified
        );
        assert_eq!(
            verify_email(&conn, id, "erin@x.org").unwrap(),
            Verification::AlreadyVerified
        );
        assert!(get(&conn, id).unwrap().email_verified);
        assert!(mark_welcomed(&conn, id).unwrap());
        assert!(!mark_welcomed(&conn, id).unwrap(), "once");
        change_email(&conn, id, "erin@y.org").unwrap();
        let user = get(&conn, id).unwrap();
        assert_eq!(user.email.as_deref(), Some("erin@y.org"));
        assert!(!user.email_verified, "a new address starts unverified");
        create_account(&conn, &account("frank", "frank@x.org"), 50).unwrap();
        assert!(matches!(
            change_email(&conn, id, "frank@x.org"),
            Err(DbError::Conflict(_))
        ));
    }

    #[test]
    fn abandoned_guests_are_purged_after_the_grace() {
        let conn = memory();
        let gone = create_guest(&conn, "guest-gone", "Gone").unwrap();
        let kept = create_guest(&conn, "guest-kept", "Kept").unwrap();
        let member = create_account(&conn, &account("member", "m@x.org"), 50).unwrap();
        let life = crate::db::sessions::Lifetimes {
            idle_ms: 60_000,
            max_ms: 60_000,
        };
        crate::db::sessions::create(&conn, b"h", kept, "127.0.0.1", "", life).unwrap();
        assert_eq!(purge_abandoned_guests(&conn, 3_600_000).unwrap(), 0, "too young");
        conn.execute("UPDATE users SET created_at = 0", []).unwrap();
        assert_eq!(purge_abandoned_guests(&conn, 3_600_000).unwrap(), 1);
        assert!(matches!(get(&conn, gone), Err(DbError::NotFound)));
        assert!(get(&conn, kept).is_ok(), "a guest with a session stays");
        assert!(get(&conn, member).is_ok(), "registered accounts are never purged");
    }

    #[test]
    fn plain_totp_secrets_are_sealed_once() {
        let mut conn = memory();
        let plain = create_account(&conn, &account("plain", "p@x.org"), 50).unwrap();
        let sealed = create_account(&conn, &account("sealed", "s@x.org"), 50).unwrap();
        let none = create_account(&conn, &account("none", "n@x.org"), 50).unwrap();
        conn.execute(
            "UPDATE users SET totp_secret = 'ABC', totp_pending = 'DEF' WHERE id = ?1",
            [plain],
        )
        .unwrap();
        conn.execute("UPDATE users SET totp_secret = 'enc1:xyz' WHERE id = ?1", [sealed])
            .unwrap();
        let seal = |s: &str| format!("enc1:<{s}>");
        assert_eq!(seal_plain_totp_secrets(&mut conn, "enc1:", seal).unwrap(), 1);
        let t = totp(&conn, plain).unwrap();
        assert_eq!(t.secret.as_deref(), Some("enc1:<ABC>"));
        assert_eq!(t.pending.as_deref(), Some("enc1:<DEF>"));
        assert_eq!(totp(&conn, sealed).unwrap().secret.as_deref(), Some("enc1:xyz"));
        assert_eq!(totp(&conn, none).unwrap().secret, None);
        assert_eq!(
            seal_plain_totp_secrets(&mut conn, "enc1:", seal).unwrap(),
            0,
            "idempotent"
        );
    }

    #[test]
    fn search_treats_wildcards_as_text() {
        let conn = memory();
        create_account(&conn, &account("under_score", "u@x.org"), 50).unwrap();
        create_account(&conn, &account("underXscore", "v@x.org"), 50).unwrap();
        let (users, total) = search(&conn, "r_s", 1, 50).unwrap();
        assert_eq!(total, 1);
        assert_eq!(users[0].username, "under_score");
    }
}
