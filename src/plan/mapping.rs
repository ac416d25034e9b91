//! Attribute mapping: minijinja templates over a person's safe fields → directory attributes,
//! with sensible defaults per target profile. Pure: templates are compiled once; rendering takes
//! a person and returns values or an error naming the attribute and its template.
//!
//! Unique attributes (`uid`, `sAMAccountName`, SCIM `userName`) have an ordered list of candidate
//! templates; `{{ n }}` is 2, 3, … in the numbered ones. The first free value wins, and a value
//! already assigned to the entry stays while it is still one of the person's candidates (it never
//! flips because an earlier candidate became free); after a name change it is recomputed.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::crd::LdapProfile;
use crate::source::hollyhr::model::Person;

mod fast;

/// How many numbered candidates are tried before a unique attribute gives up.
const MAX_NUMBERED: u32 = 99;
/// AD's `sAMAccountName` limit.
pub const SAM_ACCOUNT_NAME_MAX: usize = 20;
/// AD's `cn` limit (the RDN of its accounts).
pub const AD_CN_MAX: usize = crate::directory::ldap::AD_CN_MAX;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("attribute {attribute}: template {template:?} does not compile: {message}")]
    Compile {
        attribute: String,
        template: String,
        message: String,
    },
    #[error("attribute {attribute}: template {template:?} failed to render: {message}")]
    Render {
        attribute: String,
        template: String,
        message: String,
    },
    #[error("attribute {attribute} is required but template {template:?} rendered empty")]
    EmptyRequired { attribute: String, template: String },
    #[error("attribute {attribute}: every candidate value is taken")]
    NoFreeValue { attribute: String },
}

/// The longest template a mapping accepts (characters): attribute templates are one-liners; a
/// megabyte of template is a mistake or an attack, refused when the spec is read.
pub const TEMPLATE_LIMIT: usize = 4096;
/// The instructions one render may run (minijinja's fuel): a loop that never ends, or one over
/// millions of items, stops with a render error for that person instead of holding a worker.
pub const TEMPLATE_FUEL: u64 = 50_000;

/// A template as errors show it: at most 120 characters (a condition message stays readable
/// and small, whatever was written).
fn shown(template: &str) -> String {
    match template.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &template[..at]),
        None => template.to_owned(),
    }
}

/// The fields a template can use: the safe projection only, flattened for templates.
#[derive(Debug, Clone, Serialize, Default, PartialEq, Eq)]
pub struct TemplateFields {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub preferred_name: String,
    /// The preferred name, else the first name.
    pub given_name: String,
    pub display_name: String,
    pub work_email: String,
    pub staff_id: String,
    pub job_title: String,
    pub department: String,
    pub department_id: String,
    pub manager_id: String,
    pub work_place: String,
    pub work_type: String,
    pub status: String,
}

impl TemplateFields {
    /// A field by its template name.
    fn get(&self, name: &str) -> Option<&str> {
        Some(match name {
            "id" => &self.id,
            "first_name" => &self.first_name,
            "last_name" => &self.last_name,
            "preferred_name" => &self.preferred_name,
            "given_name" => &self.given_name,
            "display_name" => &self.display_name,
            "work_email" => &self.work_email,
            "staff_id" => &self.staff_id,
            "job_title" => &self.job_title,
            "department" => &self.department,
            "department_id" => &self.department_id,
            "manager_id" => &self.manager_id,
            "work_place" => &self.work_place,
            "work_type" => &self.work_type,
            "status" => &self.status,
            _ => return None,
        })
    }

    pub fn of(person: &Person) -> Self {
        let text = |value: &Option<String>| value.clone().unwrap_or_default();
        Self {
            id: person.id.clone(),
            first_name: text(&person.first_name),
            last_name: text(&person.last_name),
            preferred_name: text(&person.preferred_name),
            given_name: person
                .preferred_name
                .clone()
                .or_else(|| person.first_name.clone())
                .unwrap_or_default(),
            display_name: person.display_name.clone(),
            work_email: text(&person.work_email),
            staff_id: text(&person.staff_id),
            job_title: text(&person.job_title),
            department: person
                .department
                .as_ref()
                .map(|d| d.name.clone())
                .unwrap_or_default(),
            department_id: person
                .department
                .as_ref()
                .map(|d| d.id.clone())
                .unwrap_or_default(),
            manager_id: person
                .manager
                .as_ref()
                .map(|m| m.id.clone())
                .unwrap_or_default(),
            work_place: person
                .work_place
                .as_ref()
                .map(|w| w.label.clone())
                .unwrap_or_default(),
            work_type: person
                .work_type
                .as_ref()
                .map(|w| w.label.clone())
                .unwrap_or_default(),
            status: text(&person.status),
        }
    }
}

