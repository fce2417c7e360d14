//! Helpers of the tests that run pods on real nodes (`OwnCluster::start_real`): the bundle
//! whose catalogs name the Flux images built from source (`hack/flux-images.sh`), fluxop's
//! own image (`hack/fluxop-image.sh`), both pushed to the test registry by `hack/test.sh`,
//! and checks of what really runs.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use fluxop::{
    api::FluxInstance,
    bundle::{archive, layout::Bundle, reference::ArtifactRef, signature},
};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{Api, Client, api::ListParams};

use crate::{
    cluster::{Operator, OwnCluster, instance_yaml, is_ready_at, wait_for_instance},
    eventually, required_env, unique_repository,
};

/// The bundle directory whose image catalogs point at the Flux images built here (pushed to
/// the test registry under `fluxcd/<controller>`).
pub fn real_bundle_dir() -> PathBuf {
    PathBuf::from(required_env("FLUXOP_E2E_REAL_BUNDLE"))
}

/// fluxop's image as pushed to the test registry: `127.0.0.1:PORT/REPO:TAG@sha256:...`.
pub fn fluxop_image() -> String {
    required_env("FLUXOP_E2E_FLUXOP_IMAGE")
}

/// fluxop's image as pods of `cluster` pull it: through the gateway, by digest only
/// (`GATEWAY:PORT/REPO@sha256:...`), split into repository and digest.
pub fn fluxop_image_in(cluster: &OwnCluster) -> (String, String) {
    let image = fluxop_image();
    let (name, digest) = image.split_once('@').expect("image with a digest");
    let repository = name
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or(name, |(repository, _)| repository);
    let path = repository.split_once('/').expect("registry/repository").1;
    (format!("{}/{path}", cluster.registry()), digest.to_string())
}

/// The Helm CLI built by `hack/testbed-build.sh helm`.
pub fn helm() -> Command {
    Command::new(required_env("FLUXOP_E2E_HELM"))
}

/// Pods in `namespace` matching `selector`.
pub async fn pods(client: &Client, namespace: &str, selector: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(selector))
        .await
        .expect("list pods")
        .items
}

/// Running, every container ready, not being deleted.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    pod.metadata.deletion_timestamp.is_none()
        && status.phase.as_deref() == Some("Running")
        && status
            .container_statuses
            .as_ref()
            .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c.ready))
}

/// The names of the real nodes (label `type=real`).
pub async fn real_nodes(client: &Client) -> Vec<String> {
    Api::<Node>::all(client.clone())
        .list(&ListParams::default().labels("type=real"))
        .await
        .expect("list nodes")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect()
}

/// Waits until exactly the pods of `app` (label `app=<app>`) in `namespace` that are not
/// terminating are Running and Ready on real nodes; returns them.
pub async fn wait_running(
    client: &Client,
    namespace: &str,
    app: &str,
    timeout: Duration,
) -> Vec<Pod> {
    let nodes = real_nodes(client).await;
    eventually(
        timeout,
        &format!("pods of {app} Running and Ready on a real node"),
        || async {
            let pods: Vec<Pod> = pods(client, namespace, &format!("app={app}"))
                .await
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let on_real_nodes = pods.iter().all(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some_and(|n| nodes.contains(n))
            });
            (!pods.is_empty() && on_real_nodes && pods.iter().all(is_running_and_ready))
                .then_some(pods)
        },
    )
    .await
}

/// The image IDs (`repo@sha256:...`) of the pod's containers, as the kubelet reports them.
pub fn image_ids(pod: &Pod) -> Vec<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|c| c.iter().map(|c| c.image_id.clone()).collect())
        .unwrap_or_default()
}

/// The pod's IP: this machine routes to pods of real nodes.
pub fn pod_ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("pod has an IP")
}

/// `GET http://<pod>:<port><path>`.
pub fn pod_get(pod: &Pod, port: u16, path: &str) -> Option<(u16, String)> {
    let addr = format!("{}:{port}", pod_ip(pod)).parse().ok()?;
    crate::cluster::http_get(addr, path)
}

/// The digest the bundle's catalog of `version` names for `controller`.
pub fn catalog_digest(version: &str, controller: &str) -> String {
    catalog_field(version, controller, "digest")
}

