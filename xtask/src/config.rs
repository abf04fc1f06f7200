//! `infra/stack.toml`: the typed description of the stack the xtask operates.
//!
//! Unknown keys are rejected so a typo cannot silently fall back to a default. Errors name the file, the key
//! and the fix.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

pub const CONFIG_PATH: &str = "infra/stack.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub project: Project,
    pub compose: ComposeFiles,
    pub services: Services,
    pub images: Images,
    pub backups: Backups,
    /// The edge proxy's trusted upstream proxies and rate limits (optional: defaults are today's behaviour).
    #[serde(default)]
    pub proxy: Proxy,
    /// Remote engines by name (`[hosts.<name>] ssh = "ssh://user@host[:port]"`), chosen with `--host <name>`.
    #[serde(default)]
    pub hosts: std::collections::BTreeMap<String, Host>,
}

/// A remote Docker engine reached over SSH (checked by `target::resolve`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// `ssh://user@host[:port]`: the docker CLI and Compose reach the engine through `ssh`.
    pub ssh: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeFiles {
    pub dev: Vec<String>,
    pub prod: Vec<String>,
    pub env_file: String,
    pub env_example: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Services {
    pub api: String,
    pub frontend: String,
    pub proxy: String,
    pub postgres: String,
    pub redis: String,
    #[allow(dead_code)] // used by the mongo commands
    pub mongo: String,
}

/// Where base images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageSource {
    /// The registry when one answers, offline otherwise.
    Auto,
    /// Pinned official images pulled from a registry.
    Registry,
    /// Everything built locally from Debian packages.
    Offline,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    pub source: ImageSource,
    pub registry_probe: String,
    pub prefix: String,
    pub ca_bundle: String,
    #[serde(default)]
    pub debian_mirror: String,
    pub registry: RegistryImages,
    pub offline: OfflineImages,
}

/// The base images the stack needs, one name per role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryImages {
    pub postgres: String,
    pub redis: String,
    pub rust: String,
    pub node: String,
    pub runtime: String,
    pub nginx: String,
    pub mongo: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineImages {
    pub base: String,
    pub postgres: String,
    pub redis: String,
    pub rust: String,
    pub node: String,
    pub runtime: String,
    pub nginx: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backups {
    pub dir: String,
    pub retention: Retention,
    /// Off-site copies (`backups push`); none when absent.
    #[serde(default)]
    pub remote: Option<crate::offsite_config::Remote>,
    /// age encryption of every backup file; plaintext when absent.
    #[serde(default)]
    pub encryption: Option<crate::offsite_config::Encryption>,
    /// PostgreSQL point-in-time recovery (WAL archive + base backups with pgBackRest).
    #[serde(default)]
    pub pitr: Pitr,
}

/// `[backups.pitr]`: continuous WAL archiving of PostgreSQL into pgBackRest's repository.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pitr {
    /// Archive every WAL segment (archive_mode); off means no point-in-time recovery.
    pub enabled: bool,
    /// Seconds after which a WAL segment with writes in it is switched and archived even if not full:
    /// the restore point objective (at most this many seconds of committed writes live only on the data volume).
    pub archive_timeout: u32,
    /// Full base backups pgBackRest keeps (with their incrementals and the WAL they need).
    pub retention_full: u32,
    /// A second pgBackRest repository on the off-site store of `[backups.remote]` (under `<folder>/pitr`):
    /// every WAL segment is archived to both, every base backup taken into both (`backup::pitr_offsite`).
    pub offsite: bool,
    /// The off-site store's `host[:port]` as the database server reaches it, when that differs from the
    /// address in `[backups.remote]` (a private endpoint, another network); default: the same.
    pub offsite_address: Option<String>,
    /// MB of WAL waiting to be archived beyond which pgBackRest drops segments instead of letting them fill
    /// the data volume (`archive-push-queue-max`): a repository that stays unreachable then costs the
    /// point-in-time window from there on (a new base backup restores it), never the database itself.
    pub archive_queue_max_mb: u32,
}

impl Default for Pitr {
    fn default() -> Self {
        Pitr {
            enabled: true,
            archive_timeout: 60,
            retention_full: 2,
            offsite: false,
            offsite_address: None,
            archive_queue_max_mb: 2048,
        }
    }
}

