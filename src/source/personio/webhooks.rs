//! Webhook management (`/v2/webhooks`), under its own token with the webhook scopes only.

use futures::TryStreamExt;
use http::Method;
use jiff::Timestamp;

use super::client::{PersonioClient, Request};
use super::error::PersonioError;
use super::model::{self, ListPage, route};
use super::token::ScopeSet;

impl PersonioClient {
    /// `GET /v2/webhooks`: every webhook, through every page.
    pub async fn webhooks(&self) -> Result<Vec<model::Webhook>, PersonioError> {
        let request = Request::get(route::WEBHOOKS, &["v2", "webhooks"], ScopeSet::Webhooks)
            .query("limit", model::MAX_WEBHOOK_PAGE);
        self.all(request).await
    }

    /// `POST /v2/webhooks`. Not resent after an unclear failure (a timeout, 502, 504): Personio
    /// has no idempotency keys, so that could create a second webhook; list and reconcile.
    pub async fn create_webhook(
        &self,
        body: &model::WebhookWrite,
    ) -> Result<model::Webhook, PersonioError> {
        let request = Request::with_scopes(
            Method::POST,
            route::WEBHOOKS,
            &["v2", "webhooks"],
            ScopeSet::Webhooks,
        )
        .json(body)?
        .not_replayable();
        self.fetch(&request).await
    }

    /// `PATCH /v2/webhooks/{id}`: the fields set in `body` only (resending it is harmless).
    pub async fn update_webhook(
        &self,
        id: &str,
        body: &model::WebhookWrite,
    ) -> Result<model::Webhook, PersonioError> {
        let request = Request::with_scopes(
            Method::PATCH,
            route::WEBHOOK,
            &["v2", "webhooks", id],
            ScopeSet::Webhooks,
        )
        .json(body)?;
        self.fetch(&request).await
    }

    /// `DELETE /v2/webhooks/{id}`; a webhook that is already gone (404) counts as deleted.
    pub async fn delete_webhook(&self, id: &str) -> Result<(), PersonioError> {
        let request = Request::with_scopes(
            Method::DELETE,
            route::WEBHOOK,
            &["v2", "webhooks", id],
            ScopeSet::Webhooks,
        );
        match self.execute(&request).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// `GET /v2/webhooks/{id}/activity`: delivery attempts (Personio keeps 30 days), those
    /// completed at or after `since` when given, through every page.
    pub async fn webhook_activity(
        &self,
        id: &str,
        since: Option<Timestamp>,
    ) -> Result<Vec<model::Activity>, PersonioError> {
        let request = Request::get(
            route::WEBHOOK_ACTIVITY,
            &["v2", "webhooks", id, "activity"],
            ScopeSet::Webhooks,
        )
        .query("limit", model::MAX_WEBHOOK_PAGE)
        .query_opt("completed_at.gte", since);
        self.all(request).await
    }

    /// `POST /v2/webhooks/{id}/ping`: Personio sends a `ping` event to the webhook. A resent
    /// ping only sends another ping, so it is retried like a read.
    pub async fn ping_webhook(&self, id: &str) -> Result<(), PersonioError> {
        let request = Request::with_scopes(
            Method::POST,
            route::WEBHOOK_PING,
            &["v2", "webhooks", id, "ping"],
            ScopeSet::Webhooks,
        );
        self.execute(&request).await.map(|_| ())
    }

    async fn all<T>(&self, first: Request) -> Result<Vec<T>, PersonioError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        self.pages(first)
            .try_fold(Vec::new(), |mut all, page: ListPage<T>| async move {
                all.extend(page.data);
                Ok(all)
            })
            .await
    }
}
