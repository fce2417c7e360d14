//! fluxop's own Events, sent to notification-controller as well, the way every Flux
//! controller sends its events (and the way the incumbent operator sends its own): so an
//! `Alert` whose `eventSources` name a `FluxInstance` fires for an upgrade, a rollback or a
//! failed reconcile.
//!
//! Where: the instance's notification-controller Service (the same address the render gives
//! the Flux controllers' `--events-addr`), only while notification-controller is one of the
//! instance's components; `--events-addr` (env `NOTIFICATION_CONTROLLER_ADDRESS`, as the
//! incumbent reads it) points somewhere else, `--events-disabled` (env
//! `NOTIFICATIONS_DISABLED`) turns forwarding off.
//!
//! How: the Kubernetes Event is recorded first, as before; the forwarded copy goes into a
//! bounded queue that one task drains, so a notification-controller that is down, slow or
//! being upgraded never holds up a reconcile. Each delivery gets a few attempts (connection
//! errors and 5xx answers, as Flux's recorder retries); when the queue is full the event is
//! dropped and counted (`fluxop_events_forwarded_total{result="dropped"}`).

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{api::core::v1::ObjectReference, jiff::Timestamp};
use kube::runtime::events::{Event, EventType};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::{api::FluxInstance, telemetry::Metrics};

/// The API group whose prefixed annotations of an object Flux's recorder copies into an
/// event's metadata (`event.toolkit.fluxcd.io/<key>`), so users can add fields to alerts.
const EVENT_METADATA_GROUP: &str = "event.toolkit.fluxcd.io";

/// One event in Flux's event format (`event.toolkit.fluxcd.io/v1beta1` `Event`), what
/// notification-controller's event endpoint accepts.
#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FluxEvent {
    pub involved_object: ObjectReference,
    /// `info` or `error`.
    pub severity: &'static str,
    pub timestamp: String,
    pub message: String,
    pub reason: String,
    /// Keys prefixed with the involved object's API group (`fluxcd.controlplane.io/revision`):
    /// notification-controller strips the prefix before it hands them to providers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    pub reporting_controller: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reporting_instance: String,
}

/// Where fluxop's events go, from its flags.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// An address that replaces the instance's notification-controller Service (for an
    /// operator running outside the cluster, or a receiver elsewhere).
    pub address: Option<String>,
    pub disabled: bool,
}

/// The address of notification-controller's event endpoint for `instance`, or `None` when
/// nothing should be forwarded.
pub fn address(instance: &FluxInstance, settings: &Settings) -> Option<String> {
    if settings.disabled {
        return None;
    }
    if let Some(address) = settings.address.as_ref().filter(|a| !a.is_empty()) {
        return Some(address.clone());
    }
    let namespace = instance.metadata.namespace.as_deref()?;
    crate::render::events_address(&instance.spec, namespace)
}

