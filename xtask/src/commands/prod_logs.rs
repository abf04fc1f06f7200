//! `cargo xtask prod-logs`: the production stack's logs.

use anyhow::Result;
use clap::Args;

use crate::context::Ctx;
use crate::flags::LogsArgs;
use crate::prod::compose::current_compose;
use crate::stack;

#[derive(Debug, Clone, Args)]
pub struct ProdLogsArgs {
    #[command(flatten)]
    pub logs: LogsArgs,
}

impl ProdLogsArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        stack::logs_of(ctx, &current_compose(ctx)?.with_profiles(&["*"]), &self.logs)
    }
}
