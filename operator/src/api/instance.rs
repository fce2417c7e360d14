//! `FluxInstance`: the desired Flux installation of one cluster.
//!
//! Optional fields are `Option`s without serde defaults, so an instance read from YAML writes
//! back exactly as it came in; the API server applies the schema defaults, and the effective
//! values (with the same defaults) come from the accessor methods at the bottom.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{constants::annotation, duration};

/// Specification of the Flux installation.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fluxcd.controlplane.io",
    version = "v1",
    kind = "FluxInstance",
    namespaced,
    status = "FluxInstanceStatus",
    shortname = "instance",
    category = "fluxcd",
    derive = "PartialEq",
    doc = "FluxInstance is the desired Flux installation of a cluster: distribution, components, cluster profile and sync source.",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Status", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].message"#),
    printcolumn(name = "Revision", type_ = "string", json_path = ".status.lastAttemptedRevision"),
    validation = Rule::new("self.metadata.name == 'flux'").message("the only accepted name for a FluxInstance is 'flux'")
)]
#[x_kube(validation = Rule::new(
    "!has(self.sharding) || !has(self.sharding.storage) || self.sharding.storage != 'persistent' || has(self.storage)"
).message(".spec.storage must be set when .spec.sharding.storage is 'persistent'"))]
#[serde(rename_all = "camelCase")]
pub struct FluxInstanceSpec {
    /// Version range, registry and artifact of the Flux distribution.
    pub distribution: Distribution,

    /// Controllers to install. Defaults to source, kustomize, helm and notification controllers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<Component>>,

    /// Labels and annotations added to every rendered object; they override existing keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_metadata: Option<CommonMetadata>,

    /// The cluster Flux runs on: type, size profile, domain, tenancy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,

    /// Extra controller shards selected by a label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharding: Option<Sharding>,

    /// Persistent volume claim for source-controller's artifact storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,

    /// Patches applied to the rendered objects, last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<Kustomize>,

    /// Wait for every applied object to become healthy. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub wait: Option<bool>,

    /// Migrate stored Flux custom resources to the new storage version after an upgrade.
    /// Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub migrate_resources: Option<bool>,

    /// The source and Kustomization that sync the cluster from a repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Sync>,
}

/// Where the Flux manifests and images come from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    /// Semver version or range, e.g. `2.x`, `2.8.x`, `2.8.0`, `>=2.7.0 <2.9.0`.
    pub version: String,

    /// Container registry of the controller images, e.g. `ghcr.io/fluxcd`.
    pub registry: String,

    /// Image variant; derived from well-known registries when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<Variant>,

    /// Secret used to pull the controller images; added to every controller Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,

    /// OCI artifact holding the distribution manifests, e.g. `oci://registry/flux-manifests:latest`.
    /// Empty means the bundle embedded in the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^oci://.*$"))]
    pub artifact: Option<String>,

    /// Secret of type `kubernetes.io/dockerconfigjson` used to pull the artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_pull_secret: Option<String>,

    /// (fluxop) Signature policy for the artifact: nothing from an artifact that fails
    /// verification reaches the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verify>,
}

/// Image variants of the Flux distribution.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    UpstreamAlpine,
    EnterpriseAlpine,
    EnterpriseDistroless,
    EnterpriseDistrolessFips,
}

/// (fluxop) Signature verification of the distribution artifact.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Verify {
    /// Signature scheme; `cosign` key-pair signatures (the `.sig` tag scheme).
    pub provider: VerifyProvider,
    /// Secret in the instance's namespace holding the public key as `cosign.pub`.
    pub secret_ref: LocalSecretRef,
}

/// Signature schemes fluxop verifies.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum VerifyProvider {
    Cosign,
}

/// Reference to a Secret in the same namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct LocalSecretRef {
    pub name: String,
}

/// A Flux controller.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum Component {
    SourceController,
    KustomizeController,
    HelmController,
    NotificationController,
    ImageReflectorController,
    ImageAutomationController,
    /// Available from Flux 2.7.
    SourceWatcher,
}

impl Component {
    pub const ALL: [Component; 7] = [
        Component::SourceController,
        Component::KustomizeController,
        Component::HelmController,
        Component::NotificationController,
        Component::ImageReflectorController,
        Component::ImageAutomationController,
        Component::SourceWatcher,
    ];

    /// The set installed when `spec.components` is empty.
    pub const DEFAULTS: [Component; 4] = [
        Component::SourceController,
        Component::KustomizeController,
        Component::HelmController,
        Component::NotificationController,
    ];

