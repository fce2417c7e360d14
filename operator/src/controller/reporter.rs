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
    ctx.metrics.resources.clear();
    for (_, kind, objects) in &observed.reconcilers {
        for object in objects {
            ctx.metrics
                .resources
                .get_or_create(&ResourceLabels {
                    kind: kind.clone(),
                    name: object.name.clone(),
                    exported_namespace: object.namespace.clone(),
                    ready: object.ready.clone(),
                    suspended: object.suspended.to_string(),
                    revision: object.revision.clone(),
                    source: object.source.clone(),
                })
                .set(1);
        }
    }
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

/// Reports on the interval and whenever `poke` is notified, until the task is dropped.
pub async fn run(ctx: Arc<Context>, default_interval: Duration, poke: Arc<Notify>) {
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
