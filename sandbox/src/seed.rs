//! A deterministic, realistic tenant: the same `(people, seed)` gives the same people, org units
//! and manager tree (dates are relative to the sandbox's "today", so lifecycle mix stays stable).
//!
//! Mix: ~3 % leavers (ended, `end_date` in the past), ~2 % future starters, ~2 % leaving later
//! (active with a future `end_date`), the rest active. Department heads report to the CEO; teams
//! have leads who report to the department head; everyone else reports to their team lead or head.

use std::collections::HashSet;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use super::core::seed::email_local_part;
use super::core::seed::{
    Emails, LATER_PIONEER_SURNAMES, Names, PIONEER_FIRST_NAMES, PIONEER_SURNAMES, WORLD_FIRST_NAMES,
};
use super::ids;
use peoplesync::source::hollyhr::model::{
    DepartmentRef, LabelRef, OrgUnit, OrgUnitParent, OrgUnitType, Person, PersonRef, ProviderRef,
    RecordSource,
};

pub const EMAIL_DOMAIN: &str = "peoplesync-demo.example";

/// First names (the pioneers', others between and after them).
const FIRST_NAMES: Names = Names(&[
    PIONEER_FIRST_NAMES,
    &[
        "Rasmus", "Mary", "Yukihiro", "Carol", "Brian", "Annie", "Larry", "Evelyn", "Robin",
        "Jean", "Andrew", "Elena", "Marco", "Priya", "Arjun", "Mei", "Chen",
    ],
    WORLD_FIRST_NAMES,
    &[
        "Chloe", "Noah", "Emma", "Liam", "Olivia", "Ethan", "Zara", "Ibrahim", "Fatima", "Yusuf",
        "Nadia", "Pavel", "Olga", "Dmitri", "Aiko", "Haruto", "Camille", "Hugo", "Léa", "Jules",
        "Nora", "Finn", "Freya", "Oskar", "Maja", "Emil",
    ],
]);

/// Surnames (the pioneers', others after them).
const LAST_NAMES: Names = Names(&[
    PIONEER_SURNAMES,
    &[
        "Berners-Lee",
        "Johnson",
        "McCarthy",
        "Wilson",
        "Wirth",
        "Lamarr",
        "Knuth",
        "Clarke",
        "Stroustrup",
    ],
    LATER_PIONEER_SURNAMES,
    &[
        "Lerdorf",
        "Keller",
        "Matsumoto",
        "Shaw",
        "Kernighan",
        "Easley",
        "Page",
        "Boyd",
        "Milner",
        "Sammet",
        "Tanenbaum",
        "Petrova",
        "Rossi",
        "Sharma",
        "Patel",
        "Wang",
        "Li",
        "Okafor",
        "Mensah",
        "Larsen",
        "Nilsson",
        "García",
        "Fernández",
        "Khan",
        "Haddad",
        "Schmidt",
        "Müller",
        "Dubois",
        "Martin",
        "Smith",
        "Brown",
        "O'Neill",
        "Kowalski",
        "Novak",
        "Ivanova",
        "Sato",
        "Tanaka",
        "Moreau",
        "Laurent",
        "Byrne",
        "Murphy",
    ],
]);

/// (department, its division, job titles, teams)
const DEPARTMENTS: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "Engineering",
        "Technology",
        &[
            "Software Engineer",
            "Senior Software Engineer",
            "Staff Engineer",
            "Engineering Manager",
        ],
        &["Platform", "Mobile", "Web", "Infrastructure"],
    ),
    (
        "Product",
        "Technology",
        &["Product Manager", "Senior Product Manager"],
        &[],
    ),
    (
        "Design",
        "Technology",
        &["Product Designer", "UX Researcher"],
        &[],
    ),
    (
        "Data",
        "Technology",
        &["Data Analyst", "Data Engineer", "Data Scientist"],
        &["Analytics"],
    ),
    (
        "IT",
        "Technology",
        &["IT Support Specialist", "Systems Administrator"],
        &[],
    ),
    (
        "Sales",
        "Commercial",
        &["Account Executive", "Sales Development Representative"],
        &["Enterprise Sales", "SMB Sales"],
    ),
    (
        "Marketing",
        "Commercial",
        &["Marketing Manager", "Content Strategist"],
        &[],
    ),
    (
        "Customer Success",
        "Commercial",
        &["Customer Success Manager", "Support Engineer"],
        &["Support"],
    ),
    (
        "Finance",
        "Operations",
        &["Accountant", "Financial Analyst"],
        &[],
    ),
    (
        "People",
        "Operations",
        &["People Partner", "Recruiter"],
        &[],
    ),
    ("Legal", "Operations", &["Legal Counsel", "Paralegal"], &[]),
];

