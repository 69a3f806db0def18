//! The reasons the controller reports in conditions, events and metrics.
//!
//! Each is PascalCase and says which condition carries it and when. This is
//! the API's vocabulary, documented for users in docs/api.md; errors of the
//! registry and AWS clients add their own reasons (one per failing operation)
//! where none of these fits.

/// Ready=True (promotion): every target holds the image under every requested tag.
pub const PROMOTED: &str = "Promoted";
/// Ready=True (mirror): the last sync left every selected tag in sync at every target.
pub const IN_SYNC: &str = "InSync";
/// Reconciling=True, Ready=False or Unknown: work is under way.
pub const PROGRESSING: &str = "Progressing";
/// Reconciling=False (mirror): spec.suspend is true; other conditions keep their last value.
pub const SUSPENDED: &str = "Suspended";

/// Verified=True: the source passed every check of the effective policy.
pub const POLICY_SATISFIED: &str = "PolicySatisfied";
/// Verified=False, Stalled=True: tag immutability is required and the source repository allows overwriting tags.
pub const TAG_MUTABLE: &str = "TagMutable";
/// Verified=False, Stalled=True: the source repository's encryption is weaker than required.
pub const ENCRYPTION_TOO_WEAK: &str = "EncryptionTooWeak";
/// Verified=Unknown, Reconciling=True: the image scan has not finished; checked again later.
pub const SCAN_PENDING: &str = "ScanPending";
/// Verified=False, Stalled=True: a scan is required and the image has never been scanned.
pub const SCAN_MISSING: &str = "ScanMissing";
/// Verified=False, Stalled=True: a scan is required and the image's scan did not complete
/// (FAILED, UNSUPPORTED_IMAGE, FINDINGS_UNAVAILABLE, …).
pub const SCAN_FAILED: &str = "ScanFailed";
/// Verified=False, Stalled=True: the scan has a finding at or above the threshold that no unexpired ignore entry covers.
pub const VULNERABILITIES_FOUND: &str = "VulnerabilitiesFound";
/// Verified=False, Stalled=True: a signature is required and the image has none.
pub const SIGNATURE_MISSING: &str = "SignatureMissing";
/// Verified=False, Stalled=True: the image's signatures do not verify against the required key or identity.
pub const SIGNATURE_INVALID: &str = "SignatureInvalid";

/// Compliant=False: a finding at or above the threshold is covered only by an ignore
/// entry whose expiry date has passed; renew the entry or ship a fix.
pub const IGNORE_EXPIRED: &str = "IgnoreExpired";
/// Compliant=False: the published digest's scan cannot be read, is missing, failed or
/// runs again; checked again at the next compliance interval.
pub const SCAN_UNAVAILABLE: &str = "ScanUnavailable";

