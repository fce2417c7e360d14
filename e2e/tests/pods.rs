//! Flux for real: each test runs a cluster of its own with a real node (containerd, kubelet,
//! kube-proxy, CoreDNS; `hack/cluster-up.sh --real-nodes`), and fluxop installs the Flux
//! controllers built from source (`hack/flux-images.sh`) from a signed bundle whose catalogs
//! pin them by digest in the test registry. Pods run, images are pulled, controllers answer.
//!
//! Timings printed here (`timing: ...`) are observations for the notes, not assertions: the
//! benchmarks are in `hack/bench.sh pods`.

use std::time::{Duration, Instant};

use fluxop::bundle::{archive, reference::ArtifactRef};
use fluxop_e2e::{
    cluster::{condition, exclusive, wait_for_instance},
    eventually, fluxop,
    pods::{Bed, assert_controllers_run, pod_get, wait_running},
    unique_repository,
};
use k8s_openapi::{
    api::apps::v1::Deployment,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{DynamicObject, GroupVersionKind},
    discovery::ApiResource,
};
use serde_json::Value;

const MINUTE: Duration = Duration::from_secs(60);

fn oci_repositories(client: &Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "source.toolkit.fluxcd.io",
        "v1",
        "OCIRepository",
    ));
    Api::namespaced_with(client.clone(), "flux-system", &resource)
}

/// Waits until the OCIRepository `name` is Ready and has handled the reconcile request
/// `requested` (when given): proof that the running source-controller works.
async fn wait_source_ready(client: &Client, name: &str, requested: Option<&str>) -> Value {
    let api = oci_repositories(client);
    eventually(
        2 * MINUTE,
        &format!("OCIRepository {name} to be Ready"),
        || async {
            let object = serde_json::to_value(api.get(name).await.ok()?).ok()?;
            let status = object.get("status")?;
            let ready = status
                .get("conditions")?
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            // kstatus: the conditions count only once the controller has observed this
            // generation (a status patched mid-reconcile can say Ready before that).
            let observed = status["observedGeneration"] == object["metadata"]["generation"];
            let handled = requested.is_none_or(|r| status["lastHandledReconcileAt"] == r);
            (ready && observed && handled && status.get("artifact").is_some())
                .then(|| status.clone())
        },
    )
    .await
}

async fn stored_versions(client: &Client, crd: &str) -> Vec<String> {
    Api::<CustomResourceDefinition>::all(client.clone())
        .get(crd)
        .await
        .expect("crd")
        .status
        .and_then(|s| s.stored_versions)
        .unwrap_or_default()
}

/// The Flux version a CRD was last applied at (fluxop's `app.kubernetes.io/version` label).
async fn crd_version(client: &Client, crd: &str) -> Option<String> {
    Api::<CustomResourceDefinition>::all(client.clone())
        .get(crd)
        .await
        .expect("crd")
        .metadata
        .labels
        .and_then(|l| l.get("app.kubernetes.io/version").cloned())
}

