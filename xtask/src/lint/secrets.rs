//! The image-secrets gate: no image we build contains a secret value (filesystem, environment, labels, history).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use super::Outcome;
use crate::cmd::{Cmd, cmd, shell};
use crate::context::Ctx;
use crate::prod::release::{RELEASE_IMAGES, inspect_cmd, parse_inspect};
use crate::prod::secrets::{example_secrets, secrets_dir};
use crate::prod::tags::head_tag;
use crate::term::Progress;

/// The secret values to look for: the example passwords and every secret file.
pub fn secret_needles(ctx: &Ctx) -> Vec<String> {
    let mut needles = example_secrets(ctx);
    if let Ok(entries) = std::fs::read_dir(secrets_dir(ctx)) {
        for e in entries.flatten() {
            let p = e.path();
            let text = if p.extension().is_some_and(|x| x == "txt") {
                std::fs::read_to_string(&p).ok()
            } else {
                None
            };
            if let Some(text) = text {
                let v = text.trim_end_matches(['\n', '\r']).to_string();
                if v.len() >= 8 {
                    needles.push(v);
                }
            }
        }
    }
    needles.sort();
    needles.dedup();
    needles
}

/// A sink that looks for any of `needles` in what is written to it, across chunk boundaries; `found` is
/// the index of the first needle seen.
pub struct Finder<'a> {
    needles: &'a [Vec<u8>],
    longest: usize,
    carry: Vec<u8>,
    pub found: Option<usize>,
}

impl<'a> Finder<'a> {
    pub fn new(needles: &'a [Vec<u8>]) -> Finder<'a> {
        Finder {
            needles,
            longest: needles.iter().map(Vec::len).max().unwrap_or(0),
            carry: Vec::new(),
            found: None,
        }
    }
}

impl std::io::Write for Finder<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.found.is_some() || self.longest == 0 {
            return Ok(buf.len());
        }
        self.carry.extend_from_slice(buf);
        self.found = self
            .needles
            .iter()
            .position(|needle| !needle.is_empty() && self.carry.windows(needle.len()).any(|w| w == needle.as_slice()));
        let keep = self.carry.len().min(self.longest - 1);
        self.carry.drain(..self.carry.len() - keep);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether what `reader` yields contains any needle; returns its index.
pub fn find_in_stream(mut reader: impl Read, needles: &[Vec<u8>]) -> std::io::Result<Option<usize>> {
    let mut finder = Finder::new(needles);
    std::io::copy(&mut reader, &mut finder)?;
    Ok(finder.found)
}

pub fn image_secrets(ctx: &Ctx) -> Result<Outcome> {
    let needles = secret_needles(ctx);
    let prefix = &ctx.config.images.prefix;
    let mut tags = vec!["dev".to_string(), "staging".to_string(), "latest".to_string()];
    if let Ok(t) = head_tag(ctx) {
        tags.push(t);
    }
    let candidates: Vec<String> = RELEASE_IMAGES
        .iter()
        .flat_map(|n| tags.iter().map(move |t| format!("{prefix}/{n}:{t}")))
        .collect();
    let present: Vec<String> = if ctx.run.dry_run {
        candidates.iter().take(1).cloned().collect()
    } else {
        candidates
            .into_iter()
            .filter(|i| crate::images::exists(ctx, i))
            .collect()
    };
    if present.is_empty() {
        return Ok(Outcome::skip(
            "no image of ours is built yet (nothing to search; `cargo xtask build` first)",
        ));
    }
    if needles.is_empty() {
        return Ok(Outcome::skip(
            "no secret values to search for (.env.example has no passwords and there are no secret files)",
        ));
    }
    let bytes: Vec<Vec<u8>> = needles.iter().map(|n| n.as_bytes().to_vec()).collect();
    let mut leaks = Vec::new();
    let mut seen_ids: Vec<String> = Vec::new();
    let sh = shell();
    let created_by = "{{.CreatedBy}}";
    for image in &present {
        // Environment, labels and build history (ARG/ENV values end up there).
        let meta_cmd = inspect_cmd(image);
        let history_cmd = Cmd::from(cmd!(sh, "docker history --no-trunc --format {created_by} {image}"));
        let create_cmd = Cmd::from(cmd!(sh, "docker create {image}"));
        if ctx.run.dry_run {
            ctx.run.run(&meta_cmd)?;
            ctx.run.run(&history_cmd)?;
            ctx.run.run(&create_cmd)?;
            ctx.run.run(&Cmd::from(cmd!(sh, "docker export <container>")))?;
            continue;
        }
        let meta = ctx.run.read(&meta_cmd)?;
        // The same image under several tags is searched once.
        let id = parse_inspect(&meta)
            .with_context(|| format!("reading `{meta_cmd}`"))?
            .id;
        if seen_ids.contains(&id) {
            continue;
        }
        seen_ids.push(id);
        let history = ctx.run.read(&history_cmd)?;
        let config_text = format!("{meta}\n{history}");
        if let Some(i) = needles.iter().position(|n| config_text.contains(n.as_str())) {
            leaks.push(format!(
                "{image}: configuration/history contains secret #{} (of .env.example or infra/secrets)",
                i + 1
            ));
        }
        // The filesystem, streamed through `docker export` of a created (never started) container.
        let created = ctx.run.read(&create_cmd)?;
        let container = created.trim();
        // Scanned as it streams (never written to disk), through the runner: echoed, status checked.
        let export = Cmd::from(cmd!(sh, "docker export {container}"));
        let mut finder = Finder::new(&bytes);
        let found = ctx
            .run
            .stream_out(
                &export,
                Path::new("(scanned in memory)"),
                &mut finder,
                &mut Progress::hidden(),
            )
            .map(|_| finder.found);
        let _ = ctx.run.probe(&Cmd::from(cmd!(sh, "docker rm -f {container}")));
        if let Some(i) = found? {
            leaks.push(format!(
                "{image}: its filesystem contains secret #{} (of .env.example or infra/secrets)",
                i + 1
            ));
        }
    }
    for l in &leaks {
        println!("  {l}");
    }
    Ok(Outcome {
        skipped: false,
        passed: leaks.is_empty(),
        findings: leaks.len(),
        note: if leaks.is_empty() {
            format!(
                "{} image(s) searched for {} secret value(s): none found",
                seen_ids.len(),
                needles.len()
            )
        } else {
            "secrets found in images: remove them (build secrets via --mount=type=secret, runtime secrets via compose secrets)".into()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_search_finds_needles_across_chunk_borders() {
        let mut data = vec![b'x'; (1 << 20) - 3];
        data.extend_from_slice(b"hunter2-secret");
        data.extend_from_slice(&[b'y'; 100]);
        let needles = vec![b"absent".to_vec(), b"hunter2-secret".to_vec()];
        assert_eq!(find_in_stream(&data[..], &needles).unwrap(), Some(1));
        assert_eq!(find_in_stream(&b"nothing here"[..], &needles).unwrap(), None);
        assert_eq!(find_in_stream(&b"abc"[..], &[]).unwrap(), None);
    }
}
