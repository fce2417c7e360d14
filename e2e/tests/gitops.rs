//! The GitOps loop with the real controllers on a real node: fluxop installs Flux with a
//! sync (`spec.sync`), the real source-controller fetches the source — an OCI artifact
//! published with `fluxop artifact push` and verified by Flux with our cosign signature, or a
//! repository on a real Git server (lighttpd and `git http-backend`) behind basic auth — and
//! the real kustomize-controller applies it: the app's pod runs. The everyday verbs
//! (`fluxop get|reconcile|suspend|resume|events`) drive Flux as a person would, and every
//! behaviour is checked on the cluster.
//!
//! Timings printed here (`timing: ...`) are observations for the notes, not assertions.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use fluxop_e2e::{
    OwnGitServer,
    cluster::exclusive,
    eventually,
    gitops::{self, fluxop_local, git_sync, oci_sync, sync_signing_key},
    pods::{Bed, app_image_in, assert_controllers_run, wait_running},
    repo_root, unique_repository,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use serde_json::Value;

const MINUTE: Duration = Duration::from_secs(60);
const CONTROLLERS: [&str; 2] = ["source-controller", "kustomize-controller"];

/// `fluxop <args>` against the bed's cluster: exit code, stdout, stderr.
fn fluxop_on(bed: &Bed, args: &[&str]) -> (i32, String, String) {
    gitops::fluxop_on(&bed.cluster.kubeconfig, args)
}

/// `fluxop <args>` that must succeed; returns stdout.
fn fluxop_ok(bed: &Bed, args: &[&str]) -> String {
    let (code, stdout, stderr) = fluxop_on(bed, args);
    assert_eq!(code, 0, "fluxop {args:?}: {stdout}{stderr}");
    stdout
}

/// A fresh directory under `target/` for a test's files.
fn work_dir(name: &str) -> PathBuf {
    let dir = repo_root()
        .join("target")
        .join(format!("e2e-gitops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

/// The sample app in `dir/<path>`: a Namespace, a ConfigMap with `greeting`, a Deployment
/// whose image is in the test registry; with `extras`, a ConfigMap `extra` (pruned once it
/// leaves the source) and a ConfigMap `kept` that Flux must never prune.
fn write_app(dir: &Path, path: &str, image: &str, greeting: &str, extras: bool) {
    let app = dir.join(path);
    let _ = std::fs::remove_dir_all(&app);
    std::fs::create_dir_all(&app).expect("app dir");
    let files = [
        (
            "namespace.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n".to_string(),
        ),
        (
            "app.yaml",
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: apps\ndata:\n  greeting: {greeting}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: apps\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: app}}\n  template:\n    metadata:\n      labels: {{app: app}}\n    spec:\n      containers:\n        - name: app\n          image: {image}\n"
            ),
        ),
    ];
    for (name, content) in files {
        std::fs::write(app.join(name), content).expect("write app");
    }
    if extras {
        std::fs::write(
            app.join("extras.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: apps\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: apps\n  annotations:\n    kustomize.toolkit.fluxcd.io/prune: disabled\n",
        )
        .expect("write extras");
    }
}

async fn greeting(client: &Client) -> Option<String> {
    Api::<ConfigMap>::namespaced(client.clone(), "apps")
        .get_opt("app")
        .await
        .ok()
        .flatten()
        .and_then(|c| c.data?.get("greeting").cloned())
}

async fn config_map_exists(client: &Client, name: &str) -> bool {
    Api::<ConfigMap>::namespaced(client.clone(), "apps")
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .is_some()
}

async fn wait_greeting(client: &Client, expected: &str, timeout: Duration) {
    eventually(timeout, &format!("greeting {expected}"), || async {
        (greeting(client).await.as_deref() == Some(expected)).then_some(())
    })
    .await;
}

/// The object `fluxop get ... -o json` prints for one name (Ready or not: exit 0 or 4).
fn get_json(bed: &Bed, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend(["-o", "json"]);
    let (code, stdout, stderr) = fluxop_on(bed, &args);
    assert!(
        code == 0 || code == 4,
        "fluxop {args:?}: exit {code}: {stderr}"
    );
    let list: Value = serde_json::from_str(&stdout).expect("json");
    list[0].clone()
}

fn has_condition(object: &Value, type_: &str, status: &str) -> bool {
    object["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == type_ && c["status"] == status)
    })
}

