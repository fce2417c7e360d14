//! slim-sprig v3.0.0 `HermeticTxtFuncMap()` plus fluxop's additions, over [`Value`].
//!
//! Error messages are Go's. Two kinds of errors are returned as [`FuncError`]:
//! argument-conversion/arity errors (see [`is_arg_error`]), which Go reports without a
//! prefix, and call errors, which the engine reports as `error calling NAME: MESSAGE`.
use super::fmt::{format_v, quote as go_quote};
use super::value::{Func, FuncError, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

type R = Result<Value, FuncError>;
type MapRc = Rc<RefCell<BTreeMap<String, Value>>>;

const NIL_DEREF: &str = "runtime error: invalid memory address or nil pointer dereference";

/// True for the errors Go's text/template raises itself while converting arguments
/// (no `error calling NAME:` prefix): wrong arity, wrong type, invalid (nil) value.
pub fn is_arg_error(msg: &str) -> bool {
    msg.starts_with("wrong type for value; ")
        || msg.starts_with("invalid value; expected ")
        || msg.starts_with("wrong number of args for ")
}

fn fe<T>(msg: impl Into<String>) -> Result<T, FuncError> {
    Err(FuncError(msg.into()))
}

fn check(name: &str, a: &[Value], n: usize, variadic: bool) -> Result<(), FuncError> {
    if variadic {
        if a.len() < n {
            return fe(format!(
                "wrong number of args for {name}: want at least {n} got {}",
                a.len()
            ));
        }
    } else if a.len() != n {
        return fe(format!(
            "wrong number of args for {name}: want {n} got {}",
            a.len()
        ));
    }
    Ok(())
}

fn wrong(expected: &str, v: &Value) -> FuncError {
    match v {
        Value::Nil => FuncError(format!("invalid value; expected {expected}")),
        _ => FuncError(format!(
            "wrong type for value; expected {expected}; got {}",
            v.type_name()
        )),
    }
}

fn s_arg(v: &Value) -> Result<&str, FuncError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(wrong("string", v)),
    }
}

fn i_arg(v: &Value) -> Result<i64, FuncError> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => Err(wrong("int", v)),
    }
}

fn b_arg(v: &Value) -> Result<bool, FuncError> {
    match v {
        Value::Bool(b) => Ok(*b),
        _ => Err(wrong("bool", v)),
    }
}

/// A `float64` parameter: Go converts a number constant (`1`) but refuses an int64 datum.
/// An `int` here is taken for a constant.
fn f_arg(v: &Value) -> Result<f64, FuncError> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        _ => Err(wrong("float64", v)),
    }
}

/// A `map[string]interface{}` parameter; nil converts to a nil map (None).
fn m_arg(v: &Value) -> Result<Option<MapRc>, FuncError> {
    match v {
        Value::Map(m) => Ok(Some(m.clone())),
        Value::Nil => Ok(None),
        _ => Err(wrong("map[string]interface {}", v)),
    }
}

fn m_get(m: &Option<MapRc>, k: &str) -> Option<Value> {
    m.as_ref().and_then(|m| m.borrow().get(k).cloned())
}

fn s(x: impl Into<String>) -> Value {
    Value::String(x.into())
}

fn strs(v: Vec<String>) -> Value {
    Value::list(v.into_iter().map(Value::String).collect())
}

fn ints(v: Vec<i64>) -> Value {
    Value::list(v.into_iter().map(Value::Int).collect())
}

/// sprig's strval.
pub fn strval(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        _ => format_v(v),
    }
}

/// sprig's strslice.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l
            .iter()
            .filter(|x| !matches!(x, Value::Nil))
            .map(strval)
            .collect(),
        Value::Nil => vec![],
        _ => vec![strval(v)],
    }
}

/// Go `strconv.ParseFloat(s, 64)`, None on error (including out of range).
pub fn parse_go_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let sign = if neg { -1.0 } else { 1.0 };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(sign * f64::INFINITY);
    }
    if lower == "nan" {
        return Some(f64::NAN);
    }
    // Underscores are allowed between digits (and after a base prefix), as in Go literals.
    let lower = if lower.contains('_') {
        let b = lower.as_bytes();
        let ok = b.iter().enumerate().all(|(i, &c)| {
            c != b'_'
                || (i > 0
                    && i + 1 < b.len()
                    && (b[i - 1].is_ascii_hexdigit() || b[i - 1] == b'x')
                    && b[i + 1].is_ascii_hexdigit())
        });
        if !ok {
            return None;
        }
        lower.replace('_', "")
    } else {
        lower
    };
    if let Some(hex) = lower.strip_prefix("0x") {
        let (mant, exp) = hex.split_once('p')?;
        let exp: i32 = exp.parse().ok()?;
        let (ip, fp) = mant.split_once('.').unwrap_or((mant, ""));
        if ip.is_empty() && fp.is_empty() {
            return None;
        }
        let mut m = 0f64;
        for c in ip.chars() {
            m = m * 16.0 + c.to_digit(16)? as f64;
        }
        let mut scale = 1.0 / 16.0;
        for c in fp.chars() {
            m += c.to_digit(16)? as f64 * scale;
            scale /= 16.0;
        }
        let r = m * 2f64.powi(exp);
        if r.is_infinite() {
            return None;
        }
        return Some(sign * r);
    }
    if lower.is_empty()
        || !lower
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'+' | b'-'))
    {
        return None;
    }
    let r: f64 = lower.parse().ok()?;
    if r.is_infinite() {
        return None;
    }
    Some(sign * r)
}

fn float_to_i64(f: f64) -> i64 {
    const LIM: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if f.is_nan() || !(-LIM..LIM).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

/// sprig's toInt64.
pub fn to_int64(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse::<i64>().unwrap_or(0),
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Float(f) => float_to_i64(*f),
        Value::Bool(b) => *b as i64,
        _ => 0,
    }
}

/// sprig's toFloat64.
pub fn to_float64(v: &Value) -> f64 {
    match v {
        Value::String(s) => parse_go_float(s).unwrap_or(0.0),
        Value::Int(i) | Value::Int64(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => *b as i64 as f64,
        _ => 0.0,
    }
}

/// sprig's empty.
pub fn empty(v: &Value) -> bool {
    !v.truthy()
}

/// Go `reflect.DeepEqual` on two interface values.
pub fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) | (Value::Int64(x), Value::Int64(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            Rc::ptr_eq(x, y)
                || (x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_equal(p, q)))
        }
        (Value::Map(x), Value::Map(y)) => {
            if Rc::ptr_eq(x, y) {
                return true;
            }
            let (x, y) = (x.borrow(), y.borrow());
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        _ => false,
    }
}

fn go_kind(v: &Value) -> Result<&'static str, FuncError> {
    match v {
        Value::Nil => fe(NIL_DEREF),
        _ => Ok(v.kind_name()),
    }
}

/// The list argument of sprig's list functions; `what` builds the error text.
fn list_arg(v: &Value, what: &str) -> Result<Rc<Vec<Value>>, FuncError> {
    match v {
        Value::List(l) => Ok(l.clone()),
        _ => {
            let k = go_kind(v)?;
            fe(what.replace("%s", k))
        }
    }
}

fn in_list(h: &[Value], n: &Value) -> bool {
    h.iter().any(|x| deep_equal(n, x))
}

fn byte_slice(s: &str, a: usize, b: usize) -> String {
    String::from_utf8_lossy(&s.as_bytes()[a..b]).into_owned()
}

fn go_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut u = c.to_uppercase();
            match (u.next(), u.next()) {
                (Some(x), None) => x,
                _ => c,
            }
        })
        .collect()
}

fn go_lower(s: &str) -> String {
    s.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

fn go_title_rune(c: char) -> char {
    match c as u32 {
        0x1c4..=0x1c6 => '\u{1c5}',
        0x1c7..=0x1c9 => '\u{1c8}',
        0x1ca..=0x1cc => '\u{1cb}',
        0x1f1..=0x1f3 => '\u{1f2}',
        _ => {
            let mut u = c.to_uppercase();
            match (u.next(), u.next()) {
                (Some(x), None) => x,
                _ => c,
            }
        }
    }
}

/// Go `strings.Title`.
pub fn go_title(s: &str) -> String {
    let is_sep = |c: char| {
        if c.is_ascii() {
            return !(c.is_ascii_alphanumeric() || c == '_');
        }
        if c.is_alphabetic() || c.is_numeric() {
            return false;
        }
        c.is_whitespace()
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let r = if is_sep(prev) { go_title_rune(c) } else { c };
            prev = c;
            r
        })
        .collect()
}

