//! The command-line interface: clap derive types, with doc comments as the help text.
//!
//! `cargo xtask --help` lists the commands grouped as in the design (`GROUPS`); a test checks that every
//! command sits in exactly one group, so a new command cannot go missing from the help.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use anyhow::Result;

use crate::commands;
use crate::commands::codegen::Entry;
use crate::context::{Ctx, Global, project_root};

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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install and start what the stack needs (Docker Engine, Compose v2, image tools) where it safely can.
    Setup(commands::setup::SetupArgs),
    /// Check every prerequisite and print a fix for each problem.
    Doctor(commands::doctor::DoctorArgs),
    /// Regenerate Makefile.toml and README's command table from this CLI (--check: fail if they are stale).
    Codegen(commands::codegen::CodegenArgs),
    /// Print a shell completion script (e.g. `cargo xtask completions bash > ~/.local/share/bash-completion/completions/xtask`).
    Completions(commands::completions::CompletionsArgs),
    /// Build what is missing, start the dev stack, wait until every service is healthy, print the URLs.
    DevUp(commands::dev_up::DevUpArgs),
    /// Stop and remove the dev stack's containers and networks (volumes only with --volumes).
    DevDown(commands::dev_down::DevDownArgs),
    /// Restart dev services (all, or those named) and wait until they are healthy.
    DevRestart(commands::dev_restart::DevRestartArgs),
    /// List the dev stack's services with state and health.
    DevPs(commands::dev_ps::DevPsArgs),
    /// Show the dev stack's logs (all services, or those named).
    DevLogs(commands::dev_logs::DevLogsArgs),
    /// Open a shell (or run a command) in a dev service; default: the API.
    DevShell(commands::dev_shell::DevShellArgs),
    /// Rebuild the dev stack's images (all, or those named).
    DevBuild(commands::dev_build::DevBuildArgs),
    /// Apply the database migrations (the backend's one-shot `migrate` service).
    DbMigrate(commands::db_migrate::DbMigrateArgs),
    /// Load the demo data (idempotent; `migrate seed`).
    DbSeed(commands::db_seed::DbSeedArgs),
    /// Drop and recreate the application database, then migrate (asks first, naming it; or --yes).
    DbReset(commands::db_reset::DbResetArgs),
    /// PostgreSQL shell on the application database; with args after `--` runs them (`-- -c 'select 1'`).
    DbPsql(commands::db_psql::DbPsqlArgs),
    /// Redis shell (password from the container); with args after `--` runs them (`-- dbsize`).
    DbRedis(commands::db_redis::DbRedisArgs),
    /// MongoDB shell (mongosh) when the stack has MongoDB; with args after `--` runs them.
    DbMongo(commands::db_mongo::DbMongoArgs),
    /// Security gates: hadolint, compose config + compose-lint, shellcheck, promtool, actionlint + yamllint
    /// (CI files), no secrets in images.
    Lint(commands::lint::LintArgs),
    /// Run the backend and frontend test suites inside containers (backend against real PostgreSQL and Redis).
    Test(commands::test::TestArgs),
    /// Bring the stack up and drive a real headless Chromium through the UI, headers and caching rules.
    TestE2e(commands::test_e2e::TestE2eArgs),
    /// Apply the automatic lint fixes (clippy suggestions, rustfmt).
    LintFix(commands::lint_fix::LintFixArgs),
    /// Benchmarks (reports, not tests): `bench api` drives the API with wrk over loopback.
    Bench(commands::bench::BenchArgs),
    /// Format the Rust workspace (--check: only report).
    Fmt(commands::fmt::FmtArgs),
    /// Run everything CI checks, step by step, and print `N passed, N failed`.
    Ci(commands::ci::CiArgs),
    /// Build the release images: tag sha-<commit> (+ --tag staging|latest), check OCI labels, record sizes.
    Build(commands::build::BuildArgs),
    /// Push the release images to a registry (`--registry host[:port]`).
    Push(commands::push::PushArgs),
    /// List the stack's images and their sizes, or build the offline base images.
    Images(commands::images::ImagesArgs),
    /// Start the hardened production stack (secrets checked, release images, optional monitoring).
    ProdUp(commands::prod_up::ProdUpArgs),
    /// Stop the production stack (asks first; volumes only with --volumes).
    ProdDown(commands::prod_down::ProdDownArgs),
    /// List the production stack's services with state, health and which API replicas get traffic.
    ProdPs(commands::prod_ps::ProdPsArgs),
    /// Show the production stack's logs (all services, or those named).
    ProdLogs(commands::prod_logs::ProdLogsArgs),
    /// Scale a stateless production service (api, frontend); new API replicas get traffic once healthy.
    ProdScale(commands::prod_scale::ProdScaleArgs),
    /// Roll the API to a new image with zero downtime; rolls back by itself if it never becomes healthy.
    ProdDeploy(commands::prod_deploy::ProdDeployArgs),
    /// Return the API to the image it ran before the last deploy, or `--to <tag>` (zero downtime).
    ProdRollback(commands::prod_rollback::ProdRollbackArgs),
    /// What happened to a production target (who, where, what, result) and the API versions it ran, with their images.
    ProdHistory(commands::prod_history::ProdHistoryArgs),
    /// Run a one-off command in a production service (`-- <cmd>`): in its running container, else in a fresh one of its image; audited.
    ProdExec(commands::prod_exec::ProdExecArgs),
    /// Maintenance mode at the edge: `on` answers 503 with a page (health checks pass), `off` serves again.
    ProdMaintenance(commands::prod_maintenance::ProdMaintenanceArgs),
    /// Make a Docker Swarm from SSH hosts (managers, workers) and label the node the databases live on.
    SwarmSetup(commands::swarm_setup::SwarmSetupArgs),
    /// Show each service's state and the API's readiness (exit 1 when something is unhealthy).
    Health(commands::health::HealthArgs),
    /// Remove this project's containers, networks and dangling images (volumes only with --volumes).
    Clean(commands::clean::CleanArgs),
    /// Back up PostgreSQL (pg_dump -Fc + roles) to backups/postgres/, with a manifest.
    BackupPostgres(commands::backup_postgres::BackupPostgresArgs),
    /// Back up MongoDB (mongodump --archive --gzip) to backups/mongo/, with a manifest.
    BackupMongodb(commands::backup_mongodb::BackupMongodbArgs),
    /// Back up Redis (a consistent RDB snapshot) to backups/redis/, with a manifest.
    BackupRedis(commands::backup_redis::BackupRedisArgs),
    /// Back up every database of the stack; fails if any backup failed.
    BackupAll(commands::backup_all::BackupAllArgs),
    /// Restore PostgreSQL from a backup (checksum first, asks, safety backup, all-or-nothing), or to a point in time (--to-time).
    RestorePostgres(commands::restore_postgres::RestorePostgresArgs),
    /// Restore MongoDB from a backup (checksum first, asks, safety backup).
    RestoreMongodb(commands::restore_mongodb::RestoreMongodbArgs),
    /// Restore Redis from a backup (checksum first, asks, safety backup, server stopped meanwhile).
    RestoreRedis(commands::restore_redis::RestoreRedisArgs),
    /// List, verify (checksum + test restore), prune, push off-site, benchmark or schedule the backups; `base`: a PostgreSQL base backup.
    Backups(commands::backups::BackupsArgs),
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
            "prod-history",
            "prod-maintenance",
            "prod-exec",
            "swarm-setup",
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

