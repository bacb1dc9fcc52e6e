//! [`RedisTokenStore`]: access and refresh tokens in Redis, shared by replicas.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use serde::{Deserialize, Serialize};

use crate::redis::{LuaScript, RedisConnection};
use crate::scope::Scopes;
use crate::store::StoreError;
use crate::token::grant::{
    present, BearerToken, FamilyId, Grant, JwkThumbprint, DEFAULT_MAX_TOKENS_PER_FAMILY,
    FAMILY_ID_CHARS,
};
use crate::token::refresh::{
    millis, FamilyKey, FamilySecrets, FamilyToken, DEFAULT_MAX_FAMILIES_PER_USER,
    DEFAULT_RETRY_GRACE,
};

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
///   and no lookup compares a secret. A token or family bound to a client key
///   (DPoP, [`Grant::key_binding`]) holds the key's thumbprint (`jkt`), which is
///   public; a record without one is unbound.
/// - **Refresh families** live their idle lifetime after each use and at most
///   their absolute lifetime after the login (see [`RefreshLifetimes`](crate::token::RefreshLifetimes)), both by
///   Redis's clock (`TIME`), as is the retry grace; a user holds at most 100 live
///   families ([`with_max_families_per_user`](Self::with_max_families_per_user)),
///   listed in `{prefix}rfu:{hash of the user}`.
/// - **Families end at once**: [`revoke_family`](crate::token::TokenStore::revoke_family) is one
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
///   (see [`RefreshTokenStore`](crate::token::RefreshTokenStore)) in one step, so two replicas presented the same
///   token at once cannot both rotate it (nor both retry it). Issuing a family is
///   one script too (the record, its expiry, the user's cap) on one server.
/// - **On a Redis Cluster** ([`RedisConnection::cluster`]) every script's keys
///   share a hash tag: a family is `{prefix}rf:{{family}}`, in its access
///   tokens' slot, and issuing one is three steps, as its user's list lives in
///   another slot: the family, then its entry in the user's list, then (only
///   past the cap) each of the user's oldest families ended by a command of
///   its own. The cost: two concurrent logins of one user past the cap may
///   both end a family (the user keeps one fewer), and a family whose listing
///   failed (Redis down between the steps: the login is a 503, its token never
///   sent) lives out its idle lifetime unlisted.
///
/// ```no_run
/// use tower_oauth2_password::token::redis::RedisTokenStore;
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
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
/// # Ok::<(), tower_oauth2_password::store::StoreError>(())
/// ```
#[derive(Clone)]
pub struct RedisTokenStore {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) connection: RedisConnection,
    pub(super) retry_grace: Duration,
    /// What refresh families' MAC keys are derived from; none until configured.
    pub(super) secrets: FamilySecrets,
    pub(super) max_families_per_user: usize,
    pub(super) issue_family: LuaScript,
    /// On a cluster, [`ISSUE_FAMILY`]'s two steps: the family, then its user's list.
    pub(super) start_family: LuaScript,
    pub(super) list_family: LuaScript,
    pub(super) rotate: LuaScript,
    pub(super) issue_in_family: LuaScript,
    pub(super) max_per_family: usize,
}

/// Random bytes per access token (43 base64url characters).
pub(super) const ACCESS_TOKEN_BYTES: usize = 32;
pub(super) const ACCESS_TOKEN_CHARS: usize = 43;
/// An access token of a refresh family: the family id's text, then the random
/// part. The id finds the family's hash without a round trip; it is no secret.
pub(super) const FAMILY_ACCESS_TOKEN_CHARS: usize = FAMILY_ID_CHARS + ACCESS_TOKEN_CHARS;

/// Stores an access token in its family's hash, numbered so that the oldest go
/// first beyond the cap. KEYS[1]: the family's hash. ARGV: field (the token's
/// hash), record, expiry (ms), cap. Fields `#` (the counter) and `!` (the family
/// was revoked) are no token's. Returns 0, storing nothing, if the family was
/// revoked: a refresh that raced the reuse which ended the family gets a token
/// that never works.
pub(super) const ISSUE_IN_FAMILY: &str = r#"
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

/// `add_newest(list, member)`: adds `member` to the sorted set `list` as its
/// newest, by Redis's clock; logins in one millisecond still get distinct,
/// ordered scores. In a [`LuaScript::timed`], after its `now`.
pub(super) const ADD_NEWEST: &str = r#"
local function add_newest(list, member)
  local newest = redis.call('ZRANGE', list, -1, -1, 'WITHSCORES')
  local score = now
  if newest[2] and tonumber(newest[2]) >= now then
    score = tonumber(newest[2]) + 1
  end
  redis.call('ZADD', list, score, member)
