//! `ResourceSet` and `ResourceSetInputProvider` (`fluxcd.controlplane.io/v1`): sets of
//! Kubernetes objects rendered from templates once per input set, and the providers those
//! input sets come from. Wire-compatible with the Flux Operator's v1 API (v0.58.1).
//!
//! As for `FluxInstance`, every optional field is an `Option` without a serde default, so a
//! manifest read from YAML writes back exactly as written; the schema defaults are applied by
//! the API server and mirrored by the accessors at the bottom.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    Condition, LabelSelector, LabelSelectorRequirement, Time,
};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonMetadata, LocalSecretRef, ResourceInventory, Snapshot, duration};

pub mod cel;

// ---------------------------------------------------------------------------------------
// ResourceSet
// ---------------------------------------------------------------------------------------

/// What a ResourceSet renders and how: inline inputs and input providers, the object
/// templates (or ordered steps of them), dependencies and the apply identity.
// Two printer columns of type `string` read to clippy as a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "fluxcd.controlplane.io",
    version = "v1",
    kind = "ResourceSet",
    namespaced,
    status = "ResourceSetStatus",
    shortname = "rset",
    category = "all",
    category = "fluxcd",
    category = "fluxcd-appliers",
    derive = "PartialEq",
    derive = "Default",
    doc = "ResourceSet renders a set of Kubernetes objects from templates, once per input set, and reconciles them as one unit with garbage collection.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#
    )
)]
#[x_kube(validation = Rule::new(
    "!has(self.steps) || (!has(self.resources) && !has(self.resourcesTemplate))"
).message("steps is mutually exclusive with resources and resourcesTemplate"))]
#[x_kube(validation = Rule::new(
    "has(self.steps) || has(self.resources) || has(self.resourcesTemplate)"
).message("at least one of steps, resources or resourcesTemplate must be set"))]
#[serde(rename_all = "camelCase")]
pub struct ResourceSetSpec {
    /// Labels and annotations put on every rendered object, replacing keys it already has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_metadata: Option<CommonMetadata>,

    /// How the input sets of several sources are combined. Unset means `Flatten`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_strategy: Option<InputStrategy>,

    /// Inline input sets: each one is a map of names to arbitrary JSON values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<ResourceSetInput>>,

    /// Input providers (in the ResourceSet's namespace) whose exported inputs are added
    /// after the inline ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs_from: Option<Vec<InputProviderReference>>,

    /// Object templates, each rendered once per input set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "object_list")]
    pub resources: Option<Vec<serde_json::Value>>,

    /// A multi-document YAML template (`<<` `>>` delimiters) rendered once per input set;
    /// objects from `resources` win over same-named ones from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_template: Option<String>,

    /// Named stages applied (and health-checked) one after the other. Excludes
    /// `resources` and `resourcesTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(validation = Rule::new("self.all(s, self.exists_one(t, t.name == s.name))").message("step names must be unique"))]
    pub steps: Option<Vec<ResourceSetStep>>,

    /// Objects that must exist (or be ready) before anything is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<Dependency>>,

    /// Service account impersonated to apply and prune the rendered objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// Wait for the applied objects to become healthy (with steps: those of the last step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<bool>,
}

/// The incumbent's `spec` is `omitempty` and not required: an absent (or null) spec reads
/// as the empty spec, and the CRD does not require one (see `crds.rs`).
impl<'de> Deserialize<'de> for ResourceSetSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Option::<SpecFields>::deserialize(deserializer)?
            .map(SpecFields::into_spec)
            .unwrap_or_default())
    }
}

/// The fields of [`ResourceSetSpec`] as read from JSON or YAML.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecFields {
    common_metadata: Option<CommonMetadata>,
    input_strategy: Option<InputStrategy>,
    inputs: Option<Vec<ResourceSetInput>>,
    inputs_from: Option<Vec<InputProviderReference>>,
    resources: Option<Vec<serde_json::Value>>,
    resources_template: Option<String>,
    steps: Option<Vec<ResourceSetStep>>,
    depends_on: Option<Vec<Dependency>>,
    service_account_name: Option<String>,
    wait: Option<bool>,
}

