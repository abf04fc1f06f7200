//! The external commands of the database and backup commands, as data (unit-tested argv, no Docker).
//!
//! Everything runs inside the service's own container through `docker compose exec -T` (no TTY: a TTY
//! corrupts binary streams), so client and server versions always match and no database port needs to be
//! published. Passwords never appear in argv or in the echo: PostgreSQL trusts local socket connections
//! inside its container (like the official image), and Redis / MongoDB read theirs from the container's own
//! environment through a fixed `sh -c` prefix; the real program and its arguments follow as `"$@"`.

use anyhow::{Result, bail};

use crate::cmd::{Cmd, cmd, shell};
use crate::compose::Compose;

/// Who to connect as, and to which database (read from the postgres container's environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    pub user: String,
    pub db: String,
}

/// `exec` with or without a TTY: interactive shells get one, everything captured or streamed must not.
fn exec(compose: &Compose, service: &str, tty: bool) -> Cmd {
    let sh = shell();
    let no_tty = (!tty).then_some("-T");
    compose.cmd(cmd!(sh, "exec {no_tty...} {service}"))
}

/// Reads a PostgreSQL container's facts in one round trip, one per line: user, database, server version,
/// pg_dump version, number of user tables, and the best compression its pg_dump supports (zstd:1 is 3-4×
/// faster than the default gzip:6 and smaller; PostgreSQL 16+ built with zstd has it: tried, not assumed).
pub const PG_FACTS: &str = r#"u="${POSTGRES_USER:-postgres}"; d="${POSTGRES_DB:-$u}"
pg_isready -q -t 10 -U "$u" -d "$d" || { echo "PostgreSQL is not accepting connections" >&2; exit 1; }
printf '%s\n%s\n' "$u" "$d"
psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d "$d" -c 'show server_version' || exit 1
pg_dump --version
psql -XAtq -v ON_ERROR_STOP=1 -U "$u" -d "$d" -c "select count(*) from pg_tables where schemaname not in ('pg_catalog','information_schema')" || exit 1
if pg_dump -U "$u" -d "$d" -Fc --compress=zstd:1 --schema-only -N "*" >/dev/null 2>&1; then echo zstd:1; else echo default; fi"#;

pub fn pg_facts(compose: &Compose, service: &str) -> Cmd {
    let sh = shell();
    exec(compose, service, false).then(cmd!(sh, "sh -c {PG_FACTS}"))
}

/// The number of user tables (the sanity check after a restore).
pub const PG_TABLE_COUNT: &str =
    "select count(*) from pg_tables where schemaname not in ('pg_catalog','information_schema')";

/// `pg_dump` in custom format to stdout. `compression` is `zstd:1` or `default` (pg_dump's gzip level).
pub fn pg_dump(compose: &Compose, service: &str, t: &PgTarget, compression: &str) -> Cmd {
    let sh = shell();
    let (user, db) = (&t.user, &t.db);
    let compress = (compression != "default").then(|| format!("--compress={compression}"));
    exec(compose, service, false).then(cmd!(sh, "pg_dump -U {user} -d {db} --format=custom {compress...}"))
}

/// Roles and tablespaces (pg_dump does not include them): restored first on a new cluster.
pub fn pg_dumpall_globals(compose: &Compose, service: &str, t: &PgTarget) -> Cmd {
    let sh = shell();
    let user = &t.user;
    exec(compose, service, false).then(cmd!(sh, "pg_dumpall -U {user} --globals-only"))
}

/// Restores a custom-format dump read from stdin into the target database in place: objects in the archive
/// are dropped and recreated, ownership goes to the connecting user, the first error stops it, and one
/// transaction makes it all-or-nothing. What a Makefile runs: `backups bench` compares `restore-postgres`
/// (which restores into a new database and swaps it in: [`PgSwap`]) with it.
pub fn pg_restore(compose: &Compose, service: &str, t: &PgTarget) -> Cmd {
    let sh = shell();
    let (user, db) = (&t.user, &t.db);
    exec(compose, service, false).then(cmd!(
        sh,
        "pg_restore -U {user} -d {db} --clean --if-exists --no-owner --exit-on-error --single-transaction"
    ))
}

