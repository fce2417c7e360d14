//! Drift watches: a tick whenever an object fluxop installed is changed or deleted by
//! someone else, so the instance converges in seconds rather than at its next periodic
//! reconcile. Every kind a Flux release installs is watched, metadata only, narrowed to
//! fluxop's owner label; each tick also moves the context's drift epoch, which makes a
//! health wait in progress read its objects again (and give way to a new apply).

use std::{
    collections::HashMap,
    fmt::Debug,
    hash::{Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::{Stream, StreamExt, stream::BoxStream};
use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{Namespace, ResourceQuota, Service, ServiceAccount},
        networking::v1::NetworkPolicy,
        rbac::v1::{ClusterRole, ClusterRoleBinding},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client, Resource,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, watcher},
};
use serde::de::DeserializeOwned;

use crate::api::constants::label;

/// How a change someone made is told apart from the writes that happen all the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Changed {
    /// The spec generation moved: kinds whose status the cluster keeps updating
    /// (Deployments, CRDs, NetworkPolicies).
    Generation,
    /// Any write: kinds nobody else writes to (no status, or one that rarely changes).
    AnyWrite,
    /// Labels or annotations only: a ResourceQuota's status follows every pod, and it has no
    /// generation; a change to its spec waits for the periodic reconcile.
    Metadata,
}

/// What of an object's metadata counts as its state under `changed`.
pub fn fingerprint(metadata: &ObjectMeta, changed: Changed) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match changed {
        Changed::Generation => metadata.generation.hash(&mut hasher),
        Changed::AnyWrite => metadata.resource_version.hash(&mut hasher),
        Changed::Metadata => {
            metadata.labels.hash(&mut hasher);
            metadata.annotations.hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// One watch event, reduced to what drift needs: the object's key and fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A (re)list begins.
    Init,
    Listed(String, u64),
    /// The (re)list is complete.
    InitDone,
    Applied(String, u64),
    Deleted(String),
}

/// Follows one kind's watch and says which events are drift. The first listing is the
/// baseline. After a relist (a watch that expired or broke), objects gone or changed since
/// the last view are drift too: nothing else reports what happened while disconnected.
#[derive(Debug, Default)]
pub struct Tracker {
    seen: HashMap<String, u64>,
    relisting: Option<HashMap<String, u64>>,
    listed_once: bool,
}

impl Tracker {
    /// The objects (keys) this event shows drifted, if any.
    pub fn observe(&mut self, event: Seen) -> Vec<String> {
        match event {
            Seen::Init => {
                self.relisting = Some(HashMap::new());
                Vec::new()
            }
            Seen::Listed(key, print) => {
                self.relisting
                    .get_or_insert_with(HashMap::new)
                    .insert(key, print);
                Vec::new()
            }
            Seen::InitDone => {
                let listed = self.relisting.take().unwrap_or_default();
                let mut drifted: Vec<String> = if self.listed_once {
                    self.seen
                        .iter()
                        .filter(|(key, print)| listed.get(*key) != Some(print))
                        .map(|(key, _)| key.clone())
                        .collect()
                } else {
                    Vec::new()
                };
                drifted.sort();
                self.seen = listed;
                self.listed_once = true;
                drifted
            }
            // An object that appears is no drift (fluxop creating it, or someone creating an
            // object it has not rendered); one whose state moved is.
            Seen::Applied(key, print) => match self.seen.insert(key.clone(), print) {
                Some(before) if before != print => vec![key],
                _ => Vec::new(),
            },
            Seen::Deleted(key) => {
                self.seen.remove(&key);
                vec![key]
            }
        }
    }
}

/// A tick (naming what drifted) for every change someone makes to an object fluxop
/// installed in `namespace`; each tick moves `epoch` first.
pub fn ticks(
    client: &Client,
    namespace: &str,
    epoch: Arc<AtomicU64>,
) -> impl Stream<Item = ()> + Send + 'static {
    let owned =
        watcher::Config::default().labels(&format!("{}={}", label::OWNER_NAMESPACE, namespace));
    // The namespace itself by name: fluxop's RBAC grants it that one Namespace only.
    let own_namespace = owned.clone().fields(&format!("metadata.name={namespace}"));
    let all = || client.clone();
    let watches: Vec<BoxStream<'static, String>> = vec![
        watch(
            Api::<PartialObjectMeta<CustomResourceDefinition>>::all(all()),
            &owned,
            Changed::Generation,
        ),
        watch(
            Api::<PartialObjectMeta<Namespace>>::all(all()),
            &own_namespace,
            Changed::AnyWrite,
        ),
        watch(
            Api::<PartialObjectMeta<ClusterRole>>::all(all()),
            &owned,
            Changed::AnyWrite,
        ),
        watch(
            Api::<PartialObjectMeta<ClusterRoleBinding>>::all(all()),
            &owned,
            Changed::AnyWrite,
        ),
        watch(
            Api::<PartialObjectMeta<Deployment>>::namespaced(all(), namespace),
            &owned,
            Changed::Generation,
        ),
        watch(
            Api::<PartialObjectMeta<Service>>::namespaced(all(), namespace),
            &owned,
            Changed::AnyWrite,
        ),
        watch(
            Api::<PartialObjectMeta<ServiceAccount>>::namespaced(all(), namespace),
            &owned,
            Changed::AnyWrite,
        ),
        watch(
            Api::<PartialObjectMeta<NetworkPolicy>>::namespaced(all(), namespace),
            &owned,
            Changed::Generation,
        ),
        watch(
            Api::<PartialObjectMeta<ResourceQuota>>::namespaced(all(), namespace),
            &owned,
            Changed::Metadata,
        ),
    ];
    futures::stream::select_all(watches).map(move |what| {
        epoch.fetch_add(1, Ordering::Relaxed);
        tracing::info!(object = %what, "an object fluxop installed was changed or deleted: reconciling");
    })
}