fn report_json(bed: &Bed) -> Value {
    serde_json::from_str(&fluxop_ok(bed, &["get", "report", "-o", "json"])).expect("report json")
}

/// The stats of `kind` in a FluxReport.
fn reconciler_stats(report: &Value, kind: &str) -> Value {
    report["spec"]["reconcilers"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["kind"] == kind))
        .map(|r| r["stats"].clone())
        .unwrap_or_else(|| panic!("no {kind} in {report}"))
}

/// Installs Flux 2.9.4's source and kustomize controllers with `sync`, and waits until the
/// synced app's pod runs.
async fn install_synced(bed: &Bed, sync: &str) {
    let started = Instant::now();
    bed.cluster
        .apply(&bed.instance("2.9.4", &CONTROLLERS, sync, ""));
    bed.ready_at("v2.9.4@", 5 * MINUTE).await;
    wait_running(&bed.client, "apps", "app", 4 * MINUTE).await;
    println!(
        "timing: instance applied -> synced app pod Running in {:?}",
        started.elapsed()
    );
}

/// Publishes `dir` as the signed artifact `reference`; returns the pinned reference.
fn publish(dir: &Path, reference: &str, key: &Path, revision: &str) -> String {
    fluxop_local(&[
        "artifact",
        "push",
        dir.to_str().expect("path"),
        reference,
        "--insecure",
        "--sign-key",
        key.to_str().expect("path"),
        "--source",
        "https://git.example.invalid/fleet",
        "--revision",
        revision,
    ])
    .trim()
    .to_string()
}

