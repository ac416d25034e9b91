//! Hostile answers (issue #17, item 5): a server that answers HollyHR's, Personio's or a SCIM
//! service's requests with a 50 MB body, invalid UTF-8 or JSON nested 100,000 deep. Each is a
//! clear error naming the request (never a panic or a stack overflow), and the client reads at
//! most `http::BODY_LIMIT` of the 50 MB: the server counts what it could send before the client
//! hung up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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

use futures::StreamExt as _;

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
