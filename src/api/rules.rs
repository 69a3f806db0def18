//! The CEL validation rules the apiserver runs on `kubectl apply`, in one place.
//!
//! Both kinds share the grammar of image references, tags and digests, so the
//! regular expressions are written once here and the rules are built by small
//! functions that the `#[x_kube(validation = …)]` attributes call. Every rule
//! carries a message that names what is allowed, because that message is what a
//! release engineer reads when `kubectl apply` refuses an object.
//!
//! The expressions avoid backslashes (`[.]` rather than `\.`) so they read the
//! same in Rust, in the generated YAML and in the apiserver's error messages.
//! What CEL cannot check (regular-expression syntax, semver ranges, whether a
//! Secret exists) is left to the controller, which reports it as `InvalidSpec`.

use kube::core::{Reason, Rule};

/// One host name label, as in the distribution reference grammar.
macro_rules! domain_component {
    () => {
        "[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?"
    };
}

/// A registry host: dotted name or `host:port` or `localhost`, optional port.
///
/// A bare single-label name such as `library` is not a host; references must
/// name their registry explicitly (there is no implicit Docker Hub).
macro_rules! registry_host {
    () => {
        concat!(
            "(",
            domain_component!(),
            "([.]",
            domain_component!(),
            ")+(:[0-9]{1,5})?|",
            domain_component!(),
            ":[0-9]{1,5}|localhost)"
        )
    };
}

/// One repository path component: lowercase alphanumerics joined by `.`, `_`, `__` or dashes.
macro_rules! path_component {
    () => {
        "[a-z0-9]+(([._]|__|[-]+)[a-z0-9]+)*"
    };
}

/// A repository: registry host followed by one or more path components.
macro_rules! repository {
    () => {
        concat!(
            registry_host!(),
            "/",
            path_component!(),
            "(/",
            path_component!(),
            ")*"
        )
    };
}

/// A tag, as the OCI distribution specification allows it.
macro_rules! tag {
    () => {
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
    };
}

/// A content digest: sha256 or sha512, lowercase hex.
macro_rules! digest {
    () => {
        "(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})"
    };
}

/// `^repository$`.
pub const REPOSITORY_PATTERN: &str = concat!("^", repository!(), "$");
/// `^repository(:tag|(:tag)?@digest)$`: a reference that names one image.
pub const IMAGE_PATTERN: &str = concat!(
    "^",
    repository!(),
    "(:",
    tag!(),
    "|(:",
    tag!(),
    ")?@",
    digest!(),
    ")$"
);
/// `^tag$`.
pub const TAG_PATTERN: &str = concat!("^", tag!(), "$");
/// `^digest$`.
pub const DIGEST_PATTERN: &str = concat!("^", digest!(), "$");
/// True when the last path component of a reference carries a `:tag`.
pub const HAS_TAG_PATTERN: &str = "^[^@]*/[^/@:]+:[^/@:]+(@.*)?$";
/// A DNS-1123 label: what Kubernetes accepts as a name of a list entry.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// `os/arch` or `os/arch/variant`, as in an OCI image index.
pub const PLATFORM_PATTERN: &str = "^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$";
/// A Go duration such as `90s`, `10m` or `1h30m`.
pub const DURATION_PATTERN: &str = "^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$";
/// A Kubernetes label value: what a tier may be, so it can label metrics and objects.
pub const LABEL_VALUE_PATTERN: &str = "^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$";

/// The shortest mirror interval: polling registries faster only costs rate limit.
pub const MINIMUM_MIRROR_INTERVAL: &str = "1m";

/// `self` must match `pattern`; the message names what is allowed.
fn matches(pattern: &str, message: &str) -> Rule {
    Rule::new(format!("self.matches('{pattern}')")).message(message)
}

/// Every string of the list `self` must match `pattern`.
fn all_match(pattern: &str, message: &str) -> Rule {
    Rule::new(format!("self.all(x, x.matches('{pattern}'))")).message(message)
}

/// An image reference with a tag, a digest, or both.
pub fn image_reference() -> Rule {
    matches(
        IMAGE_PATTERN,
        "must be a full image reference: registry host, repository path and \
         :tag, @sha256:<64 hex> or both, e.g. \
         123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.2.3",
    )
}

/// A repository reference without tag or digest.
pub fn repository_reference() -> Rule {
    matches(
        REPOSITORY_PATTERN,
        "must be a repository with its registry host and no tag or digest, \
         e.g. public.ecr.aws/acme/app or quay.io/acme/app",
    )
}

/// A digest.
pub fn digest() -> Rule {
    matches(
        DIGEST_PATTERN,
        "must be a digest: sha256: followed by 64 lowercase hex digits (or sha512: and 128)",
    )
}

/// A list of tags.
pub fn tags() -> Rule {
    all_match(
        TAG_PATTERN,
        "each tag must be 1-128 characters of letters, digits, '_', '.' and '-', \
         not starting with '.' or '-'",
    )
}

