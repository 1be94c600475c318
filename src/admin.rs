//! The administration commands (`user …`, `device …`, `backup`): they work on the database file
//! directly, so they also work while the server runs (WAL); the server notices device changes.

use crate::auth::{self, policy};
use crate::broker_config;
use crate::cli::{BrokerConfigCommand, DeviceCommand, ExportArgs, SimulateArgs, UserCommand};
use crate::config::Common;
use crate::model::{AuditAction, DEVICE_ID_RULE, DeviceId, Role, format_ts};
use crate::secrets;
use crate::simulate::{Credentials, SimOptions};
use crate::store::{DB_FILE, Store, StoreError};
use anyhow::{Context, bail};
use serde_json::json;
use std::io::BufRead;
use std::path::Path;

/// The database of an existing installation. Administrative commands never create one: run
/// from the wrong folder, `device add` would otherwise register a device in a new, empty
/// database that no server reads. Says on stderr which data directory it uses (stdout stays
/// clean for `--json`).
pub fn open_existing(data_dir: &Path) -> anyhow::Result<Store> {
    let dir = announce_data_dir(data_dir);
    let file = dir.join(DB_FILE);
    match std::fs::metadata(&file) {
        Ok(m) if m.is_file() => {}
        Ok(_) => bail!("{} is not a database file", file.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "there is no rzmon database at {} (nothing was created). Point the command at the \
             server's data directory with --data-dir DIR or RZMON_DATA_DIR, or start the server \
             once to create it.",
            file.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "cannot read {}: permission denied. Run the command as the user the server runs as \
             (after install.sh: the `rzmon` wrapper does that for you).",
            file.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
    Store::open_in(&dir).with_context(|| format!("cannot open {}", file.display()))
}

/// Says on stderr which data directory a command uses (stdout stays clean for `--json`), and
/// returns it as an absolute path.
pub fn announce_data_dir(data_dir: &Path) -> std::path::PathBuf {
    let dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    eprintln!("rzmon: data directory {}", dir.display());
    dir
}

pub fn user(store: &Store, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add {
            username,
            role,
            password_stdin,
            json,
        } => {
            check_username(&username)?;
            let role = parse_role(&role)?;
            let (password, generated) = choose_password(password_stdin)?;
            let hash = auth::hash_password(&password)?;
            match store.create_user_as(&username, &hash, role) {
                Err(StoreError::Exists(_)) => bail!("user {username:?} already exists"),
                r => r?,
            }
            print_password(
                &username,
                &password,
                generated,
                json,
                &format!("created ({role})"),
            );
        }
        UserCommand::Passwd {
            username,
            password_stdin,
            json,
        } => {
            let (password, generated) = choose_password(password_stdin)?;
            let hash = auth::hash_password(&password)?;
            if !store.set_user_password(&username, &hash)? {
                bail!("there is no user {username:?}");
            }
            if let Some(dir) = store.path().parent() {
                secrets::forget_initial_admin_password(dir, &username);
            }
            print_password(&username, &password, generated, json, "updated");
        }
        UserCommand::List { json } => {
            let users = store.users()?;
            if json {
                let list: Vec<_> = users
                    .iter()
                    .map(|u| json!({"username": u.username, "role": u.role, "created": format_ts(u.created_ms)}))
                    .collect();
                println!("{}", json!({ "users": list }));
            } else {
                for u in users {
                    println!(
                        "{}\t{}\tcreated {}",
                        u.username,
                        u.role,
                        format_ts(u.created_ms)
                    );
                }
            }
        }
        UserCommand::Role { username, role } => {
            let role = parse_role(&role)?;
            match store.set_user_role(&username, role) {
                Err(StoreError::LastAdmin(_)) => bail!(
                    "{username:?} is the last admin; make another user admin before changing its role"
                ),
                Ok(false) => bail!("there is no user {username:?}"),
                r => r?,
            };
            println!("User {username} is now {role}.");
        }
        UserCommand::Remove { username } => {
            match store.remove_user(&username) {
                Err(StoreError::LastAdmin(_)) => bail!(
                    "{username:?} is the last admin; make another user admin before removing it"
                ),
                Ok(false) => bail!("there is no user {username:?}"),
                r => r?,
            };
            println!("User {username} removed; its sessions and API tokens ended.");
        }
    }
    Ok(())
}

pub fn device(store: &Store, cmd: DeviceCommand) -> anyhow::Result<()> {
    match cmd {
        DeviceCommand::Add {
            id,
            json,
            broker_config,
        } => {
            let device = DeviceId::parse(&id).with_context(|| {
                format!("{id:?} is not a valid device id: use {DEVICE_ID_RULE}")
            })?;
            let password = secrets::random_password(secrets::DEVICE_PASSWORD_LEN)?;
            match store.create_device(&device, &secrets::hash_device_secret(&password)?) {
                Err(StoreError::Exists(_)) => bail!("device {id:?} already exists"),
                r => r?,
            }
            let broker_hash = secrets::mosquitto_hash(&password)?;
            store.set_broker_hash(&id, &broker_hash)?;
            store.audit("cli", AuditAction::DeviceAdd, &id, &json!({}))?;
            match broker_config {
                None => print_device(&id, &password, json),
                Some(_) => {
                    let line = broker_config::mosquitto_passwd_line(&id, &broker_hash);
                    if json {
                        println!(
                            "{}",
                            json!({"device": id, "username": id, "password": password, "mosquitto_passwd": line})
                        );
                    } else {
                        print_device(&id, &password, false);
                        println!("Mosquitto password file line (the ACL needs no change):");
                        println!("{line}");
                    }
                }
            }
        }
        DeviceCommand::Passwd { id, json } => {
            let password = secrets::random_password(secrets::DEVICE_PASSWORD_LEN)?;
            if !store.set_device_secret(&id, &secrets::hash_device_secret(&password)?)? {
                bail!("there is no device {id:?}");
            }
            store.set_broker_hash(&id, &secrets::mosquitto_hash(&password)?)?;
            store.audit("cli", AuditAction::DevicePasswd, &id, &json!({}))?;
            print_device(&id, &password, json);
        }
        DeviceCommand::List { json } => {
            let devices = store.devices()?;
            if json {
                let list: Vec<_> = devices
                    .iter()
                    .map(|d| json!({"id": d.id, "enabled": d.enabled, "created": format_ts(d.created_ms)}))
                    .collect();
                println!("{}", json!({ "devices": list }));
            } else {
                for d in devices {
                    let state = if d.enabled { "enabled" } else { "disabled" };
                    println!("{}\t{state}\tcreated {}", d.id, format_ts(d.created_ms));
                }
            }
        }
        DeviceCommand::Remove { id } => {
            if !store.remove_device(&id)? {
                bail!("there is no device {id:?}");
            }
            store.audit("cli", AuditAction::DeviceRemove, &id, &json!({}))?;
            println!(
                "Device {id} removed; its stored history stays. A running server closes its connection."
            );
        }
    }
    Ok(())
}

/// Options and credentials for `rzmon simulate`: from flags, a `device add --json` file, or
/// (demo mode) devices `sim-1..N` registered or re-keyed in the local database.
pub fn simulation(
    common: &Common,
    args: SimulateArgs,
) -> anyhow::Result<(SimOptions, Vec<Credentials>)> {
    let (host, port) = args
        .broker
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_owned(), p.parse().ok()?)))
        .with_context(|| format!("--broker must look like host:port, got {:?}", args.broker))?;
    for (name, p) in [
        ("--access-probability", args.access_probability),
        ("--incident-probability", args.incident_probability),
    ] {
        if !(0.0..=1.0).contains(&p) {
            bail!("{name} must be between 0 and 1");
        }
    }
    if !(0.001..=3600.0).contains(&args.interval) {
        bail!("--interval must be between 0.001 and 3600 seconds");
    }
    let tls = sim_tls(common, &args)?;
    let devices = if let Some(n) = args.devices {
        let store = open_existing(&common.data_dir)?;
        (1..=n)
            .map(|i| {
                let id = format!("sim-{i}");
                let password = secrets::random_password(secrets::DEVICE_PASSWORD_LEN)?;
                let hash = secrets::hash_device_secret(&password)?;
                if !store.set_device_secret(&id, &hash)? {
                    let device = DeviceId::parse(&id).context("simulated device id")?;
                    store.create_device(&device, &hash)?;
                    store.audit(
                        "cli",
                        AuditAction::DeviceAdd,
                        &id,
                        &json!({ "simulated": true }),
                    )?;
                }
                store.set_broker_hash(&id, &secrets::mosquitto_hash(&password)?)?;
                Ok(Credentials {
                    device: id,
                    password,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    } else if let Some(path) = &args.credentials {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
                .context("cannot read credentials from stdin")?
        } else {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
        };
        let v: serde_json::Value = serde_json::from_str(&text)
            .context("credentials must be the JSON printed by `rzmon device add ID --json`")?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        vec![Credentials {
            device: field("username")
                .or_else(|| field("device"))
                .context("credentials lack `username`")?,
            password: field("password").context("credentials lack `password`")?,
        }]
    } else {
        match (args.device, args.password) {
            (Some(device), Some(password)) => vec![Credentials { device, password }],
            _ => bail!("give --device and --password, --credentials FILE, or --devices N"),
        }
    };
    let opts = SimOptions {
        host,
        port,
        prefix: args.prefix.clone(),
        interval: args.interval,
        enrol_delay: args.enrol_delay,
        access_probability: args.access_probability,
        incident_probability: args.incident_probability,
        count: args.count,
        seed: args
            .seed
            .unwrap_or_else(|| u64::try_from(crate::model::now_ms()).unwrap_or(0)),
        tls,
    };
    Ok((opts, devices))
}

/// `--tls`: trust `--ca FILE`, else the CA generated in --data-dir.
fn sim_tls(
    common: &Common,
    args: &SimulateArgs,
) -> anyhow::Result<Option<std::sync::Arc<rustls::ClientConfig>>> {
    if !args.tls {
        return Ok(None);
    }
    let ca = match &args.ca {
        Some(f) => f.clone(),
        None => crate::tls::generate::Paths::in_dir(&announce_data_dir(&common.data_dir)).ca_cert,
    };
    let pem = std::fs::read(&ca).with_context(|| {
        format!(
            "--tls needs the server's CA: cannot read {} (give --ca FILE)",
            ca.display()
        )
    })?;
    crate::tls::client_config(&pem)
        .with_context(|| format!("--ca {}", ca.display()))
        .map(Some)
}

/// `rzmon tls show`: the generated CA's path and fingerprint.
pub fn tls_show(data_dir: &Path) -> anyhow::Result<()> {
    let data_dir = &announce_data_dir(data_dir);
    match crate::tls::CaInfo::read(data_dir)? {
        Some(ca) => {
            println!("CA certificate: {}", ca.path.display());
            println!("SHA-256 fingerprint: {}", ca.fingerprint);
            let names = crate::tls::generate::Paths::in_dir(data_dir).names();
            if let Some(n) = names {
                println!("Server certificate names: {n}");
            }
            Ok(())
        }
        None => bail!(
            "no generated CA in {} (RZMON_TLS=auto creates one at the next start)",
            data_dir.display()
        ),
    }
}

pub fn backup(store: &Store, file: &Path) -> anyhow::Result<()> {
    if file.exists() {
        bail!("{} exists already; choose a new file name", file.display());
    }
    store
        .backup(file)
        .with_context(|| format!("backup to {} failed", file.display()))?;
    println!("Backup written to {}", file.display());
    Ok(())
}

/// `rzmon restore FILE`: see `lifecycle::restore`.
pub fn restore(data_dir: &Path, file: &Path, json: bool) -> anyhow::Result<()> {
    let data_dir = &announce_data_dir(data_dir);
    let db = data_dir.join(crate::store::DB_FILE);
    let done = crate::lifecycle::restore::restore(data_dir, &db, file)?;
    let aside = done.kept_aside.as_ref().map(|p| p.display().to_string());
    if json {
        println!(
            "{}",
            json!({"restored": file.display().to_string(), "database": db.display().to_string(),
                   "kept_aside": aside, "schema_version": done.check.schema_version,
                   "rows": done.check.rows})
        );
    } else {
        println!("Restored {} into {}.", file.display(), db.display());
        if let Some(a) = aside {
            println!("The replaced database is kept as {a}.");
        }
    }
    Ok(())
}

/// `rzmon export`: CSV on standard output, streamed page by page.
pub fn export(store: &Store, args: &ExportArgs) -> anyhow::Result<()> {
    use crate::api::params::{Bound, parse_instant};
    use crate::lifecycle::csv::{Export, export};
    use std::io::Write;
    let instant = |v: &Option<String>, bound, flag: &str| {
        v.as_deref()
            .map(|s| parse_instant(s, bound).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
            .transpose()
    };
    let device = args
        .device
        .as_deref()
        .map(|d| {
            DeviceId::parse(d)
                .with_context(|| format!("--device {d:?} is not a device id: use {DEVICE_ID_RULE}"))
        })
        .transpose()?;
    let q = crate::store::RangeQuery {
        start_ms: instant(&args.since, Bound::Start, "since")?,
        end_ms: instant(&args.until, Bound::End, "until")?,
        limit: 0,
        device,
    };
    let what = if args.incidents {
        Export::Incidents(q, args.kind.clone())
    } else {
        Export::Telemetry(q)
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut write_error = None;
    export(store, &what, |chunk| match out.write_all(&chunk) {
        Ok(()) => true,
        Err(e) => {
            write_error = Some(e);
            false
        }
    })?;
    if let Some(e) = write_error {
        return Err(e).context("cannot write to standard output");
    }
    out.flush().context("cannot write to standard output")?;
    Ok(())
}

/// `rzmon token USER`: checks the password from stdin against the database and prints a token
/// signed with the server's secret, so scripts fail loudly on a wrong password instead of
/// carrying an error message as their token.
pub fn token(
    store: &Store,
    username: &str,
    jwt_secret: Option<&str>,
    ttl: std::time::Duration,
) -> anyhow::Result<()> {
    let password = read_password_line()?;
    let user = store
        .user(username)?
        .filter(|u| auth::verify_password(&password, &u.password_hash));
    let Some(user) = user else {
        bail!("wrong user name or password for {username:?}");
    };
    let secret = match jwt_secret {
        Some(s) => s.as_bytes().to_vec(),
        None => {
            let dir = store.path().parent().unwrap_or(Path::new("."));
            let file = dir.join(secrets::JWT_SECRET_FILE);
            let text = std::fs::read_to_string(&file).with_context(|| {
                format!("cannot read {} (or give --jwt-secret)", file.display())
            })?;
            text.trim().as_bytes().to_vec()
        }
    };
    let keys = auth::jwt::JwtKeys::new(&secret, ttl).context("the JWT secret cannot be used")?;
    let (token, _) = keys
        .issue(&user.username, user.uid, user.token_gen)
        .context("cannot issue a token")?;
    secrets::forget_initial_admin_password(
        store.path().parent().unwrap_or(Path::new(".")),
        username,
    );
    println!("{token}");
    Ok(())
}

fn parse_role(name: &str) -> anyhow::Result<Role> {
    Role::parse(name).with_context(|| format!("{name:?} is not a role: use admin or viewer"))
}

fn check_username(name: &str) -> anyhow::Result<()> {
    if !policy::username_ok(name) {
        bail!(
            "{name:?} is not a valid user name: use {}",
            policy::USERNAME_RULE
        );
    }
    Ok(())
}

/// The first line of standard input, without its line end.
fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The password from stdin, or a generated one (`true`).
fn choose_password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((secrets::random_password(secrets::USER_PASSWORD_LEN)?, true));
    }
    let password = read_password_line()?;
    if let Err(rule) = policy::check_password(&password) {
        bail!("the password {rule}");
    }
    Ok((password, false))
}

fn print_password(user: &str, password: &str, generated: bool, json: bool, what: &str) {
    match (json, generated) {
        (true, true) => println!("{}", json!({"username": user, "password": password})),
        (true, false) => println!("{}", json!({ "username": user })),
        (false, true) => println!("User {user} {what}. Password (shown once): {password}"),
        (false, false) => println!("User {user} {what}."),
    }
}

/// `rzmon broker-config mosquitto`: the password file and ACL for every enabled device plus
/// the service account, written into `--out` or printed.
pub fn broker_config(store: &Store, cmd: BrokerConfigCommand) -> anyhow::Result<()> {
    let BrokerConfigCommand::Mosquitto {
        out,
        service_user,
        service_password_stdin,
        json,
        topic_prefix,
    } = cmd;
    let prefix = topic_prefix.as_str();
    if DeviceId::parse(&service_user).is_none() {
        bail!("--service-user must be {DEVICE_ID_RULE}");
    }
    let accounts = store.broker_accounts()?;
    if accounts.iter().any(|(id, _)| *id == service_user) {
        bail!("--service-user {service_user:?} is also a device id; choose another name");
    }
    let (with_hash, missing): (Vec<_>, Vec<_>) =
        accounts.into_iter().partition(|(_, h)| h.is_some());
    for (id, _) in &missing {
        eprintln!(
            "warning: device {id} has no stored broker hash (added before); re-key it with `rzmon device passwd {id}`"
        );
    }
    let devices: Vec<(String, String)> = with_hash
        .into_iter()
        .filter_map(|(id, h)| Some((id, h?)))
        .collect();
    let (service_password, generated) = choose_password(service_password_stdin)?;
    let service_hash = secrets::mosquitto_hash(&service_password)?;
    let passwd = broker_config::mosquitto_passwd(&devices, (&service_user, &service_hash));
    let acl = broker_config::mosquitto_acl(prefix, &service_user);
    if json {
        let mut v = json!({"password_file": passwd, "acl_file": acl, "service_user": service_user});
        if generated {
            v["service_password"] = service_password.clone().into();
        }
        println!("{v}");
        return Ok(());
    }
    match out {
        Some(dir) => {
            let (p, a) = (dir.join("rzmon.passwd"), dir.join("rzmon.acl"));
            write_0600(&p, passwd.as_bytes())?;
            std::fs::write(&a, &acl).with_context(|| format!("cannot write {}", a.display()))?;
            println!(
                "Wrote {} ({} devices + {service_user}) and {}.",
                p.display(),
                devices.len(),
                a.display()
            );
            println!(
                "mosquitto.conf:\n{}",
                broker_config::mosquitto_conf(&p.display().to_string(), &a.display().to_string())
            );
        }
        None => print!("# ---- password file\n{passwd}# ---- ACL file\n{acl}"),
    }
    if generated {
        println!("Service account {service_user} password (shown once): {service_password}");
        println!("  RZMON_BROKER=mqtt://{service_user}:<password>@<host>:1883");
    }
    Ok(())
}

/// Writes `data` to `path` (replacing it) readable by the owner only: it holds password hashes.
fn write_0600(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(data)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn print_device(id: &str, password: &str, json: bool) {
    if json {
        println!(
            "{}",
            json!({"device": id, "username": id, "password": password})
        );
    } else {
        println!("Device {id}: MQTT credentials (shown once)");
        println!("  client id: {id}");
        println!("  username:  {id}");
        println!("  password:  {password}");
    }
}
