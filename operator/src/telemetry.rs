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
pub enum TelemetryError {
    #[error("invalid log level {level:?}: {source}")]
    LogLevel {
        level: String,
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("OTLP trace exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// Keeps the trace exporter alive; [`Telemetry::shutdown`] flushes the spans still queued.
#[derive(Default)]
pub struct Telemetry {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes queued spans. The batch processor runs on the runtime, so the blocking
    /// shutdown call is made off it.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = flushed {
                eprintln!("flushing traces failed: {error}");
            }
        }
    }
}

/// Where traces go: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`
/// (the standard variables, read by the exporter itself); none means no tracing export.
fn otlp_endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// OTLP over HTTP (protobuf), batched on the tokio runtime. Must be called inside it.
fn tracer_provider(
    endpoint: &str,
) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, TelemetryError> {
    use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| TelemetryError::Exporter {
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
        })?;
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("fluxop")
                .build(),
        )
        .build())
}

/// Installs the global subscriber: logs (JSON or text) filtered by `level` (an `EnvFilter`
/// directive; `RUST_LOG` wins when set), and spans exported over OTLP when an endpoint is
/// configured. Call it inside the tokio runtime.
pub fn init(format: LogFormat, level: &str) -> Result<Telemetry, TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => EnvFilter::try_new(&env)
            .map_err(|source| TelemetryError::LogLevel { level: env, source })?,
        _ => EnvFilter::try_new(level).map_err(|source| TelemetryError::LogLevel {
            level: level.into(),
            source,
        })?,
    };
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let provider = otlp_endpoint().map(|e| tracer_provider(&e)).transpose()?;
    let traces = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer().with_tracer(provider.tracer("fluxop"))
    });
    let (json_logs, text_logs) = if json {
        (
            Some(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            ),
            None,
        )
    } else {
        (None, Some(fmt::layer().with_writer(std::io::stderr)))
    };
    tracing_subscriber::registry()
        .with(traces)
        .with(filter)
        .with(json_logs)
        .with(text_logs)
        .init();
    if let Some(endpoint) = otlp_endpoint() {
        tracing::info!(%endpoint, "exporting traces over OTLP");
    }
    Ok(Telemetry { provider })
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

/// A ResourceSet, as `flux_resourceset_info` labels it (the incumbent's labels).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceSetLabels {
    pub uid: String,
    pub kind: String,
    pub name: String,
    pub exported_namespace: String,
    pub ready: String,
    pub reason: String,
    pub suspended: String,
    pub resources: String,
    pub revision: String,
}

/// A ResourceSetInputProvider, as `flux_resourcesetinputprovider_info` labels it.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InputProviderLabels {
    pub uid: String,
    pub kind: String,
    pub name: String,
    pub exported_namespace: String,
    pub ready: String,
    pub reason: String,
    pub suspended: String,
    pub url: String,
}

/// A request of fluxop's Kubernetes client, by method and response code (`error` when no
/// response came back).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientRequestLabels {
    pub method: String,
    pub code: String,
}

/// A tower layer on the Kubernetes client that counts its requests.
#[derive(Clone)]
pub struct CountRequests(pub Family<ClientRequestLabels, Counter>);

