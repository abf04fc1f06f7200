//! Off-site copies a team can trust (DESIGN.md, "Backups"): `backups push`, `backups list --remote`,
//! `backups prune --remote`, and the downloads behind `restore-* --from-remote`.
//!
//! A push uploads every file of a backup under `<name>.uploading`, compares what it sent with the manifest,
//! gives it its final name, then reads the remote copy back and checks its SHA-256; the manifest goes last, the
//! same way. A remote backup is finished when its manifest is there, so an interrupted push leaves nothing that
//! lists as finished, and the next push uploads it again. Downloads go to a partial file and are checked against
//! the manifest before they are given their name.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::backup::manifest::Manifest;
use crate::backup::name::BackupName;
use crate::backup::offsite::{Object, Store, UPLOADING};
use crate::backup::retention::{self, Candidate};
use crate::backup::store::{self, Found};
use crate::backup::{Engine, freshness, service_dir};
use crate::config::Retention;
use crate::context::Ctx;
use crate::files::{self, AtomicFile};
use crate::term::{Progress, Style, human_bytes};

/// A backup as the remote has it: its objects, and whether its manifest (the mark of a finished copy) is there.
#[derive(Debug, Clone)]
pub struct RemoteBackup {
    pub name: BackupName,
    pub objects: Vec<Object>,
}

impl RemoteBackup {
    pub fn has_manifest(&self) -> bool {
        self.objects.iter().any(|o| o.name == self.name.manifest())
    }

    /// Finished and holding every file of `manifest` at its size.
    pub fn matches(&self, manifest: &Manifest) -> bool {
        self.has_manifest()
            && manifest
                .files
                .iter()
                .all(|f| self.objects.iter().any(|o| o.name == f.name && o.size == f.size))
    }

    pub fn size(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }
}

/// The remote backups of one service, newest first (objects that are not named like a backup are ignored).
pub fn backups_of(objects: &[Object], service: &str) -> Vec<RemoteBackup> {
    let mut found: Vec<RemoteBackup> = Vec::new();
    for o in objects.iter().filter(|o| o.service == service) {
        let Some((name, _)) = BackupName::parse(&o.name, service) else {
            continue;
        };
        match found.iter_mut().find(|b| b.name == name) {
            Some(b) => b.objects.push(o.clone()),
            None => found.push(RemoteBackup {
                name,
                objects: vec![o.clone()],
            }),
        }
    }
    found.sort_by(|a, b| {
        b.name
            .timestamp
            .cmp(&a.name.timestamp)
            .then(a.name.project.cmp(&b.name.project))
    });
    found
}

/// What a push did.
#[derive(Debug, Default)]
pub struct Pushed {
    pub backups: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub already: usize,
}

