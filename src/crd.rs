//! The `PeopleSync` custom resource (`peoplesync.dev/v1alpha1`): the source of truth for
//! `crds/peoplesync.yaml` and `kubectl explain`. Every field's doc comment is its explanation;
//! CEL rules say what the schema alone cannot, with messages a person understands.

pub mod conditions;
pub mod duration;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Loopback `http://` is accepted (for the sandbox and local demos); anything else must be https.
const HTTPS_OR_LOOPBACK: &str = "self.startsWith('https://') || self.matches('^http://(127\\\\.0\\\\.0\\\\.1|localhost|\\\\[::1\\\\])(:[0-9]+)?(/.*)?$')";

/// A PeopleSync keeps one identity directory (LDAP or SCIM) aligned with one HR tenant.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "peoplesync.dev",
    version = "v1alpha1",
    kind = "PeopleSync",
    plural = "peoplesyncs",
    singular = "peoplesync",
    shortname = "psync",
    namespaced,
    status = "PeopleSyncStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".status.summary.source","description":"The HR system people come from"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".status.summary.target","description":"The directory people are written to"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[?(@.type==\"Synced\")].status"}"#,
    printcolumn = r#"{"name":"People","type":"integer","jsonPath":".status.counts.people"}"#,
    printcolumn = r#"{"name":"Webhook","type":"string","jsonPath":".status.webhook.health"}"#,
    printcolumn = r#"{"name":"Last Sync","type":"date","jsonPath":".status.lastSyncTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.webhook) || !self.webhook.enabled || has(self.webhook.publicUrl)").message("webhook.publicUrl is required when webhook.enabled is true: it is the address the HR system sends events to"),
    validation = Rule::new("!has(self.schedule) || !has(self.schedule.pollInterval) || !has(self.schedule.fullResyncInterval) || duration(self.schedule.fullResyncInterval) >= duration(self.schedule.pollInterval)").message("schedule.fullResyncInterval must not be shorter than schedule.pollInterval")
)]
pub struct PeopleSyncSpec {
    /// Where people come from. Exactly one source must be set.
    pub source: SourceSpec,
    /// The directory people are written to. Exactly one target must be set.
    pub target: TargetSpec,
    /// How often to poll for changes and to reconcile everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// What happens to the directory account of someone who left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprovision: Option<DeprovisionSpec>,
    /// What happens to people who have not started yet, or are on leave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleSpec>,
    /// Taking over accounts that exist before PeopleSync (no anchor yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adoption: Option<AdoptionSpec>,
    /// The mass-deprovision guard: a cycle that would deprovision more than this is held until
    /// approved with the annotation `peoplesync.dev/approve-deprovision: <plan hash>` (with
    /// `peoplesync.dev/approved-by: <your username>`; `kubectl peoplesync approve` sets both).
    /// Where the chart's admission policy is installed, approving needs the `approve` verb on
    /// peoplesyncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<GuardSpec>,
    /// Which people are synchronised. Empty means everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeSpec>,
    /// Webhooks from the source (HollyHR or Personio): a latency shortcut; polling stays the
    /// safety net.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
    /// Plan only: compute and report the changes in status without writing to the directory.
    #[serde(default)]
    pub dry_run: bool,
    /// Pause all synchronisation and webhook management for this object.
    #[serde(default)]
    pub suspend: bool,
}

/// A reference to one key of a Secret in the PeopleSync's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret (same namespace as the PeopleSync).
    #[x_kube(validation = Rule::new("self.size() > 0 && self.size() <= 253").message("a Secret name is 1 to 253 characters"))]
    pub name: String,
    /// Key within the Secret's data.
    #[x_kube(validation = Rule::new("self.size() > 0").message("a Secret key must not be empty"))]
    pub key: String,
}

/// The HR source. Exactly one kind is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.hollyhr) != has(self.personio)").message("set exactly one source: source.hollyhr or source.personio"))]
pub struct SourceSpec {
    /// HollyHR's safe People projection (API v1, scope `people:read`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hollyhr: Option<HollyHrSource>,
    /// Personio's public API v2 (persons and their latest employment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personio: Option<PersonioSource>,
}

