//! `fluxop bootstrap`: hands a FluxInstance over to its own sync, so that Flux manages
//! itself. The instance file goes into the synced source (a commit, or `fluxop artifact
//! push`) and this command applies it once: fluxop installs Flux, the sync Kustomization
//! applies the instance from the source, and from then on the instance changes by a commit
//! or a push — a version bump upgrades Flux, the controller that applied it included.

use std::{
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Args;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
};
use serde_json::Value;

use super::{
    Error,
    ops::{ClusterArgs, EXIT_NOT_READY, client},
};
use crate::api::{
    FluxInstance, GROUP, SINGLETON_NAME, VERSION,
    constants::annotation::{DISABLED_VALUE, KUSTOMIZE_PRUNE},
};

const FIELD_MANAGER: &str = "fluxop-bootstrap";

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The FluxInstance manifest, with `spec.sync`. The same file must be in the source under
    /// `sync.path`, annotated `kustomize.toolkit.fluxcd.io/prune: disabled`.
    #[arg(short, long)]
    pub file: PathBuf,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// How long to wait for Flux to be Ready and to take the instance over, e.g. `10m`.
    #[arg(long, default_value = "10m", value_parser = super::parse_duration)]
    pub timeout: Duration,
}

/// What a self-managed instance needs; the reason a person can act on when it is missing.
pub fn check_self_managed(instance: &FluxInstance) -> Result<String, String> {
    if instance.metadata.name.as_deref() != Some(SINGLETON_NAME) {
        return Err(format!(
            "the FluxInstance is named {:?}; the only accepted name is {SINGLETON_NAME:?}",
            instance.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    let Some(sync) = &instance.spec.sync else {
        return Err(
            "the FluxInstance has no spec.sync: Flux needs a source to manage itself from".into(),
        );
    };
    let prune = instance
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(KUSTOMIZE_PRUNE));
    if prune.map(String::as_str) != Some(DISABLED_VALUE) {
        return Err(format!(
            "add the annotation `{KUSTOMIZE_PRUNE}: {DISABLED_VALUE}` to the FluxInstance (here and \
             in the source): without it, removing the file from the source would make the \
             Kustomization delete the instance, and with it uninstall Flux"
        ));
    }
    let namespace = instance.metadata.namespace.as_deref().unwrap_or_default();
    Ok(sync.name_or(namespace).to_string())
}

/// Has the Kustomization applied the instance from the source? Its inventory says so.
pub fn kustomization_holds_instance(kustomization: &Value, namespace: &str) -> bool {
    let id = format!("{namespace}_{SINGLETON_NAME}_{GROUP}_FluxInstance");
    kustomization["status"]["inventory"]["entries"]
        .as_array()
        .is_some_and(|entries| entries.iter().any(|e| e["id"] == id.as_str()))
}

pub async fn bootstrap(args: BootstrapArgs) -> Result<ExitCode, Error> {
    let text = std::fs::read_to_string(&args.file).map_err(|source| Error::Read {
        path: args.file.clone(),
        source,
    })?;
    let bad = |reason: String| Error::Manifest {
        path: args.file.clone(),
        reason,
    };
    let mut instance: FluxInstance =
        serde_saphyr::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let namespace = instance
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| args.cluster.namespace.clone());
    instance.metadata.namespace = Some(namespace.clone());
    let kustomization_name = check_self_managed(&instance).map_err(bad)?;
    let sync = instance
        .spec
        .sync
        .clone()
        .unwrap_or_else(|| unreachable!("checked"));

    let client = client(&args.cluster).await?;
    ensure_namespace(&client, &namespace).await?;
    let api = Api::<FluxInstance>::namespaced(client.clone(), &namespace);
    let mut manifest = serde_json::to_value(&instance).map_err(|e| bad(e.to_string()))?;
    manifest["apiVersion"] = format!("{GROUP}/{VERSION}").into();
    manifest["kind"] = "FluxInstance".into();
    if let Some(metadata) = manifest["metadata"].as_object_mut() {
        metadata.remove("managedFields");
        metadata.remove("resourceVersion");
    }
    api.patch(
        SINGLETON_NAME,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&manifest),
    )
    .await
    .map_err(|e| Error::Build(format!("applying the FluxInstance: {e}")))?;
    eprintln!("► FluxInstance {namespace}/{SINGLETON_NAME} applied");

    let mut wait = crate::poll::Deadline::after(args.timeout, Duration::from_secs(1));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "kustomize.toolkit.fluxcd.io",
        "v1",
        "Kustomization",
    ));
    let kustomizations = Api::<DynamicObject>::namespaced_with(client, &namespace, &resource);
    let mut last_line = None::<Instant>;
    loop {
        let kustomization = kustomizations
            .get_opt(&kustomization_name)
            .await
            .ok()
            .flatten()
            .and_then(|k| serde_json::to_value(k).ok());
        let (step, done) = match &kustomization {
            None => (
                "waiting for fluxop to install Flux and the sync".to_string(),
                false,
            ),
            Some(k) if kustomization_holds_instance(k, &namespace) => (String::new(), true),
            Some(k) => (
                format!(
                    "waiting for Kustomization {namespace}/{kustomization_name} to apply the \
                     instance from {} ({})",
                    sync.url,
                    ready_message(k)
                ),
                false,
            ),
        };
        if done {
            eprintln!(
                "✔ Flux manages itself: change the FluxInstance in {} (path {}) and push; \
                 Kustomization {namespace}/{kustomization_name} applies it ({}s)",
                sync.url,
                sync.path,
                wait.elapsed().as_secs()
            );
            return Ok(ExitCode::SUCCESS);
        }
        if last_line.is_none_or(|l| l.elapsed() >= Duration::from_secs(10)) {
            eprintln!("◎ {step} ({}s)", wait.elapsed().as_secs());
            last_line = Some(Instant::now());
        }
        if let Err(timed_out) = wait.pause().await {
            eprintln!(
                "✗ {timed_out}: {step}. Is the instance file in the source under {}?",
                sync.path
            );
            return Ok(ExitCode::from(EXIT_NOT_READY));
        }
    }
}

