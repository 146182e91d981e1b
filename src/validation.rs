//! What every write goes through before it commits: the checks on design
//! documents, and the `validate_doc_update` functions of the database's design
//! documents (CouchDB's VDUs), on every write path: put, delete, `bulk_docs`,
//! and replicated writes (`new_edits=false`).
//!
//! - A design document (which only server and database admins may write;
//!   the store checks that) must pass [`DesignDoc::parse`] and compile
//!   ([`DesignDoc::compile_check`]).
//! - Other documents are passed to every design document that has a
//!   `validate_doc_update`, in design-document id order; the first rejection
//!   wins. `_local/` documents never get here.
//!
//! Install it with [`DocValidator::install`]. It reads the design documents and
//! the security object from the database on each batch, so edits to either take
//! effect on the next write without any notification.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::error::Result;
use crate::js::{JsPool, ValidateCall};
use crate::store::{
    AllDocsQuery, AllDocsRow, Database, Security, UpdateValidator, UserCtx, ValidationRequest,
};
use crate::view::DesignDoc;

/// The design documents with a `validate_doc_update`, as last read.
struct ValidatorSet {
    /// `(id, rev)` of every design document when read: the cache key.
    revisions: Vec<(String, String)>,
    /// Those with a VDU, in id order.
    validators: Vec<(String, Arc<Value>)>,
}

/// The [`UpdateValidator`] that runs design-document checks and VDUs.
///
/// ```
/// use serde_json::json;
/// use settee::js::{JsConfig, JsPool};
/// use settee::validation::DocValidator;
/// use settee::Database;
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// DocValidator::install(&db, JsPool::new(JsConfig::default()).unwrap());
/// db.put(json!({"_id": "_design/rules", "validate_doc_update":
///     "function(newDoc) { if (!newDoc.type) throw({forbidden: 'type required'}); }"})).unwrap();
/// let err = db.put(json!({"_id": "a"})).unwrap_err();
/// assert_eq!((err.status(), err.reason()), (403, "type required".to_string()));
/// db.put(json!({"_id": "a", "type": "order"})).unwrap();
/// ```
pub struct DocValidator {
    db: Database,
    pool: JsPool,
    cache: Mutex<Option<Arc<ValidatorSet>>>,
}

impl DocValidator {
    /// Installs a validator on `db`. The validator holds a handle of the
    /// database; uninstall it (`db.set_validator(None)`) before dropping a
    /// database for good.
    pub fn install(db: &Database, pool: JsPool) {
        let validator = DocValidator {
            db: db.clone(),
            pool,
            cache: Mutex::new(None),
        };
        db.set_validator(Some(Arc::new(validator)));
    }

    /// The design documents with a VDU, reloaded when any design document changed.
    fn validators(&self) -> Result<Arc<ValidatorSet>> {
        let range = AllDocsQuery::new()
            .start_key("_design/")
            .end_key("_design0");
        let revisions: Vec<(String, String)> = self
            .db
            .all_docs(&range)?
            .rows
            .into_iter()
            .filter_map(|row| match row {
                AllDocsRow::Doc { id, rev, .. } => Some((id, rev)),
                AllDocsRow::NotFound { .. } => None,
            })
            .collect();
        let mut cache = self.cache.lock().expect("validator cache");
        if let Some(set) = cache.as_ref().filter(|s| s.revisions == revisions) {
            return Ok(set.clone());
        }
        let docs = self.db.all_docs(&range.include_docs(true))?;
        let validators = docs
            .rows
            .into_iter()
            .filter_map(|row| match row {
                AllDocsRow::Doc {
                    id,
                    doc: Some(Some(doc)),
                    ..
                } if doc.get("validate_doc_update").is_some() => Some((id, Arc::new(doc))),
                _ => None,
            })
            .collect();
        let set = Arc::new(ValidatorSet {
            revisions,
            validators,
        });
        *cache = Some(set.clone());
        Ok(set)
    }

    fn check_design_doc(&self, req: &ValidationRequest<'_>) -> Result<()> {
        if req.new_doc.get("_deleted") == Some(&Value::Bool(true)) {
            return Ok(());
        }
        DesignDoc::check(&req.new_doc, &self.pool).map(drop)
    }
}

impl UpdateValidator for DocValidator {
    fn validates_documents(&self) -> Result<bool> {
        Ok(!self.validators()?.validators.is_empty())
    }

    fn validate_batch(&self, reqs: &[ValidationRequest<'_>]) -> Vec<Result<()>> {
        let context = self
            .validators()
            .and_then(|set| Ok((set, Security::load(&self.db)?)));
        let (set, security) = match context {
            Ok(context) => context,
            Err(e) => return reqs.iter().map(|_| Err(e.duplicate())).collect(),
        };
        let mut outcomes: Vec<Option<Result<()>>> = Vec::with_capacity(reqs.len());
        let mut calls = Vec::new();
        let mut owners = Vec::new();
        let sec_obj = Arc::new(security.sec_obj());
        // The requests of a write share one user: one `userCtx` for all.
        let mut user_ctx: Option<(&UserCtx, Arc<Value>)> = None;
        for (i, req) in reqs.iter().enumerate() {
            if req.id.starts_with("_design/") {
                outcomes.push(Some(self.check_design_doc(req)));
                continue;
            }
            outcomes.push(None);
            if set.validators.is_empty() {
                continue;
            }
            let user = match &user_ctx {
                Some((user, value)) if *user == req.user => value.clone(),
                _ => {
                    let value = Arc::new(
                        json!({"db": self.db.name(), "name": req.user.name, "roles": req.user.roles}),
                    );
                    user_ctx = Some((req.user, value.clone()));
                    value
                }
            };
            for (ddoc_id, ddoc) in &set.validators {
                calls.push(ValidateCall {
                    ddoc_id: ddoc_id.clone(),
                    ddoc: ddoc.clone(),
                    new_doc: req.new_doc.clone(),
                    old_doc: req.old_doc.clone(),
                    user_ctx: user.clone(),
                    sec_obj: sec_obj.clone(),
                });
                owners.push(i);
            }
        }
        if !calls.is_empty() {
            match self.pool.validate_batch(calls) {
                // Calls are in design-document order per request: the first
                // rejection of each request wins.
                Ok(results) => {
                    for (owner, result) in owners.into_iter().zip(results) {
                        if let Err(e) = result {
                            outcomes[owner].get_or_insert(Err(e));
                        }
                    }
                }
                Err(e) => {
                    for owner in owners {
                        outcomes[owner].get_or_insert_with(|| Err(e.duplicate()));
                    }
                }
            }
        }
        outcomes.into_iter().map(|o| o.unwrap_or(Ok(()))).collect()
    }
}
