use semver::Version;
use serde_json::{Value, json};

use super::*;
use crate::{api::FluxInstanceSpec, testing::vendored_bundle};

fn spec(yaml: &str) -> FluxInstanceSpec {
    serde_saphyr::from_str(yaml).expect("spec")
}

const DEFAULT: &str = "distribution: {version: '2.x', registry: ghcr.io/fluxcd}";

fn versions() -> Vec<Version> {
    vendored_bundle().versions()
}

fn deployment<'a>(rendered: &'a Rendered, name: &str) -> &'a Value {
    rendered
        .objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no Deployment {name}"))
}

fn container_args(rendered: &Rendered, name: &str) -> Vec<String> {
    deployment(rendered, name)["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_default_instance_renders_for_every_release_into_one_namespace_without_duplicates() {
    let bundle = vendored_bundle();
    for version in versions() {
        let rendered = render("flux-system", &spec(DEFAULT), &bundle, &version).unwrap();
        let kinds = |kind: &str| {
            rendered
                .objects
                .iter()
                .filter(|o| o["kind"] == kind)
                .count()
        };
        assert_eq!(kinds("Namespace"), 1);
        assert_eq!(kinds("Deployment"), 4, "v{version}");
        assert_eq!(kinds("NetworkPolicy"), 3, "v{version}");
        assert!(kinds("CustomResourceDefinition") >= 10, "v{version}");
        for object in &rendered.objects {
            let kind = object["kind"].as_str().unwrap();
            let namespace = object["metadata"]["namespace"].as_str();
            if CLUSTER_SCOPED.contains(&kind) {
                assert_eq!(namespace, None, "{kind} must be cluster-scoped");
            } else {
                assert_eq!(
                    namespace,
                    Some("flux-system"),
                    "{kind} {}",
                    object["metadata"]["name"]
                );
            }
            assert_eq!(
                object["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "fluxop"
            );
            assert_eq!(
                object["metadata"]["labels"]["app.kubernetes.io/version"],
                format!("v{version}")
            );
        }
        assert_eq!(
            identities(&rendered.objects).len(),
            rendered.objects.len(),
            "duplicate identities"
        );
        assert_eq!(
            rendered.objects[0]["kind"], "Namespace",
            "the namespace is applied first"
        );
        assert!(
            rendered
                .revision
                .starts_with(&format!("v{version}@sha256:"))
        );
    }
}

#[test]
fn rendering_is_deterministic_and_the_revision_follows_every_spec_change() {
    let bundle = vendored_bundle();
    let version = Version::new(2, 9, 4);
    let first = render("flux-system", &spec(DEFAULT), &bundle, &version).unwrap();
    assert_eq!(
        first,
        render("flux-system", &spec(DEFAULT), &bundle, &version).unwrap()
    );
    for changed in [
        "distribution: {version: '2.x', registry: registry.example.com/fluxcd}",
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncluster: {domain: example.local}",
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncommonMetadata: {labels: {team: a}}",
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncluster: {networkPolicy: false}",
    ] {
        let other = render("flux-system", &spec(changed), &bundle, &version).unwrap();
        assert_ne!(other.revision, first.revision, "{changed}");
    }
    let elsewhere = render("flux", &spec(DEFAULT), &bundle, &version).unwrap();
    assert_ne!(elsewhere.revision, first.revision);
}

#[test]
fn source_watcher_needs_flux_2_7() {
    let bundle = vendored_bundle();
    let with_watcher = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncomponents: [source-controller, source-watcher]",
    );
    let error = render(
        "flux-system",
        &with_watcher,
        &bundle,
        &Version::new(2, 6, 4),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "component source-watcher needs Flux 2.7.0 or later; the selected version is v2.6.4"
    );
    let rendered = render(
        "flux-system",
        &with_watcher,
        &bundle,
        &Version::new(2, 7, 5),
    )
    .unwrap();
    deployment(&rendered, "source-watcher");
}

#[test]
fn images_come_from_the_catalog_pinned_by_digest_on_the_chosen_registry() {
    let bundle = vendored_bundle();
    let mirror = spec(
        "distribution: {version: '2.x', registry: registry.example.com/fluxcd/, imagePullSecret: regcred}",
    );
    let rendered = render("flux-system", &mirror, &bundle, &Version::new(2, 8, 8)).unwrap();
    let pod = &deployment(&rendered, "source-controller")["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        "registry.example.com/fluxcd/source-controller:v1.8.5@sha256:65172e2405cf95b92c4b00cefd28d5e8ffd1f81d6d097f85c6e83a9c557c9def"
    );
    assert_eq!(
        pod["imagePullSecrets"],
        serde_json::json!([{ "name": "regcred" }])
    );
    let names: Vec<&str> = rendered
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "source-controller",
            "kustomize-controller",
            "helm-controller",
            "notification-controller"
        ]
    );
    assert!(rendered.components.iter().all(|c| c.digest.is_some()));
}

#[test]
fn without_a_catalog_entry_the_release_tag_is_used() {
    let enterprise = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd, variant: enterprise-alpine}",
    );
    let rendered = render(
        "flux-system",
        &enterprise,
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap();
    let image = &deployment(&rendered, "kustomize-controller")["spec"]["template"]["spec"]["containers"]
        [0]["image"];
    assert_eq!(image, "ghcr.io/fluxcd/kustomize-controller:v1.9.4");
}

#[test]
fn the_namespace_and_cluster_domain_reach_every_service_address() {
    let custom = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncluster: {domain: corp.example}",
    );
    let rendered = render(
        "gitops",
        &custom,
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap();
    let source = container_args(&rendered, "source-controller");
    assert!(
        source.contains(
            &"--events-addr=http://notification-controller.gitops.svc.corp.example./".to_string()
        ),
        "{source:?}"
    );
    // fluxop sends its own events to the same address.
    assert_eq!(
        super::events_address(&custom, "gitops").map(|a| format!("--events-addr={a}")),
        source
            .iter()
            .find(|a| a.starts_with("--events-addr="))
            .cloned()
    );
    assert!(
        source.contains(
            &"--storage-adv-addr=source-controller.$(RUNTIME_NAMESPACE).svc.corp.example."
                .to_string()
        ),
        "{source:?}"
    );
    // RBAC subjects follow the namespace.
    for binding in rendered
        .objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRoleBinding")
    {
        for subject in binding["subjects"].as_array().unwrap() {
            assert_eq!(subject["namespace"], "gitops");
        }
    }
}

