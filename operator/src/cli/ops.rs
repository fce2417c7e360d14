//! Commands for people at a terminal working with a cluster: look at the instance, the
//! report and the Flux objects, request a reconcile, suspend and resume, wait. Results go to
//! stdout (tables, or `-o json|yaml`), progress to stderr. Exit codes: 0 Ready / done,
//! [`EXIT_NOT_READY`] when the thing asked about is not Ready, 1 on failure.

use std::{
    collections::BTreeMap,
    io::{IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Args;
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Condition, jiff::Timestamp};
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use serde_json::json;

use super::{Error, OutputFormat, flux, print_structured};
use crate::{
    api::{self, FluxInstance, FluxReport, SINGLETON_NAME, constants::annotation},
    apply::ObjectId,
    report::{self, collect},
};

/// Exit code when the instance (or report) asked about is not Ready.
pub const EXIT_NOT_READY: u8 = 4;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Namespace of the FluxInstance (the operator's) or of the Flux objects named.
    #[arg(short, long, default_value = api::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Kubeconfig of the cluster (default: KUBECONFIG or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

/// The first word of `get`, `reconcile`, `suspend`, `resume` and `events`: `instance` (the
/// FluxInstance), `report`, `resources`, or a Flux kind with names (`kustomization NAME`,
/// `ks NAME`, `source git NAME`, `helmreleases`, `all`), as the flux CLI spells them.
const WHAT_HELP: &str = "What to act on: `instance`, or a Flux kind and names (`kustomization NAME`, `ks NAME`, `source git NAME`, `sources`, `helmreleases`, `image policy NAME`, `all`); `get` also knows `report` and `resources`";

#[derive(Debug, Args)]
pub struct GetCommandArgs {
    #[arg(required = true, num_args = 1.., help = WHAT_HELP)]
    pub what: Vec<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ReconcileCommandArgs {
    #[arg(required = true, num_args = 1.., help = WHAT_HELP)]
    pub what: Vec<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Reconcile the object's source first and wait for it, so the object applies the
    /// source's newest revision.
    #[arg(long)]
    pub with_source: bool,
    /// Also allow recreating objects whose immutable fields changed (`forceAt`).
    #[arg(long)]
    pub force: bool,
    /// Wait for the reconcile to finish; exit 4 when it ends not Ready.
    #[arg(long)]
    pub wait: bool,
    /// How long to wait, e.g. `5m`.
    #[arg(long, default_value = "5m", value_parser = super::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct SuspendCommandArgs {
    #[arg(required = true, num_args = 1.., help = WHAT_HELP)]
    pub what: Vec<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Every object of the kind in the namespace.
    #[arg(long)]
    pub all: bool,
    /// (resume) Wait for the resumed objects to be reconciled; exit 4 when one is not Ready.
    #[arg(long)]
    pub wait: bool,
    /// How long to wait, e.g. `5m`.
    #[arg(long, default_value = "5m", value_parser = super::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[arg(required = true, num_args = 1.., help = WHAT_HELP)]
    pub what: Vec<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct GetResourcesArgs {
    #[command(flatten)]
    pub get: GetArgs,
    /// Across all namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Also allow recreating objects whose immutable fields changed (`forceAt`).
    #[arg(long)]
    pub force: bool,
    /// Wait for the reconcile to finish; exit 4 when it ends not Ready.
    #[arg(long)]
    pub wait: bool,
    /// How long to wait, e.g. `5m`.
    #[arg(long, default_value = "5m", value_parser = super::parse_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// How long to wait, e.g. `5m`.
    #[arg(long, default_value = "5m", value_parser = super::parse_duration)]
    pub timeout: Duration,
}

pub async fn client(cluster: &ClusterArgs) -> Result<Client, Error> {
    match &cluster.kubeconfig {
        Some(path) => {
            let unusable = |reason: String| Error::KubeconfigFile {
                path: path.clone(),
                reason,
            };
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|e| unusable(e.to_string()))?;
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| unusable(e.to_string()))?;
            kube::Client::try_from(config).map_err(Error::KubeConfig)
        }
        None => kube::Client::try_default().await.map_err(Error::KubeConfig),
    }
}

fn cluster_error(what: &str) -> impl Fn(kube::Error) -> Error + '_ {
    move |e| Error::Build(format!("{what}: {e}"))
}

/// Columns padded to their widest cell; the header in bold on a terminal.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == cells.len() {
                    c.to_string()
                } else {
                    format!("{c:<width$}", width = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("   ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header.to_vec()) + "\n";
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
        out += "\n";
    }
    out
}

/// `True` green, `False` red, on a terminal only.
pub(super) fn colored(status: &str) -> String {
    if !std::io::stdout().is_terminal() {
        return status.to_string();
    }
    match status {
        "True" => format!("\x1b[32m{status}\x1b[0m"),
        "False" => format!("\x1b[31m{status}\x1b[0m"),
        _ => status.to_string(),
    }
}

fn ready_condition(conditions: Option<&Vec<Condition>>) -> Option<&Condition> {
    conditions?.iter().find(|c| c.type_ == "Ready")
}

fn age(created: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    created.map_or(String::new(), |t| age_since(t.0))
}

/// The age of an RFC 3339 timestamp (`2m`, `3h`), empty when there is none.
pub(super) fn age_of(created: Option<&str>) -> String {
    created
        .and_then(|t| t.parse::<Timestamp>().ok())
        .map_or(String::new(), age_since)
}

fn age_since(created: Timestamp) -> String {
    let seconds = Timestamp::now().as_second() - created.as_second();
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Is the instance Ready for its current generation?
fn instance_ready(instance: &FluxInstance) -> Option<bool> {
    let ready = ready_condition(instance.status.as_ref()?.conditions.as_ref())?;
    if ready.observed_generation.is_some()
        && ready.observed_generation != instance.metadata.generation
    {
        return None;
    }
    match ready.status.as_str() {
        "True" => Some(true),
        "False" => Some(false),
        _ => None,
    }
}

pub async fn get_instance(args: GetArgs) -> Result<ExitCode, Error> {
    let client = client(&args.cluster).await?;
    let api = Api::<FluxInstance>::namespaced(client, &args.cluster.namespace);
    let instance = api
        .get_opt(SINGLETON_NAME)
        .await
        .map_err(cluster_error("reading the FluxInstance"))?
        .ok_or_else(|| {
            Error::Build(format!(
                "no FluxInstance {}/{SINGLETON_NAME}",
                args.cluster.namespace
            ))
        })?;
    if args.output == OutputFormat::Table {
        let status = instance.status.clone().unwrap_or_default();
        let ready = ready_condition(status.conditions.as_ref());
        print!(
            "{}",
            table(
                &["NAME", "READY", "STATUS", "REVISION", "AGE"],
                &[vec![
                    SINGLETON_NAME.to_string(),
                    colored(ready.map_or("Unknown", |c| c.status.as_str())),
                    ready.map_or(String::new(), |c| c.message.clone()),
                    status.last_applied_revision.clone().unwrap_or_default(),
                    age(instance.metadata.creation_timestamp.as_ref()),
                ]],
            )
        );
    } else {
        print_structured(&instance, args.output)?;
    }
    Ok(match instance_ready(&instance) {
        Some(true) => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_NOT_READY),
    })
}

pub async fn get_report(args: GetArgs) -> Result<ExitCode, Error> {
    let client = client(&args.cluster).await?;
    let api = Api::<FluxReport>::namespaced(client, &args.cluster.namespace);
    let report = api
        .get_opt(SINGLETON_NAME)
        .await
        .map_err(cluster_error("reading the FluxReport"))?
        .ok_or_else(|| {
            Error::Build(format!(
                "no FluxReport {}/{SINGLETON_NAME}: is fluxop running?",
                args.cluster.namespace
            ))
        })?;
    if args.output != OutputFormat::Table {
        print_structured(&report, args.output)?;
        return Ok(ExitCode::SUCCESS);
    }
    let spec = &report.spec;
    let distribution = &spec.distribution;
    println!(
        "Flux: {} {} (managed by {})",
        distribution.status,
        distribution.version.as_deref().unwrap_or("-"),
        distribution.managed_by.as_deref().unwrap_or("-")
    );
    if let Some(cluster) = &spec.cluster {
        println!(
            "Cluster: Kubernetes {} {} with {} nodes",
            cluster.server_version,
            cluster.platform,
            cluster.nodes.unwrap_or(0)
        );
    }
    if let Some(sync) = &spec.sync {
        println!(
            "Sync: {} {} ready={} {}",
            sync.id,
            sync.source.as_deref().unwrap_or("-"),
            sync.ready,
            sync.status
        );
    }
    let components: Vec<Vec<String>> = spec
        .components
        .iter()
        .flatten()
        .map(|c| {
            vec![
                c.name.clone(),
                colored(if c.ready { "True" } else { "False" }),
                c.image.clone(),
            ]
        })
        .collect();
    println!();
    print!("{}", table(&["CONTROLLER", "READY", "IMAGE"], &components));
    println!();
    print!("{}", stats_table(spec));
    Ok(ExitCode::SUCCESS)
}

fn stats_table(spec: &api::FluxReportSpec) -> String {
    let rows: Vec<Vec<String>> = spec
        .reconcilers
        .iter()
        .flatten()
        .map(|r| {
            let stats = r.stats.clone().unwrap_or_default();
            vec![
                r.kind.clone(),
                r.api_version.clone(),
                stats.running.to_string(),
                stats.failing.to_string(),
                stats.suspended.to_string(),
                stats.total_size.unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(
        &[
            "KIND",
            "API VERSION",
            "RUNNING",
            "FAILING",
            "SUSPENDED",
            "STORAGE",
        ],
        &rows,
    )
}

async fn observe(client: &Client, namespace: &str) -> Result<report::Observed, Error> {
    collect::observe(client, namespace, None, collect::embedded_versions())
        .await
        .map_err(cluster_error("listing Flux objects"))
}

pub async fn get_resources(args: GetResourcesArgs) -> Result<ExitCode, Error> {
    let client = client(&args.get.cluster).await?;
    let observed = observe(&client, &args.get.cluster.namespace).await?;
    let namespace = &args.get.cluster.namespace;
    let mut rows = Vec::new();
    let mut structured = Vec::new();
    for (api_version, kind, objects) in &observed.reconcilers {
        for object in objects {
            if !args.all_namespaces && &object.namespace != namespace {
                continue;
            }
            rows.push(vec![
                kind.clone(),
                object.namespace.clone(),
                object.name.clone(),
                colored(&object.ready),
                object.suspended.to_string(),
                object.revision.clone(),
            ]);
            structured.push(json!({
                "apiVersion": api_version, "kind": kind, "namespace": object.namespace,
                "name": object.name, "ready": object.ready, "reason": object.ready_reason,
                "suspended": object.suspended, "revision": object.revision, "source": object.source,
            }));
        }
    }
    if args.get.output == OutputFormat::Table {
        print!(
            "{}",
            table(
                &[
                    "KIND",
                    "NAMESPACE",
                    "NAME",
                    "READY",
                    "SUSPENDED",
                    "REVISION"
                ],
                &rows
            )
        );
    } else {
        print_structured(&structured, args.get.output)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn stats(args: GetArgs) -> Result<ExitCode, Error> {
    let client = client(&args.cluster).await?;
    let observed = observe(&client, &args.cluster.namespace).await?;
    let spec = report::spec(&observed);
    if args.output == OutputFormat::Table {
        print!("{}", stats_table(&spec));
    } else {
        print_structured(&spec.reconcilers, args.output)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn tree(args: GetArgs) -> Result<ExitCode, Error> {
    let client = client(&args.cluster).await?;
    let api = Api::<FluxInstance>::namespaced(client, &args.cluster.namespace);
    let instance = api
        .get(SINGLETON_NAME)
        .await
        .map_err(cluster_error("reading the FluxInstance"))?;
    let entries = instance
        .status
        .and_then(|s| s.inventory)
        .map(|i| i.entries)
        .unwrap_or_default();
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in &entries {
        if let Some(id) = ObjectId::parse_inventory_id(&entry.id) {
            let name = if id.namespace.is_empty() {
                id.name.clone()
            } else {
                format!("{}/{}", id.namespace, id.name)
            };
            by_kind.entry(id.kind.clone()).or_default().push(name);
        }
    }
    if args.output != OutputFormat::Table {
        print_structured(&by_kind, args.output)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("FluxInstance/{}/{SINGLETON_NAME}", args.cluster.namespace);
    let kinds = by_kind.len();
    for (k, (kind, names)) in by_kind.iter().enumerate() {
        let last_kind = k + 1 == kinds;
        println!(
            "{} {kind} ({})",
            if last_kind { "└──" } else { "├──" },
            names.len()
        );
        for (n, name) in names.iter().enumerate() {
            let branch = if last_kind { "    " } else { "│   " };
            let leaf = if n + 1 == names.len() {
                "└──"
            } else {
                "├──"
            };
            println!("{branch}{leaf} {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn version(args: GetArgs) -> Result<ExitCode, Error> {
    let client_version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let (operator, flux) = match client(&args.cluster).await {
        Ok(client) => {
            let report = Api::<FluxReport>::namespaced(client, &args.cluster.namespace)
                .get_opt(SINGLETON_NAME)
                .await
                .ok()
                .flatten();
            (
                report
                    .as_ref()
                    .and_then(|r| r.spec.operator.as_ref())
                    .map(|o| o.version.clone()),
                report.and_then(|r| r.spec.distribution.version),
            )
        }
        Err(_) => (None, None),
    };
    let versions = json!({
        "client": client_version,
        "operator": operator,
        "flux": flux,
    });
    if args.output == OutputFormat::Table {
        println!("client: {client_version}");
        println!("operator: {}", operator.as_deref().unwrap_or("unknown"));
        println!("flux: {}", flux.as_deref().unwrap_or("unknown"));
    } else {
        print_structured(&versions, args.output)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn annotate(
    client: &Client,
    namespace: &str,
    annotations: serde_json::Value,
) -> Result<(), Error> {
    Api::<FluxInstance>::namespaced(client.clone(), namespace)
        .patch(
            SINGLETON_NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": annotations } })),
        )
        .await
        .map_err(cluster_error("annotating the FluxInstance"))?;
    Ok(())
}

pub async fn suspend(args: ClusterArgs, suspended: bool) -> Result<ExitCode, Error> {
    let client = client(&args).await?;
    let value = if suspended {
        json!(annotation::DISABLED_VALUE)
    } else {
        serde_json::Value::Null
    };
    annotate(
        &client,
        &args.namespace,
        json!({ annotation::RECONCILE: value }),
    )
    .await?;
    eprintln!(
        "► FluxInstance {}/{SINGLETON_NAME} {}",
        args.namespace,
        if suspended { "suspended" } else { "resumed" }
    );
    Ok(ExitCode::SUCCESS)
}

/// A progress line on stderr: rewritten in place on a terminal, a line every 10 s otherwise.
struct Progress {
    started: Instant,
    last_line: Option<Instant>,
    terminal: bool,
    frame: usize,
}

impl Progress {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_line: None,
            terminal: std::io::stderr().is_terminal(),
            frame: 0,
        }
    }

    fn show(&mut self, what: &str) {
        const FRAMES: [&str; 4] = ["|", "/", "-", "\\"];
        let elapsed = self.started.elapsed().as_secs();
        if self.terminal {
            self.frame = (self.frame + 1) % FRAMES.len();
            eprint!("\r\x1b[2K{} {what} ({elapsed}s)", FRAMES[self.frame]);
            let _ = std::io::stderr().flush();
        } else if self
            .last_line
            .is_none_or(|l| l.elapsed() >= Duration::from_secs(10))
        {
            eprintln!("◎ {what} ({elapsed}s)");
            self.last_line = Some(Instant::now());
        }
    }

    fn done(&self) {
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Waits until `done` says the instance reached its end state: `Some(true)` Ready,
/// `Some(false)` not Ready.
async fn wait_for(
    api: &Api<FluxInstance>,
    timeout: Duration,
    done: impl Fn(&FluxInstance) -> Option<bool>,
) -> Result<ExitCode, Error> {
    let mut progress = Progress::new();
    let mut wait = crate::poll::Deadline::after(timeout, Duration::from_millis(500));
    loop {
        let instance = api
            .get(SINGLETON_NAME)
            .await
            .map_err(cluster_error("reading the FluxInstance"))?;
        let message = instance
            .status
            .as_ref()
            .and_then(|s| ready_condition(s.conditions.as_ref()))
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "waiting for the first status".into());
        if let Some(ready) = done(&instance) {
            progress.done();
            eprintln!("{} {message}", if ready { "✔" } else { "✗" });
            return Ok(if ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_NOT_READY)
            });
        }
        progress.show(&message);
        if let Err(timed_out) = wait.pause().await {
            progress.done();
            eprintln!("✗ {timed_out}: {message}");
            return Ok(ExitCode::from(EXIT_NOT_READY));
        }
    }
}

pub async fn wait(args: WaitArgs) -> Result<ExitCode, Error> {
    let client = client(&args.cluster).await?;
    let api = Api::<FluxInstance>::namespaced(client, &args.cluster.namespace);
    wait_for(&api, args.timeout, |i| {
        instance_ready(i).filter(|ready| *ready)
    })
    .await
}

pub async fn reconcile(args: ReconcileArgs) -> Result<ExitCode, Error> {
    let client = client(&args.cluster).await?;
    let now = Timestamp::now().to_string();
    let mut annotations = json!({ annotation::REQUESTED_AT: now });
    if args.force {
        annotations[annotation::FORCE_AT] = json!(now);
    }
    annotate(&client, &args.cluster.namespace, annotations).await?;
    eprintln!("► reconcile requested at {now}");
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let api = Api::<FluxInstance>::namespaced(client, &args.cluster.namespace);
    wait_for(&api, args.timeout, |instance| {
        let handled = instance
            .status
            .as_ref()
            .and_then(|s| s.last_handled_reconcile_at.as_deref());
        (handled == Some(now.as_str())).then(|| instance_ready(instance) == Some(true))
    })
    .await
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The controller: `source-controller`, `kustomize-controller`, ... (its pods' `app` label).
    pub controller: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Lines from the end of each pod's log.
    #[arg(long, default_value_t = 100)]
    pub tail: i64,
    /// Only lines newer than this, e.g. `10m`.
    #[arg(long, value_parser = super::parse_duration)]
    pub since: Option<Duration>,
}

/// `logs CONTROLLER`: the log of each of the controller's pods, oldest pod first.
pub async fn logs(args: LogsArgs) -> Result<ExitCode, Error> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{ListParams, LogParams};
    let client = client(&args.cluster).await?;
    let pods = Api::<Pod>::namespaced(client, &args.cluster.namespace);
    let mut list = pods
        .list(&ListParams::default().labels(&format!("app={}", args.controller)))
        .await
        .map_err(cluster_error("listing pods"))?
        .items;
    if list.is_empty() {
        return Err(Error::Build(format!(
            "no pods of {} in {}",
            args.controller, args.cluster.namespace
        )));
    }
    list.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let several = list.len() > 1;
    for pod in &list {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let params = LogParams {
            tail_lines: Some(args.tail),
            since_seconds: args.since.map(|d| d.as_secs() as i64),
            ..LogParams::default()
        };
        let text = pods
            .logs(&name, &params)
            .await
            .map_err(cluster_error(&format!("reading the log of {name}")))?;
        for line in text.lines() {
            if several {
                println!("{name} {line}");
            } else {
                println!("{line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The FluxInstance's own verbs answer to `instance` (and its kind's name).
fn names_instance(what: &[String]) -> bool {
    what.first().is_some_and(|w| {
        w.eq_ignore_ascii_case("instance") || w.eq_ignore_ascii_case("fluxinstance")
    })
}

/// The cluster's Flux kinds and what `what` selects of them.
async fn flux_selection(
    cluster: &ClusterArgs,
    what: &[String],
) -> Result<(flux::Cluster, flux::Selection), Error> {
    let cluster = flux::Cluster::connect(client(cluster).await?).await?;
    let selection = flux::select(what, &cluster.served).map_err(Error::Usage)?;
    Ok((cluster, selection))
}

pub async fn get_command(args: GetCommandArgs) -> Result<ExitCode, Error> {
    let get = GetArgs {
        cluster: args.cluster,
        output: args.output,
    };
    match args.what[0].to_ascii_lowercase().as_str() {
        "report" | "fluxreport" => get_report(get).await,
        "resources" => {
            get_resources(GetResourcesArgs {
                get,
                all_namespaces: args.all_namespaces,
            })
            .await
        }
        _ if names_instance(&args.what) => get_instance(get).await,
        _ => {
            let (cluster, selection) = flux_selection(&get.cluster, &args.what).await?;
            flux::get(
                &cluster,
                &selection,
                &get.cluster.namespace,
                args.all_namespaces,
                get.output,
            )
            .await
        }
    }
}

pub async fn reconcile_command(args: ReconcileCommandArgs) -> Result<ExitCode, Error> {
    if names_instance(&args.what) {
        return reconcile(ReconcileArgs {
            cluster: args.cluster,
            force: args.force,
            wait: args.wait,
            timeout: args.timeout,
        })
        .await;
    }
    let (cluster, selection) = flux_selection(&args.cluster, &args.what).await?;
    let options = flux::ReconcileOptions {
        with_source: args.with_source,
        force: args.force,
        wait: args.wait,
        timeout: args.timeout,
    };
    flux::reconcile(&cluster, &selection, &args.cluster.namespace, &options).await
}

pub async fn suspend_command(args: SuspendCommandArgs, suspended: bool) -> Result<ExitCode, Error> {
    if names_instance(&args.what) {
        return suspend(args.cluster, suspended).await;
    }
    let (cluster, selection) = flux_selection(&args.cluster, &args.what).await?;
    flux::set_suspended(
        &cluster,
        &selection,
        &args.cluster.namespace,
        args.all,
        suspended,
        args.wait.then_some(args.timeout),
    )
    .await
}

pub async fn events_command(args: EventsArgs) -> Result<ExitCode, Error> {
    let (cluster, selection) = flux_selection(&args.cluster, &args.what).await?;
    flux::events(&cluster, &selection, &args.cluster.namespace, args.output).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_every_column_but_the_last() {
        let text = table(
            &["KIND", "NAME", "READY"],
            &[
                vec!["GitRepository".into(), "a".into(), "True".into()],
                vec!["Bucket".into(), "longer-name".into(), "False".into()],
            ],
        );
        assert_eq!(
            text,
            "KIND            NAME          READY\n\
             GitRepository   a             True\n\
             Bucket          longer-name   False\n"
        );
    }
}
