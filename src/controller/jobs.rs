//! The job consumer: verified webhook deliveries, batched per object, become targeted syncs of
//! the people they name (an incremental cycle when one fails).

use super::*;

/// Turns verified deliveries into targeted syncs: person events read and apply those people
/// (batched per object, one run per batch against the object's kept index); org-unit events ask
/// for a full cycle now. Each object's batches run on a task of their own, in order, at most
/// `parallel` objects at a time: an object whose directory is slow, or whose cycle holds its
/// lock, never delays another object's webhooks. A job for an object that is gone, suspended,
/// in dry run or not connected yet is dropped: the next cycle covers its change (it moved
/// `updated_at`).
pub(super) async fn consume(
    jobs: Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<crate::receiver::Job>>>,
    store: Store<PeopleSync>,
    ctx: Arc<Context>,
    refresh: futures::channel::mpsc::Sender<ObjectRef<PeopleSync>>,
    parallel: usize,
) {
    use std::collections::{BTreeMap, BTreeSet};
    let mut jobs = jobs.lock().await;
    let mut batch = Vec::with_capacity(JOB_BATCH);
    let waiting: Arc<Mutex<HashMap<ObjectRef<PeopleSync>, BTreeSet<String>>>> = Arc::default();
    let turns = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    // Aborted with this task (leadership lost, shutdown).
    let mut workers = tokio::task::JoinSet::new();
    while jobs.recv_many(&mut batch, JOB_BATCH).await > 0 {
        while workers.try_join_next().is_some() {}
        let mut by_object: BTreeMap<(String, String), (BTreeSet<String>, bool)> = BTreeMap::new();
        for job in batch.drain(..) {
            let entry = by_object.entry((job.namespace, job.name)).or_default();
            match job.subject {
                crate::receiver::Subject::Person(id) => {
                    entry.0.insert(id);
                }
                crate::receiver::Subject::OrgUnit(_) => entry.1 = true,
                crate::receiver::Subject::Nothing => {}
            }
        }
        for ((namespace, name), (people, org_units)) in by_object {
            let reference = ObjectRef::<PeopleSync>::new(&name).within(&namespace);
            let Some(object) = store.get(&reference) else {
                continue;
            };
            if org_units {
                ctx.request_full(&object.uid().unwrap_or_default());
                let _ = refresh.clone().try_send(reference.clone());
            }
            if people.is_empty() || object.spec.suspend {
                continue;
            }
            let start = {
                let mut waiting = waiting.lock().expect("the queue lock is never poisoned");
                let start = !waiting.contains_key(&reference);
                waiting.entry(reference.clone()).or_default().extend(people);
                start
            };
            if start {
                let worker = work_off(
                    reference,
                    store.clone(),
                    ctx.clone(),
                    refresh.clone(),
                    waiting.clone(),
                    turns.clone(),
                );
                workers.spawn(worker);
            }
        }
    }
}

/// Runs one object's waiting batches until none waits (one at a time, each with a turn).
pub(super) async fn work_off(
    reference: ObjectRef<PeopleSync>,
    store: Store<PeopleSync>,
    ctx: Arc<Context>,
    mut refresh: futures::channel::mpsc::Sender<ObjectRef<PeopleSync>>,
    waiting: Arc<Mutex<HashMap<ObjectRef<PeopleSync>, std::collections::BTreeSet<String>>>>,
    turns: Arc<tokio::sync::Semaphore>,
) {
    loop {
        let ids: Vec<String> = {
            let mut waiting = waiting.lock().expect("the queue lock is never poisoned");
            match waiting.get_mut(&reference) {
                Some(ids) if !ids.is_empty() => std::mem::take(ids).into_iter().collect(),
                _ => {
                    waiting.remove(&reference);
                    return;
                }
            }
        };
        let Some(object) = store.get(&reference) else {
            continue;
        };
        if object.spec.suspend {
            continue;
        }
        let uid = object.uid().unwrap_or_default();
        if ctx.handed_over(&uid) {
            // A handed-over cycle that has not started yet reads these too.
            ctx.metrics
                .handed_over(&crate::metrics::ObjectLabels::of(&object), ids.len());
            continue;
        }
        let paced = ctx
            .handles_of(&uid)
            .is_some_and(|handles| handles.source.person_reads_paced());
        if ids.len() > TARGETED_MAX || paced {
            // Read one by one, this many people cost more HollyHR requests (and rate-limit
            // budget) than one incremental cycle, which reads the changes in pages; ids
            // HollyHR does not know cost it nothing. The same when reads by id already wait
            // for the rate limit. Until that cycle starts, further events for the object wait
            // for it instead of being read one by one.
            ctx.hand_over(&uid);
            ctx.cycle_due_at(&uid, jiff::Timestamp::now());
            ctx.metrics
                .handed_over(&crate::metrics::ObjectLabels::of(&object), ids.len());
            info!(
                name = %object.name_any(),
                people = ids.len(),
                paced,
                "more people changed at once than a targeted sync reads one by one (or reads by id wait for the rate limit); an incremental cycle runs now"
            );
            let _ = refresh.try_send(reference.clone());
            continue;
        }
        // The object's own turn first (its cycle may hold it for long), then one of the shared
        // turns: an object waiting for its own cycle holds no turn another object could use.
        let lock = ctx.lock_of(&uid);
        let _mine = lock.lock().await;
        let Ok(_turn) = turns.acquire().await else {
            return;
        };
        // As it is now: a cycle may have moved its status while this waited.
        let Some(object) = store.get(&reference) else {
            continue;
        };
        targeted(&object, &ctx, &ids, &mut refresh, reference.clone()).await;
    }
}

