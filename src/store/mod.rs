//! The document store: CouchDB document semantics on LMDB.
//!
//! A [`Database`] is a directory holding one LMDB environment. It keeps
//! documents with their revision trees, serves reads on consistent snapshots,
//! and numbers every committed change with an increasing seq for the changes
//! feed and the view indexer. One writer at a time; readers never wait for it.
//!
//! ```
//! use serde_json::json;
//! use settee::{Database, ReadOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = Database::create(dir.path().join("shop")).unwrap();
//! let first = db.put(json!({"_id": "apple", "price": 3})).unwrap();
//! assert!(first.rev.starts_with("1-"));
//! // Updating needs the current revision, like CouchDB.
//! let conflict = db.put(json!({"_id": "apple", "price": 4})).unwrap_err();
//! assert_eq!(conflict.status(), 409);
//! db.put(json!({"_id": "apple", "_rev": first.rev, "price": 4})).unwrap();
//! let doc = db.get("apple", &ReadOptions::default()).unwrap();
//! assert_eq!(doc["price"], 4);
//! assert_eq!(db.info().unwrap().doc_count, 1);
//! ```

mod all_docs;
mod changes;
mod compact;
mod doc;
mod local;
mod meta;
mod read;
mod record;
mod revs;
mod security;
mod storage;
mod term;
mod validate;
mod write;

use std::any::Any;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock, Weak};

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;
use serde_json::Value;

pub use all_docs::{AllDocsQuery, AllDocsResponse, AllDocsRow};
pub use changes::{
    ChangeEvent, ChangeRev, ChangeRow, ChangesFilter, ChangesQuery, ChangesResponse, ChangesStyle,
    DocPredicate, IndexChange, Since,
};
pub use doc::{validate_doc_id, DESIGN_PREFIX, LOCAL_PREFIX};
pub use meta::DEFAULT_REVS_LIMIT;
pub use read::{OpenRev, OpenRevs, ReadOptions, RevsDiff};
pub use revs::Rev;
pub use security::{Access, Security};
pub use validate::{UpdateValidator, UserCtx, ValidationRequest};
pub use write::{BulkOptions, BulkResult, DocUpdate};

use storage::Generation;

use crate::{Error, Result};

/// Tuning of a database, applied when it is first opened in the process.
///
/// ```
/// use settee::{Database, OpenMode, StoreOptions};
///
/// let dir = tempfile::tempdir().unwrap();
/// let opts = StoreOptions::default().max_document_size(64);
/// let db = Database::open_with(dir.path().join("db"), OpenMode::Create, opts).unwrap();
/// let big = serde_json::json!({"_id": "big", "text": "x".repeat(100)});
/// assert_eq!(db.put(big).unwrap_err().status(), 413);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Initial LMDB map size in bytes (address space, not disk). The map
    /// then grows ahead of the data, at moments when no reader is open, so
    /// that a long reader never blocks a writer (see `src/store/storage.rs`).
    pub initial_map_size: usize,
    /// Largest accepted document body, in bytes of JSON (CouchDB's
    /// `max_document_size`, default 8,000,000).
    pub max_document_size: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            initial_map_size: 1 << 30,
            max_document_size: 8_000_000,
        }
    }
}

impl StoreOptions {
    /// Sets the initial map size.
    pub fn initial_map_size(mut self, bytes: usize) -> Self {
        self.initial_map_size = bytes;
        self
    }
    /// Sets the maximum document size.
    pub fn max_document_size(mut self, bytes: usize) -> Self {
        self.max_document_size = bytes;
        self
    }
}

/// How [`Database::open_with`] treats the directory.
///
/// ```
/// use settee::{Database, OpenMode, StoreOptions};
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("db");
/// let open = |mode| Database::open_with(&path, mode, StoreOptions::default());
/// assert_eq!(open(OpenMode::Open).unwrap_err().status(), 404);
/// open(OpenMode::Create).unwrap();
/// assert_eq!(open(OpenMode::Create).unwrap_err().name(), "file_exists");
/// assert!(open(OpenMode::OpenOrCreate).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create a new database; `file_exists` if there is one.
    Create,
    /// Open an existing database; `not_found` if there is none.
    Open,
    /// Open, creating the database if needed.
    OpenOrCreate,
}

/// `sizes` in [`DbInfo`] (see [`Database::info`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DbSizes {
    /// Bytes of the data file on disk.
    pub file: u64,
    /// Bytes of the file's pages holding live data (free pages left by
    /// old versions excluded: compaction gives those back).
    pub active: u64,
    /// Bytes of the winning revisions' JSON bodies.
    pub external: u64,
}

/// Database information, shaped like CouchDB's `GET /{db}`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let db = settee::Database::create(dir.path().join("shop")).unwrap();
/// db.put(serde_json::json!({"_id": "a"})).unwrap();
/// let info = serde_json::to_value(db.info().unwrap()).unwrap();
/// assert_eq!(info["db_name"], "shop");
/// assert_eq!((info["doc_count"].as_u64(), info["update_seq"].as_u64()), (Some(1), Some(1)));
/// assert!(info["sizes"]["file"].as_u64().unwrap() > 0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DbInfo {
    /// When this process opened the database (seconds since the epoch, as a string).
    pub instance_start_time: String,
    /// The database name (the directory's name).
    pub db_name: String,
    /// Always 0: settee has no purge.
    pub purge_seq: u64,
    /// The seq of the latest change.
    pub update_seq: u64,
    /// Sizes in bytes.
    pub sizes: DbSizes,
    /// Database properties (none).
    pub props: serde_json::Map<String, Value>,
    /// Number of deleted documents.
    pub doc_del_count: u64,
    /// Number of live documents.
    pub doc_count: u64,
    /// The on-disk format version.
    pub disk_format_version: u32,
    /// Whether a compaction is running.
    pub compact_running: bool,
}

/// Documents validated and serialised by [`Database::prepare_bulk`], ready
/// for [`Database::write_prepared`].
///
/// ```
/// use serde_json::json;
/// use settee::{BulkOptions, Database};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// let opts = BulkOptions::default().per_doc_errors(true);
/// let batch = db.prepare_bulk(vec![json!({"_id": "a"}), json!({"_id": "_bad"})], opts).unwrap();
/// assert_eq!(db.update_seq().unwrap(), 0); // nothing written yet
/// let results = db.write_prepared(batch).unwrap();
/// assert!(!results[0].is_error());
/// assert!(results[1].is_error()); // `_bad` is not a valid id
/// assert_eq!(db.update_seq().unwrap(), 1);
/// ```
pub struct PreparedBatch {
    opts: BulkOptions,
    /// Per input document: its refusal, or `None` when it is in `prepared`.
    slots: Vec<Option<BulkResult>>,
    prepared: Arc<Vec<write::Prepared>>,
    early: Option<EarlyValidation>,
}

