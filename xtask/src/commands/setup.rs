//! `cargo xtask setup`: install and start what the stack needs where it safely can (the work is `provision`);
//! `setup --host …` does it on a remote host (`prod/remote.rs`).

use anyhow::Result;
use clap::Args;

use crate::context::Ctx;
use crate::provision;

#[derive(Debug, Clone, Args)]
pub struct SetupArgs {}

impl SetupArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        // `setup --host …`: the remote host (Docker Engine over SSH); this machine needs only the docker CLI.
        if ctx.engine.is_remote() {
            return crate::prod::remote::setup_host(ctx);
        }
        provision::setup(ctx)
    }
}
