//! `fluxop build rset`: what a ResourceSet renders to, offline, with its inputs from the
//! manifest, from a file of inputs or from Static providers in a file (the incumbent's
//! `build resourceset` flags, so its users' scripts keep working).

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Args;
use serde_json::Value as Json;

use super::{Error, OutputFormat, print_structured};
use crate::{
    api::{self, resourceset::ResourceSet, resourceset::ResourceSetInputProvider},
    resourceset::{self, inputs::InputSet},
    template::goyaml,
};

#[derive(Debug, Args)]
pub struct BuildRsetArgs {
    /// The ResourceSet manifest (`-` for stdin).
    #[arg(short, long = "filename", visible_alias = "file")]
    pub file: PathBuf,
    /// A YAML list of input sets that stands in for `spec.inputs` and the providers.
    #[arg(short, long)]
    pub inputs_from: Option<PathBuf>,
    /// A file of ResourceSetInputProvider manifests of type Static: the providers
    /// `spec.inputsFrom` picks from.
    #[arg(long)]
    pub inputs_from_provider: Option<PathBuf>,
    /// Namespace when the manifest names none.
    #[arg(short, long, default_value = api::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "yaml")]
    pub output: OutputFormat,
}

fn read(path: &Path) -> Result<String, Error> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })?;
        return Ok(text);
    }
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn usage(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Manifest {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

pub(super) fn build(args: BuildRsetArgs) -> Result<ExitCode, Error> {
    // Read as the incumbent reads it (YAML 1.1: `on: yes` is `true: true`).
    let mut manifest = goyaml::from_yaml(&read(&args.file)?)
        .map_err(|e| usage(&args.file, format!("error parsing ResourceSet: {e}")))?;
    if manifest["kind"]
        .as_str()
        .is_some_and(|k| k != resourceset::RESOURCESET_KIND)
    {
        return Err(usage(
            &args.file,
            format!(
                "is a {}, not a ResourceSet",
                manifest["kind"].as_str().unwrap_or_default()
            ),
        ));
    }
    if manifest["metadata"]["namespace"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        manifest["metadata"]["namespace"] = Json::String(args.namespace.clone());
    }
    let rset: ResourceSet = serde_json::from_value(manifest.clone())
        .map_err(|e| usage(&args.file, format!("error parsing ResourceSet: {e}")))?;
    let name = rset.metadata.name.clone().unwrap_or_default();
    let namespace = rset.metadata.namespace.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(usage(
            &args.file,
            "ResourceSet name must be set in the manifest",
        ));
    }
    let references = rset.spec.inputs_from.clone().unwrap_or_default();
    if !references.is_empty() && args.inputs_from.is_none() && args.inputs_from_provider.is_none() {
        return Err(Error::Usage(
            "the ResourceSet has spec.inputsFrom: give its inputs with --inputs-from or --inputs-from-provider".into(),
        ));
    }
    if let Some(path) = &args.inputs_from {
        let sets = goyaml::from_yaml(&read(path)?)
            .map_err(|e| usage(path, format!("error parsing inputs file: {e}")))?;
        if !sets.is_array() {
            return Err(usage(
                path,
                "error parsing inputs file: not a list of input sets",
            ));
        }
        manifest["spec"]["inputs"] = sets;
    }
    let mut providers = Vec::new();
    if let Some(path) = &args.inputs_from_provider {
        for doc in goyaml::from_yaml_documents(&read(path)?)
            .map_err(|e| usage(path, format!("error parsing inputs provider file: {e}")))?
        {
            let mut doc = doc;
            if doc["metadata"]["namespace"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                doc["metadata"]["namespace"] = Json::String(namespace.clone());
            }
            let provider: ResourceSetInputProvider = serde_json::from_value(doc)
                .map_err(|e| usage(path, format!("error parsing inputs provider file: {e}")))?;
            let provider_ns = provider.metadata.namespace.clone().unwrap_or_default();
            if provider_ns != namespace {
                continue;
            }
            let provider_name = provider.metadata.name.clone().unwrap_or_default();
            if provider_name.is_empty() {
                return Err(usage(
                    path,
                    "ResourceSetInputProvider name must be set in the manifest",
                ));
            }
            if provider.spec.type_ != api::resourceset::InputProviderType::Static {
                return Err(usage(
                    path,
                    format!(
                        "{provider_name}: unsupported provider type '{}', only 'Static' is supported offline",
                        provider.spec.type_
                    ),
                ));
            }
            // Offline, a Static provider has no uid: its id is that of its name.
            let mut exported: InputSet = provider
                .spec
                .default_values
                .as_ref()
                .map(|v| {
                    serde_json::to_value(v)
                        .ok()
                        .and_then(|j| j.as_object().cloned())
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            exported.insert(
                "id".into(),
                Json::String(resourceset::inputs::id(&provider_name)),
            );
            let labels = provider.metadata.labels.clone().unwrap_or_default();
            providers.push((provider_name, provider_ns, labels, exported));
        }
    }
    let mut sources = Vec::new();
    for reference in &references {
        for (provider_name, provider_ns, labels, exported) in &providers {
            let picked = match (&reference.name, &reference.selector) {
                (Some(wanted), _) => wanted == provider_name,
                (None, Some(selector)) => resourceset::selector_matches(selector, labels)
                    .map_err(|e| usage(&args.file, e))?,
                (None, None) => false,
            };
            if picked {
                sources.push(resourceset::provider_source(
                    provider_name,
                    provider_ns,
                    std::slice::from_ref(exported),
                ));
            }
        }
    }
    let steps = resourceset::render(&manifest, &sources)
        .map_err(|e| Error::Build(e.to_string()))?
        .steps;
    if steps.iter().all(|s| s.objects.is_empty()) {
        return Err(Error::Build("no objects were generated".into()));
    }
    match args.output {
        OutputFormat::Json => {
            let objects: Vec<&Json> = steps.iter().flat_map(|s| &s.objects).collect();
            print_structured(&objects, OutputFormat::Json)?;
        }
        _ => {
            let mut out = String::new();
            for step in &steps {
                if !step.name.is_empty() && !step.objects.is_empty() {
                    out.push_str(&format!("# step: {}\n", step.name));
                }
                for object in &step.objects {
                    out.push_str("---\n");
                    out.push_str(&goyaml::to_yaml(object));
                }
            }
            print!("{out}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
