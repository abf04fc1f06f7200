//! The one place that runs [`Cmd`]s, on duct.
//!
//! The [`Runner`] echoes a command (secrets masked), runs it (or, with `--dry-run`, only prints it), checks
//! its exit status itself and, on failure, repeats the command together with the tail of its stderr, because
//! the echo may have scrolled away. stdin is null unless the command says otherwise (a child can never hang
//! on a prompt); stderr is teed live to the user while its tail is kept for the report.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::ExitStatus;
use std::thread::{self, JoinHandle};

use anyhow::{Context, Result, bail};

use crate::cmd::{Cmd, Input, Output, mask, shell_quote};
use crate::term::{self, Progress, Style};

/// How many trailing stderr lines a failure report carries.
const STDERR_TAIL_LINES: usize = 25;
/// Compose's parallelism towards a remote engine over SSH (see `Runner::expression`).
const REMOTE_PARALLEL_LIMIT: &str = "4";
/// Chunk size of the streamed transfers (backups, restores).
const STREAM_CHUNK: usize = 1 << 20;

/// What a finished command left behind.
#[derive(Debug, Default, Clone)]
pub struct Finished {
    pub stdout: String,
}

/// The answer of [`Runner::probe`].
#[derive(Debug, Clone)]
pub struct Probe {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// How a streamed transfer went: bytes moved, their SHA-256 (hex) and the first bytes (for format checks).
#[derive(Debug, Default, Clone)]
pub struct Streamed {
    pub bytes: u64,
    pub sha256: String,
    pub head: Vec<u8>,
}

/// Runs [`Cmd`]s: echo, dry-run, status checks, failure reports.
#[derive(Debug, Clone, Copy)]
pub struct Runner {
    pub dry_run: bool,
    pub verbose: bool,
    pub quiet: bool,
    /// The engine every `docker` command addresses when it is not the one the environment names
    /// (`--host`): given to each docker child as `DOCKER_HOST` (and shown in the echo). See `target.rs`.
    pub docker_host: Option<&'static str>,
}

impl Runner {
    /// `$ <command>` (or `[dry-run] $ …`) on stderr, with `-v` also its cwd and environment; `redirect`
    /// shows where its stdout goes (`> file`).
    fn echo(&self, cmd: &Cmd, redirect: Option<&Path>) {
        if self.quiet && !self.dry_run {
            return;
        }
        let style = Style::stderr();
        let prefix = if self.dry_run { "[dry-run] $" } else { "$" };
        let engine = self
            .remote(cmd)
            .map(|host| format!("DOCKER_HOST={} ", shell_quote(host)))
            .unwrap_or_default();
        let mut line = format!("{prefix} {engine}{cmd}");
        if let Some(target) = redirect {
            line.push_str(&format!(" > {}", shell_quote(&target.display().to_string())));
        }
        term::line(&style.dim(&line));
        if self.verbose {
            let cwd = cmd
                .cwd
                .clone()
                .or_else(|| std::env::current_dir().ok())
                .unwrap_or_default();
            term::line(&style.dim(&format!("    cwd: {}", cwd.display())));
            for pair in cmd.display_env() {
                term::line(&style.dim(&format!("    env: {pair}")));
            }
        }
    }

    /// Runs the command and fails unless it exits 0. With `--dry-run` only prints it.
    pub fn run(&self, cmd: &Cmd) -> Result<Finished> {
        self.echo(cmd, None);
        if self.dry_run {
            return Ok(Finished::default());
        }
        if cmd.interactive {
            let out = self.expression(cmd).run().with_context(|| not_started(cmd))?;
            check(cmd, out.status, &[])?;
            return Ok(Finished::default());
        }
        let mut expr = self.expression(cmd);
        expr = match &cmd.stdin {
            Input::Null => expr.stdin_null(),
            Input::Inherit => expr,
            Input::File(path) => {
                let file = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
                expr.stdin_file(file)
            }
        };
        match &cmd.stdout {
            Output::Inherit => {}
            Output::Capture => expr = expr.stdout_capture(),
            Output::File(path) => expr = expr.stdout_path(path),
        }
        let (expr, tee) = tee_stderr(expr, cmd)?;
        let handle = expr.start().with_context(|| not_started(cmd));
        drop(expr); // closes our end of the stderr pipe, so the tee sees EOF when the child exits
        let output = handle.and_then(|h| h.into_output().with_context(|| format!("waiting for `{cmd}`")));
        let tail = join(tee);
        let output = output?;
        check(cmd, output.status, &tail)?;
        Ok(Finished {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        })
    }

