//! The `fluxop` command line: the operator itself (`run`) and tools for people at a terminal.

mod artifact;
mod bootstrap;
mod bundle;
mod flux;
mod instance;
mod rset;
pub use instance::{EXIT_CHANGES, EXIT_REFUSED};
pub mod ops;
pub use bundle::BundleCommand;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::{
    api::{self, crds},
    controller,
    server::{self, Health, State},
    telemetry::{self, LogFormat, Metrics},
};

#[derive(Debug, Parser)]
#[command(
    name = "fluxop",
    version,
    about = "Installs, upgrades and reports on Flux, from signed OCI bundles"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator against the cluster of the in-cluster config or KUBECONFIG.
    Run(RunArgs),
    /// Print the CRDs of the fluxcd.controlplane.io/v1 API as YAML, or write them to a directory.
    Crds(CrdsArgs),
    /// Build Flux bundles: the OCI artifacts fluxop installs Flux from.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Publish manifests as Flux OCI artifacts: the source of a Gitless sync.
    #[command(subcommand)]
    Artifact(artifact::ArtifactCommand),
    /// Hand the FluxInstance to its own sync so that Flux manages itself: apply it once, wait
    /// until Flux runs and the sync Kustomization applies the instance from the source.
    Bootstrap(bootstrap::BootstrapArgs),
    /// Render offline what an instance installs.
    #[command(subcommand)]
    Build(BuildCommand),
    /// Show what applying an instance would change in a live cluster (server-side dry run).
    #[command(subcommand)]
    Diff(DiffCommand),
    /// Show the instance, the report, or Flux objects: `get instance`, `get report`,
    /// `get kustomizations`, `get source git NAME`, `get all -A`. With names, exits 4 when
    /// one is not Ready.
    Get(ops::GetCommandArgs),
    /// Ask for a reconcile now: `reconcile instance`, `reconcile ks NAME --with-source`.
    Reconcile(ops::ReconcileCommandArgs),
    /// Pause reconciliation: `suspend instance` (fluxop's `fluxcd.controlplane.io/reconcile:
    /// disabled`), `suspend ks NAME` (Flux's `spec.suspend`).
    Suspend(ops::SuspendCommandArgs),
    /// Resume reconciliation (and ask for a reconcile at once).
    Resume(ops::SuspendCommandArgs),
    /// The Kubernetes Events of Flux objects: `events ks NAME`.
    Events(ops::EventsArgs),
    /// The logs of a Flux controller's pods: `logs kustomize-controller --tail 50`.
    Logs(ops::LogsArgs),
    /// Wait until the instance is Ready; exit 4 on timeout.
    #[command(subcommand)]
    Wait(WaitCommand),
    /// Running, failing and suspended Flux objects per kind, from the cluster.
    Stats(ops::GetArgs),
    /// What the instance installed, grouped by kind.
    Tree(ops::GetArgs),
    /// Versions of this client, the operator and Flux in the cluster.
    Version(ops::GetArgs),
}

#[derive(Debug, Subcommand)]
pub enum WaitCommand {
    /// Wait for the FluxInstance to be Ready.
    Instance(ops::WaitArgs),
}

#[derive(Debug, Subcommand)]
pub enum DiffCommand {
    /// Compare what a FluxInstance installs with the cluster: `+` created, `~` changed (with
    /// the fields), `-` pruned (in the instance's inventory, no longer rendered, created by
    /// it). Exits 0 when nothing would change, 3 when something would, 2 when the API server
    /// would reject the manifest, 5 when the operator would refuse it (a minor downgrade
    /// from the Flux version installed), 1 on failure.
    Instance(DiffInstanceArgs),
}

