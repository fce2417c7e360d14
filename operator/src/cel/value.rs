//! CEL runtime values.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::time::{Duration, Timestamp};

/// A CEL value.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    String(Arc<str>),
    Bytes(Arc<[u8]>),
    List(Arc<Vec<Value>>),
    Map(Arc<BTreeMap<Key, Value>>),
    Timestamp(Timestamp),
    Duration(Duration),
    Type(CelType),
    /// `optional.of(v)` (`Some`) or `optional.none()` (`None`).
    Optional(Option<Arc<Value>>),
}

/// A map key: CEL allows bool, int, uint and string keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Bool(bool),
    Int(i64),
    Uint(u64),
    String(Arc<str>),
}

/// The runtime type of a value, as returned by `type(x)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CelType {
    Null,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    List,
    Map,
    Timestamp,
    Duration,
    Type,
    Optional,
}

impl CelType {
    pub fn name(&self) -> &'static str {
        match self {
            CelType::Null => "null_type",
            CelType::Bool => "bool",
            CelType::Int => "int",
            CelType::Uint => "uint",
            CelType::Double => "double",
            CelType::String => "string",
            CelType::Bytes => "bytes",
            CelType::List => "list",
            CelType::Map => "map",
            CelType::Timestamp => "google.protobuf.Timestamp",
            CelType::Duration => "google.protobuf.Duration",
            CelType::Type => "type",
            CelType::Optional => "optional_type",
        }
    }

    /// Resolves a type identifier used in an expression (`int`, `string`, ...).
    pub(super) fn from_ident(name: &str) -> Option<CelType> {
        Some(match name {
            "null_type" => CelType::Null,
            "bool" => CelType::Bool,
            "int" => CelType::Int,
            "uint" => CelType::Uint,
            "double" => CelType::Double,
            "string" => CelType::String,
            "bytes" => CelType::Bytes,
            "list" => CelType::List,
            "map" => CelType::Map,
            "google.protobuf.Timestamp" => CelType::Timestamp,
            "google.protobuf.Duration" => CelType::Duration,
            "type" => CelType::Type,
            "optional_type" => CelType::Optional,
            _ => return None,
        })
    }
}

impl Key {
    pub(super) fn to_value(&self) -> Value {
        match self {
            Key::Bool(b) => Value::Bool(*b),
            Key::Int(i) => Value::Int(*i),
            Key::Uint(u) => Value::Uint(*u),
            Key::String(s) => Value::String(s.clone()),
        }
    }

