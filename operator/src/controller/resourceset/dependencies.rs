//! `spec.dependsOn`: every dependency must exist, and with `ready: true` be ready — by its
//! `readyExpr` (CEL over the object) or, without one, by the default rule: a ResourceSet or
//! provider is Ready at its current generation, anything else is kstatus Current.

use kube::ResourceExt;
use serde_json::Value;

use super::status::{INVALID_CEL_EXPRESSION, Outcome};
use crate::{
    api::resourceset::{Dependency, ResourceSet},
    apply::{Applier, ObjectId, health},
    cel::Program,
};

/// The rule for the incumbent's own kinds when no expression is given.
pub const DEFAULT_READY_EXPR: &str = "status.conditions.filter(c, c.type == 'Ready').all(c, c.status == 'True' && c.observedGeneration == metadata.generation)";

fn is_own_kind(dependency: &Dependency) -> bool {
    dependency
        .api_version
        .starts_with("fluxcd.controlplane.io/")
        && matches!(
            dependency.kind.as_str(),
            "ResourceSet" | "ResourceSetInputProvider"
        )
}

/// The expression each dependency is judged by (`None`: kstatus), compiled up front: a
/// bad one stalls the ResourceSet before anything is read.
fn programs(rset: &ResourceSet) -> Result<Vec<Option<Program>>, String> {
    rset.spec
        .depends_on
        .iter()
        .flatten()
        .map(|dependency| {
            let expr = match (&dependency.ready_expr, dependency.ready.unwrap_or(false)) {
                (Some(expr), true) if !expr.trim().is_empty() => expr.as_str(),
                (_, true) if is_own_kind(dependency) => DEFAULT_READY_EXPR,
                _ => return Ok(None),
            };
            Program::compile(expr).map(Some).map_err(|e| {
                format!(
                    "dependency {}/{}: invalid readyExpr {expr:?}: {e}",
                    dependency.kind, dependency.name
                )
            })
        })
        .collect()
}

/// What a dependency's live object looks like to its expression: without the
/// last-applied annotation, and a Secret of another namespace without its data.
fn for_expression(mut live: Value, other_namespace: bool) -> Value {
    if let Some(annotations) = live["metadata"]["annotations"].as_object_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    if other_namespace
        && live["kind"] == "Secret"
        && live["apiVersion"] == "v1"
        && let Some(object) = live.as_object_mut()
    {
        object.remove("data");
        object.remove("stringData");
    }
    live
}

/// `Ok` when every dependency is met; else the outcome that ends the reconcile.
pub async fn check(
    rset: &ResourceSet,
    applier: &Applier,
    digest: impl Fn() -> String,
) -> Result<(), Outcome> {
    let programs = programs(rset).map_err(|message| Outcome::Stalled {
        reason: INVALID_CEL_EXPRESSION,
        message,
        digest: digest(),
    })?;
    let own_namespace = rset.namespace().unwrap_or_default();
    for (dependency, program) in rset.spec.depends_on.iter().flatten().zip(programs) {
        let namespace = dependency
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| own_namespace.clone());
        let (group, version) = match dependency.api_version.rsplit_once('/') {
            Some((group, version)) => (group.to_string(), version.to_string()),
            None => (String::new(), dependency.api_version.clone()),
        };
        let id = ObjectId {
            group,
            kind: dependency.kind.clone(),
            namespace: namespace.clone(),
            name: dependency.name.clone(),
        };
        let live = match applier.get(&id, &version).await {
            Ok(Some(live)) => live,
            Ok(None) => return Err(Outcome::DependencyNotReady(format!("{id} not found"))),
            Err(error) => return Err(Outcome::DependencyNotReady(error.to_string())),
        };
        if !dependency.ready.unwrap_or(false) {
            continue;
        }
        let ready = match &program {
            Some(program) => program
                .eval_bool(&for_expression(live, namespace != own_namespace))
                .map_err(|e| {
                    Outcome::DependencyNotReady(format!("{id}: evaluating readyExpr: {e}"))
                })?,
            None => health::evaluate(&live).is_current(),
        };
        if !ready {
            return Err(Outcome::DependencyNotReady(format!("{id} is not ready")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rset(depends_on: serde_json::Value) -> ResourceSet {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "fluxcd.controlplane.io/v1", "kind": "ResourceSet",
            "metadata": { "name": "a", "namespace": "team" },
            "spec": { "resources": [], "dependsOn": depends_on }
        }))
        .unwrap()
    }

    #[test]
    fn the_default_rule_for_resourcesets_wants_ready_at_the_current_generation() {
        let dependency = rset(serde_json::json!([
            { "apiVersion": "fluxcd.controlplane.io/v1", "kind": "ResourceSet", "name": "b", "ready": true }
        ]));
        let programs = programs(&dependency).unwrap();
        let program = programs[0].as_ref().expect("the default expression");
        let object = |observed: i64| {
            serde_json::json!({ "metadata": { "generation": 2 }, "status": { "conditions": [
                { "type": "Ready", "status": "True", "observedGeneration": observed } ] } })
        };
        assert!(program.eval_bool(&object(2)).unwrap());
        assert!(!program.eval_bool(&object(1)).unwrap());
    }

    #[test]
    fn other_kinds_use_kstatus_and_bad_expressions_are_refused_up_front() {
        let kstatus = rset(serde_json::json!([
            { "apiVersion": "apps/v1", "kind": "Deployment", "name": "db", "ready": true },
            { "apiVersion": "v1", "kind": "ConfigMap", "name": "exists-only" }
        ]));
        assert!(programs(&kstatus).unwrap().iter().all(Option::is_none));
        let bad = rset(serde_json::json!([
            { "apiVersion": "v1", "kind": "ConfigMap", "name": "c", "ready": true, "readyExpr": "data.x ==" }
        ]));
        let error = programs(&bad).unwrap_err();
        assert!(
            error.contains("ConfigMap/c") && error.contains("invalid readyExpr"),
            "{error}"
        );
    }

    #[test]
    fn expressions_see_no_last_applied_annotation_nor_another_namespaces_secret_data() {
        let live = serde_json::json!({ "apiVersion": "v1", "kind": "Secret",
            "metadata": { "annotations": { "kubectl.kubernetes.io/last-applied-configuration": "{}" } },
            "data": { "k": "dg==" } });
        let seen = for_expression(live.clone(), true);
        assert!(seen.get("data").is_none());
        assert!(
            seen["metadata"]["annotations"]
                .as_object()
                .unwrap()
                .is_empty()
        );
        assert!(for_expression(live, false).get("data").is_some());
    }
}
