//! `cargo xtask prod-ps`: the production services with state, health and which API replicas get traffic, and
//! who holds the deploy lock; `--swarm`: the Swarm stack's services and tasks per node (`prod::swarm::swarm_ps`).

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use crate::context::Ctx;
use crate::flags::JsonFlag;
use crate::prod::compose::current_compose;
use crate::prod::containers::{LIVE_ALIAS, live_containers};
use crate::prod::{lock, swarm};
use crate::stack;
use crate::time::Timestamp;

#[derive(Debug, Clone, Args)]
pub struct ProdPsArgs {
    #[command(flatten)]
    pub json: JsonFlag,
    /// The Swarm stack (`prod-deploy --swarm`): its services, and each task with its node and state.
    #[arg(long)]
    pub swarm: bool,
}

impl ProdPsArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        if self.swarm {
            swarm::swarm_ps(ctx, self.json.json)?;
            if !self.json.json && !ctx.run.dry_run {
                print_lock(ctx, &crate::prod::stack_name(ctx, true)?, true);
            }
            return Ok(());
        }
        let compose = current_compose(ctx)?;
        let states = stack::services(ctx, &compose)?;
        let live = if ctx.run.dry_run {
            Vec::new()
        } else {
            live_containers(ctx, &compose.project)?
        };
        if self.json.json {
            let rows: Vec<Value> = states
                .iter()
                .map(|s| {
                    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert("live".into(), Value::Bool(live.iter().any(|n| n == &s.name)));
                    }
                    v
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else if states.is_empty() && !ctx.run.dry_run {
            println!("the production stack is not running (start it with `cargo xtask prod-up`)");
        } else {
            stack::print_states(&states);
            if !live.is_empty() {
                println!("\nreceiving traffic ({LIVE_ALIAS}): {}", live.join(", "));
            }
        }
        if !self.json.json && !ctx.run.dry_run {
            print_lock(ctx, &compose.project, false);
        }
        Ok(())
    }
}

/// Who holds the deploy lock of `target` (a compose project, or with `swarm` a Swarm stack), or that it is free.
fn print_lock(ctx: &Ctx, target: &str, swarm: bool) {
    match lock::holder_on_engine(ctx, target, swarm) {
        Some(h) => println!("deploy lock: held for {} by {}", h.age(Timestamp::now()), h.describe()),
        None => println!("deploy lock: free"),
    }
}
