//! Shared fixtures of the unit tests.

use crate::bundle::{archive, layout::Bundle};

/// The bundle `hack/vendor-flux.sh` assembles in `manifests-bundle/` from the four real Flux
/// releases (test data, not checked in).
pub fn vendored_bundle() -> Bundle {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests-bundle");
    assert!(
        dir.join("flux").is_dir(),
        "{}/flux is missing: run hack/vendor-flux.sh (hack/test.sh does) to vendor the Flux releases",
        dir.display()
    );
    Bundle::from_files(archive::read_dir(&dir).expect("read manifests-bundle"))
        .expect("valid bundle")
}

pub mod scripted_api;
