//! What every command gets: the repository root, the stack description, the runner, the global flags and
//! the `DRYDOCK_*` / `CARGO` variables (read once, here).

use std::cell::OnceCell;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;

use crate::config::{CONFIG_PATH, Config};
use crate::image_source::{self, Resolved};
use crate::runner::{Runner, THIS_MACHINE};
use crate::target::{self, Engine, Selectors};
use crate::term::say;

/// Flags every command accepts.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Print every command that would run, and run nothing.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Show the working directory and environment of each command.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Print only results and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Answer yes to confirmations of destructive steps (required without a terminal).
    #[arg(long, global = true)]
    pub yes: bool,
    /// Build every base image locally from Debian packages, whatever infra/stack.toml says.
    #[arg(long, global = true)]
    pub offline: bool,
    /// The stack description to use.
    #[arg(long, global = true, value_name = "FILE", default_value = CONFIG_PATH)]
    pub config: PathBuf,
    /// The Docker engine to act on: `ssh://user@host[:port]` or a `[hosts.<name>]` of the stack description
    /// (default: DOCKER_HOST, the docker context, else this machine's engine).
    #[arg(long, global = true, value_name = "HOST")]
    pub host: Option<String>,
}

/// The environment variables drydock reads, read once when a command starts.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// `CARGO`: the cargo that runs the xtask (so plans use the same toolchain); `cargo` otherwise.
    pub cargo: String,
    /// `DRYDOCK_PROJECT`: a compose project name that isolates a stack (e.g. `ci` runs on `<name>-ci`).
    pub project: Option<String>,
    /// `DRYDOCK_SECRETS_DIR`: where the production secret files are (default infra/secrets).
    pub secrets_dir: Option<PathBuf>,
    /// `DRYDOCK_TLS_DIR`: the proxy's certificate directory (default `<secrets>/tls`).
    pub tls_dir: Option<PathBuf>,
    /// `DRYDOCK_BUILD_CACHE=gha`: BuildKit's layer cache lives in GitHub Actions' cache service.
    pub gha_build_cache: bool,
    /// `DRYDOCK_PROD_BIND=0.0.0.0`: production publishes on every interface (default loopback).
    pub prod_bind_public: bool,
    /// `CI` set (and not `false`/`0`): running in a CI system, where nothing may be skipped.
    pub ci: bool,
    /// `DRYDOCK_HOOKS_DIR`: where the project's deploy and backup hooks are (default infra/hooks).
    pub hooks_dir: Option<PathBuf>,
    /// `DRYDOCK_AGE_IDENTITY_FILE`: the age identity that decrypts backups (else backups.encryption.identity_file).
    pub age_identity: Option<PathBuf>,
    /// `DRYDOCK_OFFSITE_ACCESS_KEY_ID` / `DRYDOCK_OFFSITE_SECRET_ACCESS_KEY`: the S3 remote's credentials when
    /// backups.remote.credentials_file is not set. Never printed.
    pub offsite_access_key: Option<(String, String)>,
    /// `AWS_CA_BUNDLE`: a CA bundle for S3 over TLS; handed to rclone as `--ca-cert` (its AWS SDK cannot load
    /// one from the environment).
    pub aws_ca_bundle: Option<PathBuf>,
    /// `DRYDOCK_OPERATOR_MACHINE`: the name of this operator machine in deploy locks and the audit log (default:
    /// the hostname). Says which runner a CI job was; a lock naming another machine is never taken over as dead.
    pub operator_machine: Option<String>,
}

impl Vars {
    pub fn from_env() -> Vars {
        let text = |key: &str| {
            std::env::var(key)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        Vars {
            cargo: text("CARGO").unwrap_or_else(|| "cargo".to_string()),
            project: text("DRYDOCK_PROJECT"),
            secrets_dir: text("DRYDOCK_SECRETS_DIR").map(PathBuf::from),
            tls_dir: text("DRYDOCK_TLS_DIR").map(PathBuf::from),
            gha_build_cache: text("DRYDOCK_BUILD_CACHE").as_deref() == Some("gha"),
            prod_bind_public: text("DRYDOCK_PROD_BIND").as_deref() == Some("0.0.0.0"),
            ci: text("CI").is_some_and(|v| v != "false" && v != "0"),
            hooks_dir: text("DRYDOCK_HOOKS_DIR").map(PathBuf::from),
            age_identity: text("DRYDOCK_AGE_IDENTITY_FILE").map(PathBuf::from),
            offsite_access_key: text("DRYDOCK_OFFSITE_ACCESS_KEY_ID").zip(text("DRYDOCK_OFFSITE_SECRET_ACCESS_KEY")),
            aws_ca_bundle: text("AWS_CA_BUNDLE").map(PathBuf::from),
            operator_machine: text("DRYDOCK_OPERATOR_MACHINE"),
        }
    }
}

#[derive(Clone)]
pub struct Ctx {
    pub root: PathBuf,
    pub config: Config,
    /// The stack description's file (absolute), e.g. for a scheduled job that must read the same one.
    pub config_path: PathBuf,
    pub run: Runner,
    pub yes: bool,
    pub offline: bool,
    pub vars: Vars,
    /// The engine acted on (this machine's, or a remote one: `target.rs`).
    pub engine: Engine,
    images: OnceCell<Resolved>,
}

impl Ctx {
    pub fn new(global: &Global) -> Result<Ctx> {
        let root = project_root();
        let config_path = if global.config.is_absolute() {
            global.config.clone()
        } else {
            root.join(&global.config)
        };
        let config = Config::load(&config_path)?;
        let engine = target::resolve(
            &Selectors::from_env(global.host.as_deref()),
            &config.hosts,
            &global.config.display().to_string(),
        )?;
        let mut ctx = Ctx::from_parts(root, config, global);
        ctx.set_engine(engine);
        Ok(ctx)
    }

