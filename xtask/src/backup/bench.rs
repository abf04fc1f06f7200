//! `cargo xtask backups bench`: the benchmark of issue 8, a report rather than a timed test.
//!
//! On its own compose project (`<name>-bench`, ephemeral ports, removed afterwards) it generates a
//! PostgreSQL database of about `--size-mb` MB with generate_series, then times, `--runs` rounds interleaved
//! (median and spread), each after a checkpoint, the archiving of the previous one's WAL and a sync(2):
//!   - the plain Makefile pipeline: `docker compose exec -T postgres pg_dump -Fc ... > file` (default gzip),
//!   - the same raw pipe at the compression backup-postgres picks (`--compress=zstd:1`),
//!   - `cargo xtask backup-postgres` (hashing, progress, atomic writes, globals, manifest),
//!   - `pg_restore` fed the same way as a Makefile would, and `cargo xtask restore-postgres` (which also
//!     verifies the checksum and takes a safety backup while it restores into a new database, then swaps it in;
//!     its restore step, into the new database and the swap, is reported separately, and so is its
//!     `pg_restore` into a new database run alone, without the safety backup beside it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::backup::plans::PgTarget;
use crate::backup::{PgFacts, ask, plans};
use crate::cmd::{Cmd, Input, Output, cmd, shell};
use crate::compose::{Compose, ensure_env_file};
use crate::config::{CONFIG_PATH, Env};
use crate::context::Ctx;
use crate::runner::Runner;
use crate::term::human_bytes;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Approximate size of the generated database, in MB.
    #[arg(long, default_value_t = 1000, value_name = "MB")]
    pub size_mb: u64,
    /// Leave the bench stack and its files in place afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Rounds: each variant runs once per round, rounds interleaved; figures are median (min–max).
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub runs: u32,
}

struct Figure {
    what: String,
    /// One per round.
    secs: Vec<f64>,
    bytes: Option<u64>,
}

/// Median, minimum and maximum.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return (0.0, 0.0, 0.0);
    }
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// What a variant leaves running after its clock stops, finished before the next variant's clock starts:
/// PostgreSQL's checkpoint of the restored data, its archiver compressing every WAL segment a restore wrote
/// into the pgBackRest repository (continuous archiving is on, as in production), and the writeback of the raw
/// pipes' output (hundreds of MB; they never fsync). Each would otherwise run during the next variant and be
/// counted there.
struct Settle<'a> {
    /// The bench's runner without the echo: the polling would drown the bench's figures.
    quiet: Runner,
    compose: &'a Compose,
    service: &'a str,
    target: &'a PgTarget,
}

/// How long the archiver may take to catch up before the bench gives up (a broken archive_command).
const ARCHIVER_CATCH_UP: Duration = Duration::from_secs(300);

