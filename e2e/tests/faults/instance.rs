//! Hostile instance specs and artifacts against a real cluster (kwok nodes: the operator's
//! bookkeeping is the point, not the pods): a patch that strips fluxop's owner labels does not
//! make it lose track of what it created; a tag moved to an older bundle does not move Flux
//! back; the operator's trust policy holds whatever the instance's editor writes.

use std::time::Duration;

use fluxop::{
    api::FluxInstance,
    bundle::{reference::ArtifactRef, signature},
};
use fluxop_e2e::{
    cluster::{OwnCluster, condition, exclusive, instance_yaml, is_ready_at, wait_for_instance},
    registry_address, unique_repository,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

const MINUTE: Duration = Duration::from_secs(60);

fn spec(components: &str, patches: &str) -> String {
    format!(
        "  distribution:\n    version: \"2.9.x\"\n    registry: ghcr.io/fluxcd\n  components: [{components}]\n{patches}"
    )
}

#[tokio::test]
async fn a_patch_stripping_the_owner_labels_neither_removes_them_nor_stops_pruning() {
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("ownerlabels").await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
    let deployments = Api::<Deployment>::namespaced(client.clone(), "flux-system");
    let _operator = cluster.start_operator("flux-system", &[]).await;

    // The patch removes one owner label and rewrites the other on every Deployment.
    let stripping = "  kustomize:\n    patches:\n    - target: {kind: Deployment}\n      patch: |\n        \
                     - {op: remove, path: /metadata/labels/fluxcd.controlplane.io~1name}\n        \
                     - {op: replace, path: /metadata/labels/fluxcd.controlplane.io~1namespace, value: somebody-else}\n        \
                     - {op: add, path: /metadata/labels/team, value: platform}\n";
    let all = "source-controller, kustomize-controller, helm-controller";
    cluster.apply(&instance_yaml("flux-system", &spec(all, stripping)));
    wait_for_instance(&api, 2 * MINUTE, "the patched install to be Ready", |i| {
        condition(i, "Ready")
            .is_some_and(|c| c.status == "True" && c.observed_generation == i.metadata.generation)
    })
    .await;
    let helm = deployments.get("helm-controller").await.expect("get");
    let labels = helm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("fluxcd.controlplane.io/name")
            .map(String::as_str),
        Some("flux"),
        "{labels:?}"
    );
    assert_eq!(
        labels
            .get("fluxcd.controlplane.io/namespace")
            .map(String::as_str),
        Some("flux-system"),
        "{labels:?}"
    );
    assert_eq!(
        labels.get("team").map(String::as_str),
        Some("platform"),
        "the rest of the patch applies"
    );

    // Dropping helm-controller from the components prunes it: fluxop still knows it is its own.
    cluster.apply(&instance_yaml(
        "flux-system",
        &spec("source-controller, kustomize-controller", stripping),
    ));
    let pruned = wait_for_instance(&api, 2 * MINUTE, "helm-controller to be pruned", |i| {
        condition(i, "Ready")
            .is_some_and(|c| c.status == "True" && c.observed_generation == i.metadata.generation)
    })
    .await;
    assert!(
        deployments
            .get_opt("helm-controller")
            .await
            .expect("get")
            .is_none_or(|d| d.metadata.deletion_timestamp.is_some()),
        "helm-controller was not pruned"
    );
    let inventory = pruned.status.and_then(|s| s.inventory).expect("inventory");
    assert!(
        inventory
            .entries
            .iter()
            .all(|e| !e.id.contains("helm-controller")),
        "helm-controller left the inventory"
    );
}

