//! Where base images come from (registry or built offline), and making sure they exist.
//!
//! Offline mode builds every base image from one Debian trixie root filesystem: `debootstrap` makes the
//! rootfs, `docker import` turns it into `drydock/base:trixie`, and the recipes in `infra/images/` (built
//! through `docker compose build`, which brings its own BuildKit client) add the services from Debian packages.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::cmd::{Cmd, cmd, shell};
use crate::config::Config;
use crate::context::Ctx;
use crate::image_source::Source;

/// The compose file that builds the offline images, and its project name.
pub const OFFLINE_COMPOSE: &str = "infra/images/compose.yaml";
pub const OFFLINE_PROJECT: &str = "drydock-images";

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
        .map(|(role, image)| {
            (
                format!("DRYDOCK_{}_IMAGE", role.to_ascii_uppercase()),
                image.to_string(),
            )
        })
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
    let sh = shell();
    let id = "{{.Id}}";
    ctx.run
        .probe(&Cmd::from(cmd!(sh, "docker image inspect --format {id} {image}")))
        .is_some_and(|p| p.success)
}

/// Makes sure every base image the stack needs is present: pulled (registry) or built (offline).
pub fn ensure(ctx: &Ctx) -> Result<()> {
    let source = ctx.images().source;
    let images = BaseImages::for_source(&ctx.config, source);
    match source {
        Source::Registry => {
            let sh = shell();
            for (_, image) in images.roles() {
                if !exists(ctx, image) {
                    ctx.run.run(&Cmd::from(cmd!(sh, "docker pull {image}")))?;
                }
            }
            Ok(())
        }
        Source::Offline => {
            let missing: Vec<&str> = images
                .roles()
                .iter()
                .filter(|(_, image)| !exists(ctx, image))
                .map(|(role, _)| *role)
                .collect();
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
        if roles.is_empty() {
            "all".to_string()
        } else {
            roles.join(", ")
        }
    ));
    let sh = shell();
    ctx.run.run(&offline_compose(ctx).then(cmd!(sh, "build {roles...}")))?;
    Ok(())
}

