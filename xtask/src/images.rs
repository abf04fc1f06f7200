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

/// The label every image built from a recipe under infra/images/ carries: the SHA-256 of the recipe's files
/// ([`recipe_hash`]). An image whose label differs from its recipe's hash (an image built from an older
/// recipe, or before the label existed) is rebuilt by [`ensure`], so a changed recipe reaches every
/// machine that already has the old image under the same tag.
pub const RECIPE_LABEL: &str = "org.drydock.recipe";

/// The compose service (infra/images/compose.yaml) that derives registry mode's PostgreSQL image from the
/// official one (pgBackRest added: infra/images/postgres/Dockerfile.registry).
pub const REGISTRY_POSTGRES_RECIPE: &str = "postgres-registry";

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
                    postgres: registry_postgres(config),
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

/// Registry mode's PostgreSQL image: the official `images.registry.postgres` plus pgBackRest, tagged
/// `<prefix>/postgres-pitr:<the official tag>` (built locally, never pulled).
pub fn registry_postgres(config: &Config) -> String {
    let upstream = &config.images.registry.postgres;
    let tag = upstream.rsplit_once(':').map_or("latest", |(_, t)| t);
    format!("{}/postgres-pitr:{tag}", config.images.prefix)
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
            let upstream = &ctx.config.images.registry.postgres;
            for (role, image) in images.roles() {
                // The PostgreSQL image is built FROM the official one: pull that one instead.
                let image = if role == "postgres" { upstream.as_str() } else { image };
                if !exists(ctx, image) {
                    ctx.run.run(&Cmd::from(cmd!(sh, "docker pull {image}")))?;
                }
            }
            let recipe = REGISTRY_POSTGRES_RECIPE;
            if let Some(why) = stale(ctx, recipe, &images.postgres)? {
                ctx.say(&format!("building {} ({why})", images.postgres));
                let file = ctx.path(OFFLINE_COMPOSE);
                let build = Cmd::from(cmd!(
                    sh,
                    "docker compose -p {OFFLINE_PROJECT} -f {file} --profile registry build {recipe}"
                ))
                .env("DRYDOCK_REGISTRY_POSTGRES_IMAGE", upstream.clone())
                .env("DRYDOCK_REGISTRY_POSTGRES_PITR_IMAGE", images.postgres.clone())
                .env(recipe_var(recipe), recipe_hash(&ctx.root, recipe)?);
                ctx.run.run(&build)?;
            }
            Ok(())
        }
        Source::Offline => {
            let mut rebuild: Vec<&str> = Vec::new();
            for (role, image) in images.roles() {
                if let Some(why) = stale(ctx, role, image)? {
                    ctx.say(&format!("{image}: {why}"));
                    rebuild.push(role);
                }
            }
            if rebuild.is_empty() {
                return Ok(());
            }
            build_offline(ctx, &rebuild, false)
        }
    }
}

/// Why the image of a recipe must be (re)built: it is missing, or its [`RECIPE_LABEL`] is not the hash of
/// the recipe's files as they are now. `None` when it is up to date.
fn stale(ctx: &Ctx, recipe: &str, image: &str) -> Result<Option<String>> {
    let sh = shell();
    let format = format!("{{{{index .Config.Labels \"{RECIPE_LABEL}\"}}}}");
    let inspect = Cmd::from(cmd!(sh, "docker image inspect --format {format} {image}"));
    let Some(found) = ctx.run.probe(&inspect).filter(|p| p.success) else {
        return Ok(Some("not built yet".into()));
    };
    let want = recipe_hash(&ctx.root, recipe)?;
    let have = found.stdout.trim();
    Ok((have != want).then(|| {
        if have.is_empty() || have == "<no value>" {
            format!(
                "built before recipes were labelled: rebuilding from infra/images/{}",
                recipe_dir(recipe)
            )
        } else {
            format!(
                "its recipe infra/images/{} changed since it was built: rebuilding",
                recipe_dir(recipe)
            )
        }
    }))
}

