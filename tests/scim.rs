//! The SCIM backend against a real scim2-server (one server per test, a tenant per test), and its
//! retry and ETag handling against a scripted service provider.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::TryStreamExt;
use peoplesync::directory::scim::{ScimBackendError, ScimConfig, ScimDirectory};
use peoplesync::directory::{Attributes, Change, Directory, DirectoryError, Entry};
use peoplesync::retry::RetryPolicy;
use peoplesync::scim_server::ScimServer;
use secrecy::SecretString;
use serde_json::{Value, json};

async fn connect(server: &ScimServer, tenant: &str) -> ScimDirectory {
    ScimDirectory::connect(ScimConfig::new(
        &server.base_url_for(tenant),
        SecretString::from(server.token.clone()),
    ))
    .await
    .expect("connects")
}

fn attributes(user_name: &str, title: &str) -> Attributes {
    [
        ("userName", user_name),
        ("externalId", "p1"),
        ("displayName", "Ada Lovelace"),
        ("name.givenName", "Ada"),
        ("emails.work", user_name),
        ("title", title),
        ("enterprise.department", "R&D"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), vec![v.to_owned()]))
    .collect()
}

async fn listed(directory: &ScimDirectory) -> BTreeMap<String, Entry> {
    let entries: Vec<Entry> = directory.entries().try_collect().await.expect("lists");
    entries.into_iter().map(|e| (e.anchor.clone(), e)).collect()
}

/// A raw client for what PeopleSync must not touch.
async fn raw(
    server: &ScimServer,
    tenant: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, format!("{}{path}", server.base_url_for(tenant)))
        .bearer_auth(&server.token);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/scim+json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("sent");
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.expect("json")
}

#[tokio::test]
async fn users_are_created_updated_renamed_disabled_enabled_and_deleted() {
    let server = ScimServer::start().await.expect("scim2-server starts");
    let directory = connect(&server, "lifecycle").await;
    assert!(directory.features().patch && directory.features().etag);
    let id = directory
        .apply(&Change::Create {
            anchor: "p1".into(),
            attributes: attributes("ada@example.com", "Engineer"),
            enabled: true,
        })
        .await
        .expect("created");
    let entry = &listed(&directory).await["p1"];
    assert_eq!(entry.id, id);
    assert!(entry.enabled);
    assert_eq!(entry.attributes, attributes("ada@example.com", "Engineer"));

    let set = Attributes::from([
        ("title".to_owned(), vec!["Countess".to_owned()]),
        ("enterprise.department".to_owned(), vec![]),
    ]);
    directory
        .apply(&Change::Update {
            id: id.clone(),
            anchor: "p1".into(),
            set,
        })
        .await
        .expect("updated");
    directory
        .apply(&Change::Rename {
            id: id.clone(),
            anchor: "p1".into(),
            new_rdn_value: "ada.king@example.com".into(),
        })
        .await
        .expect("renamed");
    directory
        .apply(&Change::Disable {
            id: id.clone(),
            anchor: "p1".into(),
        })
        .await
        .expect("disabled");
    let entry = &listed(&directory).await["p1"];
    assert!(!entry.enabled);
    let mut expected = attributes("ada@example.com", "Countess");
    expected.remove("enterprise.department");
    expected.insert("userName".into(), vec!["ada.king@example.com".into()]);
    assert_eq!(entry.attributes, expected);

    directory
        .apply(&Change::Enable {
            id: id.clone(),
            anchor: "p1".into(),
        })
        .await
        .expect("enabled");
    assert!(listed(&directory).await["p1"].enabled);
    directory
        .apply(&Change::Delete {
            id: id.clone(),
            anchor: "p1".into(),
        })
        .await
        .expect("deleted");
    assert!(listed(&directory).await.is_empty());
}