/// The databases of a restore that swaps: the backup is restored into `scratch` while the application keeps
/// `db`; then, in one transaction, `db` becomes `replaced` and `scratch` becomes `db`, and `replaced` is dropped.
/// Both names are fixed, so a leftover of an interrupted restore is found (and dropped) by the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSwap {
    pub user: String,
    pub db: String,
    pub scratch: String,
    pub replaced: String,
    /// Where the swap connects: never one of the three databases it renames.
    pub maintenance: String,
}

impl PgSwap {
    pub fn new(t: &PgTarget) -> Result<PgSwap> {
        let replaced = format!("{}__drydock_replaced", t.db);
        // PostgreSQL truncates longer names, and a truncated name could be another database's.
        if replaced.len() > 63 {
            bail!(
                "database name `{}` is too long to restore beside it ({} bytes; a restore needs `{replaced}`, and PostgreSQL allows 63): nothing was changed\n  fix: restore it with pg_restore by hand, or use a database name of at most 45 bytes",
                t.db,
                t.db.len()
            );
        }
        Ok(PgSwap {
            user: t.user.clone(),
            db: t.db.clone(),
            scratch: format!("{}__drydock_restore", t.db),
            replaced,
            maintenance: if t.db == "postgres" { "template1" } else { "postgres" }.to_string(),
        })
    }

    /// `sh -c <script> sh <user> <db> <scratch> <replaced> <maintenance>` in the postgres container.
    fn script(&self, compose: &Compose, service: &str, script: &str) -> Cmd {
        let sh = shell();
        let PgSwap {
            user,
            db,
            scratch,
            replaced,
            maintenance,
        } = self;
        exec(compose, service, false).then(cmd!(
            sh,
            "sh -c {script} sh {user} {db} {scratch} {replaced} {maintenance}"
        ))
    }
}

/// Drops the leftovers of an interrupted restore, then creates the empty database the backup is restored into,
/// with the encoding, collation and database-level settings of the one it replaces (a dump has none of them).
pub const PG_CREATE_SCRATCH: &str = r#"exec psql -X -q -v ON_ERROR_STOP=1 -U "$1" -d "$5" -v user="$1" -v db="$2" -v scratch="$3" -v replaced="$4" <<'SQL'
SET client_min_messages = warning;
DROP DATABASE IF EXISTS :"scratch" WITH (FORCE);
DROP DATABASE IF EXISTS :"replaced" WITH (FORCE);
SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0 ENCODING %L LC_COLLATE %L LC_CTYPE %L', :'scratch', :'user', pg_encoding_to_char(encoding), datcollate, datctype) FROM pg_database WHERE datname = :'db' \gexec
SELECT format('ALTER DATABASE %I SET %s TO %L', :'scratch', split_part(s, '=', 1), substr(s, strpos(s, '=') + 1)) FROM pg_db_role_setting r CROSS JOIN LATERAL unnest(r.setconfig) AS s WHERE r.setrole = 0 AND r.setdatabase = (SELECT oid FROM pg_database WHERE datname = :'db') \gexec
SQL"#;

pub fn pg_create_scratch(compose: &Compose, service: &str, swap: &PgSwap) -> Cmd {
    swap.script(compose, service, PG_CREATE_SCRATCH)
}

/// Restores a custom-format dump read from stdin into the (new, empty) database `db`; as [`pg_restore`] but
/// with nothing to drop first.
pub fn pg_restore_into(compose: &Compose, service: &str, user: &str, db: &str) -> Cmd {
    let sh = shell();
    exec(compose, service, false).then(cmd!(
        sh,
        "pg_restore -U {user} -d {db} --no-owner --exit-on-error --single-transaction"
    ))
}

/// The swap. New connections to `db` are refused first; its sessions are ended (up to 10 s, 0.1 s apart: the
/// application's pool reconnects and is refused); then both renames happen in one transaction, so `db` is
/// always either the old database or the restored one.
pub const PG_SWAP: &str = r#"exec psql -X -q -v ON_ERROR_STOP=1 -U "$1" -d "$5" -v db="$2" -v scratch="$3" -v replaced="$4" <<'SQL'
ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS false;
SELECT set_config('drydock.db', :'db', false) AS drydock_db, set_config('drydock.scratch', :'scratch', false) AS drydock_scratch, set_config('drydock.replaced', :'replaced', false) AS drydock_replaced \gset
DO $$
DECLARE
  db text := current_setting('drydock.db');
  scratch text := current_setting('drydock.scratch');
  replaced text := current_setting('drydock.replaced');
