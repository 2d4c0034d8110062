//! One module per subcommand, each written against [`CacheClient`] only; this module
//! dispatches a parsed command line and holds what several subcommands share (opening the
//! cache, the outputs' guard, the entry an `--key` or material addresses).

mod evict;
mod explain;
mod gc;
mod get;
mod inspect;
mod key;
mod ls;
mod put;
mod run;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use recall_key::Digest;
use recall_store::{EntryRef, StoreConfig};

pub use inspect::manifest_json;

use crate::cli::{Cli, Command, EntryArgs, GlobalArgs};
use crate::client::CacheClient;
use crate::direct::DirectClient;
use crate::error::CliError;
use crate::material::Resolved;
use crate::outputs;
use crate::progress::Reporter;
use crate::timeouts::{parse_duration, with_timeout};

/// Runs one parsed command line; returns the exit status.
pub async fn execute(cli: Cli) -> Result<u8, CliError> {
    let cwd = PathBuf::from(".");
    let global = &cli.global;
    match cli.command {
        Command::Key(args) => key::key(args, &cwd),
        Command::Run(args) => run::run(global, args, &cwd).await,
        Command::Get(args) => get::get(global, args, &cwd).await,
        Command::Put(args) => put::put(global, args, &cwd).await,
        Command::Inspect(args) => inspect::inspect(global, args, &cwd).await,
        Command::Ls(args) => ls::ls(global, args).await,
        Command::Evict(args) => evict::evict(global, args).await,
        Command::Gc(args) => gc::gc(global, args).await,
        Command::Explain(args) => explain::explain_cmd(global, args, &cwd).await,
        Command::Doctor(args) => crate::doctor::doctor(global, args).await,
        Command::Completions { .. } => Err(CliError::Usage(
            "completions are printed by the recall binary".into(),
        )),
    }
}

/// The status-line reporter the global flags ask for.
pub fn reporter(global: &GlobalArgs) -> Reporter {
    Reporter {
        quiet: global.quiet,
    }
}

/// Opens the cache the global flags name.
pub async fn open_client(
    global: &GlobalArgs,
    config: StoreConfig,
) -> Result<Arc<dyn CacheClient>, CliError> {
    let timeout = parse_duration("--storage-timeout", &global.storage_timeout)?;
    match (&global.store, &global.daemon) {
        (Some(_), Some(_)) => Err(CliError::Usage(
            "give either --store or --daemon, not both".into(),
        )),
        (Some(url), None) => {
            let client =
                with_timeout(timeout, "open store", DirectClient::open(url, config)).await?;
            Ok(Arc::new(client))
        }
        (None, Some(url)) => Ok(Arc::new(crate::http::HttpClient::new(
            url,
            global.token.clone(),
            config.max_age,
        )?)),
        (None, None) => Err(CliError::Usage(
            "no cache: give --store URL (e.g. file:///var/cache/recall) or --daemon URL \
             (or set RECALL_STORE / RECALL_DAEMON)"
                .into(),
        )),
    }
}

/// Store settings with `--max-age`, when given.
pub fn config_with_max_age(max_age: Option<&String>) -> Result<StoreConfig, CliError> {
    Ok(StoreConfig {
        max_age: max_age
            .map(|text| parse_duration("--max-age", text))
            .transpose()?,
        ..StoreConfig::default()
    })
}

/// What the outputs of this command line must never remove or replace: the job file's
/// directory, a `file://` store's root, the inputs and the command's script (the working
/// directory is always protected).
pub fn protected(
    global: &GlobalArgs,
    resolved: Option<&Resolved>,
    command: &[String],
) -> outputs::Protected {
    let store_root = global.store.as_deref().and_then(outputs::file_store_root);
    let mut inputs = resolved.map(Resolved::input_paths).unwrap_or_default();
    inputs.extend(outputs::script_of(command));
    outputs::Protected {
        job_dir: resolved.and_then(|r| r.job_dir.clone()),
        store_root,
        inputs,
    }
}

impl EntryArgs {
    /// The entry addressed, and the resolved material when it was given.
    pub fn resolve(&self, cwd: &Path) -> Result<(EntryRef, Option<Resolved>), CliError> {
        if let Some(hex) = &self.key {
            let (Some(project), Some(domain)) = (&self.material.project, &self.material.domain)
            else {
                return Err(CliError::Usage("--key needs --project and --domain".into()));
            };
            let key: Digest = hex.parse().map_err(|_| {
                CliError::Usage(format!("--key {hex:?}: not 64 hexadecimal characters"))
            })?;
            if !self.material.outputs.is_empty() {
                // Only NAME=PATH forms make sense here; no material to declare them in.
                return Err(CliError::Usage(
                    "--output with --key: use --to DIR (outputs are named by the entry)".into(),
                ));
            }
            return Ok((EntryRef::new(project, domain, key)?, None));
        }
        let resolved = self.material.resolve(cwd)?;
        let derived = resolved.material.derive()?;
        Ok((EntryRef::of(&derived)?, Some(resolved)))
    }
}
