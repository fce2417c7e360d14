//! Hub mode: the `FluxFleet` reconciler. It builds each member's FluxInstance (the template
//! with the member's overrides), applies it wave by wave, and starts a wave only when every
//! member of the waves before is healthy. A member that fails (Stalled, or not Ready within
//! `healthTimeout`) stops the rollout: its wave is put back on the last template that reached
//! every member, later waves are never touched, and the fleet is `Stalled` until its spec
//! changes. Unreachable members are reported and retried; the wave waits for them.
//!
//! Member kubeconfigs must carry inline credentials: one with an exec plugin, an auth
//! provider or a file reference is refused before any client is built ([`member_kubeconfig`]),
//! and the fleet reports it (`Ready=False`, reason `KubeconfigRefused`, the member's
//! `lastError`, a Warning event).
//!
//! The decisions ([`member_state`], [`plan`], [`member_kubeconfig::check`]) are pure; the rest
//! talks to the hub and the members.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Reporter},
        watcher,
    },
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::conditions;
use super::member_kubeconfig;
use crate::api::{
    FluxInstance, FluxInstanceSpec, SINGLETON_NAME,
    constants::{condition, reason},
    fleet::{FleetMemberStatus, FluxFleet, FluxFleetStatus},
};
use crate::policy;

/// Field manager of what the hub applies on members.
pub const FIELD_MANAGER: &str = "fluxop-hub";
/// Annotation on a member's instance: the digest of the spec the hub applied.
pub const SPEC_DIGEST_ANNOTATION: &str = "fleet.fluxop.io/spec-digest";
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing the status of FluxFleet {0}: {1}")]
    Status(String, #[source] kube::Error),
}

/// The instance spec a member should run, and its digest.
pub fn desired(template: &Value, overrides: Option<&Value>) -> Result<(Value, String), String> {
    let mut spec = template.clone();
    if let Some(overrides) = overrides {
        json_patch::merge(&mut spec, overrides);
    }
    serde_json::from_value::<FluxInstanceSpec>(spec.clone())
        .map_err(|e| format!("not a valid FluxInstance spec: {e}"))?;
    let canonical = serde_json::to_vec(&spec).unwrap_or_default();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&canonical)));
    Ok((spec, digest))
}

/// What the hub sees of a member's instance.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemberView {
    pub digest: Option<String>,
    pub generation: Option<i64>,
    /// (status, observedGeneration, message) of `Ready`.
    pub ready: Option<(String, Option<i64>, String)>,
    /// (observedGeneration, reason, message) of `Stalled=True`.
    pub stalled: Option<(Option<i64>, String, String)>,
    pub revision: Option<String>,
}

