//! Webhooks management (API.md §7.2–7.3): the settings rules, create, patch, delete, list.

use std::collections::BTreeMap;

use super::super::error::{ApiError, ApiResult};
use super::State;
use peoplesync::source::personio::model::{Webhook, WebhookWrite, webhook_status};

/// Event names a webhook may subscribe to (the people families of API.md §7.6).
pub const KNOWN_EVENTS: &[&str] = &[
    "person.created",
    "person.updated",
    "person.deleted",
    "employment.created",
    "employment.updated",
    "employment.deleted",
    "employment.started",
    "employment.terminated",
];
/// Custom header names that are refused, as names or prefixes (API.md §7.3).
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "content-type",
];
const MAX_CUSTOM_HEADERS: usize = 3;
pub struct WebhookRecord {
    pub seq: u64,
    pub webhook: Webhook,
    pub token: Option<String>,
    pub custom_headers: BTreeMap<String, String>,
}

/// A webhook's settings after a create or patch was merged and checked.
struct Desired {
    url: String,
    description: String,
    status: String,
    auth_type: String,
    token: Option<String>,
    custom_headers: BTreeMap<String, String>,
    enabled_events: Vec<String>,
}

fn merge(write: WebhookWrite, current: Option<&WebhookRecord>) -> ApiResult<Desired> {
    let required = |value: Option<String>, field: &str| {
        value.ok_or_else(|| ApiError::bad_request(format!("{field} is required.")))
    };
    let (url, description, enabled_events) = match current {
        None => (
            required(write.url, "url")?,
            required(write.description, "description")?,
            write
                .enabled_events
                .ok_or_else(|| ApiError::bad_request("enabled_events is required."))?,
        ),
        Some(current) => (
            write.url.unwrap_or_else(|| current.webhook.url.clone()),
            write
                .description
                .unwrap_or_else(|| current.webhook.description.clone()),
            write
                .enabled_events
                .unwrap_or_else(|| current.webhook.enabled_events.clone()),
        ),
    };
    let current_auth = current.and_then(|c| c.webhook.auth_type.clone());
    let auth_type = write
        .auth_type
        .clone()
        .or(current_auth.clone())
        .unwrap_or_else(|| "TOKEN".into());
    let same_auth = current_auth.as_deref() == Some(auth_type.as_str());
    if write.token.is_some() && auth_type != "TOKEN" {
        return Err(ApiError::unprocessable(
            "token is only accepted with auth_type TOKEN.",
        ));
    }
    if write.custom_headers.as_ref().is_some_and(|h| !h.is_empty()) && auth_type != "CUSTOM" {
        return Err(ApiError::unprocessable(
            "custom_headers are only accepted with auth_type CUSTOM.",
        ));
    }
    let kept = |record: &WebhookRecord| (record.token.clone(), record.custom_headers.clone());
    let (old_token, old_headers) = match current {
        Some(record) if same_auth => kept(record),
        _ => (None, BTreeMap::new()),
    };
    Ok(Desired {
        url,
        description,
        status: write
            .status
            .or_else(|| current.and_then(|c| c.webhook.status.clone()))
            .unwrap_or_else(|| webhook_status::DISABLED.into()),
        token: write.token.or(old_token),
        custom_headers: write.custom_headers.unwrap_or(old_headers),
        auth_type,
        enabled_events,
    })
}

