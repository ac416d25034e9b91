//! Hostile answers (issue #17, item 5): a server that answers HollyHR's, Personio's or a SCIM
//! service's requests with a 50 MB body, invalid UTF-8 or JSON nested 100,000 deep. Each is a
//! clear error naming the request (never a panic or a stack overflow), and the client reads at
//! most `http::BODY_LIMIT` of the 50 MB: the server counts what it could send before the client
//! hung up. A SCIM service that redirects, or names resources with hostile ids and `Location`s
//! pointing at another host, never gets a request sent elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use peoplesync::directory::Directory;
use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient};

/// What the hostile server answers to every request.
#[derive(Clone, Copy)]
enum Answer {
    /// 50 MB of JSON-looking bytes, streamed in 64 KiB chunks without a Content-Length.
    Huge,
    /// The same, announced by its Content-Length.
    HugeAnnounced,
    InvalidUtf8,
    DeeplyNested,
}

const HUGE: usize = 50 * 1024 * 1024;

struct Hostile {
    url: String,
    sent: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn hostile(answer: Answer) -> Hostile {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let app = axum::Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            let json = |body: Body| {
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(body)
                    .expect("a response")
            };
            match answer {
                Answer::Huge | Answer::HugeAnnounced => {
                    let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
                    let chunks = HUGE / chunk.len();
                    let stream = futures::stream::iter(0..chunks).map(move |_| {
                        counter.fetch_add(chunk.len(), Ordering::SeqCst);
                        Ok::<_, std::io::Error>(chunk.clone())
                    });
                    let mut response = json(Body::from_stream(stream));
                    if matches!(answer, Answer::HugeAnnounced) {
                        response
                            .headers_mut()
                            .insert("content-length", HUGE.to_string().parse().expect("a value"));
                    }
                    response
                }
                Answer::InvalidUtf8 => json(Body::from(
                    b"{\"data\": [{\"id\": \"\xff\xfe\xfd\"}], \"pagination\": {}}".to_vec(),
                )),
                Answer::DeeplyNested => {
                    let depth = 100_000;
                    let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
                    json(Body::from(body))
                }
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Hostile { url, sent, task }
}

use futures::{StreamExt as _, TryStreamExt as _};

fn hollyhr(url: &str) -> HollyHrClient {
    HollyHrClient::new(ClientConfig::new(url, "hhr_test_hostile".into()).expect("config"))
        .expect("a client")
}

#[tokio::test]
async fn a_50_mb_answer_is_refused_after_at_most_the_limit() {
    for answer in [Answer::Huge, Answer::HugeAnnounced] {
        let server = hostile(answer).await;
        let error = hollyhr(&server.url)
            .person("p1")
            .await
            .expect_err("refused");
        let message = error.to_string();
        assert!(message.contains("over 8 MiB"), "{message}");
        assert!(
            message.contains("/people/{personId}"),
            "names the request: {message}"
        );
        // Give the server a moment to notice the client left.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = server.sent.load(Ordering::SeqCst);
        assert!(
            sent < HUGE / 2,
            "the client stopped reading early: the server got {sent} bytes out"
        );
        println!(
            "HollyHR, {}: refused; {:.1} MB of 50 MB sent before the client hung up",
            if matches!(answer, Answer::Huge) {
                "streamed"
            } else {
                "announced"
            },
            sent as f64 / 1e6
        );
    }

    // Personio and SCIM read through the same bound.
    let server = hostile(Answer::Huge).await;
    let personio = peoplesync::source::personio::PersonioClient::new(
        peoplesync::source::personio::PersonioConfig::new(
            server.url.parse().expect("a URL"),
            "client",
            "secret".to_owned().into(),
        ),
    )
    .expect("a client");
    // The token request is the first to meet the 50 MB.
    let error = personio.person_raw("p1").await.expect_err("refused");
    assert!(error.to_string().contains("over 8 MiB"), "{error}");

    let scim = peoplesync::directory::scim::ScimDirectory::connect(
        peoplesync::directory::scim::ScimConfig::new(&server.url, "token".to_owned().into()),
    )
    .await;
    let error = match scim {
        Err(error) => error,
        Ok(directory) => directory.check().await.expect_err("refused"),
    };
    assert!(error.to_string().contains("over 8 MiB"), "{error}");
}

#[tokio::test]
async fn invalid_utf8_and_deep_nesting_are_decode_errors_not_crashes() {
    for answer in [Answer::InvalidUtf8, Answer::DeeplyNested] {
        let server = hostile(answer).await;
        let error = hollyhr(&server.url)
            .person("p1")
            .await
            .expect_err("refused");
        let message = error.to_string();
        assert!(message.contains("/people/{personId}"), "{message}");
        assert!(
            !message.contains('\u{fffd}') && !message.contains("\\xff"),
            "no bytes of the body in the message: {message}"
        );
    }
}

/// A server that records every request (method, path and query, whether it carried an
/// `Authorization`) and answers with `answer`.
struct Recorder {
    url: String,
    seen: Arc<std::sync::Mutex<Vec<(String, String, bool)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    fn seen(&self) -> Vec<(String, String, bool)> {
        self.seen.lock().expect("the log").clone()
    }
}

async fn recorder(
    answer: impl Fn(&axum::http::Method, &str) -> Response + Clone + Send + Sync + 'static,
) -> Recorder {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let log = log.clone();
        let answer = answer.clone();
        async move {
            let path = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            let authorized = request.headers().contains_key("authorization");
            log.lock().expect("the log").push((
                request.method().to_string(),
                path.clone(),
                authorized,
            ));
            answer(request.method(), &path)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Recorder { url, seen, task }
}

fn scim_json(status: u16, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/scim+json")
        .body(Body::from(body.to_string()))
        .expect("a response")
}

#[tokio::test]
async fn a_scim_redirect_to_another_host_is_an_error_and_the_token_never_leaves() {
    use peoplesync::directory::DirectoryError as _;
    use peoplesync::directory::scim::{ScimConfig, ScimDirectory};

    let elsewhere = recorder(|_, _| scim_json(200, serde_json::json!({}))).await;
    for status in [301u16, 302, 307, 308] {
        let target = format!("{}/steal?from=peoplesync", elsewhere.url);
        let redirecting = recorder(move |_, _| {
            Response::builder()
                .status(status)
                .header("location", target.as_str())
                .body(Body::empty())
                .expect("a response")
        })
        .await;
        let error = ScimDirectory::connect(ScimConfig::new(
            &format!("{}/scim/v2", redirecting.url),
            "scim-token-never-elsewhere".to_owned().into(),
        ))
        .await
        .expect_err("a redirect is refused");
        let message = error.to_string();
        assert_eq!(error.reason(), "Redirected", "{message}");
        assert!(message.contains(&format!("HTTP {status}")), "{message}");
        assert!(
            message.contains(&elsewhere.url),
            "names the origin: {message}"
        );
        assert!(
            !message.contains("steal"),
            "not the path or query: {message}"
        );
        assert_eq!(redirecting.seen().len(), 1, "one request, not retried");
    }
    assert!(
        elsewhere.seen().is_empty(),
        "the other host was called: {:?}",
        elsewhere.seen()
    );
}

#[tokio::test]
async fn scim_location_headers_and_hostile_ids_never_move_writes_elsewhere() {
    use peoplesync::directory::scim::{ScimConfig, ScimDirectory};
    use peoplesync::directory::{Attributes, Change, DirectoryError as _};

    let elsewhere = recorder(|_, _| scim_json(200, serde_json::json!({}))).await;
    let other = elsewhere.url.clone();
    // A service provider that names every created user with a hostile id, and points its
    // `Location` and `meta.location` at another host.
    let provider = recorder(move |method, path| {
        let user = |id: &str| {
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": id, "externalId": "p1", "userName": "ada", "active": true,
                "meta": { "location": format!("{other}/Users/{id}"), "version": "W/\"1\"" }
            })
        };
        let id = "../Groups/admins?x=1";
        match (method.as_str(), path) {
            ("GET", "/v2/ServiceProviderConfig") => scim_json(
                200,
                serde_json::json!({
                    "patch": {"supported": true}, "etag": {"supported": true},
                    "filter": {"supported": true}, "bulk": {"supported": false}
                }),
            ),
            ("GET", p) if p.starts_with("/v2/Users?") => scim_json(
                200,
                serde_json::json!({"totalResults": 0, "Resources": [], "startIndex": 1}),
            ),
            ("POST", _) => {
                let mut response = scim_json(201, user(id));
                response.headers_mut().insert(
                    "location",
                    format!("{other}/Users/1").parse().expect("a header"),
                );
                response
            }
            ("GET", _) | ("PATCH", _) => scim_json(200, user(id)),
            _ => scim_json(404, serde_json::json!({"detail": "no"})),
        }
    })
    .await;
    let directory = ScimDirectory::connect(ScimConfig::new(
        &format!("{}/v2", provider.url),
        "scim-token".to_owned().into(),
    ))
    .await
    .expect("connects");
    let id = directory
        .apply(&Change::Create {
            anchor: "p1".into(),
            attributes: Attributes::from([("userName".to_owned(), vec!["ada".to_owned()])]),
            enabled: true,
        })
        .await
        .expect("created");
    assert_eq!(id, "../Groups/admins?x=1");
    directory
        .apply(&Change::Update {
            id: id.clone(),
            anchor: "p1".into(),
            set: Attributes::from([("title".to_owned(), vec!["Engineer".to_owned()])]),
        })
        .await
        .expect("updated");
    let writes: Vec<_> = provider
        .seen()
        .into_iter()
        .filter(|(_, path, _)| path.starts_with("/v2/Users/"))
        .map(|(method, path, _)| format!("{method} {path}"))
        .collect();
    assert_eq!(
        writes,
        [
            "GET /v2/Users/..%2FGroups%2Fadmins%3Fx=1",
            "PATCH /v2/Users/..%2FGroups%2Fadmins%3Fx=1"
        ],
        "the id stays one segment under /Users"
    );
    // An id that cannot name a resource is an error for that change, not a request.
    let error = directory
        .apply(&Change::Update {
            id: "..".into(),
            anchor: "p1".into(),
            set: Attributes::new(),
        })
        .await
        .expect_err("refused");
    assert_eq!(error.reason(), "InvalidResponse", "{error}");
    assert!(
        elsewhere.seen().is_empty(),
        "a Location sent a request elsewhere: {:?}",
        elsewhere.seen()
    );
}

/// BER for the few LDAP messages the hostile directory sends (RFC 4511).
mod ber {
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    pub fn integer(tag: u8, value: i64) -> Vec<u8> {
        let bytes = value.to_be_bytes();
        let mut start = 0;
        while start < 7
            && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
                || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
        {
            start += 1;
        }
        tlv(tag, &bytes[start..])
    }

