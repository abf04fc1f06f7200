//! Keeps the hosted-CI definitions (GitHub Actions, GitLab CI) from drifting away from the xtask: every
//! command they run must be an xtask command or one of a few declared setup steps.
//! An integration test: it reads the CLI through the crate's own types.

use std::path::Path;

use xtask::cli::GROUPS;

const WORKFLOWS: [&str; 2] = [".github/workflows/ci.yml", ".gitlab-ci.yml"];

/// Commands a CI file may run that are not xtask commands: logging in to a registry is the runner's job.
const SETUP_STEPS: [&str; 1] = [
    "echo \"$DRYDOCK_REGISTRY_TOKEN\" | docker login \"$DRYDOCK_REGISTRY\" -u \"$DRYDOCK_REGISTRY_USER\" --password-stdin",
];

/// Every shell command in a workflow file: `run:` values (GitHub) and list items under `script:`,
/// `before_script:` and `after_script:` (GitLab). Line-based on purpose: the files are ours and simple.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_script: Option<usize> = None;
    let mut block: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(block_indent) = block {
            if indent > block_indent {
                out.push(trimmed.to_string());
                continue;
            }
            block = None;
        }
        if let Some(script_indent) = in_script {
            if indent >= script_indent && trimmed.starts_with("- ") {
                out.push(trimmed.trim_start_matches("- ").to_string());
                continue;
            }
            in_script = None;
        }
        let key_value = trimmed.trim_start_matches("- ");
        if let Some(value) = key_value.strip_prefix("run:") {
            let value = value.trim();
            if value == "|" || value == ">" {
                block = Some(indent);
            } else {
                out.push(value.to_string());
            }
        } else if ["script:", "before_script:", "after_script:"].contains(&key_value) {
            in_script = Some(indent);
        }
    }
    out
}

/// Why a command is not allowed, or `None` when it is an xtask command or a declared setup step.
fn disallowed(command: &str) -> Option<String> {
    if SETUP_STEPS.contains(&command) {
        return None;
    }
    let Some(rest) = command.strip_prefix("cargo xtask ") else {
        return Some(format!(
            "`{command}` is not `cargo xtask <command>` nor a declared setup step"
        ));
    };
    let name = rest.split_whitespace().next().unwrap_or_default();
    let known = GROUPS.iter().any(|(_, names)| names.contains(&name));
    (!known).then(|| format!("`{command}`: `{name}` is not an xtask command"))
}

#[test]
fn workflows_only_run_xtask_commands() {
    let root = xtask::context::project_root();
    for file in WORKFLOWS {
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let cmds = commands(&text);
        assert!(cmds.len() >= 5, "{file}: found only {cmds:?}");
        let bad: Vec<String> = cmds.iter().filter_map(|c| disallowed(c)).collect();
        assert!(
            bad.is_empty(),
            "{file} runs commands the xtask does not know:\n{}",
            bad.join("\n")
        );
    }
}

#[test]
fn ci_run_calls_the_readme_test_command() {
    let root = xtask::context::project_root();
    let run = std::fs::read_to_string(root.join(".ci/run")).unwrap();
    assert!(
        run.lines().any(|l| l.trim() == "cargo xtask ci"),
        ".ci/run must run `cargo xtask ci`"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let head: String = readme.lines().take(10).collect::<Vec<_>>().join("\n");
    assert!(
        head.contains("cargo xtask dev-up") && head.contains("cargo xtask ci"),
        "README must open with both"
    );
}

#[test]
fn parser_finds_run_blocks_and_scripts() {
    let text = "steps:\n  - name: a\n    run: cargo xtask lint\n  - run: |\n      cargo xtask test\n      rm -rf /\njob:\n  script:\n    - cargo xtask build\n    - make all\n  stage: x\n";
    assert_eq!(
        commands(text),
        [
            "cargo xtask lint",
            "cargo xtask test",
            "rm -rf /",
            "cargo xtask build",
            "make all"
        ]
    );
    assert!(disallowed("rm -rf /").is_some());
    assert!(disallowed("make all").is_some());
    assert!(disallowed("cargo xtask nonsense").is_some());
    assert!(disallowed("cargo xtask lint").is_none());
    assert!(Path::new(WORKFLOWS[0]).extension().is_some());
}
