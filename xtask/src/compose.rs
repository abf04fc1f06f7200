//! Building `docker compose` invocations for an environment of the stack.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

use crate::cmd::{Cmd, cmd, shell};
use crate::config::Env;
use crate::context::Ctx;
use crate::images;

/// Compose override that adds the GitHub Actions layer cache to every image build.
pub const GHA_CACHE_FILE: &str = "infra/compose/compose.cache-gha.yaml";
/// postgres on a network with a route out, for the off-site pgBackRest repository (production only).
pub const PITR_OFFSITE_FILE: &str = "infra/compose/compose.pitr-offsite.yaml";
/// `dev-up --watch` only: the API from the unoptimised, incremental `watch` build under its own image name.
pub const WATCH_FILE: &str = "infra/compose/compose.watch.yaml";

/// `docker compose` bound to one environment: project name, files, env file and image variables.
#[derive(Debug, Clone)]
pub struct Compose {
    pub project: String,
    pub files: Vec<PathBuf>,
    pub env_file: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// Profiles enabled for every command of this invocation (`--profile <name>` before the subcommand).
    pub profiles: Vec<String>,
}

impl Compose {
    pub fn for_env(ctx: &Ctx, env: Env) -> Result<Compose> {
        let mut files = ctx.config.compose_files(&ctx.root, env)?;
        // CI on hosted runners: BuildKit's layer cache lives in the CI's cache service.
        if ctx.vars.gha_build_cache {
            files.push(ctx.root.join(GHA_CACHE_FILE));
        }
        // Production's databases have no route out; the off-site pgBackRest repository needs one for postgres.
        if env == Env::Prod && ctx.config.backups.pitr.offsite {
            files.push(ctx.root.join(PITR_OFFSITE_FILE));
        }
        let env_file = ctx.path(&ctx.config.compose.env_file);
        // DRYDOCK_PROJECT isolates a stack (e.g. `cargo xtask ci` runs on `<name>-ci`).
        let project = ctx
            .vars
            .project
            .clone()
            .unwrap_or_else(|| project_name(&ctx.config.project.name, env));
        Ok(Compose {
            project,
            files,
            // In a dry run the file may not exist yet: dev-up would have created it by then.
            env_file: (env_file.is_file() || ctx.run.dry_run).then_some(env_file),
            env: [build_metadata(ctx), ctx.config.backups.pitr.compose_env()].concat(),
            profiles: Vec::new(),
        })
    }

    /// The base compose file alone, without the environment's overlays (the base is the first of
    /// `compose.dev` / `compose.prod`): for the benchmarks' throwaway stacks, which publish nothing and must not
    /// pay for the dev overlay's twice-a-second healthchecks (each one an exec).
    pub fn base_file_only(mut self) -> Compose {
        self.files.truncate(1);
        self
    }

    /// The same with these profiles enabled too (e.g. `watch`, or `*` for every profile).
    pub fn with_profiles(mut self, profiles: &[&str]) -> Compose {
        self.profiles.extend(profiles.iter().map(|p| p.to_string()));
        self
    }

    /// The same for `dev-up --watch`: the watch overlay (the API's `watch` build) and the `watch` profile
    /// (Vite's dev server). Only the watching run gets them, so a plain `dev-up` puts the release API back.
    pub fn watching(mut self, root: &Path) -> Compose {
        self.files.push(root.join(WATCH_FILE));
        self.with_profiles(&["watch"])
    }

    /// The same, with the image variables of this run's image source (deciding it): for commands that
    /// build, pull or start containers. Commands that only look at or address a running stack do without.
    pub fn with_images(mut self, ctx: &Ctx) -> Compose {
        self.env.extend(images::compose_env(&ctx.config, ctx.images().source));
        self
    }

    /// `docker compose -p <project> -f <file>... [--env-file <file>]` followed by a compose subcommand
    /// written with `cmd!`: `compose.cmd(cmd!(sh, "up --detach --wait {service}"))`.
    pub fn cmd(&self, subcommand: xshell::Cmd<'_>) -> Cmd {
        let sh = shell();
        let project = &self.project;
        let files = self
            .files
            .iter()
            .flat_map(|f| ["-f".to_string(), f.display().to_string()]);
        let env_file = self
            .env_file
            .iter()
            .flat_map(|f| ["--env-file".to_string(), f.display().to_string()]);
        let profiles = self.profiles.iter().flat_map(|p| ["--profile", p.as_str()]);
        let compose = cmd!(sh, "docker compose -p {project} {files...} {env_file...} {profiles...}")
            .envs(self.env.iter().cloned());
        Cmd::from(compose).then(subcommand)
    }
}

/// The compose project CI's stack runs on.
pub fn ci_project(name: &str) -> String {
    format!("{name}-ci")
}

/// Dev keeps the plain project name; prod gets its own so both can live on one machine.
pub fn project_name(name: &str, env: Env) -> String {
    match env {
        Env::Dev => name.to_string(),
        Env::Prod => format!("{name}-prod"),
    }
}

