//! What the examples share: the tutorial's "fake database" — `johndoe` / `secret`
//! (active) and `alice` / `secret2` (disabled), with real Argon2id hashes — and
//! the `ADDR` handling.

// Each example uses its own part of this module.
#![allow(dead_code)]

pub mod dpop;
pub mod introspect;
pub mod map_lookup;
pub mod stores;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde::Serialize;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_oauth2_password::endpoint::PeerAddr;
use tower_oauth2_password::password::HashedPassword;
use tower_oauth2_password::{MemoryUserStore, StoredUser};
use tracing::Instrument;

/// The application's user model: what `/users/me` shows. No password hash in it.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub username: String,
    pub email: String,
    pub full_name: String,
    pub disabled: bool,
}

/// The tutorial's "fake database", with real Argon2id hashes (OWASP parameters) of
/// `secret` and `secret2`.
pub fn users() -> MemoryUserStore<User> {
    let users = MemoryUserStore::new();
    for (username, full_name, email, disabled, phc) in [
        (
            "johndoe",
            "John Doe",
            "johndoe@example.com",
            false,
            "$argon2id$v=19$m=19456,t=2,p=1$QlGICJv0VkLd2pqAa9i9+Q$8jVAeYmJi0SJhtpkUv7OIxBaTEMmu/PL5yjLUR5dcQ8",
        ),
        (
            "alice",
            "Alice Wonderson",
            "alice@example.com",
            true,
            "$argon2id$v=19$m=19456,t=2,p=1$ULSzqw7j/GVfyggtyAXgnA$gYVa1ad7EgzgNyXlmytUKD6vLLXqwCPLKEMvniAxwXc",
        ),
    ] {
        let Ok(hash) = HashedPassword::parse(phc) else {
            unreachable!("the embedded hashes are valid PHC strings")
        };
        let user = User {
            username: username.to_owned(),
            email: email.to_owned(),
            full_name: full_name.to_owned(),
            disabled,
        };
        // The scopes of FastAPI's "OAuth2 scopes" tutorial (examples/scopes.rs).
        let mut stored = StoredUser::new(user, hash).with_scopes(["me", "items"]);
        stored.active = !disabled;
        users.insert(username, stored);
    }
    users
}

/// Binds `$ADDR` (or `default`), or exits with a message that says what is wrong.
pub async fn listen(default: &str) -> (TcpListener, SocketAddr) {
    let addr = std::env::var("ADDR").unwrap_or_else(|_| default.to_owned());
    let addr: SocketAddr = match addr.parse() {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("ADDR={addr:?} is not a socket address like {default}: {error}");
            std::process::exit(2);
        }
    };
    // The bound address, not the one asked for: `ADDR=127.0.0.1:0` reports its port.
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            let addr = listener.local_addr().unwrap_or(addr);
            (listener, addr)
        }
        Err(error) => {
            eprintln!("cannot listen on {addr}: {error}");
            std::process::exit(1);
        }
    }
}

