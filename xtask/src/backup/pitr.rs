//! Point-in-time recovery for PostgreSQL: continuous WAL archiving and base backups with pgBackRest (in the
//! PostgreSQL image, see infra/images/postgres/pgbackrest.conf), and `restore-postgres --to-time`.
//!
//! The archive: PostgreSQL's `archive_command` pushes every completed WAL segment into the pgBackRest
//! repository (the `pgbackrest-repo` volume); `archive_timeout` ([backups.pitr] in infra/stack.toml) forces a
//! segment switch so that at most that many seconds of committed writes live only on the data volume.
//! Base backups (`backups base`) are the starting points a recovery replays the archive from.
//!
//! A recovery to time T never works on the live data first:
//! 1. the target is checked before anything happens: RFC 3339, not in the future, inside the window
//!    (after the end of the oldest base backup); `pgbackrest check` first archives everything written so far;
//! 2. ask (or `--yes`), take the service's lock and a safety backup (pg_dump, as every restore does);
//! 3. pgBackRest restores the base backup into a scratch volume and a throwaway server replays the archive
//!    up to T and promotes (PostgreSQL refuses to promote when the archive ends before T);
//! 4. only then is the server stopped, its data copied aside into a second scratch volume, and replaced by
//!    the recovered copy; if that replacement fails, the copy aside is put back and the server started;
//! 5. the server starts on the recovered data (a new timeline); the scratch volumes are removed.
//!
//! So a failed PITR leaves the database as it was (steps 1–3 touch nothing live) or, if even the roll-back
//! failed, names the volume holding the old data and the safety backup.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::backup::pitr_offsite::{self, Source};
use crate::backup::take;
use crate::backup::{Engine, PgFacts, ask, lock_service, plans};
use crate::cmd::{Cmd, cmd, shell};
use crate::compose::Compose;
use crate::context::Ctx;
use crate::time::{Timestamp, civil_from_days, days_from_civil};

/// The one pgBackRest stanza of a cluster (one cluster per container).
pub const STANZA: &str = "main";
/// Where the image keeps the data directory and the repository.
pub const PGDATA: &str = "/var/lib/postgresql/data";
pub const REPO: &str = "/var/lib/pgbackrest";
/// How long a recovery may replay WAL before it is abandoned.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(1800);

/// A recovery target: a UTC instant with microseconds (PostgreSQL's precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub at: Timestamp,
    pub micros: u32,
}

impl Target {
    /// Parses RFC 3339 (`2026-12-02T03:50:58Z`, `2026-12-02T04:50:58.5+01:00`; a space may replace the `T`).
    /// Anything else is refused with the expected form: a recovery target must never be guessed.
    pub fn parse(text: &str) -> Result<Target> {
        let bad = |why: &str| {
            anyhow::anyhow!(
                "--to-time {text:?} is not an RFC 3339 time ({why})\n  fix: give a UTC time like 2026-12-02T03:50:58Z (or with an offset, e.g. 2026-12-02T04:50:58+01:00); `cargo xtask backups list` shows the recoverable window"
            )
        };
        let t = text.trim().as_bytes();
        if t.len() < 19 {
            return Err(bad("too short"));
        }
        let num = |range: std::ops::Range<usize>| -> Result<u32> {
            let part = &t[range];
            if part.iter().all(u8::is_ascii_digit) {
                Ok(std::str::from_utf8(part).unwrap_or("0").parse().unwrap_or(0))
            } else {
                Err(bad("expected digits in YYYY-MM-DDTHH:MM:SS"))
            }
        };
        if t[4] != b'-' || t[7] != b'-' || !matches!(t[10], b'T' | b't' | b' ') || t[13] != b':' || t[16] != b':' {
            return Err(bad("expected YYYY-MM-DDTHH:MM:SS"));
        }
        let (y, mo, d, h, mi, s) = (
            num(0..4)?,
            num(5..7)?,
            num(8..10)?,
            num(11..13)?,
            num(14..16)?,
            num(17..19)?,
        );
        let days_in = match mo {
            4 | 6 | 9 | 11 => 30,
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            _ => 31,
        };
        if !(1..=12).contains(&mo) || d == 0 || d > days_in || h > 23 || mi > 59 || s > 59 {
            return Err(bad("no such date or time of day"));
        }
        let mut i = 19;
        let mut micros = 0u32;
        if t.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < t.len() && t[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &t[start..i];
            if digits.is_empty() {
                return Err(bad("a '.' must be followed by digits"));
            }
            if digits.len() > 6 {
                return Err(bad("PostgreSQL keeps microseconds: at most 6 fractional digits"));
            }
            let mut value: u32 = std::str::from_utf8(digits).unwrap_or("0").parse().unwrap_or(0);
            for _ in digits.len()..6 {
                value *= 10;
            }
            micros = value;
        }
        let offset: i64 = match &t[i..] {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let digits = [*h1, *h2, *m1, *m2];
                if !digits.iter().all(u8::is_ascii_digit) {
                    return Err(bad("expected an offset like +01:00"));
                }
                let hh = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
                let mm = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
                if hh > 23 || mm > 59 {
                    return Err(bad("no such offset"));
                }
                let sign = if *sign == b'-' { -1 } else { 1 };
                sign * (hh * 3600 + mm * 60)
            }
            [] => {
                return Err(bad(
                    "the time zone is missing: end with Z for UTC or an offset like +01:00",
                ));
            }
            _ => return Err(bad("expected Z or an offset like +01:00 after the time")),
        };
        let local = days_from_civil(i64::from(y), mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s);
        Ok(Target {
            at: Timestamp(local - offset),
            micros,
        })
    }

    /// `2026-12-02T03:50:58.594585Z` (microseconds only when there are any).
    pub fn rfc3339(&self) -> String {
        let base = self.at.rfc3339();
        if self.micros == 0 {
            return base;
        }
        format!("{}.{:06}Z", base.trim_end_matches('Z'), self.micros)
    }

    /// The form pgBackRest's `--target` takes (and writes into recovery_target_time): `YYYY-MM-DD HH:MM:SS.ffffff+00`.
    pub fn pgbackrest(&self) -> String {
        let (y, mo, d) = civil_from_days(self.at.day());
        let secs = self.at.0.rem_euclid(86_400);
        format!(
            "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}.{:06}+00",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60,
            self.micros
        )
    }
}

/// One base backup as `pgbackrest info --output=json` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BaseBackup {
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: Stamps,
    #[serde(default)]
    pub error: bool,
    /// Which repository holds it (1: the local volume, 2: off-site).
    #[serde(default)]
    pub database: Database,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Database {
    #[serde(rename = "repo-key")]
    pub repo_key: u32,
}

impl Default for Database {
    fn default() -> Self {
        Database { repo_key: 1 }
    }
}

