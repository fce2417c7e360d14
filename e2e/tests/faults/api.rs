//! Faults of the API server, on a cluster of the test's own (kwok nodes): the operator runs
//! locally (`fluxop run`) and the cluster's kube-apiserver is killed and started again with
//! the same command line (`hack/apiserver-restart.sh`) while a reconcile is under way.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use fluxop::{api::FluxInstance, apply::object};
use fluxop_e2e::{
    cluster::http_get,
    cluster::{OwnCluster, condition, exclusive, instance_yaml, is_ready_at, wait_for_instance},
    fluxop_bin, repo_root,
};
use kube::Api;
use serde_json::Value;

const MINUTE: Duration = Duration::from_secs(60);

/// Flux 2.9 whose source-controller may only run on a node labelled `fluxop.test/late`,
/// which no node is until the test labels one: the health wait lasts as long as the test
/// wants it to.
const SPEC: &str = "  distribution:\n    version: \"2.9.x\"\n    registry: ghcr.io/fluxcd\n  kustomize:\n    patches:\n    - target: {kind: Deployment, name: source-controller}\n      patch: |\n        \
                    - {op: add, path: /spec/template/spec/nodeSelector, value: {fluxop.test/late: \"true\"}}\n";

/// Polls `/readyz` every 200 ms on a thread of its own (the restart script blocks the test),
/// keeping (time since start, status; 0 when no answer).
struct ReadinessPoller {
    samples: std::sync::Arc<std::sync::Mutex<Vec<(Duration, u16)>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReadinessPoller {
    fn start(health: std::net::SocketAddr) -> Self {
        let samples = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (kept, stopping) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let code = http_get(health, "/readyz").map_or(0, |(code, _)| code);
                kept.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((started.elapsed(), code));
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Self {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    fn last(&self) -> Option<u16> {
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last()
            .map(|(_, code)| *code)
    }

    fn stop(mut self) -> Vec<(Duration, u16)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        std::mem::take(
            &mut *self
                .samples
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// What `fluxop build instance` renders for `yaml`: the objects and the revision.
fn rendered(yaml: &str, cluster: &str) -> (Vec<Value>, String) {
    let file = std::env::temp_dir().join(format!("fluxop-e2e-{cluster}-instance.yaml"));
    std::fs::write(&file, yaml).expect("write the instance");
    let output = Command::new(fluxop_bin())
        .args(["build", "instance", "-o", "json", "-f"])
        .arg(&file)
        .output()
        .expect("fluxop build runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "fluxop build failed: {stderr}");
    let objects: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON objects");
    let revision = stderr
        .split("revision ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("fluxop build prints the revision")
        .to_string();
    (objects, revision)
}

/// The value of the first sample of a metric (e.g. `fluxop_watch_errors_total`), 0 if none.
fn sample(operator: &fluxop_e2e::cluster::Operator, series: &str) -> f64 {
    operator
        .metric(series)
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_api_server_restarted_mid_reconcile_is_waited_out_and_the_instance_ends_ready() {
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("apirestart").await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
    // The default lease timings: the outage (the kill, 3 s down, the start) is what a
    // rolling restart of a control plane looks like to an operator.
    let operator = cluster.start_operator("flux-system", &[]).await;
    let pid_alive = || operator.memory_kib().is_some();

    let yaml = instance_yaml("flux-system", SPEC);
    let (objects, revision) = rendered(&yaml, &cluster.name);
    cluster.apply(&yaml);
    let generation = api.get("flux").await.expect("get").metadata.generation;
    // Applied, and waiting for source-controller, which cannot be scheduled yet.
    wait_for_instance(&api, 2 * MINUTE, "the health wait to start", |i| {
        condition(i, "Reconciling").is_some_and(|c| {
            c.status == "True"
                && c.observed_generation == generation
                && c.message.starts_with("Applying revision v2.9.4@")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watch_errors_before = sample(&operator, "fluxop_watch_errors_total");

    // Ready before the restart; /readyz is then polled all through it.
    assert_eq!(
        http_get(operator.health, "/readyz").map(|(code, _)| code),
        Some(200),
        "fluxop is not ready before the restart"
    );
    let readiness = ReadinessPoller::start(operator.health);

    // The API server goes away mid-wait and comes back.
    let stopped = Instant::now();
    let restart = Command::new(repo_root().join("hack/apiserver-restart.sh"))
        .args([cluster.name.as_str(), "--down-seconds", "3"])
        .output()
        .expect("hack/apiserver-restart.sh runs");
    assert!(
        restart.status.success(),
        "apiserver-restart failed: {}",
        String::from_utf8_lossy(&restart.stderr)
    );
    println!(
        "timing: the API server was unreachable for {}s",
        String::from_utf8_lossy(&restart.stdout).trim()
    );
    assert!(pid_alive(), "fluxop exited while the API server was down");
    let back = stopped.elapsed();
    // Ready again once the API server answers: it does not stay out of its Service.
    fluxop_e2e::eventually(
        MINUTE,
        "/readyz to answer 200 after the restart",
        || async { (readiness.last() == Some(200)).then_some(()) },
    )
    .await;
    let samples = readiness.stop();
    let not_ready: Vec<&(Duration, u16)> =
        samples.iter().filter(|(_, code)| *code == 503).collect();
    assert!(
        !not_ready.is_empty(),
        "/readyz never said not ready while the API server was down: {samples:?}"
    );
    let ready_again = samples
        .iter()
        .rev()
        .take_while(|(_, code)| *code == 200)
        .last()
        .map(|(at, _)| *at)
        .expect("a 200 at the end");
    println!(
        "readiness: 503 from {:.1?} to {:.1?} after the stop; the API server answered at {back:.1?}, /readyz 200 again at {ready_again:.1?}",
        not_ready.first().map(|(at, _)| *at).unwrap_or_default(),
        not_ready.last().map(|(at, _)| *at).unwrap_or_default(),
    );

    // Now source-controller can be scheduled: the instance must end Ready at the revision
    // rendered, with the whole inventory, without anyone touching it.
    cluster.kubectl_ok(&["label", "node", "kwok-node-0", "fluxop.test/late=true"]);
    let ready = wait_for_instance(&api, 3 * MINUTE, "Ready after the restart", |i| {
        i.metadata.generation == generation && is_ready_at(i, "v2.9.4@")
    })
    .await;
    println!(
        "timing: Ready {:?} after the API server was stopped",
        stopped.elapsed()
    );
    let status = ready.status.expect("status");
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(revision.as_str())
    );
    assert_eq!(
        status.inventory.expect("inventory").entries,
        object::inventory(&objects).entries,
        "the inventory is not the whole rendered set"
    );
    // Every object of the inventory is in the cluster.
    for object in &objects {
        let kind = object["kind"].as_str().expect("kind");
        let name = object["metadata"]["name"].as_str().expect("name");
        let mut args = vec!["get", kind, name, "-o", "name"];
        if let Some(namespace) = object["metadata"]["namespace"].as_str() {
            args.extend(["-n", namespace]);
        }
        cluster.kubectl_ok(&args);
    }

    // The operator saw the outage, said so, and is the same process.
    assert!(pid_alive(), "fluxop exited after the API server came back");
    let watch_errors = sample(&operator, "fluxop_watch_errors_total");
    assert!(
        watch_errors > watch_errors_before,
        "fluxop_watch_errors_total did not grow ({watch_errors_before} -> {watch_errors})"
    );
    let log = std::fs::read_to_string(&operator.log).expect("operator log");
    let outage: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\""))
        .collect();
    assert!(
        outage
            .iter()
            .any(|l| l.contains("watching FluxInstances failed")),
        "no log line about the lost watch:\n{}",
        outage.join("\n")
    );
    println!(
        "fault: {} warnings and errors logged during the outage, e.g. {}",
        outage.len(),
        outage.first().copied().unwrap_or_default()
    );
}

/// A GitRepository's finalizer as source-controller would set it.
const HELD_REPOSITORY: &str = "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: app\n  namespace: apps\n  \
                               finalizers: [finalizers.fluxcd.io]\nspec:\n  interval: 1m\n  url: https://example.com/app.git\n";

fn repository_finalizers(cluster: &OwnCluster) -> String {
    cluster.kubectl_ok(&[
        "get",
        "gitrepository",
        "app",
        "-n",
        "apps",
        "-o",
        "jsonpath={.metadata.finalizers}",
    ])
}

#[tokio::test]
async fn uninstall_strips_finalizers_only_once_the_controller_pods_are_gone() {
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("unorder").await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
    let _operator = cluster.start_operator("flux-system", &[]).await;
    let spec = "  distribution:\n    version: \"2.9.x\"\n    registry: ghcr.io/fluxcd\n";
    cluster.apply(&instance_yaml("flux-system", spec));
    wait_for_instance(&api, 2 * MINUTE, "v2.9.4 to be Ready", |i| {
        is_ready_at(i, "v2.9.4@")
    })
    .await;
    cluster.kubectl_ok(&["create", "namespace", "apps"]);
    cluster.apply(HELD_REPOSITORY);

    // A source-controller pod that outlives its deletion (as one on a real node does while
    // its container stops) until the test lets it go.
    let pod = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-n",
        "flux-system",
        "-l",
        "app=source-controller",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    assert!(!pod.is_empty(), "no source-controller pod");
    cluster.kubectl_ok(&[
        "patch",
        "pod",
        &pod,
        "-n",
        "flux-system",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["fluxop.test/hold"]}}"#,
    ]);

    cluster.kubectl_ok(&[
        "delete",
        "fluxinstance",
        "flux",
        "-n",
        "flux-system",
        "--wait=false",
    ]);
    fluxop_e2e::eventually(
        MINUTE,
        "the source-controller pod to be terminating",
        || async {
            let deleted = cluster.kubectl_ok(&[
                "get",
                "pod",
                &pod,
                "-n",
                "flux-system",
                "-o",
                "jsonpath={.metadata.deletionTimestamp}",
            ]);
            (!deleted.is_empty()).then_some(())
        },
    )
    .await;
    // While the pod is there, uninstall waits: nothing of Flux's objects is touched yet.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        repository_finalizers(&cluster),
        r#"["finalizers.fluxcd.io"]"#
    );
    assert!(api.get_opt("flux").await.expect("get").is_some());
    cluster.kubectl_ok(&["get", "crd", "gitrepositories.source.toolkit.fluxcd.io"]);

    // The pod goes: then the finalizers, the CRDs (with the Flux objects) and the instance.
    cluster.kubectl_ok(&[
        "patch",
        "pod",
        &pod,
        "-n",
        "flux-system",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    fluxop_e2e::eventually(2 * MINUTE, "the instance to be deleted", || async {
        api.get_opt("flux").await.ok()?.is_none().then_some(())
    })
    .await;
    fluxop_e2e::eventually(MINUTE, "the Flux CRDs to be deleted", || async {
        let crds = cluster.kubectl_ok(&["get", "crds", "-o", "name"]);
        (!crds.contains("fluxcd.io")).then_some(())
    })
    .await;
    let left = cluster.kubectl_ok(&["get", "deployments,pods", "-n", "flux-system", "-o", "name"]);
    assert!(left.trim().is_empty(), "{left}");
    cluster.kubectl_ok(&["get", "namespace", "flux-system"]);
    cluster.kubectl_ok(&["get", "namespace", "apps"]);
}
