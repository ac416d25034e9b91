//! The source of one PeopleSync, whichever HR system it is: one [`AnySource::connect`] dispatch
//! from the spec, so the engine, the controller and the standalone commands stay generic.

use futures::StreamExt;
use futures::stream::BoxStream;
use jiff::Timestamp;
use secrecy::SecretString;

use super::hollyhr::{self, HollyHrClient, HollyHrError, RequestObserver};
use super::personio::{self, PersonioClient, PersonioError};
use super::{OrgUnit, PeopleSource, Person, Principal, SourceError};
use crate::crd::SourceSpec;

/// The keys of the Personio credentials Secret.
pub const PERSONIO_CLIENT_ID_KEY: &str = "client_id";
pub const PERSONIO_CLIENT_SECRET_KEY: &str = "client_secret";

/// A connected HR source.
#[derive(Clone)]
pub enum AnySource {
    HollyHr(HollyHrClient),
    Personio(PersonioClient),
}

/// What a source needs from Secrets.
pub enum SourceCredentials {
    HollyHr {
        api_key: SecretString,
        /// `caSecretRef`'s PEM bundle (public data; it travels in a Secret for convenience).
        ca_pem: Option<String>,
    },
    Personio {
        client_id: SecretString,
        client_secret: SecretString,
        ca_pem: Option<String>,
    },
}

impl SourceCredentials {
    /// Feeds the secrets to `hasher` (a fingerprint kept in memory only: connections are
    /// rebuilt when a credential changes).
    pub fn hash_secrets(&self, hasher: &mut impl std::hash::Hasher) {
        use secrecy::ExposeSecret;
        use std::hash::Hash;
        match self {
            SourceCredentials::HollyHr { api_key, ca_pem } => {
                api_key.expose_secret().hash(hasher);
                ca_pem.hash(hasher);
            }
            SourceCredentials::Personio {
                client_id,
                client_secret,
                ca_pem,
            } => {
                client_id.expose_secret().hash(hasher);
                client_secret.expose_secret().hash(hasher);
                ca_pem.hash(hasher);
            }
        }
    }

