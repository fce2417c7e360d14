//! `spec.kustomize.patches`, applied last: strategic-merge patches (with the merge keys of the
//! built-in kinds and the `$patch: delete|replace` directives) and JSON6902 patches, each on
//! the objects its target selects. A patch that selects nothing, does not parse, or would move
//! an object to another namespace or rename it is an error naming the patch; one that is blank
//! or only comments is skipped.

use regex::Regex;
use serde_json::{Map, Value};

use crate::api::{Patch, PatchSelector};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("kustomize.patches[{index}]: {reason}")]
    Invalid { index: usize, reason: String },
    #[error("kustomize.patches[{index}] matches no rendered object (target {target})")]
    MatchesNothing { index: usize, target: String },
    #[error(
        "kustomize.patches[{index}] would change the identity of {object} (to {changed}); patches may not move or rename objects"
    )]
    MovesObject {
        index: usize,
        object: String,
        changed: String,
    },
    #[error("kustomize.patches[{index}] failed on {object}: {reason}")]
    Failed {
        index: usize,
        object: String,
        reason: String,
    },
}

/// `kind/namespace/name`, for messages and identity checks.
fn identity(object: &Value) -> String {
    format!(
        "{}/{}/{}",
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["namespace"].as_str().unwrap_or_default(),
        object["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// One requirement of a label or annotation selector.
#[derive(Debug)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// Parses `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
fn parse_selector(text: &str) -> Result<Vec<Requirement>, String> {
    let mut requirements = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        // A set expression holds commas inside parentheses: take up to the closing one.
        let end = match (rest.find('('), rest.find(',')) {
            (Some(open), Some(comma)) if open < comma => {
                rest[open..].find(')').map(|close| open + close + 1)
            }
            (_, Some(comma)) => Some(comma),
            _ => None,
        }
        .unwrap_or(rest.len());
        let term = rest[..end].trim();
        rest = rest[end..].trim_start_matches(',').trim();
        let words: Vec<&str> = term.split_whitespace().collect();
        let set = |values: &str| -> Vec<String> {
            values
                .trim_matches(|c| c == '(' || c == ')')
                .split(',')
                .map(|v| v.trim().to_string())
                .collect()
        };
        let requirement = if let Some((key, value)) = term.split_once("!=") {
            Requirement::NotEquals(key.trim().into(), value.trim().into())
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            Requirement::Equals(key.trim().into(), value.trim().into())
        } else if words.len() >= 3 && words[1] == "in" {
            Requirement::In(words[0].into(), set(&words[2..].join(" ")))
        } else if words.len() >= 3 && words[1] == "notin" {
            Requirement::NotIn(words[0].into(), set(&words[2..].join(" ")))
        } else if let Some(key) = term.strip_prefix('!') {
            Requirement::NotExists(key.trim().into())
        } else if words.len() == 1 {
            Requirement::Exists(term.into())
        } else {
            return Err(format!("cannot read selector term {term:?}"));
        };
        requirements.push(requirement);
    }
    Ok(requirements)
}

fn selector_matches(requirements: &[Requirement], values: &Map<String, Value>) -> bool {
    let get = |key: &str| values.get(key).and_then(Value::as_str);
    requirements.iter().all(|r| match r {
        Requirement::Equals(k, v) => get(k) == Some(v),
        Requirement::NotEquals(k, v) => get(k) != Some(v),
        Requirement::In(k, set) => get(k).is_some_and(|v| set.iter().any(|s| s == v)),
        Requirement::NotIn(k, set) => get(k).is_none_or(|v| !set.iter().any(|s| s == v)),
        Requirement::Exists(k) => values.contains_key(k),
        Requirement::NotExists(k) => !values.contains_key(k),
    })
}

/// A compiled target: every set field must match. As in kustomize, `group`, `version`,
/// `kind`, `name` and `namespace` are whole-string regular expressions (`kind:
/// (GitRepository|OCIRepository)`), an empty one matches anything; the label and annotation
/// selectors are Kubernetes label selectors.
struct Target {
    group: Option<Regex>,
    version: Option<Regex>,
    kind: Option<Regex>,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: Vec<Requirement>,
    annotations: Vec<Requirement>,
}

impl Target {
    fn compile(selector: &PatchSelector) -> Result<Self, String> {
        let regex = |pattern: &Option<String>, what: &str| -> Result<Option<Regex>, String> {
            pattern
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(|p| {
                    Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                        format!("target.{what} {p:?} is not a valid regular expression: {e}")
                    })
                })
                .transpose()
        };
        let selector_of = |text: &Option<String>, what: &str| -> Result<Vec<Requirement>, String> {
            text.as_deref()
                .filter(|t| !t.is_empty())
                .map(|t| parse_selector(t).map_err(|e| format!("target.{what}: {e}")))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        Ok(Self {
            group: regex(&selector.group, "group")?,
            version: regex(&selector.version, "version")?,
            kind: regex(&selector.kind, "kind")?,
            name: regex(&selector.name, "name")?,
            namespace: regex(&selector.namespace, "namespace")?,
            labels: selector_of(&selector.label_selector, "labelSelector")?,
            annotations: selector_of(&selector.annotation_selector, "annotationSelector")?,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let empty = Map::new();
        let labels = object["metadata"]["labels"].as_object().unwrap_or(&empty);
        let annotations = object["metadata"]["annotations"]
            .as_object()
            .unwrap_or(&empty);
        let matches =
            |regex: &Option<Regex>, value: &str| regex.as_ref().is_none_or(|r| r.is_match(value));
        matches(&self.group, group)
            && matches(&self.version, version)
            && matches(&self.kind, object["kind"].as_str().unwrap_or_default())
            && self
                .name
                .as_ref()
                .is_none_or(|r| r.is_match(object["metadata"]["name"].as_str().unwrap_or_default()))
            && self.namespace.as_ref().is_none_or(|r| {
                r.is_match(object["metadata"]["namespace"].as_str().unwrap_or_default())
            })
            && selector_matches(&self.labels, labels)
            && selector_matches(&self.annotations, annotations)
    }
}

/// The merge key of a list field of a built-in kind, by field name and where it sits.
fn merge_key(path: &[String], field: &str) -> Option<&'static str> {
    let in_container = path
        .iter()
        .any(|p| p == "containers" || p == "initContainers" || p == "ephemeralContainers");
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" | "volumeDevices" => Some("mountPath"),
        "ports" if in_container => Some("containerPort"),
        "ports" => Some("port"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        _ => None,
    }
}

fn directive(value: &Value) -> Option<&str> {
    value.get("$patch").and_then(Value::as_str)
}

/// A copy of `value` without strategic-merge directives.
fn without_directives(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), without_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_directives).collect()),
        other => other.clone(),
    }
}

