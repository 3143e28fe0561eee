//! `twinctl switchover`: a planned, bumpless switchover, confirmed by the operator, then
//! followed through the nodes' journals to its outcome.
//!
//! The request goes to the primary (which starts the handshake). The outcome is read
//! from the journals, which say it exactly: `switchover_completed` on the new primary
//! (with the frame it took over after), `switchover_handed_over` on the old one (with
//! the frame it released after), or `switchover_aborted`; `switchover_delayed` notices
//! say why the backup made the primary wait.

use crate::client::{ClientError, ErrorKind};
use crate::health::{assess, NodeView};
use crate::model::{epoch_text, Event, Status};
use crate::pair::Pair;
use crate::render::utc_time_text;
use crate::status::{node_json, JSON_SCHEMA};
use crate::targets::read_key;
use crate::{exit, Failure};
use serde_json::{json, Value};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use twinloop::io::schema::{CommandResult, DelayReason, EventKind, Refusal, Role, Sync};

/// What `switchover` was asked.
pub struct Options {
    /// `--key-file`.
    pub key_file: Option<PathBuf>,
    /// Skip the confirmation.
    pub yes: bool,
    /// The bound on waiting for the outcome.
    pub wait_ms: Option<u64>,
    /// Print the outcome as JSON.
    pub json: bool,
    /// `--to`: the node to take over, by id or by the name of a node given.
    pub to: Option<String>,
}

/// The wait when the primary's `switchover_timeout_ms` cannot be read.
const WAIT_MS_DEFAULT: u64 = 5000;
/// Added to the primary's `switchover_timeout_ms`: its abort must be seen, not guessed.
const WAIT_MS_MARGIN: u64 = 2000;
/// How often the journals are read while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The backup leads now.
    Completed,
    /// A node refused: wrong key, no key configured, or the core said no.
    Refused,
    /// The primary gave up after `switchover_timeout_ms` (the backup did not agree or
    /// take over in time) and carries on as primary.
    Aborted,
    /// Neither completion nor abort was seen within the wait.
    TimedOut,
    /// The operator did not confirm.
    NotConfirmed,
    /// No primary could be reached, or it stopped answering.
    Unreachable,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Refused => "refused",
            Outcome::Aborted => "aborted",
            Outcome::TimedOut => "timed_out",
            Outcome::NotConfirmed => "not_confirmed",
            Outcome::Unreachable => "unreachable",
        }
    }

    fn exit_code(self) -> u8 {
        match self {
            Outcome::Completed => exit::OK,
            Outcome::Unreachable => exit::DOWN,
            _ => exit::FAILED,
        }
    }
}

/// What the journals said during the switchover.
#[derive(Default)]
struct Seen {
    requested: Option<(usize, Event)>,
    completed: Option<(usize, Event)>,
    handed_over: Option<(usize, Event)>,
    aborted: Option<(usize, Event)>,
    refused: Option<(usize, Event)>,
    delays: Vec<(usize, Event)>,
    inputs_lost: Vec<(usize, Event)>,
}

impl Seen {
    fn take(&mut self, node: usize, event: Event) {
        let slot = match (event.kind, event.name.as_str()) {
            (EventKind::Transition, "switchover_requested") => &mut self.requested,
            (EventKind::Transition, "switchover_completed") => &mut self.completed,
            (EventKind::Transition, "switchover_handed_over") => &mut self.handed_over,
            (EventKind::Transition, "switchover_aborted") => &mut self.aborted,
            (EventKind::Notice, "switchover_refused") => &mut self.refused,
            (EventKind::Notice, "switchover_delayed") => {
                self.delays.push((node, event));
                return;
            }
            (EventKind::Alarm, "input_lost") => {
                self.inputs_lost.push((node, event));
                return;
            }
            _ => return,
        };
        slot.get_or_insert((node, event));
    }
}

/// The report, for people and for `--json`.
struct Report {
    outcome: Outcome,
    message: String,
    details: Vec<String>,
    json: Value,
}