#[test]
fn multitenancy_locks_tenants_down_by_flag_name() {
    let locked = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncluster: {multitenant: true, tenantDefaultServiceAccount: flux-tenant}",
    );
    let rendered = render(
        "flux-system",
        &locked,
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap();
    let kustomize = container_args(&rendered, "kustomize-controller");
    for flag in [
        "--no-cross-namespace-refs=true",
        "--no-remote-bases=true",
        "--default-service-account=flux-tenant",
    ] {
        assert!(
            kustomize.contains(&flag.to_string()),
            "{flag} missing: {kustomize:?}"
        );
    }
    let helm = container_args(&rendered, "helm-controller");
    assert!(helm.contains(&"--default-service-account=flux-tenant".to_string()));
    assert!(!helm.iter().any(|a| a.starts_with("--no-remote-bases")));
    // Flags present before stay, once.
    assert_eq!(
        kustomize
            .iter()
            .filter(|a| a.starts_with("--watch-all-namespaces"))
            .count(),
        1
    );
}

#[test]
fn common_metadata_reaches_every_object_but_cannot_override_owner_labels() {
    let labelled = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncommonMetadata:\n  labels: {team: platform, fluxcd.controlplane.io/name: hijack}\n  annotations: {owner: platform@example.com}",
    );
    let rendered = render(
        "flux-system",
        &labelled,
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap();
    for object in &rendered.objects {
        let metadata = &object["metadata"];
        assert_eq!(metadata["labels"]["team"], "platform");
        assert_eq!(metadata["annotations"]["owner"], "platform@example.com");
        assert_eq!(metadata["labels"]["fluxcd.controlplane.io/name"], "flux");
    }
}

#[test]
fn flux_own_apply_and_prune_leave_every_rendered_object_alone() {
    let synced = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\nsync: {kind: GitRepository, url: 'https://git/x', ref: refs/heads/main, path: clusters/a}",
    );
    let rendered = render(
        "flux-system",
        &synced,
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap();
    for object in &rendered.objects {
        let annotations = &object["metadata"]["annotations"];
        assert_eq!(
            annotations["kustomize.toolkit.fluxcd.io/ssa"], "Ignore",
            "{object}"
        );
        assert_eq!(
            annotations["kustomize.toolkit.fluxcd.io/prune"], "Disabled",
            "{object}"
        );
    }
}

#[test]
fn without_notification_controller_no_controller_sends_events() {
    let args_of = |spec_text: &str| -> Vec<Vec<String>> {
        let rendered = render(
            "flux-system",
            &spec(spec_text),
            &vendored_bundle(),
            &Version::new(2, 9, 4),
        )
        .unwrap();
        rendered
            .objects
            .iter()
            .filter(|o| o["kind"] == "Deployment")
            .map(|o| {
                serde_json::from_value(
                    o["spec"]["template"]["spec"]["containers"][0]["args"].clone(),
                )
                .unwrap_or_default()
            })
            .collect()
    };
    let sends_events = |args: &Vec<String>| args.iter().any(|a| a.starts_with("--events-addr"));
    let without = args_of(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncomponents: [source-controller, kustomize-controller]",
    );
    assert_eq!(without.len(), 2);
    assert!(!without.iter().any(sends_events));
    let with = args_of("distribution: {version: '2.x', registry: ghcr.io/fluxcd}");
    assert!(with.iter().filter(|a| sends_events(a)).count() >= 3);
}

#[test]
fn turning_network_policies_off_leaves_them_out() {
    let open = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncluster: {networkPolicy: false}",
    );
    let rendered = render(
        "flux-system",
        &open,
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap();
    assert!(
        rendered
            .objects
            .iter()
            .all(|o| o["kind"] != "NetworkPolicy")
    );
}

#[test]
fn service_addresses_keep_their_service_scheme_and_path() {
    assert_eq!(
        service_address(
            "http://notification-controller.flux-system.svc.cluster.local./",
            "ops",
            "example.org"
        ),
        "http://notification-controller.ops.svc.example.org./"
    );
    assert_eq!(
        service_address(
            "source-controller.$(RUNTIME_NAMESPACE).svc.cluster.local.",
            "ops",
            "example.org"
        ),
        "source-controller.$(RUNTIME_NAMESPACE).svc.example.org."
    );
    assert_eq!(
        service_address("http://localhost:9090/", "ops", "example.org"),
        "http://localhost:9090/"
    );
}

fn find<'a>(rendered: &'a Rendered, kind: &str) -> Option<&'a Value> {
    rendered.objects.iter().find(|o| o["kind"] == kind)
}