#[tokio::test]
async fn a_tag_moved_to_an_older_bundle_does_not_move_flux_back_unless_the_spec_asks() {
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("movedback").await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
    let deployments = Api::<Deployment>::namespaced(client.clone(), "flux-system");
    let registry = registry_address();
    let _operator = cluster
        .start_operator("flux-system", &["--insecure-registry", &registry])
        .await;

    // The tag first carries a bundle with a v2.9.5 (v2.9.4's files under a newer version).
    let tag = ArtifactRef::parse(&format!(
        "oci://{registry}/{}:latest",
        unique_repository("movedback")
    ))
    .expect("reference");
    let newer =
        fluxop_e2e::fleet::push(&tag, &fluxop_e2e::fleet::bundle_layer(Some("v2.9.5")), None).await;
    let spec = |version: &str| {
        format!(
            "  distribution:\n    version: \"{version}\"\n    registry: ghcr.io/fluxcd\n    artifact: {tag}\n  components: [source-controller, kustomize-controller]\n"
        )
    };
    cluster.apply(&instance_yaml("flux-system", &spec("2.9.x")));
    wait_for_instance(&api, 2 * MINUTE, "v2.9.5 to be Ready", |i| {
        is_ready_at(i, "v2.9.5@")
    })
    .await;
    let uid = deployments
        .get("source-controller")
        .await
        .expect("get")
        .metadata
        .uid;

    // The tag moves to the plain bundle, whose newest 2.9.x is v2.9.4: refused, said so, and
    // what runs stays.
    fluxop_e2e::fleet::push(&tag, &fluxop_e2e::fleet::bundle_layer(None), None).await;
    cluster.request_reconcile("fluxinstance/flux", "moved-back");
    let refused = wait_for_instance(&api, 2 * MINUTE, "the move back to be refused", |i| {
        condition(i, "Ready").is_some_and(|c| {
            c.status == "False"
                && c.message
                    .contains("refusing to move Flux back from v2.9.5 to v2.9.4")
        })
    })
    .await;
    let ready = condition(&refused, "Ready").expect("Ready");
    println!(
        "moved-back tag: Ready=False {}: {}",
        ready.reason, ready.message
    );
    assert!(
        ready.message.contains("such as \"2.9.4\""),
        "{}",
        ready.message
    );
    let status = refused.status.expect("status");
    assert!(
        status
            .last_applied_revision
            .as_deref()
            .is_some_and(|r| r.starts_with("v2.9.5@")),
        "{:?}",
        status.last_applied_revision
    );
    assert_eq!(
        deployments
            .get("source-controller")
            .await
            .expect("get")
            .metadata
            .uid,
        uid,
        "source-controller was touched"
    );
    assert_eq!(
        status.last_artifact_revision.as_deref(),
        Some(newer.as_str()),
        "the recorded artifact is still the one the running revision came from"
    );

    // While refused, what runs is still kept as applied: a deleted controller comes back
    // (from the cached bundle of v2.9.5), and the refusal stays.
    let started = std::time::Instant::now();
    cluster.kubectl_ok(&[
        "delete",
        "deployment/source-controller",
        "-n",
        "flux-system",
        "--wait=false",
    ]);
    fluxop_e2e::eventually(
        MINUTE,
        "source-controller to be recreated while the move back is refused",
        || async {
            let d = deployments.get_opt("source-controller").await.ok()??;
            (d.metadata.uid != uid && d.metadata.deletion_timestamp.is_none()).then_some(())
        },
    )
    .await;
    println!(
        "moved-back tag: drift corrected in {:?} while refused",
        started.elapsed()
    );
    let still = api.get("flux").await.expect("get");
    assert!(
        condition(&still, "Ready").is_some_and(
            |c| c.status == "False" && c.message.contains("refusing to move Flux back")
        ),
        "{:?}",
        condition(&still, "Ready")
    );

    // Asked for on purpose (a range that leaves v2.9.5 out), the move back goes through.
    cluster.apply(&instance_yaml("flux-system", &spec("2.9.4")));
    wait_for_instance(&api, 2 * MINUTE, "v2.9.4 to be Ready on request", |i| {
        is_ready_at(i, "v2.9.4@")
    })
    .await;
}

