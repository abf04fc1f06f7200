//! `backups schedule`: a schedule the host itself runs — a systemd timer when systemd is PID 1
//! (`/run/systemd/system` exists), else a cron job in `/etc/cron.d/` (Debian's cron installed and its daemon
//! started when missing, as `dockerd` is on hosts without an init system).
//!
//! The job runs, from the repository directory and with absolute paths only (cron's PATH is minimal), the
//! xtask binary that installed it with the same stack description, compose project and environment:
//! `<exe> --config <file> backups schedule --tick --env <env>`. The tick runs `backup-all` (hooks and audit
//! log included) as a child and appends its output, every line stamped with the UTC time, to
//! `<backups.dir>/.log/schedule-<project>.log`, then one closing line: `ok`, or `FAILED:` and why. A failed
//! backup writes nothing, so its service's freshness metric (`backup::freshness`) stays where it was and
//! goes stale; the `BackupStale` alert reports it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::cmd::{Cmd, cmd, shell, shell_quote};
use crate::config::Env;
use crate::context::Ctx;
use crate::files;
use crate::flags::EnvFlag;
use crate::time::Timestamp;

const CRON_DIR: &str = "/etc/cron.d";
const SYSTEMD_DIR: &str = "/etc/systemd/system";
/// What a scheduled job finds on PATH besides the directories of the installing shell's PATH.
const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Where the logs of scheduled runs go, under the backups directory.
pub const LOG_DIR: &str = ".log";
/// Non-secret variables a scheduled job carries over from the shell that installed it.
const CARRIED_VARS: [&str; 6] = [
    "DRYDOCK_PROJECT",
    "DRYDOCK_SECRETS_DIR",
    "DRYDOCK_TLS_DIR",
    "DRYDOCK_HOOKS_DIR",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scheduler {
    /// A systemd timer and service in /etc/systemd/system.
    Systemd,
    /// A file in /etc/cron.d.
    Cron,
}

impl Scheduler {
    /// systemd when it is PID 1 (the test systemd's own tools use), else cron.
    pub fn detect() -> Scheduler {
        if Path::new("/run/systemd/system").is_dir() {
            Scheduler::Systemd
        } else {
            Scheduler::Cron
        }
    }
}

/// `backups schedule`: install (default), show or remove the schedule of this stack's backups.
#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    /// When, as a cron expression of 5 fields (minute hour day-of-month month day-of-week, numbers, `*`,
    /// `a-b`, `*/n`, lists), e.g. '*/30 * * * *'; the host's local time.
    #[arg(long, value_name = "EXPR", conflicts_with = "daily")]
    pub cron: Option<String>,
    /// Every day at HH:MM, the host's local time (the default: 03:00).
    #[arg(long, value_name = "HH:MM")]
    pub daily: Option<String>,
    #[command(flatten)]
    pub env: EnvFlag,
    /// Show the installed schedule, the last lines of its log and the freshness metric.
    #[arg(long, conflicts_with_all = ["cron", "daily", "remove"])]
    pub show: bool,
    /// Remove the schedule of this stack (its log and the backups stay).
    #[arg(long, conflicts_with_all = ["cron", "daily"])]
    pub remove: bool,
    /// Use this scheduler instead of the one detected (systemd when it is PID 1, else cron).
    #[arg(long, value_enum)]
    pub scheduler: Option<Scheduler>,
    /// Run one scheduled backup now, logged (what the installed job runs).
    #[arg(long, hide = true, conflicts_with_all = ["cron", "daily", "show", "remove"])]
    pub tick: bool,
}

/// When the job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    /// minute, hour, day of month, month, day of week (cron's fields, validated).
    fields: [String; 5],
}

/// (name, lowest, highest) of each cron field.
const FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];

