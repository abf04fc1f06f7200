//! Commands as data, and the one place that runs them.
//!
//! Every external program the xtask starts is first described as a [`Cmd`]; the [`Runner`] then echoes it
//! (secrets masked), runs it (or, with `--dry-run`, only prints it), checks its exit status and, on failure,
//! repeats the command together with the tail of its stderr, because the echo may have scrolled away.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;

use anyhow::{Context, Result, bail};

/// How many trailing stderr lines a failure report carries.
const STDERR_TAIL_LINES: usize = 25;

/// What a command reads on standard input.
#[allow(dead_code)] // File: used by restores (landing with the backup commands)
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

    #[allow(dead_code)] // used by the backup commands
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

    #[allow(dead_code)] // used by the restore commands
    pub fn stdin(mut self, input: Input) -> Self {
        self.stdin = input;
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

    fn mask(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_string(), |acc, secret| acc.replace(secret.as_str(), "****"))
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

/// What a finished command left behind.
#[derive(Debug, Default, Clone)]
pub struct Finished {
    pub stdout: String,
}

/// Runs [`Cmd`]s: echo, dry-run, status checks, failure reports.
#[derive(Debug, Clone, Copy)]
pub struct Runner {
    pub dry_run: bool,
    pub verbose: bool,
    pub quiet: bool,
}

impl Runner {
    fn echo(&self, cmd: &Cmd) {
        if self.quiet && !self.dry_run {
            return;
        }
        let style = Style::stderr();
        let prefix = if self.dry_run { "[dry-run] $" } else { "$" };
        eprintln!("{}", style.dim(&format!("{prefix} {cmd}")));
        if self.verbose {
            let cwd = cmd
                .cwd
                .clone()
                .or_else(|| std::env::current_dir().ok())
                .unwrap_or_default();
            eprintln!("{}", style.dim(&format!("    cwd: {}", cwd.display())));
            for pair in cmd.display_env() {
                eprintln!("{}", style.dim(&format!("    env: {pair}")));
            }
        }
    }

    /// Runs the command and fails unless it exits 0. With `--dry-run` only prints it.
    pub fn run(&self, cmd: &Cmd) -> Result<Finished> {
        self.echo(cmd);
        if self.dry_run {
            return Ok(Finished::default());
        }
        let (status, finished, stderr_tail) = spawn_and_wait(cmd)?;
        if !status.success() {
            bail!("{}", failure_report(cmd, status, &stderr_tail));
        }
        Ok(finished)
    }

    /// Runs a command whose stdout is needed (small outputs only) and returns it.
    pub fn read(&self, cmd: &Cmd) -> Result<String> {
        let cmd = cmd.clone().capture();
        Ok(self.run(&cmd)?.stdout)
    }

    /// A read-only query whose failure is an answer, not an error (e.g. "is the engine up?").
    /// Not echoed unless `-v`; with `--dry-run` it does not run and returns `None`.
    pub fn probe(&self, cmd: &Cmd) -> Option<Probe> {
        if self.dry_run {
            return None;
        }
        if self.verbose {
            self.echo(cmd);
        }
        let mut command = build_command(cmd);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match command.output() {
            Ok(out) => Some(Probe {
                success: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }),
            Err(err) => Some(Probe {
                success: false,
                stdout: String::new(),
                stderr: err.to_string(),
            }),
        }
    }
}

/// The answer of [`Runner::probe`].
#[derive(Debug, Clone)]
pub struct Probe {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

fn build_command(cmd: &Cmd) -> Command {
    let program: OsString = which::which(&cmd.program)
        .map(Into::into)
        .unwrap_or_else(|_| cmd.program.clone().into());
    let mut command = Command::new(program);
    command.args(&cmd.args);
    for (key, value) in &cmd.env {
        command.env(key, value);
    }
    if let Some(dir) = &cmd.cwd {
        command.current_dir(dir);
    }
    command
}

fn spawn_and_wait(cmd: &Cmd) -> Result<(ExitStatus, Finished, Vec<String>)> {
    let mut command = build_command(cmd);
    if cmd.interactive {
        let status = command
            .stdin(Stdio::inherit())
            .status()
            .with_context(|| not_started(cmd))?;
        return Ok((status, Finished::default(), Vec::new()));
    }
    match &cmd.stdin {
        Input::Null => command.stdin(Stdio::null()),
        Input::Inherit => command.stdin(Stdio::inherit()),
        Input::File(path) => command.stdin(Stdio::from(
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?,
        )),
    };
    command.stdout(match cmd.stdout {
        Output::Inherit => Stdio::inherit(),
        Output::Capture => Stdio::piped(),
    });
    command.stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| not_started(cmd))?;

    // Forward stderr live while keeping its tail for the failure report.
    let stderr = child.stderr.take().expect("stderr is piped");
    let secrets = cmd.secrets.clone();
    let tee = thread::spawn(move || tee_stderr(stderr, &secrets));
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)
            .context("reading the command's output")?;
    }
    let status = child.wait().with_context(|| format!("waiting for `{cmd}`"))?;
    let tail = tee.join().unwrap_or_default();
    Ok((status, Finished { stdout }, tail))
}