#[tokio::test]
async fn the_operators_signature_and_registry_policy_holds_whatever_the_instance_says() {
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("trust").await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
    let registry = registry_address();
    let operator_key = signature::generate_key_pair(b"").expect("key pair");
    let editor_key = signature::generate_key_pair(b"").expect("key pair");
    cluster.apply_public_key("operator-key", &operator_key.public_pem);
    cluster.apply_public_key("editor-key", &editor_key.public_pem);
    let _operator = cluster
        .start_operator(
            "flux-system",
            &[
                "--insecure-registry",
                &registry,
                "--required-signature-secret",
                "operator-key",
                "--allowed-registry",
                &registry,
                "--allowed-registry",
                "ghcr.io/fluxcd",
            ],
        )
        .await;
    let repository = unique_repository("trust");
    let tag = |name: &str| {
        ArtifactRef::parse(&format!("oci://{registry}/{repository}:{name}")).expect("reference")
    };
    // Three different bundles: a signature belongs to a digest, not to a tag.
    let layer = fluxop_e2e::fleet::bundle_layer;
    fluxop_e2e::fleet::push(&tag("unsigned"), &layer(Some("v2.9.90")), None).await;
    fluxop_e2e::fleet::push(&tag("editor"), &layer(Some("v2.9.91")), Some(&editor_key)).await;
    fluxop_e2e::fleet::push(&tag("operator"), &layer(None), Some(&operator_key)).await;
    let spec = |artifact: &str, images: &str, verify: &str| {
        format!(
            "  distribution:\n    version: \"2.9.x\"\n    registry: {images}\n    artifact: {artifact}\n{verify}  components: [source-controller]\n"
        )
    };
    let refused = |reason: &'static str, needle: String| {
        move |i: &FluxInstance| {
            condition(i, "Ready").is_some_and(|c| {
                c.status == "False" && c.reason == reason && c.message.contains(&needle)
            })
        }
    };
    let generation = |i: &FluxInstance| i.metadata.generation;

    // The editor drops `verify`: the operator's key is required all the same.
    cluster.apply(&instance_yaml(
        "flux-system",
        &spec(&tag("unsigned").to_string(), "ghcr.io/fluxcd", ""),
    ));
    let unsigned = wait_for_instance(
        &api,
        2 * MINUTE,
        "an unsigned bundle to be refused",
        refused("VerificationFailed", "--required-signature-secret".into()),
    )
    .await;
    println!(
        "trust: unsigned, no verify: {}",
        condition(&unsigned, "Ready").expect("Ready").message
    );
    // The editor names a key of their own: not the operator's.
    let own_key =
        "    verify:\n      provider: cosign\n      secretRef:\n        name: editor-key\n";
    cluster.apply(&instance_yaml(
        "flux-system",
        &spec(&tag("editor").to_string(), "ghcr.io/fluxcd", own_key),
    ));
    let current = api.get("flux").await.expect("get");
    wait_for_instance(
        &api,
        2 * MINUTE,
        "a bundle signed with the editor's key to be refused",
        |i| {
            generation(i) == generation(&current)
                && refused("VerificationFailed", "operator-key".into())(i)
        },
    )
    .await;
    // Another registry (the same one by another name), and images from elsewhere.
    let elsewhere = format!(
        "oci://localhost:{}/{repository}:operator",
        registry.rsplit(':').next().expect("port")
    );
    cluster.apply(&instance_yaml(
        "flux-system",
        &spec(&elsewhere, "ghcr.io/fluxcd", ""),
    ));
    let stalled = wait_for_instance(
        &api,
        2 * MINUTE,
        "an artifact from another registry to be refused",
        refused("PolicyViolation", "--allowed-registry".into()),
    )
    .await;
    assert_eq!(
        condition(&stalled, "Stalled").map(|c| c.reason),
        Some("PolicyViolation".to_string())
    );
    cluster.apply(&instance_yaml(
        "flux-system",
        &spec(&tag("operator").to_string(), "evil.example/fluxcd", ""),
    ));
    wait_for_instance(
        &api,
        2 * MINUTE,
        "images from another registry to be refused",
        refused(
            "PolicyViolation",
            "Deployment/flux-system/source-controller runs evil.example/fluxcd/source-controller"
                .into(),
        ),
    )
    .await;
    assert!(
        cluster
            .kubectl_ok(&["get", "deployments", "-n", "flux-system", "-o", "name"])
            .trim()
            .is_empty(),
        "nothing was applied before the policy was met"
    );
    // Signed with the operator's key, from an allowed registry: installed.
    cluster.apply(&instance_yaml(
        "flux-system",
        &spec(&tag("operator").to_string(), "ghcr.io/fluxcd", own_key),
    ));
    wait_for_instance(
        &api,
        2 * MINUTE,
        "the compliant instance to be Ready",
        |i| is_ready_at(i, "v2.9.4@"),
    )
    .await;
}
