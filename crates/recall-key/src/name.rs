//! Names, cache versions and salts (docs/KEY-SPEC.md section 3).

use crate::error::{KeyError, shorten};

/// Longest name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest salt, in bytes.
pub const MAX_SALT_LEN: usize = 1024;

/// Checks a project, domain, task, input or output name; `field` names it in the error.
pub fn validate_name(field: &'static str, value: &str) -> Result<(), KeyError> {
    name_rule(value).map_err(|reason| KeyError::InvalidName {
        field,
        value: shorten(value),
        reason,
    })
}

/// The name rule itself: `Err` carries which part of it `value` breaks.
fn name_rule(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("must not be empty");
    }
    if value.len() > MAX_NAME_LEN {
        return Err("longer than 128 bytes");
    }
    if value == "." || value == ".." {
        return Err("must not be \".\" or \"..\"");
    }
    if value.contains('/') {
        return Err("must not contain '/'");
    }
    if value.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
    {
        return Err("may contain only ASCII letters, digits, '.', '_', '-' and '+'");
    }
    Ok(())
}

/// Trims a cache_version as the spec says and checks the result; returns the trimmed text.
pub fn normalize_cache_version(value: &str) -> Result<String, KeyError> {
    let trimmed = value.trim_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']);
    if trimmed.is_empty() {
        return Err(KeyError::InvalidCacheVersion {
            value: shorten(value),
            reason: "must not be empty",
        });
    }
    name_rule(trimmed).map_err(|reason| KeyError::InvalidCacheVersion {
        value: shorten(value),
        reason,
    })?;
    Ok(trimmed.to_string())
}

/// Checks a salt: 1 to 1024 bytes, used as is.
pub fn validate_salt(value: &str) -> Result<(), KeyError> {
    let reason = if value.is_empty() {
        "must not be empty (leave it out instead)"
    } else if value.len() > MAX_SALT_LEN {
        "longer than 1024 bytes"
    } else {
        return Ok(());
    };
    Err(KeyError::InvalidSalt {
        value: shorten(value),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in [
            "flytesnacks",
            "development",
            "wf.train_model",
            "a-b+c",
            "X1",
            "...",
        ] {
            validate_name("task", ok).unwrap();
        }
        validate_name("task", &"a".repeat(128)).unwrap();
    }

    #[test]
    fn rejects_names_that_could_escape_a_prefix() {
        for bad in [
            "", ".", "..", "a/b", "/", "a\nb", "a\0", "sp ace", "é", "a\\b",
        ] {
            let err = validate_name("project", bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid project"), "{err}");
            assert!(
                err.contains(&format!("{bad:?}")),
                "{err} should name {bad:?}"
            );
        }
        assert!(validate_name("domain", &"a".repeat(129)).is_err());
    }

    #[test]
    fn cache_version_is_trimmed_and_not_empty() {
        assert_eq!(normalize_cache_version(" 1.0\n").unwrap(), "1.0");
        assert_eq!(normalize_cache_version("\t\u{b}\u{c}\rv2 ").unwrap(), "v2");
        let err = normalize_cache_version("   ").unwrap_err().to_string();
        assert!(err.contains("\"   \"") && err.contains("empty"), "{err}");
        assert!(normalize_cache_version("1 0").is_err());
        // Only the six ASCII white-space characters are trimmed.
        assert!(normalize_cache_version("\u{a0}1").is_err());
    }

    #[test]
    fn salt_rules() {
        validate_salt("x").unwrap();
        assert!(validate_salt("").is_err());
        assert!(validate_salt(&"s".repeat(1025)).is_err());
        validate_salt(&"s".repeat(1024)).unwrap();
    }
}
