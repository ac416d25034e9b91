//! The HollyHR webhook of a PeopleSync, as one reconcile step: register (find by name, create
//! with a deterministic idempotency key, patch drift, disable duplicates), keep the signing secret
//! in the owned Secret (written at once after every create or rotate), rotate on schedule, on
//! request and to recover a lost secret, read the health endpoint (at most once per interval) and
//! heal an auto-disabled endpoint once the receiver answers at its public URL again.
//!
//! The decisions are data ([`super::decide`]); this module makes the calls and reports what it
//! saw as a [`Registration`] with its health reading ([`super::status`]).

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use kube::ResourceExt;
use secrecy::SecretString;
use tracing::{info, warn};

use super::decide::{self, Registration};
use crate::crd::PeopleSync;
use crate::source::hollyhr::model::{
    CreateWebhookRequest, DeliveryStatus, UpdateWebhookRequest, Webhook, WebhookStatus,
};
use crate::source::hollyhr::{self, ErrorReason, HollyHrClient, HollyHrError};
use crate::webhook::signing::{self, Held};
use crate::webhook::{
    Attempts, Kept, RemediationOutcome, RotateCause, Upkeep, WebhookOutcome, cause, failed,
    receiver_answers,
};

/// Failed deliveries redelivered per remediation at most (HollyHR keeps failures for 30 days;
/// the next incremental cycle covers whatever is not redelivered).
pub const REDELIVER_LIMIT: usize = 500;