fn tee_stderr(stderr: impl Read, secrets: &[String]) -> Vec<String> {
    let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    let mut out = io::stderr();
    for line in BufReader::new(stderr).split(b'\n') {
        let Ok(line) = line else { break };
        let text = secrets
            .iter()
            .fold(String::from_utf8_lossy(&line).into_owned(), |acc, s| {
                acc.replace(s.as_str(), "****")
            });
        let _ = writeln!(out, "{text}");
        if tail.len() == STDERR_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(text);
    }
    tail.into()
}

fn not_started(cmd: &Cmd) -> String {
    format!(
        "could not start `{}`: is `{}` installed and on PATH? (`cargo xtask doctor` checks prerequisites)",
        cmd.display(),
        cmd.program
    )
}

fn failure_report(cmd: &Cmd, status: ExitStatus, stderr_tail: &[String]) -> String {
    let code = status
        .code()
        .map_or_else(|| "killed by a signal".to_string(), |c| format!("exit status {c}"));
    let mut report = format!("command failed ({code}):\n  $ {}", cmd.display());
    if !stderr_tail.is_empty() {
        report.push_str("\n  last lines of its stderr:");
        for line in stderr_tail {
            report.push_str("\n    | ");
            report.push_str(line);
        }
    }
    report
}

/// Minimal ANSI styling that honours `NO_COLOR` and non-terminal output.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    enabled: bool,
}

impl Style {
    pub fn stderr() -> Self {
        Style {
            enabled: io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    pub fn stdout() -> Self {
        Style {
            enabled: io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn green(&self, text: &str) -> String {
        self.paint("32", text)
    }

    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }

    pub fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
}

/// Prints a progress/status line for the user on stderr (suppressed by `-q`).
pub fn say(quiet: bool, text: &str) {
    if !quiet {
        eprintln!("{}", Style::stderr().bold(&format!("==> {text}")));
    }
}

/// Whether `path` names an executable program on PATH (or is a path to one).
pub fn program_exists(program: &str) -> bool {
    which::which(program).is_ok()
}

/// Resolves `path` against `root` unless it is absolute.
pub fn under(root: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { root.join(p) }
}

/// How a streamed transfer went: bytes moved, their SHA-256 (hex) and the first bytes (for format checks).
#[derive(Debug, Default, Clone)]
pub struct Streamed {
    pub bytes: u64,
    pub sha256: String,
    pub head: Vec<u8>,
}

/// Bytes and rate of a long transfer on one self-overwriting stderr line, only when stderr is a terminal.
pub struct Progress {
    label: String,
    enabled: bool,
    started: std::time::Instant,
    last: std::time::Instant,
    total: Option<u64>,
}

impl Progress {
    pub fn new(label: &str, total: Option<u64>, quiet: bool) -> Progress {
        let now = std::time::Instant::now();
        Progress {
            label: label.to_string(),
            enabled: !quiet && io::stderr().is_terminal(),
            started: now,
            last: now,
            total,
        }
    }

    pub fn update(&mut self, bytes: u64) {
        if !self.enabled || self.last.elapsed().as_millis() < 250 {
            return;
        }
        self.last = std::time::Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let mb = bytes as f64 / 1e6;
        let of = self
            .total
            .map(|t| format!(" of {:.1} MB", t as f64 / 1e6))
            .unwrap_or_default();
        eprint!("\r\x1b[2K  {}: {mb:.1} MB{of} ({:.1} MB/s)", self.label, mb / secs);
        let _ = io::stderr().flush();
    }

    pub fn finish(&mut self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
            let _ = io::stderr().flush();
        }
    }
}

const STREAM_CHUNK: usize = 1 << 20;

impl Runner {
    /// Runs `cmd` with its stdout streamed into `sink` in chunks (never held in memory), hashing it on the
    /// way. Fails if the command fails or if writing fails (then the child is killed, so a full disk does not
    /// leave a dump running). With `--dry-run` prints the command with `> target` and runs nothing.
    pub fn stream_out(
        &self,
        cmd: &Cmd,
        target: &Path,
        sink: &mut dyn Write,
        progress: &mut Progress,
    ) -> Result<Streamed> {
        use sha2::Digest;
        if !self.quiet || self.dry_run {
            let prefix = if self.dry_run { "[dry-run] $" } else { "$" };
            let line = format!("{prefix} {cmd} > {}", shell_quote(&target.display().to_string()));
            eprintln!("{}", Style::stderr().dim(&line));
        }
        if self.dry_run {
            return Ok(Streamed::default());
        }
        let mut command = build_command(cmd);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().with_context(|| not_started(cmd))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let secrets = cmd.secrets.clone();
        let tee = thread::spawn(move || tee_stderr(stderr, &secrets));
        let mut out = child.stdout.take().expect("stdout is piped");
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; STREAM_CHUNK];
        let mut streamed = Streamed::default();
        let copied: Result<()> = loop {
            let n = match out.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(anyhow::Error::new(e).context(format!("reading the output of `{cmd}` failed"))),
            };
            if let Err(e) = sink.write_all(&buf[..n]) {
                break Err(anyhow::Error::new(e).context(format!("writing {} failed", target.display())));
            }
            hasher.update(&buf[..n]);
            if streamed.head.len() < 64 {
                let take = (64 - streamed.head.len()).min(n);
                streamed.head.extend_from_slice(&buf[..take]);
            }
            streamed.bytes += n as u64;
            progress.update(streamed.bytes);
        };
        progress.finish();
        if copied.is_err() {
            let _ = child.kill();
        }
        drop(out);
        let status = child.wait().with_context(|| format!("waiting for `{cmd}`"))?;
        let tail = tee.join().unwrap_or_default();
        copied?;
        if !status.success() {
            bail!("{}", failure_report(cmd, status, &tail));
        }
        streamed.sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(streamed)
    }

