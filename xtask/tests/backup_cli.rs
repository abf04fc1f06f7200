//! The backup and database commands end to end without Docker: dry-run plans, refusals, and list / verify
//! (checksums) / prune on synthetic backups in a temporary directory.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

mod common;
use common::{root, text};
use xtask::backup::manifest::{FORMAT, FileEntry, Manifest, Sanity};
use xtask::backup::store::sha256_file;

/// A temporary directory (removed when dropped, also when a test panics) with a copy of infra/stack.toml whose
/// backups.dir points into it.
struct Temp {
    _guard: tempfile::TempDir,
    dir: PathBuf,
}

impl Temp {
    fn new(tag: &str) -> Temp {
        let guard = tempfile::Builder::new()
            .prefix(&format!("xtask-backup-cli-{tag}-"))
            .tempdir()
            .unwrap();
        let dir = guard.path().to_path_buf();
        let shipped = std::fs::read_to_string(root().join("infra/stack.toml")).unwrap();
        let backups = dir.join("backups").display().to_string();
        let config = shipped.replace("dir = \"backups\"", &format!("dir = {backups:?}"));
        // Unchanged, the tests (prune --yes among them) would work on the checkout's real backups directory.
        assert_ne!(config, shipped, "infra/stack.toml no longer has dir = \"backups\"");
        std::fs::write(dir.join("stack.toml"), config).unwrap();
        Temp { _guard: guard, dir }
    }

