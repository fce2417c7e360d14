//! Publishing fleet artifacts (bundles and instances) to the test registry, shared by the
//! fleet tests and the fleet bench.

use fluxop::bundle::{
    archive,
    layout::Bundle,
    reference::ArtifactRef,
    registry::{Credentials, Registry, RegistryConfig},
    signature,
};

use crate::{registry_address, repo_root};

fn registry() -> Registry {
    Registry::new(
        RegistryConfig {
            insecure: vec![registry_address()],
            ..RegistryConfig::default()
        },
        Credentials::Anonymous,
    )
}

/// Pushes `layer` to `tag` and signs it with `key`; returns the digest.
pub async fn publish(tag: &ArtifactRef, layer: &[u8], key: &signature::KeyPair) -> String {
    push(tag, layer, Some(key)).await
}

/// Pushes `layer` to `tag` on the test registry, signed when a key is given; returns the
/// digest.
pub async fn push(tag: &ArtifactRef, layer: &[u8], key: Option<&signature::KeyPair>) -> String {
    let registry = registry();
    let digest = registry
        .push(tag, layer, Default::default())
        .await
        .expect("push");
    if let Some(key) = key {
        signature::sign(
            &registry,
            &tag.with_digest(&digest),
            key.private_pem.as_bytes(),
            b"",
        )
        .await
        .expect("sign");
    }
    digest
}

/// The vendored bundle, plus `extra` as a copy of the newest release under a new patch
/// number (a stand-in for the next upstream patch release).
pub fn bundle_layer(extra: Option<&str>) -> Vec<u8> {
    let dir = repo_root().join("manifests-bundle");
    let mut files = archive::read_dir(&dir).expect("bundle dir");
    if let Some(extra) = extra {
        let copies: Vec<(String, Vec<u8>)> = files
            .iter()
            .filter(|(path, _)| path.contains("/v2.9.4/"))
            .map(|(path, content)| {
                (
                    path.replace("/v2.9.4/", &format!("/{extra}/")),
                    content.clone(),
                )
            })
            .collect();
        files.extend(copies);
    }
    let bundle = Bundle::from_files(files).expect("bundle layout");
    archive::pack(bundle.files())
}

pub fn instance_manifest(bundle: &str, label: &str) -> Vec<u8> {
    format!(
        "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  \
         annotations:\n    fluxcd.controlplane.io/reconcileArtifactEvery: 3s\nspec:\n  distribution:\n    \
         version: \"2.9.x\"\n    registry: ghcr.io/fluxcd\n    artifact: {bundle}\n    verify:\n      provider: cosign\n      \
         secretRef:\n        name: fleet-key\n  commonMetadata:\n    labels:\n      fleet.example.com/wave: {label}\n"
    )
    .into_bytes()
}
