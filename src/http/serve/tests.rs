use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::*;

fn limits(max_connections: usize) -> Limits {
    Limits {
        max_connections,
        header_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(600),
        ..Limits::default()
    }
}

/// Serves a router with `GET /` → "ok" and `POST /` reading the whole body.
async fn server(limits: Limits) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let app = Router::new().route(
        "/",
        axum::routing::get(|| async { "ok" })
            .post(|body: axum::body::Bytes| async move { format!("{} bytes", body.len()) }),
    );
    let listener = bind("127.0.0.1:0".parse().expect("an address")).expect("binds");
    let addr = listener.local_addr().expect("an address");
    (addr, tokio::spawn(serve(listener, app, limits)))
}

/// Reads until the server closes; what it sent, and how long that took.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, stream.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for {limit:?}"
    );
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_header_timeout() {
    let (addr, _server) = server(limits(10)).await;
    let mut idle = TcpStream::connect(addr).await.expect("connects");
    let (sent, after) = until_closed(&mut idle, Duration::from_secs(3)).await;
    assert!(
        after >= Duration::from_millis(250),
        "closed too early: {after:?}"
    );
    // hyper answers a header timeout by closing, without a response.
    assert!(
        sent.is_empty() || sent.starts_with("HTTP/1.1 408"),
        "{sent}"
    );
}

