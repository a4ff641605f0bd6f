//! keyward's black-box HTTP suites, in one test binary: each module starts real servers
//! (`support::TestServer`, one per test, on a free loopback port with its own database)
//! and drives them as a client would. One binary compiles and links the harness once.

mod support;

mod admin_keys;
mod attacks;
mod billing_sinks;
mod cluster;
mod dashboard;
mod fuzz_inputs;
mod gateways;
mod https;
mod input;
mod leaks;
mod lifetime;
mod limits;
mod management;
mod races;
mod redis;
mod server;
mod usage;
mod verify;
mod webhooks;
