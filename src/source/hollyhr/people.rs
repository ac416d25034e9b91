//! `/me`, people and org units. Only the safe projection: the client has no way to address
//! `/people/{id}/personal` or `/avatar`.

use futures::StreamExt;
use futures::stream::BoxStream;
use http::Method;
use jiff::Timestamp;

use super::client::{Conditional, HollyHrClient, PageLimit, Request, ResourceEtag, Versioned};
use super::error::HollyHrError;
use super::idempotency::Idempotency;
use super::model::{
    CreatePersonRequest, Data, Employment, EndPersonRequest, List, Me, OrgLinks, OrgUnit, Page,
    Person, ReactivatePersonRequest, UpdateEmploymentRequest, UpdatePersonRequest,
};

/// The contract's path templates: log fields, pacing buckets, error context.
pub mod route {
    pub const ME: &str = "/me";
    pub const PEOPLE: &str = "/people";
    pub const PERSON: &str = "/people/{personId}";
    pub const PERSON_ORG_LINKS: &str = "/people/{personId}/org-links";
    pub const PERSON_EMPLOYMENT: &str = "/people/{personId}/employment";
    pub const PERSON_END: &str = "/people/{personId}/end";
    pub const PERSON_REACTIVATE: &str = "/people/{personId}/reactivate";
    pub const ORG_UNITS: &str = "/org-units";
    pub const ORG_UNIT: &str = "/org-units/{orgUnitId}";
}

/// `sort` of `GET /people`; the contract has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeopleSort {
    UpdatedAtDesc,
}

impl PeopleSort {
    pub fn as_str(self) -> &'static str {
        match self {
            PeopleSort::UpdatedAtDesc => "updated_at_desc",
        }
    }
}

/// Filters of `GET /people`.
#[derive(Debug, Clone, Default)]
pub struct PeopleQuery {
    pub limit: PageLimit,
    /// Inclusive on HollyHR (Decision 7); callers re-read with an overlap either way.
    pub updated_since: Option<Timestamp>,
    pub sort: Option<PeopleSort>,
}

impl HollyHrClient {
    /// `GET /me`: the key's organisation, scopes and environment.
    pub async fn me(&self) -> Result<Me, HollyHrError> {
        let me: Data<Me> = self.fetch(&Request::get(route::ME, &["me"])).await?.value;
        Ok(me.data)
    }

