//! The Personio webhook of a PeopleSync, as one reconcile step: register (find by id, URL or
//! description; create DISABLED with a new token, store the token, enable, ping), patch drift,
//! delete duplicates, rotate the token on schedule, on request and to recover a lost Secret,
//! derive health from the activity log and the receiver, and re-enable a DISABLED webhook once the
//! receiver answers at its public URL.
//!
//! A rotation never leaves a moment in which Personio sends a token the receiver refuses (a 401
//! is final for Personio): the new token is written to the owned Secret first (pending, the old
//! one still accepted), the step waits until this process's receiver holds it, and only then
//! PATCHes Personio; once Personio answered, the old token is accepted for
//! [`TOKEN_OVERLAP`](super::decide::TOKEN_OVERLAP) more. A PATCH that failed or whose
//! answer was lost leaves the Secret pending, and the next reconcile PATCHes the held token again
//! (PATCH is idempotent).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use secrecy::{ExposeSecret, SecretString};
use tracing::{info, warn};

use super::decide::{self, HealthState, Step, TokenView};
use crate::crd::PeopleSync;
use crate::secrets::SecretCache;
use crate::source::personio::model::{Webhook, WebhookWrite, webhook_status};
use crate::source::personio::{ErrorCategory, PersonioClient, PersonioError};
use crate::webhook::signing::{self, Held, Scheme};
use crate::webhook::{
    self as shared, Attempts, Kept, Registration, RemediationOutcome, Upkeep, WebhookOutcome,
    cause, failed, receiver_answers,
};

/// How long a rotation waits for this process's receiver to hold the new token before it
/// PATCHes Personio (the Secret watch usually takes milliseconds; replicas watch alike).
const PROPAGATION_WAIT: Duration = Duration::from_secs(5);

/// What the decisions need to know of the held token.
fn token_view(held: &Held) -> TokenView {
    TokenView {
        webhook_id: held.webhook_id.clone(),
        has_token: held.scheme == Scheme::Token && held.current.is_some(),
        pending: held.pending,
    }
}

/// `Forbidden`/`MissingScope`/`Unauthorized` need a person (a credential without the webhook
/// scopes); the rest retry.
fn reason(error: &PersonioError) -> &'static str {
    match error.category() {
        ErrorCategory::Unauthorized | ErrorCategory::InvalidCredentials => "Unauthorized",
        ErrorCategory::MissingScope | ErrorCategory::Forbidden => "MissingScope",
        ErrorCategory::BadRequest | ErrorCategory::Unprocessable | ErrorCategory::Conflict => {
            "Rejected"
        }
        _ => "RegistrationFailed",
    }
}