/// `backups push`: every complete local backup the remote lacks (or only each service's newest with
/// `latest_only`), newest first. Fails if any push failed; the ones before it stand.
pub fn push_all(ctx: &Ctx, latest_only: bool) -> Result<Pushed> {
    let store = Store::open(ctx)?;
    ctx.say(&format!("off-site store: {}", store.describe));
    store.create_folder(ctx)?;
    let objects = store.list(ctx)?;
    let mut pushed = Pushed::default();
    let mut failed = Vec::new();
    for engine in Engine::ALL {
        let service = engine.service(ctx);
        let dir = service_dir(ctx, &service);
        let _lock = if ctx.run.dry_run {
            None
        } else if dir.is_dir() {
            Some(store::lock(&dir, &service)?)
        } else {
            None
        };
        let remote = backups_of(&objects, &service);
        let local: Vec<Found> = store::scan(&dir, &service)?
            .into_iter()
            .filter(Found::complete)
            .collect();
        let local = if latest_only {
            local.into_iter().take(1).collect()
        } else {
            local
        };
        for found in local {
            let Ok(manifest) = &found.manifest else { continue };
            if remote.iter().any(|r| r.name == found.name && r.matches(manifest)) {
                pushed.already += 1;
                continue;
            }
            match push_one(ctx, &store, &service, &found) {
                Ok((bytes, seconds)) => {
                    pushed.backups += 1;
                    pushed.bytes += bytes;
                    pushed.seconds += seconds;
                }
                Err(e) => {
                    eprintln!("{} {e:#}", Style::stderr().red("push failed:"));
                    failed.push(found.name.stem());
                }
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} backup(s) were not copied off-site: {} (see above; what was pushed before stands, and the next push retries)",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(pushed)
}

/// Pushes one local backup; returns the bytes and seconds it took.
pub fn push_one(ctx: &Ctx, store: &Store, service: &str, found: &Found) -> Result<(u64, f64)> {
    let manifest = found
        .manifest
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{}: {e}", found.name.stem()))?;
    let started = Instant::now();
    ctx.say(&format!("pushing {} to {}", found.name.stem(), store.describe));
    let mut bytes = 0;
    for entry in &manifest.files {
        let local = found.dir.join(&entry.name);
        send(ctx, store, service, &local, &entry.name, entry.size, &entry.sha256)?;
        bytes += entry.size;
    }
    // The manifest last: only now does the copy list as finished.
    let manifest_path = found.manifest_path();
    let (size, sha) = store::sha256_file(&manifest_path)?;
    send(ctx, store, service, &manifest_path, &found.name.manifest(), size, &sha)?;
    let seconds = started.elapsed().as_secs_f64();
    if !ctx.run.dry_run {
        // Verified off-site: the remote series of the freshness metric moves (a failed push leaves it stale).
        if let Err(e) = freshness::record_remote(ctx, manifest) {
            ctx.say(&format!("warning: the backup freshness metric was not updated: {e:#}"));
        }
        ctx.say(&format!(
            "pushed {} ({}, {:.1} s, {:.1} MB/s), every file read back and its SHA-256 checked",
            found.name.stem(),
            human_bytes(bytes),
            seconds,
            bytes as f64 / 1e6 / seconds.max(1e-3)
        ));
    }
    Ok((bytes, seconds))
}

/// One file: upload under a temporary name, check what was sent, rename, read back and check again.
fn send(
    ctx: &Ctx,
    store: &Store,
    service: &str,
    local: &std::path::Path,
    name: &str,
    size: u64,
    sha: &str,
) -> Result<()> {
    let mut progress = Progress::new(&format!("push {name}"), Some(size), ctx.run.quiet);
    let sent = store.upload(ctx, local, service, name, &mut progress).map_err(|e| {
        // OpenSSH's sftp-server reports a full disk or an exceeded quota as a bare SSH_FX_FAILURE.
        let hint = if format!("{e:#}").contains("SSH_FX_FAILURE") {
            "\n  the SFTP server gave no reason (OpenSSH answers SSH_FX_FAILURE for a full disk or an exceeded quota): check the free space on the backup server"
        } else {
            ""
        };
        e.context(format!(
            "uploading {name} to {} failed; it is not listed as pushed{hint}",
            store.describe
        ))
    })?;
    if ctx.run.dry_run {
        store.finish_upload(ctx, service, name)?;
        return Ok(());
    }
    if sent.bytes != size || sent.sha256 != sha {
        let _ = store.delete(ctx, service, &format!("{name}{UPLOADING}"));
        bail!(
            "{} no longer matches its manifest (sent {} bytes, sha256 {}; the manifest says {size}, {sha}): the local backup is damaged and was not pushed",
            local.display(),
            sent.bytes,
            sent.sha256
        );
    }
    store.finish_upload(ctx, service, name)?;
    let back = store
        .download(
            ctx,
            service,
            name,
            std::path::Path::new("/dev/null"),
            &mut std::io::sink(),
            &mut Progress::hidden(),
        )
        .with_context(|| format!("reading back {name} from {} failed", store.describe))?;
    if back.bytes != size || back.sha256 != sha {
        bail!(
            "the remote copy of {name} does not match (read back {} bytes, sha256 {}; expected {size}, {sha}): the store changed it; not pushed",
            back.bytes,
            back.sha256
        );
    }
    Ok(())
}

/// `restore-* --from-remote [NAME]`: downloads a remote backup (the newest regular one of `project` when no
/// name is given) into the local backups directory, every file checked against its manifest, and returns
/// its local manifest path — from there it is restored exactly like a local backup. `None` with --dry-run.
pub fn fetch(ctx: &Ctx, engine: Engine, project: &str, pick: Option<&str>) -> Result<Option<PathBuf>> {
    let store = Store::open(ctx)?;
    let service = engine.service(ctx);
    if ctx.run.dry_run {
        store.list(ctx)?;
        eprintln!(
            "[dry-run] would download {} of `{service}` from {}, check every file's SHA-256, then restore it",
            pick.unwrap_or("the newest finished backup"),
            store.describe
        );
        return Ok(None);
    }
    let objects = store.list(ctx)?;
    let remote = backups_of(&objects, &service);
    let finished: Vec<&RemoteBackup> = remote.iter().filter(|r| r.has_manifest()).collect();
    let (chosen, manifest) = match pick {
        Some(wanted) => {
            let stem = wanted.split('.').next().unwrap_or(wanted);
            let Some(r) = finished.iter().find(|r| r.name.stem() == stem) else {
                let unfinished = remote.iter().any(|r| r.name.stem() == stem);
                bail!(
                    "{} has no finished backup named {wanted}{}\n  fix: `cargo xtask backups list --remote` shows what is there",
                    store.describe,
                    if unfinished {
                        " (its push was interrupted: it has no manifest)"
                    } else {
                        ""
                    }
                );
            };
            let manifest = remote_manifest(ctx, &store, &service, r)?;
            (*r, manifest)
        }
        None => {
            let mut newest = None;
            for r in finished.iter().filter(|r| r.name.project == project) {
                let m = remote_manifest(ctx, &store, &service, r)?;
                if m.reason.is_none() {
                    newest = Some((*r, m));
                    break;
                }
            }
            newest.with_context(|| {
                format!(
                    "{} has no finished backup of `{service}` of compose project `{project}`\n  fix: `cargo xtask backups push` copies the local ones there",
                    store.describe
                )
            })?
        }
    };
    if manifest.engine != engine.name() {
        bail!(
            "{} is a {} backup, not a {} one: refusing to restore it into `{service}`",
            chosen.name.stem(),
            manifest.engine,
            engine.name()
        );
    }
    let dir = service_dir(ctx, &service);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _lock = store::lock(&dir, &service)?;
    ctx.say(&format!(
        "downloading {} ({}) from {}",
        chosen.name.stem(),
        human_bytes(manifest.files.iter().map(|f| f.size).sum()),
        store.describe
    ));
    let mut files = Vec::new();
    for entry in &manifest.files {
        let local = dir.join(&entry.name);
        if local.is_file() {
            let (size, sha) = store::sha256_file(&local)?;
            if size == entry.size && sha == entry.sha256 {
                continue; // already here, identical
            }
            bail!(
                "{} exists here but differs from the remote copy's manifest: nothing was downloaded or restored\n  fix: move it away (it may be damaged) and run again",
                local.display()
            );
        }
        let mut file = AtomicFile::create(&local)?;
        let partial = file.partial_path().to_path_buf();
        let mut progress = Progress::new(&format!("download {}", entry.name), Some(entry.size), ctx.run.quiet);
        let got = store.download(ctx, &service, &entry.name, &partial, file.file(), &mut progress)?;
        if got.bytes != entry.size || got.sha256 != entry.sha256 {
            bail!(
                "the remote copy of {} is damaged (downloaded {} bytes, sha256 {}; its manifest says {}, {}): nothing was restored",
                entry.name,
                got.bytes,
                got.sha256,
                entry.size,
                entry.sha256
            );
        }
        files.push(file);
    }
    for file in files {
        file.commit()?;
    }
    let manifest_path = dir.join(chosen.name.manifest());
    if !manifest_path.is_file() {
        files::write_new(&manifest_path, manifest.to_json().as_bytes(), 0o600)?;
    }
    ctx.say(&format!("downloaded and checked {}", chosen.name.stem()));
    Ok(Some(manifest_path))
}

fn remote_manifest(ctx: &Ctx, store: &Store, service: &str, r: &RemoteBackup) -> Result<Manifest> {
    let text = store.read(ctx, service, &r.name.manifest())?;
    Manifest::parse(&text, &format!("{} (off-site)", r.name.manifest()))
}

/// One row of `backups list --remote`.
#[derive(Debug, serde::Serialize)]
pub struct RemoteRow {
    pub service: String,
    pub backup: String,
    pub taken_at: String,
    pub size: u64,
    /// `finished` (manifest there) or `unfinished` (an interrupted push).
    pub status: String,
}

/// The remote backups of every service, and the complete local ones that have no finished remote copy.
pub fn list(ctx: &Ctx) -> Result<(String, Vec<RemoteRow>, Vec<String>)> {
    let store = Store::open(ctx)?;
    let objects = store.list(ctx)?;
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for engine in Engine::ALL {
        let service = engine.service(ctx);
        let remote = backups_of(&objects, &service);
        for r in &remote {
            rows.push(RemoteRow {
                service: service.clone(),
                backup: r.name.stem(),
                taken_at: r.name.timestamp.rfc3339(),
                size: r.size(),
                status: if r.has_manifest() {
                    "finished"
                } else {
                    "unfinished (push interrupted)"
                }
                .into(),
            });
        }
        for f in store::scan(&service_dir(ctx, &service), &service)? {
            let Ok(m) = &f.manifest else { continue };
            if f.complete() && !remote.iter().any(|r| r.name == f.name && r.matches(m)) {
                missing.push(f.name.stem());
            }
        }
    }
    Ok((store.describe, rows, missing))
}

/// `backups prune --remote`: the same policy on the remote copies, by the names' timestamps, per service and
/// compose project. Never deletes the newest finished copy; lists first and reads the newest kept manifest
/// back before deleting anything, so a store it cannot list or read (a write-only key) is said, not pruned.
pub fn prune(ctx: &Ctx, policy: &Retention, only_project: Option<&str>) -> Result<()> {
    let store = Store::open(ctx)?;
    ctx.say(&format!("off-site store: {}", store.describe));
    let objects = store.list(ctx)?;
    let mut doomed: Vec<(String, RemoteBackup)> = Vec::new();
    for engine in Engine::ALL {
        let service = engine.service(ctx);
        let remote = backups_of(&objects, &service);
        let mut projects: Vec<String> = remote.iter().map(|r| r.name.project.clone()).collect();
        projects.sort();
        projects.dedup();
        projects.retain(|p| only_project.is_none_or(|only| only == p));
        for project in projects {
            let of: Vec<&RemoteBackup> = remote.iter().filter(|r| r.name.project == project).collect();
            let cands: Vec<Candidate> = of
                .iter()
                .map(|r| Candidate {
                    timestamp: r.name.timestamp,
                    complete: r.has_manifest(),
                })
                .collect();
            let decisions = retention::plan(&cands, policy);
            println!("{service} (project {project}, off-site):");
            for (r, d) in of.iter().zip(&decisions) {
                if d.keep {
                    println!("  keep    {}  ({})", r.name.stem(), d.reasons.join(", "));
                } else {
                    println!("  {}  {}", Style::stdout().red("delete"), r.name.stem());
                }
            }
            // Read back the newest finished copy before deleting any older one: it must be really there.
            let newest = of.iter().find(|r| r.has_manifest());
            if decisions.iter().any(|d| !d.keep)
                && let Some(newest) = newest
                && !ctx.run.dry_run
            {
                remote_manifest(ctx, &store, &service, newest).with_context(|| {
                    format!(
                        "cannot read back {} from {}: nothing was pruned (a write-only key can push but not prune)",
                        newest.name.manifest(),
                        store.describe
                    )
                })?;
            }
            for (r, d) in of.iter().zip(&decisions) {
                if !d.keep {
                    doomed.push((service.clone(), (*r).clone()));
                }
            }
        }
    }
    if doomed.is_empty() {
        ctx.say("nothing to prune off-site");
        return Ok(());
    }
    ctx.confirm(&format!(
        "delete {} off-site backup(s) listed above (every object of each)",
        doomed.len()
    ))?;
    for (service, r) in &doomed {
        // The manifest first: from then on the copy no longer lists as finished, whatever happens next.
        let mut objects = r.objects.clone();
        objects.sort_by_key(|o| o.name != r.name.manifest());
        for o in objects {
            store.delete(ctx, service, &o.name)?;
        }
    }
    if !ctx.run.dry_run {
        ctx.say(&format!("deleted {} off-site backup(s)", doomed.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, size: u64) -> Object {
        Object {
            service: "postgres".into(),
            name: name.into(),
            size,
        }
    }

    #[test]
    fn a_remote_backup_is_finished_only_with_its_manifest_and_files() {
        let objects = vec![
            obj("dd_postgres_20260102T030405Z.dump", 10),
            obj("dd_postgres_20260102T030405Z.json", 3),
            obj("dd_postgres_20260103T030405Z.dump.uploading", 4),
            obj("notes.txt", 1),
        ];
        let found = backups_of(&objects, "postgres");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].name.stem(), "dd_postgres_20260103T030405Z");
        assert!(!found[0].has_manifest());
        assert!(found[1].has_manifest());
        let mut m = crate::backup::manifest::tests::sample();
        m.files.truncate(1);
        m.files[0].name = "dd_postgres_20260102T030405Z.dump".into();
        m.files[0].size = 10;
        assert!(found[1].matches(&m));
        m.files[0].size = 11;
        assert!(!found[1].matches(&m), "a size that differs is not the same copy");
    }
}
