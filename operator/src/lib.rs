//! fluxop: a Kubernetes operator for the lifecycle of the Flux GitOps toolkit.
#![forbid(unsafe_code)]

pub mod api;
pub mod apply;
pub mod bundle;
pub mod cel;
pub mod cli;
pub mod controller;
pub mod policy;
pub mod poll;
pub mod render;
pub mod report;
pub mod resourceset;
pub mod server;
pub mod task;
pub mod telemetry;
pub mod template;
pub mod yaml;

#[cfg(test)]
pub(crate) mod testing;
