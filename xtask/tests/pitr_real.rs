//! PostgreSQL point-in-time recovery against real servers: pgBackRest base backups, the WAL archive, and
//! `restore-postgres --to-time`. They need Docker and the offline PostgreSQL image with pgBackRest
//! (`cargo xtask dev-up` or `cargo xtask images build-offline` builds it), so a plain `cargo test` skips them:
//!
//!     cargo test -p xtask --test pitr_real -- --ignored --test-threads=1
//!
//! Each test starts its own compose project (`drydock-pitr-<name>`, postgres only, archive_timeout 5 s),
//! writes its backups into a temporary directory (through a copy of infra/stack.toml), and removes the
//! project, its volumes and every container or volume named after it when it ends, even on failure.
//! The figures (round-trip time, measured RPO) are printed; run with `--nocapture` to see them.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

mod common;
use common::backup_stack::tail;
use common::offsite_server::Server;
use common::{psql_in, root, text};
use xtask::backup::pitr;
use xtask::backup::pitr_offsite::Source;

/// The offline PostgreSQL image the test stacks run.
const IMAGE: &str = "drydock/postgres:17";

/// archive_timeout of the test stacks, in seconds (the shipped default is 60).
const ARCHIVE_TIMEOUT: u64 = 5;

struct Stack {
    project: String,
    _guard: tempfile::TempDir,
    dir: PathBuf,
    /// `archive_queue_max_mb` of this stack (infra/stack.toml's value, or a test's own).
    queue_max_mb: u32,
}

impl Stack {
    fn up(tag: &str) -> Stack {
        Stack::up_with_queue_max(tag, 2048)
    }

    /// A stack whose pgBackRest drops WAL beyond `queue_max_mb` waiting to be archived.
    fn up_with_queue_max(tag: &str, queue_max_mb: u32) -> Stack {
        let project = format!("drydock-pitr-{tag}");
        let guard = tempfile::Builder::new()
            .prefix(&format!("{project}-"))
            .tempdir()
            .unwrap();
        let dir = guard.path().to_path_buf();
        let stack = Stack {
            project,
            _guard: guard,
            dir,
            queue_max_mb,
        };
        let shipped = std::fs::read_to_string(root().join("infra/stack.toml")).unwrap();
        let backups = stack.dir.join("backups").display().to_string();
        let config = shipped
            .replace("dir = \"backups\"", &format!("dir = {backups:?}"))
            .replace("archive_timeout = 60", &format!("archive_timeout = {ARCHIVE_TIMEOUT}"))
            .replace(
                "archive_queue_max_mb = 2048",
                &format!("archive_queue_max_mb = {queue_max_mb}"),
            );
        assert!(
            config.contains(&format!("archive_timeout = {ARCHIVE_TIMEOUT}"))
                && config.contains(&format!("archive_queue_max_mb = {queue_max_mb}")),
            "infra/stack.toml changed shape"
        );
        std::fs::write(stack.dir.join("stack.toml"), config).unwrap();
        stack.clean();
        let out = stack.compose(&["up", "--detach", "--wait", "postgres"]);
        assert!(out.status.success(), "the test stack did not start:\n{}", text(&out));
        stack
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("DRYDOCK_PROJECT", &self.project)
            .env("DRYDOCK_POSTGRES_IMAGE", IMAGE)
            .env("DRYDOCK_POSTGRES_PORT", "0")
            .env("DRYDOCK_REDIS_PORT", "0")
            .env("DRYDOCK_PITR_ARCHIVE_TIMEOUT", ARCHIVE_TIMEOUT.to_string())
            .env("DRYDOCK_PITR_ARCHIVE_QUEUE_MAX", format!("{}MB", self.queue_max_mb))
            .env("POSTGRES_USER", "drydock")
            .env("POSTGRES_PASSWORD", "pitr-postgres-password")
            .env("POSTGRES_DB", "drydock")
            .env("REDIS_PASSWORD", "pitr-redis-password")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
    }

    fn compose(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("docker");
        let root = root();
        cmd.args(["compose", "-p", &self.project, "-f"])
            .arg(root.join("infra/compose/compose.yaml"))
            .arg("-f")
            .arg(root.join("infra/compose/compose.dev.yaml"))
            .args(args);
        self.env(&mut cmd);
        cmd.output().unwrap()
    }

    /// `pgbackrest --stanza=main <command>` as postgres in the stack's postgres container.
    fn pgbackrest(&self, command: &str) -> Output {
        self.compose(&[
            "exec",
            "-T",
            "-u",
            "postgres",
            "postgres",
            "pgbackrest",
            "--stanza=main",
            command,
        ])
    }

    fn xtask(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(["--offline", "--config"])
            .arg(self.dir.join("stack.toml"))
            .args(args);
        self.env(&mut cmd);
        cmd.output().unwrap()
    }

    fn xtask_ok(&self, args: &[&str]) -> String {
        let out = self.xtask(args);
        assert!(out.status.success(), "xtask {args:?} failed:\n{}", tail(&text(&out)));
        text(&out)
    }

