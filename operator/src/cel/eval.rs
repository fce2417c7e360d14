//! Tree-walking interpreter.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use regex::Regex;

use super::ast::{BinOp, CompKind, Expr, UnOp};
use super::functions;
use super::value::{CelType, Key, Value, cel_equals, format_double, numeric_cmp};

pub(super) type Result<T> = std::result::Result<T, String>;

pub(super) const NO_OVERLOAD: &str = "no such overload";
pub(super) const INT_OVERFLOW: &str = "integer overflow";
pub(super) const UINT_OVERFLOW: &str = "unsigned integer overflow";

pub(super) struct Interp<'a> {
    pub vars: &'a HashMap<String, Value>,
    pub regexes: &'a HashMap<String, Regex>,
    locals: Vec<(String, Value)>,
}

/// One step of a field-selection / index chain below its root.
enum Qual<'e> {
    Field(&'e str, bool),
    Index(&'e Expr, bool),
}

impl<'a> Interp<'a> {
    pub fn new(vars: &'a HashMap<String, Value>, regexes: &'a HashMap<String, Regex>) -> Self {
        Interp {
            vars,
            regexes,
            locals: Vec::new(),
        }
    }

    pub fn eval(&mut self, e: &Expr) -> Result<Value> {
        match e {
            Expr::Lit(v) => Ok(v.clone()),
            Expr::Ident { .. } | Expr::Select { .. } | Expr::Index { .. } => {
                self.eval_attr(e, None)
            }
            Expr::Has { operand, field } => self.eval_has(operand, field),
            Expr::Call { target, name, args } => {
                let t = match target {
                    Some(t) => Some(self.eval(t)?),
                    None => None,
                };
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(self.eval(a)?);
                }
                functions::call(self, name, t, vals)
            }
            Expr::List(elems) => {
                let mut out = Vec::with_capacity(elems.len());
                for (el, optional) in elems {
                    let v = self.eval(el)?;
                    if *optional {
                        match v {
                            Value::Optional(Some(x)) => out.push((*x).clone()),
                            Value::Optional(None) => {}
                            _ => return Err(NO_OVERLOAD.into()),
                        }
                    } else {
                        out.push(v);
                    }
                }
                Ok(Value::List(Arc::new(out)))
            }
            Expr::Map(entries) => {
                let mut out = BTreeMap::new();
                for (k, v, optional) in entries {
                    let kv = self.eval(k)?;
                    let vv = self.eval(v)?;
                    let key = Key::from_value(&kv)
                        .ok_or_else(|| format!("unsupported key type: {}", kv.cel_type().name()))?;
                    if *optional {
                        match vv {
                            Value::Optional(Some(x)) => {
                                out.insert(key, (*x).clone());
                            }
                            Value::Optional(None) => {}
                            _ => return Err(NO_OVERLOAD.into()),
                        }
                    } else {
                        out.insert(key, vv);
                    }
                }
                Ok(Value::Map(Arc::new(out)))
            }
            Expr::Unary(op, x) => {
                let v = self.eval(x)?;
                unary(*op, v)
            }
            Expr::Binary(op, l, r) => {
                let lv = self.eval(l)?;
                let rv = self.eval(r)?;
                binary(*op, lv, rv)
            }
            Expr::And(l, r) => {
                let lv = self.eval(l);
                if matches!(lv, Ok(Value::Bool(false))) {
                    return Ok(Value::Bool(false));
                }
                let rv = self.eval(r);
                if matches!(rv, Ok(Value::Bool(false))) {
                    return Ok(Value::Bool(false));
                }
                logic_rest(lv, rv)
            }
            Expr::Or(l, r) => {
                let lv = self.eval(l);
                if matches!(lv, Ok(Value::Bool(true))) {
                    return Ok(Value::Bool(true));
                }
                let rv = self.eval(r);
                if matches!(rv, Ok(Value::Bool(true))) {
                    return Ok(Value::Bool(true));
                }
                logic_rest(lv, rv)
            }
            Expr::Cond(c, t, f) => match self.eval(c)? {
                Value::Bool(true) => self.eval(t),
                Value::Bool(false) => self.eval(f),
                _ => Err(NO_OVERLOAD.into()),
            },
            Expr::Comprehension {
                kind,
                var,
                range,
                filter,
                step,
            } => self.eval_comprehension(*kind, var, range, filter.as_deref(), step),
        }
    }

    fn local(&self, name: &str) -> Option<&Value> {
        self.locals
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Evaluates an identifier / selection / index chain. Dotted names are
    /// first tried as variables (`a.b` may name a variable), most specific
    /// first, as cel-go does for unchecked expressions; a missing root is
    /// reported with the whole path (`no such attribute(s): a.b.c`).
    fn eval_attr(&mut self, e: &Expr, extra: Option<&str>) -> Result<Value> {
        let mut quals: Vec<Qual<'_>> = Vec::new();
        let mut cur = e;
        loop {
            match cur {
                Expr::Select {
                    operand,
                    field,
                    optional,
                } => {
                    quals.push(Qual::Field(field, *optional));
                    cur = operand;
                }
                Expr::Index {
                    operand,
                    index,
                    optional,
                } => {
                    quals.push(Qual::Index(index, *optional));
                    cur = operand;
                }
                _ => break,
            }
        }
        quals.reverse();
        let (mut v, skip) = match cur {
            Expr::Ident { name, absolute } => self.resolve_ident(name, *absolute, &quals, extra)?,
            other => (self.eval(other)?, 0),
        };
        for q in &quals[skip..] {
            v = self.qualify(v, q)?;
        }
        Ok(v)
    }

    fn resolve_ident(
        &self,
        name: &str,
        absolute: bool,
        quals: &[Qual<'_>],
        extra: Option<&str>,
    ) -> Result<(Value, usize)> {
        if !absolute && let Some(v) = self.local(name) {
            return Ok((v.clone(), 0));
        }
        let fields: Vec<&str> = quals
            .iter()
            .map_while(|q| match q {
                Qual::Field(f, false) => Some(*f),
                _ => None,
            })
            .collect();
        for j in (0..=fields.len()).rev() {
            let mut cand = name.to_string();
            for f in &fields[..j] {
                cand.push('.');
                cand.push_str(f);
            }
            if let Some(v) = self.vars.get(&cand) {
                return Ok((v.clone(), j));
            }
            if let Some(t) = CelType::from_ident(&cand) {
                return Ok((Value::Type(t), j));
            }
        }
        let mut path = name.to_string();
        for q in quals {
            match q {
                Qual::Field(f, _) => {
                    path.push('.');
                    path.push_str(f);
                }
                Qual::Index(Expr::Lit(Value::String(k)), _) => {
                    path.push('.');
                    path.push_str(k);
                }
                Qual::Index(..) => break,
            }
        }
        if let Some(f) = extra {
            path.push('.');
            path.push_str(f);
        }
        Err(format!("no such attribute(s): {path}"))
    }

    fn qualify(&mut self, v: Value, q: &Qual<'_>) -> Result<Value> {
        let (inner, opt_mode) = match v {
            Value::Optional(None) => return Ok(Value::Optional(None)),
            Value::Optional(Some(x)) => ((*x).clone(), true),
            other => (other, false),
        };
        let (key, optional) = match q {
            Qual::Field(f, o) => (Value::from(*f), *o),
            Qual::Index(e, o) => (self.eval(e)?, *o),
        };
        let found = lookup(&inner, &key)?;
        if optional || opt_mode {
            return Ok(Value::Optional(found.map(Arc::new)));
        }
        match found {
            Some(v) => Ok(v),
            None => Err(missing(&inner, &key)),
        }
    }

    fn eval_has(&mut self, operand: &Expr, field: &str) -> Result<Value> {
        let v = self.eval_attr(operand, Some(field))?;
        let v = match v {
            Value::Optional(None) => return Ok(Value::Bool(false)),
            Value::Optional(Some(x)) => (*x).clone(),
            other => other,
        };
        match &v {
            Value::Map(m) => Ok(Value::Bool(m.contains_key(&Key::String(Arc::from(field))))),
            Value::List(_) => Err("unsupported index type 'string' in list".into()),
            _ => Ok(Value::Bool(false)),
        }
    }

    fn with_local<T>(&mut self, var: &str, v: Value, f: impl FnOnce(&mut Self) -> T) -> T {
        self.locals.push((var.to_string(), v));
        let r = f(self);
        self.locals.pop();
        r
    }

    fn eval_comprehension(
        &mut self,
        kind: CompKind,
        var: &str,
        range: &Expr,
        filter: Option<&Expr>,
        step: &Expr,
    ) -> Result<Value> {
        let range = self.eval(range)?;
        if matches!(kind, CompKind::OptMap | CompKind::OptFlatMap) {
            return match range {
                Value::Optional(None) => Ok(Value::Optional(None)),
                Value::Optional(Some(x)) => {
                    let r = self.with_local(var, (*x).clone(), |s| s.eval(step))?;
                    if kind == CompKind::OptMap {
                        Ok(Value::Optional(Some(Arc::new(r))))
                    } else {
                        match r {
                            Value::Optional(_) => Ok(r),
                            _ => Err(NO_OVERLOAD.into()),
                        }
                    }
                }
                _ => Err(NO_OVERLOAD.into()),
            };
        }
        let items: Vec<Value> = match &range {
            Value::List(l) => l.as_ref().clone(),
            Value::Map(m) => m.keys().map(Key::to_value).collect(),
            other => {
                return Err(format!(
                    "got '{}', expected iterable type",
                    go_type_name(other)
                ));
            }
        };
        match kind {
            CompKind::All | CompKind::Exists => {
                let decisive = kind == CompKind::Exists;
                let mut acc: Result<()> = Ok(());
                for item in items {
                    let r = self.with_local(var, item, |s| s.eval(step));
                    match r {
                        Ok(Value::Bool(b)) if b == decisive => return Ok(Value::Bool(decisive)),
                        Ok(Value::Bool(_)) => {}
                        Ok(_) => {
                            if acc.is_ok() {
                                acc = Err(NO_OVERLOAD.into());
                            }
                        }
                        Err(e) => {
                            if acc.is_ok() {
                                acc = Err(e);
                            }
                        }
                    }
                }
                acc.map(|_| Value::Bool(!decisive))
            }
            CompKind::ExistsOne => {
                let mut n = 0;
                for item in items {
                    match self.with_local(var, item, |s| s.eval(step))? {
                        Value::Bool(true) => n += 1,
                        Value::Bool(false) => {}
                        _ => return Err(NO_OVERLOAD.into()),
                    }
                }
                Ok(Value::Bool(n == 1))
            }
            CompKind::Map => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let r = self.with_local(var, item, |s| -> Result<Option<Value>> {
                        if let Some(f) = filter {
                            match s.eval(f)? {
                                Value::Bool(true) => {}
                                Value::Bool(false) => return Ok(None),
                                _ => return Err(NO_OVERLOAD.into()),
                            }
                        }
                        s.eval(step).map(Some)
                    })?;
                    if let Some(v) = r {
                        out.push(v);
                    }
                }
                Ok(Value::List(Arc::new(out)))
            }
            CompKind::Filter => {
                let mut out = Vec::new();
                for item in items {
                    let keep = self.with_local(var, item.clone(), |s| s.eval(step))?;
                    match keep {
                        Value::Bool(true) => out.push(item),
                        Value::Bool(false) => {}
                        _ => return Err(NO_OVERLOAD.into()),
                    }
                }
                Ok(Value::List(Arc::new(out)))
            }
            CompKind::OptMap | CompKind::OptFlatMap => Err(NO_OVERLOAD.into()),
        }
    }
}

