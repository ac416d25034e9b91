//! The Personio webhook's conditions and status fields (pure). Personio has no health endpoint:
//! `WebhookHealthy` comes from its activity log and the receiver's accepted deliveries, and the
//! message says which.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::decide::{Health, HealthState};
use crate::crd::WebhookStatusInfo;
use crate::crd::conditions::{self as cond, Desired, Status};
use crate::webhook::RemediationOutcome;
use crate::webhook::fold::{Credential, disabled_message};

/// How Personio's credential is named.
pub(super) const TOKEN: Credential = Credential {
    noun: "token",
    rotated: "the webhook token was set anew",
    recovered: "the held token was missing or not the webhook's",
    issued: "the webhook token was issued with the webhook",
    current: "the held token is the webhook's",
};

fn failure_text(health: &Health) -> Option<String> {
    let at = health.latest_failure_at?;
    let code = health
        .latest_failure_status
        .map_or("no response".to_owned(), |c| format!("HTTP {c}"));
    Some(format!("{code} at {at}"))
}

impl crate::webhook::Health for Health {
    fn read_into(&self, info: &mut WebhookStatusInfo, now: Timestamp) {
        // HollyHR's health endpoint fields have no Personio counterpart.
        info.recommended_action = None;
        read_health(info, self, now);
    }

    fn condition(&self, remediation: &RemediationOutcome) -> Desired {
        healthy(self, remediation)
    }
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
fn healthy(health: &Health, remediation: &RemediationOutcome) -> Desired {
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
            disabled_message(
                remediation,
                "the webhook is DISABLED in Personio",
                "enable it in Personio or set autoRemediate",
            ),
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
