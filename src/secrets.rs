//! Dereferencing `SecretKeyRef`s. A missing Secret or key is a condition (`SecretNotFound`,
//! `SecretKeyMissing`) the user can fix, never a crash; the values are wrapped in `SecretString`
//! at once so they cannot reach a log.
//!
//! Secrets are read from a [`SecretCache`] that the operator's Secret watches keep true: a
//! reconcile reads no Secret from the API server once it has read it, until it changes. The
//! cache holds only the Secrets PeopleSync uses (the ones objects reference, read by name, and
//! its own signing Secrets, watched by label); every other Secret is seen by its metadata only,
//! so memory does not follow the cluster's Secrets.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use secrecy::SecretString;

use crate::crd::SecretKeyRef;
use crate::crd::conditions::Blocker;
use crate::watch::Namespaces;

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
    #[error(
        "Secret {namespace}/{name} key {key:?} holds {bytes} bytes, over the {limit} a credential may have"
    )]
    TooLarge {
        namespace: String,
        name: String,
        key: String,
        bytes: usize,
        limit: usize,
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
            SecretError::TooLarge { .. } => "SecretTooLarge",
            SecretError::Api { .. } => return None,
        };
        Some(Blocker {
            reason,
            message: format!("{self}: create it or fix the reference in the PeopleSync spec"),
        })
    }
}

type Key = (String, String);

/// The Secrets PeopleSync reads, and only those: the ones its objects reference (read by name
/// on first use) and its own webhook signing Secrets (watched by label, with their data). No
/// other Secret's data is ever held: referenced Secrets are kept true by a metadata-only watch
/// ([`SecretCache::observe_meta`]) that drops a held copy once a newer version exists, so the
/// next read fetches it again. A data event replaces a held Secret only with a newer one (by
/// `resourceVersion`), so a late event never undoes PeopleSync's own write ([`SecretCache::put`]).
#[derive(Clone)]
pub struct SecretCache {
    client: kube::Client,
    inner: Arc<Mutex<CacheState>>,
}

#[derive(Default)]
struct CacheState {
    entries: HashMap<Key, Slot>,
    /// Per metadata watch (by its namespace; `None`: all), the keys its current re-list has
    /// seen; absent outside a re-list.
    relisted: HashMap<Option<String>, HashSet<Key>>,
}

enum Slot {
    /// A first read is in flight; `newer_than` is the newest version a metadata event has
    /// shown meanwhile (a read that answers an older one is not kept).
    Reading {
        newer_than: Option<u64>,
    },
    Held(Arc<Secret>),
}

fn key_of(meta: &ObjectMeta) -> Option<Key> {
    Some((meta.namespace.clone()?, meta.name.clone()?))
}

fn version(meta: &ObjectMeta) -> Option<u64> {
    meta.resource_version.as_deref()?.parse().ok()
}

/// Whether `new` is at least as recent as `old` (resource versions compared as numbers where
/// both are, as etcd's revisions are; otherwise the newcomer wins).
fn not_older(new: &ObjectMeta, old: &ObjectMeta) -> bool {
    match (version(new), version(old)) {
        (Some(new), Some(old)) => new >= old,
        _ => true,
    }
}

