//! Lexer and recursive-descent parser for CEL expressions, with macro
//! expansion (`has`, `all`, `exists`, `exists_one`, `map`, `filter`,
//! `optMap`, `optFlatMap`).

use std::sync::Arc;

use super::ast::{BinOp, CompKind, Expr, UnOp};
use super::value::Value;

/// A syntax error at a character offset of the source.
#[derive(Debug, Clone)]
pub(super) struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

const MAX_DEPTH: usize = 250;

const RESERVED: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

const EXPECT_EXPR: &str = "{'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}";

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Int(u64),
    Uint(u64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
    Ident(String),
    EscIdent(String),
    True,
    False,
    Null,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Dot,
    Comma,
    Colon,
    Question,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    EqEq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    AndAnd,
    OrOr,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

struct Lexer<'a> {
    src: &'a [char],
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err<T>(&self, start: usize, end: usize) -> Result<T, SyntaxError> {
        let text: String = self.src[start..end.min(self.src.len())].iter().collect();
        Err(SyntaxError {
            offset: start,
            message: format!("Syntax error: token recognition error at: '{text}'"),
        })
    }

    fn peek(&self, n: usize) -> Option<char> {
        self.src.get(self.pos + n).copied()
    }

    fn tokens(mut self) -> Result<Vec<Token>, SyntaxError> {
        let mut out = Vec::new();
        loop {
            // whitespace and comments
            loop {
                match self.peek(0) {
                    Some(' ' | '\t' | '\n' | '\r' | '\u{0c}') => self.pos += 1,
                    Some('/') if self.peek(1) == Some('/') => {
                        while let Some(c) = self.peek(0) {
                            if c == '\n' {
                                break;
                            }
                            self.pos += 1;
                        }
                    }
                    _ => break,
                }
            }
            let start = self.pos;
            let Some(c) = self.peek(0) else {
                out.push(Token {
                    tok: Tok::Eof,
                    start,
                    end: start,
                });
                return Ok(out);
            };
            let tok = match c {
                '(' => self.one(Tok::LParen),
                ')' => self.one(Tok::RParen),
                '[' => self.one(Tok::LBracket),
                ']' => self.one(Tok::RBracket),
                '{' => self.one(Tok::LBrace),
                '}' => self.one(Tok::RBrace),
                ',' => self.one(Tok::Comma),
                ':' => self.one(Tok::Colon),
                '?' => self.one(Tok::Question),
                '+' => self.one(Tok::Plus),
                '-' => self.one(Tok::Minus),
                '*' => self.one(Tok::Star),
                '/' => self.one(Tok::Slash),
                '%' => self.one(Tok::Percent),
                '!' if self.peek(1) == Some('=') => self.two(Tok::Ne),
                '!' => self.one(Tok::Bang),
                '=' if self.peek(1) == Some('=') => self.two(Tok::EqEq),
                '<' if self.peek(1) == Some('=') => self.two(Tok::Le),
                '<' => self.one(Tok::Lt),
                '>' if self.peek(1) == Some('=') => self.two(Tok::Ge),
                '>' => self.one(Tok::Gt),
                '&' if self.peek(1) == Some('&') => self.two(Tok::AndAnd),
                '|' if self.peek(1) == Some('|') => self.two(Tok::OrOr),
                '.' if self.peek(1).is_some_and(|d| d.is_ascii_digit()) => self.number()?,
                '.' => self.one(Tok::Dot),
                '0'..='9' => self.number()?,
                '\'' | '"' => self.string(false, false)?,
                '`' => {
                    self.pos += 1;
                    let s = self.pos;
                    while let Some(ch) = self.peek(0) {
                        if ch == '`' {
                            break;
                        }
                        if !(ch.is_ascii_alphanumeric() || "_.-/ ".contains(ch)) {
                            return self.err(start, self.pos + 1);
                        }
                        self.pos += 1;
                    }
                    if self.peek(0) != Some('`') || self.pos == s {
                        return self.err(start, self.pos);
                    }
                    let name: String = self.src[s..self.pos].iter().collect();
                    self.pos += 1;
                    Tok::EscIdent(name)
                }
                c if c.is_ascii_alphabetic() || c == '_' => {
                    // string prefixes r, b, rb, br (any case)
                    let lower = |o: usize| self.peek(o).map(|c| c.to_ascii_lowercase());
                    let quote_at = |o: usize| matches!(self.peek(o), Some('\'' | '"'));
                    match (lower(0), lower(1)) {
                        (Some('r'), _) if quote_at(1) => {
                            self.pos += 1;
                            self.string(true, false)?
                        }
                        (Some('b'), _) if quote_at(1) => {
                            self.pos += 1;
                            self.string(false, true)?
                        }
                        (Some('b'), Some('r')) if quote_at(2) => {
                            self.pos += 2;
                            self.string(true, true)?
                        }
                        _ => {
                            while self
                                .peek(0)
                                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                            {
                                self.pos += 1;
                            }
                            let word: String = self.src[start..self.pos].iter().collect();
                            match word.as_str() {
                                "true" => Tok::True,
                                "false" => Tok::False,
                                "null" => Tok::Null,
                                "in" => Tok::In,
                                _ => Tok::Ident(word),
                            }
                        }
                    }
                }
                _ => return self.err(start, self.pos + 1),
            };
            out.push(Token {
                tok,
                start,
                end: self.pos,
            });
        }
    }

    fn one(&mut self, t: Tok) -> Tok {
        self.pos += 1;
        t
    }

    fn two(&mut self, t: Tok) -> Tok {
        self.pos += 2;
        t
    }

    fn number(&mut self) -> Result<Tok, SyntaxError> {
        let start = self.pos;
        if self.peek(0) == Some('0') && matches!(self.peek(1), Some('x' | 'X')) {
            self.pos += 2;
            let ds = self.pos;
            while self.peek(0).is_some_and(|c| c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            if ds == self.pos {
                // `0x` without digits: the number is just `0`
                self.pos = start + 1;
                return self.int_suffix(start, Some(0));
            }
            let digits: String = self.src[ds..self.pos].iter().collect();
            let v = u64::from_str_radix(&digits, 16);
            return self.int_suffix(start, v.ok());
        }
        let mut is_float = false;
        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            is_float = true;
            self.pos += 1;
            while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            let save = self.pos;
            self.pos += 1;
            if matches!(self.peek(0), Some('+' | '-')) {
                self.pos += 1;
            }
            if self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                is_float = true;
                while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
            } else {
                self.pos = save;
            }
        }
        let text: String = self.src[start..self.pos].iter().collect();
        if is_float {
            return match text.parse::<f64>() {
                Ok(d) => Ok(Tok::Double(d)),
                Err(_) => self.err(start, self.pos),
            };
        }
        self.int_suffix(start, text.parse::<u64>().ok())
    }

    fn int_suffix(&mut self, start: usize, v: Option<u64>) -> Result<Tok, SyntaxError> {
        let is_uint = matches!(self.peek(0), Some('u' | 'U'));
        if is_uint {
            self.pos += 1;
        }
        let Some(v) = v else {
            return Err(SyntaxError {
                offset: start,
                message: format!("invalid {} literal", if is_uint { "uint" } else { "int" }),
            });
        };
        Ok(if is_uint { Tok::Uint(v) } else { Tok::Int(v) })
    }

    fn string(&mut self, raw: bool, bytes: bool) -> Result<Tok, SyntaxError> {
        let start = self.pos;
        let q = self.peek(0).unwrap_or('\'');
        let triple = self.peek(1) == Some(q) && self.peek(2) == Some(q);
        self.pos += if triple { 3 } else { 1 };
        let mut buf: Vec<u8> = Vec::new();
        let push_char = |buf: &mut Vec<u8>, c: char| {
            let mut tmp = [0u8; 4];
            buf.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
        };
        loop {
            let Some(c) = self.peek(0) else {
                if triple {
                    // Like ANTLR's longest match: `""` is an empty string and
                    // the third quote starts an (unterminated) string.
                    self.pos = start + 2;
                    return Ok(Tok::Str(String::new()));
                }
                return self.err(start, self.pos);
            };
            if c == q && (!triple || (self.peek(1) == Some(q) && self.peek(2) == Some(q))) {
                self.pos += if triple { 3 } else { 1 };
                break;
            }
            if !triple && (c == '\n' || c == '\r') {
                return self.err(start, self.pos);
            }
            if c == '\\' && raw {
                // raw strings keep backslashes, but `\'` still does not end them
                push_char(&mut buf, c);
                self.pos += 1;
                if let Some(n) = self.peek(0)
                    && n == q
                    && !triple
                {
                    push_char(&mut buf, n);
                    self.pos += 1;
                }
                continue;
            }
            if c != '\\' {
                push_char(&mut buf, c);
                self.pos += 1;
                continue;
            }
            // escape sequence
            let esc_start = self.pos;
            self.pos += 1;
            let Some(e) = self.peek(0) else {
                return self.err(start, self.pos);
            };
            self.pos += 1;
            match e {
                'a' => buf.push(0x07),
                'b' => buf.push(0x08),
                'f' => buf.push(0x0c),
                'n' => buf.push(b'\n'),
                'r' => buf.push(b'\r'),
                't' => buf.push(b'\t'),
                'v' => buf.push(0x0b),
                '\\' | '\'' | '"' | '`' | '?' => push_char(&mut buf, e),
                'x' | 'X' | 'u' | 'U' => {
                    let n = match e {
                        'x' | 'X' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let digits: String = (0..n).filter_map(|i| self.peek(i)).collect();
                    if digits.chars().count() != n || !digits.chars().all(|c| c.is_ascii_hexdigit())
                    {
                        return self.err(start, self.pos + n);
                    }
                    self.pos += n;
                    let v = u32::from_str_radix(&digits, 16).unwrap_or(0);
                    if n == 2 && bytes {
                        buf.push(v as u8);
                    } else {
                        match char::from_u32(v) {
                            Some(ch) => push_char(&mut buf, ch),
                            None => return self.err(esc_start, self.pos),
                        }
                    }
                }
                '0'..='3' => {
                    let d1 = self.peek(0);
                    let d2 = self.peek(1);
                    match (d1, d2) {
                        (Some(a @ '0'..='7'), Some(b @ '0'..='7')) => {
                            self.pos += 2;
                            let v = (e as u32 - '0' as u32) * 64
                                + (a as u32 - '0' as u32) * 8
                                + (b as u32 - '0' as u32);
                            if bytes {
                                buf.push(v as u8);
                            } else {
                                push_char(&mut buf, char::from_u32(v).unwrap_or('\u{fffd}'));
                            }
                        }
                        _ => return self.err(start, self.pos),
                    }
                }
                _ => return self.err(start, self.pos),
            }
        }
        if bytes {
            Ok(Tok::Bytes(buf))
        } else {
            match String::from_utf8(buf) {
                Ok(s) => Ok(Tok::Str(s)),
                Err(_) => self.err(start, self.pos),
            }
        }
    }
}

