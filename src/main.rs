//! The `rzmon` binary: reads `.env`, parses the command line, sets up logging, dispatches.
//! Errors end the process with a message on stderr and exit code 1. `serve` ends on SIGINT or
//! SIGTERM; SIGHUP is caught from the start (the app's reload service acts on it).

use rzmon::cli::{Cli, Command};
use rzmon::config::LogFormat;
use rzmon::{admin, app};
use std::io::IsTerminal as _;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// jemalloc, configured at build time (`JEMALLOC_SYS_WITH_MALLOC_CONF` in .cargo/config.toml).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    // A missing .env is normal; a broken one is reported by dotenvy through the error.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("error: cannot read .env: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let cli = Cli::parse_with_default(std::env::args_os().collect());
    // One TLS crypto provider, chosen explicitly (our own configs name it as well).
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Err(e) = init_logging(&cli.common.log, cli.common.log_format) {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(settings) => {
            settings.check().map_err(anyhow::Error::msg)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                // From here on SIGHUP never ends the process (its default action); the app's
                // reload service acts on it once running.
                #[cfg(unix)]
                let _hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
                let shutdown = CancellationToken::new();
                tokio::spawn(cancel_on_signal(shutdown.clone()));
                app::serve(&cli.common, *settings, shutdown).await
            })
        }
        Command::User(cmd) => admin::user(&admin::open_existing(&cli.common.data_dir)?, cmd),
        Command::Device(cmd) => admin::device(&admin::open_existing(&cli.common.data_dir)?, cmd),
        Command::Simulate(args) => {
            let (opts, devices) = admin::simulation(&cli.common, args)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(cancel_on_signal(shutdown.clone()));
                rzmon::simulate::run(opts, devices, shutdown).await
            })
        }
        Command::BrokerConfig(cmd) => {
            admin::broker_config(&admin::open_existing(&cli.common.data_dir)?, cmd)
        }
        Command::Token {
            username,
            jwt_secret,
            token_ttl,
        } => admin::token(
            &admin::open_existing(&cli.common.data_dir)?,
            &username,
            jwt_secret.as_deref(),
            std::time::Duration::from_secs(token_ttl),
        ),
        Command::Tls(rzmon::cli::TlsCommand::Show) => admin::tls_show(&cli.common.data_dir),
        Command::Backup { file } => {
            admin::backup(&admin::open_existing(&cli.common.data_dir)?, &file)
        }
        Command::Restore { file, json } => admin::restore(&cli.common.data_dir, &file, json),
        Command::Export(args) => admin::export(&admin::open_existing(&cli.common.data_dir)?, &args),
    }
}

/// Logs to stderr through the filter of `RZMON_LOG` (see `config::log_targets`).
fn init_logging(filter: &str, format: LogFormat) -> Result<(), String> {
    let filter = rzmon::config::log_targets(filter)?;
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry.with(logs.json()).init(),
        // Colour codes only where a person reads them, never into a file or the journal.
        LogFormat::Text => registry
            .with(logs.with_ansi(std::io::stderr().is_terminal()))
            .init(),
    }
    Ok(())
}

/// Cancels `token` on SIGINT or SIGTERM.
async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    token.cancel();
}