fn after(now: Timestamp, wait: Duration) -> Timestamp {
    SignedDuration::try_from(wait)
        .ok()
        .and_then(|wait| now.checked_add(wait).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Runs the Personio webhook step of one reconcile. `book` is this process's receiver's, when
/// it runs one (a rotation waits for it to hold the new token; health reads its deliveries).
pub async fn reconcile(
    object: &PeopleSync,
    source: &PersonioClient,
    up: Upkeep<'_>,
) -> WebhookOutcome {
    let (secrets, config, book, now) = (up.secrets, up.config, up.book, up.now);
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let spec = &object.spec;
    let desired = decide::desired(spec, &namespace, &name);
    let previous = object.status.as_ref().and_then(|s| s.webhook.as_ref());
    if desired.is_none() && previous.and_then(|w| w.id.as_ref()).is_none() {
        return WebhookOutcome::Off;
    }
    let (interval, mut held, requested) =
        match shared::rotation_inputs(object, secrets, "reading the token Secret").await {
            Ok(inputs) => inputs,
            Err(outcome) => return outcome,
        };
    let webhooks = match source.webhooks().await {
        Ok(webhooks) => webhooks,
        Err(error) => return failed(reason(&error), cause("GET /v2/webhooks", &error)),
    };
    let marker = decide::marker(&namespace, &name);
    let due = shared::rotation_due(&held.view(), interval, requested.as_deref(), now);
    let steps = decide::decide(
        desired.as_ref(),
        &marker,
        &webhooks,
        &token_view(&held),
        due,
    );
    let mut kept: Option<Webhook> = decide::ours(
        &webhooks,
        &marker,
        desired.as_ref().map(|d| d.url.as_str()),
        held.webhook_id.as_deref(),
    )
    .first()
    .map(|w| (*w).clone());
    let rotation = Rotation {
        object,
        secrets,
        field_manager: up.field_manager,
        source,
        book,
        requested: &requested,
    };
    let mut created = false;
    let mut rotated = None;
    for step in steps {
        let result = match step {
            Step::Create => {
                let Some(desired) = &desired else { continue };
                match rotation.create(&mut held, desired, now).await {
                    Ok(webhook) => {
                        info!(%namespace, %name, webhook = %webhook.id, "registered the Personio webhook");
                        created = true;
                        kept = Some(webhook);
                        Ok(())
                    }
                    Err(outcome) => Err(outcome),
                }
            }
            Step::Update {
                id,
                url,
                events,
                description,
            } => {
                let body = WebhookWrite {
                    url,
                    description,
                    enabled_events: events.map(|e| e.into_iter().collect()),
                    ..WebhookWrite::default()
                };
                match source.update_webhook(&id, &body).await {
                    Ok(webhook) => {
                        info!(%namespace, %name, webhook = %id, "patched the Personio webhook's URL, events or description");
                        kept = Some(webhook);
                        Ok(())
                    }
                    Err(error) => Err(failed(
                        reason(&error),
                        cause("PATCH /v2/webhooks/{id}", &error),
                    )),
                }
            }
            Step::Rotate { id, cause: why } => match rotation.rotate(&mut held, &id, None).await {
                Ok(webhook) => {
                    info!(%namespace, %name, webhook = %id, cause = why.as_str(), "rotated the Personio webhook token");
                    rotated = Some(why);
                    kept = Some(webhook);
                    Ok(())
                }
                Err(outcome) => Err(outcome),
            },
            Step::Confirm { id } => {
                let token = held.current.clone();
                match rotation.rotate(&mut held, &id, token).await {
                    Ok(webhook) => {
                        info!(%namespace, %name, webhook = %id, "Personio took the pending webhook token");
                        kept = Some(webhook);
                        Ok(())
                    }
                    Err(outcome) => Err(outcome),
                }
            }
            Step::Delete { id } => match source.delete_webhook(&id).await {
                Ok(()) => {
                    info!(%namespace, %name, webhook = %id, "deleted a Personio webhook");
                    if kept.as_ref().is_some_and(|k| k.id == id) {
                        kept = None;
                    }
                    Ok(())
                }
                Err(error) => Err(failed(
                    reason(&error),
                    cause("DELETE /v2/webhooks/{id}", &error),
                )),
            },
        };
        if let Err(outcome) = result {
            return outcome;
        }
    }
    let Some(desired) = desired else {
        return WebhookOutcome::Off;
    };
    let Some(mut webhook) = kept else {
        return failed(
            "RegistrationFailed",
            "Personio did not return the webhook after registering it; retrying",
        );
    };

    // A new webhook starts DISABLED: enable it at once. A webhook found DISABLED later (someone
    // disabled it, or Personio did after failures) is self-healed below, once the receiver
    // answers.
    let mut remediation = RemediationOutcome::Nothing;
    let mut attempts = Attempts::from_status(previous);
    if created && !decide::is_enabled(&webhook) {
        match enable(source, &webhook.id).await {
            Ok(enabled) => webhook = enabled,
            Err(error) => {
                return failed(
                    reason(&error),
                    cause("enabling the new webhook (PATCH /v2/webhooks/{id})", &error),
                );
            }
        }
    } else if !decide::is_enabled(&webhook) {
        let auto = spec.webhook.as_ref().is_some_and(|w| w.auto_remediate);
        let reachable = auto && receiver_answers(&desired.url).await;
        remediation = match attempts.next(auto, reachable, now) {
            Some(outcome) => outcome,
            None => match enable(source, &webhook.id).await {
                Ok(enabled) => {
                    info!(%namespace, %name, webhook = %webhook.id, "re-enabled the DISABLED Personio webhook");
                    webhook = enabled;
                    RemediationOutcome::ReEnabled { redelivered: 0 }
                }
                Err(error) => RemediationOutcome::Failed(cause(
                    "re-enabling (PATCH /v2/webhooks/{id})",
                    &error,
                )),
            },
        };
    }
    let enabled_now = created || matches!(remediation, RemediationOutcome::ReEnabled { .. });
    if enabled_now && let Err(error) = source.ping_webhook(&webhook.id).await {
        // Best effort: the ping only proves the path early.
        warn!(%namespace, %name, error = %error, "pinging the Personio webhook failed");
    }

    // Health, at most once per interval (and at once after a change).
    let changed = created || rotated.is_some() || enabled_now || !decide::is_enabled(&webhook);
    let mut health = None;
    if shared::health_due(previous, config.health_interval, changed, now) {
        let since = now
            .checked_sub(SignedDuration::try_from(decide::HEALTH_WINDOW).unwrap_or_default())
            .ok();
        let activity = match source.webhook_activity(&webhook.id, since).await {
            Ok(activity) => Some(activity),
            Err(error) => {
                warn!(%namespace, %name, error = %error, "reading the webhook activity failed");
                None
            }
        };
        let accepted = book.and_then(|b| b.last_accepted(&namespace, &name));
        let read = decide::health(decide::is_enabled(&webhook), activity.as_deref(), accepted);
        if read.state == HealthState::Failing && receiver_answers(&desired.url).await {
            // A fresh data point: a ping that gets through shows recovery at the next check.
            let _ = source.ping_webhook(&webhook.id).await;
        }
        if read.state == HealthState::Healthy {
            attempts.count = 0;
        }
        health = Some(read);
    }
    WebhookOutcome::registered(Registration {
        source: "Personio",
        credential: &super::status::TOKEN,
        kept: Kept {
            endpoint: if decide::is_enabled(&webhook) {
                "enabled"
            } else {
                "disabled"
            },
            events: webhook.enabled_events.len(),
            id: webhook.id,
            url: webhook.url,
            secret_name: signing::secret_name(&name),
            created,
            rotated,
            last_four: held.last_four(),
            rotated_at: held.rotated_at,
            next_rotation: held
                .rotated_at
                .and_then(|at| shared::next_rotation(at, interval)),
            previous_expires: held.previous.as_ref().map(|p| p.1),
            remediation,
            remediation_attempts: attempts.count,
            last_remediation: attempts.last,
        },
        health,
    })
}

async fn enable(source: &PersonioClient, id: &str) -> Result<Webhook, PersonioError> {
    let body = WebhookWrite {
        status: Some(webhook_status::ENABLED.into()),
        ..WebhookWrite::default()
    };
    source.update_webhook(id, &body).await
}

/// The calls that set a token, with what they share.
struct Rotation<'a> {
    object: &'a PeopleSync,
    secrets: &'a SecretCache,
    field_manager: &'a str,
    source: &'a PersonioClient,
    book: Option<&'a dyn crate::webhook::Receiving>,
    requested: &'a Option<String>,
}

impl Rotation<'_> {
    async fn write(&self, held: &Held) -> Result<(), WebhookOutcome> {
        signing::write(self.secrets, self.object, held, self.field_manager)
            .await
            .map_err(|error| {
                failed(
                    "SecretWriteFailed",
                    cause(
                        "writing the token Secret (the next reconcile retries)",
                        &error,
                    ),
                )
            })
    }

    /// Waits (bounded) until this process's receiver holds `token`.
    async fn propagated(&self, token: &SecretString) {
        let Some(book) = self.book else { return };
        let namespace = self.object.namespace().unwrap_or_default();
        let name = self.object.name_any();
        let started = std::time::Instant::now();
        while !book.holds(&namespace, &name, token) {
            if started.elapsed() >= PROPAGATION_WAIT {
                warn!(%namespace, %name, "the receiver does not hold the new token yet; setting it anyway (the old one stays accepted)");
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Creates the webhook (DISABLED: nothing is sent before the token is stored) with a new
    /// token and stores it. A failed Secret write leaves a webhook whose token nobody holds:
    /// the next reconcile finds it by URL and recovers by rotating.
    async fn create(
        &self,
        held: &mut Held,
        desired: &decide::Desired,
        now: Timestamp,
    ) -> Result<Webhook, WebhookOutcome> {
        let token = signing::new_token();
        let body = WebhookWrite {
            url: Some(desired.url.clone()),
            description: Some(desired.description.clone()),
            status: Some(webhook_status::DISABLED.into()),
            auth_type: Some(decide::AUTH_TYPE.into()),
            token: Some(token.expose_secret().to_owned()),
            enabled_events: Some(desired.events.iter().cloned().collect()),
            ..WebhookWrite::default()
        };
        let webhook = self
            .source
            .create_webhook(&body)
            .await
            .map_err(|error| failed(reason(&error), cause("POST /v2/webhooks", &error)))?;
        let next = held
            .token_issued(&webhook.id, token.clone(), now, now, self.requested.clone())
            .token_confirmed(now);
        self.write(&next).await?;
        *held = next;
        self.propagated(&token).await;
        Ok(webhook)
    }

    /// Sets a token on webhook `id`: a new one, or (`Some`) the held pending one again.
    async fn rotate(
        &self,
        held: &mut Held,
        id: &str,
        pending: Option<SecretString>,
    ) -> Result<Webhook, WebhookOutcome> {
        let now = Timestamp::now();
        let token = match pending {
            Some(token) => token,
            None => {
                let token = signing::new_token();
                let next = held.token_issued(
                    id,
                    token.clone(),
                    after(now, decide::PENDING_HOLD),
                    now,
                    self.requested.clone(),
                );
                self.write(&next).await?;
                *held = next;
                token
            }
        };
        self.propagated(&token).await;
        let body = WebhookWrite {
            auth_type: Some(decide::AUTH_TYPE.into()),
            token: Some(token.expose_secret().to_owned()),
            ..WebhookWrite::default()
        };
        let webhook = self.source.update_webhook(id, &body).await.map_err(|error| {
            failed(
                "RotationFailed",
                cause(
                    "setting the new token (PATCH /v2/webhooks/{id}); the old one stays accepted and the next reconcile retries",
                    &error,
                ),
            )
        })?;
        let confirmed = held.token_confirmed(after(Timestamp::now(), decide::TOKEN_OVERLAP));
        self.write(&confirmed).await?;
        *held = confirmed;
        Ok(webhook)
    }
}

/// At deletion: deletes every Personio webhook of this object (by the id in its status, its
/// description, or its URL). 404 counts as done.
pub async fn delete_all(
    source: &PersonioClient,
    namespace: &str,
    name: &str,
    url: Option<&str>,
    id: Option<&str>,
) -> Result<usize, PersonioError> {
    let webhooks = source.webhooks().await?;
    let marker = decide::marker(namespace, name);
    let ours = decide::ours(&webhooks, &marker, url, id);
    for webhook in &ours {
        source.delete_webhook(&webhook.id).await?;
    }
    Ok(ours.len())
}

/// Transient failures at deletion are retried; the rest leave the webhook behind (an Event).
pub fn is_transient(error: &PersonioError) -> bool {
    matches!(
        error.category(),
        ErrorCategory::RateLimited
            | ErrorCategory::ServerError
            | ErrorCategory::Timeout
            | ErrorCategory::Network
    )
}
