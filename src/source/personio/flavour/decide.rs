//! Personio webhook registration and health, decided as data (pure; [`super::upkeep`] makes the
//! calls). Personio has no webhook name and signs nothing: each PeopleSync owns one webhook, found
//! by its id (kept in the owned Secret), its URL `publicUrl` + `/hooks/<namespace>/<name>` or its
//! description `peoplesync <namespace>/<name>`, that authenticates with a static token
//! (`auth_type: TOKEN`, the `Authorization` header verbatim). Personio never echoes the token, so
//! a lost token can only be healed by setting a new one (a rotation).

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use crate::crd::PeopleSyncSpec;
use crate::source::personio::model::{Activity, Webhook, webhook_status};
use crate::webhook::RotateCause;

/// The events PeopleSync subscribes to by default (the people families of API.md §7.6).
pub const DEFAULT_EVENTS: [&str; 8] = [
    "person.created",
    "person.updated",
    "person.deleted",
    "employment.created",
    "employment.updated",
    "employment.deleted",
    "employment.terminated",
    "employment.started",
];

/// Personio's `auth_type` for a static token sent verbatim as `Authorization`.
pub const AUTH_TYPE: &str = "TOKEN";

/// How long the previous token is still accepted after Personio took the new one. Personio
/// sends the token current at send time (API.md §7.4 leaves this open; the sandbox does so), so
/// only requests already in flight, and the two immediate requests of a "fast attempt", can
/// carry the old token: ten minutes covers them with a wide margin and keeps a leaked old token
/// useless soon after.
pub const TOKEN_OVERLAP: Duration = Duration::from_secs(600);

/// How long the previous token is accepted while a rotation is pending (the new token is held,
/// but Personio has not confirmed taking it): the controller retries the PATCH every 30 s, and
/// a day bounds how long an old token stays valid if Personio refuses it for that long.
pub const PENDING_HOLD: Duration = Duration::from_secs(86_400);

/// The activity window `WebhookHealthy` reads (Personio keeps 30 days; an hour says how the
/// endpoint does now, and keeps the read to a page or two).
pub const HEALTH_WINDOW: Duration = Duration::from_secs(3600);

/// The webhook a PeopleSync should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub url: String,
    pub description: String,
    pub events: BTreeSet<String>,
}

/// The description that marks a webhook as this PeopleSync's (Personio webhooks have no name).
pub fn marker(namespace: &str, name: &str) -> String {
    format!("peoplesync {namespace}/{name}")
}

/// The webhook the spec asks for, or `None` when webhooks are off (or no public URL is set).
pub fn desired(spec: &PeopleSyncSpec, namespace: &str, name: &str) -> Option<Desired> {
    let wanted = crate::webhook::subscription(spec, namespace, name, &DEFAULT_EVENTS)?;
    Some(Desired {
        description: marker(namespace, name),
        url: wanted.url,
        events: wanted.events,
    })
}

/// What PeopleSync holds of the webhook's token (from the owned Secret), without the token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenView {
    /// The webhook the held token belongs to.
    pub webhook_id: Option<String>,
    pub has_token: bool,
    /// A new token is held but Personio has not confirmed taking it yet.
    pub pending: bool,
}

/// One registration call to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// None of ours exists: create it (DISABLED, with a new token), store the token, enable it,
    /// ping it.
    Create,
    /// URL, events or description drifted: PATCH them.
    Update {
        id: String,
        url: Option<String>,
        events: Option<BTreeSet<String>>,
        description: Option<String>,
    },
    /// Set a new token (held first, then PATCHed, the old one accepted for the overlap).
    Rotate { id: String, cause: RotateCause },
    /// A rotation whose PATCH did not land (or was not confirmed): PATCH the held token again.
    Confirm { id: String },
    /// Delete this webhook (feature off, object deleted, or a second one of ours).
    Delete { id: String },
}

/// Our webhooks, the one to keep first: the one at our URL, else the one the Secret names, else
/// the first with our description.
pub fn ours<'a>(
    webhooks: &'a [Webhook],
    marker: &str,
    url: Option<&str>,
    held_id: Option<&str>,
) -> Vec<&'a Webhook> {
    let rank = |w: &Webhook| {
        if url == Some(w.url.as_str()) {
            Some(0)
        } else if held_id == Some(w.id.as_str()) {
            Some(1)
        } else if w.description == marker {
            Some(2)
        } else {
            None
        }
    };
    let mut ours: Vec<(u8, usize, &Webhook)> = webhooks
        .iter()
        .enumerate()
        .filter_map(|(i, w)| rank(w).map(|r| (r, i, w)))
        .collect();
    ours.sort_by_key(|(rank, index, _)| (*rank, *index));
    ours.into_iter().map(|(_, _, w)| w).collect()
}

