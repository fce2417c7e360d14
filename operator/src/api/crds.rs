//! The CRDs of the API as YAML: what `fluxop crds` prints and `crds/` holds.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{FluxInstance, FluxReport};

/// Every CRD fluxop owns, in a stable order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        FluxInstance::crd(),
        FluxReport::crd(),
        super::fleet::FluxFleet::crd(),
        like_incumbent(super::ResourceSet::crd(), true),
        like_incumbent(super::ResourceSetInputProvider::crd(), false),
    ]
    .into_iter()
    .map(without_nullable_enums)
    .collect()
}

/// An optional enum comes out of the schema generator as `nullable: true` with `null` among
/// its values, and the API server then refuses `field: null` ("Unsupported value: null"),
/// which templating tools write for an unset value. Without `nullable`, the API server drops
/// a null before validating, as it does for the incumbent's CRDs.
fn without_nullable_enums(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn strip(schema: &mut serde_json::Value) {
        match schema {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Array(values)) = map.get_mut("enum")
                    && values.iter().any(serde_json::Value::is_null)
                {
                    values.retain(|v| !v.is_null());
                    map.remove("nullable");
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&crd).expect("a CRD serializes");
    strip(&mut value["spec"]["versions"]);
    serde_json::from_value(value).expect("the CRD still deserializes")
}

/// The ResourceSet and ResourceSetInputProvider CRDs in the incumbent's shape, where the
/// derive's output differs without a reason of fluxop's own:
/// - no `nullable: true` on optional fields: the incumbent marks none, so the API server
///   drops a `field: null` before validating, and fluxop's CRD must do the same to accept
///   and store the same objects;
/// - `listKind` and the `apiVersion`, `kind` and `metadata` root properties spelled out;
/// - with `optional_spec`, no `spec` in the root's `required` (the incumbent's ResourceSet
///   spec is optional; an absent one reads as empty, see [`super::ResourceSetSpec`]).
fn like_incumbent(crd: CustomResourceDefinition, optional_spec: bool) -> CustomResourceDefinition {
    fn strip(schema: &mut serde_json::Value) {
        match schema {
            serde_json::Value::Object(map) => {
                if map.get("nullable") == Some(&serde_json::Value::Bool(true)) {
                    map.remove("nullable");
                }
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut value = serde_json::to_value(&crd).expect("a CRD serializes");
    let names = &mut value["spec"]["names"];
    names["listKind"] = format!("{}List", names["kind"].as_str().expect("a kind")).into();
    for version in value["spec"]["versions"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        strip(version);
        let root = &mut version["schema"]["openAPIV3Schema"];
        let properties = root["properties"]
            .as_object_mut()
            .expect("the root schema has properties");
        properties.insert("apiVersion".into(), serde_json::json!({ "type": "string" }));
        properties.insert("kind".into(), serde_json::json!({ "type": "string" }));
        properties.insert("metadata".into(), serde_json::json!({ "type": "object" }));
        if optional_spec
            && let Some(required) = root.get_mut("required").and_then(|r| r.as_array_mut())
        {
            required.retain(|r| r != "spec");
            if required.is_empty() {
                root.as_object_mut()
                    .expect("the root schema is an object")
                    .remove("required");
            }
        }
    }
    serde_json::from_value(value).expect("the CRD still deserializes")
}

/// File name of a CRD in `crds/`: `<group>_<plural>.yaml`, the kubebuilder convention.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// One CRD as a YAML document (without the `---` separator).
pub fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    crate::yaml::to_string(crd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd_json(crd: &CustomResourceDefinition) -> serde_json::Value {
        serde_json::to_value(crd).expect("a CRD serializes")
    }

    /// `crds/` (for deploy/ and kubectl) and the chart's `crds/` (Helm installs those first).
    #[test]
    fn checked_in_crds_are_the_output_of_fluxop_crds() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for relative in ["crds", "charts/fluxop/crds"] {
            let dir = root.join(relative);
            for crd in all() {
                let path = dir.join(file_name(&crd));
                let checked_in = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                    panic!(
                        "{}: {e}; run `cargo run -p fluxop -- crds --dir {relative}`",
                        path.display()
                    )
                });
                assert_eq!(
                    checked_in,
                    to_yaml(&crd).expect("CRD serializes to YAML"),
                    "{} is stale: run `cargo run -p fluxop -- crds --dir {relative}` and commit the result",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn crd_yaml_parses_back_to_the_same_crd() {
        for crd in all() {
            let yaml = to_yaml(&crd).expect("serializes");
            let back: CustomResourceDefinition = serde_saphyr::from_str(&yaml).expect("parses");
            assert_eq!(crd_json(&back), crd_json(&crd));
        }
    }

    #[test]
    fn instance_crd_carries_names_columns_and_cel_rules_of_the_v1_api() {
        let crd = crd_json(&FluxInstance::crd());
        assert_eq!(
            crd["spec"]["names"]["shortNames"],
            serde_json::json!(["instance"])
        );
        assert_eq!(
            crd["spec"]["names"]["categories"],
            serde_json::json!(["fluxcd"])
        );
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["subresources"]["status"], serde_json::json!({}));
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["name"].as_str().expect("column name"))
            .collect();
        assert_eq!(columns, ["Age", "Ready", "Status", "Revision"]);
        let text = crd.to_string();
        for message in [
            "the only accepted name for a FluxInstance is 'flux'",
            "Sync name is immutable",
            ".spec.storage must be set when .spec.sharding.storage is 'persistent'",
            ".objectLevelWorkloadIdentity must be set to true when .multitenantWorkloadIdentity is set to true",
        ] {
            assert!(
                text.contains(message),
                "CRD lacks the rule with message {message:?}"
            );
        }
    }
}
