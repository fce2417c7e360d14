//! Executes a parsed template the way Go's text/template does with `missingkey=error`:
//! the same truthiness, field lookup, comparison, printing and error texts.

use std::collections::BTreeMap;

use super::{
    fmt as gofmt, funcs,
    parse::{Arg, Branch, Command, Node, Number, Parsed, Pipe},
    value::{FuncError, Value},
};

/// An execution failure in Go's words:
/// `template: NAME:LINE:COL: executing "NAME" at <NODE>: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecError(pub String);

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExecError {}

/// Output is capped: a template is data, and a runaway `range` or `repeat` must not take the
/// process's memory.
pub const MAX_OUTPUT: usize = 16 << 20;
/// Nested template calls beyond this are refused (Go's limit is 100000; this one keeps the
/// stack of a blocking thread safe).
const MAX_DEPTH: usize = 1000;

enum Flow {
    Normal,
    Break,
    Continue,
}

struct State<'a> {
    tmpl: &'a Parsed,
    /// Niladic functions whose result is a value of this execution (`inputs`).
    values: &'a BTreeMap<String, Value>,
    vars: Vec<(String, Value)>,
    out: String,
    depth: usize,
    /// The template being executed, for error messages.
    current: String,
    /// The node evaluated last (Go's `state.at`): where an argument that fails conversion
    /// after a parenthesised pipeline is reported.
    last_at: (usize, String),
}

/// Runs `tmpl` with `data` as dot, `values` as the niladic functions.
pub fn execute(
    tmpl: &Parsed,
    data: Value,
    values: &BTreeMap<String, Value>,
) -> Result<String, ExecError> {
    let mut state = State {
        tmpl,
        values,
        vars: vec![("$".to_string(), data.clone())],
        out: String::new(),
        depth: 0,
        current: tmpl.name.clone(),
        last_at: (0, String::new()),
    };
    state.walk_list(&data, &tmpl.root)?;
    Ok(state.out)
}

type Res<T> = Result<T, ExecError>;

