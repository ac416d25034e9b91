//! When lifecycle transitions happen: a person's first day starts (the account is enabled) and
//! last day ends (it is disabled) at the configured hour *in their own time zone*, not at UTC
//! midnight; a future starter's account is created `provisionBefore` days ahead. Pure: the
//! planner asks [`Timing::lifecycle`] at the cycle's instant, and the controller wakes a
//! targeted cycle at each person's [`Timing::next_instant`].
//!
//! Local times that do not exist (a spring-forward gap) are taken as the first instant after
//! the gap; local times that happen twice (a fall-back fold) as the first of the two (jiff's
//! "compatible" disambiguation, as RFC 9557 and Temporal do).

use std::collections::BTreeMap;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::source::Person;
use crate::source::hollyhr::model::{Lifecycle, StatusHint};

/// When transitions happen (`spec.lifecycle`).
#[derive(Debug, Clone)]
pub struct Timing {
    /// `lifecycle.timeZone` (default UTC).
    pub zone: TimeZone,
    /// `lifecycle.timeZones`: work place (its id, or its name ignoring case) → zone.
    pub by_work_place: BTreeMap<String, TimeZone>,
    /// `lifecycle.enableAt`: the local time the first day's access starts (default 00:00).
    pub enable_at: Time,
    /// `lifecycle.disableAt`: the local time the last day's access ends; `None` (the default,
    /// `24:00`): the end of the last day, i.e. the start of the next one.
    pub disable_at: Option<Time>,
    /// `lifecycle.provisionBefore`: a future starter's (disabled) account is created this many
    /// days before the first day, at the start of that local day; `None`: as soon as HR lists
    /// them.
    pub provision_before: Option<i32>,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            zone: TimeZone::UTC,
            by_work_place: BTreeMap::new(),
            enable_at: Time::midnight(),
            disable_at: None,
            provision_before: None,
        }
    }
}

/// Which transition an instant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Transition {
    /// The future starter's disabled account is created (`provisionBefore`).
    Provision,
    /// The first day starts: the account is enabled.
    Enable,
    /// The last day ends: the account is deprovisioned.
    Disable,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Provision => "provision",
            Transition::Enable => "enable",
            Transition::Disable => "disable",
        }
    }
}

/// A person's lifecycle as timed, and whether their account exists yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timed {
    pub lifecycle: Lifecycle,
    /// A future starter whose provisioning day has not come (`provisionBefore`).
    pub too_early: bool,
}

impl Timing {
    /// The person's time zone: their work place's, or the default.
    pub fn zone_of(&self, person: &Person) -> &TimeZone {
        person
            .work_place
            .as_ref()
            .and_then(|place| {
                self.by_work_place.get(&place.id).or_else(|| {
                    self.by_work_place
                        .iter()
                        .find(|(name, _)| name.eq_ignore_ascii_case(&place.label))
                        .map(|(_, zone)| zone)
                })
            })
            .unwrap_or(&self.zone)
    }

    /// The instant `date` at `time` in `zone` (a gap moves it forward, a fold takes the first).
    fn at(zone: &TimeZone, date: Date, time: Time) -> Timestamp {
        zone.to_ambiguous_timestamp(date.to_datetime(time))
            .compatible()
            .unwrap_or(Timestamp::MAX)
    }

    /// The start of `date` in `zone` (the first instant of the day, even where midnight is
    /// skipped).
    fn start_of(zone: &TimeZone, date: Date) -> Timestamp {
        date.to_zoned(zone.clone())
            .and_then(|z| z.start_of_day())
            .map_or(Timestamp::MAX, |z| z.timestamp())
    }

    /// When the person's access starts (their first day at `enableAt`, local).
    pub fn enable_instant(&self, person: &Person) -> Option<Timestamp> {
        let start = person.start_date?;
        let zone = self.zone_of(person);
        Some(if self.enable_at == Time::midnight() {
            Self::start_of(zone, start)
        } else {
            Self::at(zone, start, self.enable_at)
        })
    }

    /// When the person's access ends (their last day at `disableAt`, or its end, local).
    pub fn disable_instant(&self, person: &Person) -> Option<Timestamp> {
        let end = person.end_date?;
        let zone = self.zone_of(person);
        Some(match self.disable_at {
            Some(time) => Self::at(zone, end, time),
            None => Self::start_of(zone, end.tomorrow().ok()?),
        })
    }