BEGIN
  FOR i IN 1..100 LOOP
    PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = db AND pid <> pg_backend_pid();
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = db);
    PERFORM pg_sleep(0.1);
  END LOOP;
  EXECUTE format('ALTER DATABASE %I RENAME TO %I', db, replaced);
  EXECUTE format('ALTER DATABASE %I RENAME TO %I', scratch, db);
END $$;
SQL"#;

pub fn pg_swap(compose: &Compose, service: &str, swap: &PgSwap) -> Cmd {
    swap.script(compose, service, PG_SWAP)
}

/// After the swap: the replaced database goes (the safety backup holds its data).
pub const PG_DROP_REPLACED: &str = r#"exec dropdb -U "$1" --maintenance-db="$5" --if-exists --force "$4""#;

pub fn pg_drop_replaced(compose: &Compose, service: &str, swap: &PgSwap) -> Cmd {
    swap.script(compose, service, PG_DROP_REPLACED)
}

/// After a failed restore into the new database: drop it.
pub const PG_DROP_SCRATCH: &str = r#"exec dropdb -U "$1" --maintenance-db="$5" --if-exists --force "$3""#;

pub fn pg_drop_scratch(compose: &Compose, service: &str, swap: &PgSwap) -> Cmd {
    swap.script(compose, service, PG_DROP_SCRATCH)
}

/// After a failed swap: `db` (still the old database) accepts connections again, and the new one is dropped.
pub const PG_UNDO: &str = r#"exec psql -X -q -v ON_ERROR_STOP=1 -U "$1" -d "$5" -v db="$2" -v scratch="$3" <<'SQL'
SET client_min_messages = warning;
ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS true;
DROP DATABASE IF EXISTS :"scratch" WITH (FORCE);
SQL"#;

pub fn pg_undo(compose: &Compose, service: &str, swap: &PgSwap) -> Cmd {
    swap.script(compose, service, PG_UNDO)
}

/// `psql` on the application database: a session on a terminal, or a one-off with the given arguments.
pub fn psql(compose: &Compose, service: &str, t: &PgTarget, extra: &[String], tty: bool) -> Cmd {
    let sh = shell();
    let (user, db) = (&t.user, &t.db);
    // A script must stop at its first error and say so through the exit status.
    let stop_on_error: &[&str] = if tty { &[] } else { &["-v", "ON_ERROR_STOP=1"] };
    exec(compose, service, tty).then(cmd!(sh, "psql -U {user} -d {db} {stop_on_error...} {extra...}"))
}

/// Drops and recreates the application database (terminating its connections), owned by the same user.
pub fn pg_reset(compose: &Compose, service: &str, t: &PgTarget) -> [Cmd; 2] {
    let sh = shell();
    let (user, db) = (&t.user, &t.db);
    [
        exec(compose, service, false).then(cmd!(sh, "dropdb -U {user} --if-exists --force {db}")),
        exec(compose, service, false).then(cmd!(sh, "createdb -U {user} -O {user} {db}")),
    ]
}

/// Runs a program in the Redis container with `REDISCLI_AUTH` taken from the container's `REDIS_PASSWORD`.
pub const REDIS_AUTH: &str =
    r#"if [ -n "$REDIS_PASSWORD" ]; then export REDISCLI_AUTH="$REDIS_PASSWORD"; fi; exec "$0" "$@""#;

pub fn redis_cli(compose: &Compose, service: &str, args: &[String], tty: bool) -> Cmd {
    let sh = shell();
    exec(compose, service, tty).then(cmd!(sh, "sh -c {REDIS_AUTH} redis-cli {args...}"))
}

