//! `twinctl watch`: the pair live, redrawn in place on a plain ANSI terminal (works over
//! ssh and in tmux), until `q` or Ctrl-C.
//!
//! One thread per node asks its console (status, new journal events) every interval and
//! leaves the result in a shared slot; the main thread only draws and handles keys, so a
//! node that is slow to answer never makes the keyboard or the other node's column lag.
//!
//! The keys are read on a thread of their own too: a blocking read, which also notices
//! the terminal going away (tmux killed, ssh dropped: the read returns end of input or an
//! error), and then ends the view (exit 3) instead of leaving a process behind.
//!
//! The terminal is put in raw mode on the alternate screen, and restored on every way
//! out: `q`, Ctrl-C (a key in raw mode), SIGTERM/SIGINT/SIGHUP (a handler wakes the view;
//! if the terminal does not take the restore within `EXIT_GRACE`, the handler ends the
//! process), an error (the guard's `Drop`) and a panic (the panic hook restores before the
//! message is printed, so it is readable).

use crate::client::Client;
use crate::health::{assess, recent_alarm, NodeView};
use crate::model::Event;
use crate::render::{group_table, line_text, pair_table, span, utc_time_text, verdict_lines, Line, Style};
use crate::targets::Target;
use crate::{exit, Failure};
use crossterm::{cursor, execute, queue, terminal};
use std::collections::VecDeque;
use std::io::{self, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use twinloop::io::schema::{EventKind, Role};

/// Journal events each poller keeps for the view.
const EVENTS_KEPT: usize = 200;
/// Events shown from before the view started.
const EVENTS_INITIAL: u64 = 20;
/// How long a role change stays highlighted.
const HIGHLIGHT_FOR: Duration = Duration::from_secs(10);
/// Role changes listed at the top.
const CHANGES_SHOWN: usize = 3;
/// How often a node with alarms has its journal read for their age.
const ALARM_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How often, between frames, the view looks at the terminal's size (a resize is redrawn
/// at once).
const SIZE_CHECK_EVERY: Duration = Duration::from_millis(100);
/// After SIGTERM, SIGINT or SIGHUP: how long the view has to restore the terminal and
/// exit before the signal handler ends the process (a write to a terminal that does not
/// drain, e.g. a stalled ssh connection, blocks).
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// Set by the panic hook, so that the main loop stops drawing on a restored terminal.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// What wakes the view between frames.
enum Wake {
    /// `q`, `Q` or Ctrl-C.
    Quit,
    /// SIGTERM, SIGINT or SIGHUP.
    Signal,
    /// The terminal's input ended or failed: the terminal is gone (hung up).
    Lost(String),
}

/// What a poller leaves for the view.
struct Slot {
    view: NodeView,
    events: VecDeque<Event>,
}

/// Raw mode and the alternate screen are on.
static TERMINAL_TAKEN: AtomicBool = AtomicBool::new(false);

/// Restores the terminal, once: leaving the alternate screen twice would jump the cursor
/// back over what was printed in between (the panic message).
fn restore_terminal() {
    if !TERMINAL_TAKEN.swap(false, Ordering::SeqCst) {
        return;
    }
    let mut out = io::stdout();
    let _ = execute!(
        out,
        crossterm::style::ResetColor,
        cursor::Show,
        terminal::LeaveAlternateScreen
    );
    let _ = terminal::disable_raw_mode();
}

/// Raw mode and the alternate screen while it lives.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> io::Result<TerminalGuard> {
        terminal::enable_raw_mode()?;
        // From here on, `Drop` undoes whatever succeeded.
        TERMINAL_TAKEN.store(true, Ordering::SeqCst);
        let guard = TerminalGuard;
        execute!(
            io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide,
            terminal::Clear(terminal::ClearType::All)
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Runs the live view until the operator quits; exit code 0.
pub fn run(
    targets: Vec<Target>,
    key_file: Option<&std::path::Path>,
    timeout: Duration,
    interval: Duration,
    alarm_window_ms: u64,
) -> Result<u8, Failure> {
    if !io::stdout().is_terminal() {
        return Err(Failure::usage(
            "watch needs a terminal on standard output; for scripts use `twinctl status --json` (or `events --follow \
             --json`)",
        ));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (wake_tx, wake) = mpsc::channel();
    {
        let (stop, wake_tx) = (stop.clone(), wake_tx.clone());
        // SIGTERM, SIGINT and SIGHUP (ssh gone) end the view cleanly; in raw mode Ctrl-C
        // is a key. The handler runs on a thread of its own (ctrlc's), so it can also
        // make sure that the process ends: the view may be stuck writing to a terminal
        // that takes nothing.
        ctrlc::set_handler(move || {
            stop.store(true, Ordering::SeqCst);
            let _ = wake_tx.send(Wake::Signal);
            std::thread::sleep(EXIT_GRACE);
            // Still here: give up on the terminal. Raw mode off does not wait for output
            // to drain; leaving the alternate screen would be a write, which may block.
            let _ = terminal::disable_raw_mode();
            std::process::exit(i32::from(exit::USAGE));
        })
        .map_err(|e| Failure::usage(format!("cannot install the signal handler: {e}")))?;
    }
    let keyboard = keyboard().map_err(|e| Failure::usage(format!("cannot read the keyboard: {e}")))?;
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        restore_terminal();
        previous_hook(info);
    }));

    let slots: Vec<Arc<Mutex<Slot>>> = targets
        .iter()
        .map(|t| {
            let name = t.name.clone().unwrap_or_else(|| t.addr.to_string());
            Arc::new(Mutex::new(Slot {
                view: NodeView::failed(t.addr, name, "not asked yet".into()),
                events: VecDeque::new(),
            }))
        })
        .collect();
    // The pollers share one tick, so that the columns show the nodes at the same moment
    // (a frame counter read a period apart would look like a lag).
    let ticks = Ticks {
        start: Instant::now(),
        interval,
    };
    for (target, slot) in targets.iter().zip(&slots) {
        let mut client = Client::new(target.addr, timeout);
        // With the node's console key (read best effort, as `status` does), the view's
        // connection authenticates: a node whose other console slots are all taken still
        // answers it on the slot it keeps for an operator.
        let file = key_file
            .map(std::path::Path::to_path_buf)
            .or_else(|| target.key_file.clone());
        client.set_key(file.and_then(|f| crate::targets::read_key(&f).ok()));
        let (slot, stop) = (slot.clone(), stop.clone());
        std::thread::spawn(move || poll_node(client, &slot, &stop, ticks, alarm_window_ms));
    }

    let guard = TerminalGuard::enter().map_err(|e| Failure::usage(format!("cannot set up the terminal: {e}")))?;
    std::thread::spawn(move || read_keys(keyboard, &wake_tx));
    let result = view_loop(&slots, &stop, &wake, interval);
    stop.store(true, Ordering::SeqCst);
    drop(guard);
    // The pollers may be inside a request; they end with the process.
    result.map(|()| exit::OK)
}

