//! `twinctl events`: the nodes' journals, merged by time, optionally followed.

use crate::client::{Client, ClientError};
use crate::model::Event;
use crate::pair::Pair;
use crate::render::utc_text;
use crate::status::JSON_SCHEMA;
use crate::{exit, Failure, Kind};
use serde_json::json;
use std::time::Duration;
use twinloop::io::console::EVENTS_LIMIT_MAX;

/// What `events` was asked.
pub struct Options {
    /// Keep following.
    pub follow: bool,
    /// The last N events of each node first; 0 = all held.
    pub last: u64,
    /// Only these kinds; empty = all.
    pub kinds: Vec<Kind>,
    /// JSON lines.
    pub json: bool,
    /// With `follow`: the polling period.
    pub interval: Duration,
}

/// Where twinctl stands in one node's journal.
struct Cursor {
    /// The `since` of the next request.
    since: u64,
    /// The node's boot id when last read; a new one means it restarted.
    boot_id: Option<u64>,
    /// The last request failed (reported once, until it answers again).
    failing: bool,
}

/// Reads every event after `since` (page by page). Returns them, the next `since`, the
/// boot id, and whether the ring had already dropped some.
fn read_from(client: &mut Client, since: u64) -> Result<(Vec<Event>, u64, u64, bool), ClientError> {
    let mut events = Vec::new();
    let mut since = since;
    let mut truncated = false;
    // Bounded: a node holds at most `console.events_max` (≤ 1048576) events, and each
    // page at least one (pages are also bounded in bytes, so may hold fewer than asked).
    for _ in 0..=(1 << 20) {
        let page = client.events(since, EVENTS_LIMIT_MAX)?;
        truncated |= page.truncated;
        events.extend(page.events);
        since = page.next_since;
        if !page.more {
            return Ok((events, since, page.boot_id, truncated));
        }
    }
    let boot_id = client.events(since, 1)?.boot_id;
    Ok((events, since, boot_id, truncated))
}

/// One event (or a notice about a node) to print.
enum Record {
    Event {
        node: usize,
        event: Box<Event>,
    },
    Note {
        node: usize,
        kind: &'static str,
        text: String,
    },
}

struct Printer<'a> {
    names: Vec<String>,
    addrs: Vec<String>,
    options: &'a Options,
}

/// True when `event` is of one of `kinds` (all when empty).
fn wanted(kinds: &[Kind], event: &Event) -> bool {
    kinds.is_empty() || kinds.iter().any(|k| k.name() == event.kind.name())
}

impl Printer<'_> {
    fn print(&self, record: &Record) {
        match record {
            Record::Event { node, event } => {
                if !wanted(&self.options.kinds, event) {
                    return;
                }
                if self.options.json {
                    let line = json!({
                        "twinctl": JSON_SCHEMA, "type": "event", "node": self.names[*node],
                        "address": self.addrs[*node], "event": event.to_value(),
                    });
                    outln!("{line}");
                } else {
                    let width = self.names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
                    outln!(
                        "{}  {:<width$}  {:<10}  {:<24}  {}",
                        utc_text(event.unix_ms),
                        self.names[*node],
                        event.kind,
                        event.name,
                        event.message
                    );
                }
            }
            Record::Note { node, kind, text } => {
                if self.options.json {
                    let line = json!({
                        "twinctl": JSON_SCHEMA, "type": kind, "node": self.names[*node],
                        "address": self.addrs[*node], "message": text,
                    });
                    outln!("{line}");
                } else {
                    outln!("-- {}: {text}", self.names[*node]);
                }
            }
        }
    }
}

