//! Persons, employments and org units, and the [`PeopleSource`] built on them: persons page by
//! page, each completed with their latest employment (a bounded, order-preserving fan-out) and
//! their department's name (fetched once per id, shared by clones).

use std::net::IpAddr;
use std::sync::{Arc, PoisonError};

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt, future};
use jiff::Timestamp;

use super::client::{PersonioClient, Request};
use super::error::PersonioError;
use super::mapping;
use super::model::{self, ListPage, route};
use super::token::ScopeSet;
use crate::source::hollyhr::model::{ProviderRef, RecordSource};
use crate::source::{OrgUnit, PeopleSource, Person, Principal};

/// Filters of `GET /v2/persons` (combined with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonsQuery {
    /// `updated_at.gt`: strictly after. Sent in whole seconds, rounded down, so a watermark
    /// with sub-second precision re-reads a little rather than risking a miss.
    pub updated_after: Option<Timestamp>,
    /// `status`: `ACTIVE` or `INACTIVE` (a sync sends none: leavers are needed to deprovision).
    pub status: Option<String>,
    /// `id`: only these persons (sent comma-separated); empty means everyone.
    pub ids: Vec<String>,
}

impl PersonioClient {
    /// `GET /v2/persons`: one page, the first when `cursor` is `None`.
    pub async fn persons_page(
        &self,
        query: &PersonsQuery,
        cursor: Option<&str>,
    ) -> Result<ListPage<model::Person>, PersonioError> {
        let request = self.persons_request(query).query_opt("cursor", cursor);
        self.fetch(&request).await
    }

