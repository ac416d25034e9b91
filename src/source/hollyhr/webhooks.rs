//! Webhook management: subscriptions, secrets, tests, health and delivery logs.

use futures::StreamExt;
use futures::stream::BoxStream;
use http::Method;
use jiff::Timestamp;
use secrecy::SecretString;

use super::client::{Conditional, HollyHrClient, PageLimit, Request, ResourceEtag, Versioned};
use super::error::HollyHrError;
use super::idempotency::Idempotency;
use super::model::{
    CreateWebhookRequest, Data, DeliveryDetail, DeliveryStatus, DeliverySummary, DisabledWebhook,
    EventType, List, Page, Redelivery, TestDelivery, UpdateWebhookRequest, Webhook, WebhookHealth,
    WebhookWithSecret,
};
use super::people::{unwrap_conditional, unwrap_data};

pub mod route {
    pub const WEBHOOKS: &str = "/webhooks";
    pub const WEBHOOK: &str = "/webhooks/{webhookId}";
    pub const ROTATE_SECRET: &str = "/webhooks/{webhookId}/rotate-secret";
    pub const TEST: &str = "/webhooks/{webhookId}/test";
    pub const HEALTH: &str = "/webhooks/{webhookId}/health";
    pub const DELIVERIES: &str = "/webhooks/{webhookId}/deliveries";
    pub const DELIVERY: &str = "/webhooks/{webhookId}/deliveries/{deliveryId}";
    pub const REDELIVER: &str = "/webhooks/{webhookId}/deliveries/{deliveryId}/redeliver";
}

/// A webhook with the signing secret HollyHR shows exactly once (on create and rotate);
/// `None` on an idempotent replay. The secret is a [`SecretString`]: `Debug` cannot print it.
#[derive(Debug, Clone)]
pub struct WebhookAndSecret {
    pub webhook: Webhook,
    pub signing_secret: Option<SecretString>,
}

impl From<WebhookWithSecret> for WebhookAndSecret {
    fn from(wire: WebhookWithSecret) -> Self {
        Self {
            webhook: wire.webhook,
            signing_secret: wire.signing_secret.map(SecretString::from),
        }
    }
}

/// Filters of `GET /webhooks/{id}/deliveries`.
#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub limit: PageLimit,
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<EventType>,
    pub created_since: Option<Timestamp>,
    pub created_until: Option<Timestamp>,
}

impl HollyHrClient {
    /// `GET /webhooks` (unpaginated; secrets are never listed).
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, HollyHrError> {
        let list: List<Webhook> = self
            .fetch(&Request::get(route::WEBHOOKS, &["webhooks"]))
            .await?
            .value;
        Ok(list.data)
    }

    /// `POST /webhooks`. Persist the returned secret at once: a replay returns `None`.
    pub async fn create_webhook(
        &self,
        body: &CreateWebhookRequest,
        idempotency: Idempotency,
    ) -> Result<Versioned<WebhookAndSecret>, HollyHrError> {
        let request = Request::mutate(Method::POST, route::WEBHOOKS, &["webhooks"], idempotency)
            .json(body)?;
        Ok(with_secret(self.fetch(&request).await?))
    }

    pub async fn webhook(&self, id: &str) -> Result<Versioned<Webhook>, HollyHrError> {
        Ok(unwrap_data(
            self.fetch(&Request::get(route::WEBHOOK, &["webhooks", id]))
                .await?,
        ))
    }

    pub async fn webhook_if_changed(
        &self,
        id: &str,
        known: Option<&ResourceEtag>,
    ) -> Result<Conditional<Webhook>, HollyHrError> {
        let request = Request::get(route::WEBHOOK, &["webhooks", id]).if_none_match(known);
        Ok(unwrap_conditional(self.fetch_conditional(&request).await?))
    }

    /// `PATCH /webhooks/{id}`; `status: active` re-enables a disabled endpoint.
    pub async fn update_webhook(
        &self,
        id: &str,
        body: &UpdateWebhookRequest,
        if_match: &ResourceEtag,
        idempotency: Idempotency,
    ) -> Result<Versioned<Webhook>, HollyHrError> {
        let request = Request::mutate(
            Method::PATCH,
            route::WEBHOOK,
            &["webhooks", id],
            idempotency,
        )
        .json(body)?
        .if_match(if_match);
        Ok(unwrap_data(self.fetch(&request).await?))
    }

    /// `DELETE /webhooks/{id}`: a soft disable; the endpoint stays for audit.
    pub async fn disable_webhook(
        &self,
        id: &str,
        if_match: &ResourceEtag,
        idempotency: Idempotency,
    ) -> Result<Versioned<Webhook>, HollyHrError> {
        let request = Request::mutate(
            Method::DELETE,
            route::WEBHOOK,
            &["webhooks", id],
            idempotency,
        )
        .if_match(if_match);
        let answer: Versioned<DisabledWebhook> = self.fetch(&request).await?;
        Ok(Versioned {
            value: answer.value.data,
            etag: answer.etag,
        })
    }

