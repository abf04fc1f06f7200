//! `cargo xtask setup`: install and start what the stack needs where it safely can (the work is `provision`).

use anyhow::Result;
use clap::Args;

use crate::context::Ctx;
use crate::provision;

#[derive(Debug, Clone, Args)]
pub struct SetupArgs {}

impl SetupArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        provision::setup(ctx)
    }
}
