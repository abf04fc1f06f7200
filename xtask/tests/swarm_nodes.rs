//! `prod-deploy --swarm` on a Docker Swarm of engines of its own, never the host's: three Docker Engine 26
//! nodes in containers (`drydock/swarm-node:trixie`, infra/images/swarm-node/; 1 manager + 2 workers) on a
//! private container network, reached over SSH with a key made for the run. The xtask talks to the manager
//! as a remote engine (`DOCKER_HOST=ssh://root@127.0.0.1:<port>`), like an operator's laptop talks to a
//! server, so nothing of this checkout exists on the nodes: the stack's files travel as Swarm configs and
//! secrets, the images through a registry (`prod-deploy --swarm --registry`): the xtask pushes them from this
//! machine's engine, and each node pulls what its tasks need. The registry (`drydock/registry:2.8`) runs on
//! the private network and is published on 127.0.0.1:<P> for this machine; inside each node a `socat` on its
//! own 127.0.0.1:<P> forwards to it, so the registry has the same name everywhere (and, on loopback, counts
//! as an insecure registry that needs no TLS on every engine).
//!
//!   cargo test -p xtask --test swarm_nodes -- --ignored --nocapture
//!
//! Host-side traffic goes to 127.0.0.1 only (each node publishes its SSH port and the proxy's ports there);
//! node-to-node traffic (swarm join, overlay networks) stays on the private network. Everything the run
//! creates (nodes, their volumes, the network, the key and the temporary files) carries the labels
//! `drydock.test=swarm-nodes` + `drydock.test.owner=<pid>` and is removed at the end, also when the test
//! panics (the `Cluster` guard); leftovers of a killed run (owner gone) are removed at the next start.
//! It takes `target/drydock/prodtest.lock` like prod_real.rs (they share the `prodtest-*` image tags).
//!
//! Load is generated here (std only, tests/common): threads sending GETs to the proxy on 127.0.0.1, bounded
//! in rate, count and time. A request fails when it errors or answers anything but 200.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    CRASHING, Stats, V1, V2, docker, docker_ok, prepare_release_images, report, root, start_load, suite_lock, text,
    wait_for_200, xtask_env,
};

const PROJECT: &str = "drydock-swarmtest";
/// `prod-deploy --swarm` names the stack `<project>-swarm`.
const STACK: &str = "drydock-swarmtest-swarm";
const NODE_IMAGE: &str = "drydock/swarm-node:trixie";
const REGISTRY_IMAGE: &str = "drydock/registry:2.8";
const LABEL: &str = "drydock.test=swarm-nodes";
const OWNER_LABEL: &str = "drydock.test.owner";
/// The proxy's host-mode ports inside each node (each node's own network namespace).
const HTTP_PORT: u16 = 19080;
const HTTPS_PORT: u16 = 19443;
/// The node labelled for the databases (a worker, so that the pin is visible).
const DB_NODE: usize = 1;
const DB_LABEL: &str = "drydock.db=true";

struct Node {
    /// Container name = hostname = swarm node name.
    name: String,
    /// Its address on the private network.
    ip: String,
    ssh_port: u16,
    http_port: u16,
    https_port: u16,
}

/// The nodes and everything around them; removed when dropped (see [`Cluster::teardown`]).
struct Cluster {
    dir: PathBuf,
    /// `127.0.0.1:<P>`: the registry, by the same name on this machine and in every node.
    registry: String,
    network: Option<String>,
    volumes: Vec<String>,
    containers: Vec<String>,
    nodes: Vec<Node>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let problems = self.teardown();
        if !problems.is_empty() {
            eprintln!("swarm test clean-up problems:\n  {}", problems.join("\n  "));
        }
    }
}

/// The 127.0.0.1 port a node container publishes for its port `p` (loopback only, checked).
fn published_port(name: &str, p: u16) -> u16 {
    let out = docker_ok(&["port", name, &p.to_string()]);
    let addr = out.lines().next().unwrap_or("").trim().to_string();
    let (host, port) = addr
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port {p} on {name}: {out}"));
    assert_eq!(host, "127.0.0.1", "{name} publishes {p} beyond loopback: {out}");
    port.parse().unwrap()
}

