//! The `fluxop` command line: the operator itself (`run`) and tools for people at a terminal.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Args, Parser, Subcommand};

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

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Pack a bundle directory (flux/<version>/, flux-images/<version>/, templates/) into the
    /// artifact's layer, deterministically: the same files always give the same digest.
    Build(BundleBuildArgs),
}

#[derive(Debug, Args)]
pub struct BundleBuildArgs {
    /// The bundle directory, e.g. manifests-bundle/ after hack/vendor-flux.sh.
    pub dir: PathBuf,
    /// Where to write the layer (a gzip'd tar).
    #[arg(short, long, default_value = "bundle.tar.gz")]
    pub output: PathBuf,
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
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "FLUXOP_LOG_FORMAT", value_enum, default_value = "auto")]
    pub log_format: LogFormat,
    /// Log level or filter directives (RUST_LOG wins when set).
    #[arg(long, env = "FLUXOP_LOG_LEVEL", default_value = "info")]
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
            Error::Logging(_) | Error::BundleLayout { .. } => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

pub async fn execute(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Crds(args) => print_crds(args),
        Command::Bundle(BundleCommand::Build(args)) => build_bundle(args),
    }
}

fn build_bundle(args: BundleBuildArgs) -> Result<(), Error> {
    use crate::bundle::{archive, layout::Bundle};
    let dir = args.dir;
    let files = archive::read_dir(&dir).map_err(|source| Error::BundleArchive {
        dir: dir.clone(),
        source,
    })?;
    let bundle = Bundle::from_files(files).map_err(|source| Error::BundleLayout {
        dir: dir.clone(),
        source,
    })?;
    let layer = archive::pack(bundle.files());
    std::fs::write(&args.output, &layer).map_err(|source| Error::Write {
        path: args.output.clone(),
        source,
    })?;
    let versions: Vec<String> = bundle.versions().iter().map(|v| format!("v{v}")).collect();
    println!(
        "wrote {} ({} files, {} bytes)",
        args.output.display(),
        bundle.files().len(),
        layer.len()
    );
    println!("digest: {}", archive::digest(&layer));
    println!("flux versions: {}", versions.join(", "));
    Ok(())
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
    tokio::select! {
        _ = server::serve(metrics_listener, state.clone()) => {}
        _ = server::serve(health_listener, state) => {}
        _ = controller::run(client, &args.namespace, health, metrics) => {}
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
