//! The command-line interface: clap derive types, with doc comments as the help text.
//!
//! `cargo xtask --help` lists the commands grouped as in the design (`GROUPS`); a test checks that every
//! command sits in exactly one group, so a new command cannot go missing from the help.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{CONFIG_PATH, Env};

/// drydock's operations CLI: develop, test, back up and ship the stack with typed commands.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask", version, disable_help_subcommand = true)]
#[command(after_help = "Every external command is echoed before it runs; --dry-run prints them and runs nothing.")]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    // environment
    /// Install and start what the stack needs (Docker Engine, Compose v2, image tools) where it safely can.
    Setup,
    /// Check every prerequisite and print a fix for each problem.
    Doctor(JsonFlag),
    /// Regenerate Makefile.toml and README's command table from this CLI (--check: fail if they are stale).
    Codegen(CheckFlag),
    /// Print a shell completion script (e.g. `cargo xtask completions bash > ~/.local/share/bash-completion/completions/xtask`).
    Completions(CompletionsArgs),

    // development
    /// Build what is missing, start the dev stack, wait until every service is healthy, print the URLs.
    DevUp(DevUpArgs),
    /// Stop and remove the dev stack's containers and networks (volumes only with --volumes).
    DevDown(DownArgs),
    /// Restart dev services (all, or those named) and wait until they are healthy.
    DevRestart(ServicesArg),
    /// List the dev stack's services with state and health.
    DevPs(JsonFlag),
    /// Show the dev stack's logs (all services, or those named).
    DevLogs(LogsArgs),
    /// Open a shell (or run a command) in a dev service; default: the API.
    DevShell(ShellArgs),
    /// Rebuild the dev stack's images (all, or those named).
    DevBuild(BuildArgs),

    // database
    /// Apply the database migrations (the backend's one-shot `migrate` service).
    DbMigrate(crate::commands::db::DbArgs),
    /// Load the demo data (idempotent; `migrate seed`).
    DbSeed(crate::commands::db::DbArgs),
    /// Drop and recreate the application database, then migrate (asks first, naming it; or --yes).
    DbReset(crate::commands::db::DbArgs),
    /// PostgreSQL shell on the application database; with args after `--` runs them (`-- -c 'select 1'`).
    DbPsql(crate::commands::db::DbShellArgs),
    /// Redis shell (password from the container); with args after `--` runs them (`-- dbsize`).
    DbRedis(crate::commands::db::DbShellArgs),
    /// MongoDB shell (mongosh) when the stack has MongoDB; with args after `--` runs them.
    DbMongo(crate::commands::db::DbShellArgs),

    // quality
    /// Security gates: hadolint, compose config + compose-lint, shellcheck, promtool, actionlint + yamllint
    /// (CI files), no secrets in images.
    Lint(crate::commands::lint::LintArgs),
    /// Run the backend and frontend test suites inside containers (backend against real PostgreSQL and Redis).
    Test(TestArgs),
    /// Bring the stack up and drive a real headless Chromium through the UI, headers and caching rules.
    TestE2e(E2eArgs),
    /// Apply the automatic lint fixes (clippy suggestions, rustfmt).
    LintFix,
    /// Benchmarks (reports, not tests): `bench api` drives the API with wrk over loopback.
    Bench(BenchCmd),
    /// Format the Rust workspace (--check: only report).
    Fmt(CheckFlag),
    /// Run everything CI checks, step by step, and print `N passed, N failed`.
    Ci(CiArgs),

    // images
    /// Build the release images: tag sha-<commit> (+ --tag staging|latest), check OCI labels, record sizes.
    Build(crate::commands::release::ReleaseBuildArgs),
    /// Push the release images to a registry (`--registry host[:port]`).
    Push(crate::commands::release::PushArgs),
    /// List the stack's images and their sizes, or build the offline base images.
    Images(ImagesArgs),

    // production
    /// Start the hardened production stack (secrets checked, release images, optional monitoring).
    ProdUp(crate::commands::prod::ProdUpArgs),
    /// Stop the production stack (asks first; volumes only with --volumes).
    ProdDown(DownArgs),
    /// List the production stack's services with state, health and which API replicas get traffic.
    ProdPs(JsonFlag),
    /// Show the production stack's logs (all services, or those named).
    ProdLogs(LogsArgs),
    /// Scale a stateless production service (api, frontend); new API replicas get traffic once healthy.
    ProdScale(crate::commands::prod::ProdScaleArgs),
    /// Roll the API to a new image with zero downtime; rolls back by itself if it never becomes healthy.
    ProdDeploy(crate::commands::deploy::ProdDeployArgs),
    /// Return the API to the image it ran before the last deploy (zero downtime).
    ProdRollback(crate::commands::deploy::ProdRollbackArgs),

    // operations
    /// Show each service's state and the API's readiness (exit 1 when something is unhealthy).
    Health(HealthArgs),
    /// Remove this project's containers, networks and dangling images (volumes only with --volumes).
    Clean(DownArgs),
    /// Back up PostgreSQL (pg_dump -Fc + roles) to backups/postgres/, with a manifest.
    BackupPostgres(crate::commands::backup::BackupArgs),
    /// Back up MongoDB (mongodump --archive --gzip) to backups/mongo/, with a manifest.
    BackupMongodb(crate::commands::backup::BackupArgs),
    /// Back up Redis (a consistent RDB snapshot) to backups/redis/, with a manifest.
    BackupRedis(crate::commands::backup::BackupArgs),
    /// Back up every database of the stack; fails if any backup failed.
    BackupAll(crate::commands::backup::BackupArgs),
    /// Restore PostgreSQL from a backup (checksum first, asks, safety backup, all-or-nothing).
    RestorePostgres(crate::commands::restore::RestoreArgs),
    /// Restore MongoDB from a backup (checksum first, asks, safety backup).
    RestoreMongodb(crate::commands::restore::RestoreArgs),
    /// Restore Redis from a backup (checksum first, asks, safety backup, server stopped meanwhile).
    RestoreRedis(crate::commands::restore::RestoreArgs),
    /// List, verify (checksum + test restore), prune or benchmark the backups.
    Backups(crate::commands::backups::BackupsArgs),
}

