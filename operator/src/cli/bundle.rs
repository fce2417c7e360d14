//! `fluxop bundle ...`: build, push, sign, verify, pull and list Flux bundles.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{Args, Subcommand};
use serde::Serialize;
use zeroize::Zeroizing;

use super::{Error, OutputFormat, print_structured};
use crate::bundle::{
    FLUX_VERSIONS_ANNOTATION,
    archive::{self, Limits},
    layout::Bundle,
    reference::ArtifactRef,
    registry::{Credentials, Registry, RegistryConfig},
    signature,
};

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Pack a bundle directory (flux/<version>/, flux-images/<version>/, templates/) into the
    /// artifact's layer, deterministically: the same files always give the same digest.
    Build(BuildArgs),
    /// Build a bundle directory and push it as a Flux OCI artifact; prints the pinned reference.
    Push(PushArgs),
    /// Push a FluxInstance manifest as an instance artifact, for `fluxop run --instance-from`
    /// (sign it with `bundle sign` like a bundle).
    PushInstance(PushInstanceArgs),
    /// Sign a pushed bundle with a cosign key (password from COSIGN_PASSWORD).
    Sign(SignArgs),
    /// Verify a bundle's cosign signature with a public key; exits 1 when it does not verify.
    Verify(VerifyArgs),
    /// Pull a bundle into a directory, verifying its signature first when --key is given.
    Pull(PullArgs),
    /// List a repository's tags with the digest and Flux versions of each.
    List(ListArgs),
    /// Generate a cosign-compatible key pair (password from COSIGN_PASSWORD, may be empty).
    Keygen(KeygenArgs),
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The bundle directory, e.g. manifests-bundle/ after hack/vendor-flux.sh.
    pub dir: PathBuf,
    /// Where to write the layer (a gzip'd tar).
    #[arg(short, long, default_value = "bundle.tar.gz")]
    pub output: PathBuf,
}

/// `Debug` shows whether a password or token is set, never its value.
#[derive(Args)]
pub struct RegistryArgs {
    /// Speak plain HTTP to the registry of the reference (for a registry on loopback or in a lab).
    #[arg(long)]
    pub insecure: bool,
    /// PEM file of CA certificates to trust in addition to the system's (repeatable).
    #[arg(long = "ca-file")]
    pub ca_files: Vec<PathBuf>,
    /// Registry user name for basic auth.
    #[arg(long, env = "FLUXOP_REGISTRY_USERNAME")]
    pub username: Option<String>,
    /// Registry password for basic auth.
    #[arg(long, env = "FLUXOP_REGISTRY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Registry bearer token (instead of user name and password).
    #[arg(
        long,
        env = "FLUXOP_REGISTRY_TOKEN",
        hide_env_values = true,
        conflicts_with = "username"
    )]
    pub token: Option<String>,
    /// Timeout of every registry request, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

impl std::fmt::Debug for RegistryArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |value: &Option<String>| value.as_ref().map(|_| "<redacted>");
        f.debug_struct("RegistryArgs")
            .field("insecure", &self.insecure)
            .field("ca_files", &self.ca_files)
            .field("username", &self.username)
            .field("password", &secret(&self.password))
            .field("token", &secret(&self.token))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RegistryArgs {
    fn config(&self, artifact: &ArtifactRef) -> Result<RegistryConfig, Error> {
        let mut ca_pem = Vec::new();
        for path in &self.ca_files {
            ca_pem.push(std::fs::read(path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?);
        }
        Ok(RegistryConfig {
            insecure: if self.insecure {
                vec![artifact.registry.clone()]
            } else {
                Vec::new()
            },
            ca_pem,
            timeout: Duration::from_secs(self.timeout),
            ..RegistryConfig::default()
        })
    }

    /// A client for the registry of `artifact`, with these flags' settings and credentials.
    pub(super) fn registry(&self, artifact: &ArtifactRef) -> Result<Registry, Error> {
        Ok(Registry::new(self.config(artifact)?, self.credentials()))
    }

    fn credentials(&self) -> Credentials {
        match (&self.token, &self.username) {
            (Some(token), _) => Credentials::Bearer(token.clone()),
            (None, Some(username)) => Credentials::Basic {
                username: username.clone(),
                password: self.password.clone().unwrap_or_default(),
            },
            (None, None) => Credentials::Anonymous,
        }
    }
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The bundle directory.
    pub dir: PathBuf,
    /// Where to push: oci://<registry>/<repository>:<tag>.
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct PushInstanceArgs {
    /// The FluxInstance manifest (named `flux`).
    pub file: PathBuf,
    /// Where to push: oci://<registry>/<repository>:<tag>.
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// Private key (cosign.key) to sign with.
    #[arg(long)]
    pub key: PathBuf,
    /// The bundle: oci://...@sha256:<digest> (a tag is resolved to its digest first).
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Public key (cosign.pub) the signature must verify with.
    #[arg(long)]
    pub key: PathBuf,
    /// The bundle: oci://...:<tag> or oci://...@sha256:<digest>.
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The bundle: oci://...:<tag> or oci://...@sha256:<digest>.
    pub reference: String,
    /// Directory to unpack into.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Verify the signature with this public key before anything is unpacked.
    #[arg(long)]
    pub key: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The repository: oci://<registry>/<repository>.
    pub reference: String,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Path prefix of the key files: <prefix>.key and <prefix>.pub.
    #[arg(long, default_value = "cosign")]
    pub output_key_prefix: String,
}

pub(super) fn parse_reference(text: &str) -> Result<ArtifactRef, Error> {
    ArtifactRef::parse(text).map_err(Error::Reference)
}

pub(super) fn read(path: &PathBuf) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.clone(),
        source,
    })
}

