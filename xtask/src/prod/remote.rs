//! Production on a remote engine (`--host`, `DOCKER_HOST`, a docker context): nothing the stack reads from the
//! operator's files is bind-mounted from the operator's paths, because those paths exist only here.
//!
//! The production compose files are rendered here (`docker compose config --format json`, every profile) and
//! rewritten into one file for the remote engine (`.drydock/remote-<target>.json`):
//! - every read-only bind mount of an operator file or directory (proxy TLS certificates, Prometheus and
//!   Grafana configuration) becomes a named volume of the project, mounted read-only where the bind was (a
//!   file bind: its target directory);
//! - every compose secret (`file:` on this machine) becomes a file in a per-service volume mounted read-only
//!   at `/run/secrets` (`read_only: true` containers cannot take compose's copied secrets or configs);
//! - the operator's backups directory is not mounted (backups stream back to this machine instead);
//! - build sections go (a remote host never builds: the release images travel to it).
//!
//! `prod-up` fills those volumes ([`upload`]): a tar archive made here in Rust (files 0444, directories 0755,
//! owner root) is streamed over the engine's connection into `tar -x` in a throwaway container of the
//! PostgreSQL image on the remote host. Secret values travel only inside that stream: never in argv, an
//! environment, a log or an image.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::cmd::{Cmd, cmd, shell};
use crate::compose::Compose;
use crate::context::Ctx;
use crate::runner::THIS_MACHINE_ENV;
use crate::target::SshUrl;
use crate::term::Progress;

/// Prefix of the volumes that carry the operator's files (`<project>_operator-<service>-<where>`).
pub const VOLUME_PREFIX: &str = "operator-";

/// A named volume filled from the operator's files: `(path inside the volume, file here)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorVolume {
    pub name: String,
    pub files: Vec<(String, PathBuf)>,
    /// The compose profiles of the service that mounts it (empty: always started).
    pub profiles: Vec<String>,
}

/// The compose invocation for the engine of this run: unchanged for the local engine; for a remote one, the
/// rendered, rewritten file (see the module docs). In a dry run the rendering is shown, not done.
pub fn on_engine(ctx: &Ctx, compose: Compose) -> Result<Compose> {
    Ok(render(ctx, compose)?.0)
}

/// [`on_engine`], then fills the operator volumes of the services that start (no profile, or one of
/// `profiles`) on the remote engine (prod-up).
pub fn prepare(ctx: &Ctx, compose: Compose, profiles: &[&str]) -> Result<Compose> {
    let (compose, mut volumes) = render(ctx, compose)?;
    volumes.retain(|v| v.profiles.is_empty() || v.profiles.iter().any(|p| profiles.contains(&p.as_str())));
    upload(ctx, &compose.project, &volumes)?;
    Ok(compose)
}

fn render(ctx: &Ctx, compose: Compose) -> Result<(Compose, Vec<OperatorVolume>)> {
    if !ctx.engine.is_remote() {
        return Ok((compose, Vec::new()));
    }
    let sh = shell();
    // Rendered here, from the operator's files (no engine involved).
    let query = compose
        .clone()
        .with_profiles(&["*"])
        .cmd(cmd!(sh, "config --format json"));
    let rendered = ctx.run.read(&query)?;
    if ctx.run.dry_run {
        return Ok((compose, Vec::new()));
    }
    let config: Value = serde_json::from_str(&rendered).with_context(|| format!("parsing the output of `{query}`"))?;
    let backups = ctx.path(&ctx.config.backups.dir);
    let (file, volumes) = localise(config, &backups)?;
    let path = ctx
        .root
        .join(".drydock")
        .join(format!("remote-{}.json", ctx.engine.key(&compose.project)));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::files::replace(&path, serde_json::to_string_pretty(&file)?.as_bytes(), 0o644)?;
    let compose = Compose {
        files: vec![path],
        // Everything is interpolated in the rendered file; the profiles are kept per service.
        env_file: None,
        ..compose
    };
    Ok((compose, volumes))
}