/// What to do, given the desired webhook, Personio's webhooks, what is held of the token and a
/// due rotation (scheduled or requested), if any. Duplicates are deleted before the kept one is
/// patched, so a URL change never collides with one of ours (Personio answers 409 for a URL in
/// use).
pub fn decide(
    desired: Option<&Desired>,
    marker: &str,
    webhooks: &[Webhook],
    held: &TokenView,
    due: Option<RotateCause>,
) -> Vec<Step> {
    let found = ours(
        webhooks,
        marker,
        desired.map(|d| d.url.as_str()),
        held.webhook_id.as_deref(),
    );
    let Some(desired) = desired else {
        return found
            .iter()
            .map(|w| Step::Delete { id: w.id.clone() })
            .collect();
    };
    let Some((kept, duplicates)) = found.split_first() else {
        return vec![Step::Create];
    };
    let mut steps: Vec<Step> = duplicates
        .iter()
        .map(|w| Step::Delete { id: w.id.clone() })
        .collect();
    let events: BTreeSet<String> = kept.enabled_events.iter().cloned().collect();
    let url = (kept.url != desired.url).then(|| desired.url.clone());
    let events = (events != desired.events).then(|| desired.events.clone());
    let description =
        (kept.description != desired.description).then(|| desired.description.clone());
    if url.is_some() || events.is_some() || description.is_some() {
        steps.push(Step::Update {
            id: kept.id.clone(),
            url,
            events,
            description,
        });
    }
    let ours_held = held.has_token && held.webhook_id.as_deref() == Some(kept.id.as_str());
    // Another auth type means someone changed it in Personio: the token we hold is not sent.
    let token_auth = kept.auth_type.as_deref().is_none_or(|a| a == AUTH_TYPE);
    let id = kept.id.clone();
    if !ours_held || !token_auth {
        steps.push(Step::Rotate {
            id,
            cause: RotateCause::Recover,
        });
    } else if held.pending {
        steps.push(Step::Confirm { id });
    } else if let Some(cause) = due {
        steps.push(Step::Rotate { id, cause });
    }
    steps
}

/// Whether Personio shows the webhook as enabled (a missing status reads as disabled: the
/// create default).
pub fn is_enabled(webhook: &Webhook) -> bool {
    webhook.status.as_deref() == Some(webhook_status::ENABLED)
}

/// How the endpoint does, from Personio's activity log and the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// The latest delivery (Personio's log or the receiver) succeeded.
    Healthy,
    /// Personio's latest attempt failed and the receiver accepted nothing since.
    Failing,
    /// The webhook is DISABLED in Personio.
    Disabled,
    /// No delivery in the window from either side.
    Unknown,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Failing => "failing",
            HealthState::Disabled => "disabled",
            HealthState::Unknown => "unknown",
        }
    }
}

/// `WebhookHealthy`'s inputs, digested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub state: HealthState,
    /// Whether the activity log was read (it may fail, e.g. without `personio:webhooks:read`).
    pub activity_read: bool,
    /// Attempts in the window that got a 2xx, and that did not.
    pub delivered: u64,
    pub failed: u64,
    pub last_success: Option<Timestamp>,
    pub last_failure: Option<Timestamp>,
    /// The HTTP status of the latest failed attempt (`None`: no answer, or no failure).
    pub latest_failure_status: Option<u16>,
    pub latest_failure_at: Option<Timestamp>,
    /// The last delivery the receiver authenticated.
    pub last_accepted: Option<Timestamp>,
}

impl Health {
    /// Which inputs the state came from, for the condition message.
    pub fn sources(&self) -> &'static str {
        match (self.activity_read, self.last_accepted.is_some()) {
            (true, true) => "Personio's activity log and the receiver",
            (true, false) => "Personio's activity log",
            (false, true) => "the receiver (the activity log could not be read)",
            (false, false) => "nothing (the activity log could not be read)",
        }
    }
}

