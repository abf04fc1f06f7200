//! `cargo xtask clean`: remove what this project left in the engine — its containers, networks and dangling
//! images (dev, ci and offline-image projects) and the xtask's scratch files. Volumes (database data) only
//! with `--volumes` and a confirmation; the production project is never touched here.

use anyhow::Result;

use clap::Args;

use crate::cmd::{Cmd, cmd, shell};
use crate::compose::{Compose, ci_project};
use crate::config::Env;
use crate::context::Ctx;
use crate::flags::VolumesFlag;
use crate::images::OFFLINE_PROJECT;

pub fn plan(ctx: &Ctx, dev: &Compose, volumes: bool) -> Vec<Cmd> {
    let sh = shell();
    let ci_project = ci_project(&ctx.config.project.name);
    let volumes = volumes.then_some("--volumes");
    let dev = dev.clone().with_profiles(&["*"]);
    let ci = Compose {
        project: ci_project.clone(),
        ..dev.clone()
    };
    let mut plan = vec![
        dev.cmd(cmd!(sh, "down --remove-orphans {volumes...}")),
        ci.cmd(cmd!(sh, "down --remove-orphans {volumes...}")),
    ];
    for project in [dev.project.as_str(), ci_project.as_str(), OFFLINE_PROJECT] {
        plan.push(Cmd::from(cmd!(
            sh,
            "docker image prune --force --filter dangling=true --filter label=com.docker.compose.project={project}"
        )));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx::for_plan_tests()
    }

    #[test]
    fn plan_downs_dev_and_ci_then_prunes_their_dangling_images() {
        let ctx = ctx();
        let dev = Compose {
            project: "drydock".into(),
            files: vec!["c.yaml".into()],
            env_file: None,
            env: vec![],
            profiles: vec![],
        };
        let steps = plan(&ctx, &dev, false);
        let argv: Vec<Vec<&str>> = steps.iter().map(Cmd::argv).collect();
        assert_eq!(
            argv[0],
            [
                "docker",
                "compose",
                "-p",
                "drydock",
                "-f",
                "c.yaml",
                "--profile",
                "*",
                "down",
                "--remove-orphans"
            ]
        );
        assert_eq!(argv[1][3], "drydock-ci");
        assert_eq!(
            argv[4],
            [
                "docker",
                "image",
                "prune",
                "--force",
                "--filter",
                "dangling=true",
                "--filter",
                "label=com.docker.compose.project=drydock-images"
            ]
        );
        assert_eq!(steps.len(), 5);
        let with_volumes = plan(&ctx, &dev, true);
        assert_eq!(with_volumes[0].argv().last(), Some(&"--volumes"));
        assert_eq!(with_volumes[1].argv().last(), Some(&"--volumes"));
    }
}