impl SpecFields {
    fn into_spec(self) -> ResourceSetSpec {
        let SpecFields {
            common_metadata,
            input_strategy,
            inputs,
            inputs_from,
            resources,
            resources_template,
            steps,
            depends_on,
            service_account_name,
            wait,
        } = self;
        ResourceSetSpec {
            common_metadata,
            input_strategy,
            inputs,
            inputs_from,
            resources,
            resources_template,
            steps,
            depends_on,
            service_account_name,
            wait,
        }
    }
}

/// One input set: names mapped to arbitrary JSON values (strings, numbers, lists, objects).
/// The API server keeps the values as they are.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(transparent)]
pub struct ResourceSetInput(pub BTreeMap<String, serde_json::Value>);

impl JsonSchema for ResourceSetInput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ResourceSetInput".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An input set: names mapped to arbitrary JSON values.",
            "type": "object",
            "additionalProperties": { "x-kubernetes-preserve-unknown-fields": true }
        })
    }
}

impl std::ops::Deref for ResourceSetInput {
    type Target = BTreeMap<String, serde_json::Value>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ResourceSetInput {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl From<BTreeMap<String, serde_json::Value>> for ResourceSetInput {
    fn from(map: BTreeMap<String, serde_json::Value>) -> Self {
        Self(map)
    }
}

/// How input sets from several sources are combined.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.includeEmptyProviders) || self.name == 'Permute'")
    .message("includeEmptyProviders only applies when name is Permute"))]
#[serde(rename_all = "camelCase")]
pub struct InputStrategy {
    /// `Flatten` concatenates the sets; `Permute` builds their Cartesian product.
    pub name: InputStrategyName,
    /// With `Permute`: a source without input sets empties the product (instead of being
    /// left out of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_empty_providers: Option<bool>,
}

/// The input strategies.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum InputStrategyName {
    /// Every input set of every source, one after the other.
    #[default]
    Flatten,
    /// Every combination of one input set per source.
    Permute,
}

/// A reference to input providers in the ResourceSet's namespace, by name or by labels.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("has(self.name) || has(self.selector)")
    .message("at least one of name or selector must be set for input provider references"))]
#[x_kube(validation = Rule::new("!has(self.name) || !has(self.selector)")
    .message("cannot set both name and selector for input provider references"))]
#[serde(rename_all = "camelCase")]
pub struct InputProviderReference {
    /// Only `fluxcd.controlplane.io/v1` is accepted (and assumed when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<InputProviderApiVersion>,
    /// Only `ResourceSetInputProvider` is accepted (and assumed when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<InputProviderKind>,
    /// Name of one provider; excludes `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels of the providers to use; excludes `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "atomic_label_selector")]
    pub selector: Option<LabelSelector>,
}

/// The API version an input provider reference may name.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum InputProviderApiVersion {
    #[default]
    #[serde(rename = "fluxcd.controlplane.io/v1")]
    V1,
}

/// The kind an input provider reference may name.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum InputProviderKind {
    #[default]
    ResourceSetInputProvider,
}

/// One named stage of a ResourceSet.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("has(self.resources) || has(self.resourcesTemplate)")
    .message("at least one of resources or resourcesTemplate must be set"))]
#[serde(rename_all = "camelCase")]
pub struct ResourceSetStep {
    /// Step name, a DNS label unique in the list.
    #[schemars(length(max = 63), regex(pattern = STEP_NAME_PATTERN))]
    pub name: String,
    /// Object templates of this step, rendered once per input set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "object_list")]
    pub resources: Option<Vec<serde_json::Value>>,
    /// Multi-document YAML template of this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_template: Option<String>,
    /// How long the step's objects may take to become ready; unset means the
    /// ResourceSet's reconcile timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = duration::DURATION_PATTERN))]
    pub timeout: Option<String>,
}

