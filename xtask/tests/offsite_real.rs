//! Off-site copies and encryption against real servers: an S3-compatible store (moto's server) and an OpenSSH
//! SFTP server, each in a container of `drydock/offsite-test:trixie` (infra/images/offsite-test/, built offline
//! when missing) published on 127.0.0.1 only, with SSH keys made per run; the databases are real PostgreSQL and
//! Redis in a compose project of the test's own (tests/common/backup_stack.rs). Run them with
//!
//!     cargo test -p xtask --test offsite_real -- --ignored --test-threads=1
//!
//! Everything a test starts (containers labelled `drydock.test=offsite`, compose project, temporary dirs) is
//! removed when it ends, also when it fails.
//!
//! moto 5.1 answers a completed multipart upload into an unversioned bucket with the version id `null`, which
//! rclone 1.60 then asks for and moto refuses (400): the test bucket is created with versioning on, as many
//! production buckets are. Real S3 returns no version id for unversioned buckets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::backup_stack::Stack;
use common::offsite_server::{Server, host_keys};
use common::text;
use common::{docker, docker_ok};
use xtask::backup::manifest::Manifest;

/// An S3 store with a versioned bucket `drydock-offsite` and a credentials file (0600) for it.
struct S3 {
    server: Server,
    credentials: PathBuf,
}

impl S3 {
    fn start(stack: &Stack, tag: &str) -> S3 {
        let server = Server::start(&format!("drydock-os-{tag}-s3"), "s3", 9000, &[]);
        let credentials = stack.dir.join("s3.credentials");
        std::fs::write(
            &credentials,
            "access_key_id = drydock-test\nsecret_access_key = offsite-test-secret-value\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s3 = S3 { server, credentials };
        s3.rclone_ok(&["mkdir", "offsite:drydock-offsite"]);
        s3.rclone_ok(&["backend", "versioning", "offsite:drydock-offsite", "Enabled"]);
        s3
    }

    fn config(&self) -> String {
        format!(
            "[backups.remote]\ntype = \"s3\"\nendpoint = \"http://127.0.0.1:{}\"\nbucket = \"drydock-offsite\"\npath = \"team\"\ncredentials_file = {:?}\n",
            self.server.port,
            self.credentials.display().to_string()
        )
    }

    /// rclone against the store, for the test's own looks and faults (not through the xtask).
    fn rclone(&self, args: &[&str]) -> Output {
        Command::new("rclone")
            .args(["--config", "", "-q"])
            .args(args)
            .env("RCLONE_CONFIG_OFFSITE_TYPE", "s3")
            .env("RCLONE_CONFIG_OFFSITE_PROVIDER", "Other")
            .env(
                "RCLONE_CONFIG_OFFSITE_ENDPOINT",
                format!("http://127.0.0.1:{}", self.server.port),
            )
            .env("RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID", "drydock-test")
            .env("RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY", "offsite-test-secret-value")
            .env("RCLONE_CONFIG_OFFSITE_FORCE_PATH_STYLE", "true")
            .env("AWS_CA_BUNDLE", "")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn rclone_ok(&self, args: &[&str]) -> String {
        let out = self.rclone(args);
        assert!(out.status.success(), "rclone {args:?}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Object names under `team/<service>/`.
    fn objects(&self, service: &str) -> Vec<String> {
        let out = self.rclone(&["lsf", &format!("offsite:drydock-offsite/team/{service}")]);
        if !out.status.success() {
            return Vec::new();
        }
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }
}

/// An SFTP server (user `offsite`, key only) with `/data` on a tmpfs of `size`.
struct Sftp {
    server: Server,
    key: PathBuf,
    known_hosts: PathBuf,
}

impl Sftp {
    fn start(stack: &Stack, tag: &str, size: &str) -> Sftp {
        let key = stack.dir.join("sftp_key");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "drydock-offsite-test", "-f"])
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-keygen: {}", text(&out));
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let env = format!("SSH_AUTHORIZED_KEYS={}", public.trim());
        let tmpfs = format!("/data:size={size},uid=1000,gid=1000,mode=0755");
        let server = Server::start(
            &format!("drydock-os-{tag}-sftp"),
            "sftp",
            22,
            &["-e", &env, "--tmpfs", &tmpfs],
        );
        // The host keys from the server itself (no trust on first use): `[127.0.0.1]:<port> <key>` each.
        let known_hosts = stack.dir.join("sftp_known_hosts");
        std::fs::write(&known_hosts, host_keys(&server)).unwrap();
        Sftp {
            server,
            key,
            known_hosts,
        }
    }

    fn config(&self) -> String {
        format!(
            "[backups.remote]\ntype = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"offsite\"\nkey_file = {:?}\nknown_hosts_file = {:?}\npath = \"/data/team\"\n",
            self.server.port,
            self.key.display().to_string(),
            self.known_hosts.display().to_string()
        )
    }

    /// Files under /data/team/<service> on the server.
    fn files(&self, service: &str) -> Vec<String> {
        let out = docker(&["exec", &self.server.name, "ls", "-1", &format!("/data/team/{service}")]);
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }
}

/// An age identity (the private key file) and its recipient (the public key).
fn age_identity(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("age-keygen").arg("-o").arg(&path).output().unwrap();
    assert!(out.status.success(), "age-keygen: {}", text(&out));
    let public = Command::new("age-keygen").arg("-y").arg(&path).output().unwrap();
    assert!(public.status.success());
    (path, String::from_utf8_lossy(&public.stdout).trim().to_string())
}

const PG_SNAPSHOT: &str = "select string_agg(t::text, '|' order by id) from notes t";

fn seed(s: &Stack) {
    s.psql(
        "create table notes (id int primary key, body text not null);
         insert into notes select g, 'note ' || g || ' ' || md5(g::text) from generate_series(1, 2000) g;",
    );
    // One redis-cli for all the writes (not a `db-redis` each), then `db-redis` checks they all went in.
    let mut writes: String = (0..50).map(|i| format!("set key:{i} \"value {i}\"\n")).collect();
    writes.push_str("rpush list:1 a b c\n");
    s.redis_in_container(&writes, "redis-cli >/dev/null");
    assert_eq!(s.redis(&["dbsize"]).trim(), "51", "the seed wrote 51 keys");
}

fn redis_snapshot(s: &Stack) -> String {
    // One exec for every key (a `db-redis` per key was two xtask runs, two compose calls and two execs for
    // each of the 51 keys): key, type and value, in byte order.
    let script = r#"export LC_ALL=C
redis-cli --raw keys '*' | sort | while IFS= read -r k; do
  t=$(redis-cli --raw type "$k")
  case "$t" in
    list) v=$(redis-cli --raw lrange "$k" 0 -1 | paste -sd, -) ;;
    string) v=$(redis-cli --raw get "$k") ;;
    *) echo "key $k has type $t, which this snapshot does not read" >&2; exit 1 ;;
  esac
  printf '%s (%s)=%s\n' "$k" "$t" "$v"