#[tokio::test]
async fn users_without_our_external_id_are_never_listed_or_written() {
    let server = ScimServer::start().await.expect("scim2-server starts");
    let directory = connect(&server, "unowned").await;
    let hand_made = raw(
        &server,
        "unowned",
        reqwest::Method::POST,
        "/Users",
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "hand.made", "title": "Keep"})),
    )
    .await;
    let id = hand_made["id"].as_str().expect("an id").to_owned();
    let before = raw(
        &server,
        "unowned",
        reqwest::Method::GET,
        &format!("/Users/{id}"),
        None,
    )
    .await;
    for change in [
        Change::Update {
            id: id.clone(),
            anchor: "p1".into(),
            set: Attributes::from([("title".to_owned(), vec!["Taken".to_owned()])]),
        },
        Change::Rename {
            id: id.clone(),
            anchor: "p1".into(),
            new_rdn_value: "x".into(),
        },
        Change::Disable {
            id: id.clone(),
            anchor: "p1".into(),
        },
        Change::Delete {
            id: id.clone(),
            anchor: "p1".into(),
        },
    ] {
        let error = directory.apply(&change).await.expect_err("refused");
        assert_eq!(error.reason(), "EntryNotOwned", "{}", change.action());
        assert!(error.is_per_entry());
    }
    let after = raw(
        &server,
        "unowned",
        reqwest::Method::GET,
        &format!("/Users/{id}"),
        None,
    )
    .await;
    assert_eq!(before, after, "byte for byte, meta.version included");
    assert!(listed(&directory).await.is_empty());
    let unowned: Vec<Entry> = directory.unowned().try_collect().await.expect("lists");
    assert_eq!(unowned.len(), 1);
    assert_eq!(unowned[0].id, id);
    assert_eq!(unowned[0].attributes["userName"], ["hand.made"]);
}

#[tokio::test]
async fn a_duplicate_user_name_fails_for_that_person_only() {
    let server = ScimServer::start().await.expect("scim2-server starts");
    let directory = connect(&server, "duplicates").await;
    let create = |anchor: &str, user_name: &str| Change::Create {
        anchor: anchor.into(),
        attributes: Attributes::from([("userName".to_owned(), vec![user_name.to_owned()])]),
        enabled: true,
    };
    directory
        .apply(&create("p1", "ada"))
        .await
        .expect("created");
    let error = directory
        .apply(&create("p2", "ada"))
        .await
        .expect_err("taken");
    assert_eq!(error.reason(), "EntryExists");
    assert!(error.is_per_entry());
    assert!(error.to_string().contains("uniqueness"), "{error}");
    directory
        .apply(&create("p3", "grace"))
        .await
        .expect("the rest continue");
    assert_eq!(listed(&directory).await.len(), 2);
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let server = ScimServer::start().await.expect("scim2-server starts");
    let error = ScimDirectory::connect(ScimConfig::new(
        &server.base_url_for("auth"),
        SecretString::from("wrong".to_owned()),
    ))
    .await
    .expect_err("refused");
    assert_eq!(error.reason(), "Unauthorized");
    assert!(!error.is_per_entry());
    assert!(matches!(
        error,
        ScimBackendError::Unauthorized { status: 401 }
    ));
}

#[tokio::test]
async fn without_patch_support_updates_replace_the_whole_resource() {
    let config = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": false},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": 1000},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": true},
        "authenticationSchemes": [{"type": "oauthbearertoken", "name": "bearer", "description": "token"}]
    });
    let server = ScimServer::start_with(Some(&config)).await.expect("starts");
    let directory = connect(&server, "put").await;
    assert!(!directory.features().patch);
    let id = directory
        .apply(&Change::Create {
            anchor: "p1".into(),
            attributes: attributes("ada@example.com", "Engineer"),
            enabled: true,
        })
        .await
        .expect("created");
    directory
        .apply(&Change::Update {
            id: id.clone(),
            anchor: "p1".into(),
            set: Attributes::from([
                ("title".to_owned(), vec!["Countess".to_owned()]),
                ("name.givenName".to_owned(), vec![]),
            ]),
        })
        .await
        .expect("replaced");
    directory
        .apply(&Change::Disable {
            id,
            anchor: "p1".into(),
        })
        .await
        .expect("disabled by PUT");
    let entry = &listed(&directory).await["p1"];
    let mut expected = attributes("ada@example.com", "Countess");
    expected.remove("name.givenName");
    assert_eq!(entry.attributes, expected);
    assert!(!entry.enabled);
}

// ---------------------------------------------------------------------------------------------
// A scripted service provider: retries and ETags
// ---------------------------------------------------------------------------------------------

/// One scripted answer: status, extra headers, body.
type Reply = (u16, Vec<(&'static str, &'static str)>, Value);

