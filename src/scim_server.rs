//! A private SCIM 2.0 server (PyPI `scim2-server`) for tests, benchmarks and the demo: a free
//! loopback port, a random bearer token, `--dynamic-tenants` so each test takes its own tenant
//! under `/<tenant>/v2`. Dropping it stops the process.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;

/// The version `scripts/test.sh` installs.
pub const VERSION: &str = "0.8.3";

#[derive(Debug, thiserror::Error)]
pub enum ScimServerError {
    #[error(
        "scim2-server is not installed at {0} (python3 -m venv ~/.cache/peoplesync/scim2-server-0.8.3 && \
         ~/.cache/peoplesync/scim2-server-0.8.3/bin/pip install scim2-server==0.8.3, or run scripts/test.sh)"
    )]
    NotInstalled(PathBuf),
    #[error("failed to {action}")]
    Io {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("scim2-server did not start: {log}")]
    NotReady { log: String },
}

pub struct ScimServer {
    child: Option<Child>,
    log: PathBuf,
    pub port: u16,
    pub token: String,
}

/// `$PEOPLESYNC_SCIM_SERVER_BIN`, else the venv `scripts/test.sh` creates.
pub fn binary() -> PathBuf {
    std::env::var_os("PEOPLESYNC_SCIM_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default();
            home.join(format!(
                ".cache/peoplesync/scim2-server-{VERSION}/bin/scim2-server"
            ))
        })
}

impl ScimServer {
    pub async fn start() -> Result<Self, ScimServerError> {
        Self::start_with(None).await
    }

    /// Like [`ScimServer::start`], announcing this ServiceProviderConfig instead of the default
    /// (e.g. without PATCH, to exercise PUT).
    pub async fn start_with(
        service_provider_config: Option<&serde_json::Value>,
    ) -> Result<Self, ScimServerError> {
        let binary = binary();
        if !binary.exists() {
            return Err(ScimServerError::NotInstalled(binary));
        }
        let port = crate::controlplane::loopback_port().map_err(|source| ScimServerError::Io {
            action: "find a free port",
            source,
        })?;
        let token = format!("{:032x}", rand::rng().random::<u128>());
        let log = std::env::temp_dir().join(format!("peoplesync-scim2-server-{port}.log"));
        let out = std::fs::File::create(&log).map_err(|source| ScimServerError::Io {
            action: "create the scim2-server log",
            source,
        })?;
        let err = out.try_clone().map_err(|source| ScimServerError::Io {
            action: "open the scim2-server log",
            source,
        })?;
        let mut command = Command::new(&binary);
        command
            .args(["--hostname", "127.0.0.1", "--port", &port.to_string()])
            .args(["--bearer-token", &token, "--dynamic-tenants"]);
        if let Some(config) = service_provider_config {
            let path = std::env::temp_dir().join(format!("peoplesync-scim2-spc-{port}.json"));
            std::fs::write(&path, config.to_string()).map_err(|source| ScimServerError::Io {
                action: "write the service provider config",
                source,
            })?;
            command.arg("--service-provider-config").arg(path);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| ScimServerError::Io {
                action: "start scim2-server",
                source,
            })?;
        let mut server = Self {
            child: Some(child),
            log,
            port,
            token,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if crate::controlplane::accepts(port).await {
                return Ok(server);
            }
            let exited = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
                .is_some();
            if exited || Instant::now() > deadline {
                return Err(ScimServerError::NotReady {
                    log: std::fs::read_to_string(&server.log).unwrap_or_default(),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The SCIM base URL of an isolated tenant.
    pub fn base_url_for(&self, tenant: &str) -> String {
        format!("http://127.0.0.1:{}/{tenant}/v2", self.port)
    }
}

impl Drop for ScimServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::controlplane::terminate(child, Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(&self.log);
    }
}
