//! Tenancy: which namespaces may promote from which source repositories, and
//! which target repositories they may write with the operator's own
//! credentials (its AWS identity and the registries of its configuration
//! file).
//!
//! Once the operator runs in a cluster, anyone who can create an
//! `ImagePromotion` in some namespace can ask it to push with an identity
//! that may write every public repository of the organisation. The
//! configuration file's `tenancy` section limits that: each rule grants the
//! namespaces matching its patterns a list of source and target repository
//! patterns. An object whose source or operator-credentialed target no rule
//! grants is refused before any request (`RepositoryNotAllowed`). Every
//! call made with the operator's identity is checked for that exact
//! repository, `createRepository` included; what a plan sends where is
//! decided in [`crate::promotion::plan`]. A target written only with the
//! namespace's own Secret is the namespace's business and is not limited
//! here. Without a `tenancy` section the operator is single-tenant: every
//! namespace may do everything (docs/config.md); the Helm chart writes a
//! section that grants only its own namespace unless told otherwise.
//!
//! Everything here is pure.

use serde::Deserialize;

use crate::registry::Repository;

/// The condition reason of an object outside its namespace's rules.
pub const REPOSITORY_NOT_ALLOWED: &str = "RepositoryNotAllowed";

/// One grant of the configuration file's `tenancy` list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenancyRule {
    /// Namespace names or globs (`team-*`); `*` matches any namespace.
    pub namespaces: Vec<String>,
    /// Source repositories these namespaces may promote from.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Target repositories these namespaces may write with the operator's
    /// own credentials.
    #[serde(default)]
    pub targets: Vec<String>,
}

/// A malformed tenancy rule, found when the configuration is loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("tenancy[{index}].{field}: {message}")]
pub struct RuleError {
    pub index: usize,
    pub field: &'static str,
    pub message: String,
}

/// Why an object is outside its namespace's rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NotAllowed {
    pub message: String,
}

impl NotAllowed {
    /// `RepositoryNotAllowed`.
    pub fn reason(&self) -> &'static str {
        REPOSITORY_NOT_ALLOWED
    }
}

/// The tenancy rules of a configuration; `None` means single-tenant.
#[derive(Clone, Copy, Debug)]
pub struct Tenancy<'a> {
    rules: Option<&'a [TenancyRule]>,
}

/// What a repository is used for, for the message of a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    Source,
    Target,
}

impl Use {
    fn field(self) -> &'static str {
        match self {
            Use::Source => "sources",
            Use::Target => "targets",
        }
    }
}

impl<'a> Tenancy<'a> {
    pub fn new(rules: Option<&'a [TenancyRule]>) -> Self {
        Self { rules }
    }

    /// True when no `tenancy` section limits anything.
    pub fn single_tenant(&self) -> bool {
        self.rules.is_none()
    }

    /// Whether `namespace` may use `repository` as `usage`.
    pub fn allows(&self, namespace: &str, usage: Use, repository: &Repository) -> bool {
        let Some(rules) = self.rules else {
            return true;
        };
        let name = repository.to_string();
        rules
            .iter()
            .filter(|rule| rule.namespaces.iter().any(|p| glob(p, namespace)))
            .flat_map(|rule| match usage {
                Use::Source => &rule.sources,
                Use::Target => &rule.targets,
            })
            .any(|pattern| repository_matches(pattern, &name))
    }

    /// The target patterns `namespace` may write with the operator's
    /// credentials; None when single-tenant (anything).
    pub fn writable(&self, namespace: &str) -> Option<Vec<String>> {
        let rules = self.rules?;
        Some(
            rules
                .iter()
                .filter(|rule| rule.namespaces.iter().any(|p| glob(p, namespace)))
                .flat_map(|rule| rule.targets.iter().cloned())
                .collect(),
        )
    }

