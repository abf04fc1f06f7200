//! drydock backend: a small review board API on axum, PostgreSQL (system of record) and Redis (cache and rate
//! limit). The binary (`main.rs`) only parses the command line; everything is here so tests can drive it.

pub mod access_log;
pub mod cache;
pub mod cache_invalidation;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod healthcheck;
pub mod metrics;
pub mod near_cache;
pub mod rate_limit;
pub mod readiness;
pub mod redis_conn;
pub mod routes;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod validation;