/// Facts of a Redis server: the client version, INFO server + keyspace, and where it keeps its RDB.
pub const REDIS_FACTS: &str = r#"if [ -n "$REDIS_PASSWORD" ]; then export REDISCLI_AUTH="$REDIS_PASSWORD"; fi
redis-cli ping | grep -q PONG || { echo "Redis is not answering PING" >&2; exit 1; }
redis-cli --version
redis-cli INFO server | tr -d '\r' | grep '^redis_version:'
redis-cli INFO keyspace | tr -d '\r' | grep '^db'
echo '@config'
redis-cli CONFIG GET dir
redis-cli CONFIG GET dbfilename
redis-cli CONFIG GET appendonly"#;

pub fn redis_facts(compose: &Compose, service: &str) -> Cmd {
    let sh = shell();
    exec(compose, service, false).then(cmd!(sh, "sh -c {REDIS_FACTS}"))
}

/// A consistent RDB snapshot on stdout: BGSAVE (scheduled after one already running, so the snapshot is
/// taken after this moment), wait until the save counter moves and the save succeeded, then stream the file.
/// The RDB is written under a temporary name and renamed by Redis, so the file read is always whole (and an
/// open file survives a later rename). Faster than `redis-cli --rdb`, which waits out
/// `repl-diskless-sync-delay` (5 s), and needs no SYNC permission.
pub const REDIS_SNAPSHOT: &str = r#"if [ -n "$REDIS_PASSWORD" ]; then export REDISCLI_AUTH="$REDIS_PASSWORD"; fi
info() { redis-cli INFO persistence | tr -d '\r' | sed -n "s/^$1://p"; }
saves=$(info rdb_saves); busy=$(info rdb_bgsave_in_progress)
[ -n "$saves" ] || { echo "cannot read INFO persistence (is the password right?)" >&2; exit 1; }
want=$((saves + 1 + busy))
redis-cli BGSAVE SCHEDULE >/dev/null || exit 1
i=0
while [ "$(info rdb_saves)" -lt "$want" ] || [ "$(info rdb_bgsave_in_progress)" != 0 ]; do
  i=$((i + 1)); [ "$i" -le 6000 ] || { echo "BGSAVE did not finish within 10 minutes" >&2; exit 1; }
  sleep 0.1
done
[ "$(info rdb_last_bgsave_status)" = ok ] || { echo "BGSAVE failed: see the redis log" >&2; exit 1; }
dir=$(redis-cli CONFIG GET dir | tr -d '\r' | sed -n 2p); file=$(redis-cli CONFIG GET dbfilename | tr -d '\r' | sed -n 2p)
exec cat "$dir/$file""#;

pub fn redis_rdb(compose: &Compose, service: &str) -> Cmd {
    let sh = shell();
    exec(compose, service, false).then(cmd!(sh, "sh -c {REDIS_SNAPSHOT}"))
}

/// Writes the RDB read from stdin into the stopped service's data volume (a one-off container of the same
/// service, so the same image and volume): first beside it, then renamed over the old one, owned like the
/// directory. `$1` = the data directory, `$2` = the RDB file name.
pub const REDIS_PLACE_RDB: &str = r#"set -e
cat > "$1/.drydock-restore.partial"
redis-check-rdb "$1/.drydock-restore.partial" >/dev/null || { echo "redis-check-rdb rejected the backup" >&2; rm -f "$1/.drydock-restore.partial"; exit 1; }
chown "$(stat -c %u:%g "$1")" "$1/.drydock-restore.partial"
mv -f "$1/.drydock-restore.partial" "$1/$2""#;

pub fn redis_place_rdb(compose: &Compose, service: &str, dir: &str, file: &str) -> Cmd {
    let sh = shell();
    compose.cmd(cmd!(
        sh,
        "run --rm --no-deps -T --entrypoint sh {service} -c {REDIS_PLACE_RDB} sh {dir} {file}"
    ))
}

/// MongoDB credentials come from the official image's variables inside the container.
pub const MONGO_AUTH: &str = r#"set -- "$0" "$@"; if [ -n "$MONGO_INITDB_ROOT_USERNAME" ]; then set -- "$@" --username "$MONGO_INITDB_ROOT_USERNAME" --password "$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase admin; fi; exec "$@""#;

pub fn mongodump(compose: &Compose, service: &str) -> Cmd {
    let sh = shell();
    exec(compose, service, false).then(cmd!(sh, "sh -c {MONGO_AUTH} mongodump --archive --gzip"))
}

