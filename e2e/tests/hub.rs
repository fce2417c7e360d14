//! Hub mode on three real clusters: a FluxFleet on the hub rolls a FluxInstance out in waves
//! (a canary first), stops and rolls the canary back when it is unhealthy without touching the
//! other members, and reports and retries an unreachable member until it converges. The hub
//! reaches members with least-privilege tokens (a Role on FluxInstances only). A member
//! kubeconfig with an exec plugin or file references is refused, reported, and never run.

use std::time::{Duration, Instant};

use fluxop::api::{
    FluxInstance,
    fleet::{FluxFleet, FluxFleetStatus},
};
use fluxop_e2e::cluster::{Operator, OwnCluster, exclusive, is_ready_at, wait_for_instance};
use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Config,
    api::ListParams,
    config::{KubeConfigOptions, Kubeconfig},
};

const MEMBERS: [&str; 3] = ["a", "b", "c"];
const DIGEST: &str = "fleet.fluxop.io/spec-digest";

/// RBAC on a member: the hub may read and apply FluxInstances in flux-system, nothing else.
const MEMBER_RBAC: &str = "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: fluxop-hub\n  namespace: flux-system\n\
---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: fluxop-hub\n  namespace: flux-system\n\
rules:\n- apiGroups: [fluxcd.controlplane.io]\n  resources: [fluxinstances]\n  verbs: [get, list, watch, create, patch]\n\
---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: fluxop-hub\n  namespace: flux-system\n\
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: fluxop-hub}\n\
subjects:\n- {kind: ServiceAccount, name: fluxop-hub, namespace: flux-system}\n";

/// A kubeconfig for the member's `fluxop-hub` account (a short-lived token), pointing at
/// `server` (the real one, or an unreachable one).
fn hub_kubeconfig(member: &OwnCluster, server: Option<&str>) -> String {
    let token = member
        .kubectl_ok(&[
            "create",
            "token",
            "fluxop-hub",
            "-n",
            "flux-system",
            "--duration=2h",
        ])
        .trim()
        .to_string();
    let admin = Kubeconfig::read_from(&member.kubeconfig).expect("kubeconfig");
    let mut cluster = admin.clusters[0].cluster.clone().expect("cluster");
    if let Some(server) = server {
        cluster.server = Some(server.to_string());
    }
    let ca = cluster
        .certificate_authority_data
        .clone()
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: member\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
         users:\n- name: hub\n  user:\n    token: {token}\ncontexts:\n- name: member\n  context: {{cluster: member, user: hub}}\n\
         current-context: member\n",
        cluster.server.unwrap_or_default()
    )
}

fn kubeconfig_secret(name: &str, kubeconfig: &str) -> String {
    let indented = kubeconfig
        .lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}-kubeconfig\n  namespace: flux-system\nstringData:\n  value: |\n{indented}\n"
    )
}

fn fleet(template: &str) -> String {
    let members: String = MEMBERS
        .iter()
        .map(|m| format!("  - name: {m}\n    kubeconfigSecretRef: {{name: {m}-kubeconfig}}\n"))
        .collect();
    format!(
        "apiVersion: fleet.fluxop.io/v1alpha1\nkind: FluxFleet\nmetadata:\n  name: prod\n  namespace: flux-system\nspec:\n  \
         healthTimeout: 25s\n  waves:\n  - name: canary\n    members: [b]\n  members:\n{members}  template:\n{template}"
    )
}

fn template(version: &str, extra: &str) -> String {
    format!(
        "    distribution:\n      version: \"{version}\"\n      registry: ghcr.io/fluxcd\n{extra}"
    )
}

struct Member {
    cluster: OwnCluster,
    client: Client,
    _operator: Operator,
}

impl Member {
    async fn instance(&self) -> Option<FluxInstance> {
        Api::<FluxInstance>::namespaced(self.client.clone(), "flux-system")
            .get_opt("flux")
            .await
            .ok()
            .flatten()
    }

    async fn digest(&self) -> Option<String> {
        self.instance()
            .await
            .and_then(|i| i.metadata.annotations?.get(DIGEST).cloned())
    }
}

