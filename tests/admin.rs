//! The admin API: users (list, search, promote, demote, roles, delete), roles and permissions, who may call what, and the audit log with its filters and paging.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a failed step should fail the test"
)]
mod common;

use common::{assert_error, is_rfc3339, Api, Server, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn user_id(api: &mut Api) -> i64 {
    api.me().await["id"].as_i64().unwrap()
}

async fn role_named(admin: &mut Api, name: &str) -> Value {
    let (status, body) = admin.get("/api/admin/roles").await;
    assert_eq!(status, 200, "{body}");
    body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no role {name} in {body}"))
}

async fn call(api: &mut Api, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = api.request(method, path);
    if let Some(body) = body {
        req = req.json(&body);
    }
    api.send(req).await
}

#[tokio::test]
async fn admin_endpoints_need_a_session_and_the_permission() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut user = server.user("sam").await;
    let mut guest = server.guest("visitor").await;
    let sam = user_id(&mut user).await;
    let moderator = role_named(&mut admin, "moderator").await["id"].as_i64().unwrap();
    let users_before = admin.user_total().await;
    let calls: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/admin/users".into(), None),
        (Method::GET, "/api/admin/users?q=sam&page=1".into(), None),
        (
            Method::PATCH,
            format!("/api/admin/users/{sam}"),
            Some(json!({"is_admin": true})),
        ),
        (
            Method::PATCH,
            format!("/api/admin/users/{sam}"),
            Some(json!({"roles": ["admin"]})),
        ),
        (Method::DELETE, format!("/api/admin/users/{sam}"), None),
        (Method::GET, "/api/admin/roles".into(), None),
        (Method::POST, "/api/admin/roles".into(), Some(json!({"name": "sneaky"}))),
        (Method::DELETE, format!("/api/admin/roles/{moderator}"), None),
        (
            Method::POST,
            format!("/api/admin/roles/{moderator}/permissions"),
            Some(json!({"permission": "bans.manage"})),
        ),
        (Method::GET, "/api/admin/permissions".into(), None),
        (
            Method::POST,
            "/api/admin/permissions".into(),
            Some(json!({"name": "sneaky.perm"})),
        ),
        (Method::GET, "/api/admin/logs".into(), None),
    ];
    for (method, path, body) in &calls {
        let (status, reply) = call(&mut user, method.clone(), path, body.clone()).await;
        assert_eq!(status, 403, "user {method} {path}: {reply}");
        assert_error(status, &reply, 403, "forbidden");
        let (status, reply) = call(&mut guest, method.clone(), path, body.clone()).await;
        assert_error(status, &reply, 403, "forbidden");
        let mut anonymous = server.client();
        let (status, reply) = call(&mut anonymous, method.clone(), path, body.clone()).await;
        assert_error(status, &reply, 401, "unauthenticated");
    }
    // None of it had any effect.
    let me = user.me().await;
    assert_eq!(me["is_admin"], false);
    assert_eq!(me["roles"], json!(["user"]));
    assert_eq!(admin.user_total().await, users_before);
    let (_, roles) = admin.get("/api/admin/roles").await;
    assert!(!roles["roles"].as_array().unwrap().iter().any(|r| r["name"] == "sneaky"));
    let moderator = role_named(&mut admin, "moderator").await;
    assert!(!moderator["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "bans.manage"));
    let (_, permissions) = admin.get("/api/admin/permissions").await;
    assert!(!permissions["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "sneaky.perm"));
}

#[tokio::test]
async fn admins_list_and_search_users() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    server.user("under_score").await;
    server.user("underxscore").await;
    server.register("percent", "fifty@example.org").await;
    server.guest("Gwen").await;

    let (status, body) = admin.get("/api/admin/users").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 5, "{body}");
    let users = body["users"].as_array().unwrap();
    assert_eq!(users.len(), 5);
    for user in users {
        for field in [
            "id",
            "username",
            "display_name",
            "email",
            "is_admin",
            "roles",
            "permissions",
            "guest",
            "totp_enabled",
            "created_at",
        ] {
            assert!(user.get(field).is_some(), "no {field} in {user}");
        }
        assert!(is_rfc3339(user["created_at"].as_str().unwrap()), "{user}");
    }
    assert!(users.iter().any(|u| u["guest"] == true && u["email"].is_null()));

    let (_, body) = admin.get_query("/api/admin/users", &[("q", "under")]).await;
    assert_eq!(body["total"], 2, "{body}");
    // LIKE wildcards are plain text.
    let (_, body) = admin.get_query("/api/admin/users", &[("q", "r_s")]).await;
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(body["users"][0]["username"], "under_score");
    let (_, body) = admin.get_query("/api/admin/users", &[("q", "%")]).await;
    assert_eq!(body["total"], 0, "{body}");
    // Searches cover the email too.
    let (_, body) = admin.get_query("/api/admin/users", &[("q", "FIFTY@")]).await;
    assert_eq!(body["total"], 1, "{body}");
    assert_eq!(body["users"][0]["username"], "percent");
    // Page 2 is past the end: no users, the same total.
    let (status, body) = admin.get_query("/api/admin/users", &[("q", ""), ("page", "2")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 5, "{body}");
    assert_eq!(body["users"], json!([]));
}

#[tokio::test]
async fn admins_promote_and_demote() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut tom = server.user("tom").await;
    let id = user_id(&mut tom).await;

    let (status, body) = admin
        .patch(&format!("/api/admin/users/{id}"), json!({"is_admin": true}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["id"], id);
    assert_eq!(body["user"]["is_admin"], true);
    let me = tom.me().await;
    assert_eq!(me["is_admin"], true, "{me}");
    assert!(me["roles"].as_array().unwrap().iter().any(|r| r == "admin"));
    let (status, _) = tom.get("/api/admin/users").await;
    assert_eq!(status, 200, "a promoted user is an admin at once");

    let (status, body) = admin
        .patch(&format!("/api/admin/users/{id}"), json!({"is_admin": false}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["is_admin"], false);
    assert_eq!(tom.me().await["is_admin"], false);
    let (status, body) = tom.get("/api/admin/users").await;
    assert_error(status, &body, 403, "forbidden");
    // An empty update changes nothing.
    let (status, body) = admin.patch(&format!("/api/admin/users/{id}"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["roles"], json!(["user"]));
    // An unknown user.
    let (status, body) = admin.patch("/api/admin/users/999999", json!({"is_admin": true})).await;
    assert_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let me = user_id(&mut admin).await;
    let (status, body) = admin
        .patch(&format!("/api/admin/users/{me}"), json!({"is_admin": false}))
        .await;
    assert_error(status, &body, 409, "conflict");
    let (status, body) = admin
        .patch(&format!("/api/admin/users/{me}"), json!({"roles": ["user"]}))
        .await;
    assert_error(status, &body, 409, "conflict");
    assert_eq!(admin.me().await["is_admin"], true);

    // With a second admin, one may go; then the other is the last.
    let mut uma = server.user("uma").await;
    let uma_id = user_id(&mut uma).await;
    let (status, _) = admin
        .patch(&format!("/api/admin/users/{uma_id}"), json!({"is_admin": true}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = uma
        .patch(&format!("/api/admin/users/{me}"), json!({"is_admin": false}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(admin.me().await["is_admin"], false);
    let (status, body) = uma
        .patch(&format!("/api/admin/users/{uma_id}"), json!({"is_admin": false}))
        .await;
    assert_error(status, &body, 409, "conflict");
    assert_eq!(uma.me().await["is_admin"], true);
}

#[tokio::test]
async fn admins_set_roles() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut vic = server.user("vic").await;
    let id = user_id(&mut vic).await;
    let (status, body) = admin
        .patch(&format!("/api/admin/users/{id}"), json!({"roles": ["moderator"]}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["roles"], json!(["moderator"]));
    let me = vic.me().await;
    assert_eq!(me["roles"], json!(["moderator"]));
    assert_eq!(me["is_admin"], false);
    let permissions = me["permissions"].as_array().unwrap();
    assert!(permissions.iter().any(|p| p == "sessions.kick"), "{me}");
    assert!(!permissions.iter().any(|p| p == "bans.manage"), "{me}");

    for bad in [json!(["no-such-role"]), json!(["moderator", "nope"])] {
        let (status, body) = admin
            .patch(&format!("/api/admin/users/{id}"), json!({"roles": bad}))
            .await;
        assert_error(status, &body, 400, "bad_request");
    }
    assert_eq!(
        vic.me().await["roles"],
        json!(["moderator"]),
        "a refused update changes nothing"
    );

    let (status, body) = admin
        .patch(
            &format!("/api/admin/users/{id}"),
            json!({"roles": ["user", "moderator"], "is_admin": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["roles"], json!(["admin", "moderator", "user"]));
}

#[tokio::test]
async fn roles_and_permissions_are_managed() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let (status, body) = admin.get("/api/admin/roles").await;
    assert_eq!(status, 200, "{body}");
    let roles = body["roles"].as_array().unwrap();
    for builtin in ["admin", "moderator", "user", "guest"] {
        let role = roles
            .iter()
            .find(|r| r["name"] == builtin)
            .unwrap_or_else(|| panic!("no {builtin} role: {body}"));
        assert_eq!(role["builtin"], true);
        assert!(role["id"].is_i64());
        assert!(role["permissions"].is_array());
    }

    let (status, role) = admin.post("/api/admin/roles", json!({"name": "helpers"})).await;
    assert_eq!(status, 201, "{role}");
    assert_eq!(role["name"], "helpers");
    assert_eq!(role["builtin"], false);
    assert_eq!(role["permissions"], json!([]));
    let role_id = role["id"].as_i64().unwrap();
    let (status, body) = admin.post("/api/admin/roles", json!({"name": "Helpers"})).await;
    assert_error(status, &body, 409, "conflict");

    let (status, body) = admin
        .post(
            &format!("/api/admin/roles/{role_id}/permissions"),
            json!({"permission": "sessions.kick"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["permissions"], json!(["sessions.kick"]));
    let (status, body) = admin
        .post(
            &format!("/api/admin/roles/{role_id}/permissions"),
            json!({"permission": "no.such.permission"}),
        )
        .await;
    assert_error(status, &body, 400, "bad_request");
    let (status, body) = admin
        .post(
            "/api/admin/roles/999999/permissions",
            json!({"permission": "sessions.kick"}),
        )
        .await;
    assert_error(status, &body, 404, "not_found");

    let (status, body) = admin.get("/api/admin/permissions").await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for builtin in [
        "admin.users",
        "admin.roles",
        "admin.logs",
        "sessions.kick",
        "bans.manage",
    ] {
        assert!(names.contains(&builtin), "{builtin} missing from {names:?}");
    }
    let (status, body) = admin
        .post("/api/admin/permissions", json!({"name": "reports.view"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "reports.view");
    assert_eq!(body["builtin"], false);
    let (status, body) = admin
        .post("/api/admin/permissions", json!({"name": "reports.view"}))
        .await;
    assert_error(status, &body, 409, "conflict");
    let (status, body) = admin
        .post(
            &format!("/api/admin/roles/{role_id}/permissions"),
            json!({"permission": "reports.view"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["permissions"], json!(["reports.view", "sessions.kick"]));
    // The admin role holds permissions made after it.
    let admin_role = role_named(&mut admin, "admin").await;
    assert!(admin_role["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "reports.view"));
    assert!(admin.me().await["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "reports.view"));

    // Built-in roles stay; custom ones go.
    for builtin in ["admin", "moderator", "user", "guest"] {
        let id = role_named(&mut admin, builtin).await["id"].as_i64().unwrap();
        let (status, body) = admin.delete(&format!("/api/admin/roles/{id}")).await;
        assert_error(status, &body, 409, "conflict");
    }
    let (status, body) = admin.delete(&format!("/api/admin/roles/{role_id}")).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = admin.delete(&format!("/api/admin/roles/{role_id}")).await;
    assert_error(status, &body, 404, "not_found");
    let (_, body) = admin.get("/api/admin/roles").await;
    assert!(!body["roles"].as_array().unwrap().iter().any(|r| r["name"] == "helpers"));
}

#[tokio::test]
async fn a_custom_role_with_admin_logs_reads_the_logs() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut wes = server.user("wes").await;
    let id = user_id(&mut wes).await;
    let (status, body) = wes.get("/api/admin/logs").await;
    assert_error(status, &body, 403, "forbidden");

    let (status, role) = admin.post("/api/admin/roles", json!({"name": "auditors"})).await;
    assert_eq!(status, 201, "{role}");
    let role_id = role["id"].as_i64().unwrap();
    let (status, body) = admin
        .post(
            &format!("/api/admin/roles/{role_id}/permissions"),
            json!({"permission": "admin.logs"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin
        .patch(
            &format!("/api/admin/users/{id}"),
            json!({"roles": ["user", "auditors"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let me = wes.me().await;
    assert!(
        me["permissions"].as_array().unwrap().iter().any(|p| p == "admin.logs"),
        "{me}"
    );
    assert_eq!(me["is_admin"], false);
    let logs = wes.logs(&[]).await;
    assert!(logs["total"].as_i64().unwrap() > 0, "{logs}");
    // Only that permission.
    let (status, body) = wes.get("/api/admin/users").await;
    assert_error(status, &body, 403, "forbidden");
    let (status, body) = wes.get("/api/admin/roles").await;
    assert_error(status, &body, 403, "forbidden");

    // Deleting the role takes the permission away.
    let (status, _) = admin.delete(&format!("/api/admin/roles/{role_id}")).await;
    assert_eq!(status, 204);
    let (status, body) = wes.get("/api/admin/logs").await;
    assert_error(status, &body, 403, "forbidden");
}

#[tokio::test]
async fn an_admin_cannot_delete_their_own_account() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let me = user_id(&mut admin).await;
    let (status, body) = admin.delete(&format!("/api/admin/users/{me}")).await;
    assert_error(status, &body, 409, "conflict");
    assert_eq!(admin.me().await["id"], me);
}

#[track_caller]
fn assert_log_entry(entry: &Value) {
    for field in ["id", "ts", "user_id", "username", "ip", "action", "room", "details"] {
        assert!(entry.get(field).is_some(), "no {field} in {entry}");
    }
    assert!(entry["id"].is_i64(), "{entry}");
    assert!(is_rfc3339(entry["ts"].as_str().unwrap_or("")), "{entry}");
    assert!(entry["action"].is_string(), "{entry}");
    assert!(entry["user_id"].is_i64() || entry["user_id"].is_null(), "{entry}");
}

fn entries(logs: &Value) -> &Vec<Value> {
    logs["entries"].as_array().expect("entries array")
}

fn actions(logs: &Value) -> Vec<String> {
    entries(logs)
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn sign_in_events_are_audited_newest_first() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let mut xia = server.user("xia").await;
    let xia_id = user_id(&mut xia).await;
    let (_, status, _) = server.login("xia", "wrong password").await;
    assert_eq!(status, 401);
    let (_, status, _) = server.login("ghost", "wrong password").await;
    assert_eq!(status, 401);
    let mut again = server.login_ok("xia@example.org", PASSWORD).await;
    let (status, _) = again.post("/api/auth/logout", json!({})).await;
    assert_eq!(status, 204);

    let logs = admin.logs(&[]).await;
    assert_eq!(logs["page"], 1);
    let all = entries(&logs);
    assert_eq!(logs["total"].as_i64().unwrap(), all.len() as i64);
    for entry in all {
        assert_log_entry(entry);
    }
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "not newest first: {ids:?}");
    let ts: Vec<&str> = all.iter().map(|e| e["ts"].as_str().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] >= w[1]), "not newest first: {ts:?}");
    assert_eq!(
        actions(&logs),
        [
            "logout",
            "login",
            "login_failed",
            "login_failed",
            "register",
            "login",
            "register"
        ],
        "{logs}"
    );
    let logout = &all[0];
    assert_eq!(logout["user_id"], xia_id);
    assert_eq!(logout["username"], "xia");
    assert_eq!(logout["ip"], "127.0.0.1");
    let login = &all[1];
    assert_eq!(login["user_id"], xia_id);
    assert_eq!(login["details"]["method"], "password");
    assert_eq!(all[2]["username"], "ghost");
    assert_eq!(all[2]["user_id"], Value::Null);
    assert_eq!(all[2]["details"]["reason"], "unknown_user");
    assert_eq!(all[3]["username"], "xia");
    assert_eq!(all[3]["details"]["reason"], "bad_password");
    assert_eq!(all[4]["user_id"], xia_id);
    assert_eq!(all[4]["username"], "xia");
    let details = all[4]["details"].to_string();
    assert!(!details.contains(PASSWORD), "a password in the log: {details}");
}

#[tokio::test]
async fn admin_actions_are_audited() {
    let server = Server::start().await;
    let mut admin = server.admin().await;
    let admin_id = user_id(&mut admin).await;
    let mut yul = server.user("yul").await;
    let yul_id = user_id(&mut yul).await;
    let mut zed = server.user("zed").await;
    let zed_id = user_id(&mut zed).await;

    let (status, _) = admin
        .patch(&format!("/api/admin/users/{yul_id}"), json!({"roles": ["moderator"]}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = admin.delete(&format!("/api/admin/users/{zed_id}")).await;
    assert_eq!(status, 204);
    let (_, role) = admin.post("/api/admin/roles", json!({"name": "temp"})).await;
    let role_id = role["id"].as_i64().unwrap();
    let (status, _) = admin
        .post("/api/admin/permissions", json!({"name": "temp.thing"}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = admin
        .post(
            &format!("/api/admin/roles/{role_id}/permissions"),
            json!({"permission": "temp.thing"}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = admin.delete(&format!("/api/admin/roles/{role_id}")).await;
    assert_eq!(status, 204);

    let logs = admin.logs(&[("user", &admin_id.to_string())]).await;
    let mut recent = actions(&logs);
    recent.truncate(6);
    assert_eq!(
        recent,
        [
            "role_delete",
            "permission_assign",
            "permission_create",
            "role_create",
            "user_delete",
            "user_update"
        ],
        "{logs}"
    );
    for entry in entries(&logs).iter().take(6) {
        assert_log_entry(entry);
        assert_eq!(entry["user_id"], admin_id, "the actor is the admin: {entry}");
        assert_eq!(entry["username"], "admin");
    }
    let by_action = |action: &str| entries(&logs).iter().find(|e| e["action"] == action).cloned().unwrap();
    let update = by_action("user_update");
    assert!(
        update.to_string().contains("yul"),
        "the target is in the details: {update}"
    );
    assert!(update.to_string().contains("moderator"), "{update}");
    let delete = by_action("user_delete");
    assert!(delete.to_string().contains("zed"), "{delete}");
    assert!(by_action("role_create").to_string().contains("temp"));
    assert!(by_action("role_delete").to_string().contains("temp"));
    assert!(by_action("permission_create").to_string().contains("temp.thing"));
    let assign = by_action("permission_assign").to_string();
    assert!(assign.contains("temp.thing") && assign.contains("temp"), "{assign}");

    // The target's id finds the entries about them too.
    let about_yul = admin
        .logs(&[("user", &yul_id.to_string()), ("action", "user_update")])
        .await;
    assert_eq!(about_yul["total"], 1, "{about_yul}");
}

#[tokio::test]
async fn the_log_filters_and_pages() {
    let server = Server::start_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let mut admin = server.admin().await;
    let mut abe = server.user("abe").await;
    let abe_id = user_id(&mut abe).await;
    server.user("bob").await;
    for _ in 0..3 {
        server.login_ok("bob", PASSWORD).await;
    }
    let response = server
        .client()
        .request(Method::POST, "/api/auth/login")
        .header("X-Forwarded-For", "198.51.100.23")
        .json(&json!({"login": "abe", "password": "not the password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let all = admin.logs(&[]).await;
    let total = all["total"].as_i64().unwrap();
    assert!(total >= 7, "{all}");

    // user: by id and by name (any case).
    let by_id = admin.logs(&[("user", &abe_id.to_string())]).await;
    assert!(by_id["total"].as_i64().unwrap() >= 1);
    assert!(
        entries(&by_id)
            .iter()
            .all(|e| e["user_id"] == abe_id || e["target_user_id"] == abe_id),
        "{by_id}"
    );
    let by_name = admin.logs(&[("user", "BOB")]).await;
    assert_eq!(by_name["total"], 4, "register and three logins: {by_name}");
    assert!(entries(&by_name).iter().all(|e| e["username"] == "bob"));
    let nobody = admin.logs(&[("user", "nobody-at-all")]).await;
    assert_eq!(nobody["total"], 0);

    // ip
    let by_ip = admin.logs(&[("ip", "198.51.100.23")]).await;
    assert_eq!(by_ip["total"], 1, "{by_ip}");
    assert_eq!(by_ip["entries"][0]["action"], "login_failed");
    assert_eq!(by_ip["entries"][0]["username"], "abe");

    // action
    let logins = admin.logs(&[("action", "login")]).await;
    assert_eq!(logins["total"], 4, "bob's three and the admin's: {logins}");
    assert!(entries(&logins).iter().all(|e| e["action"] == "login"));
    let combined = admin.logs(&[("action", "register"), ("user", "abe")]).await;
    assert_eq!(combined["total"], 1, "{combined}");

    // from / to, as RFC 3339 times and as days.
    let newest = entries(&all)[0].clone();
    let oldest_ts = entries(&all).last().unwrap()["ts"].as_str().unwrap().to_owned();
    let newest_ts = newest["ts"].as_str().unwrap().to_owned();
    let day = &oldest_ts[..10];
    let since_newest = admin.logs(&[("from", &newest_ts)]).await;
    assert!(since_newest["total"].as_i64().unwrap() >= 1, "{since_newest}");
    assert!(entries(&since_newest).iter().any(|e| e["id"] == newest["id"]));
    let until_oldest = admin.logs(&[("to", &oldest_ts)]).await;
    assert!(until_oldest["total"].as_i64().unwrap() >= 1);
    assert!(until_oldest["total"].as_i64().unwrap() <= total);
    let whole = admin.logs(&[("from", &oldest_ts), ("to", &newest_ts)]).await;
    assert_eq!(whole["total"], total, "{whole}");
    let today = admin.logs(&[("from", day), ("to", &newest_ts[..10])]).await;
    assert_eq!(today["total"], total, "a day covers all of that day: {today}");
    let offset = admin.logs(&[("from", "2000-01-01T00:00:00+02:00")]).await;
    assert_eq!(offset["total"], total);
    for future in ["2999-01-01", "2999-01-01T00:00:00Z"] {
        let later = admin.logs(&[("from", future)]).await;
        assert_eq!(later["total"], 0, "from {future}: {later}");
        assert_eq!(later["entries"], json!([]));
    }
    let past = admin.logs(&[("to", "2000-01-01")]).await;
    assert_eq!(past["total"], 0);
    for bad in ["yesterday", "2026-13-45", "12/01/2026"] {
        let (status, body) = admin.get_query("/api/admin/logs", &[("from", bad)]).await;
        assert_error(status, &body, 400, "bad_request");
    }

    // q: text anywhere (details, username, action).
    let text = admin.logs(&[("q", "bad_password")]).await;
    assert_eq!(text["total"], 1, "{text}");
    assert_eq!(text["entries"][0]["details"]["reason"], "bad_password");
    let text = admin.logs(&[("q", "%")]).await;
    assert_eq!(text["total"], 0, "% is literal: {text}");

    // Paging.
    let page1 = admin.logs(&[("per_page", "2")]).await;
    let page2 = admin.logs(&[("per_page", "2"), ("page", "2")]).await;
    assert_eq!(entries(&page1).len(), 2);
    assert_eq!(entries(&page2).len(), 2);
    assert_eq!(page1["total"], total);
    assert_eq!(page2["total"], total);
    assert_eq!(page1["page"], 1);
    assert_eq!(page2["page"], 2);
    let ids = |logs: &Value| -> Vec<i64> { entries(logs).iter().map(|e| e["id"].as_i64().unwrap()).collect() };
    let (ids1, ids2) = (ids(&page1), ids(&page2));
    assert!(ids1.iter().all(|id| !ids2.contains(id)), "{ids1:?} {ids2:?}");
    assert!(ids1[1] > ids2[0], "pages go from newest to oldest");
    assert_eq!(ids(&all)[..4], [ids1.clone(), ids2.clone()].concat()[..]);
    let far = admin.logs(&[("per_page", "2"), ("page", "999")]).await;
    assert_eq!(far["entries"], json!([]));
    assert_eq!(far["total"], total);
    let max = admin.logs(&[("per_page", "200")]).await;
    assert_eq!(max["total"], total);
    for bad in ["500", "201", "0", "-1", "two"] {
        let (status, body) = admin.get_query("/api/admin/logs", &[("per_page", bad)]).await;
        assert_error(status, &body, 400, "bad_request");
    }
    let (status, body) = admin.get_query("/api/admin/logs", &[("page", "x")]).await;
    assert_error(status, &body, 400, "bad_request");
}
