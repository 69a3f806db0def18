//! Status conditions: their types and how they are set.
//!
//! Both kinds report in the standard `metav1.Condition` shape. `Ready` says
//! whether the object has reached what its spec asks; `Reconciling` and
//! `Stalled` are abnormal-true (present and True only while work is under way
//! or blocked), as in Flux and kstatus, so tools such as Argo CD and
//! `kubectl wait` read them without knowing these kinds.
//!
//! [`set_condition`] keeps `lastTransitionTime` where it is unless the status
//! flips, and says what changed, so the controller can skip a status write
//! when nothing but a timestamp would change and emit events only on
//! transitions. The clock is a parameter so tests are deterministic.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// True when the object has reached what its spec asks: every target of a
/// promotion holds the image under every requested tag, or a mirror's last
/// sync left every selected tag in sync. False with a reason otherwise.
pub const READY: &str = "Ready";
/// True when the source image passed the effective verification policy
/// (promotions only). False with the reason of the first failed check.
pub const VERIFIED: &str = "Verified";
/// True while the controller is working towards Ready (resolving, verifying,
/// copying, syncing, or retrying a transient failure); False or absent otherwise.
pub const RECONCILING: &str = "Reconciling";
/// True when the controller cannot make progress until the object or the
/// world changes (a conflicting tag, a failed verification, an invalid spec,
/// missing credentials). What can change outside the cluster (ECR settings, a
/// signature pushed later, IAM, a Secret) is looked at again at the resync
/// interval; what depends on the object or the configuration alone waits for
/// them to change. False or absent otherwise.
pub const STALLED: &str = "Stalled";
/// True when the drift check of a finished promotion could not run (a 401 or
/// 403 at a target, a missing Secret); its reason says why. Absent otherwise:
/// the promotion's images are where they were, but nobody is looking.
pub const DRIFT_CHECK_FAILED: &str = "DriftCheckFailed";
/// Whether a Ready promotion's published digest still passes its effective
/// policy, judged again at the compliance interval (docs/compliance.md): True
/// with `PolicySatisfied`, or False with `VulnerabilitiesFound`,
/// `IgnoreExpired`, `SignatureInvalid` or `ScanUnavailable`. Ready stays True
/// either way: the images are where they should be. Absent until the
/// promotion is Ready.
pub const COMPLIANT: &str = "Compliant";

/// The annotation that asks for a reconcile now: any new value reconciles the
/// object at once, bypassing holds, and the status echoes it in
/// `lastHandledReconcileAt` (as Flux's `reconcile.fluxcd.io/requestedAt`).
pub const RECONCILE_REQUESTED_AT: &str = "imagepromoter.dev/reconcile-requested-at";

/// The status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The controller cannot tell yet.
    Unknown,
}

impl ConditionStatus {
    /// The string the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }

    /// Parses the API's string; anything unexpected is Unknown.
    pub fn parse(status: &str) -> Self {
        match status {
            "True" => Self::True,
            "False" => Self::False,
            _ => Self::Unknown,
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value { Self::True } else { Self::False }
    }
}

/// Where the current time comes from.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Time;
}

/// The system clock, in whole seconds: the precision `metav1.Time` has on the
/// wire, so a condition compares equal to itself after a round trip.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        let now = Timestamp::now().as_second();
        Time(Timestamp::from_second(now).expect("the current second is a valid timestamp"))
    }
}

/// A fixed time is a clock that never moves: what tests inject.
impl Clock for Time {
    fn now(&self) -> Time {
        self.clone()
    }
}

/// The desired state of one condition; the setter adds the transition time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    /// One of the condition type constants.
    pub type_: &'static str,
    /// The new status.
    pub status: ConditionStatus,
    /// PascalCase reason, one of the [`super::reasons`] constants or an error's reason.
    pub reason: String,
    /// Human-readable message, free of credentials.
    pub message: String,
    /// The metadata.generation this condition was computed from.
    pub observed_generation: Option<i64>,
}

impl ConditionUpdate {
    /// A condition update of `type_` with `status` and `reason`, no message yet.
    pub fn new(
        type_: &'static str,
        status: impl Into<ConditionStatus>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: None,
        }
    }

    /// Sets the message.
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Sets the observed generation.
    pub fn generation(mut self, generation: Option<i64>) -> Self {
        self.observed_generation = generation;
        self
    }
}

