//! Helpers of the end-to-end tests. They run against the real cluster and registry that
//! `hack/test.sh` starts (`hack/cluster-up.sh`, `hack/registry-up.sh`) and find them through
//! `FLUXOP_E2E_KUBECONFIG`, `FLUXOP_E2E_KUBECTL` and `FLUXOP_E2E_REGISTRY`. Without them a
//! test fails with instructions: this tier never skips silently.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod conformance;
pub mod faults;
pub mod fleet;
pub mod gitops;
pub mod leader;
pub mod pods;
pub mod toolkit;
pub mod webhook;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use fluxop::api::crds;
use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config,
    api::{Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
    runtime::wait::{await_condition, conditions},
};

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the end-to-end tests need the local cluster and registry. \
             Run them with hack/test.sh, or start hack/cluster-up.sh and hack/registry-up.sh \
             and export FLUXOP_E2E_KUBECONFIG, FLUXOP_E2E_KUBECTL and FLUXOP_E2E_REGISTRY"
        )
    })
}

/// Kubeconfig of the test cluster (admin).
pub fn kubeconfig_path() -> PathBuf {
    PathBuf::from(required_env("FLUXOP_E2E_KUBECONFIG"))
}

/// `host:port` of the test registry on loopback.
pub fn registry_address() -> String {
    required_env("FLUXOP_E2E_REGISTRY")
}

/// A client for the test cluster.
pub async fn client() -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let path = kubeconfig_path();
    let kubeconfig =
        Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig of the test cluster is valid");
    Client::try_from(config).expect("client for the test cluster")
}

/// `kubectl --kubeconfig <test cluster>`.
pub fn kubectl() -> Command {
    let mut command = Command::new(required_env("FLUXOP_E2E_KUBECTL"));
    command.arg("--kubeconfig").arg(kubeconfig_path());
    command
}

/// Where the hack/ scripts keep clusters and registries (as hack/lib.sh computes it).
pub fn state_root() -> PathBuf {
    std::env::var("FLUXOP_TESTBED_STATE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::var("TMPDIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| PathBuf::from("/tmp"))
                .join("fluxop-testbed")
        })
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The `fluxop` binary of this workspace's build (hack/test.sh builds it before the tests).
pub fn fluxop_bin() -> PathBuf {
    // Test executables live in target/<profile>/deps; the binary one level up.
    let exe = std::env::current_exe().expect("test executable path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .join("fluxop");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p fluxop --bin fluxop` first",
        bin.display()
    );
    bin
}

/// Applies fluxop's CRDs with server-side apply and waits until each is Established.
pub async fn ensure_crds(client: &Client) {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    let params = PatchParams::apply("fluxop-e2e").force();
    for crd in crds::all() {
        let name = crd.metadata.name.clone().expect("CRD name");
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
        let established = await_condition(api.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(60), established)
            .await
            .unwrap_or_else(|_| panic!("CRD {name} not Established within 60s"))
            .unwrap_or_else(|e| panic!("watching CRD {name}: {e}"));
    }
}

/// A new namespace with a unique name, so tests running side by side never collide.
pub async fn fresh_namespace(client: &Client, prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "e2e-{prefix}-{:x}{:x}",
        nanos % 0xffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let namespace: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name }
    }))
    .expect("namespace object");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    name
}

/// Polls `check` every 250 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The cosign CLI built by `hack/testbed-build.sh cosign`, for interoperability checks.
pub fn cosign() -> Command {
    Command::new(required_env("FLUXOP_E2E_COSIGN"))
}

/// The test registry's storage directory, for tampering with stored blobs.
pub fn registry_data_dir() -> PathBuf {
    PathBuf::from(required_env("FLUXOP_E2E_REGISTRY_DATA"))
}

/// `fluxop <args>` with the workspace's binary; panics with its stderr when it fails.
pub fn fluxop(args: &[&str]) -> String {
    let output = Command::new(fluxop_bin())
        .args(args)
        .output()
        .expect("fluxop runs");
    assert!(
        output.status.success(),
        "fluxop {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A unique repository name, so tests sharing the registry never collide.
pub fn unique_repository(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "e2e/{prefix}-{}-{:x}{}",
        std::process::id(),
        nanos % 0xffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A registry of a test's own, started with options by `hack/registry-up.sh` (for example
/// `--tls`, `--basic-auth user:password`) and stopped when dropped.
pub struct OwnRegistry {
    pub name: String,
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// The CA of a `--tls` registry.
    pub ca: PathBuf,
}

impl OwnRegistry {
    pub fn start(prefix: &str, options: &[&str]) -> Self {
        let name = format!("{prefix}-{}", std::process::id());
        let output = Command::new(repo_root().join("hack/registry-up.sh"))
            .arg(&name)
            .args(options)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "registry-up failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let address = String::from_utf8_lossy(&output.stdout).trim().to_string();
        let ca = state_root().join("registries").join(&name).join("ca.crt");
        Self { name, address, ca }
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("hack/registry-down.sh"))
            .arg(&self.name)
            .output();
    }
}

/// A Git server of a test's own (`hack/git-server-up.sh`: lighttpd and `git http-backend`
/// over smart HTTP), with the repositories it was asked for; stopped when dropped.
pub struct OwnGitServer {
    pub name: String,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl OwnGitServer {
    /// `options`: `--basic-auth user:password`, `--create REPO`.
    pub fn start(prefix: &str, options: &[&str]) -> Self {
        let name = format!("{prefix}-{}", std::process::id());
        let output = Command::new(repo_root().join("hack/git-server-up.sh"))
            .arg(&name)
            .args(options)
            .output()
            .expect("hack/git-server-up.sh runs");
        assert!(
            output.status.success(),
            "git-server-up failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let address = String::from_utf8_lossy(&output.stdout).trim().to_string();
        Self { name, address }
    }

    pub fn port(&self) -> &str {
        self.address.rsplit(':').next().expect("port")
    }
}

impl Drop for OwnGitServer {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("hack/git-server-down.sh"))
            .arg(&self.name)
            .output();
    }
}

/// A bench figure: median, min and max of `samples`.
pub fn bench_summary(name: &str, mut samples: Vec<std::time::Duration>) {
    samples.sort();
    let s = |d: std::time::Duration| d.as_secs_f64();
    println!(
        "{name:<44} n={:<2} median {:>6.2} s   min {:>6.2} s   max {:>6.2} s",
        samples.len(),
        s(samples[samples.len() / 2]),
        s(samples[0]),
        s(samples[samples.len() - 1])
    );
}

/// The incumbent's operator binary (`FLUXOP_E2E_INCUMBENT`, for the benches that run it);
/// its distribution data and CRDs sit next to its bin directory (`../data`, `../crds`).
pub fn incumbent_operator_bin() -> PathBuf {
    PathBuf::from(std::env::var("FLUXOP_E2E_INCUMBENT").unwrap_or_else(|_| {
        panic!(
            "FLUXOP_E2E_INCUMBENT is not set: run hack/bench.sh incumbent, or export \
             FLUXOP_E2E_INCUMBENT=$(hack/testbed-build.sh flux-operator-controller | tail -n 1)/flux-operator-controller"
        )
    }))
}

/// `name` (`data`, `crds`) next to the incumbent operator's bin directory.
pub fn incumbent_operator_dir(name: &str) -> PathBuf {
    incumbent_operator_bin()
        .parent()
        .and_then(Path::parent)
        .expect("the incumbent's bin directory has a parent")
        .join(name)
}