/// One attribute's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeRule {
    /// Candidate templates in order; a single template for ordinary attributes.
    pub templates: Vec<String>,
    /// Must render non-empty (an empty optional attribute is simply absent).
    pub required: bool,
    /// Must not collide with another entry's value (candidates are tried in order).
    pub unique: bool,
    /// Truncate the rendered value to this many characters (e.g. `sAMAccountName`).
    pub max_chars: Option<usize>,
}

impl AttributeRule {
    fn plain(template: &str) -> Self {
        Self {
            templates: vec![template.to_owned()],
            required: false,
            unique: false,
            max_chars: None,
        }
    }

    fn required(template: &str) -> Self {
        Self {
            required: true,
            ..Self::plain(template)
        }
    }

    /// Cut to `max` characters (a directory's `rangeUpper`).
    fn at_most(self, max: usize) -> Self {
        Self {
            max_chars: Some(max),
            ..self
        }
    }

    fn unique(candidates: &[&str], max_chars: Option<usize>) -> Self {
        Self {
            templates: candidates.iter().map(|t| (*t).to_owned()).collect(),
            required: true,
            unique: true,
            max_chars,
        }
    }
}

/// The default rules of a target profile.
pub fn profile_defaults(profile: Profile) -> BTreeMap<String, AttributeRule> {
    let rules: Vec<(&str, AttributeRule)> = match profile {
        Profile::Ldap(LdapProfile::OpenLdap | LdapProfile::Ds389) => vec![
            (
                "uid",
                AttributeRule::unique(
                    &[
                        "{{ given_name|ascii|lower }}.{{ last_name|ascii|lower }}",
                        "{{ given_name|ascii|lower }}.{{ last_name|ascii|lower }}{{ n }}",
                        // Names without a Latin letter or digit (李 小龍, Ωμέγα): the id.
                        "{{ id|ascii|lower }}",
                    ],
                    None,
                ),
            ),
            ("cn", AttributeRule::required("{{ display_name }}")),
            (
                "sn",
                AttributeRule::required("{{ last_name or display_name }}"),
            ),
            ("givenName", AttributeRule::plain("{{ given_name }}")),
            ("displayName", AttributeRule::plain("{{ display_name }}")),
            ("mail", AttributeRule::plain("{{ work_email }}")),
            ("title", AttributeRule::plain("{{ job_title }}")),
            ("employeeNumber", AttributeRule::required("{{ id }}")),
            ("departmentNumber", AttributeRule::plain("{{ department }}")),
            ("ou", AttributeRule::plain("{{ department }}")),
        ],
        Profile::Ldap(LdapProfile::ActiveDirectory) => vec![
            (
                "sAMAccountName",
                AttributeRule::unique(
                    &[
                        "{{ given_name|ascii|lower|initial }}{{ last_name|ascii|lower }}",
                        "{{ given_name|ascii|lower|initial }}{{ last_name|ascii|lower|truncate_chars(17) }}{{ n }}",
                        "{{ id|ascii|lower }}",
                    ],
                    Some(SAM_ACCOUNT_NAME_MAX),
                ),
            ),
            // The RDN: unique in its OU (two people of the same name get a numbered one).
            (
                "cn",
                AttributeRule::unique(
                    &[
                        "{{ display_name }}",
                        "{{ display_name|truncate_chars(61) }} {{ n }}",
                    ],
                    Some(AD_CN_MAX),
                ),
            ),
            // AD's `rangeUpper`s: a longer value is refused (constraint violation).
            (
                "sn",
                AttributeRule::required("{{ last_name or display_name }}").at_most(64),
            ),
            (
                "givenName",
                AttributeRule::plain("{{ given_name }}").at_most(64),
            ),
            (
                "displayName",
                AttributeRule::plain("{{ display_name }}").at_most(256),
            ),
            ("mail", AttributeRule::plain("{{ work_email }}")),
            // Unique in the domain, like sAMAccountName; an e-mail another account holds as
            // its UPN gives way to one made of the person's id.
            (
                "userPrincipalName",
                AttributeRule::unique(
                    &[
                        "{{ work_email or (id ~ '@peoplesync.invalid') }}",
                        "{{ id }}@peoplesync.invalid",
                    ],
                    None,
                ),
            ),
            (
                "title",
                AttributeRule::plain("{{ job_title }}").at_most(128),
            ),
            (
                "department",
                AttributeRule::plain("{{ department }}").at_most(64),
            ),
            ("employeeID", AttributeRule::required("{{ id }}")),
        ],
        Profile::Scim => vec![
            (
                "userName",
                AttributeRule::unique(&["{{ work_email or id }}"], None),
            ),
            ("externalId", AttributeRule::required("{{ id }}")),
            ("name.givenName", AttributeRule::plain("{{ given_name }}")),
            ("name.familyName", AttributeRule::plain("{{ last_name }}")),
            ("displayName", AttributeRule::plain("{{ display_name }}")),
            ("emails.work", AttributeRule::plain("{{ work_email }}")),
            ("title", AttributeRule::plain("{{ job_title }}")),
            (
                "enterprise.employeeNumber",
                AttributeRule::plain("{{ staff_id or id }}"),
            ),
            (
                "enterprise.department",
                AttributeRule::plain("{{ department }}"),
            ),
        ],
    };
    rules
        .into_iter()
        .map(|(name, rule)| (name.to_owned(), rule))
        .collect()
}