/// The rest of `&&` / `||` once neither side decided the result.
fn logic_rest(l: Result<Value>, r: Result<Value>) -> Result<Value> {
    match (l, r) {
        (Ok(Value::Bool(a)), Ok(Value::Bool(_))) => Ok(Value::Bool(a)),
        (Err(e), _) => Err(e),
        (_, Err(e)) => Err(e),
        _ => Err(NO_OVERLOAD.into()),
    }
}

/// The Go type cel-go uses for a value, as its messages name it.
fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "types.Null",
        Value::Bool(_) => "types.Bool",
        Value::Int(_) => "types.Int",
        Value::Uint(_) => "types.Uint",
        Value::Double(_) => "types.Double",
        Value::String(_) => "types.String",
        Value::Bytes(_) => "types.Bytes",
        Value::Timestamp(_) => "types.Timestamp",
        Value::Duration(_) => "types.Duration",
        Value::Type(_) => "*types.Type",
        Value::Optional(_) => "*types.Optional",
        Value::List(_) => "traits.Lister",
        Value::Map(_) => "traits.Mapper",
    }
}

/// A value as cel-go prints it with `%v` in error messages.
pub(super) fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Double(d) => format_double(*d),
        Value::Bool(b) => b.to_string(),
        Value::Null => "NULL_VALUE".into(),
        other => other.to_string(),
    }
}

