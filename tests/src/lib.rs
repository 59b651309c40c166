
pub mod moto;
pub mod contract;
pub mod samples;
pub mod openapi;
