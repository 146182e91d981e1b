//! Conversions between `serde_json::Value` and boa's `JsValue`.
//!
//! Rust → JS builds objects directly (never through `JSON.parse` text, which is
//! about 8x slower in boa). JS → Rust walks the value with the semantics of
//! `JSON.stringify`, which is what CouchDB's query server uses for every
//! result (`Couch.toJSON`), with CouchDB's one addition that `Error` objects
//! become `{"error": name, "message": msg}`.

use boa_engine::builtins::error::Error as ErrorData;
use boa_engine::builtins::object::OrdinaryObject;
use std::collections::HashSet;

use boa_engine::object::builtins::{JsArray, JsFunction};
use boa_engine::object::IntegrityLevel;
use boa_engine::property::{PropertyDescriptor, PropertyKey};
use boa_engine::{js_string, Context, JsNativeError, JsObject, JsResult, JsValue, JsVariant};
use rustc_hash::FxHashMap;
use serde_json::{Map, Number, Value};

/// Integral doubles below this fit an `i64` and are written without a
/// fraction, as `JSON.stringify` does (it does so up to 1e21).
const I64_SAFE: f64 = 9_000_000_000_000_000_000.0;

/// Builds JS values from JSON. Keeps the property keys it has made (document
/// member names repeat from one document to the next) and the original
/// `Object.preventExtensions`, which user code cannot replace.
pub struct JsBuilder {
    keys: FxHashMap<String, PropertyKey>,
    prevent_extensions: JsFunction,
}

/// Member names remembered at most; the cache is emptied when full.
const KEY_CACHE_SIZE: usize = 4096;

impl JsBuilder {
    /// Captures `Object.preventExtensions` from a fresh context.
    pub fn new(ctx: &mut Context) -> JsResult<Self> {
        let object = ctx.intrinsics().constructors().object().constructor();
        let prevent_extensions = object
            .get(js_string!("preventExtensions"), ctx)?
            .as_function()
            .ok_or_else(|| JsNativeError::typ().with_message("Object.preventExtensions missing"))?;
        Ok(JsBuilder {
            keys: FxHashMap::default(),
            prevent_extensions,
        })
    }

    /// Converts JSON to a JS value. With `freeze`, every object and array is
    /// frozen, like CouchDB's `Couch.recursivelySeal(doc)` before a map runs,
    /// so one map function cannot change what the next one sees.
    pub fn build(&mut self, value: &Value, freeze: bool, ctx: &mut Context) -> JsResult<JsValue> {
        Ok(match value {
            Value::Null => JsValue::null(),
            Value::Bool(b) => JsValue::new(*b),
            Value::Number(n) => number_to_js(n),
            Value::String(s) => JsValue::from(js_string!(s.as_str())),
            Value::Array(items) => {
                let mut elements = Vec::with_capacity(items.len());
                for item in items {
                    elements.push(self.build(item, freeze, ctx)?);
                }
                let array = JsArray::from_iter(elements, ctx);
                if freeze {
                    array.set_integrity_level(IntegrityLevel::Frozen, ctx)?;
                }
                array.into()
            }
            Value::Object(members) => self.object(members.iter(), freeze, ctx)?,
        })
    }

    /// [`JsBuilder::build`] for a function that reads only `reads` of the
    /// value, when that is known (`js::reads`): an object reduced to those
    /// members (the ones it has). Other values are built whole, and so is an
    /// object lacking a member that `Object.prototype` has.
    pub fn build_read(
        &mut self,
        value: &Value,
        reads: Option<&[String]>,
        freeze: bool,
        ctx: &mut Context,
    ) -> JsResult<JsValue> {
        let (Value::Object(all), Some(members)) = (value, reads) else {
            return self.build(value, freeze, ctx);
        };
        // A member the document lacks is looked up on `Object.prototype`: if
        // something is there (an accessor could read other members through
        // `this`), the function gets the whole document.
        let proto = ctx.intrinsics().constructors().object().prototype();
        for name in members {
            if !all.contains_key(name) && proto.has_own_property(self.key(name), ctx)? {
                return self.build(value, freeze, ctx);
            }
        }
        let kept = members.iter().filter_map(|name| all.get_key_value(name));
        self.object(kept, freeze, ctx)
    }

