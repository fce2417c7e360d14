//! Signed OCI bundles against a real registry on loopback: round trip, refusals of bad or
//! tampered artifacts, interoperability with the cosign CLI, and clear errors.

use std::{collections::BTreeMap, path::PathBuf, process::Command};

use fluxop::bundle::{
    FLUX_VERSIONS_ANNOTATION,
    archive::{self, Limits},
    layout::Bundle,
    reference::ArtifactRef,
    registry::{self, Credentials, Registry, RegistryConfig},
    signature::{self, generate_key_pair},
};
use fluxop_e2e::{
    OwnRegistry, fluxop, registry_address, registry_data_dir, repo_root, unique_repository,
};

const PASSWORD: &[u8] = b"e2e-password";

fn config() -> RegistryConfig {
    RegistryConfig {
        insecure: vec![registry_address()],
        ..RegistryConfig::default()
    }
}

fn artifact(repository: &str, tag: &str) -> ArtifactRef {
    ArtifactRef::parse(&format!("oci://{}/{repository}:{tag}", registry_address()))
        .expect("reference")
}

fn vendored_bundle() -> Bundle {
    let files = archive::read_dir(&repo_root().join("manifests-bundle"))
        .expect("hack/vendor-flux.sh has run");
    Bundle::from_files(files).expect("vendored bundle is valid")
}

/// Pushes `bundle` and returns the reference pinned to its digest.
async fn push(registry: &Registry, target: &ArtifactRef, bundle: &Bundle) -> ArtifactRef {
    let layer = archive::pack(bundle.files());
    let digest = registry
        .push(target, &layer, BTreeMap::new())
        .await
        .expect("push");
    target.with_digest(&digest)
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);
impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("fluxop-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        Self(path)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn round_trip_build_push_sign_verify_pull_gives_back_the_same_tree() {
    let registry = Registry::new(config(), Credentials::Anonymous);
    let bundle = vendored_bundle();
    let keys = generate_key_pair(PASSWORD).unwrap();
    let target = artifact(&unique_repository("roundtrip"), "latest");
    let pinned = push(&registry, &target, &bundle).await;
    // The same input pushes to the same digest.
    assert_eq!(push(&registry, &target, &bundle).await, pinned);

    signature::sign(&registry, &pinned, keys.private_pem.as_bytes(), PASSWORD)
        .await
        .expect("sign");
    signature::verify(&registry, &pinned, keys.public_pem.as_bytes())
        .await
        .expect("verify");

    assert_eq!(
        registry.resolve(&target).await.unwrap(),
        pinned.digest.clone().unwrap()
    );
    let pulled = registry.pull(&pinned).await.expect("pull");
    let files = archive::unpack(&pulled.layer, &Limits::default()).expect("unpack");
    assert_eq!(
        &files,
        bundle.files(),
        "the pulled tree differs from the pushed one"
    );
}

