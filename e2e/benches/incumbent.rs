//! Bench: fluxop next to the incumbent, the Flux Operator's operator (`flux-operator`
//! v0.58.1, built from the Go module proxy by `hack/testbed-build.sh
//! flux-operator-controller`), in one run. Each operator gets a fresh local cluster started
//! the same way (`hack/cluster-up.sh --audit --client NAME`: kwok nodes, the API server's
//! audit log, a client certificate of the operator's own), runs as a process on this machine
//! with leader election off, and reconciles the same `FluxInstance`: Flux 2.9.x from one
//! distribution artifact in the local registry (`fluxop bundle push` of `manifests-bundle/`,
//! the layout both read). Measured per operator: apply → Ready=True; the API requests
//! (from the audit log, by the operator's user) of the install and of each of five forced
//! reconciles (`reconcile.fluxcd.io/requestedAt` until `status.lastHandledReconcileAt`
//! matches); drift revert after `kubectl scale --replicas=0` and after `kubectl delete
//! deployment` (capped); the process's peak and current RSS and CPU time. The incumbent
//! forwards the instance's Events to notification-controller over HTTP; off-cluster that
//! address does not resolve, so it is pointed (`NOTIFICATION_CONTROLLER_ADDRESS`) at a local
//! stand-in that answers at once, as the receiver in a cluster would. Run with
//! `hack/bench.sh incumbent`; prints figures, asserts nothing.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fluxop_e2e::{
    cluster::{OwnCluster, free_port, http_get, instance_yaml},
    fluxop, fluxop_bin, registry_address, state_root, unique_repository,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use serde_json::Value;

const RECONCILES: usize = 5;
const DRIFT_CAP: Duration = Duration::from_secs(120);
/// After the instance reports a request handled, requests still caused by it (Events, the
/// report refresh) are given this long to arrive before the window closes.
const SETTLE: Duration = Duration::from_secs(3);
const DRIFTED: &str = "source-controller";

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Fluxop,
    Incumbent,
}

impl Side {
    /// Also the user name of the operator's client certificate.
    fn user(self) -> &'static str {
        match self {
            Side::Fluxop => "fluxop",
            Side::Incumbent => "flux-operator",
        }
    }
}

/// Stands in for notification-controller's event receiver, which the incumbent POSTs each
/// Event of the instance to (in a cluster, the notification-controller it installed; here
/// no controller runs and its Service name does not resolve on this machine, so every POST
/// would wait out the retries). Answers 202 at once, like the receiver; counts the POSTs.
fn event_sink() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the event sink");
    let address = listener.local_addr().expect("sink address");
    let posts = Arc::new(AtomicU64::new(0));
    let counter = posts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(&stream);
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                let header = line.trim_end().to_ascii_lowercase();
                if header.is_empty() {
                    break;
                }
                if let Some(value) = header.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = (&stream).write_all(
                b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (address, posts)
}