/// Build arguments that end up in the images' OCI labels.
fn build_metadata(ctx: &Ctx) -> Vec<(String, String)> {
    let revision = git_revision(ctx).unwrap_or_else(|| "unknown".to_string());
    vec![
        ("GIT_SHA".to_string(), revision),
        ("VERSION".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ]
}

/// The current commit, read from `.git` directly (no process: this runs on every compose call).
/// In a linked worktree `.git` is a file (`gitdir: <dir>`): HEAD is read there, branch refs from the
/// main repository's directory (the worktree's `commondir`).
pub fn git_revision(ctx: &Ctx) -> Option<String> {
    let mut git = ctx.root.join(".git");
    let mut common = git.clone();
    if git.is_file() {
        let link = std::fs::read_to_string(&git).ok()?;
        git = ctx.root.join(link.trim().strip_prefix("gitdir:")?.trim());
        common = match std::fs::read_to_string(git.join("commondir")) {
            Ok(dir) => git.join(dir.trim()),
            Err(_) => git.clone(),
        };
    }
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref: ") else {
        return Some(head.to_string());
    };
    for dir in [&git, &common] {
        if let Ok(sha) = std::fs::read_to_string(dir.join(reference)) {
            return Some(sha.trim().to_string());
        }
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed
        .lines()
        .find_map(|line| line.strip_suffix(reference).map(|sha| sha.trim().to_string()))
        .filter(|sha| !sha.is_empty())
}

/// `KEY=VALUE` lines of an env file (comments and blanks skipped, surrounding quotes removed).
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("export ").unwrap_or(l).split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            let v = v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// Checks that the env file sets every variable its example sets (non-empty), before anything starts: a
/// missing password would otherwise surface minutes later as an unhealthy service.
pub fn check_env_file(ctx: &Ctx) -> Result<()> {
    let env_file = ctx.path(&ctx.config.compose.env_file);
    let example = ctx.path(&ctx.config.compose.env_example);
    let (Ok(have), Ok(want)) = (std::fs::read_to_string(&env_file), std::fs::read_to_string(&example)) else {
        return Ok(()); // a dry run before the copy, or no example to compare with
    };
    let have = parse_env_file(&have);
    let missing: Vec<String> = parse_env_file(&want)
        .into_iter()
        .filter(|(key, value)| !value.is_empty() && have.get(key).is_none_or(|v| v.is_empty()))
        .map(|(key, _)| key)
        .collect();
    if !missing.is_empty() {
        bail!(
            "{} does not set {} (every variable {} sets is needed)\n  fix: add {} to {} (the example's values are development defaults), or delete {} to start again from the example",
            env_file.display(),
            missing.join(", "),
            example.display(),
            missing
                .iter()
                .map(|k| format!("`{k}=...`"))
                .collect::<Vec<_>>()
                .join(", "),
            env_file.display(),
            env_file.display()
        );
    }
    Ok(())
}

/// Creates the env file from the example on first use (dev only; prod must be written by a person).
pub fn ensure_env_file(ctx: &Ctx) -> Result<()> {
    let env_file = ctx.path(&ctx.config.compose.env_file);
    if env_file.exists() {
        return Ok(());
    }
    let example = ctx.path(&ctx.config.compose.env_example);
    ctx.say(&format!(
        "creating {} from {} (development defaults)",
        env_file.display(),
        example.display()
    ));
    if ctx.run.dry_run {
        return Ok(());
    }
    std::fs::copy(&example, &env_file)
        .with_context(|| format!("cannot copy {} to {}", example.display(), env_file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compose() -> Compose {
        Compose {
            project: "drydock".into(),
            files: vec![
                "/r/infra/compose/compose.yaml".into(),
                "/r/infra/compose/compose.dev.yaml".into(),
            ],
            env_file: Some("/r/.env".into()),
            env: vec![("DRYDOCK_POSTGRES_IMAGE".into(), "drydock/postgres:17".into())],
            profiles: vec![],
        }
    }

    #[test]
    fn argv_binds_project_files_and_env_file() {
        let sh = shell();
        let cmd = compose().cmd(cmd!(sh, "up -d --wait"));
        assert_eq!(
            cmd.argv(),
            [
                "docker",
                "compose",
                "-p",
                "drydock",
                "-f",
                "/r/infra/compose/compose.yaml",
                "-f",
                "/r/infra/compose/compose.dev.yaml",
                "--env-file",
                "/r/.env",
                "up",
                "-d",
                "--wait"
            ]
        );
        assert_eq!(
            cmd.env,
            vec![("DRYDOCK_POSTGRES_IMAGE".to_string(), "drydock/postgres:17".to_string())]
        );
    }

    #[test]
    fn watching_adds_the_watch_overlay_last_and_the_watch_profile() {
        let sh = shell();
        let cmd = compose().watching(Path::new("/r")).cmd(cmd!(sh, "watch --no-up"));
        assert_eq!(
            cmd.argv(),
            [
                "docker",
                "compose",
                "-p",
                "drydock",
                "-f",
                "/r/infra/compose/compose.yaml",
                "-f",
                "/r/infra/compose/compose.dev.yaml",
                "-f",
                "/r/infra/compose/compose.watch.yaml",
                "--env-file",
                "/r/.env",
                "--profile",
                "watch",
                "watch",
                "--no-up"
            ]
        );
    }

    #[test]
    fn prod_has_its_own_project() {
        assert_eq!(project_name("drydock", Env::Prod), "drydock-prod");
        assert_eq!(project_name("drydock", Env::Dev), "drydock");
    }
}