    /// Runs a command and returns its stdout and stderr, both captured (small outputs only; nothing is shown
    /// but the echo). Fails like [`Runner::run`], with the stderr tail.
    pub fn output(&self, cmd: &Cmd) -> Result<(String, String)> {
        self.echo(cmd, None);
        if self.dry_run {
            return Ok(Default::default());
        }
        let out = self
            .expression(cmd)
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .run()
            .with_context(|| not_started(cmd))?;
        let stderr = mask(&String::from_utf8_lossy(&out.stderr), &cmd.secrets);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail: Vec<String> = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..]
            .iter()
            .map(|l| l.to_string())
            .collect();
        check(cmd, out.status, &tail)?;
        Ok((String::from_utf8_lossy(&out.stdout).into_owned(), stderr))
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
            self.echo(cmd, None);
        }
        let out = self
            .expression(cmd)
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .run();
        Some(match out {
            Ok(out) => Probe {
                success: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Err(err) => Probe {
                success: false,
                stdout: String::new(),
                stderr: err.to_string(),
            },
        })
    }

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
        self.echo(cmd, Some(target));
        if self.dry_run {
            return Ok(Streamed::default());
        }
        let (expr, tee) = tee_stderr(self.expression(cmd).stdin_null(), cmd)?;
        let reader = expr.reader().with_context(|| not_started(cmd));
        drop(expr);
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                join(tee);
                return Err(e);
            }
        };
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; STREAM_CHUNK];
        let mut streamed = Streamed::default();
        let copied: Result<()> = loop {
            let n = match (&reader).read(&mut buf) {
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
            let _ = reader.kill();
        }
        // EOF (or the kill) has reaped the child: its status is there.
        let status = reader
            .try_wait()
            .with_context(|| format!("waiting for `{cmd}`"))?
            .map(|out| out.status);
        drop(reader);
        let tail = join(tee);
        copied?;
        match status {
            Some(status) => check(cmd, status, &tail)?,
            None => bail!("`{cmd}` did not finish after closing its output"),
        }
        streamed.sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(streamed)
    }

    /// Runs `cmd` with the file at `source` streamed to its stdin in chunks (with progress); its stdout goes
    /// to the user. Fails if the command fails, including when it stops reading early.
    pub fn stream_in(&self, cmd: &Cmd, source: &Path, progress: &mut Progress) -> Result<u64> {
        let mut shown = cmd.clone();
        shown.stdin = Input::File(source.to_path_buf());
        self.echo(&shown, None);
        if self.dry_run {
            return Ok(0);
        }
        let mut file = std::fs::File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
        let (pipe_out, mut pipe_in) = io::pipe().context("creating a pipe")?;
        let (expr, tee) = tee_stderr(self.expression(cmd).stdin_file(pipe_out), cmd)?;
        let handle = expr.start().with_context(|| not_started(cmd));
        drop(expr); // the child holds the pipe's read end now
        let handle = match handle {
            Ok(h) => h,
            Err(e) => {
                join(tee);
                return Err(e);
            }
        };
        let mut buf = vec![0u8; STREAM_CHUNK];
        let mut sent = 0u64;
        let fed: Result<()> = loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(anyhow::Error::new(e).context(format!("reading {} failed", source.display()))),
            };
            if let Err(e) = pipe_in.write_all(&buf[..n]) {
                // The child stopped reading (usually it failed: its status and stderr say why).
                break Err(anyhow::Error::new(e).context(format!("`{cmd}` stopped reading its input")));
            }
            sent += n as u64;
            progress.update(sent);
        };
        progress.finish();
        drop(pipe_in);
        let output = handle.into_output().with_context(|| format!("waiting for `{cmd}`"));
        let tail = join(tee);
        check(cmd, output?.status, &tail)?;
        fed?;
        Ok(sent)
    }
}

