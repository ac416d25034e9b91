//! A deterministic, realistic Personio tenant: the same `(people, seed)` gives the same persons,
//! employments and org units. Dates are relative to the sandbox's "today", so the lifecycle mix
//! stays stable whenever the tests run.
//!
//! Mix among ordinary staff: ~5 % INACTIVE (termination date in the past), ~2 % ACTIVE with a
//! future termination date, ~2 % ONBOARDING (start date in the future), ~2 % on LEAVE, ~5 %
//! EXTERNAL, ~3 % with an older, ended employment behind the current one. Department heads report
//! to the CEO, team leads to their department head, everyone else to their team lead (or head).

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::super::core::seed::{
    Emails, LATER_PIONEER_SURNAMES, Names, PIONEER_FIRST_NAMES, PIONEER_SURNAMES,
    WORLD_FIRST_NAMES, pick,
};
use peoplesync::source::personio::model::{
    CustomAttribute, Employment, IdRef, OrgUnit, OrgUnitRef, Person, Position, Termination,
};

pub const EMAIL_DOMAIN: &str = "personio-demo.example";
/// The first person id; Personio's ids are numeric strings (`"3003"`).
const FIRST_PERSON_ID: u64 = 3001;

/// A generated tenant: what the sandbox serves right after it starts or is reset.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// In id order, with `status` and `employments` filled in as the API shows them.
    pub persons: Vec<Person>,
    /// By person id, most recent first (the first one is authoritative).
    pub employments: BTreeMap<String, Vec<Employment>>,
    /// Departments (a two-level tree) and teams.
    pub org_units: Vec<OrgUnit>,
    /// Office ids (Personio v2 has no endpoint that names them).
    pub offices: Vec<String>,
}

/// First names (the pioneers', others between and after them).
const FIRST_NAMES: Names = Names(&[
    PIONEER_FIRST_NAMES,
    &[
        "Mary", "Carol", "Brian", "Elena", "Marco", "Priya", "Arjun", "Mei",
    ],
    WORLD_FIRST_NAMES,
    &["Chloé", "Noah", "Emma", "Jürgen", "Zoë"],
]);

/// Surnames (most of the pioneers', then common German and European ones).
const LAST_NAMES: Names = Names(&[
    PIONEER_SURNAMES,
    &["Johnson", "McCarthy", "Wilkes"],
    LATER_PIONEER_SURNAMES,
    &[
        "Kernighan",
        "Müller",
        "Schmidt",
        "Schneider",
        "Fischer",
        "Weber",
        "Meyer",
        "Wagner",
        "Becker",
        "Okafor",
        "Nakamura",
        "Rossi",
        "García",
        "Novak",
        "Kowalski",
        "Jensen",
        "Larsen",
        "Dubois",
        "Silva",
    ],
]);

const NICKNAMES: &[&str] = &["Sam", "Alex", "Kim", "Jo", "Max", "Charlie"];

const GENDERS: &[&str] = &["FEMALE", "MALE", "DIVERSE", "UNSPECIFIED"];

const TERMINATION_TYPES: &[&str] = &["EMPLOYEE", "AGREEMENT", "CONTRACT_EXPIRED", "RETIREMENT"];

/// `(id, name, abbreviation, parent id)`: three areas, nine departments people belong to.
const DEPARTMENTS: &[(u64, &str, &str, Option<u64>)] = &[
    (101, "Technology", "TEC", None),
    (102, "Operations", "OPS", None),
    (103, "Commercial", "COM", None),
    (111, "Engineering", "ENG", Some(101)),
    (112, "Product", "PRD", Some(101)),
    (113, "Design", "DES", Some(101)),
    (121, "Finance", "FIN", Some(102)),
    (122, "People", "PPL", Some(102)),
    (123, "Legal", "LEG", Some(102)),
    (131, "Sales", "SAL", Some(103)),
    (132, "Marketing", "MKT", Some(103)),
    (133, "Customer Success", "CS", Some(103)),
];

/// Departments people are staffed into, with a relative headcount weight.
const STAFFED: &[(u64, u32)] = &[
    (111, 30),
    (112, 8),
    (113, 5),
    (121, 6),
    (122, 5),
    (123, 3),
    (131, 18),
    (132, 9),
    (133, 16),
];

