//! Parsed expression tree.

use super::value::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UnOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    In,
}

impl BinOp {
    /// cel-go's overload function name, used in `no such overload: _+_`.
    pub(super) fn function(&self) -> &'static str {
        match self {
            BinOp::Add => "_+_",
            BinOp::Sub => "_-_",
            BinOp::Mul => "_*_",
            BinOp::Div => "_/_",
            BinOp::Mod => "_%_",
            BinOp::Lt => "_<_",
            BinOp::Le => "_<=_",
            BinOp::Gt => "_>_",
            BinOp::Ge => "_>=_",
            BinOp::Eq => "_==_",
            BinOp::Ne => "_!=_",
            BinOp::In => "@in",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CompKind {
    All,
    Exists,
    ExistsOne,
    /// `map(x, t)` or, with a filter, `map(x, p, t)`.
    Map,
    Filter,
    /// `opt.optMap(x, t)`
    OptMap,
    /// `opt.optFlatMap(x, t)`
    OptFlatMap,
}

#[derive(Clone, Debug)]
pub(super) enum Expr {
    Lit(Value),
    /// `absolute` for a leading dot (`.name`), which skips local variables.
    Ident {
        name: String,
        absolute: bool,
    },
    /// `operand.field`, or `operand.?field` when `optional`.
    Select {
        operand: Box<Expr>,
        field: String,
        optional: bool,
    },
    /// `operand[index]`, or `operand[?index]` when `optional`.
    Index {
        operand: Box<Expr>,
        index: Box<Expr>,
        optional: bool,
    },
    /// `has(operand.field)`
    Has {
        operand: Box<Expr>,
        field: String,
    },
    Call {
        target: Option<Box<Expr>>,
        name: String,
        args: Vec<Expr>,
    },
    /// Elements with an `optional` (`?x`) flag.
    List(Vec<(Expr, bool)>),
    /// Entries with an `optional` (`?k: v`) flag.
    Map(Vec<(Expr, Expr, bool)>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Comprehension {
        kind: CompKind,
        var: String,
        range: Box<Expr>,
        /// The filter of a three-argument `map`.
        filter: Option<Box<Expr>>,
        /// Predicate (all/exists/exists_one/filter) or transform (map, optMap).
        step: Box<Expr>,
    },
}