/// Verdicts [`Database::prepare_bulk`] has set out to reach (on a thread of
/// their own), with what they assume.
struct EarlyValidation {
    /// [`Shared::validation_epoch`] before the snapshot was read.
    epoch: u64,
    /// The user they are reached for.
    user: UserCtx,
    /// By prepared document, once reached.
    verdicts: Receiver<Result<Vec<Option<write::EarlyVerdict>>>>,
}

/// Values derived from design documents, by (type, document id), all taken
/// at one [`Shared::validation_epoch`] (which every design-document write
/// moves): a memo of another epoch is emptied before use.
#[derive(Default)]
struct DesignMemo {
    epoch: u64,
    /// By document id, one value per type.
    entries: HashMap<String, Vec<Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for PreparedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedBatch")
            .field("docs", &self.slots.len())
            .field(
                "refused",
                &self.slots.iter().filter(|s| s.is_some()).count(),
            )
            .finish()
    }
}

/// State shared by every handle on one database directory in this process.
pub(crate) struct Shared {
    path: PathBuf,
    name: String,
    generation: RwLock<Arc<Generation>>,
    /// Serialises writers (LMDB allows one; waiting here keeps the map-growth
    /// logic simple and lets compaction quiesce writes).
    write_lock: Mutex<()>,
    compact_lock: Mutex<()>,
    compact_running: AtomicBool,
    subscribers: Mutex<Vec<Sender<ChangeEvent>>>,
    validator: RwLock<Option<Arc<dyn UpdateValidator>>>,
    /// Moves (after the commit, under the write lock) whenever what
    /// validators see besides the document may change: a design document or
    /// metadata (the security object) written, or the validator replaced.
    /// Early verdicts ([`Database::prepare_bulk`]) reached under another
    /// value are not used.
    validation_epoch: AtomicU64,
    /// What upper layers derived from design documents
    /// ([`Database::design_doc_memo`]), valid at one `validation_epoch`.
    design_memo: Mutex<DesignMemo>,
    options: StoreOptions,
    instance_start_time: String,
}

impl Shared {
    /// The live generation.
    fn current(&self) -> Arc<Generation> {
        self.generation
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Open databases by canonical path, so handles share one LMDB environment
/// (LMDB forbids opening an environment twice in a process).
static REGISTRY: LazyLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = LazyLock::new(Default::default);

/// A handle on a database. Cheap to clone; `Send + Sync`.
///
/// Writes are made for a [`UserCtx`] (a server admin by default, see
/// [`Database::as_user`]), which validators receive.
///
/// ```
/// use serde_json::json;
/// use settee::Database;
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// let writers: Vec<_> = (0..4)
///     .map(|t| {
///         let db = db.clone();
///         std::thread::spawn(move || {
///             for i in 0..25 {
///                 db.put(json!({"_id": format!("t{t}-{i}")})).unwrap();
///             }
///         })
///     })
///     .collect();
/// for w in writers {
///     w.join().unwrap();
/// }
/// assert_eq!(db.info().unwrap().doc_count, 100);
/// assert_eq!(db.update_seq().unwrap(), 100);
/// ```
#[derive(Clone)]
pub struct Database {
    shared: Arc<Shared>,
    caller: Arc<Caller>,
}

/// Who a handle acts for.
#[derive(Debug)]
struct Caller {
    user: UserCtx,
    /// Whether the store enforces the security object for this user
    /// ([`Database::as_user`]) or the embedding server already did
    /// ([`Database::as_authorized_user`]).
    checked: bool,
}

impl Caller {
    fn admin() -> Arc<Caller> {
        Arc::new(Caller {
            user: UserCtx::admin(),
            checked: true,
        })
    }
}

/// A [`Database`] handle that does not keep the database open
/// ([`Database::downgrade`]).
#[derive(Clone)]
pub struct WeakDatabase {
    shared: Weak<Shared>,
    caller: Arc<Caller>,
}

impl WeakDatabase {
    /// The database, if some [`Database`] handle still keeps it open.
    pub fn upgrade(&self) -> Option<Database> {
        Some(Database {
            shared: self.shared.upgrade()?,
            caller: self.caller.clone(),
        })
    }

    /// Whether some [`Database`] handle still keeps the database open.
    pub fn is_open(&self) -> bool {
        self.shared.strong_count() > 0
    }

    /// Whether `db` is a handle of this database.
    pub fn is(&self, db: &Database) -> bool {
        std::ptr::eq(self.shared.as_ptr(), Arc::as_ptr(&db.shared))
    }
}

impl std::fmt::Debug for WeakDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakDatabase").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.shared.path)
            .finish()
    }
}

impl Database {
    /// Creates a new database in `dir` (created if missing).
    /// `file_exists` (412) if it already holds one.
    ///
    /// ```
    /// use settee::{Database, Error};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// assert_eq!(db.info().unwrap().doc_count, 0);
    /// let again = Database::create(dir.path().join("db")).unwrap_err();
    /// assert!(matches!(again, Error::DatabaseExists));
    /// assert_eq!(again.status(), 412);
    /// ```
    pub fn create(dir: impl AsRef<Path>) -> Result<Database> {
        Self::open_with(dir, OpenMode::Create, StoreOptions::default())
    }

    /// Opens the database in `dir`; `not_found` if there is none.
    ///
    /// ```
    /// use settee::Database;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("db");
    /// assert_eq!(Database::open(&path).unwrap_err().status(), 404);
    /// Database::create(&path).unwrap().put(serde_json::json!({"_id": "a"})).unwrap();
    /// let db = Database::open(&path).unwrap();
    /// assert_eq!(db.info().unwrap().doc_count, 1);
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Database> {
        Self::open_with(dir, OpenMode::Open, StoreOptions::default())
    }

    /// Opens the database in `dir`, creating it if needed.
    ///
    /// ```
    /// use settee::Database;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let first = Database::open_or_create(dir.path().join("db")).unwrap();
    /// first.put(serde_json::json!({"_id": "a"})).unwrap();
    /// // A second handle on the same directory shares the data.
    /// let second = Database::open_or_create(dir.path().join("db")).unwrap();
    /// assert_eq!(second.update_seq().unwrap(), 1);
    /// ```
    pub fn open_or_create(dir: impl AsRef<Path>) -> Result<Database> {
        Self::open_with(dir, OpenMode::OpenOrCreate, StoreOptions::default())
    }