impl When {
    pub fn daily(text: &str) -> Result<When> {
        let bad = || {
            anyhow::anyhow!(
                "--daily {text:?} is not a time of day\n  fix: give HH:MM in 24-hour form, e.g. --daily 03:00"
            )
        };
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h > 23 || m > 59 || text.len() != 5 {
            return Err(bad());
        }
        Ok(When {
            fields: [m.to_string(), h.to_string(), "*".into(), "*".into(), "*".into()],
        })
    }

    pub fn cron(text: &str) -> Result<When> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let fix = "  fix: give 5 fields: minute hour day-of-month month day-of-week, e.g. --cron '30 2 * * *' (numbers, `*`, `a-b`, `*/n`, `a-b/n`, lists with `,`)";
        if parts.len() != 5 {
            bail!("--cron {text:?} has {} field(s), not 5\n{fix}", parts.len());
        }
        for (part, (name, lo, hi)) in parts.iter().zip(FIELDS) {
            for item in part.split(',') {
                check_item(item, lo, hi)
                    .with_context(|| format!("--cron {text:?}: the {name} field {part:?} is not valid"))
                    .map_err(|e| anyhow::anyhow!("{e:#}\n{fix}"))?;
            }
        }
        Ok(When {
            fields: parts
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .try_into()
                .expect("5 fields"),
        })
    }

    /// The five fields of a cron line.
    pub fn cron_fields(&self) -> String {
        self.fields.join(" ")
    }

    /// systemd's `OnCalendar=` for the same times. cron runs a job when the day of month *or* the day of
    /// week matches (when both are restricted); systemd needs both, so that combination is refused.
    pub fn on_calendar(&self) -> Result<String> {
        let [min, hour, dom, month, dow] = &self.fields;
        if dom != "*" && dow != "*" {
            bail!(
                "the schedule restricts both the day of month ({dom}) and the day of week ({dow}): cron runs on either, a systemd timer only on both\n  fix: restrict one of them (or give two schedules' worth of days in one field)"
            );
        }
        let convert = |field: &str, lo: u32| -> Result<String> {
            let items: Result<Vec<String>> = field
                .split(',')
                .map(|item| {
                    let (range, step) = match item.split_once('/') {
                        Some((r, s)) => (r, Some(s)),
                        None => (item, None),
                    };
                    let start = match range {
                        "*" if step.is_some() => format!("{lo:02}"),
                        "*" => "*".to_string(),
                        r => match r.split_once('-') {
                            Some((a, b)) if step.is_none() => format!("{a:0>2}..{b:0>2}"),
                            Some(_) => {
                                bail!("systemd timers have no stepped ranges ({item})\n  fix: list the values instead")
                            }
                            None => format!("{r:0>2}"),
                        },
                    };
                    Ok(match step {
                        Some(s) => format!("{start}/{s}"),
                        None => start,
                    })
                })
                .collect();
            Ok(items?.join(","))
        };
        const DAYS: [&str; 8] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let day = |n: &str| -> Result<&str> { Ok(DAYS[n.parse::<usize>().context("a day of week")?.min(7)]) };
        let weekdays = if dow == "*" {
            String::new()
        } else {
            let items: Result<Vec<String>> = dow
                .split(',')
                .map(|item| match item.split_once('-') {
                    _ if item.contains('/') || item == "*" => {
                        bail!("systemd timers take days of week as names or ranges, not {item:?}\n  fix: list the days")
                    }
                    Some((a, b)) => Ok(format!("{}..{}", day(a)?, day(b)?)),
                    None => Ok(day(item)?.to_string()),
                })
                .collect();
            format!("{} ", items?.join(","))
        };
        Ok(format!(
            "{weekdays}*-{}-{} {}:{}:00",
            convert(month, 1)?,
            convert(dom, 1)?,
            convert(hour, 0)?,
            convert(min, 0)?
        ))
    }
}

