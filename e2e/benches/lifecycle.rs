//! Bench: the operator's lifecycle on the local cluster, with a release build of fluxop and
//! the embedded bundle: install to Ready, upgrade 2.8 → 2.9 to Ready, drift revert (a
//! `kubectl scale` of a controller), uninstall, and fluxop's peak memory. Run with
//! `hack/bench.sh lifecycle`; prints figures, asserts nothing.

use std::time::{Duration, Instant};

use fluxop::api::FluxInstance;
use fluxop_e2e::cluster::{
    OwnCluster, drift_revert, instance_yaml, is_ready_at, uninstall, wait_for_instance,
};
use kube::Api;

const RUNS: usize = 5;

fn summary(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<28} n={:<2} median {:>8.1} ms   min {:>8.1} ms   max {:>8.1} ms",
        samples.len(),
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let cluster = OwnCluster::start("bench-lifecycle").await;
        let client = cluster.client().await;
        cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
        let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
        let operator = cluster
            .start_operator("flux-system", &["--log-level", "warn"])
            .await;
        let spec = |version: &str| {
            instance_yaml(
                "flux-system",
                &format!(
                    "  distribution:\n    version: \"{version}\"\n    registry: ghcr.io/fluxcd\n"
                ),
            )
        };
        let minute = Duration::from_secs(60);
        let (mut install, mut upgrade, mut drift, mut uninstalls) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let started = Instant::now();
            cluster.apply(&spec("2.8.x"));
            wait_for_instance(&api, 3 * minute, "install", |i| is_ready_at(i, "v2.8.8@")).await;
            install.push(started.elapsed());

            let started = Instant::now();
            cluster.apply(&spec("2.9.x"));
            wait_for_instance(&api, 3 * minute, "upgrade", |i| is_ready_at(i, "v2.9.4@")).await;
            upgrade.push(started.elapsed());

            drift.push(drift_revert(&cluster, &client, "source-controller").await);

            uninstalls.push(uninstall(&api).await);
            // Let CRD deletions finish before the next install.
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        println!("fluxop lifecycle on the local cluster (release build, embedded bundle)");
        summary("install to Ready (2.8.8)", install);
        summary("upgrade to Ready (2.9.4)", upgrade);
        summary("drift revert (kubectl scale)", drift);
        summary("uninstall (instance gone)", uninstalls);
        if let Some((peak, current)) = operator.memory_kib() {
            println!(
                "fluxop memory: peak RSS {:.1} MiB, RSS now {:.1} MiB",
                peak as f64 / 1024.0,
                current as f64 / 1024.0
            );
        }
    });
}
