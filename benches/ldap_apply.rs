//! Applying creates to slapd: PeopleSync's LDAP backend vs `ldapadd` of the same entries as LDIF,
//! each against a fresh private slapd (`dbnosync`) in the same run. Goal (issue #4): ≤ 1.25×.
//!
//! Run: `cargo bench --bench ldap_apply` (`PEOPLESYNC_BENCH_PEOPLE`, default 10,000).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use futures::StreamExt;
use peoplesync::crd::LdapProfile;
use peoplesync::directory::ldap::{DisableStrategy, LdapConfig, LdapDirectory, PERMANENT_LOCK};
use peoplesync::directory::{Attributes, Change, Directory};
use peoplesync::plan::mapping::{Mapping, Profile};
use peoplesync::slapd::{self, Slapd};
use secrecy::SecretString;

/// Outstanding operations on the one connection.
const CONCURRENCY: usize = 32;
const OBJECT_CLASSES: [&str; 4] = ["top", "person", "organizationalPerson", "inetOrgPerson"];

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("ldap_apply: skipped (run `cargo bench --bench ldap_apply`)");
        return;
    }
    let people: usize = std::env::var("PEOPLESYNC_BENCH_PEOPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(people));
}

fn mapped(people: usize) -> Vec<(String, Attributes)> {
    let tenant = peoplesync::sandbox::generate_tenant(people, 42);
    let mapping =
        Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &BTreeMap::new()).expect("mapping");
    let mut uids = HashSet::new();
    tenant
        .iter()
        .map(|person| {
            let m = mapping
                .map(person, None, &|a, v| a == "uid" && uids.contains(v))
                .expect("maps");
            uids.insert(m.attributes["uid"][0].clone());
            (person.id.clone(), m.attributes)
        })
        .collect()
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// LDIF line: `attr: value`, or `attr:: base64` when the value is not safe ASCII (RFC 2849).
fn ldif_line(out: &mut String, attribute: &str, value: &str) {
    let safe = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ');
    if safe {
        let _ = writeln!(out, "{attribute}: {value}");
    } else {
        let _ = writeln!(out, "{attribute}:: {}", base64(value.as_bytes()));
    }
}

fn ldif(entries: &[(String, Attributes)]) -> String {
    let mut out = String::new();
    for (anchor, attributes) in entries {
        let uid = &attributes["uid"][0];
        ldif_line(
            &mut out,
            "dn",
            &format!(
                "uid={},{}",
                ldap3::dn_escape(uid.as_str()),
                slapd::PEOPLE_DN
            ),
        );
        for class in OBJECT_CLASSES {
            ldif_line(&mut out, "objectClass", class);
        }
        for (name, values) in attributes {
            if name != "employeeNumber" {
                for value in values {
                    ldif_line(&mut out, name, value);
                }
            }
        }
        ldif_line(&mut out, "employeeNumber", anchor);
        out.push('\n');
    }
    out
}

async fn run(people: usize) {
    let entries = mapped(people);

    // Baseline: one `ldapadd` over the same entries (one connection, sequential adds).
    let baseline_server = Slapd::start().await.expect("slapd");
    let file = baseline_server.dir().join("people.ldif");
    std::fs::write(&file, ldif(&entries)).expect("write LDIF");
    let started = Instant::now();
    let status = std::process::Command::new("ldapadd")
        .args([
            "-x",
            "-H",
            &baseline_server.url(),
            "-D",
            slapd::ADMIN_DN,
            "-w",
            &baseline_server.admin_password,
            "-f",
        ])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("ldapadd runs (apt-get install ldap-utils)");
    let baseline = started.elapsed();
    assert!(status.success(), "ldapadd failed");

    // PeopleSync: the same creates through the backend, CONCURRENCY outstanding on one connection.
    let server = Slapd::start().await.expect("slapd");
    let directory = LdapDirectory::connect(LdapConfig {
        url: server.url(),
        start_tls: false,
        ca_pem: None,
        groups_dn: Some(slapd::GROUPS_DN.into()),
        group_anchor_attribute: "businessCategory".into(),
        bind_dn: slapd::ADMIN_DN.into(),
        bind_password: SecretString::from(server.admin_password.clone()),
        people_dn: slapd::PEOPLE_DN.into(),
        rdn_attribute: "uid".into(),
        anchor_attribute: "employeeNumber".into(),
        object_classes: OBJECT_CLASSES.map(String::from).to_vec(),
        disable: DisableStrategy::SetAttribute {
            attribute: "pwdAccountLockedTime".into(),
            value: PERMANENT_LOCK.into(),
        },
        timeout: Duration::from_secs(30),
        page_size: peoplesync::directory::ldap::DEFAULT_PAGE_SIZE,
    })
    .await
    .expect("binds");
    let changes: Vec<Change> = entries
        .into_iter()
        .map(|(anchor, attributes)| Change::Create {
            anchor,
            attributes,
            enabled: true,
        })
        .collect();
    let started = Instant::now();
    let failures = futures::stream::iter(changes.iter().map(|c| directory.apply(c)))
        .buffer_unordered(CONCURRENCY)
        .filter(|r| futures::future::ready(r.is_err()))
        .count()
        .await;
    let ours = started.elapsed();
    assert_eq!(failures, 0, "every create succeeded");
    let listed = directory.entries().count().await;
    assert_eq!(listed, people, "every entry is there");

    let ratio = ours.as_secs_f64() / baseline.as_secs_f64();
    println!("ldap apply benchmark ({people} creates, slapd with dbnosync)");
    println!(
        "  ldapadd (baseline, same entries)   {:>8.0} ms  {:>6.0}/s",
        baseline.as_secs_f64() * 1e3,
        people as f64 / baseline.as_secs_f64()
    );
    println!(
        "  peoplesync backend ({CONCURRENCY} in flight)   {:>8.0} ms  {:>6.0}/s",
        ours.as_secs_f64() * 1e3,
        people as f64 / ours.as_secs_f64()
    );
    println!(
        "  ratio peoplesync / ldapadd          {ratio:>8.2}x  (goal ≤ 1.25x: {})",
        if ratio <= 1.25 { "met" } else { "NOT met" }
    );
}
