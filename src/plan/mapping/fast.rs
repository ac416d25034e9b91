//! Templates of the small shape nearly every mapping uses — literal text between `{{ field }}`,
//! `{{ field|filter|… }}` and `{{ a or b }}` — evaluated without the template engine. A full cycle
//! maps every person, and rendering through minijinja was most of the planner's time. Anything
//! outside this shape (or a value the engine would refuse, such as `first` of an empty string)
//! renders with minijinja as before; a property test checks that both agree on every template
//! this module accepts.

use super::TemplateFields;

/// A filter the fast path knows, with minijinja's meaning (`ascii` and `truncate_chars` are
/// PeopleSync's own).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Filter {
    Lower,
    Upper,
    Trim,
    First,
    Initial,
    Ascii,
    TruncateChars(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `a or b or …` (the first non-empty one, else the last), then the filters in order.
    Value {
        alternatives: Vec<String>,
        filters: Vec<Filter>,
    },
}

/// A template the fast path can evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Compiled(Vec<Segment>);

/// `n` or a template field.
fn is_name(name: &str) -> bool {
    name == "n" || TemplateFields::default().get(name).is_some()
}

fn filter(text: &str) -> Option<Filter> {
    Some(match text.trim() {
        "lower" => Filter::Lower,
        "upper" => Filter::Upper,
        "trim" => Filter::Trim,
        "first" => Filter::First,
        "initial" => Filter::Initial,
        "ascii" => Filter::Ascii,
        other => {
            let digits = other
                .strip_prefix("truncate_chars(")?
                .strip_suffix(')')?
                .trim();
            Filter::TruncateChars(digits.parse().ok()?)
        }
    })
}

fn expression(text: &str) -> Option<Segment> {
    let mut parts = text.split('|');
    let value = parts.next()?.trim();
    let filters: Vec<Filter> = parts.map(filter).collect::<Option<_>>()?;
    let alternatives: Vec<String> = value.split(" or ").map(|a| a.trim().to_owned()).collect();
    // `a or b|f` binds as `a or (b|f)` in Jinja: keep such templates on the engine.
    if alternatives.len() > 1 && !filters.is_empty() {
        return None;
    }
    if !alternatives.iter().all(|a| is_name(a)) {
        return None;
    }
    Some(Segment::Value {
        alternatives,
        filters,
    })
}

/// The template as segments, or `None` when it is not of the fast shape.
pub(super) fn compile(template: &str) -> Option<Compiled> {
    let mut segments = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find("{{") {
            Some(start) => {
                if start > 0 {
                    segments.push(literal(&rest[..start])?);
                }
                let after = &rest[start + 2..];
                let end = after.find("}}")?;
                segments.push(expression(&after[..end])?);
                rest = &after[end + 2..];
            }
            None => {
                segments.push(literal(rest)?);
                rest = "";
            }
        }
    }
    Some(Compiled(segments))
}

/// Plain text: no other template syntax, no line breaks (the engine treats those specially).
fn literal(text: &str) -> Option<Segment> {
    let plain = !["{%", "%}", "{#", "#}", "}}", "{{", "\n", "\r"]
        .iter()
        .any(|token| text.contains(token));
    plain.then(|| Segment::Literal(text.to_owned()))
}