fn check_item(item: &str, lo: u32, hi: u32) -> Result<()> {
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (item, None),
    };
    let num = |t: &str| -> Result<u32> {
        let n: u32 = t.parse().map_err(|_| anyhow::anyhow!("{t:?} is not a number"))?;
        if n < lo || n > hi {
            bail!("{n} is outside {lo}-{hi}");
        }
        Ok(n)
    };
    if let Some(s) = step {
        let s: u32 = s
            .parse()
            .map_err(|_| anyhow::anyhow!("the step {s:?} is not a number"))?;
        if s == 0 {
            bail!("a step of 0");
        }
    }
    match range {
        "*" => Ok(()),
        r => match r.split_once('-') {
            Some((a, b)) => {
                if num(a)? > num(b)? {
                    bail!("the range {r} runs backwards");
                }
                Ok(())
            }
            None if step.is_some() => bail!("a step needs `*` or a range before it"),
            None => num(r).map(|_| ()),
        },
    }
}

/// Everything the installed job needs, resolved at install time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub root: PathBuf,
    pub exe: PathBuf,
    pub config: PathBuf,
    pub offline: bool,
    pub env: Env,
    pub project: String,
    pub log: PathBuf,
    /// `PATH` and the carried variables ([`CARRIED_VARS`]).
    pub vars: Vec<(String, String)>,
}

impl Job {
    pub fn resolve(ctx: &Ctx, env: Env) -> Result<Job> {
        let project = crate::compose::Compose::for_env(ctx, env)?.project;
        let exe = std::env::current_exe().context("cannot tell where this xtask binary is")?;
        let mut path: Vec<String> = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(str::to_string)
            .collect();
        path.extend(BASE_PATH.split(':').map(str::to_string));
        let mut seen = std::collections::BTreeSet::new();
        path.retain(|d| seen.insert(d.clone()));
        let mut vars = vec![("PATH".to_string(), path.join(":"))];
        for key in CARRIED_VARS {
            if let Ok(v) = std::env::var(key)
                && !v.trim().is_empty()
            {
                vars.push((key.to_string(), v));
            }
        }
        Ok(Job {
            root: ctx.root.clone(),
            exe,
            config: ctx.config_path.clone(),
            offline: ctx.offline,
            env,
            log: log_path(ctx, &project),
            project,
            vars,
        })
    }

    /// `drydock-backup-<project>` (only the characters cron accepts in a file name).
    pub fn unit(&self) -> String {
        unit_name(&self.project)
    }

    /// The job's argv: this binary, the same stack description, the tick.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![self.exe.display().to_string()];
        if self.offline {
            argv.push("--offline".into());
        }
        argv.extend([
            "--config".into(),
            self.config.display().to_string(),
            "backups".into(),
            "schedule".into(),
            "--tick".into(),
            "--env".into(),
            self.env.name().into(),
        ]);
        argv
    }

    fn header(&self) -> String {
        format!(
            "drydock: scheduled backups of compose project `{}` ({} stack) from {}, installed by `cargo xtask backups schedule` at {}.\nLog: {}. Show: `cargo xtask backups schedule --show`; remove: `cargo xtask backups schedule --remove` (same --env and DRYDOCK_PROJECT).",
            self.project,
            self.env.name(),
            self.root.display(),
            Timestamp::now(),
            self.log.display()
        )
    }

    /// The `/etc/cron.d` file: run as root from the repository, output appended to the log (the tick writes
    /// its own stamped lines; this catches a binary that is gone).
    pub fn cron_file(&self, when: &When) -> String {
        let q = |s: &str| shell_quote(s).replace('%', "\\%");
        let vars: Vec<String> = self
            .vars
            .iter()
            .filter(|(k, _)| k != "PATH")
            .map(|(k, v)| format!("{k}={}", q(v)))
            .collect();
        let argv: Vec<String> = self.argv().iter().map(|a| q(a)).collect();
        let path = self
            .vars
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(BASE_PATH);
        let header: String = self.header().lines().map(|l| format!("# {l}\n")).collect();
        format!(
            "{header}SHELL=/bin/sh\nPATH={path}\n{} root cd {} && {}{} >>{} 2>&1\n",
            when.cron_fields(),
            q(&self.root.display().to_string()),
            vars.iter().map(|v| format!("{v} ")).collect::<String>(),
            argv.join(" "),
            q(&self.log.display().to_string())
        )
    }

    /// The systemd service (a oneshot) and its timer.
    pub fn systemd_units(&self, when: &When) -> Result<(String, String)> {
        let calendar = when.on_calendar()?;
        let header: String = self.header().lines().map(|l| format!("# {l}\n")).collect();
        let env: Vec<String> = self
            .vars
            .iter()
            .map(|(k, v)| systemd_quote(&format!("{k}={v}")))
            .collect();
        let exec: Vec<String> = self.argv().iter().map(|a| systemd_quote(a)).collect();
        let log = self.log.display().to_string().replace('%', "%%");
        let service = format!(
            "{header}[Unit]\nDescription=drydock scheduled backups of {}\nAfter=docker.service\n\n[Service]\nType=oneshot\nWorkingDirectory={}\nEnvironment={}\nExecStart={}\nStandardOutput=append:{log}\nStandardError=append:{log}\n",
            self.project,
            systemd_quote(&self.root.display().to_string()),
            env.join(" "),
            exec.join(" ")
        );
        let timer = format!(
            "{header}[Unit]\nDescription=drydock scheduled backups of {}\n\n[Timer]\nOnCalendar={calendar}\nPersistent=true\nUnit={}.service\n\n[Install]\nWantedBy=timers.target\n",
            self.project,
            self.unit()
        );
        Ok((service, timer))
    }
}

