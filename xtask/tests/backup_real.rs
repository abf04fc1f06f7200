//! Backups against real PostgreSQL and Redis containers: round trips and every fault of issue 8 injected for
//! real. They need Docker and the offline images (`cargo xtask images build-offline`), so they are ignored by
//! a plain `cargo test`; run them with
//!
//!     cargo test -p xtask --test backup_real -- --ignored --test-threads=1
//!
//! Each test starts its own compose project (`drydock-bt-<name>`, postgres and redis only, ephemeral ports),
//! writes its backups into a temporary directory (through a copy of infra/stack.toml), and removes the
//! project with its volumes when it ends, even on failure. Faults that need mounts (a full disk, a read-only
//! directory) need root, as on the CI machines.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

mod common;
use common::backup_stack::{Stack, tail};
use common::text;
use xtask::backup::manifest::Manifest;

/// Waits until a `.partial` file with data exists in `dir` (a backup is streaming).
fn wait_for_partial(dir: &Path, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let streaming = std::fs::read_dir(dir).into_iter().flatten().flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // The planted crash leftovers are from 2020; a live backup's name has today's timestamp.
            // Parts stream to `<name>.dump.XXXXXX.partial` (tempfile) beside the final name.
            name.contains(".dump.")
                && name.ends_with(".partial")
                && !name.contains("_2020")
                && e.metadata().is_ok_and(|m| m.len() > 0)
        });
        if streaming {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the backup ended ({status}) before it could be interrupted: make the test database bigger");
        }
        assert!(Instant::now() < deadline, "no backup started streaming within 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The newest `.dump` in a backups directory (names sort by their timestamp).
fn newest_dump(dir: &Path) -> std::path::PathBuf {
    let mut dumps: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".dump") && !p.to_string_lossy().contains("_2020"))
        .collect();
    dumps.sort();
    dumps.pop().expect("a .dump file")
}

fn finish(child: Child) -> (bool, String) {
    let out = child.wait_with_output().unwrap();
    (out.status.success(), text(&out))
}

fn no_partials(files: &BTreeMap<String, Vec<u8>>) {
    assert!(
        !files.keys().any(|n| n.ends_with(".partial")),
        "a partial file was left: {:?}",
        files.keys()
    );
}

/// The databases a restore of `drydock` makes beside it (none may outlive the restore).
const LEFTOVERS: &str =
    "select count(*) from pg_database where datname in ('drydock__drydock_restore', 'drydock__drydock_replaced')";

const PG_SNAPSHOT: &str = "select string_agg(t::text, '|' order by id) from items t; select string_agg(r::text, '|' order by id) from reviews r; select count(*) from pg_tables where schemaname = 'public'";

