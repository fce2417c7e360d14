//! A CEL (Common Expression Language) evaluator for readiness and health
//! expressions over Kubernetes objects, matching the behaviour of the Flux
//! Operator's `github.com/fluxcd/pkg/runtime/cel` helper (cel-go, parsed but
//! not type-checked, with `cel.OptionalTypes`, `ext.Strings`, `ext.Sets` and
//! `ext.Encoders`, cross-type numeric comparisons and UTC as the default
//! time zone).
//!
//! Compile once with [`Program::compile`], then evaluate with
//! [`Program::eval_bool`] over an object (each top-level field becomes a
//! variable) or [`Program::eval`] for any result type.

mod ast;
mod eval;
mod functions;
mod parser;
mod time;
mod value;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use regex::Regex;

pub use self::time::{Duration, Timestamp};
pub use self::value::{CelType, Key, Value};

use self::ast::Expr;

/// A parsed, ready-to-evaluate CEL expression.
#[derive(Debug, Clone)]
pub struct Program {
    source: String,
    ast: Expr,
    /// Regular expressions given as constants, compiled once.
    regexes: HashMap<String, Regex>,
}

/// Why an expression could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileErrorKind {
    /// A syntax or macro error at a 1-based line and column (in characters).
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// An error found while preparing the program, e.g. a constant
    /// conversion that fails (`int('x')`) or an invalid constant regex;
    /// cel-go reports these from `env.Program`.
    Program { message: String },
}

/// A compile error, displayed the way the incumbent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    source: String,
    kind: CompileErrorKind,
}

impl CompileError {
    pub fn kind(&self) -> &CompileErrorKind {
        &self.kind
    }

    /// The bare message, without position or prefix.
    pub fn message(&self) -> &str {
        match &self.kind {
            CompileErrorKind::Syntax { message, .. } | CompileErrorKind::Program { message } => {
                message
            }
        }
    }

    /// 1-based (line, column) of a syntax error.
    pub fn position(&self) -> Option<(usize, usize)> {
        match &self.kind {
            CompileErrorKind::Syntax { line, column, .. } => Some((*line, *column)),
            CompileErrorKind::Program { .. } => None,
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            CompileErrorKind::Syntax {
                line,
                column,
                message,
            } => {
                let text = self.source.lines().nth(line - 1).unwrap_or("");
                write!(
                    f,
                    "failed to parse the CEL expression '{}': ERROR: <input>:{}:{}: {}\n | {}\n | {}^",
                    self.source,
                    line,
                    column,
                    message,
                    text,
                    ".".repeat(column.saturating_sub(1))
                )
            }
            CompileErrorKind::Program { message } => {
                write!(f, "failed to create CEL program: {message}")
            }
        }
    }
}

impl std::error::Error for CompileError {}

/// What went wrong while evaluating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalErrorKind {
    /// A runtime error (missing key, no such overload, overflow, ...).
    Runtime,
    /// `eval_bool` got a result that is not a bool.
    NotBool,
}

/// An evaluation error, displayed the way the incumbent reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    source: String,
    kind: EvalErrorKind,
    message: String,
}

impl EvalError {
    pub fn kind(&self) -> EvalErrorKind {
        self.kind
    }

    /// The bare cel-go style message, e.g. `no such key: conditions`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            EvalErrorKind::Runtime => write!(
                f,
                "failed to evaluate the CEL expression '{}': {}",
                self.source, self.message
            ),
            EvalErrorKind::NotBool => write!(
                f,
                "failed to evaluate CEL expression as boolean: '{}'",
                self.source
            ),
        }
    }
}

impl std::error::Error for EvalError {}

impl Program {
    /// Parses `expr` and prepares it for evaluation.
    pub fn compile(expr: &str) -> Result<Program, CompileError> {
        let ast = parser::parse(expr).map_err(|e| {
            let before: Vec<char> = expr.chars().take(e.offset).collect();
            let line = before.iter().filter(|&&c| c == '\n').count() + 1;
            let column = before.iter().rev().take_while(|&&c| c != '\n').count() + 1;
            CompileError {
                source: expr.to_string(),
                kind: CompileErrorKind::Syntax {
                    line,
                    column,
                    message: e.message,
                },
            }
        })?;
        let mut regexes = HashMap::new();
        let ast = optimize(ast, &mut regexes).map_err(|message| CompileError {
            source: expr.to_string(),
            kind: CompileErrorKind::Program { message },
        })?;
        Ok(Program {
            source: expr.to_string(),
            ast,
            regexes,
        })
    }

    /// The expression text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates with each entry of `vars` bound as a variable.
    pub fn eval(
        &self,
        vars: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Value, EvalError> {
        let vars: HashMap<String, Value> = vars
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v)))
            .collect();
        self.eval_values(&vars)
    }

    /// Evaluates with already converted variables.
    pub fn eval_values(&self, vars: &HashMap<String, Value>) -> Result<Value, EvalError> {
        let mut interp = eval::Interp::new(vars, &self.regexes);
        interp.eval(&self.ast).map_err(|message| EvalError {
            source: self.source.clone(),
            kind: EvalErrorKind::Runtime,
            message,
        })
    }

    /// Evaluates over a Kubernetes object, binding each top-level field
    /// (`apiVersion`, `kind`, `metadata`, `spec`, `status`, `data`, ...) as a
    /// variable, and requires a bool result.
    pub fn eval_bool(&self, object: &serde_json::Value) -> Result<bool, EvalError> {
        let empty = serde_json::Map::new();
        let vars = object.as_object().unwrap_or(&empty);
        match self.eval(vars)? {
            Value::Bool(b) => Ok(b),
            other => Err(EvalError {
                source: self.source.clone(),
                kind: EvalErrorKind::NotBool,
                message: format!("expected a bool result, got {}", other.cel_type().name()),
            }),
        }
    }
}

