//! Conformance with the incumbent: every `FluxInstance` of the corpus
//! (`e2e/testdata/conformance/`, together every field of the v1 spec) is rendered by the
//! Flux Operator's CLI (`flux-operator build instance`, pulling the bundle from the test
//! registry) and by `fluxop build instance` (from the same bundle, pulled by digest), and the
//! two are compared object by object after the normalisation of
//! `fluxop_e2e::conformance::normalise` (object order, arg spelling, tag vs digest, the
//! managed-by label: equivalent spellings only).
//!
//! What differs after that must be exactly `EXPECTED` below: a new difference fails the
//! test, and so does an entry that no longer matches anything (remove it once the difference
//! is gone). Each entry is a pattern over `instance | object | path | incumbent -> fluxop`
//! (`*` for any run of characters) with its class and reason. Run with `--nocapture` to see
//! every difference.

use std::{collections::BTreeMap, path::PathBuf};

#[path = "conformance/resourceset.rs"]
mod resourceset;

use fluxop_e2e::{
    conformance::{Difference, compare, glob, render_fluxop, render_incumbent},
    fluxop, registry_address, repo_root, unique_repository,
};

/// Why a difference is expected. There is no class for "not decided yet": a difference is
/// either fluxop's on purpose or the incumbent CLI's mistake, else fluxop's render is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// fluxop differs on purpose, or the two mean the same thing in a way the normalisation
    /// does not cover.
    Deliberate,
    /// The incumbent's CLI renders something its own operator would not (checked against
    /// the incumbent's API defaults and its operator's use of the same builder).
    IncumbentCli,
}

struct Expected {
    pattern: &'static str,
    class: Class,
    reason: &'static str,
}

const fn expect(pattern: &'static str, class: Class, reason: &'static str) -> Expected {
    Expected {
        pattern,
        class,
        reason,
    }
}

use Class::*;

