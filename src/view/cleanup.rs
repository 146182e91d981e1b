//! Automatic view cleanup: after a design document is saved or deleted, the
//! indexes no design document uses any longer are deleted in the background,
//! as CouchDB does on a design document update.
//!
//! One watcher thread per database (however often it is asked for) follows
//! the database's committed changes ([`Database::subscribe`]) and runs
//! [`ViewEngine::cleanup`] when a batch of changes touched a design document.
//! It holds only a [`WeakDatabase`], so it ends when the database's last
//! handle is dropped.

use std::sync::{Mutex, OnceLock};

use crossbeam_channel::Receiver;

use crate::js::JsPool;
use crate::store::{ChangeEvent, WeakDatabase};
use crate::view::ViewEngine;

/// Databases with a running watcher (closed ones are dropped on the next call).
fn watched() -> &'static Mutex<Vec<WeakDatabase>> {
    static WATCHED: OnceLock<Mutex<Vec<WeakDatabase>>> = OnceLock::new();
    WATCHED.get_or_init(Default::default)
}

impl ViewEngine {
    /// From now on, deletes the indexes no design document uses any longer
    /// whenever a design document of this database is created, updated or
    /// deleted: asynchronously, on a background thread, after the write
    /// commits. Calling it again for the same database does nothing; the
    /// thread ends when the database is closed (its last handle dropped).
    ///
    /// The cleanup never deletes an index a design document still uses, and
    /// waits for a pass running on an index before deleting it (see
    /// [`ViewEngine::cleanup`]).
    ///
    /// ```
    /// use serde_json::json;
    /// use settee::js::{JsConfig, JsPool};
    /// use settee::view::{ViewEngine, ViewQuery};
    /// use settee::{Database, ReadOptions};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let db = Database::create(dir.path().join("db")).unwrap();
    /// let views = ViewEngine::new(db.clone(), JsPool::new(JsConfig::default()).unwrap());
    /// views.cleanup_automatically();
    /// let saved = db.put(json!({"_id": "_design/app",
    ///     "views": {"v": {"map": "function(doc) { emit(doc._id, 1); }"}}})).unwrap();
    /// views.query("_design/app", "v", &ViewQuery::new()).unwrap();
    /// let index = views.index_dir(&views.design_doc("_design/app").unwrap().group.signature);
    /// assert!(index.exists());
    /// db.delete("_design/app", &settee::Rev::parse(&saved.rev).unwrap()).unwrap();
    /// for _ in 0..1000 {
    ///     if !index.exists() { break; }
    ///     std::thread::sleep(std::time::Duration::from_millis(10));
    /// }
    /// assert!(!index.exists());
    /// ```
    pub fn cleanup_automatically(&self) {
        let mut watched = watched().lock().expect("watch list");
        watched.retain(WeakDatabase::is_open);
        if watched.iter().any(|w| w.is(self.database())) {
            return;
        }
        let events = self.database().subscribe();
        let db = self.database().downgrade();
        let pool = self.pool().clone();
        let spawned = std::thread::Builder::new()
            .name("settee-view-cleanup".into())
            .spawn({
                let db = db.clone();
                move || watch(&events, &db, &pool)
            });
        match spawned {
            Ok(_) => watched.push(db),
            Err(e) => tracing::warn!(error = %e, "cannot start the view cleanup thread"),
        }
    }
}

/// Runs a cleanup after every batch of changes that touched a design
/// document, until the database closes.
fn watch(events: &Receiver<ChangeEvent>, db: &WeakDatabase, pool: &JsPool) {
    // `recv` fails once the database is dropped (its senders go with it).
    while let Ok(first) = events.recv() {
        // Changes that arrived meanwhile are covered by one cleanup.
        let mut design = first.id.starts_with("_design/");
        while let Ok(event) = events.try_recv() {
            design |= event.id.starts_with("_design/");
        }
        if !design {
            continue;
        }
        let Some(db) = db.upgrade() else { return };
        let views = ViewEngine::new(db, pool.clone());
        match views.cleanup() {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(db = %views.database().name(), ?removed, "removed unused view indexes");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "view cleanup failed"),
        }
    }
}
