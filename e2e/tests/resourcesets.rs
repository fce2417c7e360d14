//! ResourceSets on a real node: fluxop (a process of this machine) reconciles
//! ResourceSets and their input providers in a cluster of its own with one real node
//! (containerd, kubelet), and the apps they render run there, from images in the test
//! registry.
//!
//! One cluster serves the phases below, in order: an OCIArtifactTag provider gives one app
//! per tag (a new tag adds one, a deleted tag's app is pruned); a `dependsOn` with a
//! readiness expression holds a ResourceSet back until its dependency is ready; an
//! impersonated ResourceSet cannot create what its ServiceAccount may not; and bad input
//! (an unknown function, a missing input, a provider that cannot reach its registry) is a
//! condition naming the cause, with nothing applied or pruned.

use std::time::{Duration, Instant};

use fluxop::api::resourceset::{ResourceSet, ResourceSetInputProvider};
use fluxop_e2e::{
    cluster::{OwnCluster, exclusive, run_fluxop},
    eventually, fresh_namespace,
    pods::app_image_in,
    registry_address,
    toolkit::{crane, push_app_image},
    unique_repository,
};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Namespace},
    rbac::v1::ClusterRole,
};
use kube::{Api, Client};

const MINUTE: Duration = Duration::from_secs(60);

fn ready(rset: &ResourceSet) -> Option<(String, String, String)> {
    let c = rset
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the ResourceSet's Ready condition satisfies `check`, returning it.
async fn wait_rset(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&(String, String, String)) -> bool,
) -> (String, String, String) {
    let api = Api::<ResourceSet>::namespaced(client.clone(), namespace);
    eventually(2 * MINUTE, what, || {
        let api = api.clone();
        let check = &check;
        async move {
            let rset = api.get_opt(name).await.ok()??;
            ready(&rset).filter(|r| check(r))
        }
    })
    .await
}

/// Asks for a reconcile of a provider now and waits until it handled it.
async fn reconcile_provider(cluster: &OwnCluster, client: &Client, namespace: &str, name: &str) {
    let at = format!("{:?}", Instant::now());
    cluster.kubectl_ok(&[
        "annotate",
        "--overwrite",
        "-n",
        namespace,
        "resourcesetinputprovider",
        name,
        &format!("reconcile.fluxcd.io/requestedAt={at}"),
    ]);
    let api = Api::<ResourceSetInputProvider>::namespaced(client.clone(), namespace);
    eventually(
        MINUTE,
        "the provider to handle the reconcile request",
        || {
            let api = api.clone();
            let at = at.clone();
            async move {
                let p = api.get(name).await.ok()?;
                (p.status?.last_handled_reconcile_at.as_deref() == Some(at.as_str())).then_some(())
            }
        },
    )
    .await;
}

/// The app namespaces (`app-…`) whose Deployment has an available replica.
async fn running_apps(client: &Client, tags: &[&str]) -> Option<()> {
    for tag in tags {
        let namespace = format!("app-{}", tag.replace('.', "-"));
        let deployment = Api::<Deployment>::namespaced(client.clone(), &namespace)
            .get_opt("app")
            .await
            .ok()??;
        let available = deployment.status?.available_replicas.unwrap_or(0);
        if available < 1 {
            return None;
        }
    }
    Some(())
}

async fn namespace_gone(client: &Client, name: &str) -> Option<()> {
    match Api::<Namespace>::all(client.clone())
        .get_opt(name)
        .await
        .ok()?
    {
        None => Some(()),
        Some(ns) => ns.metadata.deletion_timestamp.map(|_| ()),
    }
}

