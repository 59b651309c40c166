
pub mod moto;
pub mod contract;
