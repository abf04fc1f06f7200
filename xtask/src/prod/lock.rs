//! One deploy at a time per target: `prod-deploy`, `prod-rollback` and `prod-scale` (also `--swarm`) hold
//! the target's deploy lock for their whole run, taken by [`acquire`] only.
//!
//! The lock lives on the target engine, where every operator of it sees it: a container
//! `drydock-deploy-lock-<target>` that is created (never started) with the holder in its labels — user, git
//! identity, operator machine, pid, since, action, tag, `--message` (`engine_lock.rs`); for a Swarm stack a
//! Swarm config of that name, one for the whole cluster. The engine reserves
//! names atomically, so a second taker, from this machine or another, is refused at once naming the holder
//! and how long it has held the lock. Beside it, the operator's checkout keeps `.drydock/lock-<target>`:
//! an advisory file lock (the kernel's, released when the process ends however it ends) whose file names the
//! holder too; a second command of the same checkout is refused by it without asking the engine.
//!
//! A lock whose holder provably died — on this machine, in this boot and pid namespace, and its lock file free
//! or its pid gone (`lock_holder.rs`) — is said and taken over. A holder on another machine cannot be judged
//! from here: the refusal names it and its age, and `--force` asks first, then replaces its lock. The release
//! removes the engine object by its id when the command ends (also on errors, and on Ctrl-C or SIGTERM:
//! `interrupt.rs`); a release that fails is said, and the next command of this checkout takes the lock over.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};

use crate::context::Ctx;
use crate::flags::LockFlags;
use crate::interrupt;
use crate::prod::audit::Who;
use crate::prod::engine_lock::{self, CreateFailure, Object};
pub use crate::prod::lock_holder::Holder;
use crate::prod::lock_holder::{Here, Verdict, start_of};
use crate::runner::Runner;
use crate::time::Timestamp;

/// How many times the engine object may change hands while taking it before giving up.
const ATTEMPTS: usize = 4;

/// Held until dropped: then the engine object is removed and the local file emptied (the kernel releases the
/// file lock).
#[derive(Debug)]
pub struct DeployLock {
    file: Option<LockedFile>,
    engine: Option<Release>,
    _interrupt: Option<interrupt::Guard>,
}

/// What releasing the engine object takes (also from the interrupt handler).
#[derive(Debug, Clone)]
pub struct Release {
    runner: Runner,
    object: Object,
    id: String,
    target: String,
    engine: String,
    /// Released already (by the command, or by the interrupt handler: whichever came first).
    done: Arc<AtomicBool>,
}

impl Release {
    /// Removes the engine object; a failure is said with its fix (the lock then waits for a take-over).
    pub fn release(&self) {
        if self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Err(err) = self.runner.output(&engine_lock::remove_cmd(self.object, &self.id)) {
            let err = format!("{err:#}");
            let text = if engine_lock::already_gone(&err) {
                format!(
                    "the deploy lock of `{}` on {} was replaced meanwhile (--force of another operator): nothing to release",
                    self.target, self.engine
                )
            } else {
                format!(
                    "warning: the deploy lock of `{}` on {} was not released: {}\n  fix: the next command from this checkout takes it over; others need --force, or run `{}` on that engine",
                    self.target,
                    self.engine,
                    err.lines().next().unwrap_or_default(),
                    engine_lock::remove_cmd(self.object, &engine_lock::name(&self.target))
                )
            };
            crate::term::say(false, &text);
        }
    }
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        // Disarmed first, so an interrupt from now on does not release a second time.
        drop(self._interrupt.take());
        if let Some(release) = &self.engine {
            release.release();
        }
        if let Some(file) = &mut self.file {
            // Empty: the next taker must not mistake a finished run for a dead one.
            let _ = file.0.set_len(0);
        }
    }
}

/// The checkout's lock file while this process holds it; unlocked explicitly when dropped. Closing our
/// descriptor is not enough: a `flock` belongs to the open file, and a child that another thread forks at that
/// moment holds a copy of the descriptor until its exec, so the lock would outlive us for that moment.
#[derive(Debug)]
struct LockedFile(File);

