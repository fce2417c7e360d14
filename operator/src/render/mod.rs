//! Render: a `FluxInstance` spec and one Flux release of a bundle give the exact objects to
//! apply. Pure: no IO, the same input always gives the same objects and revision.
//!
//! Covered so far: components (with version gates), the namespace, standard, owner and common
//! labels and annotations, images from the bundle's catalog (pinned by digest), image pull
//! secrets, the cluster domain in service addresses, multitenancy lockdown flags, network
//! policies, source-controller's storage claim, the sync source and Kustomization (generated
//! from templates a bundle can override), the `kubernetes.io/os: linux` node selector, the
//! `ExternalArtifact` gate of source-watcher's consumers, and the revision. Profiles, workload
//! identity, sharding and user patches build on this.
//! Profiles (size, cluster type, workload identity) are in [`profiles`]; the names of the
//! release's RBAC objects in [`rbac`]; the Flux Operator's kinds in notification-controller's
//! CRDs in [`operator_kinds`].

pub mod args;
pub mod operator_kinds;
pub mod patches;
pub mod profiles;
pub mod rbac;
pub mod sharding;
pub mod templates;

use std::collections::BTreeMap;

use semver::Version;
use serde_json::{Map, Value, json};

use crate::{
    api::{
        Cluster, Component, ComponentImage, FluxInstanceSpec, Variant,
        constants::{MANAGED_BY_VALUE, annotation, label},
    },
    apply::object::{ObjectId, apply_order},
    bundle::{
        archive::digest,
        layout::{self, Bundle, ImageCatalog},
    },
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("component {component} needs Flux 2.7.0 or later; the selected version is v{version}")]
    ComponentUnsupported {
        component: Component,
        version: Version,
    },
    #[error(
        "the bundle's Flux v{version} has no manifest for {component} (flux/v{version}/{component}.yaml)"
    )]
    MissingManifest { component: String, version: Version },
    #[error("flux/v{version}/{file}.yaml: {reason}")]
    BadManifest {
        version: Version,
        file: String,
        reason: String,
    },
    #[error(transparent)]
    Catalog(#[from] layout::Error),
    #[error(transparent)]
    Template(#[from] templates::Error),
    #[error(transparent)]
    Patch(#[from] patches::Error),
    #[error("{feature} needs Flux {needs} or later; the selected version is v{version}")]
    FeatureUnsupported {
        feature: &'static str,
        needs: &'static str,
        version: Version,
    },
    #[error("spec.sync needs the {component} component, which spec.components leaves out")]
    SyncNeedsComponent { component: Component },
    #[error(
        "Flux v{version} serves no {kind} API (no CustomResourceDefinition for it in the release)"
    )]
    KindNotServed { kind: String, version: Version },
    #[error(
        "spec.sharding.shards: {0:?} is not a valid shard name (lowercase letters, digits and '-', at most 35 characters)"
    )]
    InvalidShard(String),
}

/// What a render produces.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// In apply order: namespace, quotas, CRDs, accounts, RBAC, services, workloads, policies.
    pub objects: Vec<Value>,
    /// `v<version>@sha256:<digest of the canonical objects>`.
    pub revision: String,
    /// The image of each installed controller.
    pub components: Vec<ComponentImage>,
}

/// Kinds that are not namespaced, among those Flux releases contain or fluxop generates.
const CLUSTER_SCOPED: [&str; 5] = [
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "PriorityClass",
];

/// The node label of the operating system; Flux's controllers run on `linux` nodes.
const NODE_OS_LABEL: &str = "kubernetes.io/os";

/// Controllers that apply source-watcher's ExternalArtifacts once their gate is on.
const EXTERNAL_ARTIFACT_CONSUMERS: [&str; 2] = ["kustomize-controller", "helm-controller"];

/// The namespace upstream manifests are written for.
const UPSTREAM_NAMESPACE: &str = "flux-system";

/// The image variant: the spec's, else derived from the registry.
pub fn variant(spec: &FluxInstanceSpec) -> Variant {
    spec.distribution.variant.unwrap_or_else(|| {
        if spec.distribution.registry.contains("controlplaneio-fluxcd") {
            Variant::EnterpriseDistroless
        } else {
            Variant::UpstreamAlpine
        }
    })
}

fn variant_name(variant: Variant) -> &'static str {
    match variant {
        Variant::UpstreamAlpine => "upstream-alpine",
        Variant::EnterpriseAlpine => "enterprise-alpine",
        Variant::EnterpriseDistroless => "enterprise-distroless",
        Variant::EnterpriseDistrolessFips => "enterprise-distroless-fips",
    }
}

