//! Cosign key-pair signatures of bundles, in the `.sig` tag scheme (SimpleSigning payloads),
//! so `cosign sign --key` / `cosign verify --key` and fluxop accept each other's signatures.
//! Everything works offline: no transparency log, no certificate authority.

use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor};
use serde::Deserialize;
use sigstore::{
    cosign::{
        ClientBuilder, Constraint, CosignCapabilities, SignatureLayer,
        constraint::PrivateKeySigner,
        simple_signing::SimpleSigning,
        verification_constraint::{PublicKeyVerifier, VerificationConstraintVec},
        verify_constraints,
    },
    crypto::{SigStoreSigner, SigningScheme, signing_key::SigStoreKeyPair},
    registry::{
        Auth, Certificate, CertificateEncoding, ClientConfig, ClientProtocol, OciReference,
    },
};
use zeroize::Zeroizing;

use super::{
    reference::ArtifactRef,
    registry::{self, Registry, RegistryConfig},
};
use crate::policy::registry::{
    FETCH_DEADLINE_FACTOR, MAX_SIGNATURE_LAYER_BYTES, MAX_SIGNATURE_LAYERS,
};

/// Media type of a cosign SimpleSigning signature layer.
const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature over the layer's bytes.
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// Cosign's key type: ECDSA P-256 with SHA-256.
const SCHEME: SigningScheme = SigningScheme::ECDSA_P256_SHA256_ASN1;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot read the private key: {0} (is the password right? cosign reads it from COSIGN_PASSWORD)"
    )]
    PrivateKey(String),
    #[error("cannot read the public key: {0} (expected a PEM public key such as cosign.pub)")]
    PublicKey(String),
    #[error("cannot generate a key pair: {0}")]
    KeyGeneration(String),
    #[error("{reference}: a signature is made over a digest; pass oci://...@sha256:<digest>")]
    NotPinned { reference: String },
    #[error("{reference} is not signed: no cosign signature found at {signature_tag}")]
    NotSigned {
        reference: String,
        signature_tag: String,
    },
    #[error("{reference} is signed, but by no key that verifies with the given public key")]
    WrongKey { reference: String },
    #[error(
        "{reference}: its signature manifest {signature_tag} lists {count} layers, over the \
         limit of {limit}; none was downloaded"
    )]
    TooManySignatures {
        reference: String,
        signature_tag: String,
        count: usize,
        limit: usize,
    },
    #[error(
        "verify the signature of {reference}: timed out after {}s waiting for the registry \
         {registry} (the whole verification: manifest and signature layers)",
        after.as_secs_f32()
    )]
    TimedOut {
        reference: String,
        registry: String,
        after: std::time::Duration,
    },
    #[error("{operation} {reference}: {detail}")]
    Registry {
        operation: &'static str,
        reference: String,
        detail: String,
    },
    /// The signature could not be read from the registry (with fluxop's own bounded client).
    #[error("fetch the signature of {reference}: {source}")]
    Fetch {
        reference: String,
        source: Box<registry::Error>,
    },
}

impl Error {
    /// Whether the registry gave no answer (see [`registry::Error::is_outage`]) rather than
    /// a verdict on the signature.
    pub fn is_outage(&self) -> bool {
        matches!(self, Error::Fetch { source, .. } if source.is_outage())
            || matches!(self, Error::TimedOut { .. })
    }
}

/// A new cosign-compatible key pair: the private key encrypted with `password` (PEM
/// `ENCRYPTED SIGSTORE PRIVATE KEY`, which cosign reads) and the public key.
pub struct KeyPair {
    pub private_pem: Zeroizing<String>,
    pub public_pem: String,
}

pub fn generate_key_pair(password: &[u8]) -> Result<KeyPair, Error> {
    let failed = |e: sigstore::errors::SigstoreError| Error::KeyGeneration(e.to_string());
    let pair = SCHEME
        .create_signer()
        .and_then(|s| s.to_sigstore_keypair())
        .map_err(failed)?;
    Ok(KeyPair {
        private_pem: pair
            .private_key_to_encrypted_pem(password)
            .map_err(failed)?,
        public_pem: pair.public_key_to_pem().map_err(failed)?,
    })
}

fn signer(private_pem: &[u8], password: &[u8]) -> Result<SigStoreSigner, Error> {
    let invalid = |e: sigstore::errors::SigstoreError| Error::PrivateKey(e.to_string());
    // Cosign keys are always encrypted, also with an empty password.
    let pair = if String::from_utf8_lossy(private_pem).contains("ENCRYPTED") {
        SigStoreKeyPair::from_encrypted_pem(private_pem, password)
    } else {
        SigStoreKeyPair::from_pem(private_pem)
    }
    .map_err(invalid)?;
    pair.to_sigstore_signer(&SCHEME).map_err(invalid)
}

/// Checks a public key without touching a registry (for start-up and CLI input errors).
pub fn parse_public_key(public_pem: &[u8]) -> Result<PublicKeyVerifier, Error> {
    PublicKeyVerifier::try_from(public_pem).map_err(|e| Error::PublicKey(e.to_string()))
}

