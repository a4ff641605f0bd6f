//! A Rust service protected by keyward in library mode: the same verification as
//! `keyward serve`, in process, on the same embedded database.
//!
//! ```sh
//! cargo run -p keyward -- keys create --user-id alice --name demo --scope reports:read
//! cargo run -p keyward-server --example protected_api
//! curl -H "Authorization: Bearer sk_live_…" http://127.0.0.1:3000/hello
//! ```
//!
//! Settings: `KEYWARD_DATABASE_URL` (default `sqlite://keyward.db`) and `LISTEN`
//! (default `127.0.0.1:3000`).

use axum::Router;
use axum::routing::get;
use keyward_core::Scope;
use keyward_server::{AuthenticatedKey, Engine, EngineConfig};

/// Who is calling, straight from the verified key.
async fn hello(key: AuthenticatedKey) -> String {
    format!(
        "hello {} (plan {}, key {})\n",
        key.user_id, key.plan, key.key_id
    )
}

async fn report(key: AuthenticatedKey) -> String {
    format!("the report for {}\n", key.user_id)
}

/// The service's routes behind keyward: every route needs a valid key, `/reports` also the
/// `reports:read` scope.
pub async fn app(database_url: &str) -> Result<(Router, Engine), Box<dyn std::error::Error>> {
    let keyward = Engine::open(&EngineConfig::embedded(database_url)).await?;
    let reports = Router::new().route("/reports", get(report)).layer(
        keyward
            .layer()
            .require_scopes([Scope::parse("reports:read")?]),
    );
    let app = Router::new()
        .route("/hello", get(hello))
        .layer(keyward.layer())
        .merge(reports);
    Ok((app, keyward))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database_url =
        std::env::var("KEYWARD_DATABASE_URL").unwrap_or_else(|_| "sqlite://keyward.db".to_owned());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let (app, keyward) = app(&database_url).await?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "protected api listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    keyward.shutdown().await;
    Ok(())
}
