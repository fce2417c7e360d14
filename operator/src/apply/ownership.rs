//! Taking over fields from the managers an earlier install used (kubectl, helm, `flux
//! bootstrap`'s kustomize-controller, the Flux Operator), so that fluxop alone owns what it
//! renders: a field it stops rendering is then removed instead of lingering under another
//! manager. Pure: computes the JSON patch; the applier sends it.

use serde_json::{Map, Value, json};

/// Annotation `kubectl apply` (client-side) keeps; stale once fluxop owns the object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Is `manager` one whose fields fluxop takes over? kubectl under any of its names
/// (`kubectl`, `kubectl-client-side-apply`, `kubectl-edit`, ...), Helm, Flux's own
/// appliers and the incumbent operator. Controllers writing status are never in this list.
pub fn is_previous_manager(manager: &str) -> bool {
    manager == "kubectl"
        || manager.starts_with("kubectl-")
        || matches!(
            manager,
            "helm"
                | "kustomize-controller"
                | "helm-controller"
                | "flux"
                | "flux-operator"
                | "before-first-apply"
        )
}

/// Union of two `fieldsV1` sets (nested maps whose leaves are `{}`).
fn merge_fields(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(more)) => merge_fields(existing, more),
            (Some(_), _) => {}
            (None, value) => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The JSON patch that moves the fields of previous managers to `manager` (as one Apply
/// entry) and drops kubectl's last-applied annotation; `None` when there is nothing to take.
/// Entries of subresources other than the main resource (`status`) stay where they are.
///
/// The patch replaces `managedFields` wholesale, so it starts by setting
/// `metadata.resourceVersion` to the one `live` was read at: the API server then applies it
/// only to that version of the object and answers 409 Conflict if it changed since (the
/// caller reads it again). A JSON patch `test` op on the resourceVersion would refuse too,
/// but with a bare 422 `Invalid` that cannot be told from other refusals.
pub fn takeover_patch(live: &Value, manager: &str) -> Option<Value> {
    let entries = live["metadata"]["managedFields"].as_array()?;
    let is_main = |entry: &Value| {
        entry["subresource"]
            .as_str()
            .is_none_or(|s| s.is_empty() || s == "scale")
    };
    let taken: Vec<&Value> = entries
        .iter()
        .filter(|e| is_main(e) && e["manager"].as_str().is_some_and(is_previous_manager))
        .collect();
    let annotated = live["metadata"]["annotations"].get(LAST_APPLIED).is_some();
    if taken.is_empty() && !annotated {
        return None;
    }
    let mut kept: Vec<Value> = Vec::new();
    let mut ours: Option<Value> = None;
    for entry in entries {
        let previous = is_main(entry) && entry["manager"].as_str().is_some_and(is_previous_manager);
        let is_ours = entry["manager"] == manager
            && entry["operation"] == "Apply"
            && entry["subresource"].as_str().is_none_or(str::is_empty);
        if is_ours && ours.is_none() {
            ours = Some(entry.clone());
        } else if !previous {
            kept.push(entry.clone());
        }
    }
    let mut ours = ours.unwrap_or_else(|| {
        json!({
            "manager": manager,
            "operation": "Apply",
            "apiVersion": taken.first().map_or(live["apiVersion"].clone(), |e| e["apiVersion"].clone()),
            "fieldsType": "FieldsV1",
            "fieldsV1": {},
        })
    });
    let mut fields = ours["fieldsV1"].as_object().cloned().unwrap_or_default();
    for entry in &taken {
        if let Some(more) = entry["fieldsV1"].as_object() {
            merge_fields(&mut fields, more);
        }
    }
    // The annotation goes with the takeover, so its field record goes too.
    if let Some(annotations) = fields
        .get_mut("f:metadata")
        .and_then(|m| m.get_mut("f:annotations"))
        .and_then(Value::as_object_mut)
    {
        annotations.remove(&format!("f:{LAST_APPLIED}"));
    }
    ours["fieldsV1"] = Value::Object(fields);
    kept.push(ours);
    let mut patch = Vec::new();
    if let Some(version) = live["metadata"]["resourceVersion"].as_str() {
        patch.push(
            json!({ "op": "replace", "path": "/metadata/resourceVersion", "value": version }),
        );
    }
    patch.push(json!({ "op": "replace", "path": "/metadata/managedFields", "value": kept }));
    if annotated {
        // `~1` escapes `/` in a JSON pointer.
        patch.push(json!({
            "op": "remove",
            "path": format!("/metadata/annotations/{}", LAST_APPLIED.replace('/', "~1")),
        }));
    }
    Some(Value::Array(patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_and_flux_managers_are_taken_over_but_controllers_are_not() {
        for manager in [
            "kubectl",
            "kubectl-client-side-apply",
            "kubectl-edit",
            "helm",
            "kustomize-controller",
            "flux-operator",
        ] {
            assert!(is_previous_manager(manager), "{manager}");
        }
        for manager in [
            "kube-controller-manager",
            "fluxop",
            "kubectlish",
            "source-controller",
        ] {
            assert!(!is_previous_manager(manager), "{manager}");
        }
    }

    #[test]
    fn client_side_applied_fields_become_ours_and_the_annotation_goes() {
        let live = json!({
            "apiVersion": "apps/v1",
            "metadata": {
                "annotations": { LAST_APPLIED: "{}", "keep": "x" },
                "managedFields": [
                    { "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1",
                      "fieldsType": "FieldsV1",
                      "fieldsV1": { "f:metadata": { "f:annotations": { ".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {} } },
                                    "f:spec": { "f:replicas": {} } } },
                    { "manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                      "fieldsV1": { "f:status": {} } },
                    { "manager": "fluxop", "operation": "Apply", "apiVersion": "apps/v1",
                      "fieldsV1": { "f:spec": { "f:template": {} } } }
                ]
            }
        });
        let patch = takeover_patch(&live, "fluxop").unwrap();
        let managed = patch[0]["value"].as_array().unwrap();
        let managers: Vec<&str> = managed
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["kube-controller-manager", "fluxop"]);
        assert_eq!(
            managed[1]["fieldsV1"],
            json!({ "f:metadata": { "f:annotations": { ".": {} } }, "f:spec": { "f:replicas": {}, "f:template": {} } })
        );
        assert_eq!(
            patch[1]["path"],
            "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration"
        );
        // Applying the patch leaves nothing more to take.
        let mut after = live.clone();
        let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
        json_patch::patch(&mut after, &patch).unwrap();
        assert_eq!(takeover_patch(&after, "fluxop"), None);
    }

    #[test]
    fn the_takeover_is_pinned_to_the_resource_version_it_was_computed_from() {
        let live = json!({
            "apiVersion": "v1",
            "metadata": {
                "resourceVersion": "4711",
                "managedFields": [
                    { "manager": "helm", "operation": "Update", "apiVersion": "v1",
                      "fieldsV1": { "f:data": { "f:a": {} } } }
                ]
            }
        });
        let patch = takeover_patch(&live, "fluxop").unwrap();
        assert_eq!(
            patch[0],
            json!({ "op": "replace", "path": "/metadata/resourceVersion", "value": "4711" })
        );
        assert_eq!(patch[1]["path"], "/metadata/managedFields");
        // The resourceVersion is the one read, so the patch leaves it as it was.
        let mut after = live.clone();
        let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
        json_patch::patch(&mut after, &patch).unwrap();
        assert_eq!(after["metadata"]["resourceVersion"], "4711");
        assert_eq!(after["metadata"]["managedFields"][0]["manager"], "fluxop");
    }
}
