//! Every example object of the v1 API reads into the Rust types and writes back without
//! losing or adding a field.

use std::path::PathBuf;

use serde::{Serialize, de::DeserializeOwned};

use super::*;

fn testdata(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Parses every document both as plain JSON and as `T`, and compares `T` written back.
fn assert_round_trips<T: Serialize + DeserializeOwned>(path: &str) -> Vec<T> {
    let text = testdata(path);
    let raw: Vec<serde_json::Value> =
        serde_saphyr::from_str_multiple(&text).expect("fixture is valid YAML");
    let typed: Vec<T> =
        serde_saphyr::from_str_multiple(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(raw.len(), typed.len());
    assert!(!raw.is_empty(), "{path} holds no documents");
    for (index, (raw, typed)) in raw.iter().zip(&typed).enumerate() {
        let written = serde_json::to_value(typed).expect("serializes");
        assert_eq!(
            &written, raw,
            "{path} document {index} changed in the round trip"
        );
    }
    typed
}

#[test]
fn every_api_reference_example_instance_round_trips_without_losing_a_field() {
    let instances: Vec<FluxInstance> = assert_round_trips("instances/api-reference.yaml");
    // The fixture covers every enum value of the table, so a renamed variant fails here.
    let components: std::collections::BTreeSet<_> = instances
        .iter()
        .flat_map(|i| i.spec.components.clone().unwrap_or_default())
        .collect();
    assert_eq!(components.len(), Component::ALL.len());
    let cluster_types: std::collections::HashSet<_> = instances
        .iter()
        .filter_map(|i| i.spec.cluster.as_ref()?.type_)
        .collect();
    assert_eq!(cluster_types.len(), 5);
    let sync_kinds: std::collections::HashSet<_> = instances
        .iter()
        .filter_map(|i| Some(i.spec.sync.as_ref()?.kind))
        .collect();
    assert_eq!(sync_kinds.len(), 3);
    let providers: std::collections::HashSet<_> = instances
        .iter()
        .filter_map(|i| i.spec.sync.as_ref()?.provider)
        .collect();
    assert_eq!(providers.len(), 5);
}

#[test]
fn instance_status_round_trips_without_losing_a_field() {
    let instances: Vec<FluxInstance> = assert_round_trips("instances/status.yaml");
    let status = instances[0].status.as_ref().expect("status");
    assert_eq!(status.history.as_ref().map(Vec::len), Some(1));
    assert_eq!(status.inventory.as_ref().map(|i| i.entries.len()), Some(2));
}

#[test]
fn report_round_trips_without_losing_a_field() {
    let reports: Vec<FluxReport> = assert_round_trips("reports/report.yaml");
    assert_eq!(
        reports[0].spec.distribution.managed_by.as_deref(),
        Some("fluxop")
    );
}

#[test]
fn effective_values_follow_the_schema_defaults() {
    let instances: Vec<FluxInstance> =
        serde_saphyr::from_str_multiple(&testdata("instances/api-reference.yaml")).unwrap();
    let minimal = &instances[0];
    assert_eq!(minimal.spec.components(), Component::DEFAULTS.to_vec());
    assert!(minimal.spec.wait() && minimal.spec.migrate_resources());
    let cluster = Cluster {
        domain: None,
        multitenant: None,
        multitenant_workload_identity: None,
        tenant_default_service_account: None,
        tenant_default_decryption_service_account: None,
        tenant_default_kube_config_service_account: None,
        object_level_workload_identity: None,
        network_policy: None,
        type_: None,
        size: None,
    };
    assert_eq!(cluster.domain(), "cluster.local");
    assert_eq!(cluster.cluster_type(), ClusterType::Kubernetes);
    assert!(cluster.network_policy());
    assert_eq!(
        minimal.reconcile_every(),
        Ok(FluxInstance::DEFAULT_RECONCILE_EVERY)
    );

    let annotated = &instances[1];
    assert!(!annotated.is_reconcile_disabled());
    assert_eq!(
        annotated.reconcile_artifact_every(),
        Ok(std::time::Duration::from_secs(600))
    );

    let sync = instances[7].spec.sync.as_ref().expect("sync");
    assert_eq!(sync.name_or("flux-system"), "flux-system");
    assert_eq!(sync.interval(), "1h30m");
    let sharding = instances[5].spec.sharding.as_ref().expect("sharding");
    assert_eq!(sharding.key(), "sharding.fluxcd.io/key");
}

#[test]
fn reconcile_disabled_annotation_is_case_insensitive_and_bad_durations_are_errors() {
    let mut instance: FluxInstance =
        serde_saphyr::from_str(&testdata("instances/status.yaml")).unwrap();
    let annotations = instance
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert(constants::annotation::RECONCILE.into(), "Disabled".into());
    annotations.insert(
        constants::annotation::RECONCILE_TIMEOUT.into(),
        "5 minutes".into(),
    );
    annotations.insert(constants::annotation::RECONCILE_EVERY.into(), "0s".into());
    annotations.insert(
        constants::annotation::RECONCILE_ARTIFACT_EVERY.into(),
        "10ms".into(),
    );
    assert!(instance.is_reconcile_disabled());
    let error = instance.reconcile_timeout().expect_err("not a duration");
    assert!(error.to_string().contains("\"5 minutes\""), "{error}");
    // A 0s interval would spin: it is raised to the floor.
    assert_eq!(
        instance.reconcile_every(),
        Ok(crate::policy::requeue::MIN_INTERVAL)
    );
    assert_eq!(
        instance.reconcile_artifact_every(),
        Ok(crate::policy::requeue::MIN_INTERVAL)
    );
}
