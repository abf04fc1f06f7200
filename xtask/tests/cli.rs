//! The xtask binary end to end, without Docker: usage errors, refusals and `--dry-run` plans.

use std::path::PathBuf;
use std::process::{Command, Stdio};

mod common;
use common::{root, text, xtask};

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
fn dev_up_watch_dry_run_adds_the_watch_overlay_to_build_up_and_watch() {
    let out = xtask(&["--dry-run", "--offline", "dev-up", "--watch"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let root = root().display().to_string();
    let compose = format!(
        "[dry-run] $ docker compose -p drydock -f {root}/infra/compose/compose.yaml -f {root}/infra/compose/compose.dev.yaml -f {root}/infra/compose/compose.watch.yaml --env-file {root}/.env --profile watch"
    );
    for sub in [
        "build",
        "up --detach --wait --wait-timeout 300 --remove-orphans --no-build",
        "watch --no-up",
    ] {
        let line = format!("{compose} {sub}");
        assert!(t.contains(&line), "expected {line}\n in\n{t}");
    }
    // Without --watch the overlay stays out: the release API image.
    let plain = text(&xtask(&["--dry-run", "--offline", "dev-up"]));
    assert!(!plain.contains("compose.watch.yaml"), "{plain}");
}

#[test]
fn ci_dry_run_lists_named_steps() {
    let out = xtask(&["--dry-run", "--offline", "ci"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for line in [
        "step 1/27: fmt",
        "[dry-run] $ cargo fmt --all -- --check",
        "[dry-run] $ cargo clippy --workspace --all-targets --all-features --locked -- -D warnings",
        "[dry-run] $ cargo test -p xtask --locked",
        "[dry-run] $ cargo xtask dev-up --offline",
        "[dry-run] $ cargo xtask health --offline",
        "[dry-run] $ cargo xtask test-e2e --offline",
        "[dry-run] $ cargo xtask restore-postgres --latest --yes --offline",
        "[dry-run] $ cargo test -p xtask --locked --test backup_real -- --ignored --test-threads=1",
        "[dry-run] $ cargo test -p xtask --locked --test schedule_real -- --ignored --test-threads=1 --nocapture",
        "[dry-run] $ cargo test -p xtask --locked --test pitr_real -- --ignored --test-threads=1 --nocapture",
        "[dry-run] $ cargo test -p xtask --locked --test dev_real -- --ignored --test-threads=1",
        "[dry-run] $ cargo test -p xtask --locked --test proxy_real -- --ignored --test-threads=1 --nocapture",
        "[dry-run] $ cargo test -p xtask --locked --test lock_real -- --ignored --test-threads=1 --nocapture",
        "[dry-run] $ cargo test -p xtask --locked --test swarm_nodes -- --ignored --test-threads=1 --nocapture",
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
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shipped = std::fs::read_to_string(root().join("infra/stack.toml")).unwrap();
    let bad = dir.join("stack.toml");
    let broken = shipped.replace("source = \"auto\"", "source = \"cloud\"");
    assert_ne!(broken, shipped, "infra/stack.toml no longer has source = \"auto\"");
    std::fs::write(&bad, broken).unwrap();
    let out = xtask(&["--config", bad.to_str().unwrap(), "dev-ps"]);
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
    for command in ["dev-logs", "prod-logs"] {
        let out = xtask(&["--offline", command, "--tail", "lots"]);
        // A bad value is a usage error: exit 2, like every other one clap reports.
        assert_eq!(out.status.code(), Some(2), "{command}");
        let t = text(&out);
        assert!(
            t.contains("invalid value 'lots' for '--tail <N|all>'") && t.contains("not a number of lines"),
            "{t}"
        );
        assert!(!t.contains("$ docker"), "{t}");
    }
}

#[test]
fn usage_errors_exit_2_and_run_nothing() {
    for (args, says) in [
        (
            &["--dry-run", "test", "--suite", "nosuch"][..],
            "[possible values: backend, frontend]",
        ),
        (&["--dry-run", "test", "--", "--nocapture"], "--suite"),
        (
            &["--dry-run", "images", "--json", "build-offline"],
            "cannot be used with",
        ),
        (&["--dry-run", "-v", "-q", "dev-ps"], "cannot be used with"),
        (
            &["--dry-run", "restore-postgres", "--latest", "x.dump"],
            "cannot be used with",
        ),
        (
            &["--dry-run", "health", "--env", "staging"],
            "[possible values: dev, prod]",
        ),
    ] {
        let out = xtask(args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{t}");
        assert!(t.contains(says), "{args:?}: expected {says:?} in\n{t}");
        assert!(!t.contains("$ "), "{args:?}: nothing may run:\n{t}");
    }
}

#[test]
fn unknown_service_in_prod_logs_names_the_choices() {
    // Not a skip: without the docker CLI this test would pass without checking anything.
    assert!(
        which("docker").is_some(),
        "this test needs the docker CLI on PATH (compose lists the services; no engine needed): `cargo xtask setup`"
    );
    let out = xtask(&["--offline", "prod-logs", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    let t = text(&out);
    assert!(
        t.contains("unknown service `nosuch`") && t.contains("fix: use one of:"),
        "{t}"
    );
    assert!(t.contains("api") && t.contains("proxy"), "{t}");
    assert!(!t.contains(" logs "), "nothing may run:\n{t}");
}

#[test]
fn output_is_plain_without_a_terminal_even_without_no_color() {
    // Captured output is not a terminal: no colour codes, whether or not NO_COLOR is set.
    for args in [&["dev-upp"][..], &["--dry-run", "--offline", "lint-fix"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let t = text(&out);
        assert!(!t.is_empty() && !t.contains('\x1b'), "{args:?}: escape codes in\n{t:?}");
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

#[test]
fn completions_are_generated() {
    let out = xtask(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("dev-up"));
}

/// Makefile.toml and README's command table are generated from the CLI (`cargo xtask codegen`): they must
/// be what the CLI generates now.
#[test]
fn generated_files_are_up_to_date() {
    let root = common::root();
    let listing = xtask::cli::listing();
    for (file, want) in xtask::commands::codegen::expected(&root, &listing).unwrap() {
        let have = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(have == want, "{file} is stale\n  fix: cargo xtask codegen");
    }
}

#[test]
fn makefile_delegates_every_command_with_arguments() {
    let listing = xtask::cli::listing();
    let parsed: toml::Table = toml::from_str(&xtask::commands::codegen::makefile(&listing)).unwrap();
    let tasks = parsed["tasks"].as_table().unwrap();
    let names: Vec<&str> = xtask::cli::GROUPS.iter().flat_map(|(_, n)| n.iter().copied()).collect();
    assert_eq!(tasks.len(), names.len());
    for name in names {
        let task = tasks[name].as_table().unwrap();
        assert_eq!(task["command"].as_str(), Some("cargo"));
        let args: Vec<&str> = task["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args, ["xtask", name, "${@}"]);
    }
    let config = parsed["config"].as_table().unwrap();
    assert_eq!(config["default_to_workspace"].as_bool(), Some(false));
    assert_eq!(config["skip_core_tasks"].as_bool(), Some(true));
}

/// A `.env` that lacks a variable the example sets is refused before anything starts, naming the variable,
/// the file and the fix.
#[test]
fn env_file_missing_a_variable_is_named_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    std::fs::write(
        &env_file,
        "POSTGRES_USER=drydock\nPOSTGRES_DB=drydock\nREDIS_PASSWORD=x\n",
    )
    .unwrap();
    let stack = std::fs::read_to_string(root().join("infra/stack.toml"))
        .unwrap()
        .replace(
            "env_file = \".env\"",
            &format!("env_file = {:?}", env_file.display().to_string()),
        );
    let config = dir.path().join("stack.toml");
    std::fs::write(&config, stack).unwrap();
    let out = xtask(&["--config", config.to_str().unwrap(), "--dry-run", "dev-up"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("does not set POSTGRES_PASSWORD"), "{all}");
    assert!(all.contains(&env_file.display().to_string()), "{all}");
    assert!(all.contains("fix: add `POSTGRES_PASSWORD=...`"), "{all}");
    assert!(!all.contains("compose -p"), "nothing may start: {all}");
}
