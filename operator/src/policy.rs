//! The IO policy in one place: how long fluxop waits on registries and the API server, how
//! much it reads, how it pages, how it backs off and when it comes back. Every module that
//! does IO takes its numbers from here, so a reviewer can audit them in one read.

use std::time::Duration;

/// Registries (bundles, signatures, instance artifacts, tags).
pub mod registry {
    use super::Duration;

    /// Connect and read timeout of each request (`--registry-timeout` overrides it).
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    /// The largest bundle layer downloaded at all (the manifest's declared size is checked
    /// first, and the body is cut off at the declared size while it streams); its share of
    /// fluxop's memory is set in [`super::memory`].
    pub const MAX_LAYER_BYTES: u64 = super::memory::MAX_LAYER_BYTES;
    /// Manifests, signature manifests and token responses are small JSON documents.
    pub const MAX_SMALL_BODY_BYTES: u64 = 4 << 20;
    /// A signature manifest may list this many cosign signature layers; one with more is
    /// refused before any layer is downloaded (cosign caps them too, since
    /// CVE-2024-29902/29903).
    pub const MAX_SIGNATURE_LAYERS: usize = 32;
    /// Each signature layer: a SimpleSigning payload of a few hundred bytes. With the count
    /// above, at most 2 MiB of signatures are read per verification.
    pub const MAX_SIGNATURE_LAYER_BYTES: u64 = 64 << 10;
    /// Tags are listed this many per page.
    pub const TAG_PAGE: usize = 100;
    /// A whole fetch of an artifact (resolve, signature, manifest, layer) ends within this
    /// many request timeouts, however slowly the registry sends: the request timeout alone
    /// bounds each wait, not a registry that drips one byte at a time.
    pub const FETCH_DEADLINE_FACTOR: u32 = 4;
}

/// fluxop's memory: the container limit in `deploy/` and the chart, and what one bundle may
/// take of it. While a bundle is unpacked it is in memory twice (the compressed layer and its
/// files), and one release of it once more while it is parsed and rendered; these caps keep
/// that, on top of what the operator holds anyway, under the limit (checked at compile time
/// below; a unit test checks that `deploy/` and the chart set this limit). An operator serves
/// one namespace, which holds one FluxInstance (named `flux`), so one bundle is in hand at a
/// time.
pub mod memory {
    /// `resources.limits.memory` of fluxop's container.
    pub const CONTAINER_LIMIT_BYTES: u64 = 256 << 20;
    /// What the operator holds without a bundle: runtime, watch caches, HTTP clients (about
    /// 30 MiB measured on the test bed), with room to spare.
    pub const OPERATOR_BYTES: u64 = 64 << 20;
    /// The compressed bundle layer (four Flux releases take well under 1 MiB).
    pub const MAX_LAYER_BYTES: u64 = 64 << 20;
    /// Its files once unpacked: in all, each, and how many.
    pub const MAX_UNPACKED_BYTES: u64 = 64 << 20;
    pub const MAX_FILE_BYTES: u64 = 16 << 20;
    pub const MAX_FILES: usize = 10_000;
    /// The tar headers before each file, with PAX and GNU long-name records (which the tar
    /// reader reads whole) and the padding of the file before.
    pub const MAX_ENTRY_HEADER_BYTES: u64 = 64 << 10;
    /// One release parsed and rendered: its objects take a few times their YAML text.
    pub const RENDER_BYTES: u64 = 48 << 20;

    const _: () = assert!(
        OPERATOR_BYTES + MAX_LAYER_BYTES + MAX_UNPACKED_BYTES + RENDER_BYTES
            <= CONTAINER_LIMIT_BYTES
    );
    const _: () = assert!(MAX_FILE_BYTES <= MAX_UNPACKED_BYTES);
}

/// The Kubernetes API.
pub mod kube {
    use super::Duration;

    /// Objects per page when listing (storage migration, finalizers, reports).
    pub const LIST_PAGE: u32 = 500;
    /// Requests in flight at once while applying or checking one stage.
    pub const APPLY_CONCURRENCY: usize = 6;
    /// How long freshly applied CRDs may take to be served.
    pub const CRD_ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(60);
    /// How long an object deleted to be recreated (`forceAt`) may take to be gone.
    pub const RECREATE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Attempts of a write guarded by a resourceVersion or uid precondition (ownership
    /// takeover, prune) when the object keeps changing between the read and the write.
    pub const CONFLICT_ATTEMPTS: usize = 3;
    /// While the operator is not ready after a watch error: how often the API server is asked
    /// whether it answers again, and how long each probe may take.
    pub const READINESS_PROBE: Duration = Duration::from_secs(2);
    pub const READINESS_PROBE_TIMEOUT: Duration = Duration::from_secs(10);
    /// How long uninstall waits for the Flux controllers' pods to be gone before it strips
    /// finalizers (then it fails and the deletion is retried).
    pub const CONTROLLERS_GONE_TIMEOUT: Duration = Duration::from_secs(120);
}

/// When a FluxInstance is reconciled again.
pub mod requeue {
    use super::Duration;