    /// An object of `members`, built as [`JsBuilder::build`] builds one.
    fn object<'v>(
        &mut self,
        members: impl Iterator<Item = (&'v String, &'v Value)>,
        freeze: bool,
        ctx: &mut Context,
    ) -> JsResult<JsValue> {
        // A shared shape: documents with the same members in the same
        // order share one property layout (boa's shape transitions), so
        // no per-object property table is built and inline caches hit.
        let object = JsObject::new(
            ctx.root_shape(),
            ctx.intrinsics().constructors().object().prototype(),
            OrdinaryObject,
        )
        .upcast();
        for (key, member) in members {
            let property = PropertyDescriptor::builder()
                .value(self.build(member, freeze, ctx)?)
                .writable(!freeze)
                .enumerable(true)
                .configurable(!freeze);
            object.insert_property(self.key(key), property);
        }
        if freeze {
            // The members are already read-only; this only stops additions.
            self.prevent_extensions
                .call(&JsValue::undefined(), &[object.clone().into()], ctx)?;
        }
        Ok(object.into())
    }

    fn key(&mut self, name: &str) -> PropertyKey {
        if let Some(key) = self.keys.get(name) {
            return key.clone();
        }
        if self.keys.len() >= KEY_CACHE_SIZE {
            self.keys.clear();
        }
        let key = PropertyKey::from(js_string!(name));
        self.keys.insert(name.to_owned(), key.clone());
        key
    }
}

fn number_to_js(n: &Number) -> JsValue {
    match n.as_i64() {
        Some(i) if i32::try_from(i).is_ok() => JsValue::new(i as i32),
        _ => JsValue::new(n.as_f64().unwrap_or(f64::NAN)),
    }
}

/// Limits on what [`to_json`] accepts from JavaScript.
#[derive(Debug, Clone, Copy)]
pub struct OutputLimits {
    /// Deepest nesting of arrays and objects; deeper values would overflow
    /// the native stack of the converter.
    pub max_depth: usize,
    /// Rough upper bound of the JSON text size, in bytes.
    pub max_bytes: usize,
    /// CouchDB's `error_to_json` for emitted values: `Error` objects become
    /// `{"error": name, "message": msg}`. Off for plain `JSON.stringify`,
    /// which sees only their (usually no) enumerable members.
    pub errors_as_objects: bool,
}

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits {
            max_depth: 4096,
            max_bytes: 64 << 20,
            errors_as_objects: true,
        }
    }
}

/// Converts a JS value to JSON with `JSON.stringify` semantics: `None` for
/// values `JSON.stringify` leaves out (undefined, functions, symbols);
/// `NaN`/`±Infinity` become null; member order is kept; `toJSON` methods are
/// called (Dates); Error objects become `{"error": name, "message": msg}`.
/// Throws a `TypeError` for cycles and BigInts, and a `RangeError` past `limits`.
pub fn to_json(
    value: &JsValue,
    limits: OutputLimits,
    ctx: &mut Context,
) -> JsResult<Option<Value>> {
    let mut walker = Walker {
        limits,
        bytes: 0,
        stack: HashSet::new(),
    };
    walker.property(value.clone(), HolderKey::Root, ctx)
}

/// Like [`to_json`], but where `JSON.stringify` would leave a value out the
/// result is null, as for array elements and emitted keys/values.
pub fn to_json_or_null(
    value: &JsValue,
    limits: OutputLimits,
    ctx: &mut Context,
) -> JsResult<Value> {
    Ok(to_json(value, limits, ctx)?.unwrap_or(Value::Null))
}

/// The key a value is found under, given to its `toJSON` method; only made
/// into a JS string when there is such a method.
#[derive(Clone, Copy)]
enum HolderKey<'a> {
    Root,
    Index(u64),
    Property(&'a PropertyKey),
}

