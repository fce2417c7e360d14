//! The `ResourceSetInputProvider` reconciler: asks the provider's source for its inputs
//! (a static map, an OCI repository's tags, an HTTP service, Flux ExternalArtifacts), and
//! exports them in the status for the ResourceSets that read it.

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use futures::StreamExt;
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Condition, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams},
    runtime::{
        Controller, PredicateConfig, WatchStreamExt,
        controller::Action,
        events::{Event, EventType, Reporter},
        reflector, watcher,
    },
};
use serde_json::{Map, Value};

use crate::{
    api::{
        constants::{annotation, condition, reason},
        resourceset::{
            InputProviderType, ResourceSetInput, ResourceSetInputProvider,
            ResourceSetInputProviderStatus,
        },
    },
    bundle::{
        credentials,
        reference::ArtifactRef,
        registry::{Credentials, Registry, RegistryConfig},
    },
    controller::conditions,
    resourceset::{
        filter::{self, TagFilter},
        inputs,
    },
    telemetry::{Metrics, ReconcileLabels},
    template::goyaml,
};

/// The most an ExternalService answer may weigh.
pub const MAX_SERVICE_BODY: usize = 900 * 1024;

pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub reporter: Reporter,
}

/// Why a provider could not export inputs: `terminal` ones wait for a spec change.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
    pub terminal: bool,
}

fn retry(message: impl Into<String>) -> Failure {
    Failure {
        reason: reason::RECONCILIATION_FAILED,
        message: message.into(),
        terminal: false,
    }
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        reason: "InvalidSpec",
        message: message.into(),
        terminal: true,
    }
}

fn trigger(provider: &ResourceSetInputProvider) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    provider.metadata.generation.hash(&mut hasher);
    provider.annotations().hash(&mut hasher);
    Some(hasher.finish())
}

pub async fn run(ctx: Arc<Context>, metrics: Arc<Metrics>) {
    let api = Api::<ResourceSetInputProvider>::all(ctx.client.clone());
    let (reader, writer) = reflector::store();
    let triggers = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(trigger, PredicateConfig::default());
    Controller::for_stream(triggers, reader)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(kube::runtime::controller::Error::QueueError(error)) = result {
                metrics.watch_errors.inc();
                tracing::warn!(%error, "watching ResourceSetInputProviders failed; are the CRDs installed?");
            }
            futures::future::ready(())
        })
        .await;
}

fn error_policy(
    provider: Arc<ResourceSetInputProvider>,
    error: &kube::Error,
    _ctx: Arc<Context>,
) -> Action {
    tracing::warn!(provider = %provider.name_any(), %error, "writing the provider status failed");
    Action::requeue(crate::policy::requeue::ERROR)
}

/// The exported inputs of a provider (before the defaults and ids are added).
async fn fetch(
    provider: &ResourceSetInputProvider,
    ctx: &Context,
) -> Result<Vec<Map<String, Value>>, Failure> {
    let spec = &provider.spec;
    let namespace = provider.namespace().unwrap_or_default();
    let url = spec.url.clone().unwrap_or_default();
    let limit = spec.filter.as_ref().map_or(0, |f| f.limit.unwrap_or(0));
    match spec.type_ {
        InputProviderType::Static => {
            let uid = provider.uid().unwrap_or_default();
            Ok(vec![Map::from_iter([(
                "id".to_string(),
                Value::String(inputs::id(&uid)),
            )])])
        }
        InputProviderType::OCIArtifactTag => {
            let repository =
                ArtifactRef::parse(&url).map_err(|e| invalid(format!("spec.url: {e}")))?;
            let mut config = RegistryConfig::default();
            if spec.insecure.unwrap_or(false) {
                config.insecure.push(repository.registry.clone());
            }
            let credentials = match spec.secret_ref.as_ref() {
                None => Credentials::Anonymous,
                Some(secret) => {
                    let data =
                        secret_key(&ctx.client, &namespace, &secret.name, ".dockerconfigjson")
                            .await?;
                    credentials::from_docker_config(&data, &repository.registry)
                        .map_err(|e| retry(format!("Secret {namespace}/{}: {e}", secret.name)))?
                }
            };
            let registry = Registry::new(config, credentials);
            let tags = registry
                .list_tags(&repository)
                .await
                .map_err(|e| retry(format!("listing the tags of {url}: {e}")))?;
            let filter = spec.filter.as_ref();
            let kept = filter::filter_tags(
                &tags,
                &TagFilter {
                    include: filter.and_then(|f| f.include_tag.as_deref()),
                    exclude: filter.and_then(|f| f.exclude_tag.as_deref()),
                    semver: filter.and_then(|f| f.semver.as_deref()),
                    limit,
                },
            )
            .map_err(retry)?;
            let mut exported = Vec::with_capacity(kept.len());
            for tag in kept {
                let tagged = ArtifactRef {
                    tag: Some(tag.clone()),
                    ..repository.clone()
                };
                let digest = registry
                    .resolve(&tagged)
                    .await
                    .map_err(|e| retry(format!("resolving {url}:{tag}: {e}")))?;
                exported.push(Map::from_iter([
                    ("id".to_string(), Value::String(inputs::id(&tag))),
                    ("tag".to_string(), Value::String(tag)),
                    ("digest".to_string(), Value::String(digest)),
                ]));
            }
            Ok(exported)
        }
        InputProviderType::ExternalService => external_service(provider, ctx, &url, limit).await,
        InputProviderType::ExternalArtifact => external_artifacts(provider, ctx, limit).await,
        other => Err(Failure {
            reason: reason::RECONCILIATION_FAILED,
            message: format!("provider type {other} is not supported by this fluxop version"),
            terminal: true,
        }),
    }
}

