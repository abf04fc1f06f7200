//! The images of a Swarm stack through a registry every node reaches (`--registry host[:port]`).
//!
//! A swarm's nodes pull their images themselves: an image that only this machine has never reaches a worker.
//! So every service's image is tagged `<registry>/<image>` on this machine's engine and pushed, the stack file
//! names the registry's copy, and `docker stack deploy --resolve-image always --with-registry-auth` pins each
//! service to the digest just pushed (every node runs the same bytes, whatever the tag does later) and passes
//! this machine's login for that registry, if any, to the nodes.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::{Cmd, cmd, shell};
use crate::context::Ctx;
use crate::prod::release::push_failed;
use crate::prod::remote::here;

/// One image to push: its name on this machine and its name in the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub source: String,
    pub target: String,
}

impl Push {
    /// `image` pushed to `registry` as `<registry>/<image>`.
    pub fn to(registry: &str, image: &str) -> Push {
        Push {
            source: image.to_string(),
            target: format!("{registry}/{image}"),
        }
    }
}

/// Points every service of `stack_file` (a `docker stack deploy` file) at the registry's copy of its image,
/// and returns the images to push, each once, in the stack file's order. An image that already names this
/// registry stays as it is and is not pushed again.
pub fn via_registry(stack_file: &mut Value, registry: &str) -> Vec<Push> {
    let mut pushes: Vec<Push> = Vec::new();
    let prefix = format!("{registry}/");
    let services = stack_file.get_mut("services").and_then(Value::as_object_mut);
    for svc in services.into_iter().flat_map(|s| s.values_mut()) {
        let Some(image) = svc.get("image").and_then(Value::as_str).map(String::from) else {
            continue;
        };
        if image.starts_with(&prefix) {
            continue;
        }
        let push = Push::to(registry, &image);
        svc["image"] = Value::String(push.target.clone());
        if !pushes.contains(&push) {
            pushes.push(push);
        }
    }
    pushes
}

/// `docker tag` and `docker push` of one image, on this machine's engine (where the release was built),
/// whatever engine the run deploys to.
pub fn push_cmds(Push { source, target }: &Push) -> [Cmd; 2] {
    let sh = shell();
    [
        here(Cmd::from(cmd!(sh, "docker tag {source} {target}"))),
        here(Cmd::from(cmd!(sh, "docker push --quiet {target}"))),
    ]
}

/// Pushes the images (see [`push_cmds`]); a failed push names the registry checks that fix it.
pub fn push(ctx: &Ctx, registry: &str, pushes: &[Push]) -> Result<()> {
    ctx.say(&format!(
        "registry {registry}: pushing {} image(s) from this machine (each node pulls its own)",
        pushes.len()
    ));
    for push in pushes {
        for cmd in push_cmds(push) {
            ctx.run.run(&cmd).with_context(|| push_failed(registry, &push.target))?;
        }
    }
    Ok(())
}

/// Fails unless every image exists on this machine's engine (they are pushed from here), naming the command
/// that makes them.
pub fn require_here(ctx: &Ctx, images: &[String]) -> Result<()> {
    if ctx.run.dry_run {
        return Ok(());
    }
    let here = ctx.this_machine();
    let missing: Vec<&str> = images
        .iter()
        .filter(|i| !crate::images::exists(&here, i))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        bail!(
            "image(s) to push are not on this machine: {}\n  fix: cargo xtask build (release images, tagged sha-<HEAD>) and cargo xtask images (the databases'), or pass --tag of images you have; nothing was changed",
            missing.join(", ")
        );
    }
    Ok(())
}

/// The registry of this deploy: `--registry`, else the one the stack's last deploy used. A swarm of more than
/// one node without one is refused before anything changes: its other nodes would have no image to run.
pub fn choose(ctx: &Ctx, flag: Option<&str>, recorded: Option<&str>) -> Result<Option<String>> {
    if let Some(r) = flag.or(recorded) {
        if flag.is_none() {
            ctx.say(&format!(
                "registry: {r} (the one the last deploy used; --registry to change it)"
            ));
        }
        return Ok(Some(r.to_string()));
    }
    if ctx.run.dry_run {
        return Ok(None);
    }
    let sh = shell();
    let nodes = ctx.run.read(&Cmd::from(cmd!(sh, "docker node ls --quiet")))?;
    let count = nodes.split_whitespace().count();
    if count > 1 {
        bail!(
            "this swarm has {count} nodes, and no registry was given: only this machine has the images, so the other nodes could not run them\n  fix: add --registry <host[:port]> of a registry every node reaches (this machine pushes there, the nodes pull); nothing was changed"
        );
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_service_names_the_registry_copy_and_each_image_is_pushed_once() {
        let mut stack = json!({"services": {
            "api": {"image": "drydock/api:v2"},
            "migrate": {"image": "drydock/api:v2"},
            "postgres": {"image": "drydock/postgres:17"},
            "mirrored": {"image": "r.example:5000/drydock/redis:8"},
            "no-image": {"command": ["true"]},
        }});
        let pushes = via_registry(&mut stack, "r.example:5000");
        let targets: Vec<&str> = pushes.iter().map(|p| p.target.as_str()).collect();
        assert_eq!(
            targets,
            ["r.example:5000/drydock/api:v2", "r.example:5000/drydock/postgres:17"]
        );
        assert_eq!(pushes[0].source, "drydock/api:v2");
        assert_eq!(stack["services"]["migrate"]["image"], "r.example:5000/drydock/api:v2");
        assert_eq!(stack["services"]["mirrored"]["image"], "r.example:5000/drydock/redis:8");
        assert!(stack["services"]["no-image"].get("image").is_none());
    }

    #[test]
    fn the_pushes_run_on_this_machines_engine() {
        let cmds = push_cmds(&Push::to("127.0.0.1:5000", "drydock/api:v2"));
        let argv: Vec<String> = cmds.iter().map(|c| c.argv().join(" ")).collect();
        assert_eq!(
            argv,
            [
                "docker tag drydock/api:v2 127.0.0.1:5000/drydock/api:v2",
                "docker push --quiet 127.0.0.1:5000/drydock/api:v2"
            ]
        );
        for c in &cmds {
            assert!(c.env.contains(&("DOCKER_HOST".into(), String::new())), "{:?}", c.env);
        }
    }
}