    /// `POST /webhooks/{id}/rotate-secret`. Use [`Idempotency::Unique`] or a key naming this
    /// rotation: a derived key is the same for every rotation of the webhook.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        idempotency: Idempotency,
    ) -> Result<Versioned<WebhookAndSecret>, HollyHrError> {
        let request = Request::mutate(
            Method::POST,
            route::ROTATE_SECRET,
            &["webhooks", id, "rotate-secret"],
            idempotency,
        );
        Ok(with_secret(self.fetch(&request).await?))
    }

    /// `POST /webhooks/{id}/test`: queues a `webhook.test` delivery and returns its exact signed
    /// headers and payload. Same idempotency caveat as rotation.
    pub async fn test_webhook(
        &self,
        id: &str,
        idempotency: Idempotency,
    ) -> Result<TestDelivery, HollyHrError> {
        let request = Request::mutate(
            Method::POST,
            route::TEST,
            &["webhooks", id, "test"],
            idempotency,
        );
        let answer: Versioned<Data<TestDelivery>> = self.fetch(&request).await?;
        Ok(answer.value.data)
    }

    pub async fn webhook_health(&self, id: &str) -> Result<WebhookHealth, HollyHrError> {
        let request = Request::get(route::HEALTH, &["webhooks", id, "health"]);
        let answer: Versioned<Data<WebhookHealth>> = self.fetch(&request).await?;
        Ok(answer.value.data)
    }

    /// `GET /webhooks/{id}/deliveries`, page by page.
    pub fn webhook_delivery_pages(
        &self,
        id: &str,
        query: &DeliveryQuery,
    ) -> BoxStream<'static, Result<Page<DeliverySummary>, HollyHrError>> {
        self.pages(deliveries_request(id, query)).boxed()
    }

    /// `GET /webhooks/{id}/deliveries`, delivery by delivery.
    pub fn webhook_deliveries(
        &self,
        id: &str,
        query: &DeliveryQuery,
    ) -> BoxStream<'static, Result<DeliverySummary, HollyHrError>> {
        self.items(deliveries_request(id, query)).boxed()
    }

    /// `GET /webhooks/{id}/deliveries/{deliveryId}`: the delivery with its attempts.
    pub async fn webhook_delivery(
        &self,
        id: &str,
        delivery_id: &str,
    ) -> Result<DeliveryDetail, HollyHrError> {
        let request = Request::get(
            route::DELIVERY,
            &["webhooks", id, "deliveries", delivery_id],
        );
        let answer: Versioned<Data<DeliveryDetail>> = self.fetch(&request).await?;
        Ok(answer.value.data)
    }

    /// `POST …/deliveries/{deliveryId}/redeliver` (only `failed` or `retry_scheduled`
    /// deliveries of an active endpoint). Same idempotency caveat as rotation.
    pub async fn redeliver(
        &self,
        id: &str,
        delivery_id: &str,
        idempotency: Idempotency,
    ) -> Result<Redelivery, HollyHrError> {
        let request = Request::mutate(
            Method::POST,
            route::REDELIVER,
            &["webhooks", id, "deliveries", delivery_id, "redeliver"],
            idempotency,
        );
        Ok(self.fetch(&request).await?.value)
    }
}

fn deliveries_request(id: &str, query: &DeliveryQuery) -> Request {
    Request::get(route::DELIVERIES, &["webhooks", id, "deliveries"])
        .query("limit", query.limit.get())
        .query_opt("status", query.status.map(DeliveryStatus::as_str))
        .query_opt("event_type", query.event_type.map(EventType::as_str))
        .query_opt("created_since", query.created_since)
        .query_opt("created_until", query.created_until)
}

fn with_secret(answer: Versioned<Data<WebhookWithSecret>>) -> Versioned<WebhookAndSecret> {
    Versioned {
        value: answer.value.data.into(),
        etag: answer.etag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_secrets_are_redacted_in_debug() {
        let wire: WebhookWithSecret = serde_json::from_value(serde_json::json!({
            "id": "wh_a.b.c", "name": "n", "url": "https://example.com/h", "status": "active",
            "subscribed_events": ["person.updated"], "secret_last_four": "alue",
            "previous_secret_expires_at": null, "last_tested_at": null, "disabled_at": null,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "signing_secret": "whsec_supersecretvalue"
        }))
        .expect("valid webhook");
        let converted = WebhookAndSecret::from(wire);
        assert!(converted.signing_secret.is_some());
        assert!(!format!("{converted:?}").contains("supersecret"));
    }
}
