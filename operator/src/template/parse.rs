//! Lexer and parser of Go's text/template language, with configurable delimiters: the
//! syntax tree `exec` walks. Positions are byte offsets into the template text, so errors
//! can name `name:line:column` as Go does.

use std::collections::BTreeMap;

/// A parse failure, already in Go's words: `template: NAME:LINE: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    /// `<< pipeline >>`: prints the pipeline's value unless it declares variables.
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    /// `<< template "name" pipeline >>`.
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break(usize),
    Continue(usize),
}

/// The shared shape of if, range and with.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    pub pos: usize,
    /// Declared (`:=`) or assigned (`=`) variables, with their `$`.
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub pos: usize,
    /// End of the command's text, for error messages.
    pub end: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.` alone.
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number(usize, Number, String),
    Str(usize, String),
    /// `.a.b`: fields of dot.
    Field(usize, Vec<String>),
    /// `$x.a.b` (fields may be empty).
    Variable(usize, String, Vec<String>),
    /// A function name.
    Identifier(usize, String),
    /// `(pipeline)`.
    Pipe(usize, Box<Pipe>),
    /// `term.a.b` where term is an identifier or a parenthesised pipeline.
    Chain(usize, Box<Arg>, Vec<String>),
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Dot(p)
            | Arg::Nil(p)
            | Arg::Bool(p, _)
            | Arg::Number(p, ..)
            | Arg::Str(p, _)
            | Arg::Field(p, _)
            | Arg::Variable(p, ..)
            | Arg::Identifier(p, _)
            | Arg::Pipe(p, _)
            | Arg::Chain(p, ..) => *p,
        }
    }
}

/// A parsed template and the templates it defines.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub name: String,
    pub text: String,
    pub root: Vec<Node>,
    pub defined: BTreeMap<String, Vec<Node>>,
}

impl Parsed {
    /// `NAME:LINE:COL` of a byte offset, as Go's ErrorContext writes it (the column counts
    /// bytes from 0).
    pub fn location(&self, pos: usize) -> String {
        let pos = pos.min(self.text.len());
        let before = &self.text[..pos];
        let line = 1 + before.matches('\n').count();
        let col = match before.rfind('\n') {
            Some(nl) => pos - nl - 1,
            None => pos,
        };
        format!("{}:{line}:{col}", self.name)
    }
}

// ---- lexer ----

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    Left,
    Right,
    Space,
    Identifier(String),
    Keyword(&'static str),
    Field(String),
    Variable(String),
    Str(String),
    RawStr(String),
    Char(String),
    Number(String),
    Bool(bool),
    Nil,
    Dot,
    Pipe,
    LeftParen,
    RightParen,
    Declare,
    Assign,
    Comma,
    Eof,
}

#[derive(Debug, Clone)]
struct Item {
    tok: Tok,
    pos: usize,
}

const KEYWORDS: &[&str] = &[
    "block", "break", "continue", "define", "else", "end", "if", "range", "template", "with",
];

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

struct Lexer<'a> {
    name: &'a str,
    src: &'a str,
    left: &'a str,
    right: &'a str,
    pos: usize,
    items: Vec<Item>,
    paren_depth: usize,
}

impl<'a> Lexer<'a> {
    fn error(&self, pos: usize, msg: &str) -> ParseError {
        let line = 1 + self.src[..pos.min(self.src.len())].matches('\n').count();
        ParseError(format!("template: {}:{line}: {msg}", self.name))
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn run(mut self) -> Result<Vec<Item>, ParseError> {
        loop {
            // Text up to the next left delimiter.
            let Some(offset) = self.rest().find(self.left) else {
                if self.pos < self.src.len() {
                    self.push(Tok::Text(self.rest().to_string()), self.pos);
                }
                self.push(Tok::Eof, self.src.len());
                return Ok(self.items);
            };
            let delim_at = self.pos + offset;
            let after = &self.src[delim_at + self.left.len()..];
            let trim_left =
                after.len() >= 2 && after.as_bytes()[0] == b'-' && is_space(after.as_bytes()[1]);
            let mut text = &self.src[self.pos..delim_at];
            if trim_left {
                text = text.trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8));
            }
            if !text.is_empty() {
                self.push(Tok::Text(text.to_string()), self.pos);
            }
            self.pos = delim_at + self.left.len() + if trim_left { 2 } else { 0 };
            // A comment is a whole action.
            let inner = self
                .rest()
                .trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
            if inner.starts_with("/*") && (trim_left || self.rest().starts_with("/*")) {
                let start = self.pos + (self.rest().len() - inner.len());
                let Some(end) = self.src[start + 2..].find("*/") else {
                    return Err(self.error(start, "unclosed comment"));
                };
                self.pos = start + 2 + end + 2;
                let (delim, trim_right) = self.at_right_delim();
                if !delim {
                    return Err(self.error(self.pos, "comment ends before closing delimiter"));
                }
                self.pos += self.right.len() + if trim_right { 2 } else { 0 };
                if trim_right {
                    self.trim_following_space();
                }
                continue;
            }
            self.push(Tok::Left, delim_at);
            self.paren_depth = 0;
            self.inside_action()?;
        }
    }

    fn trim_following_space(&mut self) {
        let rest = self.rest();
        let trimmed = rest.trim_start_matches(|c: char| c.is_ascii() && is_space(c as u8));
        self.pos += rest.len() - trimmed.len();
    }

    /// At the right delimiter, optionally preceded by a trim marker (`space -`).
    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest().as_bytes();
        if rest.len() >= 2
            && is_space(rest[0])
            && rest[1] == b'-'
            && self.rest()[2..].starts_with(self.right)
        {
            return (true, true);
        }
        (self.rest().starts_with(self.right), false)
    }

    fn push(&mut self, tok: Tok, pos: usize) {
        self.items.push(Item { tok, pos });
    }

    fn inside_action(&mut self) -> Result<(), ParseError> {
        loop {
            let (delim, trim_right) = self.at_right_delim();
            if delim {
                if self.paren_depth > 0 {
                    return Err(self.error(self.pos, "unclosed left paren"));
                }
                let at = self.pos + if trim_right { 2 } else { 0 };
                if trim_right {
                    self.push(Tok::Space, self.pos);
                }
                self.push(Tok::Right, at);
                self.pos = at + self.right.len();
                if trim_right {
                    self.trim_following_space();
                }
                return Ok(());
            }
            let start = self.pos;
            let Some(c) = self.rest().chars().next() else {
                return Err(self.error(start, "unclosed action"));
            };
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    let rest = self.rest();
                    let mut n = 0;
                    for (i, ch) in rest.char_indices() {
                        if !matches!(ch, ' ' | '\t' | '\r' | '\n') {
                            break;
                        }
                        // Stop before a trim marker so it is seen as one.
                        if rest[i..].len() >= 2
                            && rest.as_bytes()[i + 1] == b'-'
                            && rest[i + 2..].starts_with(self.right)
                        {
                            break;
                        }
                        n = i + ch.len_utf8();
                    }
                    if n == 0 {
                        n = 1;
                    }
                    self.pos += n;
                    self.push(Tok::Space, start);
                }
                '=' => {
                    self.pos += 1;
                    self.push(Tok::Assign, start);
                }
                ':' => {
                    if !self.rest().starts_with(":=") {
                        return Err(self.error(start, "expected :="));
                    }
                    self.pos += 2;
                    self.push(Tok::Declare, start);
                }
                '|' => {
                    self.pos += 1;
                    self.push(Tok::Pipe, start);
                }
                ',' => {
                    self.pos += 1;
                    self.push(Tok::Comma, start);
                }
                '(' => {
                    self.pos += 1;
                    self.paren_depth += 1;
                    self.push(Tok::LeftParen, start);
                }
                ')' => {
                    if self.paren_depth == 0 {
                        return Err(self.error(start, "unexpected right paren"));
                    }
                    self.pos += 1;
                    self.paren_depth -= 1;
                    self.push(Tok::RightParen, start);
                }
                '"' => {
                    let text = self.quoted('"')?;
                    self.push(Tok::Str(text), start);
                }
                '`' => {
                    let Some(end) = self.src[start + 1..].find('`') else {
                        return Err(self.error(start, "unterminated raw quoted string"));
                    };
                    let text = self.src[start..start + 1 + end + 1].to_string();
                    self.pos = start + end + 2;
                    self.push(Tok::RawStr(text), start);
                }
                '\'' => {
                    let text = self.quoted('\'')?;
                    self.push(Tok::Char(text), start);
                }
                '$' => {
                    let name = self.word(1);
                    self.push(Tok::Variable(name), start);
                    self.check_terminator()?;
                }
                '.' => {
                    let next = self.rest()[1..].chars().next();
                    if next.is_some_and(|d| d.is_ascii_digit()) {
                        self.number()?;
                    } else if next.is_some_and(is_alnum) {
                        let name = self.word(1);
                        self.push(Tok::Field(name), start);
                        self.check_terminator()?;
                    } else {
                        self.pos += 1;
                        self.push(Tok::Dot, start);
                    }
                }
                '+' | '-' | '0'..='9' => self.number()?,
                c if is_alnum(c) => {
                    let word = self.word(0);
                    let tok = match word.as_str() {
                        "true" => Tok::Bool(true),
                        "false" => Tok::Bool(false),
                        "nil" => Tok::Nil,
                        w => match KEYWORDS.iter().find(|k| **k == w) {
                            Some(k) => Tok::Keyword(k),
                            None => Tok::Identifier(word),
                        },
                    };
                    self.push(tok, start);
                    self.check_terminator()?;
                }
                c => {
                    return Err(
                        self.error(start, &format!("unrecognized character in action: {c:?}"))
                    );
                }
            }
        }
    }

    /// A run of alphanumerics after `skip` bytes; the whole text including the prefix.
    fn word(&mut self, skip: usize) -> String {
        let start = self.pos;
        let rest = &self.src[start + skip..];
        let len = rest.find(|c: char| !is_alnum(c)).unwrap_or(rest.len());
        self.pos = start + skip + len;
        self.src[start..self.pos].to_string()
    }

    fn check_terminator(&self) -> Result<(), ParseError> {
        let rest = self.rest();
        let Some(c) = rest.chars().next() else {
            return Ok(());
        };
        if matches!(
            c,
            ' ' | '\t' | '\r' | '\n' | '.' | ',' | '|' | ':' | ')' | '(' | '='
        ) || rest.starts_with(self.right)
        {
            return Ok(());
        }
        Err(self.error(self.pos, &format!("bad character {c:?}")))
    }

    fn quoted(&mut self, quote: char) -> Result<String, ParseError> {
        let start = self.pos;
        let mut chars = self.src[start + 1..].char_indices();
        loop {
            match chars.next() {
                Some((_, '\\')) => {
                    if chars.next().is_none() {
                        break;
                    }
                }
                Some((_, '\n')) | None => break,
                Some((i, c)) if c == quote => {
                    self.pos = start + 1 + i + 1;
                    return Ok(self.src[start..self.pos].to_string());
                }
                Some(_) => {}
            }
        }
        Err(self.error(
            start,
            if quote == '"' {
                "unterminated quoted string"
            } else {
                "unterminated character constant"
            },
        ))
    }

    fn number(&mut self) -> Result<(), ParseError> {
        let start = self.pos;
        let rest = &self.src[start..];
        let len = rest
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_alphanumeric()
                    || c == '_'
                    || c == '.'
                    || ((c == '+' || c == '-')
                        && (i == 0 || matches!(rest.as_bytes()[i - 1], b'e' | b'E' | b'p' | b'P'))))
            })
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        self.pos = start + len;
        self.push(Tok::Number(rest[..len].to_string()), start);
        self.check_terminator()
    }
}