/// A word of a systemd unit line: double-quoted when needed, `%` doubled (specifiers).
fn systemd_quote(word: &str) -> String {
    let w = word.replace('%', "%%");
    if w.chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\' || c == '\'' || c == ';')
    {
        format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        w
    }
}

pub fn unit_name(project: &str) -> String {
    let safe: String = project
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("drydock-backup-{safe}")
}

/// `<backups.dir>/.log/schedule-<project>.log`.
pub fn log_path(ctx: &Ctx, project: &str) -> PathBuf {
    ctx.path(&ctx.config.backups.dir)
        .join(LOG_DIR)
        .join(format!("schedule-{project}.log"))
}

/// The files a schedule of `unit` consists of.
fn unit_files(scheduler: Scheduler, unit: &str) -> Vec<PathBuf> {
    match scheduler {
        Scheduler::Cron => vec![Path::new(CRON_DIR).join(unit)],
        Scheduler::Systemd => vec![
            Path::new(SYSTEMD_DIR).join(format!("{unit}.timer")),
            Path::new(SYSTEMD_DIR).join(format!("{unit}.service")),
        ],
    }
}

pub fn run(ctx: &Ctx, args: &ScheduleArgs) -> Result<()> {
    let env = args.env.env;
    if args.tick {
        return tick(ctx, env);
    }
    let scheduler = args.scheduler.unwrap_or_else(Scheduler::detect);
    let job = Job::resolve(ctx, env)?;
    if args.show {
        return show(ctx, scheduler, &job);
    }
    if args.remove {
        return remove(ctx, scheduler, &job);
    }
    let when = match (&args.cron, &args.daily) {
        (Some(expr), _) => When::cron(expr)?,
        (None, Some(time)) => When::daily(time)?,
        (None, None) => When::daily("03:00")?,
    };
    install(ctx, scheduler, &job, &when)
}

fn need_root(what: &str) -> Result<()> {
    if !crate::provision::Host::detect().root {
        bail!(
            "{what} needs root (it writes a system schedule)\n  fix: run it as root, e.g. sudo -E cargo xtask backups schedule …"
        );
    }
    Ok(())
}

