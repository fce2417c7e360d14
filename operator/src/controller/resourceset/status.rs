//! What a ResourceSet reconcile reports, decided purely from its outcome: the status as it
//! is stored (conditions, inventory, revision, history), the Events, and when to come back.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::runtime::{
    controller::Action,
    events::{Event, EventType},
};

use crate::{
    api::{
        ResourceInventory, Snapshot,
        constants::{annotation, condition, reason},
        resourceset::{ResourceSet, ResourceSetStatus},
    },
    controller::conditions,
    policy,
};

/// At most this many revisions are kept in `status.history`.
pub const HISTORY_LIMIT: usize = 5;
/// How soon a dependency that is not ready is checked again.
pub const DEPENDENCY_RETRY: Duration = Duration::from_secs(5);
pub const DEPENDENCY_NOT_READY: &str = "DependencyNotReady";
pub const INVALID_CEL_EXPRESSION: &str = "InvalidCELExpression";
pub const APPLY_SUCCEEDED: &str = "ApplySucceeded";

/// What one reconcile came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `fluxcd.controlplane.io/reconcile: disabled`.
    Disabled,
    /// A dependency does not exist or is not ready yet.
    DependencyNotReady(String),
    /// The spec cannot be built as it is (a template error, a bad expression, a missing
    /// provider): retrying does not help until it changes. Nothing was applied.
    Stalled {
        reason: &'static str,
        message: String,
        /// The digest history records for it (of the spec).
        digest: String,
    },
    /// Applying, a health check or the prune failed; retried with backoff. `inventory` is
    /// what may be in the cluster now (the old and the new objects: nothing is orphaned).
    Failed {
        message: String,
        digest: String,
        inventory: Option<ResourceInventory>,
    },
    /// A health wait gave way to a newer request.
    Canceled {
        message: String,
        inventory: Option<ResourceInventory>,
    },
    Succeeded(Applied),
}

/// A successful apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub inventory: ResourceInventory,
    /// `sha256:<hex>` of the applied objects.
    pub revision: String,
    /// One line per created, configured or deleted object.
    pub changes: Vec<String>,
    pub elapsed: Duration,
    pub inputs: usize,
    pub resources: usize,
    pub steps: Option<usize>,
}

impl Outcome {
    /// The Ready reason history records.
    fn ready_reason(&self) -> &'static str {
        match self {
            Outcome::Disabled => reason::RECONCILIATION_DISABLED,
            Outcome::DependencyNotReady(_) => DEPENDENCY_NOT_READY,
            Outcome::Stalled { reason, .. } => reason,
            Outcome::Failed { .. } => reason::RECONCILIATION_FAILED,
            Outcome::Canceled { .. } => reason::HEALTH_CHECK_CANCELED,
            Outcome::Succeeded(_) => reason::RECONCILIATION_SUCCEEDED,
        }
    }

    /// `success` or `error`, for the reconcile counter.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Succeeded(_) | Outcome::Disabled => "success",
            _ => "error",
        }
    }
}

/// "Reconciliation finished in 1.2s": milliseconds under a second, seconds above.
pub fn finished_in(elapsed: Duration) -> String {
    if elapsed < Duration::from_secs(1) {
        format!("Reconciliation finished in {}ms", elapsed.as_millis())
    } else {
        format!(
            "Reconciliation finished in {}s",
            elapsed.as_secs_f64().round() as u64
        )
    }
}

