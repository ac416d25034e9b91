//! SCIM User JSON ↔ the neutral flat attributes the mapping produces. Pure.
//!
//! Keys: `userName`, `displayName`, `title`, … are core attributes; `name.givenName` is a
//! sub-attribute of a complex one; `emails.work` is the value of the `emails` item of type work
//! (likewise `phoneNumbers.<type>`); `enterprise.X` is attribute X of the enterprise extension,
//! where `enterprise.manager` holds the manager's resource id (`manager.value`).

use serde_json::{Map, Value, json};

use super::super::{Attributes, Entry};

pub const CORE_USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// Multi-valued attributes whose items are told apart by `type`.
const TYPED: [&str; 2] = ["emails", "phoneNumbers"];
/// Keys that are not user data.
const SKIPPED: [&str; 5] = ["schemas", "id", "meta", "active", "groups"];

/// Where a flat key lives in a User resource.
enum Path<'a> {
    Core(&'a str),
    Complex(&'a str, &'a str),
    Typed(&'a str, &'a str),
    Enterprise(&'a str),
}

fn path(key: &str) -> Path<'_> {
    if let Some(name) = key.strip_prefix("enterprise.") {
        return Path::Enterprise(name);
    }
    match key.split_once('.') {
        Some((parent, child)) if TYPED.contains(&parent) => Path::Typed(parent, child),
        Some((parent, child)) => Path::Complex(parent, child),
        None => Path::Core(key),
    }
}

fn first(values: &[String]) -> Option<&str> {
    values.first().map(String::as_str).filter(|v| !v.is_empty())
}

/// Sets (or, for an empty list, removes) one flat attribute in a User resource.
fn set(user: &mut Map<String, Value>, key: &str, values: &[String]) {
    let value = first(values);
    match path(key) {
        Path::Core(name) => match value {
            Some(v) => {
                user.insert(name.to_owned(), Value::String(v.to_owned()));
            }
            None => {
                user.remove(name);
            }
        },
        Path::Complex(parent, child) => {
            let object = user.entry(parent.to_owned()).or_insert_with(|| json!({}));
            if let Some(object) = object.as_object_mut() {
                match value {
                    Some(v) => {
                        object.insert(child.to_owned(), Value::String(v.to_owned()));
                    }
                    None => {
                        object.remove(child);
                    }
                }
                if object.is_empty() {
                    user.remove(parent);
                }
            }
        }
        Path::Typed(parent, kind) => {
            let mut items: Vec<Value> = user
                .get(parent)
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter(|item| item["type"].as_str() != Some(kind))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if let Some(v) = value {
                items.insert(0, json!({"value": v, "type": kind, "primary": true}));
            }
            if items.is_empty() {
                user.remove(parent);
            } else {
                user.insert(parent.to_owned(), Value::Array(items));
            }
        }
        Path::Enterprise(name) => {
            let extension = user
                .entry(ENTERPRISE_USER.to_owned())
                .or_insert_with(|| json!({}));
            if let Some(extension) = extension.as_object_mut() {
                match (name, value) {
                    ("manager", Some(id)) => {
                        extension.insert("manager".into(), json!({"value": id}));
                    }
                    (_, Some(v)) => {
                        extension.insert(name.to_owned(), Value::String(v.to_owned()));
                    }
                    (_, None) => {
                        extension.remove(name);
                    }
                }
                if extension.is_empty() {
                    user.remove(ENTERPRISE_USER);
                }
            }
        }
    }
}

fn schemas(user: &Map<String, Value>) -> Value {
    let mut schemas = vec![CORE_USER];
    if user.contains_key(ENTERPRISE_USER) {
        schemas.push(ENTERPRISE_USER);
    }
    json!(schemas)
}

/// A new User resource.
pub fn to_user(attributes: &Attributes, anchor: &str, enabled: bool) -> Value {
    let mut user = Map::new();
    for (key, values) in attributes {
        set(&mut user, key, values);
    }
    user.insert("externalId".into(), Value::String(anchor.to_owned()));
    user.insert("active".into(), Value::Bool(enabled));
    user.insert("schemas".into(), schemas(&user));
    Value::Object(user)
}

/// Applies flat attributes to a read resource (for PUT when PATCH is not supported).
pub fn apply_attributes(user: &mut Value, attributes: &Attributes) {
    if let Some(object) = user.as_object_mut() {
        for (key, values) in attributes {
            set(object, key, values);
        }
        let schemas = schemas(object);
        object.insert("schemas".into(), schemas);
    }
}