fn report(outcome: Outcome, message: String) -> Report {
    Report {
        outcome,
        json: json!({}),
        details: Vec::new(),
        message,
    }
}

/// Runs the switchover; returns the exit code (0 completed, 1 refused, aborted, timed
/// out or not confirmed, 2 no primary reachable, 3 usage).
pub fn run(pair: &mut Pair, options: &Options) -> Result<u8, Failure> {
    let nodes = pair.observe(None);
    let verdict = assess(&nodes);
    let report = match verdict.primary {
        None => {
            // A node that turned the connection away said why: that is the news, not
            // "no primary" (the primary may be among them).
            let busy: Vec<String> = nodes
                .iter()
                .filter_map(|n| {
                    n.error
                        .as_ref()
                        .filter(|e| e.contains("console busy"))
                        .map(|e| format!("{}: {e}", n.name))
                })
                .collect();
            let headline = if busy.is_empty() {
                "no primary reachable: there is nothing to hand over".to_string()
            } else {
                format!("cannot tell which node is primary: {}", busy.join("; "))
            };
            let mut r = report(Outcome::Unreachable, headline);
            r.details = verdict.problems.clone();
            r
        }
        Some(p) => {
            let two = nodes
                .iter()
                .filter(|n| n.status.as_ref().is_some_and(Status::is_primary))
                .count()
                > 1;
            if two {
                report(
                    Outcome::Refused,
                    format!("not switching over: {}", verdict.problems.join("; ")),
                )
            } else {
                let to = target_id(&nodes, options.to.as_deref())?;
                let key = key_for(pair, p, options)?;
                let plan = plan_text(&nodes, p, to);
                if !confirmed(&plan, options)? {
                    report(Outcome::NotConfirmed, "not confirmed: nothing was changed".into())
                } else {
                    let wait = wait_for(pair, p, options);
                    execute(pair, &nodes, p, &key, wait, to)
                }
            }
        }
    };
    let mut out = report.json;
    out["twinctl"] = JSON_SCHEMA.into();
    out["command"] = "switchover".into();
    out["outcome"] = report.outcome.name().into();
    out["exit_code"] = report.outcome.exit_code().into();
    out["message"] = report.message.clone().into();
    if options.json {
        outln!("{out}");
    }
    if report.outcome == Outcome::Completed {
        if !options.json {
            outln!("{}", report.message);
            for line in &report.details {
                outln!("  {line}");
            }
        }
    } else {
        // The one line a person or a log needs, even with --json on stdout.
        errln!("twinctl: {}", report.message);
        if !options.json {
            for line in &report.details {
                errln!("  {line}");
            }
        }
    }
    Ok(report.outcome.exit_code())
}

/// The key: `--key-file`, else the primary's `console.key_file`, else any node's.
fn key_for(pair: &Pair, primary: usize, options: &Options) -> Result<String, Failure> {
    let file = options
        .key_file
        .clone()
        .or_else(|| pair.members[primary].key_file.clone())
        .or_else(|| pair.members.iter().find_map(|m| m.key_file.clone()));
    match file {
        Some(path) => read_key(&path).map_err(Failure::usage),
        None => Err(Failure::usage(
            "switchover needs the console key: pass --key-file FILE (the nodes' console.key_file), or --config FILE \
             with a console.key_file",
        )),
    }
}

/// `--to` as a node id: a number 1..=255, or the name of a node given (its `node_id`).
fn target_id(nodes: &[NodeView], to: Option<&str>) -> Result<Option<u8>, Failure> {
    let Some(text) = to else {
        return Ok(None);
    };
    if let Ok(id) = text.parse::<u64>() {
        return match u8::try_from(id) {
            Ok(id) if id != 0 => Ok(Some(id)),
            _ => Err(Failure::usage(format!("--to {text}: a node id is 1..=255"))),
        };
    }
    let named = nodes.iter().find(|n| n.name == text);
    match named.map(|n| n.status.as_ref().map(|s| s.node_id)) {
        Some(Some(id)) => u8::try_from(id)
            .map(Some)
            .map_err(|_| Failure::usage(format!("--to {text}: its node id {id} is not 1..=255"))),
        Some(None) => Err(Failure::usage(format!(
            "--to {text}: the node does not answer, so its id is unknown: give the id (twinctl status lists the group)"
        ))),
        None => Err(Failure::usage(format!(
            "--to {text}: no node of that name among the nodes given: give its id, or its --config/--node"
        ))),
    }
}