/// The clap command with the grouped command list in its help.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    // Names line up however long the longest is (`backup-postgres` and `restore-postgres` included).
    let width = GROUPS
        .iter()
        .flat_map(|(_, names)| names.iter())
        .map(|n| n.len())
        .max()
        .unwrap_or(0);
    let mut listing = String::new();
    for (group, names) in GROUPS {
        listing.push_str(&format!("{group}:\n"));
        for name in *names {
            let about = cmd
                .find_subcommand(name)
                .and_then(|s| s.get_about())
                .map(|a| a.to_string())
                .unwrap_or_default();
            listing.push_str(&format!("  {name:<width$}  {about}\n"));
        }
        listing.push('\n');
    }
    let template =
        format!("{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{listing}Options:\n{{options}}{{after-help}}");
    cmd.help_template(template)
}

/// (group, command, one-line description) for every command, in help order: what codegen writes.
pub fn listing() -> Vec<Entry> {
    let cmd = Cli::command();
    GROUPS
        .iter()
        .flat_map(|(group, names)| names.iter().map(move |name| (*group, *name)))
        .map(|(group, name)| {
            let about = cmd
                .find_subcommand(name)
                .and_then(|s| s.get_about())
                .map(|a| a.to_string())
                .unwrap_or_default();
            // The help's first sentence is the one-liner; examples in parentheses stay in --help.
            let short = about
                .split(" (e.g.")
                .next()
                .unwrap_or(&about)
                .trim_end_matches('.')
                .to_string();
            (group, name, short)
        })
        .collect()
}

