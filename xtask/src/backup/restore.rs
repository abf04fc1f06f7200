//! `restore-postgres`, `restore-redis`, `restore-mongodb`.
//!
//! Order matters: (1) find the backup and its manifest, check it is a backup of this engine and that every
//! file matches its SHA-256 — before anything is touched; (2) check the service is up; (3) ask, naming the
//! target; (4) take the service's lock and a safety backup of the current data; (5) restore with the
//! engine's strict flags; (6) check the result against the manifest. Any failure exits non-zero and says
//! where the safety backup is; nothing reports success after an error. PostgreSQL overlaps (4) and (5): it
//! restores into a new database while the current one is backed up, and swaps only when both succeeded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::backup::manifest::Manifest;
use crate::backup::name::BackupName;
use crate::backup::store::{self, Found};
use crate::backup::{Engine, PgFacts, RedisFacts, ask, lock_service, plans, require_mongo, service_dir};
use crate::backup::{encrypt, remote, take};
use crate::cmd::{Cmd, cmd, shell};
use crate::compose::Compose;
use crate::context::Ctx;
use crate::flags::RestoreArgs;
use crate::term::Progress;
use crate::term::human_bytes;

/// A backup chosen for a restore or a verify, with its manifest read.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The age identity that decrypts it (encrypted backups only; see [`Chosen::decrypt_with`]).
    pub identity: Option<PathBuf>,
}

impl Chosen {
    /// For an encrypted backup: finds the identity (`--identity`, the environment, the config) or says
    /// clearly that there is none, before anything is touched. Plaintext backups need none.
    pub fn decrypt_with(mut self, ctx: &Ctx, flag: Option<&Path>) -> Result<Chosen> {
        if self.manifest.encryption.is_some() {
            crate::provision::ensure_tools(ctx, &[crate::provision::Tool::Age])?;
            self.identity = Some(encrypt::identity(ctx, flag, &self.manifest)?);
        }
        Ok(self)
    }

    /// Streams one of its files into `cmd`'s stdin: the file itself, or `age --decrypt` of it.
    pub fn stream_into(&self, ctx: &Ctx, cmd: &Cmd, file: &Path, progress: &mut Progress) -> Result<u64> {
        match (&self.manifest.encryption, &self.identity) {
            (None, _) => ctx.run.stream_in(cmd, file, progress),
            (Some(_), Some(identity)) => ctx
                .run
                .stream_in_from(cmd, &encrypt::decrypt_cmd(identity, file), progress),
            (Some(_), None) => bail!(
                "{} is encrypted and no identity was chosen to decrypt it (a bug: decrypt_with was not called)",
                file.display()
            ),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join(&self.manifest.file)
    }

    pub fn part(&self, role: &str) -> Option<PathBuf> {
        self.manifest
            .files
            .iter()
            .find(|f| f.role == role)
            .map(|f| self.dir.join(&f.name))
    }
}

/// Finds the manifest of a backup given any of its files.
pub fn open(path: &Path, engine: Engine, service: &str) -> Result<Chosen> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    if !path.exists() {
        bail!(
            "{} does not exist\n  fix: `cargo xtask backups list` shows the backups",
            path.display()
        );
    }
    // The file may belong to another engine's directory: try this service first, then any engine's.
    let services = [
        service.to_string(),
        "postgres".into(),
        "redis".into(),
        "mongo".into(),
        "mongodb".into(),
    ];
    let Some((name, _)) = services.iter().find_map(|s| BackupName::parse(file_name, s)) else {
        bail!(
            "{} is not named like a drydock backup (<project>_<service>_<YYYYMMDDTHHMMSSZ>.<ext>)\n  fix: pass a file from `cargo xtask backups list`",
            path.display()
        );
    };
    let manifest_path = dir.join(name.manifest());
    if !manifest_path.is_file() {
        bail!(
            "{} has no manifest ({} is missing): it is incomplete or was copied without it, so it cannot be trusted",
            path.display(),
            manifest_path.display()
        );
    }
    let manifest = Manifest::read(&manifest_path)?;
    if manifest.engine != engine.name() {
        bail!(
            "{} is a {} backup, not a {} one: refusing to restore it into `{service}`\n  fix: cargo xtask restore-{} {}",
            path.display(),
            manifest.engine,
            engine.name(),
            manifest.engine,
            path.display()
        );
    }
    Ok(Chosen {
        dir,
        manifest,
        identity: None,
    })
}

