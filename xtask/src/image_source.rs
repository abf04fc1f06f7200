//! Which images this run uses: pinned registry images or the ones built offline from Debian packages,
//! decided once per run (the `--offline` flag, then `images.source` in infra/stack.toml; `auto` asks the
//! registry). Only commands that build, pull or start containers ask for the decision.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config::{Config, ImageSource};

/// The source actually used for this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Registry,
    Offline,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Registry => "registry",
            Source::Offline => "offline",
        }
    }
}

/// The decision and why it was taken (reported once per run).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub source: Source,
    pub why: String,
}

/// Decides the image source: the flag wins, then the config; `auto` asks the registry once.
pub fn resolve(config: &Config, offline_flag: bool) -> Resolved {
    if offline_flag {
        return Resolved {
            source: Source::Offline,
            why: "--offline given".into(),
        };
    }
    match config.images.source {
        ImageSource::Registry => Resolved {
            source: Source::Registry,
            why: "images.source = \"registry\"".into(),
        },
        ImageSource::Offline => Resolved {
            source: Source::Offline,
            why: "images.source = \"offline\"".into(),
        },
        ImageSource::Auto => match registry_answers(&config.images.registry_probe) {
            Ok(()) => Resolved {
                source: Source::Registry,
                why: format!("auto: {} answers", config.images.registry_probe),
            },
            Err(reason) => Resolved {
                source: Source::Offline,
                why: format!("auto: no registry answered ({reason})"),
            },
        },
    }
}

/// A TCP connection to the registry's HTTPS port within a few seconds counts as "a registry answers".
fn registry_answers(url: &str) -> Result<(), String> {
    let host = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("images.registry_probe = {url:?} has no host"))?;
    let addrs = (host, 443)
        .to_socket_addrs()
        .map_err(|_| format!("cannot resolve {host}"))?;
    for addr in addrs {
        if TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok() {
            return Ok(());
        }
    }
    Err(format!("{host}:443 did not accept a connection"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/stack.toml");
        Config::load(&path).unwrap()
    }

    #[test]
    fn offline_flag_wins() {
        let r = resolve(&config(), true);
        assert_eq!(r.source, Source::Offline);
    }

    #[test]
    fn registry_probe_without_host_is_an_error() {
        assert!(registry_answers("https:///v2/").is_err());
    }
}
