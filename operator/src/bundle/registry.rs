//! Talking to OCI registries: push, resolve, pull and list bundles in the Flux artifact
//! format. The IO edge of the bundle module; what is pulled is checked against its digest
//! and media types before anyone unpacks it.

use std::{collections::BTreeMap, future::Future, time::Duration};

use oci_client::{
    Client,
    client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol},
    errors::{OciDistributionError, OciErrorCode},
    manifest::{
        IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
        OCI_IMAGE_MEDIA_TYPE, OciDescriptor,
    },
    secrets::RegistryAuth,
};
use serde::Deserialize;

use super::{
    CONFIG_MEDIA_TYPE, CONTENT_MEDIA_TYPE,
    archive::digest,
    http::{Reads, is_sha256_digest},
    reference::ArtifactRef,
};
use crate::policy::registry::{MAX_LAYER_BYTES, MAX_SMALL_BODY_BYTES, REQUEST_TIMEOUT, TAG_PAGE};

/// How to reach registries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Registries (`host:port`, exactly as in references) spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// Extra CA certificates (PEM) trusted for HTTPS registries.
    pub ca_pem: Vec<Vec<u8>>,
    /// Connect and read timeout of every request; each registry call (and each wait for the
    /// next part of a body) ends within it, and a whole fetch within
    /// [`FETCH_DEADLINE_FACTOR`](crate::policy::registry::FETCH_DEADLINE_FACTOR) times it.
    pub timeout: Duration,
    /// The largest layer that is downloaded at all.
    pub max_layer_bytes: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            insecure: Vec::new(),
            ca_pem: Vec::new(),
            timeout: REQUEST_TIMEOUT,
            max_layer_bytes: MAX_LAYER_BYTES,
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
    #[error(
        "{reference}: the token realm {realm} is plain HTTP on a host not listed as an insecure registry, and the registry password is not sent over plain HTTP"
    )]
    PlainHttpRealm { reference: String, realm: String },
    #[error("cannot reach the registry of {reference}: {detail}")]
    Unreachable { reference: String, detail: String },
    #[error(
        "{operation} {reference}: timed out after {}s waiting for the registry {registry}{progress}",
        after.as_secs_f32()
    )]
    TimedOut {
        operation: &'static str,
        reference: String,
        registry: String,
        after: Duration,
        /// ", after N of M bytes" while a body streamed; empty otherwise.
        progress: String,
    },
    #[error("{operation} {reference}: the registry answered with server error {code}: {message}")]
    ServerError {
        operation: &'static str,
        reference: String,
        code: u16,
        message: String,
    },
    #[error(
        "{operation} {reference}: the download broke off after {received} of {expected} bytes \
         (truncated body or lost connection){detail}"
    )]
    Truncated {
        operation: &'static str,
        reference: String,
        received: u64,
        expected: u64,
        /// ": <transport error>" when the transport reported one.
        detail: String,
    },
    #[error(
        "{operation} {reference}: the registry sent more than the {declared} bytes the manifest \
         declared (larger than declared); the download was stopped"
    )]
    LargerThanDeclared {
        operation: &'static str,
        reference: String,
        declared: u64,
    },
    #[error("{operation} {reference}: the {what} is larger than the limit of {limit} bytes")]
    BodyTooLarge {
        operation: &'static str,
        reference: String,
        what: &'static str,
        limit: u64,
    },
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
    #[error(
        "{operation} {reference}: the registry {registry} answered the HEAD request without a \
         Docker-Content-Digest header; fluxop does not download a manifest to learn its digest \
         (pin the artifact by digest, or use a registry that sends the header)"
    )]
    NoDigestHeader {
        operation: &'static str,
        reference: String,
        registry: String,
    },
    #[error("{operation} {reference}: {source}")]
    Registry {
        operation: &'static str,
        reference: String,
        source: OciDistributionError,
    },
}

