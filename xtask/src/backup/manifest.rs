//! The JSON manifest written beside every backup, last: its presence marks the backup as complete.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Bumped when the format changes incompatibly; readers refuse newer versions.
pub const FORMAT: u32 = 1;
/// The format of an encrypted backup's manifest: a reader of format 1 would take its files for plaintext.
pub const FORMAT_ENCRYPTED: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// `postgres`, `redis` or `mongodb`: restores refuse a backup of another engine.
    pub engine: String,
    pub project: String,
    pub service: String,
    /// The application database (PostgreSQL, MongoDB) or `all` (Redis).
    pub database: String,
    pub server_version: String,
    /// The dump tool and its version, e.g. `pg_dump (PostgreSQL) 17.6`.
    pub tool_version: String,
    /// `xtask 0.1.0`: the program that wrote the backup.
    pub written_by: String,
    pub git_revision: String,
    pub started_at: String,
    pub finished_at: String,
    pub duration_secs: f64,
    /// The main data file (first of `files`).
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub compression: String,
    /// Every file of the backup, the main one first.
    pub files: Vec<FileEntry>,
    /// Facts checked after a restore: e.g. `tables` for PostgreSQL, `keys` for Redis.
    #[serde(default)]
    pub sanity: Sanity,
    /// Why it was taken (e.g. a safety backup before a restore), if not on request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set when every file is age-encrypted: for whom (fingerprints of the recipients, never a key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionInfo {
    /// `age` (age-encryption.org/v1).
    pub scheme: String,
    /// `SHA256:<16 hex>` of each recipient (backup::encrypt::fingerprint).
    pub recipients: Vec<String>,
}

/// The plaintext behind an encrypted file: what a decryption must give back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plain {
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// `dump`, `globals`, `rdb`, `archive`.
    pub role: String,
    pub name: String,
    /// Size and SHA-256 of the stored file (ciphertext when encrypted).
    pub size: u64,
    pub sha256: String,
    /// The plaintext's, when the file is encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain: Option<Plain>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sanity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<u64>,
}

impl Manifest {
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a manifest always serialises");
        text.push('\n');
        text
    }

    pub fn read(path: &Path) -> Result<Manifest> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the manifest {}", path.display()))?;
        Manifest::parse(&text, &path.display().to_string())
    }

    /// A manifest's text read from `origin` (a path, or a remote object's name).
    pub fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let path = origin;
        let manifest: Manifest = serde_json::from_str(text).with_context(|| {
            format!("the manifest {path} is not valid JSON of a drydock backup (damaged or edited?)")
        })?;
        if manifest.format > FORMAT_ENCRYPTED {
            bail!(
                "the manifest {} has format {} but this xtask reads formats up to {FORMAT_ENCRYPTED}\n  fix: update your checkout",
                path,
                manifest.format
            );
        }
        if manifest.encryption.is_some() != (manifest.format == FORMAT_ENCRYPTED) {
            bail!(
                "the manifest {} has format {} but {} encryption section (damaged or edited?)",
                path,
                manifest.format,
                if manifest.encryption.is_some() { "an" } else { "no" }
            );
        }
        if manifest.files.is_empty() || manifest.files[0].name != manifest.file {
            bail!("the manifest {} lists no data file (damaged or edited?)", path);
        }
        Ok(manifest)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn sample() -> Manifest {
        Manifest {
            format: FORMAT,
            engine: "postgres".into(),
            project: "drydock".into(),
            service: "postgres".into(),
            database: "drydock".into(),
            server_version: "17.6".into(),
            tool_version: "pg_dump (PostgreSQL) 17.6".into(),
            written_by: "xtask 0.1.0".into(),
            git_revision: "abc123".into(),
            started_at: "2026-01-02T03:04:05Z".into(),
            finished_at: "2026-01-02T03:04:09Z".into(),
            duration_secs: 4.2,
            file: "drydock_postgres_20260102T030405Z.dump".into(),
            size: 10,
            sha256: "00".repeat(32),
            compression: "zstd:1".into(),
            files: vec![
                FileEntry {
                    role: "dump".into(),
                    name: "drydock_postgres_20260102T030405Z.dump".into(),
                    size: 10,
                    sha256: "00".repeat(32),
                    plain: None,
                },
                FileEntry {
                    role: "globals".into(),
                    name: "drydock_postgres_20260102T030405Z.globals.sql".into(),
                    size: 3,
                    sha256: "11".repeat(32),
                    plain: None,
                },
            ],
            sanity: Sanity {
                tables: Some(4),
                keys: None,
            },
            reason: None,
            encryption: None,
        }
    }

    #[test]
    fn round_trips_through_json() {
        let m = sample();
        let text = m.to_json();
        for key in [
            "\"engine\": \"postgres\"",
            "\"server_version\"",
            "\"sha256\"",
            "\"duration_secs\"",
            "\"git_revision\"",
            "\"tool_version\"",
            "\"tables\": 4",
        ] {
            assert!(text.contains(key), "{key} missing in {text}");
        }
        assert!(!text.contains("\"reason\""), "absent reasons are omitted");
        let back: Manifest = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn read_rejects_damaged_and_future_manifests() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("m.json");
        std::fs::write(&path, sample().to_json()).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), sample());
        std::fs::write(&path, "{\"engine\": \"postgres\"").unwrap();
        assert!(format!("{:#}", Manifest::read(&path).unwrap_err()).contains("not valid JSON"));
        let mut future = sample();
        future.format = FORMAT_ENCRYPTED + 1;
        std::fs::write(&path, future.to_json()).unwrap();
        assert!(format!("{:#}", Manifest::read(&path).unwrap_err()).contains("update your checkout"));
        // Format 2 is the encrypted one: a plaintext manifest claiming it (or the reverse) is refused.
        let mut mixed = sample();
        mixed.format = FORMAT_ENCRYPTED;
        std::fs::write(&path, mixed.to_json()).unwrap();
        assert!(format!("{:#}", Manifest::read(&path).unwrap_err()).contains("no encryption section"));
    }
}
