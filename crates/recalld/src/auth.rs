//! Bearer-token authorisation: each token is scoped to projects, domains and an access level.

use crate::config::{Access, TokenSettings};

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that is not configured: 401.
    Unauthenticated,
    /// A known token without the needed scope: 403. Carries the token's name.
    Forbidden {
        /// The token's configured name.
        token: String,
        /// What it lacks.
        reason: String,
    },
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    tokens: Vec<TokenSettings>,
}

impl Auth {
    /// Authorisation over these tokens; with none, every request is allowed.
    pub fn new(tokens: Vec<TokenSettings>) -> Self {
        Auth { tokens }
    }

    /// Whether any token is configured.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Checks an `Authorization` header value against a request on `project`/`domain` that
    /// needs `need`. `project`/`domain` of `None` means the request spans all of them.
    pub fn check(
        &self,
        header: Option<&str>,
        project: Option<&str>,
        domain: Option<&str>,
        need: Access,
    ) -> Result<(), Denied> {
        if !self.enabled() {
            return Ok(());
        }
        let token = self.token_with(header, need)?;
        let forbidden = |reason: String| Denied::Forbidden {
            token: token.name.clone(),
            reason,
        };
        let allows = |list: &[String], value: Option<&str>| {
            list.iter().any(|p| p == "*") || value.is_some_and(|v| list.iter().any(|p| p == v))
        };
        if !allows(&token.projects, project) {
            return Err(forbidden(format!(
                "not allowed on project {:?}",
                project.unwrap_or("*")
            )));
        }
        if !allows(&token.domains, domain) {
            return Err(forbidden(format!(
                "not allowed on domain {:?}",
                domain.unwrap_or("*")
            )));
        }
        Ok(())
    }

    /// Checks, from the headers alone, that `header` presents a token with at least `need`
    /// access on some project and domain: the check a request passes before its body is
    /// read. The per-tenant check still follows once the body names the tenant.
    pub fn check_level(&self, header: Option<&str>, need: Access) -> Result<(), Denied> {
        if !self.enabled() {
            return Ok(());
        }
        self.token_with(header, need).map(|_| ())
    }

    /// The configured token `header` presents, if it has at least `need` access. Every
    /// configured token is compared, each in constant time, whichever matches.
    fn token_with(&self, header: Option<&str>, need: Access) -> Result<&TokenSettings, Denied> {
        let presented = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(Denied::Unauthenticated)?;
        let token = self
            .tokens
            .iter()
            .fold(None, |found, t| {
                let equal = constant_time_eq(t.token.as_bytes(), presented.as_bytes());
                if equal && found.is_none() {
                    Some(t)
                } else {
                    found
                }
            })
            .ok_or(Denied::Unauthenticated)?;
        if token.access < need {
            return Err(Denied::Forbidden {
                token: token.name.clone(),
                reason: format!("needs {need:?} access, token has {:?}", token.access),
            });
        }
        Ok(token)
    }

    /// Which of `tenants` (project, domain) the token in `header` may use with `need`: an
    /// unknown or missing token is refused (401), a token below `need` too (403); tenants
    /// outside its scope are left out rather than refused.
    pub fn visible<'a, T>(
        &self,
        header: Option<&str>,
        tenants: &'a [T],
        scope: impl Fn(&T) -> (&str, &str),
        need: Access,
    ) -> Result<Vec<&'a T>, Denied> {
        if !self.enabled() {
            return Ok(tenants.iter().collect());
        }
        // Authenticate and check the level once, whatever the tenants.
        self.token_with(header, need)?;
        Ok(tenants
            .iter()
            .filter(|t| {
                let (project, domain) = scope(t);
                self.check(header, Some(project), Some(domain), need)
                    .is_ok()
            })
            .collect())
    }
}

