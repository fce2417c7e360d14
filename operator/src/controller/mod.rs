//! kube-runtime reconcilers: the `FluxInstance` controller of the operator's namespace.

pub mod conditions;
pub mod drift;
pub mod fleet;
pub mod forward;
pub mod hub;
pub mod instance;
pub mod lease;
pub mod lifecycle;
pub mod member_kubeconfig;
pub mod reporter;
pub mod resourceset;
#[cfg(test)]
mod sequences;
pub mod trust;

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    runtime::{
        Controller, PredicateConfig, WatchStreamExt, controller::Action, reflector, watcher,
    },
};

pub use instance::{Context, RegistrySettings};

use crate::{api::FluxInstance, server::Health, telemetry::ReconcileLabels};

fn error_policy(instance: Arc<FluxInstance>, error: &instance::Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(instance = %instance.name_any(), %error, "reconcile failed");
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            kind: "FluxInstance".into(),
            result: "error".into(),
        })
        .inc();
    Action::requeue(crate::policy::requeue::ERROR)
}

/// What a reconcile answers to: the spec (generation), the annotations (`requestedAt`,
/// `reconcile: disabled`, intervals), the finalizers and deletion. fluxop's own status
/// writes change none of these, so they do not wake the controller a second time; requeues
/// and drift ticks come through the controller's own queue.
fn reconcile_trigger(instance: &FluxInstance) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    instance.metadata.generation.hash(&mut hasher);
    instance.annotations().hash(&mut hasher);
    instance.finalizers().hash(&mut hasher);
    instance
        .metadata
        .deletion_timestamp
        .as_ref()
        .map(|at| at.0.to_string())
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// Runs the `FluxInstance` controller of the context's namespace until the watch stream
/// ends. Marks the operator ready once the instance cache has synced, not ready with the
/// API server's reason when the watch fails (for example when the CRDs are not installed or
/// the API server restarts), and ready again when it answers ([`follow_readiness`]).
pub async fn run(
    ctx: Context,
    health: Arc<Health>,
    reporting_interval: Duration,
    instance_source: Option<fleet::InstanceSource>,
    fleet_hub: bool,
    resourcesets: Option<resourceset::Context>,
) {
    let instances = Api::<FluxInstance>::namespaced(ctx.client.clone(), &ctx.namespace);
    let (reader, writer) = reflector::store();
    let triggers = watcher(instances, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(reconcile_trigger, PredicateConfig::default());
    let controller = Controller::for_stream(triggers, reader).reconcile_all_on(drift::ticks(
        &ctx.client,
        &ctx.namespace,
        ctx.drift_epoch.clone(),
    ));
    let store = controller.store();
    let _ = ctx.instances.set(store.clone());
    tokio::spawn(follow_readiness(
        Api::namespaced(ctx.client.clone(), &ctx.namespace),
        store,
        health.clone(),
    ));
    let metrics = ctx.metrics.clone();
    let ctx = Arc::new(ctx);
    // The other writers — the reporter, the fleet follower when the instance comes from an
    // artifact, the FluxFleet controller on a hub — run in this same future, not in tasks of
    // their own: whoever polls it (the leader election's fence) stops all of them at once.
    let optional = |work: Option<std::pin::Pin<Box<dyn Future<Output = ()> + Send>>>| async move {
        match work {
            Some(work) => work.await,
            None => std::future::pending().await,
        }
    };
    let writers = futures::future::join4(
        reporter::run(
            ctx.clone(),
            reporting_interval,
            ctx.report_requested.clone(),
        ),
        optional(
            instance_source.map(|source| {
                Box::pin(fleet::follow(ctx.clone(), source)) as std::pin::Pin<Box<_>>
            }),
        ),
        optional(fleet_hub.then(|| {
            Box::pin(hub::run(hub::Hub {
                client: ctx.client.clone(),
                namespace: ctx.namespace.clone(),
            })) as std::pin::Pin<Box<_>>
        })),
        optional(
            resourcesets.map(|rsets| Box::pin(resourceset::run(rsets)) as std::pin::Pin<Box<_>>),
        ),
    );
    let instances = controller
        .run(instance::reconcile, error_policy, ctx)
        .for_each(|result| {
            match result {
                Ok((object, _)) => tracing::debug!(instance = %object.name, "reconciled"),
                Err(kube::runtime::controller::Error::QueueError(error)) => {
                    metrics.watch_errors.inc();
                    let reason = format!("watching FluxInstances failed: {error}");
                    tracing::error!(%error, "watching FluxInstances failed; is the CRD installed (fluxop crds | kubectl apply -f -)?");
                    health.set_not_ready(reason);
                }
                Err(error) => tracing::debug!(%error, "controller event"),
            }
            futures::future::ready(())
        });
    // The controller ends when its watch stream does; the writers then stop with it.
    tokio::select! {
        () = instances => {}
        _ = writers => {}
    }
}

/// Readiness follows the FluxInstance watch. Ready once the cache has synced; a watch error
/// (reported by the controller's stream) makes it not ready. The watcher reports only its
/// failures, not its recovery (a watch that resumes says nothing until an object changes),
/// so while not ready the API server is asked, every [`READINESS_PROBE`], for what the
/// watcher needs — a list and a watch of FluxInstances — and readiness comes back when both
/// answer.
///
/// [`READINESS_PROBE`]: crate::policy::kube::READINESS_PROBE
async fn follow_readiness(
    api: Api<FluxInstance>,
    store: reflector::Store<FluxInstance>,
    health: Arc<Health>,
) {
    // The store's readiness is a one-shot channel that wakes only its latest poller, and the
    // controller polls it too; so re-poll (cheap: the result is cached once set).
    loop {
        match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
            Ok(Ok(())) => break,
            Ok(Err(_writer_dropped)) => return,
            Err(_elapsed) => continue,
        }
    }
    tracing::info!("FluxInstance cache synced");
    health.set_ready();
    let mut probes = tokio::time::interval(crate::policy::kube::READINESS_PROBE);
    probes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        probes.tick().await;
        let Some(reason) = health.not_ready_reason() else {
            continue;
        };
        match api_answers(&api).await {
            Ok(()) => {
                tracing::info!(was = %reason, "the API server answers the FluxInstance list and watch again; ready");
                health.set_ready();
            }
            Err(error) => {
                tracing::debug!(%error, "readiness probe: the API server does not answer yet")
            }
        }
    }
}

