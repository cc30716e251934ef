//! The pause between the tries of a loop that retries until something comes back (the
//! AMI registration link, the LISTEN connection, recording an apply): doubling from a
//! first pause up to a cap, and back to the first once a try has worked.

use std::time::Duration;

/// Exponential backoff, capped. A leaf: no I/O, the caller sleeps.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Pauses of `initial`, twice that, … up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The pause to wait now; the next one is twice as long, at most `max`.
    pub fn pause(&mut self) -> Duration {
        let now = self.next;
        self.next = now.saturating_mul(2).min(self.max);
        now
    }

    /// A try worked: the next pause is the first again.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(200), ms(2000));
        let seen: Vec<_> = (0..6).map(|_| b.pause()).collect();
        assert_eq!(
            seen,
            [ms(200), ms(400), ms(800), ms(1600), ms(2000), ms(2000)]
        );
        b.reset();
        assert_eq!(b.pause(), ms(200));
        let mut huge = Backoff::new(Duration::MAX / 2 + ms(1), Duration::MAX);
        huge.pause();
        assert_eq!(huge.pause(), Duration::MAX, "saturates, never panics");
    }
}
