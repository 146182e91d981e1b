//! The `_security` object of a database and the access rules built on it,
//! which [`Database`] handles acting for a user enforce
//! ([`Database::as_user`]).

use heed::{RoTxn, WithoutTls};
use serde_json::{json, Map, Value};

use super::storage::{Tables, TxnResult};
use super::{doc, meta};
use crate::{Database, Error, Result, UserCtx};

/// The metadata entry holding the security object.
const META_KEY: &str = "security";

/// What CouchDB 3.5 writes into a new database (`default_security = admin_only`).
fn admin_only() -> Value {
    json!({"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}})
}

/// How far a user may go in a database ([`Security::access`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Read and write documents (not design documents).
    Member,
    /// Also design documents and `_security`.
    Admin,
}

/// A database's security object: `admins` and `members`, each with `names`
/// and `roles`. A database without members is public.
///
/// ```
/// use serde_json::json;
/// use settee::{Access, Security};
/// use settee::UserCtx;
///
/// let user = |name: &str, roles: &[&str]| UserCtx {
///     name: Some(name.into()),
///     roles: roles.iter().map(|r| r.to_string()).collect(),
/// };
/// let sec = Security::from_json(&json!({
///     "admins": {"names": ["ann"]},
///     "members": {"roles": ["staff"]}
/// })).unwrap();
/// assert_eq!(sec.access(&user("ann", &[])).unwrap(), Access::Admin);
/// assert_eq!(sec.access(&user("bob", &["staff"])).unwrap(), Access::Member);
/// assert_eq!(sec.access(&user("cy", &[])).unwrap_err().status(), 403);
/// assert_eq!(sec.access(&UserCtx::anonymous()).unwrap_err().status(), 401);
/// assert!(sec.is_db_admin(&UserCtx::admin()));
///
/// // No members: public.
/// let public = Security::from_json(&json!({})).unwrap();
/// assert_eq!(public.access(&UserCtx::anonymous()).unwrap(), Access::Member);
/// let malformed = Security::from_json(&json!({"members": []})).unwrap_err();
/// assert_eq!((malformed.status(), malformed.reason().as_str()), (500, "no_majority"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Security {
    raw: Value,
}

impl Security {
    /// The security object of `db`: the stored one, else CouchDB's admin-only default.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::Security;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// let default = Security::load(&db).unwrap();
    /// assert_eq!(default.to_json()["admins"], json!({"roles": ["_admin"]}));
    /// Security::from_json(&json!({"members": {"names": ["bob"]}})).unwrap().store(&db).unwrap();
    /// assert_eq!(Security::load(&db).unwrap().sec_obj(), json!({"members": {"names": ["bob"]}}));
    /// ```
    pub fn load(db: &Database) -> Result<Security> {
        let raw = db.get_meta(META_KEY)?.unwrap_or_else(admin_only);
        Ok(Security { raw })
    }

    /// [`Security::load`] inside a transaction (the write path).
    pub(crate) fn load_in(txn: &RoTxn<'_, WithoutTls>, t: &Tables) -> TxnResult<Security> {
        let raw = match t.meta.get(txn, &meta::user_key(META_KEY))? {
            Some(bytes) => doc::parse_stored(bytes)?,
            None => admin_only(),
        };
        Ok(Security { raw })
    }

    /// Writes the admin-only default into a new database.
    pub fn init(db: &Database) -> Result<()> {
        db.put_meta(META_KEY, &admin_only())
    }

    /// Validates a `PUT /{db}/_security` body; malformed ones are 500 `no_majority` as in CouchDB.
    pub fn from_json(body: &Value) -> Result<Security> {
        let Value::Object(map) = body else {
            return Err(no_majority());
        };
        for section in ["admins", "members"] {
            match map.get(section) {
                None => {}
                Some(Value::Object(s)) => {
                    for list in ["names", "roles"] {
                        match s.get(list) {
                            None => {}
                            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
                            Some(_) => return Err(no_majority()),
                        }
                    }
                }
                Some(_) => return Err(no_majority()),
            }
        }
        Ok(Security { raw: body.clone() })
    }

