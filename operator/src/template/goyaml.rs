//! Byte-compatible reimplementation of `sigs.k8s.io/yaml` v1.6.0 on top of
//! `go.yaml.in/yaml/v2` v2.4.4 semantics: [`to_yaml`] mirrors
//! `JSONToYAML`/`Marshal`, [`from_yaml`] mirrors `YAMLToJSON` followed by a
//! JSON decode, and [`from_yaml_documents`] mirrors the multi-document
//! `YAMLOrJSONDecoder` loop used by `ssa/utils.ReadObjects`.
//!
//! Shared pieces live here: YAML 1.1 implicit resolution as yaml.v2 does it
//! and Go's float formatting (`strconv.FormatFloat` and `encoding/json`).

pub use super::goyaml_emit::{to_yaml, try_to_yaml};
pub use super::goyaml_load::{from_yaml, from_yaml_documents};

/// Outcome of resolving an untagged plain scalar the way yaml.v2 does.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str,
    Timestamp,
    Merge,
}

fn lookup_special(s: &str) -> Option<Resolved> {
    Some(match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Resolved::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Resolved::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => Resolved::Null,
        ".nan" | ".NaN" | ".NAN" => Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Resolved::Float(f64::NEG_INFINITY),
        "<<" => Resolved::Merge,
        _ => return None,
    })
}

