//! Reconcile scenarios against a mock API server (tower-test): each test states which requests
//! the reconcile must make, in order, and answers them as the API server would.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use kube::client::Body;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use tower_test::mock::{self, Handle};

use super::status::{self, Blocker, DirectoryOutcome, Observation, SourceOutcome};
use super::{Context, FINALIZER, reconcile};
use crate::crd::{PeopleSync, PeopleSyncSpec};
use crate::metrics::Metrics;

type Verifier = Handle<Request<Body>, Response<Body>>;

fn context() -> (Arc<Context>, Verifier) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    (
        Arc::new(Context::new(
            client,
            "test",
            Arc::new(Metrics::default()),
            Default::default(),
        )),
        handle,
    )
}

fn object() -> PeopleSync {
    let mut object = PeopleSync::new("acme", PeopleSyncSpec::example());
    object.meta_mut().namespace = Some("team".into());
    object.meta_mut().generation = Some(3);
    object
}

fn finalized(mut object: PeopleSync) -> PeopleSync {
    object.finalizers_mut().push(FINALIZER.to_owned());
    object
}

async fn body_json(request: Request<Body>) -> Value {
    let bytes = request
        .into_body()
        .collect()
        .await
        .expect("request body")
        .to_bytes();
    serde_json::from_slice(&bytes).expect("JSON request body")
}

fn respond(
    send: tower_test::mock::SendResponse<Response<Body>>,
    status: StatusCode,
    body: &impl serde::Serialize,
) {
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(body).expect("serializes")))
            .expect("response"),
    );
}

fn not_found(name: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("secrets \"{name}\" not found"), "reason": "NotFound", "code": 404
    })
}

/// Asserts the reconcile sends nothing more within a short window.
async fn no_more_requests(handle: &mut Verifier) {
    // `None` means the client was dropped (the reconcile finished): nothing more was sent.
    if let Ok(Some((request, _))) =
        tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
    {
        panic!("unexpected request: {} {}", request.method(), request.uri());
    }
}

#[tokio::test]
async fn an_object_without_the_finalizer_gets_it_before_anything_else() {
    let (ctx, mut handle) = context();
    let object = object();
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), Method::PATCH);
        assert_eq!(
            request.uri().path(),
            "/apis/peoplesync.dev/v1alpha1/namespaces/team/peoplesyncs/acme"
        );
        let patch = body_json(request).await;
        assert!(patch.to_string().contains(FINALIZER), "{patch}");
        respond(send, StatusCode::OK, &finalized(self::object()));
        no_more_requests(&mut handle).await;
    });
    reconcile(Arc::new(object), ctx).await.expect("reconciles");
    server.await.expect("verifier");
}

#[tokio::test]
async fn a_missing_secret_is_reported_as_ready_false_secret_not_found() {
    let (ctx, mut handle) = context();
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.expect("secret read");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(
            request.uri().path(),
            "/api/v1/namespaces/team/secrets/hollyhr"
        );
        respond(send, StatusCode::NOT_FOUND, &not_found("hollyhr"));

        let (request, send) = handle.next_request().await.expect("status write");
        assert_eq!(request.method(), Method::PATCH);
        assert_eq!(
            request.uri().path(),
            "/apis/peoplesync.dev/v1alpha1/namespaces/team/peoplesyncs/acme/status"
        );
        let query = request.uri().query().unwrap_or_default().to_owned();
        assert!(
            query.contains("fieldManager=peoplesync-controller") && query.contains("force=true"),
            "{query}"
        );
        let patch = body_json(request).await;
        let conditions = patch["status"]["conditions"]
            .as_array()
            .expect("conditions");
        let ready = conditions
            .iter()
            .find(|c| c["type"] == "Ready")
            .expect("Ready");
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "SecretNotFound");
        assert!(
            ready["message"]
                .as_str()
                .expect("message")
                .contains("team/hollyhr")
        );
        assert_eq!(ready["observedGeneration"], 3);
        assert_eq!(patch["status"]["observedGeneration"], 3);
        respond(send, StatusCode::OK, &finalized(object()));

        // One Event per new condition (Ready, SourceReachable, DirectoryReachable).
        for _ in 0..3 {
            let (request, send) = handle.next_request().await.expect("event");
            assert_eq!(
                request.uri().path(),
                "/apis/events.k8s.io/v1/namespaces/team/events"
            );
            let event = body_json(request).await;
            respond(send, StatusCode::CREATED, &event);
        }
        no_more_requests(&mut handle).await;
    });
    reconcile(Arc::new(finalized(object())), ctx)
        .await
        .expect("reconciles");
    server.await.expect("verifier");
}

#[tokio::test]
async fn an_unchanged_status_is_not_written_again() {
    let (ctx, mut handle) = context();
    let mut object = finalized(object());
    let observation = Observation {
        blocker: Some(Blocker {
            reason: "SecretNotFound",
            message: "Secret team/hollyhr not found: create it or fix the reference in the PeopleSync spec".into(),
        }),
        source: SourceOutcome::NotChecked,
        directory: DirectoryOutcome::NotChecked,
        suspended: false,
        sync: crate::controller::sync::SyncOutcome::NotRun,
        next_sync: None,
        next_transition: None,
        webhook: crate::webhook::WebhookOutcome::NotChecked,
    };
    let (current, _) = status::compute(
        &object.spec,
        None,
        &observation,
        Some(3),
        jiff::Timestamp::now(),
    );
    object.status = Some(current);
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.expect("secret read");
        assert_eq!(
            request.uri().path(),
            "/api/v1/namespaces/team/secrets/hollyhr"
        );
        respond(send, StatusCode::NOT_FOUND, &not_found("hollyhr"));
        no_more_requests(&mut handle).await;
    });
    reconcile(Arc::new(object), ctx).await.expect("reconciles");
    server.await.expect("verifier");
}

#[tokio::test]
async fn a_deleted_object_releases_its_finalizer_even_with_a_broken_spec() {
    let (ctx, mut handle) = context();
    let mut object = finalized(object());
    object.spec.target.ldap = None;
    object.spec.target.scim = None; // broken: no target at all
    object.meta_mut().deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
    );
    let server = tokio::spawn(async move {
        let (request, send) = handle.next_request().await.expect("finalizer removal");
        assert_eq!(request.method(), Method::PATCH);
        assert_eq!(
            request.uri().path(),
            "/apis/peoplesync.dev/v1alpha1/namespaces/team/peoplesyncs/acme"
        );
        let patch = body_json(request).await;
        assert!(
            patch.to_string().contains("remove"),
            "a JSON patch removing the finalizer: {patch}"
        );
        respond(send, StatusCode::OK, &self::object());
        no_more_requests(&mut handle).await;
    });
    reconcile(Arc::new(object), ctx).await.expect("reconciles");
    server.await.expect("verifier");
}

#[test]
fn a_secret_change_wakes_exactly_the_objects_that_reference_it() {
    let object = finalized(object());
    let names = super::secret_names(&object.spec);
    assert_eq!(names, ["hollyhr", "scim"]);
    assert!(object.name_any() == "acme" && object.meta().namespace.as_deref() == Some("team"));
}
