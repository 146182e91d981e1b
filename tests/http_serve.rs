//! The real `settee serve` binary: bind address, the three admin sources
//! (`--admin`, `$SETTEE_ADMIN`, `--config` INI), persisted hashed admins,
//! refusing to start without an admin, and `--admin-party`.

mod http_common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http_common::Client;
use serde_json::json;

/// A running `settee serve`, killed when dropped.
struct Serve {
    child: Child,
    client: Client,
    stderr_line: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command(dir: &Path, port: u16, args: &[&str], env_admin: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_settee"));
    cmd.arg("serve")
        .arg("--dir")
        .arg(dir)
        .arg("--port")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    match env_admin {
        Some(v) => cmd.env("SETTEE_ADMIN", v),
        None => cmd.env_remove("SETTEE_ADMIN"),
    };
    cmd
}

/// Starts the server and waits for its "listening on" line.
fn start(dir: &Path, args: &[&str], env_admin: Option<&str>) -> Serve {
    let port = free_port();
    let mut child = command(dir, port, args, env_admin).spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains('\n') {
        assert!(Instant::now() < deadline, "no output");
        match stderr.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => panic!("serve exited: {}", String::from_utf8_lossy(&seen)),
        }
    }
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    Serve {
        child,
        client: Client { port },
        stderr_line: String::from_utf8_lossy(&seen).trim().to_owned(),
    }
}

fn is_admin(c: &Client, user: (&str, &str)) -> bool {
    let res = c.as_user(Some(user), "GET", "/_session", None);
    res.status == 200
        && res.json()["userCtx"]["roles"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("_admin")))
}

#[test]
fn admins_come_from_every_source_bind_loopback_and_persist_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hash = settee::server::hash_password("dave-pw").unwrap();
    let ini = format!(
        "; like CouchDB's local.ini\n[chttpd]\nport = 1\n\n[admins]\ncarol = carol-pw\ndave = -pbkdf2:sha256-{},{},{}\n",
        hash.derived_key, hash.salt, hash.iterations
    );
    let config = dir.path().join("local.ini");
    std::fs::write(&config, ini).unwrap();
    let s = start(
        &data,
        &[
            "--config",
            config.to_str().unwrap(),
            "--admin",
            "eve:eve-pw",
            "--admin",
            "frank:f:r:a",
        ],
        Some("ann:ann-pw, bob:bob-pw"),
    );
    assert_eq!(
        s.stderr_line,
        format!("settee: listening on http://127.0.0.1:{}", s.client.port)
    );
    for user in [
        ("ann", "ann-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
        ("dave", "dave-pw"),
        ("eve", "eve-pw"),
        ("frank", "f:r:a"),
    ] {
        assert!(is_admin(&s.client, user), "{user:?}");
        let res = s
            .client
            .as_user(Some(user), "PUT", &format!("/db_{}", user.0), None);
        assert_eq!(res.status, 201, "{user:?}: {}", res.text);
    }
    s.client
        .as_user(Some(("ann", "wrong")), "GET", "/_session", None)
        .assert_error(401, "unauthorized", "Name or password is incorrect.");
    // Anonymous requests that need a server admin are refused.
    s.client.as_user(None, "PUT", "/anon", None).assert_error(
        401,
        "unauthorized",
        "You are not a server admin.",
    );
    s.client
        .as_user(None, "GET", "/_all_dbs", None)
        .assert_error(401, "unauthorized", "You are not a server admin.");
    let stored = std::fs::read_to_string(data.join("admins.json")).unwrap();
    for pw in ["ann-pw", "bob-pw", "carol-pw", "eve-pw", "f:r:a"] {
        assert!(!stored.contains(pw), "clear password {pw} stored");
    }
    drop(s);
    // The hashed admins survive a restart without any admin source.
    let s = start(&data, &[], None);
    assert!(is_admin(&s.client, ("ann", "ann-pw")));
    assert!(is_admin(&s.client, ("carol", "carol-pw")));
}

/// CouchDB 3 aborts at startup without an admin ("No Admin Account
/// Found"); so does settee, unless `--admin-party`.
#[test]
fn no_admin_refuses_to_start_unless_admin_party() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path(), free_port(), &[], None)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no server admin"), "{err}");
    let out = command(dir.path(), free_port(), &["--admin", "nopassword"], None)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME:PASSWORD"));
    let bad_ini = dir.path().join("bad.ini");
    std::fs::write(&bad_ini, "[admins]\njust-a-name\n").unwrap();
    let out = command(
        dir.path(),
        free_port(),
        &["--config", bad_ini.to_str().unwrap()],
        None,
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));

    let party = start(dir.path(), &["--admin-party"], None);
    let res = party.client.as_user(None, "PUT", "/open", None);
    assert_eq!(res.status, 201, "{}", res.text);
    assert!(party.client.as_user(None, "GET", "/_all_dbs", None).status == 200);
}