#[tokio::test]
async fn an_oci_artifact_syncs_an_app_whose_pod_runs_and_flux_keeps_it_as_published() {
    let _one_cluster_at_a_time = exclusive().await;
    let bed = Bed::start("gitops-oci", true).await;
    let image = app_image_in(&bed.cluster);
    let work = work_dir("oci");
    let key = sync_signing_key(&bed.cluster, &work);
    let source = work.join("source");
    let repository = unique_repository("sync");
    let push_to = format!(
        "oci://{}/{repository}:latest",
        fluxop_e2e::registry_address()
    );

    // Publish, signed; Flux verifies the signature with the public key in a Secret.
    write_app(&source, "app", &image, "hello", true);
    let first = publish(&source, &push_to, &key, "v1");
    assert!(first.contains("@sha256:"), "{first}");
    // The registry speaks plain HTTP and the Kustomization checks for drift every 15 s:
    // both set with the instance's own patches, as a user would.
    let sync = oci_sync(
        &bed.cluster.registry(),
        &repository,
        "app",
        Some("sync-cosign"),
        "      - target:\n          kind: Kustomization\n        patch: |\n          - op: replace\n            path: /spec/interval\n            value: 15s\n",
    );
    install_synced(&bed, &sync).await;
    let source_object = get_json(&bed, &["source", "oci", "flux-system"]);
    assert!(
        has_condition(&source_object, "SourceVerified", "True"),
        "Flux did not verify the signature: {source_object}"
    );
    assert_eq!(greeting(&bed.client).await.as_deref(), Some("hello"));
    // `get` with a name exits 4 until the object is Ready, 0 once it is.
    let table = eventually(MINUTE, "the Kustomization Ready", || async {
        let (code, table, _) = fluxop_on(&bed, &["get", "kustomization", "flux-system"]);
        assert!(code == 0 || code == 4, "exit code {code}");
        (code == 0).then_some(table)
    })
    .await;
    assert!(
        table.contains("flux-system") && table.contains("True"),
        "{table}"
    );

    // The FluxReport sees the live sync and reconcilers (refreshed every 5 s for the test).
    bed.cluster.kubectl_ok(&[
        "annotate",
        "--overwrite",
        "fluxreport",
        "flux",
        "-n",
        "flux-system",
        "fluxcd.controlplane.io/reconcileEvery=5s",
    ]);
    let report = eventually(MINUTE, "the report's sync Ready", || async {
        let report = report_json(&bed);
        (report["spec"]["sync"]["ready"] == true).then_some(report)
    })
    .await;
    assert!(
        report["spec"]["sync"]["source"]
            .as_str()
            .is_some_and(|s| s.contains(&repository)),
        "{report}"
    );
    let stats = reconciler_stats(&report, "OCIRepository");
    assert_eq!(
        (stats["running"].as_i64(), stats["failing"].as_i64()),
        (Some(1), Some(0))
    );
    assert!(stats["totalSize"].is_string(), "artifact storage: {stats}");

    // An object deleted with kubectl comes back at the next drift check.
    bed.cluster
        .kubectl_ok(&["delete", "configmap", "app", "-n", "apps"]);
    let started = Instant::now();
    wait_greeting(&bed.client, "hello", 2 * MINUTE).await;
    println!(
        "timing: deleted ConfigMap restored in {:?}",
        started.elapsed()
    );

    // Suspended, the Kustomization lets nothing through: the source moves on, the cluster
    // does not, for longer than two drift checks.
    fluxop_ok(&bed, &["suspend", "kustomization", "flux-system"]);
    write_app(&source, "app", &image, "bonjour", false);
    publish(&source, &push_to, &key, "v2");
    fluxop_ok(
        &bed,
        &["reconcile", "source", "oci", "flux-system", "--wait"],
    );
    assert_eq!(
        get_json(&bed, &["ks", "flux-system"])["spec"]["suspend"],
        true
    );
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert_eq!(greeting(&bed.client).await.as_deref(), Some("hello"));
    assert!(config_map_exists(&bed.client, "extra").await);
    eventually(MINUTE, "the report to count the suspension", || async {
        let stats = reconciler_stats(&report_json(&bed), "Kustomization");
        (stats["suspended"] == 1 && stats["running"] == 0).then_some(())
    })
    .await;
    let (code, _, stderr) = fluxop_on(&bed, &["reconcile", "ks", "flux-system"]);
    assert_ne!(code, 0, "reconciling a suspended object is refused");
    assert!(stderr.contains("suspended"), "{stderr}");

    // Resumed, it catches up at once: the new greeting, `extra` pruned, `kept` kept.
    fluxop_ok(&bed, &["resume", "ks", "flux-system", "--wait"]);
    assert_eq!(greeting(&bed.client).await.as_deref(), Some("bonjour"));
    assert!(
        !config_map_exists(&bed.client, "extra").await,
        "extra not pruned"
    );
    assert!(
        config_map_exists(&bed.client, "kept").await,
        "kept was pruned"
    );

    // `reconcile --with-source` applies a new revision before it returns.
    write_app(&source, "app", &image, "hola", false);
    let published = Instant::now();
    let third = publish(&source, &push_to, &key, "v3");
    fluxop_ok(
        &bed,
        &["reconcile", "ks", "flux-system", "--with-source", "--wait"],
    );
    println!(
        "timing: publish -> app updated (reconcile --with-source) in {:?}",
        published.elapsed()
    );
    assert_eq!(greeting(&bed.client).await.as_deref(), Some("hola"));
    let applied = get_json(&bed, &["ks", "flux-system"]);
    let digest = third.rsplit('@').next().expect("digest");
    assert!(
        applied["status"]["lastAppliedRevision"]
            .as_str()
            .is_some_and(|r| r.ends_with(digest)),
        "{applied}"
    );

    // Events of the Kustomization, and exit codes scripts can trust.
    let events = fluxop_ok(&bed, &["events", "ks", "flux-system"]);
    assert!(events.contains("ReconciliationSucceeded"), "{events}");
    let logs = fluxop_ok(&bed, &["logs", "kustomize-controller", "--tail", "200"]);
    assert!(logs.contains("\"msg\""), "{logs}");
    assert_eq!(fluxop_on(&bed, &["get", "ks", "no-such"]).0, 1);
    assert_eq!(fluxop_on(&bed, &["get", "kustomisations"]).0, 2);
    assert_eq!(fluxop_on(&bed, &["suspend", "ks"]).0, 2);
}

