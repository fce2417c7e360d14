//! The request sequences that decide safety, against a scripted in-process API
//! ([`crate::testing::scripted_api`]): what prune reads before it deletes, the
//! preconditions its deletes carry, what it never deletes, and the exact body of a status
//! write. A failure names the request that differed. End-to-end tests show the same against
//! the real API server; these pin the conversation itself.

use http::Method;
use serde_json::{Value, json};

use super::lifecycle::{self, CrdPrune, Report};
use crate::{
    api::{
        FluxInstance, FluxInstanceStatus, ResourceInventory, ResourceRef,
        constants::{FIELD_MANAGER, label},
    },
    apply::Applier,
    testing::scripted_api::{ScriptedApi, Step, deleted, resource_list},
};

fn instance() -> FluxInstance {
    serde_json::from_value(json!({
        "apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
        "metadata": { "name": "flux", "namespace": "flux-system", "generation": 3 },
        "spec": { "distribution": { "version": "2.x", "registry": "ghcr.io/fluxcd" } }
    }))
    .unwrap()
}

fn inventory(entries: &[(&str, &str)]) -> ResourceInventory {
    ResourceInventory {
        entries: entries
            .iter()
            .map(|(id, v)| ResourceRef {
                id: id.to_string(),
                v: v.to_string(),
            })
            .collect(),
    }
}

fn owned_by(name: &str) -> Value {
    json!({ label::OWNER_NAME: name, label::OWNER_NAMESPACE: "flux-system" })
}

const POLICIES: &str = "imagepolicies.image.toolkit.fluxcd.io";
const CRD_PATH: &str =
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/imagepolicies.image.toolkit.fluxcd.io";

fn crd_steps(objects_page: Value) -> Vec<Step> {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": POLICIES, "uid": "crd-uid", "resourceVersion": "41",
                      "labels": owned_by("flux") },
        "spec": { "group": "image.toolkit.fluxcd.io", "scope": "Namespaced",
                  "names": { "kind": "ImagePolicy", "plural": "imagepolicies" },
                  "versions": [{ "name": "v1", "served": true, "storage": true }] }
    });
    vec![
        Step::new(
            Method::GET,
            "/apis/apiextensions.k8s.io/v1",
            200,
            resource_list(
                "apiextensions.k8s.io/v1",
                &[(
                    "customresourcedefinitions",
                    "CustomResourceDefinition",
                    false,
                )],
            ),
        ),
        Step::new(Method::GET, CRD_PATH, 200, crd.clone()),
        Step::new(
            Method::GET,
            "/apis/image.toolkit.fluxcd.io/v1",
            200,
            resource_list(
                "image.toolkit.fluxcd.io/v1",
                &[("imagepolicies", "ImagePolicy", true)],
            ),
        ),
        Step::new(
            Method::GET,
            "/apis/image.toolkit.fluxcd.io/v1/imagepolicies?&limit=1",
            200,
            objects_page,
        ),
    ]
}

fn crd_inventory() -> ResourceInventory {
    inventory(&[(
        "_imagepolicies.image.toolkit.fluxcd.io_apiextensions.k8s.io_CustomResourceDefinition",
        "v1",
    )])
}

/// Prunes everything in `previous`; the script is checked first, so a failure names the
/// request that differed rather than the error it caused.
async fn prune(
    (client, api): (kube::Client, ScriptedApi),
    previous: &ResourceInventory,
) -> (Report, Vec<crate::testing::scripted_api::Seen>) {
    let applier = Applier::new(client, FIELD_MANAGER);
    let mut report = Report::default();
    let result = lifecycle::prune(
        &applier,
        &instance(),
        previous,
        &ResourceInventory::default(),
        CrdPrune::KeepInUse,
        &mut report,
    )
    .await;
    let seen = api.finish();
    result.expect("prune");
    (report, seen)
}

#[tokio::test]
async fn prune_deletes_with_the_judged_uid_and_version_and_never_what_is_not_ours() {
    let ours = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "old", "namespace": "flux-system", "uid": "u-old",
                      "resourceVersion": "7", "labels": owned_by("flux") }
    });
    let theirs = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "theirs", "namespace": "flux-system", "uid": "u-theirs",
                      "resourceVersion": "9", "labels": owned_by("another") }
    });
    let path = "/apis/apps/v1/namespaces/flux-system/deployments";
    let script = ScriptedApi::client(vec![
        Step::new(
            Method::GET,
            "/apis/apps/v1",
            200,
            resource_list("apps/v1", &[("deployments", "Deployment", true)]),
        ),
        Step::new(Method::GET, &format!("{path}/theirs"), 200, theirs),
        Step::new(Method::GET, &format!("{path}/old"), 200, ours),
        Step::new(Method::DELETE, &format!("{path}/old?"), 200, deleted()),
    ]);
    let (report, seen) = prune(
        script,
        &inventory(&[
            ("flux-system_old_apps_Deployment", "v1"),
            ("flux-system_theirs_apps_Deployment", "v1"),
        ]),
    )
    .await;
    assert_eq!(report.pruned, ["Deployment/flux-system/old"]);
    assert!(
        report.kept[0].contains("owner labels differ"),
        "{:?}",
        report.kept
    );
    let delete = seen.last().expect("a delete").body.clone().expect("body");
    assert_eq!(
        delete["preconditions"],
        json!({ "uid": "u-old", "resourceVersion": "7" })
    );
    assert_eq!(delete["propagationPolicy"], "Background");
}