    /// Opens or creates with explicit options. When the database is already
    /// open in this process the existing handle's options stay in force.
    ///
    /// ```
    /// use settee::{Database, OpenMode, StoreOptions};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let opts = StoreOptions::default().initial_map_size(16 << 20);
    /// let db = Database::open_with(dir.path().join("db"), OpenMode::OpenOrCreate, opts).unwrap();
    /// assert_eq!(db.name(), "db");
    /// ```
    pub fn open_with(
        dir: impl AsRef<Path>,
        mode: OpenMode,
        options: StoreOptions,
    ) -> Result<Database> {
        let dir = dir.as_ref();
        let mut registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        registry.retain(|_, w| w.strong_count() > 0);
        let exists = storage::read_current(dir)?.is_some();
        match (mode, exists) {
            (OpenMode::Create, true) => return Err(Error::DatabaseExists),
            (OpenMode::Open, false) => return Err(Error::not_found("Database does not exist.")),
            _ => {}
        }
        if !exists {
            storage::check_creatable(dir)?;
            std::fs::create_dir_all(dir)?;
        }
        let path = dir.canonicalize()?;
        if let Some(shared) = registry.get(&path).and_then(Weak::upgrade) {
            return Ok(Database {
                shared,
                caller: Caller::admin(),
            });
        }
        let generation_name = match storage::read_current(&path)? {
            Some(name) => name,
            None => {
                let name = storage::first_generation();
                storage::remove_stale_generations(&path, "")?;
                drop(Generation::open(
                    &path.join(&name),
                    options.initial_map_size,
                )?);
                storage::write_current(&path, &name)?;
                name
            }
        };
        storage::remove_stale_generations(&path, &generation_name)?;
        let generation = Generation::open(&path.join(&generation_name), options.initial_map_size)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let shared = Arc::new(Shared {
            path: path.clone(),
            name,
            generation: RwLock::new(Arc::new(generation)),
            write_lock: Mutex::new(()),
            compact_lock: Mutex::new(()),
            compact_running: AtomicBool::new(false),
            subscribers: Mutex::new(Vec::new()),
            validator: RwLock::new(None),
            validation_epoch: AtomicU64::new(0),
            design_memo: Mutex::new(DesignMemo::default()),
            options,
            instance_start_time: started.to_string(),
        });
        registry.insert(path, Arc::downgrade(&shared));
        Ok(Database {
            shared,
            caller: Caller::admin(),
        })
    }

    /// The database directory (canonical). View indexes live in `<path>/views/`.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// assert_eq!(db.path(), dir.path().join("db").canonicalize().unwrap());
    /// ```
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The database name: the directory's name.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("orders")).unwrap();
    /// assert_eq!(db.name(), "orders");
    /// ```
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// A handle acting for `user`: validators see it as `userCtx`, and the
    /// database's security object ([`Security`]) applies as in CouchDB. A
    /// user who is neither a member nor an admin is refused every read and
    /// write (401 `unauthorized` when anonymous, else 403 `forbidden`);
    /// design documents are written by db admins only; `_admin` always passes.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{Database, Security, UserCtx};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// db.put(json!({"_id": "a"})).unwrap(); // `db` acts as a server admin
    /// let bob = db.as_user(UserCtx { name: Some("bob".into()), roles: vec![] });
    /// // Without a security object a database is admin-only, as in CouchDB 3...
    /// let err = bob.get("a", &Default::default()).unwrap_err();
    /// assert_eq!((err.status(), err.name()), (403, "forbidden"));
    /// // ...one without members is open to everyone...
    /// Security::from_json(&json!({})).unwrap().store(&db).unwrap();
    /// assert!(bob.get("a", &Default::default()).is_ok());
    /// // ...and one with members only to them (and admins).
    /// Security::from_json(&json!({"members": {"names": ["ann"]}})).unwrap().store(&db).unwrap();
    /// assert_eq!(bob.get("a", &Default::default()).unwrap_err().status(), 403);
    /// assert_eq!(db.as_user(UserCtx::anonymous()).put(json!({"_id": "b"})).unwrap_err().status(), 401);
    /// let ann = db.as_user(UserCtx { name: Some("ann".into()), roles: vec![] });
    /// ann.put(json!({"_id": "b"})).unwrap();
    /// let refused = ann.put(json!({"_id": "_design/app"})).unwrap_err();
    /// assert_eq!(refused.reason(), "You are not a db or server admin.");
    /// ```
    pub fn as_user(&self, user: UserCtx) -> Database {
        Database {
            shared: self.shared.clone(),
            caller: Arc::new(Caller {
                user,
                checked: true,
            }),
        }
    }

    /// A handle acting for `user` whose access the caller has already
    /// checked, for servers with rules of their own (CouchDB's `_users`
    /// database lets users reach their own documents). Validators still see
    /// `user`, and design documents still need a db admin.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{Database, Security, UserCtx};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// Security::from_json(&json!({"members": {"names": ["ann"]}})).unwrap().store(&db).unwrap();
    /// let bob = UserCtx { name: Some("bob".into()), roles: vec![] };
    /// assert!(db.as_user(bob.clone()).put(json!({"_id": "a"})).is_err());
    /// assert!(db.as_authorized_user(bob).put(json!({"_id": "a"})).is_ok());
    /// ```
    pub fn as_authorized_user(&self, user: UserCtx) -> Database {
        Database {
            shared: self.shared.clone(),
            caller: Arc::new(Caller {
                user,
                checked: false,
            }),
        }
    }

    /// The user this handle acts for.
    ///
    /// ```
    /// use settee::UserCtx;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// assert!(db.user().is_admin());
    /// let bob = UserCtx { name: Some("bob".into()), roles: vec!["sales".into()] };
    /// assert_eq!(db.as_user(bob).user().name.as_deref(), Some("bob"));
    /// ```
    pub fn user(&self) -> &UserCtx {
        &self.caller.user
    }

    /// The access this handle's user has under the database's security
    /// object: [`Access::Admin`] for server and db admins, [`Access::Member`]
    /// for members (everyone, when the database has no members), else
    /// CouchDB's 401 or 403.
    ///
    /// ```
    /// use settee::{Access, Database, Security, UserCtx};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// assert_eq!(db.access().unwrap(), Access::Admin);
    /// let anonymous = db.as_user(UserCtx::anonymous());
    /// assert_eq!(anonymous.access().unwrap_err().status(), 401); // admin-only by default
    /// Security::from_json(&serde_json::json!({})).unwrap().store(&db).unwrap();
    /// assert_eq!(anonymous.access().unwrap(), Access::Member);
    /// ```
    pub fn access(&self) -> Result<Access> {
        if self.caller.user.is_admin() {
            return Ok(Access::Admin);
        }
        Security::load(self)?.access(&self.caller.user)
    }

    /// Refuses a user whom the security object keeps out (see [`Database::as_user`]).
    fn authorize(&self) -> Result<()> {
        if self.caller.checked && !self.caller.user.is_admin() {
            self.access()?;
        }
        Ok(())
    }

