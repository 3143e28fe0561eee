//! Replay protection for authenticated links: a sliding window of 64 sequence numbers per
//! link and sender session, as in IPsec and WireGuard.

use crate::time::Instant;
use core::time::Duration;

/// Sequence numbers within this distance of the highest seen are tracked one by one.
const WINDOW_SEQS: u64 = 64;

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ReplayWindow {
    session: u64,
    highest: u64,
    /// Bit `i`: sequence number `highest - i` was seen.
    seen: u64,
    heard_at: Option<Instant>,
}

impl ReplayWindow {
    /// True when `(session, seq)` is new; records it. A higher session is the peer's next
    /// start. A lower one is a replay — unless the current session has been silent for
    /// `silence` (the peer restarted with a clock that went back), so that a wrong clock
    /// cannot lock a restarted peer out for good.
    pub fn accept(&mut self, session: u64, seq: u64, now: Instant, silence: Duration) -> bool {
        let silent = self.heard_at.is_none_or(|t| now.saturating_since(t) >= silence);
        if self.heard_at.is_none() || session > self.session || (session < self.session && silent) {
            self.session = session;
            self.highest = seq;
            self.seen = 1;
            self.heard_at = Some(now);
            return true;
        }
        if session < self.session {
            return false;
        }
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= WINDOW_SEQS { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = seq;
        } else {
            let offset = self.highest - seq;
            if offset >= WINDOW_SEQS || self.seen & (1 << offset) != 0 {
                return false;
            }
            self.seen |= 1 << offset;
        }
        self.heard_at = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SILENCE: Duration = Duration::from_millis(500);

    #[test]
    fn replay_window_duplicate_rejected() {
        let mut w = ReplayWindow::default();
        let t = Instant::from_millis(1);
        assert!(w.accept(7, 1, t, SILENCE));
        assert!(w.accept(7, 2, t, SILENCE));
        assert!(!w.accept(7, 2, t, SILENCE));
        assert!(!w.accept(7, 1, t, SILENCE));
    }

    #[test]
    fn replay_window_reordered_within_window_accepted_once() {
        let mut w = ReplayWindow::default();
        let t = Instant::from_millis(1);
        assert!(w.accept(7, 10, t, SILENCE));
        assert!(w.accept(7, 5, t, SILENCE));
        assert!(!w.accept(7, 5, t, SILENCE));
        assert!(w.accept(7, 100, t, SILENCE));
        // Older than the window: cannot tell, so rejected.
        assert!(!w.accept(7, 30, t, SILENCE));
    }

    #[test]
    fn replay_window_older_session_rejected_unless_silent() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(9, 1, Instant::from_millis(1), SILENCE));
        assert!(!w.accept(8, 50, Instant::from_millis(2), SILENCE));
        assert!(w.accept(10, 1, Instant::from_millis(3), SILENCE));
        // After the current session went silent, a lower session is a restarted peer.
        assert!(w.accept(4, 1, Instant::from_millis(600), SILENCE));
    }
}
