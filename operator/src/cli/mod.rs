//! The `fluxop` command line: the operator itself (`run`) and tools for people at a terminal.

mod bundle;
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
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Namespace whose FluxInstance the operator reconciles.
    #[arg(long, env = "RUNTIME_NAMESPACE", default_value = api::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Address of the /metrics endpoint.
    #[arg(long, env = "FLUXOP_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Address of the /healthz and /readyz endpoints.
    #[arg(long, env = "FLUXOP_HEALTH_ADDR", default_value = "0.0.0.0:8081")]
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
    Logging(#[from] telemetry::InvalidLogLevel),
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
    /// (clap's own code for argument errors).
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Logging(_)
            | Error::BundleLayout { .. }
            | Error::Reference(_)
            | Error::Exists { .. } => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

pub async fn execute(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Crds(args) => print_crds(args),
        Command::Bundle(command) => bundle::execute(command).await,
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
            serde_saphyr::to_string(value).map_err(|e| Error::Format(e.to_string()))?
        }
    };
    print!("{text}");
    Ok(())
}

async fn run(args: RunArgs) -> Result<(), Error> {
    telemetry::init_logging(args.log.log_format, &args.log.log_level)?;
    let client = kube::Client::try_default()
        .await
        .map_err(Error::KubeConfig)?;
    let health = Arc::new(Health::new("FluxInstance cache not synced yet"));
    let metrics = Arc::new(Metrics::new());
    let state = Arc::new(State {
        health: health.clone(),
        metrics: metrics.clone(),
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
    let context = controller::Context {
        recorder: kube::runtime::events::Recorder::new(
            client.clone(),
            kube::runtime::events::Reporter {
                controller: "fluxop".into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        ),
        client,
        metrics,
        namespace: args.namespace.clone(),
        registries: controller::RegistrySettings {
            insecure: args.insecure_registries.clone(),
            ca_secret: args.registry_ca_secret.clone(),
            timeout: std::time::Duration::from_secs(args.registry_timeout),
        },
        source: crate::bundle::source::Source {
            cache: crate::bundle::cache::Cache::new(&args.cache_dir),
            limits: crate::bundle::archive::Limits::default(),
            keep: 5,
        },
    };
    tokio::select! {
        _ = server::serve(metrics_listener, state.clone()) => {}
        _ = server::serve(health_listener, state) => {}
        _ = controller::run(context, health) => {}
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
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
