//! The HollyHR webhook's conditions and `status.webhook` fields (pure), from its health endpoint
//! (Decision 5) and what self-healing did.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::crd::WebhookStatusInfo;
use crate::crd::conditions::{self as cond, Desired, Status};
use crate::source::hollyhr::model::{HealthStatus, WebhookHealth, WebhookStatus};
use crate::webhook::fold::{Credential, disabled_message, time};
use crate::webhook::{Health, RemediationOutcome};

/// How HollyHR's credential is named.
pub(super) const SIGNING_SECRET: Credential = Credential {
    noun: "signing secret",
    rotated: "the signing secret was rotated",
    recovered: "the held secret was missing or not the webhook's",
    issued: "the signing secret was issued with the webhook",
    current: "the held signing secret is the webhook's",
};

pub(super) fn endpoint(status: WebhookStatus) -> &'static str {
    match status {
        WebhookStatus::Active => "active",
        WebhookStatus::Disabled => "disabled",
    }
}

impl Health for WebhookHealth {
    fn read_into(&self, info: &mut WebhookStatusInfo, now: Timestamp) {
        read_health(info, self, now);
    }

    fn condition(&self, remediation: &RemediationOutcome) -> Desired {
        healthy(self, remediation)
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
fn healthy(health: &WebhookHealth, remediation: &RemediationOutcome) -> Desired {
    let counts = health.delivery_counts;
    match health.health_status {
        HealthStatus::Healthy => Desired::new(
            cond::WEBHOOK_HEALTHY,
            Status::True,
            "Healthy",
            format!(
                "{} of {} retained deliveries delivered",
                counts.delivered, counts.total
            ),
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
            disabled_message(
                remediation,
                "HollyHR disabled the endpoint after repeated failures",
                "fix the receiver, then set autoRemediate or re-enable it in HollyHR",
            ),
        ),
        HealthStatus::Unknown => Desired::new(
            cond::WEBHOOK_HEALTHY,
            Status::Unknown,
            "NoDeliveries",
            "HollyHR has no retained deliveries for this webhook yet",
        ),
    }
}