/// The directory under infra/images/ a recipe (compose service) builds from.
fn recipe_dir(recipe: &str) -> &str {
    match recipe {
        REGISTRY_POSTGRES_RECIPE => "postgres",
        other => other,
    }
}

/// The variable infra/images/compose.yaml reads a recipe's hash from (`DRYDOCK_RECIPE_<NAME>`).
fn recipe_var(recipe: &str) -> String {
    format!("DRYDOCK_RECIPE_{}", recipe.to_ascii_uppercase().replace('-', "_"))
}

/// SHA-256 over the relative path and content of every file of a recipe's directory (sorted), plus the
/// recipe's name (the registry variant shares the offline one's directory but not its Dockerfile).
pub fn recipe_hash(root: &Path, recipe: &str) -> Result<String> {
    use sha2::{Digest, Sha256};
    let dir = root.join("infra/images").join(recipe_dir(recipe));
    let mut files = Vec::new();
    let mut dirs = vec![dir.clone()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading the recipe {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut hasher = Sha256::new();
    hasher.update(recipe.as_bytes());
    for file in files {
        let relative = file.strip_prefix(&dir).unwrap_or(&file);
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update([0]);
        let content = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        hasher.update((content.len() as u64).to_le_bytes());
        hasher.update(&content);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
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
    let mut compose = Cmd::from(cmd!(sh, "docker compose -p {OFFLINE_PROJECT} -f {file}"))
        .env("DRYDOCK_CA_BUNDLE", ctx.config.images.ca_bundle.clone())
        .env("DRYDOCK_BASE_IMAGE", ctx.config.images.offline.base.clone());
    // Each built role carries its recipe's hash (RECIPE_LABEL), so `ensure` sees when a recipe changed.
    let images = BaseImages::for_source(&ctx.config, Source::Offline);
    for (role, _) in images.roles() {
        if let Ok(hash) = recipe_hash(&ctx.root, role) {
            compose = compose.env(recipe_var(role), hash);
        }
    }
    compose
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
            cmd.env[..2],
            [
                ("DRYDOCK_CA_BUNDLE".to_string(), ctx.config.images.ca_bundle.clone()),
                ("DRYDOCK_BASE_IMAGE".to_string(), ctx.config.images.offline.base.clone()),
            ]
        );
        // Every role's recipe hash, for the image's label.
        let postgres = recipe_hash(&root, "postgres").unwrap();
        assert!(cmd.env.contains(&("DRYDOCK_RECIPE_POSTGRES".to_string(), postgres)));
        assert_eq!(cmd.env.len(), 2 + 6);
    }

    #[test]
    fn recipe_hash_follows_the_recipe_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("infra/images/postgres");
        std::fs::create_dir_all(dir.join("conf")).unwrap();
        std::fs::write(dir.join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(dir.join("conf/a.conf"), "a=1\n").unwrap();
        let first = recipe_hash(tmp.path(), "postgres").unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(first, recipe_hash(tmp.path(), "postgres").unwrap(), "stable");
        assert_ne!(
            first,
            recipe_hash(tmp.path(), REGISTRY_POSTGRES_RECIPE).unwrap(),
            "per recipe"
        );
        std::fs::write(dir.join("conf/a.conf"), "a=2\n").unwrap();
        assert_ne!(
            first,
            recipe_hash(tmp.path(), "postgres").unwrap(),
            "a nested file's content counts"
        );
        assert!(
            recipe_hash(tmp.path(), "redis").is_err(),
            "a missing recipe is an error"
        );
        assert_eq!(recipe_var(REGISTRY_POSTGRES_RECIPE), "DRYDOCK_RECIPE_POSTGRES_REGISTRY");
    }

    #[test]
    fn registry_postgres_is_derived_locally() {
        let config = config();
        assert_eq!(registry_postgres(&config), "drydock/postgres-pitr:17.6-trixie");
        assert_eq!(
            BaseImages::for_source(&config, Source::Registry).postgres,
            registry_postgres(&config)
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