/// The newest complete backup of a service.
pub fn latest(ctx: &Ctx, engine: Engine, project: &str) -> Result<Chosen> {
    let service = engine.service(ctx);
    let dir = service_dir(ctx, &service);
    let found: Vec<Found> = store::scan(&dir, &service)?;
    // Only this compose project's backups: a CI or bench project's newer backup must never be picked.
    // Safety backups (taken by restores) are skipped, so `--latest` twice restores the same backup twice.
    let regular = |f: &&Found| f.manifest.as_ref().is_ok_and(|m| m.reason.is_none());
    let Some(newest) = found
        .iter()
        .filter(regular)
        .find(|f| f.complete() && f.name.project == project)
    else {
        bail!(
            "there is no complete backup of `{service}` of compose project `{project}` in {}\n  fix: take one with `cargo xtask backup-{}`, or pass a file",
            dir.display(),
            engine.name()
        );
    };
    open(&newest.manifest_path(), engine, &service)
}

/// Checksums and format of every file, before anything is touched.
pub fn check(ctx: &Ctx, engine: Engine, chosen: &Chosen) -> Result<()> {
    ctx.say(&format!(
        "checking {} against its manifest (size, sha256)",
        chosen.data().display()
    ));
    store::check_files(&chosen.dir, &chosen.manifest)?;
    let head = match (&chosen.manifest.encryption, &chosen.identity) {
        (None, _) => {
            let mut head = [0u8; 16];
            let n = std::io::Read::read(&mut std::fs::File::open(chosen.data())?, &mut head)?;
            head[..n].to_vec()
        }
        // The identity must open it (a wrong one fails here, before anything is touched); age's authenticated
        // chunks then refuse any damage while the restore streams.
        // With --dry-run the decryption does not run: there is no plaintext to look at.
        (Some(_), Some(_)) if ctx.run.dry_run => return Ok(()),
        (Some(_), Some(identity)) => ctx
            .run
            .head(&encrypt::decrypt_cmd(identity, &chosen.data()), 16)
            .with_context(|| {
                format!(
                    "{} does not decrypt with the identity {}: it is not one of the backup's recipients ({}); nothing was touched",
                    chosen.data().display(),
                    identity.display(),
                    chosen.manifest.encryption.as_ref().map(|e| e.recipients.join(", ")).unwrap_or_default()
                )
            })?,
        (Some(_), None) => bail!("{} is encrypted and no identity was chosen", chosen.data().display()),
    };
    engine
        .check_magic(&head)
        .with_context(|| format!("{} is damaged", chosen.data().display()))
}

pub fn restore(ctx: &Ctx, engine: Engine, args: &RestoreArgs) -> Result<()> {
    let compose = crate::prod::stack_compose(ctx, args.env)?;
    if engine == Engine::Mongodb {
        require_mongo(ctx, &compose)?;
    }
    let service = engine.service(ctx);
    let chosen = match (&args.from_remote, &args.file) {
        (Some(pick), _) => {
            let pick = Some(pick.as_str()).filter(|p| !p.is_empty());
            match remote::fetch(ctx, engine, &compose.project, pick)? {
                Some(manifest) => open(&manifest, engine, &service)?,
                None => return Ok(()), // --dry-run
            }
        }
        (None, Some(path)) => open(path, engine, &service)?,
        (None, None) => latest(ctx, engine, &compose.project)?,
    }
    .decrypt_with(ctx, args.identity.as_deref())?;
    check(ctx, engine, &chosen)?;
    match engine {
        Engine::Postgres => postgres(ctx, &compose, &service, &chosen),
        Engine::Redis => redis(ctx, &compose, &service, &chosen),
        Engine::Mongodb => mongo(ctx, &compose, &service, &chosen),
    }
}

fn taken_from(chosen: &Chosen) -> String {
    format!(
        "{} (taken {}, {})",
        chosen.data().display(),
        chosen.manifest.started_at,
        human_bytes(chosen.manifest.size)
    )
}

/// Takes the safety backup (the caller holds the lock); returns its path.
fn take_safety(ctx: &Ctx, compose: &Compose, engine: Engine, chosen: &Chosen) -> Result<String> {
    let reason = format!("safety backup before restoring {}", chosen.manifest.file);
    let taken = take::take(ctx, compose, engine, Some(reason))?;
    Ok(taken
        .map(|t| t.manifest_path.with_file_name(&t.manifest.file).display().to_string())
        .unwrap_or_default())
}

/// Takes the lock and the safety backup; returns the lock guard and the safety backup's path.
fn safety_backup(
    ctx: &Ctx,
    compose: &Compose,
    engine: Engine,
    chosen: &Chosen,
) -> Result<(Option<store::ServiceLock>, String)> {
    let lock = lock_service(ctx, &engine.service(ctx))?;
    ctx.say(&format!(
        "safety backup of the current `{}` data first",
        engine.service(ctx)
    ));
    let path = take_safety(ctx, compose, engine, chosen)
        .context("the safety backup failed, so nothing was restored (the current data is untouched)")?;
    Ok((lock, path))
}

