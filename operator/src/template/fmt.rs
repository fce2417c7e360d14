//! Go `fmt` printing (Sprint, Sprintln, Sprintf and `%v`) over [`Value`].
use super::value::Value;

/// Go `%v` of one value (`fmt.Sprint(v)`).
pub fn format_v(v: &Value) -> String {
    let mut p = Printer::default();
    p.print_arg(v, 'v');
    p.buf
}

/// Go `fmt.Sprint`: a space between operands when neither side is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut p = Printer::default();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::String(_));
        if i > 0 && !is_string && !prev_string {
            p.buf.push(' ');
        }
        p.print_arg(a, 'v');
        prev_string = is_string;
    }
    p.buf
}

/// Go `fmt.Sprintln`: always a space between operands, and a trailing newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut p = Printer::default();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(' ');
        }
        p.print_arg(a, 'v');
    }
    p.buf.push('\n');
    p.buf
}

/// Go `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut p = Printer::default();
    p.do_printf(format, args);
    p.buf
}

/// Go `strconv.Quote`.
pub fn quote(s: &str) -> String {
    quote_with(s, '"', false)
}

/// Go `strconv.QuoteToASCII`.
pub fn quote_ascii(s: &str) -> String {
    quote_with(s, '"', true)
}

/// Go `strconv.FormatFloat(f, fmt, prec, 64)` for fmt in `e E f g G x X b`.
pub fn format_float(f: f64, fmt: char, prec: i32) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let neg = f.is_sign_negative();
    let a = f.abs();
    let body = match fmt {
        'b' => fmt_b(a),
        'x' | 'X' => fmt_x(a, prec, fmt == 'X'),
        'f' | 'F' if prec >= 0 => format!("{:.*}", prec as usize, a),
        _ => {
            let shortest = prec < 0;
            let digs = if shortest {
                shortest_digits(a)
            } else {
                match fmt {
                    'e' | 'E' => rounded_digits(a, prec as usize + 1),
                    'g' | 'G' => rounded_digits(a, (prec.max(1)) as usize),
                    _ => rounded_digits(a, prec as usize + 1),
                }
            };
            let upper = fmt == 'E' || fmt == 'G';
            match fmt {
                'e' | 'E' => {
                    let p = if shortest {
                        digs.d.len() as i32 - 1
                    } else {
                        prec
                    };
                    fmt_e(&digs, p.max(0) as usize, upper)
                }
                'f' | 'F' => fmt_f(&digs, (digs.d.len() as i32 - digs.dp).max(0) as usize),
                _ => {
                    let nd = digs.d.len() as i32;
                    let mut p = if shortest { nd } else { prec.max(1) };
                    let mut eprec = p;
                    if eprec > nd && nd >= digs.dp {
                        eprec = nd;
                    }
                    if shortest {
                        eprec = 6;
                    }
                    let exp = digs.dp - 1;
                    if exp < -4 || exp >= eprec {
                        if p > nd {
                            p = nd;
                        }
                        fmt_e(&digs, (p - 1).max(0) as usize, upper)
                    } else {
                        if p > digs.dp {
                            p = nd;
                        }
                        fmt_f(&digs, (p - digs.dp).max(0) as usize)
                    }
                }
            }
        }
    };
    if neg { format!("-{body}") } else { body }
}

/// Decimal digits (no trailing zeros; empty for zero) with the decimal point position.
struct Digits {
    d: Vec<u8>,
    dp: i32,
}

fn parse_e(s: &str) -> Digits {
    let (m, e) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i32 = e.parse().unwrap_or(0);
    let mut d: Vec<u8> = m.bytes().filter(|b| b.is_ascii_digit()).collect();
    while d.last() == Some(&b'0') {
        d.pop();
    }
    if d.is_empty() {
        return Digits { d, dp: 0 };
    }
    Digits { d, dp: exp + 1 }
}

fn shortest_digits(a: f64) -> Digits {
    parse_e(&format!("{a:e}"))
}

fn rounded_digits(a: f64, n: usize) -> Digits {
    parse_e(&format!("{:.*e}", n.saturating_sub(1), a))
}

