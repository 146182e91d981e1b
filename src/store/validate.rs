//! The hook through which `validate_doc_update` functions (implemented
//! elsewhere) see and veto writes before they commit.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::Result;

/// The user a write is made for, as CouchDB's `userCtx` (without `db`).
///
/// ```
/// use settee::UserCtx;
///
/// assert!(UserCtx::admin().is_admin());
/// assert!(!UserCtx::anonymous().is_admin());
/// assert_eq!(UserCtx::default(), UserCtx::admin());
/// let bob = UserCtx { name: Some("bob".into()), roles: vec!["sales".into()] };
/// assert_eq!(
///     serde_json::to_value(&bob).unwrap(),
///     serde_json::json!({"name": "bob", "roles": ["sales"]})
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserCtx {
    /// The user name; `None` for anonymous and for the embedded default admin.
    pub name: Option<String>,
    /// The user's roles; `_admin` for server admins.
    pub roles: Vec<String>,
}

impl UserCtx {
    /// A server admin without a name: what library callers act as by default.
    pub fn admin() -> UserCtx {
        UserCtx {
            name: None,
            roles: vec!["_admin".into()],
        }
    }

    /// An anonymous user: no name, no roles.
    pub fn anonymous() -> UserCtx {
        UserCtx {
            name: None,
            roles: Vec::new(),
        }
    }

    /// Whether the user has the `_admin` role.
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "_admin")
    }
}

impl Default for UserCtx {
    fn default() -> Self {
        UserCtx::admin()
    }
}

/// One document update submitted to the validator.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use serde_json::{json, Value};
/// use settee::{Database, UpdateValidator, ValidationRequest};
///
/// /// Records what it is shown.
/// #[derive(Default)]
/// struct Spy(Mutex<Vec<(Arc<Value>, Option<Arc<Value>>)>>);
/// impl UpdateValidator for Spy {
///     fn validate_batch(&self, reqs: &[ValidationRequest<'_>]) -> Vec<settee::Result<()>> {
///         let mut seen = self.0.lock().unwrap();
///         reqs.iter().map(|r| { seen.push((r.new_doc.clone(), r.old_doc.clone())); Ok(()) }).collect()
///     }
/// }
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// let spy = Arc::new(Spy::default());
/// db.set_validator(Some(spy.clone()));
/// let first = db.put(json!({"_id": "a", "n": 1})).unwrap();
/// db.put(json!({"_id": "a", "_rev": first.rev, "n": 2})).unwrap();
/// let seen = spy.0.lock().unwrap();
/// assert_eq!(seen[0].1, None); // a new document has no old revision
/// assert_eq!(seen[1].0["n"], 2);
/// assert_eq!(seen[1].1.as_ref().unwrap()["n"], 1);
/// ```
#[derive(Debug)]
pub struct ValidationRequest<'a> {
    /// The document id.
    pub id: &'a str,
    /// The new revision as `validate_doc_update` sees it: the document as the
    /// client sent it, before a new revision is generated. `_id`, `_rev` (the
    /// client's: the parent revision of an interactive edit, the new leaf of a
    /// replicated one; absent when it sent none, as for a new or re-created
    /// document), the body, `_deleted: true` for deletions, and `_revisions`
    /// (the client's revision list: just `_rev`'s id unless it sent `_revisions`).
    pub new_doc: Arc<Value>,
    /// The stored parent revision; `None` for a new document and when a
    /// deleted document is re-created.
    pub old_doc: Option<Arc<Value>>,
    /// Who is writing.
    pub user: &'a UserCtx,
}

/// Validates document updates before they are committed
/// (`validate_doc_update` functions, and the checks on design documents).
/// `_local/` documents are not submitted; design documents are, so that the
/// validator can check who writes them and what they contain (they are not
/// subject to `validate_doc_update` functions). A rejected document changes
/// nothing; the others commit.
///
/// Called while the database's write lock is held, from inside the write
/// transaction: implementations may read the database, but must not write to it.
///
/// ```
/// use std::sync::Arc;
/// use settee::{Database, Error, UpdateValidator, ValidationRequest};
///
/// struct NoSecrets;
/// impl UpdateValidator for NoSecrets {
///     fn validate_batch(&self, reqs: &[ValidationRequest<'_>]) -> Vec<settee::Result<()>> {
///         reqs.iter()
///             .map(|r| match r.new_doc.get("secret") {
///                 Some(_) => Err(Error::Forbidden("no secrets".into())),
///                 None => Ok(()),
///             })
///             .collect()
///     }
/// }
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::create(dir.path().join("db")).unwrap();
/// db.set_validator(Some(Arc::new(NoSecrets)));
/// let err = db.put(serde_json::json!({"_id": "a", "secret": 1})).unwrap_err();
/// assert_eq!(err.status(), 403);
/// assert!(db.put(serde_json::json!({"_id": "a"})).is_ok());
/// ```
pub trait UpdateValidator: Send + Sync {
    /// Returns one result per request, in order.
    fn validate_batch(&self, reqs: &[ValidationRequest<'_>]) -> Vec<Result<()>>;

    /// Whether documents other than design documents need validating now.
    /// `false` (say, no `validate_doc_update` is installed) lets the store
    /// skip building their requests; design documents are submitted anyway.
    /// Asked by writes (from inside them) and by [`Database::prepare_bulk`](crate::Database::prepare_bulk).
    fn validates_documents(&self) -> Result<bool> {
        Ok(true)
    }
}
