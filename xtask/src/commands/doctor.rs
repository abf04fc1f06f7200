//! `cargo xtask doctor`: every prerequisite with its state and, for each problem, the fix.

use anyhow::{Result, bail};
use serde::Serialize;

use clap::Args;

use crate::cmd::{Cmd, cmd, program_exists, shell};
use crate::context::Ctx;
use crate::flags::JsonFlag;
use crate::image_source::Source;
use crate::images::{self, BaseImages};
use crate::provision::{EngineState, Host, MIN_COMPOSE, manual_instructions};
use crate::term::Style;

/// Free space below which builds and backups start failing in practice.
const MIN_FREE_GIB: f64 = 10.0;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
        fix,
    }
}

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub json: JsonFlag,
}

impl DoctorArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        run(ctx, self.json.json)
    }
}

fn run(ctx: &Ctx, json: bool) -> Result<()> {
    let checks = gather(ctx);
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        print_table(&checks);
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        bail!(
            "{failed} prerequisite(s) missing: apply the fixes above (as root on Debian/Ubuntu `cargo xtask setup` does it for you)"
        );
    }
    Ok(())
}

fn gather(ctx: &Ctx) -> Vec<Check> {
    let host = Host::detect();
    let state = EngineState::probe(ctx);
    let setup_fix = || {
        Some(if host.can_provision() {
            "cargo xtask setup".to_string()
        } else {
            manual_instructions(&host)
        })
    };
    let mut checks = vec![check(
        "host",
        Status::Ok,
        format!("{}{}", host.os, if host.root { " (root)" } else { "" }),
        None,
    )];

    checks.push(if state.cli {
        check("docker cli", Status::Ok, "docker is on PATH", None)
    } else {
        check("docker cli", Status::Fail, "docker is not installed", setup_fix())
    });
    checks.push(match &state.server_version {
        Some(v) => check("engine", Status::Ok, format!("Docker Engine {v} is running"), None),
        None if state.daemon_installed => check(
            "engine",
            Status::Fail,
            "dockerd is installed but not running",
            setup_fix(),
        ),
        None => check("engine", Status::Fail, "Docker Engine is not installed", setup_fix()),
    });
    checks.push(match &state.compose_version {
        Some(v) if state.compose_ok() => check("compose", Status::Ok, format!("Compose {v}"), None),
        Some(v) => check(
            "compose",
            Status::Fail,
            format!("Compose {v} is older than {}.{}", MIN_COMPOSE.0, MIN_COMPOSE.1),
            setup_fix(),
        ),
        None => check(
            "compose",
            Status::Fail,
            "Compose v2 (`docker compose`) is missing",
            setup_fix(),
        ),
    });

    for (what, path) in [
        ("disk (repository)", ctx.root.display().to_string()),
        ("disk (docker)", docker_root(ctx)),
    ] {
        checks.push(match free_gib(ctx, &path) {
            Some(gib) if gib >= MIN_FREE_GIB => check(what, Status::Ok, format!("{gib:.1} GiB free at {path}"), None),
            Some(gib) => check(
                what,
                Status::Warn,
                format!("only {gib:.1} GiB free at {path}"),
                Some(format!(
                    "free at least {MIN_FREE_GIB} GiB (e.g. `cargo xtask clean`, `docker builder prune`)"
                )),
            ),
            None => check(
                what,
                Status::Warn,
                format!("could not measure free space at {path}"),
                None,
            ),
        });
    }

    let resolved = ctx.images();
    let images = BaseImages::for_source(&ctx.config, resolved.source);
    checks.push(check(
        "image source",
        Status::Ok,
        format!("{} ({})", resolved.source.name(), resolved.why),
        None,
    ));
    if state.server_version.is_some() {
        let wanted = [
            &images.postgres,
            &images.redis,
            &images.rust,
            &images.node,
            &images.runtime,
            &images.nginx,
        ];
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|i| !images::exists(ctx, i))
            .map(|i| i.as_str())
            .collect();
        checks.push(if missing.is_empty() {
            check("base images", Status::Ok, "all present", None)
        } else {
            let fix = match resolved.source {
                Source::Offline => "cargo xtask images build-offline   (dev-up does this when needed)",
                Source::Registry => "cargo xtask dev-up pulls them (or `docker pull <image>`)",
            };
            check(
                "base images",
                Status::Warn,
                format!("missing: {}", missing.join(", ")),
                Some(fix.into()),
            )
        });
    }
    if resolved.source == Source::Offline {
        checks.push(if program_exists("debootstrap") {
            check(
                "debootstrap",
                Status::Ok,
                "present (builds the offline Debian base)",
                None,
            )
        } else {
            check(
                "debootstrap",
                Status::Fail,
                "missing: needed to build the offline Debian base",
                setup_fix(),
            )
        });
        checks.push(check(
            "mongo, grafana",
            Status::Warn,
            "no Debian packages: the `mongo` and `monitoring` Grafana parts need registry images",
            Some("use images.source = \"registry\" on a machine with a registry".into()),
        ));
    }
    let bundle = &ctx.config.images.ca_bundle;
    checks.push(if std::path::Path::new(bundle).is_file() {
        check(
            "ca bundle",
            Status::Ok,
            format!("{bundle} (given to builds as a secret)"),
            None,
        )
    } else {
        check(
            "ca bundle",
            Status::Fail,
            format!("{bundle} does not exist"),
            Some("install ca-certificates or set images.ca_bundle in infra/stack.toml".into()),
        )
    });
    let env_file = ctx.path(&ctx.config.compose.env_file);
    checks.push(if env_file.is_file() {
        check("env file", Status::Ok, env_file.display().to_string(), None)
    } else {
        check(
            "env file",
            Status::Warn,
            format!("{} is missing", env_file.display()),
            Some(format!("dev-up creates it from {}", ctx.config.compose.env_example)),
        )
    });
    checks
}

fn docker_root(ctx: &Ctx) -> String {
    let sh = shell();
    let root_dir = "{{.DockerRootDir}}";
    ctx.run
        .probe(&Cmd::from(cmd!(sh, "docker info --format {root_dir}")))
        .filter(|p| p.success && !p.stdout.trim().is_empty())
        .map(|p| p.stdout.trim().to_string())
        .unwrap_or_else(|| "/var/lib/docker".to_string())
}

/// Free space via `df -Pk` (POSIX output), at the path or its nearest existing parent.
fn free_gib(ctx: &Ctx, path: &str) -> Option<f64> {
    let mut p = std::path::PathBuf::from(path);
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    let sh = shell();
    let probe = ctx.run.probe(&Cmd::from(cmd!(sh, "df -Pk {p}")))?;
    parse_df_available_kib(&probe.stdout).map(|kib| kib as f64 / 1024.0 / 1024.0)
}

fn parse_df_available_kib(text: &str) -> Option<u64> {
    text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

fn print_table(checks: &[Check]) {
    let style = Style::stdout();
    for c in checks {
        let mark = match c.status {
            Status::Ok => style.green("ok  "),
            Status::Warn => style.yellow("warn"),
            Status::Fail => style.red("FAIL"),
        };
        println!("{mark} {:<18} {}", c.name, c.detail);
        if let Some(fix) = &c.fix {
            for (i, line) in fix.lines().enumerate() {
                println!(
                    "     {:<18} {}{}",
                    "",
                    if i == 0 { "fix: " } else { "" },
                    line.trim_start()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_output_is_parsed() {
        let out = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n/dev/vda        263174212 11000000 83886080      12% /\n";
        assert_eq!(parse_df_available_kib(out), Some(83_886_080));
        assert_eq!(parse_df_available_kib("garbage"), None);
    }
}
