//! `cargo xtask fmt`: format the Rust workspace (`--check`: only report).

use anyhow::Result;
use clap::Args;

use crate::cargo;
use crate::context::Ctx;

#[derive(Debug, Clone, Args)]
pub struct FmtArgs {
    /// Change nothing; fail if something would change.
    #[arg(long)]
    pub check: bool,
}

impl FmtArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        ctx.run.run(&cargo::fmt(ctx, self.check)).map_err(|err| {
            if self.check {
                err.context("the code is not formatted\n  fix: cargo xtask fmt")
            } else {
                err
            }
        })?;
        Ok(())
    }
}
