//! Integration tests against real PostgreSQL and Redis. Built only with `--features integration` (see
//! backend/README.md); run them with `cargo xtask test`, which provides the services and the environment.

mod helpers;

mod cache;
mod health;
mod items;
mod metrics;
mod rate_limit;
mod resilience;
mod reviews;
mod shutdown;
