//! Every CEL rule of the two CRDs, found by its message, holds and fails where the API
//! server's evaluation would.

use kube::CustomResourceExt;
use serde_json::{Value, json};

use super::*;
use crate::api::{ResourceSet, ResourceSetInputProvider};

/// `(rule, message)` of every `x-kubernetes-validations` entry under `schema`.
fn rules(schema: &Value, found: &mut Vec<(String, String)>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(list)) = map.get("x-kubernetes-validations") {
                found.extend(list.iter().map(|r| {
                    (
                        r["rule"].as_str().expect("a rule").to_string(),
                        r["message"].as_str().expect("a message").to_string(),
                    )
                }));
            }
            map.values().for_each(|v| rules(v, found));
        }
        Value::Array(list) => list.iter().for_each(|v| rules(v, found)),
        _ => {}
    }
}

fn crd_rules() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for crd in [ResourceSet::crd(), ResourceSetInputProvider::crd()] {
        rules(
            &serde_json::to_value(crd).expect("CRD serializes"),
            &mut found,
        );
    }
    found
}

/// For each message: values of the node that satisfy the rule, and values that violate it.
fn cases() -> Vec<(&'static str, Vec<Value>, Vec<Value>)> {
    vec![
        // ResourceSet spec.
        (
            "steps is mutually exclusive with resources and resourcesTemplate",
            vec![
                json!({ "steps": [] }),
                json!({ "resources": [], "resourcesTemplate": "x" }),
            ],
            vec![
                json!({ "steps": [], "resources": [] }),
                json!({ "steps": [], "resourcesTemplate": "x" }),
            ],
        ),
        (
            "at least one of steps, resources or resourcesTemplate must be set",
            vec![
                json!({ "steps": [] }),
                json!({ "resources": [] }),
                json!({ "resourcesTemplate": "" }),
            ],
            vec![
                json!({}),
                json!({ "inputs": [{}] }),
                json!({ "resources": null }),
            ],
        ),
        (
            "step names must be unique",
            vec![json!([]), json!([{ "name": "a" }, { "name": "b" }])],
            vec![json!([{ "name": "a" }, { "name": "b" }, { "name": "a" }])],
        ),
        (
            "at least one of resources or resourcesTemplate must be set",
            vec![
                json!({ "name": "a", "resources": [] }),
                json!({ "name": "a", "resourcesTemplate": "" }),
            ],
            vec![
                json!({ "name": "a" }),
                json!({ "name": "a", "timeout": "1m" }),
            ],
        ),
        (
            "includeEmptyProviders only applies when name is Permute",
            vec![
                json!({ "name": "Flatten" }),
                json!({ "name": "Permute", "includeEmptyProviders": true }),
                json!({ "name": "Permute", "includeEmptyProviders": false }),
            ],
            vec![json!({ "name": "Flatten", "includeEmptyProviders": false })],
        ),
        (
            "at least one of name or selector must be set for input provider references",
            vec![json!({ "name": "a" }), json!({ "selector": {} })],
            vec![json!({}), json!({ "kind": "ResourceSetInputProvider" })],
        ),
        (
            "cannot set both name and selector for input provider references",
            vec![json!({ "name": "a" }), json!({ "selector": {} }), json!({})],
            vec![json!({ "name": "a", "selector": { "matchLabels": { "x": "y" } } })],
        ),
        // ResourceSetInputProvider spec.selectors[].
        (
            "name is mutually exclusive with matchLabels and matchExpressions",
            vec![
                json!({ "name": "a", "namespace": "*" }),
                json!({ "matchLabels": {}, "matchExpressions": [] }),
            ],
            vec![
                json!({ "name": "a", "matchLabels": {} }),
                json!({ "name": "a", "matchExpressions": [] }),
            ],
        ),
        // ResourceSetInputProvider spec.
        (
            "spec.url must be empty when spec.type is 'Static'",
            vec![
                json!({ "type": "Static" }),
                json!({ "type": "GitHubTag", "url": "https://x" }),
            ],
            vec![json!({ "type": "Static", "url": "" })],
        ),
        (
            "spec.url must be empty when spec.type is 'ExternalArtifact'",
            vec![json!({ "type": "ExternalArtifact" })],
            vec![json!({ "type": "ExternalArtifact", "url": "https://x" })],
        ),
        (
            "spec.url must not be empty when spec.type is not 'Static' or 'ExternalArtifact'",
            vec![
                json!({ "type": "Static" }),
                json!({ "type": "ExternalArtifact" }),
                json!({ "type": "GiteaTag", "url": "https://x" }),
            ],
            vec![
                json!({ "type": "GiteaTag" }),
                json!({ "type": "OCIArtifactTag" }),
            ],
        ),
        (
            "spec.url must start with 'http://' or 'https://' when spec.type is a Git provider",
            vec![
                json!({ "type": "GitHubBranch", "url": "https://github.com/o/r" }),
                json!({ "type": "GitLabTag", "url": "http://gitlab" }),
                json!({ "type": "AzureDevOpsTag" }),
            ],
            vec![
                json!({ "type": "GitHubPullRequest", "url": "oci://x/y" }),
                json!({ "type": "GiteaBranch" }),
            ],
        ),
        (
            "spec.url must start with 'http://' or 'https://' when spec.type is an AzureDevOps provider",
            vec![
                json!({ "type": "AzureDevOpsBranch", "url": "https://dev.azure.com/o/p/_git/r" }),
                json!({ "type": "Static" }),
            ],
            vec![
                json!({ "type": "AzureDevOpsPullRequest", "url": "httpx://a" }),
                json!({ "type": "AzureDevOpsTag" }),
            ],
        ),
        (
            "spec.url must start with 'https://' when spec.type is a AWSCodeCommit provider",
            vec![json!({ "type": "AWSCodeCommitBranch", "url": "https://git-codecommit" })],
            vec![json!({ "type": "AWSCodeCommitTag", "url": "http://git-codecommit" })],
        ),
        (
            "spec.url must start with 'oci://' when spec.type is an OCI provider",
            vec![
                json!({ "type": "ECRArtifactTag", "url": "oci://r/x" }),
                json!({ "type": "GitHubTag", "url": "https://x" }),
            ],
            vec![
                json!({ "type": "OCIArtifactTag", "url": "https://r/x" }),
                json!({ "type": "GARArtifactTag" }),
            ],
        ),
        (
            "spec.url must include the repository path after the registry host when spec.type is an OCI provider",
            vec![
                json!({ "type": "OCIArtifactTag", "url": "oci://ghcr.io/org/app" }),
                // Not `oci://`: the other rule reports it.
                json!({ "type": "ACRArtifactTag", "url": "https://registry" }),
            ],
            vec![
                json!({ "type": "OCIArtifactTag", "url": "oci://ghcr.io" }),
                json!({ "type": "ACRArtifactTag" }),
            ],
        ),
        (
            "spec.url must start with 'http://' or 'https://' when spec.type is 'ExternalService'",
            vec![
                json!({ "type": "ExternalService", "url": "https://svc" }),
                json!({ "type": "Static" }),
            ],
            vec![
                json!({ "type": "ExternalService", "url": "oci://svc/x" }),
                json!({ "type": "ExternalService" }),
            ],
        ),
        (
            "spec.insecure can only be set when spec.type is 'ExternalService' or 'OCIArtifactTag'",
            vec![
                json!({ "type": "ExternalService", "insecure": true }),
                json!({ "type": "OCIArtifactTag", "insecure": true }),
                json!({ "type": "GitHubTag", "insecure": false }),
            ],
            vec![
                json!({ "type": "GitHubTag", "insecure": true }),
                json!({ "type": "ECRArtifactTag", "insecure": true }),
            ],
        ),
        (
            "spec.url must use 'https://' unless spec.insecure is true",
            vec![
                json!({ "type": "ExternalService", "url": "https://svc" }),
                json!({ "type": "ExternalService", "url": "http://svc", "insecure": true }),
                json!({ "type": "GitHubTag", "url": "http://gh" }),
            ],
            vec![
                json!({ "type": "ExternalService", "url": "http://svc" }),
                json!({ "type": "ExternalService", "url": "http://svc", "insecure": false }),
            ],
        ),
        (
            "cannot specify spec.serviceAccountName when spec.type is not one of AzureDevOps*, AWSCodeCommit*, *ArtifactTag or ExternalArtifact",
            [
                "AzureDevOpsTag",
                "AWSCodeCommitBranch",
                "OCIArtifactTag",
                "GARArtifactTag",
                "ExternalArtifact",
            ]
            .into_iter()
            .map(|t| json!({ "type": t, "serviceAccountName": "sa" }))
            .chain([json!({ "type": "GitHubTag" })])
            .collect(),
            [
                "Static",
                "GitHubTag",
                "GitLabEnvironment",
                "GiteaPullRequest",
                "ExternalService",
            ]
            .into_iter()
            .map(|t| json!({ "type": t, "serviceAccountName": "sa" }))
            .collect(),
        ),
        (
            "cannot specify spec.certSecretRef when spec.type is one of Static, ExternalArtifact, AzureDevOps*, AWSCodeCommit*, ACRArtifactTag, ECRArtifactTag or GARArtifactTag",
            [
                "GitHubTag",
                "GitLabBranch",
                "GiteaTag",
                "OCIArtifactTag",
                "ExternalService",
            ]
            .into_iter()
            .map(|t| json!({ "type": t, "certSecretRef": { "name": "tls" } }))
            .chain([json!({ "type": "Static" })])
            .collect(),
            [
                "Static",
                "ExternalArtifact",
                "AzureDevOpsBranch",
                "AWSCodeCommitTag",
                "ACRArtifactTag",
                "ECRArtifactTag",
                "GARArtifactTag",
            ]
            .into_iter()
            .map(|t| json!({ "type": t, "certSecretRef": { "name": "tls" } }))
            .collect(),
        ),
        (
            "cannot specify spec.secretRef when spec.type is one of Static, ExternalArtifact, AWSCodeCommit*, ACRArtifactTag, ECRArtifactTag or GARArtifactTag",
            [
                "GitHubTag",
                "AzureDevOpsBranch",
                "GiteaTag",
                "OCIArtifactTag",
                "ExternalService",
            ]
            .into_iter()
            .map(|t| json!({ "type": t, "secretRef": { "name": "auth" } }))
            .chain([json!({ "type": "Static" })])
            .collect(),
            [
                "Static",
                "ExternalArtifact",
                "AWSCodeCommitTag",
                "ACRArtifactTag",
                "ECRArtifactTag",
                "GARArtifactTag",
            ]
            .into_iter()
            .map(|t| json!({ "type": t, "secretRef": { "name": "auth" } }))
            .collect(),
        ),
        (
            "spec.selectors must be set when spec.type is 'ExternalArtifact'",
            vec![
                json!({ "type": "ExternalArtifact", "selectors": [{ "name": "a" }] }),
                json!({ "type": "Static" }),
            ],
            vec![
                json!({ "type": "ExternalArtifact" }),
                json!({ "type": "ExternalArtifact", "selectors": [] }),
            ],
        ),
        (
            "spec.selectors must not be set when spec.type is not 'ExternalArtifact'",
            vec![
                json!({ "type": "ExternalArtifact", "selectors": [] }),
                json!({ "type": "Static" }),
            ],
            vec![
                json!({ "type": "Static", "selectors": [] }),
                json!({ "type": "GitHubTag", "selectors": [{}] }),
            ],
        ),
    ]
}

