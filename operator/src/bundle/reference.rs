//! `oci://host[:port]/repository[:tag][@digest]`: where a bundle lives.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid artifact reference {input:?}: {reason}")]
pub struct InvalidReference {
    pub input: String,
    pub reason: String,
}

/// A parsed artifact reference. The registry host is explicit: a bundle reference never
/// falls back to Docker Hub.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArtifactRef {
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl ArtifactRef {
    pub fn parse(input: &str) -> Result<Self, InvalidReference> {
        let invalid = |reason: &str| InvalidReference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let rest = input
            .strip_prefix("oci://")
            .ok_or_else(|| invalid("must start with oci://"))?;
        let (rest, digest) = match rest.split_once('@') {
            Some((name, digest)) => {
                let hex = digest
                    .strip_prefix("sha256:")
                    .ok_or_else(|| invalid("digest must be sha256:<hex>"))?;
                if hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                {
                    return Err(invalid(
                        "digest must be sha256: followed by 64 lowercase hex digits",
                    ));
                }
                (name, Some(digest.to_string()))
            }
            None => (rest, None),
        };
        let (registry, path) = rest
            .split_once('/')
            .ok_or_else(|| invalid("expected oci://<registry>/<repository>"))?;
        if registry.is_empty()
            || !(registry.contains('.') || registry.contains(':') || registry == "localhost")
        {
            return Err(invalid(
                "the first path part must be a registry host (with a dot or a port)",
            ));
        }
        // A ':' after the last '/' starts the tag.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_string())),
            _ => (path, None),
        };
        if repository.is_empty()
            || !repository.split('/').all(|part| {
                !part.is_empty()
                    && part.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            })
        {
            return Err(invalid(
                "repository must be lowercase path parts of [a-z0-9._-]",
            ));
        }
        if let Some(tag) = &tag
            && (tag.is_empty()
                || tag.len() > 128
                || !tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        {
            return Err(invalid("tag must be 1-128 characters of [A-Za-z0-9._-]"));
        }
        Ok(Self {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag,
            digest,
        })
    }

    /// The same artifact pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: &str) -> Self {
        Self {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }

    /// The repository without tag or digest, for listing tags.
    pub fn repository_ref(&self) -> Self {
        Self {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// The form registry clients take: `host/repo:tag@digest` without the scheme.
    pub fn to_registry_string(&self) -> String {
        let mut out = format!("{}/{}", self.registry, self.repository);
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }

    /// The reference registry clients take; for a digest, the tag is dropped so that what
    /// is fetched is exactly the pinned content.
    pub fn to_oci(&self) -> oci_client::Reference {
        match &self.digest {
            Some(digest) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                digest.clone(),
            ),
            None => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                self.tag.clone().unwrap_or_else(|| "latest".to_string()),
            ),
        }
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci://{}", self.to_registry_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0963e2157f81b5ed12eb58c632bf7774d4a224028554c123e5c562838138f8d5";

    #[test]
    fn parses_tags_digests_and_ports() {
        let r = ArtifactRef::parse("oci://127.0.0.1:5000/fluxop/bundle:v1.2.3").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "fluxop/bundle", Some("v1.2.3"))
        );
        let r = ArtifactRef::parse(&format!("oci://ghcr.io/org/flux-manifests:latest@{DIGEST}"))
            .unwrap();
        assert_eq!(r.digest.as_deref(), Some(DIGEST));
        assert_eq!(
            r.to_string(),
            format!("oci://ghcr.io/org/flux-manifests:latest@{DIGEST}")
        );
        let r = ArtifactRef::parse("oci://localhost/bundle").unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.to_oci().to_string(), "localhost/bundle:latest");
        assert_eq!(
            r.with_digest(DIGEST).to_oci().to_string(),
            format!("localhost/bundle@{DIGEST}")
        );
    }

    #[test]
    fn bad_references_say_what_is_wrong() {
        for (input, reason) in [
            ("ghcr.io/org/bundle", "must start with oci://"),
            ("oci://bundle", "expected oci://<registry>/<repository>"),
            ("oci://org/bundle", "registry host"),
            ("oci://ghcr.io/Org/bundle", "lowercase"),
            ("oci://ghcr.io/org/bundle:", "tag must be"),
            ("oci://ghcr.io/org/bundle@sha256:abc", "64 lowercase hex"),
            ("oci://ghcr.io/org/bundle@md5:abc", "sha256:<hex>"),
        ] {
            let error = ArtifactRef::parse(input).expect_err(input).to_string();
            assert!(error.contains(reason), "{input}: {error}");
        }
    }
}
