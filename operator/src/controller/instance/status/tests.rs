use std::collections::BTreeMap;

use super::*;

fn fetched(digest: &str) -> Fetch {
    Fetch {
        digest: Some(digest.to_string()),
        ..Fetch::default()
    }
}

fn instance(status: Option<FluxInstanceStatus>) -> FluxInstance {
    let mut instance: FluxInstance = serde_json::from_value(serde_json::json!({
        "apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
        "metadata": { "name": "flux", "namespace": "flux-system", "generation": 2 },
        "spec": { "distribution": { "version": "2.x", "registry": "ghcr.io/fluxcd" } }
    }))
    .unwrap();
    instance.status = status;
    instance
}

fn condition<'a>(
    status: &'a FluxInstanceStatus,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn failed(failure: Failure) -> Outcome {
    Outcome::Failed {
        failure,
        attempted: None,
        inventory: None,
    }
}

fn installed(version: &str, digest: &str) -> Installed {
    Installed {
        revision: format!("v{version}@sha256:{digest}"),
        version: Version::parse(version).unwrap(),
        components: Vec::new(),
        inventory: ResourceInventory {
            entries: vec![ResourceRef {
                id: "flux-system_source-controller_apps_Deployment".into(),
                v: "v1".into(),
            }],
        },
    }
}

fn applied(version: &str, digest: &str, changes: usize) -> Outcome {
    let entries = (0..changes)
        .map(|i| apply::Applied {
            id: apply::ObjectId {
                group: "apps".into(),
                kind: "Deployment".into(),
                namespace: "flux-system".into(),
                name: format!("d{i}"),
            },
            action: apply::Action::Created,
            live: None,
            stored: Default::default(),
        })
        .collect();
    Outcome::Applied {
        installed: installed(version, digest),
        report: Report {
            changes: apply::ChangeSet { entries },
            ..Report::default()
        },
    }
}

#[test]
fn a_verification_failure_is_not_ready_and_retried_not_stalled() {
    let failure = Failure::retry(
        reason::VERIFICATION_FAILED,
        "oci://r/b@sha256:x is not signed",
    );
    let status = next_status(
        &instance(None),
        &Fetch::default(),
        &failed(failure),
        Timestamp::UNIX_EPOCH,
    );
    let ready = condition(&status, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "VerificationFailed")
    );
    assert_eq!(ready.observed_generation, Some(2));
    assert!(condition(&status, "Stalled").is_none());
    assert_eq!(status.last_artifact_revision, None);
}

#[test]
fn a_refused_downgrade_is_stalled_and_records_the_artifact() {
    let failure = Failure::stalled(reason::BUILD_FAILED, "refusing to downgrade");
    let status = next_status(
        &instance(None),
        &fetched("sha256:abc"),
        &failed(failure),
        Timestamp::UNIX_EPOCH,
    );
    assert_eq!(condition(&status, "Stalled").unwrap().reason, "BuildFailed");
    assert_eq!(status.last_artifact_revision.as_deref(), Some("sha256:abc"));
}

#[test]
fn a_noop_reconcile_after_an_install_is_the_same_status_so_nothing_is_written() {
    let first = next_status(
        &instance(None),
        &fetched("sha256:art"),
        &applied("2.9.4", "abc", 3),
        Timestamp::UNIX_EPOCH,
    );
    let ready = condition(&first, "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "ReconciliationSucceeded")
    );
    assert_eq!(
        first.last_applied_revision.as_deref(),
        Some("v2.9.4@sha256:abc")
    );
    assert_eq!(first.inventory.as_ref().unwrap().entries.len(), 1);
    assert_eq!(first.history.as_ref().unwrap().len(), 1);
    let later = Timestamp::from_second(3600).unwrap();
    let second = next_status(
        &instance(Some(first.clone())),
        &fetched("sha256:art"),
        &applied("2.9.4", "abc", 0),
        later,
    );
    assert_eq!(first, second);
    // A drift correction is recorded in the history.
    let third = next_status(
        &instance(Some(second)),
        &fetched("sha256:art"),
        &applied("2.9.4", "abc", 1),
        later,
    );
    assert_eq!(third.history.as_ref().unwrap()[0].total_reconciliations, 2);
}