/// Go `strings.SplitN(s, sep, n)` (n < 0: all).
pub fn go_split_n(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return vec![];
    }
    if sep.is_empty() {
        let chars: Vec<char> = s.chars().collect();
        let lim = if n < 0 || n as usize > chars.len() {
            chars.len()
        } else {
            n as usize
        };
        let mut out: Vec<String> = chars.iter().take(lim).map(|c| c.to_string()).collect();
        if lim > 0 && lim < chars.len() {
            out[lim - 1] = chars[lim - 1..].iter().collect();
        }
        return out;
    }
    if n < 0 {
        s.split(sep).map(String::from).collect()
    } else {
        s.splitn(n as usize, sep).map(String::from).collect()
    }
}

fn split_map(parts: Vec<String>) -> Value {
    Value::map(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), Value::String(p)))
            .collect(),
    )
}

fn go_repeat(s: &str, n: i64) -> Result<String, FuncError> {
    if n < 0 {
        return fe("strings: negative Repeat count");
    }
    if !s.is_empty() && (n as u128) * (s.len() as u128) > (i64::MAX as u128) {
        return fe("strings: Repeat output length overflow");
    }
    Ok(s.repeat(n as usize))
}

fn indent(n: i64, v: &str) -> Result<String, FuncError> {
    let pad = go_repeat(" ", n)?;
    Ok(format!("{pad}{}", v.replace('\n', &format!("\n{pad}"))))
}

// ---------- paths (Go package path; filepath is identical on Linux) ----------

/// Go `path.Clean`.
pub fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let b = p.as_bytes();
    let n = b.len();
    let rooted = b[0] == b'/';
    let mut out: Vec<u8> = Vec::with_capacity(n);
    let (mut r, mut dotdot) = (0, 0);
    if rooted {
        out.push(b'/');
        r = 1;
        dotdot = 1;
    }
    while r < n {
        if b[r] == b'/' || (b[r] == b'.' && (r + 1 == n || b[r + 1] == b'/')) {
            r += 1;
        } else if b[r] == b'.' && b[r + 1] == b'.' && (r + 2 == n || b[r + 2] == b'/') {
            r += 2;
            if out.len() > dotdot {
                let mut w = out.len() - 1;
                while w > dotdot && out[w] != b'/' {
                    w -= 1;
                }
                out.truncate(w);
            } else if !rooted {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                dotdot = out.len();
            }
        } else {
            if (rooted && out.len() != 1) || (!rooted && !out.is_empty()) {
                out.push(b'/');
            }
            while r < n && b[r] != b'/' {
                out.push(b[r]);
                r += 1;
            }
        }
    }
    if out.is_empty() {
        return ".".into();
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    match t.rfind('/') {
        Some(i) => t[i + 1..].to_string(),
        None => t.to_string(),
    }
}

fn path_dir(p: &str) -> String {
    let i = p.rfind('/').map(|i| i + 1).unwrap_or(0);
    path_clean(&p[..i])
}

fn path_ext(p: &str) -> String {
    for (i, c) in p.char_indices().rev() {
        if c == '/' {
            break;
        }
        if c == '.' {
            return p[i..].to_string();
        }
    }
    String::new()
}