/// Debian's cron rereads /etc/cron.d only when the directory's mtime (in whole seconds) differs from the one
/// it saw at its last scan. The file is written under a temporary name and renamed, both within one second: a
/// scan between the two would record that second and never see the file. So the mtime is moved on to a later
/// second once the file is in place.
fn mark_cron_dir_changed() -> Result<()> {
    let now = std::time::SystemTime::now();
    let into_second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_nanos(u64::from(1_000_000_000 - into_second)));
    std::fs::File::open(CRON_DIR)
        .and_then(|dir| dir.set_modified(std::time::SystemTime::now()))
        .with_context(|| {
            format!("cannot update the modification time of {CRON_DIR} (cron would not notice the new file)")
        })
}

fn install(ctx: &Ctx, scheduler: Scheduler, job: &Job, when: &When) -> Result<()> {
    let files_and_texts: Vec<(PathBuf, String)> = match scheduler {
        Scheduler::Cron => vec![(unit_files(scheduler, &job.unit())[0].clone(), job.cron_file(when))],
        Scheduler::Systemd => {
            let (service, timer) = job.systemd_units(when)?;
            let paths = unit_files(scheduler, &job.unit());
            vec![(paths[1].clone(), service), (paths[0].clone(), timer)]
        }
    };
    if !job.exe.is_file() && !ctx.run.dry_run {
        bail!(
            "the xtask binary {} is gone; run `cargo xtask` once and try again",
            job.exe.display()
        );
    }
    if ctx.run.dry_run {
        for (path, text) in &files_and_texts {
            eprintln!("[dry-run] would write {}:\n{}", path.display(), text.trim_end());
        }
    } else {
        need_root("installing a schedule")?;
    }
    let mut done = Vec::new();
    if !ctx.run.dry_run {
        if let Some(dir) = job.log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        for (path, text) in &files_and_texts {
            files::replace(path, text.as_bytes(), 0o644)?;
            done.push(format!("wrote {}", path.display()));
        }
        if scheduler == Scheduler::Cron {
            mark_cron_dir_changed()?;
        }
    }
    // The daemon after the file: a cron that starts reads it at once.
    if scheduler == Scheduler::Cron
        && let Some(started) = crate::provision::ensure_cron_daemon(ctx)?
    {
        done.push(started);
    }
    if scheduler == Scheduler::Systemd {
        let sh = shell();
        let timer = format!("{}.timer", job.unit());
        ctx.run.run(&Cmd::from(cmd!(sh, "systemctl daemon-reload")))?;
        ctx.run.run(&Cmd::from(cmd!(sh, "systemctl enable --now {timer}")))?;
        done.push(format!("enabled and started {timer}"));
    }
    for line in &done {
        ctx.say(line);
    }
    ctx.say(&format!(
        "scheduled: backup-all of compose project `{}` ({} stack) at `{}` ({}, the host's local time); log {}",
        job.project,
        job.env.name(),
        when.cron_fields(),
        match scheduler {
            Scheduler::Cron => "cron".to_string(),
            Scheduler::Systemd => format!("systemd OnCalendar={}", when.on_calendar()?),
        },
        job.log.display()
    ));
    Ok(())
}

fn remove(ctx: &Ctx, scheduler: Scheduler, job: &Job) -> Result<()> {
    let paths: Vec<PathBuf> = unit_files(scheduler, &job.unit())
        .into_iter()
        .filter(|p| p.exists())
        .collect();
    if paths.is_empty() {
        ctx.say(&format!(
            "no {} schedule of compose project `{}` is installed: nothing to remove",
            match scheduler {
                Scheduler::Cron => "cron",
                Scheduler::Systemd => "systemd",
            },
            job.project
        ));
        return Ok(());
    }
    if !ctx.run.dry_run {
        need_root("removing a schedule")?;
    }
    let sh = shell();
    if scheduler == Scheduler::Systemd {
        let timer = format!("{}.timer", job.unit());
        ctx.run.run(&Cmd::from(cmd!(sh, "systemctl disable --now {timer}")))?;
    }
    for path in &paths {
        if ctx.run.dry_run {
            eprintln!("[dry-run] would delete {}", path.display());
            continue;
        }
        std::fs::remove_file(path).with_context(|| format!("cannot delete {}", path.display()))?;
        ctx.say(&format!("removed {}", path.display()));
    }
    if scheduler == Scheduler::Systemd {
        ctx.run.run(&Cmd::from(cmd!(sh, "systemctl daemon-reload")))?;
    }
    ctx.say(&format!("the log stays: {}", job.log.display()));
    Ok(())
}

