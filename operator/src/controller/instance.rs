//! The `FluxInstance` reconciler. Stages so far: source (resolve, verify, cache or pull,
//! unpack the bundle; or the embedded bundle) and select (the Flux version). Rendering,
//! applying and health checks build on these.

use std::{borrow::Cow, sync::Arc, time::Duration};

use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder},
    },
};
use semver::Version;

use super::conditions;
use crate::{
    api::{
        FluxInstance, FluxInstanceStatus,
        constants::{FIELD_MANAGER, annotation, condition, reason},
    },
    bundle::{
        credentials, embedded,
        layout::Bundle,
        reference::ArtifactRef,
        registry::{Credentials, Registry, RegistryConfig},
        source::Source,
        version,
    },
    telemetry::{Metrics, ReconcileLabels},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the status of FluxInstance {namespace}/{name}: {source}")]
    Status {
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

/// How the operator reaches registries, from its flags.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// `host:port` of registries spoken to over plain HTTP.
    pub insecure: Vec<String>,
    /// Secret in the operator's namespace whose `ca.crt` holds extra CA certificates.
    pub ca_secret: Option<String>,
    pub timeout: Duration,
}

/// What every reconcile can reach.
pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    /// The operator's namespace (where the CA Secret lives).
    pub namespace: String,
    pub registries: RegistrySettings,
    pub source: Source,
    pub recorder: Recorder,
    /// Parsed Flux releases by (artifact digest, version): YAML is read once per bundle.
    pub releases: ReleaseCache,
}

/// (artifact digest, Flux version).
type ReleaseKey = (String, Version);

/// Parsed releases, kept for the few artifacts in use.
#[derive(Default)]
pub struct ReleaseCache {
    releases: std::sync::Mutex<Vec<(ReleaseKey, Arc<crate::render::Release>)>>,
}

impl ReleaseCache {
    const KEEP: usize = 4;

    fn get_or_parse(
        &self,
        digest: &str,
        bundle: &Bundle,
        version: &Version,
    ) -> Result<Arc<crate::render::Release>, crate::render::Error> {
        let key = (digest.to_string(), version.clone());
        let mut releases = self
            .releases
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(position) = releases.iter().position(|(k, _)| *k == key) {
            // Most recently used last.
            let entry = releases.remove(position);
            let release = entry.1.clone();
            releases.push(entry);
            return Ok(release);
        }
        let release = Arc::new(crate::render::Release::parse(bundle, version)?);
        releases.push((key, release.clone()));
        if releases.len() > Self::KEEP {
            releases.remove(0);
        }
        Ok(release)
    }
}

/// Why a stage stopped: the condition reason and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    reason: &'static str,
    message: String,
    /// Terminal until the spec changes: no retry, `Stalled=True`.
    stalled: bool,
}

impl Failure {
    fn retry(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            stalled: false,
        }
    }
    fn stalled(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            stalled: true,
        }
    }
}

/// How far the stages got when they succeeded.
#[derive(Debug, Clone, PartialEq)]
struct Progress {
    message: String,
    /// `v<version>@sha256:<digest>` of the rendered objects.
    revision: String,
    components: Vec<crate::api::ComponentImage>,
}

/// The bundle a reconcile works from.
struct Fetched {
    /// Manifest digest of the artifact (or of the embedded bundle's layer).
    digest: String,
    /// Where it came from, for messages.
    origin: String,
    /// Borrowed when embedded (built once per process), owned when fetched.
    bundle: Cow<'static, Bundle>,
}

async fn secret_data(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
    what: &str,
) -> Result<Vec<u8>, Failure> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| {
            Failure::retry(
                reason::ARTIFACT_FAILED,
                format!("reading Secret {namespace}/{name} ({what}): {e}"),
            )
        })?;
    let secret = secret.ok_or_else(|| {
        Failure::retry(
            reason::ARTIFACT_FAILED,
            format!("Secret {namespace}/{name} ({what}) does not exist"),
        )
    })?;
    secret
        .data
        .and_then(|mut data| data.remove(key))
        .map(|bytes| bytes.0)
        .ok_or_else(|| {
            Failure::retry(
                reason::ARTIFACT_FAILED,
                format!("Secret {namespace}/{name} ({what}) has no key {key:?}"),
            )
        })
}

