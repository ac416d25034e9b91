//! Kubernetes Events, folded as client-go folds them: a repeat of the same Event (same object,
//! type, reason, action and note) within kube's six-minute window becomes one Event with a
//! series count; an Event with a different note is an Event of its own.
//!
//! kube-runtime's `Recorder` leaves the note out of its key: on its own it would fold every
//! cycle's Event within six minutes into the first one, with the first cycle's note and counts
//! (`kubectl get events` would tell the wrong story). Here each distinct Event gets a recorder
//! of its own, so a recorder's cache only ever folds repeats of one note.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder, Reporter};
use tracing::warn;

/// kube's window for folding repeats (`CACHE_TTL` in `kube_runtime::events`).
const WINDOW: Duration = Duration::from_secs(6 * 60);

pub struct Events {
    client: kube::Client,
    reporter: Reporter,
    /// One recorder per distinct Event, with when it was last used.
    recorders: Mutex<HashMap<String, (Recorder, Instant)>>,
}

impl Events {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            recorders: Mutex::default(),
        }
    }

    /// Publishes `event` about `regarding`. Events are best effort: a failure (a missing
    /// permission) is logged, never the reconcile's error.
    pub async fn publish(&self, event: &Event, regarding: &ObjectReference) {
        let recorder = self.recorder(&key(event, regarding), Instant::now());
        if let Err(error) = recorder.publish(event, regarding).await {
            warn!(%error, reason = %event.reason, "failed to publish an Event");
        }
    }

    /// The recorder of one distinct Event; recorders unused for longer than the window go
    /// (their repeats could not fold any more).
    fn recorder(&self, key: &str, now: Instant) -> Recorder {
        let mut recorders = self.recorders.lock().unwrap_or_else(|e| e.into_inner());
        recorders.retain(|_, (_, used)| now.duration_since(*used) < WINDOW);
        let (recorder, used) = recorders.entry(key.to_owned()).or_insert_with(|| {
            (
                Recorder::new(self.client.clone(), self.reporter.clone()),
                now,
            )
        });
        *used = now;
        recorder.clone()
    }

    /// How many distinct Events are being folded now.
    pub fn folding(&self) -> usize {
        self.recorders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// What makes two Events the same Event (client-go's key: the note included).
fn key(event: &Event, regarding: &ObjectReference) -> String {
    format!(
        "{}\0{}\0{}\0{:?}\0{}\0{}\0{}",
        regarding.uid.as_deref().unwrap_or_default(),
        regarding.namespace.as_deref().unwrap_or_default(),
        regarding.name.as_deref().unwrap_or_default(),
        event.type_,
        event.reason,
        event.action,
        event.note.as_deref().unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use kube::runtime::events::EventType;

    use super::*;

    fn event(note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: "Synced".into(),
            note: Some(note.into()),
            action: "Sync".into(),
            secondary: None,
        }
    }

    fn object(uid: &str) -> ObjectReference {
        ObjectReference {
            uid: Some(uid.into()),
            namespace: Some("hr".into()),
            name: Some("acme".into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_note_tells_events_apart_and_repeats_share_a_key() {
        let first = key(&event("full cycle a1: created 3"), &object("u1"));
        assert_eq!(
            first,
            key(&event("full cycle a1: created 3"), &object("u1"))
        );
        assert_ne!(
            first,
            key(&event("incremental cycle b2: updated 1"), &object("u1"))
        );
        assert_ne!(
            first,
            key(&event("full cycle a1: created 3"), &object("u2"))
        );
        let mut warning = event("full cycle a1: created 3");
        warning.type_ = EventType::Warning;
        assert_ne!(first, key(&warning, &object("u1")));
    }

    #[tokio::test]
    async fn recorders_go_once_their_window_has_passed() {
        // A client that is never called: building recorders makes no request.
        let (service, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let client = kube::Client::new(service, "default");
        let events = Events::new(
            client,
            Reporter {
                controller: "peoplesync".into(),
                instance: None,
            },
        );
        let start = Instant::now();
        events.recorder("a", start);
        events.recorder("b", start + Duration::from_secs(60));
        events.recorder("a", start + Duration::from_secs(120));
        assert_eq!(events.folding(), 2);
        events.recorder("c", start + WINDOW + Duration::from_secs(90));
        assert_eq!(events.folding(), 2, "b went, a (used at 2 min) and c stay");
        events.recorder("d", start + WINDOW + Duration::from_secs(121));
        assert_eq!(events.folding(), 2, "a went too");
    }
}
