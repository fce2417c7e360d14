//! Rendered Flux installations against the real API server: for every release, its CRDs are
//! applied for real, then every object of every golden spec (`operator/testdata/golden/specs`:
//! defaults, all components, multitenant, openshift, each size, sharding with persistent
//! storage, each sync kind, patches of both kinds) passes a server-side dry run (schema,
//! defaulting, admission; the sync objects against their real CRDs), so what fluxop would
//! apply is valid before it applies anything.

use std::{io::Write, process::Stdio};

use fluxop::{
    api::FluxInstanceSpec,
    bundle::{archive, layout::Bundle},
    render::render,
};
use fluxop_e2e::{
    cluster::{OwnCluster, exclusive},
    fresh_namespace, repo_root,
};

#[tokio::test]
async fn every_golden_render_passes_a_server_side_dry_run_against_its_releases_crds() {
    let _one_cluster_at_a_time = exclusive().await;
    let cluster = OwnCluster::start("render").await;
    let client = cluster.client().await;
    let files = archive::read_dir(&repo_root().join("manifests-bundle"))
        .expect("hack/vendor-flux.sh has run");
    let bundle = Bundle::from_files(files).unwrap();
    let specs_dir = repo_root().join("operator/testdata/golden/specs");
    let mut specs: Vec<(String, FluxInstanceSpec)> = std::fs::read_dir(&specs_dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let spec = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            (name, spec)
        })
        .collect();
    specs.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(specs.len() >= 12);
    for version in bundle.versions() {
        // The release's CRDs for real (of the spec with every component), so that the sync
        // objects are checked against them; removed again before the next release, whose
        // CRDs could not replace them (stored versions).
        let everything = &specs.iter().find(|(n, _)| n == "all-components").unwrap().1;
        let mut everything = everything.clone();
        if version.minor < 7
            && let Some(components) = everything.components.as_mut()
        {
            components.retain(|c| c.name() != "source-watcher");
        }
        let crds: Vec<String> = render("flux-system", &everything, &bundle, &version)
            .unwrap()
            .objects
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .map(|o| fluxop::yaml::to_string(o).unwrap())
            .collect();
        cluster.apply(&format!("---\n{}", crds.join("---\n")));
        cluster.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=flux",
        ]);
        for (name, spec) in &specs {
            // A real namespace: a dry run creates nothing, and namespaced objects need one.
            let namespace = fresh_namespace(&client, "render").await;
            let rendered = match render(&namespace, spec, &bundle, &version) {
                Ok(rendered) => rendered,
                // source-watcher before 2.7: refused, as the golden file records.
                Err(fluxop::render::Error::ComponentUnsupported { .. }) => continue,
                Err(e) => panic!("{name} v{version}: {e}"),
            };
            let documents: Vec<String> = rendered
                .objects
                .iter()
                .skip(1)
                .map(|o| fluxop::yaml::to_string(o).unwrap())
                .collect();
            let mut apply = cluster
                .kubectl()
                .args([
                    "apply",
                    "--server-side",
                    "--dry-run=server",
                    "--force-conflicts",
                    "--field-manager",
                    "fluxop",
                    "-f",
                    "-",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            apply
                .stdin
                .take()
                .unwrap()
                .write_all(format!("---\n{}", documents.join("---\n")).as_bytes())
                .unwrap();
            let output = apply.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{name} on Flux v{version} was rejected: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let applied = String::from_utf8_lossy(&output.stdout).lines().count();
            assert_eq!(
                applied,
                rendered.objects.len() - 1,
                "{name} v{version}: not every object was dry-run"
            );
        }
        cluster.kubectl_ok(&[
            "delete",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=flux",
            "--wait=true",
        ]);
    }
}
