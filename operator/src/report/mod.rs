//! The `FluxReport`: what Flux is installed (whoever installed it), how its controllers and
//! reconcilers are doing, and the cluster sync. The aggregation rules are pure functions over
//! objects' JSON; [`collect`] gathers those objects with paginated lists.

pub mod collect;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::{
    FluxClusterInfo, FluxComponentStatus, FluxDistributionStatus, FluxOperatorInfo,
    FluxReconcilerStats, FluxReconcilerStatus, FluxReportSpec, FluxSyncStatus,
};

/// The CRD whose presence says Flux is installed.
pub const MARKER_CRD: &str = "gitrepositories.source.toolkit.fluxcd.io";

/// Everything a report is computed from.
#[derive(Debug, Default)]
pub struct Observed {
    /// The Flux CRDs (`*.fluxcd.io`, not ours), metadata only.
    pub crds: Vec<Value>,
    /// Flux controller Deployments of the operator's namespace.
    pub deployments: Vec<Value>,
    /// Per Flux kind (`apiVersion`, `kind`), the objects' metadata and status.
    pub reconcilers: Vec<(String, String, Vec<ObjectState>)>,
    /// The sync Kustomization and its source, when there is a sync.
    pub sync: Option<(Value, Option<Value>)>,
    pub server_version: String,
    pub server_platform: String,
    pub nodes: Option<i64>,
    /// Flux version by source-controller image tag, from the bundle's releases: how a Flux
    /// installed without version labels is recognised.
    pub versions_by_source_tag: BTreeMap<String, String>,
}

/// What a report keeps of one Flux object (a list of thousands must stay small).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectState {
    pub namespace: String,
    pub name: String,
    /// `True`, `False` or `Unknown` (no Ready condition yet).
    pub ready: String,
    pub ready_reason: String,
    pub suspended: bool,
    /// The applied or fetched revision.
    pub revision: String,
    /// `Kind/namespace/name` of the source, for appliers.
    pub source: String,
    /// Bytes of the stored artifact, for sources.
    pub artifact_size: Option<u64>,
}

impl ObjectState {
    pub fn of(object: &Value) -> Self {
        let ready = object["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let source = &object["spec"]["sourceRef"];
        let source = if source.is_object() {
            format!(
                "{}/{}/{}",
                source["kind"].as_str().unwrap_or_default(),
                source["namespace"].as_str().unwrap_or(&namespace),
                source["name"].as_str().unwrap_or_default()
            )
        } else {
            String::new()
        };
        let revision = object["status"]["lastAppliedRevision"]
            .as_str()
            .or_else(|| object["status"]["artifact"]["revision"].as_str())
            .or_else(|| object["status"]["lastAttemptedRevision"].as_str())
            .unwrap_or_default()
            .to_string();
        Self {
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            namespace,
            ready: ready
                .and_then(|c| c["status"].as_str())
                .unwrap_or("Unknown")
                .to_string(),
            ready_reason: ready
                .and_then(|c| c["reason"].as_str())
                .unwrap_or_default()
                .to_string(),
            suspended: is_suspended(object),
            revision,
            source,
            artifact_size: object["status"]["artifact"]["size"].as_u64(),
        }
    }
}

/// Running, failing and suspended counts of one kind, and the total artifact size of sources.
pub fn stats(objects: &[ObjectState]) -> FluxReconcilerStats {
    let suspended = objects.iter().filter(|o| o.suspended).count() as i64;
    let failing = objects
        .iter()
        .filter(|o| !o.suspended && o.ready == "False" && o.ready_reason != "DependencyNotReady")
        .count() as i64;
    let sizes: Vec<u64> = objects.iter().filter_map(|o| o.artifact_size).collect();
    FluxReconcilerStats {
        running: objects.len() as i64 - suspended,
        failing,
        suspended,
        total_size: (!sizes.is_empty()).then(|| human_size(sizes.iter().sum())),
    }
}

/// `1.2 MiB`-style sizes, as the incumbent reports them.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Who installed Flux, from the labels an installer leaves on the CRDs.
fn installer(labels: &Value) -> &'static str {
    let label = |key: &str| labels[key].as_str().unwrap_or_default();
    match label("app.kubernetes.io/managed-by") {
        "fluxop" => "fluxop",
        "flux-operator" => "flux-operator",
        "Helm" | "helm" => "helm",
        _ if !label("kustomize.toolkit.fluxcd.io/name").is_empty() => "flux bootstrap",
        _ => "flux install",
    }
}

