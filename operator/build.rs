//! Embeds `manifests-bundle/` (when `hack/vendor-flux.sh` has filled it) as the default bundle:
//! generates a list of `include_bytes!` so the files stay byte-exact and the archive format
//! stays defined in one place (`bundle::archive`).

use std::{
    env, fs,
    path::{Path, PathBuf},
};

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let relative = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((relative, path));
        }
    }
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let bundle_dir = manifest_dir.join("../manifests-bundle");
    println!("cargo:rerun-if-changed={}", bundle_dir.display());
    let mut files = Vec::new();
    // Only the release and catalog trees: the README describes the directory, it is not content.
    for sub in ["flux", "flux-images", "templates"] {
        collect(&bundle_dir, &bundle_dir.join(sub), &mut files);
    }
    files.sort();
    let mut code = String::from("pub static FILES: &[(&str, &[u8])] = &[\n");
    for (relative, path) in &files {
        code.push_str(&format!(
            "    ({relative:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap_or_default()).join("embedded_bundle.rs");
    if fs::read_to_string(&out).ok().as_deref() != Some(code.as_str()) {
        fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    }
}
