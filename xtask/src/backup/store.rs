//! The backups directory on disk: atomic files, the per-service lock, clean-up of interrupted runs, and
//! reading back what is there.
//!
//! Trust rules (DESIGN.md, research/backups.md): a file only ever appears under its final name complete
//! (`files::AtomicFile`: a temporary `<name>.XXXXXX.partial` beside it → fsync → no-clobber rename → fsync of
//! the directory), the manifest is
//! written last, and one backup / restore / prune of a service runs at a time (an advisory lock that the
//! kernel releases when the process dies, so a crash never leaves a stale lock).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::manifest::Manifest;
use super::name::{BackupName, Timestamp};
use crate::files::{PARTIAL_SUFFIX, sync_dir};

const LOCK_FILE: &str = ".lock";

/// The per-service lock, held for the whole of a backup, restore or prune.
pub struct ServiceLock {
    _file: File,
}

/// Creates the service's backup directory if needed and takes its lock, or fails at once if another run
/// holds it (a backup must never wait silently behind another for an unknown time).
pub fn lock(dir: &Path, service: &str) -> Result<ServiceLock> {
    fs::create_dir_all(dir).with_context(|| {
        format!("cannot create the backups directory {}\n  fix: check that it is writable (backups.dir in infra/stack.toml)", dir.display())
    })?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(&path).with_context(|| {
        format!(
            "the backups directory {} is not writable (cannot open {})\n  fix: check its permissions and free space, or set backups.dir in infra/stack.toml",
            dir.display(),
            path.display()
        )
    })?;
    match file.try_lock() {
        Ok(()) => Ok(ServiceLock { _file: file }),
        Err(TryLockError::WouldBlock) => bail!(
            "another backup, restore or prune of `{service}` is running (it holds {})\n  fix: wait for it to finish, then run this again",
            path.display()
        ),
        Err(TryLockError::Error(err)) => Err(err).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Removes what an interrupted run left behind (the caller holds the lock, so nothing is being written):
/// `*.partial` files, and data files whose manifest was never written (a crash between the renames).
pub fn clean_leftovers(dir: &Path, service: &str) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(removed);
    };
    let names: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    for name in &names {
        let Some((parsed, ext)) = BackupName::parse(name, service) else {
            continue;
        };
        let orphan = ext != "json" && !names.contains(&parsed.manifest());
        if ext.ends_with("partial") || orphan {
            let path = dir.join(name);
            fs::remove_file(&path).with_context(|| format!("cannot remove the leftover {}", path.display()))?;
            removed.push(path);
        }
    }
    if !removed.is_empty() {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// A backup found on disk.
#[derive(Debug, Clone)]
pub struct Found {
    pub name: BackupName,
    pub dir: PathBuf,
    /// The manifest, or why it could not be read.
    pub manifest: Result<Manifest, String>,
}

impl Found {
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(self.name.manifest())
    }

    pub fn complete(&self) -> bool {
        self.manifest
            .as_ref()
            .is_ok_and(|m| m.files.iter().all(|f| self.dir.join(&f.name).is_file()))
    }

    /// Every file of this backup present on disk (for prune).
    pub fn paths(&self) -> Vec<PathBuf> {
        let stem = self.name.stem();
        let mut paths: Vec<PathBuf> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&format!("{stem}.")) && !n.ends_with(PARTIAL_SUFFIX))
            })
            .map(|e| e.path())
            .collect();
        paths.sort();
        paths
    }
}

/// The backups of one service, newest first (one entry per timestamp that has a manifest or a data file).
pub fn scan(dir: &Path, service: &str) -> Result<Vec<Found>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", dir.display())),
    };
    let mut stems: Vec<BackupName> = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some((parsed, ext)) = BackupName::parse(&name, service) else {
            continue;
        };
        if ext.ends_with("partial") || stems.contains(&parsed) {
            continue;
        }
        stems.push(parsed);
    }
    stems.sort_by(|a, b| b.timestamp.cmp(&a.timestamp).then(a.project.cmp(&b.project)));
    Ok(stems
        .into_iter()
        .map(|name| {
            let path = dir.join(name.manifest());
            let manifest = if path.is_file() {
                Manifest::read(&path).map_err(|e| format!("{e:#}"))
            } else {
                Err("no manifest (interrupted or foreign file)".to_string())
            };
            Found {
                name,
                dir: dir.to_path_buf(),
                manifest,
            }
        })
        .collect())
}

/// SHA-256 of a file, streamed (hex).
pub fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {} failed", path.display()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex(&hasher.finalize())))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks every file of a backup against its manifest: present, same size, same SHA-256.
pub fn check_files(dir: &Path, manifest: &Manifest) -> Result<()> {
    for entry in &manifest.files {
        let path = dir.join(&entry.name);
        if !path.is_file() {
            bail!("{} is missing (listed in the manifest)", path.display());
        }
        let (size, sha) = sha256_file(&path)?;
        if size != entry.size {
            bail!(
                "{} is {size} bytes but its manifest says {}: the file is truncated or was changed; do not trust it",
                path.display(),
                entry.size
            );
        }
        if sha != entry.sha256 {
            bail!(
                "{} does not match its manifest's SHA-256 (expected {}, found {sha}): the file was changed or is corrupt; do not trust it",
                path.display(),
                entry.sha256
            );
        }
    }
    Ok(())
}

