//! Time limits: the duration flags and the storage timeout every cache call runs under.

use std::future::Future;
use std::time::Duration;

use crate::error::CliError;

/// Parses a duration flag: the key-spec forms (`1h30m`, `250ms`, `PT1H`) or whole days (`7d`).
pub fn parse_duration(flag: &str, text: &str) -> Result<Duration, CliError> {
    let bad = |why: String| CliError::Usage(format!("{flag} {text:?}: {why}"));
    if let Some(days) = text.strip_suffix('d')
        && !days.is_empty()
        && days.bytes().all(|b| b.is_ascii_digit())
    {
        let days: u64 = days.parse().map_err(|e| bad(format!("{e}")))?;
        return days
            .checked_mul(86_400)
            .map(Duration::from_secs)
            .ok_or_else(|| bad("too long".into()));
    }
    let nanos = recall_key::parse_duration(text)
        .map_err(|why| bad(format!("{why} (write e.g. 30s, 1h30m, 250ms or 7d)")))?;
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .map_err(|_| bad("must not be negative".into()))
}

/// Applies the storage timeout to one operation.
pub async fn with_timeout<T>(
    limit: Duration,
    operation: &'static str,
    work: impl Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(CliError::Timeout {
            operation,
            seconds: limit.as_secs_f64(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_key_spec_forms_and_days() {
        assert_eq!(
            parse_duration("--x", "7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            parse_duration("--x", "1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("--x", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        for bad in ["-1s", "5x", "", "d"] {
            let err = parse_duration("--max-age", bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("--max-age {bad:?}")), "{err}");
        }
    }
}
