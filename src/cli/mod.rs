//! The commands of the binary, each a thin layer over the library: parse
//! arguments, call the engine, print the result ([`output`]: `-o
//! text|json|yaml`), choose the exit code ([`exit`]: 0 done, 1 refused or
//! failed, 2 bad usage or input, 3 try again later).

pub mod completion;
pub mod copy;
pub mod credentials;
pub mod exit;
pub mod mirror;
pub mod output;
pub mod promote;
pub mod reconcile;
pub mod run;
pub mod version;

use std::process::ExitCode;

pub use exit::{FAILED, TRY_LATER, USAGE};

/// Prints an input error and returns the usage exit code.
pub fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("image-promoter: {message}");
    ExitCode::from(USAGE)
}
