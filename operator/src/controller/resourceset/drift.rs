//! Drift of what ResourceSets applied: a metadata-only watch per kind found in their
//! inventories, narrowed to the ResourceSet owner label, wakes the owning ResourceSet when
//! someone changes or deletes one of its objects, so it is corrected in seconds rather than
//! at the next interval. Kinds are watched from the first reconcile that applies them on.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use futures::StreamExt;
use kube::{
    Api, Client,
    api::{GroupVersionKind, ObjectMeta},
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, reflector::ObjectRef, watcher},
};
use tokio::sync::mpsc;

use crate::{
    api::{ResourceInventory, resourceset::ResourceSet},
    apply::ObjectId,
    controller::drift::{Changed, Seen, Tracker, fingerprint},
    resourceset::{OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL},
};

/// The owning ResourceSet of an object, and the object, as one tracker key.
fn key(metadata: &ObjectMeta) -> Option<String> {
    let labels = metadata.labels.as_ref()?;
    Some(format!(
        "{}\u{0}{}\u{0}{}/{}",
        labels.get(OWNER_NAMESPACE_LABEL)?,
        labels.get(OWNER_NAME_LABEL)?,
        metadata.namespace.as_deref().unwrap_or_default(),
        metadata.name.as_deref().unwrap_or_default()
    ))
}

fn owner(key: &str) -> Option<ObjectRef<ResourceSet>> {
    let mut parts = key.split('\u{0}');
    let namespace = parts.next()?;
    let name = parts.next()?;
    Some(ObjectRef::new(name).within(namespace))
}

/// Kinds whose spec has a generation are judged by it (their status keeps changing);
/// others, by any write.
fn changed_by(metadata: &ObjectMeta) -> Changed {
    if metadata.generation.is_some() {
        Changed::Generation
    } else {
        Changed::AnyWrite
    }
}

/// The kinds watched so far, and where drift is reported.
pub struct Watches {
    client: Client,
    sender: mpsc::UnboundedSender<ObjectRef<ResourceSet>>,
    started: Mutex<HashSet<(String, String, String)>>,
}

impl Watches {
    pub fn new(client: Client) -> (Arc<Self>, mpsc::UnboundedReceiver<ObjectRef<ResourceSet>>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (
            Arc::new(Self {
                client,
                sender,
                started: Mutex::default(),
            }),
            receiver,
        )
    }

    /// Starts a watch for each kind of `inventory` not watched yet.
    pub fn ensure(&self, inventory: &ResourceInventory) {
        let mut started = self
            .started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for entry in &inventory.entries {
            let Some(id) = ObjectId::parse_inventory_id(&entry.id) else {
                continue;
            };
            let kind = (id.group.clone(), entry.v.clone(), id.kind.clone());
            if started.insert(kind.clone()) {
                tokio::spawn(watch(self.client.clone(), kind, self.sender.clone()));
            }
        }
    }
}

async fn watch(
    client: Client,
    (group, version, kind): (String, String, String),
    sender: mpsc::UnboundedSender<ObjectRef<ResourceSet>>,
) {
    let gvk = GroupVersionKind::gvk(&group, &version, &kind);
    let resource = match kube::discovery::pinned_kind(&client, &gvk).await {
        Ok((resource, _)) => resource,
        Err(error) => {
            tracing::info!(%kind, %error, "kind not served: its drift is corrected at the interval");
            return;
        }
    };
    let api: Api<PartialObjectMeta<kube::api::DynamicObject>> = Api::all_with(client, &resource);
    let config = watcher::Config::default().labels(OWNER_NAME_LABEL);
    let mut tracker = Tracker::default();
    let mut failing = false;
    let mut events = watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        let seen = match event {
            Ok(watcher::Event::Init) => Some(Seen::Init),
            Ok(watcher::Event::InitApply(o)) => key(&o.metadata)
                .map(|k| Seen::Listed(k, fingerprint(&o.metadata, changed_by(&o.metadata)))),
            Ok(watcher::Event::InitDone) => Some(Seen::InitDone),
            Ok(watcher::Event::Apply(o)) => key(&o.metadata)
                .map(|k| Seen::Applied(k, fingerprint(&o.metadata, changed_by(&o.metadata)))),
            Ok(watcher::Event::Delete(o)) => key(&o.metadata).map(Seen::Deleted),
            Err(error) => {
                if failing {
                    tracing::debug!(%error, %kind, "watching ResourceSet objects for drift");
                } else {
                    tracing::warn!(%error, %kind, "watching ResourceSet objects for drift failed; retrying with backoff");
                }
                failing = true;
                None
            }
        };
        let Some(seen) = seen else { continue };
        failing = false;
        for drifted in tracker.observe(seen) {
            if let Some(rset) = owner(&drifted) {
                tracing::info!(%kind, object = %drifted.rsplit('\u{0}').next().unwrap_or_default(), resourceset = %rset, "an object a ResourceSet applied was changed or deleted: reconciling");
                if sender.send(rset).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_names_the_owner_and_the_object() {
        let metadata = ObjectMeta {
            name: Some("app".into()),
            namespace: Some("apps".into()),
            labels: Some(
                [
                    (OWNER_NAME_LABEL.to_string(), "set".to_string()),
                    (OWNER_NAMESPACE_LABEL.to_string(), "team".to_string()),
                ]
                .into(),
            ),
            ..ObjectMeta::default()
        };
        let key = key(&metadata).unwrap();
        assert_eq!(owner(&key), Some(ObjectRef::new("set").within("team")));
        assert!(key.ends_with("apps/app"));
        assert_eq!(super::key(&ObjectMeta::default()), None);
    }
}