fn plan_text(nodes: &[NodeView], p: usize, to: Option<u8>) -> String {
    let lead = nodes[p].status.as_ref().expect("the primary answered");
    let mut text = format!(
        "Planned switchover: {} (primary, epoch {}, frame {}) hands over",
        nodes[p].name,
        epoch_text(lead.epoch),
        lead.frame
    );
    let backup = nodes.iter().enumerate().find(|(i, n)| {
        *i != p
            && n.status.as_ref().is_some_and(|s| match to {
                Some(to) => s.node_id == u64::from(to),
                None => s.role == Role::Backup,
            })
    });
    match backup {
        Some((_, n)) => {
            let s = n.status.as_ref().expect("answered");
            text.push_str(&format!(
                " to {} (backup, {}, {} frames behind).",
                n.name, s.sync, s.lag_frames
            ));
            if s.sync != Sync::InSync && to.is_some() {
                text.push_str(" The node named is not an in-sync backup: the primary will refuse.");
            } else if s.sync != Sync::InSync {
                text.push_str(" The backup is not in sync: the primary waits for it (up to its switchover_timeout_ms) or refuses.");
            }
        }
        None => match to {
            Some(to) => text.push_str(&format!(" to node {to} (not among the nodes given, or not answering).")),
            None => text.push_str(" to its backup (not among the nodes given, or not answering)."),
        },
    }
    text
}

/// Asks the operator, on the terminal; refuses at once without one.
fn confirmed(plan: &str, options: &Options) -> Result<bool, Failure> {
    if options.yes {
        if !options.json {
            outln!("{plan}");
        }
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Failure::usage(
            "not switching over: confirmation needed but standard input is not a terminal; pass --yes to confirm",
        ));
    }
    err!("{plan}\nSwitch over now? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if stdin.lock().read_line(&mut answer).is_err() {
        return Ok(false);
    }
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// `--wait-ms`, else the primary's `switchover_timeout_ms` + a margin.
fn wait_for(pair: &mut Pair, p: usize, options: &Options) -> Duration {
    let ms = options.wait_ms.unwrap_or_else(|| {
        pair.members[p]
            .client
            .config()
            .ok()
            .map(|c| c.runtime.switchover_timeout_ms)
            .map_or(WAIT_MS_DEFAULT, |t| t.saturating_add(WAIT_MS_MARGIN))
    });
    Duration::from_millis(ms)
}

