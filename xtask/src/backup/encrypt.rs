//! age encryption of backups (`[backups.encryption]` in infra/stack.toml).
//!
//! A backup part streams from the dump into this process (which checks its first bytes and hashes the
//! plaintext), then into `age --encrypt` for every recipient, whose output is hashed and written to the partial
//! file: plaintext never touches the disk. The manifest records the recipients' fingerprints and both hashes;
//! `backups verify` and every restore decrypt with an identity file through `age --decrypt`. Only public keys are
//! in the config; an identity is read by age itself, never by drydock, never printed.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};

use crate::backup::manifest::{EncryptionInfo, Manifest};
use crate::backup::store::hex;
use crate::cmd::{Cmd, cmd, shell};
use crate::context::Ctx;
use crate::offsite_config::Encryption;

/// The suffix of an encrypted file (`<stem>.dump.age`).
pub const SUFFIX: &str = "age";

/// `SHA256:<16 hex>` of a recipient: says whom a backup is for without repeating the key.
pub fn fingerprint(recipient: &str) -> String {
    let digest = Sha256::digest(recipient.trim().as_bytes());
    format!("SHA256:{}", &hex(&digest)[..16])
}

/// The manifest's encryption section for these recipients.
pub fn info(encryption: &Encryption) -> EncryptionInfo {
    EncryptionInfo {
        scheme: "age".into(),
        recipients: encryption.recipients.iter().map(|r| fingerprint(r)).collect(),
    }
}

/// `age --encrypt -r <recipient>...`: stdin to stdout.
pub fn encrypt_cmd(encryption: &Encryption) -> Cmd {
    let sh = shell();
    let mut args = Vec::new();
    for r in &encryption.recipients {
        args.push("-r".to_string());
        args.push(r.trim().to_string());
    }
    Cmd::from(cmd!(sh, "age --encrypt {args...}"))
}

/// `age --decrypt -i <identity> <file>`: the plaintext on stdout.
pub fn decrypt_cmd(identity: &Path, file: &Path) -> Cmd {
    let sh = shell();
    Cmd::from(cmd!(sh, "age --decrypt -i {identity} {file}"))
}

/// The identity that decrypts: `--identity`, else DRYDOCK_AGE_IDENTITY_FILE, else
/// backups.encryption.identity_file. Checked to be a readable file; its content is never read here.
pub fn identity(ctx: &Ctx, flag: Option<&Path>, manifest: &Manifest) -> Result<PathBuf> {
    let configured = ctx
        .config
        .backups
        .encryption
        .as_ref()
        .and_then(|e| e.identity_file.as_deref())
        .map(|p| ctx.path(p));
    let chosen = flag
        .map(Path::to_path_buf)
        .or_else(|| ctx.vars.age_identity.clone())
        .or(configured);
    let recipients = manifest
        .encryption
        .as_ref()
        .map(|e| e.recipients.join(", "))
        .unwrap_or_default();
    let Some(path) = chosen else {
        bail!(
            "{} is encrypted (age, for {recipients}) and no identity was given to decrypt it; nothing was touched\n  fix: pass --identity <file>, or set DRYDOCK_AGE_IDENTITY_FILE or backups.encryption.identity_file in infra/stack.toml",
            manifest.file
        );
    };
    if !path.is_file() {
        bail!(
            "the age identity {} does not exist or is not a file; nothing was touched\n  fix: pass the identity file whose public key is one of the backup's recipients ({recipients})",
            path.display()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    #[test]
    fn fingerprints_are_stable_and_never_the_key() {
        let f = fingerprint(R1);
        assert_eq!(f, fingerprint(&format!(" {R1}\n")));
        assert!(f.starts_with("SHA256:") && f.len() == 23, "{f}");
        assert!(!f.contains(&R1[4..20]));
    }

    #[test]
    fn the_age_plans() {
        let e = Encryption {
            recipients: vec![R1.into(), "ssh-ed25519 AAAAC3Nz test".into()],
            identity_file: None,
        };
        assert_eq!(
            encrypt_cmd(&e).argv(),
            ["age", "--encrypt", "-r", R1, "-r", "ssh-ed25519 AAAAC3Nz test"]
        );
        assert_eq!(
            decrypt_cmd(Path::new("/k/id.txt"), Path::new("b/x.dump.age")).argv(),
            ["age", "--decrypt", "-i", "/k/id.txt", "b/x.dump.age"]
        );
        assert_eq!(info(&e).recipients.len(), 2);
    }
}
