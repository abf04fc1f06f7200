//! `cargo xtask dev-up`: build what is missing, start the dev stack, wait until every service is healthy,
//! print the URLs (the work is `dev::start`).

use anyhow::Result;
use clap::Args;

use crate::context::Ctx;
use crate::dev::{self, Start};

#[derive(Debug, Clone, Args)]
pub struct DevUpArgs {
    /// Rebuild our images even when they exist.
    #[arg(long)]
    pub build: bool,
    /// Seconds to wait for every service to become healthy.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    pub timeout: u32,
    /// Hot reload: also start Vite's dev server, then watch the sources (API rebuilt from an incremental
    /// debug build and restarted on a backend change, frontend changes synced to Vite) until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
}

impl DevUpArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        dev::start(
            ctx,
            &Start {
                build: self.build,
                timeout: self.timeout,
                watch: self.watch,
            },
        )
    }
}