impl SourceSpec {
    /// The source's name for `kubectl get`, conditions and messages.
    pub fn kind(&self) -> &'static str {
        match (&self.hollyhr, &self.personio) {
            (_, Some(_)) => "Personio",
            _ => "HollyHR",
        }
    }

    /// The source as a metric label: `hollyhr` or `personio`.
    pub fn label(&self) -> &'static str {
        match (&self.hollyhr, &self.personio) {
            (_, Some(_)) => "personio",
            _ => "hollyhr",
        }
    }

    /// The names of the Secrets the source's credentials are in.
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names = Vec::new();
        if let Some(h) = &self.hollyhr {
            names.push(h.api_key_secret_ref.name.as_str());
            names.extend(h.ca_secret_ref.iter().map(|r| r.name.as_str()));
        }
        if let Some(p) = &self.personio {
            names.push(p.credentials_secret_ref.name.as_str());
            names.extend(p.ca_secret_ref.iter().map(|r| r.name.as_str()));
        }
        names
    }
}

/// Connection to one Personio company.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PersonioSource {
    /// The API base URL without `/v2` (default `https://api.personio.de`). Must be https (plain
    /// http only to a loopback address, for local testing).
    #[serde(default = "default_personio_url")]
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK).message("source.personio.baseUrl must be an https:// URL (http:// only for 127.0.0.1 or localhost)"))]
    pub base_url: String,
    /// The Secret holding the API credential under the keys `client_id` and `client_secret`. The
    /// credential needs `personio:persons:read` (and `personio:webhooks:read` /
    /// `personio:webhooks:write` for webhooks) and must be allowed to read the attributes the
    /// mapping uses.
    pub credentials_secret_ref: SecretRef,
    /// Sent as `X-Personio-App-ID` on every request (Personio asks integrations to identify
    /// themselves), in UPPER_SNAKE_CASE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Z][A-Z0-9_]{0,63}$')").message("source.personio.appId must be UPPER_SNAKE_CASE, e.g. PEOPLESYNC"))]
    pub app_id: Option<String>,
    /// Persons per page when listing (1–50; Personio's maximum is 50).
    #[serde(default = "default_personio_page_size")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 50").message("source.personio.pageSize must be between 1 and 50"))]
    pub page_size: u32,
    /// The org-unit type that becomes the department (and the department groups).
    #[serde(default = "default_department_type")]
    #[x_kube(validation = Rule::new("self.size() > 0").message("source.personio.departmentType must not be empty"))]
    pub department_type: String,
    /// The Secret key holding a PEM CA bundle to trust besides the system store (a private CA,
    /// or the CA of a proxy that inspects TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

fn default_personio_url() -> String {
    "https://api.personio.de".to_owned()
}

fn default_personio_page_size() -> u32 {
    50
}

fn default_department_type() -> String {
    "department".to_owned()
}

/// A whole Secret in the PeopleSync's namespace (its keys are fixed by the field using it).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[x_kube(validation = Rule::new("self.size() > 0").message("a Secret name must not be empty"))]
    pub name: String,
}

impl SecretRef {
    /// One key of this Secret.
    pub fn key(&self, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: self.name.clone(),
            key: key.to_owned(),
        }
    }
}

/// Connection to one HollyHR tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HollyHrSource {
    /// The tenant's API base URL including `/api/v1`, e.g. `https://acme.hollyhr.com/api/v1`.
    /// Must be https (plain http only to a loopback address, for local testing).
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK).message("source.hollyhr.baseUrl must be an https:// URL (http:// only for 127.0.0.1 or localhost)"))]
    pub base_url: String,
    /// The Secret key holding the HollyHR API key. The key needs `people:read` (and
    /// `org_units:read` for groups, `webhooks:manage` for webhooks); never `people:personal:read`.
    pub api_key_secret_ref: SecretKeyRef,
    /// People per page when listing (1–100; HollyHR's maximum is 100).
    #[serde(default = "default_page_size")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("source.hollyhr.pageSize must be between 1 and 100"))]
    pub page_size: u32,
    /// The Secret key holding a PEM CA bundle to trust besides the system store (a private CA,
    /// or the CA of a proxy that inspects TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

fn default_page_size() -> u32 {
    100
}

/// The directory target. Exactly one kind is set.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.ldap) != has(self.scim)").message("set exactly one target: target.ldap or target.scim"))]
pub struct TargetSpec {
    /// An LDAP directory (OpenLDAP, 389-ds or Active Directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ldap: Option<LdapTarget>,
    /// A SCIM 2.0 service provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim: Option<ScimTarget>,
}

/// Which LDAP server flavour to speak to; it picks default object classes and attributes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LdapProfile {
    /// OpenLDAP with `inetOrgPerson`.
    #[default]
    #[serde(rename = "openldap")]
    OpenLdap,
    /// 389 Directory Server with `inetOrgPerson`.
    #[serde(rename = "389ds")]
    Ds389,
    /// Active Directory (`user` objects, `sAMAccountName`, `userAccountControl`).
    #[serde(rename = "ad")]
    ActiveDirectory,
}

