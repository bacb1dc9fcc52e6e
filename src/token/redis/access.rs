//! [`RedisTokenStore`] as an access-token store: one key per token, under its
//! family's hash when it has one.

use std::future::Future;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::store::Lookup;
use crate::store::StoreError;
use crate::token::grant::random;
use crate::token::grant::AccessToken;
use crate::token::grant::BearerToken;
use crate::token::grant::FamilyId;
use crate::token::grant::Grant;
use crate::token::grant::IssuedToken;
use crate::token::grant::Revocation;
use crate::token::grant::TokenTypeHint;
use crate::token::redis::store::live_grant;
use crate::token::redis::store::token_hash;
use crate::token::redis::store::Record;
use crate::token::redis::store::RedisTokenStore;
use crate::token::redis::store::ACCESS_TOKEN_BYTES;
use crate::token::redis::store::ACCESS_TOKEN_CHARS;
use crate::token::refresh::millis;
use crate::token::store::TokenStore;

impl TokenStore for RedisTokenStore {
    fn issue(&self, grant: Grant) -> impl Future<Output = Result<IssuedToken, StoreError>> + Send {
        let store = self.clone();
        async move {
            let random = URL_SAFE_NO_PAD.encode(random::<ACCESS_TOKEN_BYTES>()?);
            let value = Record::of(&grant).to_json()?;
            let expires_at = millis(grant.expires_at).max(1);
            let token = match grant.family {
                None => {
                    let key = store.access_key(random.as_bytes());
                    store
                        .redis()
                        .query::<()>("SET", (&key, &value, "PXAT", expires_at))
                        .await?;
                    random
                }
                Some(family) => {
                    let token = family.to_text() + &random;
                    let key = store.family_access_key(family);
                    let field = token_hash(token.as_bytes());
                    let args = [
                        field,
                        value,
                        expires_at.to_string(),
                        store.inner.max_per_family.to_string(),
                    ];
                    let _stored: i64 = store
                        .redis()
                        .script(&store.inner.issue_in_family, &[&key], &args)
                        .await?;
                    token
                }
            };
            Ok(IssuedToken::new(AccessToken::new(token), grant.expires_at))
        }
    }

    /// One `GET` (`HGET` in a family); tokens that cannot be ours cost no round
    /// trip.
    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        if token.to_str().is_none() {
            return Lookup::ready(Ok(None));
        }
        let bytes = token.as_bytes();
        let store = self.clone();
        if bytes.len() == ACCESS_TOKEN_CHARS {
            let key = self.access_key(bytes);
            return Lookup::pending(async move {
                let value: Option<String> = store.redis().query("GET", &key).await?;
                live_grant(value.as_deref(), None)
            });
        }
        let Some((family, key, field)) = self.in_family(bytes) else {
            return Lookup::ready(Ok(None));
        };
        Lookup::pending(async move {
            let value: Option<String> = store.redis().query("HGET", (&key, &field)).await?;
            // `{number}:` first: the issue order, for the cap.
            let record = value.as_deref().map(|value| {
                value
                    .split_once(':')
                    .map_or(value, |(_number, record)| record)
            });
            live_grant(record, Some(family))
        })
    }

    /// `DEL` (`HDEL` in a family). A refresh token given here (whatever the
    /// hint) is left alone: revoke those with
    /// [`RefreshTokenStore::revoke_refresh_token`](crate::token::RefreshTokenStore::revoke_refresh_token), as the revocation endpoint
    /// does.
    fn revoke(
        &self,
        token: BearerToken<'_>,
        _hint: Option<TokenTypeHint>,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send {
        let bytes = token.as_bytes();
        let (command, key, field) = if bytes.len() == ACCESS_TOKEN_CHARS {
            ("DEL", Some(self.access_key(bytes)), None)
        } else if let Some((_, key, field)) = self.in_family(bytes) {
            ("HDEL", Some(key), Some(field))
        } else {
            ("DEL", None, None)
        };
        let store = self.clone();
        async move {
            if let Some(key) = key {
                store.redis().query::<()>(command, (&key, field)).await?;
            }
            Ok(Revocation::Revoked)
        }
    }

    /// One `MULTI`: the family's hash goes, and a marker takes its place until
    /// `until`, so that a token still being issued for the family is not stored.
    fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send {
        let key = self.family_access_key(*family);
        let until = millis(until).max(1);
        let store = self.clone();
        async move {
            let mut pipe = redis::pipe();
            pipe.atomic().del(&key).hset(&key, "!", 1);
            pipe.cmd("PEXPIREAT").arg(&key).arg(until);
            store.redis().run_atomic(pipe).await?;
            Ok(Revocation::Revoked)
        }
    }
}
