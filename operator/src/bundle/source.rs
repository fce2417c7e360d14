//! The source stage of a reconcile: resolve the artifact's tag, verify its signature, take
//! the layer from the cache or the registry, and unpack it within limits. Nothing reaches
//! the unpacker before the signature verified.
//!
//! The whole fetch ends within [`FETCH_DEADLINE_FACTOR`] request timeouts. Hashing, the cache
//! and unpacking run on blocking threads, never on the async runtime. When the registry gives
//! no answer (unreachable, timed out, server error, truncated body), the bundle the instance
//! was last reconciled from is served from the cache instead, but only if it was stored after
//! verification with the key the instance requires now; the fetch reports that as an outage.

use super::{
    archive::{self, Limits},
    cache::{self, Cache},
    layout::Bundle,
    reference::ArtifactRef,
    registry::{self, Registry},
    signature,
};
use crate::{api::constants::reason, policy::registry::FETCH_DEADLINE_FACTOR};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error(transparent)]
    Verification(#[from] signature::Error),
    #[error("{reference}: {source}")]
    Archive {
        reference: String,
        source: archive::Error,
    },
    #[error("{reference}: {source}")]
    Layout {
        reference: String,
        source: super::layout::Error,
    },
    #[error(transparent)]
    Cache(#[from] super::cache::Error),
    #[error("{reference}: the {what} task {detail}")]
    Task {
        reference: String,
        what: &'static str,
        detail: String,
    },
}

impl Error {
    /// The `FluxInstance` condition reason this failure is reported with.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Verification(e) if !e.is_outage() => reason::VERIFICATION_FAILED,
            _ => reason::ARTIFACT_FAILED,
        }
    }

    /// Whether the last verified bundle may stand in for this fetch: the registry gave no
    /// answer (unreachable, timed out, a server error, a body cut short), or it refused access
    /// or no longer has the artifact (401, 403, not found — an expired token, a deleted tag).
    /// Neither says anything against the bundle already applied, so it goes on being
    /// converged from the cache, as kustomize-controller keeps its last artifact. A verdict on
    /// the content (a failed or missing signature, a digest mismatch, a body larger than
    /// declared, an invalid bundle) never allows that.
    pub fn allows_fallback(&self) -> bool {
        match self {
            Error::Registry(e) => e.is_outage() || e.is_refusal(),
            Error::Verification(signature::Error::Fetch { source, .. }) => {
                source.is_outage() || source.is_refusal()
            }
            Error::Verification(e) => e.is_outage(),
            Error::Archive { .. } | Error::Layout { .. } | Error::Cache(_) | Error::Task { .. } => {
                false
            }
        }
    }
}

/// Which recorded verification lets a cached bundle stand in for a fetch.
#[derive(Debug, Clone, Copy)]
pub enum Verified<'a> {
    /// Verified with the key of this fingerprint ([`cache::key_fingerprint`]; `unsigned`
    /// when no key is required).
    With(&'a str),
    /// Verified with some key: the one required cannot be read now (its Secret is missing).
    ByAnyKey,
}

/// A bundle ready to render from.
#[derive(Debug)]
pub struct Fetched {
    /// The artifact pinned to the digest that was verified and unpacked.
    pub artifact: ArtifactRef,
    pub digest: String,
    pub bundle: Bundle,
    /// True when the layer came from the cache (no download).
    pub from_cache: bool,
    /// Set when the artifact could not be fetched (the message of the error: an outage, a
    /// refusal) and the bundle the instance was last reconciled from was served from the
    /// cache instead.
    pub source_error: Option<String>,
}

pub struct Source {
    pub cache: Cache,
    pub limits: Limits,
    /// How many artifacts the cache keeps.
    pub keep: usize,
}

/// Runs `work` on a blocking thread.
async fn blocking<T: Send + 'static>(
    reference: &ArtifactRef,
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    crate::task::off_runtime(what, work)
        .await
        .map_err(|lost| Error::Task {
            reference: reference.to_string(),
            what,
            detail: lost.detail,
        })
}

