//! A private 389 Directory Server (Debian's `389-ds-base`, 2.3) for tests and benchmarks: an
//! instance of its own created with `dscreate from-file` (no systemd: lib389 skips `systemctl`
//! when it finds its container marker `/data/config/container.inf`), on free loopback ports,
//! started in the foreground with `ns-slapd -D`, suffix `dc=ps,dc=test`, bound as
//! `cn=Directory Manager`. Creating an instance takes about 5 s, so a test process shares one
//! ([`Ds389::shared`]) and gives each test its own OU ([`Ds389::ou`]).
//!
//! `ns-slapd` runs under a shell that holds this process's pipe: when the process ends, however
//! it ends, the pipe closes and the shell stops the server. Dropping the fixture removes the
//! instance's files; instances left by a process that was killed are removed by the next start.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

pub const SUFFIX: &str = "dc=ps,dc=test";
pub const ADMIN_DN: &str = "cn=Directory Manager";
/// lib389's marker: with it, `dscreate` does not call `systemctl`.
const CONTAINER_MARKER: &str = "/data/config/container.inf";
const RUN_DIR: &str = "/data/run";
const PREFIX: &str = "pstest";

#[derive(Debug, thiserror::Error)]
pub enum Ds389Error {
    #[error("389 Directory Server is not installed (apt-get install 389-ds-base)")]
    NotInstalled,
    #[error("failed to {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("dscreate from-file failed: {log}")]
    Create { log: String },
    #[error("389-ds did not answer within {seconds} s: {log}")]
    NotReady { seconds: u64, log: String },
    #[error("{0}")]
    Ldap(String),
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Ds389Error {
    let action = action.into();
    move |source| Ds389Error::Io { action, source }
}

pub struct Ds389 {
    instance: String,
    dir: PathBuf,
    child: Option<Child>,
    /// Held open: the server stops when the shell that runs it reads EOF here.
    stdin: Option<ChildStdin>,
    pub port: u16,
    pub admin_password: String,
}

fn free_port() -> Result<u16, Ds389Error> {
    crate::controlplane::loopback_port().map_err(io("find a free port"))
}

/// The directories `dscreate` makes for an instance.
fn instance_dirs(instance: &str) -> [PathBuf; 4] {
    let name = format!("slapd-{instance}");
    [
        Path::new("/etc/dirsrv").join(&name),
        Path::new("/var/lib/dirsrv").join(&name),
        Path::new("/var/log/dirsrv").join(&name),
        Path::new("/run/lock/dirsrv").join(&name),
    ]
}

fn remove_instance(instance: &str) {
    for dir in instance_dirs(instance) {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_file(Path::new(RUN_DIR).join(format!("slapd-{instance}.pid")));
    let _ = std::fs::remove_file(format!("/run/dirsrv/slapd-{instance}.stats"));
    let _ = std::fs::remove_file(format!("/dev/shm/sem.slapd-{instance}.stats"));
}

/// Removes instances of processes that are gone (named `pstest<pid>n<k>`).
fn sweep() {
    let Ok(entries) = std::fs::read_dir("/etc/dirsrv") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(instance) = name.strip_prefix("slapd-") else {
            continue;
        };
        let Some(rest) = instance.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('n').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_instance(instance);
        }
    }
}

