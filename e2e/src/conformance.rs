//! Conformance with the incumbent (the Flux Operator's CLI, `flux-operator build instance`):
//! both render the same `FluxInstance` from the same bundle, the objects are normalised
//! (only where the two spellings mean the same thing to Kubernetes and to the Flux
//! controllers) and compared object by object, field by field. `tests/conformance.rs` holds
//! the corpus and the list of deliberate differences.
//!
//! The incumbent's binary comes from `FLUXOP_E2E_FLUX_OPERATOR` (`hack/testbed-build.sh
//! flux-operator`, set by `hack/test.sh`).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::{Map, Value};

use crate::fluxop_bin;

/// The incumbent's CLI.
pub fn incumbent_bin() -> PathBuf {
    let path = std::env::var("FLUXOP_E2E_FLUX_OPERATOR").unwrap_or_else(|_| {
        panic!(
            "FLUXOP_E2E_FLUX_OPERATOR is not set: the conformance test needs the Flux \
             Operator's CLI. Run it with hack/test.sh, or export \
             FLUXOP_E2E_FLUX_OPERATOR=$(hack/testbed-build.sh flux-operator | tail -n 1)/flux-operator"
        )
    });
    PathBuf::from(path)
}

/// The documents of a multi-document YAML stream, as JSON.
pub fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("rendered YAML parses")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn run(mut command: Command) -> Result<Vec<Value>, String> {
    let output = command.output().expect("the renderer runs");
    if output.status.success() {
        Ok(documents(&String::from_utf8_lossy(&output.stdout)))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// `flux-operator build instance -f FILE --distribution-artifact ARTIFACT`; the error text
/// when it refuses. `docker_config` is an empty directory, so no credentials of the machine
/// are used.
pub fn render_incumbent(
    instance: &Path,
    artifact: &str,
    docker_config: &Path,
) -> Result<Vec<Value>, String> {
    let mut command = Command::new(incumbent_bin());
    command
        .args(["build", "instance", "-f"])
        .arg(instance)
        .args(["--distribution-artifact", artifact])
        .env("DOCKER_CONFIG", docker_config);
    run(command)
}

/// `fluxop build instance -f FILE --bundle DIR`; the error text when it refuses.
pub fn render_fluxop(instance: &Path, bundle: &Path) -> Result<Vec<Value>, String> {
    let mut command = Command::new(fluxop_bin());
    command
        .args(["build", "instance", "-f"])
        .arg(instance)
        .arg("--bundle")
        .arg(bundle);
    run(command)
}

/// One difference left after normalisation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    /// The corpus instance (file stem).
    pub instance: String,
    /// `Kind/namespace/name`, `Kind/name` when cluster-scoped, `<render>` for a refusal.
    pub object: String,
    /// Dotted path in the normalised object; empty for the object as a whole.
    pub path: String,
    /// The incumbent's value (`<absent>` when it has none).
    pub incumbent: String,
    /// fluxop's value (`<absent>` when it has none).
    pub fluxop: String,
}

impl fmt::Display for Difference {
    /// `instance | object | path | incumbent -> fluxop`: what the patterns of the list of
    /// deliberate differences are matched against.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} | {} | {} | {} -> {}",
            self.instance, self.object, self.path, self.incumbent, self.fluxop
        )
    }
}

const ABSENT: &str = "<absent>";

/// The names of a keyed list in their order, compared only when both sides have the same
/// names (env order matters to `$(VAR)` references; an added item is reported by itself).
const ORDER: &str = "<order>";

