//! Passwords (argon2id) and tokens (JWT HS256, algorithm pinned).
//! INTERFACE STUB written by the lead: the api helper replaces the bodies (password.rs, jwt.rs).

/// Argon2id PHC string of `password` (OWASP parameters). Slow: call from `spawn_blocking`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let _ = password;
    unimplemented!()
}

/// Constant-time check of `password` against a PHC string; false on any malformed hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let _ = (password, phc);
    unimplemented!()
}
