//! Gathering what a report is computed from. Every list is paginated, and of the Flux objects
//! only a small [`ObjectState`] is kept per object, so memory stays flat with tens of
//! thousands of objects.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Node},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams},
};
use serde_json::Value;

use super::{ObjectState, Observed};
use crate::bundle::layout::Bundle;

/// Flux version by the source-controller tag each release of `bundle` ships.
pub fn versions_by_source_tag(bundle: &Bundle) -> BTreeMap<String, String> {
    let mut versions = BTreeMap::new();
    for version in bundle.versions() {
        let manifests = bundle.manifests(&version);
        let Some(text) = manifests.get("source-controller") else {
            continue;
        };
        let tag = text.lines().find_map(|line| {
            let image = line.trim().strip_prefix("image:")?.trim();
            let (_, tag) = image.split('@').next()?.rsplit_once("source-controller:")?;
            Some(tag.to_string())
        });
        if let Some(tag) = tag {
            versions.insert(tag, format!("v{version}"));
        }
    }
    versions
}

/// [`versions_by_source_tag`] of the bundle embedded in fluxop, computed once.
pub fn embedded_versions() -> BTreeMap<String, String> {
    static VERSIONS: std::sync::OnceLock<BTreeMap<String, String>> = std::sync::OnceLock::new();
    VERSIONS
        .get_or_init(|| match crate::bundle::embedded::bundle() {
            Some(Ok((_, bundle))) => versions_by_source_tag(bundle),
            _ => BTreeMap::new(),
        })
        .clone()
}

/// Every page of a list, item by item, keeping only what `keep` returns.
async fn list_all<K, T>(
    api: &Api<K>,
    params: ListParams,
    mut keep: impl FnMut(K) -> Option<T>,
) -> Result<Vec<T>, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut params = params.limit(crate::policy::kube::LIST_PAGE);
    let mut kept = Vec::new();
    loop {
        let page = api.list(&params).await?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        kept.extend(page.items.into_iter().filter_map(&mut keep));
        match next {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(kept),
        }
    }
}

/// Observes the cluster for a report of `namespace`; `sync` names the sync Kustomization.
pub async fn observe(
    client: &Client,
    namespace: &str,
    sync: Option<&str>,
    versions_by_source_tag: BTreeMap<String, String>,
) -> Result<Observed, kube::Error> {
    let version = client.apiserver_version().await?;
    let crds: Vec<CustomResourceDefinition> = list_all(
        &Api::<CustomResourceDefinition>::all(client.clone()),
        ListParams::default(),
        |crd: CustomResourceDefinition| {
            // Flux's kinds, and the ResourceSets and providers of fluxop's own group (the
            // incumbent reports them too).
            let group = crd.spec.group.as_str();
            let reported = crate::api::constants::FLUX_API_GROUPS.contains(&group)
                || (group == crate::api::GROUP
                    && matches!(
                        crd.spec.names.kind.as_str(),
                        "ResourceSet" | "ResourceSetInputProvider"
                    ));
            reported.then_some(crd)
        },
    )
    .await?;
    let deployments = list_all(
        &Api::<Deployment>::namespaced(client.clone(), namespace),
        ListParams::default().labels("app.kubernetes.io/part-of=flux"),
        |d: Deployment| serde_json::to_value(d).ok(),
    )
    .await?;
    let nodes = list_all(
        &Api::<Node>::all(client.clone()),
        ListParams::default(),
        |_: Node| Some(()),
    )
    .await?
    .len() as i64;

    let mut reconcilers = Vec::new();
    let mut kinds: Vec<(String, String, String)> = crds
        .iter()
        .filter_map(|crd| {
            let storage = crd.spec.versions.iter().find(|v| v.storage)?;
            Some((
                crd.spec.group.clone(),
                storage.name.clone(),
                crd.spec.names.kind.clone(),
            ))
        })
        .collect();
    kinds.sort();
    for (group, version, kind) in &kinds {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        let states = list_all(&api, ListParams::default(), |object: DynamicObject| {
            serde_json::to_value(object)
                .ok()
                .map(|v| ObjectState::of(&v))
        })
        .await?;
        reconcilers.push((format!("{group}/{version}"), kind.clone(), states));
    }

    let sync = match sync {
        None => None,
        Some(name) => sync_objects(client, namespace, name, &kinds).await?,
    };
    Ok(Observed {
        crds: crds
            .into_iter()
            .map(|crd| serde_json::json!({ "metadata": crd.metadata }))
            .collect(),
        deployments,
        reconcilers,
        sync,
        server_version: version.git_version,
        server_platform: version.platform,
        nodes: Some(nodes),
        versions_by_source_tag,
    })
}

/// The sync Kustomization `name` and the source it points at, if they exist.
async fn sync_objects(
    client: &Client,
    namespace: &str,
    name: &str,
    kinds: &[(String, String, String)],
) -> Result<Option<(Value, Option<Value>)>, kube::Error> {
    let api_of = |kind: &str| {
        kinds.iter().find(|(_, _, k)| k == kind).map(|(g, v, k)| {
            let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(g, v, k));
            Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
        })
    };
    let Some(kustomizations) = api_of("Kustomization") else {
        return Ok(None);
    };
    let Some(kustomization) = kustomizations.get_opt(name).await? else {
        return Ok(None);
    };
    let kustomization = serde_json::to_value(kustomization).unwrap_or_default();
    let reference = &kustomization["spec"]["sourceRef"];
    let source = match (
        reference["kind"].as_str().and_then(api_of),
        reference["name"].as_str(),
    ) {
        (Some(api), Some(source)) => api
            .get_opt(source)
            .await?
            .and_then(|s| serde_json::to_value(s).ok()),
        _ => None,
    };
    Ok(Some((kustomization, source)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_release_is_known_by_its_source_controller_tag() {
        let versions = versions_by_source_tag(&crate::testing::vendored_bundle());
        assert_eq!(versions.get("v1.9.4").map(String::as_str), Some("v2.9.4"));
        assert_eq!(versions.get("v1.6.2").map(String::as_str), Some("v2.6.4"));
        assert_eq!(versions.len(), 4);
    }
}
