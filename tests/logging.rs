//! Logs never carry a password, a token or a hash, at any level.

mod common;

use common::{tutorial, Captured, Server};
use tower_oauth2_password::{
    Argon2Hasher, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, StoredUser,
};

#[tokio::test]
async fn no_secret_in_logs_at_trace_level() {
    let captured = Captured::install();

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
    // Same id, another secret.
    let last = if token.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &token[..43]);
    assert_eq!(server.me(&forged).await.status, 401);
    server.stop().await;

    let logs = captured.text();
    // The capture works: one line per request, with the user when known.
    assert!(logs.contains("status=200"), "{logs}");
    assert!(logs.contains("user=\"carol\""), "{logs}");
    for secret in [PASSWORD, WRONG, &token, &forged, hash.as_str(), "$argon2"] {
        assert!(!logs.contains(secret), "logs leak {secret:?}:\n{logs}");
    }
}
