//! The whole toolkit at work on a real node, every controller installed by fluxop: image
//! automation committing a new tag to Git and the cluster running it; Alerts delivered to a
//! webhook the test runs (and the severity an Alert excludes not delivered); Receivers
//! making a source fetch at once (and an unsigned call refused); source-watcher composing a
//! Git and an OCI source into an ExternalArtifact that a Kustomization applies; and the flux
//! CLI, as a user runs it, against the cluster fluxop installed.
//!
//! The second test runs fluxop as a pod and shows what a platform team gets from it besides
//! Flux: fluxop's own events delivered by an Alert on `kind: FluxInstance` — a failed
//! upgrade rolled back, then the upgrade — and tenants kept inside their namespaces by
//! `cluster.multitenant`, for Kustomizations and HelmReleases alike.
//!
//! Timings printed here (`timing: ...`) are observations for the notes, not assertions: the
//! benchmark is `hack/bench.sh toolkit`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use fluxop_e2e::{
    OwnGitServer,
    cluster::exclusive,
    gitops::{self, fluxop_local},
    pods::{Bed, assert_controllers_run},
    repo_root,
    toolkit::{
        condition, config_map, config_value, controller_pod_ip, crane, deployment, flux_ok,
        get_json, get_json_opt, is_ready, push_app_image, running_tag, wait_config_value,
        wait_object, wait_running_tag, write,
    },
    unique_repository,
    webhook::{Sink, post, signature_header},
};
use serde_json::Value;

const MINUTE: Duration = Duration::from_secs(60);
const ALL: [&str; 7] = [
    "source-controller",
    "kustomize-controller",
    "helm-controller",
    "notification-controller",
    "image-reflector-controller",
    "image-automation-controller",
    "source-watcher",
];
const HMAC_KEY: &str = "alert-signing-key";
const GITHUB_SECRET: &str = "github-webhook-secret";

