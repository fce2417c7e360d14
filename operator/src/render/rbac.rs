//! The objects of a release's `rbac.yaml` (the `critical-pods` quota, the `crd-controller`,
//! `flux-edit` and `flux-view` cluster roles, the `cluster-reconciler` and `crd-controller`
//! bindings) are named after the namespace, `<name>-<namespace>`, as `flux install` and the
//! Flux Operator name them (kustomize's `nameSuffix` over `rbac.yaml`). So a cluster installed
//! either way is adopted in place, with one set of them, and two instances in two namespaces
//! do not share cluster-wide names. Bindings follow the roles they reference; `cluster-admin`,
//! which the file does not define, keeps its name. Aggregation (`flux-edit`, `flux-view`) is
//! by label, so it needs no change.

use serde_json::{Value, json};

/// The name of `upstream`, an object of the release's `rbac.yaml`, in `namespace`.
pub fn name(upstream: &str, namespace: &str) -> String {
    format!("{upstream}-{namespace}")
}

/// Renames the objects of a release's `rbac.yaml` for `namespace`, and the role references
/// of its bindings that point at a role it defines.
pub fn name_for_namespace(rbac: &mut [Value], namespace: &str) {
    let roles: Vec<(String, String)> = rbac
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
        .filter_map(|o| {
            let kind = o["kind"].as_str()?.to_string();
            Some((kind, o["metadata"]["name"].as_str()?.to_string()))
        })
        .collect();
    for object in rbac.iter_mut() {
        if let Some(upstream) = object["metadata"]["name"].as_str() {
            object["metadata"]["name"] = json!(name(upstream, namespace));
        }
        let Some(role_ref) = object.get_mut("roleRef") else {
            continue;
        };
        let referenced = roles.iter().any(|(kind, role)| {
            role_ref["kind"] == kind.as_str() && role_ref["name"] == role.as_str()
        });
        if referenced && let Some(upstream) = role_ref["name"].as_str() {
            role_ref["name"] = json!(name(upstream, namespace));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_is_suffixed_and_bindings_follow_the_roles_the_file_defines() {
        let mut rbac = vec![
            json!({ "kind": "ResourceQuota", "metadata": { "name": "critical-pods" } }),
            json!({ "kind": "ClusterRole", "metadata": { "name": "crd-controller" } }),
            json!({ "kind": "ClusterRoleBinding", "metadata": { "name": "crd-controller" },
                    "roleRef": { "kind": "ClusterRole", "name": "crd-controller" } }),
            json!({ "kind": "ClusterRoleBinding", "metadata": { "name": "cluster-reconciler" },
                    "roleRef": { "kind": "ClusterRole", "name": "cluster-admin" } }),
        ];
        name_for_namespace(&mut rbac, "flux");
        let names: Vec<&str> = rbac
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "critical-pods-flux",
                "crd-controller-flux",
                "crd-controller-flux",
                "cluster-reconciler-flux"
            ]
        );
        assert_eq!(rbac[2]["roleRef"]["name"], "crd-controller-flux");
        assert_eq!(rbac[3]["roleRef"]["name"], "cluster-admin");
        assert!(rbac[0].get("roleRef").is_none());
    }
}
