//! Webhook operations: management, rotation, test, health, deliveries and redelivery.

use super::*;

pub(super) async fn list_webhooks(
    State(sandbox): Shared,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    parse_query(raw.as_deref(), &[])?;
    let state = sandbox.state();
    let hooks: Vec<&Webhook> = state.webhooks.iter().map(|h| &h.webhook).collect();
    Ok(json_response(StatusCode::OK, &List { data: hooks }))
}

fn check_event_scopes(caller: &Caller, events: &[EventType]) -> ApiResult<()> {
    for event in events {
        if let Some(scope) = validate::read_scope_for(*event)
            && !caller.scopes.iter().any(|s| s == scope)
        {
            return Err(ApiError::missing_scope(scope)
                .with_detail("subscribed_events", format!("{event} needs {scope}")));
        }
    }
    Ok(())
}

fn secret_mutation(status: StatusCode, created: WebhookWithSecret) -> Mutation {
    let mut mutation = Mutation::json(status, &Data { data: &created }, None);
    let replay = WebhookWithSecret {
        webhook: created.webhook,
        signing_secret: None,
    };
    mutation.replay_body = Some(Bytes::from(
        serde_json::to_vec(&Data { data: replay }).expect("API bodies always serialize"),
    ));
    mutation
}

pub(super) async fn create_webhook(write: Write) -> Response {
    let allow_insecure = write.sandbox.config.allow_insecure_webhook_urls;
    let request = require_body::<CreateWebhookRequest>(&write.headers, &write.body)
        .and_then(|r| validate::create_webhook(&r, allow_insecure).map(|()| r))
        .and_then(|r| check_event_scopes(&write.caller, &r.subscribed_events).map(|()| r));
    let request = match request {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    write.idempotent(|state, now| {
        let created = state.create_webhook(request, now)?;
        Ok(secret_mutation(StatusCode::CREATED, created))
    })
}

pub(super) async fn get_webhook(
    State(sandbox): Shared,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let state = sandbox.state();
    let record = &state.webhooks[state.webhook_index(&id)?];
    let tags = webhook_tags(record);
    if let Some(response) = not_modified(&headers, &tags) {
        return Ok(response);
    }
    Ok(with_etags(
        json_response(
            StatusCode::OK,
            &Data {
                data: &record.webhook,
            },
        ),
        &tags,
    ))
}

pub(super) async fn update_webhook(Path(id): Path<String>, write: Write) -> Response {
    let allow_insecure = write.sandbox.config.allow_insecure_webhook_urls;
    let request = require_body::<UpdateWebhookRequest>(&write.headers, &write.body)
        .and_then(|r| validate::update_webhook(&r, allow_insecure).map(|()| r))
        .and_then(|r| {
            check_event_scopes(
                &write.caller,
                r.subscribed_events.as_deref().unwrap_or_default(),
            )
            .map(|()| r)
        });
    let request = match request {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    write.idempotent(|state, now| {
        let index = state.webhook_index(&id)?;
        check_if_match(&write.headers, &webhook_tags(&state.webhooks[index]))?;
        state.update_webhook(index, request, now)?;
        let record = &state.webhooks[index];
        Ok(Mutation::json(
            StatusCode::OK,
            &Data {
                data: &record.webhook,
            },
            Some(webhook_tags(record)),
        ))
    })
}

pub(super) async fn disable_webhook(Path(id): Path<String>, write: Write) -> Response {
    if !write.body.iter().all(u8::is_ascii_whitespace) {
        return ApiError::invalid_field("body", "DELETE takes no body").into_response();
    }
    write.idempotent(|state, now| {
        let index = state.webhook_index(&id)?;
        check_if_match(&write.headers, &webhook_tags(&state.webhooks[index]))?;
        let disable = UpdateWebhookRequest {
            status: Some(WebhookStatus::Disabled),
            ..Default::default()
        };
        state.update_webhook(index, disable, now)?;
        let record = &state.webhooks[index];
        Ok(Mutation::json(
            StatusCode::OK,
            &DisabledWebhook {
                data: record.webhook.clone(),
                disabled: true,
            },
            Some(webhook_tags(record)),
        ))
    })
}

pub(super) async fn rotate_secret(Path(id): Path<String>, write: Write) -> Response {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}
    if let Err(error) = parse_body::<Empty>(&write.headers, &write.body) {
        return error.into_response();
    }
    write.idempotent(|state, now| {
        let index = state.webhook_index(&id)?;
        Ok(secret_mutation(
            StatusCode::OK,
            state.rotate_secret(index, now),
        ))
    })
}

pub(super) async fn test_webhook(Path(id): Path<String>, write: Write) -> Response {
    let request =
        parse_body::<TestWebhookRequest>(&write.headers, &write.body).and_then(|r| {
            match r.and_then(|r| r.event_type) {
                None | Some(EventType::WebhookTest) => Ok(()),
                Some(_) => Err(ApiError::invalid_field(
                    "event_type",
                    "must be webhook.test",
                )),
            }
        });
    if let Err(error) = request {
        return error.into_response();
    }
    let variant = write.sandbox.settings().signature_variant;
    write.idempotent(|state, now| {
        let index = state.webhook_index(&id)?;
        let test = state.queue_test(index, variant, now)?;
        Ok(Mutation::json(
            StatusCode::ACCEPTED,
            &Data { data: test },
            None,
        ))
    })
}

pub(super) async fn webhook_health(
    State(sandbox): Shared,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let now = sandbox.clock.now();
    let mut state = sandbox.state();
    let index = state.webhook_index(&id)?;
    state.prune(now);
    Ok(json_response(
        StatusCode::OK,
        &Data {
            data: state.health(index, now),
        },
    ))
}

pub(super) async fn list_deliveries(
    State(sandbox): Shared,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let now = sandbox.clock.now();
    let mut state = sandbox.state();
    state.webhook_index(&id)?;
    let pairs = parse_query(
        raw.as_deref(),
        &[
            "limit",
            "cursor",
            "status",
            "event_type",
            "created_since",
            "created_until",
        ],
    )?;
    let status = query_value(&pairs, "status")
        .map(|raw| {
            serde_json::from_value::<DeliveryStatus>(serde_json::Value::String(raw.to_owned()))
                .map_err(|_| {
                    ApiError::invalid_field(
                        "status",
                        "must be pending, delivered, retry_scheduled or failed",
                    )
                })
        })
        .transpose()?;
    let event_type = query_value(&pairs, "event_type")
        .map(|raw| {
            serde_json::from_value::<EventType>(serde_json::Value::String(raw.to_owned()))
                .map_err(|_| ApiError::invalid_field("event_type", "is not a webhook event type"))
        })
        .transpose()?;
    let query = DeliveryQuery {
        limit: query_limit(&pairs)?,
        cursor: query_cursor(&pairs)?,
        status,
        event_type,
        created_since: query_time(&pairs, "created_since")?,
        created_until: query_time(&pairs, "created_until")?,
    };
    state.prune(now);
    let (data, pagination) = state.list_deliveries(&id, &query)?;
    Ok(json_response(StatusCode::OK, &Page { data, pagination }))
}

pub(super) async fn get_delivery(
    State(sandbox): Shared,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult<Response> {
    let now = sandbox.clock.now();
    let mut state = sandbox.state();
    state.webhook_index(&id)?;
    state.prune(now);
    let record = &state.deliveries[state.delivery_index(&id, &delivery)?];
    Ok(json_response(
        StatusCode::OK,
        &Data {
            data: DeliveryDetail {
                summary: record.summary.clone(),
                attempts: record.attempts.clone(),
            },
        },
    ))
}

pub(super) async fn redeliver(
    Path((id, delivery)): Path<(String, String)>,
    write: Write,
) -> Response {
    if !write.body.iter().all(u8::is_ascii_whitespace) {
        return ApiError::invalid_field("body", "redeliver takes no body").into_response();
    }
    write.idempotent(|state, now| {
        state.webhook_index(&id)?;
        let index = state.delivery_index(&id, &delivery)?;
        let summary = state.redeliver(index, now)?;
        Ok(Mutation::json(
            StatusCode::ACCEPTED,
            &Redelivery {
                data: summary,
                redelivered: true,
            },
            None,
        ))
    })
}