// The real-pod upgrade is between the two newest releases built here: 2.9.4 -> 2.9.5 of
// source-controller (v2.9.5 rebuilt from module sources, hack/flux-release.sh). The full
// default set runs in the other tests, the self-managed upgrade with kustomize-controller in
// gitops.rs, and kwok covers the whole upgrade chain with its CRD changes (lifecycle.rs).
#[tokio::test]
async fn flux_from_a_signed_bundle_runs_on_a_real_node_and_upgrades_with_its_pods_rolling() {
    let _one_cluster_at_a_time = exclusive().await;
    let bed = Bed::start("pods", true).await;
    let controllers = ["source-controller"];

    // Install 2.9.4: the controller runs the image built here, pulled by digest.
    let started = Instant::now();
    bed.cluster
        .apply(&bed.instance("2.9.4", &controllers, "", ""));
    bed.ready_at("v2.9.4@", 5 * MINUTE).await;
    let before = assert_controllers_run(&bed.client, "v2.9.4", &controllers).await;
    println!(
        "timing: install of 2.9.4 to pods Ready in {:?}",
        started.elapsed()
    );

    // The real source-controller pulls an artifact from the registry through the pod
    // network (the bundle itself is a Flux artifact).
    let url = bed.bundle.trim_end_matches(":latest");
    bed.cluster.apply(&format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: bundle\n  namespace: flux-system\nspec:\n  interval: 10m\n  url: {url}\n  ref:\n    tag: latest\n  insecure: true\n"
    ));
    let fetched = wait_source_ready(&bed.client, "bundle", None).await;
    assert!(
        fetched["artifact"]["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{fetched}"
    );

    // The report sees the running controller.
    let report: Value = serde_json::from_str(&fluxop(&[
        "get",
        "report",
        "-o",
        "json",
        "--kubeconfig",
        bed.cluster.kubeconfig.to_str().expect("path"),
    ]))
    .expect("report json");
    let text = report.to_string();
    assert!(
        text.contains("source-controller") && text.contains("v2.9.4"),
        "{report}"
    );
    let ocirepositories = "ocirepositories.source.toolkit.fluxcd.io";
    assert_eq!(
        crd_version(&bed.client, ocirepositories).await.as_deref(),
        Some("v2.9.4")
    );

    // Upgrade by editing the version: a new pod with the 2.9.5 image, the 2.9.5 CRDs.
    let started = Instant::now();
    bed.cluster
        .apply(&bed.instance("2.9.5", &controllers, "", ""));
    bed.ready_at("v2.9.5@", 5 * MINUTE).await;
    let after = assert_controllers_run(&bed.client, "v2.9.5", &controllers).await;
    println!(
        "timing: upgrade 2.9.4 -> 2.9.5 to pods Ready in {:?}",
        started.elapsed()
    );
    assert!(
        after.iter().all(|uid| !before.contains(uid)),
        "pods did not roll: {before:?} -> {after:?}"
    );
    assert_eq!(
        crd_version(&bed.client, ocirepositories).await.as_deref(),
        Some("v2.9.5")
    );
    for crd in [ocirepositories, "gitrepositories.source.toolkit.fluxcd.io"] {
        assert_eq!(stored_versions(&bed.client, crd).await, ["v1"], "{crd}");
    }
    // The new source-controller serves the object the old one created.
    let requested = format!("{}", std::process::id());
    bed.cluster
        .request_reconcile("ocirepository/bundle", &requested);
    wait_source_ready(&bed.client, "bundle", Some(&requested)).await;
}

#[tokio::test]
async fn a_crash_looping_controller_is_rolled_back_to_the_previous_revision_and_runs_again() {
    let _one_cluster_at_a_time = exclusive().await;
    let bed = Bed::start("crash", true).await;
    let controllers = ["source-controller", "kustomize-controller"];
    let timeout = "    fluxcd.controlplane.io/reconcileTimeout: 40s\n";
    bed.cluster
        .apply(&bed.instance("2.9.4", &controllers, "", timeout));
    let good = bed.ready_at("v2.9.4@", 5 * MINUTE).await;
    let good_revision = good
        .status
        .and_then(|s| s.last_applied_revision)
        .expect("revision");
    assert_controllers_run(&bed.client, "v2.9.4", &controllers).await;

    // A patch that gives kustomize-controller a flag it does not know: its new pod
    // crash-loops, the rollout never completes, and fluxop restores the previous revision.
    let bad_flag = "  kustomize:\n    patches:\n      - target:\n          kind: Deployment\n          name: kustomize-controller\n        patch: |\n          - op: add\n            path: /spec/template/spec/containers/0/args/-\n            value: --no-such-flag\n";
    let started = Instant::now();
    bed.cluster
        .apply(&bed.instance("2.9.4", &controllers, bad_flag, timeout));
    let rolled = wait_for_instance(&bed.api, 4 * MINUTE, "the rollback", |i| {
        condition(i, "Stalled").is_some_and(|c| {
            c.reason == "RolledBack" && c.observed_generation == i.metadata.generation
        })
    })
    .await;
    println!(
        "timing: crash loop detected and rolled back in {:?}",
        started.elapsed()
    );
    let status = rolled.status.clone().expect("status");
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(good_revision.as_str())
    );
    assert_ne!(
        status.last_attempted_revision.as_deref(),
        Some(good_revision.as_str())
    );
    let ready = condition(&rolled, "Ready").expect("Ready");
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("kustomize-controller")
            && ready
                .message
                .contains(&format!("rolled back to {good_revision}")),
        "{}",
        ready.message
    );

    // The controller runs again, without the flag, and stays so.
    let deployments = Api::<Deployment>::namespaced(bed.client.clone(), "flux-system");
    let has_bad_flag = |d: &Deployment| {
        serde_json::to_string(&d.spec)
            .unwrap_or_default()
            .contains("--no-such-flag")
    };
    assert!(!has_bad_flag(
        &deployments.get("kustomize-controller").await.expect("get")
    ));
    let pods = wait_running(
        &bed.client,
        "flux-system",
        "kustomize-controller",
        3 * MINUTE,
    )
    .await;
    assert_eq!(pods.len(), 1, "one kustomize-controller pod");
    assert!(pod_get(&pods[0], 9440, "/readyz").is_some_and(|(s, _)| s == 200));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = bed.api.get("flux").await.expect("get");
    assert!(condition(&later, "Stalled").is_some_and(|c| c.reason == "RolledBack"));
    assert!(!has_bad_flag(
        &deployments.get("kustomize-controller").await.expect("get")
    ));
}

