//! The command line (clap definitions only): `serve` (the default when no command is given),
//! `user …`, `device …`, `simulate`, `backup`, `restore`,
//! `export`. Only the data directory and logging are global (before or after the command);
//! the server's settings belong to `serve`, so other commands' `--help` lists only their own.

use crate::config::{Common, ServeSettings};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// rzmon — server-room monitor and access controller for ESP32 devices, in one binary.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,

    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses `args`; without a command (`rzmon`, `rzmon --http-addr ...`) it is `serve`.
    pub fn parse_with_default(args: Vec<std::ffi::OsString>) -> Self {
        use clap::CommandFactory as _;
        let cmd = Self::command();
        let is_command = |a: &std::ffi::OsString| {
            a.to_str().is_some_and(|a| {
                a == "help"
                    || cmd
                        .get_subcommands()
                        .any(|c| c.get_name() == a || c.get_all_aliases().any(|x| x == a))
            })
        };
        let asks_help = |a: &std::ffi::OsString| {
            matches!(a.to_str(), Some("-h" | "--help" | "-V" | "--version"))
        };
        let mut args = args;
        if !args.iter().skip(1).any(|a| is_command(a) || asks_help(a)) {
            args.insert(1.min(args.len()), "serve".into());
        }
        Self::parse_from(args)
    }
}

// Parsed once at start and moved out at once: the size of the serve variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance: MQTT broker, ingest, REST API, WebSocket and dashboard (default).
    Serve(Box<ServeSettings>),
    /// Manage dashboard users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage devices (MQTT credentials of ESP32s).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Simulated ESP32(s) speaking the device protocol through the MQTT port (no hardware needed).
    Simulate(SimulateArgs),
    /// Print a login token for scripts (the password is read from standard input), as
    /// `POST /login` would answer it; exits non-zero on a wrong password.
    Token {
        /// The dashboard user.
        username: String,
        /// The server's RZMON_JWT_SECRET when it uses one (else `<data>/jwt_secret` is used).
        #[arg(long, env = "RZMON_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        /// Lifetime in seconds, as the server's RZMON_TOKEN_TTL.
        #[arg(long, env = "RZMON_TOKEN_TTL", default_value_t = 43_200,
              value_parser = crate::config::int::<u64>("RZMON_TOKEN_TTL", 60, 2_592_000))]
        token_ttl: u64,
    },
    /// TLS: `rzmon tls show` prints the generated CA's path and SHA-256 fingerprint.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Files for an external broker (RZMON_BROKER) that takes over device logins and topic
    /// permissions.
    #[command(subcommand)]
    BrokerConfig(BrokerConfigCommand),
    /// Write a consistent copy of the database to FILE while the server may be running.
    Backup {
        /// Destination file; must not exist.
        file: PathBuf,
    },
    /// Replace the database by a backup (stop the server first). The replaced database is
    /// kept as rzmon.db.before-restore-<time>.
    Restore {
        /// The backup to restore (checked first; a damaged or newer file is refused).
        file: PathBuf,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Write telemetry (or incidents) as CSV to standard output, oldest first.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// From this instant (a date, a date-time, or epoch seconds, as the API's start_date).
    #[arg(long)]
    pub since: Option<String>,
    /// Until this instant (a date alone means the end of that day).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this device.
    #[arg(long)]
    pub device: Option<String>,
    /// Export incidents instead of telemetry.
    #[arg(long)]
    pub incidents: bool,
    /// Only incidents of this type (with --incidents).
    #[arg(long = "type", requires = "incidents")]
    pub kind: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Print the generated CA certificate's path and SHA-256 fingerprint.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints a random password unless --password-stdin is given.
    Add {
        username: String,
        /// admin: everything; viewer: read only (no changes to config, access ids, devices,
        /// alert rules, channels or users).
        #[arg(long, default_value = "admin", value_parser = ["admin", "viewer"])]
        role: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Set a new password; prints a random one unless --password-stdin is given.
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        json: bool,
    },
    /// Change a user's role (the last admin stays an admin).
    Role {
        username: String,
        #[arg(value_parser = ["admin", "viewer"])]
        role: String,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a user, its sessions and API tokens (never the last admin).
    Remove { username: String },
}

/// External brokers `rzmon broker-config` writes files for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BrokerKind {
    Mosquitto,
}