/// The Flux event for a Kubernetes Event fluxop records about `regarding`: `Normal` is
/// `info`, `Warning` is `error`; `revision` goes into the metadata under the object's group,
/// with the object's own `event.toolkit.fluxcd.io/` annotations.
pub fn flux_event(
    regarding: &ObjectReference,
    annotations: &BTreeMap<String, String>,
    event: &Event,
    revision: Option<&str>,
    reporter: &kube::runtime::events::Reporter,
    now: Timestamp,
) -> FluxEvent {
    let group = regarding
        .api_version
        .as_deref()
        .and_then(|v| v.split_once('/'))
        .map_or("", |(group, _)| group);
    let mut metadata: BTreeMap<String, String> = annotations
        .iter()
        .filter(|(key, _)| {
            key.strip_prefix(EVENT_METADATA_GROUP)
                .is_some_and(|rest| rest.starts_with('/'))
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    if let Some(revision) = revision.filter(|r| !r.is_empty()) {
        metadata.insert(format!("{group}/revision"), revision.to_string());
    }
    FluxEvent {
        involved_object: regarding.clone(),
        severity: match event.type_ {
            EventType::Normal => "info",
            EventType::Warning => "error",
        },
        timestamp: now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        message: event.note.clone().unwrap_or_default(),
        reason: event.reason.clone(),
        metadata,
        reporting_controller: reporter.controller.clone(),
        reporting_instance: reporter.instance.clone().unwrap_or_default(),
    }
}

/// What the queue holds: an event and where it goes.
struct Delivery {
    address: String,
    event: FluxEvent,
}

/// The sending side of the queue; cheap to clone.
#[derive(Clone)]
pub struct Forwarder {
    queue: Option<mpsc::Sender<Delivery>>,
    metrics: std::sync::Arc<Metrics>,
}

impl Forwarder {
    /// Starts the task that delivers queued events (on the current Tokio runtime).
    pub fn start(metrics: std::sync::Arc<Metrics>) -> Self {
        let (queue, deliveries) = mpsc::channel(crate::policy::events::QUEUE);
        tokio::spawn(deliver_all(deliveries, metrics.clone()));
        Self {
            queue: Some(queue),
            metrics,
        }
    }

    /// A forwarder that forwards nothing (offline commands, tests).
    pub fn disabled(metrics: std::sync::Arc<Metrics>) -> Self {
        Self {
            queue: None,
            metrics,
        }
    }

    /// Queues `event` for `address`; never waits. A full queue drops it, counted.
    pub fn send(&self, address: &str, event: FluxEvent) {
        let Some(queue) = &self.queue else {
            return;
        };
        let delivery = Delivery {
            address: address.to_string(),
            event,
        };
        if let Err(error) = queue.try_send(delivery) {
            let reason = match &error {
                mpsc::error::TrySendError::Full(d) => &d.event.reason,
                mpsc::error::TrySendError::Closed(d) => &d.event.reason,
            };
            tracing::warn!(reason = %reason, "forwarding queue full: event dropped");
            self.metrics.count_forwarded("dropped");
        }
    }
}

/// Delivers queued events one at a time until every sender is gone.
async fn deliver_all(mut deliveries: mpsc::Receiver<Delivery>, metrics: std::sync::Arc<Metrics>) {
    let client = match reqwest::Client::builder()
        .timeout(crate::policy::events::REQUEST_TIMEOUT)
        .connect_timeout(crate::policy::events::REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "no HTTP client for forwarding events: they stay in Kubernetes only");
            return;
        }
    };
    while let Some(delivery) = deliveries.recv().await {
        let result = match deliver(&client, &delivery).await {
            Ok(()) => "delivered",
            Err(error) => {
                tracing::warn!(address = %delivery.address, reason = %delivery.event.reason, %error, "forwarding an event to notification-controller failed");
                "failed"
            }
        };
        metrics.count_forwarded(result);
    }
}

/// Why a delivery failed, after its attempts.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    #[error("{0}")]
    Request(#[from] reqwest::Error),
    #[error("notification-controller answered {0}")]
    Refused(reqwest::StatusCode),
}

async fn deliver(client: &reqwest::Client, delivery: &Delivery) -> Result<(), DeliveryError> {
    let mut attempt = 1;
    loop {
        let answer = client
            .post(&delivery.address)
            .json(&delivery.event)
            .send()
            .await;
        let retryable = match answer {
            Ok(response) if response.status().is_success() => return Ok(()),
            // A 4xx will not change by asking again (429 is notification-controller's
            // rate limit of an identical event).
            Ok(response) if !response.status().is_server_error() => {
                return Err(DeliveryError::Refused(response.status()));
            }
            Ok(response) => DeliveryError::Refused(response.status()),
            Err(error) => DeliveryError::Request(error),
        };
        if attempt >= crate::policy::events::ATTEMPTS {
            return Err(retryable);
        }
        tokio::time::sleep(retry_delay(attempt)).await;
        attempt += 1;
    }
}

