//! [`RedisTokenStore`] as a refresh-token store: one hash per family, rotated by
//! a script.

use std::future::Future;
use std::time::{Duration, UNIX_EPOCH};

use crate::store::StoreError;
use crate::token::grant::random;
use crate::token::grant::BearerToken;
use crate::token::grant::FamilyId;
use crate::token::grant::Grant;
use crate::token::grant::RefreshToken;
use crate::token::redis::store::RedisTokenStore;
use crate::token::redis::store::{Family, Record};
use crate::token::refresh::FamilyToken;
use crate::token::refresh::RefreshLifetimes;
use crate::token::refresh::RefreshTokenStore;
use crate::token::refresh::Rotation;

impl RedisTokenStore {
    /// [`ISSUE_FAMILY`](crate::token::redis::store::ISSUE_FAMILY) on a cluster,
    /// where the family and its user's list are in different slots: the family,
    /// then the list, then the user's ended families dropped from it and the
    /// oldest beyond the cap ended, a command each.
    async fn issue_in_cluster(
        &self,
        key: &str,
        user_key: &str,
        args: &[String; 5],
    ) -> Result<(), StoreError> {
        let redis = self.redis();
        let abs: u64 = redis
            .script(&self.inner.start_family, &[key], &args[..4])
            .await?;
        let listed: Vec<String> = redis
            .script(
                &self.inner.list_family,
                &[user_key],
                &[key.to_owned(), abs.to_string(), args[4].clone()],
            )
            .await?;
        if listed.is_empty() {
            return Ok(());
        }
        let mut live = Vec::with_capacity(listed.len());
        for family in listed {
            if family == key || redis.query::<bool>("EXISTS", &family).await? {
                live.push(family);
            } else {
                redis.query::<()>("ZREM", (user_key, &family)).await?;
            }
        }
        let excess = live.len().saturating_sub(self.inner.max_families_per_user);
        for family in &live[..excess] {
            redis.query::<()>("DEL", family).await?;
            redis.query::<()>("ZREM", (user_key, family)).await?;
        }
        Ok(())
    }
}

impl RefreshTokenStore for RedisTokenStore {
    /// One script: the family's record, its expiry, and the user's cap.
    fn issue_refresh_token(
        &self,
        grant: Grant,
        lifetimes: RefreshLifetimes,
    ) -> impl Future<Output = Result<RefreshToken, StoreError>> + Send {
        let store = self.clone();
        async move {
            let family = match grant.family {
                Some(family) => family.to_bytes(),
                None => random()?,
            };
            let Some((secret_id, mac_key)) = store.inner.secrets.current(&family) else {
                return Err(StoreError::new(
                    "RedisTokenStore has no refresh secret: configure one with with_refresh_secret",
                ));
            };
            let key = store.family_key(&family);
            let user_key = store.user_families_key(&grant.subject);
            let record = Record::of(&grant).to_json()?;
            let args = [
                secret_id.to_owned(),
                record,
                lifetimes.idle().as_millis().to_string(),
                lifetimes.absolute().as_millis().to_string(),
                store.inner.max_families_per_user.to_string(),
            ];
            if store.redis().is_cluster() {
                store.issue_in_cluster(&key, &user_key, &args).await?;
            } else {
                store
                    .redis()
                    .script::<u64>(&store.inner.issue_family, &[&key, &user_key], &args)
                    .await?;
            }
            Ok(FamilyToken::new(&mac_key, family, 0).encode())
        }
    }

    /// One `HMGET`.
    fn peek_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> impl Future<Output = Result<Option<Grant>, StoreError>> + Send {
        let found = self.family_of(token);
        async move { Ok(found.await?.map(|family| family.grant)) }
    }

    /// One `HMGET`, then the rotation script.
    fn rotate_refresh_token(
        &self,
        token: BearerToken<'_>,
        lifetimes: RefreshLifetimes,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send {
        let found = self.family_of(token);
        let store = self.clone();
        async move {
            let Some(Family {
                presented,
                key,
                mac_key,
                mut grant,
            }) = found.await?
            else {
                return Ok(Rotation::Invalid);
            };
            let args = [
                presented.generation.to_string(),
                store.inner.retry_grace.as_millis().to_string(),
                lifetimes.idle().as_millis().to_string(),
            ];
            let outcome: Vec<i64> = store
                .redis()
                .script(&store.inner.rotate, &[&key], &args)
                .await?;
            let family = FamilyId::from_bytes(presented.family);
            grant.family = Some(family);
            Ok(match outcome[..] {
                [-1] => Rotation::Reused {
                    subject: grant.subject,
                    family,
                },
                [next, expires_at, retried] if next >= 2 => {
                    let (Ok(generation), Ok(expires_at)) =
                        (u32::try_from(next - 1), u64::try_from(expires_at))
                    else {
                        return Err(StoreError::new("rotation script returned a bad generation"));
                    };
                    grant.expires_at = UNIX_EPOCH + Duration::from_millis(expires_at);
                    let refresh_token =
                        FamilyToken::new(&mac_key, presented.family, generation).encode();
                    Rotation::next(retried == 1, grant, refresh_token)
                }
                _ => Rotation::Invalid,
            })
        }
    }

    fn revoke_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> impl Future<Output = Result<Option<FamilyId>, StoreError>> + Send {
        let found = self.family_of(token);
        let store = self.clone();
        async move {
            let Some(Family { key, presented, .. }) = found.await? else {
                return Ok(None);
            };
            store.redis().query::<()>("DEL", &key).await?;
            Ok(Some(FamilyId::from_bytes(presented.family)))
        }
    }

    fn revoke_family(
        &self,
        family: &FamilyId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let key = self.family_key(&family.to_bytes());
        let store = self.clone();
        async move { store.redis().query::<()>("DEL", &key).await }
    }
}