/// Rewrites `docker compose config --format json` for a remote engine (see the module docs): the file and
/// the volumes to fill. A writable bind of an operator path cannot be carried over and is an error.
pub fn localise(mut config: Value, backups_dir: &Path) -> Result<(Value, Vec<OperatorVolume>)> {
    let obj = config.as_object_mut().context("compose config is not an object")?;
    let secrets: Map<String, Value> = obj
        .remove("secrets")
        .and_then(|s| s.as_object().cloned())
        .unwrap_or_default();
    let mut volumes: Vec<OperatorVolume> = Vec::new();
    let services = obj
        .get_mut("services")
        .and_then(Value::as_object_mut)
        .context("compose config has no services")?;
    for (service, svc) in services.iter_mut() {
        let s = svc.as_object_mut().context("a service is not an object")?;
        s.remove("build");
        let profiles: Vec<String> = s
            .get("profiles")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| p.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let mut mounts: Vec<Value> = Vec::new();
        // Bind mounts of operator paths: grouped per target directory.
        let mut groups: Vec<(String, OperatorVolume)> = Vec::new();
        for mount in s
            .remove("volumes")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
        {
            if mount.get("type").and_then(Value::as_str) != Some("bind") {
                mounts.push(mount);
                continue;
            }
            let source = PathBuf::from(mount.get("source").and_then(Value::as_str).unwrap_or_default());
            let target = mount
                .get("target")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if source == backups_dir || target == "/backups" || !source.exists() {
                // The backups stream back here; a path that does not exist here has nothing to carry.
                continue;
            }
            if mount.get("read_only").and_then(Value::as_bool) != Some(true) {
                bail!(
                    "service `{service}` bind-mounts {} at {target} writable: a remote engine cannot reach this machine's paths\n  fix: make the mount read-only (`:ro`), or a named volume, in the compose files",
                    source.display()
                );
            }
            let (dir, files) = if source.is_dir() {
                (target.clone(), walk(&source)?)
            } else {
                let (dir, name) = target.rsplit_once('/').unwrap_or(("", &target));
                (dir.to_string(), vec![(name.to_string(), source.clone())])
            };
            if dir.is_empty() || dir == "/" {
                bail!(
                    "service `{service}` bind-mounts {} at {target}: a volume cannot be mounted at /\n  fix: mount it in a directory of its own",
                    source.display()
                );
            }
            match groups.iter_mut().find(|(d, _)| *d == dir) {
                Some((_, v)) => v.files.extend(files),
                None => {
                    let name = format!("{VOLUME_PREFIX}{service}-{}", slug(&dir));
                    let profiles = profiles.clone();
                    groups.push((dir, OperatorVolume { name, files, profiles }));
                }
            }
        }
        // Compose secrets: files of a per-service volume at /run/secrets.
        let wanted = s
            .remove("secrets")
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        if !wanted.is_empty() {
            let mut files = Vec::new();
            for w in wanted {
                let name = w
                    .get("source")
                    .and_then(Value::as_str)
                    .or_else(|| w.as_str())
                    .context("a service secret has no source")?
                    .to_string();
                let target = w.get("target").and_then(Value::as_str).unwrap_or(&name).to_string();
                if target.starts_with('/') && !target.starts_with("/run/secrets/") {
                    bail!(
                        "service `{service}` wants secret `{name}` at {target}: only /run/secrets/<name> can be carried to a remote engine\n  fix: read it from /run/secrets/{name}"
                    );
                }
                let file = secrets
                    .get(&name)
                    .and_then(|d| d.get("file"))
                    .and_then(Value::as_str)
                    .with_context(|| format!("secret `{name}` (of service `{service}`) has no file"))?;
                files.push((
                    target.trim_start_matches("/run/secrets/").to_string(),
                    PathBuf::from(file),
                ));
            }
            groups.push((
                "/run/secrets".into(),
                OperatorVolume {
                    name: format!("{VOLUME_PREFIX}{service}-secrets"),
                    files,
                    profiles: profiles.clone(),
                },
            ));
        }
        for (dir, volume) in groups {
            mounts.push(json!({"type": "volume", "source": volume.name, "target": dir, "read_only": true, "volume": {"nocopy": true}}));
            volumes.push(volume);
        }
        if !mounts.is_empty() {
            s.insert("volumes".into(), Value::Array(mounts));
        }
    }
    let top = obj
        .entry("volumes")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .context("volumes is not an object")?;
    for v in &volumes {
        top.insert(v.name.clone(), json!({}));
    }
    Ok((config, volumes))
}

