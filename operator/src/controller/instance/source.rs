//! The source stage of a reconcile: credentials and keys from Secrets, a registry client with
//! the operator's settings, the bundle (embedded, cached or pulled and verified), the Flux
//! version it selects, and the rendered revision. CPU-heavy work (parsing a release,
//! rendering) runs off the async runtime.

use std::sync::Arc;

use kube::{Client, ResourceExt};
use semver::Version;

use super::{Context, status::Failure};
use crate::{
    api::{FluxInstance, FluxInstanceSpec, constants::reason},
    bundle::{
        credentials, embedded,
        layout::Bundle,
        reference::ArtifactRef,
        registry::{Credentials, Registry, RegistryConfig},
        version,
    },
    render::{Release, Rendered},
};

impl Context {
    /// A registry client with the operator's registry settings (plain-HTTP hosts, the CA
    /// bundle from its Secret, timeout) and `credentials`.
    pub(in crate::controller) async fn registry(
        &self,
        credentials: Credentials,
    ) -> Result<Registry, Failure> {
        let ca_pem = match &self.registries.ca_secret {
            None => Vec::new(),
            Some(name) => vec![
                secret_data(
                    &self.client,
                    &self.namespace,
                    name,
                    "ca.crt",
                    "registry CA bundle",
                )
                .await?,
            ],
        };
        Ok(Registry::new(
            RegistryConfig {
                insecure: self.registries.insecure.clone(),
                ca_pem,
                timeout: self.registries.timeout,
                ..RegistryConfig::default()
            },
            credentials,
        ))
    }
}

pub(in crate::controller) async fn secret_data(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
    what: &str,
) -> Result<Vec<u8>, Failure> {
    crate::controller::secret_key(client, namespace, name, key, what)
        .await
        .map_err(|message| Failure::retry(reason::ARTIFACT_FAILED, message))
}

/// The bundle a reconcile works from.
pub(super) struct Fetched {
    /// Manifest digest of the artifact (or of the embedded bundle's layer).
    pub(super) digest: String,
    /// Where it came from, for messages.
    pub(super) origin: String,
    /// Shared with the parsing thread; the embedded one is built once per process.
    pub(super) bundle: Arc<Bundle>,
    /// Why the artifact could not be fetched (an outage, a refusal, an unreadable Secret),
    /// when the last verified bundle was taken from the cache instead.
    pub(super) source_error: Option<String>,
    /// The key the bundle was verified with ([`crate::bundle::cache::key_fingerprint`]);
    /// `None` for the embedded bundle.
    pub(super) key_fingerprint: Option<String>,
}

/// The embedded bundle, built once per process.
fn embedded_bundle() -> Result<Fetched, Failure> {
    static SHARED: std::sync::OnceLock<Arc<Bundle>> = std::sync::OnceLock::new();
    match embedded::bundle() {
        Some(Ok((digest, bundle))) => Ok(Fetched {
            origin: format!("the bundle embedded in fluxop ({digest})"),
            digest: digest.clone(),
            bundle: SHARED.get_or_init(|| Arc::new(bundle.clone())).clone(),
            source_error: None,
            key_fingerprint: None,
        }),
        Some(Err(e)) => Err(Failure::stalled(
            reason::ARTIFACT_FAILED,
            format!("the embedded bundle is invalid: {e}"),
        )),
        None => Err(Failure::stalled(
            reason::ARTIFACT_FAILED,
            "this fluxop build embeds no bundle: set spec.distribution.artifact to an oci:// Flux bundle",
        )),
    }
}