impl HolderKey<'_> {
    fn to_js(self) -> JsValue {
        match self {
            HolderKey::Root => js_string!("").into(),
            HolderKey::Index(i) => js_string!(i.to_string().as_str()).into(),
            HolderKey::Property(PropertyKey::String(s)) => s.clone().into(),
            HolderKey::Property(PropertyKey::Index(i)) => {
                js_string!(i.get().to_string().as_str()).into()
            }
            HolderKey::Property(PropertyKey::Symbol(s)) => s.clone().into(),
        }
    }
}

struct Walker {
    limits: OutputLimits,
    bytes: usize,
    /// Objects being serialised, for cycle detection (`JSON.stringify`'s
    /// stack); its size is the current depth.
    stack: HashSet<JsObject>,
}

impl Walker {
    fn grow(&mut self, bytes: usize) -> JsResult<()> {
        self.bytes += bytes;
        if self.bytes > self.limits.max_bytes {
            return Err(JsNativeError::range()
                .with_message(format!(
                    "value too large: more than {} bytes of JSON",
                    self.limits.max_bytes
                ))
                .into());
        }
        Ok(())
    }

    /// `SerializeJSONProperty`: `key` is passed to `toJSON`.
    fn property(
        &mut self,
        value: JsValue,
        key: HolderKey<'_>,
        ctx: &mut Context,
    ) -> JsResult<Option<Value>> {
        let mut value = value;
        if let Some(object) = value.as_object() {
            if self.limits.errors_as_objects && object.is::<ErrorData>() {
                return self.error_object(&object, ctx).map(Some);
            }
            let to_json = object.get(js_string!("toJSON"), ctx)?;
            if let Some(method) = to_json.as_callable() {
                value = method.call(&value, &[key.to_js()], ctx)?;
            }
        }
        self.grow(1)?;
        Ok(match value.variant() {
            JsVariant::Null => Some(Value::Null),
            JsVariant::Undefined | JsVariant::Symbol(_) => None,
            JsVariant::Boolean(b) => Some(Value::Bool(b)),
            JsVariant::Integer32(i) => Some(Value::from(i)),
            JsVariant::Float64(f) => Some(float_to_json(f)),
            JsVariant::String(s) => {
                self.grow(s.len() + 2)?;
                Some(Value::String(s.to_std_string_escaped()))
            }
            JsVariant::BigInt(_) => {
                return Err(JsNativeError::typ()
                    .with_message("BigInt value can't be serialized in JSON")
                    .into());
            }
            JsVariant::Object(object) => {
                if object.is_callable() {
                    None
                } else {
                    Some(self.object(object, ctx)?)
                }
            }
        })
    }

    fn object(&mut self, object: JsObject, ctx: &mut Context) -> JsResult<Value> {
        if self.stack.contains(&object) {
            return Err(JsNativeError::typ()
                .with_message("cyclic object value")
                .into());
        }
        if self.stack.len() >= self.limits.max_depth {
            return Err(JsNativeError::range()
                .with_message(format!(
                    "value nested deeper than {} levels",
                    self.limits.max_depth
                ))
                .into());
        }
        if let Some(primitive) = boxed_primitive(&object, ctx)? {
            return Ok(primitive);
        }
        self.stack.insert(object.clone());
        let result = if object.is_array() {
            self.array(&object, ctx)
        } else {
            self.members(&object, ctx)
        };
        self.stack.remove(&object);
        result
    }

    fn array(&mut self, array: &JsObject, ctx: &mut Context) -> JsResult<Value> {
        let length = array.get(js_string!("length"), ctx)?.to_length(ctx)?;
        let mut items = Vec::with_capacity(length.min(1 << 16) as usize);
        for index in 0..length {
            let item = array.get(index, ctx)?;
            let json = self.property(item, HolderKey::Index(index), ctx)?;
            items.push(json.unwrap_or(Value::Null));
        }
        Ok(Value::Array(items))
    }

