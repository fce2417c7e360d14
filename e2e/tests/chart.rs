//! The Helm chart against `deploy/`, with the real Helm CLI (`hack/testbed-build.sh helm`):
//! it lints, and renders the same RBAC rules, so the two ways to install fluxop grant the
//! same. (Installing it for real is in `pods.rs`.)

use fluxop_e2e::{pods::helm, repo_root};
use serde_json::Value;

/// The documents of a multi-document YAML stream, as JSON.
fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .expect("YAML parses")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn rules(documents: &[Value], kind: &str, name: &str) -> Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))["rules"]
        .clone()
}

fn run_helm(args: &[&str]) -> String {
    let output = helm().args(args).output().expect("helm runs");
    assert!(
        output.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_chart_lints_and_grants_exactly_what_deploy_grants() {
    let chart = repo_root().join("charts/fluxop");
    let chart = chart.to_str().expect("path");
    run_helm(&["lint", "--strict", chart]);
    let rendered = documents(&run_helm(&[
        "template",
        "fluxop",
        chart,
        "--namespace",
        "flux-system",
    ]));
    let deploy = documents(
        &std::fs::read_to_string(repo_root().join("deploy/rbac.yaml")).expect("deploy/rbac.yaml"),
    );
    for (kind, name) in [
        ("ClusterRole", "fluxop"),
        ("Role", "fluxop"),
        ("ClusterRole", "fluxop-view"),
        ("ClusterRole", "fluxop-metrics-reader"),
        ("ClusterRole", "fluxop-edit"),
    ] {
        assert_eq!(
            rules(&rendered, kind, name),
            rules(&deploy, kind, name),
            "{kind} {name} differs between the chart and deploy/rbac.yaml"
        );
    }
    // The trust policy becomes flags of `fluxop run`, and only when set.
    let args = |documents: &[Value]| -> Vec<String> {
        let deployment = documents
            .iter()
            .find(|d| d["kind"] == "Deployment")
            .expect("a Deployment");
        deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(|a| a.as_str().map(String::from))
            .collect()
    };
    assert!(
        !args(&rendered)
            .iter()
            .any(|a| a.starts_with("--required-signature-secret")
                || a.starts_with("--allowed-registry")),
        "no trust flags by default"
    );
    let trusting = documents(&run_helm(&[
        "template",
        "fluxop",
        chart,
        "--set",
        "trust.requiredSignatureSecret=flux-bundle-key",
        "--set",
        "trust.allowedRegistries={ghcr.io/acme,127.0.0.1:5000}",
    ]));
    let trust_args: Vec<String> = args(&trusting)
        .into_iter()
        .filter(|a| {
            a.starts_with("--required-signature-secret") || a.starts_with("--allowed-registry")
        })
        .collect();
    assert_eq!(
        trust_args,
        [
            "--required-signature-secret=flux-bundle-key",
            "--allowed-registry=ghcr.io/acme",
            "--allowed-registry=127.0.0.1:5000"
        ]
    );
    // Two replicas without leader election would fight: the chart refuses them.
    let refused = helm()
        .args(["template", "fluxop", chart, "--set", "replicas=2"])
        .args(["--set", "leaderElection.enabled=false"])
        .output()
        .expect("helm runs");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("leaderElection.enabled"));
}
