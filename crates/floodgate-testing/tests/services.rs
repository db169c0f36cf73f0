//! The helpers themselves: a private schema that vanishes, Redis discovery, and skipping.

use floodgate_testing::sqlx::{self, Row};

#[tokio::test]
async fn a_test_schema_is_private_and_dropped_afterwards() {
    let Some(a) = floodgate_testing::postgres_schema("helper").await else {
        return;
    };
    let Some(b) = floodgate_testing::postgres_schema("helper").await else {
        return;
    };
    assert_ne!(a.name(), b.name());
    sqlx::query("CREATE TABLE jobs (id int)")
        .execute(a.pool())
        .await
        .unwrap();
    // The same table name in another schema does not clash.
    sqlx::query("CREATE TABLE jobs (id int)")
        .execute(b.pool())
        .await
        .unwrap();
    let current: String = sqlx::query("SELECT current_schema()")
        .fetch_one(a.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(current, a.name());

    let name = a.name().to_owned();
    let url = a.url().to_owned();
    drop(a);
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let left: i64 = sqlx::query("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
        .bind(&name)
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "schema {name} should be gone");
}

#[tokio::test]
async fn redis_is_found_when_it_answers() {
    // Skips (printing why) when Redis is down, unless FLOODGATE_REQUIRE_SERVICES=1.
    let Some(url) = floodgate_testing::redis_url().await else {
        return;
    };
    floodgate_testing::ping_redis(&url)
        .await
        .expect("the URL found answers PING");
    // The probe tells a server that answers from one that does not, and a wrong scheme.
    let closed = floodgate_testing::ping_redis("redis://127.0.0.1:1").await;
    assert!(closed.is_err(), "{closed:?}");
    let wrong = floodgate_testing::ping_redis("http://127.0.0.1:6379").await;
    assert!(wrong.is_err_and(|e| e.contains("not a redis:// URL")));
}

#[test]
fn an_unavailable_service_skips_or_fails_as_configured() {
    let outcome = std::panic::catch_unwind(|| {
        floodgate_testing::unavailable::<()>("Example", "example://", "connection refused")
    });
    if floodgate_testing::services_required() {
        assert!(outcome.is_err(), "must fail when services are required");
    } else {
        assert_eq!(outcome.unwrap(), None);
    }
}
