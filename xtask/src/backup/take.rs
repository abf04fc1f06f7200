//! Taking a backup: stream every part into its temporary file, check it, commit them all, write the manifest
//! last (DESIGN.md, "Backups").

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::backup::manifest::{FORMAT, FORMAT_ENCRYPTED, FileEntry, Manifest, Plain, Sanity};
use crate::backup::name::{BackupName, Timestamp};
use crate::backup::{Engine, PgFacts, RedisFacts, ask, lock_service, plans, require_mongo, service_dir};
use crate::backup::{encrypt, store};
use crate::cmd::{Cmd, cmd, shell};
use crate::compose::{Compose, git_revision};
use crate::config::Env;
use crate::context::Ctx;
use crate::files::{self, AtomicFile, PARTIAL_SUFFIX};
use crate::runner::Streamed;
use crate::term::Progress;
use crate::term::human_bytes;

/// A finished backup.
#[derive(Debug, Clone)]
pub struct Taken {
    pub name: BackupName,
    pub manifest_path: PathBuf,
    pub manifest: Manifest,
}

/// One file of a backup and the command that produces it.
struct Part {
    role: &'static str,
    ext: &'static str,
    cmd: Cmd,
    /// Checks the first bytes (the data must look like what the engine writes).
    check: fn(&[u8]) -> Result<()>,
}

/// One part streamed into its partial file: the plaintext as the dump produced it, and what was stored when
/// it was encrypted on the way.
struct Written<'a> {
    file: AtomicFile,
    part: &'a Part,
    streamed: Streamed,
    stored: Option<Streamed>,
    file_name: String,
}

/// What the engine-specific code knows about the backup besides its files.
struct Meta {
    engine: Engine,
    service: String,
    database: String,
    server_version: String,
    tool_version: String,
    compression: String,
    sanity: Sanity,
    reason: Option<String>,
}

pub fn backup(ctx: &Ctx, engine: Engine, env: Env) -> Result<()> {
    let compose = crate::prod::stack_compose(ctx, env)?;
    if engine == Engine::Mongodb {
        require_mongo(ctx, &compose)?;
    }
    let service = engine.service(ctx);
    let _lock = lock_service(ctx, &service)?;
    let taken = take(ctx, &compose, engine, None)?;
    // The off-site copy right away when configured; the local backup stands whatever happens to it.
    if let (Some(taken), Some(remote)) = (taken, &ctx.config.backups.remote)
        && remote.push_after_backup()
    {
        let store = crate::backup::offsite::Store::open(ctx)?;
        let found = store::Found {
            name: taken.name.clone(),
            dir: service_dir(ctx, &service),
            manifest: Ok(taken.manifest.clone()),
        };
        crate::backup::remote::push_one(ctx, &store, &service, &found).with_context(|| {
            format!(
                "the backup {} was written, but its off-site copy failed (retry with `cargo xtask backups push`)",
                taken.manifest_path.display()
            )
        })?;
    }
    Ok(())
}

/// `backup-all`: every engine the stack has (MongoDB only when it is part of it); all are attempted, and
/// the command fails if any failed.
pub fn all(ctx: &Ctx, env: Env) -> Result<()> {
    let compose = crate::prod::stack_compose(ctx, env)?;
    let mut failed = Vec::new();
    for engine in Engine::ALL {
        if engine == Engine::Mongodb
            && let Err(why) = require_mongo(ctx, &compose)
        {
            ctx.say(&format!(
                "mongodb: skipped ({})",
                format!("{why:#}").lines().next().unwrap_or_default()
            ));
            continue;
        }
        if let Err(err) = backup(ctx, engine, env) {
            eprintln!(
                "{}",
                crate::term::Style::stderr().red(&format!("backup of {} failed: {err:#}", engine.name()))
            );
            failed.push(engine.name());
        }
    }
    if !failed.is_empty() {
        bail!(
            "backup-all: {} failed (see above); earlier backups are untouched",
            failed.join(", ")
        );
    }
    Ok(())
}

/// Takes one backup; the caller holds the service's lock (restores take a safety backup under theirs).
pub fn take(ctx: &Ctx, compose: &Compose, engine: Engine, reason: Option<String>) -> Result<Option<Taken>> {
    let service = engine.service(ctx);
    let (parts, meta) = match engine {
        Engine::Postgres => postgres_parts(ctx, compose, &service, reason)?,
        Engine::Redis => redis_parts(ctx, compose, &service, reason)?,
        Engine::Mongodb => mongo_parts(ctx, compose, &service, reason)?,
    };
    write(ctx, compose, parts, meta)
}