    /// `Ok` when `namespace` may use `repository` as `usage`; otherwise a
    /// message that says which rule would allow it.
    pub fn check(
        &self,
        namespace: &str,
        usage: Use,
        repository: &Repository,
        field: &str,
    ) -> Result<(), NotAllowed> {
        if self.allows(namespace, usage, repository) {
            return Ok(());
        }
        let rules = self.rules.unwrap_or_default();
        let granting: Vec<usize> = rules
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.namespaces.iter().any(|p| glob(p, namespace)))
            .map(|(i, _)| i)
            .collect();
        let verb = match usage {
            Use::Source => "promote from",
            Use::Target => "write with the operator's credentials to",
        };
        let hint = match granting.as_slice() {
            [] => format!(
                "no tenancy rule of the operator's configuration names namespace {namespace}; \
                 an administrator adds a rule with namespaces: [{namespace}] and {}: [{repository}]",
                usage.field()
            ),
            indexes => format!(
                "the operator's configuration allows namespace {namespace} only the {} of \
                 tenancy{}; an administrator adds {repository} to one of them{}",
                usage.field(),
                indexes
                    .iter()
                    .map(|i| format!("[{i}]"))
                    .collect::<Vec<_>>()
                    .join(", tenancy"),
                match usage {
                    Use::Target => ", or the object writes with its own credentials.secretRef",
                    Use::Source => "",
                }
            ),
        };
        Err(NotAllowed {
            message: format!("{field}: namespace {namespace} may not {verb} {repository}: {hint}"),
        })
    }
}

/// Checks the patterns of every rule.
pub fn validate(rules: &[TenancyRule]) -> Result<(), RuleError> {
    for (index, rule) in rules.iter().enumerate() {
        let error = |field, message: String| RuleError {
            index,
            field,
            message,
        };
        if rule.namespaces.is_empty() {
            return Err(error(
                "namespaces",
                "list at least one namespace or pattern (`*` for all)".into(),
            ));
        }
        for pattern in &rule.namespaces {
            if pattern.is_empty()
                || !pattern
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '*')
            {
                return Err(error(
                    "namespaces",
                    format!(
                        "{pattern:?} is not a namespace name or pattern (lowercase letters, \
                         digits, '-', and '*' for any characters)"
                    ),
                ));
            }
        }
        for (field, patterns) in [("sources", &rule.sources), ("targets", &rule.targets)] {
            for pattern in patterns {
                validate_repository_pattern(pattern).map_err(|m| error(field, m))?;
            }
        }
    }
    Ok(())
}

fn validate_repository_pattern(pattern: &str) -> Result<(), String> {
    let problem = if pattern.is_empty() {
        Some("is empty")
    } else if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace")
    } else if pattern.contains("://") {
        Some("has a scheme; write host/path as image references do")
    } else if pattern.contains("***") {
        Some("has '***'; use '*' within a path segment or '**' across segments")
    } else if pattern
        .split_once('/')
        .is_some_and(|(_, path)| path.contains([':', '@']))
    {
        Some("names a tag or digest; patterns name repositories")
    } else if !pattern.contains('/') && pattern != "**" {
        Some("has no '/'; write host/path, e.g. public.ecr.aws/acme/*")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!("{pattern:?} {problem}")),
        None => Ok(()),
    }
}

/// A repository pattern against `host/name`: without `*`, the repository
/// itself or anything below it (`host/team` matches `host/team/app`); with
/// `*`, a glob where `*` stays within a path segment and `**` crosses them.
pub fn repository_matches(pattern: &str, repository: &str) -> bool {
    if !pattern.contains('*') {
        let prefix = pattern.trim_end_matches('/');
        return repository == prefix
            || repository
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'));
    }
    segment_glob(pattern.as_bytes(), repository.as_bytes())
}

/// A namespace glob: `*` matches any characters.
fn glob(pattern: &str, text: &str) -> bool {
    wildcard(pattern.as_bytes(), text.as_bytes(), true)
}

fn segment_glob(pattern: &[u8], text: &[u8]) -> bool {
    wildcard(pattern, text, false)
}