#[tokio::test]
async fn a_git_repository_behind_basic_auth_syncs_an_app_and_a_commit_reaches_the_cluster() {
    let _one_cluster_at_a_time = exclusive().await;
    let git = OwnGitServer::start(
        "gitops",
        &["--basic-auth", "flux:s3cret", "--create", "fleet"],
    );
    let bed = Bed::start_with("gitops-git", true, &["--expose", &git.address]).await;
    let image = app_image_in(&bed.cluster);
    let work = work_dir("git");
    let git_in = |args: &[&str]| gitops::git(&work, args);
    let remote = format!("http://flux:s3cret@{}/fleet.git", git.address);
    git_in(&["init", "-q", "-b", "main"]);
    write_app(&work, "clusters/test/app", &image, "hello", false);
    git_in(&["add", "-A"]);
    git_in(&["commit", "-q", "-m", "the app"]);
    git_in(&["push", "-q", &remote, "main"]);
    let first = git_in(&["rev-parse", "HEAD"]);

    bed.cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "git-auth",
        "-n",
        "flux-system",
        "--from-literal=username=flux",
        "--from-literal=password=s3cret",
    ]);
    let sync = git_sync(
        &format!("{}:{}", bed.cluster.gateway(), git.port()),
        "clusters/test",
        Some("git-auth"),
    );
    install_synced(&bed, &sync).await;
    let repository = get_json(&bed, &["source", "git", "flux-system"]);
    assert_eq!(
        repository["status"]["artifact"]["revision"],
        format!("refs/heads/main@sha1:{first}"),
        "{repository}"
    );
    assert_eq!(greeting(&bed.client).await.as_deref(), Some("hello"));

    // A commit reaches the cluster as soon as it is asked for.
    write_app(&work, "clusters/test/app", &image, "bonjour", false);
    git_in(&["commit", "-q", "-am", "a new greeting"]);
    let pushed = Instant::now();
    git_in(&["push", "-q", &remote, "main"]);
    let second = git_in(&["rev-parse", "HEAD"]);
    fluxop_ok(
        &bed,
        &["reconcile", "ks", "flux-system", "--with-source", "--wait"],
    );
    println!(
        "timing: push -> app updated (reconcile --with-source) in {:?}",
        pushed.elapsed()
    );
    assert_eq!(greeting(&bed.client).await.as_deref(), Some("bonjour"));
    let kustomization = get_json(&bed, &["kustomization", "flux-system"]);
    assert_eq!(
        kustomization["status"]["lastAppliedRevision"],
        format!("refs/heads/main@sha1:{second}"),
        "{kustomization}"
    );
    // The table of every Flux object names both, Ready.
    let all = fluxop_ok(&bed, &["get", "all"]);
    assert!(
        all.contains("GitRepository/flux-system") && all.contains("Kustomization/flux-system"),
        "{all}"
    );
}

/// The FluxInstance of a self-managed Flux: synced from `fleet.git` at `clusters/test`,
/// annotated so that the Kustomization never prunes it, and with the sync Kustomization
/// checking the instance's health (so a bad commit shows in the Kustomization's status) and
/// looking for drift every 15 s; at `version`, with `extra_patch` as one more patch entry.
fn self_managed_instance(
    bed: &Bed,
    git: &OwnGitServer,
    version: &str,
    extra_patch: &str,
) -> String {
    let spec = format!(
        "  sync:\n    kind: GitRepository\n    url: http://{}:{}/fleet.git\n    ref: refs/heads/main\n    path: clusters/test\n  kustomize:\n    patches:\n      - target:\n          kind: Kustomization\n        patch: |\n          - op: replace\n            path: /spec/interval\n            value: 15s\n          - op: add\n            path: /spec/timeout\n            value: 3m\n          - op: add\n            path: /spec/healthChecks\n            value: [{{apiVersion: fluxcd.controlplane.io/v1, kind: FluxInstance, name: flux, namespace: flux-system}}]\n{extra_patch}",
        bed.cluster.gateway(),
        git.port()
    );
    bed.instance(
        version,
        &CONTROLLERS,
        &spec,
        "    kustomize.toolkit.fluxcd.io/prune: disabled\n",
    )
}

