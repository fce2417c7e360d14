//! `fluxop artifact push`: publish a directory of manifests as a Flux OCI artifact, the
//! source of a Gitless sync (`spec.sync.kind: OCIRepository`), signed with the same cosign
//! keys as bundles so that Flux's own `spec.verify` checks it.

use std::{collections::BTreeMap, path::PathBuf};

use clap::{Args, Subcommand};

use super::{
    Error,
    bundle::{RegistryArgs, cosign_password, parse_reference, progress, read},
};
use crate::bundle::{archive, signature};

/// The annotations Flux reads to show where an artifact came from (`flux push artifact`
/// sets the same ones): source-controller reports the revision in the OCIRepository's status.
const SOURCE_ANNOTATION: &str = "org.opencontainers.image.source";
const REVISION_ANNOTATION: &str = "org.opencontainers.image.revision";
const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";

#[derive(Debug, Subcommand)]
pub enum ArtifactCommand {
    /// Pack a directory (dotfiles such as .git left out) into a Flux OCI artifact and push
    /// it; prints the reference pinned to the pushed digest. The same files always give the
    /// same digest unless --created is given.
    Push(PushArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The directory whose files the artifact holds.
    pub dir: PathBuf,
    /// Where to push: oci://<registry>/<repository>:<tag>.
    pub reference: String,
    /// Where the files come from (`org.opencontainers.image.source`), e.g. a Git URL.
    #[arg(long)]
    pub source: Option<String>,
    /// The revision of the files (`org.opencontainers.image.revision`), e.g. `main@sha1:<commit>`.
    #[arg(long)]
    pub revision: Option<String>,
    /// The creation time to record (`org.opencontainers.image.created`, RFC 3339).
    #[arg(long)]
    pub created: Option<String>,
    /// Sign the pushed digest with this cosign private key (password from COSIGN_PASSWORD).
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

pub async fn execute(command: ArtifactCommand) -> Result<(), Error> {
    match command {
        ArtifactCommand::Push(args) => push(args).await,
    }
}

async fn push(args: PushArgs) -> Result<(), Error> {
    let target = parse_reference(&args.reference)?;
    let files = archive::read_dir(&args.dir).map_err(|source| Error::BundleArchive {
        dir: args.dir.clone(),
        source,
    })?;
    if files.is_empty() {
        return Err(Error::Manifest {
            path: args.dir.clone(),
            reason: "holds no files to publish".into(),
        });
    }
    // Read the key before pushing: a missing key must not leave an unsigned tag behind.
    let key = args.sign_key.as_ref().map(read).transpose()?;
    let layer = archive::pack(&files);
    let annotations: BTreeMap<String, String> = [
        (SOURCE_ANNOTATION, &args.source),
        (REVISION_ANNOTATION, &args.revision),
        (CREATED_ANNOTATION, &args.created),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_string(), value.clone()?)))
    .collect();
    let registry = args.registry.registry(&target)?;
    progress(format_args!(
        "pushing {} files ({} KiB) from {} to {target}",
        files.len(),
        layer.len().div_ceil(1024),
        args.dir.display()
    ));
    let digest = registry.push(&target, &layer, annotations).await?;
    let pinned = target.with_digest(&digest);
    progress(format_args!("pushed {digest}"));
    if let Some(key) = key {
        let key = zeroize::Zeroizing::new(key);
        let tag = signature::sign(&registry, &pinned, &key, &cosign_password()).await?;
        progress(format_args!("signed: {tag}"));
    }
    println!("{pinned}");
    Ok(())
}
