//! Registry credentials from a `kubernetes.io/dockerconfigjson` Secret (`artifactPullSecret`),
//! read the way docker and the kubelet read them.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use super::registry::Credentials;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("the Secret's .dockerconfigjson is not valid JSON: {0}")]
    NotJson(String),
    #[error(
        "the Secret's entry for {registry} has an auth field that is not base64 of user:password"
    )]
    BadAuth { registry: String },
    #[error(
        "the Secret's entry for {registry} holds only an identitytoken (an OAuth refresh token), \
         which fluxop cannot exchange; use username/password or a registrytoken"
    )]
    IdentityTokenOnly { registry: String },
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
    #[serde(default, rename = "registrytoken")]
    registry_token: Option<String>,
}

/// `https://ghcr.io/v1/` and `ghcr.io` name the same registry in a docker config.
fn host_of(key: &str) -> &str {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    without_scheme.split('/').next().unwrap_or(without_scheme)
}

/// The credentials a docker config holds for `registry` (`host[:port]`); anonymous when
/// it has none. `docker.io` also matches docker's legacy `index.docker.io` key.
pub fn from_docker_config(config_json: &[u8], registry: &str) -> Result<Credentials, Error> {
    let config: DockerConfig =
        serde_json::from_slice(config_json).map_err(|e| Error::NotJson(e.to_string()))?;
    let wanted = |key: &str| {
        let host = host_of(key);
        host == registry || (registry == "docker.io" && host == "index.docker.io")
    };
    let Some((key, entry)) = config.auths.iter().find(|(key, _)| wanted(key)) else {
        return Ok(Credentials::Anonymous);
    };
    if let Some(token) = entry.registry_token.as_ref().filter(|t| !t.is_empty()) {
        return Ok(Credentials::Bearer(token.clone()));
    }
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Ok(Credentials::Basic {
            username: username.clone(),
            password: password.clone(),
        });
    }
    match &entry.auth {
        Some(auth) if !auth.is_empty() => {
            let bad = || Error::BadAuth {
                registry: key.clone(),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = text.split_once(':').ok_or_else(bad)?;
            Ok(Credentials::Basic {
                username: username.to_string(),
                password: password.to_string(),
            })
        }
        _ if entry.identity_token.as_ref().is_some_and(|t| !t.is_empty()) => {
            Err(Error::IdentityTokenOnly {
                registry: key.clone(),
            })
        }
        _ => Ok(Credentials::Anonymous),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Credentials {
        Credentials::Basic {
            username: user.into(),
            password: password.into(),
        }
    }

    #[test]
    fn reads_auth_username_password_and_tokens() {
        // "flux:s3cr:et" — passwords may contain colons.
        let config = br#"{"auths": {
            "ghcr.io": {"auth": "Zmx1eDpzM2NyOmV0"},
            "https://registry.example.com:5000/v1/": {"username": "u", "password": "p"},
            "token.example.com": {"registrytoken": "tok"},
            "index.docker.io": {"auth": "ZDpo"}
        }}"#;
        assert_eq!(
            from_docker_config(config, "ghcr.io").unwrap(),
            basic("flux", "s3cr:et")
        );
        assert_eq!(
            from_docker_config(config, "registry.example.com:5000").unwrap(),
            basic("u", "p")
        );
        assert_eq!(
            from_docker_config(config, "token.example.com").unwrap(),
            Credentials::Bearer("tok".into())
        );
        assert_eq!(
            from_docker_config(config, "docker.io").unwrap(),
            basic("d", "h")
        );
        assert_eq!(
            from_docker_config(config, "quay.io").unwrap(),
            Credentials::Anonymous
        );
        assert_eq!(
            from_docker_config(config, "registry.example.com").unwrap(),
            Credentials::Anonymous,
            "port matters"
        );
    }

    #[test]
    fn malformed_configs_are_errors_naming_the_entry() {
        assert!(matches!(
            from_docker_config(b"{", "ghcr.io"),
            Err(Error::NotJson(_))
        ));
        let error = from_docker_config(
            br#"{"auths": {"ghcr.io": {"auth": "bm9jb2xvbg=="}}}"#,
            "ghcr.io",
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the Secret's entry for ghcr.io has an auth field that is not base64 of user:password"
        );
    }

    #[test]
    fn credentials_never_show_secrets_in_debug_output() {
        let text = format!(
            "{:?} {:?}",
            basic("flux", "hunter2"),
            Credentials::Bearer("tok".into())
        );
        assert!(
            !text.contains("hunter2") && !text.contains("tok)"),
            "{text}"
        );
    }
}
