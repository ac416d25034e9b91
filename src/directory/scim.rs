//! The SCIM 2.0 backend (RFC 7643/7644) over reqwest: Users anchored by `externalId`, Groups
//! anchored the same way, PATCH (PUT where the service provider lacks it), `active: false` to
//! disable, `If-Match` when ETags are supported, and retries for 429 (`Retry-After`) and 5xx.
//!
//! Every write to an existing resource first reads it and checks that its `externalId` is the
//! anchor the change names: a user PeopleSync did not create (no `externalId`) is never written.

mod resource;

use std::time::{Duration, Instant};

use backon::Retryable;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::{
    Attributes, Change, Directory, DirectoryError, DirectoryTraits, Entry, Group, GroupChange,
};
use crate::retry::{self, RetryPolicy, Retryability};

pub use resource::{ENTERPRISE_USER, patch_operations, to_attributes, to_user};

/// Resources per page when listing (RFC 7644 §3.4.2.4 `count`).
pub const DEFAULT_PAGE_SIZE: u32 = 200;
const SCIM_JSON: &str = "application/scim+json";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// Everything the backend needs; built from the CRD spec and the token Secret.
#[derive(Clone)]
pub struct ScimConfig {
    /// The base URL that `/Users` hangs off (no trailing slash needed).
    pub base_url: String,
    pub token: SecretString,
    pub timeout: Duration,
    pub page_size: u32,
    pub retry: RetryPolicy,
    /// A PEM CA bundle trusted besides the system store (`caSecretRef`).
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for ScimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimConfig")
            .field("base_url", &self.base_url)
            .field("token", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl ScimConfig {
    pub fn new(base_url: &str, token: SecretString) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            timeout: Duration::from_secs(30),
            page_size: DEFAULT_PAGE_SIZE,
            retry: RetryPolicy::default(),
            ca_pem: None,
        }
    }

    pub fn from_spec(
        target: &crate::crd::ScimTarget,
        token: SecretString,
        ca_pem: Option<String>,
    ) -> Self {
        Self {
            ca_pem,
            ..Self::new(&target.base_url, token)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScimBackendError {
    #[error("cannot set up the connection to the SCIM service")]
    Client(#[source] crate::http::ClientError),
    #[error("failed to reach the SCIM service for {operation}")]
    Connect {
        operation: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error("the SCIM service refused the bearer token (HTTP {status})")]
    Unauthorized { status: u16 },
    #[error("failed to {operation} {resource}: HTTP {status}{}: {detail}", scim_type.as_ref().map(|t| format!(" ({t})")).unwrap_or_default())]
    Status {
        operation: &'static str,
        resource: String,
        status: u16,
        scim_type: Option<String>,
        detail: String,
        retry_after: Option<Duration>,
    },
    #[error(
        "{resource} does not carry externalId {anchor}: PeopleSync does not own it and left it untouched"
    )]
    NotOwned { resource: String, anchor: String },
    #[error(
        "failed to {operation}: the SCIM service redirected (HTTP {status}) to {location}; \
         PeopleSync does not follow redirects: set the target's baseUrl to the address that \
         answers"
    )]
    Redirected {
        operation: &'static str,
        status: u16,
        /// Scheme, host and port of the `Location` (never its path or query).
        location: String,
    },
    #[error("failed to {operation}: the response is not valid SCIM: {message}")]
    InvalidResponse {
        operation: &'static str,
        message: String,
    },
}

impl DirectoryError for ScimBackendError {
    fn reason(&self) -> &'static str {
        match self {
            ScimBackendError::Client(_) | ScimBackendError::Connect { .. } => {
                "DirectoryUnreachable"
            }
            ScimBackendError::Unauthorized { .. } => "Unauthorized",
            ScimBackendError::NotOwned { .. } => "EntryNotOwned",
            ScimBackendError::InvalidResponse { .. } => "InvalidResponse",
            ScimBackendError::Redirected { .. } => "Redirected",
            ScimBackendError::Status { status, .. } => match *status {
                400 => "SchemaViolation",
                404 => "EntryMissing",
                409 => "EntryExists",
                412 => "PreconditionFailed",
                429 => "RateLimited",
                500..=599 => "DirectoryUnavailable",
                _ => "DirectoryError",
            },
        }
    }

    fn is_per_entry(&self) -> bool {
        match self {
            ScimBackendError::NotOwned { .. } => true,
            ScimBackendError::Status { status, .. } => {
                (400..500).contains(status) && ![401, 403, 429].contains(status)
            }
            _ => false,
        }
    }
}