/// Pattern of a step name (an RFC 1123 label).
pub const STEP_NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// An object that must exist (and, with `ready`, be ready) before the set is applied.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// Unset: the ResourceSet's namespace (ignored for cluster-scoped kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Check readiness too, not only existence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// A CEL expression over the object that decides readiness instead of the default
    /// check; used only with `ready: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_expr: Option<String>,
}

/// What the controller observed and did.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSetStatus {
    /// Last `reconcile.fluxcd.io/requestedAt` value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    /// Objects last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<ResourceInventory>,
    /// `sha256:<hex>` digest of the object set last applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// `Kind/namespace/name` of the ConfigMaps and Secrets named by checksum annotations that
    /// the set does not render itself; a change to one of them triggers a reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_checksum_refs: Option<Vec<String>>,
    /// Reconcile history, most recent first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Snapshot>>,
}

// ---------------------------------------------------------------------------------------
// ResourceSetInputProvider
// ---------------------------------------------------------------------------------------

/// Where a provider's input sets come from and how they are filtered.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fluxcd.controlplane.io",
    version = "v1",
    kind = "ResourceSetInputProvider",
    namespaced,
    status = "ResourceSetInputProviderStatus",
    shortname = "rsip",
    category = "all",
    category = "fluxcd",
    category = "fluxcd-sources",
    derive = "PartialEq",
    doc = "ResourceSetInputProvider exports input sets for ResourceSets: static values, Git branches, tags and pull requests, OCI tags, an external service or ExternalArtifacts.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#
    )
)]
#[x_kube(validation = Rule::new("self.type != 'Static' || !has(self.url)").message("spec.url must be empty when spec.type is 'Static'"))]
#[x_kube(validation = Rule::new("self.type != 'ExternalArtifact' || !has(self.url)").message("spec.url must be empty when spec.type is 'ExternalArtifact'"))]
#[x_kube(validation = Rule::new("self.type == 'Static' || self.type == 'ExternalArtifact' || has(self.url)").message("spec.url must not be empty when spec.type is not 'Static' or 'ExternalArtifact'"))]
#[x_kube(validation = Rule::new("!self.type.startsWith('Git') || self.url.startsWith('http')").message("spec.url must start with 'http://' or 'https://' when spec.type is a Git provider"))]
#[x_kube(validation = Rule::new("!self.type.startsWith('AzureDevOps') || self.url.startsWith('http://') || self.url.startsWith('https://')").message("spec.url must start with 'http://' or 'https://' when spec.type is an AzureDevOps provider"))]
#[x_kube(validation = Rule::new("!self.type.startsWith('AWSCodeCommit') || self.url.startsWith('https://')").message("spec.url must start with 'https://' when spec.type is a AWSCodeCommit provider"))]
#[x_kube(validation = Rule::new("!self.type.endsWith('ArtifactTag') || self.url.startsWith('oci')").message("spec.url must start with 'oci://' when spec.type is an OCI provider"))]
#[x_kube(validation = Rule::new("!self.type.endsWith('ArtifactTag') || !self.url.startsWith('oci://') || self.url.substring(6).contains('/')").message("spec.url must include the repository path after the registry host when spec.type is an OCI provider"))]
#[x_kube(validation = Rule::new("self.type != 'ExternalService' || self.url.startsWith('http')").message("spec.url must start with 'http://' or 'https://' when spec.type is 'ExternalService'"))]
#[x_kube(validation = Rule::new("!has(self.insecure) || !self.insecure || self.type == 'ExternalService' || self.type == 'OCIArtifactTag'").message("spec.insecure can only be set when spec.type is 'ExternalService' or 'OCIArtifactTag'"))]
#[x_kube(validation = Rule::new("self.type != 'ExternalService' || !self.url.startsWith('http://') || (has(self.insecure) && self.insecure)").message("spec.url must use 'https://' unless spec.insecure is true"))]
#[x_kube(validation = Rule::new("!has(self.serviceAccountName) || self.type.startsWith('AzureDevOps') || self.type.startsWith('AWSCodeCommit') || self.type.endsWith('ArtifactTag') || self.type == 'ExternalArtifact'").message("cannot specify spec.serviceAccountName when spec.type is not one of AzureDevOps*, AWSCodeCommit*, *ArtifactTag or ExternalArtifact"))]
#[x_kube(validation = Rule::new("!has(self.certSecretRef) || !(self.type == 'Static' || self.type == 'ExternalArtifact' || self.type.startsWith('AzureDevOps') || self.type.startsWith('AWSCodeCommit') || (self.type.endsWith('ArtifactTag') && self.type != 'OCIArtifactTag'))").message("cannot specify spec.certSecretRef when spec.type is one of Static, ExternalArtifact, AzureDevOps*, AWSCodeCommit*, ACRArtifactTag, ECRArtifactTag or GARArtifactTag"))]
#[x_kube(validation = Rule::new("!has(self.secretRef) || !(self.type == 'Static' || self.type == 'ExternalArtifact' || self.type.startsWith('AWSCodeCommit') || (self.type.endsWith('ArtifactTag') && self.type != 'OCIArtifactTag'))").message("cannot specify spec.secretRef when spec.type is one of Static, ExternalArtifact, AWSCodeCommit*, ACRArtifactTag, ECRArtifactTag or GARArtifactTag"))]
#[x_kube(validation = Rule::new("self.type != 'ExternalArtifact' || (has(self.selectors) && size(self.selectors) > 0)").message("spec.selectors must be set when spec.type is 'ExternalArtifact'"))]
#[x_kube(validation = Rule::new("self.type == 'ExternalArtifact' || !has(self.selectors)").message("spec.selectors must not be set when spec.type is not 'ExternalArtifact'"))]
#[serde(rename_all = "camelCase")]
pub struct ResourceSetInputProviderSpec {
    /// The kind of source the input sets come from.
    #[serde(rename = "type")]
    pub type_: InputProviderType,