/// Sends the request to the primary `p` and follows the journals until the outcome or
/// `wait`.
fn execute(pair: &mut Pair, before: &[NodeView], p: usize, key: &str, wait: Duration, to: Option<u8>) -> Report {
    let names: Vec<String> = before.iter().map(|n| n.name.clone()).collect();
    // Only events after the status just read belong to this switchover.
    let mut since: Vec<Option<(u64, u64)>> = before
        .iter()
        .map(|n| n.status.as_ref().map(|s| (s.events_last_seq, s.boot_id)))
        .collect();
    let started_at = Instant::now();
    let reply = match pair.members[p].client.operator_to("switchover", key, to) {
        Ok(reply) => reply,
        Err(e) => {
            let mut r = request_failed(&names[p], &e);
            r.json = json!({"sent_to": names[p], "result": Value::Null, "reason": e.node_code()});
            return r;
        }
    };
    let mut base = json!({
        "sent_to": names[p],
        "to": to,
        "result": reply.result,
        "reason": reply.reason,
    });
    if reply.result == CommandResult::Refused {
        let mut r = report(
            Outcome::Refused,
            format!(
                "switchover refused by {}: {} ({})",
                names[p],
                reply.reason.map_or("no reason given", Refusal::name),
                reply.message
            ),
        );
        r.json = base;
        return r;
    }

    let mut seen = Seen::default();
    let deadline = started_at + wait;
    let outcome = loop {
        for (i, member) in pair.members.iter_mut().enumerate() {
            let Some((seq, boot)) = since[i] else { continue };
            // A node that does not answer now may answer at the next round.
            let Ok(page) = member.client.events(seq, 1000) else {
                continue;
            };
            if page.boot_id != boot {
                // The node restarted: its journal says nothing about this switchover.
                since[i] = None;
                continue;
            }
            since[i] = Some((page.next_since, boot));
            for event in page.events {
                seen.take(i, event);
            }
        }
        if seen.aborted.is_some() {
            break Outcome::Aborted;
        }
        if seen.refused.is_some() {
            break Outcome::Refused;
        }
        // Done when the new primary says so and the old one has released (or cannot be
        // read); with only the old primary given, its release is the last word.
        let old_done = seen.handed_over.is_some() || since[p].is_none();
        let new_watched = (0..since.len()).any(|i| i != p && since[i].is_some());
        if (seen.completed.is_some() && old_done) || (seen.handed_over.is_some() && !new_watched) {
            break Outcome::Completed;
        }
        if Instant::now() >= deadline {
            break Outcome::TimedOut;
        }
        // Pacing the reads of the journals; the loop is bounded by `deadline`.
        std::thread::sleep(POLL_INTERVAL);
    };
    let elapsed_ms = started_at.elapsed().as_millis() as u64;
    let after = pair.observe(None);
    summarize(outcome, &seen, &names, p, &after, elapsed_ms, wait, &mut base)
}

fn request_failed(name: &str, error: &ClientError) -> Report {
    match error.node_code() {
        Some("bad_key") => {
            let said = match &error.kind {
                ErrorKind::Node { message, .. } => message.as_str(),
                _ => "wrong key",
            };
            report(
                Outcome::Refused,
                format!(
                    "switchover refused by {name}: {said} (bad_key): check --key-file against the node's \
                     console.key_file"
                ),
            )
        }
        Some("no_key_configured") => report(
            Outcome::Refused,
            format!(
                "switchover refused by {name}: the node has no console.key_file, so commands that change state are \
                 disabled (no_key_configured)"
            ),
        ),
        Some(code) => report(
            Outcome::Refused,
            format!("switchover refused by {name}: {code}: {error}"),
        ),
        None => report(Outcome::Unreachable, format!("switchover not sent to {name}: {error}")),
    }
}

