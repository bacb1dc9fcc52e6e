//! [`RedisTokenStore`]: access and refresh tokens in Redis, shared by replicas.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, RedisError, Script, ToRedisArgs};
use serde::{Deserialize, Serialize};

use super::refresh::{
    millis, random, FamilyKey, FamilySecrets, FamilyToken, RefreshLifetimes,
    DEFAULT_MAX_FAMILIES_PER_USER, DEFAULT_RETRY_GRACE,
};
use super::{
    AccessToken, BearerToken, Grant, IssuedToken, RefreshToken, RefreshTokenStore, Revocation,
    Rotation, TokenStore, TokenTypeHint,
};
use crate::error::StoreError;
use crate::lookup::Lookup;
use crate::scope::Scopes;

/// Opaque access tokens and refresh-token families in Redis: every replica of a
/// service that shares the Redis server (and the key prefix) accepts the tokens
/// any of them issued, and a revocation on one is seen by all on their next
/// request.
///
/// - **One round trip per guarded request** (`GET`); issue is one `SET … PXAT`,
///   revocation one `DEL`. Keys are `{prefix}at:{hash}` for access tokens and
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
/// - **Bounded**: every call, connecting included, has a deadline (default 500 ms).
///   Redis down, slow or unreachable is a [`StoreError`], which the layer answers
///   with 503 `temporarily_unavailable` and `Retry-After`, never a 2xx and never a
///   hang. One multiplexed connection is shared; once it fails, the next call
///   reconnects (at most every 200 ms), so service resumes by itself when Redis is
///   back.
/// - **Nothing may be evicted**: revoked JWTs' `jti` entries and login-throttle
///   counts must last until they expire, so run Redis with
///   `maxmemory-policy noeviction` (every key here has an expiry, so `volatile-*`
///   policies evict them too). The first connection reads the policy and logs a
///   warning for any other, or if it cannot be read.
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
    connection: Connection,
    prefix: Box<str>,
    retry_grace: Duration,
    /// What refresh families' MAC keys are derived from; none until configured.
    secrets: FamilySecrets,
    max_families_per_user: usize,
    issue_family: Script,
    rotate: Script,
}

