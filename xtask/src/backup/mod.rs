//! Backups people can trust: names, manifests, retention, atomic files and locks (`store`), and the
//! command plans of each engine. The commands themselves live in `commands::{backup, restore, backups, db}`.

pub mod bench;
pub mod encrypt;
pub mod freshness;
pub mod manifest;
pub mod name;
pub mod offsite;
pub mod pitr;
pub mod pitr_offsite;
pub mod plans;
pub mod remote;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod store;
pub mod take;

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::cmd::cmd;
use crate::compose::Compose;
use crate::config::ImageSource;
use crate::context::Ctx;
use plans::PgTarget;

/// The engines with backups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Postgres,
    Redis,
    Mongodb,
}

impl Engine {
    pub const ALL: [Engine; 3] = [Engine::Postgres, Engine::Redis, Engine::Mongodb];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Redis => "redis",
            Engine::Mongodb => "mongodb",
        }
    }

    /// The main data file's extension.
    pub fn ext(self) -> &'static str {
        match self {
            Engine::Postgres => "dump",
            Engine::Redis => "rdb",
            Engine::Mongodb => "archive.gz",
        }
    }

    /// The compose service that plays this role (infra/stack.toml `[services]`).
    pub fn service(self, ctx: &Ctx) -> String {
        let s = &ctx.config.services;
        match self {
            Engine::Postgres => s.postgres.clone(),
            Engine::Redis => s.redis.clone(),
            Engine::Mongodb => s.mongo.clone(),
        }
    }

    /// Checks the first bytes of a data file: a dump of another engine (or garbage) is refused before
    /// anything is touched. pg_dump's custom format starts with `PGDMP`, an RDB with `REDIS`, gzip with 1f 8b.
    pub fn check_magic(self, head: &[u8]) -> Result<()> {
        let (magic, what): (&[u8], &str) = match self {
            Engine::Postgres => (b"PGDMP", "a pg_dump custom-format archive"),
            Engine::Redis => (b"REDIS", "a Redis RDB snapshot"),
            Engine::Mongodb => (&[0x1f, 0x8b], "a gzip-compressed mongodump archive"),
        };
        if !head.starts_with(magic) {
            bail!(
                "the data is not {what} (it starts with {:?})",
                String::from_utf8_lossy(&head[..head.len().min(8)])
            );
        }
        Ok(())
    }
}

/// `backups/<service>/` (backups.dir in infra/stack.toml, relative to the repository root).
pub fn service_dir(ctx: &Ctx, service: &str) -> PathBuf {
    ctx.path(&ctx.config.backups.dir).join(service)
}

/// The lock of a service's backups directory (backup, restore and prune of a service never overlap); a dry run
/// takes none.
pub fn lock_service(ctx: &Ctx, service: &str) -> Result<Option<store::ServiceLock>> {
    if ctx.run.dry_run {
        return Ok(None);
    }
    Ok(Some(store::lock(&service_dir(ctx, service), service)?))
}

/// MongoDB is optional (compose profile `mongo`) and has no offline image: say so plainly, before anything.
/// Decides no image source (that may wait on a registry probe): it reads the flag and the config, then asks
/// the stack whether MongoDB runs.
pub fn require_mongo(ctx: &Ctx, compose: &Compose) -> Result<()> {
    if ctx.offline || ctx.config.images.source == ImageSource::Offline {
        bail!(
            "MongoDB is not available on this machine: the offline images (images.source = offline, or no registry answered) include no MongoDB image, because MongoDB has no Debian package\n  fix: on a machine with a registry, set images.source = \"registry\" in infra/stack.toml and start the stack with the `mongo` profile"
        );
    }
    if ctx.run.dry_run {
        return Ok(());
    }
    let service = Engine::Mongodb.service(ctx);
    let sh = crate::cmd::shell();
    let query = compose.cmd(cmd!(sh, "--profile * config --services"));
    let defined = ctx
        .run
        .probe(&query)
        .filter(|p| p.success)
        .map(|p| p.stdout)
        .unwrap_or_default();
    if !defined.lines().any(|l| l.trim() == service) {
        bail!(
            "MongoDB is not part of this stack: the compose files define no `{service}` service\n  fix: add the `mongo` profile's service to infra/compose/compose.yaml (services.mongo in infra/stack.toml names it)"
        );
    }
    let running = ctx
        .run
        .probe(&compose.cmd(cmd!(sh, "ps --services --status running")))
        .filter(|p| p.success)
        .map(|p| p.stdout)
        .unwrap_or_default();
    if !running.lines().any(|l| l.trim() == service) {
        bail!(
            "MongoDB is not running in compose project `{}` (with offline images there is none: MongoDB has no Debian package)\n  fix: with registry images (images.source = \"registry\"), start it: docker compose --profile mongo up -d {service}",
            compose.project
        );
    }
    Ok(())
}

