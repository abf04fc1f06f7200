//! `cargo xtask lint-fix`: apply the automatic fixes (clippy's suggestions, then rustfmt). The container,
//! shell and compose linters have no automatic fixes: `cargo xtask lint` lists what is left.

use anyhow::Result;

use clap::Args;

use crate::cargo;
use crate::cmd::Cmd;
use crate::context::Ctx;

pub fn plan(ctx: &Ctx) -> Vec<Cmd> {
    vec![cargo::clippy_fix(ctx), cargo::fmt(ctx, false)]
}

#[derive(Debug, Clone, Args)]
pub struct LintFixArgs {}

impl LintFixArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        for cmd in plan(ctx) {
            ctx.run.run(&cmd)?;
        }
        ctx.say("automatic fixes applied; run `cargo xtask lint` for what needs a person");
        Ok(())
    }
}
