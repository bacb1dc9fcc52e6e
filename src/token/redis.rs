//! [`RedisTokenStore`]: access and refresh tokens in Redis, shared by replicas.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use redis::Script;
use serde::{Deserialize, Serialize};

use super::refresh::{
    millis, random, FamilyKey, FamilySecrets, FamilyToken, RefreshLifetimes,
    DEFAULT_MAX_FAMILIES_PER_USER, DEFAULT_RETRY_GRACE,
};
use super::{
    AccessToken, BearerToken, FamilyId, Grant, IssuedToken, RefreshToken, RefreshTokenStore,
    Revocation, Rotation, TokenStore, TokenTypeHint, DEFAULT_MAX_TOKENS_PER_FAMILY,
    FAMILY_ID_CHARS,
};
use crate::error::StoreError;
use crate::lookup::Lookup;
use crate::redis::RedisConnection;
use crate::scope::Scopes;

/// Opaque access tokens and refresh-token families in Redis: every replica of a
/// service that shares the Redis server (and the key prefix) accepts the tokens
/// any of them issued, and a revocation on one is seen by all on their next
/// request.
///
/// - **One round trip per guarded request** (`GET`, or `HGET` for a token of a
///   refresh family); issue is one `SET … PXAT` (one script in a family),
///   revocation one `DEL` (`HDEL`). Keys are `{prefix}at:{hash}` for access
///   tokens of logins without refresh tokens, `{prefix}af:{{family}}` for a
///   refresh family's access tokens (one hash, field = token hash) and
///   `{prefix}rf:{family}` for refresh-token families, and expire with their
///   tokens, so Redis needs no sweeping.
/// - **Nothing in Redis mints a token**: keys hold a BLAKE2b-256 hash of the access
///   token; a refresh family holds its grant, its generation and the *id* of the
///   secret its MAC key is derived from (keyed BLAKE2b of the family id under a
///   secret the application configures with
///   [`with_refresh_secret`](Self::with_refresh_secret)), never the key. A copy of
///   the database (a backup, a replica, `MONITOR`) is no set of working tokens,
///   and no lookup compares a secret.
/// - **Refresh families** live their idle lifetime after each use and at most
///   their absolute lifetime after the login (see [`RefreshLifetimes`]), both by
///   Redis's clock (`TIME`), as is the retry grace; a user holds at most 100 live
///   families ([`with_max_families_per_user`](Self::with_max_families_per_user)),
///   listed in `{prefix}rfu:{hash of the user}`.
/// - **Families end at once**: [`revoke_family`](TokenStore::revoke_family) is one
///   `DEL` of the family's hash of access tokens (left as a marker that refuses
///   tokens still being issued for it). The family id is the key's hash tag: on
///   Redis Cluster a family's access tokens live in one slot. A family holds at
///   most 10 access tokens
///   ([`with_max_tokens_per_family`](Self::with_max_tokens_per_family)); issuing
///   one more drops the oldest, so one login cannot mint tokens without bound.
/// - **On a [`RedisConnection`]** ([`on`](Self::on)), which the JWT denylist
///   and the login throttle can share: every call, connecting included, has its
///   deadline (default 500 ms); Redis down, slow or unreachable is a
///   [`StoreError`], which the layer answers with 503 `temporarily_unavailable`
///   and `Retry-After`, never a 2xx and never a hang; a failed connection is
///   replaced by the next call (at most every 200 ms), so service resumes by
///   itself when Redis is back; and a `maxmemory-policy` that may evict keys is
///   logged as a warning. [`new`](Self::new) is the short way, from a URL.
/// - **Rotation is atomic**: a Lua script applies the refresh-token rotation rule
///   (see [`RefreshTokenStore`]) in one step, so two replicas presented the same
///   token at once cannot both rotate it (nor both retry it). Issuing a family is
///   one script too (the record, its expiry, the user's cap). The scripts touch
///   keys they are not given (a user's oldest families), so they need a single
///   Redis, not a cluster.
///
/// ```no_run
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer, RedisTokenStore};
///
/// # fn env(_: &str) -> String { "a secret of at least thirty-two bytes!".into() }
/// let tokens = RedisTokenStore::new("redis://127.0.0.1:6379")?
///     .with_prefix("myapp:")
///     // The same secret on every replica, from the environment or a vault.
///     .with_refresh_secret("2025-01", env("REFRESH_SECRET").as_bytes())?;
/// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
///     .refresh_tokens(tokens.clone())
///     .token_store(tokens)
///     .build();
/// # Ok::<(), tower_oauth2_password::StoreError>(())
/// ```
#[derive(Clone)]
pub struct RedisTokenStore {
    inner: Arc<Inner>,
}

