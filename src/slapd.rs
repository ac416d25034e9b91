//! A private OpenLDAP `slapd` (Debian's package) for tests, benchmarks and the demo: its own
//! config and database in a temporary directory, a free loopback port, `dbnosync` for speed,
//! ppolicy loaded (for `pwdAccountLockedTime`), and the base entries `ou=people`, `ou=groups`,
//! `ou=disabled`. Dropping it stops slapd and removes its files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

pub const BASE_DN: &str = "dc=example,dc=com";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=com";
pub const PEOPLE_DN: &str = "ou=people,dc=example,dc=com";
pub const GROUPS_DN: &str = "ou=groups,dc=example,dc=com";
pub const DISABLED_DN: &str = "ou=disabled,dc=example,dc=com";

#[derive(Debug, thiserror::Error)]
pub enum SlapdError {
    #[error("slapd is not installed (apt-get install slapd ldap-utils)")]
    NotInstalled,
    #[error("failed to {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("slapd did not start: {log}")]
    NotReady { log: String },
    #[error("failed to seed the base entries: {0}")]
    Seed(String),
}

pub struct Slapd {
    dir: PathBuf,
    child: Option<Child>,
    binary: PathBuf,
    listen: String,
    pub port: u16,
    pub admin_password: String,
    /// With TLS: the `ldaps://` port (StartTLS works on `port`) and the CA that signed the cert.
    pub tls_port: Option<u16>,
    pub ca_pem: Option<String>,
}

