//! Logs never carry a password, a token or a hash, at any level.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{tutorial, Server};
use tower_oauth2_password::{
    Argon2Hasher, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, StoredUser,
};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_secret_in_logs_at_trace_level() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    const PASSWORD: &str = "pw-Zq9-unique";
    const WRONG: &str = "wrong-Xy7-unique";
    let hash = Argon2Hasher::new().hash(PASSWORD).unwrap();
    let user = tutorial::User {
        username: "carol".into(),
        email: "carol@example.com".into(),
        full_name: "Carol".into(),
        disabled: false,
    };
    let users = MemoryUserStore::new().with_user("carol", StoredUser::new(user, hash.clone()));
    let server = Server::start_with(OAuth2PasswordLayer::new(users)).await;

    let token = server.login("carol", PASSWORD).await;
    assert_eq!(server.me(&token).await.status, 200);
    assert_eq!(
        server
            .post_form(&format!("username=carol&password={WRONG}"))
            .await
            .status,
        400
    );
    assert_eq!(
        server
            .post_form(&format!("username=carol&password={WRONG}&password=x"))
            .await
            .status,
        400
    );
    // Same id, another secret (the last character carries 4 bits: A=0000, Q=0100).
    let last = if token.ends_with('A') { 'Q' } else { 'A' };
    let forged = format!("{}{last}", &token[..42]);
    assert_eq!(server.me(&forged).await.status, 401);
    server.stop().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works: one line per request, with the user when known.
    assert!(logs.contains("status=200"), "{logs}");
    assert!(logs.contains("user=\"carol\""), "{logs}");
    for secret in [PASSWORD, WRONG, &token, &forged, hash.as_str(), "$argon2"] {
        assert!(!logs.contains(secret), "logs leak {secret:?}:\n{logs}");
    }
}
