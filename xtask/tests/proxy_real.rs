//! The edge proxy behind load balancers, against the real proxy image built from this checkout: which upstream
//! proxies are trusted to name the client (`infra/stack.toml` `[proxy]`), and the per-client rate limits.
//! They need Docker, use their own compose project `drydock-proxytest`, containers and networks named
//! `drydock-proxytest-*` and loopback ports 19580-19599, and remove what they start:
//!
//!   cargo test -p xtask --test proxy_real -- --ignored --test-threads=1 --nocapture
//!
//! A "load balancer" is a second nginx container (drydock/nginx) relaying to the edge proxy and appending the
//! client's address to X-Forwarded-For, as real ones do. Every test client runs on the host and talks to
//! 127.0.0.1, so every one of them reaches a relay from the same address (the Docker gateway): the relays take
//! the address of the simulated user from an `X-Test-Client` header (nginx real_ip in the relay) and append that.
//!
//! Load is bounded in count and time (threads pacing their GETs on 127.0.0.1). Whether a client is limited is
//! judged against what a leaky bucket of the configured rate and burst can accept in the measured time, never
//! against a hoped-for figure: a check fails if the load was too small for it to mean anything.
//!
//! The proxy image is `cargo xtask build proxy` of this checkout, retagged `drydock/proxy:proxytest`; the API and
//! the frontend are this commit's release images (built when missing), or with `DRYDOCK_TEST_REUSE_IMAGES=1`
//! the last `prodtest-v1` images of `prod_real` (the proxy is always this checkout's).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROJECT: &str = "drydock-proxytest";
const TAG: &str = "proxytest";
const HTTP_PORT: u16 = 19580;
const HTTPS_PORT: u16 = 19583;
const RELAY_TRUSTED_PORT: u16 = 19581;
const RELAY_UNTRUSTED_PORT: u16 = 19582;
const EDGE_PORT: u16 = 19590;
const EDGE_RELAY_TRUSTED_PORT: u16 = 19591;
const EDGE_RELAY_UNTRUSTED_PORT: u16 = 19592;

/// The tests of this file share images and names: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn work_dir() -> PathBuf {
    root().join("target/drydock/proxytest")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).stdin(Stdio::null()).output().unwrap()
}

fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed:\n{}",
        args.join(" "),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn image_exists(image: &str) -> bool {
    docker(&["image", "inspect", image]).status.success()
}

/// `cargo xtask --offline [--config <config>] <args>` for the test project, echoing its output.
fn xtask(config: Option<&Path>, args: &[&str]) -> Output {
    eprintln!("+ cargo xtask --offline {}", args.join(" "));
    let w = work_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("--offline");
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    let out = cmd
        .args(args)
        .env("DRYDOCK_PROJECT", PROJECT)
        .env("DRYDOCK_SECRETS_DIR", w.join("secrets"))
        .env("DRYDOCK_TLS_DIR", w.join("tls"))
        .env("DRYDOCK_PROD_HTTP_PORT", HTTP_PORT.to_string())
        .env("DRYDOCK_PROD_HTTPS_PORT", HTTPS_PORT.to_string())
        .env("DRYDOCK_PROMETHEUS_PORT", "19598")
        .env("DRYDOCK_GRAFANA_PORT", "19599")
        .env_remove("DRYDOCK_PROD_BIND")
        .env("NO_COLOR", "1")
        .env("CARGO", "cargo")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!("{}", text(&out));
    out
}

fn xtask_ok(config: Option<&Path>, args: &[&str]) -> String {
    let out = xtask(config, args);
    assert!(
        out.status.success(),
        "cargo xtask {} failed:\n{}",
        args.join(" "),
        text(&out)
    );
    text(&out)
}

