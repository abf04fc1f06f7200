//! `cargo xtask build`: build the release images, tag them `sha-<commit>` (+ `--tag staging|latest`), check their
//! OCI labels and record their sizes.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::cmd::{Cmd, cmd, shell};
use crate::compose::git_revision;
use crate::context::Ctx;
use crate::prod::compose::prod_compose;
use crate::prod::release::{ExtraTag, RELEASE_IMAGES, check_labels, describe, selected, worktree_dirty};
use crate::prod::tags::{head_tag, image};
use crate::term::{Style, human_bytes};
use crate::time::Timestamp;

#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Also tag the images `staging` or `latest` (repeatable). The `sha-<commit>` tag is always set.
    #[arg(long = "tag", value_enum, value_name = "staging|latest")]
    pub tags: Vec<ExtraTag>,
    /// Build without the layer cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Which images (default: api, frontend, proxy).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(RELEASE_IMAGES))]
    pub images: Vec<String>,
}

impl BuildArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        crate::provision::preflight(ctx)?;
        let tag = head_tag(ctx)?;
        let revision = git_revision(ctx).unwrap_or_default();
        let names = selected(&self.images);
        if !ctx.run.dry_run && worktree_dirty(ctx) {
            ctx.say(&format!(
                "warning: the worktree has uncommitted changes: {tag} will not exactly describe these images (commit first for a reproducible release)"
            ));
        }
        crate::images::ensure(ctx)?;
        let mut compose = prod_compose(ctx, &tag, &tag)?;
        let created = Timestamp::now().rfc3339();
        compose.env.push(("GIT_SHA".into(), revision.clone()));
        compose.env.push(("BUILD_DATE".into(), created.clone()));
        compose
            .env
            .push(("VERSION".into(), format!("{}+{tag}", env!("CARGO_PKG_VERSION"))));
        let sh = shell();
        let no_cache = self.no_cache.then_some("--no-cache");
        let services = &names;
        ctx.say(&format!("building release images {} as {tag}", names.join(", ")));
        let started = Instant::now();
        ctx.run
            .run(&compose.cmd(cmd!(sh, "build {no_cache...} {services...}")))?;
        let mut extra: Vec<String> = self.tags.iter().map(|t| t.name().to_string()).collect();
        extra.dedup();
        for name in &names {
            for t in &extra {
                let (built, moving) = (image(ctx, name, &tag), image(ctx, name, t));
                ctx.run.run(&Cmd::from(cmd!(sh, "docker tag {built} {moving}")))?;
            }
        }
        if ctx.run.dry_run {
            return Ok(());
        }
        let mut built = Vec::new();
        for name in &names {
            let b = describe(ctx, &image(ctx, name, &tag))?;
            check_labels(&b, &revision)?;
            let mut b = b;
            b.tags = std::iter::once(tag.clone()).chain(extra.iter().cloned()).collect();
            built.push(b);
        }
        let record = ctx.root.join("artifacts/images").join(format!("{tag}.json"));
        std::fs::create_dir_all(record.parent().expect("has a parent"))?;
        let doc = serde_json::json!({ "tag": tag, "revision": revision, "created": created, "images": built });
        std::fs::write(&record, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {}", record.display()))?;
        let style = Style::stdout();
        println!("{:<34} {:>10}  tags", "image", "size");
        for b in &built {
            println!(
                "{:<34} {:>10}  {}",
                b.image,
                human_bytes(b.size_bytes),
                b.tags.join(", ")
            );
        }
        ctx.say(&format!(
            "built in {:.0} s; OCI labels checked; sizes recorded in {}",
            started.elapsed().as_secs_f64(),
            record.strip_prefix(&ctx.root).unwrap_or(&record).display()
        ));
        println!("{}", style.dim(&format!("deploy: cargo xtask prod-deploy --tag {tag}")));
        Ok(())
    }
}
