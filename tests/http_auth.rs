//! Authentication, users, sessions, `_security` and members-only databases over real HTTP.

mod http_common;

use http_common::Server;
use serde_json::json;

fn create_user(s: &Server, name: &str, roles: &[&str]) {
    let res = s.admin(
        "PUT",
        &format!("/_users/org.couchdb.user:{name}"),
        Some(
            json!({"name": name, "password": format!("{name}-pw"), "roles": roles, "type": "user"}),
        ),
    );
    assert_eq!(res.status, 201, "{}", res.text);
}

#[test]
fn users_are_stored_hashed_and_authenticate() {
    let s = Server::start();
    create_user(&s, "ann", &["staff"]);
    let stored = s.admin("GET", "/_users/org.couchdb.user:ann", None).json();
    assert!(stored.get("password").is_none());
    assert_eq!(stored["password_scheme"], "pbkdf2");
    assert!(stored["derived_key"].is_string() && stored["salt"].is_string());
    let me = s
        .as_user(Some(("ann", "ann-pw")), "GET", "/_session", None)
        .json();
    assert_eq!(me["userCtx"], json!({"name": "ann", "roles": ["staff"]}));
    assert_eq!(me["info"]["authenticated"], "default");
    s.as_user(Some(("ann", "nope")), "GET", "/_session", None)
        .assert_error(401, "unauthorized", "Name or password is incorrect.");
    s.as_user(Some(("admin", "nope")), "GET", "/", None)
        .assert_error(401, "unauthorized", "Name or password is incorrect.");
    s.as_user(Some(("ann", "ann-pw")), "GET", "/_users/_all_docs", None)
        .assert_error(403, "forbidden", "Only admins can access system databases.");
    create_user(&s, "bob", &[]);
    let other = s.as_user(
        Some(("ann", "ann-pw")),
        "GET",
        "/_users/org.couchdb.user:bob",
        None,
    );
    assert_eq!(other.status, 403);
    let own = s.as_user(
        Some(("ann", "ann-pw")),
        "GET",
        "/_users/org.couchdb.user:ann",
        None,
    );
    assert_eq!(own.status, 200);
    let signup = s.as_user(
        None,
        "PUT",
        "/_users/org.couchdb.user:cat",
        Some(json!({"name": "cat", "password": "cat-pw", "roles": [], "type": "user"})),
    );
    assert_eq!(signup.status, 201, "{}", signup.text);
    assert_eq!(
        s.as_user(Some(("cat", "cat-pw")), "GET", "/_session", None)
            .json()["userCtx"]["name"],
        "cat"
    );
    let anon = s.as_user(None, "GET", "/_session", None).json();
    assert_eq!(anon["userCtx"], json!({"name": null, "roles": []}));
    // A user may not give itself roles.
    let res = s.as_user(
        Some(("ann", "ann-pw")),
        "PUT",
        "/_users/org.couchdb.user:bob",
        Some(json!({"name": "bob", "password": "x", "roles": ["_admin"], "type": "user"})),
    );
    assert_eq!(res.status, 403, "{}", res.text);
}