fn classify(error: &ScimBackendError) -> Retryability {
    match error {
        ScimBackendError::Status {
            status: 429,
            retry_after,
            ..
        } => Retryability::RateLimited {
            retry_after: *retry_after,
        },
        ScimBackendError::Status { status, .. } if *status >= 500 => Retryability::Backoff,
        ScimBackendError::Connect { .. } => Retryability::Backoff,
        _ => Retryability::Never,
    }
}

/// What the service provider supports (`/ServiceProviderConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    pub patch: bool,
    pub etag: bool,
    pub filter: bool,
    pub bulk: bool,
}

/// A response: status, ETag and body (JSON or nothing).
struct Reply {
    etag: Option<String>,
    body: Value,
}

pub struct ScimDirectory {
    config: ScimConfig,
    http: reqwest::Client,
    features: Features,
}

impl std::fmt::Debug for ScimDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScimDirectory")
            .field("config", &self.config)
            .field("features", &self.features)
            .finish()
    }
}

impl ScimDirectory {
    /// Reads `/ServiceProviderConfig` and proves the token works (the config itself may be
    /// served without authentication, RFC 7644 §4).
    pub async fn connect(config: ScimConfig) -> Result<Self, ScimBackendError> {
        // Shared by every target with the same timeout (one pool per service provider host).
        // Redirects are not followed: one would carry the bearer token, or turn a write into a
        // GET elsewhere (301/302 on a POST), and SCIM has no use for them. A 3xx is an error
        // that names where it pointed.
        let http = crate::http::client(&crate::http::Settings {
            ca_pem: config.ca_pem.clone(),
            ..crate::http::Settings::new(config.timeout)
        })
        .map_err(ScimBackendError::Client)?;
        let mut directory = Self {
            config,
            http,
            features: Features::default(),
        };
        directory.features = directory.read_features().await?;
        directory.check().await?;
        Ok(directory)
    }

    pub fn features(&self) -> Features {
        self.features
    }