/// The status stored after `outcome` (from the stored one, `before`).
pub fn next_status(
    rset: &ResourceSet,
    outcome: &Outcome,
    elapsed: Duration,
    now: Timestamp,
) -> ResourceSetStatus {
    let mut status = rset.status.clone().unwrap_or_default();
    let generation = rset.metadata.generation;
    let mut list: Vec<Condition> = status.conditions.take().unwrap_or_default();
    let mut set = |type_: &str, value: &str, reason: &str, message: &str| {
        conditions::set(&mut list, type_, value, reason, message, generation, now);
    };
    match outcome {
        Outcome::Disabled => {
            set(
                condition::READY,
                "True",
                reason::RECONCILIATION_DISABLED,
                "Reconciliation is disabled",
            );
            conditions::remove(&mut list, condition::RECONCILING);
            conditions::remove(&mut list, condition::STALLED);
        }
        Outcome::DependencyNotReady(message) => {
            set(
                condition::READY,
                "False",
                DEPENDENCY_NOT_READY,
                &format!("Retrying dependency check: {message}"),
            );
            set(
                condition::RECONCILING,
                "True",
                reason::PROGRESSING_WITH_RETRY,
                "Waiting for dependencies",
            );
            conditions::remove(&mut list, condition::STALLED);
        }
        Outcome::Stalled {
            reason: why,
            message,
            ..
        } => {
            let text =
                format!("Reconciliation failed terminally due to configuration error: {message}");
            set(condition::READY, "False", why, &text);
            set(condition::STALLED, "True", why, &text);
            conditions::remove(&mut list, condition::RECONCILING);
        }
        Outcome::Failed {
            message, inventory, ..
        } => {
            let text = format!("reconciliation failed: {message}");
            set(
                condition::READY,
                "False",
                reason::RECONCILIATION_FAILED,
                &text,
            );
            set(
                condition::RECONCILING,
                "True",
                reason::PROGRESSING_WITH_RETRY,
                &text,
            );
            conditions::remove(&mut list, condition::STALLED);
            if let Some(inventory) = inventory {
                status.inventory = Some(inventory.clone());
            }
        }
        Outcome::Canceled { message, inventory } => {
            set(
                condition::READY,
                "False",
                reason::HEALTH_CHECK_CANCELED,
                message,
            );
            set(
                condition::RECONCILING,
                "True",
                reason::PROGRESSING_WITH_RETRY,
                message,
            );
            if let Some(inventory) = inventory {
                status.inventory = Some(inventory.clone());
            }
        }
        Outcome::Succeeded(applied) => {
            set(
                condition::READY,
                "True",
                reason::RECONCILIATION_SUCCEEDED,
                &finished_in(applied.elapsed),
            );
            conditions::remove(&mut list, condition::RECONCILING);
            conditions::remove(&mut list, condition::STALLED);
            status.inventory = Some(applied.inventory.clone());
            status.last_applied_revision = Some(applied.revision.clone());
        }
    }
    status.conditions = Some(list);
    let digest = match outcome {
        Outcome::Stalled { digest, .. } | Outcome::Failed { digest, .. } => Some(digest.clone()),
        Outcome::Succeeded(applied) => Some(applied.revision.clone()),
        _ => None,
    };
    if let Some(digest) = digest {
        let metadata = match outcome {
            Outcome::Succeeded(applied) => {
                let mut m = BTreeMap::from([
                    ("inputs".to_string(), applied.inputs.to_string()),
                    ("resources".to_string(), applied.resources.to_string()),
                ]);
                if let Some(steps) = applied.steps {
                    m.insert("steps".into(), steps.to_string());
                }
                Some(m)
            }
            _ => None,
        };
        let mut history = status.history.take().unwrap_or_default();
        upsert_history(
            &mut history,
            &digest,
            outcome.ready_reason(),
            elapsed,
            metadata,
            now,
        );
        status.history = Some(history);
    }
    if let Some(requested) = rset
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(annotation::REQUESTED_AT))
    {
        status.last_handled_reconcile_at = Some(requested.clone());
    }
    status
}

/// Records one reconcile: an entry with the same digest and result is updated and moves to
/// the front; otherwise a new entry is prepended (at most [`HISTORY_LIMIT`]).
pub fn upsert_history(
    history: &mut Vec<Snapshot>,
    digest: &str,
    result: &str,
    elapsed: Duration,
    metadata: Option<BTreeMap<String, String>>,
    now: Timestamp,
) {
    let duration =
        crate::template::go_duration(i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX));
    if let Some(i) = history
        .iter()
        .position(|s| s.digest == digest && s.last_reconciled_status == result)
    {
        let mut entry = history.remove(i);
        entry.last_reconciled = Time(now);
        entry.last_reconciled_duration = duration;
        entry.total_reconciliations += 1;
        if metadata.is_some() {
            entry.metadata = metadata;
        }
        history.insert(0, entry);
        return;
    }
    history.insert(
        0,
        Snapshot {
            digest: digest.to_string(),
            first_reconciled: Time(now),
            last_reconciled: Time(now),
            last_reconciled_duration: duration,
            last_reconciled_status: result.to_string(),
            total_reconciliations: 1,
            metadata,
        },
    );
    history.truncate(HISTORY_LIMIT);
}

