//! PromQL queries (the dashboard's, the alerts') checked against what the operator really
//! exposes: parsed with a PromQL parser (`promql-parser`, GreptimeDB's port of Prometheus's
//! grammar), every metric a query selects must be in the exposition, and every label it matches
//! on, groups by or joins on must be a label of those metrics (or one Prometheus adds when it
//! scrapes: `job`, `instance`).

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};

/// Labels Prometheus attaches to every scraped series.
const SCRAPE_LABELS: [&str; 2] = ["job", "instance"];

/// The series of a text exposition: metric name (`_total`, `_bucket`, … as scraped) → the
/// label names its series carry.
#[derive(Debug, Default)]
pub struct Exposed(BTreeMap<String, BTreeSet<String>>);

impl Exposed {
    pub fn parse(exposition: &str) -> Self {
        let mut exposed = Self::default();
        for line in exposition.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (name, rest) = match line.find(['{', ' ']) {
                Some(at) => line.split_at(at),
                None => continue,
            };
            let labels = exposed.0.entry(name.to_owned()).or_default();
            if let Some(body) = rest.strip_prefix('{') {
                labels.extend(label_names(body));
            }
        }
        exposed
    }
}

/// The label names of `a="x",b="y\"z"} 1`, up to the closing brace.
fn label_names(body: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = body;
    loop {
        rest = rest.trim_start_matches(',');
        if rest.starts_with('}') || rest.is_empty() {
            return names;
        }
        let Some((name, after)) = rest.split_once("=\"") else {
            return names;
        };
        names.push(name.to_owned());
        // Skip the quoted value (backslash escapes).
        let mut escaped = false;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        rest = &after[(end + 1).min(after.len())..];
    }
}

#[derive(Default)]
struct Read {
    /// Metric names selected, with the label names their matchers use.
    selected: Vec<(String, Vec<String>)>,
    /// Label names aggregations group by and binary operators match on.
    grouped: BTreeSet<String>,
    /// A selector without a metric name.
    unnamed: Vec<String>,
}

impl ExprVisitor for Read {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let selector = match expr {
            Expr::VectorSelector(vs) => Some(vs),
            Expr::MatrixSelector(ms) => Some(&ms.vs),
            Expr::Aggregate(aggregate) => {
                if let Some(modifier) = &aggregate.modifier {
                    self.grouped
                        .extend(modifier.labels().labels.iter().cloned());
                }
                None
            }
            Expr::Binary(binary) => {
                if let Some(modifier) = &binary.modifier {
                    if let Some(matching) = &modifier.matching {
                        self.grouped
                            .extend(matching.labels().labels.iter().cloned());
                    }
                    if let Some(labels) = modifier.card.labels() {
                        self.grouped.extend(labels.labels.iter().cloned());
                    }
                }
                None
            }
            _ => None,
        };
        if let Some(vs) = selector {
            let matchers: Vec<String> = vs
                .matchers
                .matchers
                .iter()
                .chain(vs.matchers.or_matchers.iter().flatten())
                .map(|m| m.name.clone())
                .filter(|name| name != "__name__")
                .collect();
            match &vs.name {
                Some(name) => self.selected.push((name.clone(), matchers)),
                None => self.unnamed.push(vs.to_string()),
            }
        }
        Ok(true)
    }
}

/// Checks one query (Grafana's variables already substituted) against `exposed`; `Err` says
/// what is wrong. Only `peoplesync_` metrics are checked by name: a query may also read
/// Prometheus's own series.
pub fn check(query: &str, exposed: &Exposed) -> Result<(), String> {
    let expr = parser::parse(query).map_err(|e| format!("{query}: does not parse: {e}"))?;
    let mut read = Read::default();
    walk_expr(&mut read, &expr)?;
    if let Some(selector) = read.unnamed.first() {
        return Err(format!("{query}: the selector {selector} names no metric"));
    }
    let mut available: BTreeSet<String> = SCRAPE_LABELS.iter().map(|l| (*l).to_owned()).collect();
    for (name, matchers) in &read.selected {
        if !name.starts_with("peoplesync_") {
            continue;
        }
        let labels = exposed.0.get(name).ok_or_else(|| {
            format!("{query}: reads {name}, which the running operator does not expose")
        })?;
        for label in matchers {
            if !labels.contains(label) && !SCRAPE_LABELS.contains(&label.as_str()) {
                return Err(format!(
                    "{query}: matches {name} on `{label}`, which its series do not carry ({labels:?})"
                ));
            }
        }
        available.extend(labels.iter().cloned());
    }
    if read.selected.is_empty() {
        return Err(format!("{query}: reads no metric"));
    }
    for label in &read.grouped {
        if !available.contains(label) {
            return Err(format!(
                "{query}: groups or joins by `{label}`, which none of its metrics carry"
            ));
        }
    }
    Ok(())
}