    async fn read_features(&self) -> Result<Features, ScimBackendError> {
        let reply = self
            .send(
                "read the service provider config",
                Method::GET,
                "/ServiceProviderConfig",
                None,
                None,
            )
            .await?;
        let supported = |name: &str| reply.body[name]["supported"].as_bool().unwrap_or(false);
        Ok(Features {
            patch: supported("patch"),
            etag: supported("etag"),
            filter: supported("filter"),
            bulk: supported("bulk"),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.base_url)
    }

    /// One request with retries (429 honouring `Retry-After`, 5xx and network errors with
    /// jittered backoff, bounded attempts and total time; other statuses never).
    async fn send(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, ScimBackendError> {
        let policy = &self.config.retry;
        let started = Instant::now();
        (|| self.send_once(operation, method.clone(), path, body, if_match))
            .retry(policy.backoff())
            .sleep(tokio::time::sleep)
            .when(|error| classify(error) != Retryability::Never)
            .adjust(|error, backoff| {
                retry::next_delay(classify(error), backoff, started.elapsed(), policy)
            })
            .notify(|error, wait| {
                tracing::warn!(
                    operation,
                    reason = error.reason(),
                    wait_ms = wait.as_millis() as u64,
                    "SCIM request failed; retrying"
                );
            })
            .await
    }

    async fn send_once(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, ScimBackendError> {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(self.config.token.expose_secret())
            .header(reqwest::header::ACCEPT, SCIM_JSON);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, SCIM_JSON)
                .body(body.to_string());
        }
        if let Some(etag) = if_match.filter(|_| self.features.etag) {
            request = request.header(reqwest::header::IF_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .map_err(|source| ScimBackendError::Connect { operation, source })?;
        let status = response.status();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header(reqwest::header::ETAG);
        let location = header(reqwest::header::LOCATION);
        let retry_after = header(reqwest::header::RETRY_AFTER)
            .and_then(|v| retry::parse_retry_after(&v, jiff::Timestamp::now()));
        let bytes = crate::http::read_limited(response, crate::http::BODY_LIMIT)
            .await
            .map_err(|source| ScimBackendError::Connect { operation, source })?
            .ok_or_else(|| ScimBackendError::InvalidResponse {
                operation,
                message: crate::http::TOO_LARGE.into(),
            })?;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if status.is_redirection() {
            return Err(ScimBackendError::Redirected {
                operation,
                status: status.as_u16(),
                location: location
                    .map_or_else(|| "nowhere (no Location)".to_owned(), |l| origin(&l)),
            });
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ScimBackendError::Unauthorized {
                status: status.as_u16(),
            });
        }
        if !status.is_success() {
            let detail: String = body["detail"]
                .as_str()
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error"))
                .chars()
                .take(200)
                .collect();
            return Err(ScimBackendError::Status {
                operation,
                resource: path.to_owned(),
                status: status.as_u16(),
                scim_type: body["scimType"].as_str().map(str::to_owned),
                detail,
                retry_after,
            });
        }
        let etag = etag.or_else(|| body["meta"]["version"].as_str().map(str::to_owned));
        Ok(Reply { etag, body })
    }

    /// Every resource of `endpoint` matching `filter`, page by page (`startIndex`/`count`).
    fn list(
        &self,
        operation: &'static str,
        endpoint: &'static str,
        filter: Option<String>,
    ) -> BoxStream<'_, Result<Value, ScimBackendError>> {
        let filter = filter.filter(|_| self.features.filter);
        let page_size = self.config.page_size.max(1);
        futures::stream::unfold(Some(1u64), move |next| {
            let filter = filter.clone();
            async move {
                let start = next?;
                let mut path = format!("{endpoint}?startIndex={start}&count={page_size}");
                if let Some(filter) = &filter {
                    path.push_str("&filter=");
                    path.push_str(
                        &url::form_urlencoded::byte_serialize(filter.as_bytes())
                            .collect::<String>(),
                    );
                }
                let reply = match self.send(operation, Method::GET, &path, None, None).await {
                    Ok(reply) => reply,
                    Err(error) => return Some((vec![Err(error)], None)),
                };
                let resources = reply.body["Resources"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let total = reply.body["totalResults"].as_u64().unwrap_or(0);
                let seen = start - 1 + resources.len() as u64;
                let next = (!resources.is_empty() && seen < total).then_some(seen + 1);
                Some((resources.into_iter().map(Ok).collect::<Vec<_>>(), next))
            }
        })
        .flat_map(futures::stream::iter)
        .boxed()
    }

    /// The resources of `endpoint` matching `filter` that `convert` accepts.
    fn list_as<T: Send + 'static>(
        &self,
        operation: &'static str,
        endpoint: &'static str,
        filter: &str,
        convert: fn(&Value) -> Option<T>,
    ) -> BoxStream<'_, Result<T, ScimBackendError>> {
        self.list(operation, endpoint, Some(filter.to_owned()))
            .filter_map(move |resource| {
                std::future::ready(match resource {
                    Err(error) => Some(Err(error)),
                    Ok(resource) => convert(&resource).map(Ok),
                })
            })
            .boxed()
    }

    /// Reads a resource and checks that its `externalId` is `anchor`; returns its ETag and body.
    async fn owned(&self, path: &str, anchor: &str) -> Result<Reply, ScimBackendError> {
        let reply = self.send("read", Method::GET, path, None, None).await?;
        if reply.body["externalId"].as_str() != Some(anchor) {
            return Err(ScimBackendError::NotOwned {
                resource: path.to_owned(),
                anchor: anchor.to_owned(),
            });
        }
        Ok(reply)
    }

