//! Runs rules one after another and collects the ones that panicked, so that a
//! suite's `run` names every broken rule, not only the first.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A rule a store broke: its name (the suite's method and the macro's test) and
/// the message it failed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenRule {
    /// The rule's name, e.g. `"revoked_tokens_are_unknown"`.
    pub rule: &'static str,
    /// Why it failed.
    pub message: String,
}

impl fmt::Display for BrokenRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.rule, self.message)
    }
}

/// The broken rules of one run, in the order they ran.
#[derive(Debug, Default)]
pub(crate) struct Report(Vec<BrokenRule>);

impl Report {
    /// Runs `rule`; a panic in it is written down under `name`.
    pub(crate) async fn rule(&mut self, name: &'static str, rule: impl Future<Output = ()>) {
        if let Err(payload) = (CatchUnwind(Box::pin(rule))).await {
            self.broke(name, payload);
        }
    }

    /// Runs the synchronous `rule`; a panic in it is written down under `name`.
    pub(crate) fn rule_sync(&mut self, name: &'static str, rule: impl FnOnce()) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(rule)) {
            self.broke(name, payload);
        }
    }

    fn broke(&mut self, rule: &'static str, payload: Box<dyn Any + Send>) {
        let message = message(payload.as_ref());
        self.0.push(BrokenRule { rule, message });
    }

    /// Adds `broken`, after these.
    pub(crate) fn extend_from(&mut self, broken: Vec<BrokenRule>) {
        self.0.extend(broken);
    }

    /// The broken rules.
    pub(crate) fn into_broken(self) -> Vec<BrokenRule> {
        self.0
    }
}

/// Panics listing `broken`, if any: how `run` fails a test.
pub(crate) fn fail_on(suite: &str, broken: &[BrokenRule]) {
    if broken.is_empty() {
        return;
    }
    let list: Vec<String> = broken.iter().map(ToString::to_string).collect();
    panic!(
        "{suite}: {} rule(s) broken:\n- {}",
        broken.len(),
        list.join("\n- ")
    );
}

fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panicked".to_owned()
    }
}

/// A future that turns a panic while polling its inner future into an `Err`.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        // A rule that panicked is never polled again: no broken state is seen.
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