impl MemberView {
    pub fn of(instance: &FluxInstance) -> Self {
        let conditions = instance
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let find = |t: &str| conditions.iter().find(|c| c.type_ == t);
        Self {
            digest: instance.annotations().get(SPEC_DIGEST_ANNOTATION).cloned(),
            generation: instance.metadata.generation,
            ready: find(condition::READY)
                .map(|c| (c.status.clone(), c.observed_generation, c.message.clone())),
            stalled: find(condition::STALLED)
                .filter(|c| c.status == "True")
                .map(|c| (c.observed_generation, c.reason.clone(), c.message.clone())),
            revision: instance
                .status
                .as_ref()
                .and_then(|s| s.last_applied_revision.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum MemberState {
    /// Runs something else: the desired spec is to be applied.
    NeedsApply,
    Progressing(String),
    Healthy,
    Failed(String),
    Unreachable(String),
    /// Its kubeconfig was refused ([`member_kubeconfig::check`]): nothing is read from or
    /// applied to it until its Secret is fixed; its wave waits, like for an unreachable one.
    Refused(String),
}

/// A member's state against the desired digest; `applied_at` is when the hub applied it.
pub fn member_state(
    observed: &Result<Option<MemberView>, String>,
    desired: &str,
    applied_at: Option<Timestamp>,
    now: Timestamp,
    timeout: Duration,
) -> MemberState {
    let view = match observed {
        Err(error) => return MemberState::Unreachable(error.clone()),
        Ok(None) => return MemberState::NeedsApply,
        Ok(Some(view)) => view,
    };
    if view.digest.as_deref() != Some(desired) {
        return MemberState::NeedsApply;
    }
    let current = |observed: Option<i64>| observed.is_some() && observed == view.generation;
    if let Some((generation, reason, message)) = &view.stalled
        && current(*generation)
    {
        return MemberState::Failed(format!("{reason}: {message}"));
    }
    match &view.ready {
        Some((status, generation, _)) if status == "True" && current(*generation) => {
            return MemberState::Healthy;
        }
        _ => {}
    }
    let message = view
        .ready
        .as_ref()
        .map_or("no status yet".to_string(), |(_, _, m)| m.clone());
    let overdue =
        applied_at.is_some_and(|at| at.checked_add(timeout).is_ok_and(|deadline| now > deadline));
    if overdue {
        MemberState::Failed(format!(
            "not Ready within {}s: {message}",
            timeout.as_secs()
        ))
    } else {
        MemberState::Progressing(message)
    }
}

/// The hub's next step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Apply the desired spec to these members (of the current wave).
    Apply(Vec<String>),
    /// A member of `wave` failed: put the members it changed back, and stop.
    Rollback {
        wave: String,
        members: Vec<String>,
        why: String,
    },
    /// The current wave is still converging (or waits for unreachable members).
    Wait { wave: String, why: String },
    /// Every member is healthy on the desired spec.
    Done,
}

/// Walks the waves in order: the first wave not all healthy decides the step.
pub fn plan(
    waves: &[(String, Vec<String>)],
    states: &BTreeMap<String, MemberState>,
    changed: &BTreeMap<String, bool>,
) -> Step {
    for (wave, members) in waves {
        let state = |m: &String| states.get(m).cloned().unwrap_or(MemberState::NeedsApply);
        let failed: Vec<String> = members
            .iter()
            .filter_map(|m| match state(m) {
                MemberState::Failed(why) => Some(format!("{m}: {why}")),
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            return Step::Rollback {
                wave: wave.clone(),
                members: members
                    .iter()
                    .filter(|m| changed.get(*m).copied().unwrap_or(false))
                    .cloned()
                    .collect(),
                why: failed.join("; "),
            };
        }
        let to_apply: Vec<String> = members
            .iter()
            .filter(|m| state(m) == MemberState::NeedsApply)
            .cloned()
            .collect();
        if !to_apply.is_empty() {
            return Step::Apply(to_apply);
        }
        let waiting: Vec<String> = members
            .iter()
            .filter_map(|m| match state(m) {
                MemberState::Healthy => None,
                MemberState::Unreachable(why) => Some(format!("{m} unreachable: {why}")),
                MemberState::Refused(why) => Some(format!("{m} refused: {why}")),
                MemberState::Progressing(why) => Some(format!("{m}: {why}")),
                _ => Some(m.clone()),
            })
            .collect();
        if !waiting.is_empty() {
            return Step::Wait {
                wave: wave.clone(),
                why: waiting.join("; "),
            };
        }
    }
    Step::Done
}

/// Why there is no client for a member.
#[derive(Debug, Clone, PartialEq)]
enum MemberClientError {
    /// The kubeconfig asks for something the hub refuses to do (exec, files, ...).
    Refused(String),
    /// Anything else: the Secret is missing or unreadable, the kubeconfig does not parse, ...
    Other(String),
}

/// A client for a member, from the kubeconfig in its Secret; short timeouts, so an
/// unreachable member does not hold up the others. The kubeconfig is checked
/// ([`member_kubeconfig::check`]) before the kube crate sees it: nothing in it runs or is
/// read in the operator's pod.
async fn member_client(
    hub: &Client,
    namespace: &str,
    member: &crate::api::fleet::FleetMember,
) -> Result<Client, MemberClientError> {
    use MemberClientError::Other;
    let reference = &member.kubeconfig_secret_ref;
    let key = reference.key.as_deref().unwrap_or("value");
    let secret = Api::<Secret>::namespaced(hub.clone(), namespace)
        .get_opt(&reference.name)
        .await
        .map_err(|e| Other(format!("reading Secret {}: {e}", reference.name)))?
        .ok_or_else(|| Other(format!("Secret {} does not exist", reference.name)))?;
    let bytes = secret
        .data
        .and_then(|mut d| d.remove(key))
        .ok_or_else(|| Other(format!("Secret {} has no key {key:?}", reference.name)))?;
    let text = String::from_utf8(bytes.0).map_err(|e| Other(format!("kubeconfig: {e}")))?;
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&text)
        .map_err(|e| Other(format!("kubeconfig: {e}")))?;
    member_kubeconfig::check(&kubeconfig, member.insecure == Some(true)).map_err(|refused| {
        MemberClientError::Refused(format!(
            "kubeconfig in Secret {} (key {key:?}) refused: {refused}",
            reference.name
        ))
    })?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .map_err(|e| Other(format!("kubeconfig: {e}")))?;
    config.connect_timeout = Some(policy::fleet::MEMBER_CONNECT_TIMEOUT);
    config.read_timeout = Some(policy::fleet::MEMBER_READ_TIMEOUT);
    Client::try_from(config).map_err(|e| Other(format!("client: {e}")))
}

fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

async fn apply_member(
    client: &Client,
    namespace: &str,
    spec: &Value,
    digest: &str,
) -> Result<(), String> {
    let instance = json!({
        "apiVersion": format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
        "kind": "FluxInstance",
        "metadata": {
            "name": SINGLETON_NAME,
            "namespace": namespace,
            "annotations": { SPEC_DIGEST_ANNOTATION: digest },
        },
        "spec": spec,
    });
    Api::<FluxInstance>::namespaced(client.clone(), namespace)
        .patch(
            SINGLETON_NAME,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&instance),
        )
        .await
        .map(|_| ())
        .map_err(|e| describe(&e))
}

/// Applies `spec` to a member and records the outcome in its status: the digest and time
/// when it was applied, the error when not.
async fn apply_recorded(
    client: &Client,
    namespace: &str,
    spec: &Value,
    digest: &str,
    record: Option<&mut FleetMemberStatus>,
    now: Timestamp,
    doing: &str,
) {
    let outcome = apply_member(client, namespace, spec, digest).await;
    let Some(record) = record else {
        return;
    };
    match outcome {
        Ok(()) => {
            tracing::info!(member = %record.name, %digest, "{doing} the fleet's instance: done");
            record.applied = Some(digest.to_string());
            record.applied_at = Some(Time(now));
            record.last_error = None;
        }
        Err(why) => record.last_error = Some(format!("{doing}: {why}")),
    }
}

/// The hub's context.
pub struct Hub {
    pub client: Client,
    pub namespace: String,
}

/// What the reconciler holds: the hub, and who it reports events as.
struct Context {
    hub: Hub,
    reporter: Reporter,
}

/// The fleet's conditions after `step`; `refused` lists (member, why) of the members whose
/// kubeconfig was refused: while there are any, the fleet is `Ready=False`
/// (`KubeconfigRefused`) rather than merely progressing, since only a fixed Secret helps.
fn set_conditions(
    status: &mut FluxFleetStatus,
    generation: Option<i64>,
    step: &Step,
    refused: &[(String, String)],
    now: Timestamp,
) {
    let mut list: Vec<Condition> = status.conditions.take().unwrap_or_default();
    let mut set = |t: &str, s: &str, r: &str, m: &str| {
        conditions::set(&mut list, t, s, r, m, generation, now);
    };
    match step {
        Step::Done => {
            set(
                condition::READY,
                "True",
                reason::RECONCILIATION_SUCCEEDED,
                "every member is healthy on the fleet's template",
            );
            conditions::remove(&mut list, condition::RECONCILING);
            conditions::remove(&mut list, condition::STALLED);
        }
        Step::Apply(members) => {
            let message = format!("applying to {}", members.join(", "));
            set(condition::READY, "Unknown", reason::PROGRESSING, &message);
            set(
                condition::RECONCILING,
                "True",
                reason::PROGRESSING,
                &message,
            );
            conditions::remove(&mut list, condition::STALLED);
        }
        Step::Wait { wave, why } => {
            let message = format!("wave {wave}: waiting for {why}");
            set(condition::READY, "Unknown", reason::PROGRESSING, &message);
            set(
                condition::RECONCILING,
                "True",
                reason::PROGRESSING,
                &message,
            );
            conditions::remove(&mut list, condition::STALLED);
        }
        Step::Rollback { wave, members, why } => {
            let message = format!(
                "wave {wave} failed ({why}); rolled back {} to the last template every member ran; later waves were not changed",
                if members.is_empty() {
                    "nothing".to_string()
                } else {
                    members.join(", ")
                }
            );
            set(
                condition::READY,
                "False",
                reason::RECONCILIATION_FAILED,
                &message,
            );
            set(condition::STALLED, "True", "WaveFailed", &message);
            conditions::remove(&mut list, condition::RECONCILING);
        }
    }
    if !refused.is_empty() && matches!(step, Step::Apply(_) | Step::Wait { .. }) {
        let message = refused
            .iter()
            .map(|(member, why)| format!("member {member}: {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        conditions::set(
            &mut list,
            condition::READY,
            "False",
            reason::KUBECONFIG_REFUSED,
            &message,
            generation,
            now,
        );
    }
    status.conditions = Some(list);
}

/// A Warning event on the fleet and a warn log line for each member whose kubeconfig is newly
/// refused (or refused for a different reason than the status already says).
async fn announce_refusals(
    client: &Client,
    reporter: &Reporter,
    fleet: &FluxFleet,
    refusals: &[(String, String)],
) {
    let name = fleet.name_any();
    let mut events = Vec::new();
    for (member, why) in refusals {
        tracing::warn!(fleet = %name, %member, %why, "member kubeconfig refused");
        events.push(Event {
            type_: EventType::Warning,
            reason: reason::KUBECONFIG_REFUSED.into(),
            note: Some(super::truncate_note(&format!("member {member}: {why}"))),
            action: "ConnectMember".into(),
            secondary: None,
        });
    }
    super::publish_events(client, reporter, &fleet.object_ref(&()), events).await;
}

async fn reconcile(fleet: Arc<FluxFleet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let hub = &ctx.hub;
    let now = Timestamp::now();
    let spec = &fleet.spec;
    let name = fleet.name_any();
    let generation = fleet.metadata.generation;
    let namespace = spec
        .namespace
        .clone()
        .unwrap_or_else(|| "flux-system".into());
    let timeout = spec
        .health_timeout
        .as_deref()
        .and_then(|t| crate::api::duration::parse(t).ok())
        .unwrap_or(DEFAULT_HEALTH_TIMEOUT);
    let mut status = fleet.status.clone().unwrap_or_default();
    let previous: BTreeMap<String, FleetMemberStatus> = status
        .members
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.name.clone(), m))
        .collect();
    let waves = spec.waves();
    let overrides = spec.member_overrides();
    let stopped = status.failed_generation.is_some() && status.failed_generation == generation;

    let mut members: BTreeMap<String, FleetMemberStatus> = BTreeMap::new();
    let mut states = BTreeMap::new();
    let mut changed = BTreeMap::new();
    let mut clients = BTreeMap::new();
    let mut desired_specs = BTreeMap::new();
    // (member, why) of every refused kubeconfig, and of those not yet in the status.
    let mut refused = Vec::new();
    let mut newly_refused = Vec::new();
    for (wave, names) in &waves {
        for member_name in names {
            let Some(member) = spec.members.iter().find(|m| &m.name == member_name) else {
                continue;
            };
            let before = previous.get(member_name).cloned().unwrap_or_default();
            let mut record = FleetMemberStatus {
                name: member_name.clone(),
                wave: wave.clone(),
                applied: before.applied.clone(),
                applied_at: before.applied_at.clone(),
                ..FleetMemberStatus::default()
            };
            let (desired_spec, digest) = match desired(&spec.template, overrides.get(member_name)) {
                Ok(d) => d,
                Err(why) => {
                    record.last_error = Some(why.clone());
                    states.insert(member_name.clone(), MemberState::Failed(why));
                    members.insert(member_name.clone(), record);
                    continue;
                }
            };
            let observed = match member_client(&hub.client, &hub.namespace, member).await {
                Err(MemberClientError::Refused(why)) => {
                    if before.last_error.as_deref() != Some(why.as_str()) {
                        newly_refused.push((member_name.clone(), why.clone()));
                    } else {
                        tracing::debug!(fleet = %name, member = %member_name, "member kubeconfig still refused");
                    }
                    record.last_error = Some(why.clone());
                    refused.push((member_name.clone(), why.clone()));
                    states.insert(member_name.clone(), MemberState::Refused(why));
                    members.insert(member_name.clone(), record);
                    continue;
                }
                Err(MemberClientError::Other(e)) => Err(e),
                Ok(client) => {
                    let got = Api::<FluxInstance>::namespaced(client.clone(), &namespace)
                        .get_opt(SINGLETON_NAME)
                        .await
                        .map(|i| i.as_ref().map(MemberView::of))
                        .map_err(|e| describe(&e));
                    clients.insert(member_name.clone(), client);
                    got
                }
            };
            if let Ok(Some(view)) = &observed {
                record.revision = view.revision.clone();
            }
            let applied_at = record.applied_at.as_ref().map(|t| t.0);
            let state = member_state(&observed, &digest, applied_at, now, timeout);
            record.ready = state == MemberState::Healthy;
            record.last_error = match &state {
                MemberState::Failed(why)
                | MemberState::Unreachable(why)
                | MemberState::Refused(why) => Some(why.clone()),
                MemberState::Progressing(why) => Some(why.clone()),
                _ => None,
            };
            changed.insert(
                member_name.clone(),
                record.applied.as_deref() == Some(digest.as_str()),
            );
            states.insert(member_name.clone(), state);
            members.insert(member_name.clone(), record);
            desired_specs.insert(member_name.clone(), (desired_spec, digest));
        }
    }

    let step = if stopped || spec.suspend == Some(true) {
        None
    } else {
        Some(plan(&waves, &states, &changed))
    };
    match &step {
        Some(Step::Apply(targets)) => {
            for target in targets {
                if let (Some(client), Some((spec_value, digest))) =
                    (clients.get(target), desired_specs.get(target))
                {
                    let record = members.get_mut(target);
                    apply_recorded(
                        client, &namespace, spec_value, digest, record, now, "applying",
                    )
                    .await;
                }
            }
        }
        Some(Step::Rollback {
            wave,
            members: targets,
            why,
        }) => {
            tracing::warn!(fleet = %name, %wave, %why, "wave failed; rolling it back");
            for target in targets {
                let previous = status
                    .last_rolled_out
                    .as_ref()
                    .and_then(|template| desired(template, overrides.get(target)).ok());
                if let (Some(client), Some((spec_value, digest))) = (clients.get(target), previous)
                {
                    let record = members.get_mut(target);
                    apply_recorded(
                        client,
                        &namespace,
                        &spec_value,
                        &digest,
                        record,
                        now,
                        "rolling back",
                    )
                    .await;
                }
            }
            status.failed_generation = generation;
        }
        Some(Step::Done) => status.last_rolled_out = Some(spec.template.clone()),
        _ => {}
    }
    if let Some(step) = &step {
        set_conditions(&mut status, generation, step, &refused, now);
    }
    status.members = Some(members.into_values().collect());
    status.observed_generation = generation;
    if fleet.status.as_ref() != Some(&status) {
        super::replace_status(
            &Api::<FluxFleet>::namespaced(hub.client.clone(), &hub.namespace),
            &name,
            &status,
        )
        .await
        .map_err(|e| Error::Status(name.clone(), e))?;
    }
    announce_refusals(&hub.client, &ctx.reporter, &fleet, &newly_refused).await;
    Ok(match step {
        Some(Step::Done) | None => Action::requeue(Duration::from_secs(60)),
        _ => Action::requeue(Duration::from_secs(3)),
    })
}

fn error_policy(_: Arc<FluxFleet>, error: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(%error, "fleet reconcile failed");
    Action::requeue(Duration::from_secs(15))
}

/// Runs the FluxFleet controller of the hub's namespace.
pub async fn run(hub: Hub) {
    let fleets = Api::<FluxFleet>::namespaced(hub.client.clone(), &hub.namespace);
    let reporter = Reporter {
        controller: "fluxop".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    Controller::new(fleets, watcher::Config::default())
        .run(reconcile, error_policy, Arc::new(Context { hub, reporter }))
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "fleet controller event");
            }
            futures::future::ready(())
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waves() -> Vec<(String, Vec<String>)> {
        vec![
            ("canary".into(), vec!["a".into()]),
            ("rest".into(), vec!["b".into(), "c".into()]),
        ]
    }

