//! The deploy lock on a real engine (this machine's), taken by separate xtask processes that present different
//! operators: a holder is a `prod-deploy` whose `pre-deploy` hook waits (so the lock is held while nothing is
//! deployed: the hook then fails, and nothing changes); the other operator reaches the same engine through a
//! docker context of its own (`DOCKER_CONFIG` in a temporary directory), so its checkout records differ — the
//! situation of a second operator — and names its machine with `DRYDOCK_OPERATOR_MACHINE`.
//!
//! Proves: a second command refuses at once naming the holder (another machine: with its age; this machine:
//! that its pid runs); `--force` asks first (refused without a terminal) and with `--yes` replaces the lock;
//! a holder killed with SIGKILL is detected as dead (its pid is gone; in its own checkout: its lock file is
//! free) and taken over; a holder on another machine is not; Ctrl-C (SIGINT) releases; the release removes the
//! object. No timing is asserted: every wait is for a condition, bounded only to fail instead of hanging.
//!
//!   cargo test -p xtask --test lock_real -- --ignored --nocapture

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{docker, docker_ok, image_exists, root, text};

const IMAGE: &str = "drydock/deploy-lock:1";

struct World {
    project: String,
    dir: tempfile::TempDir,
    imported: bool,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.path().join("go"), "");
        let _ = docker(&["container", "rm", "-f", &self.lock_name()]);
        if self.imported {
            // Only the image this test brought; refused (and kept) if another lock uses it now.
            let _ = docker(&["image", "rm", IMAGE]);
        }
        for f in [
            format!("lock-{}", self.project),
            format!("lock-{}@context-samehost", self.project),
            format!("audit-{}.jsonl", self.project),
            format!("audit-{}@context-samehost.jsonl", self.project),
            // prod-ps through the context renders the compose file for that (remote-looking) engine.
            format!("remote-{}@context-samehost.json", self.project),
        ] {
            let _ = std::fs::remove_file(root().join(".drydock").join(f));
        }
    }
}

/// Who runs a command: which machine it says it is, and whether it reaches the engine through the context.
#[derive(Clone, Copy)]
struct Operator {
    machine: &'static str,
    via_context: bool,
}

const A: Operator = Operator {
    machine: "laptop-a",
    via_context: false,
};
/// The same machine, another checkout's records.
const A_ELSEWHERE: Operator = Operator {
    machine: "laptop-a",
    via_context: true,
};
const B: Operator = Operator {
    machine: "laptop-b",
    via_context: true,
};

