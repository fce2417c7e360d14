//! Talking to the cluster about rendered objects: staged server-side apply that writes only
//! what drifted, health waits, deletion for prune, storage migration. Knows nothing about
//! Flux: it takes objects and reports or applies them. Decisions (order, inventory, health
//! rules, ownership takeover, diffs) are pure functions in the submodules.

pub mod diff;
pub mod health;
pub mod migrate;
pub mod object;
pub mod ownership;
pub mod paging;
pub mod refusal;

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::Mutex,
    time::Duration,
};

use futures::{StreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{
    Client,
    api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy},
    core::{ApiResource, GroupVersionKind},
    discovery::{ApiCapabilities, Scope},
};
use serde_json::Value;

pub use health::Health;
pub use object::ObjectId;

use crate::{
    policy::kube::{
        APPLY_CONCURRENCY, CONFLICT_ATTEMPTS, CRD_ESTABLISHED_TIMEOUT, RECREATE_TIMEOUT,
    },
    poll::{Deadline, TimedOut},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("a manifest has no apiVersion, kind or name: {0}")]
    Invalid(String),
    #[error("{object}: the cluster does not serve {api_version} {kind}: {source}")]
    UnknownKind {
        /// The object, as `Kind/namespace/name`.
        object: String,
        api_version: String,
        kind: String,
        source: Box<kube::Error>,
    },
    #[error("{object}: {source}")]
    Request {
        object: String,
        source: Box<kube::Error>,
    },
    #[error(
        "{object}: {message}; it has to be recreated: annotate the FluxInstance with reconcile.fluxcd.io/forceAt to allow it"
    )]
    Immutable { object: String, message: String },
    /// Recreating a CRD deletes every object of its kind, so fluxop never does it.
    #[error(
        "{object}: {message}; fluxop does not recreate a CustomResourceDefinition, as deleting it deletes every object of its kind: change the CRD by hand, or move its objects out first"
    )]
    CrdImmutable { object: String, message: String },
    #[error("CustomResourceDefinitions not established after {0:?}: {1}")]
    NotEstablished(Duration, String),
    #[error(
        "{object}: changed by someone else {attempts} times in a row while fluxop took over its fields; will retry"
    )]
    KeepsChanging { object: String, attempts: usize },
    #[error("still terminating after {0:?}: {1}")]
    StillTerminating(Duration, String),
    #[error("{} objects failed: {}", .0.len(), join(.0))]
    Many(Vec<Error>),
}

fn join(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What an apply did (or, in a dry run, would do) to one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Created,
    /// The fields that changed, as `path: old -> new`.
    Configured(Vec<String>),
    Recreated,
    Unchanged,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Configured(_) => "configured",
            Action::Recreated => "recreated",
            Action::Unchanged => "unchanged",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub id: ObjectId,
    pub action: Action,
    /// The stored object when the apply found nothing to change: still current, so a
    /// health check right after need not read it again.
    pub live: Option<Value>,
    /// What the apply left stored (nothing known in a dry run).
    pub stored: Stored,
}

/// Which object an apply left stored (its uid) at which spec generation. Seen later as
/// missing, replaced or at another generation, it was changed by someone else meanwhile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub uid: Option<String>,
    pub generation: Option<i64>,
}

impl Stored {
    pub fn of(metadata: &ObjectMeta) -> Self {
        Self {
            uid: metadata.uid.clone(),
            generation: metadata.generation,
        }
    }

    fn of_value(object: &Value) -> Self {
        Self {
            uid: object["metadata"]["uid"].as_str().map(str::to_string),
            generation: object["metadata"]["generation"].as_i64(),
        }
    }

    /// How `live` (the object as read now; `None`: not found) departs from what the apply
    /// stored, if it does. Status updates do not move the generation, so they are no drift.
    pub fn drift(&self, live: Option<&Value>) -> Option<String> {
        let Some(live) = live else {
            return self.uid.is_some().then(|| "deleted".to_string());
        };
        let now = Self::of_value(live);
        match (self, &now) {
            (Stored { uid: Some(a), .. }, Stored { uid: Some(b), .. }) if a != b => {
                Some("deleted and created again".into())
            }
            (
                Stored {
                    generation: Some(a),
                    ..
                },
                Stored {
                    generation: Some(b),
                    ..
                },
            ) if a != b => Some(format!("changed (generation {a} → {b})")),
            _ => None,
        }
    }
}

