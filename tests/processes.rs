//! `examples/tutorial.rs` as real processes, as an operator starts it: the
//! start-up refusals of a bad `TOKEN_STORE`, and (feature `redis`) two replicas on
//! one Redis driven by an HTTP client of their own.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The tutorial example binary `cargo test` built beside this test. (Only a whole
/// `cargo test` builds examples: `cargo test --test processes` alone runs
/// whatever binary an earlier build left, hence the hint in the failures.)
fn tutorial_binary() -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let profile = deps.parent().and_then(|deps| deps.parent()).unwrap();
    profile.join("examples").join("tutorial")
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn tutorial(env: &[(&str, &str)], addr: SocketAddr) -> Command {
    let mut command = Command::new(tutorial_binary());
    command
        .env_remove("TOKEN_STORE")
        .env_remove("REFRESH_TOKENS")
        .env_remove("REDIS_URL")
        .env_remove("JWT_SECRET")
        .env_remove("REFRESH_SECRET")
        .env_remove("INTROSPECT_CLIENTS")
        .env_remove("DPOP")
        .env("ADDR", addr.to_string())
        .env("LOG", "off")
        .envs(env.iter().copied());
    command
}

/// Runs the tutorial with `env`, which must make it refuse to start.
fn refused(env: &[(&str, &str)]) -> String {
    let mut child = tutorial(env, free_addr())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the tutorial example is built by cargo test");
    let exited = (0..400).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        child.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = child.kill();
        panic!("{env:?} did not stop the tutorial (a stale build? run the whole `cargo test`)");
    }
    let Output { status, stderr, .. } = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{env:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
fn bad_settings_are_refused_before_listening() {
    assert!(refused(&[("TOKEN_STORE", "postgres")]).contains("TOKEN_STORE must be"));
    assert!(refused(&[("REFRESH_TOKENS", "yes")]).contains("REFRESH_TOKENS must be 1 or 0"));
    assert!(refused(&[("DPOP", "sometimes")]).contains("DPOP must be allowed or required"));
    let short = "too-short-a-client-secret";
    let clients = format!("rs1:{}, rs2:{short}", "k".repeat(32));
    let stderr = refused(&[("INTROSPECT_CLIENTS", &clients)]);
    assert!(
        stderr.contains("client rs2") && stderr.contains("at least 32"),
        "{stderr}"
    );
    assert!(!stderr.contains(short), "the secret is not shown: {stderr}");
    let stderr = refused(&[("INTROSPECT_CLIENTS", "rs1")]);
    assert!(stderr.contains("id:secret"), "{stderr}");
    if cfg!(feature = "jwt") {
        let stderr = refused(&[("TOKEN_STORE", "jwt")]);
        assert!(stderr.contains("needs JWT_SECRET"), "{stderr}");
        let short = "too-short-a-secret";
        let stderr = refused(&[("TOKEN_STORE", "jwt"), ("JWT_SECRET", short)]);
        assert!(stderr.contains("at least 32"), "{stderr}");
        assert!(!stderr.contains(short), "the secret is not shown: {stderr}");
    } else {
        let stderr = refused(&[("TOKEN_STORE", "jwt")]);
        assert!(stderr.contains("needs the jwt feature"), "{stderr}");
    }
    if cfg!(feature = "redis") {
        let stderr = refused(&[("TOKEN_STORE", "redis"), ("REDIS_URL", "http://secret@x")]);
        assert!(
            stderr.contains("REDIS_URL is not a usable Redis URL"),
            "{stderr}"
        );
        assert!(!stderr.contains("secret"), "the URL is not shown: {stderr}");
        let refresh_in_redis = [("TOKEN_STORE", "redis"), ("REFRESH_TOKENS", "1")];
        let stderr = refused(&refresh_in_redis);
        assert!(stderr.contains("needs REFRESH_SECRET"), "{stderr}");
        let short = "too-short-a-refresh-secret";
        let stderr = refused(&[
            refresh_in_redis[0],
            refresh_in_redis[1],
            ("REFRESH_SECRET", short),
        ]);
        assert!(stderr.contains("at least 32"), "{stderr}");
        assert!(!stderr.contains(short), "the secret is not shown: {stderr}");
    } else {
        let stderr = refused(&[("TOKEN_STORE", "redis")]);
        assert!(stderr.contains("needs the redis feature"), "{stderr}");
    }
}

/// A running example process, killed on drop.
#[cfg(feature = "redis")]
struct Process {
    child: std::process::Child,
    addr: SocketAddr,
}

#[cfg(feature = "redis")]
impl Process {
    fn start(env: &[(&str, &str)]) -> Self {
        let addr = free_addr();
        let child = tutorial(env, addr)
            .stdout(Stdio::null())
            .spawn()
            .expect("the tutorial example is built by cargo test");
        // Killed and reaped on drop, the panic below included.
        let process = Self { child, addr };
        let listening = (0..200).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            std::net::TcpStream::connect(addr).is_ok()
        });
        assert!(listening, "the tutorial did not listen on {addr}");
        process
    }
}

