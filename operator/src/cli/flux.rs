//! The everyday verbs of the Flux workflow on Flux's own objects, spelled as the flux CLI
//! spells them: `get`, `reconcile`, `suspend`, `resume` and `events` of sources,
//! Kustomizations, HelmReleases, notification and image automation objects. Suspension is
//! Flux's own `spec.suspend`, a reconcile request Flux's own annotation, so the controllers
//! see exactly what the flux CLI would have written.
//!
//! Which kinds exist is read from the API server's discovery of the Flux groups (names,
//! short names, the preferred version), so a newer Flux release's kinds work without a new
//! fluxop.

use std::{
    process::ExitCode,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::Event, apimachinery::pkg::apis::meta::v1::APIResource, jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};

use super::{
    Error, OutputFormat,
    ops::{EXIT_NOT_READY, age_of, colored, table},
    print_structured,
};
use crate::{
    api::constants::{FLUX_API_GROUPS, annotation},
    report::ObjectState,
};

/// A Flux kind served by the cluster, from API discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxKind {
    pub group: String,
    /// The group's preferred version.
    pub version: String,
    pub kind: String,
    pub plural: String,
    singular: String,
    short_names: Vec<String>,
}

/// The `fluxcd.controlplane.io` kinds `get`, `reconcile`, `suspend`, `events` and `wait`
/// act on like Flux's own.
const OPERATOR_KINDS: [&str; 2] = ["ResourceSet", "ResourceSetInputProvider"];

impl FluxKind {
    /// Suspended through fluxop's annotation rather than `spec.suspend`.
    fn suspends_by_annotation(&self) -> bool {
        self.group == crate::api::GROUP
    }

    /// The kinds of one Flux API group version, from the API server's discovery document
    /// (subresources such as `status` left out).
    pub fn of_group(group_version: &str, resources: &[APIResource]) -> Vec<Self> {
        let Some((group, version)) = group_version.split_once('/') else {
            return Vec::new();
        };
        let operator_group = group == crate::api::GROUP;
        if !FLUX_API_GROUPS.contains(&group) && !operator_group {
            return Vec::new();
        }
        resources
            .iter()
            .filter(|r| !r.name.contains('/'))
            // Of the operator's own group, the kinds a platform team has many of (the
            // instance and its report have commands of their own).
            .filter(|r| !operator_group || OPERATOR_KINDS.contains(&r.kind.as_str()))
            .map(|r| Self {
                group: group.to_string(),
                version: version.to_string(),
                kind: r.kind.clone(),
                plural: r.name.clone(),
                singular: r.singular_name.clone(),
                short_names: r.short_names.clone().unwrap_or_default(),
            })
            .collect()
    }

    fn resource(&self) -> ApiResource {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            &self.group,
            &self.version,
            &self.kind,
        ))
    }

    fn named(&self, word: &str) -> bool {
        let word = word.to_ascii_lowercase();
        word == self.kind.to_ascii_lowercase()
            || word == self.plural
            || word == self.singular
            || self.short_names.contains(&word)
    }

    fn is_source(&self) -> bool {
        self.group.starts_with("source.")
    }
}

/// What the words after a verb name: kinds and object names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub kinds: Vec<FluxKind>,
    pub names: Vec<String>,
}

/// The flux CLI's two-word spellings: `source git`, `image policy`, ...
const SOURCE_WORDS: [(&str, &str); 5] = [
    ("git", "GitRepository"),
    ("oci", "OCIRepository"),
    ("bucket", "Bucket"),
    ("helm", "HelmRepository"),
    ("chart", "HelmChart"),
];
const IMAGE_WORDS: [(&str, &str); 3] = [
    ("repository", "ImageRepository"),
    ("policy", "ImagePolicy"),
    ("update", "ImageUpdateAutomation"),
];

