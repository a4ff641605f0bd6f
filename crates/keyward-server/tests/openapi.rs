//! The published OpenAPI document: its response schemas match what the handlers serialize,
//! every operation has a summary and an id of its own, links name real operations, and
//! `code` lists every code the server answers with.
use std::collections::BTreeSet;

use chrono::Utc;
use keyward_core::{Environment, KeyId, PlanName, UserId};
use keyward_store::{KeyRecord, UserRecord};
use serde_json::Value;

use keyward_server::routes::health::document_json;

fn document() -> Value {
    serde_json::from_str(document_json()).unwrap()
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
    let key =
        serde_json::to_value(keyward_server::views::KeyObject::of(&record, Utc::now())).unwrap();
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
    assert_eq!(document["paths"].as_object().unwrap().len(), 31);
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
    assert_eq!(operations, 48);
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

    use keyward_server::error::ApiError;
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
        ApiError::HttpsRequired,
    ] {
        answered.insert(error.code().to_owned());
    }
    answered.insert("METHOD_NOT_ALLOWED".to_owned());
    assert_eq!(problem, answered);
    let listed: BTreeSet<String> = keyward_server::error::REQUEST_PROBLEM_CODES
        .iter()
        .map(|code| (*code).to_owned())
        .collect();
    assert!(listed.is_subset(&answered));
}

#[test]
fn every_admin_operation_names_the_permission_an_admin_key_needs() {
    let document = document();
    let mut admin_operations = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let takes_admin = operation["security"]
                .as_array()
                .is_some_and(|schemes| schemes.iter().any(|s| s.get("admin").is_some()));
            if !takes_admin {
                continue;
            }
            admin_operations += 1;
            let needed = keyward_server::routes::permissions::needed(
                &method.to_ascii_uppercase().parse().unwrap(),
                path,
            )
            .unwrap_or_else(|| panic!("{method} {path} takes the admin but has no permission row"));
            let listed: Vec<&str> = operation["x-permissions"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} has no x-permissions"))
                .iter()
                .map(|p| p.as_str().unwrap())
                .collect();
            let expected: Vec<&str> = needed.iter().map(|p| p.as_str()).collect();
            assert_eq!(listed, expected, "{method} {path}");
            assert!(
                operation["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("Admin keys need")),
                "{method} {path}"
            );
        }
    }
    // Every row of the table names an operation that exists.
    assert_eq!(
        admin_operations,
        keyward_server::routes::permissions::TABLE.len()
    );
}

#[test]
fn the_admin_keys_page_lists_every_row_of_the_permission_table() {
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../documentation/security/admin-keys.md"),
    )
    .unwrap();
    for (method, route, needed) in keyward_server::routes::permissions::TABLE {
        let names: Vec<String> = needed.iter().map(|p| format!("`{p}`")).collect();
        let row = format!("| `{method} {route}` | {} |", names.join(", "));
        assert!(page.contains(&row), "the page lacks {row}");
    }
}
