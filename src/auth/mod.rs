//! Who may use the HTTP API: argon2id password hashes (`password`) and the HS256 access tokens
//! issued after a login (`jwt`, algorithm pinned, `exp` required, no leeway); the password,
//! lockout and secret rules (`policy`); long-lived API tokens (`api_token`, stored hashed).

pub mod api_token;
pub mod hasher;
pub mod jwt;
pub mod password;
pub mod policy;
pub mod throttle;

pub use password::{hash_password, verify_password};
