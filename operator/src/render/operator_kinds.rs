//! notification-controller learns the Flux Operator's kinds, as the incumbent teaches it: an
//! `Alert` may take events of a `FluxInstance`, `ResourceSet` or `ResourceSetInputProvider`
//! (`spec.eventSources[].kind`), a `Receiver` may trigger them (`spec.resources[].kind`), and
//! the controllers' `crd-controller` role may read and annotate them. Without this the API
//! server refuses an `Alert` on the instance's own events (the kind enum of the release's
//! CRDs lists Flux's kinds only). Every served version of the two CRDs is extended.

use serde_json::{Value, json};

use super::rbac;

/// The API group of the Flux Operator's kinds.
pub const GROUP: &str = "fluxcd.controlplane.io";

/// The kinds the incumbent adds, in its order. `FluxReport` emits no events and is not one.
pub const KINDS: [&str; 3] = ["FluxInstance", "ResourceSet", "ResourceSetInputProvider"];

/// Each CRD and the path, under a version's `spec` properties, of its kind enum.
const KIND_ENUMS: [(&str, &str); 2] = [
    (
        "alerts.notification.toolkit.fluxcd.io",
        "/eventSources/items/properties/kind/enum",
    ),
    (
        "receivers.notification.toolkit.fluxcd.io",
        "/resources/items/properties/kind/enum",
    ),
];

/// Adds [`KINDS`] to the kind enums of the Alert and Receiver CRDs, and a rule for
/// [`GROUP`] to the `crd-controller` cluster role of `namespace`.
pub fn accept(objects: &mut [Value], namespace: &str) {
    let crd_controller = rbac::name("crd-controller", namespace);
    for object in objects.iter_mut() {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match object["kind"].as_str() {
            Some("CustomResourceDefinition") => {
                let Some((_, path)) = KIND_ENUMS.iter().find(|(crd, _)| *crd == name.as_str())
                else {
                    continue;
                };
                for version in object["spec"]["versions"]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    let pointer =
                        format!("/schema/openAPIV3Schema/properties/spec/properties{path}");
                    if let Some(Value::Array(kinds)) = version.pointer_mut(&pointer) {
                        for kind in KINDS {
                            if !kinds.iter().any(|k| k == kind) {
                                kinds.push(json!(kind));
                            }
                        }
                    }
                }
            }
            Some("ClusterRole") if name == crd_controller => {
                if let Some(rules) = object["rules"].as_array_mut() {
                    rules.push(json!({
                        "apiGroups": [GROUP],
                        "resources": ["*"],
                        "verbs": ["*"],
                    }));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(name: &str, field: &str, versions: usize) -> Value {
        let version = json!({ "schema": { "openAPIV3Schema": { "properties": { "spec": {
            "properties": { field: { "items": { "properties": { "kind": {
                "enum": ["GitRepository", "FluxInstance"] } } } } } } } } } });
        json!({
            "kind": "CustomResourceDefinition",
            "metadata": { "name": name },
            "spec": { "versions": vec![version; versions] },
        })
    }

    #[test]
    fn every_version_of_alerts_and_receivers_accepts_the_operator_kinds_once() {
        let mut objects = vec![
            crd("alerts.notification.toolkit.fluxcd.io", "eventSources", 3),
            crd("receivers.notification.toolkit.fluxcd.io", "resources", 2),
            json!({ "kind": "ClusterRole", "metadata": { "name": "crd-controller-flux" },
                    "rules": [] }),
            json!({ "kind": "ClusterRole", "metadata": { "name": "flux-view-flux" },
                    "rules": [] }),
        ];
        accept(&mut objects, "flux");
        let expected = json!([
            "GitRepository",
            "FluxInstance",
            "ResourceSet",
            "ResourceSetInputProvider"
        ]);
        for (object, field) in [(&objects[0], "eventSources"), (&objects[1], "resources")] {
            for version in object["spec"]["versions"].as_array().unwrap() {
                let pointer = format!(
                    "/schema/openAPIV3Schema/properties/spec/properties/{field}/items/properties/kind/enum"
                );
                assert_eq!(version.pointer(&pointer), Some(&expected));
            }
        }
        assert_eq!(objects[2]["rules"][0]["apiGroups"], json!([GROUP]));
        assert_eq!(objects[3]["rules"], json!([]));
    }
}
