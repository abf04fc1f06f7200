//! PostgreSQL access: the pool, migrations, and one module per table. Queries use the runtime-checked
//! `sqlx::query_as` (not the `query!` macros) because no database exists when the image is built.

pub mod items;
pub mod migrate;
pub mod pool;
pub mod reviews;
pub mod seed;
