//! The source-neutral webhook contract. A source's webhook *flavour* (in
//! `src/source/<name>/flavour/`) implements two traits:
//!
//! - [`Flavour`], for the controller: the webhook step of one reconcile (registration, the
//!   credential and its rotation, health, self-healing) and the removal at deletion. Its result
//!   is a [`WebhookOutcome`]; a registered webhook is a [`Registered`] that names its Events and
//!   folds its own conditions.
//! - [`Deliveries`], for the receiver: how a delivery is authenticated (before its body is read)
//!   and what it asks for (dedupe id, subject).
//!
//! What every source shares lives here: the owned Secret holding the credential ([`signing`]),
//! the rotation and self-healing decisions ([`rotation`]), and the conditions every outcome
//! folds into ([`fold`]). The controller, the receiver and the status fold are written once
//! against these traits; `source::any` is the one dispatch from a source to its flavour.

pub mod fold;
pub mod rotation;
pub mod signing;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use futures::future::BoxFuture;
use jiff::Timestamp;
use kube::ResourceExt;

pub use self::rotation::*;
use crate::crd::{PeopleSync, PeopleSyncStatus};
use crate::secrets::SecretCache;

/// The path the controller probes at the public URL before re-enabling a disabled endpoint:
/// the receiver answers it through the same Ingress as deliveries.
pub const HEALTH_PATH: &str = "/hooks/healthz";

/// What a flavour's upkeep may ask of this process's receiver (its book of credentials).
pub trait Receiving: Send + Sync {
    /// Whether `credential` is the object's current one in the receiver.
    fn holds(&self, namespace: &str, name: &str, credential: &secrecy::SecretString) -> bool;
    /// When the receiver last accepted an authenticated delivery for the object.
    fn last_accepted(&self, namespace: &str, name: &str) -> Option<Timestamp>;
}

/// Process-wide webhook settings (from the CLI).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// How often the health endpoint is read at most (default one minute).
    pub health_interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            health_interval: Duration::from_secs(60),
        }
    }
}

/// What the webhook step saw and did.
#[derive(Debug, Clone)]
pub enum WebhookOutcome {
    /// Webhooks are off for this object and none of its webhooks is active.
    Off,
    /// Not looked at (the source was not reachable, or the object is blocked or suspended).
    NotChecked,
    /// Registration, rotation or the Secret write failed.
    Failed {
        reason: &'static str,
        message: String,
    },
    /// The webhook is registered: what the source's flavour saw.
    Registered(Arc<dyn Registered>),
}

impl PartialEq for WebhookOutcome {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (WebhookOutcome::Off, WebhookOutcome::Off)
            | (WebhookOutcome::NotChecked, WebhookOutcome::NotChecked) => true,
            (
                WebhookOutcome::Failed { reason, message },
                WebhookOutcome::Failed {
                    reason: r,
                    message: m,
                },
            ) => reason == r && message == m,
            (WebhookOutcome::Registered(a), WebhookOutcome::Registered(b)) => a.same(b.as_ref()),
            _ => false,
        }
    }
}

impl Eq for WebhookOutcome {}

impl WebhookOutcome {
    /// When the next scheduled rotation is due, for a registered webhook (`Some(None)`: none
    /// is scheduled); `None` when nothing is registered.
    pub fn next_rotation(&self) -> Option<Option<Timestamp>> {
        match self {
            WebhookOutcome::Registered(r) => Some(r.next_rotation()),
            _ => None,
        }
    }

    /// The Events for what the step did (condition transitions get their own).
    pub fn notes(&self) -> Vec<(&'static str, String)> {
        match self {
            WebhookOutcome::Registered(r) => r.notes(),
            _ => Vec::new(),
        }
    }

    /// A registered webhook.
    pub fn registered(registered: impl Registered) -> Self {
        WebhookOutcome::Registered(Arc::new(registered))
    }
}

/// What a source's webhook step kept, alike for every source: the webhook, its credential, its
/// self-healing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The source's webhook id.
    pub id: String,
    pub url: String,
    /// How many event types it delivers.
    pub events: usize,
    /// Its state at the source as `status.webhook.status` shows it ("active", "enabled", …).
    pub endpoint: &'static str,
    /// The owned Secret holding the credential.
    pub secret_name: String,
    /// Created by this reconcile.
    pub created: bool,
    /// Rotated by this reconcile, and why.
    pub rotated: Option<RotateCause>,
    /// The last four characters of the current credential.
    pub last_four: Option<String>,
    pub rotated_at: Option<Timestamp>,
    pub next_rotation: Option<Timestamp>,
    /// Until when the previous credential is still accepted.
    pub previous_expires: Option<Timestamp>,
    pub remediation: RemediationOutcome,
    pub remediation_attempts: u32,
    pub last_remediation: Option<Timestamp>,
}

/// A source's reading of its webhook's health (HollyHR's health endpoint; Personio's activity
/// log and the receiver's accepted deliveries).
pub trait Health: std::fmt::Debug + Clone + PartialEq + Send + Sync + 'static {
    /// Writes the reading into `status.webhook`.
    fn read_into(&self, info: &mut crate::crd::WebhookStatusInfo, now: Timestamp);
    /// `WebhookHealthy` from the reading and what self-healing did.
    fn condition(&self, remediation: &RemediationOutcome) -> crate::crd::conditions::Desired;
}

