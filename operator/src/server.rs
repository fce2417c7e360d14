//! `/healthz`, `/readyz` and `/metrics` over plain HTTP/1.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
};

use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode, body::Bytes, header, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::telemetry::Metrics;

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

pub async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "accepting an HTTP connection failed");
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let response = route(&state, request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, %peer, "HTTP connection ended with an error");
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

    #[test]
    fn healthz_is_ok_and_unknown_paths_are_not_found() {
        let state = state();
        assert_eq!(route(&state, "/healthz").status(), StatusCode::OK);
        assert_eq!(route(&state, "/nope").status(), StatusCode::NOT_FOUND);
        assert_eq!(route(&state, "/metrics").status(), StatusCode::OK);
    }
}