done"#;
    let snapshot = s.redis_in_container("", script);
    assert!(snapshot.lines().count() > 1, "the snapshot found no keys:\n{snapshot}");
    snapshot
}

/// Wipes the data: what a restore must bring back.
fn wreck(s: &Stack) {
    s.psql("delete from notes where id > 10; update notes set body = 'changed'");
    s.redis(&["flushall"]);
    s.redis(&["set", "intruder", "1"]);
}

#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test offsite_real -- --ignored --test-threads=1"]
fn s3_round_trip_plain_and_encrypted() {
    let s = Stack::up("os-s3");
    let s3 = S3::start(&s, "rt");
    seed(&s);
    let pg_before = s.psql(PG_SNAPSHOT);
    let redis_before = redis_snapshot(&s);
    s.write_config_with("stack.toml", &s.dir.join("backups"), &s3.config());

    // A backup is pushed right after it is written (push_after_backup defaults to true).
    let out = s.xtask_ok(&["backup-postgres"]);
    assert!(out.contains("every file read back and its SHA-256 checked"), "{out}");
    assert!(
        !out.contains("offsite-test-secret-value"),
        "no credential in the output:\n{out}"
    );
    let out = s.xtask_ok(&["backup-redis"]);
    assert!(out.contains("pushed "), "{out}");
    // The freshness metric has a remote series once the copy is verified.
    let metric = std::fs::read_to_string(s.dir.join("backups/.metrics/drydock_backup.prom")).unwrap();
    assert!(
        metric.contains("drydock_backup_last_success_timestamp_seconds{project=\"drydock-bt-os-s3\",service=\"postgres\",location=\"remote\"}"),
        "{metric}"
    );
    let pg_objects = s3.objects("postgres");
    assert_eq!(pg_objects.len(), 3, "dump, globals, manifest: {pg_objects:?}");
    assert!(!pg_objects.iter().any(|o| o.ends_with(".uploading")));
    let listed = s.xtask_ok(&["backups", "list", "--remote"]);
    assert!(
        listed.contains("every complete local backup has a finished off-site copy"),
        "{listed}"
    );
    assert_eq!(listed.matches("finished").count(), 2 + 1, "{listed}");
    // A second push finds nothing to do.
    let again = s.xtask_ok(&["backups", "push"]);
    assert!(
        again.contains("pushed 0 backup(s)") && again.contains("2 already off-site"),
        "{again}"
    );

    // Lose the machine's backups, wreck the data, restore from the remote only.
    std::fs::remove_dir_all(s.dir.join("backups")).unwrap();
    wreck(&s);
    let out = s.xtask_ok(&["--yes", "restore-postgres", "--from-remote"]);
    assert!(out.contains("downloaded and checked"), "{out}");
    assert_eq!(s.psql(PG_SNAPSHOT), pg_before, "row for row");
    let out = s.xtask_ok(&["--yes", "restore-redis", "--from-remote"]);
    assert!(out.contains("restored"), "{out}");
    assert_eq!(redis_snapshot(&s), redis_before, "key for key");

    // Encrypted: the same round trip, with plaintext never on disk and only fingerprints in the manifest.
    let (identity, recipient) = age_identity(&s.dir, "age.key");
    let (other, _) = age_identity(&s.dir, "other.key");
    let encrypted = format!("{}\n[backups.encryption]\nrecipients = [{recipient:?}]\n", s3.config());
    s.write_config_with("stack.toml", &s.dir.join("backups"), &encrypted);
    let out = s.xtask_ok(&["backup-postgres"]);
    assert!(out.contains("encrypted with age for SHA256:"), "{out}");
    let pg_dir = s.dir.join("backups/postgres");
    let manifest_path = std::fs::read_dir(&pg_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .max()
        .unwrap();
    let manifest = Manifest::read(&manifest_path).unwrap();
    assert!(manifest.file.ends_with(".dump.age"), "{}", manifest.file);
    let info = manifest.encryption.clone().expect("the manifest says it is encrypted");
    assert_eq!(info.recipients.len(), 1);
    let manifest_text = std::fs::read_to_string(&manifest_path).unwrap();
    assert!(!manifest_text.contains(&recipient) && !manifest_text.contains("AGE-SECRET-KEY"));
    for f in &manifest.files {
        let data = std::fs::read(pg_dir.join(&f.name)).unwrap();
        assert!(
            data.starts_with(b"age-encryption.org/v1"),
            "{} is not age-encrypted",
            f.name
        );
        assert!(f.plain.is_some(), "the plaintext's hash is recorded");
    }
    // No identity, then a wrong one: clear errors, nothing touched (no safety backup, data unchanged).
    s.psql("insert into notes values (99999, 'after the encrypted backup')");
    let changed = s.psql(PG_SNAPSHOT);
    let files_before = std::fs::read_dir(&pg_dir).unwrap().count();
    let out = s.xtask(&["--yes", "restore-postgres", "--latest"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no identity was given"), "{}", text(&out));
    let wrong = s.xtask(&[
        "--yes",
        "restore-postgres",
        "--latest",
        "--identity",
        other.to_str().unwrap(),
    ]);
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("does not decrypt with the identity"),
        "{}",
        text(&wrong)
    );
    assert_eq!(s.psql(PG_SNAPSHOT), changed, "the database is untouched");
    assert_eq!(
        std::fs::read_dir(&pg_dir).unwrap().count(),
        files_before,
        "no safety backup was taken"
    );
    // verify decrypts with the identity; then the round trip through the remote.
    let id = identity.to_str().unwrap();
    let out = s.xtask_ok(&["backups", "verify", "--latest", "--identity", id]);
    assert!(out.contains("test restore passed"), "{out}");
    std::fs::remove_dir_all(s.dir.join("backups")).unwrap();
    wreck(&s);
    let name = manifest.file.split('.').next().unwrap().to_string();
    let out = s.xtask_ok(&["--yes", "restore-postgres", "--from-remote", &name, "--identity", id]);
    assert!(out.contains("restored database"), "{out}");
    assert_eq!(
        s.psql(PG_SNAPSHOT),
        pg_before,
        "row for row, through encryption and the remote"
    );
}

#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test offsite_real -- --ignored --test-threads=1"]
fn s3_faults_never_list_as_finished() {
    let s = Stack::up("os-s3f");
    let mut s3 = S3::start(&s, "faults");
    // Big enough that an upload takes several multipart chunks (5 MiB each).
    s.psql(
        "create table notes (id int primary key, body text not null);
         insert into notes select g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) from generate_series(1, 600000) g;",
    );
    let pg_before = s.psql("select count(*), md5(string_agg(body, '' order by id)) from notes");
    let no_push = format!("{}push_after_backup = false\n", s3.config());
    s.write_config_with("stack.toml", &s.dir.join("backups"), &no_push);
    s.xtask_ok(&["backup-postgres"]);
    let listed = s.xtask_ok(&["backups", "list", "--remote"]);
    assert!(listed.contains("1 local backup(s) have no off-site copy"), "{listed}");

    // 1. The push is killed mid-upload (once the store has received a part of the dump).
    let mut child = s.spawn(&["backups", "push"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !s3.server.logs().contains("partNumber=1&") {
        assert!(Instant::now() < deadline, "no upload part arrived within 120 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    // rclone may still be finishing its part: give it a moment, then look.
    std::thread::sleep(Duration::from_secs(2));
    let listed = s.xtask_ok(&["backups", "list", "--remote"]);
    assert!(
        !listed.contains(" finished"),
        "nothing lists as finished after a killed push:\n{listed}"
    );
    assert!(listed.contains("1 local backup(s) have no off-site copy"), "{listed}");
    let out = s.xtask(&["--yes", "restore-postgres", "--from-remote"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("has no finished backup"), "{}", text(&out));
    // The next push completes it.
    let out = s.xtask_ok(&["backups", "push"]);
    assert!(out.contains("pushed 1 backup(s)"), "{out}");
    assert!(!s3.objects("postgres").iter().any(|o| o.ends_with(".uploading")));

    // 2. The server stops mid-upload: a clear failure, the local backup intact, a later push succeeds.
    s.xtask_ok(&["backup-postgres"]);
    let local_before = s.files("postgres");
    let parts_before = s3.server.logs().matches("partNumber=1&").count();
    let child = s.spawn(&["backups", "push"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while s3.server.logs().matches("partNumber=1&").count() == parts_before {
        assert!(Instant::now() < deadline, "no upload part arrived within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    docker_ok(&["stop", "-t", "1", &s3.server.name]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("were not copied off-site"), "{}", text(&out));
    assert_eq!(s.files("postgres"), local_before, "the local backups are untouched");
    // moto keeps its objects in memory: a restarted server is empty, and the next push copies both again.
    docker_ok(&["start", &s3.server.name]);
    // The published port may change with the restart.
    let port = docker_ok(&["port", &s3.server.name, "9000/tcp"]);
    s3.server.port = port
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    s3.server.wait_listening();
    s3.rclone_ok(&["mkdir", "offsite:drydock-offsite"]);
    s3.rclone_ok(&["backend", "versioning", "offsite:drydock-offsite", "Enabled"]);
    s.write_config_with(
        "stack.toml",
        &s.dir.join("backups"),
        &format!("{}push_after_backup = false\n", s3.config()),
    );
    let out = s.xtask_ok(&["backups", "push"]);
    assert!(out.contains("pushed 2 backup(s)"), "{out}");

    // 3. A remote object is damaged: the restore refuses before touching anything and leaves no file.
    let dump = s3
        .objects("postgres")
        .into_iter()
        .rfind(|o| o.ends_with(".dump"))
        .unwrap();
    let object = format!("offsite:drydock-offsite/team/postgres/{dump}");
    let garbage = s.dir.join("garbage");
    let mut bytes = vec![0u8; 4096];
    bytes[..5].copy_from_slice(b"PGDMP");
    std::fs::write(&garbage, &bytes).unwrap();
    s3.rclone_ok(&["copyto", garbage.to_str().unwrap(), &object]);
    std::fs::remove_dir_all(s.dir.join("backups")).unwrap();
    s.psql("delete from notes where id > 100");
    let damaged = s.psql("select count(*), md5(string_agg(body, '' order by id)) from notes");
    let stem = dump.split('.').next().unwrap();
    let out = s.xtask(&["--yes", "restore-postgres", "--from-remote", stem]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("is damaged"), "{}", text(&out));
    assert_eq!(
        s.psql("select count(*), md5(string_agg(body, '' order by id)) from notes"),
        damaged
    );
    let left: Vec<String> = std::fs::read_dir(s.dir.join("backups/postgres"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n == ".lock" || n.ends_with(".globals.sql")),
        "no dump that looks like a backup was left: {left:?}"
    );
    // The other (older) remote copy is good: restoring it brings every row back.
    let older = s3
        .objects("postgres")
        .into_iter()
        .find(|o| o.ends_with(".dump"))
        .unwrap();
    assert_ne!(older, dump);
    s.xtask_ok(&[
        "--yes",
        "restore-postgres",
        "--from-remote",
        older.split('.').next().unwrap(),
    ]);
    assert_eq!(
        s.psql("select count(*), md5(string_agg(body, '' order by id)) from notes"),
        pg_before
    );

    // 4. Prune by the names' timestamps: keep the newest only; a store it cannot list is said, not pruned.
    let out = s.xtask_ok(&[
        "--yes",
        "backups",
        "prune",
        "--remote",
        "--keep-last",
        "1",
        "--keep-daily",
        "0",
        "--keep-weekly",
        "0",
        "--keep-monthly",
        "0",
    ]);
    assert!(out.contains("deleted 1 off-site backup(s)"), "{out}");
    let left = s3.objects("postgres");
    assert!(
        left.iter().any(|o| o == &dump),
        "the newest finished copy is kept: {left:?}"
    );
    assert!(!left.iter().any(|o| o == &older), "{left:?}");
    let nowhere = s3.config().replace("drydock-offsite", "no-such-bucket");
    s.write_config_with("nowhere.toml", &s.dir.join("backups"), &nowhere);
    let out = s
        .xtask_cmd("nowhere.toml", &["--yes", "backups", "prune", "--remote"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("cannot list the off-site store"), "{}", text(&out));
}

#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test offsite_real -- --ignored --test-threads=1"]
fn sftp_round_trip_and_a_full_remote() {
    let s = Stack::up("os-sftp");
    let sftp = Sftp::start(&s, "sftp", "6m");
    seed(&s);
    let pg_before = s.psql(PG_SNAPSHOT);
    let redis_before = redis_snapshot(&s);
    s.write_config_with("stack.toml", &s.dir.join("backups"), &sftp.config());
    s.xtask_ok(&["backup-postgres"]);
    s.xtask_ok(&["backup-redis"]);
    assert_eq!(sftp.files("postgres").len(), 3, "{:?}", sftp.files("postgres"));
    std::fs::remove_dir_all(s.dir.join("backups")).unwrap();
    wreck(&s);
    s.xtask_ok(&["--yes", "restore-postgres", "--from-remote"]);
    s.xtask_ok(&["--yes", "restore-redis", "--from-remote"]);
    assert_eq!(s.psql(PG_SNAPSHOT), pg_before, "row for row over SFTP");
    assert_eq!(redis_snapshot(&s), redis_before, "key for key over SFTP");

    // An unknown host key: nothing is sent.
    std::fs::write(
        &sftp.known_hosts,
        format!(
            "[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0wrongwrongwrongwrongwrongwrongwrongwrong00\n",
            sftp.server.port
        ),
    )
    .unwrap();
    let out = s.xtask(&["backups", "push"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "an unknown host key must refuse:\n{}",
        text(&out)
    );

    // A full remote: a backup larger than the server's 6 MB fails clearly and never lists as finished.
    std::fs::write(&sftp.known_hosts, host_keys(&sftp.server)).unwrap();
    s.psql(
        "create table big as select g as id, md5(g::text) || md5((g * 3)::text) || md5((g * 7)::text) as b from generate_series(1, 400000) g",
    );
    let no_push = format!("{}push_after_backup = false\n", sftp.config());
    s.write_config_with("stack.toml", &s.dir.join("backups"), &no_push);
    s.xtask_ok(&["backup-postgres"]);
    let local = s.files("postgres");
    let out = s.xtask(&["backups", "push"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("check the free space on the backup server"),
        "the error names the cause:\n{}",
        text(&out)
    );
    assert_eq!(s.files("postgres"), local, "the local backup is untouched");
    let listed = s.xtask_ok(&["backups", "list", "--remote"]);
    assert!(listed.contains("1 local backup(s) have no off-site copy"), "{listed}");
}
