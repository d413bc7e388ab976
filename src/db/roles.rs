//! Roles, permissions and their links to users. The built-in `admin` role
//! holds every permission, including ones created after it.

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::DbError;
use crate::ids::UserId;

pub const ADMIN: &str = "admin";
pub const MODERATOR: &str = "moderator";
pub const USER: &str = "user";
pub const GUEST: &str = "guest";

/// What a user may do: role names and the union of their permissions.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub is_admin: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Role {
    pub id: i64,
    pub name: String,
    pub builtin: bool,
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Permission {
    pub id: i64,
    pub name: String,
    pub builtin: bool,
}

pub fn grants_of(conn: &Connection, user: UserId) -> Result<Grants, DbError> {
    let roles = strings(
        conn,
        "SELECT r.name FROM roles r JOIN user_roles ur ON ur.role_id = r.id WHERE ur.user_id = ?1 ORDER BY r.name",
        params![user],
    )?;
    let is_admin = roles.iter().any(|r| r == ADMIN);
    let permissions = if is_admin {
        strings(conn, "SELECT name FROM permissions ORDER BY name", [])?
    } else {
        strings(
            conn,
            "SELECT DISTINCT p.name FROM permissions p
             JOIN role_permissions rp ON rp.permission_id = p.id
             JOIN user_roles ur ON ur.role_id = rp.role_id
             WHERE ur.user_id = ?1 ORDER BY p.name",
            params![user],
        )?
    };
    Ok(Grants {
        roles,
        permissions,
        is_admin,
    })
}