#[test]
fn every_rule_of_the_resourceset_crds_has_a_check() {
    let found = crd_rules();
    // 2 spec rules, the step list and the step, the strategy, 2 reference rules; 16 RSIP
    // spec rules and the ExternalArtifact selector.
    assert_eq!(found.len(), 7 + 17, "{found:#?}");
    for (rule, _) in &found {
        assert!(
            evaluate(rule, &json!({ "type": "Static" })).is_some(),
            "a CEL rule without a check in api/resourceset/cel.rs: {rule}"
        );
    }
}

#[test]
fn each_rule_holds_and_fails_where_the_api_server_would() {
    let found = crd_rules();
    let cases = cases();
    let tested: Vec<&str> = cases.iter().map(|(m, _, _)| *m).collect();
    for (_, message) in &found {
        assert!(
            tested.contains(&message.as_str()),
            "no cases for {message:?}"
        );
    }
    for (message, holding, violating) in cases {
        let (rule, _) = found
            .iter()
            .find(|(_, m)| m == message)
            .unwrap_or_else(|| panic!("no rule with message {message:?}"));
        for value in holding {
            assert_eq!(
                evaluate(rule, &value),
                Some(Verdict::Holds),
                "{message}: {value}"
            );
        }
        for value in violating {
            assert_eq!(
                evaluate(rule, &value),
                Some(Verdict::Violated),
                "{message}: {value}"
            );
        }
    }
}

#[test]
fn unknown_rules_have_no_check() {
    assert_eq!(evaluate("self.size() > 0", &json!({})), None);
}
