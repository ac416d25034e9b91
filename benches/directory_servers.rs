//! P1 on every LDAP server PeopleSync targets (issue #18): a full sync of N people from the
//! HollyHR sandbox into a fresh OpenLDAP, 389 Directory Server and Samba AD DC, each ÷ that
//! server's own ingest of the same entries with `ldapadd` (a second fresh server of the same kind,
//! same OUs, in the same run). Goal: ≤ 1.25× on each. Prints a table and one JSON line.
//!
//! The baseline is what the sync wrote, read back: the person entries and groups with the
//! attributes PeopleSync sets (server-made ones such as `objectGUID` left out), added in one
//! `ldapadd` run, followed by the `manager` links as modify records (AD checks that a DN-valued
//! attribute names an existing entry, so links come after the adds, as the sync does them).
//!
//! Run: `cargo bench --bench directory_servers` (`PEOPLESYNC_BENCH_PEOPLE`, default 10,000;
//! `PEOPLESYNC_BENCH_SERVERS=openldap,389ds,ad` picks servers).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use jiff::Timestamp;
use peoplesync::crd::LdapProfile;
use peoplesync::directory::ldap::{DisableStrategy, LdapConfig, LdapDirectory};
use peoplesync::directory::{Directory, Entry, Group};
use peoplesync::ds389::Ds389;
use peoplesync::plan::mapping::Profile;
use peoplesync::plan::{Guard, Mapping, Policy};
use peoplesync::samba::{self, SambaDc};
use peoplesync::slapd::{self, Slapd};
use peoplesync::source::hollyhr::{ClientConfig, HollyHrClient};
use peoplesync::sync::engine::{self, CycleKind, Settings, SyncState};
use peoplesync_sandbox::{self as sandbox, DEFAULT_API_KEY, SandboxConfig};
use secrecy::SecretString;

const GOAL: f64 = 1.25;

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("directory_servers: skipped (run `cargo bench --bench directory_servers`)");
        return;
    }
    let people: usize = std::env::var("PEOPLESYNC_BENCH_PEOPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let servers = std::env::var("PEOPLESYNC_BENCH_SERVERS")
        .unwrap_or_else(|_| "openldap,389ds,ad".to_owned());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run(people, &servers));
}

/// A running server of one kind and what it takes to write to it.
enum Server {
    OpenLdap(Slapd),
    Ds389(Ds389),
    Ad(SambaDc),
}

/// Where a server's `ldapadd` connects and how it binds.
struct Endpoint {
    url: String,
    bind_dn: String,
    password: String,
    ca_pem: Option<String>,
}

impl Server {
    async fn start(kind: &str) -> Server {
        match kind {
            "openldap" => Server::OpenLdap(Slapd::start().await.expect("slapd starts")),
            "389ds" => Server::Ds389(Ds389::start().await.expect("389-ds starts")),
            "ad" => Server::Ad(SambaDc::start().await.expect("the Samba AD DC starts")),
            other => panic!("unknown server {other} (openldap, 389ds, ad)"),
        }
    }

    /// The backend's configuration with the profile's defaults, in the server's bench OUs.
    async fn config(&self) -> (LdapConfig, LdapProfile) {
        match self {
            Server::OpenLdap(server) => (server.ldap_config(), LdapProfile::OpenLdap),
            Server::Ds389(server) => {
                let ou = server.ou("bench").await.expect("the OUs are added");
                (server.ldap_config(&ou), LdapProfile::Ds389)
            }
            Server::Ad(dc) => {
                let (people, groups) = dc.ou("Bench").await.expect("the OUs are added");
                (
                    dc.ldap_config(&people, &groups),
                    LdapProfile::ActiveDirectory,
                )
            }
        }
    }

