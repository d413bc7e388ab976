//! Who may do what to whom. The authorisation matrix runs every admin
//! endpoint and the WebSocket admin action as each built-in role and a
//! custom one, against a plain target and an admin target, and compares
//! every status with the policy written out below. Then the rules the matrix
//! cannot show in one cell: the last admin, and authority that changes
//! while a socket is open.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_client_error, assert_error, Api, Server, Ws};
use reqwest::Method;
use serde_json::json;
use serde_json::Value;

#[tokio::test]
async fn moving_a_session_to_an_unknown_room_is_404() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut ann = Ws::connect(&server.user("ann").await).await;
    ann.join("lobby").await;
    let path = format!("/api/admin/sessions/{}/move", ann.sid());
    let (status, body) = admin.post(&path, json!({"room": "no-such-room"})).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = admin
        .post("/api/admin/sessions/no-such-sid/move", json!({"room": "lobby"}))
        .await;
    assert_error(status, &body, 404, "not_found");
}

/// Every built-in permission but the admin role itself.
const EVERY_PERMISSION: &[&str] = &[
    "admin.users",
    "admin.roles",
    "admin.logs",
    "admin.messages",
    "sessions.view",
    "sessions.kick",
    "sessions.move",
    "bans.manage",
    "rooms.create",
];

