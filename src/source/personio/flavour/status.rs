//! The Personio webhook's conditions and status fields (pure). Personio has no health endpoint:
//! `WebhookHealthy` comes from its activity log and the receiver's accepted deliveries, and the
//! message says which.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::decide::{Health, HealthState, is_enabled};
use super::upkeep::Registered;
use crate::crd::conditions::{self as cond, Desired, Status};
use crate::crd::{PeopleSyncStatus, WebhookStatusInfo};
use crate::webhook::RemediationOutcome;
use crate::webhook::fold::{Conditions, Credential, Rotation, health_blocks_ready, secret_rotated};

const TOKEN: Credential = Credential {
    rotated: "the webhook token was set anew",
    recovered: "the held token was missing or not the webhook's",
    issued: "the webhook token was issued with the webhook",
    current: "the held token is the webhook's",
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
        status: Some(
            if is_enabled(&r.webhook) {
                "enabled"
            } else {
                "disabled"
            }
            .to_owned(),
        ),
        secret_last_four: r.token_last_four.clone(),
        last_rotation_time: r.rotated_at.map(Time),
        next_rotation_time: r.next_rotation.map(Time),
        remediation_attempts: Some(r.remediation_attempts).filter(|n| *n > 0),
        last_remediation_time: r.last_remediation.map(Time),
        // HollyHR's health endpoint fields have no Personio counterpart.
        recommended_action: None,
        ..previous
    };
    if let Some(health) = &r.health {
        read_health(&mut info, health, now);
    }
    status.webhook = Some(info);

    out.desired.push(Desired::new(
        cond::WEBHOOK_REGISTERED,
        Status::True,
        if r.created { "Created" } else { "Registered" },
        format!(
            "Personio webhook {} delivers {} event types to {}; its token is held in Secret {}",
            r.webhook.id,
            r.webhook.enabled_events.len(),
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
            previous: format!(
                "the previous one is accepted until {}",
                r.previous_expires
                    .map_or_else(|| "now (there was none)".to_owned(), |t| t.to_string())
            ),
        },
        &TOKEN,
        out,
    );
    let healthy = r
        .health
        .as_ref()
        .map(|health| healthy(health, &r.remediation));
    health_blocks_ready(status, healthy.as_ref(), out);
    out.desired.extend(healthy);
}

fn failure_text(health: &Health) -> Option<String> {
    let at = health.latest_failure_at?;
    let code = health
        .latest_failure_status
        .map_or("no response".to_owned(), |c| format!("HTTP {c}"));
    Some(format!("{code} at {at}"))
}

fn read_health(info: &mut WebhookStatusInfo, health: &Health, now: Timestamp) {
    info.health = Some(health.state.as_str().to_owned());
    info.action_required = Some(matches!(
        health.state,
        HealthState::Failing | HealthState::Disabled
    ));
    info.deliveries = Some(
        [("delivered", health.delivered), ("failed", health.failed)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    );
    info.last_success_time = health.last_success.max(health.last_accepted).map(Time);
    info.last_failure_time = health.last_failure.map(Time);
    info.latest_failure = failure_text(health);
    info.last_health_check_time = Some(Time(now));
}

/// `WebhookHealthy` from the activity log and the receiver, and what self-healing did.
pub(super) fn healthy(health: &Health, remediation: &RemediationOutcome) -> Desired {
    let from = health.sources();
    let accepted = health
        .last_accepted
        .map(|t| format!("; the receiver last accepted a delivery at {t}"))
        .unwrap_or_default();
    match health.state {
        HealthState::Healthy => Desired::new(
            cond::WEBHOOK_HEALTHY,
            Status::True,
            "Healthy",
            format!(
                "the latest delivery succeeded (from {from}): {} of {} attempts in the last hour delivered{accepted}",
                health.delivered,
                health.delivered + health.failed
            ),
        ),
        HealthState::Failing => Desired::new(
            cond::WEBHOOK_HEALTHY,
            Status::False,
            "Failing",
            format!(
                "Personio's latest delivery attempt failed ({}) and the receiver accepted nothing since (from {from}): check that the receiver is reachable at webhook.publicUrl through the Ingress; Personio retries for up to 3 days and polling still covers every change",
                failure_text(health).unwrap_or_else(|| "unknown".to_owned())
            ),
        ),
        HealthState::Disabled => Desired::new(
            cond::WEBHOOK_HEALTHY,
            Status::False,
            "Disabled",
            match remediation {
                RemediationOutcome::Off => "the webhook is DISABLED in Personio and webhook.autoRemediate is off: enable it in Personio or set autoRemediate".to_owned(),
                RemediationOutcome::ReceiverDown => "the webhook is DISABLED in Personio; the receiver does not answer at webhook.publicUrl + /hooks/healthz yet: check the Ingress and the operator's receiver Service; it is enabled again as soon as it answers".to_owned(),
                RemediationOutcome::Waiting { until } => format!("the webhook is DISABLED in Personio again after a re-enable; the next attempt is at {until} (backing off)"),
                RemediationOutcome::Failed(message) => format!("the webhook is DISABLED in Personio; enabling it failed: {message}"),
                RemediationOutcome::Nothing | RemediationOutcome::ReEnabled { .. } => "the webhook is DISABLED in Personio".to_owned(),
            },
        ),
        HealthState::Unknown => Desired::new(
            cond::WEBHOOK_HEALTHY,
            Status::Unknown,
            "NoDeliveries",
            format!("no delivery in the last hour (from {from})"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::decide::health;
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("a time")
    }

    fn attempt(second: i64, delivered: bool) -> crate::source::personio::model::Activity {
        crate::source::personio::model::Activity {
            id: format!("a{second}"),
            event_name: "person.updated".into(),
            occurred_at: None,
            completed_at: at(second),
            is_delivered: delivered,
            response_status: (!delivered).then_some(503),
        }
    }

    #[test]
    fn the_health_message_names_its_sources() {
        let log = [attempt(100, true), attempt(200, false)];
        let failing = healthy(
            &health(true, Some(&log), None),
            &RemediationOutcome::Nothing,
        );
        assert_eq!(
            (failing.status, failing.reason.as_str()),
            (Status::False, "Failing")
        );
        assert!(failing.message.contains("HTTP 503"), "{}", failing.message);
        assert!(
            failing.message.contains("from Personio's activity log)"),
            "{}",
            failing.message
        );
        let fine = healthy(
            &health(true, None, Some(at(300))),
            &RemediationOutcome::Nothing,
        );
        assert_eq!(fine.status, Status::True);
        assert!(
            fine.message.contains("from the receiver"),
            "{}",
            fine.message
        );
        let down = healthy(
            &health(false, Some(&log), None),
            &RemediationOutcome::ReceiverDown,
        );
        assert_eq!(down.reason, "Disabled");
        assert!(down.message.contains("does not answer"));
    }
}