    pub(super) fn from_value(v: &Value) -> Option<Key> {
        Some(match v {
            Value::Bool(b) => Key::Bool(*b),
            Value::Int(i) => Key::Int(*i),
            Value::Uint(u) => Key::Uint(*u),
            Value::String(s) => Key::String(s.clone()),
            _ => return None,
        })
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(Arc::from(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(Arc::from(s))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<&serde_json::Value> for Value {
    /// JSON as Kubernetes' unstructured decoding hands it to cel-go: integral
    /// numbers that fit an int64 become `int`, all other numbers `double`.
    fn from(j: &serde_json::Value) -> Value {
        match j {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::from(s.as_str()),
            serde_json::Value::Array(a) => {
                Value::List(Arc::new(a.iter().map(Value::from).collect()))
            }
            serde_json::Value::Object(o) => Value::Map(Arc::new(
                o.iter()
                    .map(|(k, v)| (Key::String(Arc::from(k.as_str())), Value::from(v)))
                    .collect(),
            )),
        }
    }
}

impl Value {
    pub fn cel_type(&self) -> CelType {
        match self {
            Value::Null => CelType::Null,
            Value::Bool(_) => CelType::Bool,
            Value::Int(_) => CelType::Int,
            Value::Uint(_) => CelType::Uint,
            Value::Double(_) => CelType::Double,
            Value::String(_) => CelType::String,
            Value::Bytes(_) => CelType::Bytes,
            Value::List(_) => CelType::List,
            Value::Map(_) => CelType::Map,
            Value::Timestamp(_) => CelType::Timestamp,
            Value::Duration(_) => CelType::Duration,
            Value::Type(_) => CelType::Type,
            Value::Optional(_) => CelType::Optional,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Converts back to JSON where a faithful representation exists
    /// (timestamps and durations become their string forms, bytes base64).
    pub fn to_json(&self) -> Option<serde_json::Value> {
        Some(match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Uint(u) => serde_json::Value::from(*u),
            Value::Double(d) => serde_json::Value::from(serde_json::Number::from_f64(*d)?),
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::Bytes(b) => serde_json::Value::String(super::functions::base64_encode(b)),
            Value::List(l) => {
                serde_json::Value::Array(l.iter().map(Value::to_json).collect::<Option<_>>()?)
            }
            Value::Map(m) => {
                let mut o = serde_json::Map::new();
                for (k, v) in m.iter() {
                    let key = match k {
                        Key::String(s) => s.to_string(),
                        Key::Bool(b) => b.to_string(),
                        Key::Int(i) => i.to_string(),
                        Key::Uint(u) => u.to_string(),
                    };
                    o.insert(key, v.to_json()?);
                }
                serde_json::Value::Object(o)
            }
            Value::Timestamp(t) => serde_json::Value::String(t.to_string()),
            Value::Duration(d) => serde_json::Value::String(d.to_string()),
            Value::Type(_) | Value::Optional(_) => return None,
        })
    }

    /// Looks a key up in a map value with CEL's numeric key equivalence
    /// (`{1: 'a'}[1u]` and `{1: 'a'}[1.0]` both find the entry).
    pub(super) fn map_get<'a>(m: &'a BTreeMap<Key, Value>, k: &Value) -> Option<&'a Value> {
        match k {
            Value::Int(i) => m
                .get(&Key::Int(*i))
                .or_else(|| u64::try_from(*i).ok().and_then(|u| m.get(&Key::Uint(u)))),
            Value::Uint(u) => m
                .get(&Key::Uint(*u))
                .or_else(|| i64::try_from(*u).ok().and_then(|i| m.get(&Key::Int(i)))),
            Value::Double(d) => {
                if d.fract() != 0.0 || !d.is_finite() {
                    return None;
                }
                let mut found = None;
                if *d >= (i64::MIN as f64) && *d < -(i64::MIN as f64) {
                    found = m.get(&Key::Int(*d as i64));
                }
                if found.is_none() && *d >= 0.0 && *d < (u64::MAX as f64) {
                    found = m.get(&Key::Uint(*d as u64));
                }
                found
            }
            other => Key::from_value(other).and_then(|key| m.get(&key)),
        }
    }
}

/// CEL equality (`==`), heterogeneous across int, uint and double; values of
/// other differing types are simply unequal.
pub(super) fn cel_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Timestamp(x), Value::Timestamp(y)) => x == y,
        (Value::Duration(x), Value::Duration(y)) => x == y,
        (Value::Type(x), Value::Type(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| cel_equals(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| match Value::map_get(y, &k.to_value()) {
                        Some(w) => cel_equals(v, w),
                        None => false,
                    })
        }
        (Value::Optional(x), Value::Optional(y)) => match (x, y) {
            (None, None) => true,
            (Some(p), Some(q)) => cel_equals(p, q),
            _ => false,
        },
        _ => matches!(numeric_cmp(a, b), Some(Some(Ordering::Equal))),
    }
}

/// Compares two numbers of any numeric types. Outer `None`: not both numeric;
/// inner `None`: unordered (NaN).
pub(super) fn numeric_cmp(a: &Value, b: &Value) -> Option<Option<Ordering>> {
    Some(match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Uint(x), Value::Uint(y)) => Some(x.cmp(y)),
        (Value::Double(x), Value::Double(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Uint(y)) => Some(int_uint_cmp(*x, *y)),
        (Value::Uint(x), Value::Int(y)) => Some(int_uint_cmp(*y, *x).reverse()),
        (Value::Int(x), Value::Double(y)) => int_double_cmp(*x, *y),
        (Value::Double(x), Value::Int(y)) => int_double_cmp(*y, *x).map(Ordering::reverse),
        (Value::Uint(x), Value::Double(y)) => uint_double_cmp(*x, *y),
        (Value::Double(x), Value::Uint(y)) => uint_double_cmp(*y, *x).map(Ordering::reverse),
        _ => return None,
    })
}

