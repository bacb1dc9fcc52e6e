//! `examples/server.rs` and `examples/useradd.rs` as real processes, on a fresh
//! SQLite file and (with `TEST_POSTGRES=1`) a fresh PostgreSQL database: what a
//! newcomer deploying the tutorial relies on.
#![cfg(feature = "sqlx")]

mod common;
mod sql_support;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use common::Server;
use sql_support::{Kind, TestDb};

on_each_database!(
    serves_the_tutorial_from_a_fresh_database,
    useradd_changes_take_effect_on_the_next_request,
    restart_neither_fails_nor_reseeds,
    bcrypt_user_is_renewed_as_argon2id,
    bcrypt_renewal_never_makes_a_typo_past_byte_72_the_password,
    database_outage_answers_503_and_recovers,
);

/// The built example binary `name`, next to this test's (built once per run, with
/// the `sqlx` feature, by the same cargo).
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "--quiet",
            "--package",
            "tower-oauth2-password-examples",
            "--features",
            "sqlx",
            "--example",
            "server",
            "--example",
            "useradd",
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building the examples failed");
    });
    profile_dir.join("examples").join(name)
}

/// `examples/server` running on `url`; killed when dropped.
struct ServerProcess {
    child: Child,
    client: Server,
}

impl ServerProcess {
    /// With `TOKEN_STORE` unset (memory, the default).
    async fn start(url: &str) -> Self {
        Self::start_with_tokens(url, None).await
    }

