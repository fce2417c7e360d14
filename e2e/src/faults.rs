//! A misbehaving registry: an HTTP/1.1 proxy on loopback in front of the real test registry
//! that injects faults, switchable while a test runs ([`FaultProxy::set`]). Requests are
//! forwarded one per connection (`Connection: close`), so a new mode takes effect with the
//! next request. Faults on blobs hit only blob GETs whose path contains the target set with
//! [`FaultProxy::target_blobs`] (for example the bundle layer's digest), so manifests and
//! signatures can pass while the layer fails. Manifest faults hit manifest GETs by digest.
//!
//! The proxy runs on a thread and runtime of its own: a test blocking its runtime (a
//! `kubectl` call) never stalls the proxy, which would look like a registry fault.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What the proxy does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything unchanged.
    PassThrough,
    /// Blob GETs: send the registry's response headers, then nothing, ever.
    Stall,
    /// Every request: accept the connection, read the request, never answer.
    Hang,
    /// Blob GETs: answer with more bytes than the registry has (and the manifest declares),
    /// with a `Content-Length` saying so.
    Oversized,
    /// Blob GETs: `200 OK` without a length, then bytes forever.
    Endless,
    /// Blob GETs: the registry's headers and half of the body, then close.
    Truncated,
    /// Every request: `500 Internal Server Error`.
    ServerError,
    /// Every connection is closed at once, unanswered.
    Down,
    /// Blob GETs: half of the body, then the connection drops and the proxy turns [`Mode::Down`].
    DisappearMidPull,
    /// Manifest GETs by digest (the bundle's manifest, pulled once the tag is resolved):
    /// `200 OK` without a length, then bytes forever. HEADs (resolving the tag) and GETs by
    /// tag (the `.sig` signature manifest) pass.
    EndlessManifest,
    /// Manifest GETs by digest: `200 OK` with a body (and `Content-Length`) of
    /// [`OVERSIZED_MANIFEST_BYTES`], over fluxop's limit for small bodies.
    OversizedManifest,
    /// Manifest HEADs by tag (resolving a tag): the registry's answer without its
    /// `Docker-Content-Digest` header; manifest GETs by tag (what a client falls back to):
    /// `200 OK` without a length, then bytes forever.
    HeadWithoutDigest,
    /// Every request without `Authorization`: `401` with a bearer challenge whose realm is
    /// the proxy's `/token`, which answers `200 OK` without a length, then bytes forever.
    EndlessToken,
    /// The `.sig` signature manifest (GET by tag): the registry's, with its first layer
    /// listed [`SIGNATURE_LAYER_COPIES`] times (and no `Docker-Content-Digest`).
    ManySignatureLayers,
    /// Every request: `401 Unauthorized` without a challenge (a revoked or expired
    /// credential).
    Unauthorized,
    /// Every manifest request: `404` with the registry's `MANIFEST_UNKNOWN` (a deleted tag).
    NotFound,
}

/// How many times [`Mode::ManySignatureLayers`] lists the signature layer.
pub const SIGNATURE_LAYER_COPIES: usize = 5000;

/// The body size [`Mode::OversizedManifest`] answers with: 1 MiB over
/// `fluxop::policy::registry::MAX_SMALL_BODY_BYTES`.
pub const OVERSIZED_MANIFEST_BYTES: u64 =
    fluxop::policy::registry::MAX_SMALL_BODY_BYTES + (1 << 20);

#[derive(Debug)]
struct State {
    mode: Mode,
    /// Blob faults hit only blob paths containing this (all blobs when `None`).
    target: Option<String>,
}

