//! The server library: many databases under one data directory, their
//! security objects, and who may do what. No HTTP types live here; the
//! `http` layer parses requests, calls this module and serialises results.
//!
//! ```
//! use settee::server::Settee;
//! let dir = tempfile::tempdir().unwrap();
//! let settee = Settee::open(dir.path()).unwrap();
//! settee.create_db("shop").unwrap();
//! assert_eq!(settee.create_db("shop").unwrap_err().status(), 412);
//! assert_eq!(settee.create_db("Shop").unwrap_err().name(), "illegal_database_name");
//! assert!(settee.all_dbs().unwrap().contains(&"shop".to_string()));
//! ```

mod auth;
mod names;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use auth::{hash_password, verify_password, Admins, PasswordHash, Sessions};
pub use names::{validate_db_name, USERS_DB};

use crate::js::{JsConfig, JsPool};
use crate::validation::DocValidator;
use crate::view::ViewEngine;
use crate::{Access, Database, Error, Result, Security, UserCtx};

/// The databases of one data directory, opened lazily and shared.
///
/// ```
/// use serde_json::json;
/// use settee::server::Settee;
/// use settee::UserCtx;
///
/// let dir = tempfile::tempdir().unwrap();
/// let settee = Settee::open(dir.path()).unwrap();
/// let db = settee.create_db("shop").unwrap();
/// db.put(json!({"_id": "a"})).unwrap();
/// // New databases are admin-only, as in CouchDB 3.
/// let bob = UserCtx { name: Some("bob".into()), roles: vec![] };
/// assert_eq!(settee.check_member("shop", &db, &bob).unwrap_err().status(), 403);
/// // Reopened later, the data is there.
/// drop(settee);
/// let settee = Settee::open(dir.path()).unwrap();
/// assert_eq!(settee.db("shop").unwrap().info().unwrap().doc_count, 1);
/// ```
pub struct Settee {
    root: PathBuf,
    dbs: Mutex<HashMap<String, Database>>,
    admins: Admins,
    sessions: Sessions,
    users: auth::UserCache,
    js: JsPool,
    /// `[query_server_config] query_limit` for every view query.
    query_limit: u64,
}

impl std::fmt::Debug for Settee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settee").field("root", &self.root).finish()
    }
}

impl Settee {
    /// Opens (creating if needed) the data directory `dir`, its persisted
    /// admins and session secret, and the `_users` database.
    pub fn open(dir: impl AsRef<Path>) -> Result<Settee> {
        Self::open_with(dir, JsPool::new(JsConfig::default())?)
    }

    /// Opens the data directory with a given JavaScript pool.
    ///
    /// ```
    /// use settee::js::{JsConfig, JsPool};
    /// use settee::server::{Settee, USERS_DB};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let pool = JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap();
    /// let settee = Settee::open_with(dir.path(), pool).unwrap();
    /// assert_eq!(settee.js().config().workers, 1);
    /// assert_eq!(settee.all_dbs().unwrap(), [USERS_DB]);
    /// ```
    pub fn open_with(dir: impl AsRef<Path>, js: JsPool) -> Result<Settee> {
        let root = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(root.join("dbs"))?;
        let admins = Admins::load(&root.join("admins.json"))?;
        let sessions = Sessions::load(&root.join("session_secret"))?;
        let settee = Settee {
            root,
            dbs: Mutex::new(HashMap::new()),
            admins,
            sessions,
            users: auth::UserCache::default(),
            js,
            query_limit: crate::view::DEFAULT_QUERY_LIMIT,
        };
        if let Err(e) = settee.create_db(USERS_DB) {
            if !matches!(e, Error::DatabaseExists) {
                return Err(e);
            }
        }
        Ok(settee)
    }

    /// The server admins.
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// assert!(settee.admins().is_empty());
    /// settee.admins().set("root", "s3cret").unwrap();
    /// assert_eq!(settee.authenticate("root", "s3cret").unwrap().roles, ["_admin"]);
    /// ```
    pub fn admins(&self) -> &Admins {
        &self.admins
    }

