//! The deploy lock's object on the target engine: a container named `drydock-deploy-lock-<target>` that is
//! created and never started, its labels (`drydock.deploy-lock.*`) naming the holder; for a Swarm stack a
//! Swarm config of that name instead.
//!
//! Why a container: the engine reserves container names atomically, so `docker container create --name` is a
//! test-and-set every operator of that engine sees, from any machine, with nothing on the host but Docker.
//! (`docker volume create` of an existing name succeeds silently and network names are not unique: neither
//! can refuse a second taker.) A container needs an image, and no stack image is surely there (first deploy,
//! another tag, pruned images, no registry), so the lock brings its own: `drydock/deploy-lock:1`, an empty
//! image (no layers of content, 0 bytes, never run) imported on the engine from a 1 KiB empty tar archive
//! made here, the first time a lock is taken there. `--pull never`: a missing image is never a registry call.
//! The object is removed by its id, so a release never removes a lock someone else took meanwhile.
//!
//! A Swarm target's lock is a Swarm config (`docker config create`, the holder as labels and as its content):
//! its name is unique in the cluster's replicated store, so operators addressing different managers of one
//! swarm see one lock, and it needs no image at all.

use std::path::Path;

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use crate::cmd::{Cmd, cmd, shell};
use crate::prod::audit::Who;
use crate::prod::lock_holder::Holder;

/// The empty image of the lock object.
pub const IMAGE: &str = "drydock/deploy-lock:1";
/// The prefix of the holder's labels.
pub const LABEL: &str = "drydock.deploy-lock";

/// `drydock-deploy-lock-<target>`: one per target on an engine.
pub fn name(target: &str) -> String {
    format!("drydock-deploy-lock-{target}")
}

/// The holder as labels (`drydock.deploy-lock.user=alice`, …); empty fields are left out.
pub fn labels(holder: &Holder) -> Vec<(String, String)> {
    let h = holder;
    [
        ("user", h.who.user.clone()),
        ("git", h.who.git.clone()),
        ("machine", h.who.machine.clone()),
        ("pid", h.pid.to_string()),
        ("since", h.since.clone()),
        ("action", h.action.clone()),
        ("tag", h.tag.clone()),
        ("engine", h.engine.clone()),
        ("message", h.message.clone()),
        ("record", h.record.clone()),
        ("boot", h.boot.clone()),
        ("pidns", h.pidns.clone()),
        ("started", h.started.to_string()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (format!("{LABEL}.{k}"), v))
    .collect()
}

/// The holder the labels of a lock object name (missing fields empty, numbers 0).
pub fn holder_of(labels: &BTreeMap<String, String>) -> Holder {
    let get = |k: &str| labels.get(&format!("{LABEL}.{k}")).cloned().unwrap_or_default();
    Holder {
        who: Who {
            user: get("user"),
            git: get("git"),
            machine: get("machine"),
        },
        pid: get("pid").parse().unwrap_or(0),
        since: get("since"),
        action: get("action"),
        tag: get("tag"),
        engine: get("engine"),
        message: get("message"),
        record: get("record"),
        boot: get("boot"),
        pidns: get("pidns"),
        started: get("started").parse().unwrap_or(0),
    }
}

/// What the lock is on the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// A never-started container (a compose target).
    Container,
    /// A Swarm config (a Swarm stack: one lock for the whole cluster).
    SwarmConfig,
}

impl Object {
    pub fn for_target(swarm: bool) -> Object {
        if swarm { Object::SwarmConfig } else { Object::Container }
    }

    fn noun(self) -> &'static str {
        match self {
            Object::Container => "container",
            Object::SwarmConfig => "config",
        }
    }
}

/// Creates the lock object: fails with a name conflict while another holds it. A Swarm config's content is the
/// file `content` (the holder's JSON; a config cannot be empty), read by the docker CLI here.
pub fn create_cmd(object: Object, target: &str, holder: &Holder, content: &Path) -> Cmd {
    let sh = shell();
    let name = name(target);
    let labels: Vec<String> = labels(holder)
        .into_iter()
        .flat_map(|(k, v)| ["--label".to_string(), format!("{k}={v}")])
        .collect();
    match object {
        Object::Container => Cmd::from(cmd!(
            sh,
            "docker container create --name {name} --pull never --network none {labels...} {IMAGE} deploy-lock"
        )),
        Object::SwarmConfig => Cmd::from(cmd!(sh, "docker config create {labels...} {name} {content}")),
    }
}

