//! The HTTP API's routes and its OpenAPI document, generated from the handlers' annotations
//! (so the document cannot drift from the code).

pub mod breakers;
pub mod dashboard;
pub mod filters;
pub mod jobs;
pub mod json;
pub mod limiters;
pub mod model;
pub mod ops;
pub mod queues;
pub mod rate_limits;
pub mod reports;
pub mod webhooks;
pub mod workers;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The document's frame (its info, components, security scheme and tags); the paths come from
/// the routes (see [`document`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "floodgate",
        description = "A durable job queue over HTTP: enqueue (202 + status polling), workers in \
                       any language with lease-fenced reports, queues, health and metrics; and \
                       limits as a service (permits, rate limits, circuit breakers). Every \
                       error is an RFC 9457 problem document with a stable `code`."
    ),
    components(schemas(crate::error::Problem, crate::error::Code, model::BatchRequest, model::BatchAccepted)),
    modifiers(&BearerAuth),
    tags(
        (name = "jobs", description = "Enqueue and follow jobs"),
        (name = "workers", description = "Claim and report on jobs from any language"),
        (name = "queues", description = "Queue counts, pause and resume"),
        (name = "webhooks", description = "Webhook destinations"),
        (name = "limits", description = "Concurrency limits, rate limits and circuit breakers shared by a fleet"),
        (name = "dashboard", description = "The live dashboard's data"),
        (name = "operations", description = "Health, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer token scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `POST /v1/jobs` takes one job (`OneJobRequest`: a `JobRequest` without
/// `idempotency_key`, which for one job is the `Idempotency-Key` header) or a batch
/// (`BatchRequest`, whose jobs may each carry a key). Derived from `JobRequest`, so the fields
/// are declared once.
struct OneOrMany;

impl utoipa::Modify for OneOrMany {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{OneOfBuilder, Ref, Schema};
        use utoipa::openapi::{RefOr, content::ContentBuilder, request_body::RequestBodyBuilder};
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        let Some(RefOr::T(Schema::Object(job))) = components.schemas.get("JobRequest") else {
            return;
        };
        let mut one = job.clone();
        one.properties.remove("idempotency_key");
        one.description = Some(
            "One job to enqueue; its idempotency key is the `Idempotency-Key` header.".to_owned(),
        );
        components
            .schemas
            .insert("OneJobRequest".to_owned(), RefOr::T(Schema::Object(one)));
        let Some(item) = doc.paths.paths.get_mut("/v1/jobs") else {
            return;
        };
        let Some(post) = item.post.as_mut() else {
            return;
        };
        let either = OneOfBuilder::new()
            .item(Ref::from_schema_name("OneJobRequest"))
            .item(Ref::from_schema_name("BatchRequest"));
        // One job is answered with `Accepted`, a batch with `BatchAccepted`.
        let answer = || {
            OneOfBuilder::new()
                .item(Ref::from_schema_name("Accepted"))
                .item(Ref::from_schema_name("BatchAccepted"))
        };
        for status in ["200", "202"] {
            if let Some(RefOr::T(response)) = post.responses.responses.get_mut(status) {
                response.content.insert(
                    "application/json".to_owned(),
                    ContentBuilder::new().schema(Some(answer())).build(),
                );
            }
        }
        post.request_body = Some(
            RequestBodyBuilder::new()
                .description(Some("One job, or `{\"jobs\": [JobRequest, ...]}`"))
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(either)).build(),
                )
                .required(Some(utoipa::openapi::Required::True))
                .build(),
        );
    }
}

/// Every route with its documentation: each module declares its routes once, with their
/// OpenAPI annotations (`routes!`), and this merges them. Adding a group of routes is a module
/// and a line here.
fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(jobs::routes())
        .merge(filters::routes())
        .merge(workers::routes())
        .merge(reports::routes())
        .merge(queues::routes())
        .merge(webhooks::routes())
        .merge(limiters::routes())
        .merge(rate_limits::routes())
        .merge(breakers::routes())
        .merge(dashboard::routes())
        .merge(ops::routes())
}

/// Every route, unauthenticated and unlimited (see [`crate::app`] for the layers).
pub(crate) fn routes() -> Router<AppState> {
    router().split_for_parts().0
}

/// The OpenAPI document of every route, built once from the same declarations as the router.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: std::sync::LazyLock<utoipa::openapi::OpenApi> =
        std::sync::LazyLock::new(|| {
            let mut doc = router().split_for_parts().1;
            utoipa::Modify::modify(&OneOrMany, &mut doc);
            doc
        });
    &DOCUMENT
}

/// Routes anyone may call, even when tokens are configured.
pub const PUBLIC_PATHS: &[&str] = &["/health/live", "/health/ready", "/openapi.json"];
