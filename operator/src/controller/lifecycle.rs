//! Converging the cluster to a rendered revision: upgrade checks, staged apply, health,
//! prune and storage migration; and uninstall. The Flux-specific rules (which objects are
//! ours to prune, which are health-checked, which are Flux custom resources) live here; the
//! cluster mechanics are in [`crate::apply`].

use std::time::{Duration, Instant};

use kube::api::PropagationPolicy;
use serde_json::Value;
use tracing::Instrument;

use crate::{
    api::{
        FluxInstance, ResourceInventory,
        constants::{annotation, label},
    },
    apply::{
        self, Applier, ChangeSet, Deletion, HealthOutcome, ObjectId, Options,
        migrate::{self, Migration},
        object,
        paging::Pager,
    },
    policy,
};

/// Why converging stopped short.
#[derive(Debug)]
pub enum Stop {
    /// A CRD still stores objects at versions the new release drops: nothing was applied.
    Blocked(String),
    /// The API server refused something (or was unreachable).
    Apply(apply::Error),
}

/// How far converging got.
#[derive(Debug)]
pub enum Converged {
    /// Applied, healthy (or not waited for), pruned and migrated.
    Healthy(Report),
    /// Applied but not healthy by the deadline, or failed: nothing was pruned.
    Unhealthy { report: Report, why: String },
    /// Waiting stopped early, with why: a newer reconcile request, or drift of an object
    /// just applied (the next reconcile, at once, applies it again).
    Canceled { report: Report, why: String },
}

/// What converging did.
#[derive(Debug, Default)]
pub struct Report {
    pub changes: ChangeSet,
    pub pruned: Vec<String>,
    pub kept: Vec<String>,
    /// CRDs that prune left in place because objects of their kind still exist; they stay
    /// in the inventory and are pruned once empty.
    pub crds_in_use: Vec<CrdInUse>,
    pub migrated: Vec<Migration>,
    pub elapsed: Duration,
}

/// A CRD that is no longer rendered but still has objects: deleting it would delete them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdInUse {
    pub id: ObjectId,
    /// The inventory's API version of the CRD object.
    pub version: String,
    /// Objects of its kind, in all namespaces; `None` when fluxop may not list them (then
    /// it cannot know the CRD is empty, and keeps it).
    pub objects: Option<u64>,
}

impl CrdInUse {
    pub fn describe(&self) -> String {
        match self.objects {
            Some(count) => format!(
                "CustomResourceDefinition {} still has {count} object{}",
                self.id.name,
                if count == 1 { "" } else { "s" }
            ),
            None => format!(
                "CustomResourceDefinition {} has objects fluxop may not list (forbidden)",
                self.id.name
            ),
        }
    }
}

/// What prune does with a stale CRD that still has objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrdPrune {
    /// A component left the spec: keep the CRD until its objects are gone.
    KeepInUse,
    /// Uninstall: the user deleted the instance, Flux's custom resources go with it.
    WithObjects,
}

impl Report {
    pub fn is_noop(&self) -> bool {
        self.changes.changed().next().is_none()
            && self.pruned.is_empty()
            && self.migrated.is_empty()
    }

    /// For events: the change set, then what was pruned and migrated.
    pub fn summary(&self) -> String {
        let mut lines: Vec<String> = self
            .changes
            .changed()
            .map(|e| format!("{} {}", e.id, e.action))
            .collect();
        lines.extend(self.pruned.iter().map(|p| format!("{p} deleted")));
        lines.extend(self.migrated.iter().map(|m| {
            format!(
                "CustomResourceDefinition/{} migrated {} objects from {} to {}",
                m.crd,
                m.objects,
                m.from.join(","),
                m.to
            )
        }));
        lines.join("\n")
    }
}

/// What converging needs besides the objects.
pub struct Plan<'a> {
    pub instance: &'a FluxInstance,
    pub objects: &'a [Value],
    /// Delete and recreate objects whose immutable fields changed (`forceAt`).
    pub recreate: bool,
    pub timeout: Duration,
    pub canceled: &'a (dyn Fn() -> Option<String> + Sync),
    /// Moves whenever a drift watch saw an installed object change (see
    /// [`Applier::wait_healthy`]).
    pub drift_epoch: &'a (dyn Fn() -> u64 + Sync),
    /// The objects are another revision than the applied one. When not, the CRDs are the
    /// installed ones: their stored versions need no check, and migration runs only if an
    /// apply changed a CRD (someone edited it).
    pub new_revision: bool,
}

