//! Bench: one ResourceSet of 100 inputs × 5 resources (a Namespace, a ServiceAccount, a
//! ConfigMap, a Role and a RoleBinding per tenant: 500 objects), rendered and applied by
//! fluxop and by the incumbent's operator (`flux-operator` v0.58.1, built by
//! `hack/testbed-build.sh flux-operator-controller`), each on a fresh kwok cluster started
//! the same way, running as a process of this machine with the admin kubeconfig. Measured
//! per operator: apply of the ResourceSet → Ready=True at its generation; a change of every
//! object (a new annotation in the template) → Ready again; the process's peak and current
//! RSS. Run with `hack/bench.sh resourcesets`; prints figures, asserts nothing.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fluxop_e2e::{
    cluster::{OwnCluster, free_port, process_memory_kib, run_fluxop},
    eventually,
};
use kube::{
    Api,
    api::{DynamicObject, GroupVersionKind},
    discovery::ApiResource,
};

const INPUTS: usize = 100;

fn manifest(marker: &str) -> String {
    let inputs: String = (0..INPUTS)
        .map(|i| format!("    - tenant: tenant-{i:03}\n"))
        .collect();
    format!(
        r#"apiVersion: fluxcd.controlplane.io/v1
kind: ResourceSet
metadata:
  name: tenants
  namespace: default
spec:
  inputs:
{inputs}  resourcesTemplate: |
    apiVersion: v1
    kind: Namespace
    metadata:
      name: << inputs.tenant >>
      annotations: {{bench: "{marker}"}}
    ---
    apiVersion: v1
    kind: ServiceAccount
    metadata:
      name: reconciler
      namespace: << inputs.tenant >>
      annotations: {{bench: "{marker}"}}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata:
      name: settings
      namespace: << inputs.tenant >>
      annotations: {{bench: "{marker}"}}
    data:
      tenant: << inputs.tenant | quote >>
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: Role
    metadata:
      name: reader
      namespace: << inputs.tenant >>
      annotations: {{bench: "{marker}"}}
    rules:
      - apiGroups: [""]
        resources: [configmaps]
        verbs: [get, list]
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: RoleBinding
    metadata:
      name: reader
      namespace: << inputs.tenant >>
      annotations: {{bench: "{marker}"}}
    roleRef:
      apiGroup: rbac.authorization.k8s.io
      kind: Role
      name: reader
    subjects:
      - kind: ServiceAccount
        name: reconciler
        namespace: << inputs.tenant >>
"#
    )
}

/// Waits until the ResourceSet is Ready at generation `generation`.
async fn ready_at(cluster: &OwnCluster, generation: i64) {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "fluxcd.controlplane.io",
        "v1",
        "ResourceSet",
    ));
    let api: Api<DynamicObject> =
        Api::namespaced_with(cluster.client().await, "default", &resource);
    eventually(
        Duration::from_secs(600),
        "the ResourceSet to be Ready",
        || {
            let api = api.clone();
            async move {
                let rset = api.get("tenants").await.ok()?;
                let ready = rset.data["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .any(|c| {
                        c["type"] == "Ready"
                            && c["status"] == "True"
                            && c["observedGeneration"] == generation
                    });
                (ready && rset.metadata.generation == Some(generation)).then_some(())
            }
        },
    )
    .await;
}

struct Figures {
    install: Duration,
    update: Duration,
    peak_kib: u64,
    current_kib: u64,
}

enum Side {
    Fluxop,
    Incumbent,
}