pub fn mongorestore(compose: &Compose, service: &str) -> Cmd {
    let sh = shell();
    exec(compose, service, false).then(cmd!(
        sh,
        "sh -c {MONGO_AUTH} mongorestore --archive --gzip --drop --stopOnError"
    ))
}

pub fn mongosh(compose: &Compose, service: &str, extra: &[String], tty: bool) -> Cmd {
    let sh = shell();
    exec(compose, service, tty).then(cmd!(sh, "sh -c {MONGO_AUTH} mongosh --quiet {extra...}"))
}

/// A throwaway container for `backups verify`: same image, no volume, no published port, removed after.
/// Labelled as a verify container and with the project whose backups it checks, so a look for leftovers can
/// tell its own from those of another run on the same engine.
pub fn throwaway(
    image: &str,
    name: &str,
    project: &str,
    env: &[(&str, &str)],
    entrypoint: Option<&str>,
    args: &[&str],
) -> Cmd {
    let sh = shell();
    let env = env.iter().flat_map(|(k, v)| ["-e".to_string(), format!("{k}={v}")]);
    let entrypoint = entrypoint.iter().flat_map(|ep| ["--entrypoint", ep]);
    let project = format!("{VERIFY_PROJECT_LABEL}={project}");
    Cmd::from(cmd!(
        sh,
        "docker run -d --rm --name {name} --label drydock.backup-verify=1 --label {project} {env...} {entrypoint...} {image} {args...}"
    ))
}

/// The label naming the project whose backups a throwaway verify container checks.
pub const VERIFY_PROJECT_LABEL: &str = "drydock.backup-verify.project";

#[cfg(test)]
mod tests {
    use super::*;

    fn compose() -> Compose {
        Compose {
            project: "dd".into(),
            files: vec!["/r/c.yaml".into()],
            env_file: Some("/r/.env".into()),
            env: vec![],
            profiles: vec![],
        }
    }

    const PRE: [&str; 8] = [
        "docker",
        "compose",
        "-p",
        "dd",
        "-f",
        "/r/c.yaml",
        "--env-file",
        "/r/.env",
    ];

    fn tail(cmd: &Cmd) -> Vec<&str> {
        let argv = cmd.argv();
        assert_eq!(argv[..8], PRE, "{argv:?}");
        argv[8..].to_vec()
    }

    fn target() -> PgTarget {
        PgTarget {
            user: "app".into(),
            db: "appdb".into(),
        }
    }

    #[test]
    fn a_restore_swaps_through_two_fixed_names_and_refuses_names_postgres_would_truncate() {
        let swap = PgSwap::new(&target()).unwrap();
        assert_eq!(
            (swap.scratch.as_str(), swap.replaced.as_str(), swap.maintenance.as_str()),
            ("appdb__drydock_restore", "appdb__drydock_replaced", "postgres")
        );
        let on_postgres = PgSwap::new(&PgTarget {
            user: "app".into(),
            db: "postgres".into(),
        })
        .unwrap();
        assert_eq!(
            on_postgres.maintenance, "template1",
            "the swap never connects to a database it renames"
        );
        let long = PgTarget {
            user: "app".into(),
            db: "d".repeat(46),
        };
        let err = PgSwap::new(&long).unwrap_err().to_string();
        assert!(err.contains("too long") && err.contains("nothing was changed"), "{err}");
        assert!(
            PgSwap::new(&PgTarget {
                db: "d".repeat(45),
                ..long
            })
            .is_ok()
        );
        // Every step is a script with the names as arguments (no SQL is built from them by string).
        for cmd in [
            pg_create_scratch(&compose(), "postgres", &swap),
            pg_swap(&compose(), "postgres", &swap),
            pg_undo(&compose(), "postgres", &swap),
            pg_drop_scratch(&compose(), "postgres", &swap),
            pg_drop_replaced(&compose(), "postgres", &swap),
        ] {
            let argv = tail(&cmd);
            assert_eq!(argv[..5], ["exec", "-T", "postgres", "sh", "-c"]);
            assert_eq!(
                argv[6..],
                [
                    "sh",
                    "app",
                    "appdb",
                    "appdb__drydock_restore",
                    "appdb__drydock_replaced",
                    "postgres"
                ]
            );
        }
        assert_eq!(
            tail(&pg_restore_into(
                &compose(),
                "postgres",
                "app",
                "appdb__drydock_restore"
            ))[3..],
            [
                "pg_restore",
                "-U",
                "app",
                "-d",
                "appdb__drydock_restore",
                "--no-owner",
                "--exit-on-error",
                "--single-transaction"
            ]
        );
    }