// ---------- encodings ----------

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn b64_decode(src: &[u8]) -> Result<Vec<u8>, usize> {
    let dm = |c: u8| B64.iter().position(|&x| x == c).map(|p| p as u8);
    let mut out = Vec::new();
    let mut si = 0;
    while si < src.len() {
        let mut dbuf = [0u8; 4];
        let mut dlen = 4;
        let mut j = 0;
        let mut trailing_err = None;
        while j < 4 {
            if src.len() == si {
                if j == 0 {
                    return Ok(out);
                }
                return Err(si - j);
            }
            let c = src[si];
            si += 1;
            if let Some(v) = dm(c) {
                dbuf[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' {
                return Err(si - 1);
            }
            match j {
                0 | 1 => return Err(si - 1),
                2 => {
                    while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(src.len());
                    }
                    if src[si] != b'=' {
                        return Err(si - 1);
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                si += 1;
            }
            if si < src.len() {
                trailing_err = Some(si);
            }
            dlen = j;
            break;
        }
        let val = (dbuf[0] as u32) << 18
            | (dbuf[1] as u32) << 12
            | (dbuf[2] as u32) << 6
            | dbuf[3] as u32;
        let bytes = [(val >> 16) as u8, (val >> 8) as u8, val as u8];
        out.extend_from_slice(&bytes[..dlen - 1]);
        if let Some(e) = trailing_err {
            return Err(e);
        }
    }
    Ok(out)
}

fn b32_encode(src: &[u8]) -> String {
    let mut out = String::new();
    for chunk in src.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let v = buf.iter().fold(0u64, |acc, &b| acc << 8 | b as u64);
        let nchars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < nchars {
                out.push(B32[((v >> (35 - 5 * i)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn b32_decode(s: &str) -> Result<Vec<u8>, usize> {
    let all: Vec<u8> = s.bytes().filter(|&c| c != b'\n' && c != b'\r').collect();
    let dm = |c: u8| B32.iter().position(|&x| x == c).map(|p| p as u8);
    let olen = all.len();
    let mut src: &[u8] = &all;
    let mut out = Vec::new();
    let mut end = false;
    while !src.is_empty() && !end {
        let mut dbuf = [0u8; 8];
        let mut dlen = 8;
        let mut j = 0;
        while j < 8 {
            if src.is_empty() {
                return Err(olen - src.len() - j);
            }
            let c = src[0];
            src = &src[1..];
            if c == b'=' && j >= 2 && src.len() < 8 {
                if src.len() + j < 7 {
                    return Err(olen);
                }
                for k in 0..7 - j {
                    if src.len() > k && src[k] != b'=' {
                        return Err(olen - src.len() + k - 1);
                    }
                }
                dlen = j;
                end = true;
                if dlen == 1 || dlen == 3 || dlen == 6 {
                    return Err(olen - src.len() - 1);
                }
                break;
            }
            match dm(c) {
                Some(v) => dbuf[j] = v,
                None => return Err(olen - src.len() - 1),
            }
            j += 1;
        }
        let d = dbuf;
        let bytes = [
            d[0] << 3 | d[1] >> 2,
            d[1] << 6 | d[2] << 1 | d[3] >> 4,
            d[3] << 4 | d[4] >> 1,
            d[4] << 7 | d[5] << 2 | d[6] >> 3,
            d[6] << 5 | d[7],
        ];
        let n = match dlen {
            8 => 5,
            7 => 4,
            5 => 3,
            4 => 2,
            2 => 1,
            _ => 0,
        };
        out.extend_from_slice(&bytes[..n]);
    }
    Ok(out)
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += x as u32;
            b += a;
        }
        a %= 65521;
        b %= 65521;
    }
    b << 16 | a
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------- regexp (Go RE2 syntax on the Rust regex crate) ----------

/// Rewrites a Go (RE2) pattern for the Rust regex crate: Go's Perl classes
/// `\d \w \s \b \B` are ASCII-only, `\Q...\E` quotes, nested repetition operators and
/// repeat counts over 1000 are errors in Go.
fn go_regex_to_rust(p: &str) -> Result<String, String> {
    let mut out = String::with_capacity(p.len() + 8);
    let cs: Vec<(usize, char)> = p.char_indices().collect();
    let mut k = 0;
    let mut in_class = false;
    // Start (byte offset) of the previous repetition operator, if the last token was one.
    let mut prev_rep: Option<usize> = None;
    while k < cs.len() {
        let (pos, c) = cs[k];
        k += 1;
        if c == '\\' {
            let Some(&(_, n)) = cs.get(k) else {
                out.push('\\');
                break;
            };
            k += 1;
            if n == 'Q' && !in_class {
                let rest = &p[cs.get(k).map(|x| x.0).unwrap_or(p.len())..];
                let (lit, after) = match rest.find("\\E") {
                    Some(e) => (&rest[..e], e + 2),
                    None => (rest, rest.len()),
                };
                out.push_str(&regex::escape(lit));
                let target = p.len() - rest.len() + after;
                while k < cs.len() && cs[k].0 < target {
                    k += 1;
                }
                prev_rep = None;
                continue;
            }
            let rep = match n {
                'd' => Some(if in_class { "0-9" } else { "[0-9]" }),
                'D' => Some("[^0-9]"),
                'w' => Some(if in_class {
                    "0-9A-Za-z_"
                } else {
                    "[0-9A-Za-z_]"
                }),
                'W' => Some("[^0-9A-Za-z_]"),
                's' => Some(if in_class {
                    "\\t\\n\\f\\r "
                } else {
                    "[\\t\\n\\f\\r ]"
                }),
                'S' => Some("[^\\t\\n\\f\\r ]"),
                'b' if !in_class => Some("(?-u:\\b)"),
                'B' if !in_class => Some("(?-u:\\B)"),
                _ => None,
            };
            match rep {
                Some(r) => out.push_str(r),
                None => {
                    out.push('\\');
                    out.push(n);
                }
            }
            prev_rep = None;
            continue;
        }
        if in_class {
            if c == ']' {
                in_class = false;
            } else if c == '[' && cs.get(k).map(|x| x.1) == Some(':') {
                out.push(c);
                while k < cs.len() {
                    let d = cs[k].1;
                    k += 1;
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
                continue;
            }
            out.push(c);
            continue;
        }
        // Repetition operators.
        let mut rep_end = None;
        if c == '*' || c == '+' || c == '?' {
            rep_end = Some(pos + 1);
        } else if c == '{' {
            let rest = &p[pos..];
            if let Some(close) = rest.find('}') {
                let body = &rest[1..close];
                let (lo, hi) = match body.split_once(',') {
                    Some((a, b)) => (a, Some(b)),
                    None => (body, None),
                };
                let num = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
                if num(lo) && hi.is_none_or(|h| h.is_empty() || num(h)) {
                    let big = |x: &str| x.len() > 4 || x.parse::<u32>().unwrap_or(0) > 1000;
                    let bad_order = hi.is_some_and(|h| {
                        !h.is_empty() && h.parse::<u32>().unwrap_or(0) < lo.parse().unwrap_or(0)
                    });
                    if big(lo) || hi.is_some_and(big) || bad_order {
                        return Err(format!("invalid repeat count: `{}`", &rest[..=close]));
                    }
                    rep_end = Some(pos + close + 1);
                }
            }
        }
        if let Some(end) = rep_end {
            if let Some(start) = prev_rep {
                return Err(format!(
                    "invalid nested repetition operator: `{}`",
                    &p[start..end]
                ));
            }
            out.push_str(&p[pos..end]);
            while k < cs.len() && cs[k].0 < end {
                k += 1;
            }
            // A lazy '?' belongs to this operator.
            if cs.get(k).map(|x| x.1) == Some('?') {
                out.push('?');
                k += 1;
            }
            prev_rep = Some(pos);
            continue;
        }
        prev_rep = None;
        if c == '[' {
            in_class = true;
            out.push(c);
            if cs.get(k).map(|x| x.1) == Some('^') {
                out.push('^');
                k += 1;
            }
            if cs.get(k).map(|x| x.1) == Some(']') {
                out.push_str("\\]");
                k += 1;
            }
            continue;
        }
        out.push(c);
    }
    Ok(out)
}

/// The text under the carets of a Rust regex parse error, and its message.
fn rust_regex_error(e: &str) -> (Option<String>, String) {
    let lines: Vec<&str> = e.lines().collect();
    let msg = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("error: "))
        .map(|l| l.trim_start_matches("error: ").to_string())
        .unwrap_or_else(|| e.to_string());
    let mut span = None;
    for w in lines.windows(2) {
        let caret = w[1];
        if caret.contains('^') && caret.chars().all(|c| c == ' ' || c == '^') {
            let start = caret.find('^').unwrap_or(0);
            let end = caret.rfind('^').unwrap_or(start) + 1;
            let text: String = w[0].chars().skip(start).take(end - start).collect();
            span = Some((text, start));
        }
    }
    (span.map(|s| s.0), msg)
}

/// Go `regexp.Compile`; errors mimic Go's `error parsing regexp: ...` texts.
pub fn compile_regex(p: &str) -> Result<regex::Regex, String> {
    let rp = go_regex_to_rust(p).map_err(|e| format!("error parsing regexp: {e}"))?;
    regex::Regex::new(&rp).map_err(|e| {
        let (span, msg) = rust_regex_error(&e.to_string());
        let sp = span.clone().unwrap_or_default();
        let from_open = |pat: &str| {
            // From the "(?" that starts the group containing the span.
            match rp
                .find(&sp)
                .and_then(|i| rp[..i + 1].rfind(pat).map(|j| (j, i)))
            {
                Some((j, i)) => rp[j..i + sp.len()].to_string(),
                None => sp.clone(),
            }
        };
        let go = if msg.contains("unclosed group") {
            format!("missing closing ): `{p}`")
        } else if msg.contains("unopened group") {
            format!("unexpected ): `{p}`")
        } else if msg.contains("unclosed character class") {
            let i = rp.rfind('[').unwrap_or(0);
            format!("missing closing ]: `{}`", &rp[i..])
        } else if msg.contains("invalid character class range") || msg.contains("Unicode property")
        {
            format!("invalid character class range: `{sp}`")
        } else if msg.contains("escape") || msg.contains("backreferences") {
            format!("invalid escape sequence: `{sp}`")
        } else if msg.contains("repetition operator missing expression") {
            format!("missing argument to repetition operator: `{sp}`")
        } else if msg.contains("capture group name") || msg.contains("duplicate capture") {
            let t = from_open("(?");
            format!("invalid named capture: `{t}>`").replace(">>`", ">`")
        } else if msg.contains("look-around") || msg.contains("unrecognized flag") {
            format!("invalid or unsupported Perl syntax: `{}`", from_open("(?"))
        } else {
            msg
        };
        format!("error parsing regexp: {go}")
    })
}

fn must_compile(p: &str) -> Result<regex::Regex, FuncError> {
    compile_regex(p).map_err(|e| {
        let inner = e.trim_start_matches("error parsing regexp: ");
        FuncError(format!(
            "regexp: Compile({}): error parsing regexp: {inner}",
            go_backquote(p)
        ))
    })
}

fn go_backquote(s: &str) -> String {
    if s.chars()
        .all(|c| c != '`' && (c == '\t' || !c.is_control()))
    {
        format!("`{s}`")
    } else {
        go_quote(s)
    }
}

fn compile(p: &str) -> Result<regex::Regex, FuncError> {
    compile_regex(p).map_err(FuncError)
}

fn find_all(re: &regex::Regex, s: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return vec![];
    }
    let it = re.find_iter(s).map(|m| m.as_str().to_string());
    if n < 0 {
        it.collect()
    } else {
        it.take(n as usize).collect()
    }
}

fn regex_split(re: &regex::Regex, s: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return vec![];
    }
    if !re.as_str().is_empty() && s.is_empty() {
        return vec![String::new()];
    }
    let matches: Vec<(usize, usize)> = {
        let it = re.find_iter(s).map(|m| (m.start(), m.end()));
        if n < 0 {
            it.collect()
        } else {
            it.take(n as usize).collect()
        }
    };
    let mut out = Vec::new();
    let (mut beg, mut end) = (0, 0);
    for (a, b) in matches {
        if n > 0 && out.len() as i64 == n - 1 {
            break;
        }
        end = a;
        if b != 0 {
            out.push(s[beg..end].to_string());
        }
        beg = b;
    }
    if end != s.len() {
        out.push(s[beg..].to_string());
    }
    out
}

/// Go `Regexp.ReplaceAllString` (template expansion `$1`, `${name}`, `$$`).
fn replace_all(re: &regex::Regex, src: &str, repl: &str) -> String {
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(src) {
        let m = caps.get(0).map(|m| (m.start(), m.end())).unwrap_or((0, 0));
        out.push_str(&src[last..m.0]);
        go_expand(&caps, repl, &mut out);
        last = m.1;
    }
    out.push_str(&src[last..]);
    out
}

fn go_expand(caps: &regex::Captures, tmpl: &str, out: &mut String) {
    let is_name = |c: char| c == '_' || c.is_alphanumeric();
    let mut t = tmpl;
    while let Some(i) = t.find('$') {
        out.push_str(&t[..i]);
        t = &t[i..];
        if t.len() > 1 && t.as_bytes()[1] == b'$' {
            out.push('$');
            t = &t[2..];
            continue;
        }
        // extract name
        let (name, rest, ok) = {
            let r = &t[1..];
            if let Some(b) = r.strip_prefix('{') {
                match b.find('}') {
                    Some(e) if e > 0 && b[..e].chars().all(is_name) => (&b[..e], &b[e + 1..], true),
                    _ => ("", t, false),
                }
            } else {
                let e = r.find(|c: char| !is_name(c)).unwrap_or(r.len());
                if e == 0 {
                    ("", t, false)
                } else {
                    (&r[..e], &r[e..], true)
                }
            }
        };
        if !ok {
            out.push('$');
            t = &t[1..];
            continue;
        }
        t = rest;
        let numeric = name.bytes().all(|c| c.is_ascii_digit())
            && name.len() <= 8
            && !(name.starts_with('0') && name.len() > 1);
        if numeric {
            if let Some(m) = name.parse::<usize>().ok().and_then(|n| caps.get(n)) {
                out.push_str(m.as_str());
            }
        } else if let Some(m) = caps.name(name) {
            out.push_str(m.as_str());
        }
    }
    out.push_str(t);
}

/// Go `regexp.QuoteMeta`.
pub fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

// ---------- time ----------

/// Go `time.Duration.String`.
pub fn duration_string(d: i64) -> String {
    let neg = d < 0;
    let mut u = d.unsigned_abs();
    let mut buf: Vec<u8> = Vec::new(); // reversed
    fn frac(buf: &mut Vec<u8>, mut v: u64, prec: usize) -> u64 {
        let mut print = false;
        for _ in 0..prec {
            let digit = v % 10;
            print = print || digit != 0;
            if print {
                buf.push(b'0' + digit as u8);
            }
            v /= 10;
        }
        if print {
            buf.push(b'.');
        }
        v
    }
    fn int(buf: &mut Vec<u8>, mut v: u64) {
        if v == 0 {
            buf.push(b'0');
        }
        while v > 0 {
            buf.push(b'0' + (v % 10) as u8);
            v /= 10;
        }
    }
    if u < 1_000_000_000 {
        buf.push(b's');
        let prec = if u == 0 {
            return "0s".into();
        } else if u < 1_000 {
            buf.push(b'n');
            0
        } else if u < 1_000_000 {
            buf.extend_from_slice(&[0xb5, 0xc2]);
            3
        } else {
            buf.push(b'm');
            6
        };
        u = frac(&mut buf, u, prec);
        int(&mut buf, u);
    } else {
        buf.push(b's');
        u = frac(&mut buf, u, 9);
        int(&mut buf, u % 60);
        u /= 60;
        if u > 0 {
            buf.push(b'm');
            int(&mut buf, u % 60);
            u /= 60;
            if u > 0 {
                buf.push(b'h');
                int(&mut buf, u);
            }
        }
    }
    if neg {
        buf.push(b'-');
    }
    buf.reverse();
    String::from_utf8_lossy(&buf).into_owned()
}

/// Go `time.ParseDuration` (None on error).
pub fn parse_duration(s: &str) -> Option<i64> {
    let mut t = s;
    let mut neg = false;
    if let Some(r) = t.strip_prefix('-') {
        neg = true;
        t = r;
    } else if let Some(r) = t.strip_prefix('+') {
        t = r;
    }
    if t == "0" {
        return Some(0);
    }
    if t.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !t.is_empty() {
        let ilen = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let ipart = &t[..ilen];
        t = &t[ilen..];
        let mut fpart = "";
        if let Some(r) = t.strip_prefix('.') {
            let flen = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            fpart = &r[..flen];
            t = &r[flen..];
        }
        if ipart.is_empty() && fpart.is_empty() {
            return None;
        }
        let ulen = t
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(t.len());
        let unit: u64 = match &t[..ulen] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        t = &t[ulen..];
        let v: u64 = if ipart.is_empty() {
            0
        } else {
            ipart.parse().ok()?
        };
        let mut v = v.checked_mul(unit)?;
        if !fpart.is_empty() {
            let mut scale = 1f64;
            let mut f = 0u64;
            for c in fpart.bytes() {
                if f > (1 << 63) / 10 {
                    break;
                }
                f = f * 10 + (c - b'0') as u64;
                scale *= 10.0;
            }
            v = v.checked_add((f as f64 * (unit as f64 / scale)) as u64)?;
        }
        total = total.checked_add(v)?;
        if total > 1 << 63 {
            return None;
        }
    }
    if neg {
        Some((total as i64).wrapping_neg())
    } else if total > i64::MAX as u64 {
        None
    } else {
        Some(total as i64)
    }
}

fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn duration_round_second(d: i64) -> i64 {
    let m = 1_000_000_000i64;
    let r = d % m;
    if d < 0 {
        let r = -r;
        if r + r < m {
            return d + r;
        }
        return d.checked_sub(m - r).unwrap_or(i64::MIN);
    }
    if r + r < m {
        return d - r;
    }
    d.checked_add(m - r).unwrap_or(i64::MAX)
}

const NO_TIME: &str = "time.Time values are not supported by this template engine";

// ---------- url ----------

fn dict_get_or_empty(d: &Option<MapRc>, key: &str) -> Result<String, FuncError> {
    match m_get(d, key) {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Nil) => fe(NIL_DEREF),
        Some(v) => fe(format!(
            "unable to parse {key} key, must be of type string, but {} found",
            v.kind_name()
        )),
    }
}

// ---------- misc ----------

fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = (now_nanos() as u64) | 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    x
}

fn go_max(x: f64, y: f64) -> f64 {
    if x.is_infinite() && x > 0.0 || y.is_infinite() && y > 0.0 {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && x == y {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y { x } else { y }
}

fn go_min(x: f64, y: f64) -> f64 {
    if x.is_infinite() && x < 0.0 || y.is_infinite() && y < 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && x == y {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y { x } else { y }
}

fn until_step(start: i64, stop: i64, step: i64) -> Vec<i64> {
    let mut v = vec![];
    if stop < start {
        if step >= 0 {
            return v;
        }
        let mut i = start;
        while i > stop {
            v.push(i);
            i = match i.checked_add(step) {
                Some(n) => n,
                None => break,
            };
        }
        return v;
    }
    if step <= 0 {
        return v;
    }
    let mut i = start;
    while i < stop {
        v.push(i);
        i = match i.checked_add(step) {
            Some(n) => n,
            None => break,
        };
    }
    v
}

fn seq(p: &[i64]) -> String {
    let join = |v: Vec<i64>| v.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
    match p.len() {
        1 => {
            let (start, end) = (1, p[0]);
            let inc = if end < start { -1 } else { 1 };
            join(until_step(start, end + inc, inc))
        }
        2 => {
            let (start, end) = (p[0], p[1]);
            let step = if end < start { -1 } else { 1 };
            join(until_step(start, end + step, step))
        }
        3 => {
            let (start, step, end) = (p[0], p[1], p[2]);
            let mut inc = 1;
            if end < start {
                inc = -1;
                if step > 0 {
                    return String::new();
                }
            }
            join(until_step(start, end + inc, step))
        }
        _ => String::new(),
    }
}

fn chunk(size: i64, l: &[Value]) -> R {
    let len = l.len() as i64;
    let bad = || fe("runtime error: makeslice: len out of range");
    let csf = ((len - 1) as f64 / size as f64).floor() + 1.0;
    let cs = float_to_i64(csf);
    if cs < 0 {
        return bad();
    }
    let mut out = Vec::new();
    for i in 0..cs {
        let mut clen = size;
        if i == cs - 1 {
            clen = float_to_i64(((len as f64) % (size as f64)).floor());
            if clen == 0 {
                clen = size;
            }
        }
        if clen < 0 {
            return bad();
        }
        let mut c = Vec::new();
        for j in 0..clen {
            let ix = i * size + j;
            match l.get(ix as usize) {
                Some(v) if ix >= 0 => c.push(v.clone()),
                _ => return fe("reflect: slice index out of range"),
            }
        }
        out.push(Value::list(c));
    }
    Ok(Value::list(out))
}

fn dig(ps: &[Value]) -> R {
    if ps.len() < 3 {
        return fe("dig needs at least three arguments");
    }
    let conv_err = |v: &Value, to: &str| {
        let t = match v {
            Value::Nil => "nil",
            _ => v.type_name(),
        };
        FuncError(format!(
            "interface conversion: interface {{}} is {t}, not {to}"
        ))
    };
    let mut dict = match &ps[ps.len() - 1] {
        Value::Map(m) => m.clone(),
        v => return Err(conv_err(v, "map[string]interface {}")),
    };
    let def = ps[ps.len() - 2].clone();
    let mut ks = Vec::new();
    for k in &ps[..ps.len() - 2] {
        match k {
            Value::String(s) => ks.push(s.clone()),
            v => return Err(conv_err(v, "string")),
        }
    }
    let mut idx = 0;
    loop {
        let step = dict.borrow().get(&ks[idx]).cloned();
        let Some(step) = step else {
            return Ok(def);
        };
        if idx + 1 == ks.len() {
            return Ok(step);
        }
        dict = match &step {
            Value::Map(m) => m.clone(),
            v => return Err(conv_err(v, "map[string]interface {}")),
        };
        idx += 1;
    }
}

fn url_parse(v: &str) -> R {
    let u = super::url::parse(v).map_err(|e| FuncError(format!("unable to parse url: {e}")))?;
    let mut m = BTreeMap::new();
    m.insert("scheme".into(), s(&u.scheme));
    m.insert("host".into(), s(&u.host));
    m.insert("hostname".into(), s(u.hostname()));
    m.insert("path".into(), s(&u.path));
    m.insert("query".into(), s(&u.raw_query));
    m.insert("opaque".into(), s(&u.opaque));
    m.insert("fragment".into(), s(&u.fragment));
    m.insert("userinfo".into(), s(u.userinfo_string()));
    Ok(Value::map(m))
}

fn url_join(d: &Option<MapRc>) -> R {
    let mut u = super::url::Url {
        scheme: dict_get_or_empty(d, "scheme")?,
        host: dict_get_or_empty(d, "host")?,
        path: dict_get_or_empty(d, "path")?,
        raw_query: dict_get_or_empty(d, "query")?,
        opaque: dict_get_or_empty(d, "opaque")?,
        fragment: dict_get_or_empty(d, "fragment")?,
        ..Default::default()
    };
    let userinfo = dict_get_or_empty(d, "userinfo")?;
    if !userinfo.is_empty() {
        let t = super::url::parse(&format!("proto://{userinfo}@host"))
            .map_err(|e| FuncError(format!("unable to parse userinfo in dict: {e}")))?;
        u.user = t.user;
    }
    Ok(s(u.to_go_string()))
}

/// gosimple/unidecode's transliteration: deunicode, corrected below U+3000 by a table of
/// the code points where gosimple/unidecode v1.0.1 differs (generated from the Go package).
fn unidecode(s: &str) -> String {
    use std::sync::OnceLock;
    static OVERRIDES: OnceLock<Vec<(u32, &'static str)>> = OnceLock::new();
    let table = OVERRIDES.get_or_init(|| {
        include_str!("unidecode_overrides.txt")
            .lines()
            .filter_map(|l| {
                let (h, v) = l.split_once('\t')?;
                Some((u32::from_str_radix(h, 16).ok()?, v))
            })
            .collect()
    });
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else if let Ok(i) = table.binary_search_by_key(&(c as u32), |e| e.0) {
            out.push_str(table[i].1);
        } else if (c as u32) < 0x30000 {
            out.push_str(deunicode::deunicode_char(c).unwrap_or(""));
        }
    }
    out
}

/// gosimple/slug `Make` with MaxLength = 63 and EnableSmartTruncate = true.
pub fn slugify(input: &str) -> String {
    let mut sub = String::new();
    for c in input.trim().chars() {
        match c {
            '&' => sub.push_str("and"),
            '@' => sub.push_str("at"),
            _ => sub.push(c),
        }
    }
    let ascii = unidecode(&sub).to_lowercase();
    let mut slug = String::new();
    for c in ascii.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c
        } else {
            '-'
        };
        if c == '-' && slug.ends_with('-') {
            continue;
        }
        slug.push(c);
    }
    let slug = slug.trim_matches(|c| c == '-' || c == '_');
    const MAX: usize = 63;
    if slug.len() <= MAX {
        return slug.to_string();
    }
    let b = slug.as_bytes();
    for i in (0..=MAX).rev() {
        if b[i] == b'-' {
            return slug[..i].to_string();
        }
    }
    slug[..MAX].to_string()
}

fn json_of(v: &Value, html: bool, indent: &str) -> Result<String, String> {
    super::json::encode(v, html, indent)
}

macro_rules! def {
    ($name:literal, $n:expr, $var:expr, $body:expr) => {{
        fn w(a: &[Value]) -> R {
            check($name, a, $n, $var)?;
            let f: fn(&[Value]) -> R = $body;
            f(a)
        }
        ($name, w as Func)
    }};
}

fn str1(a: &[Value], f: fn(&str) -> String) -> R {
    Ok(s(f(s_arg(&a[0])?)))
}

fn str2(a: &[Value]) -> Result<(&str, &str), FuncError> {
    Ok((s_arg(&a[0])?, s_arg(&a[1])?))
}

fn bool_v(b: bool) -> R {
    Ok(Value::Bool(b))
}

fn regex3_n(a: &[Value]) -> Result<(&str, &str, i64), FuncError> {
    Ok((s_arg(&a[0])?, s_arg(&a[1])?, i_arg(&a[2])?))
}

fn str3(a: &[Value]) -> Result<(&str, &str, &str), FuncError> {
    Ok((s_arg(&a[0])?, s_arg(&a[1])?, s_arg(&a[2])?))
}

static TABLE: &[(&str, Func)] = &[
    def!("hello", 0, false, |_| Ok(s("Hello!"))),
    // ----- dates -----
    def!("ago", 1, false, |a| {
        let t_ns = match &a[0] {
            Value::Int(secs) | Value::Int64(secs) => (*secs as i128) * 1_000_000_000,
            _ => now_nanos(),
        };
        let d = (now_nanos() - t_ns).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
        Ok(s(duration_string(duration_round_second(d))))
    }),
    def!("duration", 1, false, |a| {
        let n = match &a[0] {
            Value::String(x) => x.parse::<i64>().unwrap_or(0),
            // Only int64 (not an `int` constant) converts.
            Value::Int64(i) => *i,
            _ => 0,
        };
        Ok(s(duration_string(n.wrapping_mul(1_000_000_000))))
    }),
    def!("durationRound", 1, false, |a| {
        let d = match &a[0] {
            Value::String(x) => parse_duration(x).unwrap_or(0),
            // Only int64 (not an `int` constant) converts.
            Value::Int64(i) => *i,
            _ => 0,
        };
        let u = d.unsigned_abs();
        let (year, month, day, hour, minute, second) = (
            3_600_000_000_000u64 * 24 * 365,
            3_600_000_000_000u64 * 24 * 30,
            3_600_000_000_000u64 * 24,
            3_600_000_000_000u64,
            60_000_000_000u64,
            1_000_000_000u64,
        );
        Ok(s(if u > year {
            format!("{}y", u / year)
        } else if u > month {
            format!("{}mo", u / month)
        } else if u > day {
            format!("{}d", u / day)
        } else if u > hour {
            format!("{}h", u / hour)
        } else if u > minute {
            format!("{}m", u / minute)
        } else if u > second {
            format!("{}s", u / second)
        } else {
            "0s".into()
        }))
    }),
    def!("mustDateModify", 2, false, |a| {
        s_arg(&a[0])?;
        Err(wrong("time.Time", &a[1]))
    }),
    def!("must_date_modify", 2, false, |a| {
        s_arg(&a[0])?;
        Err(wrong("time.Time", &a[1]))
    }),
    def!("toDate", 2, false, |a| {
        str2(a)?;
        fe(format!("toDate: {NO_TIME}"))
    }),
    def!("mustToDate", 2, false, |a| {
        str2(a)?;
        fe(format!("mustToDate: {NO_TIME}"))
    }),
    def!("unixEpoch", 1, false, |a| Err(wrong("time.Time", &a[0]))),
    // ----- strings -----
    def!("trunc", 2, false, |a| {
        let c = i_arg(&a[0])?;
        let st = s_arg(&a[1])?;
        let l = st.len() as i64;
        Ok(s(if c < 0 && l + c > 0 {
            byte_slice(st, (l + c) as usize, st.len())
        } else if c >= 0 && l > c {
            byte_slice(st, 0, c as usize)
        } else {
            st.to_string()
        }))
    }),
    def!("trim", 1, false, |a| str1(a, |x| x.trim().to_string())),
    def!("upper", 1, false, |a| str1(a, go_upper)),
    def!("lower", 1, false, |a| str1(a, go_lower)),
    def!("title", 1, false, |a| str1(a, go_title)),
    def!("substr", 3, false, |a| {
        let (start, end) = (i_arg(&a[0])?, i_arg(&a[1])?);
        let st = s_arg(&a[2])?;
        let l = st.len() as i64;
        let oob = |x: String| fe(format!("runtime error: slice bounds out of range {x}"));
        if start < 0 {
            if end < 0 {
                return oob(format!("[:{end}]"));
            }
            if end > l {
                return oob(format!("[:{end}] with length {l}"));
            }
            return Ok(s(byte_slice(st, 0, end as usize)));
        }
        if end < 0 || end > l {
            if start > l {
                return oob(format!("[{start}:{l}]"));
            }
            return Ok(s(byte_slice(st, start as usize, st.len())));
        }
        if start > end {
            return oob(format!("[{start}:{end}]"));
        }
        Ok(s(byte_slice(st, start as usize, end as usize)))
    }),
    def!("repeat", 2, false, |a| {
        let n = i_arg(&a[0])?;
        Ok(s(go_repeat(s_arg(&a[1])?, n)?))
    }),
    def!("trimall", 2, false, |a| {
        let (cut, st) = str2(a)?;
        Ok(s(st.trim_matches(|c| cut.contains(c))))
    }),
    def!("trimAll", 2, false, |a| {
        let (cut, st) = str2(a)?;
        Ok(s(st.trim_matches(|c| cut.contains(c))))
    }),
    def!("trimSuffix", 2, false, |a| {
        let (x, st) = str2(a)?;
        Ok(s(st.strip_suffix(x).unwrap_or(st)))
    }),
    def!("trimPrefix", 2, false, |a| {
        let (x, st) = str2(a)?;
        Ok(s(st.strip_prefix(x).unwrap_or(st)))
    }),
    def!("contains", 2, false, |a| {
        let (x, st) = str2(a)?;
        bool_v(st.contains(x))
    }),
    def!("hasPrefix", 2, false, |a| {
        let (x, st) = str2(a)?;
        bool_v(st.starts_with(x))
    }),
    def!("hasSuffix", 2, false, |a| {
        let (x, st) = str2(a)?;
        bool_v(st.ends_with(x))
    }),
    def!("quote", 0, true, |a| {
        let v: Vec<String> = a
            .iter()
            .filter(|x| !matches!(x, Value::Nil))
            .map(|x| go_quote(&strval(x)))
            .collect();
        Ok(s(v.join(" ")))
    }),
    def!("squote", 0, true, |a| {
        let v: Vec<String> = a
            .iter()
            .filter(|x| !matches!(x, Value::Nil))
            .map(|x| format!("'{}'", format_v(x)))
            .collect();
        Ok(s(v.join(" ")))
    }),
    def!("cat", 0, true, |a| {
        let v: Vec<String> = a
            .iter()
            .filter(|x| !matches!(x, Value::Nil))
            .map(format_v)
            .collect();
        Ok(s(v.join(" ")))
    }),
    def!("indent", 2, false, |a| {
        let n = i_arg(&a[0])?;
        Ok(s(indent(n, s_arg(&a[1])?)?))
    }),
    def!("nindent", 2, false, |a| {
        let n = i_arg(&a[0])?;
        Ok(s(format!("\n{}", indent(n, s_arg(&a[1])?)?)))
    }),
    def!("replace", 3, false, |a| {
        let (old, new, src) = str3(a)?;
        Ok(s(src.replace(old, new)))
    }),
    def!("plural", 3, false, |a| {
        let (one, many) = str2(a)?;
        let c = i_arg(&a[2])?;
        Ok(s(if c == 1 { one } else { many }))
    }),
    def!("sha1sum", 1, false, |a| {
        use sha1::Digest;
        Ok(s(hex(&sha1::Sha1::digest(s_arg(&a[0])?.as_bytes()))))
    }),
    def!("sha256sum", 1, false, |a| {
        use sha2::Digest;
        Ok(s(hex(&sha2::Sha256::digest(s_arg(&a[0])?.as_bytes()))))
    }),
    def!("adler32sum", 1, false, |a| {
        Ok(s(adler32(s_arg(&a[0])?.as_bytes()).to_string()))
    }),
    def!("toString", 1, false, |a| Ok(s(strval(&a[0])))),
    def!("atoi", 1, false, |a| {
        Ok(Value::Int(s_arg(&a[0])?.parse::<i64>().unwrap_or(0)))
    }),
    def!("int64", 1, false, |a| Ok(Value::Int64(to_int64(&a[0])))),
    def!("int", 1, false, |a| Ok(Value::Int(to_int64(&a[0])))),
    def!("float64", 1, false, |a| Ok(Value::Float(to_float64(&a[0])))),
    def!("seq", 0, true, |a| {
        let p = a.iter().map(i_arg).collect::<Result<Vec<_>, _>>()?;
        Ok(s(seq(&p)))
    }),
    def!("toDecimal", 1, false, |a| {
        Ok(Value::Int64(
            i64::from_str_radix(&format_v(&a[0]), 8).unwrap_or(0),
        ))
    }),
    def!("split", 2, false, |a| {
        let (sep, orig) = str2(a)?;
        Ok(split_map(go_split_n(orig, sep, -1)))
    }),
    def!("splitList", 2, false, |a| {
        let (sep, orig) = str2(a)?;
        Ok(strs(go_split_n(orig, sep, -1)))
    }),
    def!("splitn", 3, false, |a| {
        let sep = s_arg(&a[0])?;
        let n = i_arg(&a[1])?;
        let orig = s_arg(&a[2])?;
        Ok(split_map(go_split_n(orig, sep, n)))
    }),
    def!("toStrings", 1, false, |a| Ok(strs(strslice(&a[0])))),
    def!("until", 1, false, |a| {
        let c = i_arg(&a[0])?;
        Ok(ints(until_step(0, c, if c < 0 { -1 } else { 1 })))
    }),
    def!("untilStep", 3, false, |a| {
        let (x, y, z) = (i_arg(&a[0])?, i_arg(&a[1])?, i_arg(&a[2])?);
        Ok(ints(until_step(x, y, z)))
    }),
    // ----- arithmetic -----
    def!("add1", 1, false, |a| Ok(Value::Int64(
        to_int64(&a[0]).wrapping_add(1)
    ))),
    def!("add", 0, true, |a| {
        Ok(Value::Int64(
            a.iter().fold(0i64, |acc, v| acc.wrapping_add(to_int64(v))),
        ))
    }),
    def!("sub", 2, false, |a| {
        Ok(Value::Int64(to_int64(&a[0]).wrapping_sub(to_int64(&a[1]))))
    }),
    def!("div", 2, false, |a| {
        let (x, y) = (to_int64(&a[0]), to_int64(&a[1]));
        if y == 0 {
            return fe("runtime error: integer divide by zero");
        }
        Ok(Value::Int64(x.wrapping_div(y)))
    }),
    def!("mod", 2, false, |a| {
        let (x, y) = (to_int64(&a[0]), to_int64(&a[1]));
        if y == 0 {
            return fe("runtime error: integer divide by zero");
        }
        Ok(Value::Int64(x.wrapping_rem(y)))
    }),
    def!("mul", 1, true, |a| {
        Ok(Value::Int64(
            a[1..]
                .iter()
                .fold(to_int64(&a[0]), |acc, v| acc.wrapping_mul(to_int64(v))),
        ))
    }),
    def!("randInt", 2, false, |a| {
        let (lo, hi) = (i_arg(&a[0])?, i_arg(&a[1])?);
        let n = hi.wrapping_sub(lo);
        if n <= 0 {
            return fe("invalid argument to Intn");
        }
        Ok(Value::Int((rand_u64() % n as u64) as i64 + lo))
    }),
    def!("biggest", 1, true, |a| {
        Ok(Value::Int64(a.iter().map(to_int64).max().unwrap_or(0)))
    }),
    def!("max", 1, true, |a| Ok(Value::Int64(
        a.iter().map(to_int64).max().unwrap_or(0)
    ))),
    def!("min", 1, true, |a| Ok(Value::Int64(
        a.iter().map(to_int64).min().unwrap_or(0)
    ))),
    def!("maxf", 1, true, |a| {
        Ok(Value::Float(
            a[1..]
                .iter()
                .fold(to_float64(&a[0]), |acc, v| go_max(acc, to_float64(v))),
        ))
    }),
    def!("minf", 1, true, |a| {
        Ok(Value::Float(
            a[1..]
                .iter()
                .fold(to_float64(&a[0]), |acc, v| go_min(acc, to_float64(v))),
        ))
    }),
    def!("ceil", 1, false, |a| Ok(Value::Float(
        to_float64(&a[0]).ceil()
    ))),
    def!("floor", 1, false, |a| Ok(Value::Float(
        to_float64(&a[0]).floor()
    ))),
    def!("round", 2, true, |a| {
        let places = i_arg(&a[1])? as f64;
        let opts = a[2..].iter().map(f_arg).collect::<Result<Vec<_>, _>>()?;
        let round_on = opts.first().copied().unwrap_or(0.5);
        let val = to_float64(&a[0]);
        let pow = 10f64.powf(places);
        let digit = pow * val;
        let frac = if digit.is_infinite() {
            0.0
        } else {
            digit.fract()
        };
        let r = if frac >= round_on {
            digit.ceil()
        } else {
            digit.floor()
        };
        Ok(Value::Float(r / pow))
    }),
    // ----- string slices -----
    def!("join", 2, false, |a| {
        let sep = s_arg(&a[0])?;
        Ok(s(strslice(&a[1]).join(sep)))
    }),
    def!("sortAlpha", 1, false, |a| {
        Ok(strs(match &a[0] {
            Value::List(_) => {
                let mut v = strslice(&a[0]);
                v.sort();
                v
            }
            v => vec![strval(v)],
        }))
    }),
    // ----- defaults -----
    def!("default", 1, true, |a| {
        if a.len() < 2 || empty(&a[1]) {
            Ok(a[0].clone())
        } else {
            Ok(a[1].clone())
        }
    }),
    def!("empty", 1, false, |a| bool_v(empty(&a[0]))),
    def!("coalesce", 0, true, |a| {
        Ok(a.iter().find(|v| !empty(v)).cloned().unwrap_or(Value::Nil))
    }),
    def!("all", 0, true, |a| bool_v(a.iter().all(|v| !empty(v)))),
    def!("any", 0, true, |a| bool_v(a.iter().any(|v| !empty(v)))),
    def!("compact", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot compact on type %s")?;
        Ok(Value::list(
            l.iter().filter(|v| !empty(v)).cloned().collect(),
        ))
    }),
    def!("mustCompact", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot compact on type %s")?;
        Ok(Value::list(
            l.iter().filter(|v| !empty(v)).cloned().collect(),
        ))
    }),
    def!("fromJson", 1, false, |a| {
        Ok(super::json::decode(s_arg(&a[0])?).unwrap_or(Value::Nil))
    }),
    def!("mustFromJson", 1, false, |a| {
        super::json::decode(s_arg(&a[0])?).map_err(FuncError)
    }),
    def!("toJson", 1, false, |a| Ok(s(
        json_of(&a[0], true, "").unwrap_or_default()
    ))),
    def!("mustToJson", 1, false, |a| json_of(&a[0], true, "")
        .map(s)
        .map_err(FuncError)),
    def!("toPrettyJson", 1, false, |a| {
        Ok(s(json_of(&a[0], true, "  ").unwrap_or_default()))
    }),
    def!("mustToPrettyJson", 1, false, |a| {
        json_of(&a[0], true, "  ").map(s).map_err(FuncError)
    }),
    def!("toRawJson", 1, false, |a| json_of(&a[0], false, "")
        .map(s)
        .map_err(FuncError)),
    def!("mustToRawJson", 1, false, |a| {
        json_of(&a[0], false, "").map(s).map_err(FuncError)
    }),
    def!("ternary", 3, false, |a| {
        Ok(if b_arg(&a[2])? {
            a[0].clone()
        } else {
            a[1].clone()
        })
    }),
    // ----- reflection -----
    def!("typeOf", 1, false, |a| Ok(s(a[0].type_name()))),
    def!("typeIs", 2, false, |a| bool_v(
        s_arg(&a[0])? == a[1].type_name()
    )),
    def!("typeIsLike", 2, false, |a| {
        let t = s_arg(&a[0])?;
        let n = a[1].type_name();
        bool_v(t == n || format!("*{t}") == n)
    }),
    def!("kindOf", 1, false, |a| Ok(s(a[0].kind_name()))),
    def!("kindIs", 2, false, |a| bool_v(
        s_arg(&a[0])? == a[1].kind_name()
    )),
    def!("deepEqual", 2, false, |a| bool_v(deep_equal(&a[0], &a[1]))),
    // ----- paths -----
    def!("base", 1, false, |a| str1(a, path_base)),
    def!("dir", 1, false, |a| str1(a, path_dir)),
    def!("clean", 1, false, |a| str1(a, path_clean)),
    def!("ext", 1, false, |a| str1(a, path_ext)),
    def!("isAbs", 1, false, |a| bool_v(
        s_arg(&a[0])?.starts_with('/')
    )),
    def!("osBase", 1, false, |a| str1(a, path_base)),
    def!("osClean", 1, false, |a| str1(a, path_clean)),
    def!("osDir", 1, false, |a| str1(a, path_dir)),
    def!("osExt", 1, false, |a| str1(a, path_ext)),
    def!("osIsAbs", 1, false, |a| bool_v(
        s_arg(&a[0])?.starts_with('/')
    )),
    // ----- encoding -----
    def!("b64enc", 1, false, |a| {
        use base64::Engine;
        Ok(s(
            base64::engine::general_purpose::STANDARD.encode(s_arg(&a[0])?)
        ))
    }),
    def!("b64dec", 1, false, |a| {
        Ok(s(match b64_decode(s_arg(&a[0])?.as_bytes()) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(n) => format!("illegal base64 data at input byte {n}"),
        }))
    }),
    def!("b32enc", 1, false, |a| Ok(s(b32_encode(
        s_arg(&a[0])?.as_bytes()
    )))),
    def!("b32dec", 1, false, |a| {
        Ok(s(match b32_decode(s_arg(&a[0])?) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(n) => format!("illegal base32 data at input byte {n}"),
        }))
    }),
    // ----- data structures -----
    def!("tuple", 0, true, |a| Ok(Value::list(a.to_vec()))),
    def!("list", 0, true, |a| Ok(Value::list(a.to_vec()))),
    def!("dict", 0, true, |a| {
        let mut m = BTreeMap::new();
        for pair in a.chunks(2) {
            let k = strval(&pair[0]);
            m.insert(k, pair.get(1).cloned().unwrap_or_else(|| s("")));
        }
        Ok(Value::map(m))
    }),
    def!("get", 2, false, |a| {
        let d = m_arg(&a[0])?;
        Ok(m_get(&d, s_arg(&a[1])?).unwrap_or_else(|| s("")))
    }),
    def!("set", 3, false, |a| {
        let d = m_arg(&a[0])?;
        let k = s_arg(&a[1])?;
        match d {
            Some(m) => {
                m.borrow_mut().insert(k.to_string(), a[2].clone());
                Ok(Value::Map(m))
            }
            None => fe("assignment to entry in nil map"),
        }
    }),
    def!("unset", 2, false, |a| {
        let d = m_arg(&a[0])?;
        let k = s_arg(&a[1])?;
        match d {
            Some(m) => {
                m.borrow_mut().remove(k);
                Ok(Value::Map(m))
            }
            None => Ok(Value::map(BTreeMap::new())),
        }
    }),
    def!("hasKey", 2, false, |a| {
        let d = m_arg(&a[0])?;
        bool_v(m_get(&d, s_arg(&a[1])?).is_some())
    }),
    def!("pluck", 1, true, |a| {
        let k = s_arg(&a[0])?;
        let mut out = Vec::new();
        for d in &a[1..] {
            if let Some(v) = m_get(&m_arg(d)?, k) {
                out.push(v);
            }
        }
        Ok(Value::list(out))
    }),
    def!("keys", 0, true, |a| {
        let mut out = Vec::new();
        for d in a {
            if let Some(m) = m_arg(d)? {
                out.extend(m.borrow().keys().cloned());
            }
        }
        Ok(strs(out))
    }),
    def!("pick", 1, true, |a| {
        let d = m_arg(&a[0])?;
        let mut res = BTreeMap::new();
        for k in &a[1..] {
            let k = s_arg(k)?;
            if let Some(v) = m_get(&d, k) {
                res.insert(k.to_string(), v);
            }
        }
        Ok(Value::map(res))
    }),
    def!("omit", 1, true, |a| {
        let d = m_arg(&a[0])?;
        let ks = a[1..].iter().map(s_arg).collect::<Result<Vec<_>, _>>()?;
        let mut res = BTreeMap::new();
        if let Some(m) = d {
            for (k, v) in m.borrow().iter() {
                if !ks.contains(&k.as_str()) {
                    res.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(Value::map(res))
    }),
    def!("values", 1, false, |a| {
        let d = m_arg(&a[0])?;
        Ok(Value::list(
            d.map(|m| m.borrow().values().cloned().collect())
                .unwrap_or_default(),
        ))
    }),
    def!("append", 2, false, |a| {
        let l = list_arg(&a[0], "Cannot push on type %s")?;
        let mut v = l.to_vec();
        v.push(a[1].clone());
        Ok(Value::list(v))
    }),
    def!("push", 2, false, |a| {
        let l = list_arg(&a[0], "Cannot push on type %s")?;
        let mut v = l.to_vec();
        v.push(a[1].clone());
        Ok(Value::list(v))
    }),
    def!("mustAppend", 2, false, |a| {
        let l = list_arg(&a[0], "Cannot push on type %s")?;
        let mut v = l.to_vec();
        v.push(a[1].clone());
        Ok(Value::list(v))
    }),
    def!("mustPush", 2, false, |a| {
        let l = list_arg(&a[0], "Cannot push on type %s")?;
        let mut v = l.to_vec();
        v.push(a[1].clone());
        Ok(Value::list(v))
    }),
    def!("prepend", 2, false, |a| {
        let l = list_arg(&a[0], "Cannot prepend on type %s")?;
        let mut v = vec![a[1].clone()];
        v.extend(l.iter().cloned());
        Ok(Value::list(v))
    }),
    def!("mustPrepend", 2, false, |a| {
        let l = list_arg(&a[0], "Cannot prepend on type %s")?;
        let mut v = vec![a[1].clone()];
        v.extend(l.iter().cloned());
        Ok(Value::list(v))
    }),
    def!("first", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot find first on type %s")?;
        Ok(l.first().cloned().unwrap_or(Value::Nil))
    }),
    def!("mustFirst", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot find first on type %s")?;
        Ok(l.first().cloned().unwrap_or(Value::Nil))
    }),
    def!("last", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot find last on type %s")?;
        Ok(l.last().cloned().unwrap_or(Value::Nil))
    }),
    def!("mustLast", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot find last on type %s")?;
        Ok(l.last().cloned().unwrap_or(Value::Nil))
    }),
    def!("rest", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot find rest on type %s")?;
        Ok(Value::list(l.iter().skip(1).cloned().collect()))
    }),
    def!("mustRest", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot find rest on type %s")?;
        Ok(Value::list(l.iter().skip(1).cloned().collect()))
    }),
    def!("initial", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot find initial on type %s")?;
        Ok(Value::list(l[..l.len().saturating_sub(1)].to_vec()))
    }),
    def!("mustInitial", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot find initial on type %s")?;
        Ok(Value::list(l[..l.len().saturating_sub(1)].to_vec()))
    }),
    def!("reverse", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot find reverse on type %s")?;
        Ok(Value::list(l.iter().rev().cloned().collect()))
    }),
    def!("mustReverse", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot find reverse on type %s")?;
        Ok(Value::list(l.iter().rev().cloned().collect()))
    }),
    def!("uniq", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot find uniq on type %s")?;
        let mut d: Vec<Value> = Vec::new();
        for v in l.iter() {
            if !in_list(&d, v) {
                d.push(v.clone());
            }
        }
        Ok(Value::list(d))
    }),
    def!("mustUniq", 1, false, |a| {
        let l = list_arg(&a[0], "Cannot find uniq on type %s")?;
        let mut d: Vec<Value> = Vec::new();
        for v in l.iter() {
            if !in_list(&d, v) {
                d.push(v.clone());
            }
        }
        Ok(Value::list(d))
    }),
    def!("without", 1, true, |a| {
        let l = list_arg(&a[0], "Cannot find without on type %s")?;
        Ok(Value::list(
            l.iter().filter(|v| !in_list(&a[1..], v)).cloned().collect(),
        ))
    }),
    def!("mustWithout", 1, true, |a| {
        let l = list_arg(&a[0], "Cannot find without on type %s")?;
        Ok(Value::list(
            l.iter().filter(|v| !in_list(&a[1..], v)).cloned().collect(),
        ))
    }),
    def!("has", 2, false, |a| {
        if let Value::Nil = a[1] {
            return bool_v(false);
        }
        let l = list_arg(&a[1], "Cannot find has on type %s")?;
        bool_v(in_list(&l, &a[0]))
    }),
    def!("mustHas", 2, false, |a| {
        if let Value::Nil = a[1] {
            return bool_v(false);
        }
        let l = list_arg(&a[1], "Cannot find has on type %s")?;
        bool_v(in_list(&l, &a[0]))
    }),
    def!("slice", 1, true, |a| slice_fn(a)),
    def!("mustSlice", 1, true, |a| slice_fn(a)),
    def!("concat", 0, true, |a| {
        let mut res = Vec::new();
        for l in a {
            let l = list_arg(l, "Cannot concat type %s as list")?;
            res.extend(l.iter().cloned());
        }
        Ok(Value::list(res))
    }),
    def!("dig", 0, true, dig),
    def!("chunk", 2, false, |a| {
        let n = i_arg(&a[0])?;
        let l = list_arg(&a[1], "Cannot chunk type %s")?;
        chunk(n, &l)
    }),
    def!("mustChunk", 2, false, |a| {
        let n = i_arg(&a[0])?;
        let l = list_arg(&a[1], "Cannot chunk type %s")?;
        chunk(n, &l)
    }),
    // ----- flow control -----
    def!("fail", 1, false, |a| fe(s_arg(&a[0])?)),
    // ----- regex -----
    def!("regexMatch", 2, false, |a| {
        let (re, st) = str2(a)?;
        bool_v(compile_regex(re).map(|r| r.is_match(st)).unwrap_or(false))
    }),
    def!("mustRegexMatch", 2, false, |a| {
        let (re, st) = str2(a)?;
        bool_v(compile(re)?.is_match(st))
    }),
    def!("regexFindAll", 3, false, |a| {
        let (re, st, n) = regex3_n(a)?;
        Ok(strs(find_all(&must_compile(re)?, st, n)))
    }),
    def!("mustRegexFindAll", 3, false, |a| {
        let (re, st, n) = regex3_n(a)?;
        Ok(strs(find_all(&compile(re)?, st, n)))
    }),
    def!("regexFind", 2, false, |a| {
        let (re, st) = str2(a)?;
        Ok(s(must_compile(re)?
            .find(st)
            .map(|m| m.as_str())
            .unwrap_or("")))
    }),
    def!("mustRegexFind", 2, false, |a| {
        let (re, st) = str2(a)?;
        Ok(s(compile(re)?.find(st).map(|m| m.as_str()).unwrap_or("")))
    }),
    def!("regexReplaceAll", 3, false, |a| {
        let (re, st, repl) = str3(a)?;
        Ok(s(replace_all(&must_compile(re)?, st, repl)))
    }),
    def!("mustRegexReplaceAll", 3, false, |a| {
        let (re, st, repl) = str3(a)?;
        Ok(s(replace_all(&compile(re)?, st, repl)))
    }),
    def!("regexReplaceAllLiteral", 3, false, |a| {
        let (re, st, repl) = str3(a)?;
        Ok(s(must_compile(re)?.replace_all(st, regex::NoExpand(repl))))
    }),
    def!("mustRegexReplaceAllLiteral", 3, false, |a| {
        let (re, st, repl) = str3(a)?;
        Ok(s(compile(re)?.replace_all(st, regex::NoExpand(repl))))
    }),
    def!("regexSplit", 3, false, |a| {
        let (re, st, n) = regex3_n(a)?;
        Ok(strs(regex_split(&must_compile(re)?, st, n)))
    }),
    def!("mustRegexSplit", 3, false, |a| {
        let (re, st, n) = regex3_n(a)?;
        Ok(strs(regex_split(&compile(re)?, st, n)))
    }),
    def!("regexQuoteMeta", 1, false, |a| str1(a, quote_meta)),
    // ----- urls -----
    def!("urlParse", 1, false, |a| url_parse(s_arg(&a[0])?)),
    def!("urlJoin", 1, false, |a| url_join(&m_arg(&a[0])?)),
    // ----- fluxop additions -----
    def!("slugify", 1, false, |a| str1(a, slugify)),
    def!("toYaml", 1, false, |a| {
        Ok(s(a[0]
            .to_json()
            .map(|j| super::goyaml::to_yaml(&j))
            .unwrap_or_default()))
    }),
    def!("mustToYaml", 1, false, |a| match a[0].to_json() {
        Some(j) => Ok(s(super::goyaml::to_yaml(&j))),
        None => fe(format!(
            "error marshaling into JSON: {}",
            json_of(&a[0], true, "").err().unwrap_or_default()
        )),
    }),
];

fn slice_fn(a: &[Value]) -> R {
    let l = list_arg(&a[0], "list should be type of slice or array but %s")?;
    if l.is_empty() {
        return Ok(Value::Nil);
    }
    let start = a.get(1).map(to_int64).unwrap_or(0);
    let end = if a.len() < 3 {
        l.len() as i64
    } else {
        to_int64(&a[2])
    };
    if start < 0 || end < start || end > l.len() as i64 {
        return fe("reflect.Value.Slice: slice index out of bounds");
    }
    Ok(Value::list(l[start as usize..end as usize].to_vec()))
}

/// The function of that name, if it is in [`NAMES`].
pub fn lookup(name: &str) -> Option<Func> {
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Every function name.
#[cfg(test)]
pub fn names() -> Vec<&'static str> {
    TABLE.iter().map(|(n, _)| *n).collect()
}
