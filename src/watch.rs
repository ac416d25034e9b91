//! The namespaces PeopleSync serves, and watching in them as if they were one.
//!
//! A platform team grants the operator a Role in each namespace it serves (least privilege);
//! cluster-wide is an explicit opt-in. A Kubernetes watch covers one namespace or all of them,
//! so serving several namespaces means one watch per namespace. [`merged`] turns those streams
//! into one with the semantics of a single watch, which kube-runtime's reflector store (and the
//! receiver's signing book) rely on: one `Init`, the first listing of every namespace, one
//! `InitDone`; after that a namespace's re-list becomes `Apply` for what it lists and `Delete`
//! for what it no longer has. Fed the raw streams, the store would drop every other namespace's
//! objects each time one namespace re-lists.

use std::collections::HashMap;

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::watcher::{self, Event};

/// Where PeopleSync objects (and the Secrets they reference) are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    /// Every namespace (`--namespace '*'`, or no `--namespace`): needs cluster-wide RBAC.
    All,
    /// These namespaces only (sorted, without duplicates, never empty).
    Only(Vec<String>),
}

impl Namespaces {
    /// The namespaces named on the command line; none, or `*` among them, means all.
    pub fn from_args<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut only = Vec::new();
        for name in names {
            for name in name.as_ref().split(',') {
                let name = name.trim();
                if name == "*" {
                    return Namespaces::All;
                }
                if !name.is_empty() {
                    only.push(name.to_owned());
                }
            }
        }
        Namespaces::only(only)
    }

    /// Exactly these namespaces (all, when none is given).
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        let mut only: Vec<String> = names.into_iter().map(Into::into).collect();
        only.sort();
        only.dedup();
        if only.is_empty() {
            Namespaces::All
        } else {
            Namespaces::Only(only)
        }
    }

    /// One namespace.
    pub fn one(name: impl Into<String>) -> Self {
        Namespaces::Only(vec![name.into()])
    }

    /// Whether an object in `namespace` is served.
    pub fn serves(&self, namespace: &str) -> bool {
        match self {
            Namespaces::All => true,
            Namespaces::Only(only) => only.iter().any(|n| n == namespace),
        }
    }

    /// One API handle per watch: one per namespace, or one for all.
    pub fn apis<K>(&self, client: &kube::Client) -> Vec<kube::Api<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        match self {
            Namespaces::All => vec![kube::Api::all(client.clone())],
            Namespaces::Only(only) => only
                .iter()
                .map(|ns| kube::Api::namespaced(client.clone(), ns))
                .collect(),
        }
    }

    /// The namespace of each of [`Self::apis`]'s handles (`None`: all).
    pub fn scopes(&self) -> Vec<Option<String>> {
        match self {
            Namespaces::All => vec![None],
            Namespaces::Only(only) => only.iter().cloned().map(Some).collect(),
        }
    }
}

impl std::fmt::Display for Namespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Namespaces::All => f.write_str("every namespace"),
            Namespaces::Only(only) => f.write_str(&only.join(",")),
        }
    }
}

type Key = (Option<String>, String);

