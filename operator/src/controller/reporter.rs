//! Keeps the `FluxReport` `flux` of the operator's namespace current: on an interval (the
//! `--reporting-interval` flag, or the report's `reconcileEvery` annotation) and right after an
//! instance reconcile changed something. A report identical to the stored one is not written.

use std::{sync::Arc, time::Duration};

use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use tokio::sync::Notify;

use super::{Context, conditions};
use crate::{
    api::{
        FluxReport, FluxReportSpec, SINGLETON_NAME,
        constants::{FIELD_MANAGER, annotation, condition},
    },
    report::{self, collect},
    telemetry::ResourceLabels,
};

/// Computes the report, records the metrics, and writes what changed. Returns the
/// report's own `reconcileEvery` annotation, if it has one.
#[tracing::instrument(name = "report", skip_all)]
pub async fn refresh(ctx: &Context) -> Result<Option<Duration>, kube::Error> {
    let started = std::time::Instant::now();
    let sync = ctx.instances.get().and_then(|store| {
        store
            .state()
            .into_iter()
            .find(|i| i.name_any() == SINGLETON_NAME)
            .and_then(|i| {
                let sync = i.spec.sync.as_ref()?;
                Some(sync.name.clone().unwrap_or_else(|| ctx.namespace.clone()))
            })
    });
    let observed = collect::observe(
        &ctx.client,
        &ctx.namespace,
        sync.as_deref(),
        collect::embedded_versions(),
    )
    .await?;
    let spec = report::spec(&observed);
    ctx.metrics
        .replace_resources(observed.reconcilers.iter().flat_map(|(_, kind, objects)| {
            objects.iter().map(move |object| ResourceLabels {
                kind: kind.clone(),
                name: object.name.clone(),
                exported_namespace: object.namespace.clone(),
                ready: object.ready.clone(),
                suspended: object.suspended.to_string(),
                revision: object.revision.clone(),
                source: object.source.clone(),
            })
        }));
    let elapsed = started.elapsed();
    ctx.metrics.report_duration.observe(elapsed.as_secs_f64());
    tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "report computed");
    write(ctx, &spec).await
}

/// Writes the spec and the Ready condition where they changed; returns the report's
/// `reconcileEvery` annotation.
async fn write(ctx: &Context, spec: &FluxReportSpec) -> Result<Option<Duration>, kube::Error> {
    let api = Api::<FluxReport>::namespaced(ctx.client.clone(), &ctx.namespace);
    let existing = api.get_opt(SINGLETON_NAME).await?;
    let every = existing.as_ref().and_then(|r| {
        r.annotations()
            .get(annotation::RECONCILE_EVERY)
            .and_then(|v| crate::api::duration::parse(v).ok())
            .map(crate::api::instance::at_least_min_interval)
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    if existing.as_ref().map(|r| &r.spec) != Some(spec) {
        let report = serde_json::json!({
            "apiVersion": format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
            "kind": "FluxReport",
            "metadata": { "name": SINGLETON_NAME, "namespace": ctx.namespace },
            "spec": spec,
        });
        api.patch(SINGLETON_NAME, &params, &Patch::Apply(&report))
            .await?;
    }
    let mut status = existing.and_then(|r| r.status).unwrap_or_default();
    let mut list = status.conditions.take().unwrap_or_default();
    let changed = conditions::set(
        &mut list,
        condition::READY,
        "True",
        "ReportingSucceeded",
        &report::summary(spec),
        None,
        Timestamp::now(),
    );
    if changed {
        status.conditions = Some(list);
        let patch = serde_json::json!({
            "apiVersion": format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
            "kind": "FluxReport",
            "metadata": { "name": SINGLETON_NAME, "namespace": ctx.namespace },
            "status": status,
        });
        api.patch_status(SINGLETON_NAME, &params, &Patch::Apply(&patch))
            .await?;
    }
    Ok(every)
}

/// The annotations on the FluxReport that ask for a report: a new `reconcileEvery` (so a
/// shorter interval takes effect now, not after the current one) and Flux's `requestedAt`.
fn report_requests(report: &FluxReport) -> (Option<String>, Option<String>) {
    let annotations = report.annotations();
    (
        annotations.get(annotation::RECONCILE_EVERY).cloned(),
        annotations.get(annotation::REQUESTED_AT).cloned(),
    )
}

/// Notifies `poke` whenever someone changes the report's request annotations. The report's
/// own writes (spec, status) change neither, so they do not loop back here.
async fn watch_requests(ctx: Arc<Context>, poke: Arc<Notify>) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let api = Api::<FluxReport>::namespaced(ctx.client.clone(), &ctx.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={SINGLETON_NAME}"));
    let mut seen: Option<(Option<String>, Option<String>)> = None;
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(report) | watcher::Event::InitApply(report)) => {
                let requests = report_requests(&report);
                if seen.as_ref().is_some_and(|s| *s != requests) {
                    tracing::info!("the FluxReport asked for a report");
                    poke.notify_one();
                }
                seen = Some(requests);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "watching the FluxReport's annotations"),
        }
    }
}

/// Reports on the interval and whenever `poke` is notified (an instance reconcile changed
/// something, or the report's annotations asked), until the task is dropped.
pub async fn run(ctx: Arc<Context>, default_interval: Duration, poke: Arc<Notify>) {
    let requests = tokio::spawn(watch_requests(ctx.clone(), poke.clone()));
    let _stop_watching = AbortOnDrop(requests);
    loop {
        // The report's `reconcileEvery` annotation wins over the flag.
        let wait = match refresh(&ctx).await {
            Ok(every) => every.unwrap_or(default_interval),
            Err(error) => {
                tracing::warn!(%error, "reporting failed");
                ctx.metrics.watch_errors.inc();
                default_interval
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = poke.notified() => {}
        }
    }
}

/// Aborts the task when the reporter itself is dropped (leadership lost, shutdown).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
