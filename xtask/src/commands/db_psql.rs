//! `cargo xtask db-psql`: a PostgreSQL shell on the application database, or a one-off with args after `--`.

use anyhow::Result;
use clap::Args;

use crate::backup::{self, Engine, PgFacts, ask, plans};
use crate::config::Env;
use crate::context::Ctx;

#[derive(Debug, Clone, Args)]
pub struct DbPsqlArgs {
    /// Which stack.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Env,
    /// Arguments for the client (after `--`); with them it runs non-interactively.
    #[arg(last = true)]
    pub args: Vec<String>,
}

impl DbPsqlArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let compose = crate::prod::stack_compose(ctx, self.env)?;
        let service = Engine::Postgres.service(ctx);
        let facts = match ask(ctx, &compose, &service, &plans::pg_facts(&compose, &service))? {
            Some(text) => PgFacts::parse(&text)?,
            None => PgFacts::placeholder(),
        };
        let tty = backup::tty(&self.args);
        let cmd = plans::psql(&compose, &service, &facts.target, &self.args, tty);
        ctx.run.run(&backup::shell(cmd, tty))?;
        Ok(())
    }
}