    /// Stores this object in `db`. Only db admins may: anyone else (as
    /// [`Database::user`]) gets CouchDB's 500 `no_majority`.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{Security, UserCtx};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// let public = Security::from_json(&json!({})).unwrap();
    /// let bob = db.as_user(UserCtx { name: Some("bob".into()), roles: vec![] });
    /// assert_eq!(public.store(&bob).unwrap_err().reason(), "no_majority");
    /// public.store(&db).unwrap();
    /// ```
    pub fn store(&self, db: &Database) -> Result<()> {
        if !Security::load(db)?.is_db_admin(db.user()) {
            return Err(no_majority());
        }
        db.put_meta(META_KEY, &self.raw)
    }

    /// The object as stored, for `GET /{db}/_security`.
    pub fn to_json(&self) -> &Value {
        &self.raw
    }

    fn list<'a>(&'a self, section: &str, list: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.raw
            .get(section)
            .and_then(|s| s.get(list))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
    }

    fn matches(&self, section: &str, user: &UserCtx) -> bool {
        let by_name = user
            .name
            .as_deref()
            .is_some_and(|n| self.list(section, "names").any(|x| x == n));
        by_name
            || self
                .list(section, "roles")
                .any(|r| user.roles.iter().any(|u| u == r))
    }

    /// Whether `user` is a server admin or one of the database's admins.
    pub fn is_db_admin(&self, user: &UserCtx) -> bool {
        user.is_admin() || self.matches("admins", user)
    }

    /// Whether the database has no members (then everyone is one).
    fn is_public(&self) -> bool {
        self.list("members", "names").next().is_none()
            && self.list("members", "roles").next().is_none()
    }

    /// The access `user` has; 401 for anonymous and 403 for other
    /// non-members, with CouchDB's reasons.
    pub fn access(&self, user: &UserCtx) -> Result<Access> {
        if self.is_db_admin(user) {
            return Ok(Access::Admin);
        }
        if self.is_public() || self.matches("members", user) {
            return Ok(Access::Member);
        }
        if user.name.is_none() {
            Err(Error::Unauthorized(
                "You are not authorized to access this db.".into(),
            ))
        } else {
            Err(Error::Forbidden(
                "You are not allowed to access this db.".into(),
            ))
        }
    }

    /// The `secObj` a `validate_doc_update` function sees.
    pub fn sec_obj(&self) -> Value {
        match &self.raw {
            Value::Object(m) => Value::Object(m.clone()),
            _ => Value::Object(Map::new()),
        }
    }
}

/// CouchDB's answer to any refused or malformed `_security` update.
pub(crate) fn no_majority() -> Error {
    Error::couch(500, "error", "no_majority")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, roles: &[&str]) -> UserCtx {
        UserCtx {
            name: Some(name.into()),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn default_is_admin_only() {
        let s = Security { raw: admin_only() };
        assert_eq!(s.access(&user("bob", &[])).unwrap_err().status(), 403);
        assert_eq!(s.access(&UserCtx::anonymous()).unwrap_err().status(), 401);
        assert_eq!(s.access(&UserCtx::admin()).unwrap(), Access::Admin);
    }

    #[test]
    fn members_by_name_and_role_and_public() {
        let s = Security::from_json(&json!({"admins": {"roles": ["boss"]},
            "members": {"names": ["ann"], "roles": ["staff"]}}))
        .unwrap();
        assert_eq!(s.access(&user("ann", &[])).unwrap(), Access::Member);
        assert_eq!(s.access(&user("x", &["staff"])).unwrap(), Access::Member);
        assert_eq!(s.access(&user("x", &["boss"])).unwrap(), Access::Admin);
        assert!(s.access(&user("x", &[])).is_err());
        let public = Security::from_json(&json!({})).unwrap();
        assert_eq!(
            public.access(&UserCtx::anonymous()).unwrap(),
            Access::Member
        );
        assert_eq!(
            Security::from_json(&json!({"admins": "x"}))
                .unwrap_err()
                .status(),
            500
        );
    }
}