const DIVISIONS: &[&str] = &["Technology", "Commercial", "Operations"];
const WORK_PLACES: &[&str] = &["London HQ", "Manchester", "Berlin", "Remote"];
const WORK_TYPES: &[&str] = &["Full-time", "Part-time", "Contractor"];
/// (label, contracted weekly minutes)
const WORKING_PATTERNS: &[(&str, u32)] = &[("Standard 37.5h", 2250), ("Part-time 22.5h", 1350)];
const FULL_TIME_MINUTES: u32 = 2250;

/// The generated tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub org_units: Vec<OrgUnit>,
    pub work_places: Vec<LabelRef>,
    pub work_types: Vec<LabelRef>,
    pub working_patterns: Vec<LabelRef>,
    pub people: Vec<Person>,
    /// The team org-unit id of each person (parallel to `people`), for org links.
    pub teams: Vec<Option<String>>,
    /// Generator state after seeding: people created later through the API draw from it.
    pub rng: StdRng,
}

fn label_refs(prefix: &str, labels: impl IntoIterator<Item = &'static str>) -> Vec<LabelRef> {
    labels
        .into_iter()
        .map(|label| LabelRef {
            id: ids::encrypted_id(prefix, label),
            label: label.to_owned(),
        })
        .collect()
}

fn org_unit(
    kind: OrgUnitType,
    name: &str,
    code: &str,
    parent: Option<&OrgUnit>,
    created_at: Timestamp,
) -> OrgUnit {
    OrgUnit {
        id: ids::encrypted_id("org_unit", name),
        kind,
        name: name.to_owned(),
        code: Some(code.to_owned()),
        description: Some(format!("The {name} {}", kind_label(kind))),
        parent: parent.map(|p| OrgUnitParent {
            id: p.id.clone(),
            kind: p.kind,
            name: p.name.clone(),
            code: p.code.clone(),
        }),
        active_from: Date::constant(2015, 1, 1),
        active_to: None,
        is_archived: false,
        archived_at: None,
        source: RecordSource::Manual,
        provider: ProviderRef::default(),
        created_at,
        updated_at: created_at,
    }
}

fn kind_label(kind: OrgUnitType) -> &'static str {
    match kind {
        OrgUnitType::Department => "department",
        OrgUnitType::Team => "team",
        OrgUnitType::Division => "division",
        OrgUnitType::CostCentre => "cost centre",
        OrgUnitType::LegalEntity => "legal entity",
        OrgUnitType::LocationGroup => "location group",
    }
}

fn code_of(name: &str) -> String {
    name.split_whitespace()
        .map(|word| word.chars().take(3).collect::<String>())
        .collect::<String>()
        .to_uppercase()
}

