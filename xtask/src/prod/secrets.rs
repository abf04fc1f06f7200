//! The production secrets: which files there are, what makes a value acceptable, generating missing ones.
//! Secrets reach the containers as files (compose secrets), never through their environment or argv.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::compose::parse_env_file;
use crate::context::Ctx;
use crate::files;

/// One secret file: compose secret name, file name, and whether only Grafana needs it.
#[derive(Debug, Clone, Copy)]
pub struct SecretSpec {
    pub name: &'static str,
    pub file: &'static str,
    pub grafana_only: bool,
}

pub const SECRETS: &[SecretSpec] = &[
    SecretSpec {
        name: "postgres_password",
        file: "postgres_password.txt",
        grafana_only: false,
    },
    SecretSpec {
        name: "redis_password",
        file: "redis_password.txt",
        grafana_only: false,
    },
    SecretSpec {
        name: "grafana_admin_password",
        file: "grafana_admin_password.txt",
        grafana_only: true,
    },
];

/// Values no production secret may have: weak defaults, whatever the project's examples contain.
const WEAK: &[&str] = &[
    "password",
    "changeme",
    "changethis",
    "secret",
    "postgres",
    "redis",
    "admin",
    "drydock",
];

const MIN_SECRET_LEN: usize = 16;

/// The directory holding the secret files (`DRYDOCK_SECRETS_DIR` or infra/secrets).
pub fn secrets_dir(ctx: &Ctx) -> PathBuf {
    ctx.vars
        .secrets_dir
        .clone()
        .unwrap_or_else(|| ctx.root.join("infra/secrets"))
}

/// The directory the proxy's certificate is mounted from (`DRYDOCK_TLS_DIR` or infra/secrets/tls).
pub fn tls_dir(ctx: &Ctx) -> PathBuf {
    ctx.vars.tls_dir.clone().unwrap_or_else(|| secrets_dir(ctx).join("tls"))
}

/// The example/default passwords production must never use: every `*PASSWORD*`/`*SECRET*`/`*TOKEN*` value of
/// the example env file.
pub fn example_secrets(ctx: &Ctx) -> Vec<String> {
    let path = ctx.path(&ctx.config.compose.env_example);
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_env_file(&text)
        .into_iter()
        .filter(|(k, v)| {
            let k = k.to_ascii_uppercase();
            (k.contains("PASSWORD") || k.contains("SECRET") || k.contains("TOKEN")) && !v.is_empty()
        })
        .map(|(_, v)| v)
        .collect()
}

