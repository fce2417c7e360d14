//! The pure half of reporting a reconcile: from how it ended to the status it calls for
//! (conditions, history, the rollback hold), the events it publishes and when it runs again.
//! No IO here; `super` writes and publishes what these functions decide.

use std::time::Duration;

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    ResourceExt,
    runtime::{
        controller::Action,
        events::{Event, EventType},
    },
};
use semver::Version;

use super::super::{
    conditions,
    lifecycle::{CrdInUse, Report},
    truncate_note,
};
use crate::{
    api::{
        ComponentImage, FluxInstance, FluxInstanceSpec, FluxInstanceStatus, ResourceInventory,
        ResourceRef, RollbackHold, Snapshot,
        constants::{annotation, condition, reason},
    },
    apply, policy,
    render::Rendered,
};

/// Why a stage stopped: the condition reason and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(super) reason: &'static str,
    pub(crate) message: String,
    /// Terminal until the spec changes (or, polled, the bundle gains what is missing):
    /// `Stalled=True`.
    pub(super) stalled: bool,
}

impl Failure {
    pub(super) fn retry(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            stalled: false,
        }
    }
    pub(super) fn stalled(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            stalled: true,
        }
    }
}

/// What the source stage found, whatever happened next.
#[derive(Debug, Default)]
pub(super) struct Fetch {
    /// Manifest digest of the artifact worked from.
    pub(super) digest: Option<String>,
    /// Why the artifact could not be fetched, when the last verified bundle was served from
    /// the cache instead.
    pub(super) source_error: Option<String>,
    /// A Flux version in the bundle that the instance's range leaves out.
    pub(super) newer: Option<Version>,
}

/// A revision in the cluster: what a successful (or restored) apply leaves.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Installed {
    /// `v<version>@sha256:<digest>` of the rendered objects.
    pub(super) revision: String,
    pub(super) version: Version,
    pub(super) components: Vec<ComponentImage>,
    pub(super) inventory: ResourceInventory,
}

impl Installed {
    pub(super) fn of(rendered: &Rendered, version: &Version) -> Self {
        Self {
            revision: rendered.revision.clone(),
            version: version.clone(),
            components: rendered.components.clone(),
            inventory: apply::object::inventory(&rendered.objects),
        }
    }
}

/// How a reconcile ended.
#[derive(Debug)]
pub(super) enum Outcome {
    Disabled,
    /// A stage failed. `attempted` is the revision being applied, if rendering got that far;
    /// `inventory` what may now be in the cluster (so a later prune still finds it).
    Failed {
        failure: Failure,
        attempted: Option<String>,
        inventory: Option<ResourceInventory>,
    },
    /// The health checks stopped early: a newer reconcile request, or drift of an object
    /// just applied (`why` says which).
    Canceled {
        attempted: String,
        why: String,
    },
    Applied {
        installed: Installed,
        report: Report,
    },
    /// The new version did not become healthy and the previous one was restored.
    RolledBack {
        attempted: String,
        why: String,
        installed: Installed,
        report: Report,
    },
    /// While a rollback holds ([`hold_in_effect`]): the restored revision, its drift corrected.
    /// `unhealthy` says why it is not healthy itself, if it is not.
    Held {
        installed: Installed,
        report: Report,
        unhealthy: Option<String>,
    },
}

impl Outcome {
    /// For traces and logs.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Outcome::Disabled => "disabled",
            Outcome::Failed { .. } => "failed",
            Outcome::Canceled { .. } => "canceled",
            Outcome::Applied { .. } => "applied",
            Outcome::RolledBack { .. } => "rolled-back",
            Outcome::Held { .. } => "held",
        }
    }

    /// The `result` label of the reconcile counter: only a healthy cluster is a success.
    pub(super) fn result(&self) -> &'static str {
        match self {
            Outcome::Applied { .. }
            | Outcome::Held {
                unhealthy: None, ..
            } => "success",
            Outcome::Canceled { .. } => "canceled",
            _ => "error",
        }
    }

    /// What converging did, when it got through.
    pub(super) fn report(&self) -> Option<&Report> {
        match self {
            Outcome::Applied { report, .. }
            | Outcome::Held { report, .. }
            | Outcome::RolledBack { report, .. } => Some(report),
            _ => None,
        }
    }

    /// Did the reconcile change objects in the cluster?
    pub(super) fn changed_objects(&self) -> bool {
        self.report().is_some_and(|report| !report.is_noop())
    }
}

