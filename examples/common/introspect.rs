//! `INTROSPECT_CLIENTS=id:secret,id2:secret2`: token introspection (RFC 7662) at
//! `/introspect` for those resource servers, each secret at least 32 bytes
//! (`openssl rand -base64 32`) and hashed at start; unset, the endpoint is off.

use tower_oauth2_password::endpoint::{ClientSecretHash, IntrospectionClients};

/// The clients `INTROSPECT_CLIENTS` names (`None` when unset or empty), or exits
/// with status 2 and one line saying what is wrong (never showing a secret).
pub fn from_env_or_exit() -> Option<IntrospectionClients> {
    let value = std::env::var("INTROSPECT_CLIENTS").ok()?;
    match parse(&value) {
        Ok(clients) => (!clients.is_empty()).then_some(clients),
        Err(message) => {
            eprintln!("INTROSPECT_CLIENTS: {message}");
            std::process::exit(2);
        }
    }
}

/// `id:secret` pairs separated by commas.
pub fn parse(value: &str) -> Result<IntrospectionClients, String> {
    let mut clients = IntrospectionClients::new();
    for pair in value
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let (id, secret) = pair
            .split_once(':')
            .filter(|(id, _)| !id.is_empty())
            .ok_or("expected id:secret pairs separated by commas")?;
        let hash = ClientSecretHash::of(secret).map_err(|error| format!("client {id}: {error}"))?;
        clients = clients.client(id, hash);
    }
    Ok(clients)
}