end
"#;

/// Starts a family. KEYS[1]: the family, KEYS[2]: its user's families (a sorted
/// set of family keys, oldest login first). ARGV: secret id, grant, idle and absolute
/// lifetimes (ms), the cap on the user's live families. Returns the expiry (ms).
pub(super) const ISSUE_FAMILY: &str = r#"
local abs = now + tonumber(ARGV[4])
local exp = math.min(now + tonumber(ARGV[3]), abs)
redis.call('HSET', KEYS[1], 'sid', ARGV[1], 'grant', ARGV[2], 'cur', 0, 'abs', abs, 'exp', exp)
redis.call('PEXPIREAT', KEYS[1], exp)
add_newest(KEYS[2], KEYS[1])
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

/// On a cluster, a family's record alone (its user's list is in another slot):
/// KEYS[1]: the family. ARGV as [`ISSUE_FAMILY`]'s first four. Returns its
/// absolute expiry (ms).
pub(super) const START_FAMILY: &str = r#"
local abs = now + tonumber(ARGV[4])
local exp = math.min(now + tonumber(ARGV[3]), abs)
redis.call('HSET', KEYS[1], 'sid', ARGV[1], 'grant', ARGV[2], 'cur', 0, 'abs', abs, 'exp', exp)
redis.call('PEXPIREAT', KEYS[1], exp)
return abs
"#;

/// On a cluster, lists a started family under its user. KEYS[1]: the user's
/// families. ARGV: the family's key, its absolute expiry (ms), the cap.
/// Returns every listed family, oldest first, when there are more than the
/// cap (the caller drops the ended ones and ends the oldest beyond it, each
/// family in its own slot), else nothing.
pub(super) const LIST_FAMILY: &str = r#"
add_newest(KEYS[1], ARGV[1])
local abs = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < abs - now then
  redis.call('PEXPIREAT', KEYS[1], abs)
end
if redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[3]) then
  return redis.call('ZRANGE', KEYS[1], 0, -1)
end
return {}
"#;

/// The rotation rule of `refresh::Chain::step`/`rotated`, applied atomically.
/// KEYS[1]: the family. ARGV: presented generation, grace (ms), idle lifetime
/// (ms). Returns `{new current generation + 1, new expiry (ms), 1 for a retry
/// else 0}`, `{0}` to refuse, `{-1}` for reuse (the family is deleted).
pub(super) const ROTATE: &str = r#"
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
  return {cur + 2, exp, retry and 1 or 0}
elseif presented < cur then
  redis.call('DEL', KEYS[1])
  return {-1}
end
return {0}
"#;

