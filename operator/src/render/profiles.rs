//! Profiles applied to the rendered controllers: the cluster type, the size, and workload
//! identity. Every controller's pods may be evicted by the cluster autoscaler, sized or not
//! (the incumbent's default profile does the same). Each edits container args by flag name
//! and merges feature gates, so they keep working when a release reorders or adds flags.
//!
//! Cluster types: `openshift` drops the fixed pod security settings (OpenShift assigns user
//! and seccomp profiles through its security context constraints) and the namespace's
//! pod-security labels. `aws`, `azure` and `gcp` change nothing in the objects, as with the
//! incumbent: cloud identity is opt-in through `objectLevelWorkloadIdentity` and service
//! account annotations in `kustomize.patches`.

use semver::Version;
use serde_json::{Value, json};

use super::{Error, args};
use crate::api::{Cluster, ClusterType, Component, Size};

/// One size profile: what each controller gets.
struct SizeProfile {
    /// Resources of source, kustomize and helm controllers (all controllers for `small`).
    resources: (&'static str, &'static str, &'static str, &'static str),
    /// `--concurrent` and `--requeue-dependency` of kustomize and helm controllers.
    appliers: (&'static str, &'static str),
    /// `--concurrent` of source-controller, when the profile sets it.
    source_concurrent: Option<&'static str>,
    /// `--helm-cache-max-size` of source-controller.
    helm_cache: &'static str,
    /// Resources of kustomize and helm controllers when they differ from source's (`large`).
    appliers_resources: Option<(&'static str, &'static str, &'static str, &'static str)>,
}

fn size_profile(size: Size) -> SizeProfile {
    match size {
        Size::Small => SizeProfile {
            resources: ("100m", "64Mi", "1000m", "512Mi"),
            appliers: ("5", "10s"),
            source_concurrent: None,
            helm_cache: "10",
            appliers_resources: None,
        },
        Size::Medium => SizeProfile {
            resources: ("100m", "128Mi", "2000m", "1Gi"),
            appliers: ("10", "5s"),
            source_concurrent: Some("5"),
            helm_cache: "50",
            appliers_resources: None,
        },
        Size::Large => SizeProfile {
            resources: ("100m", "256Mi", "2000m", "2Gi"),
            appliers: ("20", "5s"),
            source_concurrent: Some("10"),
            helm_cache: "100",
            appliers_resources: Some(("100m", "256Mi", "3000m", "3Gi")),
        },
    }
}

fn size_name(size: Size) -> &'static str {
    match size {
        Size::Small => "small",
        Size::Medium => "medium",
        Size::Large => "large",
    }
}

fn resources(
    (cpu_request, memory_request, cpu_limit, memory_limit): (&str, &str, &str, &str),
) -> Value {
    json!({
        "requests": { "cpu": cpu_request, "memory": memory_request },
        "limits": { "cpu": cpu_limit, "memory": memory_limit },
    })
}

/// The args of the container named `manager` (Flux's), else the first.
fn manager(pod: &mut Value) -> Option<&mut Value> {
    let containers = pod["containers"].as_array_mut()?;
    let index = containers
        .iter()
        .position(|c| c["name"] == "manager")
        .unwrap_or(0);
    containers.get_mut(index)
}

/// The cluster autoscaler's pod annotation that allows evicting a pod to scale a node down.
const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";

/// Controllers that understand object-level workload identity.
const IDENTITY_AWARE: [&str; 5] = [
    "source-controller",
    "kustomize-controller",
    "notification-controller",
    "image-reflector-controller",
    "image-automation-controller",
];

/// Checks the version gates of the cluster settings.
pub fn check_gates(cluster: &Cluster, version: &Version) -> Result<(), Error> {
    if cluster.object_level_workload_identity.unwrap_or(false) && *version < Version::new(2, 6, 0) {
        return Err(Error::FeatureUnsupported {
            feature: "objectLevelWorkloadIdentity",
            needs: "2.6.0",
            version: version.clone(),
        });
    }
    if cluster.multitenant_workload_identity.unwrap_or(false) && *version < Version::new(2, 7, 0) {
        return Err(Error::FeatureUnsupported {
            feature: "multitenantWorkloadIdentity",
            needs: "2.7.0",
            version: version.clone(),
        });
    }
    Ok(())
}

/// Whether `controller` of `version` understands object-level workload identity
/// (helm-controller from Flux 2.7).
fn identity_aware(controller: &str, version: &Version) -> bool {
    IDENTITY_AWARE.contains(&controller)
        || (controller == "helm-controller" && *version >= Version::new(2, 7, 0))
}

/// Is `rule` the release's grant to create service account tokens (for object-level
/// workload identity only)?
fn creates_service_account_tokens(rule: &Value) -> bool {
    let one = |field: &str, value: &str| {
        rule[field]
            .as_array()
            .is_some_and(|items| items.len() == 1 && items[0] == value)
    };
    one("apiGroups", "") && one("resources", "serviceaccounts/token") && one("verbs", "create")
}

