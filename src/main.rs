//! The `rzmon` binary: reads `.env`, parses the command line, sets up logging, dispatches.
//! Errors end the process with a message on stderr and exit code 1.

use clap::Parser;
use rzmon::cli::{Cli, Command};
use rzmon::store::Store;
use rzmon::{admin, app};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    // A missing .env is normal; a broken one is reported by dotenvy through the error.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("error: cannot read .env: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli.common.log) {
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
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(cancel_on_signal(shutdown.clone()));
                app::serve(&cli.common, cli.serve, shutdown).await
            })
        }
        Command::User(cmd) => admin::user(&Store::open_in(&cli.common.data_dir)?, cmd),
        Command::Device(cmd) => admin::device(&Store::open_in(&cli.common.data_dir)?, cmd),
        Command::Simulate(args) => {
            let (opts, devices) = admin::simulation(&cli.common, &cli.serve.topic_prefix, args)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(cancel_on_signal(shutdown.clone()));
                rzmon::simulate::run(opts, devices, shutdown).await
            })
        }
        Command::Backup { file } => admin::backup(&Store::open_in(&cli.common.data_dir)?, &file),
        Command::Restore { file, json } => admin::restore(&cli.common.data_dir, &file, json),
        Command::Export(args) => admin::export(&Store::open_in(&cli.common.data_dir)?, &args),
    }
}

/// rumqttd logs routine events (clean disconnects, failed logins) at ERROR; the gate logs
/// connections itself, so rumqttd is silenced unless the filter names it.
fn init_logging(filter: &str) -> Result<(), String> {
    let full = if filter.contains("rumqttd") {
        filter.to_owned()
    } else {
        format!("{filter},rumqttd=off")
    };
    let filter = EnvFilter::try_new(&full)
        .map_err(|e| format!("RZMON_LOG (--log) {filter:?} is not a valid log filter: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
