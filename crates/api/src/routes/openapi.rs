//! `/api/v1/openapi.json`: the OpenAPI 3 description of this API, kept in
//! step with the router by a test (every route described, nothing
//! described that is not routed).

use axum::http::header;
use axum::response::IntoResponse;

/// The description, as served.
pub const OPENAPI: &str = include_str!("../../assets/openapi.json");

pub(crate) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::ROUTES;

    #[test]
    fn the_description_names_exactly_the_routes_and_their_methods() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let paths = doc["paths"].as_object().expect("paths");
        let mut described: Vec<(String, Vec<String>)> = paths
            .iter()
            .map(|(p, item)| {
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|o| {
                        o.keys()
                            .filter(|k| {
                                ["get", "post", "put", "delete", "patch"].contains(&k.as_str())
                            })
                            .map(|k| k.to_ascii_uppercase())
                            .collect()
                    })
                    .unwrap_or_default();
                methods.sort();
                (p.clone(), methods)
            })
            .collect();
        described.sort();
        let mut routed: Vec<(String, Vec<String>)> = ROUTES
            .iter()
            .map(|(p, m)| {
                let mut m: Vec<String> = m.iter().map(|s| s.to_string()).collect();
                m.sort();
                (p.to_string(), m)
            })
            .collect();
        routed.sort();
        assert_eq!(described, routed);
    }
}
