//! Container args edited by flag name, never by position, so an edit stays right when a Flux
//! release reorders, adds or removes flags. Both `--flag=value` and `--flag value` are
//! understood; what fluxop writes is always `--flag=value`.

/// The flag an arg starts, if it is one: `--events-addr` of `--events-addr=http://...`.
fn flag_of(arg: &str) -> Option<&str> {
    if !arg.starts_with('-') {
        return None;
    }
    Some(arg.split_once('=').map_or(arg, |(name, _)| name))
}

/// Positions of `flag` in `args`, each with the number of args it spans (2 for `--flag value`).
fn occurrences(args: &[String], flag: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut index = 0;
    while index < args.len() {
        let arg = &args[index];
        let separate_value = !arg.contains('=')
            && args
                .get(index + 1)
                .is_some_and(|next| !next.starts_with('-'));
        let span = if separate_value { 2 } else { 1 };
        if flag_of(arg) == Some(flag) {
            found.push((index, span));
        }
        index += span;
    }
    found
}

/// The value of `flag`: `Some(Some(v))` for `--flag=v` or `--flag v`, `Some(None)` for a bare
/// boolean `--flag`, `None` when absent.
pub fn get<'a>(args: &'a [String], flag: &str) -> Option<Option<&'a str>> {
    let (index, span) = *occurrences(args, flag).first()?;
    Some(match args[index].split_once('=') {
        Some((_, value)) => Some(value),
        None if span == 2 => Some(args[index + 1].as_str()),
        None => None,
    })
}

