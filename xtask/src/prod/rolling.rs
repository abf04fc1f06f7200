//! The zero-downtime rolling update of the API on plain compose (one machine), as data and in this order:
//! 1. migrations of the new image (`compose run --rm migrate`): they must be backward compatible, since the
//!    old replicas keep serving meanwhile;
//! 2. start as many new replicas as there are old ones (`up --no-recreate --scale api=2n`); they are on the
//!    compose networks but NOT behind the proxy (no `api-live` alias);
//! 3. wait until every new replica is healthy — if one crashes, restarts, turns unhealthy or the deadline
//!    passes, remove the new replicas (they never saw a request) and stop: the old ones still serve;
//! 4. shift traffic: give the new replicas the `api-live` alias, wait for the proxy's DNS cache (5 s);
//! 5. drain: `docker stop` the old replicas (SIGTERM: readiness 503, in-flight requests finish, and the proxy
//!    retries any request that meets a closing replica on another one), then remove them.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cmd::{Cmd, cmd, shell};
use crate::compose::Compose;
use crate::config::Env;
use crate::context::Ctx;
use crate::prod::compose::{prod_compose, scale_cmd};
use crate::prod::containers::{container_ids, inspect, promote, wait_healthy};
use crate::prod::secrets::check_secrets;
use crate::prod::state::DeployState;
use crate::prod::tags::{image, require_images};

/// How long the proxy may keep an old DNS answer (`resolver ... valid=5s`), plus a margin.
const DNS_SETTLE: Duration = Duration::from_secs(6);

/// The zero-downtime rolling update on plain compose (see the module docs).
pub fn rolling(ctx: &Ctx, tag: &str, timeout: Duration, action: &str) -> Result<()> {
    crate::provision::preflight(ctx)?;
    let project = Compose::for_env(ctx, Env::Prod)?.project;
    let api = ctx.config.services.api.clone();
    let mut state = DeployState::load(ctx, &project)?.unwrap_or_default();
    let old = container_ids(ctx, &project, &api)?;
    if old.is_empty() && !ctx.run.dry_run {
        bail!("the production API is not running (project {project})\n  fix: cargo xtask prod-up --tag {tag}");
    }
    let old_tag = if state.api_tag.is_empty() {
        inspect(ctx, &old)?
            .first()
            .and_then(|c| c.image.rsplit_once(':').map(|(_, t)| t.to_string()))
            .unwrap_or_default()
    } else {
        state.api_tag.clone()
    };
    if old_tag == tag && !ctx.run.dry_run {
        ctx.say(&format!("the API already runs {tag}: nothing to deploy"));
        return Ok(());
    }
    if !ctx.run.dry_run {
        check_secrets(ctx, false)?;
    }
    let image_tag = if state.image_tag.is_empty() {
        tag.to_string()
    } else {
        state.image_tag.clone()
    };
    require_images(ctx, &[image(ctx, "api", tag)])?;
    let compose = crate::prod::remote::on_engine(ctx, prod_compose(ctx, &image_tag, tag)?)?;
    let n = old.len().max(1);
    ctx.say(&format!(
        "deploying API {tag} (was {}): {n} new replica(s) beside the {} running, traffic shifted once healthy",
        if old_tag.is_empty() { "unknown" } else { &old_tag },
        old.len()
    ));

    // 1. migrations (backward compatible by contract: the old replicas keep serving)
    ctx.say("step 1/5: migrations of the new image");
    let sh = shell();
    ctx.run
        .run(&compose.cmd(cmd!(sh, "run --rm --no-deps --pull never migrate")))
        .with_context(|| {
            format!("the migrations of {tag} failed; nothing else was changed (the API still runs {old_tag})")
        })?;

    // 2. new replicas, not yet behind the proxy
    ctx.say("step 2/5: starting the new replicas (not receiving traffic)");
    ctx.run.run(&scale_cmd(&compose, &api, old.len() + n, &[]))?;
    let new: Vec<String> = container_ids(ctx, &project, &api)?
        .into_iter()
        .filter(|id| !old.contains(id))
        .collect();

    // 3. health gate, with automatic rollback
    ctx.say(&format!(
        "step 3/5: waiting up to {} s for the new replicas to become healthy",
        timeout.as_secs()
    ));
    if let Err(why) = wait_healthy(ctx, &new, timeout) {
        ctx.say(&format!(
            "the new replicas did not become healthy ({why:#}): rolling back"
        ));
        let logs = new.first().map(|id| Cmd::from(cmd!(sh, "docker logs --tail 30 {id}")));
        if let Some(logs) = logs {
            let _ = ctx.run.run(&logs);
        }
        remove(ctx, &new, 10)?;
        state.record(action, tag, &format!("rolled back: {why:#}"));
        state.save(ctx, &project)?;
        bail!(
            "deploy of API {tag} rolled back: {why:#}\n  the API still runs {old_tag} on the {} old replica(s), which kept serving throughout\n  fix: look at the new image's logs above, fix it, build a new tag and deploy again",
            old.len()
        );
    }

    // 4. traffic to the new replicas
    ctx.say("step 4/5: shifting traffic to the new replicas");
    for id in &new {
        promote(ctx, &project, id)?;
    }
    settle(ctx);

    // 5. drain and remove the old ones
    ctx.say("step 5/5: draining the old replicas");
    remove(ctx, &old, 30)?;

    // The tag read from the old containers when no state was recorded: it becomes the rollback target.
    state.api_tag = old_tag.clone();
    state.deployed(ctx, &project, action, &image_tag, tag)?;
    ctx.say(&format!(
        "API {tag} serves all traffic ({n} replica(s)); `cargo xtask prod-rollback` returns to {old_tag}"
    ));
    Ok(())
}

fn settle(ctx: &Ctx) {
    if !ctx.run.dry_run {
        std::thread::sleep(DNS_SETTLE);
    }
}

/// Graceful stop (SIGTERM, up to `grace` seconds), then removal.
fn remove(ctx: &Ctx, ids: &[String], grace: u32) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let sh = shell();
    let grace = grace.to_string();
    ctx.run
        .run(&Cmd::from(cmd!(sh, "docker stop --time {grace} {ids...}")))?;
    ctx.run.run(&Cmd::from(cmd!(sh, "docker rm {ids...}")))?;
    Ok(())
}
