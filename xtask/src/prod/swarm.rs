//! Deploying the production compose files to Docker Swarm: `docker compose config` rendered for
//! `docker stack deploy` (start-first updates, automatic rollback, API tasks by DNS round robin), also to a
//! remote manager (`DOCKER_HOST=ssh://...`): bind-mounted files travel as configs/secrets, the databases
//! stay on the node labelled `drydock.db=true`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::cmd::{Cmd, cmd, shell};
use crate::context::Ctx;
use crate::prod::compose::prod_compose;
use crate::prod::secrets::check_secrets;
use crate::prod::state::DeployState;
use crate::prod::tags::{image, require_images};

/// The node label that marks the swarm node keeping the databases (`docker node update --label-add
/// drydock.db=true <node>`): their named volumes live on that node.
pub const DB_NODE_LABEL: &str = "drydock.db";

/// Deploys the prod compose files as the stack `<project>-swarm` with the API at `tag`, and waits for the
/// rolling update to finish (or for Swarm to roll it back, which is then an error).
pub fn swarm_deploy(ctx: &Ctx, tag: &str, timeout: Duration, action: &str) -> Result<()> {
    let stack = crate::prod::stack_name(ctx, true)?;
    if !ctx.run.dry_run {
        let sh = shell();
        let state = "{{.Swarm.LocalNodeState}}";
        let node = ctx
            .run
            .probe(&Cmd::from(cmd!(sh, "docker info --format {state}")))
            .map(|p| p.stdout.trim().to_string())
            .unwrap_or_default();
        if node != "active" {
            bail!(
                "this Docker engine is not part of a swarm (state: {node:?})\n  fix: run it against a manager (DOCKER_HOST=ssh://user@manager), or make a single-node swarm: docker swarm init --advertise-addr 127.0.0.1 && docker node update --label-add {DB_NODE_LABEL}=true $(docker info --format '{{{{.Swarm.NodeID}}}}')"
            );
        }
        check_secrets(ctx, false)?;
        // The databases keep their data in named volumes, which live on one node: they are pinned to the
        // one node labelled for them (see `swarm_stack`), and without such a node they would never start.
        let (label, hostname) = (format!("node.label={DB_NODE_LABEL}=true"), "{{.Hostname}}");
        let labelled = ctx.run.read(&Cmd::from(cmd!(
            sh,
            "docker node ls --filter {label} --format {hostname}"
        )))?;
        let labelled: Vec<&str> = labelled.split_whitespace().collect();
        if labelled.len() != 1 {
            bail!(
                "the databases need exactly one swarm node labelled {DB_NODE_LABEL}=true (their volumes live there); found {}: {labelled:?}\n  fix: docker node update --label-add {DB_NODE_LABEL}=true <node>   (`docker node ls` lists the nodes; `--label-rm` takes it off the others)",
                labelled.len()
            );
        }
    }
    let mut state = DeployState::load(ctx, &stack)?.unwrap_or_default();
    let image_tag = if state.image_tag.is_empty() {
        tag.to_string()
    } else {
        state.image_tag.clone()
    };
    require_images(
        ctx,
        &[
            image(ctx, "api", tag),
            image(ctx, "frontend", &image_tag),
            image(ctx, "proxy", &image_tag),
        ],
    )?;
    let compose = prod_compose(ctx, &image_tag, tag)?;
    let sh = shell();
    let rendered = ctx.run.read(&compose.cmd(cmd!(sh, "config --format json")))?;
    let publish = ctx.vars.prod_bind_public;
    let file = ctx.root.join("target/drydock/swarm").join(format!("{stack}.json"));
    if !ctx.run.dry_run {
        let config: Value = serde_json::from_str(&rendered).context("parsing `docker compose config --format json`")?;
        let services = &ctx.config.services;
        let databases = [
            services.postgres.as_str(),
            services.redis.as_str(),
            services.mongo.as_str(),
        ];
        let stack_file = swarm_stack(config, publish, &services.api, &databases)?;
        std::fs::create_dir_all(file.parent().expect("has a parent"))?;
        std::fs::write(&file, serde_json::to_string_pretty(&stack_file)?)
            .with_context(|| format!("writing {}", file.display()))?;
        if !publish {
            ctx.say(
                "swarm: ports are not published (Swarm's ingress binds every interface; set DRYDOCK_PROD_BIND=0.0.0.0 on a server to publish 80/443-style ports)",
            );
        }
    }
    let service = format!("{stack}_{}", ctx.config.services.api);
    let before = update_started_at(ctx, &service);
    ctx.say(&format!(
        "deploying stack {stack} with API {tag} (start-first, automatic rollback)"
    ));
    let sh = shell();
    ctx.run.run(&Cmd::from(cmd!(
        sh,
        "docker stack deploy --prune --resolve-image never --compose-file {file} {stack}"
    )))?;
    let outcome = wait_swarm(
        ctx,
        &stack,
        &service,
        &image(ctx, "api", tag),
        before.as_deref(),
        timeout,
    );
    match outcome {
        Ok(()) => {
            state.deployed(ctx, &stack, action, &image_tag, tag)?;
            ctx.say(&format!("stack {stack}: API {tag} serves all traffic"));
            Ok(())
        }
        Err(why) => {
            state.record(action, tag, &format!("failed: {why:#}"));
            state.save(ctx, &stack)?;
            Err(why)
        }
    }
}