/// Flux's own custom resources (the sync source and Kustomization): their readiness depends
/// on Git or a registry, not on the install, so they are applied but not waited for (the
/// FluxReport shows how the sync is doing).
fn is_flux_custom_resource(id: &ObjectId) -> bool {
    !id.is_crd() && id.group.ends_with(".fluxcd.io")
}

/// Objects worth checking: kinds whose health has rules beyond "exists".
fn is_health_checked(id: &ObjectId) -> bool {
    match (id.group.as_str(), id.kind.as_str()) {
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet") => true,
        ("batch", "Job") => true,
        ("", "PersistentVolumeClaim" | "Service") => true,
        _ => id.is_crd(),
    }
}

/// May prune delete `live`? Only what carries this instance's owner labels, never a
/// Namespace (it holds everything else, including what Flux deployed), never what is marked
/// `prune: disabled`.
pub fn prune_guard(instance: &FluxInstance, live: &Value) -> Result<(), String> {
    let metadata = &live["metadata"];
    let labels = &metadata["labels"];
    let name = instance.metadata.name.as_deref().unwrap_or_default();
    let namespace = instance.metadata.namespace.as_deref().unwrap_or_default();
    if live["kind"] == "Namespace" && live["apiVersion"] == "v1" {
        return Err("namespaces are never pruned".into());
    }
    if labels[label::OWNER_NAME] != name || labels[label::OWNER_NAMESPACE] != namespace {
        return Err(format!(
            "not created by FluxInstance {namespace}/{name} (owner labels differ)"
        ));
    }
    if metadata["annotations"][annotation::PRUNE] == annotation::DISABLED_VALUE {
        return Err(format!("annotated {}: disabled", annotation::PRUNE));
    }
    Ok(())
}

/// Refuses an upgrade whose CRDs drop versions objects are still stored at; with
/// `migrateResources` it first migrates them when the live CRD's storage version survives.
async fn check_stored_versions(
    applier: &Applier,
    objects: &[Value],
    migrate_first: bool,
) -> Result<Vec<Migration>, Stop> {
    let mut migrated = Vec::new();
    let mut blockers = Vec::new();
    for crd in objects
        .iter()
        .filter(|o| ObjectId::of(o).is_some_and(|(id, _)| id.is_crd()))
    {
        let Some((id, _)) = ObjectId::of(crd) else {
            continue;
        };
        let Some(live) = applier.get(&id, "v1").await.map_err(Stop::Apply)? else {
            continue;
        };
        let dropped = migrate::dropped_stored_versions(&live, crd);
        if dropped.is_empty() {
            continue;
        }
        let storage_survives = migrate::storage_version(&live).is_some_and(|storage| {
            crd["spec"]["versions"]
                .as_array()
                .is_some_and(|v| v.iter().any(|v| v["name"] == storage))
        });
        if migrate_first && storage_survives {
            if let Some(migration) = applier.migrate(&id.name).await.map_err(Stop::Apply)? {
                migrated.push(migration);
            }
            continue;
        }
        blockers.push(format!(
            "{} stores objects at {}",
            id.name,
            dropped.join(",")
        ));
    }
    if blockers.is_empty() {
        Ok(migrated)
    } else {
        Err(Stop::Blocked(format!(
            "the new release no longer serves API versions that objects are stored at ({}); \
             upgrade one minor version at a time with spec.migrateResources enabled, or migrate \
             those objects first",
            blockers.join("; ")
        )))
    }
}

