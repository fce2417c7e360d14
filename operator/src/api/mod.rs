//! The `fluxcd.controlplane.io/v1` API: `FluxInstance`, `FluxReport`, `ResourceSet` and
//! `ResourceSetInputProvider`, field-for-field
//! compatible with the Flux Operator v1 API (see `shared/api-reference.md`), plus fluxop's
//! additive fields. This module depends on nothing else of ours.

pub mod cel;
pub mod constants;
pub mod crds;
pub mod duration;
pub mod fleet;
pub mod instance;
pub mod report;
pub mod resourceset;
pub mod validate;

pub use instance::{
    Cluster, ClusterType, CommonMetadata, Component, ComponentImage, Distribution, FluxInstance,
    FluxInstanceSpec, FluxInstanceStatus, Kustomize, LocalSecretRef, Patch, PatchSelector,
    ResourceInventory, ResourceRef, RollbackHold, Sharding, ShardingStorage, Size, Snapshot,
    Storage, Sync, SyncKind, SyncProvider, Variant, Verify, VerifyProvider,
};
pub use report::{
    FluxClusterInfo, FluxComponentStatus, FluxDistributionStatus, FluxOperatorInfo,
    FluxReconcilerStats, FluxReconcilerStatus, FluxReport, FluxReportSpec, FluxReportStatus,
    FluxSyncStatus,
};
pub use resourceset::{
    Dependency, ExternalArtifactSelector, InputProviderApiVersion, InputProviderKind,
    InputProviderReference, InputProviderType, InputStrategy, InputStrategyName, NextSchedule,
    ResourceSet, ResourceSetInput, ResourceSetInputFilter, ResourceSetInputProvider,
    ResourceSetInputProviderSpec, ResourceSetInputProviderStatus, ResourceSetInputSkip,
    ResourceSetSpec, ResourceSetStatus, ResourceSetStep, Schedule,
};

/// API group of every fluxop kind.
pub const GROUP: &str = "fluxcd.controlplane.io";
/// API version served and stored.
pub const VERSION: &str = "v1";
/// The only accepted name of a `FluxInstance` and of a `FluxReport`.
pub const SINGLETON_NAME: &str = "flux";
/// Namespace the operator runs in when `RUNTIME_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "flux-system";

/// Schema of an object the API server keeps as it is, unvalidated (a FluxInstance spec kept
/// for later, or part of one): fluxop checks it when it reads it.
pub(crate) fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

#[cfg(test)]
mod roundtrip_tests;
