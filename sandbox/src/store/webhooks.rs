//! Webhook endpoints: create, update, rotation with an overlap, the secrets deliveries are signed with.

use super::*;

impl State {
    pub fn webhook_index(&self, id: &str) -> ApiResult<usize> {
        if !ids::is_encrypted_id("wh", id) {
            return Err(ApiError::not_found("webhook"));
        }
        self.webhooks
            .iter()
            .position(|hook| hook.webhook.id == id)
            .ok_or_else(|| ApiError::not_found("webhook"))
    }

    fn new_secret(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        // Secrets come from the OS generator, not the tenant seed: they must not be predictable.
        let mut rng = rand::rng();
        let body: String = (0..40)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        format!("whsec_{body}")
    }

    pub fn create_webhook(
        &mut self,
        request: CreateWebhookRequest,
        now: Timestamp,
    ) -> ApiResult<WebhookWithSecret> {
        if self
            .webhooks
            .iter()
            .any(|hook| hook.webhook.name == request.name)
        {
            return Err(ApiError::conflict(
                "a webhook with this name already exists",
            ));
        }
        let serial = self.serial();
        let secret = self.new_secret();
        let webhook = Webhook {
            id: ids::encrypted_id("wh", &format!("{serial}:{}", request.name)),
            name: request.name,
            url: request.url,
            status: WebhookStatus::Active,
            subscribed_events: dedup_events(request.subscribed_events),
            secret_last_four: last_four(&secret),
            previous_secret_expires_at: None,
            last_tested_at: None,
            disabled_at: None,
            created_at: now,
            updated_at: now,
        };
        self.webhooks.push(WebhookRecord {
            webhook: webhook.clone(),
            secret: secret.clone(),
            previous_secret: None,
            version: 1,
        });
        Ok(WebhookWithSecret {
            webhook,
            signing_secret: Some(secret),
        })
    }

    pub fn update_webhook(
        &mut self,
        index: usize,
        request: UpdateWebhookRequest,
        now: Timestamp,
    ) -> ApiResult<()> {
        if let Some(name) = &request.name {
            let taken = self
                .webhooks
                .iter()
                .enumerate()
                .any(|(i, hook)| i != index && &hook.webhook.name == name);
            if taken {
                return Err(ApiError::conflict(
                    "a webhook with this name already exists",
                ));
            }
        }
        let record = &mut self.webhooks[index];
        let hook = &mut record.webhook;
        if let Some(name) = request.name {
            hook.name = name;
        }
        if let Some(url) = request.url {
            hook.url = url;
        }
        if let Some(events) = request.subscribed_events {
            hook.subscribed_events = dedup_events(events);
        }
        if let Some(status) = request.status
            && status != hook.status
        {
            hook.disabled_at = (status == WebhookStatus::Disabled).then_some(now);
            hook.status = status;
        }
        hook.updated_at = now;
        record.version += 1;
        Ok(())
    }

    pub fn rotate_secret(&mut self, index: usize, now: Timestamp) -> WebhookWithSecret {
        let secret = self.new_secret();
        let record = &mut self.webhooks[index];
        record.previous_secret = Some(std::mem::replace(&mut record.secret, secret.clone()));
        record.webhook.previous_secret_expires_at = Some(now + ROTATION_OVERLAP);
        record.webhook.secret_last_four = last_four(&secret);
        record.webhook.updated_at = now;
        record.version += 1;
        WebhookWithSecret {
            webhook: record.webhook.clone(),
            signing_secret: Some(secret),
        }
    }

    /// Secrets deliveries are signed with at `now`: current, then previous during the overlap.
    pub fn signing_secrets(&self, index: usize, now: Timestamp) -> Vec<String> {
        let record = &self.webhooks[index];
        let mut secrets = vec![record.secret.clone()];
        if let (Some(previous), Some(expires)) = (
            &record.previous_secret,
            record.webhook.previous_secret_expires_at,
        ) && now < expires
        {
            secrets.push(previous.clone());
        }
        secrets
    }
}