/// Compares secrets in time that depends on neither their contents nor whether their
/// lengths agree: it compares their BLAKE3 hashes, whose equality is constant-time, so
/// neither a differing byte nor a differing length ends the comparison early.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    blake3::hash(a) == blake3::hash(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, secret: &str, projects: &[&str], access: Access) -> TokenSettings {
        TokenSettings {
            name: name.into(),
            token: secret.into(),
            projects: projects.iter().map(|s| s.to_string()).collect(),
            domains: vec!["*".into()],
            access,
        }
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdeX"));
        assert!(!constant_time_eq(b"Xbcdef0123456789", b"abcdef0123456789"));
        // Different lengths: a prefix, a longer secret, the empty string.
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!constant_time_eq(b"0123456789abcdef", b"0123456789abcdef0"));
        assert!(!constant_time_eq(b"0123456789abcdef", b""));
    }

    #[test]
    fn the_level_is_checked_from_the_header_alone() {
        let auth = Auth::new(vec![
            token("a-read", "aaaaaaaaaaaaaaaa", &["a"], Access::Read),
            token("a-write", "bbbbbbbbbbbbbbbb", &["a"], Access::Write),
        ]);
        assert_eq!(
            auth.check_level(None, Access::Write),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            auth.check_level(Some("Bearer nope"), Access::Write),
            Err(Denied::Unauthenticated)
        );
        assert!(matches!(
            auth.check_level(Some("Bearer aaaaaaaaaaaaaaaa"), Access::Write),
            Err(Denied::Forbidden { .. })
        ));
        assert!(
            auth.check_level(Some("Bearer bbbbbbbbbbbbbbbb"), Access::Write)
                .is_ok()
        );
        assert!(Auth::new(vec![]).check_level(None, Access::Admin).is_ok());
    }

    #[test]
    fn scope_and_level_matrix() {
        let auth = Auth::new(vec![
            token("a-read", "aaaaaaaaaaaaaaaa", &["a"], Access::Read),
            token("a-write", "bbbbbbbbbbbbbbbb", &["a"], Access::Write),
            token("admin", "cccccccccccccccc", &["*"], Access::Admin),
        ]);
        let check = |secret: &str, project: &str, need| {
            auth.check(
                Some(&format!("Bearer {secret}")),
                Some(project),
                Some("dev"),
                need,
            )
        };
        assert!(check("aaaaaaaaaaaaaaaa", "a", Access::Read).is_ok());
        assert!(matches!(
            check("aaaaaaaaaaaaaaaa", "a", Access::Write),
            Err(Denied::Forbidden { .. })
        ));
        assert!(matches!(
            check("aaaaaaaaaaaaaaaa", "b", Access::Read),
            Err(Denied::Forbidden { .. })
        ));
        assert!(check("bbbbbbbbbbbbbbbb", "a", Access::Write).is_ok());
        assert!(matches!(
            check("bbbbbbbbbbbbbbbb", "a", Access::Admin),
            Err(Denied::Forbidden { .. })
        ));
        assert!(check("cccccccccccccccc", "z", Access::Admin).is_ok());
        assert_eq!(
            check("nope", "a", Access::Read),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            auth.check(None, Some("a"), Some("d"), Access::Read),
            Err(Denied::Unauthenticated)
        );
        // Listing shows a scoped token only its own tenants.
        let tenants = [("a", "dev"), ("b", "dev"), ("a", "prod")];
        fn scope<'a>(t: &'a (&'static str, &'static str)) -> (&'a str, &'a str) {
            (t.0, t.1)
        }
        let seen = auth
            .visible(
                Some("Bearer aaaaaaaaaaaaaaaa"),
                &tenants,
                scope,
                Access::Read,
            )
            .unwrap();
        assert_eq!(seen, [&("a", "dev"), &("a", "prod")]);
        let all = auth
            .visible(
                Some("Bearer cccccccccccccccc"),
                &tenants,
                scope,
                Access::Read,
            )
            .unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(
            auth.visible(Some("Bearer nope"), &tenants, scope, Access::Read),
            Err(Denied::Unauthenticated)
        );
        assert!(matches!(
            auth.visible(
                Some("Bearer aaaaaaaaaaaaaaaa"),
                &tenants,
                scope,
                Access::Write
            ),
            Err(Denied::Forbidden { .. })
        ));
        // A request over all projects needs a token for all projects.
        assert!(matches!(
            auth.check(Some("Bearer bbbbbbbbbbbbbbbb"), None, None, Access::Read),
            Err(Denied::Forbidden { .. })
        ));
    }
}
