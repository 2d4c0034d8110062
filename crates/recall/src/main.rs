//! `recall`: cache keys and memoized task runs for batch jobs. Wiring only: the behaviour
//! lives in the `recall_cli` library.

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};
use recall_cli::cli::{Cli, Command};
use recall_cli::error::EXIT_STORAGE;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "recall",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("recall: error: {err:#}");
            ExitCode::from(EXIT_STORAGE)
        }
    }
}

/// Runs the command on a Tokio runtime; library errors become exit statuses here.
fn run(cli: Cli) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(match runtime.block_on(recall_cli::cmd::execute(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("recall: error: {err}");
            err.exit_code()
        }
    })
}
