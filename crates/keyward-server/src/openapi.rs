//! The OpenAPI 3.1 document: what the routes' annotations say (the routes register them,
//! `routes::routes`), plus the title, the security schemes and the links between
//! operations. Schemas are derived from the types that are serialized, or checked field
//! for field against serialized values (tests/openapi.rs), so they cannot drift.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("the admin token"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// Links from a created resource to the operations on it (a client, or a test generator,
/// follows `id` from `POST /v1/keys` and `user_id` from `POST /v1/users`).
struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::link::LinkBuilder;

        let follow = [
            (
                "/v1/keys",
                "id",
                "$response.body#/id",
                &[
                    ("/v1/keys/{id}", &["get", "patch", "delete"][..]),
                    ("/v1/keys/{id}/rotate", &["post"][..]),
                    ("/v1/keys/{id}/usage", &["get"][..]),
                ][..],
            ),
            (
                "/v1/admin-keys",
                "id",
                "$response.body#/id",
                &[("/v1/admin-keys/{id}", &["delete"][..])][..],
            ),
            (
                "/v1/users",
                "user_id",
                "$response.body#/user_id",
                &[
                    ("/v1/users/{user_id}", &["get", "patch", "delete"][..]),
                    ("/v1/users/{user_id}/revoke-keys", &["post"][..]),
                    ("/v1/users/{user_id}/usage", &["get"][..]),
                    ("/v1/users/{user_id}/invoice", &["get"][..]),
                ][..],
            ),
        ];
        for (created_at, parameter, value, targets) in follow {
            let Some(created) = openapi
                .paths
                .paths
                .get_mut(created_at)
                .and_then(|item| item.post.as_mut())
                .and_then(|operation| operation.responses.responses.get_mut("201"))
            else {
                continue;
            };
            let RefOr::T(response) = created else {
                continue;
            };
            for (path, methods) in targets {
                for method in *methods {
                    let pointer = path.replace('~', "~0").replace('/', "~1");
                    let name = format!("{method}{}", path.replace(['/', '{', '}', '-'], "_"));
                    response.links.insert(
                        name,
                        RefOr::T(
                            LinkBuilder::new()
                                .operation_ref(format!("#/paths/{pointer}/{method}"))
                                .parameter(parameter, value)
                                .build(),
                        ),
                    );
                }
            }
        }
    }
}

/// What the routes' annotations do not say: the title, the shared problem schema and the
/// security schemes.
#[derive(OpenApi)]
#[openapi(
    info(title = "keyward", description = "API keys, rate limits, usage and billing for HTTP APIs."),
    components(schemas(crate::error::Problem)),
    modifiers(&Security),
)]
#[derive(Debug)]
pub struct ApiDoc;

/// The whole document as JSON: [`ApiDoc`] and the operations the `routes` register.
pub fn to_json<S: Clone + Send + Sync + 'static>(
    routes: impl IntoIterator<Item = OpenApiRouter<S>>,
) -> String {
    let mut document = routes
        .into_iter()
        .fold(
            OpenApiRouter::with_openapi(ApiDoc::openapi()),
            OpenApiRouter::merge,
        )
        .into_openapi();
    Links.modify(&mut document);
    one_operation_id_per_method(&mut document);
    let mut document = serde_json::to_value(document).unwrap_or_default();
    camel_case_links(&mut document);
    open_all_of_parts(&mut document);
    permissions(&mut document);
    serde_json::to_string(&document).unwrap_or_else(|_| "{}".to_owned())
}

/// An operation listed under several methods (forward-auth) keeps its id on `GET`; the
/// others get `<id>_<method>`, since every operation id must be unique.
fn one_operation_id_per_method(document: &mut utoipa::openapi::OpenApi) {
    for item in document.paths.paths.values_mut() {
        let others = [
            ("post", &mut item.post),
            ("put", &mut item.put),
            ("patch", &mut item.patch),
            ("delete", &mut item.delete),
            ("head", &mut item.head),
            ("options", &mut item.options),
            ("trace", &mut item.trace),
        ];
        let Some(shared) = item.get.as_ref().and_then(|get| get.operation_id.clone()) else {
            continue;
        };
        for (method, operation) in others {
            if let Some(operation) = operation
                && operation.operation_id.as_deref() == Some(shared.as_str())
            {
                operation.operation_id = Some(format!("{shared}_{method}"));
            }
        }
    }
}

/// Each admin operation names the permissions an admin key needs for it, from the one table
/// the server enforces (`x-permissions`, and a sentence of its description).
fn permissions(document: &mut serde_json::Value) {
    for (method, route, needed) in crate::routes::permissions::TABLE {
        let pointer = format!(
            "/paths/{}/{}",
            route.replace('~', "~0").replace('/', "~1"),
            method.to_ascii_lowercase()
        );
        let Some(operation) = document
            .pointer_mut(&pointer)
            .and_then(serde_json::Value::as_object_mut)
        else {
            continue;
        };
        let names: Vec<&str> = needed.iter().map(|p| p.as_str()).collect();
        let sentence = format!("Admin keys need: `{}`.", names.join("`, `"));
        let description = match operation.get("description").and_then(|d| d.as_str()) {
            Some(existing) if !existing.is_empty() => format!("{existing}\n\n{sentence}"),
            _ => sentence,
        };
        operation.insert("description".to_owned(), description.into());
        operation.insert("x-permissions".to_owned(), names.into());
    }
}

/// A type that refuses unknown fields (`additionalProperties: false`) and is flattened into
/// another becomes one part of an `allOf`, where that restriction would refuse the other
/// parts' properties: the parts stay open, the fields are what the whole lists.
fn open_all_of_parts(document: &mut serde_json::Value) {
    let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    let parts = schemas
        .values_mut()
        .filter_map(|schema| schema.get_mut("allOf"))
        .filter_map(serde_json::Value::as_array_mut)
        .flat_map(|parts| parts.iter_mut())
        .filter_map(serde_json::Value::as_object_mut);
    for part in parts {
        if part.get("additionalProperties") == Some(&serde_json::Value::Bool(false)) {
            part.remove("additionalProperties");
        }
    }
}

/// utoipa 5.5 writes a Link object's fields in snake case (`operation_ref`); OpenAPI
/// spells them `operationRef`, `operationId` and `requestBody`.
fn camel_case_links(document: &mut serde_json::Value) {
    let Some(paths) = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let Some(links) = response
            .get_mut("links")
            .and_then(serde_json::Value::as_object_mut)
        else {
            continue;
        };
        for link in links
            .values_mut()
            .filter_map(serde_json::Value::as_object_mut)
        {
            for (snake, camel) in [
                ("operation_ref", "operationRef"),
                ("operation_id", "operationId"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(snake) {
                    link.insert(camel.to_owned(), value);
                }
            }
        }
    }
}
