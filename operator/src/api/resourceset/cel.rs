//! The CEL rules of the `ResourceSet` and `ResourceSetInputProvider` CRDs, evaluated
//! offline the way [`crate::api::cel`] does it for `FluxInstance`: one Rust check per rule,
//! keyed by the rule's exact CEL text as the CRD carries it.
//!
//! A field the expression reads without a `has()` guard (`self.url` when `url` is unset)
//! makes the API server fail the evaluation ("no such key"), which rejects the object as a
//! violated rule does; the checks here give [`Verdict::Violated`] for it.

use serde_json::Value;

pub use crate::api::cel::Verdict;

/// Evaluates `rule` on `this`, the value of the schema node that carries it. `None`: no
/// check for this rule text.
pub fn evaluate(rule: &str, this: &Value) -> Option<Verdict> {
    let verdict = match rule {
        // ResourceSet spec.
        "!has(self.steps) || (!has(self.resources) && !has(self.resourcesTemplate))" => Some(
            !has(this, "steps") || (!has(this, "resources") && !has(this, "resourcesTemplate")),
        ),
        "has(self.steps) || has(self.resources) || has(self.resourcesTemplate)" => {
            Some(has(this, "steps") || has(this, "resources") || has(this, "resourcesTemplate"))
        }
        // spec.steps (the list) and one step.
        "self.all(s, self.exists_one(t, t.name == s.name))" => {
            let steps = this.as_array().map(Vec::as_slice).unwrap_or_default();
            let names: Vec<Option<&Value>> = steps.iter().map(|s| field(s, "name")).collect();
            // A step without a name fails the evaluation (and the schema's `required`).
            Some(
                names.iter().all(Option::is_some)
                    && names
                        .iter()
                        .all(|n| names.iter().filter(|m| *m == n).count() == 1),
            )
        }
        "has(self.resources) || has(self.resourcesTemplate)" => {
            Some(has(this, "resources") || has(this, "resourcesTemplate"))
        }
        // spec.inputStrategy.
        "!has(self.includeEmptyProviders) || self.name == 'Permute'" => {
            Some(!has(this, "includeEmptyProviders") || str_field(this, "name") == Some("Permute"))
        }
        // spec.inputsFrom[].
        "has(self.name) || has(self.selector)" => Some(has(this, "name") || has(this, "selector")),
        "!has(self.name) || !has(self.selector)" => {
            Some(!has(this, "name") || !has(this, "selector"))
        }
        // ResourceSetInputProvider spec.selectors[].
        "!has(self.name) || (!has(self.matchLabels) && !has(self.matchExpressions))" => Some(
            !has(this, "name") || (!has(this, "matchLabels") && !has(this, "matchExpressions")),
        ),
        _ => return provider_rule(rule, this),
    };
    verdict.map(holds)
}