fn fmt_e(d: &Digits, prec: usize, upper: bool) -> String {
    let mut s = String::new();
    s.push(if d.d.is_empty() { '0' } else { d.d[0] as char });
    if prec > 0 {
        s.push('.');
        for i in 1..=prec {
            s.push(d.d.get(i).map(|&b| b as char).unwrap_or('0'));
        }
    }
    s.push(if upper { 'E' } else { 'e' });
    let exp = if d.d.is_empty() { 0 } else { d.dp - 1 };
    s.push(if exp < 0 { '-' } else { '+' });
    let e = exp.abs();
    if e < 10 {
        s.push('0');
    }
    s.push_str(&e.to_string());
    s
}

fn fmt_f(d: &Digits, prec: usize) -> String {
    let mut s = String::new();
    if d.dp > 0 {
        for i in 0..d.dp as usize {
            s.push(d.d.get(i).map(|&b| b as char).unwrap_or('0'));
        }
    } else {
        s.push('0');
    }
    if prec > 0 {
        s.push('.');
        for i in 1..=prec as i32 {
            let j = d.dp + i - 1;
            let c = if j >= 0 {
                d.d.get(j as usize).copied()
            } else {
                None
            };
            s.push(c.map(|b| b as char).unwrap_or('0'));
        }
    }
    s
}

fn mant_exp(a: f64) -> (u64, i32) {
    let bits = a.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), exp - 1075)
    }
}

fn fmt_b(a: f64) -> String {
    let (m, e) = mant_exp(a);
    format!("{m}p{}{e}", if e >= 0 { "+" } else { "" })
}

fn fmt_x(a: f64, prec: i32, upper: bool) -> String {
    let (mut m, mut e) = mant_exp(a);
    if m == 0 {
        e = 0;
    } else {
        // Normalise so that bit 52 is the leading 1.
        while m & (1 << 52) == 0 {
            m <<= 1;
            e -= 1;
        }
        e += 52;
    }
    let mut frac = m & ((1 << 52) - 1);
    let mut lead = if m == 0 { 0 } else { 1 };
    let mut ndig = 13usize;
    if prec >= 0 && (prec as usize) < 13 {
        let shift = (13 - prec as usize) * 4;
        let half = 1u64 << (shift - 1);
        let rem = frac & ((1u64 << shift) - 1);
        frac >>= shift;
        if rem > half || (rem == half && frac & 1 == 1) {
            frac += 1;
            if frac >> (prec as usize * 4) != 0 {
                frac = 0;
                lead += 1;
                if lead == 2 {
                    lead = 1;
                    e += 1;
                }
            }
        }
        ndig = prec as usize;
    }
    let mut hex = if ndig > 0 {
        format!("{frac:0ndig$x}")
    } else {
        String::new()
    };
    if prec < 0 {
        while hex.ends_with('0') {
            hex.pop();
        }
    }
    let mut s = format!("0x{lead}");
    if !hex.is_empty() {
        s.push('.');
        s.push_str(&hex);
    }
    s.push('p');
    s.push(if e < 0 { '-' } else { '+' });
    let ea = e.abs();
    if ea < 10 {
        s.push('0');
    }
    s.push_str(&ea.to_string());
    if upper { s.to_uppercase() } else { s }
}

/// Go `strconv.IsPrint` (approximation without Unicode category tables: controls,
/// non-ASCII spaces, format characters and private-use characters are not printable).
pub fn is_print(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let fmt_ranges: &[(u32, u32)] = &[
        (0xad, 0xad),
        (0x600, 0x605),
        (0x61c, 0x61c),
        (0x6dd, 0x6dd),
        (0x70f, 0x70f),
        (0x890, 0x891),
        (0x8e2, 0x8e2),
        (0x180e, 0x180e),
        (0x200b, 0x200f),
        (0x202a, 0x202e),
        (0x2060, 0x2064),
        (0x2066, 0x206f),
        (0xd800, 0xf8ff),
        (0xfeff, 0xfeff),
        (0xfff0, 0xfffb),
        (0xfffe, 0xffff),
        (0x110bd, 0x110bd),
        (0x110cd, 0x110cd),
        (0x13430, 0x1343f),
        (0x1bca0, 0x1bca3),
        (0x1d173, 0x1d17a),
        (0xe0000, 0xe0fff),
        (0xf0000, 0x10ffff),
    ];
    !fmt_ranges.iter().any(|&(lo, hi)| lo <= u && u <= hi)
}

fn quote_rune_into(out: &mut String, c: char, q: char, ascii: bool) {
    if c == q || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if ascii {
        if c.is_ascii() && is_print(c) {
            out.push(c);
            return;
        }
    } else if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        _ => {
            let u = c as u32;
            if u < 0x20 || u == 0x7f {
                out.push_str(&format!("\\x{u:02x}"));
            } else if u < 0x10000 {
                out.push_str(&format!("\\u{u:04x}"));
            } else {
                out.push_str(&format!("\\U{u:08x}"));
            }
        }
    }
}

