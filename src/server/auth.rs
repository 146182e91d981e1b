//! Passwords, server admins, `_users` documents and cookie sessions.
//!
//! Passwords are stored only as PBKDF2-HMAC-SHA256 `derived_key` + `salt`
//! (CouchDB's `pbkdf2` scheme with `pbkdf2_prf: "sha256"`). Verified
//! credentials are remembered in memory by a SHA-256 fingerprint so that
//! Basic auth does not pay for PBKDF2 on every request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{Database, Error, ReadOptions, Result, UserCtx};

/// PBKDF2 rounds for new hashes.
const ITERATIONS: u32 = 10_000;
/// Bytes of derived key.
const KEY_LEN: usize = 32;
/// `_users` document id prefix.
const USER_PREFIX: &str = "org.couchdb.user:";
/// Lifetime of a session cookie, in seconds (CouchDB's default `timeout`).
const SESSION_TIMEOUT: u64 = 600;

/// A stored password: PBKDF2-HMAC-SHA256 parameters and result, hex-encoded.
///
/// ```
/// let h = settee::server::hash_password("pw").unwrap();
/// assert_eq!((h.derived_key.len(), h.salt.len()), (64, 32)); // hex of 32 and 16 bytes
/// let again = settee::server::hash_password("pw").unwrap();
/// assert_ne!(h.salt, again.salt); // a fresh salt each time
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordHash {
    /// The derived key, lowercase hex.
    pub derived_key: String,
    /// The salt, lowercase hex.
    pub salt: String,
    /// PBKDF2 rounds.
    pub iterations: u32,
}

/// Hashes `password` with a fresh random salt.
///
/// ```
/// let h = settee::server::hash_password("secret").unwrap();
/// assert!(settee::server::verify_password(&h, "secret"));
/// assert!(!settee::server::verify_password(&h, "Secret"));
/// ```
pub fn hash_password(password: &str) -> Result<PasswordHash> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::couch(500, "error", e.to_string()))?;
    let salt = hex(&salt);
    Ok(PasswordHash {
        derived_key: derive(password, &salt, ITERATIONS),
        salt,
        iterations: ITERATIONS,
    })
}

