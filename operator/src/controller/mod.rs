//! kube-runtime reconcilers. For now the `FluxInstance` controller watches the instances of
//! the operator's namespace and records what it observes; installing Flux from them (bundle,
//! render, apply, prune, health) is the lifecycle that builds on this watch.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Api, Client, ResourceExt,
    runtime::{Controller, controller::Action, watcher},
};

use crate::{
    api::FluxInstance,
    server::Health,
    telemetry::{Metrics, ReconcileLabels},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("FluxInstance {name}: {message}")]
    Instance { name: String, message: String },
}

/// What every reconcile can reach.
pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
}

async fn reconcile(instance: Arc<FluxInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    tracing::info!(
        instance = %instance.name_any(),
        namespace = instance.namespace().unwrap_or_default(),
        generation = instance.metadata.generation.unwrap_or_default(),
        version = %instance.spec.distribution.version,
        "observed FluxInstance"
    );
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            kind: "FluxInstance".into(),
            result: "success".into(),
        })
        .inc();
    Ok(Action::await_change())
}

fn error_policy(instance: Arc<FluxInstance>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(instance = %instance.name_any(), %error, "reconcile failed");
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            kind: "FluxInstance".into(),
            result: "error".into(),
        })
        .inc();
    Action::requeue(Duration::from_secs(30))
}

/// Runs the `FluxInstance` controller of `namespace` until the watch stream ends. Marks the
/// operator ready once the instance cache has synced, and not ready with the API server's
/// reason while the watch fails (for example when the CRDs are not installed).
pub async fn run(client: Client, namespace: &str, health: Arc<Health>, metrics: Arc<Metrics>) {
    let instances = Api::<FluxInstance>::namespaced(client.clone(), namespace);
    let controller = Controller::new(instances, watcher::Config::default());
    let store = controller.store();
    let ready = health.clone();
    tokio::spawn(async move {
        // The store's readiness is a one-shot channel that wakes only its latest poller, and
        // the controller polls it too; so re-poll (cheap: the result is cached once set).
        loop {
            match tokio::time::timeout(Duration::from_millis(500), store.wait_until_ready()).await {
                Ok(Ok(())) => {
                    tracing::info!("FluxInstance cache synced");
                    ready.set_ready();
                    return;
                }
                Ok(Err(_writer_dropped)) => return,
                Err(_elapsed) => continue,
            }
        }
    });
    let ctx = Arc::new(Context {
        client,
        metrics: metrics.clone(),
    });
    controller
        .run(reconcile, error_policy, ctx)
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
        })
        .await;
}