/// Resolves `words` (`kustomization app`, `ks app`, `source git repo`, `sources all`,
/// `all`) against the kinds the cluster serves.
pub fn select(words: &[String], served: &[FluxKind]) -> Result<Selection, String> {
    let Some(first) = words.first() else {
        return Err("name a kind, e.g. `kustomization`, `source git` or `all`".into());
    };
    let by_kind = |kind: &str| served.iter().filter(|k| k.kind == kind).cloned().collect();
    let unknown = |word: &str| {
        let mut known: Vec<&str> = served.iter().map(|k| k.plural.as_str()).collect();
        known.sort();
        format!(
            "no Flux kind is called {word:?} in this cluster; known: {}",
            known.join(", ")
        )
    };
    let two_words = |table: &[(&str, &str)], all: &dyn Fn(&FluxKind) -> bool| {
        let second = words.get(1).map(|w| w.to_ascii_lowercase());
        match second.as_deref() {
            None | Some("all") => Ok((served.iter().filter(|k| all(k)).cloned().collect(), 2)),
            Some(word) => table
                .iter()
                .find(|(w, _)| *w == word || format!("{w}s") == word)
                .map(|(_, kind)| (by_kind(kind), 2))
                .ok_or_else(|| unknown(&format!("{first} {word}"))),
        }
    };
    let (kinds, used): (Vec<FluxKind>, usize) = match first.to_ascii_lowercase().as_str() {
        "all" => (served.to_vec(), 1),
        "source" | "sources" => two_words(&SOURCE_WORDS, &|k| k.is_source())?,
        "image" | "images" => two_words(&IMAGE_WORDS, &|k| k.group.starts_with("image."))?,
        "alert-provider" | "alert-providers" => (by_kind("Provider"), 1),
        word => (
            served.iter().filter(|k| k.named(word)).cloned().collect(),
            1,
        ),
    };
    if kinds.is_empty() {
        return Err(unknown(&words[..used.min(words.len())].join(" ")));
    }
    Ok(Selection {
        kinds,
        names: words[used.min(words.len())..].to_vec(),
    })
}

/// Has the controller handled reconcile request `requested` (when given) and finished with
/// this generation? `Some(ready)` then, `None` while it is still at work. Flux sets Ready to
/// Unknown while reconciling and records the generation it last finished.
pub fn settled(object: &Value, requested: Option<&str>) -> Option<bool> {
    let status = &object["status"];
    if let Some(requested) = requested
        && status["lastHandledReconcileAt"].as_str() != Some(requested)
    {
        return None;
    }
    let generation = &object["metadata"]["generation"];
    if status.get("observedGeneration").is_some() && status["observedGeneration"] != *generation {
        return None;
    }
    let ready = status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    if ready.get("observedGeneration").is_some() && ready["observedGeneration"] != *generation {
        return None;
    }
    match ready["status"].as_str() {
        Some("True") => Some(true),
        Some("False") => Some(false),
        _ => None,
    }
}

/// `Kind/namespace/name` of the source an object reads from, if it has one.
fn source_of(object: &Value) -> Option<(String, String, String)> {
    let reference = object["spec"]
        .get("sourceRef")
        .or_else(|| object["spec"]["chart"]["spec"].get("sourceRef"))
        .or_else(|| object["spec"].get("chartRef"))?;
    let namespace = reference["namespace"]
        .as_str()
        .or_else(|| object["metadata"]["namespace"].as_str())?;
    Some((
        reference["kind"].as_str()?.to_string(),
        namespace.to_string(),
        reference["name"].as_str()?.to_string(),
    ))
}

pub struct Cluster {
    pub client: Client,
    pub served: Vec<FluxKind>,
}

