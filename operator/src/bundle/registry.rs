//! Talking to OCI registries: push, resolve, pull and list bundles in the Flux artifact
//! format. The IO edge of the bundle module; what is pulled is checked against its digest
//! and media types before anyone unpacks it.

use std::{collections::BTreeMap, future::Future};

use oci_client::{
    Client,
    manifest::{
        IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
        OCI_IMAGE_MEDIA_TYPE, OciDescriptor,
    },
};
use serde::Deserialize;

pub use super::oci::{Credentials, Error, RegistryConfig};
use super::oci::{error_chain, is_timeout};
use super::{
    CONFIG_MEDIA_TYPE, CONTENT_MEDIA_TYPE,
    archive::digest,
    http::{Reads, is_sha256_digest},
    reference::ArtifactRef,
};
use crate::policy::registry::{MAX_SMALL_BODY_BYTES, TAG_PAGE};

/// The layer and its digest, hashed on a blocking thread (a layer is up to 256 MiB).
async fn hash_off_runtime(bytes: Vec<u8>) -> (Vec<u8>, String) {
    // Hashing does not panic; if the task was lost anyway, no digest is reported, so the
    // comparison fails closed.
    tokio::task::spawn_blocking(move || {
        let actual = digest(&bytes);
        (bytes, actual)
    })
    .await
    .unwrap_or_default()
}