/// `fluxop_leader` of a fluxop pod (its /metrics, over the pod network).
fn leads(pod: &k8s_openapi::api::core::v1::Pod) -> Option<bool> {
    let (_, body) = pod_get(pod, 8080, "/metrics")?;
    let line = body.lines().find(|l| l.starts_with("fluxop_leader "))?;
    Some(line.ends_with(" 1"))
}

/// Who holds fluxop's lease in flux-system.
async fn lease_holder(client: &Client) -> Option<String> {
    fluxop_e2e::leader::holder(&Api::namespaced(client.clone(), "flux-system")).await
}

/// The fluxop pods, once `count` of them are Running and Ready and one of them holds the
/// lease (and says so on /metrics while the others stand by); returns (leader, standbys).
async fn leader_and_standbys(
    client: &Client,
    count: usize,
) -> (
    k8s_openapi::api::core::v1::Pod,
    Vec<k8s_openapi::api::core::v1::Pod>,
) {
    eventually(3 * MINUTE, "fluxop pods Ready with one leader", || async {
        let pods: Vec<_> =
            fluxop_e2e::pods::pods(client, "flux-system", "app.kubernetes.io/name=fluxop")
                .await
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
        if pods.len() != count || !pods.iter().all(fluxop_e2e::pods::is_running_and_ready) {
            return None;
        }
        let holder = lease_holder(client).await?;
        let (leader, standbys): (Vec<_>, Vec<_>) = pods
            .into_iter()
            .partition(|p| p.metadata.name.as_deref() == Some(holder.as_str()));
        let leader = leader.into_iter().next()?;
        (leads(&leader)? && standbys.iter().all(|p| leads(p) == Some(false)))
            .then_some((leader, standbys))
    })
    .await
}

/// Reconciles of FluxInstances a fluxop pod made (its /metrics).
fn reconciles(pod: &k8s_openapi::api::core::v1::Pod) -> u64 {
    pod_get(pod, 8080, "/metrics")
        .map(|(_, body)| {
            body.lines()
                .filter(|l| l.starts_with("fluxop_reconciles_total{") && l.contains("FluxInstance"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        })
        .unwrap_or(0)
}

/// Sets `reconcile.fluxcd.io/requestedAt` and waits until the instance has handled it.
async fn request_reconcile(bed: &Bed, value: &str, timeout: Duration) {
    bed.cluster.request_reconcile("fluxinstance/flux", value);
    wait_for_instance(
        &bed.api,
        timeout,
        "the reconcile request to be handled",
        |i| {
            i.status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some(value)
        },
    )
    .await;
}

/// An app for Flux to deploy: an OCI artifact with a ConfigMap and a Deployment whose image
/// is in the test registry, and the OCIRepository and Kustomization that sync it.
async fn deploy_app(bed: &Bed) {
    let image = fluxop_e2e::pods::app_image_in(&bed.cluster);
    let manifests = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: default\ndata:\n  greeting: hello\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: default\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: app}}\n  template:\n    metadata:\n      labels: {{app: app}}\n    spec:\n      containers:\n        - name: app\n          image: {image}\n"
    );
    let files = archive::Files::from([("app.yaml".to_string(), manifests.into_bytes())]);
    let repository = unique_repository("app");
    let tag = ArtifactRef::parse(&format!(
        "oci://{}/{repository}:v1",
        fluxop_e2e::registry_address()
    ))
    .expect("reference");
    fluxop_e2e::fleet::push(&tag, &archive::pack(&files), None).await;
    bed.cluster.apply(&format!(
        "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: app\n  namespace: flux-system\nspec:\n  interval: 1m\n  url: oci://{}/{repository}\n  ref:\n    tag: v1\n  insecure: true\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: app\n  namespace: flux-system\nspec:\n  interval: 1m\n  path: ./\n  prune: true\n  sourceRef:\n    kind: OCIRepository\n    name: app\n",
        bed.cluster.registry()
    ));
    wait_running(&bed.client, "default", "app", 3 * MINUTE).await;
}

