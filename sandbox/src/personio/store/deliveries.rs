//! Events and deliveries (API.md §7.5–7.7): emitting, queueing for subscribed webhooks, the
//! worker's hand-off, Personio's retry behaviour, and the activity log of attempts.
//!
//! A delivery attempt is up to two immediate requests ("fast attempt"); a timed-out, unreachable
//! or 5xx (but not 501) answer is retried after the next wait of the retry schedule; a 2xx is
//! delivered; anything else (3xx, 4xx, 501) is final. At most 14 requests per event, so at most
//! 6 waits of the schedule are used. Each request is one activity record.

use std::time::Duration;

use bytes::Bytes;
use jiff::{SignedDuration, Timestamp};

use super::super::COMPANY_ID;
use super::super::error::ApiResult;
use super::State;
use peoplesync::source::personio::model::{Activity, Event, webhook_status};

const PING: &str = "ping";
/// Requests per attempt and per event (API.md §7.7).
pub const REQUESTS_PER_ATTEMPT: u32 = 2;
pub const MAX_REQUESTS_PER_EVENT: u32 = 14;
/// Activity and finished deliveries are kept this long.
const RETENTION: SignedDuration = SignedDuration::from_hours(24 * 30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Queued,
    Delivered,
    Failed,
}

pub struct DeliveryRecord {
    pub id: u64,
    pub webhook_id: String,
    pub event_name: String,
    pub occurred_at: Timestamp,
    pub body: Bytes,
    pub attempts: u32,
    pub requests: u32,
    pub next_at: Timestamp,
    pub state: DeliveryState,
    pub in_flight: bool,
    /// A ping goes out even when the webhook is DISABLED.
    pub forced: bool,
    pub finished_at: Option<Timestamp>,
}

pub struct ActivityRecord {
    pub seq: u64,
    pub webhook_id: String,
    pub activity: Activity,
}

/// One attempt the worker is about to make: up to `requests` immediate requests.
pub struct PendingDelivery {
    pub id: u64,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    pub requests: u32,
}

/// What one request produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    /// No answer within the ack deadline.
    TimedOut,
    /// No connection, or the connection broke.
    Unreachable,
}

impl Outcome {
    pub fn delivered(self) -> bool {
        matches!(self, Self::Status(200..=299))
    }

    /// Timeouts, unreachable receivers and 5xx except 501 are retried.
    pub fn retryable(self) -> bool {
        match self {
            Self::Status(code) => (500..=599).contains(&code) && code != 501,
            Self::TimedOut | Self::Unreachable => true,
        }
    }
}

/// `GET /v2/webhooks/{id}/activity` filters.
#[derive(Debug, Default)]
pub struct ActivityFilters {
    pub is_delivered: Option<bool>,
    pub completed_from: Option<Timestamp>,
    pub completed_until: Option<Timestamp>,
    pub event_name: Option<String>,
}

impl State {
    /// A webhook's activity of the last 30 days, newest first, before the sequence `before`.
    pub fn list_activity(
        &self,
        webhook_id: &str,
        filters: &ActivityFilters,
        before: Option<u64>,
        limit: usize,
        now: Timestamp,
    ) -> ApiResult<(Vec<Activity>, Option<u64>)> {
        self.webhook(webhook_id)?;
        let oldest = now - RETENTION;
        let mut matching = self.activity.iter().rev().filter(|a| {
            let activity = &a.activity;
            a.webhook_id == webhook_id
                && before.is_none_or(|before| a.seq < before)
                && activity.completed_at >= oldest
                && filters
                    .is_delivered
                    .is_none_or(|d| activity.is_delivered == d)
                && filters
                    .completed_from
                    .is_none_or(|from| activity.completed_at >= from)
                && filters
                    .completed_until
                    .is_none_or(|until| activity.completed_at <= until)
                && filters
                    .event_name
                    .as_ref()
                    .is_none_or(|e| &activity.event_name == e)
        });
        let page: Vec<&ActivityRecord> = matching.by_ref().take(limit).collect();
        let more = matching.next().is_some();
        let last = page.last().map(|a| a.seq).filter(|_| more);
        Ok((page.into_iter().map(|a| a.activity.clone()).collect(), last))
    }

