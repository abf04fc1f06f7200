//! Production on a remote host over SSH: one Docker Engine 26 node in a container of its own (the swarm test's
//! image, infra/images/swarm-node/: Debian trixie + docker.io + openssh-server), reached only as
//! `--host <name>` from a stack description whose `[hosts.<name>]` says `ssh://root@127.0.0.1:<port>`. The node
//! has no checkout and no Rust: images stream to it over SSH, the operator's files travel in volumes, backups
//! stream back into the operator's backups directory and restores stream the other way.
//!
//! A second test takes the deploy lock on the node as two operators: one names it `--host node`, the other by its
//! `ssh://` address (other records in the checkout, as another checkout's) and another machine name; the second
//! is refused naming the first, the lock being only on the node: a container for the compose target, a Swarm
//! config once the node is a one-node swarm (no release images needed, about 17 s).
//!
//! Host-side traffic goes only to 127.0.0.1 (the node publishes its SSH and proxy ports on loopback); the key
//! is made per run; the node, its engine volume and every file the test writes are removed at the end.
//!
//!   cargo test -p xtask --test remote_real -- --ignored --nocapture

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{
    V1, V2, docker, docker_ok, prepare_release_images, report, root, start_load, suite_lock, text, wait_for_200,
    xtask_env,
};

const PROJECT: &str = "drydock-rh-remote";
const NODE_IMAGE: &str = "drydock/swarm-node:trixie";
const LABEL: &str = "drydock.test=remote-host";
/// The proxy's port inside the node and on the host's loopback (the same number, so what the xtask reads
/// from `docker compose port` — 0.0.0.0:19381 on the node — is reachable here as 127.0.0.1:19381).
const HTTP_PORT: u16 = 19381;
const HTTPS_PORT: u16 = 19744;

