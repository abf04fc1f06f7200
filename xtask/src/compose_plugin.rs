//! `docker compose …` started as the Compose plugin's own binary, the way the docker CLI starts it.
//!
//! For a plugin command the docker CLI runs three programs: itself, the plugin once more to read its metadata
//! (`docker-compose docker-cli-plugin-metadata`), then the plugin with the CLI's arguments. That is about 71 ms
//! of CPU per call, against 23 ms for the plugin alone (10 × `compose version` each, `/usr/bin/time`), and a
//! `cargo xtask ci` makes about 900 compose calls. So the runner starts the plugin itself, exactly as the CLI
//! would (the CLI plugin spec): the plugin binary, the same arguments (`compose …`), and
//! `DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND` naming the docker CLI, which tells the plugin it runs as one.
//! The echo still says `docker compose …`, what a user would type.
//!
//! The plugin is looked for where the docker CLI looks, in its order: the user's `cli-plugins` directory
//! (`$DOCKER_CONFIG` or `~/.docker`), then the system directories. When the CLI's config names directories of
//! its own (`cliPluginsExtraDirs`), or no plugin is found, the call goes through the docker CLI as written.

use std::path::{Path, PathBuf};

/// The variable the docker CLI sets for a plugin it runs (the path it was started as).
pub const ORIGINAL_CLI_COMMAND: &str = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND";

/// Where the docker CLI looks for plugins on Linux after the user's directory (docker/cli, `cli-plugins/manager`).
const SYSTEM_PLUGIN_DIRS: [&str; 4] = [
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
];

/// The docker CLI's config directory for a child with this environment (its own `DOCKER_CONFIG` or `HOME`
/// first, then ours).
fn config_dir(env: &[(String, String)]) -> Option<PathBuf> {
    let var = |key: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(key).ok())
            .filter(|v| !v.is_empty())
    };
    var("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|home| Path::new(&home).join(".docker")))
}

/// The Compose plugin the docker CLI would run for a child with this environment, if it can be known without
/// the CLI.
pub fn find(env: &[(String, String)]) -> Option<PathBuf> {
    let config = config_dir(env);
    if let Some(dir) = &config
        && std::fs::read_to_string(dir.join("config.json")).is_ok_and(|text| text.contains("cliPluginsExtraDirs"))
    {
        return None;
    }
    let user = config.map(|dir| dir.join("cli-plugins"));
    user.into_iter()
        .chain(SYSTEM_PLUGIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join("docker-compose"))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files;

    /// A docker config directory with a `cli-plugins/docker-compose` of this mode, and the environment naming it.
    fn config_with_plugin(mode: u32) -> (tempfile::TempDir, PathBuf, [(String, String); 1]) {
        let config = tempfile::tempdir().unwrap();
        let plugin = config.path().join("cli-plugins").join("docker-compose");
        files::replace(&plugin, b"#!/bin/sh\n", mode).unwrap();
        let env = [("DOCKER_CONFIG".to_string(), config.path().display().to_string())];
        (config, plugin, env)
    }

    #[test]
    fn the_users_plugin_comes_before_the_systems() {
        // Not executable: the CLI would not run it either.
        let (_config, plugin, env) = config_with_plugin(0o644);
        assert_ne!(find(&env).as_deref(), Some(plugin.as_path()));
        files::replace(&plugin, b"#!/bin/sh\n", 0o755).unwrap();
        assert_eq!(find(&env).as_deref(), Some(plugin.as_path()));
    }

    #[test]
    fn extra_plugin_dirs_leave_the_choice_to_the_cli() {
        let (config, _plugin, env) = config_with_plugin(0o755);
        std::fs::write(
            config.path().join("config.json"),
            r#"{"cliPluginsExtraDirs": ["/opt/plugins"]}"#,
        )
        .unwrap();
        assert_eq!(find(&env), None);
    }
}