/// The outcome of applying a set of objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    pub entries: Vec<Applied>,
}

impl ChangeSet {
    pub fn changed(&self) -> impl Iterator<Item = &Applied> {
        self.entries
            .iter()
            .filter(|e| e.action != Action::Unchanged)
    }

    /// One line per changed object (`Deployment/flux-system/x configured`), for events.
    pub fn summary(&self) -> String {
        self.changed()
            .map(|e| format!("{} {}", e.id, e.action))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Delete and create objects whose immutable fields changed (else an error).
    pub recreate_immutable: bool,
    /// Only find out what would change: nothing is written.
    pub dry_run: bool,
}

/// How a wait for health ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthOutcome {
    Healthy,
    /// Objects that failed or were still in progress at the deadline, with why.
    Unhealthy(Vec<(ObjectId, Health)>),
    /// Waiting stopped early, with why: the caller asked (a newer reconcile request), or an
    /// object applied was changed or deleted meanwhile (the wait would only run out).
    Canceled(String),
}

/// Objects that are not healthy, one `Kind/ns/name failed: why` or `Kind/ns/name: why` each,
/// for conditions and Events.
pub fn describe_unhealthy(objects: &[(ObjectId, Health)]) -> String {
    objects
        .iter()
        .map(|(id, health)| match health {
            Health::Failed(m) => format!("{id} failed: {m}"),
            Health::InProgress(m) => format!("{id}: {m}"),
            Health::Current => format!("{id}: ok"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The health of an object as read (`None`: not found, so still in progress).
fn health_of(live: Option<&Value>) -> Health {
    live.map_or_else(|| Health::InProgress("not found".into()), health::evaluate)
}

/// What [`Applier::delete`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deletion {
    Deleted,
    /// Already gone.
    Absent,
    /// Kept: the guard refused it, with the reason.
    Kept(String),
}

/// Applies objects with one field manager. Caches how each kind is served, so a steady-state
/// reconcile makes no discovery requests.
pub struct Applier {
    client: Client,
    manager: String,
    resources: Mutex<HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>>,
}

impl Applier {
    pub fn new(client: Client, manager: &str) -> Self {
        Self {
            client,
            manager: manager.to_string(),
            resources: Mutex::default(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn cached(&self, gvk: &GroupVersionKind) -> Option<(ApiResource, ApiCapabilities)> {
        self.resources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(gvk)
            .cloned()
    }

    /// How the cluster serves `id`'s kind at `version`.
    async fn resolve(&self, id: &ObjectId, version: &str) -> Result<(ApiResource, Scope), Error> {
        let gvk = GroupVersionKind::gvk(&id.group, version, &id.kind);
        if let Some((resource, capabilities)) = self.cached(&gvk) {
            return Ok((resource, capabilities.scope));
        }
        let (resource, capabilities) = kube::discovery::pinned_kind(&self.client, &gvk)
            .await
            .map_err(|source| Error::UnknownKind {
                object: id.to_string(),
                api_version: id.api_version(version),
                kind: id.kind.clone(),
                source: Box::new(source),
            })?;
        let scope = capabilities.scope.clone();
        self.resources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(gvk, (resource.clone(), capabilities));
        Ok((resource, scope))
    }

    /// Forgets how kinds are served: after CRDs changed, versions may have come or gone.
    pub fn forget_kinds(&self) {
        self.resources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    pub async fn api(&self, id: &ObjectId, version: &str) -> Result<Api<DynamicObject>, Error> {
        let (resource, scope) = self.resolve(id, version).await?;
        // A namespaced kind without a namespace means all namespaces (a list across them).
        Ok(match scope {
            Scope::Namespaced if !id.namespace.is_empty() => {
                Api::namespaced_with(self.client.clone(), &id.namespace, &resource)
            }
            Scope::Namespaced | Scope::Cluster => Api::all_with(self.client.clone(), &resource),
        })
    }

    /// The live object, if any.
    pub async fn get(&self, id: &ObjectId, version: &str) -> Result<Option<Value>, Error> {
        let api = self.api(id, version).await?;
        let live = api
            .get_opt(&id.name)
            .await
            .map_err(|source| Error::Request {
                object: id.to_string(),
                source: Box::new(source),
            })?;
        Ok(live.map(|o| serde_json::to_value(o).unwrap_or_default()))
    }

    /// Applies one object: a server-side dry run first, and a write only when the result
    /// differs from what is stored or earlier managers' fields must be taken over.
    pub async fn apply(&self, object: &Value, options: Options) -> Result<Applied, Error> {
        let (id, version) =
            ObjectId::of(object).ok_or_else(|| Error::Invalid(object.to_string()))?;
        let failed = |source| Error::Request {
            object: id.to_string(),
            source: Box::new(source),
        };
        let api = match self.api(&id, &version).await {
            // A dry run cannot check kinds whose CRD is not there yet: it would be created.
            Err(Error::UnknownKind { .. }) if options.dry_run => {
                return Ok(Applied {
                    id,
                    action: Action::Created,
                    live: None,
                    stored: Stored::default(),
                });
            }
            other => other?,
        };
        let force = PatchParams::apply(&self.manager).force();
        let live = api.get_opt(&id.name).await.map_err(failed)?;
        let Some(live) = live else {
            let mut stored = Stored::default();
            if !options.dry_run {
                let created = api
                    .patch(&id.name, &force, &Patch::Apply(object))
                    .await
                    .map_err(failed)?;
                stored = Stored::of(&created.metadata);
            }
            return Ok(Applied {
                id,
                action: Action::Created,
                live: None,
                stored,
            });
        };
        let live = serde_json::to_value(live).unwrap_or_default();
        let takeover = ownership::takeover_patch(&live, &self.manager);
        let would_be = match api
            .patch(&id.name, &force.clone().dry_run(), &Patch::Apply(object))
            .await
        {
            Ok(would_be) => serde_json::to_value(would_be).unwrap_or_default(),
            Err(kube::Error::Api(status)) if refusal::immutable_fields(&status).is_some() => {
                if id.is_crd() {
                    return Err(Error::CrdImmutable {
                        object: id.to_string(),
                        message: status.message,
                    });
                }
                if options.dry_run {
                    return Ok(Applied {
                        id,
                        action: Action::Recreated,
                        live: None,
                        stored: Stored::default(),
                    });
                }
                if !options.recreate_immutable {
                    return Err(Error::Immutable {
                        object: id.to_string(),
                        message: status.message,
                    });
                }
                let stored = self.recreate(&api, &id, &live, object).await?;
                return Ok(Applied {
                    id,
                    action: Action::Recreated,
                    live: None,
                    stored,
                });
            }
            Err(source) => return Err(failed(source)),
        };
        let fields = diff::differences(&live, &would_be);
        if fields.is_empty() && takeover.is_none() {
            return Ok(Applied {
                id,
                action: Action::Unchanged,
                stored: Stored::of_value(&live),
                live: Some(live),
            });
        }
        let mut stored = Stored::default();
        if !options.dry_run {
            if takeover.is_some() {
                self.take_over(&api, &id, live).await?;
            }
            let configured = api
                .patch(&id.name, &force, &Patch::Apply(object))
                .await
                .map_err(failed)?;
            stored = Stored::of(&configured.metadata);
        }
        Ok(Applied {
            id,
            action: Action::Configured(fields),
            live: None,
            stored,
        })
    }

    /// Moves the fields of earlier managers to ours (see [`ownership`]). The patch carries
    /// the resourceVersion `live` was read at, so it fails with 409 Conflict instead of
    /// overwriting `managedFields` someone changed meanwhile; then the object is read again
    /// and the patch computed anew, up to [`CONFLICT_ATTEMPTS`] times.
    async fn take_over(
        &self,
        api: &Api<DynamicObject>,
        id: &ObjectId,
        mut live: Value,
    ) -> Result<(), Error> {
        let failed = |source| Error::Request {
            object: id.to_string(),
            source: Box::new(source),
        };
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let Some(patch) = ownership::takeover_patch(&live, &self.manager) else {
                return Ok(());
            };
            let patch: json_patch::Patch = serde_json::from_value(patch)
                .map_err(|e| Error::Invalid(format!("{id}: ownership patch: {e}")))?;
            match api
                .patch(&id.name, &PatchParams::default(), &Patch::<()>::Json(patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(error) if refusal::is_conflict(&error) => {
                    tracing::info!(object = %id, attempt, "changed while taking over its fields; reading it again");
                    match api.get_opt(&id.name).await.map_err(failed)? {
                        Some(again) => live = serde_json::to_value(again).unwrap_or_default(),
                        // Gone: the apply that follows creates it, with nothing to take over.
                        None => return Ok(()),
                    }
                }
                Err(error) => return Err(failed(error)),
            }
        }
        Err(Error::KeepsChanging {
            object: id.to_string(),
            attempts: CONFLICT_ATTEMPTS,
        })
    }

    /// Deletes `live` (only that object: a uid precondition) and creates `object` anew.
    async fn recreate(
        &self,
        api: &Api<DynamicObject>,
        id: &ObjectId,
        live: &Value,
        object: &Value,
    ) -> Result<Stored, Error> {
        let failed = |source| Error::Request {
            object: id.to_string(),
            source: Box::new(source),
        };
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: live["metadata"]["uid"].as_str().map(|uid| Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&id.name, &params).await {
            Ok(_) => {}
            // Already gone: create what is rendered. Replaced meanwhile (the uid differs, 409):
            // an error, and the next reconcile looks at the new object.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(failed(source)),
        }
        let mut wait = Deadline::after(RECREATE_TIMEOUT, Duration::from_millis(250));
        while api.get_opt(&id.name).await.map_err(failed)?.is_some() {
            if let Err(TimedOut(after)) = wait.pause().await {
                return Err(Error::StillTerminating(
                    after,
                    format!("{id}, deleted to be recreated"),
                ));
            }
        }
        let created = api
            .patch(
                &id.name,
                &PatchParams::apply(&self.manager).force(),
                &Patch::Apply(object),
            )
            .await
            .map_err(failed)?;
        Ok(Stored::of(&created.metadata))
    }

    /// Applies many objects, a few at a time, in the order given; every failure is reported.
    async fn apply_concurrently(
        &self,
        objects: &[&Value],
        options: Options,
    ) -> Result<Vec<Applied>, Error> {
        // The futures are built before they become a stream: a closure in the stream would
        // make the whole reconcile future fail the `Send` check (a rustc limitation).
        let applies: Vec<_> = objects.iter().map(|o| self.apply(o, options)).collect();
        let results: Vec<Result<Applied, Error>> = stream::iter(applies)
            .buffered(APPLY_CONCURRENCY)
            .collect()
            .await;
        let (applied, errors): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
        let mut errors: Vec<Error> = errors.into_iter().filter_map(Result::err).collect();
        match errors.len() {
            0 => Ok(applied.into_iter().filter_map(Result::ok).collect()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Many(errors)),
        }
    }

    /// Applies `objects` in two stages: definitions (CRDs, Namespaces, ClusterRoles), then,
    /// once every CRD is Established, everything else. The change set is in apply order.
    pub async fn apply_all(&self, objects: &[Value], options: Options) -> Result<ChangeSet, Error> {
        let mut ordered: Vec<(ObjectId, &Value)> = objects
            .iter()
            .map(|o| {
                ObjectId::of(o)
                    .map(|(id, _)| (id, o))
                    .ok_or_else(|| Error::Invalid(o.to_string()))
            })
            .collect::<Result<_, _>>()?;
        ordered.sort_by(|(a, _), (b, _)| object::apply_order(a, b));
        let (definitions, rest): (Vec<_>, Vec<_>) =
            ordered.into_iter().partition(|(id, _)| id.is_definition());
        let definitions: Vec<&Value> = definitions.into_iter().map(|(_, o)| o).collect();
        let rest: Vec<&Value> = rest.into_iter().map(|(_, o)| o).collect();

        let mut entries = self.apply_concurrently(&definitions, options).await?;
        let crds_changed = entries
            .iter()
            .any(|e| e.id.is_crd() && e.action != Action::Unchanged);
        if crds_changed && !options.dry_run {
            // An unchanged CRD was read moments ago: only those not Established then, and
            // those just written, are waited for.
            let crds: Vec<ObjectId> = entries
                .iter()
                .filter(|e| e.id.is_crd())
                .filter(|e| {
                    !e.live
                        .as_ref()
                        .is_some_and(|live| health::evaluate(live).is_current())
                })
                .map(|e| e.id.clone())
                .collect();
            self.wait_established(&crds, CRD_ESTABLISHED_TIMEOUT)
                .await?;
            // Versions may have been added or removed: learn them again.
            self.forget_kinds();
        }
        entries.extend(self.apply_concurrently(&rest, options).await?);
        Ok(ChangeSet { entries })
    }

    async fn wait_established(&self, crds: &[ObjectId], timeout: Duration) -> Result<(), Error> {
        let mut wait = Deadline::after(timeout, Duration::from_millis(200));
        let mut pending: Vec<ObjectId> = crds.to_vec();
        loop {
            let gets: Vec<_> = pending.iter().map(|id| self.get(id, "v1")).collect();
            let checks = stream::iter(gets)
                .buffered(APPLY_CONCURRENCY)
                .collect::<Vec<_>>()
                .await;
            let mut still = Vec::new();
            for (id, live) in pending.iter().zip(checks) {
                match live? {
                    Some(live) if health::evaluate(&live).is_current() => {}
                    _ => still.push(id.clone()),
                }
            }
            pending = still;
            if pending.is_empty() {
                return Ok(());
            }
            if wait.pause().await.is_err() {
                let names: Vec<String> = pending.iter().map(|i| i.name.clone()).collect();
                return Err(Error::NotEstablished(timeout, names.join(", ")));
            }
        }
    }

    /// The health of each object now; a missing object is in progress.
    pub async fn health(
        &self,
        objects: &[(ObjectId, String)],
    ) -> Result<Vec<(ObjectId, Health)>, Error> {
        Ok(self
            .read_all(objects)
            .await?
            .into_iter()
            .map(|(id, live)| (id, health_of(live.as_ref())))
            .collect())
    }

    /// Each object as stored now (`None`: not found), a few reads at a time.
    async fn read_all(
        &self,
        objects: &[(ObjectId, String)],
    ) -> Result<Vec<(ObjectId, Option<Value>)>, Error> {
        let gets: Vec<_> = objects
            .iter()
            .map(|(id, version)| self.get(id, version))
            .collect();
        let reads = stream::iter(gets)
            .buffered(APPLY_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        objects
            .iter()
            .zip(reads)
            .map(|((id, _), live)| Ok((id.clone(), live?)))
            .collect()
    }

    /// Waits until every object is healthy, one of them fails, the timeout passes, or waiting
    /// is pointless: `canceled()` says to stop, or an object departs from what the apply
    /// `stored` (deleted, replaced, its spec changed by someone: the drift is corrected by
    /// applying again, not by waiting it out). Objects already healthy are not read again,
    /// nor are those whose current state is `known` (read moments ago) and healthy — until
    /// `drift_epoch()` moves (a drift watch saw a change), when all are read once more.
    pub async fn wait_healthy(
        &self,
        objects: &[(ObjectId, String)],
        known: &BTreeMap<ObjectId, Value>,
        stored: &BTreeMap<ObjectId, Stored>,
        timeout: Duration,
        canceled: &(dyn Fn() -> Option<String> + Sync),
        drift_epoch: &(dyn Fn() -> u64 + Sync),
    ) -> Result<HealthOutcome, Error> {
        let mut wait =
            Deadline::after(timeout, Duration::from_millis(250)).growing_to(Duration::from_secs(2));
        let mut epoch = drift_epoch();
        let mut pending: Vec<(ObjectId, String)> = objects
            .iter()
            .filter(|(id, _)| {
                !known
                    .get(id)
                    .is_some_and(|live| health::evaluate(live).is_current())
            })
            .cloned()
            .collect();
        if pending.is_empty() {
            return Ok(HealthOutcome::Healthy);
        }
        loop {
            let read = self.read_all(&pending).await?;
            for (id, live) in &read {
                if let Some(why) = stored.get(id).and_then(|s| s.drift(live.as_ref())) {
                    return Ok(HealthOutcome::Canceled(format!("{id} was {why} meanwhile")));
                }
            }
            let checked: Vec<(ObjectId, Health)> = read
                .into_iter()
                .map(|(id, live)| {
                    let health = health_of(live.as_ref());
                    (id, health)
                })
                .collect();
            let failed: Vec<(ObjectId, Health)> = checked
                .iter()
                .filter(|(_, h)| matches!(h, Health::Failed(_)))
                .cloned()
                .collect();
            if !failed.is_empty() {
                return Ok(HealthOutcome::Unhealthy(failed));
            }
            let waiting: Vec<(ObjectId, Health)> = checked
                .into_iter()
                .filter(|(_, h)| !h.is_current())
                .collect();
            if waiting.is_empty() && drift_epoch() == epoch {
                return Ok(HealthOutcome::Healthy);
            }
            if wait.passed() {
                return Ok(HealthOutcome::Unhealthy(waiting));
            }
            if let Some(why) = canceled() {
                return Ok(HealthOutcome::Canceled(why));
            }
            let now = drift_epoch();
            if now != epoch {
                // Something fluxop installed changed: read everything once more, so a
                // deletion or edit of an object already judged healthy is noticed too.
                epoch = now;
                pending = objects.to_vec();
                wait.restart_pause();
                continue;
            }
            pending.retain(|(id, _)| waiting.iter().any(|(w, _)| w == id));
            if wait.pause().await.is_err() {
                return Ok(HealthOutcome::Unhealthy(waiting));
            }
        }
    }

    /// Deletes an object if `guard` allows it (it sees the live object and says why not).
    /// The delete carries the uid and resourceVersion of the object the guard judged, so an
    /// object replaced or changed (relabelled, annotated) since is not deleted: the API
    /// server answers 409 Conflict, and the object is read and judged again, up to
    /// [`CONFLICT_ATTEMPTS`] times; then it is kept and left to the next reconcile.
    pub async fn delete(
        &self,
        id: &ObjectId,
        version: &str,
        guard: &(dyn Fn(&Value) -> Result<(), String> + Sync),
    ) -> Result<Deletion, Error> {
        self.delete_with(id, version, guard, PropagationPolicy::Background)
            .await
    }

    /// [`Self::delete`] with a propagation policy: `Foreground` keeps the object (with a
    /// deletion timestamp) until the garbage collector has deleted its dependents, so its
    /// disappearance says they are gone too (a Deployment's ReplicaSets and Pods).
    pub async fn delete_with(
        &self,
        id: &ObjectId,
        version: &str,
        guard: &(dyn Fn(&Value) -> Result<(), String> + Sync),
        propagation: PropagationPolicy,
    ) -> Result<Deletion, Error> {
        let api = match self.api(id, version).await {
            // Its kind is gone (its CRD was deleted), so is the object.
            Err(Error::UnknownKind { .. }) => return Ok(Deletion::Absent),
            other => other?,
        };
        let failed = |source| Error::Request {
            object: id.to_string(),
            source: Box::new(source),
        };
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let Some(live) = api.get_opt(&id.name).await.map_err(failed)? else {
                return Ok(Deletion::Absent);
            };
            let judged = Preconditions {
                uid: live.metadata.uid.clone(),
                resource_version: live.metadata.resource_version.clone(),
            };
            let live = serde_json::to_value(live).unwrap_or_default();
            if let Err(reason) = guard(&live) {
                return Ok(Deletion::Kept(reason));
            }
            let params = DeleteParams {
                propagation_policy: Some(propagation.clone()),
                preconditions: Some(judged),
                ..DeleteParams::default()
            };
            match api.delete(&id.name, &params).await {
                Ok(_) => return Ok(Deletion::Deleted),
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    return Ok(Deletion::Absent);
                }
                Err(error) if refusal::is_conflict(&error) => {
                    tracing::info!(object = %id, attempt, "changed since judged deletable; judging it again");
                }
                Err(source) => return Err(failed(source)),
            }
        }
        let why = format!(
            "changed {CONFLICT_ATTEMPTS} times while being deleted; left to the next reconcile"
        );
        tracing::warn!(object = %id, %why, "not deleted");
        Ok(Deletion::Kept(why))
    }

    /// Waits until none of `objects` exists any more; those still there at the timeout are
    /// an error.
    pub async fn wait_gone(
        &self,
        objects: &[(ObjectId, String)],
        timeout: Duration,
    ) -> Result<(), Error> {
        let mut wait = Deadline::after(timeout, Duration::from_millis(500));
        let mut pending: Vec<(ObjectId, String)> = objects.to_vec();
        loop {
            let gets: Vec<_> = pending.iter().map(|(id, v)| self.get(id, v)).collect();
            let checks = stream::iter(gets)
                .buffered(APPLY_CONCURRENCY)
                .collect::<Vec<_>>()
                .await;
            let mut still = Vec::new();
            for (object, live) in pending.iter().zip(checks) {
                match live {
                    Ok(None) | Err(Error::UnknownKind { .. }) => {}
                    Ok(Some(_)) => still.push(object.clone()),
                    Err(error) => return Err(error),
                }
            }
            pending = still;
            if pending.is_empty() {
                return Ok(());
            }
            if wait.pause().await.is_err() {
                let names: Vec<String> = pending.iter().map(|(id, _)| id.to_string()).collect();
                return Err(Error::StillTerminating(timeout, names.join(", ")));
            }
        }
    }
}