/// The Flux version of the revision last applied and healthy (`lastAppliedRevision`).
pub(super) fn applied_version(instance: &FluxInstance) -> Option<Version> {
    instance
        .status
        .as_ref()?
        .last_applied_revision
        .as_deref()
        .and_then(crate::bundle::version::of_revision)
}

pub(super) fn status_of(instance: &FluxInstance) -> FluxInstanceStatus {
    instance.status.clone().unwrap_or_default()
}

fn condition<'a>(status: &'a FluxInstanceStatus, type_: &str) -> Option<&'a Condition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Is a rollback of `attempted` in effect, with nothing changed since that would make
/// trying it again worthwhile (spec generation, a reconcile request)? The hold is explicit
/// state in the status, so a failure in between (a registry outage) does not end it.
pub(super) fn hold_in_effect(instance: &FluxInstance, attempted: &str) -> bool {
    instance
        .status
        .as_ref()
        .and_then(|s| s.rollback.as_ref())
        .is_some_and(|hold| hold.attempted_revision == attempted && hold_matches(hold, instance))
}

/// Was the hold set for this spec generation and this reconcile request?
fn hold_matches(hold: &RollbackHold, instance: &FluxInstance) -> bool {
    Some(hold.generation) == instance.metadata.generation
        && instance.annotations().get(annotation::REQUESTED_AT) == hold.requested_at.as_ref()
}

/// Is there something to announce as in progress? A new revision, a spec generation not yet
/// reconciled, or a reconcile request. Not: drift corrections of the applied revision (they
/// take a second), nor another try of the revision whose failure the status already reports
/// for this generation (that would rewrite the status twice per retry).
pub(super) fn has_work(instance: &FluxInstance, revision: &str) -> bool {
    let status = status_of(instance);
    let ready = condition(&status, condition::READY);
    let this_generation =
        ready.is_some_and(|c| c.observed_generation == instance.metadata.generation);
    let requested = instance.annotations().get(annotation::REQUESTED_AT)
        != status.last_handled_reconcile_at.as_ref();
    let applied = status.last_applied_revision.as_deref() == Some(revision);
    let failed_before = status.last_attempted_revision.as_deref() == Some(revision)
        && ready.is_some_and(|c| c.status == "False");
    requested || !this_generation || !(applied || failed_before)
}

/// Is a `forceAt` request pending (objects with changed immutable fields may be recreated)?
pub(super) fn force_requested(instance: &FluxInstance) -> bool {
    instance
        .annotations()
        .get(annotation::FORCE_AT)
        .is_some_and(|at| status_of(instance).last_handled_force_at.as_ref() != Some(at))
}

/// Entries of both inventories: everything that may be in the cluster after a failed apply.
pub(super) fn union(a: Option<&ResourceInventory>, b: &ResourceInventory) -> ResourceInventory {
    let entries: std::collections::BTreeSet<ResourceRef> = a
        .into_iter()
        .flat_map(|i| i.entries.iter())
        .chain(b.entries.iter())
        .cloned()
        .collect();
    ResourceInventory {
        entries: entries.into_iter().collect(),
    }
}

/// The spec `lastAppliedRevision` was rendered from, as recorded when it became healthy;
/// the current spec when none was recorded (a status from before fluxop recorded it) or the
/// record does not parse.
pub(super) fn applied_spec(instance: &FluxInstance) -> FluxInstanceSpec {
    let recorded = instance
        .status
        .as_ref()
        .and_then(|s| s.last_applied_spec.clone());
    match recorded.map(serde_json::from_value::<FluxInstanceSpec>) {
        Some(Ok(spec)) => spec,
        Some(Err(error)) => {
            tracing::warn!(%error, "status.lastAppliedSpec does not parse; using the current spec");
            instance.spec.clone()
        }
        None => instance.spec.clone(),
    }
}

