//! A misbehaving registry in front of the real one ([`fluxop_e2e::faults`]): a stalled,
//! oversized, endless, truncated, failing or vanishing bundle download, and an endless or
//! oversized manifest, end the first
//! install in a condition that names the cause, applies nothing, keeps fluxop's memory
//! bounded, and the install goes through once the registry behaves. During an outage after
//! an install, drift is still corrected from the last verified bundle in the cache.
//!
//! One kwok cluster and one fluxop per test (`--registry-timeout 5`), the signed bundle in the
//! test registry, the instance's artifact pointing at the proxy.

use std::time::{Duration, Instant};

use fluxop::{
    api::FluxInstance,
    bundle::{archive, reference::ArtifactRef, signature},
};
use fluxop_e2e::{
    cluster::{
        Operator, OwnCluster, condition, exclusive, instance_yaml, is_ready_at, wait_for_instance,
    },
    eventually,
    faults::{FaultProxy, Mode},
    registry_address, unique_repository,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, Client};

const MINUTE: Duration = Duration::from_secs(60);
/// fluxop's peak resident set may not pass this, whatever the registry sends.
const PEAK_RSS_BOUND_KIB: u64 = 150 * 1024;

struct Bed {
    cluster: OwnCluster,
    client: Client,
    api: Api<FluxInstance>,
    proxy: FaultProxy,
    operator: Operator,
    requests: u32,
    /// The bundle's tag in the test registry, its layer and the key that signed it.
    tag: ArtifactRef,
    layer: Vec<u8>,
    signer: signature::KeyPair,
}

/// A gzip'd tar of one file whose ustar header says 0 bytes, preceded by a PAX record saying
/// `size` bytes, and `size` zero bytes of content.
fn pax_size_bomb(size: u64) -> Vec<u8> {
    use std::io::Write;
    let body = format!(" size={size}\n");
    let mut length = body.len() + 1;
    while format!("{length}{body}").len() != length {
        length += 1;
    }
    let record = format!("{length}{body}");
    let header = |name: &str, kind: tar::EntryType, size: u64| {
        let mut header = tar::Header::new_ustar();
        header.set_path(name).expect("path");
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_cksum();
        header
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(
        header(
            "PaxHeaders/bomb.yaml",
            tar::EntryType::XHeader,
            record.len() as u64,
        )
        .as_bytes(),
    )
    .unwrap();
    let mut padded = record.into_bytes();
    padded.resize(padded.len().div_ceil(512) * 512, 0);
    gz.write_all(&padded).unwrap();
    gz.write_all(header("flux/v2.9.4/bomb.yaml", tar::EntryType::Regular, 0).as_bytes())
        .unwrap();
    let block = vec![0u8; 1 << 20];
    let mut written = 0u64;
    while written < size {
        let n = (size - written).min(block.len() as u64) as usize;
        gz.write_all(&block[..n]).unwrap();
        written += n as u64;
    }
    let padding = (size.div_ceil(512) * 512 - size) as usize + 1024;
    gz.write_all(&vec![0u8; padding]).unwrap();
    gz.finish().unwrap()
}

/// A kwok cluster, a signed bundle in the test registry, the proxy in front of it (blob faults
/// on the bundle layer only), the key Secret, and fluxop pointed at the proxy.
async fn bed(prefix: &str) -> (Bed, String) {
    let cluster = OwnCluster::start(prefix).await;
    let client = cluster.client().await;
    cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
    let api = Api::<FluxInstance>::namespaced(client.clone(), "flux-system");

    let signer = signature::generate_key_pair(b"").expect("key pair");
    let repository = unique_repository("faults");
    let layer = fluxop_e2e::fleet::bundle_layer(None);
    let tag = ArtifactRef::parse(&format!("oci://{}/{repository}:latest", registry_address()))
        .expect("reference");
    fluxop_e2e::fleet::push(&tag, &layer, Some(&signer)).await;

    let proxy = FaultProxy::start(&registry_address());
    let layer_digest = archive::digest(&layer);
    proxy.target_blobs(Some(&layer_digest));

    cluster.apply_public_key("cosign-pub", &signer.public_pem);
    let operator = cluster
        .start_operator(
            "flux-system",
            &[
                "--insecure-registry",
                &proxy.address(),
                "--registry-timeout",
                "5",
            ],
        )
        .await;
    let spec = format!(
        "  distribution:\n    version: \"2.9.x\"\n    registry: ghcr.io/fluxcd\n    artifact: oci://{}/{repository}:latest\n    verify:\n      provider: cosign\n      secretRef:\n        name: cosign-pub\n",
        proxy.address()
    );
    (
        Bed {
            cluster,
            client,
            api,
            proxy,
            operator,
            requests: 0,
            tag,
            layer,
            signer,
        },
        spec,
    )
}

impl Bed {
    /// Asks for a reconcile now (a new `reconcile.fluxcd.io/requestedAt`), not at the backoff.
    fn request_reconcile(&mut self) -> String {
        self.requests += 1;
        let value = format!("faults-{}", self.requests);
        self.cluster.request_reconcile("fluxinstance/flux", &value);
        value
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), "flux-system")
    }

    /// (peak, current) RSS of fluxop in KiB.
    fn memory(&self) -> (u64, u64) {
        self.operator.memory_kib().expect("fluxop is running")
    }
}

