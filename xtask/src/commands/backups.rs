//! `backups list | push | verify | prune | bench | schedule`: managing what is in `backups/` and its off-site
//! copies.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::backup::name::Timestamp;
use crate::backup::plans::PG_TABLE_COUNT;
use crate::backup::restore::{self, Chosen};
use crate::backup::retention::{self, Candidate};
use crate::backup::store::{self, Found};
use crate::backup::{Engine, plans, redis_keys, remote, service_dir};
use crate::cmd::{Cmd, cmd, shell};
use crate::compose::Compose;
use crate::config::Retention;
use crate::context::Ctx;
use crate::images::BaseImages;
use crate::runner::Runner;
use crate::term::{Progress, Style};
use crate::term::{human_age, human_bytes};

#[derive(Debug, Clone, Args)]
pub struct BackupsArgs {
    #[command(subcommand)]
    pub action: BackupsAction,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BackupsAction {
    /// List the backups of every service, newest first, with age, size and status.
    List {
        /// Print machine-readable JSON on stdout.
        #[arg(long)]
        json: bool,
        /// List the off-site copies ([backups.remote]) and the local backups that have none.
        #[arg(long)]
        remote: bool,
    },
    /// Copy backups off-site ([backups.remote]): every complete local backup the store lacks, each file
    /// uploaded under a temporary name, read back and checked, the manifest last.
    Push {
        /// Only the newest complete backup of each service.
        #[arg(long)]
        latest: bool,
    },
    /// Check backups: every file's SHA-256, then a test restore into a throwaway container with a sanity check.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["file", "all", "latest"])))]
    Verify {
        /// A backup's data file or manifest.
        file: Option<PathBuf>,
        /// Verify every complete backup.
        #[arg(long)]
        all: bool,
        /// Verify the newest complete backup of each service of this compose project (for CI and cron).
        #[arg(long)]
        latest: bool,
        /// Only check the checksums (no test restore).
        #[arg(long)]
        checksum_only: bool,
        /// The age identity file that decrypts encrypted backups (else DRYDOCK_AGE_IDENTITY_FILE or
        /// backups.encryption.identity_file).
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
    },
    /// Delete old backups by the keep-last/daily/weekly/monthly policy (infra/stack.toml or flags); shows the plan first.
    Prune(PruneArgs),
    /// Benchmark backup-postgres and restore-postgres against the plain Makefile pipeline on a generated database.
    Bench(crate::backup::bench::BenchArgs),
    /// Install (default), show (--show) or remove (--remove) a schedule the host runs (systemd timer or cron) for backup-all.
    Schedule(crate::backup::schedule::ScheduleArgs),
    /// A PostgreSQL base backup into the pgBackRest repository (incremental; full with --full or when none
    /// exists): the start of the point-in-time recovery window (`restore-postgres --to-time`).
    Base {
        /// A full backup instead of an incremental one.
        #[arg(long)]
        full: bool,
        /// Which stack.
        #[arg(long, value_enum, default_value = "dev")]
        env: crate::config::Env,
    },
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Keep the N newest backups (default: backups.retention.keep_last).
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N days that have backups.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N ISO weeks that have backups.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have backups.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Only this compose project's backups (default: every project's, each with its own history).
    #[arg(long, value_name = "NAME")]
    pub project: Option<String>,
    /// Prune the off-site copies ([backups.remote]) instead of the local backups.
    #[arg(long)]
    pub remote: bool,
}

impl BackupsArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        run(ctx, self)
    }
}

fn run(ctx: &Ctx, args: &BackupsArgs) -> Result<()> {
    match &args.action {
        BackupsAction::List { json, remote: true } => list_remote(ctx, *json),
        BackupsAction::List { json, remote: false } => list(ctx, *json),
        BackupsAction::Push { latest } => push(ctx, *latest),
        BackupsAction::Verify {
            file,
            all,
            latest,
            checksum_only,
            identity,
        } => verify(ctx, file.as_deref(), *all, *latest, *checksum_only, identity.as_deref()),
        BackupsAction::Prune(p) => prune(ctx, p),
        BackupsAction::Bench(b) => crate::backup::bench::run(ctx, b),
        BackupsAction::Schedule(s) => crate::backup::schedule::run(ctx, s),
        BackupsAction::Base { full, env } => crate::prod::audit::audited(ctx, *env, "backups base", "postgres", || {
            crate::backup::pitr::base_backup(ctx, *env, *full)
        }),
    }
}

