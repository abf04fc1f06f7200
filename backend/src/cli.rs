//! Subcommands of the one binary: `serve` (default), `migrate`, `seed`, `healthcheck [--ready]`.
//! Parsed by hand: four words do not justify a CLI framework in the build.

use std::process::ExitCode;

use crate::{
    config::{self, DatabaseSettings, RedisSettings, Settings},
    db, healthcheck, shutdown,
    startup::Application,
    telemetry,
};

pub const USAGE: &str = "\
usage: backend [COMMAND]

commands:
  serve                 run the HTTP API (default)
  migrate               apply database migrations, then exit
  seed                  load demo items and reviews (idempotent), then exit
  healthcheck [--ready] GET http://127.0.0.1:$API_PORT/health (or /health/ready); exit 0 on 2xx

configuration comes from the environment; see backend/README.md";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Serve,
    Migrate,
    Seed,
    Healthcheck { ready: bool },
    Help,
    Version,
}

pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let args: Vec<String> = args.into_iter().collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["serve"] => Ok(Command::Serve),
        ["migrate"] => Ok(Command::Migrate),
        ["seed"] => Ok(Command::Seed),
        ["healthcheck"] => Ok(Command::Healthcheck { ready: false }),
        ["healthcheck", "--ready"] => Ok(Command::Healthcheck { ready: true }),
        ["help" | "--help" | "-h"] => Ok(Command::Help),
        ["--version" | "-V"] => Ok(Command::Version),
        other => Err(format!("unknown arguments: {}", other.join(" "))),
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Runs a command; the exit code is what Docker and compose see.
pub fn run(command: Command) -> ExitCode {
    match command {
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("backend {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        // A single-threaded runtime: the healthcheck runs every few seconds and should cost next to nothing.
        Command::Healthcheck { ready } => block_on(false, healthcheck(ready)),
        Command::Serve => block_on(true, serve()),
        Command::Migrate => block_on(true, migrate()),
        Command::Seed => block_on(true, seed()),
    }
}

fn block_on(multi_thread: bool, fut: impl Future<Output = ExitCode>) -> ExitCode {
    let runtime = if multi_thread {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    match runtime {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Configuration errors go to stderr as plain text (they are read by a human fixing a compose file) and to the
/// log as one structured event (for log pipelines).
fn config_failure(e: &config::ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    tracing::error!(problems = e.problems.len(), "invalid configuration");
    ExitCode::from(2)
}

fn failure(context: &str, e: &anyhow::Error) -> ExitCode {
    tracing::error!(error = format!("{e:#}"), "{context}");
    eprintln!("error: {context}: {e:#}");
    ExitCode::FAILURE
}

async fn serve() -> ExitCode {
    telemetry::init(config::log_format_from_env());
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => return config_failure(&e),
    };
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting");
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => return failure("startup failed", &e),
    };
    match app.run_until_stopped(shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failure("server failed", &e),
    }
}

async fn migrate() -> ExitCode {
    telemetry::init(config::log_format_from_env());
    let settings = match DatabaseSettings::from_lookup(&env_lookup) {
        Ok(s) => s,
        Err(e) => return config_failure(&e),
    };
    let result = async {
        let pool = db::migrate::connect_with_retry(&settings, 30).await?;
        db::migrate::run(&pool).await?;
        pool.close().await;
        anyhow::Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            tracing::info!(
                migrations = db::migrate::MIGRATIONS.len(),
                "database schema is up to date"
            );
            ExitCode::SUCCESS
        }
        Err(e) => failure("migrate failed", &e),
    }
}

async fn seed() -> ExitCode {
    telemetry::init(config::log_format_from_env());
    let settings = match DatabaseSettings::from_lookup(&env_lookup) {
        Ok(s) => s,
        Err(e) => return config_failure(&e),
    };
    let result = async {
        let pool = db::migrate::connect_with_retry(&settings, 10).await?;
        let created = db::seed::run(&pool).await?;
        pool.close().await;
        anyhow::Ok(created)
    }
    .await;
    match result {
        Ok(created) => {
            if created > 0 {
                clear_list_cache().await;
            }
            tracing::info!(created, "seed finished");
            ExitCode::SUCCESS
        }
        Err(e) => failure("seed failed", &e),
    }
}

/// Lists cached before the seed would hide the new items until their TTL; clear them if Redis is configured and
/// reachable (best effort: seeding succeeded either way).
async fn clear_list_cache() {
    let Ok(settings) = RedisSettings::from_lookup(&env_lookup) else {
        return;
    };
    let Ok(conn) = crate::redis_conn::RedisConn::new(&settings) else {
        return;
    };
    let _ = conn
        .query::<()>(redis::cmd("DEL").arg(conn.key("items:list")).to_owned())
        .await;
}

async fn healthcheck(ready: bool) -> ExitCode {
    let port = match config::api_port_from_lookup(&env_lookup) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let path = if ready { "/health/ready" } else { "/health" };
    match healthcheck::get_status(port, path).await {
        Ok(status) if (200..300).contains(&status) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("unhealthy: GET {path} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: GET http://127.0.0.1:{port}{path}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_subcommands() {
        assert_eq!(p(&[]).unwrap(), Command::Serve);
        assert_eq!(p(&["serve"]).unwrap(), Command::Serve);
        assert_eq!(p(&["migrate"]).unwrap(), Command::Migrate);
        assert_eq!(p(&["seed"]).unwrap(), Command::Seed);
        assert_eq!(p(&["healthcheck"]).unwrap(), Command::Healthcheck { ready: false });
        assert_eq!(
            p(&["healthcheck", "--ready"]).unwrap(),
            Command::Healthcheck { ready: true }
        );
        assert!(p(&["healthcheck", "--live"]).is_err());
        assert!(p(&["deploy"]).is_err());
    }
}