    /// The name used in manifests, Deployments and file names (`source-controller`).
    pub fn name(self) -> &'static str {
        match self {
            Component::SourceController => "source-controller",
            Component::KustomizeController => "kustomize-controller",
            Component::HelmController => "helm-controller",
            Component::NotificationController => "notification-controller",
            Component::ImageReflectorController => "image-reflector-controller",
            Component::ImageAutomationController => "image-automation-controller",
            Component::SourceWatcher => "source-watcher",
        }
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Labels and annotations for every rendered object.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct CommonMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The Kubernetes cluster Flux is installed on.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new(
    "(has(self.objectLevelWorkloadIdentity) && self.objectLevelWorkloadIdentity) || !has(self.multitenantWorkloadIdentity) || !self.multitenantWorkloadIdentity"
).message(".objectLevelWorkloadIdentity must be set to true when .multitenantWorkloadIdentity is set to true"))]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// Cluster domain used in service addresses. Defaults to `cluster.local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "cluster.local"))]
    pub domain: Option<String>,

    /// Multitenancy lockdown. Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub multitenant: Option<bool>,

    /// Multitenancy lockdown for workload identity (Flux >= 2.7); requires
    /// `objectLevelWorkloadIdentity`. Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub multitenant_workload_identity: Option<bool>,

    /// Default service account of tenants when multitenancy is on. Defaults to `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_default_service_account: Option<String>,

    /// Default service account for SOPS decryption under workload identity lockdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_default_decryption_service_account: Option<String>,

    /// Default service account for remote cluster access under workload identity lockdown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_default_kube_config_service_account: Option<String>,

    /// Object-level workload identity feature gate (Flux >= 2.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_level_workload_identity: Option<bool>,

    /// Install the release's network policies. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = true))]
    pub network_policy: Option<bool>,

    /// Distribution of Kubernetes. Defaults to `kubernetes`.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "type")]
    #[schemars(extend("default" = "kubernetes"))]
    pub type_: Option<ClusterType>,

    /// Vertical scaling profile of the controllers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Size>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum ClusterType {
    #[default]
    Kubernetes,
    Openshift,
    Aws,
    Azure,
    Gcp,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Size {
    Small,
    Medium,
    Large,
}

/// Controller shards.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Sharding {
    /// Label key that assigns Flux objects to shards. Defaults to `sharding.fluxcd.io/key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "sharding.fluxcd.io/key"))]
    pub key: Option<String>,

    /// Shard names.
    #[schemars(length(min = 1))]
    pub shards: Vec<String>,

    /// Storage of the source-controller shards. Defaults to `ephemeral`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<ShardingStorage>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum ShardingStorage {
    #[default]
    Ephemeral,
    Persistent,
}

/// Persistent volume claim of source-controller.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct Storage {
    /// Storage class of the claim.
    pub class: String,
    /// Size of the claim, e.g. `10Gi`.
    pub size: String,
}

/// User patches.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct Kustomize {
    /// Strategic-merge or JSON6902 patches with their target selectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patches: Option<Vec<Patch>>,
}

/// One patch: inline strategic-merge YAML or a JSON6902 list of operations.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct Patch {
    pub patch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PatchSelector>,
}

/// Which rendered objects a patch applies to; every set field must match.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PatchSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
}

/// The cluster sync: a Flux source plus a Kustomization, as `flux bootstrap` creates.
///
/// The name cannot change, nor be added or removed, after creation: renaming would orphan
/// the source and Kustomization the cluster is synced from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new(
    "(has(self.name) ? self.name : '') == (has(oldSelf.name) ? oldSelf.name : '')"
).message("Sync name is immutable"))]
#[serde(rename_all = "camelCase")]
pub struct Sync {
    /// Name of the source and Kustomization. Defaults to the instance's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub name: Option<String>,

    /// Interval of the source. Defaults to `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = duration::DURATION_PATTERN), extend("default" = "1m"))]
    pub interval: Option<String>,

    /// Kind of the source.
    pub kind: SyncKind,

    /// Git HTTP/S or SSH address, OCI repository address or bucket endpoint.
    pub url: String,

    /// Git ref name (`refs/heads/main`), OCI tag (`latest`) or bucket name.
    #[serde(rename = "ref")]
    pub ref_: String,

    /// Directory in the source with the manifests to apply.
    pub path: String,

    /// Secret with the source's credentials; becomes the source's `secretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_secret: Option<String>,

    /// OIDC provider for source authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<SyncProvider>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncKind {
    GitRepository,
    OCIRepository,
    Bucket,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum SyncProvider {
    Generic,
    Aws,
    Azure,
    Gcp,
    Github,
}

/// What fluxop observed and did.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FluxInstanceStatus {
    /// Last `reconcile.fluxcd.io/requestedAt` value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// Last `reconcile.fluxcd.io/forceAt` value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_force_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// `<flux version>@sha256:<digest of the rendered objects>` last attempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// `<flux version>@sha256:<digest of the rendered objects>` last applied successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// OCI manifest digest of the last pulled distribution artifact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_artifact_revision: Option<String>,
    /// Images of the installed controllers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<ComponentImage>>,
    /// Objects last applied to the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<ResourceInventory>,
    /// The last reconciled revisions, most recent first (at most 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Snapshot>>,
    /// fluxop's addition: the spec of `lastAppliedRevision` when it last became healthy. A
    /// revision that does not become healthy is rolled back to this spec (at the version of
    /// `lastAppliedRevision`), whether the version or the spec changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::any_object")]
    pub last_applied_spec: Option<serde_json::Value>,
    /// fluxop's addition: a revision that did not become healthy and was rolled back. While
    /// the spec generation and the last reconcile request are the ones recorded here, the
    /// restored revision is kept (and its drift corrected) instead of trying again; a
    /// transient error (a registry outage) does not end the hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackHold>,
}