/// A list and a watch of FluxInstances (the two calls the watcher makes), each within
/// the probe's timeout.
async fn api_answers(api: &Api<FluxInstance>) -> Result<(), String> {
    use kube::api::{ListParams, WatchEvent, WatchParams};
    let probe = async {
        let list = api
            .list_metadata(&ListParams::default().limit(1))
            .await
            .map_err(|e| format!("list: {e}"))?;
        let version = list.metadata.resource_version.unwrap_or_default();
        let events = api
            .watch_metadata(&WatchParams::default().timeout(1), &version)
            .await
            .map_err(|e| format!("watch: {e}"))?;
        futures::pin_mut!(events);
        match events.next().await {
            Some(Err(e)) => Err(format!("watch: {e}")),
            Some(Ok(WatchEvent::Error(status))) => Err(format!("watch: {}", status.message)),
            _ => Ok(()),
        }
    };
    tokio::time::timeout(crate::policy::kube::READINESS_PROBE_TIMEOUT, probe)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// Stores `status` as the object's whole status, exactly: a JSON patch that adds (replaces)
/// `/status`. A merge patch of the struct would leave behind every field that is now
/// `None` (skipped when serialized, so never sent as `null`), and server-side apply would
/// leave fields that an earlier writer owns; this replaces what is there, in one request
/// and without a precondition (fluxop is the status's only writer).
pub(crate) async fn replace_status<K>(
    api: &Api<K>,
    name: &str,
    status: &impl serde::Serialize,
) -> Result<K, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    use kube::api::{Patch, PatchParams};
    let value = serde_json::to_value(status).map_err(kube::Error::SerdeError)?;
    let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
        { "op": "add", "path": "/status", "value": value }
    ]))
    .map_err(kube::Error::SerdeError)?;
    let params = PatchParams {
        field_manager: Some(crate::api::constants::FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch_status(name, &params, &Patch::Json::<()>(patch))
        .await
}

/// One key of a Secret (`what` says what it is for, in messages): a Secret or key that is
/// missing is an error naming it.
pub(crate) async fn secret_key(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    key: &str,
    what: &str,
) -> Result<Vec<u8>, String> {
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| format!("reading Secret {namespace}/{name} ({what}): {e}"))?
        .ok_or_else(|| format!("Secret {namespace}/{name} ({what}) does not exist"))?;
    secret
        .data
        .and_then(|mut data| data.remove(key))
        .map(|bytes| bytes.0)
        .ok_or_else(|| format!("Secret {namespace}/{name} ({what}) has no key {key:?}"))
}

/// An Event note as the API server takes it: at most 1 KiB.
pub(crate) fn truncate_note(note: &str) -> String {
    const LIMIT: usize = 1000;
    if note.len() <= LIMIT {
        return note.to_string();
    }
    let mut end = LIMIT;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &note[..end])
}

/// Publishes `events` about `regarding`, each as an Event of its own. kube's `Recorder` folds
/// events of one object, type, reason and action into a series that keeps the first note, so
/// a second, different message with the same reason would only bump a count; fluxop decides
/// itself what is new (from the status), so each event gets a fresh recorder.
pub(crate) async fn publish_events(
    client: &kube::Client,
    reporter: &kube::runtime::events::Reporter,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    events: Vec<kube::runtime::events::Event>,
) {
    for event in events {
        let recorder = kube::runtime::events::Recorder::new(client.clone(), reporter.clone());
        if let Err(error) = recorder.publish(&event, regarding).await {
            tracing::warn!(%error, reason = %event.reason, "publishing an event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance() -> FluxInstance {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
            "metadata": { "name": "flux", "namespace": "flux-system", "generation": 2,
                          "resourceVersion": "10" },
            "spec": { "distribution": { "version": "2.x", "registry": "ghcr.io/fluxcd" } }
        }))
        .unwrap()
    }

    #[test]
    fn status_writes_do_not_trigger_a_reconcile_but_requests_and_spec_changes_do() {
        let before = instance();
        let mut status_written = before.clone();
        status_written.metadata.resource_version = Some("11".into());
        status_written.status = Some(Default::default());
        assert_eq!(
            reconcile_trigger(&before),
            reconcile_trigger(&status_written)
        );

        let mut requested = before.clone();
        requested.annotations_mut().insert(
            crate::api::constants::annotation::REQUESTED_AT.into(),
            "now".into(),
        );
        let mut edited = before.clone();
        edited.metadata.generation = Some(3);
        let mut deleted = before.clone();
        deleted.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let mut finalized = before.clone();
        finalized.finalizers_mut().push("x".into());
        for changed in [requested, edited, deleted, finalized] {
            assert_ne!(reconcile_trigger(&before), reconcile_trigger(&changed));
        }
    }
}
