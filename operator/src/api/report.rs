//! `FluxReport`: what is installed on the cluster and how it is doing, written by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The observed state of the Flux installation (an observation, not a request).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "fluxcd.controlplane.io",
    version = "v1",
    kind = "FluxReport",
    namespaced,
    status = "FluxReportStatus",
    category = "fluxcd",
    derive = "PartialEq",
    doc = "FluxReport is the observed state of the Flux installation of a cluster, refreshed by the operator.",
    printcolumn(name = "Entitlement", type_ = "string", json_path = ".spec.distribution.entitlement", priority = 10),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Status", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].message"#),
    printcolumn(name = "LastUpdated", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].lastTransitionTime"#),
    validation = Rule::new("self.metadata.name == 'flux'").message("the only accepted name for a FluxReport is 'flux'")
)]
#[serde(rename_all = "camelCase")]
pub struct FluxReportSpec {
    /// The installed distribution, detected from the Flux CRDs' labels.
    pub distribution: FluxDistributionStatus,

    /// The cluster the report was made on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<FluxClusterInfo>,

    /// The operator that made the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<FluxOperatorInfo>,

    /// Readiness and image of every Flux controller Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<FluxComponentStatus>>,

    /// Per Flux kind: running, failing, suspended, artifact size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcilers: Option<Vec<FluxReconcilerStatus>>,

    /// The cluster sync source and Kustomization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<FluxSyncStatus>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FluxDistributionStatus {
    /// Entitlement verification status.
    pub entitlement: String,
    /// `Installed`, `Not Installed` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The tool managing the installation (e.g. `fluxop`, `flux bootstrap`, `kubectl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_by: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FluxClusterInfo {
    pub server_version: String,
    pub platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<i64>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FluxOperatorInfo {
    pub api_version: String,
    pub version: String,
    pub platform: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
pub struct FluxComponentStatus {
    pub name: String,
    pub ready: bool,
    pub status: String,
    pub image: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FluxReconcilerStatus {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<FluxReconcilerStats>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FluxReconcilerStats {
    /// Objects not suspended.
    pub running: i64,
    /// Objects with Ready=False (not DependencyNotReady) and not suspended.
    pub failing: i64,
    pub suspended: i64,
    /// Sum of the sources' artifact sizes, human readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_size: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
pub struct FluxSyncStatus {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub ready: bool,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FluxReportStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}
