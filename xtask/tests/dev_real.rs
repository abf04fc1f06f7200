//! Real dev-stack checks that need Docker: a host port already taken is refused before anything is created,
//! naming the port, its holder and the variable to change; under `dev-up --watch` a backend edit reaches the
//! running API, and a compile error is shown while the running API keeps serving. Run with
//! `cargo test -p xtask --test dev_real -- --ignored --nocapture` (CI's `cargo xtask ci` does).

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{docker, docker_ok, http_get, image_exists, root, text, xtask_env};

#[test]
#[ignore = "needs Docker and the offline images (cargo xtask dev-up once)"]
fn a_taken_host_port_is_named_before_anything_starts() {
    let project = "drydock-porttest";
    // Something else holds a port the stack wants: this test process.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let mut env = vec![("DRYDOCK_PROJECT", project), ("DRYDOCK_APP_PORT", port.as_str())];
    for other in [
        "DRYDOCK_API_PORT",
        "DRYDOCK_API_METRICS_PORT",
        "DRYDOCK_FRONTEND_PORT",
        "DRYDOCK_POSTGRES_PORT",
        "DRYDOCK_REDIS_PORT",
    ] {
        env.push((other, "0"));
    }
    let out = xtask_env(&["dev-up"], &env);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains(&format!("127.0.0.1:{port}")), "the port is named: {all}");
    assert!(
        all.contains(&format!("process {}", std::process::id())),
        "its holder is named: {all}"
    );
    assert!(
        all.contains("DRYDOCK_APP_PORT"),
        "the variable to change is named: {all}"
    );
    assert!(all.contains("nothing was started"), "{all}");
    // Nothing was created for the project.
    let ps = std::process::Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ])
        .output()
        .unwrap();
    assert!(ps.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ps.stdout).trim(),
        "",
        "containers were created: {all}"
    );
    drop(holder);
}

/// The edited file, the line the edits replace, and the API path that shows it.
const HEALTH_RS: &str = "backend/src/routes/health.rs";
const HEALTH_LINE: &str = "pub async fn health() -> impl IntoResponse {\n    Json(Status { status: \"ok\" })";

/// `cargo xtask dev-up --watch` on a project of its own, in its own process group, its output in a file; on drop:
/// watching stopped, the edited file restored, the stack with its volumes and the test's images removed.
struct Watching {
    project: &'static str,
    tag: &'static str,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
    original: String,
}

impl Watching {
    fn log(&self) -> String {
        let mut text = String::new();
        std::fs::File::open(&self.log)
            .and_then(|mut f| f.read_to_string(&mut text))
            .unwrap();
        text
    }

