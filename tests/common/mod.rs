//! A real server on a real socket, and a real HTTP client, for the integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tower_oauth2_password::layer::Builder;
use tower_oauth2_password::testing::Awaited;
use tower_oauth2_password::token::memory::MemoryTokenStore;
use tower_oauth2_password::token::TokenStore;
use tower_oauth2_password::user::UserStore;
use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};

#[cfg(feature = "redis")]
pub mod redis;
pub mod refresh;

#[path = "../../examples/tutorial.rs"]
#[allow(dead_code, unreachable_pub)]
pub mod tutorial;

/// How the tutorial's stores answer the guard: at once (memory), or awaited as
/// network stores do. The guard's contract holds for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stores {
    Ready,
    AwaitedTokens,
    AwaitedUsers,
    Awaited,
}

/// The tutorial's users and a memory token store, answering as `stores` says.
pub fn tutorial_builder(
    stores: Stores,
) -> Builder<Awaited<MemoryUserStore<tutorial::User>>, Awaited<MemoryTokenStore>> {
    let (tokens, users) = match stores {
        Stores::Ready => (false, false),
        Stores::AwaitedTokens => (true, false),
        Stores::AwaitedUsers => (false, true),
        Stores::Awaited => (true, true),
    };
    OAuth2PasswordLayer::builder(awaited(users, tutorial::users()))
        .token_store(awaited(tokens, MemoryTokenStore::new()))
}

fn awaited<S>(yes: bool, store: S) -> Awaited<S> {
    if yes {
        Awaited::new(store)
    } else {
        Awaited::passthrough(store)
    }
}

/// One `#[tokio::test]` per kind of [`Stores`] for each `async fn name(Stores)`
/// named, in modules `ready`, `awaited_tokens`, `awaited_users` and `awaited`.
#[macro_export]
macro_rules! for_each_kind_of_store {
    ($($test:ident),* $(,)?) => {
        $crate::for_each_kind_of_store!(@kind ready Ready $($test)*);
        $crate::for_each_kind_of_store!(@kind awaited_tokens AwaitedTokens $($test)*);
        $crate::for_each_kind_of_store!(@kind awaited_users AwaitedUsers $($test)*);
        $crate::for_each_kind_of_store!(@kind awaited Awaited $($test)*);
    };
    (@kind $module:ident $kind:ident $($test:ident)*) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::common::Stores::$kind).await
                }
            )*
        }
    };
}

/// The tutorial app serving on 127.0.0.1, on a port of the OS's choosing.
pub struct Server {
    pub addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// What a response was: status, headers and body, all of which the tests check.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// Asserts the 401 for a bad token, with its challenge.
    #[track_caller]
    pub fn assert_invalid_token(&self) {
        self.assert_error(
            401,
            "Invalid authentication credentials",
            Some("invalid_token"),
        );
        assert_eq!(
            self.header("www-authenticate"),
            Some("Bearer error=\"invalid_token\"")
        );
    }

    /// Asserts a token response with a refresh token: (access token, refresh token).
    #[track_caller]
    pub fn tokens(&self) -> (String, String) {
        assert_eq!(self.status, StatusCode::OK, "body: {:?}", self.body);
        assert_eq!(self.header("cache-control"), Some("no-store"));
        let json = self.json();
        assert_eq!(json["token_type"], "bearer");
        let access = json["access_token"].as_str().expect("access_token");
        let refresh = json["refresh_token"].as_str().expect("refresh_token");
        (access.to_owned(), refresh.to_owned())
    }

