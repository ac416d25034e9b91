//! Validates real HTTP responses against the contract (`tests/fixtures/openapi-subset.yaml`, a
//! byte-for-byte copy of the official subset): the status must be documented for the operation,
//! the body must match the response schema (JSON Schema 2020-12, formats checked), and the
//! headers the contract and the Decisions promise must be there.

use std::collections::BTreeMap;

use serde_json::Value;

pub struct Contract {
    document: Value,
    /// `(method, template)` of every operation.
    operations: Vec<(String, String)>,
}

/// One response as seen on the wire.
pub struct Observed<'a> {
    pub method: &'a str,
    /// The path below `/api/v1`, without the query.
    pub path: &'a str,
    pub status: u16,
    pub headers: &'a reqwest::header::HeaderMap,
    pub body: &'a [u8],
}

impl Contract {
    pub fn load() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/openapi-subset.yaml"
        );
        let text = std::fs::read_to_string(path).expect("the contract fixture exists");
        let document: Value = serde_yaml_ng::from_str(&text).expect("the contract is YAML");
        let mut operations = Vec::new();
        for (template, item) in document["paths"].as_object().expect("paths") {
            for method in ["get", "post", "patch", "delete", "put"] {
                if item.get(method).is_some() {
                    operations.push((method.to_owned(), template.clone()));
                }
            }
        }
        Self {
            document,
            operations,
        }
    }

    /// All `(METHOD, template)` pairs of the contract.
    pub fn operations(&self) -> Vec<(String, String)> {
        self.operations
            .iter()
            .map(|(m, t)| (m.to_uppercase(), t.clone()))
            .collect()
    }

    /// The contract template a concrete path matches.
    pub fn template(&self, method: &str, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.operations
            .iter()
            .filter(|(m, _)| m.eq_ignore_ascii_case(method))
            .map(|(_, t)| t)
            .find(|template| {
                let parts: Vec<&str> = template.trim_start_matches('/').split('/').collect();
                parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(p, s)| (p.starts_with('{') && !s.is_empty()) || p == s)
            })
            .cloned()
    }

    fn resolve<'a>(&'a self, node: &'a Value) -> &'a Value {
        match node.get("$ref").and_then(Value::as_str) {
            Some(pointer) => self
                .document
                .pointer(pointer.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {pointer}")),
            None => node,
        }
    }

    /// Every way `observed` departs from the contract (empty when it conforms).
    pub fn violations(&self, observed: &Observed<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let header = |name: &str| observed.headers.get(name).and_then(|v| v.to_str().ok());
        let Some(template) = self.template(observed.method, observed.path) else {
            return vec![format!(
                "{} {} is not an operation of the contract",
                observed.method, observed.path
            )];
        };
        let operation = &self.document["paths"][&template][observed.method.to_lowercase()];
        let responses = &operation["responses"];
        let Some(response) = responses.get(observed.status.to_string()) else {
            return vec![format!(
                "{} {template}: status {} is not documented (documented: {:?})",
                observed.method,
                observed.status,
                responses
                    .as_object()
                    .map(|r| r.keys().cloned().collect::<Vec<_>>())
            )];
        };
        let response = self.resolve(response);

        // Headers every response carries (API.md §2.4, Decision 9) and those the contract lists.
        for name in [
            "x-request-id",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
        ] {
            if header(name).is_none() {
                out.push(format!("missing header {name}"));
            }
        }
        if let Some(declared) = response.get("headers").and_then(Value::as_object) {
            for name in declared.keys() {
                if header(&name.to_lowercase()).is_none() {
                    out.push(format!("missing documented header {name}"));
                }
            }
        }
        if observed.status == 429 && header("retry-after").is_none() {
            out.push("429 without Retry-After".into());
        }

        let schema = response
            .get("content")
            .and_then(|c| c.get("application/json"))
            .and_then(|c| c.get("schema"));
        match schema {
            None => {
                if !observed.body.is_empty() {
                    out.push(format!(
                        "status {} documents no body but one was sent",
                        observed.status
                    ));
                }
            }
            Some(schema) => {
                let content_type = header("content-type").unwrap_or_default();
                if !content_type.starts_with("application/json") {
                    out.push(format!(
                        "content-type {content_type:?} is not application/json"
                    ));
                }
                match serde_json::from_slice::<Value>(observed.body) {
                    Err(error) => out.push(format!("body is not JSON: {error}")),
                    Ok(body) => {
                        out.extend(self.schema_violations(schema, &body));
                        if let Some(request_id) =
                            body.pointer("/error/request_id").and_then(Value::as_str)
                            && header("x-request-id") != Some(request_id)
                        {
                            out.push("error.request_id differs from X-Request-Id".into());
                        }
                    }
                }
            }
        }
        out
    }

    /// Validates `instance` against `schema` (a `$ref` or inline schema of the document).
    pub fn schema_violations(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let mut root = match schema.get("$ref") {
            Some(reference) => serde_json::json!({ "$ref": reference }),
            None => schema.clone(),
        };
        root["$schema"] = Value::String("https://json-schema.org/draft/2020-12/schema".into());
        root["components"] = self.document["components"].clone();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .expect("the contract's schemas compile");
        validator
            .iter_errors(instance)
            .map(|error| format!("{} at {}", error, error.instance_path))
            .collect()
    }

    /// The named component schema, for validating hand-made JSON in the validator's own tests.
    pub fn component(&self, name: &str) -> Value {
        serde_json::json!({ "$ref": format!("#/components/schemas/{name}") })
    }
}

/// Counts of how often each `(METHOD template, status)` was validated.
#[derive(Default)]
pub struct Coverage(pub BTreeMap<(String, u16), usize>);

impl Coverage {
    pub fn record(&mut self, operation: String, status: u16) {
        *self.0.entry((operation, status)).or_default() += 1;
    }
}