fn show(ctx: &Ctx, scheduler: Scheduler, job: &Job) -> Result<()> {
    let paths = unit_files(scheduler, &job.unit());
    let installed: Vec<&PathBuf> = paths.iter().filter(|p| p.exists()).collect();
    if installed.is_empty() {
        println!(
            "no schedule of compose project `{}` is installed ({} would be used: `cargo xtask backups schedule` installs one)",
            job.project,
            match scheduler {
                Scheduler::Cron => "cron",
                Scheduler::Systemd => "a systemd timer",
            }
        );
    }
    for path in &installed {
        println!("{}:", path.display());
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            println!("  {line}");
        }
    }
    if !installed.is_empty() {
        match scheduler {
            Scheduler::Cron => match crate::provision::running("cron") {
                Some(pid) => println!("cron daemon: running (pid {pid})"),
                None => println!(
                    "cron daemon: NOT running: the schedule does not fire\n  fix: run `cargo xtask backups schedule` again (it starts it), or start `cron`"
                ),
            },
            Scheduler::Systemd => {
                let sh = shell();
                let timer = format!("{}.timer", job.unit());
                if let Some(p) = ctx
                    .run
                    .probe(&Cmd::from(cmd!(sh, "systemctl list-timers --all {timer}")))
                {
                    print!("{}", p.stdout);
                }
            }
        }
        if !job.exe.is_file() {
            println!(
                "the job's binary {} is gone: runs fail until it is rebuilt (any `cargo xtask` command)",
                job.exe.display()
            );
        }
    }
    let log = std::fs::read_to_string(&job.log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    if lines.is_empty() {
        println!("log {}: no run yet", job.log.display());
    } else {
        println!("log {} (last lines):", job.log.display());
        for line in &lines[lines.len().saturating_sub(8)..] {
            println!("  {line}");
        }
    }
    let now = Timestamp::now();
    let series = crate::backup::freshness::read(ctx)?;
    println!("freshness metric {}:", crate::backup::freshness::path(ctx).display());
    let mine: Vec<_> = series.iter().filter(|((p, ..), _)| *p == job.project).collect();
    if mine.is_empty() {
        println!("  no good backup of `{}` yet", job.project);
    }
    for ((_, service, location), newest) in mine {
        println!(
            "  {service} ({}): newest good backup finished {} ({} ago)",
            location.name(),
            newest.finished_at,
            crate::term::human_age(now.0 - newest.finished_at.0)
        );
    }
    Ok(())
}

/// Appends one stamped line to the log.
fn log_line(log: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open the schedule log {}", log.display()))?;
    writeln!(file, "{} {text}", Timestamp::now()).with_context(|| format!("cannot write {}", log.display()))
}