/// Which defaults apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Ldap(LdapProfile),
    Scim,
}

/// A compiled mapping: the profile's defaults with the user's templates merged over them.
pub struct Mapping {
    env: Environment<'static>,
    rules: BTreeMap<String, AttributeRule>,
    /// Templates of the shape [`fast`] evaluates without the engine, by (attribute, index): all
    /// the defaults are (a full cycle maps every person).
    fast: BTreeMap<String, Vec<Option<fast::Compiled>>>,
}

/// One person's template inputs: the fields, and their minijinja value built on first use.
struct Context {
    fields: std::sync::Arc<TemplateFields>,
}

/// The names a template can use: every field, and `n` for numbered candidates.
const CONTEXT_NAMES: [&str; 16] = [
    "id",
    "first_name",
    "last_name",
    "preferred_name",
    "given_name",
    "display_name",
    "work_email",
    "staff_id",
    "job_title",
    "department",
    "department_id",
    "manager_id",
    "work_place",
    "work_type",
    "status",
    "n",
];

/// One render's context: the person's fields, looked up as the template asks for them (no map
/// is built per render), and `n`.
#[derive(Debug)]
struct RenderContext {
    fields: std::sync::Arc<TemplateFields>,
    n: Option<u32>,
}

impl minijinja::value::Object for RenderContext {
    fn get_value(self: &std::sync::Arc<Self>, key: &minijinja::Value) -> Option<minijinja::Value> {
        match key.as_str()? {
            "n" => Some(minijinja::Value::from(
                self.n.map(|n| n.to_string()).unwrap_or_default(),
            )),
            name => self.fields.get(name).map(minijinja::Value::from),
        }
    }

    fn enumerate(self: &std::sync::Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Str(&CONTEXT_NAMES)
    }
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field("rules", &self.rules)
            .finish()
    }
}

/// What a person maps to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mapped {
    /// Attribute → values (absent when a template rendered empty for an optional attribute).
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// One attribute's rule as `map` hands it to the renders (looked up once per attribute, not
/// once per render).
struct RuleRef<'a> {
    attribute: &'a str,
    rule: &'a AttributeRule,
    fast: &'a [Option<fast::Compiled>],
}

/// A rendered value as stored: without control characters (a NUL, a line break or a tab in a
/// name is never meant, and Samba AD compares names only up to a NUL), trimmed, cut to `max`
/// characters (reusing the string when it needs none of it).
fn finish(rendered: String, max: Option<usize>) -> String {
    let rendered = if rendered.contains(char::is_control) {
        rendered.chars().filter(|c| !c.is_control()).collect()
    } else {
        rendered
    };
    let trimmed = rendered.trim();
    match max {
        Some(max) if trimmed.chars().nth(max).is_some() => {
            let cut: String = trimmed.chars().take(max).collect();
            cut.trim_end().to_owned()
        }
        _ if trimmed.len() == rendered.len() => rendered,
        _ => trimmed.to_owned(),
    }
}