#[test]
fn history_keeps_the_last_five_revisions_newest_first() {
    let mut status = None;
    for (i, digest) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
        let outcome = applied(&format!("2.{i}.0"), digest, 1);
        status = Some(next_status(
            &instance(status),
            &Fetch::default(),
            &outcome,
            Timestamp::from_second(i as i64).unwrap(),
        ));
    }
    let history = status.unwrap().history.unwrap();
    let digests: Vec<&str> = history.iter().map(|h| h.digest.as_str()).collect();
    assert_eq!(
        digests,
        ["sha256:f", "sha256:e", "sha256:d", "sha256:c", "sha256:b"]
    );
    assert_eq!(history[0].metadata.as_ref().unwrap()["flux"], "v2.5.0");
}

#[test]
fn a_healthy_revision_records_its_spec_and_a_rollback_keeps_the_healthy_one() {
    let healthy = instance(None);
    let status = next_status(
        &healthy,
        &Fetch::default(),
        &applied("2.9.4", "good", 1),
        Timestamp::UNIX_EPOCH,
    );
    let recorded = status.last_applied_spec.clone().expect("spec recorded");
    assert_eq!(recorded["distribution"]["version"], "2.x");

    // A new spec that does not become healthy: the rollback restores the recorded
    // spec, and the record stays the healthy one.
    let mut patched = instance(Some(status));
    patched.spec.distribution.version = "2.9.x".into();
    assert_eq!(applied_spec(&patched).distribution.version, "2.x");
    let outcome = Outcome::RolledBack {
        attempted: "v2.9.4@sha256:bad".into(),
        why: "Deployment/flux-system/kustomize-controller: 0 of 1 replicas ready".into(),
        installed: installed("2.9.4", "good"),
        report: Report::default(),
    };
    let after = next_status(&patched, &Fetch::default(), &outcome, Timestamp::UNIX_EPOCH);
    assert_eq!(after.last_applied_spec, Some(recorded));

    // Without a record (a status written before fluxop kept one), the current spec.
    assert_eq!(applied_spec(&instance(None)).distribution.version, "2.x");
}

#[test]
fn a_rollback_is_stalled_keeps_the_restored_revision_and_names_the_attempt() {
    let before = next_status(
        &instance(None),
        &Fetch::default(),
        &applied("2.8.8", "old", 1),
        Timestamp::UNIX_EPOCH,
    );
    let outcome = Outcome::RolledBack {
        attempted: "v2.9.4@sha256:new".into(),
        why: "Deployment/flux-system/source-controller: 0 of 1 replicas ready".into(),
        installed: installed("2.8.8", "old"),
        report: Report::default(),
    };
    let mut rolled = instance(Some(before));
    let status = next_status(&rolled, &Fetch::default(), &outcome, Timestamp::UNIX_EPOCH);
    let ready = condition(&status, "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("rolled back to v2.8.8@sha256:old"),
        "{}",
        ready.message
    );
    assert_eq!(condition(&status, "Stalled").unwrap().reason, "RolledBack");
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some("v2.8.8@sha256:old")
    );
    assert_eq!(
        status.last_attempted_revision.as_deref(),
        Some("v2.9.4@sha256:new")
    );
    rolled.status = Some(status);
    assert!(hold_in_effect(&rolled, "v2.9.4@sha256:new"));
    assert!(!hold_in_effect(&rolled, "v2.9.4@sha256:other"));
    rolled.metadata.generation = Some(3);
    assert!(
        !hold_in_effect(&rolled, "v2.9.4@sha256:new"),
        "a spec change retries"
    );
}

#[test]
fn a_canceled_health_check_is_reconciling_with_its_reason() {
    let outcome = Outcome::Canceled {
        attempted: "v2.9.4@sha256:x".into(),
        why: "Deployment/flux-system/kustomize-controller was deleted meanwhile".into(),
    };
    let status = next_status(
        &instance(None),
        &Fetch::default(),
        &outcome,
        Timestamp::UNIX_EPOCH,
    );
    assert_eq!(
        condition(&status, "Ready").unwrap().reason,
        "HealthCheckCanceled"
    );
    assert_eq!(condition(&status, "Reconciling").unwrap().status, "True");
    assert!(
        condition(&status, "Ready").unwrap().message.ends_with(
            "canceled: Deployment/flux-system/kustomize-controller was deleted meanwhile"
        )
    );
}

#[test]
fn the_artifact_poll_interval_bounds_the_requeue() {
    let mut i = instance(None);
    assert_eq!(requeue_interval(&i), Duration::from_secs(600));
    i.metadata.annotations = Some(BTreeMap::from([(
        annotation::RECONCILE_EVERY.to_string(),
        "2m".to_string(),
    )]));
    assert_eq!(requeue_interval(&i), Duration::from_secs(120));
}

