//! One module per command (or per family of commands).

pub mod ci;
pub mod clean;
pub mod codegen;
pub mod dev;
pub mod doctor;
pub mod fmt;
pub mod health;
pub mod images;
pub mod test;
