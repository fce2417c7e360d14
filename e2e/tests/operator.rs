//! The fluxop binary and its install manifests against the real cluster.

use std::{process::Command, time::Duration};

use fluxop_e2e::{
    client,
    cluster::{OwnCluster, exclusive, http_get, http_get_bearer},
    ensure_crds, eventually, fluxop_bin, fresh_namespace, kubectl, repo_root,
};

async fn until_ready(health: std::net::SocketAddr) {
    eventually(
        Duration::from_secs(60),
        "fluxop /readyz to answer 200",
        || async { http_get(health, "/readyz").filter(|(status, _)| *status == 200) },
    )
    .await;
}

#[tokio::test]
async fn fluxop_started_against_the_cluster_reports_ready_and_serves_metrics() {
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("operator").await;
    let client = cluster.client().await;
    let namespace = fresh_namespace(&client, "operator").await;
    let operator = cluster.start_operator(&namespace, &[]).await;
    let (health, metrics) = (operator.health, operator.metrics);
    until_ready(health).await;
    let (status, _) = http_get(health, "/healthz").expect("healthz answers");
    assert_eq!(status, 200);
    let (status, body) = http_get(metrics, "/metrics").expect("metrics answers");
    assert_eq!(status, 200);
    assert!(body.contains("flux_operator_info{"), "{body}");
    assert!(
        body.trim_end().ends_with("# EOF"),
        "not OpenMetrics: {body}"
    );

    // The watch is live: an instance created now is observed and counted.
    let instance = format!(
        "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: {namespace}\n\
         spec:\n  distribution:\n    version: 2.x\n    registry: ghcr.io/fluxcd\n"
    );
    cluster.apply(&instance);
    eventually(
        Duration::from_secs(60),
        "a FluxInstance reconcile counted in /metrics",
        || async {
            let (_, body) = http_get(metrics, "/metrics")?;
            body.contains("fluxop_reconciles_total{kind=\"FluxInstance\",result=\"success\"}")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn with_metrics_auth_only_a_token_allowed_to_read_metrics_gets_them() {
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("metricsauth").await;
    let client = cluster.client().await;
    let namespace = fresh_namespace(&client, "metricsauth").await;
    // The reader role as shipped in deploy/rbac.yaml, bound to one of two ServiceAccounts.
    let rbac = std::fs::read_to_string(repo_root().join("deploy/rbac.yaml")).expect("rbac");
    let reader = rbac
        .split("\n---\n")
        .find(|doc| doc.contains("name: fluxop-metrics-reader"))
        .expect("deploy/rbac.yaml has fluxop-metrics-reader");
    cluster.apply(reader);
    for account in ["scraper", "nobody"] {
        cluster.kubectl_ok(&["create", "serviceaccount", account, "-n", &namespace]);
    }
    cluster.kubectl_ok(&[
        "create",
        "clusterrolebinding",
        "metricsauth-scraper",
        "--clusterrole=fluxop-metrics-reader",
        &format!("--serviceaccount={namespace}:scraper"),
    ]);
    let token = |account: &str| {
        cluster
            .kubectl_ok(&["create", "token", account, "-n", &namespace])
            .trim()
            .to_string()
    };
    let (scraper, nobody) = (token("scraper"), token("nobody"));
    let operator = cluster
        .start_operator(&namespace, &["--metrics-auth"])
        .await;
    let (health, metrics) = (operator.health, operator.metrics);
    until_ready(health).await;
    let (status, body) = http_get(metrics, "/metrics").expect("answers");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("bearer token"), "{body}");
    let (status, body) = http_get_bearer(metrics, "/metrics", "not-a-token").expect("answers");
    assert_eq!(status, 401, "{body}");
    let (status, body) = http_get_bearer(metrics, "/metrics", &nobody).expect("answers");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("fluxop-metrics-reader"), "{body}");
    let (status, body) = http_get_bearer(metrics, "/metrics", &scraper).expect("answers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("flux_operator_info{"), "{body}");
    // Not around it through the health port either; probes need no token.
    let (status, _) = http_get(health, "/metrics").expect("answers");
    assert_eq!(status, 401);
    assert_eq!(http_get(health, "/healthz").map(|(s, _)| s), Some(200));
}

#[tokio::test]
async fn fluxop_exits_with_a_clear_error_when_no_cluster_is_reachable() {
    let output = Command::new(fluxop_bin())
        .args([
            "run",
            "--health-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("KUBECONFIG", repo_root().join("does-not-exist.kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("fluxop runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot load a Kubernetes config"),
        "{stderr}"
    );
}

#[tokio::test]
async fn deploy_manifests_are_accepted_by_a_server_side_dry_run() {
    let client = client().await;
    ensure_crds(&client).await;
    // A dry run creates nothing, so the namespaced objects need their namespace to exist.
    let namespace = kubectl()
        .args([
            "apply",
            "--server-side",
            "--field-manager",
            "fluxop-e2e",
            "-f",
        ])
        .arg(repo_root().join("deploy/namespace.yaml"))
        .output()
        .expect("kubectl runs");
    assert!(
        namespace.status.success(),
        "{}",
        String::from_utf8_lossy(&namespace.stderr)
    );
    let output = kubectl()
        .args([
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager",
            "fluxop-e2e",
            "-k",
        ])
        .arg(repo_root().join("deploy"))
        .output()
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "dry run failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    for object in [
        "namespace/flux-system",
        "serviceaccount/fluxop",
        "deployment.apps/fluxop",
        "clusterrolebinding.rbac.authorization.k8s.io/fluxop",
    ] {
        assert!(
            stdout.contains(object),
            "{object} missing from the deploy kustomization:\n{stdout}"
        );
    }
}

/// Waits until the instance's Ready condition has `reason`; returns (status, message, instance).
async fn wait_for_ready_reason(
    api: &kube::Api<fluxop::api::FluxInstance>,
    reason: &str,
) -> (String, String, fluxop::api::FluxInstance) {
    eventually(
        Duration::from_secs(120),
        &format!("Ready reason {reason}"),
        || async {
            let instance = api.get("flux").await.ok()?;
            let ready = instance
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            (ready.reason == reason).then_some((ready.status, ready.message, instance))
        },
    )
    .await
}

#[tokio::test]
async fn the_operator_verifies_the_bundle_and_reports_the_chosen_version_in_conditions() {
    use fluxop::bundle::{
        archive,
        layout::Bundle,
        reference::ArtifactRef,
        registry::{Credentials, Registry, RegistryConfig},
        signature,
    };
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("source").await;
    let client = cluster.client().await;
    let namespace = fresh_namespace(&client, "source").await;
    let registry_address = fluxop_e2e::registry_address();

    // A signed bundle, and a key pair that did not sign it.
    let registry_config = RegistryConfig {
        insecure: vec![registry_address.clone()],
        ..RegistryConfig::default()
    };
    let registry = Registry::new(registry_config.clone(), Credentials::Anonymous);
    let files = archive::read_dir(&repo_root().join("manifests-bundle")).unwrap();
    let bundle = Bundle::from_files(files).unwrap();
    let reference = format!(
        "oci://{registry_address}/{}:stable",
        fluxop_e2e::unique_repository("operator")
    );
    let tag = ArtifactRef::parse(&reference).unwrap();
    let digest = registry
        .push(&tag, &archive::pack(bundle.files()), Default::default())
        .await
        .unwrap();
    let (signer, other) = (
        signature::generate_key_pair(b"").unwrap(),
        signature::generate_key_pair(b"").unwrap(),
    );
    signature::sign(
        &registry,
        &tag.with_digest(&digest),
        signer.private_pem.as_bytes(),
        b"",
    )
    .await
    .unwrap();
    let secret = |name: &str, public_pem: &str| {
        let indented = public_pem
            .lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\nstringData:\n  cosign.pub: |\n{indented}\n"
        )
    };
    cluster.apply(&secret("signer", &signer.public_pem));
    cluster.apply(&secret("other", &other.public_pem));
    let instance = |version: &str, secret: &str, artifact: &str| {
        let artifact = if artifact.is_empty() {
            String::new()
        } else {
            format!("    artifact: {artifact}\n")
        };
        let verify = if secret.is_empty() {
            String::new()
        } else {
            format!(
                "    verify:\n      provider: cosign\n      secretRef:\n        name: {secret}\n"
            )
        };
        format!(
            "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: {namespace}\n\
             spec:\n  distribution:\n    version: \"{version}\"\n    registry: ghcr.io/fluxcd\n{artifact}{verify}"
        )
    };

    let _operator = cluster
        .start_operator(&namespace, &["--insecure-registry", &registry_address])
        .await;
    let api = kube::Api::<fluxop::api::FluxInstance>::namespaced(client.clone(), &namespace);

    // Signed with the trusted key: the highest 2.8 release is installed, the digest recorded.
    cluster.apply(&instance("2.8.x", "signer", &reference));
    let (status, message, found) = wait_for_ready_reason(&api, "ReconciliationSucceeded").await;
    assert_eq!(status, "True");
    assert!(message.contains("Flux v2.8.8 is installed"), "{message}");
    assert_eq!(
        found.status.unwrap().last_artifact_revision.as_deref(),
        Some(digest.as_str())
    );

    // Trusting another key: refused, with the artifact named.
    cluster.apply(&instance("2.8.x", "other", &reference));
    let (status, message, _) = wait_for_ready_reason(&api, "VerificationFailed").await;
    assert_eq!(status, "False");
    assert!(
        message.contains("by no key that verifies") && message.contains(&digest),
        "{message}"
    );

    // A version the bundle does not have: terminal, Stalled.
    cluster.apply(&instance("2.10.x", "signer", &reference));
    let (_, message, found) = wait_for_ready_reason(&api, "BuildFailed").await;
    assert!(
        message.contains("no Flux version in the bundle satisfies \"2.10.x\""),
        "{message}"
    );
    let stalled = found
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Stalled");
    assert_eq!(stalled.map(|c| c.status), Some("True".to_string()));

    // No artifact: the bundle embedded in the binary.
    cluster.apply(&instance("2.9.x", "", ""));
    let (_, message, _) = wait_for_ready_reason(&api, "ReconciliationSucceeded").await;
    assert!(message.contains("Flux v2.9.4 is installed"), "{message}");

    // Every transition left an Event on the instance.
    let events = cluster
        .kubectl()
        .args([
            "get",
            "events",
            "-n",
            &namespace,
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .output()
        .unwrap();
    let reasons = String::from_utf8_lossy(&events.stdout);
    for reason in [
        "ReconciliationSucceeded",
        "VerificationFailed",
        "BuildFailed",
        "OutdatedVersion",
    ] {
        assert!(
            reasons.contains(reason),
            "no {reason} event among: {reasons}"
        );
    }
}

#[tokio::test]
async fn the_operator_reads_registry_credentials_and_ca_from_secrets() {
    use base64::Engine;
    use fluxop::bundle::{
        archive,
        layout::Bundle,
        reference::ArtifactRef,
        registry::{Credentials, Registry, RegistryConfig},
    };
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("secrets").await;
    let client = cluster.client().await;
    let namespace = fresh_namespace(&client, "secrets").await;
    let own =
        fluxop_e2e::OwnRegistry::start("operator-tls", &["--tls", "--basic-auth", "puller:pa55"]);
    let ca = std::fs::read_to_string(&own.ca).unwrap();

    // Publish with the credentials the operator will get from the artifactPullSecret.
    let credentials = Credentials::Basic {
        username: "puller".into(),
        password: "pa55".into(),
    };
    let config = RegistryConfig {
        ca_pem: vec![ca.clone().into_bytes()],
        ..RegistryConfig::default()
    };
    let reference = format!("oci://{}/flux/bundle:v1", own.address);
    let files = archive::read_dir(&repo_root().join("manifests-bundle")).unwrap();
    let layer = archive::pack(Bundle::from_files(files).unwrap().files());
    let digest = Registry::new(config, credentials)
        .push(
            &ArtifactRef::parse(&reference).unwrap(),
            &layer,
            Default::default(),
        )
        .await
        .expect("push");

    let auth = base64::engine::general_purpose::STANDARD.encode("puller:pa55");
    let docker_config = format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, own.address);
    let indent = |text: &str| {
        text.lines()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    cluster.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: registry-ca\n  namespace: {namespace}\nstringData:\n  ca.crt: |\n{}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: pull\n  namespace: {namespace}\ntype: kubernetes.io/dockerconfigjson\n\
         stringData:\n  .dockerconfigjson: '{docker_config}'\n",
        indent(&ca)
    ));
    let instance = |pull_secret: &str| {
        format!(
            "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: {namespace}\n\
             spec:\n  distribution:\n    version: \"2.9.x\"\n    registry: ghcr.io/fluxcd\n    artifact: {reference}\n{pull_secret}"
        )
    };
    let api = kube::Api::<fluxop::api::FluxInstance>::namespaced(client.clone(), &namespace);

    // The operator trusts the CA from its Secret; without the pull secret it is refused.
    let _operator = cluster
        .start_operator(&namespace, &["--registry-ca-secret", "registry-ca"])
        .await;
    cluster.apply(&instance(""));
    let (status, message, _) = wait_for_ready_reason(&api, "ArtifactFailed").await;
    assert_eq!(status, "False");
    assert!(message.contains("check the credentials"), "{message}");

    // With the artifactPullSecret the bundle is fetched.
    cluster.apply(&instance("    artifactPullSecret: pull\n"));
    let (_, message, found) = wait_for_ready_reason(&api, "ReconciliationSucceeded").await;
    assert!(message.contains("Flux v2.9.4 is installed"), "{message}");
    assert_eq!(found.status.unwrap().last_artifact_revision, Some(digest));
}

/// Leader election on observed time: a leader paused with SIGSTOP past its lease is replaced
/// by the standby, and once resumed it steps down without writing the lease again (its renew
/// deadline passed by its own monotonic clock), so the two never both lead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_is_replaced_and_never_writes_again_once_resumed() {
    use fluxop_e2e::leader::{FAST_LEASE, LEASE, Replica, holder, lease_writes};
    use k8s_openapi::api::coordination::v1::Lease;

    let client = client().await;
    ensure_crds(&client).await;
    let namespace = fresh_namespace(&client, "leader-pause").await;
    let leases = kube::Api::<Lease>::namespaced(client.clone(), &namespace);

    let mut a = Replica::start(&namespace, "replica-a").await;
    eventually(Duration::from_secs(30), "replica-a to lead", || async {
        (a.leads()? && holder(&leases).await? == "replica-a").then_some(())
    })
    .await;
    let b = Replica::start(&namespace, "replica-b").await;
    // A live leader is not taken over: two lease durations with the standby standing by.
    let until = tokio::time::Instant::now() + 2 * FAST_LEASE;
    while tokio::time::Instant::now() < until {
        assert_eq!(
            b.leads(),
            Some(false),
            "the standby leads beside a live leader"
        );
        assert_eq!(a.leads(), Some(true));
        assert_eq!(holder(&leases).await.as_deref(), Some("replica-a"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    a.pause();
    let paused = std::time::Instant::now();
    eventually(
        Duration::from_secs(30),
        "replica-b to take the lease over",
        || async { (b.leads()? && holder(&leases).await? == "replica-b").then_some(()) },
    )
    .await;
    let takeover = paused.elapsed();
    // Not before the record stood still for a lease duration (less the renew period it may
    // have been unchanged already), and about one lease duration after.
    assert!(
        takeover >= FAST_LEASE - Duration::from_secs(1)
            && takeover < FAST_LEASE + Duration::from_secs(3),
        "taken over after {takeover:?}"
    );
    let taken = leases.get(LEASE).await.expect("the lease");
    let transitions = taken.spec.as_ref().and_then(|s| s.lease_transitions);
    // Every write from here on, seen by a watch from this resourceVersion.
    let writes = tokio::spawn(lease_writes(
        client.clone(),
        namespace.clone(),
        taken
            .metadata
            .resource_version
            .clone()
            .expect("resourceVersion"),
        Duration::from_secs(12),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    a.resume();
    let resumed = tokio::time::Instant::now();
    let status = loop {
        if let Some(status) = a.exited() {
            break status;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(10),
            "the resumed replica-a still runs 10s later:\n{}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(1), "{status:?}");
    let log = a.log_text();
    let stepped_down = log
        .lines()
        .find(|l| l.contains("stopped leading"))
        .unwrap_or_else(|| panic!("replica-a never said it stopped leading:\n{log}"));
    assert!(
        stepped_down.contains("past the renew deadline"),
        "{stepped_down}"
    );
    assert_eq!(log.matches("became the leader").count(), 1, "{log}");
    assert!(!log.contains("released the lease"), "{log}");

    let holders = writes.await.expect("the lease watch");
    assert!(
        holders.len() >= 10,
        "replica-b renews every 500ms: {holders:?}"
    );
    assert!(
        holders.iter().all(|h| h.as_deref() == Some("replica-b")),
        "someone but replica-b wrote the lease: {holders:?}"
    );
    let after = leases.get(LEASE).await.expect("the lease");
    assert_eq!(
        after.spec.as_ref().and_then(|s| s.lease_transitions),
        transitions
    );
    assert_eq!(b.leads(), Some(true));
    println!(
        "paused leader taken over after {takeover:?}; resumed, it exited ({status}) saying \
         {stepped_down}; {} lease writes in 12 s from the takeover on, all by replica-b",
        holders.len()
    );
}

/// A leader whose renew finds the lease held by someone else stops at once: it does not
/// wait for its renew deadline, and writes nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_finds_its_lease_taken_stops_at_once() {
    use fluxop_e2e::leader::{LEASE, Replica, holder};
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::PostParams;

    let client = client().await;
    ensure_crds(&client).await;
    let namespace = fresh_namespace(&client, "leader-taken").await;
    let leases = kube::Api::<Lease>::namespaced(client.clone(), &namespace);
    let mut a = Replica::start(&namespace, "replica-a").await;
    eventually(Duration::from_secs(30), "replica-a to lead", || async {
        (a.leads()? && holder(&leases).await? == "replica-a").then_some(())
    })
    .await;
    // Someone else takes the lease: a compare-and-swap, retried should replica-a renew
    // between our read and our write.
    let mut attempts = 0;
    loop {
        let mut lease = leases.get(LEASE).await.expect("the lease");
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = Some("intruder".into());
        }
        match leases.replace(LEASE, &PostParams::default(), &lease).await {
            Ok(_) => break,
            Err(kube::Error::Api(status)) if status.code == 409 && attempts < 10 => attempts += 1,
            Err(error) => panic!("taking the lease: {error}"),
        }
    }
    let taken = tokio::time::Instant::now();
    let status = loop {
        if let Some(status) = a.exited() {
            break status;
        }
        assert!(
            taken.elapsed() < Duration::from_secs(2),
            "replica-a still runs 2s after its lease was taken (its renew deadline is 2s, it \
             renews every 500ms):\n{}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stopped_after = taken.elapsed();
    assert_eq!(status.code(), Some(1), "{status:?}");
    let log = a.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("stopped leading") && l.contains("the lease is held by intruder")),
        "{log}"
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("intruder"));
    println!("replica-a stopped leading {stopped_after:?} after its lease was taken");
}

/// Leader election never compares another replica's wall clock with its own: a peer whose
/// renewTime is an hour ahead or an hour behind (a skewed clock) is not taken over while it
/// renews, and is taken over about one lease duration after it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_leader_is_neither_taken_over_while_it_renews_nor_waited_for_once_it_stops() {
    use std::sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    };

    use fluxop_e2e::leader::{FAST_LEASE, LEASE, Replica, holder};
    use k8s_openapi::{
        api::coordination::v1::{Lease, LeaseSpec},
        apimachinery::pkg::apis::meta::v1::MicroTime,
        jiff::{SignedDuration, Timestamp},
    };
    use kube::api::{ObjectMeta, PostParams};

    let client = client().await;
    ensure_crds(&client).await;
    let namespace = fresh_namespace(&client, "leader-skew").await;
    let leases = kube::Api::<Lease>::namespaced(client.clone(), &namespace);

    // The skewed peer: holds the lease and renews it every second, writing its own clock's
    // time: `skew` seconds off; a skew of i64::MIN stops it (it died).
    const STOPPED: i64 = i64::MIN;
    let skew = Arc::new(AtomicI64::new(3600));
    let spec = |skew: i64| LeaseSpec {
        holder_identity: Some("skewed-peer".into()),
        lease_duration_seconds: Some(FAST_LEASE.as_secs() as i32),
        renew_time: Some(MicroTime(
            Timestamp::now()
                .checked_add(SignedDuration::from_secs(skew))
                .expect("time"),
        )),
        lease_transitions: Some(0),
        ..LeaseSpec::default()
    };
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(LEASE.into()),
            ..ObjectMeta::default()
        },
        spec: Some(spec(3600)),
    };
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create the peer's lease");
    let peer = {
        let (leases, skew) = (leases.clone(), skew.clone());
        // Returns when its last write was acknowledged.
        tokio::spawn(async move {
            let mut last_write = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let skew = skew.load(Ordering::SeqCst);
                if skew == STOPPED {
                    return last_write;
                }
                let mut lease = leases.get(LEASE).await.expect("the lease");
                lease.spec = Some(spec(skew));
                leases
                    .replace(LEASE, &PostParams::default(), &lease)
                    .await
                    .expect("the peer renews (nobody else may have written)");
                last_write = std::time::Instant::now();
            }
        })
    };

    let b = Replica::start(&namespace, "replica-b").await;
    for offset in [-3600, 3600] {
        skew.store(offset, Ordering::SeqCst);
        let until = tokio::time::Instant::now() + 2 * FAST_LEASE + Duration::from_secs(2);
        while tokio::time::Instant::now() < until {
            assert_eq!(
                b.leads(),
                Some(false),
                "replica-b leads beside a live peer whose clock is {offset}s off"
            );
            assert_eq!(holder(&leases).await.as_deref(), Some("skewed-peer"));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // The peer dies, its last renewTime an hour ahead of this machine's clock. The standby
    // takes over once that record has stood still for a lease duration (it may have seen
    // the write a moment before it was acknowledged here), and not much later.
    skew.store(STOPPED, Ordering::SeqCst);
    let stopped = peer.await.expect("the peer stops");
    eventually(
        Duration::from_secs(30),
        "replica-b to take the dead peer's lease over",
        || async { (b.leads()? && holder(&leases).await? == "replica-b").then_some(()) },
    )
    .await;
    let takeover = stopped.elapsed();
    assert!(
        takeover >= FAST_LEASE - Duration::from_millis(250)
            && takeover < FAST_LEASE + Duration::from_secs(3),
        "taken over {takeover:?} after the peer's last write (lease {FAST_LEASE:?})"
    );
    let log = b.log_text();
    assert!(log.contains("skewed-peer"), "{log}");
    println!("the dead skewed peer's lease taken over {takeover:?} after its last write");
}