/// A registered webhook as a source's flavour saw it in one reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration<H: Health> {
    /// "HollyHR".
    pub source: &'static str,
    pub credential: &'static fold::Credential,
    pub kept: Kept,
    /// The health, when it was read by this reconcile.
    pub health: Option<H>,
}

impl<H: Health> Registered for Registration<H> {
    fn next_rotation(&self) -> Option<Timestamp> {
        self.kept.next_rotation
    }

    fn notes(&self) -> Vec<(&'static str, String)> {
        let (k, source) = (&self.kept, self.source);
        let mut notes = Vec::new();
        if k.created {
            notes.push((
                "WebhookCreated",
                format!("registered {source} webhook {} for {}", k.id, k.url),
            ));
        }
        if let Some(cause) = k.rotated {
            notes.push((
                "SecretRotated",
                format!(
                    "rotated the {} of {source} webhook {} ({}); {}",
                    self.credential.noun,
                    k.id,
                    cause.as_str(),
                    fold::previous_accepted(k.previous_expires),
                ),
            ));
        }
        if let RemediationOutcome::ReEnabled { redelivered } = k.remediation {
            notes.push((
                "WebhookReEnabled",
                format!(
                    "the receiver answers again: re-enabled {source} webhook {} and redelivered {redelivered} failed deliveries",
                    k.id
                ),
            ));
        }
        notes
    }

    fn fold(&self, status: &mut PeopleSyncStatus, now: Timestamp, out: &mut fold::Conditions) {
        fold::registered(status, self, now, out);
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn same(&self, other: &dyn Registered) -> bool {
        other.as_any().downcast_ref::<Self>() == Some(self)
    }
}

impl<H: Health> Eq for Registration<H> {}

/// A registered webhook as one source's flavour saw it in one reconcile.
pub trait Registered: std::fmt::Debug + Send + Sync + 'static {
    /// When the next scheduled rotation is due (`None`: none is scheduled).
    fn next_rotation(&self) -> Option<Timestamp>;
    /// Events for what this reconcile did: created, rotated, re-enabled (reason, note).
    fn notes(&self) -> Vec<(&'static str, String)>;
    /// `status.webhook` and the `WebhookRegistered`, `SecretRotated` and `WebhookHealthy`
    /// conditions (pure).
    fn fold(&self, status: &mut PeopleSyncStatus, now: Timestamp, out: &mut fold::Conditions);
    fn as_any(&self) -> &dyn std::any::Any;
    /// Equality across the trait object (tests compare observations).
    fn same(&self, other: &dyn Registered) -> bool;
}

/// What self-healing did to an endpoint the source disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemediationOutcome {
    Nothing,
    /// Self-healing is off and the endpoint is disabled.
    Off,
    ReceiverDown,
    Waiting {
        until: Timestamp,
    },
    ReEnabled {
        redelivered: usize,
    },
    Failed(String),
}

/// What the webhook step of a reconcile may use besides the object and the source's client.
#[derive(Clone, Copy)]
pub struct Upkeep<'a> {
    /// The Secret cache (the owned Secret is read and written through it).
    pub secrets: &'a SecretCache,
    pub config: &'a WebhookConfig,
    /// This process's receiver's book, when it runs one: a rotation may wait for it to hold a
    /// new credential, and health may read its accepted deliveries.
    pub book: Option<&'a dyn Receiving>,
    /// The field manager of the owned Secret's writes.
    pub field_manager: &'a str,
    pub now: Timestamp,
}

/// Why removing an object's webhooks at deletion did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoveError {
    /// Rate limits, 5xx, timeouts, the network: retried with backoff.
    Transient(String),
    /// Anything else leaves the webhook behind (a Warning Event says so).
    Final(String),
}

/// One source's webhook, for the controller.
pub trait Flavour: Send + Sync {
    /// The webhook step of one reconcile.
    fn reconcile<'a>(
        &'a self,
        object: &'a PeopleSync,
        upkeep: Upkeep<'a>,
    ) -> BoxFuture<'a, WebhookOutcome>;
    /// At deletion: disables or deletes every webhook of the object at the source; how many.
    fn remove<'a>(&'a self, object: &'a PeopleSync) -> BoxFuture<'a, Result<usize, RemoveError>>;
    /// The Warning Event's message when the object's webhook is left at the source.
    fn left_behind(&self, namespace: &str, name: &str, why: &str) -> String;
}

/// What an accepted delivery asks the controller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A person changed: read that person and apply them.
    Person(String),
    /// An org unit changed: refresh the groups.
    OrgUnit(String),
    /// A test or ping, or an event PeopleSync has no use for: nothing.
    Nothing,
}

/// An authenticated delivery, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// What deduplicates it (a retry has the same).
    pub id: String,
    pub event_type: String,
    pub subject: Subject,
}