#[tokio::test]
async fn the_last_admin_can_be_neither_demoted_deleted_nor_banned() {
    let server = Server::start_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let mut admin = server.admin().await;
    let admin_id = admin.me().await["id"].as_i64().unwrap();
    // The admin also has a login session at an address with no socket on it.
    let mut elsewhere = server.client_from("198.51.100.20");
    let (status, body) = elsewhere
        .post(
            "/api/auth/login",
            json!({"login": "admin", "password": common::PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // A deputy holding every permission, but not the admin role, cannot
    // remove the only admin by any route.
    let (_, role) = admin.post("/api/admin/roles", json!({"name": "everything"})).await;
    for permission in EVERY_PERMISSION {
        let path = format!("/api/admin/roles/{}/permissions", role["id"]);
        let (status, body) = admin.post(&path, json!({"permission": permission})).await;
        assert_eq!(status, 200, "{body}");
    }
    let mut deputy = server.user("deputy").await;
    let deputy_id = deputy.me().await["id"].as_i64().unwrap();
    let (status, body) = admin
        .patch(
            &format!("/api/admin/users/{deputy_id}"),
            json!({"roles": ["everything"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let admin_path = format!("/api/admin/users/{admin_id}");
    let (status, body) = deputy.delete(&admin_path).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = deputy.patch(&admin_path, json!({"is_admin": false})).await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = deputy.patch(&admin_path, json!({"roles": ["user"]})).await;
    assert_error(status, &body, 403, "forbidden");
    for ban in [
        json!({"user_id": admin_id, "reason": "coup"}),
        json!({"ip": "198.51.100.20", "reason": "coup"}),
    ] {
        let (status, body) = deputy.post("/api/admin/bans", ban).await;
        assert_error(status, &body, 403, "forbidden");
    }
    assert_eq!(elsewhere.me().await["is_admin"], true, "the admin's sessions survived");

    // The admin cannot step down while nobody else could manage the server.
    let (status, body) = admin.patch(&admin_path, json!({"is_admin": false})).await;
    assert_error(status, &body, 409, "conflict");
    let (status, body) = admin.patch(&admin_path, json!({"roles": ["user"]})).await;
    assert_error(status, &body, 409, "conflict");

    // A banned admin cannot manage the server either, so it does not count.
    let mut second = server.user("second").await;
    let second_id = second.me().await["id"].as_i64().unwrap();
    let (status, body) = admin
        .patch(&format!("/api/admin/users/{second_id}"), json!({"is_admin": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, ban) = admin
        .post("/api/admin/bans", json!({"user_id": second_id, "reason": "away"}))
        .await;
    assert_eq!(status, 201, "{ban}");
    let (status, body) = admin.patch(&admin_path, json!({"is_admin": false})).await;
    assert_error(status, &body, 409, "conflict");
    let (status, body) = admin.delete(&format!("/api/admin/bans/{}", ban["id"])).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = admin.patch(&admin_path, json!({"is_admin": false})).await;
    assert_eq!(status, 200, "with an unbanned admin left, stepping down works: {body}");
    assert_eq!(body["user"]["is_admin"], false);
}

/// Long enough that a frame the server meant to send would have arrived.
const SILENCE: std::time::Duration = std::time::Duration::from_secs(3);

/// A socket of `api` watching the live sessions, past its snapshot.
async fn watching(api: &Api) -> Ws {
    let mut ws = Ws::connect(api).await;
    ws.send(json!({"type": "admin_watch"})).await;
    ws.next_of("sessions").await;
    ws
}

/// After a change of authority the watcher is told, in either order, its
/// fresh `user` record and that it may no longer watch. Session events sent
/// before the change (its own connection, say) may come first; none after
/// the notice.
async fn told_it_may_no_longer_watch(watcher: &mut Ws) -> Value {
    let (mut user, mut forbidden) = (None, false);
    while user.is_none() || !forbidden {
        let frame = watcher.next().await;
        match frame["type"].as_str() {
            Some("user") => user = Some(frame["user"].clone()),
            Some("error") => {
                assert_eq!(frame["code"], "forbidden", "{frame}");
                forbidden = true;
            }
            Some("session_update" | "session_gone") if !forbidden => {}
            _ => panic!("unexpected frame after losing sessions.view: {frame}"),
        }
    }
    let user = user.unwrap();
    assert!(
        !user["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "sessions.view"),
        "{user}"
    );
    user
}

/// Someone connects; once the admin's own watcher has seen it, the registry
/// has published it, so a watcher still subscribed would have it too.
async fn a_session_changes(server: &Server, name: &str, admin_watcher: &mut Ws) -> Ws {
    let newcomer = Ws::connect(&server.user(name).await).await;
    loop {
        let update = admin_watcher.next_of("session_update").await;
        if update["session"]["sid"] == newcomer.sid().as_str() {
            return newcomer;
        }
    }
}

#[tokio::test]
async fn a_watcher_that_loses_sessions_view_stops_receiving_at_once() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut admin_watcher = watching(&admin).await;
    let (_, roles) = admin.get("/api/admin/roles").await;
    let role_id = |name: &str| {
        roles["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let moderator = role_id("moderator");
    let (_, lookouts) = admin.post("/api/admin/roles", json!({"name": "lookouts"})).await;
    let (status, body) = admin
        .post(
            &format!("/api/admin/roles/{}/permissions", lookouts["id"]),
            json!({"permission": "sessions.view"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Three watchers, each about to lose sessions.view another way.
    let mut accounts = Vec::new();
    for (name, role) in [
        ("demoted", "moderator"),
        ("revoked", "moderator"),
        ("orphaned", "lookouts"),
    ] {
        let mut api = server.user(name).await;
        let id = api.me().await["id"].as_i64().unwrap();
        let (status, body) = admin
            .patch(&format!("/api/admin/users/{id}"), json!({"roles": ["user", role]}))
            .await;
        assert_eq!(status, 200, "{body}");
        accounts.push((api, id));
    }

    // 1. Its role is taken away.
    let mut watcher = watching(&accounts[0].0).await;
    let (status, body) = admin
        .patch(
            &format!("/api/admin/users/{}", accounts[0].1),
            json!({"roles": ["user"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let user = told_it_may_no_longer_watch(&mut watcher).await;
    assert_eq!(user["roles"], json!(["user"]));
    let _newcomer = a_session_changes(&server, "newcomer-1", &mut admin_watcher).await;
    assert!(watcher.quiet_for(SILENCE).await, "a demoted watcher still receives");

    // 2. The permission is revoked from the role it holds.
    let mut watcher = watching(&accounts[1].0).await;
    let (status, body) = admin
        .delete(&format!("/api/admin/roles/{moderator}/permissions/sessions.view"))
        .await;
    assert_eq!(status, 200, "{body}");
    let user = told_it_may_no_longer_watch(&mut watcher).await;
    assert_eq!(user["roles"], json!(["moderator", "user"]), "still a moderator");
    let _newcomer = a_session_changes(&server, "newcomer-2", &mut admin_watcher).await;
    assert!(
        watcher.quiet_for(SILENCE).await,
        "a watcher whose role lost the permission still receives"
    );

    // 3. The role that gave it is deleted.
    let mut watcher = watching(&accounts[2].0).await;
    let (status, body) = admin.delete(&format!("/api/admin/roles/{}", lookouts["id"])).await;
    assert_eq!(status, 204, "{body}");
    let user = told_it_may_no_longer_watch(&mut watcher).await;
    assert_eq!(user["roles"], json!(["user"]));
    let _newcomer = a_session_changes(&server, "newcomer-3", &mut admin_watcher).await;
    assert!(
        watcher.quiet_for(SILENCE).await,
        "a watcher whose role was deleted still receives"
    );
}

#[tokio::test]
async fn a_promotion_reaches_the_live_socket() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut ann = server.user("ann").await;
    let id = ann.me().await["id"].as_i64().unwrap();
    let mut socket = Ws::connect(&ann).await;
    let (status, body) = admin
        .patch(&format!("/api/admin/users/{id}"), json!({"is_admin": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    let frame = socket.next_of("user").await;
    assert_eq!(frame["user"]["is_admin"], true);
    assert_eq!(frame["user"]["id"], id);
    // The socket acts on it at once: it may watch now.
    socket.send(json!({"type": "admin_watch"})).await;
    socket.next_of("sessions").await;
}

// ---------------------------------------------------------------------------
// The authorisation matrix
// ---------------------------------------------------------------------------

/// Who runs each cell; each row's expectations are in this order.
#[derive(Debug, Clone, Copy)]
enum Actor {
    Admin,
    Moderator,
    User,
    Guest,
    /// A custom role holding some admin permissions: [`DEPUTY_PERMISSIONS`].
    Deputy,
}

const ACTORS: [Actor; 5] = [Actor::Admin, Actor::Moderator, Actor::User, Actor::Guest, Actor::Deputy];

/// The custom role's permissions: enough to try every escalation the
/// hierarchy forbids, not enough for moves, logs or the message log.
const DEPUTY_PERMISSIONS: &[&str] = &[
    "admin.users",
    "admin.roles",
    "bans.manage",
    "sessions.kick",
    "sessions.view",
];

/// Whom a cell acts on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum On {
    Nobody,
    /// A fresh account with the `user` role and a live socket in the lobby.
    Plain,
    /// A fresh admin with a live socket in the lobby.
    Admin,
    /// The actor's own account.
    Itself,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    ListSessions,
    /// WebSocket `admin_watch`: 200 for the `sessions` snapshot, 403 for `error forbidden`.
    WatchSessions,
    KickSession,
    MoveSession,
    MoveToUnknownRoom,
    KickUser,
    /// Server mute of the target's live session.
    MuteSession,
    /// Server deafen of the target's live session.
    DeafenSession,
    ListBans,
    BanUser,
    /// A ban on the target's address, where it holds a live socket and a login session.
    BanAddress,
    LiftBan,
    ListUsers,
    ShowUser,
    MakeAdmin,
    Demote,
    /// `roles`: the target keeps `user` and gains the cell's deputy role.
    GiveDeputyRole,
    GiveModeratorRole,
    GiveAdminRole,
    /// `roles: ["user"]`, which takes `admin` from an admin target.
    SetPlainRoles,
    DeleteUser,
    /// Turns off the target's two-factor sign-in (turned on first).
    DisableTotp,
    ListRoles,
    CreateRole,
    /// Deletes a fresh role holding only `sessions.kick` (the deputy holds it).
    DeleteRoleWithin,
    /// Deletes a fresh role holding `admin.logs` (the deputy lacks it).
    DeleteRoleBeyond,
    /// Grants `sessions.kick` to a fresh role.
    GrantHeld,
    /// Grants `admin.logs` to the cell's deputy role: the deputy's own.
    GrantLackedToDeputyRole,
    /// Revokes `sessions.kick` from a fresh role holding it.
    RevokeHeld,
    /// Revokes `admin.logs` from a fresh role holding it.
    RevokeLacked,
    ListPermissions,
    CreatePermission,
    ReadLogs,
    ReadMessages,
    /// `POST /api/admin/users`: a new account with a link to choose a password.
    CreateUser,
    /// A one-time reset link to hand over to the target.
    ResetLink,
    ListInvites,
    CreateInvite,
    /// Revokes a fresh invitation.
    RevokeInvite,
}

struct Row {
    action: Action,
    on: On,
    /// admin, moderator, user, guest, deputy
    expect: [u16; 5],
}

const fn row(action: Action, on: On, expect: [u16; 5]) -> Row {
    Row { action, on, expect }
}

use Action::*;

/// The policy. Every admin endpoint and the WebSocket admin action, as each
/// role, against a plain target and an admin target where there is one.
#[rustfmt::skip]
const MATRIX: &[Row] = &[
    //                                        admin  mod user guest deputy
    row(ListSessions,            On::Nobody, [200, 200, 403, 403, 200]),
    row(WatchSessions,           On::Nobody, [200, 200, 403, 403, 200]),
    row(KickSession,             On::Plain,  [204, 204, 403, 403, 204]),
    row(KickSession,             On::Admin,  [204, 403, 403, 403, 403]),
    row(MoveSession,             On::Plain,  [204, 204, 403, 403, 403]),
    row(MoveSession,             On::Admin,  [204, 403, 403, 403, 403]),
    row(MoveToUnknownRoom,       On::Plain,  [404, 404, 403, 403, 403]),
    row(KickUser,                On::Plain,  [204, 204, 403, 403, 204]),
    row(KickUser,                On::Admin,  [204, 403, 403, 403, 403]),
    row(MuteSession,             On::Plain,  [204, 204, 403, 403, 403]),
    row(MuteSession,             On::Admin,  [204, 403, 403, 403, 403]),
    row(DeafenSession,           On::Plain,  [204, 204, 403, 403, 403]),
    row(DeafenSession,           On::Admin,  [204, 403, 403, 403, 403]),
    row(ListBans,                On::Nobody, [200, 403, 403, 403, 200]),
    row(BanUser,                 On::Plain,  [201, 403, 403, 403, 201]),
    // Escalation: a bans.manage holder banning an admin.
    row(BanUser,                 On::Admin,  [201, 403, 403, 403, 403]),
    row(BanAddress,              On::Plain,  [201, 403, 403, 403, 201]),
    row(BanAddress,              On::Admin,  [201, 403, 403, 403, 403]),
    row(LiftBan,                 On::Nobody, [204, 403, 403, 403, 204]),
    row(ListUsers,               On::Nobody, [200, 403, 403, 403, 200]),
    row(ShowUser,                On::Plain,  [200, 403, 403, 403, 200]),
    row(ShowUser,                On::Admin,  [200, 403, 403, 403, 200]),
    row(MakeAdmin,               On::Plain,  [200, 403, 403, 403, 403]),
    // Escalation: an admin.users holder making itself an admin.
    row(MakeAdmin,               On::Itself, [200, 403, 403, 403, 403]),
    row(Demote,                  On::Admin,  [200, 403, 403, 403, 403]),
    row(GiveDeputyRole,          On::Plain,  [200, 403, 403, 403, 200]),
    row(GiveDeputyRole,          On::Admin,  [200, 403, 403, 403, 403]),
    row(GiveModeratorRole,       On::Plain,  [200, 403, 403, 403, 403]),
    row(GiveAdminRole,           On::Plain,  [200, 403, 403, 403, 403]),
    row(GiveAdminRole,           On::Itself, [200, 403, 403, 403, 403]),
    row(SetPlainRoles,           On::Admin,  [200, 403, 403, 403, 403]),
    row(DeleteUser,              On::Plain,  [204, 403, 403, 403, 204]),
    // Escalation: deleting an admin (it also skipped the last-admin check).
    row(DeleteUser,              On::Admin,  [204, 403, 403, 403, 403]),
    row(DisableTotp,             On::Plain,  [200, 403, 403, 403, 200]),
    row(DisableTotp,             On::Admin,  [200, 403, 403, 403, 403]),
    row(ListRoles,               On::Nobody, [200, 403, 403, 403, 200]),
    row(CreateRole,              On::Nobody, [201, 403, 403, 403, 201]),
    row(DeleteRoleWithin,        On::Nobody, [204, 403, 403, 403, 204]),
    row(DeleteRoleBeyond,        On::Nobody, [204, 403, 403, 403, 403]),
    row(GrantHeld,               On::Nobody, [200, 403, 403, 403, 200]),
    // Escalation: an admin.roles holder granting its own role a permission it lacks.
    row(GrantLackedToDeputyRole, On::Nobody, [200, 403, 403, 403, 403]),
    row(RevokeHeld,              On::Nobody, [200, 403, 403, 403, 200]),
    row(RevokeLacked,            On::Nobody, [200, 403, 403, 403, 403]),
    row(ListPermissions,         On::Nobody, [200, 403, 403, 403, 200]),
    row(CreatePermission,        On::Nobody, [201, 403, 403, 403, 201]),
    row(ReadLogs,                On::Nobody, [200, 403, 403, 403, 403]),
    row(ReadMessages,            On::Nobody, [200, 403, 403, 403, 403]),
    row(CreateUser,              On::Nobody, [201, 403, 403, 403, 201]),
    row(ResetLink,               On::Plain,  [200, 403, 403, 403, 200]),
    // Escalation: an admin.users holder taking over an admin by a reset link.
    row(ResetLink,               On::Admin,  [200, 403, 403, 403, 403]),
    row(ListInvites,             On::Nobody, [200, 403, 403, 403, 200]),
    row(CreateInvite,            On::Nobody, [201, 403, 403, 403, 201]),
    row(RevokeInvite,            On::Nobody, [204, 403, 403, 403, 204]),
];

/// Everything one cell needs, made fresh so no cell sees another's effects.
struct Cell {
    n: usize,
    actor: Api,
    actor_id: i64,
    /// The cell's custom role (`deputy-N`); the deputy actor holds it.
    deputy_role: Value,
    target: Option<Target>,
}

struct Target {
    id: i64,
    ip: String,
    socket: Ws,
    api: Api,
}

struct Matrix {
    server: Server,
    root: Api,
    cells: usize,
}

impl Matrix {
    async fn start() -> Matrix {
        let server = Server::start_with(&[
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("MAX_USERS", "100000"),
            ("GUEST_RATE_PER_MIN", "0"),
            ("REGISTER_RATE_PER_MIN", "0"),
        ])
        .await;
        let root = server.admin().await;
        Matrix { server, root, cells: 0 }
    }

    async fn role(&mut self, name: &str, permissions: &[&str]) -> Value {
        let (status, role) = self.root.post("/api/admin/roles", json!({"name": name})).await;
        assert_eq!(status, 201, "{role}");
        let id = role["id"].as_i64().unwrap();
        let mut role = role;
        for permission in permissions {
            let (status, body) = self
                .root
                .post(
                    &format!("/api/admin/roles/{id}/permissions"),
                    json!({"permission": permission}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            role = body;
        }
        role
    }

    async fn set_roles(&mut self, user: i64, roles: Value) {
        let (status, body) = self
            .root
            .patch(&format!("/api/admin/users/{user}"), json!({"roles": roles}))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    async fn cell(&mut self, who: Actor, on: On) -> Cell {
        self.cells += 1;
        let n = self.cells;
        let deputy_role = self.role(&format!("deputy-{n}"), DEPUTY_PERMISSIONS).await;
        let mut actor = match who {
            Actor::Guest => self.server.guest(&format!("Guest {n}")).await,
            _ => self.server.user(&format!("actor-{n}")).await,
        };
        let actor_id = actor.me().await["id"].as_i64().unwrap();
        match who {
            Actor::Admin => self.set_roles(actor_id, json!(["admin"])).await,
            Actor::Moderator => self.set_roles(actor_id, json!(["moderator"])).await,
            Actor::Deputy => self.set_roles(actor_id, json!([deputy_role["name"]])).await,
            Actor::User | Actor::Guest => {}
        }
        let target = match on {
            On::Plain => Some(self.target(n, false).await),
            On::Admin => Some(self.target(n, true).await),
            On::Nobody | On::Itself => None,
        };
        Cell {
            n,
            actor,
            actor_id,
            deputy_role,
            target,
        }
    }

    /// A fresh account at its own address, with a socket in the lobby.
    async fn target(&mut self, n: usize, admin: bool) -> Target {
        let ip = format!("10.{}.{}.1", n / 250, n % 250);
        let mut api = self.server.user_from(&format!("target-{n}"), &ip).await;
        let id = api.me().await["id"].as_i64().unwrap();
        if admin {
            let (status, body) = self
                .root
                .patch(&format!("/api/admin/users/{id}"), json!({"is_admin": true}))
                .await;
            assert_eq!(status, 200, "{body}");
        }
        let mut socket = Ws::connect(&api).await;
        socket.join("lobby").await;
        Target { id, ip, socket, api }
    }

    /// Runs one cell: the status the actor got.
    async fn run(&mut self, action: Action, cell: &mut Cell) -> u16 {
        let n = cell.n;
        let target_id = match (&cell.target, action) {
            (Some(target), _) => target.id,
            _ => cell.actor_id,
        };
        let target_sid = cell.target.as_ref().map(|t| t.socket.sid()).unwrap_or_default();
        let target_ip = cell.target.as_ref().map(|t| t.ip.clone()).unwrap_or_default();
        let deputy = cell.deputy_role["id"].as_i64().unwrap();
        let deputy_name = cell.deputy_role["name"].as_str().unwrap().to_owned();
        let (method, path, body) = match action {
            ListSessions => (Method::GET, "/api/admin/sessions".into(), None),
            WatchSessions => return watch(&cell.actor).await,
            KickSession => (Method::POST, format!("/api/admin/sessions/{target_sid}/kick"), None),
            MoveSession => (
                Method::POST,
                format!("/api/admin/sessions/{target_sid}/move"),
                Some(json!({"room": "lobby"})),
            ),
            MoveToUnknownRoom => (
                Method::POST,
                format!("/api/admin/sessions/{target_sid}/move"),
                Some(json!({"room": "no-such-room"})),
            ),
            KickUser => (Method::POST, format!("/api/admin/users/{target_id}/kick"), None),
            MuteSession => (
                Method::POST,
                format!("/api/admin/sessions/{target_sid}/mute"),
                Some(json!({"muted": true, "reason": "matrix"})),
            ),
            DeafenSession => (
                Method::POST,
                format!("/api/admin/sessions/{target_sid}/deafen"),
                Some(json!({"deafened": true})),
            ),
            ListBans => (Method::GET, "/api/admin/bans".into(), None),
            BanUser => (
                Method::POST,
                "/api/admin/bans".into(),
                Some(json!({"user_id": target_id, "reason": "matrix"})),
            ),
            BanAddress => (
                Method::POST,
                "/api/admin/bans".into(),
                Some(json!({"ip": target_ip, "reason": "matrix"})),
            ),
            LiftBan => {
                let ip = format!("192.0.2.{}", n % 250);
                let (status, ban) = self
                    .root
                    .post("/api/admin/bans", json!({"ip": ip, "reason": "to lift"}))
                    .await;
                assert_eq!(status, 201, "{ban}");
                (Method::DELETE, format!("/api/admin/bans/{}", ban["id"]), None)
            }
            ListUsers => (Method::GET, "/api/admin/users".into(), None),
            ShowUser => (Method::GET, format!("/api/admin/users/{target_id}"), None),
            MakeAdmin => (
                Method::PATCH,
                format!("/api/admin/users/{target_id}"),
                Some(json!({"is_admin": true})),
            ),
            Demote => (
                Method::PATCH,
                format!("/api/admin/users/{target_id}"),
                Some(json!({"is_admin": false})),
            ),
            GiveDeputyRole => (
                Method::PATCH,
                format!("/api/admin/users/{target_id}"),
                Some(json!({"roles": ["user", deputy_name]})),
            ),
            GiveModeratorRole => (
                Method::PATCH,
                format!("/api/admin/users/{target_id}"),
                Some(json!({"roles": ["user", "moderator"]})),
            ),
            GiveAdminRole => (
                Method::PATCH,
                format!("/api/admin/users/{target_id}"),
                Some(json!({"roles": ["admin"]})),
            ),
            SetPlainRoles => (
                Method::PATCH,
                format!("/api/admin/users/{target_id}"),
                Some(json!({"roles": ["user"]})),
            ),
            DeleteUser => (Method::DELETE, format!("/api/admin/users/{target_id}"), None),
            DisableTotp => {
                if let Some(target) = cell.target.as_mut() {
                    turn_on_two_factor(&mut target.api).await;
                }
                (
                    Method::POST,
                    format!("/api/admin/users/{target_id}/totp/disable"),
                    Some(json!({"reason": "lost their phone"})),
                )
            }
            ListRoles => (Method::GET, "/api/admin/roles".into(), None),
            CreateRole => (
                Method::POST,
                "/api/admin/roles".into(),
                Some(json!({"name": format!("made-{n}")})),
            ),
            DeleteRoleWithin => {
                let role = self.role(&format!("within-{n}"), &["sessions.kick"]).await;
                (Method::DELETE, format!("/api/admin/roles/{}", role["id"]), None)
            }
            DeleteRoleBeyond => {
                let role = self.role(&format!("beyond-{n}"), &["admin.logs"]).await;
                (Method::DELETE, format!("/api/admin/roles/{}", role["id"]), None)
            }
            GrantHeld => {
                let role = self.role(&format!("fresh-{n}"), &[]).await;
                (
                    Method::POST,
                    format!("/api/admin/roles/{}/permissions", role["id"]),
                    Some(json!({"permission": "sessions.kick"})),
                )
            }
            GrantLackedToDeputyRole => (
                Method::POST,
                format!("/api/admin/roles/{deputy}/permissions"),
                Some(json!({"permission": "admin.logs"})),
            ),
            RevokeHeld => {
                let role = self.role(&format!("fresh-{n}"), &["sessions.kick"]).await;
                (
                    Method::DELETE,
                    format!("/api/admin/roles/{}/permissions/sessions.kick", role["id"]),
                    None,
                )
            }
            RevokeLacked => {
                let role = self.role(&format!("fresh-{n}"), &["admin.logs"]).await;
                (
                    Method::DELETE,
                    format!("/api/admin/roles/{}/permissions/admin.logs", role["id"]),
                    None,
                )
            }
            ListPermissions => (Method::GET, "/api/admin/permissions".into(), None),
            CreatePermission => (
                Method::POST,
                "/api/admin/permissions".into(),
                Some(json!({"name": format!("matrix.p{n}")})),
            ),
            ReadLogs => (Method::GET, "/api/admin/logs".into(), None),
            ReadMessages => (Method::GET, "/api/admin/messages".into(), None),
            CreateUser => (
                Method::POST,
                "/api/admin/users".into(),
                Some(json!({"username": format!("made-{n}"), "email": format!("made-{n}@example.org")})),
            ),
            ResetLink => (Method::POST, format!("/api/admin/users/{target_id}/reset-link"), None),
            ListInvites => (Method::GET, "/api/admin/invites".into(), None),
            CreateInvite => (Method::POST, "/api/admin/invites".into(), Some(json!({"uses": 2}))),
            RevokeInvite => {
                let (status, invite) = self.root.post("/api/admin/invites", json!({})).await;
                assert_eq!(status, 201, "{invite}");
                (Method::DELETE, format!("/api/admin/invites/{}", invite["id"]), None)
            }
        };
        let mut req = cell.actor.request(method, &path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let (status, reply) = cell.actor.send(req).await;
        if status.is_client_error() {
            assert_client_error(status, &reply);
        }
        status.as_u16()
    }
}

/// Sets up and turns on two-factor sign-in for `api`.
async fn turn_on_two_factor(api: &mut Api) {
    let (status, setup) = api.post("/api/me/totp/setup", json!({})).await;
    assert_eq!(status, 200, "{setup}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let code = switchboard::auth::totp::current_code(setup["secret"].as_str().unwrap(), now).unwrap();
    let (status, body) = api.post("/api/me/totp/enable", json!({"code": code})).await;
    assert_eq!(status, 200, "{body}");
}

/// `admin_watch` on a new socket: 200 for the snapshot, 403 for `forbidden`.
async fn watch(actor: &Api) -> u16 {
    let mut ws = Ws::connect(actor).await;
    ws.send(json!({"type": "admin_watch"})).await;
    let answer = ws.next().await;
    match (answer["type"].as_str(), answer["code"].as_str()) {
        (Some("sessions"), _) => 200,
        (Some("error"), Some("forbidden")) => 403,
        _ => panic!("unexpected answer to admin_watch: {answer}"),
    }
}

#[tokio::test]
async fn the_authorisation_matrix_holds_for_every_role_and_target() {
    let mut matrix = Matrix::start().await;
    let mut wrong = Vec::new();
    for row in MATRIX {
        for (who, expected) in ACTORS.iter().zip(row.expect) {
            let mut cell = matrix.cell(*who, row.on).await;
            let got = matrix.run(row.action, &mut cell).await;
            if got != expected {
                wrong.push(format!(
                    "{:?} on {:?} as {who:?}: expected {expected}, got {got}",
                    row.action, row.on
                ));
            }
        }
    }
    let cells = MATRIX.len() * ACTORS.len();
    eprintln!(
        "authorisation matrix: {} rows (endpoint x target) x {} roles = {cells} cells",
        MATRIX.len(),
        ACTORS.len()
    );
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells differ from the policy:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
