//! Built-in functions: the CEL standard library plus the extensions that the
//! incumbent's environment enables (cel-go `ext.Strings`, `ext.Sets`,
//! `ext.Encoders`, optional types).

use std::sync::Arc;

use regex::Regex;

use super::eval::{INT_OVERFLOW, Interp, NO_OVERLOAD, Result, UINT_OVERFLOW};
use super::time::{Duration, Timestamp, parse_tz_offset};
use super::value::{Value, cel_equals, format_double};

/// Namespaced global functions: `optional.of(x)` parses as a call of `of` on
/// the identifier `optional` and is resolved to these at compile time.
pub(super) const QUALIFIED: &[&str] = &[
    "optional.of",
    "optional.none",
    "optional.ofNonZeroValue",
    "base64.encode",
    "base64.decode",
    "json.encode",
    "sets.contains",
    "sets.equivalent",
    "sets.intersects",
    "strings.quote",
];

/// Type conversion functions, folded at compile time over constant
/// arguments the way cel-go's optimizing planner does.
pub(super) const CONVERSIONS: &[&str] = &[
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "bool",
    "timestamp",
    "duration",
    "type",
    "dyn",
];

/// Functions that only take one argument (the receiver or the sole argument).
pub(super) const UNARY_ONLY: &[&str] = &[
    "size",
    "lowerAscii",
    "upperAscii",
    "trim",
    "reverse",
    "hasValue",
    "value",
    "optional.of",
    "optional.ofNonZeroValue",
    "base64.encode",
    "base64.decode",
    "json.encode",
    "strings.quote",
];

/// All known function names (anything else is `no such overload: name`).
const KNOWN: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "format",
    "reverse",
    "getFullYear",
    "getMonth",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "hasValue",
    "value",
    "orValue",
    "or",
];

fn conversion_error(v: &Value, to: &str) -> String {
    format!(
        "type conversion error from '{}' to '{}'",
        v.cel_type().name(),
        to
    )
}

/// `no such overload: f(t1, t2)`, cel-go's dispatcher message for a function
/// with several overloads none of which fits.
fn overload_error(name: &str, args: &[&Value]) -> String {
    let types: Vec<&str> = args.iter().map(|a| a.cel_type().name()).collect();
    format!("{NO_OVERLOAD}: {name}({})", types.join(", "))
}

