//! A clone of the repository on its own, with no team folder (`../shared`) beside it: what
//! `hack/vendor-flux.sh` — the first step of `hack/demo.sh` — does there. Offline it stops
//! with instructions; `FLUX_DIST` pointed at the real release files works, at tampered ones is
//! refused; downloads and the rebuild from Go module sources are held to the same pinned
//! checksums. No cluster and no network: downloads go to a server of the test's own on
//! loopback (or to a closed port), the Go-proxy rebuild is off or served from a prepared cache.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use fluxop_e2e::repo_root;

const VERSION: &str = "v2.9.4";
const UPSTREAM: &str = "https://github.com/fluxcd/flux2/releases/download/v2.9.4/manifests.tar.gz";

/// The real files of the release, as `hack/vendor-flux.sh` vendored (and verified) them for
/// the rest of the suite.
fn real_release() -> BTreeMap<String, Vec<u8>> {
    let dir = repo_root().join("manifests-bundle/flux").join(VERSION);
    let files: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run hack/vendor-flux.sh first (hack/test.sh does)",
                dir.display()
            )
        })
        .map(|entry| {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("read release file"))
        })
        .collect();
    assert!(
        files.contains_key("rbac.yaml"),
        "{} is incomplete",
        dir.display()
    );
    files
}

fn write_release(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
}

/// A manifests.tar.gz like the upstream asset (flat, one entry per file), made by `tar`.
fn tarball(files: &BTreeMap<String, Vec<u8>>, scratch: &Path) -> Vec<u8> {
    let dir = scratch.join("tarball-src");
    let _ = std::fs::remove_dir_all(&dir);
    write_release(&dir, files);
    let out = scratch.join("manifests.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&out)
        .arg("-C")
        .arg(&dir)
        .args(files.keys())
        .status()
        .expect("tar runs");
    assert!(status.success(), "tar -czf failed");
    std::fs::read(&out).unwrap()
}

fn tampered(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    let mut files = files.clone();
    files
        .get_mut("rbac.yaml")
        .unwrap()
        .extend_from_slice(b"# one more line\n");
    files
}

/// A copy of the repository's files (what a clone of it holds: tracked and new, not ignored)
/// at `<tmp>/repo`, where `../shared` does not exist; removed when dropped.
struct Clone {
    root: PathBuf,
    repo: PathBuf,
}

impl Clone {
    fn new() -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "fluxop-clone-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        let repo = root.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let listing = Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(repo_root())
            .output()
            .expect("git runs (the test copies the repository's files as a clone has them)");
        assert!(listing.status.success(), "git ls-files failed");
        for name in listing.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let name = String::from_utf8_lossy(name).into_owned();
            let from = repo_root().join(&name);
            if !from.is_file() {
                continue; // deleted in the working tree
            }
            let to = repo.join(&name);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {name}: {e}"));
        }
        assert!(!root.join("shared").exists());
        assert!(!repo.join("manifests-bundle/flux").exists());
        Self { root, repo }
    }

    /// Runs a script of the clone from `root`, offline: no FLUX_* settings from outside,
    /// downloads to a closed port, the Go-proxy rebuild off, caches and state under `root`,
    /// and no Go on PATH (so a demo that got past vendoring stops at its first build rather
    /// than building Kubernetes).
    fn run(&self, script: &str, args: &[&str], env: &[(&str, String)]) -> Output {
        let closed_port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let path = std::env::var("PATH").unwrap_or_default();
        let path = std::env::split_paths(&path)
            .filter(|dir| !dir.join("go").exists())
            .collect::<Vec<_>>();
        let mut command = Command::new(self.repo.join(script));
        command
            .args(args)
            .current_dir(&self.root)
            .env("PATH", std::env::join_paths(path).unwrap())
            .env("FLUXOP_TESTBED_CACHE", self.root.join("cache"))
            .env("FLUXOP_TESTBED_STATE", self.root.join("state"))
            .env(
                "FLUX_RELEASES_URL",
                format!("http://127.0.0.1:{closed_port}"),
            )
            .env("FLUX_REBUILD", "0")
            .env_remove("FLUX_DIST")
            .env_remove("FLUX_IMAGES");
        for (name, value) in env {
            command.env(name, value);
        }
        let started = Instant::now();
        let output = command.output().expect("script runs");
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{script} took {:?}",
            started.elapsed()
        );
        output
    }

    fn vendor(&self, env: &[(&str, String)]) -> Output {
        self.run("hack/vendor-flux.sh", &[], env)
    }

    fn vendored(&self) -> BTreeMap<String, Vec<u8>> {
        let dir = self.repo.join("manifests-bundle/flux").join(VERSION);
        std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect()
    }

    /// The entries of manifests-bundle/flux, hidden ones (staging) included.
    fn bundle_entries(&self) -> Vec<String> {
        let dir = self.repo.join("manifests-bundle/flux");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for Clone {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn assert_succeeded(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}:\n{}",
        output.status.code(),
        stderr(output)
    );
}

