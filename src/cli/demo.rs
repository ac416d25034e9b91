//! `peoplesync demo`: an in-process sandbox listed through the real client, with totals.

use std::time::Instant;

use futures::TryStreamExt;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use secrecy::SecretString;
use serde::Deserialize;

use crate::sandbox::{DEFAULT_API_KEY, SandboxConfig};
use crate::source::hollyhr::model::Person;
use crate::source::hollyhr::{ClientConfig, HollyHrClient, PageLimit, PeopleQuery};

use super::CliError;
use super::hollyhr::{LifecycleCounts, PERSON_HEADER, person_row, person_table, writeln_or_quiet};

/// People shown in the table; the rest are only counted.
const SHOWN: usize = 10;

#[derive(Deserialize)]
struct RequestLog {
    data: Vec<LoggedRequest>,
}

#[derive(Deserialize)]
struct LoggedRequest {
    method: String,
    route: String,
}

pub async fn run(people: usize, seed: u64) -> Result<(), CliError> {
    let sandbox = crate::sandbox::start(SandboxConfig {
        people,
        seed,
        ..SandboxConfig::default()
    })
    .await?;
    let config = ClientConfig::new(&sandbox.base_url(), SecretString::from(DEFAULT_API_KEY))?;
    let client = HollyHrClient::new(config)?;

    let started = Instant::now();
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    let query = PeopleQuery {
        limit: PageLimit::MAX,
        ..PeopleQuery::default()
    };
    let mut first: Vec<Person> = Vec::with_capacity(SHOWN);
    let mut counts = LifecycleCounts::default();
    let mut total = 0usize;
    let mut stream = client.people_pages(&query);
    while let Some(page) = stream.try_next().await? {
        for person in page.data {
            total += 1;
            counts.add(person.lifecycle(today));
            if first.len() < SHOWN {
                first.push(person);
            }
        }
    }
    let elapsed = started.elapsed();
    let list_requests = list_requests(&sandbox.control_url()).await?;

    let table = person_table();
    let mut lines = vec![
        format!(
            "Listed a {people}-person HollyHR sandbox through PeopleSync's client (pages of {}).",
            PageLimit::MAX.get()
        ),
        String::new(),
        table.row(&PERSON_HEADER),
    ];
    lines.extend(first.iter().map(|person| table.row(&person_row(person))));
    lines.extend([
        String::new(),
        format!("people          {total}"),
        format!("active          {}", counts.active),
        format!("leavers         {}", counts.leavers),
        format!("future starters {}", counts.future_starters),
        format!("list requests   {list_requests}"),
        format!("elapsed         {} ms", elapsed.as_millis()),
        String::new(),
        "Run the sandbox by hand:".to_owned(),
        format!("  peoplesync sandbox --people {people} --seed {seed} --listen 127.0.0.1:8080"),
        super::sandbox_usage("http://127.0.0.1:8080/api/v1", true),
    ]);
    writeln_or_quiet(&lines.join("\n"))?;
    sandbox.shutdown().await;
    Ok(())
}

/// `GET /people` requests the sandbox served: what the client really sent, retries included.
async fn list_requests(control_url: &str) -> Result<usize, CliError> {
    let log: RequestLog = reqwest::get(format!("{control_url}/requests"))
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(CliError::RequestLog)?
        .json()
        .await
        .map_err(CliError::RequestLog)?;
    Ok(log
        .data
        .iter()
        .filter(|request| request.method == "GET" && request.route == "/people")
        .count())
}
