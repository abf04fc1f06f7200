//! Commands as data: every external program the xtask starts is first described completely as a [`Cmd`].
//!
//! Commands are *written* with xshell's `cmd!` (interpolation `{x}` / `{xs...}`, never hand-split strings)
//! and turned into a [`Cmd`] with `Cmd::from` (or appended to one with [`Cmd::then`]); the runner
//! (`runner.rs`) then echoes, dry-runs or runs the value. Because a plan is a value, `--dry-run`, the echo with
//! secrets masked and the argv unit tests all see exactly what would run.

use std::fmt;
use std::path::PathBuf;

pub use xshell::{Shell, cmd};

/// What a command reads on standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Nothing: the child sees end-of-file at once (so it can never hang on a prompt).
    Null,
    /// The user's terminal (interactive shells).
    Inherit,
    /// A file streamed to the child.
    File(PathBuf),
}

/// Where a command's standard output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Straight to the user's terminal.
    Inherit,
    /// Captured into memory (only for small outputs such as `docker info`).
    Capture,
    /// Written to a file (created or truncated), like a shell's `> file`.
    File(PathBuf),
}

/// One external command, described completely before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    /// Environment set for the child on top of the inherited one.
    pub env: Vec<(String, String)>,
    /// Values that must never be printed: masked wherever they appear in argv or env.
    pub secrets: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub stdin: Input,
    pub stdout: Output,
    /// Inherit every stream unchanged (a TTY stays a TTY); no stderr tail is kept.
    pub interactive: bool,
}

/// A throwaway shell for writing commands where no context carries one (tests, pure plan functions).
/// Commands get no working directory from it: [`Cmd::from`] keeps a cwd only when a plan set one.
pub fn shell() -> Shell {
    Shell::new().expect("the current directory exists")
}

/// Whether `program` names an executable on PATH (or is a path to one).
pub fn program_exists(program: &str) -> bool {
    which::which(program).is_ok()
}

impl From<xshell::Cmd<'_>> for Cmd {
    /// Takes program, arguments and environment from an xshell command. The working directory is kept only
    /// when it differs from the process's own (xshell always records one).
    fn from(written: xshell::Cmd<'_>) -> Cmd {
        let command: std::process::Command = written.into();
        let mut cmd = Cmd::new(command.get_program().to_string_lossy());
        cmd.args = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        cmd.env = command
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_string_lossy().into_owned(), v?.to_string_lossy().into_owned())))
            .collect();
        let here = std::env::current_dir().ok();
        cmd.cwd = command
            .get_current_dir()
            .map(PathBuf::from)
            .filter(|dir| Some(dir) != here.as_ref());
        cmd
    }
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            secrets: Vec::new(),
            cwd: None,
            stdin: Input::Null,
            stdout: Output::Inherit,
            interactive: false,
        }
    }

    /// Appends a whole written command (its program and arguments) to this one's argv, e.g. the program a
    /// `docker compose exec -T <service>` prefix runs: `compose.exec(svc).then(cmd!(sh, "pg_dump -U {user}"))`.
    pub fn then(mut self, written: xshell::Cmd<'_>) -> Self {
        let tail = Cmd::from(written);
        self.args.push(tail.program);
        self.args.extend(tail.args);
        self.env.extend(tail.env);
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Marks a value as secret: it is replaced by `****` in every echo and error message.
    pub fn secret(mut self, value: impl Into<String>) -> Self {
        let value = value.into();
        if !value.is_empty() {
            self.secrets.push(value);
        }
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn stdin(mut self, input: Input) -> Self {
        self.stdin = input;
        self
    }

    pub fn stdout(mut self, output: Output) -> Self {
        self.stdout = output;
        self
    }

    pub fn capture(mut self) -> Self {
        self.stdout = Output::Capture;
        self
    }

    pub fn interactive(mut self) -> Self {
        self.interactive = true;
        self.stdin = Input::Inherit;
        self
    }

    /// The full argv, program first (what tests assert on).
    pub fn argv(&self) -> Vec<&str> {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect()
    }

    /// `text` with every secret of this command replaced by `****`.
    pub fn mask(&self, text: &str) -> String {
        mask(text, &self.secrets)
    }

    /// The command line as a user could paste it into a POSIX shell, secrets masked.
    pub fn display(&self) -> String {
        let mut line = self
            .argv()
            .iter()
            .map(|a| shell_quote(&self.mask(a)))
            .collect::<Vec<_>>()
            .join(" ");
        if let Input::File(path) = &self.stdin {
            line.push_str(&format!(" < {}", shell_quote(&path.display().to_string())));
        }
        if let Output::File(path) = &self.stdout {
            line.push_str(&format!(" > {}", shell_quote(&path.display().to_string())));
        }
        line
    }

    /// The environment overrides, secrets masked (shown with `-v`).
    pub fn display_env(&self) -> Vec<String> {
        self.env
            .iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(&self.mask(v))))
            .collect()
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// `text` with every one of `secrets` replaced by `****`.
pub fn mask(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_string(), |acc, secret| acc.replace(secret.as_str(), "****"))
}

/// Quotes a word for a POSIX shell only when it needs it.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,*".contains(c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_and_masks_secrets() {
        let sh = shell();
        let password = "PGPASSWORD=hunter2";
        let words = ["echo", "a b"];
        let cmd = Cmd::from(cmd!(sh, "docker exec -e {password} x {words...}")).secret("hunter2");
        assert_eq!(cmd.display(), "docker exec -e PGPASSWORD=**** x echo 'a b'");
        let cmd = cmd.env("TOKEN", "hunter2");
        assert_eq!(cmd.display_env(), vec!["TOKEN=****"]);
    }

    #[test]
    fn written_commands_keep_argv_env_and_a_real_cwd() {
        let sh = shell();
        let files = ["-f", "a b.yaml"];
        let cmd = Cmd::from(cmd!(sh, "docker compose {files...} up").env("K", "v"));
        assert_eq!(cmd.argv(), ["docker", "compose", "-f", "a b.yaml", "up"]);
        assert_eq!(cmd.env, [("K".to_string(), "v".to_string())]);
        assert_eq!(cmd.cwd, None, "the process's own cwd is not recorded");
        sh.change_dir("/");
        assert_eq!(Cmd::from(cmd!(sh, "ls")).cwd, Some(PathBuf::from("/")));
    }

    #[test]
    fn then_appends_a_written_command() {
        let sh = shell();
        let user = "app";
        let cmd = Cmd::new("docker")
            .args(["compose", "exec", "-T", "postgres"])
            .then(cmd!(sh, "psql -U {user}"));
        assert_eq!(
            cmd.argv(),
            ["docker", "compose", "exec", "-T", "postgres", "psql", "-U", "app"]
        );
    }

    #[test]
    fn quote_handles_single_quotes_and_empty() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("plain-word_1.2"), "plain-word_1.2");
    }
}
