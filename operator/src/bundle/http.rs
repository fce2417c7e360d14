//! Every read from a registry — resolving a tag (HEAD), manifests, blobs, tag lists, and the
//! token requests they may need — with a hard cap: oci-client reads manifests, tag lists,
//! token responses and the GET it falls back to when a HEAD lacks `Docker-Content-Digest`
//! whole before anyone can look at their size, so a registry that streams an endless body
//! would grow memory until the request timeout. Here bodies stream and the read stops the
//! moment one passes its cap (or at once, when `Content-Length` already says so); blobs are
//! handed to the caller as a stream to read within their declared size.
//!
//! Auth follows the distribution spec's token flow, driven by the resource's own challenge:
//! the request goes out with what the credentials give directly (basic or a bearer token);
//! on `401` with `WWW-Authenticate: Bearer realm=…,service=…` a pull token for the repository
//! is fetched from the realm (with the basic credentials, if any) and the request is sent
//! once more. Tokens are kept per repository for the life of the client.

use std::{collections::HashMap, sync::Mutex};

use http::{HeaderMap, HeaderValue, StatusCode, header};
use oci_client::{Reference, errors::OciDistributionError};

use super::oci::{Credentials, Error, RegistryConfig};
use crate::bundle::reference::ArtifactRef;

/// The scheme of a registry: plain HTTP for the hosts listed as insecure (`host:port`,
/// exactly as in references), HTTPS otherwise. The same rule as oci-client's
/// `ClientProtocol::HttpsExcept`.
pub(super) fn scheme_for(insecure: &[String], registry: &str) -> &'static str {
    if insecure.iter().any(|host| host == registry) {
        "http"
    } else {
        "https"
    }
}

/// What a `WWW-Authenticate` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
    },
    Basic,
}

/// The challenge to answer: the first `Bearer` challenge with a realm, else `Basic` when one
/// is offered. Parameters are `key=token` or `key="quoted \"string\""`; several challenges
/// may share the header, separated by commas.
pub(super) fn parse_challenge(value: &str) -> Option<Challenge> {
    let mut challenges: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        let end = rest
            .find(|c: char| c == '=' || c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        let token = &rest[..end];
        let after = rest[end..].trim_start_matches([' ', '\t']);
        if let Some(value_part) = after.strip_prefix('=')
            && !challenges.is_empty()
            && !value_part.starts_with('=')
        {
            // A parameter of the current challenge.
            let value_part = value_part.trim_start();
            let (value, remaining) = if let Some(quoted) = value_part.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut consumed = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            consumed = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[consumed..])
            } else {
                let end = value_part.find(',').unwrap_or(value_part.len());
                (value_part[..end].trim().to_string(), &value_part[end..])
            };
            if let Some((_, params)) = challenges.last_mut() {
                params.push((token.to_ascii_lowercase(), value));
            }
            rest = remaining;
        } else if token.is_empty() {
            // Stray characters (a token68's `=` padding): skip one.
            let mut chars = rest.chars();
            chars.next();
            rest = chars.as_str();
        } else {
            // A new challenge: its scheme.
            challenges.push((token.to_ascii_lowercase(), Vec::new()));
            rest = after;
        }
    }
    let bearer = challenges.iter().find_map(|(scheme, params)| {
        let param = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        };
        (scheme == "bearer")
            .then(|| param("realm"))
            .flatten()
            .filter(|realm| !realm.is_empty())
            .map(|realm| Challenge::Bearer {
                realm,
                service: param("service"),
            })
    });
    bearer.or_else(|| {
        challenges
            .iter()
            .any(|(scheme, _)| scheme == "basic")
            .then_some(Challenge::Basic)
    })
}

/// The token in a token endpoint's answer (`token`, or OAuth2's `access_token`).
pub(super) fn parse_token(body: &[u8]) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        token: Option<String>,
        access_token: Option<String>,
    }
    let response: TokenResponse = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    response
        .token
        .or(response.access_token)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| "the token response has neither token nor access_token".to_string())
}