/// PATCH operations that make the flat attributes so (RFC 7644 §3.5.2).
pub fn patch_operations(attributes: &Attributes) -> Vec<Value> {
    attributes
        .iter()
        .map(|(key, values)| {
            let value = first(values);
            let (target, replacement) = match path(key) {
                Path::Core(name) => (name.to_owned(), value.map(|v| json!(v))),
                Path::Complex(parent, child) => {
                    (format!("{parent}.{child}"), value.map(|v| json!(v)))
                }
                // PeopleSync owns these lists: the typed item is written as the whole list.
                Path::Typed(parent, kind) => (
                    parent.to_owned(),
                    value.map(|v| json!([{"value": v, "type": kind, "primary": true}])),
                ),
                Path::Enterprise("manager") => (
                    format!("{ENTERPRISE_USER}:manager"),
                    value.map(|id| json!({"value": id})),
                ),
                Path::Enterprise(name) => {
                    (format!("{ENTERPRISE_USER}:{name}"), value.map(|v| json!(v)))
                }
            };
            match replacement {
                Some(value) => json!({"op": "replace", "path": target, "value": value}),
                None => json!({"op": "remove", "path": target}),
            }
        })
        .collect()
}

/// A value as text; an empty string is no value (it is what PeopleSync writes as absent).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The flat attributes of a User resource.
pub fn to_attributes(user: &Value) -> Attributes {
    let mut attributes = Attributes::new();
    let Some(object) = user.as_object() else {
        return attributes;
    };
    for (key, value) in object {
        if SKIPPED.contains(&key.as_str()) {
            continue;
        }
        if key == ENTERPRISE_USER {
            for (name, value) in value.as_object().into_iter().flatten() {
                let flat = if name == "manager" {
                    value["value"].as_str().map(str::to_owned)
                } else {
                    text(value)
                };
                if let Some(flat) = flat {
                    attributes.insert(format!("enterprise.{name}"), vec![flat]);
                }
            }
        } else if TYPED.contains(&key.as_str()) {
            for item in value.as_array().into_iter().flatten() {
                if let (Some(kind), Some(v)) = (item["type"].as_str(), text(&item["value"])) {
                    attributes
                        .entry(format!("{key}.{kind}"))
                        .or_insert_with(|| vec![v]);
                }
            }
        } else if let Some(children) = value.as_object() {
            for (child, value) in children {
                if let Some(v) = text(value) {
                    attributes.insert(format!("{key}.{child}"), vec![v]);
                }
            }
        } else if let Some(v) = text(value) {
            attributes.insert(key.clone(), vec![v]);
        }
    }
    attributes
}

/// The user's `externalId`, PeopleSync's anchor; an empty one is none (an empty anchor means
/// "not PeopleSync's").
fn anchor(user: &Value) -> Option<&str> {
    user["externalId"].as_str().filter(|a| !a.is_empty())
}

/// A user without `externalId` (not PeopleSync's), as an entry with an empty anchor.
pub fn to_unowned(user: &Value) -> Option<Entry> {
    if anchor(user).is_some() {
        return None;
    }
    Some(Entry {
        id: user["id"].as_str()?.to_owned(),
        anchor: String::new(),
        attributes: to_attributes(user),
        enabled: user["active"].as_bool().unwrap_or(true),
    })
}

