//! The `account_tokens` table: one-time links that verify an address or
//! reset a password. Only a token's hash is stored, with the address the
//! link was made for; a token is deleted when it is used, and a new one of
//! the same purpose replaces the user's older ones.

use rusqlite::{params, Connection, OptionalExtension};

use super::{now_ms, DbError};
use crate::ids::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    VerifyEmail,
    PasswordReset,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::PasswordReset => "password_reset",
        }
    }
}

/// A live token: whose it is and the address it was sent to (or made for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub user_id: UserId,
    pub email: String,
    pub expires_at: i64,
}

/// Stores a token for `user`, valid until `expires_at`, in place of the
/// user's earlier tokens of this purpose.
pub fn replace(
    conn: &Connection,
    purpose: Purpose,
    token_hash: &[u8],
    user: UserId,
    email: &str,
    expires_at: i64,
) -> Result<(), DbError> {
    revoke(conn, user, purpose)?;
    conn.execute(
        "INSERT INTO account_tokens (purpose, token_hash, user_id, email, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![purpose.as_str(), token_hash, user, email, now_ms(), expires_at],
    )?;
    Ok(())
}

/// The live token with this hash, left in place.
pub fn find(conn: &Connection, purpose: Purpose, token_hash: &[u8]) -> Result<Option<TokenRow>, DbError> {
    Ok(conn
        .query_row(
            "SELECT user_id, email, expires_at FROM account_tokens
             WHERE token_hash = ?1 AND purpose = ?2 AND expires_at > ?3",
            params![token_hash, purpose.as_str(), now_ms()],
            |r| {
                Ok(TokenRow {
                    user_id: r.get(0)?,
                    email: r.get(1)?,
                    expires_at: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// Uses the live token with this hash: it is deleted, so only one caller
/// ever gets it.
pub fn take(conn: &Connection, purpose: Purpose, token_hash: &[u8]) -> Result<Option<TokenRow>, DbError> {
    Ok(conn
        .query_row(
            "DELETE FROM account_tokens WHERE token_hash = ?1 AND purpose = ?2 AND expires_at > ?3
             RETURNING user_id, email, expires_at",
            params![token_hash, purpose.as_str(), now_ms()],
            |r| {
                Ok(TokenRow {
                    user_id: r.get(0)?,
                    email: r.get(1)?,
                    expires_at: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// Ends every token of this purpose that `user` holds.
pub fn revoke(conn: &Connection, user: UserId, purpose: Purpose) -> Result<usize, DbError> {
    Ok(conn.execute(
        "DELETE FROM account_tokens WHERE user_id = ?1 AND purpose = ?2",
        params![user, purpose.as_str()],
    )?)
}

pub fn purge_expired(conn: &Connection) -> Result<usize, DbError> {
    Ok(conn.execute("DELETE FROM account_tokens WHERE expires_at <= ?1", [now_ms()])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory;
    use crate::db::users;

    #[test]
    fn a_token_works_once_for_its_own_purpose_and_a_new_one_replaces_it() {
        let conn = memory();
        let user = users::create_guest(&conn, "g-1", "G").unwrap();
        let later = now_ms() + 60_000;
        replace(&conn, Purpose::VerifyEmail, b"first", user, "a@example.org", later).unwrap();
        assert!(find(&conn, Purpose::PasswordReset, b"first").unwrap().is_none());
        replace(&conn, Purpose::VerifyEmail, b"second", user, "a@example.org", later).unwrap();
        assert!(
            take(&conn, Purpose::VerifyEmail, b"first").unwrap().is_none(),
            "replaced"
        );
        let row = take(&conn, Purpose::VerifyEmail, b"second").unwrap().unwrap();
        assert_eq!((row.user_id, row.email.as_str()), (user, "a@example.org"));
        assert!(take(&conn, Purpose::VerifyEmail, b"second").unwrap().is_none(), "used");
    }

    #[test]
    fn an_expired_token_is_refused_and_purged() {
        let conn = memory();
        let user = users::create_guest(&conn, "g-1", "G").unwrap();
        replace(
            &conn,
            Purpose::PasswordReset,
            b"old",
            user,
            "a@example.org",
            now_ms() - 1,
        )
        .unwrap();
        assert!(find(&conn, Purpose::PasswordReset, b"old").unwrap().is_none());
        assert!(take(&conn, Purpose::PasswordReset, b"old").unwrap().is_none());
        assert_eq!(purge_expired(&conn).unwrap(), 1);
    }
}