#[derive(Debug, Args)]
pub struct DiffInstanceArgs {
    /// The FluxInstance manifest.
    #[arg(short, long)]
    pub file: PathBuf,
    /// A bundle directory to render from (default: the bundle embedded in fluxop).
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Namespace when the manifest names none.
    #[arg(long, default_value = api::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Kubeconfig of the cluster (default: KUBECONFIG or in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum BuildCommand {
    /// Print the objects a FluxInstance installs, as YAML, without a cluster. The manifest is
    /// checked first as the API server checks it (schema, unknown fields, CEL rules): exit 2
    /// naming each field and rule it breaks.
    Instance(BuildInstanceArgs),
    /// Print the objects a ResourceSet renders to, as YAML, without a cluster: inputs from
    /// the manifest, from `--inputs-from FILE` (a list of input sets) or from Static
    /// providers in `--inputs-from-provider FILE`.
    #[command(name = "rset", visible_alias = "resourceset")]
    Rset(rset::BuildRsetArgs),
}

#[derive(Debug, Args)]
pub struct BuildInstanceArgs {
    /// The FluxInstance manifest.
    #[arg(short, long)]
    pub file: PathBuf,
    /// A bundle directory to render from (default: the bundle embedded in fluxop).
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Namespace when the manifest names none.
    #[arg(long, default_value = api::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "yaml")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Namespace whose FluxInstance the operator reconciles.
    #[arg(long, env = "RUNTIME_NAMESPACE", default_value = api::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Address of the /metrics endpoint: loopback unless told otherwise (the Deployment and
    /// the chart listen on the pod's interfaces).
    #[arg(long, env = "FLUXOP_METRICS_ADDR", default_value = "127.0.0.1:8080")]
    pub metrics_addr: SocketAddr,
    /// Serve /metrics only to a bearer token whose user may `get` the non-resource URL
    /// /metrics (checked with a TokenReview and a SubjectAccessReview).
    #[arg(long, env = "FLUXOP_METRICS_AUTH")]
    pub metrics_auth: bool,
    /// Address of the /healthz and /readyz endpoints (in a pod, every interface: the kubelet
    /// probes the pod IP).
    #[arg(long, env = "FLUXOP_HEALTH_ADDR", default_value = "127.0.0.1:8081")]
    pub health_addr: SocketAddr,
    /// Directory of the bundle cache (content-addressed; survives restarts when on a volume).
    #[arg(long, env = "FLUXOP_CACHE_DIR", default_value = "/var/cache/fluxop")]
    pub cache_dir: PathBuf,
    /// Registry (host:port) to reach over plain HTTP instead of HTTPS (repeatable).
    #[arg(
        long = "insecure-registry",
        env = "FLUXOP_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// Secret in the operator's namespace whose `ca.crt` holds extra CA certificates for registries.
    #[arg(long, env = "FLUXOP_REGISTRY_CA_SECRET")]
    pub registry_ca_secret: Option<String>,
    /// Timeout of every registry request, in seconds.
    #[arg(long, env = "FLUXOP_REGISTRY_TIMEOUT", default_value_t = 60)]
    pub registry_timeout: u64,
    /// Secret in the operator's namespace whose `cosign.pub` every FluxInstance's
    /// distribution artifact must verify with, whatever the instance's `verify` says.
    #[arg(long, env = "FLUXOP_REQUIRED_SIGNATURE_SECRET")]
    pub required_signature_secret: Option<String>,
    /// Registry (`host[:port]`) or repository prefix (`host/path`) that distribution
    /// artifacts, `--instance-from` and the rendered container images may come from
    /// (repeatable; none: anywhere).
    #[arg(
        long = "allowed-registry",
        env = "FLUXOP_ALLOWED_REGISTRIES",
        value_delimiter = ','
    )]
    pub allowed_registries: Vec<String>,
    /// How often the FluxReport is refreshed (also after every reconcile that changed
    /// something; the report's `fluxcd.controlplane.io/reconcileEvery` annotation wins).
    #[arg(long, env = "FLUXOP_REPORTING_INTERVAL", default_value = "5m", value_parser = parse_interval)]
    pub reporting_interval: std::time::Duration,
    /// Take the FluxInstance from this signed OCI artifact (made with `fluxop bundle
    /// push-instance`) and follow its tag: fleets publish one artifact for all members.
    #[arg(
        long,
        env = "FLUXOP_INSTANCE_FROM",
        requires = "instance_from_key_secret"
    )]
    pub instance_from: Option<String>,
    /// Secret in the operator's namespace whose `cosign.pub` the instance artifact must
    /// verify with (required with --instance-from: unsigned instances are never applied).
    #[arg(long, env = "FLUXOP_INSTANCE_FROM_KEY_SECRET")]
    pub instance_from_key_secret: Option<String>,
    /// How often the instance artifact's tag is checked.
    #[arg(long, env = "FLUXOP_INSTANCE_FROM_INTERVAL", default_value = "1m", value_parser = parse_interval)]
    pub instance_from_interval: std::time::Duration,
    /// Also run the FluxFleet controller: this cluster is a fleet hub that rolls FluxInstances
    /// out to member clusters in waves.
    #[arg(long, env = "FLUXOP_FLEET_HUB")]
    pub fleet_hub: bool,
    /// Do not run the ResourceSet and ResourceSetInputProvider controllers.
    #[arg(long, env = "FLUXOP_NO_RESOURCESETS")]
    pub no_resourcesets: bool,
    /// The ServiceAccount (in each ResourceSet's namespace) a ResourceSet without
    /// `spec.serviceAccountName` applies as, instead of the operator's own rights.
    #[arg(long, env = "FLUXOP_DEFAULT_SERVICE_ACCOUNT")]
    pub default_service_account: Option<String>,
    /// Refuse (Stalled, ServiceAccountRequired) ResourceSets that would apply with the
    /// operator's own rights: every ResourceSet must name a ServiceAccount, or
    /// --default-service-account must be set (multi-tenant clusters).
    #[arg(long, env = "FLUXOP_REQUIRE_SERVICE_ACCOUNT")]
    pub require_service_account: bool,
    /// Where fluxop sends its own events besides Kubernetes (Flux's event format), instead of
    /// the instance's notification-controller Service (used only when the instance installs
    /// notification-controller): for an operator outside the cluster, or another receiver.
    #[arg(long, env = "NOTIFICATION_CONTROLLER_ADDRESS")]
    pub events_addr: Option<String>,
    /// Send fluxop's events to Kubernetes only, never to notification-controller.
    #[arg(long, env = "NOTIFICATIONS_DISABLED")]
    pub events_disabled: bool,
    /// Hold a Lease before reconciling, so that of several replicas only one writes.
    #[arg(long, env = "FLUXOP_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the Lease in the operator's namespace.
    #[arg(
        long,
        env = "FLUXOP_LEADER_ELECTION_ID",
        default_value = "fluxop-leader-election"
    )]
    pub leader_election_id: String,
    /// How long a standby waits, by its own clock, for a Lease that stopped changing before
    /// taking it over (whole seconds; default 15s).
    #[arg(long, env = "FLUXOP_LEADER_ELECTION_LEASE_DURATION", value_parser = parse_duration)]
    pub leader_election_lease_duration: Option<std::time::Duration>,
    /// How long the leader goes on without a successful renew before it stops leading
    /// (default 10s; shorter than the lease duration).
    #[arg(long, env = "FLUXOP_LEADER_ELECTION_RENEW_DEADLINE", value_parser = parse_duration)]
    pub leader_election_renew_deadline: Option<std::time::Duration>,
    /// How often the leader renews the Lease and a standby tries again (default 2s).
    #[arg(long, env = "FLUXOP_LEADER_ELECTION_RETRY_PERIOD", value_parser = parse_duration)]
    pub leader_election_retry_period: Option<std::time::Duration>,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "FLUXOP_LOG_FORMAT", value_enum, default_value = "auto")]
    pub log_format: LogFormat,
    /// Log level or filter directives (RUST_LOG wins when set).
    #[arg(long, env = "FLUXOP_LOG_LEVEL", default_value = "info,sigstore=warn")]
    pub log_level: String,
}