/// Every file under `dir`, as `(relative path, path)`, sorted.
fn walk(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                let rel = path.strip_prefix(dir).expect("under dir").display().to_string();
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn slug(dir: &str) -> String {
    let s: String = dir
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if s.is_empty() { "root".into() } else { s }
}

/// Fills the operator volumes on the engine: each created with the project's compose labels (so `prod-down
/// --volumes` removes it), then all emptied and filled by one throwaway container reading one tar archive
/// (`<volume>/<file>` entries) from stdin.
pub fn upload(ctx: &Ctx, project: &str, volumes: &[OperatorVolume]) -> Result<()> {
    if volumes.is_empty() {
        return Ok(());
    }
    let image = crate::images::BaseImages::for_source(&ctx.config, ctx.images().source).postgres;
    let dir = tempfile::Builder::new().prefix("drydock-remote-").tempdir()?;
    let archive = dir.path().join("operator-files.tar");
    let files: Vec<(String, PathBuf)> = volumes
        .iter()
        .flat_map(|v| {
            v.files
                .iter()
                .map(move |(rel, p)| (format!("{}/{rel}", v.name), p.clone()))
        })
        .collect();
    for m in write_tar(&archive, &files)? {
        ctx.say(&format!("{} does not exist here: not carried", m.display()));
    }
    let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    let (creates, fill) = upload_cmds(project, &names, &image);
    for create in &creates {
        ctx.run.run(create)?;
    }
    let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    let label = format!(
        "{} file(s) in {} volume(s) → {}",
        files.len(),
        volumes.len(),
        ctx.engine.label
    );
    let mut progress = Progress::new(&label, Some(size), ctx.run.quiet);
    ctx.run.stream_in(&fill, &archive, &mut progress)?;
    Ok(())
}

/// `docker volume create` of each volume with the project's labels, and the one `tar -x` that fills them.
pub fn upload_cmds(project: &str, volumes: &[&str], image: &str) -> (Vec<Cmd>, Cmd) {
    let sh = shell();
    let owner = format!("com.docker.compose.project={project}");
    let creates = volumes
        .iter()
        .map(|volume| {
            let full = format!("{project}_{volume}");
            let name = format!("com.docker.compose.volume={volume}");
            Cmd::from(cmd!(sh, "docker volume create --label {owner} --label {name} {full}")).capture()
        })
        .collect();
    let mounts: Vec<String> = volumes
        .iter()
        .flat_map(|v| ["-v".to_string(), format!("{project}_{v}:/dst/{v}")])
        .collect();
    let script = "for d in /dst/*/; do find \"$d\" -mindepth 1 -delete; done && tar -x -f - -C /dst --no-same-owner";
    let fill = Cmd::from(cmd!(
        sh,
        "docker run --rm -i --network none --user 0 --entrypoint sh {mounts...} {image} -c {script}"
    ));
    (creates, fill)
}

/// A ustar archive of `files` (directories 0755, files 0444, owner 0): the paths it could not read are
/// returned (a TLS directory may be empty, a secret of an unused profile absent).
pub fn write_tar(path: &Path, files: &[(String, PathBuf)]) -> Result<Vec<PathBuf>> {
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?);
    let mut dirs: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    for (rel, source) in files {
        let Ok(data) = std::fs::read(source) else {
            missing.push(source.clone());
            continue;
        };
        let mut parent = String::new();
        for part in rel
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, d)| d.to_vec())
            .unwrap_or_default()
        {
            parent = if parent.is_empty() {
                part.to_string()
            } else {
                format!("{parent}/{part}")
            };
            if !dirs.contains(&parent) {
                out.write_all(&tar_header(&format!("{parent}/"), 0, 0o755, b'5')?)?;
                dirs.push(parent.clone());
            }
        }
        out.write_all(&tar_header(rel, data.len() as u64, 0o444, b'0')?)?;
        out.write_all(&data)?;
        out.write_all(&vec![0u8; (512 - data.len() % 512) % 512])?;
    }
    out.write_all(&[0u8; 1024])?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(missing)
}

fn tar_header(name: &str, size: u64, mode: u32, kind: u8) -> Result<[u8; 512]> {
    if name.len() > 100 {
        bail!(
            "`{name}` is longer than 100 bytes: too long for the archive to the remote host\n  fix: use a shorter path"
        );
    }
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0width$o}", width = len - 1);
        h[at..at + len - 1].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, mode as u64);
    octal(&mut h, 108, 8, 0);
    octal(&mut h, 116, 8, 0);
    octal(&mut h, 124, 12, size);
    octal(&mut h, 136, 12, 0);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| *b as u64).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}

