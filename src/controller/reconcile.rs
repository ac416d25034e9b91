//! One reconcile: the finalizer, the named steps (observe → probes → webhook upkeep → the due
//! cycle) and the one status write with its Events.

use super::*;

pub(super) async fn reconcile(object: Arc<PeopleSync>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let namespace = object.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<PeopleSync> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, object, |event| async {
        match event {
            Finalizer::Apply(object) => apply(&object, &ctx).await,
            Finalizer::Cleanup(object) => cleanup(&object, &ctx).await,
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)));
    ctx.metrics.reconciled(
        result.as_ref().err().map(Error::category),
        started.elapsed(),
    );
    result
}

pub(super) fn error_policy(object: Arc<PeopleSync>, error: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.backoff(&object);
    warn!(
        name = %object.name_any(),
        namespace = object.namespace().unwrap_or_default(),
        category = error.category(),
        error = %crate::telemetry::report(error),
        retry_in_s = wait.as_secs(),
        "reconcile failed"
    );
    Action::requeue(wait)
}

/// The reconcile of a live object: observe, keep the webhook, run the sync cycle that is due,
/// compute status, write it if it changed, requeue for the next cycle or health check.
pub(super) async fn apply(object: &PeopleSync, ctx: &Context) -> Result<Action, Error> {
    let namespace = object.namespace().ok_or(Error::NoNamespace)?;
    let uid = object.uid().unwrap_or_default();
    let (mut observed, source, handles) = observe(object, &namespace, ctx).await?;
    ctx.keep_handles(&uid, handles.clone());
    let spec = &object.spec;
    let poll = spec.poll_interval().unwrap_or(Duration::from_secs(300));
    let full_interval = spec
        .full_resync_interval()
        .unwrap_or(Duration::from_secs(6 * 3600));
    let mut notes = Vec::new();
    if let Some(source) = &source {
        let upkeep = webhook::Upkeep {
            secrets: &ctx.secrets,
            config: &ctx.webhook,
            book: ctx.book.as_ref().map(|b| b as &dyn webhook::Receiving),
            field_manager: FIELD_MANAGER,
            now: jiff::Timestamp::now(),
        };
        observed.webhook = source.flavour().reconcile(object, upkeep).await;
        notes = observed.webhook.notes();
    }
    if let Some(handles) = handles {
        let lock = ctx.lock_of(&uid);
        let _turn = lock.lock().await;
        run_sync(object, ctx, &handles, &mut observed, poll, full_interval).await;
    }
    let now = jiff::Timestamp::now();
    let (next, transitions) = status::compute(
        spec,
        object.status.as_ref(),
        &observed,
        object.meta().generation,
        now,
    );
    write_status(object, &namespace, &next, ctx).await?;
    for transition in &transitions {
        publish(ctx, object, transition).await;
    }
    for (reason, note) in notes {
        note_event(ctx, object, EventType::Normal, reason, note).await;
    }
    if let sync::SyncOutcome::Completed(completed) = &observed.sync
        && completed.changed()
    {
        publish_cycle(ctx, object, completed).await;
    }
    if let Some(runs) = ctx.take_webhook_runs(&uid) {
        publish_webhook_runs(ctx, object, &runs).await;
    }
    // A failed cycle keeps its count for the backoff (see run_sync).
    if !matches!(observed.sync, sync::SyncOutcome::Failed { .. }) {
        ctx.succeeded(object);
    }
    let mut wait = match observed.next_sync {
        Some(at) => Duration::try_from(at.duration_since(jiff::Timestamp::now()))
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1)),
        // A blocked object is also woken by its Secret changing.
        None if observed.blocker.is_some() => poll.min(Duration::from_secs(60)),
        None => poll,
    };
    // The webhook's health is read once per interval, and a rotation is due on time.
    if let Some(next_rotation) = observed.webhook.next_rotation() {
        wait = wait.min(ctx.webhook.health_interval);
        if let Some(at) = next_rotation {
            let until = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
            wait = wait.min(until.max(Duration::from_secs(1)));
        }
    } else if matches!(observed.webhook, webhook::WebhookOutcome::Failed { .. }) {
        wait = wait.min(Duration::from_secs(30));
    }
    Ok(Action::requeue(wait))
}

pub(super) async fn note_event(
    ctx: &Context,
    object: &PeopleSync,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Webhook".into(),
        secondary: None,
    };
    ctx.events.publish(&event, &object.object_ref(&())).await;
}

/// Writes status by server-side apply under one field manager, only when it changed.
pub(super) async fn write_status(
    object: &PeopleSync,
    namespace: &str,
    next: &PeopleSyncStatus,
    ctx: &Context,
) -> Result<(), Error> {
    ctx.metrics.object_status(
        &crate::metrics::ObjectLabels::new(namespace, &object.name_any()),
        next,
        object.spec.poll_interval().ok(),
    );
    if object.status.as_ref() == Some(next) {
        return Ok(());
    }
    let api: Api<PeopleSync> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = serde_json::json!({
        "apiVersion": "peoplesync.dev/v1alpha1",
        "kind": "PeopleSync",
        "status": next,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(|source| Error::WriteStatus {
        name: object.name_any(),
        source,
    })?;
    ctx.metrics.status_written();
    Ok(())
}

pub(super) async fn publish(ctx: &Context, object: &PeopleSync, transition: &status::Transition) {
    let event = Event {
        type_: if transition.status == conditions::Status::False {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: transition.reason.clone(),
        note: Some(format!(
            "{} is {}: {}",
            transition.kind,
            transition.status.as_str(),
            transition.message
        )),
        action: format!("Set{}", transition.kind),
        secondary: None,
    };
    ctx.events.publish(&event, &object.object_ref(&())).await;
}