/// What a pull returns: the manifest digest, the layer's bytes and the manifest annotations.
#[derive(Debug, Clone)]
pub struct PulledArtifact {
    pub digest: String,
    pub layer: Vec<u8>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    config: OciDescriptor,
    #[serde(default)]
    layers: Vec<OciDescriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A registry client with fluxop's rules for bundles, bound to one set of credentials: the
/// underlying client keeps the first credentials it sees per registry host, so a client is
/// never shared between identities.
pub struct Registry {
    /// Pushes only (the CLI's `bundle push` and `sign`); every read goes through `reads`.
    client: Client,
    /// Every read, each body within a cap (oci-client reads bodies whole).
    reads: Reads,
    config: RegistryConfig,
    credentials: Credentials,
}

impl Registry {
    pub fn new(config: RegistryConfig, credentials: Credentials) -> Self {
        Self {
            client: Client::new(config.client_config()),
            reads: Reads::new(&config, credentials.clone()),
            config,
            credentials,
        }
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Pushes `layer` as a Flux artifact and tags it; returns the manifest digest. The
    /// manifest has no timestamps, so the same layer and annotations give the same digest.
    pub async fn push(
        &self,
        target: &ArtifactRef,
        layer: &[u8],
        annotations: BTreeMap<String, String>,
    ) -> Result<String, Error> {
        let reference = target.to_oci();
        let auth = self.credentials.to_registry_auth();
        let classify = |operation, e| Error::classify(operation, target, self.config.timeout, e);
        self.client
            .auth(&reference, &auth, oci_client::RegistryOperation::Push)
            .await
            .map_err(|e| classify("authenticate to", e))?;
        let config = b"{}".to_vec();
        let config_digest = digest(&config);
        let layer_digest = digest(layer);
        self.client
            .push_blob(&reference, config.clone(), &config_digest)
            .await
            .map_err(|e| classify("push config of", e))?;
        self.client
            .push_blob(&reference, layer.to_vec(), &layer_digest)
            .await
            .map_err(|e| classify("push layer of", e))?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "config": { "mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": CONTENT_MEDIA_TYPE, "digest": layer_digest, "size": layer.len() }],
            "annotations": annotations,
        });
        let body = serde_json::to_vec(&manifest).unwrap_or_default();
        let manifest_digest = digest(&body);
        let content_type = http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE);
        self.client
            .push_manifest_raw(&reference, body, content_type)
            .await
            .map_err(|e| classify("push manifest of", e))?;
        Ok(manifest_digest)
    }

    /// Runs one registry call (token request included) within the request timeout.
    async fn within_timeout<T>(
        &self,
        operation: &'static str,
        reference: &ArtifactRef,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let timeout = self.config.timeout;
        tokio::time::timeout(timeout, call)
            .await
            .unwrap_or_else(|_| {
                Err(Error::TimedOut {
                    operation,
                    reference: reference.to_string(),
                    registry: reference.registry.clone(),
                    after: timeout,
                    progress: String::new(),
                })
            })
    }

    /// The digest a tag points at now: a HEAD request, whose answer must carry
    /// `Docker-Content-Digest` (nothing is downloaded).
    pub async fn resolve(&self, artifact: &ArtifactRef) -> Result<String, Error> {
        if let Some(digest) = &artifact.digest {
            return Ok(digest.clone());
        }
        self.within_timeout(
            "resolve",
            artifact,
            self.reads.manifest_digest(
                "resolve",
                artifact,
                &[
                    OCI_IMAGE_MEDIA_TYPE,
                    OCI_IMAGE_INDEX_MEDIA_TYPE,
                    IMAGE_MANIFEST_MEDIA_TYPE,
                    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
                ],
            ),
        )
        .await
    }

    /// The raw manifest of `artifact` (by tag or digest), checked against the digest when
    /// pinned (and against the registry's `Docker-Content-Digest`), never read past
    /// [`MAX_SMALL_BODY_BYTES`]: the body streams and the read stops at the cap. The request
    /// timeout bounds the whole call, token request included.
    pub(crate) async fn raw_manifest(
        &self,
        operation: &'static str,
        artifact: &ArtifactRef,
        accepted_media_types: &[&str],
    ) -> Result<(String, Vec<u8>), Error> {
        let body = self
            .within_timeout(
                operation,
                artifact,
                self.reads.manifest(
                    operation,
                    artifact,
                    accepted_media_types,
                    MAX_SMALL_BODY_BYTES,
                ),
            )
            .await?;
        let actual = digest(&body.bytes);
        let header_digest = body
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|d| d.starts_with("sha256:"));
        for expected in [artifact.digest.as_deref(), header_digest]
            .into_iter()
            .flatten()
        {
            if expected != actual {
                return Err(Error::DigestMismatch {
                    reference: artifact.to_string(),
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        Ok((actual, body.bytes))
    }

    async fn manifest(&self, artifact: &ArtifactRef) -> Result<(String, Manifest), Error> {
        let (actual, bytes) = self
            .raw_manifest("pull manifest of", artifact, &[OCI_IMAGE_MEDIA_TYPE])
            .await?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::NotAFluxArtifact {
                reference: artifact.to_string(),
                found: format!("a manifest that does not parse ({e})"),
            })?;
        Ok((actual, manifest))
    }

    /// Downloads one blob of `artifact`'s repository into memory, never holding more than its
    /// declared size (which must be within `limit`): the body is cut off the moment it runs
    /// past the declared size, each wait for the next part ends within the request timeout,
    /// a body that ends early is reported as truncated, and the digest is checked at the end.
    pub(crate) async fn pull_blob_bounded(
        &self,
        operation: &'static str,
        artifact: &ArtifactRef,
        descriptor: &OciDescriptor,
        limit: u64,
    ) -> Result<Vec<u8>, Error> {
        let reference = || artifact.to_string();
        let declared = match u64::try_from(descriptor.size) {
            Ok(size) if size <= limit => size,
            _ => {
                return Err(Error::LayerTooLarge {
                    reference: reference(),
                    size: descriptor.size,
                    limit,
                });
            }
        };
        let timeout = self.config.timeout;
        let timed_out = |received: u64| Error::TimedOut {
            operation,
            reference: reference(),
            registry: artifact.registry.clone(),
            after: timeout,
            progress: format!(", after {received} of {declared} bytes"),
        };
        let larger = || Error::LargerThanDeclared {
            operation,
            reference: reference(),
            declared,
        };
        // The digest goes into the URL: nothing but `sha256:<hex>` from a manifest.
        if !is_sha256_digest(&descriptor.digest) {
            return Err(Error::NotAFluxArtifact {
                reference: reference(),
                found: format!("a blob digest {:?}", descriptor.digest),
            });
        }
        let mut response = self
            .within_timeout(
                operation,
                artifact,
                self.reads.blob(operation, artifact, &descriptor.digest),
            )
            .await?;
        if response
            .content_length()
            .is_some_and(|length| length > declared)
        {
            return Err(larger());
        }
        let mut bytes: Vec<u8> = Vec::with_capacity(declared as usize);
        loop {
            let received = bytes.len() as u64;
            match tokio::time::timeout(timeout, response.chunk()).await {
                Err(_) => return Err(timed_out(received)),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => {
                    if received + chunk.len() as u64 > declared {
                        return Err(larger());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(Err(error)) => {
                    return Err(if is_timeout(&error) {
                        timed_out(received)
                    } else {
                        Error::Truncated {
                            operation,
                            reference: reference(),
                            received,
                            expected: declared,
                            detail: format!(": {}", error_chain(&error)),
                        }
                    });
                }
            }
        }
        let received = bytes.len() as u64;
        if received < declared {
            return Err(Error::Truncated {
                operation,
                reference: reference(),
                received,
                expected: declared,
                detail: String::new(),
            });
        }
        let (bytes, actual) = hash_off_runtime(bytes).await;
        if actual != descriptor.digest {
            return Err(Error::DigestMismatch {
                reference: reference(),
                expected: descriptor.digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Pulls the artifact pinned by digest: checks the manifest digest, the Flux media types
    /// and the layer size before downloading, the size while downloading, and the layer digest
    /// after.
    pub async fn pull(&self, artifact: &ArtifactRef) -> Result<PulledArtifact, Error> {
        if artifact.digest.is_none() {
            return Err(Error::NotPinned {
                reference: artifact.to_string(),
            });
        }
        let (manifest_digest, manifest) = self.manifest(artifact).await?;
        let layer = match manifest.layers.as_slice() {
            [layer]
                if manifest.config.media_type == CONFIG_MEDIA_TYPE
                    && layer.media_type == CONTENT_MEDIA_TYPE =>
            {
                layer
            }
            layers => {
                let found = format!(
                    "config {} and layers [{}]",
                    manifest.config.media_type,
                    layers
                        .iter()
                        .map(|l| l.media_type.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Err(Error::NotAFluxArtifact {
                    reference: artifact.to_string(),
                    found,
                });
            }
        };
        let bytes = self
            .pull_blob_bounded(
                "pull layer of",
                artifact,
                layer,
                self.config.max_layer_bytes,
            )
            .await?;
        Ok(PulledArtifact {
            digest: manifest_digest,
            layer: bytes,
            annotations: manifest.annotations,
        })
    }

    /// The manifest annotations of an artifact (one small request; for listings).
    pub async fn annotations(
        &self,
        artifact: &ArtifactRef,
    ) -> Result<(String, BTreeMap<String, String>), Error> {
        let (digest, manifest) = self.manifest(artifact).await?;
        Ok((digest, manifest.annotations))
    }

    /// Every tag of the repository, following the registry's pagination.
    pub async fn list_tags(&self, repository: &ArtifactRef) -> Result<Vec<String>, Error> {
        let repository_ref = repository.repository_ref();
        let mut tags: Vec<String> = Vec::new();
        loop {
            let page = self
                .within_timeout(
                    "list tags of",
                    repository,
                    self.reads.tags_page(
                        "list tags of",
                        &repository_ref,
                        TAG_PAGE,
                        tags.last().map(String::as_str),
                    ),
                )
                .await?;
            let count = page.len();
            tags.extend(page);
            if count < TAG_PAGE {
                break;
            }
        }
        Ok(tags)
    }
}