fn describe(instance: &FluxInstance, type_: &str) -> String {
    condition(instance, type_)
        .map(|c| format!("{}={} {}: {}", c.type_, c.status, c.reason, c.message))
        .unwrap_or_else(|| format!("no {type_} condition"))
}

#[tokio::test]
async fn a_misbehaving_registry_fails_the_first_install_cleanly_and_in_bounded_memory() {
    let _one_cluster_at_a_time = exclusive().await;
    let (mut bed, spec) = bed("faults-registry").await;
    let (baseline, _) = bed.memory();
    println!("fluxop peak RSS before any fault: {baseline} KiB");

    // Each fault, on a first install: Ready=False, ArtifactFailed, a message naming the cause
    // (every part listed). Consecutive cases differ in their messages, so each wait sees the
    // outcome of its own fault.
    let manifest_limit = format!(
        "manifest is larger than the limit of {} bytes",
        fluxop::policy::registry::MAX_SMALL_BODY_BYTES
    );
    let token_limit = format!(
        "token response is larger than the limit of {} bytes",
        fluxop::policy::registry::MAX_SMALL_BODY_BYTES
    );
    let too_many_signatures = format!(
        "lists {} layers, over the limit of {}",
        fluxop_e2e::faults::SIGNATURE_LAYER_COPIES,
        fluxop::policy::registry::MAX_SIGNATURE_LAYERS
    );
    const ARTIFACT: &str = "ArtifactFailed";
    let cases: [(Mode, &str, &str, &[&str]); 12] = [
        (
            Mode::Stall,
            "stall after headers",
            ARTIFACT,
            &["pull layer of", "timed out"],
        ),
        (
            Mode::Oversized,
            "oversized blob",
            ARTIFACT,
            &["larger than declared"],
        ),
        (
            Mode::EndlessManifest,
            "endless manifest",
            ARTIFACT,
            &[manifest_limit.as_str()],
        ),
        (
            Mode::HeadWithoutDigest,
            "HEAD without the digest header, endless GET",
            ARTIFACT,
            &["resolve", "without a Docker-Content-Digest header"],
        ),
        (
            Mode::ServerError,
            "500 for everything",
            ARTIFACT,
            &["server error 500"],
        ),
        (
            Mode::EndlessToken,
            "endless token response",
            ARTIFACT,
            &[token_limit.as_str()],
        ),
        (
            Mode::Endless,
            "endless blob",
            ARTIFACT,
            &["larger than declared"],
        ),
        (
            Mode::ManySignatureLayers,
            "thousands of signature layers",
            "VerificationFailed",
            &[too_many_signatures.as_str(), "none was downloaded"],
        ),
        (
            Mode::OversizedManifest,
            "oversized manifest",
            ARTIFACT,
            &[manifest_limit.as_str()],
        ),
        (
            Mode::Truncated,
            "truncated blob",
            ARTIFACT,
            &["broke off", "truncated"],
        ),
        (
            Mode::Hang,
            "accept, never answer",
            ARTIFACT,
            &["resolve", "timed out"],
        ),
        (
            Mode::DisappearMidPull,
            "disappears mid-pull",
            ARTIFACT,
            &["broke off", "lost connection"],
        ),
    ];
    let mut first = true;
    for (mode, name, reason, expected) in cases {
        bed.proxy.set(mode);
        let faults_before = bed.proxy.faults_injected();
        let started = Instant::now();
        if first {
            bed.cluster.apply(&instance_yaml("flux-system", &spec));
            first = false;
        } else {
            bed.request_reconcile();
        }
        let failed = wait_for_instance(
            &bed.api,
            2 * MINUTE,
            &format!("the {name} fault to be reported"),
            |i| {
                condition(i, "Ready").is_some_and(|c| {
                    c.status == "False"
                        && c.reason == reason
                        && expected.iter().all(|e| c.message.contains(e))
                })
            },
        )
        .await;
        let took = started.elapsed();
        assert!(
            bed.proxy.faults_injected() > faults_before,
            "{name}: the proxy injected no fault"
        );
        let ready = condition(&failed, "Ready").expect("Ready");
        let registry = bed.proxy.address();
        assert!(
            ready.message.contains(&registry),
            "{name}: the message names the registry: {}",
            ready.message
        );
        // Nothing was applied: no Flux controller exists after the failure was reported.
        let deployments = bed
            .deployments()
            .list(&Default::default())
            .await
            .expect("list");
        assert!(
            deployments.items.is_empty(),
            "{name}: something was applied: {:?}",
            deployments
                .items
                .iter()
                .map(|d| d.metadata.name.clone())
                .collect::<Vec<_>>()
        );
        let (peak, rss) = bed.memory();
        println!(
            "fault {name}: reported in {took:.1?}; fluxop peak RSS {peak} KiB, RSS {rss} KiB; {}",
            describe(&failed, "Ready")
        );
        assert!(
            peak < PEAK_RSS_BOUND_KIB,
            "{name}: fluxop's peak RSS {peak} KiB is over {PEAK_RSS_BOUND_KIB} KiB"
        );
    }

    // A signed bundle whose tar header says 0 bytes while a PAX record (which tar readers
    // obey) says 200 MB, and 200 MB follow (compressed to a few hundred KiB): refused by the
    // per-file cap before its content is read, in bounded memory.
    bed.proxy.set(Mode::PassThrough);
    let bomb_size: u64 = 200_000_000;
    let bomb = pax_size_bomb(bomb_size);
    println!("PAX size bomb: a layer of {} KiB", bomb.len() / 1024);
    fluxop_e2e::fleet::push(&bed.tag, &bomb, Some(&bed.signer)).await;
    let started = Instant::now();
    bed.request_reconcile();
    let refused = format!(
        "declares {bomb_size} bytes, over the limit of {} bytes per file",
        fluxop::policy::memory::MAX_FILE_BYTES
    );
    let failed = wait_for_instance(
        &bed.api,
        2 * MINUTE,
        "the PAX size bomb to be refused",
        |i| {
            condition(i, "Ready")
                .is_some_and(|c| c.status == "False" && c.message.contains(&refused))
        },
    )
    .await;
    let (peak, rss) = bed.memory();
    println!(
        "PAX size bomb: refused in {:.1?}; fluxop peak RSS {peak} KiB, RSS {rss} KiB; {}",
        started.elapsed(),
        describe(&failed, "Ready")
    );
    assert!(
        peak < PEAK_RSS_BOUND_KIB,
        "PAX size bomb: fluxop's peak RSS {peak} KiB is over {PEAK_RSS_BOUND_KIB} KiB"
    );
    assert!(
        bed.deployments()
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .is_empty(),
        "PAX size bomb: something was applied"
    );

    // The registry behaves again and the tag is back on a good bundle: the install goes
    // through.
    fluxop_e2e::fleet::push(&bed.tag, &bed.layer, Some(&bed.signer)).await;
    let started = Instant::now();
    bed.request_reconcile();
    wait_for_instance(&bed.api, 3 * MINUTE, "the install to recover", |i| {
        is_ready_at(i, "v2.9.")
    })
    .await;
    let (peak, rss) = bed.memory();
    println!(
        "recovery: Ready in {:.1?}; fluxop peak RSS {peak} KiB, RSS {rss} KiB",
        started.elapsed()
    );
}