    fn endpoint(&self) -> Endpoint {
        match self {
            Server::OpenLdap(server) => Endpoint {
                url: server.url(),
                bind_dn: slapd::ADMIN_DN.into(),
                password: server.admin_password.clone(),
                ca_pem: None,
            },
            Server::Ds389(server) => Endpoint {
                url: server.url(),
                bind_dn: peoplesync::ds389::ADMIN_DN.into(),
                password: server.admin_password.clone(),
                ca_pem: None,
            },
            Server::Ad(dc) => Endpoint {
                url: samba::URL.into(),
                bind_dn: samba::ADMIN_DN.into(),
                password: dc.admin_password.clone(),
                ca_pem: Some(dc.ca_pem.clone()),
            },
        }
    }
}

/// `ldapadd` (one connection, sequential operations) of `ldif`.
fn ldapadd(endpoint: &Endpoint, dir: &Path, ldif: &str) -> Duration {
    let file = dir.join("baseline.ldif");
    std::fs::write(&file, ldif).expect("writes the LDIF");
    let mut command = Command::new("ldapadd");
    command
        .args(["-x", "-H", &endpoint.url, "-D", &endpoint.bind_dn, "-w"])
        .arg(&endpoint.password)
        .arg("-f")
        .arg(&file)
        .stdout(Stdio::null());
    if let Some(ca) = &endpoint.ca_pem {
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca).expect("writes the CA");
        command.env("LDAPTLS_CACERT", &ca_file);
    }
    let started = Instant::now();
    let status = command
        .status()
        .expect("runs ldapadd (apt-get install ldap-utils)");
    let took = started.elapsed();
    assert!(status.success(), "ldapadd exited with {status}");
    took
}

/// The attributes PeopleSync writes on a person entry (what the baseline adds).
fn written(config: &LdapConfig, mapping: &Mapping) -> HashSet<String> {
    let mut names: HashSet<String> = mapping.rules().keys().map(|k| k.to_lowercase()).collect();
    names.insert("objectclass".into());
    names.insert(config.anchor_attribute.to_lowercase());
    names.insert("useraccountcontrol".into());
    if let DisableStrategy::SetAttribute { attribute, .. } = &config.disable {
        names.insert(attribute.to_lowercase());
    }
    names
}

