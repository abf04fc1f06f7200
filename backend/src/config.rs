//! Configuration from the environment (12-factor), per the shared contract.
//!
//! Every setting is read through a lookup function instead of `std::env` directly so that unit tests can feed a
//! map (mutating the process environment is `unsafe` in edition 2024 and racy across test threads).
//! All problems are collected and reported together: an operator fixing a compose file should not have to
//! restart five times to discover five typos.

use std::{fmt, path::Path, time::Duration};

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;

/// One problem with one variable, phrased so the message says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub variable: String,
    pub problem: String,
}

/// All problems found while loading a group of settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration ({} problem(s)):", self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  - {}: {}", p.variable, p.problem)?;
        }
        write!(
            f,
            "See backend/README.md (Configuration) for every variable and its default."
        )
    }
}

/// Which requests get an access-log line (`ACCESS_LOG`). Successful health probes never do (orchestrators send
/// one every few seconds per replica; failed checks log their own warning), whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    /// Every request (the default).
    All,
    /// Only responses with a 4xx or 5xx status.
    Errors,
    /// None (metrics still count every request).
    Off,
}

/// The access log's settings (`ACCESS_LOG`, `ACCESS_LOG_SAMPLE`, `ACCESS_LOG_SLOW_MS`): see `access_log.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessLogSettings {
    pub mode: AccessLog,
    /// With `all`: one line per this many successful, fast requests (1: every one). Errors and slow requests are
    /// always logged; the metrics count every request.
    pub sample: u64,
    /// A request that takes at least this long is logged whatever the sampling (with `all` and `errors`).
    pub slow: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// `SecretString` redacts itself in `Debug`, so logging the settings can never leak it.
    pub password: SecretString,
    pub name: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl DatabaseSettings {
    /// Options for the application database.
    pub fn connect_options(&self) -> PgConnectOptions {
        self.connect_options_for(&self.name)
    }

    /// Options for another database on the same server (tests create and drop databases via `postgres`).
    pub fn connect_options_for(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .password(self.password.expose_secret())
            .database(database)
            .application_name("drydock-backend")
    }
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub host: String,
    pub port: u16,
    pub password: Option<SecretString>,
    /// Every key the service writes starts with this, so tests (and several apps sharing a server) never collide.
    pub key_prefix: String,
    /// Bound on every Redis round trip: Redis is an optimisation, a slow Redis must not slow the API down.
    pub timeout: Duration,
}

impl RedisSettings {
    pub fn client(&self) -> redis::RedisResult<redis::Client> {
        use redis::IntoConnectionInfo;
        let info = redis::ConnectionAddr::Tcp(self.host.clone(), self.port).into_connection_info()?;
        let mut redis_info = redis::RedisConnectionInfo::default();
        if let Some(password) = &self.password {
            redis_info = redis_info.set_password(password.expose_secret());
        }
        redis::Client::open(info.set_redis_settings(redis_info))
    }
}

#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Writes allowed per client per window; 0 disables the limit.
    pub writes_per_window: u32,
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub item_ttl: Duration,
    /// List pages are invalidated on every write; the TTL only bounds the cache-aside race window.
    pub list_ttl: Duration,
    /// How long a replica serves its own in-memory copy (invalidated by pub/sub on every write; 0 turns it off).
    pub local_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub api_host: String,
    pub api_port: u16,
    pub metrics_port: u16,
    pub log_format: LogFormat,
    pub access_log: AccessLogSettings,
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    /// How long a readiness result is reused, so a flood of probes cannot saturate the pool.
    pub readiness_cache: Duration,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub rate_limit: RateLimitSettings,
    pub cache: CacheSettings,
}

/// Reads variables through `lookup` and remembers every problem.
pub struct EnvReader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<ConfigProblem>,
}

