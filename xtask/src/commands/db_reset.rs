//! `cargo xtask db-reset`: drop and recreate the application database, then migrate (asks first).

use anyhow::Result;
use clap::Args;

use crate::backup::{Engine, PgFacts, ask, plans};
use crate::cmd::{cmd, shell};
use crate::config::Env;
use crate::context::Ctx;

#[derive(Debug, Clone, Args)]
pub struct DbResetArgs {
    /// Which stack.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Env,
}

impl DbResetArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let compose = crate::prod::stack_compose(ctx, self.env)?;
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
        let sh = shell();
        ctx.run.run(&compose.cmd(cmd!(sh, "run --rm migrate")))?;
        ctx.say(&format!("database `{}` recreated and migrated", facts.target.db));
        Ok(())
    }
}