/// Resolution of a scalar whose tag is empty (plain, untagged) or one of the
/// resolvable core tags, ignoring the tag-mismatch check done by the caller.
/// `allow_timestamp` is true when the tag is empty or `!!timestamp`.
pub(super) fn resolve_value(s: &str, allow_timestamp: bool) -> Resolved {
    let hint = match s.as_bytes().first() {
        None => b'N',
        Some(b'+' | b'-') => b'S',
        Some(b'0'..=b'9') => b'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => b'M',
        Some(b'.') => b'.',
        Some(_) => 0,
    };
    if hint == 0 {
        return Resolved::Str;
    }
    if let Some(r) = lookup_special(s) {
        return r;
    }
    match hint {
        b'.' => {
            if let Some(f) = go_parse_float(s) {
                return Resolved::Float(f);
            }
        }
        b'D' | b'S' => {
            if allow_timestamp && is_go_timestamp(s) {
                return Resolved::Timestamp;
            }
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            if let Some(i) = parse_int(&plain, 0) {
                return Resolved::Int(i);
            }
            if let Some(u) = parse_uint(&plain, 0) {
                return Resolved::Uint(u);
            }
            if yaml_style_float(&plain)
                && let Some(f) = go_parse_float(&plain)
            {
                return Resolved::Float(f);
            }
            if let Some(rest) = plain.strip_prefix("0b") {
                if let Some(i) = parse_int(rest, 2) {
                    return Resolved::Int(i);
                }
                if let Some(u) = parse_uint(rest, 2) {
                    return Resolved::Uint(u);
                }
            } else if let Some(rest) = plain.strip_prefix("-0b")
                && let Some(i) = parse_int(&format!("-{rest}"), 2)
            {
                return Resolved::Int(i);
            }
        }
        _ => {}
    }
    Resolved::Str
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - st
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
pub(super) fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(b'+' | b'-' | b'0'..=b'9') => {}
        _ => return false,
    }
    if !s.contains(':') {
        return false;
    }
    let mut i = usize::from(matches!(b[0], b'+' | b'-'));
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while b.get(i) == Some(&b':') {
        i += 1;
        let st = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        match i - st {
            1 => {}
            2 if b[st] <= b'5' => {}
            _ => return false,
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// Go `strconv.ParseUint(s, base, 64)` for base 0 (prefix detection) or an
/// explicit base; `s` must carry no underscores.
pub(super) fn parse_uint(s: &str, base: u32) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let (mut base, mut digits) = (base, s);
    if base == 0 {
        base = 10;
        let b = s.as_bytes();
        if b[0] == b'0' {
            let prefixed = |c: u8| b.len() >= 3 && b[1].eq_ignore_ascii_case(&c);
            if prefixed(b'b') {
                base = 2;
                digits = &s[2..];
            } else if prefixed(b'o') {
                base = 8;
                digits = &s[2..];
            } else if prefixed(b'x') {
                base = 16;
                digits = &s[2..];
            } else {
                base = 8;
                digits = &s[1..];
            }
        }
    }
    let mut n: u64 = 0;
    for c in digits.chars() {
        let d = c.to_digit(36)?;
        if d >= base {
            return None;
        }
        n = n.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
    }
    Some(n)
}

/// Go `strconv.ParseInt(s, base, 64)`.
pub(super) fn parse_int(s: &str, base: u32) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let u = parse_uint(rest, base)?;
    if neg {
        if u <= 1u64 << 63 {
            Some((u as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else {
        i64::try_from(u).ok()
    }
}

/// Go `strconv.ParseFloat(s, 64)` restricted to decimal syntax (the only one
/// yaml.v2 can reach); overflow is an error as in Go.
fn go_parse_float(s: &str) -> Option<f64> {
    let cleaned: String;
    let s = if s.contains('_') {
        if !underscores_ok(s) {
            return None;
        }
        cleaned = s.chars().filter(|&c| c != '_').collect();
        &cleaned
    } else {
        s
    };
    let b = s.as_bytes();
    let body = b
        .strip_prefix(b"+")
        .or_else(|| b.strip_prefix(b"-"))
        .unwrap_or(b);
    if body.is_empty()
        || !body
            .iter()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    if f.is_infinite() { None } else { Some(f) }
}

fn underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let b = b
        .strip_prefix(b"+")
        .or_else(|| b.strip_prefix(b"-"))
        .unwrap_or(b);
    let mut saw = b'^';
    for &c in b {
        if c.is_ascii_digit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

/// yaml.v2 `parseTimestamp`: the four `time.Parse` layouts it tries.
fn is_go_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let lead = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if lead != 4 || b.len() == 4 || b[4] != b'-' {
        return false;
    }
    // Layouts: date, then optional ('T' | 't' | ' ') time [frac] [tz unless ' '].
    let mut p = TsCursor { b, i: 5 };
    let year: u32 = s[..4].parse().unwrap_or(0);
    let Some(month) = p.num() else { return false };
    if !p.lit(b'-') {
        return false;
    }
    let Some(day) = p.num() else { return false };
    if !(1..=12).contains(&month) || day < 1 || day > days_in(month, year) {
        return false;
    }
    if p.i == b.len() {
        return true;
    }
    let sep = b[p.i];
    if !matches!(sep, b'T' | b't' | b' ') {
        return false;
    }
    p.i += 1;
    let Some(h) = p.num() else { return false };
    if !p.lit(b':') {
        return false;
    }
    let Some(m) = p.num() else { return false };
    if !p.lit(b':') {
        return false;
    }
    let Some(sec) = p.num() else { return false };
    if h >= 24 || m >= 60 || sec >= 60 {
        return false;
    }
    if p.i + 1 < b.len() && matches!(b[p.i], b'.' | b',') && b[p.i + 1].is_ascii_digit() {
        p.i += 1;
        while p.i < b.len() && b[p.i].is_ascii_digit() {
            p.i += 1;
        }
    }
    if sep == b' ' {
        return p.i == b.len();
    }
    let rest = &b[p.i..];
    if rest == b"Z" {
        return true;
    }
    rest.len() == 6
        && matches!(rest[0], b'+' | b'-')
        && rest[1].is_ascii_digit()
        && rest[2].is_ascii_digit()
        && rest[3] == b':'
        && rest[4].is_ascii_digit()
        && rest[5].is_ascii_digit()
        && (rest[1] - b'0') * 10 + (rest[2] - b'0') < 24
        && (rest[4] - b'0') * 10 + (rest[5] - b'0') < 60
}

struct TsCursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl TsCursor<'_> {
    fn num(&mut self) -> Option<u32> {
        let d0 = *self.b.get(self.i).filter(|c| c.is_ascii_digit())?;
        self.i += 1;
        let mut v = u32::from(d0 - b'0');
        if let Some(d1) = self.b.get(self.i).filter(|c| c.is_ascii_digit()) {
            v = v * 10 + u32::from(d1 - b'0');
            self.i += 1;
        }
        Some(v)
    }
    fn lit(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
}

fn days_in(month: u32, year: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Shortest round-trip decimal digits of a finite value: (negative, digits, dp)
/// where value = 0.d1d2... * 10^dp; zero has no digits.
fn shortest_digits(f: f64, bits32: bool) -> (bool, Vec<u8>, i32) {
    let neg = f.is_sign_negative();
    if f == 0.0 {
        return (neg, Vec::new(), 0);
    }
    let text = if bits32 {
        format!("{:e}", (f as f32).abs())
    } else {
        format!("{:e}", f.abs())
    };
    let (mant, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    (neg, digits, exp + 1)
}

fn fmt_e(neg: bool, d: &[u8], dp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push(d.first().map_or('0', |&c| c as char));
    if d.len() > 1 {
        out.push('.');
        out.extend(d[1..].iter().map(|&c| c as char));
    }
    out.push('e');
    let exp = if d.is_empty() { 0 } else { dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let exp = exp.unsigned_abs();
    if exp < 10 {
        out.push('0');
    }
    out.push_str(&exp.to_string());
    out
}

fn fmt_f(neg: bool, d: &[u8], dp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let nd = d.len() as i32;
    if dp > 0 {
        for i in 0..dp {
            out.push(if i < nd { d[i as usize] as char } else { '0' });
        }
    } else {
        out.push('0');
    }
    let prec = (nd - dp).max(0);
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            let j = dp + i - 1;
            out.push(if j >= 0 && j < nd {
                d[j as usize] as char
            } else {
                '0'
            });
        }
    }
    out
}

/// Go `strconv.FormatFloat(f, 'g', -1, bits)`.
pub(super) fn go_format_g(f: f64, bits32: bool) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let (neg, d, dp) = shortest_digits(f, bits32);
    let exp = dp - 1;
    if !d.is_empty() && !(-4..6).contains(&exp) {
        fmt_e(neg, &d, dp)
    } else {
        fmt_f(neg, &d, dp)
    }
}

/// The text Go's `encoding/json` writes for a finite float64.
pub(super) fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    let (neg, d, dp) = shortest_digits(f, false);
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = fmt_e(neg, &d, dp);
        let b = s.as_bytes();
        let n = b.len();
        if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
            return format!("{}{}", &s[..n - 2], &s[n - 1..]);
        }
        s
    } else {
        fmt_f(neg, &d, dp)
    }
}
