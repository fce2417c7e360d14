//! What a FluxFleet member kubeconfig may contain. The kubeconfig comes from a Secret, so
//! whoever can write that Secret (and a FluxFleet naming it) chooses it; the kube crate would
//! run its `exec` plugins and `auth-provider` commands and read the files it names
//! (`tokenFile`, `client-certificate`, `client-key`, `certificate-authority`) inside the
//! operator's pod, with the operator's service account token and filesystem at hand. So the
//! hub accepts inline credentials only, and checks that with [`check`] before any client is
//! built.
//!
//! Accepted: `server` (`https://`), `certificate-authority-data`, `tls-server-name`,
//! `disable-compression`, `token`, `username`/`password`,
//! `client-certificate-data`/`client-key-data`, impersonation (`as`, `as-groups`, ...), and
//! extensions. Refused: `exec`, `auth-provider`, every file path, and `proxy-url` (see
//! [`check`]); and, unless the FluxFleet member sets `insecure: true`, an `http://` server
//! and `insecure-skip-tls-verify`, which hand the member's credentials to whoever is on the
//! path.
//!
//! Every user and cluster entry is checked, not only those of the current context: what the
//! kube crate selects (current context, defaults, merged documents) is then irrelevant, and a
//! later change of `current-context` cannot bring a refused entry into use.

use std::fmt;

use kube::config::{AuthInfo, Cluster, Kubeconfig, NamedAuthInfo, NamedCluster};

/// What a refused kubeconfig should carry instead; the end of every refusal message.
pub const INSTEAD: &str = "member kubeconfigs must carry inline credentials (token, or \
     client-certificate-data and client-key-data) and certificate-authority-data; exec plugins, \
     auth providers and file references are refused because they would run or be read in the \
     operator's pod";

/// The kubeconfig entry a finding is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    User(String),
    Cluster(String),
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::User(name) => write!(f, "user {name:?}"),
            Entry::Cluster(name) => write!(f, "cluster {name:?}"),
        }
    }
}

/// Why a field is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `exec`: a command run by the client.
    Exec,
    /// `auth-provider`: gcp runs a command, oidc refreshes tokens; both in the operator.
    AuthProvider,
    /// A file path, read by the client; `instead` names the inline field.
    File { instead: &'static str },
    /// `proxy-url`: see [`check`].
    Proxy,
    /// A plain `http://` server or `insecure-skip-tls-verify`, without the member's opt-in.
    Insecure,
}

/// One refused field of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub entry: Entry,
    /// The field as it is spelled in a kubeconfig (`exec`, `tokenFile`, ...).
    pub field: &'static str,
    pub problem: Problem,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Finding {
            entry,
            field,
            problem,
        } = self;
        match problem {
            Problem::Exec => write!(
                f,
                "{entry} uses an exec plugin ({field}), which would run a command in the operator's pod"
            ),
            Problem::AuthProvider => write!(
                f,
                "{entry} uses an auth provider ({field}), which would run a command or fetch tokens from the operator's pod"
            ),
            Problem::File { instead } => write!(
                f,
                "{entry} references a file ({field}), which would be read from the operator's pod; use {instead} instead"
            ),
            Problem::Proxy => write!(
                f,
                "{entry} sets a proxy ({field}), which the hub does not support for members; remove it so the hub connects to the server directly"
            ),
            Problem::Insecure => write!(
                f,
                "{entry} connects without verified TLS ({field}), so the member's credentials would travel unprotected; use an https:// server with certificate-authority-data, or set insecure: true on the FluxFleet member"
            ),
        }
    }
}

/// A refused kubeconfig: every offending field, in kubeconfig order (users, then clusters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub Vec<Finding>);

impl std::error::Error for Refused {}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let findings: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        // The advice on inline credentials is for what runs or is read in the pod; the other
        // findings carry their own.
        let in_the_pod = self.0.iter().any(|finding| {
            matches!(
                finding.problem,
                Problem::Exec | Problem::AuthProvider | Problem::File { .. }
            )
        });
        if in_the_pod {
            write!(f, "{}: {INSTEAD}", findings.join("; "))
        } else {
            f.write_str(&findings.join("; "))
        }
    }
}

