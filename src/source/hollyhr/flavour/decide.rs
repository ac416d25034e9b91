//! HollyHR webhook registration, decided as data (pure; [`super::upkeep`] makes the calls). Each
//! PeopleSync owns exactly one webhook, found by its deterministic name
//! `peoplesync-<namespace>-<name>`, whose URL is `publicUrl` + `/hooks/<namespace>/<name>` and
//! whose events are the spec's (or the defaults). Drift is patched; a lost or mismatched signing
//! secret is recovered by rotating; duplicates with our name are disabled; a disabled feature or a
//! deleted object disables the webhook.

use std::collections::BTreeSet;

use crate::crd::PeopleSyncSpec;
use crate::source::hollyhr::model::{EventType, Webhook, WebhookStatus};
use crate::webhook::{HeldView, RotateCause};

/// The events PeopleSync subscribes to by default (HollyHR contract notes §7.1).
pub const DEFAULT_EVENTS: [&str; 8] = [
    "person.created",
    "person.updated",
    "person.ended",
    "person.reactivated",
    "org_unit.created",
    "org_unit.updated",
    "org_unit.archived",
    "org_unit.reactivated",
];

/// The webhook a PeopleSync should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub name: String,
    pub url: String,
    pub events: BTreeSet<String>,
}

/// The deterministic webhook name of a PeopleSync.
pub fn webhook_name(namespace: &str, name: &str) -> String {
    format!("peoplesync-{namespace}-{name}")
}

/// The webhook the spec asks for, or `None` when webhooks are off (or no public URL is set).
pub fn desired(spec: &PeopleSyncSpec, namespace: &str, name: &str) -> Option<Desired> {
    let wanted = crate::webhook::subscription(spec, namespace, name, &DEFAULT_EVENTS)?;
    Some(Desired {
        name: webhook_name(namespace, name),
        url: wanted.url,
        events: wanted.events,
    })
}

fn event_name(event: &EventType) -> String {
    event.as_str().to_owned()
}

/// The spec's event names as HollyHR event types; the first unknown name is the error.
pub fn event_types(events: &BTreeSet<String>) -> Result<Vec<EventType>, String> {
    events
        .iter()
        .map(|name| {
            serde_json::from_value(serde_json::Value::String(name.clone())).map_err(|_| {
                format!(
                    "spec.webhook.events: {name:?} is not a HollyHR event type (e.g. person.updated, org_unit.archived)"
                )
            })
        })
        .collect()
}

/// One registration call to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// No webhook with our name: create it (with a deterministic idempotency key) and store the
    /// secret it returns.
    Create,
    /// URL or events drifted: PATCH them.
    Update {
        id: String,
        url: Option<String>,
        events: Option<BTreeSet<String>>,
    },
    /// Rotate the signing secret and store the new one (the old one as previous).
    Rotate { id: String, cause: RotateCause },
    /// Disable this webhook (feature off, object deleted, or a duplicate of ours).
    Disable { id: String },
}