/// What the installed job runs: one `backup-all`, logged, with a closing line that says how it went.
fn tick(ctx: &Ctx, env: Env) -> Result<()> {
    let project = crate::compose::Compose::for_env(ctx, env)?.project;
    let log = log_path(ctx, &project);
    let dir = log.parent().expect("has a parent");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // One scheduled run per project at a time: a run still going when the next fires makes that one skip.
    let lock_path = dir.join(format!(".schedule-{project}.lock"));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        log_line(&log, "skipped: the previous scheduled run is still going")?;
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot tell where this xtask binary is")?;
    let mut child = Cmd::new(exe.display().to_string());
    if ctx.offline {
        child = child.arg("--offline");
    }
    let child = child
        .args(["--config".to_string(), ctx.config_path.display().to_string()])
        .args(["backup-all", "--env", env.name()])
        .cwd(&ctx.root);
    log_line(
        &log,
        &format!(
            "scheduled run: backup-all of compose project `{project}` ({} stack): started",
            env.name()
        ),
    )?;
    let metric = crate::backup::freshness::path(ctx);
    let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    match ctx.run.run_logged(&child, &log) {
        Ok(()) => {
            log_line(
                &log,
                &format!(
                    "ok: every backup succeeded; freshness metric updated ({})",
                    metric.display()
                ),
            )?;
            Ok(())
        }
        Err(err) => {
            // Why, from everything this run wrote (the error's own tail may have lost the first lines).
            let output = std::fs::read(&log).unwrap_or_default();
            let output: String = String::from_utf8_lossy(output.get(offset as usize..).unwrap_or_default())
                .lines()
                .map(|l| l.split_once(" | ").map_or(l, |(_, text)| text))
                .collect::<Vec<_>>()
                .join("\n");
            let report = format!("{err:#}");
            let why = why_lines(&output).unwrap_or_else(|| failure_reason(&report));
            log_line(
                &log,
                &format!(
                    "FAILED: {why}\n  the freshness metric of the failed service(s) was not moved ({}); earlier backups are untouched",
                    metric.display()
                ),
            )?;
            // Short: the whole report is in the log already (stamped), and this lands there too under cron.
            bail!("the scheduled backup failed: {why}\n  (log: {})", log.display())
        }
    }
}

/// The lines of a failed child's report that say why: the per-service failures and the final error (or
/// its first line when it has none of those).
pub fn failure_reason(report: &str) -> String {
    why_lines(report).unwrap_or_else(|| report.lines().next().unwrap_or("unknown failure").to_string())
}

