//! The operator's job on a real cluster: install, stay put, correct drift, prune, upgrade with
//! storage migration, roll back, adopt, survive a crash, uninstall. Each test has a cluster
//! of its own (Flux's CRDs and cluster roles are cluster-wide), one at a time. The install
//! test runs the controllers on a real node; the others use kwok nodes, because they need
//! Flux releases whose controllers the Go module proxy does not serve (2.6.4, 2.8.8: no
//! image can be built here), or exercise the operator's logic, not the pods (adoption of
//! upstream manifests, immutable fields, an interrupted health wait). Real pods of upgrades,
//! rollbacks and leader hand-over are in `pods.rs`.
//!
//! Timings printed here (`timing: ...`) are observations for the notes, not assertions: the
//! benchmarks are in `hack/bench.sh`.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use fluxop::{
    api::FluxInstance,
    bundle::{archive, layout::Bundle, reference::ArtifactRef, signature},
};
use fluxop_e2e::{
    cluster::{OwnCluster, condition, exclusive, instance_yaml, is_ready_at, wait_for_instance},
    eventually,
    faults::{FaultProxy, Mode},
    pods::{catalog_digest, image_ids, real_bundle_dir, wait_running},
    registry_address, repo_root, unique_repository,
};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::ConfigMap},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{Api, Client, api::DeleteParams};

const MINUTE: Duration = Duration::from_secs(60);

/// Pushes the bundle in `dir` to the test registry; signs it when a key pair is given.
async fn push_bundle(dir: &Path, signer: Option<&signature::KeyPair>) -> String {
    let bundle = Bundle::from_files(archive::read_dir(dir).expect("bundle dir")).expect("bundle");
    let reference = format!(
        "oci://{}/{}:latest",
        registry_address(),
        unique_repository("lifecycle")
    );
    let tag = ArtifactRef::parse(&reference).expect("reference");
    fluxop_e2e::fleet::push(&tag, &archive::pack(bundle.files()), signer).await;
    reference
}

fn deployments(client: &Client) -> Api<Deployment> {
    Api::namespaced(client.clone(), "flux-system")
}

/// Name → (uid, generation, available replicas) of the Flux Deployments.
async fn deployment_states(client: &Client) -> BTreeMap<String, (String, i64, i32)> {
    deployments(client)
        .list(&Default::default())
        .await
        .expect("list deployments")
        .items
        .into_iter()
        .map(|d| {
            (
                d.metadata.name.clone().unwrap_or_default(),
                (
                    d.metadata.uid.clone().unwrap_or_default(),
                    d.metadata.generation.unwrap_or_default(),
                    d.status.and_then(|s| s.available_replicas).unwrap_or(0),
                ),
            )
        })
        .collect()
}

async fn crd_exists(client: &Client, name: &str) -> bool {
    Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt(name)
        .await
        .expect("get crd")
        .is_some()
}