/// Applies the profiles to every Deployment, the Namespace and crd-controller's ClusterRole
/// of `objects`.
pub fn apply(objects: &mut [Value], cluster: &Cluster, version: &Version) {
    let tenant = |value: &Option<String>| {
        value
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into())
    };
    for object in objects.iter_mut() {
        match object["kind"].as_str() {
            Some("Namespace") if cluster.cluster_type() == ClusterType::Openshift => {
                if let Some(labels) = object["metadata"]["labels"].as_object_mut() {
                    labels.remove("pod-security.kubernetes.io/warn");
                    labels.remove("pod-security.kubernetes.io/warn-version");
                }
            }
            // Least privilege: without object-level workload identity nothing needs the
            // controllers to mint service account tokens (the incumbent drops it too).
            Some("ClusterRole")
                if !cluster.object_level_workload_identity.unwrap_or(false)
                    && object["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("crd-controller")) =>
            {
                if let Some(rules) = object["rules"].as_array_mut() {
                    rules.retain(|rule| !creates_service_account_tokens(rule));
                }
            }
            Some("Deployment") => {
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let is = |c: Component| name == c.name();
                // The controllers keep no state a restart loses, so the cluster autoscaler may
                // evict them to scale a node down, whatever the size (the incumbent's default).
                object["spec"]["template"]["metadata"]["annotations"][SAFE_TO_EVICT] =
                    json!("true");
                // Flux 2.6's pod templates lack it; later releases carry it (so do the
                // incumbent's pods, whatever the release).
                object["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/part-of"] =
                    json!("flux");
                let applier = is(Component::KustomizeController) || is(Component::HelmController);
                if let Some(size) = cluster.size {
                    let profile = size_profile(size);
                    object["metadata"]["annotations"]["fluxcd.controlplane.io/profile"] =
                        json!(size_name(size));
                    let sized = size == Size::Small || applier || is(Component::SourceController);
                    if let Some(container) = manager(&mut object["spec"]["template"]["spec"]) {
                        if sized {
                            let chosen = if applier {
                                profile.appliers_resources.unwrap_or(profile.resources)
                            } else {
                                profile.resources
                            };
                            container["resources"] = resources(chosen);
                        }
                        args::edit_container(container, |list| {
                            if applier {
                                args::set(list, "--concurrent", profile.appliers.0);
                                args::set(list, "--requeue-dependency", profile.appliers.1);
                            }
                            if is(Component::SourceController) {
                                args::set(list, "--helm-cache-max-size", profile.helm_cache);
                                args::set(list, "--helm-cache-ttl", "720m");
                                args::set(list, "--helm-cache-purge-interval", "60m");
                                if let Some(concurrent) = profile.source_concurrent {
                                    args::set(list, "--concurrent", concurrent);
                                }
                            }
                        });
                    }
                }
                let pod = &mut object["spec"]["template"]["spec"];
                if cluster.cluster_type() == ClusterType::Openshift {
                    if let Some(spec) = pod.as_object_mut() {
                        spec.remove("securityContext");
                    }
                    for container in pod["containers"].as_array_mut().into_iter().flatten() {
                        if let Some(context) = container["securityContext"].as_object_mut() {
                            context.remove("seccompProfile");
                            context.remove("runAsNonRoot");
                        }
                    }
                }
                let Some(container) = manager(pod) else {
                    continue;
                };
                if cluster.object_level_workload_identity.unwrap_or(false)
                    && identity_aware(&name, version)
                {
                    args::edit_container(container, |list| {
                        args::set_feature_gate(list, "ObjectLevelWorkloadIdentity", true)
                    });
                }
                if cluster.multitenant_workload_identity.unwrap_or(false) {
                    args::edit_container(container, |list| match name.as_str() {
                        "source-controller"
                        | "notification-controller"
                        | "image-reflector-controller"
                        | "image-automation-controller" => {
                            args::set(
                                list,
                                "--default-service-account",
                                &tenant(&cluster.tenant_default_service_account),
                            );
                        }
                        "kustomize-controller" => {
                            args::set(
                                list,
                                "--default-decryption-service-account",
                                &tenant(&cluster.tenant_default_decryption_service_account),
                            );
                            args::set(
                                list,
                                "--default-kubeconfig-service-account",
                                &tenant(&cluster.tenant_default_kube_config_service_account),
                            );
                        }
                        "helm-controller" => args::set(
                            list,
                            "--default-kubeconfig-service-account",
                            &tenant(&cluster.tenant_default_kube_config_service_account),
                        ),
                        _ => {}
                    });
                }
            }
            _ => {}
        }
    }
}
