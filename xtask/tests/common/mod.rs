//! Helpers shared by the integration tests (each file under tests/ is its own crate and includes this module).
#![allow(dead_code)] // each test crate uses its own part of it

pub mod backup_stack;
pub mod offsite_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository root (the xtask crate lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A finished command's stdout followed by its stderr, as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the xtask binary without a terminal and without colour, isolated from this shell's drydock settings
/// (project, secrets directory, bind address), with `env` on top.
pub fn xtask_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args)
        // Plans name cargo by $CARGO; a fixed value keeps the expected lines independent of the toolchain path.
        .env("CARGO", "cargo")
        .env_remove("DRYDOCK_PROJECT")
        .env_remove("DRYDOCK_SECRETS_DIR")
        .env_remove("DRYDOCK_PROD_BIND")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// [`xtask_env`] without extra environment.
pub fn xtask(args: &[&str]) -> Output {
    xtask_env(args, &[])
}

// ---------------------------------------------------------------------------------------------------------
// The production tests' shared pieces (the same as in prod_real.rs): one run at a time, the release images
// tagged for the tests, and a bounded loopback load.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const V1: &str = "prodtest-v1";
pub const V2: &str = "prodtest-v2";
pub const BROKEN: &str = "prodtest-broken";
pub const CRASHING: &str = "prodtest-crash";

/// `docker <args>` on this machine's engine (whatever DOCKER_HOST this process has).
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).stdin(Stdio::null()).output().unwrap()
}

/// [`docker`] that must succeed: its stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed:\n{}",
        args.join(" "),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `psql` as the application user inside a postgres container, over its socket: how the backup and PITR tests
