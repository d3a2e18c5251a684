//! Subcommands.

pub mod tools;

use clap::Subcommand;

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tools for TSDB blocks (like `promtool tsdb`) and benchmarks.
    Tools(tools::Config),
}

/// Runs a subcommand.
pub async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Tools(c) => tools::run(c).await,
    }
}
