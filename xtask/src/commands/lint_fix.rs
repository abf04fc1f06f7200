//! `cargo xtask lint-fix`: apply the automatic fixes (clippy's suggestions, then rustfmt). The container,
//! shell and compose linters have no automatic fixes: `cargo xtask lint` lists what is left.

use anyhow::Result;

use crate::context::Ctx;
use crate::process::Cmd;

pub fn plan(ctx: &Ctx) -> Vec<Cmd> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    vec![
        Cmd::new(&cargo)
            .args([
                "clippy",
                "--fix",
                "--allow-dirty",
                "--allow-staged",
                "--workspace",
                "--all-targets",
                "--all-features",
            ])
            .cwd(&ctx.root),
        crate::commands::fmt::plan(ctx, false),
    ]
}

pub fn run(ctx: &Ctx) -> Result<()> {
    for cmd in plan(ctx) {
        ctx.run.run(&cmd)?;
    }
    ctx.say("automatic fixes applied; run `cargo xtask lint` for what needs a person");
    Ok(())
}