fn quote_with(s: &str, q: char, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        quote_rune_into(&mut out, c, q, ascii);
    }
    out.push(q);
    out
}

fn can_backquote(s: &str) -> bool {
    s.chars()
        .all(|c| c != '`' && c != '\u{feff}' && (c == '\t' || !(c < ' ' || c == '\x7f')))
}

#[derive(Default, Clone, Copy)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    plus_v: bool,
    sharp_v: bool,
    wid: Option<usize>,
    prec: Option<usize>,
}

#[derive(Default)]
struct Printer {
    buf: String,
    f: Flags,
}

fn type_name(v: &Value) -> &'static str {
    v.type_name()
}

impl Printer {
    fn write_padding(&mut self, n: usize) {
        let c = if self.f.zero { '0' } else { ' ' };
        for _ in 0..n {
            self.buf.push(c);
        }
    }

    fn pad(&mut self, s: &str) {
        let Some(w) = self.f.wid else {
            self.buf.push_str(s);
            return;
        };
        let n = s.chars().count();
        let padn = w.saturating_sub(n);
        if self.f.minus {
            self.buf.push_str(s);
            self.write_padding(padn);
        } else {
            self.write_padding(padn);
            self.buf.push_str(s);
        }
    }

    fn pad_no_zero(&mut self, s: &str) {
        let z = self.f.zero;
        self.f.zero = false;
        self.pad(s);
        self.f.zero = z;
    }

    fn bad_verb(&mut self, v: Option<&Value>, verb: char) {
        self.buf.push_str("%!");
        self.buf.push(verb);
        self.buf.push('(');
        match v {
            Some(v) if !matches!(v, Value::Nil) => {
                self.buf.push_str(type_name(v));
                self.buf.push('=');
                self.print_value(v, 'v', 0);
            }
            _ => self.buf.push_str("<nil>"),
        }
        self.buf.push(')');
    }

    fn print_arg(&mut self, v: &Value, verb: char) {
        if let Value::Nil = v {
            match verb {
                'T' | 'v' => self.pad("<nil>"),
                _ => self.bad_verb(None, verb),
            }
            return;
        }
        if verb == 'T' {
            self.pad(type_name(v));
            return;
        }
        self.print_value(v, verb, 0);
    }

    fn print_value(&mut self, v: &Value, verb: char, depth: usize) {
        match v {
            Value::Nil => {
                if self.f.sharp_v {
                    self.buf.push_str("interface {}(nil)");
                } else if depth == 0 && verb != 'v' {
                    self.bad_verb(None, verb);
                } else {
                    self.pad("<nil>");
                }
            }
            Value::Bool(b) => match verb {
                't' | 'v' => self.pad(if *b { "true" } else { "false" }),
                _ => self.bad_verb(Some(v), verb),
            },
            Value::Int(i) | Value::Int64(i) => self.fmt_int(*i, verb, v),
            Value::Float(x) => self.fmt_float_verb(*x, verb, v),
            Value::String(s) => self.fmt_string(s, verb, v),
            Value::List(items) => {
                if self.f.sharp_v {
                    self.buf.push_str("[]interface {}{");
                    for (i, it) in items.iter().enumerate() {
                        if i > 0 {
                            self.buf.push_str(", ");
                        }
                        self.print_value(it, verb, depth + 1);
                    }
                    self.buf.push('}');
                    return;
                }
                self.buf.push('[');
                for (i, it) in items.iter().enumerate() {
                    if i > 0 {
                        self.buf.push(' ');
                    }
                    self.print_value(it, verb, depth + 1);
                }
                self.buf.push(']');
            }
            Value::Map(m) => {
                let m = m.borrow();
                if self.f.sharp_v {
                    self.buf.push_str("map[string]interface {}{");
                } else {
                    self.buf.push_str("map[");
                }
                for (i, (k, val)) in m.iter().enumerate() {
                    if i > 0 {
                        self.buf.push_str(if self.f.sharp_v { ", " } else { " " });
                    }
                    self.fmt_string(k, verb, &Value::String(k.clone()));
                    self.buf.push(':');
                    self.print_value(val, verb, depth + 1);
                }
                self.buf.push(if self.f.sharp_v { '}' } else { ']' });
            }
        }
    }