/// Accepts a member kubeconfig with inline credentials only; refuses exec plugins, auth
/// providers, file references and proxies in any user or cluster entry.
///
/// `proxy-url` runs no code and reads no file, and whoever writes the Secret already picks
/// `server`, so it would give them no new reach. It is refused all the same: fluxop's kube
/// client is built without proxy support (the `http-proxy`/`socks5` features are off), so a
/// proxy could only fail later with an obscure client error, and a proxy would be one more
/// host the member's credentials travel through. Refusing it up front says so plainly.
///
/// The structs are destructured without `..`: a kube release that adds a field (a new path
/// or plugin) stops this from compiling until the field is judged here.
pub fn check(kubeconfig: &Kubeconfig, allow_insecure: bool) -> Result<(), Refused> {
    let Kubeconfig {
        preferences: _,
        clusters,
        auth_infos,
        contexts: _,
        current_context: _,
        extensions: _,
        kind: _,
        api_version: _,
        other: _,
    } = kubeconfig;
    let mut findings = Vec::new();
    for NamedAuthInfo {
        name,
        auth_info,
        other: _,
    } in auth_infos
    {
        if let Some(auth_info) = auth_info {
            check_user(name, auth_info, &mut findings);
        }
    }
    for NamedCluster {
        name,
        cluster,
        other: _,
    } in clusters
    {
        if let Some(cluster) = cluster {
            check_cluster(name, cluster, allow_insecure, &mut findings);
        }
    }
    if findings.is_empty() {
        Ok(())
    } else {
        Err(Refused(findings))
    }
}

fn check_user(name: &str, auth_info: &AuthInfo, findings: &mut Vec<Finding>) {
    let AuthInfo {
        username: _,
        password: _,
        token: _,
        token_file,
        client_certificate,
        client_certificate_data: _,
        client_key,
        client_key_data: _,
        impersonate: _,
        impersonate_uid: _,
        impersonate_groups: _,
        impersonate_user_extra: _,
        extensions: _,
        auth_provider,
        exec,
        other: _,
    } = auth_info;
    let mut refuse = |field, problem| {
        findings.push(Finding {
            entry: Entry::User(name.to_string()),
            field,
            problem,
        });
    };
    if exec.is_some() {
        refuse("exec", Problem::Exec);
    }
    if auth_provider.is_some() {
        refuse("auth-provider", Problem::AuthProvider);
    }
    if token_file.is_some() {
        refuse("tokenFile", Problem::File { instead: "token" });
    }
    if client_certificate.is_some() {
        refuse(
            "client-certificate",
            Problem::File {
                instead: "client-certificate-data",
            },
        );
    }
    if client_key.is_some() {
        refuse(
            "client-key",
            Problem::File {
                instead: "client-key-data",
            },
        );
    }
}