    /// When a future starter's account is created (`provisionBefore` days before the first
    /// day, at the start of that local day).
    pub fn provision_instant(&self, person: &Person) -> Option<Timestamp> {
        let days = self.provision_before?;
        let start = person.start_date?;
        let day = start.checked_sub(jiff::Span::new().days(days)).ok()?;
        Some(Self::start_of(self.zone_of(person), day))
    }

    /// The person's lifecycle at `now`, with their dates read in their time zone.
    pub fn lifecycle(&self, person: &Person, now: Timestamp) -> Timed {
        let gone = self.disable_instant(person).is_some_and(|at| now >= at);
        let not_yet = self.enable_instant(person).is_some_and(|at| now < at);
        let lifecycle = match person.hint {
            StatusHint::Inactive => Lifecycle::Leaver,
            _ if gone => Lifecycle::Leaver,
            _ if not_yet => Lifecycle::FutureStarter,
            StatusHint::OnLeave => Lifecycle::OnLeave,
            _ => Lifecycle::Active,
        };
        let too_early = lifecycle == Lifecycle::FutureStarter
            && self.provision_instant(person).is_some_and(|at| now < at);
        Timed {
            lifecycle,
            too_early,
        }
    }

    /// The person's next transition after `now`, if any.
    pub fn next_instant(&self, person: &Person, now: Timestamp) -> Option<(Timestamp, Transition)> {
        if person.hint == StatusHint::Inactive {
            return None;
        }
        [
            (self.provision_instant(person), Transition::Provision),
            (self.enable_instant(person), Transition::Enable),
            (self.disable_instant(person), Transition::Disable),
        ]
        .into_iter()
        .filter_map(|(at, kind)| Some((at?, kind)))
        .filter(|(at, _)| *at > now)
        .min()
    }
}

