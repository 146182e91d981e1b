//! `log()` from design-document functions reaches `tracing` at info, tagged
//! with the design document and the document. A test binary of its own: the
//! workers are threads of their own, so the capturing subscriber must be the
//! process-wide default.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::json;
use settee::js::{JsConfig, JsPool, MapGroup, ValidateCall};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One captured event: its level and its fields (the message included).
type Captured = (Level, BTreeMap<String, String>);

struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields));
    }
}

fn events() -> &'static Arc<Mutex<Vec<Captured>>> {
    static EVENTS: OnceLock<Arc<Mutex<Vec<Captured>>>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        let events = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Capture(events.clone()));
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        events
    })
}

/// The captured `log()` line whose message is `message`.
fn logged(message: &str) -> Captured {
    events()
        .lock()
        .unwrap()
        .iter()
        .find(|(_, f)| f.get("message").map(String::as_str) == Some(message))
        .cloned()
        .unwrap_or_else(|| panic!("no event with message {message:?}"))
}

#[test]
fn log_names_the_design_doc_and_the_doc() {
    events();
    let pool = JsPool::new(JsConfig {
        workers: 2,
        ..JsConfig::default()
    })
    .unwrap();
    let group = Arc::new(MapGroup {
        id: "0123456789abcdef".into(), // a signature, not a design doc id
        ddoc_id: "_design/app".into(),
        lib: None,
        maps: vec!["function(doc) { log('map saw ' + doc._id); log({n: doc.n}); }".into()],
    });
    pool.map(&group, vec![json!({"_id": "d1", "n": 1})])
        .unwrap();
    let (level, fields) = logged("map saw d1");
    assert_eq!(level, Level::INFO);
    assert_eq!(fields["ddoc_id"], "_design/app");
    assert_eq!(fields["doc_id"], "d1");
    assert_eq!(fields["function"], "map");
    // Non-strings are JSON-encoded.
    assert_eq!(logged(r#"{"n":1}"#).1["ddoc_id"], "_design/app");

    let ddoc = json!({"_id": "_design/rules",
        "validate_doc_update": "function(doc) { log('validating ' + doc._id); }",
        "filters": {"f": "function(doc, req) { log('filtering ' + doc._id); return true; }"}});
    pool.validate(&ValidateCall {
        ddoc_id: "_design/rules".into(),
        ddoc: Arc::new(ddoc.clone()),
        new_doc: json!({"_id": "v1"}).into(),
        old_doc: None,
        user_ctx: json!({"db": "db", "name": null, "roles": []}).into(),
        sec_obj: json!({}).into(),
    })
    .unwrap();
    let fields = logged("validating v1").1;
    assert_eq!(
        (fields["ddoc_id"].as_str(), fields["doc_id"].as_str()),
        ("_design/rules", "v1")
    );
    assert_eq!(fields["function"], "validate_doc_update");
    pool.filter(
        "_design/rules",
        Arc::new(ddoc),
        "f",
        vec![json!({"_id": "f1"})],
        json!({}),
    )
    .unwrap();
    let fields = logged("filtering f1").1;
    assert_eq!(
        (fields["ddoc_id"].as_str(), fields["doc_id"].as_str()),
        ("_design/rules", "f1")
    );
    assert_eq!(fields["function"], "filter");
}