fn ready_message(object: &Value) -> String {
    object["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or("no status yet")
        .to_string()
}

async fn ensure_namespace(client: &Client, namespace: &str) -> Result<(), Error> {
    use k8s_openapi::api::core::v1::Namespace;
    let api = Api::<Namespace>::all(client.clone());
    let exists = api
        .get_opt(namespace)
        .await
        .map_err(|e| Error::Build(format!("reading namespace {namespace}: {e}")))?
        .is_some();
    if !exists {
        let manifest = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": namespace }
        });
        api.patch(
            namespace,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&manifest),
        )
        .await
        .map_err(|e| Error::Build(format!("creating namespace {namespace}: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(annotations: &str, sync: bool) -> FluxInstance {
        let sync = if sync {
            "  sync:\n    kind: GitRepository\n    url: http://git/fleet.git\n    ref: refs/heads/main\n    path: clusters/a\n"
        } else {
            ""
        };
        serde_saphyr::from_str(&format!(
            "apiVersion: fluxcd.controlplane.io/v1\nkind: FluxInstance\nmetadata:\n  name: flux\n  namespace: flux-system\n{annotations}spec:\n  distribution:\n    version: 2.9.x\n    registry: ghcr.io/fluxcd\n{sync}"
        ))
        .expect("instance")
    }

    #[test]
    fn a_self_managed_instance_needs_a_sync_and_the_prune_opt_out() {
        let annotated = "  annotations:\n    kustomize.toolkit.fluxcd.io/prune: disabled\n";
        assert_eq!(
            check_self_managed(&instance(annotated, true)),
            Ok("flux-system".to_string())
        );
        let error = check_self_managed(&instance("", true)).expect_err("refused");
        assert!(
            error.contains("kustomize.toolkit.fluxcd.io/prune: disabled"),
            "{error}"
        );
        let error = check_self_managed(&instance(annotated, false)).expect_err("refused");
        assert!(error.contains("spec.sync"), "{error}");
    }

    #[test]
    fn the_inventory_tells_whether_the_kustomization_applied_the_instance() {
        let kustomization = serde_json::json!({ "status": { "inventory": { "entries": [
            { "id": "apps_app_apps_Deployment", "v": "v1" },
            { "id": "flux-system_flux_fluxcd.controlplane.io_FluxInstance", "v": "v1" }
        ] } } });
        assert!(kustomization_holds_instance(&kustomization, "flux-system"));
        assert!(!kustomization_holds_instance(&kustomization, "other"));
        assert!(!kustomization_holds_instance(
            &serde_json::json!({}),
            "flux-system"
        ));
    }
}
