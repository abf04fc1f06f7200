//! The backup schedule and the freshness metric for real: a schedule installed on this host (cron here, a
//! systemd timer where systemd is PID 1) really fires, its backup moves the metric, a failing run says why
//! in its log and leaves the metric where it was; and node-exporter serves the metric file. They need Docker,
//! root and the offline images, so a plain `cargo test` ignores them; run them with
//!
//!     cargo test -p xtask --test schedule_real -- --ignored --test-threads=1
//!
//! The schedule test starts its own compose project (`drydock-sch-tick`, postgres and redis, ephemeral
//! ports), keeps its backups, log and metric in a temporary directory (through a copy of infra/stack.toml),
//! and removes the schedule, the project with its volumes, and a cron daemon it had to start, when it ends,
//! even on failure.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{docker, docker_ok, http_get, image_exists, root, text, xtask};
use xtask::backup::freshness::{self, Location, Newest, Series};
use xtask::backup::manifest::Manifest;
use xtask::provision::running;
use xtask::time::Timestamp;

const PROJECT: &str = "drydock-sch-tick";
/// How long one wait for a scheduled run may take: a cron tick comes within 60 s, the backup takes seconds.
const TICK_WAIT: Duration = Duration::from_secs(150);

fn tail(text: &str) -> &str {
    let cut = text.len().saturating_sub(4000);
    let cut = (cut..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    &text[cut..]
}

/// The tick's closing lines of a given kind (`ok:` or `FAILED:`): `<time> <kind> …`, not the stamped lines
/// of the backup's own output (`<time> | …`).
fn closing(log: &str, kind: &str) -> usize {
    log.lines()
        .filter(|l| l.split_whitespace().nth(1) == Some(kind))
        .count()
}

struct Stack {
    /// Removed when the stack drops, also when a test panics.
    _guard: tempfile::TempDir,
    dir: PathBuf,
    /// The cron daemon was not running before this test (the schedule started it): stop it at the end.
    cron_before: Option<u32>,
}

impl Stack {
    fn up() -> Stack {
        let guard = tempfile::Builder::new()
            .prefix(&format!("{PROJECT}-"))
            .tempdir()
            .unwrap();
        let dir = guard.path().to_path_buf();
        // The scheduled job runs without this process's environment: every variable compose interpolates
        // comes from the env file the stack description names.
        std::fs::write(
            dir.join("env"),
            "POSTGRES_USER=drydock\nPOSTGRES_PASSWORD=sch-postgres-password\nPOSTGRES_DB=drydock\nREDIS_PASSWORD=sch-redis-password\nDRYDOCK_POSTGRES_PORT=0\nDRYDOCK_REDIS_PORT=0\nDRYDOCK_API_PORT=0\nDRYDOCK_APP_PORT=0\nDRYDOCK_FRONTEND_PORT=0\nDRYDOCK_API_METRICS_PORT=0\n",
        )
        .unwrap();
        let shipped = std::fs::read_to_string(root().join("infra/stack.toml")).unwrap();
        let config = shipped
            .replace(
                "dir = \"backups\"",
                &format!("dir = {:?}", dir.join("backups").display().to_string()),
            )
            .replace(
                "env_file = \".env\"",
                &format!("env_file = {:?}", dir.join("env").display().to_string()),
            );
        assert_eq!(
            config.matches(&dir.display().to_string()).count(),
            2,
            "infra/stack.toml no longer has dir = \"backups\" and env_file = \".env\""
        );
        std::fs::write(dir.join("stack.toml"), config).unwrap();
        let stack = Stack {
            _guard: guard,
            dir,
            cron_before: running("cron"),
        };
        let _ = stack.compose(&["down", "--volumes", "--remove-orphans"]);
        let out = stack.compose(&["up", "--detach", "--wait", "postgres", "redis"]);
        assert!(out.status.success(), "the test stack did not start:\n{}", text(&out));
        stack
    }

    fn compose(&self, args: &[&str]) -> Output {
        let root = root();
        Command::new("docker")
            .args(["compose", "-p", PROJECT, "-f"])
            .arg(root.join("infra/compose/compose.yaml"))
            .arg("-f")
            .arg(root.join("infra/compose/compose.dev.yaml"))
            .arg("--env-file")
            .arg(self.dir.join("env"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn xtask(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["--offline", "--config"])
            .arg(self.dir.join("stack.toml"))
            .args(args)
            .env("DRYDOCK_PROJECT", PROJECT)
            .env("NO_COLOR", "1")
            .env_remove("DRYDOCK_SECRETS_DIR")
            .env_remove("DRYDOCK_HOOKS_DIR")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn xtask_ok(&self, args: &[&str]) -> String {
        let out = self.xtask(args);
        assert!(out.status.success(), "xtask {args:?} failed:\n{}", tail(&text(&out)));
        text(&out)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("backups/.log/schedule-{PROJECT}.log"))).unwrap_or_default()
    }

    fn metric(&self) -> Series {
        let path = self.dir.join("backups/.metrics/drydock_backup.prom");
        freshness::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    fn newest(&self, service: &str) -> Option<Newest> {
        self.metric()
            .get(&(PROJECT.to_string(), service.to_string(), Location::Local))
            .cloned()
    }

    /// Waits (bounded) until no scheduled run of this project is going (its lock is free).
    fn wait_idle(&self) {
        let lock = self.dir.join(format!("backups/.log/.schedule-{PROJECT}.lock"));
        let Ok(file) = File::options().write(true).open(&lock) else {
            return;
        };
        let deadline = Instant::now() + TICK_WAIT;
        while file.try_lock().is_err() {
            assert!(
                Instant::now() < deadline,
                "a scheduled run did not end within {TICK_WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls the log until `done` says so (panics after [`TICK_WAIT`]).
    fn wait_log(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if done(&log) {
                println!("{what}: after {:.0} s", started.elapsed().as_secs_f64());
                return log;
            }
            assert!(
                started.elapsed() < TICK_WAIT,
                "{what}: not within {TICK_WAIT:?}; the log says:\n{}",
                tail(&log)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The schedule first (always), then whatever run it started, then the project.
        let _ = self.xtask(&["backups", "schedule", "--remove"]);
        for file in [
            PathBuf::from(format!("/etc/cron.d/drydock-backup-{PROJECT}")),
            PathBuf::from(format!("/etc/systemd/system/drydock-backup-{PROJECT}.timer")),
        ] {
            let _ = std::fs::remove_file(file);
        }
        self.wait_idle();
        if self.cron_before.is_none()
            && let Some(pid) = running("cron")
        {
            // Started by this test's `backups schedule` (none ran before): stopped by its pid.
            let _ = Command::new("kill").arg(pid.to_string()).output();
        }
        let _ = self.compose(&["down", "--volumes", "--remove-orphans", "--timeout", "5"]);
        // backup-all's audit entries of this throwaway project.
        let _ = std::fs::remove_file(root().join(format!(".drydock/audit-{PROJECT}.jsonl")));
    }
}

#[test]
#[ignore = "needs Docker, root, the offline images and a minute or three: cargo test -p xtask --test schedule_real -- --ignored"]
fn a_scheduled_backup_fires_and_a_failing_one_leaves_the_metric_stale() {
    let stack = Stack::up();
    assert!(stack.metric().is_empty(), "no backup yet, no metric");

    // Every minute: the next tick comes within 60 s.
    let installed = stack.xtask_ok(&["backups", "schedule", "--cron", "* * * * *"]);
    assert!(
        installed.contains("scheduled: backup-all of compose project `drydock-sch-tick`"),
        "{installed}"
    );
    if stack.cron_before.is_none() && !Path::new("/run/systemd/system").exists() {
        assert!(
            installed.contains("started the cron daemon"),
            "it says what it started:\n{installed}"
        );
    }
    let shown = stack.xtask_ok(&["backups", "schedule", "--show"]);
    assert!(
        shown.contains("* * * * * root cd ") || shown.contains("OnCalendar=*-*-* *:*:00"),
        "--show shows the schedule:\n{shown}"
    );
    assert!(shown.contains("backups schedule --tick --env dev"), "{shown}");

    // 1. A scheduled run really fires, backs up both databases and moves the metric.
    let log = stack.wait_log("the first scheduled backup", |log| closing(log, "ok:") > 0);
    assert!(
        log.contains("scheduled run: backup-all of compose project `drydock-sch-tick` (dev stack): started"),
        "{log}"
    );
    assert!(
        log.contains("backup of postgres written"),
        "the backup's own lines are in the log:\n{log}"
    );
    stack.wait_idle();
    let pg = stack
        .newest("postgres")
        .expect("a postgres series after the scheduled backup");
    let redis = stack
        .newest("redis")
        .expect("a redis series after the scheduled backup");
    assert!(pg.good >= Some(1) && pg.size.unwrap_or(0) > 0, "{pg:?}");
    assert!(
        (Timestamp::now().0 - pg.finished_at.0).abs() < 300,
        "the metric is the time of this backup: {pg:?}"
    );
    // The metric is the newest manifest's finished_at.
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(stack.dir.join("backups/postgres"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    manifests.sort();
    let newest = Manifest::read(manifests.last().expect("a postgres manifest")).unwrap();
    assert_eq!(Timestamp::parse_rfc3339(&newest.finished_at).unwrap(), pg.finished_at);

    // 2. The next run fails (the database is down): its log says why, the metric of postgres does not move.
    let out = stack.compose(&["stop", "postgres"]);
    assert!(out.status.success(), "{}", text(&out));
    let oks_before = closing(&stack.log(), "ok:");
    let log = stack.wait_log("the failing scheduled backup", |log| closing(log, "FAILED:") > 0);
    let failure = &log[log.find(" FAILED: ").unwrap()..];
    assert!(
        failure.contains("backup of postgres failed") && failure.contains("is not running or not ready"),
        "the log says why:\n{}",
        &failure[..failure.len().min(3000)]
    );
    assert!(failure.contains("was not moved"), "{failure}");
    println!(
        "the failed run's closing line:\n{}",
        failure.lines().take(8).collect::<Vec<_>>().join("\n")
    );
    stack.wait_idle();
    assert_eq!(closing(&stack.log(), "ok:"), oks_before, "no run succeeded meanwhile");
    let pg_after = stack.newest("postgres").unwrap();
    assert_eq!(pg_after, pg, "a failed backup leaves the metric where it was");
    let redis_after = stack.newest("redis").unwrap();
    assert!(
        redis_after.finished_at > redis.finished_at,
        "Redis still backs up in the same run: its series moved ({redis:?} → {redis_after:?})"
    );

    // 3. Removed: nothing is left to fire.
    let removed = stack.xtask_ok(&["backups", "schedule", "--remove"]);
    assert!(removed.contains("removed /etc/"), "{removed}");
    let shown = stack.xtask_ok(&["backups", "schedule", "--show"]);
    assert!(
        shown.contains("no schedule of compose project `drydock-sch-tick` is installed"),
        "{shown}"
    );
}

/// The node-exporter command line of the monitoring profile (infra/compose/compose.prod.yaml), so this test
/// runs the exporter exactly as production does.
fn exporter_flags() -> Vec<String> {
    let prod = std::fs::read_to_string(root().join("infra/compose/compose.prod.yaml")).unwrap();
    let service = &prod[prod.find("\n  node-exporter:").expect("a node-exporter service")..];
    let command = &service[service.find("command:").unwrap()..service.find("volumes:").unwrap()];
    command
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|f| f.trim_matches('"').to_string())
        .collect()
}

#[test]
#[ignore = "needs Docker and the offline node-exporter image: cargo test -p xtask --test schedule_real -- --ignored"]
fn node_exporter_serves_the_freshness_metric() {
    let image = "drydock/node-exporter:trixie";
    if !image_exists(image) {
        let out = xtask(&["--offline", "images", "build-offline"]);
        assert!(
            out.status.success(),
            "building the offline images failed:\n{}",
            tail(&text(&out))
        );
    }
    let flags = exporter_flags();
    assert!(
        flags.contains(&"--collector.textfile.directory=/backups/.metrics".to_string()),
        "the monitoring profile reads backups/.metrics: {flags:?}"
    );
    let tmp = tempfile::Builder::new()
        .prefix("drydock-sch-exporter-")
        .tempdir()
        .unwrap();
    // As the xtask leaves it: the directories listable by node-exporter's user (nobody), the file 0644.
    let mut series = Series::new();
    series.insert(
        ("drydock-prod".into(), "postgres".into(), Location::Local),
        Newest {
            finished_at: Timestamp(1_767_323_049),
            size: Some(48_213),
            duration_secs: Some(1.5),
            good: Some(3),
        },
    );
    series.insert(
        ("drydock-prod".into(), "postgres".into(), Location::Remote),
        Newest {
            finished_at: Timestamp(1_767_323_101),
            size: None,
            duration_secs: None,
            good: None,
        },
    );
    let metrics = tmp.path().join(".metrics");
    std::fs::create_dir_all(&metrics).unwrap();
    xtask::files::replace(
        &metrics.join("drydock_backup.prom"),
        freshness::render(&series).as_bytes(),
        0o644,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    for dir in [tmp.path(), metrics.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let name = format!("drydock-sch-exporter-{}", std::process::id());
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = docker(&["rm", "-f", "-v", &self.0]);
        }
    }
    let _remove = Remove(name.clone());
    let mount = format!("{}:/backups:ro", tmp.path().display());
    let mut args = vec![
        "run",
        "-d",
        "--name",
        &name,
        "--user",
        "65534:65534",
        "--read-only",
        "-p",
        "127.0.0.1:0:9100",
        "-v",
        &mount,
        image,
    ];
    args.extend(flags.iter().map(String::as_str));
    docker_ok(&args);
    let port: u16 = docker_ok(&["port", &name, "9100/tcp"])
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .expect("a published port");
    let started = Instant::now();
    let body = loop {
        match http_get(port, "/metrics", "127.0.0.1") {
            Ok((200, _, body)) => break body,
            other => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "node-exporter did not serve /metrics within 30 s: {other:?}\n{}",
                    text(&docker(&["logs", &name]))
                );
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    };
    for line in [
        "drydock_backup_last_success_timestamp_seconds{location=\"local\",project=\"drydock-prod\",service=\"postgres\"} 1.767323049e+09",
        "drydock_backup_last_success_timestamp_seconds{location=\"remote\",project=\"drydock-prod\",service=\"postgres\"} 1.767323101e+09",
        "drydock_backup_last_size_bytes{location=\"local\",project=\"drydock-prod\",service=\"postgres\"} 48213",
        "node_textfile_scrape_error 0",
    ] {
        assert!(
            body.contains(line),
            "missing {line:?} in node-exporter's /metrics:\n{}",
            tail(&body)
        );
    }
}