/// Checks `password` against a stored hash (constant-time comparison).
///
/// ```
/// use settee::server::{hash_password, verify_password};
/// let h = hash_password("correct horse").unwrap();
/// assert!(verify_password(&h, "correct horse"));
/// assert!(!verify_password(&h, "correct horse "));
/// ```
pub fn verify_password(hash: &PasswordHash, password: &str) -> bool {
    let got = derive(password, &hash.salt, hash.iterations.max(1));
    got.len() == hash.derived_key.len()
        && got
            .bytes()
            .zip(hash.derived_key.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn derive(password: &str, salt: &str, iterations: u32) -> String {
    let mut key = [0u8; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut key);
    hex(&key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fingerprint(name: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    h.finalize().into()
}

/// The 401 for a wrong name or password.
pub(crate) fn bad_credentials() -> Error {
    Error::Unauthorized("Name or password is incorrect.".into())
}

/// Server admins, persisted hashed in the data directory.
///
/// ```
/// use settee::server::Admins;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("admins.json");
/// let admins = Admins::load(&path).unwrap(); // no file yet: no admins
/// assert!(admins.is_empty());
/// admins.set("root", "pw").unwrap();
/// assert!(admins.contains("root"));
/// assert_eq!(admins.check("root", "pw"), Some(true));
/// assert_eq!(admins.check("root", "nope"), Some(false));
/// assert_eq!(admins.check("guest", "pw"), None);
/// // Persisted, hashed.
/// assert!(!std::fs::read_to_string(&path).unwrap().contains("\"pw\""));
/// assert_eq!(Admins::load(&path).unwrap().check("root", "pw"), Some(true));
/// ```
#[derive(Debug)]
pub struct Admins {
    path: PathBuf,
    hashes: RwLock<HashMap<String, PasswordHash>>,
    verified: Mutex<HashMap<String, [u8; 32]>>,
}

impl Admins {
    /// Loads the admins file (missing: no admins).
    pub fn load(path: &Path) -> Result<Admins> {
        let hashes = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Admins {
            path: path.to_path_buf(),
            hashes: RwLock::new(hashes),
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Adds or replaces an admin and persists the hashed password. An admin
    /// whose stored hash already matches `password` is left as is.
    pub fn set(&self, name: &str, password: &str) -> Result<()> {
        if self.check(name, password) == Some(true) {
            return Ok(());
        }
        self.store(name, hash_password(password)?)
    }

    /// Adds or replaces an admin whose password is given already hashed
    /// (a `-pbkdf2:sha256-KEY,SALT,ITERATIONS` line of a config file).
    pub fn set_hashed(&self, name: &str, hash: PasswordHash) -> Result<()> {
        let unchanged = self
            .hashes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            == Some(&hash);
        if unchanged {
            return Ok(());
        }
        self.store(name, hash)
    }

    /// Records `name`'s hash and persists the list (write then rename, so a
    /// crash leaves the old file or the new one).
    fn store(&self, name: &str, hash: PasswordHash) -> Result<()> {
        let mut hashes = self.hashes.write().unwrap_or_else(|p| p.into_inner());
        hashes.insert(name.to_owned(), hash);
        let bytes =
            serde_json::to_vec_pretty(&*hashes).map_err(|e| Error::Corrupt(e.to_string()))?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &self.path)?;
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(())
    }

    /// Whether there is at least one admin.
    pub fn is_empty(&self) -> bool {
        self.hashes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Whether `name` is an admin.
    pub fn contains(&self, name: &str) -> bool {
        self.hashes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(name)
    }

    /// `None` if `name` is no admin, else whether the password is right.
    pub fn check(&self, name: &str, password: &str) -> Option<bool> {
        let hash = self
            .hashes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)?
            .clone();
        let fp = fingerprint(name, password);
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.get(name) == Some(&fp) {
            return Some(true);
        }
        drop(verified);
        let ok = verify_password(&hash, password);
        if ok {
            verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            verified.insert(name.to_owned(), fp);
        }
        Some(ok)
    }
}

/// A `_users` document as authentication needs it.
pub(crate) struct StoredUser {
    pub ctx: UserCtx,
    rev: String,
    hash: Option<PasswordHash>,
}

/// Reads `org.couchdb.user:NAME`; `None` if missing or deleted.
pub(crate) fn load_user(users: &Database, name: &str) -> Result<Option<StoredUser>> {
    let doc = match users.get(&format!("{USER_PREFIX}{name}"), &ReadOptions::default()) {
        Ok(doc) => doc,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let roles = doc
        .get("roles")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let hash = match (doc.get("derived_key"), doc.get("salt")) {
        (Some(Value::String(k)), Some(Value::String(s))) => Some(PasswordHash {
            derived_key: k.clone(),
            salt: s.clone(),
            iterations: doc.get("iterations").and_then(Value::as_u64).unwrap_or(1) as u32,
        }),
        _ => None,
    };
    Ok(Some(StoredUser {
        ctx: UserCtx {
            name: Some(name.to_owned()),
            roles,
        },
        rev: doc
            .get("_rev")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        hash,
    }))
}

/// Credentials verified against a given revision of a user document.
#[derive(Default)]
pub(crate) struct UserCache {
    verified: Mutex<HashMap<String, (String, [u8; 32])>>,
}

impl UserCache {
    pub(crate) fn clear(&self) {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub(crate) fn authenticate(
        &self,
        users: &Database,
        name: &str,
        password: &str,
    ) -> Result<UserCtx> {
        let user = load_user(users, name)?.ok_or_else(bad_credentials)?;
        let fp = fingerprint(name, password);
        let cached = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .is_some_and(|(rev, f)| *rev == user.rev && *f == fp);
        if cached {
            return Ok(user.ctx);
        }
        let hash = user.hash.as_ref().ok_or_else(bad_credentials)?;
        if !verify_password(hash, password) {
            return Err(bad_credentials());
        }
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), (user.rev.clone(), fp));
        Ok(user.ctx)
    }
}

/// Checks a write to `_users/{id}` and hashes a clear `password` member.
/// Admins may write any user; others only their own document, without roles.
pub(crate) fn prepare_user_doc(user: &UserCtx, id: &str, doc: &mut Value) -> Result<()> {
    if id.starts_with("_design/") || id.starts_with("_local/") {
        if user.is_admin() {
            return Ok(());
        }
        return Err(Error::Forbidden("You are not a db or server admin.".into()));
    }
    let Some(name) = id.strip_prefix(USER_PREFIX) else {
        return Err(Error::Forbidden(
            "Document ID must be of the form org.couchdb.user:name".into(),
        ));
    };
    let Value::Object(map) = doc else {
        return Ok(());
    };
    if map.get("_deleted") == Some(&Value::Bool(true)) {
        return if user.is_admin() || user.name.as_deref() == Some(name) {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "You may only delete your own user document.".into(),
            ))
        };
    }
    if map.get("name").and_then(Value::as_str) != Some(name) {
        return Err(Error::Forbidden(
            "Document ID must be of the form org.couchdb.user:name".into(),
        ));
    }
    if map.get("type").and_then(Value::as_str) != Some("user") {
        return Err(Error::Forbidden("doc.type must be user".into()));
    }
    if !user.is_admin() {
        let own = user.name.as_deref() == Some(name) || user.name.is_none();
        let no_roles = map
            .get("roles")
            .and_then(Value::as_array)
            .is_none_or(|r| r.is_empty());
        if !own || !no_roles {
            return Err(Error::Forbidden("Only _admin may set roles".into()));
        }
    }
    if let Some(Value::String(password)) = map.remove("password") {
        let h = hash_password(&password)?;
        map.insert("password_scheme".into(), json!("pbkdf2"));
        map.insert("pbkdf2_prf".into(), json!("sha256"));
        map.insert("iterations".into(), json!(h.iterations));
        map.insert("derived_key".into(), json!(h.derived_key));
        map.insert("salt".into(), json!(h.salt));
    }
    Ok(())
}

/// Issues and checks `AuthSession` cookies: `name:expiry:HMAC` signed with a
/// secret kept in the data directory.
///
/// ```
/// use settee::server::Sessions;
///
/// let dir = tempfile::tempdir().unwrap();
/// let sessions = Sessions::load(&dir.path().join("secret")).unwrap();
/// let cookie = sessions.issue("ann");
/// assert_eq!(sessions.verify(&cookie).as_deref(), Some("ann"));
/// assert_eq!(sessions.verify("forged"), None);
/// // Another data directory has another secret.
/// let other = Sessions::load(&dir.path().join("other-secret")).unwrap();
/// assert_eq!(other.verify(&cookie), None);
/// // The same one, reloaded, accepts it.
/// let reloaded = Sessions::load(&dir.path().join("secret")).unwrap();
/// assert_eq!(reloaded.verify(&cookie).as_deref(), Some("ann"));
/// ```
pub struct Sessions {
    secret: Vec<u8>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sessions")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl Sessions {
    /// Loads the secret, creating it on first use.
    pub fn load(path: &Path) -> Result<Sessions> {
        match std::fs::read(path) {
            Ok(secret) if !secret.is_empty() => Ok(Sessions { secret }),
            Ok(_) | Err(_) => {
                let mut secret = vec![0u8; 32];
                getrandom::fill(&mut secret)
                    .map_err(|e| Error::couch(500, "error", e.to_string()))?;
                std::fs::write(path, &secret)?;
                Ok(Sessions { secret })
            }
        }
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        mac
    }

    /// A cookie value for `name`, valid for the session timeout.
    pub fn issue(&self, name: &str) -> String {
        let expiry = now() + SESSION_TIMEOUT;
        let payload = format!("{name}:{expiry:X}");
        let tag = self.mac(&payload).finalize().into_bytes();
        let mut raw = payload.into_bytes();
        raw.push(b':');
        raw.extend_from_slice(&tag);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// The user name of a valid, unexpired cookie value.
    pub fn verify(&self, cookie: &str) -> Option<String> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cookie)
            .ok()?;
        // The tag is the last 32 bytes, after the second ':'.
        if raw.len() < 34 {
            return None;
        }
        let (payload_colon, tag) = raw.split_at(raw.len() - 32);
        let payload = std::str::from_utf8(payload_colon.strip_suffix(b":")?).ok()?;
        self.mac(payload).verify_slice(tag).ok()?;
        let (name, expiry) = payload.rsplit_once(':')?;
        (u64::from_str_radix(expiry, 16).ok()? >= now()).then(|| name.to_owned())
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_round_trip_and_reject_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let s = Sessions::load(&dir.path().join("secret")).unwrap();
        let c = s.issue("ann:x");
        assert_eq!(s.verify(&c).as_deref(), Some("ann:x"));
        let mut bad = c.clone();
        bad.pop();
        assert_eq!(s.verify(&bad), None);
    }

    #[test]
    fn user_docs_get_hashed_passwords() {
        let mut doc = json!({"name": "ann", "password": "pw", "roles": [], "type": "user"});
        prepare_user_doc(&UserCtx::admin(), "org.couchdb.user:ann", &mut doc).unwrap();
        assert!(doc.get("password").is_none());
        let h: PasswordHash = serde_json::from_value(doc.clone()).unwrap();
        assert!(verify_password(&h, "pw"));
        let mut other = json!({"name": "bob", "roles": ["x"], "type": "user"});
        let ann = UserCtx {
            name: Some("ann".into()),
            roles: vec![],
        };
        assert_eq!(
            prepare_user_doc(&ann, "org.couchdb.user:bob", &mut other)
                .unwrap_err()
                .status(),
            403
        );
    }

    #[test]
    fn admins_persist_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admins.json");
        Admins::load(&path)
            .unwrap()
            .set("admin", "password")
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("\"password\""));
        let again = Admins::load(&path).unwrap();
        assert_eq!(again.check("admin", "password"), Some(true));
        assert_eq!(again.check("admin", "nope"), Some(false));
        assert_eq!(again.check("x", "password"), None);
    }
}