#[test]
fn each_sync_kind_renders_a_source_and_a_kustomization_at_the_served_api_versions() {
    let bundle = vendored_bundle();
    for (kind, reference_field, expected) in [
        ("GitRepository", "/spec/ref/name", "refs/heads/main"),
        ("OCIRepository", "/spec/ref/tag", "refs/heads/main"),
        ("Bucket", "/spec/bucketName", "refs/heads/main"),
    ] {
        let with_sync = spec(&format!(
            "distribution: {{version: '2.x', registry: ghcr.io/fluxcd}}\nsync:\n  kind: {kind}\n  url: https://example.com/fleet\n  \
             ref: refs/heads/main\n  path: clusters/prod\n  pullSecret: creds\n  provider: generic"
        ));
        for version in [Version::new(2, 6, 4), Version::new(2, 9, 4)] {
            let rendered = render("flux-system", &with_sync, &bundle, &version).unwrap();
            let source = find(&rendered, kind).unwrap_or_else(|| panic!("no {kind}"));
            assert_eq!(
                source["apiVersion"], "source.toolkit.fluxcd.io/v1",
                "{kind} v{version}"
            );
            assert_eq!(source["metadata"]["name"], "flux-system");
            assert_eq!(source["metadata"]["namespace"], "flux-system");
            assert_eq!(source.pointer(reference_field).unwrap(), expected);
            // A Bucket's address is its endpoint; the others have a URL.
            let address = if kind == "Bucket" { "endpoint" } else { "url" };
            assert_eq!(source["spec"][address], "https://example.com/fleet");
            assert_eq!(
                source["spec"].as_object().unwrap().len(),
                5,
                "{kind}: {source}"
            );
            assert_eq!(source["spec"]["interval"], "1m");
            assert_eq!(source["spec"]["secretRef"]["name"], "creds");
            assert_eq!(source["spec"]["provider"], "generic");
            let kustomization = find(&rendered, "Kustomization").unwrap();
            assert_eq!(
                kustomization["apiVersion"],
                "kustomize.toolkit.fluxcd.io/v1"
            );
            assert_eq!(
                kustomization["spec"]["sourceRef"],
                serde_json::json!({ "kind": kind, "name": "flux-system" })
            );
            assert_eq!(kustomization["spec"]["path"], "clusters/prod");
            assert_eq!(kustomization["spec"]["prune"], true);
            assert_eq!(kustomization["spec"]["interval"], "10m0s");
        }
    }
}

#[test]
fn a_named_sync_uses_its_name_and_needs_source_and_kustomize_controllers() {
    let bundle = vendored_bundle();
    let named = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\nsync: {name: fleet, kind: GitRepository, url: u, ref: main, path: ./}",
    );
    let rendered = render("flux-system", &named, &bundle, &Version::new(2, 9, 4)).unwrap();
    assert_eq!(
        find(&rendered, "Kustomization").unwrap()["metadata"]["name"],
        "fleet"
    );
    let without_kustomize = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncomponents: [source-controller, helm-controller]\n\
         sync: {kind: GitRepository, url: u, ref: main, path: ./}",
    );
    let error = render(
        "flux-system",
        &without_kustomize,
        &bundle,
        &Version::new(2, 9, 4),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "spec.sync needs the kustomize-controller component, which spec.components leaves out"
    );
}

#[test]
fn storage_creates_a_claim_that_source_controller_mounts() {
    let stored = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\nstorage: {class: standard, size: 10Gi}",
    );
    let rendered = render(
        "flux-system",
        &stored,
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap();
    let claim = find(&rendered, "PersistentVolumeClaim").expect("claim");
    assert_eq!(claim["metadata"]["name"], "source-controller");
    assert_eq!(claim["spec"]["storageClassName"], "standard");
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "10Gi");
    let volumes =
        &deployment(&rendered, "source-controller")["spec"]["template"]["spec"]["volumes"];
    let data = volumes
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "data")
        .unwrap();
    assert_eq!(
        data["persistentVolumeClaim"]["claimName"],
        "source-controller"
    );
    assert!(
        volumes
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "tmp" && v["emptyDir"].is_object())
    );
    // Without storage, no claim.
    let plain = render(
        "flux-system",
        &spec(DEFAULT),
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap();
    assert!(find(&plain, "PersistentVolumeClaim").is_none());
}

#[test]
fn the_namespace_is_never_pruned() {
    let rendered = render(
        "flux-system",
        &spec(DEFAULT),
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap();
    assert_eq!(
        rendered.objects[0]["metadata"]["annotations"]["fluxcd.controlplane.io/prune"],
        "disabled"
    );
}

fn manager_of<'a>(rendered: &'a Rendered, name: &str) -> &'a Value {
    &deployment(rendered, name)["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn size_profiles_set_concurrency_caches_and_resources_by_flag_name() {
    let bundle = vendored_bundle();
    for (size, concurrent, requeue, cache, limit) in [
        ("small", "5", "10s", "10", "512Mi"),
        ("medium", "10", "5s", "50", "1Gi"),
        ("large", "20", "5s", "100", "3Gi"),
    ] {
        let sized = spec(&format!(
            "distribution: {{version: '2.x', registry: ghcr.io/fluxcd}}\ncluster: {{size: {size}}}"
        ));
        for version in bundle.versions() {
            let rendered = render("flux-system", &sized, &bundle, &version).unwrap();
            let kustomize = container_args(&rendered, "kustomize-controller");
            assert!(
                kustomize.contains(&format!("--concurrent={concurrent}")),
                "{size}: {kustomize:?}"
            );
            assert!(
                kustomize.contains(&format!("--requeue-dependency={requeue}")),
                "{size}: {kustomize:?}"
            );
            assert_eq!(
                kustomize
                    .iter()
                    .filter(|a| a.starts_with("--concurrent"))
                    .count(),
                1
            );
            let source = container_args(&rendered, "source-controller");
            assert!(
                source.contains(&format!("--helm-cache-max-size={cache}")),
                "{size}: {source:?}"
            );
            assert_eq!(
                manager_of(&rendered, "helm-controller")["resources"]["limits"]["memory"],
                limit
            );
            assert_eq!(
                deployment(&rendered, "helm-controller")["metadata"]["annotations"]["fluxcd.controlplane.io/profile"],
                size
            );
        }
    }
    // Without a size, upstream resources and flags stay.
    let plain = render(
        "flux-system",
        &spec(DEFAULT),
        &bundle,
        &Version::new(2, 9, 4),
    )
    .unwrap();
    assert!(
        !container_args(&plain, "kustomize-controller")
            .iter()
            .any(|a| a.starts_with("--concurrent"))
    );
}

