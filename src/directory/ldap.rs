//! The LDAP backend (ldap3): simple bind, paged search (RFC 2696) of managed entries, and minimal
//! modifications. Every modification of an existing entry is guarded atomically by the anchor:
//! the same `modify` deletes and re-adds `anchorAttribute=<person id>`, so it fails with
//! `noSuchAttribute` — and changes nothing — on an entry PeopleSync does not own.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use std::future::Future;

use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Mod, Scope, SearchEntry,
};
use secrecy::{ExposeSecret, SecretString};

use super::{
    Attributes, Change, Directory, DirectoryError, DirectoryTraits, Entry, Group, GroupChange,
};

/// Entries per page of a paged search by default (slapd's default size limit is 500).
pub const DEFAULT_PAGE_SIZE: i32 = 500;
/// ppolicy's "locked until an administrator unlocks" value.
pub const PERMANENT_LOCK: &str = "000001010000Z";

/// How a leaver's entry is disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisableStrategy {
    /// Set `attribute: value` (e.g. ppolicy's `pwdAccountLockedTime`); enabling removes it.
    SetAttribute { attribute: String, value: String },
    /// Move the entry under `disabled_dn`; enabling moves it back.
    MoveToOu { disabled_dn: String },
    /// Active Directory: set the ACCOUNTDISABLE bit (2) of `userAccountControl`.
    AdAccountDisable,
}

/// Everything the backend needs; built from the CRD spec and the Secrets.
#[derive(Clone)]
pub struct LdapConfig {
    pub url: String,
    pub start_tls: bool,
    /// Allow a simple bind over plain `ldap://` (no StartTLS) to a host that is not loopback;
    /// refused otherwise, since the bind password would cross the network in clear.
    pub allow_plaintext: bool,
    /// PEM CA bundle to trust for `ldaps://` and StartTLS (instead of the system roots).
    pub ca_pem: Option<String>,
    pub bind_dn: String,
    pub bind_password: SecretString,
    /// The directory's base DN (`target.ldap.baseDn`); empty: the people DN's `dc=` suffix.
    pub base_dn: String,
    pub people_dn: String,
    pub rdn_attribute: String,
    pub anchor_attribute: String,
    /// The multi-valued attribute holding the ownership mark (`target.ldap.ownerAttribute`,
    /// default `businessCategory`, which `inetOrgPerson` and AD's `user` both allow).
    pub owner_attribute: String,
    /// This object's mark ([`crate::directory::mark_for`]): an entry is PeopleSync's when it
    /// holds the anchor and this value in `owner_attribute`.
    pub owner_mark: String,
    pub object_classes: Vec<String>,
    pub disable: DisableStrategy,
    pub timeout: Duration,
    /// Entries per page of the paged search (RFC 2696).
    pub page_size: i32,
    /// Where groups (`groupOfNames`, AD `group`) live; `None` leaves groups unmanaged.
    pub groups_dn: Option<String>,
    /// The attribute holding the org-unit id on a group (default `businessCategory`, which
    /// `groupOfNames` allows).
    pub group_anchor_attribute: String,
    /// The structural class of the groups it creates: `groupOfNames` (which needs a member: an
    /// empty group holds the empty DN), or AD's `group` (which may be empty).
    pub group_object_class: String,
    /// Attributes whose values are unique across the whole directory, not just the people OU
    /// (AD: `sAMAccountName`, `userPrincipalName`); values held anywhere under
    /// [`LdapConfig::naming_context`] are reserved. Empty for OpenLDAP and 389-ds.
    pub directory_unique: Vec<String>,
    /// Read `member` in ranges of this many values (`member;range=0-1499`), as Active Directory
    /// serves groups larger than its `MaxValRange`; `None` reads it whole.
    pub member_range: Option<u32>,
    /// Active Directory: the password new accounts get (see [`InitialPassword`]).
    pub initial_password: InitialPassword,
    /// List people in the whole subtree of the people DN, not just its children (AD, where
    /// administrators sort accounts into sub-OUs: a managed account moved into one stays
    /// linked by its anchor), keeping to person accounts (`people_filter`).
    pub people_subtree: bool,
    /// An LDAP filter every person entry matches, ANDed into the listings (AD:
    /// `(&(objectCategory=person)(objectClass=user))`, which leaves out OUs, groups and
    /// computers); empty: none.
    pub people_filter: String,
    /// The longest group name (`cn`) the directory takes, in characters (AD: 64); `None`: no
    /// limit.
    pub group_name_max: Option<usize>,
}

/// The password a new AD account gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitialPassword {
    /// None: the account is created disabled (with `PASSWD_NOTREQD`, as AD wants for an account
    /// without a password) and awaits an administrator, who sets a password and enables it.
    /// While it awaits, it counts as enabled: PeopleSync neither enables it nor reports drift.
    #[default]
    None,
    /// A random password (never logged, never stored) with `pwdLastSet: 0`: the user must change
    /// it at the first logon. The account is enabled while the person is active.
    Random,
}

impl std::fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapConfig")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"[REDACTED]")
            .field("people_dn", &self.people_dn)
            .finish_non_exhaustive()
    }
}

impl LdapConfig {
    /// The backend's configuration from the CRD's LDAP target, with the profile's defaults for
    /// what the spec leaves out.
    pub fn from_spec(
        target: &crate::crd::LdapTarget,
        bind_password: SecretString,
        ca_pem: Option<String>,
        owner_mark: String,
    ) -> Self {
        use crate::crd::{LdapDisableStrategy, LdapProfile};
        let ad = target.profile == LdapProfile::ActiveDirectory;
        let object_classes = if target.object_classes.is_empty() {
            let defaults: &[&str] = if ad {
                &["top", "person", "organizationalPerson", "user"]
            } else {
                &["top", "person", "organizationalPerson", "inetOrgPerson"]
            };
            defaults.iter().map(|c| (*c).to_owned()).collect()
        } else {
            target.object_classes.clone()
        };
        let disable = match &target.disable {
            Some(d) => match d.strategy {
                LdapDisableStrategy::MoveToOu => DisableStrategy::MoveToOu {
                    disabled_dn: d.disabled_dn.clone().unwrap_or_default(),
                },
                LdapDisableStrategy::SetAttribute => DisableStrategy::SetAttribute {
                    attribute: d
                        .attribute
                        .clone()
                        .unwrap_or_else(|| "pwdAccountLockedTime".into()),
                    value: d.value.clone().unwrap_or_else(|| PERMANENT_LOCK.into()),
                },
                LdapDisableStrategy::AdAccountDisable => DisableStrategy::AdAccountDisable,
            },
            None if ad => DisableStrategy::AdAccountDisable,
            None if target.profile == LdapProfile::Ds389 => DisableStrategy::SetAttribute {
                attribute: "nsAccountLock".into(),
                value: "TRUE".into(),
            },
            None => DisableStrategy::SetAttribute {
                attribute: "pwdAccountLockedTime".into(),
                value: PERMANENT_LOCK.into(),
            },
        };
        Self {
            url: target.url.clone(),
            start_tls: target.start_tls,
            allow_plaintext: target.allow_plaintext,
            ca_pem,
            bind_dn: target.bind_dn.clone(),
            bind_password,
            base_dn: target.base_dn.clone(),
            people_dn: target.people_dn.clone(),
            rdn_attribute: target
                .rdn_attribute
                .clone()
                .unwrap_or_else(|| if ad { "cn" } else { "uid" }.to_owned()),
            anchor_attribute: target
                .anchor_attribute
                .clone()
                .unwrap_or_else(|| if ad { "employeeID" } else { "employeeNumber" }.to_owned()),
            owner_attribute: target
                .owner_attribute
                .clone()
                .unwrap_or_else(|| DEFAULT_OWNER_ATTRIBUTE.to_owned()),
            owner_mark,
            object_classes,
            disable,
            timeout: Duration::from_secs(10),
            page_size: DEFAULT_PAGE_SIZE,
            groups_dn: target.groups_dn.clone(),
            group_anchor_attribute: if ad { "info" } else { "businessCategory" }.to_owned(),
            group_object_class: if ad { "group" } else { "groupOfNames" }.to_owned(),
            member_range: ad.then_some(AD_MAX_VAL_RANGE),
            people_subtree: ad,
            people_filter: if ad { AD_PERSON_FILTER } else { "" }.to_owned(),
            group_name_max: ad.then_some(AD_CN_MAX),
            initial_password: match target.initial_password {
                Some(crate::crd::LdapInitialPassword::Random) => InitialPassword::Random,
                _ => InitialPassword::None,
            },
            directory_unique: if ad {
                vec!["sAMAccountName".to_owned(), "userPrincipalName".to_owned()]
            } else {
                Vec::new()
            },
        }
    }
}

