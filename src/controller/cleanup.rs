//! Deletion: the finalizer's cleanup of what PeopleSync registered at the source (webhooks).

use super::*;

/// Deletion: disable the object's HollyHR webhook, or delete its Personio webhook (404 counts
/// as done), and forget its handles.
/// A broken spec or a missing or rejected API key never blocks deletion (an Event says what was
/// left behind); a transient HollyHR error is retried with backoff.
pub(super) async fn cleanup(object: &PeopleSync, ctx: &Context) -> Result<Action, Error> {
    let uid = object.uid().unwrap_or_default();
    ctx.forget(&uid);
    let namespace = object.namespace().ok_or(Error::NoNamespace)?;
    let name = object.name_any();
    ctx.metrics.forget(&namespace, &name);
    let registered = object
        .status
        .as_ref()
        .and_then(|s| s.webhook.as_ref())
        .and_then(|w| w.id.as_ref())
        .is_some();
    if let (true, Some(hollyhr)) = (registered, &object.spec.source.hollyhr) {
        let left_behind = |why: String| {
            format!(
                "webhook peoplesync-{namespace}-{name} was left active in HollyHR: {why}; disable it there"
            )
        };
        let outcome = match secrets::read_key(&ctx.secrets, &namespace, &hollyhr.api_key_secret_ref)
            .await
        {
            Err(error) if error.blocker().is_some() => Err(left_behind(error.to_string())),
            Err(error) => return Err(error.into()),
            Ok(key) => match hollyhr::ClientConfig::new(&hollyhr.base_url, key)
                .and_then(hollyhr::HollyHrClient::new)
            {
                Err(error) => Err(left_behind(error.to_string())),
                Ok(client) => match webhook::disable_all(&client, &namespace, &name).await {
                    Ok(count) => Ok(count),
                    Err(error)
                        if matches!(
                            error.category(),
                            hollyhr::ErrorReason::RateLimited
                                | hollyhr::ErrorReason::ServerError
                                | hollyhr::ErrorReason::Timeout
                                | hollyhr::ErrorReason::Network
                        ) =>
                    {
                        warn!(%namespace, %name, error = %error, "disabling the webhook failed; retrying");
                        return Ok(Action::requeue(ctx.backoff(object)));
                    }
                    Err(error) => Err(left_behind(crate::telemetry::report(&error))),
                },
            },
        };
        match outcome {
            Ok(count) => info!(%namespace, %name, disabled = count, "disabled the HollyHR webhook"),
            Err(message) => {
                warn!(%namespace, %name, %message, "webhook not disabled");
                note_event(
                    ctx,
                    object,
                    EventType::Warning,
                    "WebhookLeftActive",
                    message,
                )
                .await;
            }
        }
    }
    if let (true, Some(_)) = (registered, &object.spec.source.personio)
        && let Some(action) = cleanup_personio(object, ctx, &namespace, &name).await?
    {
        return Ok(action);
    }
    info!(%name, "PeopleSync deleted; finalizer released");
    Ok(Action::await_change())
}

/// Deletion of a Personio source's webhook(s); `Some` to retry later (a transient error). A
/// missing or refused credential, or a broken spec, leaves the webhook behind with a Warning
/// Event instead of blocking deletion.
pub(super) async fn cleanup_personio(
    object: &PeopleSync,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<Action>, Error> {
    let left_behind = |why: String| {
        format!(
            "the Personio webhook of {namespace}/{name} (description \"{}\") was left in Personio: {why}; delete it there",
            crate::webhook::personio::marker(namespace, name)
        )
    };
    let outcome = match source_credentials(&object.spec, namespace, ctx).await {
        Err(error) if error.blocker().is_some() => Err(left_behind(error.to_string())),
        Err(error) => return Err(error.into()),
        Ok(None) => Err(left_behind("the spec sets no single source".into())),
        Ok(Some(credentials)) => match AnySource::connect(&object.spec.source, credentials, None) {
            Err(error) => Err(left_behind(crate::telemetry::report(&error))),
            Ok(source) => match source.personio() {
                None => Err(left_behind("the source is not Personio".into())),
                Some(client) => {
                    let url = crate::webhook::personio::desired(&object.spec, namespace, name)
                        .map(|d| d.url);
                    let id = object
                        .status
                        .as_ref()
                        .and_then(|s| s.webhook.as_ref())
                        .and_then(|w| w.id.as_deref());
                    match webhook::personio::delete_all(client, namespace, name, url.as_deref(), id)
                        .await
                    {
                        Ok(count) => Ok(count),
                        Err(error) if webhook::personio::is_transient(&error) => {
                            warn!(%namespace, %name, error = %error, "deleting the Personio webhook failed; retrying");
                            return Ok(Some(Action::requeue(ctx.backoff(object))));
                        }
                        Err(error) => Err(left_behind(crate::telemetry::report(&error))),
                    }
                }
            },
        },
    };
    match outcome {
        Ok(count) => info!(%namespace, %name, deleted = count, "deleted the Personio webhook"),
        Err(message) => {
            warn!(%namespace, %name, %message, "webhook not deleted");
            note_event(
                ctx,
                object,
                EventType::Warning,
                "WebhookLeftActive",
                message,
            )
            .await;
        }
    }
    Ok(None)
}