#[test]
fn openshift_drops_fixed_pod_security_settings() {
    let openshift = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncluster: {type: openshift}",
    );
    let bundle = vendored_bundle();
    let upstream = render(
        "flux-system",
        &spec(DEFAULT),
        &bundle,
        &Version::new(2, 9, 4),
    )
    .unwrap();
    assert!(
        manager_of(&upstream, "source-controller")["securityContext"]["seccompProfile"].is_object(),
        "fixture check"
    );
    let rendered = render("flux-system", &openshift, &bundle, &Version::new(2, 9, 4)).unwrap();
    for object in rendered
        .objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
    {
        let pod = &object["spec"]["template"]["spec"];
        assert!(
            pod.get("securityContext").is_none(),
            "{}",
            object["metadata"]["name"]
        );
        let context = &pod["containers"][0]["securityContext"];
        assert!(context.get("seccompProfile").is_none() && context.get("runAsNonRoot").is_none());
        assert_eq!(
            context["readOnlyRootFilesystem"], true,
            "other hardening stays"
        );
    }
    assert!(
        rendered.objects[0]["metadata"]["labels"]
            .get("pod-security.kubernetes.io/warn")
            .is_none()
    );
    // Cloud types change nothing.
    let aws =
        spec("distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncluster: {type: aws}");
    assert_eq!(
        render("flux-system", &aws, &bundle, &Version::new(2, 9, 4))
            .unwrap()
            .objects,
        upstream.objects
    );
}

#[test]
fn workload_identity_sets_gates_and_tenant_accounts_with_version_gates() {
    let bundle = vendored_bundle();
    let identity = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncluster:\n  objectLevelWorkloadIdentity: true\n  \
         multitenantWorkloadIdentity: true\n  tenantDefaultServiceAccount: tenant\n  tenantDefaultDecryptionServiceAccount: sops\n",
    );
    let rendered = render("flux-system", &identity, &bundle, &Version::new(2, 9, 4)).unwrap();
    let kustomize = container_args(&rendered, "kustomize-controller");
    assert!(
        kustomize.contains(&"--feature-gates=ObjectLevelWorkloadIdentity=true".to_string()),
        "{kustomize:?}"
    );
    assert!(kustomize.contains(&"--default-decryption-service-account=sops".to_string()));
    assert!(kustomize.contains(&"--default-kubeconfig-service-account=default".to_string()));
    assert!(
        container_args(&rendered, "source-controller")
            .contains(&"--default-service-account=tenant".to_string())
    );
    // helm-controller understands the gate from Flux 2.7.
    assert!(
        container_args(&rendered, "helm-controller")
            .contains(&"--feature-gates=ObjectLevelWorkloadIdentity=true".to_string())
    );
    let error = render("flux-system", &identity, &bundle, &Version::new(2, 6, 4)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "multitenantWorkloadIdentity needs Flux 2.7.0 or later; the selected version is v2.6.4"
    );
}

#[test]
fn a_multitenant_sync_runs_as_the_kustomize_controller() {
    let locked = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncluster: {multitenant: true}\n\
         sync: {kind: GitRepository, url: u, ref: main, path: ./}",
    );
    let rendered = render(
        "flux-system",
        &locked,
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap();
    assert_eq!(
        find(&rendered, "Kustomization").unwrap()["spec"]["serviceAccountName"],
        "kustomize-controller"
    );
}

