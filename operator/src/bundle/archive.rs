//! The bundle's single layer: a gzip'd tar of plain files. Packing is deterministic (same
//! files, same bytes, same digest); unpacking refuses anything that could escape the bundle
//! or exhaust the operator: path traversal, links and devices, too many files, too many bytes.

use std::{
    cell::Cell,
    collections::BTreeMap,
    io::{self, Read},
    path::{Component, Path},
    rc::Rc,
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
    /// Header bytes before each file: its tar header, PAX and GNU long-name records, and the
    /// padding of the file before it.
    pub max_header_bytes: u64,
}

impl Default for Limits {
    /// Four Flux releases take about 4 MiB in 50 files; the caps leave room for many more and
    /// are sized to fluxop's memory limit ([`crate::policy::memory`]).
    fn default() -> Self {
        use crate::policy::memory;
        Self {
            max_total_bytes: memory::MAX_UNPACKED_BYTES,
            max_file_bytes: memory::MAX_FILE_BYTES,
            max_files: memory::MAX_FILES,
            max_header_bytes: memory::MAX_ENTRY_HEADER_BYTES,
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
    #[error(
        "bundle entry headers take more than {limit} bytes before one file (an oversized PAX or \
         GNU long-name record, or data where none belongs)"
    )]
    HeaderTooLarge { limit: u64 },
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

/// The decompressed stream, read only as far as the unpacker allows at each point: up to
/// [`Limits::max_header_bytes`] while the tar reader looks for the next file (it reads PAX
/// and GNU long-name records whole, before the caller sees the entry), then the file's own
/// size while its content is read. So no record, header or file is ever read past a cap,
/// whatever its header or a PAX `size` record says.
struct Allowance<R> {
    inner: R,
    left: Rc<Cell<u64>>,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Allowance<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.left.get();
        if buf.is_empty() {
            return Ok(0);
        }
        if left == 0 {
            self.exceeded.set(true);
            return Err(io::Error::other("bundle layer read past its allowance"));
        }
        let room = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let read = self.inner.read(&mut buf[..room])?;
        self.left.set(left - read as u64);
        Ok(read)
    }
}

