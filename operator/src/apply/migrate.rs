//! Storage-version migration of custom resources: the API server refuses a CRD that drops a
//! version still listed in `status.storedVersions`, so before such an upgrade every stored
//! object must be rewritten at the current storage version and the list trimmed. The
//! decisions are pure; [`Applier::migrate`] does the rewriting.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

use super::{Applier, Error, ObjectId, paging::Pager};
use crate::policy;

/// The version a CRD stores new writes at.
pub fn storage_version(crd: &Value) -> Option<&str> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["storage"] == true)?["name"]
        .as_str()
}

fn stored_versions(crd: &Value) -> Vec<&str> {
    crd["status"]["storedVersions"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Versions objects may still be stored at (per the live CRD) that `new_crd` no longer
/// serves: applying `new_crd` would be refused until they are migrated away.
pub fn dropped_stored_versions(live_crd: &Value, new_crd: &Value) -> Vec<String> {
    let served: Vec<&str> = new_crd["spec"]["versions"]
        .as_array()
        .map(|v| v.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    stored_versions(live_crd)
        .into_iter()
        .filter(|v| !served.contains(v))
        .map(str::to_string)
        .collect()
}

/// Does the live CRD list any stored version besides its storage version?
pub fn needs_migration(live_crd: &Value) -> bool {
    match storage_version(live_crd) {
        Some(storage) => stored_versions(live_crd).iter().any(|v| *v != storage),
        None => false,
    }
}

/// What a migration did to one CRD's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub crd: String,
    /// Stored versions before.
    pub from: Vec<String>,
    pub to: String,
    pub objects: usize,
}

impl Applier {
    /// Rewrites every object of the CRD `name` at its storage version and trims
    /// `status.storedVersions` to it. `None` when nothing was stored at another version.
    pub async fn migrate(&self, name: &str) -> Result<Option<Migration>, Error> {
        let crd_id = ObjectId {
            group: "apiextensions.k8s.io".into(),
            kind: "CustomResourceDefinition".into(),
            namespace: String::new(),
            name: name.to_string(),
        };
        let Some(live) = self.get(&crd_id, "v1").await? else {
            return Ok(None);
        };
        if !needs_migration(&live) {
            return Ok(None);
        }
        let Some(storage) = storage_version(&live).map(str::to_string) else {
            return Ok(None);
        };
        let from: Vec<String> = stored_versions(&live)
            .into_iter()
            .map(str::to_string)
            .collect();
        let kind_id = ObjectId {
            group: live["spec"]["group"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            kind: live["spec"]["names"]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            namespace: String::new(),
            name: name.to_string(),
        };
        let failed = |object: &ObjectId| {
            let object = object.to_string();
            move |source| Error::Request {
                object,
                source: Box::new(source),
            }
        };
        let all = self.api(&kind_id, &storage).await?;
        let mut objects = 0;
        let mut pages = Pager::new(policy::kube::LIST_PAGE);
        while let Some(params) = pages.next_params() {
            let list = match all.list(&params).await {
                Ok(list) => list,
                // Rewriting an object twice is harmless.
                Err(error) if pages.restart_after(&error) => continue,
                Err(error) => return Err(failed(&kind_id)(error)),
            };
            pages.advance(list.metadata.continue_.as_deref());
            for item in list.items {
                let id = ObjectId {
                    namespace: item.metadata.namespace.clone().unwrap_or_default(),
                    name: item.metadata.name.clone().unwrap_or_default(),
                    ..kind_id.clone()
                };
                let api = self.api(&id, &storage).await?;
                // An unchanged update still re-encodes the object at the storage version: how
                // the upstream storage version migrator works too. On a conflict the object
                // was just written by someone else, which migrated it as well.
                match api.replace(&id.name, &PostParams::default(), &item).await {
                    Ok(_) => objects += 1,
                    Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
                        objects += 1
                    }
                    Err(source) => return Err(failed(&id)(source)),
                }
            }
        }
        Api::<CustomResourceDefinition>::all(self.client.clone())
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": { "storedVersions": [storage] } })),
            )
            .await
            .map_err(failed(&crd_id))?;
        Ok(Some(Migration {
            crd: name.to_string(),
            from,
            to: storage,
            objects,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(versions: &[(&str, bool)], stored: &[&str]) -> Value {
        json!({
            "spec": { "versions": versions.iter().map(|(n, s)| json!({ "name": n, "storage": s })).collect::<Vec<_>>() },
            "status": { "storedVersions": stored }
        })
    }

    #[test]
    fn a_version_still_stored_but_no_longer_served_blocks_the_upgrade() {
        let live = crd(&[("v1", true), ("v1beta2", false)], &["v1beta2", "v1"]);
        let next = crd(&[("v1", true)], &[]);
        assert_eq!(dropped_stored_versions(&live, &next), ["v1beta2"]);
        let migrated = crd(&[("v1", true), ("v1beta2", false)], &["v1"]);
        assert!(dropped_stored_versions(&migrated, &next).is_empty());
    }

    #[test]
    fn only_crds_listing_other_stored_versions_need_migration() {
        assert!(needs_migration(&crd(
            &[("v1", true), ("v1beta2", false)],
            &["v1beta2", "v1"]
        )));
        assert!(!needs_migration(&crd(&[("v1", true)], &["v1"])));
        assert_eq!(
            storage_version(&crd(&[("v1beta2", false), ("v1", true)], &[])),
            Some("v1")
        );
    }
}
