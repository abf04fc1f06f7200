//! `prod-exec` against a real production stack on this engine: a command in a running service, a fresh
//! container of a service that does not run, the distroless hint, and the audit log. Its own compose project
//! (`drydock-rh-exec`) and loopback ports (19280, 19643); everything it starts is removed at the end.
//!
//!   cargo test -p xtask --test prod_exec_real -- --ignored --nocapture

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

mod common;
use common::{V1, image_exists, prepare_release_images, prodtest_lock, root, text};

const PROJECT: &str = "drydock-rh-exec";

fn work_dir() -> PathBuf {
    root().join("target/drydock/rh-exec")
}

fn xtask(args: &[&str]) -> Output {
    eprintln!("+ cargo xtask --offline {}", args.join(" "));
    let w = work_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("--offline")
        .args(args)
        .env("DRYDOCK_PROJECT", PROJECT)
        .env("DRYDOCK_SECRETS_DIR", w.join("secrets"))
        .env("DRYDOCK_TLS_DIR", w.join("tls"))
        .env("DRYDOCK_PROD_HTTP_PORT", "19280")
        .env("DRYDOCK_PROD_HTTPS_PORT", "19643")
        .env("NO_COLOR", "1")
        .env("CARGO", "cargo")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    eprintln!("{}", text(&out));
    out
}

/// Takes the stack down (volumes too) and forgets its deploy record, also when the test fails.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = xtask(&["--yes", "prod-down", "--volumes"]);
        let drydock = root().join(".drydock");
        for f in [
            format!("deploy-{PROJECT}.json"),
            format!("audit-{PROJECT}.jsonl"),
            format!("lock-{PROJECT}"),
        ] {
            let _ = std::fs::remove_file(drydock.join(f));
        }
        let _ = std::fs::remove_dir_all(work_dir());
    }
}

#[test]
#[ignore = "needs Docker and the release images; starts a production stack (about a minute)"]
fn prod_exec_runs_in_the_running_service_or_a_fresh_container_and_is_audited() {
    let _lock = prodtest_lock();
    if !["api", "frontend", "proxy"]
        .iter()
        .all(|n| image_exists(&format!("drydock/{n}:{V1}")))
    {
        prepare_release_images();
    }
    let _cleanup = Cleanup;
    let up = xtask(&["prod-up", "--tag", V1, "--generate-secrets"]);
    assert!(up.status.success(), "prod-up failed:\n{}", text(&up));

    // 1. in the running API container (the distroless binary, no shell)
    let out = xtask(&["prod-exec", "api", "--", "/app/backend", "--help"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("running in the running `api` container"), "{t}");
    assert!(
        t.contains(&format!("$ docker compose -p {PROJECT}")) && t.contains("exec -T api /app/backend --help"),
        "the command is echoed:\n{t}"
    );
    assert!(
        t.to_lowercase().contains("migrate"),
        "the backend's help lists its subcommands:\n{t}"
    );

    // 2. in the running database, reading piped-in nothing: a query over the local socket
    let out = xtask(&["prod-exec", "postgres", "--", "pg_isready", "-q"]);
    assert!(out.status.success(), "{}", text(&out));

    // 3. a shell asked of the distroless image fails with the reason and a command that works
    let out = xtask(&["prod-exec", "api", "--", "sh", "-c", "true"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("has no shell (a distroless runtime)") && t.contains("fix:"),
        "{t}"
    );

    // 4. the one-shot migrate service does not run: a fresh container of its image, removed afterwards
    let out = xtask(&["prod-exec", "migrate", "--", "/app/backend", "--help"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("`migrate` is not running: running in a fresh container"),
        "{t}"
    );
    assert!(
        t.contains("run --rm --no-deps --pull never -T --entrypoint /app/backend migrate --help"),
        "{t}"
    );
    let left = common::docker_ok(&[
        "ps",
        "-aq",
        "--filter",
        &format!("label=com.docker.compose.project={PROJECT}"),
        "--filter",
        "label=com.docker.compose.oneoff=True",
    ]);
    assert!(left.trim().is_empty(), "the fresh container was not removed: {left}");

    // 5. every run is in the audit log, with its result
    let log = std::fs::read_to_string(root().join(".drydock").join(format!("audit-{PROJECT}.jsonl"))).unwrap();
    let execs: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["command"] == "prod-exec")
        .collect();
    assert_eq!(execs.len(), 4, "{log}");
    assert_eq!(execs[0]["tag"], "api: /app/backend --help");
    assert_eq!(execs[0]["result"], "ok");
    assert!(execs[2]["result"].as_str().unwrap().starts_with("failed:"), "{log}");
    assert_eq!(execs[3]["tag"], "migrate: /app/backend --help");
    println!("PROD-EXEC exec, fresh container, distroless refusal and audit: ok");
}
