//! The fluxcd.controlplane.io/v1 CRDs against a real kube-apiserver: installation, schema
//! validation, CEL rules and server-side defaults.

use fluxop::api::{FluxInstance, FluxReport};
use fluxop_e2e::{client, ensure_crds, fresh_namespace};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

fn instances(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::erase::<FluxInstance>(&()),
    )
}

fn instance(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "fluxcd.controlplane.io/v1",
        "kind": "FluxInstance",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .expect("instance object")
}

fn minimal_spec() -> Value {
    json!({ "distribution": { "version": "2.x", "registry": "ghcr.io/fluxcd" } })
}

/// Creates `object` and returns the API server's rejection message, failing if it was accepted.
async fn rejection(api: &Api<DynamicObject>, object: &DynamicObject) -> String {
    match api.create(&PostParams::default(), object).await {
        Ok(_) => panic!(
            "the API server accepted an invalid object: {}",
            serde_json::to_string(object).unwrap()
        ),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "expected 422 Invalid, got {status:?}");
            status.message
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn crds_install_and_become_established() {
    let client = client().await;
    ensure_crds(&client).await;
    // The kinds are discoverable with the names and categories users type.
    let output = fluxop_e2e::kubectl()
        .args(["api-resources", "--categories", "fluxcd", "-o", "name"])
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&output.stdout);
    assert!(
        names.contains("fluxinstances.fluxcd.controlplane.io"),
        "{names}"
    );
    assert!(
        names.contains("fluxreports.fluxcd.controlplane.io"),
        "{names}"
    );
}

#[tokio::test]
async fn instance_named_flux_is_accepted_and_defaulted_by_the_server() {
    let client = client().await;
    ensure_crds(&client).await;
    let namespace = fresh_namespace(&client, "accept").await;
    let api = instances(&client, &namespace);
    let spec = json!({
        "distribution": { "version": "2.x", "registry": "ghcr.io/fluxcd" },
        "cluster": {},
        "sharding": { "shards": ["a"] },
        "sync": { "kind": "GitRepository", "url": "https://example.com/fleet.git", "ref": "refs/heads/main", "path": "clusters/test" },
    });
    let created = api
        .create(&PostParams::default(), &instance("flux", spec))
        .await
        .expect("flux is accepted");
    let spec = &created.data["spec"];
    assert_eq!(spec["wait"], json!(true));
    assert_eq!(spec["migrateResources"], json!(true));
    assert_eq!(spec["cluster"]["domain"], json!("cluster.local"));
    assert_eq!(spec["cluster"]["networkPolicy"], json!(true));
    assert_eq!(spec["cluster"]["type"], json!("kubernetes"));
    assert_eq!(spec["cluster"]["multitenant"], json!(false));
    assert_eq!(spec["sharding"]["key"], json!("sharding.fluxcd.io/key"));
    assert_eq!(spec["sync"]["interval"], json!("1m"));
    // The typed API reads what the server stored.
    let typed = Api::<FluxInstance>::namespaced(client.clone(), &namespace)
        .get("flux")
        .await
        .expect("typed get");
    assert_eq!(typed.spec.distribution.version, "2.x");
    // `kubectl get` shows the v1 printer columns.
    let output = fluxop_e2e::kubectl()
        .args(["get", "instance", "-n", &namespace])
        .output()
        .unwrap();
    let header = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(columns, ["NAME", "AGE", "READY", "STATUS", "REVISION"]);
}

#[tokio::test]
async fn instance_named_other_is_rejected_with_the_cel_message() {
    let client = client().await;
    ensure_crds(&client).await;
    let namespace = fresh_namespace(&client, "name").await;
    let message = rejection(
        &instances(&client, &namespace),
        &instance("other", minimal_spec()),
    )
    .await;
    assert!(
        message.contains("the only accepted name for a FluxInstance is 'flux'"),
        "{message}"
    );
}

#[tokio::test]
async fn report_named_other_is_rejected_with_the_cel_message() {
    let client = client().await;
    ensure_crds(&client).await;
    let namespace = fresh_namespace(&client, "report").await;
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &ApiResource::erase::<FluxReport>(&()),
    );
    let report = |name: &str| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxReport",
            "metadata": { "name": name },
            "spec": { "distribution": { "entitlement": "Unknown", "status": "Unknown" } },
        }))
        .unwrap()
    };
    let message = rejection(&api, &report("other")).await;
    assert!(
        message.contains("the only accepted name for a FluxReport is 'flux'"),
        "{message}"
    );
    api.create(&PostParams::default(), &report("flux"))
        .await
        .expect("a report named flux is accepted");
}

#[tokio::test]
async fn changing_sync_name_is_rejected() {
    let client = client().await;
    ensure_crds(&client).await;
    let namespace = fresh_namespace(&client, "sync").await;
    let api = instances(&client, &namespace);
    let mut spec = minimal_spec();
    spec["sync"] = json!({ "name": "fleet", "kind": "OCIRepository", "url": "oci://registry.example.com/fleet", "ref": "latest", "path": "./" });
    api.create(&PostParams::default(), &instance("flux", spec))
        .await
        .expect("created");

    let patch = |value: Value| Patch::Merge(json!({ "spec": { "sync": value } }));
    // Other sync fields stay mutable.
    api.patch(
        "flux",
        &PatchParams::default(),
        &patch(json!({ "ref": "stable" })),
    )
    .await
    .expect("ref may change");
    for change in [json!({ "name": "renamed" }), json!({ "name": null })] {
        match api
            .patch("flux", &PatchParams::default(), &patch(change.clone()))
            .await
        {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{status:?}");
                assert!(
                    status.message.contains("Sync name is immutable"),
                    "{}",
                    status.message
                );
            }
            other => panic!("changing sync.name with {change} was not rejected: {other:?}"),
        }
    }
}