/// The spec (YAML) rendered with Flux 2.9.4 into flux-system.
fn render_v2_9_4(yaml: &str) -> Result<Rendered, Error> {
    render(
        "flux-system",
        &spec(yaml),
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
}

fn patched(patches: &str) -> Result<Rendered, Error> {
    render_v2_9_4(&format!(
        "distribution: {{version: '2.x', registry: ghcr.io/fluxcd}}\nkustomize:\n  patches:\n{patches}"
    ))
}

#[test]
fn strategic_merge_patches_merge_lists_by_their_keys() {
    let rendered = patched(
        r#"    - target: {kind: Deployment, name: "(kustomize-controller|helm-controller)"}
      patch: |
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: all}
        spec:
          template:
            spec:
              nodeSelector: {role: flux}
              containers:
                - name: manager
                  env:
                    - {name: HTTPS_PROXY, value: "http://proxy:3128"}
                  volumeMounts:
                    - {mountPath: /tmp, $patch: delete}
"#,
    )
    .unwrap();
    for name in ["kustomize-controller", "helm-controller"] {
        let pod = &deployment(&rendered, name)["spec"]["template"]["spec"];
        assert_eq!(pod["nodeSelector"]["role"], "flux");
        let container = &pod["containers"][0];
        assert!(
            container["image"].as_str().unwrap().contains(name),
            "the container was merged, not replaced"
        );
        let env = container["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e["name"] == "HTTPS_PROXY"));
        assert!(
            env.iter().any(|e| e["name"] == "RUNTIME_NAMESPACE"),
            "existing env stays"
        );
        assert!(
            container["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["mountPath"] != "/tmp")
        );
    }
    assert_eq!(
        deployment(&rendered, "kustomize-controller")["spec"]["template"]["spec"]["nodeSelector"],
        json!({ "kubernetes.io/os": "linux", "role": "flux" }),
        "merged with the rendered selector"
    );
    assert_eq!(
        deployment(&rendered, "source-controller")["spec"]["template"]["spec"]["nodeSelector"],
        json!({ "kubernetes.io/os": "linux" })
    );
}

#[test]
fn json6902_patches_and_label_selectors_select_their_objects() {
    let rendered = patched(
        r#"    - target: {group: apps, version: v1, kind: Deployment, labelSelector: "app.kubernetes.io/component in (source-controller)"}
      patch: |
        - {op: add, path: /spec/template/spec/containers/0/args/-, value: --requeue-dependency=30s}
    - patch: |
        apiVersion: v1
        kind: Namespace
        metadata:
          name: flux-system
          labels: {pod-security.kubernetes.io/enforce: restricted}
"#,
    )
    .unwrap();
    assert!(
        container_args(&rendered, "source-controller")
            .contains(&"--requeue-dependency=30s".to_string())
    );
    assert!(
        !container_args(&rendered, "kustomize-controller")
            .iter()
            .any(|a| a.starts_with("--requeue"))
    );
    assert_eq!(
        rendered.objects[0]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn patches_cannot_remove_or_change_the_owner_labels() {
    let rendered = patched(
        r#"    - target: {kind: Deployment, name: source-controller}
      patch: |
        - {op: remove, path: /metadata/labels/fluxcd.controlplane.io~1name}
        - {op: replace, path: /metadata/labels/fluxcd.controlplane.io~1namespace, value: elsewhere}
        - {op: add, path: /metadata/labels/team, value: platform}
    - target: {kind: Service}
      patch: '[{op: remove, path: /metadata/labels}]'
"#,
    )
    .unwrap();
    for object in &rendered.objects {
        let labels = &object["metadata"]["labels"];
        assert_eq!(labels["fluxcd.controlplane.io/name"], "flux", "{object}");
        assert_eq!(
            labels["fluxcd.controlplane.io/namespace"], "flux-system",
            "{object}"
        );
    }
    assert_eq!(
        deployment(&rendered, "source-controller")["metadata"]["labels"]["team"],
        "platform",
        "other label changes stay"
    );
}

#[test]
fn bad_patches_are_errors_that_name_the_patch() {
    let nothing = patched(
        "    - target: {kind: Deployment, name: dns-controller}\n      patch: '[{op: remove, path: /spec}]'\n",
    );
    assert!(
        nothing
            .unwrap_err()
            .to_string()
            .starts_with("kustomize.patches[0] matches no rendered object")
    );
    let malformed =
        patched("    - target: {kind: Deployment}\n      patch: '[{op: frobnicate}]'\n");
    assert!(
        malformed
            .unwrap_err()
            .to_string()
            .starts_with("kustomize.patches[0]: not a JSON6902 patch")
    );
    let moving = patched(
        "    - target: {kind: ServiceAccount, name: helm-controller}\n      patch: '[{op: replace, path: /metadata/namespace, value: other}]'\n",
    );
    let message = moving.unwrap_err().to_string();
    assert!(message.contains("kustomize.patches[0] would change the identity of ServiceAccount/flux-system/helm-controller"), "{message}");
    let regex = patched("    - target: {kind: Deployment, name: '(unclosed'}\n      patch: '[]'\n");
    assert!(
        regex.unwrap_err().to_string().contains("target.name"),
        "bad regex named"
    );
    let untargeted = patched("    - patch: '[{op: remove, path: /spec}]'\n");
    assert!(
        untargeted
            .unwrap_err()
            .to_string()
            .contains("a JSON6902 patch needs a target")
    );
}

#[test]
fn a_patch_can_delete_a_whole_object() {
    let rendered = patched(
        "    - patch: |\n        apiVersion: networking.k8s.io/v1\n        kind: NetworkPolicy\n        metadata: {name: allow-egress}\n        $patch: delete\n",
    )
    .unwrap();
    assert!(
        rendered
            .objects
            .iter()
            .all(|o| o["metadata"]["name"] != "allow-egress")
    );
    assert!(
        rendered
            .objects
            .iter()
            .any(|o| o["kind"] == "NetworkPolicy"),
        "only the named policy goes"
    );
}

fn args_of(deployment: &Value) -> Vec<String> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sharding_adds_a_controller_set_per_shard_and_the_main_set_excludes_shards() {
    let sharded = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\n\
         components: [source-controller, kustomize-controller, helm-controller, notification-controller, image-reflector-controller]\n\
         storage: {class: standard, size: 10Gi}\n\
         sharding: {shards: [shard1, shard2], storage: persistent}",
    );
    for version in versions() {
        let rendered = render("flux-system", &sharded, &vendored_bundle(), &version).unwrap();
        let names: Vec<&str> = rendered
            .objects
            .iter()
            .filter(|o| o["kind"] == "Deployment")
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        for controller in [
            "source-controller",
            "kustomize-controller",
            "helm-controller",
            "image-reflector-controller",
        ] {
            for shard in ["shard1", "shard2"] {
                let name = format!("{controller}-{shard}");
                assert!(
                    names.contains(&name.as_str()),
                    "v{version}: {name} missing in {names:?}"
                );
                let copy = deployment(&rendered, &name);
                assert!(args_of(copy).contains(&format!(
                    "--watch-label-selector=sharding.fluxcd.io/key={shard}"
                )));
                assert_eq!(copy["spec"]["selector"]["matchLabels"]["app"], name);
                assert_eq!(copy["spec"]["template"]["metadata"]["labels"]["app"], name);
            }
            assert!(
                args_of(deployment(&rendered, controller))
                    .contains(&"--watch-label-selector=!sharding.fluxcd.io/key".to_string())
            );
        }
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with("notification-controller-")),
            "not shardable"
        );
        // A source shard serves from its own Service and its own claim.
        let shard = deployment(&rendered, "source-controller-shard1");
        assert!(
            args_of(shard).contains(
                &"--storage-adv-addr=source-controller-shard1.flux-system.svc.cluster.local."
                    .to_string()
            )
        );
        let service = rendered
            .objects
            .iter()
            .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "source-controller-shard1")
            .expect("shard service");
        assert_eq!(
            service["spec"]["selector"]["app"],
            "source-controller-shard1"
        );
        assert_eq!(
            service["metadata"]["labels"]["fluxcd.controlplane.io/name"],
            "flux"
        );
        assert!(
            rendered
                .objects
                .iter()
                .any(|o| o["kind"] == "PersistentVolumeClaim"
                    && o["metadata"]["name"] == "source-controller-shard2")
        );
        let volumes = shard["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap();
        assert!(
            volumes
                .iter()
                .any(|v| v["persistentVolumeClaim"]["claimName"] == "source-controller-shard1")
        );
        assert_eq!(
            identities(&rendered.objects).len(),
            rendered.objects.len(),
            "v{version}: duplicates"
        );
    }
}

#[test]
fn ephemeral_shards_keep_an_empty_dir_and_bad_shard_names_are_errors() {
    let ephemeral = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\nsharding: {key: team, shards: [a]}",
    );
    let rendered = render(
        "flux-system",
        &ephemeral,
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap();
    let shard = deployment(&rendered, "source-controller-a");
    assert!(args_of(shard).contains(&"--watch-label-selector=team=a".to_string()));
    let volumes = shard["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["name"] == "data" && v["emptyDir"].is_object())
    );
    assert!(
        !rendered
            .objects
            .iter()
            .any(|o| o["kind"] == "PersistentVolumeClaim")
    );

    let bad = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\nsharding: {shards: [Shard_1]}",
    );
    let error = render(
        "flux-system",
        &bad,
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("\"Shard_1\" is not a valid shard name"),
        "{error}"
    );
}

