//! Many HollyHR tenants on one port, told apart by API key as HollyHR itself tells them apart.
//! Each tenant is a whole sandbox (its own seeded people, webhooks, delivery worker, clock,
//! faults and request log); a front router sends `/api/v1` requests to the tenant whose key the
//! `Authorization` header carries, and `/tenants/{n}/_sandbox/…` to tenant `n`'s controls. A
//! request with no key or an unknown one goes to the first tenant, which answers it as any
//! sandbox does (401 `authentication_required` with the contract's envelope).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use super::core::server::{Server, app};
use super::{SandboxConfig, SandboxError, remote};

/// A running many-tenant sandbox. Dropping it stops the server and every tenant's worker.
pub struct TenantsHandle {
    server: Server,
    tenants: usize,
}

impl TenantsHandle {
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT/api/v1`: one base URL for every tenant (the key picks the tenant).
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr())
    }

    /// How many tenants it serves.
    pub fn len(&self) -> usize {
        self.tenants
    }

    pub fn is_empty(&self) -> bool {
        self.tenants == 0
    }

    /// `http://127.0.0.1:PORT/tenants/{tenant}/_sandbox`: that tenant's test controls.
    pub fn control_url(&self, tenant: usize) -> String {
        format!("http://{}/tenants/{tenant}/_sandbox", self.addr())
    }

    /// A client for one tenant's test controls.
    pub fn controls(&self, tenant: usize) -> remote::Controls {
        remote::Controls::new(&self.control_url(tenant))
    }

    /// Stops accepting requests and waits for the server to finish.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

struct Front {
    tenants: Vec<Router>,
    by_key: HashMap<String, usize>,
}

/// Seeds every tenant (each config's `listen` is ignored), binds `listen` and serves them all.
/// Each key must belong to one tenant only, and there must be at least one tenant.
pub async fn start(
    listen: SocketAddr,
    tenants: Vec<SandboxConfig>,
) -> Result<TenantsHandle, SandboxError> {
    if tenants.is_empty() {
        return Err(SandboxError::NoTenants);
    }
    let mut by_key = HashMap::new();
    for (index, config) in tenants.iter().enumerate() {
        for spec in &config.api_keys {
            if let Some(first) = by_key.insert(spec.key.clone(), index) {
                return Err(SandboxError::SharedKey {
                    first,
                    second: index,
                });
            }
        }
    }
    let count = tenants.len();
    let server = Server::start(listen, "sandbox", move |stop| {
        let mut routers = Vec::with_capacity(count);
        let mut workers = Vec::with_capacity(count);
        for config in tenants {
            let (router, worker) = app(config, super::routes, stop.clone());
            routers.push(router);
            workers.push(worker);
        }
        let front = Arc::new(Front {
            tenants: routers,
            by_key,
        });
        let app = Router::new().fallback(dispatch).with_state(front);
        // Every worker stops on the stop signal; this one task ends with the last of them.
        let worker = tokio::spawn(async move {
            futures::future::join_all(workers).await;
        });
        (app, worker)
    })
    .await?;
    Ok(TenantsHandle {
        server,
        tenants: count,
    })
}

async fn dispatch(State(front): State<Arc<Front>>, mut request: Request) -> Response {
    let path = request.uri().path();
    if let Some(rest) = path.strip_prefix("/tenants/") {
        let (tenant, tail) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(router) = tenant
            .parse::<usize>()
            .ok()
            .and_then(|index| front.tenants.get(index))
        else {
            return (StatusCode::NOT_FOUND, format!("no tenant {tenant:?}")).into_response();
        };
        let rewritten = match request.uri().query() {
            Some(query) => format!("/{tail}?{query}"),
            None => format!("/{tail}"),
        };
        match rewritten.parse::<Uri>() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return (StatusCode::BAD_REQUEST, "a bad path").into_response(),
        }
        return serve(router, request).await;
    }
    if path.starts_with("/_sandbox") {
        return (
            StatusCode::NOT_FOUND,
            "this sandbox serves many tenants: use /tenants/{n}/_sandbox/…",
        )
            .into_response();
    }
    let tenant = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|key| front.by_key.get(key.trim()))
        .copied()
        .unwrap_or(0);
    serve(&front.tenants[tenant], request).await
}

async fn serve(router: &Router, request: Request) -> Response {
    match router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiKeySpec;

    fn tenant(key: &str, people: usize, seed: u64) -> SandboxConfig {
        SandboxConfig {
            people,
            seed,
            api_keys: vec![ApiKeySpec::new(key, ["people:read"])],
            ..Default::default()
        }
    }

    async fn people(base: &str, key: &str) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .get(format!("{base}/people?limit=100"))
            .bearer_auth(key)
            .send()
            .await
            .expect("answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json"))
    }

    #[tokio::test]
    async fn each_key_reaches_its_own_tenant_and_each_tenant_has_its_own_controls() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let sandbox = start(
            listen,
            vec![
                tenant("hhr_test_tenant_a", 3, 1),
                tenant("hhr_test_tenant_b", 5, 2),
            ],
        )
        .await
        .expect("starts");
        let base = sandbox.base_url();
        let (status, a) = people(&base, "hhr_test_tenant_a").await;
        assert_eq!(status, 200);
        assert_eq!(a["data"].as_array().map(Vec::len), Some(3));
        let (_, b) = people(&base, "hhr_test_tenant_b").await;
        assert_eq!(b["data"].as_array().map(Vec::len), Some(5));
        let (status, unknown) = people(&base, "hhr_test_nobody_here").await;
        assert_eq!(status, 401, "{unknown}");
        assert_eq!(unknown["error"]["code"], "authentication_required");

        // Tenant 1's controls touch tenant 1 only.
        sandbox.controls(1).reset(7).await.expect("reset");
        let (_, b) = people(&base, "hhr_test_tenant_b").await;
        assert_eq!(b["data"].as_array().map(Vec::len), Some(7));
        let (_, a) = people(&base, "hhr_test_tenant_a").await;
        assert_eq!(a["data"].as_array().map(Vec::len), Some(3));
        let log_a = sandbox.controls(0).requests().await.expect("log");
        assert_eq!(log_a.len(), 3, "{log_a:?}");
        let missing = reqwest::get(format!(
            "http://{}/tenants/9/_sandbox/requests",
            sandbox.addr()
        ))
        .await
        .expect("answers");
        assert_eq!(missing.status(), 404);
    }

    #[tokio::test]
    async fn a_key_shared_by_two_tenants_or_no_tenant_at_all_is_refused() {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let shared = start(
            listen,
            vec![tenant("hhr_test_same", 1, 1), tenant("hhr_test_same", 1, 2)],
        )
        .await;
        assert!(matches!(
            shared,
            Err(SandboxError::SharedKey {
                first: 0,
                second: 1
            })
        ));
        assert!(matches!(
            start(listen, Vec::new()).await,
            Err(SandboxError::NoTenants)
        ));
    }
}