    /// The spec's source's credentials from the referenced Secret(s); `None` when not exactly
    /// one source is set.
    pub async fn read(
        spec: &SourceSpec,
        namespace: &str,
        cache: &crate::secrets::SecretCache,
    ) -> Result<Option<Self>, crate::secrets::SecretError> {
        use crate::secrets::read_key;
        use secrecy::ExposeSecret;
        let ca = async |reference: Option<&crate::crd::SecretKeyRef>| match reference {
            Some(reference) => read_key(cache, namespace, reference)
                .await
                .map(|pem| Some(pem.expose_secret().to_owned())),
            None => Ok(None),
        };
        Ok(Some(match (&spec.hollyhr, &spec.personio) {
            (Some(hollyhr), None) => SourceCredentials::HollyHr {
                api_key: read_key(cache, namespace, &hollyhr.api_key_secret_ref).await?,
                ca_pem: ca(hollyhr.ca_secret_ref.as_ref()).await?,
            },
            (None, Some(personio)) => {
                let secret = &personio.credentials_secret_ref;
                SourceCredentials::Personio {
                    client_id: read_key(cache, namespace, &secret.key(PERSONIO_CLIENT_ID_KEY))
                        .await?,
                    client_secret: read_key(
                        cache,
                        namespace,
                        &secret.key(PERSONIO_CLIENT_SECRET_KEY),
                    )
                    .await?,
                    ca_pem: ca(personio.ca_secret_ref.as_ref()).await?,
                }
            }
            _ => return Ok(None),
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AnySourceError {
    #[error(transparent)]
    HollyHr(#[from] HollyHrError),
    /// Boxed: Personio's errors carry the route, code, title and trace id.
    #[error(transparent)]
    Personio(Box<PersonioError>),
    #[error("failed to set up the source: {0}")]
    Spec(String),
}

impl From<PersonioError> for AnySourceError {
    fn from(error: PersonioError) -> Self {
        AnySourceError::Personio(Box::new(error))
    }
}

impl AnySourceError {
    /// The credentials were refused (HollyHR's 401; Personio's token refusal or a 401 after a
    /// fresh token).
    pub fn is_unauthorized(&self) -> bool {
        match self {
            AnySourceError::HollyHr(error) => {
                error.category() == hollyhr::ErrorReason::Unauthorized
            }
            AnySourceError::Personio(error) => matches!(
                error.category(),
                personio::ErrorCategory::InvalidCredentials | personio::ErrorCategory::Unauthorized
            ),
            AnySourceError::Spec(_) => false,
        }
    }

    /// The credential lacks a scope it asked for (Personio's `invalid_scope`).
    pub fn is_missing_scope(&self) -> bool {
        matches!(self, AnySourceError::Personio(error) if error.category() == personio::ErrorCategory::MissingScope)
    }
}

impl SourceError for AnySourceError {
    fn reason(&self) -> &'static str {
        match self {
            AnySourceError::HollyHr(error) => error.reason(),
            AnySourceError::Personio(error) => error.reason(),
            AnySourceError::Spec(_) => "InvalidSpec",
        }
    }
}

impl AnySource {
    /// Whether reading people one by one would wait for the source's rate limit now (HollyHR's
    /// `/people/{personId}` bucket in its reserve). Personio's reads are not paced this way.
    pub fn person_reads_paced(&self) -> bool {
        match self {
            AnySource::HollyHr(client) => client.paced(crate::source::hollyhr::routes::PERSON),
            AnySource::Personio(_) => false,
        }
    }

    /// The client for the spec's source (no request is made yet). `observer` sees every
    /// request's route template and status (metrics).
    pub fn connect(
        spec: &SourceSpec,
        credentials: SourceCredentials,
        observer: Option<RequestObserver>,
    ) -> Result<Self, AnySourceError> {
        use secrecy::ExposeSecret;
        match (spec, credentials) {
            (
                SourceSpec {
                    hollyhr: Some(hollyhr),
                    personio: None,
                },
                SourceCredentials::HollyHr { api_key, ca_pem },
            ) => {
                let mut config = hollyhr::ClientConfig::new(&hollyhr.base_url, api_key)?;
                config.observer = observer;
                config.ca_pem = ca_pem;
                Ok(AnySource::HollyHr(HollyHrClient::new(config)?))
            }
            (
                SourceSpec {
                    hollyhr: None,
                    personio: Some(p),
                },
                SourceCredentials::Personio {
                    client_id,
                    client_secret,
                    ca_pem,
                },
            ) => {
                let base_url = url::Url::parse(&p.base_url).map_err(|error| {
                    AnySourceError::Spec(format!("source.personio.baseUrl: {error}"))
                })?;
                let mut config = personio::PersonioConfig::new(
                    base_url,
                    client_id.expose_secret().trim(),
                    client_secret,
                );
                config.app_id = p.app_id.clone();
                config.page_size = p.page_size;
                config.department_type = p.department_type.clone();
                config.ca_pem = ca_pem;
                let client = PersonioClient::new(config)?;
                Ok(AnySource::Personio(match observer {
                    Some(observer) => client.with_observer(observer),
                    None => client,
                }))
            }
            _ => Err(AnySourceError::Spec(
                "set exactly one source: source.hollyhr or source.personio".into(),
            )),
        }
    }

    /// The HR system's name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            AnySource::HollyHr(_) => "HollyHR",
            AnySource::Personio(_) => "Personio",
        }
    }

    /// The source's webhook flavour (the one dispatch from a source to its webhook code).
    pub fn flavour(&self) -> &dyn crate::webhook::Flavour {
        match self {
            AnySource::HollyHr(client) => client,
            AnySource::Personio(client) => client,
        }
    }
}

impl PeopleSource for AnySource {
    type Error = AnySourceError;

    async fn whoami(&self) -> Result<Principal, AnySourceError> {
        Ok(match self {
            AnySource::HollyHr(client) => client.whoami().await?,
            AnySource::Personio(client) => client.whoami().await?,
        })
    }

    fn people(
        &self,
        updated_since: Option<Timestamp>,
    ) -> BoxStream<'static, Result<Person, AnySourceError>> {
        match self {
            AnySource::HollyHr(client) => PeopleSource::people(client, updated_since)
                .map(|r| r.map_err(AnySourceError::from))
                .boxed(),
            AnySource::Personio(client) => PeopleSource::people(client, updated_since)
                .map(|r| r.map_err(AnySourceError::from))
                .boxed(),
        }
    }

    async fn person(&self, id: &str) -> Result<Option<Person>, AnySourceError> {
        Ok(match self {
            AnySource::HollyHr(client) => PeopleSource::person(client, id).await?,
            AnySource::Personio(client) => PeopleSource::person(client, id).await?,
        })
    }

    async fn org_units(&self) -> Result<Vec<OrgUnit>, AnySourceError> {
        Ok(match self {
            AnySource::HollyHr(client) => PeopleSource::org_units(client).await?,
            AnySource::Personio(client) => PeopleSource::org_units(client).await?,
        })
    }
}

/// How the receiver authenticates and reads deliveries held under `scheme` (the owned Secret
/// records it when the flavour issues the credential).
pub fn deliveries(
    scheme: crate::webhook::signing::Scheme,
) -> &'static dyn crate::webhook::Deliveries {
    use crate::webhook::signing::Scheme;
    match scheme {
        Scheme::Hmac => &hollyhr::flavour::receive::Hmac,
        Scheme::Token => &personio::flavour::receive::Token,
    }
}

/// How the spec's source names its credential in conditions.
pub fn wording(spec: &SourceSpec) -> &'static super::Wording {
    match spec.personio {
        Some(_) => &personio::WORDING,
        None => &hollyhr::WORDING,
    }
}
