//! Bench: the toolkit's loops on a real node, every controller installed by fluxop (release
//! build, a process of this machine), each timed from the user's act to its effect and split
//! into the controllers' parts:
//!
//! - a new image tag pushed -> the app's pod running it: image-reflector-controller's scan
//!   and the policy's pick, image-automation-controller's commit to the local Git server,
//!   source-controller's fetch, kustomize-controller's apply, the rollout;
//! - a Receiver called after a Git push -> the change applied: the fetch, the apply;
//! - a commit that breaks a Kustomization -> its Alert delivered to a webhook: the fetch
//!   (through the Receiver), the failed apply, the delivery.
//!
//! The intervals are those a team sets for fast loops (below, printed with the figures): the
//! scan and the automation run every `LOOP_INTERVAL`, so the image loop's figure is mostly
//! waiting for them. Run with `hack/bench.sh toolkit`; prints figures, asserts nothing.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use fluxop_e2e::{
    OwnGitServer, bench_summary,
    gitops::git,
    pods::Bed,
    repo_root,
    toolkit::{config_map, controller_pod_ip, deployment, push_app_image, runs_tag, write},
    unique_repository,
    webhook::{Sink, post},
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject},
    core::GroupVersionKind,
};
use serde_json::Value;

const ROUNDS: usize = 5;
const LOOP_INTERVAL: &str = "10s";
const COMPONENTS: [&str; 5] = [
    "source-controller",
    "kustomize-controller",
    "notification-controller",
    "image-reflector-controller",
    "image-automation-controller",
];
const DEADLINE: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_millis(100);

/// A Flux object's JSON through the API (not kubectl: a process per poll would blur the
/// parts).
struct Objects {
    client: Client,
}

impl Objects {
    async fn get(&self, group: &str, version: &str, kind: &str, name: &str) -> Value {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let lower = kind.to_ascii_lowercase();
        let plural = match lower.strip_suffix('y') {
            Some(stem) => format!("{stem}ies"),
            None => format!("{lower}s"),
        };
        let resource = ApiResource::from_gvk_with_plural(&gvk, &plural);
        let api =
            Api::<DynamicObject>::namespaced_with(self.client.clone(), "flux-system", &resource);
        match api.get_opt(name).await {
            Ok(Some(object)) => serde_json::to_value(object).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    async fn git_repository(&self, name: &str) -> Value {
        self.get("source.toolkit.fluxcd.io", "v1", "GitRepository", name)
            .await
    }

    /// The GitRepository `name` has an artifact of `commit`.
    async fn fetched(&self, name: &str, commit: &str) -> bool {
        of_commit(
            &self.git_repository(name).await["status"]["artifact"]["revision"],
            commit,
        )
    }

    async fn kustomization(&self, name: &str) -> Value {
        self.get("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", name)
            .await
    }
}

/// A Flux revision (`main@sha1:<sha>`) is of `commit`.
fn of_commit(revision: &Value, commit: &str) -> bool {
    revision.as_str().is_some_and(|r| r.ends_with(commit))
}

/// Times a sequence of parts: each `next` waits for its part and records when it ended.
struct Stopwatch {
    started: Instant,
    last: Instant,
    parts: Vec<(&'static str, Duration)>,
}

impl Stopwatch {
    fn start() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            last: now,
            parts: Vec::new(),
        }
    }

    /// Polls `done` until it answers true; the part took from the previous part's end.
    async fn part<F, Fut>(&mut self, name: &'static str, mut done: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        while !done().await {
            assert!(
                self.started.elapsed() < DEADLINE,
                "{name} did not happen in {DEADLINE:?}"
            );
            tokio::time::sleep(POLL).await;
        }
        self.end(name, Instant::now());
    }

    /// Ends part `name` at `at` (a time recorded elsewhere, e.g. a delivery's arrival).
    fn end(&mut self, name: &'static str, at: Instant) {
        self.parts
            .push((name, at.saturating_duration_since(self.last)));
        self.last = at;
    }

