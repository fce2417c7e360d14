//! The `ResourceSet` reconciler (every namespace): dependencies, inputs from the providers,
//! render ([`crate::resourceset`]), server-side apply step by step with the ResourceSet's
//! ServiceAccount, health, prune of what left, and the report ([`status`]).

mod dependencies;
mod drift;
pub mod provider;
pub mod status;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, PropagationPolicy},
    runtime::{
        Controller, PredicateConfig, WatchStreamExt,
        controller::Action,
        events::Reporter,
        finalizer::{Event as FinalizerEvent, finalizer},
        reflector::{self, ObjectRef},
        watcher,
    },
};
use serde_json::Value;
use sha2::{Digest, Sha256};

use status::{Applied, Outcome};

use crate::{
    api::{
        ResourceInventory,
        constants::{FIELD_MANAGER, FINALIZER, annotation, reason},
        resourceset::{ResourceSet, ResourceSetInputProvider},
    },
    apply::{self, Applier, HealthOutcome, ObjectId, object},
    resourceset::{self as rs, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, build::StepObjects},
    telemetry::{Metrics, ReconcileLabels},
    template::goyaml,
};

/// A ResourceSet without a ServiceAccount while the operator requires one.
pub const SERVICE_ACCOUNT_REQUIRED: &str = "ServiceAccountRequired";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the status of ResourceSet {namespace}/{name}: {source}")]
    Status {
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error(transparent)]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
}

/// What every ResourceSet reconcile can reach.
pub struct Context {
    pub client: Client,
    /// The operator's own config, from which impersonating clients are made.
    pub config: kube::Config,
    pub metrics: Arc<Metrics>,
    pub reporter: Reporter,
    /// Impersonated when a ResourceSet names no ServiceAccount (`--default-service-account`).
    pub default_service_account: Option<String>,
    /// Refuse ResourceSets that would apply with the operator's own rights.
    pub require_service_account: bool,
    /// fluxop's own applier, and one per impersonated `namespace/ServiceAccount` (each keeps
    /// its discovery cache between reconciles).
    pub applier: Arc<Applier>,
    impersonating: Mutex<HashMap<String, Arc<Applier>>>,
    /// The drift watches of the kinds ResourceSets applied (set once the controller runs).
    watches: std::sync::OnceLock<Arc<drift::Watches>>,
}

impl Context {
    pub fn new(
        client: Client,
        config: kube::Config,
        metrics: Arc<Metrics>,
        reporter: Reporter,
        default_service_account: Option<String>,
        require_service_account: bool,
    ) -> Self {
        Self {
            applier: Arc::new(Applier::new(client.clone(), FIELD_MANAGER)),
            client,
            config,
            metrics,
            reporter,
            default_service_account,
            require_service_account,
            impersonating: Mutex::default(),
            watches: std::sync::OnceLock::new(),
        }
    }

    /// The applier a ResourceSet's objects go through: its ServiceAccount's (or the
    /// default one's), else the operator's own unless the operator requires one.
    fn applier_for(&self, rset: &ResourceSet) -> Result<Arc<Applier>, Outcome> {
        let namespace = rset.namespace().unwrap_or_default();
        let account = rset
            .spec
            .service_account_name
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| self.default_service_account.clone());
        let Some(account) = account else {
            if self.require_service_account {
                return Err(Outcome::Stalled {
                    reason: SERVICE_ACCOUNT_REQUIRED,
                    message: "spec.serviceAccountName is not set and the operator requires one \
                              (--require-service-account): nothing is applied with the operator's own rights"
                        .into(),
                    digest: spec_digest(rset),
                });
            }
            return Ok(self.applier.clone());
        };
        let user = format!("system:serviceaccount:{namespace}:{account}");
        let mut cache = self
            .impersonating
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(applier) = cache.get(&user) {
            return Ok(applier.clone());
        }
        let mut config = self.config.clone();
        config.auth_info.impersonate = Some(user.clone());
        config.auth_info.impersonate_groups = None;
        let client = Client::try_from(config).map_err(|e| Outcome::Failed {
            message: format!("impersonating {user}: {e}"),
            digest: spec_digest(rset),
            inventory: None,
        })?;
        let applier = Arc::new(Applier::new(client, FIELD_MANAGER));
        cache.insert(user, applier.clone());
        Ok(applier)
    }
}

/// `sha256:<hex>` of `text`.
fn sha256(text: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(text)))
}

