//! `peoplesync demo`: the main job on its local default. A HollyHR sandbox (1,000 people) and a
//! private OpenLDAP slapd are started; `peoplesync sync` runs a full cycle from a generated config
//! file, a person is changed through the HollyHR API, and an incremental cycle carries the change
//! into the directory.

use std::time::Instant;

use futures::TryStreamExt;
use secrecy::SecretString;

use super::CliError;
use super::sync::{SyncJob, run as run_sync};
use crate::directory::ldap::LdapDirectory;
use crate::directory::{Directory, Entry};
use crate::sandbox::{DEFAULT_API_KEY, SandboxConfig};
use crate::slapd::{self, Slapd};
use crate::source::hollyhr::model::{Lifecycle, UpdateEmploymentRequest};
use crate::source::hollyhr::{ClientConfig, HollyHrClient, Idempotency};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("failed to start slapd")]
    Slapd(#[from] crate::slapd::SlapdError),
    #[error("failed to write the demo files in {path}")]
    Files {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the directory")]
    Directory(#[from] crate::directory::ldap::LdapBackendError),
}

fn files_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Files {
        path: path.to_owned(),
        source,
    }
}

/// The config a user would write, pointing at the demo's sandbox and slapd.
fn config_yaml(hollyhr_url: &str, ldap_url: &str) -> String {
    format!(
        "# A PeopleSync spec for `peoplesync sync` (the same shape as the Kubernetes object).\n\
         source:\n  hollyhr:\n    baseUrl: {hollyhr_url}\n    apiKeySecretRef: {{ name: hollyhr, key: apiKey }}\n\
         target:\n  ldap:\n    url: {ldap_url}\n    bindDn: \"{admin}\"\n    bindPasswordSecretRef: {{ name: ldap, key: password }}\n\
         \x20   baseDn: \"{base}\"\n    peopleDn: \"{people}\"\n    groupsDn: \"{groups}\"\n\
         schedule:\n  pollInterval: 30s\n",
        admin = slapd::ADMIN_DN,
        base = slapd::BASE_DN,
        people = slapd::PEOPLE_DN,
        groups = slapd::GROUPS_DN,
    )
}

fn show(entry: &Entry) -> String {
    let value = |name: &str| {
        entry
            .attributes
            .get(name)
            .and_then(|v| v.first())
            .cloned()
            .unwrap_or_default()
    };
    format!(
        "  dn: {}\n  cn: {}\n  mail: {}\n  title: {}\n  employeeNumber: {}\n  manager: {}",
        entry.id,
        value("cn"),
        value("mail"),
        value("title"),
        value("employeeNumber"),
        value("manager"),
    )
}

pub async fn run(people: usize, seed: u64) -> Result<(), CliError> {
    let started = Instant::now();
    let sandbox = crate::sandbox::start(SandboxConfig {
        people,
        seed,
        ..SandboxConfig::default()
    })
    .await?;
    let ldap = Slapd::start().await.map_err(DemoError::from)?;
    println!(
        "Started a HollyHR sandbox with {people} people at {} and OpenLDAP at {}.",
        sandbox.base_url(),
        ldap.url()
    );

    let dir = ldap.dir().join("demo");
    let secrets = dir.join("secrets");
    for (name, key, value) in [
        ("hollyhr", "apiKey", DEFAULT_API_KEY),
        ("ldap", "password", ldap.admin_password.as_str()),
    ] {
        let path = secrets.join(name);
        std::fs::create_dir_all(&path).map_err(files_error(&path))?;
        std::fs::write(path.join(key), value).map_err(files_error(&path))?;
    }
    let config = dir.join("peoplesync.yaml");
    std::fs::write(&config, config_yaml(&sandbox.base_url(), &ldap.url()))
        .map_err(files_error(&config))?;
    let job = SyncJob {
        config: config.clone(),
        secrets_dir: secrets,
        state: dir.join("peoplesync.state.json"),
        once: true,
        dry_run: false,
        full: false,
    };
    println!("\n$ peoplesync sync --config {} --once", config.display());
    run_sync(job.clone()).await?;

    let directory = LdapDirectory::connect(ldap.ldap_config())
        .await
        .map_err(DemoError::from)?;
    let entries: Vec<Entry> = directory
        .entries()
        .try_collect()
        .await
        .map_err(DemoError::from)?;
    let enabled = entries.iter().filter(|e| e.enabled).count();
    println!(
        "\nThe directory now holds {} managed entries ({enabled} enabled; future starters wait disabled).",
        entries.len()
    );

    // A change made in HollyHR reaches the directory in the next incremental cycle.
    let client = HollyHrClient::new(ClientConfig::new(
        &sandbox.base_url(),
        SecretString::from(DEFAULT_API_KEY),
    )?)?;
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let person = crate::source::PeopleSource::people(&client, None)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .find(|p| p.lifecycle(today) == Lifecycle::Active && p.manager.is_some());
    if let Some(person) = person {
        let employment = client.person_employment(&person.id).await?;
        if let Some(etag) = employment.etag {
            let body = UpdateEmploymentRequest {
                job_title: Some(Some("Head of Demonstrations".to_owned())),
                ..UpdateEmploymentRequest::default()
            };
            client
                .update_employment(&person.id, &body, &etag, Idempotency::Derived)
                .await?;
            println!(
                "\nChanged the job title of {} through the HollyHR API; the next cycle picks it up:",
                person.id
            );
            println!("$ peoplesync sync --config {} --once", config.display());
            run_sync(job).await?;
            let entries: Vec<Entry> = directory
                .entries()
                .try_collect()
                .await
                .map_err(DemoError::from)?;
            if let Some(entry) = entries.iter().find(|e| e.anchor == person.id) {
                println!("\n{}", show(entry));
            }
        }
    }
    println!(
        "\nDone in {:.1} s. The sandbox and slapd stop with this command; on a cluster, the same spec \
         is a PeopleSync object (README: The operator).",
        started.elapsed().as_secs_f64()
    );
    sandbox.shutdown().await;
    Ok(())
}