/// The tag the bundle's catalog of `version` names for `controller`.
pub fn catalog_tag(version: &str, controller: &str) -> String {
    catalog_field(version, controller, "newTag")
}

/// A field of `controller`'s entry in the bundle's catalog of `version`.
fn catalog_field(version: &str, controller: &str, field: &str) -> String {
    let path = real_bundle_dir().join(format!("flux-images/{version}/upstream-alpine.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let start = text
        .find(&format!("name: ghcr.io/fluxcd/{controller}\n"))
        .unwrap_or_else(|| panic!("{controller} is not in {}", path.display()));
    text[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("- name:"))
        .find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{field}: "))
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("{controller} has no {field} in {}", path.display()))
}

/// A small image in the test registry for apps that Flux deploys (`FLUXOP_E2E_APP_IMAGE`,
/// pushed by `hack/test.sh`), as pods of `cluster` pull it.
pub fn app_image_in(cluster: &OwnCluster) -> String {
    let image = required_env("FLUXOP_E2E_APP_IMAGE");
    let path = image.split_once('/').expect("registry/repository").1;
    format!("{}/{path}", cluster.registry())
}

/// A kustomization overlay of `deploy/` (in a fresh directory under `target/`) that sets
/// fluxop's image to `repository@digest` and adds `arg` to `fluxop run`: what a user does
/// with `kustomize edit set image`.
pub fn deploy_overlay(repository: &str, digest: &str, arg: &str) -> PathBuf {
    let dir = crate::repo_root()
        .join("target")
        .join(format!("e2e-deploy-overlay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("overlay dir");
    let kustomization = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../deploy\nimages:\n  - name: fluxop\n    newName: {repository}\n    digest: {digest}\npatches:\n  - target:\n      kind: Deployment\n      name: fluxop\n    patch: |\n      - op: add\n        path: /spec/template/spec/containers/0/args/-\n        value: {arg}\n"
    );
    std::fs::write(dir.join("kustomization.yaml"), kustomization).expect("write overlay");
    dir
}

/// Memory of a pod on a real node of `cluster`, from its cgroup (v1 memory controller):
/// resident set (`total_rss`) and peak usage (`memory.max_usage_in_bytes`), in KiB.
pub fn pod_memory_kib(cluster: &OwnCluster, pod: &Pod) -> Option<(u64, u64)> {
    let uid = pod.metadata.uid.as_deref()?;
    let node = crate::state_root()
        .join("clusters")
        .join(&cluster.name)
        .join("nodes/0/cgroup");
    let root = std::fs::read_to_string(node).ok()?;
    let kubepods = PathBuf::from("/sys/fs/cgroup/memory")
        .join(root.trim())
        .join("kubepods");
    // Guaranteed pods sit right under kubepods, the others under their QoS class.
    let dir = [
        kubepods.clone(),
        kubepods.join("burstable"),
        kubepods.join("besteffort"),
    ]
    .into_iter()
    .map(|d| d.join(format!("pod{uid}")))
    .find(|d| d.is_dir())?;
    let stat = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
    let rss = stat
        .lines()
        .find_map(|l| l.strip_prefix("total_rss "))?
        .trim()
        .parse::<u64>()
        .ok()?;
    let peak = std::fs::read_to_string(dir.join("memory.max_usage_in_bytes"))
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some((rss / 1024, peak / 1024))
}

/// A cluster with a real node, fluxop (this machine's process) in flux-system, the bundle
/// with the images built here pushed and signed, and the public key in a Secret. Returns the
/// bundle's `oci://GATEWAY:PORT/...` reference.
pub struct Bed {
    pub cluster: OwnCluster,
    pub client: Client,
    pub api: Api<FluxInstance>,
    pub bundle: String,
    pub operator: Option<Operator>,
}

impl Bed {
    /// With `host_operator`, fluxop runs as a process of this machine against the cluster.
    pub async fn start(prefix: &str, host_operator: bool) -> Self {
        Self::start_with(prefix, host_operator, &[]).await
    }

    /// [`Self::start`] with more `hack/cluster-up.sh` arguments (`--expose 127.0.0.1:PORT`).
    pub async fn start_with(prefix: &str, host_operator: bool, cluster_args: &[&str]) -> Self {
        let started = Instant::now();
        let cluster = OwnCluster::start_real_with(prefix, cluster_args).await;
        println!(
            "timing: cluster with a real node up in {:?}",
            started.elapsed()
        );
        let client = cluster.client().await;
        cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
        let signer = signature::generate_key_pair(b"").expect("key pair");
        let files = archive::read_dir(&real_bundle_dir()).expect("bundle dir");
        let bundle = Bundle::from_files(files).expect("bundle");
        let repository = unique_repository(prefix);
        let tag = ArtifactRef::parse(&format!(
            "oci://{}/{repository}:latest",
            crate::registry_address()
        ))
        .expect("reference");
        crate::fleet::push(&tag, &archive::pack(bundle.files()), Some(&signer)).await;
        cluster.apply_public_key("flux-bundle-cosign", &signer.public_pem);
        let operator = match host_operator {
            true => Some(
                cluster
                    .start_operator("flux-system", &["--insecure-registry", &cluster.registry()])
                    .await,
            ),
            false => None,
        };
        let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
        let bundle = format!("oci://{}/{repository}:latest", cluster.registry());
        Self {
            cluster,
            client,
            api,
            bundle,
            operator,
        }
    }

    /// The instance at `version` with `components`, the bundle verified, images from the
    /// test registry; `extra` is appended to the spec, `annotations` to the metadata.
    pub fn instance(
        &self,
        version: &str,
        components: &[&str],
        extra: &str,
        annotations: &str,
    ) -> String {
        let components: String = components.iter().map(|c| format!("    - {c}\n")).collect();
        let spec = format!(
            "  distribution:\n    version: \"{version}\"\n    registry: {}/fluxcd\n    artifact: {}\n    verify:\n      provider: cosign\n      secretRef:\n        name: flux-bundle-cosign\n  components:\n{components}{extra}",
            self.cluster.registry(),
            self.bundle
        );
        let yaml = instance_yaml("flux-system", &spec);
        if annotations.is_empty() {
            yaml
        } else {
            yaml.replace(
                "  namespace: flux-system\n",
                &format!("  namespace: flux-system\n  annotations:\n{annotations}"),
            )
        }
    }

    /// Installs fluxop in the cluster from `deploy/` (an overlay with the image built here)
    /// and waits until its pod runs and leads.
    pub async fn install_fluxop_pod(&self) {
        let (repository, digest) = fluxop_image_in(&self.cluster);
        let insecure = format!("--insecure-registry={}", self.cluster.registry());
        let overlay = deploy_overlay(&repository, &digest, &insecure);
        self.cluster.kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "e2e",
            "-k",
            overlay.to_str().expect("path"),
        ]);
        let leases = Api::namespaced(self.client.clone(), "flux-system");
        eventually(
            Duration::from_secs(180),
            "fluxop's pod Running, Ready and leading",
            || async {
                let running = pods(&self.client, "flux-system", "app.kubernetes.io/name=fluxop")
                    .await
                    .into_iter()
                    .find(is_running_and_ready)?;
                let holder = crate::leader::holder(&leases).await?;
                (running.metadata.name.as_deref() == Some(holder.as_str())).then_some(())
            },
        )
        .await;
    }

    pub async fn ready_at(&self, revision: &str, timeout: Duration) -> FluxInstance {
        wait_for_instance(
            &self.api,
            timeout,
            &format!("{revision} to be Ready"),
            |i| is_ready_at(i, revision),
        )
        .await
    }
}

/// The controllers' pods run the images of `version`'s catalog and answer on `/readyz`.
pub async fn assert_controllers_run(
    client: &Client,
    version: &str,
    controllers: &[&str],
) -> Vec<String> {
    let mut uids = Vec::new();
    for controller in controllers {
        let pods = wait_running(client, "flux-system", controller, Duration::from_secs(180)).await;
        let digest = catalog_digest(version, controller);
        for pod in &pods {
            let ids = image_ids(pod);
            assert!(
                ids.iter().all(|id| id.ends_with(&digest)),
                "{controller} runs {ids:?}, not the {version} image {digest}"
            );
            let ready = eventually(
                Duration::from_secs(60),
                &format!("{controller} /readyz"),
                || async { pod_get(pod, 9440, "/readyz").filter(|(status, _)| *status == 200) },
            )
            .await;
            assert_eq!(ready.0, 200);
            uids.push(pod.metadata.uid.clone().unwrap_or_default());
        }
    }
    uids
}
