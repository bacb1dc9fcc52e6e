//! [`RedisConnection`]: the one Redis handle every Redis-backed part takes (the
//! token and refresh store, the JWT denylist, the login throttle), so that an
//! application configures Redis once.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Cmd, FromRedisValue, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, Script, ToRedisArgs, Value,
};

use crate::store::StoreError;

/// The default deadline of every Redis call.
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed connection attempt, calls fail at once for this long instead of
/// each trying again (and waiting for the timeout) while Redis is down.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// A Redis server, a key prefix and a deadline: what
/// [`RedisTokenStore`](crate::token::redis::RedisTokenStore) (access and refresh tokens),
/// `RedisJtiDenylist` (revoked JWTs, feature `jwt`) and
/// [`LoginThrottle::in_redis`](crate::endpoint::LoginThrottle::in_redis) (login-failure
/// counts) each take. Configure it once and hand each part a clone (or a
/// reference): they share one multiplexed connection and put every key under
/// the same prefix.
///
/// - **From a URL or your own client**: [`new`](Self::new) takes a URL;
///   [`from_client`](Self::from_client) a [`redis::Client`] the application
///   already built (its TLS, its credentials).
/// - **Or a Redis Cluster**: [`cluster`](Self::cluster) takes seed nodes' URLs,
///   [`from_cluster_client`](Self::from_cluster_client) a
///   [`ClusterClient`] of your own; every part works on it as on one server
///   (each script's keys share a hash tag; see the guide's "Redis Cluster"
///   section for what that costs the refresh families and the login throttle).
/// - **Lazy**: nothing connects until the first call, so a service can start
///   while Redis is still coming up (and answers 503 until it is).
/// - **Bounded**: every call, connecting included, has a deadline (default
///   500 ms, [`with_timeout`](Self::with_timeout)). Redis down, slow or
///   unreachable is a [`StoreError`], which the layer answers with 503
///   `temporarily_unavailable` and `Retry-After`, never a 2xx and never a hang.
/// - **Reconnects by itself**: once the connection fails, the next call makes
///   a new one, at most every 200 ms; between attempts calls fail at once
///   instead of each waiting for its deadline.
/// - **Nothing may be evicted**: revoked JWTs' entries and login-throttle counts
///   must last until they expire, so run Redis with `maxmemory-policy
///   noeviction` (every key written here has an expiry, so `volatile-*`
///   policies evict them too). The first connection reads the policy and logs a
///   warning for any other, or if it cannot be read.
///
/// Clones share the connection; [`with_prefix`](Self::with_prefix) and
/// [`with_timeout`](Self::with_timeout) change only the handle they are called
/// on, so two services' prefixes can share one connection too.
///
/// ```no_run
/// use tower_oauth2_password::endpoint::LoginThrottle;
/// use tower_oauth2_password::redis::RedisConnection;
/// use tower_oauth2_password::token::redis::RedisTokenStore;
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
///
/// # fn env(_: &str) -> String { "a secret of at least thirty-two bytes!".into() }
/// // Or `RedisConnection::from_client(client)` with a `redis::Client` of your own.
/// let redis = RedisConnection::new("redis://127.0.0.1:6379")?.with_prefix("myapp:");
/// let tokens = RedisTokenStore::on(&redis)
///     // The same secret on every replica, from the environment or a vault.
///     .with_refresh_secret("2025-01", env("REFRESH_SECRET").as_bytes())?;
/// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
///     .refresh_tokens(tokens.clone())
///     .token_store(tokens)
///     .login_policy(LoginThrottle::new().in_redis(&redis))
///     .build();
/// # Ok::<(), tower_oauth2_password::store::StoreError>(())
/// ```
#[derive(Clone)]
pub struct RedisConnection {
    link: Arc<Link>,
    prefix: Arc<str>,
    timeout: Duration,
}

impl RedisConnection {
    /// The Redis server at `url` (`redis://host:port/db`, `rediss://` for TLS if
    /// the `redis` crate was built with it), with no key prefix and a 500 ms
    /// deadline per call. Nothing is connected yet.
    ///
    /// # Errors
    ///
    /// If `url` is not a Redis URL. The message does not show the URL (it may
    /// hold a password).
    pub fn new(url: &str) -> Result<Self, StoreError> {
        redis::Client::open(url)
            .map(Self::from_client)
            .map_err(StoreError::new)
    }

