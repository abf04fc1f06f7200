//! `cargo xtask clean`: remove what this project left in the engine — its containers, networks and dangling
//! images (dev, ci and offline-image projects) and the xtask's scratch files. Volumes (database data) only
//! with `--volumes` and a confirmation; the production project is never touched here.

use anyhow::Result;

use clap::Args;

use crate::cmd::Cmd;
use crate::compose::{Compose, ci_project};
use crate::config::Env;
use crate::context::Ctx;
use crate::flags::VolumesFlag;
use crate::images::OFFLINE_PROJECT;

pub fn plan(ctx: &Ctx, dev: &Compose, volumes: bool) -> Vec<Cmd> {
    let ci_project = ci_project(&ctx.config.project.name);
    let mut down = vec!["--profile", "*", "down", "--remove-orphans"];
    if volumes {
        down.push("--volumes");
    }
    let mut ci = dev.clone();
    ci.project = ci_project.clone();
    let mut plan = vec![dev.cmd_args(down.clone()), ci.cmd_args(down)];
    for project in [dev.project.as_str(), ci_project.as_str(), OFFLINE_PROJECT] {
        plan.push(Cmd::new("docker").args([
            "image",
            "prune",
            "--force",
            "--filter",
            "dangling=true",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ]));
    }
    plan
}

#[derive(Debug, Clone, Args)]
pub struct CleanArgs {
    #[command(flatten)]
    pub volumes: VolumesFlag,
}

impl CleanArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let volumes = self.volumes.volumes;
        let dev = Compose::for_env(ctx, Env::Dev)?;
        if volumes {
            ctx.confirm(&format!(
                "delete the volumes of compose projects `{}` and `{}` (all dev and CI database data)",
                dev.project,
                ci_project(&ctx.config.project.name)
            ))?;
        }
        for cmd in plan(ctx, &dev, volumes) {
            ctx.run.run(&cmd)?;
        }
        let scratch = ctx.root.join("target/drydock");
        if scratch.exists() {
            ctx.say(&format!("removing {}", scratch.display()));
            if !ctx.run.dry_run {
                std::fs::remove_dir_all(&scratch)?;
            }
        }
        if !volumes {
            ctx.say("volumes kept (database data); `cargo xtask clean --volumes` removes them too");
        }
        Ok(())
    }
}