/// `drydock/{api,frontend,proxy}:proxytest`: the proxy always from this checkout (`cargo xtask build proxy`, a
/// few seconds), the API and the frontend from this commit's release images.
fn prepare_images() {
    let plan = text(
        &Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["--offline", "--dry-run", "build"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap(),
    );
    let head = plan
        .split(" as sha-")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(|h| format!("sha-{h}"))
        .unwrap_or_else(|| panic!("no tag in the build plan:\n{plan}"));
    xtask_ok(None, &["build", "proxy"]);
    docker_ok(&["tag", &format!("drydock/proxy:{head}"), &format!("drydock/proxy:{TAG}")]);
    let have = |tag: &str| {
        ["api", "frontend"]
            .iter()
            .all(|n| image_exists(&format!("drydock/{n}:{tag}")))
    };
    let from = if have(&head) {
        head
    } else if std::env::var("DRYDOCK_TEST_REUSE_IMAGES").is_ok_and(|v| v == "1") && have("prodtest-v1") {
        println!("reusing drydock/{{api,frontend}}:prodtest-v1 (DRYDOCK_TEST_REUSE_IMAGES=1)");
        "prodtest-v1".to_string()
    } else {
        xtask_ok(None, &["build", "api", "frontend"]);
        head
    };
    for name in ["api", "frontend"] {
        docker_ok(&[
            "tag",
            &format!("drydock/{name}:{from}"),
            &format!("drydock/{name}:{TAG}"),
        ]);
    }
}

// ---------------------------------------------------------------------------------------------------------
// HTTP and load

/// One HTTP/1.0 GET to 127.0.0.1:`port` with extra header lines: (status, head, body).
fn get(port: u16, path: &str, headers: &str) -> Result<(u16, String, String), String> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{headers}\r\n").map_err(|e| format!("write: {e}"))?;
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

fn wait_for_200(port: u16, path: &str, headers: &str, within: Duration) {
    let started = Instant::now();
    loop {
        match get(port, path, headers) {
            Ok((200, _, _)) => return,
            other => assert!(
                started.elapsed() < within,
                "127.0.0.1:{port}{path} did not answer 200 within {within:?}: last {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A simulated client: one thread sending a GET every `interval`, with the header lines `headers(i)` for its
/// i-th request.
struct Client {
    name: String,
    port: u16,
    path: &'static str,
    interval: Duration,
    headers: Arc<dyn Fn(u64) -> String + Send + Sync>,
}

#[derive(Debug, Default, Clone)]
struct Tally {
    sent: u64,
    ok: u64,
    limited: u64,
    other: Vec<String>,
    /// The first 429: (head, body).
    limited_sample: Option<(String, String)>,
}

/// Runs every client at once for `duration` (and at most 2 000 requests each); returns the tallies and the time
/// from the first request sent to the last answer received.
fn run_load(clients: Vec<Client>, duration: Duration) -> (BTreeMap<String, Tally>, Duration) {
    let started = Instant::now();
    let handles: Vec<_> = clients
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let mut t = Tally::default();
                while started.elapsed() < duration && t.sent < 2_000 {
                    let sent = Instant::now();
                    let r = get(c.port, c.path, &(c.headers)(t.sent));
                    t.sent += 1;
                    match r {
                        Ok((200, _, _)) => t.ok += 1,
                        Ok((429, head, body)) => {
                            t.limited += 1;
                            t.limited_sample.get_or_insert((head, body));
                        }
                        other => {
                            if t.other.len() < 10 {
                                t.other.push(format!("{other:?}"));
                            } else {
                                t.other.push(String::new());
                            }
                        }
                    }
                    std::thread::sleep(c.interval.saturating_sub(sent.elapsed()));
                }
                (c.name, t)
            })
        })
        .collect();
    let tallies = handles.into_iter().map(|h| h.join().unwrap()).collect();
    (tallies, started.elapsed())
}

fn header(name: &'static str, value: String) -> Arc<dyn Fn(u64) -> String + Send + Sync> {
    Arc::new(move |_| format!("{name}: {value}\r\n"))
}

/// The most requests one client key can have accepted in `elapsed` by a leaky bucket of `rate`/s and `burst`
/// (nodelay): the burst plus the first request, plus the rate over the time, plus one for rounding.
fn most_accepted(rate: u64, burst: u64, elapsed: Duration) -> u64 {
    burst + 1 + (rate as f64 * elapsed.as_secs_f64()).ceil() as u64 + 1
}

fn sum(tallies: &BTreeMap<String, Tally>, prefix: &str) -> Tally {
    let mut total = Tally::default();
    for (_, t) in tallies.iter().filter(|(n, _)| n.starts_with(prefix)) {
        total.sent += t.sent;
        total.ok += t.ok;
        total.limited += t.limited;
        total.other.extend(t.other.iter().cloned());
        if total.limited_sample.is_none() {
            total.limited_sample = t.limited_sample.clone();
        }
    }
    total
}

fn report(phase: &str, tallies: &BTreeMap<String, Tally>, elapsed: Duration) {
    println!("LOAD {phase} ({:.1} s):", elapsed.as_secs_f64());
    for (name, t) in tallies {
        println!(
            "  {name:<28} sent {:>4}  200: {:>4}  429: {:>4}  other: {}",
            t.sent,
            t.ok,
            t.limited,
            t.other.len()
        );
    }
}

/// A client key that must have been limited, and no more leniently than `rate`/`burst`.
fn assert_limited(what: &str, t: &Tally, rate: u64, burst: u64, elapsed: Duration) {
    let most = most_accepted(rate, burst, elapsed);
    assert!(t.other.is_empty(), "{what}: requests failed otherwise: {:?}", t.other);
    assert!(
        t.sent >= most + 10,
        "{what}: only {} requests in {elapsed:?}: too little load to show a limit of {rate} r/s burst {burst}",
        t.sent
    );
    assert!(
        t.ok <= most,
        "{what}: {} requests accepted in {elapsed:?}, more than a limit of {rate} r/s burst {burst} allows ({most})",
        t.ok
    );
    assert!(
        t.ok >= burst.min(t.sent),
        "{what}: fewer accepted ({}) than the burst {burst}",
        t.ok
    );
    assert_eq!(t.ok + t.limited, t.sent, "{what}");
}

/// A client key that must never have been limited.
fn assert_not_limited(what: &str, t: &Tally) {
    assert!(t.sent >= 5, "{what}: only {} requests sent", t.sent);
    assert!(
        t.limited == 0 && t.other.is_empty(),
        "{what}: {} of {} requests limited, failures {:?}",
        t.limited,
        t.sent,
        t.other
    );
}

/// The proxy's 429 on /api/: JSON in the API's error shape, with Retry-After.
fn assert_api_429(sample: &Option<(String, String)>) {
    let (head, body) = sample.as_ref().expect("a 429 was seen");
    let head_lc = head.to_ascii_lowercase();
    assert!(
        head_lc.contains("\r\nretry-after: 1\r\n") || head_lc.ends_with("\r\nretry-after: 1"),
        "{head}"
    );
    assert!(head_lc.contains("content-type: application/json"), "{head}");
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("429 body is not JSON ({e}): {body}"));
    assert_eq!(v["error"]["code"], "rate_limited", "{body}");
}

