//! `recall explain`: why a key hits or misses, input by input.

use std::path::Path;

use super::{config_with_max_age, open_client};
use crate::cli::{ExplainArgs, GlobalArgs};
use crate::error::CliError;
use crate::explain::explain;
use crate::print::{print_json, print_line};

/// `recall explain`.
pub async fn explain_cmd(
    global: &GlobalArgs,
    args: ExplainArgs,
    cwd: &Path,
) -> Result<u8, CliError> {
    let resolved = args.material.resolve(cwd)?;
    let key = resolved.material.derive()?;
    let client = open_client(global, config_with_max_age(args.max_age.as_ref())?).await?;
    let explanation = explain(client.as_ref(), &key).await?;
    if args.json {
        print_json(
            &serde_json::to_value(&explanation).map_err(|e| CliError::Usage(e.to_string()))?,
        )?;
    } else {
        print_line(format!("{} {}", explanation.verdict, explanation.key))?;
        for reason in &explanation.reasons {
            print_line(reason)?;
        }
    }
    Ok(0)
}
