//! Directory targets behind one narrow seam. A backend lists the entries PeopleSync manages (those
//! carrying the anchor attribute: the HollyHR person id) and applies one change at a time; the
//! planner decides what to change. An entry without the anchor is never modified.

pub mod any;
pub mod fenced;
pub mod ldap;
pub mod memory;
pub mod scim;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use futures::StreamExt;
use futures::stream::BoxStream;

/// Attribute name → values (LDAP attributes are multi-valued; SCIM paths map onto this too).
pub type Attributes = BTreeMap<String, Vec<String>>;

/// A managed entry as the directory holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where it lives: a DN for LDAP, a resource id for SCIM.
    pub id: String,
    /// The HollyHR person id in the anchor attribute.
    pub anchor: String,
    pub attributes: Attributes,
    pub enabled: bool,
}

/// One change to one entry. Every change to an existing entry names the anchor it expects, so a
/// backend can refuse to touch an entry that is not (or no longer) PeopleSync's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new entry for `anchor` with these attributes (the RDN value is among them).
    Create {
        anchor: String,
        attributes: Attributes,
        enabled: bool,
    },
    /// Replace these attributes (empty values remove the attribute); untouched ones stay.
    Update {
        id: String,
        anchor: String,
        set: Attributes,
    },
    /// The RDN value changed (e.g. a new `uid`): move the entry.
    Rename {
        id: String,
        anchor: String,
        new_rdn_value: String,
    },
    Disable {
        id: String,
        anchor: String,
    },
    Enable {
        id: String,
        anchor: String,
    },
    Delete {
        id: String,
        anchor: String,
    },
    /// Sets `anchor` on an entry that has none: PeopleSync takes it over (adoption). Refused
    /// when the entry carries an anchor already.
    Adopt {
        id: String,
        anchor: String,
    },
}

impl Change {
    /// The action's name, for status, metrics and Events (no attribute values).
    pub fn action(&self) -> &'static str {
        match self {
            Change::Create { .. } => "create",
            Change::Update { .. } => "update",
            Change::Rename { .. } => "rename",
            Change::Disable { .. } => "disable",
            Change::Enable { .. } => "enable",
            Change::Delete { .. } => "delete",
            Change::Adopt { .. } => "adopt",
        }
    }

    pub fn anchor(&self) -> &str {
        match self {
            Change::Create { anchor, .. }
            | Change::Update { anchor, .. }
            | Change::Rename { anchor, .. }
            | Change::Disable { anchor, .. }
            | Change::Enable { anchor, .. }
            | Change::Delete { anchor, .. }
            | Change::Adopt { anchor, .. } => anchor,
        }
    }
}

/// A managed group (one per org unit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// A DN for LDAP, a resource id for SCIM.
    pub id: String,
    /// The HollyHR org-unit id in the group anchor attribute.
    pub anchor: String,
    pub name: String,
    /// Member entry ids (DNs for LDAP).
    pub members: BTreeSet<String>,
}

/// One change to one group. As for people, every change to an existing group names its anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    Create {
        anchor: String,
        name: String,
        members: BTreeSet<String>,
    },
    /// Make the membership exactly `members`.
    SetMembers {
        id: String,
        anchor: String,
        members: BTreeSet<String>,
    },
    Rename {
        id: String,
        anchor: String,
        name: String,
    },
    Delete {
        id: String,
        anchor: String,
    },
}

/// How the directory behaves, so the plan can predict which ids change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectoryTraits {
    /// The attribute whose change is a rename (`uid`/`cn` for LDAP, `userName` for SCIM).
    pub rdn_attribute: Option<String>,
    /// A rename changes the entry's id (LDAP: the DN).
    pub rename_changes_id: bool,
    /// Disabling or enabling changes the entry's id (LDAP: moving to and from a disabled OU).
    pub disable_changes_id: bool,
    /// The attribute holding a reference to the manager's entry (`manager`,
    /// `enterprise.manager`); `None` leaves managers out.
    pub manager_attribute: Option<String>,
    /// Groups (one per org unit) are managed.
    pub groups: bool,
    /// The longest group name the directory takes, in characters (AD: `cn` is at most 64);
    /// longer department names are cut.
    pub group_name_max: Option<usize>,
    /// How entries PeopleSync owns are marked (LDAP); `None`: the anchor alone says it.
    pub marking: Option<Marking>,
}

/// How a directory tells PeopleSync's entries from those that merely hold a value in the anchor
/// attribute (a brownfield AD fills `employeeID` from payroll): an owned entry carries the anchor
/// *and* this object's mark. An entry without the mark is never written, never deprovisioned,
/// and its unique values are reserved; adoption (or, on an upgrade, the claim of an entry whose
/// anchor is a source person's id) sets the mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marking {
    /// The anchor attribute (`employeeID`, `employeeNumber`).
    pub anchor_attribute: String,
    /// The multi-valued attribute holding the mark (`businessCategory` by default).
    pub attribute: String,
    /// This object's mark ([`mark_for`]).
    pub mark: String,
}

