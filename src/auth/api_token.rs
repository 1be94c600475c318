//! Long-lived API tokens for scripts and integrations: `rzm_` + 64 hex digits (256 random
//! bits). Only the SHA-256 of a token is stored; with that much entropy a fast hash cannot be
//! searched, and checking one costs microseconds instead of an argon2 run per request. The
//! prefix tells a token from a session JWT (a JWT never starts with it).

use sha2::{Digest, Sha256};

pub const PREFIX: &str = "rzm_";

/// A fresh token (shown to its owner once).
pub fn generate() -> String {
    format!("{PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// Whether `token` is meant as an API token (it may still be unknown or revoked).
pub fn is_api_token(token: &str) -> bool {
    token.starts_with(PREFIX)
}

/// What is stored for `token`: hex SHA-256.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens are prefixed, 68 characters, distinct; the hash is stable and not the token.
    #[test]
    fn tokens_and_hashes() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert_eq!(a.len(), PREFIX.len() + 64);
        assert!(is_api_token(&a) && !is_api_token("eyJhbGciOiJIUzI1NiJ9.e30.x"));
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 64);
        assert!(!hash(&a).contains(&a[PREFIX.len()..]));
    }
}
