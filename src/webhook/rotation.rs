//! What both sources decide alike about a webhook credential (pure): when a rotation is due,
//! why, and when an endpoint the source disabled is re-enabled.

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

/// Self-healing of an endpoint the source disabled (HollyHR: Decision 4, after 10 terminal
/// failures; Personio: a webhook found disabled).
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
    endpoint_active: bool,
    auto_remediate: bool,
    receiver_reachable: bool,
    attempts: u32,
    last: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
) -> Remediation {
    if endpoint_active || !auto_remediate {
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

/// Self-healing's re-enables since the webhook was last healthy, and the latest of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Attempts {
    pub count: u32,
    pub last: Option<jiff::Timestamp>,
}

impl Attempts {
    /// As `status.webhook` remembers them.
    pub fn from_status(previous: Option<&crate::crd::WebhookStatusInfo>) -> Self {
        Self {
            count: previous.and_then(|w| w.remediation_attempts).unwrap_or(0),
            last: previous
                .and_then(|w| w.last_remediation_time.as_ref())
                .map(|t| t.0),
        }
    }

    /// What self-healing does about a disabled endpoint now: the outcome to report, or `None`:
    /// re-enable it now (counted as an attempt).
    pub fn next(
        &mut self,
        auto_remediate: bool,
        receiver_reachable: bool,
        now: jiff::Timestamp,
    ) -> Option<super::RemediationOutcome> {
        use super::RemediationOutcome;
        match remediation(
            false,
            auto_remediate,
            receiver_reachable,
            self.count,
            self.last,
            now,
        ) {
            Remediation::Nothing => Some(RemediationOutcome::Off),
            Remediation::ReceiverDown => Some(RemediationOutcome::ReceiverDown),
            Remediation::Wait { until } => Some(RemediationOutcome::Waiting { until }),
            Remediation::ReEnable => {
                self.count = self.count.saturating_add(1);
                self.last = Some(now);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_endpoint_is_re_enabled_once_the_receiver_answers_with_a_growing_backoff() {
        let at = |s: i64| jiff::Timestamp::from_second(s).expect("a time");
        let now = at(10_000);
        let disabled = false;
        assert_eq!(
            remediation(true, true, true, 0, None, now),
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