/// The base backups held by repository `repo` (see [`BaseBackup::database`]).
pub fn in_repo(backups: &[BaseBackup], repo: u32) -> Vec<BaseBackup> {
    backups
        .iter()
        .filter(|b| b.database.repo_key == repo)
        .cloned()
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Stamps {
    pub start: i64,
    pub stop: i64,
}

#[derive(Debug, Deserialize)]
struct StanzaInfo {
    name: String,
    #[serde(default)]
    backup: Vec<BaseBackup>,
    #[serde(default)]
    db: Vec<DbInfo>,
}

/// A database system a repository holds the archive of.
#[derive(Debug, Deserialize)]
struct DbInfo {
    #[serde(rename = "repo-key", default = "one")]
    repo_key: u32,
    #[serde(rename = "system-id")]
    system_id: u64,
}

fn one() -> u32 {
    1
}

/// The database system ids whose archive repository `repo` holds (empty: no stanza there yet).
pub fn systems_in(json: &str, repo: u32) -> Result<Vec<u64>> {
    Ok(stanza_info(json)?
        .flat_map(|s| s.db)
        .filter(|d| d.repo_key == repo)
        .map(|d| d.system_id)
        .collect())
}

/// [`STANZA`]'s entries of `pgbackrest info --output=json`.
fn stanza_info(json: &str) -> Result<impl Iterator<Item = StanzaInfo>> {
    let stanzas: Vec<StanzaInfo> =
        serde_json::from_str(json).context("unexpected answer from `pgbackrest info --output=json`")?;
    Ok(stanzas.into_iter().filter(|s| s.name == STANZA))
}

/// The base backups of [`STANZA`] in `pgbackrest info --output=json`, oldest first (those pgBackRest marks
/// with an error are left out: a recovery must not start from them).
pub fn parse_info(json: &str) -> Result<Vec<BaseBackup>> {
    let mut backups: Vec<BaseBackup> = stanza_info(json)?.flat_map(|s| s.backup).filter(|b| !b.error).collect();
    backups.sort_by_key(|b| b.timestamp.stop);
    Ok(backups)
}

/// What the running server says about its archiving (see [`ARCHIVER_QUERY`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archiver {
    pub mode: String,
    pub timeout_secs: u64,
    pub last_archived: Option<Timestamp>,
    pub last_archived_wal: String,
    pub failed_count: u64,
    pub last_failed: Option<Timestamp>,
}

/// One line, `|`-separated: archive_mode, archive_timeout in seconds, last archived time (epoch, 0 = never),
/// its WAL file, failures, last failure time (epoch, 0 = never).
pub const ARCHIVER_QUERY: &str = "select current_setting('archive_mode'), \
     extract(epoch from current_setting('archive_timeout')::interval)::bigint, \
     coalesce(extract(epoch from last_archived_time)::bigint, 0), coalesce(last_archived_wal, ''), \
     failed_count, coalesce(extract(epoch from last_failed_time)::bigint, 0) from pg_stat_archiver";

impl Archiver {
    pub fn parse(text: &str) -> Result<Archiver> {
        let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        let f: Vec<&str> = line.split('|').collect();
        if f.len() != 6 {
            bail!("unexpected answer about pg_stat_archiver: {line:?}");
        }
        let epoch = |s: &str| s.parse::<i64>().ok().filter(|&v| v > 0).map(Timestamp);
        Ok(Archiver {
            mode: f[0].to_string(),
            timeout_secs: f[1].parse().unwrap_or(0),
            last_archived: epoch(f[2]),
            last_archived_wal: f[3].to_string(),
            failed_count: f[4].parse().unwrap_or(0),
            last_failed: epoch(f[5]),
        })
    }

