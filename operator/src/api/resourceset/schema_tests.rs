//! Our ResourceSet and ResourceSetInputProvider CRDs against the incumbent's (flux-operator
//! v0.58.1), read from the Go module cache: every schema node must carry the same
//! validation, apart from the differences listed (with their reason) in `ALLOWED`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::Command,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::api::crds;

pub(super) const INCUMBENT: &str = "github.com/controlplaneio-fluxcd/flux-operator@v0.58.1";

/// The incumbent's module in the Go module cache. Fails (does not skip) when Go or the
/// module is missing: CI downloads it.
pub(super) fn incumbent_module() -> PathBuf {
    let hint = format!("run `go mod download {INCUMBENT}`");
    let output = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go env GOMODCACHE` ({e}): install Go and {hint}"));
    assert!(
        output.status.success(),
        "`go env GOMODCACHE` failed: {}; {hint}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cache = String::from_utf8(output.stdout).expect("GOMODCACHE is UTF-8");
    let module = PathBuf::from(cache.trim()).join(INCUMBENT);
    assert!(
        module.join("api/v1/resourceset_types.go").is_file(),
        "{} is missing: {hint}",
        module.display()
    );
    module
}

fn incumbent_crd(plural: &str) -> Value {
    let path = incumbent_module()
        .join("config/crd/bases")
        .join(format!("fluxcd.controlplane.io_{plural}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `go mod download {INCUMBENT}`", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn our_crd(plural: &str) -> Value {
    let crd: CustomResourceDefinition = crds::all()
        .into_iter()
        .find(|c| c.spec.names.plural == plural)
        .unwrap_or_else(|| panic!("crds::all() has no {plural}"));
    serde_json::to_value(crd).expect("a CRD serializes")
}

/// Keys of a schema node not compared as they are: documentation (`description`, `title`)
/// is ignored, the structural ones are walked instead.
const WALKED: [&str; 7] = [
    "description",
    "title",
    "properties",
    "items",
    "additionalProperties",
    "required",
    "x-kubernetes-validations",
];

/// Equal, numbers by value (`0` in YAML is `0.0` in our `f64` fields).
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Differences as `"<path> <key>"` mapped to what each side has.
fn schema_diff(path: &str, ours: &Value, theirs: &Value, out: &mut BTreeMap<String, String>) {
    let (Some(o), Some(t)) = (ours.as_object(), theirs.as_object()) else {
        if ours != theirs {
            out.insert(
                format!("{path} value"),
                format!("ours {ours}, incumbent {theirs}"),
            );
        }
        return;
    };
    let report = |out: &mut BTreeMap<String, String>, key: &str, ours: String, theirs: String| {
        out.insert(
            format!("{path} {key}"),
            format!("ours {ours}, incumbent {theirs}"),
        );
    };
    let show = |v: Option<&Value>| v.map_or("absent".to_string(), Value::to_string);
    let keys: BTreeSet<&String> = o.keys().chain(t.keys()).collect();
    for key in keys.into_iter().filter(|k| !WALKED.contains(&k.as_str())) {
        if !same(o.get(key), t.get(key)) {
            report(out, key, show(o.get(key)), show(t.get(key)));
        }
    }
    let set = |v: Option<&Value>| -> BTreeSet<String> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(Value::to_string)
            .collect()
    };
    for key in ["required", "x-kubernetes-validations"] {
        let (mine, incumbent) = (set(o.get(key)), set(t.get(key)));
        if mine != incumbent {
            report(out, key, format!("{mine:?}"), format!("{incumbent:?}"));
        }
    }
    let empty = serde_json::Map::new();
    let props = |m: &serde_json::Map<String, Value>| {
        m.get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty)
            .clone()
    };
    let (op, tp) = (props(o), props(t));
    for name in op.keys().chain(tp.keys()).collect::<BTreeSet<_>>() {
        let child = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        match (op.get(name), tp.get(name)) {
            (Some(a), Some(b)) => schema_diff(&child, a, b, out),
            (a, b) => {
                out.insert(
                    format!("{child} property"),
                    format!(
                        "ours {}, incumbent {}",
                        if a.is_some() { "has it" } else { "absent" },
                        if b.is_some() { "has it" } else { "absent" }
                    ),
                );
            }
        }
    }
    for (key, suffix) in [("items", "[]"), ("additionalProperties", "{}")] {
        match (o.get(key), t.get(key)) {
            (None, None) => {}
            (Some(a), Some(b)) => schema_diff(&format!("{path}{suffix}"), a, b, out),
            (a, b) => report(out, key, show(a), show(b)),
        }
    }
}

/// Everything of the CRD but the schema: names, scope, version flags, columns, subresources.
fn envelope_diff(ours: &Value, theirs: &Value, out: &mut BTreeMap<String, String>) {
    let mut compare = |what: &str, a: &Value, b: &Value| {
        if a != b {
            out.insert(format!("crd {what}"), format!("ours {a}, incumbent {b}"));
        }
    };
    compare(
        "metadata.name",
        &ours["metadata"]["name"],
        &theirs["metadata"]["name"],
    );
    compare("group", &ours["spec"]["group"], &theirs["spec"]["group"]);
    compare("scope", &ours["spec"]["scope"], &theirs["spec"]["scope"]);
    for key in [
        "kind",
        "listKind",
        "plural",
        "singular",
        "shortNames",
        "categories",
    ] {
        compare(
            &format!("names.{key}"),
            &ours["spec"]["names"][key],
            &theirs["spec"]["names"][key],
        );
    }
    let (ov, tv) = (&ours["spec"]["versions"], &theirs["spec"]["versions"]);
    compare(
        "versions.len",
        &ov.as_array().map(Vec::len).into(),
        &tv.as_array().map(Vec::len).into(),
    );
    for key in [
        "name",
        "served",
        "storage",
        "subresources",
        "additionalPrinterColumns",
        "deprecated",
    ] {
        compare(&format!("versions[0].{key}"), &ov[0][key], &tv[0][key]);
    }
}

/// The differences that remain, each with why it is harmless.
const ALLOWED: &[(&str, &str, &str)] = &[(
    "resourcesetinputproviders",
    " required",
    "our root requires `spec` (the Rust type needs `spec.type`); a spec-less RSIP has no type, \
     which the incumbent's controller fails on as an unsupported type anyway",
)];

fn assert_matches_incumbent(plural: &str) {
    let (ours, theirs) = (our_crd(plural), incumbent_crd(plural));
    let mut diffs = BTreeMap::new();
    envelope_diff(&ours, &theirs, &mut diffs);
    let schema = |crd: &Value| crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    schema_diff("", &schema(&ours), &schema(&theirs), &mut diffs);
    let allowed: BTreeSet<&str> = ALLOWED
        .iter()
        .filter(|(crd, _, _)| *crd == plural)
        .map(|(_, key, _)| *key)
        .collect();
    let unexpected: Vec<String> = diffs
        .iter()
        .filter(|(key, _)| !allowed.contains(key.as_str()))
        .map(|(key, what)| format!("{key}: {what}"))
        .collect();
    let stale: Vec<&&str> = allowed
        .iter()
        .filter(|k| !diffs.contains_key(**k))
        .collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "{plural}: schema differences from the incumbent:\n{}\nallow-list entries that no longer apply: {stale:?}",
        unexpected.join("\n")
    );
}

#[test]
fn resourceset_crd_matches_the_incumbent_v0_58_1() {
    assert_matches_incumbent("resourcesets");
}

#[test]
fn resourcesetinputprovider_crd_matches_the_incumbent_v0_58_1() {
    assert_matches_incumbent("resourcesetinputproviders");
}

/// The comparison itself finds what it should.
#[test]
fn the_schema_comparison_reports_each_kind_of_difference() {
    let ours = serde_json::json!({
        "type": "object",
        "required": ["a"],
        "properties": {
            "a": { "type": "string", "pattern": "x", "description": "mine" },
            "b": { "type": "array", "items": { "type": "integer" }, "maxItems": 3 },
            "only": { "type": "string" }
        },
        "x-kubernetes-validations": [{ "rule": "r", "message": "m" }]
    });
    let theirs = serde_json::json!({
        "type": "object",
        "properties": {
            "a": { "type": "string", "pattern": "y", "description": "theirs" },
            "b": { "type": "array", "items": { "type": "string" } }
        },
        "x-kubernetes-validations": [{ "rule": "r", "message": "other" }]
    });
    let mut diffs = BTreeMap::new();
    schema_diff("", &ours, &theirs, &mut diffs);
    let keys: Vec<&str> = diffs.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            " required",
            " x-kubernetes-validations",
            "a pattern",
            "b maxItems",
            "b[] type",
            "only property"
        ]
    );
}