/// An LDAP directory target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(self.url.startsWith('ldaps://') && has(self.startTls) && self.startTls)").message("startTls cannot be combined with an ldaps:// URL (ldaps is already TLS)"),
    validation = Rule::new("!has(self.initialPassword) || (has(self.profile) && self.profile == 'ad')").message("initialPassword applies to the Active Directory profile (profile: ad) only"),
    validation = Rule::new("!has(self.initialPassword) || self.initialPassword != 'Random' || self.url.startsWith('ldaps://') || (has(self.startTls) && self.startTls)").message("initialPassword Random needs an ldaps:// URL or startTls: AD takes passwords over an encrypted connection only")
)]
pub struct LdapTarget {
    /// `ldap://host:port` or `ldaps://host:port`.
    #[x_kube(validation = Rule::new("self.matches('^ldaps?://[^/]+/?$')").message("target.ldap.url must look like ldap://host:port or ldaps://host:port"))]
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS before binding.
    #[serde(default)]
    pub start_tls: bool,
    /// Allow a simple bind over plain `ldap://` without StartTLS to a host that is not
    /// loopback. Off by default: the bind password would cross the network in clear, so such
    /// a target is refused with the condition reason `PlaintextRefused`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_plaintext: bool,
    /// The Secret key holding the PEM CA bundle that signed the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// The DN PeopleSync binds as (simple bind).
    pub bind_dn: String,
    /// The Secret key holding the bind password.
    pub bind_password_secret_ref: SecretKeyRef,
    /// The directory's base DN, e.g. `dc=example,dc=com`.
    pub base_dn: String,
    /// Where person entries live, e.g. `ou=people,dc=example,dc=com`.
    pub people_dn: String,
    /// Where group entries (one per org unit) live; groups are not managed when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_dn: Option<String>,
    /// The server flavour (`openldap`, `389ds` or `ad`).
    #[serde(default)]
    pub profile: LdapProfile,
    /// Object classes of person entries; defaults per profile (`inetOrgPerson` chain, or `user`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub object_classes: Vec<String>,
    /// The attribute used as the entry's RDN (default `uid`, AD `cn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdn_attribute: Option<String>,
    /// The attribute that holds the source's person id (default `employeeNumber`, AD
    /// `employeeID`). An entry is PeopleSync's only when it holds the anchor and this object's
    /// mark (see `ownerAttribute`); any other entry is never modified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_attribute: Option<String>,
    /// The multi-valued attribute that marks the entries this object created or adopted, with
    /// the value `peoplesync:<namespace>/<name>` (default `businessCategory`, allowed by
    /// `inetOrgPerson` and AD's `user`). An entry holding an anchor value without the mark
    /// (a brownfield `employeeID`) is left alone and reported; adoption sets the mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z][A-Za-z0-9-]*$')").message("target.ldap.ownerAttribute must be an attribute name, e.g. businessCategory"))]
    pub owner_attribute: Option<String>,
    /// Attribute templates (minijinja) over the person's safe fields, merged over the profile's
    /// defaults, e.g. `mail: "{{ work_email }}"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "templates_schema")]
    pub attributes: BTreeMap<String, String>,
    /// How a leaver's entry is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable: Option<LdapDisable>,
    /// Active Directory: the password a new account gets. `None` (the default): no password;
    /// the account is created disabled and stays so until an administrator sets a password and
    /// enables it. `Random`: a random password PeopleSync never logs or stores, set over LDAPS
    /// with `unicodePwd` and `pwdLastSet: 0` (must change at next logon); the account is enabled
    /// while the person is active. Needs `ldaps://` or StartTLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_password: Option<LdapInitialPassword>,
}

/// See [`LdapTarget::initial_password`].
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LdapInitialPassword {
    #[default]
    None,
    Random,
}