impl Error {
    /// Whether this is no answer from the registry (unreachable, timed out, a server error, a
    /// body cut short) rather than a real one (not found, refused, wrong content). Only such
    /// failures may be bridged with an already verified bundle from the cache.
    pub fn is_outage(&self) -> bool {
        match self {
            Error::Unreachable { .. }
            | Error::TimedOut { .. }
            | Error::ServerError { .. }
            | Error::Truncated { .. } => true,
            Error::Registry { source, .. } => matches!(
                source,
                OciDistributionError::RequestError(_) | OciDistributionError::IoError(_)
            ),
            Error::NotFound { .. }
            | Error::Unauthorized { .. }
            | Error::PlainHttpRealm { .. }
            | Error::NotAFluxArtifact { .. }
            | Error::LayerTooLarge { .. }
            | Error::DigestMismatch { .. }
            | Error::NotPinned { .. }
            | Error::NoDigestHeader { .. }
            | Error::LargerThanDeclared { .. }
            | Error::BodyTooLarge { .. } => false,
        }
    }

    /// Whether the registry answered with a refusal of access or an absence: 401, 403, not
    /// found (an expired token, a revoked pull secret, a deleted tag).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. } | Error::Unauthorized { .. } | Error::PlainHttpRealm { .. }
        )
    }

    /// Sorts a registry client error into what a person can act on.
    pub(super) fn classify(
        operation: &'static str,
        reference: &ArtifactRef,
        timeout: Duration,
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
            // 5xx, and 429 (too many requests): the registry cannot answer now.
            OciDistributionError::ServerError { code, message, .. }
                if *code >= 500 || *code == 429 =>
            {
                Error::ServerError {
                    operation,
                    reference: reference_text,
                    code: *code,
                    message: message.chars().take(200).collect(),
                }
            }
            OciDistributionError::RequestError(e) if e.is_timeout() => Error::TimedOut {
                operation,
                registry: reference.registry.clone(),
                reference: reference_text,
                after: timeout,
                progress: format!(" ({})", error_chain(e)),
            },
            OciDistributionError::RequestError(e) => Error::Unreachable {
                reference: reference_text,
                detail: error_chain(e),
            },
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

/// Does this transport error (or one of its sources) say a wait timed out?
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        // reqwest's own timeout error is private; its text is the stable part.
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || e.to_string().contains("timed out")
        {
            return true;
        }
        current = e.source();
    }
    false
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(source: OciDistributionError) -> Error {
        let artifact = ArtifactRef::parse("oci://registry.example:5000/flux/bundle:v1").unwrap();
        Error::classify("resolve", &artifact, Duration::from_secs(5), source)
    }

    fn server(code: u16) -> OciDistributionError {
        OciDistributionError::ServerError {
            code,
            url: "http://registry.example:5000/v2/flux/bundle/manifests/v1".into(),
            message: "boom".into(),
        }
    }

    #[test]
    fn server_errors_are_outages_and_answers_are_not() {
        for code in [500, 502, 503, 429] {
            let error = classify(server(code));
            assert!(
                matches!(error, Error::ServerError { .. }) && error.is_outage(),
                "{code}: {error:?}"
            );
            assert!(
                error.to_string().contains(&format!("server error {code}")),
                "{error}"
            );
        }
        for (code, outage) in [(404, false), (401, false), (403, false), (400, false)] {
            assert_eq!(classify(server(code)).is_outage(), outage, "{code}");
        }
        let unauthorized = classify(OciDistributionError::UnauthorizedError {
            url: "http://registry.example:5000/v2/".into(),
        });
        assert!(!unauthorized.is_outage(), "{unauthorized:?}");
        let mismatch = classify(OciDistributionError::DigestError(
            oci_client::errors::DigestError::VerificationError {
                expected: "sha256:a".into(),
                actual: "sha256:b".into(),
            },
        ));
        assert!(
            matches!(mismatch, Error::DigestMismatch { .. }) && !mismatch.is_outage(),
            "{mismatch:?}"
        );
    }
}