#[tokio::test]
async fn schema_rejects_bad_fields_with_messages_that_name_them() {
    let client = client().await;
    ensure_crds(&client).await;
    let namespace = fresh_namespace(&client, "schema").await;
    let api = instances(&client, &namespace);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown component",
            json!({ "components": ["dns-controller"] }),
            "spec.components[0]: Unsupported value: \"dns-controller\"",
        ),
        (
            "artifact without oci://",
            json!({ "distribution": { "version": "2.x", "registry": "ghcr.io/fluxcd", "artifact": "https://example.com/flux" } }),
            "spec.distribution.artifact",
        ),
        (
            "missing version",
            json!({ "distribution": { "registry": "ghcr.io/fluxcd" } }),
            "spec.distribution.version: Required value",
        ),
        (
            "unknown cluster type",
            json!({ "cluster": { "type": "k3s" } }),
            "spec.cluster.type: Unsupported value",
        ),
        (
            "unknown variant",
            json!({ "distribution": { "version": "2.x", "registry": "r", "variant": "custom" } }),
            "spec.distribution.variant: Unsupported value",
        ),
        (
            "empty shard list",
            json!({ "sharding": { "shards": [] } }),
            "spec.sharding.shards",
        ),
        (
            "bad sync interval",
            json!({ "sync": { "kind": "Bucket", "url": "u", "ref": "r", "path": "p", "interval": "1 minute" } }),
            "spec.sync.interval",
        ),
        (
            "sync name too long",
            json!({ "sync": { "name": "x".repeat(64), "kind": "Bucket", "url": "u", "ref": "r", "path": "p" } }),
            "spec.sync.name",
        ),
        (
            "verify without a secret",
            json!({ "distribution": { "version": "2.x", "registry": "r", "verify": { "provider": "cosign" } } }),
            "spec.distribution.verify.secretRef: Required value",
        ),
        (
            "persistent sharding without storage",
            json!({ "sharding": { "shards": ["a"], "storage": "persistent" } }),
            ".spec.storage must be set when .spec.sharding.storage is 'persistent'",
        ),
        (
            "multitenant workload identity alone",
            json!({ "cluster": { "multitenantWorkloadIdentity": true } }),
            ".objectLevelWorkloadIdentity must be set to true when .multitenantWorkloadIdentity is set to true",
        ),
    ];
    for (what, overrides, expected) in cases {
        let mut spec = minimal_spec();
        for (key, value) in overrides.as_object().unwrap() {
            spec[key] = value.clone();
        }
        let message = rejection(&api, &instance("flux", spec)).await;
        assert!(
            message.contains(expected),
            "{what}: expected {expected:?} in {message:?}"
        );
    }
    // The valid counterparts of the two cross-field rules are accepted.
    let mut spec = minimal_spec();
    spec["sharding"] = json!({ "shards": ["a"], "storage": "persistent" });
    spec["storage"] = json!({ "class": "standard", "size": "1Gi" });
    spec["cluster"] =
        json!({ "objectLevelWorkloadIdentity": true, "multitenantWorkloadIdentity": true });
    api.create(&PostParams::default(), &instance("flux", spec))
        .await
        .expect("valid cross-field combination");
}

#[tokio::test]
async fn every_api_reference_example_is_accepted_by_the_server() {
    let client = client().await;
    ensure_crds(&client).await;
    let namespace = fresh_namespace(&client, "examples").await;
    let api = instances(&client, &namespace);
    let text = std::fs::read_to_string(
        fluxop_e2e::repo_root().join("operator/testdata/instances/api-reference.yaml"),
    )
    .unwrap();
    let examples: Vec<DynamicObject> =
        serde_saphyr::from_str_multiple(&text).expect("fixture parses");
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    for (index, mut example) in examples.into_iter().enumerate() {
        example.metadata.namespace = None;
        let created = api
            .create(&dry_run, &example)
            .await
            .unwrap_or_else(|e| panic!("example {index} rejected: {e}"));
        // Nothing the user wrote is pruned by the structural schema.
        let sent = serde_json::to_value(&example.data["spec"]).unwrap();
        assert_contains(&created.data["spec"], &sent, &format!("example {index}"));
    }
}

/// Every field of `expected` is present with the same value in `actual` (which may have more: defaults).
fn assert_contains(actual: &Value, expected: &Value, context: &str) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (key, value) in e {
                let got = a
                    .get(key)
                    .unwrap_or_else(|| panic!("{context}: field {key} was dropped by the server"));
                assert_contains(got, value, &format!("{context}.{key}"));
            }
        }
        _ => assert_eq!(actual, expected, "{context}"),
    }
}

#[tokio::test]
async fn every_example_manifest_is_accepted_by_a_server_side_dry_run() {
    let client = client().await;
    ensure_crds(&client).await;
    // The examples live in flux-system, as the operator does.
    let _ = fluxop_e2e::kubectl()
        .args(["create", "namespace", "flux-system"])
        .output();
    for entry in std::fs::read_dir(fluxop_e2e::repo_root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let output = fluxop_e2e::kubectl()
            .args([
                "apply",
                "--server-side",
                "--dry-run=server",
                "--force-conflicts",
                "--field-manager",
                "e2e",
                "-f",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{} was rejected: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