/// sigstore's registry client, configured from the same [`RegistryConfig::client_config`] as
/// the bundle client, so plain-HTTP and CA rules live in one place.
fn sigstore_client(config: &RegistryConfig) -> Result<sigstore::cosign::Client, String> {
    use oci_client::client::ClientProtocol as Oci;
    let oci = config.client_config();
    let client_config = ClientConfig {
        protocol: match oci.protocol {
            Oci::Http => ClientProtocol::Http,
            Oci::Https => ClientProtocol::Https,
            Oci::HttpsExcept(hosts) => ClientProtocol::HttpsExcept(hosts),
        },
        extra_root_certificates: oci
            .extra_root_certificates
            .into_iter()
            .map(|c| Certificate {
                encoding: CertificateEncoding::Pem,
                data: c.data,
            })
            .collect(),
        ..ClientConfig::default()
    };
    ClientBuilder::default()
        .with_oci_client_config(client_config)
        .build()
        .map_err(|e| e.to_string())
}

fn registry_error(artifact: &ArtifactRef, operation: &'static str, detail: impl ToString) -> Error {
    Error::Registry {
        operation,
        reference: artifact.to_string(),
        detail: detail.to_string(),
    }
}

/// A sigstore client with the registry's settings and credentials, and where the artifact's
/// signatures live.
struct Session {
    client: sigstore::cosign::Client,
    auth: Auth,
    image: OciReference,
    signature_image: OciReference,
    digest: String,
}

async fn open(registry: &Registry, artifact: &ArtifactRef) -> Result<Session, Error> {
    let image = pinned(artifact)?;
    let mut client = sigstore_client(registry.config())
        .map_err(|e| registry_error(artifact, "connect to the registry of", e))?;
    let auth: Auth = (&registry.credentials().to_registry_auth()).into();
    let (signature_image, digest) = client
        .triangulate(&image, &auth)
        .await
        .map_err(|e| registry_error(artifact, "resolve", e))?;
    Ok(Session {
        client,
        auth,
        image,
        signature_image,
        digest,
    })
}

fn pinned(artifact: &ArtifactRef) -> Result<OciReference, Error> {
    if artifact.digest.is_none() {
        return Err(Error::NotPinned {
            reference: artifact.to_string(),
        });
    }
    // Sign and verify the digest alone, so a moving tag never changes what is checked.
    let digest_only = ArtifactRef {
        tag: None,
        ..artifact.clone()
    };
    digest_only
        .to_registry_string()
        .parse()
        .map_err(|e: sigstore::errors::SigstoreError| Error::Registry {
            operation: "parse",
            reference: artifact.to_string(),
            detail: e.to_string(),
        })
}

/// Signs the artifact pinned by digest and pushes the signature to its `.sig` tag; returns
/// that tag.
pub async fn sign(
    registry: &Registry,
    artifact: &ArtifactRef,
    private_pem: &[u8],
    password: &[u8],
) -> Result<String, Error> {
    let signer = signer(private_pem, password)?;
    // sigstore's registry client takes no timeouts: the whole exchange gets a deadline.
    let deadline = registry
        .config()
        .timeout
        .saturating_mul(FETCH_DEADLINE_FACTOR);
    let exchange = async {
        let mut session = open(registry, artifact).await?;
        let mut layer = SignatureLayer::new_unsigned(&session.image, &session.digest)
            .map_err(|e| registry_error(artifact, "sign", e))?;
        PrivateKeySigner::new_with_signer(signer)
            .add_constraint(&mut layer)
            .map_err(|e| registry_error(artifact, "sign", e))?;
        session
            .client
            .push_signature(None, &session.auth, &session.signature_image, vec![layer])
            .await
            .map_err(|e| registry_error(artifact, "push the signature of", e))?;
        Ok(session.signature_image.to_string())
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(registry_error(
                artifact,
                "sign",
                format!(
                    "timed out after {}s waiting for the registry {}",
                    deadline.as_secs_f32(),
                    artifact.registry
                ),
            ))
        })
}

/// The parts of a signature manifest that verification reads.
#[derive(Debug, Deserialize)]
struct SignatureManifest {
    #[serde(default)]
    layers: Vec<OciDescriptor>,
}

