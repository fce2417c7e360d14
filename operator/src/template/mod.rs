//! A ResourceSet template: Go template syntax with `<<` `>>` delimiters, missing keys as
//! errors, the incumbent's function set, and `inputs` for the current input set.
//!
//! An engine of our own rather than a crate: the incumbent's templates depend on Go's exact
//! semantics (missing keys as errors, `%v` printing, comparison rules, trim markers) and on
//! slim-sprig's function set with its quirks, and YAML written and read the way
//! sigs.k8s.io/yaml does (the resources are re-serialised before templating, so the
//! indentation `nindent` must match depends on it). The Go-template crates available
//! implement a different function set and none of that YAML; this one is tested against
//! outputs recorded from Go (`testdata/go-template-cases.json`).

mod exec;
mod fmt;
mod funcs;
#[cfg(test)]
mod go_cases;
pub mod goyaml;
mod goyaml_emit;
mod goyaml_load;
#[cfg(test)]
mod goyaml_tests;
mod json;
mod parse;
mod url;
pub mod value;

use std::collections::BTreeMap;

pub use value::Value;

/// Go's `time.Duration.String()` of a number of nanoseconds (`2.818583s`, `1m5s`).
pub fn go_duration(nanos: i64) -> String {
    funcs::duration_string(nanos)
}

/// The name Go errors give the template (`template: resourceset:LINE:COL: ...`).
pub const NAME: &str = "resourceset";
pub const DELIMITERS: (&str, &str) = ("<<", ">>");
/// The niladic functions whose value each execution supplies.
pub const VALUE_FUNCTIONS: &[&str] = &["inputs"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    Parse(#[from] parse::ParseError),
    #[error("{0}")]
    Exec(#[from] exec::ExecError),
}

#[derive(Debug, Clone)]
pub struct Template {
    parsed: parse::Parsed,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let is_func = |name: &str| VALUE_FUNCTIONS.contains(&name) || funcs::lookup(name).is_some();
        Ok(Template {
            parsed: parse::parse(NAME, text, DELIMITERS, &is_func)?,
        })
    }

    /// Executes with `.` and `$` nil (as the incumbent does) and `values` as the value
    /// functions.
    pub fn execute(&self, values: &BTreeMap<String, Value>) -> Result<String, TemplateError> {
        Ok(exec::execute(&self.parsed, Value::Nil, values)?)
    }
}