    /// The last attempt failed (a failure newer than the last success).
    pub fn failing(&self) -> bool {
        match (self.last_failed, self.last_archived) {
            (Some(failed), Some(ok)) => failed >= ok,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// The recoverable window: from just after the oldest base backup ended to the last archived WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub from: Timestamp,
    pub until: Option<Timestamp>,
    pub base_backups: usize,
}

impl Window {
    /// `None` when there is no base backup (nothing to recover from yet).
    pub fn of(backups: &[BaseBackup], archiver: Option<&Archiver>) -> Option<Window> {
        let oldest = backups.first()?;
        Some(Window {
            // pgBackRest records whole seconds and the backup is consistent only after its stop: one second
            // later is the first instant that is surely recoverable.
            from: Timestamp(oldest.timestamp.stop + 1),
            until: archiver.and_then(|a| a.last_archived),
            base_backups: backups.len(),
        })
    }

    /// Refuses a target outside the window (`now`: the present, after `pgbackrest check` archived it).
    pub fn check(&self, target: &Target, now: Timestamp) -> Result<()> {
        if target.at > now {
            return Err(in_the_future(target, now))
                .context(format!("the recoverable window is {} to now", self.from.rfc3339()));
        }
        if target.at < self.from {
            bail!(
                "--to-time {} is before the recoverable window, which starts at {} (the end of the oldest base backup): nothing was changed\n  fix: give a later time, or restore a dump taken before it (`cargo xtask backups list`)",
                target.rfc3339(),
                self.from.rfc3339()
            );
        }
        Ok(())
    }
}

fn in_the_future(target: &Target, now: Timestamp) -> anyhow::Error {
    anyhow::anyhow!(
        "--to-time {} is in the future (it is now {}): nothing was changed\n  fix: give a past time in the recoverable window (`cargo xtask backups list` shows it)",
        target.rfc3339(),
        now.rfc3339()
    )
}

/// `pgbackrest --stanza=main <args>` as the postgres user inside the service's container.
pub fn pgbackrest(compose: &Compose, service: &str, args: xshell::Cmd<'_>) -> Cmd {
    let sh = shell();
    compose
        .cmd(cmd!(sh, "exec -T -u postgres {service} pgbackrest --stanza={STANZA}"))
        .then(args)
}

pub fn info_plan(compose: &Compose, service: &str) -> Cmd {
    let sh = shell();
    pgbackrest(compose, service, cmd!(sh, "info --output=json"))
}

/// Where the image's archive command records the WAL segments pgBackRest dropped because more than
/// `archive-push-queue-max` waited (`<time> <segment>` lines, in the local repository's volume; see
/// infra/images/postgres/drydock-pgbackrest-archive).
pub const DROPPED_WAL_RECORD: &str = "/var/lib/pgbackrest/drydock-wal-dropped";

/// Prints the record of dropped WAL segments; nothing when there is none.
pub fn dropped_wal_plan(compose: &Compose, service: &str) -> Cmd {
    let sh = shell();
    let script = "if [ -e \"$1\" ]; then cat \"$1\"; fi";
    compose.cmd(cmd!(
        sh,
        "exec -T -u postgres {service} sh -c {script} dropped {DROPPED_WAL_RECORD}"
    ))
}

/// Removes the record of dropped WAL segments (after a base backup: the window starts again there).
pub fn clear_dropped_wal_plan(compose: &Compose, service: &str) -> Cmd {
    let sh = shell();
    compose.cmd(cmd!(sh, "exec -T -u postgres {service} rm -f {DROPPED_WAL_RECORD}"))
}

/// The warning about dropped WAL segments for `backups list` (pure), or `None` when none was dropped.
pub fn describe_dropped(record: &str) -> Option<String> {
    let drops: Vec<(&str, &str)> = record.lines().filter_map(|l| l.trim().split_once(' ')).collect();
    let (first, _) = drops.first()?;
    let (last, segment) = drops.last()?;
    Some(format!(
        "  WARNING: pgBackRest dropped {} WAL segment(s) between {first} and {last} (the last {segment}): more than backups.pitr.archive_queue_max_mb waited while a repository was unreachable, so no point in time after {first} can be recovered until the next base backup\n    fix: make the repository reachable, then `cargo xtask backups base`",
        drops.len()
    ))
}

/// Forces a WAL switch and waits until that segment is in the archive: afterwards every write so far is
/// recoverable (and a broken archive_command is an error here, before anything else).
pub fn check_plan(compose: &Compose, service: &str) -> Cmd {
    let sh = shell();
    pgbackrest(compose, service, cmd!(sh, "check"))
}

/// Creates the stanza when the repository has none (idempotent: a valid one is left as it is). A data volume
/// older than its `pgbackrest-repo` volume (a stack upgraded to PITR) has archived nothing yet, so its stanza
/// would otherwise only appear with the first WAL switch — after `check` or `backup` had already refused.
pub fn stanza_plan(compose: &Compose, service: &str) -> Cmd {
    let sh = shell();
    pgbackrest(compose, service, cmd!(sh, "stanza-create"))
}

/// A base backup: incremental on the last one, full when asked or when there is none yet.
pub fn backup_plan(compose: &Compose, service: &str, full: bool, repo: u32) -> Cmd {
    let sh = shell();
    let kind = if full { "full" } else { "incr" };
    let repo = repo.to_string();
    pgbackrest(compose, service, cmd!(sh, "backup --repo={repo} --type={kind}"))
}

/// A query as the database's superuser over the container's socket (one row, `|`-separated).
pub fn psql_plan(compose: &Compose, service: &str, user: &str, db: &str, sql: &str) -> Cmd {
    let sh = shell();
    compose.cmd(cmd!(
        sh,
        "exec -T -u postgres {service} psql -XAtq -v ON_ERROR_STOP=1 -U {user} -d {db} -c {sql}"
    ))
}

/// The names of the volumes a container mounts at the data directory and at the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volumes {
    pub data: String,
    pub repo: String,
    /// The `pgbackrest-conf` volume at [`pitr_offsite::CONF_DIR`] (images before it had none).
    pub conf: Option<String>,
}

/// `docker inspect` of the postgres container: its image id, then `<volume>=<destination>` per mount.
pub fn inspect_plan(container: &str) -> Cmd {
    let sh = shell();
    let format = "{{.Image}}\n{{range .Mounts}}{{.Name}}={{.Destination}}\n{{end}}";
    Cmd::from(cmd!(sh, "docker inspect --format {format} {container}"))
}

/// Parses [`inspect_plan`]'s answer into (image id, volumes).
pub fn parse_inspect(text: &str) -> Result<(String, Volumes)> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let image = lines.next().unwrap_or_default().to_string();
    let (mut data, mut repo, mut conf) = (None, None, None);
    for line in lines {
        if let Some((name, dest)) = line.split_once('=') {
            match dest {
                PGDATA => data = Some(name.to_string()),
                REPO => repo = Some(name.to_string()),
                pitr_offsite::CONF_DIR if !name.is_empty() => conf = Some(name.to_string()),
                _ => {}
            }
        }
    }
    match (image.is_empty(), data, repo) {
        (false, Some(data), Some(repo)) if !data.is_empty() && !repo.is_empty() => {
            Ok((image, Volumes { data, repo, conf }))
        }
        _ => bail!(
            "the postgres container has no named volumes at {PGDATA} and {REPO}, so it cannot be recovered to a point in time\n  fix: start it from infra/compose/compose.yaml (volumes postgres-data and pgbackrest-repo)"
        ),
    }
}

/// pgBackRest restores the base backup chosen for `target` into `scratch` and writes the recovery settings
/// (restore_command from the repository, recovery_target_time, promote at the target).
pub fn restore_plan(
    image: &str,
    repo: &str,
    scratch: &str,
    user: &str,
    target: Option<&Target>,
    source: &Source,
) -> Cmd {
    let sh = shell();
    let access = source.docker_args();
    let repo_mount = format!("{repo}:{REPO}:ro");
    let data_mount = format!("{scratch}:{PGDATA}");
    let pg_user = format!("PGBACKREST_PG1_USER={user}");
    // No target: replay the whole archive (what losing the data volume leaves).
    let to: Vec<String> = target.map_or_else(Vec::new, |t| {
        vec![
            "--type=time".into(),
            format!("--target={}", t.pgbackrest()),
            "--target-action=promote".into(),
        ]
    });
    Cmd::from(cmd!(
        sh,
        "docker run --rm {access...} -u postgres -v {repo_mount} -v {data_mount} -e {pg_user} {image} pgbackrest --stanza={STANZA} restore {to...}"
    ))
}

/// A throwaway server on the scratch copy that replays the archive to the target and promotes. No network,
/// no port; archiving on with no command, so the new timeline's files stay marked `.ready` and the real
/// server archives them once it runs on this data.
pub fn recover_plan(name: &str, image: &str, repo: &str, scratch: &str, source: &Source) -> Cmd {
    let sh = shell();
    let access = source.docker_args();
    let repo_mount = format!("{repo}:{REPO}:ro");
    let data_mount = format!("{scratch}:{PGDATA}");
    Cmd::from(cmd!(
        sh,
        "docker run --detach --name {name} {access...} -u postgres -v {repo_mount} -v {data_mount} {image} postgres -c listen_addresses= -c archive_mode=on -c archive_command="
    ))
}

/// Empties the volume `to` (as root, inside a container of the same image).
pub fn empty_plan(image: &str, to: &str) -> Cmd {
    let sh = shell();
    let mount = format!("{to}:/to");
    Cmd::from(cmd!(
        sh,
        "docker run --rm --network none -u 0:0 -v {mount} {image} find /to -mindepth 1 -delete"
    ))
}

/// Copies every file of volume `from` into volume `to`, keeping owners and modes.
pub fn copy_plan(image: &str, from: &str, to: &str) -> Cmd {
    let sh = shell();
    let (from, to) = (format!("{from}:/from:ro"), format!("{to}:/to"));
    Cmd::from(cmd!(
        sh,
        "docker run --rm --network none -u 0:0 -v {from} -v {to} {image} cp -a /from/. /to/"
    ))
}