    fn members(&mut self, object: &JsObject, ctx: &mut Context) -> JsResult<Value> {
        let mut members = Map::new();
        for key in object.own_property_keys(ctx)? {
            let name = match &key {
                PropertyKey::String(s) => s.to_std_string_escaped(),
                PropertyKey::Index(i) => i.get().to_string(),
                PropertyKey::Symbol(_) => continue,
            };
            let enumerable = object
                .borrow()
                .properties()
                .get(&key)
                .is_some_and(|p| p.expect_enumerable());
            if !enumerable {
                continue;
            }
            let member = object.get(key.clone(), ctx)?;
            if let Some(json) = self.property(member, HolderKey::Property(&key), ctx)? {
                self.grow(name.len() + 4)?;
                members.insert(name, json);
            }
        }
        Ok(Value::Object(members))
    }

    /// CouchDB's `error_to_json`: `{"error": name, "message": message}`.
    fn error_object(&mut self, object: &JsObject, ctx: &mut Context) -> JsResult<Value> {
        let name = object.get(js_string!("name"), ctx)?.to_string(ctx)?;
        let message = object.get(js_string!("message"), ctx)?.to_string(ctx)?;
        self.grow(name.len() + message.len() + 24)?;
        let mut members = Map::new();
        members.insert("error".into(), Value::String(name.to_std_string_escaped()));
        members.insert(
            "message".into(),
            Value::String(message.to_std_string_escaped()),
        );
        Ok(Value::Object(members))
    }
}

/// `new Number(1)`, `new String("a")` and `new Boolean(true)` serialise as
/// their primitive value.
fn boxed_primitive(object: &JsObject, ctx: &mut Context) -> JsResult<Option<Value>> {
    use boa_engine::JsString;
    if object.is::<f64>() {
        let n = JsValue::from(object.clone()).to_number(ctx)?;
        return Ok(Some(float_to_json(n)));
    }
    if object.is::<JsString>() {
        let s = JsValue::from(object.clone()).to_string(ctx)?;
        return Ok(Some(Value::String(s.to_std_string_escaped())));
    }
    if let Some(b) = object.downcast_ref::<bool>() {
        return Ok(Some(Value::Bool(*b)));
    }
    Ok(None)
}