impl Cluster {
    /// Discovers the Flux kinds the cluster serves, at each group's preferred version: a
    /// few small discovery requests, not a list of every CRD with its schema.
    pub async fn connect(client: Client) -> Result<Self, Error> {
        let discovery = |e: kube::Error| Error::Build(format!("discovering the Flux APIs: {e}"));
        let groups = client.list_api_groups().await.map_err(discovery)?;
        let mut served = Vec::new();
        for group in groups.groups {
            if !FLUX_API_GROUPS.contains(&group.name.as_str()) && group.name != crate::api::GROUP {
                continue;
            }
            let Some(preferred) = group
                .preferred_version
                .or_else(|| group.versions.into_iter().next())
            else {
                continue;
            };
            let resources = client
                .list_api_group_resources(&preferred.group_version)
                .await
                .map_err(discovery)?;
            served.extend(FluxKind::of_group(
                &preferred.group_version,
                &resources.resources,
            ));
        }
        Ok(Self { client, served })
    }

    fn api(&self, kind: &FluxKind, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(namespace) => {
                Api::namespaced_with(self.client.clone(), namespace, &kind.resource())
            }
            None => Api::all_with(self.client.clone(), &kind.resource()),
        }
    }

    fn kind_named(&self, kind: &str) -> Result<&FluxKind, Error> {
        self.served
            .iter()
            .find(|k| k.kind == kind)
            .ok_or_else(|| Error::Build(format!("the cluster serves no Flux kind {kind}")))
    }

    async fn get(&self, kind: &FluxKind, namespace: &str, name: &str) -> Result<Value, Error> {
        let object = self
            .api(kind, Some(namespace))
            .get_opt(name)
            .await
            .map_err(|e| Error::Build(format!("reading {}/{namespace}/{name}: {e}", kind.kind)))?
            .ok_or_else(|| Error::Build(format!("no {} {namespace}/{name}", kind.kind)))?;
        Ok(serde_json::to_value(object).unwrap_or_default())
    }

    async fn patch(
        &self,
        kind: &FluxKind,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<(), Error> {
        self.api(kind, Some(namespace))
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|e| Error::Build(format!("updating {}/{namespace}/{name}: {e}", kind.kind)))?;
        Ok(())
    }

    /// Every object of the selection (in `namespace`, or everywhere), as JSON.
    pub async fn list(
        &self,
        selection: &Selection,
        namespace: Option<&str>,
    ) -> Result<Vec<(FluxKind, Value)>, Error> {
        let mut found = Vec::new();
        for kind in &selection.kinds {
            let objects = match (namespace, selection.names.as_slice()) {
                (Some(namespace), names) if !names.is_empty() => {
                    let mut objects = Vec::new();
                    for name in names {
                        objects.push(self.get(kind, namespace, name).await?);
                    }
                    objects
                }
                _ => self
                    .api(kind, namespace)
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| Error::Build(format!("listing {}: {e}", kind.plural)))?
                    .items
                    .into_iter()
                    .filter(|o| {
                        selection.names.is_empty()
                            || o.metadata
                                .name
                                .as_ref()
                                .is_some_and(|n| selection.names.contains(n))
                    })
                    .filter_map(|o| serde_json::to_value(o).ok())
                    .collect(),
            };
            found.extend(objects.into_iter().map(|o| (kind.clone(), o)));
        }
        Ok(found)
    }

    /// Asks for a reconcile of one object; returns the request's value.
    async fn request_reconcile(
        &self,
        kind: &FluxKind,
        namespace: &str,
        name: &str,
        force: bool,
    ) -> Result<String, Error> {
        let now = Timestamp::now().to_string();
        let mut annotations = json!({ annotation::REQUESTED_AT: now });
        if force {
            annotations[annotation::FORCE_AT] = json!(now);
        }
        self.patch(
            kind,
            namespace,
            name,
            json!({ "metadata": { "annotations": annotations } }),
        )
        .await?;
        Ok(now)
    }

    /// [`Self::wait_settled`], its outcome printed and turned into an exit code.
    async fn wait_and_report(
        &self,
        kind: &FluxKind,
        namespace: &str,
        name: &str,
        requested: &str,
        timeout: Duration,
    ) -> Result<ExitCode, Error> {
        let outcome = self
            .wait_settled(kind, namespace, name, Some(requested), timeout)
            .await?;
        Ok(report_wait(kind, namespace, name, outcome))
    }

    /// Waits until the object handled `requested` and settled; prints progress on stderr.
    async fn wait_settled(
        &self,
        kind: &FluxKind,
        namespace: &str,
        name: &str,
        requested: Option<&str>,
        timeout: Duration,
    ) -> Result<Option<(bool, Value)>, Error> {
        let mut wait = crate::poll::Deadline::after(timeout, Duration::from_millis(500));
        let mut last_line = None::<Instant>;
        loop {
            let object = self.get(kind, namespace, name).await?;
            if let Some(ready) = settled(&object, requested) {
                return Ok(Some((ready, object)));
            }
            if last_line.is_none_or(|l| l.elapsed() >= Duration::from_secs(10)) {
                eprintln!("◎ waiting for {} {namespace}/{name}", kind.kind);
                last_line = Some(Instant::now());
            }
            if wait.pause().await.is_err() {
                return Ok(None);
            }
        }
    }
}

