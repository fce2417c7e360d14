//! The bundle's single layer: a gzip'd tar of plain files. Packing is deterministic (same
//! files, same bytes, same digest); unpacking refuses anything that could escape the bundle
//! or exhaust the operator: path traversal, links and devices, too many files, too many bytes.

use std::{
    collections::BTreeMap,
    io::{self, Read},
    path::{Component, Path},
};

use flate2::{Compression, GzBuilder, read::GzDecoder};
use sha2::{Digest, Sha256};

/// A bundle's files: path relative to the bundle root (with `/`) to content. Ordered, so
/// everything computed from it is deterministic.
pub type Files = BTreeMap<String, Vec<u8>>;

/// How much an unpacked bundle may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_total_bytes: u64,
    pub max_file_bytes: u64,
    pub max_files: usize,
}

impl Default for Limits {
    /// Four Flux releases take about 4 MiB in 50 files; these leave room for many more.
    fn default() -> Self {
        Self {
            max_total_bytes: 256 << 20,
            max_file_bytes: 32 << 20,
            max_files: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bundle entry {path:?} escapes the bundle root (absolute path or '..')")]
    PathTraversal { path: String },
    #[error("bundle entry {path:?} is a {kind}; only regular files and directories are allowed")]
    UnsupportedEntry { path: String, kind: String },
    #[error(
        "bundle entry {path:?} declares {declared} bytes, over the limit of {limit} bytes per file"
    )]
    FileTooLarge {
        path: String,
        declared: u64,
        limit: u64,
    },
    #[error("bundle holds more than {limit} bytes once unpacked")]
    TotalTooLarge { limit: u64 },
    #[error("bundle holds more than {limit} files")]
    TooManyFiles { limit: usize },
    #[error("bundle holds {path:?} twice")]
    Duplicate { path: String },
    #[error("bundle layer is not a valid gzip'd tar: {0}")]
    Corrupt(#[source] io::Error),
    #[error("cannot read or write {path}: {source}")]
    ReadDir { path: String, source: io::Error },
    #[error(
        "{path} is a symbolic link or special file; a bundle directory may hold only regular files"
    )]
    NotARegularFile { path: String },
}

/// `sha256:<hex>` of `bytes`, the OCI digest format.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Packs `files` into a gzip'd tar whose bytes depend only on the paths and contents.
pub fn pack(files: &Files) -> Vec<u8> {
    let gzip = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    let mut tar = tar::Builder::new(gzip);
    tar.mode(tar::HeaderMode::Deterministic);
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        // Writing into a Vec cannot fail; paths were validated when the files were read.
        let _ = tar.append_data(&mut header, path, content.as_slice());
    }
    let gzip = tar
        .into_inner()
        .unwrap_or_else(|_| unreachable!("writing into a Vec cannot fail"));
    gzip.finish()
        .unwrap_or_else(|_| unreachable!("writing into a Vec cannot fail"))
}

/// Checks a path from an archive or a directory walk and returns it in `a/b/c` form.
fn normalized(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?.to_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Unpacks a gzip'd tar into memory within `limits`, before anything is written anywhere.
pub fn unpack(layer: &[u8], limits: &Limits) -> Result<Files, Error> {
    // Bound the decompressed stream too: headers and padding take at most 1 KiB per file.
    let stream_limit = limits.max_total_bytes + (limits.max_files as u64 + 2) * 1024;
    let mut archive = tar::Archive::new(GzDecoder::new(layer).take(stream_limit));
    let mut files = Files::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(Error::Corrupt)? {
        let mut entry = entry.map_err(Error::Corrupt)?;
        let raw_path = entry.path().map_err(Error::Corrupt)?.into_owned();
        let display = raw_path.to_string_lossy().into_owned();
        let Some(path) = normalized(&raw_path) else {
            if raw_path.components().all(|c| c == Component::CurDir) {
                continue; // the archive's "./" root entry
            }
            return Err(Error::PathTraversal { path: display });
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Directory => continue,
            other => {
                return Err(Error::UnsupportedEntry {
                    path,
                    kind: format!("{other:?}").to_lowercase(),
                });
            }
        }
        let declared = entry.header().size().map_err(Error::Corrupt)?;
        if declared > limits.max_file_bytes {
            return Err(Error::FileTooLarge {
                path,
                declared,
                limit: limits.max_file_bytes,
            });
        }
        total += declared;
        if total > limits.max_total_bytes {
            return Err(Error::TotalTooLarge {
                limit: limits.max_total_bytes,
            });
        }
        if files.len() >= limits.max_files {
            return Err(Error::TooManyFiles {
                limit: limits.max_files,
            });
        }
        let mut content = Vec::with_capacity(declared as usize);
        entry.read_to_end(&mut content).map_err(Error::Corrupt)?;
        if files.insert(path.clone(), content).is_some() {
            return Err(Error::Duplicate { path });
        }
    }
    Ok(files)
}

/// Reads every regular file under `dir` (the IO edge of `fluxop bundle build`). Hidden
/// files and directories (`.git`, editor droppings) are left out.
pub fn read_dir(dir: &Path) -> Result<Files, Error> {
    let mut files = Files::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let read_error = |source| Error::ReadDir {
            path: current.display().to_string(),
            source,
        };
        for entry in std::fs::read_dir(&current).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let file_type = entry.file_type().map_err(read_error)?;
            if file_type.is_dir() {
                pending.push(path);
            } else if file_type.is_file() {
                let content = std::fs::read(&path).map_err(|source| Error::ReadDir {
                    path: path.display().to_string(),
                    source,
                })?;
                let relative = path
                    .strip_prefix(dir)
                    .ok()
                    .and_then(normalized)
                    .unwrap_or_default();
                files.insert(relative, content);
            } else {
                return Err(Error::NotARegularFile {
                    path: path.display().to_string(),
                });
            }
        }
    }
    Ok(files)
}