/// How LDAP entries are disabled.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.strategy != 'MoveToOu' || has(self.disabledDn)").message("disable.disabledDn is required with strategy MoveToOu"),
    validation = Rule::new("self.strategy != 'SetAttribute' || has(self.attribute)").message("disable.attribute is required with strategy SetAttribute")
)]
pub struct LdapDisable {
    /// `MoveToOu` (move the entry under `disabledDn`), `SetAttribute` (e.g.
    /// `pwdAccountLockedTime` with ppolicy) or `AdAccountDisable` (AD's ACCOUNTDISABLE bit).
    pub strategy: LdapDisableStrategy,
    /// The OU disabled entries move to (MoveToOu).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_dn: Option<String>,
    /// The attribute to set (SetAttribute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// The value to set (SetAttribute; default `000001010000Z`, ppolicy's permanent lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// See [`LdapDisable::strategy`].
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LdapDisableStrategy {
    MoveToOu,
    SetAttribute,
    AdAccountDisable,
}

/// A SCIM 2.0 service provider target.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScimTarget {
    /// The SCIM base URL (the one `/Users` and `/ServiceProviderConfig` hang off).
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK).message("target.scim.baseUrl must be an https:// URL (http:// only for 127.0.0.1 or localhost)"))]
    pub base_url: String,
    /// The Secret key holding the bearer token.
    pub token_secret_ref: SecretKeyRef,
    /// The Secret key holding a PEM CA bundle to trust besides the system store (a private CA,
    /// or the CA of a proxy that inspects TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Attribute templates (minijinja) merged over the SCIM defaults, keyed by SCIM path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "templates_schema")]
    pub attributes: BTreeMap<String, String>,
}

/// Polling and reconciliation intervals (Go duration strings such as `5m`, `6h`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// How often an incremental cycle asks the source for people changed since the checkpoint
    /// (default `5m`, at least `30s`).
    #[serde(default = "default_poll_interval")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('30s')").message("schedule.pollInterval must be at least 30s"))]
    pub poll_interval: String,
    /// How often everyone is compared with every managed entry, catching edits made in the HR
    /// system's UI (which send no webhook), deletions, drift and orphans (default `6h`, at least
    /// `5m`).
    #[serde(default = "default_full_resync_interval")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('5m')").message("schedule.fullResyncInterval must be at least 5m"))]
    pub full_resync_interval: String,
}

fn default_poll_interval() -> String {
    "5m".into()
}

fn default_full_resync_interval() -> String {
    "6h".into()
}

/// What happens to leavers' accounts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.action != 'DisableThenDelete' || has(self.delay)").message("deprovision.delay is required with action DisableThenDelete"))]
pub struct DeprovisionSpec {
    /// `Disable` (default), `Delete`, or `DisableThenDelete` after `delay`.
    #[serde(default)]
    pub action: DeprovisionAction,
    /// How long a disabled account is kept before deletion (DisableThenDelete), e.g. `720h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('0s')").message("deprovision.delay must be a duration such as 720h"))]
    pub delay: Option<String>,
}

/// See [`DeprovisionSpec::action`].
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeprovisionAction {
    #[default]
    Disable,
    Delete,
    DisableThenDelete,
}

/// Adoption: an entry without PeopleSync's anchor that matches a person who has no entry yet is
/// taken over (the anchor is set) instead of creating a second account. A match must be unique
/// both ways; an ambiguous one is reported for the person (`AmbiguousMatch`) and never guessed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AdoptionSpec {
    /// Adopt matching entries (default false: every new person gets a new entry).
    #[serde(default)]
    pub enabled: bool,
    /// Target attributes compared (case-insensitively) with the person's mapped values, in
    /// order; the first attribute with any match decides. Default: `mail` then `uid` (OpenLDAP,
    /// 389-ds), `mail` then `sAMAccountName` (AD), `emails.work` then `userName` (SCIM).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_by: Vec<String>,
}

/// Joiners' accounts, and accounts of people on leave.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleSpec {
    /// `ProvisionDisabled` (default: the account waits, disabled, for the start date) or `Skip`
    /// (no account before the start date).
    #[serde(default)]
    pub future_starters: FutureStartersPolicy,
    /// People on long-term leave (a source that reports it: Personio's LEAVE): `Keep` (default:
    /// their account stays enabled) or `Disable` (disabled until they are back; counted by the
    /// guard like any deprovision).
    #[serde(default)]
    pub on_leave: OnLeavePolicy,
    /// The IANA time zone start and end dates are read in, for people whose work place has
    /// none in `timeZones` (default `UTC`), e.g. `America/Los_Angeles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Work place (its id, or its name ignoring case) → IANA time zone, e.g.
    /// `{"Sydney Office": "Australia/Sydney"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub time_zones: BTreeMap<String, String>,
    /// The local time a joiner's access starts on their first day, `HH:MM` (default `00:00`,
    /// the start of the day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')").message("lifecycle.enableAt must be a local time HH:MM, 00:00 to 23:59"))]
    pub enable_at: Option<String>,
    /// The local time a leaver's access ends on their last day, `HH:MM` (default `24:00`, the
    /// end of the day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$')").message("lifecycle.disableAt must be a local time HH:MM, 00:00 to 24:00"))]
    pub disable_at: Option<String>,
    /// Create a future starter's (disabled) account this many days before their first day, at
    /// the start of that local day (default: as soon as HR lists them; see `futureStarters`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 365").message("lifecycle.provisionBefore must be 0 to 365 days"))]
    pub provision_before: Option<u32>,
}

