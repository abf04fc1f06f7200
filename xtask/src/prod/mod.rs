//! The production domain: what `prod-*` commands share. Production differs from dev in what the xtask
//! guarantees before anything starts: the secret files exist, are not the example passwords and are readable
//! by the containers' non-root users; the release images exist; and API containers receive traffic only once
//! healthy.

pub mod audit;
pub mod compose;
pub mod containers;
pub mod engine_lock;
pub mod hooks;
pub mod lock;
pub mod lock_holder;
pub mod release;
pub mod remote;
pub mod rolling;
pub mod secrets;
pub mod state;
pub mod swarm;
pub mod swarm_registry;
pub mod swarm_setup;
pub mod swarm_stack;
pub mod tags;

use anyhow::Result;

use crate::compose::Compose;
use crate::config::Env;
use crate::context::Ctx;

/// The compose invocation for commands that address a running stack (health, shells, backups): for prod
/// it also carries the deployed image tags and the secrets-file variables the prod overlay needs.
pub fn stack_compose(ctx: &Ctx, env: Env) -> Result<Compose> {
    match env {
        Env::Dev => Compose::for_env(ctx, env),
        Env::Prod => compose::current_compose(ctx),
    }
}

/// The name of a deploy target: the compose project, or its Swarm stack `<project>-swarm`.
pub fn stack_name(ctx: &Ctx, swarm: bool) -> Result<String> {
    let project = Compose::for_env(ctx, Env::Prod)?.project;
    Ok(if swarm { format!("{project}-swarm") } else { project })
}
