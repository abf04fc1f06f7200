//! `cargo xtask images`: list the stack's images with sizes, or build the offline base images.

use anyhow::{Result, bail};
use serde::Serialize;

use crate::cli::{ImagesAction, ImagesArgs};
use crate::context::Ctx;
use crate::images::{self, BaseImages};
use crate::process::Cmd;

#[derive(Debug, Serialize)]
struct ImageRow {
    role: String,
    image: String,
    present: bool,
    size_bytes: Option<u64>,
}

pub fn run(ctx: &Ctx, args: &ImagesArgs) -> Result<()> {
    match &args.action {
        Some(ImagesAction::BuildOffline { force }) => {
            if ctx.images().source != images::Source::Offline && !ctx.offline {
                ctx.say("note: the stack currently uses registry images; building the offline set anyway");
            }
            crate::provision::preflight(ctx)?;
            images::build_offline(ctx, &[], *force)
        }
        None => list(ctx, args.json),
    }
}

fn list(ctx: &Ctx, json: bool) -> Result<()> {
    let source = ctx.images().source;
    let base = BaseImages::for_source(&ctx.config, source);
    let prefix = &ctx.config.images.prefix;
    let mut wanted: Vec<(String, String)> = vec![
        ("postgres".into(), base.postgres.clone()),
        ("redis".into(), base.redis.clone()),
        ("rust builder".into(), base.rust.clone()),
        ("node builder".into(), base.node.clone()),
        ("api runtime base".into(), base.runtime.clone()),
        ("nginx".into(), base.nginx.clone()),
        ("api".into(), format!("{prefix}/api:dev")),
        ("frontend".into(), format!("{prefix}/frontend:dev")),
    ];
    if source == images::Source::Offline {
        wanted.insert(0, ("debian base".into(), ctx.config.images.offline.base.clone()));
    }
    if ctx.run.dry_run {
        for (_, image) in &wanted {
            ctx.run
                .run(&Cmd::new("docker").args(["image", "inspect", "--format", "{{.Size}}", image]))?;
        }
        return Ok(());
    }
    let rows: Vec<ImageRow> = wanted
        .into_iter()
        .map(|(role, image)| {
            let probe = ctx
                .run
                .probe(&Cmd::new("docker").args(["image", "inspect", "--format", "{{.Size}}", &image]));
            let size = probe
                .filter(|p| p.success)
                .and_then(|p| p.stdout.trim().parse::<u64>().ok());
            ImageRow {
                role,
                present: size.is_some(),
                image,
                size_bytes: size,
            }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{:<18} {:<44} {:>10}", "role", "image", "size");
    for row in &rows {
        let size = row
            .size_bytes
            .map_or("missing".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6));
        println!("{:<18} {:<44} {:>10}", row.role, row.image, size);
    }
    if rows.iter().all(|r| !r.present) {
        bail!("no image of the stack exists yet\n  fix: cargo xtask dev-up (or `cargo xtask images build-offline`)");
    }
    Ok(())
}
