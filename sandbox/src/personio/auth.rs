//! The client-credentials grant (API.md §1.1–1.2): one credential, tokens that stay the same
//! value for their lifetime, revocation, and the token endpoint's own rate limit. Pure: every
//! operation takes `now` (the sandbox clock for lifetimes, the monotonic clock for the limit).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use subtle::ConstantTimeEq;

use super::error::{ApiError, ApiResult};
use peoplesync::source::personio::model::Token;

/// The token endpoint accepts this many requests a minute (API.md §1.1) ...
pub const TOKEN_REQUESTS_PER_MINUTE: u32 = 150;
/// ... and then only one request a second for this long.
const SLOW_PERIOD: Duration = Duration::from_secs(60);
const SLOW_INTERVAL: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_secs(60);

/// The credential the sandbox accepts.
#[derive(Clone)]
pub struct Credential {
    pub client_id: String,
    pub client_secret: String,
    pub scopes: Vec<String>,
}

/// Who a valid bearer token belongs to.
#[derive(Debug, Clone)]
pub struct Caller {
    /// A short, non-secret handle of the token (rate-limit buckets, logs).
    pub token_id: String,
    pub scopes: Vec<String>,
}

struct Issued {
    client_id: String,
    /// Sorted, so the same set of scopes finds the same token.
    scopes: Vec<String>,
    expires_at: Timestamp,
    revoked: bool,
    token_id: String,
}

#[derive(Default)]
pub struct Tokens {
    issued: HashMap<String, Issued>,
    serial: u64,
}

fn form_value<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn equal(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Tokens {
    /// `POST /v2/auth/token` with a parsed form. The same credential and scope set get the same
    /// token until it expires or is revoked, with `expires_in` counting down.
    pub fn issue(
        &mut self,
        credential: &Credential,
        form: &[(String, String)],
        ttl: Duration,
        now: Timestamp,
    ) -> ApiResult<Token> {
        let missing: Vec<&str> = ["grant_type", "client_id", "client_secret"]
            .into_iter()
            .filter(|key| form_value(form, key).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::oauth(
                "invalid_request",
                format!("Missing parameters: {}.", missing.join(", ")),
            ));
        }
        if form_value(form, "grant_type") != Some("client_credentials") {
            return Err(ApiError::oauth(
                "unsupported_grant_type",
                "Only the client_credentials grant is supported.",
            ));
        }
        let id_ok = equal(
            form_value(form, "client_id").unwrap_or_default(),
            &credential.client_id,
        );
        let secret_ok = equal(
            form_value(form, "client_secret").unwrap_or_default(),
            &credential.client_secret,
        );
        if !(id_ok & secret_ok) {
            return Err(ApiError::oauth(
                "invalid_client",
                "Client authentication failed.",
            ));
        }
        let mut scopes: Vec<String> = match form_value(form, "scope") {
            None => credential.scopes.clone(),
            Some(requested) => {
                let requested: Vec<String> =
                    requested.split_whitespace().map(str::to_owned).collect();
                if let Some(unknown) = requested.iter().find(|s| !credential.scopes.contains(s)) {
                    return Err(ApiError::oauth(
                        "invalid_scope",
                        format!("The scope {unknown} is not granted to this client."),
                    ));
                }
                requested
            }
        };
        scopes.sort();
        scopes.dedup();
        self.issued.retain(|_, issued| issued.expires_at > now);
        let existing = self.issued.iter().find(|(_, issued)| {
            !issued.revoked && issued.client_id == credential.client_id && issued.scopes == scopes
        });
        let (access_token, expires_at) = match existing {
            Some((token, issued)) => (token.clone(), issued.expires_at),
            None => {
                let token = format!("papi-{}", hex::encode(rand::random::<[u8; 24]>()));
                let expires_at =
                    now + SignedDuration::try_from(ttl).unwrap_or(SignedDuration::from_hours(24));
                self.serial += 1;
                self.issued.insert(
                    token.clone(),
                    Issued {
                        client_id: credential.client_id.clone(),
                        scopes: scopes.clone(),
                        expires_at,
                        revoked: false,
                        token_id: format!("tok_{:04}", self.serial),
                    },
                );
                (token, expires_at)
            }
        };
        let remaining = expires_at.duration_since(now).as_secs().max(1);
        Ok(Token {
            access_token,
            token_type: "Bearer".into(),
            expires_in: remaining.unsigned_abs(),
            scope: Some(scopes.join(" ")),
            refresh_token: None,
        })
    }

    /// `POST /v2/auth/revoke`: an unknown token is not an error (RFC 7009).
    pub fn revoke(&mut self, form: &[(String, String)]) -> ApiResult<()> {
        let token = form_value(form, "token")
            .ok_or_else(|| ApiError::oauth("invalid_request", "Missing parameters: token."))?;
        if let Some(issued) = self.issued.get_mut(token) {
            issued.revoked = true;
        }
        Ok(())
    }

    /// The caller behind `Authorization: Bearer <token>`, if the token is live.
    pub fn authenticate(&self, token: &str, now: Timestamp) -> Option<Caller> {
        let issued = self.issued.get(token)?;
        (!issued.revoked && issued.expires_at > now).then(|| Caller {
            token_id: issued.token_id.clone(),
            scopes: issued.scopes.clone(),
        })
    }
}