/// What to do, given the desired webhook, HollyHR's webhooks, what is held of the secret in the
/// owned Secret, and a due rotation (scheduled or requested), if any.
pub fn decide(
    desired: Option<&Desired>,
    name: &str,
    webhooks: &[Webhook],
    held: &HeldView,
    due: Option<RotateCause>,
) -> Vec<Registration> {
    let mut ours: Vec<&Webhook> = webhooks.iter().filter(|w| w.name == name).collect();
    // The oldest is the one kept; any other with our name is a duplicate.
    ours.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let active = |w: &&&Webhook| w.status == WebhookStatus::Active;
    let Some(desired) = desired else {
        return ours
            .iter()
            .filter(active)
            .map(|w| Registration::Disable { id: w.id.clone() })
            .collect();
    };
    let Some((kept, duplicates)) = ours.split_first() else {
        return vec![Registration::Create];
    };
    let mut steps: Vec<Registration> = duplicates
        .iter()
        .filter(active)
        .map(|w| Registration::Disable { id: w.id.clone() })
        .collect();
    let events: BTreeSet<String> = kept.subscribed_events.iter().map(event_name).collect();
    let url = (kept.url != desired.url).then(|| desired.url.clone());
    let events = (events != desired.events).then(|| desired.events.clone());
    if url.is_some() || events.is_some() {
        steps.push(Registration::Update {
            id: kept.id.clone(),
            url,
            events,
        });
    }
    let cause = if held.last_four.as_deref() != Some(kept.secret_last_four.as_str()) {
        Some(RotateCause::Recover)
    } else {
        due
    };
    if let Some(cause) = cause {
        steps.push(Registration::Rotate {
            id: kept.id.clone(),
            cause,
        });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::rotation_due;

    fn spec(webhook: serde_json::Value) -> PeopleSyncSpec {
        serde_json::from_value(serde_json::json!({
            "source": {"hollyhr": {"baseUrl": "https://acme.hollyhr.com/api/v1", "apiKeySecretRef": {"name": "h", "key": "k"}}},
            "target": {"scim": {"baseUrl": "https://scim.example.com/v2", "tokenSecretRef": {"name": "s", "key": "t"}}},
            "webhook": webhook
        }))
        .expect("a spec")
    }

    fn webhook(id: &str, name: &str, url: &str, created: i64, last_four: &str) -> Webhook {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": name, "url": url, "status": "active",
            "subscribed_events": DEFAULT_EVENTS, "secret_last_four": last_four,
            "previous_secret_expires_at": null, "last_tested_at": null, "disabled_at": null,
            "created_at": jiff::Timestamp::from_second(created).expect("a time"),
            "updated_at": jiff::Timestamp::from_second(created).expect("a time"),
        }))
        .expect("a webhook")
    }

    fn enabled() -> Desired {
        desired(
            &spec(serde_json::json!({"enabled": true, "publicUrl": "https://hooks.example.com/"})),
            "team",
            "acme",
        )
        .expect("enabled")
    }

    fn held(last_four: &str) -> HeldView {
        HeldView {
            last_four: Some(last_four.into()),
            ..HeldView::default()
        }
    }

    const URL: &str = "https://hooks.example.com/hooks/team/acme";
    const NAME: &str = "peoplesync-team-acme";

    #[test]
    fn the_desired_webhook_has_a_deterministic_name_url_and_the_default_events() {
        let desired = enabled();
        assert_eq!(desired.name, NAME);
        assert_eq!(desired.url, URL);
        assert_eq!(desired.events.len(), 8);
        assert!(desired.events.contains("org_unit.archived"));
        assert_eq!(
            super::desired(&spec(serde_json::json!({"enabled": false})), "team", "acme"),
            None
        );
    }

    #[test]
    fn nothing_with_our_name_is_created_and_a_matching_one_with_our_secret_is_left_alone() {
        let other = webhook("wh_other", "someone-else", URL, 1, "abcd");
        assert_eq!(
            decide(
                Some(&enabled()),
                NAME,
                std::slice::from_ref(&other),
                &HeldView::default(),
                None
            ),
            [Registration::Create]
        );
        let ours = webhook("wh_1", NAME, URL, 1, "wxyz");
        assert!(decide(Some(&enabled()), NAME, &[other, ours], &held("wxyz"), None).is_empty());
    }

    #[test]
    fn drift_is_patched_a_lost_secret_rotated_and_duplicates_disabled() {
        let drifted = webhook(
            "wh_1",
            NAME,
            "https://old.example.com/hooks/team/acme",
            1,
            "wxyz",
        );
        let duplicate = webhook("wh_2", NAME, URL, 2, "qrst");
        let steps = decide(
            Some(&enabled()),
            NAME,
            &[duplicate, drifted],
            &HeldView::default(),
            None,
        );
        assert_eq!(
            steps,
            [
                Registration::Disable { id: "wh_2".into() },
                Registration::Update {
                    id: "wh_1".into(),
                    url: Some(URL.into()),
                    events: None
                },
                Registration::Rotate {
                    id: "wh_1".into(),
                    cause: RotateCause::Recover
                },
            ]
        );
        let mismatch = decide(
            Some(&enabled()),
            NAME,
            &[webhook("wh_1", NAME, URL, 1, "wxyz")],
            &held("nope"),
            Some(RotateCause::Scheduled),
        );
        assert_eq!(
            mismatch,
            [Registration::Rotate {
                id: "wh_1".into(),
                cause: RotateCause::Recover
            }]
        );
    }

    #[test]
    fn turning_webhooks_off_or_deleting_the_object_disables_ours_only() {
        let ours = webhook("wh_1", NAME, URL, 1, "wxyz");
        let other = webhook("wh_other", "someone-else", URL, 1, "abcd");
        assert_eq!(
            decide(None, NAME, &[ours, other], &held("wxyz"), None),
            [Registration::Disable { id: "wh_1".into() }]
        );
    }

    #[test]
    fn rotation_is_due_after_the_interval_or_on_a_new_annotation_value_only() {
        let day = std::time::Duration::from_secs(86_400);
        let at = |s: i64| jiff::Timestamp::from_second(s).expect("a time");
        let held = HeldView {
            last_four: Some("wxyz".into()),
            rotated_at: Some(at(1_000_000)),
            handled_request: Some("one".into()),
        };
        assert_eq!(rotation_due(&held, day, None, at(1_000_000 + 86_399)), None);
        assert_eq!(
            rotation_due(&held, day, None, at(1_000_000 + 86_400)),
            Some(RotateCause::Scheduled)
        );
        assert_eq!(rotation_due(&held, day, Some("one"), at(1_000_100)), None);
        assert_eq!(
            rotation_due(&held, day, Some("two"), at(1_000_100)),
            Some(RotateCause::Requested)
        );
        // A due rotation is one step, on the kept webhook.
        let ours = webhook("wh_1", NAME, URL, 1, "wxyz");
        assert_eq!(
            decide(
                Some(&enabled()),
                NAME,
                &[ours],
                &held,
                Some(RotateCause::Requested)
            ),
            [Registration::Rotate {
                id: "wh_1".into(),
                cause: RotateCause::Requested
            }]
        );
    }

    #[test]
    fn unknown_event_names_are_reported_by_name() {
        let events: BTreeSet<String> = ["person.updated".to_owned(), "person.exploded".to_owned()]
            .into_iter()
            .collect();
        let error = event_types(&events).expect_err("unknown");
        assert!(error.contains("person.exploded"), "{error}");
        assert_eq!(
            enabled().events.len(),
            event_types(&enabled().events).expect("known").len()
        );
    }
}
