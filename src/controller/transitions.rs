//! Lifecycle transitions at their instant (issue #29): each object's people with a transition
//! ahead ([`crate::plan::timing`]), kept beside its directory index. Every cycle folds in what it
//! read (a full cycle replaces the lot, so a restart, which begins with one, recomputes them);
//! the controller wakes the object at the earliest instant and runs a targeted cycle that
//! re-reads the people due by id, without waiting for a poll or a full cycle.

use std::collections::{BTreeSet, HashMap};

use jiff::Timestamp;

use crate::plan::timing::Transition;
use crate::sync::engine::Upcoming;

/// One object's people with a transition ahead.
#[derive(Debug, Default)]
pub struct Schedule {
    by_person: HashMap<String, (Timestamp, Transition)>,
    by_time: BTreeSet<(Timestamp, String)>,
}

impl Schedule {
    /// Folds in what a cycle read: a full cycle's list replaces everything, a partial run's
    /// updates the people it read.
    pub fn fold(&mut self, upcoming: &Upcoming) {
        if upcoming.complete {
            self.by_person.clear();
            self.by_time.clear();
        }
        for (id, next) in &upcoming.next {
            if let Some((at, _)) = self.by_person.remove(id) {
                self.by_time.remove(&(at, id.clone()));
            }
            if let Some((at, kind)) = next {
                self.by_person.insert(id.clone(), (*at, *kind));
                self.by_time.insert((*at, id.clone()));
            }
        }
    }

    /// The earliest instant ahead (or past, when a run is still to come).
    pub fn earliest(&self) -> Option<Timestamp> {
        self.by_time.first().map(|(at, _)| *at)
    }

    /// The people whose instant has come by `now`, with their instant and transition.
    pub fn due(&self, now: Timestamp) -> Vec<(String, Timestamp, Transition)> {
        self.by_time
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(at, id)| (id.clone(), *at, self.by_person[id].1))
            .collect()
    }

    /// Drops the transitions at or before `now` (a run handled them: the people were read and
    /// planned, or failed into the retry list).
    pub fn handled(&mut self, now: Timestamp) {
        while let Some((at, id)) = self.by_time.first().cloned() {
            if at > now {
                break;
            }
            self.by_time.pop_first();
            self.by_person.remove(&id);
        }
    }

    pub fn len(&self) -> usize {
        self.by_person.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_person.is_empty()
    }

    /// The person's next transition, when one is known.
    pub fn of(&self, id: &str) -> Option<(Timestamp, Transition)> {
        self.by_person.get(id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("an instant")
    }

    #[test]
    fn a_full_cycle_replaces_the_schedule_and_partial_runs_update_the_people_they_read() {
        let mut schedule = Schedule::default();
        schedule.fold(&Upcoming {
            complete: true,
            next: vec![
                (
                    "a".into(),
                    Some((ts("2026-06-16T07:00:00Z"), Transition::Disable)),
                ),
                (
                    "b".into(),
                    Some((ts("2026-06-14T14:00:00Z"), Transition::Enable)),
                ),
            ],
        });
        assert_eq!(schedule.earliest(), Some(ts("2026-06-14T14:00:00Z")));
        assert!(schedule.due(ts("2026-06-14T13:59:59Z")).is_empty());
        assert_eq!(
            schedule.due(ts("2026-06-14T14:00:00Z")),
            [(
                "b".to_owned(),
                ts("2026-06-14T14:00:00Z"),
                Transition::Enable
            )]
        );
        // A partial run read b (no transition ahead any more) and c.
        schedule.fold(&Upcoming {
            complete: false,
            next: vec![
                ("b".into(), None),
                (
                    "c".into(),
                    Some((ts("2026-06-20T00:00:00Z"), Transition::Disable)),
                ),
            ],
        });
        assert_eq!(schedule.len(), 2);
        assert_eq!(schedule.earliest(), Some(ts("2026-06-16T07:00:00Z")));
        schedule.handled(ts("2026-06-16T07:00:00Z"));
        assert_eq!(schedule.earliest(), Some(ts("2026-06-20T00:00:00Z")));
        // A full cycle replaces everything.
        schedule.fold(&Upcoming {
            complete: true,
            next: Vec::new(),
        });
        assert!(schedule.is_empty());
    }
}