/// See [`LifecycleSpec::on_leave`].
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnLeavePolicy {
    #[default]
    Keep,
    Disable,
}

/// See [`LifecycleSpec::future_starters`].
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FutureStartersPolicy {
    #[default]
    ProvisionDisabled,
    Skip,
}

/// Mass-deprovision guard thresholds.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GuardSpec {
    /// Hold a cycle that would deprovision more than this many entries (default 10).
    #[serde(default = "default_guard_count")]
    pub max_count: u32,
    /// Hold a cycle that would deprovision more than this percentage of managed entries
    /// (default 5, 0–100).
    #[serde(default = "default_guard_percent")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100").message("guard.maxPercent must be between 0 and 100"))]
    pub max_percent: u32,
}

fn default_guard_count() -> u32 {
    10
}

fn default_guard_percent() -> u32 {
    5
}

/// Include and exclude filters; a person is in scope when every non-empty include list matches
/// and no exclude list does.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScopeSpec {
    /// People must match these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<ScopeFilter>,
    /// People matching these are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<ScopeFilter>,
}

/// One set of filters (values compare case-insensitively with the HR record's labels).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScopeFilter {
    /// Department names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub departments: Vec<String>,
    /// Work place labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub work_places: Vec<String>,
    /// Work type labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub work_types: Vec<String>,
    /// Person statuses, e.g. `active`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<String>,
    /// Work email domains, e.g. `example.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_domains: Vec<String>,
}

/// Webhook registration and rotation (HollyHR: a signing secret; Personio: a token).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    /// Register a webhook in the source for this object and accept its deliveries.
    #[serde(default)]
    pub enabled: bool,
    /// The public https base URL of the operator's receiver (usually an Ingress); deliveries go to
    /// `<publicUrl>/hooks/<namespace>/<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK).message("webhook.publicUrl must be an https:// URL (HollyHR and Personio only deliver to public HTTPS)"))]
    pub public_url: Option<String>,
    /// Event types to subscribe to. Default for HollyHR: person.created/updated/ended/reactivated
    /// and org_unit.created/updated/archived/reactivated; for Personio: person.created/updated/
    /// deleted and employment.created/updated/deleted/terminated/started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// How often the signing secret (HollyHR) or token (Personio) is rotated (default `720h`, at
    /// least `1h`).
    #[serde(default = "default_rotation_interval")]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1h')").message("webhook.rotationInterval must be at least 1h"))]
    pub rotation_interval: String,
    /// Re-enable a disabled webhook (and, for HollyHR, redeliver failed deliveries) once the
    /// receiver is healthy again (default true).
    #[serde(default = "default_true")]
    pub auto_remediate: bool,
}

fn default_rotation_interval() -> String {
    "720h".into()
}

fn default_true() -> bool {
    true
}

/// What the controller observed. Written only by the controller, by server-side apply.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PeopleSyncStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Standard conditions: `Ready`, `SourceReachable`, `DirectoryReachable`, `Synced`,
    /// `WebhookRegistered`, `WebhookHealthy`, `SecretRotated`, `DeprovisionGuard`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Source and target kinds, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<StatusSummary>,
    /// The incremental checkpoint: the largest `updated_at` fully applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// When the last sync cycle finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,
    /// When the next cycle is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_time: Option<Time>,
    /// The earliest lifecycle transition ahead: a person's first day starting or last day
    /// ending, in their time zone (`spec.lifecycle`); a targeted cycle runs then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_transition_time: Option<Time>,
    /// When the last full reconciliation finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_full_sync_time: Option<Time>,
    /// Counts of the last cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<SyncCounts>,
    /// The source's webhook as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookStatusInfo>,
    /// The last plan's summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_plan: Option<PlanSummary>,
    /// People whose last change failed (id and reason, no personal data); retried next cycle.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<PersonFailure>,
    /// What the sync engine carries from one cycle to the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_state: Option<SyncStateStatus>,
}

/// One person whose change failed.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PersonFailure {
    /// The source's person id.
    pub person_id: String,
    /// A CamelCase category, e.g. `SchemaViolation`, `EntryExists`, `MappingFailed`.
    pub reason: String,
}

