//! What the gates look at: every Dockerfile, shell script and hosted-CI file of the repository.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::context::Ctx;

pub const GITHUB_WORKFLOWS: &str = ".github/workflows";

pub const GITLAB_CI: &str = ".gitlab-ci.yml";

pub const YAMLLINT_CONFIG: &str = ".yamllint.yaml";

/// Directories never searched for files to lint.
const SKIP_DIRS: &[&str] = &[
    ".git",
    "target",
    "node_modules",
    "dist",
    "backups",
    "artifacts",
    ".drydock",
    "secrets",
];

/// Every file under the repository (minus build output and dependencies) for which `keep` holds, sorted.
pub fn files(root: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            let name = entry.file_name().to_string_lossy().to_string();
            if kind.is_dir() {
                if !SKIP_DIRS.contains(&name.as_str()) {
                    stack.push(path);
                }
            } else if kind.is_file() && keep(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

pub fn is_dockerfile(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    name == "Dockerfile" || name.starts_with("Dockerfile.") || name.ends_with(".Dockerfile")
}

/// `.sh` files and files whose first line is a sh/bash/dash shebang.
pub fn is_shell_script(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "sh") {
        return true;
    }
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 64];
    let n = f.read(&mut head).unwrap_or(0);
    let line = String::from_utf8_lossy(&head[..n]);
    let line = line.lines().next().unwrap_or("");
    line.starts_with("#!")
        && ["/sh", "/bash", "/dash", "env sh", "env bash"]
            .iter()
            .any(|s| line.contains(s))
}

/// The GitHub Actions workflows (`.github/workflows/*.yml`, `*.yaml`), sorted.
pub fn github_workflows(root: &Path) -> Vec<PathBuf> {
    files(&root.join(GITHUB_WORKFLOWS), &|p| {
        p.extension().is_some_and(|e| e == "yml" || e == "yaml")
    })
}

/// Every hosted-CI file: `.gitlab-ci.yml` (when there is one) and the GitHub Actions workflows.
pub fn ci_files(root: &Path) -> Vec<PathBuf> {
    let gitlab = root.join(GITLAB_CI);
    gitlab
        .is_file()
        .then_some(gitlab)
        .into_iter()
        .chain(github_workflows(root))
        .collect()
}

pub fn rel(ctx: &Ctx, p: &Path) -> String {
    p.strip_prefix(&ctx.root).unwrap_or(p).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_kinds() {
        assert!(is_dockerfile(Path::new("/r/infra/proxy/Dockerfile")));
        assert!(is_dockerfile(Path::new("/r/x/Dockerfile.dev")));
        assert!(!is_dockerfile(
            Path::new("/r/x/Dockerfile.md.txt")
                .with_file_name("README.md")
                .as_path()
        ));
        let root = crate::context::project_root();
        let scripts = files(&root, &is_shell_script);
        assert!(
            scripts
                .iter()
                .any(|p| p.ends_with("infra/proxy/docker-entrypoint.d/30-drydock-proxy.sh")),
            "{scripts:?}"
        );
        assert!(
            !scripts
                .iter()
                .any(|p| p.components().any(|c| c.as_os_str() == "node_modules"))
        );
        let dockerfiles = files(&root, &is_dockerfile);
        assert!(
            dockerfiles
                .iter()
                .any(|p| p.ends_with("infra/images/prometheus/Dockerfile"))
        );
    }

    #[test]
    fn ci_files_are_the_gitlab_file_and_the_workflows() {
        let root = crate::context::project_root();
        let found: Vec<PathBuf> = ci_files(&root)
            .into_iter()
            .map(|p| p.strip_prefix(&root).unwrap().to_path_buf())
            .collect();
        assert_eq!(found[0], Path::new(GITLAB_CI), "{found:?}");
        assert!(found.contains(&PathBuf::from(".github/workflows/ci.yml")), "{found:?}");
        assert!(root.join(YAMLLINT_CONFIG).is_file());
        // Every CI file the drift test reads is linted.
        for file in [".github/workflows/ci.yml", ".gitlab-ci.yml"] {
            assert!(found.contains(&PathBuf::from(file)), "{file} is not linted");
        }
    }
}
