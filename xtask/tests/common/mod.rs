//! Helpers shared by the integration tests (each file under tests/ is its own crate and includes this module).
#![allow(dead_code)] // each test crate uses its own part of it

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root (the xtask crate lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A finished command's stdout followed by its stderr, as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the xtask binary without a terminal and without colour, isolated from this shell's drydock settings
/// (project, secrets directory, bind address), with `env` on top.
pub fn xtask_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args)
        // Plans name cargo by $CARGO; a fixed value keeps the expected lines independent of the toolchain path.
        .env("CARGO", "cargo")
        .env_remove("DRYDOCK_PROJECT")
        .env_remove("DRYDOCK_SECRETS_DIR")
        .env_remove("DRYDOCK_PROD_BIND")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// [`xtask_env`] without extra environment.
pub fn xtask(args: &[&str]) -> Output {
    xtask_env(args, &[])
}