fn key_of<K: Resource>(object: &K) -> Key {
    let meta = object.meta();
    (
        meta.namespace.clone(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The fold behind [`merged`]: pure, one event in, the events of the single watch out.
///
/// It keeps the objects each stream has (so that a re-list can say which are gone): fine for
/// PeopleSync objects and PeopleSync's own Secrets, not meant for the cluster's Secrets.
pub struct Merge<K> {
    streams: Vec<StreamState<K>>,
    ready: bool,
}

struct StreamState<K> {
    /// What the stream's current listing has brought so far.
    listing: Option<HashMap<Key, K>>,
    /// What the stream holds now.
    known: HashMap<Key, K>,
    listed_once: bool,
}

impl<K: Resource + Clone> Merge<K> {
    pub fn new(streams: usize) -> Self {
        Self {
            streams: (0..streams)
                .map(|_| StreamState {
                    listing: None,
                    known: HashMap::new(),
                    listed_once: false,
                })
                .collect(),
            ready: false,
        }
    }

    /// Stream `index` said `event`: what the single watch says.
    pub fn on(&mut self, index: usize, event: Event<K>) -> Vec<Event<K>> {
        let ready = self.ready;
        let stream = &mut self.streams[index];
        match event {
            Event::Init => {
                stream.listing = Some(HashMap::new());
                Vec::new()
            }
            Event::InitApply(object) => {
                stream
                    .listing
                    .get_or_insert_with(HashMap::new)
                    .insert(key_of(&object), object);
                Vec::new()
            }
            Event::InitDone => {
                let listed = stream.listing.take().unwrap_or_default();
                let before = std::mem::replace(&mut stream.known, listed);
                stream.listed_once = true;
                if ready {
                    let mut out: Vec<Event<K>> = before
                        .into_iter()
                        .filter(|(key, _)| !stream.known.contains_key(key))
                        .map(|(_, object)| Event::Delete(object))
                        .collect();
                    out.extend(stream.known.values().cloned().map(Event::Apply));
                    out
                } else if self.streams.iter().all(|s| s.listed_once) {
                    self.ready = true;
                    let mut out = vec![Event::Init];
                    for stream in &self.streams {
                        out.extend(stream.known.values().cloned().map(Event::InitApply));
                    }
                    out.push(Event::InitDone);
                    out
                } else {
                    Vec::new()
                }
            }
            Event::Apply(object) => {
                stream.known.insert(key_of(&object), object.clone());
                if ready {
                    vec![Event::Apply(object)]
                } else {
                    Vec::new()
                }
            }
            Event::Delete(object) => {
                stream.known.remove(&key_of(&object));
                if ready {
                    vec![Event::Delete(object)]
                } else {
                    Vec::new()
                }
            }
        }
    }
}

/// Says when a watch that failed delivers again, i.e. the API server is back (its re-list
/// succeeded): the first item after one or more errors.
#[derive(Debug, Default)]
pub struct Reconnection {
    cut_off: bool,
}

impl Reconnection {
    /// Whether `item` is the first success after an error.
    pub fn back<T, E>(&mut self, item: &Result<T, E>) -> bool {
        match item {
            Err(_) => {
                self.cut_off = true;
                false
            }
            Ok(_) => std::mem::take(&mut self.cut_off),
        }
    }
}

/// The watch streams of several namespaces as one (see the module's documentation). Errors
/// pass through (each stream retries on its own).
pub fn merged<K, S>(streams: Vec<S>) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + Send + 'static,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
{
    let mut merge = Merge::new(streams.len());
    futures::stream::select_all(
        streams
            .into_iter()
            .enumerate()
            .map(|(index, stream)| stream.map(move |item| (index, item)).boxed()),
    )
    .flat_map(move |(index, item)| {
        let out: Vec<Result<Event<K>, watcher::Error>> = match item {
            Ok(event) => merge.on(index, event).into_iter().map(Ok).collect(),
            Err(error) => vec![Err(error)],
        };
        futures::stream::iter(out)
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    #[test]
    fn a_reconnection_is_the_first_success_after_errors() {
        let mut reconnection = Reconnection::default();
        let ok: Result<(), ()> = Ok(());
        let err: Result<(), ()> = Err(());
        assert!(!reconnection.back(&ok), "no error yet");
        assert!(!reconnection.back(&err));
        assert!(!reconnection.back(&err), "still cut off");
        assert!(reconnection.back(&ok), "back");
        assert!(!reconnection.back(&ok), "once");
    }

    fn object(namespace: &str, name: &str, version: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": namespace, "name": name, "resourceVersion": version}
        }))
        .expect("a ConfigMap")
    }

    /// What the events leave in a kube-runtime store, as `namespace/name@version`.
    fn stored(events: &[Event<ConfigMap>]) -> Vec<String> {
        let (reader, mut writer) = kube::runtime::reflector::store::<ConfigMap>();
        for event in events {
            writer.apply_watcher_event(event);
        }
        let mut held: Vec<String> = reader
            .state()
            .iter()
            .map(|o| {
                format!(
                    "{}/{}@{}",
                    o.metadata.namespace.as_deref().unwrap_or_default(),
                    o.metadata.name.as_deref().unwrap_or_default(),
                    o.metadata.resource_version.as_deref().unwrap_or_default()
                )
            })
            .collect();
        held.sort();
        held
    }

    #[test]
    fn namespaces_from_the_command_line() {
        assert_eq!(Namespaces::from_args(Vec::<String>::new()), Namespaces::All);
        assert_eq!(Namespaces::from_args(["a", "*"]), Namespaces::All);
        assert_eq!(
            Namespaces::from_args(["b,a", " a ", ""]),
            Namespaces::Only(vec!["a".into(), "b".into()])
        );
        assert!(Namespaces::one("a").serves("a"));
        assert!(!Namespaces::one("a").serves("b"));
    }

    #[test]
    fn nothing_is_said_until_every_namespace_is_listed_and_then_it_is_one_listing() {
        let mut merge = Merge::new(2);
        let mut out = Vec::new();
        out.extend(merge.on(0, Event::Init));
        out.extend(merge.on(0, Event::InitApply(object("a", "x", "1"))));
        out.extend(merge.on(0, Event::InitDone));
        // Namespace a changes while b is still listing: held, not lost.
        out.extend(merge.on(0, Event::Apply(object("a", "y", "2"))));
        out.extend(merge.on(0, Event::Apply(object("a", "x", "3"))));
        out.extend(merge.on(1, Event::Init));
        out.extend(merge.on(1, Event::InitApply(object("b", "z", "1"))));
        assert!(out.is_empty(), "nothing before every namespace is listed");
        out.extend(merge.on(1, Event::InitDone));
        let inits = out.iter().filter(|e| matches!(e, Event::Init)).count();
        let dones = out.iter().filter(|e| matches!(e, Event::InitDone)).count();
        assert_eq!((inits, dones), (1, 1));
        assert_eq!(stored(&out), ["a/x@3", "a/y@2", "b/z@1"]);
    }

    #[test]
    fn a_relist_of_one_namespace_keeps_the_others_and_drops_what_it_lost() {
        let mut merge = Merge::new(2);
        let mut out = Vec::new();
        for (index, ns) in [(0, "a"), (1, "b")] {
            out.extend(merge.on(index, Event::Init));
            out.extend(merge.on(index, Event::InitApply(object(ns, "x", "1"))));
            out.extend(merge.on(index, Event::InitApply(object(ns, "gone", "1"))));
            out.extend(merge.on(index, Event::InitDone));
        }
        // Namespace a's watch expired; while it was away "gone" was deleted and "new" created.
        out.extend(merge.on(0, Event::Init));
        out.extend(merge.on(0, Event::InitApply(object("a", "x", "5"))));
        out.extend(merge.on(0, Event::InitApply(object("a", "new", "6"))));
        out.extend(merge.on(0, Event::InitDone));
        assert_eq!(
            stored(&out),
            ["a/new@6", "a/x@5", "b/gone@1", "b/x@1"],
            "the raw events would have left only namespace a"
        );
        // A listing cut short and restarted forgets what the first attempt brought.
        out.extend(merge.on(1, Event::Init));
        out.extend(merge.on(1, Event::InitApply(object("b", "gone", "1"))));
        out.extend(merge.on(1, Event::Init));
        out.extend(merge.on(1, Event::InitApply(object("b", "x", "7"))));
        out.extend(merge.on(1, Event::InitDone));
        out.extend(merge.on(1, Event::Delete(object("b", "x", "8"))));
        assert_eq!(stored(&out), ["a/new@6", "a/x@5"]);
    }
}