// ---- parser ----

pub const BUILTINS: &[&str] = &[
    "and", "call", "html", "index", "slice", "js", "len", "not", "or", "print", "printf",
    "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne",
];

struct Parser<'a> {
    name: &'a str,
    src: &'a str,
    items: Vec<Item>,
    at: usize,
    funcs: &'a dyn Fn(&str) -> bool,
    vars: Vec<String>,
    range_depth: usize,
    defined: BTreeMap<String, Vec<Node>>,
}

enum End {
    End,
    Else(usize),
}

impl<'a> Parser<'a> {
    fn error(&self, pos: usize, msg: impl std::fmt::Display) -> ParseError {
        let line = 1 + self.src[..pos.min(self.src.len())].matches('\n').count();
        ParseError(format!("template: {}:{line}: {msg}", self.name))
    }

    fn peek(&self) -> &Item {
        &self.items[self.at.min(self.items.len() - 1)]
    }

    fn next(&mut self) -> Item {
        let item = self.peek().clone();
        if self.at < self.items.len() {
            self.at += 1;
        }
        item
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let item = self.next();
            if item.tok != Tok::Space {
                return item;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let save = self.at;
        let item = self.next_non_space();
        self.at = save;
        item
    }

    fn unexpected(&self, item: &Item, context: &str) -> ParseError {
        let what = match &item.tok {
            Tok::Eof => "EOF".to_string(),
            Tok::Right => "<right delim>".to_string(),
            Tok::RightParen => "\")\"".to_string(),
            Tok::Keyword(k) => format!("<{k}>"),
            tok => format!("{tok:?}"),
        };
        self.error(item.pos, format!("unexpected {what} in {context}"))
    }

    /// Nodes until EOF (top level) or until `end`/`else` (inside a control structure).
    fn list(&mut self, top: bool) -> Result<(Vec<Node>, Option<End>), ParseError> {
        let mut nodes = Vec::new();
        loop {
            let item = self.next();
            match item.tok {
                Tok::Eof => {
                    if top {
                        return Ok((nodes, None));
                    }
                    return Err(self.error(item.pos, "unexpected EOF"));
                }
                Tok::Text(t) => nodes.push(Node::Text(t)),
                Tok::Left => {
                    let keyword = self.peek_non_space();
                    match keyword.tok {
                        Tok::Keyword("end") => {
                            self.next_non_space();
                            self.expect_right("end")?;
                            if top {
                                return Err(self.error(keyword.pos, "unexpected {{end}}"));
                            }
                            return Ok((nodes, Some(End::End)));
                        }
                        Tok::Keyword("else") => {
                            self.next_non_space();
                            if top {
                                return Err(self.error(keyword.pos, "unexpected {{else}}"));
                            }
                            return Ok((nodes, Some(End::Else(keyword.pos))));
                        }
                        _ => {
                            if let Some(node) = self.action()? {
                                nodes.push(node);
                            }
                        }
                    }
                }
                tok => return Err(self.error(item.pos, format!("unexpected {tok:?}"))),
            }
        }
    }

    fn expect_right(&mut self, context: &str) -> Result<(), ParseError> {
        let item = self.next_non_space();
        if item.tok != Tok::Right {
            return Err(self.unexpected(&item, context));
        }
        Ok(())
    }

    fn action(&mut self) -> Result<Option<Node>, ParseError> {
        let item = self.peek_non_space();
        match item.tok {
            Tok::Keyword("if") => {
                self.next_non_space();
                Ok(Some(Node::If(self.branch("if", item.pos)?)))
            }
            Tok::Keyword("with") => {
                self.next_non_space();
                Ok(Some(Node::With(self.branch("with", item.pos)?)))
            }
            Tok::Keyword("range") => {
                self.next_non_space();
                Ok(Some(Node::Range(self.branch("range", item.pos)?)))
            }
            Tok::Keyword("break") | Tok::Keyword("continue") => {
                self.next_non_space();
                let is_break = item.tok == Tok::Keyword("break");
                let word = if is_break { "break" } else { "continue" };
                if self.range_depth == 0 {
                    return Err(
                        self.error(item.pos, format!("{{{{{word}}}}} outside {{{{range}}}}"))
                    );
                }
                self.expect_right(word)?;
                Ok(Some(if is_break {
                    Node::Break(item.pos)
                } else {
                    Node::Continue(item.pos)
                }))
            }
            Tok::Keyword("template") => {
                self.next_non_space();
                let (name, pos) = self.template_name("template clause")?;
                let pipe = if self.peek_non_space().tok == Tok::Right {
                    self.next_non_space();
                    None
                } else {
                    Some(self.pipeline("template clause", false)?)
                };
                Ok(Some(Node::Template { pos, name, pipe }))
            }
            Tok::Keyword("define") | Tok::Keyword("block") => {
                self.next_non_space();
                let is_block = item.tok == Tok::Keyword("block");
                let (name, pos) = self.template_name(if is_block {
                    "block clause"
                } else {
                    "define clause"
                })?;
                let pipe = if is_block {
                    Some(self.pipeline("block clause", false)?)
                } else {
                    self.expect_right("define clause")?;
                    None
                };
                let saved = std::mem::take(&mut self.vars);
                self.vars.push("$".into());
                let (body, end) = self.list(false)?;
                self.vars = saved;
                if let Some(End::Else(pos)) = end {
                    return Err(self.error(pos, "unexpected {{else}}"));
                }
                self.defined.insert(name.clone(), body);
                Ok(if is_block {
                    Some(Node::Template { pos, name, pipe })
                } else {
                    None
                })
            }
            Tok::Keyword(k) => Err(self.error(item.pos, format!("unexpected <{k}>"))),
            _ => Ok(Some(Node::Action(self.pipeline("command", true)?))),
        }
    }

    fn template_name(&mut self, context: &str) -> Result<(String, usize), ParseError> {
        let item = self.next_non_space();
        match &item.tok {
            Tok::Str(s) | Tok::RawStr(s) => unquote(s)
                .map(|n| (n, item.pos))
                .map_err(|e| self.error(item.pos, e)),
            _ => Err(self.unexpected(&item, context)),
        }
    }

    /// if/with/range: pipeline, list, optional else (or `else if`/`else with`), end.
    fn branch(&mut self, context: &'static str, pos: usize) -> Result<Branch, ParseError> {
        let vars_before = self.vars.len();
        let pipe = self.pipeline(context, context == "range")?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.list(false)?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let mut else_list = Vec::new();
        if let Some(End::Else(else_pos)) = end {
            let next = self.peek_non_space();
            let chained = (context == "if" && next.tok == Tok::Keyword("if"))
                || (context == "with" && next.tok == Tok::Keyword("with"));
            if chained {
                // `else if` is `else` + a nested if that shares this end.
                self.next_non_space();
                let inner = self.branch(context, else_pos)?;
                else_list.push(if context == "if" {
                    Node::If(inner)
                } else {
                    Node::With(inner)
                });
            } else {
                self.expect_right("else")?;
                let (list, end) = self.list(false)?;
                if let Some(End::Else(p)) = end {
                    return Err(self.error(p, "expected end; found {{else}}"));
                }
                else_list = list;
            }
        }
        self.vars.truncate(vars_before);
        Ok(Branch {
            pos,
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, context: &str, allow_two_vars: bool) -> Result<Pipe, ParseError> {
        let start = self.peek_non_space().pos;
        let mut decl = Vec::new();
        let mut is_assign = false;
        // Declarations: `$x :=`, `$x =`, `$i, $v :=`.
        let save = self.at;
        let first = self.next_non_space();
        if let Tok::Variable(name) = &first.tok {
            let after = self.next_non_space();
            match after.tok {
                Tok::Declare | Tok::Assign => {
                    is_assign = after.tok == Tok::Assign;
                    if is_assign && !self.vars.contains(name) {
                        return Err(self.error(first.pos, format!("undefined variable {name:?}")));
                    }
                    decl.push(name.clone());
                }
                Tok::Comma if allow_two_vars => {
                    let second = self.next_non_space();
                    let Tok::Variable(second_name) = &second.tok else {
                        return Err(self.error(second.pos, "range can only initialize variables"));
                    };
                    let op = self.next_non_space();
                    if op.tok != Tok::Declare && op.tok != Tok::Assign {
                        return Err(self.unexpected(&op, "range"));
                    }
                    is_assign = op.tok == Tok::Assign;
                    decl.push(name.clone());
                    decl.push(second_name.clone());
                }
                _ => self.at = save,
            }
        } else {
            self.at = save;
        }
        let mut cmds = Vec::new();
        loop {
            let item = self.peek_non_space();
            match item.tok {
                Tok::Right | Tok::RightParen => {
                    let end = self.next_non_space();
                    let expected_paren = context == "parenthesized pipeline";
                    if (end.tok == Tok::RightParen) != expected_paren {
                        return Err(self.unexpected(&end, context));
                    }
                    if cmds.is_empty() {
                        return Err(self.error(item.pos, format!("missing value for {context}")));
                    }
                    for (i, cmd) in cmds.iter().enumerate().skip(1) {
                        let cmd: &Command = cmd;
                        if matches!(
                            cmd.args[0],
                            Arg::Bool(..)
                                | Arg::Dot(_)
                                | Arg::Nil(_)
                                | Arg::Number(..)
                                | Arg::Str(..)
                        ) {
                            return Err(self.error(
                                cmd.pos,
                                format!("non executable command in pipeline stage {}", i + 1),
                            ));
                        }
                    }
                    // Declared variables are visible from here on.
                    if !is_assign {
                        self.vars.extend(decl.iter().cloned());
                    }
                    return Ok(Pipe {
                        pos: start,
                        decl,
                        is_assign,
                        cmds,
                    });
                }
                _ => cmds.push(self.command()?),
            }
        }
    }

    fn command(&mut self) -> Result<Command, ParseError> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            let item = self.peek_non_space();
            match item.tok {
                Tok::Right | Tok::RightParen => break,
                Tok::Pipe => {
                    self.next_non_space();
                    if args.is_empty() {
                        return Err(self.error(item.pos, "missing value for command"));
                    }
                    return Ok(Command {
                        pos,
                        end: item.pos,
                        args,
                    });
                }
                _ => {
                    self.next_non_space();
                    let operand = self.operand(item)?;
                    args.push(operand);
                    // Operands must be separated by spaces.
                    match self.peek().tok {
                        Tok::Space | Tok::Right | Tok::RightParen | Tok::Pipe => {}
                        _ => {
                            let bad = self.peek().clone();
                            return Err(self.unexpected(&bad, "operand"));
                        }
                    }
                }
            }
        }
        if args.is_empty() {
            return Err(self.error(pos, "empty command"));
        }
        let end = self.peek_non_space().pos;
        Ok(Command { pos, end, args })
    }

    fn operand(&mut self, item: Item) -> Result<Arg, ParseError> {
        let term = self.term(item)?;
        let mut fields = Vec::new();
        while let Tok::Field(f) = &self.peek().tok {
            fields.push(f[1..].to_string());
            self.next();
        }
        if fields.is_empty() {
            return Ok(term);
        }
        Ok(match term {
            Arg::Field(pos, mut own) => {
                own.extend(fields);
                Arg::Field(pos, own)
            }
            Arg::Variable(pos, name, mut own) => {
                own.extend(fields);
                Arg::Variable(pos, name, own)
            }
            Arg::Bool(pos, _)
            | Arg::Str(pos, _)
            | Arg::Number(pos, ..)
            | Arg::Nil(pos)
            | Arg::Dot(pos) => {
                return Err(self.error(pos, "unexpected . after term"));
            }
            other => {
                let pos = other.pos();
                Arg::Chain(pos, Box::new(other), fields)
            }
        })
    }

    fn term(&mut self, item: Item) -> Result<Arg, ParseError> {
        let pos = item.pos;
        Ok(match item.tok {
            Tok::Identifier(name) => {
                if !(self.funcs)(&name) && !BUILTINS.contains(&name.as_str()) {
                    return Err(self.error(pos, format!("function {name:?} not defined")));
                }
                Arg::Identifier(pos, name)
            }
            Tok::Dot => Arg::Dot(pos),
            Tok::Nil => Arg::Nil(pos),
            Tok::Bool(b) => Arg::Bool(pos, b),
            Tok::Variable(name) => {
                if !self.vars.contains(&name) {
                    return Err(self.error(pos, format!("undefined variable {name:?}")));
                }
                Arg::Variable(pos, name, Vec::new())
            }
            Tok::Field(f) => Arg::Field(pos, vec![f[1..].to_string()]),
            Tok::Str(s) | Tok::RawStr(s) => {
                Arg::Str(pos, unquote(&s).map_err(|e| self.error(pos, e))?)
            }
            Tok::Char(s) => {
                let text = unquote(&format!("\"{}\"", &s[1..s.len() - 1]))
                    .map_err(|e| self.error(pos, e))?;
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Arg::Number(pos, Number::Int(c as i64), s),
                    _ => return Err(self.error(pos, format!("malformed character constant: {s}"))),
                }
            }
            Tok::Number(text) => Arg::Number(
                pos,
                parse_number(&text).map_err(|e| self.error(pos, e))?,
                text,
            ),
            Tok::LeftParen => Arg::Pipe(
                pos,
                Box::new(self.pipeline("parenthesized pipeline", false)?),
            ),
            _ => return Err(self.unexpected(&item, "operand")),
        })
    }
}