/// The Ready condition's message of an object, for people.
fn ready_message(object: &Value) -> String {
    object["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Prints the outcome of a wait and turns it into an exit code.
fn report_wait(
    kind: &FluxKind,
    namespace: &str,
    name: &str,
    outcome: Option<(bool, Value)>,
) -> ExitCode {
    match outcome {
        Some((true, object)) => {
            let state = ObjectState::of(&object);
            eprintln!(
                "✔ {} {namespace}/{name} Ready{}",
                kind.kind,
                if state.revision.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", state.revision)
                }
            );
            ExitCode::SUCCESS
        }
        Some((false, object)) => {
            eprintln!(
                "✗ {} {namespace}/{name} not Ready: {}",
                kind.kind,
                ready_message(&object)
            );
            ExitCode::from(EXIT_NOT_READY)
        }
        None => {
            eprintln!("✗ {} {namespace}/{name}: timed out", kind.kind);
            ExitCode::from(EXIT_NOT_READY)
        }
    }
}

/// Exactly one kind and at least one name (or `all_names`), for verbs that write.
fn one_kind(selection: &Selection, all_names: bool) -> Result<&FluxKind, Error> {
    let [kind] = selection.kinds.as_slice() else {
        return Err(Error::Usage(format!(
            "name one kind, not {}",
            selection
                .kinds
                .iter()
                .map(|k| k.kind.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    if selection.names.is_empty() && !all_names {
        return Err(Error::Usage(format!("name the {} to act on", kind.kind)));
    }
    Ok(kind)
}

/// `get KIND [NAME...]`: a table (or the objects as JSON/YAML). With names, exits
/// [`EXIT_NOT_READY`] when one of them is not Ready.
pub async fn get(
    cluster: &Cluster,
    selection: &Selection,
    namespace: &str,
    all_namespaces: bool,
    output: OutputFormat,
) -> Result<ExitCode, Error> {
    let objects = cluster
        .list(selection, (!all_namespaces).then_some(namespace))
        .await?;
    let all_ready = objects
        .iter()
        .all(|(_, o)| settled(o, None) == Some(true) || crate::report::is_suspended(o));
    if output != OutputFormat::Table {
        let values: Vec<&Value> = objects.iter().map(|(_, o)| o).collect();
        print_structured(&values, output)?;
    } else if objects.is_empty() {
        eprintln!(
            "no {} found{}",
            selection
                .kinds
                .iter()
                .map(|k| k.plural.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if all_namespaces {
                String::new()
            } else {
                format!(" in {namespace}")
            }
        );
    } else {
        let several_kinds = selection.kinds.len() > 1;
        let mut header = Vec::new();
        if all_namespaces {
            header.push("NAMESPACE");
        }
        header.extend(["NAME", "REVISION", "SUSPENDED", "READY", "AGE", "MESSAGE"]);
        let rows: Vec<Vec<String>> = objects
            .iter()
            .map(|(kind, object)| {
                let state = ObjectState::of(object);
                let mut row = Vec::new();
                if all_namespaces {
                    row.push(state.namespace.clone());
                }
                row.push(if several_kinds {
                    format!("{}/{}", kind.kind, state.name)
                } else {
                    state.name.clone()
                });
                row.extend([
                    state.revision.clone(),
                    state.suspended.to_string(),
                    colored(&state.ready),
                    age_of(object["metadata"]["creationTimestamp"].as_str()),
                    ready_message(object),
                ]);
                row
            })
            .collect();
        print!("{}", table(&header, &rows));
    }
    Ok(if selection.names.is_empty() || all_ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_READY)
    })
}

pub struct ReconcileOptions {
    pub with_source: bool,
    pub force: bool,
    pub wait: bool,
    pub timeout: Duration,
}

/// `reconcile KIND NAME...`: Flux's reconcile request; with `with_source` the object's
/// source first, waited for, so the object applies the source's newest revision.
pub async fn reconcile(
    cluster: &Cluster,
    selection: &Selection,
    namespace: &str,
    options: &ReconcileOptions,
) -> Result<ExitCode, Error> {
    let kind = one_kind(selection, false)?;
    let mut code = ExitCode::SUCCESS;
    for name in &selection.names {
        let object = cluster.get(kind, namespace, name).await?;
        if crate::report::is_suspended(&object) {
            return Err(Error::Build(format!(
                "{} {namespace}/{name} is suspended: resume it first (fluxop resume {} {name})",
                kind.kind, kind.singular
            )));
        }
        if options.with_source {
            let Some((source_kind, source_namespace, source_name)) = source_of(&object) else {
                return Err(Error::Usage(format!(
                    "{} {namespace}/{name} has no source to reconcile",
                    kind.kind
                )));
            };
            let source = cluster.kind_named(&source_kind)?.clone();
            let requested = cluster
                .request_reconcile(&source, &source_namespace, &source_name, options.force)
                .await?;
            eprintln!("► reconciling {source_kind} {source_namespace}/{source_name}");
            let outcome = cluster
                .wait_settled(
                    &source,
                    &source_namespace,
                    &source_name,
                    Some(&requested),
                    options.timeout,
                )
                .await?;
            if report_wait(&source, &source_namespace, &source_name, outcome) != ExitCode::SUCCESS {
                return Ok(ExitCode::from(EXIT_NOT_READY));
            }
        }
        let requested = cluster
            .request_reconcile(kind, namespace, name, options.force)
            .await?;
        eprintln!(
            "► reconcile of {} {namespace}/{name} requested at {requested}",
            kind.kind
        );
        if options.wait {
            let result = cluster
                .wait_and_report(kind, namespace, name, &requested, options.timeout)
                .await?;
            if result != ExitCode::SUCCESS {
                code = result;
            }
        }
    }
    Ok(code)
}

/// `suspend`/`resume KIND NAME...|--all`: Flux's `spec.suspend`. Resuming also asks for a
/// reconcile, so the object catches up at once (as the flux CLI does).
pub async fn set_suspended(
    cluster: &Cluster,
    selection: &Selection,
    namespace: &str,
    all: bool,
    suspended: bool,
    wait: Option<Duration>,
) -> Result<ExitCode, Error> {
    let kind = one_kind(selection, all)?;
    let names: Vec<String> = if all {
        cluster
            .list(
                &Selection {
                    kinds: vec![kind.clone()],
                    names: Vec::new(),
                },
                Some(namespace),
            )
            .await?
            .into_iter()
            .filter_map(|(_, o)| o["metadata"]["name"].as_str().map(str::to_string))
            .collect()
    } else {
        selection.names.clone()
    };
    let mut code = ExitCode::SUCCESS;
    for name in &names {
        let now = Timestamp::now().to_string();
        let patch = if kind.suspends_by_annotation() {
            let value = if suspended {
                json!(annotation::DISABLED_VALUE)
            } else {
                Value::Null
            };
            let mut annotations = json!({ annotation::RECONCILE: value });
            if !suspended {
                annotations[annotation::REQUESTED_AT] = json!(now);
            }
            json!({ "metadata": { "annotations": annotations } })
        } else if suspended {
            json!({ "spec": { "suspend": true } })
        } else {
            json!({ "spec": { "suspend": false },
                    "metadata": { "annotations": { annotation::REQUESTED_AT: now } } })
        };
        cluster.patch(kind, namespace, name, patch).await?;
        eprintln!(
            "► {} {namespace}/{name} {}",
            kind.kind,
            if suspended { "suspended" } else { "resumed" }
        );
        if let (false, Some(timeout)) = (suspended, wait) {
            let result = cluster
                .wait_and_report(kind, namespace, name, &now, timeout)
                .await?;
            if result != ExitCode::SUCCESS {
                code = result;
            }
        }
    }
    Ok(code)
}

/// `events KIND NAME`: the Kubernetes Events of a Flux object, oldest first.
pub async fn events(
    cluster: &Cluster,
    selection: &Selection,
    namespace: &str,
    output: OutputFormat,
) -> Result<ExitCode, Error> {
    let kind = one_kind(selection, false)?;
    let api = Api::<Event>::namespaced(cluster.client.clone(), namespace);
    let mut found = Vec::new();
    for name in &selection.names {
        let selector = format!(
            "involvedObject.kind={},involvedObject.name={name}",
            kind.kind
        );
        let list = api
            .list(&ListParams::default().fields(&selector))
            .await
            .map_err(|e| Error::Build(format!("listing events: {e}")))?;
        found.extend(list.items);
    }
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    found.sort_by_key(when);
    if output != OutputFormat::Table {
        print_structured(&found, output)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|e| {
            vec![
                when(e)
                    .map(|t| age_of(Some(&t.to_string())))
                    .unwrap_or_default(),
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                format!(
                    "{}/{}",
                    e.involved_object.kind.clone().unwrap_or_default(),
                    e.involved_object.name.clone().unwrap_or_default()
                ),
                e.message
                    .clone()
                    .unwrap_or_default()
                    .trim()
                    .replace('\n', " "),
            ]
        })
        .collect();
    print!(
        "{}",
        table(&["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(group: &str, kind: &str, plural: &str, short: &[&str]) -> FluxKind {
        FluxKind {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn served() -> Vec<FluxKind> {
        vec![
            kind(
                "source.toolkit.fluxcd.io",
                "GitRepository",
                "gitrepositories",
                &["gitrepo"],
            ),
            kind(
                "source.toolkit.fluxcd.io",
                "OCIRepository",
                "ocirepositories",
                &["ocirepo"],
            ),
            kind(
                "kustomize.toolkit.fluxcd.io",
                "Kustomization",
                "kustomizations",
                &["ks"],
            ),
            kind(
                "helm.toolkit.fluxcd.io",
                "HelmRelease",
                "helmreleases",
                &["hr"],
            ),
            kind(
                "notification.toolkit.fluxcd.io",
                "Provider",
                "providers",
                &[],
            ),
            kind(
                "image.toolkit.fluxcd.io",
                "ImagePolicy",
                "imagepolicies",
                &["imgpol"],
            ),
        ]
    }

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    fn kinds_of(text: &str) -> Vec<String> {
        select(&words(text), &served())
            .expect("selects")
            .kinds
            .into_iter()
            .map(|k| k.kind)
            .collect()
    }

    #[test]
    fn kinds_are_named_as_kubectl_and_the_flux_cli_name_them() {
        for text in [
            "kustomization a",
            "Kustomization a",
            "kustomizations",
            "ks a",
        ] {
            assert_eq!(kinds_of(text), ["Kustomization"], "{text}");
        }
        assert_eq!(kinds_of("source git repo"), ["GitRepository"]);
        assert_eq!(kinds_of("sources oci"), ["OCIRepository"]);
        assert_eq!(kinds_of("sources"), ["GitRepository", "OCIRepository"]);
        assert_eq!(kinds_of("source all x"), ["GitRepository", "OCIRepository"]);
        assert_eq!(kinds_of("image policy p"), ["ImagePolicy"]);
        assert_eq!(kinds_of("alert-providers"), ["Provider"]);
        assert_eq!(kinds_of("hr"), ["HelmRelease"]);
        assert_eq!(kinds_of("all").len(), served().len());
    }

    #[test]
    fn names_follow_the_kind_words() {
        let selection = select(&words("source git a b"), &served()).expect("selects");
        assert_eq!(selection.names, ["a", "b"]);
        let selection = select(&words("ks app"), &served()).expect("selects");
        assert_eq!(selection.names, ["app"]);
    }

    #[test]
    fn an_unknown_kind_lists_the_known_ones() {
        let error = select(&words("kustomisation a"), &served()).expect_err("refused");
        assert!(error.contains("\"kustomisation\""), "{error}");
        assert!(error.contains("kustomizations"), "{error}");
        let error = select(&words("source svn a"), &served()).expect_err("refused");
        assert!(error.contains("source svn"), "{error}");
        assert!(select(&[], &served()).is_err());
    }

    #[test]
    fn kinds_come_from_the_discovery_of_flux_groups_only() {
        let resources: Vec<APIResource> = serde_json::from_value(json!([
            { "name": "kustomizations", "singularName": "kustomization", "namespaced": true,
              "kind": "Kustomization", "verbs": ["get"], "shortNames": ["ks"] },
            { "name": "kustomizations/status", "singularName": "", "namespaced": true,
              "kind": "Kustomization", "verbs": ["get"] }
        ]))
        .expect("resources");
        let kinds = FluxKind::of_group("kustomize.toolkit.fluxcd.io/v1", &resources);
        assert_eq!(kinds.len(), 1);
        assert!(kinds[0].named("ks") && kinds[0].named("kustomization"));
        assert_eq!(kinds[0].version, "v1");
        assert!(FluxKind::of_group("example.com/v1", &resources).is_empty());
        assert!(FluxKind::of_group("v1", &resources).is_empty());
    }

    #[test]
    fn an_object_is_settled_once_its_generation_and_request_are_handled() {
        let object = |handled: &str, observed: i64, ready: &str| {
            json!({
                "metadata": { "generation": 2 },
                "status": {
                    "lastHandledReconcileAt": handled,
                    "observedGeneration": observed,
                    "conditions": [{ "type": "Ready", "status": ready, "observedGeneration": observed }]
                }
            })
        };
        assert_eq!(settled(&object("t1", 2, "True"), Some("t1")), Some(true));
        assert_eq!(settled(&object("t1", 2, "False"), Some("t1")), Some(false));
        assert_eq!(settled(&object("t0", 2, "True"), Some("t1")), None);
        assert_eq!(settled(&object("t1", 1, "True"), Some("t1")), None);
        assert_eq!(settled(&object("t1", 2, "Unknown"), Some("t1")), None);
        assert_eq!(settled(&object("t0", 2, "True"), None), Some(true));
        // Mid-reconcile status patches can say Ready before the generation is recorded.
        let mut early = object("t1", 2, "True");
        early["status"]["observedGeneration"] = json!(-1);
        assert_eq!(settled(&early, Some("t1")), None);
    }

    #[test]
    fn the_source_of_a_kustomization_and_a_helm_release() {
        let kustomization = json!({
            "metadata": { "namespace": "apps" },
            "spec": { "sourceRef": { "kind": "GitRepository", "name": "repo", "namespace": "flux-system" } }
        });
        assert_eq!(
            source_of(&kustomization),
            Some(("GitRepository".into(), "flux-system".into(), "repo".into()))
        );
        let release = json!({
            "metadata": { "namespace": "apps" },
            "spec": { "chartRef": { "kind": "OCIRepository", "name": "chart" } }
        });
        assert_eq!(
            source_of(&release),
            Some(("OCIRepository".into(), "apps".into(), "chart".into()))
        );
        assert_eq!(source_of(&json!({ "spec": {} })), None);
    }
}
