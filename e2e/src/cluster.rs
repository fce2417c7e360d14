//! A cluster of a test's own, for tests that install Flux: CRDs and cluster roles are
//! cluster-wide, so two installs in one cluster would fight over them. Such tests take
//! [`exclusive`] so only one of these clusters runs at a time, and stop it when done.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fluxop::api::FluxInstance;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

use crate::{ensure_crds, eventually, fluxop_bin, repo_root, state_root};

static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Held while a test runs its own cluster: one at a time keeps memory and CPU in check.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    EXCLUSIVE.lock().await
}

pub struct OwnCluster {
    pub name: String,
    pub kubeconfig: PathBuf,
}

impl OwnCluster {
    /// Starts a fresh cluster (`hack/cluster-up.sh`) with kwok nodes and fluxop's CRDs
    /// installed.
    pub async fn start(prefix: &str) -> Self {
        Self::start_with(prefix, &[]).await
    }

    /// Starts a fresh cluster with one real node (containerd, kubelet, kube-proxy, CoreDNS)
    /// and no kwok node, which reaches the test registry at [`Self::registry`], and fluxop's
    /// CRDs installed.
    pub async fn start_real(prefix: &str) -> Self {
        Self::start_real_with(prefix, &[]).await
    }

    /// [`Self::start_real`] with more `hack/cluster-up.sh` arguments.
    pub async fn start_real_with(prefix: &str, extra: &[&str]) -> Self {
        let registry = crate::registry_address();
        let mut args = vec!["--real-nodes", "1", "--registry", &registry];
        args.extend_from_slice(extra);
        Self::start_with(prefix, &args).await
    }

