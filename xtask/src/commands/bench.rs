//! `cargo xtask bench api`: the API's throughput and latency under a real load tool (wrk), a report and not a
//! timed test. It runs on its own throwaway stack: PostgreSQL and Redis from the compose files (project
//! `<name>-bench`, which the API reaches on its bridge network, as over a compose network), and the release API
//! image on the host network bound to 127.0.0.1, so the load goes over loopback and no byte of the API's traffic,
//! in or out, goes through Docker's userland proxy. Writes are measured with the rate
//! limit disabled (RATE_LIMIT_WRITES=0), and the access log as in production (every error and slow request, one
//! line per `--access-log-sample` successful ones; the nginx baseline logs every request, as nginx does).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::cmd::{Cmd, cmd, shell};
use crate::compose::{Compose, ensure_env_file};
use crate::config::Env;
use crate::context::Ctx;
use crate::{http, images, prod};

const BENCH_PASSWORD: &str = "bench-only-throwaway-password";
const API_CONTAINER: &str = "drydock-bench-api";
const NGINX_CONTAINER: &str = "drydock-bench-nginx";
/// The yardstick: nginx answering a static JSON `/health` on the same host network, logging each request the
/// same way (stdout, Docker's log pipeline), so the ratio says what the API costs beyond serving bytes.
const NGINX_CONF: &str = "server {\n    listen 127.0.0.1:PORT;\n    location = /health {\n        default_type application/json;\n        return 200 '{\"status\":\"ok\"}';\n    }\n}\n";
/// Goals of issue 14, printed with the figures: the cached read at >= 0.8x nginx's throughput, p99 <= 1.5x.
const GOAL_THROUGHPUT_RATIO: f64 = 0.8;
const GOAL_P99_RATIO: f64 = 1.5;

#[derive(Debug, Clone, Args)]
pub struct ApiBenchArgs {
    /// Seconds each measurement runs (after a 2 s warm-up).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=120))]
    pub duration: u32,
    /// Concurrent connections for the reads.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connections: u32,
    /// Concurrent connections for the writes.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub write_connections: u32,
    /// Loopback port for the API under test (its metrics use the next one, the nginx baseline the one after).
    #[arg(long, default_value_t = 18000)]
    pub port: u16,
    /// Rounds of the cached read and the nginx baseline, interleaved (A B A B ...): medians and spread.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub rounds: u32,
    /// The API's ACCESS_LOG_SAMPLE: one access-log line per this many successful requests (default: production's,
    /// infra/compose/compose.prod.yaml; 1 logs every request, as dev does).
    #[arg(long, default_value_t = PROD_ACCESS_LOG_SAMPLE, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub access_log_sample: u64,
}

/// Production's ACCESS_LOG_SAMPLE (compose.prod.yaml's default; a test keeps the two equal).
const PROD_ACCESS_LOG_SAMPLE: u64 = 100;

/// One wrk run's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    pub errors: u64,
}

/// Reads `Requests/sec`, the 50 % and 99 % latencies (`--latency`), the request count and errors from wrk.
pub fn parse_wrk(out: &str) -> Option<Figures> {
    let ms = |v: &str| -> Option<f64> {
        let v = v.trim();
        if let Some(x) = v.strip_suffix("us") {
            x.parse::<f64>().ok().map(|x| x / 1000.0)
        } else if let Some(x) = v.strip_suffix("ms") {
            x.parse().ok()
        } else if let Some(x) = v.strip_suffix('s') {
            x.parse::<f64>().ok().map(|x| x * 1000.0)
        } else {
            None
        }
    };
    let mut f = Figures {
        requests_per_sec: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        requests: 0,
        errors: 0,
    };
    let (mut rps, mut p50, mut p99, mut reqs) = (false, false, false, false);
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => (f.requests_per_sec, rps) = (v.parse().ok()?, true),
            ["50%", v] => (f.p50_ms, p50) = (ms(v)?, true),
            ["99%", v] => (f.p99_ms, p99) = (ms(v)?, true),
            [n, "requests", "in", ..] => (f.requests, reqs) = (n.parse().ok()?, true),
            ["Non-2xx", "or", "3xx", "responses:", n] => f.errors += n.parse::<u64>().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                f.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    (rps && p50 && p99 && reqs).then_some(f)
}