/// Every difference the test accepts, in one place, each with its class and reason (the
/// README's table lists the same rows).
const EXPECTED: &[Expected] = &[
    // (b) deliberate or equivalent
    expect(
        "* | Deployment/* | spec.template.spec.containers[manager].args.--feature-gates | \
         {\"ObjectLevelWorkloadIdentity\":false} -> <absent>",
        Deliberate,
        "From Flux 2.7 the incumbent writes ObjectLevelWorkloadIdentity=false on every \
         controller when cluster.objectLevelWorkloadIdentity is off; fluxop leaves the gate \
         at the controller's default, which is false in every release of the bundle (2.7.5, \
         2.8.8, 2.9.4: fluxcd/pkg/auth SetFeatureGates). Same behaviour; would differ only \
         if a release made the gate opt-out.",
    ),
    expect(
        "* | Deployment/* | spec.template.spec.containers[manager].args.--feature-gates.\
         ObjectLevelWorkloadIdentity | false -> <absent>",
        Deliberate,
        "As above, on a controller that also has other gates (ExternalArtifact with \
         source-watcher).",
    ),
    expect(
        "* | Deployment/flux-system/source-controller | \
         spec.template.spec.containers[manager].volumeMounts[data] | <absent> -> \
         {\"mountPath\":\"/data\",\"name\":\"data\"}",
        Deliberate,
        "spec.storage: fluxop puts the claim in the release's own `data` volume; the \
         incumbent adds a `persistent-data` volume for it, mounts that at /data and leaves \
         `data` as an unused emptyDir. Either way the claim is what source-controller \
         stores artifacts in.",
    ),
    expect(
        "* | Deployment/flux-system/source-controller | \
         spec.template.spec.containers[manager].volumeMounts[persistent-data] | \
         {\"mountPath\":\"/data\",\"name\":\"persistent-data\"} -> <absent>",
        Deliberate,
        "spec.storage: the incumbent's mount of its extra volume (see above).",
    ),
    expect(
        "* | Deployment/flux-system/source-controller | spec.template.spec.volumes[data].\
         emptyDir | {} -> <absent>",
        Deliberate,
        "spec.storage: fluxop's `data` volume is the claim, not an emptyDir (see above).",
    ),
    expect(
        "* | Deployment/flux-system/source-controller | spec.template.spec.volumes[data].\
         persistentVolumeClaim | <absent> -> {\"claimName\":\"source-controller\"}",
        Deliberate,
        "spec.storage: the claim in fluxop's `data` volume (see above).",
    ),
    expect(
        "* | Deployment/flux-system/source-controller | \
         spec.template.spec.volumes[persistent-data] | \
         {\"name\":\"persistent-data\",\"persistentVolumeClaim\":\
         {\"claimName\":\"source-controller\"}} -> <absent>",
        Deliberate,
        "spec.storage: the incumbent's extra volume (see above).",
    ),
    expect(
        "sharding-* | Deployment/flux-system/source-*-* | \
         spec.template.spec.containers[manager].args.--storage-adv-addr | \
         [\"source-*.$(RUNTIME_NAMESPACE).svc.cluster.local.\",\
         \"source-*-*.$(RUNTIME_NAMESPACE).svc.cluster.local.\"] -> \
         source-*-*.flux-system.svc.cluster.local.",
        Deliberate,
        "A shard's storage address: the incumbent keeps the main controller's flag and \
         appends the shard's (pflag keeps the last), with $(RUNTIME_NAMESPACE), which the \
         kubelet expands to the pod's namespace; fluxop writes the one effective value with \
         the namespace. Same address.",
    ),
    expect(
        "sync-* | *Repository/flux-system/* | spec.interval | *m0s -> *m",
        Deliberate,
        "sync.interval: the incumbent writes the parsed Go duration back (`5m0s`), fluxop \
         the spec's own spelling (`5m`); the same duration to the source controller.",
    ),
    expect(
        "patches | Deployment/flux-system/notification-controller | spec.replicas | 1 -> 2",
        Deliberate,
        "A patch target with `namespace: flux-system`: fluxop selects objects by the \
         namespace they are rendered into; the incumbent applies patches before it sets the \
         namespace, so the target silently selects nothing and the patch is lost.",
    ),
    expect(
        "patches-namespaced | <render> |  | refused: *no resource matches strategic merge \
         patch \"ServiceAccount.v1.[noGrp]/source-controller.flux-system\"* -> * objects",
        Deliberate,
        "The same cause for a strategic-merge patch that names its object's namespace: the \
         incumbent refuses it (no object has that namespace yet when patches run), fluxop \
         applies it to the object it names.",
    ),
    expect(
        "patches-empty-patch | <render> |  | refused: *must specify one of patch and path* \
         -> * objects",
        Deliberate,
        "An entry of kustomize.patches whose patch is empty: fluxop ignores it (the known \
         item); the incumbent (CLI and operator alike: both hand the patches to kustomize) \
         refuses to build, as kustomize needs a patch.",
    ),
    // (c) the incumbent's CLI is wrong (its operator renders what fluxop renders)
    expect(
        "cluster-defaults-small | NetworkPolicy/flux-system/* |  | <absent> -> present",
        IncumbentCli,
        "cluster given without networkPolicy: the API default is true, but the CLI's own \
         defaulting does not set it, so the release's network policies are dropped (the \
         CLI defaults networkPolicy to true only when `cluster` is absent altogether).",
    ),
    expect(
        "sharding-persistent | PersistentVolumeClaim/flux-system/source-controller-shard* |  \
         | <absent> -> present",
        IncumbentCli,
        "sharding.storage: persistent: the CLI never passes sharding.storage to its builder \
         (its operator does), so no claim per shard.",
    ),
    expect(
        "sharding-persistent | Deployment/flux-system/source-controller-shard* | \
         spec.template.spec.volumes[data].emptyDir | {} -> <absent>",
        IncumbentCli,
        "sharding.storage: persistent: so the CLI's shards keep the emptyDir (see above).",
    ),
    expect(
        "sharding-persistent | Deployment/flux-system/source-controller-shard* | \
         spec.template.spec.volumes[data].persistentVolumeClaim | <absent> -> \
         {\"claimName\":\"source-controller-shard*\"}",
        IncumbentCli,
        "sharding.storage: persistent: the shard's own claim (see above).",
    ),
];