fn parse_manifest(version: &Version, file: &str, text: &str) -> Result<Vec<Value>, Error> {
    let documents: Vec<Value> =
        serde_saphyr::from_str_multiple(text).map_err(|e| Error::BadManifest {
            version: version.clone(),
            file: file.to_string(),
            reason: e.to_string(),
        })?;
    let objects: Vec<Value> = documents.into_iter().filter(|d| !d.is_null()).collect();
    for object in &objects {
        if object["kind"].as_str().is_none() || object["metadata"]["name"].as_str().is_none() {
            return Err(Error::BadManifest {
                version: version.clone(),
                file: file.to_string(),
                reason: "a document has no kind or metadata.name".into(),
            });
        }
    }
    Ok(objects)
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

/// Rewrites `http://svc.<ns>.svc.<domain>./` style addresses for the instance's namespace and
/// cluster domain, keeping the service name, the scheme, the path and `$(RUNTIME_NAMESPACE)`.
/// notification-controller's event endpoint of an instance in `namespace`, where the Flux
/// controllers (`--events-addr`) and fluxop itself send events; `None` when the instance does
/// not install notification-controller.
pub fn events_address(spec: &FluxInstanceSpec, namespace: &str) -> Option<String> {
    spec.components()
        .contains(&Component::NotificationController)
        .then(|| {
            let domain = spec
                .cluster
                .as_ref()
                .map_or("cluster.local", Cluster::domain);
            service_address(EVENTS_ADDRESS, namespace, domain)
        })
}

/// The event endpoint as the Flux releases spell it; [`service_address`] puts in the
/// instance's namespace and domain.
const EVENTS_ADDRESS: &str = "http://notification-controller.flux-system.svc.cluster.local./";

fn service_address(value: &str, namespace: &str, domain: &str) -> String {
    let (scheme, rest) = value.split_once("://").map_or(("", value), |(s, r)| (s, r));
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, None), |(h, p)| (h, Some(p)));
    let Some((service_and_namespace, _old_domain)) = host.split_once(".svc.") else {
        return value.to_string();
    };
    let (service, old_namespace) = service_and_namespace
        .rsplit_once('.')
        .unwrap_or((service_and_namespace, ""));
    let namespace_part = if old_namespace == "$(RUNTIME_NAMESPACE)" {
        old_namespace
    } else {
        namespace
    };
    let mut out = String::new();
    if !scheme.is_empty() {
        out.push_str(scheme);
        out.push_str("://");
    }
    out.push_str(&format!("{service}.{namespace_part}.svc.{domain}."));
    if let Some(path) = path {
        out.push('/');
        out.push_str(path);
    }
    out
}

/// The lockdown flags each controller gets when `cluster.multitenant` is on.
fn multitenant_flags(component: &str, cluster: &Cluster) -> Vec<(&'static str, String)> {
    let account = cluster
        .tenant_default_service_account
        .clone()
        .filter(|s| !s.is_empty());
    let account = account.unwrap_or_else(|| "default".to_string());
    match component {
        "kustomize-controller" => vec![
            ("--no-cross-namespace-refs", "true".into()),
            ("--no-remote-bases", "true".into()),
            ("--default-service-account", account),
        ],
        "helm-controller" => {
            vec![
                ("--no-cross-namespace-refs", "true".into()),
                ("--default-service-account", account),
            ]
        }
        "notification-controller"
        | "image-reflector-controller"
        | "image-automation-controller" => {
            vec![("--no-cross-namespace-refs", "true".into())]
        }
        _ => Vec::new(),
    }
}

/// The image a controller runs: `<registry>/<component>:<tag>@<digest>` from the catalog, or
/// the release's own tag without a digest when the catalog has no entry.
fn component_image(
    component: &str,
    upstream_image: &str,
    registry: &str,
    catalog: Option<&ImageCatalog>,
) -> ComponentImage {
    let repository = format!("{}/{component}", registry.trim_end_matches('/'));
    let upstream_tag = upstream_image
        .rsplit_once(':')
        .map(|(_, tag)| tag.split('@').next().unwrap_or(tag));
    match catalog.and_then(|c| c.find(component)) {
        Some(entry) => ComponentImage {
            name: component.to_string(),
            repository,
            tag: entry.new_tag.clone(),
            digest: entry.digest.clone(),
        },
        None => ComponentImage {
            name: component.to_string(),
            repository,
            tag: upstream_tag.unwrap_or("latest").to_string(),
            digest: None,
        },
    }
}

