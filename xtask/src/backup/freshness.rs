//! How fresh the backups are, for Prometheus: the time of the newest good backup of each service, local and
//! remote, in `<backups.dir>/.metrics/drydock_backup.prom` (the Prometheus text format), which node-exporter's
//! textfile collector serves (infra/compose/compose.prod.yaml, profile `monitoring`) and the `BackupStale`
//! alert of infra/monitoring/alerts.yml watches.
//!
//! # The series
//!
//! ```text
//! drydock_backup_last_success_timestamp_seconds{project="drydock",service="postgres",location="local"} 1767323049
//! drydock_backup_last_success_timestamp_seconds{project="drydock",service="postgres",location="remote"} 1767323101
//! drydock_backup_last_size_bytes{project="drydock",service="postgres",location="local"} 48213
//! drydock_backup_last_duration_seconds{project="drydock",service="postgres",location="local"} 1.84
//! drydock_backup_good_count{project="drydock",service="postgres",location="local"} 7
//! ```
//!
//! The timestamp is the manifest's `finished_at` (when the backup became good). `local` series are computed
//! from the complete backups present on disk (a manifest that reads, every file it lists present), per
//! compose project and service, so a pruned or deleted backup is reflected the next time the file is
//! written; a failed backup writes nothing, so its service's series stays where it was and goes stale.
//!
//! # The API
//!
//! - [`refresh`]: recomputes the local series (called after every successful backup and every prune); the
//!   remote series already in the file are kept.
//! - [`record_remote`]: **call it after a verified off-site push** (every file's SHA-256 checked on the
//!   remote): `freshness::record_remote(ctx, &manifest)?` with the manifest of the backup just pushed. The
//!   remote series of that backup's project and service moves to its `finished_at`, never backwards (pushing
//!   an older backup later does not make the remote copy look older). It also recomputes the local series.
//! - [`forget_remote`]: drops a remote series (e.g. when the remote is unconfigured).
//! - [`read`] / [`render`] / [`parse`]: the file's content as values (tests, `backups schedule --show`).
//! - [`path`]: where the file is.
//!
//! Both locations' series live in the one file, written atomically (`files::replace`: a temporary file beside
//! it, fsync, rename; node-exporter reads only `*.prom`, so it never sees a half-written file) under a lock
//! (`.metrics/.lock`), so concurrent backups of different services never lose each other's update. The file
//! is world-readable (0644, no secrets in it): node-exporter runs as `nobody`.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::Engine;
use super::manifest::Manifest;
use super::store;
use crate::context::Ctx;
use crate::files;
use crate::time::Timestamp;

/// The directory node-exporter's textfile collector reads, under the backups directory.
pub const METRICS_DIR: &str = ".metrics";
/// The file in it.
pub const METRICS_FILE: &str = "drydock_backup.prom";

pub const LAST_SUCCESS: &str = "drydock_backup_last_success_timestamp_seconds";
pub const LAST_SIZE: &str = "drydock_backup_last_size_bytes";
pub const LAST_DURATION: &str = "drydock_backup_last_duration_seconds";
pub const GOOD_COUNT: &str = "drydock_backup_good_count";

/// Where a copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Location {
    Local,
    Remote,
}

impl Location {
    pub fn name(self) -> &'static str {
        match self {
            Location::Local => "local",
            Location::Remote => "remote",
        }
    }
}

/// One series' labels: (project, service, location).
pub type Key = (String, String, Location);

/// What is known about the newest good copy of one service of one project at one location.
#[derive(Debug, Clone, PartialEq)]
pub struct Newest {
    pub finished_at: Timestamp,
    /// Local only (the remote side records the time).
    pub size: Option<u64>,
    pub duration_secs: Option<f64>,
    pub good: Option<u64>,
}

/// The content of the metrics file.
pub type Series = BTreeMap<Key, Newest>;

/// `<backups.dir>/.metrics/drydock_backup.prom`.
pub fn path(ctx: &Ctx) -> PathBuf {
    ctx.path(&ctx.config.backups.dir).join(METRICS_DIR).join(METRICS_FILE)
}