    /// The JavaScript pool shared by every database.
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// use settee::js::FunctionKind;
    /// assert!(settee.js().compile_check(FunctionKind::Map, "function(doc) {}").is_ok());
    /// ```
    pub fn js(&self) -> &JsPool {
        &self.js
    }

    /// The view engine of `db` (cheap: engines share their open indexes).
    /// Every database the server opens deletes its unused indexes after
    /// design document changes ([`ViewEngine::cleanup_automatically`]).
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// use serde_json::json;
    /// use settee::view::ViewQuery;
    /// let db = settee.create_db("shop").unwrap();
    /// db.put(json!({"_id": "_design/d", "views": {"v": {"map": "function(doc) { emit(doc.n, null); }"}}})).unwrap();
    /// db.put(json!({"_id": "a", "n": 1})).unwrap();
    /// let rows = settee.views(&db).query("_design/d", "v", &ViewQuery::new()).unwrap();
    /// assert_eq!(serde_json::to_value(rows).unwrap()["rows"][0]["key"], 1);
    /// ```
    pub fn views(&self, db: &Database) -> ViewEngine {
        ViewEngine::new(db.clone(), self.js.clone()).with_query_limit(self.query_limit)
    }

    /// Sets CouchDB's `[query_server_config] query_limit`: the most rows a
    /// view query returns and the largest `limit` it accepts (see
    /// [`ViewEngine::with_query_limit`]).
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// settee.set_query_limit(1000);
    /// ```
    pub fn set_query_limit(&mut self, query_limit: u64) {
        self.query_limit = query_limit;
    }

    /// The cookie session issuer.
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// let cookie = settee.sessions().issue("ann");
    /// assert_eq!(settee.sessions().verify(&cookie).as_deref(), Some("ann"));
    /// ```
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    fn db_dir(&self, name: &str) -> PathBuf {
        self.root.join("dbs").join(names::encode_dir_name(name))
    }

    /// Creates a database; `illegal_database_name` (400) or `file_exists` (412).
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// let db = settee.create_db("shop").unwrap();
    /// assert_eq!(db.name(), "shop");
    /// assert_eq!(settee.create_db("shop").unwrap_err().status(), 412);
    /// assert_eq!(settee.create_db("_nope").unwrap_err().status(), 400);
    /// ```
    pub fn create_db(&self, name: &str) -> Result<Database> {
        validate_db_name(name)?;
        let mut dbs = self.dbs.lock().unwrap_or_else(|p| p.into_inner());
        let db = Database::create(self.db_dir(name))?;
        Security::init(&db)?;
        DocValidator::install(&db, self.js.clone());
        self.views(&db).cleanup_automatically();
        dbs.insert(name.to_owned(), db.clone());
        Ok(db)
    }

    /// Opens an existing database; 404 "Database does not exist." if there is none.
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// settee.create_db("shop").unwrap().put(serde_json::json!({"_id": "a"})).unwrap();
    /// assert_eq!(settee.db("shop").unwrap().update_seq().unwrap(), 1);
    /// assert_eq!(settee.db("other").unwrap_err().reason(), "Database does not exist.");
    /// ```
    pub fn db(&self, name: &str) -> Result<Database> {
        let mut dbs = self.dbs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(db) = dbs.get(name) {
            return Ok(db.clone());
        }
        if validate_db_name(name).is_err() {
            return Err(Error::not_found("Database does not exist."));
        }
        let db = Database::open(self.db_dir(name))?;
        DocValidator::install(&db, self.js.clone());
        self.views(&db).cleanup_automatically();
        dbs.insert(name.to_owned(), db.clone());
        Ok(db)
    }

