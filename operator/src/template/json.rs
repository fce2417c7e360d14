//! Go `encoding/json` compatible encoding and decoding of [`Value`].
use super::fmt::format_float;
use super::value::Value;
use std::collections::BTreeMap;

/// Go `json.Marshal` (escape_html = true) or an Encoder with SetEscapeHTML(false);
/// `indent` is the MarshalIndent indent (prefix is always empty).
pub fn encode(v: &Value, escape_html: bool, indent: &str) -> Result<String, String> {
    let mut out = String::new();
    enc(&mut out, v, escape_html, indent, 0)?;
    Ok(out)
}

fn newline(out: &mut String, indent: &str, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str(indent);
    }
}

fn enc(out: &mut String, v: &Value, html: bool, ind: &str, depth: usize) -> Result<(), String> {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) | Value::Int64(i) => out.push_str(&i.to_string()),
        Value::Float(f) => out.push_str(&float_json(*f)?),
        Value::String(s) => enc_string(out, s, html),
        Value::List(l) => {
            if l.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, it) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !ind.is_empty() {
                    newline(out, ind, depth + 1);
                }
                enc(out, it, html, ind, depth + 1)?;
            }
            if !ind.is_empty() {
                newline(out, ind, depth);
            }
            out.push(']');
        }
        Value::Map(m) => {
            let m = m.borrow();
            if m.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, (k, it)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !ind.is_empty() {
                    newline(out, ind, depth + 1);
                }
                enc_string(out, k, html);
                out.push(':');
                if !ind.is_empty() {
                    out.push(' ');
                }
                enc(out, it, html, ind, depth + 1)?;
            }
            if !ind.is_empty() {
                newline(out, ind, depth);
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Go's JSON float text: 'f' unless |f| < 1e-6 or >= 1e21, then 'e' with a
/// one-digit negative exponent cleaned (`1e-07` -> `1e-7`).
pub fn float_json(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!(
            "json: unsupported value: {}",
            format_float(f, 'g', -1)
        ));
    }
    let a = f.abs();
    let e = a != 0.0 && !(1e-6..1e21).contains(&a);
    let mut s = format_float(f, if e { 'e' } else { 'f' }, -1);
    if e {
        let n = s.len();
        let b = s.as_bytes();
        if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
            s.remove(n - 2);
        }
    }
    Ok(s)
}

