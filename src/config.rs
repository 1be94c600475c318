//! Typed, validated settings: command-line flags > `RZMON_*` environment > `.env` > defaults.
//! A bad value stops startup with a message naming the flag and the variable.

use crate::auth::policy;
use crate::mqtt_url::BrokerUrl;
use clap::Args;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A value that must never reach a log: `Debug` prints `***`. It can be read from JSON (channel
/// settings) but has no `Serialize`, so it cannot leak into an answer by accident.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Settings shared by every command (the data directory and logging); global, so they may stand
/// before or after the command (`rzmon device list --data-dir /var/lib/rzmon`).
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Directory for the database and the generated JWT secret (created 0700).
    #[arg(long, env = "RZMON_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,

    /// Log filter in tracing syntax, e.g. `info` or `rzmon=debug`.
    #[arg(long, env = "RZMON_LOG", default_value = "info", global = true, value_parser = log_filter)]
    pub log: String,

    /// Log format: `text` (colour only on a terminal) or `json` (one object per line).
    #[arg(long, env = "RZMON_LOG_FORMAT", default_value = "text", global = true,
          value_parser = Choice::<LogFormat>::new("RZMON_LOG_FORMAT"))]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Settings of the running appliance (`rzmon serve`).
#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    /// Address of the dashboard, REST API and WebSocket.
    #[arg(long, env = "RZMON_HTTP_ADDR", default_value = "0.0.0.0:8080",
          value_parser = addr("RZMON_HTTP_ADDR"))]
    pub http_addr: SocketAddr,

    /// Address of the public MQTT port devices connect to (the gate in front of the broker).
    #[arg(long, env = "RZMON_MQTT_ADDR", default_value = "0.0.0.0:1883",
          value_parser = addr("RZMON_MQTT_ADDR"))]
    pub mqtt_addr: SocketAddr,

    /// Password of the `admin` user created on first start; random and printed once if unset.
    #[arg(long, env = "RZMON_ADMIN_PASSWORD", hide_env_values = true,
          value_parser = secret)]
    pub admin_password: Option<Secret>,

    /// HS256 secret for login tokens (≥ 32 characters); generated and kept in the data
    /// directory if unset.
    #[arg(long, env = "RZMON_JWT_SECRET", hide_env_values = true,
          value_parser = secret)]
    pub jwt_secret: Option<Secret>,

    /// First topic level of every device topic.
    #[arg(long, env = "RZMON_TOPIC_PREFIX", default_value = "rz", value_parser = prefix)]
    pub topic_prefix: String,

    /// Origins of a separately hosted frontend (comma-separated) allowed for CORS and `/ws`.
    #[arg(long, env = "RZMON_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = origin)]
    pub allowed_origins: Vec<String>,

    /// Reverse proxies (comma-separated IP addresses or CIDR ranges) whose `X-Forwarded-For` /
    /// `Forwarded` headers name the client for the login lockout, the audit and the logs.
    /// Empty: those headers are ignored.
    #[arg(
        long,
        env = "RZMON_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true,
        value_parser = cidr
    )]
    pub trusted_proxies: Vec<crate::cidr::Cidr>,

    /// Lifetime of a login token in seconds.
    #[arg(long, env = "RZMON_TOKEN_TTL", default_value_t = 43_200,
          value_parser = int::<u64>("RZMON_TOKEN_TTL", 60, 2_592_000))]
    pub token_ttl: u64,

    /// Lifetime in seconds of a login with "keep me signed in on this device" (a wall
    /// display); revocable like every session (logout, sign out everywhere, password change).
    #[arg(long, env = "RZMON_REMEMBER_TTL", default_value_t = 2_592_000,
          value_parser = int::<u64>("RZMON_REMEMBER_TTL", 3600, 31_536_000))]
    pub remember_ttl: u64,

    /// Largest MQTT packet a device may send, in bytes (whole packet, header included).
    #[arg(long, env = "RZMON_MQTT_MAX_PACKET", default_value_t = 16_384,
          value_parser = int::<u32>("RZMON_MQTT_MAX_PACKET", 256, 1_048_576))]
    pub mqtt_max_packet: u32,

    /// Messages per second per device; excess is delayed, not dropped. 0 = unlimited.
    #[arg(long, env = "RZMON_MQTT_RATE", default_value_t = 100,
          value_parser = int::<u32>("RZMON_MQTT_RATE", 0, 1_000_000))]
    pub mqtt_rate: u32,

    /// Concurrent device connections accepted by the MQTT port.
    #[arg(long, env = "RZMON_MQTT_MAX_CONNECTIONS", default_value_t = 256,
          value_parser = int::<u32>("RZMON_MQTT_MAX_CONNECTIONS", 1, 100_000))]
    pub mqtt_max_connections: u32,

    /// Concurrent MQTT connections from one IP address (raise it when many devices share one
    /// address, e.g. behind NAT).
    #[arg(long, env = "RZMON_MQTT_PER_ADDRESS", default_value_t = 16,
          value_parser = int::<u32>("RZMON_MQTT_PER_ADDRESS", 1, 100_000))]
    pub mqtt_per_address: u32,

    /// Live events a WebSocket client may fall behind before it is disconnected.
    #[arg(long, env = "RZMON_WS_QUEUE", default_value_t = 256,
          value_parser = int::<u32>("RZMON_WS_QUEUE", 1, 1_000_000))]
    pub ws_queue: u32,

    /// Largest accepted HTTP request body in bytes.
    #[arg(long, env = "RZMON_BODY_LIMIT", default_value_t = 65_536,
          value_parser = int::<u64>("RZMON_BODY_LIMIT", 1024, 16_777_216))]
    pub body_limit: u64,

    /// Seconds to wait for a device's reply to a command (getConfig, setConfig, ...).
    #[arg(long, env = "RZMON_COMMAND_TIMEOUT", default_value_t = 5,
          value_parser = int::<u64>("RZMON_COMMAND_TIMEOUT", 1, 300))]
    pub command_timeout: u64,

    /// Seconds a device waits for a card to be presented when enrolling an access id.
    #[arg(long, env = "RZMON_ENROL_TIMEOUT", default_value_t = 30,
          value_parser = int::<u64>("RZMON_ENROL_TIMEOUT", 1, 600))]
    pub enrol_timeout: u64,

    /// Bearer token for `GET /metrics` (Prometheus scrapers; ≥ 16 characters). Unset: only
    /// dashboard login tokens are accepted there.
    #[arg(long, env = "RZMON_METRICS_TOKEN", hide_env_values = true,
          value_parser = secret)]
    pub metrics_token: Option<Secret>,

    /// A device that sent nothing for this many seconds is shown offline.
    #[arg(long, env = "RZMON_STALE_AFTER", default_value_t = 180,
          value_parser = int::<u64>("RZMON_STALE_AFTER", 5, 86_400))]
    pub stale_after: u64,

    #[command(flatten)]
    pub lifecycle: LifecycleSettings,

    #[command(flatten)]
    pub notify: NotifyArgs,

    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
    /// Home Assistant bridge, upstream bridge, external broker.
    #[command(flatten)]
    pub integrations: Box<IntegrationSettings>,
}

