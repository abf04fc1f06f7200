//! Where base images come from (registry or built offline), and making sure they exist.
//!
//! Offline mode builds every base image from one Debian trixie root filesystem: `debootstrap` makes the
//! rootfs, `docker import` turns it into `drydock/base:trixie`, and the recipes in `infra/images/` (built
//! through `docker compose build`, which brings its own BuildKit client) add the services from Debian packages.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::config::{Config, ImageSource};
use crate::context::Ctx;
use crate::process::Cmd;

/// The compose file that builds the offline images, and its project name.
pub const OFFLINE_COMPOSE: &str = "infra/images/compose.yaml";
const OFFLINE_PROJECT: &str = "drydock-images";

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
        return Resolved { source: Source::Offline, why: "--offline given".into() };
    }
    match config.images.source {
        ImageSource::Registry => Resolved { source: Source::Registry, why: "images.source = \"registry\"".into() },
        ImageSource::Offline => Resolved { source: Source::Offline, why: "images.source = \"offline\"".into() },
        ImageSource::Auto => match registry_answers(&config.images.registry_probe) {
            Ok(()) => Resolved {
                source: Source::Registry,
                why: format!("auto: {} answers", config.images.registry_probe),
            },
            Err(reason) => Resolved {
                source: Source::Offline,
                why: format!("auto: no registry ({reason}); building base images locally"),
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
    let addrs = (host, 443).to_socket_addrs().map_err(|e| format!("{host}: {e}"))?;
    for addr in addrs {
        if TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok() {
            return Ok(());
        }
    }
    Err(format!("{host}:443 did not accept a connection"))
}

/// One base image per role, as the compose files and Dockerfiles receive them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImages {
    pub postgres: String,
    pub redis: String,
    pub rust: String,
    pub node: String,
    pub runtime: String,
    pub nginx: String,
    /// MongoDB has no Debian package: only the registry has an image for it.
    pub mongo: Option<String>,
}

impl BaseImages {
    pub fn for_source(config: &Config, source: Source) -> BaseImages {
        match source {
            Source::Registry => {
                let r = &config.images.registry;
                BaseImages {
                    postgres: r.postgres.clone(),
                    redis: r.redis.clone(),
                    rust: r.rust.clone(),
                    node: r.node.clone(),
                    runtime: r.runtime.clone(),
                    nginx: r.nginx.clone(),
                    mongo: Some(r.mongo.clone()),
                }
            }
            Source::Offline => {
                let o = &config.images.offline;
                BaseImages {
                    postgres: o.postgres.clone(),
                    redis: o.redis.clone(),
                    rust: o.rust.clone(),
                    node: o.node.clone(),
                    runtime: o.runtime.clone(),
                    nginx: o.nginx.clone(),
                    mongo: None,
                }
            }
        }
    }

    /// (offline recipe = compose service in infra/images/compose.yaml, image) for every role built offline.
    fn roles(&self) -> [(&'static str, &str); 6] {
        [
            ("postgres", &self.postgres),
            ("redis", &self.redis),
            ("rust", &self.rust),
            ("node", &self.node),
            ("runtime", &self.runtime),
            ("nginx", &self.nginx),
        ]
    }
}

/// The variables compose files interpolate to pick base images and build inputs.
pub fn compose_env(config: &Config, source: Source) -> Vec<(String, String)> {
    let images = BaseImages::for_source(config, source);
    let mut env: Vec<(String, String)> = images
        .roles()
        .iter()
        .map(|(role, image)| (format!("DRYDOCK_{}_IMAGE", role.to_ascii_uppercase()), image.to_string()))
        .collect();
    if let Some(mongo) = &images.mongo {
        env.push(("DRYDOCK_MONGO_IMAGE".into(), mongo.clone()));
    }
    env.push(("DRYDOCK_IMAGE_PREFIX".into(), config.images.prefix.clone()));
    env.push(("DRYDOCK_CA_BUNDLE".into(), config.images.ca_bundle.clone()));
    env
}

/// Whether an image exists in the local engine.
pub fn exists(ctx: &Ctx, image: &str) -> bool {
    ctx.run
        .probe(&Cmd::new("docker").args(["image", "inspect", "--format", "{{.Id}}", image]))
        .is_some_and(|p| p.success)
}

/// Makes sure every base image the stack needs is present: pulled (registry) or built (offline).
pub fn ensure(ctx: &Ctx) -> Result<()> {
    let source = ctx.images().source;
    let images = BaseImages::for_source(&ctx.config, source);
    match source {
        Source::Registry => {
            for (_, image) in images.roles() {
                if !exists(ctx, image) {
                    ctx.run.run(&Cmd::new("docker").args(["pull", image]))?;
                }
            }
            Ok(())
        }
        Source::Offline => {
            let missing: Vec<&str> =
                images.roles().iter().filter(|(_, image)| !exists(ctx, image)).map(|(role, _)| *role).collect();
            if missing.is_empty() {
                return Ok(());
            }
            build_offline(ctx, &missing, false)
        }
    }
}

/// Builds the offline images named by role (all when `roles` is empty), making the Debian base first.
pub fn build_offline(ctx: &Ctx, roles: &[&str], force: bool) -> Result<()> {
    check_ca_bundle(ctx)?;
    let base = &ctx.config.images.offline.base;
    if force || !exists(ctx, base) {
        build_base(ctx, base)?;
    }
    ctx.say(&format!(
        "building offline images from Debian trixie packages: {}",
        if roles.is_empty() { "all".to_string() } else { roles.join(", ") }
    ));
    let mut args = vec!["build".to_string()];
    args.extend(roles.iter().map(|r| r.to_string()));
    ctx.run.run(&offline_compose(ctx).args(args))?;
    Ok(())
}

/// `docker compose` for infra/images/compose.yaml.
pub fn offline_compose(ctx: &Ctx) -> Cmd {
    Cmd::new("docker")
        .args(["compose", "-p", OFFLINE_PROJECT, "-f"])
        .arg(ctx.path(OFFLINE_COMPOSE).display().to_string())
        .env("DRYDOCK_CA_BUNDLE", ctx.config.images.ca_bundle.clone())
        .env("DRYDOCK_BASE_IMAGE", ctx.config.images.offline.base.clone())
}

fn check_ca_bundle(ctx: &Ctx) -> Result<()> {
    let bundle = PathBuf::from(&ctx.config.images.ca_bundle);
    if !ctx.run.dry_run && !bundle.is_file() {
        bail!(
            "infra/stack.toml: key `images.ca_bundle` = {:?} does not exist\n  fix: point it at the host's CA bundle (Debian: /etc/ssl/certs/ca-certificates.crt, install `ca-certificates`)",
            ctx.config.images.ca_bundle
        );
    }
    Ok(())
}

/// The Debian base: `debootstrap --variant=minbase trixie`, trimmed, then `docker import`.
fn build_base(ctx: &Ctx, image: &str) -> Result<()> {
    if !ctx.run.dry_run && !crate::process::program_exists("debootstrap") {
        bail!("debootstrap is not installed; it builds the offline Debian base image\n  fix: cargo xtask setup   (or: apt-get install -y debootstrap)");
    }
    let work = ctx.root.join("target/drydock/base");
    let rootfs = work.join("rootfs");
    let tarball = work.join("rootfs.tar");
    let mirror = debian_mirror(&ctx.config);
    ctx.say(&format!("building the Debian trixie base image {image} from {mirror}"));
    if !ctx.run.dry_run {
        if work.exists() {
            std::fs::remove_dir_all(&work).with_context(|| format!("cannot clear {}", work.display()))?;
        }
        std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    }
    let rootfs_s = rootfs.display().to_string();
    ctx.run.run(&Cmd::new("debootstrap").args([
        "--variant=minbase",
        "--include=ca-certificates",
        "trixie",
        &rootfs_s,
        &mirror,
    ]))?;
    if !ctx.run.dry_run {
        trim_rootfs(&rootfs)?;
    }
    ctx.run.run(&Cmd::new("tar").args(["--numeric-owner", "-C", &rootfs_s, "-cf", &tarball.display().to_string(), "."]))?;
    ctx.run.run(&Cmd::new("docker").args([
        "import",
        "--change",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change",
        "CMD [\"bash\"]",
        &tarball.display().to_string(),
        image,
    ]))?;
    if !ctx.run.dry_run {
        std::fs::remove_dir_all(&work).with_context(|| format!("cannot clean up {}", work.display()))?;
    }
    Ok(())
}

/// Removes what a container base does not need (package caches, docs, man pages).
fn trim_rootfs(rootfs: &std::path::Path) -> Result<()> {
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info"] {
        let path = rootfs.join(dir);
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))? {
                let entry = entry?;
                let p = entry.path();
                if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                }
                .with_context(|| format!("removing {}", p.display()))?;
            }
        }
    }
    Ok(())
}

