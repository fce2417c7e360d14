//! Talking to OCI registries: push, resolve, pull and list bundles in the Flux artifact
//! format. The IO edge of the bundle module; what is pulled is checked against its digest
//! and media types before anyone unpacks it.

use std::{collections::BTreeMap, time::Duration};

use oci_client::{
    Client, Reference,
    client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol},
    errors::{OciDistributionError, OciErrorCode},
    manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor},
    secrets::RegistryAuth,
};
use serde::Deserialize;

use super::{CONFIG_MEDIA_TYPE, CONTENT_MEDIA_TYPE, archive::digest, reference::ArtifactRef};

/// How to reach registries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Registries (`host:port`, exactly as in references) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM) trusted for HTTPS registries.
    pub ca_pem: Vec<Vec<u8>>,
    /// Connect and read timeout of every request.
    pub timeout: Duration,
    /// The largest layer that is downloaded at all.
    pub max_layer_bytes: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            ca_pem: Vec::new(),
            timeout: Duration::from_secs(60),
            max_layer_bytes: 256 << 20,
        }
    }
}

impl RegistryConfig {
    /// The client configuration both oci-client and sigstore's registry client are built from.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            protocol: if self.insecure.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(self.insecure.clone())
            },
            extra_root_certificates: self
                .ca_pem
                .iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.clone(),
                })
                .collect(),
            connect_timeout: Some(self.timeout),
            read_timeout: Some(self.timeout),
            ..ClientConfig::default()
        }
    }
}

/// Registry credentials. `Debug` never shows secrets.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Credentials {
    pub fn to_registry_auth(&self) -> RegistryAuth {
        match self {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::Bearer(token) => RegistryAuth::Bearer(token.clone()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("artifact {reference} not found (no such repository, tag or digest in the registry)")]
    NotFound { reference: String },
    #[error(
        "registry refused access to {reference}: check the credentials (artifactPullSecret, --username/--password)"
    )]
    Unauthorized { reference: String },
    #[error("cannot reach the registry of {reference}: {detail}")]
    Unreachable { reference: String, detail: String },
    #[error(
        "{reference} is not a Flux bundle: expected config media type {CONFIG_MEDIA_TYPE} and one \
         {CONTENT_MEDIA_TYPE} layer, found {found}"
    )]
    NotAFluxArtifact { reference: String, found: String },
    #[error("{reference}: layer of {size} bytes is over the limit of {limit} bytes")]
    LayerTooLarge {
        reference: String,
        size: i64,
        limit: u64,
    },
    #[error(
        "{reference}: the registry served content with digest {actual}, not the requested {expected}"
    )]
    DigestMismatch {
        reference: String,
        expected: String,
        actual: String,
    },
    #[error("{reference}: a pull needs a digest; resolve the tag first")]
    NotPinned { reference: String },
    #[error("{operation} {reference}: {source}")]
    Registry {
        operation: &'static str,
        reference: String,
        source: OciDistributionError,
    },
}

impl Error {
    /// Sorts a registry client error into what a person can act on.
    fn classify(
        operation: &'static str,
        reference: &ArtifactRef,
        source: OciDistributionError,
    ) -> Self {
        let reference_text = reference.to_string();
        let envelope_has = |codes: &[OciErrorCode], source: &OciDistributionError| match source {
            OciDistributionError::RegistryError { envelope, .. } => {
                envelope.errors.iter().any(|e| codes.contains(&e.code))
            }
            _ => false,
        };
        match &source {
            OciDistributionError::ImageManifestNotFoundError(_) => Error::NotFound {
                reference: reference_text,
            },
            OciDistributionError::DigestError(
                oci_client::errors::DigestError::VerificationError { expected, actual },
            ) => Error::DigestMismatch {
                reference: reference_text,
                expected: expected.clone(),
                actual: actual.clone(),
            },
            OciDistributionError::ServerError { code: 404, .. } => Error::NotFound {
                reference: reference_text,
            },
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_)
            | OciDistributionError::ServerError {
                code: 401 | 403, ..
            } => Error::Unauthorized {
                reference: reference_text,
            },
            OciDistributionError::RequestError(e) if e.is_connect() || e.is_timeout() => {
                Error::Unreachable {
                    reference: reference_text,
                    detail: error_chain(e),
                }
            }
            _ if envelope_has(
                &[
                    OciErrorCode::ManifestUnknown,
                    OciErrorCode::NameUnknown,
                    OciErrorCode::NotFound,
                    OciErrorCode::BlobUnknown,
                ],
                &source,
            ) =>
            {
                Error::NotFound {
                    reference: reference_text,
                }
            }
            _ if envelope_has(&[OciErrorCode::Unauthorized, OciErrorCode::Denied], &source) => {
                Error::Unauthorized {
                    reference: reference_text,
                }
            }
            _ => Error::Registry {
                operation,
                reference: reference_text,
                source,
            },
        }
    }
}

