//! Issued OAuth access tokens and the HTTP Basic credentials the token endpoint reads.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use base64::Engine;
use tokio::time::Instant;

/// Above this many remembered tokens, issuing one first forgets the expired ones.
const PRUNE_ABOVE: usize = 1024;

/// What a bearer token is worth right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenCheck {
    /// Issued and not expired.
    Valid,
    /// Issued, but its lifetime is over.
    Expired,
    /// Never issued (or forgotten after the credentials were revoked).
    Unknown,
}

/// The tokens issued so far, each with its expiry. `Debug` shows only counts.
#[derive(Default)]
pub(crate) struct TokenStore {
    expiry: HashMap<String, Instant>,
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenStore")
            .field("issued", &self.expiry.len())
            .finish()
    }
}

impl TokenStore {
    /// Issues a new random opaque token valid for `lifetime` from `now`.
    pub(crate) fn issue(&mut self, now: Instant, lifetime: Duration) -> String {
        if self.expiry.len() > PRUNE_ABOVE {
            self.expiry.retain(|_, expires| *expires > now);
        }
        let token = format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        self.expiry.insert(token.clone(), now + lifetime);
        token
    }

    /// What `token` is worth at `now`.
    pub(crate) fn check(&self, token: &str, now: Instant) -> TokenCheck {
        match self.expiry.get(token) {
            Some(expires) if now < *expires => TokenCheck::Valid,
            Some(_) => TokenCheck::Expired,
            None => TokenCheck::Unknown,
        }
    }

    /// Ends the lifetime of every token issued so far (they answer "expired" from now on).
    pub(crate) fn expire_all(&mut self, now: Instant) {
        for expires in self.expiry.values_mut() {
            *expires = (*expires).min(now);
        }
    }

    /// Forgets every token (they answer "invalid" from now on).
    pub(crate) fn clear(&mut self) {
        self.expiry.clear();
    }

    /// How many issued tokens are still valid at `now`.
    pub(crate) fn live(&self, now: Instant) -> usize {
        self.expiry
            .values()
            .filter(|expires| now < **expires)
            .count()
    }
}

/// The `client_id:client_secret` pair of an `Authorization: Basic …` header.
pub(crate) struct BasicCredentials {
    pub(crate) id: String,
    pub(crate) secret: String,
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("id", &self.id)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// Reads HTTP Basic credentials from an `Authorization` header value (scheme in any case).
pub(crate) fn basic_credentials(header: &str) -> Option<BasicCredentials> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some(BasicCredentials {
        id: id.to_owned(),
        secret: secret.to_owned(),
    })
}

/// The token of an `Authorization: Bearer …` header value (scheme in any case).
pub(crate) fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_and_are_forgotten() {
        let mut store = TokenStore::default();
        let t0 = Instant::now();
        let token = store.issue(t0, Duration::from_secs(2));
        let other = store.issue(t0, Duration::from_secs(3600));
        assert_ne!(token, other);
        assert_eq!(token.len(), 64);
        assert_eq!(store.check(&token, t0), TokenCheck::Valid);
        assert_eq!(
            store.check(&token, t0 + Duration::from_secs(2)),
            TokenCheck::Expired
        );
        assert_eq!(store.check("nope", t0), TokenCheck::Unknown);
        assert_eq!(store.live(t0), 2);
        store.expire_all(t0);
        assert_eq!(store.check(&other, t0), TokenCheck::Expired);
        store.clear();
        assert_eq!(store.check(&other, t0), TokenCheck::Unknown);
        assert!(!format!("{store:?}").contains(&token));
    }

    #[test]
    fn authorization_headers_parse() {
        // "id:se:cret" — the secret may contain a colon.
        let creds = basic_credentials("Basic aWQ6c2U6Y3JldA==").unwrap();
        assert_eq!(
            (creds.id.as_str(), creds.secret.as_str()),
            ("id", "se:cret")
        );
        assert!(!format!("{creds:?}").contains("se:cret"));
        assert!(basic_credentials("basic aWQ6c2U6Y3JldA==").is_some());
        assert!(basic_credentials("Bearer aWQ6c2U6Y3JldA==").is_none());
        assert!(basic_credentials("Basic !!!").is_none());
        assert!(
            basic_credentials("Basic bm9jb2xvbg==").is_none(),
            "no colon"
        );
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Basic abc"), None);
    }
}