    /// Starts a fresh cluster with `hack/cluster-up.sh NAME <args>`.
    pub async fn start_with(prefix: &str, args: &[&str]) -> Self {
        let name = format!("{prefix}-{}", std::process::id());
        let output = Command::new(repo_root().join("hack/cluster-up.sh"))
            .arg(&name)
            .args(args)
            .output()
            .expect("hack/cluster-up.sh runs");
        assert!(
            output.status.success(),
            "cluster-up {name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let kubeconfig = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        let cluster = Self { name, kubeconfig };
        ensure_crds(&cluster.client().await).await;
        cluster
    }

    /// A value of the cluster's env file (`hack/cluster-up.sh` writes it).
    fn env(&self, key: &str) -> Option<String> {
        let path = state_root().join("clusters").join(&self.name).join("env");
        let text = std::fs::read_to_string(path).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// The address of the host bridge of a cluster with real nodes: pods, the nodes'
    /// containerd and this machine reach the API server and the registries there.
    pub fn gateway(&self) -> String {
        self.env("FLUXOP_CLUSTER_GATEWAY")
            .unwrap_or_else(|| panic!("cluster {} has no real nodes", self.name))
    }

    /// The test registry as pods (and this machine) reach it: `GATEWAY:PORT`.
    pub fn registry(&self) -> String {
        let address = crate::registry_address();
        let port = address.rsplit(':').next().expect("registry port");
        format!("{}:{port}", self.gateway())
    }

    pub async fn client(&self) -> Client {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig readable");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig valid");
        Client::try_from(config).expect("client")
    }

    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(crate::required_env("FLUXOP_E2E_KUBECTL"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// `kubectl <args>`, panicking with stderr on failure; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl().args(args).output().expect("kubectl runs");
        assert!(
            output.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `kubectl apply --server-side` of YAML (field manager `e2e`).
    pub fn apply(&self, yaml: &str) {
        let mut apply = self
            .kubectl()
            .args([
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager",
                "e2e",
                "-f",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        apply
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write");
        let output = apply.wait_with_output().expect("kubectl finishes");
        assert!(
            output.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts `fluxop run` for `namespace`; returns once `/healthz` answers 200 (`/readyz`
    /// waits for leadership and the instance cache).
    pub async fn start_operator(&self, namespace: &str, extra: &[&str]) -> Operator {
        self.start_operator_with_env(namespace, extra, &[]).await
    }

    /// [`Self::start_operator`] with extra environment variables.
    pub async fn start_operator_with_env(
        &self,
        namespace: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Operator {
        let pod_name = format!("fluxop-{}-{}", self.name, free_port());
        run_fluxop(
            &self.kubeconfig,
            &self.name,
            &pod_name,
            namespace,
            extra,
            env,
        )
        .await
    }

    /// Asks for a reconcile of `object` (e.g. `fluxinstance/flux`) in flux-system now: a new
    /// `reconcile.fluxcd.io/requestedAt`.
    pub fn request_reconcile(&self, object: &str, value: &str) {
        self.kubectl_ok(&[
            "annotate",
            "--overwrite",
            "-n",
            "flux-system",
            object,
            &format!("reconcile.fluxcd.io/requestedAt={value}"),
        ]);
    }

    /// A Secret `name` in flux-system holding `public_pem` as `cosign.pub`, the key
    /// `spec.distribution.verify` (or Flux's own `verify`) reads.
    pub fn apply_public_key(&self, name: &str, public_pem: &str) {
        let key: String = public_pem.lines().map(|l| format!("    {l}\n")).collect();
        self.apply(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: flux-system\nstringData:\n  cosign.pub: |\n{key}"
        ));
    }

    /// Sum of the API server's `apiserver_request_total` for writes that were not dry runs,
    /// leaving out leases (leader election), events, and nodes and pods (their status).
    pub fn write_requests(&self) -> u64 {
        let metrics = self.kubectl_ok(&["get", "--raw", "/metrics"]);
        metrics
            .lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
            .filter(|l| {
                [
                    "\"POST\"",
                    "\"PUT\"",
                    "\"PATCH\"",
                    "\"DELETE\"",
                    "\"APPLY\"",
                ]
                .iter()
                .any(|verb| l.contains(&format!("verb={verb}")))
            })
            .filter(|l| !l.contains("dry_run=\"All\""))
            .filter(|l| !l.contains("resource=\"leases\"") && !l.contains("resource=\"events\""))
            // Kubelets (and kwok) report node and pod status all the time; fluxop writes neither.
            .filter(|l| !l.contains("resource=\"nodes\"") && !l.contains("resource=\"pods\""))
            .filter(|l| !l.contains("resource=\"tokenreviews\"") && !l.contains("accessreviews"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep the control plane's logs for the post-mortem (hack/test.sh says where).
            let logs = state_root().join("clusters").join(&self.name).join("logs");
            let kept = repo_root().join("target/testbed-logs").join(&self.name);
            let _ = std::fs::create_dir_all(&kept);
            let _ = Command::new("cp").arg("-r").arg(&logs).arg(&kept).status();
        }
        let _ = Command::new(repo_root().join("hack/cluster-down.sh"))
            .arg(&self.name)
            .output();
    }
}

/// Starts `fluxop run` for `namespace` against `kubeconfig`, as pod `pod_name` (its leader
/// election identity), logging (JSON) to a file named after `name`; returns once `/healthz`
/// answers 200 (`/readyz` waits for leadership and the instance cache).
pub async fn run_fluxop(
    kubeconfig: &std::path::Path,
    name: &str,
    pod_name: &str,
    namespace: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Operator {
    let health: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let cache = std::env::temp_dir().join(format!("fluxop-e2e-cache-{name}"));
    let log = std::env::temp_dir().join(format!("fluxop-e2e-{name}.log"));
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("operator log file");
    let child = Command::new(fluxop_bin())
        .args(["run", "--namespace", namespace, "--log-format", "json"])
        .arg("--health-addr")
        .arg(health.to_string())
        .arg("--metrics-addr")
        .arg(metrics.to_string())
        .arg("--cache-dir")
        .arg(&cache)
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAME", pod_name)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("fluxop starts");
    let operator = Operator {
        child,
        health,
        metrics,
        log,
    };
    eventually(
        Duration::from_secs(60),
        "fluxop /healthz to answer 200",
        || async { http_get(health, "/healthz").filter(|(status, _)| *status == 200) },
    )
    .await;
    operator
}

/// A running `fluxop run`; killed when dropped. Its log (JSON) is kept in a file that a
/// failing test prints.
pub struct Operator {
    child: Child,
    pub health: SocketAddr,
    pub metrics: SocketAddr,
    pub log: PathBuf,
}

impl Operator {
    /// SIGKILL, as a crash or an evicted pod would (after a SIGCONT, should it be paused).
    pub fn kill(&mut self) {
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`STOP`, `CONT`, …); false when it could not be sent.
    pub fn signal(&self, signal: &str) -> bool {
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, once it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Its log so far (JSON lines).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Peak and current resident set size in KiB (`VmHWM`, `VmRSS` of /proc/PID/status).
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        process_memory_kib(self.child.id())
    }

    pub fn metric(&self, prefix: &str) -> Option<String> {
        let (_, body) = http_get(self.metrics, "/metrics")?;
        body.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking()
            && let Ok(log) = std::fs::read_to_string(&self.log)
        {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- fluxop log (last 40 lines, newest first) ---");
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

/// A port on loopback that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `GET path` over HTTP/1.0; returns the status code and body.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http_get_with(addr, path, "")
}

/// [`http_get`] with a bearer token.
pub fn http_get_bearer(addr: SocketAddr, path: &str, token: &str) -> Option<(u16, String)> {
    http_get_with(addr, path, &format!("Authorization: Bearer {token}\r\n"))
}

/// A GET with `headers` (each line ending in CRLF).
fn http_get_with(addr: SocketAddr, path: &str, headers: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// The instance's condition of `type_`, if any.
pub fn condition(instance: &FluxInstance, type_: &str) -> Option<Condition> {
    instance
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// Waits until the instance `flux` satisfies `check`; panics after `timeout` with its
/// conditions.
pub async fn wait_for_instance(
    api: &Api<FluxInstance>,
    timeout: Duration,
    what: &str,
    check: impl Fn(&FluxInstance) -> bool,
) -> FluxInstance {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let instance = api.get_opt("flux").await.ok().flatten();
        if let Some(instance) = &instance
            && check(instance)
        {
            return instance.clone();
        }
        if tokio::time::Instant::now() > deadline {
            let conditions = instance
                .and_then(|i| i.status)
                .and_then(|s| s.conditions)
                .map(|c| {
                    c.iter()
                        .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
                        .collect::<Vec<_>>()
                        .join("\n  ")
                })
                .unwrap_or_default();
            panic!("timed out after {timeout:?} waiting for {what}; conditions:\n  {conditions}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Ready=True at `revision_prefix` (e.g. `v2.9.4@`) for the current generation.
pub fn is_ready_at(instance: &FluxInstance, revision_prefix: &str) -> bool {
    let ready = condition(instance, "Ready");
    ready.is_some_and(|c| {
        c.status == "True" && c.observed_generation == instance.metadata.generation
    }) && instance
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.as_deref())
        .is_some_and(|r| r.starts_with(revision_prefix))
}

/// A FluxInstance manifest named `flux` in `namespace` with the given `spec` YAML (indented
/// two spaces).
pub fn instance_yaml(namespace: &str, spec: &str) -> String {
    format!(
        "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: {namespace}\nspec:\n{spec}"
    )
}

/// Deletes the instance `flux` and waits until it is gone (its finalizer ran: the
/// uninstall); returns how long that took. For the benches.
pub async fn uninstall(api: &Api<FluxInstance>) -> Duration {
    let started = std::time::Instant::now();
    api.delete("flux", &kube::api::DeleteParams::default())
        .await
        .expect("delete the instance");
    while api.get_opt("flux").await.ok().flatten().is_some() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// Scales the Flux Deployment `name` to zero and waits until fluxop has put it back to one
/// replica; returns how long that took. For the benches.
pub async fn drift_revert(cluster: &OwnCluster, client: &Client, name: &str) -> Duration {
    let deployments =
        Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), "flux-system");
    let started = std::time::Instant::now();
    cluster.kubectl_ok(&[
        "scale",
        &format!("deployment/{name}"),
        "-n",
        "flux-system",
        "--replicas=0",
    ]);
    loop {
        let replicas = deployments
            .get(name)
            .await
            .ok()
            .and_then(|d| d.spec?.replicas);
        if replicas == Some(1) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Peak and current resident set size of process `pid` in KiB (`VmHWM`, `VmRSS` of
/// /proc/PID/status).
pub fn process_memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}