    /// Waits until the log has `what` (panics with the log when the run ended or `within` passed first).
    fn wait_for_log(&mut self, what: &str, within: Duration) {
        let started = Instant::now();
        while !self.log().contains(what) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("dev-up --watch ended ({status}) before {what:?}:\n{}", self.log());
            }
            assert!(
                started.elapsed() < within,
                "no {what:?} within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes health.rs with `line` in place of the `/health` line.
    fn edit(&self, line: &str) {
        let edited = self.original.replace(HEALTH_LINE, line);
        assert_ne!(edited, self.original);
        std::fs::write(root().join(HEALTH_RS), edited).unwrap();
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::write(root().join(HEALTH_RS), &self.original);
        let down = xtask_env(
            &["dev-down", "--volumes", "--yes"],
            &[("DRYDOCK_PROJECT", self.project), ("DRYDOCK_IMAGE_TAG", self.tag)],
        );
        if !down.status.success() {
            eprintln!("dev-down failed:\n{}", text(&down));
        }
        for name in ["api-watch", "frontend-dev", "frontend", "proxy"] {
            let _ = docker(&["image", "rm", &format!("drydock/{name}:{}", self.tag)]);
        }
    }
}

/// The body of `/health` on 127.0.0.1:`port`, if it answers 200.
fn health_body(port: u16) -> Option<String> {
    match http_get(port, "/health", "127.0.0.1") {
        Ok((200, _, body)) => Some(body),
        _ => None,
    }
}

/// Polls `/health` until its body contains `want` (panics with the log after `within`).
fn wait_for_health_body(w: &mut Watching, port: u16, want: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let body = health_body(port);
        if body.as_deref().is_some_and(|b| b.contains(want)) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "/health never answered {want:?} within {within:?} (last: {body:?}):\n{}",
            w.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs Docker and the offline images (cargo xtask dev-up once); edits backend/src/routes/health.rs and restores it"]
fn a_backend_edit_under_watch_reaches_the_running_api_and_a_compile_error_keeps_it_serving() {
    let (project, tag) = ("drydock-watchtest", "watchtest");
    let original = std::fs::read_to_string(root().join(HEALTH_RS)).unwrap();
    assert!(
        original.contains(HEALTH_LINE),
        "{HEALTH_RS} changed: update HEALTH_LINE"
    );
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let port_text = port.to_string();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dev-up-watch.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(["dev-up", "--watch"])
        .env("CARGO", "cargo")
        .env_remove("DRYDOCK_SECRETS_DIR")
        .env_remove("DRYDOCK_PROD_BIND")
        .env("NO_COLOR", "1")
        .env("DRYDOCK_PROJECT", project)
        .env("DRYDOCK_IMAGE_TAG", tag)
        .env("DRYDOCK_API_PORT", &port_text)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        // Its own process group: the drop stops compose's watch with it.
        .process_group(0);
    for other in [
        "DRYDOCK_APP_PORT",
        "DRYDOCK_API_METRICS_PORT",
        "DRYDOCK_FRONTEND_PORT",
        "DRYDOCK_POSTGRES_PORT",
        "DRYDOCK_REDIS_PORT",
        "DRYDOCK_VITE_PORT",
    ] {
        cmd.env(other, "0");
    }
    let mut w = Watching {
        project,
        tag,
        child: cmd.spawn().unwrap(),
        log,
        _dir: dir,
        original,
    };
    // The first watch build compiles the backend crate against the release build's cached dependencies (all of
    // them, minutes, on a machine that has never built the API image).
    w.wait_for_log("Watch enabled", Duration::from_secs(1800));
    assert_eq!(health_body(port).as_deref(), Some(r#"{"status":"ok"}"#), "{}", w.log());
    let api = docker_ok(&[
        "ps",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
        "--filter",
        "label=com.docker.compose.service=api",
        "--format",
        "{{.Image}}",
    ]);
    assert_eq!(api.trim(), format!("drydock/api-watch:{tag}"), "{}", w.log());
    assert!(
        !image_exists(&format!("drydock/api:{tag}")),
        "--watch must not build the release image name"
    );

    // An edit reaches the running API.
    let token = format!("ok-watchtest-{}", std::process::id());
    w.edit(&HEALTH_LINE.replace("\"ok\"", &format!("{token:?}")));
    wait_for_health_body(&mut w, port, &token, Duration::from_secs(600));

    // A compile error: shown with rustc's message, and the running API keeps answering the last good build.
    w.edit(&format!(
        "{HEALTH_LINE}\n}}\nfn drydock_watch_test_error() -> u32 {{ \"not a number\"\n"
    ));
    w.wait_for_log("Build failed", Duration::from_secs(600));
    let log = w.log();
    assert!(log.contains("error[E0308]"), "rustc's error is shown:\n{log}");
    assert!(log.contains("health.rs"), "the failing file is named:\n{log}");
    assert!(
        health_body(port).is_some_and(|b| b.contains(&token)),
        "the running API keeps serving after a failed build:\n{log}"
    );

    // Fixed again: the original answer comes back.
    let original = w.original.clone();
    std::fs::write(root().join(HEALTH_RS), original).unwrap();
    wait_for_health_body(&mut w, port, r#"{"status":"ok"}"#, Duration::from_secs(600));
}
