//! A content-addressed cache of pulled bundles on local disk, so an artifact whose digest
//! did not change is never downloaded again. Layers are stored by their own digest and
//! checked against it on every read; a corrupt entry reads as a miss.
//!
//! Each entry also records which public key the artifact was verified with when it was stored
//! or last served ([`key_fingerprint`]), so that during a registry outage only a bundle
//! verified with the key the instance requires now is served from here.

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

/// What the cache keeps per artifact (manifest digest): which layer it has, and the
/// fingerprint of the key its signature verified with ([`key_fingerprint`]). Entries written
/// before fingerprints were recorded have none and are never served during an outage.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    layer_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    verified_with: Option<String>,
}

/// The fingerprint recorded for a verification: `sha256:<hex>` of the public key PEM
/// (surrounding whitespace trimmed), or `unsigned` when no key was required.
pub fn key_fingerprint(public_key: Option<&[u8]>) -> String {
    match public_key {
        None => UNSIGNED.to_string(),
        Some(pem) => digest(pem.trim_ascii()),
    }
}

/// The fingerprint of an artifact used without signature verification.
pub const UNSIGNED: &str = "unsigned";

#[derive(Debug, Clone)]
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
        self.read(manifest_digest).map(|(_, layer)| layer)
    }

    /// The layer of the artifact with this manifest digest, if cached, intact and stored (or
    /// last served) after verification with the key of `fingerprint` ([`key_fingerprint`]):
    /// what may stand in for the registry during an outage. An entry stored unverified never
    /// stands in for one that needs a key, nor one verified with another key.
    pub fn get_verified(&self, manifest_digest: &str, fingerprint: &str) -> Option<Vec<u8>> {
        let (entry, layer) = self.read(manifest_digest)?;
        (entry.verified_with.as_deref() == Some(fingerprint)).then_some(layer)
    }

    /// The layer of the artifact with this manifest digest, if cached, intact and stored (or
    /// last served) after verification with some key, whichever: what a reconcile may keep
    /// converging while the key it is to check with cannot be read (its Secret is missing).
    pub fn get_verified_by_any_key(&self, manifest_digest: &str) -> Option<Vec<u8>> {
        let (entry, layer) = self.read(manifest_digest)?;
        entry
            .verified_with
            .as_deref()
            .is_some_and(|fingerprint| fingerprint != UNSIGNED)
            .then_some(layer)
    }

    /// Records that the cached artifact was just verified with the key of `fingerprint` (its
    /// signature checked against the registry before the cached layer was used).
    pub fn record_verification(
        &self,
        manifest_digest: &str,
        fingerprint: &str,
    ) -> Result<(), Error> {
        let Some((entry, _)) = self.read_entry(manifest_digest) else {
            return Ok(());
        };
        if entry.verified_with.as_deref() == Some(fingerprint) {
            return Ok(());
        }
        self.write_entry(manifest_digest, entry.layer_digest, fingerprint)
    }

    fn read_entry(&self, manifest_digest: &str) -> Option<(Entry, PathBuf)> {
        let path = self.entry_path(manifest_digest)?;
        let entry: Entry = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        Some((entry, path))
    }

    fn read(&self, manifest_digest: &str) -> Option<(Entry, Vec<u8>)> {
        let (entry, _) = self.read_entry(manifest_digest)?;
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
        Some((entry, layer))
    }

    /// Stores a pulled layer under its manifest digest, with the fingerprint of the key it was
    /// verified with ([`key_fingerprint`]). Writes go to a temporary file that is renamed into
    /// place, so a crash never leaves a half-written entry.
    pub fn put(&self, manifest_digest: &str, layer: &[u8], fingerprint: &str) -> Result<(), Error> {
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
        let entry = serde_json::to_vec(&Entry {
            layer_digest,
            verified_with: Some(fingerprint.to_string()),
        })
        .unwrap_or_default();
        write_atomically(&entry_path, &entry)
    }

    fn write_entry(
        &self,
        manifest_digest: &str,
        layer_digest: String,
        fingerprint: &str,
    ) -> Result<(), Error> {
        let Some(entry_path) = self.entry_path(manifest_digest) else {
            return Ok(());
        };
        let entry = serde_json::to_vec(&Entry {
            layer_digest,
            verified_with: Some(fingerprint.to_string()),
        })
        .unwrap_or_default();
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
        cache.put(MANIFEST, b"layer bytes", UNSIGNED).unwrap();
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
        assert!(
            cache
                .put("sha256:../../etc/passwd", b"x", UNSIGNED)
                .is_err()
        );
        assert_eq!(cache.get("../../etc/passwd"), None);
    }

    #[test]
    fn retention_keeps_the_newest_entries_and_their_layers() {
        let (cache, dir) = temp_cache("retain");
        cache.put(OTHER, b"old layer", UNSIGNED).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.put(MANIFEST, b"new layer", UNSIGNED).unwrap();
        cache.retain(1).unwrap();
        assert_eq!(cache.get(OTHER), None);
        assert!(cache.get(MANIFEST).is_some());
        assert_eq!(std::fs::read_dir(dir.join("blobs")).unwrap().count(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn only_entries_verified_with_the_required_key_stand_in_during_an_outage() {
        let (cache, dir) = temp_cache("fingerprint");
        let key = key_fingerprint(Some(b"-----BEGIN PUBLIC KEY-----\nkey A\n"));
        let other = key_fingerprint(Some(b"-----BEGIN PUBLIC KEY-----\nkey B\n"));
        assert_ne!(key, other);
        assert_eq!(
            key,
            key_fingerprint(Some(b"\n-----BEGIN PUBLIC KEY-----\nkey A\n\n")),
            "whitespace around the PEM does not change the fingerprint"
        );

        // Stored unverified: never served when a key is required now.
        cache.put(MANIFEST, b"unsigned layer", UNSIGNED).unwrap();
        assert_eq!(cache.get_verified(MANIFEST, &key), None);
        assert!(cache.get_verified(MANIFEST, UNSIGNED).is_some());

        // Stored after verification with key A: served for key A only.
        cache.put(OTHER, b"signed layer", &key).unwrap();
        assert_eq!(
            cache.get_verified(OTHER, &key).as_deref(),
            Some(&b"signed layer"[..])
        );
        assert_eq!(cache.get_verified(OTHER, &other), None);
        assert_eq!(cache.get_verified(OTHER, UNSIGNED), None);

        // Verified again with key B (the key rotated): now it stands in for key B.
        cache.record_verification(OTHER, &other).unwrap();
        assert!(cache.get_verified(OTHER, &other).is_some());
        assert_eq!(cache.get_verified(OTHER, &key), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn entries_without_a_fingerprint_never_stand_in() {
        let (cache, dir) = temp_cache("legacy");
        cache.put(MANIFEST, b"layer", UNSIGNED).unwrap();
        // An entry as written before fingerprints existed.
        let layer_digest = digest(b"layer");
        std::fs::write(
            dir.join("manifests").join(hex_of(MANIFEST).unwrap()),
            format!(r#"{{"layerDigest":"{layer_digest}"}}"#),
        )
        .unwrap();
        assert!(cache.get(MANIFEST).is_some());
        assert_eq!(cache.get_verified(MANIFEST, UNSIGNED), None);
        // A corrupt layer never stands in either.
        cache.put(OTHER, b"good", UNSIGNED).unwrap();
        std::fs::write(
            dir.join("blobs").join(hex_of(&digest(b"good")).unwrap()),
            b"bad",
        )
        .unwrap();
        assert_eq!(cache.get_verified(OTHER, UNSIGNED), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