/// Sync engine state kept between cycles.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncStateStatus {
    /// Person ids re-read by id in the next cycle (their last change failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry: Vec<String>,
    /// When each disabled entry was disabled (RFC 3339), for `DisableThenDelete`: the delay
    /// survives restarts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub disabled_since: BTreeMap<String, String>,
    /// The approval hash already used: an approval releases exactly one plan, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_used: Option<String>,
    /// Who approved that plan (the `peoplesync.dev/approved-by` annotation it was approved with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// A full cycle of this version completed: the entries it owns carry its mark. Until then,
    /// an object that synced under an earlier version (which did not mark) claims the entries
    /// holding its people's ids.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub marked: bool,
    /// People applied just before the checkpoint and the version (`updated_at`, RFC 3339)
    /// applied: the overlap re-reads them and skips the unchanged ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub edge: BTreeMap<String, String>,
}

/// Short labels for printer columns.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StatusSummary {
    /// `HollyHR` or `Personio`.
    pub source: String,
    /// `LDAP (openldap)`, `LDAP (ad)`, `SCIM`.
    pub target: String,
}

/// Counts of a sync cycle.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncCounts {
    /// People the source returned.
    pub people: u64,
    /// People in scope.
    pub in_scope: u64,
    pub created: u64,
    pub updated: u64,
    pub disabled: u64,
    pub deleted: u64,
    /// People whose change failed; retried next cycle.
    pub failed: u64,
    /// Entries adopted or claimed.
    #[serde(default)]
    pub adopted: u64,
    /// Entries in the people subtree holding an anchor value without this object's mark, left
    /// alone (as of the last full cycle).
    #[serde(default)]
    pub unmarked: u64,
}

/// The webhook's registration and health as last read from the source.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebhookStatusInfo {
    /// The source's webhook id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// HollyHR: `active` or `disabled`; Personio: `ENABLED` or `DISABLED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Health: HollyHR's health status (healthy, recovering, failing, inactive, unknown), or for
    /// Personio the one derived from its activity log and the receiver's deliveries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// HollyHR's recommended action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended_action: Option<String>,
    /// Whether HollyHR says someone has to act (failing or disabled endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_required: Option<bool>,
    /// Delivery counts from the health endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<BTreeMap<String, u64>>,
    /// The latest failure, sanitised (status code, error class, time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_failure: Option<String>,
    /// The last delivery the source saw succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,
    /// The last delivery the source saw fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    /// When the health endpoint was last read (at most once a minute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_health_check_time: Option<Time>,
    /// Re-enables of an auto-disabled endpoint since it was last healthy (self-healing backs
    /// off by this count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remediation_attempts: Option<u32>,
    /// The last re-enable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_remediation_time: Option<Time>,
    /// The last four characters of the current signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_last_four: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<Time>,
}

/// Annotate a PeopleSync with this key and a held plan's hash to release that plan's
/// deprovisions once.
pub const APPROVE_DEPROVISION: &str = "peoplesync.dev/approve-deprovision";

/// Set with [`APPROVE_DEPROVISION`]: who approved (the admission policy checks that it is the
/// requesting user); recorded in status and in the Event.
pub const APPROVED_BY: &str = "peoplesync.dev/approved-by";

/// Annotate a PeopleSync with this key and a new value to rotate its webhook signing secret now.
pub const ROTATE_WEBHOOK_SECRET: &str = "peoplesync.dev/rotate-webhook-secret";

/// Annotate a PeopleSync with this key and a new value to run a full cycle now
/// (`kubectl peoplesync sync-now`).
pub const SYNC_NOW: &str = "peoplesync.dev/sync-now";

/// What the last plan would do (no personal data: ids, actions, attribute names).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    /// A hash identifying the plan (used to approve a held deprovision).
    pub hash: String,
    pub creates: u64,
    pub updates: u64,
    pub disables: u64,
    pub deletes: u64,
    /// Entries taken over: adopted by the adoption rules, or claimed after an upgrade.
    #[serde(default)]
    pub adopts: u64,
    /// Entries holding an anchor value without this object's mark that the plan leaves alone
    /// (adoption candidates, or accounts PeopleSync must not touch).
    #[serde(default)]
    pub unmarked: u64,
    /// Entries another PeopleSync object marked, left alone.
    #[serde(default)]
    pub foreign: u64,
    /// Deprovisions held by the guard.
    pub held: u64,
    /// The first changes (dry run), or the first deprovisions the guard holds: person id, action,
    /// names of changed attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<PlannedChange>,
}

/// One planned change, without attribute values (status is readable by many).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlannedChange {
    pub person_id: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<String>,
}

impl PeopleSyncSpec {
    /// The incremental polling interval (default 5m).
    /// How often the webhook signing secret is rotated (default 720h).
    pub fn rotation_interval(&self) -> Result<Duration, duration::InvalidDuration> {
        let raw = self
            .webhook
            .as_ref()
            .map_or("720h", |w| w.rotation_interval.as_str());
        duration::parse(raw)
    }