/// Progress for people: on stderr, so stdout stays the result scripts read.
pub(super) fn progress(message: std::fmt::Arguments<'_>) {
    eprintln!("► {message}");
}

pub(super) fn cosign_password() -> Zeroizing<Vec<u8>> {
    Zeroizing::new(
        std::env::var("COSIGN_PASSWORD")
            .unwrap_or_default()
            .into_bytes(),
    )
}

fn read_bundle(dir: &Path) -> Result<Bundle, Error> {
    let files = archive::read_dir(dir).map_err(|source| Error::BundleArchive {
        dir: dir.to_path_buf(),
        source,
    })?;
    Bundle::from_files(files).map_err(|source| Error::BundleLayout {
        dir: dir.to_path_buf(),
        source,
    })
}

fn versions_text(bundle: &Bundle) -> String {
    bundle
        .versions()
        .iter()
        .map(|v| format!("v{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The artifact pinned to the digest its tag points at now.
pub(super) async fn pinned(
    registry: &Registry,
    artifact: ArtifactRef,
) -> Result<ArtifactRef, Error> {
    if artifact.digest.is_some() {
        return Ok(artifact);
    }
    progress(format_args!("resolving {artifact}"));
    let digest = registry.resolve(&artifact).await?;
    Ok(artifact.with_digest(&digest))
}

pub async fn execute(command: BundleCommand) -> Result<(), Error> {
    match command {
        BundleCommand::Build(args) => {
            let bundle = read_bundle(&args.dir)?;
            let layer = archive::pack(bundle.files());
            std::fs::write(&args.output, &layer).map_err(|source| Error::Write {
                path: args.output.clone(),
                source,
            })?;
            println!(
                "wrote {} ({} files, {} bytes)",
                args.output.display(),
                bundle.files().len(),
                layer.len()
            );
            println!("digest: {}", archive::digest(&layer));
            println!(
                "flux versions: {}",
                versions_text(&bundle).replace(',', ", ")
            );
        }
        BundleCommand::Push(args) => {
            let target = parse_reference(&args.reference)?;
            let bundle = read_bundle(&args.dir)?;
            let layer = archive::pack(bundle.files());
            let registry = args.registry.registry(&target)?;
            progress(format_args!(
                "pushing {} files ({} KiB) with Flux {} to {target}",
                bundle.files().len(),
                layer.len().div_ceil(1024),
                versions_text(&bundle)
            ));
            let annotations =
                BTreeMap::from([(FLUX_VERSIONS_ANNOTATION.to_string(), versions_text(&bundle))]);
            let digest = registry.push(&target, &layer, annotations).await?;
            progress(format_args!("pushed {digest}"));
            println!("{}", target.with_digest(&digest));
        }
        BundleCommand::PushInstance(args) => {
            use crate::controller::fleet;
            let target = parse_reference(&args.reference)?;
            let manifest = read(&args.file)?;
            let files = fleet::artifact_files(&manifest);
            // Refuse what members would refuse, before publishing it.
            fleet::instance_from(&files, &args.file.display().to_string(), "check").map_err(
                |e| Error::Manifest {
                    path: args.file.clone(),
                    reason: e.to_string(),
                },
            )?;
            let registry = args.registry.registry(&target)?;
            let digest = registry
                .push(&target, &archive::pack(&files), BTreeMap::new())
                .await?;
            progress(format_args!("pushed the instance {digest}"));
            println!("{}", target.with_digest(&digest));
        }
        BundleCommand::Sign(args) => {
            let artifact = parse_reference(&args.reference)?;
            let registry = args.registry.registry(&artifact)?;
            let artifact = pinned(&registry, artifact).await?;
            let key = Zeroizing::new(read(&args.key)?);
            progress(format_args!("signing {artifact}"));
            let tag = signature::sign(&registry, &artifact, &key, &cosign_password()).await?;
            progress(format_args!("pushed the signature to {tag}"));
        }
        BundleCommand::Verify(args) => {
            let artifact = parse_reference(&args.reference)?;
            let registry = args.registry.registry(&artifact)?;
            let artifact = pinned(&registry, artifact).await?;
            signature::verify(&registry, &artifact, &read(&args.key)?).await?;
            println!("verified: {artifact} is signed by {}", args.key.display());
        }
        BundleCommand::Pull(args) => {
            let artifact = parse_reference(&args.reference)?;
            let registry = args.registry.registry(&artifact)?;
            let artifact = pinned(&registry, artifact).await?;
            if let Some(key) = &args.key {
                progress(format_args!("verifying the signature of {artifact}"));
                signature::verify(&registry, &artifact, &read(key)?).await?;
            }
            progress(format_args!("pulling {artifact}"));
            let pulled = registry.pull(&artifact).await?;
            let files = archive::unpack(&pulled.layer, &Limits::default()).map_err(|source| {
                Error::BundleArchive {
                    dir: args.output.clone(),
                    source,
                }
            })?;
            let bundle = Bundle::from_files(files).map_err(|source| Error::BundleLayout {
                dir: args.output.clone(),
                source,
            })?;
            archive::write_dir(&args.output, bundle.files()).map_err(|source| {
                Error::BundleArchive {
                    dir: args.output.clone(),
                    source,
                }
            })?;
            progress(format_args!(
                "unpacked {} files into {}",
                bundle.files().len(),
                args.output.display()
            ));
            println!("{artifact}");
        }
        BundleCommand::List(args) => list(args).await?,
        BundleCommand::Keygen(args) => {
            let pair = signature::generate_key_pair(&cosign_password())?;
            let private = PathBuf::from(format!("{}.key", args.output_key_prefix));
            let public = PathBuf::from(format!("{}.pub", args.output_key_prefix));
            if private.exists() {
                return Err(Error::Exists { path: private });
            }
            write_private(&private, pair.private_pem.as_bytes())?;
            std::fs::write(&public, &pair.public_pem).map_err(|source| Error::Write {
                path: public.clone(),
                source,
            })?;
            println!("Private key written to {}", private.display());
            println!("Public key written to {}", public.display());
        }
    }
    Ok(())
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, content: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let write_error = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    options
        .open(path)
        .and_then(|mut f| f.write_all(content))
        .map_err(write_error)
}

#[derive(Debug, Serialize)]
struct TagRow {
    tag: String,
    digest: String,
    signed: bool,
    #[serde(rename = "fluxVersions")]
    flux_versions: Vec<String>,
}

async fn list(args: ListArgs) -> Result<(), Error> {
    let repository = parse_reference(&args.reference)?;
    let registry = args.registry.registry(&repository)?;
    let tags = registry.list_tags(&repository).await?;
    // cosign's signature tags (sha256-<hex>.sig) mark their digest as signed.
    let signed: Vec<&str> = tags
        .iter()
        .filter_map(|t| t.strip_prefix("sha256-")?.strip_suffix(".sig"))
        .collect();
    let mut rows = Vec::new();
    for tag in tags
        .iter()
        .filter(|t| !(t.starts_with("sha256-") && t.ends_with(".sig")))
    {
        let artifact = ArtifactRef {
            tag: Some(tag.clone()),
            digest: None,
            ..repository.repository_ref()
        };
        let (digest, annotations) = registry.annotations(&artifact).await?;
        let flux_versions = annotations
            .get(FLUX_VERSIONS_ANNOTATION)
            .map(|v| {
                v.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let signed = signed.contains(&digest.trim_start_matches("sha256:"));
        rows.push(TagRow {
            tag: tag.clone(),
            digest,
            signed,
            flux_versions,
        });
    }
    match args.output {
        OutputFormat::Table => {
            let width = rows.iter().map(|r| r.tag.len()).max().unwrap_or(3).max(3);
            println!(
                "{:width$}  {:71}  {:6}  FLUX VERSIONS",
                "TAG", "DIGEST", "SIGNED"
            );
            for row in &rows {
                let signed = if row.signed { "yes" } else { "no" };
                println!(
                    "{:width$}  {:71}  {:6}  {}",
                    row.tag,
                    row.digest,
                    signed,
                    row.flux_versions.join(", ")
                );
            }
        }
        format => print_structured(&rows, format)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_password_or_token() {
        let args = RegistryArgs {
            insecure: false,
            ca_files: Vec::new(),
            username: Some("robot".into()),
            password: Some("hunter2".into()),
            token: Some("t0ken".into()),
            timeout: 60,
        };
        let shown = format!("{args:?}");
        assert!(
            shown.contains("robot") && shown.contains("<redacted>"),
            "{shown}"
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("t0ken"),
            "{shown}"
        );
    }
}
