//! The `FluxInstance` reconciler: source (resolve, verify, cache or pull, unpack the bundle;
//! or the embedded bundle), select (the Flux version), render, then converge the cluster
//! ([`super::lifecycle`]): apply, health, prune, migrate, and roll back a version change that
//! does not become healthy. Status, events and metrics report each outcome.

use std::{borrow::Cow, sync::Arc, time::Duration};

use k8s_openapi::{
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder},
        finalizer::{Event as FinalizerEvent, finalizer},
        reflector::{ObjectRef, Store},
    },
};
use semver::Version;
use tracing::Instrument;

use super::{
    conditions,
    lifecycle::{self, Converged, Report, Stop},
};
use crate::{
    api::{
        ComponentImage, FluxInstance, FluxInstanceSpec, FluxInstanceStatus, ResourceInventory,
        ResourceRef, Snapshot,
        constants::{FIELD_MANAGER, FINALIZER, annotation, condition, reason},
    },
    apply::{self, Applier},
    bundle::{
        credentials, embedded,
        layout::Bundle,
        reference::ArtifactRef,
        registry::{Credentials, Registry, RegistryConfig},
        source::Source,
        version,
    },
    render::Rendered,
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
    #[error("uninstalling Flux: {0}")]
    Uninstall(#[source] apply::Error),
    #[error(transparent)]
    Finalizer(Box<kube::runtime::finalizer::Error<Error>>),
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
    pub applier: Applier,
    /// The controller's view of the instances, set once it runs: a reconcile compares it
    /// with the instance it works on to notice newer requests.
    pub instances: std::sync::OnceLock<Store<FluxInstance>>,
    /// Notified after a reconcile changed something, so the FluxReport follows at once.
    pub report_requested: Arc<tokio::sync::Notify>,
}

impl Context {
    /// A registry client with the operator's registry settings (plain-HTTP hosts, the CA
    /// bundle from its Secret, timeout) and `credentials`.
    pub(super) async fn registry(&self, credentials: Credentials) -> Result<Registry, Failure> {
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

    /// Has a newer request for `instance` come in (spec change, reconcile request, deletion)
    /// since this reconcile started?
    pub fn newer_request(&self, instance: &FluxInstance) -> bool {
        let Some(store) = self.instances.get() else {
            return false;
        };
        let Some(latest) = store.get(&ObjectRef::from_obj(instance)) else {
            return false;
        };
        latest.metadata.generation != instance.metadata.generation
            || latest.metadata.deletion_timestamp.is_some()
            || latest.annotations().get(annotation::REQUESTED_AT)
                != instance.annotations().get(annotation::REQUESTED_AT)
            || latest.annotations().get(annotation::FORCE_AT)
                != instance.annotations().get(annotation::FORCE_AT)
    }
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
pub(super) struct Failure {
    reason: &'static str,
    pub(super) message: String,
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

/// The bundle a reconcile works from.
struct Fetched {
    /// Manifest digest of the artifact (or of the embedded bundle's layer).
    digest: String,
    /// Where it came from, for messages.
    origin: String,
    /// Borrowed when embedded (built once per process), owned when fetched.
    bundle: Cow<'static, Bundle>,
}

pub(super) async fn secret_data(
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
    let registry = ctx.registry(credentials).await?;
    let fetched = ctx
        .source
        .fetch(&registry, &artifact, public_key.as_deref())
        .await
        .map_err(|e| Failure::retry(e.reason(), e.to_string()))?;
    if fetched.from_cache {
        tracing::debug!(artifact = %fetched.artifact, "bundle unchanged (cached)");
    } else {
        tracing::info!(artifact = %fetched.artifact, "bundle fetched");
    }
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

/// A revision in the cluster: what a successful (or restored) apply leaves.
#[derive(Debug, Clone, PartialEq)]
struct Installed {
    /// `v<version>@sha256:<digest>` of the rendered objects.
    revision: String,
    version: Version,
    components: Vec<ComponentImage>,
    inventory: ResourceInventory,
}

impl Installed {
    fn of(rendered: &Rendered, version: &Version) -> Self {
        Self {
            revision: rendered.revision.clone(),
            version: version.clone(),
            components: rendered.components.clone(),
            inventory: apply::object::inventory(&rendered.objects),
        }
    }
}

/// How a reconcile ended.
#[derive(Debug)]
enum Outcome {
    Disabled,
    /// A stage failed. `attempted` is the revision being applied, if rendering got that far;
    /// `inventory` what may now be in the cluster (so a later prune still finds it).
    Failed {
        failure: Failure,
        attempted: Option<String>,
        inventory: Option<ResourceInventory>,
    },
    /// A newer reconcile request interrupted the health checks.
    Canceled {
        attempted: String,
    },
    Applied {
        installed: Installed,
        report: Report,
    },
    /// The new version did not become healthy and the previous one was restored.
    RolledBack {
        attempted: String,
        why: String,
        installed: Installed,
        report: Report,
    },
    /// After a rollback: the restored version is kept (and its drift corrected) until the
    /// spec, the artifact or a reconcile request changes.
    Held {
        installed: Installed,
        report: Report,
    },
}

impl Outcome {
    /// For traces and logs.
    fn name(&self) -> &'static str {
        match self {
            Outcome::Disabled => "disabled",
            Outcome::Failed { .. } => "failed",
            Outcome::Canceled { .. } => "canceled",
            Outcome::Applied { .. } => "applied",
            Outcome::RolledBack { .. } => "rolled-back",
            Outcome::Held { .. } => "held",
        }
    }
}

fn status_of(instance: &FluxInstance) -> FluxInstanceStatus {
    instance.status.clone().unwrap_or_default()
}

fn condition<'a>(status: &'a FluxInstanceStatus, type_: &str) -> Option<&'a Condition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Has the previous reconcile rolled `attempted` back, with nothing changed since that would
/// make trying it again worthwhile (spec, artifact, a reconcile request)?
fn holding_after_rollback(instance: &FluxInstance, attempted: &str) -> bool {
    let status = status_of(instance);
    let stalled_by_rollback = condition(&status, condition::STALLED).is_some_and(|c| {
        c.reason == reason::ROLLED_BACK && c.observed_generation == instance.metadata.generation
    });
    stalled_by_rollback
        && status.last_attempted_revision.as_deref() == Some(attempted)
        && instance.annotations().get(annotation::REQUESTED_AT)
            == status.last_handled_reconcile_at.as_ref()
}

/// Is there something to apply: a new revision, or a spec generation not yet reconciled?
/// (Drift corrections of the applied revision are not announced: they take a second.)
fn has_work(instance: &FluxInstance, revision: &str) -> bool {
    let status = status_of(instance);
    status.last_applied_revision.as_deref() != Some(revision)
        || condition(&status, condition::READY)
            .is_none_or(|c| c.observed_generation != instance.metadata.generation)
}

/// Replaces the instance's status.
async fn write_status(
    ctx: &Context,
    instance: &FluxInstance,
    status: &FluxInstanceStatus,
) -> Result<(), Error> {
    let namespace = instance.namespace().unwrap_or_default();
    let name = instance.name_any();
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    Api::<FluxInstance>::namespaced(ctx.client.clone(), &namespace)
        .patch_status(
            &name,
            &params,
            &Patch::Merge(&serde_json::json!({ "status": status })),
        )
        .await
        .map(|_| ())
        .map_err(|source| Error::Status {
            namespace,
            name,
            source,
        })
}

/// Says in the status that `revision` is being applied (`Reconciling=True`, `Ready=Unknown`),
/// so that a long health wait is visible. Best effort: the outcome is written afterwards.
async fn mark_progressing(ctx: &Context, instance: &FluxInstance, revision: &str) {
    let now = Timestamp::now();
    let mut status = status_of(instance);
    let mut list = status.conditions.take().unwrap_or_default();
    let message = format!("Applying revision {revision}");
    let generation = instance.metadata.generation;
    conditions::set(
        &mut list,
        condition::READY,
        "Unknown",
        reason::PROGRESSING,
        &message,
        generation,
        now,
    );
    conditions::set(
        &mut list,
        condition::RECONCILING,
        "True",
        reason::PROGRESSING,
        &message,
        generation,
        now,
    );
    conditions::remove(&mut list, condition::STALLED);
    status.conditions = Some(list);
    status.last_attempted_revision = Some(revision.to_string());
    if let Err(error) = write_status(ctx, instance, &status).await {
        tracing::warn!(%error, "writing the progress status failed");
    }
}

/// Is a `forceAt` request pending (objects with changed immutable fields may be recreated)?
fn force_requested(instance: &FluxInstance) -> bool {
    instance
        .annotations()
        .get(annotation::FORCE_AT)
        .is_some_and(|at| status_of(instance).last_handled_force_at.as_ref() != Some(at))
}

/// Entries of both inventories: everything that may be in the cluster after a failed apply.
fn union(a: Option<&ResourceInventory>, b: &ResourceInventory) -> ResourceInventory {
    let entries: std::collections::BTreeSet<ResourceRef> = a
        .into_iter()
        .flat_map(|i| i.entries.iter())
        .chain(b.entries.iter())
        .cloned()
        .collect();
    ResourceInventory {
        entries: entries.into_iter().collect(),
    }
}

/// Records one reconcile of `revision` in `history` (most recent first, at most 5).
fn record_history(
    history: &mut Vec<Snapshot>,
    installed: &Installed,
    result: &str,
    elapsed: Duration,
    now: Timestamp,
) {
    let digest = installed
        .revision
        .split_once('@')
        .map_or(installed.revision.as_str(), |(_, d)| d)
        .to_string();
    let duration = format!("{:.1}s", elapsed.as_secs_f64());
    match history.first_mut() {
        Some(latest) if latest.digest == digest => {
            latest.last_reconciled = Time(now);
            latest.last_reconciled_duration = duration;
            latest.last_reconciled_status = result.to_string();
            latest.total_reconciliations += 1;
        }
        _ => {
            history.insert(
                0,
                Snapshot {
                    digest,
                    first_reconciled: Time(now),
                    last_reconciled: Time(now),
                    last_reconciled_duration: duration,
                    last_reconciled_status: result.to_string(),
                    total_reconciliations: 1,
                    metadata: Some(std::collections::BTreeMap::from([(
                        "flux".to_string(),
                        format!("v{}", installed.version),
                    )])),
                },
            );
            history.truncate(5);
        }
    }
}

/// The status an outcome calls for, from the current one. A reconcile that changed nothing
/// yields the current status unchanged, so it writes nothing.
fn next_status(
    instance: &FluxInstance,
    artifact_digest: Option<&str>,
    outcome: &Outcome,
    now: Timestamp,
) -> FluxInstanceStatus {
    let mut status = status_of(instance);
    let generation = instance.metadata.generation;
    let mut list = status.conditions.take().unwrap_or_default();
    let mut set = |type_: &str, value: &str, reason: &str, message: &str| {
        conditions::set(&mut list, type_, value, reason, message, generation, now);
    };
    let mut history = status.history.take().unwrap_or_default();
    let install = |status: &mut FluxInstanceStatus, installed: &Installed| {
        status.last_applied_revision = Some(installed.revision.clone());
        status.components = Some(installed.components.clone());
        status.inventory = Some(installed.inventory.clone());
    };
    match outcome {
        Outcome::Disabled => {
            set(
                condition::READY,
                "False",
                reason::RECONCILIATION_DISABLED,
                "Reconciliation is disabled",
            );
        }
        Outcome::Failed {
            failure,
            attempted,
            inventory,
        } => {
            set(condition::READY, "False", failure.reason, &failure.message);
            if failure.stalled {
                set(condition::STALLED, "True", failure.reason, &failure.message);
            }
            if let Some(attempted) = attempted {
                status.last_attempted_revision = Some(attempted.clone());
            }
            if let Some(inventory) = inventory {
                status.inventory = Some(inventory.clone());
            }
        }
        Outcome::Canceled { attempted } => {
            let message =
                format!("Health checks of {attempted} canceled by a newer reconcile request");
            set(
                condition::READY,
                "Unknown",
                reason::HEALTH_CHECK_CANCELED,
                &message,
            );
            set(
                condition::RECONCILING,
                "True",
                reason::HEALTH_CHECK_CANCELED,
                &message,
            );
            status.last_attempted_revision = Some(attempted.clone());
        }
        Outcome::Applied { installed, report } => {
            let message = if instance.spec.wait() {
                format!(
                    "Flux v{} is installed and healthy (revision {})",
                    installed.version, installed.revision
                )
            } else {
                format!(
                    "Flux v{} is applied (revision {}); health checks are off (spec.wait: false)",
                    installed.version, installed.revision
                )
            };
            let was_ready = condition(&status_of(instance), condition::READY)
                .is_some_and(|c| c.status == "True" && c.message == message);
            set(
                condition::READY,
                "True",
                reason::RECONCILIATION_SUCCEEDED,
                &message,
            );
            if !was_ready || !report.is_noop() {
                record_history(
                    &mut history,
                    installed,
                    reason::RECONCILIATION_SUCCEEDED,
                    report.elapsed,
                    now,
                );
            }
            status.last_attempted_revision = Some(installed.revision.clone());
            install(&mut status, installed);
            status.last_applied_spec = serde_json::to_value(&instance.spec).ok();
        }
        Outcome::RolledBack {
            attempted,
            why,
            installed,
            report,
        } => {
            let message = format!(
                "{attempted} did not become healthy ({why}); rolled back to {}",
                installed.revision
            );
            set(
                condition::READY,
                "False",
                reason::RECONCILIATION_FAILED,
                &message,
            );
            set(condition::STALLED, "True", reason::ROLLED_BACK, &message);
            record_history(
                &mut history,
                installed,
                reason::ROLLED_BACK,
                report.elapsed,
                now,
            );
            status.last_attempted_revision = Some(attempted.clone());
            install(&mut status, installed);
        }
        Outcome::Held { installed, report } => {
            if !report.is_noop() {
                record_history(
                    &mut history,
                    installed,
                    reason::ROLLED_BACK,
                    report.elapsed,
                    now,
                );
            }
            install(&mut status, installed);
        }
    }
    let keeps_stalled = matches!(outcome, Outcome::RolledBack { .. } | Outcome::Held { .. })
        || matches!(outcome, Outcome::Failed { failure, .. } if failure.stalled);
    if !keeps_stalled {
        conditions::remove(&mut list, condition::STALLED);
    }
    if !matches!(outcome, Outcome::Canceled { .. }) {
        conditions::remove(&mut list, condition::RECONCILING);
    }
    status.conditions = Some(list);
    status.history = (!history.is_empty()).then_some(history);
    if let Some(digest) = artifact_digest {
        status.last_artifact_revision = Some(digest.to_string());
    }
    if let Some(requested) = instance.annotations().get(annotation::REQUESTED_AT) {
        status.last_handled_reconcile_at = Some(requested.clone());
    }
    if let Some(forced) = instance.annotations().get(annotation::FORCE_AT) {
        status.last_handled_force_at = Some(forced.clone());
    }
    status
}

/// The revision rendered from `spec` for `version` of the fetched bundle.
fn render_version(
    ctx: &Context,
    instance: &FluxInstance,
    spec: &FluxInstanceSpec,
    fetched: &Fetched,
    version: &Version,
) -> Result<Rendered, Failure> {
    let namespace = instance.namespace().unwrap_or_default();
    ctx.releases
        .get_or_parse(&fetched.digest, &fetched.bundle, version)
        .and_then(|release| crate::render::render_release(&namespace, spec, &release))
        .map_err(|e| Failure::stalled(reason::BUILD_FAILED, e.to_string()))
}

/// The spec `lastAppliedRevision` was rendered from, as recorded when it became healthy;
/// the current spec when none was recorded (a status from before fluxop recorded it) or the
/// record does not parse.
fn applied_spec(instance: &FluxInstance) -> FluxInstanceSpec {
    let recorded = instance
        .status
        .as_ref()
        .and_then(|s| s.last_applied_spec.clone());
    match recorded.map(serde_json::from_value::<FluxInstanceSpec>) {
        Some(Ok(spec)) => spec,
        Some(Err(error)) => {
            tracing::warn!(%error, "status.lastAppliedSpec does not parse; using the current spec");
            instance.spec.clone()
        }
        None => instance.spec.clone(),
    }
}

/// Fetch, select, render, converge; roll back a new revision that does not become healthy.
async fn run_stages(
    instance: &FluxInstance,
    ctx: &Context,
    digest: &mut Option<String>,
    newer: &mut Option<Version>,
    progress_written: &mut bool,
) -> Outcome {
    let failed = |failure: Failure| Outcome::Failed {
        failure,
        attempted: None,
        inventory: None,
    };
    let fetched = match fetch(instance, ctx)
        .instrument(tracing::info_span!("fetch"))
        .await
    {
        Ok(fetched) => fetched,
        Err(failure) => return failed(failure),
    };
    *digest = Some(fetched.digest.clone());
    let selection = match select(instance, &fetched.bundle) {
        Ok(selection) => selection,
        Err(failure) => return failed(failure),
    };
    *newer = selection.newer_outside_range.clone();
    tracing::debug!(version = %selection.version, from = %fetched.origin, "Flux version selected");
    let rendered = match tracing::info_span!("render", version = %selection.version)
        .in_scope(|| render_version(ctx, instance, &instance.spec, &fetched, &selection.version))
    {
        Ok(rendered) => rendered,
        Err(failure) => return failed(failure),
    };
    tracing::Span::current().record("revision", rendered.revision.as_str());
    let status = status_of(instance);
    let previous_inventory = status.inventory.as_ref();
    let previous_version = status
        .last_applied_revision
        .as_deref()
        .and_then(revision_version);
    let timeout = instance
        .reconcile_timeout()
        .unwrap_or(FluxInstance::DEFAULT_RECONCILE_TIMEOUT);
    let canceled = || ctx.newer_request(instance);
    let recreate = force_requested(instance);
    let plan = |objects, new_revision| lifecycle::Plan {
        instance,
        objects,
        recreate,
        timeout,
        canceled: &canceled,
        new_revision,
    };
    let is_new = |rendered: &Rendered| {
        status.last_applied_revision.as_deref() != Some(rendered.revision.as_str())
    };

    // After a rollback, keep the restored revision until something changes.
    if holding_after_rollback(instance, &rendered.revision)
        && let Some(version) = previous_version.as_ref()
    {
        let restored =
            match render_version(ctx, instance, &applied_spec(instance), &fetched, version) {
                Ok(restored) => restored,
                Err(failure) => return failed(failure),
            };
        return match lifecycle::converge(
            &ctx.applier,
            &plan(&restored.objects, is_new(&restored)),
            previous_inventory,
        )
        .await
        {
            Ok(
                Converged::Healthy(report)
                | Converged::Unhealthy { report, .. }
                | Converged::Canceled(report),
            ) => Outcome::Held {
                installed: Installed::of(&restored, version),
                report,
            },
            Err(stop) => Outcome::Failed {
                failure: stop_failure(stop),
                attempted: Some(rendered.revision),
                inventory: None,
            },
        };
    }

    if has_work(instance, &rendered.revision) {
        mark_progressing(ctx, instance, &rendered.revision).await;
        *progress_written = true;
    }
    let attempted = Installed::of(&rendered, &selection.version);
    let tried = union(previous_inventory, &attempted.inventory);
    let (report, why) = match lifecycle::converge(
        &ctx.applier,
        &plan(&rendered.objects, is_new(&rendered)),
        previous_inventory,
    )
    .await
    {
        Err(stop) => {
            return Outcome::Failed {
                failure: stop_failure(stop),
                attempted: Some(rendered.revision),
                inventory: Some(tried),
            };
        }
        Ok(Converged::Healthy(report)) => {
            return Outcome::Applied {
                installed: attempted,
                report,
            };
        }
        Ok(Converged::Canceled(_)) => {
            return Outcome::Canceled {
                attempted: rendered.revision,
            };
        }
        Ok(Converged::Unhealthy { report, why }) => (report, why),
    };
    tracing::warn!(revision = %rendered.revision, %why, changes = %report.summary(), "new revision is not healthy");
    let unhealthy = |message: String| Outcome::Failed {
        failure: Failure::retry(reason::RECONCILIATION_FAILED, message),
        attempted: Some(rendered.revision.clone()),
        inventory: Some(tried.clone()),
    };
    // Roll back to the last healthy revision: its version (the bundle has it) rendered from
    // the spec it was applied with. Nothing to roll back to on a first install, or when
    // that is what was just tried (drift of the applied revision that does not heal).
    let Some(previous) = previous_version else {
        return unhealthy(format!(
            "{} did not become healthy: {why}",
            rendered.revision
        ));
    };
    let restored = match render_version(ctx, instance, &applied_spec(instance), &fetched, &previous)
    {
        Ok(restored) => restored,
        Err(failure) => {
            return unhealthy(format!(
                "{} did not become healthy: {why}; cannot roll back to v{previous}: {}",
                rendered.revision, failure.message
            ));
        }
    };
    if restored.revision == rendered.revision {
        return unhealthy(format!(
            "{} did not become healthy: {why}",
            rendered.revision
        ));
    }
    tracing::warn!(to = %restored.revision, "rolling back");
    match lifecycle::converge(
        &ctx.applier,
        &plan(&restored.objects, is_new(&restored)),
        Some(&tried),
    )
    .await
    {
        Ok(Converged::Healthy(report)) => Outcome::RolledBack {
            attempted: rendered.revision.clone(),
            why,
            installed: Installed::of(&restored, &previous),
            report,
        },
        Ok(Converged::Unhealthy { why: again, .. }) => unhealthy(format!(
            "{} did not become healthy: {why}; the rollback to {} is not healthy either: {again}",
            rendered.revision, restored.revision
        )),
        Ok(Converged::Canceled(_)) => Outcome::Canceled {
            attempted: rendered.revision.clone(),
        },
        Err(stop) => unhealthy(format!(
            "{} did not become healthy: {why}; the rollback to {} failed: {}",
            rendered.revision,
            restored.revision,
            stop_failure(stop).message
        )),
    }
}

fn stop_failure(stop: Stop) -> Failure {
    match stop {
        Stop::Blocked(message) => Failure::stalled(reason::RECONCILIATION_FAILED, message),
        Stop::Apply(error) => Failure::retry(reason::RECONCILIATION_FAILED, error.to_string()),
    }
}

/// Reconciles one instance; the finalizer makes deletion run [`cleanup`].
pub async fn reconcile(instance: Arc<FluxInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = instance.namespace().unwrap_or_default();
    let api = Api::<FluxInstance>::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, instance, |event| async move {
        match event {
            FinalizerEvent::Apply(instance) => apply_instance(instance, &ctx).await,
            FinalizerEvent::Cleanup(instance) => cleanup(instance, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply_instance(instance: Arc<FluxInstance>, ctx: &Context) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let name = instance.name_any();
    let namespace = instance.namespace().unwrap_or_default();
    let mut digest = None;
    let mut newer = None;
    // Once a progress status was written, the outcome must be written too.
    let mut progress_written = false;
    let span = tracing::info_span!(
        "reconcile",
        instance = %name,
        namespace = %namespace,
        revision = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let outcome = if instance.is_reconcile_disabled() {
        Outcome::Disabled
    } else {
        run_stages(
            &instance,
            ctx,
            &mut digest,
            &mut newer,
            &mut progress_written,
        )
        .instrument(span.clone())
        .await
    };
    span.record("outcome", outcome.name());

    let status = next_status(&instance, digest.as_deref(), &outcome, Timestamp::now());
    let changed = progress_written || instance.status.as_ref() != Some(&status);
    if changed {
        write_status(ctx, &instance, &status).await?;
    }
    publish_events(&instance, ctx, &outcome, changed, newer.as_ref()).await;
    let objects_changed = match &outcome {
        Outcome::Applied { report, .. }
        | Outcome::Held { report, .. }
        | Outcome::RolledBack { report, .. } => !report.is_noop(),
        _ => false,
    };
    if changed || objects_changed {
        ctx.report_requested.notify_one();
    }
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == condition::READY)
        .map_or("Unknown", |c| c.status.as_str())
        .to_string();
    ctx.metrics.instance.clear();
    ctx.metrics
        .instance
        .get_or_create(&crate::telemetry::InstanceLabels {
            name: name.clone(),
            exported_namespace: namespace.clone(),
            ready,
            revision: status.last_applied_revision.clone().unwrap_or_default(),
        })
        .set(1);
    ctx.metrics
        .reconcile_duration
        .get_or_create(&crate::telemetry::KindLabels {
            kind: "FluxInstance".into(),
        })
        .observe(started.elapsed().as_secs_f64());

    let result = match &outcome {
        Outcome::Applied { .. } | Outcome::Held { .. } => "success",
        Outcome::Canceled { .. } => "canceled",
        _ => "error",
    };
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            kind: "FluxInstance".into(),
            result: result.into(),
        })
        .inc();
    Ok(match &outcome {
        Outcome::Disabled => Action::await_change(),
        Outcome::Failed { failure, .. } if failure.stalled => Action::await_change(),
        Outcome::Failed { .. } => Action::requeue(Duration::from_secs(60)),
        Outcome::Canceled { .. } => Action::requeue(Duration::from_secs(1)),
        _ => Action::requeue(requeue_interval(&instance)),
    })
}

/// Uninstall on deletion; with reconciliation disabled only the finalizer goes.
async fn cleanup(instance: Arc<FluxInstance>, ctx: &Context) -> Result<Action, Error> {
    if instance.is_reconcile_disabled() {
        tracing::info!(instance = %instance.name_any(), "deleted with reconciliation disabled: leaving Flux installed");
        return Ok(Action::await_change());
    }
    let report = lifecycle::uninstall(&ctx.applier, &instance)
        .await
        .map_err(Error::Uninstall)?;
    tracing::info!(
        instance = %instance.name_any(),
        deleted = report.pruned.len(),
        kept = report.kept.len(),
        "uninstalled"
    );
    let event = Event {
        type_: EventType::Normal,
        reason: "Uninstalled".into(),
        note: Some(truncate_note(&format!(
            "Flux uninstalled: {} objects deleted; the namespace and what Flux deployed were kept",
            report.pruned.len()
        ))),
        action: "Uninstall".into(),
        secondary: None,
    };
    if let Err(error) = ctx
        .recorder
        .publish(&event, &instance.object_ref(&()))
        .await
    {
        tracing::warn!(%error, "publishing an event failed");
    }
    Ok(Action::await_change())
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

/// Event notes are limited to 1 KiB by the API server.
fn truncate_note(note: &str) -> String {
    const LIMIT: usize = 1000;
    if note.len() <= LIMIT {
        return note.to_string();
    }
    let mut end = LIMIT;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &note[..end])
}

/// An Event when the status changed or objects were changed (a drift correction), plus a
/// hint when the bundle has a newer Flux than the instance's range allows. A no-op reconcile
/// publishes nothing.
async fn publish_events(
    instance: &FluxInstance,
    ctx: &Context,
    outcome: &Outcome,
    status_changed: bool,
    newer: Option<&Version>,
) {
    let normal = |reason: &str, note: String| Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(truncate_note(&note)),
        action: "Reconcile".into(),
        secondary: None,
    };
    let warning = |reason: &str, note: String| Event {
        type_: EventType::Warning,
        ..normal(reason, note)
    };
    let mut events = Vec::new();
    match outcome {
        Outcome::Applied { installed, report } if status_changed || !report.is_noop() => {
            let changes = report.summary();
            events.push(normal(
                reason::RECONCILIATION_SUCCEEDED,
                if changes.is_empty() {
                    format!("Flux v{} is installed and healthy", installed.version)
                } else {
                    format!(
                        "{} applied in {:.1}s:\n{changes}",
                        installed.revision,
                        report.elapsed.as_secs_f64()
                    )
                },
            ));
        }
        Outcome::Held { installed, report } if !report.is_noop() => events.push(normal(
            reason::ROLLED_BACK,
            format!(
                "{} kept after a rollback; corrected:\n{}",
                installed.revision,
                report.summary()
            ),
        )),
        Outcome::RolledBack {
            attempted,
            why,
            installed,
            ..
        } if status_changed => events.push(warning(
            reason::ROLLED_BACK,
            format!(
                "{attempted} did not become healthy ({why}); rolled back to {}",
                installed.revision
            ),
        )),
        Outcome::Failed { failure, .. } if status_changed => {
            events.push(warning(failure.reason, failure.message.clone()));
        }
        Outcome::Canceled { attempted } if status_changed => events.push(normal(
            reason::HEALTH_CHECK_CANCELED,
            format!("health checks of {attempted} canceled by a newer request"),
        )),
        Outcome::Disabled if status_changed => events.push(normal(
            reason::RECONCILIATION_DISABLED,
            "Reconciliation is disabled".into(),
        )),
        _ => {}
    }
    if let Some(newer) = newer.filter(|_| status_changed) {
        events.push(normal(
            "OutdatedVersion",
            format!(
                "Flux v{newer} is in the bundle but outside spec.distribution.version {:?}",
                instance.spec.distribution.version
            ),
        ));
    }
    let reference = instance.object_ref(&());
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

    fn failed(failure: Failure) -> Outcome {
        Outcome::Failed {
            failure,
            attempted: None,
            inventory: None,
        }
    }

    fn installed(version: &str, digest: &str) -> Installed {
        Installed {
            revision: format!("v{version}@sha256:{digest}"),
            version: Version::parse(version).unwrap(),
            components: Vec::new(),
            inventory: ResourceInventory {
                entries: vec![ResourceRef {
                    id: "flux-system_source-controller_apps_Deployment".into(),
                    v: "v1".into(),
                }],
            },
        }
    }

    fn applied(version: &str, digest: &str, changes: usize) -> Outcome {
        let entries = (0..changes)
            .map(|i| apply::Applied {
                id: apply::ObjectId {
                    group: "apps".into(),
                    kind: "Deployment".into(),
                    namespace: "flux-system".into(),
                    name: format!("d{i}"),
                },
                action: apply::Action::Created,
                live: None,
            })
            .collect();
        Outcome::Applied {
            installed: installed(version, digest),
            report: Report {
                changes: apply::ChangeSet { entries },
                ..Report::default()
            },
        }
    }

    #[test]
    fn a_verification_failure_is_not_ready_and_retried_not_stalled() {
        let failure = Failure::retry(
            reason::VERIFICATION_FAILED,
            "oci://r/b@sha256:x is not signed",
        );
        let status = next_status(
            &instance(None),
            None,
            &failed(failure),
            Timestamp::UNIX_EPOCH,
        );
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
            &failed(failure),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(condition(&status, "Stalled").unwrap().reason, "BuildFailed");
        assert_eq!(status.last_artifact_revision.as_deref(), Some("sha256:abc"));
    }

    #[test]
    fn a_noop_reconcile_after_an_install_is_the_same_status_so_nothing_is_written() {
        let first = next_status(
            &instance(None),
            Some("sha256:art"),
            &applied("2.9.4", "abc", 3),
            Timestamp::UNIX_EPOCH,
        );
        let ready = condition(&first, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "ReconciliationSucceeded")
        );
        assert_eq!(
            first.last_applied_revision.as_deref(),
            Some("v2.9.4@sha256:abc")
        );
        assert_eq!(first.inventory.as_ref().unwrap().entries.len(), 1);
        assert_eq!(first.history.as_ref().unwrap().len(), 1);
        let later = Timestamp::from_second(3600).unwrap();
        let second = next_status(
            &instance(Some(first.clone())),
            Some("sha256:art"),
            &applied("2.9.4", "abc", 0),
            later,
        );
        assert_eq!(first, second);
        // A drift correction is recorded in the history.
        let third = next_status(
            &instance(Some(second)),
            Some("sha256:art"),
            &applied("2.9.4", "abc", 1),
            later,
        );
        assert_eq!(third.history.as_ref().unwrap()[0].total_reconciliations, 2);
    }

    #[test]
    fn history_keeps_the_last_five_revisions_newest_first() {
        let mut status = None;
        for (i, digest) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            let outcome = applied(&format!("2.{i}.0"), digest, 1);
            status = Some(next_status(
                &instance(status),
                None,
                &outcome,
                Timestamp::from_second(i as i64).unwrap(),
            ));
        }
        let history = status.unwrap().history.unwrap();
        let digests: Vec<&str> = history.iter().map(|h| h.digest.as_str()).collect();
        assert_eq!(
            digests,
            ["sha256:f", "sha256:e", "sha256:d", "sha256:c", "sha256:b"]
        );
        assert_eq!(history[0].metadata.as_ref().unwrap()["flux"], "v2.5.0");
    }

    #[test]
    fn a_healthy_revision_records_its_spec_and_a_rollback_keeps_the_healthy_one() {
        let healthy = instance(None);
        let status = next_status(
            &healthy,
            None,
            &applied("2.9.4", "good", 1),
            Timestamp::UNIX_EPOCH,
        );
        let recorded = status.last_applied_spec.clone().expect("spec recorded");
        assert_eq!(recorded["distribution"]["version"], "2.x");

        // A new spec that does not become healthy: the rollback restores the recorded
        // spec, and the record stays the healthy one.
        let mut patched = instance(Some(status));
        patched.spec.distribution.version = "2.9.x".into();
        assert_eq!(applied_spec(&patched).distribution.version, "2.x");
        let outcome = Outcome::RolledBack {
            attempted: "v2.9.4@sha256:bad".into(),
            why: "Deployment/flux-system/kustomize-controller: 0 of 1 replicas ready".into(),
            installed: installed("2.9.4", "good"),
            report: Report::default(),
        };
        let after = next_status(&patched, None, &outcome, Timestamp::UNIX_EPOCH);
        assert_eq!(after.last_applied_spec, Some(recorded));

        // Without a record (a status written before fluxop kept one), the current spec.
        assert_eq!(applied_spec(&instance(None)).distribution.version, "2.x");
    }

    #[test]
    fn a_rollback_is_stalled_keeps_the_restored_revision_and_names_the_attempt() {
        let before = next_status(
            &instance(None),
            None,
            &applied("2.8.8", "old", 1),
            Timestamp::UNIX_EPOCH,
        );
        let outcome = Outcome::RolledBack {
            attempted: "v2.9.4@sha256:new".into(),
            why: "Deployment/flux-system/source-controller: 0 of 1 replicas ready".into(),
            installed: installed("2.8.8", "old"),
            report: Report::default(),
        };
        let mut rolled = instance(Some(before));
        let status = next_status(&rolled, None, &outcome, Timestamp::UNIX_EPOCH);
        let ready = condition(&status, "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert!(
            ready.message.contains("rolled back to v2.8.8@sha256:old"),
            "{}",
            ready.message
        );
        assert_eq!(condition(&status, "Stalled").unwrap().reason, "RolledBack");
        assert_eq!(
            status.last_applied_revision.as_deref(),
            Some("v2.8.8@sha256:old")
        );
        assert_eq!(
            status.last_attempted_revision.as_deref(),
            Some("v2.9.4@sha256:new")
        );
        rolled.status = Some(status);
        assert!(holding_after_rollback(&rolled, "v2.9.4@sha256:new"));
        assert!(!holding_after_rollback(&rolled, "v2.9.4@sha256:other"));
        rolled.metadata.generation = Some(3);
        assert!(
            !holding_after_rollback(&rolled, "v2.9.4@sha256:new"),
            "a spec change retries"
        );
    }

    #[test]
    fn a_canceled_health_check_is_reconciling_with_its_reason() {
        let outcome = Outcome::Canceled {
            attempted: "v2.9.4@sha256:x".into(),
        };
        let status = next_status(&instance(None), None, &outcome, Timestamp::UNIX_EPOCH);
        assert_eq!(
            condition(&status, "Ready").unwrap().reason,
            "HealthCheckCanceled"
        );
        assert_eq!(condition(&status, "Reconciling").unwrap().status, "True");
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
