//! The production compose invocation: image tags, the variables the base file interpolates, the monitoring
//! images, and the `up --scale` that prod-scale and rolling deploys share.

use anyhow::Result;

use crate::cmd::{Cmd, cmd, shell};
use crate::compose::Compose;
use crate::compose::parse_env_file;
use crate::config::{Env, Proxy};
use crate::context::Ctx;
use crate::image_source::Source;
use crate::images;
use crate::prod::state::DeployState;
use crate::prod::tags::head_tag;

/// The production compose invocation with the image tags and the variables the base file interpolates.
/// Passwords are passed empty: the prod overlay removes them and mounts secret files instead.
pub fn prod_compose(ctx: &Ctx, image_tag: &str, api_tag: &str) -> Result<Compose> {
    let mut compose = Compose::for_env(ctx, Env::Prod)?;
    let env_file = compose
        .env_file
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let from_file = parse_env_file(&env_file);
    let mut env: Vec<(String, String)> = vec![
        ("POSTGRES_PASSWORD".into(), String::new()),
        ("REDIS_PASSWORD".into(), String::new()),
        ("DRYDOCK_IMAGE_TAG".into(), image_tag.into()),
        ("DRYDOCK_API_TAG".into(), api_tag.into()),
    ];
    for (key, default) in [("POSTGRES_USER", "drydock"), ("POSTGRES_DB", "drydock")] {
        if std::env::var(key).is_err() && !from_file.contains_key(key) {
            env.push((key.into(), default.into()));
        }
    }
    env.extend(monitoring_env(ctx));
    env.extend(proxy_env(&ctx.config.proxy));
    compose.env.extend(env);
    Ok(compose)
}

/// The compose invocation for commands that only look at or stop the stack (tags from the deploy state).
/// `Ctx::stack(Env::Prod)` returns this, so health, shells and backups address prod the same way: it supplies
/// the image tags and the (empty) password variables the base file interpolates.
pub fn current_compose(ctx: &Ctx) -> Result<Compose> {
    let project = Compose::for_env(ctx, Env::Prod)?.project;
    let state = DeployState::load(ctx, &project)?;
    let (image_tag, api_tag) = match state {
        Some(s) => (s.image_tag, s.api_tag),
        None => {
            let t = head_tag(ctx).unwrap_or_else(|_| "dev".into());
            (t.clone(), t)
        }
    };
    crate::prod::remote::on_engine(ctx, prod_compose(ctx, &image_tag, &api_tag)?)
}