/// What [`set_condition`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionChange {
    /// Everything already was as asked.
    Unchanged,
    /// Reason, message or observed generation changed; the status did not.
    Updated,
    /// The condition was added or its status flipped; lastTransitionTime is now.
    Transitioned,
}

impl ConditionChange {
    /// Whether a status write is needed.
    pub fn is_change(self) -> bool {
        self != Self::Unchanged
    }
}

/// Sets one condition in `conditions`, adding it if absent.
///
/// `lastTransitionTime` is set to the clock's time when the condition is added
/// or its status changes, and kept otherwise.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate,
    clock: &impl Clock,
) -> ConditionChange {
    let status = update.status.as_str();
    match conditions.iter_mut().find(|c| c.type_ == update.type_) {
        None => {
            conditions.push(Condition {
                type_: update.type_.to_string(),
                status: status.to_string(),
                reason: update.reason,
                message: update.message,
                observed_generation: update.observed_generation,
                last_transition_time: clock.now(),
            });
            ConditionChange::Transitioned
        }
        Some(existing) if existing.status != status => {
            existing.status = status.to_string();
            existing.reason = update.reason;
            existing.message = update.message;
            existing.observed_generation = update.observed_generation;
            existing.last_transition_time = clock.now();
            ConditionChange::Transitioned
        }
        Some(existing) => {
            let unchanged = existing.reason == update.reason
                && existing.message == update.message
                && existing.observed_generation == update.observed_generation;
            if unchanged {
                return ConditionChange::Unchanged;
            }
            existing.reason = update.reason;
            existing.message = update.message;
            existing.observed_generation = update.observed_generation;
            ConditionChange::Updated
        }
    }
}

/// Removes the condition of `type_`; true when there was one.
///
/// Abnormal-true conditions (Reconciling, Stalled) may be removed instead of
/// set to False once they no longer apply.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

/// The condition of `type_`, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// The status of the condition of `type_`; Unknown when absent.
pub fn condition_status(conditions: &[Condition], type_: &str) -> ConditionStatus {
    find_condition(conditions, type_)
        .map(|c| ConditionStatus::parse(&c.status))
        .unwrap_or(ConditionStatus::Unknown)
}

