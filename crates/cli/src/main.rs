//! `strata`: a Prometheus-compatible, highly available long-term metrics system.
//! One binary with Thanos-like subcommands; this crate only parses flags and wires
//! the library crates together.

mod commands;
mod gofmt;

use clap::Parser;

/// mimalloc: the ingest path allocates many small label strings, where glibc's
/// allocator cost a third of the CPU in profiles. Its v2 line (the `v2` feature):
/// under remote-write load v3 kept about 15% more memory resident and ingested
/// slower (`strata tools bench ingest --servers strata --ingest-only`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about = "Prometheus-compatible long-term storage and global query, in one binary"
)]
struct Cli {
    /// Log level: error, warn, info, debug, trace.
    #[arg(long = "log.level", default_value = "info", global = true)]
    log_level: String,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log_level);
    // A small blocking pool: filesystem object storage and block I/O run there,
    // and every extra thread keeps its own allocator pages resident (a store
    // gateway syncing 24 blocks grew 60 threads and 50 MiB with tokio's default).
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cli.command.max_blocking_threads())
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(commands::run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colours only on a terminal (and not with NO_COLOR): logs redirected to a
    // file, as the demo's components are, stay plain text.
    use std::io::IsTerminal;
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}
