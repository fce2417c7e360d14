//! Generated objects (namespace, storage claim, sync source and Kustomization) come from
//! handlebars templates: the built-in ones in `manifests-bundle/templates/`, each overridden
//! by a bundle's `templates/` file of the same name, and new ones a bundle adds. So a Flux
//! release can bring its own rendering rules without a new operator.
//!
//! Values a user writes reach templates through the `json` helper, which emits a quoted
//! scalar: a URL or path can never inject YAML.

use std::collections::BTreeMap;

use handlebars::{Handlebars, handlebars_helper};
use serde_json::Value;

/// The built-in templates, by file name.
pub const BUILT_IN: [(&str, &str); 3] = [
    (
        "namespace.yaml.hbs",
        include_str!("../../../manifests-bundle/templates/namespace.yaml.hbs"),
    ),
    (
        "storage.yaml.hbs",
        include_str!("../../../manifests-bundle/templates/storage.yaml.hbs"),
    ),
    (
        "sync.yaml.hbs",
        include_str!("../../../manifests-bundle/templates/sync.yaml.hbs"),
    ),
];

#[derive(Debug, thiserror::Error)]
#[error("template {name}: {reason}")]
pub struct Error {
    pub name: String,
    pub reason: String,
}

handlebars_helper!(json: |value: Json| serde_json::to_string(value).unwrap_or_default());

/// Renders every template (built-in, overridden or added by the bundle) with `data`, and
/// parses the output into objects, in template-name order.
pub fn render(bundle_templates: &BTreeMap<&str, &[u8]>, data: &Value) -> Result<Vec<Value>, Error> {
    let mut sources: BTreeMap<String, String> = BUILT_IN
        .iter()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect();
    for (name, content) in bundle_templates {
        if !name.ends_with(".yaml.hbs") || name.contains('/') {
            continue;
        }
        let text = String::from_utf8(content.to_vec()).map_err(|_| Error {
            name: name.to_string(),
            reason: "not UTF-8".into(),
        })?;
        sources.insert(name.to_string(), text);
    }
    let mut engine = Handlebars::new();
    engine.register_escape_fn(handlebars::no_escape);
    engine.register_helper("json", Box::new(json));
    let mut objects = Vec::new();
    for (name, source) in &sources {
        let failed = |reason: String| Error {
            name: name.clone(),
            reason,
        };
        let text = engine
            .render_template(source, data)
            .map_err(|e| failed(e.to_string()))?;
        let documents: Vec<Value> = serde_saphyr::from_str_multiple(&text)
            .map_err(|e| failed(format!("output is not YAML: {e}")))?;
        for document in documents.into_iter().filter(|d| !d.is_null()) {
            if document["kind"].as_str().is_none()
                || document["metadata"]["name"].as_str().is_none()
            {
                return Err(failed("an object has no kind or metadata.name".into()));
            }
            objects.push(document);
        }
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn data() -> Value {
        json!({ "namespace": "flux-system", "storage": null, "sync": null })
    }

    #[test]
    fn built_in_templates_render_only_what_is_asked_for() {
        let objects = render(&BTreeMap::new(), &data()).unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0]["kind"], "Namespace");
        assert_eq!(
            objects[0]["metadata"]["annotations"]["fluxcd.controlplane.io/prune"],
            "disabled"
        );
    }

    #[test]
    fn a_bundle_overrides_and_adds_templates() {
        let namespace = b"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{namespace}}\n  labels: {custom: 'yes'}\n";
        let extra = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flux-info\ndata: {namespace: {{json namespace}}}\n";
        let templates = BTreeMap::from([
            ("namespace.yaml.hbs", &namespace[..]),
            ("info.yaml.hbs", &extra[..]),
            ("README.md", &b"not a template"[..]),
        ]);
        let objects = render(&templates, &data()).unwrap();
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["ConfigMap", "Namespace"]);
        assert_eq!(objects[1]["metadata"]["labels"]["custom"], "yes");
    }

    #[test]
    fn user_values_cannot_inject_yaml() {
        let mut data = data();
        data["sync"] = json!({
            "name": "flux-system", "kind": "GitRepository", "sourceApiVersion": "source.toolkit.fluxcd.io/v1",
            "kustomizationApiVersion": "kustomize.toolkit.fluxcd.io/v1", "interval": "1m",
            "url": "https://example.com\nkind: Secret", "ref": "main", "path": "./"
        });
        let objects = render(&BTreeMap::new(), &data).unwrap();
        let source = objects
            .iter()
            .find(|o| o["kind"] == "GitRepository")
            .unwrap();
        assert_eq!(source["spec"]["url"], "https://example.com\nkind: Secret");
    }

    #[test]
    fn a_broken_template_is_an_error_naming_it() {
        let broken = b"{{#if}}";
        let error = render(&BTreeMap::from([("sync.yaml.hbs", &broken[..])]), &data()).unwrap_err();
        assert_eq!(error.name, "sync.yaml.hbs");
    }
}
