//! What every store answers with: a [`Lookup`] (ready at once or still to be
//! awaited) on the request path, a [`StoreError`] when it cannot answer.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type Pending<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send>>;

/// The answer of a store lookup the layer makes on every request: either ready now
/// (a store in memory), or a future to await (Redis, SQL).
///
/// A store has one lookup method returning this, not a fast and a slow pair that
/// must agree: the guard decides in `call`, with no future allocated, when the
/// answer is [`ready`](Self::ready), and boxes the future once when it is
/// [`pending`](Self::pending). A wrapper store (metrics, a cache, a deny-list)
/// forwards the one method and keeps both paths, e.g. with [`map`](Self::map).
///
/// It is itself a future, so stores can be called from async code as they are:
///
/// ```
/// use tower_oauth2_password::store::{Lookup, StoreError};
///
/// # futures_util::FutureExt::now_or_never(async {
/// let now: Lookup<u32> = Lookup::ready(Ok(7));
/// let later: Lookup<u32> = Lookup::pending(async { Ok(7) });
/// assert_eq!(now.await?, later.await?);
/// # Ok::<(), StoreError>(())
/// # }).unwrap().unwrap();
/// ```
#[must_use = "a lookup does nothing unless its answer is used"]
pub struct Lookup<T>(State<T>);

enum State<T> {
    /// `None` once the answer was taken.
    Ready(Option<Result<T, StoreError>>),
    Pending(Pending<T>),
}

impl<T> Lookup<T> {
    /// An answer known now.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        Self(State::Ready(Some(result)))
    }

    /// An answer that needs waiting for. The future owns what it needs (a clone of
    /// a connection pool handle, the key it looks up), so that the layer can await
    /// it after the request has moved on.
    pub fn pending<F>(future: F) -> Self
    where
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        Self(State::Pending(Box::pin(future)))
    }

    /// The answer if it is known now, else the lookup back.
    pub fn into_ready(self) -> Result<Result<T, StoreError>, Self> {
        match self.0 {
            State::Ready(Some(result)) => Ok(result),
            state => Err(Self(state)),
        }
    }

    /// Transforms the answer, now if it is ready, else when it arrives.
    ///
    /// ```
    /// use tower_oauth2_password::store::Lookup;
    ///
    /// let doubled = Lookup::ready(Ok(21)).map(|answer| answer.map(|n: u32| n * 2));
    /// assert_eq!(doubled.into_ready().ok().and_then(Result::ok), Some(42));
    /// ```
    pub fn map<U, F>(self, f: F) -> Lookup<U>
    where
        T: 'static,
        F: FnOnce(Result<T, StoreError>) -> Result<U, StoreError> + Send + 'static,
    {
        match self.0 {
            State::Ready(Some(result)) => Lookup::ready(f(result)),
            State::Ready(None) => Lookup(State::Ready(None)),
            State::Pending(future) => Lookup::pending(async move { f(future.await) }),
        }
    }
}

/// The answer is never pinned (only moved out), and the pending future is boxed.
impl<T> Unpin for Lookup<T> {}

impl<T> Future for Lookup<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            State::Ready(answer) => {
                Poll::Ready(answer.take().expect("Lookup polled after completion"))
            }
            State::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for Lookup<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.0 {
            State::Ready(Some(_)) => "ready",
            State::Ready(None) => "taken",
            State::Pending(_) => "pending",
        };
        f.debug_tuple("Lookup").field(&state).finish()
    }
}

/// Error a user or token store returns when it cannot answer (connection lost,
/// timeout, corrupt data). The layer answers 503 and never lets the request through.
///
/// "Not found" is not an error: stores return `Ok(None)` for it.
#[derive(Debug)]
pub struct StoreError {
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// Wraps the store's own error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store unavailable: {}", self.source)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