/// The uid of the one running pod of `app` in flux-system.
async fn pod_uid(client: &Client, app: &str) -> String {
    wait_running(client, "flux-system", app, 3 * MINUTE).await[0]
        .metadata
        .uid
        .clone()
        .expect("uid")
}

#[tokio::test]
async fn a_bootstrapped_flux_manages_itself_from_git_through_its_own_upgrades_and_a_bad_commit() {
    let _one_cluster_at_a_time = exclusive().await;
    let git = OwnGitServer::start("selfmanaged", &["--create", "fleet"]);
    let bed = Bed::start_with("gitops-self", true, &["--expose", &git.address]).await;
    let image = app_image_in(&bed.cluster);
    let work = work_dir("self");
    let remote = format!("http://{}/fleet.git", git.address);
    let git_in = |args: &[&str]| gitops::git(&work, args);
    let commit = |message: &str, instance: &str, greeting: &str| {
        write_app(&work, "clusters/test/app", &image, greeting, false);
        std::fs::write(work.join("clusters/test/flux-instance.yaml"), instance)
            .expect("write instance");
        git_in(&["add", "-A"]);
        git_in(&["commit", "-q", "-m", message]);
        git_in(&["push", "-q", &remote, "main"]);
    };
    git_in(&["init", "-q", "-b", "main"]);

    // The two-command flow: the instance goes into Git, then `fluxop bootstrap` applies it
    // once and waits until the sync Kustomization applies it from Git.
    let instance = self_managed_instance(&bed, &git, "2.9.4", "");
    commit("flux and the app", &instance, "hello");
    let file = work.join("bootstrap.yaml");
    std::fs::write(&file, &instance).expect("write");
    let started = Instant::now();
    let (code, _, stderr) = fluxop_on(
        &bed,
        &[
            "bootstrap",
            "-f",
            file.to_str().expect("path"),
            "--timeout",
            "5m",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("Flux manages itself"), "{stderr}");
    bed.cluster.kubectl_ok(&[
        "annotate",
        "--overwrite",
        "fluxreport",
        "flux",
        "-n",
        "flux-system",
        "fluxcd.controlplane.io/reconcileEvery=5s",
    ]);
    println!(
        "timing: bootstrap -> Flux manages itself in {:?}",
        started.elapsed()
    );
    wait_running(&bed.client, "apps", "app", 3 * MINUTE).await;
    let managers = bed.cluster.kubectl_ok(&[
        "get",
        "fluxinstance",
        "flux",
        "-n",
        "flux-system",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}",
    ]);
    assert!(managers.contains("kustomize-controller"), "{managers}");
    // Flux's own apply leaves fluxop's objects alone.
    let annotations = bed.cluster.kubectl_ok(&[
        "get",
        "deployment",
        "kustomize-controller",
        "-n",
        "flux-system",
        "-o",
        "jsonpath={.metadata.annotations}",
    ]);
    assert!(
        annotations.contains("\"kustomize.toolkit.fluxcd.io/ssa\":\"Ignore\""),
        "{annotations}"
    );

    // A commit bumps Flux: every controller is replaced by its 2.9.5 pod — the
    // kustomize-controller that applied the bump included — and the loop keeps running.
    let before = assert_controllers_run(&bed.client, "v2.9.4", &CONTROLLERS).await;
    let pushed = Instant::now();
    commit(
        "Flux 2.9.5",
        &self_managed_instance(&bed, &git, "2.9.5", ""),
        "hello",
    );
    fluxop_ok(
        &bed,
        &["reconcile", "source", "git", "flux-system", "--wait"],
    );
    bed.ready_at("v2.9.5@", 5 * MINUTE).await;
    let after = assert_controllers_run(&bed.client, "v2.9.5", &CONTROLLERS).await;
    println!(
        "timing: push -> every controller Ready at 2.9.5 in {:?}",
        pushed.elapsed()
    );
    assert!(
        after.iter().all(|uid| !before.contains(uid)),
        "pods did not roll: {before:?} -> {after:?}"
    );
    commit(
        "a new greeting",
        &self_managed_instance(&bed, &git, "2.9.5", ""),
        "bonjour",
    );
    fluxop_ok(
        &bed,
        &["reconcile", "ks", "flux-system", "--with-source", "--wait"],
    );
    assert_eq!(greeting(&bed.client).await.as_deref(), Some("bonjour"));

    // A bad commit: an instance the render refuses (a patch that matches nothing). Flux keeps
    // running; the instance says why, and so does the Kustomization through its health check.
    let running_before = pod_uid(&bed.client, "source-controller").await;
    let bad = "      - target:\n          kind: NoSuchKind\n        patch: |\n          - op: add\n            path: /metadata/labels/x\n            value: y\n";
    commit(
        "a bad patch",
        &self_managed_instance(&bed, &git, "2.9.5", bad),
        "bonjour",
    );
    let (code, _, _) = fluxop_on(
        &bed,
        &[
            "reconcile",
            "ks",
            "flux-system",
            "--with-source",
            "--wait",
            "--timeout",
            "3m",
        ],
    );
    assert_eq!(
        code, 4,
        "the Kustomization must not be Ready with a broken instance"
    );
    let instance = get_json_instance(&bed);
    let ready = instance["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
        .expect("Ready condition");
    assert_eq!(ready["status"], "False", "{instance}");
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("NoSuchKind")),
        "{ready}"
    );
    let kustomization = get_json(&bed, &["ks", "flux-system"]);
    let message = kustomization["status"]["conditions"].to_string();
    assert!(message.contains("FluxInstance"), "{message}");
    assert_eq!(
        pod_uid(&bed.client, "source-controller").await,
        running_before
    );
    assert_eq!(
        fluxop_on(&bed, &["get", "instance"]).0,
        4,
        "the instance is not Ready"
    );
    eventually(
        MINUTE,
        "the report to count the failing Kustomization",
        || async {
            let stats = reconciler_stats(&report_json(&bed), "Kustomization");
            (stats["failing"] == 1).then_some(())
        },
    )
    .await;

    // Reverting the commit heals both.
    commit(
        "revert the bad patch",
        &self_managed_instance(&bed, &git, "2.9.5", ""),
        "bonjour",
    );
    fluxop_ok(
        &bed,
        &[
            "reconcile",
            "ks",
            "flux-system",
            "--with-source",
            "--wait",
            "--timeout",
            "5m",
        ],
    );
    fluxop_ok(&bed, &["wait", "instance", "--timeout", "3m"]);

    // The instance's file removed from Git: the Kustomization lets go of it but, told by the
    // annotation, does not delete it; Flux keeps running.
    let running_before = pod_uid(&bed.client, "kustomize-controller").await;
    git_in(&["rm", "-q", "clusters/test/flux-instance.yaml"]);
    git_in(&["commit", "-q", "-m", "the instance leaves Git"]);
    git_in(&["push", "-q", &remote, "main"]);
    fluxop_ok(
        &bed,
        &["reconcile", "ks", "flux-system", "--with-source", "--wait"],
    );
    let kustomization = get_json(&bed, &["ks", "flux-system"]);
    assert!(
        !kustomization["status"]["inventory"]
            .to_string()
            .contains("_FluxInstance"),
        "{kustomization}"
    );
    assert_eq!(
        fluxop_on(&bed, &["get", "instance"]).0,
        0,
        "the instance is gone"
    );
    assert_eq!(
        pod_uid(&bed.client, "kustomize-controller").await,
        running_before
    );
}

