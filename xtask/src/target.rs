//! Which Docker engine a command acts on: this machine's, or a remote one named by `--host ssh://user@host[:port]`,
//! by `--host <name>` (`[hosts.<name>]` in infra/stack.toml), by `DOCKER_HOST`, or by a docker context
//! (`DOCKER_CONTEXT`, or the current context of `~/.docker/config.json`).
//!
//! The docker CLI and Compose talk SSH themselves (`DOCKER_HOST=ssh://…` runs `ssh … docker system dial-stdio`
//! on the remote), so the remote host needs only Docker Engine, Compose and SSH. With `--host` the runner gives
//! every docker child `DOCKER_HOST` (one place: `Runner::expression`) and shows it in the echo; an engine named by
//! the environment is inherited as it is. The operator's records of a target — deploy lock, audit log, deploy
//! state — are keyed by [`Engine::key`], so a remote host's are never a local stack's.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use crate::config::Host;

/// The engine of this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// `DOCKER_HOST` to give docker children (`--host` only; an environment's own is inherited).
    pub docker_host: Option<String>,
    /// Where, for people and the audit log: `ssh://root@web1:22`, `context prod`, or `local engine`.
    pub label: String,
    /// How it was chosen (`--host`, `[hosts.web]`, `DOCKER_HOST`, `docker context`).
    pub how: String,
    /// The suffix of the target's records (`@web`, `@root_10.0.0.5_22`), empty for the local engine.
    suffix: String,
}

/// What selects the engine, read once: the `--host` flag and the environment.
#[derive(Debug, Clone, Default)]
pub struct Selectors {
    pub host_flag: Option<String>,
    pub docker_host: Option<String>,
    pub docker_context: Option<String>,
    /// `currentContext` of `~/.docker/config.json`.
    pub current_context: Option<String>,
}

impl Selectors {
    pub fn from_env(host_flag: Option<&str>) -> Selectors {
        let var = |k: &str| {
            std::env::var(k)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let config_dir = var("DOCKER_CONFIG")
            .map(std::path::PathBuf::from)
            .or_else(|| var("HOME").map(|h| std::path::Path::new(&h).join(".docker")));
        let current_context = config_dir
            .and_then(|d| std::fs::read_to_string(d.join("config.json")).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("currentContext")?.as_str().map(String::from))
            .filter(|c| !c.is_empty() && c != "default");
        Selectors {
            host_flag: host_flag.map(|h| h.trim().to_string()).filter(|h| !h.is_empty()),
            docker_host: var("DOCKER_HOST"),
            docker_context: var("DOCKER_CONTEXT").filter(|c| c != "default"),
            current_context,
        }
    }
}

impl Engine {
    pub fn local() -> Engine {
        Engine {
            docker_host: None,
            label: "local engine".into(),
            how: "default".into(),
            suffix: String::new(),
        }
    }

    /// Whether the engine is another machine's (or at least not the default socket).
    pub fn is_remote(&self) -> bool {
        !self.suffix.is_empty()
    }

    /// The name of a target's operator-side records on this engine: `drydock-prod`, `drydock-prod@web`.
    pub fn key(&self, target: &str) -> String {
        format!("{target}{}", self.suffix)
    }