/// Writes `files` under `dir`, creating directories (the IO edge of `fluxop bundle pull`).
/// Paths were checked by [`unpack`], so nothing lands outside `dir`.
pub fn write_dir(dir: &Path, files: &Files) -> Result<(), Error> {
    for (path, content) in files {
        let target = dir.join(path);
        let write_error = |source| Error::ReadDir {
            path: target.display().to_string(),
            source,
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(write_error)?;
        }
        std::fs::write(&target, content).map_err(write_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Files {
        Files::from([
            (
                "flux/v2.8.8/source-controller.yaml".to_string(),
                b"kind: Deployment\n".to_vec(),
            ),
            (
                "flux-images/v2.8.8/upstream-alpine.yaml".to_string(),
                b"images: []\n".to_vec(),
            ),
            (
                format!("templates/{}deep.hbs", "nested/".repeat(30)),
                b"{{x}}".to_vec(),
            ),
        ])
    }

    /// A tar with one raw entry, for inputs `pack` would never make.
    fn raw_tar(path: &[u8], kind: tar::EntryType, declared: u64, content: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..path.len()].copy_from_slice(path);
        header.set_entry_type(kind);
        header.set_size(declared);
        header.set_mode(0o644);
        header.set_cksum();
        let mut tar = header.as_bytes().to_vec();
        tar.extend_from_slice(content);
        tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
        io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn packing_is_deterministic_and_round_trips() {
        let files = sample();
        let first = pack(&files);
        assert_eq!(digest(&first), digest(&pack(&files.clone())));
        assert_eq!(unpack(&first, &Limits::default()).unwrap(), files);
        let mut changed = files.clone();
        changed.insert("extra.txt".into(), b"x".to_vec());
        assert_ne!(digest(&pack(&changed)), digest(&first));
    }

    #[test]
    fn digests_are_in_oci_form() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parent_and_absolute_paths_are_refused() {
        for path in [
            &b"../escape.yaml"[..],
            b"flux/../../etc/passwd",
            b"/etc/passwd",
        ] {
            let error = unpack(
                &raw_tar(path, tar::EntryType::Regular, 1, b"x"),
                &Limits::default(),
            )
            .unwrap_err();
            assert!(
                matches!(error, Error::PathTraversal { .. }),
                "{path:?}: {error}"
            );
            assert!(error.to_string().contains("escapes the bundle root"));
        }
    }

    #[test]
    fn links_and_devices_are_refused() {
        for kind in [
            tar::EntryType::Symlink,
            tar::EntryType::Link,
            tar::EntryType::Char,
            tar::EntryType::Fifo,
        ] {
            let error =
                unpack(&raw_tar(b"flux/link", kind, 0, b""), &Limits::default()).unwrap_err();
            assert!(
                matches!(error, Error::UnsupportedEntry { .. }),
                "{kind:?}: {error}"
            );
        }
    }

    #[test]
    fn a_ten_gigabyte_declared_size_is_refused_before_reading() {
        let error = unpack(
            &raw_tar(b"huge.yaml", tar::EntryType::Regular, 10 << 30, b""),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("declares 10737418240 bytes"),
            "{error}"
        );
    }

    #[test]
    fn total_size_and_file_count_are_bounded() {
        let files: Files = (0..5).map(|i| (format!("f{i}"), vec![b'x'; 100])).collect();
        let layer = pack(&files);
        let small_total = Limits {
            max_total_bytes: 250,
            ..Limits::default()
        };
        assert!(matches!(
            unpack(&layer, &small_total),
            Err(Error::TotalTooLarge { limit: 250 })
        ));
        let few_files = Limits {
            max_files: 3,
            ..Limits::default()
        };
        assert!(matches!(
            unpack(&layer, &few_files),
            Err(Error::TooManyFiles { limit: 3 })
        ));
    }

    #[test]
    fn garbage_is_reported_as_a_corrupt_layer() {
        let error = unpack(b"definitely not gzip", &Limits::default()).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("bundle layer is not a valid gzip'd tar"),
            "{error}"
        );
    }
}