// ---------------------------------------------------------------------------------------------------------
// containers

/// A relay standing in for a load balancer: forwards everything to `upstream` (host:port, resolved at request
/// time) and appends the client's address to X-Forwarded-For; the simulated client's address comes from
/// `X-Test-Client` (see the module comment), which is not passed on.
fn relay_conf(name: &str, upstream: &str) -> PathBuf {
    let path = work_dir().join(format!("{name}.conf"));
    std::fs::create_dir_all(work_dir()).unwrap();
    std::fs::write(
        &path,
        format!(
            "server {{
    listen 8080;
    resolver 127.0.0.11 valid=2s ipv6=off;
    set_real_ip_from 0.0.0.0/0;
    real_ip_header X-Test-Client;
    set $edge http://{upstream};
    location / {{
        proxy_pass $edge;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Test-Client \"\";
        proxy_next_upstream error timeout;
    }}
}}
"
        ),
    )
    .unwrap();
    path
}

/// `docker run -d` of drydock/nginx with `conf` as its server, on `network`, optionally published on `port`.
fn run_nginx(name: &str, network: &str, alias: &str, conf: &Path, port: Option<u16>) {
    let _ = docker(&["rm", "-f", name]);
    let mount = format!("{}:/etc/nginx/conf.d/default.conf:ro", conf.display());
    let publish = port.map(|p| format!("127.0.0.1:{p}:8080"));
    let mut args = vec![
        "run",
        "-d",
        "--name",
        name,
        "--network",
        network,
        "--network-alias",
        alias,
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "-v",
        &mount,
    ];
    if let Some(p) = &publish {
        args.extend(["-p", p]);
    }
    args.push("drydock/nginx:1.26");
    docker_ok(&args);
}

