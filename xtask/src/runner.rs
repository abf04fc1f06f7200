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
use crate::compose_plugin;
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
    /// [`THIS_MACHINE`]: this machine's own engine, also when the environment names another.
    pub docker_host: Option<&'static str>,
}

/// `Runner::docker_host` for this machine's own engine: docker children get `DOCKER_HOST=` (empty) and
/// `DOCKER_CONTEXT=default`, so neither the environment nor a docker context can point them elsewhere.
pub const THIS_MACHINE: &str = "";

/// The environment that puts a docker child on this machine's own engine (for [`THIS_MACHINE`], and for a
/// single plan through `prod::remote::here`).
pub const THIS_MACHINE_ENV: [(&str, &str); 2] = [("DOCKER_HOST", ""), ("DOCKER_CONTEXT", "default")];

impl Runner {
    /// `$ <command>` (or `[dry-run] $ …`) on stderr, with `-v` also its cwd and environment; `redirect`
    /// shows where its stdout goes (`> file`).
    fn echo(&self, cmd: &Cmd, redirect: Option<&Path>) {
        if self.quiet && !self.dry_run {
            return;
        }
        let style = Style::stderr();
        let prefix = if self.dry_run { "[dry-run] $" } else { "$" };
        // The engine a docker command addresses: `--host`'s, or the one the plan names itself (a command that
        // drives several hosts, e.g. swarm-setup).
        let own = cmd
            .env
            .iter()
            .find(|(k, _)| k == "DOCKER_HOST")
            .map(|(_, v)| v.as_str());
        let engine = self
            .remote(cmd)
            .or(own)
            .map(|host| format!("DOCKER_HOST={} ", shell_quote(&cmd.mask(host))))
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
        check(cmd, out.status, &last_lines(&stderr))?;
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
        self.echo(cmd, Some(target));
        if self.dry_run {
            return Ok(Streamed::default());
        }
        let (reader, tee) = start_reader(self.expression(cmd).stdin_null(), cmd)?;
        drain(cmd, reader, tee, sink, target, progress)
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
        Ok(feed(self, cmd, &mut file, &source.display().to_string(), progress, Hash::No)?.bytes)
    }

    /// [`Runner::stream_in`] that also hashes what it sent (an upload compared with a manifest afterwards).
    pub fn stream_in_hashed(&self, cmd: &Cmd, source: &Path, progress: &mut Progress) -> Result<Streamed> {
        let mut shown = cmd.clone();
        shown.stdin = Input::File(source.to_path_buf());
        self.echo(&shown, None);
        if self.dry_run {
            return Ok(Streamed::default());
        }
        let mut file = std::fs::File::open(source).with_context(|| format!("cannot read {}", source.display()))?;
        feed(self, cmd, &mut file, &source.display().to_string(), progress, Hash::Yes)
    }

    /// Like [`Runner::stream_in`], with the stdout of `source` (e.g. `age --decrypt`) as the input: shown as
    /// `source | cmd`. Fails if either fails; a failed source is reported with its own stderr tail.
    pub fn stream_in_from(&self, cmd: &Cmd, source: &Cmd, progress: &mut Progress) -> Result<u64> {
        if !self.quiet || self.dry_run {
            let prefix = if self.dry_run { "[dry-run] $" } else { "$" };
            term::line(&Style::stderr().dim(&format!("{prefix} {source} | {cmd}")));
        }
        if self.dry_run {
            return Ok(0);
        }
        let (reader, tee) = start_reader(self.expression(source).stdin_null(), source)?;
        let fed = feed(self, cmd, &mut (&reader), &source.display(), progress, Hash::No).map(|s| s.bytes);
        if fed.is_err() {
            let _ = reader.kill();
        }
        let status = reader
            .try_wait()
            .with_context(|| format!("waiting for `{source}`"))?
            .map(|out| out.status);
        drop(reader);
        let tail = join(tee);
        // The source's own failure (a wrong key, a damaged file) says more than the consumer's.
        match status {
            Some(status) => check(source, status, &tail)?,
            None => bail!("`{source}` did not finish after its output was read"),
        }
        fed
    }

