//! Files that appear whole or not at all, on tempfile.
//!
//! A file is written under a temporary name in its target directory (`<final>.XXXXXX.partial`, mode 0600),
//! its data fsynced, then given its final name without ever replacing an existing file (tempfile's
//! `persist_noclobber`), and the directory fsynced so the rename survives a crash. Dropped without a commit
//! (an error, a panic), the temporary file is removed.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// What every temporary file name ends with (so interrupted runs' leftovers can be recognised).
pub const PARTIAL_SUFFIX: &str = ".partial";

/// A file being written under a temporary name; it becomes `target` only through [`AtomicFile::commit`].
pub struct AtomicFile {
    temp: NamedTempFile,
    target: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file beside `target` (mode 0600: dumps hold data, secrets are secrets).
    pub fn create(target: &Path) -> Result<AtomicFile> {
        Self::create_with_mode(target, 0o600)
    }

    pub fn create_with_mode(target: &Path, mode: u32) -> Result<AtomicFile> {
        use std::os::unix::fs::PermissionsExt;
        let dir = parent(target);
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let temp = tempfile::Builder::new()
            .prefix(&format!("{name}."))
            .suffix(PARTIAL_SUFFIX)
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempfile_in(dir)
            .with_context(|| {
                format!(
                    "cannot create a temporary file for {} in {}",
                    target.display(),
                    dir.display()
                )
            })?;
        Ok(AtomicFile {
            temp,
            target: target.to_path_buf(),
        })
    }

    pub fn partial_path(&self) -> &Path {
        self.temp.path()
    }

    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// fsync the data, give it its final name (refusing to replace an existing file), fsync the directory.
    pub fn commit(mut self) -> Result<PathBuf> {
        let partial = self.temp.path().display().to_string();
        self.temp
            .as_file_mut()
            .flush()
            .with_context(|| format!("writing {partial} failed"))?;
        self.temp
            .as_file()
            .sync_all()
            .with_context(|| format!("fsync of {partial} failed"))?;
        self.temp.persist_noclobber(&self.target).map_err(|e| {
            anyhow::Error::new(e.error).context(format!(
                "cannot rename {partial} to {} (it must not exist yet: existing files are never replaced)",
                self.target.display()
            ))
        })?;
        sync_dir(parent(&self.target))?;
        Ok(self.target)
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync of the directory {} failed", dir.display()))
}

/// Writes a small file atomically; it must not exist yet.
pub fn write_new(target: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut file = AtomicFile::create_with_mode(target, mode)?;
    file.file()
        .write_all(contents)
        .with_context(|| format!("writing {} failed", file.partial_path().display()))?;
    file.commit()?;
    Ok(())
}

/// Writes a small file atomically with `mode`, replacing the previous version (state files and reports, not
/// backups).
pub fn replace(target: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = parent(target);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut temp = tempfile::Builder::new()
        .suffix(PARTIAL_SUFFIX)
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    temp.write_all(contents)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("writing {} failed", temp.path().display()))?;
    temp.persist(target)
        .map_err(|e| anyhow::Error::new(e.error).context(format!("cannot write {}", target.display())))?;
    sync_dir(dir)
}

/// Resolves `path` against `root` unless it is absolute.
pub fn under(root: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { root.join(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn atomic_file_appears_only_on_commit_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.dump");
        let mut f = AtomicFile::create(&target).unwrap();
        f.file().write_all(b"data").unwrap();
        let partial = names(dir.path());
        assert_eq!(partial.len(), 1);
        assert!(
            partial[0].starts_with("a.dump.") && partial[0].ends_with(PARTIAL_SUFFIX),
            "{partial:?}"
        );
        assert!(!target.exists());
        f.commit().unwrap();
        assert_eq!(names(dir.path()), ["a.dump"]);
        assert_eq!(std::fs::read(&target).unwrap(), b"data");

        // Dropped without commit: nothing is left.
        let mut g = AtomicFile::create(&dir.path().join("b.dump")).unwrap();
        g.file().write_all(b"half").unwrap();
        drop(g);
        assert_eq!(names(dir.path()), ["a.dump"]);

        // An existing file is never replaced, and the failed attempt leaves nothing behind.
        let mut h = AtomicFile::create(&target).unwrap();
        h.file().write_all(b"other").unwrap();
        let err = h.commit().unwrap_err();
        assert!(format!("{err:#}").contains("never replaced"), "{err:#}");
        assert_eq!(std::fs::read(&target).unwrap(), b"data");
        assert_eq!(names(dir.path()), ["a.dump"]);
    }

    #[test]
    fn modes_are_what_was_asked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        write_new(&dir.path().join("s.txt"), b"x\n", 0o444).unwrap();
        let mode = std::fs::metadata(dir.path().join("s.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        replace(&dir.path().join("state.json"), b"1", 0o600).unwrap();
        replace(&dir.path().join("state.json"), b"2", 0o644).unwrap();
        let mode = std::fs::metadata(dir.path().join("state.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(std::fs::read(dir.path().join("state.json")).unwrap(), b"2");
        assert_eq!(names(dir.path()), ["s.txt", "state.json"]);
    }
}