#[derive(Debug, Subcommand)]
pub enum BrokerConfigCommand {
    /// Mosquitto password file (PBKDF2-SHA512 hashes) and ACL for every registered device plus
    /// this rzmon instance's service account.
    Mosquitto {
        /// Directory to write `rzmon.passwd` (0600) and `rzmon.acl` into; without it both
        /// files are printed.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Username of this rzmon instance's service account (one per instance).
        #[arg(long, default_value = "rzmon-service")]
        service_user: String,
        /// Read the service account's password from standard input; otherwise a random one is
        /// generated and printed once.
        #[arg(long)]
        service_password_stdin: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// First topic level of every device topic (the server's RZMON_TOPIC_PREFIX).
        #[arg(long, env = "RZMON_TOPIC_PREFIX", default_value = "rz",
              value_parser = crate::config::prefix)]
        topic_prefix: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register a device; prints its MQTT username and password once.
    Add {
        /// Device id (1–64 of A-Z a-z 0-9 - _); also the MQTT username and client id.
        id: String,
        #[arg(long)]
        json: bool,
        /// Also print the device's line for this external broker's password file.
        #[arg(long, value_enum)]
        broker_config: Option<BrokerKind>,
    },
    /// Give a device a new MQTT password (its live connection is closed).
    Passwd {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List devices.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a device (its live connection is closed; its stored history stays).
    Remove { id: String },
}

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// MQTT address of rzmon (the gate).
    #[arg(long, env = "RZMON_SIM_BROKER", default_value = "127.0.0.1:1883")]
    pub broker: String,
    /// First topic level, as the server's RZMON_TOPIC_PREFIX.
    #[arg(long, env = "RZMON_TOPIC_PREFIX", default_value = "rz", value_parser = crate::config::prefix)]
    pub prefix: String,
    /// Device id (= MQTT username); taken from --credentials when given.
    #[arg(long, conflicts_with = "devices")]
    pub device: Option<String>,
    /// The device's MQTT password.
    #[arg(
        long,
        env = "RZMON_SIM_PASSWORD",
        hide_env_values = true,
        conflicts_with = "devices"
    )]
    pub password: Option<String>,
    /// File with the `--json` output of `rzmon device add` (`-` = standard input).
    #[arg(long, conflicts_with_all = ["device", "password", "devices"])]
    pub credentials: Option<PathBuf>,
    /// Demo mode: N devices `sim-1`…`sim-N`, registered (or re-keyed) in the local database of
    /// --data-dir, so this works next to a running server without copying passwords.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub devices: Option<u32>,
    /// Seconds between telemetry messages.
    #[arg(long, default_value_t = 5.0)]
    pub interval: f64,
    /// Seconds until a card is presented when the backend asks to enrol one.
    #[arg(long, default_value_t = 2.0)]
    pub enrol_delay: f64,
    /// Probability per telemetry message of an access event.
    #[arg(long, default_value_t = 0.1)]
    pub access_probability: f64,
    /// Probability per telemetry message of an incident.
    #[arg(long, default_value_t = 0.02)]
    pub incident_probability: f64,
    /// Stop after this many telemetry messages per device (0 = run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Seed of the random readings (same seed, same story).
    #[arg(long)]
    pub seed: Option<u64>,
    /// MQTT over TLS (point --broker at the MQTTS port, e.g. 127.0.0.1:8883).
    #[arg(long)]
    pub tls: bool,
    /// CA certificate (PEM) to trust with --tls; default: the one generated in --data-dir.
    #[arg(long, requires = "tls")]
    pub ca: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory as _, FromArgMatches as _};

    /// Arguments that take any text, so there is no bad value to give them, each with where
    /// its value is checked instead. `(command, variable)`.
    const ANY_TEXT: &[(&str, &str, &str)] = &[
        (
            "serve",
            "RZMON_DATA_DIR",
            "any directory; opening it names the path",
        ),
        (
            "token",
            "RZMON_JWT_SECRET",
            "any secret; a wrong one gives tokens the server refuses",
        ),
        (
            "simulate",
            "RZMON_SIM_BROKER",
            "host:port; the connection error names it",
        ),
        (
            "simulate",
            "RZMON_SIM_PASSWORD",
            "any secret; the broker judges it",
        ),
    ];

    /// Values that are wrong for every argument that checks its value at all.
    const BAD: &[&str] = &["zq9x", "0", "-7", "99999999999", "zq/9x", "zq#9x=loud"];

    /// Every command with its arguments (global ones only under `serve`).
    fn leaves(cmd: &clap::Command, path: &[String], out: &mut Vec<(Vec<String>, clap::Arg)>) {
        let subs: Vec<_> = cmd.get_subcommands().collect();
        if subs.is_empty() {
            for a in cmd.get_arguments() {
                if !a.is_global_set() || path == ["serve"] {
                    out.push((path.to_vec(), a.clone()));
                }
            }
        }
        for sub in subs {
            let mut p = path.to_vec();
            p.push(sub.get_name().to_owned());
            leaves(sub, &p, out);
        }
    }

    /// The command line without environment lookups (the test process's variables must not
    /// count): the same value parsers run on `--flag=value` as on `RZMON_*=value`.
    fn no_env(cmd: clap::Command) -> clap::Command {
        let mut cmd = cmd.mut_args(|a| a.env(None));
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        for n in names {
            cmd = cmd.mut_subcommand(n, no_env);
        }
        cmd
    }

    /// Parses like `main` (serve's settings are also checked); the error as the user sees it.
    fn refused(path: &[String], required: &[String], flag: &str) -> Option<String> {
        let mut args = vec!["rzmon".to_owned()];
        args.extend_from_slice(path);
        args.extend_from_slice(required);
        args.push(flag.to_owned());
        let parsed = no_env(Cli::command())
            .try_get_matches_from(&args)
            .map_err(|e| e.to_string())
            .and_then(|m| Cli::from_arg_matches(&m).map_err(|e| e.to_string()));
        match parsed {
            Err(e) => Some(e),
            Ok(Cli {
                command: Command::Serve(s),
                ..
            }) => s.check().err(),
            Ok(_) => None,
        }
    }

    /// Regression: 15 variables (RZMON_RETENTION_DAYS=abc, RZMON_TLS=maybe, ...) were refused
    /// with clap's flag-only message. Walks every argument backed by a variable, in every
    /// command, so a new variable is covered without touching this test: each bad value must be
    /// refused with a message naming the variable, and a secret's value is never repeated.
    #[test]
    fn every_bad_variable_value_names_the_variable() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut all = Vec::new();
        leaves(&cmd, &[], &mut all);
        let (mut checked, mut wrong) = (0, Vec::new());
        for (path, arg) in &all {
            let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            let var = var.to_string_lossy();
            let sub = cmd.find_subcommand(&path[0]).expect("a command");
            let sub = path[1..]
                .iter()
                .fold(sub, |c, n| c.find_subcommand(n).expect("sub"));
            let required: Vec<String> = sub
                .get_positionals()
                .filter(|p| p.is_required_set())
                .map(|_| "x".to_owned())
                .collect();
            let mut any = false;
            for bad in BAD {
                let Some(e) = refused(path, &required, &format!("--{long}={bad}")) else {
                    continue;
                };
                any = true;
                if !e.contains(&*var) {
                    wrong.push(format!(
                        "{path:?} {var}={bad:?} does not name the variable: {e}"
                    ));
                }
                if arg.is_hide_env_values_set() && bad.len() > 3 && e.contains(bad) {
                    wrong.push(format!("{var} echoes its secret: {e}"));
                }
            }
            let exempt = ANY_TEXT
                .iter()
                .any(|(c, v, _)| path.join(" ") == *c && *v == var);
            if !any && !exempt {
                wrong.push(format!(
                    "{path:?} {var} accepts every value of {BAD:?}: give it a parser that names \
                     the variable, or list it in ANY_TEXT with the reason"
                ));
            }
            if any && exempt {
                wrong.push(format!("{var} is refused now: remove it from ANY_TEXT"));
            }
            checked += 1;
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        assert!(checked >= 50, "only {checked} variables found");
    }
}