/// What the PostgreSQL container reports about itself (see [`plans::PG_FACTS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgFacts {
    pub target: PgTarget,
    pub server_version: String,
    pub tool_version: String,
    pub tables: u64,
    /// `zstd:1` when this pg_dump supports it, else `default`.
    pub compression: String,
}

impl PgFacts {
    pub fn parse(text: &str) -> Result<PgFacts> {
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let [user, db, server, tool, tables, compression] = lines.as_slice() else {
            bail!("unexpected answer from the postgres container:\n{text}");
        };
        Ok(PgFacts {
            target: PgTarget {
                user: user.to_string(),
                db: db.to_string(),
            },
            server_version: server.to_string(),
            tool_version: tool.to_string(),
            tables: tables
                .parse()
                .map_err(|_| anyhow::anyhow!("unexpected table count {tables:?}"))?,
            compression: compression.to_string(),
        })
    }

    /// What a dry run shows instead (nothing is asked).
    pub fn placeholder() -> PgFacts {
        PgFacts {
            target: PgTarget {
                user: "$POSTGRES_USER".into(),
                db: "$POSTGRES_DB".into(),
            },
            server_version: "?".into(),
            tool_version: "?".into(),
            tables: 0,
            compression: "zstd:1".into(),
        }
    }
}

/// What the Redis container reports about itself (see [`plans::REDIS_FACTS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisFacts {
    pub cli_version: String,
    pub server_version: String,
    pub keys: u64,
    pub dir: String,
    pub dbfilename: String,
    pub appendonly: bool,
}

impl RedisFacts {
    pub fn parse(text: &str) -> Result<RedisFacts> {
        let (info, config) = text.split_once("@config").unwrap_or((text, ""));
        let mut facts = RedisFacts {
            cli_version: String::new(),
            server_version: String::new(),
            keys: 0,
            dir: String::new(),
            dbfilename: String::new(),
            appendonly: false,
        };
        for line in info.lines().map(str::trim) {
            if let Some(v) = line.strip_prefix("redis_version:") {
                facts.server_version = v.to_string();
            } else if line.starts_with("redis-cli ") {
                facts.cli_version = line.to_string();
            }
        }
        facts.keys = redis_keys(info);
        // CONFIG GET answers name/value pairs, one per line.
        let lines: Vec<&str> = config.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        for pair in lines.chunks(2) {
            if let [k, v] = pair {
                match *k {
                    "dir" => facts.dir = v.to_string(),
                    "dbfilename" => facts.dbfilename = v.to_string(),
                    "appendonly" => facts.appendonly = *v == "yes",
                    _ => {}
                }
            }
        }
        if facts.server_version.is_empty() || facts.dir.is_empty() || facts.dbfilename.is_empty() {
            bail!("unexpected answer from the redis container:\n{text}");
        }
        Ok(facts)
    }

    pub fn placeholder() -> RedisFacts {
        RedisFacts {
            cli_version: "?".into(),
            server_version: "?".into(),
            keys: 0,
            dir: "/data".into(),
            dbfilename: "dump.rdb".into(),
            appendonly: false,
        }
    }
}