/// A release that lists the controllers' args in another order (as a new Flux release may)
/// renders the same flags: fluxop edits them by name, never by position.
#[test]
fn flag_edits_survive_a_release_that_reorders_the_controllers_args() {
    let bundle = vendored_bundle();
    let tuned = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\n\
         cluster: {size: large, multitenant: true, objectLevelWorkloadIdentity: true}\n\
         sharding: {shards: [a]}",
    );
    for version in [Version::new(2, 8, 8), Version::new(2, 9, 4)] {
        let release = Release::parse(&bundle, &version).unwrap();
        let mut reordered = release.clone();
        for objects in reordered.manifests.values_mut() {
            for object in objects.iter_mut().filter(|o| o["kind"] == "Deployment") {
                for container in object["spec"]["template"]["spec"]["containers"]
                    .as_array_mut()
                    .unwrap()
                {
                    if let Some(args) = container["args"].as_array_mut() {
                        args.reverse();
                    }
                }
            }
        }
        let flags = |release: &Release| {
            let rendered = render_release("flux-system", &tuned, release).unwrap();
            rendered
                .objects
                .iter()
                .filter(|o| o["kind"] == "Deployment")
                .map(|d| {
                    let mut args = args_of(d);
                    args.sort();
                    (d["metadata"]["name"].as_str().unwrap().to_string(), args)
                })
                .collect::<Vec<_>>()
        };
        let (upstream, moved) = (flags(&release), flags(&reordered));
        assert_eq!(upstream, moved, "v{version}");
        let kustomize = &upstream
            .iter()
            .find(|(n, _)| n == "kustomize-controller")
            .unwrap()
            .1;
        for flag in [
            "--concurrent=20",
            "--no-cross-namespace-refs=true",
            "--watch-label-selector=!sharding.fluxcd.io/key",
        ] {
            assert_eq!(
                kustomize.iter().filter(|a| *a == flag).count(),
                1,
                "v{version}: {flag} in {kustomize:?}"
            );
        }
    }
}

fn deployments(rendered: &Rendered) -> impl Iterator<Item = &Value> {
    rendered
        .objects
        .iter()
        .filter(|o| o["kind"] == "Deployment")
}

#[test]
fn every_controller_runs_on_linux_nodes_and_a_documented_selector_replace_works() {
    let bundle = vendored_bundle();
    for version in versions() {
        let rendered = render("flux-system", &spec(DEFAULT), &bundle, &version).unwrap();
        for deployment in deployments(&rendered) {
            assert_eq!(
                deployment["spec"]["template"]["spec"]["nodeSelector"],
                json!({ "kubernetes.io/os": "linux" }),
                "v{version}: {}",
                deployment["metadata"]["name"]
            );
        }
    }
    // The incumbent's documented patch replaces the selector, which must exist for that.
    let replaced = patched(
        "    - target: {kind: Deployment}\n      patch: |\n        \
         - {op: replace, path: /spec/template/spec/nodeSelector, value: {kubernetes.io/os: linux, pool: flux}}\n",
    )
    .unwrap();
    for deployment in deployments(&replaced) {
        assert_eq!(
            deployment["spec"]["template"]["spec"]["nodeSelector"],
            json!({ "kubernetes.io/os": "linux", "pool": "flux" })
        );
    }
}

/// The kinds and names of the objects of `rbac.yaml`, as `flux install` names them in
/// `namespace` (kustomize's `nameSuffix: -<namespace>`).
fn flux_install_rbac(version: &Version, namespace: &str) -> Vec<(String, String)> {
    let release = Release::parse(&vendored_bundle(), version).unwrap();
    let mut names: Vec<(String, String)> = release.manifests["rbac"]
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_string(),
                format!("{}-{namespace}", o["metadata"]["name"].as_str().unwrap()),
            )
        })
        .collect();
    names.sort();
    names
}

