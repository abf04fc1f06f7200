//! The zero2prod-style harness: each test gets its own app (API and metrics on port 0), its own freshly
//! migrated database (dropped afterwards, even when the test panics) and its own Redis key prefix.

use std::sync::atomic::{AtomicU32, Ordering};

use backend::{cache::Cache, config::Settings, redis_conn::RedisConn, startup::Application};
use sqlx::{Connection, Executor, PgConnection, PgPool};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct TestApp {
    pub address: String,
    pub metrics_address: String,
    pub client: reqwest::Client,
    /// A pool on this test's database, for arranging and inspecting data behind the API's back.
    pub db: PgPool,
    pub redis: RedisConn,
    /// The app's own cache (to see whether its near cache is live).
    pub cache: Cache,
    /// Sending (or dropping) this is the app's SIGTERM.
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    settings: Settings,
    /// What the app was started with, for `spawn_replica`.
    app_settings: Settings,
    db_name: Option<String>,
}

/// Settings from the environment the test container provides. Missing services are a hard failure, not a skip:
/// a silently skipped suite is how broken code ships.
fn base_settings() -> Settings {
    if std::env::var("DATABASE_HOST").map(|v| v.is_empty()).unwrap_or(true) {
        panic!(
            "integration tests need PostgreSQL and Redis: run `cargo xtask test` (it starts them and sets \
             DATABASE_HOST, DATABASE_PORT, DATABASE_USER, DATABASE_PASSWORD, DATABASE_NAME, REDIS_HOST, REDIS_PORT)"
        );
    }
    let lookup = |name: &str| match name {
        // Ports are chosen by the OS below; the env values (if any) belong to a real app.
        "API_PORT" => Some("8000".to_owned()),
        "METRICS_PORT" => Some("9100".to_owned()),
        _ => std::env::var(name).ok(),
    };
    let mut settings = Settings::from_lookup(&lookup).unwrap_or_else(|e| panic!("test environment: {e}"));
    settings.api_host = "127.0.0.1".to_owned();
    settings.api_port = 0;
    settings.metrics_port = 0;
    settings.readiness_cache = std::time::Duration::ZERO;
    // Tests run in parallel (one per CPU) against one server; small pools keep them under max_connections (100).
    settings.database.max_connections = 5;
    // High enough that only the rate-limit tests ever hit it.
    settings.rate_limit.writes_per_window = 10_000;
    settings
}

/// A port nothing listens on: bind, read, close.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = base_settings();
    let unique = format!(
        "{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        nanos()
    );
    let db_name = format!("test_{unique}");
    settings.redis.key_prefix = format!("test:{unique}:");
    let maintenance = settings.database.name.clone();

    let mut conn = PgConnection::connect_with(&settings.database.connect_options_for(&maintenance))
        .await
        .expect("connect to the maintenance database (check DATABASE_* and that PostgreSQL is up)");
    conn.execute(format!(r#"CREATE DATABASE "{db_name}""#).as_str())
        .await
        .expect("create test database");
    conn.close().await.ok();
    settings.database.name = db_name.clone();
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(settings.database.connect_options())
        .await
        .expect("connect to test database");
    backend::db::migrate::run(&db).await.expect("migrate test database");

    // Applied after the database exists, so tests can point the app at a dead PostgreSQL or Redis.
    let mut app_settings = settings.clone();
    customise(&mut app_settings);
    start(app_settings, settings, db, Some(db_name)).await
}

/// An app whose PostgreSQL is unreachable (no test database needed).
pub async fn spawn_app_without_postgres() -> TestApp {
    let mut settings = base_settings();
    settings.database.port = closed_port();
    settings.database.acquire_timeout = std::time::Duration::from_millis(500);
    settings.redis.key_prefix = format!("test:nopg:{}:", nanos());
    let db = backend::db::pool::lazy_pool(&settings.database);
    start(settings.clone(), settings, db, None).await
}

async fn start(app_settings: Settings, settings: Settings, db: PgPool, db_name: Option<String>) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        backend::telemetry::init(backend::config::LogFormat::Pretty);
    }
    let app_settings_copy = app_settings.clone();
    let app = Application::build(app_settings).await.expect("build app");
    let address = format!("http://127.0.0.1:{}", app.api_port());
    let metrics_address = format!("http://127.0.0.1:{}", app.metrics_port());
    let redis = app.state().redis.clone();
    let cache = app.state().cache.clone();
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stop.await;
    }));
    TestApp {
        address,
        metrics_address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        db,
        redis,
        cache,
        shutdown: Some(shutdown),
        server: Some(server),
        app_settings: app_settings_copy,
        settings,
        db_name,
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

impl TestApp {
    /// A second replica of this app: same database, same Redis key prefix, its own ports and near cache. It does
    /// not own the database (the first app drops it).
    pub async fn spawn_replica(&self) -> TestApp {
        start(self.app_settings.clone(), self.settings.clone(), self.db.clone(), None).await
    }

    /// Waits until this replica's near cache is live (its invalidation subscription confirmed).
    pub async fn near_cache_live(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.cache.near_is_live() {
            assert!(
                std::time::Instant::now() < deadline,
                "the near cache did not go live in 10 s (invalidation subscription)"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// What SIGTERM does to the real process.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Creates an item through the API and returns its JSON.
    pub async fn create_item(&self, name: &str) -> serde_json::Value {
        let resp = self
            .post_json("/api/v1/items", &serde_json::json!({"name": name, "description": "d"}))
            .await;
        assert_eq!(resp.status(), 201, "create item");
        resp.json().await.unwrap()
    }

    pub async fn create_review(&self, item_id: i64, rating: i64) -> reqwest::Response {
        self.post_json(
            &format!("/api/v1/items/{item_id}/reviews"),
            &serde_json::json!({"author": "tester", "rating": rating, "body": "text"}),
        )
        .await
    }

    pub async fn redis_exists(&self, suffix: &str) -> bool {
        let n: i64 = self
            .redis
            .query(redis_cmd("EXISTS", &self.redis.key(suffix)))
            .await
            .expect("redis EXISTS");
        n == 1
    }
}

pub fn redis_cmd(name: &str, key: &str) -> redis::Cmd {
    let mut cmd = redis::cmd(name);
    cmd.arg(key);
    cmd
}

pub async fn json(resp: reqwest::Response) -> serde_json::Value {
    resp.json().await.expect("JSON body")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let Some(db_name) = self.db_name.take() else {
            return;
        };
        let settings = self.settings.database.clone();
        let maintenance = base_settings().database.name;
        // Drop runs inside the test's runtime (or while unwinding from a panic), where we cannot block on async
        // work; a separate thread with its own runtime can. FORCE ends the app's still-open connections.
        let dropper = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut conn = PgConnection::connect_with(&settings.connect_options_for(&maintenance)).await?;
                conn.execute(format!(r#"DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)"#).as_str())
                    .await?;
                conn.close().await
            })
        });
        if let Ok(Err(e)) = dropper.join() {
            eprintln!("warning: could not drop test database: {e}");
        }
    }
}