/// The wait before attempt `attempt + 1`: doubling from the base.
fn retry_delay(attempt: u32) -> Duration {
    crate::policy::events::RETRY_BASE * 2u32.saturating_pow(attempt.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(components: &[&str], domain: Option<&str>) -> FluxInstance {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
            "metadata": { "name": "flux", "namespace": "gitops" },
            "spec": {
                "distribution": { "version": "2.x", "registry": "ghcr.io/fluxcd" },
                "components": components,
                "cluster": { "domain": domain },
            }
        }))
        .unwrap()
    }

    #[test]
    fn events_go_to_the_instances_notification_controller_only_when_it_is_installed() {
        let settings = Settings::default();
        assert_eq!(
            address(
                &instance(
                    &["source-controller", "notification-controller"],
                    Some("corp.example")
                ),
                &settings
            )
            .as_deref(),
            Some("http://notification-controller.gitops.svc.corp.example./")
        );
        assert_eq!(
            address(&instance(&["source-controller"], None), &settings),
            None
        );
        let elsewhere = Settings {
            address: Some("http://10.0.0.1:9090/".into()),
            disabled: false,
        };
        assert_eq!(
            address(&instance(&["source-controller"], None), &elsewhere).as_deref(),
            Some("http://10.0.0.1:9090/")
        );
        let off = Settings {
            disabled: true,
            ..elsewhere
        };
        assert_eq!(
            address(&instance(&["notification-controller"], None), &off),
            None
        );
    }

    #[test]
    fn a_warning_is_an_error_event_with_the_revision_under_the_objects_group() {
        let regarding = ObjectReference {
            api_version: Some("fluxcd.controlplane.io/v1".into()),
            kind: Some("FluxInstance".into()),
            name: Some("flux".into()),
            namespace: Some("flux-system".into()),
            uid: Some("u-1".into()),
            ..ObjectReference::default()
        };
        let annotations = BTreeMap::from([
            (
                "event.toolkit.fluxcd.io/team".to_string(),
                "platform".to_string(),
            ),
            (
                "event.toolkit.fluxcd.io.evil/x".to_string(),
                "no".to_string(),
            ),
            (
                "fluxcd.controlplane.io/reconcileEvery".to_string(),
                "1h".to_string(),
            ),
        ]);
        let event = Event {
            type_: EventType::Warning,
            reason: "RolledBack".into(),
            note: Some("v2.9.4@sha256:ab did not become healthy".into()),
            action: "Reconcile".into(),
            secondary: None,
        };
        let reporter = kube::runtime::events::Reporter {
            controller: "fluxop".into(),
            instance: Some("fluxop-abc".into()),
        };
        let now: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
        let flux = flux_event(
            &regarding,
            &annotations,
            &event,
            Some("v2.9.4@sha256:ab"),
            &reporter,
            now,
        );
        let json = serde_json::to_value(&flux).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "involvedObject": { "apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
                                    "name": "flux", "namespace": "flux-system", "uid": "u-1" },
                "severity": "error",
                "timestamp": "2026-12-07T10:00:00Z",
                "message": "v2.9.4@sha256:ab did not become healthy",
                "reason": "RolledBack",
                "metadata": { "fluxcd.controlplane.io/revision": "v2.9.4@sha256:ab",
                              "event.toolkit.fluxcd.io/team": "platform" },
                "reportingController": "fluxop",
                "reportingInstance": "fluxop-abc",
            })
        );
        let normal = Event {
            type_: EventType::Normal,
            ..event
        };
        assert_eq!(
            flux_event(&regarding, &BTreeMap::new(), &normal, None, &reporter, now).severity,
            "info"
        );
    }

    #[test]
    fn retries_wait_longer_each_time() {
        assert_eq!(retry_delay(1), crate::policy::events::RETRY_BASE);
        assert_eq!(retry_delay(2), crate::policy::events::RETRY_BASE * 2);
        assert_eq!(retry_delay(3), crate::policy::events::RETRY_BASE * 4);
    }

    /// A real listener on loopback: one that answers 202, one that answers 500 every time
    /// (the attempts are counted), and no listener at all:
    /// the sender never waits for one; what does not fit in the queue is dropped, counted.
    #[tokio::test]
    async fn deliveries_succeed_retry_server_errors_and_never_block_the_sender() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        async fn server(
            status: &'static str,
        ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = format!("http://{}/", listener.local_addr().unwrap());
            let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counted = hits.clone();
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let mut buffer = vec![0u8; 16 * 1024];
                    let _ = stream.read(&mut buffer).await;
                    let _ = stream
                        .write_all(
                            format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .as_bytes(),
                        )
                        .await;
                }
            });
            (address, hits)
        }
        let event = FluxEvent {
            involved_object: ObjectReference::default(),
            severity: "info",
            timestamp: String::new(),
            message: "m".into(),
            reason: "r".into(),
            metadata: BTreeMap::new(),
            reporting_controller: "fluxop".into(),
            reporting_instance: String::new(),
        };
        let client = reqwest::Client::new();
        let (accepting, hits) = server("202 Accepted").await;
        let delivery = |address: &str| Delivery {
            address: address.to_string(),
            event: event.clone(),
        };
        deliver(&client, &delivery(&accepting)).await.unwrap();
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

        let (failing, hits) = server("500 Internal Server Error").await;
        let error = deliver(&client, &delivery(&failing)).await.unwrap_err();
        assert!(error.to_string().contains("500"), "{error}");
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            crate::policy::events::ATTEMPTS as usize
        );
        let (refusing, hits) = server("429 Too Many Requests").await;
        assert!(deliver(&client, &delivery(&refusing)).await.is_err());
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Nobody listens, and the task is busy retrying the first event: the queue fills.
        let metrics = std::sync::Arc::new(Metrics::new());
        let forwarder = Forwarder::start(metrics.clone());
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/", listener.local_addr().unwrap())
        };
        for _ in 0..crate::policy::events::QUEUE * 2 {
            forwarder.send(&closed, event.clone());
        }
        let text = metrics.encode();
        let dropped: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("fluxop_events_forwarded_total{result=\"dropped\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        assert!(dropped >= crate::policy::events::QUEUE as u64 - 2, "{text}");
    }
}