/// A timed script that adds to a user's list of families with `add_newest`.
pub(super) fn listing_script(body: &str) -> LuaScript {
    LuaScript::timed(&format!("{ADD_NEWEST}{body}"))
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
    /// use tower_oauth2_password::endpoint::LoginThrottle;
    /// use tower_oauth2_password::redis::RedisConnection;
    /// use tower_oauth2_password::token::redis::RedisTokenStore;
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
                issue_family: listing_script(ISSUE_FAMILY),
                start_family: LuaScript::timed(START_FAMILY),
                list_family: listing_script(LIST_FAMILY),
                rotate: LuaScript::timed(ROTATE),
                issue_in_family: LuaScript::new(ISSUE_IN_FAMILY),
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
    pub(super) fn reconfigure(self, change: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            connection: shared.connection.clone(),
            retry_grace: shared.retry_grace,
            secrets: shared.secrets.clone(),
            max_families_per_user: shared.max_families_per_user,
            issue_family: listing_script(ISSUE_FAMILY),
            start_family: LuaScript::timed(START_FAMILY),
            list_family: listing_script(LIST_FAMILY),
            rotate: LuaScript::timed(ROTATE),
            issue_in_family: LuaScript::new(ISSUE_IN_FAMILY),
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

    pub(super) fn redis(&self) -> &RedisConnection {
        &self.inner.connection
    }

    pub(super) fn access_key(&self, token: &[u8]) -> String {
        self.redis().key(format_args!("at:{}", token_hash(token)))
    }

    /// The hash of `family`'s access tokens; the id is its hash tag.
    pub(super) fn family_access_key(&self, family: FamilyId) -> String {
        self.redis()
            .key(format_args!("af:{{{}}}", family.to_text()))
    }

    /// Where an access token of a refresh family lives: its family, the family's
    /// hash and the token's field in it. `None` if it cannot be one.
    pub(super) fn in_family(&self, token: &[u8]) -> Option<(FamilyId, String, String)> {
        if token.len() != FAMILY_ACCESS_TOKEN_CHARS {
            return None;
        }
        let family = FamilyId::from_text(&token[..FAMILY_ID_CHARS])?;
        Some((family, self.family_access_key(family), token_hash(token)))
    }

    /// `rf:{family}` on one server; on a cluster `rf:{{family}}`, the id as
    /// its hash tag (the slot of the family's access tokens too).
    pub(super) fn family_key(&self, family: &[u8]) -> String {
        let family = URL_SAFE_NO_PAD.encode(family);
        if self.redis().is_cluster() {
            self.redis().key(format_args!("rf:{{{family}}}"))
        } else {
            self.redis().key(format_args!("rf:{family}"))
        }
    }

    /// The key of a user's list of families: a hash of the subject, so that its
    /// length is bounded.
    pub(super) fn user_families_key(&self, subject: &str) -> String {
        let hash = Blake2b::<U32>::digest(subject.as_bytes());
        self.redis()
            .key(format_args!("rfu:{}", URL_SAFE_NO_PAD.encode(hash)))
    }

    /// The family of a refresh token, if the token is one of its generations
    /// (one `HMGET`). Its grant's `expires_at` is the family's current expiry.
    pub(super) async fn family_of(
        &self,
        token: BearerToken<'_>,
    ) -> Result<Option<Family>, StoreError> {
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
pub(super) struct Family {
    pub(super) presented: FamilyToken,
    /// The family's key in Redis.
    pub(super) key: String,
    /// Derived from the family's secret; never in Redis.
    pub(super) mac_key: FamilyKey,
    pub(super) grant: Grant,
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

/// Base64url of the BLAKE2b-256 hash of `token`: what Redis holds instead of it.
pub(super) fn token_hash(token: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Blake2b::<U32>::digest(token))
}

/// The grant in an access token's record, if there is one and it is live.
pub(super) fn live_grant(
    record: Option<&str>,
    family: Option<FamilyId>,
) -> Result<Option<Grant>, StoreError> {
    let Some(record) = record else {
        return Ok(None);
    };
    let mut grant = Record::parse(record)?.into_grant()?;
    grant.family = family;
    Ok(grant.is_live(SystemTime::now()).then_some(grant))
}

/// A grant as Redis keeps it: JSON, the scopes as one string, the stamp as text
/// (Lua would round a 64-bit number), the expiry in milliseconds, and for a
/// token bound to a client key (DPoP) its thumbprint, 43 base64url characters
/// (public: the hash of a public key). A record without `jkt` (an unbound
/// token's, or one written before bindings existed) is unbound; a `jkt` that is
/// no thumbprint is a corrupt record, never an unbound one.
#[derive(Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) sub: String,
    pub(super) scope: String,
    pub(super) stamp: String,
    pub(super) exp: u64,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub(super) jkt: Option<String>,
}

impl Record {
    pub(super) fn of(grant: &Grant) -> Self {
        Self {
            sub: grant.subject.to_string(),
            scope: grant.scopes.to_string(),
            stamp: grant.stamp.to_string(),
            exp: millis(grant.expires_at),
            jkt: grant.key_binding.map(|key| key.to_string()),
        }
    }

    pub(super) fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string(self).map_err(StoreError::new)
    }

    pub(super) fn parse(json: &str) -> Result<Self, StoreError> {
        serde_json::from_str(json)
            .map_err(|error| StoreError::new(format!("corrupt token record in Redis: {error}")))
    }

    pub(super) fn into_grant(self) -> Result<Grant, StoreError> {
        let stamp = self
            .stamp
            .parse()
            .map_err(|_| StoreError::new("corrupt token record in Redis: bad stamp"))?;
        let scopes: Scopes = self.scope.split_whitespace().collect();
        let expires_at = UNIX_EPOCH + Duration::from_millis(self.exp);
        let mut grant = Grant::new(self.sub, scopes, expires_at).with_stamp(stamp);
        if let Some(jkt) = &self.jkt {
            let key = JwkThumbprint::from_encoded(jkt)
                .ok_or_else(|| StoreError::new("corrupt token record in Redis: bad key binding"))?;
            grant = grant.with_key_binding(key);
        }
        Ok(grant)
    }
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
