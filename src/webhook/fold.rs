//! The webhook conditions and `status.webhook` from what the webhook step saw (pure). The parts
//! every source shares are here; a registered webhook folds its own (`Registered::fold`).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{RotateCause, WebhookOutcome};
use crate::crd::PeopleSyncStatus;
use crate::crd::conditions::{self as cond, Desired, Status};

/// The webhook conditions to set (`None`: keep what is there) and whether the webhook keeps the
/// object from being Ready (`Some((reason, message))`).
pub struct Conditions {
    pub desired: Vec<Desired>,
    /// Webhooks are off: their conditions are removed.
    pub remove: bool,
    pub not_ready: Option<(String, String)>,
}

pub fn fold(status: &mut PeopleSyncStatus, outcome: &WebhookOutcome, now: Timestamp) -> Conditions {
    let mut out = Conditions {
        desired: Vec::new(),
        remove: false,
        not_ready: None,
    };
    match outcome {
        WebhookOutcome::NotChecked => {
            // Keep what was seen; a registration that failed before still blocks Ready.
            if let Some(c) = cond::get(&status.conditions, cond::WEBHOOK_REGISTERED)
                .filter(|c| c.status == "False")
            {
                out.not_ready = Some((c.reason.clone(), c.message.clone()));
            }
        }
        WebhookOutcome::Off => {
            status.webhook = None;
            out.remove = true;
        }
        WebhookOutcome::Failed { reason, message } => {
            let message = format!(
                "{message}; deliveries are not verified until this is fixed, polling continues"
            );
            out.desired.push(Desired::new(
                cond::WEBHOOK_REGISTERED,
                Status::False,
                reason,
                message.clone(),
            ));
            if matches!(*reason, "RotationFailed" | "SecretWriteFailed") {
                out.desired.push(Desired::new(
                    cond::SECRET_ROTATED,
                    Status::False,
                    reason,
                    message.clone(),
                ));
            }
            out.not_ready = Some(((*reason).to_owned(), message));
        }
        WebhookOutcome::Registered(registered) => registered.fold(status, now, &mut out),
    }
    out
}

/// A time for `status.webhook`.
pub fn time(at: Option<Timestamp>) -> Option<Time> {
    at.map(Time)
}

/// How a source's webhook credential is named in `SecretRotated`.
pub struct Credential {
    /// What a rotation did: "the signing secret was rotated".
    pub rotated: &'static str,
    /// Why a lost one was replaced.
    pub recovered: &'static str,
    pub issued: &'static str,
    pub current: &'static str,
}

/// What the webhook step did to the credential.
pub struct Rotation {
    pub cause: Option<RotateCause>,
    pub created: bool,
    pub at: Timestamp,
    pub next: Option<Timestamp>,
    /// How long the previous credential is still accepted.
    pub previous: String,
}

/// `SecretRotated`, for either source: the rotation and its cause, the credential issued with a
/// new webhook, or (once) that the held one is current.
pub fn secret_rotated(
    status: &PeopleSyncStatus,
    rotation: Rotation,
    credential: &Credential,
    out: &mut Conditions,
) {
    let next = rotation
        .next
        .map(|t| format!("; the next is due at {t}"))
        .unwrap_or_default();
    let (reason, message) = match (rotation.cause, rotation.created) {
        (Some(cause), _) => (
            cause.as_str(),
            format!(
                "{} at {} ({}); {}{next}",
                credential.rotated,
                rotation.at,
                match cause {
                    RotateCause::Recover => credential.recovered,
                    RotateCause::Scheduled => "rotationInterval passed",
                    RotateCause::Requested => {
                        "requested by the peoplesync.dev/rotate-webhook-secret annotation"
                    }
                },
                rotation.previous,
            ),
        ),
        (None, true) => ("Issued", format!("{}{next}", credential.issued)),
        (None, false)
            if cond::get(&status.conditions, cond::SECRET_ROTATED)
                .is_none_or(|c| c.status != "True") =>
        {
            ("Current", format!("{}{next}", credential.current))
        }
        (None, false) => return,
    };
    out.desired.push(Desired::new(
        cond::SECRET_ROTATED,
        Status::True,
        reason,
        message,
    ));
}

/// A `WebhookHealthy` that is False keeps the object from being Ready, except while the source
/// is recovering on its own; without a new reading the condition already set says so.
pub fn health_blocks_ready(
    status: &PeopleSyncStatus,
    healthy: Option<&Desired>,
    out: &mut Conditions,
) {
    if let Some(desired) = healthy {
        if desired.status == Status::False && desired.reason != "Recovering" {
            out.not_ready = Some((
                format!("Webhook{}", desired.reason),
                desired.message.clone(),
            ));
        }
    } else if let Some(c) = cond::get(&status.conditions, cond::WEBHOOK_HEALTHY)
        .filter(|c| c.status == "False" && c.reason != "Recovering")
    {
        out.not_ready = Some((format!("Webhook{}", c.reason), c.message.clone()));
    }
}