/// Settings of the integrations with other MQTT brokers (Home Assistant, ...).
#[derive(Debug, Clone, Args)]
pub struct IntegrationSettings {
    /// Home Assistant's MQTT broker, e.g. `mqtt://user:pass@homeassistant.local:1883` or
    /// `mqtts://...`; unset = no Home Assistant bridge.
    #[arg(long, env = "RZMON_HA_BROKER", hide_env_values = true,
          value_parser = secret)]
    pub ha_broker: Option<Secret>,

    /// Home Assistant's discovery prefix.
    #[arg(long, env = "RZMON_HA_DISCOVERY_PREFIX", default_value = "homeassistant",
          value_parser = topic_level("RZMON_HA_DISCOVERY_PREFIX"))]
    pub ha_discovery_prefix: String,

    /// First topic level of the states rzmon publishes for Home Assistant.
    #[arg(long, env = "RZMON_HA_BASE_TOPIC", default_value = "rzmon",
          value_parser = topic_level("RZMON_HA_BASE_TOPIC"))]
    pub ha_base_topic: String,

    /// Include RFID card ids in the access events sent to Home Assistant.
    #[arg(long, env = "RZMON_HA_ACCESS_IDS", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = boolean("RZMON_HA_ACCESS_IDS"))]
    pub ha_access_ids: bool,

    /// Upstream broker every stored row is forwarded to, e.g. `mqtts://user:pass@central:8883`;
    /// unset = no upstream bridge.
    #[arg(long, env = "RZMON_BRIDGE_URL", hide_env_values = true,
          value_parser = secret)]
    pub bridge_url: Option<Secret>,

    /// Topic prefix upstream (one or more levels, e.g. `site-a/rzmon`).
    #[arg(long, env = "RZMON_BRIDGE_PREFIX", default_value = "rzmon",
          value_parser = topic_path)]
    pub bridge_prefix: String,

    /// Most messages per second the bridge sends (also its catch-up rate after an outage).
    #[arg(long, env = "RZMON_BRIDGE_RATE", default_value_t = 1000,
          value_parser = int::<u32>("RZMON_BRIDGE_RATE", 1, 100_000))]
    pub bridge_rate: u32,

    /// External broker that takes over from the embedded broker and gate, e.g.
    /// `mqtt://rzmon-a:pass@broker.example:1883`; unset = the embedded broker.
    #[arg(long, env = "RZMON_BROKER", hide_env_values = true, value_parser = secret)]
    pub broker: Option<Secret>,

    /// Shared-subscription group on the external broker (`$share/<group>/...`, so several rzmon
    /// readers split the messages); empty = a plain subscription.
    #[arg(long, env = "RZMON_BROKER_SHARE", default_value = "rzmon", value_parser = share_group)]
    pub broker_share: String,
}