impl<S> tower::Layer<S> for CountRequests {
    type Service = CountedService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CountedService {
            inner,
            requests: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct CountedService<S> {
    inner: S,
    requests: Family<ClientRequestLabels, Counter>,
}

impl<S, B, R> tower::Service<http::Request<B>> for CountedService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.method().to_string();
        let requests = self.requests.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            let code = match &response {
                Ok(r) => r.status().as_u16().to_string(),
                Err(_) => "error".to_string(),
            };
            requests
                .get_or_create(&ClientRequestLabels { method, code })
                .inc();
            response
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
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
    /// One series (value 1) per Flux object; replaced by every report through
    /// [`Metrics::replace_resources`].
    pub resources: Family<ResourceLabels, Gauge>,
    /// The series `resources` holds now, so a report removes only the stale ones: a scrape
    /// never sees the family half rebuilt.
    resource_series: std::sync::Mutex<std::collections::HashSet<ResourceLabels>>,
    /// One series (value 1) for the instance.
    pub instance: Family<InstanceLabels, Gauge>,
    /// How long computing a FluxReport takes.
    pub report_duration: Histogram,
    /// Requests of the Kubernetes client.
    pub client_requests: Family<ClientRequestLabels, Counter>,
    /// 1 while this replica leads (or runs without leader election), 0 while it stands by.
    pub leader: Gauge,
    /// Events forwarded to notification-controller, by result (`delivered`, `failed`,
    /// `dropped`).
    pub events_forwarded: Family<ResultLabels, Counter>,
    /// One series (value 1) per ResourceSet.
    pub resourcesets: Family<ResourceSetLabels, Gauge>,
    /// One series (value 1) per ResourceSetInputProvider.
    pub input_providers: Family<InputProviderLabels, Gauge>,
    /// The current series of each `namespace/name`, so a new one replaces it.
    resourceset_series: std::sync::Mutex<std::collections::HashMap<String, ResourceSetLabels>>,
    input_provider_series: std::sync::Mutex<std::collections::HashMap<String, InputProviderLabels>>,
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
        let client_requests = Family::<ClientRequestLabels, Counter>::default();
        registry.register(
            "fluxop_kube_client_requests",
            "Requests of fluxop's Kubernetes client by method and response code",
            client_requests.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "fluxop_leader",
            "1 while this replica leads and reconciles, 0 while it stands by",
            leader.clone(),
        );
        let events_forwarded = Family::<ResultLabels, Counter>::default();
        registry.register(
            "fluxop_events_forwarded",
            "fluxop's events sent to notification-controller, by result (delivered, failed, dropped)",
            events_forwarded.clone(),
        );
        let resourcesets = Family::<ResourceSetLabels, Gauge>::default();
        registry.register(
            "flux_resourceset_info",
            "ResourceSets: readiness, applied revision and object count",
            resourcesets.clone(),
        );
        let input_providers = Family::<InputProviderLabels, Gauge>::default();
        registry.register(
            "flux_resourcesetinputprovider_info",
            "ResourceSetInputProviders: readiness and source",
            input_providers.clone(),
        );
        Self {
            registry,
            events_forwarded,
            resourcesets,
            input_providers,
            resourceset_series: Default::default(),
            input_provider_series: Default::default(),
            reconciles,
            watch_errors,
            reconcile_duration,
            resources,
            resource_series: Default::default(),
            instance,
            report_duration,
            client_requests,
            leader,
        }
    }

    /// Makes `flux_resource_info` hold exactly `series`: new ones are added before stale
    /// ones are removed, and series present in both stay untouched.
    pub fn replace_resources(&self, series: impl IntoIterator<Item = ResourceLabels>) {
        let next: std::collections::HashSet<ResourceLabels> = series.into_iter().collect();
        let mut current = self
            .resource_series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for labels in &next {
            self.resources.get_or_create(labels).set(1);
        }
        for stale in current.difference(&next) {
            self.resources.remove(stale);
        }
        *current = next;
    }

    /// Makes the ResourceSet's `flux_resourceset_info` series the one of `status`.
    pub fn set_resourceset(
        &self,
        rset: &crate::api::resourceset::ResourceSet,
        status: &crate::api::resourceset::ResourceSetStatus,
    ) {
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready");
        let labels = ResourceSetLabels {
            uid: rset.metadata.uid.clone().unwrap_or_default(),
            kind: "ResourceSet".into(),
            name: rset.metadata.name.clone().unwrap_or_default(),
            exported_namespace: rset.metadata.namespace.clone().unwrap_or_default(),
            ready: ready.map_or("Unknown".into(), |c| c.status.clone()),
            reason: ready.map(|c| c.reason.clone()).unwrap_or_default(),
            suspended: if rset.is_reconcile_disabled() {
                "True"
            } else {
                "False"
            }
            .into(),
            resources: status
                .inventory
                .as_ref()
                .map_or(0, |i| i.entries.len())
                .to_string(),
            revision: status.last_applied_revision.clone().unwrap_or_default(),
        };
        let key = format!("{}/{}", labels.exported_namespace, labels.name);
        replace_series(&self.resourcesets, &self.resourceset_series, key, labels);
    }

    /// Drops a deleted ResourceSet's series.
    pub fn remove_resourceset(&self, namespace: &str, name: &str) {
        let mut series = self
            .resourceset_series
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(old) = series.remove(&format!("{namespace}/{name}")) {
            self.resourcesets.remove(&old);
        }
    }

