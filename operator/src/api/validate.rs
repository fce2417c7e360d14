//! Checks a `FluxInstance` manifest the way the API server checks it on a create (or an
//! update, given the stored object) with strict field validation, kubectl's default: against
//! the CRD's own structural schema as `fluxop crds` generates it — types, `required`, `enum`,
//! `pattern`, lengths, item and property counts, unknown fields (where the schema neither
//! lists them nor preserves unknown fields) — and its CEL rules ([`super::cel`]). `metadata`
//! is checked against `ObjectMeta`'s schema from k8s-openapi, as the API server does.
//!
//! Not checked: string `format`s, list types (`x-kubernetes-list-type`) and defaulting (none of
//! the rules tests a defaulted field). Pure: the schema is the only input besides the objects.

use std::{fmt, sync::OnceLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde_json::{Map, Value};

use super::{FluxInstance, cel};

/// One thing the API server would refuse: the field path and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `spec.distribution.version`, `spec.components[0]`; empty for the object itself.
    pub path: String,
    pub rule: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "<object>"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.rule)
    }
}

/// Violations of `object` as a `FluxInstance`; `old` is the stored instance on an update (it
/// enables transition rules, such as the immutable sync name). Empty when the API server
/// would accept it.
pub fn flux_instance(object: &Value, old: Option<&Value>) -> Vec<Violation> {
    let mut found = Vec::new();
    let expected_api_version = FluxInstance::api_version(&());
    let expected_kind = FluxInstance::kind(&());
    for (key, expected) in [
        ("apiVersion", expected_api_version.as_ref()),
        ("kind", expected_kind.as_ref()),
    ] {
        if object.get(key).and_then(Value::as_str) != Some(expected) {
            found.push(Violation {
                path: key.into(),
                rule: format!("must be {expected:?}, not {}", brief(&object[key])),
            });
        }
    }
    if !found.is_empty() {
        // Some other kind: its schema is not this one.
        return found;
    }
    if object["metadata"]["name"]
        .as_str()
        .is_none_or(str::is_empty)
        && object["metadata"]["generateName"]
            .as_str()
            .is_none_or(str::is_empty)
    {
        found.push(Violation {
            path: "metadata.name".into(),
            rule: "Required value: name or generateName is required".into(),
        });
    }
    Walk { found: &mut found }.value(instance_schema(), object, old, "");
    found
}

/// The CRD's `openAPIV3Schema` of `FluxInstance`, with what every object has beside it:
/// `apiVersion`, `kind` and `metadata` (`ObjectMeta`'s schema).
pub fn instance_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        // The CRD as installed (`crds::all`), not as generated: what the API server checks.
        let crd = super::crds::all()
            .into_iter()
            .find(|crd| crd.spec.names.kind == FluxInstance::kind(&()))
            .map(|crd| serde_json::to_value(crd).unwrap_or_default())
            .unwrap_or_default();
        let mut schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        let metadata = schemars::generate::SchemaSettings::openapi3()
            .with(|s| s.inline_subschemas = true)
            .into_generator()
            .into_root_schema_for::<ObjectMeta>();
        let mut metadata = serde_json::to_value(metadata).unwrap_or_default();
        if let Some(map) = metadata.as_object_mut() {
            map.retain(|k, _| !k.starts_with('$'));
        }
        if let Some(properties) = schema["properties"].as_object_mut() {
            properties.insert("apiVersion".into(), serde_json::json!({ "type": "string" }));
            properties.insert("kind".into(), serde_json::json!({ "type": "string" }));
            properties.insert("metadata".into(), metadata);
        }
        schema
    })
}

/// A short rendering of a value for messages.
fn brief(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Object(_) => "an object".into(),
        Value::Array(_) => "a list".into(),
        other => other.to_string(),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A field the API server drops before it validates: null where the schema does not allow
/// null ("pruned" nulls), so that a `required` field set to null counts as missing.
fn is_dropped_null(schema: &Value, value: &Value) -> bool {
    value.is_null() && schema["nullable"] != true
}

struct Walk<'a> {
    found: &'a mut Vec<Violation>,
}