    #[test]
    fn the_swap_refuses_new_sessions_first_and_renames_in_one_transaction() {
        let at = |needle: &str| {
            PG_SWAP
                .find(needle)
                .unwrap_or_else(|| panic!("{needle} not in the swap"))
        };
        let refuse = at(r#"ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS false"#);
        let block = at("DO $$");
        let old = at("RENAME TO %I', db, replaced");
        let new = at("RENAME TO %I', scratch, db");
        let end = at("END $$;");
        assert!(refuse < block && block < old && old < new && new < end);
        assert_eq!(PG_SWAP.matches("RENAME").count(), 2, "both renames in the one DO block");
        assert!(PG_SWAP.contains("ON_ERROR_STOP=1") && PG_CREATE_SCRATCH.contains("ON_ERROR_STOP=1"));
        assert!(PG_UNDO.contains(r#"ALTER DATABASE :"db" WITH ALLOW_CONNECTIONS true"#));
        assert!(PG_DROP_REPLACED.ends_with(r#"--force "$4""#) && PG_DROP_SCRATCH.ends_with(r#"--force "$3""#));
        // A leftover of an interrupted restore never blocks the next one.
        assert!(
            PG_CREATE_SCRATCH.find(r#"DROP DATABASE IF EXISTS :"scratch""#) < PG_CREATE_SCRATCH.find("CREATE DATABASE")
        );
    }

    #[test]
    fn pg_dump_streams_custom_format_with_the_best_compression() {
        assert_eq!(
            tail(&pg_dump(&compose(), "postgres", &target(), "zstd:1")),
            [
                "exec",
                "-T",
                "postgres",
                "pg_dump",
                "-U",
                "app",
                "-d",
                "appdb",
                "--format=custom",
                "--compress=zstd:1"
            ]
        );
        assert_eq!(
            tail(&pg_dump(&compose(), "postgres", &target(), "default")),
            [
                "exec",
                "-T",
                "postgres",
                "pg_dump",
                "-U",
                "app",
                "-d",
                "appdb",
                "--format=custom"
            ]
        );
        assert_eq!(
            tail(&pg_dumpall_globals(&compose(), "postgres", &target())),
            ["exec", "-T", "postgres", "pg_dumpall", "-U", "app", "--globals-only"]
        );
    }

    #[test]
    fn pg_restore_is_clean_ownerless_and_stops_at_the_first_error() {
        assert_eq!(
            tail(&pg_restore(&compose(), "db", &target())),
            [
                "exec",
                "-T",
                "db",
                "pg_restore",
                "-U",
                "app",
                "-d",
                "appdb",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--exit-on-error",
                "--single-transaction"
            ]
        );
    }

    #[test]
    fn pg_facts_probe_checks_readiness_and_zstd() {
        let cmd = pg_facts(&compose(), "postgres");
        assert_eq!(tail(&cmd)[..5], ["exec", "-T", "postgres", "sh", "-c"]);
        assert!(PG_FACTS.contains("pg_isready -q -t 10"));
        assert!(PG_FACTS.contains("--compress=zstd:1"));
        assert!(!cmd.display().contains("PASSWORD"), "no password is needed or passed");
    }

    #[test]
    fn psql_interactive_and_scripted() {
        let extra = vec!["-c".to_string(), "select 1".to_string()];
        assert_eq!(
            tail(&psql(&compose(), "postgres", &target(), &extra, false)),
            [
                "exec",
                "-T",
                "postgres",
                "psql",
                "-U",
                "app",
                "-d",
                "appdb",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "select 1"
            ]
        );
        assert_eq!(
            tail(&psql(&compose(), "postgres", &target(), &[], true)),
            ["exec", "postgres", "psql", "-U", "app", "-d", "appdb"]
        );
    }

    #[test]
    fn db_reset_drops_with_force_and_recreates() {
        let [drop, create] = pg_reset(&compose(), "postgres", &target());
        assert_eq!(
            tail(&drop),
            [
                "exec",
                "-T",
                "postgres",
                "dropdb",
                "-U",
                "app",
                "--if-exists",
                "--force",
                "appdb"
            ]
        );
        assert_eq!(
            tail(&create),
            ["exec", "-T", "postgres", "createdb", "-U", "app", "-O", "app", "appdb"]
        );
    }

    #[test]
    fn redis_commands_take_the_password_from_the_container() {
        let cmd = redis_rdb(&compose(), "redis");
        assert_eq!(tail(&cmd), ["exec", "-T", "redis", "sh", "-c", REDIS_SNAPSHOT]);
        assert!(REDIS_SNAPSHOT.contains("BGSAVE SCHEDULE") && REDIS_SNAPSHOT.contains("rdb_last_bgsave_status"));
        assert!(REDIS_AUTH.contains("REDISCLI_AUTH=\"$REDIS_PASSWORD\""));
        assert!(!cmd.display().contains("-a "), "never -a <password>");
        let shell = redis_cli(&compose(), "redis", &[], true);
        assert_eq!(tail(&shell), ["exec", "redis", "sh", "-c", REDIS_AUTH, "redis-cli"]);
        let facts = redis_facts(&compose(), "redis");
        assert_eq!(tail(&facts)[..5], ["exec", "-T", "redis", "sh", "-c"]);
    }

    #[test]
    fn redis_restore_writes_into_the_volume_with_a_one_off_container() {
        let cmd = redis_place_rdb(&compose(), "redis", "/data", "dump.rdb");
        assert_eq!(
            tail(&cmd),
            [
                "run",
                "--rm",
                "--no-deps",
                "-T",
                "--entrypoint",
                "sh",
                "redis",
                "-c",
                REDIS_PLACE_RDB,
                "sh",
                "/data",
                "dump.rdb"
            ]
        );
        assert!(REDIS_PLACE_RDB.contains("redis-check-rdb"));
        assert!(
            REDIS_PLACE_RDB.contains("mv -f"),
            "renamed over the old file only when complete"
        );
    }

    #[test]
    fn mongo_plans() {
        assert_eq!(
            tail(&mongodump(&compose(), "mongo")),
            [
                "exec",
                "-T",
                "mongo",
                "sh",
                "-c",
                MONGO_AUTH,
                "mongodump",
                "--archive",
                "--gzip"
            ]
        );
        assert_eq!(
            tail(&mongorestore(&compose(), "mongo")),
            [
                "exec",
                "-T",
                "mongo",
                "sh",
                "-c",
                MONGO_AUTH,
                "mongorestore",
                "--archive",
                "--gzip",
                "--drop",
                "--stopOnError"
            ]
        );
        let extra = vec!["--eval".to_string(), "db.runCommand({ping: 1})".to_string()];
        assert_eq!(
            tail(&mongosh(&compose(), "mongo", &extra, false)),
            [
                "exec",
                "-T",
                "mongo",
                "sh",
                "-c",
                MONGO_AUTH,
                "mongosh",
                "--quiet",
                "--eval",
                "db.runCommand({ping: 1})"
            ]
        );
        assert_eq!(tail(&mongosh(&compose(), "mongo", &[], true))[..2], ["exec", "mongo"]);
        assert!(MONGO_AUTH.contains("MONGO_INITDB_ROOT_PASSWORD"));
    }

    #[test]
    fn throwaway_container_is_labelled_and_removed() {
        let cmd = throwaway("img:1", "v1", "shop", &[("A", "b")], Some("sleep"), &["infinity"]);
        assert_eq!(
            cmd.argv(),
            [
                "docker",
                "run",
                "-d",
                "--rm",
                "--name",
                "v1",
                "--label",
                "drydock.backup-verify=1",
                "--label",
                "drydock.backup-verify.project=shop",
                "-e",
                "A=b",
                "--entrypoint",
                "sleep",
                "img:1",
                "infinity"
            ]
        );
    }
}
