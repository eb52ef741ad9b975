//! The committed OpenAPI description (docs/openapi.json) names exactly the routes the router
//! serves, and the router answers each of them.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use serde_json::Value;

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

fn described() -> BTreeSet<(String, String)> {
    let text = include_str!("../../../docs/openapi.json");
    let document: Value = serde_json::from_str(text).expect("docs/openapi.json is JSON");
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document"
    );
    let paths = document["paths"].as_object().expect("it has paths");
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("a path item is an object").keys() {
            if METHODS.contains(&method.as_str()) {
                routes.insert((method.clone(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn the_openapi_description_lists_every_route_and_no_other() {
    let served: BTreeSet<(String, String)> = powchain_api::ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    let described = described();
    let missing: Vec<_> = served.difference(&described).collect();
    let extra: Vec<_> = described.difference(&served).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "served but not described: {missing:?}; described but not served: {extra:?}"
    );
}

#[test]
fn every_change_requires_the_token_in_the_description() {
    let text = include_str!("../../../docs/openapi.json");
    let document: Value = serde_json::from_str(text).unwrap();
    for (method, path) in powchain_api::ROUTES {
        let operation = &document["paths"][path][method];
        let secured = operation["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearerAuth").is_some()));
        assert_eq!(
            secured,
            *method != "get",
            "{method} {path}: only changes need the token"
        );
        assert!(
            operation["responses"].is_object(),
            "{method} {path} has responses"
        );
    }
}