/// An operator process on this machine; killed when dropped.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with its output in a log file named after `name`; returns once
    /// `/healthz` on `health` answers 200.
    fn start(mut command: Command, name: &str, health: SocketAddr) -> Self {
        let log = std::env::temp_dir().join(format!("fluxop-bench-{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .expect("the operator starts");
        let mut process = Self { child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(health, "/healthz").is_none_or(|(status, _)| status != 200) {
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!("{name} exited ({status}); its log: {}", process.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "{name}'s /healthz did not answer within 60 s; its log: {}",
                process.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        process
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// (`VmHWM`, `VmRSS`) in KiB.
    fn memory_kib(&self) -> Option<(u64, u64)> {
        fluxop_e2e::cluster::process_memory_kib(self.child.id())
    }

    /// User plus system CPU time so far, in seconds.
    fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        let hz = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(100.0);
        Some(ticks / hz)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests of one client in a window of the audit log.
#[derive(Default, Clone)]
struct Counts {
    requests: u64,
    /// Create, update, patch, delete that were not dry runs, Events aside.
    writes: u64,
    dry_runs: u64,
    events: u64,
    /// `verb resource` (`patch(dry-run)`, `resource/subresource`) → count.
    by_kind: BTreeMap<String, u64>,
}

/// The API server's audit log (one event per request, at RequestReceived).
struct Audit {
    path: PathBuf,
}

impl Audit {
    fn offset(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// The requests of `user` logged since `from` (complete lines only).
    fn since(&self, from: u64, user: &str) -> Counts {
        let bytes = std::fs::read(&self.path).expect("the audit log");
        let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut counts = Counts::default();
        let start = (from as usize).min(end);
        for line in String::from_utf8_lossy(&bytes[start..end]).lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if event["user"]["username"].as_str() != Some(user) {
                continue;
            }
            let verb = event["verb"].as_str().unwrap_or("?");
            let mut resource = event["objectRef"]["resource"]
                .as_str()
                .map_or_else(|| "<non-resource>".to_string(), str::to_string);
            if let Some(sub) = event["objectRef"]["subresource"].as_str() {
                resource = format!("{resource}/{sub}");
            }
            let uri = event["requestURI"].as_str().unwrap_or_default();
            let dry_run = uri.contains("dryRun=All");
            let mutating = matches!(
                verb,
                "create" | "update" | "patch" | "delete" | "deletecollection"
            );
            counts.requests += 1;
            if mutating && dry_run {
                counts.dry_runs += 1;
            } else if mutating && resource == "events" {
                counts.events += 1;
            } else if mutating {
                counts.writes += 1;
            }
            let verb = if dry_run {
                format!("{verb}(dry-run)")
            } else {
                verb.to_string()
            };
            *counts
                .by_kind
                .entry(format!("{verb} {resource}"))
                .or_default() += 1;
        }
        counts
    }
}

struct Figures {
    install: Duration,
    install_counts: Counts,
    reconcile_times: Vec<Duration>,
    reconciles: Vec<Counts>,
    scale: Option<Duration>,
    delete: Option<Duration>,
    memory_kib: Option<(u64, u64)>,
    cpu_seconds: Option<f64>,
    /// Events POSTed to the stand-in for notification-controller.
    posted_events: u64,
}

fn instances(client: &Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("fluxcd.controlplane.io", "v1", "FluxInstance");
    Api::namespaced_with(client.clone(), "flux-system", &ApiResource::from_gvk(&gvk))
}

/// Ready=True for the current generation.
fn ready(instance: &DynamicObject) -> bool {
    let generation = instance.metadata.generation;
    instance.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"] == "Ready"
                && c["status"] == "True"
                && c["observedGeneration"].as_i64() == generation
        })
}

fn conditions(instance: Option<&DynamicObject>) -> String {
    instance
        .and_then(|i| i.data["status"]["conditions"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            format!(
                "{}={} {}: {}",
                c["type"], c["status"], c["reason"], c["message"]
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Polls the instance `flux` every 100 ms until `check`; panics after `timeout`.
async fn wait_instance(
    api: &Api<DynamicObject>,
    timeout: Duration,
    what: &str,
    process: &Process,
    check: impl Fn(&DynamicObject) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let instance = api.get_opt("flux").await.ok().flatten();
        if instance.as_ref().is_some_and(&check) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; conditions: {}\noperator log (tail):\n{}",
            conditions(instance.as_ref()),
            process.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Forces a reconcile and waits until the instance reports it handled and Ready.
async fn forced_reconcile(
    cluster: &OwnCluster,
    api: &Api<DynamicObject>,
    process: &Process,
    value: &str,
) -> Duration {
    let started = Instant::now();
    cluster.request_reconcile("fluxinstance/flux", value);
    wait_instance(
        api,
        Duration::from_secs(300),
        "the reconcile request",
        process,
        |i| i.data["status"]["lastHandledReconcileAt"].as_str() == Some(value) && ready(i),
    )
    .await;
    started.elapsed()
}

/// Runs `kubectl <args>` (the drift), then polls the drifted Deployment every 20 ms until
/// `reverted`; `None` when it was not within [`DRIFT_CAP`].
async fn drift(
    cluster: &OwnCluster,
    deployments: &Api<Deployment>,
    args: &[&str],
    reverted: impl Fn(Option<&Deployment>) -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    cluster.kubectl_ok(args);
    while started.elapsed() < DRIFT_CAP {
        let deployment = deployments.get_opt(DRIFTED).await.ok().flatten();
        if reverted(deployment.as_ref()) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// fluxop's bundle cache, and the incumbent's (empty) Docker config, for `cluster`.
fn scratch_dirs(cluster: &OwnCluster) -> [PathBuf; 2] {
    let temp = std::env::temp_dir();
    [
        temp.join(format!("fluxop-bench-cache-{}", cluster.name)),
        temp.join(format!("fluxop-bench-docker-{}", cluster.name)),
    ]
}

fn start_operator(side: Side, cluster: &OwnCluster, events: SocketAddr) -> Process {
    let [cache, docker] = scratch_dirs(cluster);
    let kubeconfig = state_root()
        .join("clusters")
        .join(&cluster.name)
        .join("clients")
        .join(format!("{}.kubeconfig", side.user()));
    let (health, metrics) = (free_port(), free_port());
    let health: SocketAddr = format!("127.0.0.1:{health}").parse().expect("addr");
    let registry = registry_address();
    let command = match side {
        Side::Fluxop => {
            let _ = std::fs::remove_dir_all(&cache);
            let mut command = Command::new(fluxop_bin());
            command
                .args(["run", "--namespace", "flux-system", "--log-format", "json"])
                .args(["--leader-elect", "false", "--insecure-registry", &registry])
                .arg("--health-addr")
                .arg(health.to_string())
                .arg("--metrics-addr")
                .arg(format!("127.0.0.1:{metrics}"))
                .arg("--cache-dir")
                .arg(cache)
                .env("POD_NAME", format!("fluxop-{}", cluster.name))
                .env_remove("RUST_LOG");
            command
        }
        Side::Incumbent => {
            // An empty Docker config: no credentials of this machine reach the registry.
            std::fs::create_dir_all(&docker).expect("docker config dir");
            let mut command = Command::new(fluxop_e2e::incumbent_operator_bin());
            command
                .args(["--enable-leader-election=false", "--web-server-port=0"])
                .arg(format!("--health-addr={health}"))
                .arg(format!("--metrics-addr=127.0.0.1:{metrics}"))
                .arg(format!(
                    "--storage-path={}",
                    fluxop_e2e::incumbent_operator_dir("data").display()
                ))
                .env("RUNTIME_NAMESPACE", "flux-system")
                .env(
                    "NOTIFICATION_CONTROLLER_ADDRESS",
                    format!("http://{events}/"),
                )
                .env("DOCKER_CONFIG", docker)
                .env_remove("KUBERNETES_SERVICE_HOST");
            command
        }
    };
    let mut command = command;
    command.env("KUBECONFIG", &kubeconfig);
    Process::start(command, &cluster.name, health)
}

/// Replaces fluxop's CRDs of `fluxcd.controlplane.io` (the cluster starts with them) with
/// the incumbent's own.
fn install_incumbent_crds(cluster: &OwnCluster) {
    let ours = cluster.kubectl_ok(&["get", "crd", "-o", "name"]);
    for crd in ours
        .lines()
        .filter(|c| c.ends_with(".fluxcd.controlplane.io"))
    {
        cluster.kubectl_ok(&["delete", crd, "--wait=true"]);
    }
    let dir = fluxop_e2e::incumbent_operator_dir("crds");
    cluster.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "bench",
        "-f",
        dir.to_str().expect("utf-8 path"),
    ]);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd",
        "fluxinstances.fluxcd.controlplane.io",
        "fluxreports.fluxcd.controlplane.io",
    ]);
}

async fn measure(side: Side, artifact: &str) -> Figures {
    let prefix = match side {
        Side::Fluxop => "bench-vs-fluxop",
        Side::Incumbent => "bench-vs-incumbent",
    };
    let cluster = OwnCluster::start_with(prefix, &["--audit", "--client", side.user()]).await;
    let audit = Audit {
        path: state_root()
            .join("clusters")
            .join(&cluster.name)
            .join("logs/audit.log"),
    };
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    if side == Side::Incumbent {
        install_incumbent_crds(&cluster);
    }
    let (events, posts) = event_sink();
    let process = start_operator(side, &cluster, events);
    let api = instances(&client);
    let deployments = Api::<Deployment>::namespaced(client.clone(), "flux-system");
    let registry = registry_address();
    let instance = instance_yaml(
        "flux-system",
        &format!(
            "  distribution:\n    version: \"2.9.x\"\n    registry: {registry}/fluxcd\n    variant: upstream-alpine\n    artifact: {artifact}\n"
        ),
    );
    let user = side.user();

    let from = audit.offset();
    let started = Instant::now();
    cluster.apply(&instance);
    wait_instance(&api, Duration::from_secs(300), "install", &process, |i| {
        ready(i)
            && i.data["status"]["lastAppliedRevision"]
                .as_str()
                .is_some_and(|r| r.starts_with("v2.9.4@"))
    })
    .await;
    let install = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let install_counts = audit.since(from, user);

    let (mut reconcile_times, mut reconciles) = (Vec::new(), Vec::new());
    for round in 0..RECONCILES {
        let from = audit.offset();
        let value = format!("bench-{round}");
        reconcile_times.push(forced_reconcile(&cluster, &api, &process, &value).await);
        tokio::time::sleep(SETTLE).await;
        reconciles.push(audit.since(from, user));
    }

    let scale = drift(
        &cluster,
        &deployments,
        &[
            "scale",
            &format!("deployment/{DRIFTED}"),
            "-n",
            "flux-system",
            "--replicas=0",
        ],
        |d| d.and_then(|d| d.spec.as_ref()?.replicas) == Some(1),
    )
    .await;
    if scale.is_none() {
        forced_reconcile(&cluster, &api, &process, "bench-restore-scale").await;
    }
    let uid = deployments
        .get(DRIFTED)
        .await
        .expect("the drifted Deployment")
        .metadata
        .uid;
    let delete = drift(
        &cluster,
        &deployments,
        &["delete", "deployment", DRIFTED, "-n", "flux-system"],
        |d| d.is_some_and(|d| d.metadata.uid != uid && d.metadata.deletion_timestamp.is_none()),
    )
    .await;
    if delete.is_none() {
        forced_reconcile(&cluster, &api, &process, "bench-restore-delete").await;
    }
    let figures = Figures {
        install,
        install_counts,
        reconcile_times,
        reconciles,
        scale,
        delete,
        memory_kib: process.memory_kib(),
        cpu_seconds: process.cpu_seconds(),
        posted_events: posts.load(Ordering::Relaxed),
    };
    drop(process);
    for dir in scratch_dirs(&cluster) {
        let _ = std::fs::remove_dir_all(dir);
    }
    figures
}

fn mean(values: impl Iterator<Item = u64>) -> f64 {
    let values: Vec<u64> = values.collect();
    values.iter().sum::<u64>() as f64 / values.len().max(1) as f64
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ratio(fluxop: f64, incumbent: f64) -> String {
    if fluxop > 0.0 {
        format!("{:.1}×", incumbent / fluxop)
    } else {
        "—".into()
    }
}

fn breakdown(reconciles: &[Counts]) -> String {
    let mut total: BTreeMap<&str, u64> = BTreeMap::new();
    for counts in reconciles {
        for (kind, n) in &counts.by_kind {
            *total.entry(kind).or_default() += n;
        }
    }
    let mut out = String::new();
    for (kind, n) in total {
        let _ = write!(out, "{kind} {:.1}, ", n as f64 / reconciles.len() as f64);
    }
    out.trim_end_matches(", ").to_string()
}

fn print(fluxop: &Figures, incumbent: &Figures) {
    println!(
        "fluxop next to the Flux Operator v0.58.1 (both processes on this machine, leader election off;"
    );
    println!(
        "one fresh kwok cluster each, started the same way; Flux 2.9.x from the same OCI artifact)\n"
    );
    println!("| | fluxop | Flux Operator | Flux Operator / fluxop |");
    println!("|---|---|---|---|");
    let seconds = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!(
        "| install → Ready (apply to Ready=True) | {} | {} | {} |",
        seconds(fluxop.install),
        seconds(incumbent.install),
        ratio(
            fluxop.install.as_secs_f64(),
            incumbent.install.as_secs_f64()
        )
    );
    let row = |name: &str, a: f64, b: f64| {
        println!("| {name} | {a:.1} | {b:.1} | {} |", ratio(a, b));
    };
    let counts = |name: &str, a: u64, b: u64| {
        println!("| {name} | {a} | {b} | {} |", ratio(a as f64, b as f64));
    };
    counts(
        "API requests of the install",
        fluxop.install_counts.requests,
        incumbent.install_counts.requests,
    );
    counts(
        "  of which writes (no dry runs, no Events)",
        fluxop.install_counts.writes,
        incumbent.install_counts.writes,
    );
    let (a, b) = (
        median(fluxop.reconcile_times.clone()),
        median(incumbent.reconcile_times.clone()),
    );
    println!(
        "| forced reconcile → handled, median of {RECONCILES} | {} | {} | {} |",
        seconds(a),
        seconds(b),
        ratio(a.as_secs_f64(), b.as_secs_f64())
    );
    let per = |f: &Figures, pick: fn(&Counts) -> u64| mean(f.reconciles.iter().map(pick));
    row(
        "API requests per forced reconcile (mean)",
        per(fluxop, |c| c.requests),
        per(incumbent, |c| c.requests),
    );
    row(
        "  writes (no dry runs, no Events)",
        per(fluxop, |c| c.writes),
        per(incumbent, |c| c.writes),
    );
    row(
        "  dry-run writes",
        per(fluxop, |c| c.dry_runs),
        per(incumbent, |c| c.dry_runs),
    );
    row(
        "  Events written",
        per(fluxop, |c| c.events),
        per(incumbent, |c| c.events),
    );
    let revert = |d: Option<Duration>| {
        d.map_or(
            format!("not reverted within {} s", DRIFT_CAP.as_secs()),
            seconds,
        )
    };
    let revert_ratio = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => ratio(a.as_secs_f64(), b.as_secs_f64()),
        (Some(a), None) => format!("> {:.0}×", DRIFT_CAP.as_secs_f64() / a.as_secs_f64()),
        _ => "—".into(),
    };
    println!(
        "| drift: `kubectl scale --replicas=0` reverted | {} | {} | {} |",
        revert(fluxop.scale),
        revert(incumbent.scale),
        revert_ratio(fluxop.scale, incumbent.scale)
    );
    println!(
        "| drift: `kubectl delete deployment` recreated | {} | {} | {} |",
        revert(fluxop.delete),
        revert(incumbent.delete),
        revert_ratio(fluxop.delete, incumbent.delete)
    );
    let mib = |m: Option<(u64, u64)>, peak: bool| {
        m.map(|(p, c)| (if peak { p } else { c }) as f64 / 1024.0)
    };
    for (name, peak) in [
        ("peak RSS (VmHWM), MiB", true),
        ("RSS at the end (VmRSS), MiB", false),
    ] {
        match (
            mib(fluxop.memory_kib, peak),
            mib(incumbent.memory_kib, peak),
        ) {
            (Some(a), Some(b)) => row(name, a, b),
            _ => println!("| {name} | ? | ? | |"),
        }
    }
    match (fluxop.cpu_seconds, incumbent.cpu_seconds) {
        (Some(a), Some(b)) => println!(
            "| CPU time of the operator, whole run | {a:.2} s | {b:.2} s | {} |",
            ratio(a, b)
        ),
        _ => println!("| CPU time of the operator, whole run | ? | ? | |"),
    }
    println!(
        "\nFlux Operator: {} Events POSTed to notification-controller's address (a local stand-in \
         answering 202) during the run; fluxop: {}",
        incumbent.posted_events, fluxop.posted_events
    );
    for (name, f) in [("fluxop", fluxop), ("Flux Operator", incumbent)] {
        let times: Vec<String> = f.reconcile_times.iter().map(|d| seconds(*d)).collect();
        println!("{name}: forced reconciles took {}", times.join(", "));
        let counts: Vec<String> = f
            .reconciles
            .iter()
            .map(|c| format!("{}/{}", c.requests, c.writes))
            .collect();
        println!(
            "{name}: requests/writes per reconcile {}",
            counts.join(", ")
        );
        println!(
            "{name}: per reconcile by verb and resource: {}",
            breakdown(&f.reconciles)
        );
        println!(
            "{name}: install by verb and resource: {}",
            breakdown(std::slice::from_ref(&f.install_counts))
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let registry = registry_address();
        let repository = unique_repository("bench-incumbent");
        let bundle = fluxop_e2e::repo_root().join("manifests-bundle");
        let artifact = format!("oci://{registry}/{repository}:latest");
        fluxop(&[
            "bundle",
            "push",
            bundle.to_str().expect("utf-8 path"),
            &artifact,
            "--insecure",
        ]);
        let ours = measure(Side::Fluxop, &artifact).await;
        let theirs = measure(Side::Incumbent, &artifact).await;
        print(&ours, &theirs);
    });
}