fn write_mode(path: &Path, content: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn ok_status(what: &str, out: &Output) -> String {
    assert!(out.status.success(), "{what} failed:\n{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The node and everything around it; removed on drop, also when the test fails.
struct Remote {
    dir: PathBuf,
    name: String,
    volume: String,
    ssh_port: u16,
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.xtask(&["--yes", "prod-down", "--volumes"]);
        let _ = docker(&["rm", "-f", "-v", &self.name]);
        let _ = docker(&["volume", "rm", "-f", &self.volume]);
        let _ = std::fs::remove_dir_all(&self.dir);
        let key = format!("{PROJECT}@node");
        for f in [
            format!("deploy-{key}.json"),
            format!("lock-{key}"),
            format!("audit-{key}.jsonl"),
            format!("remote-{key}.json"),
        ] {
            let _ = std::fs::remove_file(root().join(".drydock").join(f));
        }
    }
}

impl Remote {
    fn start() -> Remote {
        use std::os::unix::fs::PermissionsExt;
        // Leftovers of a run that was killed (its pid is gone).
        let old = docker_ok(&["ps", "-aq", "--filter", &format!("label={LABEL}")]);
        for id in old.split_whitespace() {
            let _ = docker(&["rm", "-f", "-v", id]);
        }
        let pid = std::process::id();
        let name = format!("{PROJECT}-{pid}");
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut r = Remote {
            dir: dir.clone(),
            name: name.clone(),
            volume: format!("{name}-docker"),
            ssh_port: 0,
        };
        let key = dir.join("id_ed25519");
        ok_status(
            "ssh-keygen",
            &Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", &name, "-f"])
                .arg(&key)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        );
        let public = std::fs::read_to_string(dir.join("id_ed25519.pub")).unwrap();
        docker_ok(&["volume", "create", "--label", LABEL, &r.volume]);
        let engine = format!("{}:/var/lib/docker", r.volume);
        let authorized = format!("SSH_AUTHORIZED_KEYS={}", public.trim());
        let (http, https) = (
            format!("127.0.0.1:{HTTP_PORT}:{HTTP_PORT}"),
            format!("127.0.0.1:{HTTPS_PORT}:{HTTPS_PORT}"),
        );
        // Docker-in-Docker without --privileged (refused here): see shared/ENVIRONMENT.md.
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--hostname",
            "node",
            "--label",
            LABEL,
            "--cap-add",
            "ALL",
            "--cap-drop",
            "SYS_RESOURCE",
            "--security-opt",
            "seccomp=unconfined",
            "--security-opt",
            "apparmor=unconfined",
            "--security-opt",
            "systempaths=unconfined",
            "-v",
            "/sys/fs/cgroup:/sys/fs/cgroup:rw",
            "-v",
            &engine,
            "-e",
            &authorized,
            "-p",
            "127.0.0.1::22",
            "-p",
            &http,
            "-p",
            &https,
            NODE_IMAGE,
        ]);
        common::wait_for_node_engine(&name);
        let port = docker_ok(&["port", &name, "22"]);
        let (host, port) = port.lines().next().unwrap().trim().rsplit_once(':').unwrap();
        assert_eq!(host, "127.0.0.1", "SSH published beyond loopback");
        r.ssh_port = port.parse().unwrap();
        // Host key read through the engine, not over the network it authenticates.
        let host_key = docker_ok(&["exec", &name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]);
        let mut words = host_key.split_whitespace();
        let (kind, value) = (words.next().unwrap(), words.next().unwrap());
        write_mode(
            &dir.join("known_hosts"),
            &format!("[127.0.0.1]:{} {kind} {value}\n", r.ssh_port),
            0o600,
        );
        // As an operator's ~/.ssh/config would (README, "SSH multiplexing"): one connection per node that every
        // docker call reuses, instead of a key exchange per call (about 75 ms of the client's CPU with OpenSSH
        // 9.2's default post-quantum exchange, and the node's sshd pays too; the docker CLI opens a new `ssh` for every command).
        write_mode(
            &dir.join("ssh_config"),
            &format!(
                "Host 127.0.0.1\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 10\n  LogLevel ERROR\n  ControlMaster auto\n  ControlPath {}\n  ControlPersist 60\n",
                key.display(),
                dir.join("known_hosts").display(),
                dir.join("cm-%C").display()
            ),
            0o600,
        );
        // The docker CLI runs `ssh` from PATH with no options of its own: this wrapper adds the run's config.
        let ssh = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join("ssh"))
            .find(|p| p.is_file())
            .expect("ssh is not on PATH (apt-get install openssh-client)");
        write_mode(
            &dir.join("bin/ssh"),
            &format!(
                "#!/bin/sh\nexec '{}' -F '{}' \"$@\"\n",
                ssh.display(),
                dir.join("ssh_config").display()
            ),
            0o700,
        );
        // The operator's stack description: this repository's, with the node as [hosts.node] and a backups
        // directory of the test's own.
        let shipped = std::fs::read_to_string(root().join("infra/stack.toml")).unwrap();
        let backups = dir.join("backups");
        let config = shipped.replace("dir = \"backups\"", &format!("dir = \"{}\"", backups.display()));
        assert_ne!(config, shipped, "infra/stack.toml no longer has dir = \"backups\"");
        let config = format!(
            "{config}\n[hosts.node]\nssh = \"ssh://root@127.0.0.1:{}\"\n",
            r.ssh_port
        );
        write_mode(&dir.join("stack.toml"), &config, 0o600);
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        std::fs::set_permissions(dir.join("secrets"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        r
    }

    fn path_env(&self) -> String {
        format!("{}:{}", self.dir.join("bin").display(), std::env::var("PATH").unwrap())
    }

    /// `docker <args>` on the node's engine, over SSH (what the test checks with, not what it tests).
    fn remote(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("ssh://root@127.0.0.1:{}", self.ssh_port))
            .env("PATH", self.path_env())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        ok_status(&format!("docker {} (on the node)", args.join(" ")), &out)
    }

    fn xtask(&self, args: &[&str]) -> Output {
        eprintln!("+ cargo xtask --offline --host node {}", args.join(" "));
        let config = self.dir.join("stack.toml").display().to_string();
        let mut all = vec!["--offline", "--config", &config, "--host", "node"];
        all.extend(args);
        let (secrets, tls, path) = (
            self.dir.join("secrets").display().to_string(),
            self.dir.join("tls").display().to_string(),
            self.path_env(),
        );
        let (http, https) = (HTTP_PORT.to_string(), HTTPS_PORT.to_string());
        let out = xtask_env(
            &all,
            &[
                ("PATH", &path),
                ("DRYDOCK_PROJECT", PROJECT),
                ("DRYDOCK_SECRETS_DIR", &secrets),
                ("DRYDOCK_TLS_DIR", &tls),
                ("DRYDOCK_PROD_HTTP_PORT", &http),
                ("DRYDOCK_PROD_HTTPS_PORT", &https),
                // Inside the node "every interface" is its container address: the host reaches the proxy only
                // through the node's 127.0.0.1 port.
                ("DRYDOCK_PROD_BIND", "0.0.0.0"),
            ],
        );
        eprintln!("{}", text(&out));
        out
    }

    /// The xtask as an operator that names the node `host` (`node`, or its `ssh://` address: another record key,
    /// as another checkout would have), with `env` on top; not started.
    fn command_as(&self, host: &str, env: &[(&str, &str)], args: &[&str]) -> Command {
        let config = self.dir.join("stack.toml");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.arg("--offline")
            .arg("--config")
            .arg(&config)
            .args(["--host", host])
            .args(args)
            .env("CARGO", "cargo")
            .env("NO_COLOR", "1")
            .env("PATH", self.path_env())
            .env("DRYDOCK_PROJECT", PROJECT)
            .env("DRYDOCK_SECRETS_DIR", self.dir.join("secrets"))
            .env("DRYDOCK_HOOKS_DIR", self.dir.join("hooks"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    fn xtask_ok(&self, args: &[&str]) -> String {
        let out = self.xtask(args);
        assert!(
            out.status.success(),
            "cargo xtask {} failed:\n{}",
            args.join(" "),
            text(&out)
        );
        text(&out)
    }
}

#[test]
#[ignore = "needs Docker; starts a Docker-in-Docker node and runs the production stack on it over SSH (minutes)"]
fn production_on_a_remote_host_over_ssh() {
    let _lock = suite_lock("remote_real");
    prepare_release_images();
    common::ensure_offline_image("swarm-node", NODE_IMAGE);
    let node = Remote::start();
    let host = format!("ssh://root@127.0.0.1:{}", node.ssh_port);

    // 0. setup --host: the node runs Docker already, so nothing is installed (and it says so)
    let t = node.xtask_ok(&["setup"]);
    assert!(
        t.contains("Docker Engine 26.") && t.contains("already runs there: nothing installed"),
        "{t}"
    );

    // 1. prod-up with no image on the node: the images stream over SSH, only those it lacks.
    let started = Instant::now();
    let t = node.xtask_ok(&["prod-up", "--tag", V1, "--generate-secrets"]);
    let streamed = started.elapsed().as_secs_f64();
    assert!(t.contains(&format!("engine: {host} ([hosts.node] in")), "{t}");
    assert!(t.contains("missing on ssh://") && t.contains("docker save"), "{t}");
    assert!(
        t.contains(&format!("$ DOCKER_HOST={host} docker compose -p {PROJECT}")),
        "{t}"
    );
    wait_for_200(HTTP_PORT, "/api/v1/items", Duration::from_secs(60));
    println!("REMOTE prod-up with the images streamed over SSH: {streamed:.1} s (wall time of the command)");
    let nodes_images = node.remote(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        nodes_images.contains(&format!("drydock/api:{V1}")) && !nodes_images.contains(&format!("drydock/api:{V2}")),
        "only what prod-up needs:\n{nodes_images}"
    );

    // Nothing of the operator's is bind-mounted; no secret in a container's environment.
    let ids = node.remote(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={PROJECT}"),
    ]);
    let secrets: Vec<String> = std::fs::read_dir(node.dir.join("secrets"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap().trim().to_string())
        .collect();
    for id in ids.split_whitespace() {
        let mounts = node.remote(&[
            "inspect",
            "--format",
            "{{range .Mounts}}{{.Type}}:{{.Source}} {{end}}",
            id,
        ]);
        assert!(!mounts.contains("bind:"), "{id} has a bind mount: {mounts}");
        let env = node.remote(&["inspect", "--format", "{{range .Config.Env}}{{.}}\n{{end}}", id]);
        for s in &secrets {
            assert!(!env.contains(s.as_str()), "a secret is in the environment of {id}");
        }
    }
    assert!(secrets.iter().all(|s| !t.contains(s.as_str())), "a secret was printed");

    // 2. again, images present: the wall time of prod-up on a remote host
    let started = Instant::now();
    let t = node.xtask_ok(&["prod-up", "--tag", V1]);
    let present = started.elapsed().as_secs_f64();
    assert!(t.contains("images: all 5 present on"), "{t}");
    println!("REMOTE prod-up with the images present: {present:.1} s (wall time of the command)");

    // 2b. monitoring on the remote host: its offline images are made here (if missing) and stream over SSH;
    //     Prometheus runs there with the operator's configuration and alert rules (carried in volumes, not
    //     bind-mounted) and scrapes every API replica
    let started = Instant::now();
    let t = node.xtask_ok(&["prod-up", "--tag", V1, "--monitoring"]);
    let monitoring_up = started.elapsed().as_secs_f64();
    assert!(
        t.contains("drydock/prometheus:2.53"),
        "the monitoring images stream too:\n{t}"
    );
    let prometheus = format!("{PROJECT}-prometheus-1");
    let query = |q: &str| {
        node.remote(&[
            "exec",
            &prometheus,
            "promtool",
            "query",
            "instant",
            "http://127.0.0.1:9090",
            q,
        ])
    };
    println!("REMOTE prod-up --monitoring with its 4 images streamed over SSH: {monitoring_up:.1} s");
    let started = Instant::now();
    loop {
        // One line per healthy API replica's target (`up{...} => 1 @[...]`): both replicas, scraped.
        let up = query("up{job=\"api\"} == 1");
        let rules = query("sum(prometheus_rule_group_rules)");
        if up.lines().filter(|l| l.contains("=> 1")).count() == 2
            && !rules.contains("=> 0 ")
            && !rules.trim().is_empty()
        {
            println!(
                "REMOTE monitoring: Prometheus scrapes 2 API replicas; alert rules loaded ({})",
                rules.trim()
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "Prometheus on the node does not scrape both API replicas or has no rules:\n{up}\n{rules}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }

    // 3. what an operator looks at
    let ps = node.xtask_ok(&["prod-ps", "--json"]);
    assert!(ps.contains("\"api\"") && ps.contains("\"proxy\""), "{ps}");
    let health = node.xtask(&["health", "--env", "prod"]);
    assert!(
        health.status.success(),
        "health on the remote stack:\n{}",
        text(&health)
    );
    let logs = node.xtask_ok(&["prod-logs", "--tail", "5", "proxy"]);
    assert!(logs.contains("proxy"), "{logs}");
    let t = node.xtask_ok(&["prod-exec", "api", "--", "/app/backend", "--help"]);
    assert!(t.contains("running in the running `api` container"), "{t}");
    let t = node.xtask_ok(&["db-psql", "--env", "prod", "--", "-tAc", "select 40 + 2"]);
    assert!(t.contains("42"), "{t}");

    // 4. a backup streams back into the operator's backups directory (hashed, manifest last), a restore the
    //    other way, and `backups verify` checks it
    node.xtask_ok(&[
        "db-psql",
        "--env",
        "prod",
        "--",
        "-c",
        "create table remote_probe(v text); insert into remote_probe values ('from-the-node')",
    ]);
    let t = node.xtask_ok(&["backup-postgres", "--env", "prod"]);
    let dumps: Vec<PathBuf> = std::fs::read_dir(node.dir.join("backups/postgres"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dump"))
        .collect();
    assert_eq!(dumps.len(), 1, "{t}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dumps[0].with_extension("json")).unwrap()).unwrap();
    assert_eq!(
        manifest["size"].as_u64(),
        Some(std::fs::metadata(&dumps[0]).unwrap().len()),
        "{manifest}"
    );
    node.xtask_ok(&["db-psql", "--env", "prod", "--", "-c", "drop table remote_probe"]);
    node.xtask_ok(&["--yes", "restore-postgres", "--env", "prod", "--latest"]);
    let t = node.xtask_ok(&["db-psql", "--env", "prod", "--", "-tAc", "select v from remote_probe"]);
    assert!(t.contains("from-the-node"), "the restore did not reach the node:\n{t}");
    node.xtask_ok(&["backups", "verify", "--latest"]);

    // 5. a rolling deploy to the remote host under load (V2 streams first)
    let load = start_load(HTTP_PORT, 4, Duration::from_millis(40), Duration::from_secs(300));
    std::thread::sleep(Duration::from_secs(2));
    node.xtask_ok(&["prod-deploy", "--tag", V2]);
    std::thread::sleep(Duration::from_secs(2));
    let s = load.finish();
    report("REMOTE prod-deploy v1 -> v2 over SSH", &s);
    assert!(s.total > 50, "too little load: {}", s.total);
    assert_eq!(
        s.failed, 0,
        "requests failed during the remote deploy: {:?}",
        s.failures
    );

    // 6. the audit log and the lock name the host
    let log = std::fs::read_to_string(root().join(".drydock").join(format!("audit-{PROJECT}@node.jsonl"))).unwrap();
    for line in log.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(e["engine"], host.as_str(), "{line}");
    }
    for cmd in [
        "prod-up",
        "prod-exec",
        "backup-postgres",
        "restore-postgres",
        "prod-deploy",
    ] {
        assert!(
            log.contains(&format!("\"command\":\"{cmd}\"")),
            "{cmd} missing in\n{log}"
        );
    }
    let t = node.xtask_ok(&["prod-history"]);
    assert!(t.contains(V2), "{t}");

    // 7. down: the node keeps nothing of the project
    node.xtask_ok(&["--yes", "prod-down", "--volumes"]);
    let left = node.remote(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={PROJECT}"),
    ]);
    assert!(left.trim().is_empty(), "volumes left on the node: {left}");
}

#[test]
#[ignore = "needs Docker; starts a Docker-in-Docker node and takes deploy locks on it as two operators (about a minute)"]
fn the_deploy_lock_lives_on_the_remote_host() {
    let _lock = suite_lock("remote_real");
    common::ensure_offline_image("swarm-node", NODE_IMAGE);
    let node = Remote::start();
    let address = format!("ssh://root@127.0.0.1:{}", node.ssh_port);
    let _records = Records(vec![
        format!("{PROJECT}@root_127.0.0.1_{}", node.ssh_port),
        format!("{PROJECT}-swarm@root_127.0.0.1_{}", node.ssh_port),
        format!("{PROJECT}-swarm@node"),
    ]);
    // A pre-deploy hook that holds the lock until `go` exists, then fails: nothing is deployed, no stack needed.
    std::fs::create_dir_all(node.dir.join("hooks")).unwrap();
    let d = node.dir.display();
    write_mode(
        &node.dir.join("hooks/pre-deploy"),
        &format!(
            "#!/bin/sh\nif [ -n \"$LOCKTEST_HOLD\" ]; then\n  touch '{d}/held'\n  i=0\n  while [ ! -e '{d}/go' ] && [ $i -lt 1500 ]; do sleep 0.2; i=$((i+1)); done\nfi\nexit 3\n"
        ),
        0o755,
    );
    let on_node = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", &address)
            .env("PATH", node.path_env())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    // The compose target (a container on the node), then the Swarm stack (a Swarm config of the node's swarm).
    for swarm in [false, true] {
        let (target, noun, labels_of, flag) = if swarm {
            // The node's own engine becomes a one-node swarm (never this machine's engine).
            ok_status(
                "docker swarm init (on the node)",
                &on_node(&["swarm", "init", "--advertise-addr", "127.0.0.1"]),
            );
            (
                format!("{PROJECT}-swarm"),
                "config",
                "{{json .Spec.Labels}}",
                vec!["--swarm"],
            )
        } else {
            (PROJECT.to_string(), "container", "{{json .Config.Labels}}", vec![])
        };
        let name = format!("drydock-deploy-lock-{target}");
        let _ = std::fs::remove_file(node.dir.join("held"));
        let _ = std::fs::remove_file(node.dir.join("go"));

        // Operator A, one checkout (`--host node`), holds the lock on the node (for the container: its image
        // travels over SSH the first time; the node has no registry, no checkout, nothing of drydock).
        let started = Instant::now();
        eprintln!("+ [laptop-a] cargo xtask --host node prod-deploy {flag:?} (holds the lock, in the background)");
        let mut args = vec!["prod-deploy", "--tag", "sha-remote-lock", "--message", "release 7"];
        args.extend(&flag);
        let a = node
            .command_as(
                "node",
                &[("DRYDOCK_OPERATOR_MACHINE", "laptop-a"), ("LOCKTEST_HOLD", "1")],
                &args,
            )
            .spawn()
            .unwrap();
        while !node.dir.join("held").exists() {
            assert!(started.elapsed() < Duration::from_secs(120), "A never reached its hook");
            std::thread::sleep(Duration::from_millis(100));
        }
        let took = started.elapsed().as_secs_f64();
        let labels = ok_status(
            &format!("docker {noun} inspect (the lock on the node)"),
            &on_node(&[noun, "inspect", "--format", labels_of, &name]),
        );
        assert!(
            labels.contains("\"drydock.deploy-lock.machine\":\"laptop-a\"")
                && labels.contains("\"drydock.deploy-lock.message\":\"release 7\""),
            "{labels}"
        );

        // Operator B, another checkout and machine (`--host ssh://…`: other records), same host: refused at once.
        let mut args = vec!["prod-deploy", "--tag", "sha-other"];
        args.extend(&flag);
        let started = Instant::now();
        let out = node
            .command_as(&address, &[("DRYDOCK_OPERATOR_MACHINE", "laptop-b")], &args)
            .output()
            .unwrap();
        let refused_in = started.elapsed().as_secs_f64();
        let t = text(&out);
        eprintln!("{t}");
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(
            t.contains(&format!("`{target}` on {address} is locked by"))
                && t.contains(&format!("on laptop-a, pid {}", a.id()))
                && t.contains("\"release 7\", for ")
                && !t.contains("pre-deploy"),
            "{t}"
        );

        // A ends (its hook fails): the lock object is removed from the node.
        std::fs::write(node.dir.join("go"), "").unwrap();
        let out = a.wait_with_output().unwrap();
        let t = text(&out);
        eprintln!("{t}");
        assert!(t.contains("the pre-deploy hook failed"), "{t}");
        let gone = on_node(&[noun, "inspect", &name]);
        assert!(
            !gone.status.success(),
            "the lock is still on the node after the release"
        );

        // Now B takes it (and its deploy stops at the hook, releasing it again).
        let out = node
            .command_as(&address, &[("DRYDOCK_OPERATOR_MACHINE", "laptop-b")], &args)
            .output()
            .unwrap();
        let t = text(&out);
        assert!(
            t.contains("the pre-deploy hook failed") && !t.contains("locked by"),
            "{t}"
        );
        assert!(!on_node(&[noun, "inspect", &name]).status.success());
        println!(
            "REMOTE deploy lock ({noun}): taken over SSH in {took:.1} s (wall time until the holder's hook ran), a second operator refused in {refused_in:.1} s"
        );
    }
}

/// Removes the records of the other views of the node (`<target>@root_127.0.0.1_<port>`, the Swarm stack's).
struct Records(Vec<String>);

impl Drop for Records {
    fn drop(&mut self) {
        for key in &self.0 {
            for f in [format!("lock-{key}"), format!("audit-{key}.jsonl")] {
                let _ = std::fs::remove_file(root().join(".drydock").join(f));
            }
        }
    }
}