fn loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn check(desired: &mut Desired, allow_insecure: bool) -> ApiResult<()> {
    let url = url::Url::parse(&desired.url)
        .map_err(|_| ApiError::bad_request("url must be an absolute URL."))?;
    let secure = url.scheme() == "https" && url.host().is_some();
    let allowed_http = allow_insecure && url.scheme() == "http" && loopback(&url);
    if !(secure || allowed_http) {
        return Err(ApiError::unprocessable("url must be an https:// URL."));
    }
    if desired.description.trim().is_empty() {
        return Err(ApiError::unprocessable("description must not be empty."));
    }
    if ![webhook_status::ENABLED, webhook_status::DISABLED].contains(&desired.status.as_str()) {
        return Err(ApiError::unprocessable(
            "status must be ENABLED or DISABLED.",
        ));
    }
    match desired.auth_type.as_str() {
        "NONE" => {}
        "TOKEN" => {
            let token = desired.token.as_deref().unwrap_or_default();
            if token.trim().is_empty() {
                return Err(ApiError::unprocessable(
                    "token is required with auth_type TOKEN.",
                ));
            }
            if http::HeaderValue::from_str(token).is_err() {
                return Err(ApiError::unprocessable(
                    "token must be a valid header value.",
                ));
            }
        }
        "CUSTOM" => {
            let headers = &desired.custom_headers;
            if headers.is_empty() || headers.len() > MAX_CUSTOM_HEADERS {
                return Err(ApiError::unprocessable(
                    "auth_type CUSTOM needs one to three custom_headers.",
                ));
            }
            for (name, value) in headers {
                let lower = name.to_ascii_lowercase();
                let forbidden = FORBIDDEN_HEADERS.iter().any(|f| lower.starts_with(f));
                if forbidden || http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    return Err(ApiError::unprocessable(format!(
                        "{name} cannot be a custom header."
                    )));
                }
                if http::HeaderValue::from_str(value).is_err() {
                    return Err(ApiError::unprocessable(format!(
                        "the value of {name} is not a valid header value."
                    )));
                }
            }
        }
        _ => {
            return Err(ApiError::unprocessable(
                "auth_type must be NONE, TOKEN or CUSTOM.",
            ));
        }
    }
    if desired.enabled_events.is_empty() {
        return Err(ApiError::unprocessable("enabled_events must not be empty."));
    }
    if let Some(unknown) = desired
        .enabled_events
        .iter()
        .find(|e| !KNOWN_EVENTS.contains(&e.as_str()))
    {
        return Err(ApiError::unprocessable(format!(
            "{unknown} is not an event."
        )));
    }
    let mut seen = Vec::new();
    desired.enabled_events.retain(|e| {
        let fresh = !seen.contains(e);
        seen.push(e.clone());
        fresh
    });
    Ok(())
}

/// `GET /v2/webhooks` filters.
#[derive(Debug, Default)]
pub struct WebhookFilters {
    pub enabled_event: Option<String>,
    pub status: Option<String>,
}

impl State {
    pub fn webhook(&self, id: &str) -> ApiResult<&WebhookRecord> {
        self.webhooks
            .iter()
            .find(|w| w.webhook.id == id)
            .ok_or_else(|| ApiError::not_found("webhook"))
    }

    fn store_webhook(
        &mut self,
        index: Option<usize>,
        mut desired: Desired,
        allow_insecure: bool,
    ) -> ApiResult<Webhook> {
        check(&mut desired, allow_insecure)?;
        let own_id = index.map(|i| self.webhooks[i].webhook.id.clone());
        if self
            .webhooks
            .iter()
            .any(|w| w.webhook.url == desired.url && Some(&w.webhook.id) != own_id.as_ref())
        {
            return Err(ApiError::conflict("Another webhook already uses this url."));
        }
        let id = match own_id {
            Some(id) => id,
            None => self.uuid(),
        };
        let webhook = Webhook {
            id,
            url: desired.url,
            description: desired.description,
            status: Some(desired.status),
            auth_type: Some(desired.auth_type),
            enabled_events: desired.enabled_events,
        };
        let token = (webhook.auth_type.as_deref() == Some("TOKEN"))
            .then_some(desired.token)
            .flatten();
        let custom_headers = if webhook.auth_type.as_deref() == Some("CUSTOM") {
            desired.custom_headers
        } else {
            BTreeMap::new()
        };
        match index {
            Some(i) => {
                let record = &mut self.webhooks[i];
                record.webhook = webhook.clone();
                record.token = token;
                record.custom_headers = custom_headers;
            }
            None => {
                let seq = self.serial();
                self.webhooks.push(WebhookRecord {
                    seq,
                    webhook: webhook.clone(),
                    token,
                    custom_headers,
                });
            }
        }
        Ok(webhook)
    }

