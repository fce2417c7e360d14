//! `build instance` and `diff instance`: a FluxInstance manifest rendered offline, and
//! compared with a cluster. Both refuse, with exit code 2, what the API server would refuse
//! ([`crate::api::validate`]); `diff` also refuses, with [`EXIT_REFUSED`], what the operator
//! would refuse (a minor downgrade), and lists what it would prune.

use std::{path::Path, process::ExitCode};

use kube::Api;
use semver::Version;
use serde_json::Value;

use super::{BuildInstanceArgs, DiffInstanceArgs, Error, OutputFormat, ops, print_structured};
use crate::{
    api::{self, FluxInstance, SINGLETON_NAME, validate},
    apply::{Action, Applied, ObjectId, object},
    bundle::{archive, embedded, layout::Bundle, version},
    controller::lifecycle,
    render::Rendered,
};

/// Exit code of `diff instance` when applying would change something.
pub const EXIT_CHANGES: u8 = 3;
/// Exit code of `diff instance` when the operator would refuse the instance (a minor
/// downgrade from the version the cluster runs).
pub const EXIT_REFUSED: u8 = 5;

/// A manifest as YAML, before any check.
fn read_manifest(file: &Path) -> Result<Value, Error> {
    let text = std::fs::read_to_string(file).map_err(|source| Error::Read {
        path: file.to_path_buf(),
        source,
    })?;
    serde_saphyr::from_str(&text).map_err(|e| Error::Manifest {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The instance of `manifest` once it passes what the API server checks; `stored` is the
/// instance in the cluster (for the rules about changes, such as the immutable sync name).
fn checked_instance(
    file: &Path,
    manifest: Value,
    stored: Option<&Value>,
) -> Result<FluxInstance, Error> {
    let violations = validate::flux_instance(&manifest, stored);
    if !violations.is_empty() {
        return Err(Error::Invalid {
            path: file.to_path_buf(),
            violations,
        });
    }
    serde_json::from_value(manifest).map_err(|e| Error::Manifest {
        path: file.to_path_buf(),
        reason: e.to_string(),
    })
}

fn namespace_of(manifest: &Value, default_namespace: &str) -> String {
    manifest["metadata"]["namespace"]
        .as_str()
        .unwrap_or(default_namespace)
        .to_string()
}

/// Renders `instance` with the bundle of `bundle_dir` or the embedded one. `installed` is the
/// Flux version the cluster runs: the operator's version choice refuses a minor downgrade
/// from it ([`version::select`], the one rule both use).
fn render_instance(
    instance: &FluxInstance,
    namespace: &str,
    bundle_dir: Option<&Path>,
    installed: Option<&Version>,
) -> Result<Rendered, Error> {
    let owned;
    let bundle: &Bundle = match bundle_dir {
        Some(dir) => {
            let files = archive::read_dir(dir).map_err(|source| Error::BundleArchive {
                dir: dir.to_path_buf(),
                source,
            })?;
            owned = Bundle::from_files(files).map_err(|source| Error::BundleLayout {
                dir: dir.to_path_buf(),
                source,
            })?;
            &owned
        }
        None => match embedded::bundle() {
            Some(Ok((_, bundle))) => bundle,
            Some(Err(e)) => {
                return Err(Error::Build(format!("the embedded bundle is invalid: {e}")));
            }
            None => {
                return Err(Error::Build(
                    "this fluxop build embeds no bundle: pass --bundle DIR".into(),
                ));
            }
        },
    };
    let selection = version::select(
        &instance.spec.distribution.version,
        &bundle.versions(),
        installed,
    )
    .map_err(|e| match e {
        version::Error::MinorDowngrade { .. } => Error::Refused(e.to_string()),
        other => Error::Build(other.to_string()),
    })?;
    let rendered = crate::render::render(namespace, &instance.spec, bundle, &selection.version)
        .map_err(|e| Error::Build(e.to_string()))?;
    eprintln!(
        "► Flux v{} — {} objects, revision {}",
        selection.version,
        rendered.objects.len(),
        rendered.revision
    );
    Ok(rendered)
}

pub(super) fn build(args: BuildInstanceArgs) -> Result<ExitCode, Error> {
    let manifest = read_manifest(&args.file)?;
    let namespace = namespace_of(&manifest, &args.namespace);
    let instance = checked_instance(&args.file, manifest, None)?;
    let rendered = render_instance(&instance, &namespace, args.bundle.as_deref(), None)?;
    match args.output {
        OutputFormat::Json => print_structured(&rendered.objects, OutputFormat::Json)?,
        _ => {
            let documents: Result<Vec<String>, _> = rendered
                .objects
                .iter()
                .map(crate::yaml::to_string)
                .collect();
            let documents = documents.map_err(|e| Error::Format(e.to_string()))?;
            print!("---\n{}", documents.join("---\n"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The Flux version of the cluster's instance: that of `status.lastAppliedRevision`.
fn installed_version(stored: &FluxInstance) -> Option<Version> {
    let revision = stored.status.as_ref()?.last_applied_revision.as_deref()?;
    version::of_revision(revision)
}

/// What the stored instance installed that the new render lacks, in deletion order: prune
/// candidates, before [`lifecycle::prune_guard`] judges each live object.
fn prune_candidates(stored: &FluxInstance, rendered: &[Value]) -> Vec<(ObjectId, String)> {
    match stored.status.as_ref().and_then(|s| s.inventory.as_ref()) {
        Some(previous) => object::stale(previous, &object::inventory(rendered)),
        None => Vec::new(),
    }
}

/// The lines of a diff: `+` created, `!` recreated, `~` changed (with its fields), `-` pruned.
fn diff_lines(applied: &[Applied], pruned: &[ObjectId]) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in applied {
        match &entry.action {
            Action::Unchanged => {}
            Action::Created => lines.push(format!("+ {}", entry.id)),
            Action::Recreated => lines.push(format!(
                "! {} (immutable fields change: recreated)",
                entry.id
            )),
            Action::Configured(fields) => {
                lines.push(format!("~ {}", entry.id));
                lines.extend(fields.iter().map(|field| format!("    {field}")));
            }
        }
    }
    lines.extend(pruned.iter().map(|id| format!("- {id} (pruned)")));
    lines
}

pub(super) async fn diff(args: DiffInstanceArgs) -> Result<ExitCode, Error> {
    let manifest = read_manifest(&args.file)?;
    let namespace = namespace_of(&manifest, &args.namespace);
    let client = ops::client(&ops::ClusterArgs {
        namespace: namespace.clone(),
        kubeconfig: args.kubeconfig.clone(),
    })
    .await?;
    let stored = Api::<FluxInstance>::namespaced(client.clone(), &namespace)
        .get_opt(SINGLETON_NAME)
        .await
        .map_err(|e| Error::Build(format!("reading FluxInstance {namespace}/flux: {e}")))?;
    let stored_manifest = stored
        .as_ref()
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| Error::Format(e.to_string()))?;
    let instance = checked_instance(&args.file, manifest, stored_manifest.as_ref())?;
    let installed = stored.as_ref().and_then(installed_version);
    let rendered = render_instance(
        &instance,
        &namespace,
        args.bundle.as_deref(),
        installed.as_ref(),
    )?;
    let applier = crate::apply::Applier::new(client, api::constants::FIELD_MANAGER);
    let options = crate::apply::Options {
        dry_run: true,
        ..Default::default()
    };
    let changes = applier.apply_all(&rendered.objects, options).await?;
    let mut pruned = Vec::new();
    if let Some(stored) = &stored {
        for (id, version) in prune_candidates(stored, &rendered.objects) {
            let Some(live) = applier.get(&id, &version).await? else {
                continue;
            };
            match lifecycle::prune_guard(stored, &live) {
                Ok(()) => pruned.push(id),
                Err(reason) => eprintln!("  {id} is no longer rendered but is kept: {reason}"),
            }
        }
    }
    let lines = diff_lines(&changes.entries, &pruned);
    for line in &lines {
        println!("{line}");
    }
    let changed = changes
        .entries
        .iter()
        .filter(|e| e.action != Action::Unchanged)
        .count();
    eprintln!(
        "► {changed} of {} objects would change, {} would be pruned",
        changes.entries.len(),
        pruned.len()
    );
    Ok(if lines.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_CHANGES)
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::{FluxInstanceStatus, ResourceInventory, ResourceRef};

    fn stored(revision: Option<&str>, inventory: &[&str]) -> FluxInstance {
        let mut instance: FluxInstance = serde_json::from_value(json!({
            "apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
            "metadata": { "name": "flux", "namespace": "flux-system" },
            "spec": { "distribution": { "version": "2.x", "registry": "ghcr.io/fluxcd" } },
        }))
        .expect("instance");
        instance.status = Some(FluxInstanceStatus {
            last_applied_revision: revision.map(str::to_string),
            inventory: Some(ResourceInventory {
                entries: inventory
                    .iter()
                    .map(|id| ResourceRef {
                        id: id.to_string(),
                        v: "v1".into(),
                    })
                    .collect(),
            }),
            ..Default::default()
        });
        instance
    }

    fn deployment(name: &str) -> Value {
        json!({ "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": name, "namespace": "flux-system" } })
    }

    #[test]
    fn objects_of_the_inventory_the_new_render_lacks_are_prune_candidates() {
        let instance = stored(
            Some("v2.9.4@sha256:00"),
            &[
                "flux-system_source-controller_apps_Deployment",
                "flux-system_helm-controller_apps_Deployment",
            ],
        );
        let candidates = prune_candidates(&instance, &[deployment("source-controller")]);
        let names: Vec<String> = candidates.iter().map(|(id, _)| id.to_string()).collect();
        assert_eq!(names, ["Deployment/flux-system/helm-controller"]);
        assert_eq!(prune_candidates(&stored(None, &[]), &[]), []);
    }

    #[test]
    fn the_installed_version_is_that_of_the_last_applied_revision() {
        assert_eq!(
            installed_version(&stored(Some("v2.9.4@sha256:00"), &[])),
            Some(Version::new(2, 9, 4))
        );
        assert_eq!(installed_version(&stored(None, &[])), None);
    }

    #[test]
    fn a_diff_lists_created_changed_and_pruned_objects() {
        let id = |name: &str| ObjectId::of(&deployment(name)).expect("id").0;
        let applied = |name: &str, action: Action| Applied {
            id: id(name),
            action,
            live: None,
            stored: Default::default(),
        };
        let lines = diff_lines(
            &[
                applied("a", Action::Unchanged),
                applied("b", Action::Created),
                applied(
                    "c",
                    Action::Configured(vec!["spec.replicas: 1 -> 2".into()]),
                ),
            ],
            &[id("d")],
        );
        assert_eq!(
            lines,
            [
                "+ Deployment/flux-system/b",
                "~ Deployment/flux-system/c",
                "    spec.replicas: 1 -> 2",
                "- Deployment/flux-system/d (pruned)",
            ]
        );
        assert_eq!(
            diff_lines(&[applied("a", Action::Unchanged)], &[]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_operators_minor_downgrade_refusal_is_a_refusal() {
        let instance = FluxInstance::new(
            "flux",
            serde_json::from_value(
                json!({ "distribution": { "version": "2.8.x", "registry": "r" } }),
            )
            .expect("spec"),
        );
        if embedded::bundle().is_none() {
            return; // built without vendored releases: nothing to select from
        }
        match render_instance(&instance, "flux-system", None, Some(&Version::new(2, 9, 4))) {
            Err(Error::Refused(message)) => {
                assert!(
                    message.contains("refusing to downgrade Flux from 2.9.4"),
                    "{message}"
                )
            }
            other => panic!("expected a refusal, got {:?}", other.map(|r| r.revision)),
        }
    }
}
