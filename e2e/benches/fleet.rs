//! Bench: fleet convergence against the number of member clusters. For 1, 3 and 5 members,
//! each a fresh local cluster running a release build of fluxop that follows one signed
//! instance artifact: the time from publishing the instance to every member Ready (install),
//! and from publishing a bundle with a new Flux patch release to every member Ready on it
//! (upgrade). Run with `hack/bench.sh fleet`; prints figures, asserts nothing.

use std::time::{Duration, Instant};

use fluxop::{
    api::FluxInstance,
    bundle::{archive, reference::ArtifactRef, signature},
    controller::fleet,
};
use fluxop_e2e::{
    cluster::{OwnCluster, is_ready_at, wait_for_instance},
    fleet::{bundle_layer, instance_manifest, publish},
    registry_address, unique_repository,
};
use kube::Api;

async fn all_ready(members: &[OwnCluster], revision: &str) {
    for cluster in members {
        let api = Api::<FluxInstance>::namespaced(cluster.client().await, "flux-system");
        wait_for_instance(&api, Duration::from_secs(300), revision, |i| {
            is_ready_at(i, revision)
        })
        .await;
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        println!("fleet convergence (release build, one registry on loopback, 2 cores)");
        for size in [1usize, 3, 5] {
            let key = signature::generate_key_pair(b"").expect("key");
            let repository = unique_repository("fleet-bench");
            let bundle_tag = format!("oci://{}/{repository}/bundle:stable", registry_address());
            let instance_tag = format!("oci://{}/{repository}/instance:prod", registry_address());
            publish(&ArtifactRef::parse(&bundle_tag).expect("ref"), &bundle_layer(None), &key).await;
            let key_secret = format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: fleet-key\n  namespace: flux-system\nstringData:\n  cosign.pub: |\n{}\n",
                key.public_pem.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
            );
            let mut members = Vec::new();
            let mut operators = Vec::new();
            for i in 0..size {
                let cluster = OwnCluster::start(&format!("fleet{size}-{i}")).await;
                cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
                cluster.apply(&key_secret);
                operators.push(
                    cluster
                        .start_operator(
                            "flux-system",
                            &[
                                "--log-level", "warn",
                                "--insecure-registry", &registry_address(),
                                "--instance-from", &instance_tag,
                                "--instance-from-key-secret", "fleet-key",
                                "--instance-from-interval", "2s",
                            ],
                        )
                        .await,
                );
                members.push(cluster);
            }
            let started = Instant::now();
            let layer = archive::pack(&fleet::artifact_files(&instance_manifest(&bundle_tag, "one")));
            publish(&ArtifactRef::parse(&instance_tag).expect("ref"), &layer, &key).await;
            all_ready(&members, "v2.9.4@").await;
            let install = started.elapsed();
            let started = Instant::now();
            publish(&ArtifactRef::parse(&bundle_tag).expect("ref"), &bundle_layer(Some("v2.9.5")), &key).await;
            all_ready(&members, "v2.9.5@").await;
            let upgrade = started.elapsed();
            println!(
                "{size} member(s): instance published -> all Ready {:>6.1} s   new bundle published -> all Ready on it {:>6.1} s",
                install.as_secs_f64(),
                upgrade.as_secs_f64()
            );
            drop(operators);
            drop(members);
        }
    });
}