fn ip_on(container: &str, network: &str) -> String {
    let ip = docker_ok(&[
        "inspect",
        "--format",
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
        container,
    ])
    .trim()
    .to_string();
    assert!(
        ip.parse::<std::net::IpAddr>().is_ok(),
        "{container} has no address on {network}: {ip:?}"
    );
    ip
}

/// Access log lines of the edge proxy as (client, status, peer) (`<client> "<request>" <status> ... peer=<peer>`).
fn access_log(container: &str) -> Vec<(String, u16, String)> {
    let out = docker(&["logs", container]);
    assert!(out.status.success(), "docker logs {container}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let client = l.split_whitespace().next()?.to_string();
            let status = l.split('"').nth(2)?.split_whitespace().next()?.parse().ok()?;
            let peer = l.split(" peer=").nth(1)?.trim().to_string();
            Some((client, status, peer))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// tests

/// The proxy image alone, in front of an echo server that answers with the headers it received: what the API
/// would see as X-Forwarded-For / X-Real-IP from a trusted relay, an untrusted relay and a spoofing client; the
/// proxy's 429 (JSON + Retry-After) and an upstream's own 429 passed through untouched; refusals of bad values.
#[test]
#[ignore = "needs Docker; builds the proxy image of this checkout"]
fn proxy_believes_only_trusted_relays_and_answers_429_with_retry_after() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    prepare_images();
    let image = format!("drydock/proxy:{TAG}");
    let net = "drydock-proxytest-edge";
    let names = ["echo", "relay-trusted", "relay-untrusted", "edge"].map(|n| format!("{net}-{n}"));
    let cleanup = || {
        for n in &names {
            let _ = docker(&["rm", "-f", n]);
        }
        let _ = docker(&["network", "rm", net]);
    };
    cleanup();
    let result = std::panic::catch_unwind(|| {
        docker_ok(&["network", "create", net]);
        let echo = work_dir().join("echo.conf");
        std::fs::create_dir_all(work_dir()).unwrap();
        std::fs::write(
            &echo,
            r#"server {
    listen 8080;
    default_type application/json;
    location /upstream-429 { add_header Retry-After 17 always; return 429 '{"from":"upstream"}'; }
    location / { return 200 '{"xff":"$http_x_forwarded_for","real_ip":"$http_x_real_ip"}'; }
}
"#,
        )
        .unwrap();
        run_nginx(&names[0], net, "echo", &echo, None);
        let relay = relay_conf("relay-edge", "edge:8080");
        run_nginx(&names[1], net, "relay-trusted", &relay, Some(EDGE_RELAY_TRUSTED_PORT));
        run_nginx(
            &names[2],
            net,
            "relay-untrusted",
            &relay,
            Some(EDGE_RELAY_UNTRUSTED_PORT),
        );
        let trusted_ip = ip_on(&names[1], net);
        let untrusted_ip = ip_on(&names[2], net);
        // Trust the trusted relay and an unrelated range (a list, as stack.toml gives it).
        let trusted = format!("PROXY_TRUSTED_PROXIES=203.0.113.0/24,{trusted_ip}/32");
        let publish = format!("127.0.0.1:{EDGE_PORT}:8080");
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &names[3],
            "--network",
            net,
            "--network-alias",
            "edge",
            "--read-only",
            "--tmpfs",
            "/tmp",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges:true",
            "-e",
            "API_UPSTREAM=echo:8080",
            "-e",
            "FRONTEND_UPSTREAM=echo:8080",
            "-e",
            &trusted,
            "-e",
            "PROXY_API_RATE=1",
            "-e",
            "PROXY_API_BURST=2",
            "-p",
            &publish,
            &image,
        ]);
        wait_for_200(EDGE_PORT, "/proxy-health", "", Duration::from_secs(30));
        let seen = |port: u16, headers: &str| -> serde_json::Value {
            let (status, head, body) = get(port, "/api/v1/items", headers).unwrap();
            assert_eq!(status, 200, "{head}\n{body}");
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
        };

        // Behind the trusted relay: the simulated user's address, even when the user also sends a forged
        // X-Forwarded-For (the relay appends, the proxy takes the rightmost untrusted address).
        wait_for_200(EDGE_RELAY_TRUSTED_PORT, "/proxy-health", "", Duration::from_secs(30));
        let v = seen(
            EDGE_RELAY_TRUSTED_PORT,
            "X-Test-Client: 198.51.100.7\r\nX-Forwarded-For: 192.0.2.66\r\n",
        );
        println!("HEADERS to the API, via the trusted relay ({trusted_ip}): {v}");
        assert_eq!(v["xff"], "198.51.100.7");
        assert_eq!(v["real_ip"], "198.51.100.7");
        // Behind the untrusted relay: the relay itself is the client, whatever it says.
        wait_for_200(EDGE_RELAY_UNTRUSTED_PORT, "/proxy-health", "", Duration::from_secs(30));
        let v = seen(EDGE_RELAY_UNTRUSTED_PORT, "X-Test-Client: 198.51.100.8\r\n");
        println!("HEADERS to the API, via the untrusted relay ({untrusted_ip}): {v}");
        assert_eq!(v["xff"], untrusted_ip.as_str());
        assert_eq!(v["real_ip"], untrusted_ip.as_str());
        // A client talking to the proxy directly cannot choose its address, not even a trusted relay's.
        let v = seen(EDGE_PORT, &format!("X-Forwarded-For: 198.51.100.9, {trusted_ip}\r\n"));
        println!("HEADERS to the API, direct with a forged X-Forwarded-For: {v}");
        let direct = v["xff"].as_str().unwrap().to_string();
        assert!(
            direct.parse::<std::net::IpAddr>().is_ok(),
            "one address, not a chain: {v}"
        );
        assert_ne!(direct, "198.51.100.9");
        assert_ne!(direct, trusted_ip);
        assert_eq!(v["real_ip"], direct.as_str());

        // The access log names the same clients, and who connected.
        let log = access_log(&names[3]);
        for (client, peer) in [
            ("198.51.100.7", trusted_ip.as_str()),
            (untrusted_ip.as_str(), untrusted_ip.as_str()),
            (direct.as_str(), direct.as_str()),
        ] {
            assert!(
                log.iter().any(|(c, _, p)| c == client && p == peer),
                "no access log line for client {client} from {peer}: {log:?}"
            );
        }
        assert!(
            !log.iter()
                .any(|(c, _, _)| c == "198.51.100.8" || c == "198.51.100.9" || c == "192.0.2.66")
        );

        // The configured /api/ limit (1 r/s, burst 2): sequential requests meet a 429 soon, after at least 3
        // accepted, and it is the proxy's JSON with Retry-After.
        let mut accepted = 0;
        let limited = (0..50).find_map(|_| match get(EDGE_PORT, "/api/v1/items", "").unwrap() {
            (200, _, _) => {
                accepted += 1;
                None
            }
            (429, head, body) => Some((head, body)),
            other => panic!("{other:?}"),
        });
        println!("LIMIT /api/ at 1 r/s burst 2: {accepted} accepted, then {limited:?}");
        assert!(
            accepted >= 2,
            "the burst was not honoured: {accepted} accepted before the 429"
        );
        assert_api_429(&limited);
        // An upstream's own 429 keeps its Retry-After, and gets no second one.
        let (status, head, body) = get(EDGE_PORT, "/upstream-429", "").unwrap();
        assert_eq!((status, body.as_str()), (429, r#"{"from":"upstream"}"#), "{head}");
        let retry: Vec<&str> = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("retry-after:"))
            .collect();
        assert_eq!(retry, ["Retry-After: 17"], "{head}");
        let logs = text(&docker(&["logs", &names[3]]));
        assert!(
            logs.contains(&format!(
                "the client address from X-Forwarded-For of 203.0.113.0/24 {trusted_ip}/32"
            )),
            "{logs}"
        );
        assert!(!logs.contains("uninitialized"), "{logs}");

        // The image refuses bad values at start, naming the variable (the xtask refuses them earlier, in
        // stack.toml); good ones pass `nginx -t`.
        let nginx_t = |env: &[&str]| {
            let mut args = vec!["run", "--rm", "--read-only", "--tmpfs", "/tmp"];
            for e in env {
                args.extend(["-e", e]);
            }
            args.extend([image.as_str(), "nginx", "-t"]);
            docker(&args)
        };
        for (env, says) in [
            ("PROXY_API_RATE=0", "PROXY_API_RATE=\"0\" is 0"),
            (
                "PROXY_STATIC_BURST=-1",
                "PROXY_STATIC_BURST=\"-1\" is not a whole number",
            ),
            (
                "PROXY_REAL_IP_HEADER=X-Client",
                "PROXY_REAL_IP_HEADER=\"X-Client\" is not one of",
            ),
            (
                "PROXY_TRUSTED_PROXIES=10.0.0.0/33",
                "\"10.0.0.0/33\" has no prefix length",
            ),
            ("PROXY_TRUSTED_PROXIES=0.0.0.0/0", "\"0.0.0.0/0\" trusts every address"),
            ("PROXY_TRUSTED_PROXIES=10.0.0.0/8;evil", "\"10.0.0.0/8;evil\""),
        ] {
            let out = nginx_t(&[env]);
            assert!(
                !out.status.success() && text(&out).contains(says),
                "{env}: {}",
                text(&out)
            );
        }
        // Nothing set: today's behaviour (nobody trusted, 100 r/s burst 200 on /api/, 300 r/s burst 400 else).
        let out = nginx_t(&[]);
        assert!(
            out.status.success()
                && text(&out).contains(
                    "the peer as the client address (no trusted proxies); per client: /api/ 100 r/s (burst 200), static 300 r/s (burst 400)"
                ),
            "{}",
            text(&out)
        );
        let out = nginx_t(&[
            "PROXY_TRUSTED_PROXIES=10.0.0.0/8 192.0.2.7,2001:db8::/32",
            "PROXY_REAL_IP_HEADER=CF-Connecting-IP",
            "PROXY_API_BURST=0",
            "PROXY_STATIC_RATE=1",
        ]);
        assert!(
            out.status.success() && text(&out).contains("test is successful"),
            "{}",
            text(&out)
        );
    });
    cleanup();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// The production stack (`prod-up` of the release images, its API replicas behind the proxy) with low limits set