/// A fresh directory under `target/` for a test's files.
fn work_dir(name: &str) -> PathBuf {
    let dir = repo_root()
        .join("target")
        .join(format!("e2e-toolkit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

/// The platform repository of the first test: the apps with their setter markers, the
/// image objects of the second app (from YAML), notifications, receivers and the composed
/// source. `gateway`: how pods reach this machine; `registry`: the test registry as pods
/// reach it.
struct Fleet {
    work: PathBuf,
    /// The repository as this machine pushes to it, and as pods fetch it.
    remote: String,
    remote_in_cluster: String,
    registry: String,
    app_repository: String,
    extras_repository: String,
    sink: String,
}

impl Fleet {
    fn git(&self, args: &[&str]) -> String {
        gitops::git(&self.work, args)
    }

    fn commit_and_push(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["push", "-q", &self.remote, "HEAD:main"]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Takes the commits others pushed (image-automation-controller's) before committing.
    fn pull(&self) {
        self.git(&["pull", "-q", "--rebase", &self.remote, "main"]);
    }

    fn write_initial(&self) {
        let image = |tag: &str| format!("{}/{}:{tag}", self.registry, self.app_repository);
        write(
            &self.work,
            "clusters/test/apps.yaml",
            &format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n---\n{}---\n{}",
                deployment("app", &image("1.0.0"), "app"),
                deployment("app2", &image("1.0.0"), "app2")
            ),
        );
        // The second app's image objects come from Git, as YAML (the first app's are made
        // with the flux CLI).
        write(
            &self.work,
            "clusters/test/images.yaml",
            &format!(
                "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  name: app2\n  namespace: flux-system\nspec:\n  image: {}/{}\n  interval: 10s\n  insecure: true\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: app2\n  namespace: flux-system\nspec:\n  imageRepositoryRef:\n    name: app2\n  policy:\n    semver:\n      range: \">=1.0.0 <2.0.0\"\n",
                self.registry, self.app_repository
            ),
        );
        write(
            &self.work,
            "clusters/test/notifications.yaml",
            &format!(
                "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: generic\n  namespace: flux-system\nspec:\n  type: generic\n  address: http://{sink}/generic\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: hmac\n  namespace: flux-system\nspec:\n  type: generic-hmac\n  address: http://{sink}/hmac\n  secretRef:\n    name: hmac-key\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata:\n  name: broken-all\n  namespace: flux-system\nspec:\n  providerRef:\n    name: generic\n  eventSeverity: info\n  eventSources:\n    - kind: Kustomization\n      name: broken\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata:\n  name: broken-errors\n  namespace: flux-system\nspec:\n  providerRef:\n    name: hmac\n  eventSeverity: error\n  eventSources:\n    - kind: Kustomization\n      name: broken\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: broken\n  namespace: flux-system\nspec:\n  interval: 10m\n  retryInterval: 10s\n  path: ./broken\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: hooked\n  namespace: flux-system\nspec:\n  interval: 1h\n  url: {url}\n  ref:\n    branch: main\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: hooked\n  namespace: flux-system\nspec:\n  interval: 1h\n  path: ./hooked\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: hooked\n---\napiVersion: notification.toolkit.fluxcd.io/v1\nkind: Receiver\nmetadata:\n  name: generic-hook\n  namespace: flux-system\nspec:\n  type: generic\n  secretRef:\n    name: webhook-token\n  resources:\n    - apiVersion: source.toolkit.fluxcd.io/v1\n      kind: GitRepository\n      name: hooked\n---\napiVersion: notification.toolkit.fluxcd.io/v1\nkind: Receiver\nmetadata:\n  name: github-hook\n  namespace: flux-system\nspec:\n  type: github\n  events: [\"push\"]\n  secretRef:\n    name: github-secret\n  resources:\n    - apiVersion: source.toolkit.fluxcd.io/v1\n      kind: GitRepository\n      name: hooked\n",
                sink = self.sink,
                url = self.remote_in_cluster,
            ),
        );
        write(
            &self.work,
            "clusters/test/composed.yaml",
            &format!(
                "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: extras\n  namespace: flux-system\nspec:\n  interval: 10s\n  url: oci://{}/{}\n  ref:\n    tag: latest\n  insecure: true\n---\napiVersion: source.extensions.fluxcd.io/v1beta1\nkind: ArtifactGenerator\nmetadata:\n  name: composed\n  namespace: flux-system\nspec:\n  sources:\n    - alias: git\n      kind: GitRepository\n      name: flux-system\n    - alias: oci\n      kind: OCIRepository\n      name: extras\n  artifacts:\n    - name: composed\n      originRevision: \"@git\"\n      copy:\n        - from: \"@git/composed/**\"\n          to: \"@artifact/\"\n        - from: \"@oci/**\"\n          to: \"@artifact/\"\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: composed\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./\n  prune: true\n  sourceRef:\n    kind: ExternalArtifact\n    name: composed\n",
                self.registry, self.extras_repository
            ),
        );
        write(
            &self.work,
            "broken/configmap.yaml",
            &config_map("broken", "ok"),
        );
        write(
            &self.work,
            "hooked/configmap.yaml",
            &config_map("hooked", "one"),
        );
        write(
            &self.work,
            "composed/from-git.yaml",
            &config_map("from-git", "one"),
        );
    }
}

/// Publishes the OCI half of the composed source: a ConfigMap `from-oci` with `v`.
fn publish_extras(dir: &Path, repository: &str, value: &str) {
    let _ = std::fs::remove_dir_all(dir);
    write(dir, "from-oci.yaml", &config_map("from-oci", value));
    fluxop_local(&[
        "artifact",
        "push",
        dir.to_str().expect("path"),
        &format!(
            "oci://{}/{repository}:latest",
            fluxop_e2e::registry_address()
        ),
        "--insecure",
        "--revision",
        value,
    ]);
}

#[tokio::test]
async fn every_controller_fluxop_installs_does_its_job_and_the_flux_cli_drives_them() {
    let _one_cluster_at_a_time = exclusive().await;
    let git = OwnGitServer::start("toolkit", &["--create", "fleet"]);
    let sink = Sink::start().await;
    let bed = Bed::start_with(
        "toolkit",
        true,
        &["--expose", &git.address, "--expose", &sink.address()],
    )
    .await;
    let kubeconfig = bed.cluster.kubeconfig.clone();
    let gateway = bed.cluster.gateway();
    let work = work_dir("fleet");
    // The OCI half of the composed source, published from outside the Git work tree.
    let extras = work_dir("extras");
    let fleet = Fleet {
        remote: format!("http://{}/fleet.git", git.address),
        remote_in_cluster: format!("http://{gateway}:{}/fleet.git", git.port()),
        registry: bed.cluster.registry(),
        app_repository: unique_repository("app"),
        extras_repository: unique_repository("extras"),
        sink: format!("{gateway}:{}", sink.port),
        work: work.clone(),
    };
    let registry_here = fluxop_e2e::registry_address();
    let app_here = format!("{registry_here}/{}", fleet.app_repository);
    push_app_image(&format!("{app_here}:1.0.0"), "1.0.0");
    publish_extras(&extras, &fleet.extras_repository, "one");

    fleet.git(&["init", "-q", "-b", "main"]);
    fleet.write_initial();
    fleet.commit_and_push("the platform repository");

    for (name, key, value) in [
        ("hmac-key", "token", HMAC_KEY),
        ("webhook-token", "token", "generic-receiver-token"),
        ("github-secret", "token", GITHUB_SECRET),
    ] {
        bed.cluster.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            name,
            "-n",
            "flux-system",
            &format!("--from-literal={key}={value}"),
        ]);
    }
    let sync = format!(
        "  sync:\n    kind: GitRepository\n    url: {}\n    ref: refs/heads/main\n    path: clusters/test\n    interval: 15s\n",
        fleet.remote_in_cluster
    );
    let started = Instant::now();
    bed.cluster.apply(&bed.instance("2.9.4", &ALL, &sync, ""));
    bed.ready_at("v2.9.4@", 5 * MINUTE).await;
    assert_controllers_run(&bed.client, "v2.9.4", &ALL).await;
    assert_eq!(running_tag(&bed, "app").await, "1.0.0");
    println!(
        "timing: instance with 7 controllers applied -> synced app Running in {:?}",
        started.elapsed()
    );

    flux_cli_sees_what_fluxop_installed(&bed, &kubeconfig).await;
    image_automation_moves_a_new_tag_through_git_to_the_pod(&bed, &kubeconfig, &fleet, &app_here)
        .await;
    alerts_deliver_failures_and_recoveries_and_respect_severity(&bed, &fleet, &sink).await;
    receivers_make_a_source_fetch_at_once_and_refuse_unsigned_calls(&bed, &fleet).await;
    source_watcher_composes_git_and_oci_into_what_a_kustomization_applies(&bed, &fleet, &extras)
        .await;
}

/// `flux check`, `version`, `get`, `tree`, `stats`, `events`, `suspend`/`resume`/`reconcile`
/// on what fluxop installed: whatever the CLI does not recognise would be fluxop's bug.
async fn flux_cli_sees_what_fluxop_installed(bed: &Bed, kubeconfig: &Path) {
    let check = flux_ok(kubeconfig, &["check"]);
    assert!(check.contains("all checks passed"), "{check}");
    for controller in ALL {
        assert!(
            check.contains(&format!("{controller}: deployment ready")),
            "flux check does not see {controller}:\n{check}"
        );
    }
    assert!(!check.contains('✗'), "{check}");
    let version = flux_ok(kubeconfig, &["version"]);
    assert!(version.contains("distribution: flux-v2.9.4"), "{version}");
    assert!(version.contains("source-controller: v1.9.4"), "{version}");
    assert!(version.contains("source-watcher: v2.2.3"), "{version}");
    let all = flux_ok(kubeconfig, &["get", "all", "-A"]);
    for object in [
        "gitrepository/flux-system",
        "kustomization/flux-system",
        "kustomization/broken",
        "receiver/generic-hook",
        "alert/broken-all",
        "imagepolicy/app2",
    ] {
        assert!(
            all.contains(object),
            "flux get all -A lacks {object}:\n{all}"
        );
    }
    let tree = flux_ok(kubeconfig, &["tree", "kustomization", "flux-system"]);
    assert!(tree.contains("Kustomization/flux-system/broken"), "{tree}");
    assert!(tree.contains("Deployment/apps/app"), "{tree}");
    let stats = flux_ok(kubeconfig, &["stats", "-A"]);
    assert!(
        stats.contains("Kustomizations") || stats.contains("Kustomization"),
        "{stats}"
    );
    let events = flux_ok(
        kubeconfig,
        &["events", "--for", "Kustomization/flux-system"],
    );
    assert!(events.contains("ReconciliationSucceeded"), "{events}");
    flux_ok(kubeconfig, &["suspend", "kustomization", "hooked"]);
    assert_eq!(
        get_json(
            &bed.cluster,
            &["kustomization", "hooked", "-n", "flux-system"]
        )["spec"]["suspend"],
        true
    );
    flux_ok(kubeconfig, &["resume", "kustomization", "hooked"]);
    flux_ok(
        kubeconfig,
        &["reconcile", "kustomization", "flux-system", "--with-source"],
    );
}

/// The seeds' commands: `flux create image repository|policy|update`; a new tag within the
/// policy's range is committed to Git and runs; a tag outside it is not picked.
async fn image_automation_moves_a_new_tag_through_git_to_the_pod(
    bed: &Bed,
    kubeconfig: &Path,
    fleet: &Fleet,
    app_here: &str,
) {
    let app_in_cluster = format!("{}/{}", fleet.registry, fleet.app_repository);
    flux_ok(
        kubeconfig,
        &[
            "create",
            "image",
            "repository",
            "app",
            &format!("--image={app_in_cluster}"),
            "--interval=10s",
        ],
    );
    // The test registry speaks plain HTTP, which the CLI has no flag for.
    bed.cluster.kubectl_ok(&[
        "patch",
        "imagerepository",
        "app",
        "-n",
        "flux-system",
        "--type=merge",
        "-p",
        "{\"spec\":{\"insecure\":true}}",
    ]);
    flux_ok(
        kubeconfig,
        &[
            "create",
            "image",
            "policy",
            "app",
            "--image-ref=app",
            "--select-semver=>=1.0.0 <2.0.0",
        ],
    );
    flux_ok(
        kubeconfig,
        &[
            "create",
            "image",
            "update",
            "flux-system",
            "--git-repo-ref=flux-system",
            "--git-repo-path=./clusters/test",
            "--checkout-branch=main",
            "--push-branch=main",
            "--author-name=fluxcdbot",
            "--author-email=fluxcdbot@example.invalid",
            "--commit-template=images: {{range .Changed.Changes}}{{print .OldValue}} -> {{println .NewValue}}{{end}}",
            "--interval=10s",
        ],
    );
    for policy in ["app", "app2"] {
        wait_object(
            &bed.cluster,
            &["imagepolicy", policy, "-n", "flux-system"],
            2 * MINUTE,
            &format!("ImagePolicy {policy} on 1.0.0"),
            |p| p["status"]["latestRef"]["tag"] == "1.0.0",
        )
        .await;
    }

    let pushed = Instant::now();
    push_app_image(&format!("{app_here}:1.0.1"), "1.0.1");
    wait_running_tag(bed, "app", "1.0.1", 3 * MINUTE).await;
    wait_running_tag(bed, "app2", "1.0.1", MINUTE).await;
    println!(
        "timing: tag 1.0.1 pushed -> both apps running it in {:?}",
        pushed.elapsed()
    );
    // The tag went through Git: image-automation-controller's commit, by its author.
    fleet.pull();
    let log = fleet.git(&[
        "log",
        "-1",
        "--format=%an|%s",
        "--",
        "clusters/test/apps.yaml",
    ]);
    assert!(log.starts_with("fluxcdbot|images:"), "{log}");
    let apps = std::fs::read_to_string(fleet.work.join("clusters/test/apps.yaml")).expect("read");
    assert_eq!(
        apps.matches(&format!("{app_in_cluster}:1.0.1")).count(),
        2,
        "{apps}"
    );

    // A tag outside the range is seen by the scan but not picked.
    push_app_image(&format!("{app_here}:2.0.0"), "2.0.0");
    wait_object(
        &bed.cluster,
        &["imagerepository", "app", "-n", "flux-system"],
        2 * MINUTE,
        "the scan to list 2.0.0",
        |r| {
            r["status"]["lastScanResult"]["latestTags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "2.0.0"))
        },
    )
    .await;
    // One more automation interval and a source interval pass: nothing moves.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let policy = get_json(&bed.cluster, &["imagepolicy", "app", "-n", "flux-system"]);
    assert_eq!(policy["status"]["latestRef"]["tag"], "1.0.1", "{policy}");
    assert_eq!(running_tag(bed, "app").await, "1.0.1");
    let flux_images = flux_ok(kubeconfig, &["get", "images", "all"]);
    assert!(flux_images.contains("imagepolicy/app"), "{flux_images}");
}

/// A Kustomization that fails pages both Alerts (the generic payload names it; the
/// generic-hmac one is signed with the Provider's key); its recovery reaches only the Alert
/// that takes info events.
async fn alerts_deliver_failures_and_recoveries_and_respect_severity(
    bed: &Bed,
    fleet: &Fleet,
    sink: &Sink,
) {
    wait_object(
        &bed.cluster,
        &["kustomization", "broken", "-n", "flux-system"],
        2 * MINUTE,
        "Kustomization broken Ready",
        is_ready,
    )
    .await;
    // v1beta3 Alerts have no status: that they exist is all there is to wait for.
    for alert in ["broken-all", "broken-errors"] {
        get_json(&bed.cluster, &["alert", alert, "-n", "flux-system"]);
    }
    fleet.pull();
    write(
        &fleet.work,
        "broken/configmap.yaml",
        &format!(
            "{}---\napiVersion: example.invalid/v1\nkind: NoSuchKind\nmetadata:\n  name: x\n  namespace: apps\n",
            config_map("broken", "ok")
        ),
    );
    let committed = Instant::now();
    fleet.commit_and_push("a manifest of an unknown kind");
    let names_it = |event: &Value| {
        event["involvedObject"]["kind"] == "Kustomization"
            && event["involvedObject"]["name"] == "broken"
            && event["severity"] == "error"
    };
    let failure = sink
        .wait_for(
            "/generic",
            2 * MINUTE,
            "the failure at the generic provider",
            names_it,
        )
        .await;
    println!(
        "timing: failing commit pushed -> alert delivered in {:?}",
        committed.elapsed()
    );
    let payload = failure.json();
    assert!(
        payload["message"]
            .as_str()
            .is_some_and(|m| m.contains("NoSuchKind")),
        "{payload}"
    );
    let signed = sink
        .wait_for(
            "/hmac",
            MINUTE,
            "the failure at the generic-hmac provider",
            names_it,
        )
        .await;
    assert_eq!(
        signed.header("x-signature"),
        Some(signature_header(HMAC_KEY.as_bytes(), &signed.body).as_str()),
        "generic-hmac signs the body with the Provider's key"
    );

    fleet.pull();
    write(
        &fleet.work,
        "broken/configmap.yaml",
        &config_map("broken", "fixed"),
    );
    fleet.commit_and_push("the manifest fixed");
    sink.wait_for(
        "/generic",
        2 * MINUTE,
        "the recovery at the generic provider",
        |e| {
            e["involvedObject"]["name"] == "broken"
                && e["severity"] == "info"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("ConfigMap/apps/broken"))
        },
    )
    .await;
    wait_config_value(bed, "broken", "fixed", MINUTE).await;
    // Delivered in the same pass as the generic one would be; give it a few seconds more.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let to_errors_only = sink.deliveries("/hmac");
    assert!(!to_errors_only.is_empty());
    assert!(
        to_errors_only
            .iter()
            .all(|d| d.json()["severity"] == "error"),
        "the error-only Alert delivered an info event: {:?}",
        to_errors_only.iter().map(|d| d.json()).collect::<Vec<_>>()
    );
}

/// The Receiver's endpoint on notification-controller's pod (port 9292).
fn receiver_address(bed: &Bed) -> SocketAddr {
    format!(
        "{}:9292",
        controller_pod_ip(&bed.cluster, "notification-controller")
    )
    .parse()
    .expect("address")
}

async fn webhook_path(bed: &Bed, receiver: &str) -> String {
    let object = wait_object(
        &bed.cluster,
        &["receiver", receiver, "-n", "flux-system"],
        2 * MINUTE,
        &format!("Receiver {receiver} Ready"),
        |r| is_ready(r) && r["status"]["webhookPath"].is_string(),
    )
    .await;
    object["status"]["webhookPath"]
        .as_str()
        .expect("path")
        .to_string()
}

/// The GitRepository `hooked` fetches once an hour; a Receiver call makes it fetch now.
async fn receivers_make_a_source_fetch_at_once_and_refuse_unsigned_calls(bed: &Bed, fleet: &Fleet) {
    let generic = webhook_path(bed, "generic-hook").await;
    let github = webhook_path(bed, "github-hook").await;
    wait_config_value(bed, "hooked", "one", 2 * MINUTE).await;

    fleet.pull();
    write(
        &fleet.work,
        "hooked/configmap.yaml",
        &config_map("hooked", "two"),
    );
    fleet.commit_and_push("hooked two");
    let called = Instant::now();
    assert_eq!(post(receiver_address(bed), &generic, &[], b"{}"), Some(200));
    wait_config_value(bed, "hooked", "two", MINUTE).await;
    println!(
        "timing: generic Receiver call -> applied in {:?}",
        called.elapsed()
    );

    // A GitHub call must carry GitHub's signature of the body with the Receiver's secret.
    fleet.pull();
    write(
        &fleet.work,
        "hooked/configmap.yaml",
        &config_map("hooked", "three"),
    );
    fleet.commit_and_push("hooked three");
    let before = get_json(
        &bed.cluster,
        &["gitrepository", "hooked", "-n", "flux-system"],
    );
    let body = br#"{"ref":"refs/heads/main"}"#;
    let unsigned = post(
        receiver_address(bed),
        &github,
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
        ],
        body,
    );
    assert!(
        unsigned.is_some_and(|code| code >= 400),
        "an unsigned GitHub call answered {unsigned:?}"
    );
    let forged = post(
        receiver_address(bed),
        &github,
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
            (
                "X-Hub-Signature-256",
                &signature_header(b"not-the-secret", body),
            ),
        ],
        body,
    );
    assert!(forged.is_some_and(|code| code >= 400), "{forged:?}");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = get_json(
        &bed.cluster,
        &["gitrepository", "hooked", "-n", "flux-system"],
    );
    assert_eq!(
        before["status"]["artifact"]["revision"], after["status"]["artifact"]["revision"],
        "a refused call made the source fetch"
    );
    assert_eq!(config_value(bed, "hooked").as_deref(), Some("two"));
    let signed = post(
        receiver_address(bed),
        &github,
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
            (
                "X-Hub-Signature-256",
                &signature_header(GITHUB_SECRET.as_bytes(), body),
            ),
        ],
        body,
    );
    assert_eq!(signed, Some(200));
    wait_config_value(bed, "hooked", "three", MINUTE).await;
}