/// The images of `wanted` the remote engine lacks, streamed to it from this machine's engine
/// (`docker save` here → `docker load` there, over the engine's SSH connection, with progress); nothing
/// for the local engine. An image on neither side is left for the caller's check to name.
pub fn ship_images(ctx: &Ctx, wanted: &[String]) -> Result<()> {
    if !ctx.engine.is_remote() || ctx.run.dry_run {
        return Ok(());
    }
    let sh = shell();
    let id = "{{.Id}}";
    let on = |local: bool, image: &str| {
        let probe = Cmd::from(cmd!(sh, "docker image inspect --format {id} {image}"));
        let probe = if local { here(probe) } else { probe };
        ctx.run.probe(&probe).is_some_and(|p| p.success)
    };
    let lacking: Vec<&String> = wanted.iter().filter(|i| !on(false, i)).collect();
    let have: Vec<String> = lacking.iter().filter(|i| on(true, i)).map(|i| i.to_string()).collect();
    if have.is_empty() {
        if lacking.is_empty() {
            ctx.say(&format!("images: all {} present on {}", wanted.len(), ctx.engine.label));
        }
        return Ok(());
    }
    ctx.say(&format!(
        "images: {} of {} missing on {}: streaming {} from this machine (docker save | docker load)",
        lacking.len(),
        wanted.len(),
        ctx.engine.label,
        have.join(", ")
    ));
    let dir = tempfile::Builder::new().prefix("drydock-images-").tempdir()?;
    let archive = dir.path().join("images.tar");
    let (save, load) = ship_cmds(&have);
    let mut sink = std::fs::File::create(&archive).with_context(|| format!("creating {}", archive.display()))?;
    let mut progress = Progress::new("docker save", None, ctx.run.quiet);
    let saved = ctx.run.stream_out(&save, &archive, &mut sink, &mut progress)?;
    drop(sink);
    let mut progress = Progress::new(
        &format!("docker load → {}", ctx.engine.label),
        Some(saved.bytes),
        ctx.run.quiet,
    );
    ctx.run.stream_in(&load, &archive, &mut progress)?;
    Ok(())
}

/// `docker save` on this machine's engine, `docker load` on the engine of the run.
pub fn ship_cmds(images: &[String]) -> (Cmd, Cmd) {
    let sh = shell();
    let save = here(Cmd::from(cmd!(sh, "docker save {images...}")));
    let load = Cmd::from(cmd!(sh, "docker load --quiet"));
    (save, load)
}

/// A docker command for this machine's own engine, whatever `--host`, DOCKER_HOST or the context say.
pub fn here(cmd: Cmd) -> Cmd {
    THIS_MACHINE_ENV.iter().fold(cmd, |c, (k, v)| c.env(*k, *v))
}