impl Walk<'_> {
    fn violation(&mut self, path: &str, rule: String) {
        self.found.push(Violation {
            path: path.to_string(),
            rule,
        });
    }

    fn value(&mut self, schema: &Value, value: &Value, old: Option<&Value>, path: &str) {
        if value.is_null() && schema["nullable"] != true {
            self.violation(path, "must not be null".into());
            return;
        }
        if !value.is_null() && !self.has_type(schema, value, path) {
            // Nothing below a wrong type can be judged.
            return;
        }
        // The API server refuses null for an enum even when the field is nullable and the
        // enum lists null (found by the parity test against a real API server,
        // e2e/tests/validation.rs); fluxop's own CRDs no longer make optional enums nullable
        // (`crds::all`), so there a null is dropped before it gets here.
        if let Some(allowed) = schema["enum"].as_array()
            && (value.is_null() || !allowed.contains(value))
        {
            let supported: Vec<String> = allowed
                .iter()
                .filter(|v| !v.is_null())
                .map(Value::to_string)
                .collect();
            self.violation(
                path,
                format!(
                    "Unsupported value: {value}: supported values: {}",
                    supported.join(", ")
                ),
            );
        }
        match value {
            Value::Null => return,
            Value::String(text) => self.string(schema, text, path),
            Value::Array(items) => self.array(schema, items, old, path),
            Value::Object(map) => self.object(schema, map, old, path),
            _ => {}
        }
        self.rules(schema, value, old, path);
    }

    /// `type` (one type, or `x-kubernetes-int-or-string`); a schema without one accepts all.
    fn has_type(&mut self, schema: &Value, value: &Value, path: &str) -> bool {
        let actual = type_name(value);
        let fits = |expected: &str| match expected {
            "number" => value.is_number(),
            // Go decodes JSON numbers as floats: 2.0 is an integer to the API server.
            "integer" => {
                value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            other => other == actual,
        };
        if schema["x-kubernetes-int-or-string"] == true {
            if fits("integer") || value.is_string() {
                return true;
            }
            self.violation(
                path,
                format!(
                    "must be an integer or a string, not {actual} ({})",
                    brief(value)
                ),
            );
            return false;
        }
        match schema["type"].as_str() {
            Some(expected) if !fits(expected) => {
                self.violation(
                    path,
                    format!(
                        "must be of type {expected}, not {actual} ({})",
                        brief(value)
                    ),
                );
                false
            }
            _ => true,
        }
    }

    fn string(&mut self, schema: &Value, text: &str, path: &str) {
        let length = text.chars().count() as u64;
        if let Some(max) = schema["maxLength"].as_u64()
            && length > max
        {
            self.violation(
                path,
                format!("Too long: may not be more than {max} characters"),
            );
        }
        if let Some(min) = schema["minLength"].as_u64()
            && length < min
        {
            self.violation(
                path,
                format!("Too short: must be at least {min} characters"),
            );
        }
        if let Some(pattern) = schema["pattern"].as_str() {
            match regex::Regex::new(pattern) {
                Ok(re) if re.is_match(text) => {}
                Ok(_) => self.violation(
                    path,
                    format!("Invalid value: {text:?}: should match '{pattern}'"),
                ),
                Err(e) => {
                    self.violation(path, format!("the schema's pattern does not compile: {e}"))
                }
            }
        }
    }

    fn array(&mut self, schema: &Value, items: &[Value], old: Option<&Value>, path: &str) {
        let count = items.len() as u64;
        if let Some(min) = schema["minItems"].as_u64()
            && count < min
        {
            self.violation(
                path,
                format!("Invalid value: {count}: should have at least {min} items"),
            );
        }
        if let Some(max) = schema["maxItems"].as_u64()
            && count > max
        {
            self.violation(
                path,
                format!("Too many: {count}: must have at most {max} items"),
            );
        }
        let item_schema = &schema["items"];
        if item_schema.is_object() {
            for (index, item) in items.iter().enumerate() {
                // Transition rules inside lists would need list correlation: none here.
                let _ = old;
                self.value(item_schema, item, None, &format!("{path}[{index}]"));
            }
        }
    }

    fn object(
        &mut self,
        schema: &Value,
        map: &Map<String, Value>,
        old: Option<&Value>,
        path: &str,
    ) {
        let properties = schema["properties"].as_object();
        let additional = &schema["additionalProperties"];
        let preserves_unknown = schema["x-kubernetes-preserve-unknown-fields"] == true;
        for (key, value) in map {
            let field_path = child(path, key);
            let old_value = old.and_then(|o| o.get(key)).filter(|v| !v.is_null());
            match properties.and_then(|p| p.get(key)) {
                Some(property) if is_dropped_null(property, value) => {}
                Some(property) => self.value(property, value, old_value, &field_path),
                None if additional.is_object() => {
                    self.value(additional, value, old_value, &field_path)
                }
                // No fields listed at all: a free-form object (ObjectMeta's `fieldsV1`); the
                // CRD's structural schema has none such.
                None if preserves_unknown || additional == true || properties.is_none() => {}
                None => self.violation(&field_path, format!("unknown field {field_path:?}")),
            }
        }
        for required in schema["required"].as_array().into_iter().flatten() {
            let Some(key) = required.as_str() else {
                continue;
            };
            let present = match (map.get(key), properties.and_then(|p| p.get(key))) {
                (Some(value), Some(property)) => !is_dropped_null(property, value),
                (Some(value), None) => !value.is_null(),
                (None, _) => false,
            };
            if !present {
                self.violation(&child(path, key), "Required value".into());
            }
        }
        let count = map.len() as u64;
        if let Some(min) = schema["minProperties"].as_u64()
            && count < min
        {
            self.violation(path, format!("should have at least {min} properties"));
        }
        if let Some(max) = schema["maxProperties"].as_u64()
            && count > max
        {
            self.violation(path, format!("should have at most {max} properties"));
        }
    }

    /// The node's CEL rules (`x-kubernetes-validations`).
    fn rules(&mut self, schema: &Value, value: &Value, old: Option<&Value>, path: &str) {
        for rule in schema["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let text = rule["rule"].as_str().unwrap_or_default();
            let message = rule["message"]
                .as_str()
                .map_or_else(|| format!("failed rule: {text}"), str::to_string);
            match cel::evaluate(text, value, old) {
                Some(cel::Verdict::Violated) => {
                    self.violation(path, format!("{message} (rule: {text})"))
                }
                Some(cel::Verdict::Holds | cel::Verdict::NotApplicable) => {}
                None => self.violation(
                    path,
                    format!(
                        "fluxop cannot check the rule {text:?} offline (no check in api/cel.rs)"
                    ),
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::json;

    use super::*;

    /// The corpus the end-to-end test also submits to a real API server
    /// (`e2e/tests/validation.rs`): `accepted/` and `rejected/`, each file with a first-line
    /// comment `# expect: <text of the violation>` for the rejected ones.
    fn corpus(verdict: &str) -> Vec<(PathBuf, String)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/instances/validation")
            .join(verdict);
        let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| {
                let path = e.expect("entry").path();
                let text = std::fs::read_to_string(&path).expect("readable");
                (path, text)
            })
            .collect();
        files.sort();
        files
    }

    fn violations(text: &str) -> Vec<Violation> {
        let object: Value = serde_saphyr::from_str(text).expect("YAML");
        flux_instance(&object, None)
    }

    #[test]
    fn the_accepted_corpus_has_no_violations() {
        let files = corpus("accepted");
        assert!(files.len() >= 3);
        for (path, text) in files {
            assert_eq!(violations(&text), [], "{}", path.display());
        }
    }

    #[test]
    fn each_rejected_manifest_names_its_field_and_rule() {
        let files = corpus("rejected");
        assert!(files.len() >= 10);
        for (path, text) in files {
            let expected = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{}: no `# expect:` line", path.display()));
            let found: Vec<String> = violations(&text).iter().map(|v| v.to_string()).collect();
            assert!(
                found.iter().any(|v| v.contains(expected)),
                "{}: expected {expected:?} in {found:#?}",
                path.display()
            );
        }
    }

    #[test]
    fn every_api_reference_example_has_no_violations() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/instances/api-reference.yaml");
        let text = std::fs::read_to_string(path).expect("fixture");
        let examples: Vec<Value> = serde_saphyr::from_str_multiple(&text).expect("YAML");
        assert!(examples.len() >= 10);
        for (index, example) in examples.iter().enumerate() {
            assert_eq!(flux_instance(example, None), [], "example {index}");
        }
    }

    /// What `kubectl get instance -o yaml` gives (status, managed fields) is accepted too.
    #[test]
    fn a_stored_instance_with_status_and_managed_fields_has_no_violations() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/instances/status.yaml");
        let mut stored: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("YAML");
        stored["metadata"]["managedFields"] = json!([{
            "manager": "kubectl", "operation": "Apply", "apiVersion": "fluxcd.controlplane.io/v1",
            "time": "2026-11-24T10:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": { "f:spec": { "f:distribution": { ".": {} } } },
        }]);
        stored["metadata"]["uid"] = json!("0b2f0a4e-0000-4000-8000-000000000000");
        stored["metadata"]["generation"] = json!(3);
        assert_eq!(flux_instance(&stored, None), []);
    }

    #[test]
    fn the_schema_walked_is_the_generated_crds() {
        let schema = instance_schema();
        assert_eq!(
            schema["properties"]["spec"]["properties"]["distribution"]["properties"]["artifact"]["pattern"],
            json!("^oci://.*$")
        );
        assert_eq!(
            schema["properties"]["metadata"]["properties"]["name"]["type"],
            json!("string")
        );
    }

    fn minimal() -> Value {
        json!({
            "apiVersion": "fluxcd.controlplane.io/v1",
            "kind": "FluxInstance",
            "metadata": { "name": "flux", "namespace": "flux-system" },
            "spec": { "distribution": { "version": "2.x", "registry": "ghcr.io/fluxcd" } },
        })
    }

    #[test]
    fn nulls_of_fields_that_are_not_nullable_count_as_missing() {
        let mut instance = minimal();
        instance["spec"]["distribution"]["version"] = Value::Null;
        instance["spec"]["wait"] = Value::Null;
        let found: Vec<String> = flux_instance(&instance, None)
            .iter()
            .map(|v| v.to_string())
            .collect();
        assert_eq!(found, ["spec.distribution.version: Required value"]);
    }

    #[test]
    fn a_sync_rename_is_refused_only_against_a_stored_instance() {
        let mut renamed = minimal();
        renamed["spec"]["sync"] =
            json!({ "name": "b", "kind": "Bucket", "url": "u", "ref": "r", "path": "p" });
        let mut stored = renamed.clone();
        stored["spec"]["sync"]["name"] = json!("a");
        assert_eq!(flux_instance(&renamed, None), []);
        let found = flux_instance(&renamed, Some(&stored));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "spec.sync");
        assert!(
            found[0].rule.starts_with("Sync name is immutable"),
            "{}",
            found[0]
        );
    }

    #[test]
    fn other_kinds_are_refused_before_their_fields_are_judged() {
        let mut other = minimal();
        other["kind"] = json!("FluxReport");
        let found = flux_instance(&other, None);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "kind: must be \"FluxInstance\", not \"FluxReport\""
        );
    }
}