/// The status that says `revision` is being applied (`Reconciling=True`, `Ready=Unknown`),
/// written before a long health wait so that it is visible.
pub(super) fn progressing_status(
    instance: &FluxInstance,
    revision: &str,
    now: Timestamp,
) -> FluxInstanceStatus {
    let mut status = status_of(instance);
    let mut list = status.conditions.take().unwrap_or_default();
    let message = format!("Applying revision {revision}");
    let generation = instance.metadata.generation;
    for (type_, value) in [
        (condition::READY, "Unknown"),
        (condition::RECONCILING, "True"),
    ] {
        conditions::set(
            &mut list,
            type_,
            value,
            reason::PROGRESSING,
            &message,
            generation,
            now,
        );
    }
    conditions::remove(&mut list, condition::STALLED);
    status.conditions = Some(list);
    status.last_attempted_revision = Some(revision.to_string());
    status
}

/// Records one reconcile of `revision` in `history` (most recent first, at most 5).
fn record_history(
    history: &mut Vec<Snapshot>,
    installed: &Installed,
    result: &str,
    elapsed: Duration,
    now: Timestamp,
) {
    let digest = installed
        .revision
        .split_once('@')
        .map_or(installed.revision.as_str(), |(_, d)| d)
        .to_string();
    let duration = format!("{:.1}s", elapsed.as_secs_f64());
    match history.first_mut() {
        Some(latest) if latest.digest == digest => {
            latest.last_reconciled = Time(now);
            latest.last_reconciled_duration = duration;
            latest.last_reconciled_status = result.to_string();
            latest.total_reconciliations += 1;
        }
        _ => {
            history.insert(
                0,
                Snapshot {
                    digest,
                    first_reconciled: Time(now),
                    last_reconciled: Time(now),
                    last_reconciled_duration: duration,
                    last_reconciled_status: result.to_string(),
                    total_reconciliations: 1,
                    metadata: Some(std::collections::BTreeMap::from([(
                        "flux".to_string(),
                        format!("v{}", installed.version),
                    )])),
                },
            );
            history.truncate(5);
        }
    }
}

/// CRDs that prune kept because they still have objects stay in the inventory (so a later
/// prune finds them once they are empty) and are named in `PruneBlocked`.
fn keep_crds_in_use(
    status: &mut FluxInstanceStatus,
    list: &mut Vec<Condition>,
    in_use: &[CrdInUse],
    generation: Option<i64>,
    now: Timestamp,
) {
    if in_use.is_empty() {
        conditions::remove(list, condition::PRUNE_BLOCKED);
        return;
    }
    let inventory = status.inventory.get_or_insert_with(Default::default);
    for crd in in_use {
        let id = crd.id.inventory_id();
        if !inventory.entries.iter().any(|e| e.id == id) {
            inventory.entries.push(ResourceRef {
                id,
                v: crd.version.clone(),
            });
        }
    }
    inventory.entries.sort();
    let names: Vec<String> = in_use.iter().map(CrdInUse::describe).collect();
    let message = format!(
        "not pruned while objects of its kind exist, deleting it would delete them: {}",
        names.join("; ")
    );
    conditions::set(
        list,
        condition::PRUNE_BLOCKED,
        "True",
        reason::CRD_IN_USE,
        &message,
        generation,
        now,
    );
}

/// The message of a rollback, in `Ready`, `Stalled` and the hold.
fn rollback_message(attempted: &str, why: &str, restored: &str) -> String {
    format!("{attempted} did not become healthy ({why}); rolled back to {restored}")
}