impl Source {
    /// Fetches `artifact`; with `public_key`, only after its cosign signature verified.
    ///
    /// `last_verified` is the manifest digest the instance was last reconciled from
    /// (`status.lastArtifactRevision`): when the registry gives no answer, that bundle is
    /// served from the cache if it was verified with the same `public_key` (or stored without
    /// one when none is required), and [`Fetched::outage`] carries the registry's error.
    pub async fn fetch(
        &self,
        registry: &Registry,
        artifact: &ArtifactRef,
        public_key: Option<&[u8]>,
        last_verified: Option<&str>,
    ) -> Result<Fetched, Error> {
        let fingerprint = cache::key_fingerprint(public_key);
        let deadline = registry
            .config()
            .timeout
            .saturating_mul(FETCH_DEADLINE_FACTOR);
        let fresh = tokio::time::timeout(
            deadline,
            self.fetch_fresh(registry, artifact, public_key, &fingerprint),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Error::Registry(registry::Error::TimedOut {
                operation: "fetch",
                reference: artifact.to_string(),
                registry: artifact.registry.clone(),
                after: deadline,
                progress: " (the whole fetch: resolve, signature, manifest and layer)".into(),
            }))
        });
        match (fresh, last_verified) {
            (Err(error), Some(last)) if error.allows_fallback() => {
                self.serve_last_verified(artifact, last, fingerprint, error)
                    .await
            }
            (result, _) => result,
        }
    }

    async fn fetch_fresh(
        &self,
        registry: &Registry,
        artifact: &ArtifactRef,
        public_key: Option<&[u8]>,
        fingerprint: &str,
    ) -> Result<Fetched, Error> {
        let digest = registry.resolve(artifact).await?;
        let pinned = artifact.with_digest(&digest);
        if let Some(key) = public_key {
            use tracing::Instrument;
            signature::verify(registry, &pinned, key)
                .instrument(tracing::info_span!("verify", artifact = %pinned))
                .await?;
        }
        let cached = {
            let (cache, digest, fingerprint) =
                (self.cache.clone(), digest.clone(), fingerprint.to_string());
            blocking(&pinned, "cache read", move || {
                let layer = cache.get(&digest)?;
                // Verified just now: the entry may stand in for this key during an outage.
                if let Err(e) = cache.record_verification(&digest, &fingerprint) {
                    tracing::warn!(error = %e, "cannot record the verification in the cache");
                }
                Some(layer)
            })
            .await?
        };
        let (layer, from_cache) = match cached {
            Some(layer) => (layer, true),
            None => (registry.pull(&pinned).await?.layer, false),
        };
        let (layer, bundle) = self.unpack(&pinned, layer).await?;
        // Cache only what unpacked into a valid bundle.
        if !from_cache {
            let (cache, digest, fingerprint, keep) = (
                self.cache.clone(),
                digest.clone(),
                fingerprint.to_string(),
                self.keep,
            );
            blocking(&pinned, "cache write", move || {
                cache.put(&digest, &layer, &fingerprint)?;
                cache.retain(keep)
            })
            .await??;
        }
        Ok(Fetched {
            artifact: pinned,
            digest,
            bundle,
            from_cache,
            source_error: None,
        })
    }

    /// Unpacks and checks the layout on a blocking thread; gives the layer back for the cache.
    async fn unpack(
        &self,
        pinned: &ArtifactRef,
        layer: Vec<u8>,
    ) -> Result<(Vec<u8>, Bundle), Error> {
        let limits = self.limits;
        let reference = pinned.to_string();
        blocking(pinned, "unpack", move || {
            let files = archive::unpack(&layer, &limits).map_err(|source| Error::Archive {
                reference: reference.clone(),
                source,
            })?;
            let bundle =
                Bundle::from_files(files).map_err(|source| Error::Layout { reference, source })?;
            Ok((layer, bundle))
        })
        .await?
    }

    /// When the artifact cannot be fetched: the bundle of `last` from the cache if verified
    /// with the required key, else the fetch's error.
    async fn serve_last_verified(
        &self,
        artifact: &ArtifactRef,
        last: &str,
        fingerprint: String,
        error: Error,
    ) -> Result<Fetched, Error> {
        match self
            .cached(artifact, last, Verified::With(&fingerprint))
            .await?
        {
            Some(mut fetched) => {
                tracing::warn!(
                    artifact = %fetched.artifact,
                    error = %error,
                    "artifact unavailable: serving the last verified bundle from the cache"
                );
                fetched.source_error = Some(error.to_string());
                Ok(fetched)
            }
            None => {
                tracing::warn!(
                    artifact = %artifact,
                    last_verified = last,
                    error = %error,
                    "artifact unavailable and no bundle verified with the required key is cached"
                );
                Err(error)
            }
        }
    }

    /// The bundle of `last` from the cache, if it is there, intact, unpacks, and carries the
    /// `verified` record; `source_error` is left for the caller to say why it stands in.
    pub async fn cached(
        &self,
        artifact: &ArtifactRef,
        last: &str,
        verified: Verified<'_>,
    ) -> Result<Option<Fetched>, Error> {
        let pinned = artifact.with_digest(last);
        let cached = {
            let (cache, last) = (self.cache.clone(), last.to_string());
            let fingerprint = match verified {
                Verified::With(fingerprint) => Some(fingerprint.to_string()),
                Verified::ByAnyKey => None,
            };
            blocking(&pinned, "cache read", move || match fingerprint {
                Some(fingerprint) => cache.get_verified(&last, &fingerprint),
                None => cache.get_verified_by_any_key(&last),
            })
            .await?
        };
        let Some(layer) = cached else {
            return Ok(None);
        };
        match self.unpack(&pinned, layer).await {
            Ok((_, bundle)) => Ok(Some(Fetched {
                artifact: pinned,
                digest: last.to_string(),
                bundle,
                from_cache: true,
                source_error: None,
            })),
            Err(unpack) => {
                tracing::warn!(artifact = %pinned, error = %unpack, "cached bundle unusable");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reference() -> String {
        "oci://registry.example:5000/flux/bundle:latest".into()
    }

    fn registry_error(e: registry::Error) -> Error {
        Error::Registry(e)
    }

    #[test]
    fn outages_and_refusals_allow_the_cached_bundle_verdicts_on_the_content_do_not() {
        let outages = [
            registry_error(registry::Error::Unreachable {
                reference: reference(),
                detail: "connection refused".into(),
            }),
            registry_error(registry::Error::TimedOut {
                operation: "pull layer of",
                reference: reference(),
                registry: "registry.example:5000".into(),
                after: Duration::from_secs(5),
                progress: String::new(),
            }),
            registry_error(registry::Error::ServerError {
                operation: "resolve",
                reference: reference(),
                code: 503,
                message: "unavailable".into(),
            }),
            registry_error(registry::Error::Truncated {
                operation: "pull layer of",
                reference: reference(),
                received: 10,
                expected: 100,
                detail: String::new(),
            }),
            Error::Verification(signature::Error::Fetch {
                reference: reference(),
                source: Box::new(registry::Error::ServerError {
                    operation: "pull the signature manifest of",
                    reference: reference(),
                    code: 500,
                    message: String::new(),
                }),
            }),
            // Refusals: an expired token, a deleted tag or signature access.
            registry_error(registry::Error::NotFound {
                reference: reference(),
            }),
            registry_error(registry::Error::Unauthorized {
                reference: reference(),
            }),
            Error::Verification(signature::Error::Fetch {
                reference: reference(),
                source: Box::new(registry::Error::Unauthorized {
                    reference: reference(),
                }),
            }),
        ];
        for error in &outages {
            assert!(error.allows_fallback(), "{error}");
        }
        assert_eq!(outages[0].reason(), reason::ARTIFACT_FAILED);

        let answers = [
            registry_error(registry::Error::DigestMismatch {
                reference: reference(),
                expected: "sha256:a".into(),
                actual: "sha256:b".into(),
            }),
            registry_error(registry::Error::LargerThanDeclared {
                operation: "pull layer of",
                reference: reference(),
                declared: 100,
            }),
            registry_error(registry::Error::LayerTooLarge {
                reference: reference(),
                size: 1 << 40,
                limit: 1 << 28,
            }),
            registry_error(registry::Error::NotAFluxArtifact {
                reference: reference(),
                found: "an image".into(),
            }),
            Error::Verification(signature::Error::WrongKey {
                reference: reference(),
            }),
            Error::Verification(signature::Error::NotSigned {
                reference: reference(),
                signature_tag: "x.sig".into(),
            }),
            Error::Verification(signature::Error::TooManySignatures {
                reference: reference(),
                signature_tag: "x.sig".into(),
                count: 5000,
                limit: 32,
            }),
            Error::Archive {
                reference: reference(),
                source: archive::Error::PathTraversal {
                    path: "../x".into(),
                },
            },
        ];
        for error in &answers {
            assert!(!error.allows_fallback(), "{error}");
        }
        assert_eq!(answers[4].reason(), reason::VERIFICATION_FAILED);
    }

    #[test]
    fn failure_messages_name_the_cause() {
        let timed_out = registry::Error::TimedOut {
            operation: "pull layer of",
            reference: reference(),
            registry: "registry.example:5000".into(),
            after: Duration::from_secs(5),
            progress: ", after 0 of 100 bytes".into(),
        };
        let text = timed_out.to_string();
        assert!(
            text.contains("timed out after 5s") && text.contains("registry.example:5000"),
            "{text}"
        );
        let larger = registry::Error::LargerThanDeclared {
            operation: "pull layer of",
            reference: reference(),
            declared: 100,
        };
        assert!(
            larger.to_string().contains("larger than declared"),
            "{larger}"
        );
        let server = registry::Error::ServerError {
            operation: "resolve",
            reference: reference(),
            code: 500,
            message: String::new(),
        };
        assert!(server.to_string().contains("server error 500"), "{server}");
        let truncated = registry::Error::Truncated {
            operation: "pull layer of",
            reference: reference(),
            received: 10,
            expected: 100,
            detail: String::new(),
        };
        assert!(truncated.to_string().contains("truncated"), "{truncated}");
    }
}
