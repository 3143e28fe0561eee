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
    /// The highest session left for a lower one after a silence, with its window:
    /// `(session, highest, seen)`, all 0 for none.
    retired: (u64, u64, u64),
}

/// True when `seq` is new to the window `(highest, seen)`.
fn is_new(highest: u64, seen: u64, seq: u64) -> bool {
    seq > highest || (highest - seq < WINDOW_SEQS && seen & (1 << (highest - seq)) == 0)
}

impl ReplayWindow {
    /// True when `(session, seq)` is new; records it. A higher session is the peer's next
    /// start. A lower one is a replay — unless the current session has been silent for
    /// `silence` (the peer restarted with a clock that went back), so that a wrong clock
    /// cannot lock a restarted peer out for good. The session left then is retired with
    /// its window: it is heard again with sequence numbers new to that window (the peer
    /// was alive after all), and a session between is no newer start. Without this, a
    /// replay of an older session after a silence reset the window, and the current
    /// session's messages were taken again, one by one (found by the DST's attacker,
    /// 2026-11-26).
    pub fn accept(&mut self, session: u64, seq: u64, now: Instant, silence: Duration) -> bool {
        let silent = self.heard_at.is_none_or(|t| now.saturating_since(t) >= silence);
        let (retired, retired_highest, retired_seen) = self.retired;
        if retired != 0 && session == retired && session != self.session {
            if !is_new(retired_highest, retired_seen, seq) {
                return false;
            }
            // Back to the retired session, with its window.
            self.session = session;
            self.highest = retired_highest;
            self.seen = retired_seen;
            self.retired = (0, 0, 0);
        } else if self.heard_at.is_none()
            || (session > self.session && session > retired)
            || (session != self.session && silent)
        {
            if session < self.session && self.session > retired {
                self.retired = (self.session, self.highest, self.seen);
            }
            if session > self.retired.0 {
                self.retired = (0, 0, 0);
            }
            self.session = session;
            self.highest = seq;
            self.seen = 1;
            self.heard_at = Some(now);
            return true;
        }
        if session != self.session || !is_new(self.highest, self.seen, seq) {
            return false;
        }
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= WINDOW_SEQS { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = seq;
        } else {
            self.seen |= 1 << (self.highest - seq);
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

    /// Mutation testing (2026-11-26, `tools/mutants.sh`): a window that took the current
    /// session's replays once the link had been silent survived the DST and the unit
    /// tests. The silence excuses only a *lower session* (a peer whose clock went back),
    /// never a repeat within the session heard.
    #[test]
    fn replay_window_same_session_replay_after_silence_rejected() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(7, 5, Instant::from_millis(1), SILENCE));
        let later = Instant::from_millis(1) + SILENCE * 3;
        assert!(!w.accept(7, 5, later, SILENCE));
        assert!(w.accept(7, 6, later, SILENCE));
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

    #[test]
    fn replay_window_retired_session_replayed_rejected() {
        let mut w = ReplayWindow::default();
        let t = Instant::from_millis;
        for seq in [1, 2, 4] {
            assert!(w.accept(9, seq, t(1), SILENCE));
        }
        // Session 9 silent: an older session is taken (a peer whose clock went back, or
        // an attacker's replay of one).
        assert!(w.accept(4, 7, t(600), SILENCE));
        // Session 9's messages again are replays, not a newer start; nor is a session
        // between.
        assert!(!w.accept(9, 1, t(601), SILENCE));
        assert!(!w.accept(9, 4, t(602), SILENCE));
        assert!(!w.accept(7, 1, t(603), SILENCE));
        assert!(w.accept(4, 8, t(604), SILENCE), "the current session goes on");
        // Session 9 alive after all: a number it never sent before is taken, with its
        // window: its old numbers still are not.
        assert!(w.accept(9, 3, t(605), SILENCE));
        assert!(!w.accept(9, 2, t(606), SILENCE));
        assert!(w.accept(9, 5, t(607), SILENCE));
        assert!(!w.accept(4, 9, t(608), SILENCE));
        assert!(w.accept(10, 1, t(609), SILENCE));
    }
}