#[tokio::test]
async fn fluxop_runs_in_the_cluster_from_its_chart_and_from_deploy_and_hands_over_when_the_leader_dies()
 {
    let _one_cluster_at_a_time = exclusive().await;
    let bed = Bed::start("incluster", false).await;
    let (repository, digest) = fluxop_e2e::pods::fluxop_image_in(&bed.cluster);
    let insecure = format!("--insecure-registry={}", bed.cluster.registry());
    let kubeconfig = bed.cluster.kubeconfig.to_str().expect("path").to_string();

    // The chart, two replicas: one leads, the other stands by (Ready, fluxop_leader 0).
    let started = Instant::now();
    let output = fluxop_e2e::pods::helm()
        .args(["install", "fluxop"])
        .arg(fluxop_e2e::repo_root().join("charts/fluxop"))
        .args([
            "--namespace",
            "flux-system",
            "--kubeconfig",
            &kubeconfig,
            "--wait",
            "--timeout",
            "3m",
        ])
        .args(["--set", &format!("image.repository={repository}")])
        .args(["--set", &format!("image.digest={digest}")])
        .args([
            "--set",
            "replicas=2",
            "--set-json",
            &format!("extraArgs=[\"{insecure}\"]"),
        ])
        .output()
        .expect("helm runs");
    assert!(
        output.status.success(),
        "helm install: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (leader, standbys) = leader_and_standbys(&bed.client, 2).await;
    println!(
        "timing: helm install to fluxop pods Ready in {:?}",
        started.elapsed()
    );

    // The leader installs Flux; the standby does not reconcile.
    let controllers = ["source-controller", "kustomize-controller"];
    let started = Instant::now();
    bed.cluster
        .apply(&bed.instance("2.9.4", &controllers, "", ""));
    let installed = bed.ready_at("v2.9.4@", 5 * MINUTE).await;
    println!(
        "timing: in-cluster fluxop installed Flux to Ready in {:?}",
        started.elapsed()
    );
    let flux_pods = assert_controllers_run(&bed.client, "v2.9.4", &controllers).await;
    assert!(reconciles(&leader) > 0);
    assert!(standbys.iter().all(|p| reconciles(p) == 0));
    deploy_app(&bed).await;

    // Killing the leader hands over to the standby, which then reconciles.
    let started = Instant::now();
    let leader_name = leader.metadata.name.clone().expect("name");
    bed.cluster.kubectl_ok(&[
        "delete",
        "pod",
        "-n",
        "flux-system",
        &leader_name,
        "--grace-period=0",
        "--force",
    ]);
    let new_leader = eventually(MINUTE, "a new leader", || async {
        lease_holder(&bed.client)
            .await
            .filter(|h| *h != leader_name)
    })
    .await;
    println!(
        "timing: leader killed, lease taken over in {:?}",
        started.elapsed()
    );
    // The lease was released on SIGTERM: the standby or the pod that replaces the killed
    // one, whichever asks first, now leads.
    let running =
        fluxop_e2e::pods::pods(&bed.client, "flux-system", "app.kubernetes.io/name=fluxop").await;
    assert!(
        running
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(new_leader.as_str())),
        "the lease holder {new_leader} is not a fluxop pod"
    );
    println!(
        "observed: the new leader is {}",
        if standbys
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(new_leader.as_str()))
        {
            "the standby"
        } else {
            "the replacement pod"
        }
    );
    request_reconcile(&bed, "after-handover", 2 * MINUTE).await;

    // Uninstalling the chart removes fluxop only: Flux and what it deployed keep running.
    let output = fluxop_e2e::pods::helm()
        .args([
            "uninstall",
            "fluxop",
            "--namespace",
            "flux-system",
            "--kubeconfig",
            &kubeconfig,
            "--wait",
        ])
        .output()
        .expect("helm runs");
    assert!(
        output.status.success(),
        "helm uninstall: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    eventually(MINUTE, "fluxop pods gone", || async {
        fluxop_e2e::pods::pods(&bed.client, "flux-system", "app.kubernetes.io/name=fluxop")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    let still = assert_controllers_run(&bed.client, "v2.9.4", &controllers).await;
    assert_eq!(
        still, flux_pods,
        "Flux pods were restarted by the uninstall"
    );
    assert!(bed.api.get_opt("flux").await.expect("get").is_some());

    // deploy/ (kubectl apply -k), under its own least-privilege RBAC, takes over the same
    // instance without touching the running controllers.
    let overlay = fluxop_e2e::pods::deploy_overlay(&repository, &digest, &insecure);
    let started = Instant::now();
    bed.cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager",
        "e2e",
        "-k",
        overlay.to_str().expect("path"),
    ]);
    let (leader, _) = leader_and_standbys(&bed.client, 1).await;
    println!(
        "timing: kubectl apply -k deploy/ to fluxop Ready in {:?}",
        started.elapsed()
    );
    request_reconcile(&bed, "from-deploy", 2 * MINUTE).await;
    let ready = bed.api.get("flux").await.expect("get");
    assert_eq!(
        ready
            .status
            .as_ref()
            .and_then(|s| s.last_applied_revision.clone()),
        installed
            .status
            .as_ref()
            .and_then(|s| s.last_applied_revision.clone())
    );
    assert_eq!(
        assert_controllers_run(&bed.client, "v2.9.4", &controllers).await,
        flux_pods
    );
    // The report is written by the pod (its RBAC covers it), and nothing was forbidden.
    eventually(
        2 * MINUTE,
        "the FluxReport from the in-cluster operator",
        || async {
            let report = bed
                .cluster
                .kubectl()
                .args([
                    "get",
                    "fluxreport",
                    "flux",
                    "-n",
                    "flux-system",
                    "-o",
                    "json",
                ])
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&report.stdout).to_string();
            (report.status.success() && text.contains("kustomize-controller")).then_some(())
        },
    )
    .await;

    // Deleting the instance uninstalls Flux through the in-cluster operator; what Flux
    // deployed keeps running.
    let app_pods = wait_running(&bed.client, "default", "app", MINUTE).await;
    bed.cluster.kubectl_ok(&[
        "delete",
        "fluxinstance",
        "flux",
        "-n",
        "flux-system",
        "--timeout=3m",
    ]);
    eventually(2 * MINUTE, "the Flux controllers to be removed", || async {
        let deployments = Api::<Deployment>::namespaced(bed.client.clone(), "flux-system")
            .list(&Default::default())
            .await
            .ok()?;
        deployments
            .items
            .iter()
            .all(|d| d.metadata.name.as_deref() == Some("fluxop"))
            .then_some(())
    })
    .await;
    let app_after = wait_running(&bed.client, "default", "app", MINUTE).await;
    assert_eq!(
        app_after
            .iter()
            .map(|p| p.metadata.uid.clone())
            .collect::<Vec<_>>(),
        app_pods
            .iter()
            .map(|p| p.metadata.uid.clone())
            .collect::<Vec<_>>()
    );
    bed.cluster
        .kubectl_ok(&["get", "configmap", "app", "-n", "default"]);
    let logs = bed.cluster.kubectl_ok(&[
        "logs",
        "-n",
        "flux-system",
        leader.metadata.name.as_deref().expect("name"),
    ]);
    assert!(
        !logs.contains("forbidden"),
        "the in-cluster operator hit RBAC limits:\n{logs}"
    );
}