fn ready(status: Option<&ResourceSetStatus>) -> Option<&Condition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == condition::READY)
}

/// Events: what changed on a success (one line per object), a failure when its message is
/// new. A no-op reconcile and a repeated failure publish nothing.
pub fn events(
    before: Option<&ResourceSetStatus>,
    after: &ResourceSetStatus,
    outcome: &Outcome,
) -> Vec<Event> {
    let changed_ready = ready(before).map(|c| (&c.status, &c.reason, &c.message))
        != ready(Some(after)).map(|c| (&c.status, &c.reason, &c.message));
    let event = |type_, reason: &str, note: String| Event {
        type_,
        reason: reason.to_string(),
        note: Some(crate::controller::truncate_note(&note)),
        action: "Reconcile".into(),
        secondary: None,
    };
    match outcome {
        Outcome::Succeeded(applied) if !applied.changes.is_empty() => {
            vec![event(
                EventType::Normal,
                APPLY_SUCCEEDED,
                applied.changes.join("\n"),
            )]
        }
        Outcome::Succeeded(applied) if changed_ready => {
            vec![event(
                EventType::Normal,
                reason::RECONCILIATION_SUCCEEDED,
                finished_in(applied.elapsed),
            )]
        }
        Outcome::Disabled if changed_ready => {
            vec![event(
                EventType::Warning,
                reason::RECONCILIATION_DISABLED,
                "Reconciliation is disabled".into(),
            )]
        }
        Outcome::Succeeded(_) | Outcome::Disabled => Vec::new(),
        _ if changed_ready => {
            let ready = ready(Some(after));
            vec![event(
                EventType::Warning,
                ready.map_or(reason::RECONCILIATION_FAILED, |c| c.reason.as_str()),
                ready.map(|c| c.message.clone()).unwrap_or_default(),
            )]
        }
        _ => Vec::new(),
    }
}

