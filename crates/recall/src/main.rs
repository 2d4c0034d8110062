//! `recall`: cache keys and memoized task runs for batch jobs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use recall_cli::key_args::KeyFlags;
use recall_key::KeyMaterial;

/// Exit status for bad usage or bad input.
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "recall",
    version,
    about = "Flyte-style task memoization on object storage",
    after_help = "Example:\n  recall key --project flytesnacks --domain development --task wf.square \\\n    --cache-version 1.0 --input n:int=3 --output o0:int"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the cache key for a task and its inputs (docs/KEY-SPEC.md).
    #[command(after_help = KEY_EXAMPLES)]
    Key(KeyCommand),
}

const KEY_EXAMPLES: &str = "\
Examples:
  recall key --project p --domain development --task wf.train --cache-version 1.0 \\
    --input epochs:int=10 --input data:file=@train.csv --input tags:list<string>='[\"a\",\"b\"]' \\
    --output model:file
  recall key --spec material.json --json

VALUE is plain text for int, float, bool, string, bytes (base64), datetime (RFC 3339) and
duration (1h30m, PT1H30M); JSON for list<T>, map<string,T>, optional<T> and struct;
@PATH for file and dir.";

#[derive(Args)]
struct KeyCommand {
    /// Project (tenant) the task runs in.
    #[arg(long, required_unless_present = "spec")]
    project: Option<String>,
    /// Domain (environment): development, staging, production, ...
    #[arg(long, required_unless_present = "spec")]
    domain: Option<String>,
    /// Task name.
    #[arg(long, required_unless_present = "spec")]
    task: Option<String>,
    /// Version the task author bumps when behaviour changes (trimmed; not empty).
    #[arg(long, required_unless_present = "spec")]
    cache_version: Option<String>,
    /// An input: NAME:TYPE=VALUE. Repeatable.
    #[arg(long = "input", value_name = "NAME:TYPE=VALUE")]
    inputs: Vec<String>,
    /// An output: NAME:TYPE. Repeatable.
    #[arg(long = "output", value_name = "NAME:TYPE")]
    outputs: Vec<String>,
    /// Leave this input's value out of the key (it stays in the signature). Repeatable.
    #[arg(long = "ignore-input", value_name = "NAME")]
    ignore: Vec<String>,
    /// Use this digest for an input instead of hashing its value. Repeatable.
    #[arg(long = "input-hash", value_name = "NAME=HEX")]
    input_hashes: Vec<String>,
    /// Free text mixed into the key.
    #[arg(long)]
    salt: Option<String>,
    /// Read the key material from a JSON file (docs/KEY-SPEC.md section 8) instead of flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "project", "domain", "task", "cache_version", "inputs", "outputs", "ignore",
        "input_hashes", "salt",
    ])]
    spec: Option<PathBuf>,
    /// Print the key and its component digests as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Key(cmd) => run_key(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("recall: error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

fn run_key(cmd: KeyCommand) -> anyhow::Result<()> {
    let material = match &cmd.spec {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--spec {}", path.display()))?;
            let base = path.parent().unwrap_or(Path::new("."));
            KeyMaterial::from_json(&text, base)?
        }
        None => {
            let flags = KeyFlags {
                project: cmd.project.unwrap_or_default(),
                domain: cmd.domain.unwrap_or_default(),
                task: cmd.task.unwrap_or_default(),
                cache_version: cmd.cache_version.unwrap_or_default(),
                inputs: cmd.inputs,
                outputs: cmd.outputs,
                ignore: cmd.ignore,
                input_hashes: cmd.input_hashes,
                salt: cmd.salt,
            };
            flags.to_material(Path::new("."))?
        }
    };
    let derived = material.derive()?;
    let mut stdout = std::io::stdout().lock();
    if cmd.json {
        serde_json::to_writer_pretty(&mut stdout, &derived)?;
        writeln!(stdout)?;
    } else {
        writeln!(stdout, "{}", derived.key)?;
    }
    Ok(())
}