/// A dotted identifier chain (`a.b.c`) as a name, if `e` is one.
fn qualified_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Ident { name, .. } => Some(name.clone()),
        Expr::Select {
            operand,
            field,
            optional: false,
        } => qualified_name(operand).map(|q| format!("{q}.{field}")),
        _ => None,
    }
}

/// Compile-time rewriting: resolves namespaced functions (`optional.of`,
/// `base64.decode`, ...), folds type conversions and literal lists/maps over
/// constants (reporting failures as compile errors, as cel-go's optimizing
/// planner does) and precompiles constant regular expressions.
fn optimize(e: Expr, regexes: &mut HashMap<String, Regex>) -> Result<Expr, String> {
    let no_vars = HashMap::new();
    let no_regex = HashMap::new();
    let const_eval = |e: &Expr| eval::Interp::new(&no_vars, &no_regex).eval(e);
    Ok(match e {
        Expr::Call { target, name, args } => {
            let args = args
                .into_iter()
                .map(|a| optimize(a, regexes))
                .collect::<Result<Vec<_>, _>>()?;
            let (target, name) = match target {
                Some(t) => match qualified_name(&t) {
                    Some(q) if functions::QUALIFIED.contains(&format!("{q}.{name}").as_str()) => {
                        (None, format!("{q}.{name}"))
                    }
                    _ => (Some(Box::new(optimize(*t, regexes)?)), name),
                },
                None => (None, name),
            };
            // cel-go's planner rejects calls whose arity has no implementation:
            // zero arguments, or two (receiver included) for one-argument functions.
            let arity = args.len() + usize::from(target.is_some());
            if arity == 0 && name != "optional.none" {
                return Err(format!("no such overload: {name}()"));
            }
            if arity >= 2 && functions::UNARY_ONLY.contains(&name.as_str()) {
                let shape = if arity == 2 { "lhs, rhs" } else { "..." };
                return Err(format!("no such overload: {name}({shape})"));
            }
            if name == "matches" {
                let pattern = match (&target, args.as_slice()) {
                    (Some(_), [Expr::Lit(Value::String(p))]) => Some(p.clone()),
                    (None, [_, Expr::Lit(Value::String(p))]) => Some(p.clone()),
                    _ => None,
                };
                if let Some(p) = pattern
                    && !regexes.contains_key(p.as_ref())
                {
                    let re = functions::compile_regex(&p)?;
                    regexes.insert(p.to_string(), re);
                }
            }
            if target.is_none()
                && functions::CONVERSIONS.contains(&name.as_str())
                && let [Expr::Lit(v)] = args.as_slice()
            {
                return functions::convert(&name, v).map(Expr::Lit);
            }
            Expr::Call { target, name, args }
        }
        Expr::List(elems) => {
            let elems = elems
                .into_iter()
                .map(|(e, o)| optimize(e, regexes).map(|e| (e, o)))
                .collect::<Result<Vec<_>, _>>()?;
            let folded = Expr::List(elems);
            if let Expr::List(items) = &folded
                && items.iter().all(|(e, o)| !o && matches!(e, Expr::Lit(_)))
            {
                return const_eval(&folded).map(Expr::Lit);
            }
            folded
        }
        Expr::Map(entries) => {
            let entries = entries
                .into_iter()
                .map(|(k, v, o)| Ok((optimize(k, regexes)?, optimize(v, regexes)?, o)))
                .collect::<Result<Vec<_>, String>>()?;
            let folded = Expr::Map(entries);
            if let Expr::Map(items) = &folded
                && items
                    .iter()
                    .all(|(k, v, o)| !o && matches!(k, Expr::Lit(_)) && matches!(v, Expr::Lit(_)))
            {
                return const_eval(&folded).map(Expr::Lit);
            }
            folded
        }
        Expr::Select {
            operand,
            field,
            optional,
        } => Expr::Select {
            operand: Box::new(optimize(*operand, regexes)?),
            field,
            optional,
        },
        Expr::Index {
            operand,
            index,
            optional,
        } => Expr::Index {
            operand: Box::new(optimize(*operand, regexes)?),
            index: Box::new(optimize(*index, regexes)?),
            optional,
        },
        Expr::Has { operand, field } => Expr::Has {
            operand: Box::new(optimize(*operand, regexes)?),
            field,
        },
        Expr::Unary(op, x) => Expr::Unary(op, Box::new(optimize(*x, regexes)?)),
        Expr::Binary(op, l, r) => Expr::Binary(
            op,
            Box::new(optimize(*l, regexes)?),
            Box::new(optimize(*r, regexes)?),
        ),
        Expr::And(l, r) => Expr::And(
            Box::new(optimize(*l, regexes)?),
            Box::new(optimize(*r, regexes)?),
        ),
        Expr::Or(l, r) => Expr::Or(
            Box::new(optimize(*l, regexes)?),
            Box::new(optimize(*r, regexes)?),
        ),
        Expr::Cond(c, t, f) => Expr::Cond(
            Box::new(optimize(*c, regexes)?),
            Box::new(optimize(*t, regexes)?),
            Box::new(optimize(*f, regexes)?),
        ),
        Expr::Comprehension {
            kind,
            var,
            range,
            filter,
            step,
        } => Expr::Comprehension {
            kind,
            var,
            range: Box::new(optimize(*range, regexes)?),
            filter: match filter {
                Some(f) => Some(Box::new(optimize(*f, regexes)?)),
                None => None,
            },
            step: Box::new(optimize(*step, regexes)?),
        },
        e @ (Expr::Lit(_) | Expr::Ident { .. }) => e,
    })
}
