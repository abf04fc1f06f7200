//! Deploying the production compose files to Docker Swarm: `docker compose config` rendered for
//! `docker stack deploy` (start-first updates, automatic rollback, API tasks by DNS round robin).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::cmd::Cmd;
use crate::context::Ctx;
use crate::prod::compose::prod_compose;
use crate::prod::secrets::check_secrets;
use crate::prod::state::DeployState;
use crate::prod::tags::{image, require_images};

/// Deploys the prod compose files as the stack `<project>-swarm` with the API at `tag`, and waits for the
/// rolling update to finish (or for Swarm to roll it back, which is then an error).
pub fn swarm_deploy(ctx: &Ctx, tag: &str, timeout: Duration, action: &str) -> Result<()> {
    let stack = crate::prod::stack_name(ctx, true)?;
    if !ctx.run.dry_run {
        let node = ctx
            .run
            .probe(&Cmd::new("docker").args(["info", "--format", "{{.Swarm.LocalNodeState}}"]))
            .map(|p| p.stdout.trim().to_string())
            .unwrap_or_default();
        if node != "active" {
            bail!(
                "this Docker engine is not part of a swarm (state: {node:?})\n  fix: docker swarm init --advertise-addr 127.0.0.1   (single node), or run this on a manager node"
            );
        }
        check_secrets(ctx, false)?;
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
    let rendered = ctx.run.read(&compose.cmd_args(["config", "--format", "json"]))?;
    let publish = ctx.vars.prod_bind_public;
    let file = ctx.root.join("target/drydock/swarm").join(format!("{stack}.json"));
    if !ctx.run.dry_run {
        let config: Value = serde_json::from_str(&rendered).context("parsing `docker compose config --format json`")?;
        let stack_file = swarm_stack(config, publish)?;
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
    ctx.run.run(
        &Cmd::new("docker")
            .args([
                "stack",
                "deploy",
                "--prune",
                "--resolve-image",
                "never",
                "--compose-file",
            ])
            .arg(file.display().to_string())
            .arg(&stack),
    )?;
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
    let p = ctx
        .run
        .probe(&Cmd::new("docker").args(["service", "inspect", service]))?;
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
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let p = ctx.run.probe(&Cmd::new("docker").args(["service", "inspect", service]));
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
        let done = spec_image.starts_with(want_image)
            && running >= replicas
            && (!fresh_update || update_state == "completed")
            && stack_converged(ctx, stack);
        if done {
            return Ok(());
        }
        let line = format!(
            "swarm: {running}/{replicas} API task(s) on {want_image}{}",
            if update_state.is_empty() {
                String::new()
            } else {
                format!(" (update {update_state})")
            }
        );
        if line != last {
            ctx.say(&line);
            last = line.clone();
        }
        if started.elapsed() > timeout {
            bail!(
                "the stack did not converge within {} s ({line})\n  fix: docker stack ps {stack} --no-trunc",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Tasks of `service` running `image` (healthy: Swarm reports Running only after the healthcheck passed).
fn running_tasks(ctx: &Ctx, service: &str, image: &str) -> u64 {
    let p = ctx.run.probe(&Cmd::new("docker").args([
        "service",
        "ps",
        service,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Image}} {{.CurrentState}}",
    ]));
    p.map(|p| {
        p.stdout
            .lines()
            .filter(|l| l.starts_with(image) || l.starts_with(image.split('/').next_back().unwrap_or(image)))
            .filter(|l| l.contains(" Running"))
            .count() as u64
    })
    .unwrap_or(0)
}

/// Every long-running service of the stack has all its replicas running.
fn stack_converged(ctx: &Ctx, stack: &str) -> bool {
    let Some(p) =
        ctx.run
            .probe(&Cmd::new("docker").args(["stack", "services", stack, "--format", "{{.Name}} {{.Replicas}}"]))
    else {
        return false;
    };
    p.success
        && p.stdout.lines().filter(|l| !l.contains("_migrate ")).all(|l| {
            let replicas = l.split_whitespace().nth(1).unwrap_or("0/1");
            let (have, want) = replicas.split_once('/').unwrap_or(("0", "1"));
            let want = want.split_whitespace().next().unwrap_or(want);
            have == want
        })
}

/// Turns `docker compose config --format json` into a `docker stack deploy` file (Compose file format 3.9):
/// removes what Swarm does not support (build, depends_on, restart, security_opt, loopback ports, pids
/// limits, shm_size), lets the stack name networks, volumes and secrets, makes the networks overlays, serves
/// the API by DNS round robin (the proxy and Prometheus see each healthy task) and points the proxy at it.
pub fn swarm_stack(mut config: Value, publish: bool) -> Result<Value> {
    let obj = config.as_object_mut().context("compose config is not an object")?;
    obj.retain(|k, _| !k.starts_with("x-") && k != "name");
    let mut out = Map::new();
    out.insert("version".into(), json!("3.9"));
    let mut used_secrets: Vec<String> = Vec::new();

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
    Ok(Value::Object(out))
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
        let out = swarm_stack(sample(), false).unwrap();
        assert_eq!(out["version"], "3.9");
        assert!(out.get("name").is_none() && out.get("x-logging").is_none());
        let api = &out["services"]["api"];
        for gone in ["build", "depends_on", "restart", "security_opt", "entrypoint"] {
            assert!(api.get(gone).is_none(), "{gone} should be removed");
        }
        assert_eq!(api["deploy"]["endpoint_mode"], "dnsrr");
        assert_eq!(api["deploy"]["resources"]["limits"]["cpus"], "1");
        assert!(api["deploy"]["resources"]["limits"].get("pids").is_none());
        assert!(api["deploy"].get("placement").is_none());
        let proxy = &out["services"]["proxy"];
        assert!(
            proxy.get("ports").is_none(),
            "loopback ports cannot be published by Swarm"
        );
        assert_eq!(proxy["environment"]["API_UPSTREAM"], "api:8000");
        assert_eq!(proxy["deploy"]["endpoint_mode"], "dnsrr");
        assert!(proxy["volumes"][0].get("bind").is_none());
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
        let out = swarm_stack(sample(), true).unwrap();
        assert_eq!(
            out["services"]["proxy"]["ports"][0],
            json!({"target": 8080, "published": 9080, "protocol": "tcp", "mode": "host"})
        );
    }
}