/// `(id, name, department)`: teams are their own flat hierarchy in Personio.
const TEAMS: &[(u64, &str, u64)] = &[
    (501, "Platform", 111),
    (502, "Mobile", 111),
    (503, "Web", 111),
    (504, "Data", 111),
    (505, "Discovery", 112),
    (506, "Payroll", 121),
    (507, "Recruiting", 122),
    (508, "Enterprise Sales", 131),
    (509, "SMB Sales", 131),
    (510, "Growth", 132),
    (511, "Support", 133),
    (512, "Onboarding", 133),
];

const TITLES: &[(u64, &[&str])] = &[
    (
        111,
        &[
            "Software Engineer",
            "Senior Software Engineer",
            "Site Reliability Engineer",
        ],
    ),
    (112, &["Product Manager", "Product Analyst"]),
    (113, &["Product Designer", "UX Researcher"]),
    (121, &["Accountant", "Financial Analyst"]),
    (122, &["People Partner", "Recruiter"]),
    (123, &["Legal Counsel"]),
    (
        131,
        &["Account Executive", "Sales Development Representative"],
    ),
    (132, &["Marketing Manager", "Content Strategist"]),
    (133, &["Customer Success Manager", "Support Specialist"]),
];

const OFFICES: &[&str] = &["1", "2", "3", "4", "5"];

/// A UUID (version 4 layout) from the generator, so ids are deterministic per seed.
pub fn uuid(rng: &mut StdRng) -> String {
    let mut bytes: [u8; 16] = rng.random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn millis(at: Timestamp) -> Timestamp {
    super::super::core::clock::truncate_to_millis(at)
}

/// A time on `date` during office hours, with milliseconds.
fn during(date: Date, rng: &mut StdRng) -> Timestamp {
    let at = date
        .at(
            rng.random_range(7..18),
            rng.random_range(0..60),
            rng.random_range(0..60),
            0,
        )
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    millis(at + SignedDuration::from_millis(rng.random_range(0..1000)))
}

fn days(date: Date, n: i64) -> Date {
    date.checked_add(n.days()).unwrap_or(date)
}

/// Which lifecycle an ordinary person gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Active,
    Inactive,
    LeavingLater,
    Onboarding,
    Leave,
}

struct Draft {
    id: String,
    department: u64,
    team: Option<u64>,
    title: String,
    kind: Kind,
    supervisor: Option<usize>,
}

