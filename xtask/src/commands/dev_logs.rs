//! `cargo xtask dev-logs`: the dev stack's logs.

use anyhow::Result;
use clap::Args;

use crate::compose::Compose;
use crate::config::Env;
use crate::context::Ctx;
use crate::flags::LogsArgs;
use crate::stack;

#[derive(Debug, Clone, Args)]
pub struct DevLogsArgs {
    #[command(flatten)]
    pub logs: LogsArgs,
}

impl DevLogsArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        stack::logs_of(ctx, &Compose::for_env(ctx, Env::Dev)?, &self.logs)
    }
}