impl Ds389 {
    /// One server for this process, created on first use.
    pub async fn shared() -> Result<&'static Ds389, String> {
        static DS: tokio::sync::OnceCell<Result<Ds389, String>> =
            tokio::sync::OnceCell::const_new();
        DS.get_or_init(|| async {
            Self::start()
                .await
                .map_err(|e| crate::telemetry::report(&e))
        })
        .await
        .as_ref()
        .map_err(Clone::clone)
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Creates a fresh instance and starts it.
    pub async fn start() -> Result<Self, Ds389Error> {
        if !Path::new("/usr/sbin/dscreate").exists() || !Path::new("/usr/sbin/ns-slapd").exists() {
            return Err(Ds389Error::NotInstalled);
        }
        sweep();
        let marker = Path::new(CONTAINER_MARKER);
        if !marker.exists() {
            std::fs::create_dir_all(marker.parent().unwrap_or(Path::new("/")))
                .map_err(io("create /data/config (lib389's container marker)"))?;
            std::fs::write(marker, "").map_err(io("write lib389's container marker"))?;
        }
        std::fs::create_dir_all(RUN_DIR).map_err(io("create /data/run"))?;
        // The server runs as dirsrv and writes its pid file there.
        let _ = Command::new("chown")
            .args(["dirsrv:dirsrv", RUN_DIR])
            .status();

        static INSTANCES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let instance = format!(
            "{PREFIX}{}n{}",
            std::process::id(),
            INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("peoplesync-{instance}"));
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let admin_password = format!("Ps-{:020x}", rand::rng().random::<u128>());
        let port = free_port()?;
        let secure_port = free_port()?;
        let inf = format!(
            "[general]\nsystemd = False\nselinux = False\nstrict_host_checking = False\n\
             start = False\n\n[slapd]\ninstance_name = {instance}\nport = {port}\n\
             secure_port = {secure_port}\nroot_password = {admin_password}\n\
             self_sign_cert = False\n\n[backend-userroot]\nsuffix = {SUFFIX}\n\
             create_suffix_entry = True\nsample_entries = no\n"
        );
        let inf_path = dir.join("instance.inf");
        std::fs::write(&inf_path, inf).map_err(io("write the instance INF"))?;
        let mut server = Self {
            instance: instance.clone(),
            dir,
            child: None,
            stdin: None,
            port,
            admin_password,
        };
        let created = Command::new("/usr/sbin/dscreate")
            .arg("from-file")
            .arg(&inf_path)
            .stdin(Stdio::null())
            .output()
            .map_err(io("run dscreate"))?;
        // The INF holds the root password.
        let _ = std::fs::remove_file(&inf_path);
        if !created.status.success() {
            let log = format!(
                "{}{}",
                String::from_utf8_lossy(&created.stdout),
                String::from_utf8_lossy(&created.stderr)
            );
            return Err(Ds389Error::Create {
                log: crate::controlplane::last_lines(&log, 20),
            });
        }
        server.spawn()?;
        server.wait_ready(Duration::from_secs(60)).await?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), Ds389Error> {
        let config = format!("/etc/dirsrv/slapd-{}", self.instance);
        let pid = format!("{RUN_DIR}/slapd-{}.pid", self.instance);
        let log = std::fs::File::create(self.dir.join("ns-slapd.log"))
            .map_err(io("create ns-slapd.log"))?;
        let log_err = log.try_clone().map_err(io("clone the log handle"))?;
        // `-d 0` keeps ns-slapd in the foreground; the shell stops it when stdin closes.
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(
                "/usr/sbin/ns-slapd -D \"$1\" -i \"$2\" -d 0 & pid=$!; \
                 trap 'kill $pid 2>/dev/null; wait $pid; exit 0' TERM; \
                 cat >/dev/null; kill $pid 2>/dev/null; wait $pid",
            )
            .args(["ns-slapd", &config, &pid])
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io("start ns-slapd"))?;
        self.stdin = child.stdin.take();
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), Ds389Error> {
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Ds389Error::NotReady {
                    seconds: started.elapsed().as_secs(),
                    log: format!("ns-slapd exited with {status}: {}", self.log_tail()),
                });
            }
            if self.admin().await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(Ds389Error::NotReady {
                    seconds: limit.as_secs(),
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_tail(&self) -> String {
        let mut log = std::fs::read_to_string(self.dir.join("ns-slapd.log")).unwrap_or_default();
        let errors = format!("/var/log/dirsrv/slapd-{}/errors", self.instance);
        log.push_str(&std::fs::read_to_string(errors).unwrap_or_default());
        crate::controlplane::last_lines(&log, 20)
    }

    /// A plain ldap3 connection bound as the Directory Manager.
    pub async fn admin(&self) -> Result<ldap3::Ldap, String> {
        let (connection, mut ldap) = ldap3::LdapConnAsync::new(&self.url())
            .await
            .map_err(|e| e.to_string())?;
        ldap3::drive!(connection);
        ldap.simple_bind(ADMIN_DN, &self.admin_password)
            .await
            .and_then(|r| r.success())
            .map_err(|e| e.to_string())?;
        Ok(ldap)
    }

    /// A fresh OU `name` under the suffix with `ou=people`, `ou=groups` and `ou=disabled` in it
    /// (one per test): their DNs.
    pub async fn ou(&self, name: &str) -> Result<Ou, String> {
        let mut admin = self.admin().await?;
        let base = format!("ou={name},{SUFFIX}");
        let ou = Ou {
            people: format!("ou=people,{base}"),
            groups: format!("ou=groups,{base}"),
            disabled: format!("ou=disabled,{base}"),
        };
        for (dn, value) in [
            (&base, name),
            (&ou.people, "people"),
            (&ou.groups, "groups"),
            (&ou.disabled, "disabled"),
        ] {
            admin
                .add(
                    dn,
                    vec![
                        ("objectClass", ["top", "organizationalUnit"].into()),
                        ("ou", [value].into()),
                    ],
                )
                .await
                .and_then(|r| r.success())
                .map_err(|e| format!("adding {dn}: {e}"))?;
        }
        let _ = admin.unbind().await;
        Ok(ou)
    }

    /// The LDAP backend's configuration for an OU of this server, as the `389ds` profile sets
    /// it: `inetOrgPerson` named by `uid`, anchored by `employeeNumber`, disabled with
    /// `nsAccountLock`, groups as `groupOfNames`.
    pub fn ldap_config(&self, ou: &Ou) -> crate::directory::ldap::LdapConfig {
        let target: crate::crd::LdapTarget = serde_json::from_value(serde_json::json!({
            "url": self.url(),
            "bindDn": ADMIN_DN,
            "bindPasswordSecretRef": {"name": "ds389", "key": "password"},
            "baseDn": SUFFIX,
            "peopleDn": ou.people,
            "groupsDn": ou.groups,
            "profile": "389ds"
        }))
        .expect("a valid 389-ds target");
        crate::directory::ldap::LdapConfig::from_spec(
            &target,
            secrecy::SecretString::from(self.admin_password.clone()),
            None,
            crate::directory::standalone_mark(),
        )
    }

    /// Adds LDIF with `ldapadd` (one connection, sequential adds): the baseline of P1.
    pub fn ldapadd(&self, ldif: &str) -> Result<(), Ds389Error> {
        let file = self
            .dir
            .join(format!("add-{}.ldif", rand::rng().random::<u32>()));
        std::fs::write(&file, ldif).map_err(io("write LDIF"))?;
        let status = Command::new("ldapadd")
            .args(["-x", "-H", &self.url(), "-D", ADMIN_DN, "-w"])
            .arg(&self.admin_password)
            .arg("-f")
            .arg(&file)
            .stdout(Stdio::null())
            .status()
            .map_err(io("run ldapadd (apt-get install ldap-utils)"))?;
        let _ = std::fs::remove_file(&file);
        if status.success() {
            Ok(())
        } else {
            Err(Ds389Error::Ldap(format!("ldapadd exited with {status}")))
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }
}

/// One test's OU on a shared server.
#[derive(Debug, Clone)]
pub struct Ou {
    pub people: String,
    pub groups: String,
    pub disabled: String,
}

impl Drop for Ds389 {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        if let Some(child) = self.child.take() {
            crate::controlplane::terminate(child, Duration::from_secs(10));
        }
        remove_instance(&self.instance);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
