//! drydock's typed operations CLI (`cargo xtask <command>`), as a library so the integration tests use the
//! crate's own types. The modules are layered, and imports only go down (DESIGN.md, "The xtask"):
//!
//! 1. command data, runner, terminal, files, time, HTTP, signals: `cmd`, `runner` (with `compose_plugin`), `term`,
//!    `files`, `time`, `http`, `interrupt`
//! 2. the stack description, the engine acted on and what every command gets: `config` (with `offsite_config`),
//!    `target`, `context`
//! 3. Docker and the machine: `docker`, `compose`, `images`, `stack`, `provision`
//! 4. domains: `dev`, `backup`, `ci_report`, `ci_schedule`, `prod`, `lint`
//! 5. one module per command: `commands::<name>` (the code of `cargo xtask foo-bar` is `commands/foo_bar.rs`)
//! 6. the command line: `cli` (and `main.rs` above it)

pub mod cmd;
pub mod compose_plugin;
pub mod files;
pub mod http;
pub mod interrupt;
pub mod runner;
pub mod term;
pub mod time;

pub mod config;
pub mod context;
pub mod image_source;
pub mod offsite_config;
pub mod target;

pub mod cargo;
pub mod compose;
pub mod dev;
pub mod flags;
pub mod images;
pub mod provision;
pub mod stack;

pub mod backup;
pub mod ci_report;
pub mod ci_schedule;
pub mod lint;
pub mod prod;

pub mod commands;

pub mod cli;