/// The status an outcome calls for, from the current one. A reconcile that changed nothing
/// yields the current status unchanged, so it writes nothing.
pub(super) fn next_status(
    instance: &FluxInstance,
    fetch: &Fetch,
    outcome: &Outcome,
    now: Timestamp,
) -> FluxInstanceStatus {
    let mut status = status_of(instance);
    let generation = instance.metadata.generation;
    let mut list = status.conditions.take().unwrap_or_default();
    let mut set = |type_: &str, value: &str, reason: &str, message: &str| {
        conditions::set(&mut list, type_, value, reason, message, generation, now);
    };
    let mut history = status.history.take().unwrap_or_default();
    let install = |status: &mut FluxInstanceStatus, installed: &Installed| {
        status.last_applied_revision = Some(installed.revision.clone());
        status.components = Some(installed.components.clone());
        status.inventory = Some(installed.inventory.clone());
    };
    let mut stalled_by_failure = false;
    match outcome {
        Outcome::Disabled => {
            set(
                condition::READY,
                "False",
                reason::RECONCILIATION_DISABLED,
                "Reconciliation is disabled",
            );
        }
        Outcome::Failed {
            failure,
            attempted,
            inventory,
        } => {
            set(condition::READY, "False", failure.reason, &failure.message);
            if failure.stalled {
                set(condition::STALLED, "True", failure.reason, &failure.message);
                stalled_by_failure = true;
            }
            if let Some(attempted) = attempted {
                status.last_attempted_revision = Some(attempted.clone());
            }
            if let Some(inventory) = inventory {
                status.inventory = Some(inventory.clone());
            }
        }
        Outcome::Canceled { attempted, why } => {
            let message = format!("Health checks of {attempted} canceled: {why}");
            set(
                condition::READY,
                "Unknown",
                reason::HEALTH_CHECK_CANCELED,
                &message,
            );
            set(
                condition::RECONCILING,
                "True",
                reason::HEALTH_CHECK_CANCELED,
                &message,
            );
            status.last_attempted_revision = Some(attempted.clone());
        }
        Outcome::Applied { installed, report } => {
            // The revision has a column of its own (`kubectl get fluxinstance`): the
            // message, shown as STATUS, names only the version.
            let message = if instance.spec.wait() {
                format!("Flux v{} is installed and healthy", installed.version)
            } else {
                format!(
                    "Flux v{} is applied; health checks are off (spec.wait: false)",
                    installed.version
                )
            };
            let before = status_of(instance);
            let was_ready = condition(&before, condition::READY)
                .is_some_and(|c| c.status == "True" && c.message == message)
                && before.last_applied_revision.as_deref() == Some(installed.revision.as_str());
            set(
                condition::READY,
                "True",
                reason::RECONCILIATION_SUCCEEDED,
                &message,
            );
            if !was_ready || !report.is_noop() {
                record_history(
                    &mut history,
                    installed,
                    reason::RECONCILIATION_SUCCEEDED,
                    report.elapsed,
                    now,
                );
            }
            status.last_attempted_revision = Some(installed.revision.clone());
            install(&mut status, installed);
            status.last_applied_spec = serde_json::to_value(&instance.spec).ok();
            status.rollback = None;
        }
        Outcome::RolledBack {
            attempted,
            why,
            installed,
            report,
        } => {
            let message = rollback_message(attempted, why, &installed.revision);
            set(
                condition::READY,
                "False",
                reason::RECONCILIATION_FAILED,
                &message,
            );
            record_history(
                &mut history,
                installed,
                reason::ROLLED_BACK,
                report.elapsed,
                now,
            );
            status.last_attempted_revision = Some(attempted.clone());
            install(&mut status, installed);
            status.rollback = generation.map(|generation| RollbackHold {
                attempted_revision: attempted.clone(),
                restored_revision: installed.revision.clone(),
                message,
                generation,
                requested_at: instance
                    .annotations()
                    .get(annotation::REQUESTED_AT)
                    .cloned(),
                rolled_back_at: Time(now),
            });
        }
        Outcome::Held {
            installed,
            report,
            unhealthy,
        } => {
            let held = status.rollback.as_ref().map_or_else(
                || format!("{} kept after a rollback", installed.revision),
                |hold| hold.message.clone(),
            );
            let message = match unhealthy {
                None => held,
                Some(why) => format!("{held}; {} is not healthy now: {why}", installed.revision),
            };
            set(
                condition::READY,
                "False",
                reason::RECONCILIATION_FAILED,
                &message,
            );
            if !report.is_noop() {
                record_history(
                    &mut history,
                    installed,
                    reason::ROLLED_BACK,
                    report.elapsed,
                    now,
                );
            }
            install(&mut status, installed);
        }
    }
    if let Some(report) = outcome.report() {
        keep_crds_in_use(&mut status, &mut list, &report.crds_in_use, generation, now);
    }
    // A hold ends when the spec changes or a reconcile is requested, whatever comes of the
    // new try: a stale hold left in the status would read as a rollback of this generation.
    if status
        .rollback
        .as_ref()
        .is_some_and(|hold| !hold_matches(hold, instance))
    {
        status.rollback = None;
    }
    // A rollback of this generation stays visible as Stalled through any later failure;
    // a failure that is terminal on its own says so instead.
    if !stalled_by_failure {
        match status
            .rollback
            .as_ref()
            .filter(|hold| Some(hold.generation) == generation)
        {
            Some(hold) => {
                let message = hold.message.clone();
                conditions::set(
                    &mut list,
                    condition::STALLED,
                    "True",
                    reason::ROLLED_BACK,
                    &message,
                    generation,
                    now,
                );
            }
            None => {
                conditions::remove(&mut list, condition::STALLED);
            }
        }
    }
    if !matches!(outcome, Outcome::Canceled { .. }) {
        conditions::remove(&mut list, condition::RECONCILING);
    }
    match &fetch.source_error {
        Some(error) => {
            let served = fetch
                .digest
                .as_deref()
                .unwrap_or("the last verified artifact");
            conditions::set(
                &mut list,
                condition::FETCH_FAILED,
                "True",
                reason::ARTIFACT_FAILED,
                &format!(
                    "{error}; converging the last verified bundle ({served}) from the cache until the artifact can be fetched again"
                ),
                generation,
                now,
            );
        }
        None => {
            conditions::remove(&mut list, condition::FETCH_FAILED);
        }
    }
    status.conditions = Some(list);
    status.history = (!history.is_empty()).then_some(history);
    if let Some(digest) = &fetch.digest {
        status.last_artifact_revision = Some(digest.clone());
    }
    if let Some(requested) = instance.annotations().get(annotation::REQUESTED_AT) {
        status.last_handled_reconcile_at = Some(requested.clone());
    }
    if let Some(forced) = instance.annotations().get(annotation::FORCE_AT) {
        status.last_handled_force_at = Some(forced.clone());
    }
    status
}