    fn queue(&mut self, webhook_id: String, event: &Event, forced: bool) {
        let id = self.serial();
        let body = Bytes::from(serde_json::to_vec(event).expect("events always serialize"));
        self.deliveries.push(DeliveryRecord {
            id,
            webhook_id,
            event_name: event.event_name.clone(),
            occurred_at: event.occurred_at,
            body,
            attempts: 0,
            requests: 0,
            next_at: event.occurred_at,
            state: DeliveryState::Queued,
            in_flight: false,
            forced,
            finished_at: None,
        });
    }

    /// Records `event_name` about `id` (of `person_id`) and queues it for every ENABLED webhook
    /// subscribed to it. Payloads carry ids only, like Personio's "dataless notifications".
    pub fn emit(&mut self, event_name: &str, id: &str, person_id: &str, now: Timestamp) {
        let event = Event {
            company_id: COMPANY_ID.into(),
            event_name: event_name.into(),
            occurred_at: now,
            payload: serde_json::json!({ "id": id, "person_id": person_id }),
            meta: None,
        };
        let targets: Vec<String> = self
            .webhooks
            .iter()
            .filter(|w| {
                w.webhook.status.as_deref() == Some(webhook_status::ENABLED)
                    && w.webhook.enabled_events.iter().any(|e| e == event_name)
            })
            .map(|w| w.webhook.id.clone())
            .collect();
        for target in targets {
            self.queue(target, &event, false);
        }
        self.remember(event);
    }

    /// `POST /v2/webhooks/{id}/ping`: a `ping` event for this webhook only, sent whatever its
    /// status and subscriptions.
    pub fn ping(&mut self, webhook_id: &str, now: Timestamp) -> ApiResult<Event> {
        self.webhook(webhook_id)?;
        let event = Event {
            company_id: COMPANY_ID.into(),
            event_name: PING.into(),
            occurred_at: now,
            payload: serde_json::json!({ "id": webhook_id }),
            meta: None,
        };
        self.queue(webhook_id.to_owned(), &event, true);
        Ok(event)
    }