/// The tenant for `(people, seed)` with "today" taken from `now`, and the generator's state
/// (the sandbox keeps drawing ids from it, so a run is reproducible).
pub fn generate(people: usize, seed: u64, now: Timestamp) -> (Tenant, StdRng) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5045_5253_4f4e_494f);
    let today = super::super::core::clock::today(now);
    let org_units = org_units();

    // Who is who: the CEO, department heads, team leads, then staff.
    let mut drafts: Vec<Draft> = Vec::with_capacity(people);
    let mut next_id = FIRST_PERSON_ID;
    let mut heads: BTreeMap<u64, usize> = BTreeMap::new();
    let mut leads: BTreeMap<u64, usize> = BTreeMap::new();
    let total_weight: u32 = STAFFED.iter().map(|(_, w)| w).sum();
    for index in 0..people {
        let id = next_id.to_string();
        // Gaps: people deleted long ago leave holes in the id sequence.
        next_id += 1 + u64::from(rng.random_bool(0.15)) * rng.random_range(1..4);
        let (department, team, title, supervisor) = if index == 0 {
            (102, None, "Chief Executive Officer".to_owned(), None)
        } else if index <= STAFFED.len() {
            let department = STAFFED[index - 1].0;
            heads.insert(department, index);
            let name = DEPARTMENTS
                .iter()
                .find(|d| d.0 == department)
                .map_or("Department", |d| d.1);
            (department, None, format!("Head of {name}"), Some(0))
        } else if index <= STAFFED.len() + TEAMS.len() {
            let (team, name, department) = TEAMS[index - STAFFED.len() - 1];
            leads.insert(team, index);
            let head = heads.get(&department).copied().unwrap_or(0);
            (department, Some(team), format!("{name} Lead"), Some(head))
        } else {
            let mut roll = rng.random_range(0..total_weight);
            let department = STAFFED
                .iter()
                .find(|(_, w)| {
                    let hit = roll < *w;
                    roll = roll.saturating_sub(*w);
                    hit
                })
                .map_or(111, |(d, _)| *d);
            let teams: Vec<u64> = TEAMS
                .iter()
                .filter(|t| t.2 == department)
                .map(|t| t.0)
                .collect();
            let team = (!teams.is_empty() && rng.random_bool(0.8))
                .then(|| teams[rng.random_range(0..teams.len())]);
            let titles = TITLES
                .iter()
                .find(|t| t.0 == department)
                .map_or(&["Specialist"][..], |t| t.1);
            let supervisor = team
                .and_then(|t| leads.get(&t).copied())
                .or_else(|| heads.get(&department).copied())
                .unwrap_or(0);
            (
                department,
                team,
                pick(&mut rng, titles).to_owned(),
                Some(supervisor),
            )
        };
        let leader = index <= STAFFED.len() + TEAMS.len();
        let kind = if leader {
            Kind::Active
        } else {
            match rng.random_range(0..100) {
                0..5 => Kind::Inactive,
                5..7 => Kind::LeavingLater,
                7..9 => Kind::Onboarding,
                9..11 => Kind::Leave,
                _ => Kind::Active,
            }
        };
        drafts.push(Draft {
            id,
            department,
            team,
            title,
            kind,
            supervisor,
        });
    }

    // A bulk import: some people share one `updated_at` to the millisecond.
    let import_at =
        millis(now - SignedDuration::from_hours(24 * 3) + SignedDuration::from_millis(417));
    let mut emails = Emails::new(EMAIL_DOMAIN, people);
    let mut persons = Vec::with_capacity(people);
    let mut employments = BTreeMap::new();
    for (index, draft) in drafts.iter().enumerate() {
        let first = FIRST_NAMES.pick(&mut rng).to_owned();
        let last = LAST_NAMES.pick(&mut rng).to_owned();
        let email = emails.unique(&first, &last);
        let start = match draft.kind {
            Kind::Onboarding => days(today, rng.random_range(3..45)),
            _ if index == 0 => days(today, -2900),
            _ => days(today, -rng.random_range(60..2600)),
        };
        let created_at = match draft.kind {
            Kind::Onboarding => during(days(today, -rng.random_range(2..20)), &mut rng),
            _ => during(days(start, -rng.random_range(7..30)), &mut rng),
        };
        let latest = (now - SignedDuration::from_hours(1)).max(created_at);
        let span = latest.as_millisecond() - created_at.as_millisecond();
        let mut updated_at = millis(
            Timestamp::from_millisecond(created_at.as_millisecond() + rng.random_range(0..=span))
                .unwrap_or(created_at),
        );
        if rng.random_bool(0.1) && created_at < import_at {
            updated_at = import_at;
        }
        let termination = match draft.kind {
            Kind::Inactive => {
                let ended = days(today, -rng.random_range(1..400)).max(days(start, 30));
                let ended = ended.min(days(today, -1));
                Some(termination(ended, &mut rng))
            }
            Kind::LeavingLater => Some(termination(days(today, rng.random_range(5..60)), &mut rng)),
            _ => None,
        };
        let status = match draft.kind {
            Kind::Inactive => "INACTIVE",
            Kind::Onboarding => "ONBOARDING",
            Kind::Leave => "LEAVE",
            Kind::Active | Kind::LeavingLater => "ACTIVE",
        };
        let external = !matches!(index, 0..=21) && rng.random_bool(0.05);
        let mut org = vec![OrgUnitRef {
            kind: "department".into(),
            id: draft.department.to_string(),
        }];
        if let Some(team) = draft.team {
            org.push(OrgUnitRef {
                kind: "team".into(),
                id: team.to_string(),
            });
        }
        let part_time = rng.random_bool(0.12);
        let current = Employment {
            id: uuid(&mut rng),
            status: Some(status.into()),
            kind: Some(if external { "EXTERNAL" } else { "INTERNAL" }.into()),
            position: Some(Position {
                title: Some(draft.title.clone()),
            }),
            supervisor: draft.supervisor.map(|s| IdRef::new(drafts[s].id.clone())),
            office: Some(IdRef::new(pick(&mut rng, OFFICES))),
            org_units: org,
            legal_entity: Some(IdRef::new(if external { "2" } else { "1" })),
            person: Some(IdRef::new(draft.id.clone())),
            weekly_working_hours: Some(if part_time { 24.0 } else { 40.0 }),
            full_time_weekly_working_hours: Some(40.0),
            employment_start_date: Some(start.to_string()),
            employment_end_date: termination
                .as_ref()
                .and_then(|t| t.termination_date.clone()),
            probation_end_date: Some(days(start, 182).to_string()),
            contract_end_date: (external || rng.random_bool(0.04))
                .then(|| days(today, rng.random_range(30..500)).to_string()),
            termination,
            created_at: Some(created_at),
            updated_at: Some(updated_at),
        };
        let mut list = vec![current];
        // An earlier, ended contract (a working student kept on), behind the current one.
        if draft.kind == Kind::Active && index > 21 && rng.random_bool(0.03) {
            let earlier_start = days(start, -rng.random_range(300..900));
            let ended = days(start, -1);
            let mut earlier = list[0].clone();
            earlier.id = uuid(&mut rng);
            earlier.status = Some("INACTIVE".into());
            earlier.position = Some(Position {
                title: Some("Working Student".into()),
            });
            earlier.weekly_working_hours = Some(20.0);
            earlier.employment_start_date = Some(earlier_start.to_string());
            earlier.employment_end_date = Some(ended.to_string());
            earlier.probation_end_date = None;
            earlier.contract_end_date = Some(ended.to_string());
            earlier.termination = Some(Termination {
                termination_date: Some(ended.to_string()),
                last_working_day: Some(ended.to_string()),
                terminated_at: Some(days(ended, -60).to_string()),
                kind: Some("CONTRACT_EXPIRED".into()),
                reason: Some("Fixed-term contract ended".into()),
            });
            list.push(earlier);
        }
        let preferred = rng
            .random_bool(0.08)
            .then(|| pick(&mut rng, NICKNAMES).to_owned());
        let person = Person {
            id: draft.id.clone(),
            email: Some(email),
            created_at: Some(created_at),
            updated_at: Some(updated_at),
            first_name: Some(first),
            last_name: Some(last),
            preferred_name: preferred,
            gender: Some(pick(&mut rng, GENDERS).into()),
            status: Some(person_status(list[0].status.as_deref()).into()),
            custom_attributes: {
                let mut attributes = vec![CustomAttribute {
                    id: Some("dynamic_305".into()),
                    kind: Some("STRING".into()),
                    global_id: Some("employee_number".into()),
                    label: Some("Employee number".into()),
                    value: serde_json::Value::String(format!("E{:05}", index + 1)),
                }];
                attributes.extend(private_attributes(index));
                attributes
            },
            employments: list.iter().map(|e| IdRef::new(e.id.clone())).collect(),
        };
        persons.push(person);
        employments.insert(draft.id.clone(), list);
    }
    let tenant = Tenant {
        persons,
        employments,
        org_units,
        offices: OFFICES.iter().map(|&o| o.to_owned()).collect(),
    };
    (tenant, rng)
}