impl<'a> EnvReader<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, variable: &str, problem: impl Into<String>) {
        self.problems.push(ConfigProblem {
            variable: variable.to_owned(),
            problem: problem.into(),
        });
    }

    /// Empty values count as unset: `FOO=` in a compose file is almost always a forgotten value.
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&mut self, name: &str, hint: &str) -> String {
        match self.get(name) {
            Some(v) => v,
            None => {
                self.problem(name, format!("is not set; {hint}"));
                String::new()
            }
        }
    }

    pub fn string_or(&mut self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn parse_or<T: std::str::FromStr>(&mut self, name: &str, default: T, expected: &str) -> T {
        match self.get(name) {
            None => default,
            Some(raw) => match raw.trim().parse() {
                Ok(v) => v,
                Err(_) => {
                    self.problem(name, format!("{raw:?} is not valid; expected {expected}"));
                    default
                }
            },
        }
    }

    pub fn port_or(&mut self, name: &str, default: u16) -> u16 {
        let port = self.parse_or(name, default, "a port number 1-65535");
        if port == 0 {
            self.problem(name, "0 is not a usable port; expected a port number 1-65535");
        }
        port
    }

    /// A secret from `NAME` or from the file named by `NAME_FILE` (Docker/compose secrets), never both.
    pub fn secret(&mut self, name: &str, required: bool) -> Option<SecretString> {
        let file_var = format!("{name}_FILE");
        match (self.get(name), self.get(&file_var)) {
            (Some(_), Some(_)) => {
                self.problem(
                    name,
                    format!("both {name} and {file_var} are set; set only one of them"),
                );
                None
            }
            (Some(v), None) => Some(SecretString::from(v)),
            (None, Some(path)) => match std::fs::read_to_string(Path::new(&path)) {
                // A trailing newline is what `echo secret > file` produces; it is never part of the secret.
                Ok(content) => {
                    let trimmed = content.trim_end_matches(['\n', '\r']);
                    if trimmed.is_empty() {
                        self.problem(&file_var, format!("file {path:?} is empty; put the secret in it"));
                        None
                    } else {
                        Some(SecretString::from(trimmed.to_owned()))
                    }
                }
                Err(e) => {
                    self.problem(
                        &file_var,
                        format!("cannot read file {path:?}: {e}; check the path and that uid 65532 may read it"),
                    );
                    None
                }
            },
            (None, None) => {
                if required {
                    self.problem(
                        name,
                        format!("is not set; set {name} or {file_var} (path to a file holding it)"),
                    );
                }
                None
            }
        }
    }

    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn read_database(env: &mut EnvReader<'_>) -> DatabaseSettings {
    let host = env.required(
        "DATABASE_HOST",
        "set it to the PostgreSQL host (e.g. `postgres` on the compose network)",
    );
    let port = env.port_or("DATABASE_PORT", 5432);
    let user = env.required("DATABASE_USER", "set it to the PostgreSQL role the API connects as");
    let password = env
        .secret("DATABASE_PASSWORD", true)
        .unwrap_or_else(|| SecretString::from(String::new()));
    let name = env.required("DATABASE_NAME", "set it to the database name (e.g. `drydock`)");
    let max_connections = env.parse_or("DATABASE_MAX_CONNECTIONS", 10u32, "a positive number");
    if max_connections == 0 {
        env.problem("DATABASE_MAX_CONNECTIONS", "must be at least 1");
    }
    let acquire_timeout = millis(env.parse_or("DATABASE_ACQUIRE_TIMEOUT_MS", 3000u64, "milliseconds"));
    DatabaseSettings {
        host,
        port,
        user,
        password,
        name,
        max_connections,
        acquire_timeout,
    }
}

fn read_redis(env: &mut EnvReader<'_>) -> RedisSettings {
    let host = env.required(
        "REDIS_HOST",
        "set it to the Redis host (e.g. `redis` on the compose network)",
    );
    let port = env.port_or("REDIS_PORT", 6379);
    let password = env.secret("REDIS_PASSWORD", false);
    let key_prefix = env.string_or("REDIS_KEY_PREFIX", "drydock:");
    let timeout = millis(env.parse_or("REDIS_TIMEOUT_MS", 250u64, "milliseconds"));
    RedisSettings {
        host,
        port,
        password,
        key_prefix,
        timeout,
    }
}

impl DatabaseSettings {
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = EnvReader::new(lookup);
        let db = read_database(&mut env);
        env.finish(db)
    }
}

impl RedisSettings {
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = EnvReader::new(lookup);
        let redis = read_redis(&mut env);
        env.finish(redis)
    }
}