fn image_of(deployment: &Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn spec(version: &str, extra: &str) -> String {
    spec_from(version, "ghcr.io/fluxcd", extra)
}

/// A spec whose controller images come from `registry` (the test registry, for real nodes).
fn spec_from(version: &str, registry: &str, extra: &str) -> String {
    format!("  distribution:\n    version: \"{version}\"\n    registry: {registry}\n{extra}")
}

/// A fresh cluster (the caller holds [`exclusive`]) with fluxop running in flux-system and
/// Flux `range` installed from the embedded bundle and Ready at `revision` (e.g. `v2.9.4@`).
async fn installed(
    prefix: &str,
    range: &str,
    revision: &str,
) -> (
    OwnCluster,
    Client,
    Api<FluxInstance>,
    fluxop_e2e::cluster::Operator,
) {
    let cluster = OwnCluster::start(prefix).await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
    let operator = cluster.start_operator("flux-system", &[]).await;
    cluster.apply(&instance_yaml("flux-system", &spec(range, "")));
    wait_for_instance(&api, 2 * MINUTE, &format!("{revision} to be Ready"), |i| {
        is_ready_at(i, revision)
    })
    .await;
    (cluster, client, api, operator)
}

#[tokio::test]
async fn a_signed_install_becomes_ready_writes_nothing_when_idle_reverts_drift_prunes_and_uninstalls()
 {
    let _one_cluster_at_a_time = exclusive().await;
    // A real node: the controllers run, from the images built here (hack/flux-images.sh).
    let cluster = OwnCluster::start_real("install").await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
    let images = format!("{}/fluxcd", cluster.registry());
    let spec = |version: &str, extra: &str| spec_from(version, &images, extra);

    // A signed bundle and the public key in a Secret.
    let signer = signature::generate_key_pair(b"").expect("key pair");
    let reference = push_bundle(&real_bundle_dir(), Some(&signer)).await;
    cluster.apply_public_key("cosign-pub", &signer.public_pem);
    let source = format!(
        "    artifact: {reference}\n    verify:\n      provider: cosign\n      secretRef:\n        name: cosign-pub\n"
    );
    let _operator = cluster
        .start_operator("flux-system", &["--insecure-registry", &registry_address()])
        .await;

    // Fresh install: Ready, every controller Running on the real node.
    let started = Instant::now();
    cluster.apply(&instance_yaml("flux-system", &spec("2.9.4", &source)));
    let installed = wait_for_instance(&api, 5 * MINUTE, "install to be Ready", |i| {
        is_ready_at(i, "v2.9.4@")
    })
    .await;
    for controller in [
        "source-controller",
        "kustomize-controller",
        "helm-controller",
        "notification-controller",
    ] {
        let pods = wait_running(&client, "flux-system", controller, 2 * MINUTE).await;
        let digest = catalog_digest("v2.9.4", controller);
        assert!(
            pods.iter()
                .all(|p| image_ids(p).iter().all(|id| id.ends_with(&digest))),
            "{controller} does not run the image {digest}"
        );
    }
    println!("timing: install to Ready {:?}", started.elapsed());
    let states = deployment_states(&client).await;
    assert_eq!(
        states.keys().cloned().collect::<Vec<_>>(),
        [
            "helm-controller",
            "kustomize-controller",
            "notification-controller",
            "source-controller"
        ]
    );
    assert!(
        states.values().all(|(_, _, available)| *available == 1),
        "{states:?}"
    );
    let status = installed.status.clone().expect("status");
    assert!(status.inventory.expect("inventory").entries.len() > 20);
    assert_eq!(status.history.expect("history").len(), 1);
    assert_eq!(status.components.expect("components").len(), 4);

    // Idle: reconciles every 2s write nothing at all (the API server's own counters).
    cluster.kubectl_ok(&[
        "annotate",
        "fluxinstance/flux",
        "-n",
        "flux-system",
        "fluxcd.controlplane.io/reconcileEvery=2s",
        "fluxcd.controlplane.io/reconcileArtifactEvery=2s",
    ]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let count = |operator: &fluxop_e2e::cluster::Operator| {
        operator
            .metric("fluxop_reconciles_total{kind=\"FluxInstance\",result=\"success\"}")
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (writes_before, reconciles_before) = (cluster.write_requests(), count(&_operator));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (writes_after, reconciles_after) = (cluster.write_requests(), count(&_operator));
    assert!(
        reconciles_after - reconciles_before >= 3.0,
        "expected idle reconciles, got {reconciles_before} -> {reconciles_after}"
    );
    assert_eq!(
        writes_after, writes_before,
        "idle reconciles wrote to the API server"
    );
    println!(
        "observed: {} idle reconciles, {} write requests",
        reconciles_after - reconciles_before,
        writes_after - writes_before
    );
    cluster.kubectl_ok(&[
        "annotate",
        "fluxinstance/flux",
        "-n",
        "flux-system",
        "fluxcd.controlplane.io/reconcileEvery-",
        "fluxcd.controlplane.io/reconcileArtifactEvery-",
    ]);

    // One request, one reconcile: fluxop's own status write does not wake it again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = count(&_operator);
    cluster.kubectl_ok(&[
        "annotate",
        "--overwrite",
        "fluxinstance/flux",
        "-n",
        "flux-system",
        "reconcile.fluxcd.io/requestedAt=one-request",
    ]);
    wait_for_instance(&api, MINUTE, "the request to be handled", |i| {
        i.status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref())
            == Some("one-request")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count(&_operator) - before,
        1.0,
        "one reconcile.fluxcd.io/requestedAt ran more than one reconcile"
    );

    // Drift: a scale, an edit of the args and a deletion are each reverted.
    let started = Instant::now();
    cluster.kubectl_ok(&[
        "scale",
        "deployment/source-controller",
        "-n",
        "flux-system",
        "--replicas=0",
    ]);
    eventually(MINUTE, "the scale to be reverted", || async {
        let d = deployments(&client).get("source-controller").await.ok()?;
        (d.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    println!("timing: kubectl scale reverted in {:?}", started.elapsed());

    let args_before = deployments(&client)
        .get("kustomize-controller")
        .await
        .expect("get")
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers[0].args.clone())
        .expect("args");
    let started = Instant::now();
    cluster.kubectl_ok(&[
        "patch",
        "deployment/kustomize-controller",
        "-n",
        "flux-system",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/template/spec/containers/0/args","value":["--log-level=debug"]}]"#,
    ]);
    eventually(MINUTE, "the edited args to be reverted", || async {
        let d = deployments(&client)
            .get("kustomize-controller")
            .await
            .ok()?;
        let args = d.spec?.template.spec?.containers[0].args.clone();
        (args == args_before).then_some(())
    })
    .await;
    println!(
        "timing: kubectl edit of args reverted in {:?}",
        started.elapsed()
    );

    let uid_before = states["helm-controller"].0.clone();
    let started = Instant::now();
    cluster.kubectl_ok(&[
        "delete",
        "deployment/helm-controller",
        "-n",
        "flux-system",
        "--wait=false",
    ]);
    eventually(MINUTE, "the deleted Deployment to be recreated", || async {
        let d = deployments(&client)
            .get_opt("helm-controller")
            .await
            .ok()??;
        (d.metadata.uid.as_deref() != Some(uid_before.as_str())).then_some(())
    })
    .await;
    println!("timing: kubectl delete reverted in {:?}", started.elapsed());

    // A scale to 0 and, at once, a deletion: the deletion lands while the correction of the
    // scale waits for health; the wait gives way and the Deployment is back in seconds, not
    // after reconcileTimeout.
    let uid_before = deployments(&client)
        .get("source-controller")
        .await
        .expect("get")
        .metadata
        .uid
        .expect("uid");
    let started = Instant::now();
    cluster.kubectl_ok(&[
        "scale",
        "deployment/source-controller",
        "-n",
        "flux-system",
        "--replicas=0",
    ]);
    cluster.kubectl_ok(&[
        "delete",
        "deployment/source-controller",
        "-n",
        "flux-system",
        "--wait=false",
    ]);
    eventually(
        MINUTE,
        "the scaled, then deleted Deployment to be recreated",
        || async {
            let d = deployments(&client)
                .get_opt("source-controller")
                .await
                .ok()??;
            (d.metadata.uid.as_deref() != Some(uid_before.as_str()) && d.spec?.replicas == Some(1))
                .then_some(())
        },
    )
    .await;
    println!(
        "timing: kubectl scale to 0 then delete reverted in {:?}",
        started.elapsed()
    );

    // Drift is watched on every kind fluxop installs, not only Deployments: a deleted
    // Service, ClusterRoleBinding and CRD come back long before the hourly reconcile.
    let owned = format!(
        "{}=flux-system",
        fluxop::api::constants::label::OWNER_NAMESPACE
    );
    let first_named = |kind: &str| {
        cluster
            .kubectl_ok(&["get", kind, "-l", &owned, "-o", "name"])
            .lines()
            .next()
            .unwrap_or_else(|| panic!("fluxop installed no {kind}"))
            .to_string()
    };
    let binding = first_named("clusterrolebindings");
    for (object, namespaced) in [
        ("service/source-controller".to_string(), true),
        (binding, false),
        (
            "customresourcedefinition/buckets.source.toolkit.fluxcd.io".to_string(),
            false,
        ),
    ] {
        let mut get = vec!["get", object.as_str(), "-o", "jsonpath={.metadata.uid}"];
        if namespaced {
            get.extend(["-n", "flux-system"]);
        }
        let uid_before = cluster.kubectl_ok(&get);
        let started = Instant::now();
        let mut delete = vec!["delete", object.as_str(), "--wait=true"];
        if namespaced {
            delete.extend(["-n", "flux-system"]);
        }
        cluster.kubectl_ok(&delete);
        eventually(
            MINUTE,
            &format!("the deleted {object} to be recreated"),
            || async {
                let output = cluster.kubectl().args(&get).output().ok()?;
                let uid = String::from_utf8_lossy(&output.stdout).into_owned();
                (output.status.success() && !uid.is_empty() && uid != uid_before).then_some(())
            },
        )
        .await;
        println!(
            "timing: kubectl delete {object} reverted in {:?}",
            started.elapsed()
        );
    }

    // Turning a component off prunes exactly its objects, except a CRD that still has
    // objects: deleting it would delete them (a Provider here).
    cluster.apply(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: kept\n  \
         namespace: flux-system\nspec:\n  type: generic\n  address: http://127.0.0.1:1/\n",
    );
    let before = deployment_states(&client).await;
    cluster.apply(&instance_yaml(
        "flux-system",
        &spec(
            "2.9.4",
            &format!(
                "{source}  components:\n  - source-controller\n  - kustomize-controller\n  - helm-controller\n"
            ),
        ),
    ));
    let generation = api.get("flux").await.expect("get").metadata.generation;
    wait_for_instance(&api, 3 * MINUTE, "the smaller set to be Ready", |i| {
        i.metadata.generation == generation && is_ready_at(i, "v2.9.4@")
    })
    .await;
    let after = deployment_states(&client).await;
    assert!(!after.contains_key("notification-controller"), "{after:?}");
    for name in [
        "source-controller",
        "kustomize-controller",
        "helm-controller",
    ] {
        assert_eq!(before[name].0, after[name].0, "{name} was recreated");
    }
    for crd in [
        "alerts.notification.toolkit.fluxcd.io",
        "receivers.notification.toolkit.fluxcd.io",
    ] {
        // Deleting a CRD finishes once the API server has cleaned up its objects.
        eventually(MINUTE, &format!("{crd} to be pruned"), || async {
            (!crd_exists(&client, crd).await).then_some(())
        })
        .await;
    }
    let providers = "providers.notification.toolkit.fluxcd.io";
    assert!(
        crd_exists(&client, providers).await,
        "{providers} was pruned with its objects"
    );
    let blocked = api.get("flux").await.expect("get");
    let blocked = condition(&blocked, "PruneBlocked").expect("PruneBlocked");
    assert_eq!(blocked.reason, "CustomResourceDefinitionInUse");
    assert!(
        blocked
            .message
            .contains(&format!("{providers} still has 1 object")),
        "{}",
        blocked.message
    );
    let warnings = cluster.kubectl_ok(&[
        "get",
        "events",
        "-n",
        "flux-system",
        "--field-selector",
        "involvedObject.kind=FluxInstance,reason=CustomResourceDefinitionInUse",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        warnings.contains(providers),
        "no Event names {providers}: {warnings}"
    );
    assert_eq!(
        cluster
            .kubectl_ok(&["get", "providers", "-n", "flux-system", "-o", "name"])
            .trim(),
        "provider.notification.toolkit.fluxcd.io/kept"
    );
    // Once empty, the next reconcile prunes it and the condition goes.
    cluster.kubectl_ok(&[
        "patch",
        "provider/kept",
        "-n",
        "flux-system",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    cluster.kubectl_ok(&[
        "delete",
        "provider/kept",
        "-n",
        "flux-system",
        "--wait=true",
    ]);
    cluster.request_reconcile("fluxinstance/flux", "crd-empty");
    eventually(
        MINUTE,
        &format!("{providers} to be pruned once empty"),
        || async {
            let instance = api.get("flux").await.ok()?;
            (!crd_exists(&client, providers).await
                && condition(&instance, "PruneBlocked").is_none())
            .then_some(())
        },
    )
    .await;
    assert!(crd_exists(&client, "gitrepositories.source.toolkit.fluxcd.io").await);
    let services = cluster.kubectl_ok(&["get", "services", "-n", "flux-system", "-o", "name"]);
    assert!(
        !services.contains("notification-controller") && !services.contains("webhook-receiver"),
        "{services}"
    );

    // Something Flux deployed, and a Flux object with a finalizer nobody will handle.
    cluster.kubectl_ok(&["create", "namespace", "apps"]);
    cluster.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: workload\n  namespace: apps\ndata:\n  a: b\n\
         ---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: app\n  namespace: apps\n  \
         finalizers: [finalizers.fluxcd.io]\nspec:\n  interval: 1m\n  url: https://example.com/app.git\n",
    );

    // Uninstall: controllers, CRDs and cluster roles go; the namespace and workloads stay.
    api.delete("flux", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(2 * MINUTE, "the instance to be deleted", || async {
        api.get_opt("flux").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(deployment_states(&client).await.is_empty());
    eventually(MINUTE, "the Flux CRDs to be deleted", || async {
        (!crd_exists(&client, "gitrepositories.source.toolkit.fluxcd.io").await).then_some(())
    })
    .await;
    let roles = cluster.kubectl_ok(&["get", "clusterroles", "-o", "name"]);
    assert!(!roles.contains("crd-controller"), "{roles}");
    cluster.kubectl_ok(&["get", "namespace", "flux-system"]);
    Api::<ConfigMap>::namespaced(client.clone(), "apps")
        .get("workload")
        .await
        .expect("the workload Flux deployed is kept");

    // With reconciliation disabled, deleting the instance leaves Flux installed.
    cluster.apply(&instance_yaml("flux-system", &spec("2.9.4", &source)));
    wait_for_instance(&api, 5 * MINUTE, "the reinstall to be Ready", |i| {
        is_ready_at(i, "v2.9.4@")
    })
    .await;
    cluster.kubectl_ok(&[
        "annotate",
        "fluxinstance/flux",
        "-n",
        "flux-system",
        "fluxcd.controlplane.io/reconcile=disabled",
    ]);
    wait_for_instance(&api, MINUTE, "reconciliation to be disabled", |i| {
        condition(i, "Ready").is_some_and(|c| c.reason == "ReconciliationDisabled")
    })
    .await;
    api.delete("flux", &DeleteParams::default())
        .await
        .expect("delete");
    eventually(MINUTE, "the disabled instance to be deleted", || async {
        api.get_opt("flux").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(deployment_states(&client).await.len(), 4);
}

#[tokio::test]
async fn upgrades_from_2_6_to_2_9_migrate_stored_objects_and_a_downgrade_is_refused() {
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("upgrade").await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
    let _operator = cluster.start_operator("flux-system", &[]).await;
    let components = "  components:\n  - source-controller\n  - kustomize-controller\n  - helm-controller\n  - notification-controller\n  - image-reflector-controller\n  - image-automation-controller\n";

    // 2.6: the image APIs store v1beta2.
    cluster.apply(&instance_yaml("flux-system", &spec("2.6.x", components)));
    wait_for_instance(&api, 2 * MINUTE, "2.6.4 to be Ready", |i| {
        is_ready_at(i, "v2.6.4@")
    })
    .await;
    cluster.apply(
        "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageRepository\nmetadata:\n  name: app\n  namespace: flux-system\n\
         spec:\n  image: ghcr.io/example/app\n  interval: 1h\n\
         ---\napiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata:\n  name: app\n  namespace: flux-system\n\
         spec:\n  imageRepositoryRef:\n    name: app\n  policy:\n    semver:\n      range: 1.x\n",
    );
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let stored = |crd: CustomResourceDefinition| crd.status.and_then(|s| s.stored_versions);
    assert_eq!(
        stored(
            crds.get("imagepolicies.image.toolkit.fluxcd.io")
                .await
                .expect("crd")
        ),
        Some(vec!["v1beta2".to_string()])
    );
    let version_of = |name: &'static str| {
        let cluster = &cluster;
        move || {
            cluster
                .kubectl_ok(&[
                    "get",
                    name,
                    "app",
                    "-n",
                    "flux-system",
                    "-o",
                    "jsonpath={.metadata.resourceVersion}",
                ])
                .trim()
                .to_string()
        }
    };
    let policy_before = version_of("imagepolicies.image.toolkit.fluxcd.io")();

    // 2.7 moves their storage to v1: after the upgrade the objects are rewritten and
    // storedVersions trimmed.
    for (range, expected) in [
        ("2.7.x", "v2.7.5@"),
        ("2.8.x", "v2.8.8@"),
        ("2.9.x", "v2.9.4@"),
    ] {
        let started = Instant::now();
        cluster.apply(&instance_yaml("flux-system", &spec(range, components)));
        wait_for_instance(&api, 3 * MINUTE, &format!("{expected} to be Ready"), |i| {
            is_ready_at(i, expected)
        })
        .await;
        println!(
            "timing: upgrade to {expected} Ready in {:?}",
            started.elapsed()
        );
        if range == "2.7.x" {
            for crd in [
                "imagepolicies.image.toolkit.fluxcd.io",
                "imagerepositories.image.toolkit.fluxcd.io",
                "imageupdateautomations.image.toolkit.fluxcd.io",
            ] {
                assert_eq!(
                    stored(crds.get(crd).await.expect("crd")),
                    Some(vec!["v1".to_string()]),
                    "{crd}"
                );
            }
            assert_ne!(
                version_of("imagepolicies.image.toolkit.fluxcd.io")(),
                policy_before,
                "the ImagePolicy was not rewritten"
            );
        }
    }
    // v1beta2 is gone in 2.9; the object is still there at v1.
    cluster.kubectl_ok(&[
        "get",
        "imagepolicies.v1.image.toolkit.fluxcd.io",
        "app",
        "-n",
        "flux-system",
    ]);
    let history = api
        .get("flux")
        .await
        .expect("get")
        .status
        .and_then(|s| s.history);
    assert_eq!(history.map(|h| h.len()), Some(4));

    // A minor downgrade is refused, and nothing changes.
    let before = deployment_states(&client).await;
    cluster.apply(&instance_yaml("flux-system", &spec("2.8.x", components)));
    let stalled = wait_for_instance(&api, MINUTE, "the downgrade to be refused", |i| {
        condition(i, "Stalled").is_some_and(|c| c.status == "True")
            && condition(i, "Ready").is_some_and(|c| c.observed_generation == i.metadata.generation)
    })
    .await;
    let message = condition(&stalled, "Stalled").expect("stalled").message;
    assert!(message.contains("downgrade"), "{message}");
    assert_eq!(deployment_states(&client).await, before);
}

#[tokio::test]
async fn an_upgrade_that_does_not_become_healthy_is_rolled_back_to_the_previous_version() {
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("rollback").await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");

    // A bundle whose 2.9.4 source-controller can be scheduled nowhere.
    let dir = std::env::temp_dir().join(format!("fluxop-broken-bundle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let copy = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo_root().join("manifests-bundle"))
        .arg(&dir)
        .status()
        .expect("cp");
    assert!(copy.success());
    let broken = dir.join("flux/v2.9.4/source-controller.yaml");
    let text = std::fs::read_to_string(&broken).expect("read");
    let anchor = "      priorityClassName: system-cluster-critical\n";
    assert!(text.contains(anchor));
    let unschedulable =
        format!("      nodeSelector:\n        fluxop.test/broken: \"true\"\n{anchor}");
    std::fs::write(&broken, text.replace(anchor, &unschedulable)).expect("write");
    let pushed = push_bundle(&dir, None).await;
    let _ = std::fs::remove_dir_all(&dir);
    // Through a proxy that the end of the test turns into a registry outage.
    let proxy = FaultProxy::start(&registry_address());
    let reference = pushed.replace(&registry_address(), &proxy.address());

    let _operator = cluster
        .start_operator("flux-system", &["--insecure-registry", &proxy.address()])
        .await;
    let annotated = |version: &str| {
        instance_yaml("flux-system", &spec(version, &format!("    artifact: {reference}\n")))
            .replace(
                "  namespace: flux-system\n",
                "  namespace: flux-system\n  annotations:\n    fluxcd.controlplane.io/reconcileTimeout: 20s\n",
            )
    };
    cluster.apply(&annotated("2.8.x"));
    wait_for_instance(&api, 2 * MINUTE, "2.8.8 to be Ready", |i| {
        is_ready_at(i, "v2.8.8@")
    })
    .await;
    let image_before = image_of(
        &deployments(&client)
            .get("source-controller")
            .await
            .expect("get"),
    );

    let started = Instant::now();
    cluster.apply(&annotated("2.9.x"));
    let rolled = wait_for_instance(&api, 2 * MINUTE, "the rollback", |i| {
        condition(i, "Stalled").is_some_and(|c| c.reason == "RolledBack")
    })
    .await;
    println!(
        "timing: failed upgrade detected and rolled back in {:?}",
        started.elapsed()
    );
    let status = rolled.status.clone().expect("status");
    assert!(
        status
            .last_applied_revision
            .as_deref()
            .is_some_and(|r| r.starts_with("v2.8.8@"))
    );
    assert!(
        status
            .last_attempted_revision
            .as_deref()
            .is_some_and(|r| r.starts_with("v2.9.4@"))
    );
    let ready = condition(&rolled, "Ready").expect("ready");
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("source-controller")
            && ready.message.contains("rolled back to v2.8.8"),
        "{}",
        ready.message
    );
    // Back on the old image and available; and it stays there instead of retrying.
    eventually(
        MINUTE,
        "source-controller to be available on 2.8.8",
        || async {
            let d = deployments(&client).get("source-controller").await.ok()?;
            let available = d.status.as_ref()?.available_replicas == Some(1);
            (available && image_of(&d) == image_before).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = api.get("flux").await.expect("get");
    assert!(condition(&later, "Stalled").is_some_and(|c| c.reason == "RolledBack"));
    assert_eq!(
        image_of(
            &deployments(&client)
                .get("source-controller")
                .await
                .expect("get")
        ),
        image_before
    );

    // The hold is explicit state: a registry outage neither ends it nor re-runs the broken
    // upgrade. Drift of the restored revision is corrected from the cached bundle.
    let hold = later
        .status
        .as_ref()
        .and_then(|s| s.rollback.clone())
        .expect("the rollback is recorded in status.rollback");
    proxy.set(Mode::Down);
    let uid_before = deployments(&client)
        .get("source-controller")
        .await
        .expect("get")
        .metadata
        .uid;
    cluster.kubectl_ok(&[
        "delete",
        "deployment/source-controller",
        "-n",
        "flux-system",
        "--wait=false",
    ]);
    let during = wait_for_instance(
        &api,
        MINUTE,
        "the outage to be reported while the rollback holds",
        |i| {
            condition(i, "FetchFailed").is_some_and(|c| c.status == "True")
                && condition(i, "Stalled").is_some_and(|c| c.reason == "RolledBack")
        },
    )
    .await;
    eventually(
        MINUTE,
        "source-controller to be recreated on 2.8.8 during the outage",
        || async {
            let d = deployments(&client)
                .get_opt("source-controller")
                .await
                .ok()??;
            (d.metadata.uid != uid_before
                && d.metadata.deletion_timestamp.is_none()
                && image_of(&d) == image_before)
                .then_some(())
        },
    )
    .await;
    let status = during.status.expect("status");
    assert_eq!(
        status.rollback,
        Some(hold),
        "the broken upgrade was tried again"
    );
    assert_eq!(
        status.last_attempted_revision,
        rolled.status.and_then(|s| s.last_attempted_revision)
    );
    assert!(proxy.faults_injected() > 0);

    // A new spec ends the hold. When it fails too (the bundle has no such version), the
    // stored status tells that failure and no longer carries the rollback: what fluxop
    // computes is what the API server keeps, fields it dropped included.
    proxy.set(Mode::PassThrough);
    cluster.apply(&annotated("2.99.x"));
    let generation = api.get("flux").await.expect("get").metadata.generation;
    let failed = wait_for_instance(&api, 2 * MINUTE, "the new spec's failure", |i| {
        condition(i, "Ready")
            .is_some_and(|c| c.status == "False" && c.observed_generation == generation)
    })
    .await;
    let stored: serde_json::Value = serde_json::from_str(&cluster.kubectl_ok(&[
        "get",
        "fluxinstance",
        "flux",
        "-n",
        "flux-system",
        "-o",
        "json",
    ]))
    .expect("JSON");
    assert!(
        stored["status"].get("rollback").is_none(),
        "the ended hold is still stored: {}",
        stored["status"]["rollback"]
    );
    let stalled = condition(&failed, "Stalled");
    assert!(
        stalled.as_ref().is_none_or(|c| c.reason != "RolledBack"),
        "the new failure still reads as a rollback: {stalled:?}"
    );
    println!(
        "after the hold: Ready=False {}: {}",
        condition(&failed, "Ready")
            .map(|c| c.reason)
            .unwrap_or_default(),
        condition(&failed, "Ready")
            .map(|c| c.message)
            .unwrap_or_default()
    );
}

#[tokio::test]
async fn a_cluster_installed_from_the_plain_upstream_manifests_is_adopted_in_place() {
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("adopt").await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    // What `flux install` leaves: client-side apply of the release files, with the objects of
    // rbac.yaml named after the namespace and labelled as Flux labels them (kustomize's
    // nameSuffix and labels, as flux install builds them).
    let release = repo_root().join("manifests-bundle/flux/v2.9.4");
    for file in [
        "source-controller.yaml",
        "kustomize-controller.yaml",
        "helm-controller.yaml",
        "notification-controller.yaml",
    ] {
        cluster.kubectl_ok(&[
            "apply",
            "-n",
            "flux-system",
            "-f",
            release.join(file).to_str().expect("path"),
        ]);
    }
    let roles_dir = std::env::temp_dir().join(format!("fluxop-adopt-rbac-{}", std::process::id()));
    std::fs::create_dir_all(&roles_dir).expect("roles dir");
    std::fs::copy(release.join("rbac.yaml"), roles_dir.join("rbac.yaml")).expect("copy rbac");
    std::fs::write(
        roles_dir.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: flux-system\n\
         nameSuffix: -flux-system\nresources: [rbac.yaml]\nlabels:\n- pairs:\n    \
         app.kubernetes.io/instance: flux-system\n    app.kubernetes.io/part-of: flux\n    \
         app.kubernetes.io/version: v2.9.4\n",
    )
    .expect("write kustomization");
    cluster.kubectl_ok(&["apply", "-k", roles_dir.to_str().expect("path")]);
    let _ = std::fs::remove_dir_all(&roles_dir);
    eventually(2 * MINUTE, "the plain install to be available", || async {
        let states = deployment_states(&client).await;
        (states.len() == 4 && states.values().all(|s| s.2 == 1)).then_some(())
    })
    .await;
    let uids = |kind: &str| {
        cluster.kubectl_ok(&[
            "get",
            kind,
            "-A",
            "-l",
            "app.kubernetes.io/part-of=flux",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.uid}{\"\\n\"}{end}",
        ])
    };
    let kinds = "deployments,services,serviceaccounts,customresourcedefinitions,clusterroles,clusterrolebindings,resourcequotas";
    let before = uids(kinds);
    assert!(before.lines().count() > 20, "{before}");

    // `fluxop diff instance` shows what adopting would change, without changing it.
    let manifest = std::env::temp_dir().join(format!("fluxop-adopt-{}.yaml", std::process::id()));
    std::fs::write(&manifest, instance_yaml("flux-system", &spec("2.9.x", ""))).expect("write");
    let diff_of = |file: &std::path::Path| {
        std::process::Command::new(fluxop_e2e::fluxop_bin())
            .args(["diff", "instance", "-f"])
            .arg(file)
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .output()
            .expect("fluxop diff runs")
    };
    let diff = |expected: i32| {
        let output = diff_of(&manifest);
        assert_eq!(
            output.status.code(),
            Some(expected),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    // Before any instance, the FluxReport already recognises this plain install.
    let reports = Api::<fluxop::api::FluxReport>::namespaced(client.clone(), "flux-system");
    let _operator = cluster.start_operator("flux-system", &[]).await;
    let report = eventually(MINUTE, "a FluxReport of the plain install", || async {
        let report = reports.get_opt("flux").await.ok()??;
        (report.spec.distribution.status == "Installed").then_some(report)
    })
    .await;
    assert_eq!(report.spec.distribution.version.as_deref(), Some("v2.9.4"));
    assert_eq!(
        report.spec.distribution.managed_by.as_deref(),
        Some("flux install")
    );

    let planned = diff(3);
    assert!(
        planned.contains("~ Deployment/flux-system/source-controller"),
        "{planned}"
    );
    assert!(
        planned.contains("metadata.labels.app.kubernetes.io/managed-by: null -> \"fluxop\""),
        "{planned}"
    );
    assert_eq!(uids(kinds), before, "the diff changed something");

    let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
    cluster.apply(&instance_yaml("flux-system", &spec("2.9.x", "")));
    wait_for_instance(&api, 2 * MINUTE, "the adoption to be Ready", |i| {
        is_ready_at(i, "v2.9.4@")
    })
    .await;

    // Nothing was recreated: every object keeps its uid, the cluster roles and bindings
    // `flux install` named after the namespace included.
    let after = uids(kinds);
    for object in before.lines() {
        assert!(
            after.lines().any(|l| l == object),
            "{object} was recreated:\n{after}"
        );
    }
    // One set of Flux's RBAC: fluxop names it as flux install does, so it took those objects
    // over instead of adding its own beside them.
    let named = |kind: &str, prefixes: &[&str]| {
        let mut names: Vec<String> = cluster
            .kubectl_ok(&["get", kind, "-A", "-o", "name"])
            .lines()
            .map(|l| l.rsplit('/').next().unwrap_or_default().to_string())
            .filter(|n| prefixes.iter().any(|p| n.starts_with(p)))
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        named(
            "clusterrolebindings",
            &["cluster-reconciler", "crd-controller"]
        ),
        [
            "cluster-reconciler-flux-system",
            "crd-controller-flux-system"
        ]
    );
    assert_eq!(
        named(
            "clusterroles",
            &["crd-controller", "flux-edit", "flux-view"]
        ),
        [
            "crd-controller-flux-system",
            "flux-edit-flux-system",
            "flux-view-flux-system"
        ]
    );
    assert_eq!(
        named("resourcequotas", &["critical-pods"]),
        ["critical-pods-flux-system"]
    );
    // fluxop alone manages them now: kubectl's client-side record is gone.
    let deployment = cluster.kubectl_ok(&[
        "get",
        "deployment/source-controller",
        "-n",
        "flux-system",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    assert!(
        !deployment.contains("kubectl-client-side-apply"),
        "{deployment}"
    );
    assert!(!deployment.contains("last-applied-configuration"));
    assert!(deployment.contains("\"manager\": \"fluxop\""));
    // Installed: nothing left to change.
    assert_eq!(diff(0), "");
    // Dropping a controller: the diff names what would be pruned (in the inventory, created
    // by this instance), and still changes nothing.
    let fewer = manifest.with_extension("fewer.yaml");
    let components =
        "  components: [source-controller, kustomize-controller, notification-controller]\n";
    std::fs::write(
        &fewer,
        instance_yaml("flux-system", &spec("2.9.x", components)),
    )
    .expect("write");
    let output = diff_of(&fewer);
    let planned = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{planned}");
    assert!(
        planned.contains("- Deployment/flux-system/helm-controller (pruned)"),
        "{planned}"
    );
    // A minor downgrade from the installed v2.9.4: refused as the operator refuses it.
    let older = manifest.with_extension("older.yaml");
    std::fs::write(&older, instance_yaml("flux-system", &spec("2.8.x", ""))).expect("write");
    let output = diff_of(&older);
    let refusal = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{refusal}");
    assert!(
        refusal.contains("refusing to downgrade Flux from 2.9.4 to 2.8.8"),
        "{refusal}"
    );
    assert_eq!(uids(kinds), after, "a diff changed something");
    for file in [&manifest, &fewer, &older] {
        let _ = std::fs::remove_file(file);
    }
}

#[tokio::test]
async fn killing_the_leader_mid_upgrade_hands_over_to_the_standby_which_converges() {
    let _one_cluster_at_a_time = exclusive().await;
    let (cluster, client, api, mut leader) = installed("failover", "2.8.x", "v2.8.8@").await;
    let holder = || {
        cluster
            .kubectl_ok(&[
                "get",
                "lease",
                "fluxop-leader-election",
                "-n",
                "flux-system",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ])
            .trim()
            .to_string()
    };
    let first = holder();

    // A second replica waits: healthy and ready (a Deployment of two is Available), not
    // leading, and it never writes.
    let standby = cluster.start_operator("flux-system", &[]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(holder(), first);
    assert_eq!(
        fluxop_e2e::cluster::http_get(standby.health, "/readyz").map(|(s, _)| s),
        Some(200)
    );
    assert_eq!(
        standby.metric("fluxop_leader ").as_deref(),
        Some("fluxop_leader 0")
    );
    assert_eq!(
        leader.metric("fluxop_leader ").as_deref(),
        Some("fluxop_leader 1")
    );

    // Upgrade, and kill the leader as soon as the first 2.9 object lands.
    cluster.apply(&instance_yaml("flux-system", &spec("2.9.x", "")));
    eventually(MINUTE, "the upgrade to start", || async {
        let crd = Api::<CustomResourceDefinition>::all(client.clone())
            .get("gitrepositories.source.toolkit.fluxcd.io")
            .await
            .ok()?;
        let labels = crd.metadata.labels?;
        (labels.get("app.kubernetes.io/version").map(String::as_str) == Some("v2.9.4"))
            .then_some(())
    })
    .await;
    leader.kill();
    let killed = Instant::now();
    wait_for_instance(&api, 2 * MINUTE, "the standby to finish the upgrade", |i| {
        is_ready_at(i, "v2.9.4@")
    })
    .await;
    println!(
        "timing: standby converged {:?} after the leader was killed",
        killed.elapsed()
    );
    assert_ne!(holder(), first);
    for d in deployments(&client)
        .list(&Default::default())
        .await
        .expect("list")
        .items
    {
        assert!(image_of(&d).contains(":v1."), "{}", image_of(&d));
        assert!(d.status.and_then(|s| s.available_replicas) == Some(1));
    }
}

#[tokio::test]
async fn an_immutable_field_change_is_refused_until_force_is_requested() {
    let _one_cluster_at_a_time = exclusive().await;
    let (cluster, client, api, _operator) = installed("immutable", "2.9.x", "v2.9.4@").await;
    let uid = deployment_states(&client).await["helm-controller"]
        .0
        .clone();

    // A patch that changes a Deployment's selector, which the API server does not allow to
    // change in place.
    let patch = "  kustomize:\n    patches:\n    - target: {kind: Deployment, name: helm-controller}\n      patch: |\n        \
                 - {op: add, path: /spec/selector/matchLabels/tier, value: gitops}\n        \
                 - {op: add, path: /spec/template/metadata/labels/tier, value: gitops}\n";
    cluster.apply(&instance_yaml("flux-system", &spec("2.9.x", patch)));
    let refused = wait_for_instance(&api, MINUTE, "the change to be refused", |i| {
        condition(i, "Ready")
            .is_some_and(|c| c.status == "False" && c.observed_generation == i.metadata.generation)
    })
    .await;
    let message = condition(&refused, "Ready").expect("ready").message;
    assert!(
        message.contains("helm-controller") && message.contains("forceAt"),
        "{message}"
    );
    assert_eq!(
        deployment_states(&client).await["helm-controller"].0,
        uid,
        "recreated without being asked"
    );

    // Asked to: recreated with the new selector, and Ready.
    cluster.kubectl_ok(&[
        "annotate",
        "fluxinstance/flux",
        "-n",
        "flux-system",
        "reconcile.fluxcd.io/forceAt=2026-11-27T00:00:00Z",
    ]);
    wait_for_instance(&api, 2 * MINUTE, "the forced reconcile to be Ready", |i| {
        is_ready_at(i, "v2.9.4@")
            && i.status
                .as_ref()
                .and_then(|s| s.last_handled_force_at.as_deref())
                == Some("2026-11-27T00:00:00Z")
    })
    .await;
    let recreated = deployments(&client)
        .get("helm-controller")
        .await
        .expect("get");
    assert_ne!(recreated.metadata.uid.as_deref(), Some(uid.as_str()));
    let selector = recreated
        .spec
        .expect("spec")
        .selector
        .match_labels
        .expect("labels");
    assert_eq!(selector.get("tier").map(String::as_str), Some("gitops"));
}

#[tokio::test]
async fn a_new_spec_interrupts_a_health_wait_that_would_not_end() {
    let _one_cluster_at_a_time = exclusive().await;
    let (cluster, _client, api, _operator) = installed("canceled", "2.9.x", "v2.9.4@").await;

    // A spec whose source-controller can be scheduled nowhere: the health wait (5m by default)
    // would not end.
    let stuck = "  kustomize:\n    patches:\n    - target: {kind: Deployment, name: source-controller}\n      patch: |\n        \
                 - {op: add, path: /spec/template/spec/nodeSelector, value: {fluxop.test/none: \"true\"}}\n";
    cluster.apply(&instance_yaml("flux-system", &spec("2.9.x", stuck)));
    let stuck_generation = api.get("flux").await.expect("get").metadata.generation;
    // The status says what is being applied while fluxop waits.
    wait_for_instance(&api, MINUTE, "the health wait to start", |i| {
        condition(i, "Reconciling").is_some_and(|c| {
            c.status == "True"
                && c.observed_generation == stuck_generation
                && c.message.starts_with("Applying revision v2.9.4@")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The fix arrives while fluxop waits: the wait is canceled and the new spec applied at
    // once, long before the 5 minute timeout.
    let started = Instant::now();
    cluster.apply(&instance_yaml("flux-system", &spec("2.9.x", "")));
    let fixed_generation = api.get("flux").await.expect("get").metadata.generation;
    wait_for_instance(&api, MINUTE, "the new spec to be Ready", |i| {
        i.metadata.generation == fixed_generation && is_ready_at(i, "v2.9.4@")
    })
    .await;
    println!(
        "timing: a new spec was Ready {:?} after it interrupted a health wait",
        started.elapsed()
    );
    let events = cluster.kubectl_ok(&[
        "get",
        "events",
        "-n",
        "flux-system",
        "--field-selector",
        "involvedObject.kind=FluxInstance",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("HealthCheckCanceled"), "{events}");
}
