//! An in-process Kubernetes API that answers a script, for the tests of request sequences
//! that decide safety (what prune deletes and with which preconditions, what a status write
//! sends). Each step names the request it expects; the first request that differs, and any
//! step never requested, fail the test with the request named. Discovery requests are steps
//! too, so the script reads as the exact conversation.

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;

/// One expected request and its answer.
pub struct Step {
    pub method: Method,
    /// The path and query as sent (`/api/v1/namespaces/x/configmaps/y?limit=1`).
    pub uri: String,
    pub status: u16,
    pub answer: Value,
}

impl Step {
    pub fn new(method: Method, uri: &str, status: u16, answer: Value) -> Self {
        Self {
            method,
            uri: uri.to_string(),
            status,
            answer,
        }
    }
}

/// A request as the API received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: String,
    pub content_type: Option<String>,
    pub body: Option<Value>,
}

#[derive(Default)]
struct Script {
    steps: VecDeque<Step>,
    seen: Vec<Seen>,
    mismatches: Vec<String>,
}

/// The service behind the client; [`ScriptedApi::finish`] checks the conversation.
#[derive(Clone)]
pub struct ScriptedApi {
    script: Arc<Mutex<Script>>,
}

impl ScriptedApi {
    /// A client whose requests go to `steps`, in order, and the handle to check them.
    pub fn client(steps: Vec<Step>) -> (kube::Client, ScriptedApi) {
        let api = ScriptedApi {
            script: Arc::new(Mutex::new(Script {
                steps: steps.into(),
                ..Script::default()
            })),
        };
        (kube::Client::new(api.clone(), "default"), api)
    }

    /// Every request sent, in order.
    pub fn finish(&self) -> Vec<Seen> {
        let script = self.script.lock().unwrap();
        let unsent: Vec<String> = script
            .steps
            .iter()
            .map(|s| format!("{} {}", s.method, s.uri))
            .collect();
        assert!(
            script.mismatches.is_empty(),
            "unexpected requests:\n{}",
            script.mismatches.join("\n")
        );
        assert!(unsent.is_empty(), "requests never sent: {unsent:?}");
        script.seen.clone()
    }
}

impl tower::Service<Request<kube::client::Body>> for ScriptedApi {
    type Response = Response<Full<Bytes>>;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<kube::client::Body>) -> Self::Future {
        let script = self.script.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let seen = Seen {
                method: parts.method.clone(),
                uri: parts
                    .uri
                    .path_and_query()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from),
                body: serde_json::from_slice(&bytes).ok(),
            };
            let mut script = script.lock().unwrap();
            let number = script.seen.len() + 1;
            let answer = match script.steps.pop_front() {
                Some(step) if step.method == seen.method && step.uri == seen.uri => {
                    (step.status, step.answer)
                }
                Some(step) => {
                    script.mismatches.push(format!(
                        "request {number}: expected {} {}, got {} {}",
                        step.method, step.uri, seen.method, seen.uri
                    ));
                    script.steps.push_front(step);
                    mismatch()
                }
                None => {
                    script.mismatches.push(format!(
                        "request {number}: {} {} after the script ended",
                        seen.method, seen.uri
                    ));
                    mismatch()
                }
            };
            script.seen.push(seen);
            let mut response = Response::new(Full::new(Bytes::from(answer.1.to_string())));
            *response.status_mut() = http::StatusCode::from_u16(answer.0).unwrap();
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            Ok(response)
        })
    }
}

/// What an unexpected request gets: a 500 the code under test reports, while the test
/// fails on the mismatch.
fn mismatch() -> (u16, Value) {
    (
        500,
        serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "not in the script", "reason": "InternalError", "code": 500
        }),
    )
}

/// An `APIResourceList` for discovery of `group_version` serving `resources`
/// (`(plural, kind, namespaced)`).
pub fn resource_list(group_version: &str, resources: &[(&str, &str, bool)]) -> Value {
    let resources: Vec<Value> = resources
        .iter()
        .map(|(plural, kind, namespaced)| {
            serde_json::json!({
                "name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
                "verbs": ["get", "list", "watch", "create", "patch", "delete"]
            })
        })
        .collect();
    serde_json::json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": group_version, "resources": resources
    })
}

/// The `Status` a successful delete answers.
pub fn deleted() -> Value {
    serde_json::json!({ "kind": "Status", "apiVersion": "v1", "status": "Success" })
}