/// Verifies that the artifact pinned by digest carries a signature made with the private key
/// of `public_pem`. Nothing of the artifact is downloaded.
///
/// The `.sig` manifest and its layers are read with fluxop's own registry client, so the same
/// timeouts, size limits and TLS settings apply as to the bundle; a manifest listing more than
/// [`MAX_SIGNATURE_LAYERS`] layers is refused before any is downloaded, each layer is read
/// within [`MAX_SIGNATURE_LAYER_BYTES`], and the whole verification ends within
/// [`FETCH_DEADLINE_FACTOR`] request timeouts. The checks are sigstore's for the key-pair
/// case (SimpleSigning payload naming this digest, signature annotation, layer digest), and
/// sigstore verifies the signature itself.
pub async fn verify(
    registry: &Registry,
    artifact: &ArtifactRef,
    public_pem: &[u8],
) -> Result<(), Error> {
    let verifier = parse_public_key(public_pem)?;
    let deadline = registry
        .config()
        .timeout
        .saturating_mul(FETCH_DEADLINE_FACTOR);
    tokio::time::timeout(deadline, verify_with(registry, artifact, verifier))
        .await
        .unwrap_or_else(|_| {
            Err(Error::TimedOut {
                reference: artifact.to_string(),
                registry: artifact.registry.clone(),
                after: deadline,
            })
        })
}

async fn verify_with(
    registry: &Registry,
    artifact: &ArtifactRef,
    verifier: PublicKeyVerifier,
) -> Result<(), Error> {
    let Some(digest) = artifact.digest.clone() else {
        return Err(Error::NotPinned {
            reference: artifact.to_string(),
        });
    };
    let signature_ref = ArtifactRef {
        tag: Some(format!("{}.sig", digest.replace(':', "-"))),
        digest: None,
        ..artifact.clone()
    };
    let fetch_failed = |source| Error::Fetch {
        reference: artifact.to_string(),
        source: Box::new(source),
    };
    let not_signed = || Error::NotSigned {
        reference: artifact.to_string(),
        signature_tag: signature_ref.to_registry_string(),
    };
    let manifest = match registry
        .raw_manifest(
            "pull the signature manifest of",
            &signature_ref,
            &[OCI_IMAGE_MEDIA_TYPE, DOCKER_MANIFEST_MEDIA_TYPE],
        )
        .await
    {
        Ok((_, bytes)) => bytes,
        Err(registry::Error::NotFound { .. }) => return Err(not_signed()),
        Err(e) => return Err(fetch_failed(e)),
    };
    let Ok(manifest) = serde_json::from_slice::<SignatureManifest>(&manifest) else {
        return Err(not_signed());
    };
    if manifest.layers.len() > MAX_SIGNATURE_LAYERS {
        return Err(Error::TooManySignatures {
            reference: artifact.to_string(),
            signature_tag: signature_ref.to_registry_string(),
            count: manifest.layers.len(),
            limit: MAX_SIGNATURE_LAYERS,
        });
    }
    let mut layers = Vec::new();
    for descriptor in manifest
        .layers
        .iter()
        .filter(|l| l.media_type == SIMPLE_SIGNING_MEDIA_TYPE)
    {
        let Some(signature) = descriptor
            .annotations
            .as_ref()
            .and_then(|a| a.get(SIGNATURE_ANNOTATION))
        else {
            continue;
        };
        let data = match registry
            .pull_blob_bounded(
                "pull a signature layer of",
                &signature_ref,
                descriptor,
                MAX_SIGNATURE_LAYER_BYTES,
            )
            .await
        {
            Ok(data) => data,
            // Too large or the wrong content: not a signature of ours, as sigstore skips it.
            Err(e) if !e.is_outage() => {
                tracing::info!(artifact = %artifact, error = %e, "skipping a signature layer");
                continue;
            }
            Err(e) => return Err(fetch_failed(e)),
        };
        let Ok(simple_signing) = serde_json::from_slice::<SimpleSigning>(&data) else {
            continue;
        };
        // A payload naming another digest (a signature copied over) does not count.
        if !simple_signing.satisfies_manifest_digest(&digest) {
            continue;
        }
        layers.push(SignatureLayer {
            simple_signing,
            oci_digest: descriptor.digest.clone(),
            certificate_signature: None,
            bundle: None,
            signature: Some(signature.clone()),
            raw_data: data,
        });
    }
    if layers.is_empty() {
        return Err(not_signed());
    }
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    verify_constraints(&layers, constraints.iter()).map_err(|_| Error::WrongKey {
        reference: artifact.to_string(),
    })
}

/// Docker's schema 2 manifest media type (older cosign versions write signatures with it).
const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_read_back_with_their_password_only() {
        let pair = generate_key_pair(b"correct horse").unwrap();
        assert!(pair.private_pem.contains("ENCRYPTED SIGSTORE PRIVATE KEY"));
        assert!(pair.public_pem.contains("PUBLIC KEY"));
        assert!(signer(pair.private_pem.as_bytes(), b"correct horse").is_ok());
        let Err(error) = signer(pair.private_pem.as_bytes(), b"wrong") else {
            panic!("a wrong password was accepted")
        };
        assert!(
            error.to_string().contains("is the password right?"),
            "{error}"
        );
        assert!(parse_public_key(pair.public_pem.as_bytes()).is_ok());
        assert!(parse_public_key(b"not a key").is_err());
    }

    #[test]
    fn empty_passwords_work_as_with_cosign() {
        let pair = generate_key_pair(b"").unwrap();
        assert!(signer(pair.private_pem.as_bytes(), b"").is_ok());
    }
}
