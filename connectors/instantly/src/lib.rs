//! ferry-instantly: the Instantly.ai API v2 connector.

#[cfg(feature = "sim")]
pub mod sim;
