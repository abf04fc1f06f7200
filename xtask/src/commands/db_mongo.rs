//! `cargo xtask db-mongo`: a MongoDB shell (mongosh) when the stack has MongoDB.

use anyhow::Result;
use clap::Args;

use crate::backup::{self, Engine, plans, require_mongo};
use crate::config::Env;
use crate::context::Ctx;

#[derive(Debug, Clone, Args)]
pub struct DbMongoArgs {
    /// Which stack.
    #[arg(long, value_enum, default_value = "dev")]
    pub env: Env,
    /// Arguments for the client (after `--`); with them it runs non-interactively.
    #[arg(last = true)]
    pub args: Vec<String>,
}

impl DbMongoArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let compose = crate::prod::stack_compose(ctx, self.env)?;
        require_mongo(ctx, &compose)?;
        let service = Engine::Mongodb.service(ctx);
        let tty = backup::tty(&self.args);
        let cmd = plans::mongosh(&compose, &service, &self.args, tty);
        ctx.run.run(&backup::shell(cmd, tty))?;
        Ok(())
    }
}
