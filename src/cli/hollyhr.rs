//! `peoplesync hollyhr …`: the client against a real tenant or a sandbox.

use std::io::Write;
use std::time::Instant;

use futures::TryStreamExt;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::source::hollyhr::model::{Lifecycle, OrgUnit, Person};
use crate::source::hollyhr::{ClientConfig, HollyHrClient, PeopleQuery};

use super::table::Table;
use super::{CliError, HollyHrCommand, Output};

pub async fn run(config: ClientConfig, command: HollyHrCommand) -> Result<(), CliError> {
    let client = HollyHrClient::new(config)?;
    match command {
        HollyHrCommand::Me { output } => {
            let me = client.me().await?;
            tracing::info!(
                organisation = %me.organisation.id,
                key_id = %me.api_key.key_id,
                sandbox = me.environment.sandbox,
                "authenticated"
            );
            print_one(&me, output)
        }
        HollyHrCommand::People {
            updated_since,
            limit,
            output,
        } => {
            let query = PeopleQuery {
                limit: super::page_limit(limit)?,
                updated_since,
                sort: None,
            };
            list_people(&client, &query, output).await
        }
        HollyHrCommand::Person { id, output } => {
            let person = client.person(&id).await?;
            if let Some(etag) = &person.etag {
                eprintln!("HollyHR-Resource-ETag: {etag}");
            }
            print_one(&person.value, output)
        }
        HollyHrCommand::OrgUnits { output } => {
            let units = client.org_units().await?;
            match output {
                Output::Json | Output::Yaml => {
                    let mut out = std::io::stdout().lock();
                    for unit in &units {
                        write_record(&mut out, unit, output)?;
                    }
                    flush(&mut out)?;
                }
                Output::Table => print_org_units(&units)?,
            }
            eprintln!("{} org units", units.len());
            Ok(())
        }
    }
}

/// Streams people to stdout page by page (never the whole tenant in memory) and prints a
/// summary to stderr.
async fn list_people(
    client: &HollyHrClient,
    query: &PeopleQuery,
    output: Output,
) -> Result<(), CliError> {
    let started = Instant::now();
    let today = Timestamp::now().to_zoned(TimeZone::UTC).date();
    let table = person_table();
    let (mut people, mut pages) = (0usize, 0usize);
    let mut counts = LifecycleCounts::default();
    if output == Output::Table {
        writeln_or_quiet(&table.row(&PERSON_HEADER))?;
    }
    let mut stream = client.people_pages(query);
    while let Some(page) = stream.try_next().await? {
        pages += 1;
        people += page.data.len();
        let mut out = std::io::stdout().lock();
        for person in &page.data {
            counts.add(person.lifecycle(today));
            let written = match output {
                Output::Json | Output::Yaml => write_record(&mut out, person, output),
                Output::Table => {
                    writeln!(out, "{}", table.row(&person_row(person))).map_err(CliError::Output)
                }
            };
            if quiet_on_broken_pipe(written)? {
                return Ok(());
            }
        }
        if quiet_on_broken_pipe(flush(&mut out))? {
            return Ok(());
        }
    }
    eprintln!(
        "{people} people ({} active, {} leavers, {} future starters) in {pages} pages, {} ms",
        counts.active,
        counts.leavers,
        counts.future_starters,
        started.elapsed().as_millis()
    );
    Ok(())
}

/// People by lifecycle on one day (Decision 8).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct LifecycleCounts {
    pub active: usize,
    pub leavers: usize,
    pub future_starters: usize,
}

impl LifecycleCounts {
    pub fn add(&mut self, lifecycle: Lifecycle) {
        match lifecycle {
            Lifecycle::Active | Lifecycle::OnLeave => self.active += 1,
            Lifecycle::Leaver => self.leavers += 1,
            Lifecycle::FutureStarter => self.future_starters += 1,
        }
    }
}

pub(super) const PERSON_HEADER: [&str; 4] = ["ID", "NAME", "JOB TITLE", "DEPARTMENT"];

pub(super) fn person_table() -> Table {
    Table::new(&[12, 28, 32, 24])
}