/// A type conversion function applied to one value.
pub(super) fn convert(name: &str, v: &Value) -> Result<Value> {
    match name {
        "dyn" => Ok(v.clone()),
        "type" => Ok(Value::Type(v.cel_type())),
        "int" => match v {
            Value::Int(_) => Ok(v.clone()),
            Value::Uint(u) => i64::try_from(*u)
                .map(Value::Int)
                .map_err(|_| INT_OVERFLOW.into()),
            Value::Double(d) => {
                if d.is_nan() || *d <= (i64::MIN as f64) || *d >= -(i64::MIN as f64) {
                    Err(INT_OVERFLOW.into())
                } else {
                    Ok(Value::Int(d.trunc() as i64))
                }
            }
            Value::String(s) => parse_go_int(s)
                .map(Value::Int)
                .ok_or_else(|| conversion_error(v, "int")),
            Value::Timestamp(t) => Ok(Value::Int(t.unix_seconds())),
            Value::Duration(d) => Ok(Value::Int(d.nanos())),
            _ => Err(overload_error(name, &[v])),
        },
        "uint" => match v {
            Value::Uint(_) => Ok(v.clone()),
            Value::Int(i) => u64::try_from(*i)
                .map(Value::Uint)
                .map_err(|_| UINT_OVERFLOW.into()),
            Value::Double(d) => {
                if d.is_nan() || *d < 0.0 || *d >= (u64::MAX as f64) {
                    Err(UINT_OVERFLOW.into())
                } else {
                    Ok(Value::Uint(d.trunc() as u64))
                }
            }
            Value::String(s) => {
                if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                    return Err(conversion_error(v, "uint"));
                }
                s.parse::<u64>()
                    .map(Value::Uint)
                    .map_err(|_| conversion_error(v, "uint"))
            }
            _ => Err(overload_error(name, &[v])),
        },
        "double" => match v {
            Value::Double(_) => Ok(v.clone()),
            Value::Int(i) => Ok(Value::Double(*i as f64)),
            Value::Uint(u) => Ok(Value::Double(*u as f64)),
            Value::String(s) => parse_go_float(s)
                .map(Value::Double)
                .ok_or_else(|| conversion_error(v, "double")),
            _ => Err(overload_error(name, &[v])),
        },
        "string" => match v {
            Value::String(_) => Ok(v.clone()),
            Value::Int(i) => Ok(Value::from(i.to_string())),
            Value::Uint(u) => Ok(Value::from(u.to_string())),
            Value::Double(d) => Ok(Value::from(format_double(*d))),
            Value::Bool(b) => Ok(Value::from(b.to_string())),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => Ok(Value::from(s)),
                Err(_) => Err("invalid UTF-8 in bytes, cannot convert to string".into()),
            },
            Value::Timestamp(t) => Ok(Value::from(t.to_string())),
            Value::Duration(d) => Ok(Value::from(d.to_string())),
            _ => Err(overload_error(name, &[v])),
        },
        "bytes" => match v {
            Value::Bytes(_) => Ok(v.clone()),
            Value::String(s) => Ok(Value::Bytes(Arc::from(s.as_bytes()))),
            _ => Err(overload_error(name, &[v])),
        },
        "bool" => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) => match s.as_ref() {
                "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Value::Bool(true)),
                "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Value::Bool(false)),
                _ => Err(conversion_error(v, "bool")),
            },
            _ => Err(overload_error(name, &[v])),
        },
        "timestamp" => match v {
            Value::Timestamp(_) => Ok(v.clone()),
            Value::String(s) => Timestamp::parse(s)
                .map(Value::Timestamp)
                .ok_or_else(|| conversion_error(v, "google.protobuf.Timestamp")),
            Value::Int(i) => Timestamp::from_unix(*i, 0)
                .map(Value::Timestamp)
                .ok_or_else(|| "timestamp overflow".into()),
            _ => Err(overload_error(name, &[v])),
        },
        "duration" => match v {
            Value::Duration(_) => Ok(v.clone()),
            Value::String(s) => Duration::parse(s)
                .map(Value::Duration)
                .ok_or_else(|| conversion_error(v, "google.protobuf.Duration")),
            _ => Err(overload_error(name, &[v])),
        },
        _ => Err(format!("{NO_OVERLOAD}: {name}")),
    }
}

/// Go `strconv.ParseInt(s, 10, 64)`: optional sign, decimal digits only.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.strip_prefix('+').unwrap_or(s).parse().ok()
}

/// Go `strconv.ParseFloat(s, 64)` for the forms that matter here.
fn parse_go_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        let v = if lower == "nan" {
            f64::NAN
        } else {
            f64::INFINITY
        };
        return Some(if s.starts_with('-') { -v } else { v });
    }
    if body.is_empty()
        || !body
            .bytes()
            .all(|c| c.is_ascii_digit() || b".eE+-".contains(&c))
    {
        return None;
    }
    s.parse().ok()
}