    /// The server `client` connects to, with the settings the application gave
    /// it, no key prefix and a 500 ms deadline per call. Nothing is connected
    /// yet.
    ///
    /// ```
    /// use tower_oauth2_password::redis::RedisConnection;
    ///
    /// let client = redis::Client::open("redis://127.0.0.1:6379")?;
    /// let redis = RedisConnection::from_client(client).with_prefix("myapp:");
    /// # let _ = redis;
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn from_client(client: redis::Client) -> Self {
        let addr = client.get_connection_info().addr().to_string();
        Self::with_client(Client::Single(client), addr)
    }

    /// A Redis Cluster, found through `seeds` (URLs of some of its nodes,
    /// `redis://host:port`; one that answers is enough), with no key prefix and
    /// a 500 ms deadline per call. Nothing is connected yet. The cluster's
    /// slot map is read on the first call and again whenever a node moves
    /// slots or fails, so a failover needs no restart: calls for the failed
    /// master's slots fail (503) until its replica is promoted, and the others
    /// go on.
    ///
    /// ```no_run
    /// use tower_oauth2_password::redis::RedisConnection;
    ///
    /// let redis = RedisConnection::cluster(&["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"])?
    ///     .with_prefix("myapp:");
    /// assert!(redis.is_cluster());
    /// # Ok::<(), tower_oauth2_password::store::StoreError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// If `seeds` is empty or one is not a Redis URL. The message does not show
    /// the URL (it may hold a password).
    pub fn cluster<S: AsRef<str>>(seeds: &[S]) -> Result<Self, StoreError> {
        let infos = seeds
            .iter()
            .map(|seed| seed.as_ref().into_connection_info())
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::new)?;
        if infos.is_empty() {
            return Err(StoreError::new(
                "a Redis Cluster needs at least one seed node URL",
            ));
        }
        let addrs = infos
            .iter()
            .map(|info| info.addr().to_string())
            .collect::<Vec<_>>()
            .join(",");
        let client = ClusterClient::new(infos).map_err(StoreError::new)?;
        Ok(Self::with_client(Client::Cluster(Box::new(client)), addrs))
    }

    /// The Redis Cluster `client` connects to, with the settings the
    /// application gave it (TLS, credentials, retries), no key prefix and a
    /// 500 ms deadline per call. Nothing is connected yet.
    ///
    /// ```
    /// use tower_oauth2_password::redis::RedisConnection;
    ///
    /// let client = redis::cluster::ClusterClient::builder(["redis://127.0.0.1:7101"])
    ///     .retries(3)
    ///     .build()?;
    /// let redis = RedisConnection::from_cluster_client(client).with_prefix("myapp:");
    /// # let _ = redis;
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    pub fn from_cluster_client(client: ClusterClient) -> Self {
        Self::with_client(Client::Cluster(Box::new(client)), "cluster".to_owned())
    }

    fn with_client(client: Client, addr: String) -> Self {
        Self {
            link: Arc::new(Link {
                client,
                addr,
                state: Mutex::default(),
                connecting: tokio::sync::Mutex::new(()),
            }),
            prefix: "".into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Whether this is a Redis Cluster ([`cluster`](Self::cluster)): its parts
    /// then keep each script's keys in one hash slot.
    pub fn is_cluster(&self) -> bool {
        matches!(self.link.client, Client::Cluster(_))
    }

    /// Puts every key under `prefix` (e.g. `"myapp:"`), so that services, or
    /// test runs, can share a Redis server. Replicas must use the same prefix.
    /// On a cluster keep `{` and `}` out of it: the keys' hash tags follow it.
    #[must_use]
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Gives every Redis call, connecting included, at most `timeout` (default
    /// 500 ms) before the layer answers 503.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Checks that Redis answers (`PING`; on a cluster, every master), e.g.
    /// before a service starts listening.
    ///
    /// # Errors
    ///
    /// If Redis cannot be reached or does not answer in time.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query::<String>("PING", &[] as &[&str]).await.map(drop)
    }

    /// `name` under the prefix, in one allocation.
    pub(crate) fn key(&self, name: fmt::Arguments<'_>) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs one command, within the deadline.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        name: &str,
        args: impl ToRedisArgs,
    ) -> Result<T, StoreError> {
        let mut command = redis::cmd(name);
        command.arg(args);
        self.run(|mut connection| async move { command.query_async(&mut connection).await })
            .await
    }

    /// Runs `script` on `keys` with `args`, within the deadline: `EVALSHA`,
    /// and `EVAL` where the server does not have it yet. (Not redis-rs's
    /// `SCRIPT LOAD`, which a cluster sends to every node it knows, a failed
    /// one included.)
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        script: &LuaScript,
        keys: &[impl ToRedisArgs + Sync],
        args: &[impl ToRedisArgs + Sync],
    ) -> Result<T, StoreError> {
        self.run(|mut connection| async move {
            let call = |name: &str, body: &str| {
                let mut command = redis::cmd(name);
                command.arg(body).arg(keys.len());
                for key in keys {
                    command.arg(key);
                }
                for arg in args {
                    command.arg(arg);
                }
                command
            };
            match call("EVALSHA", script.hash.get_hash())
                .query_async(&mut connection)
                .await
            {
                Err(error)
                    if error.kind()
                        == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    call("EVAL", &script.code)
                        .query_async(&mut connection)
                        .await
                }
                answered => answered,
            }
        })
        .await
    }

    /// A connection of its own, subscribed to `channel` (a full name: put it
    /// under the prefix with [`key`](Self::key)), within the deadline: its
    /// messages, until the connection ends. One server only: a cluster answers
    /// an error (its sharded pub/sub needs RESP3 push messages on every node).
    pub(crate) async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<redis::aio::PubSubStream, StoreError> {
        let Client::Single(client) = &self.link.client else {
            return Err(StoreError::new(
                "subscribing is not supported on a Redis Cluster",
            ));
        };
        let subscribe = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, RedisError>(pubsub.into_on_message())
        };
        match tokio::time::timeout(self.timeout, subscribe).await {
            Ok(subscribed) => subscribed.map_err(StoreError::new),
            Err(_elapsed) => Err(StoreError::new(format!(
                "Redis did not answer within {:?}",
                self.timeout
            ))),
        }
    }

    /// Runs `pipe` (a `MULTI` … `EXEC`; on a cluster its keys must share a
    /// slot) within the deadline, its answers ignored.
    pub(crate) async fn run_atomic(&self, pipe: redis::Pipeline) -> Result<(), StoreError> {
        self.run(|mut connection| async move { pipe.query_async::<()>(&mut connection).await })
            .await
    }

    /// Runs `command` on the shared connection within the deadline; a
    /// connection to one server that fails or times out is dropped, for the
    /// next call to replace. A cluster connection is kept: it reconnects to
    /// its nodes and rereads the slot map by itself.
    async fn run<T, F, Fut>(&self, command: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let link = &self.link;
        let attempt = async {
            let (number, connection) = link.connection(self.timeout).await?;
            command(connection).await.map_err(|error| {
                if !self.is_cluster()
                    && (error.is_io_error()
                        || error.is_connection_dropped()
                        || error.is_unrecoverable_error()
                        || error.is_timeout())
                {
                    link.drop_connection(number);
                }
                StoreError::new(error)
            })
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_elapsed) => {
                // A server that stopped answering: do not queue behind it.
                let number = link.state().current.as_ref().map(|(number, _)| *number);
                if let (Some(number), false) = (number, self.is_cluster()) {
                    link.drop_connection(number);
                }
                Err(StoreError::new(format!(
                    "Redis did not answer within {:?}",
                    self.timeout
                )))
            }
        }
    }
}