pub(super) fn person_row(person: &Person) -> [String; 4] {
    [
        person.id.clone(),
        person.display_name.clone(),
        person.job_title.clone().unwrap_or_default(),
        person
            .department
            .as_ref()
            .map(|department| department.name.clone())
            .unwrap_or_default(),
    ]
}

fn print_org_units(units: &[OrgUnit]) -> Result<(), CliError> {
    let table = Table::new(&[40, 14, 32, 40]);
    let mut lines = vec![table.row(&["ID", "TYPE", "NAME", "PARENT"])];
    lines.extend(units.iter().map(|unit| {
        let kind = serde_json::to_value(unit.kind)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        table.row(&[
            unit.id.clone(),
            kind,
            unit.name.clone(),
            unit.parent
                .as_ref()
                .map(|parent| parent.name.clone())
                .unwrap_or_default(),
        ])
    }));
    writeln_or_quiet(&lines.join("\n"))
}

/// One record: pretty JSON, a YAML document, or for people a field per line (nested values as
/// compact JSON, absent ones as a dash).
fn print_one(value: &impl Serialize, output: Output) -> Result<(), CliError> {
    let encode = |error: String| CliError::Encode(error);
    let text = match output {
        Output::Json => serde_json::to_string_pretty(value).map_err(|e| encode(e.to_string()))?,
        Output::Yaml => {
            let text = serde_yaml_ng::to_string(value).map_err(|e| encode(e.to_string()))?;
            text.trim_end().to_owned()
        }
        Output::Table => {
            let value = serde_json::to_value(value).map_err(|e| encode(e.to_string()))?;
            fields(&value, "")
                .into_iter()
                .map(|(key, shown)| format!("{key:<32} {shown}"))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    writeln_or_quiet(&text)
}

/// A record's fields as `(dotted.key, value)` rows, nested objects flattened.
fn fields(value: &serde_json::Value, prefix: &str) -> Vec<(String, String)> {
    use serde_json::Value;
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(key, value)| {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                fields(value, &key)
            })
            .collect(),
        Value::Null => vec![(prefix.to_owned(), "—".to_owned())],
        Value::String(text) => vec![(prefix.to_owned(), text.clone())],
        other => vec![(prefix.to_owned(), other.to_string())],
    }
}

fn write_json_line(out: &mut impl Write, value: &impl Serialize) -> Result<(), CliError> {
    // Serialized first, so a closed pipe surfaces as the io error it is.
    let mut line = serde_json::to_vec(value)
        .map_err(|error| CliError::Output(std::io::Error::other(error)))?;
    line.push(b'\n');
    out.write_all(&line).map_err(CliError::Output)
}

/// One record as a JSON line or a YAML document.
fn write_record(
    out: &mut impl Write,
    value: &impl Serialize,
    output: Output,
) -> Result<(), CliError> {
    if output != Output::Yaml {
        return write_json_line(out, value);
    }
    let text = serde_yaml_ng::to_string(value)
        .map_err(|error| CliError::Output(std::io::Error::other(error)))?;
    write!(out, "---\n{text}").map_err(CliError::Output)
}

fn flush(out: &mut impl Write) -> Result<(), CliError> {
    out.flush().map_err(CliError::Output)
}

pub(super) fn writeln_or_quiet(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(CliError::Output);
    quiet_on_broken_pipe(written).map(|_| ())
}

/// `peoplesync hollyhr people | head` closes stdout early: stop quietly, not with an error.
/// Returns whether output was cut off.
fn quiet_on_broken_pipe(result: Result<(), CliError>) -> Result<bool, CliError> {
    match result {
        Ok(()) => Ok(false),
        Err(CliError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::fields;

    #[test]
    fn one_record_prints_a_field_per_line_nested_ones_dotted() {
        let record = serde_json::json!({
            "id": "per_1",
            "department": {"id": "dep_1", "name": "Finance"},
            "end_date": null,
            "fte": 0.8,
            "scopes": ["people:read"],
        });
        assert_eq!(
            fields(&record, ""),
            [
                ("department.id", "dep_1"),
                ("department.name", "Finance"),
                ("end_date", "—"),
                ("fte", "0.8"),
                ("id", "per_1"),
                ("scopes", "[\"people:read\"]"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }
}