impl IntegrationSettings {
    /// `RZMON_BROKER`, parsed.
    pub fn broker(&self) -> Result<Option<BrokerUrl>, String> {
        self.broker
            .as_ref()
            .map(|u| BrokerUrl::parse(u.expose(), "RZMON_BROKER"))
            .transpose()
    }

    /// `RZMON_HA_BROKER`, parsed (the error never shows the value).
    pub fn ha_broker(&self) -> Result<Option<BrokerUrl>, String> {
        self.ha_broker
            .as_ref()
            .map(|u| BrokerUrl::parse(u.expose(), "RZMON_HA_BROKER"))
            .transpose()
    }

    /// `RZMON_BRIDGE_URL`, parsed.
    pub fn bridge_url(&self) -> Result<Option<BrokerUrl>, String> {
        self.bridge_url
            .as_ref()
            .map(|u| BrokerUrl::parse(u.expose(), "RZMON_BRIDGE_URL"))
            .transpose()
    }
}

/// Settings of notification delivery and the heartbeat.
#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    /// Notification channels as Apprise-style URLs, comma-separated (ntfy://, ntfys://,
    /// gotify://, tgram://, mailto://, discord://, slack://, json://, jsons://); read-only in
    /// the dashboard.
    #[arg(long, env = "RZMON_NOTIFY_URLS", hide_env_values = true, value_parser = secret, global = true)]
    pub notify_urls: Option<Secret>,

    /// The dashboard's address as people reach it (e.g. https://rz.example.com), for links in
    /// notifications.
    #[arg(long, env = "RZMON_PUBLIC_URL", value_parser = public_url, global = true)]
    pub public_url: Option<String>,

    /// IANA time zone of quiet hours (e.g. Europe/Berlin); default: the server's.
    #[arg(long, env = "RZMON_TIMEZONE", global = true)]
    pub timezone: Option<String>,

    /// First pause before a failed notification is retried, in milliseconds (doubles up to
    /// 10 minutes; retried for 24 h).
    #[arg(long, env = "RZMON_NOTIFY_RETRY_BASE_MS", default_value_t = 5000, global = true,
          value_parser = int::<u64>("RZMON_NOTIFY_RETRY_BASE_MS", 10, 600_000))]
    pub notify_retry_base_ms: u64,

    /// Dead man's switch: URL pinged while rzmon is healthy (healthchecks.io, Uptime Kuma
    /// push); its failure form is called when a health check fails.
    #[arg(long, env = "RZMON_HEARTBEAT_URL", hide_env_values = true, value_parser = trimmed_secret, global = true)]
    pub heartbeat_url: Option<Secret>,

    /// Seconds between heartbeat pings.
    #[arg(long, env = "RZMON_HEARTBEAT_INTERVAL", default_value_t = 60, global = true,
          value_parser = int::<u64>("RZMON_HEARTBEAT_INTERVAL", 1, 86_400))]
    pub heartbeat_interval: u64,
}