fn template_name(attribute: &str, index: usize) -> String {
    format!("{attribute}#{index}")
}

impl Mapping {
    /// Compiles the profile's defaults with `overrides` (`attribute → template`) on top. An empty
    /// override template removes a default optional attribute.
    pub fn new(
        profile: Profile,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, MappingError> {
        let mut rules = profile_defaults(profile);
        for (attribute, template) in overrides {
            match rules.get_mut(attribute) {
                Some(rule) if template.trim().is_empty() && !rule.required => {
                    rules.remove(attribute);
                }
                Some(rule) => rule.templates = vec![template.clone()],
                None if template.trim().is_empty() => {}
                None => {
                    rules.insert(attribute.clone(), AttributeRule::plain(template));
                }
            }
        }
        for (attribute, rule) in &rules {
            if let Some(template) = rule
                .templates
                .iter()
                .find(|t| t.chars().count() > TEMPLATE_LIMIT)
            {
                return Err(MappingError::Compile {
                    attribute: attribute.clone(),
                    template: shown(template),
                    message: format!("longer than {TEMPLATE_LIMIT} characters"),
                });
            }
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.add_filter("ascii", ascii);
        env.add_filter("initial", initial);
        env.add_filter("truncate_chars", truncate_chars);
        for (attribute, rule) in &rules {
            for (index, template) in rule.templates.iter().enumerate() {
                env.add_template_owned(template_name(attribute, index), template.clone())
                    .map_err(|error| MappingError::Compile {
                        attribute: attribute.clone(),
                        template: shown(template),
                        message: error.to_string(),
                    })?;
            }
        }
        let fast = rules
            .iter()
            .map(|(attribute, rule)| {
                let compiled = rule.templates.iter().map(|t| fast::compile(t)).collect();
                (attribute.clone(), compiled)
            })
            .collect();
        Ok(Self { env, rules, fast })
    }

    pub fn rules(&self) -> &BTreeMap<String, AttributeRule> {
        &self.rules
    }

    fn render(
        &self,
        rule: &RuleRef<'_>,
        index: usize,
        fields: &Context,
        n: Option<u32>,
    ) -> Result<String, MappingError> {
        let fast = rule
            .fast
            .get(index)
            .and_then(Option::as_ref)
            .and_then(|compiled| compiled.render(&fields.fields, n));
        if let Some(rendered) = fast {
            return Ok(finish(rendered, rule.rule.max_chars));
        }
        let template = self
            .env
            .get_template(&template_name(rule.attribute, index))
            .expect("every rule's templates were added at construction");
        let context = minijinja::Value::from_object(RenderContext {
            fields: fields.fields.clone(),
            n,
        });
        let rendered = template
            .render(context)
            .map_err(|error| MappingError::Render {
                attribute: rule.attribute.to_owned(),
                template: shown(&rule.rule.templates[index]),
                message: error.to_string(),
            })?;
        Ok(finish(rendered, rule.rule.max_chars))
    }

    /// Maps one person. `current` holds the entry's present values (a unique value it already has
    /// stays); `taken` says whether a unique attribute's value belongs to another entry.
    pub fn map(
        &self,
        person: &Person,
        current: Option<&BTreeMap<String, Vec<String>>>,
        taken: &dyn Fn(&str, &str) -> bool,
    ) -> Result<Mapped, MappingError> {
        let fields = Context {
            fields: std::sync::Arc::new(TemplateFields::of(person)),
        };
        let mut mapped = Mapped::default();
        // Both maps have the same keys, so they iterate in step.
        for ((attribute, rule), fast) in self.rules.iter().zip(self.fast.values()) {
            let rule_ref = RuleRef {
                attribute,
                rule,
                fast,
            };
            let value = if rule.unique {
                let current = current
                    .and_then(|c| {
                        c.iter()
                            .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
                            .map(|(_, values)| values)
                    })
                    .and_then(|values| values.first())
                    .filter(|v| !v.is_empty());
                match current {
                    Some(value) if self.is_candidate(&rule_ref, &fields, value)? => value.clone(),
                    _ => self.first_free(&rule_ref, &fields, taken)?,
                }
            } else {
                self.render(&rule_ref, 0, &fields, None)?
            };
            if value.is_empty() {
                if rule.required {
                    return Err(MappingError::EmptyRequired {
                        attribute: attribute.clone(),
                        template: rule.templates[0].clone(),
                    });
                }
                continue;
            }
            mapped.attributes.insert(attribute.clone(), vec![value]);
        }
        Ok(mapped)
    }

    /// Whether `value` is still one of the person's candidates (so it stays, even when an
    /// earlier candidate has become free). A name change makes it stale: the value is recomputed,
    /// and the entry renamed. Numbered candidates are checked with the value's own trailing number,
    /// so this costs one render per template.
    fn is_candidate(
        &self,
        rule_ref: &RuleRef<'_>,
        fields: &Context,
        value: &str,
    ) -> Result<bool, MappingError> {
        let rule = rule_ref.rule;
        for index in 0..rule.templates.len() {
            let numbered = is_numbered(&rule.templates[index]);
            let n = if numbered {
                let digits =
                    value.len() - value.trim_end_matches(|c: char| c.is_ascii_digit()).len();
                match value[value.len() - digits..].parse::<u32>() {
                    Ok(n) if (2..=MAX_NUMBERED).contains(&n) => Some(n),
                    _ => continue,
                }
            } else {
                None
            };
            if self.render(rule_ref, index, fields, n)? == value {
                return Ok(meaningful(value, numbered) || !self.any_meaningful(rule_ref, fields)?);
            }
        }
        Ok(false)
    }

    /// Whether any of the rule's templates gives a [`meaningful`] value for this person.
    fn any_meaningful(
        &self,
        rule_ref: &RuleRef<'_>,
        fields: &Context,
    ) -> Result<bool, MappingError> {
        for (index, template) in rule_ref.rule.templates.iter().enumerate() {
            let numbered = is_numbered(template);
            let value = self.render(rule_ref, index, fields, numbered.then_some(2))?;
            if meaningful(&value, numbered) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The first free candidate, skipping those that are not [`meaningful`] unless none is.
    fn first_free(
        &self,
        rule_ref: &RuleRef<'_>,
        fields: &Context,
        taken: &dyn Fn(&str, &str) -> bool,
    ) -> Result<String, MappingError> {
        let any_meaningful = self.any_meaningful(rule_ref, fields)?;
        let (attribute, rule) = (rule_ref.attribute, rule_ref.rule);
        for index in 0..rule.templates.len() {
            let numbered = is_numbered(&rule.templates[index]);
            let numbers: Box<dyn Iterator<Item = Option<u32>>> = if numbered {
                Box::new((2..=MAX_NUMBERED).map(Some))
            } else {
                Box::new(std::iter::once(None))
            };
            for n in numbers {
                let value = self.render(rule_ref, index, fields, n)?;
                if any_meaningful && !meaningful(&value, numbered) {
                    // Every number gives the same base: on to the next template.
                    break;
                }
                if value.is_empty() {
                    return Err(MappingError::EmptyRequired {
                        attribute: attribute.to_owned(),
                        template: rule.templates[index].clone(),
                    });
                }
                if !taken(attribute, &value) {
                    return Ok(value);
                }
            }
        }
        Err(MappingError::NoFreeValue {
            attribute: attribute.to_owned(),
        })
    }
}

/// Letters and digits of a name, transliterating common Latin accents, dropping the rest
/// (`O'Neill` → `ONeill`, `Müller` → `Muller`).
fn is_numbered(template: &str) -> bool {
    template.contains("{{ n }}") || template.contains("{{n}}")
}

fn ascii(value: String) -> String {
    value
        .chars()
        .filter_map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' => Some(c),
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' => Some('a'),
            'À' | 'Á' | 'Â' | 'Ä' | 'Ã' | 'Å' => Some('A'),
            'è' | 'é' | 'ê' | 'ë' => Some('e'),
            'È' | 'É' | 'Ê' | 'Ë' => Some('E'),
            'ì' | 'í' | 'î' | 'ï' => Some('i'),
            'ò' | 'ó' | 'ô' | 'ö' | 'õ' | 'ø' => Some('o'),
            'Ò' | 'Ó' | 'Ô' | 'Ö' | 'Õ' | 'Ø' => Some('O'),
            'ù' | 'ú' | 'û' | 'ü' => Some('u'),
            'Ù' | 'Ú' | 'Û' | 'Ü' => Some('U'),
            'ñ' => Some('n'),
            'Ñ' => Some('N'),
            'ç' => Some('c'),
            'Ç' => Some('C'),
            'ß' => Some('s'),
            _ => None,
        })
        .collect()
}

/// The first character, or nothing (minijinja's `first` refuses an empty string).
fn initial(value: String) -> String {
    value.chars().next().map(String::from).unwrap_or_default()
}

/// Whether a unique candidate says something of the person: a letter or a digit besides the
/// number of a numbered template. `.` (from `{{ given }}.{{ last }}` of a name without a Latin
/// letter) or `2` is skipped while another template gives a value that does.
fn meaningful(value: &str, numbered: bool) -> bool {
    let base = if numbered {
        value.trim_end_matches(|c: char| c.is_ascii_digit())
    } else {
        value
    };
    base.chars().any(char::is_alphanumeric)
}

fn truncate_chars(value: String, max: usize) -> String {
    value.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(first: &str, last: &str) -> Person {
        serde_json::from_value(serde_json::json!({
            "id": "abcdefghjkmn", "work_email": format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase()),
            "first_name": first, "preferred_name": null, "last_name": last,
            "display_name": format!("{first} {last}"), "staff_id": "E00001", "job_title": "Engineer",
            "department": {"id": "org_unit_a.b.c", "name": "Engineering"}, "manager": null,
            "work_place": null, "work_type": null, "working_pattern": null,
            "contracted_weekly_minutes": null, "full_time_weekly_minutes": null, "fte": null,
            "status": "active", "start_date": "2020-01-01", "end_date": null,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
        }))
        .expect("a person")
    }

    fn nothing_taken(_: &str, _: &str) -> bool {
        false
    }

    #[test]
    fn inet_org_person_defaults_map_the_safe_fields() {
        let mapping =
            Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &BTreeMap::new()).expect("compiles");
        let mapped = mapping
            .map(&person("Zoë", "O'Neill"), None, &nothing_taken)
            .expect("maps");
        let get = |a: &str| mapped.attributes.get(a).map(|v| v[0].as_str());
        assert_eq!(get("uid"), Some("zoe.oneill"));
        assert_eq!(get("cn"), Some("Zoë O'Neill"));
        assert_eq!(get("sn"), Some("O'Neill"));
        assert_eq!(get("employeeNumber"), Some("abcdefghjkmn"));
        assert_eq!(get("mail"), Some("zoë.o'neill@example.com"));
        assert_eq!(get("title"), Some("Engineer"));
        assert_eq!(get("departmentNumber"), Some("Engineering"));
    }