/// The timestamp for a new backup: now, or (when a backup of this service already has this second's name)
/// the next free second after waiting for it, so names stay unique and truthful.
pub fn fresh_name(dir: &Path, project: &str, service: &str) -> BackupName {
    loop {
        let name = BackupName {
            project: project.into(),
            service: service.into(),
            timestamp: Timestamp::now(),
        };
        let stem = format!("{}.", name.stem());
        let taken = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&stem)));
        if !taken {
            return name;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::{FORMAT, FileEntry, Sanity};

    /// Removed when dropped, also when the test panics: keep it alive for the test's length.
    fn tempdir(tag: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("xtask-store-{tag}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn lock_is_exclusive_and_released_on_drop() {
        let tmp = tempdir("lock");
        let dir = tmp.path().to_path_buf();
        let held = lock(&dir, "postgres").unwrap();
        let err = format!("{:#}", lock(&dir, "postgres").err().unwrap());
        assert!(
            err.contains("another backup, restore or prune of `postgres` is running"),
            "{err}"
        );
        drop(held);
        lock(&dir, "postgres").unwrap();
    }

    fn manifest_for(name: &BackupName, data: &[u8]) -> Manifest {
        let sha = hex(&Sha256::digest(data));
        Manifest {
            format: FORMAT,
            engine: "redis".into(),
            project: name.project.clone(),
            service: name.service.clone(),
            database: "all".into(),
            server_version: "8.0".into(),
            tool_version: "redis-cli 8.0".into(),
            written_by: "xtask".into(),
            git_revision: "x".into(),
            started_at: name.timestamp.rfc3339(),
            finished_at: name.timestamp.rfc3339(),
            duration_secs: 0.1,
            file: name.file("rdb"),
            size: data.len() as u64,
            sha256: sha.clone(),
            compression: "none".into(),
            files: vec![FileEntry {
                role: "rdb".into(),
                name: name.file("rdb"),
                size: data.len() as u64,
                sha256: sha,
                plain: None,
            }],
            sanity: Sanity::default(),
            reason: None,
            encryption: None,
        }
    }

    #[test]
    fn leftovers_scan_and_checks() {
        let tmp = tempdir("scan");
        let dir = tmp.path().to_path_buf();
        let old = BackupName {
            project: "dd".into(),
            service: "redis".into(),
            timestamp: Timestamp(1_000_000),
        };
        let new = BackupName {
            project: "dd".into(),
            service: "redis".into(),
            timestamp: Timestamp(2_000_000),
        };
        let orphan = BackupName {
            project: "dd".into(),
            service: "redis".into(),
            timestamp: Timestamp(3_000_000),
        };
        for n in [&old, &new] {
            fs::write(dir.join(n.file("rdb")), b"REDIS0012").unwrap();
            crate::files::write_new(
                &dir.join(n.manifest()),
                manifest_for(n, b"REDIS0012").to_json().as_bytes(),
                0o600,
            )
            .unwrap();
        }
        fs::write(dir.join(orphan.file("rdb")), b"REDIS").unwrap();
        fs::write(dir.join(orphan.file("rdb.partial")), b"RE").unwrap();
        fs::write(dir.join("notes.txt"), b"mine").unwrap();

        let found = scan(&dir, "redis").unwrap();
        assert_eq!(found.len(), 3);
        assert_eq!(found[0].name, orphan, "newest first");
        assert!(!found[0].complete() && found[1].complete() && found[2].complete());

        let removed = clean_leftovers(&dir, "redis").unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(dir.join("notes.txt").is_file(), "foreign files are left alone");
        assert_eq!(scan(&dir, "redis").unwrap().len(), 2);

        let m = manifest_for(&new, b"REDIS0012");
        check_files(&dir, &m).unwrap();
        fs::write(dir.join(new.file("rdb")), b"REDIS0013").unwrap();
        assert!(format!("{:#}", check_files(&dir, &m).unwrap_err()).contains("SHA-256"));
        fs::write(dir.join(new.file("rdb")), b"REDIS").unwrap();
        assert!(format!("{:#}", check_files(&dir, &m).unwrap_err()).contains("truncated"));
    }

    #[test]
    fn sha256_of_a_known_file() {
        let tmp = tempdir("sha");
        let dir = tmp.path().to_path_buf();
        fs::write(dir.join("abc"), b"abc").unwrap();
        let (size, sha) = sha256_file(&dir.join("abc")).unwrap();
        assert_eq!(size, 3);
        assert_eq!(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