fn public_url(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let host = s.split("://").nth(1).unwrap_or("");
    if (s.starts_with("http://") || s.starts_with("https://"))
        && !host.is_empty()
        && !host.starts_with('/')
    {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "RZMON_PUBLIC_URL must look like https://host[:port][/path], got {s:?}"
        ))
    }
}

/// `RZMON_HEARTBEAT_URL` (its path often is the secret): checked by [`ServeSettings::check`],
/// which never shows the value.
fn heartbeat_url(s: &Secret) -> Result<(), String> {
    let s = s.expose().trim();
    let ok = s.starts_with("http://") || s.starts_with("https://");
    let host = s.split("://").nth(1).unwrap_or("");
    if ok && !host.is_empty() && !host.starts_with('/') {
        Ok(())
    } else {
        Err(
            "RZMON_HEARTBEAT_URL must be an http:// or https:// URL (the value is not shown)"
                .into(),
        )
    }
}

impl ServeSettings {
    /// The checks a value parser cannot do without echoing a secret: lengths of the admin
    /// password and the JWT secret. The error names the variable, never the value.
    pub fn check(&self) -> Result<(), String> {
        self.tls.check()?;
        let short = |var: &str, flag: &str, min: usize| {
            format!(
                "{var} ({flag}) must be at least {min} characters long (the value is not shown)"
            )
        };
        if let Some(p) = &self.admin_password
            && policy::check_password(p.expose()).is_err()
        {
            return Err(short(
                "RZMON_ADMIN_PASSWORD",
                "--admin-password",
                policy::MIN_PASSWORD_LEN,
            ));
        }
        if let Some(t) = &self.metrics_token
            && t.expose().len() < 16
        {
            return Err(short("RZMON_METRICS_TOKEN", "--metrics-token", 16));
        }
        // Checked here rather than when the notifier starts, so a refused start creates nothing.
        crate::notify::policy::time_zone(self.notify.timezone.as_deref())?;
        if let Some(url) = &self.notify.heartbeat_url {
            heartbeat_url(url)?;
        }
        if let Some(urls) = &self.notify.notify_urls {
            crate::notify::apprise::parse_list(urls.expose())?;
        }
        // Broker URLs carry passwords: checked here, so clap never prints the value.
        self.integrations.ha_broker()?;
        self.integrations.bridge_url()?;
        self.integrations.broker()?;
        if let Some(s) = &self.jwt_secret
            && s.expose().len() < policy::MIN_SECRET_LEN
        {
            return Err(short(
                "RZMON_JWT_SECRET",
                "--jwt-secret",
                policy::MIN_SECRET_LEN,
            ));
        }
        Ok(())
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl)
    }

    pub fn remember_ttl(&self) -> Duration {
        Duration::from_secs(self.remember_ttl)
    }

    /// Settings from explicit `RZMON_*` pairs plus the defaults — never from the process
    /// environment or the command line, so tests on parallel threads can each start an app with
    /// their own values. The same parsers run, so errors name the variable as at startup; a
    /// name that is not a setting of `serve` is an error.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        use clap::{CommandFactory as _, FromArgMatches as _};
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            serve: ServeSettings,
        }
        let cmd = Only::command();
        let mut args = vec!["rzmon".to_owned()];
        for (name, value) in pairs {
            let long = cmd
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == name))
                .and_then(|a| a.get_long())
                .ok_or_else(|| format!("{name} is not a setting of rzmon serve"))?;
            args.push(format!("--{long}={value}"));
        }
        let matches = cmd
            .mut_args(|a| a.env(None))
            .try_get_matches_from(args)
            .map_err(|e| e.to_string())?;
        let settings = Only::from_arg_matches(&matches)
            .map(|o| o.serve)
            .map_err(|e| e.to_string())?;
        settings.check()?;
        Ok(settings)
    }
}