/// The lock object's id and labels, one line: `<id> {json labels}`.
pub fn inspect_cmd(object: Object, target: &str) -> Cmd {
    let sh = shell();
    let name = name(target);
    let noun = object.noun();
    let format = match object {
        Object::Container => "{{.Id}} {{json .Config.Labels}}",
        Object::SwarmConfig => "{{.ID}} {{json .Spec.Labels}}",
    };
    Cmd::from(cmd!(sh, "docker {noun} inspect --format {format} {name}"))
}

/// Removes the lock object by its id (never by name: that could be a lock another took meanwhile).
pub fn remove_cmd(object: Object, id: &str) -> Cmd {
    let sh = shell();
    let noun = object.noun();
    Cmd::from(cmd!(sh, "docker {noun} rm {id}"))
}

/// Imports the empty lock image from a tar archive on stdin (see the module docs).
pub fn import_cmd() -> Cmd {
    let sh = shell();
    let label = format!("LABEL {LABEL}=image");
    Cmd::from(cmd!(sh, "docker image import --change {label} - {IMAGE}"))
}

/// The answer of `inspect_cmd`: the object's id and its holder.
pub fn parse_inspect(stdout: &str) -> Result<(String, Holder)> {
    let line = stdout.trim();
    let (id, labels) = line
        .split_once(' ')
        .with_context(|| format!("unexpected answer about the deploy lock: {line:?}"))?;
    let labels: BTreeMap<String, String> = serde_json::from_str::<Option<BTreeMap<String, String>>>(labels)
        .with_context(|| format!("the deploy lock's labels are not JSON: {labels:?}"))?
        .unwrap_or_default();
    Ok((id.to_string(), holder_of(&labels)))
}

/// Why `create_cmd` failed, from its error text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateFailure {
    /// The name is taken: another holds the lock.
    Taken,
    /// The lock image is not on the engine yet.
    NoImage,
    /// Anything else (the engine does not answer, ...).
    Other,
}

pub fn create_failure(error: &str) -> CreateFailure {
    // A container's name conflict, a Swarm config's (`rpc error: code = AlreadyExists`).
    if error.contains("is already in use by container") || error.contains("AlreadyExists") {
        CreateFailure::Taken
    } else if error.contains("No such image") {
        CreateFailure::NoImage
    } else {
        CreateFailure::Other
    }
}