impl Settle<'_> {
    fn now(&self) -> Result<()> {
        let psql = |sql: &str| {
            self.quiet.read(&plans::psql(
                self.compose,
                self.service,
                self.target,
                &["-XAtq".into(), "-c".into(), sql.into()],
                false,
            ))
        };
        // A checkpoint that the previous variant's writes started would otherwise finish (and fsync) inside
        // the next variant.
        psql("checkpoint")?;
        // The current, partly filled segment is closed so it is archived now, not in the middle of a variant.
        psql("select pg_switch_wal()")?;
        let deadline = Instant::now() + ARCHIVER_CATCH_UP;
        loop {
            let waiting = psql("select count(*) from pg_ls_archive_statusdir() where name like '%.ready'")?;
            if waiting.trim() == "0" {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{} WAL segments still wait for the archiver after {} s: check archive_command in the server log",
                    waiting.trim(),
                    ARCHIVER_CATCH_UP.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        Ok(())
    }
}

/// Runs a command with stdout to a file or stdin from a file, exactly like a shell redirection; its time.
fn timed_redirect(ctx: &Ctx, settle: &Settle, cmd: &Cmd, out: Option<&Path>, input: Option<&Path>) -> Result<f64> {
    let mut cmd = cmd.clone();
    if let Some(o) = out {
        cmd = cmd.stdout(Output::File(o.to_path_buf()));
    }
    if let Some(i) = input {
        cmd = cmd.stdin(Input::File(i.to_path_buf()));
    }
    settle.now()?;
    let started = Instant::now();
    ctx.run.run(&cmd)?;
    Ok(started.elapsed().as_secs_f64())
}

/// The stack description with `backups.dir` pointed at the bench's own directory, and the dev stack's compose
/// files reduced to the base file (see [`run`]).
fn bench_config(ctx: &Ctx, dir: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(ctx.path(CONFIG_PATH))?;
    let mut section = String::new();
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_string();
        }
        if section == "[backups]" && trimmed.starts_with("dir") && trimmed.contains('=') {
            out.push_str(&format!("dir = {:?}\n", dir.join("backups").display().to_string()));
        } else if section == "[compose]" && trimmed.starts_with("dev ") && trimmed.contains('=') {
            out.push_str(&format!("dev = [{:?}]\n", ctx.config.compose.dev[0]));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let path = dir.join("stack.toml");
    std::fs::write(&path, out)?;
    Ok(path)
}

pub fn run(ctx: &Ctx, args: &BenchArgs) -> Result<()> {
    if ctx.run.dry_run {
        bail!("backups bench measures real work: it has no --dry-run");
    }
    ensure_env_file(ctx)?;
    // Every command reaches PostgreSQL through `compose exec`, and the dev overlay's healthchecks would take CPU
    // from what is measured; the xtask runs of the bench read the same from `bench_config`.
    let mut compose: Compose = Compose::for_env(ctx, Env::Dev)?.base_file_only();
    compose.project = format!("{}-bench", ctx.config.project.name);
    let service = ctx.config.services.postgres.clone();
    let dir = ctx.root.join("target").join("backup-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = bench(ctx, &compose, &service, &dir, args);
    if !args.keep {
        let sh = shell();
        let _ = ctx.run.run(&compose.cmd(cmd!(sh, "down --volumes --remove-orphans")));
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn bench(ctx: &Ctx, compose: &Compose, service: &str, dir: &Path, args: &BenchArgs) -> Result<()> {
    ctx.say(&format!(
        "bench stack: compose project `{}` (postgres only)",
        compose.project
    ));
    let sh = shell();
    ctx.run.run(&compose.cmd(cmd!(sh, "up --detach --wait {service}")))?;
    let facts = PgFacts::parse(&ask(ctx, compose, service, &plans::pg_facts(compose, service))?.unwrap_or_default())?;
    let t = &facts.target;
    // ~135 bytes per row on disk (heap + primary key); md5 text compresses about as well as real data.
    let rows = args.size_mb * 1_000_000 / 135;
    let sql = format!(
        "drop table if exists bench_items; \
         create table bench_items as select g as id, md5(g::text) as a, md5((g * 7)::text) as b, \
         now() - g * interval '1 second' as created_at, (g % 1000) / 7.0 as score \
         from generate_series(1, {rows}) g; \
         alter table bench_items add primary key (id); analyze bench_items;"
    );
    ctx.say(&format!("generating {rows} rows (about {} MB)", args.size_mb));
    let started = Instant::now();
    ctx.run.run(&plans::psql(
        compose,
        service,
        t,
        &["-q".into(), "-c".into(), sql],
        false,
    ))?;
    let size = ctx.run.read(&plans::psql(
        compose,
        service,
        t,
        &[
            "-XAt".into(),
            "-c".into(),
            "select pg_database_size(current_database())".into(),
        ],
        false,
    ))?;
    let db_bytes: u64 = size.trim().parse().unwrap_or(0);
    ctx.say(&format!(
        "database: {} (generated in {:.0} s)",
        human_bytes(db_bytes),
        started.elapsed().as_secs_f64()
    ));

    // The real commands, as a user runs them: a child xtask with the bench's project and backups directory.
    let config = bench_config(ctx, dir)?;
    let exe = std::env::current_exe().context("cannot find the xtask binary")?;
    let xtask = |words: &[&str]| {
        let project = &compose.project;
        Cmd::from(
            cmd!(sh, "{exe} --config {config} --offline {words...}")
                .env("DRYDOCK_PROJECT", project)
                .envs(compose.env.iter().cloned()),
        )
    };
    let restore = plans::pg_restore(compose, service, t);
    // What a Makefile would run: the same flags minus our single transaction.
    let mut make_restore = restore.clone();
    make_restore
        .args
        .retain(|a| a != "--single-transaction" && a != "--exit-on-error");
    let swap = plans::PgSwap::new(t)?;
    let into_scratch = plans::pg_restore_into(compose, service, &swap.user, &swap.scratch);
    let make_file = dir.join("makefile.dump");
    let raw_file = dir.join("raw-zstd.dump");
    let ours_dir = dir.join("backups").join(service);
    let settle = Settle {
        quiet: ctx.quiet().run,
        compose,
        service,
        target: t,
    };

    // Every variant once per round, rounds interleaved: a noisy minute touches every variant alike, and
    // no single run decides a figure (median and spread over the rounds).
    let mut figures: Vec<Figure> = Vec::new();
    let mut record = |what: String, secs: f64, bytes: Option<u64>| match figures.iter_mut().find(|f| f.what == what) {
        Some(f) => {
            f.secs.push(secs);
            f.bytes = bytes.or(f.bytes);
        }
        None => figures.push(Figure {
            what,
            secs: vec![secs],
            bytes,
        }),
    };
    for round in 1..=args.runs {
        ctx.say(&format!("round {round} of {}", args.runs));
        let secs = timed_redirect(
            ctx,
            &settle,
            &plans::pg_dump(compose, service, t, "default"),
            Some(&make_file),
            None,
        )?;
        record(
            "backup: Makefile pipe (pg_dump -Fc, default gzip)".into(),
            secs,
            Some(make_file.metadata()?.len()),
        );
        let secs = timed_redirect(
            ctx,
            &settle,
            &plans::pg_dump(compose, service, t, &facts.compression),
            Some(&raw_file),
            None,
        )?;
        record(
            format!("backup: raw pipe (pg_dump -Fc --compress={})", facts.compression),
            secs,
            Some(raw_file.metadata()?.len()),
        );
        // A clean backups directory each round: `--latest` below restores this round's backup.
        let _ = std::fs::remove_dir_all(&ours_dir);
        settle.now()?;
        let started = Instant::now();
        ctx.run.run(&xtask(&["-q", "backup-postgres"]))?;
        let secs = started.elapsed().as_secs_f64();
        let ours = std::fs::read_dir(&ours_dir)?
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".dump"))
            .context("backup-postgres wrote no .dump")?;
        record(
            "backup: cargo xtask backup-postgres".into(),
            secs,
            Some(ours.metadata()?.len()),
        );
        let secs = timed_redirect(ctx, &settle, &make_restore, None, Some(&make_file))?;
        record("restore: Makefile pipe (pg_restore < gzip dump)".into(), secs, None);
        let secs = timed_redirect(ctx, &settle, &make_restore, None, Some(&raw_file))?;
        record("restore: raw pipe (pg_restore < zstd dump)".into(), secs, None);
        // restore-postgres's own pg_restore (into a new, empty database) alone: what its restore step costs
        // without the safety backup that runs beside it.
        ctx.run.run(&plans::pg_create_scratch(compose, service, &swap))?;
        let secs = timed_redirect(ctx, &settle, &into_scratch, None, Some(&raw_file))?;
        ctx.run.run(&plans::pg_drop_scratch(compose, service, &swap))?;
        record("restore: its pg_restore into a new database, alone".into(), secs, None);
        settle.now()?;
        let started = Instant::now();
        let out = xtask(&["--yes", "restore-postgres", "--latest"]);
        let (_, stderr) = ctx.run.output(&out).context("restore-postgres failed")?;
        let secs = started.elapsed().as_secs_f64();
        record("restore: cargo xtask restore-postgres (total)".into(), secs, None);
        // "restored database `x` from y in 12.3 s": the restore step (into the new database, and the swap), which
        // overlaps the safety backup; the checksum before it and the check after it are not in it.
        if let Some(step) = stderr
            .lines()
            .find(|l| l.contains("restored database"))
            .and_then(|l| l.split(" in ").nth(1))
            .and_then(|r| r.split(" s").next())
            .and_then(|n| n.trim().parse::<f64>().ok())
        {
            record(
                "restore: its restore step (beside the safety backup)".into(),
                step,
                None,
            );
        }
    }

    println!();
    println!(
        "backup/restore benchmark: PostgreSQL {}, database {} ({rows} rows)",
        facts.server_version,
        human_bytes(db_bytes)
    );
    println!(
        "  {} run(s) of each, interleaved, each started after a checkpoint, once the WAL archiver caught up, and after sync(2) (no variant pays for another's checkpoint, archiving or writeback); median (min–max)",
        args.runs
    );
    for f in &figures {
        let size = f.bytes.map(human_bytes).unwrap_or_default();
        let (median, min, max) = spread(&f.secs);
        println!("  {:<55} {median:>7.1} s  ({min:.1}–{max:.1})  {size:>10}", f.what);
    }
    let median = |what: &str| {
        figures
            .iter()
            .find(|f| f.what.starts_with(what))
            .map(|f| spread(&f.secs).0)
    };
    let make = median("backup: Makefile").unwrap_or(0.0);
    let raw = median("backup: raw").unwrap_or(0.0);
    let ours = median("backup: cargo").unwrap_or(0.0);
    if let (Some(raw_restore), Some(total)) = (median("restore: raw"), median("restore: cargo")) {
        println!(
            "  restore-postgres end to end is {:.2}× the raw pg_restore pipe{}{}",
            total / raw_restore,
            median("restore: its restore step")
                .map(|step| format!("; its restore step {:.2}×", step / raw_restore))
                .unwrap_or_default(),
            median("restore: its pg_restore")
                .map(|alone| format!(" ({:.2}× without the safety backup beside it)", alone / raw_restore))
                .unwrap_or_default()
        );
    }
    println!(
        "  backup-postgres is {:.1}× faster than the Makefile pipe, {:+.0} % vs the raw pipe at the same compression; output {} vs {}",
        make / ours,
        (ours / raw - 1.0) * 100.0,
        human_bytes(figures.get(2).and_then(|f| f.bytes).unwrap_or(0)),
        human_bytes(figures.first().and_then(|f| f.bytes).unwrap_or(0))
    );
    Ok(())
}