/// read and seed the database around the command under test. Not `cargo xtask db-psql` for every query: that
/// is a debug xtask and two compose calls, about 230 ms of CPU a query against 60 ms for this exec (10 queries
/// each way, /proc/stat), and those tests make a few hundred. db-psql itself keeps real callers
/// (`db_psql` of the backup and PITR stacks, remote_real.rs).
pub fn psql_in(container: &str, user: &str, database: &str, sql: &str) -> Output {
    Command::new("docker")
        .args([
            "exec",
            "-u",
            "postgres",
            container,
            "psql",
            "-XAt",
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args(["-U", user, "-d", database, "-c", sql])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Builds `service` of infra/images/compose.yaml (an offline test image from drydock/base:trixie) into `image`.
/// Always asked of the builder, never skipped because `image` exists: an image left by an older recipe (another
/// commit, another checkout) would be tested instead of this one's; when the recipe is unchanged the build is
/// cached and takes a second or two.
pub fn ensure_offline_image(service: &str, image: &str) {
    assert!(
        image_exists("drydock/base:trixie"),
        "drydock/base:trixie is missing\n  fix: cargo xtask images build-offline   (or cargo xtask dev-up)"
    );
    let out = Command::new("docker")
        .args(["compose", "-p", "drydock-images", "-f"])
        .arg(root().join("infra/images/compose.yaml"))
        .args(["build", service])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success() && image_exists(image),
        "building {image} (docker compose build {service}):\n{}",
        text(&out)
    );
}

pub fn image_exists(image: &str) -> bool {
    docker(&["image", "inspect", image]).status.success()
}

/// Waits (up to 120 s) until the engine inside the node container `name` (infra/images/swarm-node) answers,
/// polling every 500 ms; panics with the node's log when it exits or never answers. The tests poll this
/// themselves instead of waiting for the image's healthcheck, which runs only every 30 s: a probe every 2 s was
/// an exec of the docker CLI in each of four nodes every 2 s for minutes.
pub fn wait_for_node_engine(name: &str) {
    let started = Instant::now();
    loop {
        // `docker version` fails when the engine does not answer (`docker info --format` prints the error and
        // exits 0).
        let probe = docker(&["exec", name, "docker", "version", "--format", "{{.Server.Version}}"]);
        if probe.status.success() && !String::from_utf8_lossy(&probe.stdout).trim().is_empty() {
            return;
        }
        let state = docker_ok(&["inspect", "--format", "{{.State.Status}}", name]);
        if started.elapsed() > Duration::from_secs(120) || state.trim() != "running" {
            panic!(
                "the engine of node {name} did not answer ({}; last probe: {}):\n{}",
                state.trim(),
                text(&probe).trim(),
                text(&docker(&["logs", "--tail", "40", name]))
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A lock file under `target/drydock/` holding its owner's pid, taken over when that process is gone.
/// Released when the guard drops.
pub struct TestLock(PathBuf);

impl Drop for TestLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Waits (up to 30 min) for `target/drydock/<file>` and takes it; `what` names the holder in the messages.
fn pid_lock(file: &str, what: &str) -> TestLock {
    let path = root().join("target/drydock").join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let started = Instant::now();
    let mut polls = 0u64;
    loop {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                write!(f, "{}", std::process::id()).unwrap();
                return TestLock(path);
            }
            Err(_) => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                let alive = !owner.trim().is_empty() && Path::new(&format!("/proc/{}", owner.trim())).exists();
                if !alive {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(1800),
                    "{what} (pid {owner}) holds {} for 30 min",
                    path.display()
                );
                // Said at once, then every minute (a poll every 200 ms).
                if polls.is_multiple_of(300) {
                    println!("waiting for {what} of pid {} to finish", owner.trim());
                }
                polls += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// One production test on this engine at a time (prod_real.rs and prod_exec_real.rs: they share project
/// names, loopback ports and the target's deploy lock): `target/drydock/prodtest.lock`. The Swarm and remote
/// host tests run on engines of their own and do not take it.
pub fn prodtest_lock() -> TestLock {
    pid_lock("prodtest.lock", "another production test run")
}

/// One run of the test file `suite` at a time (`target/drydock/<suite>.lock`): for tests on engines of their
/// own that still share fixed names on this machine (loopback ports, `.drydock/` records).
pub fn suite_lock(suite: &str) -> TestLock {
    pid_lock(&format!("{suite}.lock"), &format!("another run of {suite}"))
}

/// The release images of this commit (built by `cargo xtask build` when missing) as `prodtest-v1`, plus the
/// derived API images of [`tag_derived_images`]. `DRYDOCK_TEST_REUSE_IMAGES=1` reuses the last `prodtest-v1`
/// images when this commit's are not built (local re-runs after an unrelated commit; CI always builds).
///
/// Tests that run side by side (production on this engine, Swarm, remote host) all call it: one at a time
/// (`target/drydock/prodtest-images.lock`), and a call that finds the tags already right moves none of them,
/// so a test never sees the image under a tag it uses change while it runs.
pub fn prepare_release_images() {
    let _images = pid_lock("prodtest-images.lock", "another test preparing the release images");
    // The tag `cargo xtask build` gives this commit, from its dry run ("... release images ... as sha-xxxxxxx").
    let out = xtask(&["--offline", "--dry-run", "build"]);
    let plan = text(&out);
    assert!(out.status.success(), "cargo xtask --dry-run build failed:\n{plan}");
    let head = plan
        .split(" as sha-")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(|h| format!("sha-{h}"))
        .unwrap_or_else(|| panic!("no tag in the build plan:\n{plan}"));
    let have = |tag: &str| {
        ["api", "frontend", "proxy"]
            .iter()
            .all(|n| image_exists(&format!("drydock/{n}:{tag}")))
    };
    if !have(&head) {
        if std::env::var("DRYDOCK_TEST_REUSE_IMAGES").is_ok_and(|v| v == "1") && have(V1) {
            println!("reusing the existing drydock/*:{V1} images (DRYDOCK_TEST_REUSE_IMAGES=1)");
            tag_derived_images();
            return;
        }
        let out = xtask(&["--offline", "build"]);
        assert!(out.status.success(), "cargo xtask build failed:\n{}", text(&out));
    }
    for name in ["api", "frontend", "proxy"] {
        // `docker tag` onto the image the tag already names changes nothing.
        docker_ok(&[
            "tag",
            &format!("drydock/{name}:{head}"),
            &format!("drydock/{name}:{V1}"),
        ]);
    }
    tag_derived_images();
}

/// The image id `image` names.
pub fn image_id(image: &str) -> String {
    docker_ok(&["image", "inspect", "--format", "{{.Id}}", image])
        .trim()
        .to_string()
}

/// The derived API images from `prodtest-v1`: `prodtest-v2` (same binary, another label), a broken one that
/// starts but never becomes healthy (listens on 127.0.0.2 only) and one that crashes at start. Each records
/// what it was made from (`drydock.test.derived`: v1's image id and the change) and is made again only when
/// that differs, because a `docker commit` gives a new image id every time.
pub fn tag_derived_images() {
    let v1 = image_id(&format!("drydock/api:{V1}"));
    let derive = |tag: &str, change: &str| {
        let image = format!("drydock/api:{tag}");
        let recipe = format!("{v1} {change}");
        let made_from = docker(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"drydock.test.derived\"}}",
            &image,
        ]);
        if made_from.status.success() && String::from_utf8_lossy(&made_from.stdout).trim() == recipe {
            return;
        }
        let c = docker_ok(&["create", &format!("drydock/api:{V1}")]).trim().to_string();
        docker_ok(&[
            "commit",
            "--change",
            change,
            "--change",
            &format!("LABEL drydock.test.derived=\"{recipe}\""),
            &c,
            &image,
        ]);
        docker_ok(&["rm", &c]);
    };
    derive(V2, "LABEL drydock.test.release=v2");
    derive(BROKEN, "ENV API_HOST=127.0.0.2");
    derive(CRASHING, "ENV REQUEST_TIMEOUT_MS=not-a-number");
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub total: u64,
    pub failed: u64,
    pub failures: Vec<String>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<Stats>>,
    workers: Vec<JoinHandle<()>>,
}

/// `workers` threads, each sending one GET every `interval` to 127.0.0.1:`port`, alternating the API list
/// and /health; every thread stops after `max` (time) or 20 000 requests at the latest. A request fails when
/// it errors or answers anything but 200.
pub fn start_load(port: u16, workers: usize, interval: Duration, max: Duration) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Mutex::new(Stats::default()));
    let handles = (0..workers)
        .map(|w| {
            let (stop, stats) = (stop.clone(), stats.clone());
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) && started.elapsed() < max && i < 20_000 {
                    let path = if (i + w as u64).is_multiple_of(2) {
                        "/api/v1/items?per_page=5"
                    } else {
                        "/health"
                    };
                    let sent = Instant::now();
                    let result = http_get(port, path, "127.0.0.1");
                    let mut s = stats.lock().unwrap();
                    s.total += 1;
                    if !matches!(result, Ok((200, _, _))) {
                        s.failed += 1;
                        if s.failures.len() < 20 {
                            s.failures.push(format!("{path}: {result:?}"));
                        }
                    }
                    drop(s);
                    i += 1;
                    std::thread::sleep(interval.saturating_sub(sent.elapsed()));
                }
            })
        })
        .collect();
    Load {
        stop,
        stats,
        workers: handles,
    }
}

impl Load {
    /// Stops the threads (each finishes its request in flight) and returns the figures.
    pub fn finish(self) -> Stats {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.workers {
            h.join().unwrap();
        }
        self.stats.lock().unwrap().clone()
    }
}

/// HTTP/1.0 GET to 127.0.0.1:`port`: (status, headers, body).
pub fn http_get(port: u16, path: &str, host: &str) -> Result<(u16, String, String), String> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(format!("bad response {head:?}"))?;
    Ok((status, head.to_string(), body.to_string()))
}

/// Polls `path` on 127.0.0.1:`port` until it answers 200 (panics after `within`).
pub fn wait_for_200(port: u16, path: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let last = http_get(port, path, "127.0.0.1");
        if let Ok((200, _, _)) = last {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{path} did not answer 200 within {within:?} (last: {last:?})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The load figures of one phase, as the production tests print them (CI shows these lines).
pub fn report(what: &str, s: &Stats) {
    println!("LOAD {what}: {}/{} requests failed", s.failed, s.total);
    for f in &s.failures {
        println!("  failure: {f}");
    }
}

impl Load {
    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.stats.lock().unwrap().total
    }

    /// Polls until `more` requests beyond the current count have been sent (panics after `within`): the load
    /// is really flowing before and after the step it surrounds.
    pub fn wait_for(&self, more: u64, within: Duration) {
        let target = self.sent() + more;
        let started = Instant::now();
        while self.sent() < target {
            assert!(
                started.elapsed() < within,
                "the load sent {} of {target} requests within {within:?}",
                self.sent()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