/// Serves `/ServiceProviderConfig` and the token check, and answers other requests from `script` in order (status,
/// extra headers, body), counting them.
async fn scripted(script: Vec<Reply>) -> (String, Arc<AtomicUsize>) {
    use axum::response::IntoResponse;
    let script = Arc::new(std::sync::Mutex::new(script.into_iter()));
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    let app = axum::Router::new()
        .route(
            "/ServiceProviderConfig",
            axum::routing::get(|| async {
                axum::Json(json!({"patch": {"supported": true}, "etag": {"supported": true}, "filter": {"supported": true}, "bulk": {"supported": false}}))
            }),
        )
        .fallback(move |request: axum::extract::Request| {
            let script = script.clone();
            let counted = counted.clone();
            async move {
                // The token check on connect: an empty listing, not part of the script.
                if request.method() == axum::http::Method::GET && request.uri().path() == "/Users" {
                    return axum::Json(json!({"totalResults": 0, "Resources": []})).into_response();
                }
                counted.fetch_add(1, Ordering::SeqCst);
                let next = script.lock().expect("not poisoned").next();
                let (status, headers, body) = next.unwrap_or((500, vec![], json!({})));
                let mut response = (
                    axum::http::StatusCode::from_u16(status).expect("a status"),
                    axum::Json(body),
                )
                    .into_response();
                for (name, value) in headers {
                    response.headers_mut().insert(name, value.parse().expect("a header value"));
                }
                response
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, count)
}

async fn scripted_directory(url: &str) -> ScimDirectory {
    let mut config = ScimConfig::new(url, SecretString::from("t".to_owned()));
    config.retry = RetryPolicy {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_elapsed: Duration::from_secs(5),
    };
    ScimDirectory::connect(config).await.expect("connects")
}

fn create() -> Change {
    Change::Create {
        anchor: "p1".into(),
        attributes: Attributes::from([("userName".to_owned(), vec!["ada".to_owned()])]),
        enabled: true,
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_and_client_errors_are_not() {
    let created = json!({"id": "u1", "externalId": "p1"});
    let (url, count) = scripted(vec![
        (
            429,
            vec![("retry-after", "0")],
            json!({"detail": "slow down"}),
        ),
        (503, vec![], json!({})),
        (201, vec![], created),
    ])
    .await;
    let directory = scripted_directory(&url).await;
    assert_eq!(directory.apply(&create()).await.expect("third time"), "u1");
    assert_eq!(count.load(Ordering::SeqCst), 3);

    let (url, count) = scripted(vec![(
        400,
        vec![],
        json!({"scimType": "invalidValue", "detail": "bad"}),
    )])
    .await;
    let directory = scripted_directory(&url).await;
    let error = directory.apply(&create()).await.expect_err("bad request");
    assert_eq!(error.reason(), "SchemaViolation");
    assert_eq!(count.load(Ordering::SeqCst), 1, "a 400 is never retried");

    let (url, count) = scripted(vec![]).await;
    let directory = scripted_directory(&url).await;
    let error = directory.apply(&create()).await.expect_err("always 500");
    assert_eq!(error.reason(), "DirectoryUnavailable");
    assert!(!error.is_per_entry(), "a failing server stops the run");
    assert_eq!(count.load(Ordering::SeqCst), 4, "bounded attempts");
}

#[tokio::test]
async fn a_stale_etag_is_read_again_once_and_then_reported() {
    let user = json!({"id": "u1", "externalId": "p1", "userName": "ada"});
    let (url, count) = scripted(vec![
        (200, vec![("etag", "W/\"1\"")], user.clone()),
        (412, vec![], json!({"detail": "version mismatch"})),
        (200, vec![("etag", "W/\"2\"")], user.clone()),
        (204, vec![], Value::Null),
    ])
    .await;
    let directory = scripted_directory(&url).await;
    let update = Change::Update {
        id: "u1".into(),
        anchor: "p1".into(),
        set: Attributes::from([("title".to_owned(), vec!["x".to_owned()])]),
    };
    directory.apply(&update).await.expect("second read wins");
    assert_eq!(count.load(Ordering::SeqCst), 4);

    let (url, _) = scripted(vec![
        (200, vec![("etag", "W/\"1\"")], user.clone()),
        (412, vec![], json!({})),
        (200, vec![("etag", "W/\"2\"")], user),
        (412, vec![], json!({})),
    ])
    .await;
    let directory = scripted_directory(&url).await;
    let error = directory.apply(&update).await.expect_err("still stale");
    assert_eq!(error.reason(), "PreconditionFailed");
    assert!(error.is_per_entry(), "retried next cycle");
}