/// Matches `text` against `pattern` where `**` matches any bytes and `*`
/// matches any bytes but `/` (or any bytes at all when `star_crosses`).
/// Iterative with backtracking to the last star: linear in practice, no
/// recursion for hostile input to exhaust.
fn wildcard(pattern: &[u8], text: &[u8], star_crosses: bool) -> bool {
    // Tokens: a literal byte, `*` (within a segment) or `**` (across).
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Byte(u8),
        Star { crosses: bool },
    }
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut i = 0;
    while i < pattern.len() {
        if pattern[i] == b'*' {
            let double = pattern.get(i + 1) == Some(&b'*');
            tokens.push(Token::Star {
                crosses: double || star_crosses,
            });
            i += if double { 2 } else { 1 };
        } else {
            tokens.push(Token::Byte(pattern[i]));
            i += 1;
        }
    }
    // Dynamic programming over (token, text position): O(tokens × text).
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for token in tokens {
        let mut next = vec![false; text.len() + 1];
        match token {
            Token::Byte(b) => {
                for at in 0..text.len() {
                    if reachable[at] && text[at] == b {
                        next[at + 1] = true;
                    }
                }
            }
            Token::Star { crosses } => {
                let mut open = false;
                for at in 0..=text.len() {
                    open |= reachable[at];
                    next[at] = open;
                    if at < text.len() && !crosses && text[at] == b'/' {
                        open = false;
                    }
                }
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(text: &str) -> Repository {
        text.parse().unwrap()
    }

    fn rules(yaml: &str) -> Vec<TenancyRule> {
        let rules: Vec<TenancyRule> = serde_yaml_ng::from_str(yaml).unwrap();
        validate(&rules).unwrap();
        rules
    }

    #[test]
    fn repository_patterns() {
        let cases = [
            ("public.ecr.aws/acme", "public.ecr.aws/acme/app", true),
            ("public.ecr.aws/acme", "public.ecr.aws/acme", true),
            ("public.ecr.aws/acme/", "public.ecr.aws/acme/app", true),
            ("public.ecr.aws/acme", "public.ecr.aws/acme-evil/app", false),
            ("public.ecr.aws/acme/*", "public.ecr.aws/acme/app", true),
            (
                "public.ecr.aws/acme/*",
                "public.ecr.aws/acme/team/app",
                false,
            ),
            (
                "public.ecr.aws/acme/**",
                "public.ecr.aws/acme/team/app",
                true,
            ),
            (
                "public.ecr.aws/acme/team-a-*",
                "public.ecr.aws/acme/team-a-web",
                true,
            ),
            (
                "public.ecr.aws/acme/team-a-*",
                "public.ecr.aws/acme/team-b-web",
                false,
            ),
            (
                "*.dkr.ecr.*.amazonaws.com/team-a/*",
                "1.dkr.ecr.us-east-1.amazonaws.com/team-a/x",
                true,
            ),
            (
                "*.dkr.ecr.*.amazonaws.com/team-a/*",
                "evil.io/x.dkr.ecr.y.amazonaws.com/team-a/x",
                false,
            ),
            ("quay.io/acme/*", "quay.io/acme/", true),
            ("**", "anything.io/at/all", true),
            ("127.0.0.1:5000/team/*", "127.0.0.1:5000/team/app", true),
        ];
        for (pattern, repository, expected) in cases {
            assert_eq!(
                repository_matches(pattern, repository),
                expected,
                "{pattern} ~ {repository}"
            );
        }
    }

    #[test]
    fn namespace_globs() {
        assert!(glob("team-*", "team-a"));
        assert!(glob("*", "anything"));
        assert!(glob("prod", "prod"));
        assert!(!glob("prod", "prod-2"));
        assert!(!glob("team-*", "other"));
        assert!(glob("*-prod", "web-prod"));
    }

    #[test]
    fn hostile_patterns_stay_cheap() {
        let pattern = "*a".repeat(2000);
        let text = "a".repeat(4000) + "b";
        assert!(!wildcard(pattern.as_bytes(), text.as_bytes(), true));
    }

    #[test]
    fn no_section_is_single_tenant() {
        let tenancy = Tenancy::new(None);
        assert!(tenancy.single_tenant());
        assert!(tenancy.allows("any", Use::Target, &repo("public.ecr.aws/acme/app")));
    }

    #[test]
    fn rules_grant_per_namespace_and_use() {
        let rules = rules(
            r#"
- namespaces: [team-a]
  sources: [123456789012.dkr.ecr.us-east-1.amazonaws.com/team-a]
  targets: [public.ecr.aws/acme/team-a-*]
- namespaces: ["*"]
  targets: [quay.io/acme/shared]
"#,
        );
        let tenancy = Tenancy::new(Some(&rules));
        let source = repo("123456789012.dkr.ecr.us-east-1.amazonaws.com/team-a/app");
        let cases = [
            ("team-a", Use::Source, source.clone(), true),
            ("team-b", Use::Source, source.clone(), false),
            (
                "team-a",
                Use::Target,
                repo("public.ecr.aws/acme/team-a-app"),
                true,
            ),
            (
                "team-a",
                Use::Target,
                repo("public.ecr.aws/acme/team-b-app"),
                false,
            ),
            ("team-a", Use::Target, source.clone(), false),
            ("team-b", Use::Target, repo("quay.io/acme/shared"), true),
            ("team-a", Use::Target, repo("quay.io/acme/shared"), true),
        ];
        for (namespace, usage, repository, expected) in cases {
            assert_eq!(
                tenancy.allows(namespace, usage, &repository),
                expected,
                "{namespace} {usage:?} {repository}"
            );
        }
        let err = tenancy
            .check(
                "team-a",
                Use::Target,
                &repo("public.ecr.aws/acme/other"),
                "spec.targets[public]",
            )
            .unwrap_err();
        assert_eq!(err.reason(), "RepositoryNotAllowed");
        assert!(err.message.contains("tenancy[0], tenancy[1]"), "{err}");
        assert!(
            err.message
                .starts_with("spec.targets[public]: namespace team-a"),
            "{err}"
        );
        let err = Tenancy::new(Some(&rules[..1]))
            .check("team-z", Use::Source, &source, "spec.source.image")
            .unwrap_err();
        assert!(err.message.contains("no tenancy rule"), "{err}");
        assert_eq!(
            tenancy.writable("team-a").unwrap(),
            ["public.ecr.aws/acme/team-a-*", "quay.io/acme/shared"]
        );
        assert_eq!(tenancy.writable("team-z").unwrap(), ["quay.io/acme/shared"]);
        assert_eq!(Tenancy::new(None).writable("team-a"), None);
    }

    #[test]
    fn an_empty_list_grants_nothing() {
        let tenancy = Tenancy::new(Some(&[]));
        assert!(!tenancy.single_tenant());
        assert!(!tenancy.allows("a", Use::Source, &repo("quay.io/a/b")));
    }

    #[test]
    fn malformed_rules_are_refused_with_where() {
        let cases = [
            ("[{namespaces: []}]", "tenancy[0].namespaces"),
            ("[{namespaces: [Team]}]", "not a namespace name"),
            (
                "[{namespaces: [a], sources: ['']}]",
                "tenancy[0].sources: \"\" is empty",
            ),
            (
                "[{namespaces: [a], targets: ['https://quay.io/a']}]",
                "has a scheme",
            ),
            (
                "[{namespaces: [a], targets: ['quay.io/a:1.0']}]",
                "names a tag",
            ),
            ("[{namespaces: [a], targets: [quay.io]}]", "has no '/'"),
            ("[{namespaces: [a], targets: ['quay.io/***']}]", "'***'"),
            (
                "[{namespaces: [a]}, {namespaces: [b], targets: ['a b/c']}]",
                "tenancy[1].targets",
            ),
        ];
        for (yaml, expected) in cases {
            let rules: Vec<TenancyRule> = serde_yaml_ng::from_str(yaml).unwrap();
            let message = validate(&rules).unwrap_err().to_string();
            assert!(message.contains(expected), "{yaml}: {message}");
        }
    }
}
