//! A small client for the Personio sandbox's `/_sandbox` test controls (faults, settings, the
//! clock, UI edits, emitted events, the request log, reset), for tests, the demo and benchmarks.
//! The client is the one both sandboxes share (`../core/remote.rs`).

use super::super::core::remote::{self, Kind};
pub use super::super::core::remote::{ControlClient, ControlError, LoggedRequest};
use peoplesync::source::personio::model::Event;

/// The Personio sandbox, to its control client.
#[derive(Debug, Clone)]
pub enum Personio {}

impl Kind for Personio {
    const API_BASE: &'static str = "";
    const PEOPLE: &'static str = "persons";
}

/// The Personio sandbox's controls.
pub type Controls = remote::Controls<Personio>;

impl Controls {
    /// Every event the sandbox emitted since it started or was reset, oldest first (whether or
    /// not a webhook was subscribed).
    pub async fn events(&self) -> Result<Vec<Event>, ControlError> {
        self.list("/events").await
    }
}
