//! What a ResourceSet renders to, from its manifest and its providers' exported inputs: the
//! one pure function the CLI (`fluxop build rset`) and the reconciler share.

pub mod build;
pub mod filter;
pub mod inputs;

use serde_json::{Map, Value as Json};

use build::{BuildError, StepObjects, StepSpec};
use inputs::{InputSet, Source, Strategy};

pub const API_VERSION: &str = "fluxcd.controlplane.io/v1";
pub const RESOURCESET_KIND: &str = "ResourceSet";
pub const PROVIDER_KIND: &str = "ResourceSetInputProvider";
/// Labels every rendered object carries, naming the ResourceSet that owns it.
pub const OWNER_NAME_LABEL: &str = "resourceset.fluxcd.controlplane.io/name";
pub const OWNER_NAMESPACE_LABEL: &str = "resourceset.fluxcd.controlplane.io/namespace";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The spec breaks a rule the schema's CEL also holds (for API servers without CEL).
    #[error("{0}")]
    InvalidSpec(String),
    #[error("failed to compute inputs: {0}")]
    Inputs(#[from] inputs::Error),
    #[error("{0}")]
    Build(#[from] BuildError),
}

/// A provider's exported inputs, as a source of the ResourceSet.
pub fn provider_source(name: &str, namespace: &str, exported: &[InputSet]) -> Source {
    Source {
        api_version: API_VERSION.into(),
        kind: PROVIDER_KIND.into(),
        name: name.into(),
        namespace: namespace.into(),
        inputs: exported.to_vec(),
    }
}

/// What a ResourceSet renders to.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The steps in order (a ResourceSet without steps is one step named "").
    pub steps: Vec<StepObjects>,
    /// How many input sets the objects were rendered from.
    pub inputs: usize,
}

/// The steps and their objects, each object labelled with its owner and carrying
/// `spec.commonMetadata`.
pub fn render(rset: &Json, providers: &[Source]) -> Result<Rendered, RenderError> {
    let spec = &rset["spec"];
    validate(spec)?;
    let name = rset["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = rset["metadata"]["namespace"].as_str().unwrap_or_default();
    let own = Source {
        api_version: API_VERSION.into(),
        kind: RESOURCESET_KIND.into(),
        name: name.into(),
        namespace: namespace.into(),
        inputs: spec["inputs"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|i| i.as_object().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut providers = providers.to_vec();
    // The incumbent orders providers by kind, namespace and name.
    providers.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    providers.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
    let sources: Vec<Source> = std::iter::once(own).chain(providers).collect();
    let strategy = match spec["inputStrategy"]["name"].as_str() {
        Some("Permute") => Strategy::Permute {
            include_empty_providers: spec["inputStrategy"]["includeEmptyProviders"]
                .as_bool()
                .unwrap_or(false),
        },
        _ => Strategy::Flatten,
    };
    let sets = inputs::combine(&sources, strategy)?;
    let steps = steps_of(spec);
    let specs: Vec<StepSpec<'_>> = steps
        .iter()
        .map(|(name, resources, template)| StepSpec {
            name,
            resources,
            resources_template: template.as_deref(),
        })
        .collect();
    let mut built = build::build_steps(&specs, &sets)?;
    let common = &spec["commonMetadata"];
    for object in built.iter_mut().flat_map(|s| s.objects.iter_mut()) {
        set_metadata(object, "labels", &owner_labels(name, namespace));
        if let Some(labels) = common["labels"].as_object() {
            set_metadata(object, "labels", labels);
        }
        if let Some(annotations) = common["annotations"].as_object() {
            set_metadata(object, "annotations", annotations);
        }
    }
    Ok(Rendered {
        steps: built,
        inputs: sets.len(),
    })
}

fn owner_labels(name: &str, namespace: &str) -> Map<String, Json> {
    Map::from_iter([
        (OWNER_NAME_LABEL.to_string(), Json::String(name.into())),
        (
            OWNER_NAMESPACE_LABEL.to_string(),
            Json::String(namespace.into()),
        ),
    ])
}

/// Sets `metadata.<field>` keys, overriding what the object had.
fn set_metadata(object: &mut Json, field: &str, entries: &Map<String, Json>) {
    let Some(metadata) = object.get_mut("metadata").and_then(Json::as_object_mut) else {
        return;
    };
    let target = metadata
        .entry(field)
        .or_insert_with(|| Json::Object(Map::new()));
    if !target.is_object() {
        *target = Json::Object(Map::new());
    }
    if let Some(map) = target.as_object_mut() {
        for (k, v) in entries {
            map.insert(k.clone(), v.clone());
        }
    }
}

/// The spec's steps, or its resources as one unnamed step.
fn steps_of(spec: &Json) -> Vec<(String, Vec<Json>, Option<String>)> {
    let resources = |s: &Json| s["resources"].as_array().cloned().unwrap_or_default();
    let template = |s: &Json| s["resourcesTemplate"].as_str().map(String::from);
    match spec["steps"].as_array() {
        Some(steps) if !steps.is_empty() => steps
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or_default().to_string(),
                    resources(s),
                    template(s),
                )
            })
            .collect(),
        _ => vec![(String::new(), resources(spec), template(spec))],
    }
}

/// The rules the reconciler checks again (the schema holds them too, where CEL runs).
pub fn validate(spec: &Json) -> Result<(), RenderError> {
    let has_steps = spec["steps"].as_array().is_some_and(|s| !s.is_empty());
    let has_resources = spec["resources"].as_array().is_some_and(|r| !r.is_empty());
    let has_template = spec["resourcesTemplate"]
        .as_str()
        .is_some_and(|t| !t.is_empty());
    if has_steps && (has_resources || has_template) {
        return Err(RenderError::InvalidSpec(
            "spec.steps is mutually exclusive with spec.resources and spec.resourcesTemplate"
                .into(),
        ));
    }
    for step in spec["steps"].as_array().into_iter().flatten() {
        let empty = step["resources"].as_array().is_none_or(Vec::is_empty)
            && step["resourcesTemplate"].as_str().is_none_or(str::is_empty);
        if empty {
            return Err(RenderError::InvalidSpec(format!(
                "step {:?}: at least one of resources or resourcesTemplate must be set",
                step["name"].as_str().unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// Whether `labels` satisfy a label selector (matchLabels and matchExpressions, ANDed).
pub fn selector_matches(
    selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<bool, String> {
    for (key, value) in selector.match_labels.iter().flatten() {
        if labels.get(key) != Some(value) {
            return Ok(false);
        }
    }
    for requirement in selector.match_expressions.iter().flatten() {
        let values = requirement.values.as_deref().unwrap_or_default();
        let present = labels.get(&requirement.key);
        let holds = match requirement.operator.as_str() {
            "In" => present.is_some_and(|v| values.contains(v)),
            "NotIn" => present.is_none_or(|v| !values.contains(v)),
            "Exists" => present.is_some(),
            "DoesNotExist" => present.is_none(),
            other => return Err(format!("{other:?} is not a valid label selector operator")),
        };
        if !holds {
            return Ok(false);
        }
    }
    Ok(true)
}