    /// The first `n` bytes of `cmd`'s stdout (then it is stopped): e.g. a check that a file decrypts and looks
    /// like what it should be, without decrypting all of it. Fails if the command fails before giving `n` bytes.
    /// Not echoed unless `-v`; with `--dry-run` returns nothing.
    pub fn head(&self, cmd: &Cmd, n: usize) -> Result<Vec<u8>> {
        if self.dry_run {
            return Ok(Vec::new());
        }
        if self.verbose {
            self.echo(cmd, None);
        }
        let (reader, tee) = start_reader(self.expression(cmd).stdin_null(), cmd)?;
        let mut head = Vec::with_capacity(n);
        let read = (&reader).take(n as u64).read_to_end(&mut head);
        let whole = head.len() == n;
        if whole {
            let _ = reader.kill();
        }
        let status = reader.try_wait().ok().flatten().map(|out| out.status);
        drop(reader);
        let tail = join(tee);
        if !whole {
            read.with_context(|| format!("reading the output of `{cmd}` failed"))?;
            match status {
                Some(status) => check(cmd, status, &tail)?,
                None => bail!("`{cmd}` did not finish after closing its output"),
            }
        }
        Ok(head)
    }

    /// Starts `cmd` as a filter between the caller and `out`: what is written to the returned [`Filter`] is
    /// its stdin; its stdout is written to `out` (hashed on the way) by a thread. [`Filter::finish`] closes
    /// its input and checks its status. With `--dry-run` it only prints the command.
    pub fn filter(&self, cmd: &Cmd, out: std::fs::File, target: &Path) -> Result<Filter> {
        self.echo(cmd, Some(target));
        if self.dry_run {
            return Ok(Filter {
                input: None,
                worker: None,
                cmd: cmd.clone(),
            });
        }
        let (pipe_out, pipe_in) = io::pipe().context("creating a pipe")?;
        let (reader, tee) = start_reader(self.expression(cmd).stdin_file(pipe_out), cmd)?;
        let shown = cmd.clone();
        let target = target.to_path_buf();
        let worker = thread::spawn(move || -> Result<Streamed> {
            let mut out = out;
            drain(&shown, reader, tee, &mut out, &target, &mut Progress::hidden())
        });
        Ok(Filter {
            input: Some(pipe_in),
            worker: Some(worker),
            cmd: cmd.clone(),
        })
    }
}

/// A running filter (see [`Runner::filter`]): write its input, then [`Filter::finish`].
pub struct Filter {
    input: Option<io::PipeWriter>,
    worker: Option<JoinHandle<Result<Streamed>>>,
    cmd: Cmd,
}

impl Write for Filter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.input {
            Some(input) => input.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.input {
            Some(input) => input.flush(),
            None => Ok(()),
        }
    }
}

impl Filter {
    /// Closes the filter's input and waits for it: the bytes it wrote and their SHA-256.
    pub fn finish(mut self) -> Result<Streamed> {
        drop(self.input.take());
        match self.worker.take() {
            Some(worker) => worker
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the thread of `{}` panicked", self.cmd))),
            None => Ok(Streamed::default()),
        }
    }
}