    /// Address of the source: a Git repository (`https://`), an OCI repository (`oci://`) or
    /// an external service. Must be empty for `Static` and `ExternalArtifact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = URL_PATTERN))]
    pub url: Option<String>,

    /// Service account for cloud workload identity (AzureDevOps, AWSCodeCommit, registry
    /// tags), to impersonate (ExternalArtifact), or whose image pull secrets are used
    /// (OCIArtifactTag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,

    /// Secret with the source's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalSecretRef>,

    /// Secret with TLS material (`ca.crt`, `tls.crt`, `tls.key`) for the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalSecretRef>,

    /// Allow plain HTTP (ExternalService and OCIArtifactTag only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,

    /// Values added to every exported input set for keys the source does not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_values: Option<ResourceSetInput>,

    /// Which results of the source are exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<ResourceSetInputFilter>,

    /// Results that keep their previously exported values instead of being updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<ResourceSetInputSkip>,

    /// Time windows the provider may reconcile in; unset means any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<Schedule>>,

    /// Which ExternalArtifacts to export (ExternalArtifact only, then required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selectors: Option<Vec<ExternalArtifactSelector>>,
}

/// Pattern of an input provider's `url`: empty, or an `http`, `https` or `oci` address.
pub const URL_PATTERN: &str = "^((http|https|oci)://.*){0,1}$";

/// The source kinds of an input provider.
#[derive(
    Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum InputProviderType {
    Static,
    GitHubBranch,
    GitHubTag,
    GitHubPullRequest,
    GitLabBranch,
    GitLabTag,
    GitLabMergeRequest,
    GitLabEnvironment,
    AzureDevOpsBranch,
    AzureDevOpsTag,
    AzureDevOpsPullRequest,
    AWSCodeCommitBranch,
    AWSCodeCommitTag,
    AWSCodeCommitPullRequest,
    GiteaBranch,
    GiteaTag,
    GiteaPullRequest,
    OCIArtifactTag,
    ACRArtifactTag,
    ECRArtifactTag,
    GARArtifactTag,
    ExternalService,
    ExternalArtifact,
}