/// The number of keys in every database of Redis' `INFO keyspace` answer (`db0:keys=12,expires=0,avg_ttl=0`
/// per database; other lines and a `\r` before the newline are ignored).
pub fn redis_keys(info: &str) -> u64 {
    info.lines()
        .map(str::trim)
        .filter(|line| line.starts_with("db"))
        .filter_map(|line| {
            line.split([':', ','])
                .find_map(|kv| kv.strip_prefix("keys="))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .sum()
}

/// Asks a database container for its facts; a failure means it is not running or not ready, said plainly.
pub fn ask(ctx: &Ctx, compose: &Compose, service: &str, cmd: &crate::cmd::Cmd) -> Result<Option<String>> {
    let Some(probe) = ctx.run.probe(cmd) else {
        return Ok(None);
    };
    if !probe.success {
        bail!(
            "the `{service}` service of compose project `{}` is not running or not ready:\n  $ {}\n  {}\n  fix: start it (`cargo xtask dev-up`, or `cargo xtask dev-restart {service}`) and check `cargo xtask dev-logs {service}`",
            compose.project,
            cmd.display(),
            probe.stderr.trim().replace('\n', "\n  ")
        );
    }
    Ok(Some(probe.stdout))
}

/// Interactive only with a terminal and nothing to run.
pub fn tty(args: &[String]) -> bool {
    args.is_empty() && std::io::IsTerminal::is_terminal(&std::io::stdin())
}

/// A terminal session, or a one-off that still reads piped input (`echo 'select 1' | cargo xtask db-psql`).
pub fn shell(cmd: crate::cmd::Cmd, tty: bool) -> crate::cmd::Cmd {
    if tty {
        cmd.interactive()
    } else {
        cmd.stdin(crate::cmd::Input::Inherit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_identify_the_engine() {
        Engine::Postgres.check_magic(b"PGDMP\x01\x0e").unwrap();
        Engine::Redis.check_magic(b"REDIS0012").unwrap();
        Engine::Mongodb.check_magic(&[0x1f, 0x8b, 8]).unwrap();
        let err = Engine::Postgres.check_magic(b"REDIS0012").unwrap_err().to_string();
        assert!(err.contains("not a pg_dump custom-format archive"), "{err}");
        assert!(
            Engine::Redis.check_magic(b"").is_err(),
            "an empty file is never a backup"
        );
    }

    #[test]
    fn parses_pg_facts() {
        let f = PgFacts::parse(
            "drydock\ndrydock\n17.6 (Debian 17.6-1)\npg_dump (PostgreSQL) 17.6 (Debian 17.6-1)\n4\nzstd:1\n",
        )
        .unwrap();
        assert_eq!(
            f.target,
            PgTarget {
                user: "drydock".into(),
                db: "drydock".into()
            }
        );
        assert_eq!((f.tables, f.compression.as_str()), (4, "zstd:1"));
        assert!(PgFacts::parse("drydock\n").is_err());
    }

    #[test]
    fn parses_redis_facts_in_any_config_order() {
        let text = "redis-cli 8.0.2\nredis_version:8.0.2\ndb0:keys=3,expires=0,avg_ttl=0\ndb2:keys=4,expires=1\n@config\ndbfilename\ndump.rdb\nappendonly\nno\ndir\n/data\n";
        let f = RedisFacts::parse(text).unwrap();
        assert_eq!(f.keys, 7);
        assert_eq!(
            (f.dir.as_str(), f.dbfilename.as_str(), f.appendonly),
            ("/data", "dump.rdb", false)
        );
        assert_eq!(f.server_version, "8.0.2");
        assert!(RedisFacts::parse("redis-cli 8.0.2\n").is_err());
    }

    #[test]
    fn counts_redis_keys_of_every_database() {
        // What `redis-cli INFO keyspace` prints: CRLF line ends, a section header, one line per database.
        let info = "# Keyspace\r\ndb0:keys=12,expires=0,avg_ttl=0,subexpiry=0\r\ndb3:keys=5,expires=2,avg_ttl=10\r\n";
        assert_eq!(redis_keys(info), 17);
        assert_eq!(redis_keys("# Keyspace\r\n"), 0, "an empty server has no db lines");
        assert_eq!(
            redis_keys("db0:expires=0\ndb1:keys=x\n"),
            0,
            "unreadable counts are not keys"
        );
    }
}
