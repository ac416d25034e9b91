//! Request-body constraints of the contract that serde alone does not check: lengths, patterns,
//! email and URL rules. Each failure names the field.

use std::net::IpAddr;

use super::error::{ApiError, ApiResult};
use super::ids;
use peoplesync::source::hollyhr::model::*;

fn length(field: &str, value: &str, min: usize, max: usize) -> ApiResult<()> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ApiError::invalid_field(
            field,
            format!("must be {min}–{max} characters long"),
        ));
    }
    Ok(())
}

fn optional_length(field: &str, value: Option<&str>, min: usize, max: usize) -> ApiResult<()> {
    value.map_or(Ok(()), |v| length(field, v, min, max))
}

fn person_id(field: &str, value: Option<&str>) -> ApiResult<()> {
    match value {
        Some(id) if !ids::is_person_id(id) => Err(ApiError::invalid_field(
            field,
            "does not match the person id pattern",
        )),
        _ => Ok(()),
    }
}

fn encrypted(field: &str, prefix: &str, value: Option<&str>) -> ApiResult<()> {
    match value {
        Some(id) if !ids::is_encrypted_id(prefix, id) => Err(ApiError::invalid_field(
            field,
            format!("does not match the {prefix} id pattern"),
        )),
        _ => Ok(()),
    }
}

fn minutes(field: &str, value: Option<u32>) -> ApiResult<()> {
    match value {
        Some(m) if m > 10_080 => Err(ApiError::invalid_field(field, "must be 0–10080")),
        _ => Ok(()),
    }
}

/// A pragmatic `format: email`: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.chars().any(char::is_whitespace)
        && value.len() <= 320
}

pub fn create_person(r: &CreatePersonRequest) -> ApiResult<()> {
    if let Some(email) = &r.work_email
        && !is_email(email)
    {
        return Err(ApiError::invalid_field(
            "work_email",
            "must be an email address",
        ));
    }
    length("first_name", &r.first_name, 1, 64)?;
    length("last_name", &r.last_name, 1, 64)?;
    optional_length("preferred_name", r.preferred_name.as_deref(), 1, 64)?;
    optional_length("job_title", r.job_title.as_deref(), 1, 128)?;
    encrypted(
        "department_org_unit_id",
        "org_unit",
        r.department_org_unit_id.as_deref(),
    )?;
    person_id("manager_id", r.manager_id.as_deref())?;
    encrypted("work_place_id", "wp", r.work_place_id.as_deref())?;
    encrypted("work_type_id", "wt", r.work_type_id.as_deref())?;
    if let Some(date) = &r.start_date {
        super::store::parse_date("start_date", date)?;
    }
    Ok(())
}

pub fn update_person(r: &UpdatePersonRequest) -> ApiResult<()> {
    if r.first_name.is_none() && r.last_name.is_none() && r.preferred_name.is_none() {
        return Err(ApiError::invalid(
            "at least one of first_name, last_name, preferred_name is required",
        ));
    }
    optional_length("first_name", r.first_name.as_deref(), 1, 64)?;
    optional_length("last_name", r.last_name.as_deref(), 1, 64)?;
    optional_length(
        "preferred_name",
        r.preferred_name.as_ref().and_then(|v| v.as_deref()),
        1,
        64,
    )
}

pub fn update_employment(r: &UpdateEmploymentRequest) -> ApiResult<()> {
    let empty = r.job_title.is_none()
        && r.department_org_unit_id.is_none()
        && r.manager_id.is_none()
        && r.work_place_id.is_none()
        && r.work_type_id.is_none()
        && r.working_pattern_id.is_none()
        && r.contracted_weekly_minutes.is_none()
        && r.start_date.is_none();
    if empty {
        return Err(ApiError::invalid(
            "at least one employment field is required",
        ));
    }
    optional_length(
        "job_title",
        r.job_title.as_ref().and_then(|v| v.as_deref()),
        1,
        128,
    )?;
    encrypted(
        "department_org_unit_id",
        "org_unit",
        r.department_org_unit_id.as_ref().and_then(|v| v.as_deref()),
    )?;
    person_id(
        "manager_id",
        r.manager_id.as_ref().and_then(|v| v.as_deref()),
    )?;
    encrypted(
        "work_place_id",
        "wp",
        r.work_place_id.as_ref().and_then(|v| v.as_deref()),
    )?;
    encrypted(
        "work_type_id",
        "wt",
        r.work_type_id.as_ref().and_then(|v| v.as_deref()),
    )?;
    encrypted(
        "working_pattern_id",
        "working_pattern",
        r.working_pattern_id.as_ref().and_then(|v| v.as_deref()),
    )?;
    minutes("contracted_weekly_minutes", r.contracted_weekly_minutes)?;
    if let Some(Some(date)) = &r.start_date {
        super::store::parse_date("start_date", date)?;
    }
    Ok(())
}