/// Looks `key` up in a map or list; `Ok(None)` when absent.
fn lookup(container: &Value, key: &Value) -> Result<Option<Value>> {
    match container {
        Value::Map(m) => Ok(Value::map_get(m, key).cloned()),
        Value::List(l) => {
            let i = list_index(key)?;
            Ok(usize::try_from(i).ok().and_then(|i| l.get(i)).cloned())
        }
        _ => Ok(None),
    }
}

fn list_index(key: &Value) -> Result<i64> {
    match key {
        Value::Int(i) => Ok(*i),
        Value::Uint(u) => i64::try_from(*u).map_err(|_| format!("index out of bounds: {u}")),
        Value::Double(d) => {
            if d.fract() == 0.0 && d.is_finite() && d.abs() < 9.2e18 {
                Ok(*d as i64)
            } else {
                Err(format!(
                    "unsupported index value {} in list",
                    format_double(*d)
                ))
            }
        }
        other => Err(format!(
            "unsupported index type '{}' in list",
            other.cel_type().name()
        )),
    }
}

fn missing(container: &Value, key: &Value) -> String {
    match container {
        Value::List(_) => format!("index out of bounds: {}", plain(key)),
        _ => format!("no such key: {}", plain(key)),
    }
}

fn unary(op: UnOp, v: Value) -> Result<Value> {
    match (op, v) {
        (UnOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
        (UnOp::Neg, Value::Int(i)) => i
            .checked_neg()
            .map(Value::Int)
            .ok_or_else(|| INT_OVERFLOW.into()),
        (UnOp::Neg, Value::Double(d)) => Ok(Value::Double(-d)),
        (UnOp::Neg, Value::Duration(d)) => d
            .checked_neg()
            .map(Value::Duration)
            .ok_or_else(|| INT_OVERFLOW.into()),
        (UnOp::Neg, Value::String(_) | Value::Bool(_)) | (UnOp::Not, _) => Err(NO_OVERLOAD.into()),
        (UnOp::Neg, _) => Err(format!("{NO_OVERLOAD}: -_")),
    }
}

/// Whether a value's type supports an operator at all (cel-go "traits");
/// a type that does not gets `no such overload: _op_`, a type that does but
/// with a mismatched right-hand side gets plain `no such overload`.
fn has_trait(op: BinOp, v: &Value) -> bool {
    use Value::*;
    // Strings, timestamps and durations are cel-go receiver types: a missing
    // operator falls through to their method dispatch, which answers plainly.
    if matches!(v, String(_) | Timestamp(_) | Duration(_)) {
        return true;
    }
    match op {
        BinOp::Add => matches!(
            v,
            Int(_)
                | Uint(_)
                | Double(_)
                | String(_)
                | Bytes(_)
                | List(_)
                | Timestamp(_)
                | Duration(_)
        ),
        BinOp::Sub => matches!(v, Int(_) | Uint(_) | Double(_) | Timestamp(_) | Duration(_)),
        BinOp::Mul | BinOp::Div => matches!(v, Int(_) | Uint(_) | Double(_)),
        BinOp::Mod => matches!(v, Int(_) | Uint(_)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => matches!(
            v,
            Int(_)
                | Uint(_)
                | Double(_)
                | String(_)
                | Bytes(_)
                | Bool(_)
                | Timestamp(_)
                | Duration(_)
        ),
        _ => true,
    }
}

fn mismatch(op: BinOp, l: &Value) -> String {
    if has_trait(op, l) {
        NO_OVERLOAD.into()
    } else {
        format!("{NO_OVERLOAD}: {}", op.function())
    }
}

pub(super) fn binary(op: BinOp, l: Value, r: Value) -> Result<Value> {
    use Value::*;
    match op {
        BinOp::Eq => return Ok(Bool(cel_equals(&l, &r))),
        BinOp::Ne => return Ok(Bool(!cel_equals(&l, &r))),
        BinOp::In => {
            return match &r {
                List(items) => Ok(Bool(items.iter().any(|x| cel_equals(&l, x)))),
                Map(m) => Ok(Bool(Value::map_get(m, &l).is_some())),
                _ => Err(NO_OVERLOAD.into()),
            };
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ord = match (&l, &r) {
                (String(a), String(b)) => Some(a.cmp(b)),
                (Bytes(a), Bytes(b)) => Some(a.cmp(b)),
                (Bool(a), Bool(b)) => Some(a.cmp(b)),
                (Timestamp(a), Timestamp(b)) => Some(a.cmp(b)),
                (Duration(a), Duration(b)) => Some(a.cmp(b)),
                _ => match numeric_cmp(&l, &r) {
                    Some(o) => o,
                    None => return Err(mismatch(op, &l)),
                },
            };
            let Some(ord) = ord else {
                return Err("NaN values cannot be ordered".into());
            };
            let b = match op {
                BinOp::Lt => ord.is_lt(),
                BinOp::Le => ord.is_le(),
                BinOp::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            };
            return Ok(Bool(b));
        }
        _ => {}
    }
    let int_err = || INT_OVERFLOW.to_string();
    let uint_err = || UINT_OVERFLOW.to_string();
    match (op, &l, &r) {
        (BinOp::Add, Int(a), Int(b)) => a.checked_add(*b).map(Int).ok_or_else(int_err),
        (BinOp::Sub, Int(a), Int(b)) => a.checked_sub(*b).map(Int).ok_or_else(int_err),
        (BinOp::Mul, Int(a), Int(b)) => a.checked_mul(*b).map(Int).ok_or_else(int_err),
        (BinOp::Div, Int(_), Int(0)) => Err("division by zero".into()),
        (BinOp::Div, Int(a), Int(b)) => a.checked_div(*b).map(Int).ok_or_else(int_err),
        (BinOp::Mod, Int(_), Int(0)) => Err("modulus by zero".into()),
        (BinOp::Mod, Int(a), Int(b)) => a.checked_rem(*b).map(Int).ok_or_else(int_err),
        (BinOp::Add, Uint(a), Uint(b)) => a.checked_add(*b).map(Uint).ok_or_else(uint_err),
        (BinOp::Sub, Uint(a), Uint(b)) => a.checked_sub(*b).map(Uint).ok_or_else(uint_err),
        (BinOp::Mul, Uint(a), Uint(b)) => a.checked_mul(*b).map(Uint).ok_or_else(uint_err),
        (BinOp::Div, Uint(_), Uint(0)) => Err("division by zero".into()),
        (BinOp::Div, Uint(a), Uint(b)) => Ok(Uint(a / b)),
        (BinOp::Mod, Uint(_), Uint(0)) => Err("modulus by zero".into()),
        (BinOp::Mod, Uint(a), Uint(b)) => Ok(Uint(a % b)),
        (BinOp::Add, Double(a), Double(b)) => Ok(Double(a + b)),
        (BinOp::Sub, Double(a), Double(b)) => Ok(Double(a - b)),
        (BinOp::Mul, Double(a), Double(b)) => Ok(Double(a * b)),
        (BinOp::Div, Double(a), Double(b)) => Ok(Double(a / b)),
        (BinOp::Add, String(a), String(b)) => {
            let mut s = a.to_string();
            s.push_str(b);
            Ok(Value::from(s))
        }
        (BinOp::Add, Bytes(a), Bytes(b)) => {
            let mut v = a.to_vec();
            v.extend_from_slice(b);
            Ok(Bytes(Arc::from(v)))
        }
        (BinOp::Add, List(a), List(b)) => {
            let mut v = a.as_ref().clone();
            v.extend(b.iter().cloned());
            Ok(List(Arc::new(v)))
        }
        (BinOp::Add, Timestamp(t), Duration(d)) | (BinOp::Add, Duration(d), Timestamp(t)) => t
            .add(*d)
            .map(Timestamp)
            .ok_or_else(|| "timestamp overflow".into()),
        (BinOp::Add, Duration(a), Duration(b)) => {
            a.checked_add(*b).map(Duration).ok_or_else(int_err)
        }
        (BinOp::Sub, Timestamp(a), Timestamp(b)) => a.sub(b).map(Duration).ok_or_else(int_err),
        (BinOp::Sub, Timestamp(t), Duration(d)) => t
            .sub_duration(*d)
            .map(Timestamp)
            .ok_or_else(|| "timestamp overflow".into()),
        (BinOp::Sub, Duration(a), Duration(b)) => {
            a.checked_sub(*b).map(Duration).ok_or_else(int_err)
        }
        _ => Err(mismatch(op, &l)),
    }
}
