//! Dereferencing `SecretKeyRef`s. A missing Secret or key is a condition (`SecretNotFound`,
//! `SecretKeyMissing`) the user can fix, never a crash; the values are wrapped in `SecretString`
//! at once so they cannot reach a log.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use secrecy::SecretString;

use super::status::Blocker;
use crate::crd::SecretKeyRef;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("Secret {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("Secret {namespace}/{name} has no key {key:?}")]
    KeyMissing {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("Secret {namespace}/{name} key {key:?} is not UTF-8 text")]
    NotText {
        namespace: String,
        name: String,
        key: String,
    },
    #[error("failed to read Secret {namespace}/{name}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl SecretError {
    /// The condition a user sees; `None` for transient API errors (retried with backoff).
    pub fn blocker(&self) -> Option<Blocker> {
        let reason = match self {
            SecretError::NotFound { .. } => "SecretNotFound",
            SecretError::KeyMissing { .. } | SecretError::NotText { .. } => "SecretKeyMissing",
            SecretError::Api { .. } => return None,
        };
        Some(Blocker {
            reason,
            message: format!("{self}: create it or fix the reference in the PeopleSync spec"),
        })
    }
}

/// Reads one key of a Secret in `namespace`.
pub async fn read_key(
    client: &kube::Client,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<SecretString, SecretError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(&reference.name)
        .await
        .map_err(|source| SecretError::Api {
            namespace: namespace.to_owned(),
            name: reference.name.clone(),
            source,
        })?
        .ok_or_else(|| SecretError::NotFound {
            namespace: namespace.to_owned(),
            name: reference.name.clone(),
        })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(&reference.key))
        .map(|value| value.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|data| data.get(&reference.key))
                .map(|value| value.clone().into_bytes())
        })
        .ok_or_else(|| SecretError::KeyMissing {
            namespace: namespace.to_owned(),
            name: reference.name.clone(),
            key: reference.key.clone(),
        })?;
    let text = String::from_utf8(bytes).map_err(|_| SecretError::NotText {
        namespace: namespace.to_owned(),
        name: reference.name.clone(),
        key: reference.key.clone(),
    })?;
    // A trailing newline is the usual accident of `kubectl create secret --from-file`.
    Ok(SecretString::from(
        text.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}