/// source-watcher's ArtifactGenerator: a Git and an OCI source in one ExternalArtifact; a
/// change to either reaches the cluster through the Kustomization that applies it.
async fn source_watcher_composes_git_and_oci_into_what_a_kustomization_applies(
    bed: &Bed,
    fleet: &Fleet,
    extras: &Path,
) {
    wait_object(
        &bed.cluster,
        &["artifactgenerator", "composed", "-n", "flux-system"],
        2 * MINUTE,
        "ArtifactGenerator composed Ready",
        is_ready,
    )
    .await;
    wait_object(
        &bed.cluster,
        &["externalartifact", "composed", "-n", "flux-system"],
        2 * MINUTE,
        "ExternalArtifact composed Ready",
        |a| is_ready(a) && a["status"]["artifact"].is_object(),
    )
    .await;
    wait_config_value(bed, "from-git", "one", MINUTE).await;
    wait_config_value(bed, "from-oci", "one", MINUTE).await;

    let published = Instant::now();
    publish_extras(extras, &fleet.extras_repository, "two");
    wait_config_value(bed, "from-oci", "two", 2 * MINUTE).await;
    println!(
        "timing: OCI half republished -> applied in {:?}",
        published.elapsed()
    );
    fleet.pull();
    write(
        &fleet.work,
        "composed/from-git.yaml",
        &config_map("from-git", "two"),
    );
    fleet.commit_and_push("the Git half changed");
    wait_config_value(bed, "from-git", "two", 2 * MINUTE).await;
    assert_eq!(config_value(bed, "from-oci").as_deref(), Some("two"));
}