fn rolled_back_instance() -> FluxInstance {
    let before = next_status(
        &instance(None),
        &fetched("sha256:art"),
        &applied("2.8.8", "old", 1),
        Timestamp::UNIX_EPOCH,
    );
    let outcome = Outcome::RolledBack {
        attempted: "v2.9.4@sha256:new".into(),
        why: "Deployment/flux-system/source-controller: 0 of 1 replicas ready".into(),
        installed: installed("2.8.8", "old"),
        report: Report::default(),
    };
    let mut rolled = instance(Some(before));
    let status = next_status(
        &rolled,
        &fetched("sha256:art"),
        &outcome,
        Timestamp::UNIX_EPOCH,
    );
    rolled.status = Some(status);
    rolled
}

#[test]
fn a_transient_failure_does_not_end_the_rollback_hold() {
    let mut rolled = rolled_back_instance();
    let blip = failed(Failure::retry(
        reason::ARTIFACT_FAILED,
        "cannot reach the registry of oci://r/b:latest: connection refused",
    ));
    let status = next_status(&rolled, &Fetch::default(), &blip, Timestamp::UNIX_EPOCH);
    assert_eq!(
        condition(&status, "Ready").unwrap().reason,
        "ArtifactFailed"
    );
    assert_eq!(condition(&status, "Stalled").unwrap().reason, "RolledBack");
    rolled.status = Some(status);
    assert!(
        hold_in_effect(&rolled, "v2.9.4@sha256:new"),
        "the broken upgrade is not tried again after a registry blip"
    );

    // The next reconcile keeps the restored revision: Ready says so again.
    let held = Outcome::Held {
        installed: installed("2.8.8", "old"),
        report: Report::default(),
        unhealthy: None,
    };
    let status = next_status(
        &rolled,
        &fetched("sha256:art"),
        &held,
        Timestamp::UNIX_EPOCH,
    );
    let ready = condition(&status, "Ready").unwrap();
    assert!(
        ready.message.contains("rolled back to v2.8.8@sha256:old"),
        "{}",
        ready.message
    );
    assert!(status.rollback.is_some());

    // A reconcile request ends the hold; a healthy apply clears it.
    rolled.metadata.annotations = Some(BTreeMap::from([(
        annotation::REQUESTED_AT.to_string(),
        "now".to_string(),
    )]));
    assert!(!hold_in_effect(&rolled, "v2.9.4@sha256:new"));
    let status = next_status(
        &rolled,
        &fetched("sha256:art"),
        &applied("2.9.4", "new", 2),
        Timestamp::UNIX_EPOCH,
    );
    assert_eq!(status.rollback, None);
    assert!(condition(&status, "Stalled").is_none());
}

#[test]
fn a_new_spec_ends_the_hold_even_when_it_fails() {
    let mut rolled = rolled_back_instance();
    rolled.metadata.generation = Some(3);
    let refused = failed(Failure::stalled(
        reason::BUILD_FAILED,
        "no Flux version in the bundle matches 2.99.x",
    ));
    let status = next_status(&rolled, &Fetch::default(), &refused, Timestamp::UNIX_EPOCH);
    assert_eq!(
        status.rollback, None,
        "a hold of generation 2 is not stored at 3"
    );
    assert_eq!(condition(&status, "Stalled").unwrap().reason, "BuildFailed");
}

#[test]
fn a_restored_revision_that_is_unhealthy_is_a_failure_not_a_success() {
    let rolled = rolled_back_instance();
    let held = Outcome::Held {
        installed: installed("2.8.8", "old"),
        report: Report::default(),
        unhealthy: Some("Deployment/flux-system/source-controller: 0 of 1 replicas ready".into()),
    };
    assert_eq!(held.result(), "error");
    let status = next_status(
        &rolled,
        &fetched("sha256:art"),
        &held,
        Timestamp::UNIX_EPOCH,
    );
    let ready = condition(&status, "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("is not healthy now"),
        "{}",
        ready.message
    );
    let events = events(&rolled, &held, &Fetch::default(), &status);
    assert!(
        events.iter().any(|e| e.type_ == EventType::Warning),
        "a Warning event"
    );
    let healthy = Outcome::Held {
        installed: installed("2.8.8", "old"),
        report: Report::default(),
        unhealthy: None,
    };
    assert_eq!(healthy.result(), "success");
}

