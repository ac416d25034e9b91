//! Running the due sync cycle of one object, and publishing what it did (metrics, audit, Event).

use super::*;

/// Runs the cycle that is due and records its outcome in `observed`.
pub(super) async fn run_sync(
    object: &PeopleSync,
    ctx: &Context,
    handles: &Handles,
    observed: &mut Observation,
    poll: Duration,
    full_interval: Duration,
) {
    use crate::sync::engine;
    let uid = object.uid().unwrap_or_default();
    let state = sync::state_of(object.status.as_ref());
    let approved = object
        .annotations()
        .get(crate::crd::APPROVE_DEPROVISION)
        .map(String::as_str);
    // A new approval re-runs the full cycle whose plan it approves.
    let new_approval = approved.is_some_and(|hash| state.approval_used.as_deref() != Some(hash));
    // `kubectl peoplesync sync-now` sets a new value: a full cycle runs now.
    let sync_now = object
        .annotations()
        .get(crate::crd::SYNC_NOW)
        .is_some_and(|value| ctx.sync_now_requested(&uid, value));
    let spec_changed = object.status.as_ref().and_then(|s| s.observed_generation)
        != object.meta().generation
        || !ctx.had_full_cycle(&uid)
        || new_approval
        || ctx.take_full_request(&uid)
        || sync_now;
    let started = jiff::Timestamp::now();
    // People whose lifecycle instant has come: read again by id in this cycle.
    let due = ctx.schedule(&uid, |schedule| schedule.due(started));
    if !spec_changed && let Some(at) = ctx.cycle_ahead(&uid, started) {
        // Not due yet: this reconcile is for the webhook's health or a status echo.
        observed.next_sync = Some(at);
        observed.next_transition = ctx.schedule(&uid, |schedule| schedule.earliest());
        return;
    }
    // A deprovision delay (`DisableThenDelete`) that ended since the last full cycle: a full
    // cycle deletes whoever's delay has passed (vanished people included).
    let delay = match crate::sync::spec::settings(&object.spec).map(|s| s.policy.deprovision) {
        Ok(crate::plan::Deprovision::DisableThenDelete { delay }) => Some(delay),
        _ => None,
    };
    let delay_due = delay.is_some_and(|delay| engine::deprovision_delay(&state, delay, started).0);
    // More people due at once than a webhook batch (a Monday's joiners): one full cycle reads
    // them in pages instead of one request each.
    let kind = engine::due(
        &state,
        full_interval,
        started,
        spec_changed || delay_due || due.len() > super::process::JOB_BATCH,
    );
    let mut state = state;
    if kind == engine::CycleKind::Incremental {
        state.retry.extend(due.iter().map(|(id, _, _)| id.clone()));
    }
    // This cycle reads every change up to now, those a flood handed over included.
    ctx.cycle_starts(&uid);
    // Whether the cycle stopped at the fence (its Lease not renewed lately, e.g. while the API
    // server restarted): retried soon, not after the outage backoff.
    let mut fenced = false;
    let outcome = match crate::sync::spec::settings(&object.spec) {
        Err(error) => sync::SyncOutcome::Failed {
            reason: error.reason(),
            message: crate::telemetry::report(&error),
        },
        Ok(settings) => {
            // The cycle reads the directory afresh and leaves its index for targeted syncs.
            let mut index = ctx.take_index(&uid);
            let cycle = cycle_id();
            // Every line the cycle logs (its audit lines included) names the object and cycle.
            let span = tracing::info_span!(
                "cycle",
                namespace = %object.namespace().unwrap_or_default(),
                name = %object.name_any(),
                cycle = %cycle,
                kind = kind.as_str()
            );
            let result = engine::run_cycle_indexed(
                &handles.source,
                &handles.directory,
                &settings,
                &state,
                kind,
                approved,
                started,
                &mut index,
            )
            .instrument(span)
            .await;
            ctx.keep_index(&uid, index);
            fenced = matches!(&result, Err(error) if error.detail() == "Fenced");
            match result {
                Ok(report) => {
                    let labels = crate::metrics::ObjectLabels::of(object);
                    ctx.metrics.cycle(&labels, &report);
                    if !settings.dry_run {
                        let done = jiff::Timestamp::now();
                        for (_, at, transition) in &due {
                            let late = done.duration_since(*at).as_secs_f64().max(0.0);
                            ctx.metrics.transition_ran(&labels, *transition, late);
                        }
                        ctx.schedule(&uid, |schedule| {
                            schedule.fold(&report.upcoming);
                            schedule.handled(started);
                        });
                    }
                    if let Some(checkpoint) = report.state.checkpoint {
                        let age = jiff::Timestamp::now().duration_since(checkpoint).as_secs();
                        ctx.metrics.checkpoint_age(&labels, age);
                    }
                    if kind == engine::CycleKind::Full && !settings.dry_run {
                        ctx.full_cycle_done(&uid);
                    }
                    info!(
                        name = %object.name_any(),
                        kind = kind.as_str(),
                        people = report.people_read,
                        failures = report.failures().len(),
                        took_ms = report.duration.as_millis() as u64,
                        source_ms = report.timings.source.as_millis() as u64,
                        directory_ms = report.timings.directory.as_millis() as u64,
                        plan_ms = report.timings.plan.as_millis() as u64,
                        apply_ms = report.timings.apply.as_millis() as u64,
                        "sync cycle finished"
                    );
                    let mut completed =
                        sync::Completed::of(&report, settings.dry_run, jiff::Timestamp::now());
                    completed.cycle = cycle;
                    if matches!(completed.guard, crate::plan::GuardDecision::Approved(_)) {
                        completed.approved_by = object
                            .annotations()
                            .get(crate::crd::APPROVED_BY)
                            .filter(|by| !by.is_empty())
                            .cloned();
                    }
                    sync::SyncOutcome::Completed(Box::new(completed))
                }
                Err(error) => {
                    ctx.metrics.cycle_failed(
                        &crate::metrics::ObjectLabels::of(object),
                        kind,
                        error.detail(),
                    );
                    warn!(name = %object.name_any(), kind = kind.as_str(), error = %crate::telemetry::report(&error), "sync cycle failed");
                    sync::SyncOutcome::Failed {
                        reason: error.reason(),
                        message: format!(
                            "the {} cycle failed ({}): {}; the checkpoint did not move",
                            kind.as_str(),
                            error.detail(),
                            crate::telemetry::report(&error)
                        ),
                    }
                }
            }
        }
    };
    let next_state = match &outcome {
        sync::SyncOutcome::Completed(completed) if !completed.dry_run => completed.state.clone(),
        _ => state,
    };
    observed.sync = outcome;
    let mut next = engine::next_run(&next_state, poll, full_interval, jiff::Timestamp::now());
    if matches!(observed.sync, sync::SyncOutcome::Failed { .. }) {
        // Retried after as long as it has been failing (`retry_after`), never later than the poll:
        // the directory or the API server may be back in seconds.
        let mut backoff = ctx.backoff(object).min(poll);
        if fenced {
            // The LeaseManager renews within seconds once the API server answers; a replica
            // that lost the Lease stops leading, and this retry never runs.
            backoff = backoff.min(FENCED_RETRY);
        }
        next = next.min(
            jiff::Timestamp::now() + jiff::SignedDuration::try_from(backoff).unwrap_or_default(),
        );
    }
    // The next lifecycle instant wakes a targeted cycle, whatever the poll says; the next end
    // of a deprovision delay a full one.
    let transition = ctx.schedule(&uid, |schedule| schedule.earliest());
    let delay_end = delay
        .and_then(|delay| engine::deprovision_delay(&next_state, delay, jiff::Timestamp::now()).1);
    for at in [transition, delay_end].into_iter().flatten() {
        next = next.min(at.max(jiff::Timestamp::now()));
    }
    observed.next_transition = transition;
    if let Some(at) = ctx.handover_follow_up(&uid, started) {
        // After a takeover: one more cycle once the old leader no longer receives deliveries.
        next = next.min(at);
    }
    if ctx.handed_over(&uid) {
        // A flood was handed over while this cycle ran, after it had read the changes: the
        // events wait for a cycle, so the next one runs now, not a poll interval later.
        next = jiff::Timestamp::now();
    }
    ctx.cycle_due_at(&uid, next);
    observed.next_sync = Some(next);
}

/// When a cycle the fence stopped is tried again.
pub(super) const FENCED_RETRY: Duration = Duration::from_secs(1);

/// A cycle's id: 12 hex digits, in its log span, its audit lines and its Event.
pub(super) fn cycle_id() -> String {
    format!("{:012x}", rand::random::<u64>() >> 16)
}

/// An Event for a cycle that changed the directory (counts only).
pub(super) async fn publish_cycle(ctx: &Context, object: &PeopleSync, completed: &sync::Completed) {
    let event = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some(format!(
            "{} cycle {}: {}",
            completed.kind.as_str(),
            completed.cycle,
            completed.describe_counts()
        )),
        action: "Sync".into(),
        secondary: None,
    };
    ctx.events.publish(&event, &object.object_ref(&())).await;
}

/// One Event for what webhook runs wrote since the last one (counts and run ids only).
pub(super) async fn publish_webhook_runs(
    ctx: &Context,
    object: &PeopleSync,
    runs: &sync::WebhookRuns,
) {
    let event = Event {
        type_: if runs.failures > 0 {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: "WebhookSynced".into(),
        note: Some(runs.note()),
        action: "Sync".into(),
        secondary: None,
    };
    ctx.events.publish(&event, &object.object_ref(&())).await;
}