impl Settings {
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = EnvReader::new(lookup);
        let api_host = env.string_or("API_HOST", "0.0.0.0");
        let api_port = env.port_or("API_PORT", 8000);
        let metrics_port = env.port_or("METRICS_PORT", 9100);
        if api_port == metrics_port {
            env.problem(
                "METRICS_PORT",
                format!("equals API_PORT ({api_port}); metrics need their own port"),
            );
        }
        let log_format = log_format(&mut env);
        let mode = match env.string_or("ACCESS_LOG", "all").trim().to_ascii_lowercase().as_str() {
            "all" => AccessLog::All,
            "errors" => AccessLog::Errors,
            "off" => AccessLog::Off,
            other => {
                env.problem(
                    "ACCESS_LOG",
                    format!("{other:?} is not valid; expected `all`, `errors` or `off`"),
                );
                AccessLog::All
            }
        };
        let sample = env.parse_or(
            "ACCESS_LOG_SAMPLE",
            1u64,
            "a whole number from 1 (every request) to 1000000",
        );
        if !(1..=1_000_000).contains(&sample) {
            env.problem(
                "ACCESS_LOG_SAMPLE",
                format!("{sample} is out of range; expected 1 (every request) to 1000000"),
            );
        }
        let access_log = AccessLogSettings {
            mode,
            sample: sample.clamp(1, 1_000_000),
            slow: millis(env.parse_or("ACCESS_LOG_SLOW_MS", 500u64, "milliseconds")),
        };
        let request_timeout = millis(env.parse_or("REQUEST_TIMEOUT_MS", 10_000u64, "milliseconds"));
        let body_limit_bytes = env.parse_or("BODY_LIMIT_BYTES", 64 * 1024usize, "a size in bytes");
        let readiness_cache = millis(env.parse_or("READINESS_CACHE_MS", 2000u64, "milliseconds"));
        let database = read_database(&mut env);
        let redis = read_redis(&mut env);
        let rate_limit = RateLimitSettings {
            writes_per_window: env.parse_or("RATE_LIMIT_WRITES", 30u32, "a number of writes (0 disables)"),
            window: Duration::from_secs(env.parse_or("RATE_LIMIT_WINDOW_SECS", 60u64, "seconds")),
        };
        if rate_limit.window.is_zero() {
            env.problem("RATE_LIMIT_WINDOW_SECS", "must be at least 1");
        }
        let cache = CacheSettings {
            item_ttl: Duration::from_secs(env.parse_or("CACHE_ITEM_TTL_SECS", 300u64, "seconds")),
            list_ttl: Duration::from_secs(env.parse_or("CACHE_LIST_TTL_SECS", 30u64, "seconds")),
            local_ttl: millis(env.parse_or("CACHE_LOCAL_TTL_MS", 1000u64, "milliseconds (0 turns it off)")),
        };
        let settings = Settings {
            api_host,
            api_port,
            metrics_port,
            log_format,
            access_log,
            request_timeout,
            body_limit_bytes,
            readiness_cache,
            database,
            redis,
            rate_limit,
            cache,
        };
        env.finish(settings)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }
}

fn log_format(env: &mut EnvReader<'_>) -> LogFormat {
    match env.string_or("LOG_FORMAT", "json").trim().to_ascii_lowercase().as_str() {
        "json" => LogFormat::Json,
        "pretty" => LogFormat::Pretty,
        other => {
            env.problem(
                "LOG_FORMAT",
                format!("{other:?} is not valid; expected `json` or `pretty`"),
            );
            LogFormat::Json
        }
    }
}

/// LOG_FORMAT alone, for commands that must log before (or without) the full configuration.
pub fn log_format_from_env() -> LogFormat {
    let lookup = |name: &str| std::env::var(name).ok();
    let mut env = EnvReader::new(&lookup);
    log_format(&mut env)
}