/// A Go number literal: ints (decimal, 0x, 0o, 0b, legacy octal, `_` separators, chars
/// excluded), floats; an integral float is still a float (Go hands it to an interface
/// parameter as float64).
fn parse_number(text: &str) -> Result<Number, String> {
    let bad = || format!("bad number syntax: {text:?}");
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let int = if let Some(hex) = lower.strip_prefix("0x") {
        if hex.contains('p') || hex.contains('.') {
            None
        } else {
            Some(i64::from_str_radix(hex, 16).map_err(|_| bad())?)
        }
    } else if let Some(oct) = lower.strip_prefix("0o") {
        Some(i64::from_str_radix(oct, 8).map_err(|_| bad())?)
    } else if let Some(bin) = lower.strip_prefix("0b") {
        Some(i64::from_str_radix(bin, 2).map_err(|_| bad())?)
    } else if lower.chars().all(|c| c.is_ascii_digit()) && !lower.is_empty() {
        if lower.len() > 1 && lower.starts_with('0') {
            Some(i64::from_str_radix(&lower[1..], 8).map_err(|_| bad())?)
        } else {
            match lower.parse::<i64>() {
                Ok(i) => Some(i),
                Err(_) => return Err(format!("integer overflow: {text:?}")),
            }
        }
    } else {
        None
    };
    if let Some(i) = int {
        return Ok(Number::Int(if negative { -i } else { i }));
    }
    let f: f64 = lower.parse().map_err(|_| bad())?;
    if !lower.chars().any(|c| matches!(c, '.' | 'e' | 'p')) {
        return Err(bad());
    }
    Ok(Number::Float(if negative { -f } else { f }))
}