    /// The first retry of a failure, and the longest wait between retries ([`retry_after`]).
    pub const FAILURE_BASE: Duration = Duration::from_secs(30);
    pub const FAILURE_MAX: Duration = Duration::from_secs(10 * 60);
    /// After a newer request interrupted the health checks.
    pub const CANCELED: Duration = Duration::from_secs(1);
    /// After an error writing status or a finalizer (the controller's error policy).
    pub const ERROR: Duration = Duration::from_secs(30);
    /// The shortest `reconcileEvery`, `reconcileArtifactEvery` and report or follower
    /// interval: shorter ones (`0s`) are raised to it, so no loop spins on the API server
    /// or the registry.
    pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
}

/// fluxop's own HTTP endpoints (`/metrics`, `/healthz`, `/readyz`).
pub mod http {
    use super::Duration;

    /// A request's headers arrive within this, or the connection is closed.
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
    /// A connection is closed after this long (a scrape or a probe takes milliseconds).
    pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
    /// Connections served at once (kubelet probes and a few scrapers need a handful).
    pub const MAX_CONNECTIONS: usize = 64;
    /// What a connection may buffer of a request (hyper's minimum).
    pub const MAX_BUFFER_BYTES: usize = 8192;
    /// Pauses after a failed accept: doubling from the first to the last.
    pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
    pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
}

/// FluxFleet hub: reaching member clusters.
pub mod fleet {
    use super::Duration;

    /// Connect and read timeouts of a member client: short, so an unreachable member does not
    /// hold up the others.
    pub const MEMBER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const MEMBER_READ_TIMEOUT: Duration = Duration::from_secs(15);
}

/// fluxop's events forwarded to notification-controller (`controller::forward`).
pub mod events {
    use super::Duration;

    /// Events waiting for delivery; more are dropped (and counted) rather than waited for.
    pub const QUEUE: usize = 64;
    /// Connect and whole-request timeout of one delivery attempt (Flux's recorder: 5 s).
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    /// Attempts per event on connection errors and 5xx answers, waiting `RETRY_BASE`, then
    /// twice that, between them.
    pub const ATTEMPTS: u32 = 3;
    pub const RETRY_BASE: Duration = Duration::from_millis(500);
}

/// When to retry something that has been failing for `failing_for` (since its condition
/// turned False): as long again as it has failed so far, so retries thin out exponentially,
/// between [`requeue::FAILURE_BASE`] and [`requeue::FAILURE_MAX`]. Derived from the
/// condition's transition time, it needs no counter and survives restarts.
pub fn retry_after(failing_for: Duration) -> Duration {
    failing_for.clamp(requeue::FAILURE_BASE, requeue::FAILURE_MAX)
}

/// Leader election among replicas (a `coordination.k8s.io/v1` Lease, on client-go's scheme:
/// see `controller::lease`). The `--leader-election-*` flags override these.
pub mod leader {
    use super::Duration;

    /// How long a candidate waits, by its own monotonic clock, for a lease record that has
    /// stopped changing before it takes the lease over.
    pub const LEASE_DURATION: Duration = Duration::from_secs(15);
    /// How long the leader goes on leading without a successful renew. Shorter than
    /// [`LEASE_DURATION`]: the margin is what keeps two replicas from leading at once.
    pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
    /// How often the leader renews, and a candidate tries again.
    pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_thin_out_as_a_failure_lasts() {
        let s = Duration::from_secs;
        assert_eq!(retry_after(s(0)), s(30));
        assert_eq!(retry_after(s(30)), s(30));
        assert_eq!(retry_after(s(61)), s(61));
        assert_eq!(retry_after(s(3600)), s(600));
    }

    #[test]
    fn the_deployment_and_the_chart_set_the_memory_limit_the_caps_are_sized_for() {
        let expected = format!("{}Mi", memory::CONTAINER_LIMIT_BYTES >> 20);
        for file in ["deploy/deployment.yaml", "charts/fluxop/values.yaml"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(file);
            let text = std::fs::read_to_string(&path).expect("readable");
            let limits = text
                .split("limits:")
                .nth(1)
                .unwrap_or_else(|| panic!("{file} sets no limits"));
            let limit = limits
                .lines()
                .find_map(|line| line.trim().strip_prefix("memory:"))
                .map(str::trim);
            assert_eq!(limit, Some(expected.as_str()), "{file}");
        }
    }
}