/// The scratch volumes of one recovery: the recovered copy and the old data set aside.
pub fn scratch_names(project: &str, stamp: &str) -> (String, String) {
    (
        format!("{project}_pitr-recovered-{stamp}"),
        format!("{project}_pitr-before-{stamp}"),
    )
}

/// The service's running container (`docker compose ps -q`).
fn container(ctx: &Ctx, compose: &Compose, service: &str) -> Result<String> {
    let sh = shell();
    let id = ctx.run.read(&compose.cmd(cmd!(sh, "ps -q {service}")))?;
    let id = id.trim().to_string();
    if id.is_empty() && !ctx.run.dry_run {
        bail!(
            "the `{service}` service of compose project `{}` is not running\n  fix: start it (`cargo xtask dev-up`)",
            compose.project
        );
    }
    Ok(id)
}

/// The base backups and the archiver's state of a running server, or why they cannot be read.
pub fn status(ctx: &Ctx, compose: &Compose, service: &str) -> Result<(Vec<BaseBackup>, Option<Archiver>)> {
    let facts = match ask(ctx, compose, service, &plans::pg_facts(compose, service))? {
        Some(text) => PgFacts::parse(&text)?,
        None => PgFacts::placeholder(),
    };
    let (user, db) = (&facts.target.user, &facts.target.db);
    let archiver = ask(
        ctx,
        compose,
        service,
        &psql_plan(compose, service, user, db, ARCHIVER_QUERY),
    )?
    .map(|t| Archiver::parse(&t))
    .transpose()?;
    let Some(probe) = ctx.run.probe(&info_plan(compose, service)) else {
        return Ok((Vec::new(), archiver));
    };
    if !probe.success {
        bail!(
            "`pgbackrest info` failed in `{service}`: {}\n  fix: the image must be drydock's PostgreSQL image with pgBackRest (cargo xtask dev-up rebuilds it)",
            probe.stderr.trim()
        );
    }
    Ok((parse_info(&probe.stdout)?, archiver))
}

/// The lines `backups list` prints about point-in-time recovery (never fails: a stopped stack is said).
pub fn summary(ctx: &Ctx) -> Vec<String> {
    let pitr = &ctx.config.backups.pitr;
    if !pitr.enabled {
        return vec!["point-in-time recovery: off (backups.pitr.enabled = false in infra/stack.toml)".into()];
    }
    let service = Engine::Postgres.service(ctx);
    let compose = match crate::prod::stack_compose(ctx, crate::config::Env::Dev) {
        Ok(c) => c,
        Err(e) => return vec![format!("point-in-time recovery: unknown ({e})")],
    };
    match status(ctx, &compose, &service) {
        Err(e) => vec![format!(
            "point-in-time recovery: window unknown for compose project `{}`: {}",
            compose.project,
            format!("{e:#}")
                .lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches(':')
        )],
        Ok((backups, archiver)) => {
            let mut lines = describe(
                &in_repo(&backups, 1),
                archiver.as_ref(),
                pitr.archive_timeout,
                Timestamp::now(),
            );
            if pitr.offsite {
                lines.push(describe_offsite(&in_repo(&backups, 2)));
            }
            match ask(ctx, &compose, &service, &dropped_wal_plan(&compose, &service)) {
                Ok(Some(record)) => lines.extend(describe_dropped(&record)),
                Ok(None) => {}
                Err(e) => lines.push(format!(
                    "  dropped WAL segments: unknown ({})",
                    format!("{e:#}").lines().next().unwrap_or_default()
                )),
            }
            lines
        }
    }
}

/// The off-site repository's window in one line (its WAL is the same archive, pushed to both).
pub fn describe_offsite(backups: &[BaseBackup]) -> String {
    match backups.first() {
        None => "  off-site repository: no base backup there yet (cargo xtask backups base takes one into both)".into(),
        Some(oldest) => format!(
            "  off-site repository: recoverable from {} with `restore-postgres --to-time <T> --from-remote`; {} base backup(s), newest ended {}",
            Timestamp(oldest.timestamp.stop + 1).rfc3339(),
            backups.len(),
            Timestamp(backups.last().map_or(0, |b| b.timestamp.stop)).rfc3339()
        ),
    }
}

/// The recoverable window in words (pure, for `backups list` and its tests).
pub fn describe(backups: &[BaseBackup], archiver: Option<&Archiver>, rpo: u32, now: Timestamp) -> Vec<String> {
    let mut lines = Vec::new();
    match Window::of(backups, archiver) {
        None => lines.push(
            "point-in-time recovery: no base backup yet, nothing to recover from (take one: cargo xtask backups base)"
                .into(),
        ),
        Some(w) => {
            let until = match w.until {
                Some(t) => format!("{} (last WAL archived, {} s ago)", t.rfc3339(), now.0 - t.0),
                None => "the last archived WAL (none archived yet)".into(),
            };
            lines.push(format!(
                "point-in-time recovery: from {} to {until}; {} base backup(s), newest ended {}",
                w.from.rfc3339(),
                w.base_backups,
                Timestamp(backups.last().map_or(0, |b| b.timestamp.stop)).rfc3339()
            ));
        }
    }
    if let Some(a) = archiver {
        if a.mode != "on" && a.mode != "always" {
            lines.push(format!(
                "  WARNING: archive_mode is {:?}: writes are not archived",
                a.mode
            ));
        } else if a.failing() {
            lines.push(format!(
                "  WARNING: WAL archiving is failing ({} failures, last at {}): writes since {} are at risk; see `cargo xtask dev-logs postgres`",
                a.failed_count,
                a.last_failed.map_or("?".into(), |t| t.rfc3339()),
                a.last_archived.map_or("the start".into(), |t| t.rfc3339())
            ));
        } else {
            lines.push(format!(
                "  restore point objective: at most {} s of writes at risk (archive_timeout {} s, backups.pitr.archive_timeout = {rpo})",
                a.timeout_secs, a.timeout_secs
            ));
        }
    }
    lines
}