/// Whole-string match of `pattern`, where `*` stands for any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn object_id(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("?");
    let name = object["metadata"]["name"].as_str().unwrap_or("?");
    match object["metadata"]["namespace"].as_str() {
        Some(namespace) => format!("{kind}/{namespace}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// What is normalised, and why each is an equivalence rather than a difference:
///
/// - **object order**: objects are keyed by kind, namespace and name; both tools apply with
///   server-side apply, where the order of the stream changes nothing once applied.
/// - **container args**: turned into a map from flag to value. Flux's controllers parse
///   their flags with pflag, for which `--flag value` and `--flag=value` are one spelling,
///   a bare boolean `--flag` is `--flag=true`, and the order of distinct flags does not
///   matter. A flag given twice keeps every value, in order (the last one wins for pflag),
///   so a duplicate stays visible. `--feature-gates` is the exception: the controllers merge
///   its occurrences into one map (see `feature_gates`), so it becomes `{gate: bool}`.
/// - **images**: `repository:tag@sha256:digest` is compared as `repository:tag`. fluxop pins
///   the digest its bundle's catalog records for that tag (as the incumbent's operator does
///   from the same catalog); the incumbent's CLI reads the tag only. The repository and the
///   tag are still compared.
/// - **`app.kubernetes.io/managed-by`**: fluxop writes `fluxop` where the incumbent writes
///   `flux-operator`; each names the tool that manages the object, so fluxop's value is read
///   as the incumbent's. Every other label, the owner labels
///   `fluxcd.controlplane.io/name`/`namespace` included, is compared as is.
/// - **lists of named items** (containers, env, volumes, ports, volume mounts): keyed by
///   name, so one added entry shows as one difference, not as every later index shifting.
///   Kubernetes merges these lists by name (or by a key that the names follow here) under
///   server-side apply. Their order is still compared (as `<order>`) when both sides have
///   the same items: it matters to env entries that refer to earlier ones.
pub fn normalise(object: &Value) -> Value {
    normalise_at(object, "")
}

fn normalise_at(value: &Value, key: &str) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let normalised = match (k.as_str(), v) {
                    ("args", Value::Array(args)) if key == "containers" => args_map(args),
                    ("image", Value::String(image)) if key == "containers" => {
                        Value::String(without_digest(image))
                    }
                    ("app.kubernetes.io/managed-by", Value::String(s)) if s == "fluxop" => {
                        Value::String("flux-operator".into())
                    }
                    _ => normalise_at(v, k),
                };
                out.insert(k.clone(), normalised);
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let named = !items.is_empty()
                && items
                    .iter()
                    .all(|i| i.get("name").and_then(Value::as_str).is_some());
            let unique: BTreeSet<&str> = items
                .iter()
                .filter_map(|i| i.get("name").and_then(Value::as_str))
                .collect();
            if named && unique.len() == items.len() {
                // Marked as a keyed list so that its paths read `[name]`.
                let mut out = Map::new();
                for item in items {
                    let name = item["name"].as_str().unwrap_or_default();
                    out.insert(format!("[{name}]"), normalise_at(item, key));
                }
                let order = items.iter().map(|i| i["name"].clone()).collect();
                out.insert(ORDER.into(), Value::Array(order));
                Value::Object(out)
            } else {
                Value::Array(items.iter().map(|i| normalise_at(i, key)).collect())
            }
        }
        other => other.clone(),
    }
}

fn without_digest(image: &str) -> String {
    match image.split_once("@sha256:") {
        // Only when a tag remains: a digest alone is the whole reference.
        Some((named, _))
            if named
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':')) =>
        {
            named.to_string()
        }
        _ => image.to_string(),
    }
}

/// Container args as `{flag: value}`; a repeated flag as the list of its values in order;
/// anything not a flag under `<arg N>`.
fn args_map(args: &[Value]) -> Value {
    let mut values: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let strings: Vec<String> = args
        .iter()
        .map(|a| {
            a.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| a.to_string())
        })
        .collect();
    let mut i = 0;
    while i < strings.len() {
        let arg = &strings[i];
        if let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) {
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name.to_string(), Value::String(value.to_string())),
                None => match strings.get(i + 1) {
                    Some(next) if !next.starts_with('-') => {
                        i += 1;
                        (flag.to_string(), Value::String(next.clone()))
                    }
                    _ => (flag.to_string(), Value::String("true".into())),
                },
            };
            values.entry(format!("--{name}")).or_default().push(value);
        } else {
            values
                .entry(format!("<arg {i}>"))
                .or_default()
                .push(Value::String(arg.clone()));
        }
        i += 1;
    }
    Value::Object(
        values
            .into_iter()
            .map(|(k, mut v)| {
                let value = if k == "--feature-gates" {
                    feature_gates(&v)
                } else if v.len() == 1 {
                    v.remove(0)
                } else {
                    Value::Array(v)
                };
                (k, value)
            })
            .collect(),
    )
}