    /// `GET /people`, page by page.
    pub fn people_pages(
        &self,
        query: &PeopleQuery,
    ) -> BoxStream<'static, Result<Page<Person>, HollyHrError>> {
        self.pages(people_request(query)).boxed()
    }

    /// `GET /people`, person by person; only one page is held in memory.
    pub fn people(&self, query: &PeopleQuery) -> BoxStream<'static, Result<Person, HollyHrError>> {
        self.items(people_request(query)).boxed()
    }

    pub async fn person(&self, id: &str) -> Result<Versioned<Person>, HollyHrError> {
        Ok(unwrap_data(
            self.fetch(&Request::get(route::PERSON, &["people", id]))
                .await?,
        ))
    }

    /// `GET /people/{id}` with `If-None-Match`: 304 becomes [`Conditional::NotModified`].
    pub async fn person_if_changed(
        &self,
        id: &str,
        known: Option<&ResourceEtag>,
    ) -> Result<Conditional<Person>, HollyHrError> {
        let request = Request::get(route::PERSON, &["people", id]).if_none_match(known);
        Ok(unwrap_conditional(self.fetch_conditional(&request).await?))
    }

    pub async fn person_org_links(&self, id: &str) -> Result<Versioned<OrgLinks>, HollyHrError> {
        let request = Request::get(route::PERSON_ORG_LINKS, &["people", id, "org-links"]);
        Ok(unwrap_data(self.fetch(&request).await?))
    }

    pub async fn person_org_links_if_changed(
        &self,
        id: &str,
        known: Option<&ResourceEtag>,
    ) -> Result<Conditional<OrgLinks>, HollyHrError> {
        let request = Request::get(route::PERSON_ORG_LINKS, &["people", id, "org-links"])
            .if_none_match(known);
        Ok(unwrap_conditional(self.fetch_conditional(&request).await?))
    }

    /// The employment sub-resource; its ETag (not the person's) guards its PATCH.
    pub async fn person_employment(&self, id: &str) -> Result<Versioned<Employment>, HollyHrError> {
        let request = Request::get(route::PERSON_EMPLOYMENT, &["people", id, "employment"]);
        Ok(unwrap_data(self.fetch(&request).await?))
    }

    pub async fn person_employment_if_changed(
        &self,
        id: &str,
        known: Option<&ResourceEtag>,
    ) -> Result<Conditional<Employment>, HollyHrError> {
        let request = Request::get(route::PERSON_EMPLOYMENT, &["people", id, "employment"])
            .if_none_match(known);
        Ok(unwrap_conditional(self.fetch_conditional(&request).await?))
    }

    /// `POST /people`.
    pub async fn create_person(
        &self,
        body: &CreatePersonRequest,
        idempotency: Idempotency,
    ) -> Result<Versioned<Person>, HollyHrError> {
        let request =
            Request::mutate(Method::POST, route::PEOPLE, &["people"], idempotency).json(body)?;
        Ok(unwrap_data(self.fetch(&request).await?))
    }

    /// `PATCH /people/{id}` (names only; job title and department live on employment).
    pub async fn update_person(
        &self,
        id: &str,
        body: &UpdatePersonRequest,
        if_match: &ResourceEtag,
        idempotency: Idempotency,
    ) -> Result<Versioned<Person>, HollyHrError> {
        let request = Request::mutate(Method::PATCH, route::PERSON, &["people", id], idempotency)
            .json(body)?
            .if_match(if_match);
        Ok(unwrap_data(self.fetch(&request).await?))
    }

    /// `PATCH /people/{id}/employment`, guarded by the employment's own ETag.
    pub async fn update_employment(
        &self,
        id: &str,
        body: &UpdateEmploymentRequest,
        if_match: &ResourceEtag,
        idempotency: Idempotency,
    ) -> Result<Versioned<Employment>, HollyHrError> {
        let request = Request::mutate(
            Method::PATCH,
            route::PERSON_EMPLOYMENT,
            &["people", id, "employment"],
            idempotency,
        )
        .json(body)?
        .if_match(if_match);
        Ok(unwrap_data(self.fetch(&request).await?))
    }

    /// `POST /people/{id}/end`.
    pub async fn end_person(
        &self,
        id: &str,
        body: &EndPersonRequest,
        if_match: &ResourceEtag,
        idempotency: Idempotency,
    ) -> Result<Versioned<Person>, HollyHrError> {
        let request = Request::mutate(
            Method::POST,
            route::PERSON_END,
            &["people", id, "end"],
            idempotency,
        )
        .json(body)?
        .if_match(if_match);
        Ok(unwrap_data(self.fetch(&request).await?))
    }

    /// `POST /people/{id}/reactivate` (the body is optional in the contract).
    pub async fn reactivate_person(
        &self,
        id: &str,
        body: Option<&ReactivatePersonRequest>,
        if_match: &ResourceEtag,
        idempotency: Idempotency,
    ) -> Result<Versioned<Person>, HollyHrError> {
        let mut request = Request::mutate(
            Method::POST,
            route::PERSON_REACTIVATE,
            &["people", id, "reactivate"],
            idempotency,
        )
        .if_match(if_match);
        if let Some(body) = body {
            request = request.json(body)?;
        }
        Ok(unwrap_data(self.fetch(&request).await?))
    }

    /// `GET /org-units`: the active units (small and unpaginated).
    pub async fn org_units(&self) -> Result<Vec<OrgUnit>, HollyHrError> {
        let list: List<OrgUnit> = self
            .fetch(&Request::get(route::ORG_UNITS, &["org-units"]))
            .await?
            .value;
        Ok(list.data)
    }

    /// `GET /org-units/{id}`: archived units too.
    pub async fn org_unit(&self, id: &str) -> Result<Versioned<OrgUnit>, HollyHrError> {
        Ok(unwrap_data(
            self.fetch(&Request::get(route::ORG_UNIT, &["org-units", id]))
                .await?,
        ))
    }

    pub async fn org_unit_if_changed(
        &self,
        id: &str,
        known: Option<&ResourceEtag>,
    ) -> Result<Conditional<OrgUnit>, HollyHrError> {
        let request = Request::get(route::ORG_UNIT, &["org-units", id]).if_none_match(known);
        Ok(unwrap_conditional(self.fetch_conditional(&request).await?))
    }
}

fn people_request(query: &PeopleQuery) -> Request {
    Request::get(route::PEOPLE, &["people"])
        .query("limit", query.limit.get())
        .query_opt("updated_since", query.updated_since)
        .query_opt("sort", query.sort.map(PeopleSort::as_str))
}

pub(super) fn unwrap_data<T>(answer: Versioned<Data<T>>) -> Versioned<T> {
    Versioned {
        value: answer.value.data,
        etag: answer.etag,
    }
}

pub(super) fn unwrap_conditional<T>(answer: Conditional<Data<T>>) -> Conditional<T> {
    match answer {
        Conditional::Modified(versioned) => Conditional::Modified(unwrap_data(versioned)),
        Conditional::NotModified { etag } => Conditional::NotModified { etag },
    }
}