/// `UpdateStatus.StartedAt` of a service (None before its first update or when it does not exist).
fn update_started_at(ctx: &Ctx, service: &str) -> Option<String> {
    let sh = shell();
    let p = ctx
        .run
        .probe(&Cmd::from(cmd!(sh, "docker service inspect {service}")))?;
    let v: Value = serde_json::from_str(p.stdout.trim()).ok()?;
    v.pointer("/0/UpdateStatus/StartedAt")
        .and_then(Value::as_str)
        .map(String::from)
}

fn wait_swarm(
    ctx: &Ctx,
    stack: &str,
    service: &str,
    want_image: &str,
    before: Option<&str>,
    timeout: Duration,
) -> Result<()> {
    if ctx.run.dry_run {
        return Ok(());
    }
    let sh = shell();
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let p = ctx.run.probe(&Cmd::from(cmd!(sh, "docker service inspect {service}")));
        let v: Value = p
            .and_then(|p| serde_json::from_str(p.stdout.trim()).ok())
            .unwrap_or(Value::Null);
        let svc = v.get(0).cloned().unwrap_or(Value::Null);
        let spec_image = svc
            .pointer("/Spec/TaskTemplate/ContainerSpec/Image")
            .and_then(Value::as_str)
            .unwrap_or("");
        let replicas = svc
            .pointer("/Spec/Mode/Replicated/Replicas")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let update_state = svc.pointer("/UpdateStatus/State").and_then(Value::as_str).unwrap_or("");
        let update_started = svc.pointer("/UpdateStatus/StartedAt").and_then(Value::as_str);
        let fresh_update = update_started.is_some() && update_started != before;
        let message = svc
            .pointer("/UpdateStatus/Message")
            .and_then(Value::as_str)
            .unwrap_or("");
        if fresh_update && update_state.starts_with("rollback") && update_state != "rollback_started" {
            bail!(
                "Swarm rolled the API back ({update_state}: {message})\n  the previous image kept serving; fix: `docker service ps --no-trunc {service}` shows why the new tasks failed"
            );
        }
        if fresh_update && update_state == "paused" {
            bail!("the Swarm update of {service} is paused: {message}\n  fix: docker service ps --no-trunc {service}");
        }
        let running = running_tasks(ctx, service, want_image);
        let api_done =
            spec_image.starts_with(want_image) && running >= replicas && (!fresh_update || update_state == "completed");
        // The whole stack, not only the API: a service whose tasks are rejected (a missing image on a node, a
        // mount the node cannot make) must be named, or the deploy waits for the API alone and says nothing.
        let lagging = if api_done {
            lagging_services(ctx, stack)
        } else {
            Vec::new()
        };
        if api_done && lagging.is_empty() {
            return Ok(());
        }
        let line = format!(
            "swarm: {running}/{replicas} API task(s) on {want_image}{}{}",
            if update_state.is_empty() {
                String::new()
            } else {
                format!(" (update {update_state})")
            },
            if lagging.is_empty() {
                String::new()
            } else {
                format!("; not yet running: {}", lagging.join(", "))
            }
        );
        if line != last {
            ctx.say(&line);
            last = line.clone();
        }
        if started.elapsed() > timeout {
            let why: Vec<String> = lagging
                .iter()
                .filter_map(|l| l.split_whitespace().next())
                .filter_map(|name| last_task_error(ctx, &format!("{stack}_{name}")).map(|e| format!("\n  {name}: {e}")))
                .collect();
            bail!(
                "the stack did not converge within {} s ({line}){}\n  fix: docker stack ps {stack} --no-trunc",
                timeout.as_secs(),
                why.concat()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Tasks of `service` running `image` (healthy: Swarm reports Running only after the healthcheck passed).
fn running_tasks(ctx: &Ctx, service: &str, image: &str) -> u64 {
    let sh = shell();
    let format = "{{.Image}} {{.CurrentState}}";
    let p = ctx.run.probe(&Cmd::from(cmd!(
        sh,
        "docker service ps {service} --filter desired-state=running --format {format}"
    )));
    p.map(|p| {
        p.stdout
            .lines()
            .filter(|l| l.starts_with(image) || l.starts_with(image.split('/').next_back().unwrap_or(image)))
            .filter(|l| l.contains(" Running"))
            .count() as u64
    })
    .unwrap_or(0)
}

/// The long-running services of the stack (without the stack prefix) that do not have all their replicas
/// running, as `name have/want`; the one-shot `migrate` does not count. A stack that cannot be listed is
/// reported as such (never as converged).
fn lagging_services(ctx: &Ctx, stack: &str) -> Vec<String> {
    let sh = shell();
    let format = "{{.Name}} {{.Replicas}}";
    let Some(p) = ctx
        .run
        .probe(&Cmd::from(cmd!(sh, "docker stack services {stack} --format {format}")))
    else {
        return vec!["(docker stack services failed)".into()];
    };
    if !p.success || p.stdout.trim().is_empty() {
        return vec![format!("(docker stack services {stack}: {})", p.stderr.trim())];
    }
    let prefix = format!("{stack}_");
    p.stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let name = name.strip_prefix(&prefix).unwrap_or(name);
            let replicas = words.next().unwrap_or("0/1");
            let (have, want) = replicas.split_once('/').unwrap_or(("0", "1"));
            (name != "migrate" && have != want).then(|| format!("{name} {have}/{want}"))
        })
        .collect()
}

/// The newest error Swarm recorded for a task of `service` (e.g. "No such image", "invalid mount config").
fn last_task_error(ctx: &Ctx, service: &str) -> Option<String> {
    let sh = shell();
    let format = "{{.Node}}: {{.CurrentState}}: {{.Error}}";
    let p = ctx.run.probe(&Cmd::from(cmd!(
        sh,
        "docker service ps {service} --no-trunc --format {format}"
    )))?;
    p.stdout
        .lines()
        .find(|l| !l.trim_end().ends_with(':'))
        .map(|l| l.trim().to_string())
}

/// Turns `docker compose config --format json` into a `docker stack deploy` file (Compose file format 3.9):
/// removes what Swarm does not support (build, depends_on, restart, security_opt, loopback ports, pids
/// limits, shm_size), lets the stack name networks, volumes and secrets, makes the networks overlays, serves
/// the API by DNS round robin (the proxy and Prometheus see each healthy task) and points the proxy at it.
///
/// Made for engines that are not this machine: the operator's files that services bind-mount (read-only)
/// become file-based Swarm configs (secrets for `*.key` files), which `docker stack deploy` reads here and
/// sends to the manager; the `databases` are pinned to the node labelled `DB_NODE_LABEL=true` (their named
/// volumes live there) and the `api` replicas are spread over the nodes.
pub fn swarm_stack(mut config: Value, publish: bool, api: &str, databases: &[&str]) -> Result<Value> {
    let obj = config.as_object_mut().context("compose config is not an object")?;
    obj.retain(|k, _| !k.starts_with("x-") && k != "name");
    let mut out = Map::new();
    out.insert("version".into(), json!("3.9"));
    let mut used_secrets: Vec<String> = Vec::new();
    let mut file_secrets = Map::new();
    let mut file_configs = Map::new();

    let mut services = obj.remove("services").unwrap_or(json!({}));
    for (name, svc) in services.as_object_mut().context("services is not an object")? {
        let s = svc.as_object_mut().context("a service is not an object")?;
        for key in [
            "build",
            "depends_on",
            "restart",
            "security_opt",
            "profiles",
            "pull_policy",
            "shm_size",
            "develop",
        ] {
            s.remove(key);
        }
        s.retain(|_, v| !v.is_null());
        let ports = s.remove("ports");
        if let Some(ports) = ports.filter(|_| publish) {
            let ports: Vec<Value> = ports
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    json!({
                        "target": p.get("target").cloned().unwrap_or(Value::Null),
                        "published": p.get("published").and_then(|v| v.as_str().and_then(|s| s.parse::<u64>().ok()).or(v.as_u64())),
                        "protocol": p.get("protocol").cloned().unwrap_or(json!("tcp")),
                        "mode": "host",
                    })
                })
                .collect();
            s.insert("ports".into(), json!(ports));
        }
        // `docker stack deploy` ignores the `tmpfs` key: the same mounts as long-syntax tmpfs volumes.
        if let Some(Value::Array(paths)) = s.remove("tmpfs") {
            let mounts: Vec<Value> = paths
                .iter()
                .filter_map(Value::as_str)
                .map(|p| json!({"type": "tmpfs", "target": p.split(':').next().unwrap_or(p)}))
                .collect();
            let vols = s.entry("volumes").or_insert(json!([]));
            if let Some(v) = vols.as_array_mut() {
                v.extend(mounts);
            }
        }
        // Bind mounts name paths of this machine, which another node does not have.
        if let Some(vols) = s.get_mut("volumes").and_then(Value::as_array_mut) {
            let (binds, kept): (Vec<Value>, Vec<Value>) = std::mem::take(vols)
                .into_iter()
                .partition(|v| v.get("type").and_then(Value::as_str) == Some("bind"));
            *vols = kept;
            let mut configs = Vec::new();
            let mut secrets = Vec::new();
            for bind in &binds {
                for (key, target, file, secret) in bind_files(name, bind)? {
                    let (list, top) = if secret {
                        (&mut secrets, &mut file_secrets)
                    } else {
                        (&mut configs, &mut file_configs)
                    };
                    list.push(json!({"source": key, "target": target}));
                    top.insert(key, json!({ "file": file }));
                }
            }
            for (kind, list) in [("configs", configs), ("secrets", secrets)] {
                if let Some(v) = s.entry(kind).or_insert(json!([])).as_array_mut() {
                    v.extend(list);
                }
            }
            s.retain(|k, v| !(["volumes", "configs", "secrets"].contains(&k.as_str()) && v == &json!([])));
        }
        if let Some(vols) = s.get_mut("volumes").and_then(Value::as_array_mut) {
            for v in vols.iter_mut() {
                if let Some(o) = v.as_object_mut() {
                    o.remove("bind");
                    if o.get("volume")
                        .is_some_and(|x| x.as_object().is_some_and(Map::is_empty))
                    {
                        o.remove("volume");
                    }
                }
            }
        }
        if let Some(deploy) = s.get_mut("deploy").and_then(Value::as_object_mut) {
            for kind in ["limits", "reservations"] {
                if let Some(r) = deploy
                    .get_mut("resources")
                    .and_then(|r| r.get_mut(kind))
                    .and_then(Value::as_object_mut)
                {
                    r.remove("pids");
                    if let Some(c) = r.get("cpus").cloned().filter(|c| !c.is_string()) {
                        r.insert("cpus".into(), json!(c.to_string()));
                    }
                }
            }
            if deploy
                .get("placement")
                .is_some_and(|p| p.as_object().is_some_and(Map::is_empty))
            {
                deploy.remove("placement");
            }
        }
        // DNS round robin for every service: each healthy task is its own DNS record (the proxy and
        // Prometheus see every API task), and no IPVS virtual IP is needed (kernels without ip_vs, like
        // this project's CI machines, cannot route to VIPs). Published ports then use host mode.
        let deploy = s.entry("deploy").or_insert(json!({}));
        deploy["endpoint_mode"] = json!("dnsrr");
        if databases.contains(&name.as_str()) {
            let constraint = json!(format!("node.labels.{DB_NODE_LABEL}==true"));
            match deploy["placement"]["constraints"].as_array_mut() {
                Some(c) => c.push(constraint),
                None => deploy["placement"]["constraints"] = json!([constraint]),
            }
        }
        if name == api {
            // Even over the nodes (a preference, not a limit: a start-first update still fits on one node).
            deploy["placement"]["preferences"] = json!([{"spread": "node.id"}]);
        }
        let proxy_env = if name == "proxy" {
            s.get_mut("environment").and_then(Value::as_object_mut)
        } else {
            None
        };
        if let Some(env) = proxy_env {
            env.insert("API_UPSTREAM".into(), json!("api:8000"));
        }
        // Swarm names secret files relative to /run/secrets/.
        if let Some(secrets) = s.get_mut("secrets").and_then(Value::as_array_mut) {
            for secret in secrets.iter_mut() {
                let target = secret.get("target").and_then(Value::as_str).map(String::from);
                if let Some(rest) = target.as_deref().and_then(|t| t.strip_prefix("/run/secrets/")) {
                    secret["target"] = json!(rest);
                }
            }
        }
        if let Some(secrets) = s.get("secrets").and_then(Value::as_array) {
            used_secrets.extend(
                secrets
                    .iter()
                    .filter_map(|x| x.get("source").and_then(Value::as_str))
                    .map(String::from),
            );
        }
    }
    out.insert("services".into(), services);

    if let Some(Value::Object(nets)) = obj.remove("networks") {
        let mut n = Map::new();
        for (name, net) in nets {
            let mut def = Map::new();
            def.insert("driver".into(), json!("overlay"));
            if net.get("internal").and_then(Value::as_bool) == Some(true) {
                def.insert("internal".into(), json!(true));
            } else {
                // Attachable: a loopback relay (or a debugging container) can join it.
                def.insert("attachable".into(), json!(true));
            }
            n.insert(name, Value::Object(def));
        }
        out.insert("networks".into(), Value::Object(n));
    }
    if let Some(Value::Object(vols)) = obj.remove("volumes") {
        out.insert(
            "volumes".into(),
            Value::Object(vols.into_iter().map(|(k, _)| (k, json!({}))).collect()),
        );
    }
    if let Some(Value::Object(secrets)) = obj.remove("secrets") {
        let kept: Map<String, Value> = secrets
            .into_iter()
            .filter(|(k, _)| used_secrets.contains(k))
            .map(|(k, v)| (k, json!({ "file": v.get("file").cloned().unwrap_or(Value::Null) })))
            .collect();
        out.insert("secrets".into(), Value::Object(kept));
    }
    if !file_secrets.is_empty() {
        let secrets = out.entry("secrets").or_insert(json!({}));
        if let Some(m) = secrets.as_object_mut() {
            m.extend(file_secrets);
        }
    }
    if !file_configs.is_empty() {
        out.insert("configs".into(), Value::Object(file_configs));
    }
    Ok(Value::Object(out))
}

