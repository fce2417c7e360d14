//! Faults and hostile input against the real test bed, one module per source of trouble:
//! the registry (`registry`), the API server (`api`), the instance spec (`instance`). Each
//! test has a cluster of its own; README's reliability table lists them with their outcomes.

mod api;
mod instance;
mod registry;
