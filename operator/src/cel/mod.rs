//! TEMPORARY placeholder until the evaluator lands (same API).
#[derive(Debug, Clone)]
pub struct Program;
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(pub String);
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);
impl Program {
    pub fn compile(expr: &str) -> Result<Program, CompileError> {
        Err(CompileError(format!("{expr}: CEL is not available yet")))
    }
    pub fn eval_bool(&self, _object: &serde_json::Value) -> Result<bool, EvalError> {
        Err(EvalError("CEL is not available yet".into()))
    }
}
