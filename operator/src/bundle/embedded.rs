//! The bundle compiled into the binary from `manifests-bundle/`: the default when a
//! `FluxInstance` names no artifact, and what air-gapped clusters start from.

use std::sync::OnceLock;

use super::{
    archive::{self, Files},
    layout::{self, Bundle},
};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/embedded_bundle.rs"));
}

/// The embedded bundle and its digest (the digest its layer would have if pushed), or `None`
/// when this build was made without vendored Flux releases. Built once per process.
pub fn bundle() -> Option<&'static Result<(String, Bundle), layout::Error>> {
    static EMBEDDED: OnceLock<Option<Result<(String, Bundle), layout::Error>>> = OnceLock::new();
    EMBEDDED.get_or_init(load).as_ref()
}

fn load() -> Option<Result<(String, Bundle), layout::Error>> {
    if generated::FILES.is_empty() {
        return None;
    }
    let files: Files = generated::FILES
        .iter()
        .map(|(path, content)| (path.to_string(), content.to_vec()))
        .collect();
    let digest = archive::digest(&archive::pack(&files));
    Some(Bundle::from_files(files).map(|bundle| (digest, bundle)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_bundle_carries_the_vendored_releases() {
        let (digest, bundle) = super::bundle()
            .expect("built without vendored releases: run hack/vendor-flux.sh (hack/test.sh does)")
            .as_ref()
            .expect("embedded bundle is valid");
        assert!(digest.starts_with("sha256:"));
        assert_eq!(bundle.versions().len(), 4);
    }
}
