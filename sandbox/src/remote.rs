//! A small client for the HollyHR sandbox's `/_sandbox` test controls (faults, settings, the
//! clock, UI edits, the request log, reset), for tests, the demo and benchmarks. The client is
//! the one both sandboxes share (`core/remote.rs`).

use super::core::remote::{self, Kind};
pub use super::core::remote::{ControlClient, ControlError, LoggedRequest};

/// The HollyHR sandbox, to its control client.
#[derive(Debug, Clone)]
pub enum HollyHr {}

impl Kind for HollyHr {
    const API_BASE: &'static str = "/api/v1";
    const PEOPLE: &'static str = "people";
}

/// The HollyHR sandbox's controls.
pub type Controls = remote::Controls<HollyHr>;
