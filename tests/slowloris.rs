//! Slow and big bodies at the token endpoint, over a raw socket: a client trickling
//! its form is cut off at the body deadline with a 408 while others are served,
//! and a body over the limit is a 413 whatever its framing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{tutorial, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends the head of a token request, then one byte of its form every 50 ms until
/// the server stops reading; returns everything the server answered.
async fn trickle(server: &Server, head: &str) -> String {
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    write.write_all(head.as_bytes()).await.unwrap();
    let writer = tokio::spawn(async move {
        for byte in b"username=johndoe&password=secret".iter().cycle() {
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut answer = Vec::new();
    // Ends when the server closes the connection.
    let _ = read.read_to_end(&mut answer).await;
    writer.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_trickled_form_is_cut_off_at_the_body_deadline_and_others_are_served() {
    let layer = tutorial::layer_builder()
        .body_timeout(Duration::from_secs(1))
        .build();
    let server = Arc::new(Server::start_with(layer).await);
    let head = "POST /token HTTP/1.1\r\nhost: x\r\n\
                content-type: application/x-www-form-urlencoded\r\n\
                content-length: 1000\r\n\r\n";
    let chunked = "POST /token HTTP/1.1\r\nhost: x\r\n\
                   content-type: application/x-www-form-urlencoded\r\n\
                   transfer-encoding: chunked\r\n\r\n1000\r\n";
    let slow: Vec<_> = [head, chunked]
        .into_iter()
        .flat_map(|head| std::iter::repeat_n(head, 4))
        .map(|head| {
            let server = Arc::clone(&server);
            tokio::spawn(async move { trickle(&server, head).await })
        })
        .collect();

    // Meanwhile, everyone else logs in and is served.
    while !slow.iter().all(|client| client.is_finished()) {
        let token = server.login("johndoe", "secret").await;
        assert_eq!(server.me(&token).await.status, 200);
    }
    for client in slow {
        let answer = client.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        assert!(answer.contains("connection: close"), "{answer}");
        assert!(
            answer.contains(
                r#"{"detail":"Request body did not arrive in time","error":"invalid_request"}"#
            ),
            "{answer}"
        );
    }
    let token = server.login("johndoe", "secret").await;
    assert_eq!(server.me(&token).await.status, 200);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_declared_or_chunked_and_the_server_goes_on() {
    let server = Server::start().await;
    let declared = "POST /token HTTP/1.1\r\nhost: x\r\n\
                    content-type: application/x-www-form-urlencoded\r\n\
                    content-length: 1000000000\r\n\r\nusername=";
    let answer = server
        .raw(declared.as_bytes(), Duration::from_secs(30))
        .await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");

    // Chunked: the size is known only as the chunks arrive.
    let mut chunked = String::from(
        "POST /token HTTP/1.1\r\nhost: x\r\n\
         content-type: application/x-www-form-urlencoded\r\n\
         transfer-encoding: chunked\r\n\r\n",
    );
    for _ in 0..20 {
        chunked.push_str(&format!("400\r\n{}\r\n", "a".repeat(0x400)));
    }
    chunked.push_str("0\r\n\r\n");
    let answer = server
        .raw(chunked.as_bytes(), Duration::from_secs(30))
        .await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");

    let token = server.login("johndoe", "secret").await;
    assert_eq!(server.me(&token).await.status, 200);
    server.stop().await;
}
