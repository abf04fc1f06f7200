//! `cargo xtask prod-maintenance on [--message …] | off`: the edge proxy answers every request but the health
//! checks with 503, `Retry-After` and a page (JSON on `/api/`), or serves traffic again. The proxy's
//! configuration is rewritten in its tmpfs and nginx reloaded (checked first with `nginx -t`): no restart, no
//! dropped connection, the API and the databases untouched. A proxy restart turns maintenance off.

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::cmd::{Cmd, cmd, shell};
use crate::compose::Compose;
use crate::context::Ctx;
use crate::prod::audit::Audit;
use crate::prod::compose::current_compose;
use crate::term::markup_escape;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Args)]
pub struct ProdMaintenanceArgs {
    /// `on`: 503 with a page for every request but the health checks; `off`: traffic again.
    pub state: Switch,
    /// The sentence the maintenance page shows (with `on`).
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
}

/// Writes the page and the switch into the proxy's tmpfs, checks the configuration and reloads nginx; returns
/// only once every worker that ran before the reload has stopped accepting (it is gone, or titled "shutting
/// down") and the new workers answer with the new state (`/proxy-maintenance`, from inside the container): the
/// command's end is the switch's, with no window where an old worker still answers. `$1` is the page, `$2` the
/// switch (1 or 0). The image has a shell, nginx and busybox's wget, no coreutils: builtins and /proc only
/// (and no `sleep`: the wait is bounded by a count).
const SWITCH: &str = r#"workers() {
  for d in /proc/[0-9]*; do
    c=; read -r c < "$d/cmdline" 2>/dev/null
    case "$c" in *"shutting down"*) ;; "nginx: worker process"*) printf '%s ' "${d#/proc/}" ;; esac
  done
}
old=$(workers)
printf '%s' "$1" > /tmp/drydock-maintenance.html &&
printf 'map $scheme $drydock_maintenance { default %s; }\n' "$2" > /tmp/drydock-proxy-maintenance.conf &&
nginx -t -q && nginx -s reload || exit 1
i=0
while :; do
  accepting=
  for p in $old; do
    c=; read -r c < "/proc/$p/cmdline" 2>/dev/null
    case "$c" in *"shutting down"*) ;; "nginx: worker process"*) accepting=1 ;; esac
  done
  if [ -z "$accepting" ] && [ "$(wget -q -O - http://127.0.0.1:8080/proxy-maintenance 2>/dev/null)" = "$2" ]; then
    exit 0
  fi
  i=$((i + 1)); [ "$i" -lt 5000 ] || { echo "nginx did not take the new maintenance state" >&2; exit 1; }
done"#;

impl ProdMaintenanceArgs {
    pub fn run(&self, ctx: &Ctx) -> Result<()> {
        let compose = current_compose(ctx)?;
        let what = match self.state {
            Switch::On => "on",
            Switch::Off => "off",
        };
        let audit = Audit::start(&compose.project, "prod-maintenance", what);
        let outcome = ctx.run.run(&switch_cmd(
            &compose,
            &ctx.config.services.proxy,
            self.state,
            self.message.as_deref(),
        ));
        if outcome.is_ok() {
            ctx.say(match self.state {
                Switch::On => "maintenance on: the proxy answers 503 with the page (health checks still pass)",
                Switch::Off => "maintenance off: the proxy serves traffic again",
            });
        }
        audit.finish(ctx, outcome.map(|_| ()))
    }
}

/// The `docker compose exec` that flips the switch in the proxy.
pub fn switch_cmd(compose: &Compose, proxy: &str, state: Switch, message: Option<&str>) -> Cmd {
    let sh = shell();
    let page = page(message.unwrap_or("We are updating the site. Please try again in a few minutes."));
    let on = if state == Switch::On { "1" } else { "0" };
    compose.cmd(cmd!(sh, "exec -T {proxy} sh -c {SWITCH} sh {page} {on}"))
}

/// The maintenance page: the message HTML-escaped, no script, no outside resource.
pub fn page(message: &str) -> String {
    let escaped = markup_escape(message);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Down for maintenance</title></head>\n<body><h1>Down for maintenance</h1><p>{escaped}</p></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_is_one_exec_in_the_proxy_with_the_page_escaped() {
        let compose = Compose {
            project: "dd-prod".into(),
            files: vec!["/r/c.yaml".into()],
            env_file: None,
            env: vec![],
            profiles: vec![],
        };
        let cmd = switch_cmd(&compose, "proxy", Switch::On, Some("back at <b>5</b> & soon"));
        let argv = cmd.argv();
        assert_eq!(argv[..6], ["docker", "compose", "-p", "dd-prod", "-f", "/r/c.yaml"]);
        assert_eq!(argv[6..11], ["exec", "-T", "proxy", "sh", "-c"]);
        assert_eq!(argv[11], SWITCH);
        assert_eq!(argv[12], "sh");
        assert!(
            argv[13].contains("back at &lt;b&gt;5&lt;/b&gt; &amp; soon"),
            "{}",
            argv[13]
        );
        assert_eq!(argv[14], "1");
        let off = switch_cmd(&compose, "proxy", Switch::Off, None);
        assert_eq!(off.argv().last(), Some(&"0"));
    }
}