/// Unpacks a gzip'd tar into memory within `limits`, before anything is written anywhere.
/// Sizes are the ones the tar reader really reads (a PAX `size` record overrides the
/// header's), checked before the content is read, and the content is read through the same
/// cap.
pub fn unpack(layer: &[u8], limits: &Limits) -> Result<Files, Error> {
    let left = Rc::new(Cell::new(limits.max_header_bytes));
    let exceeded = Rc::new(Cell::new(false));
    let stream = Allowance {
        inner: GzDecoder::new(layer),
        left: left.clone(),
        exceeded: exceeded.clone(),
    };
    let corrupt = |error: io::Error| {
        if exceeded.get() {
            Error::HeaderTooLarge {
                limit: limits.max_header_bytes,
            }
        } else {
            Error::Corrupt(error)
        }
    };
    let mut archive = tar::Archive::new(stream);
    let mut files = Files::new();
    let mut total = 0u64;
    let mut entries = archive.entries().map_err(corrupt)?;
    loop {
        // The headers (and records) of the next entry.
        left.set(limits.max_header_bytes);
        let Some(entry) = entries.next() else { break };
        let mut entry = entry.map_err(corrupt)?;
        let raw_path = entry.path().map_err(corrupt)?.into_owned();
        let display = raw_path.to_string_lossy().into_owned();
        let Some(path) = normalized(&raw_path) else {
            if raw_path.components().all(|c| c == Component::CurDir) && entry.size() == 0 {
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
        // What the reader will read: the PAX size when there is one, not the header's.
        let size = entry.size();
        if size > limits.max_file_bytes {
            return Err(Error::FileTooLarge {
                path,
                declared: size,
                limit: limits.max_file_bytes,
            });
        }
        total += size;
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
        // The entry reads exactly `size` bytes; the allowance holds the stream to that too.
        left.set(size);
        let mut content = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut content).map_err(corrupt)?;
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

    /// A gzip'd tar of raw entries (path, type, size in the header, content), for inputs
    /// `pack` would never make.
    fn raw_entries(entries: &[(&[u8], tar::EntryType, u64, &[u8])]) -> Vec<u8> {
        let mut tar = Vec::new();
        for (path, kind, declared, content) in entries {
            let mut header = tar::Header::new_ustar();
            header.as_ustar_mut().unwrap().name[..path.len()].copy_from_slice(path);
            header.set_entry_type(*kind);
            header.set_size(*declared);
            header.set_mode(0o644);
            header.set_cksum();
            tar.extend_from_slice(header.as_bytes());
            tar.extend_from_slice(content);
            tar.resize(tar.len().div_ceil(512) * 512, 0);
        }
        tar.resize(tar.len() + 1024, 0);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
        io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    fn raw_tar(path: &[u8], kind: tar::EntryType, declared: u64, content: &[u8]) -> Vec<u8> {
        raw_entries(&[(path, kind, declared, content)])
    }

    /// A PAX record as tar writes it: `<length> <key>=<value>\n`, the length counting itself.
    fn pax_record(key: &str, value: &str) -> Vec<u8> {
        let body = format!(" {key}={value}\n");
        let mut length = body.len() + 1;
        while format!("{length}{body}").len() != length {
            length += 1;
        }
        format!("{length}{body}").into_bytes()
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
    fn a_pax_size_record_is_the_size_checked_not_the_header_s() {
        // The header says 0 bytes; the PAX record (which the reader obeys) says 1 MB, and
        // 1 MB of content follows.
        let record = pax_record("size", "1000000");
        let content = vec![b'x'; 1_000_000];
        let layer = raw_entries(&[
            (
                b"PaxHeaders/bomb.yaml",
                tar::EntryType::XHeader,
                record.len() as u64,
                &record,
            ),
            (b"bomb.yaml", tar::EntryType::Regular, 0, &content),
        ]);
        let small = Limits {
            max_file_bytes: 4096,
            ..Limits::default()
        };
        let error = unpack(&layer, &small).unwrap_err();
        assert!(
            matches!(
                error,
                Error::FileTooLarge {
                    declared: 1_000_000,
                    ..
                }
            ),
            "{error}"
        );
        // Within the caps the PAX size is what is read, in full.
        let files = unpack(&layer, &Limits::default()).unwrap();
        assert_eq!(files["bomb.yaml"].len(), 1_000_000);
    }

    #[test]
    fn headers_and_records_are_read_only_up_to_their_cap() {
        // A PAX record of 1 MiB: the tar reader would read it whole before yielding the entry.
        let record = pax_record("comment", &"x".repeat(1 << 20));
        let layer = raw_entries(&[
            (
                b"PaxHeaders/a.yaml",
                tar::EntryType::XHeader,
                record.len() as u64,
                &record,
            ),
            (b"a.yaml", tar::EntryType::Regular, 1, b"a"),
        ]);
        let error = unpack(&layer, &Limits::default()).unwrap_err();
        assert!(
            matches!(error, Error::HeaderTooLarge { limit } if limit == Limits::default().max_header_bytes),
            "{error}"
        );
        // Data hidden behind a directory entry is skipped by the reader: the same cap.
        let hidden = vec![0u8; 1 << 20];
        let layer = raw_entries(&[
            (
                b"dir/",
                tar::EntryType::Directory,
                hidden.len() as u64,
                &hidden,
            ),
            (b"a.yaml", tar::EntryType::Regular, 1, b"a"),
        ]);
        assert!(matches!(
            unpack(&layer, &Limits::default()),
            Err(Error::HeaderTooLarge { .. })
        ));
        // A short PAX path record is fine.
        let record = pax_record("path", "flux/long-name.yaml");
        let layer = raw_entries(&[
            (
                b"PaxHeaders/x",
                tar::EntryType::XHeader,
                record.len() as u64,
                &record,
            ),
            (b"x", tar::EntryType::Regular, 2, b"ok"),
        ]);
        assert_eq!(
            unpack(&layer, &Limits::default()).unwrap()["flux/long-name.yaml"],
            b"ok"
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
