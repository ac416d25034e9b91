//! The webhook conditions and `status.webhook` from what the webhook step saw (pure). The parts
//! every source shares are here; a source adds its health reading (`Health`).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Health, Registration, RemediationOutcome, RotateCause, WebhookOutcome};
use crate::crd::conditions::{self as cond, Desired, Status};
use crate::crd::{PeopleSyncStatus, WebhookStatusInfo};

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
#[derive(Debug, PartialEq, Eq)]
pub struct Credential {
    /// "signing secret".
    pub noun: &'static str,
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

/// "the previous one is accepted until …".
pub fn previous_accepted(expires: Option<Timestamp>) -> String {
    format!(
        "the previous one is accepted until {}",
        expires.map_or_else(|| "now (there was none)".to_owned(), |t| t.to_string())
    )
}

/// `status.webhook`, `WebhookRegistered`, `SecretRotated` and `WebhookHealthy` of a registered
/// webhook.
pub fn registered<H: Health>(
    status: &mut PeopleSyncStatus,
    r: &Registration<H>,
    now: Timestamp,
    out: &mut Conditions,
) {
    let k = &r.kept;
    let previous = status.webhook.take().unwrap_or_default();
    let mut info = WebhookStatusInfo {
        id: Some(k.id.clone()),
        status: Some(k.endpoint.to_owned()),
        secret_last_four: k.last_four.clone(),
        last_rotation_time: time(k.rotated_at),
        next_rotation_time: time(k.next_rotation),
        remediation_attempts: Some(k.remediation_attempts).filter(|n| *n > 0),
        last_remediation_time: time(k.last_remediation),
        ..previous
    };
    if let Some(health) = &r.health {
        health.read_into(&mut info, now);
    }
    status.webhook = Some(info);
    out.desired.push(Desired::new(
        cond::WEBHOOK_REGISTERED,
        Status::True,
        if k.created { "Created" } else { "Registered" },
        format!(
            "{} webhook {} delivers {} event types to {}; its {} is held in Secret {}",
            r.source, k.id, k.events, k.url, r.credential.noun, k.secret_name,
        ),
    ));
    secret_rotated(
        status,
        Rotation {
            cause: k.rotated,
            created: k.created,
            at: k.rotated_at.unwrap_or(now),
            next: k.next_rotation,
            previous: previous_accepted(k.previous_expires),
        },
        r.credential,
        out,
    );
    let healthy = r
        .health
        .as_ref()
        .map(|health| health.condition(&k.remediation));
    health_blocks_ready(status, healthy.as_ref(), out);
    out.desired.extend(healthy);
}

/// `WebhookHealthy`'s message for an endpoint the source disabled, by what self-healing did.
/// `disabled` says who disabled it ("HollyHR disabled the endpoint after repeated failures");
/// `fix` how to enable it by hand.
pub fn disabled_message(remediation: &RemediationOutcome, disabled: &str, fix: &str) -> String {
    match remediation {
        RemediationOutcome::Off => {
            format!("{disabled} and webhook.autoRemediate is off: {fix}")
        }
        RemediationOutcome::ReceiverDown => format!(
            "{disabled}; the receiver does not answer at webhook.publicUrl + /hooks/healthz yet: check the Ingress and the operator's receiver Service; it is re-enabled as soon as it answers"
        ),
        RemediationOutcome::Waiting { until } => format!(
            "{disabled}; it was disabled again after a re-enable, the next attempt is at {until} (backing off)"
        ),
        RemediationOutcome::Failed(message) => {
            format!("{disabled}; re-enabling it failed: {message}")
        }
        RemediationOutcome::Nothing | RemediationOutcome::ReEnabled { .. } => disabled.to_owned(),
    }
}