    async fn start_with_tokens(url: &str, token_store: Option<&str>) -> Self {
        let mut server = Command::new(example("server"));
        match token_store {
            Some(store) => server.env("TOKEN_STORE", store),
            None => server.env_remove("TOKEN_STORE"),
        };
        let mut child = server
            .env("DATABASE_URL", url)
            .env("ADDR", "127.0.0.1:0")
            .env_remove("LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (addr_tx, addr_rx) = mpsc::channel();
        // Reads the address it listens on, then keeps the pipe drained.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = addr_tx.send(addr.parse::<SocketAddr>().ok());
                }
            }
        });
        let addr =
            tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(60)))
                .await
                .expect("reader thread");
        let Ok(Some(addr)) = addr else {
            let _ = child.kill();
            panic!(
                "the server did not say where it listens: {:?}",
                child.wait()
            );
        };
        Self {
            child,
            client: Server::client_for(addr),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `examples/useradd` with `args`, `stdin` as its standard input.
fn useradd(url: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(example("useradd"))
        .args(args)
        .env("DATABASE_URL", url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("useradd starts");
    let mut input = child.stdin.take().expect("piped stdin");
    // A refused command may exit before it reads: a closed pipe is no failure.
    match input.write_all(stdin.as_bytes()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            panic!("stdin not written: {error}")
        }
        _ => {}
    }
    drop(input);
    child.wait_with_output().expect("useradd ends")
}

/// `useradd` succeeded.
#[track_caller]
fn admin(url: &str, args: &[&str], stdin: &str) {
    let out = useradd(url, args, stdin);
    assert!(
        out.status.success(),
        "useradd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `useradd` failed with `code` and one line on stderr containing `message`.
#[track_caller]
fn admin_refused(url: &str, args: &[&str], stdin: &str, code: i32, message: &str) {
    let out = useradd(url, args, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "useradd {args:?}: {stderr}");
    assert!(
        stderr.lines().next().unwrap_or_default().contains(message),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The URL the processes use: SQLite's file must exist for useradd (the server
/// creates it).
async fn database(kind: Kind) -> Option<TestDb> {
    TestDb::new(kind).await
}

async fn serves_the_tutorial_from_a_fresh_database(kind: Kind) {
    let Some(db) = database(kind).await else {
        return;
    };
    let server = ServerProcess::start(&db.url).await;
    let http = &server.client;
    let token = http.login("johndoe", "secret").await;
    let me = http.me(&token).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.header("content-type"), Some("application/json"));
    assert_eq!(
        me.json(),
        serde_json::json!({
            "username": "johndoe",
            "email": "johndoe@example.com",
            "full_name": "John Doe",
            "disabled": false,
        })
    );
    let alice = http.login("alice", "secret2").await;
    http.me(&alice)
        .await
        .assert_error(400, "Inactive user", None);
    let wrong = http.post_form("username=johndoe&password=wrong").await;
    let unknown = http.post_form("username=nobody&password=wrong").await;
    wrong.assert_error(400, "Incorrect username or password", Some("invalid_grant"));
    assert_eq!(wrong.body, unknown.body);
    http.get("/users/me", &[])
        .await
        .assert_error(401, "Not authenticated", None);
    http.me("not-a-token").await.assert_invalid_token();
    http.get_as("/elsewhere", &token)
        .await
        .assert_error(404, "Not Found", None);
}

async fn useradd_changes_take_effect_on_the_next_request(kind: Kind) {
    let Some(db) = database(kind).await else {
        return;
    };
    let url = &db.url;
    let server = ServerProcess::start(url).await;
    let http = &server.client;

    // A password change ends the sessions; the new password logs in.
    let johndoe = http.login("johndoe", "secret").await;
    admin(url, &["passwd", "johndoe"], "n3w-secret\n");
    http.me(&johndoe).await.assert_invalid_token();
    http.post_form("username=johndoe&password=secret")
        .await
        .assert_error(400, "Incorrect username or password", Some("invalid_grant"));
    let johndoe = http.login("johndoe", "n3w-secret").await;
    assert_eq!(http.me(&johndoe).await.status, 200);

    // A new user, and a second one of the same name refused.
    admin(
        url,
        &[
            "add",
            "bob",
            "--full-name",
            "Bob Smith",
            "--email",
            "bob@example.com",
            "--scope",
            "me",
        ],
        "bobs-password\n",
    );
    admin_refused(url, &["add", "bob"], "other\n", 1, "already exists");
    let bob = http.login("bob", "bobs-password").await;
    let me = http.me(&bob).await;
    assert_eq!(me.json()["full_name"], "Bob Smith");

    // Disable and enable: the same token answers "Inactive user", then works.
    admin(url, &["disable", "bob"], "");
    http.me(&bob).await.assert_error(400, "Inactive user", None);
    admin(url, &["enable", "bob"], "");
    assert_eq!(http.me(&bob).await.status, 200);

    // New scopes end the sessions.
    admin(url, &["scopes", "bob", "me", "items"], "");
    http.me(&bob).await.assert_invalid_token();

    // A removal ends the sessions and the logins.
    admin(url, &["remove", "johndoe"], "");
    http.me(&johndoe).await.assert_invalid_token();
    http.post_form("username=johndoe&password=n3w-secret")
        .await
        .assert_error(400, "Incorrect username or password", Some("invalid_grant"));

    // Unknown users and bad usage: non-zero, one clear line.
    for verb in ["passwd", "disable", "enable", "remove"] {
        admin_refused(url, &[verb, "johndoe"], "pw\n", 1, "no such user: johndoe");
    }
    admin_refused(
        url,
        &["scopes", "nobody", "me"],
        "",
        1,
        "no such user: nobody",
    );
    admin_refused(url, &["frobnicate", "bob"], "", 2, "unknown command");
    admin_refused(url, &["add"], "", 2, "no username");
    admin_refused(url, &["add", "carol"], "\n", 1, "a password has");
    admin_refused(url, &["scopes", "bob", "me items"], "", 2, "not a scope");
    admin_refused(
        url,
        &["add", "carol", "--scope", ""],
        "pw\n",
        2,
        "not a scope",
    );
}

async fn restart_neither_fails_nor_reseeds(kind: Kind) {
    let Some(db) = database(kind).await else {
        return;
    };
    let url = &db.url;
    let first = ServerProcess::start(url).await;
    first.client.login("alice", "secret2").await;
    drop(first);
    admin(url, &["remove", "alice"], "");
    admin(url, &["passwd", "johndoe"], "changed\n");

    let second = ServerProcess::start_with_tokens(url, Some("memory")).await;
    let http = &second.client;
    http.post_form("username=alice&password=secret2")
        .await
        .assert_error(400, "Incorrect username or password", Some("invalid_grant"));
    http.post_form("username=johndoe&password=secret")
        .await
        .assert_error(400, "Incorrect username or password", Some("invalid_grant"));
    let token = http.login("johndoe", "changed").await;
    assert_eq!(http.me(&token).await.status, 200);
}

/// `legacy-secret`, hashed by bcrypt at cost 10 (as a system migrated from PHP or
/// Django would have stored it).
const BCRYPT_HASH: &str = "$2b$10$BRMaGcD04MlXo0WuC6ifeuGcOAwezGTbK1WbwsqHbrdyjse0pbxAe";

async fn bcrypt_user_is_renewed_as_argon2id(kind: Kind) {
    let Some(db) = database(kind).await else {
        return;
    };
    let server = ServerProcess::start(&db.url).await;
    let http = &server.client;
    db.execute(&format!(
        "INSERT INTO users (username, password_hash, full_name, email, stamp) \
         VALUES ('legacy', '{BCRYPT_HASH}', 'Legacy User', 'legacy@example.com', 7)"
    ))
    .await;
    http.post_form("username=legacy&password=wrong")
        .await
        .assert_error(400, "Incorrect username or password", Some("invalid_grant"));
    assert_eq!(db.stored_hash("legacy").await.as_deref(), Some(BCRYPT_HASH));

    let token = http.login("legacy", "legacy-secret").await;
    renewed_hash(&db, "legacy", BCRYPT_HASH).await;
    // The password did not change: the session goes on, the password logs in.
    assert_eq!(http.me(&token).await.status, 200);
    http.login("legacy", "legacy-secret").await;
}

/// The stored hash of `username` once the login's background renewal has replaced
/// `old` with the default Argon2id.
async fn renewed_hash(db: &TestDb, username: &str, old: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let renewed = loop {
        let hash = db.stored_hash(username).await.expect("still there");
        if hash != old || Instant::now() > deadline {
            break hash;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        renewed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{renewed}"
    );
    renewed
}

/// bcrypt checks only a password's first 72 bytes: a login that typed more is let
/// in, but its bytes are not made the new password (a typo past byte 72 would
/// become it). The renewal waits for a login whose password bcrypt read whole.
async fn bcrypt_renewal_never_makes_a_typo_past_byte_72_the_password(kind: Kind) {
    let Some(db) = database(kind).await else {
        return;
    };
    let server = ServerProcess::start(&db.url).await;
    let http = &server.client;
    let password = "p".repeat(72);
    let hash = bcrypt::hash(&password, 4).expect("bcrypt hashes");
    db.execute(&format!(
        "INSERT INTO users (username, password_hash, full_name, email, stamp) \
         VALUES ('legacy', '{hash}', 'Legacy User', 'legacy@example.com', 7)"
    ))
    .await;
    // Bytes past 72 are ignored, as the legacy system did; the hash stays bcrypt.
    http.login("legacy", &format!("{password}-typo")).await;
    // Exactly what bcrypt read: renewed, from these 72 bytes.
    http.login("legacy", &password).await;
    renewed_hash(&db, "legacy", &hash).await;
    http.login("legacy", &password).await;
    http.post_form(&format!("username=legacy&password={password}-typo"))
        .await
        .assert_error(400, "Incorrect username or password", Some("invalid_grant"));
}

async fn database_outage_answers_503_and_recovers(kind: Kind) {
    let Some(db) = database(kind).await else {
        return;
    };
    let server = ServerProcess::start(&db.url).await;
    let http = &server.client;
    let token = http.login("johndoe", "secret").await;

    db.set_down(true).await;
    let down = http.me(&token).await;
    down.assert_error(
        503,
        "Service temporarily unavailable, try again later",
        Some("temporarily_unavailable"),
    );
    http.post_form("username=johndoe&password=secret")
        .await
        .assert_error(
            503,
            "Service temporarily unavailable, try again later",
            Some("temporarily_unavailable"),
        );

    db.set_down(false).await;
    // The pool reconnects on its own; give it the time a reconnect takes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let back = loop {
        let reply = http.me(&token).await;
        if reply.status == 200 || Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(back.status, 200, "{:?}", back.body);
    http.login("johndoe", "secret").await;
}

#[tokio::test]
async fn unusable_settings_are_refused_before_listening() {
    let dir = std::env::temp_dir().join(sql_support::unique("oauth2_bad"));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let read_only = format!("sqlite://{}?mode=ro", dir.join("empty.db").display());
    std::fs::write(dir.join("empty.db"), b"").expect("empty file");
    for (database_url, token_store, says) in [
        ("not a url", None, "cannot open DATABASE_URL"),
        ("mysql://127.0.0.1:1/x", None, "cannot open DATABASE_URL"),
        (
            "postgres://postgres@127.0.0.1:1/test",
            None,
            "cannot open DATABASE_URL",
        ),
        (
            "sqlite:///no/such/directory/users.db",
            None,
            "cannot open DATABASE_URL",
        ),
        (read_only.as_str(), None, "cannot create the users table"),
        (
            "sqlite://unused.db",
            Some("postgres"),
            "TOKEN_STORE must be memory, redis or jwt",
        ),
    ] {
        let mut server = Command::new(example("server"));
        server
            .env("DATABASE_URL", database_url)
            .env("ADDR", "127.0.0.1:0");
        match token_store {
            Some(store) => server.env("TOKEN_STORE", store),
            None => server.env_remove("TOKEN_STORE"),
        };
        let out = server.stdin(Stdio::null()).output().expect("server runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{database_url}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{database_url}: one line: {stderr}"
        );
        assert!(stderr.contains(says), "{database_url}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("listening"),
            "{database_url}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// On a terminal (`script` gives it one), `useradd` asks for the password and does
/// not echo it.
#[tokio::test]
async fn useradd_prompts_on_a_terminal_without_echo() {
    use std::io::Read;
    use tower_oauth2_password::password::HashedPassword;
    use tower_oauth2_password::{Argon2Hasher, PasswordHasher};

    let db = TestDb::sqlite().await;
    let useradd = example("useradd");
    let mut terminal = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(format!("{} add ttyuser", useradd.display()))
        .arg("/dev/null")
        .env("DATABASE_URL", &db.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    let mut output = terminal.stdout.take().expect("piped stdout");
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("password for ttyuser: ") {
        let read = output.read(&mut byte).expect("terminal output");
        assert_eq!(read, 1, "no prompt: {}", String::from_utf8_lossy(&seen));
        seen.push(byte[0]);
    }
    // Typed once the prompt has turned echo off (it does so right after printing).
    std::thread::sleep(Duration::from_millis(300));
    let mut input = terminal.stdin.take().expect("piped stdin");
    input.write_all(b"typed-at-a-terminal\n").expect("typed");
    output.read_to_end(&mut seen).expect("terminal output");
    assert!(terminal.wait().expect("script ends").success());
    let shown = String::from_utf8_lossy(&seen);
    assert!(shown.contains("added ttyuser"), "{shown}");
    assert!(
        !shown.contains("typed-at-a-terminal"),
        "the password was echoed: {shown}"
    );

    let stored = db.stored_hash("ttyuser").await.expect("added");
    let stored = HashedPassword::parse(&stored).expect("a PHC string");
    let verified = Argon2Hasher::new().verify("typed-at-a-terminal", &stored);
    assert!(verified.expect("verifies").is_match());
}