/// Where the keys come from: standard input if it is the terminal, else the process's
/// terminal (as crossterm's raw mode, which applies to the same one).
fn keyboard() -> io::Result<Box<dyn Read + Send>> {
    if io::stdin().is_terminal() {
        Ok(Box::new(io::stdin()))
    } else {
        Ok(Box::new(std::fs::File::open("/dev/tty")?))
    }
}

/// The keyboard thread: reports a quit key, or the terminal gone, and ends.
///
/// Not crossterm's `event::poll`/`event::read`: on a hung-up terminal, whose reads return
/// end of input at once, their reader reads again forever (a busy loop that never returns
/// to the caller, so neither the view nor a signal could end it). A blocking read here
/// returns that end of input, or an error, and the view ends.
fn read_keys(mut input: impl Read, wake: &Sender<Wake>) {
    let mut keys = Keys::default();
    let mut buffer = [0u8; 1024];
    loop {
        let lost = match input.read(&mut buffer) {
            Ok(0) => "its input ended".to_string(),
            Ok(n) => {
                if keys.quit_in(&buffer[..n]) {
                    let _ = wake.send(Wake::Quit);
                    return;
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => format!("reading it failed: {e}"),
        };
        let _ = wake.send(Wake::Lost(lost));
        return;
    }
}

/// Finds the quit keys in what the terminal sends in raw mode: `q`, `Q` (also with Alt,
/// as before) and Ctrl-C (the byte 0x03); not the letters inside the escape sequences of
/// the arrow and function keys.
#[derive(Default)]
struct Keys {
    escape: Escape,
}

/// Where in an escape sequence the last byte left the parser.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum Escape {
    /// Not in one.
    #[default]
    None,
    /// After ESC.
    Start,
    /// After ESC `[`: parameters up to a final byte.
    Csi,
    /// After ESC `O`: one more byte.
    Ss3,
}

impl Keys {
    /// Whether `bytes` (one read) hold a quit key.
    fn quit_in(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            self.escape = match (self.escape, byte) {
                (_, 0x03) => return true,
                (_, 0x1b) => Escape::Start,
                (Escape::Start, b'[') => Escape::Csi,
                (Escape::Start, b'O') => Escape::Ss3,
                (Escape::Csi, 0x20..=0x3f) => Escape::Csi,
                (Escape::None | Escape::Start, b'q' | b'Q') => return true,
                _ => Escape::None,
            };
        }
        // An ESC that ends a read is the Esc key itself.
        if self.escape == Escape::Start {
            self.escape = Escape::None;
        }
        false
    }
}