/// PostgreSQL is restored into a new database while the safety backup of the current one is taken (the two
/// overlap: the current database is only read until the swap), then swapped in by two renames in one
/// transaction. Any failure before the swap leaves the current database untouched and drops the new one.
fn postgres(ctx: &Ctx, compose: &Compose, service: &str, chosen: &Chosen) -> Result<()> {
    let facts = match ask(ctx, compose, service, &plans::pg_facts(compose, service))? {
        Some(text) => PgFacts::parse(&text)?,
        None => PgFacts::placeholder(),
    };
    let swap = plans::PgSwap::new(&facts.target)?;
    let db = &swap.db;
    ctx.confirm(&format!(
        "replace database `{db}` of service `{service}` (compose project `{}`) with the backup {}",
        compose.project,
        taken_from(chosen)
    ))?;
    let _lock = lock_service(ctx, service)?;
    ctx.run
        .run(&plans::pg_create_scratch(compose, service, &swap))
        .context("could not create the database to restore into: nothing was changed")?;
    ctx.say(&format!(
        "restoring into the new database `{}` while the safety backup of `{db}` is taken (`{db}` is only read until the swap)",
        swap.scratch
    ));
    let started = Instant::now();
    let restore = || {
        let mut progress = Progress::new("pg_restore", Some(chosen.manifest.size), ctx.run.quiet);
        let into = plans::pg_restore_into(compose, service, &swap.user, &swap.scratch);
        chosen.stream_into(ctx, &into, &chosen.data(), &mut progress)
    };
    let (restored, safety) = if ctx.run.dry_run {
        (restore(), take_safety(ctx, compose, Engine::Postgres, chosen))
    } else {
        std::thread::scope(|scope| {
            // The safety backup says nothing while it runs (one progress line at a time: the restore's); its
            // thread owns its own run context.
            let quiet = ctx.quiet();
            let safety = scope.spawn(move || take_safety(&quiet, compose, Engine::Postgres, chosen));
            let restored = restore();
            let safety = safety
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the safety backup's thread panicked")));
            (restored, safety)
        })
    };
    let failed = match (&restored, &safety) {
        (Ok(_), Ok(_)) => None,
        (Err(restore), Err(safety)) => Some(format!(
            "the restore into a new database failed ({restore:#}), and so did the safety backup ({safety:#}): database `{db}` was never touched"
        )),
        (Ok(_), Err(err)) => Some(format!(
            "the safety backup failed ({err:#}), so nothing was restored: database `{db}` is untouched"
        )),
        (Err(err), Ok(path)) => Some(format!(
            "the restore into a new database failed ({err:#}): database `{db}` was never touched; safety backup: {path}"
        )),
    };
    if let Some(why) = failed {
        let dropped = ctx.run.run(&plans::pg_drop_scratch(compose, service, &swap));
        let leftover = match dropped {
            Ok(_) => String::new(),
            Err(err) => format!(
                " (the new database `{}` could not be dropped: {err:#}; the next restore drops it)",
                swap.scratch
            ),
        };
        bail!("{why}{leftover}");
    }
    let safety = safety.unwrap_or_default();
    if let Err(err) = ctx.run.run(&plans::pg_swap(compose, service, &swap)) {
        let undone = match ctx.run.run(&plans::pg_undo(compose, service, &swap)) {
            Ok(_) => String::new(),
            Err(undo) => format!(
                "; undoing it failed too ({undo:#}): run `ALTER DATABASE \"{db}\" WITH ALLOW_CONNECTIONS true` and drop `{}`",
                swap.scratch
            ),
        };
        bail!(
            "the swap failed ({err:#}), so nothing was restored: database `{db}` is as it was{undone}; safety backup: {safety}"
        );
    }
    // The restore step: into the new database and swapped in (what `backups bench` compares with the raw
    // pipe); the check below is its own.
    let restored_in = started.elapsed().as_secs_f64();
    if let Err(err) = ctx.run.run(&plans::pg_drop_replaced(compose, service, &swap)) {
        ctx.say(&format!(
            "note: the restore is complete, but the replaced database `{}` could not be dropped ({err:#}): drop it when you no longer need it",
            swap.replaced
        ));
    }
    if ctx.run.dry_run {
        return Ok(());
    }
    let after = ask(ctx, compose, service, &plans::pg_facts(compose, service))?
        .map(|t| PgFacts::parse(&t))
        .transpose()?;
    let tables = after.map(|f| f.tables).unwrap_or_default();
    let expected = chosen.manifest.sanity.tables.unwrap_or(0);
    if tables < expected {
        bail!(
            "after the restore database `{db}` has {tables} tables but the backup had {expected}: check it; safety backup: {safety}"
        );
    }
    ctx.say(&format!(
        "restored database `{db}` from {} in {restored_in:.1} s ({tables} tables); safety backup: {safety}",
        chosen.manifest.file
    ));
    Ok(())
}