/// The history digest of a spec that could not be built.
fn spec_digest(rset: &ResourceSet) -> String {
    sha256(&serde_json::to_vec(&rset.spec).unwrap_or_default())
}

/// The revision of a set of objects: the digest of their YAML, as written out.
pub fn revision(objects: &[&Value]) -> String {
    let text: String = objects
        .iter()
        .map(|o| goyaml::to_yaml(o) + "---\n")
        .collect();
    sha256(text.as_bytes())
}

/// What a reconcile answers to: spec, annotations, finalizers, deletion (not status writes).
fn reconcile_trigger(rset: &ResourceSet) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    rset.metadata.generation.hash(&mut hasher);
    rset.annotations().hash(&mut hasher);
    rset.finalizers().hash(&mut hasher);
    rset.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
}

/// Does `reference` of `rset` pick `provider`?
fn picks(rset: &ResourceSet, provider: &ResourceSetInputProvider) -> bool {
    if provider.namespace() != rset.namespace() {
        return false;
    }
    rset.spec.inputs_from.iter().flatten().any(|reference| {
        match (&reference.name, &reference.selector) {
            (Some(name), _) => *name == provider.name_any(),
            (None, Some(selector)) => {
                rs::selector_matches(selector, provider.labels()).unwrap_or(false)
            }
            _ => false,
        }
    })
}

/// Runs the ResourceSet and ResourceSetInputProvider controllers until their watches end.
pub async fn run(ctx: Context) {
    let rsets = Api::<ResourceSet>::all(ctx.client.clone());
    let providers = Api::<ResourceSetInputProvider>::all(ctx.client.clone());
    // Status writes (every reconcile records its history) must not wake the controller.
    let (reader, writer) = reflector::store();
    let triggers = watcher(rsets, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(reconcile_trigger, PredicateConfig::default());
    let controller = Controller::for_stream(triggers, reader);
    let store = controller.store();
    // A provider that exported new inputs wakes the ResourceSets that read it.
    let exported = watcher(providers.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .predicate_filter(
            |p: &ResourceSetInputProvider| {
                p.status
                    .as_ref()
                    .and_then(|s| s.last_exported_revision.as_ref())
                    .map(|r| {
                        use std::hash::{Hash, Hasher};
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        r.hash(&mut h);
                        h.finish()
                    })
            },
            Default::default(),
        );
    let metrics = ctx.metrics.clone();
    let provider_ctx = Arc::new(provider::Context {
        client: ctx.client.clone(),
        metrics: ctx.metrics.clone(),
        reporter: ctx.reporter.clone(),
    });
    let (watches, drifted) = drift::Watches::new(ctx.client.clone());
    let _ = ctx.watches.set(watches);
    let drifted = futures::stream::unfold(drifted, |mut receiver| async move {
        receiver.recv().await.map(|rset| (rset, receiver))
    });
    let ctx = Arc::new(ctx);
    let rset_loop = controller
        .reconcile_on(drifted)
        .watches_stream(exported, move |provider: ResourceSetInputProvider| {
            store
                .state()
                .into_iter()
                .filter(|r| picks(r, &provider))
                .map(|r| ObjectRef::from_obj(&*r))
                .collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(kube::runtime::controller::Error::QueueError(error)) = result {
                tracing::warn!(%error, "watching ResourceSets failed; are the CRDs installed?");
            }
            futures::future::ready(())
        });
    tokio::join!(rset_loop, provider::run(provider_ctx, metrics));
}

fn error_policy(rset: Arc<ResourceSet>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(resourceset = %rset.name_any(), namespace = ?rset.namespace(), %error, "reconcile failed");
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            kind: "ResourceSet".into(),
            result: "error".into(),
        })
        .inc();
    Action::requeue(crate::policy::requeue::ERROR)
}