/// Why a capped read stopped.
#[derive(Debug)]
pub(super) enum ReadError {
    /// More than the cap arrived (or was announced).
    TooLarge,
    Transport(reqwest::Error),
}

/// Reads `response`'s body, never holding more than `limit` bytes: refused at once when
/// `Content-Length` is over the cap, and stopped as soon as the streamed body passes it.
pub(super) async fn read_capped(
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, ReadError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit)
    {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Error bodies are read only this far, for the message (never an error of their own).
const ERROR_BODY_BYTES: u64 = 64 * 1024;

/// fluxop's registry reads, bound to one set of credentials.
pub(super) struct Reads {
    client: Result<reqwest::Client, String>,
    insecure: Vec<String>,
    timeout: std::time::Duration,
    credentials: Credentials,
    /// `Authorization` values from the token flow, per `registry/repository`.
    tokens: Mutex<HashMap<String, HeaderValue>>,
}

/// A successful small read.
pub(super) struct Body {
    pub bytes: Vec<u8>,
    pub headers: HeaderMap,
}

impl Reads {
    pub(super) fn new(config: &RegistryConfig, credentials: Credentials) -> Self {
        let build = || -> Result<reqwest::Client, String> {
            let mut certificates = Vec::new();
            for pem in &config.ca_pem {
                certificates.extend(
                    reqwest::Certificate::from_pem_bundle(pem)
                        .map_err(|e| format!("the registry CA bundle does not parse: {e}"))?,
                );
            }
            reqwest::Client::builder()
                .tls_certs_merge(certificates)
                .connect_timeout(config.timeout)
                .read_timeout(config.timeout)
                .user_agent(concat!("fluxop/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        };
        Self {
            client: build(),
            insecure: config.insecure.clone(),
            timeout: config.timeout,
            credentials,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, artifact: &ArtifactRef) -> Result<&reqwest::Client, Error> {
        self.client.as_ref().map_err(|detail| Error::Unreachable {
            reference: artifact.to_string(),
            detail: detail.clone(),
        })
    }

    fn classify(
        &self,
        operation: &'static str,
        artifact: &ArtifactRef,
        source: OciDistributionError,
    ) -> Error {
        Error::classify(operation, artifact, self.timeout, source)
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, HeaderValue>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A password goes to a token realm over HTTPS, or over plain HTTP only to a host the
    /// operator lists as insecure (as the registry itself is reached).
    fn may_send_password_to(&self, realm: &reqwest::Url) -> bool {
        if realm.scheme() == "https" {
            return true;
        }
        let host = realm.host_str().unwrap_or_default();
        let authority = match realm.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        self.insecure.contains(&authority)
    }

    /// What the credentials give without asking anyone.
    fn direct_authorization(&self) -> Option<HeaderValue> {
        match &self.credentials {
            Credentials::Anonymous => None,
            Credentials::Basic { username, password } => Some(basic(username, password)),
            Credentials::Bearer(token) => bearer(token),
        }
    }

    /// Sends `method` to `path` (under `/v2/<repository>/`) of `artifact`'s registry with
    /// `accept`, answering a bearer challenge once with a pull token; returns the response
    /// when it is `200 OK`, the registry's refusal classified otherwise.
    async fn send(
        &self,
        operation: &'static str,
        artifact: &ArtifactRef,
        method: reqwest::Method,
        path: &str,
        accept: &[&str],
    ) -> Result<reqwest::Response, Error> {
        let reference = artifact.to_oci();
        let registry = reference.resolve_registry();
        let url = format!(
            "{}://{registry}/v2/{}/{path}",
            scheme_for(&self.insecure, registry),
            reference.repository(),
        );
        let key = format!("{registry}/{}", reference.repository());
        let client = self.client(artifact)?;
        let send = |authorization: Option<HeaderValue>| {
            let mut request = client.request(method.clone(), &url);
            if !accept.is_empty() {
                request = request.header(header::ACCEPT, accept.join(", "));
            }
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            request.send()
        };
        let transport = |e: reqwest::Error| self.classify(operation, artifact, e.into());

        let cached = self.lock_tokens().get(&key).cloned();
        let had_token = cached.is_some();
        let mut response = send(cached.or_else(|| self.direct_authorization()))
            .await
            .map_err(transport)?;
        if response.status() == StatusCode::UNAUTHORIZED
            && !matches!(self.credentials, Credentials::Bearer(_))
        {
            let challenge = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            let authorization = match challenge {
                Some(Challenge::Bearer { realm, service }) => {
                    let token = self
                        .token(operation, artifact, &reference, &realm, service.as_deref())
                        .await?;
                    self.lock_tokens().insert(key, token.clone());
                    Some(token)
                }
                // Basic: sent already when there are credentials, unless a stale token went
                // instead.
                Some(Challenge::Basic) if had_token => {
                    self.lock_tokens().remove(&key);
                    self.direct_authorization()
                }
                _ => None,
            };
            if let Some(authorization) = authorization {
                response = send(Some(authorization)).await.map_err(transport)?;
            }
        }
        let status = response.status();
        if status != StatusCode::OK {
            let body = read_error_body(response).await;
            return Err(self.classify(operation, artifact, status_error(status, &body, &url)));
        }
        Ok(response)
    }

    /// GETs the manifest of `artifact` (by digest when pinned, else by tag) with `accept`,
    /// the body capped at `limit` bytes.
    pub(super) async fn manifest(
        &self,
        operation: &'static str,
        artifact: &ArtifactRef,
        accept: &[&str],
        limit: u64,
    ) -> Result<Body, Error> {
        let path = format!("manifests/{}", manifest_name(artifact));
        let response = self
            .send(operation, artifact, reqwest::Method::GET, &path, accept)
            .await?;
        let headers = response.headers().clone();
        let bytes = self
            .read_small(operation, artifact, "manifest", response, limit)
            .await?;
        Ok(Body { bytes, headers })
    }

    /// The digest the registry gives for `artifact`'s manifest in `Docker-Content-Digest`,
    /// from a HEAD request: nothing is downloaded, and an answer without the header is
    /// refused rather than followed by a GET of the manifest.
    pub(super) async fn manifest_digest(
        &self,
        operation: &'static str,
        artifact: &ArtifactRef,
        accept: &[&str],
    ) -> Result<String, Error> {
        let path = format!("manifests/{}", manifest_name(artifact));
        let response = self
            .send(operation, artifact, reqwest::Method::HEAD, &path, accept)
            .await?;
        let digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|d| is_sha256_digest(d))
            .map(str::to_string);
        match digest {
            Some(digest) => Ok(digest),
            None => Err(Error::NoDigestHeader {
                operation,
                reference: artifact.to_string(),
                registry: artifact.registry.clone(),
            }),
        }
    }

    /// GETs the blob `digest` of `artifact`'s repository; the caller reads the body within
    /// the blob's declared size.
    pub(super) async fn blob(
        &self,
        operation: &'static str,
        artifact: &ArtifactRef,
        digest: &str,
    ) -> Result<reqwest::Response, Error> {
        self.send(
            operation,
            artifact,
            reqwest::Method::GET,
            &format!("blobs/{digest}"),
            &[],
        )
        .await
    }

    /// One page of `artifact`'s repository's tags (`n` of them after `last`), the answer
    /// capped like every small body.
    pub(super) async fn tags_page(
        &self,
        operation: &'static str,
        artifact: &ArtifactRef,
        n: usize,
        last: Option<&str>,
    ) -> Result<Vec<String>, Error> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut path = format!("tags/list?n={n}");
        if let Some(last) = last {
            path.push_str("&last=");
            for byte in last.bytes() {
                if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-') {
                    path.push(byte as char);
                } else {
                    path.push_str(&format!("%{byte:02X}"));
                }
            }
        }
        let response = self
            .send(
                operation,
                artifact,
                reqwest::Method::GET,
                &path,
                &["application/json"],
            )
            .await?;
        let body = self
            .read_small(
                operation,
                artifact,
                "tag list",
                response,
                crate::policy::registry::MAX_SMALL_BODY_BYTES,
            )
            .await?;
        let list: TagList = serde_json::from_slice(&body).map_err(|e| {
            self.classify(
                operation,
                artifact,
                OciDistributionError::SpecViolationError(format!(
                    "the tag list does not parse: {e}"
                )),
            )
        })?;
        Ok(list.tags.unwrap_or_default())
    }

    /// Reads a small body within `limit`.
    async fn read_small(
        &self,
        operation: &'static str,
        artifact: &ArtifactRef,
        what: &'static str,
        response: reqwest::Response,
        limit: u64,
    ) -> Result<Vec<u8>, Error> {
        match read_capped(response, limit).await {
            Ok(bytes) => Ok(bytes),
            Err(ReadError::TooLarge) => Err(Error::BodyTooLarge {
                operation,
                reference: artifact.to_string(),
                what,
                limit,
            }),
            Err(ReadError::Transport(e)) => Err(self.classify(operation, artifact, e.into())),
        }
    }

    /// A pull token for `reference`'s repository from the challenge's realm.
    async fn token(
        &self,
        operation: &'static str,
        artifact: &ArtifactRef,
        reference: &Reference,
        realm: &str,
        service: Option<&str>,
    ) -> Result<HeaderValue, Error> {
        let client = self.client(artifact)?;
        let mut url = reqwest::Url::parse(realm).map_err(|e| {
            self.classify(
                operation,
                artifact,
                OciDistributionError::UrlParseError(format!("token realm {realm:?}: {e}")),
            )
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair(
                "scope",
                &format!("repository:{}:pull", reference.repository()),
            );
        }
        let mut request = client.get(url.clone());
        if let Credentials::Basic { username, password } = &self.credentials {
            if !self.may_send_password_to(&url) {
                return Err(Error::PlainHttpRealm {
                    reference: artifact.to_string(),
                    realm: url.to_string(),
                });
            }
            request = request.header(header::AUTHORIZATION, basic(username, password));
        }
        let transport = |e: reqwest::Error| self.classify(operation, artifact, e.into());
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status != StatusCode::OK {
            let body = read_error_body(response).await;
            let text = String::from_utf8_lossy(&body).into_owned();
            // A token service that cannot answer now is an outage; any other refusal is one.
            let source = if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                OciDistributionError::ServerError {
                    code: status.as_u16(),
                    url: url.to_string(),
                    message: text,
                }
            } else {
                OciDistributionError::AuthenticationFailure(text)
            };
            return Err(self.classify(operation, artifact, source));
        }
        let body = match read_capped(response, crate::policy::registry::MAX_SMALL_BODY_BYTES).await
        {
            Ok(body) => body,
            Err(ReadError::TooLarge) => {
                return Err(Error::BodyTooLarge {
                    operation,
                    reference: artifact.to_string(),
                    what: "token response",
                    limit: crate::policy::registry::MAX_SMALL_BODY_BYTES,
                });
            }
            Err(ReadError::Transport(e)) => return Err(transport(e)),
        };
        let token = parse_token(&body).map_err(|e| {
            self.classify(
                operation,
                artifact,
                OciDistributionError::RegistryTokenDecodeError(e),
            )
        })?;
        bearer(&token).ok_or_else(|| {
            self.classify(
                operation,
                artifact,
                OciDistributionError::RegistryTokenDecodeError(
                    "the token is not a valid header value".into(),
                ),
            )
        })
    }
}

/// The manifest to ask for: the digest when pinned, else the tag.
fn manifest_name(artifact: &ArtifactRef) -> String {
    let reference = artifact.to_oci();
    reference
        .digest()
        .or(reference.tag())
        .unwrap_or("latest")
        .to_string()
}

/// `sha256:` and 64 lowercase hex digits.
pub(super) fn is_sha256_digest(value: &str) -> bool {
    value.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn bearer(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

fn basic(username: &str, password: &str) -> HeaderValue {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

/// The first part of an error body (a transport error just ends it).
async fn read_error_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = ERROR_BODY_BYTES as usize - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() as u64 >= ERROR_BODY_BYTES {
            break;
        }
    }
    body
}

/// A non-`200` answer as oci-client reports it, so [`Error::classify`] sorts it the same way.
fn status_error(status: StatusCode, body: &[u8], url: &str) -> OciDistributionError {
    match status {
        StatusCode::UNAUTHORIZED => OciDistributionError::UnauthorizedError {
            url: url.to_string(),
        },
        s if s.is_success() => OciDistributionError::SpecViolationError(format!(
            "Expected HTTP Status {}, got {status} instead",
            StatusCode::OK
        )),
        s if s.is_client_error() => match serde_json::from_slice(body) {
            Ok(envelope) => OciDistributionError::RegistryError {
                envelope,
                url: url.to_string(),
            },
            Err(_) => OciDistributionError::ServerError {
                code: s.as_u16(),
                url: url.to_string(),
                message: String::from_utf8_lossy(body).into_owned(),
            },
        },
        s => OciDistributionError::ServerError {
            code: s.as_u16(),
            url: url.to_string(),
            message: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_the_listed_registries() {
        let insecure = vec!["127.0.0.1:5000".to_string(), "registry.local".to_string()];
        assert_eq!(scheme_for(&insecure, "127.0.0.1:5000"), "http");
        assert_eq!(scheme_for(&insecure, "registry.local"), "http");
        assert_eq!(scheme_for(&insecure, "127.0.0.1:5001"), "https");
        assert_eq!(scheme_for(&insecure, "registry.local:443"), "https");
        assert_eq!(scheme_for(&[], "127.0.0.1:5000"), "https");
    }

    #[test]
    fn bearer_challenges_give_realm_and_service() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
            })
        );
        // Case-insensitive scheme and keys, unquoted values, spaces after commas, escapes.
        assert_eq!(
            parse_challenge(r#"bearer Realm=https://auth.example/token, service="a \"b\"""#),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("a \"b\"".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Bearer realm="https://auth.example/token""#),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: None,
            })
        );
        // Bearer wins over Basic, wherever it stands.
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry", Bearer realm="https://t/x",service="s""#),
            Some(Challenge::Bearer {
                realm: "https://t/x".into(),
                service: Some("s".into()),
            })
        );
    }

    #[test]
    fn basic_and_unusable_challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Basic"), Some(Challenge::Basic));
        // A bearer challenge without a realm cannot be answered.
        assert_eq!(parse_challenge(r#"Bearer service="s""#), None);
        assert_eq!(parse_challenge(r#"Negotiate"#), None);
        assert_eq!(parse_challenge(""), None);
    }

    #[test]
    fn tokens_come_from_token_or_access_token() {
        assert_eq!(parse_token(br#"{"token":"t1"}"#).unwrap(), "t1");
        assert_eq!(
            parse_token(br#"{"access_token":"t2","expires_in":300}"#).unwrap(),
            "t2"
        );
        assert_eq!(
            parse_token(br#"{"token":"t1","access_token":"t2"}"#).unwrap(),
            "t1"
        );
        assert!(parse_token(br#"{"expires_in":300}"#).is_err());
        assert!(parse_token(br#"{"token":""}"#).is_err());
        assert!(parse_token(b"not json").is_err());
    }

    #[test]
    fn error_statuses_are_reported_as_oci_client_does() {
        let url = "http://r/v2/a/manifests/v1";
        assert!(matches!(
            status_error(StatusCode::UNAUTHORIZED, b"", url),
            OciDistributionError::UnauthorizedError { .. }
        ));
        assert!(matches!(
            status_error(StatusCode::NOT_FOUND, b"gone", url),
            OciDistributionError::ServerError { code: 404, .. }
        ));
        assert!(matches!(
            status_error(
                StatusCode::NOT_FOUND,
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}"#,
                url
            ),
            OciDistributionError::RegistryError { .. }
        ));
        assert!(matches!(
            status_error(StatusCode::SERVICE_UNAVAILABLE, b"", url),
            OciDistributionError::ServerError { code: 503, .. }
        ));
    }

    /// A registry on loopback that wants a bearer token from its own `/token` (given for the
    /// basic credentials `u:p` only) and answers manifests as `manifest` says.
    mod mock {
        use std::sync::{
            Arc,
            atomic::{AtomicU32, Ordering},
        };

        use tokio::{
            io::{AsyncReadExt, AsyncWriteExt},
            net::TcpListener,
        };

        #[derive(Clone, Copy)]
        pub enum Answer {
            Manifest,
            Endless,
            Status(u16),
            HugeToken,
            /// The challenge names the realm by another host name (`localhost`), which is
            /// not listed as insecure.
            OtherHostRealm,
        }

        pub const MANIFEST: &[u8] = br#"{"schemaVersion":2}"#;

        pub struct Mock {
            pub address: String,
            pub token_requests: Arc<AtomicU32>,
        }

        pub async fn start(answer: Answer) -> Mock {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap().to_string();
            let token_requests = Arc::new(AtomicU32::new(0));
            let realm = match answer {
                Answer::OtherHostRealm => format!(
                    "http://localhost:{}/token",
                    address.rsplit(':').next().unwrap_or_default()
                ),
                _ => format!("http://{address}/token"),
            };
            let counter = token_requests.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (realm, counter) = (realm.clone(), counter.clone());
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                                return;
                            }
                            head.push(byte[0]);
                        }
                        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                        let path = head
                            .split_whitespace()
                            .nth(1)
                            .unwrap_or_default()
                            .to_string();
                        let reply = |status: &str, extra: &str, body: &[u8]| {
                            let mut out = format!(
                                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            out.extend_from_slice(body);
                            out
                        };
                        let out = if path.starts_with("/token") {
                            counter.fetch_add(1, Ordering::SeqCst);
                            // base64("u:p") = dTpw
                            if !head.contains("authorization: basic dtpw")
                                || !path.contains("scope=repository%3aflux%2fbundle%3apull")
                                || !path.contains("service=mock")
                            {
                                reply("401 Unauthorized", "", b"")
                            } else if matches!(answer, Answer::HugeToken) {
                                let mut body = br#"{"token":""#.to_vec();
                                body.resize(5 << 20, b'a');
                                body.extend_from_slice(br#""}"#);
                                reply("200 OK", "", &body)
                            } else {
                                reply("200 OK", "", br#"{"access_token":"t0k"}"#)
                            }
                        } else if !head.contains("authorization: bearer t0k") {
                            reply(
                                "401 Unauthorized",
                                &format!(
                                    "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"mock\",scope=\"x\"\r\n"
                                ),
                                b"",
                            )
                        } else {
                            match answer {
                                Answer::Manifest | Answer::HugeToken | Answer::OtherHostRealm => {
                                    reply("200 OK", "", MANIFEST)
                                }
                                Answer::Status(code) => {
                                    reply(&format!("{code} Status"), "", b"nope")
                                }
                                Answer::Endless => {
                                    let _ = stream
                                        .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                                        .await;
                                    let block = vec![b' '; 64 * 1024];
                                    while stream.write_all(&block).await.is_ok() {}
                                    return;
                                }
                            }
                        };
                        let _ = stream.write_all(&out).await;
                        let _ = stream.shutdown().await;
                    });
                }
            });
            Mock {
                address,
                token_requests,
            }
        }
    }

    async fn pull(
        answer: mock::Answer,
        credentials: Credentials,
    ) -> (Result<(String, Vec<u8>), Error>, u32) {
        let mock = mock::start(answer).await;
        let registry = super::super::registry::Registry::new(
            RegistryConfig {
                insecure: vec![mock.address.clone()],
                timeout: std::time::Duration::from_secs(10),
                ..RegistryConfig::default()
            },
            credentials,
        );
        let artifact =
            ArtifactRef::parse(&format!("oci://{}/flux/bundle:v1", mock.address)).unwrap();
        let first = registry
            .raw_manifest("pull manifest of", &artifact, &["application/json"])
            .await;
        if first.is_ok() {
            // The token is kept: a second pull asks for none.
            registry
                .raw_manifest("pull manifest of", &artifact, &["application/json"])
                .await
                .unwrap();
        }
        let requests = mock
            .token_requests
            .load(std::sync::atomic::Ordering::SeqCst);
        (first, requests)
    }

    fn user() -> Credentials {
        Credentials::Basic {
            username: "u".into(),
            password: "p".into(),
        }
    }

    #[tokio::test]
    async fn the_token_flow_is_followed_once_and_its_token_kept() {
        let (result, token_requests) = pull(mock::Answer::Manifest, user()).await;
        let (digest, bytes) = result.unwrap();
        assert_eq!(bytes, mock::MANIFEST);
        assert_eq!(digest, crate::bundle::archive::digest(mock::MANIFEST));
        assert_eq!(token_requests, 1);
        // Wrong credentials: the token service refuses; that is no outage.
        let (result, _) = pull(mock::Answer::Manifest, Credentials::Anonymous).await;
        let error = result.unwrap_err();
        assert!(
            matches!(error, Error::Unauthorized { .. }) && !error.is_outage(),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn basic_credentials_go_to_a_plain_http_realm_only_on_an_insecure_host() {
        let (result, token_requests) = pull(mock::Answer::OtherHostRealm, user()).await;
        let error = result.unwrap_err().to_string();
        assert!(
            error.contains("the token realm http://localhost:")
                && error.contains("password is not sent over plain HTTP"),
            "{error}"
        );
        assert_eq!(token_requests, 0, "the password never left");
    }

    #[tokio::test]
    async fn endless_manifests_and_token_responses_stop_at_the_cap() {
        let started = std::time::Instant::now();
        let (result, _) = pull(mock::Answer::Endless, user()).await;
        let error = result.unwrap_err();
        assert!(
            matches!(
                error,
                Error::BodyTooLarge {
                    what: "manifest",
                    ..
                }
            ) && !error.is_outage(),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("manifest is larger than the limit of"),
            "{error}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let (result, _) = pull(mock::Answer::HugeToken, user()).await;
        let error = result.unwrap_err();
        assert!(
            matches!(
                error,
                Error::BodyTooLarge {
                    what: "token response",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn statuses_are_classified_as_before() {
        for (code, outage) in [
            (503, true),
            (429, true),
            (500, true),
            (404, false),
            (403, false),
        ] {
            let (result, _) = pull(mock::Answer::Status(code), user()).await;
            let error = result.unwrap_err();
            assert_eq!(error.is_outage(), outage, "{code}: {error:?}");
            match code {
                404 => assert!(matches!(error, Error::NotFound { .. }), "{error:?}"),
                403 => assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}"),
                _ => assert!(matches!(error, Error::ServerError { .. }), "{error:?}"),
            }
        }
        // Nobody listening: unreachable, an outage.
        let registry = super::super::registry::Registry::new(
            RegistryConfig {
                insecure: vec!["127.0.0.1:1".into()],
                ..RegistryConfig::default()
            },
            Credentials::Anonymous,
        );
        let artifact = ArtifactRef::parse("oci://127.0.0.1:1/flux/bundle:v1").unwrap();
        let error = registry
            .raw_manifest("pull manifest of", &artifact, &["application/json"])
            .await
            .unwrap_err();
        assert!(error.is_outage(), "{error:?}");
    }
}
