//! The CEL rules of fluxop's CRDs (`x-kubernetes-validations`), evaluated offline: one Rust
//! check per rule, keyed by the rule's exact CEL text as the CRD carries it.
//!
//! Why not a CEL interpreter: the `cel` crate (0.15) parses with an ANTLR runtime
//! (`antlr4rust` and a generated parser), a heavy build on two cores for four one-line
//! rules, and it knows nothing of the Kubernetes extensions these rules lean on (`oldSelf`
//! transition rules, `has()` over a structural schema). A rule added to the API without a
//! check here fails `every_rule_of_the_instance_crd_has_a_check`.

use serde_json::Value;

/// What evaluating a rule gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Holds,
    Violated,
    /// A transition rule (`oldSelf`) without an old value: the API server skips it too.
    NotApplicable,
}

/// Evaluates `rule` on `this` (the value of the schema node carrying it; `old` the same
/// node of the stored object on an update). `None`: no check for this rule text.
pub fn evaluate(rule: &str, this: &Value, old: Option<&Value>) -> Option<Verdict> {
    let holds = |ok: bool| {
        Some(if ok {
            Verdict::Holds
        } else {
            Verdict::Violated
        })
    };
    match rule {
        // FluxInstance and FluxReport: one per cluster. A missing name is no 'flux' either.
        "self.metadata.name == 'flux'" => holds(this["metadata"]["name"] == "flux"),
        "!has(self.sharding) || !has(self.sharding.storage) || self.sharding.storage != 'persistent' || has(self.storage)" =>
        {
            let storage = field(this, "sharding").and_then(|s| field(s, "storage"));
            holds(storage != Some(&Value::from("persistent")) || field(this, "storage").is_some())
        }
        "(has(self.objectLevelWorkloadIdentity) && self.objectLevelWorkloadIdentity) || !has(self.multitenantWorkloadIdentity) || !self.multitenantWorkloadIdentity" =>
        {
            let object_level =
                field(this, "objectLevelWorkloadIdentity") == Some(&Value::Bool(true));
            let multitenant =
                field(this, "multitenantWorkloadIdentity") == Some(&Value::Bool(true));
            holds(object_level || !multitenant)
        }
        "(has(self.name) ? self.name : '') == (has(oldSelf.name) ? oldSelf.name : '')" => {
            let Some(old) = old else {
                return Some(Verdict::NotApplicable);
            };
            let name = |v: &Value| field(v, "name").cloned().unwrap_or(Value::from(""));
            holds(name(this) == name(old))
        }
        _ => None,
    }
}

/// `has(value.key)`: present (Kubernetes drops nulls of fields that are not nullable, and
/// none of the fields these rules test is).
fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.get(key).filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::json;

    use super::*;
    use crate::api::FluxInstance;

    /// Every `x-kubernetes-validations` rule under `schema`.
    fn rules(schema: &Value, found: &mut Vec<String>) {
        match schema {
            Value::Object(map) => {
                if let Some(Value::Array(list)) = map.get("x-kubernetes-validations") {
                    found.extend(
                        list.iter()
                            .filter_map(|r| r["rule"].as_str().map(String::from)),
                    );
                }
                map.values().for_each(|v| rules(v, found));
            }
            Value::Array(list) => list.iter().for_each(|v| rules(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_rule_of_the_instance_crd_has_a_check() {
        let crd = serde_json::to_value(FluxInstance::crd()).expect("CRD serializes");
        let mut found = Vec::new();
        rules(&crd, &mut found);
        assert_eq!(found.len(), 4, "{found:#?}");
        for rule in found {
            assert!(
                evaluate(&rule, &json!({}), Some(&json!({}))).is_some(),
                "the CRD has a CEL rule without a check in api/cel.rs: {rule}"
            );
        }
    }

    #[test]
    fn the_name_rule_wants_flux() {
        let rule = "self.metadata.name == 'flux'";
        let named = |name: Value| json!({ "metadata": { "name": name } });
        assert_eq!(
            evaluate(rule, &named(json!("flux")), None),
            Some(Verdict::Holds)
        );
        assert_eq!(
            evaluate(rule, &named(json!("other")), None),
            Some(Verdict::Violated)
        );
        assert_eq!(
            evaluate(rule, &json!({ "metadata": {} }), None),
            Some(Verdict::Violated)
        );
    }

    #[test]
    fn persistent_shards_need_storage() {
        let rule = "!has(self.sharding) || !has(self.sharding.storage) || self.sharding.storage != 'persistent' || has(self.storage)";
        let sharding = json!({ "sharding": { "shards": ["a"], "storage": "persistent" } });
        assert_eq!(evaluate(rule, &sharding, None), Some(Verdict::Violated));
        let mut with_storage = sharding.clone();
        with_storage["storage"] = json!({ "class": "c", "size": "1Gi" });
        assert_eq!(evaluate(rule, &with_storage, None), Some(Verdict::Holds));
        for fine in [json!({}), json!({ "sharding": { "storage": "ephemeral" } })] {
            assert_eq!(evaluate(rule, &fine, None), Some(Verdict::Holds), "{fine}");
        }
    }

    #[test]
    fn multitenant_workload_identity_needs_object_level_workload_identity() {
        let rule = "(has(self.objectLevelWorkloadIdentity) && self.objectLevelWorkloadIdentity) || !has(self.multitenantWorkloadIdentity) || !self.multitenantWorkloadIdentity";
        let cluster = |object: Value, multitenant: Value| json!({ "objectLevelWorkloadIdentity": object, "multitenantWorkloadIdentity": multitenant });
        assert_eq!(
            evaluate(rule, &cluster(json!(false), json!(true)), None),
            Some(Verdict::Violated)
        );
        assert_eq!(
            evaluate(rule, &json!({ "multitenantWorkloadIdentity": true }), None),
            Some(Verdict::Violated)
        );
        assert_eq!(
            evaluate(rule, &cluster(json!(true), json!(true)), None),
            Some(Verdict::Holds)
        );
        assert_eq!(
            evaluate(rule, &cluster(json!(false), json!(false)), None),
            Some(Verdict::Holds)
        );
    }

    #[test]
    fn the_sync_name_cannot_change_once_there_is_an_old_sync() {
        let rule = "(has(self.name) ? self.name : '') == (has(oldSelf.name) ? oldSelf.name : '')";
        let named = json!({ "name": "fleet" });
        assert_eq!(evaluate(rule, &named, None), Some(Verdict::NotApplicable));
        assert_eq!(evaluate(rule, &named, Some(&named)), Some(Verdict::Holds));
        assert_eq!(
            evaluate(rule, &named, Some(&json!({ "name": "other" }))),
            Some(Verdict::Violated)
        );
        assert_eq!(
            evaluate(rule, &json!({}), Some(&named)),
            Some(Verdict::Violated)
        );
    }
}
