//! `cargo xtask dev-build`: rebuild the dev stack's images.

use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::cmd::{cmd, shell};
use crate::compose::Compose;
use crate::compose::ensure_env_file;
use crate::config::Env;
use crate::context::Ctx;
use crate::images;
use crate::provision::preflight;
use crate::stack;

#[derive(Debug, Clone, Args)]
pub struct DevBuildArgs {
    /// Build without the layer cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Compose service names (default: all with a build section).
    pub services: Vec<String>,
}

impl DevBuildArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        preflight(ctx)?;
        ensure_env_file(ctx)?;
        images::ensure(ctx)?;
        let compose = Compose::for_env(ctx, Env::Dev)?.with_images(ctx);
        stack::check_services(ctx, &compose, &self.services)?;
        let sh = shell();
        let no_cache = self.no_cache.then_some("--no-cache");
        let services = &self.services;
        let started = Instant::now();
        ctx.run
            .run(&compose.cmd(cmd!(sh, "build {no_cache...} {services...}")))?;
        if !ctx.run.dry_run {
            ctx.say(&format!("images built in {:.1} s", started.elapsed().as_secs_f64()));
        }
        Ok(())
    }
}
