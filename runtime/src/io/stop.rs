//! The stop policy: a stop request (a signal or a [`super::StopHandle`]) hands a primary
//! over to a following backup first, within a deadline; every exit runs the hook a last
//! time with `TWINLOOP_ROLE=stopped`.

use super::*;

impl<A: App> Shell<A> {
    /// Acts on stop requests; returns how to exit once it is time.
    pub(super) fn check_stop(&mut self) -> Result<Option<Exit>, ShellError> {
        if let Some(exit) = self.exit {
            return Ok(Some(exit));
        }
        let requests = self.stop_requests.load(Ordering::SeqCst);
        if requests == self.stop_seen {
            if let Stopping::HandingOver { deadline } = self.stopping {
                if self.clock.now() >= deadline {
                    self.shell_event(
                        true,
                        "stop_handover_timed_out",
                        "the handover did not complete within shutdown.switchover_wait_ms: stopping anyway",
                    );
                    return Ok(Some(Exit::SwitchoverTimedOut));
                }
            }
            return Ok(None);
        }
        self.stop_seen = requests;
        self.notifier.stopping(if requests >= 2 {
            "second stop request"
        } else {
            "stop requested"
        });
        if self.stopping != Stopping::Running || requests >= 2 {
            self.shell_event(true, "stop_forced", "second stop request: stopping now");
            return Ok(Some(Exit::Forced));
        }
        let status = self.node.status();
        if status.role != Role::Primary {
            let message = format!("stop requested: stopping ({})", names::role(status.role));
            self.shell_event(false, "stop_requested", &message);
            return Ok(Some(Exit::Stopped));
        }
        if !self.config.shutdown.switchover || status.sync != SyncState::Paired {
            let why = if self.config.shutdown.switchover {
                "no backup follows"
            } else {
                "shutdown.switchover is off"
            };
            let message = format!("stop requested: stopping the primary without handover ({why})");
            self.shell_event(false, "stop_requested", &message);
            return Ok(Some(Exit::Stopped));
        }
        let now = self.clock.now();
        // Stopping before the command: the transitions it queues tell the hook so.
        self.stopping = Stopping::HandingOver {
            deadline: now + Duration::from_millis(self.config.shutdown.switchover_wait_ms),
        };
        self.shell_event(
            false,
            "stop_requested",
            "stop requested: handing over to the backup first",
        );
        let reply = self.node.handle_command(now, Command::Switchover);
        self.drain()?;
        match reply {
            CommandReply::Started => Ok(self.exit),
            CommandReply::Refused(reason) => {
                let message = format!(
                    "switchover refused ({}: {}): stopping without handover",
                    names::refuse(reason),
                    names::refuse_text(reason)
                );
                self.shell_event(true, "stop_handover_refused", &message);
                Ok(Some(Exit::SwitchoverRefused(reason)))
            }
            CommandReply::Forwarded => Ok(Some(Exit::Stopped)),
        }
    }

    /// Runs the hook a last time with `TWINLOOP_ROLE=stopped`, whatever the way out (a
    /// stop, a second stop, a fatal error), so that a VIP hook releases the address: a
    /// node that exits drives nothing. Bounded: the hooks of the last transitions get
    /// `hook.timeout_ms` to finish (whatever is left is killed or dropped: the stopped
    /// run supersedes them), then the stopped run gets `hook.timeout_ms` — an exit waits
    /// at most 2 × `hook.timeout_ms` for hooks.
    pub(super) fn finish(&mut self, result: &Result<Exit, ShellError>) {
        let timeout = Duration::from_millis(self.config.hook.timeout_ms);
        self.wait_for_hooks(timeout);
        let why = match result {
            Ok(exit) => exit_name(*exit),
            Err(_) => "fatal_error",
        };
        let job = HookJob {
            env: vec![
                ("TWINLOOP_NODE_ID", self.node.config().node_id.to_string()),
                ("TWINLOOP_NODE_NAME", self.name.clone()),
                ("TWINLOOP_ROLE", "stopped".into()),
                ("TWINLOOP_SYNC", "none".into()),
                ("TWINLOOP_EPOCH", self.node.epoch().to_string()),
                ("TWINLOOP_FRAME", self.node.frame().to_string()),
                ("TWINLOOP_REASON", format!("stopped:{why}")),
                ("TWINLOOP_PREVIOUS_ROLE", names::role(self.previous_role).into()),
                ("TWINLOOP_STOPPING", "1".into()),
                ("TWINLOOP_PEERS", self.peers_env()),
            ],
            summary: format!("role stopped, reason stopped:{why}"),
        };
        let now = self.clock.to_std(self.clock.now());
        self.hooks.enqueue(job, now, &mut self.hook_outcomes);
        self.wait_for_hooks(timeout);
        self.poll_hooks();
        match result {
            Ok(exit) => log::info(format_args!("stopped ({exit:?})")),
            Err(e) => log::error(format_args!("stopped (fatal error: {e})")),
        }
        let (name, message) = match result {
            Ok(exit) => ("stopped", format!("stopped ({})", exit_name(*exit))),
            Err(e) => ("stopped_fatal", format!("stopped (fatal error: {e})")),
        };
        self.journal_push(schema::Event::new(EventKind::Shell.into(), name, &message));
        // The last line written and synced before the process exits.
        if let Some(file) = &mut self.journal_file {
            file.close();
        }
    }

    /// Lets running hooks finish for at most `timeout` (polled every 5 ms: the loop has
    /// stopped, nothing else waits), then abandons what is left.
    fn wait_for_hooks(&mut self, timeout: Duration) {
        let deadline = self.clock.now() + timeout;
        while self.hooks.busy() && self.clock.now() < deadline {
            self.poll_hooks();
            std::thread::sleep(Duration::from_millis(5));
        }
        let now = self.clock.to_std(self.clock.now());
        self.hooks.abandon(now, &mut self.hook_outcomes);
    }
}

/// The `TWINLOOP_REASON` suffix of the last hook run: how the node exits.
pub(super) fn exit_name(exit: Exit) -> &'static str {
    match exit {
        Exit::Stopped => "stopped",
        Exit::HandedOver => "handed_over",
        Exit::SwitchoverRefused(_) => "switchover_refused",
        Exit::SwitchoverAborted => "switchover_aborted",
        Exit::SwitchoverTimedOut => "switchover_timed_out",
        Exit::Forced => "forced",
    }
}
