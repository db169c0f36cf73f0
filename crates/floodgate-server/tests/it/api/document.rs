//! The API document tells what the handlers do: every route declares every problem status it
//! may answer (one declaration, `error::Problems`, which a route may override with a body of
//! its own), and the limits the handlers enforce are in
//! the schema (lengths, ranges, patterns); a request the schema refuses is refused.

use axum::http::StatusCode;

use crate::support::{get, test_app};

#[tokio::test]
async fn every_route_declares_its_problems_and_the_schema_its_limits() {
    let (app, _) = test_app().await;
    let doc = get(&app, "/openapi.json").await.body;
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            for status in [
                "400", "401", "403", "404", "408", "409", "413", "422", "500", "503",
            ] {
                let declared = responses.get(status).unwrap_or_else(|| {
                    panic!("{method} {path} does not declare {status}: {responses:?}")
                });
                let declared = match declared.get("$ref").and_then(|r| r.as_str()) {
                    Some(r) => &doc["components"]["responses"][r.rsplit('/').next().unwrap()],
                    None => declared,
                };
                // A problem document, unless the route answers that status with its own body
                // (`/health/ready`'s 503 is its health report).
                let content = declared["content"].as_object();
                assert!(
                    content.is_some_and(|c| !c.is_empty()),
                    "{method} {path} {status}: {declared}"
                );
            }
        }
    }
    // Client generators need each operation named once.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().expect("an operationId"))
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "an operationId is used twice: {ids:?}");
    let beat = &doc["paths"]["/v1/permits/{id}/heartbeat"]["post"]["requestBody"];
    assert!(beat.to_string().contains("PermitHeartbeat"), "{beat}");
    let job = &doc["components"]["schemas"]["JobRequest"]["properties"];
    assert_eq!(job["kind"]["minLength"], 1, "{job}");
    assert_eq!(job["kind"]["maxLength"], 255, "{job}");
    assert_eq!(job["priority"]["minimum"], 1, "{job}");
    assert_eq!(job["priority"]["maximum"], 10, "{job}");
    let claim = &doc["components"]["schemas"]["ClaimRequest"]["properties"];
    assert_eq!(claim["wait"]["maximum"], 30, "{claim}");
    let list = doc["paths"]["/v1/jobs"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let limit = list.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(limit["schema"]["minimum"], 1, "{limit}");
    // And the handler holds to it: a page of 0 is refused, not the default.
    let zero = get(&app, "/v1/jobs?limit=0").await;
    assert_eq!(
        zero.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        zero.body
    );
}