/// The local series computed from the complete backups under `backups_dir` (one directory per service).
pub fn scan_local(backups_dir: &Path, services: &[String]) -> Result<Series> {
    let mut series = Series::new();
    for service in services {
        let dir = backups_dir.join(service);
        for found in store::scan(&dir, service)? {
            if !found.complete() {
                continue;
            }
            let Ok(m) = &found.manifest else { continue };
            let key = (found.name.project.clone(), service.clone(), Location::Local);
            let finished_at = Timestamp::parse_rfc3339(&m.finished_at).unwrap_or(found.name.timestamp);
            match series.get_mut(&key) {
                // scan() is newest first: the first complete one is the newest.
                Some(newest) => newest.good = Some(newest.good.unwrap_or(0) + 1),
                None => {
                    series.insert(
                        key,
                        Newest {
                            finished_at,
                            size: Some(m.files.iter().map(|f| f.size).sum()),
                            duration_secs: Some(m.duration_secs),
                            good: Some(1),
                        },
                    );
                }
            }
        }
    }
    Ok(series)
}

/// The services whose backups count (infra/stack.toml `[services]`).
fn services(ctx: &Ctx) -> Vec<String> {
    let mut services: Vec<String> = Engine::ALL.iter().map(|e| e.service(ctx)).collect();
    services.dedup();
    services
}

/// Recomputes the local series from the backups on disk and rewrites the file (remote series kept).
pub fn refresh(ctx: &Ctx) -> Result<PathBuf> {
    update(ctx, |_| {})
}

/// Records a verified off-site copy of the backup `pushed` (see the module's documentation).
pub fn record_remote(ctx: &Ctx, pushed: &Manifest) -> Result<PathBuf> {
    let finished_at = Timestamp::parse_rfc3339(&pushed.finished_at)
        .with_context(|| format!("the manifest of {} has no valid finished_at", pushed.file))?;
    let key = (pushed.project.clone(), pushed.service.clone(), Location::Remote);
    update(ctx, |series| {
        let newer = series.get(&key).is_none_or(|n| n.finished_at < finished_at);
        if newer {
            series.insert(
                key,
                Newest {
                    finished_at,
                    size: None,
                    duration_secs: None,
                    good: None,
                },
            );
        }
    })
}

/// Drops the remote series of a project's service.
pub fn forget_remote(ctx: &Ctx, project: &str, service: &str) -> Result<PathBuf> {
    let key = (project.to_string(), service.to_string(), Location::Remote);
    update(ctx, |series| {
        series.remove(&key);
    })
}

/// After a successful backup or prune: refreshes the file, and only warns when that fails (the backup itself
/// is good; the metric then goes stale, which the alert reports).
pub fn refresh_after(ctx: &Ctx, what: &str) {
    if ctx.run.dry_run {
        return;
    }
    if let Err(err) = refresh(ctx) {
        eprintln!(
            "{}",
            crate::term::Style::stderr().yellow(&format!(
                "warning: {what} succeeded but the freshness metric was not updated: {err:#}\n  fix: make {} writable; until then the BackupStale alert will fire",
                path(ctx).parent().map(|p| p.display().to_string()).unwrap_or_default()
            ))
        );
    }
}

/// The file's series (empty when there is none yet).
pub fn read(ctx: &Ctx) -> Result<Series> {
    let path = path(ctx);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse(&text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Series::new()),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn update(ctx: &Ctx, change: impl FnOnce(&mut Series)) -> Result<PathBuf> {
    let path = path(ctx);
    let dir = path.parent().expect("has a parent").to_path_buf();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock_path = dir.join(".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    // Held for a few milliseconds by whoever writes: waiting is right here.
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    let mut series: Series = read(ctx)?
        .into_iter()
        .filter(|(key, _)| key.2 == Location::Remote)
        .collect();
    series.extend(scan_local(&ctx.path(&ctx.config.backups.dir), &services(ctx))?);
    change(&mut series);
    files::replace(&path, render(&series).as_bytes(), 0o644)?;
    // node-exporter (nobody) must list the directory and read the file whatever the umask.
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
    }
    drop(lock);
    Ok(path)
}

/// A label value in the text format: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn labels(key: &Key) -> String {
    format!(
        "project=\"{}\",service=\"{}\",location=\"{}\"",
        escape(&key.0),
        escape(&key.1),
        key.2.name()
    )
}

/// How one metric's value is read off a series (None: this metric has no sample for it).
type Sample = fn(&Newest) -> Option<String>;