/// The artifact is polled every `reconcileArtifactEvery`, and everything every
/// `reconcileEvery`: the shorter wins. Unparsable annotations fall back to the defaults.
pub(super) fn requeue_interval(instance: &FluxInstance) -> Duration {
    let artifact = instance
        .reconcile_artifact_every()
        .unwrap_or(FluxInstance::DEFAULT_RECONCILE_ARTIFACT_EVERY);
    let full = instance
        .reconcile_every()
        .unwrap_or(FluxInstance::DEFAULT_RECONCILE_EVERY);
    artifact.min(full)
}

/// How long `type_` has had `status` in `after` (zero when it does not, or just turned).
fn lasting(after: &FluxInstanceStatus, type_: &str, value: &str, now: Timestamp) -> Duration {
    condition(after, type_)
        .filter(|c| c.status == value)
        .and_then(|c| Duration::try_from(now.duration_since(c.last_transition_time.0)).ok())
        .unwrap_or_default()
}

/// When the instance is reconciled again after `outcome` left it with status `after`.
/// Failures are retried less often the longer they last; a terminal failure is still
/// polled at the artifact interval, since a channel like `2.x` may gain a release that
/// resolves it; a registry outage is retried like a failure.
pub(super) fn next_action(
    instance: &FluxInstance,
    outcome: &Outcome,
    fetch: &Fetch,
    after: &FluxInstanceStatus,
    now: Timestamp,
) -> Action {
    let failing = || policy::retry_after(lasting(after, condition::READY, "False", now));
    match outcome {
        Outcome::Disabled => Action::await_change(),
        Outcome::Failed { failure, .. } if failure.stalled => {
            Action::requeue(requeue_interval(instance))
        }
        Outcome::Failed { .. }
        | Outcome::Held {
            unhealthy: Some(_), ..
        } => Action::requeue(failing()),
        Outcome::Canceled { .. } => Action::requeue(policy::requeue::CANCELED),
        _ if fetch.source_error.is_some() => Action::requeue(
            policy::retry_after(lasting(after, condition::FETCH_FAILED, "True", now))
                .min(requeue_interval(instance)),
        ),
        _ => Action::requeue(requeue_interval(instance)),
    }
}