    fn total(&self) -> Duration {
        self.last - self.started
    }
}

/// Per-part samples across rounds, in the parts' order.
#[derive(Default)]
struct Figures {
    totals: Vec<Duration>,
    parts: Vec<(&'static str, Vec<Duration>)>,
}

impl Figures {
    fn add(&mut self, watch: Stopwatch) {
        self.totals.push(watch.total());
        for (name, took) in watch.parts {
            match self.parts.iter_mut().find(|(n, _)| *n == name) {
                Some((_, samples)) => samples.push(took),
                None => self.parts.push((name, vec![took])),
            }
        }
    }

    fn print(self, name: &str) {
        bench_summary(name, self.totals);
        for (part, samples) in self.parts {
            bench_summary(&format!("  {part}"), samples);
        }
    }
}

struct Repository {
    work: PathBuf,
    remote: String,
}

impl Repository {
    fn git(&self, args: &[&str]) -> String {
        git(&self.work, args)
    }

    /// Commits what changed (after taking image-automation-controller's commits) and pushes;
    /// the new commit's hash.
    fn push(&self, message: &str, change: impl FnOnce(&std::path::Path)) -> String {
        self.git(&["pull", "-q", "--rebase", &self.remote, "main"]);
        change(&self.work);
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["push", "-q", &self.remote, "HEAD:main"]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// The first commit of the repository.
    fn push_first(&self) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", "the bench repository"]);
        self.git(&["push", "-q", &self.remote, "HEAD:main"]);
    }