fn postgres_parts(ctx: &Ctx, compose: &Compose, service: &str, reason: Option<String>) -> Result<(Vec<Part>, Meta)> {
    let facts = match ask(ctx, compose, service, &plans::pg_facts(compose, service))? {
        Some(text) => PgFacts::parse(&text)?,
        None => PgFacts::placeholder(),
    };
    if facts.compression != "zstd:1" && !ctx.run.dry_run {
        ctx.say("this pg_dump has no zstd support: using its default compression (slower, larger)");
    }
    let parts = vec![
        Part {
            role: "dump",
            ext: Engine::Postgres.ext(),
            cmd: plans::pg_dump(compose, service, &facts.target, &facts.compression),
            check: |head| Engine::Postgres.check_magic(head),
        },
        Part {
            role: "globals",
            ext: "globals.sql",
            cmd: plans::pg_dumpall_globals(compose, service, &facts.target),
            check: |head| {
                if head.starts_with(b"--") {
                    Ok(())
                } else {
                    bail!("pg_dumpall wrote no SQL")
                }
            },
        },
    ];
    let compression = if facts.compression == "default" {
        "gzip (pg_dump default)".to_string()
    } else {
        facts.compression.clone()
    };
    let meta = Meta {
        engine: Engine::Postgres,
        service: service.to_string(),
        database: facts.target.db.clone(),
        server_version: facts.server_version,
        tool_version: facts.tool_version,
        compression,
        sanity: Sanity {
            tables: Some(facts.tables),
            keys: None,
        },
        reason,
    };
    Ok((parts, meta))
}

fn redis_parts(ctx: &Ctx, compose: &Compose, service: &str, reason: Option<String>) -> Result<(Vec<Part>, Meta)> {
    let facts = match ask(ctx, compose, service, &plans::redis_facts(compose, service))? {
        Some(text) => RedisFacts::parse(&text)?,
        None => RedisFacts::placeholder(),
    };
    let parts = vec![Part {
        role: "rdb",
        ext: Engine::Redis.ext(),
        cmd: plans::redis_rdb(compose, service),
        check: |head| Engine::Redis.check_magic(head),
    }];
    let meta = Meta {
        engine: Engine::Redis,
        service: service.to_string(),
        database: "all".into(),
        server_version: facts.server_version,
        tool_version: facts.cli_version,
        compression: "rdb (LZF)".into(),
        sanity: Sanity {
            tables: None,
            keys: Some(facts.keys),
        },
        reason,
    };
    Ok((parts, meta))
}

fn mongo_parts(ctx: &Ctx, compose: &Compose, service: &str, reason: Option<String>) -> Result<(Vec<Part>, Meta)> {
    let sh = shell();
    let versions = "mongod --version | head -n 1; mongodump --version | head -n 1";
    let version = ask(
        ctx,
        compose,
        service,
        &compose.cmd(cmd!(sh, "exec -T {service} sh -c {versions}")),
    )?
    .unwrap_or_default();
    let mut lines = version.lines();
    let parts = vec![Part {
        role: "archive",
        ext: Engine::Mongodb.ext(),
        cmd: plans::mongodump(compose, service),
        check: |head| Engine::Mongodb.check_magic(head),
    }];
    let meta = Meta {
        engine: Engine::Mongodb,
        service: service.to_string(),
        database: "all".into(),
        server_version: lines.next().unwrap_or("?").trim().to_string(),
        tool_version: lines.next().unwrap_or("?").trim().to_string(),
        compression: "gzip".into(),
        sanity: Sanity::default(),
        reason,
    };
    Ok((parts, meta))
}