async fn reconcile(rset: Arc<ResourceSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = rset.namespace().unwrap_or_default();
    let api = Api::<ResourceSet>::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, rset, |event| async {
        match event {
            FinalizerEvent::Apply(rset) => apply(&rset, &ctx).await,
            FinalizerEvent::Cleanup(rset) => {
                uninstall(&rset, &ctx).await;
                ctx.metrics.remove_resourceset(&namespace, &rset.name_any());
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(rset: &ResourceSet, ctx: &Context) -> Result<Action, Error> {
    let started = Instant::now();
    let span = tracing::info_span!("reconcile", resourceset = %rset.name_any(), namespace = ?rset.namespace());
    let outcome = tracing::Instrument::instrument(run_stages(rset, ctx, started), span).await;
    let now = Timestamp::now();
    let after = status::next_status(rset, &outcome, started.elapsed(), now);
    let before = rset.status.clone();
    let namespace = rset.namespace().unwrap_or_default();
    let name = rset.name_any();
    if before.as_ref() != Some(&after) {
        crate::controller::replace_status(
            &Api::<ResourceSet>::namespaced(ctx.client.clone(), &namespace),
            &name,
            &after,
        )
        .await
        .map_err(|source| Error::Status {
            namespace: namespace.clone(),
            name: name.clone(),
            source,
        })?;
    }
    let events = status::events(before.as_ref(), &after, &outcome);
    if !events.is_empty() {
        crate::controller::publish_events(
            &ctx.client,
            &ctx.reporter,
            &rset.object_ref(&()),
            events,
        )
        .await;
    }
    if let (Some(watches), Some(inventory)) = (ctx.watches.get(), after.inventory.as_ref()) {
        watches.ensure(inventory);
    }
    ctx.metrics.set_resourceset(rset, &after);
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            kind: "ResourceSet".into(),
            result: outcome.result().into(),
        })
        .inc();
    Ok(status::next_action(rset, &outcome, &after, now))
}

/// The stages of one reconcile, each ending it with an outcome when it cannot go on.
async fn run_stages(rset: &ResourceSet, ctx: &Context, started: Instant) -> Outcome {
    if rset.is_reconcile_disabled() {
        return Outcome::Disabled;
    }
    if let Err(outcome) = dependencies::check(rset, &ctx.applier, || spec_digest(rset)).await {
        return outcome;
    }
    let sources = match provider_sources(rset, ctx).await {
        Ok(sources) => sources,
        Err(message) => {
            return Outcome::Failed {
                message,
                digest: spec_digest(rset),
                inventory: None,
            };
        }
    };
    let manifest = serde_json::to_value(rset).unwrap_or_default();
    let rendered = match rs::render(&manifest, &sources) {
        Ok(rendered) => rendered,
        Err(error) => {
            return Outcome::Stalled {
                reason: reason::BUILD_FAILED,
                message: format!("build failed: {error}"),
                digest: spec_digest(rset),
            };
        }
    };
    let applier = match ctx.applier_for(rset) {
        Ok(applier) => applier,
        Err(outcome) => return outcome,
    };
    converge(rset, &applier, rendered.steps, rendered.inputs, started).await
}

/// The exported inputs of every provider the ResourceSet references, from the cluster.
async fn provider_sources(
    rset: &ResourceSet,
    ctx: &Context,
) -> Result<Vec<rs::inputs::Source>, String> {
    let namespace = rset.namespace().unwrap_or_default();
    let api = Api::<ResourceSetInputProvider>::namespaced(ctx.client.clone(), &namespace);
    let mut found: BTreeMap<String, ResourceSetInputProvider> = BTreeMap::new();
    let mut listed: Option<Vec<ResourceSetInputProvider>> = None;
    for reference in rset.spec.inputs_from.iter().flatten() {
        match (&reference.name, &reference.selector) {
            (Some(name), _) => {
                let provider = api
                    .get_opt(name)
                    .await
                    .map_err(|e| {
                        format!("reading ResourceSetInputProvider {namespace}/{name}: {e}")
                    })?
                    .ok_or_else(|| {
                        format!("ResourceSetInputProvider {namespace}/{name} not found")
                    })?;
                found.insert(name.clone(), provider);
            }
            (None, Some(selector)) => {
                // One list serves every selector.
                if listed.is_none() {
                    listed = Some(
                        api.list(&ListParams::default())
                            .await
                            .map_err(|e| {
                                format!("listing ResourceSetInputProviders in {namespace}: {e}")
                            })?
                            .items,
                    );
                }
                for provider in listed.iter().flatten() {
                    if rs::selector_matches(selector, provider.labels())? {
                        found.insert(provider.name_any(), provider.clone());
                    }
                }
            }
            (None, None) => {}
        }
    }
    // A provider that never exported is not "no inputs": rendering nothing would prune
    // everything the ResourceSet applied.
    if let Some((name, _)) = found.iter().find(|(_, p)| {
        p.status
            .as_ref()
            .and_then(|s| s.last_exported_revision.as_ref())
            .is_none()
    }) {
        return Err(format!(
            "ResourceSetInputProvider {namespace}/{name} has not exported inputs yet"
        ));
    }
    Ok(found
        .into_iter()
        .map(|(name, provider)| {
            let exported: Vec<rs::inputs::InputSet> = provider
                .status
                .and_then(|s| s.exported_inputs)
                .unwrap_or_default()
                .into_iter()
                .map(|set| set.0.into_iter().collect())
                .collect();
            rs::provider_source(&name, &namespace, &exported)
        })
        .collect())
}

/// A health wait that ends the step: the message names the step and what is not ready.
fn unhealthy_message(step: &str, outcome: &HealthOutcome) -> String {
    let what = match outcome {
        HealthOutcome::Unhealthy(objects) => apply::describe_unhealthy(objects),
        HealthOutcome::Canceled(why) => why.clone(),
        HealthOutcome::Healthy => String::new(),
    };
    if step.is_empty() {
        format!("health check failed: {what}")
    } else {
        format!("step {step:?} health check failed: {what}")
    }
}

fn owned_by(rset: &ResourceSet, live: &Value) -> Result<(), String> {
    let labels = &live["metadata"]["labels"];
    let name = rset.name_any();
    let namespace = rset.namespace().unwrap_or_default();
    if labels[OWNER_NAME_LABEL].as_str() != Some(&name)
        || labels[OWNER_NAMESPACE_LABEL].as_str() != Some(&namespace)
    {
        return Err(format!(
            "not labelled as applied by ResourceSet {namespace}/{name}"
        ));
    }
    if live["metadata"]["annotations"][annotation::PRUNE]
        .as_str()
        .is_some_and(|v| v.eq_ignore_ascii_case(annotation::DISABLED_VALUE))
    {
        return Err(format!(
            "{}: {}",
            annotation::PRUNE,
            annotation::DISABLED_VALUE
        ));
    }
    Ok(())
}

/// Flux's appliers are deleted first (and waited for), so they clean up what they applied
/// while their sources and accounts still exist.
fn is_flux_applier(id: &ObjectId) -> bool {
    id.group.starts_with("kustomize.toolkit.fluxcd.io")
        || id.group.starts_with("helm.toolkit.fluxcd.io")
}

/// Deletes `stale` objects that carry this ResourceSet's owner labels; the lines for the
/// Event.
async fn prune(
    rset: &ResourceSet,
    applier: &Applier,
    stale: &[(ObjectId, String)],
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let guard = |live: &Value| owned_by(rset, live);
    let mut lines = Vec::new();
    let (appliers, rest): (Vec<_>, Vec<_>) = stale
        .iter()
        .cloned()
        .partition(|(id, _)| is_flux_applier(id));
    for batch in [appliers, rest] {
        let mut deleted = Vec::new();
        for (id, version) in &batch {
            match applier
                .delete_with(id, version, &guard, PropagationPolicy::Background)
                .await
            {
                Ok(apply::Deletion::Deleted) => {
                    lines.push(format!("{id} deleted"));
                    deleted.push((id.clone(), version.clone()));
                }
                Ok(apply::Deletion::Absent) => {}
                Ok(apply::Deletion::Kept(why)) => tracing::info!(object = %id, %why, "not pruned"),
                Err(error) => return Err(format!("pruning {id}: {error}")),
            }
        }
        if deleted.iter().any(|(id, _)| is_flux_applier(id)) {
            applier
                .wait_gone(&deleted, timeout)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(lines)
}

/// Applies the steps in order (each non-final one must become healthy first), prunes what
/// the new set lacks, and waits for the last step's objects when `spec.wait` is set.
async fn converge(
    rset: &ResourceSet,
    applier: &Applier,
    steps: Vec<StepObjects>,
    inputs: usize,
    started: Instant,
) -> Outcome {
    let all: Vec<&Value> = steps.iter().flat_map(|s| &s.objects).collect();
    let revision = revision(&all);
    let mut entries: Vec<_> = steps
        .iter()
        .flat_map(|s| object::inventory(&s.objects).entries)
        .collect();
    entries.sort();
    entries.dedup();
    let new_inventory = ResourceInventory { entries };
    let previous = rset.status.as_ref().and_then(|s| s.inventory.clone());
    let union = |previous: &Option<ResourceInventory>| -> ResourceInventory {
        let mut entries = previous
            .as_ref()
            .map(|p| p.entries.clone())
            .unwrap_or_default();
        entries.extend(new_inventory.entries.iter().cloned());
        entries.sort();
        entries.dedup();
        ResourceInventory { entries }
    };
    let failed = |message: String| Outcome::Failed {
        message,
        digest: revision.clone(),
        inventory: Some(union(&previous)),
    };
    let options = apply::Options {
        recreate_immutable: rset.force_enabled(),
        dry_run: false,
    };
    let timeout = rset.reconcile_timeout();
    let never = || None;
    let no_drift = || 0;
    let mut changes = Vec::new();
    let last = steps.len().saturating_sub(1);
    let mut final_objects: Vec<(ObjectId, String)> = Vec::new();
    let mut known = BTreeMap::new();
    let mut stored = BTreeMap::new();
    for (i, step) in steps.iter().enumerate() {
        let change_set = match applier.apply_all(&step.objects, options).await {
            Ok(change_set) => change_set,
            Err(error) => {
                let at = if step.name.is_empty() {
                    String::new()
                } else {
                    format!("step {:?}: ", step.name)
                };
                return failed(format!("{at}{error}"));
            }
        };
        changes.extend(
            change_set
                .changed()
                .map(|e| format!("{} {}", e.id, e.action)),
        );
        known.clear();
        stored.clear();
        for entry in change_set.entries {
            stored.insert(entry.id.clone(), entry.stored.clone());
            if let Some(live) = entry.live {
                known.insert(entry.id, live);
            }
        }
        let objects: Vec<(ObjectId, String)> =
            step.objects.iter().filter_map(ObjectId::of).collect();
        if i < last {
            let step_timeout = rset
                .spec
                .steps
                .as_ref()
                .and_then(|s| s.get(i))
                .and_then(|s| s.timeout.as_deref())
                .and_then(|t| crate::api::duration::parse(t).ok())
                .unwrap_or(timeout);
            match applier
                .wait_healthy(&objects, &known, &stored, step_timeout, &never, &no_drift)
                .await
            {
                Ok(HealthOutcome::Healthy) => {}
                Ok(other) => return failed(unhealthy_message(&step.name, &other)),
                Err(error) => return failed(format!("step {:?}: {error}", step.name)),
            }
        } else {
            final_objects = objects;
        }
    }
    let stale = previous
        .as_ref()
        .map(|p| object::stale(p, &new_inventory))
        .unwrap_or_default();
    match prune(rset, applier, &stale, timeout).await {
        Ok(lines) => changes.extend(lines),
        Err(message) => return failed(message),
    }
    if rset.spec.wait() {
        match applier
            .wait_healthy(&final_objects, &known, &stored, timeout, &never, &no_drift)
            .await
        {
            Ok(HealthOutcome::Healthy) => {}
            Ok(other) => {
                let name = steps.last().map(|s| s.name.as_str()).unwrap_or_default();
                return Outcome::Failed {
                    message: unhealthy_message(name, &other),
                    digest: revision,
                    inventory: Some(new_inventory),
                };
            }
            Err(error) => return failed(error.to_string()),
        }
    }
    Outcome::Succeeded(Applied {
        inventory: new_inventory,
        revision,
        changes,
        elapsed: started.elapsed(),
        inputs,
        resources: all.len(),
        steps: rset
            .spec
            .steps
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(Vec::len),
    })
}

/// Deletes what the ResourceSet applied (its owner-labelled objects, Flux appliers first).
/// Failures are logged: the finalizer goes either way, as with the incumbent.
async fn uninstall(rset: &ResourceSet, ctx: &Context) {
    let Some(inventory) = rset.status.as_ref().and_then(|s| s.inventory.as_ref()) else {
        return;
    };
    if rset.is_reconcile_disabled() || inventory.entries.is_empty() {
        return;
    }
    let applier = match ctx.applier_for(rset) {
        Ok(applier) => applier,
        Err(_) => {
            tracing::warn!(resourceset = %rset.name_any(), "cannot impersonate its ServiceAccount: its objects are left in place");
            return;
        }
    };
    let all = object::stale(
        inventory,
        &ResourceInventory {
            entries: Vec::new(),
        },
    );
    match prune(rset, &applier, &all, rset.reconcile_timeout()).await {
        Ok(lines) => {
            tracing::info!(resourceset = %rset.name_any(), deleted = lines.len(), "uninstalled")
        }
        Err(error) => {
            tracing::warn!(resourceset = %rset.name_any(), %error, "uninstall failed; the finalizer is removed anyway")
        }
    }
}
