//! What every command gets: the repository root, the stack description, the runner and the global flags.

use std::cell::OnceCell;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::cli::Global;
use crate::compose::Compose;
use crate::config::{Config, Env};
use crate::images::{self, Resolved};
use crate::process::{Runner, say};

pub struct Ctx {
    pub root: PathBuf,
    pub config: Config,
    pub run: Runner,
    pub yes: bool,
    pub offline: bool,
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
        Ok(Ctx::from_parts(root, config, global))
    }

    pub fn from_parts(root: PathBuf, config: Config, global: &Global) -> Ctx {
        Ctx {
            root,
            config,
            run: Runner {
                dry_run: global.dry_run,
                verbose: global.verbose,
                quiet: global.quiet,
            },
            yes: global.yes,
            offline: global.offline,
            images: OnceCell::new(),
        }
    }

    /// A status line for the user (hidden by `-q`).
    pub fn say(&self, text: &str) {
        say(self.run.quiet, text);
    }

    /// The image source for this run, decided once (and reported the first time).
    pub fn images(&self) -> &Resolved {
        self.images.get_or_init(|| {
            let resolved = images::resolve(&self.config, self.offline);
            self.say(&format!("images: {} ({})", resolved.source.name(), resolved.why));
            resolved
        })
    }

    /// The compose invocation for an environment (files, project, image variables only).
    pub fn compose(&self, env: Env) -> Result<Compose> {
        Compose::for_env(self, env)
    }

    /// The compose invocation for commands that address a running stack (health, shells, backups): for prod
    /// it also carries the deployed image tags and the secrets-file variables the prod overlay needs.
    pub fn stack(&self, env: Env) -> Result<Compose> {
        match env {
            Env::Dev => self.compose(env),
            Env::Prod => crate::commands::prod::current_compose(self),
        }
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
        crate::process::under(&self.root, relative)
    }
}

/// The repository root: the xtask crate lives one level below it.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .to_path_buf()
}