#[derive(Debug, Args)]
pub struct CrdsArgs {
    /// Write one `<group>_<plural>.yaml` per CRD into this directory instead of printing.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Logging(#[from] telemetry::TelemetryError),
    #[error("cannot load a Kubernetes config (in-cluster or KUBECONFIG): {0}")]
    KubeConfig(#[source] kube::Error),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot serialize CRD {name}: {source}")]
    Serialize {
        name: String,
        source: serde_saphyr::SerializeError,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} exists already; remove it or pick another --output-key-prefix")]
    Exists { path: PathBuf },
    #[error(transparent)]
    Reference(#[from] crate::bundle::reference::InvalidReference),
    #[error(transparent)]
    Registry(#[from] crate::bundle::registry::Error),
    #[error(transparent)]
    Signature(#[from] crate::bundle::signature::Error),
    #[error("cannot format the output: {0}")]
    Format(String),
    #[error("{path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{0}")]
    Build(String),
    #[error("{0}")]
    Usage(String),
    /// What the API server would refuse, each field with the rule it breaks.
    #[error(
        "{path}: the API server would reject this FluxInstance:{}",
        violations.iter().map(|v| format!("\n  {v}")).collect::<String>()
    )]
    Invalid {
        path: PathBuf,
        violations: Vec<api::validate::Violation>,
    },
    /// What the operator would refuse to install (a minor downgrade).
    #[error("the operator would refuse this instance: {0}")]
    Refused(String),
    #[error("{0}: stopping so that the new leader alone reconciles")]
    LeadershipLost(String),
    #[error("kubeconfig {path}: {reason}")]
    KubeconfigFile { path: PathBuf, reason: String },
    #[error(transparent)]
    Apply(#[from] crate::apply::Error),
    #[error("{dir}: {source}")]
    BundleArchive {
        dir: PathBuf,
        source: crate::bundle::archive::Error,
    },
    #[error("{dir}: {source}")]
    BundleLayout {
        dir: PathBuf,
        source: crate::bundle::layout::Error,
    },
}

impl Error {
    /// Exit codes scripts can trust: 1 for a failure at run time, 2 for bad usage
    /// (clap's own code for argument errors) and bad input (a manifest the API server would
    /// reject), [`EXIT_REFUSED`] for an instance the operator would refuse.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Logging(_)
            | Error::BundleLayout { .. }
            | Error::Reference(_)
            | Error::Exists { .. }
            | Error::Manifest { .. }
            | Error::Invalid { .. }
            | Error::Usage(_) => ExitCode::from(2),
            Error::Refused(_) => ExitCode::from(EXIT_REFUSED),
            _ => ExitCode::from(1),
        }
    }
}

/// Runs a command; its exit code (0, or a command's own such as `diff`'s 3) or an error.
pub async fn execute(cli: Cli) -> Result<ExitCode, Error> {
    let done = |result: Result<(), Error>| result.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Run(args) => done(run(args).await),
        Command::Crds(args) => done(print_crds(args)),
        Command::Bundle(command) => done(bundle::execute(command).await),
        Command::Artifact(command) => done(artifact::execute(command).await),
        Command::Bootstrap(args) => bootstrap::bootstrap(args).await,
        Command::Build(BuildCommand::Instance(args)) => instance::build(args),
        Command::Build(BuildCommand::Rset(args)) => rset::build(args),
        Command::Diff(DiffCommand::Instance(args)) => instance::diff(args).await,
        Command::Get(args) => ops::get_command(args).await,
        Command::Reconcile(args) => ops::reconcile_command(args).await,
        Command::Suspend(args) => ops::suspend_command(args, true).await,
        Command::Resume(args) => ops::suspend_command(args, false).await,
        Command::Events(args) => ops::events_command(args).await,
        Command::Logs(args) => ops::logs(args).await,
        Command::Wait(WaitCommand::Instance(args)) => ops::wait(args).await,
        Command::Stats(args) => ops::stats(args).await,
        Command::Tree(args) => ops::tree(args).await,
        Command::Version(args) => ops::version(args).await,
    }
}