/// `JSON.stringify` number rules: non-finite → null, integral values without a
/// fraction (`1.0` → `1`, `-0` → `0`). Subnormal numbers become `0`: CouchDB's
/// Erlang side reads them back from its JavaScript server as zero (an emitted
/// `5e-324` is reported, and sorts, as `0`).
pub fn float_to_json(f: f64) -> Value {
    if !f.is_finite() {
        Value::Null
    } else if f.is_subnormal() {
        Value::from(0)
    } else if f.fract() == 0.0 && f.abs() < I64_SAFE {
        Value::from(f as i64)
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use boa_engine::Source;
    use serde_json::json;

    fn eval_json(src: &str) -> Option<Value> {
        let mut ctx = Context::default();
        let v = ctx.eval(Source::from_bytes(src)).unwrap();
        to_json(&v, OutputLimits::default(), &mut ctx).unwrap()
    }

    #[test]
    fn stringify_semantics() {
        assert_eq!(eval_json("undefined"), None);
        assert_eq!(eval_json("(function(){})"), None);
        assert_eq!(eval_json("NaN"), Some(json!(null)));
        assert_eq!(eval_json("-Infinity"), Some(json!(null)));
        assert_eq!(eval_json("1.0"), Some(json!(1)));
        assert_eq!(eval_json("-0"), Some(json!(0)));
        assert_eq!(eval_json("5e-324"), Some(json!(0)));
        assert_eq!(eval_json("-2.2250738585072e-308"), Some(json!(0)));
        assert_eq!(
            eval_json("2.2250738585072014e-308"),
            Some(json!(2.2250738585072014e-308))
        );
        assert_eq!(eval_json("1.5"), Some(json!(1.5)));
        assert_eq!(eval_json("1e21"), Some(json!(1e21)));
        assert_eq!(
            eval_json("({b: 1, a: undefined, f: function(){}, c: [undefined, NaN, function(){}], 2: 'x', 1: 'y'})"),
            Some(json!({"1": "y", "2": "x", "b": 1, "c": [null, null, null]}))
        );
        assert_eq!(
            eval_json("new Date(0)"),
            Some(json!("1970-01-01T00:00:00.000Z"))
        );
        assert_eq!(
            eval_json("({toJSON: function(k) { return 'key:' + k; }})"),
            Some(json!("key:"))
        );
        assert_eq!(
            eval_json("[new Number(3), new String('s'), new Boolean(false)]"),
            Some(json!([3, "s", false]))
        );
        assert_eq!(
            eval_json("new TypeError('boom')"),
            Some(json!({"error": "TypeError", "message": "boom"}))
        );
        assert_eq!(
            eval_json("Object.defineProperty({a: 1}, 'hidden', {value: 2, enumerable: false})"),
            Some(json!({"a": 1}))
        );
        assert_eq!(
            eval_json("({get g() { return 7; }})"),
            Some(json!({"g": 7}))
        );
    }

    #[test]
    fn cycles_depth_and_size_are_errors() {
        let mut ctx = Context::default();
        let cyclic = ctx
            .eval(Source::from_bytes("var o = {}; o.o = o; o"))
            .unwrap();
        assert!(to_json(&cyclic, OutputLimits::default(), &mut ctx).is_err());
        let deep = ctx
            .eval(Source::from_bytes(
                "var d = {}; for (var i = 0; i < 100; i++) d = [d]; d",
            ))
            .unwrap();
        let limits = OutputLimits {
            max_depth: 50,
            ..OutputLimits::default()
        };
        assert!(to_json(&deep, limits, &mut ctx).is_err());
        let big = ctx
            .eval(Source::from_bytes(
                "var s = 'x'; for (var i = 0; i < 12; i++) s += s; s",
            ))
            .unwrap();
        let limits = OutputLimits {
            max_bytes: 1000,
            ..OutputLimits::default()
        };
        assert!(to_json(&big, limits, &mut ctx).is_err());
    }

    #[test]
    fn round_trip_keeps_member_order_and_numbers() {
        let mut ctx = Context::default();
        let doc = json!({"z": 1, "a": [1, 2.5, "é", null, true], "m": {"y": {}, "b": []},
                         "big": 9007199254740993u64, "neg": -5_000_000_000i64});
        for freeze in [false, true] {
            let js = JsBuilder::new(&mut ctx)
                .unwrap()
                .build(&doc, freeze, &mut ctx)
                .unwrap();
            let back = to_json(&js, OutputLimits::default(), &mut ctx)
                .unwrap()
                .unwrap();
            assert_eq!(
                serde_json::to_string(&back).unwrap(),
                r#"{"z":1,"a":[1,2.5,"é",null,true],"m":{"y":{},"b":[]},"big":9007199254740992,"neg":-5000000000}"#
            );
        }
    }

    #[test]
    fn frozen_values_ignore_mutation() {
        let mut ctx = Context::default();
        let doc = JsBuilder::new(&mut ctx)
            .unwrap()
            .build(&json!({"a": {"b": [1]}}), true, &mut ctx)
            .unwrap();
        ctx.global_object()
            .set(js_string!("doc"), doc, true, &mut ctx)
            .unwrap();
        let v = ctx
            .eval(Source::from_bytes(
                "doc.a.b.push; try { doc.a.b.push(2) } catch (e) {} doc.x = 1; doc.a.b[0] = 9; \
                 delete doc.a; [Object.isFrozen(doc), Object.isFrozen(doc.a.b), doc.x, doc.a.b.length, doc.a.b[0]]",
            ))
            .unwrap();
        assert_eq!(
            to_json(&v, OutputLimits::default(), &mut ctx).unwrap(),
            Some(json!([true, true, null, 1, 1]))
        );
    }
}
