//! ResourceSets render as the incumbent renders them:
//!
//! - fluxop's own corpus (`e2e/testdata/resourceset/`: every templating feature, Flatten and
//!   Permute, providers by name and selector, steps, exclusion, de-duplication, the function
//!   set, YAML quoting and folding) through `fluxop build rset` and the incumbent's
//!   `flux-operator build rset` with the same flags: the output must be the same bytes, and
//!   a manifest one refuses the other must refuse with the same message (but for the
//!   listed differences);
//! - the incumbent's own test corpora, read from its Go module (never copied here): its
//!   builder cases (`internal/builder/testdata/resourceset/`) must give the objects of their
//!   golden files, and its CLI cases (`cmd/cli/testdata/build_resourceset/`) the bytes of
//!   theirs.
//!
//! A corpus file is a ResourceSet, optionally followed by the Static providers it reads
//! (passed with `--inputs-from-provider`); `<case>.inputs.yaml` next to it is passed with
//! `--inputs-from`. Files under `refused/` must be refused by both.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use fluxop_e2e::{conformance::incumbent_bin, fluxop_bin, repo_root};
use serde_json::Value;

/// Refusals whose messages differ, as (case, reason).
const DIFFERENT_MESSAGES: &[(&str, &str)] = &[(
    "invalid-yaml",
    "The YAML parser's wording: libyaml says `did not find expected comment or line break`, \
     fluxop's parser adds where it was (`while scanning a block scalar, ...`); the line is \
     the same.",
)];

struct Outcome {
    ok: bool,
    stdout: String,
    message: String,
}

fn run(bin: &Path, args: &[&str]) -> Outcome {
    let output = Command::new(bin).args(args).output().expect("the CLI runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `✗ message` (incumbent) and `error: message` (fluxop).
    let message = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim_start_matches("✗ ")
        .trim_start_matches("error: ")
        .to_string();
    Outcome {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        message,
    }
}

/// The incumbent's Go module directory (the test bed's build of its CLI downloads it).
fn incumbent_module() -> PathBuf {
    let output = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .expect("go runs");
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
        .join("github.com/controlplaneio-fluxcd/flux-operator@v0.58.1");
    assert!(
        dir.is_dir(),
        "{} is missing: run `go mod download github.com/controlplaneio-fluxcd/flux-operator@v0.58.1`",
        dir.display()
    );
    dir
}

/// Splits a corpus file into the ResourceSet and its providers, in `work`; the flags that
/// hand the inputs over.
fn prepare(case: &Path, work: &Path) -> (PathBuf, Vec<String>) {
    let text = std::fs::read_to_string(case).unwrap();
    let mut documents = text.split("\n---\n");
    let rset = work.join("rset.yaml");
    std::fs::write(&rset, documents.next().unwrap()).unwrap();
    let providers: Vec<&str> = documents.collect();
    let mut flags = Vec::new();
    if !providers.is_empty() {
        let path = work.join("providers.yaml");
        std::fs::write(&path, providers.join("\n---\n")).unwrap();
        flags.extend([
            "--inputs-from-provider".to_string(),
            path.display().to_string(),
        ]);
    }
    let inputs = case.with_extension("inputs.yaml");
    if inputs.is_file() {
        flags.extend(["--inputs-from".to_string(), inputs.display().to_string()]);
    }
    (rset, flags)
}

fn corpus(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml")
                && !p.to_string_lossy().ends_with(".inputs.yaml")
        })
        .collect();
    files.sort();
    files
}