/// The help's command groups, in order.
pub const GROUPS: &[(&str, &[&str])] = &[
    ("Environment", &["setup", "doctor", "completions", "codegen"]),
    (
        "Development",
        &[
            "dev-up",
            "dev-down",
            "dev-restart",
            "dev-ps",
            "dev-logs",
            "dev-shell",
            "dev-build",
        ],
    ),
    (
        "Database",
        &["db-migrate", "db-seed", "db-reset", "db-psql", "db-mongo", "db-redis"],
    ),
    (
        "Quality",
        &["test", "test-e2e", "fmt", "lint", "lint-fix", "bench", "ci"],
    ),
    ("Images", &["build", "push", "images"]),
    (
        "Production",
        &[
            "prod-up",
            "prod-down",
            "prod-ps",
            "prod-logs",
            "prod-scale",
            "prod-deploy",
            "prod-rollback",
        ],
    ),
    (
        "Operations",
        &[
            "health",
            "backup-postgres",
            "backup-mongodb",
            "backup-redis",
            "backup-all",
            "restore-postgres",
            "restore-mongodb",
            "restore-redis",
            "backups",
            "clean",
        ],
    ),
];

#[derive(Debug, Clone, Args)]
pub struct JsonFlag {
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CheckFlag {
    /// Change nothing; fail if something would change.
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to generate for.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Args)]
pub struct DevUpArgs {
    /// Rebuild our images even when they exist.
    #[arg(long)]
    pub build: bool,
    /// Seconds to wait for every service to become healthy.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u32,
    /// Hot reload: also start Vite's dev server, then watch the sources (API rebuilt and restarted on a
    /// backend change, frontend changes synced to Vite) until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    /// Also delete the named volumes (all database data); asks first unless --yes.
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ServicesArg {
    /// Compose service names (default: all).
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Keep following new output.
    #[arg(short, long)]
    pub follow: bool,
    /// Lines to show from the end of each service's log.
    #[arg(long, default_value = "200", value_name = "N|all", value_parser = parse_tail)]
    pub tail: String,
    /// Compose service names (default: all).
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ShellArgs {
    /// The service to enter.
    #[arg(default_value = "api")]
    pub service: String,
    /// Command to run instead of a shell (after `--`).
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Build without the layer cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Compose service names (default: all with a build section).
    pub services: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct TestArgs {
    /// Run one suite only.
    #[arg(long, value_parser = ["backend", "frontend"])]
    pub suite: Option<String>,
    /// Arguments for that suite's test runner (after `--`; needs --suite).
    #[arg(last = true, requires = "suite")]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct BenchCmd {
    #[command(subcommand)]
    pub target: BenchTarget,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchTarget {
    /// Requests/s and p50/p99 of a cached read and a write, on a throwaway stack (the backup benchmark is
    /// `cargo xtask backups bench`).
    Api(crate::commands::bench_api::ApiBenchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct E2eArgs {
    /// Run only the browser tests whose name contains this text.
    #[arg(long)]
    pub grep: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct CiArgs {
    /// Leave the stack running after the checks (for debugging a failure).
    #[arg(long)]
    pub keep_stack: bool,
}

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ImagesArgs {
    #[command(subcommand)]
    pub action: Option<ImagesAction>,
    /// Print machine-readable JSON on stdout (for the listing).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ImagesAction {
    /// Build (or rebuild) the offline base images from Debian trixie packages.
    BuildOffline {
        /// Rebuild images that already exist (the Debian base too).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Which stack to check.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Env,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `--tail`: a number of lines or `all`. Checked by clap, so a bad value is a usage error (exit 2).
fn parse_tail(value: &str) -> Result<String, String> {
    if value == "all" || value.parse::<u32>().is_ok() {
        Ok(value.to_string())
    } else {
        Err("not a number of lines; use a number such as 100, or `all`".to_string())
    }
}

/// The clap command with the grouped command list in its help.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    let mut listing = String::new();
    for (group, names) in GROUPS {
        listing.push_str(&format!("{group}:\n"));
        for name in *names {
            let about = cmd
                .find_subcommand(name)
                .and_then(|s| s.get_about())
                .map(|a| a.to_string())
                .unwrap_or_default();
            listing.push_str(&format!("  {name:<13} {about}\n"));
        }
        listing.push('\n');
    }
    let template =
        format!("{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{listing}Options:\n{{options}}{{after-help}}");
    cmd.help_template(template)
}

/// Parses the process arguments (exits with status 2 on usage errors, 0 for --help/--version).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        command().debug_assert();
    }

    #[test]
    fn every_command_is_in_exactly_one_group() {
        let cmd = Cli::command();
        let mut grouped: Vec<&str> = GROUPS.iter().flat_map(|(_, names)| names.iter().copied()).collect();
        let mut declared: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
        grouped.sort_unstable();
        declared.sort_unstable();
        let before = grouped.len();
        grouped.dedup();
        assert_eq!(before, grouped.len(), "a command is listed in two groups");
        assert_eq!(grouped, declared, "GROUPS and the declared commands differ");
    }

    #[test]
    fn help_lists_groups_with_descriptions() {
        let help = command().render_help().to_string();
        assert!(help.contains("Development:"), "{help}");
        assert!(help.contains("dev-up        Build what is missing"), "{help}");
        assert!(help.contains("--dry-run"), "{help}");
    }

    #[test]
    fn unknown_command_suggests_the_nearest() {
        let err = command().try_get_matches_from(["xtask", "dev-upp"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("dev-up"), "{err}");
    }

    #[test]
    fn global_flags_work_after_the_command() {
        let m = command()
            .try_get_matches_from(["xtask", "dev-down", "--volumes", "--yes", "--dry-run"])
            .unwrap();
        let cli = Cli::from_arg_matches(&m).unwrap();
        assert!(cli.global.yes && cli.global.dry_run);
        assert!(matches!(
            cli.command,
            Some(Command::DevDown(DownArgs { volumes: true }))
        ));
    }

    #[test]
    fn suites_offered_are_the_suites_that_exist() {
        let cmd = Cli::command();
        let test = cmd.find_subcommand("test").unwrap();
        let suite = test.get_arguments().find(|a| a.get_id() == "suite").unwrap();
        let offered: Vec<String> = suite
            .get_possible_values()
            .iter()
            .map(|v| v.get_name().to_string())
            .collect();
        let existing: Vec<String> = crate::commands::test::SUITES
            .iter()
            .map(|(name, _)| name.to_string())
            .collect();
        assert_eq!(offered, existing);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            &["xtask", "dev-logs", "--tail", "lots"][..],
            &["xtask", "prod-logs", "--tail", "1e3"],
            &["xtask", "test", "--suite", "nosuch"],
            &["xtask", "test", "--", "--nocapture"],
            &["xtask", "images", "--json", "build-offline"],
        ] {
            let err = command().try_get_matches_from(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}: {err}");
        }
        for argv in [
            &["xtask", "dev-logs", "--tail", "all"][..],
            &["xtask", "dev-logs", "--tail", "50", "api"],
            &["xtask", "test", "--suite", "backend", "--", "--nocapture"],
            &["xtask", "images", "--json"],
        ] {
            command().try_get_matches_from(argv).unwrap();
        }
    }

    #[test]
    fn verbose_and_quiet_conflict() {
        let err = command()
            .try_get_matches_from(["xtask", "-v", "-q", "dev-ps"])
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