/// The Prometheus text format of `series` (HELP and TYPE lines, one sample per series, sorted).
pub fn render(series: &Series) -> String {
    let mut out = String::new();
    let metrics: [(&str, &str, Sample); 4] = [
        (
            LAST_SUCCESS,
            "Unix time at which the newest good backup of a service finished (local: complete on disk; remote: pushed and verified by SHA-256).",
            |n| Some(n.finished_at.0.to_string()),
        ),
        (
            LAST_SIZE,
            "Total size of the files of the newest good local backup.",
            |n| n.size.map(|s| s.to_string()),
        ),
        (LAST_DURATION, "How long the newest good local backup took.", |n| {
            n.duration_secs.map(|d| d.to_string())
        }),
        (GOOD_COUNT, "Number of good backups of a service on disk.", |n| {
            n.good.map(|g| g.to_string())
        }),
    ];
    for (name, help, value) in metrics {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (key, newest) in series {
            if let Some(v) = value(newest) {
                out.push_str(&format!("{name}{{{}}} {v}\n", labels(key)));
            }
        }
    }
    out
}

/// Reads back what [`render`] wrote (other lines are ignored).
pub fn parse(text: &str) -> Series {
    let mut series = Series::new();
    for line in text.lines() {
        let Some((name, rest)) = line.split_once('{') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let labels = parse_labels(labels);
        let (Some(project), Some(service), Some(location)) =
            (labels.get("project"), labels.get("service"), labels.get("location"))
        else {
            continue;
        };
        let location = match location.as_str() {
            "local" => Location::Local,
            "remote" => Location::Remote,
            _ => continue,
        };
        let key = (project.clone(), service.clone(), location);
        let value = value.trim();
        let entry = series.entry(key);
        let parsed: Option<f64> = value.parse().ok();
        let Some(v) = parsed else { continue };
        let newest = entry.or_insert(Newest {
            finished_at: Timestamp(0),
            size: None,
            duration_secs: None,
            good: None,
        });
        match name {
            LAST_SUCCESS => newest.finished_at = Timestamp(v as i64),
            LAST_SIZE => newest.size = Some(v as u64),
            LAST_DURATION => newest.duration_secs = Some(v),
            GOOD_COUNT => newest.good = Some(v as u64),
            _ => {}
        }
    }
    // A series without its timestamp is not one.
    series.retain(|_, n| n.finished_at.0 > 0);
    series
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() || chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                other => value.push(other),
            }
        }
        labels.insert(name.trim_start_matches(',').trim().to_string(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::{FORMAT, FileEntry, Sanity};
    use crate::backup::name::BackupName;

    fn write_backup(dir: &Path, project: &str, service: &str, ts: Timestamp, size: usize) -> BackupName {
        let name = BackupName {
            project: project.into(),
            service: service.into(),
            timestamp: ts,
        };
        let data = vec![b'R'; size];
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name.file("rdb")), &data).unwrap();
        let m = Manifest {
            format: FORMAT,
            engine: "redis".into(),
            project: project.into(),
            service: service.into(),
            database: "all".into(),
            server_version: "8".into(),
            tool_version: "redis-cli 8".into(),
            written_by: "xtask".into(),
            git_revision: "x".into(),
            started_at: ts.rfc3339(),
            finished_at: Timestamp(ts.0 + 3).rfc3339(),
            duration_secs: 2.5,
            file: name.file("rdb"),
            size: size as u64,
            sha256: "00".repeat(32),
            compression: "none".into(),
            files: vec![FileEntry {
                role: "rdb".into(),
                name: name.file("rdb"),
                size: size as u64,
                sha256: "00".repeat(32),
                plain: None,
            }],
            sanity: Sanity::default(),
            reason: None,
            encryption: None,
        };
        files::write_new(&dir.join(name.manifest()), m.to_json().as_bytes(), 0o600).unwrap();
        name
    }

    #[test]
    fn local_series_come_from_complete_backups_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("redis");
        let t1 = Timestamp::from_civil(2026, 1, 1, 3, 0, 0);
        let t2 = Timestamp::from_civil(2026, 1, 2, 3, 0, 0);
        let t3 = Timestamp::from_civil(2026, 1, 3, 3, 0, 0);
        write_backup(&dir, "dd", "redis", t1, 10);
        write_backup(&dir, "dd", "redis", t2, 20);
        let broken = write_backup(&dir, "dd", "redis", t3, 30);
        write_backup(&dir, "other", "redis", t1, 5);
        // The newest lost its data file: it is not good, the one before is the newest good one.
        std::fs::remove_file(dir.join(broken.file("rdb"))).unwrap();
        let series = scan_local(tmp.path(), &["postgres".into(), "redis".into()]).unwrap();
        let dd = &series[&("dd".to_string(), "redis".to_string(), Location::Local)];
        assert_eq!(
            dd.finished_at,
            Timestamp(t2.0 + 3),
            "finished_at of the newest complete one"
        );
        assert_eq!((dd.size, dd.good, dd.duration_secs), (Some(20), Some(2), Some(2.5)));
        let other = &series[&("other".to_string(), "redis".to_string(), Location::Local)];
        assert_eq!(other.good, Some(1));
        assert_eq!(series.len(), 2, "no series for a service without backups: {series:?}");
    }

    #[test]
    fn remote_series_only_move_forward_and_survive_local_refreshes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut ctx = Ctx::for_plan_tests();
        ctx.config.backups.dir = tmp.path().display().to_string();
        let redis = ctx.config.services.redis.clone();
        let t1 = Timestamp::from_civil(2026, 1, 1, 3, 0, 0);
        let t2 = Timestamp::from_civil(2026, 1, 2, 3, 0, 0);
        let older = write_backup(&tmp.path().join(&redis), "dd", &redis, t1, 10);
        let newer = write_backup(&tmp.path().join(&redis), "dd", &redis, t2, 10);
        let manifest = |n: &BackupName| Manifest::read(&tmp.path().join(&redis).join(n.manifest())).unwrap();
        let remote = ("dd".to_string(), redis.clone(), Location::Remote);
        let local = ("dd".to_string(), redis.clone(), Location::Local);

        record_remote(&ctx, &manifest(&newer)).unwrap();
        record_remote(&ctx, &manifest(&older)).unwrap();
        let series = read(&ctx).unwrap();
        assert_eq!(
            series[&remote].finished_at,
            Timestamp(t2.0 + 3),
            "an older push does not move it back"
        );
        assert_eq!(series[&local].good, Some(2), "the local series are written too");

        // A prune deleted the newest local backup: the local series follows, the remote one stays.
        std::fs::remove_file(tmp.path().join(&redis).join(newer.manifest())).unwrap();
        std::fs::remove_file(tmp.path().join(&redis).join(newer.file("rdb"))).unwrap();
        refresh(&ctx).unwrap();
        let series = read(&ctx).unwrap();
        assert_eq!(series[&local].finished_at, Timestamp(t1.0 + 3));
        assert_eq!(series[&remote].finished_at, Timestamp(t2.0 + 3));
        let mode = std::fs::metadata(path(&ctx)).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o644,
            "node-exporter (nobody) reads it"
        );

        forget_remote(&ctx, "dd", &redis).unwrap();
        assert!(!read(&ctx).unwrap().contains_key(&remote));
    }

    #[test]
    fn render_parse_round_trip_with_escaped_labels() {
        let mut series = Series::new();
        series.insert(
            ("dd".into(), "postgres".into(), Location::Local),
            Newest {
                finished_at: Timestamp(1_767_323_049),
                size: Some(48_213),
                duration_secs: Some(1.84),
                good: Some(7),
            },
        );
        series.insert(
            ("we\"ird\\p".into(), "postgres".into(), Location::Remote),
            Newest {
                finished_at: Timestamp(1_767_323_101),
                size: None,
                duration_secs: None,
                good: None,
            },
        );
        let text = render(&series);
        assert!(text.contains(
            "drydock_backup_last_success_timestamp_seconds{project=\"dd\",service=\"postgres\",location=\"local\"} 1767323049\n"
        ), "{text}");
        assert!(text.contains(
            "drydock_backup_last_size_bytes{project=\"dd\",service=\"postgres\",location=\"local\"} 48213\n"
        ));
        assert!(text.contains("project=\"we\\\"ird\\\\p\""), "{text}");
        assert!(
            !text.contains("drydock_backup_last_size_bytes{project=\"we"),
            "remote has only the time"
        );
        assert!(text.contains("# TYPE drydock_backup_last_success_timestamp_seconds gauge\n"));
        assert_eq!(parse(&text), series);
        assert!(parse("garbage\n# HELP x\nx{a=\"b\"} 1\n").is_empty());
    }
}