    /// `POST /v2/webhooks`: starts DISABLED unless `status` says otherwise.
    pub fn create_webhook(
        &mut self,
        write: WebhookWrite,
        allow_insecure: bool,
    ) -> ApiResult<Webhook> {
        let desired = merge(write, None)?;
        self.store_webhook(None, desired, allow_insecure)
    }

    /// `PATCH /v2/webhooks/{id}`: the same rules as a create, over the current settings.
    pub fn update_webhook(
        &mut self,
        id: &str,
        write: WebhookWrite,
        allow_insecure: bool,
    ) -> ApiResult<Webhook> {
        let index = self
            .webhooks
            .iter()
            .position(|w| w.webhook.id == id)
            .ok_or_else(|| ApiError::not_found("webhook"))?;
        let desired = merge(write, Some(&self.webhooks[index]))?;
        self.store_webhook(Some(index), desired, allow_insecure)
    }

    /// `DELETE /v2/webhooks/{id}`: its queued deliveries and activity go with it.
    pub fn delete_webhook(&mut self, id: &str) -> ApiResult<()> {
        self.webhook(id)?;
        self.webhooks.retain(|w| w.webhook.id != id);
        self.deliveries.retain(|d| d.webhook_id != id);
        self.activity.retain(|a| a.webhook_id != id);
        Ok(())
    }

    /// Webhooks in creation order after the sequence number `after`.
    pub fn list_webhooks(
        &self,
        filters: &WebhookFilters,
        after: Option<u64>,
        limit: usize,
    ) -> (Vec<Webhook>, Option<u64>) {
        let mut matching = self.webhooks.iter().filter(|w| {
            after.is_none_or(|after| w.seq > after)
                && filters
                    .enabled_event
                    .as_ref()
                    .is_none_or(|e| w.webhook.enabled_events.contains(e))
                && filters
                    .status
                    .as_ref()
                    .is_none_or(|s| w.webhook.status.as_ref() == Some(s))
        });
        let page: Vec<&WebhookRecord> = matching.by_ref().take(limit).collect();
        let more = matching.next().is_some();
        let last = page.last().map(|w| w.seq).filter(|_| more);
        (page.into_iter().map(|w| w.webhook.clone()).collect(), last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::test_now as now;
    use crate::core::sandbox::Tenant as _;

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
    fn a_webhook_starts_disabled_and_its_rules_are_enforced() {
        let mut state = State::seeded(3, 1, now());
        let created = state
            .create_webhook(write("https://hooks.example/p"), false)
            .expect("created");
        assert_eq!(created.status.as_deref(), Some("DISABLED"));
        assert_eq!(created.auth_type.as_deref(), Some("TOKEN"));
        let status = |w: WebhookWrite, state: &mut State| {
            state
                .create_webhook(w, false)
                .expect_err("refused")
                .status
                .as_u16()
        };
        assert_eq!(status(write("https://hooks.example/p"), &mut state), 409);
        assert_eq!(status(write("http://127.0.0.1:9/p"), &mut state), 422);
        let mut unknown = write("https://hooks.example/q");
        unknown.enabled_events = Some(vec!["person.exploded".into()]);
        assert_eq!(status(unknown, &mut state), 422);
        let mut no_token = write("https://hooks.example/q");
        no_token.token = None;
        assert_eq!(status(no_token, &mut state), 422);
        let mut custom = write("https://hooks.example/q");
        custom.token = None;
        custom.auth_type = Some("CUSTOM".into());
        custom.custom_headers = Some(BTreeMap::from([("X-Forwarded-Host".into(), "x".into())]));
        assert!(
            state.create_webhook(custom.clone(), false).is_ok(),
            "a name that merely contains a forbidden word is allowed"
        );
        custom.url = Some("https://hooks.example/r".into());
        custom.custom_headers = Some(BTreeMap::from([("Content-Type-X".into(), "x".into())]));
        assert_eq!(status(custom, &mut state), 422);
        assert!(
            state
                .create_webhook(write("http://127.0.0.1:9/p"), true)
                .is_ok()
        );
    }
}