#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test backup_real -- --ignored --test-threads=1"]
fn postgres_round_trip_verify_list_and_prune() {
    let s = Stack::up("pg");
    s.db_psql(
        "create table items (id int primary key, name text not null, price numeric(10,2), tags text[], meta jsonb, created timestamptz default '2026-01-01');
         create table reviews (id serial primary key, item_id int references items(id), body text);
         insert into items select g, 'item ' || g, g * 1.5, array['a', 'b' || g], jsonb_build_object('n', g) from generate_series(1, 2000) g;
         insert into reviews (item_id, body) select (g % 2000) + 1, repeat('x', g % 50) from generate_series(1, 5000) g;
         create role reporting nologin; grant select on items to reporting;",
    );
    let before = s.psql(PG_SNAPSHOT);
    assert!(before.contains("item 2000"));

    let out = s.xtask_ok(&["backup-postgres"]);
    assert!(out.contains("backup of postgres written"), "{out}");
    let files = s.files("postgres");
    assert_eq!(files.len(), 3, "dump, globals and manifest: {:?}", files.keys());
    let manifest_name = files.keys().find(|n| n.ends_with(".json")).unwrap().clone();
    assert!(
        manifest_name.starts_with("drydock-bt-pg_postgres_")
            && manifest_name.len() == "drydock-bt-pg_postgres_20260101T000000Z.json".len()
    );
    // Read with the crate's own type: a manifest missing a field is an error there.
    let manifest = Manifest::read(&s.backups("postgres").join(&manifest_name)).unwrap();
    assert_eq!(manifest.engine, "postgres");
    assert_eq!(manifest.database, "drydock");
    assert!(
        !manifest.server_version.is_empty() && !manifest.tool_version.is_empty() && !manifest.git_revision.is_empty()
    );
    assert_eq!(manifest.sha256.len(), 64);
    assert!(manifest.size > 0 && manifest.duration_secs > 0.0);
    assert_eq!(manifest.compression, "zstd:1", "PostgreSQL 17's pg_dump supports zstd");
    assert_eq!(manifest.sanity.tables, Some(2));
    let globals = files.iter().find(|(n, _)| n.ends_with(".globals.sql")).unwrap().1;
    assert!(
        String::from_utf8_lossy(globals).contains("CREATE ROLE reporting"),
        "roles are in the globals file"
    );
    let dump = s.backups("postgres").join(&manifest.file);

    // Wipe: drop a table, change rows, add one the backup does not have.
    s.psql("drop table reviews; update items set name = 'changed'; insert into items values (9999, 'new')");
    assert_eq!(
        s.psql("select count(*) from items where name = 'changed'").trim(),
        "2000"
    );

    // db-reset without --yes and without a terminal: refused after the probe, before anything is dropped.
    let refused = s.xtask(&["db-reset"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("refusing to DROP database `drydock`") && text(&refused).contains("--yes"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        s.psql("select count(*) from items where name = 'changed'").trim(),
        "2000",
        "the refused db-reset dropped nothing"
    );

    // Without --yes and without a terminal: refused, nothing touched.
    let refused = s.xtask(&["restore-postgres", "--latest"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("refusing to replace database `drydock`"),
        "{}",
        text(&refused)
    );
    assert_eq!(s.files("postgres").len(), 3, "no safety backup before the confirmation");

    let out = s.xtask_ok(&["--yes", "restore-postgres", "--latest"]);
    assert!(out.contains("safety backup"), "{out}");
    assert!(out.contains("restored database `drydock`"), "{out}");
    let after = s.psql(PG_SNAPSHOT);
    // --clean drops only what the archive has: the rows come back exactly; rows added since are gone with the table.
    assert!(
        after == before,
        "not the same rows after the restore:\n{}",
        tail(&after)
    );
    assert_eq!(
        s.files("postgres").len(),
        6,
        "the safety backup was kept beside the restored one"
    );

    // Restore a specific file, then verify everything with a test restore in a throwaway container.
    s.xtask_ok(&["--yes", "restore-postgres", dump.to_str().unwrap()]);
    assert_eq!(s.psql(PG_SNAPSHOT), before);
    assert_eq!(s.files("postgres").len(), 9, "every restore takes a safety backup");
    // --latest skips safety backups: restoring "the latest" again restores the same backup, not the state before.
    s.psql("delete from reviews where id > 10; update items set price = 0");
    let out = s.xtask_ok(&["--yes", "restore-postgres", "--latest"]);
    assert!(out.contains(&format!("from {}", &manifest.file)), "{}", tail(&out));
    assert_eq!(s.psql(PG_SNAPSHOT), before);
    assert_eq!(s.files("postgres").len(), 12);
    let out = s.xtask_ok(&["backups", "verify", "--all"]);
    assert_eq!(out.matches("test restore passed").count(), 4, "{out}");
    let leftover = Command::new("docker")
        .args(["ps", "-aq", "--filter", "label=drydock.backup-verify=1", "--filter"])
        // This stack's own: other steps of `ci` may be verifying their backups at the same time.
        .arg(format!(
            "label={}={}",
            xtask::backup::plans::VERIFY_PROJECT_LABEL,
            s.project
        ))
        .output()
        .unwrap();
    // A failed `docker ps` prints nothing either.
    assert!(leftover.status.success(), "docker ps: {}", text(&leftover));
    assert!(
        leftover.stdout.is_empty(),
        "verify containers are removed: {}",
        text(&leftover)
    );

    // list --json
    let out = s.xtask(&["-q", "backups", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["complete"] == true && r["status"] == "ok"));
    assert!(
        rows[0]["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("safety backup")
    );

    // prune keeps the newest; shows its plan; deletes only with --yes.
    let refused = s.xtask(&[
        "backups",
        "prune",
        "--keep-last",
        "1",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused).contains("delete"), "{}", text(&refused));
    assert_eq!(s.files("postgres").len(), 12);
    let out = s.xtask_ok(&[
        "--yes",
        "backups",
        "prune",
        "--keep-last",
        "1",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
    ]);
    assert!(out.contains("deleted 3 backup"), "{out}");
    assert_eq!(s.files("postgres").len(), 3);
}

#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test backup_real -- --ignored --test-threads=1"]
fn redis_round_trip() {
    let s = Stack::up("redis");
    let mut commands = String::from("hset hash:1 a 1 b 2\nrpush list:1 x y z\nset ttl:1 soon EX 3600\n");
    for i in 0..300 {
        commands.push_str(&format!("set key:{i} \"value {i}\"\n"));
    }
    s.redis_in_container(&commands, "redis-cli >/dev/null");
    // Every key with its type and value, in one round trip.
    let snapshot = || {
        s.redis_in_container(
            "",
            r#"redis-cli --scan | sort | while read -r k; do t=$(redis-cli type "$k"); case "$t" in string) v=$(redis-cli get "$k");; hash) v=$(redis-cli hgetall "$k");; list) v=$(redis-cli lrange "$k" 0 -1);; *) v="?$t";; esac; printf '%s %s %s\n' "$k" "$t" "$v"; done"#,
        )
    };
    let keys_before = s.redis(&["dbsize"]);
    assert_eq!(keys_before.trim(), "303");
    let out = s.xtask_ok(&["backup-redis"]);
    assert!(out.contains("backup of redis written"), "{out}");
    let before = snapshot();
    s.redis(&["flushall"]);
    s.redis(&["set", "intruder", "1"]);
    let out = s.xtask_ok(&["--yes", "restore-redis", "--latest"]);
    assert!(out.contains("restored `redis`") && out.contains("303 keys"), "{out}");
    let after = snapshot();
    assert!(
        after.contains("key:299 string value 299") && after.contains("list:1 list x"),
        "{after}"
    );
    assert_eq!(after, before, "key for key");
    let ttl: i64 = s.redis(&["ttl", "ttl:1"]).trim().parse().unwrap();
    assert!(ttl > 3000, "TTLs survive");
    let out = s.xtask_ok(&["backups", "verify", "--all"]);
    assert_eq!(
        out.matches("test restore passed").count(),
        2,
        "the backup and the safety backup: {out}"
    );
}

#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test backup_real -- --ignored --test-threads=1"]
fn faults_never_leave_a_finished_looking_file() {
    let mut s = Stack::up("faults");
    // Big enough that a dump streams for a few seconds, so faults land mid-stream.
    s.psql(
        "create table big as select g as id, md5(g::text) as a, md5((g * 3)::text) || md5((g * 5)::text) as b from generate_series(1, 2500000) g;
         alter table big add primary key (id);",
    );
    let pg = s.backups("postgres");
    s.xtask_ok(&["backup-postgres"]);
    let good = s.files("postgres");
    assert_eq!(good.len(), 3);
    let good_dump = pg.join(good.keys().find(|n| n.ends_with(".dump")).unwrap());

    // A crash leftover: a partial file and a data file whose manifest was never written. The next run cleans them.
    std::fs::write(
        pg.join("drydock-bt-faults_postgres_20200101T000000Z.dump.partial"),
        b"PGDMP half",
    )
    .unwrap();
    std::fs::write(
        pg.join("drydock-bt-faults_postgres_20200102T000000Z.dump"),
        b"PGDMP no manifest",
    )
    .unwrap();

    // 1. The dump process is killed mid-stream.
    let mut child = s.spawn(&["backup-postgres"]);
    wait_for_partial(&pg, &mut child);
    // Fails unless a pg_dump was actually killed (a script ending in `; true` would always succeed).
    let killed = Command::new("docker")
        .args(["exec", &s.container("postgres"), "sh", "-c"])
        .arg(r#"n=0; for p in /proc/[0-9]*; do if [ "$(cat "$p/comm" 2>/dev/null)" = pg_dump ]; then kill -9 "${p#/proc/}" && n=$((n + 1)); fi; done; echo "killed $n pg_dump"; [ "$n" -gt 0 ]"#)
        .output()
        .unwrap();
    assert!(killed.status.success(), "no pg_dump was killed: {}", text(&killed));
    let (ok, out) = finish(child);
    assert!(!ok, "a killed dump must fail the backup:\n{out}");
    assert!(
        out.contains("removed") && out.contains("left by an interrupted run"),
        "leftovers cleaned first:\n{out}"
    );
    assert!(
        out.contains("the dump backup of `postgres` failed; no backup was written"),
        "{out}"
    );
    assert_eq!(
        s.files("postgres"),
        good,
        "no new file, leftovers gone, the earlier backup untouched"
    );

    // 2. Two backups of one service at once: the second fails at once, the first succeeds.
    let mut first = s.spawn(&["backup-postgres"]);
    wait_for_partial(&pg, &mut first);
    let second = s.xtask(&["backup-postgres"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second).contains("another backup, restore or prune of `postgres` is running"),
        "{}",
        text(&second)
    );
    let (ok, out) = finish(first);
    assert!(ok, "{out}");
    let two = s.files("postgres");
    assert_eq!(two.len(), 6);
    no_partials(&two);

    // 3. The database container stops during the dump.
    let mut child = s.spawn(&["backup-postgres"]);
    wait_for_partial(&pg, &mut child);
    let stopped = s.compose(&["kill", "postgres"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let (ok, out) = finish(child);
    assert!(!ok, "{out}");
    assert!(out.contains("no backup was written"), "{out}");
    assert_eq!(s.files("postgres"), two);
    // ... and with the container down, a clear message and nothing written.
    let down = s.xtask(&["backup-postgres"]);
    assert_eq!(down.status.code(), Some(1));
    assert!(text(&down).contains("is not running or not ready"), "{}", text(&down));
    assert_eq!(s.files("postgres"), two);
    let up = s.compose(&["up", "--detach", "--wait", "postgres"]);
    assert!(up.status.success(), "{}", text(&up));

    // 4. The disk fills up: a 1 MB tmpfs as the backups directory.
    let small = s.dir.join("small");
    s.mount_tmpfs(&small, "size=1m");
    s.write_config("small.toml", &small);
    let out = s.xtask_cmd("small.toml", &["backup-postgres"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("No space left on device"), "{}", text(&out));
    let left: Vec<_> = std::fs::read_dir(small.join("postgres"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from(".lock")],
        "nothing but the lock file"
    );

    // 5. The backups directory is not writable (a read-only mount: root ignores permission bits).
    let ro = s.dir.join("ro");
    s.mount_tmpfs(&ro, "size=1m,ro");
    s.write_config("ro.toml", &ro);
    let out = s.xtask_cmd("ro.toml", &["backup-redis"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("cannot create the backups directory") || text(&out).contains("is not writable"),
        "{}",
        text(&out)
    );

    // 6. A truncated and an edited backup: verify and restore refuse before touching anything.
    let data = std::fs::read(&good_dump).unwrap();
    let before_tables = s.psql("select count(*) from big");
    std::fs::write(&good_dump, &data[..data.len() / 2]).unwrap();
    let out = s.xtask(&["backups", "verify", good_dump.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("truncated"), "{}", text(&out));
    let count = s.files("postgres").len();
    let out = s.xtask(&["--yes", "restore-postgres", good_dump.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("truncated") && !text(&out).contains("safety backup"),
        "{}",
        text(&out)
    );
    assert_eq!(s.files("postgres").len(), count, "no safety backup, nothing restored");
    let mut edited = data.clone();
    let middle = edited.len() / 2;
    edited[middle] ^= 0xff;
    std::fs::write(&good_dump, &edited).unwrap();
    let out = s.xtask(&["--yes", "restore-postgres", good_dump.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("does not match its manifest's SHA-256"),
        "{}",
        text(&out)
    );
    let out = s.xtask(&["backups", "verify", "--all"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("1 of 2 backup(s) failed verification"),
        "{}",
        text(&out)
    );
    assert_eq!(s.psql("select count(*) from big"), before_tables);
    // A backup of another engine is refused by name.
    let rdb = s.xtask_ok(&["backup-redis"]);
    assert!(rdb.contains("backup of redis written"));
    let redis_file = std::fs::read_dir(s.backups("redis"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".rdb"))
        .unwrap()
        .path();
    let out = s.xtask(&["--yes", "restore-postgres", redis_file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("is a redis backup, not a postgres one"),
        "{}",
        text(&out)
    );

    // 7. A restore that fails inside pg_restore, after all the data went in (the archive grants to a role that no
    //    longer exists): the current database was never touched and accepts connections, no new database is
    //    left behind, and the safety backup taken meanwhile is named.
    s.psql(
        "create role ghost nologin; create table haunted (id int primary key); insert into haunted values (1);
         grant select on haunted to ghost;",
    );
    let out = s.xtask_ok(&["backup-postgres"]);
    assert!(out.contains("backup of postgres written"), "{out}");
    let haunted = newest_dump(&pg);
    s.psql("drop owned by ghost; drop role ghost; insert into haunted values (2);");
    let out = s.xtask(&["--yes", "restore-postgres", haunted.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the restore into a new database failed")
            && text(&out).contains("role \"ghost\" does not exist")
            && text(&out).contains("was never touched; safety backup: "),
        "{}",
        text(&out)
    );
    assert_eq!(
        s.psql("select string_agg(id::text, ',' order by id) from haunted")
            .trim(),
        "1,2"
    );
    assert_eq!(
        s.psql("select datallowconn from pg_database where datname = current_database()")
            .trim(),
        "t"
    );
    assert_eq!(s.psql(LEFTOVERS).trim(), "0", "the new database was dropped");

    // 8. A restore while a session holds the database open: the swap ends that session and goes through.
    s.psql("drop table haunted; create table kept (id int); insert into kept values (7);");
    s.xtask_ok(&["backup-postgres"]);
    let kept = newest_dump(&pg);
    s.psql("drop table kept;");
    let session = Command::new("docker")
        .args([
            "exec",
            &s.container("postgres"),
            "psql",
            "-U",
            "drydock",
            "-d",
            "drydock",
            "-c",
        ])
        .arg("select pg_sleep(300)")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while s
        .psql("select count(*) from pg_stat_activity where query = 'select pg_sleep(300)'")
        .trim()
        != "1"
    {
        assert!(Instant::now() < deadline, "the holding session never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = s.xtask_ok(&["--yes", "restore-postgres", kept.to_str().unwrap()]);
    assert!(out.contains("restored database `drydock`"), "{out}");
    let held = session.wait_with_output().unwrap();
    assert!(
        !held.status.success() && String::from_utf8_lossy(&held.stderr).contains("terminat"),
        "the session holding the database was ended by the swap: {}",
        text(&held)
    );
    assert_eq!(s.psql("select id from kept").trim(), "7");
    assert_eq!(s.psql(LEFTOVERS).trim(), "0", "the replaced database was dropped");

    // MongoDB: no image on this machine, said plainly.
    let out = s.xtask(&["backup-mongodb"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("MongoDB is not available on this machine"),
        "{}",
        text(&out)
    );
}
