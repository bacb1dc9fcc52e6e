//! [`ResponseFuture`]: the future of [`OAuth2Password`](crate::service::OAuth2Password).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Response, StatusCode};
use pin_project_lite::pin_project;

use crate::http::body::ResponseBody;
use crate::http::rejection::restate_scope_refusal;

type BoxedResponse<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// Response future of [`OAuth2Password`](crate::service::OAuth2Password) and
    /// [`RequireScopes`](crate::guard::RequireScopes).
    ///
    /// Requests the guard could decide at once (in-memory stores) run the inner
    /// service's future as is, or return the rejection; the token endpoint, and
    /// guarded requests whose stores must be awaited, run one boxed future.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] future: F },
        // A variant of its own, not a field of `Inner`: a field beside `F` moved it
        // to an odd offset, and every copy of the future then stalled on
        // store-to-load forwarding (seen with perf on the guard bench).
        Restated {
            #[pin]
            future: F,
            scope_status: ScopeStatus,
        },
        Rejected { response: Option<Response<ResponseBody<B>>> },
        Boxed { future: BoxedResponse<B, E> },
    }
}

/// The layer's status for a scope the inner service refused, aligned as a word.
/// As a bare `StatusCode` it was the first field of its variant (rustc puts the
/// least aligned first), so the enum's tag shrank to 2 bytes and every move of
/// an `Inner` future copied it from byte 2: 16-byte loads straddling the 8-byte
/// stores that had just written it, a store-to-load forwarding stall each (perf
/// on the guard bench, AMD EPYC: a fifth of `call`'s samples).
#[derive(Clone, Copy)]
#[repr(align(8))]
struct ScopeStatus(StatusCode);

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner { future },
        }
    }

    /// The inner service's future for a request the guard let through, behind a
    /// layer whose status for a missing scope is `scope_status`, not 403: a scope
    /// refusal in its response gets that status.
    pub(crate) fn restated(future: F, scope_status: StatusCode) -> Self {
        Self {
            kind: Kind::Restated {
                future,
                scope_status: ScopeStatus(scope_status),
            },
        }
    }

    pub(crate) fn rejected(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn boxed<Fut>(future: Fut) -> Self
    where
        Fut: Future<Output = Result<Response<ResponseBody<B>>, E>> + Send + 'static,
    {
        Self {
            kind: Kind::Boxed {
                future: Box::pin(future),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => {
                let response = ready!(future.poll(cx))?;
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            KindProj::Restated {
                future,
                scope_status,
            } => {
                let mut response = ready!(future.poll(cx))?;
                restate_scope_refusal(&mut response, scope_status.0);
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            KindProj::Rejected { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after completion"))),
            KindProj::Boxed { future } => future.as_mut().poll(cx),
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