/// The end of a deprovision delay: when an entry disabled `since` is deleted.
pub fn delay_end(since: Timestamp, delay: SignedDuration) -> Option<Timestamp> {
    since.checked_add(delay).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).expect("a zone")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("an instant")
    }

    fn person(start: Option<&str>, end: Option<&str>) -> Person {
        let mut person = Person::sample("abcdefghjkmn", "Ada", "Lovelace");
        person.start_date = start.map(|d| d.parse().expect("a date"));
        person.end_date = end.map(|d| d.parse().expect("a date"));
        person
    }

    fn timing(zone_name: &str) -> Timing {
        Timing {
            zone: zone(zone_name),
            ..Timing::default()
        }
    }

    #[test]
    fn a_leaver_in_los_angeles_keeps_access_to_the_end_of_their_last_local_day() {
        let timing = timing("America/Los_Angeles");
        let leaver = person(None, Some("2026-06-15"));
        // The end of 15 June in Los Angeles (PDT, UTC−7) is 07:00 UTC on the 16th.
        assert_eq!(
            timing.disable_instant(&leaver),
            Some(ts("2026-06-16T07:00:00Z"))
        );
        let at = |s: &str| timing.lifecycle(&leaver, ts(s)).lifecycle;
        assert_eq!(
            at("2026-06-16T06:59:59Z"),
            Lifecycle::Active,
            "not a second early"
        );
        assert_eq!(at("2026-06-16T07:00:00Z"), Lifecycle::Leaver);
        assert_eq!(
            timing.next_instant(&leaver, ts("2026-06-15T12:00:00Z")),
            Some((ts("2026-06-16T07:00:00Z"), Transition::Disable))
        );
        assert_eq!(
            timing.next_instant(&leaver, ts("2026-06-16T07:00:00Z")),
            None
        );
    }

    #[test]
    fn a_joiner_in_sydney_starts_at_the_start_of_their_first_local_day() {
        let timing = timing("Australia/Sydney");
        let joiner = person(Some("2026-06-15"), None);
        // Midnight on 15 June in Sydney (AEST, UTC+10) is 14:00 UTC on the 14th.
        assert_eq!(
            timing.enable_instant(&joiner),
            Some(ts("2026-06-14T14:00:00Z"))
        );
        let at = |s: &str| timing.lifecycle(&joiner, ts(s)).lifecycle;
        assert_eq!(at("2026-06-14T13:59:59Z"), Lifecycle::FutureStarter);
        assert_eq!(at("2026-06-14T14:00:00Z"), Lifecycle::Active);
    }

    #[test]
    fn hours_of_day_work_places_and_provisioning_days_are_honoured() {
        let mut timing = timing("UTC");
        timing.enable_at = Time::constant(9, 0, 0, 0);
        timing.disable_at = Some(Time::constant(17, 30, 0, 0));
        timing.provision_before = Some(3);
        timing
            .by_work_place
            .insert("berlin office".into(), zone("Europe/Berlin"));
        let mut person = person(Some("2026-06-15"), Some("2026-09-30"));
        person.work_place = Some(crate::source::hollyhr::model::LabelRef {
            id: "wp1".into(),
            label: "Berlin Office".into(),
        });
        // Berlin is UTC+2 in summer.
        assert_eq!(
            timing.enable_instant(&person),
            Some(ts("2026-06-15T07:00:00Z"))
        );
        assert_eq!(
            timing.disable_instant(&person),
            Some(ts("2026-09-30T15:30:00Z"))
        );
        assert_eq!(
            timing.provision_instant(&person),
            Some(ts("2026-06-11T22:00:00Z"))
        );
        let early = timing.lifecycle(&person, ts("2026-06-11T21:59:59Z"));
        assert!(early.too_early);
        let provisioned = timing.lifecycle(&person, ts("2026-06-11T22:00:00Z"));
        assert_eq!(provisioned.lifecycle, Lifecycle::FutureStarter);
        assert!(!provisioned.too_early);
        assert_eq!(
            timing.next_instant(&person, ts("2026-06-01T00:00:00Z")),
            Some((ts("2026-06-11T22:00:00Z"), Transition::Provision))
        );
        assert_eq!(
            timing.next_instant(&person, ts("2026-06-12T00:00:00Z")),
            Some((ts("2026-06-15T07:00:00Z"), Transition::Enable))
        );
    }

    #[test]
    fn local_times_a_dst_change_skips_or_repeats_are_placed_once_and_never_early() {
        let mut timing = timing("America/Los_Angeles");
        // 8 March 2026: 02:00 PST jumps to 03:00 PDT. A 02:30 start does not exist: it moves
        // forward by the gap, to 03:30 PDT (10:30 UTC), never before the gap ends.
        timing.enable_at = Time::constant(2, 30, 0, 0);
        let joiner = person(Some("2026-03-08"), None);
        assert_eq!(
            timing.enable_instant(&joiner),
            Some(ts("2026-03-08T10:30:00Z"))
        );
        assert!(timing.enable_instant(&joiner) >= Some(ts("2026-03-08T10:00:00Z")));
        // 1 November 2026: 02:00 PDT falls back to 01:00 PST. 01:30 happens twice: the first
        // (PDT, 08:30 UTC) counts.
        timing.disable_at = Some(Time::constant(1, 30, 0, 0));
        let leaver = person(None, Some("2026-11-01"));
        assert_eq!(
            timing.disable_instant(&leaver),
            Some(ts("2026-11-01T08:30:00Z"))
        );
        // The end of a day that is 25 hours long is still the next local midnight.
        timing.disable_at = None;
        assert_eq!(
            timing.disable_instant(&leaver),
            Some(ts("2026-11-02T08:00:00Z"))
        );
        // A zone that skips midnight itself (Santiago, 6 September 2026, 00:00 → 01:00): the
        // day starts at 01:00 local.
        let santiago = timing_at("America/Santiago");
        let joiner = person(Some("2026-09-06"), None);
        assert_eq!(
            santiago.enable_instant(&joiner),
            Some(ts("2026-09-06T04:00:00Z"))
        );
    }

    fn timing_at(name: &str) -> Timing {
        timing(name)
    }

    #[test]
    fn the_time_zone_database_is_in_the_binary() {
        // The image is `FROM scratch`: no /usr/share/zoneinfo. jiff falls back to its bundle.
        let bundled = jiff::tz::TimeZoneDatabase::bundled();
        for name in [
            "America/Los_Angeles",
            "Australia/Sydney",
            "Europe/Berlin",
            "UTC",
        ] {
            assert!(bundled.get(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn without_dates_or_for_an_inactive_person_nothing_is_scheduled() {
        let timing = timing("Europe/London");
        assert_eq!(
            timing.next_instant(&person(None, None), ts("2026-06-01T00:00:00Z")),
            None
        );
        let mut gone = person(None, Some("2030-01-01"));
        gone.hint = StatusHint::Inactive;
        assert_eq!(timing.next_instant(&gone, ts("2026-06-01T00:00:00Z")), None);
        assert_eq!(
            timing
                .lifecycle(&gone, ts("2026-06-01T00:00:00Z"))
                .lifecycle,
            Lifecycle::Leaver
        );
    }
}