/// The name of a list entry.
pub fn dns_label() -> Rule {
    matches(
        DNS_LABEL_PATTERN,
        "must be a DNS label: lowercase letters, digits and '-', starting and ending \
         with a letter or digit",
    )
}

/// A list of platforms.
pub fn platforms() -> Rule {
    all_match(
        PLATFORM_PATTERN,
        "each platform must be os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm64/v8",
    )
}

/// A list of regular expressions: none may be empty (an empty pattern matches everything).
pub fn non_empty_patterns() -> Rule {
    Rule::new("self.all(x, size(x) > 0)").message(
        "regular expressions must not be empty (an empty pattern matches every tag; \
         leave the list out instead)",
    )
}

/// A Go duration of at least [`MINIMUM_MIRROR_INTERVAL`].
pub fn mirror_interval() -> Rule {
    Rule::new(format!(
        "self.matches('{DURATION_PATTERN}') && duration(self) >= duration('{MINIMUM_MIRROR_INTERVAL}')"
    ))
    .message(
        format!("must be a duration of at least {MINIMUM_MIRROR_INTERVAL}, such as 5m, 1h or 1h30m")
            .as_str(),
    )
}

/// `spec.compliance.interval`: a duration of at least one second.
pub fn compliance_interval() -> Rule {
    Rule::new(format!(
        "self.matches('{DURATION_PATTERN}') && duration(self) >= duration('1s')"
    ))
    .message("must be a duration of at least 1s, such as 30m, 6h or 1h30m")
}

/// A tier label.
pub fn tier() -> Rule {
    matches(
        LABEL_VALUE_PATTERN,
        "must be a label value such as Gold, Silver or Bronze: letters, digits, '-', '_' \
         and '.', starting and ending with a letter or digit",
    )
}

/// `self` (a field) may not change once the object exists.
pub fn immutable(message: &str) -> Rule {
    Rule::new("self == oldSelf")
        .message(message)
        .reason(Reason::FieldValueForbidden)
}

/// Exactly one of the named optional fields of `self` is set.
pub fn exactly_one_of(fields: &[&str]) -> Rule {
    let count = fields
        .iter()
        .map(|field| format!("(has(self.{field}) ? 1 : 0)"))
        .collect::<Vec<_>>()
        .join(" + ");
    Rule::new(format!("{count} == 1"))
        .message(format!("set exactly one of {}", fields.join(", ")).as_str())
}

/// Every entry of the list `self.targets` names a different repository.
pub fn unique_target_repositories() -> Rule {
    Rule::new("self.targets.all(t, self.targets.exists_one(u, u.repository == t.repository))")
        .message("each target repository may appear only once")
        .field_path(".targets")
}

/// No target of a promotion is the repository of its source image.
///
/// A reference is `repository(:tag)?(@digest)?`, and a valid repository has no
/// `:` or `@` after its host, so the source is in repository `r` exactly when it
/// starts with `r:` or `r@`.
pub fn promotion_target_is_not_source() -> Rule {
    Rule::new(
        "self.targets.all(t, !self.source.image.startsWith(t.repository + ':') \
         && !self.source.image.startsWith(t.repository + '@'))",
    )
    .message("a target repository must differ from the source repository")
    .field_path(".targets")
}

/// No target of a mirror is its source repository.
pub fn mirror_target_is_not_source() -> Rule {
    Rule::new("self.targets.all(t, t.repository != self.source.repository)")
        .message("a target repository must differ from the source repository")
        .field_path(".targets")
}

/// A source without a tag gives targets no default tag, so each must list its own.
pub fn untagged_source_needs_target_tags() -> Rule {
    Rule::new(format!(
        "self.source.image.matches('{HAS_TAG_PATTERN}') || self.targets.all(t, has(t.tags))"
    ))
    .message("the source image has no tag, so every target must list its tags")
    .field_path(".targets")
}

/// A digest given both inside the image reference and separately must agree.
pub fn source_digest_agrees() -> Rule {
    Rule::new(
        "!has(self.digest) || !self.image.contains('@') || self.image.endsWith('@' + self.digest)",
    )
    .message("digest disagrees with the digest in image; give it once or make them equal")
    .field_path(".digest")
}

/// Floating tags are a subset of the target's tags.
pub fn floating_tags_are_tags() -> Rule {
    Rule::new(
        "!has(self.floatingTags) || (has(self.tags) && self.floatingTags.all(f, f in self.tags))",
    )
    .message("every floating tag must also be listed in tags")
    .field_path(".floatingTags")
}

/// `createRepository` uses the ECR Public API, so the target must be ECR Public.
pub fn create_repository_needs_ecr_public() -> Rule {
    Rule::new(
        "!has(self.createRepository) || (has(self.credentials) ? has(self.credentials.ecrPublic) \
         : self.repository.startsWith('public.ecr.aws/'))",
    )
    .message(
        "createRepository works only for ECR Public targets: a public.ecr.aws repository \
         or credentials.ecrPublic",
    )
    .field_path(".createRepository")
}