/// Where the ownership mark goes unless the spec says otherwise: multi-valued, allowed on
/// `inetOrgPerson` and on AD's `user` (up to 128 characters there), and rarely used by people.
pub const DEFAULT_OWNER_ATTRIBUTE: &str = "businessCategory";

/// Person accounts in AD (computers are `user` objects too, of another category).
pub const AD_PERSON_FILTER: &str = "(&(objectCategory=person)(objectClass=user))";

/// AD's `cn` (`rangeUpper` 64): people's RDN and groups' names.
pub const AD_CN_MAX: usize = 64;

/// AD's default `MaxValRange`: values of one attribute per search answer.
pub const AD_MAX_VAL_RANGE: u32 = 1500;

/// AD's account flags attribute and its bits (MS-ADTS 2.2.16).
pub const USER_ACCOUNT_CONTROL: &str = "userAccountControl";
/// When the password was last set; 0: never (or must change at next logon).
pub const PWD_LAST_SET: &str = "pwdLastSet";
const ACCOUNTDISABLE: u32 = 0x2;
const PASSWD_NOTREQD: u32 = 0x20;
const NORMAL_ACCOUNT: u32 = 0x200;

/// An AD account created without a password that no administrator has taken over yet: disabled,
/// `PASSWD_NOTREQD` (as PeopleSync created it) and no password set.
pub fn awaits_admin(uac: u32, pwd_last_set: Option<&str>) -> bool {
    uac & ACCOUNTDISABLE != 0 && uac & PASSWD_NOTREQD != 0 && pwd_last_set.is_none_or(|v| v == "0")
}

/// The `userAccountControl` of an account being enabled or disabled under `policy`: only
/// ACCOUNTDISABLE changes, except for an account that awaits an administrator (no password):
/// enabling leaves it awaiting (it cannot be enabled without a password), disabling a leaver's
/// awaiting account clears the `PASSWD_NOTREQD` PeopleSync set, so it reads as disabled.
pub fn account_control_for(
    current: Option<u32>,
    pwd_last_set: Option<&str>,
    disable: bool,
    policy: InitialPassword,
) -> u32 {
    let uac = current.unwrap_or(NORMAL_ACCOUNT);
    let no_password = pwd_last_set.is_none_or(|v| v == "0");
    match (policy, disable) {
        (InitialPassword::None, true) if awaits_admin(uac, pwd_last_set) => {
            (uac | ACCOUNTDISABLE) & !PASSWD_NOTREQD
        }
        (InitialPassword::None, false) if no_password && uac & ACCOUNTDISABLE != 0 => {
            uac | PASSWD_NOTREQD
        }
        _ => account_control(Some(uac), disable),
    }
}

/// The `userAccountControl` value that disables (or enables) an account, keeping its other flags.
pub fn account_control(current: Option<u32>, disable: bool) -> u32 {
    let current = current.unwrap_or(NORMAL_ACCOUNT);
    if disable {
        current | ACCOUNTDISABLE
    } else {
        current & !ACCOUNTDISABLE
    }
}

impl LdapConfig {
    /// The naming context holding the people DN: the base DN, else the people DN's trailing
    /// `DC=` components (AD: the domain), else the people DN itself.
    pub fn naming_context(&self) -> String {
        if !self.base_dn.is_empty() {
            return self.base_dn.clone();
        }
        let mut rest = self.people_dn.as_str();
        loop {
            if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("dc=") {
                return rest.to_owned();
            }
            let parent = LdapDirectory::parent_of(rest);
            if parent.is_empty() || parent.len() == rest.len() {
                return self.people_dn.clone();
            }
            rest = parent;
        }
    }

    /// `rdn=value,parent` with the value escaped (RFC 4514).
    pub fn person_dn(&self, rdn_value: &str, parent: &str) -> String {
        format!(
            "{}={},{}",
            self.rdn_attribute,
            escape_rdn_value(rdn_value),
            parent
        )
    }

    /// The filter that finds the entry holding `anchor` in `attribute`: the one filter
    /// PeopleSync sends with a value from the source in it, escaped (RFC 4515).
    pub fn anchor_filter(attribute: &str, anchor: &str) -> String {
        format!("({attribute}={})", ldap3::ldap_escape(anchor))
    }

    /// Whether an entry is enabled, as the disable strategy records it.
    pub fn enabled_of(&self, dn: &str, attributes: &Attributes) -> bool {
        match &self.disable {
            DisableStrategy::SetAttribute { attribute, .. } => !attributes.contains_key(attribute),
            DisableStrategy::MoveToOu { disabled_dn } => {
                !LdapDirectory::parent_of(dn).eq_ignore_ascii_case(disabled_dn)
            }
            DisableStrategy::AdAccountDisable => {
                let first = |name: &str| {
                    attributes
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .and_then(|(_, v)| v.first())
                };
                match first(USER_ACCOUNT_CONTROL).and_then(|v| v.parse::<u32>().ok()) {
                    None => true,
                    Some(uac) => {
                        uac & ACCOUNTDISABLE == 0
                            || awaits_admin(uac, first(PWD_LAST_SET).map(String::as_str))
                    }
                }
            }
        }
    }

    /// The same, owning the entries of the PeopleSync object `namespace/name` (tests reading
    /// what a controller wrote).
    pub fn owned_by_object(self, namespace: &str, name: &str) -> Self {
        Self {
            owner_mark: crate::directory::mark_for(namespace, name),
            ..self
        }
    }

    /// The anchor and the mark attribute: written only as ownership, never as mapped values.
    pub fn is_reserved_attribute(&self, name: &str) -> bool {
        name.eq_ignore_ascii_case(&self.anchor_attribute)
            || name.eq_ignore_ascii_case(&self.owner_attribute)
    }

    /// The filter matching the entries this object owns: the anchor and the mark.
    pub fn owned_filter(&self) -> String {
        format!(
            "(&({}=*)({}={}))",
            self.anchor_attribute,
            self.owner_attribute,
            ldap3::ldap_escape(&self.owner_mark)
        )
    }

    /// How the planner tells this object's entries from the rest.
    pub fn marking(&self) -> crate::directory::Marking {
        crate::directory::Marking {
            anchor_attribute: self.anchor_attribute.clone(),
            attribute: self.owner_attribute.clone(),
            mark: self.owner_mark.clone(),
        }
    }

    /// The DN and attributes of a new entry: the object classes, the mapped attributes, the
    /// anchor and the mark, and the disabled state as the strategy expresses it.
    pub fn add_request(
        &self,
        anchor: &str,
        attributes: &Attributes,
        enabled: bool,
    ) -> (String, Vec<(String, HashSet<String>)>) {
        let rdn_value = attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&self.rdn_attribute))
            .and_then(|(_, v)| v.first())
            .map_or(anchor, String::as_str);
        let parent = match (&self.disable, enabled) {
            (DisableStrategy::MoveToOu { disabled_dn }, false) => disabled_dn.as_str(),
            _ => self.people_dn.as_str(),
        };
        let dn = self.person_dn(rdn_value, parent);
        let mut attrs: Vec<(String, HashSet<String>)> = vec![(
            "objectClass".to_owned(),
            self.object_classes.iter().cloned().collect(),
        )];
        for (name, values) in attributes {
            if !values.is_empty() && !self.is_reserved_attribute(name) {
                attrs.push((name.clone(), set(values)));
            }
        }
        attrs.push((
            self.anchor_attribute.clone(),
            HashSet::from([anchor.to_owned()]),
        ));
        attrs.push((
            self.owner_attribute.clone(),
            HashSet::from([self.owner_mark.clone()]),
        ));
        match (&self.disable, enabled) {
            (DisableStrategy::SetAttribute { attribute, value }, false) => {
                attrs.push((attribute.clone(), HashSet::from([value.clone()])));
            }
            (DisableStrategy::AdAccountDisable, _) => {
                let uac = match self.initial_password {
                    // No password: disabled; an active person's account awaits an administrator.
                    InitialPassword::None if enabled => {
                        NORMAL_ACCOUNT | ACCOUNTDISABLE | PASSWD_NOTREQD
                    }
                    InitialPassword::None => NORMAL_ACCOUNT | ACCOUNTDISABLE,
                    InitialPassword::Random => account_control(None, !enabled),
                };
                attrs.push((
                    USER_ACCOUNT_CONTROL.into(),
                    HashSet::from([uac.to_string()]),
                ));
            }
            _ => {}
        }
        (dn, attrs)
    }
}