fn int_uint_cmp(i: i64, u: u64) -> Ordering {
    if i < 0 {
        Ordering::Less
    } else {
        (i as u64).cmp(&u)
    }
}

// cel-go compares an integer with a double by converting the integer to a
// double once it is known to be in range, so precision is that of f64.
fn int_double_cmp(i: i64, d: f64) -> Option<Ordering> {
    if d.is_nan() {
        return None;
    }
    if d < (i64::MIN as f64) {
        return Some(Ordering::Greater);
    }
    if d >= -(i64::MIN as f64) {
        return Some(Ordering::Less);
    }
    (i as f64).partial_cmp(&d)
}

fn uint_double_cmp(u: u64, d: f64) -> Option<Ordering> {
    if d.is_nan() {
        return None;
    }
    if d < 0.0 {
        return Some(Ordering::Greater);
    }
    if d >= (u64::MAX as f64) {
        return Some(Ordering::Less);
    }
    (u as f64).partial_cmp(&d)
}

/// Formats a double like Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which is
/// what cel-go's `string(double)` produces.
pub(super) fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest round-trip digits and the decimal exponent; Go picks the
    // exponent form when the exponent is < -4 or >= 6 for shortest output.
    let sci = format!("{:e}", d);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{}{:02}", mant, sign, exp.abs());
    }
    format!("{}", d)
}

impl fmt::Display for Value {
    /// A CEL-literal-like rendering: `1`, `1u`, `double(1.5)`, `"s"`, `b"..."`,
    /// lists, maps with entries sorted, `timestamp("...")`, `duration("...")`,
    /// `type(int)`, `optional.of(x)` / `optional.none()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Uint(u) => write!(f, "{u}u"),
            Value::Double(d) => write!(f, "double({})", format_double(*d)),
            Value::String(s) => f.write_str(&go_quote(s.as_bytes())),
            Value::Bytes(b) => write!(f, "b{}", go_quote(b)),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                let mut parts: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.to_value(), v))
                    .collect();
                parts.sort();
                write!(f, "{{{}}}", parts.join(", "))
            }
            Value::Timestamp(t) => write!(f, "timestamp(\"{t}\")"),
            Value::Duration(d) => write!(f, "duration(\"{d}\")"),
            Value::Type(t) => write!(f, "type({})", t.name()),
            Value::Optional(None) => f.write_str("optional.none()"),
            Value::Optional(Some(v)) => write!(f, "optional.of({v})"),
        }
    }
}

/// Double-quoted with Go `strconv.Quote` escaping (close enough for
/// printable text: control characters and invalid UTF-8 are escaped).
pub(super) fn go_quote(b: &[u8]) -> String {
    let mut out = String::from("\"");
    let s = String::from_utf8_lossy(b);
    let valid = std::str::from_utf8(b).is_ok();
    if !valid {
        for &c in b {
            if c.is_ascii() && !c.is_ascii_control() {
                match c {
                    b'"' => out.push_str("\\\""),
                    b'\\' => out.push_str("\\\\"),
                    _ => out.push(c as char),
                }
            } else {
                out.push_str(&format!("\\x{c:02x}"));
            }
        }
        out.push('"');
        return out;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\u{0b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
