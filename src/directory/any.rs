//! One `from_spec` dispatch over the backends (Stackable's pattern): the controller and the CLI
//! hold an [`AnyDirectory`] and never match on the target kind themselves.

use futures::StreamExt;
use futures::stream::BoxStream;
use secrecy::SecretString;

use super::ldap::{LdapBackendError, LdapConfig, LdapDirectory};
use super::scim::{ScimBackendError, ScimConfig, ScimDirectory};
use super::{Change, Directory, DirectoryError, DirectoryTraits, Entry, Group, GroupChange};
use crate::crd::TargetSpec;
use crate::plan::mapping::Profile;

/// What the referenced Secrets hold for a target.
pub struct Credentials {
    /// The LDAP bind password or the SCIM bearer token.
    pub secret: SecretString,
    /// A PEM CA bundle (LDAP over TLS).
    pub ca_pem: Option<String>,
}

#[derive(Debug)]
pub enum AnyDirectory {
    // Boxed: the LDAP handle is large, and a directory is built once per sync.
    Ldap(Box<LdapDirectory>),
    Scim(ScimDirectory),
}

#[derive(Debug, thiserror::Error)]
pub enum AnyDirectoryError {
    #[error(transparent)]
    Ldap(#[from] LdapBackendError),
    #[error(transparent)]
    Scim(#[from] ScimBackendError),
    #[error("no target is set: set spec.target.ldap or spec.target.scim")]
    NoTarget,
}

impl DirectoryError for AnyDirectoryError {
    fn reason(&self) -> &'static str {
        match self {
            AnyDirectoryError::Ldap(error) => error.reason(),
            AnyDirectoryError::Scim(error) => error.reason(),
            AnyDirectoryError::NoTarget => "InvalidSpec",
        }
    }

    fn is_per_entry(&self) -> bool {
        match self {
            AnyDirectoryError::Ldap(error) => error.is_per_entry(),
            AnyDirectoryError::Scim(error) => error.is_per_entry(),
            AnyDirectoryError::NoTarget => false,
        }
    }
}

/// The mapping profile of a target.
pub fn profile(target: &TargetSpec) -> Option<Profile> {
    match (&target.ldap, &target.scim) {
        (Some(ldap), _) => Some(Profile::Ldap(ldap.profile)),
        (None, Some(_)) => Some(Profile::Scim),
        (None, None) => None,
    }
}

/// The attribute template overrides of a target.
pub fn attribute_overrides(target: &TargetSpec) -> std::collections::BTreeMap<String, String> {
    match (&target.ldap, &target.scim) {
        (Some(ldap), _) => ldap.attributes.clone(),
        (None, Some(scim)) => scim.attributes.clone(),
        (None, None) => Default::default(),
    }
}

impl AnyDirectory {
    /// Connects to the spec's target (and binds / checks the token).
    pub async fn connect(
        target: &TargetSpec,
        credentials: Credentials,
        mark: String,
    ) -> Result<Self, AnyDirectoryError> {
        match (&target.ldap, &target.scim) {
            (Some(ldap), _) => {
                let config =
                    LdapConfig::from_spec(ldap, credentials.secret, credentials.ca_pem, mark);
                Ok(Self::Ldap(Box::new(LdapDirectory::connect(config).await?)))
            }
            (None, Some(scim)) => {
                let config = ScimConfig::from_spec(scim, credentials.secret, credentials.ca_pem);
                Ok(Self::Scim(ScimDirectory::connect(config).await?))
            }
            (None, None) => Err(AnyDirectoryError::NoTarget),
        }
    }
}

fn boxed<'a, T: Send + 'a, E: Into<AnyDirectoryError> + 'a>(
    stream: BoxStream<'a, Result<T, E>>,
) -> BoxStream<'a, Result<T, AnyDirectoryError>> {
    stream.map(|item| item.map_err(Into::into)).boxed()
}

impl Directory for AnyDirectory {
    type Error = AnyDirectoryError;

    fn traits(&self) -> DirectoryTraits {
        match self {
            AnyDirectory::Ldap(d) => d.traits(),
            AnyDirectory::Scim(d) => d.traits(),
        }
    }

    async fn check(&self) -> Result<(), AnyDirectoryError> {
        match self {
            AnyDirectory::Ldap(d) => Ok(d.check().await?),
            AnyDirectory::Scim(d) => Ok(d.check().await?),
        }
    }

    fn entries(&self) -> BoxStream<'_, Result<Entry, AnyDirectoryError>> {
        match self {
            AnyDirectory::Ldap(d) => boxed(d.entries()),
            AnyDirectory::Scim(d) => boxed(d.entries()),
        }
    }

    fn everyone(&self) -> BoxStream<'_, Result<Entry, AnyDirectoryError>> {
        match self {
            AnyDirectory::Ldap(d) => boxed(d.everyone()),
            AnyDirectory::Scim(d) => boxed(d.everyone()),
        }
    }

    fn unowned(&self) -> BoxStream<'_, Result<Entry, AnyDirectoryError>> {
        match self {
            AnyDirectory::Ldap(d) => boxed(d.unowned()),
            AnyDirectory::Scim(d) => boxed(d.unowned()),
        }
    }

    fn elsewhere(&self) -> BoxStream<'_, Result<Entry, AnyDirectoryError>> {
        match self {
            AnyDirectory::Ldap(d) => boxed(d.elsewhere()),
            AnyDirectory::Scim(d) => boxed(d.elsewhere()),
        }
    }

    async fn apply(&self, change: &Change) -> Result<String, AnyDirectoryError> {
        match self {
            AnyDirectory::Ldap(d) => Ok(d.apply(change).await?),
            AnyDirectory::Scim(d) => Ok(d.apply(change).await?),
        }
    }

    fn groups(&self) -> BoxStream<'_, Result<Group, AnyDirectoryError>> {
        match self {
            AnyDirectory::Ldap(d) => boxed(d.groups()),
            AnyDirectory::Scim(d) => boxed(d.groups()),
        }
    }

    async fn apply_group(&self, change: &GroupChange) -> Result<String, AnyDirectoryError> {
        match self {
            AnyDirectory::Ldap(d) => Ok(d.apply_group(change).await?),
            AnyDirectory::Scim(d) => Ok(d.apply_group(change).await?),
        }
    }
}
