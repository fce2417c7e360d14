//! Helpers of the tests and bench that run the whole toolkit on a real node: the flux CLI
//! (built from the Go module proxy by `hack/testbed-build.sh flux`), app images with a
//! version of their own in the test registry, copies of images between repositories (a
//! registry mirror), and Flux objects read as JSON.

use std::{path::Path, process::Command, time::Duration};

use serde_json::Value;

use crate::{
    cluster::OwnCluster,
    eventually,
    pods::{Bed, is_running_and_ready, pods, wait_running},
    required_env,
};

/// `flux <args> --kubeconfig <kubeconfig>`: exit code, stdout, stderr. `flux check` asks
/// GitHub for the newest release (and says nothing when that fails): a proxy on a closed
/// loopback port makes it fail at once, without a packet leaving the machine.
pub fn flux(kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(required_env("FLUXOP_E2E_FLUX"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .output()
        .expect("the flux CLI runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `flux <args>` that must succeed; stdout and stderr together (the CLI reports on both).
pub fn flux_ok(kubeconfig: &Path, args: &[&str]) -> String {
    let (code, stdout, stderr) = flux(kubeconfig, args);
    assert_eq!(code, 0, "flux {args:?}:\n{stdout}{stderr}");
    format!("{stdout}{stderr}")
}

/// The test bed's node binaries (crane, the pause program).
fn node_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(required_env("FLUXOP_E2E_NODE_BIN"))
}

/// `crane <args>` against the plain-HTTP test registry, which must succeed; stdout.
pub fn crane(args: &[&str]) -> String {
    let output = Command::new(node_bin().join("crane"))
        .args(args)
        .arg("--insecure")
        .output()
        .expect("crane runs");
    assert!(
        output.status.success(),
        "crane {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Pushes an app image to `reference` (`127.0.0.1:PORT/repo:tag`): the node's pause program
/// with `/version` holding `version`, so every version has a digest of its own. Returns the
/// digest.
pub fn push_app_image(reference: &str, version: &str) -> String {
    let dir = crate::repo_root()
        .join("target")
        .join(format!("e2e-app-image-{}-{version}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("image dir");
    let version_file = dir.join("version");
    std::fs::write(&version_file, format!("{version}\n")).expect("version file");
    let layout = dir.join("layout");
    let output = Command::new("python3")
        .arg(crate::repo_root().join("hack/oci-image.py"))
        .arg("--out")
        .arg(&layout)
        .args([
            "--name",
            reference,
            "--entrypoint",
            "/pause",
            "--user",
            "65535:65535",
        ])
        .arg(format!("{}:/pause", node_bin().join("pause").display()))
        .arg(format!("{}:/version", version_file.display()))
        .output()
        .expect("oci-image.py runs");
    assert!(
        output.status.success(),
        "oci-image.py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    crane(&["push", layout.to_str().expect("path"), reference]);
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `kubectl get <what> -o json` on `cluster`.
pub fn get_json(cluster: &OwnCluster, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend(["-o", "json"]);
    serde_json::from_str(&cluster.kubectl_ok(&args)).expect("kubectl prints JSON")
}

/// `kubectl get <what> -o json`, or `None` while it does not exist.
pub fn get_json_opt(cluster: &OwnCluster, what: &[&str]) -> Option<Value> {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend(["-o", "json"]);
    let output = cluster.kubectl().args(&args).output().ok()?;
    output
        .status
        .success()
        .then(|| serde_json::from_slice(&output.stdout).ok())
        .flatten()
}

/// The condition `type_` of a Flux object's status.
pub fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// Ready=True for the object's current generation (kstatus: a condition counts once the
/// controller has observed the generation, in the status or, as source-watcher's kinds keep
/// it, in the condition itself).
pub fn is_ready(object: &Value) -> bool {
    let Some(ready) = condition(object, "Ready").filter(|c| c["status"] == "True") else {
        return false;
    };
    // The condition's own generation first: Flux writes its conditions before the status's
    // observedGeneration (which stays -1 until the end of a first reconcile).
    let observed = match &ready["observedGeneration"] {
        Value::Null => &object["status"]["observedGeneration"],
        observed => observed,
    };
    observed.is_null() || *observed == object["metadata"]["generation"]
}

/// Waits until `what` (`kind/name -n namespace` as kubectl arguments) satisfies `check`;
/// returns the object.
pub async fn wait_object(
    cluster: &OwnCluster,
    what: &[&str],
    timeout: Duration,
    description: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let seen = get_json_opt(cluster, what);
        if let Some(object) = seen.as_ref().filter(|o| check(o)) {
            return object.clone();
        }
        // The last state seen says why it never got there.
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {description}; last seen: {}",
            seen.map_or("nothing (not found)".to_string(), |o| {
                serde_json::to_string_pretty(&o["status"]).unwrap_or_default()
            })
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The first pod IP of `app` in flux-system (pods of real nodes are routed from here).
pub fn controller_pod_ip(cluster: &OwnCluster, app: &str) -> String {
    let pods = get_json(
        cluster,
        &["pods", "-n", "flux-system", "-l", &format!("app={app}")],
    );
    pods["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .find_map(|p| p["status"]["podIP"].as_str())
        })
        .unwrap_or_else(|| panic!("no pod IP for {app}: {pods}"))
        .to_string()
}

/// Writes `content` to `dir/path`, making the directories.
pub fn write(dir: &Path, path: &str, content: &str) {
    let file = dir.join(path);
    std::fs::create_dir_all(file.parent().expect("parent")).expect("dirs");
    std::fs::write(file, content).expect("write");
}

/// A ConfigMap `name` in `apps` whose `v` is `value`.
pub fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: apps\ndata:\n  v: {value}\n"
    )
}

/// The value `v` of ConfigMap `apps/name`.
pub fn config_value(bed: &Bed, name: &str) -> Option<String> {
    get_json_opt(&bed.cluster, &["configmap", name, "-n", "apps"])?["data"]["v"]
        .as_str()
        .map(str::to_string)
}

/// Waits until ConfigMap `apps/name` has `v` = `value`.
pub async fn wait_config_value(bed: &Bed, name: &str, value: &str, timeout: Duration) {
    eventually(
        timeout,
        &format!("ConfigMap apps/{name} v={value}"),
        || async { (config_value(bed, name).as_deref() == Some(value)).then_some(()) },
    )
    .await;
}

/// A Deployment `name` in `apps` running `image`, with the image policy setter marker.
pub fn deployment(name: &str, image: &str, policy: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: apps\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n        - name: app\n          image: {image} # {{\"$imagepolicy\": \"flux-system:{policy}\"}}\n"
    )
}

/// The image tag the running, ready pod of `app` in `apps` was started with.
pub async fn running_tag(bed: &Bed, app: &str) -> String {
    let pods = wait_running(&bed.client, "apps", app, Duration::from_secs(180)).await;
    let image = pods[0]
        .spec
        .as_ref()
        .map(|s| s.containers[0].image.clone().unwrap_or_default())
        .unwrap_or_default();
    image.rsplit(':').next().unwrap_or_default().to_string()
}

/// Every live pod of `app` in `apps` runs, ready, from the image tag `tag` (and there is one).
pub async fn runs_tag(client: &kube::Client, app: &str, tag: &str) -> bool {
    let pods = pods(client, "apps", &format!("app={app}")).await;
    let live: Vec<_> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    !live.is_empty()
        && live.iter().all(|p| {
            is_running_and_ready(p)
                && p.spec.as_ref().is_some_and(|s| {
                    s.containers[0]
                        .image
                        .as_deref()
                        .is_some_and(|i| i.ends_with(&format!(":{tag}")))
                })
        })
}

/// Waits until [`runs_tag`].
pub async fn wait_running_tag(bed: &Bed, app: &str, tag: &str, timeout: Duration) {
    eventually(timeout, &format!("{app} running {tag}"), || async {
        runs_tag(&bed.client, app, tag).await.then_some(())
    })
    .await;
}
