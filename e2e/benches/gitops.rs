//! Bench: publish -> the sample app updated in the cluster, on a real node with the real
//! source and kustomize controllers, for an OCI artifact (`fluxop artifact push`, signed and
//! verified by Flux) and for a Git push to the test bed's Git server. Each round changes the
//! app's ConfigMap, publishes, runs `fluxop reconcile ks flux-system --with-source --wait` (what
//! a pipeline does after publishing) and stops the clock when the cluster has the new value.
//! fluxop (release build) runs on this machine. Run with `hack/bench.sh gitops`; prints
//! figures, asserts nothing.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use fluxop_e2e::{
    OwnGitServer, bench_summary,
    gitops::{fluxop_local, fluxop_on, git, git_sync, oci_sync, sync_signing_key},
    pods::Bed,
    repo_root, unique_repository,
};

/// `fluxop <args>` against the bed's cluster, which must succeed.
fn run(bed: &Bed, args: &[&str]) {
    let (code, _, stderr) = fluxop_on(&bed.cluster.kubeconfig, args);
    assert_eq!(code, 0, "fluxop {args:?}: {stderr}");
}
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};

const ROUNDS: usize = 5;
const CONTROLLERS: [&str; 2] = ["source-controller", "kustomize-controller"];

fn write_app(dir: &Path, greeting: &str) {
    std::fs::create_dir_all(dir).expect("app dir");
    std::fs::write(
        dir.join("app.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: default\ndata:\n  greeting: \"{greeting}\"\n"
        ),
    )
    .expect("write app");
}

async fn wait_greeting(client: &Client, expected: &str) {
    let api = Api::<ConfigMap>::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let value = api
            .get_opt("app")
            .await
            .ok()
            .flatten()
            .and_then(|c| c.data?.get("greeting").cloned());
        if value.as_deref() == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "greeting {expected} never arrived"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Installs Flux with `sync`, then times `ROUNDS` rounds of `publish` -> the cluster has
/// the published greeting.
async fn rounds(bed: &Bed, sync: &str, publish: impl Fn(&str)) -> Vec<Duration> {
    bed.cluster
        .apply(&bed.instance("2.9.4", &CONTROLLERS, sync, ""));
    bed.ready_at("v2.9.4@", Duration::from_secs(300)).await;
    wait_greeting(&bed.client, "0").await;
    let mut samples = Vec::new();
    for round in 1..=ROUNDS {
        let started = Instant::now();
        publish(&round.to_string());
        run(
            bed,
            &["reconcile", "ks", "flux-system", "--with-source", "--wait"],
        );
        wait_greeting(&bed.client, &round.to_string()).await;
        samples.push(started.elapsed());
    }
    samples
}

async fn oci() -> Vec<Duration> {
    let bed = Bed::start("bench-oci", true).await;
    let work = repo_root()
        .join("target")
        .join(format!("bench-gitops-oci-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    let key = sync_signing_key(&bed.cluster, &work);
    let repository = unique_repository("bench-sync");
    let push_to = format!(
        "oci://{}/{repository}:latest",
        fluxop_e2e::registry_address()
    );
    let source = work.join("source");
    let publish = |greeting: &str| {
        write_app(&source.join("app"), greeting);
        fluxop_local(&[
            "artifact",
            "push",
            source.to_str().expect("path"),
            &push_to,
            "--insecure",
            "--sign-key",
            key.to_str().expect("path"),
        ]);
    };
    publish("0");
    let sync = oci_sync(
        &bed.cluster.registry(),
        &repository,
        "app",
        Some("sync-cosign"),
        "",
    );
    rounds(&bed, &sync, publish).await
}

async fn git_push() -> Vec<Duration> {
    let server = OwnGitServer::start("bench", &["--create", "fleet"]);
    let bed = Bed::start_with("bench-git", true, &["--expose", &server.address]).await;
    let work = repo_root()
        .join("target")
        .join(format!("bench-gitops-git-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    let remote = format!("http://{}/fleet.git", server.address);
    git(&work, &["init", "-q", "-b", "main"]);
    let push = |greeting: &str| {
        write_app(&work.join("app"), greeting);
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", greeting]);
        git(&work, &["push", "-q", &remote, "main"]);
    };
    push("0");
    let sync = git_sync(
        &format!("{}:{}", bed.cluster.gateway(), server.port()),
        "app",
        None,
    );
    rounds(&bed, &sync, push).await
}

#[tokio::main]
async fn main() {
    let oci = oci().await;
    let git = git_push().await;
    println!("publish -> app updated on a real node, {ROUNDS} rounds each:");
    bench_summary("OCI: artifact push (signed) + reconcile", oci);
    bench_summary("Git: commit + push + reconcile", git);
}
