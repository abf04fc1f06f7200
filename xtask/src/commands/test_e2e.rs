//! `cargo xtask test-e2e`: the whole stack up, then a real headless Chromium (Debian's, driven by
//! playwright-core) walks the UI through the edge proxy and checks security headers and caching over HTTP.
//! Screenshots of failures land in `artifacts/e2e/`.

use anyhow::{Result, bail};
use clap::Args;

use crate::cmd::{Cmd, cmd, program_exists, shell};
use crate::compose::Compose;
use crate::config::Env;
use crate::context::Ctx;
use crate::dev::{self, Start};
use crate::provision::{self, CHROMIUM, Tool};
use crate::stack;

const E2E_DIR: &str = "e2e";
const ARTIFACTS: &str = "artifacts/e2e";

/// The browser run, as data.
pub fn plan(ctx: &Ctx, base_url: &str, args: &TestE2eArgs) -> Vec<Cmd> {
    let sh = shell();
    let dir = ctx.path(E2E_DIR);
    let mut plan = Vec::new();
    if ctx.run.dry_run || !dir.join("node_modules/playwright-core").is_dir() {
        // Installs exactly the locked playwright-core (no browser download: Debian's chromium is used).
        plan.push(Cmd::from(cmd!(sh, "npm ci --no-audit --no-fund")).cwd(&dir));
    }
    let artifacts = ctx.path(ARTIFACTS);
    let grep = args.grep.iter().flat_map(|text| ["--grep", text]);
    plan.push(
        Cmd::from(cmd!(
            sh,
            "node run.mjs --base-url {base_url} --chromium {CHROMIUM} --artifacts {artifacts} {grep...}"
        ))
        .cwd(&dir),
    );
    plan
}

#[derive(Debug, Clone, Args)]
pub struct TestE2eArgs {
    /// Run only the browser tests whose name contains this text.
    #[arg(long)]
    pub grep: Option<String>,
}

impl TestE2eArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        provision::ensure_tools(ctx, &[Tool::Browser])?;
        if !ctx.run.dry_run {
            for tool in ["node", "npm"] {
                if !program_exists(tool) {
                    bail!(
                        "`{tool}` is not on PATH: the browser tests run with Node.js on the host\n  fix: install Node.js 20 and npm"
                    );
                }
            }
        }
        // Idempotent: starts or completes the stack and waits until every service is healthy.
        dev::start(
            ctx,
            &Start {
                build: false,
                timeout: 300,
                watch: false,
            },
        )?;
        let compose = Compose::for_env(ctx, Env::Dev)?;
        let base_url = if ctx.run.dry_run {
            "http://127.0.0.1:8080".to_string()
        } else {
            let Some(addr) = stack::published(ctx, &compose, &ctx.config.services.proxy, 8080) else {
                bail!(
                    "the edge proxy publishes no port, so the browser cannot reach the app\n  fix: check `cargo xtask dev-ps` and infra/compose/compose.dev.yaml"
                );
            };
            format!("http://{addr}")
        };
        ctx.say(&format!(
            "browser tests against {base_url} (failure screenshots in {ARTIFACTS}/)"
        ));
        for cmd in plan(ctx, &base_url, self) {
            ctx.run.run(&cmd)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx::for_plan_tests()
    }

    #[test]
    fn installs_then_drives_chromium_from_the_e2e_directory() {
        let ctx = ctx();
        let steps = plan(&ctx, "http://127.0.0.1:8080", &TestE2eArgs { grep: None });
        assert_eq!(steps[0].argv(), ["npm", "ci", "--no-audit", "--no-fund"]);
        assert_eq!(steps[0].cwd, Some(ctx.path(E2E_DIR)));
        let artifacts = ctx.path(ARTIFACTS).display().to_string();
        assert_eq!(
            steps[1].argv(),
            [
                "node",
                "run.mjs",
                "--base-url",
                "http://127.0.0.1:8080",
                "--chromium",
                CHROMIUM,
                "--artifacts",
                &artifacts
            ]
        );
        assert_eq!(steps[1].cwd, Some(ctx.path(E2E_DIR)));
        let grep = TestE2eArgs {
            grep: Some("login page".into()),
        };
        let steps = plan(&ctx, "http://h:1", &grep);
        assert_eq!(steps[1].argv()[8..], ["--grep", "login page"]);
    }
}