/// `backups base`: a pgBackRest base backup of the running server (incremental unless `full`).
pub fn base_backup(ctx: &Ctx, env: crate::config::Env, full: bool) -> Result<()> {
    require_enabled(ctx)?;
    let compose = crate::prod::stack_compose(ctx, env)?;
    let service = Engine::Postgres.service(ctx);
    ask(ctx, &compose, &service, &plans::pg_facts(&compose, &service))?;
    let _lock = lock_service(ctx, &service)?;
    let started = Instant::now();
    let offsite = prepare(ctx, &compose, &service)?;
    let repos: &[u32] = match &offsite {
        Some(o) => {
            ctx.say(&format!(
                "the base backup goes into both repositories: local and {}",
                o.describe
            ));
            &[1, 2]
        }
        None => &[1],
    };
    for &repo in repos {
        ctx.run.run(&backup_plan(&compose, &service, full, repo)).with_context(|| {
            format!(
                "the base backup of `{service}` into repository {repo} failed; the archive and the earlier base backups are unchanged"
            )
        })?;
        if ctx.run.dry_run {
            continue;
        }
        let backups = parse_info(&ctx.run.read(&info_plan(&compose, &service))?)?;
        let held = in_repo(&backups, repo);
        let newest = held.last().with_context(|| {
            format!("pgBackRest lists no base backup in repository {repo} after a successful backup")
        })?;
        ctx.say(&format!(
            "base backup {} ({}) of `{service}` in repository {repo} after {:.1} s; recoverable from {}",
            newest.label,
            newest.kind,
            started.elapsed().as_secs_f64(),
            Timestamp(held[0].timestamp.stop + 1).rfc3339()
        ));
    }
    // Segments dropped before this backup do not matter to the times after it.
    ctx.run.run(&clear_dropped_wal_plan(&compose, &service))?;
    Ok(())
}

/// Brings the repositories in line with the config before anything reads or writes them: the off-site
/// settings written (or removed), then the stanza created where it is missing. (A base backup needs no
/// `check` of its own: pgBackRest's `backup` waits until its WAL is archived and fails if it is not.)
fn prepare(ctx: &Ctx, compose: &Compose, service: &str) -> Result<Option<pitr_offsite::OffsiteRepo>> {
    let offsite = pitr_offsite::install(ctx, compose, service)?;
    ctx.run
        .run(&stanza_plan(compose, service))
        .with_context(|| format!("the pgBackRest repository of `{service}` cannot be set up; nothing was changed"))?;
    Ok(offsite)
}

fn require_enabled(ctx: &Ctx) -> Result<()> {
    if !ctx.config.backups.pitr.enabled {
        bail!(
            "point-in-time recovery is off (backups.pitr.enabled = false in infra/stack.toml): there is no WAL archive to recover from\n  fix: set it to true and restart the stack (cargo xtask dev-up)"
        );
    }
    Ok(())
}

