//! `spec.sharding`: one more set of the shardable controllers per shard. Each shard's copy is
//! named `<controller>-<shard>`, selects its own pods (`app: <controller>-<shard>`) and
//! reconciles only Flux objects labelled `<key>=<shard>`; the main controllers exclude every
//! labelled object (`!<key>`). From Flux 2.9 source-watcher is sharded too (earlier releases
//! cannot narrow it by label, as with the incumbent). A source-controller or source-watcher
//! shard serves artifacts from its own Service and address; a source-controller shard with
//! `storage: persistent` from its own claim. Flux controllers derive their
//! leader-election lease from the label selector, so shards never compete for one lease.
//! Pure; runs after profiles (shards inherit sizes) and before the user's patches (which can
//! target shards by name).

use semver::Version;
use serde_json::{Value, json};

use super::{Error, args};
use crate::api::{Component, Sharding, ShardingStorage};

/// The label key when `spec.sharding.key` is empty.
pub const DEFAULT_KEY: &str = "sharding.fluxcd.io/key";

const SHARDABLE: [Component; 6] = [
    Component::SourceController,
    Component::KustomizeController,
    Component::HelmController,
    Component::ImageReflectorController,
    Component::ImageAutomationController,
    Component::SourceWatcher,
];

/// Is `component` sharded in Flux `version`? source-watcher only from 2.9.
fn shardable(component: Component, version: &Version) -> bool {
    component != Component::SourceWatcher || *version >= Version::new(2, 9, 0)
}

/// Controllers that serve artifacts at their own Service (`--storage-adv-addr`).
const ARTIFACT_SERVERS: [Component; 2] = [Component::SourceController, Component::SourceWatcher];

/// Is `name` usable as a shard name (a DNS label short enough for `<controller>-<name>`)?
fn valid_shard(name: &str) -> bool {
    let longest = "image-automation-controller-".len();
    !name.is_empty()
        && name.len() + longest <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn is(object: &Value, kind: &str, name: &str) -> bool {
    object["kind"] == kind && name_of(object) == name
}

/// Sets `flag` on every container of a Deployment.
fn set_flag(deployment: &mut Value, flag: &str, value: &str) {
    for container in deployment["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        args::edit_container(container, |list| args::set(list, flag, value));
    }
}

/// Annotates the metadata at `path` as a shard's (`sharding.fluxcd.io/role: shard`, as the
/// incumbent marks them), so patches can select the shard copies by annotation.
fn mark_shard(object: &mut Value, path: &str) {
    if let Some(metadata) = object.pointer_mut(path).and_then(Value::as_object_mut) {
        let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(SHARD_ROLE_ANNOTATION.into(), json!("shard"));
        }
    }
}

/// Marks the copies made for shards.
pub const SHARD_ROLE_ANNOTATION: &str = "sharding.fluxcd.io/role";

/// Renames a Deployment's copy for `shard` and points its pod selector at the copy's pods.
fn shard_deployment(main: &Value, controller: &str, shard: &str) -> Value {
    let name = format!("{controller}-{shard}");
    let mut copy = main.clone();
    copy["metadata"]["name"] = json!(name);
    mark_shard(&mut copy, "/metadata");
    mark_shard(&mut copy, "/spec/template/metadata");
    for path in [
        "/spec/selector/matchLabels",
        "/spec/template/metadata/labels",
    ] {
        if let Some(labels) = copy.pointer_mut(path)
            && labels.get("app").is_some()
        {
            labels["app"] = json!(name);
        }
    }
    copy
}

/// Adds the shards' objects and narrows the main controllers.
pub fn apply(
    objects: &mut Vec<Value>,
    sharding: &Sharding,
    namespace: &str,
    domain: &str,
    version: &Version,
) -> Result<(), Error> {
    let key = sharding
        .key
        .as_deref()
        .filter(|k| !k.is_empty())
        .unwrap_or(DEFAULT_KEY);
    let mut shards: Vec<&str> = Vec::new();
    for shard in &sharding.shards {
        if !valid_shard(shard) {
            return Err(Error::InvalidShard(shard.clone()));
        }
        if !shards.contains(&shard.as_str()) {
            shards.push(shard);
        }
    }
    let persistent = sharding.storage == Some(ShardingStorage::Persistent);
    let mut added = Vec::new();
    for component in SHARDABLE.into_iter().filter(|c| shardable(*c, version)) {
        let controller = component.name();
        let Some(position) = objects.iter().position(|o| is(o, "Deployment", controller)) else {
            continue;
        };
        set_flag(
            &mut objects[position],
            "--watch-label-selector",
            &format!("!{key}"),
        );
        for shard in &shards {
            let mut deployment = shard_deployment(&objects[position], controller, shard);
            // `key=shard`, as the incumbent writes it: Flux names a controller's leader
            // election lease after its selector's text, so the same text keeps the lease
            // when fluxop takes over a sharded cluster (no second set reconciling meanwhile).
            set_flag(
                &mut deployment,
                "--watch-label-selector",
                &format!("{key}={shard}"),
            );
            let name = format!("{controller}-{shard}");
            if ARTIFACT_SERVERS.contains(&component) {
                set_flag(
                    &mut deployment,
                    "--storage-adv-addr",
                    &format!("{name}.{namespace}.svc.{domain}."),
                );
                if let Some(service) = objects.iter().find(|o| is(o, "Service", controller)) {
                    let mut service = service.clone();
                    service["metadata"]["name"] = json!(name);
                    service["spec"]["selector"] = json!({ "app": name });
                    mark_shard(&mut service, "/metadata");
                    added.push(service);
                }
            }
            if component == Component::SourceController {
                let claim = objects
                    .iter()
                    .find(|o| is(o, "PersistentVolumeClaim", controller));
                let pod = &mut deployment["spec"]["template"]["spec"];
                for volume in pod["volumes"].as_array_mut().into_iter().flatten() {
                    if volume["name"] != "data" {
                        continue;
                    }
                    *volume = match (persistent, claim) {
                        (true, Some(_)) => {
                            json!({ "name": "data", "persistentVolumeClaim": { "claimName": name } })
                        }
                        _ => json!({ "name": "data", "emptyDir": {} }),
                    };
                }
                if let (true, Some(claim)) = (persistent, claim) {
                    let mut claim = claim.clone();
                    claim["metadata"]["name"] = json!(name);
                    added.push(claim);
                }
            }
            added.push(deployment);
        }
    }
    objects.extend(added);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names_must_be_short_dns_labels() {
        assert!(valid_shard("shard1"));
        assert!(valid_shard("team-a"));
        for bad in ["", "Shard1", "-a", "a-", "a_b", &"x".repeat(40)] {
            assert!(!valid_shard(bad), "{bad}");
        }
    }
}