fn image_reference(image: &ComponentImage) -> String {
    match &image.digest {
        Some(digest) => format!("{}:{}@{digest}", image.repository, image.tag),
        None => format!("{}:{}", image.repository, image.tag),
    }
}

fn merge_strings(target: &mut Value, entries: impl IntoIterator<Item = (String, String)>) {
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(map) = target.as_object_mut() {
        for (key, value) in entries {
            map.insert(key, Value::String(value));
        }
    }
}

/// Renders the objects of `spec` for Flux `version` of `bundle`, in `namespace`.
pub fn render(
    namespace: &str,
    spec: &FluxInstanceSpec,
    bundle: &Bundle,
    version: &Version,
) -> Result<Rendered, Error> {
    render_release(namespace, spec, &Release::parse(bundle, version)?)
}

/// One Flux release of a bundle, parsed once: rendering from it only clones and edits.
/// The operator keeps these per artifact digest, so a reconcile does not re-read YAML.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub version: Version,
    /// Objects of each manifest file, by file stem (`source-controller`, `rbac`, ...).
    manifests: BTreeMap<String, Vec<Value>>,
    /// Image catalogs by variant.
    catalogs: BTreeMap<String, ImageCatalog>,
    /// The bundle's own templates (`templates/<name>.yaml.hbs`).
    templates: BTreeMap<String, Vec<u8>>,
}

impl Release {
    pub fn parse(bundle: &Bundle, version: &Version) -> Result<Self, Error> {
        let mut manifests = BTreeMap::new();
        for (stem, text) in bundle.manifests(version) {
            let objects = parse_manifest(version, &stem, text)?;
            manifests.insert(stem, objects);
        }
        let mut catalogs = BTreeMap::new();
        for variant in bundle.variants(version) {
            if let Some(catalog) = bundle.image_catalog(version, &variant)? {
                catalogs.insert(variant, catalog);
            }
        }
        let templates = bundle
            .templates()
            .into_iter()
            .map(|(name, content)| (name.to_string(), content.to_vec()))
            .collect();
        Ok(Self {
            version: version.clone(),
            manifests,
            catalogs,
            templates,
        })
    }
}