    fn states(list: &[(&str, MemberState)]) -> BTreeMap<String, MemberState> {
        list.iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect()
    }

    #[test]
    fn the_canary_goes_first_and_the_rest_waits_for_it() {
        let none = BTreeMap::new();
        let all_new = states(&[
            ("a", MemberState::NeedsApply),
            ("b", MemberState::NeedsApply),
            ("c", MemberState::NeedsApply),
        ]);
        assert_eq!(
            plan(&waves(), &all_new, &none),
            Step::Apply(vec!["a".into()])
        );
        let canary_busy = states(&[
            ("a", MemberState::Progressing("applying".into())),
            ("b", MemberState::NeedsApply),
            ("c", MemberState::NeedsApply),
        ]);
        assert!(
            matches!(plan(&waves(), &canary_busy, &none), Step::Wait { wave, .. } if wave == "canary")
        );
        let canary_done = states(&[
            ("a", MemberState::Healthy),
            ("b", MemberState::NeedsApply),
            ("c", MemberState::Unreachable("refused".into())),
        ]);
        assert_eq!(
            plan(&waves(), &canary_done, &none),
            Step::Apply(vec!["b".into()])
        );
        let waiting = states(&[
            ("a", MemberState::Healthy),
            ("b", MemberState::Healthy),
            ("c", MemberState::Unreachable("connection refused".into())),
        ]);
        assert!(
            matches!(plan(&waves(), &waiting, &none), Step::Wait { why, .. } if why.contains("c unreachable"))
        );
        let done = states(&[
            ("a", MemberState::Healthy),
            ("b", MemberState::Healthy),
            ("c", MemberState::Healthy),
        ]);
        assert_eq!(plan(&waves(), &done, &none), Step::Done);
    }