/// Runs a parsed command: the ones that need no stack description first, then every other with a [`Ctx`].
pub fn run(global: &Global, command: Command) -> Result<()> {
    match command {
        Command::Completions(args) => return args.run(self::command()),
        Command::Codegen(args) => return args.run(&project_root(), global.quiet, &listing()),
        _ => {}
    }
    let ctx = Ctx::new(global)?;
    match command {
        Command::Completions(_) | Command::Codegen(_) => unreachable!("handled above"),
        Command::Setup(args) => args.run(&ctx),
        Command::Doctor(args) => args.run(&ctx),
        Command::DevUp(args) => args.run(&ctx),
        Command::DevDown(args) => args.run(&ctx),
        Command::DevRestart(args) => args.run(&ctx),
        Command::DevPs(args) => args.run(&ctx),
        Command::DevLogs(args) => args.run(&ctx),
        Command::DevShell(args) => args.run(&ctx),
        Command::DevBuild(args) => args.run(&ctx),
        Command::DbMigrate(args) => args.run(&ctx),
        Command::DbSeed(args) => args.run(&ctx),
        Command::DbReset(args) => args.run(&ctx),
        Command::DbPsql(args) => args.run(&ctx),
        Command::DbRedis(args) => args.run(&ctx),
        Command::DbMongo(args) => args.run(&ctx),
        Command::Lint(args) => args.run(&ctx),
        Command::Test(args) => args.run(&ctx),
        Command::TestE2e(args) => args.run(&ctx),
        Command::LintFix(args) => args.run(&ctx),
        Command::Bench(args) => args.run(&ctx),
        Command::Fmt(args) => args.run(&ctx),
        Command::Ci(args) => args.run(&ctx),
        Command::Build(args) => args.run(&ctx),
        Command::Push(args) => args.run(&ctx),
        Command::Images(args) => args.run(&ctx),
        Command::ProdUp(args) => args.run(&ctx),
        Command::ProdDown(args) => args.run(&ctx),
        Command::ProdPs(args) => args.run(&ctx),
        Command::ProdLogs(args) => args.run(&ctx),
        Command::ProdScale(args) => args.run(&ctx),
        Command::SwarmSetup(args) => args.run(&ctx),
        Command::ProdDeploy(args) => args.run(&ctx),
        Command::ProdRollback(args) => args.run(&ctx),
        Command::ProdHistory(args) => args.run(&ctx),
        Command::ProdMaintenance(args) => args.run(&ctx),
        Command::ProdExec(args) => args.run(&ctx),
        Command::Health(args) => args.run(&ctx),
        Command::Clean(args) => args.run(&ctx),
        Command::BackupPostgres(args) => args.run(&ctx),
        Command::BackupMongodb(args) => args.run(&ctx),
        Command::BackupRedis(args) => args.run(&ctx),
        Command::BackupAll(args) => args.run(&ctx),
        Command::RestorePostgres(args) => args.run(&ctx),
        Command::RestoreMongodb(args) => args.run(&ctx),
        Command::RestoreRedis(args) => args.run(&ctx),
        Command::Backups(args) => args.run(&ctx),
    }
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
        // Every description starts in the same column, however long the command's name.
        let column = |name: &str| {
            let line = help.lines().find(|l| l.starts_with(&format!("  {name} "))).unwrap();
            line.len() - line[2 + name.len()..].trim_start().len()
        };
        assert_eq!(column("dev-up"), column("restore-postgres"), "{help}");
        assert_eq!(column("ci"), column("backup-postgres"), "{help}");
        assert!(help.contains("Build what is missing"), "{help}");
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
            Some(Command::DevDown(ref a)) if a.volumes.volumes
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
        let existing: Vec<String> = commands::test::SUITES
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