/// Makes a Go (RE2) pattern behave the same under the `regex` crate: the
/// Perl classes `\d \w \s` and `\b` are ASCII-only in Go but Unicode-aware
/// in `regex`.
pub(super) fn compile_regex(pattern: &str) -> std::result::Result<Regex, String> {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let rep = match (n, in_class) {
                    ('d', false) => Some("[0-9]"),
                    ('D', false) => Some("[^0-9]"),
                    ('w', false) => Some("[0-9A-Za-z_]"),
                    ('W', false) => Some("[^0-9A-Za-z_]"),
                    ('s', false) => Some("[\\t\\n\\f\\r ]"),
                    ('S', false) => Some("[^\\t\\n\\f\\r ]"),
                    ('b', false) => Some("(?-u:\\b)"),
                    ('B', false) => Some("(?-u:\\B)"),
                    ('d', true) => Some("0-9"),
                    ('w', true) => Some("0-9A-Za-z_"),
                    ('s', true) => Some("\\t\\n\\f\\r "),
                    _ => None,
                };
                match rep {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push('\\');
                        out.push(n);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                // POSIX class like [:alpha:]
                out.push('[');
                for n in chars.by_ref() {
                    out.push(n);
                    if n == ']' {
                        break;
                    }
                }
            }
            '[' => out.push_str("\\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    Regex::new(&out).map_err(|e| {
        let msg = e.to_string();
        let last = msg
            .lines()
            .last()
            .unwrap_or("invalid pattern")
            .trim()
            .to_string();
        let last = last.strip_prefix("error: ").unwrap_or(&last).to_string();
        format!("error parsing regexp: {last}: `{pattern}`")
    })
}

fn regex_match(interp: &Interp<'_>, s: &str, pattern: &str) -> Result<Value> {
    if let Some(re) = interp.regexes.get(pattern) {
        return Ok(Value::Bool(re.is_match(s)));
    }
    let re = compile_regex(pattern)?;
    Ok(Value::Bool(re.is_match(s)))
}

fn size(v: &Value) -> Option<i64> {
    Some(match v {
        Value::String(s) => s.chars().count() as i64,
        Value::Bytes(b) => b.len() as i64,
        Value::List(l) => l.len() as i64,
        Value::Map(m) => m.len() as i64,
        _ => return None,
    })
}

pub(super) fn call(
    interp: &mut Interp<'_>,
    name: &str,
    target: Option<Value>,
    args: Vec<Value>,
) -> Result<Value> {
    match target {
        None => global(interp, name, args),
        Some(t) => match member(interp, name, t.clone(), &args) {
            Err(e) if e == NO_OVERLOAD && TYPED_MISMATCH.contains(&name) => {
                let mut all = vec![&t];
                all.extend(args.iter());
                Err(overload_error(name, &all))
            }
            r => r,
        },
    }
}

/// Functions whose mismatches cel-go reports with the argument types.
const TYPED_MISMATCH: &[&str] = &[
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "format",
    "reverse",
    "getFullYear",
    "getMonth",
    "getDate",
    "getDayOfMonth",
    "getDayOfWeek",
    "getDayOfYear",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
];

fn unknown(name: &str) -> String {
    format!("{NO_OVERLOAD}: {name}")
}

fn mismatch(name: &str) -> String {
    if KNOWN.contains(&name) || CONVERSIONS.contains(&name) || QUALIFIED.contains(&name) {
        NO_OVERLOAD.to_string()
    } else {
        unknown(name)
    }
}

fn global(interp: &mut Interp<'_>, name: &str, args: Vec<Value>) -> Result<Value> {
    if CONVERSIONS.contains(&name) {
        if args.len() != 1 {
            let types: Vec<&str> = args.iter().map(|a| a.cel_type().name()).collect();
            return Err(format!("{NO_OVERLOAD}: {name}({})", types.join(", ")));
        }
        return convert(name, &args[0]);
    }
    match (name, args.as_slice()) {
        ("size", [v]) => size(v).map(Value::Int).ok_or_else(|| unknown("size")),
        ("size", _) => Err(unknown("size")),
        ("matches", [Value::String(s), Value::String(p)]) => regex_match(interp, s, p),
        ("optional.of", [v]) => Ok(Value::Optional(Some(Arc::new(v.clone())))),
        ("optional.none", []) => Ok(Value::Optional(None)),
        ("optional.ofNonZeroValue", [v]) => Ok(Value::Optional(if is_zero(v) {
            None
        } else {
            Some(Arc::new(v.clone()))
        })),
        ("base64.encode", [Value::Bytes(b)]) => Ok(Value::from(base64_encode(b))),
        ("base64.decode", [Value::String(s)]) => {
            base64_decode(s).map(|b| Value::Bytes(Arc::from(b)))
        }
        ("json.encode", [v]) => v
            .to_json()
            .map(|j| Value::from(j.to_string()))
            .ok_or_else(|| format!("json: unsupported value: {v}")),
        ("sets.contains", [Value::List(a), Value::List(b)]) => {
            Ok(Value::Bool(list_contains_all(a, b)))
        }
        ("sets.equivalent", [Value::List(a), Value::List(b)]) => Ok(Value::Bool(
            list_contains_all(a, b) && list_contains_all(b, a),
        )),
        ("sets.intersects", [Value::List(a), Value::List(b)]) => Ok(Value::Bool(
            a.iter().any(|x| b.iter().any(|y| cel_equals(x, y))),
        )),
        ("strings.quote", [Value::String(s)]) => Ok(Value::from(quote(s))),
        _ => Err(mismatch(name)),
    }
}

