//! The Personio API v2 source (`../shared/personio/API.md`): persons with their latest
//! employment, read through the client-credentials token, mapped onto the neutral model.

pub mod model;
