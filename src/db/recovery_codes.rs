//! The `recovery_codes` table: the hashes of a user's unused two-factor
//! recovery codes (auth::recovery says how they are made and hashed). A code
//! is deleted when it is used, so it works once.

use rusqlite::{params, Connection};

use super::DbError;
use crate::ids::UserId;

/// Puts a new set in place of the user's codes: the old ones stop working.
pub fn replace(conn: &Connection, user: UserId, hashes: &[Vec<u8>]) -> Result<(), DbError> {
    delete_for_user(conn, user)?;
    let mut insert = conn.prepare_cached("INSERT INTO recovery_codes (user_id, code_hash) VALUES (?1, ?2)")?;
    for hash in hashes {
        insert.execute(params![user, hash])?;
    }
    Ok(())
}

/// Uses up the code with this hash: true when it was one of the user's
/// unused codes. Two sign-ins racing with one code cannot both succeed.
pub fn consume(conn: &Connection, user: UserId, hash: &[u8]) -> Result<bool, DbError> {
    let deleted = conn.execute(
        "DELETE FROM recovery_codes WHERE user_id = ?1 AND code_hash = ?2",
        params![user, hash],
    )?;
    Ok(deleted == 1)
}

/// How many unused codes the user has.
pub fn remaining(conn: &Connection, user: UserId) -> Result<i64, DbError> {
    Ok(
        conn.query_row("SELECT count(*) FROM recovery_codes WHERE user_id = ?1", [user], |r| {
            r.get(0)
        })?,
    )
}

pub fn delete_for_user(conn: &Connection, user: UserId) -> Result<(), DbError> {
    conn.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [user])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{testing::memory, users};

    #[test]
    fn a_code_works_once_and_a_new_set_replaces_the_old() {
        let conn = memory();
        let ann = users::create_guest(&conn, "ann", "Ann").unwrap();
        let bob = users::create_guest(&conn, "bob", "Bob").unwrap();
        replace(&conn, ann, &[b"a1".to_vec(), b"a2".to_vec()]).unwrap();
        replace(&conn, bob, &[b"a1".to_vec()]).unwrap();
        assert_eq!(remaining(&conn, ann).unwrap(), 2);
        assert!(consume(&conn, ann, b"a1").unwrap());
        assert!(!consume(&conn, ann, b"a1").unwrap(), "used up");
        assert!(!consume(&conn, ann, b"zz").unwrap());
        assert_eq!(remaining(&conn, bob).unwrap(), 1, "another user's codes are their own");
        replace(&conn, ann, &[b"a3".to_vec()]).unwrap();
        assert!(!consume(&conn, ann, b"a2").unwrap(), "the old set is gone");
        assert!(consume(&conn, ann, b"a3").unwrap());
        users::delete(&conn, bob).unwrap();
        assert_eq!(remaining(&conn, bob).unwrap(), 0, "deleted with the account");
    }
}
