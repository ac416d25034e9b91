//! A real Kubernetes control plane (etcd + kube-apiserver) for tests and local use, started the
//! way controller-runtime's envtest does it: binaries built from their Go modules
//! (`scripts/controlplane/build.sh`), free loopback ports, generated certificates, a token for an
//! admin in `system:masters`, `/readyz` polled, a kubeconfig written.
//!
//! [`ControlPlane`] owns its processes: dropping it (also while a test panics) kills them and
//! removes its files. Each test starts its own — about two seconds — rather than sharing one
//! through a static, which would never be dropped and would leave processes behind.
//! [`up`] / [`down`] run a detached one by hand (`peoplesync controlplane up|down`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use rand::Rng;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde::{Deserialize, Serialize};

/// Env var naming a directory that already holds `etcd`, `kube-apiserver` and `kubectl`.
pub const BIN_ENV: &str = "PEOPLESYNC_CONTROLPLANE_BIN";
const ADMIN_USER: &str = "peoplesync-admin";
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    #[error("failed to build the control plane binaries with scripts/controlplane/build.sh")]
    Build(#[source] std::io::Error),
    #[error("scripts/controlplane/build.sh failed: {0}")]
    BuildFailed(String),
    #[error("failed to {action}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to generate certificates")]
    Certificates(#[from] rcgen::Error),
    #[error("{what} did not become ready within {seconds} s; last log lines:\n{log}")]
    NotReady {
        what: &'static str,
        seconds: u64,
        log: String,
    },
    #[error("failed to talk to the API server")]
    Kube(#[from] kube::Error),
    #[error("failed to load the kubeconfig")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("failed to read the CRD {path}")]
    Crd {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("the CRD {0} was not Established in time")]
    CrdNotEstablished(String),
    #[error("no control plane is running (state file {0} missing)")]
    NotUp(PathBuf),
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> ControlPlaneError {
    let action = action.into();
    move |source| ControlPlaneError::Io { action, source }
}

/// The directory with the binaries: `$PEOPLESYNC_CONTROLPLANE_BIN`, or what the build script
/// prints (it builds only what is missing from its versioned cache).
pub fn bin_dir() -> Result<PathBuf, ControlPlaneError> {
    if let Some(dir) = std::env::var_os(BIN_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/controlplane/build.sh");
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(ControlPlaneError::Build)?;
    if !output.status.success() {
        return Err(ControlPlaneError::BuildFailed(format!(
            "exit status {}",
            output.status
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .last()
        .map(|line| PathBuf::from(line.trim()))
        .ok_or_else(|| ControlPlaneError::BuildFailed("it printed no directory".into()))
}

fn free_port() -> Result<u16, ControlPlaneError> {
    loopback_port().map_err(io("find a free port"))
}

/// A free loopback port for a server a test starts, chosen **outside the kernel's ephemeral
/// range** (`net.ipv4.ip_local_port_range`): a port taken from `bind(0)` and released can be
/// taken again by any outgoing connection's source port before the server binds it (a trial
/// failed so: the operator could not listen, `Address already in use`). Ports below the range
/// are only ever taken by an explicit bind; this checks one is free, and never hands the same
/// port out twice in a process.
pub fn loopback_port() -> std::io::Result<u16> {
    use rand::Rng as _;
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.saturating_sub(1));
    if high <= low + 1_000 {
        // An unusual range: fall back to the kernel's choice.
        return TcpListener::bind("127.0.0.1:0")?
            .local_addr()
            .map(|a| a.port());
    }
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = rand::rng();
    for _ in 0..10_000 {
        let port = rng.random_range(low..=high);
        if handed.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed.insert(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free loopback port in {low}..={high}"),
    ))
}

fn tail(path: &Path) -> String {
    last_lines(&std::fs::read_to_string(path).unwrap_or_default(), 15)
}

/// The last `count` lines of `text` (a log's end, for an error message).
pub(crate) fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// A throwaway CA and a serving certificate it signed for `localhost` and `127.0.0.1`.
pub struct TestPki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestPki {
    pub fn issue(common_name: &str) -> Result<Self, rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            DnType::CommonName,
            format!("peoplesync test CA for {common_name}"),
        );
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &ca)?;
        Ok(Self {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// What a detached control plane left behind (`up` writes it, `down` reads it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpInfo {
    pub kubeconfig: PathBuf,
    pub server: String,
    pub etcd_pid: u32,
    pub apiserver_pid: u32,
    pub dir: PathBuf,
}

/// A running etcd + kube-apiserver.
pub struct ControlPlane {
    dir: PathBuf,
    bin: PathBuf,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    server: String,
    kubeconfig: PathBuf,
    /// How long start-up took (until `/readyz` answered ok).
    pub startup: Duration,
    detached: bool,
    /// What restarts need: each process's flags, etcd's URL, the admin token, a client that
    /// trusts the test CA.
    etcd_args: Vec<String>,
    apiserver_args: Vec<String>,
    etcd_url: String,
    token: String,
    http: Option<reqwest::Client>,
}

impl ControlPlane {
    /// Starts a fresh control plane in a new temporary directory.
    pub async fn start() -> Result<Self, ControlPlaneError> {
        let suffix: u64 = rand::rng().random();
        let dir = std::env::temp_dir().join(format!("peoplesync-cp-{suffix:016x}"));
        Self::start_in(dir, false).await
    }

    /// Starts one, again on new ports when a port it was given was taken meanwhile (a free port
    /// is found by binding and releasing it, so another process can take it first).
    async fn start_in(dir: PathBuf, detached: bool) -> Result<Self, ControlPlaneError> {
        let mut attempt = 1;
        loop {
            match Self::start_once(dir.clone(), detached).await {
                Err(ControlPlaneError::NotReady { log, .. })
                    if attempt < 3 && log.contains("address already in use") =>
                {
                    tracing::warn!(
                        attempt,
                        "a control-plane port was taken meanwhile; starting again"
                    );
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn start_once(dir: PathBuf, detached: bool) -> Result<Self, ControlPlaneError> {
        let started = Instant::now();
        let bin = bin_dir()?;
        std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        let write = |name: &str, contents: &str| -> Result<PathBuf, ControlPlaneError> {
            let path = dir.join(name);
            std::fs::write(&path, contents).map_err(io(format!("write {}", path.display())))?;
            Ok(path)
        };

        // Certificates: a CA and the API server's serving cert (IP SAN 127.0.0.1: hostname checks
        // against 127.0.0.1 need an IP SAN), and the service-account signing key.
        let pki = TestPki::issue("kube-apiserver")?;
        let sa_key = KeyPair::generate()?;
        let ca_path = write("ca.crt", &pki.ca_pem)?;
        let cert_path = write("apiserver.crt", &pki.cert_pem)?;
        let key_path = write("apiserver.key", &pki.key_pem)?;
        let sa_key_path = write("sa.key", &sa_key.serialize_pem())?;
        let sa_pub_path = write("sa.pub", &sa_key.public_key_pem())?;
        let token = format!("{:032x}", rand::rng().random::<u128>());
        let tokens = write(
            "tokens.csv",
            &format!("{token},{ADMIN_USER},{ADMIN_USER},\"system:masters\"\n"),
        )?;

        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let spawn =
            |name: &str, program: PathBuf, args: Vec<String>| -> Result<Child, ControlPlaneError> {
                let log = std::fs::File::create(dir.join(format!("{name}.log")))
                    .map_err(io(format!("create {name}.log")))?;
                let err = log.try_clone().map_err(io(format!("open {name}.log")))?;
                let mut command = Command::new(program);
                command
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(log)
                    .stderr(err);
                if detached {
                    // Its own process group: the terminal's Ctrl-C does not reach it.
                    std::os::unix::process::CommandExt::process_group(&mut command, 0);
                }
                command.spawn().map_err(io(format!("start {name}")))
            };
        let etcd_args = vec![
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ];
        let etcd = spawn("etcd", bin.join("etcd"), etcd_args.clone())?;
        let mut plane = Self {
            server: format!("https://127.0.0.1:{api_port}"),
            kubeconfig: dir.join("kubeconfig"),
            dir: dir.clone(),
            bin: bin.clone(),
            etcd: Some(etcd),
            apiserver: None,
            startup: Duration::ZERO,
            detached,
            etcd_args,
            apiserver_args: Vec::new(),
            etcd_url: etcd_url.clone(),
            token: token.clone(),
            http: None,
        };
        let http = reqwest::Client::builder()
            .add_root_certificate(
                reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).map_err(|e| {
                    ControlPlaneError::Io {
                        action: "load the test CA".into(),
                        source: std::io::Error::other(e),
                    }
                })?,
            )
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| ControlPlaneError::Io {
                action: "build an HTTP client".into(),
                source: std::io::Error::other(e),
            })?;
        if let Err(error) = wait_until(
            &http,
            &format!("{etcd_url}/health"),
            None,
            &dir.join("etcd.log"),
            "etcd",
            plane.etcd.as_mut(),
        )
        .await
        {
            plane.stop();
            return Err(error);
        }
        plane.apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", dir.display()),
            format!("--tls-cert-file={}", cert_path.display()),
            format!("--tls-private-key-file={}", key_path.display()),
            format!("--client-ca-file={}", ca_path.display()),
            format!("--token-auth-file={}", tokens.display()),
            "--authorization-mode=RBAC".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--allow-privileged=true".into(),
            "--disable-admission-plugins=ServiceAccount".into(),
            format!("--service-account-issuer=https://127.0.0.1:{api_port}"),
            format!("--service-account-key-file={}", sa_pub_path.display()),
            format!(
                "--service-account-signing-key-file={}",
                sa_key_path.display()
            ),
        ];
        plane.apiserver = Some(spawn(
            "kube-apiserver",
            bin.join("kube-apiserver"),
            plane.apiserver_args.clone(),
        )?);
        if let Err(error) = wait_until(
            &http,
            &format!("{}/readyz", plane.server),
            Some(&token),
            &dir.join("kube-apiserver.log"),
            "kube-apiserver",
            plane.apiserver.as_mut(),
        )
        .await
        {
            plane.stop();
            return Err(error);
        }
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: peoplesync-test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {ADMIN_USER}\n  user:\n    token: {token}\ncontexts:\n- name: peoplesync-test\n  context:\n    cluster: peoplesync-test\n    user: {ADMIN_USER}\n    namespace: default\ncurrent-context: peoplesync-test\n",
            server = plane.server,
            ca = ca_path.display(),
        );
        write("kubeconfig", &kubeconfig)?;
        plane.startup = started.elapsed();
        plane.http = Some(http);
        Ok(plane)
    }

    /// Starts one of its processes again with the same flags (ports, data, certificates), its
    /// output appended to its log.
    fn respawn(&self, name: &str, args: &[String]) -> Result<Child, ControlPlaneError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .map_err(io(format!("open {name}.log")))?;
        let err = log.try_clone().map_err(io(format!("open {name}.log")))?;
        Command::new(self.bin.join(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(io(format!("start {name}")))
    }

    /// Kills kube-apiserver (SIGKILL: no graceful shutdown), keeps it down for `down`, and
    /// starts it again on the same port and etcd; returns once `/readyz` answers.
    pub async fn restart_apiserver(&mut self, down: Duration) -> Result<(), ControlPlaneError> {
        kill(&mut self.apiserver);
        tokio::time::sleep(down).await;
        self.apiserver = Some(self.respawn("kube-apiserver", &self.apiserver_args)?);
        self.wait_apiserver().await
    }

    /// Kills etcd (SIGKILL), keeps it down for `down`, and starts it again on its data; returns
    /// once etcd and then the API server report healthy.
    pub async fn restart_etcd(&mut self, down: Duration) -> Result<(), ControlPlaneError> {
        kill(&mut self.etcd);
        tokio::time::sleep(down).await;
        self.etcd = Some(self.respawn("etcd", &self.etcd_args)?);
        let http = self.http.clone().expect("started");
        wait_until(
            &http,
            &format!("{}/health", self.etcd_url),
            None,
            &self.dir.join("etcd.log"),
            "etcd",
            self.etcd.as_mut(),
        )
        .await?;
        self.wait_apiserver().await
    }

    async fn wait_apiserver(&mut self) -> Result<(), ControlPlaneError> {
        let http = self.http.clone().expect("started");
        wait_until(
            &http,
            &format!("{}/readyz", self.server),
            Some(&self.token),
            &self.dir.join("kube-apiserver.log"),
            "kube-apiserver",
            self.apiserver.as_mut(),
        )
        .await
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn server_url(&self) -> &str {
        &self.server
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The cluster admin's client configuration (what the controller builds its client from).
    pub async fn kube_config(&self) -> Result<kube::Config, ControlPlaneError> {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)?;
        Ok(kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?)
    }

    /// A client authenticated as the cluster admin.
    pub async fn client(&self) -> Result<Client, ControlPlaneError> {
        Ok(Client::try_from(self.kube_config().await?)?)
    }

    /// A client that impersonates `user` (e.g. `system:serviceaccount:ns:name`) and its groups.
    pub async fn client_as(
        &self,
        user: &str,
        groups: &[&str],
    ) -> Result<Client, ControlPlaneError> {
        Ok(Client::try_from(self.kube_config_as(user, groups).await?)?)
    }

    /// The configuration of a client that impersonates `user` and its groups.
    pub async fn kube_config_as(
        &self,
        user: &str,
        groups: &[&str],
    ) -> Result<kube::Config, ControlPlaneError> {
        let mut config = self.kube_config().await?;
        config.auth_info.impersonate = Some(user.to_owned());
        config.auth_info.impersonate_groups =
            Some(groups.iter().map(|g| (*g).to_owned()).collect());
        Ok(config)
    }

    /// `kubectl --kubeconfig <ours>`.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin.join("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// Applies every CRD in `dir` (server-side) and waits until each is Established.
    pub async fn install_crds(&self, dir: &Path) -> Result<Vec<String>, ControlPlaneError> {
        let client = self.client().await?;
        let api: Api<CustomResourceDefinition> = Api::all(client);
        let mut names = Vec::new();
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(format!("read {}", dir.display())))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        entries.sort();
        for path in entries {
            let text =
                std::fs::read_to_string(&path).map_err(io(format!("read {}", path.display())))?;
            let crd: CustomResourceDefinition =
                serde_yaml_ng::from_str(&text).map_err(|source| ControlPlaneError::Crd {
                    path: path.clone(),
                    source,
                })?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            api.patch(
                &name,
                &PatchParams::apply("peoplesync-tests").force(),
                &Patch::Apply(&crd),
            )
            .await?;
            names.push(name);
        }
        for name in &names {
            let established = kube::runtime::wait::await_condition(
                api.clone(),
                name,
                kube::runtime::conditions::is_crd_established(),
            );
            tokio::time::timeout(Duration::from_secs(30), established)
                .await
                .map_err(|_| ControlPlaneError::CrdNotEstablished(name.clone()))?
                .map_err(|_| ControlPlaneError::CrdNotEstablished(name.clone()))?;
        }
        Ok(names)
    }

    /// Creates a namespace `<prefix>-<random>` for one test.
    pub async fn create_namespace(&self, prefix: &str) -> Result<String, ControlPlaneError> {
        let name = format!("{prefix}-{:08x}", rand::rng().random::<u32>());
        let api: Api<Namespace> = Api::all(self.client().await?);
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some(name.clone());
        api.create(&PostParams::default(), &namespace).await?;
        Ok(name)
    }

    fn stop(&mut self) {
        for child in [self.apiserver.take(), self.etcd.take()]
            .into_iter()
            .flatten()
        {
            // SIGTERM first so etcd and the API server shut down cleanly, then make sure.
            terminate(child, Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if !self.detached {
            self.stop();
        }
    }
}

/// SIGKILL, reaped (a crash, not a shutdown).
fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Whether something listens on `127.0.0.1:port`. A connect to a free port in the ephemeral
/// range can, rarely, connect the socket to itself (TCP simultaneous open); that is not a server.
pub async fn accepts(port: u16) -> bool {
    match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
        Ok(stream) => match (stream.local_addr(), stream.peer_addr()) {
            (Ok(local), Ok(peer)) => local != peer,
            _ => false,
        },
        Err(_) => false,
    }
}

/// Stops a child we started: SIGTERM, up to `grace` to exit, then SIGKILL; always reaped.
/// (`kill(1)` sends the SIGTERM: std offers only SIGKILL and the crate forbids `unsafe`.)
pub fn terminate(mut child: Child, grace: Duration) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

async fn wait_until(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    log: &Path,
    what: &'static str,
    mut child: Option<&mut Child>,
) -> Result<(), ControlPlaneError> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        // A process that exited (a port taken, a bad flag) is not going to become ready.
        if let Some(child) = child.as_deref_mut()
            && matches!(child.try_wait(), Ok(Some(_)))
        {
            return Err(ControlPlaneError::NotReady {
                what,
                seconds: READY_TIMEOUT.as_secs(),
                log: tail(log),
            });
        }
        let mut request = http.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Ok(response) = request.send().await
            && response.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ControlPlaneError::NotReady {
                what,
                seconds: READY_TIMEOUT.as_secs(),
                log: tail(log),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The default home of a hand-run control plane.
pub fn default_state_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache/peoplesync/run/controlplane")
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Starts a detached control plane in `state_dir` (idempotent: a running one is reused).
pub async fn up(state_dir: &Path) -> Result<UpInfo, ControlPlaneError> {
    if let Ok(info) = status(state_dir) {
        if pid_alive(info.etcd_pid) && pid_alive(info.apiserver_pid) {
            return Ok(info);
        }
        down(state_dir)?;
    }
    // Detached: dropping this handle leaves the processes running on purpose (`down` stops them).
    let plane = ControlPlane::start_in(state_dir.to_path_buf(), true).await?;
    let info = UpInfo {
        kubeconfig: plane.kubeconfig.clone(),
        server: plane.server.clone(),
        etcd_pid: plane.etcd.as_ref().map_or(0, Child::id),
        apiserver_pid: plane.apiserver.as_ref().map_or(0, Child::id),
        dir: state_dir.to_path_buf(),
    };
    let state = serde_json::to_string_pretty(&info).expect("state serializes");
    std::fs::write(state_dir.join("state.json"), state).map_err(io("write state.json"))?;
    Ok(info)
}

/// The hand-run control plane's state, if there is one.
pub fn status(state_dir: &Path) -> Result<UpInfo, ControlPlaneError> {
    let path = state_dir.join("state.json");
    let text =
        std::fs::read_to_string(&path).map_err(|_| ControlPlaneError::NotUp(path.clone()))?;
    serde_json::from_str(&text).map_err(|_| ControlPlaneError::NotUp(path))
}

/// Stops the hand-run control plane (by pid) and removes its files.
pub fn down(state_dir: &Path) -> Result<(), ControlPlaneError> {
    let info = status(state_dir)?;
    for pid in [info.apiserver_pid, info.etcd_pid] {
        if pid != 0 && pid_alive(pid) {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while pid_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if pid_alive(pid) {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
    std::fs::remove_dir_all(state_dir).map_err(io(format!("remove {}", state_dir.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_process_that_exits_is_not_waited_for_and_its_log_is_reported() {
        let dir = std::env::temp_dir().join(format!(
            "peoplesync-cp-test-{:016x}",
            rand::rng().random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("a directory");
        let log = dir.join("server.log");
        let mut child = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "echo 'listen tcp 127.0.0.1:1: bind: address already in use' > {}",
                    log.display()
                ),
            ])
            .spawn()
            .expect("sh runs");
        let http = reqwest::Client::new();
        let started = Instant::now();
        // Nothing listens on port 9 of loopback: only the exited process ends the wait early.
        let error = wait_until(
            &http,
            "http://127.0.0.1:9/readyz",
            None,
            &log,
            "server",
            Some(&mut child),
        )
        .await
        .expect_err("not ready");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        match error {
            ControlPlaneError::NotReady { what, log, .. } => {
                assert_eq!(what, "server");
                assert!(log.contains("address already in use"), "{log}");
            }
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
