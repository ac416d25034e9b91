//! Events and deliveries: queueing, the worker's hand-off, attempt outcomes with retries and
//! auto-disable (Decisions 3–5), health, retention and the delivery log.

use super::*;

impl State {
    fn event_body(
        &mut self,
        event: EventType,
        resource_id: &str,
        now: Timestamp,
    ) -> (String, Bytes) {
        let serial = self.serial();
        let event_id = format!(
            "evt_{serial:010}{:06x}",
            self.rng.random::<u32>() & 0xff_ffff
        );
        let body = EventBody {
            id: event_id.clone(),
            kind: event,
            api_version: "v1".into(),
            occurred_at: now,
            data: EventData {
                id: resource_id.to_owned(),
                resource_type: event.resource_type().to_owned(),
            },
        };
        let bytes = serde_json::to_vec(&body).expect("event bodies always serialize");
        (event_id, Bytes::from(bytes))
    }

    fn new_delivery(
        &mut self,
        webhook_index: usize,
        event: EventType,
        event_id: &str,
        resource_id: &str,
        body: Bytes,
        now: Timestamp,
    ) -> usize {
        let serial = self.serial();
        let summary = DeliverySummary {
            id: ids::encrypted_id("whd", &format!("{serial}:{event_id}")),
            webhook_id: self.webhooks[webhook_index].webhook.id.clone(),
            event_id: event_id.to_owned(),
            event_type: event,
            api_version: "v1".into(),
            resource: Some(DeliveryResource {
                kind: event.resource_type().to_owned(),
                id: Some(resource_id.to_owned()),
            }),
            status: DeliveryStatus::Pending,
            attempt_count: 0,
            last_attempt_at: None,
            next_attempt_at: Some(now),
            delivered_at: None,
            last_status_code: None,
            last_error_class: None,
            last_error_message: None,
            created_at: now,
            updated_at: now,
        };
        self.deliveries.push(DeliveryRecord {
            summary,
            attempts: Vec::new(),
            body,
            round_attempts: 0,
            in_flight: false,
            prepared_headers: None,
        });
        self.deliveries.len() - 1
    }

    /// Queues `event` for every active webhook subscribed to it.
    pub fn emit(&mut self, event: EventType, resource_id: &str, now: Timestamp) -> usize {
        let targets: Vec<usize> = self
            .webhooks
            .iter()
            .enumerate()
            .filter(|(_, hook)| {
                hook.webhook.status == WebhookStatus::Active
                    && hook.webhook.subscribed_events.contains(&event)
            })
            .map(|(i, _)| i)
            .collect();
        if targets.is_empty() {
            return 0;
        }
        let (event_id, body) = self.event_body(event, resource_id, now);
        for &target in &targets {
            self.new_delivery(target, event, &event_id, resource_id, body.clone(), now);
        }
        targets.len()
    }

    /// `POST /webhooks/{id}/test`: queues a signed `webhook.test` delivery and returns exactly the
    /// headers and payload it will carry.
    pub fn queue_test(
        &mut self,
        webhook_index: usize,
        variant: SignatureVariant,
        now: Timestamp,
    ) -> ApiResult<TestDelivery> {
        if self.webhooks[webhook_index].webhook.status != WebhookStatus::Active {
            return Err(ApiError::conflict(
                "the webhook is disabled; enable it before testing",
            ));
        }
        let webhook_id = self.webhooks[webhook_index].webhook.id.clone();
        let (event_id, body) = self.event_body(EventType::WebhookTest, &webhook_id, now);
        let index = self.new_delivery(
            webhook_index,
            EventType::WebhookTest,
            &event_id,
            &webhook_id,
            body.clone(),
            now,
        );
        let delivery_id = self.deliveries[index].summary.id.clone();
        let secrets = self.signing_secrets(webhook_index, now);
        let headers: BTreeMap<String, String> = delivery_headers(
            variant,
            &secrets,
            &event_id,
            &delivery_id,
            EventType::WebhookTest,
            now,
            &body,
        )
        .into_iter()
        .collect();
        self.deliveries[index].prepared_headers = Some(headers.clone());
        let hook = &mut self.webhooks[webhook_index];
        hook.webhook.last_tested_at = Some(now);
        hook.webhook.updated_at = now;
        hook.version += 1;
        Ok(TestDelivery {
            event_id,
            delivery_id,
            event_type: EventType::WebhookTest,
            headers,
            payload: serde_json::from_slice(&body).expect("event bodies are JSON"),
            queued_at: now,
        })
    }

