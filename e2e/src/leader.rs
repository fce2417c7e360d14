//! Replicas of fluxop as local processes against the test cluster, for leader election:
//! each with its own identity (`POD_NAME`), metrics port and log file, and its PID at hand so
//! a test can pause it (SIGSTOP) and resume it (SIGCONT) the way a frozen VM or a stalled
//! node would. Also what the tests read of the Lease.

use std::{process::ExitStatus, time::Duration};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, Client,
    api::{WatchEvent, WatchParams},
};

use crate::{
    cluster::{Operator, run_fluxop},
    kubeconfig_path,
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

/// One `fluxop run` process against the shared test cluster, with [`FAST_ELECTION`]: an
/// [`Operator`] (killed when dropped, its log tail printed when the test failed) that can be
/// paused and resumed.
pub struct Replica {
    pub operator: Operator,
    pub identity: String,
}

impl Replica {
    /// Starts `fluxop run` for `namespace` as `identity`; returns once it serves `/healthz`.
    pub async fn start(namespace: &str, identity: &str) -> Self {
        // The process id keeps the log file this run's own: tests read it.
        let name = format!("{namespace}-{identity}-{}", std::process::id());
        let operator = run_fluxop(
            &kubeconfig_path(),
            &name,
            identity,
            namespace,
            &FAST_ELECTION,
            &[],
        )
        .await;
        Self {
            operator,
            identity: identity.to_string(),
        }
    }

    /// `fluxop_leader` on its `/metrics`: whether it says it leads (None: not answering).
    pub fn leads(&self) -> Option<bool> {
        let line = self.operator.metric("fluxop_leader ")?;
        Some(line.split_whitespace().nth(1)? == "1")
    }

    /// SIGSTOP: the process stops running (its monotonic clock does not).
    pub fn pause(&self) {
        assert!(self.operator.signal("STOP"), "kill -STOP {}", self.identity);
    }

    /// SIGCONT.
    pub fn resume(&self) {
        assert!(self.operator.signal("CONT"), "kill -CONT {}", self.identity);
    }

    /// Its exit status, once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.operator.exited()
    }

    /// Its log so far (JSON lines).
    pub fn log_text(&self) -> String {
        self.operator.log_text()
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
