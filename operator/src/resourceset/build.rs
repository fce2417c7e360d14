//! Renders a ResourceSet's `resources` and `resourcesTemplate` once per input set, the way
//! the incumbent does: the same YAML re-serialisation of each resource before templating,
//! the same order (resources template-major, then the multi-document template input-major),
//! the same exclusion (`fluxcd.controlplane.io/reconcile: disabled`) and de-duplication
//! (first of each group/kind/namespace/name wins), and the same error texts.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value as Json;

use super::inputs::InputSet;
use crate::template::{Template, Value, goyaml};

/// The annotation that leaves a rendered object out.
pub const RECONCILE_ANNOTATION: &str = "fluxcd.controlplane.io/reconcile";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

impl BuildError {
    fn wrap(context: impl std::fmt::Display, inner: impl std::fmt::Display) -> Self {
        BuildError(format!("{context}: {inner}"))
    }
}

/// One step of a ResourceSet (a steps-less ResourceSet is one step without a name).
#[derive(Debug, Clone, Copy)]
pub struct StepSpec<'a> {
    pub name: &'a str,
    pub resources: &'a [Json],
    pub resources_template: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepObjects {
    pub name: String,
    pub objects: Vec<Json>,
}

/// Builds each step in order. An object already built by an earlier step is an error; a
/// step that builds nothing is kept (its name and place matter for the apply order).
pub fn build_steps(
    steps: &[StepSpec<'_>],
    inputs: &[InputSet],
) -> Result<Vec<StepObjects>, BuildError> {
    let mut step_of: HashMap<String, &str> = HashMap::new();
    let mut results = Vec::with_capacity(steps.len());
    for step in steps {
        let objects = build(step.resources, step.resources_template, inputs).map_err(|e| {
            if step.name.is_empty() {
                e
            } else {
                BuildError::wrap(format_args!("step {:?}", step.name), e)
            }
        })?;
        for object in &objects {
            let key = object_key(object);
            match step_of.get(key.as_str()) {
                Some(previous) if *previous == step.name => {}
                Some(previous) => {
                    return Err(BuildError(format!(
                        "duplicate resource {} in step {:?}, already defined in step {:?}",
                        display_name(object),
                        step.name,
                        previous
                    )));
                }
                None => {
                    step_of.insert(key, step.name);
                }
            }
        }
        results.push(StepObjects {
            name: step.name.to_string(),
            objects,
        });
    }
    Ok(results)
}

/// The objects of one step.
pub fn build(
    resources: &[Json],
    resources_template: Option<&str>,
    inputs: &[InputSet],
) -> Result<Vec<Json>, BuildError> {
    let mut objects = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut add = |object: Json, dedup: bool, objects: &mut Vec<Json>| {
        let key = object_key(&object);
        if dedup && seen.contains(&key) {
            return;
        }
        seen.insert(key);
        objects.push(object);
    };
    let sets: Vec<Value> = inputs
        .iter()
        .map(|set| Value::from_json(&Json::Object(set.clone())))
        .collect();
    for (i, resource) in resources.iter().enumerate() {
        let template = goyaml::to_yaml(resource);
        if sets.is_empty() {
            // Without inputs, each resource is rendered once and kept as it is (the
            // incumbent neither excludes nor de-duplicates these).
            let object = build_resource(&template, None)
                .map_err(|e| BuildError::wrap("failed to build resource", e))?;
            add(object, false, &mut objects);
            continue;
        }
        let parsed = Template::parse(&template).map_err(|e| {
            BuildError::wrap(
                format_args!("failed to build resources[{i}]"),
                BuildError::wrap("failed to parse template", e),
            )
        })?;
        for set in &sets {
            let object = render_one(&parsed, Some(set))
                .map_err(|e| BuildError::wrap(format_args!("failed to build resources[{i}]"), e))?;
            if !excluded(&object) {
                add(object, true, &mut objects);
            }
        }
    }
    if let Some(text) = resources_template.filter(|t| !t.is_empty()) {
        let parsed = Template::parse(text);
        let mut rendered = Vec::new();
        let context = if sets.is_empty() {
            "failed to build resource"
        } else {
            "failed to build resources"
        };
        let parsed = parsed.map_err(|e| {
            BuildError::wrap(
                context,
                BuildError::wrap("failed to parse multi-doc YAML template", e),
            )
        })?;
        let runs: Vec<Option<&Value>> = if sets.is_empty() {
            vec![None]
        } else {
            sets.iter().map(Some).collect()
        };
        for set in runs {
            let text = parsed.execute(&values(set)).map_err(|e| {
                BuildError::wrap(
                    context,
                    BuildError::wrap("failed to execute multi-doc YAML template", e),
                )
            })?;
            let docs = read_objects(&text).map_err(|e| {
                BuildError::wrap(
                    context,
                    BuildError::wrap("failed to read objects from multi-doc YAML", e),
                )
            })?;
            rendered.extend(docs);
        }
        for object in rendered {
            if !excluded(&object) {
                add(object, true, &mut objects);
            }
        }
    }
    Ok(objects)
}

fn values(set: Option<&Value>) -> BTreeMap<String, Value> {
    // Without inputs, `inputs` is an empty map: fields of it are missing keys.
    let inputs = set.cloned().unwrap_or_else(|| Value::map(BTreeMap::new()));
    BTreeMap::from([("inputs".to_string(), inputs)])
}

fn build_resource(template: &str, set: Option<&Value>) -> Result<Json, BuildError> {
    let parsed =
        Template::parse(template).map_err(|e| BuildError::wrap("failed to parse template", e))?;
    render_one(&parsed, set)
}

fn render_one(parsed: &Template, set: Option<&Value>) -> Result<Json, BuildError> {
    let text = parsed
        .execute(&values(set))
        .map_err(|e| BuildError::wrap("failed to execute template", e))?;
    read_object(&text).map_err(|e| BuildError::wrap("failed to read object", e))
}

/// The first document as a Kubernetes object (the YAML-or-JSON decoder of the incumbent).
fn read_object(text: &str) -> Result<Json, String> {
    let doc = goyaml::from_yaml_documents(text)?
        .into_iter()
        .next()
        .unwrap_or(Json::Null);
    as_object(doc)
}

/// Every object of a stream: Lists are expanded; documents that are not Kubernetes objects
/// (no apiVersion or name) and kustomize `Kustomization` files are left out.
fn read_objects(text: &str) -> Result<Vec<Json>, String> {
    let mut objects = Vec::new();
    for doc in goyaml::from_yaml_documents(text)? {
        if doc.is_null() {
            continue;
        }
        let object = as_object(doc)?;
        let kind = object["kind"].as_str().unwrap_or("");
        if kind.ends_with("List") && object.get("items").is_some_and(Json::is_array) {
            let items = object["items"].as_array().cloned().unwrap_or_default();
            for item in items {
                objects.push(as_object(item)?);
            }
            continue;
        }
        let api_version = object["apiVersion"].as_str().unwrap_or("");
        let name = object["metadata"]["name"].as_str().unwrap_or("");
        let is_kustomize_file =
            kind == "Kustomization" && api_version.starts_with("kustomize.config.k8s.io");
        if !api_version.is_empty() && !name.is_empty() && !is_kustomize_file {
            objects.push(object);
        }
    }
    Ok(objects)
}

fn as_object(doc: Json) -> Result<Json, String> {
    match &doc {
        Json::Object(map) => {
            if map
                .get("kind")
                .and_then(Json::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(format!(
                    "Object 'Kind' is missing in '{}'",
                    serde_json::to_string(&doc).unwrap_or_default()
                ));
            }
            Ok(doc)
        }
        other => Err(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            match other {
                Json::Array(_) => "array",
                Json::String(_) => "string",
                Json::Number(_) => "number",
                Json::Bool(_) => "bool",
                _ => "null",
            }
        )),
    }
}

fn excluded(object: &Json) -> bool {
    object["metadata"]["annotations"][RECONCILE_ANNOTATION].as_str() == Some("disabled")
}

/// `group/kind/namespace/name`: the version is not part of it, so one object cannot be
/// rendered twice under two versions.
pub fn object_key(object: &Json) -> String {
    let api_version = object["apiVersion"].as_str().unwrap_or("");
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    format!(
        "{group}/{}/{}/{}",
        object["kind"].as_str().unwrap_or(""),
        object["metadata"]["namespace"].as_str().unwrap_or(""),
        object["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// `Kind/namespace/name` (or `Kind/name` for cluster-scoped objects), as errors name objects.
pub fn display_name(object: &Json) -> String {
    let kind = object["kind"].as_str().unwrap_or("");
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    match object["metadata"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
    {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}