    /// Drops terminal deliveries older than the retention window.
    pub fn prune(&mut self, now: Timestamp) {
        self.deliveries.retain(|delivery| {
            let terminal = matches!(
                delivery.summary.status,
                DeliveryStatus::Delivered | DeliveryStatus::Failed
            );
            !(terminal && now.duration_since(delivery.summary.updated_at) >= RETENTION)
        });
    }

    pub fn delivery_index(&self, webhook_id: &str, delivery_id: &str) -> ApiResult<usize> {
        if !ids::is_encrypted_id("whd", delivery_id) {
            return Err(ApiError::not_found("delivery"));
        }
        self.deliveries
            .iter()
            .position(|d| d.summary.id == delivery_id && d.summary.webhook_id == webhook_id)
            .ok_or_else(|| ApiError::not_found("delivery"))
    }

    /// A page of a webhook's deliveries, newest first.
    pub fn list_deliveries(
        &self,
        webhook_id: &str,
        query: &DeliveryQuery,
    ) -> ApiResult<(Vec<DeliverySummary>, CursorPagination)> {
        let filter_hash = hash_hex(&[
            webhook_id.as_bytes(),
            query.status.map(|s| s.as_str()).unwrap_or("").as_bytes(),
            query
                .event_type
                .map(|e| e.as_str())
                .unwrap_or("")
                .as_bytes(),
            query
                .created_since
                .map(|t| t.to_string())
                .unwrap_or_default()
                .as_bytes(),
            query
                .created_until
                .map(|t| t.to_string())
                .unwrap_or_default()
                .as_bytes(),
        ]);
        // Position = how many deliveries (from the newest end of the log) were passed; new
        // deliveries are appended, so a "before this index" cursor is stable under writes.
        let before = match &query.cursor {
            Some(cursor) => {
                let text = decode_cursor(cursor)?;
                let mut parts = text.split('|');
                let (Some("d1"), Some(hash), Some(serial), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(ApiError::invalid_field(
                        "cursor",
                        "is not a cursor this API issued",
                    ));
                };
                if hash != filter_hash {
                    return Err(ApiError::invalid_field(
                        "cursor",
                        "belongs to a query with different filters",
                    ));
                }
                Some(serial.to_owned())
            }
            None => None,
        };
        let matches = |d: &DeliveryRecord| {
            let s = &d.summary;
            s.webhook_id == webhook_id
                && query.status.is_none_or(|status| s.status == status)
                && query.event_type.is_none_or(|event| s.event_type == event)
                && query
                    .created_since
                    .is_none_or(|since| s.created_at >= since)
                && query
                    .created_until
                    .is_none_or(|until| s.created_at <= until)
        };
        let start = match &before {
            Some(id) => self
                .deliveries
                .iter()
                .position(|d| &d.summary.id == id)
                .ok_or_else(|| ApiError::invalid_field("cursor", "has expired; start again"))?,
            None => self.deliveries.len(),
        };
        let mut page = Vec::new();
        let mut last_index = None;
        for index in (0..start).rev() {
            if matches(&self.deliveries[index]) {
                if page.len() == query.limit {
                    break;
                }
                page.push(self.deliveries[index].summary.clone());
                last_index = Some(index);
            }
        }
        let has_more = last_index.is_some_and(|last| self.deliveries[..last].iter().any(matches));
        let next_cursor = has_more
            .then(|| {
                last_index.map(|i| {
                    encode_cursor(&format!(
                        "d1|{filter_hash}|{}",
                        self.deliveries[i].summary.id
                    ))
                })
            })
            .flatten();
        Ok((
            page,
            CursorPagination {
                next_cursor,
                has_more,
                limit: query.limit as u32,
            },
        ))
    }

