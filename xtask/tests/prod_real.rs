//! Real production tests: the hardened stack, zero-downtime deploys and rollbacks under load, scaling,
//! self-healing, TLS and pushing to a registry. They need Docker (and build the release images if
//! missing), take minutes, and use their own compose projects (`drydock-prodtest*`) and loopback ports
//! (19080-19443, 15000), so they never touch a developer's stacks. Run them one at a time:
//!
//!   cargo test -p xtask --test prod_real -- --ignored --test-threads=1 --nocapture
//!
//! One run at a time: every test takes `target/drydock/prodtest.lock`. `DRYDOCK_TEST_REUSE_IMAGES=1` reuses
//! the last `prodtest-v1` images when this commit's release images are not built (local re-runs).
//! Swarm is tested on engines of its own (three nodes in containers, never this engine): tests/swarm_nodes.rs.
//!
//! Load is generated here (std only): a few threads sending GETs through the edge proxy on 127.0.0.1,
//! bounded in rate, count and time. A request fails when it errors or answers anything but 200.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;
use common::{
    BROKEN, CRASHING, V1, V2, docker, docker_ok, http_get, image_exists, prepare_release_images, prodtest_lock, root,
    text, wait_for_200,
};

const PROJECT: &str = "drydock-prodtest";
const HTTP_PORT: u16 = 19080;
const HTTPS_PORT: u16 = 19443;
fn work_dir() -> PathBuf {
    root().join("target/drydock/prodtest")
}

fn test_env(project: &str) -> Vec<(String, String)> {
    let w = work_dir();
    vec![
        ("DRYDOCK_PROJECT".into(), project.into()),
        ("DRYDOCK_SECRETS_DIR".into(), w.join("secrets").display().to_string()),
        ("DRYDOCK_TLS_DIR".into(), w.join("tls").display().to_string()),
        ("DRYDOCK_PROD_HTTP_PORT".into(), HTTP_PORT.to_string()),
        ("DRYDOCK_PROD_HTTPS_PORT".into(), HTTPS_PORT.to_string()),
        ("DRYDOCK_PROMETHEUS_PORT".into(), "19090".into()),
        ("DRYDOCK_GRAFANA_PORT".into(), "19300".into()),
        ("NO_COLOR".into(), "1".into()),
        ("CARGO".into(), "cargo".into()),
    ]
}

