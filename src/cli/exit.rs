//! Exit codes, the same for every command, so a CI pipeline can tell what to do
//! next without reading the message:
//!
//! | Exit | Meaning | What to do |
//! |---|---|---|
//! | 0 | done | nothing |
//! | 1 | refused or failed | fix something: the image, the object, the configuration, a permission |
//! | 2 | bad input (flags, files, an invalid object); clap's own errors too | fix the command line |
//! | 3 | try again later: a scan still running, a registry unavailable or throttling, a network failure | run it again |
//!
//! Each command describes how its parts ended ([`Outcome`], from the errors'
//! own "does waiting help?" answer: `is_transient()`, `transient`) and
//! [`exit_code`], the one pure decision, turns them into the code.

use std::process::ExitCode;

/// Exit code: the work is done.
pub const DONE: u8 = 0;
/// Exit code: refused or failed; waiting alone will not change it.
pub const FAILED: u8 = 1;
/// Exit code: bad usage or unusable input (what clap uses for its own errors).
pub const USAGE: u8 = 2;
/// Exit code: nothing is wrong that waiting will not fix; try again later.
pub const TRY_LATER: u8 = 3;

/// How one part of a command's work ended (a target, an image, a tag, a read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// Bad usage or input: nothing was attempted.
    BadInput,
    /// Refused: by verification, a write-once tag, the configuration's rules.
    Refused,
    /// Failed, and waiting will not help (not found, denied, invalid, TLS).
    Failed,
    /// Failed, and trying again later may succeed (throttled, unavailable, network).
    Transient,
    /// Waits for something outside to finish (a vulnerability scan).
    Waiting,
}

impl Outcome {
    /// A failure, by whether waiting may help.
    pub fn failure(transient: bool) -> Self {
        if transient {
            Self::Transient
        } else {
            Self::Failed
        }
    }
}

/// The exit code for the parts of one run: bad input first (nothing ran),
/// then anything refused or failed for good (waiting would not make the run
/// succeed), then anything waiting or transient (running again later may),
/// else done.
pub fn exit_code(outcomes: &[Outcome]) -> u8 {
    use Outcome::*;
    if outcomes.contains(&BadInput) {
        USAGE
    } else if outcomes.iter().any(|o| matches!(o, Refused | Failed)) {
        FAILED
    } else if outcomes.iter().any(|o| matches!(o, Transient | Waiting)) {
        TRY_LATER
    } else {
        DONE
    }
}

/// [`exit_code`] as the process's exit status.
pub fn exit(outcomes: &[Outcome]) -> ExitCode {
    ExitCode::from(exit_code(outcomes))
}

#[cfg(test)]
mod tests {
    use super::Outcome::*;
    use super::*;

    #[test]
    fn one_code_per_kind_of_ending() {
        let cases: [(&[Outcome], u8); 14] = [
            (&[], DONE),
            (&[Done], DONE),
            (&[Done, Done], DONE),
            (&[BadInput], USAGE),
            (&[BadInput, Transient], USAGE),
            (&[Refused], FAILED),
            (&[Failed], FAILED),
            (&[Transient], TRY_LATER),
            (&[Waiting], TRY_LATER),
            (&[Done, Transient], TRY_LATER),
            // A permanent failure beside a transient one: waiting will not fix the run.
            (&[Transient, Failed], FAILED),
            (&[Waiting, Refused], FAILED),
            (&[Done, Failed, Done], FAILED),
            (&[Done, Waiting, Transient], TRY_LATER),
        ];
        for (outcomes, code) in cases {
            assert_eq!(exit_code(outcomes), code, "{outcomes:?}");
        }
        assert_eq!(Outcome::failure(true), Transient);
        assert_eq!(Outcome::failure(false), Failed);
    }
}