/// in a stack.toml: first with nothing trusted, then trusting one relay. Under a bounded concurrent load, each
/// real client behind the trusted relay has its own limit, while everyone behind the untrusted relay and every
/// spoofing direct client shares one; the limits applied are the configured ones.
#[test]
#[ignore = "needs Docker; starts the production stack on project drydock-proxytest (a few minutes)"]
fn prod_stack_limits_each_real_client_behind_a_trusted_load_balancer() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const API_RATE: u64 = 5;
    const API_BURST: u64 = 5;
    const STATIC_RATE: u64 = 10;
    const STATIC_BURST: u64 = 10;
    let load_time = Duration::from_secs(6);
    prepare_images();
    let network = format!("{PROJECT}_frontend");
    let relays = [format!("{PROJECT}-relay-trusted"), format!("{PROJECT}-relay-untrusted")];
    let cleanup = || {
        for r in &relays {
            let _ = docker(&["rm", "-f", r]);
        }
        let _ = xtask(None, &["--yes", "prod-down", "--volumes"]);
        let _ = std::fs::remove_file(root().join(".drydock").join(format!("deploy-{PROJECT}.json")));
    };
    cleanup();
    let result = std::panic::catch_unwind(|| {
        let w = work_dir();
        let _ = std::fs::remove_dir_all(w.join("tls"));
        let config = w.join("stack.toml");
        let write_config = |trusted: &[String]| {
            let shipped = std::fs::read_to_string(root().join("infra/stack.toml")).unwrap();
            let start = shipped
                .find("\n[proxy]")
                .expect("a [proxy] section in infra/stack.toml");
            let list: Vec<String> = trusted.iter().map(|t| format!("{t:?}")).collect();
            std::fs::create_dir_all(&w).unwrap();
            std::fs::write(
                &config,
                format!(
                    "{}\n[proxy]\ntrusted_proxies = [{}]\nreal_ip_header = \"X-Forwarded-For\"\n[proxy.limits.api]\nrate = {API_RATE}\nburst = {API_BURST}\n[proxy.limits.static]\nrate = {STATIC_RATE}\nburst = {STATIC_BURST}\n",
                    &shipped[..start],
                    list.join(", ")
                ),
            )
            .unwrap();
        };

        // Phase 1: nothing trusted (today's behaviour), low limits.
        write_config(&[]);
        xtask_ok(Some(&config), &["prod-up", "--tag", TAG, "--generate-secrets"]);
        wait_for_200(HTTP_PORT, "/api/v1/items?per_page=5", "", Duration::from_secs(60));
        let relay = relay_conf("relay-stack", "proxy:8080");
        run_nginx(&relays[0], &network, "relay-trusted", &relay, Some(RELAY_TRUSTED_PORT));
        run_nginx(
            &relays[1],
            &network,
            "relay-untrusted",
            &relay,
            Some(RELAY_UNTRUSTED_PORT),
        );
        let trusted_ip = ip_on(&relays[0], &network);
        let untrusted_ip = ip_on(&relays[1], &network);
        for port in [RELAY_TRUSTED_PORT, RELAY_UNTRUSTED_PORT] {
            wait_for_200(port, "/health", "", Duration::from_secs(30));
        }
        // Eight users behind a relay, each at 2 r/s (below 5 r/s): 16 r/s arrive from the relay.
        let users = |prefix: &str, port: u16, first: u8| -> Vec<Client> {
            (0..8u8)
                .map(|i| Client {
                    name: format!("{prefix} user {}", first + i),
                    port,
                    path: "/api/v1/items?per_page=5",
                    interval: Duration::from_millis(500),
                    headers: header("X-Test-Client", format!("198.51.100.{}", first + i)),
                })
                .collect()
        };
        let spoofer = |name: &str| Client {
            name: name.into(),
            port: HTTP_PORT,
            path: "/api/v1/items?per_page=5",
            interval: Duration::from_millis(50),
            // A different forged address on every request (one of the trusted relay's users' among them).
            headers: Arc::new(|i| format!("X-Forwarded-For: 198.51.100.{}\r\n", 1 + i % 200)),
        };
        let mut clients = users("A", RELAY_TRUSTED_PORT, 1);
        clients.push(spoofer("direct spoofing"));
        let (t1, e1) = run_load(clients, load_time);
        report("phase 1, nothing trusted (api 5 r/s burst 5)", &t1, e1);
        let behind_a = sum(&t1, "A user");
        println!(
            "  = behind relay A together: sent {}, 200: {}, 429: {}",
            behind_a.sent, behind_a.ok, behind_a.limited
        );
        assert_limited(
            "phase 1: the users behind relay A (one address)",
            &behind_a,
            API_RATE,
            API_BURST,
            e1,
        );
        assert_limited(
            "phase 1: the direct spoofing client",
            &t1["direct spoofing"],
            API_RATE,
            API_BURST,
            e1,
        );
        assert_api_429(&t1["direct spoofing"].limited_sample);

        // Phase 2: relay A trusted. prod-up applies the changed stack.toml (the proxy is recreated).
        write_config(std::slice::from_ref(&format!("{trusted_ip}/32")));
        xtask_ok(Some(&config), &["prod-up", "--tag", TAG]);
        let proxy = docker_ok(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.compose.project={PROJECT}"),
            "--filter",
            "label=com.docker.compose.service=proxy",
        ])
        .trim()
        .to_string();
        let env = docker_ok(&["inspect", "--format", "{{json .Config.Env}}", &proxy]);
        for want in [
            format!("PROXY_TRUSTED_PROXIES={trusted_ip}/32"),
            format!("PROXY_API_RATE={API_RATE}"),
            format!("PROXY_API_BURST={API_BURST}"),
            format!("PROXY_STATIC_RATE={STATIC_RATE}"),
            format!("PROXY_STATIC_BURST={STATIC_BURST}"),
            "PROXY_REAL_IP_HEADER=X-Forwarded-For".to_string(),
        ] {
            assert!(
                env.contains(&format!("\"{want}\"")),
                "{want} not in the proxy's environment: {env}"
            );
        }
        for port in [HTTP_PORT, RELAY_TRUSTED_PORT, RELAY_UNTRUSTED_PORT] {
            wait_for_200(port, "/health", "", Duration::from_secs(60));
        }
        let mut clients = users("A", RELAY_TRUSTED_PORT, 1);
        clients.extend(users("B", RELAY_UNTRUSTED_PORT, 101));
        clients.push(Client {
            name: "A heavy user".into(),
            port: RELAY_TRUSTED_PORT,
            path: "/api/v1/items?per_page=5",
            interval: Duration::from_millis(50),
            headers: header("X-Test-Client", "198.51.100.50".into()),
        });
        clients.push(spoofer("direct spoofing"));
        clients.push(Client {
            name: "direct static".into(),
            port: HTTP_PORT,
            path: "/",
            interval: Duration::from_millis(50),
            headers: Arc::new(|_| String::new()),
        });
        let (t2, e2) = run_load(clients, load_time);
        report(&format!("phase 2, relay A ({trusted_ip}) trusted"), &t2, e2);
        for i in 1..=8 {
            assert_not_limited(
                &format!("phase 2: user {i} behind the trusted relay"),
                &t2[&format!("A user {i}")],
            );
        }
        let behind_a = sum(&t2, "A user");
        let behind_b = sum(&t2, "B user");
        println!(
            "  = behind relay A together: sent {}, 200: {}, 429: {}",
            behind_a.sent, behind_a.ok, behind_a.limited
        );
        println!(
            "  = behind relay B together: sent {}, 200: {}, 429: {}",
            behind_b.sent, behind_b.ok, behind_b.limited
        );
        assert!(
            behind_a.ok > most_accepted(API_RATE, API_BURST, e2),
            "the trusted relay's users together got more than one client's limit: {behind_a:?}"
        );
        assert_limited(
            "phase 2: the heavy user behind the trusted relay",
            &t2["A heavy user"],
            API_RATE,
            API_BURST,
            e2,
        );
        assert_limited(
            "phase 2: the users behind the untrusted relay (one address)",
            &behind_b,
            API_RATE,
            API_BURST,
            e2,
        );
        assert_limited(
            "phase 2: the direct spoofing client",
            &t2["direct spoofing"],
            API_RATE,
            API_BURST,
            e2,
        );
        assert_limited(
            "phase 2: static files, one direct client",
            &t2["direct static"],
            STATIC_RATE,
            STATIC_BURST,
            e2,
        );
        assert_api_429(&t2["A heavy user"].limited_sample);
        let (head, _) = t2["direct static"].limited_sample.as_ref().unwrap();
        assert!(head.to_ascii_lowercase().contains("\r\nretry-after: 1"), "{head}");

        // The access log saw the same clients: the trusted relay's users by their own addresses (peer = the
        // relay), the untrusted relay's users and the forged addresses never.
        let log = access_log(&proxy);
        let mut by_client: BTreeMap<String, (u64, u64, String)> = BTreeMap::new();
        for (client, status, peer) in &log {
            let e = by_client.entry(client.clone()).or_insert((0, 0, peer.clone()));
            e.0 += 1;
            if *status == 429 {
                e.1 += 1;
            }
        }
        println!("ACCESS LOG of the proxy, phase 2 (client: requests, 429s, peer):");
        for (client, (n, limited, peer)) in &by_client {
            println!("  {client:<16} {n:>5} {limited:>5}  peer={peer}");
        }
        for i in 1..=8 {
            let (n, limited, peer) = by_client
                .get(&format!("198.51.100.{i}"))
                .unwrap_or_else(|| panic!("no log line for 198.51.100.{i}: {by_client:?}"));
            assert_eq!(peer, &trusted_ip);
            assert_eq!(*limited, 0, "198.51.100.{i}: {n} requests");
        }
        assert!(by_client.get("198.51.100.50").is_some_and(|(_, l, _)| *l > 0));
        assert!(by_client.get(&untrusted_ip).is_some_and(|(_, l, _)| *l > 0));
        // Only the trusted relay names clients (without X-Test-Client it names the host's address, as a balancer
        // names its peer); from anyone else the client is who connected.
        for (client, _, peer) in &log {
            if client.starts_with("198.51.100.") {
                assert_eq!(peer, &trusted_ip, "{client} was believed from {peer}");
            }
            if peer != &trusted_ip {
                assert_eq!(client, peer, "{client} was believed from the untrusted {peer}");
            }
        }
    });
    cleanup();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