impl Drop for Filter {
    /// Abandoned (the producer failed): close the input so the filter ends, and wait for it.
    fn drop(&mut self) {
        drop(self.input.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Starts `expr` (the expression of `cmd`) with its stdout to be read and its stderr teed.
fn start_reader(expr: duct::Expression, cmd: &Cmd) -> Result<(duct::ReaderHandle, JoinHandle<Vec<String>>)> {
    let (expr, tee) = tee_stderr(expr, cmd)?;
    let reader = expr.reader().with_context(|| not_started(cmd));
    drop(expr); // closes our end of the stderr pipe, so the tee sees EOF when the child exits
    match reader {
        Ok(reader) => Ok((reader, tee)),
        Err(e) => {
            join(tee);
            Err(e)
        }
    }
}

/// Copies everything `reader` gives into `sink` (hashed, see [`pump`]), then checks `cmd`'s status. If the
/// copy fails the child is killed, so a full disk does not leave a dump running.
fn drain(
    cmd: &Cmd,
    reader: duct::ReaderHandle,
    tee: JoinHandle<Vec<String>>,
    sink: &mut dyn Write,
    target: &Path,
    progress: &mut Progress,
) -> Result<Streamed> {
    let (streamed, copied) = pump(
        &mut (&reader),
        sink,
        progress,
        Hash::Yes,
        || format!("reading the output of `{cmd}` failed"),
        || format!("writing {} failed", target.display()),
    );
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
    Ok(streamed)
}

/// Streams `source` into the stdin of a new `cmd` in chunks (with progress) and checks its status.
fn feed(
    runner: &Runner,
    cmd: &Cmd,
    source: &mut dyn Read,
    source_name: &str,
    progress: &mut Progress,
    hash: Hash,
) -> Result<Streamed> {
    let (pipe_out, mut pipe_in) = io::pipe().context("creating a pipe")?;
    let (expr, tee) = tee_stderr(runner.expression(cmd).stdin_file(pipe_out), cmd)?;
    let handle = expr.start().with_context(|| not_started(cmd));
    drop(expr); // the child holds the pipe's read end now
    let handle = match handle {
        Ok(h) => h,
        Err(e) => {
            join(tee);
            return Err(e);
        }
    };
    let (streamed, fed) = pump(
        source,
        &mut pipe_in,
        progress,
        hash,
        || format!("reading {source_name} failed"),
        // The child stopped reading (usually it failed: its status and stderr say why).
        || format!("`{cmd}` stopped reading its input"),
    );
    drop(pipe_in);
    let output = handle.into_output().with_context(|| format!("waiting for `{cmd}`"));
    let tail = join(tee);
    check(cmd, output?.status, &tail)?;
    fed?;
    Ok(Streamed {
        head: Vec::new(),
        ..streamed
    })
}

/// Copies `source` into `sink` in chunks, hashing (SHA-256) and counting on the way and keeping the first
/// 64 bytes, with progress; stops at the first error (named by `read_error` / `write_error`). Returns what
/// was copied so far and how the copy ended.
fn pump(
    source: &mut dyn Read,
    sink: &mut dyn Write,
    progress: &mut Progress,
    hash: Hash,
    read_error: impl Fn() -> String,
    write_error: impl Fn() -> String,
) -> (Streamed, Result<()>) {
    use sha2::Digest;
    let mut hasher = (hash == Hash::Yes).then(sha2::Sha256::new);
    let mut buf = vec![0u8; STREAM_CHUNK];
    let mut streamed = Streamed::default();
    let copied = loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(anyhow::Error::new(e).context(read_error())),
        };
        if let Err(e) = sink.write_all(&buf[..n]) {
            break Err(anyhow::Error::new(e).context(write_error()));
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&buf[..n]);
        }
        if streamed.head.len() < 64 {
            let take = (64 - streamed.head.len()).min(n);
            streamed.head.extend_from_slice(&buf[..take]);
        }
        streamed.bytes += n as u64;
        progress.update(streamed.bytes);
    };
    progress.finish();
    if let Some(h) = hasher {
        streamed.sha256 = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    }
    (streamed, copied)
}

/// Whether [`pump`] hashes what it copies: a restore's input was checked against its manifest already, and
/// hashing it again would only take CPU from the restore on a small machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Yes,
    No,
}