    fn xtask(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .arg("--config")
            .arg(self.dir.join("stack.toml"))
            .args(args)
            .env("DRYDOCK_PROJECT", "dd")
            .env_remove("DRYDOCK_SECRETS_DIR")
            .env_remove("DRYDOCK_PROD_BIND")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A synthetic Redis backup (an RDB-looking file plus its manifest), as `backup-redis` writes them.
    fn redis_backup(&self, ts: &str, data: &[u8]) -> PathBuf {
        let dir = self.dir.join("backups/redis");
        std::fs::create_dir_all(&dir).unwrap();
        let file = format!("dd_redis_{ts}.rdb");
        std::fs::write(dir.join(&file), data).unwrap();
        let (size, sha256) = sha256_file(&dir.join(&file)).unwrap();
        // The crate's own manifest type: the test writes exactly what `backup-redis` writes.
        let manifest = Manifest {
            format: FORMAT,
            engine: "redis".into(),
            project: "dd".into(),
            service: "redis".into(),
            database: "all".into(),
            server_version: "8.0.2".into(),
            tool_version: "redis-cli 8.0.2".into(),
            written_by: "test".into(),
            git_revision: "x".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
            duration_secs: 1.0,
            file: file.clone(),
            size,
            sha256: sha256.clone(),
            compression: "rdb".into(),
            files: vec![FileEntry {
                role: "rdb".into(),
                name: file.clone(),
                size,
                sha256,
                plain: None,
            }],
            sanity: Sanity {
                tables: None,
                keys: Some(1),
            },
            reason: None,
            encryption: None,
        };
        std::fs::write(dir.join(format!("dd_redis_{ts}.json")), manifest.to_json()).unwrap();
        dir.join(file)
    }
}

#[test]
fn backup_postgres_dry_run_shows_the_streamed_plan() {
    let t = Temp::new("dry");
    let out = t.xtask(&["--dry-run", "--offline", "backup-postgres"]);
    let s = text(&out);
    assert!(out.status.success(), "{s}");
    assert!(
        s.contains(
            "exec -T postgres pg_dump -U '$POSTGRES_USER' -d '$POSTGRES_DB' --format=custom --compress=zstd:1 > "
        ),
        "{s}"
    );
    assert!(
        s.contains("/backups/postgres/dd_postgres_") && s.contains(".dump.XXXXXX.partial"),
        "{s}"
    );
    assert!(
        s.contains("exec -T postgres pg_dumpall -U '$POSTGRES_USER' --globals-only > "),
        "{s}"
    );
    assert!(!t.dir.join("backups/postgres").exists(), "a dry run creates nothing");
}

#[test]
fn backup_redis_dry_run_uses_a_snapshot() {
    let t = Temp::new("dryr");
    let out = t.xtask(&["--dry-run", "--offline", "backup-redis"]);
    let s = text(&out);
    assert!(out.status.success(), "{s}");
    assert!(
        s.contains("exec -T redis sh -c") && s.contains("BGSAVE SCHEDULE") && s.contains(".rdb.XXXXXX.partial"),
        "{s}"
    );
}

#[test]
fn mongo_commands_say_plainly_that_there_is_no_mongodb_here() {
    let t = Temp::new("mongo");
    for args in [
        &["--offline", "backup-mongodb"][..],
        &["--offline", "db-mongo"],
        &["--offline", "--yes", "restore-mongodb", "--latest"],
    ] {
        let out = t.xtask(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("MongoDB is not available on this machine"),
            "{}",
            text(&out)
        );
        assert!(!text(&out).contains("$ docker"), "nothing ran: {}", text(&out));
    }
}

#[test]
fn restore_needs_a_file_or_latest() {
    let t = Temp::new("usage");
    let out = t.xtask(&["restore-postgres"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = t.xtask(&[
        "--offline",
        "restore-postgres",
        "/nonexistent/dd_postgres_20260101T000000Z.dump",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
    let out = t.xtask(&["--offline", "restore-redis", "--latest"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("there is no complete backup of `redis`"),
        "{}",
        text(&out)
    );
}

#[test]
fn db_psql_dry_run_passes_arguments_without_a_tty() {
    let t = Temp::new("psql");
    let out = t.xtask(&["--dry-run", "--offline", "db-psql", "--", "-c", "select 1"]);
    let s = text(&out);
    assert!(out.status.success(), "{s}");
    assert!(
        s.contains("exec -T postgres psql -U '$POSTGRES_USER' -d '$POSTGRES_DB' -v ON_ERROR_STOP=1 -c 'select 1'"),
        "{s}"
    );
    let out = t.xtask(&["--dry-run", "--offline", "db-migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("run --rm migrate"), "{}", text(&out));
    let out = t.xtask(&["--dry-run", "--offline", "db-seed"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("run --rm migrate seed"), "{}", text(&out));
    let out = t.xtask(&["--dry-run", "--offline", "db-reset"]);
    let s = text(&out);
    assert!(out.status.success(), "{s}");
    assert!(
        s.contains("dropdb -U '$POSTGRES_USER' --if-exists --force '$POSTGRES_DB'") && s.contains("createdb"),
        "{s}"
    );
}

#[test]
fn db_reset_without_a_running_database_stops_at_the_probe() {
    let t = Temp::new("reset");
    // Project `dd` never runs, so the facts probe fails before the confirmation (which backup_real tests
    // against a running database): nothing is dropped, and the message says why.
    let out = t.xtask(&["--offline", "db-reset"]);
    let s = text(&out);
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert!(
        s.contains("the `postgres` service of compose project `dd` is not running or not ready"),
        "{s}"
    );
    assert!(!s.contains("dropdb"), "{s}");
}

#[test]
fn list_verify_and_prune_synthetic_backups() {
    let t = Temp::new("manage");
    let out = t.xtask(&["--offline", "backups", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("no backups in"), "{}", text(&out));

    let old = t.redis_backup("20260101T000000Z", b"REDIS0012 old");
    t.redis_backup("20260102T000000Z", b"REDIS0012 mid");
    let newest = t.redis_backup("20260103T000000Z", b"REDIS0012 new");
    std::fs::write(
        t.dir.join("backups/redis/dd_redis_20260104T000000Z.rdb.partial"),
        b"REDIS half",
    )
    .unwrap();

    let out = t.xtask(&["--offline", "-q", "backups", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 3, "partials are not backups");
    assert_eq!(rows[0]["file"], "dd_redis_20260103T000000Z.rdb", "newest first");
    assert_eq!(rows[0]["taken_at"], "2026-01-03T00:00:00Z");
    let out = t.xtask(&["--offline", "backups", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("newest good redis backup"), "{}", text(&out));

    let out = t.xtask(&[
        "--offline",
        "backups",
        "verify",
        "--checksum-only",
        newest.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("checksums match"));
    std::fs::write(&old, b"REDIS0012 OLD").unwrap();
    let out = t.xtask(&[
        "--offline",
        "backups",
        "verify",
        "--checksum-only",
        old.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("does not match its manifest's SHA-256"),
        "{}",
        text(&out)
    );
    let out = t.xtask(&["--offline", "backups", "verify", "--checksum-only", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("1 of 3 backup(s) failed verification"),
        "{}",
        text(&out)
    );
    // A backup of another engine is refused by a restore before anything runs.
    let out = t.xtask(&["--offline", "--yes", "restore-postgres", newest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("is a redis backup, not a postgres one"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains(&format!("fix: cargo xtask restore-redis {}", newest.display())),
        "{}",
        text(&out)
    );

    // Prune: plan first; without --yes nothing is deleted; the newest is always kept.
    let policy = [
        "--keep-last",
        "1",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
    ];
    let mut args = vec!["--offline", "backups", "prune"];
    args.extend(policy);
    let out = t.xtask(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let s = text(&out);
    assert!(
        s.contains("keep    dd_redis_20260103T000000Z  (newest complete backup, last)"),
        "{s}"
    );
    assert!(
        s.contains("delete  dd_redis_20260101T000000Z") && s.contains("refusing"),
        "{s}"
    );
    assert!(old.exists());
    let mut args = vec!["--offline", "--yes", "backups", "prune"];
    args.extend(policy);
    let out = t.xtask(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!old.exists() && newest.exists());
    let left: Vec<String> = std::fs::read_dir(t.dir.join("backups/redis"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dd_"))
        .collect();
    assert_eq!(
        left.len(),
        3,
        "the newest backup (data + manifest) and the partial, which prune never touches: {left:?}"
    );
    // The freshness metric follows the backups left: one good one, the newest's finish time.
    let metric = std::fs::read_to_string(t.dir.join("backups/.metrics/drydock_backup.prom")).unwrap();
    assert!(
        metric.contains("drydock_backup_good_count{project=\"dd\",service=\"redis\",location=\"local\"} 1\n"),
        "{metric}"
    );
    assert!(
        metric.contains("drydock_backup_last_success_timestamp_seconds{project=\"dd\",service=\"redis\",location=\"local\"} 1767225601\n"),
        "{metric}"
    );
}

#[test]
fn schedule_dry_run_shows_the_job_for_cron_and_systemd() {
    let t = Temp::new("schedule");
    // The plan of `backups schedule --scheduler <s> <when...>` (a dry run must succeed).
    let plan = |scheduler: &str, when: &[&str]| {
        let mut args = vec![
            "--offline",
            "--dry-run",
            "backups",
            "schedule",
            "--scheduler",
            scheduler,
        ];
        args.extend(when);
        let out = t.xtask(&args);
        let s = text(&out);
        assert!(out.status.success(), "{s}");
        s
    };
    let s = plan("cron", &["--cron", "*/5 * * * *"]);
    let exe = env!("CARGO_BIN_EXE_xtask");
    let config = t.dir.join("stack.toml").display().to_string();
    let log = t.dir.join("backups/.log/schedule-dd.log").display().to_string();
    assert!(
        s.contains("[dry-run] would write /etc/cron.d/drydock-backup-dd:"),
        "{s}"
    );
    assert!(
        s.contains(&format!(
            "*/5 * * * * root cd {} && DRYDOCK_PROJECT=dd {exe} --offline --config {config} backups schedule --tick --env dev >>{log} 2>&1",
            root().display()
        )),
        "{s}"
    );
    assert!(s.contains("\nPATH=/"), "cron's PATH is minimal: the job sets one\n{s}");
    assert!(!t.dir.join("backups/.log").exists(), "a dry run writes nothing");

    let s = plan("systemd", &["--daily", "02:30"]);
    assert!(
        s.contains("[dry-run] would write /etc/systemd/system/drydock-backup-dd.service:"),
        "{s}"
    );
    assert!(s.contains("OnCalendar=*-*-* 02:30:00"), "{s}");
    assert!(
        s.contains(&format!(
            "ExecStart={exe} --offline --config {config} backups schedule --tick --env dev"
        )),
        "{s}"
    );
    assert!(
        s.contains("[dry-run] $ systemctl enable --now drydock-backup-dd.timer"),
        "{s}"
    );
}

#[test]
fn schedule_refuses_bad_times_before_anything() {
    let t = Temp::new("schedule-bad");
    for (args, says) in [
        (vec!["--cron", "61 * * * *"], "the minute field \"61\" is not valid"),
        (vec!["--daily", "25:00"], "--daily \"25:00\" is not a time of day"),
        (
            vec!["--scheduler", "systemd", "--cron", "0 3 1 * 1"],
            "a systemd timer only on both",
        ),
    ] {
        let mut all = vec!["--offline", "backups", "schedule"];
        all.extend(args.iter());
        let out = t.xtask(&all);
        let s = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {s}");
        assert!(s.contains(says) && s.contains("fix:"), "{args:?}: {s}");
        assert!(!s.contains("$ "), "nothing runs before the refusal: {s}");
    }
    assert!(!t.dir.join("backups").exists(), "nothing was written");
}

#[test]
fn verify_without_backups_says_how_to_make_one() {
    let t = Temp::new("verify-none");
    for which in ["--latest", "--all"] {
        let out = t.xtask(&["--offline", "backups", "verify", "--checksum-only", which]);
        assert_eq!(out.status.code(), Some(1), "{which}");
        let s = text(&out);
        assert!(s.contains("there are no backups"), "{which}: {s}");
        assert!(s.contains("fix: cargo xtask backup-all"), "{which}: {s}");
    }
}