/// Swarm's size limit for one config or secret (swarmkit's `MaxConfigSize` / `MaxSecretSize`).
const SWARM_FILE_MAX: u64 = 500 * 1024;
/// How many files one bind-mounted directory may bring (more is not what configs are for).
const SWARM_FILES_PER_MOUNT: usize = 64;

/// The files a read-only bind mount of `service` shows, as Swarm configs/secrets: (name, target in the
/// container, file on this machine, is a secret). A directory gives its regular files (recursively); a
/// missing source that compose would create gives nothing (like the empty directory compose would make).
/// Names carry a hash of the content: Swarm configs cannot change, a new content is a new config (and a
/// rolling update), never a refused deploy.
fn bind_files(service: &str, bind: &Value) -> Result<Vec<(String, String, String, bool)>> {
    use sha2::{Digest, Sha256};
    let source = bind.get("source").and_then(Value::as_str).unwrap_or("");
    let target = bind.get("target").and_then(Value::as_str).unwrap_or("");
    if bind.get("read_only").and_then(Value::as_bool) != Some(true) {
        bail!(
            "service {service} bind-mounts {source} at {target} writable: Swarm runs it on nodes that do not have this machine's files\n  fix: use a named volume for data it writes (read-only files travel as Swarm configs)"
        );
    }
    let root = std::path::Path::new(source);
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    match std::fs::metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let created = bind.pointer("/bind/create_host_path").and_then(Value::as_bool) == Some(true);
            if !created {
                bail!("service {service} bind-mounts {source}, which does not exist");
            }
        }
        Err(e) => return Err(e).with_context(|| format!("reading {source} (bind-mounted by {service})")),
        Ok(m) if m.is_file() => files.push((target.to_string(), root.to_path_buf())),
        Ok(_) => {
            let mut dirs = vec![root.to_path_buf()];
            while let Some(dir) = dirs.pop() {
                let mut entries: Vec<_> = std::fs::read_dir(&dir)
                    .with_context(|| format!("reading {} (bind-mounted by {service})", dir.display()))?
                    .collect::<std::io::Result<_>>()?;
                entries.sort_by_key(|e| e.file_name());
                for entry in entries {
                    let path = entry.path();
                    let meta = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
                    if meta.is_dir() {
                        dirs.push(path);
                    } else if meta.is_file() {
                        let rel = path.strip_prefix(root).unwrap_or(&path).display().to_string();
                        files.push((format!("{}/{rel}", target.trim_end_matches('/')), path));
                    }
                }
            }
        }
    }
    if files.len() > SWARM_FILES_PER_MOUNT {
        bail!(
            "{source} (bind-mounted by {service}) has {} files: more than the {SWARM_FILES_PER_MOUNT} this deploy sends as Swarm configs\n  fix: mount only the files the service reads, or put them in its image",
            files.len()
        );
    }
    files
        .into_iter()
        .map(|(target, path)| {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            if bytes.len() as u64 > SWARM_FILE_MAX {
                bail!(
                    "{} ({} bytes, bind-mounted by {service}) is larger than a Swarm config may be (500 KiB)\n  fix: put it in the image or a volume",
                    path.display(),
                    bytes.len()
                );
            }
            let file_name = target.rsplit('/').next().unwrap_or(&target);
            let clean = |t: &str, n: usize| -> String {
                t.chars()
                    .map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' })
                    .take(n)
                    .collect()
            };
            let hash: String = Sha256::digest(&bytes).iter().take(6).map(|b| format!("{b:02x}")).collect();
            let key = format!("{}-{}-{hash}", clean(service, 12), clean(file_name, 16));
            let secret = file_name.ends_with(".key");
            Ok((key, target, path.display().to_string(), secret))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "name": "drydock-prod",
            "x-logging": {},
            "services": {
                "api": {
                    "build": {"context": "."}, "depends_on": {"postgres": {}}, "restart": "unless-stopped",
                    "security_opt": ["no-new-privileges:true"], "entrypoint": null, "image": "drydock/api:sha-1",
                    "tmpfs": ["/tmp"],
                    "deploy": {"replicas": 2, "resources": {"limits": {"cpus": 1, "memory": "268435456", "pids": 200}}, "placement": {}},
                    "secrets": [{"source": "postgres_password", "target": "/run/secrets/postgres_password"}]
                },
                "proxy": {
                    "image": "drydock/proxy:sha-1",
                    "environment": {"API_UPSTREAM": "api-live:8000"},
                    "ports": [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 8080, "published": "9080", "protocol": "tcp"}],
                    "volumes": [{"type": "bind", "source": "/x/tls", "target": "/etc/nginx/tls", "read_only": true, "bind": {"create_host_path": true}}]
                }
            },
            "networks": {"backend": {"name": "drydock-prod_backend", "ipam": {}, "internal": true}, "frontend": {"name": "drydock-prod_frontend", "ipam": {}}},
            "volumes": {"postgres-data": {"name": "drydock-prod_postgres-data"}},
            "secrets": {"ca_bundle": {"name": "x", "file": "/etc/ssl/certs/ca-certificates.crt"}, "postgres_password": {"name": "y", "file": "/s/postgres_password.txt"}}
        })
    }

    #[test]
    fn swarm_file_drops_what_swarm_cannot_do() {
        let out = swarm_stack(sample(), false, "api", &["postgres", "redis"]).unwrap();
        assert_eq!(out["version"], "3.9");
        assert!(out.get("name").is_none() && out.get("x-logging").is_none());
        let api = &out["services"]["api"];
        for gone in ["build", "depends_on", "restart", "security_opt", "entrypoint"] {
            assert!(api.get(gone).is_none(), "{gone} should be removed");
        }
        assert_eq!(api["deploy"]["endpoint_mode"], "dnsrr");
        assert_eq!(api["deploy"]["resources"]["limits"]["cpus"], "1");
        assert!(api["deploy"]["resources"]["limits"].get("pids").is_none());
        assert_eq!(
            api["deploy"]["placement"],
            json!({"preferences": [{"spread": "node.id"}]}),
            "the empty placement is dropped; the API gets its spread"
        );
        let proxy = &out["services"]["proxy"];
        assert!(
            proxy.get("ports").is_none(),
            "loopback ports cannot be published by Swarm"
        );
        assert_eq!(proxy["environment"]["API_UPSTREAM"], "api:8000");
        assert_eq!(proxy["deploy"]["endpoint_mode"], "dnsrr");
        assert!(
            proxy.get("volumes").is_none() && proxy.get("configs").is_none(),
            "a missing bind source compose would create (an empty TLS dir) mounts nothing: {proxy}"
        );
        assert_eq!(
            out["networks"]["backend"],
            json!({"driver": "overlay", "internal": true})
        );
        assert_eq!(
            out["networks"]["frontend"],
            json!({"driver": "overlay", "attachable": true})
        );
        assert_eq!(out["volumes"]["postgres-data"], json!({}));
        assert!(out["secrets"].get("ca_bundle").is_none(), "only secrets a service uses");
        assert_eq!(
            out["secrets"]["postgres_password"],
            json!({"file": "/s/postgres_password.txt"})
        );
    }

    #[test]
    fn swarm_file_publishes_on_request() {
        let out = swarm_stack(sample(), true, "api", &["postgres", "redis"]).unwrap();
        assert_eq!(
            out["services"]["proxy"]["ports"][0],
            json!({"target": 8080, "published": 9080, "protocol": "tcp", "mode": "host"})
        );
    }

    #[test]
    fn swarm_file_pins_databases_and_spreads_the_api() {
        let mut config = sample();
        config["services"]["postgres"] = json!({"image": "drydock/postgres:17", "deploy": {"placement": {"constraints": ["node.platform.os==linux"]}}});
        config["services"]["redis"] = json!({"image": "drydock/redis:8"});
        let out = swarm_stack(config, false, "api", &["postgres", "redis"]).unwrap();
        assert_eq!(
            out["services"]["postgres"]["deploy"]["placement"]["constraints"],
            json!(["node.platform.os==linux", "node.labels.drydock.db==true"])
        );
        assert_eq!(
            out["services"]["redis"]["deploy"]["placement"]["constraints"],
            json!(["node.labels.drydock.db==true"])
        );
        assert_eq!(
            out["services"]["api"]["deploy"]["placement"],
            json!({"preferences": [{"spread": "node.id"}]})
        );
        assert!(out["services"]["proxy"]["deploy"].get("placement").is_none());
    }

    #[test]
    fn swarm_file_sends_bind_mounted_files_as_configs_and_keys_as_secrets() {
        let dir = std::env::temp_dir().join(format!("drydock-swarm-stack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tls/sub")).unwrap();
        std::fs::write(dir.join("tls/tls.crt"), "CERT").unwrap();
        std::fs::write(dir.join("tls/tls.key"), "KEY").unwrap();
        std::fs::write(dir.join("tls/sub/chain.pem"), "CHAIN").unwrap();
        std::fs::write(dir.join("app.conf"), "conf").unwrap();
        let tls = dir.join("tls").display().to_string();
        let conf = dir.join("app.conf").display().to_string();
        let mut config = sample();
        config["services"]["proxy"]["volumes"] = json!([
            {"type": "bind", "source": tls, "target": "/etc/nginx/tls", "read_only": true, "bind": {"create_host_path": true}},
            {"type": "bind", "source": conf, "target": "/etc/app.conf", "read_only": true},
            {"type": "volume", "source": "cache", "target": "/cache", "volume": {}}
        ]);
        let out = swarm_stack(config.clone(), false, "api", &[]).unwrap();
        let proxy = &out["services"]["proxy"];
        assert_eq!(
            proxy["volumes"],
            json!([{"type": "volume", "source": "cache", "target": "/cache"}])
        );
        let targets = |kind: &str| -> Vec<(String, String)> {
            proxy[kind]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["source"].as_str().unwrap().to_string(),
                        c["target"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        let configs = targets("configs");
        let secrets = targets("secrets");
        let config_targets: Vec<&str> = configs.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            config_targets,
            [
                "/etc/nginx/tls/tls.crt",
                "/etc/nginx/tls/sub/chain.pem",
                "/etc/app.conf"
            ]
        );
        assert_eq!(secrets.len(), 1, "{secrets:?}");
        let (key_name, key_target) = &secrets[0];
        assert_eq!(key_target, "/etc/nginx/tls/tls.key");
        assert!(
            key_name.starts_with("proxy-tls.key-") && key_name.len() == "proxy-tls.key-".len() + 12,
            "{key_name}"
        );
        assert_eq!(
            out["secrets"][key_name.as_str()],
            json!({"file": dir.join("tls/tls.key").display().to_string()})
        );
        for (name, _) in &configs {
            assert!(out["configs"][name.as_str()]["file"].is_string(), "{name} has no file");
        }
        // Another content is another config (Swarm refuses to change one).
        let crt_before = configs[0].0.clone();
        std::fs::write(dir.join("tls/tls.crt"), "CERT2").unwrap();
        let again = swarm_stack(config.clone(), false, "api", &[]).unwrap();
        assert_ne!(again["services"]["proxy"]["configs"][0]["source"], json!(crt_before));

        // A writable bind mount cannot be carried to another node.
        config["services"]["proxy"]["volumes"] = json!([{"type": "bind", "source": conf, "target": "/data"}]);
        let err = swarm_stack(config.clone(), false, "api", &[]).unwrap_err();
        assert!(format!("{err:#}").contains("writable"), "{err:#}");
        // A missing source that compose would not create is an error too.
        config["services"]["proxy"]["volumes"] =
            json!([{"type": "bind", "source": "/nonexistent/x", "target": "/x", "read_only": true}]);
        assert!(swarm_stack(config, false, "api", &[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
