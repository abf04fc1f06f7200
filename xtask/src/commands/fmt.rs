//! `cargo xtask fmt`: format the Rust workspace (`--check`: only report).

use anyhow::Result;

use crate::context::Ctx;
use crate::process::Cmd;

pub fn plan(ctx: &Ctx, check: bool) -> Cmd {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let cmd = Cmd::new(cargo).args(["fmt", "--all"]).cwd(&ctx.root);
    if check { cmd.args(["--", "--check"]) } else { cmd }
}

pub fn run(ctx: &Ctx, check: bool) -> Result<()> {
    ctx.run.run(&plan(ctx, check)).map_err(|err| {
        if check {
            err.context("the code is not formatted\n  fix: cargo xtask fmt")
        } else {
            err
        }
    })?;
    Ok(())
}
