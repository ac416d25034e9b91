//! HR sources: HollyHR's safe People projection and Personio's API v2.
//!
//! [`PeopleSource`] is the seam the sync engine reads through: who am I, everyone (or everyone
//! changed since a checkpoint) as a stream, one person, the org units. It is deliberately narrow;
//! webhook management and writes stay on the concrete client.

use std::future::Future;

use futures::stream::BoxStream;
use jiff::Timestamp;

pub mod any;
pub mod hollyhr;
pub mod personio;

use hollyhr::model::scope;
// The sync engine's neutral model does not exist yet; until it does, sources hand out HollyHR's
// safe-projection types (a Personio source would map into them).
pub use hollyhr::model::{OrgUnit, Person};
use hollyhr::{HollyHrClient, HollyHrError, PageLimit, PeopleQuery};

/// The scopes a read-only sync needs.
pub const SYNC_SCOPES: [&str; 2] = [scope::PEOPLE_READ, scope::ORG_UNITS_READ];

/// Who a source says the credentials belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub organisation_id: String,
    pub key_id: String,
    pub scopes: Vec<String>,
    /// A test tenant (HollyHR's `environment.type: sandbox`).
    pub sandbox: bool,
}

impl Principal {
    /// The `required` scopes the credentials lack, in `required`'s order.
    pub fn missing_scopes<'a>(&self, required: &[&'a str]) -> Vec<&'a str> {
        required
            .iter()
            .copied()
            .filter(|needed| !self.scopes.iter().any(|held| held == needed))
            .collect()
    }
}

/// A source's error: an error with a static category (condition reason, metric label).
pub trait SourceError: std::error::Error + Send + Sync + 'static {
    fn reason(&self) -> &'static str;
}

/// Where people come from.
pub trait PeopleSource: Send + Sync {
    type Error: SourceError;

    /// The principal behind the credentials (check its scopes with [`Principal::missing_scopes`]).
    fn whoami(&self) -> impl Future<Output = Result<Principal, Self::Error>> + Send;

    /// Everyone, or everyone changed at or after `updated_since`, one page in memory at a time.
    /// Leavers are included. `updated_since` may be inclusive: callers re-read with an overlap.
    fn people(
        &self,
        updated_since: Option<Timestamp>,
    ) -> BoxStream<'static, Result<Person, Self::Error>>;

    /// One person; `None` when the source does not know (or no longer shows) the id.
    fn person(&self, id: &str) -> impl Future<Output = Result<Option<Person>, Self::Error>> + Send;

    /// The active org units.
    fn org_units(&self) -> impl Future<Output = Result<Vec<OrgUnit>, Self::Error>> + Send;
}

impl SourceError for HollyHrError {
    fn reason(&self) -> &'static str {
        HollyHrError::reason(self)
    }
}

impl PeopleSource for HollyHrClient {
    type Error = HollyHrError;

    async fn whoami(&self) -> Result<Principal, HollyHrError> {
        let me = self.me().await?;
        Ok(Principal {
            organisation_id: me.organisation.id,
            key_id: me.api_key.key_id,
            scopes: me.api_key.scopes,
            sandbox: me.environment.sandbox,
        })
    }

    fn people(
        &self,
        updated_since: Option<Timestamp>,
    ) -> BoxStream<'static, Result<Person, HollyHrError>> {
        // Default order: the cursor is what guarantees no skips while people change mid-scan.
        let query = PeopleQuery {
            limit: PageLimit::MAX,
            updated_since,
            sort: None,
        };
        HollyHrClient::people(self, &query)
    }

    async fn person(&self, id: &str) -> Result<Option<Person>, HollyHrError> {
        match HollyHrClient::person(self, id).await {
            Ok(person) => Ok(Some(person.value)),
            Err(error) if error.status() == Some(404) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn org_units(&self) -> Result<Vec<OrgUnit>, HollyHrError> {
        HollyHrClient::org_units(self).await
    }
}

/// How a source's credential is named in conditions.
#[derive(Debug)]
pub struct Wording {
    /// "HollyHR API key".
    pub credential: &'static str,
    /// How to get a missing scope granted.
    pub grant_scope: &'static str,
    /// `SourceReachable`'s message when the credential is refused.
    pub unauthorized: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_scopes_lists_only_what_the_key_lacks() {
        let principal = Principal {
            organisation_id: "org_a.b.c".into(),
            key_id: "key_1".into(),
            scopes: vec!["org_units:read".into(), "webhooks:manage".into()],
            sandbox: true,
        };
        assert_eq!(principal.missing_scopes(&SYNC_SCOPES), vec!["people:read"]);
        assert!(principal.missing_scopes(&["org_units:read"]).is_empty());
    }
}
