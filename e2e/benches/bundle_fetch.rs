//! Bench: fetching the four-release Flux bundle from a real registry on loopback, as the
//! operator does it (resolve the tag, verify the cosign signature, pull or read the cache,
//! unpack), cold (empty cache, new client) and cached. Run with hack/bench.sh.

use std::time::{Duration, Instant};

use fluxop::bundle::{
    archive::{self, Limits},
    cache::Cache,
    layout::Bundle,
    reference::ArtifactRef,
    registry::{Credentials, Registry, RegistryConfig},
    signature,
    source::Source,
};

const COLD_RUNS: usize = 15;
const CACHED_RUNS: usize = 30;

fn summary(name: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = samples[samples.len() / 2];
    let p90 = samples[(samples.len() * 9 / 10).min(samples.len() - 1)];
    println!(
        "{name:<34} n={:<3} median {:>7.2} ms   p90 {:>7.2} ms   min {:>7.2} ms",
        samples.len(),
        ms(median),
        ms(p90),
        ms(samples[0])
    );
    median
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let address =
        std::env::var("FLUXOP_E2E_REGISTRY").expect("FLUXOP_E2E_REGISTRY: run hack/bench.sh");
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async move {
        let config = RegistryConfig {
            insecure: vec![address.clone()],
            ..RegistryConfig::default()
        };
        let client = || Registry::new(config.clone(), Credentials::Anonymous);
        let dir = fluxop_e2e::repo_root().join("manifests-bundle");
        let bundle =
            Bundle::from_files(archive::read_dir(&dir).expect("hack/vendor-flux.sh has run"))
                .unwrap();
        let layer = archive::pack(bundle.files());
        let tag = ArtifactRef::parse(&format!("oci://{address}/bench/flux-bundle:latest")).unwrap();
        let digest = client()
            .push(&tag, &layer, Default::default())
            .await
            .expect("push");
        let keys = signature::generate_key_pair(b"bench").unwrap();
        signature::sign(
            &client(),
            &tag.with_digest(&digest),
            keys.private_pem.as_bytes(),
            b"bench",
        )
        .await
        .unwrap();
        let key = Some(keys.public_pem.as_bytes());
        println!(
            "bundle: Flux {} — {} files, {} KiB packed, {} KiB unpacked",
            bundle
                .versions()
                .iter()
                .map(|v| format!("v{v}"))
                .collect::<Vec<_>>()
                .join(", "),
            bundle.files().len(),
            layer.len() / 1024,
            bundle.files().values().map(Vec::len).sum::<usize>() / 1024
        );

        let scratch = std::env::temp_dir().join(format!("fluxop-bench-{}", std::process::id()));
        let mut cold = Vec::new();
        for run in 0..COLD_RUNS {
            let cache_dir = scratch.join(format!("cold-{run}"));
            let source = Source {
                cache: Cache::new(&cache_dir),
                limits: Limits::default(),
                keep: 5,
            };
            let registry = client();
            let started = Instant::now();
            let fetched = source
                .fetch(&registry, &tag, key, None)
                .await
                .expect("cold fetch");
            cold.push(started.elapsed());
            assert!(!fetched.from_cache);
        }
        let source = Source {
            cache: Cache::new(scratch.join("warm")),
            limits: Limits::default(),
            keep: 5,
        };
        let registry = client();
        source
            .fetch(&registry, &tag, key, None)
            .await
            .expect("warm-up");
        let mut cached = Vec::new();
        for _ in 0..CACHED_RUNS {
            let started = Instant::now();
            let fetched = source
                .fetch(&registry, &tag, key, None)
                .await
                .expect("cached fetch");
            cached.push(started.elapsed());
            assert!(fetched.from_cache);
        }
        let mut verify = Vec::new();
        let mut unpack = Vec::new();
        for _ in 0..CACHED_RUNS {
            let started = Instant::now();
            signature::verify(
                &registry,
                &tag.with_digest(&digest),
                keys.public_pem.as_bytes(),
            )
            .await
            .unwrap();
            verify.push(started.elapsed());
            let started = Instant::now();
            Bundle::from_files(archive::unpack(&layer, &Limits::default()).unwrap()).unwrap();
            unpack.push(started.elapsed());
        }
        println!();
        let cold = summary("fetch, cold (new client, no cache)", cold);
        let cached = summary("fetch, cached digest", cached);
        summary("  of which: verify signature", verify);
        summary("  of which: unpack + validate", unpack);
        println!(
            "\ncold / cached = {:.1}x (same run)",
            cold.as_secs_f64() / cached.as_secs_f64()
        );
        let _ = std::fs::remove_dir_all(&scratch);
    });
}
