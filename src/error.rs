//! The one error type of settee.
//!
//! Every error carries what CouchDB would answer: an `error` name (`"conflict"`,
//! `"not_found"`, ...), a human `reason` and an HTTP status. The HTTP layer only
//! serialises [`Error::to_json`]; library users match on the variants.

use std::borrow::Cow;

/// A settee result.
///
/// ```
/// fn first_rev(db: &settee::Database) -> settee::Result<String> {
///     Ok(db.put(serde_json::json!({"_id": "a"}))?.rev)
/// }
/// let dir = tempfile::tempdir().unwrap();
/// let db = settee::Database::create(dir.path().join("db")).unwrap();
/// assert!(first_rev(&db).unwrap().starts_with("1-"));
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors returned by every settee operation.
///
/// Each variant maps to CouchDB's `{"error": name, "reason": reason}` body and
/// status code through [`Error::name`], [`Error::reason`] and [`Error::status`].
///
/// ```
/// use settee::Error;
/// let e = Error::Conflict;
/// assert_eq!(e.name(), "conflict");
/// assert_eq!(e.reason(), "Document update conflict.");
/// assert_eq!(e.status(), 409);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// 409: the `_rev` given is not a current leaf, or a live doc was written without one.
    #[error("conflict: Document update conflict.")]
    Conflict,
    /// 404 `not_found`; the reason is `missing`, `deleted`, or a more specific text.
    #[error("not_found: {0}")]
    NotFound(Cow<'static, str>),
    /// 400 `bad_request`: the input is malformed.
    #[error("bad_request: {0}")]
    BadRequest(Cow<'static, str>),
    /// 400 `doc_validation`: a document breaks CouchDB's structural rules
    /// (reserved `_` members, bad ids).
    #[error("doc_validation: {0}")]
    DocValidation(Cow<'static, str>),
    /// 400 `query_parse_error`: invalid view or changes query options.
    #[error("query_parse_error: {0}")]
    QueryParse(Cow<'static, str>),
    /// 400 `invalid_design_doc`: a design document with a bad structure.
    #[error("invalid_design_doc: {0}")]
    InvalidDesignDoc(Cow<'static, str>),
    /// 400 `compilation_error`: JavaScript that does not compile.
    #[error("compilation_error: {0}")]
    Compilation(String),
    /// 403 `forbidden`: refused by `validate_doc_update` or by the security object.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 401 `unauthorized`: refused because the user is not authenticated enough.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// 412 `file_exists`: the database already exists.
    #[error("file_exists: The database could not be created, the file already exists.")]
    DatabaseExists,
    /// 413 `document_too_large`; the reason is the document id.
    #[error("document_too_large: {0}")]
    DocumentTooLarge(String),
    /// A JavaScript function failed at run time (exception, time budget, limits).
    #[error("{name}: {reason}")]
    JavaScript {
        /// CouchDB's error name, e.g. `os_process_error`, `timeout`, `unknown_error`.
        name: Cow<'static, str>,
        /// What went wrong.
        reason: String,
    },
    /// Any other CouchDB-shaped error, for the rare cases without a variant of their own.
    #[error("{name}: {reason}")]
    Couch {
        /// HTTP status.
        status: u16,
        /// CouchDB's `error` member.
        name: Cow<'static, str>,
        /// CouchDB's `reason` member.
        reason: String,
    },
    /// The disk or the LMDB map is full; nothing was written.
    #[error("insufficient_storage: {0}")]
    StorageFull(String),
    /// An I/O error from the file system.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored data could not be decoded: a bug or a damaged file.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

impl Error {
    /// CouchDB's `error` member for this error.
    ///
    /// ```
    /// use settee::Error;
    /// assert_eq!(Error::query_parse("bad").name(), "query_parse_error");
    /// assert_eq!(Error::couch(429, "too_many_requests", "slow down").name(), "too_many_requests");
    /// let io = Error::from(std::io::Error::other("disk"));
    /// assert_eq!(io.name(), "internal_server_error");
    /// ```
    pub fn name(&self) -> &str {
        match self {
            Error::Conflict => "conflict",
            Error::NotFound(_) => "not_found",
            Error::BadRequest(_) => "bad_request",
            Error::DocValidation(_) => "doc_validation",
            Error::QueryParse(_) => "query_parse_error",
            Error::InvalidDesignDoc(_) => "invalid_design_doc",
            Error::Compilation(_) => "compilation_error",
            Error::Forbidden(_) => "forbidden",
            Error::Unauthorized(_) => "unauthorized",
            Error::DatabaseExists => "file_exists",
            Error::DocumentTooLarge(_) => "document_too_large",
            Error::JavaScript { name, .. } => name,
            Error::Couch { name, .. } => name,
            Error::StorageFull(_) => "insufficient_storage",
            Error::Io(_) | Error::Corrupt(_) => "internal_server_error",
        }
    }

    /// CouchDB's `reason` member for this error.
    ///
    /// ```
    /// use settee::Error;
    /// assert_eq!(Error::not_found("deleted").reason(), "deleted");
    /// assert_eq!(
    ///     Error::DatabaseExists.reason(),
    ///     "The database could not be created, the file already exists."
    /// );
    /// ```
    pub fn reason(&self) -> String {
        match self {
            Error::Conflict => "Document update conflict.".into(),
            Error::NotFound(r)
            | Error::BadRequest(r)
            | Error::DocValidation(r)
            | Error::QueryParse(r)
            | Error::InvalidDesignDoc(r) => r.to_string(),
            Error::Compilation(r)
            | Error::Forbidden(r)
            | Error::Unauthorized(r)
            | Error::DocumentTooLarge(r)
            | Error::StorageFull(r)
            | Error::Corrupt(r) => r.clone(),
            Error::DatabaseExists => {
                "The database could not be created, the file already exists.".into()
            }
            Error::JavaScript { reason, .. } | Error::Couch { reason, .. } => reason.clone(),
            Error::Io(e) => e.to_string(),
        }
    }

    /// The HTTP status CouchDB answers with for this error.
    ///
    /// ```
    /// use settee::Error;
    /// assert_eq!(Error::Forbidden("no".into()).status(), 403);
    /// assert_eq!(Error::StorageFull("map full".into()).status(), 507);
    /// assert_eq!(Error::couch(429, "too_many_requests", "slow down").status(), 429);
    /// ```
    pub fn status(&self) -> u16 {
        match self {
            Error::Conflict => 409,
            Error::NotFound(_) => 404,
            Error::BadRequest(_)
            | Error::DocValidation(_)
            | Error::QueryParse(_)
            | Error::InvalidDesignDoc(_)
            | Error::Compilation(_) => 400,
            Error::Forbidden(_) => 403,
            Error::Unauthorized(_) => 401,
            Error::DatabaseExists => 412,
            Error::DocumentTooLarge(_) => 413,
            Error::JavaScript { .. } => 500,
            Error::Couch { status, .. } => *status,
            Error::StorageFull(_) => 507,
            Error::Io(_) | Error::Corrupt(_) => 500,
        }
    }

    /// The JSON body CouchDB sends for this error: `{"error": .., "reason": ..}`.
    ///
    /// ```
    /// let body = settee::Error::not_found("missing").to_json();
    /// assert_eq!(body, serde_json::json!({"error": "not_found", "reason": "missing"}));
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.name(), "reason": self.reason() })
    }

    /// A `not_found` error with the given reason.
    ///
    /// ```
    /// let e = settee::Error::not_found("missing");
    /// assert_eq!((e.status(), e.to_string().as_str()), (404, "not_found: missing"));
    /// ```
    pub fn not_found(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::NotFound(reason.into())
    }

    /// A `bad_request` error with the given reason.
    ///
    /// ```
    /// let e = settee::Error::bad_request(format!("bad {}", "input"));
    /// assert_eq!((e.status(), e.name(), e.reason().as_str()), (400, "bad_request", "bad input"));
    /// ```
    pub fn bad_request(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::BadRequest(reason.into())
    }

    /// A `query_parse_error` with the given reason.
    ///
    /// ```
    /// let e = settee::Error::query_parse("Invalid value for `stale`.");
    /// assert_eq!((e.status(), e.name()), (400, "query_parse_error"));
    /// ```
    pub fn query_parse(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::QueryParse(reason.into())
    }

    /// An `invalid_design_doc` error with the given reason.
    ///
    /// ```
    /// let e = settee::Error::invalid_design_doc("`views` is not an object");
    /// assert!(matches!(e, settee::Error::InvalidDesignDoc(_)));
    /// assert_eq!(e.name(), "invalid_design_doc");
    /// ```
    pub fn invalid_design_doc(reason: impl Into<Cow<'static, str>>) -> Self {
        Error::InvalidDesignDoc(reason.into())
    }

    /// The same error again (name, reason and status), for every request a
    /// shared failure or a remembered verdict answers.
    pub(crate) fn duplicate(&self) -> Error {
        Error::couch(self.status(), self.name().to_string(), self.reason())
    }

    /// Any CouchDB-shaped error.
    ///
    /// ```
    /// let e = settee::Error::couch(416, "requested_range_not_satisfiable", "bad range");
    /// assert_eq!(
    ///     e.to_json(),
    ///     serde_json::json!({"error": "requested_range_not_satisfiable", "reason": "bad range"})
    /// );
    /// assert_eq!(e.status(), 416);
    /// ```
    pub fn couch(
        status: u16,
        name: impl Into<Cow<'static, str>>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Couch {
            status,
            name: name.into(),
            reason: reason.into(),
        }
    }
}