async fn fleet_status(
    hub: &Client,
    what: &str,
    check: impl Fn(&FluxFleetStatus, Option<i64>) -> bool,
) -> FluxFleetStatus {
    let api = Api::<FluxFleet>::namespaced(hub.clone(), "flux-system");
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if let Ok(fleet) = api.get("prod").await
            && let Some(status) = &fleet.status
            && check(status, fleet.metadata.generation)
        {
            return status.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the fleet: {what}; last: {:?}",
            api.get("prod").await.ok().and_then(|f| f.status)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn condition(status: &FluxFleetStatus, type_: &str) -> Option<(String, String, String)> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn ready(status: &FluxFleetStatus, generation: Option<i64>) -> bool {
    status.observed_generation == generation
        && condition(status, "Ready").is_some_and(|(s, _, _)| s == "True")
}

#[tokio::test]
async fn a_fleet_rolls_out_in_waves_stops_on_an_unhealthy_canary_and_retries_unreachable_members() {
    let _clusters_of_this_test = exclusive().await;
    let mut members = Vec::new();
    for (i, name) in MEMBERS.iter().enumerate() {
        let cluster = OwnCluster::start(&format!("hub-{name}")).await;
        cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
        cluster.apply(MEMBER_RBAC);
        // The first cluster is also the hub.
        let extra: &[&str] = if i == 0 { &["--fleet-hub"] } else { &[] };
        let operator = cluster.start_operator("flux-system", extra).await;
        let client = cluster.client().await;
        members.push(Member {
            cluster,
            client,
            _operator: operator,
        });
    }
    let hub = &members[0];
    for (member, name) in members.iter().zip(MEMBERS) {
        hub.cluster.apply(&kubeconfig_secret(
            name,
            &hub_kubeconfig(&member.cluster, None),
        ));
    }
    let hub_client = hub.client.clone();

    // First rollout: every member gets Flux 2.8.
    hub.cluster.apply(&fleet(&template("2.8.x", "")));
    fleet_status(&hub_client, "the first rollout", ready).await;
    for member in &members {
        let api = Api::<FluxInstance>::namespaced(member.client.clone(), "flux-system");
        wait_for_instance(&api, Duration::from_secs(60), "2.8.8", |i| {
            is_ready_at(i, "v2.8.8@")
        })
        .await;
    }
    let started_with: Vec<Option<String>> = {
        let mut digests = Vec::new();
        for member in &members {
            digests.push(member.digest().await);
        }
        digests
    };

    // Upgrade: the canary (b) moves first; a and c only once b is healthy.
    let started = Instant::now();
    hub.cluster.apply(&fleet(&template("2.9.x", "")));
    let mut canary_ready_at = None;
    let mut first_change: [Option<Duration>; 3] = [None, None, None];
    while first_change.iter().any(Option::is_none) {
        for (i, member) in members.iter().enumerate() {
            if first_change[i].is_none() && member.digest().await != started_with[i] {
                first_change[i] = Some(started.elapsed());
            }
        }
        if canary_ready_at.is_none()
            && members[1]
                .instance()
                .await
                .is_some_and(|i| is_ready_at(&i, "v2.9.4@"))
        {
            canary_ready_at = Some(started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "the upgrade did not reach every member"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let canary_ready = canary_ready_at.expect("the canary became Ready before the others changed");
    for i in [0, 2] {
        assert!(
            first_change[i].expect("changed") >= canary_ready,
            "{} changed at {:?}, before the canary was Ready at {canary_ready:?}",
            MEMBERS[i],
            first_change[i]
        );
    }
    fleet_status(&hub_client, "the upgrade", ready).await;
    println!(
        "timing: fleet upgrade over 3 members in 2 waves: {:?}",
        started.elapsed()
    );
    let upgraded: Vec<Option<String>> = {
        let mut digests = Vec::new();
        for member in &members {
            digests.push(member.digest().await);
        }
        digests
    };

    // A change that is unhealthy on the canary: source-controller can be scheduled nowhere.
    let broken = "    kustomize:\n      patches:\n      - target: {kind: Deployment, name: source-controller}\n        patch: |\n          \
                  - {op: add, path: /spec/template/spec/nodeSelector, value: {fluxop.test/none: \"true\"}}\n";
    hub.cluster.apply(&fleet(&template("2.9.x", broken)));
    let stalled = fleet_status(
        &hub_client,
        "the canary to fail and the rollout to stop",
        |s, g| {
            s.observed_generation == g
                && condition(s, "Stalled")
                    .is_some_and(|(st, r, _)| st == "True" && r == "WaveFailed")
        },
    )
    .await;
    let (_, _, message) = condition(&stalled, "Stalled").expect("stalled");
    assert!(
        message.contains("wave canary failed") && message.contains("rolled back b"),
        "{message}"
    );
    // a and c were never touched; b is back on the healthy spec and Ready.
    assert_eq!(members[0].digest().await, upgraded[0]);
    assert_eq!(members[2].digest().await, upgraded[2]);
    let b = Api::<FluxInstance>::namespaced(members[1].client.clone(), "flux-system");
    wait_for_instance(
        &b,
        Duration::from_secs(120),
        "the canary to be rolled back and Ready",
        |i| {
            is_ready_at(i, "v2.9.4@")
                && i.metadata.annotations.as_ref().and_then(|a| a.get(DIGEST))
                    == upgraded[1].as_ref()
        },
    )
    .await;

    // c becomes unreachable (its kubeconfig points nowhere) during the next rollout: it is
    // reported and retried, the others converge, and c follows once it is back.
    hub.cluster.apply(&kubeconfig_secret(
        "c",
        &hub_kubeconfig(&members[2].cluster, Some("https://127.0.0.1:1")),
    ));
    let labelled = "    commonMetadata:\n      labels:\n        fleet.example.com/rollout: \"3\"\n";
    hub.cluster.apply(&fleet(&template("2.9.x", labelled)));
    let waiting = fleet_status(&hub_client, "c to be reported unreachable", |s, g| {
        s.observed_generation == g
            && s.members.iter().flatten().any(|m| {
                m.name == "c" && m.last_error.as_deref().is_some_and(|e| !e.is_empty()) && !m.ready
            })
            && s.members
                .iter()
                .flatten()
                .filter(|m| m.name != "c")
                .all(|m| m.ready)
    })
    .await;
    assert!(
        condition(&waiting, "Ready")
            .is_some_and(|(s, _, m)| s == "Unknown" && m.contains("c unreachable")),
        "{waiting:?}"
    );
    hub.cluster.apply(&kubeconfig_secret(
        "c",
        &hub_kubeconfig(&members[2].cluster, None),
    ));
    fleet_status(&hub_client, "c to converge once reachable", ready).await;
    for member in &members {
        let labels = member.cluster.kubectl_ok(&[
            "get",
            "deployment/source-controller",
            "-n",
            "flux-system",
            "-o",
            "jsonpath={.metadata.labels.fleet\\.example\\.com/rollout}",
        ]);
        assert_eq!(labels.trim(), "3", "{}", member.cluster.name);
    }
}

/// A kubeconfig for `server` (with the CA of `admin`) whose user `hub` authenticates with an
/// exec plugin that creates `dir/pwned` and then prints a token.
fn exec_kubeconfig(admin: &Kubeconfig, dir: &std::path::Path) -> String {
    let cluster = admin.clusters[0].cluster.clone().expect("cluster");
    let credential = r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"x"}}"#;
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: member\n  cluster:\n    server: {}\n    certificate-authority-data: {}\n\
         users:\n- name: hub\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      \
         args:\n      - -c\n      - |\n        touch {}/pwned\n        echo '{credential}'\n      interactiveMode: Never\n\
         contexts:\n- name: member\n  context: {{cluster: member, user: hub}}\ncurrent-context: member\n",
        cluster.server.unwrap_or_default(),
        cluster.certificate_authority_data.unwrap_or_default(),
        dir.display(),
    )
}

#[tokio::test]
async fn member_kubeconfigs_with_exec_plugins_or_file_references_are_refused_and_never_run() {
    let _clusters_of_this_test = exclusive().await;
    let hub = OwnCluster::start("hub-refuse").await;
    hub.kubectl_ok(&["create", "namespace", "flux-system"]);
    let _operator = hub.start_operator("flux-system", &["--fleet-hub"]).await;
    let client = hub.client().await;
    let admin = Kubeconfig::read_from(&hub.kubeconfig).expect("kubeconfig");
    let markers = std::env::temp_dir().join(format!("fluxop-e2e-exec-{}", std::process::id()));
    let (control, guarded) = (markers.join("control"), markers.join("hub"));
    for dir in [&control, &guarded] {
        std::fs::create_dir_all(dir).expect("marker dir");
    }

    // The control: given to the kube crate unchecked, this kubeconfig runs its plugin on the
    // first request, so the marker's absence below means the hub refused it, not that the
    // plugin could not run here.
    let unchecked = Kubeconfig::from_yaml(&exec_kubeconfig(&admin, &control)).expect("yaml");
    let config = Config::from_custom_kubeconfig(unchecked, &KubeConfigOptions::default())
        .await
        .expect("config");
    let _ = Api::<Namespace>::all(Client::try_from(config).expect("client"))
        .list(&ListParams::default().limit(1))
        .await;
    assert!(
        control.join("pwned").exists(),
        "the control exec plugin did not run"
    );

    // Two members: one with an exec plugin, one reading files of the operator's machine.
    hub.apply(&kubeconfig_secret(
        "exec",
        &exec_kubeconfig(&admin, &guarded),
    ));
    let server = admin.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .expect("server");
    let files = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: member\n  cluster:\n    server: {server}\n    certificate-authority: /etc/hostname\n\
         users:\n- name: hub\n  user:\n    tokenFile: /etc/hostname\n    client-certificate: /etc/hostname\n    client-key: /etc/hostname\n\
         contexts:\n- name: member\n  context: {{cluster: member, user: hub}}\ncurrent-context: member\n"
    );
    hub.apply(&kubeconfig_secret("files", &files));
    // A third that would send its token without verified TLS, and does not opt in.
    let insecure = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: member\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n\
         users:\n- name: hub\n  user:\n    token: not-sent\n\
         contexts:\n- name: member\n  context: {{cluster: member, user: hub}}\ncurrent-context: member\n"
    );
    hub.apply(&kubeconfig_secret("insecure", &insecure));
    hub.apply(&format!(
        "apiVersion: fleet.fluxop.io/v1alpha1\nkind: FluxFleet\nmetadata:\n  name: prod\n  namespace: flux-system\nspec:\n  \
         members:\n  - name: exec\n    kubeconfigSecretRef: {{name: exec-kubeconfig}}\n  - name: files\n    kubeconfigSecretRef: {{name: files-kubeconfig}}\n  \
         - name: insecure\n    kubeconfigSecretRef: {{name: insecure-kubeconfig}}\n  \
         template:\n{}",
        template("2.9.x", "")
    ));

    let started = Instant::now();
    let status = fleet_status(&client, "the three kubeconfigs to be refused", |s, g| {
        s.observed_generation == g
            && condition(s, "Ready")
                .is_some_and(|(st, r, _)| st == "False" && r == "KubeconfigRefused")
            && s.members
                .iter()
                .flatten()
                .filter(|m| {
                    m.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("refused"))
                })
                .count()
                == 3
    })
    .await;
    println!(
        "timing: member kubeconfigs refused after {:?}",
        started.elapsed()
    );
    let (_, _, message) = condition(&status, "Ready").expect("Ready");
    assert!(
        message.contains("member exec: kubeconfig in Secret exec-kubeconfig")
            && message.contains("member files: kubeconfig in Secret files-kubeconfig"),
        "{message}"
    );
    let error = |name: &str| {
        status
            .members
            .iter()
            .flatten()
            .find(|m| m.name == name)
            .and_then(|m| m.last_error.clone())
            .unwrap_or_default()
    };
    let exec_error = error("exec");
    assert!(
        exec_error.contains("user \"hub\" uses an exec plugin (exec)")
            && exec_error.contains("inline credentials (token, or client-certificate-data"),
        "{exec_error}"
    );
    let files_error = error("files");
    for field in [
        "(tokenFile)",
        "(client-certificate)",
        "(client-key)",
        "cluster \"member\" references a file (certificate-authority)",
    ] {
        assert!(files_error.contains(field), "{field} in {files_error}");
    }
    let insecure_error = error("insecure");
    assert!(
        insecure_error.contains("(insecure-skip-tls-verify)")
            && insecure_error.contains("set insecure: true on the FluxFleet member"),
        "{insecure_error}"
    );
    assert!(
        status
            .members
            .iter()
            .flatten()
            .all(|m| !m.ready && m.applied.is_none())
    );

    // The signal for people watching events: one Warning per refused member.
    let selector =
        "involvedObject.kind=FluxFleet,involvedObject.name=prod,reason=KubeconfigRefused";
    let list_events = |selector: &str| {
        hub.kubectl_ok(&[
            "get",
            "events",
            "-n",
            "flux-system",
            "--field-selector",
            selector,
            "-o",
            "jsonpath={range .items[*]}{.type}|{.message}{\"\\n\"}{end}",
        ])
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let notes = loop {
        let notes: Vec<String> = list_events(selector)
            .lines()
            .filter_map(|l| l.strip_prefix("Warning|"))
            .map(str::to_string)
            .collect();
        if ["exec", "files", "insecure"].iter().all(|m| {
            notes
                .iter()
                .any(|n| n.starts_with(&format!("member {m}: ")))
        }) {
            break notes;
        }
        assert!(
            Instant::now() < deadline,
            "no KubeconfigRefused Warning for each member; events of flux-system:\n{}",
            list_events("")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(notes.len(), 3, "one event per refused member: {notes:?}");

    // The refusal was observed, after the hub had read the Secret: the plugin never ran.
    assert!(
        !guarded.join("pwned").exists(),
        "the hub ran the member kubeconfig's exec plugin"
    );
    let _ = std::fs::remove_dir_all(&markers);
}