fn slapd_binary() -> Option<PathBuf> {
    ["/usr/sbin/slapd", "/usr/local/sbin/slapd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Slapd {
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:<tls port>` (only with [`Slapd::start_with_tls`]).
    pub fn ldaps_url(&self) -> Option<String> {
        self.tls_port
            .map(|port| format!("ldaps://127.0.0.1:{port}"))
    }

    /// Starts slapd and seeds the base entries.
    pub async fn start() -> Result<Self, SlapdError> {
        Self::start_with(false).await
    }

    /// Like [`Slapd::start`], also serving `ldaps://` and StartTLS with a certificate from a fresh
    /// test CA ([`Slapd::ca_pem`]).
    pub async fn start_with_tls() -> Result<Self, SlapdError> {
        Self::start_with(true).await
    }

    async fn start_with(tls: bool) -> Result<Self, SlapdError> {
        let binary = slapd_binary().ok_or(SlapdError::NotInstalled)?;
        let suffix: u64 = rand::rng().random();
        let dir = std::env::temp_dir().join(format!("peoplesync-slapd-{suffix:016x}"));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(|source| SlapdError::Io {
            action: format!("create {}", data.display()),
            source,
        })?;
        let admin_password = format!("{:024x}", rand::rng().random::<u128>());
        let free_port = || -> Result<u16, SlapdError> {
            crate::controlplane::loopback_port().map_err(|source| SlapdError::Io {
                action: "find a free port".into(),
                source,
            })
        };
        let (tls_lines, tls_port, ca_pem) = if tls {
            let pki = crate::controlplane::TestPki::issue("slapd")
                .map_err(|e| SlapdError::Seed(e.to_string()))?;
            for (name, contents) in [
                ("ca.crt", &pki.ca_pem),
                ("server.crt", &pki.cert_pem),
                ("server.key", &pki.key_pem),
            ] {
                std::fs::write(dir.join(name), contents).map_err(|source| SlapdError::Io {
                    action: format!("write {name}"),
                    source,
                })?;
            }
            let lines = format!(
                "TLSCACertificateFile {d}/ca.crt\nTLSCertificateFile {d}/server.crt\nTLSCertificateKeyFile {d}/server.key\n",
                d = dir.display()
            );
            (lines, Some(free_port()?), Some(pki.ca_pem))
        } else {
            (String::new(), None, None)
        };
        let config = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             pidfile {dir}/slapd.pid\n\
             argsfile {dir}/slapd.args\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload ppolicy\n\
             {tls_lines}\
             sizelimit unlimited\n\
             database mdb\n\
             maxsize 1073741824\n\
             suffix \"{BASE_DN}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw {admin_password}\n\
             directory {data}\n\
             dbnosync\n\
             index objectClass eq\n\
             index uid,cn,mail,employeeNumber eq\n\
             overlay ppolicy\n",
            dir = dir.display(),
            data = data.display(),
        );
        let config_path = dir.join("slapd.conf");
        std::fs::write(&config_path, config).map_err(|source| SlapdError::Io {
            action: "write slapd.conf".into(),
            source,
        })?;
        let listen = |port: u16, tls_port: Option<u16>| match tls_port {
            Some(tls_port) => format!("ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"),
            None => format!("ldap://127.0.0.1:{port}/"),
        };
        let port = free_port()?;
        let mut slapd = Self {
            dir,
            child: None,
            binary,
            listen: listen(port, tls_port),
            port,
            admin_password,
            tls_port,
            ca_pem,
        };
        // A free port can be taken by someone else before slapd binds it (slapd then exits, or
        // another instance answers our bind wrongly): try fresh ones.
        let mut attempts = 0;
        loop {
            match slapd.spawn().await {
                Ok(()) => break,
                Err(SlapdError::NotReady { .. }) if attempts < 2 => {
                    attempts += 1;
                    slapd.stop();
                    slapd.port = free_port()?;
                    if slapd.tls_port.is_some() {
                        slapd.tls_port = Some(free_port()?);
                    }
                    slapd.listen = listen(slapd.port, slapd.tls_port);
                    let _ = std::fs::remove_file(slapd.dir.join("slapd.log"));
                }
                Err(other) => return Err(other),
            }
        }
        slapd.seed().await?;
        Ok(slapd)
    }

    /// Starts the process on this instance's config and waits until it accepts connections.
    async fn spawn(&mut self) -> Result<(), SlapdError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("slapd.log"))
            .map_err(|source| SlapdError::Io {
                action: "open slapd.log".into(),
                source,
            })?;
        let err = log.try_clone().map_err(|source| SlapdError::Io {
            action: "open slapd.log".into(),
            source,
        })?;
        let child = Command::new(&self.binary)
            .arg("-f")
            .arg(self.dir.join("slapd.conf"))
            .arg("-h")
            .arg(&self.listen)
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|source| SlapdError::Io {
                action: "start slapd".into(),
                source,
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            // Ready means an admin bind works: a bare TCP connect can succeed against another
            // instance that won the port, or connect the socket to itself on an ephemeral port.
            if crate::controlplane::accepts(self.port).await && self.admin().await.is_ok() {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .is_some();
            if exited || Instant::now() > deadline {
                return Err(SlapdError::NotReady {
                    log: std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops and starts slapd on the same port and data: every client connection drops.
    pub async fn restart(&mut self) -> Result<(), SlapdError> {
        self.start_again().await
    }

    /// The highest `entryCSN` under the base DN: it moves with every write slapd accepts (tests
    /// and benchmarks check that something wrote nothing).
    pub async fn highest_csn(&self) -> Result<String, SlapdError> {
        self.csns()
            .await?
            .into_iter()
            .map(|(_, csn)| csn)
            .max()
            .ok_or_else(|| SlapdError::Seed("no entry carries entryCSN".into()))
    }

    /// The DNs of the entries written after `csn` (one from [`Self::highest_csn`]), sorted.
    pub async fn changed_since(&self, csn: &str) -> Result<Vec<String>, SlapdError> {
        let mut changed: Vec<String> = self
            .csns()
            .await?
            .into_iter()
            .filter(|(_, entry)| entry.as_str() > csn)
            .map(|(dn, _)| dn)
            .collect();
        changed.sort();
        Ok(changed)
    }

    /// Every entry's DN and `entryCSN` under the base DN.
    async fn csns(&self) -> Result<Vec<(String, String)>, SlapdError> {
        let mut ldap = self.admin().await?;
        let (entries, _) = ldap
            .search(
                BASE_DN,
                ldap3::Scope::Subtree,
                "(objectClass=*)",
                vec!["entryCSN"],
            )
            .await
            .and_then(|r| r.success())
            .map_err(|e| SlapdError::Seed(e.to_string()))?;
        let _ = ldap.unbind().await;
        Ok(entries
            .into_iter()
            .filter_map(|e| {
                let entry = ldap3::SearchEntry::construct(e);
                let csn = entry.attrs.get("entryCSN")?.first()?.clone();
                Some((entry.dn, csn))
            })
            .collect())
    }

    /// A plain ldap3 connection bound as the admin (for seeding, and for tests that act as
    /// someone editing the directory by hand).
    pub async fn admin(&self) -> Result<ldap3::Ldap, SlapdError> {
        let (connection, mut ldap) = ldap3::LdapConnAsync::new(&self.url())
            .await
            .map_err(|e| SlapdError::Seed(e.to_string()))?;
        ldap3::drive!(connection);
        ldap.simple_bind(ADMIN_DN, &self.admin_password)
            .await
            .and_then(|r| r.success())
            .map_err(|e| SlapdError::Seed(e.to_string()))?;
        Ok(ldap)
    }

    async fn seed(&self) -> Result<(), SlapdError> {
        let mut ldap = self.admin().await?;
        let set = |values: &[&str]| {
            values
                .iter()
                .map(|v| (*v).to_owned())
                .collect::<std::collections::HashSet<String>>()
        };
        type Attrs = Vec<(String, std::collections::HashSet<String>)>;
        let entries: Vec<(&str, Attrs)> = vec![
            (
                BASE_DN,
                vec![
                    (
                        "objectClass".into(),
                        set(&["top", "dcObject", "organization"]),
                    ),
                    ("dc".into(), set(&["example"])),
                    ("o".into(), set(&["Example"])),
                ],
            ),
            (
                PEOPLE_DN,
                vec![
                    ("objectClass".into(), set(&["organizationalUnit"])),
                    ("ou".into(), set(&["people"])),
                ],
            ),
            (
                GROUPS_DN,
                vec![
                    ("objectClass".into(), set(&["organizationalUnit"])),
                    ("ou".into(), set(&["groups"])),
                ],
            ),
            (
                DISABLED_DN,
                vec![
                    ("objectClass".into(), set(&["organizationalUnit"])),
                    ("ou".into(), set(&["disabled"])),
                ],
            ),
        ];
        for (dn, attrs) in entries {
            ldap.add(dn, attrs)
                .await
                .and_then(|r| r.success())
                .map_err(|e| SlapdError::Seed(format!("{dn}: {e}")))?;
        }
        let _ = ldap.unbind().await;
        Ok(())
    }

    /// The LDAP backend's configuration for this server: admin bind, `inetOrgPerson` under
    /// `ou=people`, groups under `ou=groups`, disabled by ppolicy's permanent lock.
    pub fn ldap_config(&self) -> crate::directory::ldap::LdapConfig {
        config_for(&self.url(), &self.admin_password)
    }

    /// Stops slapd (its data stays): clients see the connection drop and reconnects fail.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::controlplane::terminate(child, Duration::from_secs(5));
        }
    }

    /// Starts a stopped slapd again on the same port and data.
    pub async fn start_again(&mut self) -> Result<(), SlapdError> {
        self.stop();
        self.spawn().await
    }

    /// Adds LDIF with `ldapadd` (one connection, sequential adds): the baseline the benchmarks
    /// measure the backend against.
    pub fn ldapadd(&self, ldif: &str) -> Result<(), SlapdError> {
        let file = self
            .dir
            .join(format!("add-{}.ldif", rand::rng().random::<u32>()));
        std::fs::write(&file, ldif).map_err(|source| SlapdError::Io {
            action: "write LDIF".into(),
            source,
        })?;
        let status = Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &self.url(),
                "-D",
                ADMIN_DN,
                "-w",
                &self.admin_password,
                "-f",
            ])
            .arg(&file)
            .stdout(Stdio::null())
            .status()
            .map_err(|source| SlapdError::Io {
                action: "run ldapadd (apt-get install ldap-utils)".into(),
                source,
            })?;
        let _ = std::fs::remove_file(&file);
        if status.success() {
            Ok(())
        } else {
            Err(SlapdError::Seed(format!("ldapadd exited with {status}")))
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// LDIF (RFC 2849) for `entries` (DN, attributes): values that are not safe ASCII are base64.
pub fn ldif<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a crate::directory::Attributes)>,
) -> String {
    use base64::Engine as _;
    use std::fmt::Write as _;
    let mut out = String::new();
    let line = |out: &mut String, attribute: &str, value: &str| {
        let safe = value.bytes().all(|b| (0x20..0x7f).contains(&b))
            && !value.starts_with([' ', ':', '<'])
            && !value.ends_with(' ');
        if safe {
            let _ = writeln!(out, "{attribute}: {value}");
        } else {
            let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
            let _ = writeln!(out, "{attribute}:: {encoded}");
        }
    };
    for (dn, attributes) in entries {
        line(&mut out, "dn", dn);
        for (name, values) in attributes {
            for value in values {
                line(&mut out, name, value);
            }
        }
        out.push('\n');
    }
    out
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            // slapd exits 0 on SIGTERM after flushing; SIGKILL only if it does not.
            crate::controlplane::terminate(child, Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The configuration [`Slapd::ldap_config`] gives, for any server at `url` with the same layout
/// (tests pointing the backend at a hostile server use it too).
pub fn config_for(url: &str, admin_password: &str) -> crate::directory::ldap::LdapConfig {
    use crate::directory::ldap::{DisableStrategy, LdapConfig, PERMANENT_LOCK};
    LdapConfig {
        url: url.to_owned(),
        start_tls: false,
        allow_plaintext: false,
        ca_pem: None,
        bind_dn: ADMIN_DN.into(),
        bind_password: secrecy::SecretString::from(admin_password.to_owned()),
        base_dn: BASE_DN.into(),
        people_dn: PEOPLE_DN.into(),
        rdn_attribute: "uid".into(),
        anchor_attribute: "employeeNumber".into(),
        owner_attribute: crate::directory::ldap::DEFAULT_OWNER_ATTRIBUTE.into(),
        owner_mark: crate::directory::standalone_mark(),
        object_classes: ["top", "person", "organizationalPerson", "inetOrgPerson"]
            .map(String::from)
            .to_vec(),
        disable: DisableStrategy::SetAttribute {
            attribute: "pwdAccountLockedTime".into(),
            value: PERMANENT_LOCK.into(),
        },
        timeout: Duration::from_secs(10),
        page_size: crate::directory::ldap::DEFAULT_PAGE_SIZE,
        groups_dn: Some(GROUPS_DN.into()),
        group_anchor_attribute: "businessCategory".into(),
        group_object_class: "groupOfNames".into(),
        directory_unique: Vec::new(),
        member_range: None,
        initial_password: Default::default(),
        people_subtree: false,
        people_filter: String::new(),
        group_name_max: None,
    }
}