/// Prints the journals; with `follow`, keeps printing new events until interrupted.
/// Exit code: 0, or 2 when a node could not be read (the others are still shown).
pub fn run(pair: &mut Pair, options: &Options) -> Result<u8, Failure> {
    let count = pair.members.len();
    let mut cursors: Vec<Cursor> = Vec::with_capacity(count);
    let mut records = Vec::new();
    let mut failed = 0;
    for (i, member) in pair.members.iter_mut().enumerate() {
        // With a kind filter the last N *matching* events are wanted: read all the
        // node holds and keep those. Without one, the last N are the newest N seqs.
        let start = if options.last == 0 || !options.kinds.is_empty() {
            Ok(0)
        } else {
            member
                .client
                .events_newest_seq()
                .map(|newest| newest.saturating_sub(options.last))
        };
        match start.and_then(|since| read_from(&mut member.client, since)) {
            Ok((events, since, boot_id, _)) => {
                let mut events: Vec<Event> = events.into_iter().filter(|e| wanted(&options.kinds, e)).collect();
                if options.last > 0 {
                    let keep = usize::try_from(options.last).unwrap_or(usize::MAX);
                    events.drain(..events.len().saturating_sub(keep));
                }
                records.extend(events.into_iter().map(|event| Record::Event {
                    node: i,
                    event: Box::new(event),
                }));
                cursors.push(Cursor {
                    since,
                    boot_id: Some(boot_id),
                    failing: false,
                });
            }
            Err(e) => {
                failed += 1;
                records.push(Record::Note {
                    node: i,
                    kind: "unreachable",
                    text: e.to_string(),
                });
                cursors.push(Cursor {
                    since: 0,
                    boot_id: None,
                    failing: true,
                });
            }
        }
    }
    let printer = Printer {
        names: pair.members.iter().map(|m| m.label()).collect(),
        addrs: pair.members.iter().map(|m| m.client.addr().to_string()).collect(),
        options,
    };
    print_sorted(&printer, records);
    if !options.follow {
        if failed == count {
            return Err(Failure {
                code: exit::DOWN,
                message: "no node could be read".into(),
            });
        }
        return Ok(if failed > 0 { exit::DOWN } else { exit::OK });
    }
    loop {
        // Pacing the polls is the follower's period, not a wait for a condition.
        std::thread::sleep(options.interval);
        let mut records = Vec::new();
        for (i, member) in pair.members.iter_mut().enumerate() {
            poll_node(i, &mut member.client, &mut cursors[i], &mut records);
        }
        print_sorted(&printer, records);
    }
}

/// One follow step for node `i`: new events, or notes about a restart, lost events, or
/// a node that stopped or started answering.
fn poll_node(i: usize, client: &mut Client, cursor: &mut Cursor, records: &mut Vec<Record>) {
    match read_from(client, cursor.since) {
        Err(e) => {
            if !cursor.failing {
                records.push(Record::Note {
                    node: i,
                    kind: "unreachable",
                    text: e.to_string(),
                });
                cursor.failing = true;
            }
        }
        Ok((mut events, mut since, mut boot_id, mut truncated)) => {
            if cursor.failing {
                records.push(Record::Note {
                    node: i,
                    kind: "reachable",
                    text: "answers again".into(),
                });
                cursor.failing = false;
            }
            if cursor.boot_id.is_some_and(|b| b != boot_id) {
                records.push(Record::Note {
                    node: i,
                    kind: "restarted",
                    text: "the node restarted: its journal begins again".into(),
                });
                // A new run numbers its events from 1 again: read it from the start.
                match read_from(client, 0) {
                    Ok(again) => (events, since, boot_id, truncated) = again,
                    Err(_) => return,
                }
            }
            if truncated {
                records.push(Record::Note {
                    node: i,
                    kind: "gap",
                    text: "some events were dropped from the node's journal before twinctl read them".into(),
                });
            }
            cursor.boot_id = Some(boot_id);
            cursor.since = since;
            records.extend(events.into_iter().map(|event| Record::Event {
                node: i,
                event: Box::new(event),
            }));
        }
    }
}

/// Prints records oldest first; notes come before the events of the same round.
fn print_sorted(printer: &Printer, mut records: Vec<Record>) {
    records.sort_by_key(|r| match r {
        Record::Note { node, .. } => (0, 0, *node, 0),
        Record::Event { node, event } => (1, event.unix_ms, *node, event.seq),
    });
    for record in &records {
        printer.print(record);
    }
}