/// "outer: inner: innermost", since reqwest hides the useful part in its sources.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
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
    client: Client,
    config: RegistryConfig,
    credentials: Credentials,
}

impl Registry {
    pub fn new(config: RegistryConfig, credentials: Credentials) -> Self {
        Self {
            client: Client::new(config.client_config()),
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
        let classify = |operation, e| Error::classify(operation, target, e);
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

    /// The digest a tag points at now (a HEAD request; nothing is downloaded).
    pub async fn resolve(&self, artifact: &ArtifactRef) -> Result<String, Error> {
        if let Some(digest) = &artifact.digest {
            return Ok(digest.clone());
        }
        self.client
            .fetch_manifest_digest(&artifact.to_oci(), &self.credentials.to_registry_auth())
            .await
            .map_err(|e| Error::classify("resolve", artifact, e))
    }

    async fn manifest(&self, artifact: &ArtifactRef) -> Result<(String, Manifest), Error> {
        let reference = artifact.to_oci();
        let (bytes, _) = self
            .client
            .pull_manifest_raw(
                &reference,
                &self.credentials.to_registry_auth(),
                &[OCI_IMAGE_MEDIA_TYPE],
            )
            .await
            .map_err(|e| Error::classify("pull manifest of", artifact, e))?;
        let actual = digest(&bytes);
        if let Some(expected) = &artifact.digest
            && *expected != actual
        {
            return Err(Error::DigestMismatch {
                reference: artifact.to_string(),
                expected: expected.clone(),
                actual,
            });
        }
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::NotAFluxArtifact {
                reference: artifact.to_string(),
                found: format!("a manifest that does not parse ({e})"),
            })?;
        Ok((actual, manifest))
    }

    /// Pulls the artifact pinned by digest: checks the manifest digest, the Flux media types
    /// and the layer size before downloading, and the layer digest after.
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
        if layer.size < 0 || layer.size as u64 > self.config.max_layer_bytes {
            return Err(Error::LayerTooLarge {
                reference: artifact.to_string(),
                size: layer.size,
                limit: self.config.max_layer_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(layer.size as usize);
        self.client
            .pull_blob(&artifact.to_oci(), layer, &mut bytes)
            .await
            .map_err(|e| Error::classify("pull layer of", artifact, e))?;
        let actual = digest(&bytes);
        if actual != layer.digest {
            return Err(Error::DigestMismatch {
                reference: artifact.to_string(),
                expected: layer.digest.clone(),
                actual,
            });
        }
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
        const PAGE: usize = 100;
        let reference: Reference = repository.repository_ref().to_oci();
        let auth = self.credentials.to_registry_auth();
        let mut tags: Vec<String> = Vec::new();
        loop {
            let page = self
                .client
                .list_tags(
                    &reference,
                    &auth,
                    Some(PAGE),
                    tags.last().map(String::as_str),
                )
                .await
                .map_err(|e| Error::classify("list tags of", repository, e))?;
            let count = page.tags.len();
            tags.extend(page.tags);
            if count < PAGE {
                break;
            }
        }
        Ok(tags)
    }
}
