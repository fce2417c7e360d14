//! Replicas of fluxop as local processes against the test cluster, for leader election:
//! each with its own identity (`POD_NAME`), metrics port and log file, and its PID at hand so
//! a test can pause it (SIGSTOP) and resume it (SIGCONT) the way a frozen VM or a stalled
//! node would. Also what the tests read of the Lease.

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, Client,
    api::{WatchEvent, WatchParams},
};

use crate::{
    cluster::{free_port, http_get},
    eventually, fluxop_bin, kubeconfig_path,
};

/// The Lease fluxop elects its leader with (`--leader-election-id`'s default).
pub const LEASE: &str = "fluxop-leader-election";

/// Short durations so a takeover takes seconds: a 4 s lease, a 2 s renew deadline, renewed
/// every half second.
pub const FAST_ELECTION: [&str; 6] = [
    "--leader-election-lease-duration",
    "4s",
    "--leader-election-renew-deadline",
    "2s",
    "--leader-election-retry-period",
    "500ms",
];

/// The lease duration of [`FAST_ELECTION`].
pub const FAST_LEASE: Duration = Duration::from_secs(4);

/// One `fluxop run` process; killed (after a SIGCONT, should it be paused) when dropped,
/// printing the tail of its log when the test failed.
pub struct Replica {
    child: Child,
    pub identity: String,
    pub metrics: SocketAddr,
    pub log: PathBuf,
}

impl Replica {
    /// Starts `fluxop run` for `namespace` with [`FAST_ELECTION`] as `identity`; returns once
    /// it serves `/healthz`.
    pub async fn start(namespace: &str, identity: &str) -> Self {
        let health: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let name = format!("{namespace}-{identity}");
        let cache = std::env::temp_dir().join(format!("fluxop-e2e-cache-{name}"));
        let log = std::env::temp_dir().join(format!("fluxop-e2e-{name}.log"));
        let log_file = std::fs::File::create(&log).expect("replica log file");
        let child = Command::new(fluxop_bin())
            .args(["run", "--namespace", namespace, "--log-format", "json"])
            .arg("--health-addr")
            .arg(health.to_string())
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .arg("--cache-dir")
            .arg(&cache)
            .args(FAST_ELECTION)
            .env("KUBECONFIG", kubeconfig_path())
            .env("POD_NAME", identity)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("fluxop starts");
        let replica = Self {
            child,
            identity: identity.to_string(),
            metrics,
            log,
        };
        eventually(
            Duration::from_secs(60),
            "fluxop /healthz to answer 200",
            || async { http_get(health, "/healthz").filter(|(status, _)| *status == 200) },
        )
        .await;
        replica
    }

    /// `fluxop_leader` on its `/metrics`: whether it says it leads (None: not answering).
    pub fn leads(&self) -> Option<bool> {
        let (_, body) = http_get(self.metrics, "/metrics")?;
        let line = body.lines().find(|l| l.starts_with("fluxop_leader "))?;
        Some(line.split_whitespace().nth(1)? == "1")
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {}", self.child.id());
    }

    /// SIGSTOP: the process stops running (its monotonic clock does not).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// Its exit status, once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Its log so far (JSON lines).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!(
                "--- {} log (last 30 lines, newest first) ---",
                self.identity
            );
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

/// The holder the Lease names, if any.
pub async fn holder(api: &Api<Lease>) -> Option<String> {
    api.get_opt(LEASE)
        .await
        .ok()
        .flatten()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Every write to the Lease after `resource_version`, for `window`: the holder each write left
/// (None: released). A watch from a resourceVersion sees every write, however brief.
pub async fn lease_writes(
    client: Client,
    namespace: String,
    resource_version: String,
    window: Duration,
) -> Vec<Option<String>> {
    let api = Api::<Lease>::namespaced(client, &namespace);
    let params = WatchParams::default()
        .fields(&format!("metadata.name={LEASE}"))
        .timeout(window.as_secs().max(1) as u32 + 5);
    let stream = api
        .watch(&params, &resource_version)
        .await
        .expect("watch the lease");
    let mut stream = stream.boxed();
    let mut holders = Vec::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Ok(Some(event))) = tokio::time::timeout_at(deadline, stream.try_next()).await {
        match event {
            WatchEvent::Added(lease) | WatchEvent::Modified(lease) => holders.push(
                lease
                    .spec
                    .and_then(|s| s.holder_identity)
                    .filter(|h| !h.is_empty()),
            ),
            WatchEvent::Deleted(_) => holders.push(None),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(error) => panic!("watching the lease: {error}"),
        }
    }
    holders
}
