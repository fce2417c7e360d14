//! Every ResourceSet and ResourceSetInputProvider manifest of the incumbent's docs and test
//! data reads into the Rust types and writes back to the same JSON.

use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::schema_tests::incumbent_module;
use crate::api::{
    InputProviderType, ResourceSet, ResourceSetInputProvider, ResourceSetInputProviderSpec,
    ResourceSetSpec,
};

fn files(dir: &Path, keep: &dyn Fn(&str) -> bool, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files(&path, keep, out);
        } else if keep(&path.file_name().unwrap_or_default().to_string_lossy()) {
            out.push(path);
        }
    }
}

/// The ```yaml blocks of a Markdown page.
fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        let fence = line.trim_start();
        match &mut current {
            None if fence.starts_with("```yaml") || fence.starts_with("```yml") => {
                current = Some(String::new());
            }
            Some(block) if fence.starts_with("```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[derive(Default)]
struct Seen {
    resourcesets: Vec<ResourceSet>,
    providers: Vec<ResourceSetInputProvider>,
    /// Bare `spec:` examples of the ResourceSet API page.
    specs: Vec<ResourceSetSpec>,
    /// Doc snippets (a bare provider `spec:`, or an object without `metadata.name`).
    fragments: Vec<String>,
}

fn round_trip<T: Serialize + DeserializeOwned>(origin: &str, raw: &Value) -> T {
    let typed: T = serde_json::from_value(raw.clone())
        .unwrap_or_else(|e| panic!("{origin}: does not deserialize: {e}\n{raw:#}"));
    let written = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(&written, raw, "{origin}: changed in the round trip");
    typed
}

/// A provider spec shown in part: a snippet may leave out `type`, which is then set to a
/// type that takes every field, for the round trip of the fields it shows.
fn provider_spec_fragment(origin: &str, spec: &Value) {
    let mut spec = spec.clone();
    if spec.get("type").is_none() {
        spec["type"] = "GitHubPullRequest".into();
    }
    let _: ResourceSetInputProviderSpec = round_trip(origin, &spec);
}

/// Checks every document of `text` of one of the two kinds; `strict`: the text must parse.
fn check_documents(origin: &str, text: &str, strict: bool, seen: &mut Seen) {
    let docs: Vec<Value> = match serde_saphyr::from_str_multiple(text) {
        Ok(docs) => docs,
        Err(e) => {
            // A doc snippet that is not YAML on its own must not be one of ours.
            assert!(
                !strict && !text.contains("kind: ResourceSet"),
                "{origin}: not YAML: {e}\n{text}"
            );
            return;
        }
    };
    for (index, doc) in docs.iter().enumerate() {
        // The API pages show many examples as a bare `spec:`.
        let spec_only = doc
            .as_object()
            .is_some_and(|m| m.len() == 1 && m.contains_key("spec"));
        if spec_only && origin.contains("docs/api/v1/resourceset.md") {
            let origin = format!("{origin} document {index} (spec)");
            seen.specs.push(round_trip(&origin, &doc["spec"]));
            continue;
        }
        if spec_only && origin.contains("docs/api/v1/resourcesetinputprovider.md") {
            let origin = format!("{origin} document {index} (spec)");
            provider_spec_fragment(&origin, &doc["spec"]);
            seen.fragments.push(origin);
            continue;
        }
        if doc["apiVersion"] != "fluxcd.controlplane.io/v1" {
            continue;
        }
        let origin = format!("{origin} document {index}");
        let ours = matches!(
            doc["kind"].as_str(),
            Some("ResourceSet" | "ResourceSetInputProvider")
        );
        if ours && doc["metadata"]["name"].as_str().is_none() {
            // A snippet of a guide: only its spec is shown in full.
            assert!(!strict, "{origin}: no metadata.name");
            if doc["kind"] == "ResourceSet" {
                seen.specs.push(round_trip(&origin, &doc["spec"]));
            } else {
                provider_spec_fragment(&origin, &doc["spec"]);
            }
            seen.fragments.push(origin);
            continue;
        }
        match doc["kind"].as_str() {
            Some("ResourceSet") => seen.resourcesets.push(round_trip(&origin, doc)),
            Some("ResourceSetInputProvider") => seen.providers.push(round_trip(&origin, doc)),
            _ => {}
        }
    }
}

#[test]
fn every_incumbent_resourceset_and_provider_manifest_round_trips() {
    let module = incumbent_module();
    let mut seen = Seen::default();

    let mut pages = Vec::new();
    files(&module.join("docs"), &|n| n.ends_with(".md"), &mut pages);
    for page in &pages {
        let text = std::fs::read_to_string(page).expect("a readable page");
        for (index, block) in yaml_blocks(&text).iter().enumerate() {
            let origin = format!("{} block {index}", page.display());
            check_documents(&origin, block, false, &mut seen);
        }
    }
    let from_docs = (seen.resourcesets.len(), seen.providers.len());
    eprintln!(
        "docs: {} ResourceSets, {} providers, {} ResourceSet specs, {} snippets",
        from_docs.0,
        from_docs.1,
        seen.specs.len(),
        seen.fragments.len()
    );

    let mut data = Vec::new();
    files(
        &module.join("internal/builder/testdata/resourceset"),
        &|n| n.ends_with(".yaml") && !n.ends_with(".golden.yaml"),
        &mut data,
    );
    files(
        &module.join("cmd/cli/testdata/build_resourceset"),
        &|n| n.ends_with(".yaml") && (n.starts_with("rset-") || n.starts_with("rsip")),
        &mut data,
    );
    for file in &data {
        let text = std::fs::read_to_string(file).expect("a readable file");
        check_documents(&file.display().to_string(), &text, true, &mut seen);
    }

    // Enough of each to mean something, and the fields that matter most were met.
    assert!(
        from_docs.0 >= 20 && from_docs.1 >= 10,
        "docs: {from_docs:?}"
    );
    assert!(
        seen.resourcesets.len() >= from_docs.0 + 15,
        "{}",
        seen.resourcesets.len()
    );
    let specs = || seen.resourcesets.iter().map(|r| &r.spec).chain(&seen.specs);
    assert!(specs().any(|s| s.steps.is_some()));
    assert!(specs().any(|s| s.inputs_from.iter().flatten().any(|r| r.selector.is_some())));
    assert!(specs().any(|s| {
        s.depends_on
            .iter()
            .flatten()
            .any(|d| d.ready_expr.is_some())
    }));
    assert!(specs().any(|s| s.input_strategy.is_some()));
    let types: std::collections::BTreeSet<InputProviderType> =
        seen.providers.iter().map(|p| p.spec.type_).collect();
    assert!(types.len() >= 5, "{types:?}");
}

/// Fields the incumbent leaves unset stay unset; an absent spec reads as the empty one.
#[test]
fn absent_fields_and_spec_stay_absent() {
    let minimal = serde_json::json!({
        "apiVersion": "fluxcd.controlplane.io/v1",
        "kind": "ResourceSet",
        "metadata": { "name": "a", "namespace": "b" },
        "spec": { "resources": [{ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "x" } }] }
    });
    let _: ResourceSet = round_trip("minimal", &minimal);
    let mut no_spec = minimal.clone();
    no_spec.as_object_mut().expect("an object").remove("spec");
    let read: ResourceSet = serde_json::from_value(no_spec).expect("a spec-less ResourceSet reads");
    assert_eq!(read.spec, crate::api::ResourceSetSpec::default());
    let mut null_spec = minimal;
    null_spec["spec"] = Value::Null;
    let read: ResourceSet = serde_json::from_value(null_spec).expect("a null spec reads");
    assert_eq!(read.spec, crate::api::ResourceSetSpec::default());
}

/// Status as the incumbent's controller writes it.
#[test]
fn statuses_round_trip() {
    let rset = serde_json::json!({
        "apiVersion": "fluxcd.controlplane.io/v1",
        "kind": "ResourceSet",
        "metadata": { "name": "a" },
        "spec": { "resourcesTemplate": "" },
        "status": {
            "lastHandledReconcileAt": "2025-01-01T00:00:00Z",
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                "message": "Reconciliation finished in 1s", "observedGeneration": 2,
                "lastTransitionTime": "2025-01-01T00:00:00Z"
            }],
            "inventory": { "entries": [{ "id": "apps_app_apps_Deployment", "v": "v1" }] },
            "lastAppliedRevision": "sha256:abc",
            "externalChecksumRefs": ["ConfigMap/apps/settings"],
            "history": [{
                "digest": "sha256:abc", "firstReconciled": "2025-01-01T00:00:00Z",
                "lastReconciled": "2025-01-01T01:00:00Z", "lastReconciledDuration": "2.818583s",
                "lastReconciledStatus": "ReconciliationSucceeded", "totalReconciliations": 2,
                "metadata": { "inputs": "2", "resources": "3" }
            }]
        }
    });
    let _: ResourceSet = round_trip("ResourceSet status", &rset);
    let rsip = serde_json::json!({
        "apiVersion": "fluxcd.controlplane.io/v1",
        "kind": "ResourceSetInputProvider",
        "metadata": { "name": "a" },
        "spec": { "type": "GitHubPullRequest", "url": "https://github.com/o/r",
                  "filter": { "limit": 10, "labels": ["deploy"] },
                  "schedule": [{ "cron": "0 9 * * 1-5", "timeZone": "Europe/London", "window": "8h" }] },
        "status": {
            "lastHandledReconcileAt": "x", "lastHandledForceAt": "y",
            "exportedInputs": [{ "id": "42074437", "branch": "main", "labels": ["a"], "n": 2, "x": null }],
            "lastExportedRevision": "sha256:def",
            "nextSchedule": { "cron": "0 9 * * 1-5", "timeZone": "UTC", "window": "0s",
                              "when": "2025-01-01T09:00:00Z" }
        }
    });
    let read: ResourceSetInputProvider = round_trip("RSIP status", &rsip);
    let status = read.status.expect("a status");
    assert_eq!(status.exported_inputs.expect("inputs")[0]["n"], 2);
    assert_eq!(
        status
            .next_schedule
            .expect("a schedule")
            .schedule
            .time_zone(),
        "UTC"
    );
}