#[test]
fn a_failure_that_repeats_writes_nothing_and_publishes_nothing() {
    let failing = failed(Failure::retry(
        reason::RECONCILIATION_FAILED,
        "v2.9.4@sha256:x did not become healthy: Deployment/flux-system/a: 0 of 1 ready",
    ));
    let mut first = instance(None);
    let status = next_status(
        &first,
        &fetched("sha256:art"),
        &failing,
        Timestamp::UNIX_EPOCH,
    );
    assert_eq!(
        events(&first, &failing, &Fetch::default(), &status).len(),
        1
    );
    first.status = Some(status);
    let later = Timestamp::from_second(60).unwrap();
    let again = next_status(&first, &fetched("sha256:art"), &failing, later);
    assert_eq!(first.status.as_ref(), Some(&again), "nothing to write");
    assert!(events(&first, &failing, &Fetch::default(), &again).is_empty());

    // Trying the failing revision again is not announced as new work either.
    let mut attempted = first.clone();
    attempted.status.as_mut().unwrap().last_attempted_revision = Some("v2.9.4@sha256:x".into());
    assert!(!has_work(&attempted, "v2.9.4@sha256:x"));
    assert!(has_work(&attempted, "v2.9.4@sha256:y"), "another revision");
    attempted.metadata.generation = Some(3);
    assert!(has_work(&attempted, "v2.9.4@sha256:x"), "a new generation");
}

#[test]
fn failures_are_retried_less_often_the_longer_they_last() {
    let failing = failed(Failure::retry(reason::ARTIFACT_FAILED, "registry down"));
    let mut broken = instance(None);
    let status = next_status(&broken, &Fetch::default(), &failing, Timestamp::UNIX_EPOCH);
    let after = |seconds: i64| {
        next_action(
            &broken,
            &failing,
            &Fetch::default(),
            &status,
            Timestamp::from_second(seconds).unwrap(),
        )
    };
    assert_eq!(after(0), Action::requeue(Duration::from_secs(30)));
    assert_eq!(after(120), Action::requeue(Duration::from_secs(120)));
    assert_eq!(after(86400), Action::requeue(Duration::from_secs(600)));

    // A terminal failure is polled at the artifact interval: a channel may gain a release.
    let stalled = failed(Failure::stalled(
        reason::BUILD_FAILED,
        "no 3.x in the bundle",
    ));
    broken.status = Some(status.clone());
    assert_eq!(
        next_action(
            &broken,
            &stalled,
            &Fetch::default(),
            &status,
            Timestamp::UNIX_EPOCH
        ),
        Action::requeue(FluxInstance::DEFAULT_RECONCILE_ARTIFACT_EVERY)
    );
    assert_eq!(
        next_action(
            &broken,
            &Outcome::Disabled,
            &Fetch::default(),
            &status,
            Timestamp::UNIX_EPOCH
        ),
        Action::await_change()
    );
}

#[test]
fn a_crd_kept_for_its_objects_stays_in_the_inventory_and_is_named_until_pruned() {
    let crd = apply::ObjectId {
        group: "apiextensions.k8s.io".into(),
        kind: "CustomResourceDefinition".into(),
        namespace: String::new(),
        name: "imagepolicies.image.toolkit.fluxcd.io".into(),
    };
    let mut outcome = applied("2.9.4", "new", 0);
    if let Outcome::Applied { report, .. } = &mut outcome {
        report.crds_in_use.push(CrdInUse {
            id: crd.clone(),
            version: "v1".into(),
            objects: Some(3),
        });
    }
    let first = instance(None);
    let status = next_status(
        &first,
        &fetched("sha256:art"),
        &outcome,
        Timestamp::UNIX_EPOCH,
    );
    let inventory = &status.inventory.as_ref().unwrap().entries;
    assert!(
        inventory.iter().any(|e| e.id == crd.inventory_id()),
        "a later prune finds the CRD: {inventory:?}"
    );
    let blocked = condition(&status, "PruneBlocked").unwrap();
    assert_eq!(blocked.reason, "CustomResourceDefinitionInUse");
    assert!(
        blocked
            .message
            .contains("imagepolicies.image.toolkit.fluxcd.io still has 3 objects"),
        "{}",
        blocked.message
    );
    assert_eq!(condition(&status, "Ready").unwrap().status, "True");
    let published = events(&first, &outcome, &Fetch::default(), &status);
    assert!(
        published
            .iter()
            .any(|e| e.reason == "CustomResourceDefinitionInUse"),
        "a Warning event names the CRD"
    );

    // Same count next time: no second event. Once empty and pruned: the condition goes.
    let kept = instance(Some(status.clone()));
    let again = next_status(
        &kept,
        &fetched("sha256:art"),
        &outcome,
        Timestamp::UNIX_EPOCH,
    );
    assert!(
        !events(&kept, &outcome, &Fetch::default(), &again)
            .iter()
            .any(|e| e.reason == "CustomResourceDefinitionInUse")
    );
    let pruned = next_status(
        &kept,
        &fetched("sha256:art"),
        &applied("2.9.4", "new", 0),
        Timestamp::UNIX_EPOCH,
    );
    assert!(condition(&pruned, "PruneBlocked").is_none());
    assert!(
        !pruned
            .inventory
            .unwrap()
            .entries
            .iter()
            .any(|e| e.id == crd.inventory_id())
    );
}

