//! The OpenAPI 3.1 document, generated from the handlers' annotations. The key object's
//! schema is derived from the very type that is serialized (`views.rs`); the other response
//! bodies are described by the schema types below, which a test checks field for field
//! against real serialized values, so they cannot drift.

use std::sync::OnceLock;

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

/// The whole document: [`ApiDoc`] and every route's operation, as the router registers them.
pub fn document() -> utoipa::openapi::OpenApi {
    let (management, others) = crate::routes::routes();
    let mut document = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(management)
        .merge(others)
        .into_openapi();
    Links.modify(&mut document);
    one_operation_id_per_method(&mut document);
    document
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

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", summary = "This OpenAPI document", tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")))]
pub async fn serve_document() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        document_json(),
    )
        .into_response()
}

/// The document as JSON, built once.
pub fn document_json() -> String {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let mut document = serde_json::to_value(document()).unwrap_or_default();
            camel_case_links(&mut document);
            open_all_of_parts(&mut document);
            serde_json::to_string(&document).unwrap_or_else(|_| "{}".to_owned())
        })
        .clone()
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::Utc;
    use keyward_core::{Environment, KeyId, PlanName, UserId};
    use keyward_store::{KeyRecord, UserRecord};
    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::from_str(&document_json()).unwrap()
    }

    fn schema_fields(document: &Value, name: &str) -> BTreeSet<String> {
        document["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {name} has properties"))
            .keys()
            .cloned()
            .collect()
    }

    fn value_fields(value: &Value) -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    fn record() -> KeyRecord {
        KeyRecord {
            id: KeyId::generate(),
            key_prefix: "sk_live_abcd…".into(),
            prefix: None,
            user_id: UserId::parse("u").unwrap(),
            name: "n".into(),
            environment: Environment::Live,
            plan: None,
            user_plan: PlanName::free(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            expires_at: None,
            last_used_at: None,
            request_count: 0,
            is_active: true,
            enabled: true,
            revoked_at: None,
            replaced_by: None,
            rate_limit_per_hour: None,
            limits: None,
            allowed_ips: None,
            scopes: Vec::new(),
            metadata: Default::default(),
            lineage_id: "l".into(),
            imported: false,
            disabled_by: None,
            locked_metadata: Vec::new(),
        }
    }

    #[test]
    fn response_schemas_match_what_the_handlers_serialize() {
        let document = document();
        let record = record();
        let key = serde_json::to_value(crate::views::KeyObject::of(&record, Utc::now())).unwrap();
        assert_eq!(schema_fields(&document, "KeyObject"), value_fields(&key));

        let user = UserRecord {
            user_id: UserId::parse("u").unwrap(),
            plan: PlanName::free(),
            email: None,
            company: None,
            metadata: Default::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
            key_count: 0,
            deleted_at: None,
        };
        assert_eq!(
            schema_fields(&document, "UserObject"),
            value_fields(&serde_json::to_value(user).unwrap())
        );
    }

    #[test]
    fn flattened_parts_accept_the_fields_of_the_whole() {
        let document = document();
        for name in ["PlanObject", "PlanBody"] {
            let parts = document["components"]["schemas"][name]["allOf"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} is an allOf"));
            assert!(
                parts
                    .iter()
                    .all(|part| part.get("additionalProperties").is_none())
            );
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_route() {
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(document["paths"].as_object().unwrap().len(), 19);
    }

    #[test]
    fn every_operation_has_a_summary_and_an_id_of_its_own() {
        let document = document();
        let mut ids = BTreeSet::new();
        let mut operations = 0;
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                operations += 1;
                let summary = operation["summary"].as_str().unwrap_or_default();
                assert!(!summary.is_empty(), "{method} {path} has no summary");
                let id = operation["operationId"].as_str().unwrap().to_owned();
                assert!(ids.insert(id.clone()), "{id} is used twice");
            }
        }
        assert_eq!(operations, 31);
        let authorize = document["paths"]["/v1/authorize"].as_object().unwrap();
        let methods: BTreeSet<&str> = authorize.keys().map(String::as_str).collect();
        assert_eq!(
            methods,
            BTreeSet::from(["delete", "get", "head", "options", "patch", "post", "put"])
        );
    }

    #[test]
    fn links_name_operations_that_exist_in_openapi_spelling() {
        let document = document();
        let links = &document["paths"]["/v1/keys"]["post"]["responses"]["201"]["links"];
        let links = links.as_object().expect("links from a created key");
        assert!(links.len() >= 5, "{links:?}");
        for link in links.values() {
            assert!(link.get("operation_ref").is_none(), "{link}");
            let target = link["operationRef"].as_str().expect("operationRef");
            let pointer = target.strip_prefix('#').unwrap();
            assert!(
                document.pointer(pointer).is_some(),
                "{target} names no operation"
            );
            assert_eq!(link["parameters"]["id"], "$response.body#/id");
        }
    }

    #[test]
    fn codes_in_the_document_are_every_code_the_server_answers_with() {
        use keyward_core::Code;
        let names = |codes: &[Value]| -> BTreeSet<String> {
            codes
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect()
        };
        let document = document();
        let decision = names(
            document["components"]["schemas"]["DecisionCode"]["enum"]
                .as_array()
                .unwrap(),
        );
        let all: BTreeSet<String> = Code::ALL.iter().map(|c| c.as_str().to_owned()).collect();
        assert_eq!(decision, all);
        let problem = names(
            document["components"]["schemas"]["ProblemCode"]["enum"]
                .as_array()
                .unwrap(),
        );

        use crate::error::ApiError;
        let mut answered: BTreeSet<String> = Code::ALL
            .iter()
            .filter(|c| **c != Code::Valid)
            .map(|c| c.as_str().to_owned())
            .collect();
        for error in [
            ApiError::BadRequest(String::new()),
            ApiError::UnsupportedMediaType,
            ApiError::Validation(String::new()),
            ApiError::PayloadTooLarge,
            ApiError::Unauthorized("x"),
            ApiError::Forbidden(String::new()),
            ApiError::NotFound("key"),
            ApiError::Conflict(String::new()),
            ApiError::Unavailable,
            ApiError::RequestTimeout,
        ] {
            answered.insert(error.code().to_owned());
        }
        answered.insert("METHOD_NOT_ALLOWED".to_owned());
        assert_eq!(problem, answered);
        let listed: BTreeSet<String> = crate::error::REQUEST_PROBLEM_CODES
            .iter()
            .map(|code| (*code).to_owned())
            .collect();
        assert!(listed.is_subset(&answered));
    }
}