#[tokio::test]
async fn a_slow_loris_is_closed_although_it_keeps_sending() {
    let (addr, _server) = server(limits(10)).await;
    let mut loris = TcpStream::connect(addr).await.expect("connects");
    let started = Instant::now();
    loris
        .write_all(b"GET / HTTP/1.1\r\n")
        .await
        .expect("writes");
    let mut closed = false;
    for i in 0..60 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if loris
            .write_all(format!("x-slow-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(1), loris.read(&mut byte)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a header trickled for 3 s was still being read");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_trickled_body_gets_408() {
    let (addr, _server) = server(limits(10)).await;
    let mut slow = TcpStream::connect(addr).await.expect("connects");
    slow.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
        .await
        .expect("writes");
    let writer = async {
        for _ in 0..40 {
            if slow.write_all(b"a").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(900), writer).await;
    let (sent, _) = until_closed(&mut slow, Duration::from_secs(3)).await;
    assert!(sent.starts_with("HTTP/1.1 408"), "{sent}");
}

/// Issue #28: a stranger's head cannot grow past the limit; a normal request on the next
/// connection is answered.
#[tokio::test]
async fn a_head_over_the_limit_is_refused_without_being_held() {
    let (addr, _server) = server(limits(10)).await;
    let mut large = TcpStream::connect(addr).await.expect("connects");
    large
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("writes");
    // 64 KiB of headers, 1 KiB at a time: the server gives up long before the end.
    let mut ended = None;
    for i in 0..64 {
        let header = format!("x-pad-{i:02}: {}\r\n", "a".repeat(1010));
        if large.write_all(header.as_bytes()).await.is_err() {
            ended = Some((i, String::new()));
            break;
        }
        let mut answer = vec![0u8; 256];
        match tokio::time::timeout(Duration::from_millis(20), large.read(&mut answer)).await {
            Err(_) => {}
            Ok(Ok(n)) => {
                ended = Some((i, String::from_utf8_lossy(&answer[..n]).into_owned()));
                break;
            }
            Ok(Err(_)) => {
                ended = Some((i, String::new()));
                break;
            }
        }
    }
    let (kib, answer) = ended.expect("the server read a 64 KiB head to its end");
    assert!(kib < 16, "the server held {kib} KiB of a head");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    let mut normal = TcpStream::connect(addr).await.expect("connects");
    normal.write_all(GET).await.expect("writes");
    let mut answer = vec![0u8; 64];
    let n = normal.read(&mut answer).await.expect("reads");
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
}

/// Issue #28: incomplete heads share one budget. Strangers who fill it are dropped, oldest
/// first, to make room for a newcomer's head; a request is answered; every byte is given back.
#[tokio::test]
async fn trickled_heads_share_one_budget_and_a_fresh_request_still_gets_through() {
    let (addr, _server) = server(Limits {
        head_budget: 16 * 1024,
        header_timeout: Duration::from_secs(30),
        ..limits(100)
    })
    .await;
    // Eight strangers each hold 4 KiB of an unfinished head: 32 KiB wanted of a 16 KiB budget.
    let mut strangers = Vec::new();
    for _ in 0..8 {
        let mut stranger = TcpStream::connect(addr).await.expect("connects");
        stranger
            .write_all(format!("GET / HTTP/1.1\r\nx-pad: {}\r\n", "a".repeat(4000)).as_bytes())
            .await
            .expect("writes");
        strangers.push(stranger);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut fresh = TcpStream::connect(addr).await.expect("connects");
    fresh.write_all(GET).await.expect("writes");
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), fresh.read(&mut answer))
        .await
        .expect("answered in time")
        .expect("reads");
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );
    // The oldest strangers were let go to make room.
    let mut closed = 0;
    for stranger in &mut strangers {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(50), stranger.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 4, "only {closed} of 8 strangers were dropped");
}

/// With `KeepAlive::Marked` a client keeps its connection only when the app vouched for it.
#[tokio::test]
async fn only_a_vouched_for_client_keeps_its_connection() {
    let app = Router::new()
        .route("/stranger", axum::routing::get(|| async { "ok" }))
        .route(
            "/known",
            axum::routing::get(|| async {
                let mut response = axum::response::IntoResponse::into_response("ok");
                response.extensions_mut().insert(KeepAlive::Marked);
                response
            }),
        );
    let listener = bind("127.0.0.1:0".parse().expect("an address")).expect("binds");
    let addr = listener.local_addr().expect("an address");
    let _server = tokio::spawn(serve(
        listener,
        app,
        Limits {
            keep_alive: KeepAlive::Marked,
            ..limits(10)
        },
    ));
    let mut known = TcpStream::connect(addr).await.expect("connects");
    for _ in 0..2 {
        known
            .write_all(b"GET /known HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("writes");
        let mut answer = vec![0u8; 256];
        let n = known.read(&mut answer).await.expect("reads");
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    }
    let mut stranger = TcpStream::connect(addr).await.expect("connects");
    stranger
        .write_all(b"GET /stranger HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("writes");
    let (sent, _) = until_closed(&mut stranger, Duration::from_secs(2)).await;
    assert!(
        sent.starts_with("HTTP/1.1 200") && sent.contains("connection: close"),
        "{sent}"
    );
}

#[tokio::test]
async fn requests_on_a_kept_alive_connection_are_answered() {
    let (addr, _server) = server(limits(10)).await;
    let mut client = TcpStream::connect(addr).await.expect("connects");
    for _ in 0..3 {
        client.write_all(GET).await.expect("writes");
        let mut buffer = vec![0u8; 1024];
        let n = client.read(&mut buffer).await.expect("reads");
        let answer = String::from_utf8_lossy(&buffer[..n]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
    }
}

#[tokio::test]
async fn beyond_the_limit_the_oldest_connection_is_closed_and_the_newest_served() {
    let (addr, _server) = server(Limits {
        header_timeout: Duration::from_secs(30),
        ..limits(3)
    })
    .await;
    let mut oldest = TcpStream::connect(addr).await.expect("connects");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut others = Vec::new();
    for _ in 0..2 {
        others.push(TcpStream::connect(addr).await.expect("connects"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut newest = TcpStream::connect(addr).await.expect("connects");
    // The oldest goes (long before its 30 s header timeout) ...
    let (_, after) = until_closed(&mut oldest, Duration::from_secs(3)).await;
    assert!(after < Duration::from_secs(3));
    // ... the others stay, and the newest is answered.
    let mut byte = [0u8; 1];
    for other in &mut others {
        let still_open =
            tokio::time::timeout(Duration::from_millis(100), other.read(&mut byte)).await;
        assert!(still_open.is_err(), "a younger connection was closed");
    }
    newest.write_all(GET).await.expect("writes");
    let mut buffer = vec![0u8; 1024];
    let n = newest.read(&mut buffer).await.expect("reads");
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_connection_asked_to_close_first_answers_its_request_in_flight() {
    let (addr, _server) = server(Limits {
        header_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(5),
        ..limits(1)
    })
    .await;
    // A request whose body is still coming when a newer connection pushes this one out.
    let mut busy = TcpStream::connect(addr).await.expect("connects");
    busy.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nab")
        .await
        .expect("writes");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _newer = TcpStream::connect(addr).await.expect("connects");
    tokio::time::sleep(Duration::from_millis(100)).await;
    busy.write_all(b"cd")
        .await
        .expect("the body's rest is still read");
    let (sent, _) = until_closed(&mut busy, Duration::from_secs(3)).await;
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
    assert!(sent.ends_with("4 bytes"), "{sent}");
}