#[test]
fn rbac_objects_are_named_after_the_namespace_as_flux_install_names_them() {
    let bundle = vendored_bundle();
    for version in versions() {
        for namespace in ["flux-system", "gitops"] {
            let rendered = render(namespace, &spec(DEFAULT), &bundle, &version).unwrap();
            let rbac_kinds = ["ResourceQuota", "ClusterRole", "ClusterRoleBinding"];
            let mut rendered_rbac: Vec<(String, String)> = rendered
                .objects
                .iter()
                .filter(|o| rbac_kinds.iter().any(|k| o["kind"] == *k))
                .map(|o| {
                    (
                        o["kind"].as_str().unwrap().to_string(),
                        o["metadata"]["name"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            rendered_rbac.sort();
            // Adopting a `flux install` cluster applies to these very objects: one set stays.
            assert_eq!(
                rendered_rbac,
                flux_install_rbac(&version, namespace),
                "v{version}"
            );
            let named = |kind: &str, name: &str| {
                rendered
                    .objects
                    .iter()
                    .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                    .unwrap_or_else(|| panic!("v{version}: no {kind} {name}"))
            };
            for name in ["crd-controller", "flux-edit", "flux-view"] {
                named("ClusterRole", &format!("{name}-{namespace}"));
            }
            named("ResourceQuota", &format!("critical-pods-{namespace}"));
            let binding = named("ClusterRoleBinding", &format!("crd-controller-{namespace}"));
            assert_eq!(
                binding["roleRef"]["name"],
                format!("crd-controller-{namespace}")
            );
            assert!(
                binding["subjects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|s| s["namespace"] == namespace)
            );
            let reconciler = named(
                "ClusterRoleBinding",
                &format!("cluster-reconciler-{namespace}"),
            );
            assert_eq!(
                reconciler["roleRef"]["name"], "cluster-admin",
                "a role the release does not define keeps its name"
            );
            assert_eq!(
                named("ClusterRole", &format!("flux-view-{namespace}"))["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
                "true",
                "aggregation is by label"
            );
        }
    }
}

fn synced_with_patches(patches: &str) -> Result<Rendered, Error> {
    render_v2_9_4(&format!(
        "distribution: {{version: '2.x', registry: ghcr.io/fluxcd}}\n\
         sync: {{kind: GitRepository, url: 'https://git/x', ref: refs/heads/main, path: clusters/a}}\n\
         kustomize:\n  patches:\n{patches}"
    ))
}

#[test]
fn patch_targets_are_anchored_regular_expressions_in_every_field() {
    let rendered = synced_with_patches(
        r#"    - target: {kind: (GitRepository|OCIRepository)}
      patch: '[{op: add, path: /metadata/labels/picked, value: "kind"}]'
    - target: {group: 'app.*', version: 'v.', kind: 'Deploy.*|Service', name: 'source-.*'}
      patch: '[{op: add, path: /metadata/labels/picked, value: "all"}]'
"#,
    )
    .unwrap();
    let picked = |kind: &str, name: &str| {
        rendered
            .objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))["metadata"]["labels"]["picked"]
            .clone()
    };
    assert_eq!(picked("GitRepository", "flux-system"), "kind");
    assert_eq!(picked("Kustomization", "flux-system"), Value::Null);
    assert_eq!(picked("Deployment", "source-controller"), "all");
    assert_eq!(
        picked("Service", "source-controller"),
        Value::Null,
        "core group: 'app.*' does not match \"\""
    );
    assert_eq!(picked("Deployment", "kustomize-controller"), Value::Null);

    // Anchored: a prefix of a kind is not the kind.
    let prefix = synced_with_patches(
        "    - target: {kind: GitRepo}\n      patch: '[{op: remove, path: /spec}]'\n",
    );
    assert!(
        prefix
            .unwrap_err()
            .to_string()
            .starts_with("kustomize.patches[0] matches no rendered object")
    );
    let bad = synced_with_patches("    - target: {kind: '(Git'}\n      patch: '[]'\n");
    assert!(bad.unwrap_err().to_string().contains("target.kind"));
}

#[test]
fn blank_and_comment_only_patches_are_skipped() {
    let plain = render(
        "flux-system",
        &spec(DEFAULT),
        &vendored_bundle(),
        &Version::new(2, 9, 4),
    )
    .unwrap();
    let skipped = patched(
        "    - target: {kind: Deployment}\n      patch: ''\n    \
         - target: {kind: Deployment}\n      patch: |\n        # - {op: remove, path: /spec}\n\n        # nothing yet\n",
    )
    .unwrap();
    assert_eq!(skipped.revision, plain.revision);
}

fn feature_gates(rendered: &Rendered, name: &str) -> Vec<String> {
    container_args(rendered, name)
        .into_iter()
        .filter(|a| a.starts_with("--feature-gates"))
        .collect()
}

#[test]
fn source_watcher_turns_on_the_external_artifact_gate_of_kustomize_and_helm_controllers() {
    let bundle = vendored_bundle();
    let with_watcher = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\n\
         components: [source-controller, kustomize-controller, helm-controller, notification-controller, source-watcher]\n\
         cluster: {objectLevelWorkloadIdentity: true}\n\
         kustomize:\n  patches:\n  \
         - target: {kind: Deployment, name: helm-controller}\n    \
           patch: '[{op: add, path: /spec/template/spec/containers/0/args/-, value: --feature-gates=DisableChartDigestTracking=true}]'\n",
    );
    for version in versions()
        .into_iter()
        .filter(|v| *v >= Version::new(2, 7, 0))
    {
        let rendered = render("flux-system", &with_watcher, &bundle, &version).unwrap();
        assert_eq!(
            feature_gates(&rendered, "kustomize-controller"),
            ["--feature-gates=ExternalArtifact=true,ObjectLevelWorkloadIdentity=true"],
            "v{version}"
        );
        assert_eq!(
            feature_gates(&rendered, "helm-controller"),
            [
                "--feature-gates=ExternalArtifact=true,ObjectLevelWorkloadIdentity=true,\
                 DisableChartDigestTracking=true"
            ],
            "v{version}: the user's gate joins fluxop's flag"
        );
        assert!(
            !feature_gates(&rendered, "source-controller")
                .iter()
                .any(|g| g.contains("ExternalArtifact")),
            "v{version}"
        );
    }
    let without = render(
        "flux-system",
        &spec(DEFAULT),
        &bundle,
        &Version::new(2, 9, 4),
    )
    .unwrap();
    for name in ["kustomize-controller", "helm-controller"] {
        assert!(feature_gates(&without, name).is_empty(), "{name}");
    }
}

#[test]
fn from_flux_2_9_source_watcher_is_sharded_like_the_other_controllers() {
    let sharded = spec(
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\n\
         components: [source-controller, kustomize-controller, source-watcher]\n\
         sharding: {shards: [a]}",
    );
    for version in versions()
        .into_iter()
        .filter(|v| *v >= Version::new(2, 7, 0))
    {
        let rendered = render("flux-system", &sharded, &vendored_bundle(), &version).unwrap();
        let main = args_of(deployment(&rendered, "source-watcher"));
        let shard = rendered
            .objects
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "source-watcher-a");
        if version < Version::new(2, 9, 0) {
            assert!(shard.is_none(), "v{version}");
            assert!(
                !main.iter().any(|a| a.starts_with("--watch-label-selector")),
                "v{version}: {main:?}"
            );
            continue;
        }
        assert!(main.contains(&"--watch-label-selector=!sharding.fluxcd.io/key".to_string()));
        let shard = shard.expect("source-watcher-a");
        let args = args_of(shard);
        assert!(args.contains(&"--watch-label-selector=sharding.fluxcd.io/key=a".to_string()));
        assert!(args.contains(
            &"--storage-adv-addr=source-watcher-a.flux-system.svc.cluster.local.".to_string()
        ));
        assert_eq!(
            shard["spec"]["selector"]["matchLabels"]["app"],
            "source-watcher-a"
        );
        let service = rendered
            .objects
            .iter()
            .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "source-watcher-a")
            .expect("the shard's Service");
        assert_eq!(service["spec"]["selector"]["app"], "source-watcher-a");
        assert_eq!(
            identities(&rendered.objects).len(),
            rendered.objects.len(),
            "v{version}: duplicates"
        );
    }
}

#[test]
fn every_controller_may_be_evicted_by_the_cluster_autoscaler_whatever_the_size() {
    let bundle = vendored_bundle();
    for text in [
        DEFAULT.to_string(),
        format!("{DEFAULT}\ncluster: {{size: small}}"),
        format!("{DEFAULT}\nsharding: {{shards: [a]}}"),
    ] {
        let rendered =
            render("flux-system", &spec(&text), &bundle, &Version::new(2, 9, 4)).unwrap();
        for deployment in deployments(&rendered) {
            assert_eq!(
                deployment["spec"]["template"]["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"],
                "true",
                "{text}: {}",
                deployment["metadata"]["name"]
            );
        }
    }
}

#[test]
fn alerts_and_receivers_accept_the_flux_operator_kinds() {
    let bundle = vendored_bundle();
    for version in versions() {
        let rendered = render("flux-system", &spec(DEFAULT), &bundle, &version).unwrap();
        for (crd, field) in [
            ("alerts.notification.toolkit.fluxcd.io", "eventSources"),
            ("receivers.notification.toolkit.fluxcd.io", "resources"),
        ] {
            let crd = rendered
                .objects
                .iter()
                .find(|o| o["metadata"]["name"] == crd)
                .unwrap();
            let pointer = format!(
                "/schema/openAPIV3Schema/properties/spec/properties/{field}/items/properties/kind/enum"
            );
            for served in crd["spec"]["versions"].as_array().unwrap() {
                let kinds = served.pointer(&pointer).unwrap().as_array().unwrap();
                for kind in [
                    "FluxInstance",
                    "ResourceSet",
                    "ResourceSetInputProvider",
                    "Kustomization",
                ] {
                    assert_eq!(
                        kinds.iter().filter(|k| *k == kind).count(),
                        1,
                        "v{version} {} {}: {kind}",
                        crd["metadata"]["name"],
                        served["name"]
                    );
                }
            }
        }
        let role = rendered
            .objects
            .iter()
            .find(|o| {
                o["kind"] == "ClusterRole" && o["metadata"]["name"] == "crd-controller-flux-system"
            })
            .unwrap();
        assert!(
            role["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["apiGroups"] == json!(["fluxcd.controlplane.io"]))
        );
    }
    // Without notification-controller nothing receives their events: the role stays upstream's.
    let quiet = render(
        "flux-system",
        &spec("distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncomponents: [source-controller, kustomize-controller]"),
        &bundle,
        &Version::new(2, 9, 4),
    )
    .unwrap();
    let role = quiet
        .objects
        .iter()
        .find(|o| {
            o["kind"] == "ClusterRole" && o["metadata"]["name"] == "crd-controller-flux-system"
        })
        .unwrap();
    assert!(!role["rules"].to_string().contains("fluxcd.controlplane.io"));
}

#[test]
fn crd_controller_mints_service_account_tokens_only_with_object_level_workload_identity() {
    let bundle = vendored_bundle();
    let token_rules = |spec_yaml: &str| {
        let rendered = render(
            "flux-system",
            &spec(spec_yaml),
            &bundle,
            &Version::new(2, 9, 4),
        )
        .unwrap();
        let role = rendered
            .objects
            .iter()
            .find(|o| {
                o["kind"] == "ClusterRole" && o["metadata"]["name"] == "crd-controller-flux-system"
            })
            .expect("crd-controller");
        role["rules"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["resources"] == serde_json::json!(["serviceaccounts/token"]))
            .count()
    };
    let distribution = "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\n";
    assert_eq!(token_rules(distribution), 0);
    assert_eq!(
        token_rules(&format!(
            "{distribution}cluster: {{objectLevelWorkloadIdentity: true}}\n"
        )),
        1
    );
}

#[test]
fn shard_copies_are_marked_and_select_their_shard_as_the_incumbent_spells_it() {
    let bundle = vendored_bundle();
    let sharded =
        spec("distribution: {version: '2.x', registry: ghcr.io/fluxcd}\nsharding: {shards: [a]}\n");
    let rendered = render("flux-system", &sharded, &bundle, &Version::new(2, 9, 4)).unwrap();
    let shard = rendered
        .objects
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "source-controller-a")
        .expect("shard");
    assert_eq!(
        shard["metadata"]["annotations"]["sharding.fluxcd.io/role"],
        "shard"
    );
    assert_eq!(
        shard["spec"]["template"]["metadata"]["annotations"]["sharding.fluxcd.io/role"],
        "shard"
    );
    let service = rendered
        .objects
        .iter()
        .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "source-controller-a")
        .expect("shard service");
    assert_eq!(
        service["metadata"]["annotations"]["sharding.fluxcd.io/role"],
        "shard"
    );
    assert!(
        container_args(&rendered, "source-controller-a")
            .contains(&"--watch-label-selector=sharding.fluxcd.io/key=a".to_string())
    );
}