fn event_node_json(names: &[String], seen: &Option<(usize, Event)>) -> Value {
    match seen {
        Some((i, e)) => json!({"node": names[*i], "epoch": e.epoch, "frame": e.frame, "unix_ms": e.unix_ms}),
        None => Value::Null,
    }
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    outcome: Outcome,
    seen: &Seen,
    names: &[String],
    p: usize,
    after: &[NodeView],
    elapsed_ms: u64,
    wait: Duration,
    base: &mut Value,
) -> Report {
    let released = seen.handed_over.as_ref().and_then(|(_, e)| e.frame);
    let taken = seen.completed.as_ref().and_then(|(_, e)| e.frame);
    let node_handover_ms = match (&seen.requested, &seen.completed) {
        (Some((_, r)), Some((_, c))) => Some(c.unix_ms.saturating_sub(r.unix_ms)),
        _ => None,
    };
    let skipped = seen.inputs_lost.len() as u64;
    let delays: Vec<Value> = seen
        .delays
        .iter()
        .map(|(i, e)| json!({"node": names[*i], "delay_reason": e.delay_reason, "lag_frames": e.lag_frames}))
        .collect();
    let delay_text: Vec<String> = seen
        .delays
        .iter()
        .filter(|(i, _)| *i != p || seen.delays.len() == 1)
        .map(|(i, e)| {
            format!(
                "{} delayed its agreement: {} ({} frames behind)",
                names[*i],
                e.delay_reason.map_or("?", DelayReason::name),
                e.lag_frames.unwrap_or(0)
            )
        })
        .collect();
    base["elapsed_ms"] = elapsed_ms.into();
    base["node_handover_ms"] = node_handover_ms.into();
    base["old_primary"] = event_node_json(names, &seen.handed_over);
    base["new_primary"] = event_node_json(names, &seen.completed);
    base["released_frame"] = released.into();
    base["taken_frame"] = taken.into();
    base["frames_skipped"] = (outcome == Outcome::Completed).then_some(skipped).into();
    base["delays"] = Value::Array(delays);
    base["nodes"] = Value::Array(after.iter().map(node_json).collect());

    let now_text: Vec<String> = after
        .iter()
        .map(|n| match &n.status {
            Some(s) => format!(
                "{} {} ({}, epoch {}, frame {})",
                n.name,
                s.role,
                s.sync,
                epoch_text(s.epoch),
                s.frame
            ),
            None => format!("{} unreachable", n.name),
        })
        .collect();
    let mut r = match outcome {
        Outcome::Completed => {
            let new_primary = after
                .iter()
                .find(|n| n.status.as_ref().is_some_and(Status::is_primary))
                .or_else(|| seen.completed.as_ref().map(|(i, _)| &after[*i]));
            let (name, epoch) = match (new_primary, &seen.completed) {
                (Some(n), _) => (n.name.clone(), n.status.as_ref().map_or(0, |s| s.epoch)),
                (None, Some((i, e))) => (names[*i].clone(), e.epoch.unwrap_or(0)),
                (None, None) => ("the backup".into(), 0),
            };
            let mut r = report(
                Outcome::Completed,
                format!(
                    "switchover completed: {name} is primary now, epoch {}",
                    epoch_text(epoch)
                ),
            );
            match (released, taken) {
                (Some(rf), Some(tf)) => r.details.push(format!(
                    "{} released after frame {rf}; {name} took over after frame {tf} and runs from frame {}",
                    names[p],
                    tf + 1
                )),
                (Some(rf), None) => r.details.push(format!("{} released after frame {rf}", names[p])),
                (None, Some(tf)) => r.details.push(format!("{name} took over after frame {tf}")),
                (None, None) => {}
            }
            r.details.push(format!(
                "frames skipped at the handover: {skipped} (input_lost alarms on the new primary); the console does not \
                 report per-cycle output timing, so missed cycles at the sink are not measured here"
            ));
            match (node_handover_ms, &seen.requested, &seen.completed) {
                (Some(ms), Some((_, rq)), Some((_, c))) => r.details.push(format!(
                    "handover took {ms} ms on the nodes' clocks (requested {} UTC, completed {} UTC); {elapsed_ms} ms \
                     until twinctl saw it",
                    utc_time_text(rq.unix_ms),
                    utc_time_text(c.unix_ms)
                )),
                _ => r.details.push(format!("{elapsed_ms} ms until twinctl saw it")),
            }
            r
        }
        Outcome::Aborted => report(
            Outcome::Aborted,
            format!(
                "switchover aborted: {} did not hand over within its switchover_timeout_ms and carries on as primary",
                names[p]
            ),
        ),
        Outcome::Refused => {
            let who = seen
                .refused
                .as_ref()
                .map_or(names[p].clone(), |(i, _)| names[*i].clone());
            report(
                Outcome::Refused,
                format!("switchover refused: {who} reports that the primary refused it"),
            )
        }
        Outcome::TimedOut => report(
            Outcome::TimedOut,
            format!(
                "no outcome within {} ms: neither switchover_completed nor switchover_aborted was seen (see `twinctl \
                 events`)",
                wait.as_millis()
            ),
        ),
        Outcome::NotConfirmed | Outcome::Unreachable => report(outcome, String::new()),
    };
    r.details.extend(delay_text);
    r.details.push(format!("now: {}", now_text.join("; ")));
    r.json = base.take();
    r
}