pub(super) async fn targeted(
    object: &PeopleSync,
    ctx: &Context,
    ids: &[String],
    refresh: &mut futures::channel::mpsc::Sender<ObjectRef<PeopleSync>>,
    reference: ObjectRef<PeopleSync>,
) {
    use crate::sync::engine;
    let uid = object.uid().unwrap_or_default();
    let Some(handles) = ctx.handles_of(&uid) else {
        // Not connected (yet, or no longer: the source or the directory failed its probe): the
        // next reconcile that connects runs an incremental cycle, which covers the change. Due
        // now, or that cycle would wait for the poll interval when the object had synced before.
        ctx.cycle_due_at(&uid, jiff::Timestamp::now());
        let _ = refresh.try_send(reference);
        return;
    };
    let Ok(settings) = crate::sync::spec::settings(&object.spec) else {
        return;
    };
    if settings.dry_run {
        return;
    }
    // The caller holds the object's lock (one writer to its directory at a time).
    let state = sync::state_of(object.status.as_ref());
    let started = std::time::Instant::now();
    let mut index = ctx.take_index(&uid);
    let run = cycle_id();
    let span = tracing::info_span!(
        "webhook_run",
        namespace = %object.namespace().unwrap_or_default(),
        name = %object.name_any(),
        cycle = %run
    );
    let result = engine::run_people(
        &handles.source,
        &handles.directory,
        &settings,
        &state,
        ids,
        &mut index,
        jiff::Timestamp::now(),
    )
    .instrument(span)
    .await;
    ctx.keep_index(&uid, index);
    match result {
        Ok(report) => {
            ctx.metrics
                .cycle(&crate::metrics::ObjectLabels::of(object), &report);
            if let Some(applied) = &report.applied {
                ctx.webhook_ran(&uid, &run, applied);
            }
            info!(
                name = %object.name_any(),
                people = ids.len(),
                changes = report.plan.counts().values().sum::<usize>(),
                failures = report.failures().len(),
                took_ms = started.elapsed().as_millis() as u64,
                source_us = report.timings.source.as_micros() as u64,
                directory_us = report.timings.directory.as_micros() as u64,
                plan_us = report.timings.plan.as_micros() as u64,
                apply_us = report.timings.apply.as_micros() as u64,
                "targeted sync from webhook events"
            );
        }
        Err(error) => {
            ctx.metrics.cycle_failed(
                &crate::metrics::ObjectLabels::of(object),
                engine::CycleKind::Incremental,
                error.detail(),
            );
            warn!(name = %object.name_any(), error = %crate::telemetry::report(&error), "targeted sync failed; an incremental cycle runs now instead");
            // The changes moved the people's `updated_at`: an incremental cycle reads them
            // again. It runs now, not at the next poll (retried with backoff while the directory
            // or the fence still refuses); the control-plane trials lost a change before this.
            ctx.cycle_due_at(&uid, jiff::Timestamp::now());
            let _ = refresh.try_send(reference);
        }
    }
}