pub fn reactivate(r: &ReactivatePersonRequest) -> ApiResult<()> {
    super::store::parse_date("start_date", &r.start_date)?;
    optional_length(
        "job_title",
        r.job_title.as_ref().and_then(|v| v.as_deref()),
        1,
        128,
    )?;
    encrypted(
        "department_org_unit_id",
        "org_unit",
        r.department_org_unit_id.as_ref().and_then(|v| v.as_deref()),
    )?;
    person_id(
        "manager_id",
        r.manager_id.as_ref().and_then(|v| v.as_deref()),
    )?;
    minutes("contracted_weekly_minutes", r.contracted_weekly_minutes)
}

fn events(field: &str, events: &[EventType]) -> ApiResult<()> {
    if events.is_empty() || events.len() > 50 {
        return Err(ApiError::invalid_field(field, "must list 1–50 event types"));
    }
    Ok(())
}

/// Webhook URL rules (API.md §7.7, Decision 11): public HTTPS only — no credentials, no fragment,
/// no localhost, private, link-local or `.local`/`.internal` hosts. With `allow_insecure`, plain
/// `http://` to a loopback address is accepted for local testing.
pub fn webhook_url(field: &str, raw: &str, allow_insecure: bool) -> ApiResult<()> {
    if raw.len() > 2048 {
        return Err(ApiError::invalid_field(
            field,
            "must be at most 2048 characters",
        ));
    }
    let url = url::Url::parse(raw)
        .map_err(|_| ApiError::invalid_field(field, "must be an absolute URI"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ApiError::invalid_field(field, "must not embed credentials"));
    }
    if url.fragment().is_some() {
        return Err(ApiError::invalid_field(field, "must not have a fragment"));
    }
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    let ip: Option<IpAddr> = host.parse().ok();
    let loopback = host == "localhost"
        || host.ends_with(".localhost")
        || ip.is_some_and(|ip| ip.is_loopback());
    if allow_insecure && loopback && matches!(url.scheme(), "http" | "https") {
        return Ok(());
    }
    if url.scheme() != "https" {
        return Err(ApiError::invalid_field(field, "must use https"));
    }
    let private_ip = ip.is_some_and(|ip| match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    });
    let local_name = !host.contains('.')
        || [".local", ".internal", ".localhost", ".lan", ".home.arpa"]
            .iter()
            .any(|s| host.ends_with(s));
    if loopback || private_ip || (ip.is_none() && local_name) {
        return Err(ApiError::invalid_field(field, "must be a public host"));
    }
    Ok(())
}

pub fn create_webhook(r: &CreateWebhookRequest, allow_insecure: bool) -> ApiResult<()> {
    length("name", &r.name, 1, 120)?;
    webhook_url("url", &r.url, allow_insecure)?;
    events("subscribed_events", &r.subscribed_events)
}

pub fn update_webhook(r: &UpdateWebhookRequest, allow_insecure: bool) -> ApiResult<()> {
    if *r == UpdateWebhookRequest::default() {
        return Err(ApiError::invalid("at least one webhook field is required"));
    }
    optional_length("name", r.name.as_deref(), 1, 120)?;
    if let Some(url) = &r.url {
        webhook_url("url", url, allow_insecure)?;
    }
    if let Some(list) = &r.subscribed_events {
        events("subscribed_events", list)?;
    }
    Ok(())
}

/// The read scope a key needs to subscribe to `event` (API.md §7.1).
pub fn read_scope_for(event: EventType) -> Option<&'static str> {
    match event.resource_type() {
        "person" => Some("people:read"),
        "org_unit" => Some("org_units:read"),
        "time_off" | "time_off_category" | "time_off_settings" => Some("time_off:read"),
        "working_pattern" => Some("working_patterns:read"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_must_be_public_https_unless_loopback_is_allowed() {
        assert!(webhook_url("url", "https://hooks.example.com/x", false).is_ok());
        for bad in [
            "http://hooks.example.com/x",
            "https://localhost/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://[::1]/x",
            "https://user:pw@hooks.example.com/x",
            "https://hooks.example.com/x#frag",
            "https://printer.local/x",
            "https://intranet/x",
            "not a url",
        ] {
            assert!(webhook_url("url", bad, false).is_err(), "{bad} accepted");
        }
        assert!(webhook_url("url", "http://127.0.0.1:8080/hooks", true).is_ok());
        assert!(
            webhook_url("url", "http://10.0.0.1/hooks", true).is_err(),
            "only loopback"
        );
    }

    #[test]
    fn emails_need_a_dotted_domain() {
        assert!(is_email("ada.lovelace@peoplesync-demo.example"));
        assert!(!is_email("ada"));
        assert!(!is_email("ada@localhost"));
        assert!(!is_email("a b@x.example"));
    }
}