struct Inner {
    connection: RedisConnection,
    retry_grace: Duration,
    /// What refresh families' MAC keys are derived from; none until configured.
    secrets: FamilySecrets,
    max_families_per_user: usize,
    issue_family: Script,
    rotate: Script,
    issue_in_family: Script,
    max_per_family: usize,
}

/// Random bytes per access token (43 base64url characters).
const ACCESS_TOKEN_BYTES: usize = 32;
const ACCESS_TOKEN_CHARS: usize = 43;
/// An access token of a refresh family: the family id's text, then the random
/// part. The id finds the family's hash without a round trip; it is no secret.
const FAMILY_ACCESS_TOKEN_CHARS: usize = FAMILY_ID_CHARS + ACCESS_TOKEN_CHARS;

/// Stores an access token in its family's hash, numbered so that the oldest go
/// first beyond the cap. KEYS[1]: the family's hash. ARGV: field (the token's
/// hash), record, expiry (ms), cap. Fields `#` (the counter) and `!` (the family
/// was revoked) are no token's. Returns 0, storing nothing, if the family was
/// revoked: a refresh that raced the reuse which ended the family gets a token
/// that never works.
const ISSUE_IN_FAMILY: &str = r#"
if redis.call('HEXISTS', KEYS[1], '!') == 1 then return 0 end
local n = redis.call('HINCRBY', KEYS[1], '#', 1)
redis.call('HSET', KEYS[1], ARGV[1], n .. ':' .. ARGV[2])
local over = redis.call('HLEN', KEYS[1]) - 1 - tonumber(ARGV[4])
if over > 0 then
  local all = redis.call('HGETALL', KEYS[1])
  local tokens = {}
  for i = 1, #all, 2 do
    if all[i] ~= '#' then
      tokens[#tokens + 1] = { tonumber(string.match(all[i + 1], '^(%d+):')), all[i] }
    end
  end
  table.sort(tokens, function(a, b) return a[1] < b[1] end)
  for i = 1, over do redis.call('HDEL', KEYS[1], tokens[i][2]) end
end
redis.call('PEXPIREAT', KEYS[1], ARGV[3], 'NX')
redis.call('PEXPIREAT', KEYS[1], ARGV[3], 'GT')
return 1
"#;

/// Redis's clock in milliseconds, as `now`: the replicas' clocks do not matter.
const NOW: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"#;

/// Starts a family. KEYS[1]: the family, KEYS[2]: its user's families (a sorted
/// set of family keys, oldest login first). ARGV: secret id, grant, idle and absolute
/// lifetimes (ms), the cap on the user's live families. Returns the expiry (ms).
const ISSUE_FAMILY: &str = r#"
local abs = now + tonumber(ARGV[4])
local exp = math.min(now + tonumber(ARGV[3]), abs)
redis.call('HSET', KEYS[1], 'sid', ARGV[1], 'grant', ARGV[2], 'cur', 0, 'abs', abs, 'exp', exp)
redis.call('PEXPIREAT', KEYS[1], exp)
-- Logins in one millisecond still get distinct, ordered scores.
local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local score = now
if newest[2] and tonumber(newest[2]) >= now then
  score = tonumber(newest[2]) + 1
end
redis.call('ZADD', KEYS[2], score, KEYS[1])
local max = tonumber(ARGV[5])
if redis.call('ZCARD', KEYS[2]) > max then
  -- Ended families (expired, revoked, reused) do not count.
  for _, family in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if redis.call('EXISTS', family) == 0 then
      redis.call('ZREM', KEYS[2], family)
    end
  end
  local excess = redis.call('ZCARD', KEYS[2]) - max
  if excess > 0 then
    for _, family in ipairs(redis.call('ZRANGE', KEYS[2], 0, excess - 1)) do
      redis.call('DEL', family)
      redis.call('ZREM', KEYS[2], family)
    end
  end
end
local ttl = redis.call('PTTL', KEYS[2])
if ttl < abs - now then
  redis.call('PEXPIREAT', KEYS[2], abs)
end
return exp
"#;

/// The rotation rule of `refresh::Chain::step`/`rotated`, applied atomically.
/// KEYS[1]: the family. ARGV: presented generation, grace (ms), idle lifetime
/// (ms). Returns `{new current generation + 1, new expiry (ms)}`, `{0}` to
/// refuse, `{-1}` for reuse (the family is deleted).
const ROTATE: &str = r#"
local f = redis.call('HMGET', KEYS[1], 'cur', 'lg', 'la', 'lr', 'abs')
if not f[1] then return {0} end
local cur = tonumber(f[1])
local presented = tonumber(ARGV[1])
local retry = f[2] and tonumber(f[2]) == presented and f[4] ~= '1'
  and now - tonumber(f[3]) < tonumber(ARGV[2])
if cur >= 4294967295 then return {0} end
if presented == cur or retry then
  if retry then
    -- One retry per generation; the grace does not slide.
    redis.call('HSET', KEYS[1], 'lr', 1)
  else
    redis.call('HSET', KEYS[1], 'lg', presented, 'la', now, 'lr', 0)
  end
  local exp = math.min(now + tonumber(ARGV[3]), tonumber(f[5]))
  redis.call('HSET', KEYS[1], 'cur', cur + 1, 'exp', exp)
  redis.call('PEXPIREAT', KEYS[1], exp)
  return {cur + 2, exp}
elseif presented < cur then
  redis.call('DEL', KEYS[1])
  return {-1}
end
return {0}
"#;

/// A script that starts by reading Redis's clock into `now`.
fn timed_script(body: &str) -> Script {
    Script::new(&format!("{NOW}{body}"))
}

impl RedisTokenStore {
    /// A store on the Redis server at `url` (`redis://host:port/db`, with
    /// `rediss://` for TLS if the `redis` crate was built with it), with no key
    /// prefix, a 500 ms deadline per call and a 10 s refresh retry grace: short
    /// for `RedisTokenStore::on(&RedisConnection::new(url)?)`.
    ///
    /// Nothing is connected yet: the first call connects, so a service can start
    /// while Redis is still coming up (and answers 503 until it is).
    ///
    /// # Errors
    ///
    /// If `url` is not a Redis URL.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        RedisConnection::new(url).map(|connection| Self::on(&connection))
    }

    /// A store on `connection`, under its key prefix and with its deadline, and
    /// a 10 s refresh retry grace. Clones of the connection (the JWT
    /// denylist's, the login throttle's) share its socket.
    ///
    /// ```no_run
    /// use tower_oauth2_password::{LoginThrottle, RedisConnection, RedisTokenStore};
    ///
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?; // the app's own
    /// let redis = RedisConnection::from_client(client).with_prefix("myapp:");
    /// let tokens = RedisTokenStore::on(&redis);
    /// let throttle = LoginThrottle::new().in_redis(&redis);
    /// # let _ = (tokens, throttle);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on(connection: &RedisConnection) -> Self {
        Self {
            inner: Arc::new(Inner {
                connection: connection.clone(),
                retry_grace: DEFAULT_RETRY_GRACE,
                secrets: FamilySecrets::default(),
                max_families_per_user: DEFAULT_MAX_FAMILIES_PER_USER,
                issue_family: timed_script(ISSUE_FAMILY),
                rotate: timed_script(ROTATE),
                issue_in_family: Script::new(ISSUE_IN_FAMILY),
                max_per_family: DEFAULT_MAX_TOKENS_PER_FAMILY,
            }),
        }
    }

    /// The connection this store uses (its prefix and deadline included), for
    /// the other Redis-backed parts to share.
    pub fn connection(&self) -> &RedisConnection {
        &self.inner.connection
    }

    /// Keeps at most `max` access tokens per refresh family (default 10, at least
    /// 1): issuing one more drops the family's oldest.
    pub fn with_max_tokens_per_family(self, max: usize) -> Self {
        self.reconfigure(|inner| inner.max_per_family = max.max(1))
    }

    /// Puts every key under `prefix` (e.g. `"myapp:"`), so that services, or test
    /// runs, can share a Redis server. Replicas must use the same prefix. Only
    /// this store's: set it on the [`RedisConnection`] to give every part it.
    pub fn with_prefix(self, prefix: &str) -> Self {
        self.reconfigure(|inner| inner.connection = inner.connection.clone().with_prefix(prefix))
    }

    /// Gives every Redis call, connecting included, at most `timeout` (default
    /// 500 ms) before the layer answers 503. Only this store's, as
    /// [`with_prefix`](Self::with_prefix).
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.reconfigure(|inner| inner.connection = inner.connection.clone().with_timeout(timeout))
    }

    /// Treats a refresh token presented again within `grace` (default 10 s) of
    /// its rotation as the client's retry, not as reuse; once per generation.
    pub fn with_retry_grace(self, grace: Duration) -> Self {
        self.reconfigure(|inner| inner.retry_grace = grace)
    }

    /// Adds a secret that refresh families' MAC keys are derived from, named `id`
    /// (what each family records instead of its key). **Required** before this
    /// store issues refresh tokens: without one, a login with refresh tokens on
    /// fails (503, and an error in the log) rather than keep a key in Redis, or
    /// draw a per-process secret that replicas would not share (their refreshes
    /// would fail on every other replica, and all of them at each restart).
    ///
    /// Every replica needs the same secrets. The first one added keys new
    /// families; later ones keep the families they keyed working. To replace a
    /// secret, put the new one first and keep the old one until its families have
    /// reached their absolute lifetime; a family whose secret is gone is invalid.
    ///
    /// # Errors
    ///
    /// If `secret` is shorter than 32 bytes (use random bytes), or `id` is empty,
    /// longer than 64 characters, not printable ASCII or already used. No message
    /// shows the secret.
    pub fn with_refresh_secret(self, id: &str, secret: &[u8]) -> Result<Self, StoreError> {
        let mut secrets = self.inner.secrets.clone();
        secrets.add(id, secret)?;
        Ok(self.reconfigure(|inner| inner.secrets = secrets))
    }

    /// Lets one user hold at most `max` live refresh families (at least 1; default
    /// 100): a login beyond that ends the user's oldest family, so one account
    /// cannot fill Redis with families.
    pub fn with_max_families_per_user(self, max: usize) -> Self {
        self.reconfigure(|inner| inner.max_families_per_user = max.max(1))
    }

    /// Builder methods run before any clone exists; a clone made earlier keeps its
    /// own configuration (and shares the connection).
    fn reconfigure(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            connection: shared.connection.clone(),
            retry_grace: shared.retry_grace,
            secrets: shared.secrets.clone(),
            max_families_per_user: shared.max_families_per_user,
            issue_family: timed_script(ISSUE_FAMILY),
            rotate: timed_script(ROTATE),
            issue_in_family: Script::new(ISSUE_IN_FAMILY),
            max_per_family: shared.max_per_family,
        });
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Checks that Redis answers (`PING`), e.g. before a service starts listening.
    ///
    /// # Errors
    ///
    /// If Redis cannot be reached or does not answer in time.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.redis().ping().await
    }

    fn redis(&self) -> &RedisConnection {
        &self.inner.connection
    }

    fn access_key(&self, token: &[u8]) -> String {
        self.redis().key(format_args!("at:{}", token_hash(token)))
    }

    /// The hash of `family`'s access tokens; the id is its hash tag.
    fn family_access_key(&self, family: FamilyId) -> String {
        self.redis()
            .key(format_args!("af:{{{}}}", family.to_text()))
    }

    /// Where an access token of a refresh family lives: its family, the family's
    /// hash and the token's field in it. `None` if it cannot be one.
    fn in_family(&self, token: &[u8]) -> Option<(FamilyId, String, String)> {
        if token.len() != FAMILY_ACCESS_TOKEN_CHARS {
            return None;
        }
        let family = FamilyId::from_text(&token[..FAMILY_ID_CHARS])?;
        Some((family, self.family_access_key(family), token_hash(token)))
    }

    fn family_key(&self, family: &[u8]) -> String {
        self.redis()
            .key(format_args!("rf:{}", URL_SAFE_NO_PAD.encode(family)))
    }

    /// The key of a user's list of families: a hash of the subject, so that its
    /// length is bounded.
    fn user_families_key(&self, subject: &str) -> String {
        let hash = Blake2b::<U32>::digest(subject.as_bytes());
        self.redis()
            .key(format_args!("rfu:{}", URL_SAFE_NO_PAD.encode(hash)))
    }

    /// The family of a refresh token, if the token is one of its generations
    /// (one `HMGET`). Its grant's `expires_at` is the family's current expiry.
    async fn family_of(&self, token: BearerToken<'_>) -> Result<Option<Family>, StoreError> {
        let Some(presented) = FamilyToken::parse(token) else {
            return Ok(None);
        };
        let key = self.family_key(&presented.family);
        let (secret_id, grant, expires_at): (Option<String>, Option<String>, Option<u64>) = self
            .redis()
            .query("HMGET", (&key, "sid", "grant", "exp"))
            .await?;
        let (Some(secret_id), Some(grant), Some(expires_at)) = (secret_id, grant, expires_at)
        else {
            return Ok(None);
        };
        let Some(mac_key) = self.inner.secrets.family_key(&secret_id, &presented.family) else {
            tracing::warn!(
                secret = %secret_id,
                "refresh token of a family keyed with a secret this store does not have"
            );
            return Ok(None);
        };
        if !presented.is_signed_by(&mac_key) {
            return Ok(None);
        }
        let mut grant = Record::parse(&grant)?.into_grant()?;
        grant.expires_at = UNIX_EPOCH + Duration::from_millis(expires_at);
        grant.family = Some(FamilyId::from_bytes(presented.family));
        Ok(Some(Family {
            presented,
            key,
            mac_key,
            grant,
        }))
    }
}