/// Every mark starts with this; a value with it names some PeopleSync object.
pub const MARK_PREFIX: &str = "peoplesync:";

/// The longest mark: AD's `businessCategory` takes at most 128 characters.
pub const MARK_MAX: usize = 128;

/// The mark of the PeopleSync object `namespace/name`: `peoplesync:<namespace>/<name>`, or,
/// where that would pass [`MARK_MAX`], its start and a hash of the whole (still one per object).
pub fn mark_for(namespace: &str, name: &str) -> String {
    let whole = format!("{MARK_PREFIX}{namespace}/{name}");
    if whole.len() <= MARK_MAX {
        return whole;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(whole.as_bytes());
    let hash = hex::encode(&digest[..8]);
    // ASCII only (namespaces and names are DNS labels), so any byte index is a boundary.
    format!("{}~{hash}", &whole[..MARK_MAX - hash.len() - 1])
}

/// The mark of a bare spec run by `peoplesync sync` (the object `default/peoplesync`); the
/// test fixtures' configurations use it too.
pub fn standalone_mark() -> String {
    mark_for("default", "peoplesync")
}

impl Marking {
    /// Whether the values of the mark attribute hold this object's mark (marks compare as the
    /// attribute does: `businessCategory` ignores case).
    pub fn is_ours(&self, values: Option<&Vec<String>>) -> bool {
        values.is_some_and(|values| values.iter().any(|v| v.eq_ignore_ascii_case(&self.mark)))
    }

    /// Whether they hold another PeopleSync object's mark.
    pub fn is_foreign(&self, values: Option<&Vec<String>>) -> bool {
        values.is_some_and(|values| {
            values.iter().any(|v| {
                v.get(..MARK_PREFIX.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(MARK_PREFIX))
                    && !v.eq_ignore_ascii_case(&self.mark)
            })
        })
    }

    /// What an entry this directory does not count as PeopleSync's is to this object.
    pub fn classify(&self, attributes: &Attributes) -> Unowned {
        let find = |name: &str| {
            attributes
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        if self.is_foreign(find(&self.attribute)) {
            return Unowned::Foreign;
        }
        match find(&self.anchor_attribute).and_then(|v| v.first()) {
            Some(value) if !value.is_empty() => Unowned::Unmarked(value.clone()),
            _ => Unowned::Plain,
        }
    }
}

/// An entry where PeopleSync keeps people that is not this object's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unowned {
    /// No anchor value: an ordinary account (adoptable by the adoption rules).
    Plain,
    /// An anchor value without the mark (a brownfield `employeeID`, or an entry an earlier
    /// version created): adoptable, and claimed on an upgrade when the value is a person's id.
    Unmarked(String),
    /// Marked by another PeopleSync object: never adopted.
    Foreign,
}

/// A backend's error: a static category (condition reason, metric label) and whether it concerns
/// only this person (recorded for the person; the rest continue) or the whole directory.
pub trait DirectoryError: std::error::Error + Send + Sync + 'static {
    fn reason(&self) -> &'static str;
    fn is_per_entry(&self) -> bool;
}

/// A directory PeopleSync writes to.
pub trait Directory: Send + Sync {
    type Error: DirectoryError;

    /// How this directory names, moves and references entries (what the planner must predict).
    fn traits(&self) -> DirectoryTraits;

    /// Checks the connection and credentials (`DirectoryReachable`); reconnects when needed.
    fn check(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Every managed entry, paged from the server, one page in memory at a time.
    fn entries(&self) -> BoxStream<'_, Result<Entry, Self::Error>>;

    /// Applies one change; returns the entry's id (new for creates and renames).
    fn apply(&self, change: &Change) -> impl Future<Output = Result<String, Self::Error>> + Send;

    /// Entries PeopleSync does not own (no anchor) where it keeps people, with their attributes
    /// (`anchor` empty). Their unique values are never given to anyone else, and with adoption on
    /// they can be matched to a person and adopted.
    fn unowned(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        futures::stream::empty().boxed()
    }

    /// Every entry where PeopleSync keeps people in one pass: managed ones and unowned ones
    /// (empty anchor). Backends that can list both at once override it.
    fn everyone(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        self.entries().chain(self.unowned()).boxed()
    }

    /// Entries outside where PeopleSync keeps people that hold values unique across the whole
    /// directory (Active Directory: `sAMAccountName` and `userPrincipalName` are unique in the
    /// domain), carrying only those attributes. Their values are reserved like an unowned
    /// entry's, but they are never adopted. Empty where uniqueness stops at the OU.
    fn elsewhere(&self) -> BoxStream<'_, Result<Entry, Self::Error>> {
        futures::stream::empty().boxed()
    }

    /// Every managed group (empty when groups are not managed).
    fn groups(&self) -> BoxStream<'_, Result<Group, Self::Error>>;

    /// Applies one group change; returns the group's id.
    fn apply_group(
        &self,
        change: &GroupChange,
    ) -> impl Future<Output = Result<String, Self::Error>> + Send;
}
