//! Deletion: the finalizer's cleanup of what PeopleSync registered at the source (webhooks).

use super::*;

/// Deletion: remove the object's webhook at its source (HollyHR disables it, Personio deletes
/// it; 404 counts as done), and forget its handles. A broken spec or a missing or rejected
/// credential never blocks deletion (a Warning Event says what was left behind); a transient
/// source error is retried with backoff.
pub(super) async fn cleanup(object: &PeopleSync, ctx: &Context) -> Result<Action, Error> {
    let uid = object.uid().unwrap_or_default();
    ctx.forget(&uid);
    let namespace = object.namespace().ok_or(Error::NoNamespace)?;
    let name = object.name_any();
    ctx.metrics
        .forget(&crate::metrics::ObjectLabels::of(object));
    let registered = object
        .status
        .as_ref()
        .and_then(|s| s.webhook.as_ref())
        .and_then(|w| w.id.as_ref())
        .is_some();
    if registered && let Some(action) = remove_webhook(object, ctx, &namespace, &name).await? {
        return Ok(action);
    }
    info!(%name, "PeopleSync deleted; finalizer released");
    Ok(Action::await_change())
}

/// Removes the object's webhook(s) at its source; `Some` to retry later (a transient error).
async fn remove_webhook(
    object: &PeopleSync,
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<Action>, Error> {
    let kind = object.spec.source.kind();
    let left_behind = |why: String| {
        format!(
            "the {kind} webhook of {namespace}/{name} was left at the source: {why}; remove it there"
        )
    };
    let outcome = match source_credentials(&object.spec, namespace, ctx).await {
        Err(error) if error.blocker().is_some() => Err(left_behind(error.to_string())),
        Err(error) => return Err(error.into()),
        Ok(None) => Err(left_behind("the spec sets no single source".into())),
        Ok(Some(credentials)) => match AnySource::connect(&object.spec.source, credentials, None) {
            Err(error) => Err(left_behind(crate::telemetry::report(&error))),
            Ok(source) => {
                let flavour = source.flavour();
                match flavour.remove(object).await {
                    Ok(count) => Ok(count),
                    Err(webhook::RemoveError::Transient(message)) => {
                        warn!(%namespace, %name, source = kind, error = %message, "removing the webhook failed; retrying");
                        return Ok(Some(Action::requeue(ctx.backoff(object))));
                    }
                    Err(webhook::RemoveError::Final(why)) => {
                        Err(flavour.left_behind(namespace, name, &why))
                    }
                }
            }
        },
    };
    match outcome {
        Ok(count) => {
            info!(%namespace, %name, source = kind, removed = count, "removed the webhook at the source")
        }
        Err(message) => {
            warn!(%namespace, %name, %message, "webhook not removed");
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