/// What an apply that changed objects did, as alerts read it: a first install, a version
/// change (from the last applied revision), or an update of the same version (a new spec, a
/// drift correction).
fn what_happened(instance: &FluxInstance, installed: &Installed) -> String {
    let previous = instance
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.as_deref())
        .and_then(crate::bundle::version::of_revision);
    match previous {
        None => format!("Flux v{} installed", installed.version),
        Some(before) if before < installed.version => {
            format!("Flux upgraded from v{before} to v{}", installed.version)
        }
        Some(before) if before > installed.version => {
            format!("Flux downgraded from v{before} to v{}", installed.version)
        }
        Some(_) => format!("Flux v{} updated", installed.version),
    }
}

/// The Events a reconcile publishes: one when the status changed or objects were changed (a
/// drift correction), one when the registry outage began, plus a hint when the bundle has a
/// newer Flux than the instance's range allows. A no-op reconcile publishes nothing, and a
/// failure that repeats with the same message publishes nothing again.
pub(super) fn events(
    instance: &FluxInstance,
    outcome: &Outcome,
    fetch: &Fetch,
    after: &FluxInstanceStatus,
) -> Vec<Event> {
    let status_changed = instance.status.as_ref() != Some(after);
    let normal = |reason: &str, note: String| Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(truncate_note(&note)),
        action: "Reconcile".into(),
        secondary: None,
    };
    let warning = |reason: &str, note: String| Event {
        type_: EventType::Warning,
        ..normal(reason, note)
    };
    let mut events = Vec::new();
    match outcome {
        Outcome::Applied { installed, report } if status_changed || !report.is_noop() => {
            let changes = report.summary();
            events.push(normal(
                reason::RECONCILIATION_SUCCEEDED,
                if changes.is_empty() {
                    format!("Flux v{} is installed and healthy", installed.version)
                } else {
                    format!(
                        "{} in {:.1}s ({}):\n{changes}",
                        what_happened(instance, installed),
                        report.elapsed.as_secs_f64(),
                        installed.revision,
                    )
                },
            ));
        }
        Outcome::Held {
            installed,
            report,
            unhealthy,
        } => {
            if !report.is_noop() {
                events.push(normal(
                    reason::ROLLED_BACK,
                    format!(
                        "{} kept after a rollback; corrected:\n{}",
                        installed.revision,
                        report.summary()
                    ),
                ));
            }
            if let Some(why) = unhealthy.as_ref().filter(|_| status_changed) {
                events.push(warning(
                    reason::RECONCILIATION_FAILED,
                    format!(
                        "{} (kept after a rollback) is not healthy: {why}",
                        installed.revision
                    ),
                ));
            }
        }
        Outcome::RolledBack {
            attempted,
            why,
            installed,
            ..
        } if status_changed => events.push(warning(
            reason::ROLLED_BACK,
            rollback_message(attempted, why, &installed.revision),
        )),
        Outcome::Failed { failure, .. } if status_changed => {
            events.push(warning(failure.reason, failure.message.clone()));
        }
        Outcome::Canceled { attempted, why } if status_changed => events.push(normal(
            reason::HEALTH_CHECK_CANCELED,
            format!("health checks of {attempted} canceled: {why}"),
        )),
        Outcome::Disabled if status_changed => events.push(normal(
            reason::RECONCILIATION_DISABLED,
            "Reconciliation is disabled".into(),
        )),
        _ => {}
    }
    let before = instance.status.clone().unwrap_or_default();
    if let Some(blocked) = condition(after, condition::PRUNE_BLOCKED).filter(|now| {
        condition(&before, condition::PRUNE_BLOCKED).is_none_or(|was| was.message != now.message)
    }) {
        events.push(warning(reason::CRD_IN_USE, blocked.message.clone()));
    }
    if condition(&before, condition::FETCH_FAILED).is_none()
        && let Some(fetch_failed) = condition(after, condition::FETCH_FAILED)
    {
        events.push(warning(
            reason::ARTIFACT_FAILED,
            fetch_failed.message.clone(),
        ));
    }
    if let Some(newer) = fetch.newer.as_ref().filter(|_| status_changed) {
        events.push(normal(
            "OutdatedVersion",
            format!(
                "Flux v{newer} is in the bundle but outside spec.distribution.version {:?}",
                instance.spec.distribution.version
            ),
        ));
    }
    events
}

#[cfg(test)]
mod tests;