fn termination(date: Date, rng: &mut StdRng) -> Termination {
    Termination {
        termination_date: Some(date.to_string()),
        last_working_day: Some(date.to_string()),
        terminated_at: Some(days(date, -rng.random_range(14..90)).to_string()),
        kind: Some(pick(rng, TERMINATION_TYPES).into()),
        reason: None,
    }
}

/// A person's status from the status of their latest employment (Personio's rule).
pub fn person_status(latest: Option<&str>) -> &'static str {
    match latest {
        Some("ACTIVE" | "LEAVE" | "ONBOARDING") => "ACTIVE",
        Some(_) => "INACTIVE",
        None => "UNSPECIFIED",
    }
}

fn org_units() -> Vec<OrgUnit> {
    let departments = DEPARTMENTS
        .iter()
        .map(|&(id, name, abbreviation, parent)| OrgUnit {
            id: id.to_string(),
            kind: "department".into(),
            name: Some(name.into()),
            abbreviation: Some(abbreviation.into()),
            description: None,
            parent_id: parent.map(|p| p.to_string()),
            parent_chain: Vec::new(),
        });
    let teams = TEAMS.iter().map(|&(id, name, _)| OrgUnit {
        id: id.to_string(),
        kind: "team".into(),
        name: Some(name.into()),
        abbreviation: None,
        description: None,
        parent_id: None,
        parent_chain: Vec::new(),
    });
    departments.chain(teams).collect()
}

