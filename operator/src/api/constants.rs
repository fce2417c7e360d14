//! Condition types, reasons, annotation keys and label keys: the one place for each string
//! that users, Flux tooling or the incumbent operator also read.

/// `status.conditions[].type`, the kstatus set.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
    /// Abnormal-true, as in Flux's sources: present while the registry cannot be reached
    /// and the last verified bundle is served from the cache.
    pub const FETCH_FAILED: &str = "FetchFailed";
    /// fluxop, abnormal-true: a CRD left the rendered set but still has objects, so it is
    /// kept (and pruned once they are gone).
    pub const PRUNE_BLOCKED: &str = "PruneBlocked";
}

/// `status.conditions[].reason`.
pub mod reason {
    pub const PROGRESSING: &str = "Progressing";
    /// Reconciling again after a failure (ResourceSets, as the incumbent reports them).
    pub const PROGRESSING_WITH_RETRY: &str = "ProgressingWithRetry";
    pub const ARTIFACT_FAILED: &str = "ArtifactFailed";
    /// Terminal: the spec cannot be rendered; comes with `Stalled`.
    pub const BUILD_FAILED: &str = "BuildFailed";
    pub const RECONCILIATION_FAILED: &str = "ReconciliationFailed";
    pub const RECONCILIATION_SUCCEEDED: &str = "ReconciliationSucceeded";
    pub const HEALTH_CHECK_CANCELED: &str = "HealthCheckCanceled";
    pub const RECONCILIATION_DISABLED: &str = "ReconciliationDisabled";
    /// fluxop: the bundle's signature did not verify.
    pub const VERIFICATION_FAILED: &str = "VerificationFailed";
    /// fluxop: a new version did not become healthy and the previous one was restored; with
    /// `Stalled` until the spec, the artifact or a reconcile request changes.
    pub const ROLLED_BACK: &str = "RolledBack";
    /// fluxop hub: a FluxFleet member's kubeconfig uses an exec plugin, an auth provider, a
    /// file reference or a proxy; only inline credentials are accepted.
    pub const KUBECONFIG_REFUSED: &str = "KubeconfigRefused";
    /// fluxop: the operator's trust policy refuses the artifact or an image (terminal until
    /// the spec or the operator's flags change).
    pub const POLICY_VIOLATION: &str = "PolicyViolation";
    /// fluxop: with [`super::condition::PRUNE_BLOCKED`].
    pub const CRD_IN_USE: &str = "CustomResourceDefinitionInUse";
}

/// Annotation keys users put on a `FluxInstance`, a `FluxReport` or a rendered object.
pub mod annotation {
    /// `disabled` pauses reconciliation.
    pub const RECONCILE: &str = "fluxcd.controlplane.io/reconcile";
    pub const RECONCILE_EVERY: &str = "fluxcd.controlplane.io/reconcileEvery";
    pub const RECONCILE_ARTIFACT_EVERY: &str = "fluxcd.controlplane.io/reconcileArtifactEvery";
    pub const RECONCILE_TIMEOUT: &str = "fluxcd.controlplane.io/reconcileTimeout";
    /// `disabled` on an object keeps it out of garbage collection.
    pub const PRUNE: &str = "fluxcd.controlplane.io/prune";
    /// Value of [`RECONCILE`] and [`PRUNE`] that turns the behaviour off.
    pub const DISABLED_VALUE: &str = "disabled";
    /// Flux's on-demand reconcile request, as everywhere in Flux.
    pub const REQUESTED_AT: &str = "reconcile.fluxcd.io/requestedAt";
    /// Flux's forced reconcile request.
    pub const FORCE_AT: &str = "reconcile.fluxcd.io/forceAt";
    /// kustomize-controller's apply policy of an object; [`KUSTOMIZE_SSA_IGNORE`] on an
    /// in-cluster object makes every Kustomization skip it, for apply and for prune.
    pub const KUSTOMIZE_SSA: &str = "kustomize.toolkit.fluxcd.io/ssa";
    pub const KUSTOMIZE_SSA_IGNORE: &str = "Ignore";
    /// kustomize-controller's prune opt-out ([`DISABLED_VALUE`]; Flux compares it ignoring
    /// case).
    pub const KUSTOMIZE_PRUNE: &str = "kustomize.toolkit.fluxcd.io/prune";
    /// The [`KUSTOMIZE_PRUNE`] value on rendered objects, spelled as the incumbent spells it,
    /// so adopting its objects changes nothing.
    pub const KUSTOMIZE_PRUNE_DISABLED: &str = "Disabled";
}

/// Label keys on the objects fluxop renders.
pub mod label {
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    pub const VERSION: &str = "app.kubernetes.io/version";
    /// Owner labels: which `FluxInstance` an object belongs to (used for prune).
    pub const OWNER_NAME: &str = "fluxcd.controlplane.io/name";
    pub const OWNER_NAMESPACE: &str = "fluxcd.controlplane.io/namespace";
}

/// Finalizer on a `FluxInstance`: deleting it uninstalls Flux first.
pub const FINALIZER: &str = "fluxcd.controlplane.io/finalizer";

/// Field manager of every server-side apply fluxop makes.
pub const FIELD_MANAGER: &str = "fluxop";
/// Value of [`label::MANAGED_BY`] on what fluxop renders.
pub const MANAGED_BY_VALUE: &str = "fluxop";

/// The API groups of the Flux distribution's custom resources: what the report counts. Other
/// `*.fluxcd.io` groups (Flux v1's `helm.fluxcd.io`, add-ons like `infra.contrib.fluxcd.io`)
/// are not Flux's to report, nor in the operator's RBAC.
pub const FLUX_API_GROUPS: [&str; 6] = [
    "source.toolkit.fluxcd.io",
    "source.extensions.fluxcd.io",
    "kustomize.toolkit.fluxcd.io",
    "helm.toolkit.fluxcd.io",
    "notification.toolkit.fluxcd.io",
    "image.toolkit.fluxcd.io",
];