#[derive(Debug, Serialize)]
struct Row {
    engine: Engine,
    service: String,
    file: String,
    path: String,
    taken_at: String,
    age_secs: i64,
    size: u64,
    complete: bool,
    status: String,
    reason: Option<String>,
}

fn rows(ctx: &Ctx) -> Result<Vec<Row>> {
    let now = Timestamp::now();
    let mut rows = Vec::new();
    for engine in Engine::ALL {
        let service = engine.service(ctx);
        let dir = service_dir(ctx, &service);
        for f in store::scan(&dir, &service)? {
            let (file, size, status, reason) = match &f.manifest {
                Ok(m) if f.complete() => (m.file.clone(), m.size, "ok".to_string(), m.reason.clone()),
                Ok(m) => (
                    m.file.clone(),
                    m.size,
                    "incomplete: a file is missing".to_string(),
                    m.reason.clone(),
                ),
                Err(e) => (f.name.stem(), 0, format!("incomplete: {e}"), None),
            };
            rows.push(Row {
                engine,
                service: service.clone(),
                path: dir.join(&file).display().to_string(),
                file,
                taken_at: f.name.timestamp.rfc3339(),
                age_secs: now.0 - f.name.timestamp.0,
                size,
                complete: f.complete(),
                status,
                reason,
            });
        }
    }
    Ok(rows)
}

pub fn list(ctx: &Ctx, json: bool) -> Result<()> {
    let rows = rows(ctx)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let dir = ctx.path(&ctx.config.backups.dir);
    if rows.is_empty() {
        println!(
            "no backups in {} (take one with `cargo xtask backup-all`)",
            dir.display()
        );
        crate::backup::pitr::summary(ctx).iter().for_each(|l| println!("{l}"));
        return Ok(());
    }
    let style = Style::stdout();
    println!(
        "{:<9} {:<46} {:<21} {:>8} {:>10}  status",
        "service", "file", "taken (UTC)", "age", "size"
    );
    for r in &rows {
        let line = format!(
            "{:<9} {:<46} {:<21} {:>8} {:>10}  {}{}",
            r.service,
            r.file,
            r.taken_at,
            human_age(r.age_secs),
            human_bytes(r.size),
            r.status,
            r.reason.as_ref().map(|x| format!(" ({x})")).unwrap_or_default()
        );
        println!("{}", if r.complete { line } else { style.yellow(&line) });
    }
    // Freshness, not liveness: how old is the newest good backup of each service?
    for engine in Engine::ALL {
        if let Some(r) = rows.iter().find(|r| r.engine == engine && r.complete) {
            println!("newest good {} backup: {} old", r.service, human_age(r.age_secs));
        }
    }
    crate::backup::pitr::summary(ctx).iter().for_each(|l| println!("{l}"));
    Ok(())
}

/// `backups push`.
fn push(ctx: &Ctx, latest: bool) -> Result<()> {
    let pushed = remote::push_all(ctx, latest)?;
    if !ctx.run.dry_run {
        println!(
            "pushed {} backup(s) ({}{}); {} already off-site",
            pushed.backups,
            human_bytes(pushed.bytes),
            if pushed.seconds > 0.0 {
                format!(", {:.1} MB/s", pushed.bytes as f64 / 1e6 / pushed.seconds)
            } else {
                String::new()
            },
            pushed.already
        );
    }
    Ok(())
}