#[derive(Serialize)]
pub struct Detail {
    pub detail: &'static str,
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = Response::new(Full::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// `METRICS_ADDR=127.0.0.1:9100`: the layer's metrics in Prometheus text format
/// at `http://METRICS_ADDR/metrics` (build with `--features metrics`). Call it
/// before building the layer: the guard registers its counters at `build`.
/// Exits with a message when the variable is set and cannot be served.
pub fn metrics_from_env() {
    let Ok(addr) = std::env::var("METRICS_ADDR") else {
        return;
    };
    #[cfg(feature = "metrics")]
    {
        let installed = addr
            .parse::<SocketAddr>()
            .map_err(|error| format!("METRICS_ADDR={addr:?} is not an address: {error}"))
            .and_then(|at| {
                metrics_exporter_prometheus::PrometheusBuilder::new()
                    .with_http_listener(at)
                    .install()
                    .map_err(|error| format!("METRICS_ADDR={addr}: {error}"))
            });
        match installed {
            Ok(()) => tracing::info!("metrics on http://{addr}/metrics"),
            Err(message) => {
                eprintln!("{message}");
                std::process::exit(2);
            }
        }
    }
    #[cfg(not(feature = "metrics"))]
    {
        eprintln!("METRICS_ADDR={addr} needs the metrics feature: cargo run --example tutorial --features metrics");
        std::process::exit(2);
    }
}

/// `AUDIT_LOG=path` (or `-` for standard output): every audit event as one JSON
/// line, e.g. `{"event":"login_failed","username":"johndoe","client":"127.0.0.1",
/// "reason":"unknown user or wrong password"}`; `None` when unset (the default
/// sink, `tracing`, logs them then). Exits with a message when the file cannot be
/// opened.
pub fn audit_log_from_env() -> Option<JsonLinesAudit> {
    let path = std::env::var("AUDIT_LOG").ok()?;
    let out: Box<dyn std::io::Write + Send> = if path == "-" {
        Box::new(std::io::stdout())
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(file) => Box::new(file),
            Err(error) => {
                eprintln!("AUDIT_LOG={path}: {error}");
                std::process::exit(2);
            }
        }
    };
    Some(JsonLinesAudit(std::sync::Mutex::new(
        std::io::LineWriter::new(out),
    )))
}

/// An [`AuditSink`](tower_oauth2_password::audit::AuditSink) writing one JSON
/// object per line. A write per event, on the request's task: fine for a
/// tutorial; a busy server would hand events to a channel and write elsewhere.
pub struct JsonLinesAudit(std::sync::Mutex<std::io::LineWriter<Box<dyn std::io::Write + Send>>>);

impl tower_oauth2_password::audit::AuditSink for JsonLinesAudit {
    fn record(&self, event: &tower_oauth2_password::audit::AuditEvent<'_>) {
        let line = audit_json(event);
        let mut out = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(error) = std::io::Write::write_all(&mut *out, format!("{line}\n").as_bytes()) {
            tracing::error!(%error, "audit event not written");
        }
    }
}

/// An audit event as a JSON object: `event`, then its fields.
pub fn audit_json(event: &tower_oauth2_password::audit::AuditEvent<'_>) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    use tower_oauth2_password::audit::{AuditEvent, AuditUser};

    let mut fields = Map::new();
    fields.insert("event".into(), event.name().into());
    let mut user = |user: &AuditUser<'_>| match user {
        AuditUser::Name(name) => fields.insert("username".into(), (*name).into()),
        AuditUser::Hashed(hash) => {
            fields.insert("username_hash".into(), format!("{hash:016x}").into())
        }
        _ => None,
    };
    let (client, rest): (Option<std::net::IpAddr>, Value) = match event {
        AuditEvent::LoginSucceeded { user: u, client } => {
            user(u);
            (*client, json!({}))
        }
        AuditEvent::LoginFailed {
            user: u,
            client,
            reason,
        } => {
            user(u);
            (*client, json!({ "reason": reason.as_str() }))
        }
        AuditEvent::InactiveUserRefused { user: u, client } => {
            user(u);
            (*client, json!({}))
        }
        AuditEvent::Throttled {
            user: u,
            client,
            limit,
            retry_after,
        } => {
            if let Some(u) = u {
                user(u);
            }
            (
                *client,
                json!({ "limit": limit.as_str(), "retry_after": retry_after.as_secs() }),
            )
        }
        AuditEvent::RefreshRefused { client } => (*client, json!({})),
        AuditEvent::RefreshReuseDetected {
            user: u,
            family,
            client,
        } => {
            user(u);
            (*client, json!({ "family": format!("{family:?}") }))
        }
        AuditEvent::TokenRevoked { family, client } => (
            *client,
            json!({ "family": family.map(|family| format!("{family:?}")) }),
        ),
        AuditEvent::PasswordRehashed { user: u } => {
            user(u);
            (None, json!({}))
        }
        _ => (None, json!({})),
    };
    if let Some(client) = client {
        fields.insert("client".into(), client.to_string().into());
    }
    if let Value::Object(rest) = rest {
        fields.extend(rest);
    }
    Value::Object(fields)
}

/// One log line per request unless `LOG=off` (for load tests).
pub fn init_logging() {
    if std::env::var("LOG").as_deref() != Ok("off") {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt()
            .with_target(false)
            .with_ansi(ansi)
            .init();
    }
}

/// Serves `app` with hyper on `listener` until `shutdown` completes, then lets open
/// connections finish (up to 10 s). One span per request (method, path, and the
/// `user` the guard records), one log line with the status.
pub async fn serve<S, B>(listener: TcpListener, app: S, shutdown: impl Future<Output = ()>)
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Slowloris protection for headers; the layer bounds the token endpoint's body.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            // The client's address, for the login throttle and the login logs.
            request.extensions_mut().insert(PeerAddr(peer));
            let span = tracing::info_span!(
                "request",
                method = %request.method(),
                path = %request.uri().path(),
                user = tracing::field::Empty,
            );
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await;
                if let Ok(response) = &response {
                    tracing::info!(status = response.status().as_u16());
                }
                response
            }
            .instrument(span)
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down");
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s; closing them");
    }
}

/// The model read from the users table (`examples/server.rs`): the crate's
/// `SqlUser`, with the tutorial's empty strings for a missing name or email.
#[cfg(feature = "sqlx")]
impl
    tower_oauth2_password::user::sql::sqlx::FromRow<
        '_,
        tower_oauth2_password::user::sql::sqlx::any::AnyRow,
    > for User
{
    fn from_row(
        row: &tower_oauth2_password::user::sql::sqlx::any::AnyRow,
    ) -> Result<Self, tower_oauth2_password::user::sql::sqlx::Error> {
        let user = tower_oauth2_password::user::sql::SqlUser::from_row(row)?;
        Ok(Self {
            username: user.username,
            email: user.email.unwrap_or_default(),
            full_name: user.full_name.unwrap_or_default(),
            disabled: user.disabled,
        })
    }
}

/// Whether `url` is an `http(s)://` URL with a host and no query, fragment or
/// user information (what the layer accepts as an issuer or public URL).
pub fn usable_url(url: &str) -> bool {
    let uri = url.parse::<http::Uri>().ok();
    uri.is_some_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.authority().is_some_and(|a| !a.as_str().contains('@'))
    }) && !url.contains(['?', '#'])
}