/// The view ends because the terminal went away (exit 3).
fn terminal_lost(why: &str) -> Failure {
    Failure::usage(format!("the terminal went away ({why}); watch ended"))
}

/// After SIGTERM, SIGINT or SIGHUP: the operator's quit, unless the terminal is gone (a
/// hang-up sends SIGHUP, maybe before the keyboard thread sees the end of input).
fn signalled() -> Result<(), Failure> {
    if io::stdout().is_terminal() {
        Ok(())
    } else {
        Err(terminal_lost("hung up"))
    }
}

/// A common schedule: instants `start + k × interval`.
#[derive(Clone, Copy)]
struct Ticks {
    start: Instant,
    interval: Duration,
}

impl Ticks {
    /// The first tick after now.
    fn next(&self) -> Instant {
        let period = self.interval.as_nanos().max(1);
        let k = self.start.elapsed().as_nanos() / period + 1;
        self.start + Duration::from_nanos(u64::try_from(k * period).unwrap_or(u64::MAX))
    }
}

/// The poller of one node: status, then the journal's new events, at every tick.
fn poll_node(mut client: Client, slot: &Mutex<Slot>, stop: &AtomicBool, ticks: Ticks, alarm_window_ms: u64) {
    let addr = client.addr();
    // (next `since`, boot id) in the node's journal.
    let mut cursor: Option<(u64, u64)> = None;
    let mut recent: Option<String> = None;
    let mut alarm_check: Option<(Instant, u64)> = None;
    while !stop.load(Ordering::SeqCst) {
        let view = match client.status_with_raw() {
            Ok((status, raw)) => {
                if cursor.is_none_or(|(_, boot)| boot != status.boot_id) {
                    // First contact, or the node restarted: show its last few events.
                    cursor = Some((status.events_last_seq.saturating_sub(EVENTS_INITIAL), status.boot_id));
                    if let Ok(mut s) = slot.lock() {
                        s.events.clear();
                    }
                }
                let mut new_events = Vec::new();
                if let Some((since, boot)) = cursor {
                    if let Ok(page) = client.events(since, 1000) {
                        if page.boot_id == boot {
                            cursor = Some((page.next_since, boot));
                            new_events = page.events;
                        }
                    }
                }
                // An alarm's age needs the journal: read it when alarms appear, and now
                // and then while any are counted, so that an old one stops counting.
                let due =
                    alarm_check.is_none_or(|(at, count)| count != status.alarms || at.elapsed() >= ALARM_CHECK_EVERY);
                if status.alarms == 0 {
                    recent = None;
                } else if due {
                    recent = recent_alarm(&mut client, &status, alarm_window_ms)
                        .unwrap_or_else(|e| Some(format!("unknown (the journal could not be read: {e})")));
                    alarm_check = Some((Instant::now(), status.alarms));
                }
                if let Ok(mut s) = slot.lock() {
                    s.events.extend(new_events);
                    while s.events.len() > EVENTS_KEPT {
                        s.events.pop_front();
                    }
                }
                let mut view = NodeView::answered(addr, status, raw);
                view.recent_alarm = recent.clone();
                view
            }
            Err(e) => {
                let name = slot.lock().map(|s| s.view.name.clone()).unwrap_or_default();
                NodeView::failed(addr, name, e.to_string())
            }
        };
        if let Ok(mut s) = slot.lock() {
            s.view = view;
        }
        // Pacing: the view's refresh period (a tick missed while a request hung is
        // skipped, not made up).
        std::thread::sleep(ticks.next().saturating_duration_since(Instant::now()));
    }
}

/// A role change, for the list at the top.
struct Change {
    at: Instant,
    text: String,
}