/// The host a simple bind would send its password to in clear: plain `ldap://` without StartTLS
/// to a host that is not loopback, unless `allow_plaintext`; `None` when the bind is safe.
pub fn plaintext_to_another_host(config: &LdapConfig) -> Option<String> {
    if config.allow_plaintext || config.start_tls {
        return None;
    }
    let url = config.url.trim();
    let rest = url
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("ldap://"))
        .map(|_| &url[7..])?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| host.to_owned())
}

#[derive(Debug, thiserror::Error)]
pub enum LdapBackendError {
    #[error(
        "refusing a simple bind over plain {url}: the bind password would cross the network to {host} unencrypted; use ldaps://, startTls: true, or set target.ldap.allowPlaintext: true"
    )]
    Plaintext { url: String, host: String },
    #[error("the CA bundle is not usable: {0}")]
    InvalidCa(String),
    #[error("groups are not managed: set target.ldap.groupsDn")]
    GroupsNotManaged,
    #[error("failed to connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: Box<LdapError>,
    },
    #[error("the directory refused the bind as {bind_dn} (result code {rc})")]
    Bind { bind_dn: String, rc: u32 },
    #[error("failed to {operation} {dn}: {message} (result code {rc})")]
    Operation {
        operation: &'static str,
        dn: String,
        rc: u32,
        message: String,
    },
    #[error(
        "the directory refused the initial password of {dn} (result code {rc}: {message}); the account was not created and is retried next cycle (check the domain's password policy, or use initialPassword None)"
    )]
    PasswordRefused {
        dn: String,
        rc: u32,
        message: String,
    },
    #[error(
        "entry {dn} does not carry anchor {anchor}: PeopleSync does not own it and left it untouched"
    )]
    NotOwned { dn: String, anchor: String },
    #[error(
        "the directory sent more than {limit} entries for one {operation} answer: it does not \
         honour the requested size (RFC 2696 page size, or one entry for a read); PeopleSync \
         stopped reading to keep its memory bounded"
    )]
    TooManyEntries {
        operation: &'static str,
        limit: usize,
    },
    #[error("the LDAP connection failed during {operation}")]
    Connection {
        operation: &'static str,
        #[source]
        source: Box<LdapError>,
    },
}

// LDAP result codes that concern one entry only (RFC 4511 §4.1.9).
const NO_SUCH_ATTRIBUTE: u32 = 16;
const CONSTRAINT_VIOLATION: u32 = 19;
const INVALID_SYNTAX: u32 = 21;
const NO_SUCH_OBJECT: u32 = 32;
const NAMING_VIOLATION: u32 = 64;
const OBJECT_CLASS_VIOLATION: u32 = 65;
const ALREADY_EXISTS: u32 = 68;
const UNDEFINED_ATTRIBUTE_TYPE: u32 = 17;
const TYPE_OR_VALUE_EXISTS: u32 = 20;
const UNWILLING_TO_PERFORM: u32 = 53;

impl DirectoryError for LdapBackendError {
    fn reason(&self) -> &'static str {
        match self {
            LdapBackendError::InvalidCa(_) => "InvalidCa",
            LdapBackendError::Plaintext { .. } => "PlaintextRefused",
            LdapBackendError::GroupsNotManaged => "GroupsNotManaged",
            LdapBackendError::Connect { .. } | LdapBackendError::Connection { .. } => {
                "DirectoryUnreachable"
            }
            LdapBackendError::Bind { .. } => "BindFailed",
            LdapBackendError::NotOwned { .. } => "EntryNotOwned",
            LdapBackendError::PasswordRefused { .. } => "PasswordRefused",
            LdapBackendError::TooManyEntries { .. } => "TooManyEntries",
            LdapBackendError::Operation { rc, .. } => match *rc {
                OBJECT_CLASS_VIOLATION
                | UNDEFINED_ATTRIBUTE_TYPE
                | INVALID_SYNTAX
                | CONSTRAINT_VIOLATION
                | NAMING_VIOLATION => "SchemaViolation",
                ALREADY_EXISTS => "EntryExists",
                NO_SUCH_OBJECT => "EntryMissing",
                _ => "DirectoryError",
            },
        }
    }

    fn is_per_entry(&self) -> bool {
        matches!(
            self,
            LdapBackendError::NotOwned { .. }
                | LdapBackendError::Operation { .. }
                | LdapBackendError::PasswordRefused { .. }
        )
    }
}

/// An LDAP directory reached over one multiplexed connection (ldap3 handles are cheap clones).
/// When the connection drops, the next operation reconnects, binds again and retries once.
pub struct LdapDirectory {
    config: LdapConfig,
    connection: std::sync::Mutex<Connection>,
    /// Serialises reconnects, so concurrent failures open one new connection, not many.
    reconnecting: tokio::sync::Mutex<()>,
}

struct Connection {
    ldap: Ldap,
    /// Bumped on every reconnect: a failure on an older generation is already repaired.
    generation: u64,
}

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("config", &self.config)
            .finish()
    }
}

/// Whether an error means the connection is gone (as opposed to a protocol-level answer).
fn is_transport(error: &LdapError) -> bool {
    matches!(
        error,
        LdapError::Io { .. }
            | LdapError::EndOfStream
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::Timeout { .. }
    )
}

/// Maps a transport error of `operation` (boxed: `LdapError` is large and this is the rare path).
fn transport(operation: &'static str) -> impl FnOnce(LdapError) -> LdapBackendError {
    move |source| match too_many(&source) {
        Some(limit) => LdapBackendError::TooManyEntries { operation, limit },
        None => LdapBackendError::Connection {
            operation,
            source: Box::new(source),
        },
    }
}

/// How a search stopped by its entry bound travels through ldap3 (whose adapters can only fail
/// with an `LdapError`): `AdapterInit` with this prefix and the limit.
const TOO_MANY: &str = "peoplesync: too many entries, limit ";

fn too_many_error(limit: usize) -> LdapError {
    LdapError::AdapterInit(format!("{TOO_MANY}{limit}"))
}

fn too_many(error: &LdapError) -> Option<usize> {
    match error {
        LdapError::AdapterInit(message) => message.strip_prefix(TOO_MANY)?.parse().ok(),
        _ => None,
    }
}

/// Entries one unpaged search may return (the groups under `groupsDn`; a read returns one).
/// ldap3 queues a search's entries without bound, so a server that ignores the size asked for
/// is cut off here.
pub const UNPAGED_ENTRY_LIMIT: usize = 100_000;

/// Below `PagedResults` in a search's adapter chain: it sees each page's raw entries and fails
/// the search when a page holds more than the page size asked for (a server that ignores the
/// control and sends everything at once).
#[derive(Debug, Clone)]
struct PageBound {
    size: usize,
    seen: usize,
}