/// Runs the webhook step of one reconcile.
pub async fn reconcile(
    object: &PeopleSync,
    source: &HollyHrClient,
    up: Upkeep<'_>,
) -> WebhookOutcome {
    let (config, now) = (up.config, up.now);
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let spec = &object.spec;
    let desired = decide::desired(spec, &namespace, &name);
    let previous = object.status.as_ref().and_then(|s| s.webhook.as_ref());
    if desired.is_none() && previous.and_then(|w| w.id.as_ref()).is_none() {
        return WebhookOutcome::Off;
    }
    let events = match desired.as_ref().map(|d| decide::event_types(&d.events)) {
        Some(Err(message)) => {
            return WebhookOutcome::Failed {
                reason: "InvalidSpec",
                message,
            };
        }
        Some(Ok(events)) => events,
        None => Vec::new(),
    };
    let (interval, mut held, requested) =
        match crate::webhook::rotation_inputs(object, up.secrets, "reading the signing Secret")
            .await
        {
            Ok(inputs) => inputs,
            Err(outcome) => return outcome,
        };
    let webhooks = match source.webhooks().await {
        Ok(webhooks) => webhooks,
        Err(error) => return failed(registration_reason(&error), cause("GET /webhooks", &error)),
    };
    let webhook_name = decide::webhook_name(&namespace, &name);
    let due = crate::webhook::rotation_due(&held.view(), interval, requested.as_deref(), now);
    let steps = decide::decide(
        desired.as_ref(),
        &webhook_name,
        &webhooks,
        &held.view(),
        due,
    );
    let mut kept: Option<Webhook> = {
        let mut ours: Vec<&Webhook> = webhooks.iter().filter(|w| w.name == webhook_name).collect();
        ours.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        ours.first().map(|w| (*w).clone())
    };
    let mut created = false;
    let mut rotated = None;
    for step in steps {
        let result = match step {
            Registration::Create => {
                let Some(desired) = &desired else { continue };
                let body = CreateWebhookRequest {
                    name: desired.name.clone(),
                    url: desired.url.clone(),
                    subscribed_events: events.clone(),
                };
                let key = hollyhr::IdempotencyKey::new(format!(
                    "peoplesync-create-{}",
                    object.uid().unwrap_or_else(|| webhook_name.clone())
                ))
                .map(hollyhr::Idempotency::Key)
                .unwrap_or(hollyhr::Idempotency::Derived);
                match source.create_webhook(&body, key).await {
                    Ok(answer) => {
                        let webhook = answer.value.webhook;
                        info!(%namespace, %name, webhook = %webhook.id, "registered the HollyHR webhook");
                        created = true;
                        let result = match answer.value.signing_secret {
                            Some(secret) => {
                                store(object, &up, &mut held, &webhook, secret, &requested, now)
                                    .await
                            }
                            // A replay of an earlier create: its secret was shown once and is
                            // lost; a rotation issues one we keep.
                            None => {
                                rotate(object, &up, source, &mut held, &webhook.id, &requested, now)
                                    .await
                                    .inspect(|_| rotated = Some(RotateCause::Recover))
                            }
                        };
                        result.map(|webhook| kept = Some(webhook))
                    }
                    Err(error) => Err(failed(
                        registration_reason(&error),
                        cause("POST /webhooks", &error),
                    )),
                }
            }
            Registration::Update { id, url, events } => {
                let body = UpdateWebhookRequest {
                    url,
                    subscribed_events: events
                        .map(|e| decide::event_types(&e).unwrap_or_default()),
                    ..UpdateWebhookRequest::default()
                };
                match update(source, &id, &body).await {
                    Ok(webhook) => {
                        info!(%namespace, %name, webhook = %id, "patched the HollyHR webhook's URL or events");
                        kept = Some(webhook);
                        Ok(())
                    }
                    Err(error) => Err(failed(
                        registration_reason(&error),
                        cause("PATCH /webhooks/{id}", &error),
                    )),
                }
            }
            Registration::Rotate { id, cause } => {
                rotate(object, &up, source, &mut held, &id, &requested, now)
                    .await
                    .map(|webhook| {
                        info!(%namespace, %name, webhook = %id, cause = cause.as_str(), "rotated the webhook signing secret");
                        rotated = Some(cause);
                        kept = Some(webhook);
                    })
            }
            Registration::Disable { id } => match disable(source, &id).await {
                Ok(webhook) => {
                    info!(%namespace, %name, webhook = %id, "disabled a HollyHR webhook");
                    if let (Some(webhook), Some(k)) = (webhook, kept.as_mut())
                        && k.id == webhook.id
                    {
                        *k = webhook;
                    }
                    Ok(())
                }
                Err(error) => Err(failed(
                    registration_reason(&error),
                    cause("DELETE /webhooks/{id}", &error),
                )),
            },
        };
        if let Err(outcome) = result {
            return outcome;
        }
    }
    if desired.is_none() {
        return WebhookOutcome::Off;
    }
    let Some(mut webhook) = kept else {
        return failed(
            "RegistrationFailed",
            "HollyHR did not return the webhook after registering it; retrying",
        );
    };

    // Health, at most once per interval (and at once after a change).
    let changed = created || rotated.is_some() || webhook.status == WebhookStatus::Disabled;
    let mut health = None;
    if crate::webhook::health_due(previous, config.health_interval, changed, now) {
        match source.webhook_health(&webhook.id).await {
            Ok(read) => health = Some(read),
            Err(error) => {
                warn!(%namespace, %name, error = %error, "reading the webhook health failed")
            }
        }
    }
    // Self-healing.
    let mut attempts = Attempts::from_status(previous);
    let endpoint = health
        .as_ref()
        .map_or(webhook.status, |h| h.endpoint_status);
    let auto = spec.webhook.as_ref().is_some_and(|w| w.auto_remediate);
    let mut remediation = RemediationOutcome::Nothing;
    if endpoint == WebhookStatus::Disabled {
        let reachable = auto
            && match desired.as_ref() {
                Some(d) => receiver_answers(&d.url).await,
                None => false,
            };
        remediation = match attempts.next(auto, reachable, now) {
            Some(outcome) => outcome,
            None => match heal(source, &webhook.id).await {
                Ok((enabled, redelivered)) => {
                    info!(%namespace, %name, webhook = %webhook.id, redelivered, "re-enabled the disabled webhook endpoint");
                    webhook = enabled;
                    health = source.webhook_health(&webhook.id).await.ok();
                    RemediationOutcome::ReEnabled { redelivered }
                }
                Err(message) => RemediationOutcome::Failed(message),
            },
        };
    }
    if health
        .as_ref()
        .is_some_and(|h| h.health_status == hollyhr::model::HealthStatus::Healthy)
    {
        attempts.count = 0;
    }
    WebhookOutcome::registered(crate::webhook::Registration {
        source: "HollyHR",
        credential: &super::status::SIGNING_SECRET,
        kept: Kept {
            id: webhook.id,
            url: webhook.url,
            events: webhook.subscribed_events.len(),
            endpoint: super::status::endpoint(webhook.status),
            secret_name: signing::secret_name(&name),
            created,
            rotated,
            last_four: held.last_four(),
            rotated_at: held.rotated_at,
            next_rotation: held
                .rotated_at
                .and_then(|at| crate::webhook::next_rotation(at, interval)),
            previous_expires: held.previous.as_ref().map(|p| p.1),
            remediation,
            remediation_attempts: attempts.count,
            last_remediation: attempts.last,
        },
        health,
    })
}

/// At deletion: disables every active webhook with this object's name. 404 counts as done.
pub async fn disable_all(
    source: &HollyHrClient,
    namespace: &str,
    name: &str,
) -> Result<usize, HollyHrError> {
    let webhook_name = decide::webhook_name(namespace, name);
    let webhooks = source.webhooks().await?;
    let mut disabled = 0;
    for step in decide::decide(
        None,
        &webhook_name,
        &webhooks,
        &crate::webhook::HeldView::default(),
        None,
    ) {
        if let Registration::Disable { id } = step {
            disable(source, &id).await?;
            disabled += 1;
        }
    }
    Ok(disabled)
}

