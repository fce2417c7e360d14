//! What a bundle holds: Flux releases under `flux/<version>/`, image catalogs under
//! `flux-images/<version>/<variant>.yaml`, and optional render templates under `templates/`.

use std::collections::BTreeMap;

use semver::Version;
use serde::Deserialize;

use super::{archive::Files, version::parse_version};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "bundle has no Flux release: expected files under flux/<version>/, e.g. flux/v2.8.8/source-controller.yaml"
    )]
    NoRelease,
    #[error("bundle directory flux/{dir}/ is not named after a semver version (e.g. v2.8.8)")]
    BadVersionDir { dir: String },
    #[error("bundle release flux/{version}/ lacks {file}")]
    MissingFile { version: String, file: String },
    #[error("bundle image catalog {path} is invalid: {reason}")]
    BadCatalog { path: String, reason: String },
}

/// One image of a catalog, in kustomize's `images:` form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogImage {
    /// `ghcr.io/fluxcd/source-controller`.
    pub name: String,
    pub new_tag: String,
    #[serde(default)]
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageCatalog {
    pub images: Vec<CatalogImage>,
}

impl ImageCatalog {
    /// The entry for a controller (`source-controller`), matched on the image's last path part.
    pub fn find(&self, component: &str) -> Option<&CatalogImage> {
        self.images
            .iter()
            .find(|i| i.name.rsplit('/').next() == Some(component))
    }
}

/// A validated bundle.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    files: Files,
    releases: BTreeMap<Version, String>,
}

/// Files every Flux release directory must have.
const REQUIRED_FILES: [&str; 2] = ["rbac.yaml", "source-controller.yaml"];

impl Bundle {
    pub fn from_files(files: Files) -> Result<Self, Error> {
        let mut releases = BTreeMap::new();
        for path in files.keys() {
            let Some(rest) = path.strip_prefix("flux/") else {
                continue;
            };
            let Some((dir, _file)) = rest.split_once('/') else {
                continue;
            };
            let version = parse_version(dir).ok_or_else(|| Error::BadVersionDir {
                dir: dir.to_string(),
            })?;
            releases.insert(version, dir.to_string());
        }
        if releases.is_empty() {
            return Err(Error::NoRelease);
        }
        for dir in releases.values() {
            for file in REQUIRED_FILES {
                if !files.contains_key(&format!("flux/{dir}/{file}")) {
                    return Err(Error::MissingFile {
                        version: dir.clone(),
                        file: file.to_string(),
                    });
                }
            }
        }
        let bundle = Self { files, releases };
        // Fail on a broken catalog when the bundle is read, not when an instance needs it.
        for version in bundle.versions() {
            for variant in bundle.variants(&version) {
                bundle.image_catalog(&version, &variant)?;
            }
        }
        Ok(bundle)
    }

    /// The Flux versions the bundle carries, ascending.
    pub fn versions(&self) -> Vec<Version> {
        self.releases.keys().cloned().collect()
    }

    fn dir(&self, version: &Version) -> Option<&str> {
        self.releases.get(version).map(String::as_str)
    }

    /// A release's manifests by file stem (`source-controller`, `rbac`, `policies`, ...).
    pub fn manifests(&self, version: &Version) -> BTreeMap<String, &str> {
        let Some(dir) = self.dir(version) else {
            return BTreeMap::new();
        };
        let prefix = format!("flux/{dir}/");
        self.files
            .iter()
            .filter_map(|(path, content)| {
                let stem = path.strip_prefix(&prefix)?.strip_suffix(".yaml")?;
                if stem.contains('/') {
                    return None;
                }
                Some((stem.to_string(), std::str::from_utf8(content).ok()?))
            })
            .collect()
    }

    /// Image variants with a catalog for `version` (`upstream-alpine`, ...).
    pub fn variants(&self, version: &Version) -> Vec<String> {
        let Some(dir) = self.dir(version) else {
            return Vec::new();
        };
        let prefix = format!("flux-images/{dir}/");
        self.files
            .keys()
            .filter_map(|p| {
                p.strip_prefix(&prefix)?
                    .strip_suffix(".yaml")
                    .map(str::to_string)
            })
            .collect()
    }