#[cfg(test)]
mod tests {
    //! The apiserver runs these patterns with RE2; the subset they use (classes,
    //! groups, alternation, bounded repetition) means the same in the `regex`
    //! crate, so the accept/refuse tables below hold for the apiserver too.

    use super::*;
    use regex::Regex;

    fn check(pattern: &str, accepted: &[&str], refused: &[&str]) {
        let re = Regex::new(pattern).expect(pattern);
        for text in accepted {
            assert!(re.is_match(text), "{pattern} should accept {text:?}");
        }
        for text in refused {
            assert!(!re.is_match(text), "{pattern} should refuse {text:?}");
        }
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn patterns_are_anchored_and_quote_free() {
        for pattern in [
            REPOSITORY_PATTERN,
            IMAGE_PATTERN,
            TAG_PATTERN,
            DIGEST_PATTERN,
            HAS_TAG_PATTERN,
            DNS_LABEL_PATTERN,
            PLATFORM_PATTERN,
            DURATION_PATTERN,
            LABEL_VALUE_PATTERN,
        ] {
            assert!(
                pattern.starts_with('^') && pattern.ends_with('$'),
                "{pattern}"
            );
            assert!(!pattern.contains('\\'), "{pattern} has a backslash");
            assert!(
                !pattern.contains('\''),
                "{pattern} would end the CEL string"
            );
        }
    }

    #[test]
    fn repositories_name_their_registry() {
        check(
            REPOSITORY_PATTERN,
            &[
                "public.ecr.aws/acme/app",
                "quay.io/acme/app",
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app",
                "127.0.0.1:5000/internal/app",
                "registry:5000/app",
                "localhost/app",
                "quay.io/acme/my_app__x-y.z",
            ],
            &[
                "acme/app",
                "app",
                "quay.io",
                "quay.io/",
                "quay.io/Acme/app",
                "quay.io/acme/app:1.0",
                "quay.io/acme/app@sha256:abc",
                "quay.io/acme//app",
                "quay.io/acme/app/",
                "-quay.io/acme/app",
            ],
        );
    }

    #[test]
    fn images_carry_a_tag_or_a_digest() {
        let by_digest = format!("quay.io/acme/app@sha256:{SHA}");
        let both = format!("quay.io/acme/app:1.2.3@sha256:{SHA}");
        let short = "quay.io/acme/app@sha256:0123";
        let upper = format!("quay.io/acme/app@sha256:{}", SHA.to_uppercase());
        check(
            IMAGE_PATTERN,
            &[
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/app:1.2.3",
                "127.0.0.1:5000/app:latest",
                &by_digest,
                &both,
            ],
            &[
                "quay.io/acme/app",
                "quay.io/acme/app:",
                "quay.io/acme/app:-bad",
                "acme/app:1.0",
                short,
                &upper,
                "quay.io/acme/app:1.0@",
            ],
        );
    }

    #[test]
    fn has_tag_looks_at_the_last_path_component_only() {
        let by_digest = format!("127.0.0.1:5000/app@sha256:{SHA}");
        let both = format!("127.0.0.1:5000/app:1@sha256:{SHA}");
        check(
            HAS_TAG_PATTERN,
            &["quay.io/acme/app:1.0", "127.0.0.1:5000/app:1", &both],
            &["127.0.0.1:5000/app", &by_digest],
        );
    }

    #[test]
    fn tags_digests_and_names() {
        let long_tag = "a".repeat(129);
        check(
            TAG_PATTERN,
            &["1.2.3", "latest", "_x", "v1.0-rc.1"],
            &["", ".x", "-x", "a/b", &long_tag],
        );
        let sha256 = format!("sha256:{SHA}");
        let sha512 = format!("sha512:{SHA}{SHA}");
        check(
            DIGEST_PATTERN,
            &[&sha256, &sha512],
            &["sha256:abc", "md5:0123", SHA],
        );
        check(
            DNS_LABEL_PATTERN,
            &["ecr-public", "quay", "a1"],
            &["Quay", "-a", "a-", "a_b", ""],
        );
        check(
            PLATFORM_PATTERN,
            &["linux/amd64", "linux/arm64/v8"],
            &["linux", "linux/", "Linux/amd64"],
        );
        check(
            LABEL_VALUE_PATTERN,
            &["Gold", "tier-2", "a"],
            &["", "-Gold", "Gold Plus"],
        );
    }

    #[test]
    fn durations_are_go_durations() {
        check(
            DURATION_PATTERN,
            &["10m", "1h30m", "90s", "1.5h"],
            &["", "10", "1d", "10 m", "-5m"],
        );
    }

    #[test]
    fn exactly_one_of_counts_every_field() {
        let rule = exactly_one_of(&["a", "b"]);
        assert_eq!(
            rule.rule,
            "(has(self.a) ? 1 : 0) + (has(self.b) ? 1 : 0) == 1"
        );
        assert!(format!("{:?}", rule.message).contains("set exactly one of a, b"));
    }
}