/// The edge proxy's settings from `infra/stack.toml` `[proxy]`, as the variables compose.prod.yaml hands to the
/// proxy container (rendered into nginx configuration by infra/proxy/docker-entrypoint.d/30-drydock-proxy.sh).
pub fn proxy_env(proxy: &Proxy) -> Vec<(String, String)> {
    let l = &proxy.limits;
    [
        ("DRYDOCK_PROXY_TRUSTED_PROXIES", proxy.trusted_proxies.join(",")),
        ("DRYDOCK_PROXY_REAL_IP_HEADER", proxy.header().to_string()),
        ("DRYDOCK_PROXY_API_RATE", l.api.rate.to_string()),
        ("DRYDOCK_PROXY_API_BURST", l.api.burst.to_string()),
        ("DRYDOCK_PROXY_STATIC_RATE", l.static_files.rate.to_string()),
        ("DRYDOCK_PROXY_STATIC_BURST", l.static_files.burst.to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .into()
}

/// Image variables of the monitoring profile for the current image source.
pub fn monitoring_env(ctx: &Ctx) -> Vec<(String, String)> {
    let m = monitoring_images(ctx);
    vec![
        ("DRYDOCK_PROMETHEUS_IMAGE".into(), m.prometheus),
        ("DRYDOCK_POSTGRES_EXPORTER_IMAGE".into(), m.postgres_exporter),
        ("DRYDOCK_REDIS_EXPORTER_IMAGE".into(), m.redis_exporter),
        ("DRYDOCK_NODE_EXPORTER_IMAGE".into(), m.node_exporter),
        (
            "DRYDOCK_GRAFANA_IMAGE".into(),
            // Never started offline (its profile stays off); named for `compose config` and lint.
            m.grafana.unwrap_or_else(|| GRAFANA_REGISTRY_IMAGE.into()),
        ),
    ]
}

/// The monitoring images: offline ones are built from Debian (infra/images/), registry ones are pinned.
#[derive(Debug, Clone)]
pub struct MonitoringImages {
    pub prometheus: String,
    pub postgres_exporter: String,
    pub redis_exporter: String,
    pub node_exporter: String,
    /// Grafana has no Debian package: `None` in offline mode.
    pub grafana: Option<String>,
}

/// Grafana's pinned registry image (there is no offline one: no Debian package).
pub const GRAFANA_REGISTRY_IMAGE: &str = "grafana/grafana-oss:12.1.1";

/// (offline recipe in infra/images/compose.yaml, offline image) of the monitoring profile.
pub const MONITORING_OFFLINE: &[(&str, &str)] = &[
    ("prometheus", "drydock/prometheus:2.53"),
    ("postgres-exporter", "drydock/postgres-exporter:trixie"),
    ("redis-exporter", "drydock/redis-exporter:trixie"),
    ("node-exporter", "drydock/node-exporter:trixie"),
];

pub fn monitoring_images(ctx: &Ctx) -> MonitoringImages {
    match ctx.images().source {
        Source::Offline => MonitoringImages {
            prometheus: MONITORING_OFFLINE[0].1.into(),
            postgres_exporter: MONITORING_OFFLINE[1].1.into(),
            redis_exporter: MONITORING_OFFLINE[2].1.into(),
            node_exporter: MONITORING_OFFLINE[3].1.into(),
            grafana: None,
        },
        Source::Registry => MonitoringImages {
            prometheus: "prom/prometheus:v2.53.5".into(),
            postgres_exporter: "quay.io/prometheuscommunity/postgres-exporter:v0.17.1".into(),
            redis_exporter: "oliver006/redis_exporter:v1.74.0-alpine".into(),
            node_exporter: "prom/node-exporter:v1.9.1".into(),
            grafana: Some(GRAFANA_REGISTRY_IMAGE.into()),
        },
    }
}

/// Builds the offline monitoring images that are missing.
pub fn ensure_monitoring_images(ctx: &Ctx) -> Result<()> {
    if ctx.images().source != Source::Offline {
        return Ok(());
    }
    let missing: Vec<&str> = MONITORING_OFFLINE
        .iter()
        .filter(|(_, image)| !images::exists(ctx, image))
        .map(|(role, _)| *role)
        .collect();
    if missing.is_empty() && !ctx.run.dry_run {
        return Ok(());
    }
    let roles: Vec<&str> = if ctx.run.dry_run {
        MONITORING_OFFLINE.iter().map(|(r, _)| *r).collect()
    } else {
        missing
    };
    images::build_offline(ctx, &roles, false)
}

/// `up --scale service=replicas` that touches nothing else: no dependencies, no recreation of running
/// replicas, no build or pull (scaling and rolling deploys use images that already exist).
pub fn scale_cmd(compose: &Compose, service: &str, replicas: usize, extra: &[&str]) -> Cmd {
    let sh = shell();
    let scale = format!("{service}={replicas}");
    compose.cmd(cmd!(
        sh,
        "up --detach --no-deps --no-recreate --no-build --pull never --scale {scale} {extra...} {service}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProxyLimits, RateLimit};

    #[test]
    fn proxy_env_carries_every_proxy_setting() {
        let proxy = Proxy {
            trusted_proxies: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
            real_ip_header: "x-real-ip".into(),
            limits: ProxyLimits {
                api: RateLimit { rate: 7, burst: 0 },
                static_files: RateLimit { rate: 11, burst: 13 },
            },
        };
        let env: Vec<String> = proxy_env(&proxy).iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            env,
            [
                "DRYDOCK_PROXY_TRUSTED_PROXIES=10.0.0.0/8,2001:db8::/32",
                "DRYDOCK_PROXY_REAL_IP_HEADER=X-Real-IP",
                "DRYDOCK_PROXY_API_RATE=7",
                "DRYDOCK_PROXY_API_BURST=0",
                "DRYDOCK_PROXY_STATIC_RATE=11",
                "DRYDOCK_PROXY_STATIC_BURST=13",
            ]
        );
        let defaults = proxy_env(&Proxy::default());
        assert_eq!(defaults[0], ("DRYDOCK_PROXY_TRUSTED_PROXIES".into(), String::new()));
        assert_eq!(defaults[2], ("DRYDOCK_PROXY_API_RATE".into(), "100".into()));
    }
}
