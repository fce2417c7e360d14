//! What the registry client ([`super::registry`]) and its capped reads ([`super::http`])
//! share: how to reach registries, the credentials, and the errors sorted into what a person
//! can act on.

use std::time::Duration;

use oci_client::{
    client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol},
    errors::{OciDistributionError, OciErrorCode},
    secrets::RegistryAuth,
};

use super::{CONFIG_MEDIA_TYPE, CONTENT_MEDIA_TYPE, reference::ArtifactRef};
use crate::policy::registry::{MAX_LAYER_BYTES, REQUEST_TIMEOUT};

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
pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
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
pub(super) fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
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