async fn fetch(instance: &FluxInstance, ctx: &Context) -> Result<Fetched, Failure> {
    let distribution = &instance.spec.distribution;
    let namespace = instance.namespace().unwrap_or_default();
    let Some(artifact) = distribution.artifact.as_deref().filter(|a| !a.is_empty()) else {
        return match embedded::bundle() {
            Some(Ok((digest, bundle))) => Ok(Fetched {
                origin: format!("the bundle embedded in fluxop ({digest})"),
                digest: digest.clone(),
                bundle: Cow::Borrowed(bundle),
            }),
            Some(Err(e)) => Err(Failure::stalled(
                reason::ARTIFACT_FAILED,
                format!("the embedded bundle is invalid: {e}"),
            )),
            None => Err(Failure::stalled(
                reason::ARTIFACT_FAILED,
                "this fluxop build embeds no bundle: set spec.distribution.artifact to an oci:// Flux bundle",
            )),
        };
    };
    let artifact = ArtifactRef::parse(artifact)
        .map_err(|e| Failure::stalled(reason::ARTIFACT_FAILED, e.to_string()))?;
    let credentials = match distribution
        .artifact_pull_secret
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        None => Credentials::Anonymous,
        Some(name) => {
            let config = secret_data(
                &ctx.client,
                &namespace,
                name,
                ".dockerconfigjson",
                "artifactPullSecret",
            )
            .await?;
            credentials::from_docker_config(&config, &artifact.registry).map_err(|e| {
                Failure::retry(
                    reason::ARTIFACT_FAILED,
                    format!("Secret {namespace}/{name} (artifactPullSecret): {e}"),
                )
            })?
        }
    };
    let public_key = match &distribution.verify {
        None => None,
        Some(verify) => Some(
            secret_data(
                &ctx.client,
                &namespace,
                &verify.secret_ref.name,
                "cosign.pub",
                "verify.secretRef",
            )
            .await
            .map_err(|f| Failure {
                reason: reason::VERIFICATION_FAILED,
                ..f
            })?,
        ),
    };
    let ca_pem = match &ctx.registries.ca_secret {
        None => Vec::new(),
        Some(name) => vec![
            secret_data(
                &ctx.client,
                &ctx.namespace,
                name,
                "ca.crt",
                "registry CA bundle",
            )
            .await?,
        ],
    };
    let registry = Registry::new(
        RegistryConfig {
            insecure: ctx.registries.insecure.clone(),
            ca_pem,
            timeout: ctx.registries.timeout,
            ..RegistryConfig::default()
        },
        credentials,
    );
    let fetched = ctx
        .source
        .fetch(&registry, &artifact, public_key.as_deref())
        .await
        .map_err(|e| Failure::retry(e.reason(), e.to_string()))?;
    tracing::info!(artifact = %fetched.artifact, from_cache = fetched.from_cache, "bundle fetched");
    Ok(Fetched {
        digest: fetched.digest,
        origin: fetched.artifact.to_string(),
        bundle: Cow::Owned(fetched.bundle),
    })
}

/// The Flux version of `<version>@sha256:<digest>`.
fn revision_version(revision: &str) -> Option<Version> {
    version::parse_version(revision.split('@').next()?)
}

fn select(instance: &FluxInstance, bundle: &Bundle) -> Result<version::Selection, Failure> {
    let installed = instance
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.as_deref())
        .and_then(revision_version);
    version::select(
        &instance.spec.distribution.version,
        &bundle.versions(),
        installed.as_ref(),
    )
    .map_err(|e| Failure::stalled(reason::BUILD_FAILED, e.to_string()))
}

/// The status the stages' outcome calls for, from the current one.
fn next_status(
    instance: &FluxInstance,
    artifact_digest: Option<&str>,
    outcome: &Result<Progress, Failure>,
    now: Timestamp,
) -> FluxInstanceStatus {
    let mut status = instance.status.clone().unwrap_or_default();
    let generation = instance.metadata.generation;
    let mut list = status.conditions.take().unwrap_or_default();
    match outcome {
        Ok(progress) => {
            conditions::set(
                &mut list,
                condition::READY,
                "Unknown",
                reason::PROGRESSING,
                &progress.message,
                generation,
                now,
            );
            conditions::set(
                &mut list,
                condition::RECONCILING,
                "True",
                reason::PROGRESSING,
                &progress.message,
                generation,
                now,
            );
            conditions::remove(&mut list, condition::STALLED);
            status.last_attempted_revision = Some(progress.revision.clone());
            status.components = Some(progress.components.clone());
        }
        Err(failure) => {
            conditions::set(
                &mut list,
                condition::READY,
                "False",
                failure.reason,
                &failure.message,
                generation,
                now,
            );
            conditions::remove(&mut list, condition::RECONCILING);
            if failure.stalled {
                conditions::set(
                    &mut list,
                    condition::STALLED,
                    "True",
                    failure.reason,
                    &failure.message,
                    generation,
                    now,
                );
            } else {
                conditions::remove(&mut list, condition::STALLED);
            }
        }
    }
    status.conditions = Some(list);
    if let Some(digest) = artifact_digest {
        status.last_artifact_revision = Some(digest.to_string());
    }
    if let Some(requested) = instance.annotations().get(annotation::REQUESTED_AT) {
        status.last_handled_reconcile_at = Some(requested.clone());
    }
    status
}

