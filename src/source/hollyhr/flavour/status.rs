//! The HollyHR webhook's conditions and `status.webhook` fields (pure), from its health endpoint
//! (Decision 5) and what self-healing did.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::upkeep::Registered;
use crate::crd::conditions::{self as cond, Desired, Status};
use crate::crd::{PeopleSyncStatus, WebhookStatusInfo};
use crate::source::hollyhr::model::{HealthStatus, WebhookHealth, WebhookStatus};
use crate::webhook::RemediationOutcome;
use crate::webhook::fold::{
    Conditions, Credential, Rotation, health_blocks_ready, secret_rotated, time,
};

pub(super) fn conditions(
    status: &mut PeopleSyncStatus,
    r: &Registered,
    now: Timestamp,
    out: &mut Conditions,
) {
    let previous = status.webhook.take().unwrap_or_default();
    let mut info = WebhookStatusInfo {
        id: Some(r.webhook.id.clone()),
        status: Some(endpoint(r.webhook.status).to_owned()),
        secret_last_four: r.secret_last_four.clone(),
        last_rotation_time: time(r.rotated_at),
        next_rotation_time: time(r.next_rotation),
        remediation_attempts: Some(r.remediation_attempts).filter(|n| *n > 0),
        last_remediation_time: time(r.last_remediation),
        ..previous
    };
    if let Some(health) = &r.health {
        read_health(&mut info, health, now);
    }
    status.webhook = Some(info);

    let events = r.webhook.subscribed_events.len();
    out.desired.push(Desired::new(
        cond::WEBHOOK_REGISTERED,
        Status::True,
        if r.created { "Created" } else { "Registered" },
        format!(
            "HollyHR webhook {} delivers {events} event types to {}; its signing secret is held in Secret {}",
            r.webhook.id,
            r.webhook.url,
            r.secret_name,
        ),
    ));
    secret_rotated(
        status,
        Rotation {
            cause: r.rotated,
            created: r.created,
            at: r.rotated_at.unwrap_or(now),
            next: r.next_rotation,
            previous: "the previous one stays valid for 24 h".to_owned(),
        },
        &SIGNING_SECRET,
        out,
    );
    let healthy = r
        .health
        .as_ref()
        .map(|health| healthy(health, &r.remediation));
    health_blocks_ready(status, healthy.as_ref(), out);
    out.desired.extend(healthy);
}

const SIGNING_SECRET: Credential = Credential {
    rotated: "the signing secret was rotated",
    recovered: "the held secret was missing or not the webhook's",
    issued: "the signing secret was issued with the webhook",
    current: "the held signing secret is the webhook's",
};

fn endpoint(status: WebhookStatus) -> &'static str {
    match status {
        WebhookStatus::Active => "active",
        WebhookStatus::Disabled => "disabled",
    }
}

fn read_health(info: &mut WebhookStatusInfo, health: &WebhookHealth, now: Timestamp) {
    let value = |v: &dyn WireName| v.text();
    info.status = Some(endpoint(health.endpoint_status).to_owned());
    info.health = Some(value(&health.health_status));
    info.recommended_action = Some(value(&health.recommended_action));
    info.action_required = Some(health.action_required);
    let c = health.delivery_counts;
    info.deliveries = Some(
        [
            ("total", c.total),
            ("pending", c.pending),
            ("delivered", c.delivered),
            ("retryScheduled", c.retry_scheduled),
            ("failed", c.failed),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
    );
    info.last_success_time = time(health.last_success_at);
    info.last_failure_time = time(health.last_failure_at);
    // Sanitised: status code, class and time; HollyHR's free-text message is not copied.
    info.latest_failure = health.latest_failure.as_ref().map(|f| {
        let code = f
            .status_code
            .map_or("no response".to_owned(), |c| format!("HTTP {c}"));
        let class = f
            .error_class
            .as_ref()
            .map(|c| format!(" ({})", value(c)))
            .unwrap_or_default();
        format!("{code}{class} at {}", f.failed_at)
    });
    info.last_health_check_time = Some(Time(now));
}

/// The wire name of a serde enum (for status strings).
trait WireName {
    fn text(&self) -> String;
}

impl<T: serde::Serialize> WireName for T {
    fn text(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// `WebhookHealthy` from HollyHR's health (Decision 5) and what self-healing did.
pub(super) fn healthy(health: &WebhookHealth, remediation: &RemediationOutcome) -> Desired {
    let counts = health.delivery_counts;
    match health.health_status {
        HealthStatus::Healthy => Desired::new(
            cond::WEBHOOK_HEALTHY,
            Status::True,
            "Healthy",
            format!("{} of {} retained deliveries delivered", counts.delivered, counts.total),
        ),
        HealthStatus::Recovering => Desired::new(
            cond::WEBHOOK_HEALTHY,
            Status::False,
            "Recovering",
            match remediation {
                RemediationOutcome::ReEnabled { redelivered } => format!(
                    "the endpoint was disabled and has been re-enabled; {redelivered} failed deliveries were redelivered and {} are pending",
                    counts.pending + counts.retry_scheduled
                ),
                _ => format!(
                    "{} deliveries are waiting for a retry; HollyHR retries on its own, nothing to do yet",
                    counts.pending + counts.retry_scheduled
                ),
            },
        ),
        HealthStatus::Failing => Desired::new(
            cond::WEBHOOK_HEALTHY,
            Status::False,
            "Failing",
            format!(
                "{} deliveries failed for good (see status.webhook.latestFailure): check that the receiver is reachable at webhook.publicUrl through the Ingress; polling still covers every change",
                counts.failed
            ),
        ),
        HealthStatus::Inactive => Desired::new(
            cond::WEBHOOK_HEALTHY,
            Status::False,
            "Disabled",
            match remediation {
                RemediationOutcome::Off => "HollyHR disabled the endpoint after repeated failures and webhook.autoRemediate is off: fix the receiver, then set autoRemediate or re-enable it in HollyHR".to_owned(),
                RemediationOutcome::ReceiverDown => "HollyHR disabled the endpoint after repeated failures; the receiver does not answer at webhook.publicUrl + /hooks/healthz yet: check the Ingress and the operator's receiver Service; it is re-enabled as soon as it answers".to_owned(),
                RemediationOutcome::Waiting { until } => format!("HollyHR disabled the endpoint again after a re-enable; the next attempt is at {until} (backing off)"),
                RemediationOutcome::Failed(message) => format!("HollyHR disabled the endpoint; re-enabling it failed: {message}"),
                RemediationOutcome::Nothing | RemediationOutcome::ReEnabled { .. } => "HollyHR disabled the endpoint after repeated failures".to_owned(),
            },
        ),
        HealthStatus::Unknown => Desired::new(
            cond::WEBHOOK_HEALTHY,
            Status::Unknown,
            "NoDeliveries",
            "HollyHR has no retained deliveries for this webhook yet",
        ),
    }
}