impl Pitr {
    /// The variables infra/compose/compose.yaml reads for the postgres service (`DRYDOCK_PITR_*`).
    pub fn compose_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "DRYDOCK_PITR_ARCHIVE_MODE".into(),
                if self.enabled { "on" } else { "off" }.into(),
            ),
            ("DRYDOCK_PITR_ARCHIVE_TIMEOUT".into(), self.archive_timeout.to_string()),
            ("DRYDOCK_PITR_RETENTION_FULL".into(), self.retention_full.to_string()),
            (
                "DRYDOCK_PITR_ARCHIVE_QUEUE_MAX".into(),
                format!("{}MB", self.archive_queue_max_mb),
            ),
        ]
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
}

/// `[proxy]`: who the edge proxy believes about the client's address, and the per-client rate limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Proxy {
    /// Load balancers / CDNs / tunnels (CIDRs or addresses) whose `real_ip_header` names the client.
    pub trusted_proxies: Vec<String>,
    /// The header those proxies write the client address into (one of [`REAL_IP_HEADERS`]).
    pub real_ip_header: String,
    pub limits: ProxyLimits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyLimits {
    #[serde(default = "ProxyLimits::default_api")]
    pub api: RateLimit,
    #[serde(rename = "static", default = "ProxyLimits::default_static")]
    pub static_files: RateLimit,
}

/// Per client: `rate` requests per second, `burst` more may arrive at once (signed so that a negative value
/// gets an error naming the key rather than a type error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub rate: i64,
    pub burst: i64,
}

/// The client-address headers the edge proxy can be told to trust (nginx `real_ip_header`).
pub const REAL_IP_HEADERS: &[&str] = &["X-Forwarded-For", "X-Real-IP", "CF-Connecting-IP", "True-Client-IP"];

impl ProxyLimits {
    fn default_api() -> RateLimit {
        RateLimit { rate: 100, burst: 200 }
    }
    fn default_static() -> RateLimit {
        RateLimit { rate: 300, burst: 400 }
    }
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits {
            api: ProxyLimits::default_api(),
            static_files: ProxyLimits::default_static(),
        }
    }
}

impl Default for Proxy {
    fn default() -> Self {
        Proxy {
            trusted_proxies: Vec::new(),
            real_ip_header: REAL_IP_HEADERS[0].to_string(),
            limits: ProxyLimits::default(),
        }
    }
}

impl Proxy {
    /// `real_ip_header` spelled as the proxy expects it (header names are case-insensitive).
    pub fn header(&self) -> &'static str {
        REAL_IP_HEADERS
            .iter()
            .find(|h| h.eq_ignore_ascii_case(self.real_ip_header.trim()))
            .copied()
            .unwrap_or(REAL_IP_HEADERS[0])
    }

    fn validate(&self, file: &str) -> Result<()> {
        for entry in &self.trusted_proxies {
            if let Err(why) = check_cidr(entry) {
                bail!(
                    "{file}: key `proxy.trusted_proxies` has {entry:?}, {why}\n  fix: list the addresses of the load balancers in front of the proxy as CIDRs (\"10.0.0.0/8\", \"2001:db8::/32\") or single addresses (\"192.0.2.10\")"
                );
            }
        }
        if !REAL_IP_HEADERS
            .iter()
            .any(|h| h.eq_ignore_ascii_case(self.real_ip_header.trim()))
        {
            bail!(
                "{file}: key `proxy.real_ip_header` = {:?} is not a header the proxy can take the client address from\n  fix: use one of {}",
                self.real_ip_header,
                REAL_IP_HEADERS.join(", ")
            );
        }
        let limits = [
            ("api", self.limits.api, ProxyLimits::default_api()),
            ("static", self.limits.static_files, ProxyLimits::default_static()),
        ];
        for (key, limit, default) in limits {
            if !(1..=1_000_000).contains(&limit.rate) {
                bail!(
                    "{file}: key `proxy.limits.{key}.rate` = {} is not a number of requests per second per client\n  fix: use a whole number from 1 to 1000000 (the default is {})",
                    limit.rate,
                    default.rate
                );
            }
            if !(0..=1_000_000).contains(&limit.burst) {
                bail!(
                    "{file}: key `proxy.limits.{key}.burst` = {} is not a number of requests\n  fix: use a whole number from 0 to 1000000: how many requests above the rate a client may send at once (the default is {})",
                    limit.burst,
                    default.burst
                );
            }
        }
        Ok(())
    }
}