fn print_crds(args: CrdsArgs) -> Result<(), Error> {
    let mut documents = Vec::new();
    for crd in crds::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let yaml = crds::to_yaml(&crd).map_err(|source| Error::Serialize { name, source })?;
        match &args.dir {
            Some(dir) => {
                let path = dir.join(crds::file_name(&crd));
                std::fs::write(&path, yaml).map_err(|source| Error::Write { path, source })?;
            }
            None => documents.push(yaml),
        }
    }
    if args.dir.is_none() {
        print!("---\n{}", documents.join("---\n"));
    }
    Ok(())
}

/// `-o` of commands that print objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

/// Prints `value` as JSON or YAML on stdout.
pub fn print_structured<T: Serialize>(value: &T, format: OutputFormat) -> Result<(), Error> {
    let text = match format {
        OutputFormat::Json => serde_json::to_string_pretty(value)
            .map(|t| t + "\n")
            .map_err(|e| Error::Format(e.to_string()))?,
        OutputFormat::Yaml | OutputFormat::Table => {
            crate::yaml::to_string(value).map_err(|e| Error::Format(e.to_string()))?
        }
    };
    print!("{text}");
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), Error> {
    let telemetry = telemetry::init(args.log.log_format, &args.log.log_level)?;
    let health = Arc::new(Health::new("FluxInstance cache not synced yet"));
    let metrics = Arc::new(Metrics::new());
    let config = kube::Config::infer()
        .await
        .map_err(|e| Error::KubeConfig(kube::Error::InferConfig(e)))?;
    let base_config = config.clone();
    let client = kube::client::ClientBuilder::try_from(config)
        .map_err(Error::KubeConfig)?
        .with_layer(&telemetry::CountRequests(metrics.client_requests.clone()))
        .build();
    let state = Arc::new(State {
        health: health.clone(),
        metrics: metrics.clone(),
        metrics_auth: args
            .metrics_auth
            .then(|| server::metrics_auth::MetricsAuth::new(client.clone())),
    });
    let metrics_listener =
        server::bind(args.metrics_addr)
            .await
            .map_err(|source| Error::Listen {
                addr: args.metrics_addr,
                source,
            })?;
    let health_listener = server::bind(args.health_addr)
        .await
        .map_err(|source| Error::Listen {
            addr: args.health_addr,
            source,
        })?;
    tracing::info!(
        namespace = %args.namespace,
        metrics = %args.metrics_addr,
        health = %args.health_addr,
        version = env!("CARGO_PKG_VERSION"),
        "fluxop starting"
    );
    let trust = controller::trust::Policy {
        signature_secret: args.required_signature_secret.clone(),
        allowed_registries: args.allowed_registries.clone(),
    };
    let instance_source = match (&args.instance_from, &args.instance_from_key_secret) {
        (Some(artifact), Some(key_secret)) => {
            let artifact = crate::bundle::reference::ArtifactRef::parse(artifact)?;
            trust
                .check_artifact(&artifact)
                .map_err(|why| Error::Usage(format!("--instance-from: {why}")))?;
            Some(controller::fleet::InstanceSource {
                artifact,
                key_secret: key_secret.clone(),
                interval: args.instance_from_interval,
            })
        }
        _ => None,
    };
    let context_client = client.clone();
    let forwarder = controller::forward::Forwarder::start(metrics.clone());
    let context = controller::Context {
        reporter: kube::runtime::events::Reporter {
            controller: "fluxop".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
        client,
        metrics,
        namespace: args.namespace.clone(),
        registries: controller::RegistrySettings {
            insecure: args.insecure_registries.clone(),
            ca_secret: args.registry_ca_secret.clone(),
            timeout: std::time::Duration::from_secs(args.registry_timeout),
        },
        trust,
        releases: controller::instance::ReleaseCache::default(),
        applier: crate::apply::Applier::new(context_client.clone(), api::constants::FIELD_MANAGER),
        instances: std::sync::OnceLock::new(),
        report_requested: Arc::new(tokio::sync::Notify::new()),
        drift_epoch: Default::default(),
        forwarder,
        forwarding: controller::forward::Settings {
            address: args.events_addr.clone(),
            disabled: args.events_disabled,
        },
        source: crate::bundle::source::Source {
            cache: crate::bundle::cache::Cache::new(&args.cache_dir),
            limits: crate::bundle::archive::Limits::default(),
            keep: 5,
        },
    };
    let resourcesets = (!args.no_resourcesets).then(|| {
        controller::resourceset::Context::new(
            context.client.clone(),
            base_config.clone(),
            context.metrics.clone(),
            context.reporter.clone(),
            args.default_service_account.clone(),
            args.require_service_account,
        )
    });
    let defaults = controller::lease::Timing::default();
    let timing = controller::lease::Timing {
        lease_duration: args
            .leader_election_lease_duration
            .unwrap_or(defaults.lease_duration),
        renew_deadline: args
            .leader_election_renew_deadline
            .unwrap_or(defaults.renew_deadline),
        retry_period: args
            .leader_election_retry_period
            .unwrap_or(defaults.retry_period),
    };
    timing.validate().map_err(Error::Usage)?;
    let election = args.leader_elect.then(|| {
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "fluxop".into());
            format!("{host}-{}", std::process::id())
        });
        controller::lease::LeaderElection::new(
            context.client.clone(),
            &args.namespace,
            &args.leader_election_id,
            &identity,
            timing,
        )
    });
    let leader_gauge = context.metrics.leader.clone();
    let lead = async {
        if let Some(election) = &election {
            // A standby serves metrics and is healthy: it counts as ready, so a Deployment
            // of several replicas becomes Available (readiness gates no traffic here).
            health.set_ready();
            election.acquire().await;
            health.set_not_ready("FluxInstance cache not synced yet");
        }
        leader_gauge.set(1);
        match &election {
            Some(election) => {
                let work = controller::run(
                    context,
                    health,
                    args.reporting_interval,
                    instance_source.clone(),
                    args.fleet_hub,
                    resourcesets,
                );
                // The controllers are dropped (and stop writing) as soon as leadership ends.
                election.lead(work).await.map_err(|lost| {
                    leader_gauge.set(0);
                    Error::LeadershipLost(lost)
                })
            }
            None => {
                controller::run(
                    context,
                    health,
                    args.reporting_interval,
                    instance_source.clone(),
                    args.fleet_hub,
                    resourcesets,
                )
                .await;
                Ok(())
            }
        }
    };
    let result = tokio::select! {
        _ = server::serve(metrics_listener, state.clone()) => Ok(()),
        _ = server::serve(health_listener, state) => Ok(()),
        result = lead => result,
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            Ok(())
        }
    };
    if let Some(election) = &election {
        election.release().await;
    }
    telemetry.shutdown().await;
    result
}

/// SIGTERM (the kubelet) or Ctrl-C (a person).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    api::duration::parse(text).map_err(|e| e.to_string())
}

/// A loop's interval: a duration of at least [`crate::policy::requeue::MIN_INTERVAL`].
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = parse_duration(text)?;
    let floor = crate::policy::requeue::MIN_INTERVAL;
    if interval < floor {
        return Err(format!(
            "{text} is shorter than {}s, the shortest interval fluxop polls at",
            floor.as_secs()
        ));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_polling_interval_below_the_floor_is_refused_with_the_floor_named() {
        assert_eq!(
            parse_interval("0s").unwrap_err(),
            "0s is shorter than 1s, the shortest interval fluxop polls at"
        );
        assert_eq!(
            parse_interval("90s"),
            Ok(std::time::Duration::from_secs(90))
        );
        assert!(parse_interval("soon").is_err());
    }
}