/// Private attributes a real tenant's persons carry (a phone number, a date of birth, a home
/// address): PeopleSync maps none of them, and `tests/privacy.rs` checks that none ever reaches
/// a log, an Event, a status or a metric. Derived from the index, so the seeded draw (names,
/// dates, lifecycles) is the same as without them.
pub fn private_attributes(index: usize) -> Vec<CustomAttribute> {
    let attribute =
        |id: &str, kind: &str, global_id: &str, label: &str, value: String| CustomAttribute {
            id: Some(id.into()),
            kind: Some(kind.into()),
            global_id: Some(global_id.into()),
            label: Some(label.into()),
            value: serde_json::Value::String(value),
        };
    vec![
        attribute(
            "dynamic_410",
            "STRING",
            "private_phone",
            "Private phone",
            format!("+49 30 5{:07}", index + 1),
        ),
        attribute(
            "dynamic_411",
            "DATE",
            "date_of_birth",
            "Date of birth",
            format!(
                "{}-{:02}-{:02}",
                1960 + index % 40,
                index % 12 + 1,
                index % 28 + 1
            ),
        ),
        attribute(
            "dynamic_412",
            "STRING",
            "home_address",
            "Home address",
            format!("Musterweg {}, 10115 Berlin", index + 1),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::core::clock::test_now as now;

    #[test]
    fn the_same_seed_gives_the_same_tenant_with_unique_ids_and_emails() {
        let (a, _) = generate(400, 9, now());
        let (b, _) = generate(400, 9, now());
        assert_eq!(a.persons, b.persons);
        let ids: HashSet<_> = a.persons.iter().map(|p| &p.id).collect();
        let emails: HashSet<_> = a.persons.iter().map(|p| &p.email).collect();
        assert_eq!((ids.len(), emails.len()), (400, 400));
        let (other, _) = generate(400, 10, now());
        assert_ne!(a.persons, other.persons, "another seed, another tenant");
    }

    #[test]
    fn the_tenant_has_the_documented_lifecycle_mix_and_a_manager_tree() {
        let (tenant, _) = generate(1000, 42, now());
        let latest = |p: &Person| tenant.employments[&p.id][0].clone();
        let count = |status: &str| {
            tenant
                .persons
                .iter()
                .filter(|p| latest(p).status.as_deref() == Some(status))
                .count()
        };
        let (inactive, onboarding, leave) =
            (count("INACTIVE"), count("ONBOARDING"), count("LEAVE"));
        assert!((25..=80).contains(&inactive), "inactive {inactive}");
        assert!((5..=40).contains(&onboarding), "onboarding {onboarding}");
        assert!((5..=40).contains(&leave), "leave {leave}");
        let today = now().to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
        let leaving_later = tenant
            .persons
            .iter()
            .filter(|p| {
                let e = latest(p);
                e.status.as_deref() == Some("ACTIVE")
                    && e.termination
                        .and_then(|t| t.termination_date)
                        .is_some_and(|d| d > today)
            })
            .count();
        assert!(leaving_later > 0);
        assert!(tenant.persons.iter().all(|p| {
            let e = latest(p);
            e.status.as_deref() != Some("INACTIVE")
                || e.termination
                    .and_then(|t| t.termination_date)
                    .is_some_and(|d| d < today)
        }));
        let externals = tenant
            .persons
            .iter()
            .filter(|p| latest(p).kind.as_deref() == Some("EXTERNAL"))
            .count();
        assert!(externals > 0);
        assert!(tenant.employments.values().any(|list| list.len() > 1));
        let ids: HashSet<_> = tenant.persons.iter().map(|p| p.id.clone()).collect();
        assert!(tenant.persons.iter().skip(1).all(|p| {
            latest(p)
                .supervisor
                .is_some_and(|s| ids.contains(&s.id) && s.id != p.id)
        }));
        let shared = tenant
            .persons
            .iter()
            .filter(|a| {
                tenant
                    .persons
                    .iter()
                    .filter(|b| b.updated_at == a.updated_at)
                    .count()
                    > 1
            })
            .count();
        assert!(shared > 10, "some people share one updated_at ({shared})");
        assert!(tenant.persons.iter().all(|p| {
            p.updated_at
                .is_some_and(|u| u < now() && Some(u) >= p.created_at)
        }));
    }
}
