//! The node's journal: transitions, alarms, notices and shell events, each with a
//! sequence number and a wall-clock timestamp, in a bounded ring. The console serves it
//! (`{"cmd":"events","since":N}`), so an operator tool can follow it without gaps.

use super::schema::Event;
use std::collections::VecDeque;

/// What an event is about.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The role or sync state changed.
    Transition,
    /// An alarm from the core.
    Alarm,
    /// A notice from the core.
    Notice,
    /// Something the shell did (start, stop, hook, console).
    Shell,
}

/// The bounded ring of events.
#[derive(Debug)]
pub struct Journal {
    /// Each event with the length of its JSON text, which bounds a page's cost.
    events: VecDeque<(Event, usize)>,
    capacity: usize,
    /// The sequence number of the next event; the first is 1.
    seq_next: u64,
}

/// A page of the journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The events, oldest first.
    pub events: Vec<Event>,
    /// The sequence number to ask from next (`since` of the next request).
    pub next_since: u64,
    /// The oldest sequence number still held (0: the journal is empty).
    pub first_seq: u64,
    /// True when events after `since` were already dropped from the ring.
    pub truncated: bool,
    /// True when more events follow this page.
    pub more: bool,
}

impl Journal {
    /// An empty journal that keeps the last `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Journal {
            events: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            seq_next: 1,
        }
    }

    /// Appends `event`, numbered and dated here (its `seq` and `unix_ms` are set).
    /// Returns its sequence number.
    pub fn push(&mut self, unix_ms: u64, mut event: Event) -> u64 {
        let seq = self.seq_next;
        self.seq_next += 1;
        event.seq = seq;
        event.unix_ms = unix_ms;
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        let bytes = serde_json::to_string(&event).map_or(0, |text| text.len());
        self.events.push_back((event, bytes));
        seq
    }

    /// The sequence number of the newest event (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.seq_next - 1
    }

    /// Events with a sequence number above `since`, at most `limit` of them and, after
    /// the first, at most `bytes_max` bytes of JSON (`more` then says there are more).
    pub fn since(&self, since: u64, limit: usize, bytes_max: usize) -> Page {
        let first_seq = if self.events.is_empty() {
            0
        } else {
            self.seq_next - self.events.len() as u64
        };
        // `since` comes from a client: any u64, so no plain `+ 1`.
        let truncated = first_seq > 0 && since.saturating_add(1) < first_seq;
        // Index of the first event above `since` in the ring.
        let skip = since.saturating_add(1).saturating_sub(first_seq.max(1)) as usize;
        // At least one event, then as many as fit in `bytes_max`: a page's cost is
        // bounded whatever `events_max` and the events' sizes are.
        let mut bytes = 0usize;
        let events: Vec<Event> = self
            .events
            .iter()
            .skip(skip)
            .take(limit)
            .take_while(|(_, size)| {
                let first = bytes == 0;
                bytes = bytes.saturating_add(*size);
                first || bytes <= bytes_max
            })
            .map(|(event, _)| event.clone())
            .collect();
        let next_since = if events.is_empty() {
            // Nothing newer: a `since` from the future (e.g. before a restart) is brought
            // back to the newest event, so the next poll sees what comes.
            since.min(self.last_seq())
        } else {
            since.max(first_seq.saturating_sub(1)) + events.len() as u64
        };
        let more = next_since < self.last_seq();
        Page {
            events,
            next_since,
            first_seq,
            truncated,
            more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_with(n: u64, capacity: usize) -> Journal {
        let mut j = Journal::new(capacity);
        for i in 0..n {
            j.push(1000 + i, Event::new(EventKind::Shell.into(), "x", "event"));
        }
        j
    }

    fn seqs(page: &Page) -> Vec<u64> {
        page.events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn journal_since_returns_newer_events_in_order() {
        let j = journal_with(5, 10);
        let page = j.since(2, 100, usize::MAX);
        assert_eq!(seqs(&page), [3, 4, 5]);
        assert_eq!(page.next_since, 5);
        assert!(!page.truncated && !page.more);
        assert_eq!(j.since(0, 100, usize::MAX).events.len(), 5);
        assert!(j.since(5, 100, usize::MAX).events.is_empty());
        assert_eq!(j.since(5, 100, usize::MAX).next_since, 5);
    }

    #[test]
    fn journal_limit_pages_through() {
        let j = journal_with(5, 10);
        let page = j.since(0, 2, usize::MAX);
        assert_eq!(seqs(&page), [1, 2]);
        assert!(page.more);
        let page = j.since(page.next_since, 2, usize::MAX);
        assert_eq!(seqs(&page), [3, 4]);
    }

    #[test]
    fn journal_page_stops_at_its_byte_bound_but_takes_one_event() {
        let j = journal_with(10, 10);
        let one = j.events[0].1;
        let page = j.since(0, 100, 3 * one);
        assert_eq!(seqs(&page), [1, 2, 3]);
        assert!(page.more);
        assert_eq!(page.next_since, 3);
        assert_eq!(seqs(&j.since(0, 100, 1)), [1], "a page holds at least one event");
    }

    #[test]
    fn journal_overflow_drops_oldest_and_says_so() {
        let j = journal_with(10, 4);
        let page = j.since(0, 100, usize::MAX);
        assert_eq!(seqs(&page), [7, 8, 9, 10]);
        assert!(page.truncated);
        assert_eq!(page.first_seq, 7);
        assert_eq!(page.next_since, 10);
        let page = j.since(6, 100, usize::MAX);
        assert!(!page.truncated);
        assert_eq!(seqs(&page), [7, 8, 9, 10]);
    }

    #[test]
    fn journal_since_in_the_future_returns_nothing() {
        let j = journal_with(3, 4);
        let page = j.since(99, 10, usize::MAX);
        assert!(page.events.is_empty());
        assert_eq!(page.next_since, 3);
        let empty = Journal::new(4);
        let page = empty.since(0, 10, usize::MAX);
        assert!(page.events.is_empty() && page.next_since == 0 && page.first_seq == 0);
    }

    #[test]
    fn journal_since_u64_max_is_the_future_not_an_overflow() {
        // A console client sent `"since":18446744073709551615`: the node panicked on
        // `since + 1` (debug) or called the page truncated (release).
        let j = journal_with(10, 4);
        let page = j.since(u64::MAX, 10, usize::MAX);
        assert!(page.events.is_empty() && !page.truncated && !page.more);
        assert_eq!(page.next_since, 10);
    }
}
