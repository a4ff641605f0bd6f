//! keyward's HTTP service: the management API, `/v1/verify`, `/v1/authorize`, and the
//! same verification as a tower layer for Rust services.

pub mod admin;
pub mod auth;
pub mod billing;
pub mod config;
pub mod error;
pub mod extract;
pub mod feed;
mod headers;
pub mod https;
pub mod layer;
pub mod leaks;
pub mod openapi;
pub mod reports;
pub mod routes;
pub mod self_service;
pub mod serve;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod ui;
pub mod usage;
pub mod verifier;
pub mod views;
pub mod webhooks;

pub use config::ServerConfig;
pub use layer::{AuthenticatedKey, KeywardLayer, LayerOptions};
pub use startup::{Application, Engine, EngineConfig, StartupError};