/// Renders the objects of `spec` for a parsed Flux release, in `namespace`.
pub fn render_release(
    namespace: &str,
    spec: &FluxInstanceSpec,
    release: &Release,
) -> Result<Rendered, Error> {
    let version = &release.version;
    let mut components = spec.components();
    components.sort();
    components.dedup();
    if components.contains(&Component::SourceWatcher) && *version < Version::new(2, 7, 0) {
        return Err(Error::ComponentUnsupported {
            component: Component::SourceWatcher,
            version: version.clone(),
        });
    }
    let cluster = spec.cluster.clone().unwrap_or_default();
    profiles::check_gates(&cluster, version)?;
    let manifest = |file: &str| -> Result<Vec<Value>, Error> {
        release
            .manifests
            .get(file)
            .cloned()
            .ok_or_else(|| Error::MissingManifest {
                component: file.to_string(),
                version: version.clone(),
            })
    };

    let mut objects = Vec::new();
    for component in &components {
        objects.extend(manifest(component.name())?);
    }
    let mut release_rbac = manifest("rbac")?;
    rbac::name_for_namespace(&mut release_rbac, namespace);
    objects.extend(release_rbac);
    if components.contains(&Component::NotificationController) {
        operator_kinds::accept(&mut objects, namespace);
    }
    if cluster.network_policy() {
        objects.extend(manifest("policies")?);
    }
    let data = template_data(namespace, spec, &components, &objects, version)?;
    let bundle_templates: BTreeMap<&str, &[u8]> = release
        .templates
        .iter()
        .map(|(name, content)| (name.as_str(), content.as_slice()))
        .collect();
    objects.extend(templates::render(&bundle_templates, &data)?);

    let catalog = release.catalogs.get(variant_name(variant(spec)));
    let version_label = format!("v{version}");
    let standard_labels = [
        (label::MANAGED_BY, MANAGED_BY_VALUE),
        (label::PART_OF, "flux"),
        (label::INSTANCE, namespace),
        (label::VERSION, version_label.as_str()),
    ];
    let owner_labels = [
        (label::OWNER_NAME, crate::api::SINGLETON_NAME),
        (label::OWNER_NAMESPACE, namespace),
    ];
    let events_received = components.contains(&Component::NotificationController);
    let external_artifacts = components.contains(&Component::SourceWatcher);
    let flux_apply_opt_out = [
        (annotation::KUSTOMIZE_SSA, annotation::KUSTOMIZE_SSA_IGNORE),
        (
            annotation::KUSTOMIZE_PRUNE,
            annotation::KUSTOMIZE_PRUNE_DISABLED,
        ),
    ];
    let common = spec.common_metadata.clone();
    let mut images = Vec::new();

    for object in &mut objects {
        let kind = kind(object).to_string();
        if !CLUSTER_SCOPED.contains(&kind.as_str()) {
            object["metadata"]["namespace"] = json!(namespace);
        }
        if kind == "ClusterRoleBinding" || kind == "RoleBinding" {
            for subject in object["subjects"].as_array_mut().into_iter().flatten() {
                if subject["namespace"] == UPSTREAM_NAMESPACE {
                    subject["namespace"] = json!(namespace);
                }
            }
        }
        let metadata = &mut object["metadata"];
        merge_strings(
            &mut metadata["labels"],
            standard_labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        if let Some(common) = &common {
            merge_strings(
                &mut metadata["labels"],
                common.labels.clone().unwrap_or_default(),
            );
            if common.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
                merge_strings(
                    &mut metadata["annotations"],
                    common.annotations.clone().unwrap_or_default(),
                );
            }
        }
        // Owner labels after common metadata, which cannot override them (and again after
        // the patches, below).
        merge_strings(
            &mut metadata["labels"],
            owner_labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        // Flux's own apply skips these and never prunes them: a Kustomization that holds the
        // FluxInstance or still holds Flux's manifests (a `flux bootstrap` being migrated)
        // neither fights fluxop nor deletes Flux.
        merge_strings(
            &mut metadata["annotations"],
            flux_apply_opt_out
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );

        if kind == "Deployment" {
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let pod = &mut object["spec"]["template"]["spec"];
            // Flux's images are Linux images: keep the pods off other nodes, as `flux install`
            // does. Merged, so a user's JSON6902 `replace` of the whole selector finds it.
            merge_strings(
                &mut pod["nodeSelector"],
                [(NODE_OS_LABEL.to_string(), "linux".to_string())],
            );
            if let Some(secret) = spec
                .distribution
                .image_pull_secret
                .as_deref()
                .filter(|s| !s.is_empty())
            {
                pod["imagePullSecrets"] = json!([{ "name": secret }]);
            }
            if name == Component::SourceController.name() && spec.storage.is_some() {
                // Artifacts survive restarts on the claim the storage template creates.
                for volume in pod["volumes"].as_array_mut().into_iter().flatten() {
                    if volume["name"] == "data" {
                        *volume = json!({ "name": "data", "persistentVolumeClaim": { "claimName": "source-controller" } });
                    }
                }
            }
            for container in pod["containers"].as_array_mut().into_iter().flatten() {
                let upstream = container["image"].as_str().unwrap_or_default().to_string();
                if upstream.contains(&format!("/{name}:"))
                    || upstream.starts_with(&format!("{name}:"))
                {
                    let image =
                        component_image(&name, &upstream, &spec.distribution.registry, catalog);
                    container["image"] = json!(image_reference(&image));
                    images.push(image);
                }
                args::edit_container(container, |list| {
                    // Without notification-controller nobody receives events: each one
                    // would stall its controller for retries against a name that does not
                    // resolve (about 15 s per event).
                    if !events_received {
                        args::remove(list, "--events-addr");
                    }
                    for flag in ["--events-addr", "--storage-adv-addr"] {
                        if let Some(Some(value)) = args::get(list, flag) {
                            let rewritten = service_address(value, namespace, cluster.domain());
                            args::set(list, flag, &rewritten);
                        }
                    }
                    if cluster.multitenant.unwrap_or(false) {
                        for (flag, value) in multitenant_flags(&name, &cluster) {
                            args::set(list, flag, &value);
                        }
                    }
                    // source-watcher's ExternalArtifacts are applied only by controllers with
                    // the gate on.
                    if external_artifacts && EXTERNAL_ARTIFACT_CONSUMERS.contains(&name.as_str()) {
                        args::set_feature_gate(list, "ExternalArtifact", true);
                    }
                });
            }
        }
    }

    profiles::apply(&mut objects, &cluster, version);
    if let Some(sharding) = spec.sharding.as_ref().filter(|s| !s.shards.is_empty()) {
        sharding::apply(&mut objects, sharding, namespace, cluster.domain(), version)?;
    }
    // The user's patches come last, so they can change anything fluxop rendered...
    if let Some(patches) = spec.kustomize.as_ref().and_then(|k| k.patches.as_ref()) {
        patches::apply(&mut objects, patches)?;
    }
    // ...but ownership: prune, adoption and uninstall find fluxop's objects by these labels,
    // so neither common metadata nor a patch can remove or change them.
    for object in &mut objects {
        merge_strings(
            &mut object["metadata"]["labels"],
            owner_labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        // A patch that appends its own `--feature-gates` joins fluxop's flag: one flag, the
        // user's gates kept (and winning), as the controller would read the two.
        if kind(object) == "Deployment" {
            for container in object["spec"]["template"]["spec"]["containers"]
                .as_array_mut()
                .into_iter()
                .flatten()
            {
                if container.get("args").is_some() {
                    args::edit_container(container, args::merge_feature_gates);
                }
            }
        }
    }

    // In apply order (the applier's rule), so that the revision digest is canonical; an
    // object without kind or name goes last, for the applier to name it.
    let mut keyed: Vec<(Option<ObjectId>, Value)> = objects
        .into_iter()
        .map(|o| (ObjectId::of(&o).map(|(id, _)| id), o))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| match (a, b) {
        (Some(a), Some(b)) => apply_order(a, b),
        _ => a.is_none().cmp(&b.is_none()),
    });
    let objects: Vec<Value> = keyed.into_iter().map(|(_, o)| o).collect();
    images.sort_by_key(|i| Component::ALL.iter().position(|c| c.name() == i.name));
    // serde_json maps are ordered by key, so this serialization is canonical.
    let canonical = serde_json::to_vec(&objects).unwrap_or_default();
    let revision = format!("v{version}@{}", digest(&canonical));
    Ok(Rendered {
        objects,
        revision,
        components: images,
    })
}

/// `group/version` of the storage version of `kind` in `group`, from the release's CRDs.
fn served_api_version(objects: &[Value], group: &str, kind: &str) -> Option<String> {
    objects
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .find_map(|crd| {
            let spec = &crd["spec"];
            if spec["group"] != group || spec["names"]["kind"] != kind {
                return None;
            }
            let versions = spec["versions"].as_array()?;
            let storage = versions.iter().find(|v| v["storage"] == true)?;
            Some(format!("{group}/{}", storage["name"].as_str()?))
        })
}

/// What the templates see: the namespace, the storage claim and the sync, with the API
/// versions this Flux release serves.
fn template_data(
    namespace: &str,
    spec: &FluxInstanceSpec,
    components: &[Component],
    objects: &[Value],
    version: &Version,
) -> Result<Value, Error> {
    let sync = match &spec.sync {
        None => Value::Null,
        Some(sync) => {
            for component in [Component::SourceController, Component::KustomizeController] {
                if !components.contains(&component) {
                    return Err(Error::SyncNeedsComponent { component });
                }
            }
            let kind = match sync.kind {
                crate::api::SyncKind::GitRepository => "GitRepository",
                crate::api::SyncKind::OCIRepository => "OCIRepository",
                crate::api::SyncKind::Bucket => "Bucket",
            };
            let served = |group: &str, kind: &str| {
                served_api_version(objects, group, kind).ok_or_else(|| Error::KindNotServed {
                    kind: kind.to_string(),
                    version: version.clone(),
                })
            };
            json!({
                "name": sync.name_or(namespace),
                "kind": kind,
                "sourceApiVersion": served("source.toolkit.fluxcd.io", kind)?,
                "kustomizationApiVersion": served("kustomize.toolkit.fluxcd.io", "Kustomization")?,
                "url": sync.url,
                "ref": sync.ref_,
                "path": sync.path,
                "interval": sync.interval(),
                "pullSecret": sync.pull_secret.as_deref().filter(|s| !s.is_empty()),
                "provider": sync.provider,
            })
        }
    };
    Ok(json!({
        "namespace": namespace,
        "version": format!("v{version}"),
        "storage": spec.storage.as_ref().map(|s| json!({ "class": s.class, "size": s.size })),
        "multitenant": spec.cluster.as_ref().and_then(|c| c.multitenant).unwrap_or(false),
        "sync": sync,
    }))
}

/// Objects by identity (`<namespace>_<name>_<group>_<kind>`, the inventory's form).
pub fn identities(objects: &[Value]) -> BTreeMap<String, &Value> {
    objects
        .iter()
        .map(|o| {
            let group = o["apiVersion"]
                .as_str()
                .and_then(|v| v.rsplit_once('/'))
                .map_or("", |(g, _)| g);
            let id = format!(
                "{}_{}_{}_{}",
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default(),
                group,
                kind(o)
            );
            (id, o)
        })
        .collect()
}

#[cfg(test)]
mod tests;