/// Strategic merge of `patch` into `target`.
fn strategic_merge(target: &mut Value, patch: &Value, path: &mut Vec<String>) {
    let Value::Object(patch_map) = patch else {
        *target = patch.clone();
        return;
    };
    if directive(patch) == Some("replace") {
        *target = without_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    for (key, value) in patch_map {
        if key.starts_with('$') {
            continue;
        }
        let Some(target_map) = target.as_object_mut() else {
            return;
        };
        if value.is_null() || directive(value) == Some("delete") {
            target_map.remove(key);
            continue;
        }
        path.push(key.clone());
        match (target_map.get_mut(key), value) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => {
                strategic_merge(existing, value, path)
            }
            (Some(Value::Array(existing)), Value::Array(items)) => {
                match merge_key(&path[..path.len() - 1], key) {
                    Some(merge_key) => merge_list(existing, items, merge_key, path),
                    None => {
                        *existing = items
                            .iter()
                            .filter(|i| directive(i).is_none())
                            .map(without_directives)
                            .collect()
                    }
                }
            }
            _ => {
                target_map.insert(key.clone(), without_directives(value));
            }
        }
        path.pop();
    }
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], merge_key: &str, path: &mut Vec<String>) {
    if items
        .iter()
        .any(|i| directive(i) == Some("replace") && i.get(merge_key).is_none())
    {
        *existing = items
            .iter()
            .filter(|i| directive(i).is_none())
            .map(without_directives)
            .collect();
        return;
    }
    for item in items {
        let key = item.get(merge_key);
        let position = key.and_then(|k| existing.iter().position(|e| e.get(merge_key) == Some(k)));
        match (directive(item), position) {
            (Some("delete"), Some(index)) => {
                existing.remove(index);
            }
            (Some("delete"), None) => {}
            (_, Some(index)) => strategic_merge(&mut existing[index], item, path),
            (_, None) => existing.push(without_directives(item)),
        }
    }
}