/// `Unauthorized`/`Forbidden` need a person (a key without `webhooks:manage`); the rest retry.
fn registration_reason(error: &HollyHrError) -> &'static str {
    match error.category() {
        ErrorReason::Unauthorized => "Unauthorized",
        ErrorReason::MissingScope => "MissingScope",
        ErrorReason::InvalidRequest => "Rejected",
        _ => "RegistrationFailed",
    }
}

/// Stores a newly issued secret (create or rotate) in the owned Secret at once.
async fn store(
    object: &PeopleSync,
    up: &Upkeep<'_>,
    held: &mut Held,
    webhook: &Webhook,
    secret: SecretString,
    requested: &Option<String>,
    now: Timestamp,
) -> Result<Webhook, WebhookOutcome> {
    let next = held.rotated(
        &webhook.id,
        secret,
        webhook.previous_secret_expires_at,
        now,
        requested.clone(),
    );
    signing::write(up.secrets, object, &next, up.field_manager)
        .await
        .map_err(|error| {
            // HollyHR now signs with a secret no Secret holds: the next reconcile sees the
            // last four differ and rotates again (the crash repair).
            failed(
                "SecretWriteFailed",
                cause(
                    "writing the signing Secret (the next reconcile rotates again)",
                    &error,
                ),
            )
        })?;
    *held = next;
    Ok(webhook.clone())
}

async fn rotate(
    object: &PeopleSync,
    up: &Upkeep<'_>,
    source: &HollyHrClient,
    held: &mut Held,
    id: &str,
    requested: &Option<String>,
    now: Timestamp,
) -> Result<Webhook, WebhookOutcome> {
    let answer = source
        .rotate_webhook_secret(id, hollyhr::Idempotency::Unique)
        .await
        .map_err(|error| {
            failed(
                registration_reason(&error),
                cause("POST /webhooks/{id}/rotate-secret", &error),
            )
        })?;
    let webhook = answer.value.webhook;
    let Some(secret) = answer.value.signing_secret else {
        return Err(failed(
            "RotationFailed",
            "HollyHR answered the rotation without a secret (a replay); rotating again next reconcile",
        ));
    };
    store(object, up, held, &webhook, secret, requested, now).await
}

/// `GET` (for the ETag) then `PATCH /webhooks/{id}`.
async fn update(
    source: &HollyHrClient,
    id: &str,
    body: &UpdateWebhookRequest,
) -> Result<Webhook, HollyHrError> {
    let current = source.webhook(id).await?;
    let etag = current.etag.ok_or_else(no_etag)?;
    source
        .update_webhook(id, body, &etag, hollyhr::Idempotency::Derived)
        .await
        .map(|answer| answer.value)
}

fn no_etag() -> HollyHrError {
    HollyHrError::Protocol {
        method: http::Method::GET,
        route: hollyhr::routes::WEBHOOK,
        problem: "the webhook came without an ETag",
    }
}

/// `GET` (for the ETag) then `DELETE /webhooks/{id}`; a webhook that is gone (404) is disabled
/// enough.
async fn disable(source: &HollyHrClient, id: &str) -> Result<Option<Webhook>, HollyHrError> {
    let current = match source.webhook(id).await {
        Ok(current) => current,
        Err(error) if error.category() == ErrorReason::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let etag = current.etag.ok_or_else(no_etag)?;
    match source
        .disable_webhook(id, &etag, hollyhr::Idempotency::Derived)
        .await
    {
        Ok(answer) => Ok(Some(answer.value)),
        Err(error) if error.category() == ErrorReason::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Re-enables the endpoint and redelivers its failed deliveries (bounded); the number
/// redelivered.
async fn heal(source: &HollyHrClient, id: &str) -> Result<(Webhook, usize), String> {
    let body = UpdateWebhookRequest {
        status: Some(WebhookStatus::Active),
        ..UpdateWebhookRequest::default()
    };
    let webhook = update(source, id, &body)
        .await
        .map_err(|error| cause("re-enabling (PATCH /webhooks/{id})", &error))?;
    // Ids first: redelivering changes a delivery's status under the cursor.
    let query = hollyhr::DeliveryQuery {
        status: Some(DeliveryStatus::Failed),
        ..hollyhr::DeliveryQuery::default()
    };
    let failed: Vec<String> = source
        .webhook_deliveries(id, &query)
        .map_ok(|d| d.id)
        .boxed()
        .take(REDELIVER_LIMIT)
        .try_collect()
        .await
        .map_err(|error| cause("GET /webhooks/{id}/deliveries", &error))?;
    let mut redelivered = 0;
    for delivery in &failed {
        match source
            .redeliver(id, delivery, hollyhr::Idempotency::Unique)
            .await
        {
            Ok(_) => redelivered += 1,
            // Retention or a concurrent redelivery: the next incremental cycle covers it.
            Err(error) => {
                warn!(webhook = %id, delivery = %delivery, error = %error, "redelivery failed")
            }
        }
    }
    Ok((webhook, redelivered))
}
