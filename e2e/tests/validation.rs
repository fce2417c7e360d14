//! `fluxop build instance` refuses exactly what the API server refuses: every manifest of
//! the corpus (`operator/testdata/instances/validation/`: one rejected manifest per rule —
//! the name, each CEL rule, enums, patterns, required fields, types, lengths, unknown
//! fields — and accepted ones using every field) is submitted with a server-side dry run and
//! strict field validation (kubectl's default) and given to `fluxop build instance`; both
//! must accept or reject it, and name the same field.

use std::path::PathBuf;

use fluxop_e2e::{client, ensure_crds, fluxop_bin, fresh_namespace, kubectl, repo_root};

fn corpus() -> Vec<PathBuf> {
    let root = repo_root().join("operator/testdata/instances/validation");
    let mut files: Vec<PathBuf> = ["accepted", "rejected"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).expect("corpus directory"))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

/// The field a rejected manifest's `# expect: <path>: <rule>` line names.
fn expected_field(path: &PathBuf) -> Option<String> {
    let text = std::fs::read_to_string(path).expect("readable");
    let expect = text.lines().next()?.strip_prefix("# expect: ")?;
    let (field, _) = expect.split_once(": ")?;
    (field != "<object>").then(|| field.to_string())
}

#[tokio::test]
async fn build_instance_accepts_and_rejects_what_the_api_server_does() {
    let client = client().await;
    ensure_crds(&client).await;
    let namespace = fresh_namespace(&client, "validation").await;
    let files = corpus();
    assert!(files.len() >= 15, "{files:?}");
    let mut disagreements = Vec::new();
    for file in &files {
        let server = kubectl()
            .args([
                "create",
                "--dry-run=server",
                "--validate=strict",
                "-n",
                &namespace,
                "-f",
            ])
            .arg(file)
            .output()
            .expect("kubectl runs");
        let fluxop = std::process::Command::new(fluxop_bin())
            .args(["build", "instance", "--namespace", &namespace, "-f"])
            .arg(file)
            .output()
            .expect("fluxop runs");
        let server_message = String::from_utf8_lossy(&server.stderr).into_owned();
        let fluxop_message = String::from_utf8_lossy(&fluxop.stderr).into_owned();
        let server_accepts = server.status.success();
        let fluxop_code = fluxop.status.code();
        let agree = matches!(
            (server_accepts, fluxop_code),
            (true, Some(0)) | (false, Some(2))
        );
        if !agree {
            disagreements.push(format!(
                "{}: API server {} ({}), fluxop exit {fluxop_code:?} ({})",
                file.display(),
                if server_accepts { "accepts" } else { "rejects" },
                server_message.trim(),
                fluxop_message.trim(),
            ));
            continue;
        }
        let under_rejected = file.parent().is_some_and(|d| d.ends_with("rejected"));
        assert_eq!(!server_accepts, under_rejected, "{}", file.display());
        if let Some(field) = expected_field(file) {
            for (who, message) in [("API server", &server_message), ("fluxop", &fluxop_message)] {
                assert!(
                    message.contains(&field),
                    "{}: the {who} does not name {field}: {message}",
                    file.display()
                );
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "fluxop and the API server disagree:\n{}",
        disagreements.join("\n")
    );
}
