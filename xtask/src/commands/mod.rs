//! One module per command (or per family of commands).

pub mod backup;
pub mod backups;
pub mod bench;
pub mod bench_api;
pub mod ci;
pub mod clean;
pub mod codegen;
pub mod db;
pub mod deploy;
pub mod dev;
pub mod doctor;
pub mod e2e;
pub mod fmt;
pub mod health;
pub mod images;
pub mod lint;
pub mod lint_fix;
pub mod prod;
pub mod release;
pub mod restore;
pub mod test;
