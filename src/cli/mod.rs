//! The one-shot commands of the binary, each a thin layer over the library:
//! parse arguments, call the engine, print a report, choose the exit code
//! (0 done, 1 the work failed, 2 bad usage or input).

pub mod copy;
pub mod mirror;
pub mod promote;
pub mod reconcile;
pub mod report;
pub mod run;

use std::process::ExitCode;

/// Exit code when the work itself failed (a copy failure, a conflict).
pub const FAILED: u8 = 1;
/// Exit code for bad usage or unusable input.
pub const USAGE: u8 = 2;

/// Prints an input error and returns the usage exit code.
pub fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("image-promoter: {message}");
    ExitCode::from(USAGE)
}