    /// `GET /v2/persons`, person by person through every page (one page in memory); a looping
    /// listing fails with [`PersonioError::PaginationLoop`].
    pub fn persons(
        &self,
        query: &PersonsQuery,
    ) -> BoxStream<'static, Result<model::Person, PersonioError>> {
        self.pages(self.persons_request(query))
            .map_ok(|page: ListPage<model::Person>| {
                futures::stream::iter(page.data.into_iter().map(Ok))
            })
            .try_flatten()
            .boxed()
    }

    /// `GET /v2/persons/{id}`; `None` when Personio answers 404.
    pub async fn person_raw(&self, id: &str) -> Result<Option<model::Person>, PersonioError> {
        let request = Request::get(route::PERSON, &["v2", "persons", id], ScopeSet::Persons);
        self.fetch_optional(&request).await
    }

    /// `GET /v2/persons/{id}/employments?limit=1`: the most recent employment, the
    /// authoritative one; `None` when the person has none. A 404 (the person is gone) stays an
    /// error ([`PersonioError::is_not_found`]), so callers can tell it from "no employment".
    pub async fn latest_employment(
        &self,
        person_id: &str,
    ) -> Result<Option<model::Employment>, PersonioError> {
        let request = Request::get(
            route::EMPLOYMENTS,
            &["v2", "persons", person_id, "employments"],
            ScopeSet::Persons,
        )
        .query("limit", 1);
        let page: ListPage<model::Employment> = self.fetch(&request).await?;
        Ok(page.data.into_iter().next())
    }

    /// `GET /v2/org-units/{id}?type={kind}`; `None` when Personio answers 404. Uncached.
    pub async fn org_unit(
        &self,
        id: &str,
        kind: &str,
    ) -> Result<Option<model::OrgUnit>, PersonioError> {
        let request = Request::get(route::ORG_UNIT, &["v2", "org-units", id], ScopeSet::Persons)
            .query("type", kind);
        self.fetch_optional(&request).await
    }

    fn persons_request(&self, query: &PersonsQuery) -> Request {
        let updated_after = query
            .updated_after
            .map(|at| Timestamp::from_second(at.as_second()).unwrap_or(at));
        let ids = (!query.ids.is_empty()).then(|| query.ids.join(","));
        Request::get(route::PERSONS, &["v2", "persons"], ScopeSet::Persons)
            .query("limit", self.inner.config.page_size)
            .query_opt("updated_at.gt", updated_after)
            .query_opt("status", query.status.as_deref())
            .query_opt("id", ids)
    }

    /// The department org unit `id`, fetched once per id for all clones (concurrent askers wait
    /// for the one fetch). A 404 is remembered as `None`; other errors are not cached, and fail
    /// the person: naming a group by its id after a passing error would rename it.
    async fn department(&self, id: &str) -> Result<Option<model::OrgUnit>, PersonioError> {
        let cell = self
            .inner
            .departments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.to_owned())
            .or_default()
            .clone();
        let kind = &self.inner.config.department_type;
        cell.get_or_try_init(|| self.org_unit(id, kind))
            .await
            .cloned()
    }

    /// A person with their latest employment and department name, mapped; `None` when the
    /// person vanished (their employments answer 404).
    async fn complete(&self, person: model::Person) -> Result<Option<Person>, PersonioError> {
        let employment = match self.latest_employment(&person.id).await {
            Ok(employment) => employment,
            Err(error) if error.is_not_found() => {
                tracing::debug!(
                    route = route::EMPLOYMENTS,
                    "a person vanished during the listing; skipped"
                );
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        let kind = self.inner.config.department_type.as_str();
        let department = employment.as_ref().and_then(|e| {
            e.org_units
                .iter()
                .find(|u| u.kind.eq_ignore_ascii_case(kind))
        });
        // Only the unit the mapping will pick is resolved: one lookup per person at most.
        let resolved = match department {
            Some(unit) => Some((unit.id.as_str(), self.department(&unit.id).await?)),
            None => None,
        };
        let names = |id: &str| match &resolved {
            Some((known, found)) if *known == id => found.as_ref().and_then(|u| u.name.clone()),
            _ => None,
        };
        Ok(Some(mapping::to_person_in(
            &person,
            employment.as_ref(),
            kind,
            &names,
        )))
    }

    /// Starts a full listing's department lookups afresh; what was known waits in
    /// `earlier_departments` for [`PeopleSource::org_units`].
    fn new_department_generation(&self) {
        let known = std::mem::take(
            &mut *self
                .inner
                .departments
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut earlier = self
            .inner
            .earlier_departments
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // A listing that never reached `org_units` (it failed) leaves its own earlier ones.
        for (id, cell) in known {
            earlier.insert(id, cell);
        }
    }

    /// Every department fetched in this full listing (and since), sorted by id.
    fn known_departments(&self) -> Vec<OrgUnit> {
        let cells: Vec<_> = self
            .inner
            .departments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, cell)| (id.clone(), Arc::clone(cell)))
            .collect();
        let mut units: Vec<OrgUnit> = cells
            .into_iter()
            .filter_map(|(id, cell)| Some(department_unit(&id, cell.get()?.as_ref())))
            .collect();
        units.sort_by(|a, b| a.id.cmp(&b.id));
        units
    }
}

