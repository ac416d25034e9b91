//! What a [`PersonioClient`](super::PersonioClient) is configured with, and the checks made
//! before anything is sent.

use secrecy::SecretString;
use url::Url;

use super::error::PersonioError;
use super::model;
use crate::retry::RetryPolicy;

/// Personio's API origin; paths `/v2/...` are appended.
pub const DEFAULT_BASE_URL: &str = "https://api.personio.de";
/// The org-unit type whose units become departments unless configured otherwise.
pub const DEFAULT_DEPARTMENT_TYPE: &str = "department";
/// Employment requests in flight at once: Personio publishes no v2 limit and users report
/// throttling after a handful of employment calls, so the fan-out stays small.
pub const DEFAULT_CONCURRENCY: usize = 4;

/// Everything a [`PersonioClient`] needs. `Debug` is safe: the secret prints as `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct PersonioConfig {
    /// `https://api.personio.de`; the paths `/v2/...` are appended.
    pub base_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
    /// `X-Personio-App-ID` on every request (UPPER_SNAKE_CASE): Personio support needs it to
    /// help with API issues.
    pub app_id: Option<String>,
    /// Persons per page, 1–50 (50, Personio's maximum, means the fewest requests).
    pub page_size: u32,
    /// Employment requests in flight at once during a listing.
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// The org-unit type whose units become the person's department (and directory groups).
    pub department_type: String,
    /// A PEM CA bundle trusted besides the system store (`caSecretRef`).
    pub ca_pem: Option<String>,
}

impl PersonioConfig {
    /// The defaults around a base URL and a credential.
    pub fn new(base_url: Url, client_id: impl Into<String>, client_secret: SecretString) -> Self {
        Self {
            base_url,
            client_id: client_id.into(),
            client_secret,
            app_id: None,
            page_size: model::MAX_PAGE,
            concurrency: DEFAULT_CONCURRENCY,
            // Personio throttles the per-person employment reads hard and documents no limits:
            // waiting out a `Retry-After` beats failing a full cycle that is mostly done.
            retry: RetryPolicy {
                max_attempts: 8,
                max_elapsed: std::time::Duration::from_secs(300),
                ..RetryPolicy::default()
            },
            department_type: DEFAULT_DEPARTMENT_TYPE.to_owned(),
            ca_pem: None,
        }
    }

    pub(super) fn validate(&self) -> Result<(), PersonioError> {
        let bad = |text: String| Err(PersonioError::Configuration(text));
        if self.base_url.cannot_be_a_base() || !matches!(self.base_url.scheme(), "http" | "https") {
            return bad(format!(
                "base URL {} must be an http(s) URL such as {DEFAULT_BASE_URL}",
                self.base_url
            ));
        }
        if self.client_id.trim().is_empty() {
            return bad("the client id is empty".into());
        }
        if !(1..=model::MAX_PAGE).contains(&self.page_size) {
            return bad(format!(
                "page size must be 1–{}, got {}",
                model::MAX_PAGE,
                self.page_size
            ));
        }
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1".into());
        }
        if self.department_type.trim().is_empty() {
            return bad("the department org-unit type is empty".into());
        }
        if let Some(app_id) = &self.app_id {
            let upper_snake = !app_id.is_empty()
                && app_id
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if !upper_snake {
                return bad(format!(
                    "the app id {app_id:?} must be UPPER_SNAKE_CASE, e.g. PEOPLESYNC"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::personio::PersonioClient;

    fn config() -> PersonioConfig {
        PersonioConfig::new(
            Url::parse(DEFAULT_BASE_URL).expect("a URL"),
            "papi-client-id",
            SecretString::from("papi-topsecret"),
        )
    }

    #[test]
    fn bad_configurations_are_refused() {
        type Change = fn(&mut PersonioConfig);
        let cases: [(&str, Change); 7] = [
            ("page 0", |c| c.page_size = 0),
            ("page 51", |c| c.page_size = 51),
            ("no concurrency", |c| c.concurrency = 0),
            ("lowercase app id", |c| c.app_id = Some("peoplesync".into())),
            ("empty client id", |c| c.client_id = " ".into()),
            ("empty department type", |c| c.department_type.clear()),
            ("not http", |c| {
                c.base_url = Url::parse("mailto:a@b.c").expect("a URL")
            }),
        ];
        for (name, change) in cases {
            let mut config = config();
            change(&mut config);
            let error = PersonioClient::new(config).expect_err(name);
            assert_eq!(error.reason(), "Configuration", "{name}");
        }
        let mut fine = config();
        fine.app_id = Some("PEOPLESYNC_2".into());
        fine.page_size = 1;
        assert!(PersonioClient::new(fine).is_ok());
    }
}