impl InputProviderType {
    pub const ALL: [InputProviderType; 23] = [
        Self::Static,
        Self::GitHubBranch,
        Self::GitHubTag,
        Self::GitHubPullRequest,
        Self::GitLabBranch,
        Self::GitLabTag,
        Self::GitLabMergeRequest,
        Self::GitLabEnvironment,
        Self::AzureDevOpsBranch,
        Self::AzureDevOpsTag,
        Self::AzureDevOpsPullRequest,
        Self::AWSCodeCommitBranch,
        Self::AWSCodeCommitTag,
        Self::AWSCodeCommitPullRequest,
        Self::GiteaBranch,
        Self::GiteaTag,
        Self::GiteaPullRequest,
        Self::OCIArtifactTag,
        Self::ACRArtifactTag,
        Self::ECRArtifactTag,
        Self::GARArtifactTag,
        Self::ExternalService,
        Self::ExternalArtifact,
    ];

    /// The name as written in `spec.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "Static",
            Self::GitHubBranch => "GitHubBranch",
            Self::GitHubTag => "GitHubTag",
            Self::GitHubPullRequest => "GitHubPullRequest",
            Self::GitLabBranch => "GitLabBranch",
            Self::GitLabTag => "GitLabTag",
            Self::GitLabMergeRequest => "GitLabMergeRequest",
            Self::GitLabEnvironment => "GitLabEnvironment",
            Self::AzureDevOpsBranch => "AzureDevOpsBranch",
            Self::AzureDevOpsTag => "AzureDevOpsTag",
            Self::AzureDevOpsPullRequest => "AzureDevOpsPullRequest",
            Self::AWSCodeCommitBranch => "AWSCodeCommitBranch",
            Self::AWSCodeCommitTag => "AWSCodeCommitTag",
            Self::AWSCodeCommitPullRequest => "AWSCodeCommitPullRequest",
            Self::GiteaBranch => "GiteaBranch",
            Self::GiteaTag => "GiteaTag",
            Self::GiteaPullRequest => "GiteaPullRequest",
            Self::OCIArtifactTag => "OCIArtifactTag",
            Self::ACRArtifactTag => "ACRArtifactTag",
            Self::ECRArtifactTag => "ECRArtifactTag",
            Self::GARArtifactTag => "GARArtifactTag",
            Self::ExternalService => "ExternalService",
            Self::ExternalArtifact => "ExternalArtifact",
        }
    }
}

impl std::fmt::Display for InputProviderType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// ExternalArtifacts selected by name, or by labels, in a namespace (`*`: every namespace).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(validation = Rule::new("!has(self.name) || (!has(self.matchLabels) && !has(self.matchExpressions))")
    .message("name is mutually exclusive with matchLabels and matchExpressions"))]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
#[serde(rename_all = "camelCase")]
pub struct ExternalArtifactSelector {
    /// Labels the artifacts must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Label requirements the artifacts must meet (all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "label_requirements")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
    /// Name of one artifact; excludes the label fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace to look in: unset means the provider's, `*` means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Which results of a provider are exported.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSetInputFilter {
    /// Regular expression branch names must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_branch: Option<String>,
    /// Regular expression branch names must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_branch: Option<String>,
    /// Regular expression tags must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_tag: Option<String>,
    /// Regular expression tags must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_tag: Option<String>,
    /// Regular expression environment names must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_environment: Option<String>,
    /// Regular expression environment names must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_environment: Option<String>,
    /// Labels a pull or merge request must carry (all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Most results exported. Defaults to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "filter_limit")]
    pub limit: Option<i64>,
    /// Semver constraint tags must satisfy; matching tags are sorted newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
}

/// Results whose labels mark them as skipped.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
pub struct ResourceSetInputSkip {
    /// A result with any of these labels (or, for `!label`, without it) is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// A cron schedule with the window after each trigger during which reconciling is allowed.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Five-field cron expression or a descriptor such as `@daily`.
    pub cron: String,
    /// IANA time zone of `cron`. Defaults to `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "UTC"))]
    pub time_zone: Option<String>,
    /// How long after each trigger reconciling is allowed; `0s` (the default) means at any
    /// time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = duration::DURATION_PATTERN), extend("default" = "0s"))]
    pub window: Option<String>,
}