/// A removal that found nothing: the object was already gone (released, or replaced by a `--force`).
pub fn already_gone(error: &str) -> bool {
    ["No such container", "No such config", "code = NotFound"]
        .iter()
        .any(|k| error.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder() -> Holder {
        Holder {
            who: Who {
                user: "alice".into(),
                git: "Alice <a@example.com>".into(),
                machine: "laptop-a".into(),
            },
            pid: 42,
            since: "2026-01-01T10:00:00Z".into(),
            action: "prod-deploy".into(),
            tag: "sha-1".into(),
            engine: "ssh://deploy@web1:22".into(),
            message: "hotfix, see #12".into(),
            record: "/w/.drydock/lock-drydock-prod@web".into(),
            boot: "b-1".into(),
            pidns: "pid:[1]".into(),
            started: 777,
        }
    }

    #[test]
    fn the_lock_object_is_created_by_name_with_the_holder_as_labels_and_removed_by_id() {
        let content = Path::new("/tmp/holder.json");
        let create = create_cmd(Object::Container, "drydock-prod", &holder(), content);
        let argv = create.argv();
        assert_eq!(
            argv[..9],
            [
                "docker",
                "container",
                "create",
                "--name",
                "drydock-deploy-lock-drydock-prod",
                "--pull",
                "never",
                "--network",
                "none"
            ]
        );
        assert_eq!(argv[argv.len() - 2..], ["drydock/deploy-lock:1", "deploy-lock"]);
        for label in [
            "drydock.deploy-lock.user=alice",
            "drydock.deploy-lock.git=Alice <a@example.com>",
            "drydock.deploy-lock.machine=laptop-a",
            "drydock.deploy-lock.pid=42",
            "drydock.deploy-lock.since=2026-01-01T10:00:00Z",
            "drydock.deploy-lock.action=prod-deploy",
            "drydock.deploy-lock.tag=sha-1",
            "drydock.deploy-lock.message=hotfix, see #12",
        ] {
            let at = argv
                .iter()
                .position(|a| *a == label)
                .unwrap_or_else(|| panic!("{label} in {argv:?}"));
            assert_eq!(argv[at - 1], "--label");
        }
        let no_message = Holder {
            message: String::new(),
            ..holder()
        };
        assert!(
            !create_cmd(Object::Container, "t", &no_message, content)
                .args
                .iter()
                .any(|a| a.contains(".message="))
        );
        assert_eq!(
            inspect_cmd(Object::Container, "drydock-prod").argv(),
            [
                "docker",
                "container",
                "inspect",
                "--format",
                "{{.Id}} {{json .Config.Labels}}",
                "drydock-deploy-lock-drydock-prod"
            ]
        );
        assert_eq!(
            remove_cmd(Object::Container, "abc123").argv(),
            ["docker", "container", "rm", "abc123"]
        );
        assert_eq!(
            import_cmd().argv(),
            [
                "docker",
                "image",
                "import",
                "--change",
                "LABEL drydock.deploy-lock=image",
                "-",
                "drydock/deploy-lock:1"
            ]
        );
    }

    #[test]
    fn a_swarm_stack_s_lock_is_a_swarm_config_of_the_cluster() {
        assert_eq!(Object::for_target(true), Object::SwarmConfig);
        assert_eq!(Object::for_target(false), Object::Container);
        let create = create_cmd(
            Object::SwarmConfig,
            "drydock-prod-swarm",
            &holder(),
            Path::new("/tmp/holder.json"),
        );
        let argv = create.argv();
        assert_eq!(argv[..3], ["docker", "config", "create"]);
        assert_eq!(
            argv[argv.len() - 2..],
            ["drydock-deploy-lock-drydock-prod-swarm", "/tmp/holder.json"]
        );
        assert!(argv.contains(&"drydock.deploy-lock.machine=laptop-a"));
        assert_eq!(
            inspect_cmd(Object::SwarmConfig, "drydock-prod-swarm").argv(),
            [
                "docker",
                "config",
                "inspect",
                "--format",
                "{{.ID}} {{json .Spec.Labels}}",
                "drydock-deploy-lock-drydock-prod-swarm"
            ]
        );
        assert_eq!(
            remove_cmd(Object::SwarmConfig, "k2j4").argv(),
            ["docker", "config", "rm", "k2j4"]
        );
        let taken = "Error response from daemon: rpc error: code = AlreadyExists desc = config drydock-deploy-lock-x already exists";
        assert_eq!(create_failure(taken), CreateFailure::Taken);
        assert!(already_gone(
            "Error response from daemon: rpc error: code = NotFound desc = config k2j4 not found"
        ));
        assert!(!already_gone("exec: \"ssh\": executable file not found in $PATH"));
    }

    #[test]
    fn labels_read_back_into_the_same_holder() {
        let h = holder();
        let labels: BTreeMap<String, String> = labels(&h).into_iter().collect();
        let json = serde_json::to_string(&labels).unwrap();
        let (id, back) = parse_inspect(&format!("0123abcd {json}\n")).unwrap();
        assert_eq!((id.as_str(), back), ("0123abcd", h));
        // Labels of something else (or none): an empty holder, not an error.
        let (_, empty) = parse_inspect("0123abcd null").unwrap();
        assert_eq!(empty.pid, 0);
        assert!(parse_inspect("garbage").is_err());
    }

    #[test]
    fn create_failures_are_told_apart_by_the_engine_s_words() {
        let taken = "Error response from daemon: Conflict. The container name \"/drydock-deploy-lock-x\" is already in use by container \"56a6\". You have to remove (or rename) that container to be able to reuse that name.";
        assert_eq!(create_failure(taken), CreateFailure::Taken);
        assert_eq!(
            create_failure("Error response from daemon: No such image: drydock/deploy-lock:1"),
            CreateFailure::NoImage
        );
        assert_eq!(
            create_failure("Cannot connect to the Docker daemon at unix:///var/run/docker.sock"),
            CreateFailure::Other
        );
        assert!(already_gone("Error response from daemon: No such container: 56a6"));
    }
}