/// The default deadline of every Redis call.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed connection attempt, calls fail at once for this long instead of
/// each trying again (and waiting for the timeout) while Redis is down.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// Random bytes per access token (43 base64url characters).
const ACCESS_TOKEN_BYTES: usize = 32;
const ACCESS_TOKEN_CHARS: usize = 43;

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
    /// prefix, a 500 ms deadline per call and a 10 s refresh retry grace.
    ///
    /// Nothing is connected yet: the first call connects, so a service can start
    /// while Redis is still coming up (and answers 503 until it is).
    ///
    /// # Errors
    ///
    /// If `url` is not a Redis URL.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(StoreError::new)?;
        Ok(Self {
            inner: Arc::new(Inner {
                connection: Connection::new(client, DEFAULT_TIMEOUT),
                prefix: "".into(),
                retry_grace: DEFAULT_RETRY_GRACE,
                secrets: FamilySecrets::default(),
                max_families_per_user: DEFAULT_MAX_FAMILIES_PER_USER,
                issue_family: timed_script(ISSUE_FAMILY),
                rotate: timed_script(ROTATE),
            }),
        })
    }

    /// Puts every key under `prefix` (e.g. `"myapp:"`), so that services, or test
    /// runs, can share a Redis server. Replicas must use the same prefix.
    pub fn with_prefix(self, prefix: &str) -> Self {
        self.reconfigure(|inner| inner.prefix = prefix.into())
    }

    /// Gives every Redis call, connecting included, at most `timeout` (default
    /// 500 ms) before the layer answers 503.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.reconfigure(|inner| inner.connection.timeout = timeout)
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
    /// own configuration (the connection is then not shared).
    fn reconfigure(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            connection: Connection::new(
                shared.connection.client.clone(),
                shared.connection.timeout,
            ),
            prefix: shared.prefix.clone(),
            retry_grace: shared.retry_grace,
            secrets: shared.secrets.clone(),
            max_families_per_user: shared.max_families_per_user,
            issue_family: timed_script(ISSUE_FAMILY),
            rotate: timed_script(ROTATE),
        });
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Runs one command on the shared connection, within the timeout.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        name: &str,
        args: impl ToRedisArgs,
    ) -> Result<T, StoreError> {
        let mut command = redis::cmd(name);
        command.arg(args);
        self.inner
            .connection
            .run(|mut connection| async move { command.query_async(&mut connection).await })
            .await
    }

    /// Runs `script` on `keys` with `args`, within the timeout.
    async fn script<T: FromRedisValue>(
        &self,
        script: &Script,
        keys: &[&str],
        args: &[String],
    ) -> Result<T, StoreError> {
        self.inner
            .connection
            .run(|mut connection| async move {
                let mut invocation = script.prepare_invoke();
                for key in keys {
                    invocation.key(*key);
                }
                for arg in args {
                    invocation.arg(arg);
                }
                invocation.invoke_async(&mut connection).await
            })
            .await
    }

    /// Checks that Redis answers (`PING`), e.g. before a service starts listening.
    ///
    /// # Errors
    ///
    /// If Redis cannot be reached or does not answer in time.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner
            .connection
            .run(|mut connection| async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .map(drop)
            })
            .await
    }

    fn access_key(&self, token: &[u8]) -> String {
        let hash = Blake2b::<U32>::digest(token);
        format!("{}at:{}", self.inner.prefix, URL_SAFE_NO_PAD.encode(hash))
    }

    fn family_key(&self, family: &[u8]) -> String {
        format!("{}rf:{}", self.inner.prefix, URL_SAFE_NO_PAD.encode(family))
    }

    /// The key of a user's list of families: a hash of the subject, so that its
    /// length is bounded.
    fn user_families_key(&self, subject: &str) -> String {
        let hash = Blake2b::<U32>::digest(subject.as_bytes());
        format!("{}rfu:{}", self.inner.prefix, URL_SAFE_NO_PAD.encode(hash))
    }

    /// The family of a refresh token, if the token is one of its generations
    /// (one `HMGET`). Its grant's `expires_at` is the family's current expiry.
    async fn family_of(&self, token: BearerToken<'_>) -> Result<Option<Family>, StoreError> {
        let Some(presented) = FamilyToken::parse(token) else {
            return Ok(None);
        };
        let key = self.family_key(&presented.family);
        let (secret_id, grant, expires_at): (Option<String>, Option<String>, Option<u64>) =
            self.query("HMGET", (&key, "sid", "grant", "exp")).await?;
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
        // The URL may hold a password: only the parts that cannot.
        let info = self.inner.connection.client.get_connection_info();
        f.debug_struct("RedisTokenStore")
            .field("addr", &info.addr().to_string())
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.connection.timeout)
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
            let token = URL_SAFE_NO_PAD.encode(random::<ACCESS_TOKEN_BYTES>()?);
            let key = store.access_key(token.as_bytes());
            let value = Record::of(&grant).to_json()?;
            let expires_at = millis(grant.expires_at);
            store
                .query::<()>("SET", (&key, &value, "PXAT", expires_at.max(1)))
                .await?;
            Ok(IssuedToken::new(AccessToken::new(token), grant.expires_at))
        }
    }

    /// One `GET`; tokens that cannot be ours cost no round trip.
    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        if token.as_bytes().len() != ACCESS_TOKEN_CHARS || token.to_str().is_none() {
            return Lookup::ready(Ok(None));
        }
        let key = self.access_key(token.as_bytes());
        let store = self.clone();
        Lookup::pending(async move {
            let value: Option<String> = store.query("GET", &key).await?;
            let Some(value) = value else {
                return Ok(None);
            };
            let grant = Record::parse(&value)?.into_grant()?;
            Ok(grant.is_live(SystemTime::now()).then_some(grant))
        })
    }

    /// `DEL`. A refresh token given here (whatever the hint) is left alone:
    /// revoke those with [`RefreshTokenStore::revoke_refresh_token`], as the
    /// revocation endpoint does.
    fn revoke(
        &self,
        token: BearerToken<'_>,
        _hint: Option<TokenTypeHint>,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send {
        let key = (token.as_bytes().len() == ACCESS_TOKEN_CHARS)
            .then(|| self.access_key(token.as_bytes()));
        let store = self.clone();
        async move {
            if let Some(key) = key {
                store.query::<()>("DEL", &key).await?;
            }
            Ok(Revocation::Revoked)
        }
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
            let family = random()?;
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
            let outcome: Vec<i64> = store.script(&store.inner.rotate, &[&key], &args).await?;
            Ok(match outcome[..] {
                [-1] => Rotation::Reused {
                    subject: grant.subject,
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
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let found = self.family_of(token);
        let store = self.clone();
        async move {
            if let Some(Family { key, .. }) = found.await? {
                store.query::<()>("DEL", &key).await?;
            }
            Ok(())
        }
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

/// Logs a warning, once per store on its first connection, unless Redis's
/// `maxmemory-policy` is `noeviction`. Every key this crate writes has an expiry,
/// so `volatile-*` policies may evict them as `allkeys-*` ones do: a revoked
/// JWT's `jti` entry (the token works again) or a login-throttle count (more
/// guesses). A warning, not a refusal: the policy can change at any time, and
/// managed Redis may hide `CONFIG`; it is logged as unknown then.
async fn warn_if_evicting(mut connection: MultiplexedConnection, timeout: Duration) {
    let mut command = redis::cmd("CONFIG");
    command.arg("GET").arg("maxmemory-policy");
    let config = command.query_async::<std::collections::HashMap<String, String>>(&mut connection);
    match tokio::time::timeout(timeout, config).await {
        Ok(Ok(config)) => match config.get("maxmemory-policy") {
            Some(policy) if policy == "noeviction" => {}
            Some(policy) => tracing::warn!(
                policy,
                "Redis may evict keys before they expire (maxmemory-policy {policy}): revoked \
                 tokens could work again and login-throttle counts be lost; set noeviction"
            ),
            None => tracing::warn!("Redis did not say its maxmemory-policy; make it noeviction"),
        },
        _ => tracing::warn!("could not read Redis's maxmemory-policy; make it noeviction"),
    }
}

/// One multiplexed connection, made on first use and again after it fails, with
/// a deadline on every call.
///
/// Not redis-rs's `ConnectionManager`: while Redis is down it makes every call
/// wait through its whole reconnect sequence. Here a call waits at most the
/// timeout, and while the server is unreachable calls fail at once between
/// attempts.
struct Connection {
    client: redis::Client,
    timeout: Duration,
    state: Mutex<State>,
    /// One connection attempt at a time.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// The shared connection and its number, so that a failure reported late
    /// does not drop its replacement.
    current: Option<(u64, MultiplexedConnection)>,
    made: u64,
    /// No new attempt before this, after a failed one.
    retry_at: Option<Instant>,
}

impl Connection {
    fn new(client: redis::Client, timeout: Duration) -> Self {
        Self {
            client,
            timeout,
            state: Mutex::default(),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `command` on the connection within the timeout; a connection that
    /// fails or times out is dropped, for the next call to replace.
    async fn run<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let attempt = async {
            let (number, connection) = self.connection().await?;
            command(connection).await.map_err(|error| {
                if error.is_io_error()
                    || error.is_connection_dropped()
                    || error.is_unrecoverable_error()
                    || error.is_timeout()
                {
                    self.drop_connection(number);
                }
                StoreError::new(error)
            })
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_elapsed) => {
                // A server that stopped answering: do not queue behind it.
                let number = self.state().current.as_ref().map(|(number, _)| *number);
                if let Some(number) = number {
                    self.drop_connection(number);
                }
                Err(StoreError::new(format!(
                    "Redis did not answer within {:?}",
                    self.timeout
                )))
            }
        }
    }

    async fn connection(&self) -> Result<(u64, MultiplexedConnection), StoreError> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        if self
            .state()
            .retry_at
            .is_some_and(|retry_at| Instant::now() < retry_at)
        {
            return Err(StoreError::new("Redis is unreachable (retrying shortly)"));
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(connection) => {
                let mut state = self.state();
                if state.made == 0 {
                    tokio::spawn(warn_if_evicting(connection.clone(), self.timeout));
                }
                state.made += 1;
                state.retry_at = None;
                let current = (state.made, connection);
                state.current = Some(current.clone());
                Ok(current)
            }
            Err(error) => {
                self.state().retry_at = Some(Instant::now() + RECONNECT_BACKOFF);
                Err(StoreError::new(error))
            }
        }
    }

    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.state().current.clone()
    }

    fn drop_connection(&self, number: u64) {
        let mut state = self.state();
        if state
            .current
            .as_ref()
            .is_some_and(|(current, _)| *current == number)
        {
            state.current = None;
        }
    }
}

/// Revoked JWTs in Redis (`{prefix}jti:{jti}`, expiring with the token), so that
/// a logout on one replica reaches every replica that verifies the same tokens:
/// `JwtTokenStore::signing_with(key).with_denylist(redis_store)`. One `EXISTS`
/// per guarded request.
#[cfg(feature = "jwt")]
impl super::JtiDenylist for RedisTokenStore {
    fn deny(
        &self,
        jti: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let key = format!("{}jti:{jti}", self.inner.prefix);
        let store = self.clone();
        async move {
            store
                .query::<()>("SET", (&key, 1, "PXAT", millis(until).max(1)))
                .await
        }
    }

    fn is_denied(&self, jti: &str) -> Lookup<bool> {
        let key = format!("{}jti:{jti}", self.inner.prefix);
        let store = self.clone();
        Lookup::pending(async move { store.query("EXISTS", &key).await })
    }
}

/// What the login throttle shares with the token store: the connection, with
/// the same deadline on every call, and the key prefix.
#[cfg(feature = "redis")]
impl RedisTokenStore {
    /// `name` under this store's prefix.
    pub(crate) fn prefixed(&self, name: &str) -> String {
        format!("{}{name}", self.inner.prefix)
    }

    /// Runs `command` on this store's connection, within its timeout.
    pub(crate) async fn run<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.inner.connection.run(command).await
    }
}