/// Remembers each node's last known role, to notice and highlight changes.
struct RoleTracker {
    roles: Vec<Option<Role>>,
    changed_at: Vec<Option<Instant>>,
    changes: VecDeque<Change>,
}

impl RoleTracker {
    fn new(count: usize) -> RoleTracker {
        RoleTracker {
            roles: vec![None; count],
            changed_at: vec![None; count],
            changes: VecDeque::new(),
        }
    }

    fn update(&mut self, views: &[NodeView], events: &[(usize, Event)], now: Instant) {
        for (i, view) in views.iter().enumerate() {
            let Some(status) = &view.status else { continue };
            // A node unreachable for a while keeps its last known role: coming back as
            // something else is a change too.
            if let Some(old) = &self.roles[i] {
                if *old != status.role {
                    self.changed_at[i] = Some(now);
                    // The journal has the change itself (the status may already show a
                    // later transition of the new role, e.g. `backup_in_sync`).
                    let change = events.iter().rev().find(|(node, e)| {
                        *node == i
                            && e.kind == EventKind::Transition
                            && e.role == Some(status.role)
                            && e.previous_role != e.role
                    });
                    let (why, at_ms) = match (change, &status.last_transition) {
                        (Some((_, e)), _) => (format!(" ({})", e.name), e.unix_ms),
                        (None, Some(t)) => (format!(" ({})", t.reason), t.unix_ms),
                        (None, None) => (String::new(), status.unix_ms),
                    };
                    let role = if status.is_primary() {
                        "PRIMARY"
                    } else {
                        status.role.name()
                    };
                    self.changes.push_back(Change {
                        at: now,
                        text: format!(
                            "ROLE CHANGE {} UTC: {} {old} -> {role}{why}, epoch {}",
                            utc_time_text(at_ms),
                            view.name,
                            crate::model::epoch_text(status.epoch)
                        ),
                    });
                    while self.changes.len() > CHANGES_SHOWN {
                        self.changes.pop_front();
                    }
                }
            }
            self.roles[i] = Some(status.role);
        }
    }

    fn highlighted(&self, now: Instant) -> Vec<bool> {
        self.changed_at
            .iter()
            .map(|at| at.is_some_and(|at| now.duration_since(at) < HIGHLIGHT_FOR))
            .collect()
    }
}

fn view_loop(
    slots: &[Arc<Mutex<Slot>>],
    stop: &AtomicBool,
    wake: &Receiver<Wake>,
    interval: Duration,
) -> Result<(), Failure> {
    let mut tracker = RoleTracker::new(slots.len());
    let mut out = io::stdout();
    let draw_failed = |e: io::Error| {
        if io::stdout().is_terminal() {
            Failure::usage(format!("cannot draw on the terminal: {e}"))
        } else {
            terminal_lost(&format!("writing to it failed: {e}"))
        }
    };
    let panic_after_draw = std::env::var_os("TWINCTL_TEST_PANIC_AFTER_DRAW").is_some();
    let color = std::env::var_os("NO_COLOR").is_none();
    loop {
        if PANICKED.load(Ordering::SeqCst) {
            return Ok(());
        }
        if stop.load(Ordering::SeqCst) {
            return signalled();
        }
        let now = Instant::now();
        let (views, events) = snapshot(slots);
        tracker.update(&views, &events, now);
        let (width, height) = terminal::size().map_err(draw_failed)?;
        let lines = screen(
            &views,
            &events,
            &tracker,
            now,
            interval,
            (usize::from(width), usize::from(height)),
        );
        draw(&mut out, &lines, color, usize::from(width), usize::from(height)).map_err(draw_failed)?;
        // A test hook: proves that a panic leaves the terminal usable.
        assert!(!panic_after_draw, "TWINCTL_TEST_PANIC_AFTER_DRAW is set");

        let next = now + interval;
        loop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match wake.recv_timeout(left.min(SIZE_CHECK_EVERY)) {
                Ok(Wake::Quit) => return Ok(()),
                Ok(Wake::Signal) => return signalled(),
                Ok(Wake::Lost(why)) => return Err(terminal_lost(&why)),
                // The signal handler keeps a sender: not expected.
                Err(RecvTimeoutError::Disconnected) => return Err(terminal_lost("the keyboard thread ended")),
                Err(RecvTimeoutError::Timeout) => {
                    if terminal::size().is_ok_and(|size| size != (width, height)) {
                        break;
                    }
                }
            }
        }
    }
}