impl Runner {
    /// The duct expression of `cmd`, with `DOCKER_HOST` of `--host` for docker (a plan that sets its own wins).
    fn expression(&self, cmd: &Cmd) -> duct::Expression {
        // After Ctrl-C nothing new starts (e.g. a rollback half run): only the interrupt's own undo.
        crate::interrupt::hold_if_interrupted();
        let expr = expression(cmd);
        match self.remote(cmd) {
            // Compose opens one SSH connection per concurrent API call: sshd's default `MaxStartups 10:30:100`
            // drops some of a burst ("kex_exchange_identification: Connection closed"), so keep it small.
            Some(host) if host != THIS_MACHINE && std::env::var_os("COMPOSE_PARALLEL_LIMIT").is_none() => expr
                .env("DOCKER_HOST", host)
                .env_remove("DOCKER_CONTEXT")
                .env("COMPOSE_PARALLEL_LIMIT", REMOTE_PARALLEL_LIMIT),
            Some(THIS_MACHINE) => THIS_MACHINE_ENV.iter().fold(expr, |e, (k, v)| e.env(k, v)),
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

    /// Runs the command with its stdout and stderr, in the order written, into `log` (created or truncated;
    /// the first line is the echo) instead of the terminal: for commands that run side by side, whose output
    /// is shown whole once they end (`cargo xtask ci --jobs`). Fails like [`Runner::run`], with the log's tail.
    pub fn run_to_log(&self, cmd: &Cmd, log: &Path) -> Result<()> {
        if self.dry_run {
            self.echo(cmd, Some(log));
            return Ok(());
        }
        let mut file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        writeln!(file, "$ {cmd}").with_context(|| format!("writing {}", log.display()))?;
        let out = self
            .expression(cmd)
            .stdin_null()
            .stderr_to_stdout()
            .stdout_file(file)
            .run()
            .with_context(|| not_started(cmd))?;
        let text = std::fs::read(log).with_context(|| format!("reading {}", log.display()))?;
        let text = mask(&String::from_utf8_lossy(&text), &cmd.secrets);
        check(cmd, out.status, &last_lines(&text))
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

impl Runner {
    /// Runs `cmd` with its stdout and stderr appended to `log`, each line prefixed with the UTC time (what a
    /// scheduled job leaves behind), secrets masked; fails like [`Runner::run`], with the last lines.
    pub fn run_logged(&self, cmd: &Cmd, log: &Path) -> Result<()> {
        self.echo(cmd, Some(log));
        if self.dry_run {
            return Ok(());
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let (reader, writer) = io::pipe().context("creating a pipe for the output")?;
        let expr = self.expression(cmd).stdin_null().stderr_to_stdout().stdout_file(writer);
        let handle = expr.start().with_context(|| not_started(cmd));
        drop(expr); // our end of the pipe closes, so the reader sees EOF when the child exits
        let handle = handle?;
        let mut tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
        let mut write_failed = None;
        for line in BufReader::new(reader).split(b'\n') {
            let Ok(line) = line else { break };
            let text = mask(&String::from_utf8_lossy(&line), &cmd.secrets);
            if write_failed.is_none()
                && let Err(e) = writeln!(file, "{} | {text}", crate::time::Timestamp::now())
            {
                write_failed = Some(e);
            }
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(text);
        }
        let output = handle.wait().with_context(|| format!("waiting for `{cmd}`"))?;
        if let Some(e) = write_failed {
            return Err(e).with_context(|| format!("writing {} failed", log.display()));
        }
        let tail: Vec<String> = tail.into();
        check(cmd, output.status, &tail)
    }
}

/// The duct expression of a command: program found on PATH, its arguments, environment and cwd. Unchecked:
/// the runner checks every status itself, to report the command and its stderr tail. `docker compose …` starts
/// the Compose plugin directly, as the docker CLI would (see `compose_plugin`).
fn expression(cmd: &Cmd) -> duct::Expression {
    let found = which::which(&cmd.program);
    let compose = cmd.program == "docker" && cmd.args.first().is_some_and(|a| a == "compose");
    let plugin = match &found {
        Ok(docker) if compose => compose_plugin::find(&cmd.env).map(|plugin| (plugin, docker)),
        _ => None,
    };
    let mut expr = match plugin {
        Some((plugin, docker)) => duct::cmd(plugin, &cmd.args).env(compose_plugin::ORIGINAL_CLI_COMMAND, docker),
        None => {
            let program: OsString = found.map(Into::into).unwrap_or_else(|_| cmd.program.clone().into());
            duct::cmd(program, &cmd.args)
        }
    }
    .unchecked();
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

/// The last [`STDERR_TAIL_LINES`] lines of `text`, for a failure report.
fn last_lines(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
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
    fn docker_compose_starts_the_plugin_itself_as_the_cli_would() {
        let docker =
            which::which("docker").expect("this test needs the docker CLI on PATH (no engine): `cargo xtask setup`");
        let config = tempfile::tempdir().unwrap();
        let plugin = config.path().join("cli-plugins").join("docker-compose");
        let script = "#!/bin/sh\necho \"plugin $* from $DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND\"\n";
        crate::files::replace(&plugin, script.as_bytes(), 0o755).unwrap();
        let config_dir = config.path().display().to_string();
        let sh = shell();
        let cmd = Cmd::from(cmd!(sh, "docker compose -p x ps")).env("DOCKER_CONFIG", &config_dir);
        assert_eq!(
            RUN.read(&cmd).unwrap().trim(),
            format!("plugin compose -p x ps from {}", docker.display())
        );
        // Only `docker compose`: other docker commands run the CLI.
        let cmd = Cmd::from(cmd!(sh, "docker --version")).env("DOCKER_CONFIG", &config_dir);
        assert!(RUN.read(&cmd).unwrap().starts_with("Docker version"));
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

    #[test]
    fn a_filter_transforms_hashes_and_reports_its_failure() {
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out");
        let sh = shell();
        let out = std::fs::File::create(&target).unwrap();
        let mut filter = RUN.filter(&Cmd::from(cmd!(sh, "tr a-z A-Z")), out, &target).unwrap();
        filter.write_all(b"hello filter").unwrap();
        let stored = filter.finish().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"HELLO FILTER");
        assert_eq!(stored.bytes, 12);
        assert_eq!(
            stored.sha256,
            crate::backup::store::hex(&sha2::Sha256::digest(b"HELLO FILTER"))
        );
        let out = std::fs::File::create(&target).unwrap();
        let script = "cat >/dev/null; echo 'no key' >&2; exit 4";
        let filter = RUN
            .filter(&Cmd::from(cmd!(sh, "sh -c {script}")), out, &target)
            .unwrap();
        let err = format!("{:#}", filter.finish().unwrap_err());
        assert!(err.contains("exit status 4") && err.contains("| no key"), "{err}");
    }

    #[test]
    fn head_reads_the_first_bytes_and_a_failing_source_is_an_error() {
        let sh = shell();
        // `yes` never ends: head stops it after 8 bytes.
        assert_eq!(RUN.head(&Cmd::from(cmd!(sh, "yes abc")), 8).unwrap(), b"abc\nabc\n");
        let script = "printf ab; exit 2";
        let err = format!("{:#}", RUN.head(&Cmd::from(cmd!(sh, "sh -c {script}")), 8).unwrap_err());
        assert!(err.contains("exit status 2"), "{err}");
    }

    #[test]
    fn stream_in_from_reports_the_source_first() {
        let sh = shell();
        let consumer = Cmd::from(cmd!(sh, "wc -c")).capture();
        let sent = RUN
            .stream_in_from(&consumer, &Cmd::from(cmd!(sh, "printf 12345")), &mut Progress::hidden())
            .unwrap();
        assert_eq!(sent, 5);
        let script = "printf 12; echo 'wrong identity' >&2; exit 1";
        let err = format!(
            "{:#}",
            RUN.stream_in_from(
                &consumer,
                &Cmd::from(cmd!(sh, "sh -c {script}")),
                &mut Progress::hidden()
            )
            .unwrap_err()
        );
        assert!(
            err.contains("wrong identity"),
            "the source's own failure is the error: {err}"
        );
    }
}