impl World {
    fn new() -> World {
        let dir = tempfile::Builder::new().prefix("drydock-locktest-").tempdir().unwrap();
        let hooks = dir.path().join("hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        // Holds (the lock stays taken) while LOCKTEST_HOLD is set and `go` is absent; always fails, so the
        // deploy stops before anything changes.
        let hook = hooks.join("pre-deploy");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\nif [ -n \"$LOCKTEST_HOLD\" ]; then\n  echo $$ > '{d}/hook.pid'\n  touch '{d}/held'\n  i=0\n  while [ ! -e '{d}/go' ] && [ $i -lt 1500 ]; do sleep 0.2; i=$((i+1)); done\nfi\necho 'locktest: the hook stops the deploy' >&2\nexit 3\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        // The second operator's docker configuration: a context to the same engine.
        let config = dir.path().join("docker-config");
        std::fs::create_dir_all(&config).unwrap();
        let out = Command::new("docker")
            .arg("--config")
            .arg(&config)
            .args([
                "context",
                "create",
                "samehost",
                "--docker",
                "host=unix:///var/run/docker.sock",
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "docker context create:\n{}", text(&out));
        let imported = !image_exists(IMAGE);
        World {
            project: format!("drydock-locktest-{}", std::process::id()),
            dir,
            imported,
        }
    }

    fn lock_name(&self) -> String {
        format!("drydock-deploy-lock-{}", self.project)
    }

    fn command(&self, who: Operator, hold: bool, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.arg("--offline")
            .args(args)
            .env("CARGO", "cargo")
            .env("NO_COLOR", "1")
            .env("DRYDOCK_PROJECT", &self.project)
            .env("DRYDOCK_HOOKS_DIR", self.dir.path().join("hooks"))
            .env("DRYDOCK_OPERATOR_MACHINE", who.machine)
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("LOCKTEST_HOLD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if who.via_context {
            cmd.env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
                .env("DOCKER_CONTEXT", "samehost");
        }
        if hold {
            cmd.env("LOCKTEST_HOLD", "1");
        }
        cmd
    }

    /// A deploy that holds the lock until `go` (its hook waits), started in the background.
    fn holder(&self, who: Operator, message: &str) -> Child {
        let _ = std::fs::remove_file(self.dir.path().join("held"));
        let _ = std::fs::remove_file(self.dir.path().join("go"));
        eprintln!(
            "+ [{}] cargo xtask prod-deploy (holds the lock, in the background)",
            who.machine
        );
        let child = self
            .command(
                who,
                true,
                &["prod-deploy", "--tag", "sha-locktest", "--message", message],
            )
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !self.dir.path().join("held").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the holder never reached its hook"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        child
    }

    fn run(&self, who: Operator, args: &[&str]) -> (Output, String) {
        eprintln!("+ [{}] cargo xtask {}", who.machine, args.join(" "));
        let out = self.command(who, false, args).output().unwrap();
        let t = text(&out);
        eprintln!("{t}");
        (out, t)
    }

    /// The lock object's id and labels, or `None` when there is none.
    fn lock(&self) -> Option<(String, serde_json::Value)> {
        let out = docker(&[
            "container",
            "inspect",
            "--format",
            "{{.Id}} {{json .Config.Labels}}",
            &self.lock_name(),
        ]);
        if !out.status.success() {
            return None;
        }
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let (id, labels) = line.split_once(' ').unwrap();
        Some((id.to_string(), serde_json::from_str(labels).unwrap()))
    }

    fn go(&self) {
        std::fs::write(self.dir.path().join("go"), "").unwrap();
    }
}

fn finished(child: Child) -> (Output, String) {
    let out = child.wait_with_output().unwrap();
    let t = text(&out);
    eprintln!("{t}");
    (out, t)
}

fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

impl World {
    /// Waits for a signalled holder to end, then ends its hook (which has no parent to tell it any more and
    /// keeps the holder's output pipes open), and collects the holder's output.
    fn after_signal(&self, mut child: Child) -> (Output, String) {
        let started = Instant::now();
        while child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < Duration::from_secs(60), "the holder did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
        let pid = std::fs::read_to_string(self.dir.path().join("hook.pid")).unwrap();
        let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        finished(child)
    }
}

fn label<'a>(labels: &'a serde_json::Value, key: &str) -> &'a str {
    labels[format!("drydock.deploy-lock.{key}")]
        .as_str()
        .unwrap_or_default()
}

fn refused(out: &Output, t: &str) {
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        !t.contains("pre-deploy"),
        "a refused command must not run its hooks:\n{t}"
    );
}