/// A refresh token's family, as read from Redis.
struct Family {
    presented: FamilyToken,
    /// The family's key in Redis.
    key: String,
    /// Derived from the family's secret; never in Redis.
    mac_key: FamilyKey,
    grant: Grant,
}

impl fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("connection", &self.inner.connection)
            .field("retry_grace", &self.inner.retry_grace)
            .field(
                "refresh_secrets",
                &self.inner.secrets.ids().collect::<Vec<_>>(),
            )
            .field("max_families_per_user", &self.inner.max_families_per_user)
            .finish()
    }
}

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
    /// [`RefreshTokenStore::revoke_refresh_token`], as the revocation endpoint
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

/// Base64url of the BLAKE2b-256 hash of `token`: what Redis holds instead of it.
fn token_hash(token: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Blake2b::<U32>::digest(token))
}

/// The grant in an access token's record, if there is one and it is live.
fn live_grant(record: Option<&str>, family: Option<FamilyId>) -> Result<Option<Grant>, StoreError> {
    let Some(record) = record else {
        return Ok(None);
    };
    let mut grant = Record::parse(record)?.into_grant()?;
    grant.family = family;
    Ok(grant.is_live(SystemTime::now()).then_some(grant))
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
            store
                .redis()
                .script::<u64>(&store.inner.issue_family, &[&key, &user_key], &args)
                .await?;
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
                [next, expires_at] if next >= 2 => {
                    let (Ok(generation), Ok(expires_at)) =
                        (u32::try_from(next - 1), u64::try_from(expires_at))
                    else {
                        return Err(StoreError::new("rotation script returned a bad generation"));
                    };
                    grant.expires_at = UNIX_EPOCH + Duration::from_millis(expires_at);
                    Rotation::Rotated {
                        grant,
                        refresh_token: FamilyToken::new(&mac_key, presented.family, generation)
                            .encode(),
                    }
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

/// A grant as Redis keeps it: JSON, the scopes as one string, the stamp as text
/// (Lua would round a 64-bit number), the expiry in milliseconds.
#[derive(Serialize, Deserialize)]
struct Record {
    sub: String,
    scope: String,
    stamp: String,
    exp: u64,
}

impl Record {
    fn of(grant: &Grant) -> Self {
        Self {
            sub: grant.subject.to_string(),
            scope: grant.scopes.to_string(),
            stamp: grant.stamp.to_string(),
            exp: millis(grant.expires_at),
        }
    }

    fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(StoreError::new)
    }

    fn parse(json: &str) -> Result<Self, StoreError> {
        serde_json::from_str(json)
            .map_err(|error| StoreError::new(format!("corrupt token record in Redis: {error}")))
    }

    fn into_grant(self) -> Result<Grant, StoreError> {
        let stamp = self
            .stamp
            .parse()
            .map_err(|_| StoreError::new("corrupt token record in Redis: bad stamp"))?;
        let scopes: Scopes = self.scope.split_whitespace().collect();
        let expires_at = UNIX_EPOCH + Duration::from_millis(self.exp);
        Ok(Grant::new(self.sub, scopes, expires_at).with_stamp(stamp))
    }
}

/// Revoked JWTs in Redis, on a [`RedisConnection`] (which the token store and
/// the login throttle may share): `{prefix}jti:{jti}`, or the family's id for a
/// token of a refresh family, expiring with the token or family, so that a
/// logout on one replica reaches every replica that verifies the same tokens.
/// One `EXISTS` per guarded request.
///
/// ```no_run
/// use tower_oauth2_password::{JwtKey, JwtTokenStore, RedisConnection, RedisJtiDenylist};
///
/// let redis = RedisConnection::new("redis://127.0.0.1:6379")?.with_prefix("myapp:");
/// let key = JwtKey::hs256("2025-01", b"a secret of at least thirty-two bytes!")?;
/// let tokens = JwtTokenStore::signing_with(key)
///     .with_denylist(RedisJtiDenylist::on(&redis))
///     .build()?;
/// # let _ = tokens;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A [`RedisTokenStore`] is one too, on its connection.
#[cfg(feature = "jwt")]
#[derive(Debug, Clone)]
pub struct RedisJtiDenylist {
    connection: RedisConnection,
}

#[cfg(feature = "jwt")]
impl RedisJtiDenylist {
    /// The denylist on `connection`, under its prefix.
    pub fn on(connection: &RedisConnection) -> Self {
        Self {
            connection: connection.clone(),
        }
    }
}

#[cfg(feature = "jwt")]
impl super::JtiDenylist for RedisJtiDenylist {
    fn deny(
        &self,
        jti: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        deny_jti(&self.connection, jti, until)
    }

    fn is_denied(&self, jti: &str) -> Lookup<bool> {
        jti_is_denied(&self.connection, jti)
    }
}

/// The [`RedisJtiDenylist`] on the store's connection:
/// `JwtTokenStore::signing_with(key).with_denylist(redis_store)`.
#[cfg(feature = "jwt")]
impl super::JtiDenylist for RedisTokenStore {
    fn deny(
        &self,
        jti: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        deny_jti(self.redis(), jti, until)
    }

    fn is_denied(&self, jti: &str) -> Lookup<bool> {
        jti_is_denied(self.redis(), jti)
    }
}

/// One `MULTI`: the entry, never shortened (a family's entry is denied again
/// with the expiry of whichever of its tokens is revoked).
#[cfg(feature = "jwt")]
fn deny_jti(
    connection: &RedisConnection,
    jti: &str,
    until: SystemTime,
) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
    let key = connection.key(format_args!("jti:{jti}"));
    let until = millis(until).max(1);
    let connection = connection.clone();
    async move {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PXAT")
            .arg(until);
        pipe.cmd("PEXPIREAT").arg(&key).arg(until).arg("GT");
        connection.run_atomic(pipe).await
    }
}

#[cfg(feature = "jwt")]
fn jti_is_denied(connection: &RedisConnection, jti: &str) -> Lookup<bool> {
    let key = connection.key(format_args!("jti:{jti}"));
    let connection = connection.clone();
    Lookup::pending(async move { connection.query("EXISTS", &key).await })
}

impl From<RedisTokenStore> for RedisConnection {
    fn from(store: RedisTokenStore) -> Self {
        store.inner.connection.clone()
    }
}

impl From<&RedisTokenStore> for RedisConnection {
    fn from(store: &RedisTokenStore) -> Self {
        store.inner.connection.clone()
    }
}