    fn fmt_int(&mut self, i: i64, verb: char, v: &Value) {
        match verb {
            'v' | 'd' => self.fmt_integer(i, 10, verb, false),
            'b' => self.fmt_integer(i, 2, verb, false),
            'o' | 'O' => self.fmt_integer(i, 8, verb, false),
            'x' => self.fmt_integer(i, 16, verb, false),
            'X' => self.fmt_integer(i, 16, verb, true),
            'c' => {
                let c = rune_of(i);
                self.pad(&c.to_string());
            }
            'q' => {
                let c = rune_of(i);
                let s = if self.f.sharp && c != '`' && is_print(c) {
                    format!("`{c}`")
                } else {
                    let mut s = String::from('\'');
                    quote_rune_into(&mut s, c, '\'', self.f.plus);
                    s.push('\'');
                    s
                };
                self.pad(&s);
            }
            'U' => {
                let mut s = if i < 0 {
                    format!("U+{:X}", i as u64)
                } else {
                    format!("U+{i:04X}")
                };
                if let Some(p) = self.f.prec {
                    let digits = s.len() - 2;
                    if p > digits {
                        s = format!("U+{}{}", "0".repeat(p - digits), &s[2..]);
                    }
                }
                if let Some(c) = char::from_u32(i as u32)
                    .filter(|c| self.f.sharp && (0..=0x10ffff).contains(&i) && is_print(*c))
                {
                    s.push_str(&format!(" '{c}'"));
                }
                self.pad_no_zero(&s);
            }
            _ => self.bad_verb(Some(v), verb),
        }
    }