    /// Makes the provider's `flux_resourcesetinputprovider_info` series the one of `status`.
    pub fn set_input_provider(
        &self,
        provider: &crate::api::resourceset::ResourceSetInputProvider,
        status: &crate::api::resourceset::ResourceSetInputProviderStatus,
    ) {
        let ready = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready");
        let labels = InputProviderLabels {
            uid: provider.metadata.uid.clone().unwrap_or_default(),
            kind: "ResourceSetInputProvider".into(),
            name: provider.metadata.name.clone().unwrap_or_default(),
            exported_namespace: provider.metadata.namespace.clone().unwrap_or_default(),
            ready: ready.map_or("Unknown".into(), |c| c.status.clone()),
            reason: ready.map(|c| c.reason.clone()).unwrap_or_default(),
            suspended: if provider.is_reconcile_disabled() {
                "True"
            } else {
                "False"
            }
            .into(),
            url: provider.spec.url.clone().unwrap_or_default(),
        };
        let key = format!("{}/{}", labels.exported_namespace, labels.name);
        replace_series(
            &self.input_providers,
            &self.input_provider_series,
            key,
            labels,
        );
    }

    /// Counts one event forwarded to notification-controller with `result`.
    pub fn count_forwarded(&self, result: &str) {
        self.events_forwarded
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    /// The registry in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Makes `labels` the one series of `key` (`namespace/name`) in `family`: the object's
/// previous series, if its labels differ, is removed.
fn replace_series<L>(
    family: &Family<L, Gauge>,
    current: &std::sync::Mutex<std::collections::HashMap<String, L>>,
    key: String,
    labels: L,
) where
    L: Clone + std::hash::Hash + Eq + prometheus_client::encoding::EncodeLabelSet + std::fmt::Debug,
{
    let mut series = current.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(old) = series.insert(key, labels.clone())
        && old != labels
    {
        family.remove(&old);
    }
    family.get_or_create(&labels).set(1);
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
    fn a_resourceset_has_one_series_that_follows_its_status() {
        let metrics = Metrics::new();
        let rset: crate::api::resourceset::ResourceSet =
            serde_json::from_value(serde_json::json!({
                "apiVersion": "fluxcd.controlplane.io/v1", "kind": "ResourceSet",
                "metadata": { "name": "apps", "namespace": "team", "uid": "u1" }, "spec": {}
            }))
            .unwrap();
        let status = |ready: &str| -> crate::api::resourceset::ResourceSetStatus {
            serde_json::from_value(
                serde_json::json!({ "conditions": [{ "type": "Ready", "status": ready,
                "reason": "R", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z" }] }),
            )
            .unwrap()
        };
        metrics.set_resourceset(&rset, &status("False"));
        metrics.set_resourceset(&rset, &status("True"));
        let text = metrics.encode();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("flux_resourceset_info{"))
            .collect();
        assert_eq!(series.len(), 1, "{text}");
        assert!(
            series[0].contains("ready=\"True\"")
                && series[0].contains("exported_namespace=\"team\""),
            "{}",
            series[0]
        );
        metrics.remove_resourceset("team", "apps");
        assert!(
            !metrics
                .encode()
                .lines()
                .any(|l| l.starts_with("flux_resourceset_info{"))
        );
    }

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

    #[test]
    fn a_new_report_replaces_only_the_stale_resource_series() {
        let metrics = Metrics::new();
        let object = |name: &str, ready: &str| ResourceLabels {
            kind: "Kustomization".into(),
            name: name.into(),
            exported_namespace: "apps".into(),
            ready: ready.into(),
            suspended: "false".into(),
            revision: String::new(),
            source: String::new(),
        };
        metrics.replace_resources([object("a", "True"), object("b", "True")]);
        metrics.replace_resources([object("a", "True"), object("b", "False")]);
        let text = metrics.encode();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("flux_resource_info{"))
            .collect();
        assert_eq!(series.len(), 2, "{text}");
        assert!(text.contains("name=\"b\",exported_namespace=\"apps\",ready=\"False\""));
        assert!(!text.contains("name=\"b\",exported_namespace=\"apps\",ready=\"True\""));
    }
}
