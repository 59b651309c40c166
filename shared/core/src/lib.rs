//! Cartback's domain core. Everything here is runtime-agnostic: the pure
//! domain (events, carts, customers, campaigns, the decision engine), the
//! ports (traits) that each runtime implements, and the services that drive
//! the pipeline through those ports. No module in `domain` or `engine` does
//! I/O or reads a clock.

pub mod api;
pub mod backtest;
pub mod campaign;
pub mod cart;
pub mod consent;
pub mod contact;
pub mod customer;
pub mod customer_data;
pub mod engagement;
pub mod engine;
pub mod enum_names;
pub mod event;
pub mod ids;
pub mod locale;
pub mod measure;
pub mod message;
pub mod ports;
pub mod reason;
pub mod render;
pub mod service;
pub mod short_link;
pub mod signing;
pub mod sms;
pub mod sources;
pub mod template;
pub mod voucher;
pub mod webhook;

pub use chrono::{DateTime, Duration, Utc};
pub use rust_decimal::Decimal;
