//! `cargo xtask swarm-setup`: a Docker Swarm from SSH hosts, the database node labelled (the work is
//! `prod::swarm_setup`).

use anyhow::Result;
use clap::Args;

use crate::context::Ctx;
use crate::prod::swarm_setup;

#[derive(Debug, Clone, Args)]
pub struct SwarmSetupArgs {
    /// A manager: `ssh://user@host[:port]` or a `[hosts.<name>]` of infra/stack.toml (repeatable; the first
    /// creates the swarm when no host is in one yet).
    #[arg(long = "manager", value_name = "HOST", required = true)]
    pub managers: Vec<String>,
    /// A worker, as for --manager (repeatable).
    #[arg(long = "worker", value_name = "HOST")]
    pub workers: Vec<String>,
    /// The host the databases are pinned to (label drydock.db=true): one of the managers or workers.
    #[arg(long, value_name = "HOST")]
    pub db_node: String,
    /// The network interface every node advertises to the others (e.g. `eth1` for a private network);
    /// default: the one Docker picks.
    #[arg(long, value_name = "INTERFACE")]
    pub advertise_addr: Option<String>,
}

impl SwarmSetupArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        swarm_setup::setup(
            ctx,
            &self.managers,
            &self.workers,
            &self.db_node,
            self.advertise_addr.as_deref(),
        )
    }
}