/// `docker compose` for infra/images/compose.yaml; a subcommand follows through [`Cmd::then`]:
/// `offline_compose(ctx).then(cmd!(sh, "build {roles...}"))`.
pub fn offline_compose(ctx: &Ctx) -> Cmd {
    let sh = shell();
    let file = ctx.path(OFFLINE_COMPOSE);
    Cmd::from(cmd!(sh, "docker compose -p {OFFLINE_PROJECT} -f {file}"))
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
    if !ctx.run.dry_run && !crate::cmd::program_exists("debootstrap") {
        bail!(
            "debootstrap is not installed; it builds the offline Debian base image\n  fix: cargo xtask setup   (or: apt-get install -y debootstrap)"
        );
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
    let sh = shell();
    ctx.run.run(&Cmd::from(cmd!(
        sh,
        "debootstrap --variant=minbase trixie {rootfs} {mirror}"
    )))?;
    if !ctx.run.dry_run {
        prepare_rootfs(&rootfs, &mirror)?;
    }
    ctx.run
        .run(&Cmd::from(cmd!(sh, "tar --numeric-owner -C {rootfs} -cf {tarball} .")))?;
    // What the official Debian images set: a PATH, and bash as the default command.
    let path = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let bash = r#"CMD ["bash"]"#;
    ctx.run.run(&Cmd::from(cmd!(
        sh,
        "docker import --change {path} --change {bash} {tarball} {image}"
    )))?;
    if !ctx.run.dry_run {
        std::fs::remove_dir_all(&work).with_context(|| format!("cannot clean up {}", work.display()))?;
    }
    Ok(())
}

/// Makes the debootstrapped tree a container base, as the official Debian images do: apt sources with
/// updates and security, no package caches or translations, no docs/man pages for later installs, and
/// none of the files Docker provides at run time.
fn prepare_rootfs(rootfs: &Path, mirror: &str) -> Result<()> {
    let write = |relative: &str, text: String| -> Result<()> {
        let path = rootfs.join(relative);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(
        "etc/apt/sources.list",
        format!(
            "deb {mirror} trixie main\ndeb {mirror} trixie-updates main\ndeb http://deb.debian.org/debian-security trixie-security main\n"
        ),
    )?;
    write(
        "etc/apt/apt.conf.d/docker-clean",
        concat!(
            "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\n",
            "APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\n",
            "Dir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n"
        )
        .to_string(),
    )?;
    write(
        "etc/apt/apt.conf.d/docker-no-languages",
        "Acquire::Languages \"none\";\n".to_string(),
    )?;
    write(
        "etc/dpkg/dpkg.cfg.d/docker-slim",
        [
            "path-exclude /usr/share/doc/*",
            "path-include /usr/share/doc/*/copyright",
            "path-exclude /usr/share/man/*",
            "path-exclude /usr/share/info/*",
            "path-exclude /usr/share/locale/*",
            "path-exclude /usr/share/lintian/*",
            "",
        ]
        .join("\n"),
    )?;
    for dir in [
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "var/log",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
    ] {
        empty_dir(&rootfs.join(dir), &|_, _| true)?;
    }
    // Docs go, their copyright files stay (licences travel with the binaries), and so do the symlinks
    // that point a package's doc directory at another's (e.g. libgcc-s1 -> gcc-14-base).
    empty_dir(&rootfs.join("usr/share/doc"), &|p, kind| {
        kind.is_file() && p.file_name().is_none_or(|n| n != "copyright")
    })?;
    for file in ["etc/resolv.conf", "etc/hostname"] {
        let path = rootfs.join(file);
        if path.symlink_metadata().is_ok() {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    std::fs::create_dir_all(rootfs.join("var/lib/apt/lists/partial")).context("recreating apt's lists directory")?;
    Ok(())
}

/// Removes every non-directory below `dir` for which `remove` holds, then any directories left empty.
fn empty_dir(dir: &Path, remove: &dyn Fn(&Path, std::fs::FileType) -> bool) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            empty_dir(&path, remove)?;
            if std::fs::read_dir(&path)?.next().is_none() {
                std::fs::remove_dir(&path).with_context(|| format!("removing {}", path.display()))?;
            }
        } else if remove(&path, kind) {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
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

    fn config() -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/stack.toml");
        Config::load(&path).unwrap()
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
    fn offline_compose_binds_its_project_file_and_base() {
        let root = crate::context::project_root();
        let global = crate::context::Global {
            dry_run: true,
            verbose: false,
            quiet: true,
            yes: false,
            offline: true,
            config: crate::config::CONFIG_PATH.into(),
            host: None,
        };
        let ctx = Ctx::from_parts(root.clone(), config(), &global);
        let sh = shell();
        let roles = ["postgres", "redis"];
        let cmd = offline_compose(&ctx).then(cmd!(sh, "build {roles...}"));
        let file = root.join(OFFLINE_COMPOSE).display().to_string();
        assert_eq!(
            cmd.argv(),
            [
                "docker",
                "compose",
                "-p",
                OFFLINE_PROJECT,
                "-f",
                &file,
                "build",
                "postgres",
                "redis"
            ]
        );
        assert_eq!(
            cmd.env,
            [
                ("DRYDOCK_CA_BUNDLE".to_string(), ctx.config.images.ca_bundle.clone()),
                ("DRYDOCK_BASE_IMAGE".to_string(), ctx.config.images.offline.base.clone()),
            ]
        );
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
}

#[cfg(test)]
mod rootfs_tests {
    use super::*;

    #[test]
    fn prepare_rootfs_trims_and_configures() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for dir in ["usr/share/doc/pkg", "usr/share/man/man1", "var/lib/apt/lists", "etc"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("usr/share/doc/pkg/copyright"), "licence").unwrap();
        std::fs::write(root.join("usr/share/doc/pkg/changelog.gz"), "x").unwrap();
        std::fs::write(root.join("usr/share/man/man1/ls.1.gz"), "x").unwrap();
        std::fs::write(root.join("var/lib/apt/lists/some_Packages"), "x").unwrap();
        std::fs::write(root.join("etc/hostname"), "builder").unwrap();
        std::os::unix::fs::symlink("pkg", root.join("usr/share/doc/pkg-alias")).unwrap();
        prepare_rootfs(root, "http://mirror.example/debian").unwrap();
        assert!(root.join("usr/share/doc/pkg/copyright").exists());
        assert!(!root.join("usr/share/doc/pkg/changelog.gz").exists());
        assert!(!root.join("usr/share/man/man1").exists());
        assert!(
            root.join("usr/share/doc/pkg-alias").symlink_metadata().is_ok(),
            "doc symlinks stay"
        );
        assert!(!root.join("var/lib/apt/lists/some_Packages").exists());
        assert!(root.join("var/lib/apt/lists/partial").is_dir());
        assert!(!root.join("etc/hostname").exists());
        let sources = std::fs::read_to_string(root.join("etc/apt/sources.list")).unwrap();
        assert!(sources.starts_with("deb http://mirror.example/debian trixie main"));
    }
}