    /// Changes an owned resource: PATCH with `operations`, or (without PATCH support) PUT of the
    /// read resource with `put` applied. A stale ETag (someone wrote in between) is re-read once.
    async fn write_owned(
        &self,
        path: &str,
        anchor: &str,
        operations: Vec<Value>,
        put: impl Fn(&mut Value),
    ) -> Result<(), ScimBackendError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.owned(path, anchor).await?;
            let result = if self.features.patch {
                let body = json!({"schemas": [PATCH_OP], "Operations": operations});
                self.send(
                    "patch",
                    Method::PATCH,
                    path,
                    Some(&body),
                    current.etag.as_deref(),
                )
                .await
            } else {
                let mut body = current.body.clone();
                if let Some(object) = body.as_object_mut() {
                    object.remove("meta");
                }
                put(&mut body);
                self.send(
                    "replace",
                    Method::PUT,
                    path,
                    Some(&body),
                    current.etag.as_deref(),
                )
                .await
            };
            match result {
                Err(ScimBackendError::Status { status: 412, .. }) if attempt < 2 => continue,
                other => return other.map(|_| ()),
            }
        }
    }

    /// Deletes an owned resource (with `If-Match` of the ownership read).
    async fn delete_owned(
        &self,
        operation: &'static str,
        path: &str,
        anchor: &str,
    ) -> Result<(), ScimBackendError> {
        let current = self.owned(path, anchor).await?;
        self.send(
            operation,
            Method::DELETE,
            path,
            None,
            current.etag.as_deref(),
        )
        .await
        .map(|_| ())
    }

    fn id_of(operation: &'static str, body: &Value) -> Result<String, ScimBackendError> {
        body["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or(ScimBackendError::InvalidResponse {
                operation,
                message: "no id in the created resource".into(),
            })
    }

    fn group_of(value: &Value) -> Option<Group> {
        Some(Group {
            id: value["id"].as_str()?.to_owned(),
            anchor: value["externalId"].as_str()?.to_owned(),
            name: value["displayName"].as_str().unwrap_or_default().to_owned(),
            members: value["members"]
                .as_array()
                .map(|members| {
                    members
                        .iter()
                        .filter_map(|m| m["value"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// `{endpoint}/{id}` with the id percent-encoded as one path segment: an id is the service's to
/// choose, and one like `../Groups/x?y` must still name a resource under `endpoint`. An empty
/// id, `.` or `..` cannot name one (URLs resolve them, even percent-encoded): refused.
fn resource_path(endpoint: &str, id: &str) -> Result<String, ScimBackendError> {
    if matches!(id, "" | "." | "..") {
        return Err(ScimBackendError::InvalidResponse {
            operation: "address a resource",
            message: format!("the id {id:?} cannot name a resource under {endpoint}"),
        });
    }
    let mut url = url::Url::parse("http://x/").expect("a constant URL");
    url.path_segments_mut()
        .expect("an http URL has segments")
        .push(id);
    Ok(format!("{endpoint}{}", url.path()))
}

/// A `Location` shown in an error: its origin only (a path or query may carry anything).
fn origin(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => "a relative or invalid address".to_owned(),
    }
}

fn members_json(members: &std::collections::BTreeSet<String>) -> Value {
    Value::Array(members.iter().map(|id| json!({"value": id})).collect())
}

impl Directory for ScimDirectory {
    type Error = ScimBackendError;

    fn traits(&self) -> DirectoryTraits {
        DirectoryTraits {
            rdn_attribute: Some("userName".into()),
            rename_changes_id: false,
            disable_changes_id: false,
            manager_attribute: Some("enterprise.manager".into()),
            groups: true,
            group_name_max: None,
            marking: None,
        }
    }

    async fn check(&self) -> Result<(), ScimBackendError> {
        self.send(
            "list users",
            Method::GET,
            "/Users?startIndex=1&count=1",
            None,
            None,
        )
        .await?;
        Ok(())
    }

    fn entries(&self) -> BoxStream<'_, Result<Entry, ScimBackendError>> {
        // Without filter support the listing holds unowned users too: `to_entry` skips them.
        self.list_as("list users", "/Users", "externalId pr", resource::to_entry)
    }

    fn unowned(&self) -> BoxStream<'_, Result<Entry, ScimBackendError>> {
        self.list_as(
            "list users",
            "/Users",
            "not (externalId pr)",
            resource::to_unowned,
        )
    }

    async fn apply(&self, change: &Change) -> Result<String, ScimBackendError> {
        match change {
            Change::Create {
                anchor,
                attributes,
                enabled,
            } => {
                let body = to_user(attributes, anchor, *enabled);
                let reply = self
                    .send("create user", Method::POST, "/Users", Some(&body), None)
                    .await?;
                Self::id_of("create user", &reply.body)
            }
            Change::Update { id, anchor, set } => {
                let path = resource_path("/Users", id)?;
                self.write_owned(&path, anchor, patch_operations(set), |user| {
                    resource::apply_attributes(user, set)
                })
                .await?;
                Ok(id.clone())
            }
            Change::Rename {
                id,
                anchor,
                new_rdn_value,
            } => {
                let path = resource_path("/Users", id)?;
                let set = Attributes::from([("userName".to_owned(), vec![new_rdn_value.clone()])]);
                self.write_owned(&path, anchor, patch_operations(&set), |user| {
                    resource::apply_attributes(user, &set)
                })
                .await?;
                Ok(id.clone())
            }
            Change::Disable { id, anchor } | Change::Enable { id, anchor } => {
                let active = matches!(change, Change::Enable { .. });
                let path = resource_path("/Users", id)?;
                let operations = vec![json!({"op": "replace", "path": "active", "value": active})];
                self.write_owned(&path, anchor, operations, |user| {
                    user["active"] = Value::Bool(active);
                })
                .await?;
                Ok(id.clone())
            }
            Change::Adopt { id, anchor } => {
                let path = resource_path("/Users", id)?;
                let current = self.send("read", Method::GET, &path, None, None).await?;
                if current.body["externalId"].is_string() {
                    return Err(ScimBackendError::NotOwned {
                        resource: path,
                        anchor: anchor.clone(),
                    });
                }
                let result = if self.features.patch {
                    let body = json!({"schemas": [PATCH_OP], "Operations": [
                        {"op": "add", "path": "externalId", "value": anchor}
                    ]});
                    self.send(
                        "adopt",
                        Method::PATCH,
                        &path,
                        Some(&body),
                        current.etag.as_deref(),
                    )
                    .await
                } else {
                    let mut body = current.body.clone();
                    if let Some(object) = body.as_object_mut() {
                        object.remove("meta");
                    }
                    body["externalId"] = Value::String(anchor.clone());
                    self.send(
                        "adopt",
                        Method::PUT,
                        &path,
                        Some(&body),
                        current.etag.as_deref(),
                    )
                    .await
                };
                result?;
                Ok(id.clone())
            }
            Change::Delete { id, anchor } => {
                self.delete_owned("delete user", &resource_path("/Users", id)?, anchor)
                    .await?;
                Ok(id.clone())
            }
        }
    }

    fn groups(&self) -> BoxStream<'_, Result<Group, ScimBackendError>> {
        self.list_as("list groups", "/Groups", "externalId pr", Self::group_of)
    }

    async fn apply_group(&self, change: &GroupChange) -> Result<String, ScimBackendError> {
        match change {
            GroupChange::Create {
                anchor,
                name,
                members,
            } => {
                let body = json!({
                    "schemas": [GROUP],
                    "externalId": anchor,
                    "displayName": name,
                    "members": members_json(members),
                });
                let reply = self
                    .send("create group", Method::POST, "/Groups", Some(&body), None)
                    .await?;
                Self::id_of("create group", &reply.body)
            }
            GroupChange::SetMembers {
                id,
                anchor,
                members,
            } => {
                let path = resource_path("/Groups", id)?;
                let value = members_json(members);
                let operations = vec![json!({"op": "replace", "path": "members", "value": value})];
                self.write_owned(&path, anchor, operations, |group| {
                    group["members"] = value.clone();
                })
                .await?;
                Ok(id.clone())
            }
            GroupChange::Rename { id, anchor, name } => {
                let path = resource_path("/Groups", id)?;
                let operations =
                    vec![json!({"op": "replace", "path": "displayName", "value": name})];
                self.write_owned(&path, anchor, operations, |group| {
                    group["displayName"] = Value::String(name.clone());
                })
                .await?;
                Ok(id.clone())
            }
            GroupChange::Delete { id, anchor } => {
                self.delete_owned("delete group", &resource_path("/Groups", id)?, anchor)
                    .await?;
                Ok(id.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_one_path_segment_under_its_endpoint_whatever_it_holds() {
        let path = |endpoint, id| resource_path(endpoint, id).expect("an addressable id");
        assert_eq!(path("/Users", "2819c223"), "/Users/2819c223");
        assert_eq!(
            path("/Users", "../Groups/x?y=1#z"),
            "/Users/..%2FGroups%2Fx%3Fy=1%23z"
        );
        assert_eq!(path("/Users", "a b%2F"), "/Users/a%20b%252F");
        for id in ["", ".", ".."] {
            let error = resource_path("/Users", id).expect_err("refused");
            assert_eq!(error.reason(), "InvalidResponse");
        }
        for id in ["../Groups/x?y=1#z", "a/b/../../c", "%2e%2e", "%2E", "..."] {
            let url = url::Url::parse(&format!("http://scim.test/v2{}", path("/Users", id)))
                .expect("a URL");
            assert_eq!(
                url.path_segments().expect("segments").count(),
                3,
                "{id}: {url}"
            );
            assert!(url.path().starts_with("/v2/Users/"), "{id}: {url}");
            assert_eq!(url.query(), None, "{id}");
        }
    }

    #[test]
    fn a_redirect_names_the_origin_it_pointed_to_only() {
        assert_eq!(
            origin("https://evil.example:8443/steal?token=abc"),
            "https://evil.example:8443"
        );
        assert_eq!(origin("/elsewhere"), "a relative or invalid address");
    }

    #[test]
    fn client_errors_are_per_entry_and_server_and_auth_errors_are_not() {
        let status = |status: u16| ScimBackendError::Status {
            operation: "create user",
            resource: "/Users".into(),
            status,
            scim_type: None,
            detail: "x".into(),
            retry_after: None,
        };
        let cases = [
            (400, "SchemaViolation", true),
            (404, "EntryMissing", true),
            (409, "EntryExists", true),
            (412, "PreconditionFailed", true),
            (429, "RateLimited", false),
            (500, "DirectoryUnavailable", false),
            (503, "DirectoryUnavailable", false),
        ];
        for (code, reason, per_entry) in cases {
            assert_eq!(status(code).reason(), reason, "{code}");
            assert_eq!(status(code).is_per_entry(), per_entry, "{code}");
        }
        assert!(!ScimBackendError::Unauthorized { status: 401 }.is_per_entry());
        assert_eq!(classify(&status(503)), Retryability::Backoff);
        assert_eq!(classify(&status(409)), Retryability::Never);
        let mut limited = status(429);
        if let ScimBackendError::Status { retry_after, .. } = &mut limited {
            *retry_after = Some(Duration::from_secs(2));
        }
        assert_eq!(
            classify(&limited),
            Retryability::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );
    }

    #[test]
    fn the_config_never_prints_the_token() {
        let config = ScimConfig::new("https://scim.example.com/v2/", SecretString::from("s3cr3t"));
        assert_eq!(config.base_url, "https://scim.example.com/v2");
        assert!(!format!("{config:?}").contains("s3cr3t"));
    }
}