#[track_caller]
fn assert_refused(output: &Output, needles: &[&str]) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
}

/// An HTTP server on loopback answering GET PATH with the bodies given, 404 otherwise; it
/// lives as long as the test process (a thread blocked in accept).
fn serve(bodies: BTreeMap<String, Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request_line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // The rest of the request head, up to the empty line.
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 2).unwrap_or(false) {
                line.clear();
            }
            let path = request_line.split_whitespace().nth(1).unwrap_or("");
            let response = match bodies.get(path) {
                Some(body) => {
                    let mut response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    response.extend_from_slice(body);
                    response
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&response);
        }
    });
    address
}

#[test]
fn the_demo_on_a_clone_without_the_team_folder_stops_at_once_with_instructions() {
    let clone = Clone::new();
    let output = clone.run("hack/demo.sh", &[], &[]);
    assert_refused(
        &output,
        &[
            "FLUX_DIST is not set",
            "shared/flux-dist does not exist",
            "cannot get Flux v2.9.4",
            "the rebuild from Go module sources is off",
            // How to get the release elsewhere, and what to do with it here.
            &format!("curl -fsSL -o v2.9.4/manifests.tar.gz {UPSTREAM}"),
            "FLUX_DIST=/path/to/flux-dist hack/demo.sh",
            "one directory per release, named like v2.9.4",
            "manifests.tar.gz as downloaded or its files unpacked",
            "checked file by file",
            "hack/flux-releases.sha256",
        ],
    );
    // Vendoring is the demo's first step: nothing was built, nothing half-vendored.
    assert!(!stderr(&output).contains("building the test bed"));
    assert_eq!(clone.bundle_entries(), Vec::<String>::new());
}

#[test]
fn flux_dist_with_the_real_files_is_vendored_unpacked_or_as_the_tarball() {
    let clone = Clone::new();
    let real = real_release();
    let mut with_install = real.clone();
    // The separate install.yaml asset may sit beside them; it is not part of the bundle.
    with_install.insert("install.yaml".into(), b"kind: List\n".to_vec());
    write_release(&clone.root.join("flux-dist").join(VERSION), &with_install);
    // A relative FLUX_DIST means the directory the command runs from (here, the clone's parent).
    let output = clone.vendor(&[("FLUX_DIST", "flux-dist".into())]);
    assert_succeeded(&output);
    assert!(
        stderr(&output).contains("matches the checksums pinned in hack/flux-releases.sha256"),
        "{}",
        stderr(&output)
    );
    assert_eq!(clone.vendored(), real);
    // No catalog beside FLUX_DIST: the release's own tags, no digests.
    let catalog = std::fs::read_to_string(
        clone
            .repo
            .join("manifests-bundle/flux-images")
            .join(VERSION)
            .join("upstream-alpine.yaml"),
    )
    .unwrap();
    assert!(catalog.contains("name: ghcr.io/fluxcd/source-controller\n    newTag: v1.9.4"));
    assert!(!catalog.contains("digest"));
    assert_eq!(clone.bundle_entries(), vec![VERSION.to_string()]);

    let tarballs = clone.root.join("tarballs");
    std::fs::create_dir_all(tarballs.join(VERSION)).unwrap();
    let archive = tarball(&real, &clone.root);
    std::fs::write(tarballs.join(VERSION).join("manifests.tar.gz"), archive).unwrap();
    std::fs::remove_dir_all(clone.repo.join("manifests-bundle/flux")).unwrap();
    let output = clone.vendor(&[("FLUX_DIST", tarballs.display().to_string())]);
    assert_succeeded(&output);
    assert_eq!(clone.vendored(), real);
}

#[test]
fn a_tampered_flux_dist_is_refused_and_the_vendored_release_kept() {
    let clone = Clone::new();
    let real = real_release();
    write_release(&clone.root.join("good").join(VERSION), &real);
    assert_succeeded(
        &clone.vendor(&[("FLUX_DIST", clone.root.join("good").display().to_string())]),
    );

    let mut bad = tampered(&real);
    bad.remove("policies.yaml");
    bad.insert("extra.yaml".into(), b"kind: ConfigMap\n".to_vec());
    write_release(&clone.root.join("bad").join(VERSION), &bad);
    let output = clone.vendor(&[("FLUX_DIST", clone.root.join("bad").display().to_string())]);
    assert_refused(
        &output,
        &[
            "does not match hack/flux-releases.sha256",
            "rbac.yaml has sha256",
            "policies.yaml is missing",
            "extra.yaml is not a file of the release",
            "refusing it",
            UPSTREAM,
        ],
    );
    // What was vendored before is untouched, and no staging directory is left behind.
    assert_eq!(clone.vendored(), real);
    assert_eq!(clone.bundle_entries(), vec![VERSION.to_string()]);
}