/// API_PORT alone: `healthcheck` must work even if the rest of the configuration is broken.
pub fn api_port_from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<u16, ConfigError> {
    let mut env = EnvReader::new(lookup);
    let port = env.port_or("API_PORT", 8000);
    env.finish(port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup_from(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("DATABASE_HOST", "postgres"),
        ("DATABASE_USER", "app"),
        ("DATABASE_PASSWORD", "s3cret"),
        ("DATABASE_NAME", "drydock"),
        ("REDIS_HOST", "redis"),
    ];

    #[test]
    fn minimal_env_gets_contract_defaults() {
        let s = Settings::from_lookup(&lookup_from(MINIMAL)).unwrap();
        assert_eq!(s.api_port, 8000);
        assert_eq!(s.metrics_port, 9100);
        assert_eq!(s.database.port, 5432);
        assert_eq!(s.redis.port, 6379);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(
            s.access_log,
            AccessLogSettings {
                mode: AccessLog::All,
                sample: 1,
                slow: Duration::from_millis(500)
            }
        );
        assert!(s.redis.password.is_none());
        assert_eq!(s.database.password.expose_secret(), "s3cret");
    }

    #[test]
    fn missing_variables_are_all_reported_with_a_fix() {
        let err = Settings::from_lookup(&lookup_from(&[("API_PORT", "http")])).unwrap_err();
        let vars: Vec<_> = err.problems.iter().map(|p| p.variable.as_str()).collect();
        for v in [
            "API_PORT",
            "DATABASE_HOST",
            "DATABASE_USER",
            "DATABASE_PASSWORD",
            "DATABASE_NAME",
            "REDIS_HOST",
        ] {
            assert!(vars.contains(&v), "{v} missing from {vars:?}");
        }
        let text = err.to_string();
        assert!(
            text.contains("DATABASE_PASSWORD: is not set; set DATABASE_PASSWORD or DATABASE_PASSWORD_FILE"),
            "{text}"
        );
        assert!(text.contains("\"http\" is not valid; expected a port number"), "{text}");
    }

    #[test]
    fn secret_from_file_drops_trailing_newline() {
        let path = std::env::temp_dir().join(format!("drydock-secret-{}", std::process::id()));
        std::fs::write(&path, "from-file\n").unwrap();
        let mut pairs: Vec<(&str, &str)> = MINIMAL
            .iter()
            .filter(|(k, _)| *k != "DATABASE_PASSWORD")
            .copied()
            .collect();
        let p = path.to_str().unwrap().to_owned();
        pairs.push(("DATABASE_PASSWORD_FILE", &p));
        pairs.push(("REDIS_PASSWORD_FILE", &p));
        let s = Settings::from_lookup(&lookup_from(&pairs)).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(s.database.password.expose_secret(), "from-file");
        assert_eq!(s.redis.password.unwrap().expose_secret(), "from-file");
    }

    #[test]
    fn secret_and_file_together_is_an_error() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("DATABASE_PASSWORD_FILE", "/run/secrets/db"));
        let err = Settings::from_lookup(&lookup_from(&pairs)).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(err.problems[0].problem.contains("set only one"));
    }

    #[test]
    fn unreadable_secret_file_names_the_variable_and_path() {
        let mut pairs: Vec<(&str, &str)> = MINIMAL
            .iter()
            .filter(|(k, _)| *k != "DATABASE_PASSWORD")
            .copied()
            .collect();
        pairs.push(("DATABASE_PASSWORD_FILE", "/nonexistent/db_password"));
        let err = Settings::from_lookup(&lookup_from(&pairs)).unwrap_err();
        assert_eq!(err.problems[0].variable, "DATABASE_PASSWORD_FILE");
        assert!(err.problems[0].problem.contains("/nonexistent/db_password"));
    }

    #[test]
    fn invalid_values_are_rejected() {
        let mut pairs = MINIMAL.to_vec();
        pairs.extend([
            ("LOG_FORMAT", "xml"),
            ("ACCESS_LOG", "sometimes"),
            ("ACCESS_LOG_SAMPLE", "0"),
            ("ACCESS_LOG_SLOW_MS", "soon"),
            ("METRICS_PORT", "8000"),
            ("DATABASE_PORT", "0"),
            ("RATE_LIMIT_WINDOW_SECS", "0"),
        ]);
        let err = Settings::from_lookup(&lookup_from(&pairs)).unwrap_err();
        let vars: Vec<_> = err.problems.iter().map(|p| p.variable.as_str()).collect();
        assert_eq!(
            vars,
            [
                "METRICS_PORT",
                "LOG_FORMAT",
                "ACCESS_LOG",
                "ACCESS_LOG_SAMPLE",
                "ACCESS_LOG_SLOW_MS",
                "DATABASE_PORT",
                "RATE_LIMIT_WINDOW_SECS"
            ]
        );
    }

    #[test]
    fn debug_output_never_contains_secrets() {
        let mut pairs = MINIMAL.to_vec();
        pairs.push(("REDIS_PASSWORD", "redis-pass"));
        let s = Settings::from_lookup(&lookup_from(&pairs)).unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("s3cret") && !dbg.contains("redis-pass"), "{dbg}");
    }

    #[test]
    fn healthcheck_only_needs_api_port() {
        assert_eq!(api_port_from_lookup(&lookup_from(&[])).unwrap(), 8000);
        assert_eq!(
            api_port_from_lookup(&lookup_from(&[("API_PORT", "8080")])).unwrap(),
            8080
        );
        assert!(api_port_from_lookup(&lookup_from(&[("API_PORT", "x")])).is_err());
    }
}
