//! kstatus-style health of a live object. Pure: rules over the object's JSON.
//!
//! `Current` means the controller responsible for the object has caught up with its spec and
//! reports it working; `InProgress` is worth waiting for; `Failed` will not fix itself.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Current,
    InProgress(String),
    Failed(String),
}

impl Health {
    pub fn is_current(&self) -> bool {
        matches!(self, Health::Current)
    }
}

fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn int(value: &Value) -> i64 {
    value.as_i64().unwrap_or(0)
}

/// Has the object's controller observed its latest generation? Objects without
/// `observedGeneration` in their status have nothing to say, so they count as observed.
fn observed(object: &Value) -> Option<Health> {
    let generation = object["metadata"]["generation"].as_i64()?;
    let observed = object["status"]["observedGeneration"].as_i64()?;
    (observed < generation).then(|| {
        Health::InProgress(format!(
            "generation {generation} not yet observed (at {observed})"
        ))
    })
}

fn deployment(object: &Value) -> Health {
    if let Some(waiting) = observed(object) {
        return waiting;
    }
    if object["status"].is_null() {
        return Health::InProgress("no status yet".into());
    }
    if let Some(progressing) = condition(object, "Progressing")
        && progressing["reason"] == "ProgressDeadlineExceeded"
    {
        return Health::Failed(format!(
            "progress deadline exceeded: {}",
            progressing["message"].as_str().unwrap_or_default()
        ));
    }
    let status = &object["status"];
    let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let updated = int(&status["updatedReplicas"]);
    let ready = int(&status["readyReplicas"]);
    let available = int(&status["availableReplicas"]);
    let total = int(&status["replicas"]);
    if updated < wanted {
        return Health::InProgress(format!("{updated} of {wanted} replicas updated"));
    }
    if total > updated {
        return Health::InProgress(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if ready < wanted {
        return Health::InProgress(format!("{ready} of {wanted} replicas ready"));
    }
    if available < wanted {
        return Health::InProgress(format!("{available} of {wanted} replicas available"));
    }
    match condition(object, "Available") {
        Some(c) if c["status"] != "True" => Health::InProgress(format!(
            "not available: {}",
            c["message"].as_str().unwrap_or_default()
        )),
        _ => Health::Current,
    }
}

fn crd(object: &Value) -> Health {
    if let Some(names) = condition(object, "NamesAccepted")
        && names["status"] == "False"
    {
        return Health::Failed(format!(
            "names not accepted: {}",
            names["message"].as_str().unwrap_or_default()
        ));
    }
    match condition(object, "Established") {
        Some(c) if c["status"] == "True" => Health::Current,
        _ => Health::InProgress("not established yet".into()),
    }
}

fn job(object: &Value) -> Health {
    if let Some(c) = condition(object, "Failed")
        && c["status"] == "True"
    {
        return Health::Failed(c["message"].as_str().unwrap_or("job failed").into());
    }
    match condition(object, "Complete") {
        Some(c) if c["status"] == "True" => Health::Current,
        _ => Health::InProgress("job not complete".into()),
    }
}

fn generic(object: &Value) -> Health {
    if let Some(waiting) = observed(object) {
        return waiting;
    }
    if let Some(stalled) = condition(object, "Stalled")
        && stalled["status"] == "True"
    {
        return Health::Failed(stalled["message"].as_str().unwrap_or("stalled").into());
    }
    if let Some(reconciling) = condition(object, "Reconciling")
        && reconciling["status"] == "True"
    {
        return Health::InProgress(
            reconciling["message"]
                .as_str()
                .unwrap_or("reconciling")
                .into(),
        );
    }
    match condition(object, "Ready") {
        Some(c) if c["status"] == "True" => Health::Current,
        Some(c) if c["status"] == "False" => Health::InProgress(format!(
            "not ready: {}",
            c["message"].as_str().unwrap_or_default()
        )),
        Some(_) => Health::InProgress("readiness unknown".into()),
        None => Health::Current,
    }
}

/// The health of a live object by its kind's rules.
pub fn evaluate(object: &Value) -> Health {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, object["kind"].as_str().unwrap_or_default()) {
        ("apps", "Deployment") => deployment(object),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(object),
        ("batch", "Job") => job(object),
        ("", "PersistentVolumeClaim") => match object["status"]["phase"].as_str() {
            Some("Bound") => Health::Current,
            Some("Lost") => Health::Failed("claim lost its volume".into()),
            phase => Health::InProgress(format!("claim {}", phase.unwrap_or("pending"))),
        },
        ("", "Service") if object["spec"]["type"] == "LoadBalancer" => {
            if object["status"]["loadBalancer"]["ingress"]
                .as_array()
                .is_some_and(|i| !i.is_empty())
            {
                Health::Current
            } else {
                Health::InProgress("load balancer has no ingress yet".into())
            }
        }
        _ => generic(object),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(spec_replicas: i64, status: Value) -> Value {
        json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "d", "generation": 2 },
                "spec": { "replicas": spec_replicas }, "status": status })
    }

    #[test]
    fn a_deployment_is_current_once_every_replica_is_updated_ready_and_available() {
        let available = json!({ "type": "Available", "status": "True" });
        assert_eq!(
            evaluate(&deployment(
                1,
                json!({ "observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                "readyReplicas": 1, "availableReplicas": 1, "conditions": [available] })
            )),
            Health::Current
        );
        assert!(matches!(
            evaluate(&deployment(1, json!({ "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                "readyReplicas": 1, "availableReplicas": 1 }))),
            Health::InProgress(m) if m.contains("generation 2")
        ));
        assert!(matches!(
            evaluate(&deployment(2, json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                "readyReplicas": 1, "availableReplicas": 1 }))),
            Health::InProgress(m) if m == "1 of 2 replicas ready"
        ));
        assert!(matches!(
            evaluate(&deployment(1, json!({ "observedGeneration": 2, "replicas": 2, "updatedReplicas": 1,
                "readyReplicas": 1, "availableReplicas": 1 }))),
            Health::InProgress(m) if m.contains("old replicas")
        ));
        assert!(matches!(
            evaluate(&deployment(1, json!({ "observedGeneration": 2, "conditions": [
                { "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "timed out" }] }))),
            Health::Failed(m) if m.contains("timed out")
        ));
    }

    #[test]
    fn crds_jobs_claims_and_load_balancers_follow_their_own_rules() {
        let crd = |conditions: Value| {
            json!({ "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                    "metadata": { "name": "x" }, "status": { "conditions": conditions } })
        };
        assert_eq!(
            evaluate(&crd(json!([{ "type": "Established", "status": "True" }]))),
            Health::Current
        );
        assert!(!evaluate(&crd(json!([]))).is_current());
        assert!(matches!(
            evaluate(&crd(
                json!([{ "type": "NamesAccepted", "status": "False", "message": "conflict" }])
            )),
            Health::Failed(_)
        ));
        let job = json!({ "apiVersion": "batch/v1", "kind": "Job", "metadata": { "name": "j" },
                          "status": { "conditions": [{ "type": "Failed", "status": "True", "message": "backoff" }] } });
        assert_eq!(evaluate(&job), Health::Failed("backoff".into()));
        let claim = json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": { "name": "c" },
                            "status": { "phase": "Pending" } });
        assert!(!evaluate(&claim).is_current());
        let service = json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "s" },
                              "spec": { "type": "ClusterIP" } });
        assert_eq!(evaluate(&service), Health::Current);
        let balancer = json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "s" },
                               "spec": { "type": "LoadBalancer" }, "status": {} });
        assert!(!evaluate(&balancer).is_current());
    }

    #[test]
    fn other_objects_follow_their_conditions_or_are_current() {
        let account =
            json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": "a" } });
        assert_eq!(evaluate(&account), Health::Current);
        let source = |conditions: Value| {
            json!({ "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                    "metadata": { "name": "g", "generation": 1 },
                    "status": { "observedGeneration": 1, "conditions": conditions } })
        };
        assert_eq!(
            evaluate(&source(json!([{ "type": "Ready", "status": "True" }]))),
            Health::Current
        );
        assert!(matches!(
            evaluate(&source(json!([{ "type": "Stalled", "status": "True", "message": "bad url" }]))),
            Health::Failed(m) if m == "bad url"
        ));
        assert!(!evaluate(&source(json!([{ "type": "Ready", "status": "False" }]))).is_current());
    }
}