#[test]
fn downloads_are_held_to_the_pinned_checksums_and_unpacked_safely() {
    let clone = Clone::new();
    let real = real_release();
    let scratch = clone.root.join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    // A tarball with a link in it, which no release has.
    let linked = {
        let dir = scratch.join("linked");
        write_release(&dir, &real);
        std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd.yaml")).unwrap();
        let out = scratch.join("linked.tar.gz");
        let status = Command::new("tar")
            .arg("-czf")
            .arg(&out)
            .arg("-C")
            .arg(&dir)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read(out).unwrap()
    };
    let mirror = serve(BTreeMap::from([
        (
            format!("/good/{VERSION}/manifests.tar.gz"),
            tarball(&real, &scratch),
        ),
        (
            format!("/tampered/{VERSION}/manifests.tar.gz"),
            tarball(&tampered(&real), &scratch),
        ),
        (format!("/linked/{VERSION}/manifests.tar.gz"), linked),
        (
            format!("/garbage/{VERSION}/manifests.tar.gz"),
            b"<html>not a tarball</html>".to_vec(),
        ),
    ]));

    let output = clone.vendor(&[("FLUX_RELEASES_URL", format!("{mirror}/tampered"))]);
    assert_refused(
        &output,
        &[
            "does not match hack/flux-releases.sha256",
            "rbac.yaml has sha256",
        ],
    );
    let output = clone.vendor(&[("FLUX_RELEASES_URL", format!("{mirror}/linked"))]);
    assert_refused(
        &output,
        &["is refused: ", "passwd.yaml: not a regular file"],
    );
    let output = clone.vendor(&[("FLUX_RELEASES_URL", format!("{mirror}/garbage"))]);
    assert_refused(&output, &["is refused: not a readable .tar.gz"]);
    let output = clone.vendor(&[("FLUX_RELEASES_URL", format!("{mirror}/missing"))]);
    assert_refused(&output, &["error: 404", "FLUX_DIST=/path/to/flux-dist"]);
    assert_eq!(clone.bundle_entries(), Vec::<String>::new());

    let output = clone.vendor(&[("FLUX_RELEASES_URL", format!("{mirror}/good"))]);
    assert_succeeded(&output);
    assert!(stderr(&output).contains(&format!(
        "Flux v2.9.4 from {mirror}/good/v2.9.4/manifests.tar.gz matches the checksums pinned"
    )));
    assert_eq!(clone.vendored(), real);
}

#[test]
fn the_rebuild_from_go_module_sources_stands_in_only_when_it_matches_the_pins() {
    let clone = Clone::new();
    let real = real_release();
    // What hack/flux-release.sh leaves in its cache (it answers from there without Go).
    let rebuilt = clone.root.join("cache/flux-releases").join(VERSION);
    write_release(&rebuilt, &tampered(&real));
    std::fs::write(rebuilt.join(".complete"), "").unwrap();
    let rebuild_on = [("FLUX_REBUILD", "1".to_string())];
    let output = clone.vendor(&rebuild_on);
    assert_refused(
        &output,
        &[
            "rebuilding Flux v2.9.4 from the sources the Go module proxy serves",
            &format!("from {} does not match", rebuilt.display()),
        ],
    );
    assert_eq!(clone.bundle_entries(), Vec::<String>::new());

    write_release(&rebuilt, &real);
    let output = clone.vendor(&rebuild_on);
    assert_succeeded(&output);
    assert_eq!(clone.vendored(), real);
}

#[test]
fn a_release_that_is_not_pinned_is_taken_with_a_warning() {
    let clone = Clone::new();
    let dist = clone.root.join("flux-dist");
    write_release(&dist.join("v2.9.99"), &tampered(&real_release()));
    let output = clone.vendor(&[("FLUX_DIST", dist.display().to_string())]);
    assert_succeeded(&output);
    assert!(
        stderr(&output).contains(
            "warning: Flux v2.9.99 is not pinned in hack/flux-releases.sha256: taken from"
        ),
        "{}",
        stderr(&output)
    );
    assert_eq!(clone.bundle_entries(), vec!["v2.9.99".to_string()]);
}