/// An address or `address/prefix` as nginx's `set_real_ip_from` takes it: no host bits past the prefix (nginx
/// would ignore them, so the entry would not mean what it says), and not every address (`/0` would let any
/// client choose its own address).
fn check_cidr(entry: &str) -> std::result::Result<(), String> {
    let (addr, prefix) = match entry.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (entry, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| "which is not an IPv4 or IPv6 address or CIDR".to_string())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let Some(prefix) = prefix else { return Ok(()) };
    let len: u32 = match prefix.parse() {
        Ok(n) if prefix.chars().all(|c| c.is_ascii_digit()) && n <= max => n,
        _ => return Err(format!("whose prefix length is not a number from 1 to {max}")),
    };
    if len == 0 {
        return Err("which trusts every address: any client could then choose its own address".into());
    }
    let bits: u128 = match addr {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    };
    let host_mask = (1u128 << (max - len)) - 1;
    if bits & host_mask != 0 {
        let network = bits & !host_mask;
        let network: IpAddr = match addr {
            IpAddr::V4(_) => IpAddr::V4((network as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(network.into()),
        };
        return Err(format!(
            "which has host bits set past /{len} (did you mean {network}/{len}?)"
        ));
    }
    Ok(())
}

impl Config {
    /// Reads and validates the stack description at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the stack description {}: run the xtask from a drydock checkout, or pass --config <file>",
                path.display()
            )
        })?;
        Config::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|err| {
            let fix = fix_for(err.message());
            anyhow::anyhow!("{}: {}{}", path.display(), err.to_string().trim_end(), fix)
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let file = path.display();
        let name = &self.project.name;
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !valid_name {
            bail!(
                "{file}: key `project.name` = {name:?} is not a valid compose project name\n  fix: use lowercase letters, digits, `-` and `_`, starting with a letter or digit (e.g. \"drydock\")"
            );
        }
        for (key, files) in [("compose.dev", &self.compose.dev), ("compose.prod", &self.compose.prod)] {
            if files.is_empty() {
                bail!(
                    "{file}: key `{key}` is empty\n  fix: list the compose files, base first, e.g. [\"infra/compose/compose.yaml\", ...]"
                );
            }
        }
        if self.backups.dir.trim().is_empty() {
            bail!("{file}: key `backups.dir` is empty\n  fix: set it to a directory such as \"backups\"");
        }
        let pitr = &self.backups.pitr;
        if !(1..=86_400).contains(&pitr.archive_timeout) {
            bail!(
                "{file}: key `backups.pitr.archive_timeout` = {} is out of range: it is the restore point objective in seconds\n  fix: set 1 to 86400 (60 archives at least once a minute when there are writes)",
                pitr.archive_timeout
            );
        }
        if pitr.retention_full == 0 {
            bail!(
                "{file}: key `backups.pitr.retention_full` is 0, which would expire every base backup\n  fix: keep at least 1"
            );
        }
        if !(32..=1_048_576).contains(&pitr.archive_queue_max_mb) {
            bail!(
                "{file}: key `backups.pitr.archive_queue_max_mb` = {} is out of range: it is the MB of WAL kept while archiving fails\n  fix: set 32 (two WAL segments) to 1048576; size it below the free space of the data volume",
                pitr.archive_queue_max_mb
            );
        }
        if self.backups.retention.keep_last == 0 {
            bail!(
                "{file}: key `backups.retention.keep_last` is 0, which would allow pruning every backup\n  fix: keep at least 1"
            );
        }
        if let Some(remote) = &self.backups.remote {
            remote.validate(&file.to_string())?;
        }
        if pitr.offsite {
            crate::offsite_config::validate_pitr_offsite(
                self.backups.remote.as_ref(),
                pitr.offsite_address.as_deref(),
                &file.to_string(),
            )?;
        }
        if let Some(encryption) = &self.backups.encryption {
            encryption.validate(&file.to_string())?;
        }
        self.proxy.validate(&file.to_string())?;
        Ok(())
    }

    /// The compose files for an environment, checked to exist.
    pub fn compose_files(&self, root: &Path, env: Env) -> Result<Vec<PathBuf>> {
        let (key, files) = match env {
            Env::Dev => ("compose.dev", &self.compose.dev),
            Env::Prod => ("compose.prod", &self.compose.prod),
        };
        files
            .iter()
            .map(|f| {
                let path = root.join(f);
                if path.is_file() {
                    Ok(path)
                } else {
                    bail!(
                        "{CONFIG_PATH}: key `{key}` names {f}, which does not exist\n  fix: correct the path or restore the file"
                    )
                }
            })
            .collect()
    }
}