/// The known_hosts line of a node's SSH port, from its host key read through the engine (not over the
/// network it is meant to authenticate).
fn known_host(node: &Node) -> String {
    let host_key = docker_ok(&["exec", &node.name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"]);
    let mut words = host_key.split_whitespace();
    let (kind, value) = (words.next().unwrap(), words.next().unwrap());
    format!("[127.0.0.1]:{} {kind} {value}\n", node.ssh_port)
}

/// The host's cgroup directories of a nested container: under each v1 controller, or the unified tree.
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![root.join("docker").join(id)];
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        dirs.push(entry.path().join("docker").join(id));
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

fn ok_status(what: &str, out: &Output) -> String {
    assert!(out.status.success(), "{what} failed ({}):\n{}", out.status, text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pid_alive(pid: &str) -> bool {
    !pid.trim().is_empty() && Path::new(&format!("/proc/{}", pid.trim())).exists()
}

/// `name owner` lines of the labelled objects of one kind (`ps -a`, `volume ls`, `network ls`).
fn labelled(list: &[&str]) -> Vec<(String, String)> {
    let format = format!("{{{{.Names}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}");
    let format = if list[0] == "ps" {
        format
    } else {
        format.replace(".Names", ".Name")
    };
    let filter = format!("label={LABEL}");
    let mut args = list.to_vec();
    args.extend(["--filter", &filter]);
    args.extend(["--format", &format]);
    docker_ok(&args)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, o)| (n.to_string(), o.trim().to_string()))
        .collect()
}

/// Removes what runs of this test left behind when their process is gone (a SIGKILLed run has no Drop).
fn sweep_leftovers() {
    let dead = |list: &[&str]| -> Vec<String> {
        labelled(list)
            .into_iter()
            .filter(|(_, owner)| !pid_alive(owner))
            .map(|(n, _)| n)
            .collect()
    };
    let containers = dead(&["ps", "-a"]);
    if !containers.is_empty() {
        println!("removing the nodes of an earlier run: {containers:?}");
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(containers.iter().map(String::as_str));
        docker_ok(&args);
    }
    for v in dead(&["volume", "ls"]) {
        docker_ok(&["volume", "rm", &v]);
    }
    for n in dead(&["network", "ls"]) {
        docker_ok(&["network", "rm", &n]);
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(&format!("{PROJECT}-"))
                && !pid_alive(pid)
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// The node image, built offline from drydock/base:trixie when missing (infra/images/compose.yaml).
fn ensure_node_image() {
    common::ensure_offline_image("swarm-node", NODE_IMAGE);
    common::ensure_offline_image("registry", REGISTRY_IMAGE);
}

/// The program's path on PATH.
fn program(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|p| p.is_file()))
        .unwrap_or_else(|| panic!("{name} is not on PATH (Debian: apt-get install openssh-client)"))
}

fn random_hex(bytes: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_mode(path: &Path, content: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl Cluster {
    /// Creates the network, the key, three nodes, the swarm, and puts the images on the nodes.
    fn start() -> Cluster {
        use std::os::unix::fs::PermissionsExt;
        sweep_leftovers();
        let pid = std::process::id().to_string();
        let run = format!("{PROJECT}-{pid}");
        let dir = std::env::temp_dir().join(&run);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut c = Cluster {
            dir: dir.clone(),
            registry: String::new(),
            network: None,
            volumes: Vec::new(),
            containers: Vec::new(),
            nodes: Vec::new(),
        };
        let owner = format!("{OWNER_LABEL}={pid}");

        // The key of this run, and ssh settings that never prompt: this key only, host keys checked against
        // a known_hosts file made below from the nodes' own host keys.
        let key = dir.join("id_ed25519");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", &run, "-f"])
            .arg(&key)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        ok_status("ssh-keygen", &out);
        let public = std::fs::read_to_string(dir.join("id_ed25519.pub")).unwrap();

        let network = format!("{run}-net");
        docker_ok(&["network", "create", "--label", LABEL, "--label", &owner, &network]);
        c.network = Some(network.clone());

        for role in ["manager", "worker1", "worker2"] {
            let name = format!("{run}-{role}");
            let volume = format!("{name}-docker");
            docker_ok(&["volume", "create", "--label", LABEL, "--label", &owner, &volume]);
            c.volumes.push(volume.clone());
            let authorized = format!("SSH_AUTHORIZED_KEYS={}", public.trim());
            let engine = format!("{volume}:/var/lib/docker");
            let ports: Vec<String> = [22, HTTP_PORT, HTTPS_PORT]
                .iter()
                .map(|p| format!("127.0.0.1::{p}"))
                .collect();
            let mut args = vec![
                "run",
                "-d",
                "--name",
                &name,
                "--hostname",
                &name,
                "--label",
                LABEL,
                "--label",
                &owner,
                "--network",
                &network,
                // Docker-in-Docker without --privileged (refused here): see shared/ENVIRONMENT.md.
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
            ];
            for p in &ports {
                args.extend(["-p", p.as_str()]);
            }
            args.push(NODE_IMAGE);
            docker_ok(&args);
            c.containers.push(name);
        }

        // Ready = its engine answers (`docker version` in the node).
        let started = Instant::now();
        for name in &c.containers {
            common::wait_for_node_engine(name);
        }
        println!(
            "NODES: 3 engines answering after {:.1} s",
            started.elapsed().as_secs_f64()
        );

        let mut known_hosts = String::new();
        for name in c.containers.clone() {
            let port = |p: u16| published_port(&name, p);
            let ip_format = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
            let ip = docker_ok(&["inspect", "--format", &ip_format, &name])
                .trim()
                .to_string();
            let node = Node {
                ssh_port: port(22),
                http_port: port(HTTP_PORT),
                https_port: port(HTTPS_PORT),
                ip,
                name: name.clone(),
            };
            known_hosts.push_str(&known_host(&node));
            c.nodes.push(node);
        }
        write_mode(&dir.join("known_hosts"), &known_hosts, 0o600);
        // As an operator's ~/.ssh/config would (README, "SSH multiplexing"): one connection per node that every
        // docker call reuses, instead of a key exchange per call (about 75 ms of the client's CPU with OpenSSH
        // 9.2's default post-quantum exchange, and the node's sshd pays too; the docker CLI opens a new `ssh` for every command).
        let config = format!(
            "Host 127.0.0.1\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  HostKeyAlgorithms ssh-ed25519\n  BatchMode yes\n  ConnectTimeout 10\n  LogLevel ERROR\n  ControlMaster auto\n  ControlPath {cm}\n  ControlPersist 60\n",
            key = key.display(),
            kh = dir.join("known_hosts").display(),
            cm = dir.join("cm-%C").display()
        );
        write_mode(&dir.join("ssh_config"), &config, 0o600);
        // The docker CLI runs `ssh` from PATH with no way to pass options: this wrapper, first on the PATH of
        // the commands below, adds `-F <the run's config>` (ssh reads ~/.ssh/config from the passwd entry's
        // home, not from $HOME, so a config file of our own must be named).
        write_mode(
            &dir.join("bin/ssh"),
            &format!(
                "#!/bin/sh\nexec '{}' -F '{}' \"$@\"\n",
                program("ssh").display(),
                dir.join("ssh_config").display()
            ),
            0o700,
        );

        // Every engine answers over SSH (the key works, the host key is the known one), and is Engine 26.
        for node in &c.nodes {
            let version = c.remote_ok(node, &["info", "--format", "{{.ServerVersion}}"]);
            assert!(version.starts_with("26."), "{}: engine {version}", node.name);
        }

        // The registry every node reaches: on the private network as `registry:5000`, on 127.0.0.1:<P> here,
        // and on 127.0.0.1:<P> in each node through its socat (see the module docs).
        let name = format!("{run}-registry");
        let volume = format!("{name}-data");
        docker_ok(&["volume", "create", "--label", LABEL, "--label", &owner, &volume]);
        c.volumes.push(volume.clone());
        let storage = format!("{volume}:/var/lib/registry");
        docker_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            LABEL,
            "--label",
            &owner,
            "--network",
            &network,
            "--network-alias",
            "registry",
            "-p",
            "127.0.0.1::5000",
            "-v",
            &storage,
            REGISTRY_IMAGE,
        ]);
        c.containers.push(name.clone());
        let port = published_port(&name, 5000);
        c.registry = format!("127.0.0.1:{port}");
        wait_for_200(port, "/v2/", Duration::from_secs(60));
        for i in 0..c.nodes.len() {
            c.forward_registry(i);
        }

        // What the xtask reads on the operator's side: random secrets, an (empty) TLS directory.
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        std::fs::set_permissions(dir.join("secrets"), std::fs::Permissions::from_mode(0o700)).unwrap();
        for f in [
            "postgres_password.txt",
            "redis_password.txt",
            "grafana_admin_password.txt",
        ] {
            write_mode(&dir.join("secrets").join(f), &(random_hex(16) + "\n"), 0o444);
        }
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        c
    }

    fn manager(&self) -> &Node {
        &self.nodes[0]
    }

    /// Starts the node's forwarder 127.0.0.1:<P> -> registry:5000 (again after a restart) and waits until the
    /// registry answers through it.
    fn forward_registry(&self, i: usize) {
        let node = &self.nodes[i].name;
        let port = self.registry.rsplit(':').next().unwrap();
        let listen = format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr");
        docker_ok(&["exec", "-d", node, "socat", &listen, "TCP:registry:5000"]);
        let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
        let started = Instant::now();
        while !docker(&["exec", node, "bash", "-c", &probe]).status.success() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the registry forwarder in {node} does not answer"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The registry's name of a local image (`drydock/api:v1` -> `127.0.0.1:<P>/drydock/api:v1`).
    fn pulled(&self, image: &str) -> String {
        format!("{}/{image}", self.registry)
    }

    /// The repositories of the images a node's engine has.
    fn node_images(&self, node: &Node) -> Vec<String> {
        self.remote_ok(node, &["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
            .lines()
            .map(String::from)
            .collect()
    }

    /// Waits until `count` API tasks run and none of them on `node`; returns the seconds since `since`.
    fn wait_api_without(&self, node: &str, count: usize, since: Instant, within: Duration) -> f64 {
        loop {
            let api = self.tasks("api");
            if api.len() == count && api.iter().all(|(n, _)| n != node) {
                return since.elapsed().as_secs_f64();
            }
            assert!(
                since.elapsed() < within,
                "the API did not get to {count} tasks without {node} within {} s: {api:?}",
                within.as_secs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Starts a stopped node again and waits until its engine answers over SSH. Docker gives its published
    /// ports new numbers, so they are read again, and its (unchanged) host key is trusted on the new SSH port.
    fn restart_node(&mut self, i: usize) {
        let name = self.nodes[i].name.clone();
        docker_ok(&["start", &name]);
        let started = Instant::now();
        common::wait_for_node_engine(&name);
        let node = &mut self.nodes[i];
        node.ssh_port = published_port(&name, 22);
        node.http_port = published_port(&name, HTTP_PORT);
        node.https_port = published_port(&name, HTTPS_PORT);
        let line = known_host(&self.nodes[i]);
        let path = self.dir.join("known_hosts");
        let known = std::fs::read_to_string(&path).unwrap() + &line;
        write_mode(&path, &known, 0o600);
        while !self.remote(&self.nodes[i], &["info"]).status.success() {
            assert!(started.elapsed() < Duration::from_secs(120), "{name} did not come back");
            std::thread::sleep(Duration::from_millis(500));
        }
        self.forward_registry(i);
    }

    /// `cargo xtask swarm-setup` over the nodes' SSH ports: the first a manager, the others workers, the
    /// databases on [`DB_NODE`]; every node advertises its interface on the private network (eth0; the nested
    /// engine's docker0 is a second address, so Docker cannot pick by itself).
    fn swarm_setup(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(Self::docker_host).collect();
        let mut args = vec!["swarm-setup", "--manager", &urls[0]];
        for url in &urls[1..] {
            args.extend(["--worker", url.as_str()]);
        }
        args.extend(["--db-node", urls[DB_NODE].as_str(), "--advertise-addr", "eth0"]);
        self.xtask_ok(&args)
    }

    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.dir.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    fn docker_host(node: &Node) -> String {
        format!("ssh://root@127.0.0.1:{}", node.ssh_port)
    }

    /// `docker <args>` against `node`'s engine, over SSH.
    fn remote(&self, node: &Node, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", Self::docker_host(node))
            .env("PATH", self.path_env())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn remote_ok(&self, node: &Node, args: &[&str]) -> String {
        let out = self.remote(node, args);
        ok_status(&format!("docker {} (on {})", args.join(" "), node.name), &out)
    }

    /// Runs the xtask against the manager, echoing its output.
    fn xtask(&self, args: &[&str]) -> Output {
        eprintln!(
            "+ DOCKER_HOST={} cargo xtask --offline {}",
            Self::docker_host(self.manager()),
            args.join(" ")
        );
        let (host, path) = (Self::docker_host(self.manager()), self.path_env());
        let (secrets, tls) = (
            self.dir.join("secrets").display().to_string(),
            self.dir.join("tls").display().to_string(),
        );
        let (http, https) = (HTTP_PORT.to_string(), HTTPS_PORT.to_string());
        let mut all = vec!["--offline"];
        all.extend(args);
        let out = xtask_env(
            &all,
            &[
                ("DOCKER_HOST", &host),
                ("PATH", &path),
                ("DRYDOCK_PROJECT", PROJECT),
                ("DRYDOCK_SECRETS_DIR", &secrets),
                ("DRYDOCK_TLS_DIR", &tls),
                ("DRYDOCK_PROD_HTTP_PORT", &http),
                ("DRYDOCK_PROD_HTTPS_PORT", &https),
                // Inside a node, "every interface" is its private-network address (and its loopback): the
                // host reaches the proxy only through the node container's 127.0.0.1 port.
                ("DRYDOCK_PROD_BIND", "0.0.0.0"),
            ],
        );
        eprintln!("{}", text(&out));
        out
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

    /// (node, image) of the running tasks of a stack service.
    fn tasks(&self, service: &str) -> Vec<(String, String)> {
        self.remote_ok(
            self.manager(),
            &[
                "service",
                "ps",
                &format!("{STACK}_{service}"),
                "--filter",
                "desired-state=running",
                "--format",
                "{{.Node}} {{.Image}} {{.CurrentState}}",
            ],
        )
        .lines()
        .filter(|l| l.contains(" Running "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
    }

    fn service_image(&self, service: &str) -> String {
        self.remote_ok(
            self.manager(),
            &[
                "service",
                "inspect",
                "--format",
                "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                &format!("{STACK}_{service}"),
            ],
        )
        .trim()
        .to_string()
    }

    /// The node running the proxy's one task (polled: after an update it may move).
    fn proxy_node(&self, within: Duration) -> &Node {
        let started = Instant::now();
        loop {
            let tasks = self.tasks("proxy");
            if let [(node, _)] = tasks.as_slice()
                && let Some(n) = self.nodes.iter().find(|n| &n.name == node)
            {
                return n;
            }
            assert!(started.elapsed() < within, "no single running proxy task: {tasks:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The ids of every container the nodes' engines have (to check that none outlives the nodes).
    fn nested_containers(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| {
                self.remote_ok(n, &["ps", "-aq", "--no-trunc"])
                    .lines()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Stops the nodes (each engine stops its containers, so their cgroups go too), removes them with their
    /// volumes, the network, the temporary directory (key, known_hosts, secrets) and the xtask's files for
    /// the stack. Idempotent; returns what could not be removed.
    fn teardown(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let containers = std::mem::take(&mut self.containers);
        if !containers.is_empty() {
            let mut stop = vec!["stop", "--time", "60"];
            stop.extend(containers.iter().map(String::as_str));
            let out = docker(&stop);
            if !out.status.success() {
                problems.push(format!("docker stop: {}", text(&out).trim()));
            }
            let mut rm = vec!["rm", "-f", "-v"];
            rm.extend(containers.iter().map(String::as_str));
            let out = docker(&rm);
            if !out.status.success() {
                problems.push(format!("docker rm: {}", text(&out).trim()));
            }
        }
        for v in std::mem::take(&mut self.volumes) {
            let out = docker(&["volume", "rm", &v]);
            if !out.status.success() {
                problems.push(format!("docker volume rm {v}: {}", text(&out).trim()));
            }
        }
        if let Some(n) = self.network.take() {
            let out = docker(&["network", "rm", &n]);
            if !out.status.success() {
                problems.push(format!("docker network rm {n}: {}", text(&out).trim()));
            }
        }
        if self.dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            problems.push(format!("removing {}: {e}", self.dir.display()));
        }
        for f in [
            root().join(".drydock").join(format!("deploy-{STACK}.json")),
            root().join("target/drydock/swarm").join(format!("{STACK}.json")),
        ] {
            let _ = std::fs::remove_file(f);
        }
        // The records of this run's engine (keyed by its SSH address: `deploy-<stack>@root_127.0.0.1_<port>.json`).
        for node in &self.nodes {
            let key = format!("{STACK}@root_127.0.0.1_{}", node.ssh_port);
            for f in [
                format!("deploy-{key}.json"),
                format!("lock-{key}"),
                format!("audit-{key}.jsonl"),
            ] {
                let _ = std::fs::remove_file(root().join(".drydock").join(f));
            }
        }
        self.nodes.clear();
        problems
    }
}

/// Runs `action` under the test's load on the proxy at `port` (4 workers on 127.0.0.1, a request every 40 ms
/// each, 50 requests seen before and after it), then prints the load's figures as `what`.
fn under_load<T>(port: u16, what: &str, action: impl FnOnce() -> T) -> (T, Stats) {
    let load = start_load(port, 4, Duration::from_millis(40), Duration::from_secs(400));
    load.wait_for(50, Duration::from_secs(30));
    let out = action();
    load.wait_for(50, Duration::from_secs(30));
    let s = load.finish();
    report(what, &s);
    (out, s)
}

fn host_swarm_state() -> String {
    docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.NodeID}}"])
        .trim()
        .to_string()
}

#[test]
#[ignore = "needs Docker; starts three Docker-in-Docker swarm nodes and deploys the production stack to them (minutes)"]
fn swarm_of_three_nodes_deploys_start_first_and_rolls_back_under_load() {
    let wall = Instant::now();
    let _lock = suite_lock("swarm_nodes");
    prepare_release_images();
    ensure_node_image();
    let host_swarm = host_swarm_state();
    for f in [
        root().join(".drydock").join(format!("deploy-{STACK}.json")),
        root().join("target/drydock/swarm").join(format!("{STACK}.json")),
    ] {
        let _ = std::fs::remove_file(f);
    }
    let mut cluster = Cluster::start();
    let manager = cluster.manager();
    let db_node = cluster.nodes[DB_NODE].name.clone();

    // The swarm, made by the xtask from the SSH hosts: one manager creates it, the workers join over the
    // private network, the database node gets its label; the join token appears in no output.
    let started = Instant::now();
    let out = cluster.swarm_setup();
    println!("SWARM-SETUP of 3 nodes: {:.1} s", started.elapsed().as_secs_f64());
    let token = cluster.remote_ok(manager, &["swarm", "join-token", "-q", "worker"]);
    assert!(!out.contains(token.trim()), "the join token leaked:\n{out}");
    assert!(
        out.contains("creates the swarm") && out.matches(" joins").count() == 2,
        "{out}"
    );
    let nodes = cluster.remote_ok(
        manager,
        &["node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}}"],
    );
    println!("SWARM nodes:\n{}", nodes.trim_end());
    let ready = nodes.lines().filter(|l| l.ends_with(" Ready Active")).count();
    assert_eq!(ready, 3, "{nodes}");
    for node in &cluster.nodes {
        let addr = cluster.remote_ok(node, &["info", "--format", "{{.Swarm.NodeAddr}}"]);
        assert_eq!(
            addr.trim(),
            node.ip,
            "{} advertises its private-network address",
            node.name
        );
    }
    let db_nodes = cluster.remote_ok(
        manager,
        &[
            "node",
            "ls",
            "--filter",
            &format!("node.label={DB_LABEL}"),
            "--format",
            "{{.Hostname}}",
        ],
    );
    assert_eq!(db_nodes.trim(), db_node, "only the database node is labelled");

    // 0. without a node labelled for the databases the deploy refuses (their volumes would have no home)
    cluster.remote_ok(manager, &["node", "update", "--label-rm", "drydock.db", &db_node]);
    let out = cluster.xtask(&["prod-deploy", "--swarm", "--tag", V1]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("labelled drydock.db=true"), "{}", text(&out));
    let services = cluster.remote_ok(manager, &["service", "ls", "-q"]);
    assert!(
        services.trim().is_empty(),
        "a refused deploy created services: {services}"
    );
    // A second swarm-setup changes no membership and puts the label back.
    let out = cluster.swarm_setup();
    assert_eq!(out.matches("left as it is").count(), 3, "{out}");
    assert!(!out.contains("swarm init") && !out.contains("dial-stdio"), "{out}");
    assert!(out.contains("--label-add drydock.db=true"), "{out}");

    // 0b. without a registry the deploy refuses too: only this machine has the images
    let out = cluster.xtask(&["prod-deploy", "--swarm", "--tag", V1]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no registry was given"), "{}", text(&out));
    let services = cluster.remote_ok(manager, &["service", "ls", "-q"]);
    assert!(
        services.trim().is_empty(),
        "a refused deploy created services: {services}"
    );
    for node in &cluster.nodes {
        let images = cluster.node_images(node);
        assert!(
            images.is_empty(),
            "{} has images before the deploy: {images:?}",
            node.name
        );
    }

    // 1. the first deploy: the images go through the registry; every service runs, the databases on their
    //    node, the API on two nodes
    let started = Instant::now();
    let registry = cluster.registry.clone();
    let out = cluster.xtask_ok(&[
        "prod-deploy",
        "--swarm",
        "--tag",
        V1,
        "--registry",
        &registry,
        "--timeout",
        "240",
    ]);
    println!(
        "DEPLOY v1 to the 3-node swarm through the registry: converged after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(out.contains(&format!("registry {registry}: pushing")), "{out}");
    // Pinned to the digest just pushed: every node runs the same bytes.
    let spec = cluster.service_image("api");
    assert!(
        spec.starts_with(&format!("{}@sha256:", cluster.pulled(&format!("drydock/api:{V1}")))),
        "{spec}"
    );
    // Each node pulled what its tasks run, from the registry: the databases' images only on their node.
    for node in &cluster.nodes {
        let images = cluster.node_images(node);
        println!("PULLED by {}: {images:?}", node.name);
        assert!(
            images.iter().all(|i| i.starts_with(&registry)),
            "{}: {images:?}",
            node.name
        );
        let has_postgres = images.iter().any(|i| i.contains("/drydock/postgres:"));
        assert_eq!(has_postgres, node.name == db_node, "{}: {images:?}", node.name);
    }
    for db in ["postgres", "redis"] {
        let tasks = cluster.tasks(db);
        assert_eq!(
            tasks.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            [db_node.as_str()],
            "{db} must run on the labelled node only"
        );
    }
    let api = cluster.tasks("api");
    let mut api_nodes: Vec<&str> = api.iter().map(|(n, _)| n.as_str()).collect();
    api_nodes.sort_unstable();
    api_nodes.dedup();
    println!("PLACEMENT api tasks: {api:?}; databases on {db_node}");
    assert_eq!(api.len(), 2, "{api:?}");
    assert_eq!(api_nodes.len(), 2, "the API replicas share a node: {api:?}");
    let proxy = cluster.proxy_node(Duration::from_secs(30));
    let port = proxy.http_port;
    println!("PROXY on {} (127.0.0.1:{port})", proxy.name);
    wait_for_200(port, "/api/v1/items", Duration::from_secs(120));

    // prod-scale --swarm: a third API task (healthy, on some node), then back to two; the lock and the audit
    // log are the Swarm stack's.
    let started = Instant::now();
    let out = cluster.xtask_ok(&["prod-scale", "--swarm", "3", "--timeout", "120"]);
    assert!(out.contains("runs 3 healthy replica(s)"), "{out}");
    assert_eq!(cluster.tasks("api").len(), 3, "{:?}", cluster.tasks("api"));
    let out = cluster.xtask_ok(&["prod-scale", "--swarm", "2", "--timeout", "120"]);
    assert!(out.contains("runs 2 healthy replica(s)"), "{out}");
    println!(
        "SCALE api 2 -> 3 -> 2 on the swarm: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let history = cluster.xtask_ok(&["prod-history", "--swarm"]);
    assert!(history.contains("prod-scale"), "the scaling is audited:\n{history}");
    let ps = cluster.xtask_ok(&["prod-ps", "--swarm"]);
    assert!(
        ps.contains(&format!("{STACK}_api")) && ps.contains("2/2") && ps.contains("deploy lock: free"),
        "prod-ps --swarm shows the services, their replicas and the lock:\n{ps}"
    );

    // 2. v1 -> v2 under load: start-first, not one failed request
    let ((), s) = under_load(port, "swarm (3 nodes): prod-deploy --swarm v1 -> v2", || {
        cluster.xtask_ok(&["prod-deploy", "--swarm", "--tag", V2, "--timeout", "240"]);
    });
    assert!(s.total > 100, "too little load: {}", s.total);
    assert_eq!(s.failed, 0, "requests failed during the deploy");
    let v2 = cluster.pulled(&format!("drydock/api:{V2}"));
    assert!(cluster.service_image("api").starts_with(&format!("{v2}@sha256:")));
    let api = cluster.tasks("api");
    assert_eq!(api.len(), 2, "{api:?}");
    assert!(api.iter().all(|(_, i)| i == &v2), "{api:?}");

    // 3. an image that crashes at start: Swarm rolls the API back by itself, no request fails
    let (out, s) = under_load(
        port,
        "swarm (3 nodes): deploy of a crashing image (automatic rollback)",
        || cluster.xtask(&["prod-deploy", "--swarm", "--tag", CRASHING, "--timeout", "240"]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rolled the API back"), "{}", text(&out));
    assert_eq!(s.failed, 0, "requests failed during the rolled-back deploy");
    assert!(
        cluster.service_image("api").starts_with(&format!("{v2}@sha256:")),
        "after the rollback the service runs v2"
    );
    let api = cluster.tasks("api");
    assert_eq!(api.len(), 2, "{api:?}");
    assert!(api.iter().all(|(_, i)| i == &v2), "{api:?}");

    // 3b. prod-rollback --swarm under load: back to v1, the one before the last good deploy, with no request
    //     failed; the registry is the one the stack's deploys used (no --registry needed)
    let (out, s) = under_load(port, "swarm (3 nodes): prod-rollback --swarm v2 -> v1", || {
        cluster.xtask_ok(&["prod-rollback", "--swarm", "--timeout", "240"])
    });
    assert!(out.contains(&format!("registry: {registry}")), "{out}");
    assert_eq!(s.failed, 0, "requests failed during the rollback");
    let v1 = cluster.pulled(&format!("drydock/api:{V1}"));
    assert!(cluster.service_image("api").starts_with(&format!("{v1}@sha256:")));
    assert!(
        cluster.tasks("api").iter().all(|(_, i)| i == &v1),
        "{:?}",
        cluster.tasks("api")
    );

    // 4. draining a node moves its API task to the others without one failed request. Four replicas, so that
    //    worker2 (neither the manager, where the proxy runs, nor the database node) surely runs one (spread).
    let victim_index = 2;
    assert!(victim_index != DB_NODE);
    let victim = cluster.nodes[victim_index].name.clone();
    let proxy = cluster.proxy_node(Duration::from_secs(60));
    assert_eq!(proxy.name, manager.name, "the proxy runs on the manager");
    let port = proxy.http_port;
    cluster.xtask_ok(&["prod-scale", "--swarm", "4", "--timeout", "120"]);
    let on_victim = |c: &Cluster| c.tasks("api").iter().filter(|(n, _)| n == &victim).count();
    assert!(
        on_victim(&cluster) > 0,
        "no API task on {victim}: {:?}",
        cluster.tasks("api")
    );
    let (moved, s) = under_load(port, "swarm (3 nodes): drain of a node running an API task", || {
        let started = Instant::now();
        cluster.remote_ok(manager, &["node", "update", "--availability", "drain", &victim]);
        cluster.wait_api_without(&victim, 4, started, Duration::from_secs(120))
    });
    println!("DRAIN: 4 API tasks running again, none on {victim}, {moved:.1} s after the drain");
    assert!(s.total > 100, "too little load: {}", s.total);
    assert_eq!(s.failed, 0, "requests failed while a node was drained");
    cluster.remote_ok(manager, &["node", "update", "--availability", "active", &victim]);

    // 5. the same node stopped abruptly (SIGKILL to its container: its engine and tasks die at once). At most
    //    the requests in flight to its task fail (the load has 4 workers, one request each at a time); Swarm
    //    brings the API back to full count on the other nodes. Six replicas after the drain: the two new
    //    ones go to the emptiest node, worker2.
    cluster.xtask_ok(&["prod-scale", "--swarm", "6", "--timeout", "120"]);
    assert!(
        on_victim(&cluster) > 0,
        "no API task on {victim}: {:?}",
        cluster.tasks("api")
    );
    let ((doomed, back), s) = under_load(port, "swarm (3 nodes): a node killed abruptly", || {
        let doomed = cluster.remote_ok(&cluster.nodes[victim_index], &["ps", "-q", "--no-trunc"]);
        let killed = Instant::now();
        docker_ok(&["kill", &victim]);
        (
            doomed,
            cluster.wait_api_without(&victim, 6, killed, Duration::from_secs(180)),
        )
    });
    println!("KILL: {victim} killed; 6 API tasks running on the other nodes {back:.1} s later");
    assert!(s.total > 100, "too little load: {}", s.total);
    assert!(
        s.failed <= 4,
        "{} requests failed: more than the 4 that can be in flight to the killed node",
        s.failed
    );
    // The node comes back (its engine restarts and rejoins), so the clean-up below reaches every engine.
    cluster.restart_node(victim_index);
    let manager = cluster.manager();
    // An engine killed outright never deleted its containers' cgroups (runc delete never ran): on the host
    // they stay as empty directories. They are removed here; one that still held a process would be a leak.
    for id in doomed.split_whitespace() {
        for dir in cgroup_dirs(id) {
            if let Err(e) = std::fs::remove_dir(&dir) {
                panic!(
                    "the cgroup {} of a container of the killed node is not empty: {e}",
                    dir.display()
                );
            }
        }
    }

    // 6. the operator's TLS files reach the proxy (HTTP then redirects to HTTPS: the last step under load is
    //    above) on whatever node it runs (a config and a secret)
    let tls = cluster.dir.join("tls");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(tls.join("tls.key"))
        .arg("-out")
        .arg(tls.join("tls.crt"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok_status("openssl req", &out);
    // prod-up --swarm: the stack as deployed (API v1 since the rollback), now with the TLS files.
    let out = cluster.xtask_ok(&["prod-up", "--swarm", "--timeout", "240"]);
    assert!(out.contains(&format!("with API {V1}")), "{out}");
    let mounts = cluster.remote_ok(
        manager,
        &[
            "service",
            "inspect",
            "--format",
            "{{range .Spec.TaskTemplate.ContainerSpec.Configs}}config {{.File.Name}} {{end}}{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}secret {{.File.Name}} {{end}}",
            &format!("{STACK}_proxy"),
        ],
    );
    assert!(
        mounts.contains("config /etc/nginx/tls/tls.crt") && mounts.contains("secret /etc/nginx/tls/tls.key"),
        "{mounts}"
    );
    let started = Instant::now();
    let headers = loop {
        let node = cluster.proxy_node(Duration::from_secs(60));
        let out = Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-D", "-", "--max-time", "5"])
            .arg(format!("https://127.0.0.1:{}/health", node.https_port))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let headers = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && headers.contains(" 200") {
            break headers;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the proxy did not serve TLS: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("strict-transport-security: max-age=63072000"),
        "{headers}"
    );
    println!("TLS: the proxy serves HTTPS with the certificate sent as a Swarm config + secret");

    // 7. everything goes: no node, volume, network or temporary file stays; the nested engines' containers
    //    are gone with their cgroups; the host engine's swarm state is what it was
    let nested = cluster.nested_containers();
    let cgroup = |id: &String| {
        ["/sys/fs/cgroup/memory/docker", "/sys/fs/cgroup/docker"]
            .iter()
            .map(|d| Path::new(d).join(id))
            .find(|p| p.exists())
    };
    let with_cgroup = nested.iter().filter(|id| cgroup(id).is_some()).count();
    assert!(
        with_cgroup > 0,
        "no cgroup of the nodes' containers found on the host: {nested:?}"
    );
    let problems = cluster.teardown();
    assert!(problems.is_empty(), "clean-up: {problems:?}");
    let owner = std::process::id().to_string();
    for list in [&["ps", "-a"][..], &["volume", "ls"], &["network", "ls"]] {
        let left: Vec<_> = labelled(list).into_iter().filter(|(_, o)| o == &owner).collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
    assert!(!std::env::temp_dir().join(format!("{PROJECT}-{owner}")).exists());
    let stale: Vec<PathBuf> = nested.iter().filter_map(cgroup).collect();
    assert!(
        stale.is_empty(),
        "cgroups of the nodes' containers outlived them: {stale:?}"
    );
    assert_eq!(host_swarm_state(), host_swarm, "the host engine's swarm state changed");
    println!(
        "SWARM test wall time: {:.0} s (3 nodes, {} nested containers removed)",
        wall.elapsed().as_secs_f64(),
        nested.len()
    );
}
