//! Turning a design-document source text into a callable function, with
//! CouchDB's `Couch.compileFunction` rules and messages.

use std::borrow::Cow;

use boa_engine::object::builtins::JsFunction;
use boa_engine::{Context, Source};

use super::limits::check_nesting;
use super::thrown::Thrown;
use crate::Error;

/// Compiles `source` the way CouchDB's query server does: the text is
/// evaluated as a script and its completion value must be a function.
///
/// SpiderMonkey accepts CouchDB's bare `function(doc) {...}` form as an
/// expression statement; boa (like the standard) does not, so a source that
/// starts with an anonymous `function (` is parenthesised. Everything else
/// (arrow functions, `function named(doc) {}`, which is a declaration and so
/// "does not eval to a function", two expressions, ...) is evaluated as is,
/// giving the same outcome as CouchDB.
///
/// Errors: `not_found` "missing function" for an empty source, and
/// `compilation_error` with `<error> (<source>)` as CouchDB words it.
/// Engine limits hit while evaluating give `os_process_error`.
pub fn compile_function(
    ctx: &mut Context,
    source: &str,
    max_nesting: usize,
) -> Result<JsFunction, Error> {
    if source.is_empty() {
        return Err(Error::not_found("missing function"));
    }
    check_nesting(source, max_nesting)?;
    match ctx.eval(Source::from_bytes(script_text(source).as_bytes())) {
        Ok(value) => value.as_function().ok_or_else(|| {
            Error::Compilation(format!(
                "Expression does not eval to a function. ({source})"
            ))
        }),
        Err(err) => {
            let thrown = Thrown::from_js(err, ctx);
            if let Some(e) = thrown.abort_error() {
                return Err(e);
            }
            Err(Error::Compilation(format!(
                "{} ({source})",
                thrown.describe()
            )))
        }
    }
}

/// The script [`compile_function`] evaluates for `source`.
pub(crate) fn script_text(source: &str) -> Cow<'_, str> {
    if is_anonymous_function(source) {
        // The newline keeps a trailing `// comment` from swallowing the paren.
        Cow::Owned(format!("({source}\n)"))
    } else {
        Cow::Borrowed(source)
    }
}

/// `function` followed by `(` (only whitespace or comments between).
fn is_anonymous_function(source: &str) -> bool {
    let rest = skip_blank(source);
    match rest.strip_prefix("function") {
        Some(after) => skip_blank(after).starts_with('('),
        None => false,
    }
}

fn skip_blank(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix("//") {
            s = rest.find('\n').map_or("", |i| &rest[i..]);
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.find("*/").map_or("", |i| &rest[i + 2..]);
        } else {
            return s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(source: &str) -> Result<(), Error> {
        let mut ctx = Context::default();
        compile_function(&mut ctx, source, 100).map(|_| ())
    }

    #[test]
    fn couchdb_source_forms() {
        assert!(check("function(doc) { emit(doc._id, null); }").is_ok());
        assert!(check("  // comment\n function (doc) { emit(1) } // trailing").is_ok());
        assert!(check("(doc) => { emit(doc._id, 1); }").is_ok());
        assert!(check("function(doc, a, b) { }").is_ok());
        assert!(check("(function named(doc) { })").is_ok());
    }

    #[test]
    fn couchdb_compilation_errors() {
        let e = check("function named(doc) { emit(doc.k, 1); }").unwrap_err();
        assert_eq!(e.name(), "compilation_error");
        assert_eq!(
            e.reason(),
            "Expression does not eval to a function. (function named(doc) { emit(doc.k, 1); })"
        );
        let e = check("function(doc) { emit(doc.k, doc.v); }; 1").unwrap_err();
        assert_eq!(e.name(), "compilation_error");
        let e = check("function(doc) { emit(doc.k").unwrap_err();
        assert_eq!(e.name(), "compilation_error");
        assert!(
            e.reason().starts_with("(new SyntaxError("),
            "{}",
            e.reason()
        );
        assert!(e.reason().ends_with(" (function(doc) { emit(doc.k)"));
        let e = check(" _count").unwrap_err();
        assert_eq!(e.name(), "compilation_error");
        assert!(
            e.reason().starts_with("(new ReferenceError("),
            "{}",
            e.reason()
        );
        assert!(e.reason().ends_with(" ( _count)"));
        let e = check("").unwrap_err();
        assert_eq!(
            (e.name(), e.reason().as_str()),
            ("not_found", "missing function")
        );
        let e = check("42").unwrap_err();
        assert_eq!(e.name(), "compilation_error");
    }

    #[test]
    fn deep_nesting_is_rejected_before_parsing() {
        let src = format!(
            "function(doc) {{ emit({}1{}) }}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        let e = check(&src).unwrap_err();
        assert_eq!(e.name(), "compilation_error");
        assert!(e.reason().contains("nested"));
    }
}