/// The FluxInstance as `fluxop get instance -o json` prints it (exit 4 when not Ready).
fn get_json_instance(bed: &Bed) -> Value {
    let (code, stdout, stderr) = fluxop_on(bed, &["get", "instance", "-o", "json"]);
    assert!(code == 0 || code == 4, "exit code {code}: {stderr}");
    serde_json::from_str(&stdout).expect("instance json")
}

#[tokio::test]
async fn a_helm_release_synced_from_the_source_installs_a_chart_from_the_registry() {
    let _one_cluster_at_a_time = exclusive().await;
    let bed = Bed::start("gitops-helm", true).await;
    let image = app_image_in(&bed.cluster);
    let work = work_dir("helm");

    // A chart, packaged and pushed to the registry as OCI with the Helm CLI.
    let chart = work.join("chart");
    std::fs::create_dir_all(chart.join("templates")).expect("chart dir");
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: app-chart\nversion: 0.1.0\n",
    )
    .expect("write chart");
    std::fs::write(chart.join("values.yaml"), "greeting: hello\nimage: none\n").expect("values");
    std::fs::write(
        chart.join("templates/app.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  greeting: {{ .Values.greeting | quote }}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: app}\n  template:\n    metadata:\n      labels: {app: app}\n    spec:\n      containers:\n        - name: app\n          image: {{ .Values.image }}\n",
    )
    .expect("template");
    let helm = |args: &[&str]| {
        let output = fluxop_e2e::pods::helm()
            .args(args)
            .output()
            .expect("helm runs");
        assert!(
            output.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    helm(&[
        "package",
        chart.to_str().expect("path"),
        "-d",
        work.to_str().expect("path"),
    ]);
    let charts = unique_repository("charts");
    helm(&[
        "push",
        work.join("app-chart-0.1.0.tgz").to_str().expect("path"),
        &format!("oci://{}/{charts}", fluxop_e2e::registry_address()),
        "--plain-http",
    ]);

    // The synced source holds the chart's OCIRepository and the HelmRelease.
    let source = work.join("source");
    std::fs::create_dir_all(source.join("apps")).expect("source dir");
    std::fs::write(
        source.join("apps/release.yaml"),
        format!(
            "apiVersion: source.toolkit.fluxcd.io/v1\nkind: OCIRepository\nmetadata:\n  name: app-chart\n  namespace: flux-system\nspec:\n  interval: 10m\n  url: oci://{}/{charts}/app-chart\n  ref:\n    tag: 0.1.0\n  insecure: true\n  layerSelector:\n    mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip\n    operation: copy\n---\napiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: app\n  namespace: flux-system\nspec:\n  interval: 10m\n  targetNamespace: apps\n  install:\n    createNamespace: true\n  chartRef:\n    kind: OCIRepository\n    name: app-chart\n  values:\n    greeting: hola\n    image: {image}\n",
            bed.cluster.registry()
        ),
    )
    .expect("write release");
    let repository = unique_repository("helm-sync");
    fluxop_local(&[
        "artifact",
        "push",
        source.to_str().expect("path"),
        &format!(
            "oci://{}/{repository}:latest",
            fluxop_e2e::registry_address()
        ),
        "--insecure",
    ]);
    let sync = oci_sync(&bed.cluster.registry(), &repository, "apps", None, "");
    let started = Instant::now();
    bed.cluster.apply(&bed.instance(
        "2.9.4",
        &[
            "source-controller",
            "kustomize-controller",
            "helm-controller",
        ],
        &sync,
        "",
    ));
    bed.ready_at("v2.9.4@", 5 * MINUTE).await;
    wait_running(&bed.client, "apps", "app", 4 * MINUTE).await;
    println!(
        "timing: instance applied -> the chart's pod Running in {:?}",
        started.elapsed()
    );
    assert_eq!(greeting(&bed.client).await.as_deref(), Some("hola"));
    let release = eventually(MINUTE, "the HelmRelease Ready", || async {
        let release = get_json(&bed, &["helmrelease", "app"]);
        has_condition(&release, "Ready", "True").then_some(release)
    })
    .await;
    assert!(
        release["status"]["history"].to_string().contains("0.1.0"),
        "{release}"
    );
    // `get` exits 0 once the release is settled: Ready and its generation recorded, which
    // helm-controller writes a moment after the condition.
    eventually(MINUTE, "fluxop get hr app to exit 0", || async {
        (fluxop_on(&bed, &["get", "hr", "app"]).0 == 0).then_some(())
    })
    .await;
}
