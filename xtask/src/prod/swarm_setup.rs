//! `cargo xtask swarm-setup`: a Docker Swarm made from SSH hosts, as Kamal's `setup` makes servers ready. The first
//! manager creates the swarm (or the existing one is used), the other hosts join it as managers or workers, and
//! one node gets the label the databases are pinned to (`drydock.db=true`, the only one with it).
//!
//! Every host is looked at before anything changes, and the run refuses, naming the fix and changing nothing,
//! when the hosts do not fit together: one unreachable, in another swarm, or in this one with the other role.
//! A host already in the swarm with the asked role is left as it is, so a second run changes nothing.
//!
//! A join token is a secret: it is read from a manager into memory, and a joining engine gets it in the body of
//! its Engine API request (`POST /swarm/join`, through `docker system dial-stdio` over SSH, from a 0600 file that
//! is removed afterwards): never in an argv, an environment, the echo or a log (`docker swarm join --token`
//! would put it in the argv of the CLI here and show it in `ps`).

use std::io::Write;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::cmd::{Cmd, Input, cmd, shell};
use crate::config::CONFIG_PATH;
use crate::context::Ctx;
use crate::prod::swarm_stack::DB_NODE_LABEL;
use crate::target::{self, Selectors};

/// The role a host is asked to have in the swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Manager,
    Worker,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Manager => "manager",
            Role::Worker => "worker",
        }
    }
}

/// One host of the request: as given, and its `ssh://` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub given: String,
    pub url: String,
    pub role: Role,
}

/// What a node's engine says of its swarm (`docker info --format '{{json .Swarm}}'`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Membership {
    /// `inactive`, `pending`, `active`, `error` or `locked`.
    pub state: String,
    pub node_id: String,
    pub node_addr: String,
    /// The cluster's id: only a manager knows it (a worker's `Cluster` is empty).
    pub cluster_id: String,
    pub is_manager: bool,
    /// The node ids of the managers this node talks to (how a worker's swarm is told).
    pub remote_managers: Vec<String>,
}

