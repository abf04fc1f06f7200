//! The stack file of a Swarm deploy: `docker compose config --format json` turned into what `docker stack
//! deploy` takes (Compose file format 3.9), made for engines that are not this machine.

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

/// The node label that marks the swarm node keeping the databases (`docker node update --label-add
/// drydock.db=true <node>`): their named volumes live on that node.
pub const DB_NODE_LABEL: &str = "drydock.db";

/// Turns `docker compose config --format json` into a `docker stack deploy` file (Compose file format 3.9):
/// removes what Swarm does not support (build, depends_on, restart, security_opt, loopback ports, pids
/// limits, shm_size), lets the stack name networks, volumes and secrets, makes the networks overlays, serves
/// the API by DNS round robin (the proxy and Prometheus see each healthy task) and points the proxy at it.
///
/// Made for engines that are not this machine: the operator's files that services bind-mount (read-only)
/// become file-based Swarm configs (secrets for `*.key` files), which `docker stack deploy` reads here and
/// sends to the manager; the `databases` are pinned to the node labelled `DB_NODE_LABEL=true` (their named
/// volumes live there), the `api` replicas are spread over the nodes, and the proxy runs on a manager (the
/// nodes an operator points DNS or a load balancer at, and the ones that stay when workers come and go).
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
        if name == "proxy" {
            // Its ports are published in host mode on the node it runs on: keep that on the managers.
            deploy["placement"]["constraints"] = json!(["node.role==manager"]);
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
        assert_eq!(
            out["services"]["proxy"]["deploy"]["placement"],
            json!({"constraints": ["node.role==manager"]})
        );
    }

    #[test]
    fn swarm_file_sends_bind_mounted_files_as_configs_and_keys_as_secrets() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
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
    }
}
