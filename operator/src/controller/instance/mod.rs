//! The `FluxInstance` reconciler, wiring three parts: the source stage ([`source`]: resolve,
//! verify, cache or pull, unpack, select the Flux version, render), the convergence of the
//! cluster ([`super::lifecycle`]: apply, health, prune, migrate) with a rollback of a version
//! that does not become healthy, and the report ([`status`]: conditions, history, events,
//! when to come back), which this module writes and publishes.

mod source;
mod status;

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Resource, ResourceExt,
    runtime::{
        controller::Action,
        events::{Event, EventType, Reporter},
        finalizer::{Event as FinalizerEvent, finalizer},
        reflector::{ObjectRef, Store},
    },
};
use tracing::Instrument;

pub use source::ReleaseCache;
pub(in crate::controller) use source::secret_data;
use source::{Fetched, applied_bundle, build_failed, fetch, render_version, select};
pub(in crate::controller) use status::Failure;
use status::{Fetch, Installed, Outcome};

use super::lifecycle::{self, Converged, Stop};
use crate::{
    api::{
        FluxInstance, FluxInstanceStatus, ResourceInventory,
        constants::{FINALIZER, annotation, condition, reason},
    },
    apply::{self, Applier},
    bundle::source::Source,
    render::Rendered,
    telemetry::{Metrics, ReconcileLabels},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the status of FluxInstance {namespace}/{name}: {source}")]
    Status {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error("uninstalling Flux: {0}")]
    Uninstall(#[source] apply::Error),
    #[error(transparent)]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

/// How the operator reaches registries, from its flags.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// `host:port` of registries spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// Secret in the operator's namespace whose `ca.crt` holds extra CA certificates.
    pub ca_secret: Option<String>,
    pub timeout: std::time::Duration,
}

/// What every reconcile can reach.
pub struct Context {
    pub client: kube::Client,
    pub metrics: Arc<Metrics>,
    /// The operator's namespace (where the CA Secret lives).
    pub namespace: String,
    pub registries: RegistrySettings,
    /// The operator's trust policy, which instances cannot relax ([`super::trust`]).
    pub trust: super::trust::Policy,
    pub source: Source,
    /// Who the Events are from.
    pub reporter: Reporter,
    /// Parsed Flux releases by (artifact digest, version): YAML is read once per bundle.
    pub releases: ReleaseCache,
    pub applier: Applier,
    /// The controller's view of the instances, set once it runs: a reconcile compares it
    /// with the instance it works on to notice newer requests.
    pub instances: std::sync::OnceLock<Store<FluxInstance>>,
    /// Notified after a reconcile changed something, so the FluxReport follows at once.
    pub report_requested: Arc<tokio::sync::Notify>,
    /// Counts the changes the drift watches saw to objects fluxop installed; a health wait
    /// that sees it move reads everything again (see [`super::drift`]).
    pub drift_epoch: Arc<std::sync::atomic::AtomicU64>,
    /// Sends fluxop's events to notification-controller too ([`super::forward`]).
    pub forwarder: super::forward::Forwarder,
    pub forwarding: super::forward::Settings,
}

impl Context {
    /// Has a newer request for `instance` come in (spec change, reconcile request, deletion)
    /// since this reconcile started?
    pub fn newer_request(&self, instance: &FluxInstance) -> bool {
        let Some(store) = self.instances.get() else {
            return false;
        };
        let Some(latest) = store.get(&ObjectRef::from_obj(instance)) else {
            return false;
        };
        latest.metadata.generation != instance.metadata.generation
            || latest.metadata.deletion_timestamp.is_some()
            || latest.annotations().get(annotation::REQUESTED_AT)
                != instance.annotations().get(annotation::REQUESTED_AT)
            || latest.annotations().get(annotation::FORCE_AT)
                != instance.annotations().get(annotation::FORCE_AT)
    }
}

/// Replaces the instance's status with `status`, exactly ([`super::replace_status`]).
async fn write_status(
    ctx: &Context,
    instance: &FluxInstance,
    status: &FluxInstanceStatus,
) -> Result<(), Error> {
    let namespace = instance.namespace().unwrap_or_default();
    let name = instance.name_any();
    super::replace_status(
        &Api::<FluxInstance>::namespaced(ctx.client.clone(), &namespace),
        &name,
        status,
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::Status {
        namespace,
        name,
        source,
    })
}

/// Fetch, select, render, converge; roll back a new revision that does not become healthy.
/// `fetch` records what the source stage found, `progress_written` whether a progress
/// status was written (then the outcome must be written too).
async fn run_stages(
    instance: &FluxInstance,
    ctx: &Context,
    found: &mut Fetch,
    progress_written: &mut bool,
) -> Outcome {
    let failed = |failure: Failure| Outcome::Failed {
        failure,
        attempted: None,
        inventory: None,
    };
    let fetched = match fetch(instance, ctx)
        .instrument(tracing::info_span!("fetch"))
        .await
    {
        Ok(fetched) => fetched,
        Err(failure) => return failed(failure),
    };
    found.digest = Some(fetched.digest.clone());
    found.source_error = fetched.source_error.clone();
    let selection = match select(instance, &fetched.bundle) {
        Ok(selection) => selection,
        Err(refused @ crate::bundle::version::Error::SilentDowngrade { .. }) => {
            // The artifact moved to an older Flux: refused, and the running revision goes on
            // being converged from the bundle it came from, which stays the recorded one.
            found.digest = None;
            keep_running(instance, ctx, &fetched).await;
            return failed(build_failed(refused));
        }
        Err(refused) => return failed(build_failed(refused)),
    };
    found.newer = selection.newer_outside_range.clone();
    tracing::debug!(version = %selection.version, from = %fetched.origin, "Flux version selected");
    let rendered = match render_version(ctx, instance, &instance.spec, &fetched, &selection.version)
        .instrument(tracing::info_span!("render", version = %selection.version))
        .await
    {
        Ok(rendered) => rendered,
        Err(failure) => return failed(failure),
    };
    tracing::Span::current().record("revision", rendered.revision.as_str());

    if status::hold_in_effect(instance, &rendered.revision) {
        return converge_held(instance, ctx, &fetched, rendered.revision).await;
    }
    if status::has_work(instance, &rendered.revision) {
        let progress = status::progressing_status(instance, &rendered.revision, Timestamp::now());
        match write_status(ctx, instance, &progress).await {
            Ok(()) => *progress_written = true,
            Err(error) => tracing::warn!(%error, "writing the progress status failed"),
        }
    }
    converge_new(instance, ctx, &fetched, rendered, selection.version).await
}

/// Converges the cluster to `rendered`; `previous` is what may be in the cluster now (what
/// is not rendered any more gets pruned).
async fn converge_objects(
    instance: &FluxInstance,
    ctx: &Context,
    rendered: &Rendered,
    previous: Option<&ResourceInventory>,
) -> Result<Converged, Stop> {
    let canceled = || {
        ctx.newer_request(instance)
            .then(|| "a newer reconcile request came in".to_string())
    };
    let drift_epoch = || ctx.drift_epoch.load(std::sync::atomic::Ordering::Relaxed);
    let plan = lifecycle::Plan {
        instance,
        objects: &rendered.objects,
        recreate: status::force_requested(instance),
        timeout: instance
            .reconcile_timeout()
            .unwrap_or(FluxInstance::DEFAULT_RECONCILE_TIMEOUT),
        canceled: &canceled,
        drift_epoch: &drift_epoch,
        new_revision: instance
            .status
            .as_ref()
            .and_then(|s| s.last_applied_revision.as_deref())
            != Some(rendered.revision.as_str()),
    };
    lifecycle::converge(&ctx.applier, &plan, previous).await
}

/// While a rollback holds: keep the restored revision (its version rendered from the spec it
/// was applied with) and correct its drift.
async fn converge_held(
    instance: &FluxInstance,
    ctx: &Context,
    fetched: &Fetched,
    attempted: String,
) -> Outcome {
    let status = status::status_of(instance);
    let Some(version) = status::applied_version(instance) else {
        return Outcome::Failed {
            failure: Failure::retry(
                reason::RECONCILIATION_FAILED,
                "a rollback is recorded but no applied revision",
            ),
            attempted: Some(attempted),
            inventory: None,
        };
    };
    let restored = match render_version(
        ctx,
        instance,
        &status::applied_spec(instance),
        fetched,
        &version,
    )
    .await
    {
        Ok(restored) => restored,
        Err(failure) => {
            return Outcome::Failed {
                failure,
                attempted: Some(attempted),
                inventory: None,
            };
        }
    };
    let installed = Installed::of(&restored, &version);
    match converge_objects(instance, ctx, &restored, status.inventory.as_ref()).await {
        Ok(Converged::Healthy(report)) => Outcome::Held {
            installed,
            report,
            unhealthy: None,
        },
        Ok(Converged::Unhealthy { report, why }) => Outcome::Held {
            installed,
            report,
            unhealthy: Some(why),
        },
        Ok(Converged::Canceled { why, .. }) => Outcome::Canceled { attempted, why },
        Err(stop) => Outcome::Failed {
            failure: stop_failure(stop),
            attempted: Some(attempted),
            inventory: None,
        },
    }
}

/// While a move back is refused: converges the running revision (its version, rendered
/// from the spec it was applied with, out of the cached bundle it came from), so drift is
/// still corrected. Best effort: what it cannot do is logged; the refusal is the status.
async fn keep_running(instance: &FluxInstance, ctx: &Context, fetched: &Fetched) {
    let status = status::status_of(instance);
    let Some(version) = status::applied_version(instance) else {
        return;
    };
    let Some(applied) = applied_bundle(instance, ctx, fetched).await else {
        tracing::warn!(
            "the bundle of the running revision is not in the cache: drift is not corrected while the move back is refused"
        );
        return;
    };
    let rendered = match render_version(
        ctx,
        instance,
        &status::applied_spec(instance),
        &applied,
        &version,
    )
    .await
    {
        Ok(rendered) => rendered,
        Err(failure) => {
            tracing::warn!(error = %failure.message, "cannot render the running revision");
            return;
        }
    };
    match converge_objects(instance, ctx, &rendered, status.inventory.as_ref()).await {
        Ok(Converged::Healthy(report)) if !report.is_noop() => {
            tracing::info!(revision = %rendered.revision, changes = %report.summary(), "running revision corrected while a move back is refused");
        }
        Ok(_) => {}
        Err(stop) => {
            tracing::warn!(error = ?stop, "converging the running revision failed");
        }
    }
}

/// Applies a revision; one that does not become healthy is rolled back to the last healthy
/// revision: its version (the bundle has it) rendered from the spec it was applied with.
async fn converge_new(
    instance: &FluxInstance,
    ctx: &Context,
    fetched: &Fetched,
    rendered: Rendered,
    version: semver::Version,
) -> Outcome {
    let status = status::status_of(instance);
    let previous_inventory = status.inventory.as_ref();
    let attempted = Installed::of(&rendered, &version);
    let tried = status::union(previous_inventory, &attempted.inventory);
    let (report, why) = match converge_objects(instance, ctx, &rendered, previous_inventory).await {
        Err(stop) => {
            return Outcome::Failed {
                failure: stop_failure(stop),
                attempted: Some(rendered.revision),
                inventory: Some(tried),
            };
        }
        Ok(Converged::Healthy(report)) => {
            return Outcome::Applied {
                installed: attempted,
                report,
            };
        }
        Ok(Converged::Canceled { why, .. }) => {
            return Outcome::Canceled {
                attempted: rendered.revision,
                why,
            };
        }
        Ok(Converged::Unhealthy { report, why }) => (report, why),
    };
    tracing::warn!(revision = %rendered.revision, %why, changes = %report.summary(), "new revision is not healthy");
    let unhealthy = |message: String| Outcome::Failed {
        failure: Failure::retry(reason::RECONCILIATION_FAILED, message),
        attempted: Some(rendered.revision.clone()),
        inventory: Some(tried.clone()),
    };
    // Nothing to roll back to on a first install, or when that is what was just tried
    // (drift of the applied revision that does not heal).
    let Some(previous) = status::applied_version(instance) else {
        return unhealthy(format!(
            "{} did not become healthy: {why}",
            rendered.revision
        ));
    };
    let restored = match render_version(
        ctx,
        instance,
        &status::applied_spec(instance),
        fetched,
        &previous,
    )
    .await
    {
        Ok(restored) => restored,
        Err(failure) => {
            return unhealthy(format!(
                "{} did not become healthy: {why}; cannot roll back to v{previous}: {}",
                rendered.revision, failure.message
            ));
        }
    };
    if restored.revision == rendered.revision {
        return unhealthy(format!(
            "{} did not become healthy: {why}",
            rendered.revision
        ));
    }
    tracing::warn!(to = %restored.revision, "rolling back");
    match converge_objects(instance, ctx, &restored, Some(&tried)).await {
        Ok(Converged::Healthy(report)) => Outcome::RolledBack {
            attempted: rendered.revision.clone(),
            why,
            installed: Installed::of(&restored, &previous),
            report,
        },
        Ok(Converged::Unhealthy { why: again, .. }) => unhealthy(format!(
            "{} did not become healthy: {why}; the rollback to {} is not healthy either: {again}",
            rendered.revision, restored.revision
        )),
        Ok(Converged::Canceled { why, .. }) => Outcome::Canceled {
            attempted: rendered.revision.clone(),
            why,
        },
        Err(stop) => unhealthy(format!(
            "{} did not become healthy: {why}; the rollback to {} failed: {}",
            rendered.revision,
            restored.revision,
            stop_failure(stop).message
        )),
    }
}

fn stop_failure(stop: Stop) -> Failure {
    match stop {
        Stop::Blocked(message) => Failure::stalled(reason::RECONCILIATION_FAILED, message),
        Stop::Apply(error) => Failure::retry(reason::RECONCILIATION_FAILED, error.to_string()),
    }
}

/// Reconciles one instance; the finalizer makes deletion run [`cleanup`].
pub async fn reconcile(instance: Arc<FluxInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = instance.namespace().unwrap_or_default();
    let api = Api::<FluxInstance>::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, instance, |event| async move {
        match event {
            FinalizerEvent::Apply(instance) => apply_instance(instance, &ctx).await,
            FinalizerEvent::Cleanup(instance) => cleanup(instance, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply_instance(instance: Arc<FluxInstance>, ctx: &Context) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let name = instance.name_any();
    let namespace = instance.namespace().unwrap_or_default();
    let mut found = Fetch::default();
    let mut progress_written = false;
    let span = tracing::info_span!(
        "reconcile",
        instance = %name,
        namespace = %namespace,
        revision = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let outcome = if instance.is_reconcile_disabled() {
        Outcome::Disabled
    } else {
        run_stages(&instance, ctx, &mut found, &mut progress_written)
            .instrument(span.clone())
            .await
    };
    span.record("outcome", outcome.name());

    let now = Timestamp::now();
    let status = status::next_status(&instance, &found, &outcome, now);
    let changed = instance.status.as_ref() != Some(&status);
    if changed || progress_written {
        write_status(ctx, &instance, &status).await?;
    }
    publish(
        ctx,
        &instance,
        status.last_attempted_revision.as_deref(),
        status::events(&instance, &outcome, &found, &status),
    )
    .await;
    if changed || outcome.changed_objects() {
        ctx.report_requested.notify_one();
    }
    record_metrics(ctx, &name, &namespace, &status, &outcome, started);
    Ok(status::next_action(
        &instance, &outcome, &found, &status, now,
    ))
}

fn record_metrics(
    ctx: &Context,
    name: &str,
    namespace: &str,
    status: &FluxInstanceStatus,
    outcome: &Outcome,
    started: std::time::Instant,
) {
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == condition::READY)
        .map_or("Unknown", |c| c.status.as_str())
        .to_string();
    ctx.metrics.instance.clear();
    ctx.metrics
        .instance
        .get_or_create(&crate::telemetry::InstanceLabels {
            name: name.to_string(),
            exported_namespace: namespace.to_string(),
            ready,
            revision: status.last_applied_revision.clone().unwrap_or_default(),
        })
        .set(1);
    ctx.metrics
        .reconcile_duration
        .get_or_create(&crate::telemetry::KindLabels {
            kind: "FluxInstance".into(),
        })
        .observe(started.elapsed().as_secs_f64());
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            kind: "FluxInstance".into(),
            result: outcome.result().into(),
        })
        .inc();
}

/// Records `events` about `instance` as Kubernetes Events and, when the instance has a
/// notification-controller, sends them there too, with `revision` in their metadata.
async fn publish(
    ctx: &Context,
    instance: &FluxInstance,
    revision: Option<&str>,
    events: Vec<Event>,
) {
    let regarding = instance.object_ref(&());
    if let Some(address) = super::forward::address(instance, &ctx.forwarding) {
        let now = Timestamp::now();
        for event in &events {
            ctx.forwarder.send(
                &address,
                super::forward::flux_event(
                    &regarding,
                    instance.annotations(),
                    event,
                    revision,
                    &ctx.reporter,
                    now,
                ),
            );
        }
    }
    super::publish_events(&ctx.client, &ctx.reporter, &regarding, events).await;
}

/// Uninstall on deletion; with reconciliation disabled only the finalizer goes.
async fn cleanup(instance: Arc<FluxInstance>, ctx: &Context) -> Result<Action, Error> {
    if instance.is_reconcile_disabled() {
        tracing::info!(instance = %instance.name_any(), "deleted with reconciliation disabled: leaving Flux installed");
        return Ok(Action::await_change());
    }
    let report = lifecycle::uninstall(&ctx.applier, &instance)
        .await
        .map_err(Error::Uninstall)?;
    tracing::info!(
        instance = %instance.name_any(),
        deleted = report.pruned.len(),
        kept = report.kept.len(),
        "uninstalled"
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "Uninstalled".into(),
        note: Some(super::truncate_note(&format!(
            "Flux uninstalled: {} objects deleted; the namespace and what Flux deployed were kept",
            report.pruned.len()
        ))),
        action: "Uninstall".into(),
        secondary: None,
    };
    let revision = instance
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.clone());
    publish(ctx, &instance, revision.as_deref(), vec![event]).await;
    Ok(Action::await_change())
}