impl Membership {
    pub fn parse(json: &str) -> Result<Membership> {
        let v: Value = serde_json::from_str(json.trim()).context("parsing `docker info --format '{{json .Swarm}}'`")?;
        let text = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(Membership {
            state: text("LocalNodeState"),
            node_id: text("NodeID"),
            node_addr: text("NodeAddr"),
            cluster_id: v
                .pointer("/Cluster/ID")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            is_manager: v.get("ControlAvailable").and_then(Value::as_bool).unwrap_or(false),
            remote_managers: v
                .get("RemoteManagers")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|m| m.get("NodeID")?.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    fn active(&self) -> bool {
        self.state == "active"
    }

    /// A manager of a swarm: the only kind of node that knows its cluster's id.
    fn active_manager(&self) -> bool {
        self.active() && self.is_manager
    }
}

/// What happens to one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `docker swarm init` on it (the first manager, when no host is in a swarm yet).
    Init(usize),
    /// It joins the swarm with its role.
    Join(usize),
    /// Already in the swarm with its role.
    Keep(usize),
}

/// The hosts of the command line, resolved and checked against each other (pure but for `[hosts]` lookups):
/// managers first, then workers; the index of the database node.
pub fn request(ctx: &Ctx, managers: &[String], workers: &[String], db_node: &str) -> Result<(Vec<Node>, usize)> {
    let unchanged = "nothing was changed";
    if managers.is_empty() {
        bail!(
            "a swarm needs at least one manager; {unchanged}\n  fix: --manager ssh://user@host[:port] (or a [hosts.<name>] of {CONFIG_PATH}), then --worker for the others"
        );
    }
    let resolve = |given: &String, role: Role| -> Result<Node> {
        let selectors = Selectors {
            host_flag: Some(given.clone()),
            ..Selectors::default()
        };
        let engine = target::resolve(&selectors, &ctx.config.hosts, CONFIG_PATH)
            .with_context(|| format!("--{} {given}: {unchanged}", role.name()))?;
        Ok(Node {
            given: given.clone(),
            url: engine.docker_host.unwrap_or(engine.label),
            role,
        })
    };
    let mut nodes = Vec::new();
    for given in managers {
        nodes.push(resolve(given, Role::Manager)?);
    }
    for given in workers {
        nodes.push(resolve(given, Role::Worker)?);
    }
    for (i, node) in nodes.iter().enumerate() {
        if let Some(other) = nodes[..i].iter().find(|o| o.url == node.url) {
            bail!(
                "{} and {} are the same host ({}); {unchanged}\n  fix: name each host once, as --manager or as --worker",
                other.given,
                node.given,
                node.url
            );
        }
    }
    let db = resolve(&db_node.to_string(), Role::Worker)?;
    let Some(db_index) = nodes.iter().position(|n| n.url == db.url) else {
        bail!(
            "--db-node {db_node} is not one of the hosts given; {unchanged}\n  fix: name one of the --manager or --worker hosts: the databases' volumes live on that node"
        );
    };
    Ok((nodes, db_index))
}

/// What to do with each node, given what each engine said (pure). Refuses, changing nothing, when the hosts do
/// not make one swarm.
pub fn plan(nodes: &[Node], members: &[Membership]) -> Result<Vec<Step>> {
    let unchanged = "nothing was changed";
    for (node, m) in nodes.iter().zip(members) {
        if !m.active() && m.state != "inactive" {
            bail!(
                "{} is in swarm state `{}`; {unchanged}\n  fix: settle it on that host first (`docker info`; `docker swarm leave --force` to start it afresh)",
                node.given,
                m.state
            );
        }
    }
    // Only managers know their cluster's id; a worker is told by the managers it talks to.
    let mut clusters: Vec<&str> = members
        .iter()
        .filter(|m| m.active_manager())
        .map(|m| m.cluster_id.as_str())
        .collect();
    clusters.sort_unstable();
    clusters.dedup();
    if clusters.len() > 1 {
        let listed: Vec<String> = nodes
            .iter()
            .zip(members)
            .filter(|(_, m)| m.active_manager())
            .map(|(n, m)| format!("{} in {}", n.given, short(&m.cluster_id)))
            .collect();
        bail!(
            "the hosts are in {} different swarms ({}); {unchanged}\n  fix: `docker swarm leave` on the hosts of the swarm you do not want, then run this again",
            clusters.len(),
            listed.join(", ")
        );
    }
    for (node, m) in nodes.iter().zip(members) {
        if m.active() && (node.role == Role::Manager) != m.is_manager {
            let (is, fix) = if m.is_manager {
                ("a manager", "docker node demote")
            } else {
                ("a worker", "docker node promote")
            };
            bail!(
                "{} is already {is} of the swarm but was given as --{}; {unchanged}\n  fix: give it as it is, or change it on a manager first: {fix} <node>",
                node.given,
                node.role.name()
            );
        }
    }
    let any_active = members.iter().any(Membership::active);
    let managers: Vec<&str> = members
        .iter()
        .filter(|m| m.active_manager())
        .map(|m| m.node_id.as_str())
        .collect();
    for (node, m) in nodes.iter().zip(members) {
        if m.active() && !m.is_manager && !m.remote_managers.iter().any(|id| managers.contains(&id.as_str())) {
            bail!(
                "{} is a worker of a swarm none of whose managers is among the hosts given; {unchanged}\n  fix: add one of that swarm's managers with --manager (it gives the join tokens), or `docker swarm leave` on {}",
                node.given,
                node.given
            );
        }
    }
    let mut steps = Vec::new();
    for (i, m) in members.iter().enumerate() {
        steps.push(if m.active() {
            Step::Keep(i)
        } else if !any_active && i == 0 {
            Step::Init(i)
        } else {
            Step::Join(i)
        });
    }
    Ok(steps)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// `docker <args>` on the engine at `url`.
fn on(url: &str, args: xshell::Cmd<'_>) -> Cmd {
    Cmd::from(args).env("DOCKER_HOST", url.to_string())
}

fn membership_plan(url: &str) -> Cmd {
    let sh = shell();
    let format = "{{json .Swarm}}";
    on(url, cmd!(sh, "docker info --format {format}"))
}

/// `swarm init` on the first manager; `advertise`: an address or interface the other nodes reach it on.
pub fn init_plan(url: &str, advertise: Option<&str>) -> Cmd {
    let sh = shell();
    let flags: Vec<&str> = advertise.map(|a| vec!["--advertise-addr", a]).unwrap_or_default();
    on(url, cmd!(sh, "docker swarm init {flags...}"))
}

/// Reads the join token of `role` from a manager (masked wherever the command is shown).
fn token_plan(url: &str, role: Role) -> Cmd {
    let sh = shell();
    let role = role.name();
    on(url, cmd!(sh, "docker swarm join-token --quiet {role}"))
}

/// The Engine API request that joins a node (its body holds the token: it goes in a file on stdin).
pub fn join_request(manager_addr: &str, advertise: Option<&str>, token: &str) -> String {
    let mut body = serde_json::json!({
        "ListenAddr": "0.0.0.0:2377",
        "RemoteAddrs": [format!("{manager_addr}:2377")],
        "JoinToken": token,
    });
    if let Some(a) = advertise {
        body["AdvertiseAddr"] = Value::String(a.to_string());
    }
    let body = body.to_string();
    format!(
        "POST /swarm/join HTTP/1.1\r\nHost: docker\r\nUser-Agent: drydock-xtask\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The engine's answer to [`join_request`]: `Ok` on 200, else its message.
pub fn join_answer(response: &str) -> Result<()> {
    let status = response.lines().next().unwrap_or_default().trim();
    if status.split_whitespace().nth(1) == Some("200") {
        return Ok(());
    }
    let message = response
        .find('{')
        .and_then(|at| {
            serde_json::Deserializer::from_str(&response[at..])
                .into_iter::<Value>()
                .next()?
                .ok()
        })
        .and_then(|v| v.get("message")?.as_str().map(String::from))
        .unwrap_or_else(|| status.to_string());
    bail!("the engine refused to join: {message} ({status})")
}

/// Creates or completes the swarm, labels the database node, and shows the nodes.
pub fn setup(ctx: &Ctx, managers: &[String], workers: &[String], db_node: &str, advertise: Option<&str>) -> Result<()> {
    let (nodes, db) = request(ctx, managers, workers, db_node)?;
    // An IPv6 address has colons of its own; an interface name never parses as an address.
    let is_address = |a: &str| {
        a.parse::<std::net::IpAddr>().is_ok()
            || a.split(':')
                .next()
                .is_some_and(|h| h.parse::<std::net::IpAddr>().is_ok())
    };
    if let Some(a) = advertise.filter(|a| is_address(a) && nodes.len() > 1) {
        bail!(
            "--advertise-addr {a} is an address, which fits one host only, and every node advertises it; nothing was changed\n  fix: name the interface every node reaches the others on (e.g. --advertise-addr eth1), or leave it to Docker"
        );
    }
    let look = |node: &Node| -> Result<Membership> {
        match ctx.run.probe(&membership_plan(&node.url)) {
            // --dry-run: nothing is looked at; the plan is the one for hosts in no swarm yet.
            None => Ok(Membership {
                state: "inactive".into(),
                ..Membership::default()
            }),
            Some(p) if p.success => Membership::parse(&p.stdout),
            Some(p) => bail!(
                "cannot reach the Docker engine of {} ({}): {}; nothing was changed\n  fix: check that `ssh {}` works with a key and that Docker runs there (`cargo xtask setup --host {}` installs it)",
                node.given,
                node.url,
                p.stderr.trim().lines().last().unwrap_or_default(),
                node.url.trim_start_matches("ssh://"),
                node.url
            ),
        }
    };
    let mut members = Vec::new();
    for node in &nodes {
        members.push(look(node)?);
    }
    let steps = plan(&nodes, &members)?;
    for step in &steps {
        let (i, what) = match step {
            Step::Init(i) => (*i, "creates the swarm"),
            Step::Join(i) => (*i, "joins"),
            Step::Keep(i) => (*i, "is in the swarm already: left as it is"),
        };
        ctx.say(&format!("{} ({}) {what}", nodes[i].given, nodes[i].role.name()));
    }
    if let Some(Step::Init(i)) = steps.first() {
        // Captured, never shown: `swarm init` prints the worker join command with its token.
        ctx.run.read(&init_plan(&nodes[*i].url, advertise))?;
        if !ctx.run.dry_run {
            members[*i] = look(&nodes[*i])?;
            ctx.say(&format!(
                "swarm created on {} (node {}, address {})",
                nodes[*i].given,
                short(&members[*i].node_id),
                members[*i].node_addr
            ));
        }
    }
    // The manager that gives the tokens and the address the others join.
    let manager = nodes
        .iter()
        .zip(&members)
        .position(|(n, m)| n.role == Role::Manager && m.active())
        .unwrap_or(0);
    let manager_url = nodes[manager].url.clone();
    // One token per role, read when the first node of that role joins.
    let (mut manager_token, mut worker_token) = (None, None);
    for step in &steps {
        let Step::Join(i) = step else { continue };
        let node = &nodes[*i];
        let slot = match node.role {
            Role::Manager => &mut manager_token,
            Role::Worker => &mut worker_token,
        };
        if slot.is_none() {
            *slot = Some(ctx.run.read(&token_plan(&manager_url, node.role))?.trim().to_string());
        }
        let token = slot.clone().unwrap_or_default();
        let request = join_request(&members[manager].node_addr, advertise, &token);
        let mut file = tempfile::Builder::new()
            .prefix("drydock-swarm-join-")
            .tempfile()
            .context("cannot create a temporary file for the join request")?;
        file.write_all(request.as_bytes())?;
        file.flush()?;
        let sh = shell();
        let join = on(&node.url, cmd!(sh, "docker system dial-stdio"))
            .stdin(Input::File(file.path().to_path_buf()))
            .secret(token.clone());
        let answer = ctx
            .run
            .read(&join)
            .with_context(|| format!("{} could not join; the nodes before it are in the swarm", node.given))?;
        if !ctx.run.dry_run {
            join_answer(&answer)
                .with_context(|| format!("{} did not join; the nodes before it are in the swarm", node.given))?;
            members[*i] = look(node)?;
        }
    }
    // The one node the databases are pinned to.
    let sh = shell();
    let (filter, id) = (format!("node.label={DB_NODE_LABEL}=true"), "{{.ID}}");
    let labelled = ctx.run.read(&on(
        &manager_url,
        cmd!(sh, "docker node ls --filter {filter} --format {id}"),
    ))?;
    let db_id = members[db].node_id.clone();
    for other in labelled.split_whitespace().filter(|id| *id != db_id) {
        ctx.say(&format!(
            "node {other} had the label {DB_NODE_LABEL}: taken off (one node holds the databases)"
        ));
        ctx.run.run(&on(
            &manager_url,
            cmd!(sh, "docker node update --label-rm {DB_NODE_LABEL} {other}"),
        ))?;
    }
    if ctx.run.dry_run || !labelled.split_whitespace().any(|id| id == db_id) {
        let db_id = if ctx.run.dry_run {
            format!("<node id of {}>", nodes[db].given)
        } else {
            db_id
        };
        let label = format!("{DB_NODE_LABEL}=true");
        ctx.run.run(&on(
            &manager_url,
            cmd!(sh, "docker node update --label-add {label} {db_id}"),
        ))?;
    }
    ctx.say(&format!(
        "the databases are pinned to {} ({DB_NODE_LABEL}=true); deploy with: DOCKER_HOST={manager_url} cargo xtask prod-deploy --swarm",
        nodes[db].given
    ));
    let format = "table {{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}";
    ctx.run
        .run(&on(&manager_url, cmd!(sh, "docker node ls --format {format}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(url: &str, role: Role) -> Node {
        Node {
            given: url.into(),
            url: url.into(),
            role,
        }
    }

    fn member(state: &str, cluster: &str, manager: bool) -> Membership {
        Membership {
            state: state.into(),
            node_id: format!("id-{cluster}"),
            node_addr: "10.0.0.2".into(),
            cluster_id: if manager { cluster.into() } else { String::new() },
            is_manager: manager,
            remote_managers: vec![format!("id-{cluster}")],
        }
    }

    #[test]
    fn membership_parses_docker_info() {
        let json = r#"{"NodeID":"n1","NodeAddr":"10.0.0.2","LocalNodeState":"active","ControlAvailable":true,"Error":"","RemoteManagers":[{"NodeID":"n1","Addr":"10.0.0.2:2377"}],"Cluster":{"ID":"c1","Version":{}}}"#;
        let m = Membership::parse(json).unwrap();
        assert_eq!(
            m,
            Membership {
                state: "active".into(),
                node_id: "n1".into(),
                node_addr: "10.0.0.2".into(),
                cluster_id: "c1".into(),
                is_manager: true,
                remote_managers: vec!["n1".into()],
            }
        );
        let idle = Membership::parse(r#"{"NodeID":"","NodeAddr":"","LocalNodeState":"inactive","ControlAvailable":false,"Error":"","RemoteManagers":null}"#).unwrap();
        assert_eq!(idle.state, "inactive");
        assert!(Membership::parse("not json").is_err());
    }

    #[test]
    fn new_hosts_make_a_swarm_on_the_first_manager() {
        let nodes = [
            node("ssh://m", Role::Manager),
            node("ssh://w1", Role::Worker),
            node("ssh://w2", Role::Worker),
        ];
        let idle = member("inactive", "", false);
        let steps = plan(&nodes, &[idle.clone(), idle.clone(), idle]).unwrap();
        assert_eq!(steps, [Step::Init(0), Step::Join(1), Step::Join(2)]);
    }

    #[test]
    fn a_second_run_keeps_every_node() {
        let nodes = [node("ssh://m", Role::Manager), node("ssh://w", Role::Worker)];
        let steps = plan(&nodes, &[member("active", "c", true), member("active", "c", false)]).unwrap();
        assert_eq!(steps, [Step::Keep(0), Step::Keep(1)]);
        // A new worker joins the existing swarm; nothing is created.
        let nodes = [
            node("ssh://m", Role::Manager),
            node("ssh://w", Role::Worker),
            node("ssh://new", Role::Worker),
        ];
        let steps = plan(
            &nodes,
            &[
                member("active", "c", true),
                member("active", "c", false),
                member("inactive", "", false),
            ],
        )
        .unwrap();
        assert_eq!(steps, [Step::Keep(0), Step::Keep(1), Step::Join(2)]);
    }

    #[test]
    fn hosts_that_do_not_make_one_swarm_are_refused() {
        let err = |nodes: &[Node], members: &[Membership]| format!("{:#}", plan(nodes, members).unwrap_err());
        let two = [node("ssh://m", Role::Manager), node("ssh://w", Role::Worker)];
        let e = err(&two, &[member("active", "c1", true), member("active", "c2", true)]);
        assert!(
            e.contains("2 different swarms") && e.contains("nothing was changed"),
            "{e}"
        );
        let e = err(&two, &[member("active", "c", true), member("active", "c", true)]);
        assert!(
            e.contains("already a manager") && e.contains("docker node demote"),
            "{e}"
        );
        let e = err(&two, &[member("inactive", "", false), member("active", "c", false)]);
        assert!(e.contains("none of whose managers"), "{e}");
        // A worker of another swarm (its managers are not this one's), beside an active manager.
        let e = err(&two, &[member("active", "c", true), member("active", "other", false)]);
        assert!(e.contains("none of whose managers"), "{e}");
        let e = err(&two, &[member("locked", "c", true), member("inactive", "", false)]);
        assert!(e.contains("swarm state `locked`"), "{e}");
    }

    #[test]
    fn the_join_request_carries_the_token_in_its_body_only() {
        let request = join_request("10.0.0.2", Some("eth0"), "SWMTKN-1-secret");
        let (head, body) = request.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("POST /swarm/join HTTP/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        assert!(!head.contains("SWMTKN"));
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["JoinToken"], "SWMTKN-1-secret");
        assert_eq!(body["RemoteAddrs"][0], "10.0.0.2:2377");
        assert_eq!(body["AdvertiseAddr"], "eth0");
        assert!(join_request("10.0.0.2", None, "t").contains("\"ListenAddr\""));
    }

    #[test]
    fn the_join_answer_is_read_from_the_status_line_and_the_message() {
        join_answer("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap();
        let e = join_answer(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\r\n{\"message\":\"This node is already part of a swarm.\"}\n",
        )
        .unwrap_err();
        assert!(format!("{e}").contains("This node is already part of a swarm."), "{e}");
        assert!(join_answer("").is_err());
    }

    #[test]
    fn the_first_manager_initialises_with_the_advertise_address() {
        assert_eq!(
            init_plan("ssh://root@m", Some("eth0")).argv(),
            ["docker", "swarm", "init", "--advertise-addr", "eth0"]
        );
        assert_eq!(init_plan("ssh://root@m", None).argv(), ["docker", "swarm", "init"]);
    }
}
