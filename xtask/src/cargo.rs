//! The cargo invocations several commands run (fmt, clippy), with the toolchain that runs the xtask.

use crate::cmd::{Cmd, cmd, shell};
use crate::context::Ctx;

/// `cargo fmt --all` (with `--check`: only report).
pub fn fmt(ctx: &Ctx, check: bool) -> Cmd {
    let sh = shell();
    let cargo = &ctx.vars.cargo;
    let check: &[&str] = if check { &["--", "--check"] } else { &[] };
    Cmd::from(cmd!(sh, "{cargo} fmt --all {check...}")).cwd(&ctx.root)
}

/// clippy's automatic fixes over the whole workspace.
pub fn clippy_fix(ctx: &Ctx) -> Cmd {
    let sh = shell();
    let cargo = &ctx.vars.cargo;
    Cmd::from(cmd!(
        sh,
        "{cargo} clippy --fix --allow-dirty --allow-staged --workspace --all-targets --all-features"
    ))
    .cwd(&ctx.root)
}
