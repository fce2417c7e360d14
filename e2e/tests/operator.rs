//! The fluxop binary and its install manifests against the real cluster.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::Duration,
};

use fluxop_e2e::{
    client, ensure_crds, eventually, fluxop_bin, fresh_namespace, kubeconfig_path, kubectl,
    repo_root,
};

/// A port on loopback that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `GET path` over HTTP/1.0; returns the status code and body.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Kills the operator when the test ends, pass or fail.
struct Operator(Child);
impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn fluxop_started_against_the_cluster_reports_ready_and_serves_metrics() {
    let client = client().await;
    ensure_crds(&client).await;
    let namespace = fresh_namespace(&client, "operator").await;
    let health: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let _operator = Operator(
        Command::new(fluxop_bin())
            .args(["run", "--namespace", &namespace, "--log-format", "json"])
            .arg("--health-addr")
            .arg(health.to_string())
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .env("KUBECONFIG", kubeconfig_path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fluxop starts"),
    );
    eventually(
        Duration::from_secs(60),
        "fluxop /readyz to answer 200",
        || async { http_get(health, "/readyz").filter(|(status, _)| *status == 200) },
    )
    .await;
    let (status, _) = http_get(health, "/healthz").expect("healthz answers");
    assert_eq!(status, 200);
    let (status, body) = http_get(metrics, "/metrics").expect("metrics answers");
    assert_eq!(status, 200);
    assert!(body.contains("flux_operator_info{"), "{body}");
    assert!(
        body.trim_end().ends_with("# EOF"),
        "not OpenMetrics: {body}"
    );

    // The watch is live: an instance created now is observed and counted.
    let instance = format!(
        "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: {namespace}\n\
         spec:\n  distribution:\n    version: 2.x\n    registry: ghcr.io/fluxcd\n"
    );
    let mut apply = kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    apply
        .stdin
        .take()
        .unwrap()
        .write_all(instance.as_bytes())
        .unwrap();
    assert!(
        apply.wait().unwrap().success(),
        "kubectl apply of the instance failed"
    );
    eventually(
        Duration::from_secs(30),
        "a FluxInstance reconcile counted in /metrics",
        || async {
            let (_, body) = http_get(metrics, "/metrics")?;
            body.contains("fluxop_reconciles_total{kind=\"FluxInstance\",result=\"success\"}")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn fluxop_exits_with_a_clear_error_when_no_cluster_is_reachable() {
    let output = Command::new(fluxop_bin())
        .args([
            "run",
            "--health-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", repo_root().join("does-not-exist.kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("fluxop runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot load a Kubernetes config"),
        "{stderr}"
    );
}

#[tokio::test]
async fn deploy_manifests_are_accepted_by_a_server_side_dry_run() {
    let client = client().await;
    ensure_crds(&client).await;
    // A dry run creates nothing, so the namespaced objects need their namespace to exist.
    let namespace = kubectl()
        .args([
            "apply",
            "--server-side",
            "--field-manager",
            "fluxop-e2e",
            "-f",
        ])
        .arg(repo_root().join("deploy/namespace.yaml"))
        .output()
        .expect("kubectl runs");
    assert!(
        namespace.status.success(),
        "{}",
        String::from_utf8_lossy(&namespace.stderr)
    );
    let output = kubectl()
        .args([
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager",
            "fluxop-e2e",
            "-k",
        ])
        .arg(repo_root().join("deploy"))
        .output()
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dry run failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    for object in [
        "namespace/flux-system",
        "serviceaccount/fluxop",
        "deployment.apps/fluxop",
        "clusterrolebinding.rbac.authorization.k8s.io/fluxop",
    ] {
        assert!(
            stdout.contains(object),
            "{object} missing from the deploy kustomization:\n{stdout}"
        );
    }
}
