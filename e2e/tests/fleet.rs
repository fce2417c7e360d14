//! Pull-based fleets on several real clusters: every member's fluxop takes its FluxInstance
//! from one signed instance artifact and its Flux from one signed bundle channel. Publishing
//! a bundle with a new Flux patch release moves every member; a mis-signed instance artifact
//! is refused everywhere; a properly signed one is applied everywhere.

use std::time::{Duration, Instant};

use fluxop::{
    api::FluxInstance,
    bundle::{archive, reference::ArtifactRef, signature},
    controller::fleet,
};
use fluxop_e2e::{
    cluster::{Operator, OwnCluster, exclusive, is_ready_at, wait_for_instance},
    fleet::{bundle_layer, instance_manifest, publish},
    registry_address, unique_repository,
};
use kube::Api;

const MEMBERS: usize = 3;

async fn wait_all(
    members: &[(OwnCluster, Operator)],
    what: &str,
    check: impl Fn(&FluxInstance) -> bool + Copy,
) {
    for (cluster, _) in members {
        let api = Api::<FluxInstance>::namespaced(cluster.client().await, "flux-system");
        wait_for_instance(
            &api,
            Duration::from_secs(180),
            &format!("{what} on {}", cluster.name),
            check,
        )
        .await;
    }
}

#[tokio::test]
async fn members_follow_one_signed_instance_and_bundle_channel() {
    let _clusters_of_this_test = exclusive().await;
    let key = signature::generate_key_pair(b"").expect("key");
    let stranger = signature::generate_key_pair(b"").expect("key");
    let repository = unique_repository("fleet");
    let bundle_tag = format!("oci://{}/{repository}/bundle:stable", registry_address());
    let instance_tag = format!("oci://{}/{repository}/instance:prod", registry_address());
    publish(
        &ArtifactRef::parse(&bundle_tag).unwrap(),
        &bundle_layer(None),
        &key,
    )
    .await;
    let instance_ref = ArtifactRef::parse(&instance_tag).unwrap();
    let instance_layer = |label: &str| {
        archive::pack(&fleet::artifact_files(&instance_manifest(
            &bundle_tag,
            label,
        )))
    };
    publish(&instance_ref, &instance_layer("one"), &key).await;

    // Members: a cluster each, with the public key and a fluxop following the instance.
    let key_secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: fleet-key\n  namespace: flux-system\nstringData:\n  cosign.pub: |\n{}\n",
        key.public_pem
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let mut members = Vec::new();
    for i in 0..MEMBERS {
        let cluster = OwnCluster::start(&format!("member{i}")).await;
        cluster.kubectl_ok(&["create", "namespace", "flux-system"]);
        cluster.apply(&key_secret);
        let operator = cluster
            .start_operator(
                "flux-system",
                &[
                    "--insecure-registry",
                    &registry_address(),
                    "--instance-from",
                    &instance_tag,
                    "--instance-from-key-secret",
                    "fleet-key",
                    "--instance-from-interval",
                    "2s",
                ],
            )
            .await;
        members.push((cluster, operator));
    }
    wait_all(&members, "Flux 2.9.4 from the fleet artifacts", |i| {
        is_ready_at(i, "v2.9.4@")
    })
    .await;

    // A new Flux patch release on the channel: every member moves to it.
    let published = Instant::now();
    publish(
        &ArtifactRef::parse(&bundle_tag).unwrap(),
        &bundle_layer(Some("v2.9.5")),
        &key,
    )
    .await;
    wait_all(&members, "the new patch release", |i| {
        is_ready_at(i, "v2.9.5@")
    })
    .await;
    println!(
        "timing: bundle published to all {MEMBERS} members Ready on v2.9.5 in {:?}",
        published.elapsed()
    );

    // An instance signed by someone else is refused by every member: nothing changes.
    let generations: Vec<Option<i64>> = {
        let mut generations = Vec::new();
        for (cluster, _) in &members {
            let api = Api::<FluxInstance>::namespaced(cluster.client().await, "flux-system");
            generations.push(api.get("flux").await.expect("get").metadata.generation);
        }
        generations
    };
    publish(&instance_ref, &instance_layer("mis-signed"), &stranger).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    for ((cluster, _), generation) in members.iter().zip(&generations) {
        let api = Api::<FluxInstance>::namespaced(cluster.client().await, "flux-system");
        let instance = api.get("flux").await.expect("get");
        assert_eq!(
            &instance.metadata.generation, generation,
            "{} applied a mis-signed instance",
            cluster.name
        );
    }

    // Properly signed: applied everywhere, and the change reaches the Flux objects.
    let published = Instant::now();
    publish(&instance_ref, &instance_layer("two"), &key).await;
    wait_all(&members, "the new instance", |i| {
        i.spec
            .common_metadata
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get("fleet.example.com/wave"))
            .is_some_and(|w| w == "two")
            && is_ready_at(i, "v2.9.5@")
    })
    .await;
    println!(
        "timing: instance published to all {MEMBERS} members Ready in {:?}",
        published.elapsed()
    );
    for (cluster, _) in &members {
        let labels = cluster.kubectl_ok(&[
            "get",
            "deployment/source-controller",
            "-n",
            "flux-system",
            "-o",
            "jsonpath={.metadata.labels.fleet\\.example\\.com/wave}",
        ]);
        assert_eq!(labels.trim(), "two", "{}", cluster.name);
    }
}