#[cfg(feature = "redis")]
impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(feature = "redis")]
#[tokio::test]
async fn two_processes_on_one_redis_share_tokens() {
    replicas_share_tokens("redis", &[]).await;
}

/// Two processes with the same JWT secret: each verifies the other's tokens, and a
/// logout on one reaches the other through the denylist in Redis.
#[cfg(all(feature = "redis", feature = "jwt"))]
#[tokio::test]
async fn two_processes_with_one_jwt_secret_share_tokens() {
    let secret = "an example secret of more than thirty-two bytes";
    replicas_share_tokens("jwt", &[("JWT_SECRET", secret)]).await;
}

/// Two processes of the tutorial with `TOKEN_STORE=kind` (and `env`) on one Redis
/// prefix: cross-replica use, logout, and refresh.
#[cfg(feature = "redis")]
async fn replicas_share_tokens(kind: &str, env: &[(&str, &str)]) {
    use common::Server;
    use http::StatusCode;

    let url = common::redis::redis_url();
    let prefix = common::redis::Prefix::new(&format!("processes-{kind}"));
    let mut env = env.to_vec();
    env.extend([
        ("TOKEN_STORE", kind),
        ("REDIS_URL", url.as_str()),
        ("REDIS_PREFIX", prefix.as_str()),
        ("REFRESH_TOKENS", "1"),
        (
            "REFRESH_SECRET",
            "the replicas' refresh secret, 32 bytes or more",
        ),
    ]);
    let a = Process::start(&env);
    let b = Process::start(&env);
    let (a, b, _processes) = (
        Server::client_for(a.addr),
        Server::client_for(b.addr),
        (a, b),
    );

    let reply = a.post_form("username=johndoe&password=secret").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let json = reply.json();
    let access = json["access_token"].as_str().unwrap();
    let refresh_token = json["refresh_token"].as_str().unwrap();
    assert_eq!(b.me(access).await.json()["username"], "johndoe");

    // Log out on A: B refuses the token on its next request.
    let reply = a
        .post(
            "/revoke",
            "application/x-www-form-urlencoded",
            format!("token={access}").into_bytes(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    b.me(access).await.assert_invalid_token();
    // That logout ended the login, its refresh token too (RFC 7009 §2.1).
    let reply = b
        .post_form(&format!(
            "grant_type=refresh_token&refresh_token={refresh_token}"
        ))
        .await;
    reply.assert_error(400, "Invalid refresh token", Some("invalid_grant"));

    // A refresh on B of A's refresh token; the new access token works on A.
    let reply = a.post_form("username=johndoe&password=secret").await;
    let refresh_token = reply.json()["refresh_token"].as_str().unwrap().to_owned();
    let reply = b
        .post_form(&format!(
            "grant_type=refresh_token&refresh_token={refresh_token}"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let access = reply.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(a.me(&access).await.status, StatusCode::OK);
}