/// A rollback in effect: see [`FluxInstanceStatus::rollback`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackHold {
    /// The revision that did not become healthy.
    pub attempted_revision: String,
    /// The revision restored in its place.
    pub restored_revision: String,
    /// Why the attempt was rolled back.
    pub message: String,
    /// The spec generation the attempt was rendered from.
    pub generation: i64,
    /// The `reconcile.fluxcd.io/requestedAt` value at the time, if any: a new request retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<String>,
    /// When the rollback happened.
    pub rolled_back_at: Time,
}

/// The image of an installed controller.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct ComponentImage {
    pub name: String,
    pub repository: String,
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Objects applied by the operator.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
pub struct ResourceInventory {
    pub entries: Vec<ResourceRef>,
}

/// One applied object.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub struct ResourceRef {
    /// `<namespace>_<name>_<group>_<kind>`.
    pub id: String,
    /// API version of the object's kind.
    pub v: String,
}

/// One revision's reconciliation record.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// `<algo>:<hex>` checksum of the revision's objects.
    pub digest: String,
    pub first_reconciled: Time,
    pub last_reconciled: Time,
    /// Go-style duration, e.g. `1.2s`.
    pub last_reconciled_duration: String,
    pub last_reconciled_status: String,
    pub total_reconciliations: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Effective values: the schema defaults, for instances the API server did not default
/// (built offline, or read from a file).
impl FluxInstanceSpec {
    pub fn components(&self) -> Vec<Component> {
        match &self.components {
            Some(list) if !list.is_empty() => list.clone(),
            _ => Component::DEFAULTS.to_vec(),
        }
    }

    pub fn wait(&self) -> bool {
        self.wait.unwrap_or(true)
    }

    pub fn migrate_resources(&self) -> bool {
        self.migrate_resources.unwrap_or(true)
    }
}

impl Cluster {
    pub fn domain(&self) -> &str {
        self.domain
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or("cluster.local")
    }

    pub fn cluster_type(&self) -> ClusterType {
        self.type_.unwrap_or_default()
    }

    pub fn network_policy(&self) -> bool {
        self.network_policy.unwrap_or(true)
    }
}

impl Sharding {
    pub fn key(&self) -> &str {
        self.key
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or("sharding.fluxcd.io/key")
    }
}

impl Sync {
    /// Name of the generated source and Kustomization: `name`, else the namespace.
    pub fn name_or<'a>(&'a self, namespace: &'a str) -> &'a str {
        self.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(namespace)
    }

    pub fn interval(&self) -> &str {
        self.interval.as_deref().unwrap_or("1m")
    }
}

/// Reconcile scheduling read from the instance's annotations.
impl FluxInstance {
    pub const DEFAULT_RECONCILE_EVERY: Duration = Duration::from_secs(60 * 60);
    pub const DEFAULT_RECONCILE_ARTIFACT_EVERY: Duration = Duration::from_secs(10 * 60);
    pub const DEFAULT_RECONCILE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

    fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata
            .annotations
            .as_ref()?
            .get(key)
            .map(String::as_str)
    }

    /// `fluxcd.controlplane.io/reconcile: disabled` (any case).
    pub fn is_reconcile_disabled(&self) -> bool {
        self.annotation(annotation::RECONCILE)
            .is_some_and(|v| v.eq_ignore_ascii_case(annotation::DISABLED_VALUE))
    }

    fn annotated_duration(
        &self,
        key: &str,
        default: Duration,
    ) -> Result<Duration, duration::InvalidDuration> {
        self.annotation(key).map_or(Ok(default), duration::parse)
    }

    /// How often the instance is reconciled, at least
    /// [`crate::policy::requeue::MIN_INTERVAL`]. An unparsable value is an error the caller
    /// reports, not a silent fallback.
    pub fn reconcile_every(&self) -> Result<Duration, duration::InvalidDuration> {
        self.annotated_duration(annotation::RECONCILE_EVERY, Self::DEFAULT_RECONCILE_EVERY)
            .map(at_least_min_interval)
    }

    /// How often the artifact's digest is checked, at least
    /// [`crate::policy::requeue::MIN_INTERVAL`].
    pub fn reconcile_artifact_every(&self) -> Result<Duration, duration::InvalidDuration> {
        self.annotated_duration(
            annotation::RECONCILE_ARTIFACT_EVERY,
            Self::DEFAULT_RECONCILE_ARTIFACT_EVERY,
        )
        .map(at_least_min_interval)
    }

    /// How long one reconcile may wait for health.
    pub fn reconcile_timeout(&self) -> Result<Duration, duration::InvalidDuration> {
        self.annotated_duration(
            annotation::RECONCILE_TIMEOUT,
            Self::DEFAULT_RECONCILE_TIMEOUT,
        )
    }
}

/// An interval raised to the floor that keeps a `0s` from spinning a loop.
pub fn at_least_min_interval(interval: Duration) -> Duration {
    interval.max(crate::policy::requeue::MIN_INTERVAL)
}