#[tokio::test]
async fn the_cli_round_trip_leaves_an_identical_directory() {
    let work = TempDir::new("cli");
    let prefix = work.0.join("cosign");
    let keygen = Command::new(fluxop_e2e::fluxop_bin())
        .args([
            "bundle",
            "keygen",
            "--output-key-prefix",
            prefix.to_str().unwrap(),
        ])
        .env("COSIGN_PASSWORD", "cli")
        .output()
        .unwrap();
    assert!(
        keygen.status.success(),
        "{}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let bundle_dir = repo_root().join("manifests-bundle");
    let reference = format!(
        "oci://{}/{}:v1",
        registry_address(),
        unique_repository("cli")
    );
    let pinned = fluxop(&[
        "bundle",
        "push",
        bundle_dir.to_str().unwrap(),
        &reference,
        "--insecure",
    ])
    .trim()
    .to_string();
    assert!(
        pinned.starts_with(&reference) && pinned.contains("@sha256:"),
        "{pinned}"
    );
    let key = format!("{}.key", prefix.display());
    let public = format!("{}.pub", prefix.display());
    let sign = Command::new(fluxop_e2e::fluxop_bin())
        .args(["bundle", "sign", "--key", &key, "--insecure", &pinned])
        .env("COSIGN_PASSWORD", "cli")
        .output()
        .unwrap();
    assert!(
        sign.status.success(),
        "{}",
        String::from_utf8_lossy(&sign.stderr)
    );
    let out = work.0.join("pulled");
    fluxop(&[
        "bundle",
        "pull",
        "--insecure",
        "--key",
        &public,
        &reference,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        archive::read_dir(&out).unwrap(),
        archive::read_dir(&bundle_dir).unwrap()
    );
    let listing = fluxop(&[
        "bundle",
        "list",
        "--insecure",
        "-o",
        "json",
        &reference[..reference.len() - 3],
    ]);
    let rows: serde_json::Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(rows[0]["tag"], "v1");
    assert_eq!(rows[0]["signed"], true);
    assert_eq!(
        rows[0]["fluxVersions"],
        serde_json::json!(["v2.6.4", "v2.7.5", "v2.8.8", "v2.9.4"])
    );
}

#[tokio::test]
async fn a_bundle_signed_with_another_key_is_refused_and_nothing_is_unpacked() {
    let registry = Registry::new(config(), Credentials::Anonymous);
    let (signer, other) = (
        generate_key_pair(PASSWORD).unwrap(),
        generate_key_pair(PASSWORD).unwrap(),
    );
    let pinned = push(
        &registry,
        &artifact(&unique_repository("otherkey"), "v1"),
        &vendored_bundle(),
    )
    .await;
    signature::sign(&registry, &pinned, signer.private_pem.as_bytes(), PASSWORD)
        .await
        .unwrap();
    let error = signature::verify(&registry, &pinned, other.public_pem.as_bytes())
        .await
        .expect_err("another key must not verify");
    let message = error.to_string();
    assert!(
        message.contains(&pinned.to_string()) && message.contains("by no key that verifies"),
        "{message}"
    );

    // Through the CLI, the refusal happens before anything is written.
    let work = TempDir::new("otherkey");
    std::fs::write(work.0.join("other.pub"), &other.public_pem).unwrap();
    let out = work.0.join("out");
    let pull = Command::new(fluxop_e2e::fluxop_bin())
        .args(["bundle", "pull", "--insecure", "--key"])
        .arg(work.0.join("other.pub"))
        .args([&pinned.to_string(), "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(pull.status.code(), Some(1));
    assert!(!out.exists(), "a refused bundle was unpacked");
}

#[tokio::test]
async fn an_unsigned_bundle_is_refused_with_a_message_naming_it() {
    let registry = Registry::new(config(), Credentials::Anonymous);
    let keys = generate_key_pair(PASSWORD).unwrap();
    let pinned = push(
        &registry,
        &artifact(&unique_repository("unsigned"), "v1"),
        &vendored_bundle(),
    )
    .await;
    let error = signature::verify(&registry, &pinned, keys.public_pem.as_bytes())
        .await
        .expect_err("unsigned must not verify");
    let message = error.to_string();
    assert!(
        message.contains(&format!("{pinned} is not signed")),
        "{message}"
    );
    assert!(
        message.contains(".sig"),
        "the message names where the signature was looked for: {message}"
    );
}

#[tokio::test]
async fn a_bundle_changed_after_signing_is_refused() {
    let registry = Registry::new(config(), Credentials::Anonymous);
    let keys = generate_key_pair(PASSWORD).unwrap();
    let repository = unique_repository("tampered");
    let tag = artifact(&repository, "stable");
    // A layer of its own: the registry stores blobs by digest across repositories, and this
    // test corrupts the stored blob below.
    let own = own_bundle(&repository);
    let signed = push(&registry, &tag, &own).await;
    signature::sign(&registry, &signed, keys.private_pem.as_bytes(), PASSWORD)
        .await
        .unwrap();

    // 1. The tag is moved to different content: that digest has no signature.
    let mut files = own.files().clone();
    files.insert(
        "flux/v2.9.4/rbac.yaml".into(),
        b"# replaced after signing\n".to_vec(),
    );
    let replaced = push(&registry, &tag, &Bundle::from_files(files).unwrap()).await;
    let moved = tag.with_digest(&registry.resolve(&tag).await.unwrap());
    assert_eq!(moved, replaced);
    let error = signature::verify(&registry, &moved, keys.public_pem.as_bytes())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is not signed"), "{error}");

    // 2. The old signature is copied to the new digest's signature tag: its payload names the
    //    old digest, so it does not count.
    let client = oci_client::Client::new(config().client_config());
    let auth = oci_client::secrets::RegistryAuth::Anonymous;
    let sig_tag = |digest: &str| {
        oci_client::Reference::with_tag(
            registry_address(),
            repository.clone(),
            format!("{}.sig", digest.replace(':', "-")),
        )
    };
    let (signature_manifest, _) = client
        .pull_manifest_raw(
            &sig_tag(signed.digest.as_ref().unwrap()),
            &auth,
            &["application/vnd.oci.image.manifest.v1+json"],
        )
        .await
        .expect("signature manifest");
    client
        .push_manifest_raw(
            &sig_tag(replaced.digest.as_ref().unwrap()),
            signature_manifest,
            http::HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json"),
        )
        .await
        .expect("copy the signature");
    let error = signature::verify(&registry, &replaced, keys.public_pem.as_bytes())
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("is not signed"),
        "a copied signature was accepted: {error}"
    );

    // 3. The signed layer's blob is overwritten in the registry's storage: the signature still
    //    verifies (the manifest is intact) but the pull refuses the content.
    let pulled = registry.pull(&signed).await.unwrap();
    let layer_hex = archive::digest(&pulled.layer)
        .trim_start_matches("sha256:")
        .to_string();
    let blob = registry_data_dir().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{layer_hex}/data",
        &layer_hex[..2]
    ));
    let mut bytes = std::fs::read(&blob).expect("layer blob in the registry's storage");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    signature::verify(&registry, &signed, keys.public_pem.as_bytes())
        .await
        .expect("manifest still signed");
    let error = registry
        .pull(&signed)
        .await
        .expect_err("tampered layer must be refused");
    assert!(
        matches!(error, registry::Error::DigestMismatch { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("the registry served content with digest"),
        "{error}"
    );
}

#[tokio::test]
async fn signatures_interoperate_with_the_cosign_cli() {
    let registry = Registry::new(config(), Credentials::Anonymous);
    let work = TempDir::new("cosign");
    let repository = unique_repository("cosign");

    // fluxop signs, cosign verifies.
    let ours = generate_key_pair(PASSWORD).unwrap();
    std::fs::write(work.0.join("fluxop.pub"), &ours.public_pem).unwrap();
    let pinned = push(
        &registry,
        &artifact(&repository, "fluxop-signed"),
        &vendored_bundle(),
    )
    .await;
    signature::sign(&registry, &pinned, ours.private_pem.as_bytes(), PASSWORD)
        .await
        .unwrap();
    let verify = fluxop_e2e::cosign()
        .args([
            "verify",
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            "--key",
        ])
        .arg(work.0.join("fluxop.pub"))
        .arg(pinned.to_registry_string().replace(":fluxop-signed@", "@"))
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "cosign verify failed: {}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // cosign signs, fluxop verifies.
    let keygen = fluxop_e2e::cosign()
        .args(["generate-key-pair", "--output-key-prefix"])
        .arg(work.0.join("cosign"))
        .env("COSIGN_PASSWORD", "cosign-password")
        .output()
        .unwrap();
    assert!(
        keygen.status.success(),
        "{}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let mut files = vendored_bundle().files().clone();
    files.insert("README.md".into(), b"signed by cosign\n".to_vec());
    let theirs = push(
        &registry,
        &artifact(&repository, "cosign-signed"),
        &Bundle::from_files(files).unwrap(),
    )
    .await;
    let sign = fluxop_e2e::cosign()
        .args([
            "sign",
            "--tlog-upload=false",
            "-y",
            "--allow-http-registry",
            "--key",
        ])
        .arg(work.0.join("cosign.key"))
        .arg(theirs.to_registry_string().replace(":cosign-signed@", "@"))
        .env("COSIGN_PASSWORD", "cosign-password")
        .output()
        .unwrap();
    assert!(
        sign.status.success(),
        "cosign sign failed: {}",
        String::from_utf8_lossy(&sign.stderr)
    );
    let cosign_pub = std::fs::read(work.0.join("cosign.pub")).unwrap();
    signature::verify(&registry, &theirs, &cosign_pub)
        .await
        .expect("fluxop verifies cosign's signature");
    // And cosign's private key signs through fluxop too.
    let cosign_key = std::fs::read(work.0.join("cosign.key")).unwrap();
    signature::sign(&registry, &pinned, &cosign_key, b"cosign-password")
        .await
        .expect("cosign key");
}

#[tokio::test]
async fn malformed_and_unreachable_artifacts_give_clear_errors() {
    let registry = Registry::new(config(), Credentials::Anonymous);
    // A tag that does not exist.
    let missing = artifact(&unique_repository("missing"), "nope");
    let error = registry.resolve(&missing).await.unwrap_err();
    assert!(
        matches!(error, registry::Error::NotFound { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains(&missing.to_string()), "{error}");

    // An unreachable registry (a closed port on loopback).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = ArtifactRef::parse(&format!("oci://{closed}/fluxop/bundle:v1")).unwrap();
    let config_closed = RegistryConfig {
        insecure: vec![closed.to_string()],
        ..RegistryConfig::default()
    };
    let error = Registry::new(config_closed, Credentials::Anonymous)
        .resolve(&unreachable)
        .await
        .unwrap_err();
    assert!(
        matches!(error, registry::Error::Unreachable { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot reach the registry of {unreachable}")),
        "{error}"
    );

    // An artifact that is not a Flux bundle (an OCI image config and layer media types).
    let image = artifact(&unique_repository("image"), "v1");
    let client = oci_client::Client::new(config().client_config());
    let layer = oci_client::client::ImageLayer::new(
        b"not flux".to_vec(),
        "application/vnd.oci.image.layer.v1.tar".into(),
        None,
    );
    let image_config = oci_client::client::Config::new(
        b"{}".to_vec(),
        "application/vnd.oci.image.config.v1+json".into(),
        None,
    );
    client
        .push(
            &image.to_oci(),
            &[layer],
            image_config,
            &oci_client::secrets::RegistryAuth::Anonymous,
            None,
        )
        .await
        .expect("push an image");
    let pinned = image.with_digest(&registry.resolve(&image).await.unwrap());
    let error = registry.pull(&pinned).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("is not a Flux bundle")
            && message.contains("application/vnd.oci.image.config.v1+json"),
        "{message}"
    );

    // The CLI exits 1 with the same message, and 2 for a malformed reference.
    let output = Command::new(fluxop_e2e::fluxop_bin())
        .args([
            "bundle",
            "pull",
            "--insecure",
            &missing.to_string(),
            "-o",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not found"));
    let output = Command::new(fluxop_e2e::fluxop_bin())
        .args(["bundle", "verify", "--key", "k.pub", "ghcr.io/x/y"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("must start with oci://"));
}

#[tokio::test]
async fn push_records_the_flux_versions_for_listings() {
    let registry = Registry::new(config(), Credentials::Anonymous);
    let bundle = vendored_bundle();
    let target = artifact(&unique_repository("annotations"), "v1");
    let layer = archive::pack(bundle.files());
    let annotations =
        BTreeMap::from([(FLUX_VERSIONS_ANNOTATION.to_string(), "v2.8.8".to_string())]);
    registry.push(&target, &layer, annotations).await.unwrap();
    let (_, read) = registry.annotations(&target).await.unwrap();
    assert_eq!(
        read.get(FLUX_VERSIONS_ANNOTATION).map(String::as_str),
        Some("v2.8.8")
    );
    let tags = registry.list_tags(&target).await.unwrap();
    assert_eq!(tags, ["v1"]);
}

fn source(name: &str) -> (fluxop::bundle::source::Source, TempDir) {
    let dir = TempDir::new(name);
    let source = fluxop::bundle::source::Source {
        cache: fluxop::bundle::cache::Cache::new(dir.0.join("cache")),
        limits: Limits::default(),
        keep: 3,
    };
    (source, dir)
}

/// The vendored bundle plus a file naming `repository`, so its layer is its own.
fn own_bundle(repository: &str) -> Bundle {
    let mut files = vendored_bundle().files().clone();
    files.insert("README.md".into(), format!("{repository}\n").into_bytes());
    Bundle::from_files(files).unwrap()
}

#[tokio::test]
async fn a_cached_digest_is_never_downloaded_twice_and_a_new_digest_is_detected() {
    let registry = Registry::new(config(), Credentials::Anonymous);
    let keys = generate_key_pair(PASSWORD).unwrap();
    let repository = unique_repository("cache");
    let tag = artifact(&repository, "latest");
    let bundle = own_bundle(&repository);
    let pinned = push(&registry, &tag, &bundle).await;
    signature::sign(&registry, &pinned, keys.private_pem.as_bytes(), PASSWORD)
        .await
        .unwrap();
    let (source, _dir) = source("cache");
    let key = Some(keys.public_pem.as_bytes());

    let first = source
        .fetch(&registry, &tag, key, None)
        .await
        .expect("first fetch");
    assert!(!first.from_cache);
    assert_eq!(first.artifact, pinned);
    assert_eq!(first.bundle.files(), bundle.files());

    // Remove the layer from the registry: only a download could notice.
    let layer_hex = archive::digest(&archive::pack(bundle.files()))
        .trim_start_matches("sha256:")
        .to_string();
    let blob_dir = registry_data_dir().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{layer_hex}",
        &layer_hex[..2]
    ));
    std::fs::remove_dir_all(&blob_dir).expect("layer blob in the registry's storage");
    let second = source
        .fetch(&registry, &tag, key, None)
        .await
        .expect("second fetch, from the cache");
    assert!(second.from_cache);
    assert_eq!(second.digest, first.digest);
    assert_eq!(second.bundle, first.bundle);

    // A new digest behind the same tag is seen at once (HEAD) and pulled.
    let mut files = bundle.files().clone();
    files.insert(
        "flux/v2.9.4/policies.yaml".into(),
        b"# next release of the channel\n".to_vec(),
    );
    let next = push(&registry, &tag, &Bundle::from_files(files).unwrap()).await;
    signature::sign(&registry, &next, keys.private_pem.as_bytes(), PASSWORD)
        .await
        .unwrap();
    let third = source
        .fetch(&registry, &tag, key, None)
        .await
        .expect("third fetch");
    assert!(!third.from_cache);
    assert_eq!(third.artifact, next);
}

#[tokio::test]
async fn fetch_refuses_a_badly_signed_artifact_before_caching_or_unpacking() {
    let registry = Registry::new(config(), Credentials::Anonymous);
    let (signer, other) = (
        generate_key_pair(PASSWORD).unwrap(),
        generate_key_pair(PASSWORD).unwrap(),
    );
    let repository = unique_repository("refuse");
    let tag = artifact(&repository, "v1");
    let pinned = push(&registry, &tag, &own_bundle(&repository)).await;
    let (source, dir) = source("refuse");

    let unsigned = source
        .fetch(&registry, &tag, Some(other.public_pem.as_bytes()), None)
        .await
        .unwrap_err();
    assert_eq!(unsigned.reason(), "VerificationFailed");
    assert!(unsigned.to_string().contains("is not signed"), "{unsigned}");

    signature::sign(&registry, &pinned, signer.private_pem.as_bytes(), PASSWORD)
        .await
        .unwrap();
    let wrong_key = source
        .fetch(&registry, &tag, Some(other.public_pem.as_bytes()), None)
        .await
        .unwrap_err();
    assert_eq!(wrong_key.reason(), "VerificationFailed");
    assert!(
        !dir.0.join("cache").exists(),
        "a refused artifact reached the cache"
    );

    let missing = source
        .fetch(&registry, &artifact(&repository, "v2"), None, None)
        .await
        .unwrap_err();
    assert_eq!(missing.reason(), "ArtifactFailed");
}

#[tokio::test]
async fn a_registry_with_a_private_ca_and_basic_auth_needs_both() {
    use base64::Engine;
    let own = OwnRegistry::start("auth-tls", &["--basic-auth", "flux:s3cr:et", "--tls"]);
    let repository = unique_repository("auth");
    let tag = ArtifactRef::parse(&format!("oci://{}/{repository}:v1", own.address)).unwrap();

    // Without the CA the TLS handshake fails, and the error says so.
    let error = Registry::new(RegistryConfig::default(), Credentials::Anonymous)
        .resolve(&tag)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot reach the registry of {tag}")),
        "{message}"
    );
    assert!(
        message.to_lowercase().contains("certificate") || message.contains("UnknownIssuer"),
        "{message}"
    );

    // With the CA but without credentials: refused, and the message points at the credentials.
    let with_ca = RegistryConfig {
        ca_pem: vec![std::fs::read(&own.ca).unwrap()],
        ..RegistryConfig::default()
    };
    let registry = Registry::new(with_ca.clone(), Credentials::Anonymous);
    let error = registry.resolve(&tag).await.unwrap_err();
    assert!(
        matches!(error, registry::Error::Unauthorized { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("check the credentials"),
        "{error}"
    );

    // With both, read from a kubernetes.io/dockerconfigjson Secret's content as the operator
    // does: push, sign, verify and fetch all work.
    let auth = base64::engine::general_purpose::STANDARD.encode("flux:s3cr:et");
    let docker_config = format!(
        r#"{{"auths": {{"https://{}": {{"auth": "{auth}"}}}}}}"#,
        own.address
    );
    let credentials =
        fluxop::bundle::credentials::from_docker_config(docker_config.as_bytes(), &own.address)
            .expect("credentials");
    assert!(matches!(credentials, Credentials::Basic { .. }));
    let registry = Registry::new(with_ca, credentials);
    let bundle = own_bundle(&repository);
    let digest = registry
        .push(&tag, &archive::pack(bundle.files()), BTreeMap::new())
        .await
        .expect("push");
    let keys = generate_key_pair(PASSWORD).unwrap();
    signature::sign(
        &registry,
        &tag.with_digest(&digest),
        keys.private_pem.as_bytes(),
        PASSWORD,
    )
    .await
    .expect("sign over TLS with basic auth");
    let (source, _dir) = source("auth");
    let fetched = source
        .fetch(&registry, &tag, Some(keys.public_pem.as_bytes()), None)
        .await
        .expect("fetch");
    assert_eq!(fetched.bundle.files(), bundle.files());
}