/// The proxy; stopped when dropped.
pub struct FaultProxy {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    faults: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const BLOCK: usize = 64 * 1024;

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:<free port>` forwarding to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            mode: Mode::PassThrough,
            target: None,
        }));
        let faults = Arc::new(AtomicU64::new(0));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy listens");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let address = std_listener.local_addr().expect("proxy address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (upstream, shared, counter) = (upstream.to_string(), state.clone(), faults.clone());
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("tokio listener");
                    let accept = async {
                        loop {
                            let Ok((client, _)) = listener.accept().await else {
                                continue;
                            };
                            let (upstream, state, counter) =
                                (upstream.clone(), shared.clone(), counter.clone());
                            tokio::spawn(async move {
                                let _ = handle(client, &upstream, &state, &counter).await;
                            });
                        }
                    };
                    tokio::select! {
                        _ = accept => {}
                        _ = stopped => {}
                    }
                });
                // Stalled and endless connections end with the runtime.
                runtime.shutdown_background();
            })
            .expect("proxy thread");
        Self {
            address,
            state,
            faults,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`, as in artifact references and `--insecure-registry`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    pub fn set(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    pub fn mode(&self) -> Mode {
        self.lock().mode
    }

    /// Blob faults hit only blob GETs whose path contains `target` (all blobs with `None`).
    pub fn target_blobs(&self, target: Option<&str>) {
        self.lock().target = target.map(str::to_string);
    }

    /// How many requests got a fault so far.
    pub fn faults_injected(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads an HTTP head (up to the blank line); returns it and the bytes read past it.
async fn read_head(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<(String, Vec<u8>)> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buffer.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buffer).into_owned(), rest));
        }
        if buffer.len() > 64 * 1024 {
            return Err(std::io::Error::other("HTTP head over 64 KiB"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// The request head for the upstream: its `Host`, and `Connection: close`.
fn rewrite_request(head: &str, upstream: &str) -> String {
    let mut lines = head.trim_end().split("\r\n");
    let mut out = format!("{}\r\n", lines.next().unwrap_or_default());
    for line in lines {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !matches!(name.as_str(), "host" | "connection" | "keep-alive") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("Host: {upstream}\r\nConnection: close\r\n\r\n"));
    out
}

fn header(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// The response head with `Content-Length` replaced (or removed with `None`).
fn with_length(head: &str, length: Option<u64>) -> String {
    let mut out = String::new();
    for line in head.trim_end().split("\r\n") {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if name != "content-length" && name != "connection" {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    if let Some(length) = length {
        out.push_str(&format!("Content-Length: {length}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}

/// Waits until the client closes its side (or a long while passes).
async fn until_closed(client: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(600), async {
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

async fn handle(
    mut client: TcpStream,
    upstream: &str,
    state: &Mutex<State>,
    faults: &AtomicU64,
) -> std::io::Result<()> {
    let (mode, target) = {
        let state = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (state.mode, state.target.clone())
    };
    if mode == Mode::Down {
        faults.fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let (head, body_start) = read_head(&mut client).await?;
    let mut request_line = head.split_whitespace();
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    match mode {
        Mode::Hang => {
            faults.fetch_add(1, Ordering::Relaxed);
            until_closed(&mut client).await;
            return Ok(());
        }
        Mode::Unauthorized => {
            faults.fetch_add(1, Ordering::Relaxed);
            let body =
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
            client
                .write_all(
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await?;
            return client.shutdown().await;
        }
        Mode::NotFound if path.contains("/manifests/") => {
            faults.fetch_add(1, Ordering::Relaxed);
            let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
            client
                .write_all(
                    format!(
                        "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await?;
            return client.shutdown().await;
        }
        Mode::ServerError => {
            faults.fetch_add(1, Ordering::Relaxed);
            let body = "injected fault: internal server error\n";
            client
                .write_all(
                    format!(
                        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await?;
            return client.shutdown().await;
        }
        _ => {}
    }
    if method == "GET"
        && path.contains("/manifests/sha256:")
        && matches!(mode, Mode::EndlessManifest | Mode::OversizedManifest)
    {
        faults.fetch_add(1, Ordering::Relaxed);
        return bad_manifest(client, mode).await;
    }
    let by_tag = path.contains("/manifests/") && !path.contains("/manifests/sha256:");
    match mode {
        Mode::HeadWithoutDigest if by_tag && method == "GET" => {
            faults.fetch_add(1, Ordering::Relaxed);
            return bad_manifest(client, Mode::EndlessManifest).await;
        }
        Mode::HeadWithoutDigest if by_tag && method == "HEAD" => {
            faults.fetch_add(1, Ordering::Relaxed);
            let (response_head, _) = ask_upstream(&head, upstream).await?;
            let stripped: String = response_head
                .trim_end()
                .split("\r\n")
                .filter(|line| {
                    !line
                        .to_ascii_lowercase()
                        .starts_with("docker-content-digest:")
                })
                .map(|line| format!("{line}\r\n"))
                .collect();
            let length = header(&response_head, "content-length").and_then(|l| l.parse().ok());
            client
                .write_all(with_length(&stripped, length).as_bytes())
                .await?;
            return client.shutdown().await;
        }
        Mode::EndlessToken if path.starts_with("/token") => {
            faults.fetch_add(1, Ordering::Relaxed);
            client
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"token\":\"")
                .await?;
            let block = vec![b'a'; BLOCK];
            while client.write_all(&block).await.is_ok() {}
            return Ok(());
        }
        Mode::EndlessToken if header(&head, "authorization").is_none() => {
            faults.fetch_add(1, Ordering::Relaxed);
            let realm = format!("http://{}/token", client.local_addr()?);
            client
                .write_all(
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"fault-proxy\"\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
                    )
                    .as_bytes(),
                )
                .await?;
            return client.shutdown().await;
        }
        Mode::ManySignatureLayers if by_tag && method == "GET" && path.ends_with(".sig") => {
            faults.fetch_add(1, Ordering::Relaxed);
            let (response_head, body) = ask_upstream(&head, upstream).await?;
            let mut manifest: serde_json::Value =
                serde_json::from_slice(&body).map_err(std::io::Error::other)?;
            let first = manifest["layers"][0].clone();
            manifest["layers"] = serde_json::Value::Array(vec![first; SIGNATURE_LAYER_COPIES]);
            let body = serde_json::to_vec(&manifest).map_err(std::io::Error::other)?;
            let status_line = response_head
                .split("\r\n")
                .next()
                .unwrap_or("HTTP/1.1 200 OK");
            client
                .write_all(
                    format!(
                        "{status_line}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await?;
            client.write_all(&body).await?;
            return client.shutdown().await;
        }
        _ => {}
    }
    let blob_fault = method == "GET"
        && path.contains("/blobs/")
        && target.as_deref().is_none_or(|t| path.contains(t))
        && !matches!(
            mode,
            Mode::PassThrough
                | Mode::EndlessManifest
                | Mode::OversizedManifest
                | Mode::HeadWithoutDigest
                | Mode::EndlessToken
                | Mode::ManySignatureLayers
                | Mode::Unauthorized
                | Mode::NotFound
        );

    let mut server = TcpStream::connect(upstream).await?;
    server
        .write_all(rewrite_request(&head, upstream).as_bytes())
        .await?;
    server.write_all(&body_start).await?;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // A request body (pushes through the proxy) streams on in the background.
    let uploading = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
        client_read
    });

    if !blob_fault {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
        uploading.abort();
        return Ok(());
    }
    faults.fetch_add(1, Ordering::Relaxed);
    let (response_head, mut body) = read_head(&mut server_read).await?;
    let length: Option<u64> = header(&response_head, "content-length").and_then(|l| l.parse().ok());
    match mode {
        Mode::Stall => {
            client_write.write_all(response_head.as_bytes()).await?;
            client_write.flush().await?;
            // Keep the connection open, silent, until the client gives up (its side closes,
            // which ends the upload copy).
            let _ = tokio::time::timeout(Duration::from_secs(600), uploading).await;
            return Ok(());
        }
        Mode::Oversized => {
            server_read.read_to_end(&mut body).await?;
            let extra = vec![b'x'; 1 << 20];
            client_write
                .write_all(
                    with_length(&response_head, Some((body.len() + extra.len()) as u64)).as_bytes(),
                )
                .await?;
            client_write.write_all(&body).await?;
            client_write.write_all(&extra).await?;
            let _ = client_write.shutdown().await;
        }
        Mode::Endless => {
            let status_line = response_head
                .split("\r\n")
                .next()
                .unwrap_or("HTTP/1.1 200 OK");
            client_write
                .write_all(
                    format!("{status_line}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await?;
            let block = vec![0u8; BLOCK];
            // Until the client hangs up.
            while client_write.write_all(&block).await.is_ok() {}
        }
        Mode::Truncated | Mode::DisappearMidPull => {
            let half = length.unwrap_or(2 * BLOCK as u64) / 2;
            client_write.write_all(response_head.as_bytes()).await?;
            let mut sent = 0u64;
            let first = body.len().min(half as usize);
            client_write.write_all(&body[..first]).await?;
            sent += first as u64;
            body.clear();
            let mut buffer = vec![0u8; BLOCK];
            while sent < half {
                let n = server_read.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                let n = n.min((half - sent) as usize);
                client_write.write_all(&buffer[..n]).await?;
                sent += n as u64;
            }
            client_write.flush().await?;
            if mode == Mode::DisappearMidPull {
                state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .mode = Mode::Down;
            }
            // Dropping both halves closes the connection mid-body.
        }
        Mode::PassThrough
        | Mode::Hang
        | Mode::ServerError
        | Mode::Down
        | Mode::EndlessManifest
        | Mode::OversizedManifest
        | Mode::HeadWithoutDigest
        | Mode::EndlessToken
        | Mode::ManySignatureLayers
        | Mode::Unauthorized
        | Mode::NotFound => {}
    }
    uploading.abort();
    Ok(())
}

/// Sends the request (without a body) to the registry and reads its whole answer: the
/// response head and body.
async fn ask_upstream(head: &str, upstream: &str) -> std::io::Result<(String, Vec<u8>)> {
    let mut server = TcpStream::connect(upstream).await?;
    server
        .write_all(rewrite_request(head, upstream).as_bytes())
        .await?;
    let (response_head, mut body) = read_head(&mut server).await?;
    if !head.starts_with("HEAD ") {
        server.read_to_end(&mut body).await?;
    }
    Ok((response_head, body))
}

/// Answers a manifest GET with an endless or an oversized JSON-ish body (whitespace after an
/// opening brace), without asking the registry.
async fn bad_manifest(mut client: TcpStream, mode: Mode) -> std::io::Result<()> {
    let length = match mode {
        Mode::OversizedManifest => format!("Content-Length: {OVERSIZED_MANIFEST_BYTES}\r\n"),
        _ => String::new(),
    };
    client
        .write_all(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n{length}Connection: close\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await?;
    let block = vec![b' '; BLOCK];
    let mut sent = 1u64;
    // Until the client hangs up (or, oversized, the body is complete).
    while mode == Mode::EndlessManifest || sent < OVERSIZED_MANIFEST_BYTES {
        let n = match mode {
            Mode::EndlessManifest => BLOCK,
            _ => (OVERSIZED_MANIFEST_BYTES - sent).min(BLOCK as u64) as usize,
        };
        if client.write_all(&block[..n]).await.is_err() {
            return Ok(());
        }
        sent += n as u64;
    }
    client.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_rewritten_to_the_upstream_and_one_per_connection() {
        let head = "GET /v2/a/blobs/sha256:1 HTTP/1.1\r\nhost: 127.0.0.1:1\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n";
        assert_eq!(
            rewrite_request(head, "127.0.0.1:2"),
            "GET /v2/a/blobs/sha256:1 HTTP/1.1\r\nAccept: */*\r\nHost: 127.0.0.1:2\r\nConnection: close\r\n\r\n"
        );
        let response = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nDocker-Content-Digest: d\r\n\r\n";
        assert_eq!(header(response, "content-length").as_deref(), Some("10"));
        assert_eq!(
            with_length(response, Some(20)),
            "HTTP/1.1 200 OK\r\nDocker-Content-Digest: d\r\nContent-Length: 20\r\nConnection: close\r\n\r\n"
        );
    }
}