    #[test]
    fn a_failed_canary_rolls_back_what_was_changed_and_leaves_later_waves_alone() {
        let failed = states(&[
            ("a", MemberState::Failed("not Ready within 30s".into())),
            ("b", MemberState::NeedsApply),
            ("c", MemberState::NeedsApply),
        ]);
        let changed = BTreeMap::from([("a".to_string(), true)]);
        assert_eq!(
            plan(&waves(), &failed, &changed),
            Step::Rollback {
                wave: "canary".into(),
                members: vec!["a".into()],
                why: "a: not Ready within 30s".into()
            }
        );
    }

    #[test]
    fn member_states_follow_the_digest_the_conditions_and_the_timeout() {
        let at = |s| Timestamp::from_second(s).unwrap();
        let view = |digest: &str, ready: &str, stalled: bool| MemberView {
            digest: Some(digest.into()),
            generation: Some(2),
            ready: Some((ready.into(), Some(2), "msg".into())),
            stalled: stalled.then(|| (Some(2), "RolledBack".into(), "rolled back".into())),
            revision: None,
        };
        let timeout = Duration::from_secs(30);
        let state = |observed, applied: Option<i64>, now| {
            member_state(&observed, "sha256:new", applied.map(at), at(now), timeout)
        };
        assert_eq!(state(Ok(None), None, 0), MemberState::NeedsApply);
        assert_eq!(
            state(Ok(Some(view("sha256:old", "True", false))), None, 0),
            MemberState::NeedsApply
        );
        assert_eq!(
            state(Ok(Some(view("sha256:new", "True", false))), Some(0), 5),
            MemberState::Healthy
        );
        assert!(matches!(
            state(Ok(Some(view("sha256:new", "Unknown", false))), Some(0), 5),
            MemberState::Progressing(_)
        ));
        assert!(
            matches!(state(Ok(Some(view("sha256:new", "Unknown", false))), Some(0), 31), MemberState::Failed(m) if m.contains("within 30s"))
        );
        assert!(
            matches!(state(Ok(Some(view("sha256:new", "False", true))), Some(0), 5), MemberState::Failed(m) if m.contains("RolledBack"))
        );
        assert!(matches!(
            state(Err("refused".into()), None, 0),
            MemberState::Unreachable(_)
        ));
    }