#[tokio::test]
async fn a_crd_with_objects_is_counted_and_not_deleted() {
    let page = json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
        "metadata": { "resourceVersion": "50", "continue": "next", "remainingItemCount": 2 },
        "items": [{ "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                    "metadata": { "name": "app", "namespace": "apps" } }]
    });
    let (report, _) = prune(ScriptedApi::client(crd_steps(page)), &crd_inventory()).await;
    assert!(report.pruned.is_empty(), "{:?}", report.pruned);
    assert_eq!(report.crds_in_use.len(), 1);
    assert_eq!(report.crds_in_use[0].objects, Some(3));
}

#[tokio::test]
async fn an_empty_crd_is_deleted_with_preconditions() {
    let empty = json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
        "metadata": { "resourceVersion": "50" }, "items": []
    });
    let mut steps = crd_steps(empty);
    let crd = steps[1].answer.clone();
    steps.push(Step::new(Method::GET, CRD_PATH, 200, crd));
    steps.push(Step::new(
        Method::DELETE,
        &format!("{CRD_PATH}?"),
        200,
        deleted(),
    ));
    let (report, seen) = prune(ScriptedApi::client(steps), &crd_inventory()).await;
    assert_eq!(
        report.pruned,
        [format!("CustomResourceDefinition/{POLICIES}")]
    );
    assert_eq!(
        seen.last().unwrap().body.as_ref().unwrap()["preconditions"],
        json!({ "uid": "crd-uid", "resourceVersion": "41" })
    );
}

#[tokio::test]
async fn a_status_write_replaces_the_whole_status_so_a_cleared_field_is_cleared() {
    let mut stored = instance();
    let status = FluxInstanceStatus {
        last_attempted_revision: Some("v2.9.4@sha256:aa".into()),
        rollback: None,
        ..FluxInstanceStatus::default()
    };
    stored.status = Some(status.clone());
    let (client, api) = ScriptedApi::client(vec![Step::new(
        Method::PATCH,
        "/apis/fluxcd.controlplane.io/v1/namespaces/flux-system/fluxinstances/flux/status?&fieldManager=fluxop",
        200,
        serde_json::to_value(&stored).unwrap(),
    )]);
    let instances = kube::Api::<FluxInstance>::namespaced(client, "flux-system");
    super::replace_status(&instances, "flux", &status)
        .await
        .expect("status written");
    let seen = api.finish();
    assert_eq!(
        seen[0].content_type.as_deref(),
        Some("application/json-patch+json")
    );
    let body = seen[0].body.clone().expect("body");
    assert_eq!(
        body,
        json!([{ "op": "add", "path": "/status",
                 "value": serde_json::to_value(&status).unwrap() }])
    );
    assert!(
        body[0]["value"].get("rollback").is_none(),
        "a JSON patch `add /status` replaces the status: no rollback key, none stored"
    );
}

/// The decision a rollback rests on: a new set that does not become healthy by its deadline
/// is reported unhealthy, and nothing of the previous inventory is deleted (prune runs only
/// once healthy), so the revision restored next still has everything it needs.
#[tokio::test(start_paused = true)]
async fn an_unhealthy_new_set_is_reported_and_prunes_nothing() {
    let path = "/apis/apps/v1/namespaces/flux-system/deployments/source-controller";
    let rendered = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "source-controller", "namespace": "flux-system",
                      "labels": owned_by("flux") },
        "spec": { "replicas": 1 }
    });
    let mut created = rendered.clone();
    created["metadata"]["uid"] = json!("u-new");
    created["metadata"]["resourceVersion"] = json!("10");
    created["metadata"]["generation"] = json!(1);
    let mut progressing = created.clone();
    progressing["status"] = json!({
        "observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
        "availableReplicas": 0, "unavailableReplicas": 1,
        "conditions": [{ "type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable" }]
    });
    let not_found = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
        "message": "deployments.apps \"source-controller\" not found"
    });
    let mut steps = vec![
        Step::new(
            Method::GET,
            "/apis/apps/v1",
            200,
            resource_list("apps/v1", &[("deployments", "Deployment", true)]),
        ),
        Step::new(Method::GET, path, 404, not_found),
        Step::new(
            Method::PATCH,
            &format!("{path}?&force=true&fieldManager=fluxop"),
            201,
            created,
        ),
    ];
    // Health reads at 0, 0.25, 0.75 and 1 s (pauses of 250 ms doubling, cut at the deadline).
    for _ in 0..4 {
        steps.push(Step::new(Method::GET, path, 200, progressing.clone()));
    }
    let (client, api) = ScriptedApi::client(steps);
    let applier = Applier::new(client, FIELD_MANAGER);
    let objects = [rendered];
    let plan = lifecycle::Plan {
        instance: &instance(),
        objects: &objects,
        recreate: false,
        timeout: std::time::Duration::from_secs(1),
        canceled: &|| None,
        drift_epoch: &|| 0,
        new_revision: false,
    };
    let previous = inventory(&[
        ("flux-system_source-controller_apps_Deployment", "v1"),
        ("flux-system_old_apps_Deployment", "v1"),
    ]);
    let converged = lifecycle::converge(&applier, &plan, Some(&previous)).await;
    let seen = api.finish();
    match converged {
        Ok(lifecycle::Converged::Unhealthy { why, report }) => {
            assert!(
                why.contains("Deployment/flux-system/source-controller"),
                "{why}"
            );
            assert!(report.pruned.is_empty(), "{:?}", report.pruned);
        }
        other => panic!("expected Unhealthy, got {other:?}"),
    }
    assert!(
        seen.iter().all(|s| s.method != Method::DELETE),
        "nothing is deleted before the new set is healthy"
    );
}
