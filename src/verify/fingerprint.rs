//! A fingerprint of the effective verification policy: the object's
//! `spec.verify`, the floor as loaded now, and the keys each verifier
//! trusts. A verdict is kept only for the fingerprint it was reached under,
//! so a tightened floor, a changed spec or a rotated key is verified again.
//!
//! The fingerprint lives in the process only (it is never written or
//! compared across versions), so any stable encoding within one process will
//! do: the JSON of the policy and the floor, and the trusted key ids.

use crate::registry::Digest;

use super::VerificationFloor;
use super::cosign::Verifier;

/// The fingerprint of `policy` (an object's `spec.verify`, or `None` for a
/// mirror without one) raised to `floor`, with `verifiers`' keys.
pub fn fingerprint<'a>(
    policy: &impl serde::Serialize,
    floor: &VerificationFloor,
    verifiers: impl IntoIterator<Item = &'a Verifier>,
) -> String {
    let trusted: Vec<Vec<String>> = verifiers.into_iter().map(Verifier::trusted).collect();
    let encoded = serde_json::json!({
        "policy": policy,
        "floor": floor,
        "trusted": trusted,
    });
    Digest::sha256_of(encoded.to_string().as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Severity, VerificationPolicy};

    #[test]
    fn any_change_of_policy_floor_or_keys_changes_the_fingerprint() {
        let policy: VerificationPolicy = serde_json::from_value(serde_json::json!({})).unwrap();
        let floor = VerificationFloor::default();
        let base = fingerprint(&policy, &floor, []);
        assert_eq!(base, fingerprint(&policy, &floor, []), "stable");
        let mut stricter = policy.clone();
        stricter.scan.fail_on_severity = Severity::Low;
        assert_ne!(base, fingerprint(&stricter, &floor, []));
        let floored: VerificationFloor = serde_json::from_value(serde_json::json!({
            "signature": {"required": true}
        }))
        .unwrap();
        assert_ne!(base, fingerprint(&policy, &floored, []));
        let keyless = Verifier::Keyless(crate::verify::keyless::tests::verifier(
            "https://token.actions.githubusercontent.com",
            "a",
        ));
        assert_ne!(base, fingerprint(&policy, &floor, [&keyless]));
    }
}
