//! Helpers of the GitOps tests and bench: `fluxop` and `git` at a terminal, and the
//! `spec.sync` of an instance synced from the test registry or the test Git server.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::{cluster::OwnCluster, fluxop_bin};

/// `fluxop <args> --kubeconfig <kubeconfig>`: exit code, stdout, stderr.
pub fn fluxop_on(kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(fluxop_bin())
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("COSIGN_PASSWORD", "")
        .output()
        .expect("fluxop runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `fluxop <args>` without a cluster (publishing, keys), which must succeed; returns stdout.
pub fn fluxop_local(args: &[&str]) -> String {
    let output = Command::new(fluxop_bin())
        .args(args)
        .env("COSIGN_PASSWORD", "")
        .output()
        .expect("fluxop runs");
    assert!(
        output.status.success(),
        "fluxop {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `git -C dir <args>` as a test author, which must succeed; returns stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=e2e",
            "-c",
            "user.email=e2e@example.invalid",
        ])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// `spec.sync` (and its patches) from the OCI artifact `registry/repository:latest` at
/// `path`: the plain-HTTP test registry needs `insecure`; with `verify_secret`, Flux checks
/// the cosign signature with that Secret's public key. `more_patches` are appended.
pub fn oci_sync(
    registry: &str,
    repository: &str,
    path: &str,
    verify_secret: Option<&str>,
    more_patches: &str,
) -> String {
    let verify = verify_secret.map_or(String::new(), |secret| {
        format!(
            "          - op: add\n            path: /spec/verify\n            value: {{provider: cosign, secretRef: {{name: {secret}}}}}\n"
        )
    });
    format!(
        "  sync:\n    kind: OCIRepository\n    url: oci://{registry}/{repository}\n    ref: latest\n    path: {path}\n  kustomize:\n    patches:\n      - target:\n          kind: OCIRepository\n        patch: |\n          - op: add\n            path: /spec/insecure\n            value: true\n{verify}{more_patches}"
    )
}

/// `spec.sync` from `fleet.git` on the test Git server at `server` (`GATEWAY:PORT`), branch
/// main, `path`, with the credentials Secret `pull_secret` when given.
pub fn git_sync(server: &str, path: &str, pull_secret: Option<&str>) -> String {
    let secret = pull_secret.map_or(String::new(), |s| format!("    pullSecret: {s}\n"));
    format!(
        "  sync:\n    kind: GitRepository\n    url: http://{server}/fleet.git\n    ref: refs/heads/main\n    path: {path}\n{secret}"
    )
}

/// A cosign key pair made with `fluxop bundle keygen` in `dir` (`sync.key`, `sync.pub`), the
/// public key in the Secret `sync-cosign` of flux-system for Flux's `spec.verify`; returns
/// the private key's path.
pub fn sync_signing_key(cluster: &OwnCluster, dir: &Path) -> PathBuf {
    let prefix = dir.join("sync");
    fluxop_local(&[
        "bundle",
        "keygen",
        "--output-key-prefix",
        prefix.to_str().expect("path"),
    ]);
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "sync-cosign",
        "-n",
        "flux-system",
        &format!("--from-file=cosign.pub={}", dir.join("sync.pub").display()),
    ]);
    dir.join("sync.key")
}
