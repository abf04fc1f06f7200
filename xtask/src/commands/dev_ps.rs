//! `cargo xtask dev-ps`: the dev stack's services with state and health.

use anyhow::Result;
use clap::Args;

use crate::compose::Compose;
use crate::config::Env;
use crate::context::Ctx;
use crate::flags::JsonFlag;
use crate::stack;

#[derive(Debug, Clone, Args)]
pub struct DevPsArgs {
    #[command(flatten)]
    pub json: JsonFlag,
}

impl DevPsArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let compose = Compose::for_env(ctx, Env::Dev)?;
        let states = stack::services(ctx, &compose)?;
        if self.json.json {
            println!("{}", serde_json::to_string_pretty(&states)?);
        } else if states.is_empty() && !ctx.run.dry_run {
            println!("the dev stack is not running (start it with `cargo xtask dev-up`)");
        } else {
            stack::print_states(&states);
        }
        Ok(())
    }
}
