//! Waiting for something that happens in another thread, task or process: poll it, with a
//! deadline, instead of sleeping for a time that is too short on a busy machine and too long
//! everywhere else.
//!
//! A probe is tried at once, then again after a pause that starts at a millisecond and doubles
//! up to [`PAUSE_MAX`]: what is quick is seen at once, and a slow probe (a process round trip)
//! is not run hundreds of times a second. The deadline counts from the call; once a try has
//! failed after it, the test fails with "timed out waiting for {what}", followed by what that
//! last try saw when the probe tells (a `Result` probe's error).

use std::fmt::Display;
use std::time::Duration;

/// The first pause between two tries.
const PAUSE_FIRST: Duration = Duration::from_millis(1);

/// The longest pause between two tries.
const PAUSE_MAX: Duration = Duration::from_millis(50);

/// What a probe answers: whether the awaited thing has happened, with what value, and if not,
/// what the try saw.
pub trait Outcome {
    /// What the wait returns once the probe succeeds.
    type Value;

    /// The value; or not yet, with what the try saw, for the failure message.
    fn ready(self) -> Result<Self::Value, Option<String>>;
}

/// `true` once it has happened.
impl Outcome for bool {
    type Value = ();

    fn ready(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

/// `Some(value)` once it has happened; the wait returns the value.
impl<T> Outcome for Option<T> {
    type Value = T;

    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Ok(value)` once it has happened; `Err(seen)` is what this try saw, and the failure message
/// shows the last one.
impl<T, E: Display> Outcome for Result<T, E> {
    type Value = T;

    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Polls `probe` on this thread until it succeeds, and returns its value; fails the test
/// once `deadline` has passed.
pub fn wait_until<O: Outcome>(
    what: &str,
    deadline: Duration,
    mut probe: impl FnMut() -> O,
) -> O::Value {
    let start = std::time::Instant::now();
    let mut pauses = Pauses::new(what, deadline);
    loop {
        match probe().ready() {
            Ok(value) => return value,
            Err(seen) => std::thread::sleep(pauses.next(start.elapsed(), seen)),
        }
    }
}

/// As [`wait_until`], in a task: the probe is async, and the clock and pauses are tokio's (so
/// a paused test clock moves them on).
pub async fn eventually<O: Outcome>(
    what: &str,
    deadline: Duration,
    mut probe: impl AsyncFnMut() -> O,
) -> O::Value {
    let start = tokio::time::Instant::now();
    let mut pauses = Pauses::new(what, deadline);
    loop {
        match probe().await.ready() {
            Ok(value) => return value,
            Err(seen) => tokio::time::sleep(pauses.next(start.elapsed(), seen)).await,
        }
    }
}

/// The schedule both waits keep, whichever clock they read.
struct Pauses<'a> {
    what: &'a str,
    deadline: Duration,
    pause: Duration,
}

impl Pauses<'_> {
    fn new(what: &str, deadline: Duration) -> Pauses<'_> {
        Pauses {
            what,
            deadline,
            pause: PAUSE_FIRST,
        }
    }

    /// After a failed try, `elapsed` into the wait: the pause before the next try, or, once
    /// the deadline has passed, the test's failure with what the try saw.
    fn next(&mut self, elapsed: Duration, seen: Option<String>) -> Duration {
        if elapsed >= self.deadline {
            match seen {
                Some(seen) => panic!("timed out waiting for {}: {seen}", self.what),
                None => panic!("timed out waiting for {}", self.what),
            }
        }
        let pause = self.pause;
        self.pause = (pause * 2).min(PAUSE_MAX);
        pause
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn a_probe_is_polled_until_it_holds() {
        let tries = Cell::new(0);
        wait_until("the third try", Duration::from_secs(10), || {
            tries.set(tries.get() + 1);
            tries.get() == 3
        });
        assert_eq!(tries.get(), 3);
    }

    #[test]
    fn the_value_is_returned() {
        let mut tries = 0;
        let value = wait_until("a value", Duration::from_secs(10), || {
            tries += 1;
            (tries == 2).then_some("found")
        });
        assert_eq!(value, "found");
    }

    #[test]
    #[should_panic(expected = "timed out waiting for nothing: still 7")]
    fn the_deadline_fails_the_test_with_what_was_seen_last() {
        wait_until("nothing", Duration::from_millis(20), || {
            Err::<(), _>("still 7")
        });
    }

    #[tokio::test]
    async fn a_task_waits_the_same_way() {
        let mut tries = 0;
        let value = eventually("the second try", Duration::from_secs(10), async || {
            tokio::task::yield_now().await;
            tries += 1;
            if tries == 2 { Ok(tries) } else { Err(tries) }
        })
        .await;
        assert_eq!(value, 2);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out waiting for a task")]
    async fn a_task_fails_at_the_deadline() {
        eventually("a task", Duration::from_millis(20), async || false).await;
    }
}
