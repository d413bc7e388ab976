//! The privilege hierarchy, written once. Every admin handler asks here
//! before it changes anyone's authority or acts on anyone; nothing else
//! decides these questions.
//!
//! - Only an admin acts on an admin: kicks their sessions, moves them, bans
//!   them (by user, or by an address where they hold a session), changes
//!   their roles or deletes them.
//! - Only an admin makes an admin: assigns or removes the `admin` role
//!   (`is_admin` is that role).
//! - Anyone else may assign, remove or delete a role only when they hold every
//!   permission it grants, and grant or revoke only a permission they hold:
//!   nobody hands out more than they have.
//! - The last admin who is not banned stays: no demotion, deletion or ban may
//!   leave the server without one.

use rusqlite::Connection;

use crate::db::roles::{self, Role};
use crate::db::users::User;
use crate::error::ApiError;
use crate::ids::UserId;

/// `Forbidden` unless `actor` holds `permission`. Handlers that re-read the
/// actor inside their transaction check again with the fresh record.
pub fn require(actor: &User, permission: &str) -> Result<(), ApiError> {
    if actor.can(permission) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Only an admin acts on an admin.
pub fn may_act_on(actor: &User, target_is_admin: bool) -> Result<(), ApiError> {
    if target_is_admin && !actor.is_admin {
        return Err(ApiError::Forbidden);
    }
    Ok(())
}

/// Assigning, removing or deleting `role`: the admin role is for admins to
/// hand out; any other only for someone who holds all it grants.
pub fn may_hand_out(actor: &User, role: &Role) -> Result<(), ApiError> {
    if actor.is_admin {
        return Ok(());
    }
    if role.name == roles::ADMIN || !role.permissions.iter().all(|p| actor.can(p)) {
        return Err(ApiError::Forbidden);
    }
    Ok(())
}

/// Granting `permission` to a role, or revoking it: only by a holder.
pub fn may_grant(actor: &User, permission: &str) -> Result<(), ApiError> {
    require(actor, permission)
}

/// A non-admin's IP ban may not reach an admin: `holders` are the users with
/// a live socket or a login session in the banned scope.
pub fn may_ban_address(conn: &Connection, actor: &User, holders: &[UserId]) -> Result<(), ApiError> {
    if actor.is_admin {
        return Ok(());
    }
    may_act_on(actor, roles::any_admin(conn, holders)?)
}

/// Call inside the transaction, after a demotion, deletion or ban of an
/// admin: `Conflict(refusal)` when no unbanned admin would be left (two
/// admins acting on each other at once cannot both succeed).
pub fn keep_an_admin(conn: &Connection, refusal: &str) -> Result<(), ApiError> {
    if roles::count_unbanned_admins(conn)? == 0 {
        return Err(ApiError::Conflict(refusal.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory;
    use crate::db::{bans, users};

    fn actor(permissions: &[&str], is_admin: bool) -> User {
        User {
            id: UserId(99),
            username: "actor".into(),
            display_name: "actor".into(),
            email: None,
            email_verified: false,
            avatar_url: None,
            is_admin,
            roles: Vec::new(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            guest: false,
            totp_enabled: false,
            created_at: chrono::DateTime::default(),
            needs_username: false,
        }
    }

    fn role(name: &str, permissions: &[&str]) -> Role {
        Role {
            id: 1,
            name: name.into(),
            builtin: false,
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    #[test]
    fn only_admins_act_on_admins() {
        let deputy = actor(&["admin.users", "sessions.kick", "bans.manage"], false);
        assert!(may_act_on(&deputy, false).is_ok());
        assert!(matches!(may_act_on(&deputy, true), Err(ApiError::Forbidden)));
        assert!(may_act_on(&actor(&[], true), true).is_ok());
    }

    #[test]
    fn nobody_hands_out_more_than_they_hold() {
        let deputy = actor(&["admin.roles", "sessions.kick"], false);
        assert!(may_hand_out(&deputy, &role("kickers", &["sessions.kick"])).is_ok());
        assert!(may_hand_out(&deputy, &role("empty", &[])).is_ok());
        assert!(may_hand_out(&deputy, &role("banners", &["sessions.kick", "bans.manage"])).is_err());
        assert!(
            may_hand_out(&deputy, &role(roles::ADMIN, &[])).is_err(),
            "admin is for admins"
        );
        assert!(may_grant(&deputy, "sessions.kick").is_ok());
        assert!(may_grant(&deputy, "admin.logs").is_err());
        let admin = actor(&[], true);
        assert!(may_hand_out(&admin, &role(roles::ADMIN, &[])).is_ok());
        assert!(may_grant(&admin, "anything.at.all").is_ok());
    }

    #[test]
    fn the_last_unbanned_admin_stays() {
        let conn = memory();
        let first = users::create_guest(&conn, "first", "F").unwrap();
        let second = users::create_guest(&conn, "second", "S").unwrap();
        assert!(matches!(keep_an_admin(&conn, "no"), Err(ApiError::Conflict(_))));
        roles::add_role(&conn, first, roles::ADMIN).unwrap();
        roles::add_role(&conn, second, roles::ADMIN).unwrap();
        assert!(keep_an_admin(&conn, "no").is_ok());
        for banned in [first, second] {
            bans::create(
                &conn,
                &bans::NewBan {
                    user_id: Some(banned),
                    ip: None,
                    reason: "test".into(),
                    expires_at: None,
                    created_by: first,
                },
            )
            .unwrap();
        }
        assert!(
            matches!(keep_an_admin(&conn, "no"), Err(ApiError::Conflict(_))),
            "banned admins cannot manage the server"
        );
    }

    #[test]
    fn an_address_ban_by_a_non_admin_spares_admins() {
        let conn = memory();
        let admin = users::create_guest(&conn, "boss", "B").unwrap();
        let plain = users::create_guest(&conn, "plain", "P").unwrap();
        roles::add_role(&conn, admin, roles::ADMIN).unwrap();
        let deputy = actor(&["bans.manage"], false);
        assert!(may_ban_address(&conn, &deputy, &[plain]).is_ok());
        assert!(may_ban_address(&conn, &deputy, &[plain, admin]).is_err());
        assert!(may_ban_address(&conn, &actor(&[], true), &[admin]).is_ok());
    }
}