/// The credentials a receiver holds for one object's webhook: the current one and, during a
/// rotation overlap, the previous one until it expires.
#[derive(Clone)]
pub struct HeldCredentials {
    pub current: secrecy::SecretString,
    pub previous: Option<(secrecy::SecretString, Timestamp)>,
}

impl HeldCredentials {
    /// The credentials valid at `now`: the current one, and the previous one before it expires.
    pub fn valid_at(&self, now: Timestamp) -> Vec<&secrecy::SecretString> {
        let mut valid = vec![&self.current];
        if let Some((previous, expires)) = &self.previous
            && *expires > now
        {
            valid.push(previous);
        }
        valid
    }
}

/// Why a delivery was refused before anything read its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// 401: no held credential made or matches it.
    Unauthorized(String),
    /// 400: missing or malformed headers, a stale timestamp.
    BadRequest(String),
}

/// One source's deliveries, for the receiver.
pub trait Deliveries: Send + Sync {
    /// Authenticates the raw delivery against the held credentials; nothing parses the body
    /// before this passed.
    fn authenticate(
        &self,
        held: &HeldCredentials,
        headers: &HeaderMap,
        body: &[u8],
        now: Timestamp,
    ) -> Result<(), Refused>;
    /// Reads an authenticated delivery; the error is the 400's message.
    fn read(&self, headers: &HeaderMap, body: &[u8]) -> Result<Delivery, &'static str>;
    /// The answer to an accepted delivery that queues nothing.
    fn ignored_status(&self) -> StatusCode {
        StatusCode::ACCEPTED
    }
}

/// What the spec asks of any source's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// `publicUrl` + `/hooks/<namespace>/<name>`.
    pub url: String,
    /// The spec's events, or the source's defaults.
    pub events: std::collections::BTreeSet<String>,
}

/// The subscription the spec asks for, or `None` when webhooks are off (or no public URL is set).
pub fn subscription(
    spec: &crate::crd::PeopleSyncSpec,
    namespace: &str,
    name: &str,
    default_events: &[&str],
) -> Option<Subscription> {
    let webhook = spec.webhook.as_ref().filter(|w| w.enabled)?;
    let public = webhook.public_url.as_deref()?.trim_end_matches('/');
    let events = if webhook.events.is_empty() {
        default_events.iter().map(|e| (*e).to_owned()).collect()
    } else {
        webhook.events.iter().cloned().collect()
    };
    Some(Subscription {
        url: format!("{public}/hooks/{namespace}/{name}"),
        events,
    })
}

/// Whether a webhook's health is read in this reconcile: at once after a change, else at most
/// once per interval (`status.webhook.lastHealthCheckTime` remembers the last reading).
pub fn health_due(
    previous: Option<&crate::crd::WebhookStatusInfo>,
    interval: Duration,
    changed: bool,
    now: Timestamp,
) -> bool {
    let checked = previous
        .and_then(|w| w.last_health_check_time.as_ref())
        .map(|t| t.0);
    changed
        || checked.is_none_or(|at| {
            jiff::SignedDuration::try_from(interval)
                .ok()
                .and_then(|wait| at.checked_add(wait).ok())
                .is_some_and(|due| due <= now)
        })
}

/// A failed step's outcome.
pub fn failed(reason: &'static str, error: impl std::fmt::Display) -> WebhookOutcome {
    WebhookOutcome::Failed {
        reason,
        message: error.to_string(),
    }
}

/// "what: the error and its causes" (no secret is ever in an error).
pub fn cause(what: &str, error: &dyn std::error::Error) -> String {
    format!("{what}: {}", crate::telemetry::report(error))
}

/// What the webhook step of any source reads first: the rotation interval, the owned Secret as
/// held, and the value of a rotation request (the annotation), if any.
pub async fn rotation_inputs(
    object: &PeopleSync,
    secrets: &SecretCache,
    reading: &str,
) -> Result<(Duration, signing::Held, Option<String>), WebhookOutcome> {
    let interval = object.spec.rotation_interval().map_err(|error| {
        failed(
            "InvalidSpec",
            format!("spec.webhook.rotationInterval: {error}"),
        )
    })?;
    let namespace = object.namespace().unwrap_or_default();
    let held = signing::read(secrets, &namespace, &object.name_any())
        .await
        .map_err(|error| failed("SecretReadFailed", cause(reading, &error)))?;
    let requested = object
        .annotations()
        .get(crate::crd::ROTATE_WEBHOOK_SECRET)
        .filter(|v| !v.is_empty())
        .cloned();
    Ok((interval, held, requested))
}

/// Whether the receiver answers at the public URL (through the same Ingress as deliveries).
pub async fn receiver_answers(delivery_url: &str) -> bool {
    let Some((base, _)) = delivery_url.rsplit_once("/hooks/") else {
        return false;
    };
    let probe = format!("{base}{HEALTH_PATH}");
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    else {
        return false;
    };
    client
        .get(&probe)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Whether two secrets are equal, in constant time. Both are hashed first, so neither the
/// position of the first difference nor the length of the held one shows in the timing.
pub fn same_secret(presented: &[u8], held: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let a: [u8; 32] = Sha256::digest(presented).into();
    let b: [u8; 32] = Sha256::digest(held).into();
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}
