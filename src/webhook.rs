//! HollyHR webhook registration, decided as data (pure; the controller does the calls). Each
//! PeopleSync owns exactly one webhook, found by its deterministic name
//! `peoplesync-<namespace>-<name>`, whose URL is `publicUrl` + `/hooks/<namespace>/<name>` and
//! whose events are the spec's (or the defaults). Drift is patched; a lost or mismatched signing
//! secret is recovered by rotating; duplicates with our name are disabled; a disabled feature or a
//! deleted object disables the webhook.

pub mod personio;

use std::collections::BTreeSet;

use crate::crd::PeopleSyncSpec;
use crate::source::hollyhr::model::{EventType, Webhook, WebhookStatus};

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
    let webhook = spec.webhook.as_ref().filter(|w| w.enabled)?;
    let public = webhook.public_url.as_deref()?.trim_end_matches('/');
    let events = if webhook.events.is_empty() {
        DEFAULT_EVENTS.iter().map(|e| (*e).to_owned()).collect()
    } else {
        webhook.events.iter().cloned().collect()
    };
    Some(Desired {
        name: webhook_name(namespace, name),
        url: format!("{public}/hooks/{namespace}/{name}"),
        events,
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

/// Why the signing secret is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotateCause {
    /// No secret is held, or the held one is not the webhook's (a lost Secret, or a crash between
    /// the rotate call and the Secret write).
    Recover,
    /// `rotationInterval` passed since the last rotation.
    Scheduled,
    /// The `peoplesync.dev/rotate-webhook-secret` annotation has a value not handled yet.
    Requested,
}

impl RotateCause {
    pub fn as_str(self) -> &'static str {
        match self {
            RotateCause::Recover => "Recovered",
            RotateCause::Scheduled => "Scheduled",
            RotateCause::Requested => "Requested",
        }
    }
}

/// What PeopleSync holds of a webhook's signing secret (from the owned Secret), without the
/// secret itself: enough to decide.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldView {
    /// The last four characters of the held current secret.
    pub last_four: Option<String>,
    /// When the held secret was created or last rotated.
    pub rotated_at: Option<jiff::Timestamp>,
    /// The last handled value of the rotation annotation.
    pub handled_request: Option<String>,
}

/// When a rotation is due (scheduled or requested), given the held secret.
pub fn rotation_due(
    held: &HeldView,
    interval: std::time::Duration,
    requested: Option<&str>,
    now: jiff::Timestamp,
) -> Option<RotateCause> {
    if let Some(value) = requested.filter(|v| !v.is_empty())
        && held.handled_request.as_deref() != Some(value)
    {
        return Some(RotateCause::Requested);
    }
    let rotated = held.rotated_at?;
    let due = rotated
        .checked_add(jiff::SignedDuration::try_from(interval).ok()?)
        .ok()?;
    (due <= now).then_some(RotateCause::Scheduled)
}

/// The time the next scheduled rotation is due.
pub fn next_rotation(
    rotated_at: jiff::Timestamp,
    interval: std::time::Duration,
) -> Option<jiff::Timestamp> {
    rotated_at
        .checked_add(jiff::SignedDuration::try_from(interval).ok()?)
        .ok()
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

/// Self-healing of an endpoint HollyHR disabled (Decision 4: after 10 terminal failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remediation {
    /// The endpoint is active, or self-healing is off.
    Nothing,
    /// The receiver does not answer at its public URL yet: re-enabling would only fail again.
    ReceiverDown,
    /// An earlier attempt did not hold; the next one waits (backoff, so it never loops).
    Wait { until: jiff::Timestamp },
    /// Re-enable the endpoint and redeliver its failed deliveries.
    ReEnable,
}

/// The first wait after a re-enable that did not hold; doubled per attempt up to an hour.
pub const REMEDIATION_BACKOFF: std::time::Duration = std::time::Duration::from_secs(60);
const REMEDIATION_BACKOFF_CAP: std::time::Duration = std::time::Duration::from_secs(3600);

/// What to do about the endpoint now. `attempts` counts re-enables since the webhook was last
/// healthy; `last` is the latest of them.
pub fn remediation(
    endpoint: WebhookStatus,
    auto_remediate: bool,
    receiver_reachable: bool,
    attempts: u32,
    last: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
) -> Remediation {
    if endpoint == WebhookStatus::Active || !auto_remediate {
        return Remediation::Nothing;
    }
    if !receiver_reachable {
        return Remediation::ReceiverDown;
    }
    if let (Some(last), Some(exponent)) = (last, attempts.checked_sub(1)) {
        let wait = REMEDIATION_BACKOFF
            .saturating_mul(1u32 << exponent.min(6))
            .min(REMEDIATION_BACKOFF_CAP);
        if let Some(until) = jiff::SignedDuration::try_from(wait)
            .ok()
            .and_then(|wait| last.checked_add(wait).ok())
            && until > now
        {
            return Remediation::Wait { until };
        }
    }
    Remediation::ReEnable
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_disabled_endpoint_is_re_enabled_once_the_receiver_answers_with_a_growing_backoff() {
        let at = |s: i64| jiff::Timestamp::from_second(s).expect("a time");
        let now = at(10_000);
        let disabled = WebhookStatus::Disabled;
        assert_eq!(
            remediation(WebhookStatus::Active, true, true, 0, None, now),
            Remediation::Nothing
        );
        assert_eq!(
            remediation(disabled, false, true, 0, None, now),
            Remediation::Nothing
        );
        assert_eq!(
            remediation(disabled, true, false, 0, None, now),
            Remediation::ReceiverDown
        );
        assert_eq!(
            remediation(disabled, true, true, 0, None, now),
            Remediation::ReEnable
        );
        // One attempt a minute ago: wait a minute; three attempts: four minutes.
        assert_eq!(
            remediation(disabled, true, true, 1, Some(at(9_970)), now),
            Remediation::Wait { until: at(10_030) }
        );
        assert_eq!(
            remediation(disabled, true, true, 1, Some(at(9_940)), now),
            Remediation::ReEnable
        );
        assert_eq!(
            remediation(disabled, true, true, 3, Some(at(9_900)), now),
            Remediation::Wait { until: at(10_140) }
        );
        // Capped at an hour.
        assert_eq!(
            remediation(disabled, true, true, 30, Some(now), now),
            Remediation::Wait { until: at(13_600) }
        );
    }
}