impl SecretCache {
    /// An empty cache that reads through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            inner: Arc::default(),
        }
    }

    /// The client it reads through (PeopleSync's own Secret writes use it too).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.inner
            .lock()
            .expect("the Secret cache lock is never poisoned")
    }

    /// The Secret, from memory when held; otherwise read by name from the API server (and held
    /// from then on). `None` when it does not exist.
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, kube::Error> {
        let key = (namespace.to_owned(), name.to_owned());
        {
            let mut state = self.state();
            match state.entries.get(&key) {
                Some(Slot::Held(secret)) => return Ok(Some(secret.clone())),
                Some(Slot::Reading { .. }) => {}
                None => {
                    // Pending: a watch event during the read fills it (or marks it stale).
                    state
                        .entries
                        .insert(key.clone(), Slot::Reading { newer_than: None });
                }
            }
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let read = api.get_opt(name).await;
        let mut state = self.state();
        match read {
            Ok(Some(secret)) => {
                let secret = Arc::new(secret);
                match state.entries.get(&key) {
                    Some(Slot::Held(known)) if !not_older(&secret.metadata, &known.metadata) => {
                        Ok(Some(known.clone()))
                    }
                    Some(Slot::Reading {
                        newer_than: Some(newer),
                    }) if version(&secret.metadata).is_some_and(|v| v < *newer) => {
                        // Changed while the read was in flight: answer what was read, keep
                        // nothing; the change's own reconcile reads the new one.
                        state.entries.remove(&key);
                        Ok(Some(secret))
                    }
                    _ => {
                        state.entries.insert(key, Slot::Held(secret.clone()));
                        Ok(Some(secret))
                    }
                }
            }
            Ok(None) | Err(_) => {
                if let Some(Slot::Held(secret)) = state.entries.get(&key) {
                    // Created (seen by the watch) while the read was in flight.
                    return Ok(Some(secret.clone()));
                }
                state.entries.remove(&key);
                read.map(|_| None)
            }
        }
    }

    /// What PeopleSync itself just wrote (the API server's answer): read back at once, before
    /// the watch brings it.
    pub fn put(&self, secret: Secret) {
        let Some(key) = key_of(&secret.metadata) else {
            return;
        };
        let mut state = self.state();
        let newer = match state.entries.get(&key) {
            Some(Slot::Held(known)) => not_older(&secret.metadata, &known.metadata),
            _ => true,
        };
        if newer {
            state.entries.insert(key, Slot::Held(Arc::new(secret)));
        }
    }

    /// One event of the watch of PeopleSync's own Secrets (with their data; a [`merged`]
    /// stream, so a re-list arrives as `Apply` and `Delete`). Only keys already asked for are
    /// kept.
    ///
    /// [`merged`]: crate::watch::merged
    pub fn observe(&self, event: &watcher::Event<Secret>) {
        let mut state = self.state();
        match event {
            watcher::Event::InitApply(secret) | watcher::Event::Apply(secret) => {
                let Some(key) = key_of(&secret.metadata) else {
                    return;
                };
                let newer = match state.entries.get(&key) {
                    Some(Slot::Held(known)) => not_older(&secret.metadata, &known.metadata),
                    Some(Slot::Reading { .. }) => true,
                    None => false,
                };
                if newer {
                    state
                        .entries
                        .insert(key, Slot::Held(Arc::new(secret.clone())));
                }
            }
            watcher::Event::Delete(secret) => {
                if let Some(key) = key_of(&secret.metadata) {
                    state.entries.remove(&key);
                }
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    /// One event of the metadata-only watch of Secrets in `scope` (a namespace, or all): a
    /// held Secret that has a newer version is dropped (the next read fetches it), a deleted
    /// one is forgotten, and a re-list forgets what was deleted while the watch was away.
    pub fn observe_meta(
        &self,
        scope: &Option<String>,
        event: &watcher::Event<PartialObjectMeta<Secret>>,
    ) {
        let mut state = self.state();
        match event {
            watcher::Event::Init => {
                state.relisted.insert(scope.clone(), HashSet::new());
            }
            watcher::Event::InitApply(meta) | watcher::Event::Apply(meta) => {
                let Some(key) = key_of(&meta.metadata) else {
                    return;
                };
                if matches!(event, watcher::Event::InitApply(_))
                    && let Some(seen) = state.relisted.get_mut(scope)
                {
                    seen.insert(key.clone());
                }
                match state.entries.get_mut(&key) {
                    Some(Slot::Held(known)) if !not_older(&known.metadata, &meta.metadata) => {
                        state.entries.remove(&key);
                    }
                    Some(Slot::Reading { newer_than }) => {
                        *newer_than = version(&meta.metadata).max(*newer_than);
                    }
                    _ => {}
                }
            }
            watcher::Event::Delete(meta) => {
                if let Some(key) = key_of(&meta.metadata) {
                    state.entries.remove(&key);
                }
            }
            watcher::Event::InitDone => {
                if let Some(seen) = state.relisted.remove(scope) {
                    state.entries.retain(|key, slot| {
                        matches!(slot, Slot::Reading { .. })
                            || seen.contains(key)
                            || scope.as_ref().is_some_and(|ns| *ns != key.0)
                    });
                }
            }
        }
    }

    /// How many Secrets are held (or being read).
    pub fn len(&self) -> usize {
        self.state().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of Secret data held.
    #[cfg(test)]
    fn data_bytes(&self) -> usize {
        self.state()
            .entries
            .values()
            .filter_map(|slot| match slot {
                Slot::Held(secret) => secret.data.as_ref(),
                Slot::Reading { .. } => None,
            })
            .flat_map(|data| data.values())
            .map(|value| value.0.len())
            .sum()
    }
}

/// Secrets a metadata page holds at most: a Secret applied with `kubectl apply` carries its
/// data again in an annotation, so a page of 50 such 512 KiB Secrets is the most the watch
/// holds at once (the default 500 would be ten times that).
const METADATA_PAGE: u32 = 50;

/// The operator's Secret watches in the served `namespaces`:
/// - PeopleSync's own Secrets (those matching `owned_selector`), with their data, as one
///   [`merged`](crate::watch::merged) stream: they keep `cache` in step and are shown to
///   `observe` (the receiver's signing book);
/// - every Secret's metadata only (never its data): a held Secret that changed is dropped from
///   `cache`, and the name of every Secret that changes after the first listing goes to
///   `changed` (the objects that reference it reconcile). While nobody takes the names (no
///   leader here), they are dropped: a new leader reconciles every object anyway.
pub async fn watch(
    cache: SecretCache,
    namespaces: Namespaces,
    owned_selector: String,
    observe: impl Fn(&watcher::Event<Secret>),
    changed: tokio::sync::mpsc::Sender<(String, String)>,
) {
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    let owned = crate::watch::merged(
        namespaces
            .apis::<Secret>(cache.client())
            .into_iter()
            .map(|api| {
                watcher(
                    api,
                    watcher::Config::default()
                        .labels(&owned_selector)
                        .any_semantic(),
                )
                .default_backoff()
            })
            .collect(),
    )
    .boxed();
    let metadata = futures::stream::select_all(
        namespaces
            .apis::<PartialObjectMeta<Secret>>(cache.client())
            .into_iter()
            .zip(namespaces.scopes())
            .map(|(api, scope)| {
                // `Api<PartialObjectMeta<_>>` asks for metadata only: no Secret's data
                // reaches this process through this watch.
                watcher(
                    api,
                    watcher::Config::default()
                        .page_size(METADATA_PAGE)
                        .any_semantic(),
                )
                .default_backoff()
                .map(move |event| (scope.clone(), event))
                .boxed()
            }),
    );
    let owned_cache = cache.clone();
    let owned = async move {
        let mut owned = owned;
        while let Some(event) = owned.next().await {
            match event {
                Ok(event) => {
                    owned_cache.observe(&event);
                    observe(&event);
                }
                Err(error) => {
                    tracing::warn!(%error, "watching PeopleSync's Secrets failed; retrying")
                }
            }
        }
    };
    let references = async move {
        let mut metadata = metadata;
        while let Some((scope, event)) = metadata.next().await {
            match event {
                Ok(event) => {
                    cache.observe_meta(&scope, &event);
                    if let watcher::Event::Apply(meta) | watcher::Event::Delete(meta) = &event
                        && let Some(key) = key_of(&meta.metadata)
                    {
                        let _ = changed.try_send(key);
                    }
                }
                Err(error) => tracing::warn!(%error, "watching Secrets' metadata failed; retrying"),
            }
        }
    };
    futures::future::join(owned, references).await;
}

/// Reads one key of a Secret in `namespace` (from the cache; a first read fetches it).
pub async fn read_key(
    cache: &SecretCache,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<SecretString, SecretError> {
    let secret = cache
        .get(namespace, &reference.name)
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
    value(secret.as_ref(), namespace, reference)
}

/// The most a credential (API key, password, token, CA bundle) may hold: a CA bundle of a few
/// dozen certificates fits; a 10 MB value is refused with a condition instead of being held.
pub const VALUE_LIMIT: usize = 256 * 1024;

/// One key of a Secret as text (from `data` or `stringData`), without a trailing newline.
pub fn value(
    secret: &Secret,
    namespace: &str,
    reference: &SecretKeyRef,
) -> Result<SecretString, SecretError> {
    let raw: &[u8] = secret
        .data
        .as_ref()
        .and_then(|data| data.get(&reference.key))
        .map(|value| value.0.as_slice())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|data| data.get(&reference.key))
                .map(|value| value.as_bytes())
        })
        .ok_or_else(|| SecretError::KeyMissing {
            namespace: namespace.to_owned(),
            name: reference.name.clone(),
            key: reference.key.clone(),
        })?;
    // Checked before anything is copied: a 10 MB value is refused, not held twice.
    if raw.len() > VALUE_LIMIT {
        return Err(SecretError::TooLarge {
            namespace: namespace.to_owned(),
            name: reference.name.clone(),
            key: reference.key.clone(),
            bytes: raw.len(),
            limit: VALUE_LIMIT,
        });
    }
    let bytes = raw.to_vec();
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_10_mb_value_is_refused_with_a_condition_before_it_is_copied() {
        use k8s_openapi::ByteString;
        let secret = Secret {
            data: Some(
                [(
                    "apiKey".to_owned(),
                    ByteString(vec![b'k'; 10 * 1024 * 1024]),
                )]
                .into(),
            ),
            ..Secret::default()
        };
        let reference = SecretKeyRef {
            name: "hollyhr".into(),
            key: "apiKey".into(),
        };
        let error = super::value(&secret, "team", &reference).expect_err("refused");
        let blocker = error.blocker().expect("a condition");
        assert_eq!(blocker.reason, "SecretTooLarge");
        assert!(
            blocker.message.contains("10485760 bytes"),
            "{}",
            blocker.message
        );
        assert!(
            !blocker.message.contains("kkkk"),
            "the value is never in the message"
        );
    }

    use std::time::Duration;

    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::json;
    use tower_test::mock;

    use super::*;

    type Verifier = mock::Handle<Request<Body>, Response<Body>>;

    fn cache() -> (SecretCache, Verifier) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (
            SecretCache::new(kube::Client::new(service, "default")),
            handle,
        )
    }

    fn secret(name: &str, version: u64, value: &str) -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "team", "resourceVersion": version.to_string()},
            "data": {"key": base64_of(value)}
        }))
        .expect("a Secret")
    }

    fn base64_of(value: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(value)
    }

    fn value(secret: &Secret) -> String {
        String::from_utf8_lossy(&secret.data.as_ref().expect("data")["key"].0).into_owned()
    }

    /// Answers the one GET the cache makes with `answer` (`None`: 404).
    async fn answer(handle: &mut Verifier, answer: Option<Secret>) {
        let (request, send) = handle.next_request().await.expect("a read");
        assert_eq!(request.method(), http::Method::GET);
        let (status, body) = match answer {
            Some(secret) => (200, serde_json::to_vec(&secret).expect("json")),
            None => (
                404,
                serde_json::to_vec(&json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}))
                    .expect("json"),
            ),
        };
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(body))
                .expect("a response"),
        );
    }

    async fn no_request(handle: &mut Verifier) {
        assert!(
            tokio::time::timeout(Duration::from_millis(100), handle.next_request())
                .await
                .is_err(),
            "the cache asked the API server again"
        );
    }

    #[tokio::test]
    async fn a_secret_is_read_once_then_kept_true_by_the_watch() {
        let (cache, mut handle) = cache();
        let first = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("team", "hollyhr").await })
        };
        answer(&mut handle, Some(secret("hollyhr", 5, "one"))).await;
        let read = first.await.expect("runs").expect("reads").expect("exists");
        assert_eq!(value(&read), "one");
        // Read again: from memory.
        let again = cache
            .get("team", "hollyhr")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(value(&again), "one");
        no_request(&mut handle).await;

        // A newer version from the watch replaces it; an older, late one does not.
        cache.observe(&watcher::Event::Apply(secret("hollyhr", 7, "two")));
        cache.observe(&watcher::Event::Apply(secret("hollyhr", 6, "stale")));
        let read = cache
            .get("team", "hollyhr")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(value(&read), "two");
        // PeopleSync's own write is read back at once; the watch's echo of an older one is not.
        cache.put(secret("hollyhr", 9, "ours"));
        cache.observe(&watcher::Event::Apply(secret(
            "hollyhr",
            8,
            "two-and-a-half",
        )));
        let read = cache
            .get("team", "hollyhr")
            .await
            .expect("reads")
            .expect("exists");
        assert_eq!(value(&read), "ours");
        no_request(&mut handle).await;

        // Secrets nobody read are not kept.
        cache.observe(&watcher::Event::Apply(secret("unrelated", 3, "x")));
        assert_eq!(cache.len(), 1);

        // Deleted: the next read asks again (and finds nothing).
        cache.observe(&watcher::Event::Delete(secret("hollyhr", 10, "ours")));
        let gone = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("team", "hollyhr").await })
        };
        answer(&mut handle, None).await;
        assert!(gone.await.expect("runs").expect("reads").is_none());
        assert!(cache.is_empty());
    }

    fn meta(name: &str, namespace: &str, version: u64) -> PartialObjectMeta<Secret> {
        serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": version.to_string()}
        }))
        .expect("metadata")
    }

    #[tokio::test]
    async fn a_newer_version_seen_by_the_metadata_watch_is_read_again() {
        let (cache, mut handle) = cache();
        let scope = Some("team".to_owned());
        cache.put(secret("ldap", 4, "old"));
        // The same version (PeopleSync's own write echoed) keeps the held copy.
        cache.observe_meta(&scope, &watcher::Event::Apply(meta("ldap", "team", 4)));
        assert_eq!(cache.data_bytes(), 3);
        // Changed: dropped at once (no data of it is held), read again on the next use.
        cache.observe_meta(&scope, &watcher::Event::Apply(meta("ldap", "team", 6)));
        assert_eq!(cache.data_bytes(), 0);
        let again = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("team", "ldap").await })
        };
        answer(&mut handle, Some(secret("ldap", 6, "new"))).await;
        let read = again.await.expect("runs").expect("reads").expect("exists");
        assert_eq!(value(&read), "new");
        // Secrets nobody reads are seen but never held.
        cache.observe_meta(
            &scope,
            &watcher::Event::Apply(meta("helm-release", "team", 9)),
        );
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn a_change_during_the_first_read_is_not_kept_stale() {
        let (cache, mut handle) = cache();
        let first = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("team", "ldap").await })
        };
        let (_request, send) = handle.next_request().await.expect("a read");
        cache.observe_meta(
            &Some("team".into()),
            &watcher::Event::Apply(meta("ldap", "team", 12)),
        );
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(
                    serde_json::to_vec(&secret("ldap", 11, "old")).expect("json"),
                ))
                .expect("a response"),
        );
        first.await.expect("runs").expect("reads").expect("exists");
        assert!(cache.is_empty(), "the older answer is not kept");
    }

    #[tokio::test]
    async fn a_relist_drops_what_was_deleted_while_the_watch_was_away() {
        let (cache, _handle) = cache();
        cache.put(secret("kept", 2, "a"));
        cache.put(secret("deleted", 2, "b"));
        let mut elsewhere = secret("elsewhere", 2, "c");
        elsewhere.metadata.namespace = Some("other".into());
        cache.put(elsewhere);
        let team = Some("team".to_owned());
        cache.observe_meta(&team, &watcher::Event::Init);
        cache.observe_meta(&team, &watcher::Event::InitApply(meta("kept", "team", 2)));
        cache.observe_meta(&team, &watcher::Event::InitDone);
        // Another namespace's watch does not prune this one's Secrets.
        assert_eq!(cache.len(), 2);
        let kept = cache
            .get("team", "kept")
            .await
            .expect("reads")
            .expect("kept");
        assert_eq!(value(&kept), "a");
        // A watch of every namespace prunes across them.
        cache.observe_meta(&None, &watcher::Event::Init);
        cache.observe_meta(&None, &watcher::Event::InitDone);
        assert!(cache.is_empty());
    }

    #[tokio::test]
    async fn a_watch_event_during_the_first_read_is_not_lost() {
        let (cache, mut handle) = cache();
        let first = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("team", "ldap").await })
        };
        let (_request, send) = handle.next_request().await.expect("a read");
        // The Secret changes while the read is in flight; the read then answers the older one.
        cache.observe(&watcher::Event::Apply(secret("ldap", 12, "new")));
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(
                    serde_json::to_vec(&secret("ldap", 11, "old")).expect("json"),
                ))
                .expect("a response"),
        );
        let read = first.await.expect("runs").expect("reads").expect("exists");
        assert_eq!(value(&read), "new");
    }
}
