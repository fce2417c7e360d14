//! The source stage of a reconcile: resolve the artifact's tag, verify its signature, take
//! the layer from the cache or the registry, and unpack it within limits. Nothing reaches
//! the unpacker before the signature verified.

use super::{
    archive::{self, Limits},
    cache::Cache,
    layout::Bundle,
    reference::ArtifactRef,
    registry::{self, Registry},
    signature,
};
use crate::api::constants::reason;

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
}

impl Error {
    /// The `FluxInstance` condition reason this failure is reported with.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Verification(_) => reason::VERIFICATION_FAILED,
            _ => reason::ARTIFACT_FAILED,
        }
    }
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
}

pub struct Source {
    pub cache: Cache,
    pub limits: Limits,
    /// How many artifacts the cache keeps.
    pub keep: usize,
}

impl Source {
    /// Fetches `artifact`; with `public_key`, only after its cosign signature verified.
    pub async fn fetch(
        &self,
        registry: &Registry,
        artifact: &ArtifactRef,
        public_key: Option<&[u8]>,
    ) -> Result<Fetched, Error> {
        let digest = registry.resolve(artifact).await?;
        let pinned = artifact.with_digest(&digest);
        if let Some(key) = public_key {
            use tracing::Instrument;
            signature::verify(registry, &pinned, key)
                .instrument(tracing::info_span!("verify", artifact = %pinned))
                .await?;
        }
        let (layer, from_cache) = match self.cache.get(&digest) {
            Some(layer) => (layer, true),
            None => {
                let pulled = registry.pull(&pinned).await?;
                (pulled.layer, false)
            }
        };
        let files = archive::unpack(&layer, &self.limits).map_err(|source| Error::Archive {
            reference: pinned.to_string(),
            source,
        })?;
        let bundle = Bundle::from_files(files).map_err(|source| Error::Layout {
            reference: pinned.to_string(),
            source,
        })?;
        // Cache only what unpacked into a valid bundle.
        if !from_cache {
            self.cache.put(&digest, &layer)?;
            self.cache.retain(self.keep)?;
        }
        Ok(Fetched {
            artifact: pinned,
            digest,
            bundle,
            from_cache,
        })
    }
}
