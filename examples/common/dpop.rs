//! `DPOP=allowed|required` for the tutorial and examples/server.rs: DPoP (RFC
//! 9449) settings from the environment, with the replay store in Redis whenever
//! the token stores use Redis.

use super::stores::Stores;

/// What `DPOP` asks for: `allowed`, `required`, or unset (off). Anything else,
/// or DPoP without the `dpop` feature, prints one line and exits with status 2.
#[cfg(feature = "dpop")]
pub fn from_env_or_exit(stores: &Stores) -> Option<tower_oauth2_password::dpop::DpopSettings> {
    use tower_oauth2_password::dpop::DpopSettings;

    let mut settings = match std::env::var("DPOP").as_deref() {
        Err(_) | Ok("") => return None,
        Ok("allowed") => DpopSettings::allowed(),
        Ok("required") => DpopSettings::required(),
        Ok(_) => exit_with("DPOP must be allowed or required (or unset)"),
    };
    if let Ok(url) = std::env::var("DPOP_PUBLIC_URL") {
        if !super::usable_url(&url) {
            exit_with("DPOP_PUBLIC_URL must be an http(s):// URL without query or fragment");
        }
        settings = settings.public_url(&url);
    }
    #[cfg(feature = "redis")]
    if let Some(connection) = stores.redis_connection() {
        settings = settings.replay_store(tower_oauth2_password::dpop::RedisReplayStore::on(
            connection,
        ));
    }
    #[cfg(not(feature = "redis"))]
    let _ = stores;
    Some(settings)
}

/// `DPOP` without the `dpop` feature: unset is fine, anything else exits.
#[cfg(not(feature = "dpop"))]
pub fn from_env_or_exit(_stores: &Stores) {
    match std::env::var("DPOP").as_deref() {
        Err(_) | Ok("") => {}
        Ok("allowed" | "required") => {
            exit_with("DPOP needs the dpop feature: cargo run --features dpop --example …")
        }
        Ok(_) => exit_with("DPOP must be allowed or required (or unset)"),
    }
}

/// Prints `message` and exits with status 2, before the example listens.
fn exit_with(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(2);
}
