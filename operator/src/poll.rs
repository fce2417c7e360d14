//! One way to wait for the cluster: try, and pause between tries until a deadline. Every
//! hand-written wait (CRDs established, health, objects gone, a CLI waiting for Ready) uses
//! it, so each stops at its deadline and says that it timed out.

use std::time::Duration;

// Tokio's clock: the same as std's at run time, and one a test can pause.
use tokio::time::Instant;

/// A wait that ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {0:?}")]
pub struct TimedOut(pub Duration);

/// The deadline of one wait and the pause between its tries.
#[derive(Debug, Clone)]
pub struct Deadline {
    started: Instant,
    timeout: Duration,
    first_pause: Duration,
    pause: Duration,
    max_pause: Duration,
}

impl Deadline {
    /// Tries for `timeout`, `pause` apart.
    pub fn after(timeout: Duration, pause: Duration) -> Self {
        Self {
            started: Instant::now(),
            timeout,
            first_pause: pause,
            pause,
            max_pause: pause,
        }
    }

    /// The pause doubles after each try, up to `max`.
    pub fn growing_to(mut self, max: Duration) -> Self {
        self.max_pause = max.max(self.first_pause);
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn passed(&self) -> bool {
        self.elapsed() >= self.timeout
    }

    /// Pauses before the next try, never past the deadline; [`TimedOut`] once it has passed.
    pub async fn pause(&mut self) -> Result<(), TimedOut> {
        let left = self.timeout.saturating_sub(self.elapsed());
        if left.is_zero() {
            return Err(TimedOut(self.timeout));
        }
        tokio::time::sleep(self.pause.min(left)).await;
        self.pause = (self.pause * 2).min(self.max_pause);
        Ok(())
    }

    /// Something changed: the next pause is the first one again.
    pub fn restart_pause(&mut self) {
        self.pause = self.first_pause;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pauses_grow_to_their_cap_and_stop_at_the_deadline() {
        let mut wait = Deadline::after(Duration::from_secs(3), Duration::from_millis(250))
            .growing_to(Duration::from_secs(1));
        let mut pauses = Vec::new();
        let mut last = tokio::time::Instant::now();
        while wait.pause().await.is_ok() {
            let now = tokio::time::Instant::now();
            pauses.push((now - last).as_millis());
            last = now;
        }
        // 250 + 500 + 1000 + 1000 = 2750, then the 250 left; then it is over.
        assert_eq!(pauses, [250, 500, 1000, 1000, 250]);
        assert_eq!(wait.pause().await, Err(TimedOut(Duration::from_secs(3))));
        assert_eq!(
            TimedOut(Duration::from_secs(3)).to_string(),
            "timed out after 3s"
        );
    }
}