/// 150 requests a minute; past that, one request a second for the next 60 s, then a fresh
/// window (API.md §1.1).
#[derive(Debug, Default)]
pub struct TokenLimiter {
    window_start: Option<Instant>,
    used: u32,
    slow_until: Option<Instant>,
    last_slow: Option<Instant>,
}

impl TokenLimiter {
    /// Counts one request at `now`; `Err(seconds)` to wait when it is refused.
    pub fn check(&mut self, now: Instant) -> Result<(), u64> {
        if let Some(until) = self.slow_until {
            if now < until {
                let free = self
                    .last_slow
                    .is_none_or(|last| now.duration_since(last) >= SLOW_INTERVAL);
                if free {
                    self.last_slow = Some(now);
                    return Ok(());
                }
                return Err(SLOW_INTERVAL.as_secs());
            }
            *self = Self::default();
        }
        let fresh = self
            .window_start
            .is_none_or(|start| now.duration_since(start) >= WINDOW);
        if fresh {
            self.window_start = Some(now);
            self.used = 0;
        }
        if self.used < TOKEN_REQUESTS_PER_MINUTE {
            self.used += 1;
            return Ok(());
        }
        self.slow_until = Some(now + SLOW_PERIOD);
        self.last_slow = Some(now);
        Err(SLOW_INTERVAL.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential() -> Credential {
        Credential {
            client_id: "papi-id".into(),
            client_secret: "papi-secret".into(),
            scopes: vec![
                "personio:persons:read".into(),
                "personio:webhooks:read".into(),
            ],
        }
    }

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn good() -> Vec<(String, String)> {
        form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "papi-id"),
            ("client_secret", "papi-secret"),
        ])
    }

    #[test]
    fn the_same_token_comes_back_within_its_lifetime_counting_down() {
        let mut tokens = Tokens::default();
        let t0: Timestamp = "2026-06-01T00:00:00Z".parse().expect("valid");
        let ttl = Duration::from_secs(86_400);
        let first = tokens
            .issue(&credential(), &good(), ttl, t0)
            .expect("issued");
        assert!(first.access_token.starts_with("papi-"));
        assert_eq!(first.expires_in, 86_400);
        let later = t0 + SignedDuration::from_hours(2);
        let second = tokens
            .issue(&credential(), &good(), ttl, later)
            .expect("issued");
        assert_eq!(second.access_token, first.access_token);
        assert_eq!(second.expires_in, 86_400 - 7_200);
        let expired = t0 + SignedDuration::from_hours(25);
        assert!(tokens.authenticate(&first.access_token, expired).is_none());
        let renewed = tokens
            .issue(&credential(), &good(), ttl, expired)
            .expect("issued");
        assert_ne!(renewed.access_token, first.access_token);
    }

    #[test]
    fn bad_clients_scopes_and_grants_get_their_oauth_errors() {
        let mut tokens = Tokens::default();
        let now = Timestamp::UNIX_EPOCH;
        let ttl = Duration::from_secs(60);
        let error = |pairs: &[(&str, &str)], tokens: &mut Tokens| {
            tokens
                .issue(&credential(), &form(pairs), ttl, now)
                .expect_err("refused")
                .oauth_error()
        };
        assert_eq!(
            error(&[("grant_type", "client_credentials")], &mut tokens),
            "invalid_request"
        );
        let wrong = [
            ("grant_type", "client_credentials"),
            ("client_id", "papi-id"),
            ("client_secret", "nope"),
        ];
        assert_eq!(error(&wrong, &mut tokens), "invalid_client");
        let mut scoped = good();
        scoped.push(("scope".into(), "personio:persons:write".into()));
        let refused = tokens
            .issue(&credential(), &scoped, ttl, now)
            .expect_err("refused");
        assert_eq!(refused.oauth_error(), "invalid_scope");
        let mut narrow = good();
        narrow.push(("scope".into(), "personio:persons:read".into()));
        let token = tokens
            .issue(&credential(), &narrow, ttl, now)
            .expect("issued");
        assert_eq!(token.scope.as_deref(), Some("personio:persons:read"));
        let caller = tokens.authenticate(&token.access_token, now).expect("live");
        assert_eq!(caller.scopes, ["personio:persons:read"]);
        tokens
            .revoke(&form(&[("token", &token.access_token)]))
            .expect("revoked");
        assert!(tokens.authenticate(&token.access_token, now).is_none());
    }

    #[test]
    fn past_150_a_minute_only_one_request_a_second_passes_for_a_minute() {
        let mut limiter = TokenLimiter::default();
        let t0 = Instant::now();
        for _ in 0..TOKEN_REQUESTS_PER_MINUTE {
            assert_eq!(limiter.check(t0), Ok(()));
        }
        assert_eq!(limiter.check(t0), Err(1));
        assert_eq!(limiter.check(t0 + Duration::from_millis(500)), Err(1));
        assert_eq!(limiter.check(t0 + Duration::from_secs(1)), Ok(()));
        assert_eq!(limiter.check(t0 + Duration::from_millis(1500)), Err(1));
        assert_eq!(limiter.check(t0 + Duration::from_secs(2)), Ok(()));
        // After the slow minute, a fresh window of 150.
        let after = t0 + Duration::from_secs(61);
        for _ in 0..TOKEN_REQUESTS_PER_MINUTE {
            assert_eq!(limiter.check(after), Ok(()));
        }
        assert_eq!(limiter.check(after), Err(1));
    }
}