#[test]
#[ignore = "needs Docker: takes deploy locks on this machine's engine from several processes"]
fn the_deploy_lock_lives_on_the_engine_and_names_its_holder() {
    let w = World::new();
    let project = w.project.clone();
    assert!(
        !docker_ok(&["version", "--format", "{{.Server.Version}}"])
            .trim()
            .is_empty()
    );

    // 1. A holds the lock: the engine object names A.
    let a = w.holder(A, "release 42 for the login fix");
    let (id, labels) = w.lock().expect("the holder's lock object on the engine");
    assert_eq!(label(&labels, "machine"), "laptop-a");
    assert_eq!(label(&labels, "pid"), a.id().to_string());
    assert_eq!(label(&labels, "action"), "prod-deploy");
    assert_eq!(label(&labels, "tag"), "sha-locktest");
    assert_eq!(label(&labels, "message"), "release 42 for the login fix");
    assert!(!label(&labels, "since").is_empty() && !label(&labels, "user").is_empty());
    let state = docker_ok(&["container", "inspect", "--format", "{{.State.Status}}", &id]);
    assert_eq!(state.trim(), "created", "the lock object is never started");

    // 2. Another operator on another machine, same engine: refused at once, naming A and its age.
    let (out, t) = w.run(B, &["prod-deploy", "--tag", "sha-other"]);
    refused(&out, &t);
    assert!(
        t.contains(&format!("`{project}` on docker context samehost is locked by"))
            && t.contains(&format!("on laptop-a, pid {}", a.id()))
            && t.contains("prod-deploy sha-locktest on local engine, \"release 42 for the login fix\", for ")
            && t.contains("--force"),
        "{t}"
    );
    // The same machine, another checkout: A's pid runs, so it is alive.
    let (out, t) = w.run(A_ELSEWHERE, &["prod-deploy", "--tag", "sha-other"]);
    refused(&out, &t);
    assert!(
        t.contains(&format!("(pid {} still runs on this machine)", a.id())),
        "{t}"
    );
    // The same checkout: its lock file refuses without asking the engine.
    let (out, t) = w.run(A, &["prod-deploy", "--tag", "sha-other"]);
    refused(&out, &t);
    assert!(t.contains(&format!("`{project}` is locked by")), "{t}");
    // prod-ps shows who holds it.
    let (out, t) = w.run(B, &["prod-ps"]);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("deploy lock: held for ") && t.contains(&format!("on laptop-a, pid {}", a.id())),
        "{t}"
    );
    // --force without a terminal and without --yes: asks, so it is refused, and A keeps its lock.
    let (out, t) = w.run(B, &["prod-deploy", "--tag", "sha-other", "--force"]);
    refused(&out, &t);
    assert!(t.contains("refusing to replace the deploy lock"), "{t}");
    assert_eq!(w.lock().map(|l| l.0), Some(id.clone()));

    // 3. A finishes (its hook fails: nothing deployed): the release removes the object.
    w.go();
    let (out, t) = finished(a);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("the pre-deploy hook failed"), "{t}");
    assert!(w.lock().is_none(), "released: no lock object left");
    assert!(w.run(B, &["prod-ps"]).1.contains("deploy lock: free"));

    // 4. A dies holding the lock (SIGKILL: no release). Another machine cannot prove it: refused.
    let a = w.holder(A, "killed");
    let pid = a.id();
    kill(&a, "-KILL");
    let _ = w.after_signal(a);
    let (dead_id, _) = w.lock().expect("a killed holder leaves its object");
    let (out, t) = w.run(B, &["prod-deploy", "--tag", "sha-other"]);
    refused(&out, &t);
    assert!(t.contains(&format!("on laptop-a, pid {pid}")), "{t}");
    // The same machine proves it (the pid is gone) and takes over; its own deploy then stops at the hook.
    let (out, t) = w.run(A_ELSEWHERE, &["prod-deploy", "--tag", "sha-other"]);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!(
            "was left by a process that ended (pid {pid} no longer runs on this machine)"
        )) && t.contains("taking it over"),
        "{t}"
    );
    assert!(
        t.contains("the pre-deploy hook failed"),
        "it went on after taking over:\n{t}"
    );
    assert!(w.lock().is_none(), "released after the take-over");

    // 5. Killed again; the next command of its own checkout sees its lock file free.
    let a = w.holder(A, "killed again");
    kill(&a, "-KILL");
    let _ = w.after_signal(a);
    assert!(w.lock().is_some_and(|l| l.0 != dead_id));
    let (out, t) = w.run(A, &["prod-deploy", "--tag", "sha-other"]);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("is free again") && t.contains("taking it over"), "{t}");
    assert!(w.lock().is_none());

    // 6. --force --yes from another machine replaces a live holder's lock; the holder's release then finds
    //    its object replaced and says so.
    let a = w.holder(A, "to be replaced");
    let (held_id, _) = w.lock().unwrap();
    let (out, t) = w.run(B, &["--yes", "prod-deploy", "--tag", "sha-forced", "--force"]);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("replacing the deploy lock") && t.contains("the pre-deploy hook failed"),
        "{t}"
    );
    assert!(w.lock().is_none(), "B released its own lock");
    w.go();
    let (_, t) = finished(a);
    assert!(t.contains("was replaced meanwhile"), "{t}");
    assert!(docker(&["container", "inspect", &held_id]).status.code() != Some(0));

    // 7. Ctrl-C (SIGINT) while holding: released before the process ends.
    let a = w.holder(A, "interrupted");
    assert!(w.lock().is_some());
    kill(&a, "-INT");
    let (out, t) = w.after_signal(a);
    assert_eq!(out.status.code(), Some(130), "{t}");
    assert!(
        t.contains("interrupted (signal 2): releasing the deploy lock first"),
        "{t}"
    );
    assert!(w.lock().is_none(), "Ctrl-C released the lock");

    // 8. The audit log records why.
    let log = std::fs::read_to_string(root().join(".drydock").join(format!("audit-{project}.jsonl"))).unwrap();
    assert!(log.contains("\"message\":\"release 42 for the login fix\""), "{log}");
    println!(
        "LOCK on the engine: refused across operators, dead holders taken over, --force replaces, Ctrl-C releases"
    );
}