fn redis(ctx: &Ctx, compose: &Compose, service: &str, chosen: &Chosen) -> Result<()> {
    let facts = match ask(ctx, compose, service, &plans::redis_facts(compose, service))? {
        Some(text) => RedisFacts::parse(&text)?,
        None => RedisFacts::placeholder(),
    };
    if facts.appendonly {
        bail!(
            "`{service}` runs with appendonly yes: on start Redis would load its AOF and ignore the restored RDB\n  fix: restore with appendonly no (as infra/compose/compose.yaml configures it), then re-enable it with CONFIG SET appendonly yes"
        );
    }
    ctx.confirm(&format!(
        "replace ALL data of Redis service `{service}` (compose project `{}`) with the backup {}; Redis is stopped meanwhile",
        compose.project,
        taken_from(chosen)
    ))?;
    let (_lock, safety) = safety_backup(ctx, compose, Engine::Redis, chosen)?;
    // Stop first: on shutdown Redis saves its RDB, which would overwrite a file placed earlier.
    let sh = shell();
    ctx.run.run(&compose.cmd(cmd!(sh, "stop {service}")))?;
    let mut progress = Progress::new("rdb", Some(chosen.manifest.size), ctx.run.quiet);
    let placed = chosen.stream_into(
        ctx,
        &plans::redis_place_rdb(compose, service, &facts.dir, &facts.dbfilename),
        &chosen.data(),
        &mut progress,
    );
    // Start again whatever happened: after a failure the old data is still in place.
    let started = ctx.run.run(&compose.cmd(cmd!(sh, "start {service}")));
    placed.with_context(|| {
        format!("the restore failed before the data was replaced: `{service}` keeps its data; safety backup: {safety}")
    })?;
    started.with_context(|| format!("`{service}` did not start after the restore; safety backup: {safety}"))?;
    if ctx.run.dry_run {
        return Ok(());
    }
    let after = wait_for_redis(ctx, compose, service)?;
    let expected = chosen.manifest.sanity.keys.unwrap_or(0);
    if after.keys == 0 && expected > 0 {
        bail!(
            "after the restore `{service}` has no keys but the backup had {expected}: check it; safety backup: {safety}"
        );
    }
    if after.keys != expected {
        ctx.say(&format!(
            "note: {} keys now, {expected} counted when the backup was taken (keys written or expired meanwhile)",
            after.keys
        ));
    }
    ctx.say(&format!(
        "restored `{service}` from {} ({} keys); safety backup: {safety}",
        chosen.manifest.file, after.keys
    ));
    Ok(())
}

/// Redis answers LOADING while it reads a large RDB: wait (bounded) until it answers normally.
fn wait_for_redis(ctx: &Ctx, compose: &Compose, service: &str) -> Result<RedisFacts> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match ask(ctx, compose, service, &plans::redis_facts(compose, service)) {
            Ok(Some(text)) => return RedisFacts::parse(&text),
            Ok(None) => return Ok(RedisFacts::placeholder()),
            Err(err) if Instant::now() > deadline => {
                return Err(err.context(format!("`{service}` did not answer within 120 s after the restore")));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn mongo(ctx: &Ctx, compose: &Compose, service: &str, chosen: &Chosen) -> Result<()> {
    ctx.confirm(&format!(
        "replace the collections of MongoDB service `{service}` (compose project `{}`) with the backup {} (--drop)",
        compose.project,
        taken_from(chosen)
    ))?;
    let (_lock, safety) = safety_backup(ctx, compose, Engine::Mongodb, chosen)?;
    let mut progress = Progress::new("mongorestore", Some(chosen.manifest.size), ctx.run.quiet);
    chosen
        .stream_into(
            ctx,
            &plans::mongorestore(compose, service),
            &chosen.data(),
            &mut progress,
        )
        .with_context(|| format!("the restore of `{service}` failed; safety backup: {safety}"))?;
    ctx.say(&format!(
        "restored `{service}` from {}; safety backup: {safety}",
        chosen.manifest.file
    ));
    Ok(())
}
