//! Rendered Flux installations against the real API server: every object of every release,
//! for a spread of instance specs, passes a server-side dry run (schema, defaulting and
//! admission), so what fluxop would apply is valid before it applies anything.

use std::{io::Write, process::Stdio};

use fluxop::{
    api::FluxInstanceSpec,
    bundle::{archive, layout::Bundle},
    render::render,
};
use fluxop_e2e::{client, fresh_namespace, kubectl, repo_root};

const PATCHED: &str = r#"
distribution: {version: '2.x', registry: ghcr.io/fluxcd}
kustomize:
  patches:
    - target: {kind: Deployment, name: "(kustomize-controller|helm-controller)"}
      patch: |
        - {op: add, path: /spec/template/spec/containers/0/args/-, value: --concurrent=15}
    - target: {kind: Deployment}
      patch: |
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: all}
        spec: {template: {spec: {tolerations: [{key: flux, operator: Exists}]}}}
"#;

const SPECS: &[(&str, &str)] = &[
    (
        "default",
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}",
    ),
    (
        "all components",
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncomponents: [source-controller, kustomize-controller, \
         helm-controller, notification-controller, image-reflector-controller, image-automation-controller, source-watcher]",
    ),
    (
        "multitenant mirror",
        "distribution: {version: '2.x', registry: registry.example.com/fluxcd, imagePullSecret: regcred}\n\
         cluster: {multitenant: true, tenantDefaultServiceAccount: tenant, domain: corp.example}\n\
         commonMetadata: {labels: {team: platform}, annotations: {owner: platform}}",
    ),
    (
        "no network policies",
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncluster: {networkPolicy: false}",
    ),
    (
        "persistent storage",
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\nstorage: {class: standard, size: 1Gi}",
    ),
    (
        "large openshift with workload identity",
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncluster: {size: large, type: openshift, objectLevelWorkloadIdentity: true}",
    ),
    (
        "small",
        "distribution: {version: '2.x', registry: ghcr.io/fluxcd}\ncluster: {size: small}",
    ),
    ("user patches of both kinds", PATCHED),
];

#[tokio::test]
async fn every_rendered_object_passes_a_server_side_dry_run() {
    let client = client().await;
    let files = archive::read_dir(&repo_root().join("manifests-bundle"))
        .expect("hack/vendor-flux.sh has run");
    let bundle = Bundle::from_files(files).unwrap();
    for version in bundle.versions() {
        for &(name, yaml) in SPECS {
            let mut spec: FluxInstanceSpec = serde_saphyr::from_str(yaml).unwrap();
            if version.minor < 7 {
                // source-watcher exists from 2.7; the render refuses it before (unit-tested).
                if let Some(components) = spec.components.as_mut() {
                    components.retain(|c| c.name() != "source-watcher");
                }
            }
            // A real namespace: a dry run creates nothing, and namespaced objects need one.
            let namespace = fresh_namespace(&client, "render").await;
            let rendered = render(&namespace, &spec, &bundle, &version)
                .unwrap_or_else(|e| panic!("{name} v{version}: {e}"));
            let documents: Vec<String> = rendered
                .objects
                .iter()
                .skip(1)
                .map(|o| fluxop::yaml::to_string(o).unwrap())
                .collect();
            let mut apply = kubectl()
                .args([
                    "apply",
                    "--server-side",
                    "--dry-run=server",
                    "--field-manager",
                    "fluxop",
                    "-f",
                    "-",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            apply
                .stdin
                .take()
                .unwrap()
                .write_all(format!("---\n{}", documents.join("---\n")).as_bytes())
                .unwrap();
            let output = apply.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{name} on Flux v{version} was rejected: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let applied = String::from_utf8_lossy(&output.stdout).lines().count();
            assert_eq!(
                applied,
                rendered.objects.len() - 1,
                "{name} v{version}: not every object was dry-run"
            );
        }
    }
}
