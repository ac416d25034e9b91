//! Dereferencing `SecretKeyRef`s. A missing Secret or key is a condition (`SecretNotFound`,
//! `SecretKeyMissing`) the user can fix, never a crash; the values are wrapped in `SecretString`
//! at once so they cannot reach a log.
//!
//! Secrets are read from a [`SecretCache`] that the operator's one Secret watch keeps true: a
//! reconcile reads no Secret from the API server once it has read it the first time. The cache
//! holds only the Secrets PeopleSync has read (the ones objects reference, and its own signing
//! Secrets), never every Secret the watch sees, so its memory does not grow with the cluster.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use secrecy::SecretString;

use crate::crd::SecretKeyRef;
use crate::crd::conditions::Blocker;

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

/// The Secrets PeopleSync reads, kept in step by the Secret watch ([`SecretCache::observe`]).
/// A key is cached from its first read on; every later read is answered from memory. A watch
/// event replaces a cached Secret only with a newer one (by `resourceVersion`), so a late event
/// never undoes PeopleSync's own write ([`SecretCache::put`]).
#[derive(Clone)]
pub struct SecretCache {
    client: kube::Client,
    inner: Arc<Mutex<CacheState>>,
}

#[derive(Default)]
struct CacheState {
    /// `None`: a first read is in flight and no event has filled it yet.
    entries: HashMap<Key, Option<Arc<Secret>>>,
    /// Keys seen since the watch started (re-)listing; `None` outside a re-list.
    relisted: Option<HashSet<Key>>,
}

fn key_of(secret: &Secret) -> Option<Key> {
    Some((secret.namespace()?, secret.name_any()))
}

/// Whether `new` is at least as recent as `old` (resource versions compared as numbers where
/// both are, as etcd's revisions are; otherwise the newcomer wins).
fn not_older(new: &Secret, old: &Secret) -> bool {
    let version = |s: &Secret| s.resource_version().and_then(|v| v.parse::<u64>().ok());
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

    /// The Secret, from memory when cached; otherwise read once from the API server (and
    /// cached from then on). `None` when it does not exist.
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, kube::Error> {
        let key = (namespace.to_owned(), name.to_owned());
        {
            let mut state = self.state();
            match state.entries.get(&key) {
                Some(Some(secret)) => return Ok(Some(secret.clone())),
                Some(None) => {}
                None => {
                    // Pending: a watch event during the read fills it.
                    state.entries.insert(key.clone(), None);
                }
            }
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let read = api.get_opt(name).await;
        let mut state = self.state();
        match read {
            Ok(Some(secret)) => {
                let secret = Arc::new(secret);
                let slot = state.entries.entry(key).or_insert(None);
                match slot {
                    Some(known) if !not_older(&secret, known) => Ok(Some(known.clone())),
                    _ => {
                        *slot = Some(secret.clone());
                        Ok(Some(secret))
                    }
                }
            }
            Ok(None) | Err(_) => {
                if let Some(Some(secret)) = state.entries.get(&key) {
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
        let Some(key) = key_of(&secret) else { return };
        let mut state = self.state();
        let slot = state.entries.entry(key).or_insert(None);
        if slot.as_ref().is_none_or(|known| not_older(&secret, known)) {
            *slot = Some(Arc::new(secret));
        }
    }

    /// One event of the Secret watch. Only cached keys are kept; a re-list drops the cached
    /// Secrets that were deleted while the watch was away.
    pub fn observe(&self, event: &watcher::Event<Secret>) {
        let mut state = self.state();
        match event {
            watcher::Event::Init => state.relisted = Some(HashSet::new()),
            watcher::Event::InitApply(secret) | watcher::Event::Apply(secret) => {
                let Some(key) = key_of(secret) else { return };
                if let Some(seen) = state.relisted.as_mut() {
                    seen.insert(key.clone());
                }
                if let Some(slot) = state.entries.get_mut(&key)
                    && slot.as_ref().is_none_or(|known| not_older(secret, known))
                {
                    *slot = Some(Arc::new(secret.clone()));
                }
            }
            watcher::Event::Delete(secret) => {
                if let Some(key) = key_of(secret) {
                    state.entries.remove(&key);
                }
            }
            watcher::Event::InitDone => {
                if let Some(seen) = state.relisted.take() {
                    state
                        .entries
                        .retain(|key, slot| slot.is_none() || seen.contains(key));
                }
            }
        }
    }

    /// How many Secrets are cached.
    pub fn len(&self) -> usize {
        self.state().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The operator's one Secret watch (in `namespace`, or all): keeps `cache` in step, shows every
/// event to `observe` (the receiver's signing book), and sends the name of every Secret that changes after the first
/// listing to `changed` (the objects that reference it reconcile). While nobody takes the
/// names (no leader here), they are dropped: a new leader reconciles every object anyway.
pub async fn watch(
    cache: SecretCache,
    namespace: Option<String>,
    observe: impl Fn(&watcher::Event<Secret>),
    changed: tokio::sync::mpsc::Sender<(String, String)>,
) {
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    let api: Api<Secret> = match &namespace {
        Some(ns) => Api::namespaced(cache.client().clone(), ns),
        None => Api::all(cache.client().clone()),
    };
    let mut events = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                cache.observe(&event);
                observe(&event);
                if let watcher::Event::Apply(secret) | watcher::Event::Delete(secret) = &event
                    && let Some(key) = key_of(secret)
                {
                    let _ = changed.try_send(key);
                }
            }
            Err(error) => tracing::warn!(%error, "watching Secrets failed; retrying"),
        }
    }
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

    #[tokio::test]
    async fn a_relist_drops_what_was_deleted_while_the_watch_was_away() {
        let (cache, _handle) = cache();
        cache.put(secret("kept", 2, "a"));
        cache.put(secret("deleted", 2, "b"));
        cache.observe(&watcher::Event::Init);
        cache.observe(&watcher::Event::InitApply(secret("kept", 4, "c")));
        cache.observe(&watcher::Event::InitDone);
        assert_eq!(cache.len(), 1);
        let kept = cache
            .get("team", "kept")
            .await
            .expect("reads")
            .expect("kept");
        assert_eq!(value(&kept), "c");
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