/// `--feature-gates` as `{gate: bool}`. The controllers read it with component-base's
/// `MapStringBool` (through fluxcd/pkg/runtime/features): every occurrence adds its
/// comma-separated `gate=bool` pairs to one map, a later pair of the same gate winning. So
/// `--feature-gates=A=true --feature-gates=B=false` is `--feature-gates=A=true,B=false`.
fn feature_gates(values: &[Value]) -> Value {
    let mut gates = Map::new();
    for pair in values
        .iter()
        .filter_map(Value::as_str)
        .flat_map(|v| v.split(','))
        .filter(|p| !p.is_empty())
    {
        let (gate, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = match value.trim() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Value::Bool(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Value::Bool(false),
            other => Value::String(other.to_string()),
        };
        gates.insert(gate.trim().to_string(), value);
    }
    Value::Object(gates)
}

fn show(value: Option<&Value>) -> String {
    match value {
        None => ABSENT.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The differences between two renders of one instance, after normalisation; sorted.
pub fn compare(
    instance: &str,
    incumbent: &Result<Vec<Value>, String>,
    fluxop: &Result<Vec<Value>, String>,
) -> Vec<Difference> {
    let difference = |object: &str, path: &str, a: String, b: String| Difference {
        instance: instance.to_string(),
        object: object.to_string(),
        path: path.to_string(),
        incumbent: a,
        fluxop: b,
    };
    let (incumbent, fluxop) = match (incumbent, fluxop) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let outcome = |r: &Result<Vec<Value>, String>| match r {
                Ok(objects) => format!("{} objects", objects.len()),
                Err(e) => format!("refused: {e}"),
            };
            return vec![difference("<render>", "", outcome(a), outcome(b))];
        }
    };
    let keyed = |objects: &[Value]| -> BTreeMap<String, Value> {
        objects
            .iter()
            .map(|o| (object_id(o), normalise(o)))
            .collect()
    };
    let (a, b) = (keyed(incumbent), keyed(fluxop));
    let mut out = Vec::new();
    for id in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        match (a.get(id), b.get(id)) {
            (Some(x), Some(y)) => {
                let mut leaves = Vec::new();
                diff_values("", Some(x), Some(y), &mut leaves);
                out.extend(
                    leaves
                        .into_iter()
                        .map(|(path, x, y)| difference(id, &path, x, y)),
                );
            }
            (x, y) => {
                let present =
                    |v: Option<&Value>| if v.is_some() { "present" } else { ABSENT }.to_string();
                out.push(difference(id, "", present(x), present(y)));
            }
        }
    }
    out.sort();
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else if key.starts_with('[') {
        format!("{path}{key}")
    } else {
        format!("{path}.{key}")
    }
}

fn same_names(a: Option<&Value>, b: Option<&Value>) -> bool {
    let names = |v: Option<&Value>| -> BTreeSet<String> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|n| n.to_string())
            .collect()
    };
    names(a) == names(b)
}