pub async fn reconcile(instance: Arc<FluxInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = instance.name_any();
    let namespace = instance.namespace().unwrap_or_default();
    let (artifact_digest, outcome, newer) = if instance.is_reconcile_disabled() {
        (
            None,
            Err(Failure::retry(
                reason::RECONCILIATION_DISABLED,
                "Reconciliation is disabled",
            )),
            None,
        )
    } else {
        match fetch(&instance, &ctx).await {
            Err(failure) => (None, Err(failure), None),
            Ok(fetched) => match select(&instance, &fetched.bundle) {
                Err(failure) => (Some(fetched.digest), Err(failure), None),
                Ok(selection) => {
                    let rendered = ctx
                        .releases
                        .get_or_parse(&fetched.digest, &fetched.bundle, &selection.version)
                        .and_then(|release| {
                            crate::render::render_release(&namespace, &instance.spec, &release)
                        });
                    match rendered {
                        Err(e) => (
                            Some(fetched.digest.clone()),
                            Err(Failure::stalled(reason::BUILD_FAILED, e.to_string())),
                            None,
                        ),
                        Ok(rendered) => (
                            Some(fetched.digest.clone()),
                            Ok(Progress {
                                message: format!(
                                    "Flux v{} selected from {} and rendered ({} objects, revision {}); applying it is \
                                     not implemented in this fluxop version yet",
                                    selection.version,
                                    fetched.origin,
                                    rendered.objects.len(),
                                    rendered.revision
                                ),
                                revision: rendered.revision,
                                components: rendered.components,
                            }),
                            selection.newer_outside_range,
                        ),
                    }
                }
            },
        }
    };

    let status = next_status(
        &instance,
        artifact_digest.as_deref(),
        &outcome,
        Timestamp::now(),
    );
    let changed = instance.status.as_ref() != Some(&status);
    if changed {
        let api = Api::<FluxInstance>::namespaced(ctx.client.clone(), &namespace);
        let patch = serde_json::json!({ "status": status });
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        api.patch_status(&name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|source| Error::Status {
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?;
        publish_events(&instance, &ctx, &outcome, newer.as_ref()).await;
    }

    let result = if outcome.is_ok() { "success" } else { "error" };
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            kind: "FluxInstance".into(),
            result: result.into(),
        })
        .inc();
    Ok(match &outcome {
        Err(failure) if failure.stalled || failure.reason == reason::RECONCILIATION_DISABLED => {
            Action::await_change()
        }
        Err(_) => Action::requeue(Duration::from_secs(60)),
        Ok(_) => Action::requeue(requeue_interval(&instance)),
    })
}

/// The artifact is polled every `reconcileArtifactEvery`, and everything every
/// `reconcileEvery`: the shorter wins. Unparsable annotations fall back to the defaults.
fn requeue_interval(instance: &FluxInstance) -> Duration {
    let artifact = instance
        .reconcile_artifact_every()
        .unwrap_or(FluxInstance::DEFAULT_RECONCILE_ARTIFACT_EVERY);
    let full = instance
        .reconcile_every()
        .unwrap_or(FluxInstance::DEFAULT_RECONCILE_EVERY);
    artifact.min(full)
}