#[test]
fn cookie_sessions() {
    let s = Server::start();
    create_user(&s, "ann", &[]);
    let login = s.send(
        "POST",
        "/_session",
        Some(b"name=ann&password=ann-pw"),
        None,
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(
        login.json(),
        json!({"ok": true, "name": "ann", "roles": []})
    );
    let cookie = login.session_cookie();
    let me = s
        .send("GET", "/_session", None, None, &[("Cookie", &cookie)])
        .json();
    assert_eq!(me["userCtx"]["name"], "ann");
    assert_eq!(me["info"]["authenticated"], "cookie");
    let bad = s.send(
        "POST",
        "/_session",
        Some(br#"{"name":"ann","password":"x"}"#),
        None,
        &[],
    );
    bad.assert_error(401, "unauthorized", "Name or password is incorrect.");
    let forged = s
        .send(
            "GET",
            "/_session",
            None,
            None,
            &[("Cookie", "AuthSession=YW5uOjA6eA")],
        )
        .json();
    assert_eq!(forged["userCtx"]["name"], serde_json::Value::Null);
    assert_eq!(s.send("DELETE", "/_session", None, None, &[]).status, 200);
}

#[test]
fn security_objects_and_members_only_databases() {
    let s = Server::start();
    create_user(&s, "mem", &["staff"]);
    create_user(&s, "boss", &["bosses"]);
    create_user(&s, "out", &[]);
    s.admin("PUT", "/db", None);
    s.admin("PUT", "/db/doc", Some(json!({"v": 1})));
    // New databases are admin-only.
    assert_eq!(
        s.admin("GET", "/db/_security", None).json(),
        json!({"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}})
    );
    s.as_user(None, "GET", "/db/doc", None).assert_error(
        401,
        "unauthorized",
        "You are not authorized to access this db.",
    );
    s.as_user(Some(("mem", "mem-pw")), "GET", "/db/doc", None)
        .assert_error(403, "forbidden", "You are not allowed to access this db.");
    let sec = json!({"admins": {"names": [], "roles": ["bosses"]}, "members": {"names": ["out"], "roles": ["staff"]}});
    assert_eq!(
        s.admin("PUT", "/db/_security", Some(sec.clone())).json(),
        json!({"ok": true})
    );
    let mem = Some(("mem", "mem-pw"));
    assert_eq!(s.as_user(mem, "GET", "/db/doc", None).status, 200);
    assert_eq!(s.as_user(mem, "PUT", "/db/w", Some(json!({}))).status, 201);
    assert_eq!(
        s.as_user(Some(("out", "out-pw")), "GET", "/db/_security", None)
            .json(),
        sec
    );
    // Members cannot change security or write design documents.
    s.as_user(mem, "PUT", "/db/_security", Some(json!({})))
        .assert_error(500, "error", "no_majority");
    s.as_user(mem, "PUT", "/db/_design/x", Some(json!({"views": {}})))
        .assert_error(403, "forbidden", "You are not a db or server admin.");
    let boss = Some(("boss", "boss-pw"));
    assert_eq!(
        s.as_user(boss, "PUT", "/db/_design/x", Some(json!({"views": {}})))
            .status,
        201
    );
    s.as_user(boss, "DELETE", "/db", None).assert_error(
        401,
        "unauthorized",
        "You are not a server admin.",
    );
    s.admin("PUT", "/db/_security", Some(json!({"admins": "x"})))
        .assert_error(500, "error", "no_majority");
    // An empty security object makes the database public.
    s.admin("PUT", "/db/_security", Some(json!({})));
    assert_eq!(s.as_user(None, "GET", "/db/doc", None).status, 200);
}

/// `validate_doc_update` sees the authenticated user as `userCtx`
/// (`{db, name, roles}`) and the security object as `secObj`.
#[test]
fn vdu_receives_the_authenticated_user() {
    let s = Server::start();
    create_user(&s, "ann", &["staff", "writer"]);
    assert_eq!(s.admin("PUT", "/db", None).status, 201);
    let sec =
        json!({"admins": {"names": [], "roles": []}, "members": {"names": ["ann"], "roles": []}});
    assert_eq!(
        s.admin("PUT", "/db/_security", Some(sec.clone())).status,
        200
    );
    let vdu = json!({"_id": "_design/v", "validate_doc_update":
        "function(newDoc, oldDoc, userCtx, secObj) { if (newDoc.echo) throw({forbidden: JSON.stringify([userCtx, secObj.members])}); }"});
    assert_eq!(s.admin("PUT", "/db/_design/v", Some(vdu)).status, 201);
    let echo = |user: Option<(&str, &str)>, method: &str, path: &str| {
        let res = s.as_user(user, method, path, Some(json!({"_id": "e", "echo": true})));
        assert_eq!(res.status, 403, "{}", res.text);
        assert_eq!(res.json()["error"], "forbidden");
        serde_json::from_str::<serde_json::Value>(res.json()["reason"].as_str().unwrap()).unwrap()
    };
    let ann = echo(Some(("ann", "ann-pw")), "PUT", "/db/e");
    assert_eq!(
        ann,
        json!([{"db": "db", "name": "ann", "roles": ["staff", "writer"]}, sec["members"]])
    );
    // The same user on the other write paths.
    assert_eq!(
        echo(Some(("ann", "ann-pw")), "POST", "/db")[0]["name"],
        "ann"
    );
    let bulk = s.as_user(
        Some(("ann", "ann-pw")),
        "POST",
        "/db/_bulk_docs",
        Some(json!({"docs": [{"_id": "e", "echo": true}]})),
    );
    let reason = bulk.json()[0]["reason"].as_str().unwrap().to_owned();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reason).unwrap()[0],
        ann[0]
    );
    let admin = echo(Some(http_common::ADMIN), "PUT", "/db/e");
    assert_eq!(
        admin[0],
        json!({"db": "db", "name": "admin", "roles": ["_admin"]})
    );
    // A cookie session carries the same user.
    let login = s.send(
        "POST",
        "/_session",
        Some(br#"{"name":"ann","password":"ann-pw"}"#),
        None,
        &[],
    );
    let cookie = login.session_cookie();
    let res = s.send(
        "PUT",
        "/db/e",
        Some(br#"{"echo":true}"#),
        None,
        &[("Cookie", &cookie)],
    );
    assert_eq!(res.status, 403, "{}", res.text);
    let via_cookie: serde_json::Value =
        serde_json::from_str(res.json()["reason"].as_str().unwrap()).unwrap();
    assert_eq!(via_cookie[0], ann[0]);
    // Nothing was stored by the refused writes; a normal write passes.
    s.admin("GET", "/db/e", None)
        .assert_error(404, "not_found", "missing");
    let ok = s.as_user(Some(("ann", "ann-pw")), "PUT", "/db/ok", Some(json!({})));
    assert_eq!(ok.status, 201, "{}", ok.text);
}