impl Drop for LockedFile {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

pub fn path(ctx: &Ctx, target: &str) -> PathBuf {
    ctx.root
        .join(".drydock")
        .join(format!("lock-{}", ctx.engine.key(target)))
}

/// Takes the lock of `target` (a Swarm stack when `swarm`) for `action` of `tag`, or refuses naming its holder
/// (see the module docs).
pub fn acquire(ctx: &Ctx, target: &str, swarm: bool, action: &str, tag: &str, flags: &LockFlags) -> Result<DeployLock> {
    let path = path(ctx, target);
    let me = holder_now(ctx, &path, action, tag, flags.message.as_deref());
    let object = Object::for_target(swarm);
    if ctx.run.dry_run {
        ctx.run
            .run(&engine_lock::create_cmd(object, target, &me, Path::new("holder.json")))?;
        return Ok(DeployLock {
            file: None,
            engine: None,
            _interrupt: None,
        });
    }
    let mut asked = false;
    let (mut file, stale) = lock_file(ctx, target, &path, action, flags.force, &mut asked)?;
    // Armed (signals held for the waiting thread) before the object exists. A Ctrl-C in the moment between its
    // creation and `set` leaves it behind, naming this process: the next command of this checkout takes it over
    // (its lock file is free then).
    let guard = interrupt::Guard::arm();
    let mine = file.as_ref().map(|_| path.as_path());
    let (release, took_over) = take_on_engine(ctx, object, target, &me, mine, flags.force, &mut asked)?;
    let undo = release.clone();
    guard.set(move || undo.release());
    if let (Some(dead), false) = (stale, took_over) {
        ctx.say(&format!(
            "the deploy lock of `{target}` was left by a process that ended without releasing it ({}): taking it over",
            dead.describe()
        ));
    }
    if let Some(LockedFile(file)) = &mut file {
        file.set_len(0)?;
        file.rewind()?;
        file.write_all((serde_json::to_string(&me)? + "\n").as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(DeployLock {
        file,
        engine: Some(release),
        _interrupt: Some(guard),
    })
}

/// Who holds the target's lock on the engine now (`None`: free, or the engine did not answer; a dry run asks
/// nothing).
pub fn holder_on_engine(ctx: &Ctx, target: &str, swarm: bool) -> Option<Holder> {
    let probe = ctx
        .run
        .probe(&engine_lock::inspect_cmd(Object::for_target(swarm), target))?;
    if !probe.success {
        return None;
    }
    engine_lock::parse_inspect(&probe.stdout).ok().map(|(_, holder)| holder)
}

/// This process as a holder.
fn holder_now(ctx: &Ctx, path: &Path, action: &str, tag: &str, message: Option<&str>) -> Holder {
    let who = Who::now(ctx);
    let here = Here::now(&who.machine);
    Holder {
        who,
        pid: std::process::id(),
        since: Timestamp::now().rfc3339(),
        action: action.to_string(),
        tag: tag.to_string(),
        engine: ctx.engine.label.clone(),
        message: message.unwrap_or_default().to_string(),
        record: path.display().to_string(),
        boot: here.boot,
        pidns: here.pidns,
        started: start_of(std::process::id()).unwrap_or(0),
    }
}

/// The checkout's lock file, locked (or `None` when `--force` goes past a live holder of this checkout), and
/// the holder it still names when that one died.
fn lock_file(
    ctx: &Ctx,
    target: &str,
    path: &Path,
    action: &str,
    force: bool,
    asked: &mut bool,
) -> Result<(Option<LockedFile>, Option<Holder>)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening the deploy lock {}", path.display()))?;
    let mut previous = String::new();
    file.read_to_string(&mut previous)
        .with_context(|| format!("reading {}", path.display()))?;
    let previous: Option<Holder> = serde_json::from_str(previous.trim()).ok();
    match file.try_lock() {
        Ok(()) => Ok((Some(LockedFile(file)), previous)),
        Err(TryLockError::WouldBlock) => {
            let holder = previous.map_or_else(
                || "another process (it has not written its name yet)".into(),
                |h| h.describe(),
            );
            if !force {
                bail!(
                    "`{target}` is locked by {holder}\n  fix: wait for it to finish, or run again with --force if you know it is stuck (asks first)"
                );
            }
            ctx.confirm(&format!(
                "{action} `{target}` although {holder} holds its deploy lock (two deploys at once can leave a mixed state)"
            ))?;
            *asked = true;
            Ok((None, None))
        }
        Err(TryLockError::Error(err)) => Err(err).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Creates the engine object (see the module docs): the release, and whether a dead holder's was taken over.
fn take_on_engine(
    ctx: &Ctx,
    object: Object,
    target: &str,
    me: &Holder,
    mine: Option<&Path>,
    force: bool,
    asked: &mut bool,
) -> Result<(Release, bool)> {
    let engine = &ctx.engine.label;
    let fix_engine = match object {
        Object::Container => "  fix: check that the engine answers (`docker info`, `cargo xtask doctor`)",
        Object::SwarmConfig => {
            "  fix: a Swarm stack's lock is a Swarm config: address a manager of the swarm (`docker node ls` answers there)"
        }
    };
    let mut imported = false;
    let mut took_over = false;
    // A Swarm config's content: the holder, as the local file has it.
    let dir = tempfile::Builder::new().prefix("drydock-lock-").tempdir()?;
    let content = dir.path().join("holder.json");
    std::fs::write(&content, serde_json::to_string(me)? + "\n")?;
    for _ in 0..ATTEMPTS {
        let err = match ctx.run.output(&engine_lock::create_cmd(object, target, me, &content)) {
            Ok((stdout, _)) => {
                let release = Release {
                    runner: ctx.run,
                    object,
                    id: stdout.trim().to_string(),
                    target: target.to_string(),
                    engine: engine.clone(),
                    done: Arc::new(AtomicBool::new(false)),
                };
                return Ok((release, took_over));
            }
            Err(err) => err,
        };
        let text = format!("{err:#}");
        match engine_lock::create_failure(&text) {
            CreateFailure::NoImage if !imported => {
                import_image(ctx)?;
                imported = true;
                continue;
            }
            CreateFailure::Taken => {}
            _ => {
                return Err(err.context(format!(
                    "cannot take the deploy lock of `{target}` on {engine}\n{fix_engine}"
                )));
            }
        }
        let Some(probe) = ctx.run.probe(&engine_lock::inspect_cmd(object, target)) else {
            continue;
        };
        if !probe.success {
            // Released between our attempt and the question: try again.
            continue;
        }
        let (id, holder) = engine_lock::parse_inspect(&probe.stdout)?;
        let age = holder.age(Timestamp::now());
        match holder.judge(&Here::now(&me.who.machine), mine, start_of) {
            Verdict::Dead(why) => {
                ctx.say(&format!(
                    "the deploy lock of `{target}` on {engine} was left by a process that ended ({why}): {}; taking it over",
                    holder.describe()
                ));
                took_over = true;
            }
            verdict => {
                let seen = match verdict {
                    Verdict::Alive(why) => format!(" ({why})"),
                    _ => String::new(),
                };
                if !force {
                    bail!(
                        "`{target}` on {engine} is locked by {}{seen}, for {age}\n  fix: wait for it to finish; if you know it is stuck (its process was killed, its machine is gone), run again with --force (asks first, then replaces the lock)",
                        holder.describe()
                    );
                }
                if !*asked {
                    ctx.confirm(&format!(
                        "replace the deploy lock of `{target}` on {engine} held for {age} by {}{seen}, and {} (two deploys at once can leave a mixed state)",
                        holder.describe(),
                        me.action
                    ))?;
                    *asked = true;
                }
                ctx.say(&format!(
                    "replacing the deploy lock of `{target}` held by {}",
                    holder.describe()
                ));
            }
        }
        if let Err(err) = ctx.run.output(&engine_lock::remove_cmd(object, &id))
            && !engine_lock::already_gone(&format!("{err:#}"))
        {
            return Err(err.context(format!("cannot remove the stale deploy lock of `{target}` on {engine}")));
        }
    }
    bail!(
        "the deploy lock of `{target}` on {engine} changed hands {ATTEMPTS} times while taking it\n  fix: another operator is deploying right now: wait, then run again"
    )
}

/// Imports the empty lock image on the engine (the first lock taken there).
fn import_image(ctx: &Ctx) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("drydock-lock-image-").tempdir()?;
    let archive = dir.path().join("empty.tar");
    crate::prod::remote::write_tar(&archive, &[])?;
    ctx.say(&format!(
        "the deploy lock's image {} is not on {} yet: importing it (empty, 0 bytes)",
        engine_lock::IMAGE,
        ctx.engine.label
    ));
    let mut progress = crate::term::Progress::new("deploy-lock image", None, true);
    ctx.run
        .stream_in(&engine_lock::import_cmd(), &archive, &mut progress)
        .map(|_| ())
        .with_context(|| format!("cannot import the deploy lock's image on {}", ctx.engine.label))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_in(dir: &std::path::Path) -> Ctx {
        let mut ctx = Ctx::for_plan_tests();
        ctx.root = dir.to_path_buf();
        ctx.run.dry_run = false;
        ctx
    }

    #[test]
    fn the_checkout_s_lock_file_refuses_a_second_taker_and_names_a_dead_one() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = ctx_in(dir.path());
        let p = path(&ctx, "drydock-prod");
        let mut asked = false;
        let (first, stale) = lock_file(&ctx, "drydock-prod", &p, "prod-deploy", false, &mut asked).unwrap();
        assert!(stale.is_none());
        let me = holder_now(&ctx, &p, "prod-deploy", "sha-1", Some("why"));
        std::fs::write(&p, serde_json::to_string(&me).unwrap()).unwrap();
        let err = lock_file(&ctx, "drydock-prod", &p, "prod-scale", false, &mut asked)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`drydock-prod` is locked by"), "{err}");
        assert!(
            err.contains("prod-deploy sha-1") && err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("\"why\"") && err.contains("fix:"), "{err}");
        // Without a terminal, --force still asks: refused, nothing taken.
        let err = lock_file(&ctx, "drydock-prod", &p, "prod-scale", true, &mut asked)
            .unwrap_err()
            .to_string();
        assert!(err.contains("refusing to"), "{err}");
        assert!(!asked);
        drop(first);
        // The file still names the holder, nobody holds the lock: it died; the next taker is told.
        let (_again, stale) = lock_file(&ctx, "drydock-prod", &p, "prod-rollback", false, &mut asked).unwrap();
        assert_eq!(stale.map(|h| h.tag), Some("sha-1".to_string()));
    }

    #[test]
    fn this_process_as_a_holder_records_where_it_can_be_judged() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = ctx_in(dir.path());
        ctx.vars.operator_machine = Some("laptop-b".into());
        let selectors = crate::target::Selectors {
            host_flag: Some("ssh://root@127.0.0.1:40022".into()),
            ..Default::default()
        };
        ctx.engine = crate::target::resolve(&selectors, &Default::default(), "stack.toml").unwrap();
        let p = path(&ctx, "drydock-prod");
        assert!(p.ends_with("lock-drydock-prod@root_127.0.0.1_40022"));
        let me = holder_now(&ctx, &p, "prod-scale", "api=3", None);
        assert_eq!(me.who.machine, "laptop-b");
        assert_eq!(me.engine, "ssh://root@127.0.0.1:40022");
        assert_eq!(me.record, p.display().to_string());
        assert_eq!(me.started, start_of(std::process::id()).unwrap());
        assert!(me.message.is_empty());
        // This very process is alive by every test the judge has.
        let here = Here::now("laptop-b");
        assert!(matches!(
            me.judge(&here, Some(Path::new("/another/checkout")), start_of),
            Verdict::Alive(_)
        ));
    }

    #[test]
    fn a_dry_run_shows_the_engine_lock_and_takes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = ctx_in(dir.path());
        ctx.run.dry_run = true;
        let flags = LockFlags {
            force: false,
            message: Some("m".into()),
        };
        let lock = acquire(&ctx, "drydock-prod", false, "prod-deploy", "sha-1", &flags).unwrap();
        assert!(lock.file.is_none() && lock.engine.is_none());
        assert!(!path(&ctx, "drydock-prod").exists(), "a dry run writes nothing");
    }
}