impl State<'_> {
    fn error_at(&self, pos: usize, node: &str, msg: impl std::fmt::Display) -> ExecError {
        ExecError(format!(
            "template: {}: executing {:?} at <{}>: {msg}",
            self.tmpl.location(pos),
            self.current,
            node
        ))
    }

    fn error_plain(&self, pos: usize, msg: impl std::fmt::Display) -> ExecError {
        ExecError(format!("template: {}: {msg}", self.tmpl.location(pos)))
    }

    /// The source text of an argument, for `at <...>`.
    fn source(&self, arg: &Arg) -> String {
        match arg {
            Arg::Identifier(_, name) => name.clone(),
            Arg::Chain(_, inner, _) if matches!(**inner, Arg::Identifier(..)) => self.source(inner),
            Arg::Field(_, fields) => fields.iter().map(|f| format!(".{f}")).collect(),
            Arg::Variable(_, name, fields) => {
                let mut s = name.clone();
                for f in fields {
                    s.push('.');
                    s.push_str(f);
                }
                s
            }
            Arg::Dot(_) => ".".into(),
            Arg::Nil(_) => "nil".into(),
            Arg::Bool(_, b) => b.to_string(),
            Arg::Number(_, _, text) => text.clone(),
            Arg::Str(_, s) => format!("{s:?}"),
            Arg::Pipe(..) | Arg::Chain(..) => "(...)".into(),
        }
    }

    fn command_text(&self, cmd: &Command) -> String {
        self.tmpl
            .text
            .get(cmd.pos..cmd.end)
            .unwrap_or("")
            .trim()
            .to_string()
    }

    fn walk_list(&mut self, dot: &Value, nodes: &[Node]) -> Res<Flow> {
        for node in nodes {
            match self.walk(dot, node)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    fn write(&mut self, pos: usize, text: &str) -> Res<()> {
        if self.out.len() + text.len() > MAX_OUTPUT {
            return Err(self.error_plain(pos, format!("output exceeds {} bytes", MAX_OUTPUT)));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn walk(&mut self, dot: &Value, node: &Node) -> Res<Flow> {
        match node {
            Node::Text(t) => {
                self.write(0, t)?;
            }
            Node::Action(pipe) => {
                let value = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    let text = print_value(&value);
                    self.write(pipe.pos, &text)?;
                }
            }
            Node::If(b) => return self.walk_if_or_with(dot, b, false),
            Node::With(b) => return self.walk_if_or_with(dot, b, true),
            Node::Range(b) => return self.walk_range(dot, b),
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
            Node::Template { pos, name, pipe } => {
                let Some(body) = self.tmpl.defined.get(name) else {
                    return Err(self.error_at(
                        *pos,
                        &format!("{{{{template {name:?}}}}}"),
                        format!("template {name:?} not defined"),
                    ));
                };
                let new_dot = match pipe {
                    Some(p) => self.eval_pipeline(dot, p)?,
                    None => Value::Nil,
                };
                if self.depth >= MAX_DEPTH {
                    return Err(self.error_plain(
                        *pos,
                        format!("exceeded maximum template depth ({MAX_DEPTH})"),
                    ));
                }
                let saved_vars =
                    std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
                let saved_name = std::mem::replace(&mut self.current, name.clone());
                self.depth += 1;
                let result = self.walk_list(&new_dot, body);
                self.depth -= 1;
                self.vars = saved_vars;
                self.current = saved_name;
                result?;
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_if_or_with(&mut self, dot: &Value, b: &Branch, is_with: bool) -> Res<Flow> {
        let mark = self.vars.len();
        let value = self.eval_pipeline(dot, &b.pipe)?;
        let flow = if value.truthy() {
            if is_with {
                self.walk_list(&value, &b.list)?
            } else {
                self.walk_list(dot, &b.list)?
            }
        } else {
            self.walk_list(dot, &b.else_list)?
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn walk_range(&mut self, dot: &Value, b: &Branch) -> Res<Flow> {
        let mark = self.vars.len();
        // Evaluate without declaring: range's variables are set per element.
        let pipe_value = {
            let undeclared = Pipe {
                decl: Vec::new(),
                ..b.pipe.clone()
            };
            self.eval_pipeline(dot, &undeclared)?
        };
        let (at, node) = match b.pipe.cmds.last().map(|c| &c.args[0]) {
            Some(arg) => (arg.pos(), self.source(arg)),
            None => (b.pos, String::new()),
        };
        let items: Vec<(Value, Value)> = match &pipe_value {
            Value::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                .collect(),
            Value::Map(map) => map
                .borrow()
                .iter()
                .map(|(k, v)| (Value::String(k.clone()), v.clone()))
                .collect(),
            Value::Int(n) | Value::Int64(n) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.error_at(
                        at,
                        &node,
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                // The items have the integer's type.
                let item = |i| match pipe_value {
                    Value::Int64(_) => Value::Int64(i),
                    _ => Value::Int(i),
                };
                (0..(*n).max(0)).map(|i| (item(i), item(i))).collect()
            }
            Value::Nil => Vec::new(),
            other => {
                return Err(self.error_at(
                    at,
                    &node,
                    format!("range can't iterate over {}", gofmt::format_v(other)),
                ));
            }
        };
        if items.is_empty() {
            let flow = self.walk_list(dot, &b.else_list)?;
            self.vars.truncate(mark);
            return Ok(flow);
        }
        for (key, elem) in items {
            let inner_mark = self.vars.len();
            match b.pipe.decl.len() {
                0 => {}
                1 => self.set_var(&b.pipe.decl[0], elem.clone(), b.pipe.is_assign),
                _ => {
                    self.set_var(&b.pipe.decl[0], key, b.pipe.is_assign);
                    self.set_var(&b.pipe.decl[1], elem.clone(), b.pipe.is_assign);
                }
            }
            let flow = self.walk_list(&elem, &b.list)?;
            if !b.pipe.is_assign {
                self.vars.truncate(inner_mark);
            }
            if let Flow::Break = flow {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    fn set_var(&mut self, name: &str, value: Value, assign: bool) {
        if assign && let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = value;
            return;
        }
        self.vars.push((name.to_string(), value));
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &Pipe) -> Res<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Nil);
        for name in &pipe.decl {
            self.set_var(name, value.clone(), pipe.is_assign);
        }
        Ok(value)
    }

    fn eval_command(
        &mut self,
        dot: &Value,
        cmd: &Command,
        final_value: Option<Value>,
    ) -> Res<Value> {
        let first = &cmd.args[0];
        let rest = &cmd.args[1..];
        match first {
            Arg::Identifier(pos, name) => {
                let node = self.command_text(cmd);
                self.call(dot, *pos, name, &node, rest, final_value)
            }
            Arg::Nil(pos) => Err(self.error_at(*pos, "nil", "nil is not a command")),
            Arg::Field(pos, fields) => {
                self.no_args(first, rest, &final_value)?;
                self.fields(*pos, &self.source(first), dot.clone(), fields)
            }
            Arg::Variable(pos, name, fields) => {
                self.no_args(first, rest, &final_value)?;
                let value = self.var(*pos, name)?;
                self.fields(*pos, &self.source(first), value, fields)
            }
            Arg::Chain(pos, inner, fields) => {
                self.no_args(first, rest, &final_value)?;
                let value = self.eval_arg(dot, inner)?;
                self.fields(*pos, &self.source(first), value, fields)
            }
            Arg::Pipe(_, pipe) => {
                self.no_args(first, rest, &final_value)?;
                let mark = self.vars.len();
                let value = self.eval_pipeline(dot, pipe);
                self.vars.truncate(mark);
                value
            }
            _ => {
                if !rest.is_empty() || final_value.is_some() {
                    return Err(self.error_at(
                        first.pos(),
                        &self.source(first),
                        format!("can't give argument to non-function {}", self.source(first)),
                    ));
                }
                self.eval_arg(dot, first)
            }
        }
    }

    fn no_args(&self, first: &Arg, rest: &[Arg], final_value: &Option<Value>) -> Res<()> {
        if rest.is_empty() && final_value.is_none() {
            return Ok(());
        }
        let last_field = match first {
            Arg::Field(_, f) | Arg::Variable(_, _, f) | Arg::Chain(_, _, f) => f.last(),
            _ => None,
        };
        Err(match last_field {
            Some(field) => self.error_at(
                first.pos(),
                &self.source(first),
                format!("{field} is not a method but has arguments"),
            ),
            None => self.error_at(
                first.pos(),
                &self.source(first),
                format!("can't give argument to non-function {}", self.source(first)),
            ),
        })
    }

    fn var(&self, pos: usize, name: &str) -> Res<Value> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.error_plain(pos, format!("undefined variable: {name}")))
    }

    /// Walks `.a.b` from `value`; a missing key is an error (missingkey=error).
    fn fields(
        &mut self,
        pos: usize,
        node: &str,
        mut value: Value,
        fields: &[String],
    ) -> Res<Value> {
        self.last_at = (pos, node.to_string());
        for field in fields {
            value = match &value {
                Value::Map(map) => match map.borrow().get(field) {
                    Some(v) => v.clone(),
                    None => {
                        return Err(self.error_at(
                            pos,
                            node,
                            format!("map has no entry for key {field:?}"),
                        ));
                    }
                },
                Value::Nil => {
                    return Err(self.error_at(
                        pos,
                        node,
                        format!("nil pointer evaluating interface {{}}.{field}"),
                    ));
                }
                // Values reach a template through maps of interface{}: Go names that type.
                _ => {
                    return Err(self.error_at(
                        pos,
                        node,
                        format!("can't evaluate field {field} in type interface {{}}"),
                    ));
                }
            };
        }
        Ok(value)
    }

    fn eval_arg(&mut self, dot: &Value, arg: &Arg) -> Res<Value> {
        Ok(match arg {
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(_) => Value::Nil,
            Arg::Bool(_, b) => Value::Bool(*b),
            Arg::Number(_, Number::Int(i), _) => Value::Int(*i),
            Arg::Number(_, Number::Float(f), _) => Value::Float(*f),
            Arg::Str(_, s) => Value::String(s.clone()),
            Arg::Field(pos, fields) => self.fields(*pos, &self.source(arg), dot.clone(), fields)?,
            Arg::Variable(pos, name, fields) => {
                let value = self.var(*pos, name)?;
                self.fields(*pos, &self.source(arg), value, fields)?
            }
            Arg::Identifier(pos, name) => self.call(dot, *pos, name, name, &[], None)?,
            Arg::Pipe(_, pipe) => {
                let mark = self.vars.len();
                let value = self.eval_pipeline(dot, pipe);
                self.vars.truncate(mark);
                value?
            }
            Arg::Chain(pos, inner, fields) => {
                let value = self.eval_arg(dot, inner)?;
                self.fields(*pos, &self.source(arg), value, fields)?
            }
        })
    }

    fn call(
        &mut self,
        dot: &Value,
        pos: usize,
        name: &str,
        node: &str,
        args: &[Arg],
        final_value: Option<Value>,
    ) -> Res<Value> {
        self.last_at = (pos, name.to_string());
        let fail = |s: &Self, msg: String| s.error_at(pos, node, msg);
        // and/or evaluate their arguments only as far as needed (Go 1.18+).
        if name == "and" || name == "or" {
            let count = args.len() + usize::from(final_value.is_some());
            if count == 0 {
                return Err(fail(
                    self,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut last = Value::Nil;
            for arg in args {
                last = self.eval_arg(dot, arg)?;
                if last.truthy() != (name == "and") {
                    return Ok(last);
                }
            }
            if let Some(v) = final_value {
                last = v;
            }
            return Ok(last);
        }
        if let Some(value) = self.values.get(name) {
            let count = args.len() + usize::from(final_value.is_some());
            if count > 0 {
                return Err(s_err(
                    self,
                    pos,
                    name,
                    format!("wrong number of args for {name}: want 0 got {count}"),
                ));
            }
            return Ok(value.clone());
        }
        let mut values = Vec::with_capacity(args.len() + 1);
        let mut arg_at = Vec::with_capacity(args.len());
        for arg in args {
            // Go marks each argument as it evaluates it (a parenthesised pipeline leaves the
            // mark on the last node evaluated inside).
            self.last_at = (arg.pos(), self.source(arg));
            values.push(self.eval_arg(dot, arg)?);
            arg_at.push(match arg {
                Arg::Pipe(..) => self.last_at.clone(),
                other => (other.pos(), self.source(other)),
            });
        }
        if let Some(v) = final_value {
            values.push(v);
        }
        let result = match name {
            "not" => one(name, &values).map(|v| Value::Bool(!v.truthy())),
            "len" => one(name, &values).and_then(length),
            "index" => index(&values),
            "print" => Ok(Value::String(gofmt::sprint(&values))),
            "println" => Ok(Value::String(gofmt::sprintln(&values))),
            "printf" => match values.split_first() {
                Some((Value::String(format), rest)) => {
                    Ok(Value::String(gofmt::sprintf(format, rest)))
                }
                Some((other, _)) => Err(FuncError(format!(
                    "wrong type for value; expected string; got {}",
                    other.type_name()
                ))),
                None => Err(FuncError(
                    "wrong number of args for printf: want at least 1 got 0".into(),
                )),
            },
            "html" => Ok(Value::String(html_escape(&gofmt::sprint(&values)))),
            "js" => Ok(Value::String(js_escape(&gofmt::sprint(&values)))),
            "urlquery" => Ok(Value::String(query_escape(&gofmt::sprint(&values)))),
            "call" => Err(FuncError("call of nil".into())),
            "eq" => eq(&values).map(Value::Bool),
            "ne" => match values.as_slice() {
                [a, b] => eq(&[a.clone(), b.clone()]).map(|t| Value::Bool(!t)),
                _ => Err(FuncError(format!(
                    "wrong number of args for ne: want 2 got {}",
                    values.len()
                ))),
            },
            "lt" | "le" | "gt" | "ge" => match values.as_slice() {
                [a, b] => compare(name, a, b).map(Value::Bool),
                _ => Err(FuncError(format!(
                    "wrong number of args for {name}: want 2 got {}",
                    values.len()
                ))),
            },
            _ => match funcs::lookup(name) {
                Some(f) => f(&values),
                None => Err(FuncError(format!("{name:?} is not a defined function"))),
            },
        };
        result.map_err(|FuncError(msg)| {
            // Go reports argument conversion errors without the `error calling` prefix.
            if funcs::is_arg_error(&msg) {
                // Go reports a conversion at the argument that failed it; the message names
                // the type it got (or a nil for `invalid value`).
                let got = msg.rsplit_once("; got ").map(|(_, t)| t.to_string());
                let culprit = values.iter().position(|v| match &got {
                    Some(t) => v.type_name() == t,
                    None => msg.starts_with("invalid value") && matches!(v, Value::Nil),
                });
                match culprit.and_then(|i| arg_at.get(i)) {
                    Some((at, text)) => self.error_at(*at, text, msg),
                    None => fail(self, msg),
                }
            } else {
                fail(self, format!("error calling {name}: {msg}"))
            }
        })
    }
}

fn s_err(s: &State<'_>, pos: usize, node: &str, msg: String) -> ExecError {
    s.error_at(pos, node, msg)
}

fn one<'v>(name: &str, values: &'v [Value]) -> Result<&'v Value, FuncError> {
    match values {
        [v] => Ok(v),
        _ => Err(FuncError(format!(
            "wrong number of args for {name}: want 1 got {}",
            values.len()
        ))),
    }
}

fn length(v: &Value) -> Result<Value, FuncError> {
    Ok(Value::Int(match v {
        Value::String(s) => s.len() as i64,
        Value::List(l) => l.len() as i64,
        Value::Map(m) => m.borrow().len() as i64,
        Value::Nil => return Err(FuncError("len of nil pointer".into())),
        other => return Err(FuncError(format!("len of type {}", other.type_name()))),
    }))
}

fn index(values: &[Value]) -> Result<Value, FuncError> {
    let Some((item, keys)) = values.split_first() else {
        return Err(FuncError(
            "wrong number of args for index: want at least 1 got 0".into(),
        ));
    };
    let mut item = item.clone();
    for key in keys {
        item = match (&item, key) {
            (Value::Nil, _) => return Err(FuncError("index of untyped nil".into())),
            (Value::Map(m), Value::String(k)) => m.borrow().get(k).cloned().unwrap_or(Value::Nil),
            (Value::Map(_), other) => {
                return Err(FuncError(format!(
                    "value has type {}; should be string",
                    other.type_name()
                )));
            }
            (Value::List(l), Value::Int(i) | Value::Int64(i)) => {
                match usize::try_from(*i).ok().and_then(|i| l.get(i)) {
                    Some(v) => v.clone(),
                    None => return Err(FuncError(format!("index out of range: {i}"))),
                }
            }
            (Value::String(s), Value::Int(i) | Value::Int64(i)) => {
                match usize::try_from(*i).ok().and_then(|i| s.as_bytes().get(i)) {
                    Some(b) => Value::Int(i64::from(*b)),
                    None => return Err(FuncError(format!("index out of range: {i}"))),
                }
            }
            (Value::List(_) | Value::String(_), other) => {
                return Err(FuncError(format!(
                    "cannot index slice/array with type {}",
                    other.type_name()
                )));
            }
            (other, _) => {
                return Err(FuncError(format!(
                    "can't index item of type {}",
                    other.type_name()
                )));
            }
        };
    }
    Ok(item)
}

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    String,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Nil => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Int64(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::String(_) => Kind::String,
        Value::List(_) | Value::Map(_) => Kind::Other,
    }
}

/// Go's `eq arg1 arg2 ...`: true when arg1 equals any of the others.
fn eq(values: &[Value]) -> Result<bool, FuncError> {
    let Some((first, others)) = values.split_first() else {
        return Err(FuncError("missing argument for comparison".into()));
    };
    if others.is_empty() {
        return Err(FuncError("missing argument for comparison".into()));
    }
    let k1 = kind(first);
    for other in others {
        let k2 = kind(other);
        let truth = if k1 != k2 {
            if k1 != Kind::Invalid && k2 != Kind::Invalid {
                return Err(FuncError(format!(
                    "incompatible types for comparison: {} and {}",
                    first.type_name(),
                    other.type_name()
                )));
            }
            false
        } else {
            match (first, other) {
                (Value::Bool(a), Value::Bool(b)) => a == b,
                (Value::Int(a) | Value::Int64(a), Value::Int(b) | Value::Int64(b)) => a == b,
                (Value::Float(a), Value::Float(b)) => a == b,
                (Value::String(a), Value::String(b)) => a == b,
                (Value::Nil, Value::Nil) => true,
                (a, _) => {
                    return Err(FuncError(format!(
                        "non-comparable type {}: {}",
                        gofmt::sprintf("%s", std::slice::from_ref(a)),
                        a.type_name()
                    )));
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn compare(name: &str, a: &Value, b: &Value) -> Result<bool, FuncError> {
    let (ka, kb) = (kind(a), kind(b));
    if matches!(ka, Kind::Invalid | Kind::Other | Kind::Bool)
        || matches!(kb, Kind::Invalid | Kind::Other | Kind::Bool)
    {
        return Err(FuncError("invalid type for comparison".into()));
    }
    if ka != kb {
        return Err(FuncError(format!(
            "incompatible types for comparison: {} and {}",
            a.type_name(),
            b.type_name()
        )));
    }
    let ordering = match (a, b) {
        (Value::Int(x) | Value::Int64(x), Value::Int(y) | Value::Int64(y)) => x.partial_cmp(y),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::String(x), Value::String(y)) => x.partial_cmp(y),
        _ => None,
    };
    use std::cmp::Ordering::*;
    Ok(matches!(
        (name, ordering),
        ("lt", Some(Less))
            | ("le", Some(Less | Equal))
            | ("gt", Some(Greater))
            | ("ge", Some(Greater | Equal))
    ))
}

/// How an action prints its value: Go's `fmt.Fprint`, except that a nil prints as
/// `<no value>`.
pub fn print_value(v: &Value) -> String {
    match v {
        Value::Nil => "<no value>".into(),
        Value::String(s) => s.clone(),
        other => gofmt::format_v(other),
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's url.QueryEscape.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