    /// SQL as the application user in the stack's postgres container ([`psql_in`]); its output, trimmed.
    fn psql(&self, sql: &str) -> String {
        let out = psql_in(&format!("{}-postgres-1", self.project), "drydock", "drydock", sql);
        assert!(out.status.success(), "psql {sql}:\n{}", tail(&text(&out)));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The same through `cargo xtask db-psql`, the command a user runs.
    fn db_psql(&self, sql: &str) -> String {
        let out = self.xtask(&["-q", "db-psql", "--", "-XAt", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        assert!(out.status.success(), "db-psql {sql}:\n{}", tail(&text(&out)));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn backups(&self) -> Vec<String> {
        let dir = self.dir.join("backups/postgres");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".lock")
            .collect();
        names.sort();
        names
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker").args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs one of the crate's plans (a `Cmd`), which must succeed.
    fn run(&self, plan: &xtask::cmd::Cmd) -> String {
        self.docker_ok(&plan.argv()[1..])
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(out.status.success(), "docker {args:?}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Containers and volumes named after this project that are not the compose project's own (a
    /// recovery's scratch volumes and server, the RPO test's).
    fn leftovers(&self) -> Vec<String> {
        let filter = format!("name={}_", self.project);
        let mut found = Vec::new();
        for kind in [&["ps", "-aq", "--filter"][..], &["volume", "ls", "-q", "--filter"][..]] {
            let mut args = kind.to_vec();
            args.push(&filter);
            let out = self.docker(&args);
            found.extend(String::from_utf8_lossy(&out.stdout).lines().map(str::to_string));
        }
        found.retain(|n| {
            !n.ends_with("_postgres-data") && !n.ends_with("_pgbackrest-repo") && !n.ends_with("_pgbackrest-conf")
        });
        found
    }

    fn clean(&self) {
        let filter = format!("name={}_", self.project);
        let out = self.docker(&["ps", "-aq", "--filter", &filter]);
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.docker(&["rm", "--force", id]);
        }
        let _ = self.compose(&["down", "--volumes", "--remove-orphans", "--timeout", "5"]);
        let out = self.docker(&["volume", "ls", "-q", "--filter", &filter]);
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = self.docker(&["volume", "rm", "--force", name]);
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.clean();
    }
}

/// Now in UTC as RFC 3339 with microseconds (the containers share this machine's clock).
fn now_rfc3339() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let t = xtask::time::Timestamp(now.as_secs() as i64).rfc3339();
    format!("{}.{:06}Z", t.trim_end_matches('Z'), now.subsec_micros())
}

fn epoch_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test pitr_real -- --ignored --test-threads=1"]
fn to_time_keeps_rows_before_the_target_and_drops_rows_after() {
    let s = Stack::up("round");
    s.db_psql("create table events (id int primary key, phase text not null, at timestamptz not null default clock_timestamp())");
    s.psql("insert into events (id, phase) select g, 'before-base' from generate_series(1, 500) g");

    let started = Instant::now();
    let out = s.xtask_ok(&["backups", "base"]);
    let base_secs = started.elapsed().as_secs_f64();
    assert!(
        out.contains("base backup") && out.contains("(full)"),
        "the first base backup is a full one:\n{out}"
    );

    s.psql("insert into events (id, phase) select g, 'before-target' from generate_series(501, 800) g");
    std::thread::sleep(Duration::from_millis(1200));
    let target = now_rfc3339();
    std::thread::sleep(Duration::from_millis(1200));
    s.psql("insert into events (id, phase) select g, 'after-target' from generate_series(801, 1000) g");
    s.psql("create table later (id int)");
    s.psql("update events set phase = 'changed-after-target' where id <= 10");
    assert_eq!(s.psql("select count(*) from events"), "1000");

    let listed = s.xtask_ok(&["backups", "list"]);
    assert!(
        listed.contains("point-in-time recovery: from "),
        "backups list shows the window:\n{listed}"
    );
    assert!(
        listed.contains(&format!("at most {ARCHIVE_TIMEOUT} s of writes at risk")),
        "{listed}"
    );

    let started = Instant::now();
    let out = s.xtask_ok(&["restore-postgres", "--to-time", &target, "--yes"]);
    let restore_secs = started.elapsed().as_secs_f64();
    assert!(out.contains("recovered `postgres` to"), "{out}");

    assert_eq!(
        s.psql("select count(*) from events"),
        "800",
        "every row written before the target, none after"
    );
    assert_eq!(s.psql("select count(*) from events where phase = 'before-base'"), "500");
    assert_eq!(
        s.psql("select count(*) from events where phase = 'before-target'"),
        "300"
    );
    assert_eq!(
        s.psql("select count(*) from events where phase like '%after-target'"),
        "0"
    );
    assert_eq!(s.psql("select count(*) from pg_tables where tablename = 'later'"), "0");
    // The safety backup of the state before the recovery (all 1000 rows) was taken first.
    let safety = s.backups();
    assert!(
        safety.iter().any(|n| n.ends_with(".dump")),
        "a safety backup: {safety:?}"
    );
    assert!(
        s.leftovers().is_empty(),
        "scratch volumes or containers left: {:?}",
        s.leftovers()
    );

    // The recovered server archives again (a new timeline) and takes base backups.
    s.psql("insert into events (id, phase) values (2000, 'after-recovery')");
    s.xtask_ok(&["backups", "base"]);
    let listed = s.xtask_ok(&["backups", "list"]);
    assert!(!listed.contains("WARNING"), "{listed}");

    println!(
        "FIGURE pitr round trip: base backup {base_secs:.1} s + restore-postgres --to-time {restore_secs:.1} s (end to end: check, safety dump, restore, replay, swap, start) = {:.1} s",
        base_secs + restore_secs
    );
}

/// The network aliases of the off-site stores on the test stack's network: the database server's route to them.
const SFTP_ALIAS: &str = "pitr-offsite-sftp";
const S3_ALIAS: &str = "pitr-offsite-s3";
const S3_BUCKET: &str = "drydock-pitr";
const S3_KEY_ID: &str = "drydock-pitr-test";
const S3_SECRET: &str = "pitr-offsite-secret-value";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sftp,
    S3,
}

/// An off-site store on the stack's own network (where pgBackRest inside the postgres container reaches it),
/// also published on 127.0.0.1 for the operator's side, with the infra/stack.toml lines that point at it.
struct Offsite {
    kind: Kind,
    server: Server,
    /// `[backups.pitr]`'s offsite lines and the `[backups.remote]` table.
    pitr: String,
    remote: String,
    /// How `backups base` names repository 2.
    describe: String,
    /// The file the xtask writes into conf.d beside offsite.conf (a key or a CA).
    conf_file: &'static str,
    /// A credential that must appear in no output, environment or command line.
    secret: String,
}

impl Offsite {
    /// An OpenSSH SFTP server: key only, a key made for this run, host keys read through the engine.
    fn sftp(s: &Stack) -> Offsite {
        let key = s.dir.join("sftp_key");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "drydock-pitr-offsite", "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-keygen: {}", text(&out));
        let private_key = std::fs::read_to_string(&key).unwrap();
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let network = format!("{}_backend", s.project);
        let env = format!("SSH_AUTHORIZED_KEYS={}", public.trim());
        let server = Server::start(
            &format!("{}-sftp", s.project),
            "sftp",
            22,
            &[
                "-e",
                &env,
                "--tmpfs",
                "/data:size=512m,uid=1000,gid=1000,mode=0755",
                "--network",
                &network,
                "--network-alias",
                SFTP_ALIAS,
            ],
        );
        // Its host keys: under the name the database server uses (port 22) and under the operator's address.
        let keys = s.docker_ok(&["exec", &server.name, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub"]);
        let mut known_hosts = String::new();
        for line in keys.lines() {
            let mut f = line.split_whitespace();
            let (kind, value) = (f.next().unwrap(), f.next().unwrap());
            known_hosts.push_str(&format!(
                "{SFTP_ALIAS} {kind} {value}\n[127.0.0.1]:{} {kind} {value}\n",
                server.port
            ));
        }
        let known = s.dir.join("known_hosts");
        std::fs::write(&known, known_hosts).unwrap();
        Offsite {
            kind: Kind::Sftp,
            pitr: format!("offsite = true\noffsite_address = \"{SFTP_ALIAS}:22\"\n"),
            remote: format!(
                "\n[backups.remote]\ntype = \"sftp\"\nhost = \"127.0.0.1\"\nport = {}\nuser = \"offsite\"\nkey_file = {:?}\nknown_hosts_file = {:?}\npath = \"/data/team\"\npush_after_backup = false\n",
                server.port,
                key.display().to_string(),
                known.display().to_string()
            ),
            describe: format!("sftp://offsite@{SFTP_ALIAS}:22/data/team/pitr"),
            conf_file: "offsite-key",
            secret: private_key.lines().nth(1).unwrap().to_string(),
            server,
        }
    }

    /// An S3 store over HTTPS only, with a CA and a server certificate made for this run (pgBackRest checks
    /// the certificate against that CA and the name it connects to), and a bucket made through boto3 inside
    /// the server's container.
    fn s3(s: &Stack) -> Offsite {
        use std::os::unix::fs::PermissionsExt;
        let tls = s.dir.join("tls");
        std::fs::create_dir(&tls).unwrap();
        // The server runs as `offsite` (uid 1000): the folder and files it reads must be readable to it (a
        // throw-away key of this run's own CA).
        std::fs::set_permissions(&tls, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            tls.join("server.ext"),
            format!(
                "basicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\nsubjectAltName = DNS:{S3_ALIAS}, DNS:localhost, IP:127.0.0.1\n"
            ),
        )
        .unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&tls)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=drydock pitr test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    &format!("/CN={S3_ALIAS}"),
                ],
            ]
            .concat(),
        );
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        for file in ["ca.pem", "server.pem", "server.key"] {
            std::fs::set_permissions(tls.join(file), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let network = format!("{}_backend", s.project);
        let mount = format!("{}:/tls:ro", tls.display());
        let server = Server::start(
            &format!("{}-s3", s.project),
            "s3-tls",
            9000,
            &[
                "-v",
                &mount,
                "-e",
                "S3_TLS_CERT=/tls/server.pem",
                "-e",
                "S3_TLS_KEY=/tls/server.key",
                "--network",
                &network,
                "--network-alias",
                S3_ALIAS,
            ],
        );
        let credentials = s.dir.join("s3.credentials");
        std::fs::write(
            &credentials,
            format!("access_key_id = {S3_KEY_ID}\nsecret_access_key = {S3_SECRET}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&credentials, std::fs::Permissions::from_mode(0o600)).unwrap();
        let offsite = Offsite {
            kind: Kind::S3,
            pitr: format!("offsite = true\noffsite_address = \"{S3_ALIAS}:9000\"\n"),
            remote: format!(
                "\n[backups.remote]\ntype = \"s3\"\nendpoint = \"https://127.0.0.1:{}\"\nbucket = \"{S3_BUCKET}\"\npath = \"team\"\ncredentials_file = {:?}\nca_file = {:?}\npush_after_backup = false\n",
                server.port,
                credentials.display().to_string(),
                tls.join("ca.pem").display().to_string()
            ),
            describe: format!("s3://{S3_BUCKET}/team/pitr at https://{S3_ALIAS}:9000"),
            conf_file: "offsite-ca.pem",
            secret: S3_SECRET.to_string(),
            server,
        };
        offsite.boto3(&format!("s3.create_bucket(Bucket={S3_BUCKET:?})"));
        offsite
    }

    /// Runs `statement` with `s3`, a boto3 client of the store, inside the server's container (over HTTPS,
    /// checked against the run's CA); returns what it prints.
    fn boto3(&self, statement: &str) -> String {
        let script = format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url='https://localhost:9000', verify='/tls/ca.pem', region_name='us-east-1', aws_access_key_id={S3_KEY_ID:?}, aws_secret_access_key={S3_SECRET:?})\n{statement}\n"
        );
        let out = Command::new("docker")
            .args(["exec", &self.server.name, "python3", "-c", &script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "boto3 {statement}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The repository's files on the store, as paths below the folder `team`.
    fn listing(&self, s: &Stack) -> String {
        match self.kind {
            Kind::Sftp => s
                .docker_ok(&["exec", &self.server.name, "find", "/data/team/pitr", "-maxdepth", "3"])
                .replace("/data/team/", ""),
            Kind::S3 => self.boto3(&format!(
                "for page in s3.get_paginator('list_objects_v2').paginate(Bucket={S3_BUCKET:?}, Prefix='team/pitr/'):\n    for o in page.get('Contents', []):\n        print(o['Key'].removeprefix('team/'))"
            )),
        }
    }
}

#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test pitr_real -- --ignored --test-threads=1"]
fn the_offsite_repository_recovers_a_point_in_time_after_the_local_one_is_lost() {
    let s = Stack::up("offsite");
    let store = Offsite::sftp(&s);
    offsite_recovery(&s, &store);
}

#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test pitr_real -- --ignored --test-threads=1"]
fn the_offsite_repository_on_s3_over_tls_recovers_a_point_in_time_after_the_local_one_is_lost() {
    let s = Stack::up("offsite-s3");
    let store = Offsite::s3(&s);
    offsite_recovery(&s, &store);
}

/// Base backups into both repositories, the machine lost (data, local repository and settings volumes), then
/// `restore-postgres --to-time T --from-remote` from the off-site one: every row before T, none after.
fn offsite_recovery(s: &Stack, store: &Offsite) {
    let config_path = s.dir.join("stack.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let config = config.replacen("offsite = false\n", &store.pitr, 1) + &store.remote;
    assert!(config.contains("offsite = true"), "infra/stack.toml changed shape");
    std::fs::write(&config_path, config).unwrap();

    s.psql("create table events (id int primary key, phase text not null)");
    s.psql("insert into events (id, phase) select g, 'before-base' from generate_series(1, 400) g");
    let started = Instant::now();
    let out = s.xtask_ok(&["backups", "base"]);
    let base_secs = started.elapsed().as_secs_f64();
    assert!(
        out.contains("in repository 1") && out.contains("in repository 2") && out.contains(&store.describe),
        "the base backup goes into both repositories ({}):\n{out}",
        store.describe
    );
    // The settings are postgres's own 0600 files; the credential is in none of the xtask's output, the
    // container's environment or its command line.
    let conf_file = format!("/etc/pgbackrest/conf.d/{}", store.conf_file);
    let modes = s.docker_ok(&[
        "exec",
        &format!("{}-postgres-1", s.project),
        "stat",
        "-c",
        "%a %U %n",
        "/etc/pgbackrest/conf.d/offsite.conf",
        &conf_file,
    ]);
    assert_eq!(
        modes
            .lines()
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
        ["600 postgres", "600 postgres"],
        "{modes}"
    );
    let inspect = s.docker_ok(&["inspect", &format!("{}-postgres-1", s.project)]);
    assert!(
        !out.contains(&store.secret) && !inspect.contains(&store.secret),
        "the credential leaked"
    );
    let listed = store.listing(s);
    assert!(
        listed.contains("pitr/archive/main/") && listed.contains("pitr/backup/main/"),
        "the off-site repository holds the archive and the backups:\n{listed}"
    );

    s.psql("insert into events (id, phase) select g, 'before-target' from generate_series(401, 700) g");
    std::thread::sleep(Duration::from_millis(1200));
    let target = now_rfc3339();
    std::thread::sleep(Duration::from_millis(1200));
    s.psql("insert into events (id, phase) select g, 'after-target' from generate_series(701, 900) g");
    let listed = s.xtask_ok(&["backups", "list"]);
    assert!(listed.contains("off-site repository: recoverable from"), "{listed}");

    // Every write up to now reaches both repositories (a WAL switch, archived), then the machine is lost:
    // data, repository and settings volumes go, and a new, empty server starts in their place.
    let out = s.pgbackrest("check");
    assert!(out.status.success(), "{}", text(&out));
    let out = s.compose(&["down", "--volumes", "--timeout", "10"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = s.compose(&["up", "--detach", "--wait", "postgres"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        s.psql("select count(*) from pg_tables where tablename = 'events'"),
        "0",
        "a new server"
    );
    // The new machine's server has run for a while: its own WAL is in its local repository, the archive of
    // another database system than the one recovered. Made explicit (stanza, then a WAL switch that `check`
    // waits to see archived): the first-start WAL is not archived, so otherwise it depends on timing.
    for command in ["stanza-create", "check"] {
        let out = s.pgbackrest(command);
        assert!(
            out.status.success(),
            "pgbackrest {command} on the new server: {}",
            text(&out)
        );
    }
    let started = Instant::now();
    let out = s.xtask_ok(&["restore-postgres", "--to-time", &target, "--from-remote", "--yes"]);
    let restore_secs = started.elapsed().as_secs_f64();
    assert!(
        out.contains("from repository 2") && out.contains("recovered `postgres` to"),
        "{out}"
    );
    assert!(
        out.contains("holds the archive of the server that was just replaced"),
        "the new server's own local repository is emptied:\n{out}"
    );
    assert!(!out.contains(&store.secret), "the credential leaked");
    assert_eq!(
        s.psql("select count(*) from events"),
        "700",
        "every row before the target, none after"
    );
    assert_eq!(s.psql("select count(*) from events where phase = 'after-target'"), "0");
    assert!(s.leftovers().is_empty(), "left: {:?}", s.leftovers());
    // The recovered server archives into both repositories again and takes base backups there.
    s.psql("insert into events (id, phase) values (5000, 'after-recovery')");
    let out = s.xtask_ok(&["backups", "base"]);
    assert!(out.contains("in repository 2"), "{out}");
    let listed = s.xtask_ok(&["backups", "list"]);
    assert!(!listed.contains("WARNING"), "{listed}");

    // A named dump is not a point in time.
    let named = s.xtask(&[
        "restore-postgres",
        "--to-time",
        &target,
        "--from-remote",
        "x.dump",
        "--yes",
    ]);
    assert_eq!(named.status.code(), Some(1), "{}", text(&named));
    assert!(text(&named).contains("not from the dump"), "{}", text(&named));
    println!(
        "FIGURE pitr off-site ({} repo2): base backup into both repositories {base_secs:.1} s; restore-postgres --to-time --from-remote after the local repository was lost {restore_secs:.1} s",
        match store.kind {
            Kind::Sftp => "SFTP",
            Kind::S3 => "S3 over TLS",
        }
    );
}

#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test pitr_real -- --ignored --test-threads=1"]
fn an_unreachable_repository_never_fills_pg_wal_and_the_dropped_wal_is_reported() {
    // 32 MB: two WAL segments may wait; a third makes pgBackRest drop the oldest.
    let s = Stack::up_with_queue_max("queue", 32);
    let store = Offsite::sftp(&s);
    let config_path = s.dir.join("stack.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let config = config.replacen("offsite = false\n", &store.pitr, 1) + &store.remote;
    std::fs::write(&config_path, config).unwrap();
    s.psql("create table events (id int primary key)");
    s.xtask_ok(&["backups", "base"]);

    // The off-site store drops off the database server's network: every archive-push now fails on repo2.
    let network = format!("{}_backend", s.project);
    s.docker_ok(&["network", "disconnect", &network, &store.server.name]);
    let container = format!("{}-postgres-1", s.project);
    for i in 0..8 {
        s.psql(&format!("insert into events values ({i}); select pg_switch_wal()"));
    }
    let ready = || -> usize {
        s.docker_ok(&[
            "exec",
            &container,
            "ls",
            "/var/lib/postgresql/data/pg_wal/archive_status",
        ])
        .lines()
        .filter(|l| l.ends_with(".ready"))
        .count()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let record = loop {
        let out = s.docker(&["exec", &container, "cat", pitr::DROPPED_WAL_RECORD]);
        if out.status.success() && ready() <= 3 {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "within 90 s pgBackRest dropped nothing or pg_wal kept {} segments waiting; the server log:\n{}",
            ready(),
            tail(&text(&s.compose(&["logs", "--tail", "30", "postgres"])))
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let dropped = record.lines().count();
    assert!(dropped >= 1, "{record}");
    let listed = s.xtask_ok(&["backups", "list"]);
    assert!(
        listed.contains("WARNING: pgBackRest dropped") && listed.contains("fix: make the repository reachable"),
        "backups list says the window is broken:\n{listed}"
    );
    // The server never stopped accepting writes.
    s.psql("insert into events values (100)");

    // The store comes back: archiving resumes, a base backup starts the window again and clears the record.
    s.docker_ok(&[
        "network",
        "connect",
        "--alias",
        SFTP_ALIAS,
        &network,
        &store.server.name,
    ]);
    let out = s.pgbackrest("check");
    assert!(out.status.success(), "archiving resumes: {}", text(&out));
    s.xtask_ok(&["backups", "base"]);
    let listed = s.xtask_ok(&["backups", "list"]);
    assert!(!listed.contains("WARNING"), "{listed}");
    println!(
        "FIGURE archive queue limit: repo2 unreachable, 8 WAL switches, archive_queue_max_mb 32: {dropped} segment(s) dropped, at most 3 left waiting in pg_wal; writes went on"
    );
}

#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test pitr_real -- --ignored --test-threads=1"]
fn bad_targets_are_refused_and_change_nothing() {
    let s = Stack::up("bad");
    s.psql("create table kept (id int)");
    s.psql("insert into kept select generate_series(1, 42)");
    let past = now_rfc3339();
    std::thread::sleep(Duration::from_millis(1100));

    // No base backup yet: nothing to recover from.
    let out = s.xtask(&["restore-postgres", "--to-time", &past, "--yes"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no base backup"), "{}", text(&out));

    s.xtask_ok(&["backups", "base"]);
    s.psql("insert into kept select generate_series(43, 50)");
    let cases: [(&str, &str); 6] = [
        ("yesterday", "not an RFC 3339 time"),
        ("2026-12-02T03:50:58", "time zone is missing"),
        ("2026-02-30T00:00:00Z", "no such date"),
        ("2999-01-01T00:00:00Z", "in the future"),
        (&past, "before the recoverable window"),
        ("2001-01-01T00:00:00+02:00", "before the recoverable window"),
    ];
    for (time, expected) in cases {
        let out = s.xtask(&["restore-postgres", "--to-time", time, "--yes"]);
        let said = text(&out);
        assert!(!out.status.success(), "--to-time {time} must be refused:\n{said}");
        assert!(
            said.contains(expected) && said.contains("fix:"),
            "--to-time {time}: expected {expected:?}:\n{said}"
        );
        assert_eq!(
            s.psql("select count(*) from kept"),
            "50",
            "--to-time {time} changed the data"
        );
    }
    // And without --yes and without a terminal it refuses to go on (a valid target, after the check).
    let valid = now_rfc3339();
    let out = s.xtask(&["restore-postgres", "--to-time", &valid]);
    assert!(!out.status.success());
    assert!(text(&out).contains("without confirmation"), "{}", text(&out));
    // Both a file and --to-time: a usage error.
    let out = s.xtask(&["restore-postgres", "x.dump", "--to-time", &valid, "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    assert_eq!(s.psql("select count(*) from kept"), "50");
    assert!(
        s.backups().is_empty(),
        "no safety backup was taken for a refused target: {:?}",
        s.backups()
    );
    assert!(s.leftovers().is_empty(), "{:?}", s.leftovers());
}

/// The restore point objective, measured: rows are written every 100 ms, the server is killed (SIGKILL) and
/// its data volume treated as lost; what the repository alone recovers is compared with what was committed.
#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test pitr_real -- --ignored --test-threads=1"]
fn rpo_is_bounded_by_archive_timeout() {
    let s = Stack::up("rpo");
    s.psql("create table ticks (id serial primary key, at double precision not null)");
    s.xtask_ok(&["backups", "base"]);
    let container = String::from_utf8_lossy(&s.compose(&["ps", "-q", "postgres"]).stdout)
        .trim()
        .to_string();
    assert!(!container.is_empty());

    // The archive lag, sampled: one committed row, then the time until the WAL file holding it is archived
    // (polled about every 0.3 s). Each is at most archive_timeout plus the push itself.
    let mut lags = Vec::new();
    for _ in 0..5 {
        let file = s.psql(
            "insert into ticks (at) values (extract(epoch from clock_timestamp())) returning pg_walfile_name(pg_current_wal_insert_lsn())",
        );
        let file = file.lines().next().unwrap_or_default().to_string();
        let written = Instant::now();
        let check = format!("select coalesce(last_archived_wal >= '{file}', false) from pg_stat_archiver");
        while s.psql(&check) != "t" {
            assert!(
                written.elapsed() < Duration::from_secs(ARCHIVE_TIMEOUT * 4 + 10),
                "{file} was not archived within {} s",
                ARCHIVE_TIMEOUT * 4 + 10
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        lags.push(written.elapsed().as_secs_f64());
        std::thread::sleep(Duration::from_millis(1300));
    }
    lags.sort_by(f64::total_cmp);
    println!(
        "FIGURE archive lag (write to archived), archive_timeout {ARCHIVE_TIMEOUT} s, 5 samples: min {:.1} s, median {:.1} s, max {:.1} s",
        lags[0], lags[2], lags[4]
    );
    assert!(
        lags[4] <= ARCHIVE_TIMEOUT as f64 + 3.0,
        "archive lag {:?} beyond archive_timeout",
        lags
    );
    s.psql("truncate ticks");

    // One committed row every 100 ms for 3 archive_timeouts, through one psql session (\watch).
    let rounds = (ARCHIVE_TIMEOUT * 30) as usize;
    let script = format!(
        "insert into ticks (at) values (extract(epoch from clock_timestamp())) \\watch interval=0.1 count={rounds}\n"
    );
    let mut writer = Command::new("docker")
        .args([
            "exec",
            "-i",
            "-u",
            "postgres",
            &container,
            "psql",
            "-XAtq",
            "-v",
            "ON_ERROR_STOP=1",
            "-U",
            "drydock",
            "-d",
            "drydock",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut writer.stdin.take().unwrap(), script.as_bytes()).unwrap();
    let out = writer.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let written = s.psql("select count(*) from ticks");
    assert_eq!(written, rounds.to_string());
    s.docker_ok(&["kill", "--signal", "KILL", &container]);
    let (data, repo) = (
        format!("{}_postgres-data", s.project),
        format!("{}_pgbackrest-repo", s.project),
    );
    let killed = epoch_secs();
    let committed: f64 = {
        // The last commit is the last row the killed server had: read it from its data volume (crash recovery).
        let name = format!("{}_rpo-crashed", s.project);
        s.run(&pitr::recover_plan(&name, IMAGE, &repo, &data, &Source::Local));
        let last = wait_query(&s, &name, "select max(at) from ticks");
        s.docker_ok(&["rm", "--force", &name]);
        last.parse().unwrap()
    };

    // Lose the data volume: recover from the repository alone (base backup + archive), to its end.
    let fresh = format!("{}_rpo-fresh", s.project);
    s.docker_ok(&["volume", "create", &fresh]);
    s.run(&pitr::restore_plan(
        IMAGE,
        &repo,
        &fresh,
        "drydock",
        None,
        &Source::Local,
    ));
    let name = format!("{}_rpo-recovered", s.project);
    s.run(&pitr::recover_plan(&name, IMAGE, &repo, &fresh, &Source::Local));
    let recovered: f64 = wait_query(&s, &name, "select coalesce(max(at), 0) from ticks")
        .parse()
        .unwrap();
    let rows = wait_query(&s, &name, "select count(*) from ticks");
    s.docker_ok(&["rm", "--force", &name]);

    let lost = committed - recovered;
    println!(
        "FIGURE measured RPO: archive_timeout {ARCHIVE_TIMEOUT} s; a row committed every 100 ms, SIGKILL at {killed:.1}; the repository alone recovered {rows} rows up to {recovered:.1}; the last commit was {committed:.1}: {lost:.1} s of writes lost"
    );
    assert!(recovered > 0.0, "the archive recovered no row at all");
    assert!(
        lost <= ARCHIVE_TIMEOUT as f64 + 2.0,
        "{lost:.1} s of writes lost, more than archive_timeout ({ARCHIVE_TIMEOUT} s) allows"
    );
}

/// Waits (bounded) until a throwaway server answers a query, and returns the answer.
fn wait_query(s: &Stack, container: &str, sql: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = s.docker(&[
            "exec", "-u", "postgres", container, "psql", "-XAtq", "-U", "drydock", "-d", "drydock", "-c", sql,
        ]);
        if out.status.success() {
            let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
            // A recovering server answers read-only queries before it promoted: wait until it is done.
            let done = s.docker(&[
                "exec",
                "-u",
                "postgres",
                container,
                "psql",
                "-XAtq",
                "-U",
                "drydock",
                "-d",
                "drydock",
                "-c",
                "select pg_is_in_recovery()",
            ]);
            if String::from_utf8_lossy(&done.stdout).trim() == "f" {
                return answer;
            }
        }
        let logs = s.docker(&["logs", "--tail", "20", container]);
        assert!(
            Instant::now() < deadline,
            "{container} did not answer within 120 s:\n{}",
            text(&logs)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// All or nothing: a WAL archive with a gap (segments lost from the repository) cannot reach the target.
/// PostgreSQL refuses to promote, and the live database is left exactly as it was, with nothing left over.
#[test]
#[ignore = "needs Docker and the offline images: cargo test -p xtask --test pitr_real -- --ignored --test-threads=1"]
fn a_recovery_that_cannot_reach_the_target_leaves_the_database_as_it_was() {
    let s = Stack::up("gap");
    s.psql("create table kept (id int)");
    s.xtask_ok(&["backups", "base"]);
    // Several segments of writes after the base backup, each switched and archived.
    for round in 0..3 {
        s.psql(&format!(
            "insert into kept select generate_series({}, {})",
            round * 100 + 1,
            round * 100 + 100
        ));
        s.psql("select pg_switch_wal()");
    }
    std::thread::sleep(Duration::from_millis(1100));
    let target = now_rfc3339();
    std::thread::sleep(Duration::from_millis(1100));
    s.psql("insert into kept values (-1)");
    let container = String::from_utf8_lossy(&s.compose(&["ps", "-q", "postgres"]).stdout)
        .trim()
        .to_string();
    s.docker_ok(&[
        "exec",
        "-u",
        "postgres",
        &container,
        "pgbackrest",
        "--stanza=main",
        "check",
    ]);
    // Lose every archived segment after the base backup's first one from the repository.
    let repo = format!("{}_pgbackrest-repo:/repo", s.project);
    let script = "cd /repo/archive/main/17-1/0000000100000000 && ls | grep -E '^[0-9A-F]{24}-' | sort | awk 'NR > 3' | xargs rm -v";
    s.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-u",
        "postgres",
        "-v",
        &repo,
        "drydock/postgres:17",
        "sh",
        "-c",
        script,
    ]);
    let before = s.psql("select count(*), sum(id) from kept");

    let out = s.xtask(&["restore-postgres", "--to-time", &target, "--yes"]);
    let said = text(&out);
    assert!(!out.status.success(), "a recovery over a gap must fail:\n{said}");
    assert!(
        said.contains("before the live data was touched") && said.contains("is as it was"),
        "{}",
        tail(&said)
    );
    // Said by PostgreSQL itself, in the recovery server's log tail that the error carries.
    assert!(
        said.contains("recovery ended before configured recovery target was reached"),
        "{}",
        tail(&said)
    );
    assert_eq!(
        s.psql("select count(*), sum(id) from kept"),
        before,
        "the live database changed"
    );
    assert_eq!(s.psql("select pg_is_in_recovery()"), "f");
    assert!(
        s.leftovers().is_empty(),
        "scratch volumes or containers left: {:?}",
        s.leftovers()
    );
}

// Without Docker: the plan, the order of its steps, and refusals that need no stack.

#[test]
fn to_time_dry_run_checks_the_archive_then_backs_up_then_recovers_aside_then_swaps() {
    let out = common::xtask(&[
        "--dry-run",
        "--offline",
        "restore-postgres",
        "--to-time",
        "2026-12-02T03:00:00+01:00",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let order = [
        "pgbackrest --stanza=main check",
        "pg_dump -U",
        "docker volume create drydock_pitr-recovered-",
        "pgbackrest --stanza=main restore --type=time '--target=2026-12-02 02:00:00.000000+00' --target-action=promote",
        "postgres -c listen_addresses= -c archive_mode=on -c archive_command=",
        "docker volume create drydock_pitr-before-",
        "stop postgres",
        "-v drydock_postgres-data:/from:ro -v drydock_pitr-before-",
        "-v drydock_postgres-data:/to '<image>' find /to -mindepth 1 -delete",
        "cp -a /from/. /to/",
        "start postgres",
        "docker volume rm --force drydock_pitr-before-",
        "docker volume rm --force drydock_pitr-recovered-",
    ];
    let mut at = 0;
    for step in order {
        let found = t[at..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing or out of order in\n{t}"));
        at += found + step.len();
    }
}

#[test]
fn bad_targets_are_refused_before_anything_runs() {
    for (time, expected) in [
        ("garbage", "not an RFC 3339 time"),
        ("2026-12-02T03:00:00", "time zone is missing"),
        ("2999-01-01T00:00:00Z", "in the future"),
    ] {
        let out = common::xtask(&["--offline", "restore-postgres", "--to-time", time, "--yes"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains(expected) && t.contains("fix:"), "{time}: {t}");
        assert!(!t.contains("$ docker"), "nothing may run for {time}: {t}");
    }
    let out = common::xtask(&[
        "--offline",
        "restore-postgres",
        "--latest",
        "--to-time",
        "2026-12-02T03:00:00Z",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--latest and --to-time together: {}",
        text(&out)
    );
}

#[test]
fn pitr_settings_out_of_range_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(root().join("infra/stack.toml")).unwrap();
    for (from, to, key) in [
        (
            "archive_timeout = 60",
            "archive_timeout = 0",
            "backups.pitr.archive_timeout",
        ),
        (
            "retention_full = 2",
            "retention_full = 0",
            "backups.pitr.retention_full",
        ),
        (
            "retention_full = 2",
            "retention_full = 2\nrpo = 5",
            "unknown field `rpo`",
        ),
    ] {
        let path = dir.path().join("stack.toml");
        std::fs::write(&path, shipped.replace(from, to)).unwrap();
        let out = common::xtask(&["--offline", "--config", path.to_str().unwrap(), "backups", "list"]);
        let t = text(&out);
        assert!(!out.status.success() && t.contains(key), "{to}: {t}");
    }
}
