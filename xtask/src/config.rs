//! `infra/stack.toml`: the typed description of the stack the xtask operates.
//!
//! Unknown keys are rejected so a typo cannot silently fall back to a default. Errors name the file, the key
//! and the fix.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

pub const CONFIG_PATH: &str = "infra/stack.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub project: Project,
    pub compose: ComposeFiles,
    pub services: Services,
    pub images: Images,
    pub backups: Backups,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFiles {
    pub dev: Vec<String>,
    pub prod: Vec<String>,
    pub env_file: String,
    pub env_example: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Services {
    pub api: String,
    pub frontend: String,
    pub proxy: String,
    pub postgres: String,
    pub redis: String,
    #[allow(dead_code)] // used by the mongo commands
    pub mongo: String,
}

/// Where base images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageSource {
    /// The registry when one answers, offline otherwise.
    Auto,
    /// Pinned official images pulled from a registry.
    Registry,
    /// Everything built locally from Debian packages.
    Offline,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    pub source: ImageSource,
    pub registry_probe: String,
    pub prefix: String,
    pub ca_bundle: String,
    #[serde(default)]
    pub debian_mirror: String,
    pub registry: RegistryImages,
    pub offline: OfflineImages,
}

/// The base images the stack needs, one name per role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryImages {
    pub postgres: String,
    pub redis: String,
    pub rust: String,
    pub node: String,
    pub runtime: String,
    pub nginx: String,
    pub mongo: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineImages {
    pub base: String,
    pub postgres: String,
    pub redis: String,
    pub rust: String,
    pub node: String,
    pub runtime: String,
    pub nginx: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backups {
    pub dir: String,
    pub retention: Retention,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
}

impl Config {
    /// Reads and validates the stack description at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the stack description {}: run the xtask from a drydock checkout, or pass --config <file>",
                path.display()
            )
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|err| {
            let fix = fix_for(err.message());
            anyhow::anyhow!("{}: {}{}", path.display(), err.to_string().trim_end(), fix)
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let file = path.display();
        let name = &self.project.name;
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !valid_name {
            bail!(
                "{file}: key `project.name` = {name:?} is not a valid compose project name\n  fix: use lowercase letters, digits, `-` and `_`, starting with a letter or digit (e.g. \"drydock\")"
            );
        }
        for (key, files) in [("compose.dev", &self.compose.dev), ("compose.prod", &self.compose.prod)] {
            if files.is_empty() {
                bail!(
                    "{file}: key `{key}` is empty\n  fix: list the compose files, base first, e.g. [\"infra/compose/compose.yaml\", ...]"
                );
            }
        }
        if self.backups.dir.trim().is_empty() {
            bail!("{file}: key `backups.dir` is empty\n  fix: set it to a directory such as \"backups\"");
        }
        if self.backups.retention.keep_last == 0 {
            bail!(
                "{file}: key `backups.retention.keep_last` is 0, which would allow pruning every backup\n  fix: keep at least 1"
            );
        }
        Ok(())
    }

    /// The compose files for an environment, checked to exist.
    pub fn compose_files(&self, root: &Path, env: Env) -> Result<Vec<PathBuf>> {
        let (key, files) = match env {
            Env::Dev => ("compose.dev", &self.compose.dev),
            Env::Prod => ("compose.prod", &self.compose.prod),
        };
        files
            .iter()
            .map(|f| {
                let path = root.join(f);
                if path.is_file() {
                    Ok(path)
                } else {
                    bail!(
                        "{CONFIG_PATH}: key `{key}` names {f}, which does not exist\n  fix: correct the path or restore the file"
                    )
                }
            })
            .collect()
    }
}

/// Which environment a compose command targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Env {
    Dev,
    Prod,
}

impl Env {
    pub fn name(self) -> &'static str {
        match self {
            Env::Dev => "dev",
            Env::Prod => "prod",
        }
    }
}

fn fix_for(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "\n  fix: remove or rename the key (see the expected keys above and the comments in infra/stack.toml)"
    } else if message.contains("missing field") {
        "\n  fix: add the key; infra/stack.toml in the repository shows every key with a comment"
    } else if message.contains("unknown variant") {
        "\n  fix: use one of the values listed above"
    } else {
        "\n  fix: correct the TOML at the position shown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(CONFIG_PATH)).unwrap()
    }

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new(CONFIG_PATH))
    }

    #[test]
    fn shipped_config_parses() {
        let config = parse(&shipped()).unwrap();
        assert_eq!(config.project.name, "drydock");
        assert_eq!(config.images.source, ImageSource::Auto);
        assert!(config.backups.retention.keep_last >= 1);
    }

    #[test]
    fn unknown_key_names_file_key_and_fix() {
        let text = shipped().replace("[project]\n", "[project]\nnmae = \"x\"\n");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("infra/stack.toml"), "{err}");
        // Strings only the diagnostic produces (the input line itself also contains `nmae`).
        assert!(err.contains("unknown field `nmae`"), "{err}");
        assert!(err.contains("fix:"), "{err}");
    }

    #[test]
    fn bad_image_source_lists_the_choices() {
        let text = shipped().replace("source = \"auto\"", "source = \"cloud\"");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("unknown variant `cloud`"), "{err}");
        assert!(
            err.contains("`auto`") && err.contains("`registry`") && err.contains("`offline`"),
            "{err}"
        );
    }

    #[test]
    fn missing_key_is_named() {
        let text = shipped().replace("prefix = \"drydock\"\n", "");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("prefix") && err.contains("fix:"), "{err}");
    }

    #[test]
    fn invalid_project_name_is_rejected() {
        let text = shipped().replace("name = \"drydock\"", "name = \"Dry Dock\"");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("project.name") && err.contains("fix:"), "{err}");
    }

    #[test]
    fn zero_keep_last_is_rejected() {
        let text = shipped().replace("keep_last = 7", "keep_last = 0");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("keep_last"), "{err}");
    }
}
