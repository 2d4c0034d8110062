//! The command line: every subcommand's flags, with an example in each `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `recall`: Flyte-style task memoization on object storage.
#[derive(Debug, Parser)]
#[command(
    name = "recall",
    version,
    about = "Flyte-style task memoization on object storage",
    after_help = TOP_EXAMPLES
)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

const TOP_EXAMPLES: &str = "\
Example (a local-disk store; the second run is a hit and does not run the command):
  recall --store file:///tmp/recall-store run --project demo --domain dev --task wc \\
    --cache-version 1 --input text:file=@README.md --output count:file=out/count.txt \\
    -- sh -c 'wc -w < README.md > out/count.txt'

Exit status: 0 ok or hit; the command's own for run; 1 no such entry (get, inspect);
2 bad usage or input; 3 storage error.";

/// Where the cache is, and how recall talks.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Use this store directly: file:///abs/path, s3://bucket[/prefix], gs://..., az://...
    /// (credentials and endpoints from the usual AWS_*, GOOGLE_*, AZURE_* variables).
    #[arg(long, global = true, env = "RECALL_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Go through a recalld daemon instead: http://127.0.0.1:7700.
    #[arg(long, global = true, env = "RECALL_DAEMON", value_name = "URL")]
    pub daemon: Option<String>,
    /// Bearer token for the daemon.
    #[arg(long, global = true, env = "RECALL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print only warnings and failures on stderr (no CACHE_HIT / CACHE_MISS lines, no spinner).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Longest wait for one storage lookup; past it, run goes ahead without the cache.
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s")]
    pub storage_timeout: String,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the cache key for a task and its inputs (docs/KEY-SPEC.md).
    #[command(after_help = KEY_EXAMPLES)]
    Key(KeyArgs),
    /// Run a command unless its outputs are cached; cache them when it succeeds.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Write a cached entry's outputs to files or stdout.
    #[command(after_help = GET_EXAMPLES)]
    Get(GetArgs),
    /// Publish existing outputs for key material without running anything.
    #[command(after_help = PUT_EXAMPLES)]
    Put(PutArgs),
    /// Show an entry's manifest.
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
    /// List tenants, tasks, or a task's entries.
    #[command(after_help = LS_EXAMPLES)]
    Ls(LsArgs),
    /// Remove entries by key, task, project/domain or age.
    #[command(after_help = EVICT_EXAMPLES)]
    Evict(EvictArgs),
    /// Delete blobs no entry references (mark and sweep).
    #[command(after_help = GC_EXAMPLES)]
    Gc(GcArgs),
    /// Say why key material misses, component by component.
    #[command(after_help = EXPLAIN_EXAMPLES)]
    Explain(ExplainArgs),
    /// Check a store (or recalld) and say which guarantees recall has there.
    #[command(after_help = DOCTOR_EXAMPLES)]
    Doctor(DoctorArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  recall completions bash > ~/.local/share/bash-completion/completions/recall"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

const DOCTOR_EXAMPLES: &str = "\
Examples:
  recall doctor --store s3://bucket/cache
  recall doctor --daemon http://127.0.0.1:7700 --json

One line per check, in order: URL and addressing style, credentials, bucket, read, write,
delete, the descriptor, create-if-absent, replace-if-version-matches, ranged GET, multipart,
clock skew; a fix under each failure. Exit status: 0 every guarantee holds, 1 recall runs with
weaker guarantees (named), 2 bad usage, 3 recall cannot use the store.";

/// `recall doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the checks as JSON.
    #[arg(long)]
    pub json: bool,
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

const RUN_EXAMPLES: &str = "\
Examples:
  recall --store file:///var/cache/recall run --project demo --domain dev --task wf.train \\
    --cache-version 1.0 --input epochs:int=10 --input data:file=@train.csv \\
    --output model:file=out/model.bin --output plots:dir=out/plots -- python3 train.py
  recall --store s3://bucket/cache run --job train.toml --serialize
  recall --store file:///var/cache/recall run --job train.toml --overwrite -- python3 train.py

stderr says CACHE_HIT, CACHE_MISS, CACHE_POPULATED, CACHE_SKIPPED (with --overwrite),
CACHE_WAITING (with --serialize), CACHE_LOOKUP_FAILURE or CACHE_PUT_FAILURE (storage down:
the command still runs) with the key. Exit status: the command's own (0 on a hit), 2 for bad
usage or input.";

const GET_EXAMPLES: &str = "\
Examples:
  recall --store file:///var/cache/recall get --job train.toml
  recall --store file:///var/cache/recall get --project demo --domain dev --key 3f2a... --to out/
  recall --store file:///var/cache/recall get --job train.toml --stdout model > model.bin

Exit status 1 when there is no (live, verified) entry.";

const PUT_EXAMPLES: &str = "\
Example:
  recall --store file:///var/cache/recall put --project demo --domain dev --task wf.train \\
    --cache-version 1.0 --input epochs:int=10 --output model:file=out/model.bin";

const INSPECT_EXAMPLES: &str = "\
Examples:
  recall --store file:///var/cache/recall inspect --job train.toml
  recall --store file:///var/cache/recall inspect --project demo --domain dev --key 3f2a... --json";

const LS_EXAMPLES: &str = "\
Examples:
  recall --store file:///var/cache/recall ls                    # project/domain pairs
  recall --store file:///var/cache/recall ls --project demo --domain dev          # tasks
  recall --store file:///var/cache/recall ls --project demo --domain dev --task wf.train --json";

const EVICT_EXAMPLES: &str = "\
Examples:
  recall --store file:///var/cache/recall evict --project demo --domain dev --key 3f2a...
  recall --store file:///var/cache/recall evict --project demo --domain dev --task wf.train \\
    --cache-version 1.0 --dry-run
  recall --store file:///var/cache/recall evict --older-than 30d
  recall --store file:///var/cache/recall evict --project demo --domain dev --all";

const GC_EXAMPLES: &str = "\
Examples:
  recall --store file:///var/cache/recall gc --dry-run
  recall --store s3://bucket/cache gc --project demo --domain dev --grace 2h --json";

const EXPLAIN_EXAMPLES: &str = "\
Example:
  recall --store file:///var/cache/recall explain --project demo --domain dev --task wf.train \\
    --cache-version 1.1 --input epochs:int=12 --output model:file

Verdicts: hit, expired, cache_version, signature, inputs, salt, other_tenant, evicted, absent.";

/// The key material of a task: flags, a JSON spec, or a TOML job file.
#[derive(Debug, Args, Clone, Default)]
pub struct MaterialArgs {
    /// Project (tenant) the task runs in.
    #[arg(long)]
    pub project: Option<String>,
    /// Domain (environment): development, staging, production, ...
    #[arg(long)]
    pub domain: Option<String>,
    /// Task name.
    #[arg(long)]
    pub task: Option<String>,
    /// Version the task author bumps when behaviour changes (trimmed; not empty).
    #[arg(long)]
    pub cache_version: Option<String>,
    /// An input: NAME:TYPE=VALUE (file and dir values are @PATH). Repeatable.
    #[arg(long = "input", value_name = "NAME:TYPE=VALUE")]
    pub inputs: Vec<String>,
    /// An output: NAME:TYPE=PATH (TYPE file or dir), NAME:TYPE, or NAME=PATH for an output
    /// the spec or job file declares. Repeatable.
    #[arg(long = "output", value_name = "NAME:TYPE=PATH")]
    pub outputs: Vec<String>,
    /// Leave this input's value out of the key (it stays in the signature). Repeatable.
    #[arg(long = "ignore-input", value_name = "NAME")]
    pub ignore: Vec<String>,
    /// Use this digest for an input instead of hashing its value. Repeatable.
    #[arg(long = "input-hash", value_name = "NAME=HEX")]
    pub input_hashes: Vec<String>,
    /// Free text mixed into the key.
    #[arg(long)]
    pub salt: Option<String>,
    /// Key material as JSON (docs/KEY-SPEC.md section 8).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["job", "project", "domain", "task", "cache_version", "salt"])]
    pub spec: Option<PathBuf>,
    /// A TOML job file with the key material, outputs and command (see README); flags add
    /// to it and override its project, domain, task, cache_version and salt.
    #[arg(long, value_name = "FILE")]
    pub job: Option<PathBuf>,
}

/// `recall key`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The key material.
    #[command(flatten)]
    pub material: MaterialArgs,
    /// Print the key and its component digests as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `recall run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The key material and output paths.
    #[command(flatten)]
    pub material: MaterialArgs,
    /// Flyte's cache_serialize: of concurrent runs with the same key one computes, the
    /// others wait for its entry.
    #[arg(long)]
    pub serialize: bool,
    /// Run even on a hit and replace the entry.
    #[arg(long)]
    pub overwrite: bool,
    /// Entries older than this are misses (e.g. 12h, 7d).
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Lease heartbeat with --serialize (the lease lapses after three missed beats).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub heartbeat: String,
    /// How often a waiting --serialize run looks again.
    #[arg(long, value_name = "DURATION", default_value = "250ms")]
    pub poll: String,
    /// The command and its arguments (or `command` in the job file).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Which entry: key material, or a key with its project and domain.
#[derive(Debug, Args, Clone)]
pub struct EntryArgs {
    /// The key material.
    #[command(flatten)]
    pub material: MaterialArgs,
    /// The entry's key (64 hex) instead of key material; needs --project and --domain.
    #[arg(long, value_name = "HEX", conflicts_with_all = ["task", "cache_version", "inputs", "spec", "job"])]
    pub key: Option<String>,
}

/// `recall get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Which entry.
    #[command(flatten)]
    pub entry: EntryArgs,
    /// Write every output without a path of its own into DIR/NAME.
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
    /// Write this output's bytes to stdout (a dir output as its tar archive).
    #[arg(long, value_name = "NAME", conflicts_with = "to")]
    pub stdout: Option<String>,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `recall put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The key material and output paths.
    #[command(flatten)]
    pub material: MaterialArgs,
    /// Replace an existing entry.
    #[arg(long)]
    pub overwrite: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `recall inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Which entry.
    #[command(flatten)]
    pub entry: EntryArgs,
    /// Print the manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `recall ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Project; with --domain, lists its tasks.
    #[arg(long, requires = "domain")]
    pub project: Option<String>,
    /// Domain.
    #[arg(long, requires = "project")]
    pub domain: Option<String>,
    /// Task; lists its entries.
    #[arg(long, requires = "project")]
    pub task: Option<String>,
    /// Only entries of this cache_version.
    #[arg(long, requires = "task")]
    pub cache_version: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `recall evict`.
#[derive(Debug, Args)]
pub struct EvictArgs {
    /// Project.
    #[arg(long, requires = "domain")]
    pub project: Option<String>,
    /// Domain.
    #[arg(long, requires = "project")]
    pub domain: Option<String>,
    /// One entry, by key.
    #[arg(long, value_name = "HEX", requires = "project", group = "target")]
    pub key: Option<String>,
    /// Every entry of a task.
    #[arg(long, requires = "project", group = "target")]
    pub task: Option<String>,
    /// With --task: only this cache_version.
    #[arg(long, requires = "task")]
    pub cache_version: Option<String>,
    /// Entries published longer ago than this (e.g. 30d); all tenants unless --project.
    #[arg(long, value_name = "DURATION", group = "target")]
    pub older_than: Option<String>,
    /// The whole project/domain, blobs included.
    #[arg(long, requires = "project", group = "target")]
    pub all: bool,
    /// Count what would be evicted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `recall gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Project (all tenants unless given).
    #[arg(long, requires = "domain")]
    pub project: Option<String>,
    /// Domain.
    #[arg(long, requires = "project")]
    pub domain: Option<String>,
    /// Keep unreferenced blobs younger than this (a publish may be in flight).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub grace: String,
    /// Count and report; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the counts as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `recall explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The key material to explain.
    #[command(flatten)]
    pub material: MaterialArgs,
    /// Entries older than this count as expired (as `run --max-age`).
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Print the explanation as JSON.
    #[arg(long)]
    pub json: bool,
}