/// Applies `plan.objects`, waits for them, then prunes what `previous` had that they do not
/// and migrates stored objects. Nothing is pruned or migrated unless the new set is healthy.
pub async fn converge(
    applier: &Applier,
    plan: &Plan<'_>,
    previous: Option<&ResourceInventory>,
) -> Result<Converged, Stop> {
    let started = Instant::now();
    let spec = &plan.instance.spec;
    let mut report = Report {
        migrated: if plan.new_revision {
            check_stored_versions(applier, plan.objects, spec.migrate_resources()).await?
        } else {
            Vec::new()
        },
        ..Report::default()
    };
    let options = Options {
        recreate_immutable: plan.recreate,
        dry_run: false,
    };
    report.changes = applier
        .apply_all(plan.objects, options)
        .instrument(tracing::info_span!("apply", objects = plan.objects.len()))
        .await
        .map_err(Stop::Apply)?;
    // What the apply just read of unchanged objects; taken out so the report stays small.
    let known: std::collections::BTreeMap<ObjectId, Value> = report
        .changes
        .entries
        .iter_mut()
        .filter_map(|e| Some((e.id.clone(), e.live.take()?)))
        .collect();
    let stored: std::collections::BTreeMap<ObjectId, apply::Stored> = report
        .changes
        .entries
        .iter()
        .map(|e| (e.id.clone(), e.stored.clone()))
        .collect();
    if spec.wait() {
        let checked: Vec<(ObjectId, String)> = plan
            .objects
            .iter()
            .filter_map(ObjectId::of)
            .filter(|(id, _)| is_health_checked(id) && !is_flux_custom_resource(id))
            .collect();
        match applier
            .wait_healthy(
                &checked,
                &known,
                &stored,
                plan.timeout,
                plan.canceled,
                plan.drift_epoch,
            )
            .instrument(tracing::info_span!("wait", objects = checked.len()))
            .await
            .map_err(Stop::Apply)?
        {
            HealthOutcome::Healthy => {}
            HealthOutcome::Canceled(why) => {
                report.elapsed = started.elapsed();
                return Ok(Converged::Canceled { report, why });
            }
            HealthOutcome::Unhealthy(objects) => {
                report.elapsed = started.elapsed();
                let why = apply::describe_unhealthy(&objects);
                return Ok(Converged::Unhealthy { report, why });
            }
        }
    }
    if let Some(previous) = previous {
        let current = object::inventory(plan.objects);
        prune(
            applier,
            plan.instance,
            previous,
            &current,
            CrdPrune::KeepInUse,
            &mut report,
        )
        .instrument(tracing::info_span!("prune"))
        .await
        .map_err(Stop::Apply)?;
    }
    let crd_changed = report.changes.changed().any(|e| e.id.is_crd());
    if spec.migrate_resources() && (plan.new_revision || crd_changed) {
        let span = tracing::info_span!("migrate");
        for (id, _) in plan.objects.iter().filter_map(ObjectId::of) {
            if id.is_crd()
                && let Some(migration) = applier
                    .migrate(&id.name)
                    .instrument(span.clone())
                    .await
                    .map_err(Stop::Apply)?
            {
                report.migrated.push(migration);
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(Converged::Healthy(report))
}

/// Deletes what `previous` lists and `current` does not, if it is ours.
pub async fn prune(
    applier: &Applier,
    instance: &FluxInstance,
    previous: &ResourceInventory,
    current: &ResourceInventory,
    crds: CrdPrune,
    report: &mut Report,
) -> Result<(), apply::Error> {
    let guard = |live: &Value| prune_guard(instance, live);
    for (id, version) in object::stale(previous, current) {
        if id.is_crd() && crds == CrdPrune::KeepInUse {
            let objects = count_objects(applier, &id).await?;
            if objects != Some(0) {
                let in_use = CrdInUse {
                    id,
                    version,
                    objects,
                };
                tracing::warn!(crd = %in_use.id.name, ?objects, "CRD not pruned: objects of its kind exist or cannot be listed");
                report.crds_in_use.push(in_use);
                continue;
            }
        }
        match applier.delete(&id, &version, &guard).await? {
            Deletion::Deleted => report.pruned.push(id.to_string()),
            Deletion::Absent => {}
            Deletion::Kept(why) => {
                tracing::info!(object = %id, %why, "not pruned");
                report.kept.push(format!("{id}: {why}"));
            }
        }
    }
    Ok(())
}

/// Removes what the instance installed, in an order that leaves no controller running
/// while finalizers go:
///
/// 1. the controller Deployments, deleted in the foreground and waited for until they are
///    gone: the garbage collector removes a Deployment only after its ReplicaSets and
///    their Pods are gone from the API, which on a real node is once the kubelet has
///    stopped the containers, and with kwok nodes (or pods never scheduled, or never
///    created) as soon as the objects are deleted. So no controller is left that could
///    handle a Flux object or add a finalizer back. If they are not gone in
///    [`policy::kube::CONTROLLERS_GONE_TIMEOUT`], uninstall fails here (nothing else was
///    touched) and is retried;
/// 2. the finalizers of every Flux custom resource, listed page by page (nobody is left to
///    handle them; what Flux deployed stays running);
/// 3. the rest of the inventory in reverse apply order, CRDs last (which deletes the Flux
///    custom resources, now without finalizers).
///
/// The namespace is kept (prune never deletes one), and so is what Flux deployed.
pub async fn uninstall(applier: &Applier, instance: &FluxInstance) -> Result<Report, apply::Error> {
    let started = Instant::now();
    let mut report = Report::default();
    let Some(inventory) = instance.status.as_ref().and_then(|s| s.inventory.clone()) else {
        return Ok(report);
    };
    let entries: Vec<(ObjectId, String)> = inventory
        .entries
        .iter()
        .filter_map(|e| Some((ObjectId::parse_inventory_id(&e.id)?, e.v.clone())))
        .collect();
    let guard = |live: &Value| prune_guard(instance, live);
    let mut terminating = Vec::new();
    for (id, version) in entries.iter().filter(|(id, _)| is_controller(id)) {
        match applier
            .delete_with(id, version, &guard, PropagationPolicy::Foreground)
            .await?
        {
            Deletion::Deleted => {
                report.pruned.push(id.to_string());
                terminating.push((id.clone(), version.clone()));
            }
            Deletion::Absent => {}
            Deletion::Kept(why) => {
                tracing::warn!(object = %id, %why, "controller not deleted: it may still act on Flux objects");
                report.kept.push(format!("{id}: {why}"));
            }
        }
    }
    applier
        .wait_gone(&terminating, policy::kube::CONTROLLERS_GONE_TIMEOUT)
        .instrument(tracing::info_span!(
            "wait_controllers_gone",
            objects = terminating.len()
        ))
        .await?;
    for (crd, _) in entries
        .iter()
        .filter(|(id, _)| id.is_crd() && id.name.contains(".fluxcd.io"))
    {
        strip_finalizers(applier, crd).await?;
    }
    let without_controllers = ResourceInventory {
        entries: inventory
            .entries
            .iter()
            .filter(|e| ObjectId::parse_inventory_id(&e.id).is_none_or(|id| !is_controller(&id)))
            .cloned()
            .collect(),
    };
    let mut rest = Report::default();
    prune(
        applier,
        instance,
        &without_controllers,
        &ResourceInventory::default(),
        CrdPrune::WithObjects,
        &mut rest,
    )
    .await?;
    report.pruned.extend(rest.pruned);
    report.kept.extend(rest.kept);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The Flux controllers: what uninstall stops before anything else.
fn is_controller(id: &ObjectId) -> bool {
    id.group == "apps" && id.kind == "Deployment"
}

/// How many objects of the kind `crd` defines exist, in all namespaces (0 when the CRD is
/// gone or serves nothing; `None` when listing them is forbidden). One list of one item:
/// the API server counts the rest.
async fn count_objects(applier: &Applier, crd: &ObjectId) -> Result<Option<u64>, apply::Error> {
    let Some(live) = applier.get(crd, "v1").await? else {
        return Ok(Some(0));
    };
    let Some(storage) = migrate::storage_version(&live) else {
        return Ok(Some(0));
    };
    let kind = served_kind(&live, crd);
    let all = applier.api(&kind, storage).await?;
    let list = match all
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
    {
        Ok(list) => list,
        Err(kube::Error::Api(status)) if status.code == 403 => return Ok(None),
        Err(source) => {
            return Err(apply::Error::Request {
                object: kind.to_string(),
                source: Box::new(source),
            });
        }
    };
    let remaining = list
        .metadata
        .remaining_item_count
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    Ok(Some(list.items.len() as u64 + remaining))
}

/// The kind a live CRD serves, as an id for [`Applier::api`] (all namespaces).
fn served_kind(live: &Value, crd: &ObjectId) -> ObjectId {
    ObjectId {
        group: live["spec"]["group"].as_str().unwrap_or_default().into(),
        kind: live["spec"]["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .into(),
        namespace: String::new(),
        name: crd.name.clone(),
    }
}

/// Removes the finalizers of every object of a Flux CRD, listing them page by page.
async fn strip_finalizers(applier: &Applier, crd: &ObjectId) -> Result<(), apply::Error> {
    use kube::api::{Patch, PatchParams};
    let Some(live) = applier.get(crd, "v1").await? else {
        return Ok(());
    };
    let Some(storage) = migrate::storage_version(&live) else {
        return Ok(());
    };
    let kind = served_kind(&live, crd);
    let failed = |id: &ObjectId| {
        let object = id.to_string();
        move |source| apply::Error::Request {
            object,
            source: Box::new(source),
        }
    };
    let all = applier.api(&kind, storage).await?;
    let mut pages = Pager::new(policy::kube::LIST_PAGE);
    let mut stripped = 0usize;
    while let Some(params) = pages.next_params() {
        let list = match all.list(&params).await {
            Ok(list) => list,
            // Stripping finalizers twice is harmless.
            Err(error) if pages.restart_after(&error) => continue,
            Err(error) => return Err(failed(&kind)(error)),
        };
        pages.advance(list.metadata.continue_.as_deref());
        for item in list.items {
            if item.metadata.finalizers.as_ref().is_none_or(Vec::is_empty) {
                continue;
            }
            let id = ObjectId {
                namespace: item.metadata.namespace.clone().unwrap_or_default(),
                name: item.metadata.name.clone().unwrap_or_default(),
                ..kind.clone()
            };
            match applier
                .api(&id, storage)
                .await?
                .patch(
                    &id.name,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({ "metadata": { "finalizers": null } })),
                )
                .await
            {
                Ok(_) => stripped += 1,
                // Deleted meanwhile: nothing to strip.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => return Err(failed(&id)(source)),
            }
        }
    }
    if stripped > 0 {
        tracing::info!(crd = %crd.name, objects = stripped, "finalizers removed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn instance() -> FluxInstance {
        serde_json::from_value(json!({
            "apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
            "metadata": { "name": "flux", "namespace": "flux-system" },
            "spec": { "distribution": { "version": "2.x", "registry": "ghcr.io/fluxcd" } }
        }))
        .unwrap()
    }

    fn live(labels: Value, annotations: Value) -> Value {
        json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "x", "labels": labels, "annotations": annotations } })
    }

    #[test]
    fn only_objects_with_our_owner_labels_are_pruned() {
        let ours = json!({ label::OWNER_NAME: "flux", label::OWNER_NAMESPACE: "flux-system" });
        assert_eq!(
            prune_guard(&instance(), &live(ours.clone(), json!({}))),
            Ok(())
        );
        assert!(
            prune_guard(
                &instance(),
                &live(json!({ label::OWNER_NAME: "flux" }), json!({}))
            )
            .unwrap_err()
            .contains("owner labels")
        );
        assert!(
            prune_guard(
                &instance(),
                &live(ours.clone(), json!({ annotation::PRUNE: "disabled" }))
            )
            .is_err()
        );
        let namespace = json!({ "apiVersion": "v1", "kind": "Namespace",
                                "metadata": { "name": "flux-system", "labels": ours } });
        assert!(prune_guard(&instance(), &namespace).is_err());
    }

    #[test]
    fn sync_objects_are_not_waited_for_but_controllers_and_crds_are() {
        let id = |group: &str, kind: &str| ObjectId {
            group: group.into(),
            kind: kind.into(),
            namespace: "flux-system".into(),
            name: "x".into(),
        };
        assert!(is_flux_custom_resource(&id(
            "kustomize.toolkit.fluxcd.io",
            "Kustomization"
        )));
        assert!(!is_flux_custom_resource(&id(
            "apiextensions.k8s.io",
            "CustomResourceDefinition"
        )));
        assert!(is_health_checked(&id("apps", "Deployment")));
        assert!(is_health_checked(&id(
            "apiextensions.k8s.io",
            "CustomResourceDefinition"
        )));
        assert!(!is_health_checked(&id("", "ServiceAccount")));
    }
}