    /// Deletes a database and its files; 404 if there is none.
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// settee.create_db("tmp").unwrap();
    /// settee.delete_db("tmp").unwrap();
    /// assert_eq!(settee.db("tmp").unwrap_err().status(), 404);
    /// assert_eq!(settee.delete_db("tmp").unwrap_err().status(), 404);
    /// ```
    pub fn delete_db(&self, name: &str) -> Result<()> {
        let mut dbs = self.dbs.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.db_dir(name);
        if validate_db_name(name).is_err() || !dir.exists() {
            return Err(Error::not_found("Database does not exist."));
        }
        if let Some(db) = dbs.remove(name) {
            // The validator holds a handle of the database: release it, and
            // the view indexes, before the files go.
            db.set_validator(None);
            ViewEngine::new(db, self.js.clone()).close_indexes();
        }
        std::fs::remove_dir_all(&dir)?;
        if name == USERS_DB {
            self.users.clear();
        }
        Ok(())
    }

    /// Names of every database, sorted.
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// settee.create_db("b").unwrap();
    /// settee.create_db("a/x").unwrap();
    /// assert_eq!(settee.all_dbs().unwrap(), ["_users", "a/x", "b"]);
    /// ```
    pub fn all_dbs(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.root.join("dbs"))? {
            let entry = entry?;
            if let Some(name) = names::decode_dir_name(&entry.file_name().to_string_lossy()) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// The security object of a database (stored, or `{}`).
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// let db = settee.create_db("shop").unwrap();
    /// let security = settee.security(&db).unwrap();
    /// assert_eq!(security.to_json()["members"]["roles"], serde_json::json!(["_admin"]));
    /// ```
    pub fn security(&self, db: &Database) -> Result<Security> {
        Security::load(db)
    }

    /// Replaces a database's security object. Only db admins may; a refused or
    /// malformed update is CouchDB's 500 `no_majority`.
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// use serde_json::json;
    /// use settee::Access;
    /// use settee::UserCtx;
    ///
    /// let db = settee.create_db("shop").unwrap();
    /// let bob = UserCtx { name: Some("bob".into()), roles: vec![] };
    /// let body = json!({"admins": {}, "members": {"names": ["bob"]}});
    /// let refused = settee.set_security(&db, &bob, &body).unwrap_err();
    /// assert_eq!((refused.status(), refused.reason().as_str()), (500, "no_majority"));
    /// settee.set_security(&db, &UserCtx::admin(), &body).unwrap();
    /// assert_eq!(settee.check_member("shop", &db, &bob).unwrap(), Access::Member);
    /// ```
    pub fn set_security(
        &self,
        db: &Database,
        user: &UserCtx,
        body: &serde_json::Value,
    ) -> Result<()> {
        Security::from_json(body)?.store(&db.as_authorized_user(user.clone()))
    }

    /// Checks that `user` may read and write documents of `db` (a member).
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// use settee::Access;
    /// use settee::UserCtx;
    ///
    /// let db = settee.create_db("shop").unwrap();
    /// assert_eq!(settee.check_member("shop", &db, &UserCtx::admin()).unwrap(), Access::Admin);
    /// let err = settee.check_member("shop", &db, &UserCtx::anonymous()).unwrap_err();
    /// assert_eq!(err.status(), 401);
    /// ```
    pub fn check_member(&self, db_name: &str, db: &Database, user: &UserCtx) -> Result<Access> {
        if db_name == USERS_DB {
            // Non-admins only reach single user documents (see
            // `check_users_doc`); the database itself is admin-only.
            return if user.is_admin() {
                Ok(Access::Admin)
            } else {
                Err(Error::Forbidden(
                    "Only admins can access system databases.".into(),
                ))
            };
        }
        Security::load(db)?.access(user)
    }

    /// Checks a non-admin's request on document `id` of `_users`: reading
    /// needs to be the owner; writes may create or update the user's own
    /// document (sign-up included), which [`Settee::prepare_user_doc`] checks.
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// use settee::Access;
    /// use settee::UserCtx;
    ///
    /// let ann = UserCtx { name: Some("ann".into()), roles: vec![] };
    /// assert_eq!(settee.check_users_doc(&ann, "org.couchdb.user:ann", false).unwrap(), Access::Member);
    /// assert_eq!(settee.check_users_doc(&ann, "org.couchdb.user:bob", false).unwrap_err().status(), 403);
    /// // Anyone may sign up.
    /// assert!(settee.check_users_doc(&UserCtx::anonymous(), "org.couchdb.user:cy", true).is_ok());
    /// ```
    pub fn check_users_doc(&self, user: &UserCtx, id: &str, write: bool) -> Result<Access> {
        if user.is_admin() {
            return Ok(Access::Admin);
        }
        let own = user
            .name
            .as_deref()
            .is_some_and(|n| id.strip_prefix("org.couchdb.user:") == Some(n));
        if own || (write && id.starts_with("org.couchdb.user:")) {
            Ok(Access::Member)
        } else {
            Err(Error::Forbidden(
                "You are not allowed to access this document.".into(),
            ))
        }
    }

    /// Authenticates a user by name and password: server admins first, then
    /// `_users` documents. `unauthorized` (401) "Name or password is incorrect."
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// settee.admins().set("root", "pw").unwrap();
    /// assert_eq!(settee.authenticate("root", "pw").unwrap().name.as_deref(), Some("root"));
    /// let err = settee.authenticate("root", "PW").unwrap_err();
    /// assert_eq!((err.status(), err.reason().as_str()), (401, "Name or password is incorrect."));
    /// assert_eq!(settee.authenticate("nobody", "pw").unwrap_err().status(), 401);
    /// ```
    pub fn authenticate(&self, name: &str, password: &str) -> Result<UserCtx> {
        if let Some(ok) = self.admins.check(name, password) {
            return if ok {
                Ok(admin_ctx(name))
            } else {
                Err(auth::bad_credentials())
            };
        }
        let users = self.db(USERS_DB)?;
        self.users.authenticate(&users, name, password)
    }

    /// The user context of a (cookie-)authenticated name without a password check.
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// settee.admins().set("root", "pw").unwrap();
    /// assert!(settee.user_ctx("root").unwrap().unwrap().is_admin());
    /// assert_eq!(settee.user_ctx("nobody").unwrap(), None);
    /// ```
    pub fn user_ctx(&self, name: &str) -> Result<Option<UserCtx>> {
        if self.admins.contains(name) {
            return Ok(Some(admin_ctx(name)));
        }
        let users = self.db(USERS_DB)?;
        auth::load_user(&users, name).map(|u| u.map(|u| u.ctx))
    }

    /// Prepares a document about to be written to `_users`: checks who may
    /// write it and replaces a clear `password` with its PBKDF2 hash.
    ///
    /// ```
    /// # use settee::server::Settee;
    /// # use settee::js::{JsConfig, JsPool};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let settee = Settee::open_with(dir.path(), JsPool::new(JsConfig { workers: 1, ..JsConfig::default() }).unwrap()).unwrap();
    /// use serde_json::json;
    /// use settee::server::USERS_DB;
    /// use settee::UserCtx;
    ///
    /// let id = "org.couchdb.user:ann";
    /// let mut doc = json!({"_id": id, "name": "ann", "type": "user", "roles": [], "password": "pw"});
    /// settee.prepare_user_doc(&UserCtx::anonymous(), id, &mut doc).unwrap();
    /// assert!(doc.get("password").is_none());
    /// assert_eq!(doc["password_scheme"], "pbkdf2");
    /// settee.db(USERS_DB).unwrap().put(doc).unwrap();
    /// let ann = settee.authenticate("ann", "pw").unwrap();
    /// assert_eq!(ann.name.as_deref(), Some("ann"));
    /// ```
    pub fn prepare_user_doc(
        &self,
        user: &UserCtx,
        id: &str,
        doc: &mut serde_json::Value,
    ) -> Result<()> {
        auth::prepare_user_doc(user, id, doc)?;
        self.users.clear();
        Ok(())
    }
}

fn admin_ctx(name: &str) -> UserCtx {
    UserCtx {
        name: Some(name.to_owned()),
        roles: vec!["_admin".into()],
    }
}

/// Shares a [`Settee`] between threads, e.g. as the HTTP server's state.
pub type SharedSettee = Arc<Settee>;