/// `backups list --remote`.
fn list_remote(ctx: &Ctx, json: bool) -> Result<()> {
    let (store, rows, missing) = remote::list(ctx)?;
    if json {
        let out = serde_json::json!({"store": store, "backups": rows, "not_off_site": missing});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("off-site store: {store}");
    if rows.is_empty() {
        println!("no backups there (copy them with `cargo xtask backups push`)");
    } else {
        println!(
            "{:<9} {:<46} {:<21} {:>10}  status",
            "service", "backup", "taken (UTC)", "size"
        );
        let style = Style::stdout();
        for r in &rows {
            let line = format!(
                "{:<9} {:<46} {:<21} {:>10}  {}",
                r.service,
                r.backup,
                r.taken_at,
                human_bytes(r.size),
                r.status
            );
            println!(
                "{}",
                if r.status == "finished" {
                    line
                } else {
                    style.yellow(&line)
                }
            );
        }
    }
    if missing.is_empty() {
        println!("every complete local backup has a finished off-site copy");
    } else {
        println!("{} local backup(s) have no off-site copy:", missing.len());
        for m in &missing {
            println!("  {m}");
        }
    }
    Ok(())
}

/// Which engine a file belongs to (by its manifest), for `verify <file>`.
fn engine_of(ctx: &Ctx, path: &std::path::Path) -> Result<(Engine, Chosen)> {
    let mut last = None;
    for engine in Engine::ALL {
        match restore::open(path, engine, &engine.service(ctx)) {
            Ok(chosen) => return Ok((engine, chosen)),
            Err(e) => last = Some(e),
        }
    }
    let err = last.expect("at least one engine");
    // "is a X backup, not a Y one" only means we tried the wrong engine; anything else is the real error.
    Err(err)
}

pub fn verify(
    ctx: &Ctx,
    file: Option<&std::path::Path>,
    all: bool,
    latest: bool,
    checksum_only: bool,
    identity: Option<&std::path::Path>,
) -> Result<()> {
    let mut targets: Vec<(Engine, Result<Chosen>)> = Vec::new();
    if latest {
        let project = Compose::for_env(ctx, crate::config::Env::Dev)?.project;
        for engine in Engine::ALL {
            let service = engine.service(ctx);
            let found = store::scan(&service_dir(ctx, &service), &service)?;
            // Engines without any backup of this project (e.g. MongoDB here) are skipped, not failed.
            if found.iter().any(|f| f.name.project == project) {
                targets.push((engine, restore::latest(ctx, engine, &project)));
            }
        }
        if targets.is_empty() {
            bail!(
                "there are no backups of compose project `{project}` to verify\n  fix: cargo xtask backup-all makes them (`cargo xtask backups list` shows what there is)"
            );
        }
    } else if all {
        for engine in Engine::ALL {
            let service = engine.service(ctx);
            for f in store::scan(&service_dir(ctx, &service), &service)? {
                let chosen = match &f.manifest {
                    Ok(_) => restore::open(&f.manifest_path(), engine, &service),
                    Err(e) => Err(anyhow::anyhow!("{}: {e}", f.dir.join(f.name.stem()).display())),
                };
                targets.push((engine, chosen));
            }
        }
        if targets.is_empty() {
            bail!(
                "there are no backups to verify in {}\n  fix: cargo xtask backup-all makes them",
                ctx.path(&ctx.config.backups.dir).display()
            );
        }
    } else if let Some(path) = file {
        let opened = engine_of(ctx, path);
        match opened {
            Ok((engine, chosen)) => targets.push((engine, Ok(chosen))),
            Err(e) => targets.push((Engine::Postgres, Err(e))),
        }
    }
    let mut failed = 0;
    let style = Style::stderr();
    for (engine, chosen) in &targets {
        let outcome = chosen.as_ref().map_err(|e| anyhow::anyhow!("{e:#}")).and_then(|c| {
            let c = &c.clone().decrypt_with(ctx, identity)?;
            restore::check(ctx, *engine, c)?;
            if !checksum_only {
                test_restore(ctx, *engine, c)?;
            }
            Ok(c.data().display().to_string())
        });
        match outcome {
            Ok(path) => {
                let what = if checksum_only {
                    "checksums match"
                } else {
                    "checksums match, test restore passed"
                };
                println!("{} {path}: {what}", Style::stdout().green("ok"));
            }
            Err(e) => {
                failed += 1;
                eprintln!("{} {e:#}", style.red("FAILED"));
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} backup(s) failed verification: do not rely on them",
            targets.len()
        );
    }
    Ok(())
}

/// Removes a throwaway container whatever happens.
struct Throwaway {
    runner: Runner,
    name: String,
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let sh = shell();
        let name = &self.name;
        let _ = self.runner.probe(&Cmd::from(cmd!(sh, "docker rm -f -v {name}")));
    }
}