/// The instance's bundle: the embedded one, or its artifact, verified when `verify` is set.
pub(super) async fn fetch(instance: &FluxInstance, ctx: &Context) -> Result<Fetched, Failure> {
    let distribution = &instance.spec.distribution;
    let namespace = instance.namespace().unwrap_or_default();
    let Some(artifact) = distribution.artifact.as_deref().filter(|a| !a.is_empty()) else {
        return embedded_bundle();
    };
    let artifact = ArtifactRef::parse(artifact)
        .map_err(|e| Failure::stalled(reason::ARTIFACT_FAILED, e.to_string()))?;
    ctx.trust
        .check_artifact(&artifact)
        .map_err(|why| Failure::stalled(reason::POLICY_VIOLATION, why))?;
    // What may stand in when the artifact cannot be fetched: the artifact last worked from,
    // if the spec still names the same one (a new artifact must come from the registry or
    // not at all).
    let status = instance.status.as_ref();
    let same_artifact = status
        .and_then(|s| s.last_applied_spec.as_ref())
        .is_some_and(|applied| {
            applied["distribution"]["artifact"].as_str() == distribution.artifact.as_deref()
        });
    let last_verified = status
        .and_then(|s| s.last_artifact_revision.as_deref())
        .filter(|digest| same_artifact && artifact.digest.as_deref().is_none_or(|d| d == *digest));
    let credentials = match distribution
        .artifact_pull_secret
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        None => Ok(Credentials::Anonymous),
        Some(name) => secret_data(
            &ctx.client,
            &namespace,
            name,
            ".dockerconfigjson",
            "artifactPullSecret",
        )
        .await
        .and_then(|config| {
            credentials::from_docker_config(&config, &artifact.registry).map_err(|e| {
                Failure::retry(
                    reason::ARTIFACT_FAILED,
                    format!("Secret {namespace}/{name} (artifactPullSecret): {e}"),
                )
            })
        }),
    };
    // The operator's key, when its policy names one, replaces the instance's `verify`.
    let required = ctx.trust.signature_secret.as_deref();
    let key_secret = match (required, &distribution.verify) {
        (Some(name), _) => Some((
            ctx.namespace.as_str(),
            name,
            "the operator's signature policy",
        )),
        (None, Some(verify)) => Some((
            namespace.as_str(),
            verify.secret_ref.name.as_str(),
            "verify.secretRef",
        )),
        (None, None) => None,
    };
    let public_key = match key_secret {
        None => Ok(None),
        Some((secret_namespace, name, what)) => {
            secret_data(&ctx.client, secret_namespace, name, "cosign.pub", what)
                .await
                .map(Some)
                .map_err(|f| Failure {
                    reason: reason::VERIFICATION_FAILED,
                    ..f
                })
        }
    };
    // A Secret that cannot be read now says nothing against the bundle already applied: it
    // goes on being converged from the cache — verified with the key when that one is
    // readable, with whichever key it was verified with when not. Under the operator's
    // policy only its own key counts, so nothing is served without it.
    let public_key = match public_key {
        Ok(key) => key,
        Err(failure) if required.is_some() => return Err(failure),
        Err(failure) => return serve_cached(ctx, &artifact, last_verified, None, failure).await,
    };
    let credentials = match credentials {
        Ok(credentials) => credentials,
        Err(failure) => {
            let fingerprint = crate::bundle::cache::key_fingerprint(public_key.as_deref());
            return serve_cached(ctx, &artifact, last_verified, Some(&fingerprint), failure).await;
        }
    };
    let registry = ctx.registry(credentials).await?;
    let key_fingerprint = crate::bundle::cache::key_fingerprint(public_key.as_deref());
    let fetched = ctx
        .source
        .fetch(&registry, &artifact, public_key.as_deref(), last_verified)
        .await
        .map_err(|e| {
            let message = match required {
                Some(name) if e.reason() == reason::VERIFICATION_FAILED => format!(
                    "{e} (the operator requires distribution artifacts signed with the key in Secret {}/{name}, {})",
                    ctx.namespace,
                    crate::controller::trust::SIGNATURE_FLAG
                ),
                _ => e.to_string(),
            };
            Failure::retry(e.reason(), message)
        })?;
    match &fetched.source_error {
        Some(error) => {
            tracing::warn!(artifact = %fetched.artifact, %error, "artifact unavailable: using the last verified bundle from the cache");
        }
        None if fetched.from_cache => {
            tracing::debug!(artifact = %fetched.artifact, "bundle unchanged (cached)");
        }
        None => tracing::info!(artifact = %fetched.artifact, "bundle fetched"),
    }
    Ok(Fetched {
        digest: fetched.digest,
        origin: fetched.artifact.to_string(),
        bundle: Arc::new(fetched.bundle),
        source_error: fetched.source_error,
        key_fingerprint: Some(key_fingerprint),
    })
}

/// The bundle the running revision was rendered from (`status.lastArtifactRevision`), from
/// the cache, verified with the key `fetched` was verified with: what a reconcile converges
/// when the artifact now offers only an older Flux it refuses to move back to.
pub(super) async fn applied_bundle(
    instance: &FluxInstance,
    ctx: &Context,
    fetched: &Fetched,
) -> Option<Fetched> {
    let artifact = instance.spec.distribution.artifact.as_deref()?;
    let artifact = ArtifactRef::parse(artifact).ok()?;
    let digest = instance
        .status
        .as_ref()?
        .last_artifact_revision
        .as_deref()?;
    let fingerprint = fetched.key_fingerprint.as_deref()?;
    from_cache(ctx, &artifact, digest, Some(fingerprint), None).await
}

/// When a Secret the fetch needs cannot be read: the last verified bundle from the cache, with
/// `failure`'s message as the source error, or `failure` when there is none to serve.
async fn serve_cached(
    ctx: &Context,
    artifact: &ArtifactRef,
    last_verified: Option<&str>,
    fingerprint: Option<&str>,
    failure: Failure,
) -> Result<Fetched, Failure> {
    let Some(last) = last_verified else {
        return Err(failure);
    };
    let message = failure.message.clone();
    match from_cache(ctx, artifact, last, fingerprint, Some(message)).await {
        Some(fetched) => {
            tracing::warn!(artifact = %fetched.origin, error = %failure.message, "a Secret of the fetch cannot be read: using the last verified bundle from the cache");
            Ok(fetched)
        }
        None => Err(failure),
    }
}