fn addr(var: &'static str) -> impl Fn(&str) -> Result<SocketAddr, String> + Clone {
    move |s: &str| {
        s.trim()
            .parse()
            .map_err(|_| format!("{var} must be an address like 0.0.0.0:8080, got {s:?}"))
    }
}

/// Secrets are taken as they are and checked by [`ServeSettings::check`]: a value parser's error
/// would be printed by clap together with the rejected value, i.e. the secret.
fn secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

/// As [`secret`], without surrounding blanks.
fn trimmed_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s.trim()))
}

/// An integer in `min..=max`; the error names the variable (clap adds the flag).
pub(crate) fn int<T>(
    var: &'static str,
    min: T,
    max: T,
) -> impl Fn(&str) -> Result<T, String> + Clone
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy + Send + Sync + 'static,
{
    move |s: &str| match s.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v),
        _ => Err(format!(
            "{var} must be a whole number from {min} to {max}, got {s:?}"
        )),
    }
}

/// One of the names of a `ValueEnum` (any case); the error names the variable and the choices.
/// A parser of its own (not a closure) so `--help` still lists the possible values.
#[derive(Clone)]
pub(crate) struct Choice<T> {
    var: &'static str,
    of: std::marker::PhantomData<fn() -> T>,
}

impl<T> Choice<T> {
    pub(crate) fn new(var: &'static str) -> Self {
        Self {
            var,
            of: std::marker::PhantomData,
        }
    }
}

impl<T: clap::ValueEnum + Clone + Send + Sync + 'static> clap::builder::TypedValueParser
    for Choice<T>
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let s = value.to_string_lossy();
        T::from_str(s.trim(), true).map_err(|_| {
            let names: Vec<String> = self
                .possible_values()
                .into_iter()
                .flatten()
                .map(|p| p.get_name().to_owned())
                .collect();
            let msg = format!(
                "{} must be one of {}, got {s:?}\n",
                self.var,
                names.join(", ")
            );
            clap::Error::raw(clap::error::ErrorKind::InvalidValue, msg).with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            T::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value()),
        ))
    }
}

/// `true` or `false` (also 1/0, yes/no, on/off); the error names the variable.
pub(crate) fn boolean(var: &'static str) -> impl Fn(&str) -> Result<bool, String> + Clone {
    move |s: &str| match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{var} must be true or false, got {s:?}")),
    }
}

/// A tracing filter such as `info` or `rzmon=debug`: comma-separated `level` or `target=level`
/// directives (`tracing_subscriber::filter::Targets`).
fn log_filter(s: &str) -> Result<String, String> {
    log_targets(s).map(|_| s.to_owned())
}

/// The filter `RZMON_LOG` names, with rumqttd silenced unless it names rumqttd: rumqttd logs
/// routine events (clean disconnects, failed logins) at ERROR, and the gate logs connections
/// itself.
pub fn log_targets(s: &str) -> Result<tracing_subscriber::filter::Targets, String> {
    let full = if s.contains("rumqttd") {
        s.to_owned()
    } else {
        format!("{s},rumqttd=off")
    };
    full.parse().map_err(|e| {
        format!("RZMON_LOG must be a log filter like info or rzmon=debug, got {s:?}: {e}")
    })
}

