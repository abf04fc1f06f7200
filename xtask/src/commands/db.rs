//! `db-migrate`, `db-seed`, `db-reset`, `db-psql`, `db-redis`, `db-mongo`.
//!
//! Shells are interactive (a TTY) when a terminal is attached and no arguments are given; with arguments
//! after `--` they run without a TTY and stream their output, so they work in scripts and CI:
//! `cargo xtask db-psql -- -c 'select 1'`.

use std::io::IsTerminal;

use anyhow::Result;
use clap::Args;

use crate::backup::{Engine, PgFacts, ask, plans, require_mongo};
use crate::compose::ensure_env_file;
use crate::config::Env;
use crate::context::Ctx;

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Which stack.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Env,
}

#[derive(Debug, Clone, Args)]
pub struct DbShellArgs {
    /// Which stack.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Env,
    /// Arguments for the client (after `--`); with them it runs non-interactively.
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Interactive only with a terminal and nothing to run.
fn tty(args: &[String]) -> bool {
    args.is_empty() && std::io::stdin().is_terminal()
}

/// A terminal session, or a one-off that still reads piped input (`echo 'select 1' | cargo xtask db-psql`).
fn shell(cmd: crate::process::Cmd, tty: bool) -> crate::process::Cmd {
    if tty {
        cmd.interactive()
    } else {
        cmd.stdin(crate::process::Input::Inherit)
    }
}

pub fn migrate(ctx: &Ctx, args: &DbArgs) -> Result<()> {
    if args.env == Env::Dev {
        ensure_env_file(ctx)?;
    }
    let compose = ctx.stack(args.env)?;
    ctx.run.run(&compose.cmd(["run", "--rm", "migrate"]))?;
    Ok(())
}

pub fn seed(ctx: &Ctx, args: &DbArgs) -> Result<()> {
    if args.env == Env::Dev {
        ensure_env_file(ctx)?;
    }
    let compose = ctx.stack(args.env)?;
    ctx.run.run(&compose.cmd(["run", "--rm", "migrate", "seed"]))?;
    Ok(())
}

pub fn reset(ctx: &Ctx, args: &DbArgs) -> Result<()> {
    let compose = ctx.stack(args.env)?;
    let service = Engine::Postgres.service(ctx);
    let facts = match ask(ctx, &compose, &service, &plans::pg_facts(&compose, &service))? {
        Some(text) => PgFacts::parse(&text)?,
        None => PgFacts::placeholder(),
    };
    ctx.confirm(&format!(
        "DROP database `{}` of service `{service}` (compose project `{}`) with all its data, recreate it empty and run the migrations (take a backup first: `cargo xtask backup-postgres`)",
        facts.target.db, compose.project
    ))?;
    for cmd in plans::pg_reset(&compose, &service, &facts.target) {
        ctx.run.run(&cmd)?;
    }
    ctx.run.run(&compose.cmd(["run", "--rm", "migrate"]))?;
    ctx.say(&format!("database `{}` recreated and migrated", facts.target.db));
    Ok(())
}

pub fn psql(ctx: &Ctx, args: &DbShellArgs) -> Result<()> {
    let compose = ctx.stack(args.env)?;
    let service = Engine::Postgres.service(ctx);
    let facts = match ask(ctx, &compose, &service, &plans::pg_facts(&compose, &service))? {
        Some(text) => PgFacts::parse(&text)?,
        None => PgFacts::placeholder(),
    };
    let tty = tty(&args.args);
    let cmd = plans::psql(&compose, &service, &facts.target, &args.args, tty);
    ctx.run.run(&shell(cmd, tty))?;
    Ok(())
}

pub fn redis(ctx: &Ctx, args: &DbShellArgs) -> Result<()> {
    let compose = ctx.stack(args.env)?;
    let service = Engine::Redis.service(ctx);
    let tty = tty(&args.args);
    let cmd = plans::redis_cli(&compose, &service, &args.args, tty);
    ctx.run.run(&shell(cmd, tty))?;
    Ok(())
}

pub fn mongo(ctx: &Ctx, args: &DbShellArgs) -> Result<()> {
    let compose = ctx.stack(args.env)?;
    require_mongo(ctx, &compose)?;
    let service = Engine::Mongodb.service(ctx);
    let tty = tty(&args.args);
    let cmd = plans::mongosh(&compose, &service, &args.args, tty);
    ctx.run.run(&shell(cmd, tty))?;
    Ok(())
}
