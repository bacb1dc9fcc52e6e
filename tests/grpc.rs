//! A tonic client over a real socket against examples/grpc.rs: the token from
//! `POST /token` (HTTP/1.1) and gRPC (h2c) on one port.

// `common` includes the tutorial example and this test includes another example;
// both bring the examples' shared `seed` module along.
#![allow(clippy::duplicate_mod)]

mod common;

use std::net::SocketAddr;

use common::Server;
use http::uri::PathAndQuery;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tower_oauth2_password::OAuth2PasswordLayer;

#[path = "../examples/grpc.rs"]
#[allow(dead_code)]
mod grpc_example;

use grpc_example::{WhoAmIRequest, WhoAmIResponse, WHO_AM_I};

async fn start() -> (SocketAddr, Channel) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layer = OAuth2PasswordLayer::new(grpc_example::users());
    tokio::spawn(grpc_example::serve(listener, layer, std::future::pending()));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("h2c connection");
    (addr, channel)
}

fn with_authorization<T>(message: T, authorization: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    request
}

async fn who_am_i(
    channel: &Channel,
    authorization: Option<&str>,
) -> Result<WhoAmIResponse, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    grpc.unary(
        with_authorization(WhoAmIRequest {}, authorization),
        PathAndQuery::from_static(WHO_AM_I),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .map(tonic::Response::into_inner)
}

async fn health(channel: &Channel, authorization: Option<&str>) -> Result<ServingStatus, Status> {
    let request = with_authorization(
        HealthCheckRequest {
            service: String::new(),
        },
        authorization,
    );
    let response = HealthClient::new(channel.clone()).check(request).await?;
    Ok(response.into_inner().status())
}

#[track_caller]
fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    let status = result.expect_err("a gRPC error status");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
}

#[tokio::test]
async fn no_token_is_unauthenticated() {
    let (_, channel) = start().await;
    assert_status(
        who_am_i(&channel, None).await,
        Code::Unauthenticated,
        "Not authenticated",
    );
    assert_status(
        health(&channel, None).await,
        Code::Unauthenticated,
        "Not authenticated",
    );
    assert_status(
        who_am_i(&channel, Some("Basic am9objpzZWNyZXQ=")).await,
        Code::Unauthenticated,
        "Not authenticated",
    );
}

#[tokio::test]
async fn bad_token_is_unauthenticated() {
    let (_, channel) = start().await;
    for token in ["Bearer nope", &format!("Bearer {}", "A".repeat(44))] {
        assert_status(
            who_am_i(&channel, Some(token)).await,
            Code::Unauthenticated,
            "Invalid authentication credentials",
        );
    }
}

#[tokio::test]
async fn good_token_reaches_the_handler_with_the_user() {
    let (addr, channel) = start().await;
    let token = Server::client_for(addr).login("johndoe", "secret").await;
    let bearer = format!("Bearer {token}");
    let me = who_am_i(&channel, Some(&bearer)).await.expect("OK");
    assert_eq!(me.username, "johndoe");
    assert_eq!(me.full_name, "John Doe");
    assert_eq!(
        health(&channel, Some(&bearer)).await.expect("OK"),
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn inactive_user_is_permission_denied() {
    let (addr, channel) = start().await;
    let token = Server::client_for(addr).login("alice", "secret2").await;
    assert_status(
        who_am_i(&channel, Some(&format!("Bearer {token}"))).await,
        Code::PermissionDenied,
        "Inactive user",
    );
}