/// One entry of `RZMON_TRUSTED_PROXIES`.
fn cidr(s: &str) -> Result<crate::cidr::Cidr, String> {
    s.parse().map_err(|e| {
        format!("RZMON_TRUSTED_PROXIES entries must be IP addresses or CIDR ranges: {e}")
    })
}

/// One MQTT topic level of A-Z a-z 0-9 - _ (1-64 characters).
fn topic_level(var: &'static str) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |s: &str| {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(s.to_owned())
        } else {
            Err(format!(
                "{var} must be 1-64 characters of A-Z a-z 0-9 - _, got {s:?}"
            ))
        }
    }
}

/// Empty, or one topic level.
fn share_group(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Ok(String::new())
    } else {
        topic_level("RZMON_BROKER_SHARE")(s)
    }
}

/// Topic levels joined by `/`, each like `topic_level`.
fn topic_path(s: &str) -> Result<String, String> {
    let level = topic_level("RZMON_BRIDGE_PREFIX");
    for part in s.split('/') {
        level(part)?;
    }
    Ok(s.to_owned())
}

pub(crate) fn prefix(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "RZMON_TOPIC_PREFIX must be 1-32 characters of A-Z a-z 0-9 - _, got {s:?}"
        ))
    }
}

fn origin(s: &str) -> Result<String, String> {
    let s = s.trim().trim_end_matches('/');
    let ok = (s.starts_with("http://") || s.starts_with("https://"))
        && !s.contains('*')
        && s.split("://")
            .nth(1)
            .is_some_and(|h| !h.is_empty() && !h.contains('/'));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "RZMON_ALLOWED_ORIGINS entries must look like https://host[:port] (no path, no *), got {s:?}"
        ))
    }
}

