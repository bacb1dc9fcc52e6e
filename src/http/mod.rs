//! What the layer's responses are made of: the [`ResponseBody`] it wraps the inner
//! service's body in, its [`ResponseFuture`], and the rejections it writes itself
//! (JSON for HTTP, trailers-only for gRPC).

pub(crate) mod base_url;
pub(crate) mod body;
pub(crate) mod future;
pub(crate) mod rejection;

pub use self::body::ResponseBody;
pub use self::future::ResponseFuture;