    fn fmt_integer(&mut self, i: i64, base: u64, verb: char, upper: bool) {
        let neg = i < 0;
        let mut u = i.unsigned_abs();
        let f = self.f;
        let mut prec = 0usize;
        if let Some(p) = f.prec {
            prec = p;
            if p == 0 && u == 0 {
                let w = f.wid.unwrap_or(0);
                let z = self.f.zero;
                self.f.zero = false;
                self.write_padding(w);
                self.f.zero = z;
                return;
            }
        } else if f.zero && !f.minus && f.wid.is_some() {
            prec = f.wid.unwrap_or(0);
            if neg || f.plus || f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let digits = if upper {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let mut rev: Vec<u8> = Vec::new();
        loop {
            rev.push(digits[(u % base) as usize]);
            u /= base;
            if u == 0 {
                break;
            }
        }
        while rev.len() < prec {
            rev.push(b'0');
        }
        if f.sharp {
            match base {
                2 => rev.extend_from_slice(b"b0"),
                8 if rev.last() != Some(&b'0') => rev.push(b'0'),
                16 => {
                    rev.push(if upper { b'X' } else { b'x' });
                    rev.push(b'0');
                }
                _ => {}
            }
        }
        if verb == 'O' {
            rev.extend_from_slice(b"o0");
        }
        if neg {
            rev.push(b'-');
        } else if f.plus {
            rev.push(b'+');
        } else if f.space {
            rev.push(b' ');
        }
        rev.reverse();
        let s = String::from_utf8(rev).unwrap_or_default();
        self.pad_no_zero(&s);
    }

    fn fmt_float_verb(&mut self, x: f64, verb: char, v: &Value) {
        let (fc, defprec) = match verb {
            'v' => ('g', -1),
            'b' | 'g' | 'G' | 'x' | 'X' => (verb, -1),
            'f' | 'e' | 'E' => (verb, 6),
            'F' => ('f', 6),
            _ => return self.bad_verb(Some(v), verb),
        };
        let prec = self.f.prec.map(|p| p as i32).unwrap_or(defprec);
        let mut num = format_float(x, fc, prec);
        if !num.starts_with('-') && !num.starts_with('+') {
            num.insert(0, '+');
        }
        let f = self.f;
        if f.space && num.starts_with('+') && !f.plus {
            num.replace_range(0..1, " ");
        }
        if num[1..].starts_with('I') || num[1..].starts_with('N') {
            if num[1..].starts_with('N') && !f.space && !f.plus {
                num.remove(0);
            }
            self.pad_no_zero(&num);
            return;
        }
        if f.sharp && fc != 'b' {
            let mut digits: i64 = match fc {
                'g' | 'G' | 'x' => {
                    if prec < 0 {
                        6
                    } else {
                        prec as i64
                    }
                }
                _ => 0,
            };
            let mut tail = String::new();
            let mut has_point = false;
            let mut saw_nonzero = false;
            let bytes: Vec<u8> = num.bytes().collect();
            let mut cut = bytes.len();
            for (i, &c) in bytes.iter().enumerate().skip(1) {
                match c {
                    b'.' => has_point = true,
                    b'p' | b'P' => {
                        tail = num[i..].to_string();
                        cut = i;
                        break;
                    }
                    b'e' | b'E' if fc != 'x' && fc != 'X' => {
                        tail = num[i..].to_string();
                        cut = i;
                        break;
                    }
                    _ => {
                        if c != b'0' {
                            saw_nonzero = true;
                        }
                        if saw_nonzero {
                            digits -= 1;
                        }
                    }
                }
            }
            num.truncate(cut);
            if !has_point {
                if num.len() == 2 && num.as_bytes()[1] == b'0' {
                    digits -= 1;
                }
                num.push('.');
            }
            while digits > 0 {
                num.push('0');
                digits -= 1;
            }
            num.push_str(&tail);
        }
        if f.plus || !num.starts_with('+') {
            if f.zero && !f.minus && f.wid.is_some_and(|w| w > num.len()) {
                let w = f.wid.unwrap_or(0);
                self.buf.push_str(&num[..1]);
                self.write_padding(w - num.len());
                self.buf.push_str(&num[1..]);
                return;
            }
            self.pad(&num);
            return;
        }
        self.pad(&num[1..]);
    }

    fn fmt_string(&mut self, s: &str, verb: char, v: &Value) {
        match verb {
            'v' if self.f.sharp_v => self.pad(&quote(s)),
            'v' | 's' => {
                let t = self.truncate(s);
                self.pad(&t);
            }
            'q' => {
                let t = self.truncate(s);
                let q = if self.f.sharp && can_backquote(&t) {
                    format!("`{t}`")
                } else if self.f.plus {
                    quote_ascii(&t)
                } else {
                    quote(&t)
                };
                self.pad(&q);
            }
            'x' | 'X' => self.fmt_sbx(s.as_bytes(), verb == 'X'),
            _ => self.bad_verb(Some(v), verb),
        }
    }

    fn truncate(&self, s: &str) -> String {
        match self.f.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.to_string(),
        }
    }

    fn fmt_sbx(&mut self, b: &[u8], upper: bool) {
        let digits = if upper {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let mut len = b.len();
        if let Some(p) = self.f.prec {
            len = len.min(p);
        }
        let f = self.f;
        let mut s = String::new();
        for (i, &c) in b[..len].iter().enumerate() {
            if f.space && i > 0 {
                s.push(' ');
            }
            if f.sharp && (f.space || i == 0) {
                s.push_str(if upper { "0X" } else { "0x" });
            }
            s.push(digits[(c >> 4) as usize] as char);
            s.push(digits[(c & 15) as usize] as char);
        }
        self.pad(&s);
    }

    fn do_printf(&mut self, format: &str, a: &[Value]) {
        let fb = format.as_bytes();
        let end = fb.len();
        let mut arg_num = 0usize;
        let mut reordered = false;
        let mut i = 0usize;
        while i < end {
            let mut good_arg_num = true;
            let lasti = i;
            while i < end && fb[i] != b'%' {
                i += 1;
            }
            self.buf.push_str(&format[lasti..i]);
            if i >= end {
                break;
            }
            i += 1;
            self.f = Flags::default();
            while i < end {
                match fb[i] {
                    b'#' => self.f.sharp = true,
                    b'0' => self.f.zero = !self.f.minus,
                    b'+' => self.f.plus = true,
                    b'-' => {
                        self.f.minus = true;
                        self.f.zero = false;
                    }
                    b' ' => self.f.space = true,
                    _ => break,
                }
                i += 1;
            }
            let mut after_index;
            (arg_num, i, after_index) =
                arg_number(arg_num, fb, i, a.len(), &mut reordered, &mut good_arg_num);
            if i < end && fb[i] == b'*' {
                i += 1;
                let (w, ok, n) = int_from_arg(a, arg_num);
                arg_num = n;
                if !ok {
                    self.buf.push_str("%!(BADWIDTH)");
                } else if w < 0 {
                    self.f.minus = true;
                    self.f.zero = false;
                    self.f.wid = Some(w.unsigned_abs() as usize);
                } else {
                    self.f.wid = Some(w as usize);
                }
                after_index = false;
            } else {
                let (w, present, ni) = parse_num(fb, i);
                i = ni;
                if present {
                    self.f.wid = Some(w);
                    if after_index {
                        good_arg_num = false;
                    }
                }
            }
            if i < end && fb[i] == b'.' {
                i += 1;
                if after_index {
                    good_arg_num = false;
                }
                (arg_num, i, after_index) =
                    arg_number(arg_num, fb, i, a.len(), &mut reordered, &mut good_arg_num);
                if i < end && fb[i] == b'*' {
                    i += 1;
                    let (p, ok, n) = int_from_arg(a, arg_num);
                    arg_num = n;
                    if ok && p >= 0 {
                        self.f.prec = Some(p as usize);
                    }
                    if !ok || p < 0 {
                        self.buf.push_str("%!(BADPREC)");
                    }
                    after_index = false;
                } else {
                    let (p, _, ni) = parse_num(fb, i);
                    i = ni;
                    self.f.prec = Some(p);
                }
            }
            if !after_index {
                (arg_num, i, _) =
                    arg_number(arg_num, fb, i, a.len(), &mut reordered, &mut good_arg_num);
            }
            if i >= end {
                self.buf.push_str("%!(NOVERB)");
                break;
            }
            let verb = format[i..].chars().next().unwrap_or('?');
            i += verb.len_utf8();
            if verb == '%' {
                self.buf.push('%');
            } else if !good_arg_num {
                self.buf.push_str("%!");
                self.buf.push(verb);
                self.buf.push_str("(BADINDEX)");
            } else if arg_num >= a.len() {
                self.buf.push_str("%!");
                self.buf.push(verb);
                self.buf.push_str("(MISSING)");
            } else {
                if verb == 'v' {
                    self.f.sharp_v = self.f.sharp;
                    self.f.sharp = false;
                    self.f.plus_v = self.f.plus;
                    self.f.plus = false;
                }
                let _ = self.f.plus_v;
                self.print_arg(&a[arg_num], verb);
                arg_num += 1;
            }
        }
        if !reordered && arg_num < a.len() {
            self.f = Flags::default();
            self.buf.push_str("%!(EXTRA ");
            for (k, arg) in a[arg_num..].iter().enumerate() {
                if k > 0 {
                    self.buf.push_str(", ");
                }
                if let Value::Nil = arg {
                    self.buf.push_str("<nil>");
                } else {
                    self.buf.push_str(type_name(arg));
                    self.buf.push('=');
                    self.print_arg(arg, 'v');
                }
            }
            self.buf.push(')');
        }
    }
}

fn rune_of(i: i64) -> char {
    if (0..=0x10ffff).contains(&i) {
        char::from_u32(i as u32).unwrap_or('\u{fffd}')
    } else {
        '\u{fffd}'
    }
}

fn parse_num(b: &[u8], mut i: usize) -> (usize, bool, usize) {
    let start = i;
    let mut n = 0usize;
    while i < b.len() && b[i].is_ascii_digit() {
        if n > 1_000_000 {
            return (0, false, b.len());
        }
        n = n * 10 + (b[i] - b'0') as usize;
        i += 1;
    }
    (n, i > start, i)
}

fn arg_number(
    arg_num: usize,
    b: &[u8],
    i: usize,
    num_args: usize,
    reordered: &mut bool,
    good: &mut bool,
) -> (usize, usize, bool) {
    if i >= b.len() || b[i] != b'[' {
        return (arg_num, i, false);
    }
    *reordered = true;
    // parseArgNumber
    let rest = &b[i..];
    let (index, wid, ok) = if rest.len() < 3 {
        (0isize, 1usize, false)
    } else {
        match rest.iter().position(|&c| c == b']') {
            Some(close) if close >= 1 => {
                let (n, present, ni) = parse_num(rest, 1);
                if !present || ni != close {
                    (0, close + 1, false)
                } else {
                    (n as isize - 1, close + 1, true)
                }
            }
            _ => (0, 1, false),
        }
    };
    if ok && index >= 0 && (index as usize) < num_args {
        return (index as usize, i + wid, true);
    }
    *good = false;
    (arg_num, i + wid, ok)
}

fn int_from_arg(a: &[Value], arg_num: usize) -> (i64, bool, usize) {
    if arg_num < a.len() {
        if let Some(n) = a[arg_num].as_int()
            && (-1_000_000..=1_000_000).contains(&n)
        {
            return (n, true, arg_num + 1);
        }
        return (0, false, arg_num + 1);
    }
    (0, false, arg_num)
}