/// fluxop as a pod, notification-controller in the instance: fluxop's events reach an
/// Alert on `kind: FluxInstance`. Then `cluster.multitenant`: tenants stay in their
/// namespace.
#[tokio::test]
async fn fluxop_pages_its_upgrades_and_rollbacks_and_tenants_stay_in_their_namespace() {
    let _one_cluster_at_a_time = exclusive().await;
    let sink = Sink::start().await;
    let bed = Bed::start_with("toolkit-tenants", false, &["--expose", &sink.address()]).await;
    bed.install_fluxop_pod().await;
    let gateway = bed.cluster.gateway();
    let registry_here = fluxop_e2e::registry_address();

    // An air-gapped mirror that has Flux 2.9.3's images and not yet 2.9.4's.
    let mirror = unique_repository("mirror");
    let mirror_images = |version: &str, controllers: &[&str]| {
        for controller in controllers {
            let tag = fluxop_e2e::pods::catalog_tag(version, controller);
            crane(&[
                "copy",
                &format!("{registry_here}/fluxcd/{controller}:{tag}"),
                &format!("{registry_here}/{mirror}/{controller}:{tag}"),
            ]);
        }
    };
    let first = ["kustomize-controller", "notification-controller"];
    mirror_images("v2.9.3", &first);
    let instance = |version: &str, components: &[&str], extra: &str| {
        bed.instance(
            version,
            components,
            extra,
            "    fluxcd.controlplane.io/reconcileTimeout: 45s\n",
        )
        .replace(
            &format!("registry: {}/fluxcd", bed.cluster.registry()),
            &format!("registry: {}/{mirror}", bed.cluster.registry()),
        )
    };
    bed.cluster.apply(&instance("2.9.3", &first, ""));
    bed.ready_at("v2.9.3@", 5 * MINUTE).await;
    bed.cluster.apply(&format!(
        "apiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: platform\n  namespace: flux-system\nspec:\n  type: generic\n  address: http://{gateway}:{}/fluxop\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata:\n  name: flux-upgrades\n  namespace: flux-system\nspec:\n  providerRef:\n    name: platform\n  eventSeverity: info\n  eventSources:\n    - kind: FluxInstance\n      name: flux\n",
        sink.port
    ));
    wait_object(
        &bed.cluster,
        &["alert", "flux-upgrades", "-n", "flux-system"],
        MINUTE,
        "the Alert accepted",
        |a| a["metadata"]["generation"].is_number(),
    )
    .await;

    // The upgrade fails: 2.9.4's notification-controller is not in the mirror. fluxop rolls
    // back, and the Alert delivers that, as an error, from fluxop.
    let bumped = Instant::now();
    bed.cluster.apply(&instance("2.9.4", &first, ""));
    let rollback = sink
        .wait_for("/fluxop", 3 * MINUTE, "the rollback at the Alert", |e| {
            e["involvedObject"]["kind"] == "FluxInstance" && e["reason"] == "RolledBack"
        })
        .await
        .json();
    println!(
        "timing: failed upgrade applied -> rollback delivered in {:?}",
        bumped.elapsed()
    );
    assert_eq!(rollback["severity"], "error", "{rollback}");
    assert_eq!(rollback["involvedObject"]["name"], "flux", "{rollback}");
    assert_eq!(rollback["reportingController"], "fluxop", "{rollback}");
    assert!(
        rollback["message"]
            .as_str()
            .is_some_and(|m| m.contains("v2.9.4@")),
        "{rollback}"
    );
    assert!(
        rollback["metadata"]["revision"]
            .as_str()
            .is_some_and(|r| r.starts_with("v2.9.")),
        "the revision is in the metadata: {rollback}"
    );
    assert_controllers_run(&bed.client, "v2.9.3", &first).await;

    // The mirror catches up and the upgrade is asked for again: it goes through and the
    // Alert says so.
    let every = [
        "source-controller",
        "kustomize-controller",
        "helm-controller",
        "notification-controller",
    ];
    mirror_images("v2.9.4", &every);
    bed.cluster
        .request_reconcile("fluxinstance/flux", "mirrored");
    let upgrade = sink
        .wait_for("/fluxop", 3 * MINUTE, "the upgrade at the Alert", |e| {
            e["severity"] == "info"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("Flux upgraded from v2.9.3 to v2.9.4"))
        })
        .await
        .json();
    assert!(
        upgrade["message"].as_str().is_some_and(|m| m.contains(
            "CustomResourceDefinition/kustomizations.kustomize.toolkit.fluxcd.io configured"
        )),
        "{upgrade}"
    );
    assert_controllers_run(&bed.client, "v2.9.4", &first).await;

    // Multi-tenancy on, with the source and helm controllers.
    bed.cluster.apply(&instance(
        "2.9.4",
        &every,
        "  cluster:\n    multitenant: true\n",
    ));
    bed.ready_at("v2.9.4@", 5 * MINUTE).await;
    assert_controllers_run(&bed.client, "v2.9.4", &every).await;
    tenants_stay_in_their_namespace(&bed).await;
    let delivered = sink.deliveries("/fluxop");
    assert!(
        delivered
            .iter()
            .all(|d| d.json()["involvedObject"]["kind"] == "FluxInstance"),
        "only fluxop's events reach this Alert"
    );
}