    pub fn redeliver(&mut self, index: usize, now: Timestamp) -> ApiResult<DeliverySummary> {
        let webhook_index =
            self.webhook_index(&self.deliveries[index].summary.webhook_id.clone())?;
        if self.webhooks[webhook_index].webhook.status != WebhookStatus::Active {
            return Err(ApiError::conflict(
                "the webhook is disabled; enable it before redelivering",
            ));
        }
        let delivery = &mut self.deliveries[index];
        if !matches!(
            delivery.summary.status,
            DeliveryStatus::Failed | DeliveryStatus::RetryScheduled
        ) {
            return Err(ApiError::invalid(
                "only failed or retry_scheduled deliveries can be redelivered",
            ));
        }
        delivery.summary.status = DeliveryStatus::Pending;
        delivery.summary.next_attempt_at = Some(now);
        delivery.summary.updated_at = now;
        delivery.round_attempts = 0;
        delivery.prepared_headers = None;
        Ok(delivery.summary.clone())
    }

    pub fn health(&self, webhook_index: usize, now: Timestamp) -> WebhookHealth {
        let hook = &self.webhooks[webhook_index].webhook;
        let mut counts = DeliveryCounts::default();
        let mut last_delivery_at = None;
        let mut last_success_at = None;
        let mut next_retry_at: Option<Timestamp> = None;
        let mut oldest_pending_at: Option<Timestamp> = None;
        let mut latest_failure: Option<LatestFailure> = None;
        for delivery in self
            .deliveries
            .iter()
            .filter(|d| d.summary.webhook_id == hook.id)
        {
            let s = &delivery.summary;
            counts.total += 1;
            match s.status {
                DeliveryStatus::Pending => counts.pending += 1,
                DeliveryStatus::Delivered => counts.delivered += 1,
                DeliveryStatus::RetryScheduled => counts.retry_scheduled += 1,
                DeliveryStatus::Failed => counts.failed += 1,
            }
            last_delivery_at = last_delivery_at.max(s.last_attempt_at);
            last_success_at = last_success_at.max(s.delivered_at);
            if matches!(
                s.status,
                DeliveryStatus::Pending | DeliveryStatus::RetryScheduled
            ) {
                if s.status == DeliveryStatus::RetryScheduled {
                    next_retry_at = match (next_retry_at, s.next_attempt_at) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                oldest_pending_at =
                    Some(oldest_pending_at.map_or(s.created_at, |a| a.min(s.created_at)));
            }
            for attempt in delivery
                .attempts
                .iter()
                .filter(|a| a.status != AttemptStatus::Success)
            {
                if latest_failure
                    .as_ref()
                    .is_none_or(|f| attempt.attempted_at >= f.failed_at)
                {
                    latest_failure = Some(LatestFailure {
                        status_code: attempt.status_code,
                        error_class: attempt.error_class,
                        error_message: attempt.error_message.clone(),
                        failed_at: attempt.attempted_at,
                    });
                }
            }
        }
        // Decision 5.
        let health_status = if hook.status == WebhookStatus::Disabled {
            HealthStatus::Inactive
        } else if counts.failed > 0 {
            HealthStatus::Failing
        } else if counts.pending + counts.retry_scheduled > 0 {
            HealthStatus::Recovering
        } else if counts.total == 0 {
            HealthStatus::Unknown
        } else {
            HealthStatus::Healthy
        };
        let recommended_action = match health_status {
            HealthStatus::Failing => RecommendedAction::InspectFailures,
            HealthStatus::Recovering => RecommendedAction::WaitForRetry,
            HealthStatus::Inactive => RecommendedAction::EnableEndpoint,
            HealthStatus::Healthy | HealthStatus::Unknown => RecommendedAction::None,
        };
        WebhookHealth {
            webhook_id: hook.id.clone(),
            endpoint_status: hook.status,
            health_status,
            action_required: matches!(
                health_status,
                HealthStatus::Failing | HealthStatus::Inactive
            ),
            recommended_action,
            checked_at: now,
            delivery_counts: counts,
            last_delivery_at,
            last_success_at,
            last_failure_at: latest_failure.as_ref().map(|f| f.failed_at),
            next_retry_at,
            oldest_pending_at,
            latest_failure,
        }
    }

    /// Marks due deliveries of active webhooks in flight and returns what to send.
    pub fn take_due(
        &mut self,
        now: Timestamp,
        variant: SignatureVariant,
        max: usize,
    ) -> Vec<PendingAttempt> {
        let mut due = Vec::new();
        for index in 0..self.deliveries.len() {
            if due.len() >= max {
                break;
            }
            let delivery = &self.deliveries[index];
            let s = &delivery.summary;
            if delivery.in_flight
                || !matches!(
                    s.status,
                    DeliveryStatus::Pending | DeliveryStatus::RetryScheduled
                )
                || s.next_attempt_at.is_some_and(|at| at > now)
            {
                continue;
            }
            let Some(webhook_index) = self
                .webhooks
                .iter()
                .position(|hook| hook.webhook.id == s.webhook_id)
            else {
                continue;
            };
            if self.webhooks[webhook_index].webhook.status != WebhookStatus::Active {
                continue;
            }
            let headers = match &delivery.prepared_headers {
                Some(prepared) => prepared.clone().into_iter().collect(),
                None => delivery_headers(
                    variant,
                    &self.signing_secrets(webhook_index, now),
                    &s.event_id,
                    &s.id,
                    s.event_type,
                    now,
                    &delivery.body,
                ),
            };
            let attempt = PendingAttempt {
                delivery_id: s.id.clone(),
                url: self.webhooks[webhook_index].webhook.url.clone(),
                headers,
                body: delivery.body.clone(),
            };
            let delivery = &mut self.deliveries[index];
            delivery.in_flight = true;
            delivery.prepared_headers = None;
            due.push(attempt);
        }
        due
    }

    /// Records one attempt's outcome: delivered, retry scheduled, or terminally failed (and the
    /// webhook auto-disabled once it holds 10 retained terminal failures, Decision 4).
    pub fn record_attempt(
        &mut self,
        delivery_id: &str,
        outcome: AttemptOutcome,
        latency_ms: u64,
        schedule: &[std::time::Duration],
        now: Timestamp,
    ) {
        let Some(index) = self
            .deliveries
            .iter()
            .position(|d| d.summary.id == delivery_id)
        else {
            return; // pruned or reset while in flight
        };
        let delivery = &mut self.deliveries[index];
        delivery.in_flight = false;
        delivery.round_attempts += 1;
        let (status_code, error_class, message) = match &outcome {
            AttemptOutcome::Status(code) if (200..300).contains(code) => (Some(*code), None, None),
            AttemptOutcome::Status(code) => {
                let class = if *code == 408 || *code == 429 || !(400..500).contains(code) {
                    ErrorClass::HttpRetryable
                } else {
                    ErrorClass::HttpNonRetryable
                };
                (
                    Some(*code),
                    Some(class),
                    Some(format!("endpoint answered HTTP {code}")),
                )
            }
            AttemptOutcome::Network(message) => {
                (None, Some(ErrorClass::Network), Some(message.clone()))
            }
        };
        let s = &mut delivery.summary;
        s.attempt_count += 1;
        s.last_attempt_at = Some(now);
        s.last_status_code = status_code;
        s.last_error_class = error_class;
        s.last_error_message = message.clone();
        s.updated_at = now;
        let attempt_status = match error_class {
            None => {
                s.status = DeliveryStatus::Delivered;
                s.delivered_at = Some(now);
                s.next_attempt_at = None;
                AttemptStatus::Success
            }
            Some(class) => {
                let retry_in = (class != ErrorClass::HttpNonRetryable)
                    .then(|| schedule.get(delivery.round_attempts as usize - 1))
                    .flatten();
                match retry_in {
                    Some(wait) => {
                        s.status = DeliveryStatus::RetryScheduled;
                        s.next_attempt_at = Some(
                            now + SignedDuration::try_from(*wait).unwrap_or(SignedDuration::MAX),
                        );
                        AttemptStatus::RetryScheduled
                    }
                    None => {
                        s.status = DeliveryStatus::Failed;
                        s.next_attempt_at = None;
                        AttemptStatus::Failed
                    }
                }
            }
        };
        let attempt_number = s.attempt_count;
        let webhook_id = s.webhook_id.clone();
        delivery.attempts.push(DeliveryAttempt {
            attempt_number,
            status: attempt_status,
            status_code,
            error_class,
            error_message: message,
            latency_ms,
            attempted_at: now,
        });
        if attempt_status == AttemptStatus::Failed {
            let failed = self
                .deliveries
                .iter()
                .filter(|d| {
                    d.summary.webhook_id == webhook_id && d.summary.status == DeliveryStatus::Failed
                })
                .count();
            if failed >= AUTO_DISABLE_AFTER
                && let Some(hook) = self
                    .webhooks
                    .iter_mut()
                    .find(|h| h.webhook.id == webhook_id)
                && hook.webhook.status == WebhookStatus::Active
            {
                hook.webhook.status = WebhookStatus::Disabled;
                hook.webhook.disabled_at = Some(now);
                hook.webhook.updated_at = now;
                hook.version += 1;
            }
        }
    }

    /// The earliest time a queued delivery of an active webhook becomes due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.deliveries
            .iter()
            .filter(|d| {
                !d.in_flight
                    && matches!(
                        d.summary.status,
                        DeliveryStatus::Pending | DeliveryStatus::RetryScheduled
                    )
            })
            .filter_map(|d| d.summary.next_attempt_at)
            .min()
    }
}