#[async_trait::async_trait]
impl<'a, S, A> Adapter<'a, S, A> for PageBound
where
    S: AsRef<str> + Send + Sync + 'a,
    A: AsRef<[S]> + Send + Sync + 'a,
{
    async fn start(
        &mut self,
        stream: &mut ldap3::SearchStream<'a, S, A>,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: A,
    ) -> ldap3::result::Result<()> {
        self.seen = 0;
        stream.start(base, scope, filter, attrs).await
    }

    async fn next(
        &mut self,
        stream: &mut ldap3::SearchStream<'a, S, A>,
    ) -> ldap3::result::Result<Option<ldap3::ResultEntry>> {
        match stream.next().await {
            Ok(Some(entry)) => {
                if !entry.is_intermediate() && !entry.is_ref() {
                    self.seen += 1;
                    if self.seen > self.size {
                        return Err(too_many_error(self.size));
                    }
                }
                Ok(Some(entry))
            }
            // The end of a page: `PagedResults` asks for the next one, counted afresh.
            Ok(None) => {
                self.seen = 0;
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    async fn finish(&mut self, stream: &mut ldap3::SearchStream<'a, S, A>) -> LdapResult {
        stream.finish().await
    }
}

/// A rustls client configuration that trusts exactly the CAs in `pem`.
pub fn tls_config(pem: &str) -> Result<rustls::ClientConfig, LdapBackendError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let certificate = certificate.map_err(|e| LdapBackendError::InvalidCa(e.to_string()))?;
        roots
            .add(certificate)
            .map_err(|e| LdapBackendError::InvalidCa(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(LdapBackendError::InvalidCa(
            "no PEM certificate found".into(),
        ));
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| LdapBackendError::InvalidCa(e.to_string()))
    .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
}

/// A 24-character password with upper and lower case letters, digits and a symbol (AD's
/// complexity rules want three of the four).
fn random_password() -> String {
    use rand::Rng as _;
    use rand::seq::IndexedRandom as _;
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const DIGITS: &[u8] = b"23456789";
    const SYMBOLS: &[u8] = b"!#%+-=?@_";
    let mut rng = rand::rng();
    let all: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS].concat();
    let mut chars: Vec<u8> = [UPPER, LOWER, DIGITS, SYMBOLS]
        .iter()
        .map(|set| *set.choose(&mut rng).expect("non-empty"))
        .collect();
    while chars.len() < 24 {
        chars.push(*all.choose(&mut rng).expect("non-empty"));
    }
    // Shuffle, so the classes are not in a fixed order.
    for i in (1..chars.len()).rev() {
        chars.swap(i, rng.random_range(0..=i));
    }
    String::from_utf8(chars).expect("ASCII")
}

/// Whether `dn` lies below `base` (compared without case, as LDAP compares DNs here).
fn is_below(dn: &str, base: &str) -> bool {
    dn.len() > base.len() + 1
        && dn.is_char_boundary(dn.len() - base.len() - 1)
        && dn[dn.len() - base.len()..].eq_ignore_ascii_case(base)
        && dn.as_bytes()[dn.len() - base.len() - 1] == b','
}

fn escape_rdn_value(value: &str) -> String {
    ldap3::dn_escape(value).into_owned()
}

fn set(values: &[String]) -> HashSet<String> {
    values.iter().cloned().collect()
}

impl LdapDirectory {
    /// Connects (StartTLS when configured) and binds.
    pub async fn connect(config: LdapConfig) -> Result<Self, LdapBackendError> {
        if let Some(host) = plaintext_to_another_host(&config) {
            return Err(LdapBackendError::Plaintext {
                url: config.url.clone(),
                host,
            });
        }
        let ldap = Self::open(&config).await?;
        Ok(Self {
            config,
            connection: std::sync::Mutex::new(Connection {
                ldap,
                generation: 0,
            }),
            reconnecting: tokio::sync::Mutex::new(()),
        })
    }

    async fn open(config: &LdapConfig) -> Result<Ldap, LdapBackendError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(config.timeout)
            .set_starttls(config.start_tls);
        if let Some(ca) = &config.ca_pem {
            settings = settings.set_config(std::sync::Arc::new(tls_config(ca)?));
        }
        let (connection, mut ldap) = LdapConnAsync::with_settings(settings, &config.url)
            .await
            .map_err(|source| LdapBackendError::Connect {
                url: config.url.clone(),
                source: Box::new(source),
            })?;
        ldap3::drive!(connection);
        ldap.with_timeout(config.timeout);
        let result = ldap
            .simple_bind(&config.bind_dn, config.bind_password.expose_secret())
            .await
            .map_err(transport("bind"))?;
        if result.rc != 0 {
            return Err(LdapBackendError::Bind {
                bind_dn: config.bind_dn.clone(),
                rc: result.rc,
            });
        }
        Ok(ldap)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // The guarded data is a handle and a counter: a panic elsewhere cannot leave it torn.
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current connection's handle (for streams; they fail as a whole and are re-read).
    fn current(&self) -> Ldap {
        self.lock().ldap.clone()
    }

    /// Replaces the connection of `generation` with a new one (once, however many callers saw it
    /// fail).
    async fn reconnect(&self, generation: u64) -> Result<(), LdapBackendError> {
        let _one_at_a_time = self.reconnecting.lock().await;
        if self.lock().generation != generation {
            return Ok(());
        }
        tracing::info!(url = %self.config.url, "reconnecting to the directory");
        let ldap = Self::open(&self.config).await?;
        let mut connection = self.lock();
        connection.ldap = ldap;
        connection.generation += 1;
        Ok(())
    }

    /// Runs one operation; a transport failure (the connection dropped) reconnects and retries
    /// once. LDAP result codes are not transport failures: they come back in the result.
    async fn retrying<T, F, Fut>(
        &self,
        operation: &'static str,
        run: F,
    ) -> Result<T, LdapBackendError>
    where
        F: Fn(Ldap) -> Fut,
        Fut: Future<Output = Result<T, LdapError>>,
    {
        let (ldap, generation) = {
            let connection = self.lock();
            (connection.ldap.clone(), connection.generation)
        };
        match run(ldap).await {
            Ok(value) => Ok(value),
            Err(error) if is_transport(&error) => {
                tracing::debug!(operation, "the LDAP connection failed; reconnecting");
                self.reconnect(generation).await?;
                run(self.current()).await.map_err(transport(operation))
            }
            Err(error) => Err(transport(operation)(error)),
        }
    }

    async fn add(
        &self,
        operation: &'static str,
        dn: &str,
        attrs: Vec<(String, HashSet<String>)>,
    ) -> Result<LdapResult, LdapBackendError> {
        self.retrying(operation, |mut ldap| {
            let attrs = attrs.clone();
            async move { ldap.add(dn, attrs).await }
        })
        .await
    }

    /// Adds an AD account with a fresh random password (`unicodePwd`: the UTF-16LE of the quoted
    /// password) that must be changed at the first logon (`pwdLastSet: 0`). The password lives in
    /// this call only: it is never logged, stored or returned.
    async fn add_with_password(
        &self,
        dn: &str,
        attrs: Vec<(String, HashSet<String>)>,
    ) -> Result<LdapResult, LdapBackendError> {
        let password = SecretString::from(random_password());
        let mut binary: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = attrs
            .into_iter()
            .map(|(name, values)| {
                (
                    name.into_bytes(),
                    values.into_iter().map(String::into_bytes).collect(),
                )
            })
            .collect();
        let quoted = format!("\"{}\"", password.expose_secret());
        let encoded: Vec<u8> = quoted.encode_utf16().flat_map(u16::to_le_bytes).collect();
        binary.push((b"unicodePwd".to_vec(), HashSet::from([encoded])));
        binary.push((
            PWD_LAST_SET.as_bytes().to_vec(),
            HashSet::from([b"0".to_vec()]),
        ));
        self.retrying("add", |mut ldap| {
            let attrs = binary.clone();
            async move { ldap.add(dn, attrs).await }
        })
        .await
    }

    async fn modify(
        &self,
        operation: &'static str,
        dn: &str,
        mods: Vec<Mod<String>>,
    ) -> Result<LdapResult, LdapBackendError> {
        self.retrying(operation, |mut ldap| {
            let mods = mods.clone();
            async move { ldap.modify(dn, mods).await }
        })
        .await
    }

    async fn modifydn(
        &self,
        operation: &'static str,
        dn: &str,
        rdn: &str,
        delete_old: bool,
        new_superior: Option<&str>,
    ) -> Result<LdapResult, LdapBackendError> {
        self.retrying(operation, |mut ldap| async move {
            ldap.modifydn(dn, rdn, delete_old, new_superior).await
        })
        .await
    }

    async fn delete(
        &self,
        operation: &'static str,
        dn: &str,
    ) -> Result<LdapResult, LdapBackendError> {
        self.retrying(operation, |mut ldap| async move { ldap.delete(dn).await })
            .await
    }

    /// A search whose result code is the caller's to judge (no such object is an answer here).
    async fn search(
        &self,
        operation: &'static str,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: Vec<&str>,
    ) -> Result<(Vec<ldap3::ResultEntry>, LdapResult), LdapBackendError> {
        self.retrying(operation, |mut ldap| {
            let attrs = attrs.clone();
            async move {
                // ldap3's `search` collects whatever arrives: stream, and stop at the bound.
                let limit = if scope == Scope::Base {
                    1
                } else {
                    UNPAGED_ENTRY_LIMIT
                };
                let mut stream = ldap.streaming_search(base, scope, filter, attrs).await?;
                let mut entries = Vec::new();
                while let Some(entry) = stream.next().await? {
                    if !entry.is_intermediate() && !entry.is_ref() && entries.len() >= limit {
                        let ldap = stream.ldap_handle();
                        let id = ldap.last_id();
                        let _ = ldap.abandon(id).await;
                        return Err(too_many_error(limit));
                    }
                    entries.push(entry);
                }
                Ok((entries, stream.finish().await))
            }
        })
        .await
    }

    fn parent_of(dn: &str) -> &str {
        // The first unescaped comma ends the RDN.
        let bytes = dn.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b',' => return &dn[i + 1..],
                _ => i += 1,
            }
        }
        ""
    }

    fn check_result(
        &self,
        operation: &'static str,
        dn: &str,
        anchor: &str,
        result: ldap3::LdapResult,
    ) -> Result<(), LdapBackendError> {
        match result.rc {
            0 => Ok(()),
            // The anchor guard's delete failed: the entry is not (or no longer) ours.
            NO_SUCH_ATTRIBUTE if operation != "add" => Err(LdapBackendError::NotOwned {
                dn: dn.to_owned(),
                anchor: anchor.to_owned(),
            }),
            rc => Err(LdapBackendError::Operation {
                operation,
                dn: dn.to_owned(),
                rc,
                message: result.text,
            }),
        }
    }

    /// Deletes and re-adds the anchor and the mark in the same modify: it fails (no such
    /// attribute) unless the entry is still this object's, for this person.
    fn guard(&self, anchor: &str) -> [Mod<String>; 4] {
        let value = HashSet::from([anchor.to_owned()]);
        let mark = HashSet::from([self.config.owner_mark.clone()]);
        [
            Mod::Delete(self.config.anchor_attribute.clone(), value.clone()),
            Mod::Add(self.config.anchor_attribute.clone(), value),
            Mod::Delete(self.config.owner_attribute.clone(), mark.clone()),
            Mod::Add(self.config.owner_attribute.clone(), mark),
        ]
    }

    async fn modify_guarded(
        &self,
        dn: &str,
        anchor: &str,
        mut mods: Vec<Mod<String>>,
    ) -> Result<(), LdapBackendError> {
        let mut all: Vec<Mod<String>> = self.guard(anchor).into();
        all.append(&mut mods);
        let result = self.modify("modify", dn, all).await?;
        self.check_result("modify", dn, anchor, result)
    }

    /// Reads one entry's anchor (for operations LDAP cannot guard atomically: rename, delete).
    /// Whether an add that found its DN taken had in fact landed: when the connection drops
    /// after the server applied an add, the retry on the new connection finds the entry, and
    /// an entry there carrying this very anchor is the one this add made.
    async fn landed(
        &self,
        dn: &str,
        anchor_attribute: &str,
        anchor: &str,
        result: &LdapResult,
    ) -> bool {
        result.rc == ALREADY_EXISTS && self.owned_by(dn, anchor_attribute, anchor).await.is_ok()
    }

    /// The entry at `dn` if it matches `filter` (a base search), with `attrs`.
    async fn read_base(
        &self,
        dn: &str,
        filter: &str,
        attrs: Vec<&str>,
    ) -> Result<Option<SearchEntry>, LdapBackendError> {
        let (entries, result) = self.search("read", dn, Scope::Base, filter, attrs).await?;
        if result.rc != 0 {
            return Err(LdapBackendError::Operation {
                operation: "read",
                dn: dn.to_owned(),
                rc: result.rc,
                message: result.text,
            });
        }
        Ok(entries.into_iter().next().map(SearchEntry::construct))
    }

    /// Whether the entry at `dn` is this object's entry of `anchor` (anchor and mark).
    async fn owned(&self, dn: &str, anchor: &str) -> Result<(), LdapBackendError> {
        let filter = format!(
            "(&{}({}={}))",
            LdapConfig::anchor_filter(&self.config.anchor_attribute, anchor),
            self.config.owner_attribute,
            ldap3::ldap_escape(&self.config.owner_mark)
        );
        self.owned_matching(dn, anchor, &filter).await
    }

    async fn owned_by(
        &self,
        dn: &str,
        anchor_attribute: &str,
        anchor: &str,
    ) -> Result<(), LdapBackendError> {
        let filter = LdapConfig::anchor_filter(anchor_attribute, anchor);
        self.owned_matching(dn, anchor, &filter).await
    }

    async fn owned_matching(
        &self,
        dn: &str,
        anchor: &str,
        filter: &str,
    ) -> Result<(), LdapBackendError> {
        if self.read_base(dn, filter, vec!["1.1"]).await?.is_none() {
            return Err(LdapBackendError::NotOwned {
                dn: dn.to_owned(),
                anchor: anchor.to_owned(),
            });
        }
        Ok(())
    }

    /// Takes an entry over: sets the person's id in the anchor attribute (replacing what was
    /// there, say a payroll number) and adds the mark, in one modify guarded by what was read:
    /// the old anchor value is deleted by value, so a change since the read fails the modify,
    /// and an entry another PeopleSync object has marked is refused.
    async fn adopt(&self, id: &str, anchor: &str) -> Result<String, LdapBackendError> {
        let config = &self.config;
        let wanted = vec![
            config.anchor_attribute.as_str(),
            config.owner_attribute.as_str(),
        ];
        let attributes: Attributes = self
            .read_base(id, "(objectClass=*)", wanted)
            .await?
            .map(|e| e.attrs.into_iter().collect())
            .unwrap_or_default();
        let marking = config.marking();
        let owner = attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&config.owner_attribute))
            .map(|(_, v)| v);
        if marking.is_ours(owner) || marking.is_foreign(owner) {
            return Err(LdapBackendError::NotOwned {
                dn: id.to_owned(),
                anchor: anchor.to_owned(),
            });
        }
        let previous = attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&config.anchor_attribute))
            .map(|(_, v)| v.iter().cloned().collect::<HashSet<String>>())
            .unwrap_or_default();
        let mut mods = Vec::new();
        if !previous.is_empty() {
            mods.push(Mod::Delete(config.anchor_attribute.clone(), previous));
        }
        mods.push(Mod::Add(
            config.anchor_attribute.clone(),
            HashSet::from([anchor.to_owned()]),
        ));
        mods.push(Mod::Add(
            config.owner_attribute.clone(),
            HashSet::from([config.owner_mark.clone()]),
        ));
        let result = self.modify("adopt", id, mods).await?;
        match result.rc {
            // Changed since the read (a value deleted, an anchor or mark added meanwhile).
            CONSTRAINT_VIOLATION | TYPE_OR_VALUE_EXISTS | NO_SUCH_ATTRIBUTE => {
                Err(LdapBackendError::NotOwned {
                    dn: id.to_owned(),
                    anchor: anchor.to_owned(),
                })
            }
            _ => self
                .check_result("adopt", id, anchor, result)
                .map(|()| id.to_owned()),
        }
    }

    /// `member` values for exactly `members`; `groupOfNames` requires one, so an empty group
    /// holds the empty DN (a common convention that matches no entry). AD's `group` may be
    /// empty (and refuses the empty DN).
    fn member_values(&self, members: &std::collections::BTreeSet<String>) -> HashSet<String> {
        if members.is_empty()
            && self
                .config
                .group_object_class
                .eq_ignore_ascii_case("groupOfNames")
        {
            HashSet::from([String::new()])
        } else {
            members.iter().cloned().collect()
        }
    }

    fn group_guard(&self, anchor: &str) -> [Mod<String>; 2] {
        let value = HashSet::from([anchor.to_owned()]);
        [
            Mod::Delete(self.config.group_anchor_attribute.clone(), value.clone()),
            Mod::Add(self.config.group_anchor_attribute.clone(), value),
        ]
    }

    /// A paged (RFC 2696) one-level search under each base, one page in memory at a time. A
    /// missing base (e.g. no disabled OU yet) simply has no entries.
    fn paged(
        &self,
        bases: Vec<String>,
        scope: Scope,
        filter: String,
        wanted: Vec<String>,
    ) -> BoxStream<'_, Result<SearchEntry, LdapBackendError>> {
        futures::stream::iter(bases)
            .then(move |base| {
                let filter = filter.clone();
                let wanted = wanted.clone();
                let page_size = self.config.page_size.max(1);
                let mut ldap = self.current();
                async move {
                    let adapters: Vec<Box<dyn Adapter<'static, String, Vec<String>>>> = vec![
                        Box::new(EntriesOnly::new()),
                        Box::new(PagedResults::new(page_size)),
                        Box::new(PageBound {
                            size: page_size as usize,
                            seen: 0,
                        }),
                    ];
                    let stream = ldap
                        .streaming_search_with(adapters, &base, scope, &filter, wanted)
                        .await
                        .map_err(transport("search"));
                    futures::stream::unfold(Some(stream), move |state| async move {
                        let mut stream = match state? {
                            Ok(stream) => stream,
                            Err(error) => return Some((Err(error), None)),
                        };
                        match stream.next().await {
                            Ok(Some(entry)) => {
                                Some((Ok(SearchEntry::construct(entry)), Some(Ok(stream))))
                            }
                            Ok(None) => {
                                let result = stream.finish().await;
                                // A missing base (e.g. no disabled OU yet) simply has no entries.
                                if result.rc != 0 && result.rc != NO_SUCH_OBJECT {
                                    return Some((
                                        Err(LdapBackendError::Operation {
                                            operation: "search",
                                            dn: String::new(),
                                            rc: result.rc,
                                            message: result.text,
                                        }),
                                        None,
                                    ));
                                }
                                None
                            }
                            Err(source) => {
                                if too_many(&source).is_some() {
                                    // Ask the server to stop sending the rest.
                                    let ldap = stream.ldap_handle();
                                    let id = ldap.last_id();
                                    let _ = ldap.abandon(id).await;
                                }
                                Some((Err(transport("search")(source)), None))
                            }
                        }
                    })
                }
            })
            .flatten()
            .boxed()
    }

    /// Entries under the people DNs matching `filter`, as the planner sees them.
    fn entries_matching(&self, filter: String) -> BoxStream<'_, Result<Entry, LdapBackendError>> {
        // `*` returns user attributes only; a ppolicy lock is operational, so ask for it by name.
        let mut wanted = vec!["*".to_owned()];
        match &self.config.disable {
            DisableStrategy::SetAttribute { attribute, .. } => wanted.push(attribute.clone()),
            DisableStrategy::AdAccountDisable => wanted.push(PWD_LAST_SET.to_owned()),
            DisableStrategy::MoveToOu { .. } => {}
        }
        let (scope, filter) = if self.config.people_subtree {
            (
                Scope::Subtree,
                format!("(&{}{filter})", self.config.people_filter),
            )
        } else if self.config.people_filter.is_empty() {
            (Scope::OneLevel, filter)
        } else {
            (
                Scope::OneLevel,
                format!("(&{}{filter})", self.config.people_filter),
            )
        };
        self.paged(self.bases(), scope, filter, wanted)
            .map(move |entry| {
                let entry = entry?;
                let attributes: Attributes = entry.attrs.into_iter().collect::<BTreeMap<_, _>>();
                // Only an entry carrying this object's mark is its own; any other (a brownfield
                // `employeeID`, another object's entry) is unowned, whatever its anchor holds.
                let marked = attributes
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&self.config.owner_attribute))
                    .is_some_and(|(_, v)| {
                        v.iter()
                            .any(|v| v.eq_ignore_ascii_case(&self.config.owner_mark))
                    });
                let anchor = attributes
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&self.config.anchor_attribute))
                    .and_then(|(_, v)| v.first().cloned())
                    .filter(|_| marked)
                    .unwrap_or_default();
                Ok(Entry {
                    enabled: self.config.enabled_of(&entry.dn, &attributes),
                    id: entry.dn,
                    anchor,
                    attributes,
                })
            })
            .boxed()
    }

    /// A group's members from its search entry: `member` whole, or with range retrieval the
    /// first range and then the rest, one range per base search, until the server marks the last
    /// (`member;range=1500-*`).
    async fn members_of(&self, entry: &SearchEntry) -> Result<Vec<String>, LdapBackendError> {
        let mut members = Vec::new();
        let mut attrs: Vec<(String, Vec<String>)> = entry
            .attrs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        loop {
            let mut next = None;
            for (name, values) in &attrs {
                let lower = name.to_ascii_lowercase();
                if lower == "member" {
                    members.extend(values.iter().filter(|m| !m.is_empty()).cloned());
                } else if let Some(range) = lower.strip_prefix("member;range=") {
                    members.extend(values.iter().filter(|m| !m.is_empty()).cloned());
                    let (_, high) = range.split_once('-').unwrap_or((range, "*"));
                    if high != "*" {
                        let high: u64 = high.parse().map_err(|_| LdapBackendError::Operation {
                            operation: "read the members of",
                            dn: entry.dn.clone(),
                            rc: 0,
                            message: format!("the server sent an unreadable range {name}"),
                        })?;
                        next = Some(high + 1);
                    }
                }
            }
            let Some(low) = next else {
                return Ok(members);
            };
            let step = u64::from(self.config.member_range.unwrap_or(AD_MAX_VAL_RANGE).max(1));
            let wanted = format!("member;range={low}-{}", low + step - 1);
            let (found, result) = self
                .search(
                    "read the members of",
                    &entry.dn,
                    Scope::Base,
                    "(objectClass=*)",
                    vec![wanted.as_str()],
                )
                .await?;
            if result.rc != 0 {
                return Err(LdapBackendError::Operation {
                    operation: "read the members of",
                    dn: entry.dn.clone(),
                    rc: result.rc,
                    message: result.text,
                });
            }
            attrs = found
                .into_iter()
                .next()
                .map(SearchEntry::construct)
                .map(|e| e.attrs.into_iter().collect())
                .unwrap_or_default();
            if attrs.is_empty() {
                // The range ran past the last value: the server sends no attribute.
                return Ok(members);
            }
        }
    }

    fn bases(&self) -> Vec<String> {
        let mut bases = vec![self.config.people_dn.clone()];
        if let DisableStrategy::MoveToOu { disabled_dn } = &self.config.disable {
            bases.push(disabled_dn.clone());
        }
        bases
    }
}