pub(super) fn parse(src: &str) -> Result<Expr, SyntaxError> {
    let chars: Vec<char> = src.chars().collect();
    let tokens = Lexer {
        src: &chars,
        pos: 0,
    }
    .tokens()?;
    let mut p = Parser {
        src: &chars,
        toks: tokens,
        pos: 0,
        depth: 0,
        last_dot: 0,
    };
    let e = p.expr()?;
    if p.tok() != &Tok::Eof {
        return Err(p.error_here(format!(
            "Syntax error: extraneous input '{}' expecting <EOF>",
            p.text()
        )));
    }
    Ok(e)
}

struct Parser<'a> {
    src: &'a [char],
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    /// Offset of the `.` of the most recently built selection.
    last_dot: usize,
}

impl<'a> Parser<'a> {
    fn tok(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn peek_tok(&self, n: usize) -> &Tok {
        let i = (self.pos + n).min(self.toks.len() - 1);
        &self.toks[i].tok
    }

    fn start(&self) -> usize {
        self.toks[self.pos].start
    }

    fn text(&self) -> String {
        let t = &self.toks[self.pos];
        if t.tok == Tok::Eof {
            "<EOF>".into()
        } else {
            self.src[t.start..t.end].iter().collect()
        }
    }

    fn bump(&mut self) -> Tok {
        let t = self.toks[self.pos].tok.clone();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn error_here(&self, message: String) -> SyntaxError {
        SyntaxError {
            offset: self.start(),
            message,
        }
    }

    fn mismatched(&self, expecting: &str) -> SyntaxError {
        self.error_here(format!(
            "Syntax error: mismatched input '{}' expecting {}",
            self.text(),
            expecting
        ))
    }

    fn expect(&mut self, t: Tok, shown: &str) -> Result<(), SyntaxError> {
        if self.tok() == &t {
            self.bump();
            Ok(())
        } else if self.tok() == &Tok::Eof {
            Err(self.error_here(format!("Syntax error: missing '{shown}' at '<EOF>'")))
        } else {
            Err(self.mismatched(&format!("'{shown}'")))
        }
    }

    fn enter(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_here("expression recursion limit exceeded".into()));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, SyntaxError> {
        self.enter()?;
        let cond = self.or()?;
        let r = if self.tok() == &Tok::Question {
            self.bump();
            let then = self.or()?;
            self.expect(Tok::Colon, ":")?;
            let otherwise = self.expr()?;
            Expr::Cond(Box::new(cond), Box::new(then), Box::new(otherwise))
        } else {
            cond
        };
        self.depth -= 1;
        Ok(r)
    }

    fn or(&mut self) -> Result<Expr, SyntaxError> {
        let mut l = self.and()?;
        while self.tok() == &Tok::OrOr {
            self.bump();
            let r = self.and()?;
            l = Expr::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<Expr, SyntaxError> {
        let mut l = self.relation()?;
        while self.tok() == &Tok::AndAnd {
            self.bump();
            let r = self.relation()?;
            l = Expr::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn relation(&mut self) -> Result<Expr, SyntaxError> {
        let mut l = self.addition()?;
        loop {
            let op = match self.tok() {
                Tok::Lt => BinOp::Lt,
                Tok::Le => BinOp::Le,
                Tok::Gt => BinOp::Gt,
                Tok::Ge => BinOp::Ge,
                Tok::EqEq => BinOp::Eq,
                Tok::Ne => BinOp::Ne,
                Tok::In => BinOp::In,
                _ => return Ok(l),
            };
            self.bump();
            let r = self.addition()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn addition(&mut self) -> Result<Expr, SyntaxError> {
        let mut l = self.multiplication()?;
        loop {
            let op = match self.tok() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(l),
            };
            self.bump();
            let r = self.multiplication()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn multiplication(&mut self) -> Result<Expr, SyntaxError> {
        let mut l = self.unary()?;
        loop {
            let op = match self.tok() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                Tok::Percent => BinOp::Mod,
                _ => return Ok(l),
            };
            self.bump();
            let r = self.unary()?;
            l = Expr::Binary(op, Box::new(l), Box::new(r));
        }
    }

    fn unary(&mut self) -> Result<Expr, SyntaxError> {
        match self.tok() {
            Tok::Bang => {
                let mut n = 0;
                while self.tok() == &Tok::Bang {
                    self.bump();
                    n += 1;
                }
                let m = self.member()?;
                Ok(if n % 2 == 1 {
                    Expr::Unary(UnOp::Not, Box::new(m))
                } else {
                    m
                })
            }
            Tok::Minus => {
                let minus_at = self.start();
                let mut n = 0;
                while self.tok() == &Tok::Minus {
                    self.bump();
                    n += 1;
                }
                if n % 2 == 1 {
                    // A negative numeric literal (so that -9223372036854775808 fits).
                    let lit = match self.tok() {
                        Tok::Int(v) => {
                            let v = *v;
                            if v > (i64::MAX as u64) + 1 {
                                return Err(SyntaxError {
                                    offset: minus_at,
                                    message: "invalid int literal".into(),
                                });
                            }
                            Some(Value::Int((v as i128).wrapping_neg() as i64))
                        }
                        Tok::Double(d) => Some(Value::Double(-*d)),
                        _ => None,
                    };
                    if let Some(lit) = lit {
                        self.bump();
                        return self.member_suffix(Expr::Lit(lit));
                    }
                }
                let m = self.member()?;
                Ok(if n % 2 == 1 {
                    Expr::Unary(UnOp::Neg, Box::new(m))
                } else {
                    m
                })
            }
            _ => self.member(),
        }
    }

    fn member(&mut self) -> Result<Expr, SyntaxError> {
        let p = self.primary()?;
        self.member_suffix(p)
    }

    fn member_suffix(&mut self, mut e: Expr) -> Result<Expr, SyntaxError> {
        loop {
            match self.tok() {
                Tok::Dot => {
                    let dot = self.start();
                    self.bump();
                    let optional = if self.tok() == &Tok::Question {
                        self.bump();
                        true
                    } else {
                        false
                    };
                    let name = match self.tok().clone() {
                        Tok::Ident(n) => {
                            self.bump();
                            n
                        }
                        Tok::EscIdent(n) => {
                            self.bump();
                            n
                        }
                        _ => return Err(self.mismatched("{IDENTIFIER, ESC_IDENTIFIER}")),
                    };
                    if self.tok() == &Tok::LParen && !optional {
                        self.bump();
                        let args = self.args()?;
                        e = self.make_call(Some(e), name, args)?;
                    } else {
                        self.last_dot = dot;
                        e = Expr::Select {
                            operand: Box::new(e),
                            field: name,
                            optional,
                        };
                    }
                }
                Tok::LBracket => {
                    self.bump();
                    let optional = if self.tok() == &Tok::Question {
                        self.bump();
                        true
                    } else {
                        false
                    };
                    let idx = self.expr()?;
                    self.expect(Tok::RBracket, "]")?;
                    e = Expr::Index {
                        operand: Box::new(e),
                        index: Box::new(idx),
                        optional,
                    };
                }
                _ => return Ok(e),
            }
        }
    }

    /// Arguments after `(`, through the closing `)`; each with its offset.
    fn args(&mut self) -> Result<Vec<(Expr, usize)>, SyntaxError> {
        let mut args = Vec::new();
        if self.tok() == &Tok::RParen {
            self.bump();
            return Ok(args);
        }
        loop {
            let at = self.start();
            if self.tok() == &Tok::Eof {
                return Err(self.mismatched(
                    "{'[', '{', '(', ')', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}",
                ));
            }
            let arg = self.expr()?;
            // cel-go positions a selection at its dot
            let at = if matches!(arg, Expr::Select { .. }) {
                self.last_dot
            } else {
                at
            };
            args.push((arg, at));
            match self.tok() {
                Tok::Comma => {
                    self.bump();
                }
                Tok::RParen => {
                    self.bump();
                    return Ok(args);
                }
                Tok::Eof => {
                    return Err(self.error_here("Syntax error: missing ')' at '<EOF>'".into()));
                }
                _ => return Err(self.mismatched("{')', ','}")),
            }
        }
    }

    fn make_call(
        &mut self,
        target: Option<Expr>,
        name: String,
        args: Vec<(Expr, usize)>,
    ) -> Result<Expr, SyntaxError> {
        if target.is_none() && name == "has" && args.len() == 1 {
            let (arg, at) = args
                .into_iter()
                .next()
                .unwrap_or((Expr::Lit(Value::Null), 0));
            return match arg {
                Expr::Select {
                    operand,
                    field,
                    optional: false,
                } => Ok(Expr::Has { operand, field }),
                _ => Err(SyntaxError {
                    offset: at,
                    message: "invalid argument to has() macro".into(),
                }),
            };
        }
        if let Some(t) = target {
            let kind = match (name.as_str(), args.len()) {
                ("all", 2) => Some(CompKind::All),
                ("exists", 2) => Some(CompKind::Exists),
                ("exists_one", 2) => Some(CompKind::ExistsOne),
                ("map", 2 | 3) => Some(CompKind::Map),
                ("filter", 2) => Some(CompKind::Filter),
                ("optMap", 2) => Some(CompKind::OptMap),
                ("optFlatMap", 2) => Some(CompKind::OptFlatMap),
                _ => None,
            };
            if let Some(kind) = kind {
                let mut it = args.into_iter();
                let (v, at) = it.next().unwrap_or((Expr::Lit(Value::Null), 0));
                let var = match v {
                    Expr::Ident {
                        name,
                        absolute: false,
                    } => name,
                    _ => {
                        return Err(SyntaxError {
                            offset: at,
                            message: "argument is not an identifier".into(),
                        });
                    }
                };
                let rest: Vec<Expr> = it.map(|(e, _)| e).collect();
                let (filter, step) = match rest.len() {
                    2 => {
                        let mut r = rest.into_iter();
                        let f = r.next().map(Box::new);
                        (f, r.next())
                    }
                    _ => (None, rest.into_iter().next()),
                };
                return Ok(Expr::Comprehension {
                    kind,
                    var,
                    range: Box::new(t),
                    filter,
                    step: Box::new(step.unwrap_or(Expr::Lit(Value::Null))),
                });
            }
            return Ok(Expr::Call {
                target: Some(Box::new(t)),
                name,
                args: args.into_iter().map(|(e, _)| e).collect(),
            });
        }
        Ok(Expr::Call {
            target: None,
            name,
            args: args.into_iter().map(|(e, _)| e).collect(),
        })
    }

    fn primary(&mut self) -> Result<Expr, SyntaxError> {
        let start = self.start();
        match self.tok().clone() {
            Tok::Dot => {
                self.bump();
                let name = match self.tok().clone() {
                    Tok::Ident(n) => n,
                    _ => return Err(self.mismatched("IDENTIFIER")),
                };
                self.bump();
                if self.tok() == &Tok::LParen {
                    self.bump();
                    let args = self.args()?;
                    return self.make_call(None, name, args);
                }
                Ok(Expr::Ident {
                    name,
                    absolute: true,
                })
            }
            Tok::Ident(name) => {
                if RESERVED.contains(&name.as_str()) {
                    return Err(self.error_here(format!("reserved identifier: {name}")));
                }
                self.bump();
                if self.tok() == &Tok::LParen {
                    self.bump();
                    let args = self.args()?;
                    return self.make_call(None, name, args);
                }
                if self.tok() == &Tok::LBrace {
                    return Err(self.error_here("message construction is not supported".into()));
                }
                Ok(Expr::Ident {
                    name,
                    absolute: false,
                })
            }
            Tok::LParen => {
                self.bump();
                let e = self.expr()?;
                self.expect(Tok::RParen, ")")?;
                Ok(e)
            }
            Tok::LBracket => {
                self.bump();
                let mut elems = Vec::new();
                if self.tok() == &Tok::Comma && self.peek_tok(1) == &Tok::RBracket {
                    self.bump();
                }
                while self.tok() != &Tok::RBracket {
                    let optional = if self.tok() == &Tok::Question {
                        self.bump();
                        true
                    } else {
                        false
                    };
                    elems.push((self.expr()?, optional));
                    match self.tok() {
                        Tok::Comma => {
                            self.bump();
                        }
                        Tok::RBracket => {}
                        _ => return Err(self.mismatched("{']', ','}")),
                    }
                }
                self.bump();
                Ok(Expr::List(elems))
            }
            Tok::LBrace => {
                self.bump();
                let mut entries = Vec::new();
                if self.tok() == &Tok::Comma && self.peek_tok(1) == &Tok::RBrace {
                    self.bump();
                }
                while self.tok() != &Tok::RBrace {
                    let optional = if self.tok() == &Tok::Question {
                        self.bump();
                        true
                    } else {
                        false
                    };
                    let k = self.expr()?;
                    if self.tok() != &Tok::Colon {
                        return Err(self.error_here(format!(
                            "Syntax error: missing ':' at '{}'",
                            self.text()
                        )));
                    }
                    self.bump();
                    let v = self.expr()?;
                    entries.push((k, v, optional));
                    match self.tok() {
                        Tok::Comma => {
                            self.bump();
                        }
                        Tok::RBrace => {}
                        _ => return Err(self.mismatched("{'}', ','}")),
                    }
                }
                self.bump();
                Ok(Expr::Map(entries))
            }
            Tok::Int(v) => {
                self.bump();
                match i64::try_from(v) {
                    Ok(i) => Ok(Expr::Lit(Value::Int(i))),
                    Err(_) => Err(SyntaxError {
                        offset: start,
                        message: "invalid int literal".into(),
                    }),
                }
            }
            Tok::Uint(v) => {
                self.bump();
                Ok(Expr::Lit(Value::Uint(v)))
            }
            Tok::Double(d) => {
                self.bump();
                Ok(Expr::Lit(Value::Double(d)))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::Lit(Value::from(s)))
            }
            Tok::Bytes(b) => {
                self.bump();
                Ok(Expr::Lit(Value::Bytes(Arc::from(b))))
            }
            Tok::True => {
                self.bump();
                Ok(Expr::Lit(Value::Bool(true)))
            }
            Tok::False => {
                self.bump();
                Ok(Expr::Lit(Value::Bool(false)))
            }
            Tok::Null => {
                self.bump();
                Ok(Expr::Lit(Value::Null))
            }
            Tok::Minus | Tok::Bang => self.unary(),
            _ => {
                if matches!(
                    self.tok(),
                    Tok::Plus | Tok::Star | Tok::Slash | Tok::Percent
                ) && !matches!(self.peek_tok(1), Tok::Eof)
                {
                    return Err(self.error_here(format!(
                        "Syntax error: extraneous input '{}' expecting {}",
                        self.text(),
                        EXPECT_EXPR
                    )));
                }
                Err(self.mismatched(EXPECT_EXPR))
            }
        }
    }
}