fn list_contains_all(a: &[Value], b: &[Value]) -> bool {
    b.iter().all(|y| a.iter().any(|x| cel_equals(x, y)))
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Uint(u) => *u == 0,
        Value::Double(d) => *d == 0.0,
        Value::String(s) => s.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        Value::Timestamp(t) => t.unix_seconds() == 0 && t.subsec_nanos() == 0,
        Value::Duration(d) => d.nanos() == 0,
        Value::Type(_) => false,
        Value::Optional(o) => o.is_none(),
    }
}

fn int_arg(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

fn member(interp: &mut Interp<'_>, name: &str, t: Value, args: &[Value]) -> Result<Value> {
    match (&t, name) {
        (_, "size") => {
            if !args.is_empty() {
                return Err(unknown("size"));
            }
            size(&t).map(Value::Int).ok_or_else(|| unknown("size"))
        }
        (Value::String(s), _) => string_method(interp, s, name, args),
        (Value::List(l), "join") => {
            let sep = match args {
                [] => "",
                [Value::String(sep)] => sep,
                _ => return Err(NO_OVERLOAD.into()),
            };
            let mut parts = Vec::with_capacity(l.len());
            for v in l.iter() {
                match v {
                    Value::String(s) => parts.push(s.as_ref()),
                    _ => {
                        return Err(if args.is_empty() {
                            "no such overload: join(list)".into()
                        } else {
                            "no such overload: join(list, string)".into()
                        });
                    }
                }
            }
            Ok(Value::from(parts.join(sep)))
        }
        (Value::Timestamp(ts), _) => {
            let offset = match args {
                [] => 0,
                [Value::String(tz)] => {
                    parse_tz_offset(tz).ok_or_else(|| format!("unknown time zone {tz}"))?
                }
                _ => return Err(mismatch(name)),
            };
            let c = ts.civil(offset);
            let v = match name {
                "getFullYear" => c.year,
                "getMonth" => c.month as i64 - 1,
                "getDate" => c.day as i64,
                "getDayOfMonth" => c.day as i64 - 1,
                "getDayOfWeek" => c.day_of_week as i64,
                "getDayOfYear" => c.day_of_year as i64,
                "getHours" => c.hour as i64,
                "getMinutes" => c.minute as i64,
                "getSeconds" => c.second as i64,
                "getMilliseconds" => (c.nanos / 1_000_000) as i64,
                _ => return Err(mismatch(name)),
            };
            Ok(Value::Int(v))
        }
        (Value::Duration(d), _) if args.is_empty() => {
            let n = d.nanos();
            let v = match name {
                "getHours" => n / 3_600_000_000_000,
                "getMinutes" => n / 60_000_000_000,
                "getSeconds" => n / 1_000_000_000,
                "getMilliseconds" => n / 1_000_000,
                _ => return Err(mismatch(name)),
            };
            Ok(Value::Int(v))
        }
        (Value::Optional(o), _) => match (name, args) {
            ("hasValue", []) => Ok(Value::Bool(o.is_some())),
            ("value", []) => match o {
                Some(v) => Ok((**v).clone()),
                None => Err("optional.none() dereference".into()),
            },
            ("orValue", [d]) => Ok(match o {
                Some(v) => (**v).clone(),
                None => d.clone(),
            }),
            ("or", [other @ Value::Optional(_)]) => Ok(match o {
                Some(_) => t.clone(),
                None => other.clone(),
            }),
            _ => Err(mismatch(name)),
        },
        _ => Err(mismatch(name)),
    }
}

fn string_method(interp: &mut Interp<'_>, s: &str, name: &str, args: &[Value]) -> Result<Value> {
    let chars = || s.chars().collect::<Vec<char>>();
    match (name, args) {
        ("contains", [Value::String(x)]) => Ok(Value::Bool(s.contains(x.as_ref()))),
        ("startsWith", [Value::String(x)]) => Ok(Value::Bool(s.starts_with(x.as_ref()))),
        ("endsWith", [Value::String(x)]) => Ok(Value::Bool(s.ends_with(x.as_ref()))),
        ("matches", [Value::String(p)]) => regex_match(interp, s, p),
        ("lowerAscii", []) => Ok(Value::from(s.to_ascii_lowercase())),
        ("upperAscii", []) => Ok(Value::from(s.to_ascii_uppercase())),
        ("trim", []) => Ok(Value::from(s.trim())),
        ("reverse", []) => Ok(Value::from(s.chars().rev().collect::<String>())),
        ("charAt", [i]) => {
            let i = int_arg(i).ok_or_else(|| mismatch(name))?;
            let cs = chars();
            if i < 0 || i as usize > cs.len() {
                return Err(format!("index out of range: {i}"));
            }
            Ok(Value::from(
                cs.get(i as usize)
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
            ))
        }
        ("indexOf" | "lastIndexOf", [Value::String(x), rest @ ..]) if rest.len() <= 1 => {
            let cs = chars();
            let needle: Vec<char> = x.chars().collect();
            let last = name == "lastIndexOf";
            let off = match rest {
                [v] => int_arg(v).ok_or_else(|| mismatch(name))?,
                _ if last => cs.len() as i64,
                _ => 0,
            };
            if off < 0 {
                return Err(format!("index out of range: {off}"));
            }
            let off = off as usize;
            if needle.is_empty() {
                return Ok(Value::Int(off.min(cs.len()) as i64));
            }
            let fits =
                |i: usize| i + needle.len() <= cs.len() && cs[i..i + needle.len()] == needle[..];
            let found = if last && rest.is_empty() {
                (0..cs.len()).rev().find(|&i| fits(i))
            } else if off >= cs.len() {
                None
            } else if last {
                (0..=off).rev().find(|&i| fits(i))
            } else {
                (off..cs.len()).find(|&i| fits(i))
            };
            Ok(Value::Int(found.map(|i| i as i64).unwrap_or(-1)))
        }
        ("replace", [Value::String(from), Value::String(to), rest @ ..]) if rest.len() <= 1 => {
            let n = match rest {
                [v] => int_arg(v).ok_or_else(|| mismatch(name))?,
                _ => -1,
            };
            Ok(Value::from(if n < 0 {
                s.replace(from.as_ref(), to)
            } else {
                s.replacen(from.as_ref(), to, n as usize)
            }))
        }
        ("split", [Value::String(sep), rest @ ..]) if rest.len() <= 1 => {
            let n = match rest {
                [v] => int_arg(v).ok_or_else(|| mismatch(name))?,
                _ => -1,
            };
            let parts: Vec<String> = if n == 0 {
                Vec::new()
            } else if sep.is_empty() {
                let cs = chars();
                let limit = if n < 0 {
                    cs.len()
                } else {
                    (n as usize).min(cs.len())
                };
                let mut v: Vec<String> = Vec::new();
                for (i, c) in cs.iter().enumerate() {
                    if limit > 0 && i == limit - 1 && i + 1 < cs.len() {
                        v.push(cs[i..].iter().collect());
                        break;
                    }
                    v.push(c.to_string());
                }
                v
            } else if n < 0 {
                s.split(sep.as_ref()).map(str::to_string).collect()
            } else {
                s.splitn(n as usize, sep.as_ref())
                    .map(str::to_string)
                    .collect()
            };
            Ok(Value::List(Arc::new(
                parts.into_iter().map(Value::from).collect(),
            )))
        }
        ("substring", [a, rest @ ..]) if rest.len() <= 1 => {
            let cs = chars();
            let start = int_arg(a).ok_or_else(|| mismatch(name))?;
            let end = match rest {
                [v] => int_arg(v).ok_or_else(|| mismatch(name))?,
                _ => cs.len() as i64,
            };
            if start < 0 || start as usize > cs.len() {
                return Err(format!("index out of range: {start}"));
            }
            if end < 0 || end as usize > cs.len() {
                return Err(format!("index out of range: {end}"));
            }
            if start > end {
                return Err(format!(
                    "invalid substring range. start: {start}, end: {end}"
                ));
            }
            Ok(Value::from(
                cs[start as usize..end as usize].iter().collect::<String>(),
            ))
        }
        ("format", [Value::List(l)]) => format_string(s, l).map(Value::from),
        _ => Err(mismatch(name)),
    }
}

/// `%s` rendering used by `format`.
fn format_s(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string(),
        Value::List(l) => format!(
            "[{}]",
            l.iter().map(format_s).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(m) => {
            let mut parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", format_s(&k.to_value()), format_s(v)))
                .collect();
            parts.sort();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Null => "null".into(),
        Value::Type(t) => t.name().into(),
        Value::Optional(None) => "optional.none()".into(),
        Value::Optional(Some(x)) => format!("optional.of({})", format_s(x)),
        other => match convert("string", other) {
            Ok(Value::String(s)) => s.to_string(),
            _ => other.to_string(),
        },
    }
}

fn format_string(fmt: &str, args: &[Value]) -> Result<String> {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if it.peek() == Some(&'%') {
            it.next();
            out.push('%');
            continue;
        }
        let mut precision: Option<usize> = None;
        if it.peek() == Some(&'.') {
            it.next();
            let mut p = String::new();
            while let Some(d) = it.peek().filter(|d| d.is_ascii_digit()) {
                p.push(*d);
                it.next();
            }
            precision = p.parse().ok();
        }
        let Some(verb) = it.next() else {
            return Err("error during formatting: unexpected end of format string".into());
        };
        let Some(arg) = args.get(next) else {
            return Err(format!("index {next} out of range"));
        };
        next += 1;
        let bad = |what: &str| {
            format!(
                "error during formatting: {what} clause can only be used on {}, was given {}",
                match what {
                    "decimal" => "ints, uints, and doubles",
                    "fixed-point" | "scientific" => "doubles",
                    _ => "ints, uints, bools, strings and bytes",
                },
                arg.cel_type().name()
            )
        };
        match verb {
            's' => out.push_str(&format_s(arg)),
            'd' => match arg {
                Value::Int(i) => out.push_str(&i.to_string()),
                Value::Uint(u) => out.push_str(&u.to_string()),
                Value::Double(d) => out.push_str(&format_double(d.trunc())),
                _ => return Err(bad("decimal")),
            },
            'f' | 'e' => {
                let d = match arg {
                    Value::Double(d) => *d,
                    Value::Int(i) => *i as f64,
                    Value::Uint(u) => *u as f64,
                    _ => {
                        return Err(bad(if verb == 'f' {
                            "fixed-point"
                        } else {
                            "scientific"
                        }));
                    }
                };
                let p = precision.unwrap_or(6);
                if verb == 'f' {
                    out.push_str(&format!("{d:.p$}"));
                } else {
                    let s = format!("{d:.p$e}");
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    out.push_str(&format!(
                        "{m}e{}{:02}",
                        if e < 0 { '-' } else { '+' },
                        e.abs()
                    ));
                }
            }
            'b' | 'o' | 'x' | 'X' => {
                let text = match (arg, verb) {
                    (Value::Int(i), 'b') => format_signed(*i, |u| format!("{u:b}")),
                    (Value::Int(i), 'o') => format_signed(*i, |u| format!("{u:o}")),
                    (Value::Int(i), 'x') => format_signed(*i, |u| format!("{u:x}")),
                    (Value::Int(i), _) => format_signed(*i, |u| format!("{u:X}")),
                    (Value::Uint(u), 'b') => format!("{u:b}"),
                    (Value::Uint(u), 'o') => format!("{u:o}"),
                    (Value::Uint(u), 'x') => format!("{u:x}"),
                    (Value::Uint(u), _) => format!("{u:X}"),
                    (Value::Bool(b), 'b') => (if *b { "1" } else { "0" }).into(),
                    (Value::String(s), 'x') => s.bytes().map(|b| format!("{b:02x}")).collect(),
                    (Value::String(s), 'X') => s.bytes().map(|b| format!("{b:02X}")).collect(),
                    (Value::Bytes(s), 'x') => s.iter().map(|b| format!("{b:02x}")).collect(),
                    (Value::Bytes(s), 'X') => s.iter().map(|b| format!("{b:02X}")).collect(),
                    _ => {
                        return Err(bad(if verb == 'b' {
                            "binary"
                        } else if verb == 'o' {
                            "octal"
                        } else {
                            "hex"
                        }));
                    }
                };
                out.push_str(&text);
            }
            other => {
                return Err(format!(
                    "error during formatting: could not parse formatting clause: unrecognized formatting clause \"{other}\""
                ));
            }
        }
    }
    Ok(out)
}

fn format_signed(i: i64, f: impl Fn(u64) -> String) -> String {
    if i < 0 {
        format!("-{}", f(i.unsigned_abs()))
    } else {
        f(i as u64)
    }
}

/// `strings.quote`: double-quoted with C-style escapes.
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(super) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64; like cel-go, falls back to the unpadded encoding and
/// then reports that decoder's error.
fn base64_decode(s: &str) -> Result<Vec<u8>> {
    decode_b64(s, true).or_else(|_| decode_b64(s, false))
}

fn decode_b64(s: &str, padded: bool) -> Result<Vec<u8>> {
    let bytes = s.as_bytes();
    let err = |i: usize| format!("illegal base64 data at input byte {i}");
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let mut i = 0;
    while i < bytes.len() {
        let mut quad = [0u32; 4];
        let mut n = 0;
        while n < 4 && i < bytes.len() {
            let c = bytes[i];
            if c == b'=' {
                if !padded || n < 2 {
                    return Err(err(i));
                }
                // the rest of this quantum must be padding, then the end
                let need = 4 - n;
                if bytes.len() - i != need || !bytes[i..].iter().all(|&c| c == b'=') {
                    return Err(err(if bytes.len() - i < need {
                        bytes.len()
                    } else {
                        i + need.min(bytes.len() - i) - 1
                    }));
                }
                i = bytes.len();
                break;
            }
            match B64.iter().position(|&x| x == c) {
                Some(v) => quad[n] = v as u32,
                None => return Err(err(i)),
            }
            n += 1;
            i += 1;
        }
        if n == 1 {
            return Err(err(i - 1));
        }
        if n < 4 && padded && i >= bytes.len() && bytes.last() != Some(&b'=') {
            return Err(err(bytes.len()));
        }
        let v = quad[0] << 18 | quad[1] << 12 | quad[2] << 6 | quad[3];
        out.push((v >> 16) as u8);
        if n > 2 {
            out.push((v >> 8) as u8);
        }
        if n > 3 {
            out.push(v as u8);
        }
    }
    Ok(out)
}
