//! Logs and metrics: JSON logs in the cluster, human logs on a terminal; one Prometheus
//! registry served on `/metrics`.

use std::io::IsTerminal;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
        info::Info,
    },
    registry::Registry,
};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable when stderr is a terminal, JSON otherwise.
    Auto,
    Json,
    Text,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid log level {level:?}: {source}")]
pub struct InvalidLogLevel {
    level: String,
    source: tracing_subscriber::filter::ParseError,
}

/// Installs the global subscriber. `level` is an `EnvFilter` directive (`info`,
/// `fluxop=debug,kube=info`); `RUST_LOG` wins when set.
pub fn init_logging(format: LogFormat, level: &str) -> Result<(), InvalidLogLevel> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => {
            EnvFilter::try_new(&env).map_err(|source| InvalidLogLevel { level: env, source })?
        }
        _ => EnvFilter::try_new(level).map_err(|source| InvalidLogLevel {
            level: level.into(),
            source,
        })?,
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .init();
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .init();
    }
    Ok(())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: String,
    pub result: String,
}

/// One Flux object, as `flux_resource_info` labels it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub kind: String,
    pub name: String,
    pub exported_namespace: String,
    pub ready: String,
    pub suspended: String,
    pub revision: String,
    pub source: String,
}

/// The instance, as `flux_instance_info` labels it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InstanceLabels {
    pub name: String,
    pub exported_namespace: String,
    pub ready: String,
    pub revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

/// The operator's metrics.
pub struct Metrics {
    pub registry: Registry,
    /// Reconciles by kind and result (`success`, `error`).
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Failed watch or list calls against the API server.
    pub watch_errors: Counter,
    /// Reconcile durations by kind.
    pub reconcile_duration: Family<KindLabels, Histogram>,
    /// One series (value 1) per Flux object; replaced wholesale by every report.
    pub resources: Family<ResourceLabels, Gauge>,
    /// One series (value 1) for the instance.
    pub instance: Family<InstanceLabels, Gauge>,
    /// How long computing a FluxReport takes.
    pub report_duration: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        registry.register(
            "flux_operator",
            "Build information of the running operator",
            Info::new(vec![
                ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
                ("name".to_string(), "fluxop".to_string()),
            ]),
        );
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "fluxop_reconciles",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        let watch_errors = Counter::default();
        registry.register(
            "fluxop_watch_errors",
            "Failed watch or list calls against the API server",
            watch_errors.clone(),
        );
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 14))
        });
        registry.register(
            "fluxop_reconcile_duration_seconds",
            "Reconcile durations by kind",
            reconcile_duration.clone(),
        );
        let resources = Family::<ResourceLabels, Gauge>::default();
        registry.register(
            "flux_resource_info",
            "Flux objects in the cluster, one series each, from the last report",
            resources.clone(),
        );
        let instance = Family::<InstanceLabels, Gauge>::default();
        registry.register(
            "flux_instance_info",
            "The FluxInstance: readiness and applied revision",
            instance.clone(),
        );
        let report_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register(
            "fluxop_report_duration_seconds",
            "Time to compute a FluxReport",
            report_duration.clone(),
        );
        Self {
            registry,
            reconciles,
            watch_errors,
            reconcile_duration,
            resources,
            instance,
            report_duration,
        }
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_encoded_in_openmetrics_text() {
        let metrics = Metrics::new();
        metrics
            .reconciles
            .get_or_create(&ReconcileLabels {
                kind: "FluxInstance".into(),
                result: "success".into(),
            })
            .inc();
        let text = metrics.encode();
        assert!(text.contains("flux_operator_info{version=\""), "{text}");
        assert!(
            text.contains("fluxop_reconciles_total{kind=\"FluxInstance\",result=\"success\"} 1"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