/// Whether the condition of `type_` is present and True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    condition_status(conditions, type_) == ConditionStatus::True
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::reasons;

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn ready(status: bool, reason: &str, message: &str) -> ConditionUpdate {
        ConditionUpdate::new(READY, status, reason)
            .message(message)
            .generation(Some(1))
    }

    #[test]
    fn adding_a_condition_stamps_the_clock() {
        let mut conditions = Vec::new();
        let change = set_condition(
            &mut conditions,
            ready(false, "Progressing", "copying"),
            &at(100),
        );
        assert_eq!(change, ConditionChange::Transitioned);
        assert_eq!(conditions.len(), 1);
        let c = &conditions[0];
        assert_eq!(
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_str(),
                c.message.as_str()
            ),
            ("Ready", "False", "Progressing", "copying")
        );
        assert_eq!(c.observed_generation, Some(1));
        assert_eq!(c.last_transition_time, at(100));
    }

    /// Each step: (status, reason, message, generation, now) → (change, lastTransitionTime).
    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let steps: &[(bool, &str, &str, i64, i64, ConditionChange, i64)] = &[
            (
                false,
                "Progressing",
                "resolving",
                1,
                10,
                ConditionChange::Transitioned,
                10,
            ),
            (
                false,
                "Progressing",
                "resolving",
                1,
                20,
                ConditionChange::Unchanged,
                10,
            ),
            (
                false,
                "Progressing",
                "copying 1/2",
                1,
                30,
                ConditionChange::Updated,
                10,
            ),
            (
                false,
                "RegistryUnavailable",
                "503",
                1,
                40,
                ConditionChange::Updated,
                10,
            ),
            (
                false,
                "RegistryUnavailable",
                "503",
                2,
                45,
                ConditionChange::Updated,
                10,
            ),
            (
                true,
                "Promoted",
                "2/2 targets",
                2,
                50,
                ConditionChange::Transitioned,
                50,
            ),
            (
                true,
                "Promoted",
                "2/2 targets",
                2,
                60,
                ConditionChange::Unchanged,
                50,
            ),
            (
                false,
                "TagConflict",
                "latest moved",
                3,
                70,
                ConditionChange::Transitioned,
                70,
            ),
        ];
        let mut conditions = Vec::new();
        for (i, &(status, reason, message, generation, now, change, transition)) in
            steps.iter().enumerate()
        {
            let update = ConditionUpdate::new(READY, status, reason)
                .message(message)
                .generation(Some(generation));
            assert_eq!(
                set_condition(&mut conditions, update, &at(now)),
                change,
                "step {i}"
            );
            assert_eq!(conditions.len(), 1, "step {i}");
            let c = &conditions[0];
            assert_eq!(c.last_transition_time, at(transition), "step {i}");
            assert_eq!(
                (c.reason.as_str(), c.message.as_str(), c.observed_generation),
                (reason, message, Some(generation)),
                "step {i}"
            );
        }
    }

    #[test]
    fn conditions_of_other_types_are_left_alone() {
        let mut conditions = Vec::new();
        set_condition(&mut conditions, ready(true, "Promoted", ""), &at(1));
        set_condition(
            &mut conditions,
            ConditionUpdate::new(VERIFIED, true, reasons::POLICY_SATISFIED),
            &at(2),
        );
        set_condition(&mut conditions, ready(false, "TagConflict", "x"), &at(3));
        assert_eq!(conditions.len(), 2);
        let verified = find_condition(&conditions, VERIFIED).unwrap();
        assert_eq!(verified.last_transition_time, at(2));
        assert_eq!(condition_status(&conditions, READY), ConditionStatus::False);
        assert_eq!(conditions[0].type_, READY, "order is kept");
    }

    #[test]
    fn unknown_is_a_status_of_its_own() {
        let mut conditions = Vec::new();
        let unknown =
            ConditionUpdate::new(VERIFIED, ConditionStatus::Unknown, reasons::SCAN_PENDING);
        set_condition(&mut conditions, unknown, &at(1));
        assert_eq!(conditions[0].status, "Unknown");
        let change = set_condition(
            &mut conditions,
            ConditionUpdate::new(VERIFIED, false, reasons::SCAN_MISSING),
            &at(2),
        );
        assert_eq!(change, ConditionChange::Transitioned);
        assert_eq!(conditions[0].last_transition_time, at(2));
    }

    #[test]
    fn reading_conditions() {
        let mut conditions = Vec::new();
        assert_eq!(
            condition_status(&conditions, STALLED),
            ConditionStatus::Unknown
        );
        assert!(!is_true(&conditions, STALLED));
        set_condition(
            &mut conditions,
            ConditionUpdate::new(STALLED, true, reasons::TAG_CONFLICT),
            &at(1),
        );
        assert!(is_true(&conditions, STALLED));
        assert!(!is_true(&conditions, READY));
        assert!(remove_condition(&mut conditions, STALLED));
        assert!(!remove_condition(&mut conditions, STALLED));
        assert!(conditions.is_empty());
    }

    #[test]
    fn status_strings_round_trip() {
        for status in [
            ConditionStatus::True,
            ConditionStatus::False,
            ConditionStatus::Unknown,
        ] {
            assert_eq!(ConditionStatus::parse(status.as_str()), status);
        }
        assert_eq!(ConditionStatus::parse("true"), ConditionStatus::Unknown);
        assert!(ConditionChange::Updated.is_change());
        assert!(!ConditionChange::Unchanged.is_change());
    }

    #[test]
    fn the_system_clock_is_recent_and_in_whole_seconds() {
        let now = SystemClock.now();
        assert!(
            now.0 > Timestamp::from_second(1_767_225_600).unwrap(),
            "after 2026-01-01"
        );
        assert_eq!(now.0.subsec_nanosecond(), 0);
        let json = serde_json::to_value(&now).unwrap();
        assert_eq!(serde_json::from_value::<Time>(json).unwrap(), now);
    }
}