/// The 16 rules of the ResourceSetInputProvider spec. Every one reads `self.type` (required).
fn provider_rule(rule: &str, spec: &Value) -> Option<Verdict> {
    let ty = str_field(spec, "type").unwrap_or_default();
    let url = str_field(spec, "url");
    // `self.url.<method>(...)`: an unset url fails the evaluation.
    let url_is = |check: &dyn Fn(&str) -> bool| url.is_some_and(check);
    let insecure = field(spec, "insecure") == Some(&Value::Bool(true));
    let cloud_tag = ty.ends_with("ArtifactTag") && ty != "OCIArtifactTag";
    let ok = match rule {
        "self.type != 'Static' || !has(self.url)" => ty != "Static" || !has(spec, "url"),
        "self.type != 'ExternalArtifact' || !has(self.url)" => {
            ty != "ExternalArtifact" || !has(spec, "url")
        }
        "self.type == 'Static' || self.type == 'ExternalArtifact' || has(self.url)" => {
            ty == "Static" || ty == "ExternalArtifact" || has(spec, "url")
        }
        "!self.type.startsWith('Git') || self.url.startsWith('http')" => {
            !ty.starts_with("Git") || url_is(&|u| u.starts_with("http"))
        }
        "!self.type.startsWith('AzureDevOps') || self.url.startsWith('http://') || self.url.startsWith('https://')" => {
            !ty.starts_with("AzureDevOps")
                || url_is(&|u| u.starts_with("http://") || u.starts_with("https://"))
        }
        "!self.type.startsWith('AWSCodeCommit') || self.url.startsWith('https://')" => {
            !ty.starts_with("AWSCodeCommit") || url_is(&|u| u.starts_with("https://"))
        }
        "!self.type.endsWith('ArtifactTag') || self.url.startsWith('oci')" => {
            !ty.ends_with("ArtifactTag") || url_is(&|u| u.starts_with("oci"))
        }
        "!self.type.endsWith('ArtifactTag') || !self.url.startsWith('oci://') || self.url.substring(6).contains('/')" => {
            !ty.ends_with("ArtifactTag")
                || url_is(&|u| !u.starts_with("oci://") || u[6..].contains('/'))
        }
        "self.type != 'ExternalService' || self.url.startsWith('http')" => {
            ty != "ExternalService" || url_is(&|u| u.starts_with("http"))
        }
        "!has(self.insecure) || !self.insecure || self.type == 'ExternalService' || self.type == 'OCIArtifactTag'" => {
            !insecure || ty == "ExternalService" || ty == "OCIArtifactTag"
        }
        "self.type != 'ExternalService' || !self.url.startsWith('http://') || (has(self.insecure) && self.insecure)" => {
            ty != "ExternalService" || url_is(&|u| !u.starts_with("http://")) || insecure
        }
        "!has(self.serviceAccountName) || self.type.startsWith('AzureDevOps') || self.type.startsWith('AWSCodeCommit') || self.type.endsWith('ArtifactTag') || self.type == 'ExternalArtifact'" => {
            !has(spec, "serviceAccountName")
                || ty.starts_with("AzureDevOps")
                || ty.starts_with("AWSCodeCommit")
                || ty.ends_with("ArtifactTag")
                || ty == "ExternalArtifact"
        }
        "!has(self.certSecretRef) || !(self.type == 'Static' || self.type == 'ExternalArtifact' || self.type.startsWith('AzureDevOps') || self.type.startsWith('AWSCodeCommit') || (self.type.endsWith('ArtifactTag') && self.type != 'OCIArtifactTag'))" => {
            !has(spec, "certSecretRef")
                || !(ty == "Static"
                    || ty == "ExternalArtifact"
                    || ty.starts_with("AzureDevOps")
                    || ty.starts_with("AWSCodeCommit")
                    || cloud_tag)
        }
        "!has(self.secretRef) || !(self.type == 'Static' || self.type == 'ExternalArtifact' || self.type.startsWith('AWSCodeCommit') || (self.type.endsWith('ArtifactTag') && self.type != 'OCIArtifactTag'))" => {
            !has(spec, "secretRef")
                || !(ty == "Static"
                    || ty == "ExternalArtifact"
                    || ty.starts_with("AWSCodeCommit")
                    || cloud_tag)
        }
        "self.type != 'ExternalArtifact' || (has(self.selectors) && size(self.selectors) > 0)" => {
            ty != "ExternalArtifact"
                || field(spec, "selectors")
                    .and_then(Value::as_array)
                    .is_some_and(|s| !s.is_empty())
        }
        "self.type == 'ExternalArtifact' || !has(self.selectors)" => {
            ty == "ExternalArtifact" || !has(spec, "selectors")
        }
        _ => return None,
    };
    Some(holds(ok))
}

fn holds(ok: bool) -> Verdict {
    if ok {
        Verdict::Holds
    } else {
        Verdict::Violated
    }
}

/// `has(value.key)`: present (the API server drops nulls of fields that are not nullable).
fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.get(key).filter(|v| !v.is_null())
}

fn has(value: &Value, key: &str) -> bool {
    field(value, key).is_some()
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    field(value, key).and_then(Value::as_str)
}

#[cfg(test)]
#[path = "cel_tests.rs"]
mod tests;
