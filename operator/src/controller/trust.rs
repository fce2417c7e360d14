//! The operator's trust policy: rules from its flags that whoever may edit a FluxInstance
//! cannot switch off. Anyone with write access to a FluxInstance chooses its artifact, its
//! `verify` and its patches, and a bundle carries the RBAC fluxop binds; with this policy the
//! operator, not the instance, names the key bundles must be signed with and the registries
//! artifacts and images may come from. The checks are pure; the controllers apply them.

use serde_json::Value;

use crate::bundle::reference::ArtifactRef;

/// What the operator requires of every distribution artifact and rendered image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Secret in the operator's namespace whose `cosign.pub` every distribution artifact
    /// must verify with. The instance's own `verify` is then not used: an editor cannot
    /// drop it or point it at a key of their own.
    pub signature_secret: Option<String>,
    /// Where artifacts and container images may come from: a registry (`host[:port]`) or a
    /// repository prefix (`host/path`). Empty: anywhere.
    pub allowed_registries: Vec<String>,
}

/// Flag names, for messages that say which policy refused.
pub const SIGNATURE_FLAG: &str = "--required-signature-secret";
pub const REGISTRIES_FLAG: &str = "--allowed-registry";

impl Policy {
    /// Refuses an artifact outside the allowed registries.
    pub fn check_artifact(&self, artifact: &ArtifactRef) -> Result<(), String> {
        let location = format!("{}/{}", artifact.registry, artifact.repository);
        if self.allows(&location) {
            Ok(())
        } else {
            Err(format!(
                "the artifact {artifact} is not in a registry the operator allows ({REGISTRIES_FLAG}: {})",
                self.allowed_registries.join(", ")
            ))
        }
    }

    /// Refuses rendered objects whose pods would run an image from elsewhere (a patch or
    /// `distribution.registry` can name any image).
    pub fn check_images(&self, objects: &[Value]) -> Result<(), String> {
        if self.allowed_registries.is_empty() {
            return Ok(());
        }
        let refused: Vec<String> = objects
            .iter()
            .flat_map(|object| {
                images(object)
                    .filter(|image| !self.allows(&canonical_image(image)))
                    .map(|image| format!("{} runs {image}", name_of(object)))
                    .collect::<Vec<_>>()
            })
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "images outside the registries the operator allows ({REGISTRIES_FLAG}: {}): {}",
                self.allowed_registries.join(", "),
                refused.join("; ")
            ))
        }
    }

    /// Is `location` (`host/path`, no scheme, no tag) under an allowed entry?
    fn allows(&self, location: &str) -> bool {
        self.allowed_registries.is_empty()
            || self.allowed_registries.iter().any(|entry| {
                let entry = entry.trim_end_matches('/');
                location == entry
                    || location
                        .strip_prefix(entry)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

/// The container images of an object's pod template (or of a Pod), init containers too.
fn images(object: &Value) -> impl Iterator<Item = &str> {
    let pod = if object["kind"] == "Pod" {
        &object["spec"]
    } else if object["kind"] == "CronJob" {
        &object["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    } else {
        &object["spec"]["template"]["spec"]
    };
    ["containers", "initContainers", "ephemeralContainers"]
        .into_iter()
        .filter_map(move |list| pod[list].as_array())
        .flatten()
        .filter_map(|container| container["image"].as_str())
}

/// An image reference as a registry sees it: Docker Hub's implicit host and `library/`
/// spelled out, tag and digest dropped (`nginx:1` is `docker.io/library/nginx`).
fn canonical_image(image: &str) -> String {
    let name = image.split('@').next().unwrap_or_default();
    // A tag follows the last ':' after the last '/' (a ':' before it is a port).
    let name = match (name.rfind(':'), name.rfind('/')) {
        (Some(colon), slash) if slash.is_none_or(|slash| colon > slash) => &name[..colon],
        _ => name,
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_host =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    match (has_host, name.contains('/')) {
        (true, _) => name.to_string(),
        (false, true) => format!("docker.io/{name}"),
        (false, false) => format!("docker.io/library/{name}"),
    }
}

/// `Kind/namespace/name`, as fluxop names objects everywhere.
fn name_of(object: &Value) -> String {
    crate::apply::ObjectId::of(object).map_or_else(|| "an object".into(), |(id, _)| id.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn allowing(entries: &[&str]) -> Policy {
        Policy {
            signature_secret: None,
            allowed_registries: entries.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn an_artifact_must_be_under_an_allowed_registry_or_repository_prefix() {
        let policy = allowing(&["ghcr.io/acme", "127.0.0.1:5000"]);
        for allowed in [
            "oci://ghcr.io/acme/flux:latest",
            "oci://ghcr.io/acme/team/flux@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "oci://127.0.0.1:5000/anything:v1",
        ] {
            let artifact = ArtifactRef::parse(allowed).unwrap();
            assert_eq!(policy.check_artifact(&artifact), Ok(()), "{allowed}");
        }
        for refused in [
            "oci://ghcr.io/acme-evil/flux:latest",
            "oci://ghcr.io/other/flux:latest",
            "oci://127.0.0.1:5001/anything:v1",
        ] {
            let artifact = ArtifactRef::parse(refused).unwrap();
            let error = policy.check_artifact(&artifact).unwrap_err();
            assert!(
                error.contains("--allowed-registry: ghcr.io/acme, 127.0.0.1:5000"),
                "{error}"
            );
        }
        let open = Policy::default();
        let anywhere = ArtifactRef::parse("oci://example.com/x:y").unwrap();
        assert_eq!(open.check_artifact(&anywhere), Ok(()));
    }

    #[test]
    fn rendered_images_are_checked_with_docker_hub_names_spelled_out() {
        let deployment = |image: &str| {
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "source-controller", "namespace": "flux-system" },
                "spec": { "template": { "spec": {
                    "initContainers": [{ "name": "init", "image": "ghcr.io/fluxcd/init:v1" }],
                    "containers": [{ "name": "manager", "image": image }]
                } } }
            })
        };
        let policy = allowing(&["ghcr.io/fluxcd", "docker.io/library", "localhost:5000"]);
        for image in [
            "ghcr.io/fluxcd/source-controller:v1.7.0@sha256:00",
            "busybox:1.36",
            "localhost:5000/x",
        ] {
            assert_eq!(policy.check_images(&[deployment(image)]), Ok(()), "{image}");
        }
        let error = policy
            .check_images(&[deployment("evil.example/fluxcd/source-controller:v1")])
            .unwrap_err();
        assert!(
            error.contains(
                "Deployment/flux-system/source-controller runs evil.example/fluxcd/source-controller:v1"
            ),
            "{error}"
        );
        // A Docker Hub user's image is not the official library.
        assert!(
            policy
                .check_images(&[deployment("someone/busybox")])
                .is_err()
        );
        assert_eq!(
            canonical_image("127.0.0.1:5000/a/b:1"),
            "127.0.0.1:5000/a/b"
        );
    }
}
