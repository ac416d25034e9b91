//! A private Samba Active Directory domain controller (Debian's `samba`, 4.17) for tests and
//! benchmarks: a fresh domain `PS.TEST` provisioned in a temporary directory with
//! `samba-tool domain provision`, started in the foreground on loopback with only the services
//! LDAP needs, serving `ldaps://127.0.0.1:636` with a certificate from a fresh test CA
//! ([`SambaDc::ca_pem`]). AD refuses simple binds without TLS, as Windows DCs are set up.
//!
//! Samba listens on the fixed ports 389 and 636 (it has no option to move them), so one DC
//! runs per machine at a time: a test process shares one ([`SambaDc::shared`]) and gives each
//! test its own OU. Samba runs with `-i` and its stdin held by this process: when the process
//! ends, however it ends, stdin closes and Samba stops (`EOF on stdin`). Provisioning takes a few
//! seconds; the DC answers LDAPS about 5 s after its start.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

pub const REALM: &str = "PS.TEST";
pub const BASE_DN: &str = "DC=ps,DC=test";
pub const ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=ps,DC=test";
/// `ldaps://` on loopback (the only port Samba serves simple binds on).
pub const URL: &str = "ldaps://127.0.0.1:636";

#[derive(Debug, thiserror::Error)]
pub enum SambaError {
    #[error(
        "Samba is not installed (apt-get install samba samba-ad-dc samba-ad-provision winbind krb5-user ldb-tools)"
    )]
    NotInstalled,
    #[error("failed to {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("samba-tool domain provision failed: {log}")]
    Provision { log: String },
    #[error("the Samba DC did not answer LDAPS within {seconds} s: {log}")]
    NotReady { seconds: u64, log: String },
    #[error("failed to issue the test certificate: {0}")]
    Certificate(String),
}

pub struct SambaDc {
    dir: PathBuf,
    child: Option<Child>,
    /// Held open: Samba stops when it reads EOF here.
    stdin: Option<ChildStdin>,
    pub admin_password: String,
    /// The CA that signed the DC's certificate (for `ldaps://127.0.0.1`).
    pub ca_pem: String,
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> SambaError {
    let action = action.into();
    move |source| SambaError::Io { action, source }
}

impl SambaDc {
    /// One DC for this process, started on first use (the ports are fixed: one per machine).
    pub async fn shared() -> Result<&'static SambaDc, String> {
        static DC: tokio::sync::OnceCell<Result<SambaDc, String>> =
            tokio::sync::OnceCell::const_new();
        DC.get_or_init(|| async {
            Self::start()
                .await
                .map_err(|e| crate::telemetry::report(&e))
        })
        .await
        .as_ref()
        .map_err(Clone::clone)
    }

