//! Pull-based fleets: the `FluxInstance` itself comes from a signed OCI artifact
//! (`fluxop run --instance-from oci://.../fleet/instance:prod`). When the tag moves, the new
//! artifact is verified with the key in a Secret, pulled, and its `instance.yaml` applied to
//! the operator's namespace; the instance controller does the rest. A fleet admin publishes
//! one artifact and every member converges. Unsigned or mis-signed artifacts are refused, as
//! bundles are, and nothing is applied.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use kube::{
    Api,
    api::{Patch, PatchParams},
};

use super::Context;
use crate::{
    api::{FluxInstance, SINGLETON_NAME},
    bundle::{
        archive::{self, Files, Limits},
        reference::ArtifactRef,
        registry::{Credentials, Registry},
        signature,
    },
};

/// The file an instance artifact carries.
pub const INSTANCE_FILE: &str = "instance.yaml";
/// Field manager of what the follower applies: distinct from the operator's own, so that
/// `kubectl` edits of other fields survive and the origin shows in managedFields.
pub const FIELD_MANAGER: &str = "fluxop-fleet";
/// Annotation on the applied instance naming the artifact it came from.
pub const SOURCE_ANNOTATION: &str = "fluxcd.controlplane.io/instance-artifact";

/// Where the instance comes from.
#[derive(Debug, Clone)]
pub struct InstanceSource {
    pub artifact: ArtifactRef,
    /// Secret in the operator's namespace with the `cosign.pub` the artifact must verify with.
    pub key_secret: String,
    pub interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] crate::bundle::registry::Error),
    #[error(transparent)]
    Signature(#[from] crate::bundle::signature::Error),
    #[error(transparent)]
    Archive(#[from] crate::bundle::archive::Error),
    #[error("reading the verification key Secret {0}: {1}")]
    Key(String, String),
    #[error(transparent)]
    Lost(#[from] crate::task::Lost),
    #[error("{artifact}: verifying and pulling took longer than {seconds}s")]
    Deadline { artifact: String, seconds: u64 },
    #[error("{artifact} has no {INSTANCE_FILE}")]
    NoInstance { artifact: String },
    #[error("{artifact}: {INSTANCE_FILE} is not a FluxInstance: {reason}")]
    BadInstance { artifact: String, reason: String },
    #[error("applying the instance from {artifact}: {source}")]
    Apply {
        artifact: String,
        source: Box<kube::Error>,
    },
}

/// The instance manifest an artifact's files carry, checked and placed in `namespace`.
pub fn instance_from(
    files: &Files,
    artifact: &str,
    namespace: &str,
) -> Result<serde_json::Value, Error> {
    let text = files.get(INSTANCE_FILE).ok_or_else(|| Error::NoInstance {
        artifact: artifact.to_string(),
    })?;
    let bad = |reason: String| Error::BadInstance {
        artifact: artifact.to_string(),
        reason,
    };
    let text = std::str::from_utf8(text).map_err(|e| bad(e.to_string()))?;
    let instance: FluxInstance = serde_saphyr::from_str(text).map_err(|e| bad(e.to_string()))?;
    if instance.metadata.name.as_deref() != Some(SINGLETON_NAME) {
        return Err(bad(format!(
            "it is named {:?}; the only accepted name is {SINGLETON_NAME:?}",
            instance.metadata.name.as_deref().unwrap_or_default()
        )));
    }
    let mut annotations = instance.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(SOURCE_ANNOTATION.to_string(), artifact.to_string());
    Ok(serde_json::json!({
        "apiVersion": format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
        "kind": "FluxInstance",
        "metadata": {
            "name": SINGLETON_NAME,
            "namespace": namespace,
            "labels": instance.metadata.labels.clone().unwrap_or_default(),
            "annotations": annotations,
        },
        "spec": instance.spec,
    }))
}

/// Verifies, pulls and applies the artifact at `digest`.
async fn apply_digest(
    ctx: &Context,
    registry: &Registry,
    source: &InstanceSource,
    digest: &str,
) -> Result<(), Error> {
    let pinned = source.artifact.with_digest(digest);
    let key = super::instance::secret_data(
        &ctx.client,
        &ctx.namespace,
        &source.key_secret,
        "cosign.pub",
        "--instance-from-key-secret",
    )
    .await
    .map_err(|f| Error::Key(source.key_secret.clone(), f.message))?;
    // One deadline for the whole exchange, as for bundles; unpacking runs off the runtime.
    let deadline = registry
        .config()
        .timeout
        .saturating_mul(crate::policy::registry::FETCH_DEADLINE_FACTOR);
    let fetch = async {
        signature::verify(registry, &pinned, &key).await?;
        let pulled = registry.pull(&pinned).await?;
        crate::task::off_runtime("unpack", move || {
            archive::unpack(&pulled.layer, &Limits::default())
        })
        .await?
        .map_err(Error::from)
    };
    let files = tokio::time::timeout(deadline, fetch)
        .await
        .map_err(|_| Error::Deadline {
            artifact: pinned.to_string(),
            seconds: deadline.as_secs(),
        })??;
    let manifest = instance_from(&files, &pinned.to_string(), &ctx.namespace)?;
    Api::<FluxInstance>::namespaced(ctx.client.clone(), &ctx.namespace)
        .patch(
            SINGLETON_NAME,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&manifest),
        )
        .await
        .map_err(|source| Error::Apply {
            artifact: pinned.to_string(),
            source: Box::new(source),
        })?;
    Ok(())
}

/// Follows the instance artifact until the task is dropped: every `interval`, resolve the
/// tag; on a new digest, verify, pull and apply. A refused digest is tried again at every
/// poll (its signature may simply not be pushed yet) but logged only when the reason changes.
pub async fn follow(ctx: Arc<Context>, source: InstanceSource) {
    let mut handled: Option<String> = None;
    let mut last_refusal: Option<String> = None;
    loop {
        let registry = match ctx.registry(Credentials::Anonymous).await {
            Ok(registry) => registry,
            Err(failure) => {
                tracing::warn!(reason = %failure.message, "the registry settings are unusable");
                tokio::time::sleep(source.interval).await;
                continue;
            }
        };
        match registry.resolve(&source.artifact).await {
            Err(error) => {
                tracing::warn!(artifact = %source.artifact, %error, "resolving the instance artifact failed")
            }
            Ok(digest) if handled.as_deref() == Some(digest.as_str()) => {}
            Ok(digest) => match apply_digest(&ctx, &registry, &source, &digest).await {
                Ok(()) => {
                    tracing::info!(artifact = %source.artifact.with_digest(&digest), "instance applied from the fleet artifact");
                    handled = Some(digest);
                    last_refusal = None;
                }
                Err(error) => {
                    ctx.metrics.watch_errors.inc();
                    let refusal = error.to_string();
                    if last_refusal.as_ref() != Some(&refusal) {
                        tracing::error!(artifact = %source.artifact.with_digest(&digest), %error, "instance artifact refused; nothing applied");
                        last_refusal = Some(refusal);
                    }
                }
            },
        }
        tokio::time::sleep(source.interval).await;
    }
}

/// The files of an instance artifact: just the manifest.
pub fn artifact_files(manifest: &[u8]) -> Files {
    BTreeMap::from([(INSTANCE_FILE.to_string(), manifest.to_vec())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_artifact_is_placed_in_the_operators_namespace_and_annotated() {
        let files = artifact_files(
            b"apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: elsewhere\n\
              spec:\n  distribution:\n    version: 2.9.x\n    registry: ghcr.io/fluxcd\n",
        );
        let manifest = instance_from(&files, "oci://r/fleet@sha256:abc", "flux-system").unwrap();
        assert_eq!(manifest["metadata"]["namespace"], "flux-system");
        assert_eq!(
            manifest["metadata"]["annotations"][SOURCE_ANNOTATION],
            "oci://r/fleet@sha256:abc"
        );
        assert_eq!(manifest["spec"]["distribution"]["version"], "2.9.x");
    }

    #[test]
    fn artifacts_without_a_valid_flux_instance_are_refused() {
        let missing = instance_from(&BTreeMap::new(), "a", "ns").unwrap_err();
        assert!(missing.to_string().contains("has no instance.yaml"));
        let other = artifact_files(
            b"apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: other\n\
              spec:\n  distribution:\n    version: 2.9.x\n    registry: ghcr.io/fluxcd\n",
        );
        assert!(
            instance_from(&other, "a", "ns")
                .unwrap_err()
                .to_string()
                .contains("only accepted name")
        );
        let garbage = artifact_files(b"spec: [1, 2");
        assert!(matches!(
            instance_from(&garbage, "a", "ns"),
            Err(Error::BadInstance { .. })
        ));
    }
}