fn poll(ctx: &Ctx, cmd: &Cmd, what: &str, secs: u64) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match ctx.run.probe(cmd) {
            None => return Ok(String::new()),
            Some(p) if p.success => return Ok(p.stdout),
            Some(p) if Instant::now() > deadline => bail!("{what} did not happen within {secs} s: {}", p.stderr.trim()),
            Some(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// Restores a backup into a new container of the same image (no volume, no port) and checks it.
fn test_restore(ctx: &Ctx, engine: Engine, chosen: &Chosen) -> Result<()> {
    let images = BaseImages::for_source(&ctx.config, ctx.images().source);
    let name = format!("drydock-verify-{}-{}", std::process::id(), Timestamp::now().0);
    // The stack whose backups these are (DRYDOCK_PROJECT when it isolates one), for the container's label.
    let project = ctx
        .vars
        .project
        .clone()
        .unwrap_or_else(|| ctx.config.project.name.clone());
    let _guard = Throwaway {
        runner: ctx.run,
        name: name.clone(),
    };
    let sh = shell();
    match engine {
        Engine::Postgres => {
            let (user, db) = ("drydock_verify", "drydock_verify");
            let password = format!("v{:x}{}", std::process::id(), Timestamp::now().0);
            let run = plans::throwaway(
                &images.postgres,
                &name,
                &project,
                &[
                    ("POSTGRES_USER", user),
                    ("POSTGRES_PASSWORD", &password),
                    ("POSTGRES_DB", db),
                ],
                None,
                &[],
            )
            .secret(password.clone());
            ctx.say(&format!(
                "test restore of {} into a throwaway {} container",
                chosen.manifest.file, images.postgres
            ));
            ctx.run.read(&run)?;
            // Over TCP: the entrypoint's temporary init server listens on the socket only.
            poll(
                ctx,
                &Cmd::from(cmd!(
                    sh,
                    "docker exec {name} pg_isready -q -h 127.0.0.1 -U {user} -d {db}"
                )),
                "PostgreSQL start",
                120,
            )?;
            if let Some(globals) = chosen.part("globals") {
                let psql = Cmd::from(cmd!(
                    sh,
                    "docker exec -i {name} psql -X -q -v ON_ERROR_STOP=1 -U {user} -d postgres"
                ));
                chosen
                    .stream_into(ctx, &psql, &globals, &mut Progress::new("globals", None, true))
                    .context("the roles (globals) do not apply")?;
            }
            let restore = Cmd::from(cmd!(
                sh,
                "docker exec -i {name} pg_restore -U {user} -d {db} --no-owner --exit-on-error --single-transaction"
            ));
            let mut progress = Progress::new("test restore", Some(chosen.manifest.size), ctx.run.quiet);
            chosen
                .stream_into(ctx, &restore, &chosen.data(), &mut progress)
                .context("the test restore failed")?;
            let count = ctx.run.read(&Cmd::from(cmd!(
                sh,
                "docker exec {name} psql -XAtq -U {user} -d {db} -c {PG_TABLE_COUNT}"
            )))?;
            let tables: u64 = count.trim().parse().unwrap_or(0);
            let expected = chosen.manifest.sanity.tables.unwrap_or(0);
            if !ctx.run.dry_run && tables != expected {
                bail!("the test restore has {tables} tables but the backup recorded {expected}");
            }
        }
        Engine::Redis => {
            ctx.say(&format!(
                "test restore of {} into a throwaway {} container",
                chosen.manifest.file, images.redis
            ));
            ctx.run.read(&plans::throwaway(
                &images.redis,
                &name,
                &project,
                &[],
                Some("sleep"),
                &["infinity"],
            ))?;
            let place = Cmd::from(cmd!(sh, "docker exec -i {name} sh -c 'cat > /tmp/verify.rdb'"));
            chosen.stream_into(ctx, &place, &chosen.data(), &mut Progress::new("rdb", None, true))?;
            ctx.run
                .read(&Cmd::from(cmd!(
                    sh,
                    "docker exec {name} redis-check-rdb /tmp/verify.rdb"
                )))
                .context("redis-check-rdb rejected the backup")?;
            // `--save ''`: no snapshots of its own while it is checked.
            ctx.run.run(&Cmd::from(cmd!(
                sh,
                "docker exec {name} redis-server --dir /tmp --dbfilename verify.rdb --daemonize yes --save '' --appendonly no --logfile /tmp/redis.log"
            )))?;
            poll(
                ctx,
                &Cmd::from(cmd!(sh, "docker exec {name} sh -c 'redis-cli ping | grep -q PONG'")),
                "Redis loading the RDB",
                120,
            )
            .context("Redis did not load the backup (see /tmp/redis.log in the container)")?;
            let info = ctx
                .run
                .read(&Cmd::from(cmd!(sh, "docker exec {name} redis-cli INFO keyspace")))?;
            let keys = redis_keys(&info);
            let expected = chosen.manifest.sanity.keys.unwrap_or(0);
            if !ctx.run.dry_run && keys == 0 && expected > 0 {
                bail!("the test restore has no keys but the backup recorded {expected}");
            }
            if !ctx.run.dry_run && keys != expected {
                ctx.say(&format!("note: {keys} keys loaded, {expected} counted when the backup was taken (writes or expiry meanwhile)"));
            }
        }
        Engine::Mongodb => {
            let Some(image) = images.mongo else {
                bail!(
                    "cannot test-restore a MongoDB backup here: there is no MongoDB image on this machine (offline mode); its checksums match"
                );
            };
            ctx.run
                .read(&plans::throwaway(&image, &name, &project, &[], None, &[]))?;
            poll(
                ctx,
                &Cmd::from(cmd!(
                    sh,
                    "docker exec {name} mongosh --quiet --eval 'db.runCommand({ping: 1})'"
                )),
                "MongoDB start",
                120,
            )?;
            let restore = Cmd::from(cmd!(
                sh,
                "docker exec -i {name} mongorestore --archive --gzip --drop --stopOnError"
            ));
            chosen.stream_into(
                ctx,
                &restore,
                &chosen.data(),
                &mut Progress::new("test restore", Some(chosen.manifest.size), ctx.run.quiet),
            )?;
        }
    }
    Ok(())
}

pub fn prune(ctx: &Ctx, args: &PruneArgs) -> Result<()> {
    let r = ctx.config.backups.retention;
    let policy = Retention {
        keep_last: args.keep_last.unwrap_or(r.keep_last),
        keep_daily: args.keep_daily.unwrap_or(r.keep_daily),
        keep_weekly: args.keep_weekly.unwrap_or(r.keep_weekly),
        keep_monthly: args.keep_monthly.unwrap_or(r.keep_monthly),
    };
    ctx.say(&format!(
        "policy: keep last {}, daily {}, weekly {}, monthly {} (and always the newest complete backup)",
        policy.keep_last, policy.keep_daily, policy.keep_weekly, policy.keep_monthly
    ));
    if args.remote {
        return remote::prune(ctx, &policy, args.project.as_deref());
    }
    let mut doomed: Vec<(String, Found)> = Vec::new();
    let mut locks = Vec::new();
    for engine in Engine::ALL {
        let service = engine.service(ctx);
        let dir = service_dir(ctx, &service);
        if !dir.is_dir() {
            continue;
        }
        if !ctx.run.dry_run {
            locks.push(store::lock(&dir, &service)?);
        }
        let all = store::scan(&dir, &service)?;
        // Each compose project (dev, ci, bench...) has its own history: policies never mix them.
        let mut projects: Vec<String> = all.iter().map(|f| f.name.project.clone()).collect();
        projects.sort();
        projects.dedup();
        projects.retain(|p| args.project.as_ref().is_none_or(|only| only == p));
        for project in projects {
            let found: Vec<&Found> = all.iter().filter(|f| f.name.project == project).collect();
            let cands: Vec<Candidate> = found
                .iter()
                .map(|f| Candidate {
                    timestamp: f.name.timestamp,
                    complete: f.complete(),
                })
                .collect();
            let decisions = retention::plan(&cands, &policy);
            println!("{service} (project {project}):");
            for (f, d) in found.iter().zip(&decisions) {
                if d.keep {
                    println!("  keep    {}  ({})", f.name.stem(), d.reasons.join(", "));
                } else {
                    println!("  {}  {}", Style::stdout().red("delete"), f.name.stem());
                    doomed.push((service.clone(), (*f).clone()));
                }
            }
        }
    }
    if doomed.is_empty() {
        ctx.say("nothing to prune");
        return Ok(());
    }
    ctx.confirm(&format!(
        "delete {} backup(s) listed above (every file of each)",
        doomed.len()
    ))?;
    for (_, f) in &doomed {
        for path in f.paths() {
            if ctx.run.dry_run {
                eprintln!("[dry-run] would delete {}", path.display());
                continue;
            }
            std::fs::remove_file(&path).with_context(|| format!("cannot delete {}", path.display()))?;
        }
        if !ctx.run.dry_run {
            crate::files::sync_dir(&f.dir)?;
        }
    }
    if !ctx.run.dry_run {
        ctx.say(&format!("deleted {} backup(s)", doomed.len()));
    }
    drop(locks);
    crate::backup::freshness::refresh_after(ctx, "the prune");
    Ok(())
}
