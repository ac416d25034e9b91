//! Observation: dereference the spec's Secrets, validate the spec, and keep each object's
//! connected source and directory (its handles) while spec and credentials stay the same.

use super::*;

/// The connected source and directory, when both are reachable: the cycle, the targeted syncs
/// and the next reconciles reuse them (one HollyHR connection pool and one LDAP bind per object
/// while its spec and credentials stay the same).
pub(super) struct Handles {
    pub(super) source: AnySource,
    /// Behind the Lease fence when leader election is on.
    pub(super) directory: crate::directory::fenced::Fenced<crate::directory::any::AnyDirectory>,
    /// What they were built from: the source and target specs and the credentials.
    pub(super) fingerprint: u64,
}

/// A digest of what an object's handles are built from (specs and credential values; kept in
/// memory only, never logged).
pub(super) fn handles_fingerprint(
    spec: &PeopleSyncSpec,
    source: &SourceCredentials,
    target: &crate::directory::any::Credentials,
) -> u64 {
    use secrecy::ExposeSecret;
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&spec.source)
        .unwrap_or_default()
        .hash(&mut h);
    serde_json::to_string(&spec.target)
        .unwrap_or_default()
        .hash(&mut h);
    source.hash_secrets(&mut h);
    target.secret.expose_secret().hash(&mut h);
    target.ca_pem.hash(&mut h);
    h.finish()
}

/// What `observe` found: the observation, the source client when it passed its checks, and both
/// connections when the directory did too.
pub(super) type Observed = (Observation, Option<AnySource>, Option<Arc<Handles>>);

pub(super) async fn observe(
    object: &PeopleSync,
    namespace: &str,
    ctx: &Context,
) -> Result<Observed, Error> {
    let spec = &object.spec;
    let mut observed = Observation {
        blocker: None,
        source: SourceOutcome::NotChecked,
        directory: DirectoryOutcome::NotChecked,
        suspended: spec.suspend,
        sync: sync::SyncOutcome::NotRun,
        next_sync: None,
        next_transition: None,
        webhook: webhook::WebhookOutcome::NotChecked,
    };
    if let Some(blocker) = validate(spec) {
        observed.blocker = Some(blocker);
        return Ok((observed, None, None));
    }
    let credentials = match source_credentials(spec, namespace, ctx).await {
        Ok(Some(credentials)) => credentials,
        Ok(None) => {
            observed.blocker = Some(Blocker {
                reason: "InvalidSpec",
                message: "set exactly one source: spec.source.hollyhr or spec.source.personio"
                    .into(),
            });
            return Ok((observed, None, None));
        }
        Err(error) => match error.blocker() {
            Some(blocker) => {
                observed.blocker = Some(blocker);
                return Ok((observed, None, None));
            }
            None => return Err(error.into()),
        },
    };
    if let Some(blocker) = check_target_secrets(spec, namespace, ctx).await? {
        observed.blocker = Some(blocker);
        return Ok((observed, None, None));
    }
    if spec.suspend {
        return Ok((observed, None, None));
    }
    let observer = {
        let metrics = ctx.metrics.clone();
        let labels = crate::metrics::ObjectLabels::of(object);
        let source = spec.source.label();
        hollyhr::RequestObserver(Arc::new(move |route, status| {
            metrics.source_request(&labels, source, route, status)
        }))
    };
    let target = directory_credentials(spec, namespace, ctx).await?;
    let fingerprint = handles_fingerprint(spec, &credentials, &target);
    let uid = object.uid().unwrap_or_default();
    if let Some(kept) = ctx
        .handles_of(&uid)
        .filter(|h| h.fingerprint == fingerprint)
    {
        // The same spec and credentials: check the kept connections instead of making new ones
        // (no new LDAP bind on a healthy connection).
        let source = check_source(spec, &kept.source).await;
        let directory = check_directory(spec, kept.directory.inner()).await;
        let reachable = matches!(source, SourceOutcome::Reachable { .. })
            && matches!(directory, DirectoryOutcome::Reachable);
        observed.source = source;
        observed.directory = directory;
        if reachable {
            let client = kept.source.clone();
            return Ok((observed, Some(client), Some(kept)));
        }
    }
    let (source, client) = probe_source(spec, credentials, observer).await;
    let (directory, connected) = probe_directory(spec, target, owner_mark(object)).await;
    if connected.is_some() {
        ctx.metrics.directory_connected();
    }
    observed.source = source;
    observed.directory = directory;
    let handles = match (&client, connected) {
        (Some(source), Some(directory)) => Some(Arc::new(Handles {
            source: source.clone(),
            directory: crate::directory::fenced::Fenced::new(directory, ctx.fence.clone()),
            fingerprint,
        })),
        _ => None,
    };
    Ok((observed, client, handles))
}

/// What the schema and CEL cannot fully say (defence in depth for objects stored before a rule).
pub(super) fn validate(spec: &PeopleSyncSpec) -> Option<Blocker> {
    let invalid = |message: String| {
        Some(Blocker {
            reason: "InvalidSpec",
            message,
        })
    };
    if let Err(error) = spec.poll_interval() {
        return invalid(format!("spec.schedule.pollInterval: {error}"));
    }
    if let Err(error) = spec.full_resync_interval() {
        return invalid(format!("spec.schedule.fullResyncInterval: {error}"));
    }
    if spec.target.ldap.is_some() == spec.target.scim.is_some() {
        return invalid("set exactly one target: spec.target.ldap or spec.target.scim".into());
    }
    None
}

pub(super) async fn check_target_secrets(
    spec: &PeopleSyncSpec,
    namespace: &str,
    ctx: &Context,
) -> Result<Option<Blocker>, Error> {
    let mut refs = Vec::new();
    if let Some(ldap) = &spec.target.ldap {
        refs.push(&ldap.bind_password_secret_ref);
        refs.extend(ldap.ca_secret_ref.iter());
    }
    if let Some(scim) = &spec.target.scim {
        refs.push(&scim.token_secret_ref);
    }
    for reference in refs {
        if let Err(error) = secrets::read_key(&ctx.secrets, namespace, reference).await {
            return match error.blocker() {
                Some(blocker) => Ok(Some(blocker)),
                None => Err(error.into()),
            };
        }
    }
    Ok(None)
}

/// The source's credentials from the referenced Secret(s); `None` when not exactly one source
/// is set.
pub(super) async fn source_credentials(
    spec: &PeopleSyncSpec,
    namespace: &str,
    ctx: &Context,
) -> Result<Option<SourceCredentials>, secrets::SecretError> {
    SourceCredentials::read(&spec.source, namespace, &ctx.secrets).await
}

/// The mark this object's entries carry (`peoplesync:<namespace>/<name>`): the name, not the
/// uid, so an object deleted and created again (a restore, a move between clusters) still
/// owns what it made.
pub(super) fn owner_mark(object: &PeopleSync) -> String {
    crate::directory::mark_for(
        object.namespace().as_deref().unwrap_or_default(),
        &object.name_any(),
    )
}