    /// Marks due deliveries in flight and returns what to send, with the webhook's auth as it
    /// is now (a rotated token applies to retries of older events too).
    pub fn take_due(&mut self, now: Timestamp, max: usize) -> Vec<PendingDelivery> {
        let mut due = Vec::new();
        for index in 0..self.deliveries.len() {
            if due.len() >= max {
                break;
            }
            let delivery = &self.deliveries[index];
            if delivery.in_flight
                || delivery.state != DeliveryState::Queued
                || delivery.next_at > now
            {
                continue;
            }
            let Some(hook) = self
                .webhooks
                .iter()
                .find(|w| w.webhook.id == delivery.webhook_id)
            else {
                continue;
            };
            let enabled = hook.webhook.status.as_deref() == Some(webhook_status::ENABLED);
            if !enabled && !delivery.forced {
                continue;
            }
            let mut headers = vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                (
                    "User-Agent".to_owned(),
                    "Personio-Webhooks (peoplesync sandbox)".to_owned(),
                ),
            ];
            match hook.webhook.auth_type.as_deref() {
                Some("TOKEN") => {
                    if let Some(token) = &hook.token {
                        headers.push(("Authorization".to_owned(), token.clone()));
                    }
                }
                Some("CUSTOM") => headers.extend(
                    hook.custom_headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone())),
                ),
                _ => {}
            }
            let pending = PendingDelivery {
                id: delivery.id,
                url: hook.webhook.url.clone(),
                headers,
                body: delivery.body.clone(),
                requests: REQUESTS_PER_ATTEMPT
                    .min(MAX_REQUESTS_PER_EVENT.saturating_sub(delivery.requests))
                    .max(1),
            };
            self.deliveries[index].in_flight = true;
            due.push(pending);
        }
        due
    }

    /// Records the requests of one attempt (each an activity record) and decides what comes
    /// next: delivered, final, or the next wait of `schedule`.
    pub fn record_attempt(
        &mut self,
        delivery_id: u64,
        requests: &[(Outcome, Timestamp)],
        schedule: &[Duration],
        now: Timestamp,
    ) {
        let Some(index) = self.deliveries.iter().position(|d| d.id == delivery_id) else {
            return; // deleted or reset while in flight
        };
        let mut records = Vec::with_capacity(requests.len());
        for (outcome, at) in requests {
            let seq = self.serial();
            let id = self.uuid();
            let delivery = &self.deliveries[index];
            records.push(ActivityRecord {
                seq,
                webhook_id: delivery.webhook_id.clone(),
                activity: Activity {
                    id,
                    event_name: delivery.event_name.clone(),
                    occurred_at: Some(delivery.occurred_at),
                    completed_at: *at,
                    is_delivered: outcome.delivered(),
                    response_status: match outcome {
                        Outcome::Status(code) => Some(*code),
                        _ => None,
                    },
                },
            });
        }
        self.activity.extend(records);
        let delivery = &mut self.deliveries[index];
        delivery.in_flight = false;
        delivery.attempts += 1;
        delivery.requests += requests.len() as u32;
        let last = requests.last().map(|(outcome, _)| *outcome);
        let wait = schedule
            .get(delivery.attempts as usize - 1)
            .filter(|_| delivery.requests < MAX_REQUESTS_PER_EVENT);
        match (last, wait) {
            (Some(outcome), _) if outcome.delivered() => {
                delivery.state = DeliveryState::Delivered;
                delivery.finished_at = Some(now);
            }
            (Some(outcome), Some(wait)) if outcome.retryable() => {
                delivery.next_at =
                    now + SignedDuration::try_from(*wait).unwrap_or(SignedDuration::MAX);
            }
            _ => {
                delivery.state = DeliveryState::Failed;
                delivery.finished_at = Some(now);
            }
        }
        let oldest = now - RETENTION;
        self.deliveries
            .retain(|d| d.finished_at.is_none_or(|at| at >= oldest));
        self.activity.retain(|a| a.activity.completed_at >= oldest);
    }

    /// The earliest time a queued delivery becomes due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.deliveries
            .iter()
            .filter(|d| !d.in_flight && d.state == DeliveryState::Queued)
            .map(|d| d.next_at)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::test_now as now;
    use crate::core::sandbox::Tenant as _;
    use peoplesync::source::personio::model::WebhookWrite;

    fn write(url: &str) -> WebhookWrite {
        WebhookWrite {
            url: Some(url.into()),
            description: Some("PeopleSync".into()),
            token: Some("Bearer s3cret".into()),
            enabled_events: Some(vec!["person.updated".into()]),
            ..Default::default()
        }
    }

    #[test]
    fn failures_are_retried_per_schedule_within_fourteen_requests_and_4xx_is_final() {
        let mut state = State::seeded(3, 1, now());
        let mut enabled = write("https://hooks.example/p");
        enabled.status = Some("ENABLED".into());
        state.create_webhook(enabled, false).expect("created");
        state.emit("person.updated", "3001", "3001", now());
        let schedule: Vec<Duration> = (1..=10).map(Duration::from_secs).collect();
        let mut at = now();
        let mut requests = 0;
        loop {
            let due = state.take_due(at, 10);
            let Some(attempt) = due.into_iter().next() else {
                break;
            };
            let sent: Vec<_> = (0..attempt.requests)
                .map(|_| (Outcome::Status(503), at))
                .collect();
            requests += sent.len();
            state.record_attempt(attempt.id, &sent, &schedule, at);
            at = state.next_due().unwrap_or(at);
        }
        assert_eq!(requests, 14);
        assert_eq!(state.deliveries[0].state, DeliveryState::Failed);
        assert_eq!(state.activity.len(), 14);
        state.emit("person.updated", "3001", "3001", at);
        let attempt = state.take_due(at, 10).pop().expect("due");
        state.record_attempt(attempt.id, &[(Outcome::Status(400), at)], &schedule, at);
        assert!(
            state
                .take_due(at + SignedDuration::from_hours(1), 10)
                .is_empty()
        );
        assert!(!Outcome::Status(501).retryable() && Outcome::TimedOut.retryable());
    }
}