/// The configured mirror, else the one the host's apt uses, else deb.debian.org.
pub fn debian_mirror(config: &Config) -> String {
    if !config.images.debian_mirror.trim().is_empty() {
        return config.images.debian_mirror.trim().to_string();
    }
    host_apt_mirror().unwrap_or_else(|| "http://deb.debian.org/debian".to_string())
}

fn host_apt_mirror() -> Option<String> {
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources") {
        let found = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("URIs:"))
            .flat_map(str::split_whitespace)
            .find(|uri| !uri.contains("security"));
        if let Some(uri) = found {
            return Some(uri.to_string());
        }
    }
    let text = std::fs::read_to_string("/etc/apt/sources.list").ok()?;
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("deb "))
        .flat_map(|l| l.split_whitespace().skip(1).find(|w| w.contains("://")))
        .find(|uri| !uri.contains("security"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config() -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/stack.toml");
        Config::load(&path).unwrap()
    }

    #[test]
    fn offline_flag_wins() {
        let r = resolve(&config(), true);
        assert_eq!(r.source, Source::Offline);
    }

    #[test]
    fn offline_images_have_no_mongo() {
        let images = BaseImages::for_source(&config(), Source::Offline);
        assert_eq!(images.postgres, "drydock/postgres:17");
        assert!(images.mongo.is_none());
        let env = compose_env(&config(), Source::Offline);
        assert!(env.contains(&("DRYDOCK_RUST_IMAGE".into(), "drydock/rust:1.96".into())));
        assert!(!env.iter().any(|(k, _)| k == "DRYDOCK_MONGO_IMAGE"));
    }

    #[test]
    fn registry_images_are_pinned() {
        let images = BaseImages::for_source(&config(), Source::Registry);
        for (_, image) in images.roles() {
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(!tag.is_empty() && tag != "latest", "{image} must carry a pinned tag");
        }
        assert!(images.mongo.is_some());
    }

    #[test]
    fn registry_probe_without_host_is_an_error() {
        assert!(registry_answers("https:///v2/").is_err());
    }
}