impl Directory for LdapDirectory {
    type Error = LdapBackendError;

    fn groups(&self) -> BoxStream<'_, Result<Group, LdapBackendError>> {
        let Some(groups_dn) = self.config.groups_dn.clone() else {
            return futures::stream::empty().boxed();
        };
        let anchor_attribute = self.config.group_anchor_attribute.clone();
        let filter = format!("({anchor_attribute}=*)");
        let member = match self.config.member_range {
            Some(range) => format!("member;range=0-{}", range.saturating_sub(1)),
            None => "member".to_owned(),
        };
        futures::stream::once(async move {
            let (entries, result) = self
                .search(
                    "search groups",
                    &groups_dn,
                    Scope::OneLevel,
                    &filter,
                    vec!["cn", member.as_str(), anchor_attribute.as_str()],
                )
                .await?;
            if result.rc != 0 && result.rc != NO_SUCH_OBJECT {
                return Err(LdapBackendError::Operation {
                    operation: "search",
                    dn: groups_dn,
                    rc: result.rc,
                    message: result.text,
                });
            }
            let entries: Vec<SearchEntry> =
                entries.into_iter().map(SearchEntry::construct).collect();
            Ok::<_, LdapBackendError>(futures::stream::iter(entries).then(move |entry| {
                let anchor_attribute = anchor_attribute.clone();
                async move {
                    let first = |name: &str| {
                        entry
                            .attrs
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(name))
                            .and_then(|(_, v)| v.first().cloned())
                            .unwrap_or_default()
                    };
                    let anchor = first(&anchor_attribute);
                    let name = first("cn");
                    let members = self.members_of(&entry).await?.into_iter().collect();
                    Ok(Group {
                        anchor,
                        name,
                        members,
                        id: entry.dn,
                    })
                }
            }))
        })
        .map(|result| match result {
            Ok(stream) => stream.boxed(),
            Err(error) => futures::stream::once(async move { Err(error) }).boxed(),
        })
        .flatten()
        .boxed()
    }

    async fn apply_group(&self, change: &GroupChange) -> Result<String, LdapBackendError> {
        let groups_dn = self
            .config
            .groups_dn
            .clone()
            .ok_or(LdapBackendError::GroupsNotManaged)?;
        match change {
            GroupChange::Create {
                anchor,
                name,
                members,
            } => {
                let dn = format!("cn={},{groups_dn}", escape_rdn_value(name));
                let mut attrs = vec![
                    (
                        "objectClass".to_owned(),
                        HashSet::from(["top".to_owned(), self.config.group_object_class.clone()]),
                    ),
                    ("cn".to_owned(), HashSet::from([name.clone()])),
                    (
                        self.config.group_anchor_attribute.clone(),
                        HashSet::from([anchor.clone()]),
                    ),
                ];
                let member = self.member_values(members);
                if !member.is_empty() {
                    attrs.push(("member".to_owned(), member));
                }
                let result = self.add("add", &dn, attrs).await?;
                if self
                    .landed(&dn, &self.config.group_anchor_attribute, anchor, &result)
                    .await
                {
                    return Ok(dn);
                }
                self.check_result("add", &dn, anchor, result)?;
                Ok(dn)
            }
            GroupChange::SetMembers {
                id,
                anchor,
                members,
            } => {
                let mut mods: Vec<Mod<String>> = self.group_guard(anchor).into();
                mods.push(Mod::Replace(
                    "member".to_owned(),
                    self.member_values(members),
                ));
                let result = self.modify("modify", id, mods).await?;
                self.check_result("modify", id, anchor, result)?;
                Ok(id.clone())
            }
            GroupChange::Rename { id, anchor, name } => {
                self.owned_by(id, &self.config.group_anchor_attribute, anchor)
                    .await?;
                let rdn = format!("cn={}", escape_rdn_value(name));
                let result = self.modifydn("rename", id, &rdn, true, None).await?;
                self.check_result("rename", id, anchor, result)?;
                Ok(format!("{rdn},{}", Self::parent_of(id)))
            }
            GroupChange::Delete { id, anchor } => {
                self.owned_by(id, &self.config.group_anchor_attribute, anchor)
                    .await?;
                let result = self.delete("delete", id).await?;
                self.check_result("delete", id, anchor, result)?;
                Ok(id.clone())
            }
        }
    }

    async fn check(&self) -> Result<(), LdapBackendError> {
        let (_, result) = self
            .search(
                "check",
                &self.config.people_dn,
                Scope::Base,
                "(objectClass=*)",
                vec!["1.1"],
            )
            .await?;
        match result.rc {
            0 => Ok(()),
            rc => Err(LdapBackendError::Operation {
                operation: "read",
                dn: self.config.people_dn.clone(),
                rc,
                message: result.text,
            }),
        }
    }

    fn traits(&self) -> DirectoryTraits {
        DirectoryTraits {
            rdn_attribute: Some(self.config.rdn_attribute.clone()),
            rename_changes_id: true,
            disable_changes_id: matches!(self.config.disable, DisableStrategy::MoveToOu { .. }),
            manager_attribute: Some("manager".into()),
            groups: self.config.groups_dn.is_some(),
            group_name_max: self.config.group_name_max,
            marking: Some(self.config.marking()),
        }
    }

    /// Every entry under the naming context, outside the people DNs, holding a value of a
    /// directory-wide unique attribute (AD: accounts in other OUs, other tenants' included).
    fn elsewhere(&self) -> BoxStream<'_, Result<Entry, LdapBackendError>> {
        if self.config.directory_unique.is_empty() {
            return futures::stream::empty().boxed();
        }
        let filter = format!(
            "(|{})",
            self.config
                .directory_unique
                .iter()
                .map(|name| format!("({name}=*)"))
                .collect::<String>()
        );
        let bases = self.bases();
        let subtree = self.config.people_subtree;
        self.paged(
            vec![self.config.naming_context()],
            Scope::Subtree,
            filter,
            self.config.directory_unique.clone(),
        )
        .try_filter(move |entry| {
            let ours = bases.iter().any(|base| {
                let parent = Self::parent_of(&entry.dn);
                parent.eq_ignore_ascii_case(base) || (subtree && is_below(&entry.dn, base))
            });
            futures::future::ready(!ours)
        })
        .map_ok(|entry| Entry {
            id: entry.dn,
            anchor: String::new(),
            enabled: true,
            attributes: entry.attrs.into_iter().collect(),
        })
        .boxed()
    }

    /// Entries under the people DNs that are not this object's (no anchor, or no mark).
    fn unowned(&self) -> BoxStream<'_, Result<Entry, LdapBackendError>> {
        let filter = format!("(!{})", self.config.owned_filter());
        self.entries_matching(filter)
    }

    /// Entries carrying the anchor and this object's mark.
    fn entries(&self) -> BoxStream<'_, Result<Entry, LdapBackendError>> {
        self.entries_matching(self.config.owned_filter())
    }

    /// One paged search for managed and unowned entries alike (slapd scans the OU either way).
    fn everyone(&self) -> BoxStream<'_, Result<Entry, LdapBackendError>> {
        self.entries_matching("(objectClass=*)".to_owned())
    }

    async fn apply(&self, change: &Change) -> Result<String, LdapBackendError> {
        match change {
            Change::Create {
                anchor,
                attributes,
                enabled,
            } => {
                let (dn, attrs) = self.config.add_request(anchor, attributes, *enabled);
                if self.config.disable == DisableStrategy::AdAccountDisable
                    && self.config.initial_password == InitialPassword::Random
                {
                    let result = self.add_with_password(&dn, attrs).await?;
                    if result.rc == ALREADY_EXISTS && self.owned(&dn, anchor).await.is_ok() {
                        return Ok(dn);
                    }
                    // AD refuses a password its policy rejects with a constraint violation
                    // (0000052D) or unwillingToPerform: nothing is added.
                    if matches!(result.rc, CONSTRAINT_VIOLATION | UNWILLING_TO_PERFORM) {
                        return Err(LdapBackendError::PasswordRefused {
                            dn,
                            rc: result.rc,
                            message: result.text,
                        });
                    }
                    self.check_result("add", &dn, anchor, result)?;
                } else {
                    let result = self.add("add", &dn, attrs).await?;
                    if result.rc == ALREADY_EXISTS && self.owned(&dn, anchor).await.is_ok() {
                        return Ok(dn);
                    }
                    self.check_result("add", &dn, anchor, result)?;
                }
                Ok(dn)
            }
            Change::Update {
                id,
                anchor,
                set: changes,
            } => {
                let mods = changes
                    .iter()
                    .filter(|(name, _)| !self.config.is_reserved_attribute(name))
                    .map(|(name, values)| Mod::Replace(name.clone(), set(values)))
                    .collect();
                self.modify_guarded(id, anchor, mods).await?;
                Ok(id.clone())
            }
            Change::Rename {
                id,
                anchor,
                new_rdn_value,
            } => {
                self.owned(id, anchor).await?;
                let rdn = format!(
                    "{}={}",
                    self.config.rdn_attribute,
                    escape_rdn_value(new_rdn_value)
                );
                let result = self.modifydn("rename", id, &rdn, true, None).await?;
                self.check_result("rename", id, anchor, result)?;
                Ok(format!("{rdn},{}", Self::parent_of(id)))
            }
            Change::Disable { id, anchor } | Change::Enable { id, anchor } => {
                let disable = matches!(change, Change::Disable { .. });
                match &self.config.disable {
                    DisableStrategy::SetAttribute { attribute, value } => {
                        let values = if disable {
                            HashSet::from([value.clone()])
                        } else {
                            HashSet::new()
                        };
                        self.modify_guarded(
                            id,
                            anchor,
                            vec![Mod::Replace(attribute.clone(), values)],
                        )
                        .await?;
                        Ok(id.clone())
                    }
                    DisableStrategy::AdAccountDisable => {
                        // Keep every other flag (password policy, smart card, …): read, flip bit 2.
                        let attrs = self
                            .read_base(
                                id,
                                "(objectClass=*)",
                                vec![USER_ACCOUNT_CONTROL, PWD_LAST_SET],
                            )
                            .await?
                            .map(|e| e.attrs)
                            .unwrap_or_default();
                        let first = |name: &str| {
                            attrs
                                .iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                                .and_then(|(_, v)| v.first().cloned())
                        };
                        let current =
                            first(USER_ACCOUNT_CONTROL).and_then(|v| v.parse::<u32>().ok());
                        let value = account_control_for(
                            current,
                            first(PWD_LAST_SET).as_deref(),
                            disable,
                            self.config.initial_password,
                        );
                        self.modify_guarded(
                            id,
                            anchor,
                            vec![Mod::Replace(
                                USER_ACCOUNT_CONTROL.into(),
                                HashSet::from([value.to_string()]),
                            )],
                        )
                        .await?;
                        Ok(id.clone())
                    }
                    DisableStrategy::MoveToOu { disabled_dn } => {
                        self.owned(id, anchor).await?;
                        let target = if disable {
                            disabled_dn.as_str()
                        } else {
                            self.config.people_dn.as_str()
                        };
                        let rdn = id
                            .split_at(id.len() - Self::parent_of(id).len())
                            .0
                            .trim_end_matches(',')
                            .to_owned();
                        let result = self.modifydn("move", id, &rdn, true, Some(target)).await?;
                        self.check_result("move", id, anchor, result)?;
                        Ok(format!("{rdn},{target}"))
                    }
                }
            }
            Change::Adopt { id, anchor } => self.adopt(id, anchor).await,
            Change::Delete { id, anchor } => {
                self.owned(id, anchor).await?;
                let result = self.delete("delete", id).await?;
                self.check_result("delete", id, anchor, result)?;
                Ok(id.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An AD target with the profile's defaults, as a user would write it.
    fn active_directory() -> LdapConfig {
        let target: crate::crd::LdapTarget = serde_json::from_value(serde_json::json!({
            "url": "ldaps://dc1.corp.example.com",
            "bindDn": "CN=peoplesync,OU=Service Accounts,DC=corp,DC=example,DC=com",
            "bindPasswordSecretRef": {"name": "ad", "key": "password"},
            "baseDn": "DC=corp,DC=example,DC=com",
            "peopleDn": "OU=Staff,DC=corp,DC=example,DC=com",
            "groupsDn": "OU=Groups,DC=corp,DC=example,DC=com",
            "profile": "ad"
        }))
        .expect("a valid AD target");
        LdapConfig::from_spec(
            &target,
            SecretString::from("unused"),
            None,
            crate::directory::mark_for("hr", "acme"),
        )
    }

    fn ad_person() -> crate::source::Person {
        let mut person = crate::source::Person::sample(
            "abcdefghjkmn",
            "Maximilian",
            "Featherstonehaugh-Wolfeschlegel",
        );
        person.work_email = Some("max.fw@corp.example.com".into());
        person
    }

    #[test]
    fn ad_creates_user_objects_named_by_cn_with_short_account_names_and_account_flags() {
        let config = active_directory();
        let mapping = crate::plan::Mapping::new(
            crate::plan::mapping::Profile::Ldap(crate::crd::LdapProfile::ActiveDirectory),
            &BTreeMap::new(),
        )
        .expect("compiles");
        let mapped = mapping
            .map(&ad_person(), None, &|_, _| false)
            .expect("maps");
        let (dn, attrs) = config.add_request("abcdefghjkmn", &mapped.attributes, true);
        assert_eq!(
            dn,
            "cn=Maximilian Featherstonehaugh-Wolfeschlegel,OU=Staff,DC=corp,DC=example,DC=com"
        );
        let attrs: BTreeMap<String, HashSet<String>> = attrs.into_iter().collect();
        let one = |name: &str| {
            let values = &attrs[name];
            assert_eq!(values.len(), 1, "{name}");
            values.iter().next().cloned().expect("one value")
        };
        assert!(attrs["objectClass"].contains("user"));
        assert!(!attrs["objectClass"].contains("inetOrgPerson"));
        let sam = one("sAMAccountName");
        assert!(sam.chars().count() <= 20, "{sam}");
        assert_eq!(sam, "mfeatherstonehaughwo");
        assert_eq!(one("userPrincipalName"), "max.fw@corp.example.com");
        assert_eq!(one("employeeID"), "abcdefghjkmn", "the anchor");
        assert_eq!(
            one(USER_ACCOUNT_CONTROL),
            "546",
            "no initial password: NORMAL_ACCOUNT, ACCOUNTDISABLE, PASSWD_NOTREQD (awaits an admin)"
        );
        assert!(!attrs.contains_key("employeeNumber"));
        assert!(
            !attrs.contains_key("unicodePwd"),
            "never in the add request"
        );
        let awaiting = BTreeMap::from([(USER_ACCOUNT_CONTROL.to_owned(), vec!["546".to_owned()])]);
        assert!(
            config.enabled_of(&dn, &awaiting),
            "an awaiting account counts as enabled"
        );

        let (_, leaver) = config.add_request("abcdefghjkmn", &mapped.attributes, false);
        let leaver: BTreeMap<String, HashSet<String>> = leaver.into_iter().collect();
        assert_eq!(
            leaver[USER_ACCOUNT_CONTROL],
            HashSet::from(["514".to_owned()]),
            "a leaver's account is plainly disabled"
        );
        let random = LdapConfig {
            initial_password: InitialPassword::Random,
            ..config
        };
        let (_, enabled) = random.add_request("abcdefghjkmn", &mapped.attributes, true);
        let enabled: BTreeMap<String, HashSet<String>> = enabled.into_iter().collect();
        assert_eq!(
            enabled[USER_ACCOUNT_CONTROL],
            HashSet::from(["512".to_owned()])
        );
        let (_, disabled) = random.add_request("abcdefghjkmn", &mapped.attributes, false);
        let disabled: BTreeMap<String, HashSet<String>> = disabled.into_iter().collect();
        assert_eq!(
            disabled[USER_ACCOUNT_CONTROL],
            HashSet::from(["514".to_owned()])
        );
    }

    #[test]
    fn an_account_awaiting_an_admin_is_left_awaiting_until_it_has_a_password() {
        let none = InitialPassword::None;
        // Enabling an account without a password keeps it disabled and awaiting.
        assert_eq!(account_control_for(Some(546), Some("0"), false, none), 546);
        assert!(awaits_admin(546, Some("0")));
        // A leaver's awaiting account: disabled for good (PASSWD_NOTREQD, ours, cleared).
        let left = account_control_for(Some(546), Some("0"), true, none);
        assert_eq!(left, 514);
        assert!(!awaits_admin(left, Some("0")));
        // A returner without a password awaits an admin again.
        assert_eq!(account_control_for(Some(514), Some("0"), false, none), 546);
        // Once an admin set a password, only ACCOUNTDISABLE flips; other flags stay.
        let set = Some("133890000000000000");
        assert!(!awaits_admin(546, set));
        assert_eq!(account_control_for(Some(544), set, true, none), 546);
        assert_eq!(account_control_for(Some(66050), set, false, none), 66048);
        // With random passwords, only the bit flips.
        let random = InitialPassword::Random;
        assert_eq!(account_control_for(Some(512), Some("0"), true, random), 514);
        assert_eq!(
            account_control_for(Some(514), Some("0"), false, random),
            512
        );
    }

    #[test]
    fn random_passwords_meet_ad_complexity_and_differ() {
        let a = random_password();
        let b = random_password();
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(a.chars().any(|c| c.is_ascii_uppercase()));
        assert!(a.chars().any(|c| c.is_ascii_lowercase()));
        assert!(a.chars().any(|c| c.is_ascii_digit()));
        assert!(a.chars().any(|c| !c.is_ascii_alphanumeric()));
    }

    #[test]
    fn ad_disable_and_enable_flip_only_the_accountdisable_bit() {
        // 66048 = NORMAL_ACCOUNT | DONT_EXPIRE_PASSWORD: the second flag survives.
        assert_eq!(account_control(Some(66048), true), 66050);
        assert_eq!(account_control(Some(66050), false), 66048);
        assert_eq!(account_control(Some(514), true), 514, "idempotent");
        assert_eq!(account_control(None, true), 514);
        assert_eq!(account_control(None, false), 512);
    }

    #[test]
    fn ad_defaults_anchor_on_employee_id_disable_by_flag_and_keep_groups_in_info() {
        let config = active_directory();
        assert_eq!(config.rdn_attribute, "cn");
        assert_eq!(config.anchor_attribute, "employeeID");
        assert_eq!(config.disable, DisableStrategy::AdAccountDisable);
        assert_eq!(config.group_anchor_attribute, "info");
        let dn = "cn=A,OU=Staff,DC=corp,DC=example,DC=com";
        let flags =
            |value: &str| Attributes::from([(USER_ACCOUNT_CONTROL.into(), vec![value.into()])]);
        assert!(!config.enabled_of(dn, &flags("66050")));
        assert!(config.enabled_of(dn, &flags("66048")));
        assert!(
            config.enabled_of(dn, &Attributes::new()),
            "no flags: enabled"
        );
    }

    #[test]
    fn the_parent_of_a_dn_skips_escaped_commas() {
        assert_eq!(
            LdapDirectory::parent_of("uid=a,ou=people,dc=x"),
            "ou=people,dc=x"
        );
        assert_eq!(
            LdapDirectory::parent_of("cn=Smith\\, Ann,ou=people,dc=x"),
            "ou=people,dc=x"
        );
        assert_eq!(escape_rdn_value("Smith, Ann"), "Smith\\2c Ann");
        assert_eq!(
            LdapDirectory::parent_of("cn=Smith\\2c Ann,ou=people,dc=x"),
            "ou=people,dc=x"
        );
    }

    #[test]
    fn schema_problems_are_per_entry_and_connection_problems_are_not() {
        let schema = LdapBackendError::Operation {
            operation: "add",
            dn: "x".into(),
            rc: OBJECT_CLASS_VIOLATION,
            message: String::new(),
        };
        assert_eq!(
            (schema.reason(), schema.is_per_entry()),
            ("SchemaViolation", true)
        );
        let bind = LdapBackendError::Bind {
            bind_dn: "x".into(),
            rc: 49,
        };
        assert_eq!((bind.reason(), bind.is_per_entry()), ("BindFailed", false));
    }

    #[test]
    fn a_plain_bind_to_another_host_is_refused_unless_allowed() {
        let config = |url: &str, start_tls: bool, allow_plaintext: bool| LdapConfig {
            url: url.into(),
            start_tls,
            allow_plaintext,
            ..crate::slapd::config_for("ldap://127.0.0.1:389", "x")
        };
        for (url, start_tls, allowed, refused) in [
            (
                "ldap://ldap.example.com:389",
                false,
                false,
                Some("ldap.example.com"),
            ),
            ("LDAP://10.1.2.3", false, false, Some("10.1.2.3")),
            (
                "ldap://[2001:db8::1]:389",
                false,
                false,
                Some("2001:db8::1"),
            ),
            ("ldap://ldap.example.com:389", true, false, None),
            ("ldap://ldap.example.com:389", false, true, None),
            ("ldaps://ldap.example.com:636", false, false, None),
            ("ldap://127.0.0.1:3890", false, false, None),
            ("ldap://localhost:389/", false, false, None),
            ("ldap://[::1]:389", false, false, None),
        ] {
            assert_eq!(
                plaintext_to_another_host(&config(url, start_tls, allowed)).as_deref(),
                refused,
                "{url} startTls={start_tls} allowPlaintext={allowed}"
            );
        }
    }
}