async fn measure(side: Side) -> Figures {
    let name = match side {
        Side::Fluxop => "bench-rset-fluxop",
        Side::Incumbent => "bench-rset-incumbent",
    };
    let cluster = OwnCluster::start_with(name, &["1"]).await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    let mut incumbent: Option<Child> = None;
    let mut fluxop = None;
    match side {
        Side::Fluxop => {
            fluxop = Some(
                run_fluxop(
                    &cluster.kubeconfig,
                    name,
                    name,
                    "flux-system",
                    &["--leader-elect", "false"],
                    &[],
                )
                .await,
            );
        }
        Side::Incumbent => {
            // Its own CRDs in place of fluxop's.
            let ours = cluster.kubectl_ok(&["get", "crd", "-o", "name"]);
            for crd in ours
                .lines()
                .filter(|c| c.ends_with(".fluxcd.controlplane.io"))
            {
                cluster.kubectl_ok(&["delete", crd, "--wait=true"]);
            }
            let crds = fluxop_e2e::incumbent_operator_dir("crds");
            cluster.kubectl_ok(&[
                "apply",
                "--server-side",
                "-f",
                crds.to_str().expect("utf-8 path"),
            ]);
            cluster.kubectl_ok(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd",
                "resourcesets.fluxcd.controlplane.io",
            ]);
            let health = free_port();
            let child = Command::new(fluxop_e2e::incumbent_operator_bin())
                .args(["--enable-leader-election=false", "--web-server-port=0"])
                .arg(format!("--health-addr=127.0.0.1:{health}"))
                .arg(format!("--metrics-addr=127.0.0.1:{}", free_port()))
                .arg(format!(
                    "--storage-path={}",
                    fluxop_e2e::incumbent_operator_dir("data").display()
                ))
                .env("RUNTIME_NAMESPACE", "flux-system")
                .env("KUBECONFIG", &cluster.kubeconfig)
                .env_remove("KUBERNETES_SERVICE_HOST")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the incumbent starts");
            incumbent = Some(child);
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
    let started = Instant::now();
    cluster.apply(&manifest("one"));
    ready_at(&cluster, 1).await;
    let install = started.elapsed();
    let started = Instant::now();
    cluster.apply(&manifest("two"));
    ready_at(&cluster, 2).await;
    let update = started.elapsed();
    let pid = match (&fluxop, &incumbent) {
        (Some(operator), _) => operator.pid(),
        (_, Some(child)) => child.id(),
        _ => unreachable!("one side runs"),
    };
    let (peak_kib, current_kib) = process_memory_kib(pid).unwrap_or_default();
    if let Some(mut child) = incumbent {
        let _ = child.kill();
        let _ = child.wait();
    }
    drop(fluxop);
    drop(cluster);
    Figures {
        install,
        update,
        peak_kib,
        current_kib,
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let ours = measure(Side::Fluxop).await;
        let theirs = measure(Side::Incumbent).await;
        let ratio = |a: f64, b: f64| {
            if b > 0.0 {
                format!("{:.2}×", a / b)
            } else {
                "-".into()
            }
        };
        println!(
            "ResourceSet of {INPUTS} inputs × 5 resources ({} objects), kwok cluster, one run",
            INPUTS * 5
        );
        println!(
            "{:<34} {:>12} {:>12} {:>10}",
            "", "fluxop", "incumbent", "ratio"
        );
        let secs = |d: Duration| d.as_secs_f64();
        println!(
            "{:<34} {:>11.2}s {:>11.2}s {:>10}",
            "apply → Ready",
            secs(ours.install),
            secs(theirs.install),
            ratio(secs(ours.install), secs(theirs.install))
        );
        println!(
            "{:<34} {:>11.2}s {:>11.2}s {:>10}",
            "every object changed → Ready",
            secs(ours.update),
            secs(theirs.update),
            ratio(secs(ours.update), secs(theirs.update))
        );
        let mib = |k: u64| k as f64 / 1024.0;
        println!(
            "{:<34} {:>9.1}MiB {:>9.1}MiB {:>10}",
            "peak RSS",
            mib(ours.peak_kib),
            mib(theirs.peak_kib),
            ratio(mib(ours.peak_kib), mib(theirs.peak_kib))
        );
        println!(
            "{:<34} {:>9.1}MiB {:>9.1}MiB {:>10}",
            "RSS after",
            mib(ours.current_kib),
            mib(theirs.current_kib),
            ratio(mib(ours.current_kib), mib(theirs.current_kib))
        );
    });
}