/// One Event per status transition (never on a no-op), plus a hint when the bundle has a
/// newer Flux than the instance's range allows.
async fn publish_events(
    instance: &FluxInstance,
    ctx: &Context,
    outcome: &Result<Progress, Failure>,
    newer: Option<&Version>,
) {
    let reference = instance.object_ref(&());
    let mut events = vec![match outcome {
        Ok(progress) => Event {
            type_: EventType::Normal,
            reason: reason::PROGRESSING.into(),
            note: Some(progress.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        },
        Err(failure) => Event {
            type_: EventType::Warning,
            reason: failure.reason.into(),
            note: Some(failure.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        },
    }];
    if let Some(newer) = newer {
        events.push(Event {
            type_: EventType::Normal,
            reason: "OutdatedVersion".into(),
            note: Some(format!(
                "Flux v{newer} is in the bundle but outside spec.distribution.version {:?}",
                instance.spec.distribution.version
            )),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
    for event in events {
        if let Err(error) = ctx.recorder.publish(&event, &reference).await {
            tracing::warn!(%error, reason = %event.reason, "publishing an event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn instance(status: Option<FluxInstanceStatus>) -> FluxInstance {
        let mut instance: FluxInstance = serde_json::from_value(serde_json::json!({
            "apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
            "metadata": { "name": "flux", "namespace": "flux-system", "generation": 2 },
            "spec": { "distribution": { "version": "2.x", "registry": "ghcr.io/fluxcd" } }
        }))
        .unwrap();
        instance.status = status;
        instance
    }

    fn condition<'a>(
        status: &'a FluxInstanceStatus,
        type_: &str,
    ) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        status
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == type_)
    }

    #[test]
    fn a_verification_failure_is_not_ready_and_retried_not_stalled() {
        let failure = Failure::retry(
            reason::VERIFICATION_FAILED,
            "oci://r/b@sha256:x is not signed",
        );
        let status = next_status(&instance(None), None, &Err(failure), Timestamp::UNIX_EPOCH);
        let ready = condition(&status, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "VerificationFailed")
        );
        assert_eq!(ready.observed_generation, Some(2));
        assert!(condition(&status, "Stalled").is_none());
        assert_eq!(status.last_artifact_revision, None);
    }

    #[test]
    fn a_refused_downgrade_is_stalled_and_records_the_artifact() {
        let failure = Failure::stalled(reason::BUILD_FAILED, "refusing to downgrade");
        let status = next_status(
            &instance(None),
            Some("sha256:abc"),
            &Err(failure),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(condition(&status, "Stalled").unwrap().reason, "BuildFailed");
        assert_eq!(status.last_artifact_revision.as_deref(), Some("sha256:abc"));
    }

    #[test]
    fn the_same_outcome_twice_is_the_same_status_so_nothing_is_written() {
        let outcome = Ok(Progress {
            message: "Flux v2.9.4 selected".to_string(),
            revision: "v2.9.4@sha256:abc".to_string(),
            components: Vec::new(),
        });
        let first = next_status(
            &instance(None),
            Some("sha256:abc"),
            &outcome,
            Timestamp::UNIX_EPOCH,
        );
        let later = Timestamp::from_second(3600).unwrap();
        let second = next_status(
            &instance(Some(first.clone())),
            Some("sha256:abc"),
            &outcome,
            later,
        );
        assert_eq!(first, second);
        assert_eq!(
            second.last_attempted_revision.as_deref(),
            Some("v2.9.4@sha256:abc")
        );
        assert!(
            condition(&second, "Reconciling").is_some() && condition(&second, "Stalled").is_none()
        );
    }

    #[test]
    fn revisions_name_their_flux_version() {
        assert_eq!(
            revision_version("v2.8.8@sha256:abc"),
            Some(Version::new(2, 8, 8))
        );
        assert_eq!(revision_version("garbage"), None);
    }

    #[test]
    fn the_artifact_poll_interval_bounds_the_requeue() {
        let mut i = instance(None);
        assert_eq!(requeue_interval(&i), Duration::from_secs(600));
        i.metadata.annotations = Some(BTreeMap::from([(
            annotation::RECONCILE_EVERY.to_string(),
            "2m".to_string(),
        )]));
        assert_eq!(requeue_interval(&i), Duration::from_secs(120));
    }

    #[test]
    fn parsed_releases_are_reused_per_digest_and_the_oldest_is_dropped() {
        let bundle = crate::testing::vendored_bundle();
        let cache = ReleaseCache::default();
        let version = Version::new(2, 9, 4);
        let first = cache.get_or_parse("sha256:a", &bundle, &version).unwrap();
        assert!(Arc::ptr_eq(
            &first,
            &cache.get_or_parse("sha256:a", &bundle, &version).unwrap()
        ));
        for digest in ["sha256:b", "sha256:c", "sha256:d", "sha256:e"] {
            cache.get_or_parse(digest, &bundle, &version).unwrap();
        }
        assert!(
            !Arc::ptr_eq(
                &first,
                &cache.get_or_parse("sha256:a", &bundle, &version).unwrap()
            ),
            "evicted"
        );
    }
}