    pub fn octets(value: &str) -> Vec<u8> {
        tlv(0x04, value.as_bytes())
    }

    pub fn message(id: i64, op: Vec<u8>) -> Vec<u8> {
        tlv(0x30, &[integer(0x02, id), op].concat())
    }

    /// An LDAPResult of `tag` with result code 0.
    pub fn success(tag: u8) -> Vec<u8> {
        tlv(tag, &[integer(0x0a, 0), octets(""), octets("")].concat())
    }

    pub fn entry(dn: &str, attributes: &[(&str, &str)]) -> Vec<u8> {
        let attributes: Vec<u8> = attributes
            .iter()
            .flat_map(|(name, value)| {
                tlv(0x30, &[octets(name), tlv(0x31, &octets(value))].concat())
            })
            .collect();
        tlv(0x64, &[octets(dn), tlv(0x30, &attributes)].concat())
    }

    /// Reads one message: its id and the tag of its operation (`None` at the end).
    pub async fn read(stream: &mut tokio::net::TcpStream) -> Option<(i64, u8)> {
        use tokio::io::AsyncReadExt as _;
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.ok()?;
        let len = if head[1] & 0x80 == 0 {
            usize::from(head[1])
        } else {
            let mut bytes = vec![0u8; usize::from(head[1] & 0x7f)];
            stream.read_exact(&mut bytes).await.ok()?;
            bytes.iter().fold(0usize, |n, b| n << 8 | usize::from(*b))
        };
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.ok()?;
        // messageID INTEGER (short form), then the operation's tag.
        let id_len = usize::from(body[1]);
        let id = body[2..2 + id_len]
            .iter()
            .fold(0i64, |n, b| n << 8 | i64::from(*b));
        Some((id, body[2 + id_len]))
    }
}

#[tokio::test]
async fn an_ldap_server_sending_100k_entries_in_one_page_is_cut_off() {
    use peoplesync::directory::{DirectoryError as _, ldap::LdapDirectory};
    use tokio::io::AsyncWriteExt as _;

    // A directory that binds anyone and answers every search with 100,000 entries at once,
    // whatever page size (or single entry) it was asked for, counting what it got out.
    const ENTRIES: usize = 100_000;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("an address");
    let sent = Arc::new(AtomicUsize::new(0));
    let abandoned = Arc::new(AtomicUsize::new(0));
    let (sent_by, abandons) = (sent.clone(), abandoned.clone());
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (sent, abandons) = (sent_by.clone(), abandons.clone());
            tokio::spawn(async move {
                let mut reader = stream;
                while let Some((id, op)) = ber::read(&mut reader).await {
                    match op {
                        0x60 => {
                            let _ = reader
                                .write_all(&ber::message(id, ber::success(0x61)))
                                .await;
                        }
                        0x63 => {
                            for i in 0..ENTRIES {
                                let entry = ber::entry(
                                    &format!("uid=flood{i},ou=people,dc=example,dc=com"),
                                    &[
                                        ("objectClass", "inetOrgPerson"),
                                        ("uid", &format!("flood{i}")),
                                        ("employeeNumber", &format!("p{i}")),
                                        ("cn", "Flood"),
                                    ],
                                );
                                if reader.write_all(&ber::message(id, entry)).await.is_err() {
                                    break;
                                }
                                sent.fetch_add(1, Ordering::SeqCst);
                            }
                            let done = ber::message(id, ber::success(0x65));
                            let _ = reader.write_all(&done).await;
                        }
                        0x50 => {
                            abandons.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => return,
                    }
                }
            });
        }
    });

    let mut config = peoplesync::slapd::config_for(&format!("ldap://{addr}"), "secret");
    config.page_size = 500;
    let directory = LdapDirectory::connect(config).await.expect("binds");
    let started = Instant::now();
    let error = directory
        .entries()
        .try_collect::<Vec<_>>()
        .await
        .expect_err("cut off");
    let elapsed = started.elapsed();
    assert_eq!(error.reason(), "TooManyEntries", "{error}");
    assert!(
        error.to_string().contains("more than 500 entries"),
        "{error}"
    );
    // A read of one entry (the ownership check before a write) is bounded the same way.
    let error = directory
        .check()
        .await
        .expect_err("a base read answered with 100,000 entries");
    assert_eq!(error.reason(), "TooManyEntries", "{error}");
    assert!(error.to_string().contains("more than 1 entries"), "{error}");
    // Each search was abandoned (this server reads the request once it has sent its flood).
    let deadline = Instant::now() + Duration::from_secs(10);
    while abandoned.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "LDAP page flood: the listing cut off after {:.0} ms (page size 500); the server, which \
         ignores abandon, wrote {} entries for the two searches; {} abandon requests received",
        elapsed.as_secs_f64() * 1e3,
        sent.load(Ordering::SeqCst),
        abandoned.load(Ordering::SeqCst)
    );
    assert_eq!(
        abandoned.load(Ordering::SeqCst),
        2,
        "both searches were abandoned"
    );
    server.abort();
}
