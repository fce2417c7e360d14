//! Bench: the operator's lifecycle with real pods, next to the same steps on kwok nodes, in
//! one run. fluxop (release build) runs in the cluster as a pod from deploy/; the Flux
//! controllers are the images built from source. Per round: install 2.9.4 (the default four
//! controllers) until the instance is Ready (every pod Ready), uninstall; install 2.8.8's
//! source-controller and upgrade it to 2.9.4 until the new pod is Ready (the one older
//! controller that can be built here), revert a `kubectl scale`, uninstall. Also fluxop's
//! memory from its pod's cgroup. Run with `hack/bench.sh pods`; prints figures, asserts
//! nothing.

use std::time::{Duration, Instant};

use fluxop::{
    api::FluxInstance,
    bundle::{archive, layout::Bundle, reference::ArtifactRef},
};
use fluxop_e2e::{
    bench_summary,
    cluster::{OwnCluster, drift_revert, instance_yaml, is_ready_at, uninstall, wait_for_instance},
    pods::{deploy_overlay, fluxop_image_in, pod_memory_kib, pods, real_bundle_dir},
    registry_address, unique_repository,
};
use kube::Api;

const RUNS: usize = 3;

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64()
}

struct Figures {
    install: Vec<Duration>,
    upgrade: Vec<Duration>,
    drift: Vec<Duration>,
    uninstall: Vec<Duration>,
}

/// Install, upgrade, drift, uninstall `RUNS` times; the instance pulls from `bundle` and
/// the images from `images`. fluxop runs where the caller started it.
async fn rounds(cluster: &OwnCluster, bundle: &str, images: &str) -> Figures {
    let client = cluster.client().await;
    let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
    let spec = |version: &str, components: &str| {
        instance_yaml(
            "flux-system",
            &format!(
                "  distribution:\n    version: \"{version}\"\n    registry: {images}\n    artifact: {bundle}\n{components}"
            ),
        )
    };
    let source_only = "  components: [source-controller]\n";
    let minute = Duration::from_secs(60);
    let mut figures = Figures {
        install: Vec::new(),
        upgrade: Vec::new(),
        drift: Vec::new(),
        uninstall: Vec::new(),
    };
    for _ in 0..RUNS {
        let started = Instant::now();
        cluster.apply(&spec("2.9.4", ""));
        wait_for_instance(&api, 5 * minute, "install", |i| is_ready_at(i, "v2.9.4@")).await;
        figures.install.push(started.elapsed());

        figures.uninstall.push(uninstall(&api).await);
        // Let CRD deletions finish before the next install.
        tokio::time::sleep(Duration::from_secs(3)).await;

        cluster.apply(&spec("2.8.x", source_only));
        wait_for_instance(&api, 5 * minute, "install 2.8.8", |i| {
            is_ready_at(i, "v2.8.8@")
        })
        .await;
        let started = Instant::now();
        cluster.apply(&spec("2.9.4", source_only));
        wait_for_instance(&api, 5 * minute, "upgrade", |i| is_ready_at(i, "v2.9.4@")).await;
        figures.upgrade.push(started.elapsed());

        figures
            .drift
            .push(drift_revert(cluster, &client, "source-controller").await);

        uninstall(&api).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    figures
}

/// Pushes the bundle (unsigned: this measures the lifecycle, the bundle bench measures
/// verification) and returns its reference as `host` reaches the registry.
async fn push_bundle(host: &str) -> String {
    let bundle = Bundle::from_files(archive::read_dir(&real_bundle_dir()).expect("bundle dir"))
        .expect("bundle");
    let repository = unique_repository("bench-pods");
    let tag = ArtifactRef::parse(&format!("oci://{}/{repository}:latest", registry_address()))
        .expect("reference");
    fluxop_e2e::fleet::push(&tag, &archive::pack(bundle.files()), None).await;
    format!("oci://{host}/{repository}:latest")
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        // Real node, fluxop as a pod.
        let cluster = OwnCluster::start_real("bench-pods").await;
        let client = cluster.client().await;
        let (repository, digest) = fluxop_image_in(&cluster);
        let overlay = deploy_overlay(
            &repository,
            &digest,
            &format!("--insecure-registry={}", cluster.registry()),
        );
        cluster.kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "bench",
            "-k",
            overlay.to_str().expect("path"),
        ]);
        cluster.kubectl_ok(&[
            "rollout",
            "status",
            "deployment/fluxop",
            "-n",
            "flux-system",
            "--timeout=180s",
        ]);
        let bundle = push_bundle(&cluster.registry()).await;
        let real = rounds(&cluster, &bundle, &format!("{}/fluxcd", cluster.registry())).await;
        let memory = {
            let pods = pods(&client, "flux-system", "app.kubernetes.io/name=fluxop").await;
            pods.first().and_then(|p| pod_memory_kib(&cluster, p))
        };
        drop(cluster);

        // The same on kwok nodes, fluxop as a process of this machine.
        let cluster = OwnCluster::start("bench-kwok").await;
        cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
        let _operator = cluster
            .start_operator(
                "flux-system",
                &[
                    "--log-level",
                    "warn",
                    "--insecure-registry",
                    &registry_address(),
                ],
            )
            .await;
        let bundle = push_bundle(&registry_address()).await;
        let kwok = rounds(&cluster, &bundle, &format!("{}/fluxcd", registry_address())).await;

        println!("fluxop lifecycle with real pods (fluxop in the cluster, release build) vs kwok");
        for (name, real, kwok) in [
            (
                "install 2.9.4 to Ready (4 controllers)",
                real.install,
                kwok.install,
            ),
            (
                "upgrade 2.8.8 -> 2.9.4 (source-controller)",
                real.upgrade,
                kwok.upgrade,
            ),
            ("drift revert (kubectl scale)", real.drift, kwok.drift),
            ("uninstall (instance gone)", real.uninstall, kwok.uninstall),
        ] {
            let ratio = median(real.clone()) / median(kwok.clone()).max(1e-6);
            bench_summary(&format!("real pods: {name}"), real);
            bench_summary(&format!("kwok:      {name}"), kwok);
            println!("{:<44} real/kwok = {ratio:.1}x", "");
        }
        match memory {
            Some((rss, peak)) => println!(
                "fluxop pod memory (cgroup): RSS {:.1} MiB, peak usage {:.1} MiB",
                rss as f64 / 1024.0,
                peak as f64 / 1024.0
            ),
            None => println!("fluxop pod memory: cgroup not found"),
        }
    });
}
