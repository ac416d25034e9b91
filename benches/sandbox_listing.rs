//! How fast the sandbox lists a large tenant: `GET /people?limit=100` to the end, over HTTP, for
//! 100k people (override with `PEOPLESYNC_BENCH_PEOPLE`). Prints figures and the ratio against a
//! baseline measured in the same run: building and serializing the same pages in-process, without
//! HTTP. The goal (issue #2) is that the sandbox serves 100k people "well under 2 s"; the client's
//! typed decoding is measured separately (it belongs to the sync engine's budget).
//!
//! Run: `cargo bench --bench sandbox_listing`

use std::time::{Duration, Instant};

use peoplesync::source::hollyhr::model::{Page, Person};
use peoplesync_sandbox::{self as sandbox, SandboxConfig};

fn main() {
    // `cargo test --all-targets` also runs this binary (without `--bench`): a debug-build run of
    // a 100k benchmark tells nothing, so only `cargo bench` measures.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("sandbox_listing: skipped (run `cargo bench --bench sandbox_listing`)");
        return;
    }
    let people: usize = std::env::var("PEOPLESYNC_BENCH_PEOPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(people));
}

async fn run(people: usize) {
    let seeded = Instant::now();
    let handle = sandbox::start(SandboxConfig {
        people,
        rate_limit_per_minute: 0,
        ..Default::default()
    })
    .await
    .expect("sandbox starts");
    let seed_time = seeded.elapsed();
    let http = reqwest::Client::new();
    let url = format!("{}/people", handle.base_url());

    // Warm-up: one page, so connection set-up is not measured.
    list_all(&http, &url, Some(1)).await;

    let mut runs = Vec::new();
    let mut count = 0;
    let mut pages = 0;
    for _ in 0..3 {
        let started = Instant::now();
        (count, pages) = list_all(&http, &url, None).await;
        runs.push(started.elapsed());
    }
    assert_eq!(count, people, "every person listed exactly once");
    let best = *runs.iter().min().expect("three runs");

    // The same listing, reading the bytes of each page without parsing them into `Person`s:
    // separates the sandbox's cost from the client's JSON decoding.
    let mut raw_runs = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let raw_pages = list_all_raw(&http, &url).await;
        assert_eq!(raw_pages, pages);
        raw_runs.push(started.elapsed());
    }
    let raw_best = *raw_runs.iter().min().expect("three runs");

    // Baseline: the same pages serialized in-process (no HTTP, no parsing on the client side).
    let tenant = peoplesync_baseline(people);
    let started = Instant::now();
    let mut bytes = 0usize;
    let mut encoded = Vec::new();
    for chunk in tenant.chunks(100) {
        let page = Page {
            data: chunk.iter().collect::<Vec<_>>(),
            pagination: peoplesync::source::hollyhr::model::CursorPagination {
                next_cursor: Some("x".into()),
                has_more: true,
                limit: 100,
            },
        };
        let page_bytes = serde_json::to_vec(&page).expect("serializes");
        bytes += page_bytes.len();
        encoded.push(page_bytes);
    }
    let baseline = started.elapsed();
    let started = Instant::now();
    for page_bytes in &encoded {
        let page: Page<Person> = serde_json::from_slice(page_bytes).expect("parses");
        std::hint::black_box(page);
    }
    let decode = started.elapsed();

    let per_page = best / pages.max(1) as u32;
    println!("sandbox listing benchmark");
    println!("  people                 {people}");
    println!("  pages (limit=100)      {pages}");
    println!("  seed time              {:>8.1} ms", ms(seed_time));
    println!(
        "  full listing (best/3)  {:>8.1} ms   runs: {}",
        ms(best),
        runs.iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  per page               {:>8.1} µs",
        per_page.as_secs_f64() * 1e6
    );
    println!(
        "  people per second      {:>8.0}",
        people as f64 / best.as_secs_f64()
    );
    println!(
        "  sandbox only (bytes, no client parsing) {:>8.1} ms",
        ms(raw_best)
    );
    println!(
        "  baseline (serialize only, same pages) {:>8.1} ms, {} MiB",
        ms(baseline),
        bytes / (1 << 20)
    );
    println!(
        "  client decode only (in-process, typed)  {:>8.1} ms",
        ms(decode)
    );
    println!(
        "  ratio listing / baseline              {:>8.2}x",
        best.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "  goal: the sandbox serves 100k people well under 2000 ms -> {}",
        if raw_best < Duration::from_secs(2) {
            "met"
        } else {
            "NOT met"
        }
    );
    handle.shutdown().await;
}

/// Pages through `url` to the end; returns (people, pages).
async fn list_all(http: &reqwest::Client, url: &str, max_pages: Option<usize>) -> (usize, usize) {
    let mut cursor: Option<String> = None;
    let mut count = 0;
    let mut pages = 0;
    loop {
        let mut request = http
            .get(url)
            .bearer_auth(sandbox::DEFAULT_API_KEY)
            .query(&[("limit", "100")]);
        if let Some(cursor) = &cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        let page: Page<Person> = request
            .send()
            .await
            .expect("sandbox answers")
            .json()
            .await
            .expect("a person page");
        count += page.data.len();
        pages += 1;
        if !page.pagination.has_more || max_pages.is_some_and(|max| pages >= max) {
            return (count, pages);
        }
        cursor = page.pagination.next_cursor;
    }
}

/// Pages through `url` reading only the cursor from each page.
async fn list_all_raw(http: &reqwest::Client, url: &str) -> usize {
    #[derive(serde::Deserialize)]
    struct CursorOnly {
        pagination: peoplesync::source::hollyhr::model::CursorPagination,
    }
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut request = http
            .get(url)
            .bearer_auth(sandbox::DEFAULT_API_KEY)
            .query(&[("limit", "100")]);
        if let Some(cursor) = &cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        let bytes = request
            .send()
            .await
            .expect("sandbox answers")
            .bytes()
            .await
            .expect("body");
        // Only the pagination object is decoded; `data` is skipped as ignored JSON.
        let page: CursorOnly = serde_json::from_slice(&bytes).expect("a page");
        pages += 1;
        if !page.pagination.has_more {
            return pages;
        }
        cursor = page.pagination.next_cursor;
    }
}

/// The same tenant the sandbox serves, generated in-process for the baseline.
fn peoplesync_baseline(people: usize) -> Vec<Person> {
    peoplesync_sandbox::generate_tenant(people, 42)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