/// The bundle `artifact@digest` from the cache, verified with the key of `fingerprint` (with
/// any key when `None`); `None` when it is not there (a cache that cannot be read is logged).
async fn from_cache(
    ctx: &Context,
    artifact: &ArtifactRef,
    digest: &str,
    fingerprint: Option<&str>,
    source_error: Option<String>,
) -> Option<Fetched> {
    use crate::bundle::source::Verified;
    let verified = fingerprint.map_or(Verified::ByAnyKey, Verified::With);
    match ctx.source.cached(artifact, digest, verified).await {
        Ok(cached) => cached.map(|cached| Fetched {
            digest: cached.digest,
            origin: cached.artifact.to_string(),
            bundle: Arc::new(cached.bundle),
            source_error,
            key_fingerprint: fingerprint.map(String::from),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "reading the cache failed");
            None
        }
    }
}

/// The Flux version the instance asks for, among the bundle's.
pub(super) fn select(
    instance: &FluxInstance,
    bundle: &Bundle,
) -> Result<version::Selection, version::Error> {
    let installed = instance
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.as_deref())
        .and_then(crate::bundle::version::of_revision);
    version::select(
        &instance.spec.distribution.version,
        &bundle.versions(),
        installed.as_ref(),
    )
}

/// (artifact digest, Flux version).
type ReleaseKey = (String, Version);

/// Parsed releases, kept for the few artifacts in use: YAML is read once per bundle.
#[derive(Default)]
pub struct ReleaseCache {
    releases: std::sync::Mutex<Vec<(ReleaseKey, Arc<Release>)>>,
}

impl ReleaseCache {
    const KEEP: usize = 4;

    fn lookup(&self, key: &ReleaseKey) -> Option<Arc<Release>> {
        let mut releases = self
            .releases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let position = releases.iter().position(|(k, _)| k == key)?;
        // Most recently used last.
        let entry = releases.remove(position);
        let release = entry.1.clone();
        releases.push(entry);
        Some(release)
    }

    fn insert(&self, key: ReleaseKey, release: Arc<Release>) {
        let mut releases = self
            .releases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if releases.iter().all(|(k, _)| *k != key) {
            releases.push((key, release));
        }
        if releases.len() > Self::KEEP {
            releases.remove(0);
        }
    }

    /// The release of `version` in the bundle with `digest`, parsed on a blocking thread on
    /// a miss (the lock is never held while parsing).
    pub(super) async fn get_or_parse(
        &self,
        digest: &str,
        bundle: &Arc<Bundle>,
        version: &Version,
    ) -> Result<Arc<Release>, Failure> {
        let key = (digest.to_string(), version.clone());
        if let Some(release) = self.lookup(&key) {
            return Ok(release);
        }
        let (bundle, parse_version) = (bundle.clone(), version.clone());
        let release =
            crate::task::off_runtime("parse", move || Release::parse(&bundle, &parse_version))
                .await
                .map_err(lost)?
                .map_err(build_failed)?;
        let release = Arc::new(release);
        self.insert(key, release.clone());
        Ok(release)
    }
}

/// The revision rendered from `spec` for `version` of the fetched bundle, off the runtime.
pub(super) async fn render_version(
    ctx: &Context,
    instance: &FluxInstance,
    spec: &FluxInstanceSpec,
    fetched: &Fetched,
    version: &Version,
) -> Result<Rendered, Failure> {
    let release = ctx
        .releases
        .get_or_parse(&fetched.digest, &fetched.bundle, version)
        .await?;
    let namespace = instance.namespace().unwrap_or_default();
    let spec = spec.clone();
    let rendered = crate::task::off_runtime("render", move || {
        crate::render::render_release(&namespace, &spec, &release)
    })
    .await
    .map_err(lost)?
    .map_err(build_failed)?;
    ctx.trust
        .check_images(&rendered.objects)
        .map_err(|why| Failure::stalled(reason::POLICY_VIOLATION, why))?;
    Ok(rendered)
}

/// The spec cannot be rendered from this bundle: terminal until one of them changes.
pub(super) fn build_failed(error: impl std::fmt::Display) -> Failure {
    Failure::stalled(reason::BUILD_FAILED, error.to_string())
}

/// A panic while parsing or rendering is a bug: this reconcile fails and is retried.
fn lost(lost: crate::task::Lost) -> Failure {
    Failure::retry(reason::RECONCILIATION_FAILED, lost.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn parsed_releases_are_reused_per_digest_and_the_oldest_is_dropped() {
        let bundle = Arc::new(crate::testing::vendored_bundle());
        let cache = ReleaseCache::default();
        let version = Version::new(2, 9, 4);
        let first = cache
            .get_or_parse("sha256:a", &bundle, &version)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(
            &first,
            &cache
                .get_or_parse("sha256:a", &bundle, &version)
                .await
                .unwrap()
        ));
        for digest in ["sha256:b", "sha256:c", "sha256:d", "sha256:e"] {
            cache.get_or_parse(digest, &bundle, &version).await.unwrap();
        }
        assert!(
            !Arc::ptr_eq(
                &first,
                &cache
                    .get_or_parse("sha256:a", &bundle, &version)
                    .await
                    .unwrap()
            ),
            "evicted"
        );
    }
}