    /// Asserts a JSON error answer: status, `detail`, `error`, content type.
    #[track_caller]
    pub fn assert_error(&self, status: u16, detail: &str, error: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "body: {:?}", self.body);
        assert_eq!(self.header("content-type"), Some("application/json"));
        let json = self.json();
        assert_eq!(json["detail"], detail, "body: {json}");
        match error {
            Some(error) => assert_eq!(json["error"], error, "body: {json}"),
            None => assert!(json.get("error").is_none(), "body: {json}"),
        }
    }
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(tutorial::layer_builder().build()).await
    }

    /// A client for a server started elsewhere (another example's).
    pub fn client_for(addr: SocketAddr) -> Self {
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
            stop: None,
            task: None,
        }
    }

    /// A client of the same server whose connections come from `source`, one of
    /// loopback's 127.0.0.0/8: another client address, as the server sees it.
    pub fn connecting_from(&self, source: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(source.parse().expect("an IP address")));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            ..Self::client_for(self.addr)
        }
    }

    pub async fn start_with<Us, Ts>(layer: OAuth2PasswordLayer<Us, Ts>) -> Self
    where
        Us: UserStore<User = tutorial::User>,
        Ts: TokenStore,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(tutorial::serve(listener, layer, async {
            let _ = stopped.await;
        }));
        Self {
            stop: Some(stop),
            task: Some(task),
            ..Self::client_for(addr)
        }
    }

    /// Stops accepting and waits for the server to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task ended cleanly");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        let response = self.client.request(request).await.expect("request sent");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body read").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// `POST /token` with a urlencoded body.
    pub async fn post_form(&self, body: &str) -> Reply {
        self.post(
            "/token",
            "application/x-www-form-urlencoded",
            body.as_bytes().to_vec(),
        )
        .await
    }

    pub async fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let request = Request::post(self.url(path))
            .header("content-type", content_type)
            .body(Full::from(body))
            .expect("request");
        self.send(request).await
    }

    /// `grant_type=refresh_token` with `token`.
    pub async fn refresh(&self, token: &str) -> Reply {
        self.post_form(&format!("grant_type=refresh_token&refresh_token={token}"))
            .await
    }

    /// `POST /revoke` with a urlencoded body.
    pub async fn revoke(&self, form: &str) -> Reply {
        self.post(
            "/revoke",
            "application/x-www-form-urlencoded",
            form.as_bytes().to_vec(),
        )
        .await
    }

    /// Logs in as johndoe where refresh tokens are on: (access token, refresh token).
    pub async fn login_with_refresh(&self) -> (String, String) {
        self.post_form("username=johndoe&password=secret")
            .await
            .tokens()
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let reply = self
            .post_form(&format!("username={username}&password={password}"))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "login failed: {:?}",
            reply.body
        );
        reply.json()["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// `GET path` with the given `Authorization` header values (any bytes).
    pub async fn get(&self, path: &str, authorization: &[&[u8]]) -> Reply {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(self.url(path))
            .body(Full::default())
            .expect("request");
        for value in authorization {
            request.headers_mut().append(
                "authorization",
                HeaderValue::from_bytes(value).expect("header value"),
            );
        }
        self.send(request).await
    }

    pub async fn me(&self, token: &str) -> Reply {
        self.get_as("/users/me", token).await
    }

    /// `GET path` with `token` as the bearer.
    pub async fn get_as(&self, path: &str, token: &str) -> Reply {
        self.get(path, &[format!("Bearer {token}").as_bytes()])
            .await
    }

    /// Writes `bytes` on a fresh connection, then reads until the server closes it
    /// or `wait` passes.
    pub async fn raw(&self, bytes: &[u8], wait: Duration) -> String {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        stream.write_all(bytes).await.expect("write");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Log output captured in memory, to check what the logs say (and do not say).
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Installs a global subscriber at TRACE level writing here; once per test binary.
    pub fn install() -> Self {
        let captured = Self::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        captured
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Issue 17 row 4, as a client and a thief see it, over `a` and `b` (one server
/// twice, or two replicas sharing their stores; refresh tokens on, no retry
/// grace): ending a refresh family — by revoking its refresh token, by reusing an
/// old generation of it, or by revoking one of its access tokens (a logout) —
/// ends every access token issued from it, on every replica.
pub async fn ending_a_family_ends_its_access_tokens(a: &Server, b: &Server) {
    // Each way a family ends: the form that ends it, sent to `a`.
    for how in [
        "revoke the refresh token",
        "reuse",
        "revoke an access token",
    ] {
        let (login_access, first) = a.login_with_refresh().await;
        let (refreshed_access, second) = b.refresh(&first).await.tokens();
        let family = [&login_access, &refreshed_access];
        for token in family {
            assert_eq!(b.me(token).await.status, StatusCode::OK, "{how}");
        }
        // Another login of the same user, which must live on.
        let (bystander, bystander_refresh) = b.login_with_refresh().await;
        match how {
            "revoke the refresh token" => {
                let reply = a
                    .revoke(&format!("token={second}&token_type_hint=refresh_token"))
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{how}: {:?}", reply.body);
                assert!(reply.body.is_empty());
            }
            "reuse" => a.refresh(&first).await.assert_error(
                400,
                "Invalid refresh token",
                Some("invalid_grant"),
            ),
            _ => {
                let reply = a.revoke(&format!("token={login_access}")).await;
                assert_eq!(reply.status, StatusCode::OK, "{how}: {:?}", reply.body);
            }
        }
        for server in [a, b] {
            for token in family {
                server.me(token).await.assert_invalid_token();
            }
            server.refresh(&second).await.assert_error(
                400,
                "Invalid refresh token",
                Some("invalid_grant"),
            );
            assert_eq!(server.me(&bystander).await.status, StatusCode::OK, "{how}");
        }
        b.refresh(&bystander_refresh).await.tokens();
    }
}

/// Issue 17 row 7: one login refreshing `refreshes` times holds at most `cap`
/// working access tokens, its newest.
pub async fn a_family_holds_at_most(server: &Server, cap: usize, refreshes: usize) {
    let (access, mut refresh_token) = server.login_with_refresh().await;
    let mut minted = vec![access];
    for _ in 0..refreshes {
        let (access, next) = server.refresh(&refresh_token).await.tokens();
        minted.push(access);
        refresh_token = next;
    }
    let mut working = Vec::new();
    for token in &minted {
        working.push(server.me(token).await.status == StatusCode::OK);
    }
    let newest = minted.len().saturating_sub(cap);
    let expected: Vec<bool> = (0..minted.len()).map(|i| i >= newest).collect();
    assert_eq!(working, expected, "only the newest {cap} work");
}

/// A thief and the client race on `a` and `b` (one server twice, or two
/// replicas; no retry grace): the current refresh token presented 15 times at
/// once, an old one once (reuse) among them. Whatever the interleaving, every
/// access token handed out is dead afterwards, those whose issue raced the
/// reuse that ended their family included.
pub async fn no_access_token_outlives_a_reuse_it_raced(
    a: &std::sync::Arc<Server>,
    b: &std::sync::Arc<Server>,
) {
    let (login_access, first) = a.login_with_refresh().await;
    let (refreshed_access, second) = b.refresh(&first).await.tokens();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let server = std::sync::Arc::clone(if i % 2 == 0 { a } else { b });
        let token = if i == 7 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move { server.refresh(&token).await }));
    }
    let mut minted = vec![login_access, refreshed_access];
    for task in tasks {
        let reply = task.await.expect("request task");
        if reply.status == StatusCode::OK {
            minted.push(reply.tokens().0);
        } else {
            reply.assert_error(400, "Invalid refresh token", Some("invalid_grant"));
        }
    }
    for token in &minted {
        a.me(token).await.assert_invalid_token();
    }
}