    #[test]
    fn a_refused_member_holds_its_wave_and_makes_the_fleet_not_ready_with_a_reason() {
        let none = BTreeMap::new();
        let why = "kubeconfig in Secret c-kubeconfig (key \"value\") refused: user \"x\" uses an exec plugin (exec)";
        let refused_states = states(&[
            ("a", MemberState::Healthy),
            ("b", MemberState::Healthy),
            ("c", MemberState::Refused(why.into())),
        ]);
        let step = plan(&waves(), &refused_states, &none);
        assert!(
            matches!(&step, Step::Wait { wave, why: w } if wave == "rest" && w.contains("c refused: kubeconfig in Secret c-kubeconfig")),
            "{step:?}"
        );
        let now = Timestamp::from_second(100).unwrap();
        let mut status = FluxFleetStatus::default();
        set_conditions(
            &mut status,
            Some(3),
            &step,
            &[("c".into(), why.into())],
            now,
        );
        let list = status.conditions.clone().unwrap();
        let ready = list.iter().find(|c| c.type_ == condition::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reason::KUBECONFIG_REFUSED)
        );
        assert!(
            ready
                .message
                .starts_with("member c: kubeconfig in Secret c-kubeconfig"),
            "{}",
            ready.message
        );
        // Once the Secret is fixed the reason goes back to the rollout's.
        set_conditions(&mut status, Some(3), &step, &[], now);
        let list = status.conditions.unwrap();
        let ready = list.iter().find(|c| c.type_ == condition::READY).unwrap();
        assert_eq!(ready.reason, reason::PROGRESSING);
    }

    #[test]
    fn overrides_merge_into_the_template_and_change_the_digest() {
        let template =
            json!({ "distribution": { "version": "2.9.x", "registry": "ghcr.io/fluxcd" } });
        let (plain, plain_digest) = desired(&template, None).unwrap();
        let (overridden, digest) = desired(
            &template,
            Some(&json!({ "distribution": { "version": "2.8.x" } })),
        )
        .unwrap();
        assert_eq!(plain["distribution"]["version"], "2.9.x");
        assert_eq!(overridden["distribution"]["version"], "2.8.x");
        assert_eq!(overridden["distribution"]["registry"], "ghcr.io/fluxcd");
        assert_ne!(plain_digest, digest);
        assert!(desired(&json!({ "components": ["nope"] }), None).is_err());
    }
}