/// The endpoint's health: `activity` is the window's attempts (`None` when they could not be
/// read), `last_accepted` the receiver's last authenticated delivery.
pub fn health(
    enabled: bool,
    activity: Option<&[Activity]>,
    last_accepted: Option<Timestamp>,
) -> Health {
    let attempts = activity.unwrap_or_default();
    let (delivered, failed): (Vec<&Activity>, Vec<&Activity>) =
        attempts.iter().partition(|a| a.is_delivered);
    let last_success = delivered.iter().map(|a| a.completed_at).max();
    let latest_failure = failed.iter().max_by_key(|a| a.completed_at);
    let last_failure = latest_failure.map(|a| a.completed_at);
    let any_success = last_success.max(last_accepted);
    let state = if !enabled {
        HealthState::Disabled
    } else {
        match (any_success, last_failure) {
            (success, Some(failure)) if success.is_none_or(|s| s < failure) => HealthState::Failing,
            (Some(_), _) => HealthState::Healthy,
            (None, _) => HealthState::Unknown,
        }
    };
    Health {
        state,
        activity_read: activity.is_some(),
        delivered: delivered.len() as u64,
        failed: failed.len() as u64,
        last_success,
        last_failure,
        latest_failure_status: latest_failure.and_then(|a| a.response_status),
        latest_failure_at: last_failure,
        last_accepted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(webhook: serde_json::Value) -> PeopleSyncSpec {
        serde_json::from_value(serde_json::json!({
            "source": {"personio": {"credentialsSecretRef": {"name": "p"}}},
            "target": {"scim": {"baseUrl": "https://scim.example.com/v2", "tokenSecretRef": {"name": "s", "key": "t"}}},
            "webhook": webhook
        }))
        .expect("a spec")
    }

    fn enabled() -> Desired {
        desired(
            &spec(serde_json::json!({"enabled": true, "publicUrl": "https://hooks.example.com/"})),
            "team",
            "acme",
        )
        .expect("enabled")
    }

    fn webhook(id: &str, url: &str, description: &str) -> Webhook {
        Webhook {
            id: id.into(),
            url: url.into(),
            description: description.into(),
            status: Some(webhook_status::ENABLED.into()),
            auth_type: Some(AUTH_TYPE.into()),
            enabled_events: DEFAULT_EVENTS.iter().map(|e| (*e).to_owned()).collect(),
        }
    }

    fn held(id: &str) -> TokenView {
        TokenView {
            webhook_id: Some(id.into()),
            has_token: true,
            pending: false,
        }
    }

    const URL: &str = "https://hooks.example.com/hooks/team/acme";
    const MARKER: &str = "peoplesync team/acme";

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("a time")
    }

    fn attempt(second: i64, delivered: bool, status: u16) -> Activity {
        Activity {
            id: format!("a{second}"),
            event_name: "person.updated".into(),
            occurred_at: None,
            completed_at: at(second),
            is_delivered: delivered,
            response_status: Some(status),
        }
    }

    #[test]
    fn the_desired_webhook_has_our_url_description_and_the_default_events() {
        let desired = enabled();
        assert_eq!(desired.url, URL);
        assert_eq!(desired.description, MARKER);
        assert_eq!(desired.events.len(), 8);
        assert!(desired.events.contains("employment.terminated"));
        let custom = super::desired(
            &spec(serde_json::json!({"enabled": true, "publicUrl": "https://h.example", "events": ["person.updated"]})),
            "team",
            "acme",
        )
        .expect("enabled");
        assert_eq!(custom.events.len(), 1);
        assert_eq!(
            super::desired(&spec(serde_json::json!({"enabled": false})), "team", "acme"),
            None
        );
    }

    #[test]
    fn nothing_of_ours_is_created_and_ours_with_our_token_is_left_alone() {
        let other = webhook("w-other", "https://elsewhere.example/hook", "someone else");
        assert_eq!(
            decide(
                Some(&enabled()),
                MARKER,
                std::slice::from_ref(&other),
                &TokenView::default(),
                None
            ),
            [Step::Create]
        );
        let ours = webhook("w-1", URL, MARKER);
        assert!(decide(Some(&enabled()), MARKER, &[other, ours], &held("w-1"), None).is_empty());
    }

    #[test]
    fn a_moved_public_url_is_patched_and_a_second_webhook_of_ours_deleted_first() {
        let moved = webhook("w-1", "https://old.example.com/hooks/team/acme", MARKER);
        let mut second = webhook("w-2", "https://older.example.com/x", MARKER);
        second.enabled_events.truncate(2);
        let steps = decide(
            Some(&enabled()),
            MARKER,
            &[second, moved],
            &held("w-1"),
            None,
        );
        assert_eq!(
            steps,
            [
                Step::Delete { id: "w-2".into() },
                Step::Update {
                    id: "w-1".into(),
                    url: Some(URL.into()),
                    events: None,
                    description: None,
                },
            ]
        );
        // Found by URL even when someone edited the description; the description is restored.
        let edited = webhook("w-1", URL, "edited in the UI");
        assert_eq!(
            decide(Some(&enabled()), MARKER, &[edited], &held("w-1"), None),
            [Step::Update {
                id: "w-1".into(),
                url: None,
                events: None,
                description: Some(MARKER.into()),
            }]
        );
    }

    #[test]
    fn a_lost_or_foreign_token_is_recovered_by_rotating_and_a_pending_one_is_confirmed() {
        let ours = webhook("w-1", URL, MARKER);
        let recover = [Step::Rotate {
            id: "w-1".into(),
            cause: RotateCause::Recover,
        }];
        let lost = decide(
            Some(&enabled()),
            MARKER,
            std::slice::from_ref(&ours),
            &TokenView::default(),
            None,
        );
        assert_eq!(lost, recover);
        let other = decide(
            Some(&enabled()),
            MARKER,
            std::slice::from_ref(&ours),
            &held("w-9"),
            Some(RotateCause::Scheduled),
        );
        assert_eq!(other, recover, "a token of another webhook is not ours");
        let mut no_auth = ours.clone();
        no_auth.auth_type = Some("NONE".into());
        assert_eq!(
            decide(Some(&enabled()), MARKER, &[no_auth], &held("w-1"), None),
            recover
        );
        let pending = TokenView {
            pending: true,
            ..held("w-1")
        };
        assert_eq!(
            decide(
                Some(&enabled()),
                MARKER,
                std::slice::from_ref(&ours),
                &pending,
                Some(RotateCause::Requested)
            ),
            [Step::Confirm { id: "w-1".into() }],
            "a pending rotation is finished before another starts"
        );
        assert_eq!(
            decide(
                Some(&enabled()),
                MARKER,
                &[ours],
                &held("w-1"),
                Some(RotateCause::Requested)
            ),
            [Step::Rotate {
                id: "w-1".into(),
                cause: RotateCause::Requested
            }]
        );
    }

    #[test]
    fn turning_webhooks_off_deletes_ours_only() {
        let ours = webhook("w-1", URL, MARKER);
        let named = webhook("w-3", "https://x.example/y", "whatever");
        let other = webhook("w-other", "https://elsewhere.example/hook", "someone else");
        assert_eq!(
            decide(None, MARKER, &[ours, named, other], &held("w-3"), None),
            [
                Step::Delete { id: "w-3".into() },
                Step::Delete { id: "w-1".into() }
            ]
        );
    }

    #[test]
    fn health_comes_from_the_latest_delivery_on_either_side() {
        let log = [attempt(100, true, 202), attempt(200, false, 500)];
        let failing = health(true, Some(&log), None);
        assert_eq!(failing.state, HealthState::Failing);
        assert_eq!((failing.delivered, failing.failed), (1, 1));
        assert_eq!(failing.latest_failure_status, Some(500));
        assert_eq!(failing.sources(), "Personio's activity log");
        // The receiver accepted a delivery after the failure (a retry): healthy.
        let recovered = health(true, Some(&log), Some(at(300)));
        assert_eq!(recovered.state, HealthState::Healthy);
        assert_eq!(
            recovered.sources(),
            "Personio's activity log and the receiver"
        );
        let receiver_only = health(true, None, Some(at(50)));
        assert_eq!(receiver_only.state, HealthState::Healthy);
        assert!(receiver_only.sources().starts_with("the receiver"));
        assert_eq!(health(true, Some(&[]), None).state, HealthState::Unknown);
        assert_eq!(
            health(false, Some(&[attempt(1, true, 200)]), Some(at(2))).state,
            HealthState::Disabled
        );
    }
}
