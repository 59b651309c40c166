//! Test support shared by the contract, AWS and end-to-end suites.

// Test support only: a panic (unwrap) is how a harness reports a broken
// fixture, and progress lines go to the test output.
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::print_stdout)]

pub mod contract;
pub mod customer_contract;
pub mod fake_bigcommerce;
pub mod faults;
pub mod lambda_api;
pub mod local_app;
pub mod moto;
pub mod openapi;
pub mod pii;
pub mod report_facts;
pub mod samples;
pub mod template_contract;
pub mod voucher_contract;
pub mod webhook_endpoint;
