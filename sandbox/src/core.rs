//! The core both sandboxes run on, written once: the generic [`sandbox::Sandbox`] (a seeded
//! tenant behind one lock, the clock, rate limits, test controls), the `/_sandbox/` routes they
//! share, injected faults, the delivery worker loop, the running server, the control-API
//! client, the HTTP helpers of their middleware and the seeded generator's building blocks.
//! Each sandbox (`store.rs` … for HollyHR, `personio/` for Personio) adds only what its vendor's
//! contract makes different.

pub mod clock;
pub mod controls;
pub mod faults;
pub mod http;
pub mod ratelimit;
pub mod remote;
pub mod sandbox;
pub mod seed;
pub mod server;
pub mod worker;
