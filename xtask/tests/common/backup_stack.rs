//! A compose project of its own for a backup test: postgres and redis only, ephemeral ports, backups in a
//! temporary directory through a copy of infra/stack.toml; removed with its volumes when it drops, also when the
//! test fails. Used by backup_real.rs and offsite_real.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::{psql_in, root, text};

/// The end of a long text (failure messages stay readable).
pub fn tail(text: &str) -> &str {
    let cut = text.len().saturating_sub(3000);
    let cut = (cut..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    &text[cut..]
}

pub struct Stack {
    pub project: String,
    /// Removed when the stack drops, also when a test panics.
    _guard: tempfile::TempDir,
    pub dir: PathBuf,
    mounts: Vec<PathBuf>,
}

impl Stack {
    pub fn up(tag: &str) -> Stack {
        let project = format!("drydock-bt-{tag}");
        let guard = tempfile::Builder::new()
            .prefix(&format!("{project}-"))
            .tempdir()
            .unwrap();
        let dir = guard.path().to_path_buf();
        let stack = Stack {
            project,
            _guard: guard,
            dir,
            mounts: Vec::new(),
        };
        stack.write_config("stack.toml", &stack.dir.join("backups"));
        let _ = stack.compose(&["down", "--volumes", "--remove-orphans"]);
        let out = stack.compose(&["up", "--detach", "--wait", "postgres", "redis"]);
        assert!(out.status.success(), "the test stack did not start:\n{}", text(&out));
        stack
    }

    /// A copy of infra/stack.toml whose backups.dir is `backups`.
    pub fn write_config(&self, name: &str, backups: &Path) -> PathBuf {
        self.write_config_with(name, backups, "")
    }

    /// [`Stack::write_config`] with `extra` TOML appended (e.g. a `[backups.remote]` table).
    pub fn write_config_with(&self, name: &str, backups: &Path, extra: &str) -> PathBuf {
        let shipped = std::fs::read_to_string(root().join("infra/stack.toml")).unwrap();
        let config = shipped.replace(
            "dir = \"backups\"",
            &format!("dir = {:?}", backups.display().to_string()),
        );
        assert_ne!(config, shipped, "infra/stack.toml no longer has dir = \"backups\"");
        let path = self.dir.join(name);
        std::fs::write(&path, format!("{config}\n{extra}")).unwrap();
        path
    }

    pub fn env(&self, cmd: &mut Command) {
        cmd.env("DRYDOCK_PROJECT", &self.project)
            .env("DRYDOCK_POSTGRES_PORT", "0")
            .env("DRYDOCK_REDIS_PORT", "0")
            .env("DRYDOCK_API_PORT", "0")
            .env("DRYDOCK_APP_PORT", "0")
            .env("DRYDOCK_FRONTEND_PORT", "0")
            .env("DRYDOCK_API_METRICS_PORT", "0")
            .env("POSTGRES_USER", "drydock")
            .env("POSTGRES_PASSWORD", "bt-postgres-password")
            .env("POSTGRES_DB", "drydock")
            .env("REDIS_PASSWORD", "bt-redis-password")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
    }

    pub fn compose(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("docker");
        let root = root();
        cmd.args(["compose", "-p", &self.project, "-f"])
            .arg(root.join("infra/compose/compose.yaml"))
            .arg("-f")
            .arg(root.join("infra/compose/compose.dev.yaml"))
            .args(args);
        self.env(&mut cmd);
        cmd.output().unwrap()
    }

    pub fn xtask_cmd(&self, config: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(["--offline", "--config"])
            .arg(self.dir.join(config))
            .args(args);
        self.env(&mut cmd);
        cmd
    }

    pub fn xtask(&self, args: &[&str]) -> Output {
        self.xtask_cmd("stack.toml", args).output().unwrap()
    }

    pub fn xtask_ok(&self, args: &[&str]) -> String {
        let out = self.xtask(args);
        assert!(out.status.success(), "xtask {args:?} failed:\n{}", tail(&text(&out)));
        text(&out)
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.xtask_cmd("stack.toml", args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// SQL as the application user in the stack's postgres container ([`psql_in`]); its output.
    pub fn psql(&self, sql: &str) -> String {
        let container = format!("{}-postgres-1", self.project);
        let out = psql_in(&container, "drydock", "drydock", sql);
        assert!(out.status.success(), "psql {}:\n{}", tail(sql), tail(&text(&out)));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The same through `cargo xtask db-psql`, the command a user runs.
    pub fn db_psql(&self, sql: &str) -> String {
        let out = self.xtask(&["-q", "db-psql", "--", "-XAt", "-c", sql]);
        assert!(out.status.success(), "db-psql {}:\n{}", tail(sql), tail(&text(&out)));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn redis(&self, args: &[&str]) -> String {
        let mut all = vec!["-q", "db-redis", "--"];
        all.extend_from_slice(args);
        let out = self.xtask(&all);
        assert!(out.status.success(), "redis-cli {args:?}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a shell script in the redis container with the password in REDISCLI_AUTH, `input` on its stdin.
    pub fn redis_in_container(&self, input: &str, script: &str) -> String {
        use std::io::Write;
        let mut child = Command::new("docker")
            .args([
                "exec",
                "-i",
                "-e",
                "REDISCLI_AUTH=bt-redis-password",
                &self.container("redis"),
                "sh",
                "-c",
                script,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{script}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn backups(&self, service: &str) -> PathBuf {
        self.dir.join("backups").join(service)
    }

    /// File name → content hash of every file in a service's backup directory (the lock file excluded).
    pub fn files(&self, service: &str) -> BTreeMap<String, Vec<u8>> {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(self.backups(service)).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != ".lock" {
                files.insert(name, std::fs::read(entry.path()).unwrap());
            }
        }
        files
    }

    pub fn container(&self, service: &str) -> String {
        String::from_utf8_lossy(&self.compose(&["ps", "-q", service]).stdout)
            .trim()
            .to_string()
    }

    pub fn mount_tmpfs(&mut self, dir: &Path, options: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs (needs root): {}", text(&out));
        self.mounts.push(dir.to_path_buf());
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for m in self.mounts.drain(..) {
            let _ = Command::new("umount").arg(&m).output();
        }
        let _ = self.compose(&["down", "--volumes", "--remove-orphans", "--timeout", "5"]);
    }
}