    pub fn poll_interval(&self) -> Result<Duration, duration::InvalidDuration> {
        let raw = self
            .schedule
            .as_ref()
            .map_or("5m", |s| s.poll_interval.as_str());
        duration::parse(raw)
    }

    /// The full reconciliation interval (default 6h).
    pub fn full_resync_interval(&self) -> Result<Duration, duration::InvalidDuration> {
        let raw = self
            .schedule
            .as_ref()
            .map_or("6h", |s| s.full_resync_interval.as_str());
        duration::parse(raw)
    }

    /// Whether the source's webhooks are managed for this object.
    pub fn webhook_enabled(&self) -> bool {
        self.webhook.as_ref().is_some_and(|w| w.enabled)
    }

    /// The source scopes this spec needs. HollyHR: `people:read` always, `org_units:read` when
    /// groups are managed, `webhooks:manage` when webhooks are enabled. Personio:
    /// `personio:persons:read` (it covers employments and org units); the webhook scopes are
    /// asked for with a token of their own, so a credential without them still syncs.
    pub fn required_scopes(&self) -> Vec<&'static str> {
        if self.source.personio.is_some() {
            return vec!["personio:persons:read"];
        }
        let mut scopes = vec!["people:read"];
        let groups = self
            .target
            .ldap
            .as_ref()
            .is_some_and(|l| l.groups_dn.is_some())
            || self.target.scim.is_some();
        if groups {
            scopes.push("org_units:read");
        }
        if self.webhook_enabled() {
            scopes.push("webhooks:manage");
        }
        scopes
    }

    /// Short labels for `kubectl get` (source and target kinds).
    pub fn summary(&self) -> StatusSummary {
        let target = match (&self.target.ldap, &self.target.scim) {
            (Some(ldap), _) => format!(
                "LDAP ({})",
                match ldap.profile {
                    LdapProfile::OpenLdap => "openldap",
                    LdapProfile::Ds389 => "389ds",
                    LdapProfile::ActiveDirectory => "ad",
                }
            ),
            (None, Some(_)) => "SCIM".to_owned(),
            (None, None) => "none".to_owned(),
        };
        StatusSummary {
            source: self.source.kind().to_owned(),
            target,
        }
    }
}

#[cfg(test)]
impl PeopleSyncSpec {
    /// A valid spec for tests: HollyHR at acme, a SCIM target, defaults elsewhere.
    pub(crate) fn example() -> Self {
        Self {
            source: SourceSpec {
                hollyhr: Some(HollyHrSource {
                    base_url: "https://acme.hollyhr.com/api/v1".into(),
                    api_key_secret_ref: SecretKeyRef {
                        name: "hollyhr".into(),
                        key: "apiKey".into(),
                    },
                    page_size: 100,
                    ca_secret_ref: None,
                }),
                personio: None,
            },
            target: TargetSpec {
                ldap: None,
                scim: Some(ScimTarget {
                    base_url: "https://scim.example.com/v2".into(),
                    token_secret_ref: SecretKeyRef {
                        name: "scim".into(),
                        key: "token".into(),
                    },
                    attributes: BTreeMap::new(),
                    ca_secret_ref: None,
                }),
            },
            schedule: None,
            deprovision: None,
            lifecycle: None,
            adoption: None,
            guard: None,
            scope: None,
            webhook: None,
            dry_run: false,
            suspend: false,
        }
    }
}

/// Attribute templates: at most [`MAX_TEMPLATES`] of them, each at most
/// [`crate::plan::mapping::TEMPLATE_LIMIT`] characters, so the API server refuses a huge
/// template at admission (the planner refuses it again when it reads the spec).
fn templates_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": MAX_TEMPLATES,
        "additionalProperties": {
            "type": "string",
            "maxLength": crate::plan::mapping::TEMPLATE_LIMIT,
        },
    })
}

/// Attribute templates one target may declare.
pub const MAX_TEMPLATES: usize = 128;

/// The CRD as YAML (what `peoplesync crd` prints and `crds/peoplesync.yaml` holds).
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let crd = PeopleSync::crd();
    let mut yaml =
        String::from("# Generated by `peoplesync crd` from src/crd.rs; do not edit by hand.\n");
    yaml.push_str(&serde_yaml_ng::to_string(&crd).expect("the CRD always serializes to YAML"));
    yaml
}

