//! Password hashing with argon2id at the OWASP parameters (m=19456 KiB, t=2, p=1), stored as
//! PHC strings. Both functions are slow on purpose: call them from `spawn_blocking`.

use argon2::password_hash::phc::Output;
use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
};

/// Largest argon2 memory a stored hash may ask `verify_password_in` for (64 MiB); above it the
/// hash does not verify.
const MAX_BLOCKS: usize = 64 * 1024;

/// A PHC string of the same cost as real hashes, whose password nobody knows. Logins for unknown
/// users are verified against it so that they take as long as logins with a wrong password.
pub const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$cnptb24tZHVtbXktc2FsdA$\
Pp0uQgVZ4GAmvEqBgaJvPNRHcuHN0NhfGXGBb2CnHTE";

/// Argon2id PHC string of `password` with a fresh random salt. Slow: call from `spawn_blocking`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    Ok(hash.to_string())
}

/// Constant-time check of `password` against a PHC string; false on any malformed hash.
/// The cost parameters come from the PHC string itself.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// `verify_password` computed in the caller's `memory` (grown once to the hash's `m` and then
/// reused), so repeated verifications on one thread allocate nothing big: the hashing threads
/// keep their 19 MiB for good instead of leaving freed 19 MiB chunks in malloc arenas.
pub fn verify_password_in(password: &str, phc: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(hash.algorithm.as_str()),
        Params::try_from(&hash),
    ) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .is_ok()
        // `Output`'s equality is constant-time.
        && Output::new(&out).is_ok_and(|o| o == *expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash verifies its own password only, and carries the OWASP argon2id parameters.
    #[test]
    fn hash_then_verify() {
        let phc = hash_password("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong horse", &phc));
        let mut memory = Vec::new();
        assert!(verify_password_in("correct horse", &phc, &mut memory));
        assert!(!verify_password_in("wrong horse", &phc, &mut memory));
        assert_eq!(memory.len(), 19_456, "one 19 MiB buffer, reused");
        assert!(verify_password_in("correct horse", &phc, &mut memory));
        assert!(!verify_password_in("x", "$argon2id$v=19$m=1", &mut memory));
    }

    /// Malformed or foreign hashes never verify and never panic.
    #[test]
    fn malformed_hash_is_false() {
        for bad in [
            "",
            "plain",
            "$argon2id$",
            "$2b$12$abcdefghijklmnopqrstuv",
            "$argon2id$v=19$m=1",
        ] {
            assert!(!verify_password("x", bad), "{bad:?}");
        }
    }

    /// The dummy hash is well formed (so unknown users cost a full verification) and matches
    /// neither an empty nor a typical password.
    #[test]
    fn dummy_hash_is_a_real_argon2id_hash() {
        let parsed = argon2::PasswordHash::new(DUMMY_PHC).expect("dummy PHC parses");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(!verify_password("", DUMMY_PHC));
        assert!(!verify_password("admin", DUMMY_PHC));
    }
}