    /// The SSH address of a `ssh://` engine (for commands that run on the host itself, e.g. `setup --host`).
    pub fn ssh(&self) -> Option<SshUrl> {
        SshUrl::parse(self.docker_host.as_deref().unwrap_or(&self.label)).ok()
    }
}

/// `ssh://[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshUrl {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshUrl {
    pub fn parse(url: &str) -> Result<SshUrl> {
        let fix = "  fix: --host ssh://user@host[:port] (e.g. ssh://root@203.0.113.7:22), or a name from [hosts] in infra/stack.toml";
        let Some(rest) = url.strip_prefix("ssh://") else {
            bail!("`{url}` is not an SSH address: remote engines are reached over SSH only\n{fix}");
        };
        if rest.contains('/') || rest.contains('?') || rest.chars().any(char::is_whitespace) {
            bail!("`{url}` has a path, a query or spaces: an engine address is ssh://user@host[:port]\n{fix}");
        }
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, rest),
        };
        if user.as_deref().is_some_and(|u| u.is_empty() || u.contains(':')) {
            bail!("`{url}`: the user part is empty or carries a password (use SSH keys)\n{fix}");
        }
        let port_of = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| anyhow::anyhow!("`{url}`: `{p}` is not a port number\n{fix}"))
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            match v6.split_once(']') {
                Some((h, "")) => (format!("[{h}]"), None),
                Some((h, p)) if p.starts_with(':') => (format!("[{h}]"), Some(port_of(&p[1..])?)),
                _ => bail!("`{url}`: `{hostport}` is not a host name or address\n{fix}"),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(port_of(p)?)),
                None => (hostport.to_string(), None),
            }
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty()
            || bare.starts_with('-')
            || !bare.chars().all(|c| c.is_ascii_alphanumeric() || ".-_:".contains(c))
        {
            bail!("`{url}`: `{host}` is not a host name or address\n{fix}");
        }
        Ok(SshUrl { user, host, port })
    }

    /// `user_host_port`: a file-name-safe form for the target's records.
    fn slug(&self) -> String {
        let mut s = String::new();
        if let Some(u) = &self.user {
            s.push_str(u);
            s.push('_');
        }
        s.push_str(&self.host);
        if let Some(p) = self.port {
            s.push_str(&format!("_{p}"));
        }
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// The engine of this run (see the module docs); a bad `--host` or `[hosts.*]` entry is an error naming the fix.
pub fn resolve(selectors: &Selectors, hosts: &BTreeMap<String, Host>, config_file: &str) -> Result<Engine> {
    if let Some(flag) = &selectors.host_flag {
        if flag.contains("://") {
            let url = SshUrl::parse(flag)?;
            return Ok(Engine {
                docker_host: Some(flag.clone()),
                label: flag.clone(),
                how: "--host".into(),
                suffix: format!("@{}", url.slug()),
            });
        }
        let Some(host) = hosts.get(flag) else {
            let known: Vec<&str> = hosts.keys().map(String::as_str).collect();
            let listed = if known.is_empty() {
                "there are none".to_string()
            } else {
                format!("known: {}", known.join(", "))
            };
            bail!(
                "no host `{flag}` in {config_file} ({listed})\n  fix: add [hosts.{flag}] with ssh = \"ssh://user@host[:port]\" to {config_file}, or pass --host ssh://user@host[:port]"
            );
        };
        let valid_name = flag.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid_name {
            bail!(
                "{config_file}: host name `{flag}` may only use letters, digits, `-`, `_` and `.`\n  fix: rename [hosts.{flag}]"
            );
        }
        SshUrl::parse(&host.ssh).map_err(|e| anyhow::anyhow!("{config_file}: key `hosts.{flag}.ssh`: {e:#}"))?;
        return Ok(Engine {
            docker_host: Some(host.ssh.clone()),
            label: host.ssh.clone(),
            how: format!("[hosts.{flag}] in {config_file}"),
            suffix: format!("@{flag}"),
        });
    }
    if let Some(host) = &selectors.docker_host {
        let suffix = match SshUrl::parse(host) {
            Ok(url) => format!("@{}", url.slug()),
            Err(_) if host.starts_with("unix://") => String::new(),
            Err(_) => format!(
                "@{}",
                host.chars()
                    .map(|c| if c.is_ascii_alphanumeric() || ".-".contains(c) {
                        c
                    } else {
                        '_'
                    })
                    .collect::<String>()
            ),
        };
        return Ok(Engine {
            docker_host: None,
            label: host.clone(),
            how: "DOCKER_HOST".into(),
            suffix,
        });
    }
    if let Some(context) = selectors.docker_context.as_ref().or(selectors.current_context.as_ref()) {
        let safe: String = context
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        return Ok(Engine {
            docker_host: None,
            label: format!("docker context {context}"),
            how: if selectors.docker_context.is_some() {
                "DOCKER_CONTEXT".into()
            } else {
                "the current docker context".into()
            },
            suffix: format!("@context-{safe}"),
        });
    }
    Ok(Engine::local())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts() -> BTreeMap<String, Host> {
        [(
            "web".to_string(),
            Host {
                ssh: "ssh://deploy@10.0.0.5:2222".into(),
            },
        )]
        .into()
    }

    fn flag(h: &str) -> Selectors {
        Selectors {
            host_flag: Some(h.into()),
            docker_host: Some("ssh://ignored@elsewhere".into()),
            ..Default::default()
        }
    }

    #[test]
    fn ssh_urls_parse_and_bad_ones_name_the_fix() {
        let u = SshUrl::parse("ssh://root@127.0.0.1:40022").unwrap();
        assert_eq!(
            (u.user.as_deref(), u.host.as_str(), u.port),
            (Some("root"), "127.0.0.1", Some(40022))
        );
        let u = SshUrl::parse("ssh://web1").unwrap();
        assert_eq!((u.user, u.host.as_str(), u.port), (None, "web1", None));
        for (bad, why) in [
            ("tcp://10.0.0.5:2375", "not an SSH address"),
            ("ssh://root@web1/path", "has a path"),
            ("ssh://root:pw@web1", "carries a password"),
            ("ssh://root@web1:0", "not a port number"),
            ("ssh://root@web1:http", "not a port number"),
            ("ssh://root@-oProxyCommand=x", "not a host name"),
            ("ssh://", "not a host name"),
        ] {
            let err = format!("{:#}", SshUrl::parse(bad).unwrap_err());
            assert!(err.contains(why) && err.contains("fix:"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_flag_wins_then_the_environment_then_a_context() {
        let e = resolve(&flag("ssh://root@127.0.0.1:40022"), &hosts(), "stack.toml").unwrap();
        assert_eq!(e.docker_host.as_deref(), Some("ssh://root@127.0.0.1:40022"));
        assert_eq!(e.key("drydock-prod"), "drydock-prod@root_127.0.0.1_40022");
        assert!(e.is_remote());

        let e = resolve(&flag("web"), &hosts(), "stack.toml").unwrap();
        assert_eq!(e.docker_host.as_deref(), Some("ssh://deploy@10.0.0.5:2222"));
        assert_eq!(e.key("drydock-prod"), "drydock-prod@web");
        assert!(e.how.contains("[hosts.web]"));

        let err = format!("{:#}", resolve(&flag("db"), &hosts(), "stack.toml").unwrap_err());
        assert!(
            err.contains("no host `db` in stack.toml (known: web)") && err.contains("[hosts.db]"),
            "{err}"
        );
        let bad: BTreeMap<String, Host> = [("x".to_string(), Host { ssh: "web1".into() })].into();
        let err = format!("{:#}", resolve(&flag("x"), &bad, "stack.toml").unwrap_err());
        assert!(
            err.contains("key `hosts.x.ssh`") && err.contains("not an SSH address"),
            "{err}"
        );

        let env = Selectors {
            docker_host: Some("ssh://ops@web2".into()),
            docker_context: Some("prod".into()),
            ..Default::default()
        };
        let e = resolve(&env, &hosts(), "stack.toml").unwrap();
        assert_eq!(
            (e.docker_host.as_deref(), e.how.as_str()),
            (None, "DOCKER_HOST"),
            "inherited, not re-set"
        );
        assert_eq!(e.key("p"), "p@ops_web2");

        let ctx = Selectors {
            current_context: Some("staging".into()),
            ..Default::default()
        };
        let e = resolve(&ctx, &hosts(), "stack.toml").unwrap();
        assert_eq!(
            (e.label.as_str(), e.key("p").as_str()),
            ("docker context staging", "p@context-staging")
        );

        let local = resolve(&Selectors::default(), &hosts(), "stack.toml").unwrap();
        assert_eq!(local, Engine::local());
        assert_eq!(local.key("p"), "p");
        let unix = Selectors {
            docker_host: Some("unix:///var/run/docker.sock".into()),
            ..Default::default()
        };
        assert!(!resolve(&unix, &hosts(), "stack.toml").unwrap().is_remote());
    }
}
