//! The xtask binary end to end, without Docker: usage errors, refusals and `--dry-run` plans.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        // Plans name cargo by $CARGO; a fixed value keeps the expected lines independent of the toolchain path.
        .env("CARGO", "cargo")
        .env_remove("DRYDOCK_PROJECT")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn no_arguments_prints_the_grouped_list() {
    let out = xtask(&[]);
    assert!(out.status.success());
    let t = text(&out);
    for group in ["Environment:", "Development:", "Quality:", "Operations:"] {
        assert!(t.contains(group), "{t}");
    }
}

#[test]
fn unknown_command_is_a_usage_error_with_a_suggestion() {
    let out = xtask(&["dev-upp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("dev-up"));
}

#[test]
fn dev_up_dry_run_prints_the_plan() {
    let out = xtask(&["--dry-run", "--offline", "dev-up"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let root = root().display().to_string();
    assert!(t.contains("[dry-run] $ debootstrap --variant=minbase trixie"), "{t}");
    assert!(t.contains("[dry-run] $ docker compose -p drydock-images -f"), "{t}");
    let up = format!(
        "[dry-run] $ docker compose -p drydock -f {root}/infra/compose/compose.yaml -f {root}/infra/compose/compose.dev.yaml --env-file {root}/.env up --detach --wait --wait-timeout 300 --remove-orphans"
    );
    assert!(t.contains(&up), "expected {up}\n in\n{t}");
}

#[test]
fn ci_dry_run_lists_named_steps() {
    let out = xtask(&["--dry-run", "--offline", "ci"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for line in [
        "step 1/17: fmt",
        "[dry-run] $ cargo fmt --all -- --check",
        "[dry-run] $ cargo clippy --workspace --all-targets --all-features --locked -- -D warnings",
        "[dry-run] $ cargo test --workspace --locked",
        "[dry-run] $ cargo xtask dev-up --offline",
        "[dry-run] $ cargo xtask health --offline",
        "[dry-run] $ cargo xtask test-e2e --offline",
        "[dry-run] $ cargo xtask restore-postgres --latest --yes --offline",
        "[dry-run] $ cargo test -p xtask --locked --test backup_real -- --ignored --test-threads=1",
        "[dry-run] $ cargo xtask dev-down --volumes --yes --offline",
    ] {
        assert!(t.contains(line), "missing {line:?} in\n{t}");
    }
}

#[test]
fn destructive_step_is_refused_without_terminal_or_yes() {
    let out = xtask(&["--offline", "dev-down", "--volumes"]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("refusing to delete every volume of compose project `drydock`"),
        "{t}"
    );
    assert!(t.contains("--yes"), "{t}");
    assert!(
        !t.contains("$ docker compose"),
        "nothing may run before the refusal:\n{t}"
    );
}

#[test]
fn dry_run_with_yes_shows_the_destructive_command() {
    let out = xtask(&["--dry-run", "--offline", "--yes", "dev-down", "--volumes"]);
    assert!(out.status.success());
    assert!(text(&out).contains("down --remove-orphans --volumes"));
}

#[test]
fn bad_config_names_file_key_and_fix() {
    let dir = std::env::temp_dir().join(format!("xtask-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let shipped = std::fs::read_to_string(root().join("infra/stack.toml")).unwrap();
    let bad = dir.join("stack.toml");
    std::fs::write(&bad, shipped.replace("source = \"auto\"", "source = \"cloud\"")).unwrap();
    let out = xtask(&["--config", bad.to_str().unwrap(), "dev-ps"]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("stack.toml") && t.contains("cloud") && t.contains("fix:"),
        "{t}"
    );
}

#[test]
fn missing_config_says_how_to_fix() {
    let out = xtask(&["--config", "/nonexistent/stack.toml", "dev-ps"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("cannot read the stack description /nonexistent/stack.toml"));
}

#[test]
fn bad_tail_is_rejected_before_anything_runs() {
    let out = xtask(&["--offline", "dev-logs", "--tail", "lots"]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(t.contains("--tail \"lots\" is not a number"), "{t}");
    assert!(!t.contains("$ docker"), "{t}");
}

#[test]
fn completions_are_generated() {
    let out = xtask(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("dev-up"));
}