/// The drift of one kind: a metadata-only watch, with backoff between failed attempts (a
/// 403 or an outage would otherwise spin) and the first failure of a streak at warn.
fn watch<K>(
    api: Api<PartialObjectMeta<K>>,
    config: &watcher::Config,
    changed: Changed,
) -> BoxStream<'static, String>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let kind = K::kind(&()).to_string();
    let mut tracker = Tracker::default();
    let mut failing = false;
    let key = |metadata: &ObjectMeta| {
        match metadata.namespace.as_deref() {
            Some(namespace) => format!("{namespace}/"),
            None => String::new(),
        }
        .to_string()
            + metadata.name.as_deref().unwrap_or_default()
    };
    watcher(api, config.clone())
        .default_backoff()
        .flat_map(move |event| {
            let seen = match event {
                Ok(watcher::Event::Init) => Some(Seen::Init),
                Ok(watcher::Event::InitApply(o)) => Some(Seen::Listed(
                    key(&o.metadata),
                    fingerprint(&o.metadata, changed),
                )),
                Ok(watcher::Event::InitDone) => Some(Seen::InitDone),
                Ok(watcher::Event::Apply(o)) => Some(Seen::Applied(
                    key(&o.metadata),
                    fingerprint(&o.metadata, changed),
                )),
                Ok(watcher::Event::Delete(o)) => Some(Seen::Deleted(key(&o.metadata))),
                Err(error) => {
                    if failing {
                        tracing::debug!(%error, %kind, "watching for drift");
                    } else {
                        tracing::warn!(%error, %kind, "watching for drift failed; retrying with backoff");
                    }
                    failing = true;
                    None
                }
            };
            if seen.is_some() {
                failing = false;
            }
            let drifted = seen.map(|s| tracker.observe(s)).unwrap_or_default();
            let kind = kind.clone();
            futures::stream::iter(drifted.into_iter().map(move |key| format!("{kind}/{key}")))
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(generation: i64, resource_version: &str) -> ObjectMeta {
        ObjectMeta {
            generation: Some(generation),
            resource_version: Some(resource_version.into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn status_writes_are_no_drift_where_the_generation_tells_spec_from_status() {
        let before = metadata(1, "10");
        let status_written = metadata(1, "11");
        let scaled = metadata(2, "12");
        assert_eq!(
            fingerprint(&before, Changed::Generation),
            fingerprint(&status_written, Changed::Generation)
        );
        assert_ne!(
            fingerprint(&before, Changed::Generation),
            fingerprint(&scaled, Changed::Generation)
        );
        assert_ne!(
            fingerprint(&before, Changed::AnyWrite),
            fingerprint(&status_written, Changed::AnyWrite)
        );
        assert_eq!(
            fingerprint(&before, Changed::Metadata),
            fingerprint(&status_written, Changed::Metadata)
        );
    }

    #[test]
    fn the_first_listing_and_creations_are_no_drift_changes_and_deletions_are() {
        let mut tracker = Tracker::default();
        for event in [
            Seen::Init,
            Seen::Listed("a".into(), 1),
            Seen::Listed("b".into(), 1),
            Seen::InitDone,
            Seen::Applied("c".into(), 1),
            Seen::Applied("a".into(), 1),
        ] {
            assert!(tracker.observe(event).is_empty());
        }
        assert_eq!(tracker.observe(Seen::Applied("a".into(), 2)), ["a"]);
        assert_eq!(tracker.observe(Seen::Deleted("b".into())), ["b"]);
    }

    #[test]
    fn a_relist_reports_what_changed_or_vanished_while_disconnected() {
        let mut tracker = Tracker::default();
        for event in [
            Seen::Init,
            Seen::Listed("a".into(), 1),
            Seen::Listed("b".into(), 1),
            Seen::Listed("c".into(), 1),
            Seen::InitDone,
            Seen::Init,
            Seen::Listed("a".into(), 1),
            Seen::Listed("b".into(), 2),
        ] {
            assert!(tracker.observe(event).is_empty());
        }
        assert_eq!(tracker.observe(Seen::InitDone), ["b", "c"]);
        assert!(tracker.observe(Seen::Applied("c".into(), 1)).is_empty());
    }
}