    /// The branch's commit on the server.
    fn head(&self) -> String {
        let line = self.git(&["ls-remote", &self.remote, "refs/heads/main"]);
        line.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

async fn config_value(client: &Client, name: &str) -> Option<String> {
    Api::<ConfigMap>::namespaced(client.clone(), "apps")
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|c| c.data?.get("v").cloned())
}

async fn receiver_path(objects: &Objects) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let receiver = objects
            .get("notification.toolkit.fluxcd.io", "v1", "Receiver", "hook")
            .await;
        if let Some(path) = receiver["status"]["webhookPath"].as_str() {
            return path.to_string();
        }
        assert!(Instant::now() < deadline, "the Receiver never got a path");
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::main]
async fn main() {
    let server = OwnGitServer::start("bench-toolkit", &["--create", "fleet"]);
    let sink = Sink::start().await;
    let bed = Bed::start_with(
        "bench-toolkit",
        true,
        &["--expose", &server.address, "--expose", &sink.address()],
    )
    .await;
    let gateway = bed.cluster.gateway();
    let registry = bed.cluster.registry();
    let app_repository = unique_repository("bench-app");
    let app_here = format!("{}/{app_repository}", fluxop_e2e::registry_address());
    let app_in_cluster = format!("{registry}/{app_repository}");
    push_app_image(&format!("{app_here}:1.0.0"), "1.0.0");

    let work = repo_root()
        .join("target")
        .join(format!("bench-toolkit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    let repository = Repository {
        work: work.clone(),
        remote: format!("http://{}/fleet.git", server.address),
    };
    let in_cluster = format!("http://{gateway}:{}/fleet.git", server.port());
    repository.git(&["init", "-q", "-b", "main"]);
    write(
        &work,
        "clusters/bench/apps.yaml",
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n---\n{}",
            deployment("app", &format!("{app_in_cluster}:1.0.0"), "app")
        ),
    );
    write(&work, "hooked/configmap.yaml", &config_map("hooked", "v0"));
    write(&work, "broken/configmap.yaml", &config_map("broken", "v0"));
    repository.push_first();

    let sync = format!(
        "  sync:\n    kind: GitRepository\n    url: {in_cluster}\n    ref: refs/heads/main\n    path: clusters/bench\n    interval: {LOOP_INTERVAL}\n"
    );
    bed.cluster
        .apply(&bed.instance("2.9.4", &COMPONENTS, &sync, ""));
    bed.ready_at("v2.9.4@", DEADLINE).await;
    bed.cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "hook-token",
        "-n",
        "flux-system",
        "--from-literal=token=bench-token",
    ]);
    // The image objects, a source fetched once an hour (so only the Receiver makes it fetch)
    // with the two Kustomizations of the Receiver and Alert loops.
    bed.cluster.apply(&format!(
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  name: app\n  namespace: flux-system\nspec:\n  image: {app_in_cluster}\n  interval: {LOOP_INTERVAL}\n  insecure: true\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: app\n  namespace: flux-system\nspec:\n  imageRepositoryRef:\n    name: app\n  policy:\n    semver:\n      range: \">=1.0.0\"\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata:\n  name: app\n  namespace: flux-system\nspec:\n  interval: {LOOP_INTERVAL}\n  sourceRef:\n    kind: GitRepository\n    name: flux-system\n  git:\n    checkout:\n      ref:\n        branch: main\n    commit:\n      author:\n        name: fluxcdbot\n        email: fluxcdbot@example.invalid\n    push:\n      branch: main\n  update:\n    path: ./clusters/bench\n    strategy: Setters\n---\napiVersion: source.toolkit.fluxcd.io/v1\nkind: GitRepository\nmetadata:\n  name: hooked\n  namespace: flux-system\nspec:\n  interval: 1h\n  url: {in_cluster}\n  ref:\n    branch: main\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: hooked\n  namespace: flux-system\nspec:\n  interval: 1h\n  path: ./hooked\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: hooked\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: broken\n  namespace: flux-system\nspec:\n  interval: 1h\n  path: ./broken\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: hooked\n---\napiVersion: notification.toolkit.fluxcd.io/v1\nkind: Receiver\nmetadata:\n  name: hook\n  namespace: flux-system\nspec:\n  type: generic\n  secretRef:\n    name: hook-token\n  resources:\n    - apiVersion: source.toolkit.fluxcd.io/v1\n      kind: GitRepository\n      name: hooked\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Provider\nmetadata:\n  name: sink\n  namespace: flux-system\nspec:\n  type: generic\n  address: http://{gateway}:{port}/alerts\n---\napiVersion: notification.toolkit.fluxcd.io/v1beta3\nkind: Alert\nmetadata:\n  name: broken\n  namespace: flux-system\nspec:\n  providerRef:\n    name: sink\n  eventSeverity: error\n  eventSources:\n    - kind: Kustomization\n      name: broken\n",
        port = sink.port
    ));
    let objects = Objects {
        client: bed.client.clone(),
    };
    let hook = receiver_path(&objects).await;
    let receiver: SocketAddr = format!(
        "{}:9292",
        controller_pod_ip(&bed.cluster, "notification-controller")
    )
    .parse()
    .expect("address");
    let call_receiver = || {
        assert_eq!(
            post(receiver, &hook, &[], b"{}"),
            Some(200),
            "Receiver call"
        );
    };
    // The loops start from a settled state: the first tag picked, the sources applied.
    let mut settle = Stopwatch::start();
    settle
        .part("settled", || async {
            runs_tag(&bed.client, "app", "1.0.0").await
                && config_value(&bed.client, "hooked").await.as_deref() == Some("v0")
                && config_value(&bed.client, "broken").await.as_deref() == Some("v0")
                && objects
                    .get("image.toolkit.fluxcd.io", "v1", "ImagePolicy", "app")
                    .await["status"]["latestRef"]["tag"]
                    == "1.0.0"
        })
        .await;

    let mut image = Figures::default();
    for round in 1..=ROUNDS {
        let tag = format!("1.0.{round}");
        push_app_image(&format!("{app_here}:{tag}"), &tag);
        let before = repository.head();
        let mut watch = Stopwatch::start();
        watch
            .part("scan and policy pick", || async {
                objects
                    .get("image.toolkit.fluxcd.io", "v1", "ImagePolicy", "app")
                    .await["status"]["latestRef"]["tag"]
                    == tag.as_str()
            })
            .await;
        watch
            .part("commit pushed to Git", || async {
                repository.head() != before
            })
            .await;
        let commit = repository.head();
        watch
            .part("fetch", || objects.fetched("flux-system", &commit))
            .await;
        watch
            .part("apply", || async {
                of_commit(
                    &objects.kustomization("flux-system").await["status"]["lastAppliedRevision"],
                    &commit,
                )
            })
            .await;
        watch
            .part("rollout (pod Running, Ready)", || async {
                runs_tag(&bed.client, "app", &tag).await
            })
            .await;
        image.add(watch);
    }

    let mut receiver_loop = Figures::default();
    for round in 1..=ROUNDS {
        // Strings: a bare number would be a YAML integer, which a ConfigMap refuses.
        let value = format!("v{round}");
        let commit = repository.push(&format!("hooked {round}"), |dir| {
            write(dir, "hooked/configmap.yaml", &config_map("hooked", &value))
        });
        let mut watch = Stopwatch::start();
        call_receiver();
        watch
            .part("fetch", || objects.fetched("hooked", &commit))
            .await;
        watch
            .part("apply", || async {
                config_value(&bed.client, "hooked").await.as_deref() == Some(value.as_str())
            })
            .await;
        receiver_loop.add(watch);
    }

    let mut alert = Figures::default();
    for round in 1..=ROUNDS {
        // A kind of its own each round: notification-controller drops an event it delivered
        // a moment ago.
        let kind = format!("NoSuchKind{round}");
        let commit = repository.push(&format!("broken {round}"), |dir| {
            write(
                dir,
                "broken/configmap.yaml",
                &format!(
                    "{}---\napiVersion: example.invalid/v1\nkind: {kind}\nmetadata:\n  name: x\n  namespace: apps\n",
                    config_map("broken", "v0")
                ),
            )
        });
        let mut watch = Stopwatch::start();
        call_receiver();
        watch
            .part("fetch", || objects.fetched("hooked", &commit))
            .await;
        watch
            .part("apply fails (Ready=False)", || async {
                let object = objects.kustomization("broken").await;
                object["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter().any(|c| {
                        c["type"] == "Ready"
                            && c["status"] == "False"
                            && c["message"].as_str().is_some_and(|m| m.contains(&kind))
                    })
                })
            })
            .await;
        let delivered = |d: &fluxop_e2e::webhook::Delivery| {
            let event = d.json();
            event["severity"] == "error"
                && event["message"].as_str().is_some_and(|m| m.contains(&kind))
        };
        let deadline = Instant::now() + DEADLINE;
        let arrived = loop {
            if let Some(d) = sink.deliveries("/alerts").into_iter().find(delivered) {
                break d.at;
            }
            assert!(Instant::now() < deadline, "the alert never arrived");
            tokio::time::sleep(POLL).await;
        };
        watch.end("alert delivered", arrived);
        alert.add(watch);
        // Back to a healthy Kustomization before the next round.
        let fixed = repository.push(&format!("fixed {round}"), |dir| {
            write(dir, "broken/configmap.yaml", &config_map("broken", "v0"))
        });
        call_receiver();
        let mut recovery = Stopwatch::start();
        recovery
            .part("recovered", || async {
                of_commit(
                    &objects.kustomization("broken").await["status"]["lastAppliedRevision"],
                    &fixed,
                )
            })
            .await;
    }

    println!(
        "the toolkit's loops on a real node, {ROUNDS} rounds each (scan, automation and sync intervals {LOOP_INTERVAL}; fluxop release build; a pod's Ready is its first successful probe):"
    );
    image.print("tag pushed -> pod runs it");
    receiver_loop.print("push + Receiver call -> applied");
    alert.print("breaking push + Receiver call -> alert");
}
