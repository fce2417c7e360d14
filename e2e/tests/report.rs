//! The FluxReport and the per-object metrics against a real cluster with Flux installed by
//! fluxop and a few hundred Flux objects in it.

use std::time::Duration;

use fluxop::api::{FluxInstance, FluxReport};
use fluxop_e2e::{
    cluster::{OwnCluster, exclusive, http_get, instance_yaml, is_ready_at, wait_for_instance},
    eventually,
};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
};
use serde_json::json;

const REPOS: usize = 100;
const SUSPENDED_REPOS: usize = 20;
const KUSTOMIZATIONS: usize = 100;
const FAILING_KUSTOMIZATIONS: usize = 15;
const RELEASES: usize = 100;
const SUSPENDED_RELEASES: usize = 5;

#[tokio::test]
async fn the_report_counts_what_kubectl_shows_and_each_object_has_a_metric_series() {
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("report").await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    cluster.kubectl_ok(&["create", "namespace", "apps"]);
    let instances = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
    // Traces go to a small OTLP/HTTP receiver of the test's own.
    let receiver = OtlpReceiver::start().await;
    let endpoint = format!("http://{}", receiver.address);
    let operator = cluster
        .start_operator_with_env(
            "flux-system",
            &["--reporting-interval", "2s"],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ],
        )
        .await;
    cluster.apply(&instance_yaml(
        "flux-system",
        "  distribution:\n    version: \"2.9.x\"\n    registry: ghcr.io/fluxcd\n",
    ));
    wait_for_instance(
        &instances,
        Duration::from_secs(120),
        "Flux to be Ready",
        |i| is_ready_at(i, "v2.9.4@"),
    )
    .await;

    // A few hundred Flux objects; nothing reconciles them (kwok runs no controllers), so
    // their status is what the test sets.
    let mut documents = Vec::new();
    for i in 0..REPOS {
        documents.push(format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: repo-{i}\n  namespace: apps\n\
             spec:\n  interval: 10m\n  url: https://example.com/repo-{i}.git\n  suspend: {}\n",
            i < SUSPENDED_REPOS
        ));
    }
    for i in 0..KUSTOMIZATIONS {
        documents.push(format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: app-{i}\n  namespace: apps\n\
             spec:\n  interval: 10m\n  path: ./\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: repo-{i}\n"
        ));
    }
    for i in 0..RELEASES {
        documents.push(format!(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: release-{i}\n  namespace: apps\n\
             spec:\n  interval: 10m\n  suspend: {}\n  chartRef:\n    kind: OCIRepository\n    name: chart\n",
            i < SUSPENDED_RELEASES
        ));
    }
    cluster.apply(&documents.join("---\n"));
    let kustomizations = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "apps",
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "kustomize.toolkit.fluxcd.io",
            "v1",
            "Kustomization",
        )),
    );
    for i in 0..FAILING_KUSTOMIZATIONS {
        let status = json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "status": { "conditions": [{
                "type": "Ready", "status": "False", "reason": "BuildFailed",
                "message": "kustomization path not found", "lastTransitionTime": "2026-01-01T00:00:00Z"
            }] }
        });
        kustomizations
            .patch_status(
                &format!("app-{i}"),
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(&status),
            )
            .await
            .expect("status patch");
    }

    // kubectl's view, to compare with.
    let count = |kind: &str, jsonpath: &str| {
        cluster
            .kubectl_ok(&[
                "get",
                kind,
                "-n",
                "apps",
                "-o",
                &format!("jsonpath={jsonpath}"),
            ])
            .split_whitespace()
            .count() as i64
    };
    let suspended_repos = count(
        "gitrepositories",
        "{range .items[?(@.spec.suspend==true)]}{.metadata.name} {end}",
    );
    let failing = count(
        "kustomizations",
        "{range .items[*].status.conditions[?(@.status==\"False\")]}{.reason} {end}",
    );
    assert_eq!(
        (suspended_repos, failing),
        (SUSPENDED_REPOS as i64, FAILING_KUSTOMIZATIONS as i64)
    );

    let reports = Api::<FluxReport>::namespaced(client.clone(), "flux-system");
    let stats_of = |report: &FluxReport, kind: &str| {
        report
            .spec
            .reconcilers
            .iter()
            .flatten()
            .find(|r| r.kind == kind)
            .and_then(|r| r.stats.clone())
    };
    let report = eventually(
        Duration::from_secs(60),
        "the report to count the objects",
        || async {
            let report = reports.get_opt("flux").await.ok()??;
            // A report taken while the status patches above were still being written
            // counts only some of the failures: wait for one taken after all of them.
            let kustomizations = stats_of(&report, "Kustomization")?;
            (kustomizations.running == KUSTOMIZATIONS as i64 && kustomizations.failing == failing)
                .then_some(report)
        },
    )
    .await;
    let repos = stats_of(&report, "GitRepository").expect("GitRepository stats");
    assert_eq!(
        (repos.running, repos.suspended, repos.failing),
        ((REPOS - SUSPENDED_REPOS) as i64, suspended_repos, 0)
    );
    let apps = stats_of(&report, "Kustomization").expect("Kustomization stats");
    assert_eq!((apps.failing, apps.suspended), (failing, 0));
    let releases = stats_of(&report, "HelmRelease").expect("HelmRelease stats");
    assert_eq!(
        (releases.running, releases.suspended),
        (
            (RELEASES - SUSPENDED_RELEASES) as i64,
            SUSPENDED_RELEASES as i64
        )
    );
    let distribution = &report.spec.distribution;
    assert_eq!(
        (
            distribution.status.as_str(),
            distribution.version.as_deref(),
            distribution.managed_by.as_deref()
        ),
        ("Installed", Some("v2.9.4"), Some("fluxop"))
    );
    let components = report.spec.components.clone().expect("components");
    assert_eq!(components.len(), 4);
    assert!(components.iter().all(|c| c.ready), "{components:?}");
    assert_eq!(report.spec.cluster.as_ref().and_then(|c| c.nodes), Some(3));
    let ready = report
        .status
        .and_then(|s| s.conditions)
        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
        .expect("Ready");
    assert!(
        ready.message.contains("4 of 4 controllers ready"),
        "{}",
        ready.message
    );

    // One flux_resource_info series per object.
    let (_, metrics) = http_get(operator.metrics, "/metrics").expect("metrics");
    let series = |kind: &str| {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("flux_resource_info{") && l.contains(&format!("kind=\"{kind}\""))
            })
            .count()
    };
    assert_eq!(
        (
            series("GitRepository"),
            series("Kustomization"),
            series("HelmRelease")
        ),
        (REPOS, KUSTOMIZATIONS, RELEASES)
    );
    assert!(metrics.contains("ready=\"False\""));
    assert!(metrics.contains(
        "flux_instance_info{name=\"flux\",exported_namespace=\"flux-system\",ready=\"True\""
    ));
    assert!(metrics.contains("fluxop_reconcile_duration_seconds_bucket"));
    assert!(
        metrics.contains("fluxop_kube_client_requests_total{method=\"GET\",code=\"200\"}"),
        "no client request counts"
    );

    // The CLI sees the same, and its exit codes say whether the instance is Ready.
    let kubeconfig = cluster.kubeconfig.to_string_lossy().into_owned();
    let fluxop = |args: &[&str]| {
        let output = std::process::Command::new(fluxop_e2e::fluxop_bin())
            .args(args)
            .args(["--kubeconfig", &kubeconfig])
            .output()
            .expect("fluxop runs");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, table) = fluxop(&["get", "instance"]);
    assert_eq!(code, Some(0), "{table}");
    assert!(table.starts_with("NAME   READY   STATUS"), "{table}");
    let (code, listed) = fluxop(&["get", "resources", "-A", "-o", "json"]);
    assert_eq!(code, Some(0));
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed.len(), REPOS + KUSTOMIZATIONS + RELEASES);
    let (_, stats) = fluxop(&["stats"]);
    assert!(
        stats.contains("Kustomization") && stats.contains(&format!(" {FAILING_KUSTOMIZATIONS} ")),
        "{stats}"
    );
    let (code, _) = fluxop(&["reconcile", "instance", "--wait", "--timeout", "60s"]);
    assert_eq!(code, Some(0));
    assert_eq!(fluxop(&["suspend", "instance"]).0, Some(0));
    eventually(
        Duration::from_secs(30),
        "get instance to exit 4 while suspended",
        || async { (fluxop(&["get", "instance"]).0 == Some(4)).then_some(()) },
    )
    .await;
    assert_eq!(fluxop(&["resume", "instance"]).0, Some(0));
    assert_eq!(fluxop(&["wait", "instance", "--timeout", "60s"]).0, Some(0));
    let (_, tree) = fluxop(&["tree"]);
    assert!(
        tree.contains("Deployment (4)") && tree.contains("flux-system/source-controller"),
        "{tree}"
    );
    let (_, version) = fluxop(&["version", "-o", "json"]);
    let version: serde_json::Value = serde_json::from_str(&version).expect("json");
    assert_eq!(version["flux"], "v2.9.4");

    // The reconcile's trace reached the receiver over OTLP: its spans and their fields are
    // in the protobuf payloads as plain strings.
    eventually(
        Duration::from_secs(30),
        "a reconcile trace at the OTLP receiver",
        || async {
            let payloads = receiver.payloads();
            let all: Vec<u8> = payloads.concat();
            let has = |needle: &str| all.windows(needle.len()).any(|w| w == needle.as_bytes());
            [
                "reconcile",
                "fetch",
                "render",
                "apply",
                "wait",
                "report",
                "fluxop",
                "v2.9.4@sha256:",
            ]
            .iter()
            .all(|n| has(n))
            .then_some(())
        },
    )
    .await;
}

/// Accepts OTLP/HTTP exports (`POST /v1/traces`) and keeps their bodies.
struct OtlpReceiver {
    address: std::net::SocketAddr,
    payloads: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

impl OtlpReceiver {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let payloads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stored = payloads.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let stored = stored.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        // One request: headers, then Content-Length bytes of body.
                        let header_end = loop {
                            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                                break end + 4;
                            }
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let headers = String::from_utf8_lossy(&buffer[..header_end]).to_lowercase();
                        let length: usize = headers
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        while buffer.len() < header_end + length {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let body = buffer[header_end..header_end + length].to_vec();
                        buffer.drain(..header_end + length);
                        if headers.starts_with("post /v1/traces") {
                            stored.lock().expect("lock").push(body);
                        }
                        let response = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { address, payloads }
    }

    fn payloads(&self) -> Vec<Vec<u8>> {
        self.payloads.lock().expect("lock").clone()
    }
}