/// The `spec` reference as a Markdown table, from the CRD's own schema and field docs (what the
/// README's "PeopleSync reference" section holds between its markers).
pub fn reference_markdown() -> String {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(PeopleSync::crd()).expect("the CRD serializes");
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut out = String::from("| field | type | default | description |\n|---|---|---|---|\n");
    reference_rows(spec, "spec", &mut out);
    out
}

fn reference_rows(schema: &serde_json::Value, path: &str, out: &mut String) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    for (name, field) in properties {
        let path = format!("{path}.{name}");
        let (kind, inner) = match field["type"].as_str() {
            Some("array") => (
                format!("[]{}", field["items"]["type"].as_str().unwrap_or("object")),
                &field["items"],
            ),
            Some(kind) => (kind.to_owned(), field),
            None => ("object".to_owned(), field),
        };
        let kind = if required.contains(&name.as_str()) {
            format!("{kind} (required)")
        } else {
            kind
        };
        let default = match &field["default"] {
            serde_json::Value::Null => String::new(),
            value => format!("`{value}`"),
        };
        let description = field["description"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|");
        out.push_str(&format!(
            "| `{path}` | {kind} | {default} | {description} |\n"
        ));
        reference_rows(inner, &path, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    const REFERENCE_START: &str = "<!-- crd-reference:start (generated from src/crd.rs; PEOPLESYNC_WRITE_CRD=1 cargo test --lib crd:: rewrites it) -->\n";
    const REFERENCE_END: &str = "<!-- crd-reference:end -->";

    #[test]
    fn the_readme_reference_is_generated_from_the_crd() {
        let readme = std::fs::read_to_string(README).expect("README.md");
        let start = readme
            .find(REFERENCE_START)
            .expect("the README has the reference's start marker")
            + REFERENCE_START.len();
        let end = readme[start..]
            .find(REFERENCE_END)
            .expect("the README has the reference's end marker")
            + start;
        let generated = reference_markdown();
        if std::env::var_os("PEOPLESYNC_WRITE_CRD").is_some() {
            let updated = format!("{}{generated}{}", &readme[..start], &readme[end..]);
            std::fs::write(README, updated).expect("write README.md");
            return;
        }
        assert!(
            readme[start..end] == generated,
            "the README's PeopleSync reference is stale: run `PEOPLESYNC_WRITE_CRD=1 cargo test --lib crd::`"
        );
    }

    #[test]
    fn the_reference_names_nested_fields_with_their_docs() {
        let reference = reference_markdown();
        assert!(reference.contains("| `spec.source.hollyhr.baseUrl` | string"));
        assert!(reference.contains("| `spec.webhook.enabled` |"));
        assert!(
            reference.lines().skip(2).all(|line| line
                .split(" | ")
                .nth(3)
                .is_some_and(|d| !d.trim_end_matches(" |").is_empty())),
            "every field has a description"
        );
    }

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/peoplesync.yaml");

    const CHART_COPY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/charts/peoplesync/files/peoplesync.yaml"
    );

    #[test]
    fn committed_crd_matches_the_rust_types() {
        let generated = crd_yaml();
        if std::env::var_os("PEOPLESYNC_WRITE_CRD").is_some() {
            std::fs::write(COMMITTED, &generated).expect("write crds/peoplesync.yaml");
            // The Helm chart carries a copy (tests/chart.rs checks they are equal).
            std::fs::write(CHART_COPY, &generated)
                .expect("write charts/peoplesync/files/peoplesync.yaml");
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == generated,
            "crds/peoplesync.yaml is stale: run `cargo run -- crd > crds/peoplesync.yaml`"
        );
    }

    #[test]
    fn every_spec_field_is_documented_for_kubectl_explain() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(PeopleSync::crd()).expect("CRD serializes");
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let mut undocumented = Vec::new();
        fn walk(path: &str, node: &serde_json::Value, out: &mut Vec<String>) {
            if let Some(props) = node.get("properties").and_then(|p| p.as_object()) {
                for (name, child) in props {
                    let here = format!("{path}.{name}");
                    if child.get("description").is_none() {
                        out.push(here.clone());
                    }
                    walk(&here, child, out);
                }
            }
        }
        walk("spec", schema, &mut undocumented);
        assert!(
            undocumented.is_empty(),
            "fields without docs: {undocumented:?}"
        );
    }

    #[test]
    fn cel_rules_and_printer_columns_are_in_the_crd() {
        let yaml = crd_yaml();
        for needle in [
            "set exactly one target: target.ldap or target.scim",
            "schedule.pollInterval must be at least 30s",
            "x-kubernetes-validations",
            "shortNames:\n    - psync",
            "name: Last Sync",
        ] {
            assert!(yaml.contains(needle), "CRD lacks {needle:?}");
        }
    }
}