/// Which environment a compose command targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Env {
    Dev,
    Prod,
}

impl Env {
    pub fn name(self) -> &'static str {
        match self {
            Env::Dev => "dev",
            Env::Prod => "prod",
        }
    }
}

fn fix_for(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "\n  fix: remove or rename the key (see the expected keys above and the comments in infra/stack.toml)"
    } else if message.contains("missing field") {
        "\n  fix: add the key; infra/stack.toml in the repository shows every key with a comment"
    } else if message.contains("unknown variant") {
        "\n  fix: use one of the values listed above"
    } else {
        "\n  fix: correct the TOML at the position shown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> String {
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(CONFIG_PATH)).unwrap()
    }

    fn parse(text: &str) -> Result<Config> {
        Config::parse(text, Path::new(CONFIG_PATH))
    }

    #[test]
    fn shipped_config_parses() {
        let config = parse(&shipped()).unwrap();
        assert_eq!(config.project.name, "drydock");
        assert_eq!(config.images.source, ImageSource::Auto);
        assert!(config.backups.retention.keep_last >= 1);
    }

    #[test]
    fn unknown_key_names_file_key_and_fix() {
        let text = shipped().replace("[project]\n", "[project]\nnmae = \"x\"\n");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("infra/stack.toml"), "{err}");
        // Strings only the diagnostic produces (the input line itself also contains `nmae`).
        assert!(err.contains("unknown field `nmae`"), "{err}");
        assert!(err.contains("fix:"), "{err}");
    }

    #[test]
    fn bad_image_source_lists_the_choices() {
        let text = shipped().replace("source = \"auto\"", "source = \"cloud\"");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("unknown variant `cloud`"), "{err}");
        assert!(
            err.contains("`auto`") && err.contains("`registry`") && err.contains("`offline`"),
            "{err}"
        );
    }

    #[test]
    fn missing_key_is_named() {
        let text = shipped().replace("prefix = \"drydock\"\n", "");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("prefix") && err.contains("fix:"), "{err}");
    }

    #[test]
    fn invalid_project_name_is_rejected() {
        let text = shipped().replace("name = \"drydock\"", "name = \"Dry Dock\"");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("project.name") && err.contains("fix:"), "{err}");
    }

    #[test]
    fn zero_keep_last_is_rejected() {
        let text = shipped().replace("keep_last = 7", "keep_last = 0");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("keep_last"), "{err}");
    }

    fn proxy_section(body: &str) -> String {
        let text = shipped();
        let start = text.find("[proxy]").expect("the shipped file has a [proxy] section");
        format!("{}{body}", &text[..start])
    }

    fn proxy_error(body: &str) -> String {
        format!("{:#}", parse(&proxy_section(body)).unwrap_err())
    }

    #[test]
    fn shipped_proxy_section_is_the_default() {
        let config = parse(&shipped()).unwrap();
        assert_eq!(config.proxy, Proxy::default());
        let limits = config.proxy.limits;
        assert_eq!((limits.api.rate, limits.api.burst), (100, 200));
        assert_eq!((limits.static_files.rate, limits.static_files.burst), (300, 400));
        assert!(config.proxy.trusted_proxies.is_empty());
        assert_eq!(config.proxy.header(), "X-Forwarded-For");
    }

    #[test]
    fn proxy_section_is_optional_and_partial_sections_keep_the_other_defaults() {
        assert_eq!(parse(&proxy_section("")).unwrap().proxy, Proxy::default());
        let config = parse(&proxy_section(
            "[proxy]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.0.2.10\", \"2001:db8::/32\", \"::1\"]\nreal_ip_header = \"cf-connecting-ip\"\n[proxy.limits.api]\nrate = 7\nburst = 0\n",
        ))
        .unwrap();
        let proxy = config.proxy;
        assert_eq!(
            proxy.trusted_proxies,
            ["10.0.0.0/8", "192.0.2.10", "2001:db8::/32", "::1"]
        );
        assert_eq!(proxy.header(), "CF-Connecting-IP", "header names are case-insensitive");
        assert_eq!(proxy.limits.api, RateLimit { rate: 7, burst: 0 });
        assert_eq!(proxy.limits.static_files, RateLimit { rate: 300, burst: 400 });
    }

    #[test]
    fn bad_trusted_proxies_name_the_key_the_value_and_the_fix() {
        for (entry, says) in [
            ("10.0.0.0/33", "prefix length"),
            ("10.0.0/8", "not an IPv4 or IPv6 address"),
            ("lb.example.com", "not an IPv4 or IPv6 address"),
            ("10.1.2.3/8", "did you mean 10.0.0.0/8"),
            ("2001:db8::1/32", "did you mean 2001:db8::/32"),
            ("0.0.0.0/0", "trusts every address"),
            ("::/0", "trusts every address"),
            ("10.0.0.0/+8", "prefix length"),
            ("10.0.0.0/", "prefix length"),
        ] {
            let err = proxy_error(&format!("[proxy]\ntrusted_proxies = [\"{entry}\"]\n"));
            assert!(
                err.starts_with("infra/stack.toml: key `proxy.trusted_proxies`"),
                "{entry}: {err}"
            );
            assert!(
                err.contains(&format!("{entry:?}")) && err.contains(says),
                "{entry}: {err}"
            );
            assert!(err.contains("fix: list the addresses"), "{entry}: {err}");
        }
        // Full-length prefixes are single addresses.
        parse(&proxy_section(
            "[proxy]\ntrusted_proxies = [\"192.0.2.7/32\", \"2001:db8::7/128\"]\n",
        ))
        .unwrap();
    }

    #[test]
    fn bad_limits_name_the_key_and_the_fix() {
        for (section, body, key) in [
            ("api", "rate = 0\nburst = 10", "proxy.limits.api.rate"),
            ("api", "rate = 10\nburst = -1", "proxy.limits.api.burst"),
            ("static", "rate = -5\nburst = 10", "proxy.limits.static.rate"),
            ("static", "rate = 5\nburst = 1000001", "proxy.limits.static.burst"),
        ] {
            let err = proxy_error(&format!("[proxy.limits.{section}]\n{body}\n"));
            assert!(err.starts_with(&format!("infra/stack.toml: key `{key}`")), "{err}");
            assert!(err.contains("fix: use a whole number"), "{err}");
        }
        // A table given is given whole: a missing key is named, not silently defaulted.
        let err = proxy_error("[proxy.limits.api]\nrate = 10\n");
        assert!(err.contains("burst") && err.contains("fix:"), "{err}");
        let err = proxy_error("[proxy.limits.api]\nrate = 1.5\nburst = 1\n");
        assert!(err.contains("rate") && err.contains("fix:"), "{err}");
    }

    #[test]
    fn unknown_real_ip_header_and_keys_are_refused() {
        let err = proxy_error("[proxy]\nreal_ip_header = \"X-Client\"\n");
        assert!(err.contains("key `proxy.real_ip_header` = \"X-Client\""), "{err}");
        assert!(err.contains("fix: use one of X-Forwarded-For, X-Real-IP"), "{err}");
        let err = proxy_error("[proxy]\ntrusted = [\"10.0.0.0/8\"]\n");
        assert!(
            err.contains("trusted") && err.contains("fix: remove or rename"),
            "{err}"
        );
        let err = proxy_error("[proxy.limits.websocket]\nrate = 1\nburst = 1\n");
        assert!(err.contains("websocket") && err.contains("fix:"), "{err}");
    }
}