/// A managed entry, or `None` for a user without `externalId` (not PeopleSync's).
pub fn to_entry(user: &Value) -> Option<Entry> {
    let anchor = anchor(user)?.to_owned();
    Some(Entry {
        id: user["id"].as_str()?.to_owned(),
        anchor,
        attributes: to_attributes(user),
        enabled: user["active"].as_bool().unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes() -> Attributes {
        [
            ("userName", "ada@example.com"),
            ("externalId", "p1"),
            ("name.givenName", "Ada"),
            ("name.familyName", "Lovelace"),
            ("displayName", "Ada Lovelace"),
            ("emails.work", "ada@example.com"),
            ("title", "Engineer"),
            ("enterprise.employeeNumber", "E1"),
            ("enterprise.department", "R&D"),
            ("enterprise.manager", "2819c223"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), vec![v.to_owned()]))
        .collect()
    }

    #[test]
    fn a_user_round_trips_through_json_with_the_same_flat_attributes() {
        let user = to_user(&attributes(), "p1", false);
        assert_eq!(user["schemas"], json!([CORE_USER, ENTERPRISE_USER]));
        assert_eq!(
            user["name"],
            json!({"givenName": "Ada", "familyName": "Lovelace"})
        );
        assert_eq!(
            user["emails"],
            json!([{"value": "ada@example.com", "type": "work", "primary": true}])
        );
        assert_eq!(
            user[ENTERPRISE_USER]["manager"],
            json!({"value": "2819c223"})
        );
        assert_eq!(user["active"], json!(false));
        let mut read = user.clone();
        read["id"] = json!("u1");
        read["meta"] = json!({"version": "W/\"1\""});
        let entry = to_entry(&read).expect("owned");
        assert_eq!(entry.attributes, attributes());
        assert_eq!(
            (entry.id.as_str(), entry.anchor.as_str(), entry.enabled),
            ("u1", "p1", false)
        );
    }

    #[test]
    fn users_without_external_id_are_not_entries() {
        assert_eq!(to_entry(&json!({"id": "u2", "userName": "someone"})), None);
    }

    #[test]
    fn patch_operations_replace_set_values_and_remove_empty_ones() {
        let set: Attributes = [
            ("title", vec!["Boss".to_owned()]),
            ("displayName", vec![]),
            ("name.givenName", vec!["Adah".to_owned()]),
            ("emails.work", vec!["new@example.com".to_owned()]),
            ("enterprise.manager", vec!["m1".to_owned()]),
            ("enterprise.department", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let operations = patch_operations(&set);
        let expected = vec![
            json!({"op": "remove", "path": "displayName"}),
            json!({"op": "replace", "path": "emails", "value": [{"value": "new@example.com", "type": "work", "primary": true}]}),
            json!({"op": "remove", "path": format!("{ENTERPRISE_USER}:department")}),
            json!({"op": "replace", "path": format!("{ENTERPRISE_USER}:manager"), "value": {"value": "m1"}}),
            json!({"op": "replace", "path": "name.givenName", "value": "Adah"}),
            json!({"op": "replace", "path": "title", "value": "Boss"}),
        ];
        assert_eq!(operations, expected);
    }

    #[test]
    fn put_applies_the_same_changes_to_a_read_resource() {
        let mut user = to_user(&attributes(), "p1", true);
        let set: Attributes = [
            ("title", vec![]),
            ("emails.work", vec!["new@example.com".to_owned()]),
            ("enterprise.manager", vec![]),
            ("enterprise.department", vec![]),
            ("enterprise.employeeNumber", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        apply_attributes(&mut user, &set);
        assert!(user.get("title").is_none());
        assert!(
            user.get(ENTERPRISE_USER).is_none(),
            "an empty extension is dropped"
        );
        assert_eq!(user["schemas"], json!([CORE_USER]));
        assert_eq!(to_attributes(&user)["emails.work"], ["new@example.com"]);
    }

    /// Found by the fuzz target: an empty `externalId` read as an owned entry with an empty
    /// anchor, and an empty string as a value, both of which write back as absent.
    #[test]
    fn an_empty_external_id_is_no_anchor_and_an_empty_string_no_value() {
        let user = json!({"id": "u1", "externalId": ""});
        assert!(to_entry(&user).is_none());
        let unowned = to_unowned(&user).expect("an unowned entry");
        assert_eq!((unowned.id.as_str(), unowned.anchor.as_str()), ("u1", ""));
        let user = json!({"id": "u2", "externalId": "p2", "title": "", "name": {"givenName": ""}});
        let entry = to_entry(&user).expect("an owned entry");
        assert_eq!(
            entry.attributes.keys().collect::<Vec<_>>(),
            ["externalId"],
            "{:?}",
            entry.attributes
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Fuzz target: whatever a service provider lists as a user, it becomes an entry, an
        /// unowned entry or nothing; never a panic. An owned entry keeps its externalId as its
        /// anchor, and what it reads back writes back to the same attributes.
        #[test]
        fn user_decoding_never_panics(
            body in crate::fuzz::answers(
                to_user(&attributes(), "p1", true).to_string().into_bytes()
            ),
        ) {
            let Ok(user) = serde_json::from_slice::<Value>(&body) else {
                return Ok(());
            };
            let _ = to_unowned(&user);
            if let Some(entry) = to_entry(&user) {
                proptest::prop_assert_eq!(Some(entry.anchor.as_str()), user["externalId"].as_str());
                let mut written = user.clone();
                apply_attributes(&mut written, &entry.attributes);
                let _ = patch_operations(&entry.attributes);
                proptest::prop_assert_eq!(to_attributes(&written), to_attributes(&user));
            }
        }
    }
}
