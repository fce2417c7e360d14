//! `FluxFleet` (fluxop's own API group, `fleet.fluxop.io/v1alpha1`): on a hub cluster, the
//! member clusters, the `FluxInstance` they should run, and the waves a change rolls out in.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// FluxInstance specs (or parts of one) are kept as they are by the API server; fluxop
// checks them when it builds each member's instance.
use super::any_object;

/// Member clusters, the instance template and the rollout waves.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fleet.fluxop.io",
    version = "v1alpha1",
    kind = "FluxFleet",
    namespaced,
    status = "FluxFleetStatus",
    shortname = "fleet",
    category = "fluxcd",
    derive = "PartialEq",
    doc = "FluxFleet rolls a FluxInstance out to member clusters in waves, with health gates between waves and rollback of a failed wave.",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#),
    printcolumn(name = "Status", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].message"#),
    validation = Rule::new("self.metadata.name.size() <= 63").message("a FluxFleet name is at most 63 characters")
)]
#[serde(rename_all = "camelCase")]
pub struct FluxFleetSpec {
    /// The spec of the FluxInstance every member runs (before its overrides).
    #[schemars(schema_with = "any_object")]
    pub template: serde_json::Value,

    /// The member clusters.
    #[schemars(length(min = 1))]
    pub members: Vec<FleetMember>,

    /// Rollout order: each wave names members; members in no wave form a last wave. A wave
    /// starts only when every member of the waves before it is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waves: Option<Vec<FleetWave>>,

    /// Namespace of the FluxInstance on the members. Defaults to `flux-system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// How long a member may take to become Ready after a change before its wave counts as
    /// failed, e.g. `10m`. Defaults to `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout: Option<String>,

    /// Stop rolling out (members keep what they have).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// One member cluster.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FleetMember {
    /// Unique name of the member in this fleet.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Secret in the fleet's namespace holding the member's kubeconfig.
    pub kubeconfig_secret_ref: KubeconfigSecretRef,
    /// A JSON merge patch over the template for this member (e.g. its sync path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub overrides: Option<serde_json::Value>,
    /// Accept a kubeconfig whose server is plain `http://` or that sets
    /// `insecure-skip-tls-verify` (a test cluster): the member's credentials then travel
    /// unprotected. Refused unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct KubeconfigSecretRef {
    pub name: String,
    /// Key of the kubeconfig in the Secret. Defaults to `value` (as Flux's `kubeConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A group of members changed together.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
pub struct FleetWave {
    pub name: String,
    /// Member names in this wave.
    pub members: Vec<String>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FluxFleetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// The fleet generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The template of the last rollout that reached every member: what a failed wave is
    /// rolled back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub last_rolled_out: Option<serde_json::Value>,
    /// Set when a wave failed at this generation: the rollout stays stopped until the spec
    /// changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<FleetMemberStatus>>,
}

/// What the hub knows of one member.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FleetMemberStatus {
    pub name: String,
    pub wave: String,
    /// Digest of the instance spec last applied to the member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// When it was applied (health timeouts count from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<Time>,
    /// The member instance's `lastAppliedRevision`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    pub ready: bool,
    /// Why the member is not ready or could not be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl FluxFleetSpec {
    /// Members by wave, in rollout order; members in no wave form a last wave `rest`.
    pub fn waves(&self) -> Vec<(String, Vec<String>)> {
        let mut waves: Vec<(String, Vec<String>)> = self
            .waves
            .iter()
            .flatten()
            .map(|w| {
                (
                    w.name.clone(),
                    w.members
                        .iter()
                        .filter(|m| self.members.iter().any(|x| &x.name == *m))
                        .cloned()
                        .collect(),
                )
            })
            .collect();
        let placed: Vec<String> = waves.iter().flat_map(|(_, m)| m.clone()).collect();
        let rest: Vec<String> = self
            .members
            .iter()
            .map(|m| m.name.clone())
            .filter(|m| !placed.contains(m))
            .collect();
        if !rest.is_empty() {
            waves.push(("rest".into(), rest));
        }
        waves.retain(|(_, members)| !members.is_empty());
        waves
    }

    pub fn member_overrides(&self) -> BTreeMap<String, serde_json::Value> {
        self.members
            .iter()
            .filter_map(|m| Some((m.name.clone(), m.overrides.clone()?)))
            .collect()
    }
}