/// Installed or not, which version, by whom: from the CRDs' labels, or from the
/// source-controller image when the CRDs carry no version.
pub fn distribution(observed: &Observed) -> FluxDistributionStatus {
    let Some(marker) = observed
        .crds
        .iter()
        .find(|c| c["metadata"]["name"] == MARKER_CRD)
    else {
        return FluxDistributionStatus {
            entitlement: "Unknown".into(),
            status: "Not Installed".into(),
            version: None,
            managed_by: None,
        };
    };
    let labels = &marker["metadata"]["labels"];
    let labelled = labels["app.kubernetes.io/version"]
        .as_str()
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    let from_image = || {
        let source = observed
            .deployments
            .iter()
            .find(|d| d["metadata"]["name"] == "source-controller")?;
        let image = source["spec"]["template"]["spec"]["containers"][0]["image"].as_str()?;
        let tag = image.split('@').next()?.rsplit_once(':')?.1;
        observed.versions_by_source_tag.get(tag).cloned()
    };
    FluxDistributionStatus {
        entitlement: "Unknown".into(),
        status: "Installed".into(),
        version: labelled.or_else(from_image),
        managed_by: Some(installer(labels).to_string()),
    }
}

/// Each Flux controller Deployment: ready when every replica is available.
pub fn components(deployments: &[Value]) -> Vec<FluxComponentStatus> {
    let mut components: Vec<FluxComponentStatus> = deployments
        .iter()
        .map(|d| {
            let health = crate::apply::health::evaluate(d);
            FluxComponentStatus {
                name: d["metadata"]["name"].as_str().unwrap_or_default().into(),
                ready: health.is_current(),
                status: match health {
                    crate::apply::Health::Current => "Current: Deployment is available".into(),
                    crate::apply::Health::InProgress(m) => format!("InProgress: {m}"),
                    crate::apply::Health::Failed(m) => format!("Failed: {m}"),
                },
                image: d["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
            }
        })
        .collect();
    components.sort_by(|a, b| a.name.cmp(&b.name));
    components
}

fn sync(kustomization: &Value, source: Option<&Value>) -> FluxSyncStatus {
    let state = ObjectState::of(kustomization);
    let message = kustomization["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or("not reconciled yet");
    FluxSyncStatus {
        id: format!("kustomization/{}", state.name),
        path: kustomization["spec"]["path"].as_str().map(str::to_string),
        ready: state.ready == "True",
        status: message.to_string(),
        source: source.and_then(|s| {
            s["spec"]["url"]
                .as_str()
                .or_else(|| s["spec"]["endpoint"].as_str())
                .map(str::to_string)
        }),
    }
}

/// The report's spec from what was observed.
pub fn spec(observed: &Observed) -> FluxReportSpec {
    let distribution = distribution(observed);
    let installed = distribution.status == "Installed";
    FluxReportSpec {
        distribution,
        cluster: Some(FluxClusterInfo {
            server_version: observed.server_version.clone(),
            platform: observed.server_platform.clone(),
            nodes: observed.nodes,
        }),
        operator: Some(FluxOperatorInfo {
            api_version: format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
            version: format!("v{}", env!("CARGO_PKG_VERSION")),
            platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
        }),
        components: installed.then(|| components(&observed.deployments)),
        reconcilers: installed.then(|| {
            observed
                .reconcilers
                .iter()
                .map(|(api_version, kind, objects)| FluxReconcilerStatus {
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    stats: Some(stats(objects)),
                })
                .collect()
        }),
        sync: observed
            .sync
            .as_ref()
            .map(|(kustomization, source)| sync(kustomization, source.as_ref())),
    }
}

/// The Ready message: stable while nothing changes, so an unchanged report is not rewritten.
pub fn summary(spec: &FluxReportSpec) -> String {
    let distribution = &spec.distribution;
    if distribution.status != "Installed" {
        return "Flux is not installed".into();
    }
    let components = spec.components.as_deref().unwrap_or_default();
    let ready = components.iter().filter(|c| c.ready).count();
    let failing: i64 = spec
        .reconcilers
        .iter()
        .flatten()
        .filter_map(|r| r.stats.as_ref())
        .map(|s| s.failing)
        .sum();
    format!(
        "Flux {} installed by {}: {ready} of {} controllers ready, {failing} reconcilers failing",
        distribution
            .version
            .as_deref()
            .unwrap_or("(unknown version)"),
        distribution.managed_by.as_deref().unwrap_or("unknown"),
        components.len()
    )
}

/// Is a Flux object suspended: Flux's `spec.suspend`, or for the operator's kinds
/// (ResourceSets and their providers) `fluxcd.controlplane.io/reconcile: disabled`.
pub fn is_suspended(object: &serde_json::Value) -> bool {
    object["spec"]["suspend"] == true
        || object["metadata"]["annotations"][crate::api::constants::annotation::RECONCILE]
            .as_str()
            .is_some_and(|v| {
                v.eq_ignore_ascii_case(crate::api::constants::annotation::DISABLED_VALUE)
            })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(ready: Option<(&str, &str)>, suspended: bool, size: Option<u64>) -> ObjectState {
        let conditions = ready
            .map(
                |(status, reason)| json!([{ "type": "Ready", "status": status, "reason": reason }]),
            )
            .unwrap_or(json!([]));
        ObjectState::of(&json!({
            "metadata": { "name": "a", "namespace": "n" },
            "spec": { "suspend": suspended, "sourceRef": { "kind": "GitRepository", "name": "repo" } },
            "status": { "conditions": conditions, "artifact": { "size": size, "revision": "main@sha1:abc" } }
        }))
    }

    #[test]
    fn stats_count_running_failing_and_suspended_as_the_incumbent_does() {
        let objects = [
            object(Some(("True", "Succeeded")), false, Some(1024)),
            object(Some(("False", "BuildFailed")), false, Some(2048)),
            object(Some(("False", "DependencyNotReady")), false, None),
            object(Some(("False", "BuildFailed")), true, None),
            object(None, false, None),
        ];
        assert_eq!(
            stats(&objects),
            FluxReconcilerStats {
                running: 4,
                failing: 1,
                suspended: 1,
                total_size: Some("3.0 KiB".into()),
            }
        );
        assert_eq!(objects[0].source, "GitRepository/n/repo");
        assert_eq!(objects[0].revision, "main@sha1:abc");
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn the_distribution_comes_from_crd_labels_or_the_source_controller_image() {
        let crd = |labels: Value| json!({ "metadata": { "name": MARKER_CRD, "labels": labels } });
        let mut observed = Observed::default();
        assert_eq!(distribution(&observed).status, "Not Installed");

        observed.crds = vec![crd(json!({
            "app.kubernetes.io/managed-by": "fluxop", "app.kubernetes.io/version": "v2.9.4"
        }))];
        let ours = distribution(&observed);
        assert_eq!(
            (ours.status.as_str(), ours.version.as_deref()),
            ("Installed", Some("v2.9.4"))
        );
        assert_eq!(ours.managed_by.as_deref(), Some("fluxop"));

        // A plain `kubectl apply` of the release: no version label, so the image tells.
        observed.crds = vec![crd(json!({ "app.kubernetes.io/part-of": "flux" }))];
        observed.deployments = vec![json!({
            "metadata": { "name": "source-controller" },
            "spec": { "template": { "spec": { "containers": [{ "image": "ghcr.io/fluxcd/source-controller:v1.8.5" }] } } }
        })];
        observed.versions_by_source_tag = BTreeMap::from([("v1.8.5".into(), "v2.8.8".into())]);
        let plain = distribution(&observed);
        assert_eq!(plain.version.as_deref(), Some("v2.8.8"));
        assert_eq!(plain.managed_by.as_deref(), Some("flux install"));

        observed.crds = vec![crd(
            json!({ "kustomize.toolkit.fluxcd.io/name": "flux-system" }),
        )];
        assert_eq!(
            distribution(&observed).managed_by.as_deref(),
            Some("flux bootstrap")
        );
    }
}
