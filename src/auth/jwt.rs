//! Access tokens: JWT HS256 with claims `{sub, uid, tgen, jti, iat, exp}` (`uid`/`tgen` tie the
//! token to one user and its token generation, `jti` names it for logout). Verification accepts HS256 only
//! (so `alg:none` and algorithm confusion fail), requires `exp`, and allows no leeway: the same
//! process issues and checks tokens, so there is no clock skew to forgive.

use super::policy::MIN_SECRET_LEN;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The username.
    pub sub: String,
    /// The user's id (never reused).
    pub uid: i64,
    /// The user's token generation when the token was issued.
    pub tgen: i64,
    /// Random token id (logout ends exactly this token).
    pub jti: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
}

/// Why a key set could not be built or a token not issued.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the JWT secret must be at least {MIN_SECRET_LEN} bytes")]
    ShortSecret,
    #[error("JWT error: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// Signing and verifying keys plus the pinned validation rules.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl JwtKeys {
    /// Keys for `secret`; tokens issued live for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Result<Self, KeyError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(KeyError::ShortSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_required_spec_claims(&["exp", "iat", "sub", "jti"]);
        validation.validate_exp = true;
        validation.leeway = 0;
        validation.validate_aud = false;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            validation,
            ttl,
        })
    }

    /// Lifetime of issued tokens.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for `username` (id `uid`, token generation `tgen`), valid from now for the
    /// configured lifetime.
    pub fn issue(&self, username: &str, uid: i64, tgen: i64) -> Result<(String, Claims), KeyError> {
        self.issue_for(username, uid, tgen, self.ttl)
    }

    /// `issue` with another lifetime ("keep me signed in").
    pub fn issue_for(
        &self,
        username: &str,
        uid: i64,
        tgen: i64,
        ttl: Duration,
    ) -> Result<(String, Claims), KeyError> {
        let iat = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: username.to_owned(),
            uid,
            tgen,
            jti: hex::encode(rand::random::<[u8; 16]>()),
            iat,
            exp: iat.saturating_add(ttl.as_secs().max(1)),
        };
        self.sign(&claims).map(|t| (t, claims))
    }

    fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &self.encoding,
        )?)
    }

    /// The claims of a valid, unexpired HS256 token signed with our secret.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if *e.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                Err(TokenError::Expired)
            }
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> JwtKeys {
        JwtKeys::new(SECRET, Duration::from_secs(3600)).expect("keys")
    }

    /// A freshly issued token verifies and carries sub, iat and exp.
    #[test]
    fn issued_token_verifies() {
        let k = keys();
        let (token, claims) = k.issue("admin", 1, 0).expect("issue");
        assert_eq!(claims.exp - claims.iat, 3600);
        assert_eq!(k.verify(&token), Ok(claims));
    }

    /// A token that expired one second ago is refused: no 60 s default leeway.
    #[test]
    fn expired_token_is_refused_without_leeway() {
        let k = keys();
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: "admin".into(),
            uid: 1,
            tgen: 0,
            jti: "j".into(),
            iat: now - 100,
            exp: now - 1,
        };
        let token = k.sign(&claims).expect("sign");
        assert_eq!(k.verify(&token), Err(TokenError::Expired));
    }

    /// A hand-made `alg:none` token with valid claims and no signature is refused.
    #[test]
    fn alg_none_is_refused() {
        let k = keys();
        let (token, _) = k.issue("admin", 1, 0).expect("issue");
        let payload = token.split('.').nth(1).expect("payload part");
        // base64url of {"alg":"none","typ":"JWT"}
        let none_header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        for forged in [
            format!("{none_header}.{payload}."),
            format!("{none_header}.{payload}"),
        ] {
            assert_eq!(k.verify(&forged), Err(TokenError::Invalid), "{forged}");
        }
    }

    /// Tokens signed with another key, or with HS512 under our key, are refused.
    #[test]
    fn other_key_and_other_algorithm_are_refused() {
        let other = JwtKeys::new(b"another-secret-another-secret-00", Duration::from_secs(60))
            .expect("keys");
        let (token, claims) = other.issue("admin", 1, 0).expect("issue");
        assert_eq!(keys().verify(&token), Err(TokenError::Invalid));

        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(SECRET).expect("key"),
        )
        .expect("encode");
        assert_eq!(keys().verify(&hs512), Err(TokenError::Invalid));
    }

    /// Garbage and tokens missing `exp` are refused without panicking.
    #[test]
    fn garbage_and_missing_exp_are_refused() {
        let k = keys();
        for bad in ["", "abc", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.e30.x"] {
            assert_eq!(k.verify(bad), Err(TokenError::Invalid), "{bad:?}");
        }
        #[derive(Serialize)]
        struct NoExp<'a> {
            sub: &'a str,
            iat: u64,
        }
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &NoExp {
                sub: "admin",
                iat: 1,
            },
            &EncodingKey::from_secret(SECRET).expect("key"),
        )
        .expect("encode");
        assert_eq!(k.verify(&token), Err(TokenError::Invalid));
    }

    /// A secret shorter than 256 bits is refused.
    #[test]
    fn short_secret_is_refused() {
        assert!(matches!(
            JwtKeys::new(b"short", Duration::from_secs(60)),
            Err(KeyError::ShortSecret)
        ));
    }
}
