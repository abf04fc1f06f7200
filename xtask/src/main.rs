//! `cargo xtask`: drydock's typed operations CLI. See `cargo xtask --help` and DESIGN.md.

mod backup;
#[cfg(test)]
mod ci_files;
mod cli;
mod commands;
mod compose;
mod config;
mod context;
mod http;
mod images;
mod process;
mod provision;
mod stack;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;

use crate::cli::Command;
use crate::context::Ctx;
use crate::process::Style;

fn main() -> ExitCode {
    let cli = cli::parse();
    let Some(command) = cli.command else {
        // No command: the grouped list, like `--help`.
        let _ = cli::command().print_help();
        return ExitCode::SUCCESS;
    };
    let started = Instant::now();
    let quiet = cli.global.quiet;
    match run(&cli.global, command) {
        Ok(()) => {
            if !quiet && started.elapsed().as_secs() >= 10 {
                eprintln!(
                    "{}",
                    Style::stderr().dim(&format!("done in {:.0} s", started.elapsed().as_secs_f64()))
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{} {err:#}", Style::stderr().red("error:"));
            ExitCode::FAILURE
        }
    }
}

fn run(global: &cli::Global, command: Command) -> Result<()> {
    if let Command::Completions(args) = &command {
        // Needs no stack description: works outside a complete checkout too.
        clap_complete::generate(args.shell, &mut cli::command(), "cargo-xtask", &mut std::io::stdout());
        return Ok(());
    }
    if let Command::Codegen(args) = &command {
        return commands::codegen::run(&context::project_root(), args.check, global.quiet);
    }
    let ctx = Ctx::new(global)?;
    match command {
        Command::Setup => provision::setup(&ctx),
        Command::Doctor(a) => commands::doctor::run(&ctx, a.json),
        Command::Completions(_) | Command::Codegen(_) => unreachable!("handled above"),
        Command::DevUp(a) => commands::dev::up(&ctx, &a),
        Command::DevDown(a) => commands::dev::down(&ctx, &a),
        Command::DevRestart(a) => commands::dev::restart(&ctx, &a),
        Command::DevPs(a) => commands::dev::ps(&ctx, a.json),
        Command::DevLogs(a) => commands::dev::logs(&ctx, &a),
        Command::DevShell(a) => commands::dev::shell(&ctx, &a),
        Command::DevBuild(a) => commands::dev::build(&ctx, &a),
        Command::Ci(a) => commands::ci::run(&ctx, &a),
        Command::Test(a) => commands::test::run(&ctx, &a),
        Command::TestE2e(a) => commands::e2e::run(&ctx, &a),
        Command::LintFix => commands::lint_fix::run(&ctx),
        Command::Bench(b) => match &b.target {
            cli::BenchTarget::Api(a) => commands::bench_api::run(&ctx, a),
        },
        Command::Fmt(a) => commands::fmt::run(&ctx, a.check),
        Command::Clean(a) => commands::clean::run(&ctx, a.volumes),
        Command::Images(a) => commands::images::run(&ctx, &a),
        Command::Build(a) => commands::release::build(&ctx, &a),
        Command::Push(a) => commands::release::push(&ctx, &a),
        Command::Lint(a) => commands::lint::run(&ctx, &a),
        Command::ProdUp(a) => commands::prod::up(&ctx, &a),
        Command::ProdDown(a) => commands::prod::down(&ctx, &a),
        Command::ProdPs(a) => commands::prod::ps(&ctx, a.json),
        Command::ProdLogs(a) => commands::prod::logs(&ctx, &a),
        Command::ProdScale(a) => commands::prod::scale(&ctx, &a),
        Command::ProdDeploy(a) => commands::deploy::deploy(&ctx, &a),
        Command::ProdRollback(a) => commands::deploy::rollback(&ctx, &a),
        Command::Health(a) => commands::health::run(&ctx, a.env, a.json),
        Command::DbMigrate(a) => commands::db::migrate(&ctx, &a),
        Command::DbSeed(a) => commands::db::seed(&ctx, &a),
        Command::DbReset(a) => commands::db::reset(&ctx, &a),
        Command::DbPsql(a) => commands::db::psql(&ctx, &a),
        Command::DbRedis(a) => commands::db::redis(&ctx, &a),
        Command::DbMongo(a) => commands::db::mongo(&ctx, &a),
        Command::BackupPostgres(a) => commands::backup::run(&ctx, backup::Engine::Postgres, &a),
        Command::BackupRedis(a) => commands::backup::run(&ctx, backup::Engine::Redis, &a),
        Command::BackupMongodb(a) => commands::backup::run(&ctx, backup::Engine::Mongodb, &a),
        Command::BackupAll(a) => commands::backup::all(&ctx, &a),
        Command::RestorePostgres(a) => commands::restore::run(&ctx, backup::Engine::Postgres, &a),
        Command::RestoreRedis(a) => commands::restore::run(&ctx, backup::Engine::Redis, &a),
        Command::RestoreMongodb(a) => commands::restore::run(&ctx, backup::Engine::Mongodb, &a),
        Command::Backups(a) => commands::backups::run(&ctx, &a),
    }
}
