//! What an API server refusal means, read from its structured `Status` (code, reason and
//! `details.causes`), never from the top-level message. Pure.
//!
//! An immutable field is not a reason of its own in the API: the server answers 422 with
//! reason `Invalid`, and each offending field is a cause of type `FieldValueInvalid` or
//! `FieldValueForbidden` whose message says it cannot change. What kube-apiserver v1.34.4
//! of the test bed returns (server-side apply, dry run) for the changes fluxop recreates for:
//!
//! | change | cause `reason` | cause `field` | cause `message` (tail) |
//! |---|---|---|---|
//! | Deployment `spec.selector` | `FieldValueInvalid` | `spec.selector` | `Invalid value: {...}: field is immutable` |
//! | Job `spec.template` | `FieldValueInvalid` | `spec.template` | `Invalid value: {...}: field is immutable` |
//! | Service `spec.clusterIP` | `FieldValueInvalid` | `spec.clusterIPs[0]` | `Invalid value: [...]: may not change once set` |
//! | RoleBinding `roleRef` | `FieldValueInvalid` | `roleRef` | `Invalid value: {...}: cannot change roleRef` |
//! | StatefulSet `spec.serviceName` | `FieldValueForbidden` | `spec` | `Forbidden: updates to statefulset spec for fields other than 'replicas', ... are forbidden` |
//! | PVC `spec.accessModes` | `FieldValueForbidden` | `spec` | `Forbidden: spec is immutable after creation except resources.requests ...` |
//! | ConfigMap with `immutable: true` | `FieldValueForbidden` | `data` | `Forbidden: field is immutable when `immutable` is set` |
//!
//! (A CRD's CEL rule `self == oldSelf` answers `FieldValueInvalid` with the rule's message,
//! `Value is immutable` by convention.) The wording of the cause is the only signal, so it is
//! matched against these phrases, on the causes only. Recreating helps only when every
//! cause is one of them: an object that is also invalid otherwise would not be created again.

use kube::core::Status;

/// Phrases of cause messages that mean "this field cannot change in place" (see the table).
const IMMUTABLE_PHRASES: &[&str] = &[
    // "field is immutable", "spec is immutable after creation", "Value is immutable"
    "is immutable",
    "may not change once set",
    "cannot change roleref",
    "updates to statefulset spec for fields other than",
];

/// The fields (as `details.causes[].field`) an update was refused for because they cannot
/// change in place; `None` unless the refusal is a 422 `Invalid` whose causes are all of
/// that kind.
pub fn immutable_fields(status: &Status) -> Option<Vec<String>> {
    if status.code != 422 || status.reason != "Invalid" {
        return None;
    }
    let causes = &status.details.as_ref()?.causes;
    let immutable = |reason: &str, message: &str| {
        let message = message.to_ascii_lowercase();
        matches!(reason, "FieldValueInvalid" | "FieldValueForbidden")
            && IMMUTABLE_PHRASES.iter().any(|p| message.contains(p))
    };
    if causes.is_empty() || !causes.iter().all(|c| immutable(&c.reason, &c.message)) {
        return None;
    }
    let mut fields: Vec<String> = causes.iter().map(|c| c.field.clone()).collect();
    fields.dedup();
    Some(fields)
}

/// A 409 Conflict: a precondition (uid, resourceVersion) did not hold, or the object changed
/// since it was read.
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn status(value: serde_json::Value) -> Status {
        serde_json::from_value(value).unwrap()
    }

    /// A refusal as the test bed's API server wrote it, causes as `(reason, field, message)`.
    fn invalid(causes: &[(&str, &str, &str)]) -> Status {
        status(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "X \"x\" is invalid: ...", "reason": "Invalid", "code": 422,
            "details": { "name": "x", "kind": "X", "causes": causes.iter().map(|(r, f, m)| json!({
                "reason": r, "field": f, "message": m })).collect::<Vec<_>>() }
        }))
    }

    #[test]
    fn selector_cluster_ip_role_ref_and_forbidden_spec_changes_are_immutable() {
        let cases = [
            (
                "FieldValueInvalid",
                "spec.selector",
                "Invalid value: {\"matchLabels\":{\"app\":\"d\",\"tier\":\"x\"}}: field is immutable",
            ),
            (
                "FieldValueInvalid",
                "spec.clusterIPs[0]",
                "Invalid value: [\"10.96.5.6\"]: may not change once set",
            ),
            (
                "FieldValueInvalid",
                "roleRef",
                "Invalid value: {\"APIGroup\":\"rbac.authorization.k8s.io\",\"Kind\":\"Role\",\"Name\":\"r2\"}: cannot change roleRef",
            ),
            (
                "FieldValueForbidden",
                "spec",
                "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ),
            (
                "FieldValueForbidden",
                "spec",
                "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ),
            (
                "FieldValueForbidden",
                "data",
                "Forbidden: field is immutable when `immutable` is set",
            ),
            (
                "FieldValueInvalid",
                "spec.url",
                "Invalid value: \"string\": Value is immutable",
            ),
        ];
        for (reason, field, message) in cases {
            assert_eq!(
                immutable_fields(&invalid(&[(reason, field, message)])),
                Some(vec![field.to_string()]),
                "{message}"
            );
        }
    }

    #[test]
    fn other_refusals_are_not_taken_for_immutable_fields() {
        // Invalid for another reason too: recreating would fail as well.
        assert_eq!(
            immutable_fields(&invalid(&[
                (
                    "FieldValueInvalid",
                    "spec.selector",
                    "Invalid value: {}: field is immutable"
                ),
                (
                    "FieldValueInvalid",
                    "spec.template.metadata.labels",
                    "Invalid value: {}: `selector` does not match template `labels`"
                ),
            ])),
            None
        );
        assert_eq!(
            immutable_fields(&invalid(&[(
                "FieldValueInvalid",
                "spec.ports[0].port",
                "Invalid value: 0: must be between 1 and 65535, inclusive"
            )])),
            None
        );
        // The wording in the top-level message alone does not count.
        assert_eq!(
            immutable_fields(&status(json!({
                "status": "Failure", "code": 422, "reason": "Invalid",
                "message": "X \"x\" is invalid: spec.selector: field is immutable", "details": {}
            }))),
            None
        );
        // Nor in a refusal of another kind (a webhook denying, a conflict).
        assert_eq!(
            immutable_fields(&status(json!({
                "status": "Failure", "code": 400, "reason": "BadRequest",
                "message": "field is immutable",
                "details": { "causes": [{ "reason": "FieldValueInvalid", "field": "spec", "message": "field is immutable" }] }
            }))),
            None
        );
        let conflict = status(json!({
            "status": "Failure", "code": 409, "reason": "Conflict",
            "message": "Operation cannot be fulfilled on configmaps \"cm\": the object has been modified; please apply your changes to the latest version and try again"
        }));
        assert_eq!(immutable_fields(&conflict), None);
        assert!(is_conflict(&kube::Error::Api(Box::new(conflict))));
    }
}