fn bench_compose(ctx: &Ctx) -> Result<Compose> {
    // The API reaches the databases on their bridge network, so no port is published; the dev overlay's
    // healthchecks (an exec each, every 2 s for every service) would take CPU from the API under test.
    let mut compose = Compose::for_env(ctx, Env::Dev)?.base_file_only();
    compose.project = format!("{}-bench", ctx.config.project.name);
    compose.env.extend(
        [
            ("POSTGRES_PASSWORD", BENCH_PASSWORD),
            ("REDIS_PASSWORD", BENCH_PASSWORD),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Ok(compose)
}

/// The running containers that are not the bench's own (another stack shares the CPU the figures measure).
fn other_containers(ctx: &Ctx, project: &str) -> Vec<String> {
    let sh = shell();
    let format = "{{.Names}}";
    let names = ctx
        .run
        .probe(&Cmd::from(cmd!(sh, "docker ps --format {format}")))
        .filter(|p| p.success)
        .map(|p| p.stdout)
        .unwrap_or_default();
    let own = format!("{project}-");
    names
        .lines()
        .filter(|n| !n.is_empty() && !n.starts_with(&own))
        .filter(|n| ![API_CONTAINER, NGINX_CONTAINER].contains(n))
        .map(String::from)
        .collect()
}

/// `ip:port` of `service`'s container on the bench stack's own bridge network. The API (on the host network)
/// talks to PostgreSQL and Redis there, as it does over a compose network in dev and production, and not through
/// their published loopback ports: those go through docker-proxy, a userland copy of every byte, whose CPU (one
/// Redis round trip per cached read) would be charged to the API.
fn bridge_address(ctx: &Ctx, compose: &Compose, service: &str, port: u16) -> Result<String> {
    let ids = prod::containers::container_ids(ctx, &compose.project, service)?;
    let id = ids
        .first()
        .with_context(|| format!("the bench stack has no running {service} container"))?;
    let sh = shell();
    let format = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}";
    let out = ctx
        .run
        .read(&Cmd::from(cmd!(sh, "docker inspect --format {format} {id}")))?;
    let ip = out
        .split_whitespace()
        .next()
        .with_context(|| format!("{service}'s container {id} has no address on a network"))?;
    Ok(format!("{ip}:{port}"))
}

/// `docker run` of the API image on the host network with the bench stack's databases.
fn api_run(image: &str, args: &ApiBenchArgs, pg: &str, redis: &str, detach: bool, command: &str) -> Cmd {
    let (pg_host, pg_port) = pg.rsplit_once(':').unwrap_or(("127.0.0.1", "5432"));
    let (redis_host, redis_port) = redis.rsplit_once(':').unwrap_or(("127.0.0.1", "6379"));
    let detach: &[&str] = if detach {
        &["--detach", "--name", API_CONTAINER]
    } else {
        &[]
    };
    let user = std::env::var("POSTGRES_USER").unwrap_or_else(|_| "drydock".into());
    let db = std::env::var("POSTGRES_DB").unwrap_or_else(|_| "drydock".into());
    let env = [
        ("API_HOST", "127.0.0.1".to_string()),
        ("API_PORT", args.port.to_string()),
        ("METRICS_PORT", (args.port + 1).to_string()),
        ("DATABASE_HOST", pg_host.to_string()),
        ("DATABASE_PORT", pg_port.to_string()),
        ("DATABASE_USER", user),
        ("DATABASE_PASSWORD", BENCH_PASSWORD.to_string()),
        ("DATABASE_NAME", db),
        ("REDIS_HOST", redis_host.to_string()),
        ("REDIS_PORT", redis_port.to_string()),
        ("REDIS_PASSWORD", BENCH_PASSWORD.to_string()),
        ("RATE_LIMIT_WRITES", "0".to_string()),
        ("ACCESS_LOG_SAMPLE", args.access_log_sample.to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| ["--env".to_string(), format!("{k}={v}")]);
    let sh = shell();
    Cmd::from(cmd!(
        sh,
        "docker run --rm --network host {detach...} {env...} {image} {command}"
    ))
    .secret(BENCH_PASSWORD)
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub target: BenchTarget,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchTarget {
    /// Requests/s and p50/p99 of a cached read and a write, on a throwaway stack (the backup benchmark is
    /// `cargo xtask backups bench`).
    Api(ApiBenchArgs),
}

impl BenchArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        match &self.target {
            BenchTarget::Api(args) => api(ctx, args),
        }
    }
}

fn api(ctx: &Ctx, args: &ApiBenchArgs) -> Result<()> {
    crate::provision::preflight(ctx)?;
    crate::provision::ensure_tools(ctx, &[crate::provision::Tool::Wrk])?;
    ensure_env_file(ctx)?;
    images::ensure(ctx)?;
    let dev = Compose::for_env(ctx, Env::Dev)?;
    let image = format!("{}/api:dev", ctx.config.images.prefix);
    let sh = shell();
    ctx.run.run(&dev.cmd(cmd!(sh, "build api")))?;
    let compose = bench_compose(ctx)?;
    let others = other_containers(ctx, &compose.project);
    if !others.is_empty() {
        ctx.say(&format!(
            "note: {} other container(s) run beside the bench ({}): their work and healthchecks share these {} cores, so the figures are lower than a quiet machine's\n  for a clean figure stop them first (e.g. cargo xtask dev-down)",
            others.len(),
            others.join(", "),
            num_cpus()
        ));
    }
    let result = measure(ctx, &compose, &image, args);
    if !others.is_empty() && result.is_ok() {
        ctx.say(&format!(
            "note: measured beside {} other running container(s) (see above)",
            others.len()
        ));
    }
    // Always tear the throwaway stack down, whatever happened.
    let _ = ctx.run.run(&Cmd::from(cmd!(
        sh,
        "docker rm --force {API_CONTAINER} {NGINX_CONTAINER}"
    )));
    ctx.run.run(&compose.cmd(cmd!(sh, "down --volumes --remove-orphans")))?;
    result
}

fn measure(ctx: &Ctx, compose: &Compose, image: &str, args: &ApiBenchArgs) -> Result<()> {
    let sh = shell();
    ctx.run
        .run(&compose.cmd(cmd!(sh, "up --detach --wait postgres redis")))?;
    let (pg, redis) = if ctx.run.dry_run {
        ("127.0.0.1:5432".to_string(), "127.0.0.1:6379".to_string())
    } else {
        (
            bridge_address(ctx, compose, &ctx.config.services.postgres, 5432)?,
            bridge_address(ctx, compose, &ctx.config.services.redis, 6379)?,
        )
    };
    ctx.run.run(&api_run(image, args, &pg, &redis, false, "migrate"))?;
    ctx.run.run(&api_run(image, args, &pg, &redis, false, "seed"))?;
    ctx.run.run(&api_run(image, args, &pg, &redis, true, "serve"))?;
    let base = format!("http://127.0.0.1:{}", args.port);
    if ctx.run.dry_run {
        return Ok(());
    }
    wait_ready(&base)?;
    let script_dir = ctx.root.join("target/drydock/bench");
    std::fs::create_dir_all(&script_dir)?;
    let post = script_dir.join("post-review.lua");
    std::fs::write(
        &post,
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.body = '{\"author\":\"bench\",\"rating\":4,\"body\":\"load test review\"}'\n",
    )?;
    let list = format!("{base}/api/v1/items?page=1&per_page=20");
    let item = format!("{base}/api/v1/items/1");
    let cases: [(&str, String, u32, Option<&std::path::Path>); 3] = [
        ("GET /api/v1/items (cached list)", list, args.connections, None),
        ("GET /api/v1/items/1 (cached item)", item, args.connections, None),
        (
            "POST /api/v1/items/2/reviews (write)",
            format!("{base}/api/v1/items/2/reviews"),
            args.write_connections,
            Some(&post),
        ),
    ];
    let mut rows = Vec::new();
    for (name, url, connections, script) in cases {
        let (warm, cmd) = wrk(connections, args.duration, script, &url);
        // Warm-up: fills the cache and the connection pools; not measured.
        ctx.run.read(&warm)?;
        let started = Instant::now();
        let out = ctx.run.read(&cmd)?;
        let figures = parse_wrk(&out).with_context(|| format!("could not read wrk's report:\n{out}"))?;
        eprintln!(
            "{name}: {:.0} req/s in {:.0} s",
            figures.requests_per_sec,
            started.elapsed().as_secs_f64()
        );
        rows.push((name, connections, figures));
    }
    println!();
    println!(
        "{:<40} {:>5} {:>10} {:>9} {:>9} {:>8}",
        "request", "conns", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for (name, connections, f) in &rows {
        println!(
            "{name:<40} {connections:>5} {:>10.0} {:>9.2} {:>9.2} {:>8}",
            f.requests_per_sec, f.p50_ms, f.p99_ms, f.errors
        );
    }
    println!(
        "(target: cached list at 64 connections >= 10000 req/s with p99 < 25 ms; {} cores)",
        num_cpus()
    );
    baseline(ctx, args)?;
    Ok(())
}

/// The API's cached list against nginx serving a static response on the same machine, same network path and
/// connections, in the same run: `rounds` interleaved pairs, medians and spread, and the two ratios.
fn baseline(ctx: &Ctx, args: &ApiBenchArgs) -> Result<()> {
    let sh = shell();
    let nginx_port = args.port + 2;
    let dir = ctx.root.join("target/drydock/bench");
    let conf = dir.join("nginx-baseline.conf");
    std::fs::write(&conf, NGINX_CONF.replace("PORT", &nginx_port.to_string()))?;
    let image = crate::images::BaseImages::for_source(&ctx.config, ctx.images().source).nginx;
    let mount = format!("{}:/etc/nginx/conf.d/default.conf:ro", conf.display());
    ctx.run.run(&Cmd::from(cmd!(
        sh,
        "docker run --detach --rm --name {NGINX_CONTAINER} --network host --read-only --tmpfs /tmp -v {mount} {image}"
    )))?;
    let nginx_url = format!("http://127.0.0.1:{nginx_port}/health");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http::get(&nginx_url, Duration::from_secs(2)).map_or(true, |r| r.status != 200) {
        if Instant::now() > deadline {
            bail!(
                "the nginx baseline did not answer at {nginx_url} within 30 s\n  fix: `docker logs {NGINX_CONTAINER}`"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let api_url = format!("http://127.0.0.1:{}/api/v1/items?page=1&per_page=20", args.port);
    let (mut api, mut nginx) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        for (url, into) in [(&nginx_url, &mut nginx), (&api_url, &mut api)] {
            let (warm, cmd) = wrk(args.connections, args.duration, None, url);
            ctx.run.read(&warm)?;
            let out = ctx.run.read(&cmd)?;
            into.push(parse_wrk(&out).with_context(|| format!("could not read wrk's report:\n{out}"))?);
        }
        eprintln!("baseline round {round}/{}: done", args.rounds);
    }
    let spread = |fs: &[Figures], f: fn(&Figures) -> f64| {
        let mut v: Vec<f64> = fs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    println!();
    println!(
        "{:<40} {:>5} {:>24} {:>24}",
        "same run, interleaved", "conns", "req/s median (min-max)", "p99 ms median (min-max)"
    );
    for (name, fs) in [
        ("nginx static /health (the yardstick)", &nginx),
        ("API GET /api/v1/items (cached)", &api),
    ] {
        let (r, rmin, rmax) = spread(fs, |f| f.requests_per_sec);
        let (p, pmin, pmax) = spread(fs, |f| f.p99_ms);
        println!(
            "{name:<40} {:>5} {:>24} {:>24}",
            args.connections,
            format!("{r:.0} ({rmin:.0}-{rmax:.0})"),
            format!("{p:.2} ({pmin:.2}-{pmax:.2})")
        );
    }
    let throughput = spread(&api, |f| f.requests_per_sec).0 / spread(&nginx, |f| f.requests_per_sec).0;
    let p99 = spread(&api, |f| f.p99_ms).0 / spread(&nginx, |f| f.p99_ms).0.max(0.001);
    println!(
        "(the API logs every error and slow request and 1 in {} successful ones (--access-log-sample); nginx logs every request)",
        args.access_log_sample
    );
    println!(
        "API / nginx: throughput {throughput:.2}x (goal >= {GOAL_THROUGHPUT_RATIO}x: {}), p99 {p99:.2}x (goal <= {GOAL_P99_RATIO}x: {})",
        if throughput >= GOAL_THROUGHPUT_RATIO {
            "met"
        } else {
            "not met"
        },
        if p99 <= GOAL_P99_RATIO { "met" } else { "not met" }
    );
    Ok(())
}

/// The wrk runs of one case: a 2 s warm-up, then the measurement with latency percentiles; `script` (a Lua
/// file) makes the requests writes.
fn wrk(connections: u32, duration: u32, script: Option<&std::path::Path>, url: &str) -> (Cmd, Cmd) {
    let sh = shell();
    let connections = connections.to_string();
    let duration = format!("{duration}s");
    let script: &Vec<String> = &script
        .iter()
        .flat_map(|s| ["-s".to_string(), s.display().to_string()])
        .collect();
    let warm = Cmd::from(cmd!(sh, "wrk -t2 -c {connections} -d2s {script...} {url}"));
    let measure = Cmd::from(cmd!(
        sh,
        "wrk -t2 -c {connections} -d {duration} --timeout 5s --latency {script...} {url}"
    ));
    (warm, measure)
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn wait_ready(base: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http::get(&format!("{base}/health/ready"), Duration::from_secs(2)).is_ok_and(|r| r.status == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    bail!("the API under test did not become ready at {base} within 60 s\n  fix: `docker logs {API_CONTAINER}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 10s test @ http://127.0.0.1:18000/api/v1/items
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.10ms    3.02ms  41.22ms   70.12%
    Req/Sec     6.30k   512.11     7.40k    68.00%
  Latency Distribution
     50%    4.80ms
     75%    6.52ms
     90%    8.90ms
     99%   15.60ms
  125070 requests in 10.00s, 98.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  12507.31
Transfer/sec:      9.81MB
";

    #[test]
    fn wrk_report_is_parsed() {
        let f = parse_wrk(WRK).unwrap();
        assert_eq!(f.requests, 125_070);
        assert!((f.requests_per_sec - 12507.31).abs() < 0.01);
        assert!((f.p50_ms - 4.8).abs() < 1e-9 && (f.p99_ms - 15.6).abs() < 1e-9);
        assert_eq!(f.errors, 7);
    }

    #[test]
    fn units_are_normalised_to_ms() {
        let f = parse_wrk(&WRK.replace("4.80ms", "950.00us").replace("15.60ms", "1.20s")).unwrap();
        assert!((f.p50_ms - 0.95).abs() < 1e-9 && (f.p99_ms - 1200.0).abs() < 1e-9);
    }

    #[test]
    fn api_runs_on_the_host_network_with_the_password_masked() {
        let args = ApiBenchArgs {
            duration: 10,
            connections: 64,
            write_connections: 16,
            port: 18000,
            rounds: 3,
            access_log_sample: 100,
        };
        let user = std::env::var("POSTGRES_USER").unwrap_or_else(|_| "drydock".into());
        let db = std::env::var("POSTGRES_DB").unwrap_or_else(|_| "drydock".into());
        let env = [
            "API_HOST=127.0.0.1".to_string(),
            "API_PORT=18000".into(),
            "METRICS_PORT=18001".into(),
            "DATABASE_HOST=127.0.0.1".into(),
            "DATABASE_PORT=32768".into(),
            format!("DATABASE_USER={user}"),
            format!("DATABASE_PASSWORD={BENCH_PASSWORD}"),
            format!("DATABASE_NAME={db}"),
            "REDIS_HOST=127.0.0.1".into(),
            "REDIS_PORT=32769".into(),
            format!("REDIS_PASSWORD={BENCH_PASSWORD}"),
            "RATE_LIMIT_WRITES=0".into(),
            "ACCESS_LOG_SAMPLE=100".into(),
        ];
        let env = env.iter().flat_map(|e| ["--env", e.as_str()]);
        let serve = api_run(
            "drydock/api:dev",
            &args,
            "127.0.0.1:32768",
            "127.0.0.1:32769",
            true,
            "serve",
        );
        let want: Vec<&str> = [
            "docker",
            "run",
            "--rm",
            "--network",
            "host",
            "--detach",
            "--name",
            API_CONTAINER,
        ]
        .into_iter()
        .chain(env.clone())
        .chain(["drydock/api:dev", "serve"])
        .collect();
        assert_eq!(serve.argv(), want);
        assert!(!serve.display().contains(BENCH_PASSWORD), "{serve}");
        let migrate = api_run(
            "drydock/api:dev",
            &args,
            "127.0.0.1:32768",
            "127.0.0.1:32769",
            false,
            "migrate",
        );
        let want: Vec<&str> = ["docker", "run", "--rm", "--network", "host"]
            .into_iter()
            .chain(env)
            .chain(["drydock/api:dev", "migrate"])
            .collect();
        assert_eq!(migrate.argv(), want);
    }

    #[test]
    fn the_default_access_log_sample_is_productions() {
        let prod =
            std::fs::read_to_string(crate::context::project_root().join("infra/compose/compose.prod.yaml")).unwrap();
        let line = format!("ACCESS_LOG_SAMPLE: ${{ACCESS_LOG_SAMPLE:-{PROD_ACCESS_LOG_SAMPLE}}}");
        assert!(
            prod.contains(&line),
            "compose.prod.yaml no longer says {line:?}: update PROD_ACCESS_LOG_SAMPLE"
        );
    }

    #[test]
    fn wrk_warms_up_then_measures() {
        let (warm, measure) = wrk(64, 10, None, "http://127.0.0.1:18000/api/v1/items/1");
        assert_eq!(
            warm.argv(),
            [
                "wrk",
                "-t2",
                "-c",
                "64",
                "-d2s",
                "http://127.0.0.1:18000/api/v1/items/1"
            ]
        );
        assert_eq!(
            measure.argv(),
            [
                "wrk",
                "-t2",
                "-c",
                "64",
                "-d",
                "10s",
                "--timeout",
                "5s",
                "--latency",
                "http://127.0.0.1:18000/api/v1/items/1"
            ]
        );
        let post = std::path::Path::new("/r/target/drydock/bench/post-review.lua");
        let (warm, measure) = wrk(16, 3, Some(post), "http://h/w");
        assert_eq!(
            warm.argv(),
            [
                "wrk",
                "-t2",
                "-c",
                "16",
                "-d2s",
                "-s",
                "/r/target/drydock/bench/post-review.lua",
                "http://h/w"
            ]
        );
        assert_eq!(
            measure.argv()[5..],
            [
                "3s",
                "--timeout",
                "5s",
                "--latency",
                "-s",
                "/r/target/drydock/bench/post-review.lua",
                "http://h/w"
            ]
        );
    }

    #[test]
    fn incomplete_report_is_none() {
        assert!(parse_wrk("connection refused").is_none());
    }
}