impl Runner {
    /// The duct expression of `cmd`, with `DOCKER_HOST` of `--host` for docker (a plan that sets its own wins).
    fn expression(&self, cmd: &Cmd) -> duct::Expression {
        let expr = expression(cmd);
        match self.remote(cmd) {
            // Compose opens one SSH connection per concurrent API call: sshd's default `MaxStartups 10:30:100`
            // drops some of a burst ("kex_exchange_identification: Connection closed"), so keep it small.
            Some(host) if std::env::var_os("COMPOSE_PARALLEL_LIMIT").is_none() => expr
                .env("DOCKER_HOST", host)
                .env_remove("DOCKER_CONTEXT")
                .env("COMPOSE_PARALLEL_LIMIT", REMOTE_PARALLEL_LIMIT),
            Some(host) => expr.env("DOCKER_HOST", host).env_remove("DOCKER_CONTEXT"),
            None => expr,
        }
    }

    /// The `--host` engine of a docker command (none for other programs or when the plan names its own).
    fn remote(&self, cmd: &Cmd) -> Option<&'static str> {
        let docker = cmd.program == "docker" || cmd.program.ends_with("/docker");
        self.docker_host
            .filter(|_| docker && !cmd.env.iter().any(|(k, _)| k == "DOCKER_HOST"))
    }

    /// Starts a long-running daemon (e.g. `dockerd` on a machine without an init system) in its own process
    /// group, so a Ctrl-C aimed at the xtask does not stop it, with stdout and stderr appended to `log`.
    /// It is not waited for: the caller checks that it answers.
    pub fn spawn_daemon(&self, cmd: &Cmd, log: &Path) -> Result<()> {
        self.echo(cmd, Some(log));
        if self.dry_run {
            return Ok(());
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = file.try_clone().with_context(|| format!("opening {}", log.display()))?;
        let handle = self
            .expression(cmd)
            .stdin_null()
            .stdout_file(file)
            .stderr_file(err)
            .before_spawn(|command| {
                use std::os::unix::process::CommandExt;
                command.process_group(0);
                Ok(())
            })
            .start()
            .with_context(|| not_started(cmd))?;
        // Dropping the handle neither waits for nor kills the daemon (duct reaps it if it exits early).
        drop(handle);
        Ok(())
    }
}

/// The duct expression of a command: program found on PATH, its arguments, environment and cwd. Unchecked:
/// the runner checks every status itself, to report the command and its stderr tail.
fn expression(cmd: &Cmd) -> duct::Expression {
    let program: OsString = which::which(&cmd.program)
        .map(Into::into)
        .unwrap_or_else(|_| cmd.program.clone().into());
    let mut expr = duct::cmd(program, &cmd.args).unchecked();
    for (key, value) in &cmd.env {
        expr = expr.env(key, value);
    }
    if let Some(dir) = &cmd.cwd {
        expr = expr.dir(dir);
    }
    expr
}

/// Sends the expression's stderr through a pipe to a thread that prints each line (masked) and keeps the
/// last ones. The caller must drop the returned expression once started, so the pipe closes with the child.
fn tee_stderr(expr: duct::Expression, cmd: &Cmd) -> Result<(duct::Expression, JoinHandle<Vec<String>>)> {
    let (reader, writer) = io::pipe().context("creating a pipe for stderr")?;
    let secrets = cmd.secrets.clone();
    let tee = thread::spawn(move || {
        let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
        for line in BufReader::new(reader).split(b'\n') {
            let Ok(line) = line else { break };
            let text = mask(&String::from_utf8_lossy(&line), &secrets);
            term::line(&text);
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(text);
        }
        tail.into()
    });
    Ok((expr.stderr_file(writer), tee))
}

fn join(tee: JoinHandle<Vec<String>>) -> Vec<String> {
    tee.join().unwrap_or_default()
}

