//! Object identities, the inventory built from them, and the order objects are applied and
//! deleted in. Pure.

use std::{cmp::Ordering, collections::BTreeSet, fmt};

use serde_json::Value;

use crate::api::{ResourceInventory, ResourceRef};

/// What identifies an object in a cluster, independent of the API version it is read at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub group: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl ObjectId {
    /// The identity and API version of a manifest; `None` when it lacks a kind or a name.
    pub fn of(object: &Value) -> Option<(ObjectId, String)> {
        let api_version = object["apiVersion"].as_str()?;
        let kind = object["kind"].as_str().filter(|k| !k.is_empty())?;
        let name = object["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Some((
            ObjectId {
                group: group.to_string(),
                kind: kind.to_string(),
                namespace: object["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                name: name.to_string(),
            },
            version.to_string(),
        ))
    }

    /// `<namespace>_<name>_<group>_<kind>`, the inventory's format (Flux's too). None of the
    /// four parts can contain `_`, so the format parses back unambiguously.
    pub fn inventory_id(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.namespace, self.name, self.group, self.kind
        )
    }

    pub fn parse_inventory_id(id: &str) -> Option<ObjectId> {
        let mut parts = id.split('_');
        let (namespace, name, group, kind) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || name.is_empty() || kind.is_empty() {
            return None;
        }
        Some(ObjectId {
            group: group.to_string(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    pub fn is_crd(&self) -> bool {
        self.kind == "CustomResourceDefinition" && self.group == "apiextensions.k8s.io"
    }

    pub fn is_namespace(&self) -> bool {
        self.kind == "Namespace" && self.group.is_empty()
    }

    /// Objects applied first, on their own: everything else may depend on them.
    pub fn is_definition(&self) -> bool {
        self.is_crd()
            || self.is_namespace()
            || (self.kind == "ClusterRole" && self.group == "rbac.authorization.k8s.io")
    }

    /// Apply order; prune deletes in the reverse. Definitions, then what workloads reference
    /// (accounts, roles, config, services), then workloads, then custom resources.
    fn rank(&self) -> u8 {
        if self.is_namespace() {
            return 0;
        }
        if self.is_crd() {
            return 1;
        }
        match (self.group.as_str(), self.kind.as_str()) {
            ("rbac.authorization.k8s.io", "ClusterRole") => 2,
            ("", "ResourceQuota" | "LimitRange") => 3,
            ("", "ServiceAccount") => 4,
            ("rbac.authorization.k8s.io", "Role") => 5,
            ("rbac.authorization.k8s.io", "ClusterRoleBinding" | "RoleBinding") => 6,
            ("", "ConfigMap" | "Secret") => 7,
            ("", "PersistentVolumeClaim") => 8,
            ("", "Service") => 9,
            ("networking.k8s.io", "NetworkPolicy") => 10,
            ("apps", _) | ("batch", _) => 11,
            (group, _)
                if group.is_empty() || group.ends_with(".k8s.io") || !group.contains('.') =>
            {
                12
            }
            _ => 13,
        }
    }
}

impl fmt::Display for ObjectId {
    /// `Kind/namespace/name`, or `Kind/name` when cluster-scoped: how events and errors name it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Apply order of two objects.
pub fn apply_order(a: &ObjectId, b: &ObjectId) -> Ordering {
    a.rank().cmp(&b.rank()).then_with(|| a.cmp(b))
}

/// The inventory of a set of manifests, sorted by id.
pub fn inventory(objects: &[Value]) -> ResourceInventory {
    let entries: BTreeSet<ResourceRef> = objects
        .iter()
        .filter_map(ObjectId::of)
        .map(|(id, v)| ResourceRef {
            id: id.inventory_id(),
            v,
        })
        .collect();
    ResourceInventory {
        entries: entries.into_iter().collect(),
    }
}

/// Entries of `previous` that `current` no longer has, in deletion order (the reverse of
/// apply order: custom resources and workloads first, CRDs last). Unparsable ids are skipped:
/// prune never guesses what an entry meant.
pub fn stale(previous: &ResourceInventory, current: &ResourceInventory) -> Vec<(ObjectId, String)> {
    let kept: BTreeSet<ObjectId> = current
        .entries
        .iter()
        .filter_map(|e| ObjectId::parse_inventory_id(&e.id))
        .collect();
    let mut stale: Vec<(ObjectId, String)> = previous
        .entries
        .iter()
        .filter_map(|e| Some((ObjectId::parse_inventory_id(&e.id)?, e.v.clone())))
        .filter(|(id, _)| !kept.contains(id))
        .collect();
    stale.sort_by(|(a, _), (b, _)| apply_order(b, a));
    stale
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn id(object: Value) -> ObjectId {
        ObjectId::of(&object).unwrap().0
    }

    #[test]
    fn inventory_ids_use_flux_format_and_parse_back() {
        let (deployment, version) = ObjectId::of(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "source-controller", "namespace": "flux-system" }
        }))
        .unwrap();
        assert_eq!(version, "v1");
        assert_eq!(
            deployment.inventory_id(),
            "flux-system_source-controller_apps_Deployment"
        );
        let namespace = id(
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "flux-system" } }),
        );
        assert_eq!(namespace.inventory_id(), "_flux-system__Namespace");
        for object in [deployment, namespace] {
            assert_eq!(
                ObjectId::parse_inventory_id(&object.inventory_id()),
                Some(object)
            );
        }
        assert_eq!(ObjectId::parse_inventory_id("a_b_c"), None);
        assert_eq!(ObjectId::parse_inventory_id("a_b_c_d_e"), None);
    }

    #[test]
    fn definitions_go_first_and_custom_resources_last() {
        let mut ids = [
            id(
                json!({ "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": { "name": "a", "namespace": "n" } }),
            ),
            id(
                json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "a", "namespace": "n" } }),
            ),
            id(
                json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": "a", "namespace": "n" } }),
            ),
            id(
                json!({ "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": { "name": "a" } }),
            ),
            id(json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "n" } })),
        ];
        ids.sort_by(apply_order);
        let kinds: Vec<&str> = ids.iter().map(|i| i.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "ServiceAccount",
                "Deployment",
                "Kustomization"
            ]
        );
        assert!(ids[0].is_definition() && ids[1].is_definition() && !ids[2].is_definition());
    }

    #[test]
    fn stale_entries_are_what_the_new_inventory_dropped_in_reverse_apply_order() {
        let object = |kind: &str, api: &str, name: &str, ns: Option<&str>| json!({ "apiVersion": api, "kind": kind, "metadata": { "name": name, "namespace": ns } });
        let previous = inventory(&[
            object("Namespace", "v1", "flux-system", None),
            object(
                "CustomResourceDefinition",
                "apiextensions.k8s.io/v1",
                "imagepolicies.image.toolkit.fluxcd.io",
                None,
            ),
            object(
                "Deployment",
                "apps/v1",
                "image-reflector-controller",
                Some("flux-system"),
            ),
            object(
                "Deployment",
                "apps/v1",
                "source-controller",
                Some("flux-system"),
            ),
        ]);
        let current = inventory(&[
            object("Namespace", "v1", "flux-system", None),
            object(
                "Deployment",
                "apps/v1",
                "source-controller",
                Some("flux-system"),
            ),
        ]);
        let stale: Vec<String> = stale(&previous, &current)
            .iter()
            .map(|(id, _)| id.to_string())
            .collect();
        assert_eq!(
            stale,
            [
                "Deployment/flux-system/image-reflector-controller",
                "CustomResourceDefinition/imagepolicies.image.toolkit.fluxcd.io"
            ]
        );
        assert!(super::stale(&current, &current).is_empty());
    }
}