/// The next time a scheduled provider may reconcile.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NextSchedule {
    /// The schedule the time comes from.
    #[serde(flatten)]
    pub schedule: Schedule,
    /// When it triggers next.
    pub when: Time,
}

/// What the provider observed and exported.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSetInputProviderStatus {
    /// Last `reconcile.fluxcd.io/requestedAt` value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// Last `reconcile.fluxcd.io/forceAt` value handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_force_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "conditions")]
    pub conditions: Option<Vec<Condition>>,
    /// The input sets last exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_inputs: Option<Vec<ResourceSetInput>>,
    /// `sha256:<hex>` digest of `exportedInputs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exported_revision: Option<String>,
    /// Set while the schedule holds reconciling back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule: Option<NextSchedule>,
}

// ---------------------------------------------------------------------------------------
// Schemas the derive cannot express
// ---------------------------------------------------------------------------------------

/// A list of arbitrary objects kept as they are (object templates).
fn object_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// `filter.limit`: a plain integer (no format), 100 by default, at most 10000.
fn filter_limit(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Most results exported. Defaults to 100.",
        "type": "integer",
        "default": 100,
        "maximum": 10000
    })
}

/// Label selector requirements, replaced as a whole by server-side apply.
fn label_requirements(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Label requirements, all of which must be met.",
        "type": "array",
        "x-kubernetes-list-type": "atomic",
        "items": {
            "type": "object",
            "required": ["key", "operator"],
            "properties": {
                "key": { "type": "string", "description": "The label key." },
                "operator": {
                    "type": "string",
                    "description": "One of In, NotIn, Exists and DoesNotExist."
                },
                "values": {
                    "type": "array",
                    "x-kubernetes-list-type": "atomic",
                    "items": { "type": "string" },
                    "description": "Values for In and NotIn; empty for Exists and DoesNotExist."
                }
            }
        }
    })
}

/// A standard label selector, replaced as a whole by server-side apply.
fn atomic_label_selector(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Labels (and label requirements) the objects must match.",
        "type": "object",
        "x-kubernetes-map-type": "atomic",
        "properties": {
            "matchLabels": {
                "type": "object",
                "additionalProperties": { "type": "string" },
                "description": "Labels the objects must carry."
            },
            "matchExpressions": label_requirements(generator)
        }
    })
}

/// Status conditions with the validation of the standard `metav1.Condition` schema.
fn conditions(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "The latest observations of the object's state (Ready, Reconciling, Stalled).",
        "type": "array",
        "items": {
            "type": "object",
            "required": ["lastTransitionTime", "message", "reason", "status", "type"],
            "properties": {
                "lastTransitionTime": {
                    "type": "string",
                    "format": "date-time",
                    "description": "When the status last changed."
                },
                "message": {
                    "type": "string",
                    "maxLength": 32768,
                    "description": "Human-readable details."
                },
                "observedGeneration": {
                    "type": "integer",
                    "format": "int64",
                    "minimum": 0,
                    "description": "The metadata.generation the condition was computed for."
                },
                "reason": {
                    "type": "string",
                    "maxLength": 1024,
                    "minLength": 1,
                    "pattern": "^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
                    "description": "CamelCase reason of the last transition."
                },
                "status": {
                    "type": "string",
                    "enum": ["True", "False", "Unknown"],
                    "description": "True, False or Unknown."
                },
                "type": {
                    "type": "string",
                    "maxLength": 316,
                    "pattern": "^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
                    "description": "Condition type, in CamelCase or foo.example.com/CamelCase."
                }
            }
        }
    })
}

// ---------------------------------------------------------------------------------------
// Effective values
// ---------------------------------------------------------------------------------------

impl ResourceSetSpec {
    /// The input strategy; unset means `Flatten`.
    pub fn input_strategy_name(&self) -> InputStrategyName {
        self.input_strategy
            .as_ref()
            .map(|s| s.name)
            .unwrap_or_default()
    }

