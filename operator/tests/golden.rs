//! Golden files: every spec in `testdata/golden/specs/` rendered with each Flux release of the
//! vendored bundle, compared with `testdata/golden/<spec>/v<version>.yaml`. A render change
//! shows up as a reviewable diff of those files. CRDs are recorded as their name, served
//! versions and a digest of the whole object (the upstream schemas are not copied into the
//! repository); every other object in full.
//!
//! `FLUXOP_UPDATE_GOLDEN=1 cargo test -p fluxop --test golden` rewrites the files.

use std::path::{Path, PathBuf};

use fluxop::{
    api::FluxInstanceSpec,
    bundle::{archive, layout::Bundle},
    render::render,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/golden")
}

/// What a golden file records of one object.
fn golden_view(object: &Value) -> Value {
    if object["kind"] != "CustomResourceDefinition" {
        return object.clone();
    }
    let canonical = serde_json::to_vec(object).unwrap_or_default();
    let versions: Vec<String> = object["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let name = v["name"].as_str().unwrap_or_default();
            if v["storage"] == true {
                format!("{name} (storage)")
            } else {
                name.to_string()
            }
        })
        .collect();
    json!({
        "apiVersion": object["apiVersion"],
        "kind": "CustomResourceDefinition",
        "metadata": { "name": object["metadata"]["name"], "labels": object["metadata"]["labels"] },
        "golden": {
            "servedVersions": versions,
            "sha256": hex::encode(Sha256::digest(&canonical)),
        },
    })
}

fn render_golden(spec: &FluxInstanceSpec, bundle: &Bundle, version: &semver::Version) -> String {
    match render("flux-system", spec, bundle, version) {
        Err(error) => format!("# render error: {error}\n"),
        Ok(rendered) => {
            let documents: Vec<String> = rendered
                .objects
                .iter()
                .map(|o| fluxop::yaml::to_string(&golden_view(o)).expect("yaml"))
                .collect();
            format!(
                "# revision: {}\n---\n{}",
                rendered.revision,
                documents.join("---\n")
            )
        }
    }
}

#[test]
fn every_golden_spec_renders_to_its_checked_in_output_for_every_release() {
    let update = std::env::var_os("FLUXOP_UPDATE_GOLDEN").is_some();
    let bundle_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests-bundle");
    let files = archive::read_dir(&bundle_dir).expect("hack/vendor-flux.sh has run");
    let bundle = Bundle::from_files(files).expect("bundle");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(golden_dir().join("specs"))
        .expect("specs")
        .map(|e| e.expect("entry").path())
        .collect();
    specs.sort();
    assert!(specs.len() >= 12, "golden specs missing");
    let mut stale = Vec::new();
    for path in specs {
        let name = path.file_stem().and_then(|s| s.to_str()).expect("name");
        let text = std::fs::read_to_string(&path).expect("spec");
        let spec: FluxInstanceSpec =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        for version in bundle.versions() {
            let actual = render_golden(&spec, &bundle, &version);
            let file = golden_dir().join(name).join(format!("v{version}.yaml"));
            if update {
                std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
                std::fs::write(&file, &actual).expect("write golden");
                continue;
            }
            let expected = std::fs::read_to_string(&file).unwrap_or_default();
            if expected != actual {
                stale.push(file.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "rendered output differs from the golden files (review, then rerun with \
         FLUXOP_UPDATE_GOLDEN=1):\n{}",
        stale.join("\n")
    );
}