/// Streams every part into its partial file, checks it, then commits them all and writes the manifest.
fn write(ctx: &Ctx, compose: &Compose, parts: Vec<Part>, meta: Meta) -> Result<Option<Taken>> {
    let dir = service_dir(ctx, &meta.service);
    let encryption = ctx.config.backups.encryption.as_ref();
    if encryption.is_some() {
        crate::provision::ensure_tools(ctx, &[crate::provision::Tool::Age])?;
    }
    // `<stem>.dump.age` when encrypted: the name says what the file is.
    let ext = |part: &Part| match encryption {
        Some(_) => format!("{}.{}", part.ext, encrypt::SUFFIX),
        None => part.ext.to_string(),
    };
    if ctx.run.dry_run {
        let name = store::fresh_name(&dir, &compose.project, &meta.service);
        for part in &parts {
            let target = dir.join(format!("{}.XXXXXX{PARTIAL_SUFFIX}", name.file(&ext(part))));
            let mut progress = Progress::new("", None, true);
            match encryption {
                Some(e) => {
                    let devnull = std::fs::File::create("/dev/null")?;
                    let mut filter = ctx.run.filter(&encrypt::encrypt_cmd(e), devnull, &target)?;
                    ctx.run.stream_out(&part.cmd, &target, &mut filter, &mut progress)?;
                    filter.finish()?;
                }
                None => {
                    ctx.run
                        .stream_out(&part.cmd, &target, &mut std::io::sink(), &mut progress)?;
                }
            }
        }
        return Ok(None);
    }
    for leftover in store::clean_leftovers(&dir, &meta.service)? {
        ctx.say(&format!("removed {} (left by an interrupted run)", leftover.display()));
    }
    let name = store::fresh_name(&dir, &compose.project, &meta.service);
    ctx.say(&format!(
        "backing up {} ({}) to {}{}",
        meta.service,
        meta.engine.name(),
        dir.join(name.file(&ext(&parts[0]))).display(),
        match encryption {
            Some(e) => format!(", encrypted with age for {}", encrypt::info(e).recipients.join(", ")),
            None => String::new(),
        }
    ));
    let started_at = Timestamp::now();
    let started = Instant::now();
    // All parts stream at the same time (the globals dump is small: it then costs no extra wall time).
    let runner = ctx.run;
    let service = meta.service.clone();
    let results: Vec<Result<Written>> = std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let file_name = name.file(&ext(part));
                let target = dir.join(&file_name);
                let service = service.clone();
                scope.spawn(move || -> Result<Written> {
                    let mut file = AtomicFile::create(&target)?;
                    let partial = file.partial_path().to_path_buf();
                    // One progress line at a time: the main (largest) part's.
                    let mut progress = Progress::new(&format!("{service} {}", part.role), None, runner.quiet || i > 0);
                    let failed = || format!("the {} backup of `{service}` failed; no backup was written", part.role);
                    let (streamed, stored) = match encryption {
                        None => {
                            let streamed = runner
                                .stream_out(&part.cmd, &partial, file.file(), &mut progress)
                                .with_context(failed)?;
                            (streamed, None)
                        }
                        Some(e) => {
                            // dump -> this process (head check, plaintext hash) -> age -> the partial file.
                            let out = file.file().try_clone()?;
                            let mut filter = runner.filter(&encrypt::encrypt_cmd(e), out, &partial)?;
                            let streamed = runner
                                .stream_out(&part.cmd, &partial, &mut filter, &mut progress)
                                .with_context(failed)?;
                            let stored = filter.finish().with_context(failed)?;
                            (streamed, Some(stored))
                        }
                    };
                    if streamed.bytes == 0 {
                        bail!(
                            "the {} backup of `{service}` produced no data; no backup was written",
                            part.role
                        );
                    }
                    (part.check)(&streamed.head).with_context(|| {
                        format!(
                            "the {} backup of `{service}` is not valid; no backup was written",
                            part.role
                        )
                    })?;
                    Ok(Written {
                        file,
                        part,
                        streamed,
                        stored,
                        file_name,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a backup thread panicked")))
            })
            .collect()
    });
    // Any failure: every partial is removed when the AtomicFiles drop.
    let mut written = Vec::new();
    for result in results {
        written.push(result?);
    }
    let duration = started.elapsed().as_secs_f64();
    let files: Vec<FileEntry> = written
        .iter()
        .map(|w| {
            let stored = w.stored.as_ref().unwrap_or(&w.streamed);
            FileEntry {
                role: w.part.role.to_string(),
                name: w.file_name.clone(),
                size: stored.bytes,
                sha256: stored.sha256.clone(),
                plain: w.stored.as_ref().map(|_| Plain {
                    size: w.streamed.bytes,
                    sha256: w.streamed.sha256.clone(),
                }),
            }
        })
        .collect();
    for w in written {
        w.file.commit()?;
    }
    let manifest = Manifest {
        format: if encryption.is_some() { FORMAT_ENCRYPTED } else { FORMAT },
        engine: meta.engine.name().to_string(),
        project: compose.project.clone(),
        service: meta.service.clone(),
        database: meta.database,
        server_version: meta.server_version,
        tool_version: meta.tool_version,
        written_by: format!("xtask {}", env!("CARGO_PKG_VERSION")),
        git_revision: git_revision(ctx).unwrap_or_else(|| "unknown".into()),
        started_at: started_at.rfc3339(),
        finished_at: Timestamp::now().rfc3339(),
        duration_secs: (duration * 1000.0).round() / 1000.0,
        file: files[0].name.clone(),
        size: files[0].size,
        sha256: files[0].sha256.clone(),
        compression: meta.compression,
        files,
        sanity: meta.sanity,
        reason: meta.reason,
        encryption: encryption.map(encrypt::info),
    };
    let manifest_path = dir.join(name.manifest());
    files::write_new(&manifest_path, manifest.to_json().as_bytes(), 0o600)?;
    // The freshness metric (backups/.metrics/drydock_backup.prom) now shows this backup.
    crate::backup::freshness::refresh_after(ctx, &format!("the backup of {}", meta.service));
    ctx.say(&format!(
        "backup of {} written: {} ({}, sha256 {}…, {:.1} s)",
        meta.service,
        dir.join(&manifest.file).display(),
        human_bytes(manifest.size),
        &manifest.sha256[..12],
        duration
    ));
    Ok(Some(Taken {
        name,
        manifest_path,
        manifest,
    }))
}