#[test]
fn a_registry_outage_keeps_ready_and_says_so_in_fetch_failed() {
    let installed_instance = {
        let mut i = instance(None);
        i.status = Some(next_status(
            &i,
            &fetched("sha256:art"),
            &applied("2.9.4", "abc", 3),
            Timestamp::UNIX_EPOCH,
        ));
        i
    };
    let outage = Fetch {
        digest: Some("sha256:art".into()),
        source_error: Some(
            "cannot reach the registry of oci://r/b:latest: connection refused".into(),
        ),
        newer: None,
    };
    let corrected = applied("2.9.4", "abc", 1);
    let status = next_status(
        &installed_instance,
        &outage,
        &corrected,
        Timestamp::UNIX_EPOCH,
    );
    assert_eq!(condition(&status, "Ready").unwrap().status, "True");
    let fetch_failed = condition(&status, "FetchFailed").unwrap();
    assert_eq!(fetch_failed.status, "True");
    assert!(
        fetch_failed.message.contains("connection refused"),
        "{}",
        fetch_failed.message
    );
    assert!(
        fetch_failed.message.contains("sha256:art"),
        "{}",
        fetch_failed.message
    );
    let published = events(&installed_instance, &corrected, &outage, &status);
    assert!(
        published
            .iter()
            .any(|e| e.type_ == EventType::Warning && e.reason == "ArtifactFailed"),
        "a Warning event for the outage"
    );
    assert_eq!(
        next_action(
            &installed_instance,
            &corrected,
            &outage,
            &status,
            Timestamp::UNIX_EPOCH
        ),
        Action::requeue(Duration::from_secs(30)),
        "the registry is tried again soon"
    );
    // Once the registry answers, the condition goes.
    let mut during = installed_instance.clone();
    during.status = Some(status);
    let back = next_status(
        &during,
        &fetched("sha256:art"),
        &corrected,
        Timestamp::UNIX_EPOCH,
    );
    assert!(condition(&back, "FetchFailed").is_none());
}

#[test]
fn an_apply_event_says_whether_flux_was_installed_upgraded_or_updated() {
    let note = |before: Option<&str>, outcome: &Outcome| {
        let status = before.map(|revision| FluxInstanceStatus {
            last_applied_revision: Some(revision.to_string()),
            ..FluxInstanceStatus::default()
        });
        let instance = instance(status);
        let after = next_status(
            &instance,
            &fetched("sha256:a"),
            outcome,
            Timestamp::UNIX_EPOCH,
        );
        let published = events(&instance, outcome, &fetched("sha256:a"), &after);
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].reason, reason::RECONCILIATION_SUCCEEDED);
        published[0].note.clone().unwrap_or_default()
    };
    let upgrade = applied("2.9.4", "new", 2);
    assert!(note(None, &upgrade).starts_with("Flux v2.9.4 installed in "));
    let upgraded = note(Some("v2.9.3@sha256:old"), &upgrade);
    assert!(
        upgraded.starts_with("Flux upgraded from v2.9.3 to v2.9.4 in "),
        "{upgraded}"
    );
    assert!(upgraded.contains("(v2.9.4@sha256:new)"), "{upgraded}");
    assert!(
        upgraded.contains("Deployment/flux-system/d0 created"),
        "{upgraded}"
    );
    assert!(
        note(Some("v2.9.4@sha256:old"), &upgrade).starts_with("Flux v2.9.4 updated in "),
        "a new spec of the same version"
    );
    assert!(
        note(Some("v2.9.5@sha256:old"), &upgrade)
            .starts_with("Flux downgraded from v2.9.5 to v2.9.4")
    );
}
