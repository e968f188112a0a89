//! Access tokens: minted in the shape of a JWT, remembered server-side until they expire.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

/// The JOSE header of every token; it encodes to the `eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9`
/// prefix shown in the API documentation.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Expired tokens are kept this long so they keep answering `token_expired`.
const EXPIRED_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;

/// Past this many stored tokens, long-expired ones are forgotten.
const MAX_TOKENS: usize = 10_000;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

/// What the sandbox remembers about a token it issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub api_key: String,
    pub expires_at_ms: u64,
}

impl TokenRecord {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms >= self.expires_at_ms
    }
}

/// Every token issued, by its full text.
#[derive(Debug, Default)]
pub struct TokenStore {
    tokens: HashMap<String, TokenRecord>,
}

impl TokenStore {
    /// Mints a token for `api_key` valid for `ttl_secs` from `now_ms` and remembers it.
    pub fn issue(&mut self, api_key: &str, now_ms: u64, ttl_secs: u64) -> String {
        self.forget_stale(now_ms);
        let token = mint(api_key, now_ms / 1000, ttl_secs);
        let record = TokenRecord {
            api_key: api_key.to_owned(),
            expires_at_ms: now_ms.saturating_add(ttl_secs.saturating_mul(1000)),
        };
        self.tokens.insert(token.clone(), record);
        token
    }

    pub fn get(&self, token: &str) -> Option<&TokenRecord> {
        self.tokens.get(token)
    }

    /// Makes every token expire at `now_ms`; returns how many were still valid.
    pub fn expire_all(&mut self, now_ms: u64) -> usize {
        let mut expired = 0;
        for record in self.tokens.values_mut() {
            if !record.is_expired(now_ms) {
                record.expires_at_ms = now_ms;
                expired += 1;
            }
        }
        expired
    }

    /// (valid, expired) token counts at `now_ms`.
    pub fn counts(&self, now_ms: u64) -> (usize, usize) {
        let expired = self
            .tokens
            .values()
            .filter(|r| r.is_expired(now_ms))
            .count();
        (self.tokens.len() - expired, expired)
    }

    fn forget_stale(&mut self, now_ms: u64) {
        if self.tokens.len() < MAX_TOKENS {
            return;
        }
        let horizon = now_ms.saturating_sub(EXPIRED_RETENTION_MS);
        self.tokens
            .retain(|_, record| record.expires_at_ms > horizon);
    }
}

/// Header, claims and a random signature, each base64url-encoded without padding.
fn mint(api_key: &str, issued_at: u64, ttl_secs: u64) -> String {
    let claims = Claims {
        sub: api_key,
        iat: issued_at,
        exp: issued_at.saturating_add(ttl_secs),
        jti: hex(&rand::random::<[u8; 16]>()),
    };
    let payload = serde_json::to_vec(&claims).expect("claims of strings and integers serialize");
    let signature = rand::random::<[u8; 32]>();
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_part(token: &str, index: usize) -> serde_json::Value {
        let part = token.split('.').nth(index).expect("token has three parts");
        let bytes = URL_SAFE_NO_PAD.decode(part).expect("part is base64url");
        serde_json::from_slice(&bytes).expect("part is JSON")
    }

    #[test]
    fn tokens_start_like_the_documented_example() {
        let token = mint("pk_live_abc123", 1_700_000_000, 3600);

        assert!(token.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
        assert_eq!(token.split('.').count(), 3);
    }

    #[test]
    fn claims_name_the_key_and_the_lifetime() {
        let token = mint("pk_live_abc123", 1_700_000_000, 3600);
        let claims = decode_part(&token, 1);

        assert_eq!(claims["sub"], "pk_live_abc123");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_003_600);
        assert_eq!(claims["jti"].as_str().map(str::len), Some(32));
    }

    #[test]
    fn each_token_is_different() {
        assert_ne!(mint("pk_a", 1, 1), mint("pk_a", 1, 1));
    }

    #[test]
    fn issued_tokens_expire_after_their_ttl() {
        let mut store = TokenStore::default();
        let token = store.issue("pk_a", 10_000, 5);
        let record = store.get(&token).expect("token was stored");

        assert_eq!(record.api_key, "pk_a");
        assert!(!record.is_expired(14_999));
        assert!(record.is_expired(15_000));
    }

    #[test]
    fn expire_all_ends_every_valid_token_now() {
        let mut store = TokenStore::default();
        store.issue("pk_a", 0, 5);
        store.issue("pk_b", 0, 3600);
        store.issue("pk_c", 0, 1);

        assert_eq!(store.expire_all(2_000), 2);
        assert_eq!(store.counts(2_000), (0, 3));
    }
}
