//! Hardening over a real socket: inputs an attacker picks (huge tokens, odd path
//! spellings, protocol confusion) get the documented answer, and the server keeps
//! serving.

mod common;

use common::Server;

#[tokio::test]
async fn a_64_kib_bearer_token_is_an_invalid_token_and_the_server_keeps_serving() {
    let server = Server::start().await;
    let huge = "a".repeat(64 * 1024);
    let reply = server.get_as("/users/me", &huge).await;
    reply.assert_error(
        401,
        "Invalid authentication credentials",
        Some("invalid_token"),
    );
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    let token = server.login("johndoe", "secret").await;
    assert_eq!(server.me(&token).await.status, 200);
    server.stop().await;
}
