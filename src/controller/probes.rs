//! Probes: check the source and the directory are reachable with the object's credentials,
//! and turn the outcome into condition inputs.

use super::*;

/// Who the credentials belong to (HollyHR's `GET /me`; a Personio token), and the scope check;
/// the client when it passed.
pub(super) async fn probe_source(
    spec: &PeopleSyncSpec,
    credentials: SourceCredentials,
    observer: hollyhr::RequestObserver,
) -> (SourceOutcome, Option<AnySource>) {
    let client = match AnySource::connect(&spec.source, credentials, Some(observer)) {
        Ok(client) => client,
        Err(error) => return (SourceOutcome::Unreachable(error.to_string()), None),
    };
    let outcome = check_source(spec, &client).await;
    let passed = matches!(outcome, SourceOutcome::Reachable { .. });
    (outcome, passed.then_some(client))
}

/// The identity and scope check of a connected source.
pub(super) async fn check_source(spec: &PeopleSyncSpec, client: &AnySource) -> SourceOutcome {
    let required = spec.required_scopes();
    match client.whoami().await {
        Ok(principal) => {
            let missing = principal.missing_scopes(&required);
            if missing.is_empty() {
                let environment = if principal.sandbox { "sandbox" } else { "live" }.to_owned();
                SourceOutcome::Reachable { environment }
            } else {
                SourceOutcome::MissingScope(missing.into_iter().map(str::to_owned).collect())
            }
        }
        Err(error) if error.is_unauthorized() => SourceOutcome::Unauthorized,
        // Personio refuses a token for a scope the credential lacks.
        Err(error) if error.is_missing_scope() => {
            SourceOutcome::MissingScope(required.iter().map(|s| (*s).to_owned()).collect())
        }
        Err(error) => SourceOutcome::Unreachable(crate::telemetry::report(&error)),
    }
}

/// Connects to the target as the sync will: a bind and a read of the people DN for LDAP (over
/// TLS with the referenced CA when one is set), the ServiceProviderConfig and a one-user listing
/// for SCIM.
pub(super) async fn probe_directory(
    spec: &PeopleSyncSpec,
    credentials: crate::directory::any::Credentials,
    mark: String,
) -> (
    DirectoryOutcome,
    Option<crate::directory::any::AnyDirectory>,
) {
    use crate::directory::DirectoryError;
    use crate::directory::any::AnyDirectory;
    match AnyDirectory::connect(&spec.target, credentials, mark).await {
        Ok(directory) => match check_directory(spec, &directory).await {
            DirectoryOutcome::Reachable => (DirectoryOutcome::Reachable, Some(directory)),
            outcome => (outcome, None),
        },
        Err(error) => (
            DirectoryOutcome::Unreachable {
                reason: error.reason(),
                message: crate::telemetry::report(&error),
            },
            None,
        ),
    }
}

/// The reachability check of a connected directory (an LDAP read of the people DN on the
/// existing connection, which reconnects only when it was dropped).
pub(super) async fn check_directory(
    spec: &PeopleSyncSpec,
    directory: &crate::directory::any::AnyDirectory,
) -> DirectoryOutcome {
    use crate::directory::{Directory, DirectoryError};
    let hint = if spec.target.ldap.is_some() {
        "check the people DN"
    } else {
        "check the base URL"
    };
    match directory.check().await {
        Ok(()) => DirectoryOutcome::Reachable,
        Err(error) => DirectoryOutcome::Unreachable {
            reason: error.reason(),
            message: format!("{}: {hint}", crate::telemetry::report(&error)),
        },
    }
}

/// The target's secret (bind password or bearer token) and CA bundle from their Secrets.
pub(super) async fn directory_credentials(
    spec: &PeopleSyncSpec,
    namespace: &str,
    ctx: &Context,
) -> Result<crate::directory::any::Credentials, Error> {
    use secrecy::ExposeSecret;
    let (secret_ref, ca_ref) = match (&spec.target.ldap, &spec.target.scim) {
        (Some(ldap), _) => (&ldap.bind_password_secret_ref, ldap.ca_secret_ref.as_ref()),
        (None, Some(scim)) => (&scim.token_secret_ref, scim.ca_secret_ref.as_ref()),
        (None, None) => return Err(Error::NoTarget),
    };
    let secret = secrets::read_key(&ctx.secrets, namespace, secret_ref).await?;
    let ca_pem = match ca_ref {
        // A CA bundle is public data; it only travels in a Secret for convenience.
        Some(reference) => Some(
            secrets::read_key(&ctx.secrets, namespace, reference)
                .await?
                .expose_secret()
                .to_owned(),
        ),
        None => None,
    };
    Ok(crate::directory::any::Credentials { secret, ca_pem })
}
