//! PeopleSync: a Kubernetes operator that keeps an identity directory (LDAP or SCIM 2.0) aligned
//! with an HR system (HollyHR or Personio).
#![forbid(unsafe_code)]

pub mod cli;
pub mod controller;
pub mod controlplane;
pub mod crd;
pub mod directory;
pub mod ds389;
pub mod http;
pub mod metrics;
pub mod plan;
pub mod receiver;
pub mod retry;
pub mod samba;
pub mod scim_server;
pub mod secrets;
pub mod signature;
pub mod slapd;
pub mod source;
pub mod sync;
pub mod telemetry;
pub mod watch;
pub mod webhook;

#[cfg(test)]
mod fuzz;