    /// Acts on `engine` from now on (its `DOCKER_HOST` for every docker child), and says so when it is remote.
    pub fn set_engine(&mut self, engine: Engine) {
        // Leaked once per run: the runner stays `Copy` and every plan borrows it.
        // An `ssh://` DOCKER_HOST of the environment is given again explicitly, so the runner treats it alike.
        let host = engine.docker_host.clone().or_else(|| {
            (engine.how == "DOCKER_HOST" && engine.label.starts_with("ssh://")).then(|| engine.label.clone())
        });
        self.run.docker_host = host.map(|h| &*Box::leak(h.into_boxed_str()));
        if engine.is_remote() {
            self.say(&format!("engine: {} ({})", engine.label, engine.how));
        }
        self.engine = engine;
    }

    /// This run without its echo, progress and notes: for work whose output is not the one shown (a restore's
    /// safety backup, taken while the restore streams; the backup bench's polling between variants).
    pub fn quiet(&self) -> Ctx {
        Ctx {
            run: Runner {
                quiet: true,
                ..self.run
            },
            ..self.clone()
        }
    }

    /// This run on this machine's own engine, whatever `--host`, DOCKER_HOST or the docker context say: what
    /// a remote engine runs is built here first (a remote host never builds) and then travels to it.
    pub fn this_machine(&self) -> Ctx {
        Ctx {
            run: Runner {
                docker_host: Some(THIS_MACHINE),
                ..self.run
            },
            engine: Engine::local(),
            ..self.clone()
        }
    }

    pub fn from_parts(root: PathBuf, config: Config, global: &Global) -> Ctx {
        let config_path = if global.config.is_absolute() {
            global.config.clone()
        } else {
            root.join(&global.config)
        };
        Ctx {
            root,
            config,
            config_path,
            run: Runner {
                dry_run: global.dry_run,
                verbose: global.verbose,
                quiet: global.quiet,
                docker_host: None,
            },
            yes: global.yes,
            offline: global.offline,
            vars: Vars::from_env(),
            engine: Engine::local(),
            images: OnceCell::new(),
        }
    }

    /// A dry-run, quiet, offline context on this repository's own stack description (plan tests).
    #[cfg(test)]
    pub fn for_plan_tests() -> Ctx {
        let root = project_root();
        let config = Config::load(&root.join(CONFIG_PATH)).expect("infra/stack.toml loads");
        let global = Global {
            dry_run: true,
            verbose: false,
            quiet: true,
            yes: false,
            offline: true,
            config: CONFIG_PATH.into(),
            host: None,
        };
        Ctx::from_parts(root, config, &global)
    }

    /// A status line for the user (hidden by `-q`).
    pub fn say(&self, text: &str) {
        say(self.run.quiet, text);
    }

    /// The image source for this run, decided once (and reported the first time).
    pub fn images(&self) -> &Resolved {
        self.images.get_or_init(|| {
            let resolved = image_source::resolve(&self.config, self.offline);
            self.say(&format!("images: {} ({})", resolved.source.name(), resolved.why));
            resolved
        })
    }

    /// Asks before a destructive step. `--yes` answers for the user; without a terminal and without
    /// `--yes` it refuses, so scripts never hang on (or silently pass) a prompt. `--dry-run` never asks.
    pub fn confirm(&self, what: &str) -> Result<()> {
        if self.yes || self.run.dry_run {
            return Ok(());
        }
        if !io::stdin().is_terminal() {
            bail!(
                "refusing to {what} without confirmation: no terminal to ask on\n  fix: re-run with --yes if you mean it"
            );
        }
        eprint!("This will {what}. Continue? [y/N] ");
        io::stderr().flush()?;
        let mut answer = String::new();
        io::stdin().lock().read_line(&mut answer)?;
        if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            Ok(())
        } else {
            bail!("cancelled: nothing was changed")
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        crate::files::under(&self.root, relative)
    }
}

/// The repository root: the xtask crate lives one level below it.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}