fn not_started(cmd: &Cmd) -> String {
    format!(
        "could not start `{}`: is `{}` installed and on PATH? (`cargo xtask doctor` checks prerequisites)",
        cmd.display(),
        cmd.program
    )
}

/// Ok for exit status 0; otherwise the command, its status and the tail of its stderr.
fn check(cmd: &Cmd, status: ExitStatus, stderr_tail: &[String]) -> Result<()> {
    if status.success() {
        return Ok(());
    }
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
    bail!("{report}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::{cmd, shell};

    const RUN: Runner = Runner {
        dry_run: false,
        verbose: false,
        quiet: true,
        docker_host: None,
    };

    #[test]
    fn dry_run_runs_nothing() {
        let runner = Runner { dry_run: true, ..RUN };
        // A program that cannot exist: a real run would fail to start.
        let out = runner.run(&Cmd::new("definitely-not-a-program-xyz")).unwrap();
        assert!(out.stdout.is_empty());
        assert!(runner.probe(&Cmd::new("true")).is_none());
    }

    #[test]
    fn failure_reports_command_status_and_stderr_tail() {
        let sh = shell();
        let script = "echo first >&2; echo 'secret-value oops' >&2; exit 3";
        let cmd = Cmd::from(cmd!(sh, "sh -c {script}")).secret("secret-value");
        let err = RUN.run(&cmd).unwrap_err().to_string();
        assert!(err.contains("exit status 3"), "{err}");
        assert!(err.contains("| first"), "{err}");
        assert!(err.contains("| **** oops"), "{err}");
        assert!(!err.contains("secret-value"), "{err}");
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let err = RUN.run(&Cmd::new("definitely-not-a-program-xyz")).unwrap_err();
        assert!(format!("{err:#}").contains("is `definitely-not-a-program-xyz` installed"));
    }

    #[test]
    fn read_captures_stdout_and_stdin_is_null() {
        let sh = shell();
        assert_eq!(RUN.read(&Cmd::from(cmd!(sh, "echo hi"))).unwrap(), "hi\n");
        // `cat` with a null stdin ends at once with nothing.
        assert_eq!(RUN.read(&Cmd::from(cmd!(sh, "cat"))).unwrap(), "");
    }

    #[test]
    fn stdin_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        std::fs::write(&input, "from a file\n").unwrap();
        let cmd = Cmd::new("cat").stdin(Input::File(input));
        assert_eq!(RUN.read(&cmd).unwrap(), "from a file\n");
    }

    #[test]
    fn stream_out_hashes_what_it_writes_and_reports_failures() {
        let sh = shell();
        let mut sink = Vec::new();
        let cmd = Cmd::from(cmd!(sh, "printf abc"));
        let s = RUN
            .stream_out(&cmd, Path::new("x"), &mut sink, &mut Progress::hidden())
            .unwrap();
        assert_eq!(sink, b"abc");
        assert_eq!((s.bytes, s.head.as_slice()), (3, b"abc".as_slice()));
        assert_eq!(
            s.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let script = "printf partial; echo broken >&2; exit 4";
        let err = RUN
            .stream_out(
                &Cmd::from(cmd!(sh, "sh -c {script}")),
                Path::new("x"),
                &mut Vec::new(),
                &mut Progress::hidden(),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("exit status 4") && err.contains("| broken"), "{err}");
    }

    #[test]
    fn stream_in_feeds_the_file_and_sees_failures() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.bin");
        std::fs::write(&input, vec![7u8; 3 * STREAM_CHUNK + 5]).unwrap();
        let sh = shell();
        let sent = RUN
            .stream_in(&Cmd::from(cmd!(sh, "wc -c")).capture(), &input, &mut Progress::hidden())
            .unwrap();
        assert_eq!(sent, 3 * STREAM_CHUNK as u64 + 5);
        // A child that stops reading at once and fails: its failure is the error.
        let err = RUN
            .stream_in(&Cmd::from(cmd!(sh, "false")), &input, &mut Progress::hidden())
            .unwrap_err()
            .to_string();
        assert!(err.contains("exit status 1"), "{err}");
    }
}