/// The views and the merged recent events (oldest first) of every node, copied out of
/// the slots so that no lock is held while drawing.
fn snapshot(slots: &[Arc<Mutex<Slot>>]) -> (Vec<NodeView>, Vec<(usize, Event)>) {
    let mut views = Vec::with_capacity(slots.len());
    let mut events = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let s = slot.lock().unwrap_or_else(|e| e.into_inner());
        views.push(s.view.clone());
        events.extend(s.events.iter().cloned().map(|e| (i, e)));
    }
    events.sort_by_key(|(i, e)| (e.unix_ms, *i, e.seq));
    (views, events)
}

/// The whole screen as lines.
fn screen(
    views: &[NodeView],
    events: &[(usize, Event)],
    tracker: &RoleTracker,
    now: Instant,
    interval: Duration,
    (width, height): (usize, usize),
) -> Vec<Line> {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut lines: Vec<Line> = vec![vec![
        span("twinctl watch", Style::Bold),
        span(
            format!(
                "  {} node(s), every {} ms, {} UTC   q: quit",
                views.len(),
                interval.as_millis(),
                &utc_time_text(unix_ms)[..8]
            ),
            Style::Dim,
        ),
    ]];
    let verdict = assess(views);
    lines.extend(verdict_lines(&verdict));
    for change in &tracker.changes {
        let style = if now.duration_since(change.at) < HIGHLIGHT_FOR {
            Style::Highlight
        } else {
            Style::Bold
        };
        lines.push(vec![span(change.text.clone(), style)]);
    }
    lines.push(Vec::new());
    lines.extend(pair_table(views, &tracker.highlighted(now), Some(width)));
    let group = group_table(views);
    if !group.is_empty() {
        lines.push(Vec::new());
        lines.extend(group);
    }
    lines.push(Vec::new());
    lines.push(vec![span("events (newest last)", Style::Bold)]);
    let room = height.saturating_sub(lines.len());
    let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
    let name_width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    for (i, e) in &events[events.len().saturating_sub(room)..] {
        let style = match e.kind {
            EventKind::Transition => Style::Bold,
            EventKind::Alarm => Style::Bad,
            _ => Style::Plain,
        };
        lines.push(vec![
            span(format!("{} ", utc_time_text(e.unix_ms)), Style::Dim),
            span(format!("{:<name_width$} ", names[*i]), Style::Plain),
            span(format!("{:<10} {:<24} ", e.kind, e.name), style),
            span(e.message.clone(), Style::Plain),
        ]);
    }
    lines
}

/// Draws the lines from the top, each cut to the width, and clears the rest.
fn draw(out: &mut impl Write, lines: &[Line], color: bool, width: usize, height: usize) -> io::Result<()> {
    let mut frame = Vec::with_capacity(16 * 1024);
    for (row, line) in lines.iter().take(height).enumerate() {
        queue!(
            frame,
            cursor::MoveTo(0, row as u16),
            crossterm::style::Print(line_text(line, color, Some(width))),
            terminal::Clear(terminal::ClearType::UntilNewLine)
        )?;
    }
    if lines.len() < height {
        queue!(
            frame,
            cursor::MoveTo(0, lines.len() as u16),
            terminal::Clear(terminal::ClearType::FromCursorDown)
        )?;
    }
    // One write per frame: no half-drawn screen.
    out.write_all(&frame)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quit_keys_but_not_inside_escape_sequences() {
        for quit in [&b"q"[..], b"Q", b"\x03", b"abcq", b"\x1bq", b"\x1b[A\x03"] {
            assert!(Keys::default().quit_in(quit), "{quit:?}");
        }
        // Arrows, F1, F5, Shift+Tab, Esc alone.
        for other in [
            &b"x"[..],
            b"\x1b[A",
            b"\x1bOP",
            b"\x1b[15~",
            b"\x1b[Z",
            b"\x1b",
            b"\x1b[1;5Q",
        ] {
            assert!(!Keys::default().quit_in(other), "{other:?}");
        }
        // A sequence split over two reads.
        let mut keys = Keys::default();
        assert!(!keys.quit_in(b"\x1b[1;"));
        assert!(!keys.quit_in(b"5Q"));
        assert!(keys.quit_in(b"q"));
        // Esc at the end of a read is the key: a `q` after it quits.
        let mut keys = Keys::default();
        assert!(!keys.quit_in(b"\x1b"));
        assert!(keys.quit_in(b"q"));
    }
}