fn diff_values(
    path: &str,
    a: Option<&Value>,
    b: Option<&Value>,
    out: &mut Vec<(String, String, String)>,
) {
    match (a, b) {
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            for key in x.keys().chain(y.keys()).collect::<BTreeSet<_>>() {
                let (p, q) = (x.get(key), y.get(key));
                if key != ORDER {
                    diff_values(&join(path, key), p, q, out);
                } else if same_names(p, q) && p != q {
                    out.push((join(path, key), show(p), show(q)));
                }
            }
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_values(&format!("{path}[{i}]"), Some(p), Some(q), out);
            }
        }
        // Lists of different lengths: the items one side has and the other lacks, as
        // `path[]` (a multiset difference; the order of the common items is not compared).
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            let mut rest: Vec<&Value> = y.iter().collect();
            for item in x {
                match rest.iter().position(|r| *r == item) {
                    Some(i) => {
                        rest.remove(i);
                    }
                    None => out.push((format!("{path}[]"), show(Some(item)), ABSENT.into())),
                }
            }
            for item in rest {
                out.push((format!("{path}[]"), ABSENT.into(), show(Some(item))));
            }
        }
        (x, y) if x != y => out.push((path.to_string(), show(x), show(y))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn glob_matches_whole_strings_with_stars() {
        assert!(glob("a*c", "abbbc"));
        assert!(glob("*", ""));
        assert!(glob("a | * | b", "a | x | b"));
        assert!(!glob("a*c", "abcd"));
        assert!(!glob("abc", "ab"));
    }

    #[test]
    fn equivalent_spellings_normalise_to_one() {
        let a = json!({"kind": "Deployment", "metadata": {"name": "x", "labels": {"app.kubernetes.io/managed-by": "fluxop"}},
            "spec": {"containers": [{"name": "manager", "image": "r/c:v1@sha256:ab",
            "args": ["--watch-all-namespaces", "--log-level", "info", "--x=1"]}]}});
        let b = json!({"kind": "Deployment", "metadata": {"name": "x", "labels": {"app.kubernetes.io/managed-by": "flux-operator"}},
            "spec": {"containers": [{"name": "manager", "image": "r/c:v1",
            "args": ["--x=1", "--log-level=info", "--watch-all-namespaces=true"]}]}});
        assert_eq!(normalise(&a), normalise(&b));
        let gates = |args: Value| normalise(&json!({"containers": [{"name": "m", "args": args}]}));
        assert_eq!(
            gates(json!(["--feature-gates=A=true", "--feature-gates=B=false"])),
            gates(json!(["--feature-gates=B=false,A=true"]))
        );
        assert_eq!(without_digest("r/c@sha256:ab"), "r/c@sha256:ab");
        assert_eq!(
            without_digest("host:5000/c@sha256:ab"),
            "host:5000/c@sha256:ab"
        );
    }

    #[test]
    fn the_order_of_named_items_is_compared_only_when_both_have_the_same() {
        let env = |names: &[&str]| {
            let items: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
            Ok(vec![
                json!({"kind": "Pod", "metadata": {"name": "p"}, "env": items}),
            ])
        };
        let diffs = |a: &[&str], b: &[&str]| -> Vec<String> {
            compare("i", &env(a), &env(b))
                .iter()
                .map(|d| d.path.clone())
                .collect()
        };
        assert_eq!(diffs(&["a", "b"], &["b", "a"]), ["env.<order>"]);
        assert_eq!(diffs(&["a", "b"], &["a", "b", "c"]), ["env[c]"]);
    }

    #[test]
    fn differences_are_reported_per_leaf() {
        let a = Ok(vec![
            json!({"kind": "Service", "metadata": {"name": "s", "namespace": "n"}, "spec": {"p": 1}}),
        ]);
        let b = Ok(vec![
            json!({"kind": "Service", "metadata": {"name": "s", "namespace": "n"}, "spec": {"p": 2, "q": true}}),
            json!({"kind": "Namespace", "metadata": {"name": "n"}}),
        ]);
        let diffs: Vec<String> = compare("i", &a, &b).iter().map(|d| d.to_string()).collect();
        assert_eq!(
            diffs,
            [
                "i | Namespace/n |  | <absent> -> present",
                "i | Service/n/s | spec.p | 1 -> 2",
                "i | Service/n/s | spec.q | <absent> -> true",
            ]
        );
    }
}