/// `setup --host`: makes sure the remote host runs Docker Engine — the only thing it needs besides SSH
/// (Compose runs on this machine). Already running: says so, installs nothing. Missing, on Debian/Ubuntu as
/// root: installs `docker.io` with apt-get over SSH, starts it (systemd, else `dockerd` in the background) and
/// waits until it answers. Otherwise: the exact commands to run there. Says what it did.
pub fn setup_host(ctx: &Ctx) -> Result<()> {
    let Some(url) = ctx.engine.ssh() else {
        bail!(
            "setup of a remote host needs an SSH engine, not {} ({})\n  fix: cargo xtask setup --host ssh://root@host[:port]",
            ctx.engine.label,
            ctx.engine.how
        );
    };
    let version = |ctx: &Ctx| {
        ctx.run
            .probe(&ssh_cmd(
                &url,
                &["docker", "version", "--format", "{{.Server.Version}}"],
            ))
            .filter(|p| p.success)
            .map(|p| p.stdout.trim().to_string())
    };
    if let Some(v) = version(ctx) {
        ctx.say(&format!(
            "{}: Docker Engine {v} already runs there: nothing installed",
            ctx.engine.label
        ));
        return Ok(());
    }
    let facts = ctx
        .run
        .probe(&ssh_cmd(&url, &["sh", "-c", "id -u; cat /etc/os-release"]));
    if let Some(f) = &facts {
        if !f.success {
            bail!(
                "cannot run a command on {} over SSH: {}\n  fix: make `ssh{} {}` work without a prompt (key, known host)",
                ctx.engine.label,
                f.stderr.trim(),
                url.port.map(|p| format!(" -p {p}")).unwrap_or_default(),
                url.host
            );
        }
        let root = f.stdout.lines().next().map(str::trim) == Some("0");
        let debian = f.stdout.lines().any(|l| {
            (l.starts_with("ID=") || l.starts_with("ID_LIKE=")) && (l.contains("debian") || l.contains("ubuntu"))
        });
        if !(root && debian) {
            bail!(
                "{} has no Docker Engine, and drydock installs it only on Debian/Ubuntu as root (this host: {}, {})\n  fix: install Docker Engine there (https://docs.docker.com/engine/install/), or use --host ssh://root@…",
                ctx.engine.label,
                if root { "root" } else { "not root" },
                if debian { "Debian/Ubuntu" } else { "another system" }
            );
        }
    }
    ctx.say(&format!(
        "{}: no Docker Engine answers: installing docker.io with apt-get",
        ctx.engine.label
    ));
    for step in install_plan() {
        ctx.run.run(&ssh_cmd(&url, &step))?;
    }
    if ctx.run.dry_run {
        return Ok(());
    }
    for _ in 0..60 {
        if let Some(v) = version(ctx) {
            ctx.say(&format!(
                "{}: installed and started Docker Engine {v} (Debian package docker.io)",
                ctx.engine.label
            ));
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    bail!(
        "docker.io was installed on {} but its engine does not answer after 60 s\n  fix: look at `journalctl -u docker` or /var/log/dockerd.log there",
        ctx.engine.label
    )
}

/// The commands `setup --host` runs on a Debian/Ubuntu host as root, in order.
pub fn install_plan() -> Vec<Vec<&'static str>> {
    vec![
        vec!["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-q"],
        vec![
            "env",
            "DEBIAN_FRONTEND=noninteractive",
            "apt-get",
            "install",
            "-y",
            "-q",
            "docker.io",
        ],
        // systemd where there is one; a background dockerd where there is none (containers, minimal hosts).
        vec![
            "sh",
            "-c",
            "if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then systemctl enable --now docker; else nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null & fi",
        ],
    ]
}

/// `ssh` to the host of an `ssh://` engine, never prompting, running `words` there.
pub fn ssh_cmd(url: &SshUrl, words: &[&str]) -> Cmd {
    let sh = shell();
    let port = url.port.map(|p| p.to_string());
    let port = port.iter().flat_map(|p| ["-p", p.as_str()]);
    let user = url.user.iter().flat_map(|u| ["-l", u.as_str()]);
    let host = url.host.trim_start_matches('[').trim_end_matches(']');
    // The remote side joins the words with spaces for its shell: quote each one.
    let quoted: Vec<String> = words.iter().map(|w| crate::cmd::shell_quote(w)).collect();
    Cmd::from(cmd!(
        sh,
        "ssh -o BatchMode=yes {port...} {user...} -- {host} {quoted...}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_and_secrets_become_operator_volumes() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::write(tls.join("tls.crt"), "CERT").unwrap();
        let prom = dir.path().join("prometheus.yml");
        std::fs::write(&prom, "scrape").unwrap();
        let backups = dir.path().join("backups");
        let config = json!({
            "name": "p",
            "services": {
                "proxy": {"image": "proxy", "build": {"context": "/x"}, "volumes": [
                    {"type": "bind", "source": tls, "target": "/etc/nginx/tls", "read_only": true}]},
                "prometheus": {"image": "prom", "volumes": [
                    {"type": "bind", "source": prom, "target": "/etc/prometheus/prometheus.yml", "read_only": true},
                    {"type": "volume", "source": "prometheus-data", "target": "/prometheus"}]},
                "node-exporter": {"image": "ne", "volumes": [
                    {"type": "bind", "source": backups, "target": "/backups", "read_only": true}]},
                "api": {"image": "api", "secrets": [{"source": "postgres_password"}]}
            },
            "secrets": {"postgres_password": {"file": "/s/postgres_password.txt"}},
            "volumes": {"prometheus-data": {}}
        });
        let (out, volumes) = localise(config, &backups).unwrap();
        let text = out.to_string();
        assert!(
            !text.contains("\"bind\"") && !text.contains("\"build\"") && !text.contains("\"secrets\""),
            "{text}"
        );
        let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "operator-api-secrets",
                "operator-prometheus-etc-prometheus",
                "operator-proxy-etc-nginx-tls"
            ]
        );
        assert_eq!(
            volumes[0].files,
            [(
                "postgres_password".to_string(),
                PathBuf::from("/s/postgres_password.txt")
            )]
        );
        assert_eq!(volumes[1].files, [("prometheus.yml".to_string(), prom.clone())]);
        assert_eq!(volumes[2].files, [("tls.crt".to_string(), tls.join("tls.crt"))]);
        assert_eq!(
            out["services"]["api"]["volumes"][0],
            json!({"type": "volume", "source": "operator-api-secrets", "target": "/run/secrets", "read_only": true, "volume": {"nocopy": true}})
        );
        assert!(
            out["services"]["node-exporter"].get("volumes").is_none(),
            "the backups dir stays here"
        );
        assert_eq!(out["services"]["prometheus"]["volumes"][0]["target"], "/prometheus");
        assert!(out["volumes"]["operator-proxy-etc-nginx-tls"].is_object());

        let writable = json!({"services": {"x": {"volumes": [{"type": "bind", "source": "/etc", "target": "/etc"}]}}});
        let err = format!("{:#}", localise(writable, &backups).unwrap_err());
        assert!(
            err.contains("bind-mounts /etc at /etc writable") && err.contains("fix:"),
            "{err}"
        );
    }

    #[test]
    fn the_archive_is_a_tar_that_tar_reads() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "alpha\n").unwrap();
        let files = vec![
            ("x.txt".to_string(), a.clone()),
            ("sub/dir/y.txt".to_string(), a.clone()),
            ("gone".to_string(), dir.path().join("missing")),
        ];
        let tar = dir.path().join("t.tar");
        let missing = write_tar(&tar, &files).unwrap();
        assert_eq!(missing, [dir.path().join("missing")]);
        let sh = shell();
        let listing = cmd!(sh, "tar -tvf {tar}").read().unwrap();
        assert!(
            listing.contains("-r--r--r-- 0/0               6 ") && listing.contains("x.txt"),
            "{listing}"
        );
        assert!(
            listing.contains("drwxr-xr-x") && listing.contains("sub/dir/y.txt"),
            "{listing}"
        );
    }

    #[test]
    fn upload_commands() {
        let (creates, fill) = upload_cmds(
            "dd-prod",
            &["operator-api-secrets", "operator-proxy-etc-nginx-tls"],
            "drydock/postgres:17",
        );
        assert_eq!(
            creates[0].argv().join(" "),
            "docker volume create --label com.docker.compose.project=dd-prod --label com.docker.compose.volume=operator-api-secrets dd-prod_operator-api-secrets"
        );
        assert_eq!(creates.len(), 2);
        assert!(fill.argv().join(" ").starts_with(
            "docker run --rm -i --network none --user 0 --entrypoint sh -v dd-prod_operator-api-secrets:/dst/operator-api-secrets -v dd-prod_operator-proxy-etc-nginx-tls:/dst/operator-proxy-etc-nginx-tls drydock/postgres:17 -c "
        ));
    }

    #[test]
    fn images_are_saved_here_and_loaded_there() {
        let (save, load) = ship_cmds(&["drydock/api:sha-1".to_string()]);
        assert_eq!(save.argv(), ["docker", "save", "drydock/api:sha-1"]);
        assert!(
            save.env.contains(&("DOCKER_HOST".into(), String::new())),
            "save reads this machine's engine"
        );
        assert_eq!(load.argv(), ["docker", "load", "--quiet"]);
        assert!(load.env.is_empty(), "load goes to the engine of the run");
    }

    #[test]
    fn setup_runs_apt_over_ssh_without_prompts() {
        let url = SshUrl::parse("ssh://root@203.0.113.7:2222").unwrap();
        let cmd = ssh_cmd(&url, &install_plan()[1]);
        assert_eq!(
            cmd.argv().join(" "),
            "ssh -o BatchMode=yes -p 2222 -l root -- 203.0.113.7 env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io"
        );
        let start = ssh_cmd(&url, &install_plan()[2]);
        assert!(
            start.argv()[11].starts_with("'if command -v systemctl"),
            "{:?}",
            start.argv()
        );
    }
}