/// An org unit in the neutral model. Personio has no active/archived dates for org units, so
/// the sample's defaults stand; a unit Personio no longer knows (404) is named by its id, as
/// the people in it are.
fn department_unit(id: &str, found: Option<&model::OrgUnit>) -> OrgUnit {
    let name = found
        .and_then(|unit| unit.name.as_deref())
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .unwrap_or(id);
    let mut unit = OrgUnit::sample_department(id, name);
    unit.code = found.and_then(|unit| unit.abbreviation.clone());
    unit.description = found.and_then(|unit| unit.description.clone());
    unit.source = RecordSource::Provider;
    unit.provider = ProviderRef {
        provider_name: Some("personio".into()),
        external_id: None,
        remote_id: Some(id.to_owned()),
        remote_deleted_at: None,
    };
    unit
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

impl PeopleSource for PersonioClient {
    type Error = PersonioError;

    /// The principal from the persons token: Personio has no "who am I" endpoint, so the
    /// organisation is the API host and the key is the client id (never the secret).
    async fn whoami(&self) -> Result<Principal, PersonioError> {
        let token = self.token(ScopeSet::Persons, None).await?;
        let base = &self.inner.config.base_url;
        Ok(Principal {
            organisation_id: base.host_str().unwrap_or_default().to_owned(),
            key_id: self.inner.config.client_id.clone(),
            scopes: token.scopes,
            sandbox: is_loopback(base),
        })
    }

    /// Persons (changed after `updated_since`, if given) with their latest employment, at most
    /// `concurrency` employment requests in flight, in listing order. A person whose
    /// employments answer 404 vanished mid-listing and is left out.
    fn people(
        &self,
        updated_since: Option<Timestamp>,
    ) -> BoxStream<'static, Result<Person, PersonioError>> {
        // The trait reads changes at or after `updated_since`; Personio only has strictly-after,
        // so one second earlier (the filter is sent in whole seconds) includes the instant itself.
        let query = PersonsQuery {
            updated_after: updated_since.map(|since| {
                since
                    .checked_sub(jiff::SignedDuration::from_secs(1))
                    .unwrap_or(since)
            }),
            ..PersonsQuery::default()
        };
        if updated_since.is_none() {
            // A full listing looks every department up again (a renamed one is renamed), and
            // keeps what it knew for `org_units` to ask about the ones it does not meet.
            self.new_department_generation();
        }
        let client = self.clone();
        self.persons(&query)
            .map(move |listed| {
                let client = client.clone();
                async move {
                    match listed {
                        Ok(person) => client.complete(person).await,
                        Err(error) => Err(error),
                    }
                }
            })
            .buffered(self.inner.config.concurrency)
            .try_filter_map(future::ok)
            .boxed()
    }

    async fn person(&self, id: &str) -> Result<Option<Person>, PersonioError> {
        match self.person_raw(id).await? {
            Some(person) => self.complete(person).await,
            None => Ok(None),
        }
    }

    /// The departments: Personio's list endpoint for org units is undocumented, so they are
    /// the ones people's employments point at (read `people` first), plus those known before
    /// the last full listing that nobody is in any more but Personio still has (asked once
    /// each: an emptied department keeps its group, as with HollyHR; one Personio answers 404
    /// for is gone, and so is its group; one that cannot be asked now is kept as it was).
    async fn org_units(&self) -> Result<Vec<OrgUnit>, PersonioError> {
        let earlier = std::mem::take(
            &mut *self
                .inner
                .earlier_departments
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let kind = &self.inner.config.department_type;
        for (id, cell) in earlier {
            let met = self
                .inner
                .departments
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&id);
            if met || cell.get().is_some_and(Option::is_none) {
                // Met again, or already gone (404) when it was last asked.
                continue;
            }
            let kept = match self.org_unit(&id, kind).await {
                Ok(Some(unit)) => Arc::new(tokio::sync::OnceCell::new_with(Some(Some(unit)))),
                Ok(None) => continue,
                Err(error) => {
                    tracing::debug!(
                        error = %crate::telemetry::report(&error),
                        "a department nobody is in could not be asked about; kept as it was"
                    );
                    cell
                }
            };
            self.inner
                .departments
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id)
                .or_insert(kept);
        }
        Ok(self.known_departments())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_sandboxes() {
        let cases = [
            ("http://127.0.0.1:8080", true),
            ("http://127.9.9.9", true),
            ("http://localhost:1", true),
            ("http://[::1]:80", true),
            ("https://api.personio.de", false),
            ("http://10.0.0.1", false),
        ];
        for (url, sandbox) in cases {
            assert_eq!(
                is_loopback(&url::Url::parse(url).expect("a URL")),
                sandbox,
                "{url}"
            );
        }
    }

    #[test]
    fn departments_carry_personio_provenance_and_fall_back_to_their_id() {
        let found = model::OrgUnit {
            id: "12".into(),
            kind: "department".into(),
            name: Some("Research".into()),
            abbreviation: Some("RES".into()),
            description: None,
            parent_id: None,
            parent_chain: Vec::new(),
        };
        let unit = department_unit("12", Some(&found));
        assert_eq!(
            (unit.name.as_str(), unit.code.as_deref()),
            ("Research", Some("RES"))
        );
        assert_eq!(unit.provider.remote_id.as_deref(), Some("12"));
        assert_eq!(unit.source, RecordSource::Provider);
        assert_eq!(department_unit("13", None).name, "13");
    }
}