impl Compiled {
    /// The rendered text, or `None` when the engine must decide (it would fail).
    pub(super) fn render(&self, fields: &TemplateFields, n: Option<u32>) -> Option<String> {
        let number = n.map(|n| n.to_string()).unwrap_or_default();
        let get = |name: &str| -> &str {
            if name == "n" {
                &number
            } else {
                fields.get(name).unwrap_or_default()
            }
        };
        let mut out = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Value {
                    alternatives,
                    filters,
                } => {
                    let chosen = alternatives
                        .iter()
                        .map(|a| get(a))
                        .find(|v| !v.is_empty())
                        .or_else(|| alternatives.last().map(|a| get(a)))
                        .unwrap_or_default();
                    if filters.is_empty() {
                        out.push_str(chosen);
                        continue;
                    }
                    let mut value = chosen.to_owned();
                    for filter in filters {
                        value = match filter {
                            Filter::Lower => value.to_lowercase(),
                            Filter::Upper => value.to_uppercase(),
                            Filter::Trim => value.trim().to_owned(),
                            // The engine refuses `first` of an empty string: let it say so.
                            Filter::First => value.chars().next()?.to_string(),
                            Filter::Initial => super::initial(value),
                            Filter::Ascii => super::ascii(value),
                            Filter::TruncateChars(max) => super::truncate_chars(value, *max),
                        };
                    }
                    out.push_str(&value);
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_shapes_compile_and_others_stay_on_the_engine() {
        for template in [
            "{{ display_name }}",
            "{{ given_name|ascii|lower }}.{{ last_name|ascii|lower }}{{ n }}",
            "{{ given_name|ascii|lower|first }}{{ last_name|ascii|lower|truncate_chars(17) }}{{ n }}",
            "{{ last_name or display_name }}",
            "{{ staff_id or id }}",
            "{{ given_name|lower }}@example.com",
        ] {
            assert!(compile(template).is_some(), "{template}");
        }
        for template in [
            "{% if job_title %}{{ job_title }}{% endif %}",
            "{{ job_title|replace('a', 'b') }}",
            "{{ last_name or display_name|upper }}",
            "{{ unknown_field }}",
            "{{ first_name ~ last_name }}",
            "{{ first_name }",
            "a\n{{ id }}",
        ] {
            assert!(compile(template).is_none(), "{template}");
        }
    }

    fn engine(template: &str, fields: &TemplateFields, n: Option<u32>) -> Option<String> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_filter("ascii", super::super::ascii);
        env.add_filter("initial", super::super::initial);
        env.add_filter("truncate_chars", super::super::truncate_chars);
        env.add_template("t", template).expect("compiles");
        let context = minijinja::Value::from_object(super::super::RenderContext {
            fields: std::sync::Arc::new(fields.clone()),
            n,
        });
        env.get_template("t").expect("added").render(context).ok()
    }

    const TEMPLATES: [&str; 11] = [
        "{{ display_name }}",
        "{{ given_name|ascii|lower }}.{{ last_name|ascii|lower }}",
        "{{ given_name|ascii|lower }}.{{ last_name|ascii|lower }}{{ n }}",
        "{{ given_name|ascii|lower|first }}{{ last_name|ascii|lower }}",
        "{{ given_name|ascii|lower|first }}{{ last_name|ascii|lower|truncate_chars(17) }}{{ n }}",
        "{{ last_name or display_name }}",
        "{{ staff_id or work_email or id }}",
        "  {{ first_name|trim|upper }} ({{ department }}) ",
        "{{ work_email|lower }}",
        "{{ given_name|ascii|lower|initial }}{{ last_name|ascii|lower|truncate_chars(17) }}{{ n }}",
        "{{ id|ascii|lower }}",
    ];

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(" ".to_owned()),
            "[a-zA-Z' -]{0,12}",
            "[àéîõüßÆøÅçÑĳΣ日本 ]{0,6}",
        ]
    }

    proptest! {
        #[test]
        fn the_fast_path_renders_what_minijinja_renders(
            first in text(), last in text(), display in text(), staff in text(),
            email in text(), department in text(), n in proptest::option::of(2u32..100),
            which in 0..TEMPLATES.len(),
        ) {
            let fields = TemplateFields {
                id: "abcdefghjkmn".into(),
                given_name: first.clone(),
                first_name: first,
                last_name: last,
                display_name: display,
                staff_id: staff,
                work_email: email,
                department,
                ..TemplateFields::default()
            };
            let template = TEMPLATES[which];
            let compiled = compile(template).expect("compiles");
            let engine = engine(template, &fields, n);
            match compiled.render(&fields, n) {
                Some(fast) => prop_assert_eq!(Some(fast), engine, "{}", template),
                // The fast path only steps aside where the engine fails.
                None => prop_assert_eq!(engine, None, "{}", template),
            }
        }
    }
}