fn why_lines(report: &str) -> Option<String> {
    let lines: Vec<&str> = report
        .lines()
        .map(|l| l.trim_start_matches([' ', '|']).trim_end())
        .filter(|l| l.starts_with("backup of ") || l.starts_with("error:") || l.starts_with("fix:"))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n  "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            root: "/srv/drydock".into(),
            exe: "/srv/drydock/target/debug/xtask".into(),
            config: "/srv/drydock/infra/stack.toml".into(),
            offline: true,
            env: Env::Prod,
            project: "drydock-prod".into(),
            log: "/srv/drydock/backups/.log/schedule-drydock-prod.log".into(),
            vars: vec![
                ("PATH".into(), "/root/.cargo/bin:/usr/bin:/bin".into()),
                ("DRYDOCK_SECRETS_DIR".into(), "/etc/drydock secrets".into()),
            ],
        }
    }

    #[test]
    fn cron_file_runs_the_tick_with_absolute_paths() {
        let text = job().cron_file(&When::daily("02:30").unwrap());
        let line = text.lines().last().unwrap();
        assert_eq!(
            line,
            "30 2 * * * root cd /srv/drydock && DRYDOCK_SECRETS_DIR='/etc/drydock secrets' /srv/drydock/target/debug/xtask --offline --config /srv/drydock/infra/stack.toml backups schedule --tick --env prod >>/srv/drydock/backups/.log/schedule-drydock-prod.log 2>&1"
        );
        assert!(text.contains("\nPATH=/root/.cargo/bin:/usr/bin:/bin\n"), "{text}");
        assert!(text.contains("\nSHELL=/bin/sh\n"));
        assert!(text.lines().take(2).all(|l| l.starts_with("# ")), "{text}");
        assert_eq!(job().unit(), "drydock-backup-drydock-prod");
        assert_eq!(
            unit_name("a.b/c"),
            "drydock-backup-a_b_c",
            "cron ignores names with dots"
        );
        // cron turns `%` into a newline: escaped.
        let mut j = job();
        j.root = "/srv/50%".into();
        assert!(j.cron_file(&When::daily("02:30").unwrap()).contains("cd /srv/50\\%"));
    }

    #[test]
    fn systemd_units_run_the_same_tick() {
        let (service, timer) = job().systemd_units(&When::cron("*/15 8-18 * * 1-5").unwrap()).unwrap();
        assert!(service.contains("\nType=oneshot\n"), "{service}");
        assert!(service.contains("\nWorkingDirectory=/srv/drydock\n"));
        assert!(service.contains(
            "\nExecStart=/srv/drydock/target/debug/xtask --offline --config /srv/drydock/infra/stack.toml backups schedule --tick --env prod\n"
        ));
        assert!(
            service.contains(
                "\nEnvironment=PATH=/root/.cargo/bin:/usr/bin:/bin \"DRYDOCK_SECRETS_DIR=/etc/drydock secrets\"\n"
            ),
            "{service}"
        );
        assert!(service.contains("\nStandardOutput=append:/srv/drydock/backups/.log/schedule-drydock-prod.log\n"));
        assert!(
            timer.contains("\nOnCalendar=Mon..Fri *-*-* 08..18:00/15:00\n"),
            "{timer}"
        );
        assert!(timer.contains("\nPersistent=true\n") && timer.contains("\nWantedBy=timers.target\n"));
    }

    #[test]
    fn calendar_conversions() {
        let cal = |e: &str| When::cron(e).unwrap().on_calendar();
        assert_eq!(When::daily("03:00").unwrap().on_calendar().unwrap(), "*-*-* 03:00:00");
        assert_eq!(cal("* * * * *").unwrap(), "*-*-* *:*:00");
        assert_eq!(cal("5,35 */6 1 * *").unwrap(), "*-*-01 00/6:05,35:00");
        assert_eq!(cal("0 4 * * 0,6").unwrap(), "Sun,Sat *-*-* 04:00:00");
        assert_eq!(cal("0 4 * 1-3 7").unwrap(), "Sun *-01..03-* 04:00:00");
        let both = format!("{:#}", cal("0 4 1 * 1").unwrap_err());
        assert!(both.contains("day of month") && both.contains("fix:"), "{both}");
        assert!(cal("0 0-12/2 * * *").is_err(), "no stepped ranges in systemd");
    }

    #[test]
    fn bad_schedules_are_refused_with_the_fix() {
        for (bad, says) in [
            ("* * * *", "has 4 field(s)"),
            ("60 * * * *", "60 is outside 0-59"),
            ("* 24 * * *", "24 is outside 0-23"),
            ("* * 0 * *", "0 is outside 1-31"),
            ("*/0 * * * *", "a step of 0"),
            ("5-1 * * * *", "runs backwards"),
            ("* * * jan *", "is not a number"),
            ("5/2 * * * *", "a step needs"),
            ("@daily", "has 1 field(s)"),
        ] {
            let err = format!("{:#}", When::cron(bad).unwrap_err());
            assert!(err.contains(says) && err.contains("fix:"), "{bad}: {err}");
        }
        for bad in ["3:00", "24:00", "03:60", "0300", "aa:bb"] {
            let err = format!("{:#}", When::daily(bad).unwrap_err());
            assert!(err.contains("--daily") && err.contains("fix:"), "{bad}: {err}");
        }
        assert_eq!(
            When::cron("0-59/5 1,2 1-31 * *").unwrap().cron_fields(),
            "0-59/5 1,2 1-31 * *"
        );
    }

    #[test]
    fn failure_reason_keeps_the_lines_that_say_why() {
        let report = "command failed (exit status 1):\n  $ /x/xtask backup-all --env dev\n  last lines of its stderr:\n    | $ docker compose exec\n    | backup of postgres failed: the `postgres` service of compose project `p` is not running or not ready:\n    |   fix: start it\n    | error: backup-all: postgres failed (see above); earlier backups are untouched";
        let why = failure_reason(report);
        assert!(
            why.starts_with("backup of postgres failed: the `postgres` service"),
            "{why}"
        );
        assert!(
            why.contains("fix: start it") && why.contains("error: backup-all: postgres failed"),
            "{why}"
        );
        assert_eq!(failure_reason("something else\nbroke"), "something else");
    }
}