/// When to come back: the interval after a success or a stall (a changed spec or provider
/// wakes it earlier), soon for a dependency, with growing backoff for a failure.
pub fn next_action(
    rset: &ResourceSet,
    outcome: &Outcome,
    after: &ResourceSetStatus,
    now: Timestamp,
) -> Action {
    let failing_for = ready(Some(after))
        .filter(|c| c.status == "False")
        .and_then(|c| Duration::try_from(now.duration_since(c.last_transition_time.0)).ok())
        .unwrap_or_default();
    match outcome {
        Outcome::Disabled => Action::await_change(),
        Outcome::DependencyNotReady(_) => Action::requeue(DEPENDENCY_RETRY),
        Outcome::Canceled { .. } => Action::requeue(policy::requeue::CANCELED),
        Outcome::Failed { .. } => {
            Action::requeue(policy::retry_after(failing_for).min(rset.reconcile_every()))
        }
        Outcome::Stalled { .. } | Outcome::Succeeded(_) => Action::requeue(rset.reconcile_every()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rset() -> ResourceSet {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "fluxcd.controlplane.io/v1", "kind": "ResourceSet",
            "metadata": { "name": "apps", "namespace": "team", "generation": 3,
                          "annotations": { "reconcile.fluxcd.io/requestedAt": "r1" } },
            "spec": { "resources": [] }
        }))
        .unwrap()
    }

    fn applied(changes: &[&str]) -> Outcome {
        Outcome::Succeeded(Applied {
            inventory: ResourceInventory { entries: vec![] },
            revision: "sha256:abc".into(),
            changes: changes.iter().map(|c| c.to_string()).collect(),
            elapsed: Duration::from_millis(1500),
            inputs: 2,
            resources: 4,
            steps: None,
        })
    }

    #[test]
    fn a_success_is_ready_with_the_revision_and_a_history_entry() {
        let now = Timestamp::UNIX_EPOCH;
        let status = next_status(
            &rset(),
            &applied(&["ConfigMap/team/a created"]),
            Duration::from_millis(1500),
            now,
        );
        let ready = ready(Some(&status)).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "ReconciliationSucceeded")
        );
        assert_eq!(ready.message, "Reconciliation finished in 2s");
        assert_eq!(ready.observed_generation, Some(3));
        assert_eq!(status.last_applied_revision.as_deref(), Some("sha256:abc"));
        assert_eq!(status.last_handled_reconcile_at.as_deref(), Some("r1"));
        let history = status.history.unwrap();
        assert_eq!(history[0].last_reconciled_duration, "1.5s");
        assert_eq!(history[0].metadata.as_ref().unwrap()["resources"], "4");
    }

    #[test]
    fn history_updates_a_repeated_result_and_keeps_five() {
        let now = Timestamp::UNIX_EPOCH;
        let mut history = Vec::new();
        for i in 0..7 {
            upsert_history(
                &mut history,
                &format!("d{i}"),
                "ReconciliationSucceeded",
                Duration::ZERO,
                None,
                now,
            );
        }
        assert_eq!(history.len(), 5);
        assert_eq!(history[0].digest, "d6");
        upsert_history(
            &mut history,
            "d4",
            "ReconciliationSucceeded",
            Duration::ZERO,
            None,
            now,
        );
        assert_eq!(history[0].digest, "d4");
        assert_eq!(history[0].total_reconciliations, 2);
        assert_eq!(history.len(), 5);
    }

    #[test]
    fn a_stall_names_the_configuration_error_and_keeps_the_inventory() {
        let mut before = rset();
        before.status = Some(ResourceSetStatus {
            inventory: Some(ResourceInventory { entries: vec![] }),
            ..Default::default()
        });
        let outcome = Outcome::Stalled {
            reason: reason::BUILD_FAILED,
            message: "build failed: template: resourceset:3: function \"x\" not defined".into(),
            digest: "sha256:spec".into(),
        };
        let status = next_status(&before, &outcome, Duration::ZERO, Timestamp::UNIX_EPOCH);
        let stalled = status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Stalled")
            .unwrap();
        assert!(stalled.message.starts_with(
            "Reconciliation failed terminally due to configuration error: build failed"
        ));
        assert!(status.inventory.is_some());
        let events = events(before.status.as_ref(), &status, &outcome);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "BuildFailed");
        // The same failure again publishes nothing.
        let mut again = before.clone();
        again.status = Some(status.clone());
        let status2 = next_status(&again, &outcome, Duration::ZERO, Timestamp::UNIX_EPOCH);
        assert!(super::events(again.status.as_ref(), &status2, &outcome).is_empty());
    }

    #[test]
    fn a_no_op_success_publishes_nothing_and_changes_publish_their_lines() {
        let first = next_status(
            &rset(),
            &applied(&[]),
            Duration::ZERO,
            Timestamp::UNIX_EPOCH,
        );
        let mut settled = rset();
        settled.status = Some(first);
        let second = next_status(
            &settled,
            &applied(&[]),
            Duration::ZERO,
            Timestamp::UNIX_EPOCH,
        );
        assert!(events(settled.status.as_ref(), &second, &applied(&[])).is_empty());
        let changed = applied(&["ConfigMap/team/a configured"]);
        let third = next_status(&settled, &changed, Duration::ZERO, Timestamp::UNIX_EPOCH);
        let published = events(settled.status.as_ref(), &third, &changed);
        assert_eq!(
            published[0].note.as_deref(),
            Some("ConfigMap/team/a configured")
        );
    }

    #[test]
    fn dependencies_are_checked_again_soon_and_failures_back_off() {
        let r = rset();
        let waiting = Outcome::DependencyNotReady("ResourceSet/team/db not ready".into());
        let status = next_status(&r, &waiting, Duration::ZERO, Timestamp::UNIX_EPOCH);
        assert_eq!(
            next_action(&r, &waiting, &status, Timestamp::UNIX_EPOCH),
            Action::requeue(DEPENDENCY_RETRY)
        );
        assert!(
            ready(Some(&status))
                .unwrap()
                .message
                .starts_with("Retrying dependency check: ")
        );
        let ok = applied(&[]);
        let status = next_status(&r, &ok, Duration::ZERO, Timestamp::UNIX_EPOCH);
        assert_eq!(
            next_action(&r, &ok, &status, Timestamp::UNIX_EPOCH),
            Action::requeue(Duration::from_secs(3600))
        );
    }
}
