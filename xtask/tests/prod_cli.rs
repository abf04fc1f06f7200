//! Production, release and lint commands end to end without Docker: refusals and `--dry-run` plans.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

mod common;
use common::{root, text, xtask, xtask_env};

/// A private (0700) temporary directory, removed when dropped, also when the test panics.
fn temp_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("xtask-prod-cli-{name}-"))
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn write_secret(dir: &Path, file: &str, value: &str) {
    let p = dir.join(file);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444)).unwrap();
}

#[test]
fn help_lists_the_production_and_images_groups() {
    let out = xtask(&[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for needle in [
        "Production:",
        "prod-deploy",
        "prod-rollback",
        "Images:",
        "build",
        "push",
        "lint",
    ] {
        assert!(t.contains(needle), "missing {needle} in\n{t}");
    }
}

#[test]
fn prod_up_refuses_missing_secrets_before_running_anything() {
    let tmp = temp_dir("missing");
    let dir = tmp.path().to_path_buf();
    let out = xtask_env(
        &["--offline", "prod-up", "--tag", "sha-0000000"],
        &[("DRYDOCK_SECRETS_DIR", dir.to_str().unwrap())],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("postgres_password.txt (compose secret `postgres_password`) is missing"),
        "{t}"
    );
    assert!(t.contains("fix: cargo xtask prod-up --generate-secrets"), "{t}");
    assert!(!t.contains("$ docker"), "nothing may run before the refusal:\n{t}");
}

#[test]
fn prod_up_refuses_the_example_passwords() {
    let tmp = temp_dir("example");
    let dir = tmp.path().to_path_buf();
    write_secret(&dir, "postgres_password.txt", "drydock-dev-password");
    write_secret(&dir, "redis_password.txt", "changeme");
    let out = xtask_env(
        &["--offline", "prod-up", "--tag", "sha-0000000"],
        &[("DRYDOCK_SECRETS_DIR", dir.to_str().unwrap())],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("postgres_password.txt is the example password from .env.example"),
        "{t}"
    );
    assert!(t.contains("redis_password.txt is a well-known default password"), "{t}");
    assert!(
        !t.contains("drydock-dev-password"),
        "the refused value itself must not be printed:\n{t}"
    );
    assert!(!t.contains("$ docker"), "{t}");
}

#[test]
fn prod_up_refuses_secrets_the_containers_cannot_read() {
    let tmp = temp_dir("mode");
    let dir = tmp.path().to_path_buf();
    write_secret(&dir, "postgres_password.txt", "Zq8v2LmN4pR7sT1wX9yB3cD5");
    write_secret(&dir, "redis_password.txt", "Hk3m9QpW2xV7nB4tY6rL1sD8");
    std::fs::set_permissions(dir.join("redis_password.txt"), std::fs::Permissions::from_mode(0o400)).unwrap();
    let out = xtask_env(
        &["--offline", "prod-up", "--tag", "sha-0000000"],
        &[("DRYDOCK_SECRETS_DIR", dir.to_str().unwrap())],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("redis_password.txt is not readable by the containers' non-root users"),
        "{t}"
    );
    assert!(t.contains("chmod 0444"), "{t}");
    assert!(!t.contains("$ docker"), "nothing may run before the refusal:\n{t}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn generate_secrets_creates_strong_readonly_files_once() {
    let tmp = temp_dir("generate");
    let dir = tmp.path().to_path_buf();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = [("DRYDOCK_SECRETS_DIR", dir.to_str().unwrap())];
    // In a dry run nothing is written.
    let out = xtask_env(
        &[
            "--offline",
            "--dry-run",
            "prod-up",
            "--generate-secrets",
            "--tag",
            "sha-0000000",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "a dry run writes nothing"
    );
    assert_eq!(mode(&dir), 0o755, "a dry run changes nothing");

    // A real run. The secrets check after the generation refuses the planted weak redis password, so the run
    // stops there, before Docker: generation happens for real and nothing else.
    write_secret(&dir, "redis_password.txt", "changeme");
    let run = || {
        let out = xtask_env(
            &["--offline", "prod-up", "--generate-secrets", "--tag", "sha-0000000"],
            &env,
        );
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains("redis_password.txt is a well-known default password"), "{t}");
        assert!(!t.contains("$ docker"), "nothing may run after the refusal:\n{t}");
        t
    };
    let t = run();
    assert_eq!(mode(&dir), 0o700, "the secrets directory is made private");
    let mut generated = Vec::new();
    for file in ["postgres_password.txt", "grafana_admin_password.txt"] {
        let path = dir.join(file);
        let content = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file} was not generated ({e}):\n{t}"));
        let value = content
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("{file}: no final newline"));
        assert!(
            value.len() == 32 && value.chars().all(|c| c.is_ascii_alphanumeric()),
            "{file}: not 32 random letters and digits: {value:?}"
        );
        assert_eq!(mode(&path), 0o444, "{file} is read-only");
        assert!(t.contains(&format!("created {}", path.display())), "{t}");
        generated.push((path, content));
    }
    assert_ne!(generated[0].1, generated[1].1, "every secret is drawn anew");
    assert_eq!(
        std::fs::read_to_string(dir.join("redis_password.txt")).unwrap(),
        "changeme\n",
        "an existing secret is never touched"
    );
    // Once: a second run keeps every file as it is.
    let t = run();
    assert!(!t.contains("created "), "{t}");
    for (path, content) in &generated {
        assert_eq!(
            &std::fs::read_to_string(path).unwrap(),
            content,
            "{} was rewritten",
            path.display()
        );
    }
}

#[test]
fn prod_up_dry_run_prints_the_plan() {
    let out = xtask(&[
        "--offline",
        "--dry-run",
        "prod-up",
        "--tag",
        "sha-1234567",
        "--monitoring",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let root = root().display().to_string();
    let up = format!(
        "docker compose -p drydock-prod -f {root}/infra/compose/compose.yaml -f {root}/infra/compose/compose.prod.yaml"
    );
    assert!(t.contains(&up), "{t}");
    assert!(
        t.contains(
            "--profile monitoring up --detach --wait --wait-timeout 300 --remove-orphans --no-build --pull never"
        ),
        "{t}"
    );
    assert!(t.contains("Grafana: unavailable in offline mode"), "{t}");
    assert!(
        t.contains("docker network connect --alias api --alias api-live drydock-prod_frontend"),
        "{t}"
    );
}

#[test]
fn prod_deploy_dry_run_shows_the_rolling_plan() {
    let out = xtask(&["--offline", "--dry-run", "prod-deploy", "--tag", "sha-7654321"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for needle in [
        "step 1/5: migrations",
        "run --rm --no-deps --pull never migrate",
        "up --detach --no-deps --no-recreate --no-build --pull never --scale api=1 api",
        "step 3/5: waiting up to 180 s",
        "step 4/5: shifting traffic",
        "step 5/5: draining",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
}

#[test]
fn prod_deploy_swarm_dry_run_uses_stack_deploy() {
    let out = xtask(&[
        "--offline",
        "--dry-run",
        "prod-deploy",
        "--swarm",
        "--tag",
        "sha-7654321",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("config --format json"), "{t}");
    assert!(
        t.contains("docker stack deploy --prune --resolve-image never --compose-file"),
        "{t}"
    );
    assert!(t.contains("drydock-prod-swarm"), "{t}");
}

#[test]
fn prod_deploy_swarm_with_a_registry_pushes_from_this_machine_and_pins_digests() {
    let out = xtask(&[
        "--offline",
        "--dry-run",
        "prod-deploy",
        "--swarm",
        "--tag",
        "sha-7654321",
        "--registry",
        "127.0.0.1:5000",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    // Tagged and pushed on this machine's engine (DOCKER_HOST emptied), whatever engine the deploy goes to.
    for name in ["api", "frontend", "proxy"] {
        for step in [
            format!("DOCKER_HOST='' docker tag drydock/{name}:sha-7654321 127.0.0.1:5000/drydock/{name}:sha-7654321"),
            format!("DOCKER_HOST='' docker push --quiet 127.0.0.1:5000/drydock/{name}:sha-7654321"),
        ] {
            assert!(t.contains(&step), "missing {step:?} in\n{t}");
        }
    }
    let push = t.find("docker push").unwrap();
    let deploy = t
        .find("docker stack deploy --prune --resolve-image always --with-registry-auth --compose-file")
        .unwrap_or_else(|| panic!("no digest-resolving deploy in\n{t}"));
    assert!(
        push < deploy,
        "the images must be in the registry before the deploy:\n{t}"
    );
}

#[test]
fn a_registry_needs_the_swarm_and_a_bare_host() {
    for (args, needle) in [
        (&["prod-deploy", "--registry", "127.0.0.1:5000"][..], "--swarm"),
        (&["prod-rollback", "--registry", "127.0.0.1:5000"][..], "--swarm"),
        (&["prod-up", "--registry", "127.0.0.1:5000"][..], "--swarm"),
        (
            &["prod-deploy", "--swarm", "--registry", "https://r.example.com"][..],
            "not a registry host",
        ),
    ] {
        let out = xtask(&[&["--offline"][..], args].concat());
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {t}");
        assert!(t.contains(needle), "{args:?}: {t}");
        assert!(!t.contains("$ docker"), "{args:?} ran something:\n{t}");
    }
}

#[test]
fn prod_up_swarm_dry_run_deploys_the_stack_under_its_lock() {
    let out = xtask(&["--offline", "--dry-run", "prod-up", "--swarm", "--tag", "v3"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let lock = t
        .find("drydock-deploy-lock-drydock-prod-swarm")
        .unwrap_or_else(|| panic!("no lock in\n{t}"));
    let deploy = t
        .find("$ docker stack deploy --prune --resolve-image never --compose-file")
        .unwrap_or_else(|| panic!("no stack deploy in\n{t}"));
    assert!(lock < deploy, "{t}");
    assert!(t.contains("with API v3"), "{t}");
}

#[test]
fn prod_up_swarm_refuses_monitoring_and_changes_nothing() {
    let out = xtask(&["--offline", "prod-up", "--swarm", "--monitoring"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("not supported with --swarm") && t.contains("fix:"), "{t}");
    assert!(!t.contains("$ docker"), "nothing may run before the refusal:\n{t}");
}

#[test]
fn prod_scale_refuses_stateful_services() {
    let out = xtask(&["--offline", "prod-scale", "postgres", "2"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("`postgres` cannot be scaled") && t.contains("fix:"), "{t}");
    assert!(!t.contains("$ docker"), "nothing may run before the refusal:\n{t}");
}

#[test]
fn prod_down_asks_first() {
    let out = xtask(&["--offline", "prod-down"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("refusing to stop the production stack `drydock-prod`"),
        "{t}"
    );
    assert!(!t.contains("$ docker"), "nothing may run before the refusal:\n{t}");
}

#[test]
fn bad_tag_and_registry_are_refused_before_anything_runs() {
    // `--tag` and `--registry` are checked by clap's value parsers: usage errors (exit 2) before anything runs.
    for (args, says) in [
        (
            &["--offline", "prod-deploy", "--tag", "a/b"][..],
            "\"a/b\" is not a valid image tag",
        ),
        (
            &["--offline", "push", "--registry", "https://r.example.com"],
            "\"https://r.example.com\" is not a registry host",
        ),
    ] {
        let out = xtask(args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{t}");
        assert!(
            t.contains(says) && t.contains("fix:"),
            "{args:?}: expected {says:?} in\n{t}"
        );
        assert!(!t.contains("$ "), "{args:?}: nothing may run:\n{t}");
    }
    // `build --tag` takes only staging|latest: a clap usage error.
    let out = xtask(&["--offline", "build", "--tag", "nightly"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("[possible values: staging, latest]"), "{t}");
    assert!(!t.contains("$ "), "nothing may run:\n{t}");
}

#[test]
fn build_dry_run_tags_by_commit() {
    let out = xtask(&["--offline", "--dry-run", "build", "--tag", "staging"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("build api frontend proxy"), "{t}");
    let tag = t
        .split("docker tag drydock/api:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no docker tag line in\n{t}"));
    assert!(tag.starts_with("sha-") && tag.len() == 11, "{tag}");
    assert!(
        t.contains(&format!("docker tag drydock/api:{tag} drydock/api:staging")),
        "{t}"
    );
}

#[test]
fn push_dry_run_retags_for_the_registry() {
    let out = xtask(&[
        "--offline",
        "--dry-run",
        "push",
        "--registry",
        "127.0.0.1:5000",
        "--tag",
        "sha-1234567",
        "api",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("docker tag drydock/api:sha-1234567 127.0.0.1:5000/drydock/api:sha-1234567"),
        "{t}"
    );
    assert!(t.contains("docker push 127.0.0.1:5000/drydock/api:sha-1234567"), "{t}");
}

#[test]
fn lint_dry_run_names_every_gate() {
    let out = xtask(&["--offline", "--dry-run", "lint"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for gate in [
        "hadolint",
        "compose config",
        "compose-lint",
        "shellcheck",
        "promtool",
        "actionlint",
        "yamllint",
        "image secrets",
    ] {
        assert!(t.contains(&format!(": {gate}")), "missing gate {gate} in\n{t}");
    }
}

/// infra/stack.toml with its `[proxy]` section replaced by `section`.
fn stack_toml_with_proxy(section: &str) -> String {
    let shipped = std::fs::read_to_string(root().join("infra/stack.toml")).unwrap();
    let start = shipped
        .find("\n[proxy]")
        .expect("the shipped stack.toml has a [proxy] section");
    format!("{}\n{section}", &shipped[..start])
}

#[test]
fn proxy_settings_reach_the_proxy_container_environment() {
    let tmp = temp_dir("proxy-plan");
    let dir = tmp.path().to_path_buf();
    let config = dir.join("stack.toml");
    std::fs::write(
        &config,
        stack_toml_with_proxy(
            "[proxy]\ntrusted_proxies = [\"10.1.0.0/16\", \"192.0.2.7\"]\nreal_ip_header = \"cf-connecting-ip\"\n[proxy.limits.api]\nrate = 7\nburst = 3\n[proxy.limits.static]\nrate = 11\nburst = 0\n",
        ),
    )
    .unwrap();
    let out = xtask(&[
        "--offline",
        "--dry-run",
        "-v",
        "--config",
        config.to_str().unwrap(),
        "prod-up",
        "--tag",
        "sha-1234567",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    // The environment of the `up` that starts the stack.
    let up = t
        .split("[dry-run] $ ")
        .find(|c| c.contains(" up --detach --wait "))
        .unwrap_or_else(|| panic!("no `up` in the plan:\n{t}"));
    let env: BTreeMap<&str, &str> = up
        .lines()
        .filter_map(|l| l.trim().strip_prefix("env: "))
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let want = [
        ("DRYDOCK_PROXY_TRUSTED_PROXIES", "10.1.0.0/16,192.0.2.7"),
        ("DRYDOCK_PROXY_REAL_IP_HEADER", "CF-Connecting-IP"),
        ("DRYDOCK_PROXY_API_RATE", "7"),
        ("DRYDOCK_PROXY_API_BURST", "3"),
        ("DRYDOCK_PROXY_STATIC_RATE", "11"),
        ("DRYDOCK_PROXY_STATIC_BURST", "0"),
    ];
    for (k, v) in want {
        assert_eq!(env.get(k), Some(&v), "{k} in the plan's `up`:\n{up}");
    }

    // compose.prod.yaml hands them to the proxy container as PROXY_* (what 30-drydock-proxy.sh reads). Only the
    // Compose CLI runs here (`config` needs no engine).
    let mut compose = Command::new("docker");
    compose
        .args(["compose", "-p", "drydock-proxyplan", "-f"])
        .arg(root().join("infra/compose/compose.yaml"))
        .arg("-f")
        .arg(root().join("infra/compose/compose.prod.yaml"))
        .args(["config", "--format", "json", "proxy"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs([
            ("POSTGRES_USER", "drydock"),
            ("POSTGRES_DB", "drydock"),
            ("POSTGRES_PASSWORD", ""),
            ("REDIS_PASSWORD", ""),
        ])
        .envs(env.iter().filter(|(k, _)| k.starts_with("DRYDOCK_PROXY_")));
    let rendered = compose
        .output()
        .expect("docker compose (the Compose CLI) must be installed");
    assert!(rendered.status.success(), "docker compose config: {}", text(&rendered));
    let v: serde_json::Value = serde_json::from_slice(&rendered.stdout).unwrap();
    let proxy_env = &v["services"]["proxy"]["environment"];
    for (k, v) in want {
        let var = k.strip_prefix("DRYDOCK_").unwrap();
        assert_eq!(proxy_env[var], v, "{var} of the proxy service: {proxy_env}");
    }
}

#[test]
fn bad_proxy_settings_are_refused_before_anything_runs() {
    let tmp = temp_dir("proxy-bad");
    let dir = tmp.path().to_path_buf();
    for (section, key) in [
        (
            "[proxy]\ntrusted_proxies = [\"10.0.0.300/8\"]\n",
            "proxy.trusted_proxies",
        ),
        (
            "[proxy]\nreal_ip_header = \"X-Client-Address\"\n",
            "proxy.real_ip_header",
        ),
        ("[proxy.limits.api]\nrate = 0\nburst = 200\n", "proxy.limits.api.rate"),
        (
            "[proxy.limits.static]\nrate = 300\nburst = -4\n",
            "proxy.limits.static.burst",
        ),
    ] {
        let config = dir.join("stack.toml");
        std::fs::write(&config, stack_toml_with_proxy(section)).unwrap();
        let out = xtask(&[
            "--offline",
            "--config",
            config.to_str().unwrap(),
            "prod-up",
            "--tag",
            "sha-1234567",
        ]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{section}:\n{t}");
        assert!(
            t.contains(&format!("{}: key `{key}`", config.display())) && t.contains("fix:"),
            "{section}: expected the file, `{key}` and a fix in\n{t}"
        );
        assert!(!t.contains("$ "), "{section}: nothing may run:\n{t}");
    }
}

#[test]
fn rollback_to_a_tag_whose_image_is_gone_is_refused_before_anything_runs() {
    let out = xtask(&["--offline", "prod-rollback", "--to", "prodtest-no-such-image"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("cannot roll back to prodtest-no-such-image: its API image is not on this engine"),
        "{t}"
    );
    assert!(t.contains("fix: `cargo xtask prod-history`"), "{t}");
    assert!(!t.contains("$ docker"), "nothing may run before the refusal:\n{t}");
}

#[test]
fn prod_history_of_a_target_without_records_is_empty_and_machine_readable() {
    let project = format!("drydock-histtest-{}", std::process::id());
    let out = xtask_env(&["prod-history", "--json"], &[("DRYDOCK_PROJECT", project.as_str())]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["target"], project.as_str());
    assert_eq!(v["audit"], serde_json::json!([]));
    assert_eq!(v["versions"], serde_json::json!([]));
}

#[test]
fn a_failing_pre_deploy_hook_stops_the_deploy_before_anything_runs() {
    let tmp = temp_dir("hooks");
    let hook = tmp.path().join("pre-deploy");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho \"no deploys of $DRYDOCK_TAG to $DRYDOCK_TARGET today\" >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let project = format!("drydock-hooktest-{}", std::process::id());
    let env = [
        ("DRYDOCK_HOOKS_DIR", tmp.path().to_str().unwrap()),
        ("DRYDOCK_PROJECT", project.as_str()),
    ];
    let out = xtask_env(&["--offline", "prod-deploy", "--tag", "sha-hooked"], &env);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("the pre-deploy hook failed (nothing was changed)"), "{t}");
    assert!(
        t.contains(&format!("no deploys of sha-hooked to {project} today")),
        "{t}"
    );
    // Only the deploy lock is taken (on the engine, before the hook; its image imported the first time) and
    // released.
    let lock = [
        "docker container create --name drydock-deploy-lock-",
        "docker image import --change 'LABEL drydock.deploy-lock=image'",
        "docker container rm ",
    ];
    assert!(
        !t.lines()
            .any(|l| l.contains("$ docker") && !lock.iter().any(|k| l.contains(k))),
        "nothing may run after a failing pre-deploy hook:\n{t}"
    );
    // --skip-hooks: the hook does not run (the deploy then goes on, and here stops at the missing stack).
    let out = xtask_env(
        &[
            "--offline",
            "--dry-run",
            "prod-deploy",
            "--tag",
            "sha-hooked",
            "--skip-hooks",
        ],
        &env,
    );
    assert!(!text(&out).contains("pre-deploy hook"), "{}", text(&out));
}

#[test]
fn prod_exec_dry_run_shows_the_command_in_the_service() {
    let out = xtask(&[
        "--offline",
        "--dry-run",
        "prod-exec",
        "api",
        "--",
        "/app/backend",
        "--help",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("exec -T api /app/backend --help"), "{t}");
    let out = xtask(&[
        "--offline",
        "--dry-run",
        "prod-exec",
        "--fresh",
        "api",
        "--",
        "/app/backend",
        "--help",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("a fresh container of `api`'s image (--fresh)"), "{t}");
    assert!(
        t.contains("run --rm --no-deps --pull never -T --entrypoint /app/backend api --help"),
        "{t}"
    );
}

#[test]
fn prod_exec_refuses_bad_input_before_anything_runs() {
    // No command: clap names the missing part.
    let out = xtask(&["--offline", "prod-exec", "api"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("<CMD>"), "{}", text(&out));
    // A fresh container beside a database's data is refused.
    let out = xtask(&["--offline", "prod-exec", "--fresh", "postgres", "--", "psql"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("refusing a fresh container of `postgres`") && t.contains("fix:"),
        "{t}"
    );
    assert!(!t.contains("$ docker"), "nothing may run before the refusal:\n{t}");
    // An unknown service is named with the ones that exist (compose config reads the files, no engine).
    let out = xtask(&["--offline", "prod-exec", "nope", "--", "ls"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("unknown service `nope`") && t.contains("postgres"), "{t}");
    assert!(!t.contains("$ docker"), "nothing may run before the refusal:\n{t}");
}

#[test]
fn host_names_the_remote_engine_in_every_docker_command() {
    let out = xtask(&[
        "--offline",
        "--dry-run",
        "--host",
        "ssh://root@127.0.0.1:40022",
        "prod-ps",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("engine: ssh://root@127.0.0.1:40022 (--host)"), "{t}");
    assert!(
        t.contains("$ DOCKER_HOST=ssh://root@127.0.0.1:40022 docker compose -p drydock-prod"),
        "{t}"
    );
    // Bad targets are refused before anything runs, naming the fix.
    for (host, why) in [
        ("tcp://10.0.0.5:2375", "is not an SSH address"),
        ("web", "no host `web` in infra/stack.toml"),
        ("ssh://root:pw@10.0.0.5", "carries a password"),
    ] {
        let out = xtask(&["--offline", "--host", host, "prod-ps"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{host}: {t}");
        assert!(t.contains(why) && t.contains("fix:"), "{host}: {t}");
        assert!(!t.contains("$ docker"), "nothing may run before the refusal:\n{t}");
    }
}

#[test]
fn setup_host_dry_run_installs_docker_over_ssh() {
    let out = xtask(&["--dry-run", "--host", "ssh://root@127.0.0.1:40022", "setup"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("$ ssh -o BatchMode=yes -p 40022 -l root -- 127.0.0.1 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io"),
        "{t}"
    );
    assert!(t.contains("systemctl enable --now docker"), "{t}");
}

#[test]
fn swarm_setup_dry_run_shows_init_join_and_label_per_host() {
    let out = xtask(&[
        "swarm-setup",
        "--dry-run",
        "--manager",
        "ssh://root@m1",
        "--worker",
        "ssh://root@w1:2222",
        "--worker",
        "ssh://root@w2",
        "--db-node",
        "ssh://root@w1:2222",
        "--advertise-addr",
        "eth1",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    for line in [
        "$ DOCKER_HOST=ssh://root@m1 docker swarm init --advertise-addr eth1",
        "$ DOCKER_HOST=ssh://root@m1 docker swarm join-token --quiet worker",
        "$ DOCKER_HOST=ssh://root@w1:2222 docker system dial-stdio < ",
        "$ DOCKER_HOST=ssh://root@w2 docker system dial-stdio < ",
        "$ DOCKER_HOST=ssh://root@m1 docker node update --label-add drydock.db=true '<node id of ssh://root@w1:2222>'",
    ] {
        assert!(t.contains(line), "missing {line:?}:\n{t}");
    }
    // The token goes in a request body on stdin, never as `swarm join --token`.
    assert!(!t.contains("swarm join ") && !t.contains("--token"), "{t}");
}

#[test]
fn swarm_setup_refuses_hosts_that_do_not_fit_and_changes_nothing() {
    for (args, expected) in [
        (
            &[
                "--manager",
                "ssh://root@m1",
                "--worker",
                "ssh://root@m1",
                "--db-node",
                "ssh://root@m1",
            ][..],
            "are the same host",
        ),
        (
            &[
                "--manager",
                "ssh://root@m1",
                "--worker",
                "ssh://root@w1",
                "--db-node",
                "ssh://root@db",
            ][..],
            "--db-node ssh://root@db is not one of the hosts given",
        ),
        (
            &[
                "--manager",
                "ssh://root@m1",
                "--worker",
                "ssh://root@w1",
                "--db-node",
                "ssh://root@w1",
                "--advertise-addr",
                "10.0.0.2",
            ][..],
            "fits one host only",
        ),
        (
            &["--manager", "http://m1", "--db-node", "http://m1"][..],
            "is not an SSH address",
        ),
        (
            &["--manager", "nosuchhost", "--db-node", "nosuchhost"][..],
            "no host `nosuchhost`",
        ),
    ] {
        let mut all = vec!["swarm-setup"];
        all.extend(args);
        let out = xtask(&all);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {t}");
        assert!(
            t.contains(expected) && t.contains("nothing was changed"),
            "{args:?}: {t}"
        );
        // Refused before any engine was asked: no command ran.
        assert!(!t.contains("$ "), "{args:?} ran something: {t}");
    }
}

#[test]
fn prod_scale_swarm_dry_run_scales_the_stack_service_under_the_swarm_lock() {
    let out = xtask(&["prod-scale", "--swarm", "3", "--dry-run"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("docker config create") && t.contains("drydock-deploy-lock-drydock-prod-swarm"),
        "{t}"
    );
    assert!(
        t.contains("$ docker service scale --detach drydock-prod-swarm_api=3"),
        "{t}"
    );
    let out = xtask(&["prod-scale", "--swarm", "postgres", "3", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!text(&out).contains("service scale"), "{}", text(&out));
}

#[test]
fn prod_ps_swarm_dry_run_lists_the_stack_services_and_tasks() {
    let out = xtask(&["prod-ps", "--swarm", "--dry-run"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("$ docker stack services drydock-prod-swarm"), "{t}");
    assert!(
        t.contains("$ docker stack ps drydock-prod-swarm --filter desired-state=running"),
        "{t}"
    );
}