/// A tenant `team-a` with a ServiceAccount bound to `admin` in its namespace, sources of its
/// own (an OCI artifact with manifests, a Helm chart), and Kustomizations and HelmReleases
/// that try what a tenant must not.
async fn tenants_stay_in_their_namespace(bed: &Bed) {
    let work = work_dir("tenant");
    let registry_here = fluxop_e2e::registry_address();
    let in_cluster = bed.cluster.registry();
    let tenant_config = |name: &str, namespace: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  v: tenant\n"
        )
    };
    write(
        &work,
        "manifests/ok/config.yaml",
        &tenant_config("mine", "team-a"),
    );
    write(
        &work,
        "manifests/cluster-scoped/role.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: team-a-escalation\nrules:\n  - apiGroups: [\"*\"]\n    resources: [\"*\"]\n    verbs: [\"*\"]\n",
    );
    write(
        &work,
        "manifests/other-namespace/config.yaml",
        &tenant_config("intruder", "team-b"),
    );
    let manifests = unique_repository("tenant-manifests");
    fluxop_local(&[
        "artifact",
        "push",
        work.join("manifests").to_str().expect("path"),
        &format!("oci://{registry_here}/{manifests}:latest"),
        "--insecure",
    ]);
    // Two charts: one of the tenant's own objects, one with a ClusterRole.
    let charts = unique_repository("tenant-charts");
    for (chart, template) in [
        ("tenant-app", tenant_config("from-helm", "team-a").replace("namespace: team-a", "namespace: {{ .Release.Namespace }}")),
        (
            "tenant-escalation",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: team-a-helm-escalation\nrules: []\n".to_string(),
        ),
    ] {
        let dir = work.join("charts").join(chart);
        write(&dir, "Chart.yaml", &format!("apiVersion: v2\nname: {chart}\nversion: 0.1.0\n"));
        write(&dir, "templates/objects.yaml", &template);
        let helm = |args: &[&str]| {
            let output = fluxop_e2e::pods::helm().args(args).output().expect("helm runs");
            assert!(
                output.status.success(),
                "helm {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        helm(&["package", dir.to_str().expect("path"), "-d", work.to_str().expect("path")]);
        helm(&[
            "push",
            work.join(format!("{chart}-0.1.0.tgz")).to_str().expect("path"),
            &format!("oci://{registry_here}/{charts}"),
            "--plain-http",
        ]);
    }
    let kustomization = |name: &str, path: &str, account: Option<&str>, source_namespace: &str| {
        let account = account.map_or(String::new(), |a| format!("  serviceAccountName: {a}\n"));
        format!(
            "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: {name}\n  namespace: team-a\nspec:\n  interval: 10m\n  retryInterval: 10s\n  path: ./{path}\n  prune: true\n{account}  sourceRef:\n    kind: OCIRepository\n    name: manifests\n    namespace: {source_namespace}\n---\n"
        )
    };
    let release = |name: &str, chart: &str, account: Option<&str>, source_namespace: &str| {
        let account = account.map_or(String::new(), |a| format!("  serviceAccountName: {a}\n"));
        format!(
            "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: {name}\n  namespace: team-a\nspec:\n  interval: 10m\n{account}  chartRef:\n    kind: OCIRepository\n    name: {chart}\n    namespace: {source_namespace}\n  install:\n    remediation:\n      retries: -1\n---\n"
        )
    };
    let chart_source = |name: &str, namespace: &str| {
        format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  interval: 10m\n  url: oci://{in_cluster}/{charts}/{name}\n  ref:\n    tag: 0.1.0\n  insecure: true\n  layerSelector:\n    mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip\n    operation: copy\n---\n"
        )
    };
    let manifests_source = |namespace: &str| {
        format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: manifests\n  namespace: {namespace}\nspec:\n  interval: 10m\n  url: oci://{in_cluster}/{manifests}\n  ref:\n    tag: latest\n  insecure: true\n---\n"
        )
    };
    // What the platform team sets up for the tenant, and the same manifests' source also in
    // flux-system (which a tenant must not reach).
    bed.cluster.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-b\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: team-a\n  namespace: team-a\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: team-a-admin\n  namespace: team-a\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: admin\nsubjects:\n  - kind: ServiceAccount\n    name: team-a\n    namespace: team-a\n---\n{}{}{}{}",
        manifests_source("team-a"),
        manifests_source("flux-system"),
        chart_source("tenant-app", "team-a") + &chart_source("tenant-escalation", "team-a"),
        chart_source("tenant-app", "flux-system"),
    ));
    bed.cluster.apply(&format!(
        "{}{}{}{}{}{}{}",
        kustomization("own", "ok", Some("team-a"), "team-a"),
        kustomization("no-account", "ok", None, "team-a"),
        kustomization("cluster-scoped", "cluster-scoped", Some("team-a"), "team-a"),
        kustomization(
            "other-namespace",
            "other-namespace",
            Some("team-a"),
            "team-a"
        ),
        kustomization(
            "cross-namespace-source",
            "ok",
            Some("team-a"),
            "flux-system"
        ),
        release("helm-own", "tenant-app", Some("team-a"), "team-a")
            + &release(
                "helm-escalation",
                "tenant-escalation",
                Some("team-a"),
                "team-a"
            ),
        release(
            "helm-cross-namespace",
            "tenant-app",
            Some("team-a"),
            "flux-system"
        ),
    ));

    let settled = |kind: &str, name: &str| {
        let kind = kind.to_string();
        let name = name.to_string();
        async move {
            wait_object(
                &bed.cluster,
                &[&kind, &name, "-n", "team-a"],
                3 * MINUTE,
                &format!("{kind} team-a/{name} to settle"),
                |o| {
                    // The condition's own generation: Flux keeps the status's at -1
                    // until a first success.
                    condition(o, "Ready").is_some_and(|c| {
                        c["status"] != "Unknown"
                            && c["observedGeneration"] == o["metadata"]["generation"]
                    })
                },
            )
            .await
        }
    };
    let refusal = |object: &Value| {
        let ready = condition(object, "Ready").cloned().unwrap_or(Value::Null);
        assert_eq!(ready["status"], "False", "{object}");
        ready["message"].as_str().unwrap_or_default().to_string()
    };

    // Its own ServiceAccount applies its own objects.
    let own = settled("kustomization", "own").await;
    assert!(is_ready(&own), "{own}");
    bed.cluster
        .kubectl_ok(&["get", "configmap", "mine", "-n", "team-a"]);
    // Without an account it runs as the namespace's default one, which may do nothing.
    let message = refusal(&settled("kustomization", "no-account").await);
    assert!(message.contains("forbidden"), "{message}");
    assert!(
        message.contains("system:serviceaccount:team-a:default"),
        "{message}"
    );
    let message = refusal(&settled("kustomization", "cluster-scoped").await);
    assert!(
        message.contains("forbidden") && message.contains("clusterroles"),
        "{message}"
    );
    let message = refusal(&settled("kustomization", "other-namespace").await);
    assert!(
        message.contains("forbidden") && message.contains("team-b"),
        "{message}"
    );
    let message = refusal(&settled("kustomization", "cross-namespace-source").await);
    assert!(message.contains("cross-namespace"), "{message}");
    assert!(
        get_json_opt(&bed.cluster, &["clusterrole", "team-a-escalation"]).is_none(),
        "a tenant created a ClusterRole"
    );
    assert!(get_json_opt(&bed.cluster, &["configmap", "intruder", "-n", "team-b"]).is_none());

    let own = settled("helmrelease", "helm-own").await;
    assert!(is_ready(&own), "{own}");
    bed.cluster
        .kubectl_ok(&["get", "configmap", "from-helm", "-n", "team-a"]);
    let message = refusal(&settled("helmrelease", "helm-escalation").await);
    assert!(message.contains("forbidden"), "{message}");
    let message = refusal(&settled("helmrelease", "helm-cross-namespace").await);
    assert!(message.contains("cross-namespace"), "{message}");
    assert!(get_json_opt(&bed.cluster, &["clusterrole", "team-a-helm-escalation"]).is_none());
}