/// The headers of one delivery attempt (Decision 1).
pub fn delivery_headers(
    variant: SignatureVariant,
    secrets: &[String],
    event_id: &str,
    delivery_id: &str,
    event: EventType,
    now: Timestamp,
    body: &[u8],
) -> Vec<(String, String)> {
    use peoplesync::signature as sig;
    let timestamp = variant.format_timestamp(now);
    let signature = sig::header_value(
        variant,
        secrets.iter().map(String::as_str),
        event_id,
        &timestamp,
        body,
    );
    vec![
        ("Content-Type".into(), "application/json".into()),
        (
            "User-Agent".into(),
            "HollyHR-Webhooks/1.0 (peoplesync sandbox)".into(),
        ),
        (sig::HEADER_ID.into(), event_id.to_owned()),
        (sig::HEADER_DELIVERY_ID.into(), delivery_id.to_owned()),
        (sig::HEADER_EVENT.into(), event.as_str().to_owned()),
        (sig::HEADER_TIMESTAMP.into(), timestamp),
        (variant.signature_header().into(), signature),
    ]
}

pub(super) fn last_four(secret: &str) -> String {
    secret[secret.len().saturating_sub(4)..].to_owned()
}

pub(super) fn dedup_events(mut events: Vec<EventType>) -> Vec<EventType> {
    let mut seen = Vec::with_capacity(events.len());
    events.retain(|event| {
        let fresh = !seen.contains(event);
        seen.push(*event);
        fresh
    });
    events
}

/// `YYYY-MM-DD` that is also a real calendar date.
pub fn parse_date(field: &str, value: &str) -> ApiResult<Date> {
    let shaped = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return Err(ApiError::invalid_field(
            field,
            "must be a date in YYYY-MM-DD form",
        ));
    }
    value
        .parse::<Date>()
        .map_err(|_| ApiError::invalid_field(field, "is not a valid calendar date"))
}