fn corpus() -> Vec<(String, PathBuf)> {
    let dir = repo_root().join("e2e/testdata/conformance");
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_instance_renders_as_the_incumbent_renders_it_but_for_the_listed_differences() {
    // One bundle in the registry; the incumbent pulls it by digest, fluxop renders from the
    // same digest pulled into a directory.
    let registry = registry_address();
    let repository = unique_repository("conformance");
    let bundle_dir = repo_root().join("manifests-bundle");
    let pushed = fluxop(&[
        "bundle",
        "push",
        bundle_dir.to_str().unwrap(),
        &format!("oci://{registry}/{repository}:latest"),
        "--insecure",
    ]);
    let pinned = pushed.trim();
    let (_, digest) = pinned.rsplit_once('@').expect("a pinned reference");
    let artifact = format!("oci://{registry}/{repository}@{digest}");
    let work = std::env::temp_dir().join(format!("fluxop-conformance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let (pulled, docker_config) = (work.join("bundle"), work.join("docker"));
    std::fs::create_dir_all(&docker_config).unwrap();
    fluxop(&[
        "bundle",
        "pull",
        pinned,
        "-o",
        pulled.to_str().unwrap(),
        "--insecure",
    ]);

    let corpus = corpus();
    assert!(
        corpus.len() >= 15,
        "the corpus is in e2e/testdata/conformance"
    );
    let mut differences: Vec<Difference> = Vec::new();
    for (name, path) in &corpus {
        let incumbent = render_incumbent(path, &artifact, &docker_config);
        let ours = render_fluxop(path, &pulled);
        let found = compare(name, &incumbent, &ours);
        println!(
            "{name}: incumbent {}, fluxop {}, {} differences",
            incumbent
                .as_ref()
                .map_or("refused".into(), |o| format!("{} objects", o.len())),
            ours.as_ref()
                .map_or("refused".into(), |o| format!("{} objects", o.len())),
            found.len()
        );
        differences.extend(found);
    }
    let _ = std::fs::remove_dir_all(&work);

    // Every difference must be listed, and every entry must still match something.
    let mut matched = vec![0usize; EXPECTED.len()];
    let mut unlisted = Vec::new();
    let mut by_entry: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for difference in &differences {
        let line = difference.to_string();
        let hits: Vec<usize> = EXPECTED
            .iter()
            .enumerate()
            .filter(|(_, e)| glob(e.pattern, &line))
            .map(|(i, _)| i)
            .collect();
        if hits.is_empty() {
            unlisted.push(line.clone());
        }
        for i in hits {
            matched[i] += 1;
            by_entry.entry(i).or_default().push(line.clone());
        }
    }
    for (i, entry) in EXPECTED.iter().enumerate() {
        println!(
            "\n[{:?}] {} ({} differences)\n  reason: {}",
            entry.class, entry.pattern, matched[i], entry.reason
        );
        for line in by_entry.get(&i).into_iter().flatten() {
            println!("    {line}");
        }
    }
    let stale: Vec<&str> = EXPECTED
        .iter()
        .zip(&matched)
        .filter(|(_, n)| **n == 0)
        .map(|(e, _)| e.pattern)
        .collect();
    assert!(
        unlisted.is_empty() && stale.is_empty(),
        "the differences with the incumbent changed.\n\
         {} new differences (fix fluxop, or list them in EXPECTED with a reason):\n  {}\n\
         {} entries of EXPECTED that match nothing any more (remove them):\n  {}",
        unlisted.len(),
        unlisted.join("\n  "),
        stale.len(),
        stale.join("\n  ")
    );
}