/// How long data is kept, how big the file may grow, when backups are made.
#[derive(Debug, Clone, Args)]
pub struct LifecycleSettings {
    /// Days raw telemetry is kept (0 = forever); rollups keep the history beyond.
    #[arg(
        long,
        env = "RZMON_RETENTION_DAYS",
        default_value_t = 30,
        global = true,
        value_parser = int::<u32>("RZMON_RETENTION_DAYS", 0, 36_500)
    )]
    pub retention_days: u32,

    /// Days the 5-minute and hourly rollups are kept (0 = forever).
    #[arg(
        long,
        env = "RZMON_ROLLUP_RETENTION_DAYS",
        default_value_t = 0,
        global = true,
        value_parser = int::<u32>("RZMON_ROLLUP_RETENTION_DAYS", 0, 36_500)
    )]
    pub rollup_retention_days: u32,

    /// Days incidents (alerts included) are kept (0 = forever).
    #[arg(
        long,
        env = "RZMON_INCIDENT_RETENTION_DAYS",
        default_value_t = 365,
        global = true,
        value_parser = int::<u32>("RZMON_INCIDENT_RETENTION_DAYS", 0, 36_500)
    )]
    pub incident_retention_days: u32,

    /// Days the access log is kept (0 = forever).
    #[arg(
        long,
        env = "RZMON_ACCESS_RETENTION_DAYS",
        default_value_t = 365,
        global = true,
        value_parser = int::<u32>("RZMON_ACCESS_RETENTION_DAYS", 0, 36_500)
    )]
    pub access_retention_days: u32,

    /// Days the audit log and the config history are kept (0 = forever).
    #[arg(
        long,
        env = "RZMON_AUDIT_RETENTION_DAYS",
        default_value_t = 365,
        global = true,
        value_parser = int::<u32>("RZMON_AUDIT_RETENTION_DAYS", 0, 36_500)
    )]
    pub audit_retention_days: u32,

    /// Largest database size in MiB; beyond it the oldest raw readings are pruned first.
    #[arg(long, env = "RZMON_MAX_DB_MB", global = true,
          value_parser = int::<u64>("RZMON_MAX_DB_MB", 1, 16_777_216))]
    pub max_db_mb: Option<u64>,

    /// Seconds between pruning passes.
    #[arg(long, env = "RZMON_PRUNE_EVERY", default_value_t = 600, global = true,
          value_parser = int::<u64>("RZMON_PRUNE_EVERY", 1, 86_400))]
    pub prune_every: u64,

    /// When backups are made: `daily@HH:MM` (local time), `hourly`, a number of seconds, or
    /// `off`.
    #[arg(long, env = "RZMON_BACKUP_EVERY", default_value = "daily@03:30", global = true,
          value_parser = crate::lifecycle::BackupEvery::parse)]
    pub backup_every: crate::lifecycle::BackupEvery,

    /// Scheduled backups kept in `<data>/backups/`; older ones are deleted.
    #[arg(long, env = "RZMON_BACKUP_KEEP", default_value_t = 7, global = true,
          value_parser = int::<u32>("RZMON_BACKUP_KEEP", 1, 1000))]
    pub backup_keep: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_the_variable() {
        let e = addr("RZMON_HTTP_ADDR")("nonsense").unwrap_err();
        assert!(e.contains("RZMON_HTTP_ADDR"), "{e}");
        let e = int::<u64>("RZMON_STALE_AFTER", 5, 86_400)("abc").unwrap_err();
        assert!(e.contains("RZMON_STALE_AFTER"), "{e}");
        assert!(prefix("a/b").is_err());
        assert!(origin("*").is_err());
        assert!(origin("https://dash.example:8443/x").is_err());
        assert_eq!(
            origin("https://dash.example:8443/").unwrap(),
            "https://dash.example:8443"
        );
    }

    #[test]
    fn log_filters_are_levels_and_target_prefixes() {
        for good in [
            "info",
            "warn,rzmon::broker=debug",
            "rzmon=trace,rumqttd=off",
            "debug",
        ] {
            assert_eq!(log_filter(good).unwrap(), good);
        }
        for bad in ["rzmon=loud", "info,a=info=debug", "rzmon[{x]=debug"] {
            let e = log_filter(bad).unwrap_err();
            assert!(e.contains("RZMON_LOG") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn rumqttd_is_silent_unless_the_filter_names_it() {
        use tracing::Level;
        let quiet = log_targets("info").unwrap();
        assert!(quiet.would_enable("rzmon::broker", &Level::INFO));
        assert!(!quiet.would_enable("rumqttd::router", &Level::ERROR));
        let named = log_targets("info,rumqttd=debug").unwrap();
        assert!(named.would_enable("rumqttd::router", &Level::DEBUG));
    }

    #[test]
    fn settings_come_from_explicit_pairs_only() {
        let s = ServeSettings::from_pairs([
            ("RZMON_HTTP_ADDR", "127.0.0.1:0"),
            (
                "RZMON_ALLOWED_ORIGINS",
                "https://a.example,https://b.example",
            ),
        ])
        .unwrap();
        assert_eq!(s.http_addr, "127.0.0.1:0".parse().unwrap());
        assert_eq!(s.allowed_origins.len(), 2);
        assert_eq!(s.mqtt_addr, "0.0.0.0:1883".parse().unwrap(), "default");
        let e = ServeSettings::from_pairs([("RZMON_TOKEN_TTL", "5")]).unwrap_err();
        assert!(e.contains("RZMON_TOKEN_TTL"), "{e}");
        let e = ServeSettings::from_pairs([("RZMON_NOPE", "1")]).unwrap_err();
        assert!(e.contains("RZMON_NOPE"), "{e}");
    }

    /// Regression: a too-short secret was echoed by clap's error message.
    #[test]
    fn short_secrets_are_refused_without_echoing_them() {
        for (var, value) in [
            ("RZMON_ADMIN_PASSWORD", "short"),
            ("RZMON_JWT_SECRET", "tooshort-but-quite-recognisable"),
        ] {
            let e = ServeSettings::from_pairs([(var, value)]).unwrap_err();
            assert!(e.contains(var), "{e}");
            assert!(!e.contains(value), "the secret is echoed: {e}");
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "***");
    }
}
