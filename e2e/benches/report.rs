//! Bench: the FluxReport with 10,000 Flux objects in the cluster — how long computing it takes
//! (the operator's own code path: paginated lists, per-object state, aggregation) and
//! fluxop's memory while it reports on them. Run with `hack/bench.sh report`; prints figures,
//! asserts nothing.

use std::time::{Duration, Instant};

use fluxop::{api::FluxInstance, report};
use fluxop_e2e::cluster::{OwnCluster, instance_yaml, is_ready_at, wait_for_instance};
use futures::{StreamExt, stream};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind, PostParams},
};
use serde_json::json;

const NAMESPACES: usize = 10;
const PER_NAMESPACE: [(&str, &str, &str, usize); 3] = [
    ("source.toolkit.fluxcd.io", "v1", "GitRepository", 400),
    ("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", 400),
    ("helm.toolkit.fluxcd.io", "v2", "HelmRelease", 200),
];
const RUNS: usize = 5;

fn manifest(kind: &str, name: &str, namespace: &str, i: usize) -> serde_json::Value {
    let spec = match kind {
        "GitRepository" => {
            json!({ "interval": "10m", "url": format!("https://example.com/{name}.git"), "suspend": i.is_multiple_of(10) })
        }
        "Kustomization" => json!({ "interval": "10m", "path": "./", "prune": true,
            "sourceRef": { "kind": "GitRepository", "name": name } }),
        _ => json!({ "interval": "10m", "chartRef": { "kind": "OCIRepository", "name": "chart" } }),
    };
    json!({ "metadata": { "name": name, "namespace": namespace }, "spec": spec })
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let cluster = OwnCluster::start("bench-report").await;
        let client = cluster.client().await;
        cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
        let operator = cluster
            .start_operator("flux-system", &["--log-level", "warn", "--reporting-interval", "15s"])
            .await;
        let idle = operator.memory_kib();
        cluster.apply(&instance_yaml(
            "flux-system",
            "  distribution:\n    version: \"2.9.x\"\n    registry: ghcr.io/fluxcd\n",
        ));
        let instances = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");
        wait_for_instance(&instances, Duration::from_secs(180), "Flux", |i| is_ready_at(i, "v2.9.4@")).await;

        let started = Instant::now();
        let mut creates = Vec::new();
        for n in 0..NAMESPACES {
            let namespace = format!("tenant-{n}");
            cluster.kubectl_ok(&["create", "namespace", &namespace]);
            for (group, version, kind, count) in PER_NAMESPACE {
                for i in 0..count {
                    creates.push((group, version, kind, namespace.clone(), i));
                }
            }
        }
        let total = creates.len();
        let results: Vec<bool> = stream::iter(creates.into_iter().map(|(group, version, kind, namespace, i)| {
            let client = client.clone();
            async move {
                let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
                let api = Api::<DynamicObject>::namespaced_with(client, &namespace, &resource);
                let mut object: DynamicObject =
                    serde_json::from_value(manifest(kind, &format!("{}-{i}", kind.to_lowercase()), &namespace, i))
                        .expect("object");
                object.types = Some(kube::api::TypeMeta {
                    api_version: format!("{group}/{version}"),
                    kind: kind.to_string(),
                });
                api.create(&PostParams::default(), &object).await.is_ok()
            }
        }))
        .buffer_unordered(16)
        .collect()
        .await;
        let created = results.iter().filter(|ok| **ok).count();
        println!("created {created} of {total} Flux objects in {:.1} s", started.elapsed().as_secs_f64());

        let mut samples = Vec::new();
        let mut objects = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            let observed = report::collect::observe(&client, "flux-system", None, Default::default())
                .await
                .expect("observe");
            let spec = report::spec(&observed);
            samples.push(started.elapsed());
            objects = observed.reconcilers.iter().map(|(_, _, o)| o.len()).sum::<usize>();
            assert!(spec.reconcilers.is_some());
        }
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "report computation with {objects} Flux objects: n={RUNS} median {:.0} ms   min {:.0} ms   max {:.0} ms",
            ms(samples[RUNS / 2]),
            ms(samples[0]),
            ms(samples[RUNS - 1])
        );
        // Let the operator report on them a few times (every 15 s), then read its memory.
        tokio::time::sleep(Duration::from_secs(50)).await;
        let series = operator
            .metric("fluxop_report_duration_seconds_sum")
            .zip(operator.metric("fluxop_report_duration_seconds_count"));
        if let Some((sum, count)) = series {
            let value = |l: String| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            let (sum, count) = (value(sum), value(count));
            println!("fluxop's own reports: {count:.0} computed, mean {:.0} ms (all reports, including before the objects existed)", 1000.0 * sum / count.max(1.0));
        }
        if let (Some((idle_peak, _)), Some((peak, now))) = (idle, operator.memory_kib()) {
            println!(
                "fluxop memory: at start {:.1} MiB; with {objects} objects peak RSS {:.1} MiB, RSS now {:.1} MiB",
                idle_peak as f64 / 1024.0,
                peak as f64 / 1024.0,
                now as f64 / 1024.0
            );
        }
    });
}