    #[test]
    fn unique_values_take_the_first_free_candidate_and_keep_an_assigned_one() {
        let mapping =
            Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &BTreeMap::new()).expect("compiles");
        let taken = |attribute: &str, value: &str| {
            attribute == "uid" && ["ada.lovelace", "ada.lovelace2"].contains(&value)
        };
        let mapped = mapping
            .map(&person("Ada", "Lovelace"), None, &taken)
            .expect("maps");
        assert_eq!(mapped.attributes["uid"], ["ada.lovelace3"]);
        let current = BTreeMap::from([("uid".to_owned(), vec!["ada.lovelace".to_owned()])]);
        let kept = mapping
            .map(&person("Ada", "Lovelace"), Some(&current), &taken)
            .expect("maps");
        assert_eq!(
            kept.attributes["uid"],
            ["ada.lovelace"],
            "an assigned value stays"
        );
        let numbered = BTreeMap::from([("uid".to_owned(), vec!["ada.lovelace7".to_owned()])]);
        let nothing = |_: &str, _: &str| false;
        let kept = mapping
            .map(&person("Ada", "Lovelace"), Some(&numbered), &nothing)
            .expect("maps");
        assert_eq!(
            kept.attributes["uid"],
            ["ada.lovelace7"],
            "a numbered value stays even when the plain one is free"
        );
        let renamed = mapping
            .map(&person("Ada", "King"), Some(&current), &taken)
            .expect("maps");
        assert_eq!(
            renamed.attributes["uid"],
            ["ada.king"],
            "a value that is no longer a candidate (the name changed) is recomputed"
        );
    }

    #[test]
    fn names_without_a_latin_letter_take_the_id_and_punctuation_stays_where_nothing_else_would() {
        let ldap =
            Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &BTreeMap::new()).expect("compiles");
        let ad = Mapping::new(
            Profile::Ldap(LdapProfile::ActiveDirectory),
            &BTreeMap::new(),
        )
        .expect("compiles");
        let get = |mapping: &Mapping,
                   person: &Person,
                   current: Option<&BTreeMap<String, Vec<String>>>,
                   name: &str| {
            mapping
                .map(person, current, &nothing_taken)
                .expect("maps")
                .attributes[name][0]
                .clone()
        };
        for (first, last) in [("李", "小龍"), ("*", "*"), ("Ωμέγα", "(")] {
            let someone = person(first, last);
            assert_eq!(
                get(&ldap, &someone, None, "uid"),
                someone.id,
                "{first} {last}"
            );
            assert_eq!(
                get(&ad, &someone, None, "sAMAccountName"),
                someone.id,
                "{first} {last}"
            );
            // An entry that got `.` before keeps it no longer.
            let dotted = BTreeMap::from([("uid".to_owned(), vec![".".to_owned()])]);
            assert_eq!(get(&ldap, &someone, Some(&dotted), "uid"), someone.id);
        }
        // A Latin last name is enough; `first` of an empty given name no longer fails.
        assert_eq!(
            get(&ad, &person("李", "Smith"), None, "sAMAccountName"),
            "smith"
        );
        assert_eq!(get(&ldap, &person("李", "Smith"), None, "uid"), ".smith");
        // Nothing meaningful at all: the first candidate, as before.
        assert_eq!(get(&ad, &person("*", "*"), None, "cn"), "* *");
        let mut hostile = person("*", "*");
        hostile.id = "*".to_owned();
        assert_eq!(get(&ldap, &hostile, None, "uid"), ".");
        assert!(
            matches!(
                ad.map(&hostile, None, &nothing_taken),
                Err(MappingError::EmptyRequired { ref attribute, .. }) if attribute == "sAMAccountName"
            ),
            "an account name needs a Latin letter or digit somewhere"
        );
    }

    #[test]
    fn ad_account_names_fit_in_twenty_characters() {
        let mapping = Mapping::new(
            Profile::Ldap(LdapProfile::ActiveDirectory),
            &BTreeMap::new(),
        )
        .expect("compiles");
        let long = person("Maximilian", "Wolfeschlegelsteinhausen");
        let mapped = mapping.map(&long, None, &nothing_taken).expect("maps");
        let sam = &mapped.attributes["sAMAccountName"][0];
        assert_eq!(sam, "mwolfeschlegelsteinh");
        assert!(sam.chars().count() <= SAM_ACCOUNT_NAME_MAX);
        let taken = |attribute: &str, value: &str| attribute == "sAMAccountName" && value == sam;
        let second = mapping.map(&long, None, &taken).expect("maps");
        let numbered = &second.attributes["sAMAccountName"][0];
        assert_eq!(numbered, "mwolfeschlegelstei2");
        assert!(numbered.chars().count() <= SAM_ACCOUNT_NAME_MAX);
        assert_eq!(mapped.attributes["employeeID"], ["abcdefghjkmn"]);
    }

    #[test]
    fn overrides_replace_add_and_remove_attributes() {
        let overrides = BTreeMap::from([
            ("title".to_owned(), "{{ job_title|upper }}".to_owned()),
            (
                "description".to_owned(),
                "{{ work_place or 'unknown' }}".to_owned(),
            ),
            ("ou".to_owned(), String::new()),
        ]);
        let mapping =
            Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &overrides).expect("compiles");
        let mapped = mapping
            .map(&person("Ada", "Lovelace"), None, &nothing_taken)
            .expect("maps");
        assert_eq!(mapped.attributes["title"], ["ENGINEER"]);
        assert_eq!(mapped.attributes["description"], ["unknown"]);
        assert!(!mapped.attributes.contains_key("ou"));
    }

    #[test]
    fn a_megabyte_template_is_refused_and_a_runaway_one_runs_out_of_fuel() {
        let huge = format!("{{{{ job_title }}}}{}", "x".repeat(1024 * 1024));
        let overrides = BTreeMap::from([("title".to_owned(), huge)]);
        let error =
            Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &overrides).expect_err("too long");
        let text = error.to_string();
        assert!(
            text.contains("longer than 4096 characters"),
            "{}",
            &text[..200]
        );
        assert!(
            text.len() < 400,
            "the message stays small: {} bytes",
            text.len()
        );

        // Loops that would run for ever (or a billion times) stop at the fuel limit.
        let overrides = BTreeMap::from([(
            "description".to_owned(),
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x"
                .to_owned(),
        )]);
        let mapping =
            Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &overrides).expect("compiles");
        let started = std::time::Instant::now();
        let error = mapping
            .map(&person("Ada", "Lovelace"), None, &nothing_taken)
            .expect_err("out of fuel");
        assert!(
            matches!(&error, MappingError::Render { attribute, .. } if attribute == "description"),
            "{error}"
        );
        assert!(error.to_string().contains("fuel"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn a_template_that_does_not_compile_names_the_attribute_and_template() {
        let overrides = BTreeMap::from([("title".to_owned(), "{{ job_title".to_owned())]);
        let error = Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &overrides)
            .expect_err("bad template");
        let text = error.to_string();
        assert!(
            text.contains("attribute title") && text.contains("{{ job_title"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_field_or_an_empty_required_value_is_a_clear_error() {
        let overrides = BTreeMap::from([("title".to_owned(), "{{ salary }}".to_owned())]);
        let mapping =
            Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &overrides).expect("compiles");
        let error = mapping
            .map(&person("Ada", "Lovelace"), None, &nothing_taken)
            .expect_err("unknown field");
        assert!(
            matches!(&error, MappingError::Render { attribute, .. } if attribute == "title"),
            "{error}"
        );
        let overrides = BTreeMap::from([(
            "cn".to_owned(),
            "{{ job_title|replace('Engineer', '') }}".to_owned(),
        )]);
        let mapping =
            Mapping::new(Profile::Ldap(LdapProfile::OpenLdap), &overrides).expect("compiles");
        let error = mapping
            .map(&person("Ada", "Lovelace"), None, &nothing_taken)
            .expect_err("empty cn");
        assert_eq!(
            error.to_string(),
            "attribute cn is required but template \"{{ job_title|replace('Engineer', '') }}\" rendered empty"
        );
    }

    #[test]
    fn scim_defaults_use_the_work_email_as_user_name() {
        let mapping = Mapping::new(Profile::Scim, &BTreeMap::new()).expect("compiles");
        let mapped = mapping
            .map(&person("Ada", "Lovelace"), None, &nothing_taken)
            .expect("maps");
        assert_eq!(mapped.attributes["userName"], ["ada.lovelace@example.com"]);
        assert_eq!(mapped.attributes["externalId"], ["abcdefghjkmn"]);
        assert_eq!(mapped.attributes["enterprise.department"], ["Engineering"]);
    }

    #[test]
    fn rendered_values_are_trimmed_and_cut_to_their_maximum() {
        let cases = [
            ("ada", None, "ada"),
            ("  ada ", None, "ada"),
            ("ada", Some(3), "ada"),
            ("adalovelace", Some(3), "ada"),
            (" zoë o ", Some(3), "zoë"),
            ("", Some(3), ""),
            ("Nul\0Byte\r\n\t", None, "NulByte"),
            ("\0 ada \0", None, "ada"),
            ("ada lovelace", Some(4), "ada"),
        ];
        for (rendered, max, expected) in cases {
            assert_eq!(
                finish(rendered.to_owned(), max),
                expected,
                "{rendered:?} {max:?}"
            );
        }
    }

    #[test]
    fn bare_field_templates_read_the_field_exactly_as_rendering_would() {
        assert!(fast::compile("{{ display_name }}").is_some());
        assert!(fast::compile("{{display_name}}").is_some());
        assert!(
            fast::compile("{{ no_such_field }}").is_none(),
            "unknown fields still fail loudly, in the engine"
        );
        let person = person("Ada", "Lovelace");
        for field in [
            "id",
            "given_name",
            "display_name",
            "work_email",
            "job_title",
            "department",
            "status",
        ] {
            let fast = Mapping::new(
                Profile::Scim,
                &BTreeMap::from([("x".to_owned(), format!("{{{{ {field} }}}}"))]),
            )
            .expect("compiles");
            // The same template, made non-plain by a no-op filter, goes through minijinja.
            let rendered = Mapping::new(
                Profile::Scim,
                &BTreeMap::from([("x".to_owned(), format!("{{{{ {field}|string }}}}"))]),
            )
            .expect("compiles");
            let get = |m: &Mapping| {
                m.map(&person, None, &nothing_taken)
                    .expect("maps")
                    .attributes
                    .get("x")
                    .cloned()
            };
            assert_eq!(get(&fast), get(&rendered), "{field}");
        }
    }
}
