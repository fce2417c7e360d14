//! `/healthz`, `/readyz` and `/metrics` over plain HTTP/1.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode, body::Bytes, header, server::conn::http1, service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};

use crate::telemetry::Metrics;

pub mod metrics_auth;

/// Readiness of the operator: not ready until its caches have synced, with the reason shown
/// by `/readyz` so `kubectl describe pod` says why.
#[derive(Debug)]
pub struct Health {
    not_ready_reason: Mutex<Option<String>>,
}

impl Health {
    pub fn new(initial_reason: impl Into<String>) -> Self {
        Self {
            not_ready_reason: Mutex::new(Some(initial_reason.into())),
        }
    }

    pub fn set_ready(&self) {
        *self
            .not_ready_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    pub fn set_not_ready(&self, reason: impl Into<String>) {
        *self
            .not_ready_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(reason.into());
    }

    /// `None` when ready, else why not.
    pub fn not_ready_reason(&self) -> Option<String> {
        self.not_ready_reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the HTTP endpoints read.
pub struct State {
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    /// With `--metrics-auth`: `/metrics` only for a token allowed to read it.
    pub metrics_auth: Option<metrics_auth::MetricsAuth>,
}

/// [`route`], with `/metrics` behind [`metrics_auth`] when it is on.
async fn respond(state: &State, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    use metrics_auth::Verdict;
    const PLAIN: &str = "text/plain; charset=utf-8";
    let path = request.uri().path();
    if path == "/metrics"
        && let Some(auth) = &state.metrics_auth
    {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let (status, why) = match auth.check(authorization).await {
            Verdict::Allowed => return route(state, path),
            Verdict::Unauthenticated(why) => (StatusCode::UNAUTHORIZED, why),
            Verdict::Forbidden(why) => (StatusCode::FORBIDDEN, why),
            Verdict::Unavailable(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
        };
        return text(status, PLAIN, format!("{why}\n"));
    }
    route(state, path)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}

/// The routing rule of every endpoint, pure so it can be unit-tested.
pub fn route(state: &State, path: &str) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    match path {
        "/healthz" | "/livez" => text(StatusCode::OK, PLAIN, "ok\n".into()),
        "/readyz" => match state.health.not_ready_reason() {
            None => text(StatusCode::OK, PLAIN, "ok\n".into()),
            Some(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                format!("not ready: {reason}\n"),
            ),
        },
        "/metrics" => text(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            state.metrics.encode(),
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: try /healthz, /readyz or /metrics\n".into(),
        ),
    }
}

/// Binds `addr` first (so a taken port fails start-up, not later), then serves forever.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// How much a client of the endpoints may take: they answer small requests at once, so
/// anything slow or numerous is someone else's problem, not the operator's.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request's headers must arrive within this once they have begun.
    pub header_read_timeout: Duration,
    /// A connection is closed (gracefully) after this long, however busy.
    pub connection_lifetime: Duration,
    /// Connections served at once; more are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        use crate::policy::http;
        Self {
            header_read_timeout: http::HEADER_READ_TIMEOUT,
            connection_lifetime: http::CONNECTION_LIFETIME,
            max_connections: http::MAX_CONNECTIONS,
        }
    }
}

pub async fn serve(listener: TcpListener, state: Arc<State>) {
    serve_within(listener, state, Limits::default()).await
}

/// Serves forever within `limits`. Accept errors (out of file descriptors, most often)
/// repeat at once, so they are waited out with a growing pause instead of spinning.
pub async fn serve_within(listener: TcpListener, state: Arc<State>, limits: Limits) {
    use crate::policy::http::{ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN};
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(connection) => {
                backoff = ACCEPT_BACKOFF_MIN;
                connection
            }
            Err(error) => {
                tracing::warn!(%error, pause_ms = backoff.as_millis() as u64, "accepting an HTTP connection failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, limit = limits.max_connections, "too many HTTP connections; closing a new one");
            drop(stream);
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, &request).await) }
            });
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(crate::policy::http::MAX_BUFFER_BYTES);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, %peer, "HTTP connection ended with an error");
                    }
                }
                () = tokio::time::sleep(limits.connection_lifetime) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.header_read_timeout, connection).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            health: Arc::new(Health::new("FluxInstance cache not synced")),
            metrics: Arc::new(Metrics::new()),
            metrics_auth: None,
        }
    }

    #[test]
    fn readyz_says_why_until_ready() {
        let state = state();
        let response = route(&state, "/readyz");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        state.health.set_ready();
        assert_eq!(route(&state, "/readyz").status(), StatusCode::OK);
        state.health.set_not_ready("watch failed");
        assert_eq!(
            state.health.not_ready_reason().as_deref(),
            Some("watch failed")
        );
    }

    /// Serves `state` on a loopback port within `limits`; returns the address.
    async fn start(limits: Limits) -> SocketAddr {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(serve_within(listener, Arc::new(state()), limits));
        address
    }

    /// Reads until the server closes the connection (or `within` passes: then `None`).
    async fn closed_within(
        stream: &mut tokio::net::TcpStream,
        within: Duration,
    ) -> Option<Vec<u8>> {
        use tokio::io::AsyncReadExt;
        let mut received = Vec::new();
        tokio::time::timeout(within, stream.read_to_end(&mut received))
            .await
            .ok()
            .map(|_| received)
    }

    #[tokio::test]
    async fn a_client_that_sends_no_headers_is_dropped_and_too_many_are_refused() {
        use tokio::io::AsyncWriteExt;
        let address = start(Limits {
            header_read_timeout: Duration::from_millis(200),
            connection_lifetime: Duration::from_secs(30),
            max_connections: 2,
        })
        .await;
        // Half a request line, then silence: closed once the header timeout passes.
        let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
        slow.write_all(b"GET /hea").await.unwrap();
        assert!(
            closed_within(&mut slow, Duration::from_secs(5))
                .await
                .is_some(),
            "a silent client kept its connection"
        );
        // Two slow connections take both slots; a third is closed at once, unanswered.
        let mut first = tokio::net::TcpStream::connect(address).await.unwrap();
        first.write_all(b"GET /").await.unwrap();
        let mut second = tokio::net::TcpStream::connect(address).await.unwrap();
        second.write_all(b"GET /").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut third = tokio::net::TcpStream::connect(address).await.unwrap();
        let _ = third
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        assert_eq!(
            closed_within(&mut third, Duration::from_secs(1)).await,
            Some(Vec::new()),
            "a connection over the cap was served"
        );
        // Once the slow ones time out, requests are served again.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut fresh = tokio::net::TcpStream::connect(address).await.unwrap();
        fresh
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = closed_within(&mut fresh, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }

    #[test]
    fn healthz_is_ok_and_unknown_paths_are_not_found() {
        let state = state();
        assert_eq!(route(&state, "/healthz").status(), StatusCode::OK);
        assert_eq!(route(&state, "/nope").status(), StatusCode::NOT_FOUND);
        assert_eq!(route(&state, "/metrics").status(), StatusCode::OK);
    }
}