/// Ready=False, Stalled=True: a write-once target tag points at another digest; nothing was overwritten.
pub const TAG_CONFLICT: &str = "TagConflict";
/// Ready=False, Stalled=True (promotion): a write-once tag published earlier now points at
/// another digest at a target; it is reported and never rewritten.
pub const TAG_DRIFTED: &str = "TagDrifted";
/// Ready=False (mirror): some selected tags point elsewhere at a target and were left alone.
pub const TAGS_DRIFTED: &str = "TagsDrifted";
/// Ready=False (mirror): some selected tags could not be copied; retried at the next interval.
pub const TAGS_FAILED: &str = "TagsFailed";
/// Ready=False (mirror): some selected tags' images fail the verification policy
/// (spec.verify raised to the operator's floor) and are not copied; each tag's failure
/// names the check. Tried again when the policy, the floor or the keys change, and at
/// every full resync.
pub const VERIFICATION_FAILED: &str = "VerificationFailed";
/// Ready=False, Reconciling=True (mirror): selected tags remain to be copied; each sync
/// copies at most spec.maxCopiesPerSync of them, newest first.
pub const BACKFILLING: &str = "Backfilling";
/// A tag the mirror once copied is no longer at the source; the target keeps it.
pub const SOURCE_TAG_DELETED: &str = "SourceTagDeleted";
/// Ready=False, Stalled=True: the source image or repository does not exist.
pub const SOURCE_NOT_FOUND: &str = "SourceNotFound";
/// Ready=False, Stalled=True: the source tag resolves to another digest than the one given.
pub const SOURCE_DIGEST_MISMATCH: &str = "SourceDigestMismatch";
/// Ready=False, Stalled=True: the spec passed the apiserver but is still unusable, e.g. a
/// regular expression or semver range that does not parse, or an ignore entry's bad date.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// Ready=False, Stalled=True (mirror): a pattern or the semver range of spec.tags does not
/// compile; nothing is selected until the object changes.
pub const INVALID_TAG_FILTER: &str = "InvalidTagFilter";
/// Ready=False, Stalled=True: a referenced Secret or key does not exist or has the wrong type.
pub const CREDENTIALS_NOT_FOUND: &str = "CredentialsNotFound";
/// Ready=False, Stalled=True: a registry or AWS rejected the credentials (401).
pub const AUTHENTICATION_FAILED: &str = "AuthenticationFailed";
/// Ready=False, Stalled=True: the credentials are valid but not allowed to do this (403).
pub const ACCESS_DENIED: &str = "AccessDenied";
/// Ready=False, Stalled=True: the object asks the operator to present its own AWS identity
/// (credentials.ecr / ecrPublic) to a host that is not ECR / ECR Public and that the
/// operator's configuration does not declare as such; nothing was sent.
pub const CREDENTIALS_NOT_ALLOWED: &str = "CredentialsNotAllowed";
/// Ready=False, Stalled=True: the operator's tenancy rules do not let the object's
/// namespace promote from its source, or write its target with the operator's credentials.
pub const REPOSITORY_NOT_ALLOWED: &str = crate::tenancy::REPOSITORY_NOT_ALLOWED;
/// Ready=False, Stalled=True: the target repository does not exist and createRepository is not set.
pub const REPOSITORY_NOT_FOUND: &str = "RepositoryNotFound";
/// Ready=False, Reconciling=True: a registry or AWS is unreachable or overloaded
/// (connection error, 408, 429, 5xx); retried with backoff.
pub const REGISTRY_UNAVAILABLE: &str = "RegistryUnavailable";
/// Ready=False, Reconciling=True: the operator failed unexpectedly while reconciling the
/// object (a bug); retried with backoff.
pub const RECONCILE_PANICKED: &str = "ReconcilePanicked";

/// Every reason above, for documentation checks and metric label sets.
pub const ALL: &[&str] = &[
    PROMOTED,
    IN_SYNC,
    PROGRESSING,
    SUSPENDED,
    POLICY_SATISFIED,
    TAG_MUTABLE,
    ENCRYPTION_TOO_WEAK,
    SCAN_PENDING,
    SCAN_MISSING,
    SCAN_FAILED,
    VULNERABILITIES_FOUND,
    SIGNATURE_MISSING,
    SIGNATURE_INVALID,
    TAG_CONFLICT,
    TAG_DRIFTED,
    TAGS_DRIFTED,
    TAGS_FAILED,
    VERIFICATION_FAILED,
    BACKFILLING,
    SOURCE_TAG_DELETED,
    SOURCE_NOT_FOUND,
    SOURCE_DIGEST_MISMATCH,
    INVALID_SPEC,
    INVALID_TAG_FILTER,
    CREDENTIALS_NOT_FOUND,
    AUTHENTICATION_FAILED,
    ACCESS_DENIED,
    CREDENTIALS_NOT_ALLOWED,
    REPOSITORY_NOT_ALLOWED,
    REPOSITORY_NOT_FOUND,
    REGISTRY_UNAVAILABLE,
    RECONCILE_PANICKED,
];

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn reasons_are_unique_pascal_case() {
        let mut seen = std::collections::BTreeSet::new();
        for reason in ALL {
            assert!(
                reason.starts_with(|c: char| c.is_ascii_uppercase()),
                "{reason}"
            );
            assert!(
                reason.chars().all(|c| c.is_ascii_alphanumeric()),
                "{reason}"
            );
            assert!(seen.insert(reason), "{reason} twice");
        }
    }
}