fn enc_string(out: &mut String, s: &str, html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go `json.Unmarshal` into `interface{}`: numbers become float64, errors are Go's texts.
pub fn decode(s: &str) -> Result<Value, String> {
    let mut p = Parser {
        b: s.as_bytes(),
        i: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i < p.b.len() {
        return Err(format!(
            "invalid character {} after top-level value",
            p.qc()
        ));
    }
    v.ok_or_else(|| "unexpected end of JSON input".into())
        .and_then(|v| v.resolve())
}

/// Parsed tree; numbers are kept as text so that syntax errors win over range errors,
/// as Go checks the whole input before decoding.
enum J {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn resolve(self) -> Result<Value, String> {
        Ok(match self {
            J::Null => Value::Nil,
            J::Bool(b) => Value::Bool(b),
            J::Num(n) => {
                let f: f64 = n.parse().unwrap_or(f64::INFINITY);
                if f.is_infinite() {
                    return Err(format!(
                        "json: cannot unmarshal number {n} into Go value of type float64"
                    ));
                }
                Value::Float(f)
            }
            J::Str(s) => Value::String(s),
            J::Arr(a) => Value::list(a.into_iter().map(J::resolve).collect::<Result<_, _>>()?),
            J::Obj(o) => {
                let mut m = BTreeMap::new();
                for (k, v) in o {
                    m.insert(k, v.resolve()?);
                }
                Value::map(m)
            }
        })
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

const EOF: &str = "unexpected end of JSON input";

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    /// Go's quoteChar of the character at the cursor.
    fn qc(&self) -> String {
        let s = std::str::from_utf8(&self.b[self.i..]).unwrap_or("");
        let c = s.chars().next().unwrap_or('\u{fffd}');
        match c {
            '\'' => "'\\''".into(),
            '"' => "'\"'".into(),
            _ => {
                let q = super::fmt::quote(&c.to_string());
                format!("'{}'", &q[1..q.len() - 1])
            }
        }
    }
    /// An error inside a token: at the end of input Go's scanner reports the space it feeds.
    fn err_mid(&self, ctx: &str) -> String {
        if self.i >= self.b.len() {
            format!("invalid character ' ' {ctx}")
        } else {
            format!("invalid character {} {ctx}", self.qc())
        }
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn err(&self, ctx: &str) -> String {
        if self.i >= self.b.len() {
            EOF.into()
        } else {
            format!("invalid character {} {ctx}", self.qc())
        }
    }
    fn value(&mut self) -> Result<Option<J>, String> {
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        Ok(Some(match c {
            b'{' => {
                self.i += 1;
                let mut o = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(Some(J::Obj(o)));
                }
                loop {
                    self.ws();
                    if self.peek() != Some(b'"') {
                        return Err(self.err("looking for beginning of object key string"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.peek() != Some(b':') {
                        return Err(self.err("after object key"));
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value()?.ok_or_else(|| EOF.to_string())?;
                    o.push((k, v));
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            break;
                        }
                        _ => return Err(self.err("after object key:value pair")),
                    }
                }
                J::Obj(o)
            }
            b'[' => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Some(J::Arr(a)));
                }
                loop {
                    self.ws();
                    let v = self.value()?.ok_or_else(|| EOF.to_string())?;
                    a.push(v);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            break;
                        }
                        _ => return Err(self.err("after array element")),
                    }
                }
                J::Arr(a)
            }
            b'"' => J::Str(self.string()?),
            b't' => self.lit("true", J::Bool(true))?,
            b'f' => self.lit("false", J::Bool(false))?,
            b'n' => self.lit("null", J::Null)?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return Err(self.err("looking for beginning of value")),
        }))
    }
    fn lit(&mut self, word: &str, v: J) -> Result<J, String> {
        for (k, &w) in word.as_bytes().iter().enumerate() {
            match self.peek() {
                Some(c) if c == w => self.i += 1,
                None => {
                    return Err(format!(
                        "invalid character ' ' in literal {word} (expecting '{}')",
                        word.as_bytes()[k] as char
                    ));
                }
                Some(_) => {
                    return Err(format!(
                        "invalid character {} in literal {word} (expecting '{}')",
                        self.qc(),
                        word.as_bytes()[k] as char
                    ));
                }
            }
        }
        Ok(v)
    }
    fn digits(&mut self) -> usize {
        let s = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - s
    }
    fn number(&mut self) -> Result<J, String> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.err_mid("in numeric literal"));
            }
        }
        if self.peek() == Some(b'0') {
            self.i += 1;
        } else {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(self.err_mid("after decimal point in numeric literal"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.err_mid("in exponent of numeric literal"));
            }
        }
        let s = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("0");
        Ok(J::Num(s.to_string()))
    }
    fn hex4(&mut self) -> Result<u32, String> {
        let mut r = 0u32;
        for _ in 0..4 {
            match self.peek() {
                Some(c) if c.is_ascii_hexdigit() => {
                    r = r * 16 + (c as char).to_digit(16).unwrap_or(0);
                    self.i += 1;
                }
                _ => return Err(self.err_mid("in \\u hexadecimal character escape")),
            }
        }
        Ok(r)
    }
    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut s = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(EOF.into());
            };
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(s);
                }
                b'\\' => {
                    self.i += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.err_mid("in string escape code"));
                    };
                    self.i += 1;
                    match e {
                        b'"' => s.push('"'),
                        b'\\' => s.push('\\'),
                        b'/' => s.push('/'),
                        b'b' => s.push('\x08'),
                        b'f' => s.push('\x0c'),
                        b'n' => s.push('\n'),
                        b'r' => s.push('\r'),
                        b't' => s.push('\t'),
                        b'u' => {
                            let u = self.hex4()?;
                            if (0xd800..0xdc00).contains(&u)
                                && self.b.get(self.i) == Some(&b'\\')
                                && self.b.get(self.i + 1) == Some(&b'u')
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xdc00..0xe000).contains(&lo) {
                                    let cp = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                                    s.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                                    continue;
                                }
                                self.i = save;
                            }
                            s.push(char::from_u32(u).unwrap_or('\u{fffd}'));
                        }
                        _ => {
                            self.i -= 1;
                            return Err(self.err("in string escape code"));
                        }
                    }
                }
                c if c < 0x20 => return Err(self.err("in string literal")),
                _ => {
                    let rest = std::str::from_utf8(&self.b[self.i..]).unwrap_or("");
                    let ch = rest.chars().next().unwrap_or('\u{fffd}');
                    s.push(ch);
                    self.i += ch.len_utf8().max(1);
                }
            }
        }
    }
}
