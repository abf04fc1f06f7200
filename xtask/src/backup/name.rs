//! Backup file names: `<project>_<service>_<YYYYMMDDTHHMMSSZ>.<ext>`.
//!
//! Retention is decided by the timestamp in the name, never by mtime (copies and restores change mtimes), so
//! the name is the source of truth and must round-trip exactly. UTC with an explicit `Z` (no `:`, no local
//! time zone).

pub use crate::time::Timestamp;

/// The parts of a backup's name. `stem` = `<project>_<service>_<timestamp>`; the files of one backup are
/// `<stem>.<ext>` (the data), optional extra parts such as `<stem>.globals.sql`, and `<stem>.json` (the manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupName {
    pub project: String,
    pub service: String,
    pub timestamp: Timestamp,
}

impl BackupName {
    pub fn stem(&self) -> String {
        format!("{}_{}_{}", self.project, self.service, self.timestamp.compact())
    }

    pub fn file(&self, ext: &str) -> String {
        format!("{}.{ext}", self.stem())
    }

    pub fn manifest(&self) -> String {
        self.file("json")
    }

    /// Parses a file name of this service's directory: `<project>_<service>_<ts>.<anything>`. The service is
    /// known from the directory, so project names with `_` parse unambiguously. Returns the name and the
    /// extension (everything after the timestamp's dot).
    pub fn parse(file_name: &str, service: &str) -> Option<(BackupName, String)> {
        let (stem, ext) = file_name.split_once('.')?;
        let (rest, ts) = stem.rsplit_once('_')?;
        let project = rest.strip_suffix(service)?.strip_suffix('_')?;
        if project.is_empty() || ext.is_empty() {
            return None;
        }
        let timestamp = Timestamp::parse_compact(ts).ok()?;
        Some((
            BackupName {
                project: project.to_string(),
                service: service.to_string(),
                timestamp,
            },
            ext.to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_format_and_parse() {
        let name = BackupName {
            project: "drydock_ci".into(),
            service: "postgres".into(),
            timestamp: Timestamp::from_civil(2026, 1, 2, 3, 4, 5),
        };
        assert_eq!(name.file("dump"), "drydock_ci_postgres_20260102T030405Z.dump");
        assert_eq!(name.manifest(), "drydock_ci_postgres_20260102T030405Z.json");
        let (parsed, ext) = BackupName::parse("drydock_ci_postgres_20260102T030405Z.globals.sql", "postgres").unwrap();
        assert_eq!(parsed, name);
        assert_eq!(ext, "globals.sql");
        let (parsed, ext) = BackupName::parse(&name.file("dump.partial"), "postgres").unwrap();
        assert_eq!((parsed.stem(), ext.as_str()), (name.stem(), "dump.partial"));
    }

    #[test]
    fn foreign_names_do_not_parse() {
        for bad in [
            "drydock_redis_20260102T030405Z.rdb", // another service
            "postgres_20260102T030405Z.dump",     // no project
            "drydock_postgres_20260102T030405.dump",
            "drydock_postgres_20260102T030405Z", // no extension
            ".lock",
            "notes.txt",
        ] {
            assert!(BackupName::parse(bad, "postgres").is_none(), "{bad}");
        }
    }
}