impl From<&RedisConnection> for RedisConnection {
    fn from(connection: &RedisConnection) -> Self {
        connection.clone()
    }
}

impl From<redis::Client> for RedisConnection {
    fn from(client: redis::Client) -> Self {
        Self::from_client(client)
    }
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: only the parts that cannot.
        f.debug_struct("RedisConnection")
            .field("addr", &self.link.addr)
            .field("cluster", &self.is_cluster())
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One multiplexed connection, made on first use and again after it fails.
///
/// Not redis-rs's `ConnectionManager`: while Redis is down it makes every call
/// wait through its whole reconnect sequence. Here a call waits at most its
/// deadline, and while the server is unreachable calls fail at once between
/// attempts.
struct Link {
    client: Client,
    /// Host and port (each seed's, for a cluster): what `Debug` shows.
    addr: String,
    state: Mutex<State>,
    /// One connection attempt at a time.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// The shared connection and its number, so that a failure reported late
    /// does not drop its replacement.
    current: Option<(u64, Connection)>,
    made: u64,
    /// No new attempt before this, after a failed one.
    retry_at: Option<Instant>,
}

impl Link {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn connection(&self, timeout: Duration) -> Result<(u64, Connection), StoreError> {
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
        match self.client.connect(timeout).await {
            Ok(connection) => {
                let mut state = self.state();
                if state.made == 0 {
                    tokio::spawn(warn_if_evicting(connection.clone(), timeout));
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

    fn current(&self) -> Option<(u64, Connection)> {
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

/// A Lua script and its SHA-1, run by [`RedisConnection::script`].
pub(crate) struct LuaScript {
    code: Box<str>,
    hash: Script,
}

/// Redis's clock in milliseconds, as `now`: the replicas' clocks do not matter.
const NOW: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"#;

impl LuaScript {
    pub(crate) fn new(code: &str) -> Self {
        Self {
            code: code.into(),
            hash: Script::new(code),
        }
    }

    /// A script that starts by reading Redis's clock into `now`.
    pub(crate) fn timed(body: &str) -> Self {
        Self::new(&format!("{NOW}{body}"))
    }
}

/// One server or a cluster.
enum Client {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
}

impl Client {
    async fn connect(&self, timeout: Duration) -> Result<Connection, RedisError> {
        match self {
            Self::Single(client) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Connection::Single)
            }
            Self::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout);
                client
                    .get_async_connection_with_config(config)
                    .await
                    .map(Connection::Cluster)
            }
        }
    }
}

/// A multiplexed connection to one server, or a cluster connection (which
/// routes each command to the master of its keys' slot).
#[derive(Clone)]
enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Logs a warning, once per connection (and its clones) on its first
/// connecting, unless Redis's `maxmemory-policy` is `noeviction`. Every key
/// this crate writes has an expiry, so `volatile-*` policies may evict them as
/// `allkeys-*` ones do: a revoked JWT's `jti` entry (the token works again) or
/// a login-throttle count (more guesses). A warning, not a refusal: the policy
/// can change at any time, and managed Redis may hide `CONFIG`; it is logged as
/// unknown then.
async fn warn_if_evicting(mut connection: Connection, timeout: Duration) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neither_debug_nor_a_bad_url_shows_the_password() {
        let redis = RedisConnection::new("redis://user:hunter2-secret@127.0.0.1:6379/0")
            .unwrap()
            .with_prefix("app:");
        let debug = format!("{redis:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("127.0.0.1:6379") && debug.contains("app:"),
            "{debug}"
        );
        let error = RedisConnection::new("nope://user:hunter2-secret@host").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        let cluster = RedisConnection::cluster(&[
            "redis://user:hunter2-secret@127.0.0.1:7101",
            "redis://user:hunter2-secret@127.0.0.1:7102",
        ])
        .unwrap();
        let debug = format!("{cluster:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("127.0.0.1:7101,127.0.0.1:7102"), "{debug}");
        assert!(cluster.is_cluster());
        let error =
            RedisConnection::cluster(&["redis://127.0.0.1:7101", "nope://u:hunter2-secret@h"])
                .unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(RedisConnection::cluster::<&str>(&[]).is_err());
    }

    #[test]
    fn handles_with_their_own_prefix_and_deadline_share_one_connection() {
        let redis = RedisConnection::new("redis://127.0.0.1:6379").unwrap();
        let other = redis
            .clone()
            .with_prefix("other:")
            .with_timeout(Duration::from_secs(2));
        assert!(Arc::ptr_eq(&redis.link, &other.link));
        assert_eq!(
            (redis.key(format_args!("k")), other.key(format_args!("k"))),
            ("k".into(), "other:k".into())
        );
        assert_eq!(other.timeout, Duration::from_secs(2));
    }
}
