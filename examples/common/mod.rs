//! What the examples share: the tutorial's "fake database" — `johndoe` / `secret`
//! (active) and `alice` / `secret2` (disabled), with real Argon2id hashes — and
//! the `ADDR` handling.

use std::net::SocketAddr;

use serde::Serialize;
use tokio::net::TcpListener;
use tower_oauth2_password::{HashedPassword, MemoryUserStore, StoredUser};

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
    match TcpListener::bind(addr).await {
        Ok(listener) => (listener, addr),
        Err(error) => {
            eprintln!("cannot listen on {addr}: {error}");
            std::process::exit(1);
        }
    }
}
