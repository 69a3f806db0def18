//! An object checked as the apiserver checks it on `kubectl apply`, without
//! an apiserver: the CRD's OpenAPI schema ([`schema`]) and its CEL rules
//! ([`cel`]), with the same field paths and messages. The one-shot commands
//! read objects from files and use this; in a cluster the apiserver does it.

pub mod cel;
pub mod schema;

pub use schema::{Violation, validate};