#[tokio::test]
async fn drift_is_still_corrected_during_a_registry_outage() {
    let _one_cluster_at_a_time = exclusive().await;
    let (mut bed, spec) = bed("faults-outage").await;
    bed.cluster.apply(&instance_yaml("flux-system", &spec));
    wait_for_instance(&bed.api, 3 * MINUTE, "the install to be Ready", |i| {
        is_ready_at(i, "v2.9.")
    })
    .await;

    // The registry goes away; a reconcile finds it down.
    bed.proxy.set(Mode::Down);
    let requested = bed.request_reconcile();
    let during = wait_for_instance(
        &bed.api,
        2 * MINUTE,
        "the reconcile during the outage to be handled",
        |i| {
            i.status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some(requested.as_str())
        },
    )
    .await;
    println!(
        "during the outage: {}; {}",
        describe(&during, "Ready"),
        describe(&during, "FetchFailed")
    );

    // Drift: a deleted controller comes back while the registry is still down.
    let uid_before = bed
        .deployments()
        .get("source-controller")
        .await
        .expect("source-controller")
        .metadata
        .uid;
    let started = Instant::now();
    bed.cluster.kubectl_ok(&[
        "delete",
        "deployment/source-controller",
        "-n",
        "flux-system",
        "--wait=false",
    ]);
    let deployments = bed.deployments();
    eventually(
        2 * MINUTE,
        "source-controller to be recreated during the outage",
        || async {
            let d = deployments.get_opt("source-controller").await.ok()??;
            (d.metadata.uid != uid_before && d.metadata.deletion_timestamp.is_none()).then_some(())
        },
    )
    .await;
    assert_eq!(bed.proxy.mode(), Mode::Down, "the registry stayed down");
    println!(
        "drift corrected during the outage in {:?}",
        started.elapsed()
    );

    // The instance says what happened: Ready stays True, FetchFailed=True names the error.
    let instance = wait_for_instance(
        &bed.api,
        MINUTE,
        "FetchFailed=True naming the registry error, Ready=True",
        |i| {
            condition(i, "FetchFailed")
                .is_some_and(|c| c.status == "True" && c.message.contains(&bed.proxy.address()))
                && condition(i, "Ready").is_some_and(|c| c.status == "True")
        },
    )
    .await;
    println!(
        "outage conditions: {}; {}",
        describe(&instance, "Ready"),
        describe(&instance, "FetchFailed")
    );
    let (peak, rss) = bed.memory();
    println!("outage: fluxop peak RSS {peak} KiB, RSS {rss} KiB");

    // Refusals that are not outages keep the applied bundle converging too: a revoked
    // credential (401), a deleted tag (404), a verify Secret deleted by mistake. Each time a
    // deleted controller comes back, and FetchFailed names the cause.
    let deployments = bed.deployments();
    let cases: [(&str, &str); 3] = [
        ("401 for everything", "registry refused access"),
        ("404 for the tag", "not found"),
        (
            "the verify Secret deleted",
            "cosign-pub (verify.secretRef) does not exist",
        ),
    ];
    for (name, expected) in cases {
        match name {
            "401 for everything" => bed.proxy.set(Mode::Unauthorized),
            "404 for the tag" => bed.proxy.set(Mode::NotFound),
            _ => {
                bed.proxy.set(Mode::PassThrough);
                bed.cluster
                    .kubectl_ok(&["delete", "secret", "cosign-pub", "-n", "flux-system"]);
            }
        }
        bed.request_reconcile();
        wait_for_instance(
            &bed.api,
            MINUTE,
            &format!("{name}: FetchFailed=True naming it, Ready=True"),
            |i| {
                condition(i, "FetchFailed")
                    .is_some_and(|c| c.status == "True" && c.message.contains(expected))
                    && condition(i, "Ready").is_some_and(|c| c.status == "True")
            },
        )
        .await;
        let uid_before = deployments
            .get("source-controller")
            .await
            .expect("source-controller")
            .metadata
            .uid;
        let started = Instant::now();
        bed.cluster.kubectl_ok(&[
            "delete",
            "deployment/source-controller",
            "-n",
            "flux-system",
            "--wait=false",
        ]);
        eventually(
            2 * MINUTE,
            &format!("{name}: source-controller to be recreated"),
            || async {
                let d = deployments.get_opt("source-controller").await.ok()??;
                (d.metadata.uid != uid_before && d.metadata.deletion_timestamp.is_none())
                    .then_some(())
            },
        )
        .await;
        let instance = bed.api.get("flux").await.expect("get");
        println!(
            "{name}: drift corrected in {:?}; {}",
            started.elapsed(),
            describe(&instance, "FetchFailed")
        );
    }
}