/// Edits a container's `args` as a list of strings; a container without args gets them only
/// when the edit adds some.
pub fn edit_container(container: &mut serde_json::Value, edit: impl FnOnce(&mut Vec<String>)) {
    let mut list: Vec<String> = container["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    edit(&mut list);
    if !list.is_empty() || container.get("args").is_some() {
        container["args"] = serde_json::json!(list);
    }
}

/// Sets `flag` to `value`: replaces the first occurrence in place, drops any others, and
/// appends the flag when it was absent.
pub fn set(args: &mut Vec<String>, flag: &str, value: &str) {
    let rendered = format!("{flag}={value}");
    let found = occurrences(args, flag);
    let Some(&(first, first_span)) = found.first() else {
        args.push(rendered);
        return;
    };
    // Remove later occurrences back to front so indexes stay valid.
    for &(index, span) in found.iter().skip(1).rev() {
        args.drain(index..index + span);
    }
    args.splice(first..first + first_span, [rendered]);
}

/// Removes every occurrence of `flag`; returns whether there was one.
pub fn remove(args: &mut Vec<String>, flag: &str) -> bool {
    let found = occurrences(args, flag);
    for &(index, span) in found.iter().rev() {
        args.drain(index..index + span);
    }
    !found.is_empty()
}

/// The gates of every `--feature-gates` occurrence, in order, each `(name, value)`.
fn feature_gates(args: &[String]) -> Vec<(String, String)> {
    let mut gates: Vec<(String, String)> = Vec::new();
    for (index, span) in occurrences(args, "--feature-gates") {
        let value = match args[index].split_once('=') {
            Some((_, value)) => value,
            None if span == 2 => args[index + 1].as_str(),
            None => "",
        };
        for (gate, enabled) in value.split(',').filter_map(|g| g.split_once('=')) {
            let (gate, enabled) = (gate.trim(), enabled.trim());
            // A later occurrence wins, as when the controller parses repeated flags.
            gates.retain(|(k, _)| k != gate);
            gates.push((gate.to_string(), enabled.to_string()));
        }
    }
    gates
}

fn write_feature_gates(args: &mut Vec<String>, gates: &[(String, String)]) {
    let value = gates
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    set(args, "--feature-gates", &value);
}

/// Sets one gate in `--feature-gates=A=true,B=false`, keeping the others (of every
/// occurrence, merged into one flag).
pub fn set_feature_gate(args: &mut Vec<String>, gate: &str, enabled: bool) {
    let mut gates = feature_gates(args);
    gates.retain(|(k, _)| k != gate);
    gates.push((gate.to_string(), enabled.to_string()));
    write_feature_gates(args, &gates);
}

/// Merges repeated `--feature-gates` flags into one (the first's place, later gates winning),
/// so fluxop's gates and those a user's patch appends end up in a single flag.
pub fn merge_feature_gates(args: &mut Vec<String>) {
    if occurrences(args, "--feature-gates").len() > 1 {
        let gates = feature_gates(args);
        write_feature_gates(args, &gates);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_every_form_of_a_flag() {
        let a = args(&[
            "--events-addr=http://x/",
            "--watch-all-namespaces",
            "--log-level",
            "debug",
        ]);
        assert_eq!(get(&a, "--events-addr"), Some(Some("http://x/")));
        assert_eq!(get(&a, "--watch-all-namespaces"), Some(None));
        assert_eq!(get(&a, "--log-level"), Some(Some("debug")));
        assert_eq!(get(&a, "--log"), None, "prefixes are not flags");
    }

    #[test]
    fn set_replaces_in_place_dedupes_and_appends() {
        let mut a = args(&["--log-level=info", "--concurrent", "4", "--log-level=debug"]);
        set(&mut a, "--log-level", "error");
        set(&mut a, "--concurrent", "10");
        set(&mut a, "--requeue-dependency", "5s");
        assert_eq!(
            a,
            args(&[
                "--log-level=error",
                "--concurrent=10",
                "--requeue-dependency=5s"
            ])
        );
    }

    #[test]
    fn remove_takes_separate_values_along() {
        let mut a = args(&["--a=1", "--b", "2", "--c"]);
        assert!(remove(&mut a, "--b"));
        assert!(!remove(&mut a, "--b"));
        assert_eq!(a, args(&["--a=1", "--c"]));
    }

    /// The same edits give the same flags whatever order a release lists them in.
    #[test]
    fn edits_do_not_depend_on_the_order_of_args() {
        let upstream = args(&[
            "--events-addr=http://notification-controller.flux-system.svc.cluster.local./",
            "--watch-all-namespaces",
            "--log-level=info",
            "--log-encoding=json",
            "--enable-leader-election",
        ]);
        let edit = |mut a: Vec<String>| {
            set(&mut a, "--log-level", "debug");
            set(&mut a, "--no-cross-namespace-refs", "true");
            remove(&mut a, "--enable-leader-election");
            a.sort();
            a
        };
        let mut reordered = upstream.clone();
        reordered.reverse();
        reordered.rotate_left(2);
        assert_eq!(edit(upstream), edit(reordered));
    }
    #[test]
    fn feature_gates_are_merged_into_one_flag_and_later_gates_win() {
        let mut a = args(&[
            "--feature-gates=CacheSecretsAndConfigMaps=true",
            "--log-level=info",
        ]);
        set_feature_gate(&mut a, "ObjectLevelWorkloadIdentity", true);
        set_feature_gate(&mut a, "CacheSecretsAndConfigMaps", false);
        assert_eq!(
            a,
            args(&[
                "--feature-gates=ObjectLevelWorkloadIdentity=true,CacheSecretsAndConfigMaps=false",
                "--log-level=info"
            ])
        );

        let mut a = args(&[
            "--feature-gates=ExternalArtifact=true",
            "--log-level=info",
            "--feature-gates",
            "DisableChartDigestTracking=true,ExternalArtifact=false",
        ]);
        merge_feature_gates(&mut a);
        assert_eq!(
            a,
            args(&[
                "--feature-gates=DisableChartDigestTracking=true,ExternalArtifact=false",
                "--log-level=info"
            ])
        );
        let mut single = args(&["--feature-gates=A=true", "--b"]);
        merge_feature_gates(&mut single);
        assert_eq!(single, args(&["--feature-gates=A=true", "--b"]));
    }
}
