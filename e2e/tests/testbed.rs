//! The test bed itself: the local cluster runs workloads and the registry serves the OCI
//! distribution API, so later tiers can trust them.

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::Command,
    time::Duration,
};

use fluxop_e2e::{client, eventually, fresh_namespace, registry_address};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Node};
use kube::{
    Api,
    api::{ListParams, PostParams},
};

#[tokio::test]
async fn a_deployment_becomes_available_on_kwok_nodes() {
    let client = client().await;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    assert!(
        nodes.items.len() >= 2,
        "expected several kwok nodes, found {}",
        nodes.items.len()
    );

    let namespace = fresh_namespace(&client, "deploy").await;
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "registry.invalid/web:1" }] }
            }
        }
    }))
    .unwrap();
    let api = Api::<Deployment>::namespaced(client.clone(), &namespace);
    api.create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    eventually(
        Duration::from_secs(90),
        "Deployment web Available with 2 ready replicas",
        || async {
            let d = api.get("web").await.ok()?;
            let status = d.status?;
            let available = status
                .conditions?
                .iter()
                .any(|c| c.type_ == "Available" && c.status == "True");
            (available && status.ready_replicas == Some(2)).then_some(())
        },
    )
    .await;
}

#[test]
fn registry_serves_the_oci_distribution_api_on_loopback() {
    let address = registry_address();
    assert!(
        address.starts_with("127.0.0.1:"),
        "registry must listen on loopback, got {address}"
    );
    let mut stream = TcpStream::connect(&address).expect("registry accepts connections");
    write!(stream, "GET /v2/ HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert_eq!(
        response.split_whitespace().nth(1),
        Some("200"),
        "{response}"
    );
    assert!(
        response
            .to_ascii_lowercase()
            .contains("docker-distribution-api-version: registry/2.0"),
        "{response}"
    );
}

#[tokio::test]
async fn a_second_cluster_starts_beside_the_first_and_stops_cleanly() {
    let first = fluxop_e2e::kubeconfig_path();
    let name = format!("second-{}", std::process::id());
    let hack = fluxop_e2e::repo_root().join("hack");
    let up = Command::new(hack.join("cluster-up.sh"))
        .args([&name, "1"])
        .output()
        .expect("cluster-up runs");
    let stopped = || {
        Command::new(hack.join("cluster-down.sh"))
            .arg(&name)
            .output()
            .expect("cluster-down runs")
    };
    if !up.status.success() {
        stopped();
        panic!(
            "second cluster failed to start: {}",
            String::from_utf8_lossy(&up.stderr)
        );
    }
    let second = String::from_utf8_lossy(&up.stdout).trim().to_string();
    assert_ne!(second, first.display().to_string());
    let server = |path: &str| -> String {
        let text = std::fs::read_to_string(path).expect("kubeconfig");
        text.lines()
            .find_map(|l| l.trim().strip_prefix("server: ").map(str::to_string))
            .expect("server line")
    };
    assert_ne!(
        server(&second),
        server(&first.display().to_string()),
        "both clusters share an API server"
    );
    let nodes = Command::new(std::env::var("FLUXOP_E2E_KUBECTL").expect("kubectl"))
        .args(["--kubeconfig", &second, "get", "nodes", "-o", "name"])
        .output()
        .expect("kubectl runs");
    let down = stopped();
    assert_eq!(
        String::from_utf8_lossy(&nodes.stdout).trim(),
        "node/kwok-node-0"
    );
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(
        !std::path::Path::new(&second).exists(),
        "cluster-down left its state behind"
    );
    // The first cluster is untouched.
    let nodes = Api::<Node>::all(client().await)
        .list(&ListParams::default())
        .await
        .expect("first cluster answers");
    assert!(!nodes.items.is_empty());
}