#[tokio::test]
async fn resourcesets_deploy_an_app_per_tag_wait_for_dependencies_and_keep_tenants_to_their_rights()
{
    let _cluster_slot = exclusive().await;
    let cluster = OwnCluster::start_real("rset").await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    let _operator = run_fluxop(
        &cluster.kubeconfig,
        "rset",
        "fluxop-rset",
        "flux-system",
        &[],
        &[],
    )
    .await;
    let namespace = fresh_namespace(&client, "rset").await;

    // ---- One app per tag of an OCI repository. ----
    let repository = unique_repository("rset-app");
    let host = registry_address();
    let pushed = |tag: &str| push_app_image(&format!("{host}/{repository}:{tag}"), tag);
    let first = pushed("v1.0.0");
    pushed("v1.1.0");
    pushed("dev");
    let image = app_image_in(&cluster);
    let node_registry = image.split('/').next().expect("registry").to_string();
    cluster.apply(&format!(
        r#"apiVersion: fluxcd.controlplane.io/v1
kind: ResourceSetInputProvider
metadata:
  name: releases
  namespace: {namespace}
spec:
  type: OCIArtifactTag
  url: oci://{host}/{repository}
  insecure: true
  filter:
    semver: ">=1.0.0"
---
apiVersion: fluxcd.controlplane.io/v1
kind: ResourceSet
metadata:
  name: apps
  namespace: {namespace}
spec:
  wait: true
  inputsFrom:
    - name: releases
  resourcesTemplate: |
    apiVersion: v1
    kind: Namespace
    metadata:
      name: app-<< inputs.tag | replace "." "-" >>
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: app
      namespace: app-<< inputs.tag | replace "." "-" >>
      annotations:
        release: << inputs.tag | quote >>
    spec:
      replicas: 1
      selector:
        matchLabels: {{app: app}}
      template:
        metadata:
          labels: {{app: app}}
        spec:
          containers:
            - name: app
              image: {node_registry}/{repository}@<< inputs.digest >>
"#
    ));
    let started = Instant::now();
    wait_rset(
        &client,
        &namespace,
        "apps",
        "ResourceSet apps to be Ready",
        |r| r.0 == "True",
    )
    .await;
    eventually(2 * MINUTE, "an app per release tag to run", || {
        running_apps(&client, &["v1.0.0", "v1.1.0"])
    })
    .await;
    println!(
        "timing: two apps running {:?} after the ResourceSet was applied",
        started.elapsed()
    );
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt("app-dev")
            .await
            .unwrap()
            .is_none(),
        "the semver filter leaves out the tag dev"
    );
    let provider = Api::<ResourceSetInputProvider>::namespaced(client.clone(), &namespace)
        .get("releases")
        .await
        .unwrap();
    let exported = provider.status.unwrap().exported_inputs.unwrap();
    assert_eq!(exported.len(), 2, "{exported:?}");
    assert_eq!(exported[0].0["tag"], "v1.1.0", "newest version first");
    assert_eq!(exported[1].0["digest"], first.as_str());
    assert_eq!(
        exported[1].0["id"],
        fluxop::resourceset::inputs::id("v1.0.0").as_str()
    );

    // A new tag adds an app.
    pushed("v1.2.0");
    let started = Instant::now();
    reconcile_provider(&cluster, &client, &namespace, "releases").await;
    eventually(2 * MINUTE, "the app of the new tag to run", || {
        running_apps(&client, &["v1.2.0"])
    })
    .await;
    println!(
        "timing: the new tag's app running {:?} after the provider's reconcile request",
        started.elapsed()
    );

    // A deleted tag's app is pruned.
    crane(&["delete", &format!("{host}/{repository}@{first}")]);
    reconcile_provider(&cluster, &client, &namespace, "releases").await;
    eventually(
        2 * MINUTE,
        "the deleted tag's namespace to be pruned",
        || namespace_gone(&client, "app-v1-0-0"),
    )
    .await;
    running_apps(&client, &["v1.1.0", "v1.2.0"])
        .await
        .expect("the other apps keep running");
    let rset = Api::<ResourceSet>::namespaced(client.clone(), &namespace)
        .get("apps")
        .await
        .unwrap();
    let inventory = rset.status.unwrap().inventory.unwrap();
    assert_eq!(
        inventory.entries.len(),
        4,
        "two namespaces and two deployments: {inventory:?}"
    );

    // Drift: a deleted Deployment and a scaled-down one come back within seconds.
    let deployments = Api::<Deployment>::namespaced(client.clone(), "app-v1-1-0");
    let started = Instant::now();
    deployments
        .delete("app", &Default::default())
        .await
        .expect("deleting the app");
    eventually(MINUTE, "the deleted Deployment to be restored", || {
        running_apps(&client, &["v1.1.0"])
    })
    .await;
    println!(
        "timing: a deleted Deployment restored and running {:?} after the delete",
        started.elapsed()
    );
    let started = Instant::now();
    cluster.kubectl_ok(&[
        "scale",
        "-n",
        "app-v1-2-0",
        "deployment/app",
        "--replicas=0",
    ]);
    eventually(MINUTE, "the scaled-down Deployment to be corrected", || {
        let api = Api::<Deployment>::namespaced(client.clone(), "app-v1-2-0");
        async move {
            let d = api.get("app").await.ok()?;
            (d.spec?.replicas == Some(1) && d.metadata.generation.unwrap_or(0) > 1).then_some(())
        }
    })
    .await;
    println!(
        "timing: a scaled-down Deployment corrected {:?} after the change",
        started.elapsed()
    );

    // ---- dependsOn with a readiness expression. ----
    let config_map = |name: &str| {
        format!(
            "  resources:\n    - apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        name: {name}\n        namespace: {namespace}\n      data:\n        from: << inputs.from >>\n  inputs:\n    - from: {name}\n"
        )
    };
    cluster.apply(&format!(
        "apiVersion: fluxcd.controlplane.io/v1\nkind: ResourceSet\nmetadata:\n  name: frontend\n  namespace: {namespace}\nspec:\n  dependsOn:\n    - apiVersion: fluxcd.controlplane.io/v1\n      kind: ResourceSet\n      name: backend\n      ready: true\n      readyExpr: \"status.conditions.exists(c, c.type == 'Ready' && c.status == 'True') && has(status.inventory)\"\n{}",
        config_map("frontend")
    ));
    let (_, reason, message) = wait_rset(
        &client,
        &namespace,
        "frontend",
        "frontend to wait for its dependency",
        |r| r.1 == "DependencyNotReady",
    )
    .await;
    println!("frontend: {reason}: {message}");
    assert!(message.contains("backend"), "{message}");
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), &namespace);
    assert!(
        config_maps.get_opt("frontend").await.unwrap().is_none(),
        "nothing applied before the dependency is ready"
    );
    cluster.apply(&format!(
        "apiVersion: fluxcd.controlplane.io/v1\nkind: ResourceSet\nmetadata:\n  name: backend\n  namespace: {namespace}\nspec:\n{}",
        config_map("backend")
    ));
    wait_rset(
        &client,
        &namespace,
        "frontend",
        "frontend to become Ready after backend",
        |r| r.0 == "True",
    )
    .await;
    assert!(config_maps.get_opt("frontend").await.unwrap().is_some());

    // ---- Impersonation: a tenant's ResourceSet applies with the tenant's rights. ----
    let tenant = fresh_namespace(&client, "tenant").await;
    cluster.apply(&format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata:
  name: tenant
  namespace: {tenant}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: configmaps
  namespace: {tenant}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list, watch, create, patch, update, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: tenant-configmaps
  namespace: {tenant}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: configmaps
subjects:
  - kind: ServiceAccount
    name: tenant
    namespace: {tenant}
---
apiVersion: fluxcd.controlplane.io/v1
kind: ResourceSet
metadata:
  name: tenant-apps
  namespace: {tenant}
spec:
  serviceAccountName: tenant
  resources:
    - apiVersion: v1
      kind: ConfigMap
      metadata:
        name: allowed
        namespace: {tenant}
    - apiVersion: rbac.authorization.k8s.io/v1
      kind: ClusterRole
      metadata:
        name: {tenant}-escalation
      rules:
        - apiGroups: ["*"]
          resources: ["*"]
          verbs: ["*"]
"#
    ));
    let (_, reason, message) = wait_rset(
        &client,
        &tenant,
        "tenant-apps",
        "the tenant's ResourceSet to fail on what it may not create",
        |r| r.0 == "False",
    )
    .await;
    println!("tenant-apps: {reason}: {message}");
    assert_eq!(reason, "ReconciliationFailed");
    assert!(
        message.contains("forbidden")
            && message.contains(&format!("system:serviceaccount:{tenant}:tenant")),
        "{message}"
    );
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&format!("{tenant}-escalation"))
            .await
            .unwrap()
            .is_none(),
        "the ClusterRole its ServiceAccount may not create does not exist"
    );

    // ---- Bad input: a condition naming the cause, nothing applied or pruned. ----
    cluster.kubectl_ok(&[
        "patch", "-n", &namespace, "resourceset", "backend", "--type=merge", "-p",
        r#"{"spec":{"resources":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"backend"},"data":{"from":"<< inputs.from | toToml >>"}}]}}"#,
    ]);
    let (_, reason, message) = wait_rset(
        &client,
        &namespace,
        "backend",
        "an unknown function to stall backend",
        |r| r.1 == "BuildFailed",
    )
    .await;
    println!("backend: {reason}: {message}");
    assert!(
        message.contains("function \"toToml\" not defined") && message.contains("resources[0]"),
        "{message}"
    );
    assert!(
        config_maps.get_opt("backend").await.unwrap().is_some(),
        "a refused template prunes nothing"
    );

    cluster.kubectl_ok(&[
        "patch", "-n", &namespace, "resourceset", "backend", "--type=merge", "-p",
        r#"{"spec":{"resources":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"backend"},"data":{"from":"<< inputs.missing >>"}}]}}"#,
    ]);
    let (_, _, message) = wait_rset(
        &client,
        &namespace,
        "backend",
        "a missing input to stall backend",
        |r| r.1 == "BuildFailed" && r.2.contains("missing"),
    )
    .await;
    assert!(
        message.contains("map has no entry for key \"missing\""),
        "{message}"
    );

    cluster.apply(&format!(
        r#"apiVersion: fluxcd.controlplane.io/v1
kind: ResourceSetInputProvider
metadata:
  name: unreachable
  namespace: {namespace}
spec:
  type: OCIArtifactTag
  url: oci://127.0.0.1:1/nothing-listens-here
  insecure: true
---
apiVersion: fluxcd.controlplane.io/v1
kind: ResourceSet
metadata:
  name: from-unreachable
  namespace: {namespace}
spec:
  inputsFrom:
    - name: unreachable
  resources:
    - apiVersion: v1
      kind: ConfigMap
      metadata:
        name: from-unreachable-<< inputs.tag >>
        namespace: {namespace}
"#
    ));
    let providers = Api::<ResourceSetInputProvider>::namespaced(client.clone(), &namespace);
    let message = eventually(MINUTE, "the unreachable provider to report why", || {
        let providers = providers.clone();
        async move {
            let p = providers.get("unreachable").await.ok()?;
            let c = p
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.status == "False")?;
            Some(c.message)
        }
    })
    .await;
    println!("unreachable: {message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    let (_, _, message) = wait_rset(
        &client,
        &namespace,
        "from-unreachable",
        "its ResourceSet to say it has no inputs",
        |r| r.0 == "False",
    )
    .await;
    assert!(message.contains("has not exported inputs yet"), "{message}");
    let rset = Api::<ResourceSet>::namespaced(client.clone(), &namespace)
        .get("from-unreachable")
        .await
        .unwrap();
    assert!(
        rset.status
            .and_then(|s| s.inventory)
            .is_none_or(|i| i.entries.is_empty()),
        "nothing applied for a provider that never answered"
    );
}
