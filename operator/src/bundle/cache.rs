//! A content-addressed cache of pulled bundles on local disk, so an artifact whose digest
//! did not change is never downloaded again. Layers are stored by their own digest and
//! checked against it on every read; a corrupt entry reads as a miss.

use std::{
    io,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::archive::digest;

#[derive(Debug, thiserror::Error)]
#[error("bundle cache {path}: {source}")]
pub struct Error {
    path: String,
    source: io::Error,
}

/// What the cache keeps per artifact (manifest digest): which layer it has.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    layer_digest: String,
}

pub struct Cache {
    dir: PathBuf,
}

/// `sha256:<64 hex>` only: anything else could name a path outside the cache.
fn hex_of(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn entry_path(&self, manifest_digest: &str) -> Option<PathBuf> {
        Some(self.dir.join("manifests").join(hex_of(manifest_digest)?))
    }

    fn blob_path(&self, layer_digest: &str) -> Option<PathBuf> {
        Some(self.dir.join("blobs").join(hex_of(layer_digest)?))
    }

    /// The layer of the artifact with this manifest digest, if cached and intact.
    pub fn get(&self, manifest_digest: &str) -> Option<Vec<u8>> {
        let entry: Entry =
            serde_json::from_slice(&std::fs::read(self.entry_path(manifest_digest)?).ok()?).ok()?;
        let layer = std::fs::read(self.blob_path(&entry.layer_digest)?).ok()?;
        if digest(&layer) != entry.layer_digest {
            tracing::warn!(
                manifest_digest,
                "cached bundle layer is corrupt; it will be pulled again"
            );
            return None;
        }
        // Touch the entry so retention keeps what is in use.
        let _ = std::fs::File::options()
            .append(true)
            .open(self.entry_path(manifest_digest)?);
        Some(layer)
    }

    /// Stores a pulled layer under its manifest digest. Writes go to a temporary file that is
    /// renamed into place, so a crash never leaves a half-written entry.
    pub fn put(&self, manifest_digest: &str, layer: &[u8]) -> Result<(), Error> {
        let layer_digest = digest(layer);
        let (Some(entry_path), Some(blob_path)) = (
            self.entry_path(manifest_digest),
            self.blob_path(&layer_digest),
        ) else {
            return Err(Error {
                path: manifest_digest.to_string(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not a sha256 digest"),
            });
        };
        write_atomically(&blob_path, layer)?;
        let entry = serde_json::to_vec(&Entry { layer_digest }).unwrap_or_default();
        write_atomically(&entry_path, &entry)
    }

    /// Keeps the `keep` most recently used artifacts and the layers they use; removes the rest.
    pub fn retain(&self, keep: usize) -> Result<(), Error> {
        let manifests = self.dir.join("manifests");
        let io_error = |path: &Path| {
            let path = path.display().to_string();
            move |source| Error { path, source }
        };
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = match std::fs::read_dir(&manifests)
        {
            Ok(read) => read
                .filter_map(Result::ok)
                .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(&manifests)(e)),
        };
        entries.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
        for (_, path) in entries.iter().skip(keep) {
            std::fs::remove_file(path).map_err(io_error(path))?;
        }
        let used: Vec<String> = entries
            .iter()
            .take(keep)
            .filter_map(|(_, p)| serde_json::from_slice::<Entry>(&std::fs::read(p).ok()?).ok())
            .filter_map(|e| hex_of(&e.layer_digest).map(str::to_string))
            .collect();
        let blobs = self.dir.join("blobs");
        for blob in std::fs::read_dir(&blobs)
            .map_err(io_error(&blobs))?
            .filter_map(Result::ok)
        {
            if !used.iter().any(|u| blob.file_name().to_str() == Some(u)) {
                std::fs::remove_file(blob.path()).map_err(io_error(&blob.path()))?;
            }
        }
        Ok(())
    }
}

fn write_atomically(path: &Path, content: &[u8]) -> Result<(), Error> {
    let io_error = |source| Error {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_error)?;
    }
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&temporary, content).map_err(io_error)?;
    std::fs::rename(&temporary, path).map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_cache(name: &str) -> (Cache, PathBuf) {
        let dir = std::env::temp_dir().join(format!("fluxop-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        (Cache::new(&dir), dir)
    }

    const MANIFEST: &str =
        "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn stored_layers_read_back_and_corruption_reads_as_a_miss() {
        let (cache, dir) = temp_cache("roundtrip");
        assert_eq!(cache.get(MANIFEST), None);
        cache.put(MANIFEST, b"layer bytes").unwrap();
        assert_eq!(cache.get(MANIFEST).as_deref(), Some(&b"layer bytes"[..]));
        let blob = dir
            .join("blobs")
            .join(digest(b"layer bytes").trim_start_matches("sha256:"));
        std::fs::write(&blob, b"tampered").unwrap();
        assert_eq!(cache.get(MANIFEST), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn digests_that_could_escape_the_cache_are_refused() {
        let (cache, _) = temp_cache("escape");
        assert!(cache.put("sha256:../../etc/passwd", b"x").is_err());
        assert_eq!(cache.get("../../etc/passwd"), None);
    }

    #[test]
    fn retention_keeps_the_newest_entries_and_their_layers() {
        let (cache, dir) = temp_cache("retain");
        cache.put(OTHER, b"old layer").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put(MANIFEST, b"new layer").unwrap();
        cache.retain(1).unwrap();
        assert_eq!(cache.get(OTHER), None);
        assert!(cache.get(MANIFEST).is_some());
        assert_eq!(std::fs::read_dir(dir.join("blobs")).unwrap().count(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