/// Go's strconv.Unquote for "..." and `...` literals.
pub fn unquote(s: &str) -> Result<String, String> {
    let bad = || "invalid syntax".to_string();
    if let Some(raw) = s.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        return Ok(raw.replace('\r', ""));
    }
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or_else(bad)?;
    let mut out = String::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut chars = inner.chars().peekable();
    let flush = |out: &mut String, bytes: &mut Vec<u8>| {
        if !bytes.is_empty() {
            out.push_str(&String::from_utf8_lossy(bytes));
            bytes.clear();
        }
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            flush(&mut out, &mut bytes);
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or_else(bad)?;
        let mut hex = |n: usize| -> Result<u32, String> {
            let digits: String = (0..n).filter_map(|_| chars.next()).collect();
            if digits.len() != n {
                return Err(bad());
            }
            u32::from_str_radix(&digits, 16).map_err(|_| bad())
        };
        match e {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '"' => out.push('"'),
            '\'' => return Err(bad()),
            'x' => {
                bytes.push(hex(2)? as u8);
                continue;
            }
            'u' => out.push(char::from_u32(hex(4)?).ok_or_else(bad)?),
            'U' => out.push(char::from_u32(hex(8)?).ok_or_else(bad)?),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = chars.next().and_then(|c| c.to_digit(8)).ok_or_else(bad)?;
                    v = v * 8 + d;
                }
                if v > 255 {
                    return Err(bad());
                }
                bytes.push(v as u8);
                continue;
            }
            _ => return Err(bad()),
        }
        flush(&mut out, &mut bytes);
    }
    flush(&mut out, &mut bytes);
    Ok(out)
}

/// Parses `text` with the delimiters; `is_func` says which identifiers are functions
/// (Go refuses an unknown function at parse time).
pub fn parse(
    name: &str,
    text: &str,
    delims: (&str, &str),
    is_func: &dyn Fn(&str) -> bool,
) -> Result<Parsed, ParseError> {
    let items = Lexer {
        name,
        src: text,
        left: delims.0,
        right: delims.1,
        pos: 0,
        items: Vec::new(),
        paren_depth: 0,
    }
    .run()?;
    let mut parser = Parser {
        name,
        src: text,
        items,
        at: 0,
        funcs: is_func,
        vars: vec!["$".into()],
        range_depth: 0,
        defined: BTreeMap::new(),
    };
    let (root, _) = parser.list(true)?;
    Ok(Parsed {
        name: name.to_string(),
        text: text.to_string(),
        root,
        defined: parser.defined,
    })
}
