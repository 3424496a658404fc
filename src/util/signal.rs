//! A wake-up for a single waiting task, with a stored permit.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// What `tokio::sync::Notify::notify_one` gives a single waiter, made for
/// the connection loop, which waits on such signals (kill, pushed
/// messages) beside every socket read: a wait whose `select!` branch loses
/// leaves nothing to unregister, a poll costs one uncontended lock, and a
/// notify while a permit is already pending costs one atomic swap. Only
/// one task may wait at a time (the connection that owns the signal); a
/// notify before the wait is remembered, several count as one.
#[derive(Default)]
pub struct Signal {
    permit: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Signal {
    pub const fn new() -> Self {
        Signal {
            permit: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    /// Wakes the waiting task, or the next wait if none waits now.
    pub fn notify(&self) {
        // A pending permit means an earlier notify already woke the waiter
        // or will be seen by its next poll.
        if self.permit.swap(true, Ordering::AcqRel) {
            return;
        }
        let waker = self.waker.lock().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Resolves once a notify happened since the last completed wait.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| self.poll_wait(cx))
    }

    fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.take_permit() {
            return Poll::Ready(());
        }
        {
            let mut slot = self.waker.lock();
            match &*slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        // A notify that ran before the waker was stored set the permit
        // first (and found no waker, or a stale one): seen here.
        if self.take_permit() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn take_permit(&self) -> bool {
        self.permit.load(Ordering::Relaxed) && self.permit.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::Signal;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_notify_before_the_wait_is_kept_and_counts_once() {
        let s = Signal::new();
        s.notify();
        s.notify();
        tokio::time::timeout(Duration::from_secs(1), s.wait())
            .await
            .expect("the stored permit completes the wait");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), s.wait())
                .await
                .is_err(),
            "two notifies leave one permit"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_task_is_woken_from_another_thread() {
        for _ in 0..200 {
            let s = Arc::new(Signal::new());
            let s2 = s.clone();
            let waiter = tokio::spawn(async move { s2.wait().await });
            tokio::task::yield_now().await;
            std::thread::spawn(move || s.notify());
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("woken")
                .expect("joined");
        }
    }
}
