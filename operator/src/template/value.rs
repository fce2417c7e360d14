//! Values a Go-template execution handles (the shared contract between the engine and the
//! function library). Maps are shared and mutable like Go maps (`set`/`unset` mutate in
//! place); lists are immutable like the slices sprig returns.
use std::{cell::RefCell, collections::BTreeMap, rc::Rc};

#[derive(Clone, Debug)]
pub enum Value {
    /// Go's nil interface / missing value. Prints as `<no value>` in template output,
    /// `<nil>` through fmt (print/printf/toString).
    Nil,
    Bool(bool),
    /// Go `int`: template number constants and what text/template and sprig type `int`
    /// (`len`, range indexes, `int`, `atoi`, `until`, `randInt`, ...).
    Int(i64),
    /// Go `int64`: integral JSON numbers of the inputs, and sprig's arithmetic (`add`,
    /// `max`, `int64`, `toDecimal`, ...). Compares with `Int` (same kind for `eq`/`lt`) but
    /// is another type for `reflect.DeepEqual`, typed parameters and type names.
    Int64(i64),
    Float(f64),
    String(String),
    List(Rc<Vec<Value>>),
    /// Go `map[string]interface{}`; BTreeMap because Go prints and ranges maps in key order.
    Map(Rc<RefCell<BTreeMap<String, Value>>>),
}

/// An error of a function call; the engine wraps it as Go does:
/// `error calling NAME: MESSAGE` (or for argument conversion errors the Go text
/// `wrong type for value; expected string; got int64`).
#[derive(Clone, Debug, PartialEq)]
pub struct FuncError(pub String);

/// A template function: called with evaluated arguments (the piped value is the last one).
pub type Func = fn(&[Value]) -> Result<Value, FuncError>;

impl Value {
    pub fn map(entries: BTreeMap<String, Value>) -> Value {
        Value::Map(Rc::new(RefCell::new(entries)))
    }
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Rc::new(items))
    }
    /// Go template truthiness: false, 0, nil, "" and empty list/map are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) | Value::Int64(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.borrow().is_empty(),
        }
    }
    /// Go's reflect kind name, as sprig's kindOf reports it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "slice",
            Value::Map(_) => "map",
        }
    }
    /// Go's type name, as sprig's typeOf reports it (`%T`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::List(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }
    /// The value of either integer type.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) | Value::Int64(i) => Some(*i),
            _ => None,
        }
    }
    /// Decodes integral numbers as int64 (as the inputs reach Go templates), others as
    /// float64.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int64(i),
                None => Value::Float(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Value::String(s.clone()),
            serde_json::Value::Array(a) => Value::list(a.iter().map(Value::from_json).collect()),
            serde_json::Value::Object(o) => Value::map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
    /// As Go's encoding/json would marshal it (NaN/Inf are errors there: None here).
    pub fn to_json(&self) -> Option<serde_json::Value> {
        Some(match self {
            Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) | Value::Int64(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map(serde_json::Value::Number)?,
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::List(l) => {
                serde_json::Value::Array(l.iter().map(Value::to_json).collect::<Option<Vec<_>>>()?)
            }
            Value::Map(m) => serde_json::Value::Object(
                m.borrow()
                    .iter()
                    .map(|(k, v)| Some((k.clone(), v.to_json()?)))
                    .collect::<Option<serde_json::Map<_, _>>>()?,
            ),
        })
    }
}
