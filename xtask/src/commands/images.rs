//! `cargo xtask images`: list the stack's images with sizes, or build the offline base images.

use anyhow::{Result, bail};
use serde::Serialize;

use clap::{Args, Subcommand};

use crate::cmd::{Cmd, cmd, shell};
use crate::context::Ctx;
use crate::images::{self, BaseImages};

#[derive(Debug, Serialize)]
struct ImageRow {
    role: String,
    image: String,
    present: bool,
    size_bytes: Option<u64>,
}

#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ImagesArgs {
    #[command(subcommand)]
    pub action: Option<ImagesAction>,
    /// Print machine-readable JSON on stdout (for the listing).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ImagesAction {
    /// Build (or rebuild) the offline base images from Debian trixie packages.
    BuildOffline {
        /// Rebuild images that already exist (the Debian base too).
        #[arg(long)]
        force: bool,
    },
}

impl ImagesArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        run(ctx, self)
    }
}

fn run(ctx: &Ctx, args: &ImagesArgs) -> Result<()> {
    match &args.action {
        Some(ImagesAction::BuildOffline { force }) => {
            if ctx.images().source != crate::image_source::Source::Offline && !ctx.offline {
                ctx.say("note: the stack currently uses registry images; building the offline set anyway");
            }
            crate::provision::preflight(ctx)?;
            images::build_offline(ctx, &[], *force)
        }
        None => list(ctx, args.json),
    }
}

/// `docker image inspect` printing only the image's size in bytes.
fn size_query(image: &str) -> Cmd {
    let sh = shell();
    let size = "{{.Size}}";
    Cmd::from(cmd!(sh, "docker image inspect --format {size} {image}"))
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
    if source == crate::image_source::Source::Offline {
        wanted.insert(0, ("debian base".into(), ctx.config.images.offline.base.clone()));
    }
    if ctx.run.dry_run {
        for (_, image) in &wanted {
            ctx.run.run(&size_query(image))?;
        }
        return Ok(());
    }
    let rows: Vec<ImageRow> = wanted
        .into_iter()
        .map(|(role, image)| {
            let probe = ctx.run.probe(&size_query(&image));
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
