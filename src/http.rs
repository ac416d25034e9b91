//! The process's HTTP clients: one `reqwest::Client` (its connection pool and TLS roots) per
//! distinct setting, shared by every source and SCIM target that uses that setting. reqwest's
//! client is meant to be built once and cloned; an operator serving hundreds of tenants of one
//! HR system keeps one pool to that host instead of one client per tenant. Credentials are
//! never part of a client: each request carries its own.

pub mod serve;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// One logical request of a source client, before its URL and credentials are known; retries
/// resend it unchanged. `X` is what the client adds (HollyHR: conditional and idempotency
/// headers; Personio: scopes, replayability).
#[derive(Debug, Clone)]
pub struct Call<X> {
    pub method: reqwest::Method,
    /// The contract's path template: the log field, the metric label and the error context.
    pub route: &'static str,
    /// The path below the base URL, one segment each (encoded when the URL is built).
    pub segments: Vec<String>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<bytes::Bytes>,
    pub extra: X,
}

/// A request body that does not serialize.
#[derive(Debug, thiserror::Error)]
#[error("failed to serialize the request body: {0}")]
pub struct BodyError(#[from] serde_json::Error);

impl<X> Call<X> {
    pub fn new(method: reqwest::Method, route: &'static str, segments: &[&str], extra: X) -> Self {
        Self {
            method,
            route,
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
            extra,
        }
    }

    pub fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    pub fn query_opt(self, name: &'static str, value: Option<impl ToString>) -> Self {
        match value {
            Some(value) => self.query(name, value),
            None => self,
        }
    }

    pub fn json(mut self, body: &impl serde::Serialize) -> Result<Self, BodyError> {
        self.body = Some(bytes::Bytes::from(serde_json::to_vec(body)?));
        Ok(self)
    }

    /// The path below the base URL (`/a/b`), unencoded.
    pub fn relative_path(&self) -> String {
        self.segments
            .iter()
            .fold(String::new(), |mut path, segment| {
                path.push('/');
                path.push_str(segment);
                path
            })
    }
}

/// What makes two clients different.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Settings {
    pub user_agent: String,
    /// The whole request, body included.
    pub timeout: Duration,
    pub connect_timeout: Option<Duration>,
    /// Follow redirects (a source carrying a bearer token does not: a redirect could carry it
    /// to another host).
    pub follow_redirects: bool,
    /// A PEM CA bundle trusted besides the system store (`caSecretRef`: a private CA, or a
    /// corporate proxy's).
    pub ca_pem: Option<String>,
}

impl Settings {
    /// PeopleSync's user agent, no redirects, `timeout` for the whole request.
    pub fn new(timeout: Duration) -> Self {
        Self {
            user_agent: concat!("peoplesync/", env!("CARGO_PKG_VERSION")).to_owned(),
            timeout,
            connect_timeout: None,
            follow_redirects: false,
            ca_pem: None,
        }
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the CA bundle (caSecretRef) holds no PEM certificate")]
    NoCertificate,
    #[error("the CA bundle (caSecretRef) is not a valid PEM certificate bundle")]
    BadCertificate(#[source] reqwest::Error),
    #[error("failed to build the HTTP client")]
    Build(#[source] reqwest::Error),
}

/// The most an answer's body may hold. HollyHR's and Personio's pages (at most 100–200 people)
/// and SCIM's are tens of kilobytes; an answer near this is not one PeopleSync asked for (a
/// misbehaving or hostile server), and reading it whole would put the operator's memory at the
/// server's mercy.
pub const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// What [`read_limited`] says when an answer is longer than the limit.
pub const TOO_LARGE: &str = "an answer over 8 MiB (not read further)";

/// Reads an answer's body up to `limit` bytes; `None` when it is longer (a `Content-Length`
/// over the limit is refused before any byte is read; otherwise reading stops at the limit and
/// the connection is dropped).
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<bytes::Bytes>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Ok(None);
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

type Clients = HashMap<Settings, reqwest::Client>;

/// The shared client for `settings` (built on first use).
pub fn client(settings: &Settings) -> Result<reqwest::Client, ClientError> {
    static CLIENTS: OnceLock<Mutex<Clients>> = OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Mutex::default)
        .lock()
        .expect("the HTTP client map lock is never poisoned");
    client_in(&mut clients, settings)
}

fn client_in(clients: &mut Clients, settings: &Settings) -> Result<reqwest::Client, ClientError> {
    if let Some(client) = clients.get(settings) {
        return Ok(client.clone());
    }
    let mut builder = reqwest::Client::builder()
        .user_agent(settings.user_agent.as_str())
        .timeout(settings.timeout);
    if let Some(connect) = settings.connect_timeout {
        builder = builder.connect_timeout(connect);
    }
    if !settings.follow_redirects {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    if let Some(pem) = &settings.ca_pem {
        let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(ClientError::BadCertificate)?;
        if certificates.is_empty() {
            return Err(ClientError::NoCertificate);
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    // reqwest reads the certificates' contents only here.
    let client = builder.build().map_err(|error| match settings.ca_pem {
        Some(_) => ClientError::BadCertificate(error),
        None => ClientError::Build(error),
    })?;
    clients.insert(settings.clone(), client.clone());
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_settings_share_one_client_and_others_get_their_own() {
        let mut clients = Clients::new();
        let settings = Settings::new(Duration::from_secs(7));
        for _ in 0..3 {
            client_in(&mut clients, &settings).expect("a client");
        }
        assert_eq!(clients.len(), 1);
        let redirects = Settings {
            follow_redirects: true,
            ..settings.clone()
        };
        client_in(&mut clients, &redirects).expect("a client");
        client_in(&mut clients, &Settings::new(Duration::from_secs(8))).expect("a client");
        assert_eq!(clients.len(), 3);
        let pki = crate::controlplane::TestPki::issue("ca").expect("a CA");
        let with_ca = Settings {
            ca_pem: Some(pki.ca_pem),
            ..settings.clone()
        };
        client_in(&mut clients, &with_ca).expect("a client trusting the CA");
        assert_eq!(clients.len(), 4, "a CA makes a client of its own");
        for (pem, expected) in [
            ("not a certificate", "holds no PEM certificate"),
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not a valid PEM",
            ),
        ] {
            let bad = Settings {
                ca_pem: Some(pem.to_owned()),
                ..settings.clone()
            };
            let error = client_in(&mut clients, &bad).expect_err("refused");
            assert!(error.to_string().contains(expected), "{error}");
        }
        assert!(client(&settings).is_ok());
    }
}