fn strings(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<String>, DbError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn role_id(conn: &Connection, name: &str) -> Result<i64, DbError> {
    conn.query_row("SELECT id FROM roles WHERE name = ?1", [name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| DbError::Invalid(format!("there is no role named {name:?}")))
}

pub fn add_role(conn: &Connection, user: UserId, role: &str) -> Result<(), DbError> {
    let role = role_id(conn, role)?;
    conn.execute(
        "INSERT OR IGNORE INTO user_roles (user_id, role_id) VALUES (?1, ?2)",
        params![user, role],
    )?;
    Ok(())
}

pub fn remove_role(conn: &Connection, user: UserId, role: &str) -> Result<(), DbError> {
    let role = role_id(conn, role)?;
    conn.execute(
        "DELETE FROM user_roles WHERE user_id = ?1 AND role_id = ?2",
        params![user, role],
    )?;
    Ok(())
}

/// Replaces the user's roles with exactly `names`; unknown names are invalid.
pub fn set_roles(conn: &Connection, user: UserId, names: &[String]) -> Result<(), DbError> {
    let ids = names.iter().map(|n| role_id(conn, n)).collect::<Result<Vec<_>, _>>()?;
    conn.execute("DELETE FROM user_roles WHERE user_id = ?1", [user])?;
    for id in ids {
        conn.execute(
            "INSERT OR IGNORE INTO user_roles (user_id, role_id) VALUES (?1, ?2)",
            params![user, id],
        )?;
    }
    Ok(())
}

/// Admins that no active user ban keeps out: the ones who can still manage
/// the server.
pub fn count_unbanned_admins(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn.query_row(
        "SELECT count(*) FROM user_roles ur JOIN roles r ON r.id = ur.role_id
         WHERE r.name = ?1 AND NOT EXISTS (
             SELECT 1 FROM bans b WHERE b.user_id = ur.user_id
             AND b.lifted_at IS NULL AND (b.expires_at IS NULL OR b.expires_at > ?2))",
        params![ADMIN, super::now_ms()],
        |r| r.get(0),
    )?)
}

/// True when any of `users` holds the admin role.
pub fn any_admin(conn: &Connection, users: &[UserId]) -> Result<bool, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM user_roles ur JOIN roles r ON r.id = ur.role_id
         WHERE r.name = ?1 AND ur.user_id = ?2)",
    )?;
    for user in users {
        if stmt.query_row(params![ADMIN, user], |r| r.get::<_, bool>(0))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The users who hold a role: their authority changes with it.
pub fn holders(conn: &Connection, role: i64) -> Result<Vec<UserId>, DbError> {
    let mut stmt = conn.prepare_cached("SELECT user_id FROM user_roles WHERE role_id = ?1 ORDER BY user_id")?;
    let rows = stmt.query_map([role], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn list_roles(conn: &Connection) -> Result<Vec<Role>, DbError> {
    let mut stmt = conn.prepare("SELECT id, name, builtin FROM roles ORDER BY builtin DESC, name")?;
    let roles = stmt
        .query_map([], |r| {
            Ok(Role {
                id: r.get(0)?,
                name: r.get(1)?,
                builtin: r.get(2)?,
                permissions: Vec::new(),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    roles.into_iter().map(|role| with_permissions(conn, role)).collect()
}

fn with_permissions(conn: &Connection, mut role: Role) -> Result<Role, DbError> {
    role.permissions = if role.name == ADMIN {
        strings(conn, "SELECT name FROM permissions ORDER BY name", [])?
    } else {
        strings(
            conn,
            "SELECT p.name FROM permissions p JOIN role_permissions rp ON rp.permission_id = p.id
             WHERE rp.role_id = ?1 ORDER BY p.name",
            [role.id],
        )?
    };
    Ok(role)
}

/// The role named `name` (any case); an unknown name is invalid.
pub fn role_named(conn: &Connection, name: &str) -> Result<Role, DbError> {
    get_role(conn, role_id(conn, name)?)
}

pub fn get_role(conn: &Connection, id: i64) -> Result<Role, DbError> {
    let role = conn
        .query_row("SELECT id, name, builtin FROM roles WHERE id = ?1", [id], |r| {
            Ok(Role {
                id: r.get(0)?,
                name: r.get(1)?,
                builtin: r.get(2)?,
                permissions: Vec::new(),
            })
        })
        .optional()?
        .ok_or(DbError::NotFound)?;
    with_permissions(conn, role)
}

pub fn create_role(conn: &Connection, name: &str) -> Result<Role, DbError> {
    conn.execute("INSERT INTO roles (name) VALUES (?1)", [name])
        .map_err(|e| DbError::conflict_on_unique(e, "a role with that name exists"))?;
    get_role(conn, conn.last_insert_rowid())
}

/// Deletes a role made by an admin; built-in roles stay.
pub fn delete_role(conn: &Connection, id: i64) -> Result<Role, DbError> {
    let role = get_role(conn, id)?;
    if role.builtin {
        return Err(DbError::Conflict("built-in roles cannot be deleted".into()));
    }
    conn.execute("DELETE FROM roles WHERE id = ?1", [id])?;
    Ok(role)
}

pub fn list_permissions(conn: &Connection) -> Result<Vec<Permission>, DbError> {
    let mut stmt = conn.prepare("SELECT id, name, builtin FROM permissions ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok(Permission {
            id: r.get(0)?,
            name: r.get(1)?,
            builtin: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn create_permission(conn: &Connection, name: &str) -> Result<Permission, DbError> {
    conn.execute("INSERT INTO permissions (name) VALUES (?1)", [name])
        .map_err(|e| DbError::conflict_on_unique(e, "a permission with that name exists"))?;
    Ok(Permission {
        id: conn.last_insert_rowid(),
        name: name.to_owned(),
        builtin: false,
    })
}

/// Gives `permission` to the role. The admin role has every permission already.
pub fn grant(conn: &Connection, role: i64, permission: &str) -> Result<Role, DbError> {
    let target = get_role(conn, role)?;
    let permission_id: i64 = conn
        .query_row("SELECT id FROM permissions WHERE name = ?1", [permission], |r| r.get(0))
        .optional()?
        .ok_or_else(|| DbError::Invalid(format!("there is no permission named {permission:?}")))?;
    if target.name != ADMIN {
        conn.execute(
            "INSERT OR IGNORE INTO role_permissions (role_id, permission_id) VALUES (?1, ?2)",
            params![role, permission_id],
        )?;
    }
    get_role(conn, role)
}

/// Takes `permission` away from the role.
pub fn revoke(conn: &Connection, role: i64, permission: &str) -> Result<Role, DbError> {
    let target = get_role(conn, role)?;
    if target.name == ADMIN {
        return Err(DbError::Conflict("the admin role always holds every permission".into()));
    }
    conn.execute(
        "DELETE FROM role_permissions WHERE role_id = ?1
         AND permission_id = (SELECT id FROM permissions WHERE name = ?2)",
        params![role, permission],
    )?;
    get_role(conn, role)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing::memory;
    use crate::db::users;

    #[test]
    fn admin_holds_permissions_created_later() {
        let conn = memory();
        let id = users::create_guest(&conn, "g-1", "G").unwrap();
        add_role(&conn, id, ADMIN).unwrap();
        create_permission(&conn, "reports.view").unwrap();
        let grants = grants_of(&conn, id).unwrap();
        assert!(grants.is_admin);
        assert!(grants.permissions.contains(&"reports.view".to_owned()));
    }

    #[test]
    fn custom_roles_grant_and_revoke() {
        let conn = memory();
        let role = create_role(&conn, "helpers").unwrap();
        let role = grant(&conn, role.id, "sessions.kick").unwrap();
        assert_eq!(role.permissions, vec!["sessions.kick"]);
        let id = users::create_guest(&conn, "g-2", "G").unwrap();
        add_role(&conn, id, "helpers").unwrap();
        assert!(grants_of(&conn, id)
            .unwrap()
            .permissions
            .contains(&"sessions.kick".to_owned()));
        assert!(revoke(&conn, role.id, "sessions.kick").unwrap().permissions.is_empty());
        assert!(matches!(grant(&conn, role.id, "nope"), Err(DbError::Invalid(_))));
    }

    #[test]
    fn builtin_roles_cannot_be_deleted() {
        let conn = memory();
        let admin = list_roles(&conn)
            .unwrap()
            .into_iter()
            .find(|r| r.name == ADMIN)
            .unwrap();
        assert!(matches!(delete_role(&conn, admin.id), Err(DbError::Conflict(_))));
        let extra = create_role(&conn, "temp").unwrap();
        assert_eq!(delete_role(&conn, extra.id).unwrap().name, "temp");
    }

    #[test]
    fn moderators_kick_and_move_but_do_not_ban() {
        let conn = memory();
        let moderator = list_roles(&conn)
            .unwrap()
            .into_iter()
            .find(|r| r.name == MODERATOR)
            .unwrap();
        assert!(moderator.permissions.contains(&"sessions.kick".to_owned()));
        assert!(moderator.permissions.contains(&"sessions.move".to_owned()));
        assert!(!moderator.permissions.contains(&"bans.manage".to_owned()));
    }
}