/// Runs `cargo xtask --offline <args>` for `project`, echoing its output.
fn xtask(project: &str, args: &[&str]) -> Output {
    eprintln!("+ cargo xtask --offline {}", args.join(" "));
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--offline")
        .args(args)
        .envs(test_env(project))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(project: &str, args: &[&str]) -> String {
    let out = xtask(project, args);
    assert!(
        out.status.success(),
        "cargo xtask {} failed:\n{}",
        args.join(" "),
        text(&out)
    );
    text(&out)
}

// ---------------------------------------------------------------------------------------------------------
// load

#[derive(Debug, Default, Clone)]
struct Stats {
    total: u64,
    failed: u64,
    failures: Vec<String>,
    /// Failures of requests that started after `mark`.
    failed_after_mark: u64,
    total_after_mark: u64,
}

struct Load {
    stop: Arc<AtomicBool>,
    mark: Arc<Mutex<Option<Instant>>>,
    stats: Arc<Mutex<Stats>>,
    workers: Vec<JoinHandle<()>>,
}

/// `workers` threads, each sending one GET every `interval` to 127.0.0.1:`port`, alternating the API list
/// and /health; every thread stops after `max` (time) or 20 000 requests at the latest.
fn start_load(port: u16, workers: usize, interval: Duration, max: Duration) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Mutex::new(Stats::default()));
    let mark: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let handles = (0..workers)
        .map(|w| {
            let (stop, stats, mark) = (stop.clone(), stats.clone(), mark.clone());
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
                    let after_mark = mark.lock().unwrap().is_some_and(|m| sent >= m);
                    let mut s = stats.lock().unwrap();
                    s.total += 1;
                    if after_mark {
                        s.total_after_mark += 1;
                    }
                    match result {
                        Ok((200, _, _)) => {}
                        other => {
                            s.failed += 1;
                            if after_mark {
                                s.failed_after_mark += 1;
                            }
                            if s.failures.len() < 20 {
                                s.failures.push(format!("{path}: {other:?}"));
                            }
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
        mark,
        stats,
        workers: handles,
    }
}

impl Load {
    fn mark_now(&self) {
        *self.mark.lock().unwrap() = Some(Instant::now());
    }

    fn finish(self) -> Stats {
        self.stop.store(true, Ordering::SeqCst);
        for h in self.workers {
            h.join().unwrap();
        }
        self.stats.lock().unwrap().clone()
    }
}

fn report(what: &str, s: &Stats) {
    println!("LOAD {what}: {}/{} requests failed", s.failed, s.total);
    for f in &s.failures {
        println!("  failure: {f}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// stack inspection

fn api_containers(project: &str) -> Vec<String> {
    docker_ok(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        "label=com.docker.compose.service=api",
        "--filter",
        "label=com.docker.compose.oneoff=False",
    ])
    .lines()
    .map(String::from)
    .collect()
}

fn inspect(id: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&docker_ok(&["inspect", id])).unwrap();
    v[0].clone()
}

fn project_containers(project: &str) -> Vec<String> {
    docker_ok(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ])
    .lines()
    .map(String::from)
    .collect()
}

fn secrets() -> Vec<String> {
    ["postgres_password.txt", "redis_password.txt"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(work_dir().join("secrets").join(f))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect()
}

/// Every container: read-only root, all capabilities dropped, no-new-privileges, a memory limit, a restart
/// policy, log rotation, not root, no password in its environment; only the proxy publishes ports; the proxy
/// is not on the databases' network.
fn assert_hardened(project: &str) {
    let secret_values = secrets();
    let mut findings = Vec::new();
    for id in project_containers(project) {
        let c = inspect(&id);
        let name = c["Name"].as_str().unwrap_or("?").to_string();
        let service = c["Config"]["Labels"]["com.docker.compose.service"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        let hc = &c["HostConfig"];
        if hc["ReadonlyRootfs"] != true {
            findings.push(format!("{name}: root filesystem writable"));
        }
        if !hc["CapDrop"].as_array().is_some_and(|a| a.iter().any(|x| x == "ALL")) {
            findings.push(format!("{name}: capabilities not dropped"));
        }
        if !hc["SecurityOpt"].as_array().is_some_and(|a| {
            a.iter()
                .any(|x| x.as_str().unwrap_or("").starts_with("no-new-privileges"))
        }) {
            findings.push(format!("{name}: no-new-privileges missing"));
        }
        if hc["Memory"].as_u64().unwrap_or(0) == 0 || hc["NanoCpus"].as_u64().unwrap_or(0) == 0 {
            findings.push(format!("{name}: no memory/cpu limit"));
        }
        if hc["LogConfig"]["Config"]["max-size"].is_null() {
            findings.push(format!("{name}: no log rotation"));
        }
        let user = c["Config"]["User"].as_str().unwrap_or("");
        if user.is_empty() || user == "root" || user == "0" || user.starts_with("0:") {
            findings.push(format!("{name}: runs as root (User={user:?})"));
        }
        let env = c["Config"]["Env"].to_string();
        if secret_values.iter().any(|s| env.contains(s.as_str())) {
            findings.push(format!("{name}: a password is in its environment"));
        }
        let ports = hc["PortBindings"].as_object().map(|p| !p.is_empty()).unwrap_or(false);
        if ports && service != "proxy" && service != "prometheus" {
            findings.push(format!("{name}: publishes ports"));
        }
        if service == "proxy"
            && c["NetworkSettings"]["Networks"]
                .as_object()
                .unwrap()
                .keys()
                .any(|k| k.ends_with("_backend"))
        {
            findings.push(format!("{name}: the proxy can reach the databases' network"));
        }
    }
    println!(
        "HARDENING findings (running containers of {project}): {}",
        findings.len()
    );
    assert!(findings.is_empty(), "hardening findings:\n{}", findings.join("\n"));
}

/// The upstream addresses the proxy logged since `since` (`upstream=<ip:port>` in its access log).
fn upstreams_since(project: &str, since: &str) -> BTreeMap<String, u64> {
    let proxy = docker_ok(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        "label=com.docker.compose.service=proxy",
    ]);
    let out = docker(&["logs", "--since", since, proxy.trim()]);
    // A failed `docker logs` would read as "no requests".
    assert!(out.status.success(), "docker logs of the proxy: {}", text(&out));
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let up = line.split("upstream=").nth(1).and_then(|r| r.split_whitespace().next());
        if let Some(up) = up.filter(|u| u.ends_with(":8000")) {
            *counts.entry(up.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// Random secret files for the test project (what `prod-up --generate-secrets` makes).
fn ensure_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let dir = work_dir().join("secrets");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    for f in [
        "postgres_password.txt",
        "redis_password.txt",
        "grafana_admin_password.txt",
    ] {
        let p = dir.join(f);
        if p.exists() {
            continue;
        }
        let mut bytes = [0u8; 16];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut bytes)
            .unwrap();
        let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(&p, value + "\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
    }
}

fn cleanup(project: &str) {
    let _ = xtask(project, &["--yes", "prod-down", "--volumes"]);
    let _ = std::fs::remove_file(root().join(".drydock").join(format!("deploy-{project}.json")));
}

// ---------------------------------------------------------------------------------------------------------
// tests

#[test]
#[ignore = "needs Docker and builds/starts the production stack (minutes); run with --ignored --test-threads=1"]
fn compose_stack_deploys_rolls_back_scales_and_heals_under_load() {
    let _lock = prodtest_lock();
    prepare_release_images();
    cleanup(PROJECT);
    let _ = std::fs::remove_dir_all(work_dir().join("tls"));

    // Secrets are generated; the example passwords were refused by the CLI tests.
    ok(PROJECT, &["prod-up", "--tag", V1, "--generate-secrets"]);
    wait_for_200(HTTP_PORT, "/api/v1/items", Duration::from_secs(60));
    assert_hardened(PROJECT);
    let (status, _, _) = http_get(HTTP_PORT, "/metrics", "127.0.0.1").unwrap();
    assert_eq!(status, 404, "/metrics must not be reachable through the proxy");
    assert_eq!(api_containers(PROJECT).len(), 2, "two API replicas in production");

    // 1. zero-downtime deploy of a new image
    let load = start_load(HTTP_PORT, 4, Duration::from_millis(40), Duration::from_secs(300));
    std::thread::sleep(Duration::from_secs(3));
    ok(PROJECT, &["prod-deploy", "--tag", V2]);
    std::thread::sleep(Duration::from_secs(3));
    let s = load.finish();
    report("prod-deploy v1 -> v2", &s);
    assert!(s.total > 100, "too little load: {}", s.total);
    assert_eq!(s.failed, 0, "requests failed during the deploy");
    for id in api_containers(PROJECT) {
        assert_eq!(inspect(&id)["Config"]["Image"], format!("drydock/api:{V2}"));
    }

    // 2. a broken image (starts, never healthy) is rolled back by itself, without a failed request
    // Meanwhile a second deploy command is refused at once, naming the holder of the target's lock.
    let load = start_load(HTTP_PORT, 4, Duration::from_millis(40), Duration::from_secs(300));
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("+ cargo xtask --offline prod-deploy --tag {BROKEN} --timeout 40 (in the background)");
    let first = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["--offline", "prod-deploy", "--tag", BROKEN, "--timeout", "40"])
        .envs(test_env(PROJECT))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = root().join(".drydock").join(format!("lock-{PROJECT}"));
    let held = Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains(BROKEN)) {
        assert!(
            held.elapsed() < Duration::from_secs(60),
            "the deploy never took its lock"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let second = xtask(PROJECT, &["prod-scale", "api", "3"]);
    let refused = text(&second);
    assert_eq!(second.status.code(), Some(1), "{refused}");
    assert!(
        refused.contains(&format!("`{PROJECT}` is locked by")) && refused.contains(&format!("prod-deploy {BROKEN}")),
        "{refused}"
    );
    println!(
        "LOCK a second command during a deploy: refused ({})",
        refused
            .lines()
            .find(|l| l.contains("locked by"))
            .unwrap_or_default()
            .trim()
    );
    let out = first.wait_with_output().unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_secs(2));
    let s = load.finish();
    report("prod-deploy of a broken image (rolled back)", &s);
    assert_eq!(out.status.code(), Some(1), "a broken deploy must fail");
    assert!(text(&out).contains("rolled back"), "{}", text(&out));
    assert_eq!(s.failed, 0, "requests failed during the broken deploy");
    let ids = api_containers(PROJECT);
    assert_eq!(ids.len(), 2);
    for id in &ids {
        assert_eq!(
            inspect(id)["Config"]["Image"],
            format!("drydock/api:{V2}"),
            "still on v2"
        );
    }

    // 2b. an image that crashes at start: detected at once, rolled back
    let load = start_load(HTTP_PORT, 4, Duration::from_millis(40), Duration::from_secs(120));
    let out = xtask(PROJECT, &["prod-deploy", "--tag", CRASHING, "--timeout", "60"]);
    let s = load.finish();
    report("prod-deploy of a crashing image (rolled back)", &s);
    assert_eq!(out.status.code(), Some(1), "a crashing deploy must fail");
    assert!(
        text(&out).contains(&format!("deploy of API {CRASHING} rolled back")),
        "{}",
        text(&out)
    );
    assert_eq!(s.failed, 0, "requests failed during the crashing deploy");
    let ids = api_containers(PROJECT);
    assert_eq!(ids.len(), 2);
    for id in &ids {
        assert_eq!(
            inspect(id)["Config"]["Image"],
            format!("drydock/api:{V2}"),
            "still on v2"
        );
    }

    // 3. scale to three replicas: requests spread over the three
    ok(PROJECT, &["prod-scale", "api", "3"]);
    assert_eq!(api_containers(PROJECT).len(), 3);
    let api_ips: BTreeSet<String> = api_containers(PROJECT)
        .iter()
        .flat_map(|id| {
            let c = inspect(id);
            c["NetworkSettings"]["Networks"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.ends_with("_frontend"))
                .map(|(_, n)| format!("{}:8000", n["IPAddress"].as_str().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(api_ips.len(), 3, "{api_ips:?}");
    let engine_now = || {
        docker_ok(&["info", "--format", "{{json .SystemTime}}"])
            .trim()
            .trim_matches('"')
            .to_string()
    };
    let warmup = engine_now();
    let load = start_load(HTTP_PORT, 4, Duration::from_millis(40), Duration::from_secs(90));
    // The proxy re-resolves `api-live` when its DNS cache (valid=5s) expires: wait (bounded) until it has sent
    // requests to every replica, instead of sleeping a fixed time and hoping, then measure the spread.
    let started = Instant::now();
    loop {
        let seen: BTreeSet<String> = upstreams_since(PROJECT, &warmup).keys().cloned().collect();
        if api_ips.is_subset(&seen) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "after 30 s the proxy still sends requests only to {seen:?}, not to all of {api_ips:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let since = engine_now();
    std::thread::sleep(Duration::from_secs(10));
    let s = load.finish();
    report("after prod-scale api 3", &s);
    assert_eq!(s.failed, 0);
    let spread = upstreams_since(PROJECT, &since);
    println!("SCALE upstream distribution over {} replicas: {spread:?}", spread.len());
    let served: BTreeSet<String> = spread.keys().cloned().collect();
    assert_eq!(served, api_ips, "every replica (and only replicas) served requests");
    let total: u64 = spread.values().sum();
    assert!(spread.values().all(|&n| n * 10 >= total), "uneven spread: {spread:?}");

    // 4. a replica killed under load is restarted; no request fails after the restart
    let load = start_load(HTTP_PORT, 4, Duration::from_millis(40), Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    let victim = api_containers(PROJECT)[0].clone();
    let pid = inspect(&victim)["State"]["Pid"].as_u64().unwrap();
    let restarts_before = inspect(&victim)["RestartCount"].as_u64().unwrap();
    println!("KILL: SIGKILL to pid {pid} ({})", &victim[..12]);
    assert!(
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let started = Instant::now();
    loop {
        let c = inspect(&victim);
        if c["RestartCount"].as_u64().unwrap() > restarts_before && c["State"]["Health"]["Status"] == "healthy" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the killed replica was not replaced: {}",
            c["State"]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "KILL: replica restarted and healthy after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    load.mark_now();
    std::thread::sleep(Duration::from_secs(10));
    let s = load.finish();
    report("container killed under load (whole run)", &s);
    println!(
        "LOAD after the restart: {}/{} requests failed",
        s.failed_after_mark, s.total_after_mark
    );
    assert_eq!(s.failed_after_mark, 0, "requests failed after the restart");
    let live = ok(PROJECT, &["prod-ps"]);
    assert!(live.contains("receiving traffic (api-live)"), "{live}");

    // 5. rollback to the previous image, under load
    let load = start_load(HTTP_PORT, 4, Duration::from_millis(40), Duration::from_secs(300));
    ok(PROJECT, &["prod-rollback"]);
    let s = load.finish();
    report("prod-rollback v2 -> v1", &s);
    assert_eq!(s.failed, 0);
    for id in api_containers(PROJECT) {
        assert_eq!(inspect(&id)["Config"]["Image"], format!("drydock/api:{V1}"));
    }

    // The audit log saw all of it: who, what, which tag, the result (append-only: this run's lines are last).
    let audit = std::fs::read_to_string(root().join(".drydock").join(format!("audit-{PROJECT}.jsonl"))).unwrap();
    let entries: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let last = |command: &str, tag: &str| {
        entries
            .iter()
            .rev()
            .find(|e| e["command"] == command && e["tag"] == tag)
            .unwrap_or_else(|| panic!("no audit entry for {command} {tag}"))
            .clone()
    };
    assert_eq!(last("prod-deploy", V2)["result"], "ok");
    assert!(
        last("prod-deploy", BROKEN)["result"]
            .as_str()
            .unwrap()
            .starts_with("failed: deploy of API")
    );
    assert_eq!(last("prod-rollback", V1)["result"], "ok");
    assert!(
        last("prod-rollback", V1)["user"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );
    let history = ok(PROJECT, &["prod-history"]);
    assert!(history.contains(V1) && history.contains("image present"), "{history}");

    // 6. maintenance mode at the edge: 503 with Retry-After and a page, health still up; off with no restart.
    let proxy_started = docker_ok(&[
        "inspect",
        "--format",
        "{{.State.StartedAt}}",
        &format!("{PROJECT}-proxy-1"),
    ]);
    ok(PROJECT, &["prod-maintenance", "on", "--message", "Back at <5> o'clock"]);
    let count = |path: &str| -> BTreeMap<u16, u64> {
        let mut seen = BTreeMap::new();
        for _ in 0..20 {
            let (status, head, body) = http_get(HTTP_PORT, path, "localhost").unwrap();
            if status == 503 {
                assert!(head.to_ascii_lowercase().contains("retry-after: 300"), "{head}");
                assert!(
                    body.contains("Back at &lt;5&gt; o&#39;clock") || body.contains("\"maintenance\""),
                    "{body}"
                );
            }
            *seen.entry(status).or_insert(0) += 1;
        }
        seen
    };
    let (site, api, health) = (count("/"), count("/api/v1/items"), count("/health"));
    println!("MAINTENANCE on: / {site:?}, /api/v1/items {api:?}, /health {health:?}");
    assert_eq!(site, BTreeMap::from([(503, 20)]));
    assert_eq!(api, BTreeMap::from([(503, 20)]));
    assert_eq!(health, BTreeMap::from([(200, 20)]), "health stays up in maintenance");
    ok(PROJECT, &["prod-maintenance", "off"]);
    let (site, api) = (count("/"), count("/api/v1/items"));
    println!("MAINTENANCE off: / {site:?}, /api/v1/items {api:?}");
    assert_eq!(site, BTreeMap::from([(200, 20)]));
    assert_eq!(api, BTreeMap::from([(200, 20)]));
    let proxy_now = docker_ok(&[
        "inspect",
        "--format",
        "{{.State.StartedAt}}",
        &format!("{PROJECT}-proxy-1"),
    ]);
    assert_eq!(proxy_started, proxy_now, "the proxy was restarted");

    cleanup(PROJECT);
}

#[test]
#[ignore = "needs Docker; starts the production stack with the monitoring profile (minutes)"]
fn monitoring_profile_scrapes_api_databases_and_backups_disk() {
    let _lock = prodtest_lock();
    prepare_release_images();
    cleanup(PROJECT);
    ensure_secrets();
    let out = ok(PROJECT, &["prod-up", "--tag", V1, "--monitoring"]);
    assert!(out.contains("Grafana: unavailable in offline mode"), "{out}");
    let started = Instant::now();
    let wanted = ["api", "postgres", "redis", "node", "prometheus"];
    loop {
        let (_, _, body) = http_get(19090, "/api/v1/targets?state=active", "127.0.0.1").unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let targets = v["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
        let up: BTreeSet<String> = targets
            .iter()
            .filter(|t| t["health"] == "up")
            .map(|t| t["labels"]["job"].as_str().unwrap_or("").to_string())
            .collect();
        let api_up = targets
            .iter()
            .filter(|t| t["labels"]["job"] == "api" && t["health"] == "up")
            .count();
        if wanted.iter().all(|j| up.contains(*j)) && api_up == 2 {
            println!("MONITORING targets up: {up:?} ({api_up} API replicas)");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "targets not all up: {targets:#?}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let (status, _, rules) = http_get(19090, "/api/v1/rules", "127.0.0.1").unwrap();
    assert_eq!(status, 200, "{rules}");
    for alert in [
        "ApiDown",
        "ApiHighErrorRate",
        "ApiHighLatency",
        "PostgresDown",
        "RedisDown",
        "BackupDiskFillingUp",
    ] {
        assert!(rules.contains(alert), "alert {alert} not loaded");
    }
    assert_hardened(PROJECT);
    cleanup(PROJECT);
}

#[test]
#[ignore = "needs Docker and the release proxy image"]
fn proxy_serves_tls_with_hsts_and_redirects_http() {
    let _lock = prodtest_lock();
    prepare_release_images();
    let dir = work_dir().join("tls-proxy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(dir.join("tls.key"))
        .arg("-out")
        .arg(dir.join("tls.crt"))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    // nginx runs as uid 101: a test key may be world-readable (see infra/secrets/README.md for real keys).
    for f in ["tls.key", "tls.crt"] {
        assert!(
            Command::new("chmod")
                .arg("0644")
                .arg(dir.join(f))
                .status()
                .unwrap()
                .success()
        );
    }
    let name = "drydock-prodtest-tls-proxy";
    let _ = docker(&["rm", "-f", name]);
    docker_ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges:true",
        "-e",
        "PROXY_PUBLIC_HTTPS_PORT=19543",
        "-v",
        &format!("{}:/etc/nginx/tls:ro", dir.display()),
        "-p",
        "127.0.0.1:19580:8080",
        "-p",
        "127.0.0.1:19543:8443",
        &format!("drydock/proxy:{V1}"),
    ]);
    let started = Instant::now();
    let redirect = loop {
        match http_get(19580, "/some/page?x=1", "example.test") {
            Ok(r) => break r,
            Err(_) if started.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(300)),
            Err(e) => panic!("proxy did not answer: {e}"),
        }
    };
    assert_eq!(redirect.0, 301, "{redirect:?}");
    assert!(
        redirect
            .1
            .contains("Location: https://example.test:19543/some/page?x=1"),
        "{}",
        redirect.1
    );
    let health = http_get(19580, "/proxy-health", "127.0.0.1").unwrap();
    assert_eq!(health.0, 200, "the healthcheck endpoint stays on plain HTTP");
    let curl = Command::new("curl")
        .args([
            "-sk",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "--max-time",
            "5",
            "https://127.0.0.1:19543/proxy-health",
        ])
        .output()
        .unwrap();
    assert!(curl.status.success(), "curl: {}", text(&curl));
    let headers = String::from_utf8_lossy(&curl.stdout).to_string();
    println!("TLS response headers:\n{headers}");
    assert!(
        headers.starts_with("HTTP/2 200") || headers.starts_with("HTTP/1.1 200"),
        "{headers}"
    );
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=63072000; includesubdomains"),
        "{headers}"
    );
    let logs = text(&docker(&["logs", name]));
    assert!(logs.contains("TLS on 8443"), "{logs}");
    docker_ok(&["rm", "-f", name]);
}

#[test]
#[ignore = "needs Docker; builds the offline registry image and pushes the release images to it on 127.0.0.1"]
fn push_to_a_local_registry() {
    let _lock = prodtest_lock();
    prepare_release_images();
    if !image_exists("drydock/registry:2.8") {
        let st = Command::new("docker")
            .args(["compose", "-p", "drydock-images", "-f"])
            .arg(root().join("infra/images/compose.yaml"))
            .args(["build", "registry"])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let name = "drydock-prodtest-registry";
    let _ = docker(&["rm", "-f", "-v", name]);
    docker_ok(&[
        "run",
        "-d",
        "--name",
        name,
        "-p",
        "127.0.0.1:15000:5000",
        "drydock/registry:2.8",
    ]);
    let started = Instant::now();
    while http_get(15000, "/v2/", "127.0.0.1").map(|r| r.0) != Ok(200) {
        assert!(started.elapsed() < Duration::from_secs(20), "registry did not start");
        std::thread::sleep(Duration::from_millis(300));
    }
    ok(PROJECT, &["push", "--registry", "127.0.0.1:15000", "--tag", V1]);
    for n in ["api", "frontend", "proxy"] {
        let (status, _, body) = http_get(15000, &format!("/v2/drydock/{n}/tags/list"), "127.0.0.1").unwrap();
        println!("PUSH registry tags of drydock/{n}: {body}");
        assert_eq!(status, 200);
        assert!(body.contains(V1), "{body}");
        let _ = docker(&["rmi", &format!("127.0.0.1:15000/drydock/{n}:{V1}")]);
    }
    docker_ok(&["rm", "-f", "-v", name]);
}