fn check_cluster(name: &str, cluster: &Cluster, allow_insecure: bool, findings: &mut Vec<Finding>) {
    let Cluster {
        server,
        insecure_skip_tls_verify,
        certificate_authority,
        certificate_authority_data: _,
        proxy_url,
        disable_compression: _,
        tls_server_name: _,
        extensions: _,
        other: _,
    } = cluster;
    let mut refuse = |field, problem| {
        findings.push(Finding {
            entry: Entry::Cluster(name.to_string()),
            field,
            problem,
        });
    };
    if certificate_authority.is_some() {
        refuse(
            "certificate-authority",
            Problem::File {
                instead: "certificate-authority-data",
            },
        );
    }
    if proxy_url.is_some() {
        refuse("proxy-url", Problem::Proxy);
    }
    if !allow_insecure {
        let plain = server.as_deref().is_some_and(|s| {
            s.get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
        });
        if plain {
            refuse("server: http://", Problem::Insecure);
        }
        if *insecure_skip_tls_verify == Some(true) {
            refuse("insecure-skip-tls-verify", Problem::Insecure);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kubeconfig with one cluster `member` and one user `hub`, `cluster` and `user` being
    /// the YAML (indented by 4) of their bodies.
    fn kubeconfig(cluster: &str, user: &str) -> Kubeconfig {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: member\n  cluster:\n{cluster}\n\
             users:\n- name: hub\n  user:\n{user}\ncontexts:\n- name: member\n  context:\n    \
             cluster: member\n    user: hub\ncurrent-context: member\n"
        );
        Kubeconfig::from_yaml(&text).unwrap()
    }

    const INLINE_CLUSTER: &str =
        "    server: https://10.0.0.1:6443\n    certificate-authority-data: LS0tLS1CRUdJTg==";

    fn refused(kubeconfig: &Kubeconfig) -> (Vec<(Entry, &'static str)>, String) {
        let refused = check(kubeconfig, false).expect_err("refused");
        let fields = refused
            .0
            .iter()
            .map(|f| (f.entry.clone(), f.field))
            .collect();
        (fields, refused.to_string())
    }

    #[test]
    fn an_inline_token_is_accepted() {
        assert_eq!(
            check(&kubeconfig(INLINE_CLUSTER, "    token: abc.def"), false),
            Ok(())
        );
    }

    #[test]
    fn an_inline_client_certificate_and_key_are_accepted() {
        let user =
            "    client-certificate-data: LS0tLS1CRUdJTg==\n    client-key-data: LS0tLS1CRUdJTg==";
        assert_eq!(check(&kubeconfig(INLINE_CLUSTER, user), false), Ok(()));
    }

    #[test]
    fn basic_auth_and_impersonation_are_accepted() {
        let cluster = "    server: https://10.0.0.1:6443\n    certificate-authority-data: LS0=\n    \
                       tls-server-name: member.example.com";
        let user = "    username: admin\n    password: secret\n    as: someone\n    as-groups: [a]";
        assert_eq!(check(&kubeconfig(cluster, user), false), Ok(()));
    }

    #[test]
    fn plain_http_and_skipped_tls_verification_are_refused_unless_the_member_opts_in() {
        let skip = "    server: https://10.0.0.1:6443\n    insecure-skip-tls-verify: true";
        let plain = "    server: HTTP://10.0.0.1:8080";
        for (cluster, field) in [
            (skip, "insecure-skip-tls-verify"),
            (plain, "server: http://"),
        ] {
            let config = kubeconfig(cluster, "    token: abc.def");
            let (fields, message) = refused(&config);
            assert_eq!(fields, [(Entry::Cluster("member".into()), field)]);
            assert!(message.contains("set insecure: true"), "{message}");
            assert_eq!(check(&config, true), Ok(()));
        }
    }

    #[test]
    fn an_exec_plugin_is_refused_with_the_user_and_what_to_use_instead() {
        let user = "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      \
                    command: /bin/sh\n      args: [-c, touch /tmp/pwned]";
        let (fields, message) = refused(&kubeconfig(INLINE_CLUSTER, user));
        assert_eq!(fields, vec![(Entry::User("hub".into()), "exec")]);
        assert!(
            message.starts_with("user \"hub\" uses an exec plugin (exec)"),
            "{message}"
        );
        assert!(message.contains("inline credentials (token, or client-certificate-data"));
        assert!(message.contains("operator's pod"));
        // The command and its arguments are not repeated into status and events.
        assert!(!message.contains("/tmp/pwned"), "{message}");
    }

    #[test]
    fn an_auth_provider_is_refused() {
        let user = "    auth-provider:\n      name: gcp\n      config:\n        cmd-path: /bin/sh";
        let (fields, message) = refused(&kubeconfig(INLINE_CLUSTER, user));
        assert_eq!(fields, vec![(Entry::User("hub".into()), "auth-provider")]);
        assert!(
            message.contains("auth provider (auth-provider)"),
            "{message}"
        );
    }

    #[test]
    fn a_token_file_is_refused_even_next_to_an_inline_token() {
        let user = "    token: abc\n    tokenFile: /etc/hostname";
        let (fields, message) = refused(&kubeconfig(INLINE_CLUSTER, user));
        assert_eq!(fields, vec![(Entry::User("hub".into()), "tokenFile")]);
        assert!(
            message.contains("references a file (tokenFile), which would be read from the operator's pod; use token instead"),
            "{message}"
        );
    }

    #[test]
    fn client_certificate_and_key_paths_are_refused() {
        let user = "    client-certificate: /etc/ssl/cert.pem\n    client-key: /etc/ssl/key.pem";
        let (fields, message) = refused(&kubeconfig(INLINE_CLUSTER, user));
        assert_eq!(
            fields,
            vec![
                (Entry::User("hub".into()), "client-certificate"),
                (Entry::User("hub".into()), "client-key"),
            ]
        );
        assert!(
            message.contains("use client-certificate-data instead"),
            "{message}"
        );
        assert!(message.contains("use client-key-data instead"), "{message}");
    }

    #[test]
    fn a_certificate_authority_path_is_refused() {
        let cluster = "    server: https://10.0.0.1:6443\n    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
        let (fields, message) = refused(&kubeconfig(cluster, "    token: abc"));
        assert_eq!(
            fields,
            vec![(Entry::Cluster("member".into()), "certificate-authority")]
        );
        assert!(
            message.starts_with("cluster \"member\" references a file (certificate-authority)"),
            "{message}"
        );
        assert!(message.contains("use certificate-authority-data instead"));
    }

    #[test]
    fn a_proxy_url_is_refused() {
        let cluster = "    server: https://10.0.0.1:6443\n    proxy-url: http://proxy:3128";
        let (fields, message) = refused(&kubeconfig(cluster, "    token: abc"));
        assert_eq!(fields, vec![(Entry::Cluster("member".into()), "proxy-url")]);
        assert!(
            message.contains("connects to the server directly"),
            "{message}"
        );
    }

    #[test]
    fn entries_outside_the_current_context_are_checked_too() {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: member\n  cluster:\n{INLINE_CLUSTER}\n\
             - name: other\n  cluster:\n    server: https://10.0.0.2:6443\n    certificate-authority: /etc/hostname\n\
             users:\n- name: hub\n  user:\n    token: abc\n- name: spare\n  user:\n    exec:\n      command: /bin/true\n\
             contexts:\n- name: member\n  context: {{cluster: member, user: hub}}\n\
             - name: spare\n  context: {{cluster: other, user: spare}}\ncurrent-context: member\n"
        );
        let (fields, message) = refused(&Kubeconfig::from_yaml(&text).unwrap());
        assert_eq!(
            fields,
            vec![
                (Entry::User("spare".into()), "exec"),
                (Entry::Cluster("other".into()), "certificate-authority"),
            ]
        );
        assert!(
            message.contains("user \"spare\" uses an exec plugin (exec)")
                && message.contains("; cluster \"other\" references a file"),
            "{message}"
        );
    }

    #[test]
    fn entries_of_every_yaml_document_are_checked() {
        // `from_yaml` merges documents; the checked value is the merged one the client uses.
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: member\n  cluster:\n{INLINE_CLUSTER}\n\
             users:\n- name: hub\n  user:\n    token: abc\ncontexts:\n- name: member\n  context: {{cluster: member, user: hub}}\n\
             current-context: member\n---\napiVersion: v1\nkind: Config\nusers:\n- name: late\n  user:\n    tokenFile: /etc/hostname\n"
        );
        let (fields, _) = refused(&Kubeconfig::from_yaml(&text).unwrap());
        assert_eq!(fields, vec![(Entry::User("late".into()), "tokenFile")]);
    }
}
