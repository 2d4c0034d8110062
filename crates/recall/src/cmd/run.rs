//! `recall run`: the command line's part (flags, guards, the store); the run itself (lookup,
//! lease, command, publish) is [`crate::run`].

use std::path::Path;

use recall_store::{Capabilities, StoreError};

use super::{config_with_max_age, open_client, protected, reporter};
use crate::cli::{GlobalArgs, RunArgs};
use crate::error::CliError;
use crate::outputs;
use crate::run::RunOptions;
use crate::timeouts::parse_duration;

/// `recall run`: resolves the flags and hands over to [`crate::run::run`].
pub async fn run(global: &GlobalArgs, args: RunArgs, cwd: &Path) -> Result<u8, CliError> {
    let resolved = args.material.resolve(cwd)?;
    let outputs = resolved.output_paths()?;
    let command = if args.command.is_empty() {
        resolved.command.clone().unwrap_or_default()
    } else {
        args.command.clone()
    };
    if command.is_empty() {
        return Err(CliError::Usage(
            "no command: give it after `--` (recall run ... -- COMMAND ARGS) or as `command` \
             in the job file"
                .into(),
        ));
    }
    let outputs = outputs::guard(&outputs, &protected(global, Some(&resolved), &command))?;
    let key = resolved.material.derive()?;
    let options = RunOptions {
        serialize: args.serialize,
        overwrite: args.overwrite,
        heartbeat: parse_duration("--heartbeat", &args.heartbeat)?,
        poll: parse_duration("--poll", &args.poll)?,
        storage_timeout: parse_duration("--storage-timeout", &global.storage_timeout)?,
        reporter: reporter(global),
    };
    if options.heartbeat.is_zero() {
        return Err(CliError::Usage(format!(
            "--heartbeat {:?}: must be longer than zero",
            args.heartbeat
        )));
    }
    let config = config_with_max_age(args.max_age.as_ref())?;
    // Only a store URL that cannot mean anything stops the run; any other failure to open
    // the store (unreachable, unwritable, wrong layout) runs the command without the cache.
    let client = match open_client(global, config).await {
        Err(err @ (CliError::Usage(_) | CliError::Store(StoreError::InvalidUrl { .. }))) => {
            return Err(err);
        }
        other => other,
    };
    if options.serialize
        && let Ok(client) = &client
        && let Some(capabilities) = client.capabilities().await
    {
        refuse_serialize(client.describe(), &capabilities)?;
    }
    crate::run::run(client, &key, &outputs, &command, &options).await
}

/// `--serialize` needs leases, and leases need conditional writes: on a store without them
/// it is refused (exit 2) rather than run with a lease that excludes no one.
fn refuse_serialize(store: String, capabilities: &Capabilities) -> Result<(), CliError> {
    let missing = crate::capabilities::missing_conditional_writes(capabilities);
    if missing.is_empty() {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "--serialize: {store} does not honour {} (found by recall's capability probe), so a \
         lease cannot keep concurrent runs from computing at once; run without --serialize or \
         use a store with conditional writes (`recall doctor --store URL` shows what it lacks)",
        missing.join(" and ")
    )))
}