    pub fn wait(&self) -> bool {
        self.wait.unwrap_or(false)
    }
}

impl ResourceSetInputFilter {
    /// Results kept when `limit` is unset.
    pub const DEFAULT_LIMIT: i64 = 100;

    /// `limit`, 100 when unset or not positive.
    pub fn limit(&self) -> i64 {
        self.limit.filter(|l| *l > 0).unwrap_or(Self::DEFAULT_LIMIT)
    }
}

impl Schedule {
    pub fn time_zone(&self) -> &str {
        self.time_zone
            .as_deref()
            .filter(|z| !z.is_empty())
            .unwrap_or("UTC")
    }

    pub fn window(&self) -> &str {
        self.window
            .as_deref()
            .filter(|w| !w.is_empty())
            .unwrap_or("0s")
    }
}

#[cfg(test)]
mod roundtrip_tests;
#[cfg(test)]
mod schema_tests;

/// Annotations both kinds read: suspension, intervals, timeouts (the incumbent's keys and
/// defaults; an unparsable value falls back to the default, as the incumbent does).
fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn annotated_duration(
    meta: &kube::api::ObjectMeta,
    key: &str,
    default: std::time::Duration,
) -> std::time::Duration {
    annotation(meta, key)
        .and_then(|v| duration::parse(v).ok())
        .map_or(default, super::instance::at_least_min_interval)
}

fn is_disabled(meta: &kube::api::ObjectMeta) -> bool {
    annotation(meta, super::constants::annotation::RECONCILE)
        .is_some_and(|v| v.eq_ignore_ascii_case(super::constants::annotation::DISABLED_VALUE))
}

impl ResourceSet {
    pub const DEFAULT_RECONCILE_EVERY: std::time::Duration =
        std::time::Duration::from_secs(60 * 60);
    pub const DEFAULT_RECONCILE_TIMEOUT: std::time::Duration =
        std::time::Duration::from_secs(5 * 60);

    /// `fluxcd.controlplane.io/reconcile: disabled` (any case).
    pub fn is_reconcile_disabled(&self) -> bool {
        is_disabled(&self.metadata)
    }

    pub fn reconcile_every(&self) -> std::time::Duration {
        annotated_duration(
            &self.metadata,
            super::constants::annotation::RECONCILE_EVERY,
            Self::DEFAULT_RECONCILE_EVERY,
        )
    }

    pub fn reconcile_timeout(&self) -> std::time::Duration {
        annotation(
            &self.metadata,
            super::constants::annotation::RECONCILE_TIMEOUT,
        )
        .and_then(|v| duration::parse(v).ok())
        .unwrap_or(Self::DEFAULT_RECONCILE_TIMEOUT)
    }

    /// `fluxcd.controlplane.io/force: enabled`: recreate objects whose immutable fields
    /// changed.
    pub fn force_enabled(&self) -> bool {
        annotation(&self.metadata, "fluxcd.controlplane.io/force")
            .is_some_and(|v| v.eq_ignore_ascii_case("enabled"))
    }
}

impl ResourceSetInputProvider {
    pub const DEFAULT_RECONCILE_EVERY: std::time::Duration =
        std::time::Duration::from_secs(10 * 60);
    pub const DEFAULT_RECONCILE_TIMEOUT: std::time::Duration =
        std::time::Duration::from_secs(2 * 60);

    pub fn is_reconcile_disabled(&self) -> bool {
        is_disabled(&self.metadata)
    }

    pub fn reconcile_every(&self) -> std::time::Duration {
        annotated_duration(
            &self.metadata,
            super::constants::annotation::RECONCILE_EVERY,
            Self::DEFAULT_RECONCILE_EVERY,
        )
    }

    pub fn reconcile_timeout(&self) -> std::time::Duration {
        annotation(
            &self.metadata,
            super::constants::annotation::RECONCILE_TIMEOUT,
        )
        .and_then(|v| duration::parse(v).ok())
        .unwrap_or(Self::DEFAULT_RECONCILE_TIMEOUT)
    }
}