/// The synced entries and groups as one LDIF: adds (without `manager`), then the groups, then
/// the manager links as modifications.
fn baseline_ldif(
    entries: &[Entry],
    groups: &[Group],
    names: &HashSet<String>,
    config: &LdapConfig,
) -> String {
    let keep = |entry: &Entry| -> BTreeMap<String, Vec<String>> {
        entry
            .attributes
            .iter()
            .filter(|(k, _)| names.contains(&k.to_lowercase()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let kept: Vec<(String, BTreeMap<String, Vec<String>>)> =
        entries.iter().map(|e| (e.id.clone(), keep(e))).collect();
    let mut ldif = slapd::ldif(kept.iter().map(|(dn, a)| (dn.as_str(), a)));
    let group_entries: Vec<(String, BTreeMap<String, Vec<String>>)> = groups
        .iter()
        .map(|group| {
            let mut attributes = BTreeMap::from([
                (
                    "objectClass".to_owned(),
                    vec!["top".to_owned(), config.group_object_class.clone()],
                ),
                ("cn".to_owned(), vec![group.name.clone()]),
                (
                    config.group_anchor_attribute.clone(),
                    vec![group.anchor.clone()],
                ),
            ]);
            if !group.members.is_empty() {
                attributes.insert("member".to_owned(), group.members.iter().cloned().collect());
            }
            (group.id.clone(), attributes)
        })
        .collect();
    ldif.push_str(&slapd::ldif(
        group_entries.iter().map(|(dn, a)| (dn.as_str(), a)),
    ));
    for entry in entries {
        if let Some(manager) =
            peoplesync::plan::attribute_values(&entry.attributes, "manager").and_then(|v| v.first())
        {
            let _ = write!(
                ldif,
                "dn: {}\nchangetype: modify\nreplace: manager\nmanager: {manager}\n-\n\n",
                entry.id
            );
        }
    }
    ldif
}

struct Figures {
    server: String,
    entries: usize,
    groups: usize,
    sync: Duration,
    ldapadd: Duration,
}

async fn measure(kind: &str, client: &HollyHrClient) -> Figures {
    let server = Server::start(kind).await;
    let (mut config, profile) = server.config().await;
    config.timeout = Duration::from_secs(120);
    let mapping = Mapping::new(Profile::Ldap(profile), &BTreeMap::new()).expect("compiles");
    let names = written(&config, &mapping);
    let settings = Settings {
        mapping,
        policy: Policy {
            guard: Guard {
                max_count: u32::MAX,
                max_percent: 100,
            },
            ..Policy::default()
        },
        concurrency: engine::DEFAULT_CONCURRENCY,
        overlap: engine::DEFAULT_OVERLAP,
        dry_run: false,
        chunk: peoplesync::sync::stream::CHUNK,
        on_step: None,
        progress: None,
    };
    let directory = LdapDirectory::connect(config.clone()).await.expect("binds");
    let started = Instant::now();
    let full = engine::run_cycle(
        client,
        &directory,
        &settings,
        &SyncState::default(),
        CycleKind::Full,
        None,
        Timestamp::now(),
    )
    .await
    .unwrap_or_else(|e| panic!("{kind}: the full sync: {}", peoplesync::cli::report(&e)));
    let sync = started.elapsed();
    assert!(full.failures().is_empty(), "{kind}: {:?}", full.failures());
    let entries: Vec<Entry> = directory.entries().try_collect().await.expect("lists");
    let groups: Vec<Group> = directory
        .groups()
        .try_collect()
        .await
        .expect("lists groups");
    drop(directory);
    let ldif = baseline_ldif(&entries, &groups, &names, &config);
    // A fresh server of the same kind (the first one stops first: Samba's ports are fixed).
    drop(server);
    let baseline = Server::start(kind).await;
    let _ = baseline.config().await;
    let dir = std::env::temp_dir().join(format!("peoplesync-bench-{kind}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let took = ldapadd(&baseline.endpoint(), &dir, &ldif);
    let _ = std::fs::remove_dir_all(&dir);
    Figures {
        server: kind.to_owned(),
        entries: entries.len(),
        groups: groups.len(),
        sync,
        ldapadd: took,
    }
}

async fn run(people: usize, servers: &str) {
    let hollyhr = sandbox::start(SandboxConfig {
        people,
        rate_limit_per_minute: 0,
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let client = HollyHrClient::new(
        ClientConfig::new(&hollyhr.base_url(), SecretString::from(DEFAULT_API_KEY))
            .expect("config"),
    )
    .expect("client");
    let mut figures = Vec::new();
    for kind in servers.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        figures.push(measure(kind, &client).await);
    }
    println!("P1 per LDAP server: a full sync of {people} people ÷ ldapadd of the same entries");
    let mut json = Vec::new();
    for f in &figures {
        let ratio = f.sync.as_secs_f64() / f.ldapadd.as_secs_f64();
        println!(
            "  {:<9} {:>6} entries {:>4} groups   sync {:>8.0} ms   ldapadd {:>8.0} ms   {ratio:.2}x (goal ≤ {GOAL}x: {})",
            f.server,
            f.entries,
            f.groups,
            f.sync.as_secs_f64() * 1e3,
            f.ldapadd.as_secs_f64() * 1e3,
            if ratio <= GOAL { "met" } else { "NOT met" }
        );
        json.push(serde_json::json!({
            "server": f.server,
            "entries": f.entries,
            "groups": f.groups,
            "sync_ms": f.sync.as_secs_f64() * 1e3,
            "ldapadd_ms": f.ldapadd.as_secs_f64() * 1e3,
            "ratio": ratio,
        }));
    }
    println!(
        "{}",
        serde_json::json!({"bench": "directory_servers", "people": people, "p1": json})
    );
}