/// Is `text` without any YAML content: blank, or comments only?
fn is_blank(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .all(|line| line.is_empty() || line.starts_with('#'))
}

/// Applies the patches in order.
pub fn apply(objects: &mut Vec<Value>, patches: &[Patch]) -> Result<(), Error> {
    for (index, patch) in patches.iter().enumerate() {
        // A patch with nothing in it (a placeholder, or one commented out) changes nothing,
        // so it is no reason to refuse the whole instance.
        if is_blank(&patch.patch) {
            continue;
        }
        let invalid = |reason: String| Error::Invalid { index, reason };
        let document: Value =
            serde_saphyr::from_str(&patch.patch).map_err(|e| invalid(format!("not YAML: {e}")))?;
        let selector = match (&patch.target, &document) {
            (Some(target), _) => target.clone(),
            // A strategic-merge patch without a target names its object itself.
            (None, Value::Object(_)) => PatchSelector {
                kind: document["kind"].as_str().map(str::to_string),
                name: document["metadata"]["name"].as_str().map(regex::escape),
                ..PatchSelector::default()
            },
            (None, _) => return Err(invalid("a JSON6902 patch needs a target".into())),
        };
        let target = Target::compile(&selector).map_err(invalid)?;
        let operations = match &document {
            Value::Array(_) => Some(
                serde_json::from_value::<json_patch::Patch>(document.clone())
                    .map_err(|e| invalid(format!("not a JSON6902 patch: {e}")))?,
            ),
            Value::Object(_) => None,
            _ => {
                return Err(invalid(
                    "expected a strategic-merge object or a list of JSON6902 operations".into(),
                ));
            }
        };
        let mut matched = 0;
        let mut deleted: Vec<usize> = Vec::new();
        for (position, object) in objects.iter_mut().enumerate() {
            if !target.matches(object) {
                continue;
            }
            matched += 1;
            let before = identity(object);
            match &operations {
                Some(operations) => {
                    json_patch::patch(object, operations).map_err(|e| Error::Failed {
                        index,
                        object: before.clone(),
                        reason: e.to_string(),
                    })?
                }
                None if directive(&document) == Some("delete") => {
                    deleted.push(position);
                    continue;
                }
                None => {
                    // The patch's own identity fields only select; they never overwrite.
                    let mut body = document.clone();
                    if let Some(map) = body.as_object_mut() {
                        map.remove("apiVersion");
                        map.remove("kind");
                    }
                    if let Some(metadata) = body["metadata"].as_object_mut() {
                        metadata.remove("name");
                        metadata.remove("namespace");
                    }
                    strategic_merge(object, &body, &mut Vec::new());
                }
            }
            let after = identity(object);
            if after != before {
                return Err(Error::MovesObject {
                    index,
                    object: before,
                    changed: after,
                });
            }
        }
        if matched == 0 {
            let target = serde_json::to_string(&selector).unwrap_or_default();
            return Err(Error::MatchesNothing { index, target });
        }
        for position in deleted.into_iter().rev() {
            objects.remove(position);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn selectors_read_equality_set_and_existence_terms() {
        let labels = json!({ "app": "web", "tier": "front", "team": "a" });
        let labels = labels.as_object().unwrap();
        let matches = |text: &str| selector_matches(&parse_selector(text).unwrap(), labels);
        assert!(matches("app=web,tier!=back"));
        assert!(matches(
            "app==web, tier in (front, middle), team notin (b), app, !missing"
        ));
        assert!(!matches("app=web,tier notin (front)"));
        assert!(!matches("missing"));
        assert!(parse_selector("app web extra").is_err());
    }

    #[test]
    fn directives_never_reach_the_objects() {
        let mut target = json!({ "spec": { "list": [{ "name": "a", "x": 1 }] } });
        let patch = json!({ "spec": { "$setElementOrder/list": [], "list": [{ "$patch": "replace" }, { "name": "b" }] } });
        strategic_merge(&mut target, &patch, &mut Vec::new());
        assert_eq!(target, json!({ "spec": { "list": [{ "name": "b" }] } }));
    }
}
