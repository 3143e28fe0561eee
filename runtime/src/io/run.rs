//! The event loop: one turn reads every socket a bounded number of datagrams at a time
//! (control before bulk), hands frames and messages to the core, serves the console
//! within its time share, and sleeps until the core's next deadline or the next event.

use super::*;

impl<A: App> Shell<A> {
    /// Runs until a stop request has been carried out, or a fatal error. Every way out
    /// runs the hook a last time with `TWINLOOP_ROLE=stopped` (see `stop.rs`, `Shell::finish`).
    pub fn run(mut self) -> Result<Exit, ShellError> {
        let result = self.run_loop();
        self.finish(&result);
        result
    }

    pub(super) fn run_loop(&mut self) -> Result<Exit, ShellError> {
        let mut events = Events::with_capacity(256);
        batch::RecvBatch::prepare();
        // The deadline whose lateness the last wake-up measured (see below): not again.
        let mut measured: Option<Instant> = None;
        loop {
            let now = self.clock.now();
            if let Some(due) = self.node.poll_timeout().filter(|&t| t <= now) {
                // A deadline passed while the loop worked (no sleep towards it between).
                if measured != Some(due) && self.note_lateness(now, now.saturating_since(due)) {
                    self.read_backlog()?;
                }
                self.node.handle_timeout(self.clock.now());
                self.drain()?;
            }
            self.poll_hooks();
            let now = self.clock.now();
            // From the loop itself: a loop that stops turning stops the watchdog pings.
            if self.notifier.enabled() {
                let status = self.node.status();
                self.notifier
                    .turn(now, status.role, status.sync, status.epoch, status.frame);
            }
            if self.frame_rates.due(now) {
                // Once a second: the counters are read only then, not at every wake-up.
                self.frame_rates.tick(now, self.frames_stale(), self.frames_rejected());
                // The thread's CPU clock too (a system call): once a second, not per cycle.
                self.counters.cpu_share.tick(now, thread_cpu_ns());
            }
            if let Some(exit) = self.check_stop()? {
                return Ok(exit);
            }

            let timeout = self.next_wake();
            // The core's deadline the loop sleeps towards.
            let armed = self.node.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ShellError::Poll(e));
            }
            // How late the loop woke for the deadline it slept towards: measured at the
            // wake-up itself, whatever handling the datagrams that wait then does to the
            // core's deadlines (a backup held up 60 ms reads commits that push its
            // heartbeat and silence deadlines on: judged after them, the stall showed as
            // no late wake at all).
            let woke = self.clock.now();
            measured = armed.filter(|&t| t <= woke);
            let held_up = measured.is_some_and(|due| self.note_lateness(woke, woke.saturating_since(due)));
            for event in events.iter() {
                let token = event.token();
                match token {
                    TOKEN_WAKER => {}
                    TOKEN_TIMER => {
                        if let Some(timer) = &mut self.timer {
                            timer.fired();
                        }
                    }
                    TOKEN_FRAMES => self.frames_ready = true,
                    Token(t) if (TOKEN_LINKS..TOKEN_LINKS + 2 * self.links.len()).contains(&t) => {
                        let i = (t - TOKEN_LINKS) / 2;
                        self.links[i].ready[(t - TOKEN_LINKS) % 2] = true;
                    }
                    TOKEN_SIGNALS => self.read_signals(),
                    TOKEN_OUTPUTS => self.read_acks()?,
                    _ if self.metrics.as_mut().is_some_and(|m| m.ready(token)) => {}
                    _ if self.hmi.as_mut().is_some_and(|h| h.ready(token)) => {}
                    _ => {
                        if let Some(console) = &mut self.console {
                            if console.owns(token) {
                                console.ready(token, self.clock.now(), self.poll.registry());
                            }
                        }
                    }
                }
            }
            if held_up {
                // The loop was held up (the host descheduled it): datagrams that arrived
                // meanwhile may be waiting, a primary's answer to our probe among them.
                // Read them all before the core judges a silence by the clock.
                self.read_backlog()?;
            } else {
                self.read_sockets()?;
            }
            self.console_turn()?;
            self.metrics_turn();
            self.hmi_turn();
        }
    }

    /// Counts a deadline handled `late` (at `now`); true when later than [`LATE_WAKE`]:
    /// the loop was held up, and what arrived meanwhile is to be read first
    /// ([`Shell::read_backlog`]).
    fn note_lateness(&mut self, now: Instant, late: Duration) -> bool {
        self.counters.note_lateness(now, late);
        self.lateness.observe(late);
        let held_up = late > LATE_WAKE;
        if held_up {
            self.counters.late_wakes += 1;
        }
        held_up
    }

    /// The console's share of one loop turn: bounded housekeeping, then requests while
    /// the turn's budget lasts ([`console::REQUESTS_PER_TURN`], [`console::TURN_BUDGET`])
    /// and no deadline of the core is due; what is left waits for the next turn.
    pub(super) fn console_turn(&mut self) -> Result<(), ShellError> {
        let start = self.clock.now();
        let Some(console) = &mut self.console else {
            return Ok(());
        };
        console.service(start, self.poll.registry());
        let budget = self.console_budget(start);
        self.console_budget_at = start;
        // A turn starts only with a full turn's worth of budget: the share holds however
        // often the loop wakes (a wake-up per frame would otherwise each spend a little).
        let full_turn = u64::try_from(console::TURN_BUDGET.as_nanos()).unwrap_or(u64::MAX);
        let mut cpu_start = None;
        let mut answered_until = None;
        for _ in 0..console::REQUESTS_PER_TURN {
            let now = self.clock.now();
            if now.saturating_since(start) >= console::TURN_BUDGET
                || now.saturating_since(start).as_nanos() >= u128::from(budget)
                || budget < full_turn
                || self.node.poll_timeout().is_some_and(|t| t <= now)
            {
                break;
            }
            let Some(console) = &mut self.console else {
                break;
            };
            if !console.has_work(now) {
                break;
            }
            // From before the next line is taken (reading it is part of the cost), and
            // only on turns with work: no system call is added to a quiet cycle.
            cpu_start.get_or_insert_with(thread_cpu_ns);
            let Some(line) = console.next_line(now, self.poll.registry()) else {
                break;
            };
            self.console_request(line)?;
            answered_until = Some(self.clock.now());
        }
        let charged = answered_until.map_or(0, |t| {
            u64::try_from(t.saturating_since(start).as_nanos()).unwrap_or(u64::MAX)
        });
        self.console_budget_ns = budget.saturating_sub(charged);
        if let Some(cpu) = cpu_start {
            let spent = thread_cpu_ns().saturating_sub(cpu);
            self.counters.console_turn_cpu_max_ns = self.counters.console_turn_cpu_max_ns.max(spent);
        }
        let spent = u64::try_from(self.clock.now().saturating_since(start).as_nanos()).unwrap_or(u64::MAX);
        self.counters.console_turn_max_ns = self.counters.console_turn_max_ns.max(spent);
        Ok(())
    }

    /// The console's time budget at `now`: what was left, plus its share of the time
    /// since, up to [`console::SHARE_BURST`].
    pub(super) fn console_budget(&self, now: Instant) -> u64 {
        let earned = u64::try_from(now.saturating_since(self.console_budget_at).as_nanos()).unwrap_or(u64::MAX) / 100
            * console::TIME_SHARE_PERCENT;
        let cap = u64::try_from(console::SHARE_BURST.as_nanos()).unwrap_or(u64::MAX);
        self.console_budget_ns.saturating_add(earned).min(cap)
    }

    /// When the console, having work, may next take a request: now, or once its time
    /// budget holds a fair turn's worth again.
    pub(super) fn console_ready_at(&self, now: Instant) -> Option<Instant> {
        let console = self.console.as_ref()?;
        if !console.has_work(now) {
            return None;
        }
        let want = u64::try_from(console::TURN_BUDGET.as_nanos()).unwrap_or(u64::MAX);
        let have = self.console_budget(now);
        if have >= want {
            return Some(now);
        }
        let missing_ns = (want - have).saturating_mul(100) / console::TIME_SHARE_PERCENT;
        Some(now + Duration::from_nanos(missing_ns))
    }

    /// Reads the signals the shell handles itself (SIGINT, SIGTERM: a stop request;
    /// SIGHUP: logged and ignored; see [`signals`]).
    pub(super) fn read_signals(&mut self) {
        // Bounded: the pending set holds each signal once.
        for _ in 0..8 {
            match self.signals.as_mut().and_then(signals::Signals::read) {
                Some(caught) if caught.stops() => {
                    let message = format!(
                        "{} received: stopping (a second SIGINT or SIGTERM stops at once)",
                        caught.name()
                    );
                    self.shell_event(false, "signal_stop", &message);
                    // As a StopHandle does; `check_stop` carries it out.
                    self.stop_requests.fetch_add(1, Ordering::SeqCst);
                }
                Some(caught) => {
                    let message = format!(
                        "{} received: ignored (the node reloads nothing; restart it to apply a new configuration, SIGTERM or SIGINT to stop)",
                        caught.name()
                    );
                    self.shell_event(false, "signal_ignored", &message);
                }
                None => break,
            }
        }
    }

    /// Reads what the readiness events announced.
    pub(super) fn read_sockets(&mut self) -> Result<(), ShellError> {
        // Frames first: a commit read before the frame it commits (both already
        // queued) would make the backup fetch a payload it has. Then control, which
        // must not wait behind chunks; a frame is one small datagram per cycle.
        self.read_frames()?;
        for i in 0..self.links.len() {
            self.read_link(i, TrafficClass::Control)?;
        }
        for i in 0..self.links.len() {
            self.read_link(i, TrafficClass::Bulk)?;
        }
        Ok(())
    }

    /// After a late wake-up: reads every socket whether or not an event announced it,
    /// and the frames and control sockets on until they are empty or
    /// [`BACKLOG_READS`] datagrams each have been read. A turn's worth is not enough: a
    /// node thawed after 200 ms at a 5 ms heartbeat has about 40 of its peer's
    /// datagrams waiting on each link, more than a turn's 64 with a group's peers or a
    /// frame per millisecond, and the newest say what the peer is now (a starting peer
    /// that has led since).
    pub(super) fn read_backlog(&mut self) -> Result<(), ShellError> {
        self.frames_ready = true;
        for link in &mut self.links {
            link.ready = [true; 2];
        }
        self.read_sockets()?;
        for _ in 1..BACKLOG_READS / READS_PER_TURN {
            let pending = self.frames_ready || self.links.iter().any(|l| l.ready[0]);
            if !pending {
                break;
            }
            self.read_frames()?;
            for i in 0..self.links.len() {
                self.read_link(i, TrafficClass::Control)?;
            }
        }
        Ok(())
    }

    /// How long the loop may sleep. The core's next deadline is also set on the precise
    /// timer, which wakes the loop on time; mio's timeout (whole milliseconds, rounded
    /// up) then only backs it up.
    pub(super) fn next_wake(&mut self) -> Duration {
        let now = self.clock.now();
        let pending = self.frames_ready || self.links.iter().any(|l| l.ready.iter().any(|&r| r));
        let console_at = self.console_ready_at(now);
        if pending || console_at == Some(now) {
            return Duration::ZERO;
        }
        let deadline = self.node.poll_timeout();
        let mut wake = deadline.map_or(Duration::from_millis(100), |t| t.saturating_since(now));
        if let Some(console) = self.console.as_ref().and_then(|c| c.next_deadline(now)) {
            wake = wake.min(console.saturating_since(now));
        }
        if let Some(at) = console_at {
            wake = wake.min(at.saturating_since(now));
        }
        if let (Some(timer), Some(deadline)) = (&mut self.timer, deadline) {
            if !wake.is_zero() {
                match timer.arm(now, deadline) {
                    Ok(()) => wake += Duration::from_millis(1),
                    Err(e) => {
                        log::warn(format_args!(
                            "precise timer failed ({e}): deadlines fire up to 1 ms late"
                        ));
                        self.timer = None;
                    }
                }
            }
        }
        if let Some(interval) = self.hooks.poll_interval() {
            wake = wake.min(interval);
        }
        if let Stopping::HandingOver { deadline } = self.stopping {
            wake = wake.min(deadline.saturating_since(now));
        }
        if let Some(at) = self.metrics.as_ref().and_then(metrics::MetricsServer::next_deadline) {
            wake = wake.min(at.saturating_since(now));
        }
        if let Some(ping) = self.notifier.next_due() {
            wake = wake.min(ping.saturating_since(now));
        }
        wake
    }

    pub(super) fn read_link(&mut self, i: usize, class: TrafficClass) -> Result<(), ShellError> {
        let slot = match class {
            TrafficClass::Control => 0,
            TrafficClass::Bulk => 1,
        };
        for _ in 0..READS_PER_TURN / batch::BATCH {
            if !self.links[i].ready[slot] {
                return Ok(());
            }
            let link = &mut self.links[i];
            let (socket, peer) = match class {
                TrafficClass::Control => (&link.control, link.peer_control),
                TrafficClass::Bulk => (&link.bulk, link.peer_bulk),
            };
            let count = match self.buf.recv(socket) {
                Ok(count) => {
                    // Short of a batch: the socket is empty (see `batch`).
                    link.ready[slot] = count == batch::BATCH;
                    count
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    link.ready[slot] = false;
                    0
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    // Errors queued by ICMP (peer port unreachable) surface here: not fatal.
                    log::debug(format_args!("{}: receive error: {e}", link.name));
                    0
                }
            };
            for k in 0..count {
                let (bytes, from) = self.buf.datagram(k);
                let link = &mut self.links[i];
                // Only the peer's host may speak on a link (the MAC, when configured,
                // is what authenticates; this drops stray traffic early).
                if from.is_none_or(|from| from.ip() != peer.ip()) {
                    link.counters.foreign_source += 1;
                    continue;
                }
                match class {
                    TrafficClass::Control => link.counters.received_control += 1,
                    TrafficClass::Bulk => {
                        link.counters.received_bulk += 1;
                        self.counters.bulk_bytes_received += bytes.len() as u64;
                    }
                }
                let now = self.clock.now();
                self.node.handle_message(now, i as u8, bytes);
                self.drain()?;
            }
        }
        Ok(())
    }

    pub(super) fn read_frames(&mut self) -> Result<(), ShellError> {
        for _ in 0..READS_PER_TURN / batch::BATCH {
            if !self.frames_ready {
                return Ok(());
            }
            let count = match self.buf.recv(&self.frames) {
                Ok(count) => {
                    // Short of a batch: the socket is empty (see `batch`).
                    self.frames_ready = count == batch::BATCH;
                    count
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.frames_ready = false;
                    0
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    log::debug(format_args!("frames: receive error: {e}"));
                    0
                }
            };
            for k in 0..count {
                let (bytes, from) = self.buf.datagram(k);
                if !self.frame_sources.is_empty()
                    && !from.is_some_and(|from| self.frame_sources.iter().any(|s| s.allows(from)))
                {
                    self.counters.frames_foreign_source += 1;
                    continue;
                }
                self.counters.frames_received += 1;
                let now = self.clock.now();
                match io_protocol::decode_frame(bytes) {
                    Ok(frame) => {
                        self.node
                            .handle_source_frame(now, frame.session, frame.number, frame.payload);
                        self.drain()?;
                        self.frame_handling.observe(self.clock.now().saturating_since(now));
                    }
                    Err(error) => {
                        self.counters.frames_rejected += 1;
                        *self
                            .counters
                            .frames_rejected_by
                            .entry(decode_error_name(error))
                            .or_insert(0) += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The snake_case name of an I/O protocol decode error, for counters.
pub(super) fn decode_error_name(error: io_protocol::DecodeError) -> &'static str {
    use io_protocol::DecodeError as E;
    match error {
        E::TooShort => "too_short",
        E::TooLong => "too_long",
        E::BadMagic => "bad_magic",
        E::UnknownVersion(_) => "unknown_version",
        E::UnknownKind(_) => "unknown_kind",
        E::WrongKind(_) => "wrong_kind",
        E::PayloadTooLong(_) => "payload_too_long",
        E::LengthMismatch => "length_mismatch",
        E::BadChecksum => "bad_checksum",
        E::ReservedNotZero => "reserved_not_zero",
        E::FrameZero => "frame_zero",
        E::Unauthenticated => "unauthenticated",
    }
}