/// Why a secret value is not acceptable for production, if it is not.
pub fn secret_problem(value: &str, examples: &[String]) -> Option<String> {
    if value.is_empty() {
        return Some("is empty".into());
    }
    if examples.iter().any(|e| e == value) {
        return Some("is the example password from .env.example".into());
    }
    if WEAK.iter().any(|w| value.eq_ignore_ascii_case(w)) {
        return Some("is a well-known default password".into());
    }
    if value.len() < MIN_SECRET_LEN {
        return Some(format!("is shorter than {MIN_SECRET_LEN} characters"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '`' | '$'))
    {
        return Some("contains whitespace, quotes, `\\`, `` ` `` or `$` (use letters, digits and punctuation)".into());
    }
    None
}

/// A random password: 32 letters and digits from the kernel's CSPRNG.
pub fn random_secret() -> Result<String> {
    use std::io::Read;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(32);
    let mut urandom = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    let mut byte = [0u8; 1];
    while out.len() < 32 {
        urandom.read_exact(&mut byte).context("reading /dev/urandom")?;
        // Rejection sampling keeps the choice uniform (248 = 4 * 62).
        if byte[0] < 248 {
            out.push(ALPHABET[(byte[0] % 62) as usize] as char);
        }
    }
    Ok(out)
}

/// Creates missing secret files (0444 in a 0700 directory). Existing files are never touched.
pub fn generate_secrets(ctx: &Ctx, with_grafana: bool) -> Result<()> {
    let dir = secrets_dir(ctx);
    if ctx.run.dry_run {
        ctx.say(&format!(
            "(dry-run) would create missing secret files in {}",
            dir.display()
        ));
        return Ok(());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 0700 {}", dir.display()))?;
    for spec in SECRETS.iter().filter(|s| with_grafana || !s.grafana_only) {
        let path = dir.join(spec.file);
        if path.exists() {
            continue;
        }
        // Written whole under a temporary name, then given its name (never replacing a file).
        files::write_new(&path, (random_secret()? + "\n").as_bytes(), 0o444)?;
        ctx.say(&format!("created {} (random, 32 characters)", path.display()));
    }
    Ok(())
}

/// Refuses missing, unreadable, example or weak secrets, each with its fix. Returns the values (to mask).
pub fn check_secrets(ctx: &Ctx, with_grafana: bool) -> Result<Vec<String>> {
    let dir = secrets_dir(ctx);
    let examples = example_secrets(ctx);
    let mut problems = Vec::new();
    let mut values = Vec::new();
    let dir_mode = std::fs::metadata(&dir).map(|m| m.permissions().mode()).unwrap_or(0o700);
    if dir_mode & 0o077 != 0 {
        problems.push(format!(
            "{} is accessible to other users (mode {:o})\n    fix: chmod 0700 {}",
            dir.display(),
            dir_mode & 0o777,
            dir.display()
        ));
    }
    for spec in SECRETS.iter().filter(|s| with_grafana || !s.grafana_only) {
        let path = dir.join(spec.file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push(format!(
                    "{} (compose secret `{}`) is missing\n    fix: cargo xtask prod-up --generate-secrets   (or write a password into it; see infra/secrets/README.md)",
                    path.display(),
                    spec.name
                ));
                continue;
            }
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        let value = text.trim_end_matches(['\n', '\r']).to_string();
        if let Some(problem) = secret_problem(&value, &examples) {
            problems.push(format!(
                "{} {problem}: production refuses it\n    fix: replace it with a random password, e.g. `rm {}` then `cargo xtask prod-up --generate-secrets` (a new postgres password also needs ALTER ROLE on an existing database)",
                path.display(),
                path.display()
            ));
        }
        let mode = std::fs::metadata(&path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0o444);
        if mode & 0o004 == 0 {
            problems.push(format!(
                "{} is not readable by the containers' non-root users (mode {:o}): compose mounts it as it is\n    fix: chmod 0444 {}   (the directory, mode 0700, keeps other host users out)",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
        values.push(value);
    }
    if !problems.is_empty() {
        bail!("the production secrets are not ready:\n  - {}", problems.join("\n  - "));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_parsing() {
        let env = parse_env_file("# c\nPOSTGRES_PASSWORD=drydock-dev-password\nexport A=\"q v\"\n\nB='x'\n");
        assert_eq!(env["POSTGRES_PASSWORD"], "drydock-dev-password");
        assert_eq!(env["A"], "q v");
        assert_eq!(env["B"], "x");
    }

    #[test]
    fn secrets_are_judged() {
        let examples = vec!["drydock-dev-password".to_string()];
        assert!(
            secret_problem("drydock-dev-password", &examples)
                .unwrap()
                .contains("example")
        );
        assert!(secret_problem("", &examples).unwrap().contains("empty"));
        assert!(secret_problem("Password", &examples).unwrap().contains("default"));
        assert!(secret_problem("short1", &examples).unwrap().contains("shorter"));
        assert!(secret_problem("with space inside it!!", &examples).is_some());
        assert!(secret_problem("a$dollar-sign-password", &examples).is_some());
        assert_eq!(secret_problem("Zq8v2LmN4pR7sT1wX9yB3cD5", &examples), None);
    }

    #[test]
    fn random_secrets_are_strong_and_different() {
        let a = random_secret().unwrap();
        let b = random_secret().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(secret_problem(&a, &[]), None);
    }
}