    /// Runs `cmd` with the file at `source` streamed to its stdin in chunks (with progress); its stdout goes
    /// to the user. Fails if the command fails, including when it stops reading early.
    pub fn stream_in(&self, cmd: &Cmd, source: &Path, progress: &mut Progress) -> Result<u64> {
        let mut shown = cmd.clone();
        shown.stdin = Input::File(source.to_path_buf());
        self.echo(&shown);
        if self.dry_run {
            return Ok(0);
        }
        let mut file = std::fs::File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
        let mut command = build_command(cmd);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped());
        let mut child = command.spawn().with_context(|| not_started(cmd))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let secrets = cmd.secrets.clone();
        let tee = thread::spawn(move || tee_stderr(stderr, &secrets));
        let mut input = child.stdin.take().expect("stdin is piped");
        let mut buf = vec![0u8; STREAM_CHUNK];
        let mut sent = 0u64;
        let fed: Result<()> = loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(anyhow::Error::new(e).context(format!("reading {} failed", source.display()))),
            };
            if let Err(e) = input.write_all(&buf[..n]) {
                // The child stopped reading (usually it failed: its status and stderr say why).
                break Err(anyhow::Error::new(e).context(format!("`{cmd}` stopped reading its input")));
            }
            sent += n as u64;
            progress.update(sent);
        };
        progress.finish();
        drop(input);
        let status = child.wait().with_context(|| format!("waiting for `{cmd}`"))?;
        let tail = tee.join().unwrap_or_default();
        if !status.success() {
            bail!("{}", failure_report(cmd, status, &tail));
        }
        fed?;
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_and_masks_secrets() {
        let cmd = Cmd::new("docker")
            .args(["exec", "-e", "PGPASSWORD=hunter2", "x", "echo", "a b"])
            .secret("hunter2");
        assert_eq!(cmd.display(), "docker exec -e PGPASSWORD=**** x echo 'a b'");
        let cmd = cmd.env("TOKEN", "hunter2");
        assert_eq!(cmd.display_env(), vec!["TOKEN=****"]);
    }

    #[test]
    fn quote_handles_single_quotes_and_empty() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("plain-word_1.2"), "plain-word_1.2");
    }

    #[test]
    fn dry_run_runs_nothing() {
        let runner = Runner {
            dry_run: true,
            verbose: false,
            quiet: true,
        };
        // A program that cannot exist: a real run would fail to start.
        let out = runner.run(&Cmd::new("definitely-not-a-program-xyz")).unwrap();
        assert!(out.stdout.is_empty());
        assert!(runner.probe(&Cmd::new("true")).is_none());
    }

    #[test]
    fn failure_reports_command_status_and_stderr_tail() {
        let runner = Runner {
            dry_run: false,
            verbose: false,
            quiet: true,
        };
        let cmd = Cmd::new("sh")
            .args(["-c", "echo first >&2; echo 'secret-value oops' >&2; exit 3"])
            .secret("secret-value");
        let err = runner.run(&cmd).unwrap_err().to_string();
        assert!(err.contains("exit status 3"), "{err}");
        assert!(err.contains("| **** oops"), "{err}");
        assert!(!err.contains("secret-value"), "{err}");
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let runner = Runner {
            dry_run: false,
            verbose: false,
            quiet: true,
        };
        let err = runner.run(&Cmd::new("definitely-not-a-program-xyz")).unwrap_err();
        assert!(format!("{err:#}").contains("is `definitely-not-a-program-xyz` installed"));
    }

    #[test]
    fn read_captures_stdout() {
        let runner = Runner {
            dry_run: false,
            verbose: false,
            quiet: true,
        };
        assert_eq!(runner.read(&Cmd::new("echo").arg("hi")).unwrap(), "hi\n");
    }
}
