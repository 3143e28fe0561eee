//! The node's journal: transitions, alarms, notices and shell events, each with a
//! sequence number and a wall-clock timestamp, in a bounded ring. The console serves it
//! (`{"cmd":"events","since":N}`), so an operator tool can follow it without gaps.
//!
//! Like a PLC's diagnostic buffer it survives restarts ([`JournalFile`]): each event is
//! appended as one JSON line to `console.journal_file` by a thread of its own (the loop
//! hands it the line and never waits for the disk), rotated to `<file>.1` when the file
//! reaches half of `console.journal_bytes_max`; at start the node reads both files back
//! ([`load`]) and numbers on from the last event, so `twinctl events` after a reboot
//! shows what happened before it, and a client's `since` stays valid.

use super::schema::Event;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Lines waiting for the writer thread; beyond, a line is dropped from the file (not from
/// the ring) and counted: a disk that stalls never stalls the loop.
pub const FILE_QUEUE_LINES: usize = 1024;

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

    /// Takes back events read from the journal's files ([`load`]), oldest first, and
    /// numbers on after the last of them.
    pub fn restore(&mut self, events: Vec<Event>) {
        for event in events {
            if event.seq < self.seq_next {
                continue; // out of order: a damaged file; keep the numbering increasing
            }
            self.seq_next = event.seq.saturating_add(1);
            if self.events.len() == self.capacity {
                self.events.pop_front();
            }
            let bytes = serde_json::to_string(&event).map_or(0, |text| text.len());
            self.events.push_back((event, bytes));
        }
    }

    /// The newest event.
    pub fn last(&self) -> Option<&Event> {
        self.events.back().map(|(event, _)| event)
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

/// The rotated file beside `path`: `<path>.1`.
pub fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// What [`load`] read back.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The last `capacity` events of both files, oldest first.
    pub events: Vec<Event>,
    /// Lines that were not an event (a line torn by a crash, a damaged file): skipped.
    pub skipped: u64,
}

/// Reads the journal's files back (`<path>.1`, then `path`), keeping the last `capacity`
/// events. Bounded: each file is read up to `bytes_max` (a file grown past it by other
/// hands is read no further). Missing files are an empty journal.
pub fn load(path: &Path, capacity: usize, bytes_max: u64) -> io::Result<Loaded> {
    let mut loaded = Loaded::default();
    let mut ring: VecDeque<Event> = VecDeque::new();
    for file in [rotated(path), path.to_owned()] {
        let handle = match File::open(&file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut reader = BufReader::new(io::Read::take(handle, bytes_max));
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            match serde_json::from_slice::<Event>(&line) {
                Ok(event) if event.seq > 0 => {
                    if ring.len() == capacity.max(1) {
                        ring.pop_front();
                    }
                    ring.push_back(event);
                }
                _ => loaded.skipped += 1,
            }
        }
    }
    loaded.events = ring.into();
    Ok(loaded)
}

/// Appends the journal's lines to its file from a thread of its own.
#[derive(Debug)]
pub struct JournalFile {
    queue: Option<SyncSender<String>>,
    thread: Option<JoinHandle<()>>,
    /// Lines dropped because the queue was full (the disk too slow), or the file failed.
    dropped: Arc<AtomicU64>,
    /// Write errors (each logged once per run by the thread).
    errors: Arc<AtomicU64>,
}

impl JournalFile {
    /// Opens (creates) `path` for appending, rotating at `bytes_max / 2`.
    pub fn open(path: &Path, bytes_max: u64) -> io::Result<JournalFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        let (queue, lines) = sync_channel::<String>(FILE_QUEUE_LINES);
        let dropped = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let (path, thread_errors) = (path.to_owned(), errors.clone());
        let thread = std::thread::Builder::new()
            .name("twinloop-journal".into())
            .spawn(move || {
                let mut writer = Writer { path, file, size, half: (bytes_max / 2).max(1) };
                let mut logged = false;
                while let Ok(line) = lines.recv() {
                    let mut result = writer.append(&line);
                    // What else is queued goes in the same write burst.
                    while let Ok(line) = lines.try_recv() {
                        result = result.and(writer.append(&line));
                    }
                    if let Err(e) = result {
                        thread_errors.fetch_add(1, Ordering::Relaxed);
                        if !logged {
                            logged = true;
                            super::log::warn(format_args!(
                                "journal file {}: {e}: events are kept in memory only until a restart (later errors are counted, not logged)",
                                writer.path.display()
                            ));
                        }
                    }
                }
                let _ = writer.file.sync_data();
            })?;
        Ok(JournalFile {
            queue: Some(queue),
            thread: Some(thread),
            dropped,
            errors,
        })
    }

    /// Hands `event`'s line to the writer; never blocks.
    pub fn append(&self, event: &Event) {
        let Some(queue) = &self.queue else { return };
        let Ok(mut line) = serde_json::to_string(event) else {
            return;
        };
        line.push('\n');
        match queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines not written: dropped (queue full) and write errors.
    pub fn lost(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed) + self.errors.load(Ordering::Relaxed)
    }

    /// Writes what is queued and syncs the file; waits for the thread (at the node's
    /// exit, after the last event).
    pub fn close(&mut self) {
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for JournalFile {
    fn drop(&mut self) {
        self.close();
    }
}

/// The writer thread's file.
struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    /// Rotate when the file would pass this.
    half: u64,
}

impl Writer {
    fn append(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.half {
            fs::rename(&self.path, rotated(&self.path))?;
            self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
            self.size = 0;
        }
        self.file.write_all(line.as_bytes())?;
        self.size = self.size.saturating_add(len);
        Ok(())
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

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("twinloop-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn journal_file_written_then_loaded_numbers_on_across_a_restart() {
        let dir = temp_dir("restart");
        let path = dir.join("node.journal");
        let mut j = Journal::new(100);
        let mut file = JournalFile::open(&path, 1 << 20).unwrap();
        for i in 0..5 {
            j.push(
                1000 + i,
                Event::new(EventKind::Shell.into(), "x", &format!("event {i}")),
            );
            file.append(j.last().unwrap());
        }
        file.close();
        assert_eq!(file.lost(), 0);

        let loaded = load(&path, 100, 1 << 20).unwrap();
        assert_eq!(loaded.skipped, 0);
        let mut j = Journal::new(100);
        j.restore(loaded.events);
        assert_eq!(j.last_seq(), 5);
        assert_eq!(j.last().unwrap().message, "event 4");
        let seq = j.push(2000, Event::new(EventKind::Shell.into(), "started", "the next run"));
        assert_eq!(seq, 6, "numbering goes on after the last event read back");
        assert_eq!(seqs(&j.since(0, 100, usize::MAX)), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn journal_file_rotates_within_its_bound_and_keeps_the_newest() {
        let dir = temp_dir("rotate");
        let path = dir.join("node.journal");
        let bytes_max = 4096;
        let mut j = Journal::new(10_000);
        let mut file = JournalFile::open(&path, bytes_max).unwrap();
        for i in 0..200 {
            j.push(
                1000 + i,
                Event::new(EventKind::Shell.into(), "x", &format!("event {i}")),
            );
            file.append(j.last().unwrap());
        }
        file.close();
        let size = |p: &Path| fs::metadata(p).map_or(0, |m| m.len());
        assert!(
            size(&path) + size(&rotated(&path)) <= bytes_max,
            "{} + {}",
            size(&path),
            size(&rotated(&path))
        );
        let loaded = load(&path, 10_000, bytes_max).unwrap();
        let seqs: Vec<u64> = loaded.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs.last(), Some(&200), "the newest event kept");
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "in order, no gap: {seqs:?}");
        assert!(seqs.len() > 10, "both files read back: {}", seqs.len());
    }

    #[test]
    fn journal_file_torn_or_foreign_lines_skipped_events_kept() {
        let dir = temp_dir("torn");
        let path = dir.join("node.journal");
        let good = |seq: u64| {
            let mut e = Event::new(EventKind::Shell.into(), "x", "ok");
            e.seq = seq;
            serde_json::to_string(&e).unwrap()
        };
        let text = format!("{}\nnot json\n{}\n{{\"seq\":3,\"unix_ms\":1,\"ki", good(1), good(2));
        fs::write(&path, text).unwrap();
        let loaded = load(&path, 100, 1 << 20).unwrap();
        assert_eq!(loaded.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(loaded.skipped, 2);
        // A missing file is an empty journal.
        let none = load(&dir.join("absent"), 100, 1 << 20).unwrap();
        assert!(none.events.is_empty() && none.skipped == 0);
    }

    proptest::proptest! {
        #[test]
        fn journal_load_arbitrary_bytes_no_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
            let dir = std::env::temp_dir().join(format!("twinloop-journal-prop-{}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            let path = dir.join("node.journal");
            fs::write(&path, &bytes).unwrap();
            let loaded = load(&path, 16, 1 << 20).unwrap();
            let mut j = Journal::new(16);
            j.restore(loaded.events);
            proptest::prop_assert!(j.last_seq() < u64::MAX);
        }
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