/// `restore-postgres --to-time`: see the module's documentation for the order of the steps.
pub fn restore_to_time(ctx: &Ctx, env: crate::config::Env, time: &str, from_remote: bool) -> Result<()> {
    let target = Target::parse(time)?;
    require_enabled(ctx)?;
    if from_remote && !ctx.config.backups.pitr.offsite {
        bail!(
            "--to-time --from-remote recovers from the off-site pgBackRest repository, but there is none (backups.pitr.offsite = false in infra/stack.toml): nothing was changed\n  fix: recover from the local repository (drop --from-remote), or set offsite = true and take a base backup (cargo xtask backups base)"
        );
    }
    let now = Timestamp::now();
    if target.at > now {
        // Said before touching the stack at all.
        return Err(in_the_future(&target, now));
    }
    let compose = crate::prod::stack_compose(ctx, env)?;
    let service = Engine::Postgres.service(ctx);
    let facts = match ask(ctx, &compose, &service, &plans::pg_facts(&compose, &service))? {
        Some(text) => PgFacts::parse(&text)?,
        None => PgFacts::placeholder(),
    };
    if from_remote {
        // The off-site repository is what is left when this machine's is lost: the running server may be a new,
        // empty one that never wrote into it, so it is neither checked nor asked to archive (a target beyond
        // the last WAL that reached the store makes the recovery fail before the live data is touched).
        let repo = pitr_offsite::install(ctx, &compose, &service)?.context("backups.pitr.offsite is off")?;
        ctx.say(&format!(
            "reading the recoverable window of the off-site repository {}",
            repo.describe
        ));
    } else {
        ctx.say("archiving every write so far (pgbackrest check), then reading the recoverable window");
        let offsite = prepare(ctx, &compose, &service)?;
        // `check` archives the current WAL segment into every repository: afterwards every write so far is
        // recoverable, and a broken archive is said here, before any work.
        ctx.run.run(&check_plan(&compose, &service)).with_context(|| {
            format!(
                "WAL archiving of `{service}` does not work{}, so no point in time can be recovered: nothing was changed",
                offsite
                    .as_ref()
                    .map(|o| format!(" (repositories: local and {})", o.describe))
                    .unwrap_or_default()
            )
        })?;
    }
    let checked = Timestamp::now();
    let (backups, archiver) = status(ctx, &compose, &service)?;
    let repo = if from_remote { 2 } else { 1 };
    if !ctx.run.dry_run {
        let Some(window) = Window::of(&in_repo(&backups, repo), archiver.as_ref()) else {
            bail!(
                "`{service}` has no base backup in the {} repository, so there is nothing to recover from: nothing was changed\n  fix: take one with `cargo xtask backups base` (a recovery can reach any time after it)",
                if from_remote { "off-site" } else { "local" }
            );
        };
        window.check(&target, checked)?;
    }
    let id = container(ctx, &compose, &service)?;
    let (image, volumes) = if ctx.run.dry_run {
        (
            "<image>".to_string(),
            Volumes {
                data: format!("{}_postgres-data", compose.project),
                repo: format!("{}_pgbackrest-repo", compose.project),
                conf: Some(format!("{}_pgbackrest-conf", compose.project)),
            },
        )
    } else {
        parse_inspect(&ctx.run.read(&inspect_plan(&id))?)?
    };
    // Recovering from the off-site repository onto a new server: the local repository then holds the archive of
    // that new server (another database system), which the recovered data replaces. It is emptied before the
    // recovered server starts, or pgBackRest would refuse every WAL segment of the recovered system.
    let reset_local_repo = from_remote && !ctx.run.dry_run && {
        let info = ctx.run.read(&info_plan(&compose, &service))?;
        let (local, offsite) = (systems_in(&info, 1)?, systems_in(&info, 2)?);
        !local.is_empty() && !local.iter().any(|id| offsite.contains(id))
    };
    let source = if from_remote {
        let Some(conf_volume) = volumes.conf.clone() else {
            bail!(
                "the postgres container mounts no volume at {}, so a recovery cannot reach the off-site repository: nothing was changed\n  fix: recreate it from infra/compose/compose.yaml (cargo xtask dev-up)",
                pitr_offsite::CONF_DIR
            );
        };
        Source::Offsite {
            conf_volume,
            container: id.clone(),
        }
    } else {
        Source::Local
    };
    ctx.confirm(&format!(
        "replace ALL databases of service `{service}` (compose project `{}`) with their state at {}; PostgreSQL is stopped meanwhile",
        compose.project,
        target.rfc3339()
    ))?;
    let _lock = lock_service(ctx, &service)?;
    ctx.say(&format!("safety backup of the current `{service}` data first"));
    let reason = format!("safety backup before recovering to {}", target.rfc3339());
    let safety = take::take(ctx, &compose, Engine::Postgres, Some(reason))
        .context("the safety backup failed, so nothing was restored (the current data is untouched)")?
        .map(|t| t.manifest_path.with_file_name(&t.manifest.file).display().to_string())
        .unwrap_or_default();

    let started = Instant::now();
    let stamp = format!(
        "{}-{}",
        Timestamp::now().compact().to_ascii_lowercase(),
        std::process::id()
    );
    let (recovered, before) = scratch_names(&compose.project, &stamp);
    let sh = shell();
    let volume_rm = |name: &str| Cmd::from(cmd!(sh, "docker volume rm --force {name}"));
    let volume_create = |name: &str| Cmd::from(cmd!(sh, "docker volume create {name}"));

    // Steps 3: recover into a scratch volume; nothing live is touched, so any failure just cleans up.
    ctx.run.run(&volume_create(&recovered))?;
    let recovery = recover_into(
        ctx,
        &image,
        &volumes.repo,
        &recovered,
        &facts.target.user,
        &target,
        &source,
    );
    if let Err(err) = recovery {
        let _ = ctx.run.run(&volume_rm(&recovered));
        return Err(err.context(format!(
            "the recovery to {} failed before the live data was touched: `{service}` is as it was; safety backup: {safety}",
            target.rfc3339()
        )));
    }
    let recovered_in = started.elapsed();

    // Step 4: stop, set the old data aside, replace it; roll back on failure.
    ctx.run.run(&volume_create(&before))?;
    ctx.run.run(&compose.cmd(cmd!(sh, "stop {service}")))?;
    let aside = ctx.run.run(&copy_plan(&image, &volumes.data, &before));
    if let Err(err) = aside {
        let restarted = ctx.run.run(&compose.cmd(cmd!(sh, "start {service}")));
        let _ = ctx.run.run(&volume_rm(&before));
        let _ = ctx.run.run(&volume_rm(&recovered));
        restarted.with_context(|| format!("and `{service}` did not start again"))?;
        return Err(err.context(format!(
            "setting the current data aside failed (a full disk?): nothing was replaced, `{service}` runs on its old data; safety backup: {safety}"
        )));
    }
    let replaced = ctx
        .run
        .run(&empty_plan(&image, &volumes.data))
        .and_then(|_| ctx.run.run(&copy_plan(&image, &recovered, &volumes.data)));
    if let Err(err) = replaced {
        let rolled_back = ctx
            .run
            .run(&empty_plan(&image, &volumes.data))
            .and_then(|_| ctx.run.run(&copy_plan(&image, &before, &volumes.data)))
            .and_then(|_| ctx.run.run(&compose.cmd(cmd!(sh, "start {service}"))));
        return match rolled_back {
            Ok(_) => {
                let _ = ctx.run.run(&volume_rm(&before));
                let _ = ctx.run.run(&volume_rm(&recovered));
                Err(err.context(format!(
                    "replacing the data failed and was rolled back: `{service}` runs on its old data; safety backup: {safety}"
                )))
            }
            Err(back) => Err(err.context(format!(
                "replacing the data failed, and so did putting the old data back ({back:#}): `{service}` is stopped.\n  The old data is in volume {before}, the recovered data in volume {recovered}, and the safety backup is {safety}\n  fix: docker run --rm -u 0:0 -v {before}:/from:ro -v {}:/to {image} cp -a /from/. /to/  (into the emptied data volume), then cargo xtask dev-up",
                volumes.data
            ))),
        };
    }
    if reset_local_repo {
        ctx.say(&format!(
            "the local repository (volume {}) holds the archive of the server that was just replaced, another database system: emptied, so the recovered system archives there from now on",
            volumes.repo
        ));
        ctx.run.run(&empty_plan(&image, &volumes.repo)).with_context(|| {
            format!(
                "emptying the local repository failed: `{service}` holds the recovered data but is stopped\n  fix: docker run --rm -u 0:0 -v {}:/to {image} find /to -mindepth 1 -delete, then cargo xtask dev-up",
                volumes.repo
            )
        })?;
    }
    // Step 5: start on the recovered data.
    let started_again = ctx
        .run
        .run(&compose.cmd(cmd!(sh, "start {service}")))
        .and_then(|_| wait_primary(ctx, &compose, &service, &facts.target.user, &facts.target.db));
    if let Err(err) = started_again {
        return Err(err.context(format!(
            "`{service}` did not come up on the recovered data. The old data is kept in volume {before} (copy it back with: docker run --rm -u 0:0 -v {before}:/from:ro -v {}:/to {image} cp -a /from/. /to/ into the emptied data volume); safety backup: {safety}",
            volumes.data
        )));
    }
    ctx.run.run(&volume_rm(&before))?;
    ctx.run.run(&volume_rm(&recovered))?;
    ctx.say(&format!(
        "recovered `{service}` to {} in {:.1} s (replay {:.1} s); it runs on a new timeline. Safety backup: {safety}. Take a base backup now (cargo xtask backups base) so later recoveries start from this timeline",
        target.rfc3339(),
        started.elapsed().as_secs_f64(),
        recovered_in.as_secs_f64()
    ));
    Ok(())
}

/// Step 3: pgBackRest restore into `scratch`, then a throwaway server replays to the target and promotes;
/// stopped cleanly afterwards (a shutdown checkpoint), so the copy starts without any recovery.
fn recover_into(
    ctx: &Ctx,
    image: &str,
    repo: &str,
    scratch: &str,
    user: &str,
    target: &Target,
    source: &Source,
) -> Result<()> {
    ctx.say(&format!(
        "restoring the base backup for {} from repository {} into volume {scratch}",
        target.rfc3339(),
        source.repo()
    ));
    ctx.run
        .run(&restore_plan(image, repo, scratch, user, Some(target), source))?;
    let name = format!("{scratch}-server");
    ctx.say(&format!(
        "replaying the WAL archive up to {} (container {name})",
        target.rfc3339()
    ));
    ctx.run.run(&recover_plan(&name, image, repo, scratch, source))?;
    let result = wait_promoted(ctx, &name, user);
    let sh = shell();
    // Fast shutdown (the image's stop signal) writes a shutdown checkpoint; the exit status must be 0.
    let stopped = ctx
        .run
        .run(&Cmd::from(cmd!(sh, "docker stop -t 120 {name}")))
        .and_then(|_| {
            let format = "{{.State.ExitCode}}";
            let code = ctx
                .run
                .read(&Cmd::from(cmd!(sh, "docker inspect --format {format} {name}")))?;
            if code.trim() != "0" && !ctx.run.dry_run {
                bail!("the recovery server exited with status {} on shutdown", code.trim());
            }
            Ok(())
        });
    let logs = if result.is_err() {
        ctx.run
            .probe(&Cmd::from(cmd!(sh, "docker logs --tail 15 {name}")))
            .map(|p| format!("{}{}", p.stdout, p.stderr))
            .unwrap_or_default()
    } else {
        String::new()
    };
    let _ = ctx.run.run(&Cmd::from(cmd!(sh, "docker rm --force {name}")));
    result.with_context(|| format!("the recovery server's log ends with:\n{}", logs.trim()))?;
    stopped
}