fn stem(path: &Path) -> String {
    path.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_resourceset_of_the_corpus_renders_to_the_bytes_the_incumbent_renders() {
    let dir = repo_root().join("e2e/testdata/resourceset");
    let work = std::env::temp_dir().join(format!("fluxop-rset-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let (accepted, refused) = (corpus(&dir), corpus(&dir.join("refused")));
    assert!(
        accepted.len() >= 9 && refused.len() >= 6,
        "the corpus is in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    let mut listed_seen = vec![false; DIFFERENT_MESSAGES.len()];
    for (case, must_refuse) in accepted
        .iter()
        .map(|c| (c, false))
        .chain(refused.iter().map(|c| (c, true)))
    {
        let name = stem(case);
        let (rset, flags) = prepare(case, &work);
        let mut args = vec!["build", "rset", "-f", rset.to_str().unwrap()];
        args.extend(flags.iter().map(String::as_str));
        let incumbent = run(&incumbent_bin(), &args);
        let ours = run(&fluxop_bin(), &args);
        println!(
            "{name}: incumbent {}, fluxop {}",
            if incumbent.ok {
                format!("{} bytes", incumbent.stdout.len())
            } else {
                format!("refused: {}", incumbent.message)
            },
            if ours.ok {
                format!("{} bytes", ours.stdout.len())
            } else {
                format!("refused: {}", ours.message)
            },
        );
        if incumbent.ok == must_refuse {
            failures.push(format!(
                "{name}: the incumbent {} it: fix the corpus",
                if must_refuse { "accepts" } else { "refuses" }
            ));
            continue;
        }
        match (incumbent.ok, ours.ok) {
            (true, true) if incumbent.stdout != ours.stdout => failures.push(format!(
                "{name}: different output\n--- incumbent\n{}\n--- fluxop\n{}",
                incumbent.stdout, ours.stdout
            )),
            (false, false) if incumbent.message != ours.message => {
                match DIFFERENT_MESSAGES
                    .iter()
                    .position(|(case, _)| *case == name)
                {
                    Some(i) => listed_seen[i] = true,
                    None => failures.push(format!(
                        "{name}: refused with different messages\n  incumbent: {}\n  fluxop:    {}",
                        incumbent.message, ours.message
                    )),
                }
            }
            (true, false) => failures.push(format!(
                "{name}: fluxop refuses what the incumbent renders: {}",
                ours.message
            )),
            (false, true) => failures.push(format!(
                "{name}: fluxop renders what the incumbent refuses: {}",
                incumbent.message
            )),
            _ => {}
        }
    }
    for ((case, _), seen) in DIFFERENT_MESSAGES.iter().zip(listed_seen) {
        if !seen {
            failures.push(format!(
                "{case}: listed in DIFFERENT_MESSAGES but the messages agree now: remove it"
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The objects of a multi-document YAML text, without the owner labels the CLI adds (the
/// incumbent's builder goldens are written before they are set).
fn objects_without_owner_labels(text: &str) -> Vec<Value> {
    let mut objects: Vec<Value> = serde_saphyr::from_multiple::<Value>(text)
        .expect("YAML parses")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect();
    for object in &mut objects {
        if let Some(labels) = object["metadata"]
            .get_mut("labels")
            .and_then(Value::as_object_mut)
        {
            labels.remove("resourceset.fluxcd.controlplane.io/name");
            labels.remove("resourceset.fluxcd.controlplane.io/namespace");
            if labels.is_empty() {
                object["metadata"].as_object_mut().unwrap().remove("labels");
            }
        }
    }
    objects
}

fn step_headers(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("# step: ")).collect()
}

#[test]
fn the_incumbents_builder_corpus_renders_to_the_objects_of_its_golden_files() {
    let dir = incumbent_module().join("internal/builder/testdata/resourceset");
    let cases: Vec<PathBuf> = corpus(&dir)
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".golden.yaml"))
        .collect();
    assert!(
        cases.len() >= 12,
        "{} has the incumbent's cases",
        dir.display()
    );
    // The cases without a golden file, and what the incumbent's own test expects of them.
    let refusals: &[(&str, &str)] = &[
        ("empty", "no objects were generated"),
        (
            "invalid-output",
            "failed to build resources[0]: failed to read object: error converting YAML to JSON",
        ),
        (
            "missing-inputs",
            "<inputs>: map has no entry for key \"semver\"",
        ),
        (
            "steps-duplicate",
            "duplicate resource ConfigMap/apps/app-config in step \"deploy\", already defined in step \"pre-deploy\"",
        ),
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let name = stem(case);
        let ours = run(
            &fluxop_bin(),
            &["build", "rset", "-f", case.to_str().unwrap()],
        );
        let golden = case.with_extension("golden.yaml");
        if let Some((_, expected)) = refusals.iter().find(|(c, _)| *c == name) {
            println!(
                "{name}: fluxop {}",
                if ours.ok {
                    "renders".into()
                } else {
                    format!("refuses: {}", ours.message)
                }
            );
            if ours.ok || !ours.message.contains(expected) {
                failures.push(format!(
                    "{name}: expected a refusal containing {expected:?}, got {}",
                    if ours.ok {
                        "objects".into()
                    } else {
                        ours.message
                    }
                ));
            }
            continue;
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
        if !ours.ok {
            failures.push(format!("{name}: fluxop refuses: {}", ours.message));
            continue;
        }
        let (ours_objects, want_objects) = (
            objects_without_owner_labels(&ours.stdout),
            objects_without_owner_labels(&want),
        );
        println!(
            "{name}: golden {} objects, fluxop {}",
            want_objects.len(),
            ours_objects.len()
        );
        if ours_objects != want_objects {
            failures.push(format!(
                "{name}: different objects\n--- golden\n{want}\n--- fluxop\n{}",
                ours.stdout
            ));
        }
        // Named steps print a header before their objects (the golden files name every
        // step, empty ones too; the CLI leaves out empty steps).
        let ours_headers = step_headers(&ours.stdout);
        if !ours_headers.iter().all(|h| step_headers(&want).contains(h)) {
            failures.push(format!(
                "{name}: step headers {ours_headers:?} not in the golden's"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_incumbents_cli_corpus_renders_to_the_bytes_of_its_golden_files() {
    let dir = incumbent_module().join("cmd/cli/testdata/build_resourceset");
    let path = |f: &str| dir.join(f).display().to_string();
    // The incumbent's own CLI test table: flags and golden file.
    let cases: &[(&[&str], &str)] = &[
        (&["-f", "rset-standalone.yaml"], "golden.yaml"),
        (
            &[
                "-f",
                "rset-with-rsip.yaml",
                "--inputs-from-provider",
                "rsip.yaml",
            ],
            "golden.yaml",
        ),
        (
            &["-f", "rset-with-rsip.yaml", "--inputs-from", "inputs.yaml"],
            "golden.yaml",
        ),
        (
            &[
                "-f",
                "rset-with-rsip-permuted.yaml",
                "--inputs-from-provider",
                "rsip.yaml",
            ],
            "golden-permuted.yaml",
        ),
        (
            &[
                "-f",
                "rset-with-rsip-labeled.yaml",
                "--inputs-from-provider",
                "rsip-labeled.yaml",
            ],
            "golden-labeled.yaml",
        ),
        (
            &[
                "-f",
                "rset-with-rsip-named.yaml",
                "--inputs-from-provider",
                "rsip-named.yaml",
            ],
            "golden-named.yaml",
        ),
        (
            &[
                "-f",
                "rset-with-rsip-separator.yaml",
                "--inputs-from-provider",
                "rsip-separator.yaml",
            ],
            "golden-separator.yaml",
        ),
        (&["-f", "rset-with-steps.yaml"], "golden-steps.yaml"),
    ];
    let mut failures = Vec::new();
    for (flags, golden) in cases {
        let mut args = vec!["build".to_string(), "rset".to_string()];
        args.extend(flags.iter().map(|f| {
            if f.ends_with(".yaml") {
                path(f)
            } else {
                f.to_string()
            }
        }));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ours = run(&fluxop_bin(), &args);
        let want = std::fs::read_to_string(dir.join(golden)).unwrap();
        println!(
            "{flags:?}: {}",
            if ours.ok {
                format!("{} bytes, golden {}", ours.stdout.len(), want.len())
            } else {
                ours.message.clone()
            }
        );
        if !ours.ok || ours.stdout != want {
            failures.push(format!(
                "{flags:?}: not the bytes of {golden}\n--- golden\n{want}\n--- fluxop ({})\n{}",
                ours.message, ours.stdout
            ));
        }
    }
    // Its refusals.
    for flags in [
        &["-f", "rset-with-rsip.yaml"][..],
        &["-f", "rset-steps-and-resources.yaml"][..],
    ] {
        let mut args = vec!["build".to_string(), "rset".to_string()];
        args.extend(flags.iter().map(|f| {
            if f.ends_with(".yaml") {
                path(f)
            } else {
                f.to_string()
            }
        }));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ours = run(&fluxop_bin(), &args);
        println!(
            "{flags:?}: {}",
            if ours.ok {
                "renders".to_string()
            } else {
                format!("refused: {}", ours.message)
            }
        );
        if ours.ok {
            failures.push(format!(
                "{flags:?}: fluxop renders what the incumbent refuses"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