    /// The image catalog of a variant, if the bundle has one.
    pub fn image_catalog(
        &self,
        version: &Version,
        variant: &str,
    ) -> Result<Option<ImageCatalog>, Error> {
        let Some(dir) = self.dir(version) else {
            return Ok(None);
        };
        let path = format!("flux-images/{dir}/{variant}.yaml");
        let Some(content) = self.files.get(&path) else {
            return Ok(None);
        };
        let text = std::str::from_utf8(content).map_err(|e| Error::BadCatalog {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        serde_saphyr::from_str(text)
            .map(Some)
            .map_err(|e| Error::BadCatalog {
                path,
                reason: e.to_string(),
            })
    }

    /// Render templates the bundle brings (`templates/...`), overriding the built-in ones.
    pub fn templates(&self) -> BTreeMap<&str, &[u8]> {
        self.files
            .iter()
            .filter_map(|(path, content)| {
                Some((path.strip_prefix("templates/")?, content.as_slice()))
            })
            .collect()
    }

    pub fn files(&self) -> &Files {
        &self.files
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::archive;

    use crate::testing::vendored_bundle as vendored;

    #[test]
    fn the_vendored_bundle_carries_the_four_flux_releases_with_catalogs() {
        let bundle = vendored();
        let versions: Vec<String> = bundle.versions().iter().map(|v| format!("v{v}")).collect();
        assert_eq!(versions, ["v2.6.4", "v2.7.5", "v2.8.8", "v2.9.4"]);
        for version in bundle.versions() {
            let manifests = bundle.manifests(&version);
            for stem in [
                "source-controller",
                "kustomize-controller",
                "helm-controller",
                "notification-controller",
                "rbac",
                "policies",
            ] {
                assert!(manifests.contains_key(stem), "v{version} lacks {stem}.yaml");
            }
            assert_eq!(
                manifests.contains_key("source-watcher"),
                version >= Version::new(2, 7, 0),
                "v{version}"
            );
            let catalog = bundle
                .image_catalog(&version, "upstream-alpine")
                .unwrap()
                .expect("catalog");
            let source = catalog
                .find("source-controller")
                .expect("source-controller image");
            assert!(
                source
                    .digest
                    .as_deref()
                    .is_some_and(|d| d.starts_with("sha256:")),
                "{source:?}"
            );
        }
    }

    #[test]
    fn the_vendored_bundle_packs_to_the_same_digest_twice() {
        let bundle = vendored();
        let once = archive::digest(&archive::pack(bundle.files()));
        let again = archive::digest(&archive::pack(&vendored().files().clone()));
        assert_eq!(once, again);
        let unpacked =
            archive::unpack(&archive::pack(bundle.files()), &archive::Limits::default()).unwrap();
        assert_eq!(Bundle::from_files(unpacked).unwrap(), bundle);
    }

    #[test]
    fn malformed_layouts_are_errors_that_say_what_is_expected() {
        let file = |path: &str| (path.to_string(), b"x: 1\n".to_vec());
        let no_release = Bundle::from_files(Files::from([file("README.md")])).unwrap_err();
        assert!(
            no_release
                .to_string()
                .contains("expected files under flux/<version>/"),
            "{no_release}"
        );
        let bad_dir = Bundle::from_files(Files::from([file("flux/latest/rbac.yaml")])).unwrap_err();
        assert!(
            bad_dir
                .to_string()
                .contains("flux/latest/ is not named after a semver version"),
            "{bad_dir}"
        );
        let missing = Bundle::from_files(Files::from([file("flux/v2.8.8/rbac.yaml")])).unwrap_err();
        assert!(
            missing.to_string().contains("lacks source-controller.yaml"),
            "{missing}"
        );
        let bad_catalog = Bundle::from_files(Files::from([
            file("flux/v2.8.8/rbac.yaml"),
            file("flux/v2.8.8/source-controller.yaml"),
            file("flux-images/v2.8.8/upstream-alpine.yaml"),
        ]))
        .unwrap_err();
        assert!(
            bad_catalog
                .to_string()
                .contains("flux-images/v2.8.8/upstream-alpine.yaml is invalid"),
            "{bad_catalog}"
        );
    }
}
