//! Bench: render time of the default and the all-features instance for every Flux release of
//! the vendored bundle (run hack/vendor-flux.sh first; hack/bench.sh does).

use std::time::{Duration, Instant};

use fluxop::{
    api::FluxInstanceSpec,
    bundle::{archive, layout::Bundle},
    render::{Release, render_release},
};

const RUNS: usize = 50;

const ALL_FEATURES: &str = r#"
distribution: {version: '2.x', registry: registry.example.com/fluxcd, imagePullSecret: regcred}
components: [source-controller, kustomize-controller, helm-controller, notification-controller,
  image-reflector-controller, image-automation-controller, source-watcher]
commonMetadata: {labels: {team: platform}, annotations: {owner: platform}}
cluster: {type: openshift, size: large, multitenant: true, objectLevelWorkloadIdentity: true,
  multitenantWorkloadIdentity: true, domain: corp.example}
storage: {class: standard, size: 10Gi}
sync: {kind: GitRepository, url: 'https://example.com/fleet.git', ref: refs/heads/main, path: clusters/prod}
kustomize:
  patches:
    - target: {kind: Deployment, name: "(kustomize-controller|helm-controller)"}
      patch: |
        - {op: add, path: /spec/template/spec/containers/0/args/-, value: --concurrent=15}
    - target: {kind: Deployment}
      patch: |
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: all}
        spec: {template: {spec: {tolerations: [{key: flux, operator: Exists}]}}}
"#;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests-bundle");
    let bundle = Bundle::from_files(archive::read_dir(&dir).expect("run hack/vendor-flux.sh"))
        .expect("bundle");
    let default: FluxInstanceSpec =
        serde_saphyr::from_str("distribution: {version: '2.x', registry: ghcr.io/fluxcd}").unwrap();
    println!(
        "{:<8} {:>14} {:>10} {:>18} {:>10}",
        "flux", "default", "objects", "all features", "objects"
    );
    for version in bundle.versions() {
        let mut all: FluxInstanceSpec = serde_saphyr::from_str(ALL_FEATURES).unwrap();
        if version.minor < 7 {
            // source-watcher and multitenant workload identity start with Flux 2.7.
            all.components
                .as_mut()
                .unwrap()
                .retain(|c| c.name() != "source-watcher");
            all.cluster.as_mut().unwrap().multitenant_workload_identity = None;
        }
        let mut parses = Vec::new();
        for _ in 0..10 {
            let started = Instant::now();
            Release::parse(&bundle, &version).expect("parse");
            parses.push(started.elapsed());
        }
        let release = Release::parse(&bundle, &version).expect("parse");
        let measure = |spec: &FluxInstanceSpec| {
            let mut samples = Vec::with_capacity(RUNS);
            let mut objects = 0;
            for _ in 0..RUNS {
                let started = Instant::now();
                let rendered = render_release("flux-system", spec, &release).expect("render");
                samples.push(started.elapsed());
                objects = rendered.objects.len();
            }
            (median(samples), objects)
        };
        let (default_time, default_objects) = measure(&default);
        let (all_time, all_objects) = measure(&all);
        println!(
            "v{:<7} {:>13.2} ms {:>11.2} ms {:>10} {:>15.2} ms {:>10}",
            version,
            median(parses).as_secs_f64() * 1000.0,
            default_time.as_secs_f64() * 1000.0,
            default_objects,
            all_time.as_secs_f64() * 1000.0,
            all_objects
        );
    }
    println!(
        "(medians; render of {RUNS} runs each from the parsed release; goal: all features under 20 ms)"
    );
}
