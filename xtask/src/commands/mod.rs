//! One module per command (or per family of commands).

pub mod ci;
pub mod dev;
pub mod doctor;
pub mod health;
pub mod images;