async fn secret_key(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Vec<u8>, Failure> {
    crate::controller::secret_key(client, namespace, name, key, "secretRef")
        .await
        .map_err(retry)
}

/// A GET of the service's URL answering `{"inputs": [{"id": "...", ...}, ...]}`.
async fn external_service(
    provider: &ResourceSetInputProvider,
    ctx: &Context,
    url: &str,
    limit: i64,
) -> Result<Vec<Map<String, Value>>, Failure> {
    let namespace = provider.namespace().unwrap_or_default();
    if url.starts_with("http://") && !provider.spec.insecure.unwrap_or(false) {
        return Err(invalid(
            "spec.url must use 'https://' unless spec.insecure is true",
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(provider.reconcile_timeout())
        .build()
        .map_err(|e| retry(format!("HTTP client: {e}")))?;
    let mut request = client
        .get(url)
        .header("Accept", "application/json")
        .header("User-Agent", concat!("fluxop/", env!("CARGO_PKG_VERSION")));
    if let Some(secret) = &provider.spec.secret_ref {
        let read = |key: &'static str| secret_key(&ctx.client, &namespace, &secret.name, key);
        match read("token").await {
            Ok(token) => request = request.bearer_auth(String::from_utf8_lossy(&token).trim()),
            Err(_) => {
                let username = read("username").await?;
                let password = read("password").await?;
                request = request.basic_auth(
                    String::from_utf8_lossy(&username).trim(),
                    Some(String::from_utf8_lossy(&password).trim()),
                );
            }
        }
    }
    let response = request
        .send()
        .await
        .map_err(|e| retry(format!("GET {url}: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(retry(format!("GET {url}: {status}")));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| retry(format!("GET {url}: {e}")))?;
        if body.len() + chunk.len() > MAX_SERVICE_BODY {
            return Err(retry(format!(
                "GET {url}: the answer is larger than {MAX_SERVICE_BODY} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    service_inputs(&body, limit).map_err(|e| retry(format!("GET {url}: {e}")))
}

/// The input sets of an ExternalService answer, `{"inputs": [{"id": "...", ...}, ...]}`:
/// every set needs a string `id`, unique; at most `limit` (default 100) are kept.
pub fn service_inputs(body: &[u8], limit: i64) -> Result<Vec<Map<String, Value>>, String> {
    let answer: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let items = answer
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or("the answer has no inputs list")?;
    let mut seen = std::collections::HashSet::new();
    let mut exported = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let object = item
            .as_object()
            .ok_or_else(|| format!("inputs[{i}] is not an object"))?;
        let id = object
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("inputs[{i}] has no string id"))?;
        if !seen.insert(id.to_string()) {
            return Err(format!("the id {id:?} appears twice"));
        }
        exported.push(object.clone());
    }
    let limit = if limit <= 0 {
        filter::DEFAULT_LIMIT
    } else {
        limit as usize
    };
    exported.truncate(limit);
    Ok(exported)
}

/// Flux `ExternalArtifact`s picked by the selectors: their labels, name, namespace and
/// revision.
async fn external_artifacts(
    provider: &ResourceSetInputProvider,
    ctx: &Context,
    limit: i64,
) -> Result<Vec<Map<String, Value>>, Failure> {
    let own = provider.namespace().unwrap_or_default();
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "source.toolkit.fluxcd.io",
        "v1",
        "ExternalArtifact",
    ));
    let mut found: BTreeMap<(String, String), DynamicObject> = BTreeMap::new();
    for selector in provider.spec.selectors.iter().flatten() {
        let namespace = selector
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| own.clone());
        let api: Api<DynamicObject> = if namespace == "*" {
            Api::all_with(ctx.client.clone(), &resource)
        } else {
            Api::namespaced_with(ctx.client.clone(), &namespace, &resource)
        };
        let label_selector = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: selector.match_labels.clone(),
            match_expressions: selector.match_expressions.clone(),
        };
        let listed = api
            .list(&ListParams::default())
            .await
            .map_err(|e| retry(format!("listing ExternalArtifacts in {namespace}: {e}")))?;
        for artifact in listed {
            let name_ok = selector
                .name
                .as_ref()
                .is_none_or(|n| *n == artifact.name_any());
            let labels_ok =
                crate::resourceset::selector_matches(&label_selector, artifact.labels())
                    .map_err(invalid)?;
            if name_ok && labels_ok {
                found.insert(
                    (
                        artifact.namespace().unwrap_or_default(),
                        artifact.name_any(),
                    ),
                    artifact,
                );
            }
        }
    }
    let limit = if limit <= 0 {
        filter::DEFAULT_LIMIT
    } else {
        limit as usize
    };
    Ok(found
        .into_iter()
        .take(limit)
        .map(|((namespace, name), artifact)| {
            let mut set: Map<String, Value> = artifact
                .labels()
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            set.insert(
                "id".into(),
                Value::String(inputs::id(&format!("{namespace}/{name}"))),
            );
            set.insert("name".into(), Value::String(name));
            set.insert("namespace".into(), Value::String(namespace));
            if let Some(revision) = artifact.data["status"]["artifact"]["revision"]
                .as_str()
                .filter(|r| !r.is_empty())
            {
                set.insert("revision".into(), Value::String(revision.to_string()));
            }
            set
        })
        .collect())
}

/// `defaultValues` fill in the keys a provider did not export.
pub fn with_defaults(
    exported: Vec<Map<String, Value>>,
    defaults: Option<&ResourceSetInput>,
) -> Vec<ResourceSetInput> {
    exported
        .into_iter()
        .map(|mut set| {
            for (key, value) in defaults.map(|d| d.0.iter()).into_iter().flatten() {
                set.entry(key.clone()).or_insert_with(|| value.clone());
            }
            ResourceSetInput(set.into_iter().collect())
        })
        .collect()
}

/// `sha256:` of the exported inputs as YAML.
pub fn exported_revision(exported: &[ResourceSetInput]) -> String {
    let value = serde_json::to_value(exported).unwrap_or_default();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(goyaml::to_yaml(&value).as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

fn ready(status: &ResourceSetInputProviderStatus) -> Option<&Condition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == condition::READY)
}

async fn reconcile(
    provider: Arc<ResourceSetInputProvider>,
    ctx: Arc<Context>,
) -> Result<Action, kube::Error> {
    let started = Instant::now();
    let namespace = provider.namespace().unwrap_or_default();
    let name = provider.name_any();
    let before = provider.status.clone().unwrap_or_default();
    let mut status = before.clone();
    let mut list = status.conditions.take().unwrap_or_default();
    let now = Timestamp::now();
    let generation = provider.metadata.generation;
    let (action, result) = if provider.is_reconcile_disabled() {
        conditions::set(
            &mut list,
            condition::READY,
            "True",
            reason::RECONCILIATION_DISABLED,
            "Reconciliation is disabled",
            generation,
            now,
        );
        (Action::await_change(), "success")
    } else {
        match fetch(&provider, &ctx).await {
            Ok(exported) => {
                let exported = with_defaults(exported, provider.spec.default_values.as_ref());
                let revision = exported_revision(&exported);
                let message = format!(
                    "{}, revision {revision}",
                    super::status::finished_in(started.elapsed())
                );
                conditions::set(
                    &mut list,
                    condition::READY,
                    "True",
                    reason::RECONCILIATION_SUCCEEDED,
                    &message,
                    generation,
                    now,
                );
                conditions::remove(&mut list, condition::STALLED);
                conditions::remove(&mut list, condition::RECONCILING);
                status.exported_inputs = Some(exported);
                status.last_exported_revision = Some(revision);
                (Action::requeue(provider.reconcile_every()), "success")
            }
            Err(failure) => {
                conditions::set(
                    &mut list,
                    condition::READY,
                    "False",
                    failure.reason,
                    &failure.message,
                    generation,
                    now,
                );
                if failure.terminal {
                    conditions::set(
                        &mut list,
                        condition::STALLED,
                        "True",
                        failure.reason,
                        &failure.message,
                        generation,
                        now,
                    );
                    (Action::requeue(provider.reconcile_every()), "error")
                } else {
                    conditions::remove(&mut list, condition::STALLED);
                    (
                        Action::requeue(
                            crate::policy::requeue::ERROR.min(provider.reconcile_every()),
                        ),
                        "error",
                    )
                }
            }
        }
    };
    status.conditions = Some(list);
    if let Some(requested) = provider.annotations().get(annotation::REQUESTED_AT) {
        status.last_handled_reconcile_at = Some(requested.clone());
    }
    if status != before {
        let api = Api::<ResourceSetInputProvider>::namespaced(ctx.client.clone(), &namespace);
        crate::controller::replace_status(&api, &name, &status).await?;
    }
    let changed =
        |s: &ResourceSetInputProviderStatus| ready(s).map(|c| (c.status.clone(), c.reason.clone()));
    let revision_moved = status.last_exported_revision != before.last_exported_revision;
    if (changed(&status) != changed(&before) || revision_moved)
        && let Some(c) = ready(&status)
    {
        let event = Event {
            type_: if c.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: c.reason.clone(),
            note: Some(crate::controller::truncate_note(&c.message)),
            action: "Reconcile".into(),
            secondary: None,
        };
        crate::controller::publish_events(
            &ctx.client,
            &ctx.reporter,
            &provider.object_ref(&()),
            vec![event],
        )
        .await;
    }
    ctx.metrics.set_input_provider(&provider, &status);
    ctx.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            kind: "ResourceSetInputProvider".into(),
            result: result.into(),
        })
        .inc();
    Ok(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_only_what_the_provider_did_not_export() {
        let exported = vec![Map::from_iter([
            ("id".to_string(), Value::String("1".into())),
            ("tag".to_string(), Value::String("v1".into())),
        ])];
        let defaults = ResourceSetInput(BTreeMap::from([
            ("tag".to_string(), Value::String("default".into())),
            ("env".to_string(), Value::String("dev".into())),
        ]));
        let sets = with_defaults(exported, Some(&defaults));
        assert_eq!(sets[0].0["tag"], "v1");
        assert_eq!(sets[0].0["env"], "dev");
    }

    #[test]
    fn a_service_answer_needs_unique_string_ids() {
        let sets =
            service_inputs(br#"{"inputs":[{"id":"a","x":1},{"id":"b"},{"id":"c"}]}"#, 2).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0]["x"], 1);
        for (body, error) in [
            (&br#"{"items":[]}"#[..], "no inputs list"),
            (br#"{"inputs":[{"id":1}]}"#, "inputs[0] has no string id"),
            (br#"{"inputs":[{"id":"a"},{"id":"a"}]}"#, "appears twice"),
            (b"<html>", "not JSON"),
        ] {
            let got = service_inputs(body, 0).unwrap_err();
            assert!(got.contains(error), "{got}");
        }
    }

    #[test]
    fn the_revision_is_the_digest_of_the_exported_yaml() {
        let sets = vec![ResourceSetInput(BTreeMap::from([(
            "id".to_string(),
            Value::String("42".into()),
        )]))];
        // sha256 of "- id: \"42\"\n".
        let expected = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"- id: \"42\"\n"))
        );
        assert_eq!(exported_revision(&sets), expected);
    }
}