    /// Refuses a user who is not an admin of this database.
    fn authorize_admin(&self) -> Result<()> {
        if self.caller.checked && self.access()? != Access::Admin {
            return Err(Error::Unauthorized(
                "You are not a db or server admin.".into(),
            ));
        }
        Ok(())
    }

    /// A handle that does not keep the database open: for background work
    /// (such as view cleanup) that must end when the database's last handle
    /// is dropped.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// let weak = db.downgrade();
    /// assert!(weak.upgrade().is_some());
    /// drop(db);
    /// assert!(weak.upgrade().is_none());
    /// ```
    pub fn downgrade(&self) -> WeakDatabase {
        WeakDatabase {
            shared: Arc::downgrade(&self.shared),
            caller: self.caller.clone(),
        }
    }

    /// Installs (or removes) the validator run before every document write.
    /// The validator is shared by every handle on the database in this
    /// process. See [`UpdateValidator`] for an example.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use settee::{Database, Error, UpdateValidator, ValidationRequest};
    ///
    /// struct ReadOnly;
    /// impl UpdateValidator for ReadOnly {
    ///     fn validate_batch(&self, reqs: &[ValidationRequest<'_>]) -> Vec<settee::Result<()>> {
    ///         reqs.iter().map(|_| Err(Error::Forbidden("read-only".into()))).collect()
    ///     }
    /// }
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// db.set_validator(Some(Arc::new(ReadOnly)));
    /// assert_eq!(db.put(serde_json::json!({"_id": "a"})).unwrap_err().reason(), "read-only");
    /// db.set_validator(None);
    /// assert!(db.put(serde_json::json!({"_id": "a"})).is_ok());
    /// ```
    pub fn set_validator(&self, validator: Option<Arc<dyn UpdateValidator>>) {
        *self
            .shared
            .validator
            .write()
            .unwrap_or_else(|p| p.into_inner()) = validator;
        self.shared.validation_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Creates or updates one document (`PUT /{db}/{id}`). Without `_id` a
    /// random id is generated. `_local/` ids write local documents.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{Database, Error};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let created = db.put(json!({"_id": "a", "n": 1})).unwrap();
    /// assert_eq!((created.ok, created.id.as_str()), (true, "a"));
    /// let updated = db.put(json!({"_id": "a", "_rev": created.rev, "n": 2})).unwrap();
    /// assert!(updated.rev.starts_with("2-"));
    /// // A stale `_rev` is a conflict.
    /// let stale = db.put(json!({"_id": "a", "_rev": created.rev, "n": 3})).unwrap_err();
    /// assert!(matches!(stale, Error::Conflict));
    /// // Without `_id`, the database picks one.
    /// let anon = db.put(json!({"n": 4})).unwrap();
    /// assert!(!anon.id.is_empty());
    /// ```
    pub fn put(&self, doc: Value) -> Result<DocUpdate> {
        let mut results = self.bulk_docs(vec![doc], BulkOptions::default())?;
        match results.pop() {
            Some(BulkResult::Ok(update)) => Ok(update),
            Some(BulkResult::Error { error, .. }) => Err(error),
            None => Err(Error::Corrupt("bulk write returned no result".into())),
        }
    }

    /// Deletes a document (`DELETE /{db}/{id}?rev=`): writes a tombstone
    /// revision. `not_found` (`missing`/`deleted`) if there is nothing to delete.
    ///
    /// ```
    /// use settee::{Database, ReadOptions, Rev};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let put = db.put(serde_json::json!({"_id": "a"})).unwrap();
    /// let gone = db.delete("a", &Rev::parse(&put.rev).unwrap()).unwrap();
    /// assert!(gone.rev.starts_with("2-"));
    /// let err = db.get("a", &ReadOptions::default()).unwrap_err();
    /// assert_eq!((err.status(), err.reason().as_str()), (404, "deleted"));
    /// let err = db.delete("nope", &Rev::parse("1-abc").unwrap()).unwrap_err();
    /// assert_eq!(err.reason(), "missing");
    /// assert_eq!(db.info().unwrap().doc_del_count, 1);
    /// ```
    pub fn delete(&self, id: &str, rev: &Rev) -> Result<DocUpdate> {
        self.authorize()?;
        if id.starts_with(LOCAL_PREFIX) {
            return self.delete_local(id);
        }
        self.read(|txn, t| {
            let rec = read::record(txn, t, id)?.ok_or_else(|| Error::not_found("missing"))?;
            if rec.tree.is_deleted() {
                return Err(Error::not_found("deleted").into());
            }
            Ok(())
        })?;
        self.put(serde_json::json!({"_id": id, "_rev": rev.to_string(), "_deleted": true}))
    }

    /// Writes many documents in one transaction (`POST /{db}/_bulk_docs`).
    ///
    /// Returns one result per document in request order; with
    /// `new_edits: false`, only the refused documents, ordered by document
    /// id (as CouchDB). A malformed document fails the whole call, as does
    /// `new_edits: false` without a revision, unless
    /// [`BulkOptions::per_doc_errors`] is set.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{BulkOptions, Database};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let res = db
    ///     .bulk_docs(vec![json!({"_id": "a"}), json!({"_id": "a"})], BulkOptions::default())
    ///     .unwrap();
    /// let body = serde_json::to_value(&res).unwrap();
    /// assert_eq!(body[0]["ok"], true);
    /// // The second edit of "a" in the same request has no `_rev`: a conflict.
    /// assert_eq!(body[1]["error"], "conflict");
    ///
    /// // Replication: revisions are kept as given, branches become conflicts.
    /// let top = format!("1-{}", "f".repeat(32));
    /// let branch = json!({"_id": "a", "_rev": top, "v": 2});
    /// assert!(db.bulk_docs(vec![branch], BulkOptions::replicated()).unwrap().is_empty());
    /// let doc = db.get("a", &settee::ReadOptions::default().conflicts(true)).unwrap();
    /// assert_eq!(doc["_rev"], top);
    /// assert_eq!(doc["_conflicts"].as_array().unwrap().len(), 1);
    /// ```
    pub fn bulk_docs(&self, docs: Vec<Value>, opts: BulkOptions) -> Result<Vec<BulkResult>> {
        self.write_prepared(self.prepare_unvalidated(docs, opts)?)
    }

    /// The first half of [`Database::bulk_docs`]: checks the documents,
    /// serialises their bodies and computes their revisions (in parallel),
    /// without writing. Bulk loaders prepare the next batch while the
    /// previous one is written by [`Database::write_prepared`]. So that this
    /// overlap covers `validate_doc_update` too, a large batch also starts
    /// being validated here, on a snapshot and a thread of its own; the
    /// write waits for those verdicts and revalidates only the documents
    /// whose stored parent changed meanwhile (or all of them, if a design
    /// document, the security object, the validator or the user changed).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{BulkOptions, Database};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let docs: Vec<_> = (0..3).map(|n| json!({"_id": format!("d{n}")})).collect();
    /// let batch = db.prepare_bulk(docs, BulkOptions::default()).unwrap();
    /// assert_eq!(db.update_seq().unwrap(), 0); // nothing written yet
    /// let results = db.write_prepared(batch).unwrap();
    /// assert!(results.iter().all(|r| !r.is_error()));
    /// ```
    pub fn prepare_bulk(&self, docs: Vec<Value>, opts: BulkOptions) -> Result<PreparedBatch> {
        let mut batch = self.prepare_unvalidated(docs, opts)?;
        batch.early = self.validate_early(&batch.prepared, opts)?;
        Ok(batch)
    }

    /// [`Database::prepare_bulk`] without the early validation: for
    /// [`Database::bulk_docs`], which writes at once and validates inside the
    /// write (overlapping validation with applying).
    fn prepare_unvalidated(&self, docs: Vec<Value>, opts: BulkOptions) -> Result<PreparedBatch> {
        // Who may write is settled before what is written is looked at.
        self.authorize()?;
        let mut slots = Vec::with_capacity(docs.len());
        let mut prepared = Vec::with_capacity(docs.len());
        for p in write::prepare(docs, opts, self.shared.options.max_document_size) {
            match p {
                Ok(p) => {
                    prepared.push(p);
                    slots.push(None);
                }
                Err(BulkResult::Error { error, .. }) if !opts.per_doc_errors => return Err(error),
                Err(refused) => slots.push(Some(refused)),
            }
        }
        Ok(PreparedBatch {
            opts,
            slots,
            prepared: Arc::new(prepared),
            early: None,
        })
    }

    /// Starts reaching early verdicts for a large batch when a validator is
    /// installed, on a thread of its own: the caller goes on preparing the
    /// next batch meanwhile, and [`Database::write_prepared`] waits for them
    /// (before taking the write lock).
    fn validate_early(
        &self,
        prepared: &Arc<Vec<write::Prepared>>,
        opts: BulkOptions,
    ) -> Result<Option<EarlyValidation>> {
        let Some(validator) = self.validator() else {
            return Ok(None);
        };
        // Asked here, outside any transaction (validators read the database).
        if prepared.len() < write::PIPELINE_MIN || !validator.validates_documents()? {
            return Ok(None);
        }
        // Read before the snapshot: a change after it moves the epoch later.
        let epoch = self.shared.validation_epoch.load(Ordering::Acquire);
        let (tx, verdicts) = crossbeam_channel::bounded(1);
        let (generation, prepared, user) = (
            self.shared.current(),
            prepared.clone(),
            self.caller.user.clone(),
        );
        std::thread::Builder::new()
            .name("settee-validate".into())
            .spawn(move || {
                let ctx = write::WriteContext {
                    new_edits: opts.new_edits,
                    validator: Some(&*validator),
                    user: &user,
                    early: &[],
                };
                // A batch dropped unwritten has nobody listening: fine.
                let _ = tx.send(write::validate_early(&generation, &prepared, &ctx));
            })?;
        Ok(Some(EarlyValidation {
            epoch,
            user: self.caller.user.clone(),
            verdicts,
        }))
    }

    /// The installed validator.
    fn validator(&self) -> Option<Arc<dyn UpdateValidator>> {
        self.shared
            .validator
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The second half of [`Database::bulk_docs`]: writes a prepared batch
    /// in one transaction and returns the per-document results.
    pub fn write_prepared(&self, batch: PreparedBatch) -> Result<Vec<BulkResult>> {
        self.authorize()?;
        let PreparedBatch {
            opts,
            slots,
            prepared,
            early,
        } = batch;
        let validator = self.validator();
        // Waited for before the write lock. Early validation that failed
        // leaves the documents to be validated in the write, which reports
        // the failure if it persists.
        let early = early.and_then(|e| match e.verdicts.recv() {
            Ok(Ok(verdicts)) => Some((e.epoch, e.user, verdicts)),
            _ => None,
        });
        let (written, events) = if prepared.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            let _writer = self
                .shared
                .write_lock
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            // Under the write lock the epoch cannot move: early verdicts
            // reached under it still see the design documents and security
            // object in force.
            let epoch = self.shared.validation_epoch.load(Ordering::Acquire);
            let early = early.filter(|(e, user, _)| *e == epoch && *user == self.caller.user);
            let ctx = write::WriteContext {
                new_edits: opts.new_edits,
                validator: validator.as_deref(),
                user: &self.caller.user,
                early: early.as_ref().map_or(&[], |(_, _, verdicts)| &verdicts[..]),
            };
            let generation = self.shared.current();
            let written = generation.write(|txn, t| write::write_batch(txn, t, &prepared, &ctx))?;
            if prepared.iter().any(write::Prepared::is_design) {
                self.shared.validation_epoch.fetch_add(1, Ordering::AcqRel);
            }
            written
        };
        let results = if opts.new_edits {
            // One result per written document: fill the slots in order.
            let mut written = written.into_iter();
            slots
                .into_iter()
                .map(|slot| slot.or_else(|| written.next()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::Corrupt("bulk write lost a result".into()))?
        } else {
            // Only the refusals, in document id order (stable for repeated
            // ids): CouchDB groups a replicated batch by id
            // (`couch_db:group_alike_docs/1`) and reports the errors that
            // validation collected in that order.
            let mut refused: Vec<BulkResult> = slots.into_iter().flatten().chain(written).collect();
            refused.sort_by(|a, b| a.id().cmp(b.id()));
            refused
        };
        self.publish(events);
        Ok(results)
    }

    fn publish(&self, events: Vec<ChangeEvent>) {
        if events.is_empty() {
            return;
        }
        let mut subs = self
            .shared
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        subs.retain(|tx| events.iter().all(|e| tx.send(e.clone()).is_ok()));
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&heed::RoTxn<'_, heed::WithoutTls>, &storage::Tables) -> storage::TxnResult<T>,
    ) -> Result<T> {
        self.shared.current().read(f)
    }

    /// Reads a document (`GET /{db}/{id}`): the winner, or `opts.rev`.
    /// `not_found` with reason `missing` or `deleted`.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{Database, ReadOptions, Rev};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let one = db.put(json!({"_id": "a", "n": 1})).unwrap();
    /// let two = db.put(json!({"_id": "a", "_rev": one.rev, "n": 2})).unwrap();
    ///
    /// let doc = db.get("a", &ReadOptions::default()).unwrap();
    /// assert_eq!(doc, json!({"_id": "a", "_rev": two.rev, "n": 2}));
    /// // An older revision, while compaction has not dropped it.
    /// let old = db.get("a", &ReadOptions::default().rev(Rev::parse(&one.rev).unwrap())).unwrap();
    /// assert_eq!(old["n"], 1);
    /// let with_history = db.get("a", &ReadOptions::default().revs(true)).unwrap();
    /// assert_eq!(with_history["_revisions"]["start"], 2);
    /// assert_eq!(db.get("b", &ReadOptions::default()).unwrap_err().reason(), "missing");
    /// ```
    pub fn get(&self, id: &str, opts: &ReadOptions) -> Result<Value> {
        self.authorize()?;
        if id.starts_with(LOCAL_PREFIX) {
            return self.read(|txn, t| {
                let (n, body) =
                    local::read(txn, t, id)?.ok_or_else(|| Error::not_found("missing"))?;
                Ok(local::to_json(id, n, body, opts.revs)?)
            });
        }
        self.read(|txn, t| read::get(txn, t, id, opts))
    }

    /// What `derive` makes of design document `id` (its parsed views, say),
    /// kept until a design document of this database changes: the answer of
    /// `derive(&self.get(id, &ReadOptions::default())?)` without reading or
    /// deriving again. Access is checked as [`Database::get`] checks it;
    /// errors are not kept.
    pub(crate) fn design_doc_memo<T: Any + Send + Sync>(
        &self,
        id: &str,
        derive: impl FnOnce(&Value) -> Result<T>,
    ) -> Result<Arc<T>> {
        self.authorize()?;
        // Read before the document: a write after this read moves the epoch
        // past it, so an entry never outlives the content it came from.
        let epoch = self.shared.validation_epoch.load(Ordering::Acquire);
        let memo = || {
            self.shared
                .design_memo
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        {
            let memo = memo();
            let kept = (memo.epoch == epoch)
                .then(|| memo.entries.get(id))
                .flatten()
                .and_then(|values| values.iter().find_map(|v| v.clone().downcast::<T>().ok()));
            if let Some(value) = kept {
                return Ok(value);
            }
        }
        let derived = Arc::new(derive(&self.get(id, &ReadOptions::default())?)?);
        let mut memo = memo();
        if memo.epoch < epoch {
            memo.entries.clear();
            memo.epoch = epoch;
        }
        if memo.epoch == epoch {
            memo.entries
                .entry(id.to_string())
                .or_default()
                .push(derived.clone());
        }
        Ok(derived)
    }

    /// Reads several revisions (`GET /{db}/{id}?open_revs=`), shaped as
    /// CouchDB's `[{"ok": doc} | {"missing": rev}]`. `revs` adds
    /// `_revisions` to each document; `latest` reads the leaves of the asked
    /// revisions instead.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{Database, OpenRev, OpenRevs, Rev};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let put = db.put(json!({"_id": "a", "n": 1})).unwrap();
    /// let asked = OpenRevs::Revs(vec![Rev::parse(&put.rev).unwrap(), Rev::parse("9-zz").unwrap()]);
    /// let revs = db.open_revs("a", &asked, false, false).unwrap();
    /// assert!(matches!(&revs[0], OpenRev::Ok(doc) if doc["n"] == 1));
    /// assert_eq!(revs[1], OpenRev::Missing("9-zz".into()));
    /// assert_eq!(serde_json::to_value(&revs[1]).unwrap(), json!({"missing": "9-zz"}));
    ///
    /// let leaves = db.open_revs("a", &OpenRevs::All, false, false).unwrap();
    /// assert_eq!(leaves.len(), 1);
    /// ```
    pub fn open_revs(
        &self,
        id: &str,
        which: &OpenRevs,
        revs: bool,
        latest: bool,
    ) -> Result<Vec<OpenRev>> {
        self.authorize()?;
        self.read(|txn, t| read::open_revs(txn, t, id, which, revs, latest))
    }

    /// `POST /{db}/_revs_diff`: for each document, the asked revisions the
    /// database lacks and the leaves that may be their ancestors. Documents
    /// missing nothing are left out. `_missing_revs` is the `missing` part.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// use settee::Rev;
    /// let r = db.put(serde_json::json!({"_id": "a"})).unwrap();
    /// let ask = vec![("a".to_owned(), vec![Rev::parse(&r.rev).unwrap(), Rev::parse("2-x").unwrap()])];
    /// let diff = db.revs_diff(&ask).unwrap();
    /// assert_eq!(diff[0].1.missing, ["2-x"]);
    /// assert_eq!(diff[0].1.possible_ancestors, [r.rev]);
    /// ```
    pub fn revs_diff(&self, revs: &[(String, Vec<Rev>)]) -> Result<Vec<(String, RevsDiff)>> {
        self.authorize()?;
        self.read(|txn, t| {
            let mut out = Vec::new();
            for (id, asked) in revs {
                if let Some(diff) = read::revs_diff(txn, t, id, asked)? {
                    out.push((id.clone(), diff));
                }
            }
            Ok(out)
        })
    }

    /// Writes a `_local/` document; `body` may carry `_rev: "0-N"`.
    /// Local documents are not replicated and never appear in the changes
    /// feed or in views.
    ///
    /// ```
    /// use serde_json::json;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// let first = db.put_local("_local/checkpoint", json!({"seq": 10})).unwrap();
    /// assert_eq!(first.rev, "0-1");
    /// let next = db.put_local("_local/checkpoint", json!({"_rev": "0-1", "seq": 20})).unwrap();
    /// assert_eq!(next.rev, "0-2");
    /// assert_eq!(db.update_seq().unwrap(), 0); // not a document change
    /// assert_eq!(db.put_local("checkpoint", json!({})).unwrap_err().status(), 400);
    /// ```
    pub fn put_local(&self, id: &str, body: Value) -> Result<DocUpdate> {
        self.authorize()?;
        let Value::Object(mut map) = body else {
            return Err(Error::bad_request("Document must be a JSON object"));
        };
        if !id.starts_with(LOCAL_PREFIX) {
            return Err(Error::bad_request("Invalid _local document id."));
        }
        map.insert("_id".into(), Value::String(id.to_owned()));
        self.put(Value::Object(map))
    }

    /// Reads a `_local/` document.
    ///
    /// ```
    /// use serde_json::json;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// db.put_local("_local/cfg", json!({"mode": "fast"})).unwrap();
    /// let doc = db.get_local("_local/cfg").unwrap();
    /// assert_eq!(doc, json!({"_id": "_local/cfg", "_rev": "0-1", "mode": "fast"}));
    /// assert_eq!(db.get_local("_local/none").unwrap_err().status(), 404);
    /// ```
    pub fn get_local(&self, id: &str) -> Result<Value> {
        self.authorize()?;
        if !id.starts_with(LOCAL_PREFIX) {
            return Err(Error::bad_request("Invalid _local document id."));
        }
        self.get(id, &ReadOptions::default())
    }

    /// Deletes a `_local/` document (any rev is accepted; the answer's rev is `0-0`).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// db.put_local("_local/tmp", serde_json::json!({})).unwrap();
    /// assert_eq!(db.delete_local("_local/tmp").unwrap().rev, "0-0");
    /// assert_eq!(db.get_local("_local/tmp").unwrap_err().status(), 404);
    /// ```
    pub fn delete_local(&self, id: &str) -> Result<DocUpdate> {
        self.authorize()?;
        if !id.starts_with(LOCAL_PREFIX) {
            return Err(Error::bad_request("Invalid _local document id."));
        }
        self.put(serde_json::json!({"_id": id, "_deleted": true}))
    }

    /// Lists live documents by id (`GET /{db}/_all_docs`).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{AllDocsQuery, BulkOptions, Database};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let docs = ["b", "a", "c"].iter().map(|id| json!({ "_id": id })).collect();
    /// db.bulk_docs(docs, BulkOptions::default()).unwrap();
    /// let page = db.all_docs(&AllDocsQuery::new().start_key("b").limit(1)).unwrap();
    /// assert_eq!((page.total_rows, page.offset), (3, Some(1)));
    /// let rows = serde_json::to_value(&page.rows).unwrap();
    /// assert_eq!(rows[0]["id"], "b");
    /// ```
    pub fn all_docs(&self, q: &AllDocsQuery) -> Result<AllDocsResponse> {
        self.authorize()?;
        self.read(|txn, t| all_docs::all_docs(txn, t, q))
    }

    /// Lists `_local/` documents by id, as `_local_docs` (no totals).
    ///
    /// ```
    /// use serde_json::json;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// db.put_local("_local/b", json!({})).unwrap();
    /// db.put_local("_local/a", json!({"x": 1})).unwrap();
    /// let rows = db.local_docs(false, true).unwrap();
    /// assert_eq!(rows[0]["id"], "_local/a");
    /// assert_eq!(rows[0]["value"], json!({"rev": "0-1"}));
    /// assert_eq!(rows[0]["doc"]["x"], 1);
    /// assert_eq!(db.local_docs(true, false).unwrap()[0]["id"], "_local/b");
    /// ```
    pub fn local_docs(&self, descending: bool, include_docs: bool) -> Result<Vec<Value>> {
        self.authorize()?;
        self.read(|txn, t| local::list(txn, t, descending, include_docs))
    }

    /// Reads the changes feed (`GET /{db}/_changes`, normal feed).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{ChangesQuery, Database, Since};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let a = db.put(json!({"_id": "a"})).unwrap();
    /// db.put(json!({"_id": "b"})).unwrap();
    /// db.put(json!({"_id": "a", "_rev": a.rev, "v": 2})).unwrap();
    /// // Each document once, at its latest change.
    /// let feed = db.changes(&ChangesQuery::new()).unwrap();
    /// let order: Vec<_> = feed.results.iter().map(|r| (r.seq, r.id.as_str())).collect();
    /// assert_eq!(order, [(2, "b"), (3, "a")]);
    /// let next = db.changes(&ChangesQuery::new().since(Since::Seq(feed.last_seq))).unwrap();
    /// assert!(next.results.is_empty());
    /// ```
    pub fn changes(&self, q: &ChangesQuery) -> Result<ChangesResponse> {
        self.authorize()?;
        self.read(|txn, t| changes::changes(txn, t, q))
    }

    /// Subscribes to changes as they commit (the basis of longpoll and
    /// continuous feeds). Dropping the receiver unsubscribes. It checks no
    /// access: callers acting for a user check [`Database::access`] first.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// let rx = db.subscribe();
    /// db.put(serde_json::json!({"_id": "x"})).unwrap();
    /// let event = rx.recv().unwrap();
    /// assert_eq!((event.seq, event.id.as_str(), event.deleted), (1, "x", false));
    /// ```
    pub fn subscribe(&self) -> Receiver<ChangeEvent> {
        let (tx, rx) = crossbeam_channel::unbounded();
        self.shared
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }

    /// Documents changed after `since` (at most `limit`), in seq order, as
    /// map functions see them; deleted ones without a body. This is the view
    /// indexer's feed: one read transaction, one parse per document.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{Database, Rev};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let a = db.put(json!({"_id": "a", "n": 1})).unwrap();
    /// db.put(json!({"_id": "b", "n": 2})).unwrap();
    /// db.delete("a", &Rev::parse(&a.rev).unwrap()).unwrap();
    /// let batch = db.changes_for_indexing(0, 10).unwrap();
    /// assert_eq!((batch[0].id.as_str(), batch[0].seq), ("b", 2));
    /// assert_eq!(batch[0].doc.as_ref().unwrap()["n"], 2);
    /// assert!(batch[1].deleted && batch[1].doc.is_none());
    /// assert!(db.changes_for_indexing(3, 10).unwrap().is_empty());
    /// ```
    pub fn changes_for_indexing(&self, since: u64, limit: usize) -> Result<Vec<IndexChange>> {
        self.authorize()?;
        self.read(|txn, t| changes::for_indexing(txn, t, since, limit))
    }

    /// The seq of the latest committed change.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// assert_eq!(db.update_seq().unwrap(), 0);
    /// db.put(serde_json::json!({"_id": "a"})).unwrap();
    /// assert_eq!(db.update_seq().unwrap(), 1);
    /// ```
    pub fn update_seq(&self) -> Result<u64> {
        self.authorize()?;
        self.read(|txn, t| Ok(meta::Counters::load(txn, t)?.update_seq))
    }

    /// Database information (`GET /{db}`).
    ///
    /// ```
    /// use settee::{Database, Rev};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// db.put(serde_json::json!({"_id": "a"})).unwrap();
    /// let b = db.put(serde_json::json!({"_id": "b"})).unwrap();
    /// db.delete("b", &Rev::parse(&b.rev).unwrap()).unwrap();
    /// let info = db.info().unwrap();
    /// assert_eq!((info.doc_count, info.doc_del_count, info.update_seq), (1, 1, 3));
    /// assert_eq!(info.db_name, "db");
    /// ```
    pub fn info(&self) -> Result<DbInfo> {
        self.authorize()?;
        let generation = self.shared.current();
        let (counters, active) =
            generation.read(|txn, t| Ok((meta::Counters::load(txn, t)?, t.live_bytes(txn)?)))?;
        Ok(DbInfo {
            instance_start_time: self.shared.instance_start_time.clone(),
            db_name: self.shared.name.clone(),
            purge_seq: 0,
            update_seq: counters.update_seq,
            sizes: DbSizes {
                file: generation.file_size(),
                active,
                external: counters.external_size,
            },
            props: serde_json::Map::new(),
            doc_del_count: counters.doc_del_count,
            doc_count: counters.doc_count,
            disk_format_version: 1,
            compact_running: self.shared.compact_running.load(Ordering::SeqCst),
        })
    }

    /// Compacts the database: drops non-leaf revision bodies and rewrites the
    /// file without free pages. Reads and writes continue meanwhile (writers
    /// pause only for the final switch). Loses nothing; crash-safe.
    ///
    /// Handles in this process move to the compacted file; another process
    /// that has the database open keeps the old file and must reopen it, so
    /// compact while no other process is writing.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{Database, ReadOptions, Rev};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let one = db.put(json!({"_id": "a", "n": 1})).unwrap();
    /// db.put(json!({"_id": "a", "_rev": one.rev, "n": 2})).unwrap();
    /// db.compact().unwrap();
    /// assert_eq!(db.get("a", &ReadOptions::default()).unwrap()["n"], 2);
    /// // The replaced revision's body is gone; its place in the history stays.
    /// let old = ReadOptions::default().rev(Rev::parse(&one.rev).unwrap());
    /// assert_eq!(db.get("a", &old).unwrap_err().status(), 404);
    /// assert!(!db.info().unwrap().compact_running);
    /// ```
    pub fn compact(&self) -> Result<()> {
        self.authorize_admin()?;
        compact::compact(&self.shared)
    }

    /// The revision limit (`_revs_limit`, default 1000).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// assert_eq!(db.revs_limit().unwrap(), settee::store::DEFAULT_REVS_LIMIT);
    /// ```
    pub fn revs_limit(&self) -> Result<u64> {
        self.authorize()?;
        self.read(meta::revs_limit)
    }

    /// Sets the revision limit; paths are stemmed to it on their next write.
    /// `bad_request` for 0.
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::{Database, ReadOptions};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// db.set_revs_limit(2).unwrap();
    /// assert_eq!(db.revs_limit().unwrap(), 2);
    /// assert_eq!(db.set_revs_limit(0).unwrap_err().status(), 400);
    ///
    /// let mut rev = db.put(json!({"_id": "a"})).unwrap().rev;
    /// for _ in 0..3 {
    ///     rev = db.put(json!({"_id": "a", "_rev": rev})).unwrap().rev;
    /// }
    /// let doc = db.get("a", &ReadOptions::default().revs(true)).unwrap();
    /// assert_eq!(doc["_revisions"]["start"], 4);
    /// assert_eq!(doc["_revisions"]["ids"].as_array().unwrap().len(), 2);
    /// ```
    pub fn set_revs_limit(&self, limit: u64) -> Result<()> {
        self.authorize_admin()?;
        if limit == 0 {
            return Err(Error::bad_request("revs_limit must be a positive integer"));
        }
        self.write_meta(|txn, t| meta::set_revs_limit(txn, t, limit))
    }

    /// Reads a metadata entry stored by another module (e.g. `"security"`).
    /// `None` if it was never stored.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// assert_eq!(db.get_meta("app-settings").unwrap(), None);
    /// ```
    pub fn get_meta(&self, name: &str) -> Result<Option<Value>> {
        self.read(|txn, t| match t.meta.get(txn, &meta::user_key(name))? {
            Some(bytes) => Ok(Some(doc::parse_stored(bytes)?)),
            None => Ok(None),
        })
    }

    /// Stores a metadata entry durably. It is not a document change: the
    /// update seq does not move.
    ///
    /// ```
    /// use serde_json::json;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// db.put_meta("app-settings", &json!({"theme": "dark"})).unwrap();
    /// assert_eq!(db.get_meta("app-settings").unwrap(), Some(json!({"theme": "dark"})));
    /// assert_eq!(db.update_seq().unwrap(), 0);
    /// ```
    pub fn put_meta(&self, name: &str, value: &Value) -> Result<()> {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::bad_request(e.to_string()))?;
        self.write_meta(|txn, t| {
            t.meta.put(txn, &meta::user_key(name), &bytes)?;
            Ok(())
        })
    }

    /// Removes a metadata entry.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = settee::Database::create(dir.path().join("db")).unwrap();
    /// db.put_meta("flag", &serde_json::json!(true)).unwrap();
    /// db.delete_meta("flag").unwrap();
    /// assert_eq!(db.get_meta("flag").unwrap(), None);
    /// ```
    pub fn delete_meta(&self, name: &str) -> Result<()> {
        self.write_meta(|txn, t| {
            t.meta.delete(txn, &meta::user_key(name))?;
            Ok(())
        })
    }

    fn write_meta(
        &self,
        mut f: impl FnMut(&mut heed::RwTxn<'_>, &storage::Tables) -> storage::TxnResult<()>,
    ) -> Result<()> {
        let _writer = self
            .shared
            .write_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.shared.current().write(|txn, t| f(txn, t))?;
        // The security object lives in the metadata.
        self.shared.validation_epoch.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use serde_json::json;

    use super::*;

    #[test]
    fn design_doc_memo_derives_once_per_design_doc_version_and_checks_access() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("db")).unwrap();
        db.put(json!({"_id": "_design/a", "n": 1})).unwrap();
        let derived = AtomicUsize::new(0);
        let n_of = |db: &Database| {
            db.design_doc_memo("_design/a", |doc| {
                derived.fetch_add(1, Ordering::SeqCst);
                Ok(doc["n"].as_u64())
            })
        };
        assert_eq!(*n_of(&db).unwrap(), Some(1));
        assert_eq!(*n_of(&db).unwrap(), Some(1));
        assert_eq!(derived.load(Ordering::SeqCst), 1);
        // Another type derived from the same document is kept beside it.
        let id_of = db.design_doc_memo("_design/a", |doc| Ok(doc["_id"].to_string()));
        assert_eq!(*id_of.unwrap(), "\"_design/a\"");
        // A plain document leaves the memo alone; a design document empties it.
        db.put(json!({"_id": "plain"})).unwrap();
        n_of(&db).unwrap();
        assert_eq!(derived.load(Ordering::SeqCst), 1);
        let rev = db.get("_design/a", &ReadOptions::default()).unwrap()["_rev"].clone();
        db.put(json!({"_id": "_design/a", "_rev": rev, "n": 2}))
            .unwrap();
        assert_eq!(*n_of(&db).unwrap(), Some(2));
        assert_eq!(derived.load(Ordering::SeqCst), 2);
        // Kept entries are no way around the security object.
        let bob = db.as_user(UserCtx {
            name: Some("bob".into()),
            roles: vec![],
        });
        assert_eq!(n_of(&bob).unwrap_err().status(), 403);
        // Deleted: not found, and errors are not kept.
        let rev = db.get("_design/a", &ReadOptions::default()).unwrap()["_rev"].clone();
        db.delete("_design/a", &Rev::parse(rev.as_str().unwrap()).unwrap())
            .unwrap();
        for _ in 0..2 {
            assert_eq!(n_of(&db).unwrap_err().status(), 404);
        }
    }
}
