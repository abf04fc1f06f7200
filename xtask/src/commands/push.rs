//! `cargo xtask push --registry <host>`: push the release images (and their moving tags) to a registry.

use anyhow::{Context, Result};
use clap::Args;

use crate::cmd::{Cmd, cmd, shell};
use crate::context::Ctx;
use crate::flags::{check_registry, parse_registry};
use crate::prod::release::{ExtraTag, RELEASE_IMAGES, describe, push_failed, selected};
use crate::prod::tags::{check_tag, head_tag, image, parse_tag, require_images};

#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// The registry to push to, as `host[:port]` (e.g. registry.example.com, 127.0.0.1:5000).
    #[arg(long, value_name = "HOST", value_parser = parse_registry)]
    pub registry: String,
    /// The tag to push (default: `sha-<HEAD>`); `staging`/`latest` are pushed too when they point to it.
    #[arg(long, value_name = "TAG", value_parser = parse_tag)]
    pub tag: Option<String>,
    /// Which images (default: api, frontend, proxy).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(RELEASE_IMAGES))]
    pub images: Vec<String>,
}

impl PushArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        check_registry(&self.registry)?;
        let tag = match &self.tag {
            Some(t) => t.clone(),
            None => head_tag(ctx)?,
        };
        check_tag(&tag)?;
        let names = selected(&self.images);
        let sources: Vec<String> = names.iter().map(|n| image(ctx, n, &tag)).collect();
        require_images(ctx, &sources)?;
        let sh = shell();
        for (name, source) in names.iter().zip(&sources) {
            let mut tags = vec![tag.clone()];
            if !ctx.run.dry_run {
                let id = describe(ctx, source)?.id;
                for extra in [ExtraTag::Staging, ExtraTag::Latest] {
                    let moving = image(ctx, name, extra.name());
                    if crate::images::exists(ctx, &moving) && describe(ctx, &moving)?.id == id {
                        tags.push(extra.name().to_string());
                    }
                }
            }
            for t in &tags {
                let target = format!("{}/{}", self.registry, image(ctx, name, t));
                ctx.run.run(&Cmd::from(cmd!(sh, "docker tag {source} {target}")))?;
                ctx.run
                    .run(&Cmd::from(cmd!(sh, "docker push {target}")))
                    .with_context(|| push_failed(&self.registry, &target))?;
            }
        }
        ctx.say(&format!(
            "pushed {} image(s) as {tag} to {}",
            names.len(),
            self.registry
        ));
        Ok(())
    }
}