/// Waits (bounded) until the recovery server has promoted; fails at once if it stopped (PostgreSQL stops
/// with FATAL when the archive ends before the target, or the target is before a consistent state).
fn wait_promoted(ctx: &Ctx, name: &str, user: &str) -> Result<()> {
    if ctx.run.dry_run {
        return Ok(());
    }
    let sh = shell();
    let query = "select pg_is_in_recovery()";
    let ask = Cmd::from(cmd!(
        sh,
        "docker exec -u postgres {name} psql -XAtq -U {user} -d postgres -c {query}"
    ));
    let format = "{{.State.Running}}";
    let running = Cmd::from(cmd!(sh, "docker inspect --format {format} {name}"));
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    loop {
        if let Some(p) = ctx.run.probe(&ask)
            && p.success
            && p.stdout.trim() == "f"
        {
            return Ok(());
        }
        let alive = ctx.run.probe(&running).is_some_and(|p| p.stdout.trim() == "true");
        if !alive {
            bail!(
                "PostgreSQL stopped during the recovery (the archive may end before the target, or the target is before a consistent state)"
            );
        }
        if Instant::now() > deadline {
            bail!("the recovery did not finish within {} s", RECOVERY_TIMEOUT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Waits (bounded) until the service accepts queries as a primary (not in recovery).
fn wait_primary(ctx: &Ctx, compose: &Compose, service: &str, user: &str, db: &str) -> Result<()> {
    if ctx.run.dry_run {
        return Ok(());
    }
    let ask = psql_plan(compose, service, user, db, "select pg_is_in_recovery()");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        match ctx.run.probe(&ask) {
            Some(p) if p.success && p.stdout.trim() == "f" => return Ok(()),
            Some(p) if Instant::now() > deadline => {
                bail!("`{service}` did not accept queries within 180 s: {}", p.stderr.trim())
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Target {
        Target::parse(text).unwrap()
    }

    #[test]
    fn dropped_wal_segments_are_a_warning_with_the_fix() {
        assert_eq!(describe_dropped(""), None);
        let record = "2026-12-03T12:00:01Z 000000010000000000000007\n2026-12-03T12:00:09Z 000000010000000000000009\n";
        let line = describe_dropped(record).unwrap();
        assert!(
            line.contains("dropped 2 WAL segment(s) between 2026-12-03T12:00:01Z and 2026-12-03T12:00:09Z")
                && line.contains("(the last 000000010000000000000009)")
                && line.contains("no point in time after 2026-12-03T12:00:01Z")
                && line.contains("fix: make the repository reachable, then `cargo xtask backups base`"),
            "{line}"
        );
    }

    #[test]
    fn rfc3339_targets_parse_to_utc_with_microseconds() {
        let utc = t("2026-12-02T03:50:58Z");
        assert_eq!(utc.at, Timestamp::from_civil(2026, 12, 2, 3, 50, 58));
        assert_eq!(utc.micros, 0);
        assert_eq!(t("2026-12-02T04:50:58+01:00").at, utc.at);
        assert_eq!(t("2026-12-01T22:20:58-05:30").at, utc.at);
        assert_eq!(t("2026-12-02 03:50:58z").at, utc.at);
        let fine = t("2026-12-02T03:50:58.5945Z");
        assert_eq!(fine.micros, 594_500);
        assert_eq!(fine.rfc3339(), "2026-12-02T03:50:58.594500Z");
        assert_eq!(fine.pgbackrest(), "2026-12-02 03:50:58.594500+00");
        assert_eq!(utc.rfc3339(), "2026-12-02T03:50:58Z");
        assert!(fine > utc);
    }

    #[test]
    fn garbage_targets_are_refused_with_the_expected_form() {
        for bad in [
            "",
            "yesterday",
            "2026-12-02",
            "2026-12-02T03:50:58",
            "2026-12-02T03:50:58+0100",
            "2026-13-02T03:50:58Z",
            "2026-02-30T03:50:58Z",
            "2026-12-02T24:00:00Z",
            "2026-12-02T03:50:58.Z",
            "2026-12-02T03:50:58.1234567Z",
            "2026-12-02T03:50:58Z trailing",
            "1796183313",
        ] {
            let err = Target::parse(bad).unwrap_err().to_string();
            assert!(err.contains("RFC 3339") && err.contains("fix:"), "{bad:?}: {err}");
        }
    }

    fn backup(label: &str, kind: &str, start: i64, stop: i64) -> BaseBackup {
        BaseBackup {
            label: label.into(),
            kind: kind.into(),
            timestamp: Stamps { start, stop },
            error: false,
            database: Database::default(),
        }
    }

    #[test]
    fn info_json_gives_the_backups_oldest_first_without_failed_ones() {
        let json = r#"[{"archive":[{"id":"17-1","max":"000000010000000000000003","min":"000000010000000000000001"}],
            "backup":[
              {"label":"20261202-040000F_20261202-041000I","type":"incr","timestamp":{"start":1796184600,"stop":1796184603},"error":false},
              {"label":"20261202-034830F","type":"full","timestamp":{"start":1796183310,"stop":1796183313},"error":false},
              {"label":"bad","type":"full","timestamp":{"start":1,"stop":2},"error":true}],
            "name":"main","status":{"code":0,"message":"ok"}},
            {"name":"other","backup":[{"label":"x","type":"full","timestamp":{"start":5,"stop":6}}]}]"#;
        let backups = parse_info(json).unwrap();
        assert_eq!(
            backups,
            [
                backup("20261202-034830F", "full", 1796183310, 1796183313),
                backup("20261202-040000F_20261202-041000I", "incr", 1796184600, 1796184603)
            ]
        );
        assert!(
            parse_info(r#"[{"name":"main","status":{"code":1}}]"#)
                .unwrap()
                .is_empty()
        );
        assert!(parse_info("ERROR: [055]").is_err());
    }

    #[test]
    fn the_window_refuses_times_before_it_and_in_the_future() {
        let backups = [backup("a", "full", 1000, 1010)];
        let w = Window::of(&backups, None).unwrap();
        assert_eq!(w.from, Timestamp(1011));
        let now = Timestamp(5000);
        let at = |s: i64| Target {
            at: Timestamp(s),
            micros: 0,
        };
        w.check(&at(1011), now).unwrap();
        w.check(&at(5000), now).unwrap();
        let before = w.check(&at(1010), now).unwrap_err().to_string();
        assert!(before.contains("before the recoverable window") && before.contains("nothing was changed"));
        let future = format!("{:#}", w.check(&at(5001), now).unwrap_err());
        assert!(future.contains("in the future") && future.contains("nothing was changed"));
        assert!(Window::of(&[], None).is_none());
    }

    #[test]
    fn archiver_state_parses_and_says_when_archiving_fails() {
        let ok = Archiver::parse("on|60|1796183313|000000010000000000000003|0|0\n").unwrap();
        assert_eq!(ok.timeout_secs, 60);
        assert_eq!(ok.last_archived, Some(Timestamp(1796183313)));
        assert!(!ok.failing());
        let failing = Archiver::parse("on|60|1000|x|3|2000").unwrap();
        assert!(failing.failing());
        assert!(Archiver::parse("on|60").is_err());
        let backups = [backup("a", "full", 1000, 1010)];
        let text = describe(&backups, Some(&failing), 60, Timestamp(3000)).join("\n");
        assert!(
            text.contains("from 1970-01-01T00:16:51Z") && text.contains("WARNING: WAL archiving is failing"),
            "{text}"
        );
        let text = describe(&backups, Some(&ok), 60, Timestamp(1796183323)).join("\n");
        assert!(
            text.contains("10 s ago") && text.contains("at most 60 s of writes at risk"),
            "{text}"
        );
        assert!(describe(&[], None, 60, Timestamp(0))[0].contains("no base backup yet"));
        assert!(describe_offsite(&[]).contains("no base backup there yet"));
        assert!(describe_offsite(&backups).contains("recoverable from 1970-01-01T00:16:51Z"));
    }

    #[test]
    fn backups_are_told_apart_by_repository() {
        let json = r#"[{"name":"main","backup":[
              {"label":"L","type":"full","timestamp":{"start":10,"stop":20},"database":{"id":1,"repo-key":1}},
              {"label":"R","type":"full","timestamp":{"start":11,"stop":21},"database":{"id":1,"repo-key":2}}]}]"#;
        let all = parse_info(json).unwrap();
        let labels = |repo| in_repo(&all, repo).into_iter().map(|b| b.label).collect::<Vec<_>>();
        assert_eq!(labels(1), ["L"]);
        assert_eq!(labels(2), ["R"]);
        let systems = r#"[{"name":"main","db":[
              {"id":1,"repo-key":1,"system-id":7441,"version":"17"},
              {"id":1,"repo-key":2,"system-id":9999,"version":"17"}]}]"#;
        assert_eq!(systems_in(systems, 1).unwrap(), [7441]);
        assert_eq!(systems_in(systems, 2).unwrap(), [9999]);
        assert!(
            systems_in(r#"[{"name":"main","status":{"code":1}}]"#, 1)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn inspect_names_the_data_and_repository_volumes() {
        let text = "sha256:abc\np_postgres-data=/var/lib/postgresql/data\np_pgbackrest-repo=/var/lib/pgbackrest\n";
        let (image, v) = parse_inspect(text).unwrap();
        assert_eq!(image, "sha256:abc");
        assert_eq!(v.data, "p_postgres-data");
        assert_eq!(v.repo, "p_pgbackrest-repo");
        assert_eq!(v.conf, None);
        let (_, v) = parse_inspect(&format!("{text}p_pgbackrest-conf=/etc/pgbackrest/conf.d\n")).unwrap();
        assert_eq!(v.conf.as_deref(), Some("p_pgbackrest-conf"));
        let err = parse_inspect("sha256:abc\n=/var/lib/postgresql/data\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("named volumes"), "{err}");
    }

    fn compose() -> Compose {
        Compose {
            project: "p".into(),
            files: vec!["c.yaml".into()],
            env_file: None,
            env: Vec::new(),
            profiles: Vec::new(),
        }
    }

    #[test]
    fn plans_have_the_exact_argv() {
        let c = compose();
        let base = [
            "docker", "compose", "-p", "p", "-f", "c.yaml", "exec", "-T", "-u", "postgres", "postgres",
        ];
        let with = |tail: &[&str]| base.iter().chain(tail).map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            backup_plan(&c, "postgres", false, 1).argv(),
            with(&["pgbackrest", "--stanza=main", "backup", "--repo=1", "--type=incr"])
        );
        assert_eq!(
            backup_plan(&c, "postgres", true, 2).argv(),
            with(&["pgbackrest", "--stanza=main", "backup", "--repo=2", "--type=full"])
        );
        assert_eq!(
            check_plan(&c, "postgres").argv(),
            with(&["pgbackrest", "--stanza=main", "check"])
        );
        assert_eq!(
            info_plan(&c, "postgres").argv(),
            with(&["pgbackrest", "--stanza=main", "info", "--output=json"])
        );
        let target = t("2026-12-02T03:50:58.25Z");
        assert_eq!(
            restore_plan("img", "repo", "scratch", "drydock", Some(&target), &Source::Local).argv(),
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "-u",
                "postgres",
                "-v",
                "repo:/var/lib/pgbackrest:ro",
                "-v",
                "scratch:/var/lib/postgresql/data",
                "-e",
                "PGBACKREST_PG1_USER=drydock",
                "img",
                "pgbackrest",
                "--stanza=main",
                "restore",
                "--type=time",
                "--target=2026-12-02 03:50:58.250000+00",
                "--target-action=promote"
            ]
        );
        let whole = restore_plan("img", "repo", "scratch", "drydock", None, &Source::Local);
        assert_eq!(
            whole.argv().last(),
            Some(&"restore"),
            "no target: to the end of the archive"
        );
        assert_eq!(
            recover_plan("n", "img", "repo", "scratch", &Source::Local).argv(),
            [
                "docker",
                "run",
                "--detach",
                "--name",
                "n",
                "--network",
                "none",
                "-u",
                "postgres",
                "-v",
                "repo:/var/lib/pgbackrest:ro",
                "-v",
                "scratch:/var/lib/postgresql/data",
                "img",
                "postgres",
                "-c",
                "listen_addresses=",
                "-c",
                "archive_mode=on",
                "-c",
                "archive_command="
            ]
        );
        assert_eq!(
            copy_plan("img", "a", "b").argv(),
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "-u",
                "0:0",
                "-v",
                "a:/from:ro",
                "-v",
                "b:/to",
                "img",
                "cp",
                "-a",
                "/from/.",
                "/to/"
            ]
        );
        assert_eq!(
            empty_plan("img", "b").argv(),
            [
                "docker",
                "run",
                "--rm",
                "--network",
                "none",
                "-u",
                "0:0",
                "-v",
                "b:/to",
                "img",
                "find",
                "/to",
                "-mindepth",
                "1",
                "-delete"
            ]
        );
        let (recovered, before) = scratch_names("p", "x");
        assert_eq!(
            (recovered.as_str(), before.as_str()),
            ("p_pitr-recovered-x", "p_pitr-before-x")
        );
    }
}
