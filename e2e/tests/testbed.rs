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

/// A DNS query for an A record of `name` to `server`; returns (rcode, first address).
fn dns_a(server: std::net::SocketAddr, name: &str) -> Option<(u8, Option<std::net::Ipv4Addr>)> {
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    socket.send_to(&query, server).ok()?;
    let mut answer = [0u8; 512];
    let n = socket.recv(&mut answer).ok()?;
    let rcode = answer[3] & 0x0f;
    let answers = u16::from_be_bytes([answer[6], answer[7]]);
    let address = (answers > 0 && n >= 4).then(|| {
        std::net::Ipv4Addr::new(answer[n - 4], answer[n - 3], answer[n - 2], answer[n - 1])
    });
    Some((rcode, address))
}

#[tokio::test]
async fn a_real_node_runs_pods_answers_only_cluster_dns_and_leaves_nothing_behind() {
    let name = format!("realnode-{}", std::process::id());
    let hack = fluxop_e2e::repo_root().join("hack");
    let state = fluxop_e2e::state_root().join("clusters").join(&name);
    let down = || {
        Command::new(hack.join("cluster-down.sh"))
            .arg(&name)
            .output()
            .expect("cluster-down runs")
    };
    // One kwok node beside the real one: it is tainted, so pods go to the real node.
    let up = Command::new(hack.join("cluster-up.sh"))
        .args([
            &name,
            "1",
            "--real-nodes",
            "1",
            "--registry",
            &registry_address(),
        ])
        .output()
        .expect("cluster-up runs");
    if !up.status.success() {
        down();
        panic!("cluster-up failed: {}", String::from_utf8_lossy(&up.stderr));
    }
    let env = std::fs::read_to_string(state.join("env")).expect("env file");
    let slot = std::fs::read_to_string(state.join("slot"))
        .expect("slot")
        .trim()
        .to_string();
    let cgroup = std::fs::read_to_string(state.join("nodes/0/cgroup"))
        .expect("cgroup")
        .trim()
        .to_string();
    let kubeconfig = String::from_utf8_lossy(&up.stdout).trim().to_string();
    let checks = async {
        let kubectl = |args: &[&str]| {
            let output = Command::new(std::env::var("FLUXOP_E2E_KUBECTL").expect("kubectl"))
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(args)
                .output()
                .expect("kubectl runs");
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        let taints = kubectl(&[
            "get",
            "node",
            "-l",
            "type=kwok",
            "-o",
            "jsonpath={.items[*].spec.taints[*].key}",
        ]);
        assert_eq!(taints, "kwok.x-k8s.io/node");
        // A pod without tolerations runs on the real node, from the test registry's image.
        let gateway = env
            .lines()
            .find_map(|l| l.strip_prefix("FLUXOP_CLUSTER_GATEWAY="))
            .expect("gateway");
        let app =
            std::env::var("FLUXOP_E2E_APP_IMAGE").expect("FLUXOP_E2E_APP_IMAGE (hack/test.sh)");
        let (registry, path) = app.split_once('/').expect("registry/path");
        let port = registry.rsplit(':').next().expect("port");
        let image = format!("{gateway}:{port}/{path}");
        kubectl(&["run", "probe", "--image", &image, "--restart=Never"]);
        let phase = eventually(Duration::from_secs(120), "the probe pod to run", || async {
            let out = kubectl(&[
                "get",
                "pod",
                "probe",
                "-o",
                "jsonpath={.status.phase} {.spec.nodeName}",
            ]);
            out.starts_with("Running").then_some(out)
        })
        .await;
        assert!(phase.ends_with(&format!("{name}-node-0")), "{phase}");
        // CoreDNS answers for the cluster domain and refuses everything else.
        let dns = kubectl(&[
            "get",
            "pod",
            "-n",
            "kube-system",
            "-l",
            "k8s-app=kube-dns",
            "-o",
            "jsonpath={.items[0].status.podIP}",
        ]);
        let server = format!("{dns}:1053").parse().expect("CoreDNS address");
        let (rcode, address) =
            dns_a(server, "kubernetes.default.svc.cluster.local").expect("answer");
        assert_eq!(
            (rcode, address),
            (0, Some(std::net::Ipv4Addr::new(10, 96, 0, 1)))
        );
        let (rcode, _) = dns_a(server, "example.com").expect("answer");
        assert_eq!(rcode, 5, "CoreDNS must refuse names outside the cluster");
        // No route out of the node's network namespace.
        let routes = Command::new("ip")
            .args(["-n", &format!("fxop{slot}-n0"), "route"])
            .output()
            .expect("ip runs");
        let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
        assert!(!routes.contains("default"), "{routes}");
    };
    // Stop the cluster whatever the checks say, then look for leftovers.
    let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(checks)).await;
    let stopped = down();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    let netns = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip")
            .stdout,
    )
    .into_owned();
    assert!(
        !netns.contains(&format!("fxop{slot}-")),
        "network namespace left: {netns}"
    );
    let links = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-o", "link"])
            .output()
            .expect("ip")
            .stdout,
    )
    .into_owned();
    assert!(
        !links.contains(&format!("fxop{slot}")),
        "host bridge or veth left: {links}"
    );
    let mounts = std::fs::read_to_string("/proc/mounts").expect("mounts");
    assert!(
        !mounts.contains(state.to_str().expect("path")),
        "mounts left:\n{mounts}"
    );
    let cgroups: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroups")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.path().join(&cgroup).exists() || e.path().join(format!("{cgroup}-system")).exists()
        })
        .map(|e| e.path())
        .collect();
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    let processes = Command::new("pgrep")
        .args(["-f", state.to_str().expect("path")])
        .output()
        .expect("pgrep");
    assert!(
        processes.stdout.is_empty(),
        "processes left: {}",
        String::from_utf8_lossy(&processes.stdout)
    );
    assert!(!state.exists(), "state left behind");
}

/// `hack/oci-image.py` gives the same digest for the same files (image catalogs are written
/// before anything is pushed), and a different one when a file changes.
#[test]
fn images_assembled_without_an_engine_are_reproducible() {
    let dir = std::env::temp_dir().join(format!("fluxop-oci-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let binary = dir.join("app");
    std::fs::write(&binary, b"#!/bin/sh\necho hello\n").expect("write");
    let build = |out: &str| {
        let output = Command::new("python3")
            .arg(fluxop_e2e::repo_root().join("hack/oci-image.py"))
            .args(["--out", dir.join(out).to_str().expect("path")])
            .args(["--name", "example.com/app:v1", "--entrypoint", "/app"])
            .arg(format!("{}:/app", binary.display()))
            .arg("+/tmp")
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    let first = build("a");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(build("b"), first, "same files, different digest");
    // The digest names the manifest blob, which names the config and the layer.
    let manifest = dir
        .join("a/blobs/sha256")
        .join(first.trim_start_matches("sha256:"));
    let text = std::fs::read_to_string(&manifest).expect("manifest blob");
    let manifest: serde_json::Value = serde_json::from_str(&text).expect("manifest json");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    std::fs::write(&binary, b"#!/bin/sh\necho changed\n").expect("write");
    assert_ne!(build("c"), first, "a changed file kept the digest");
    let _ = std::fs::remove_dir_all(&dir);
}