/// Generates `count` people and the org structure around them.
pub fn generate(count: usize, seed: u64, now: Timestamp) -> Tenant {
    let mut rng = StdRng::seed_from_u64(seed);
    let today = super::core::clock::today(now);
    let epoch = now - SignedDuration::from_hours(24 * 365 * 3);

    // Org units: legal entity → divisions → departments → teams.
    let mut org_units = Vec::new();
    let company = org_unit(
        OrgUnitType::LegalEntity,
        "PeopleSync Demo Ltd",
        "PSD",
        None,
        epoch,
    );
    org_units.push(company.clone());
    let divisions: Vec<OrgUnit> = DIVISIONS
        .iter()
        .map(|name| {
            org_unit(
                OrgUnitType::Division,
                name,
                &code_of(name),
                Some(&company),
                epoch,
            )
        })
        .collect();
    org_units.extend(divisions.iter().cloned());
    // (department unit, titles, team units)
    let mut departments: Vec<(OrgUnit, &[&str], Vec<OrgUnit>)> = Vec::new();
    for (name, division, titles, teams) in DEPARTMENTS {
        let parent = divisions
            .iter()
            .find(|d| d.name == *division)
            .expect("every department names a listed division");
        let dept = org_unit(
            OrgUnitType::Department,
            name,
            &code_of(name),
            Some(parent),
            epoch,
        );
        let team_units: Vec<OrgUnit> = teams
            .iter()
            .map(|team| org_unit(OrgUnitType::Team, team, &code_of(team), Some(&dept), epoch))
            .collect();
        org_units.push(dept.clone());
        org_units.extend(team_units.iter().cloned());
        departments.push((dept, titles, team_units));
    }

    let work_places = label_refs("wp", WORK_PLACES.iter().copied());
    let work_types = label_refs("wt", WORK_TYPES.iter().copied());
    let working_patterns = label_refs("working_pattern", WORKING_PATTERNS.iter().map(|(l, _)| *l));

    let mut people: Vec<Person> = Vec::with_capacity(count);
    let mut used_ids = HashSet::with_capacity(count);
    let mut emails = Emails::new(EMAIL_DOMAIN, count);
    // Head of each department and lead of each team: index into `people`.
    let mut dept_heads: Vec<Option<usize>> = vec![None; departments.len()];
    let mut team_leads: Vec<Vec<Option<usize>>> = departments
        .iter()
        .map(|(_, _, teams)| vec![None; teams.len()])
        .collect();
    let mut ceo: Option<usize> = None;
    let mut teams: Vec<Option<String>> = Vec::with_capacity(count);

    for index in 0..count {
        let id = loop {
            let candidate = ids::person_id(rng.random::<u64>());
            if used_ids.insert(candidate.clone()) {
                break candidate;
            }
        };
        let first = FIRST_NAMES.pick(&mut rng);
        let last = LAST_NAMES.pick(&mut rng);
        let preferred =
            (rng.random_ratio(1, 20)).then(|| first.chars().take(3).collect::<String>());
        let email = emails.unique(first, last);

        // Placement: the first person is the CEO; the next ones become department heads, then
        // team leads, then everyone is spread over departments and teams.
        let (dept_index, team_index, title, manager): (
            usize,
            Option<usize>,
            String,
            Option<usize>,
        ) = if index == 0 {
            ceo = Some(0);
            (
                departments.len() - 1,
                None,
                "Chief Executive Officer".into(),
                None,
            )
        } else if let Some(d) = dept_heads.iter().position(Option::is_none) {
            dept_heads[d] = Some(index);
            let title = format!("Head of {}", departments[d].0.name);
            (d, None, title, ceo)
        } else if let Some((d, t)) = team_leads
            .iter()
            .enumerate()
            .find_map(|(d, teams)| teams.iter().position(Option::is_none).map(|t| (d, t)))
        {
            team_leads[d][t] = Some(index);
            let title = format!("{} Lead", departments[d].2[t].name);
            (d, Some(t), title, dept_heads[d])
        } else {
            let d = rng.random_range(0..departments.len());
            let teams = &departments[d].2;
            let t = (!teams.is_empty() && rng.random_ratio(3, 4))
                .then(|| rng.random_range(0..teams.len()));
            let titles = departments[d].1;
            let title = titles[rng.random_range(0..titles.len())].to_owned();
            let manager = t.and_then(|t| team_leads[d][t]).or(dept_heads[d]);
            (d, t, title, manager)
        };

        let roll = rng.random_range(0..100u32);
        let tenure_days = rng.random_range(30..3650i64);
        let mut start = today.checked_sub(tenure_days.days()).unwrap_or(today);
        let mut end = None;
        let mut status = "active";
        // The leadership (first rows) stays active so the manager tree has a root.
        if index > departments.len() * 3 {
            match roll {
                0..=2 => {
                    end = today.checked_sub(rng.random_range(1..400i64).days()).ok();
                    status = "inactive";
                }
                3..=4 => {
                    start = today
                        .checked_add(rng.random_range(1..90i64).days())
                        .unwrap_or(today)
                }
                5..=6 => end = today.checked_add(rng.random_range(1..60i64).days()).ok(),
                _ => {}
            }
        }
        if let Some(e) = end
            && e < start
        {
            start = e.checked_sub(365.days()).unwrap_or(e);
        }

        let part_time = rng.random_ratio(1, 8);
        let pattern = usize::from(part_time);
        let work_type = if part_time {
            1
        } else if rng.random_ratio(1, 25) {
            2
        } else {
            0
        };
        let created_at =
            epoch + SignedDuration::from_millis(rng.random_range(0..(3 * 365 * 86_400_000i64)));
        let updated_at = created_at
            + SignedDuration::from_millis(
                rng.random_range(0..(now.duration_since(created_at).as_millis() as i64).max(1)),
            );
        let display_name = format!("{} {last}", preferred.as_deref().unwrap_or(first));
        let contracted = WORKING_PATTERNS[pattern].1;
        let dept = &departments[dept_index].0;
        people.push(Person {
            id,
            work_email: Some(email),
            first_name: Some(first.to_owned()),
            preferred_name: preferred,
            last_name: Some(last.to_owned()),
            display_name,
            staff_id: Some(format!("E{:05}", index + 1)),
            job_title: Some(title),
            department: Some(DepartmentRef {
                id: dept.id.clone(),
                name: dept.name.clone(),
            }),
            manager: manager.map(|m| PersonRef {
                id: people[m].id.clone(),
                display_name: people[m].display_name.clone(),
            }),
            work_place: Some(work_places[rng.random_range(0..work_places.len())].clone()),
            work_type: Some(work_types[work_type].clone()),
            working_pattern: Some(working_patterns[pattern].clone()),
            contracted_weekly_minutes: Some(contracted),
            full_time_weekly_minutes: Some(FULL_TIME_MINUTES),
            fte: Some(f64::from(contracted) / f64::from(FULL_TIME_MINUTES)),
            status: Some(status.to_owned()),
            start_date: Some(start),
            end_date: end,
            created_at: super::core::clock::truncate_to_millis(created_at),
            updated_at: super::core::clock::truncate_to_millis(updated_at.min(now)),
            hint: Default::default(),
        });
        teams.push(team_index.map(|t| departments[dept_index].2[t].id.clone()));
    }

    Tenant {
        org_units,
        work_places,
        work_types,
        working_patterns,
        people,
        teams,
        rng,
    }
}