    /// Provisions a fresh domain and starts its DC.
    pub async fn start() -> Result<Self, SambaError> {
        if !Path::new("/usr/sbin/samba").exists() || !Path::new("/usr/bin/samba-tool").exists() {
            return Err(SambaError::NotInstalled);
        }
        let suffix: u64 = rand::rng().random();
        let dir = std::env::temp_dir().join(format!("peoplesync-samba-{suffix:016x}"));
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        // AD's default policy wants upper, lower, digits and a symbol.
        let admin_password = format!("Ps-{:020x}-Aa1!", rand::rng().random::<u128>());
        let provision = Command::new("/usr/bin/samba-tool")
            .args([
                "domain",
                "provision",
                "--server-role=dc",
                "--dns-backend=NONE",
            ])
            .arg(format!("--realm={REALM}"))
            .arg("--domain=PS")
            .arg(format!("--adminpass={admin_password}"))
            .arg("--use-rfc2307")
            .arg(format!("--targetdir={}", dir.display()))
            .args([
                "--option=interfaces=lo",
                "--option=bind interfaces only=yes",
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(io("run samba-tool domain provision"))?;
        if !provision.status.success() {
            let log = String::from_utf8_lossy(&provision.stderr);
            return Err(SambaError::Provision {
                log: crate::controlplane::last_lines(&log, 20),
            });
        }
        let pki = crate::controlplane::TestPki::issue("samba")
            .map_err(|e| SambaError::Certificate(e.to_string()))?;
        let tls = dir.join("tls");
        std::fs::create_dir_all(&tls).map_err(io("create the TLS directory"))?;
        for (name, contents) in [
            ("ca.pem", &pki.ca_pem),
            ("cert.pem", &pki.cert_pem),
            ("key.pem", &pki.key_pem),
        ] {
            let path = tls.join(name);
            std::fs::write(&path, contents).map_err(io(format!("write {name}")))?;
        }
        // Samba refuses a key file others can read.
        set_mode(&tls.join("key.pem"), 0o600)?;
        let conf = dir.join("etc/smb.conf");
        let text = std::fs::read_to_string(&conf).map_err(io("read smb.conf"))?;
        let mut lines: Vec<String> = text
            .lines()
            .filter(|line| {
                let line = line.trim_start();
                !line.starts_with("log file") && !line.starts_with("server services")
            })
            .map(str::to_owned)
            .collect();
        let global = lines
            .iter()
            .position(|line| line.trim() == "[global]")
            .map_or(0, |at| at + 1);
        let extra = [
            format!("\tlog file = {}/log.%m", dir.display()),
            "\tserver services = ldap, cldap, kdc, rpc, nbt, drepl, kcc".to_owned(),
            "\ttls enabled = yes".to_owned(),
            format!("\ttls keyfile = {}", tls.join("key.pem").display()),
            format!("\ttls certfile = {}", tls.join("cert.pem").display()),
            format!("\ttls cafile = {}", tls.join("ca.pem").display()),
            // Above Linux's ephemeral ports (32768-60999), so no client socket of a test and no
            // port 0 bind can hold the port an RPC endpoint wants (the default starts at 49152).
            "\trpc server dynamic port range = 61000-61999".to_owned(),
        ];
        for (offset, line) in extra.into_iter().enumerate() {
            lines.insert(global + offset, line);
        }
        std::fs::write(&conf, lines.join("\n") + "\n").map_err(io("write smb.conf"))?;
        // A DC of an earlier test process may still be stopping (it stops when that process
        // ends): wait until its processes are gone and its fixed ports are free.
        let waited = Instant::now();
        while samba_running()
            || ["127.0.0.1:389", "127.0.0.1:636"]
                .iter()
                .any(|addr| std::net::TcpListener::bind(addr).is_err())
        {
            if waited.elapsed() > Duration::from_secs(20) {
                return Err(SambaError::NotReady {
                    seconds: 20,
                    log: "a samba process keeps running, or ports 389/636 on 127.0.0.1 stay taken (another Samba or LDAP server?)"
                        .into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::File::create(dir.join("samba.log")).map_err(io("create samba.log"))?;
        let log_err = log.try_clone().map_err(io("clone the log handle"))?;
        let mut child = Command::new("/usr/sbin/samba")
            .arg("-s")
            .arg(&conf)
            .args(["-i", "--no-process-group"])
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io("start samba"))?;
        let stdin = child.stdin.take();
        let mut dc = Self {
            dir,
            child: Some(child),
            stdin,
            admin_password,
            ca_pem: pki.ca_pem,
        };
        dc.wait_ready(Duration::from_secs(60)).await?;
        Ok(dc)
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), SambaError> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(SambaError::NotReady {
                    seconds: started.elapsed().as_secs(),
                    log: format!("samba exited with {status}: {}", self.log_tail()),
                });
            }
            if self.admin().await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(SambaError::NotReady {
                    seconds: limit.as_secs(),
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("samba.log")).unwrap_or_default();
        crate::controlplane::last_lines(&log, 20)
    }

    /// The ldap3 settings that trust this DC's CA.
    pub fn ldap_settings(&self) -> Result<ldap3::LdapConnSettings, SambaError> {
        let config = crate::directory::ldap::tls_config(&self.ca_pem)
            .map_err(|e| SambaError::Certificate(e.to_string()))?;
        Ok(ldap3::LdapConnSettings::new().set_config(std::sync::Arc::new(config)))
    }

    /// A plain ldap3 connection over LDAPS bound as the domain's Administrator (for seeding, and
    /// for tests that act as an admin editing the directory by hand).
    pub async fn admin(&self) -> Result<ldap3::Ldap, String> {
        let settings = self.ldap_settings().map_err(|e| e.to_string())?;
        let (connection, mut ldap) = ldap3::LdapConnAsync::with_settings(settings, URL)
            .await
            .map_err(|e| e.to_string())?;
        ldap3::drive!(connection);
        ldap.simple_bind(ADMIN_DN, &self.admin_password)
            .await
            .and_then(|r| r.success())
            .map_err(|e| e.to_string())?;
        Ok(ldap)
    }

    /// A fresh OU `name` under the domain with `OU=Staff` and `OU=Groups` in it (one per test):
    /// their DNs.
    /// The `ad` profile's configuration for a people and groups OU of this DC, as a user would
    /// write the target (LDAPS with the DC's CA).
    pub fn ldap_config(
        &self,
        people_dn: &str,
        groups_dn: &str,
    ) -> crate::directory::ldap::LdapConfig {
        let target: crate::crd::LdapTarget = serde_json::from_value(serde_json::json!({
            "url": URL,
            "bindDn": ADMIN_DN,
            "bindPasswordSecretRef": {"name": "ad", "key": "password"},
            "baseDn": BASE_DN,
            "peopleDn": people_dn,
            "groupsDn": groups_dn,
            "profile": "ad"
        }))
        .expect("a valid AD target");
        crate::directory::ldap::LdapConfig::from_spec(
            &target,
            secrecy::SecretString::from(self.admin_password.clone()),
            Some(self.ca_pem.clone()),
            crate::directory::standalone_mark(),
        )
    }

    pub async fn ou(&self, name: &str) -> Result<(String, String), String> {
        let mut admin = self.admin().await?;
        let base = format!("OU={name},{BASE_DN}");
        let people = format!("OU=Staff,{base}");
        let groups = format!("OU=Groups,{base}");
        for (dn, ou) in [(&base, name), (&people, "Staff"), (&groups, "Groups")] {
            admin
                .add(
                    dn,
                    vec![
                        ("objectClass", ["top", "organizationalUnit"].into()),
                        ("ou", [ou].into()),
                    ],
                )
                .await
                .and_then(|r| r.success())
                .map_err(|e| format!("adding {dn}: {e}"))?;
        }
        let _ = admin.unbind().await;
        Ok((people, groups))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Whether a `samba` process runs (one DC per machine: an earlier one is still stopping).
fn samba_running() -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        // `pid (comm) state …`; a zombie (never reaped where PID 1 does not reap) holds nothing.
        std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|stat| {
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                return false;
            };
            head.ends_with("(samba") && !rest.starts_with(['Z', 'X'])
        })
    })
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> Result<(), SambaError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io(format!("chmod {}", path.display())))
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        if let Some(child) = self.child.take() {
            crate::controlplane::terminate(child, Duration::from_secs(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
