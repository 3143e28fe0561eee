//! What the core tells, told on: transitions, alarms and notices become log lines,
//! journal entries (the console's `events`) and hook runs.

use super::*;

impl<A: App> Shell<A> {
    pub(super) fn on_transition(&mut self, t: Transition) {
        let (reason, cause) = names::reason(t.reason);
        let message = format!(
            "{} {} ({}) epoch {} frame {}: {}",
            if t.role != self.previous_role { "role" } else { "state" },
            names::role(t.role),
            names::sync(t.sync),
            crate::EpochText(t.epoch),
            t.frame,
            names::reason_text(t.reason)
        );
        match t.reason {
            Reason::SwitchoverAborted | Reason::BackupLost | Reason::PrimaryLostWhileJoining => {
                log::warn(format_args!("{message}"))
            }
            _ => log::info(format_args!("{message}")),
        }
        let mut event = schema::Event::new(EventKind::Transition.into(), reason, &message);
        event.role = Some(t.role.into());
        event.sync = Some(t.sync.into());
        event.epoch = Some(t.epoch);
        event.frame = Some(t.frame);
        event.reason = Some(Some(reason.to_string()));
        event.cause = Some(cause.map(str::to_string));
        event.previous_role = Some(self.previous_role.into());
        event.peers = self.group_roles();
        self.journal_push(event);

        let stopping = self.stopping != Stopping::Running;
        let job = HookJob {
            env: vec![
                ("TWINLOOP_NODE_ID", self.node.config().node_id.to_string()),
                ("TWINLOOP_NODE_NAME", self.name.clone()),
                ("TWINLOOP_ROLE", names::role(t.role).into()),
                ("TWINLOOP_SYNC", names::sync(t.sync).into()),
                ("TWINLOOP_EPOCH", t.epoch.to_string()),
                ("TWINLOOP_FRAME", t.frame.to_string()),
                (
                    "TWINLOOP_REASON",
                    cause.map_or(reason.to_string(), |c| format!("{reason}:{c}")),
                ),
                ("TWINLOOP_PREVIOUS_ROLE", names::role(self.previous_role).into()),
                ("TWINLOOP_STOPPING", if stopping { "1" } else { "0" }.into()),
                ("TWINLOOP_PEERS", self.peers_env()),
            ],
            summary: format!("role {}, reason {reason}", names::role(t.role)),
        };
        let now = self.clock.to_std(self.clock.now());
        self.hooks.enqueue(job, now, &mut self.hook_outcomes);
        self.previous_role = t.role;

        if let Stopping::HandingOver { .. } = self.stopping {
            match t.reason {
                Reason::SwitchoverHandedOver => self.exit = Some(Exit::HandedOver),
                Reason::SwitchoverAborted => self.exit = Some(Exit::SwitchoverAborted),
                // Deposed meanwhile: nothing left to hand over.
                Reason::FencedByEpoch | Reason::FencedAtStartup => self.exit = Some(Exit::Stopped),
                _ => {}
            }
        }
    }

    /// A group's peers with their roles as last heard, for a transition's journal entry
    /// (issue 16); `None` for a pair, whose one peer the event need not name.
    fn group_roles(&self) -> Option<Vec<schema::EventPeer>> {
        if self.node.config().peers.is_empty() {
            return None;
        }
        let group = self.node.status().group;
        Some(
            group
                .iter()
                .filter_map(|m| {
                    Some(schema::EventPeer {
                        node_id: m.node_id?.into(),
                        role: m.heard.map(|p| p.role.into()),
                        alive: m.alive,
                        witness: m.witness,
                    })
                })
                .collect(),
        )
    }

    /// `TWINLOOP_PEERS` for a hook: every peer as `id=role`, space-separated, in
    /// configuration order — its role as last heard (`starting`, `primary`, `backup`),
    /// `silent` when it is not heard within the window, `unknown` when never heard. A
    /// pair's one peer too (`2=backup`); empty while a pair's peer was never heard.
    pub(super) fn peers_env(&self) -> String {
        let group = self.node.status().group;
        let mut text = String::new();
        for m in &group {
            let Some(id) = m.node_id else { continue };
            let role = match m.heard {
                None => "unknown".to_string(),
                Some(_) if !m.alive => "silent".to_string(),
                Some(p) => schema::Role::from(p.role).to_string(),
            };
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&format!("{id}={role}"));
        }
        text
    }

    pub(super) fn on_alarm(&mut self, alarm: Alarm) {
        let (name, frame) = names::alarm(alarm);
        let mut message = format!("alarm {name}: {}", names::alarm_text(alarm));
        if let Alarm::SyncKeyMismatch { link, .. } | Alarm::PeerIsSelf { link } = alarm {
            // The core knows the link; the shell knows whom it talks to on it.
            if let Some(l) = self.links.get(usize::from(link)) {
                message.push_str(&format!(" (link {}, peer {})", l.name, l.peer_control));
            }
        }
        log::error(format_args!("{message}"));
        let mut event = schema::Event::new(EventKind::Alarm.into(), name, &message);
        event.frame = frame;
        if let Alarm::CommitLost { last, .. } = alarm {
            event.frame_last = Some(last);
        }
        self.journal_push(event);
    }

    pub(super) fn on_notice(&mut self, notice: Notice) {
        let name = names::notice(notice);
        let mut event = schema::Event::new(EventKind::Notice.into(), name, "");
        let link_name = |i: u8| self.links.get(usize::from(i)).map_or("?".into(), |l| l.name.clone());
        let (warn, message) = match notice {
            Notice::ProbeSent => (true, "the primary is silent: probe sent on every link".to_string()),
            Notice::FalseDeath => (
                false,
                "the probe was answered: the primary is alive (false death)".into(),
            ),
            Notice::LinkUp(i) => {
                event.link = Some(i);
                (false, format!("link {i} ({}) up", link_name(i)))
            }
            Notice::LinkDown(i) => {
                event.link = Some(i);
                (true, format!("link {i} ({}) down", link_name(i)))
            }
            Notice::NonceRedrawn => (false, "start-up nonces tied: redrawn".into()),
            Notice::TransferStarted { bytes, frame } => {
                event.bytes = Some(bytes);
                event.frame = Some(frame);
                (
                    false,
                    format!("state transfer started: {bytes} bytes after frame {frame}"),
                )
            }
            Notice::TransferCompleted { bytes } => {
                event.bytes = Some(bytes);
                (false, format!("state transfer completed: {bytes} bytes"))
            }
            Notice::SwitchoverDelayed { reason, lag_frames } => {
                event.delay_reason = Some(reason.into());
                event.lag_frames = Some(lag_frames);
                (
                    false,
                    format!(
                        "switchover delayed: the backup is {} ({lag_frames} frames behind)",
                        names::delay_reason(reason)
                    ),
                )
            }
            Notice::SwitchoverRefused => (true, "the primary refused the forwarded switchover".into()),
            Notice::SwitchoverAbandoned => (
                true,
                "switchover given up: this backup ran nothing for about a detection window after agreeing (frozen or starved), so its primary may have aborted it and run on".into(),
            ),
            Notice::SourceRestarted {
                session,
                source_first,
                pair_first,
            } => {
                event.session = Some(u64::from(session));
                event.source_first = Some(source_first);
                event.pair_first = Some(pair_first);
                (
                    true,
                    format!(
                        "the I/O source restarted (session {session}): its frame {source_first} is the pair's frame {pair_first}"
                    ),
                )
            }
            Notice::OutputsUncertain { first, last, count } => (
                true,
                format!(
                    "outputs.release = \"acked\": took over sending {count} outputs of frames {first}..={last} that the old primary may have released (it had read this node's ack of them, and its word that it released them was lost): a sink that cannot deduplicate may get them twice"
                ),
            ),
        };
        if warn {
            log::warn(format_args!("{message}"));
        } else {
            log::info(format_args!("{message}"));
        }
        event.message = message;
        self.journal_push(event);
    }

    /// Numbers, dates and keeps `event` in the journal (the console's `events`).
    pub(super) fn journal_push(&mut self, event: schema::Event) {
        let unix_ms = self.clock.unix_ms_now();
        self.journal.push(unix_ms, event);
        if let (Some(file), Some(event)) = (&self.journal_file, self.journal.last()) {
            file.append(event);
        }
    }

    pub(super) fn poll_hooks(&mut self) {
        if self.hooks.busy() {
            let now = self.clock.to_std(self.clock.now());
            self.hooks.poll(now, &mut self.hook_outcomes);
        }
        let outcomes: Vec<HookOutcome> = self.hook_outcomes.drain(..).collect();
        for outcome in outcomes {
            let kind = match &outcome {
                HookOutcome::Succeeded(_) => 0,
                HookOutcome::Failed(_) => 1,
                HookOutcome::SpawnFailed(_) => 2,
                HookOutcome::TimedOut(_) => 3,
                _ => 4,
            };
            self.counters.hook_runs[kind] += 1;
            let (name, message, warn) = match outcome {
                HookOutcome::Succeeded(s) => ("hook_succeeded", format!("hook done ({s})"), false),
                HookOutcome::Failed(s) => ("hook_failed", format!("hook failed ({s})"), true),
                HookOutcome::SpawnFailed(s) => ("hook_failed", format!("hook not started ({s})"), true),
                HookOutcome::TimedOut(s) => (
                    "hook_timed_out",
                    format!("hook killed after hook.timeout_ms ({s})"),
                    true,
                ),
                HookOutcome::Dropped(s) => ("hook_dropped", format!("hook queue full: dropped ({s})"), true),
            };
            if warn {
                log::warn(format_args!("{message}"));
            } else {
                log::info(format_args!("{message}"));
            }
            self.journal_push(schema::Event::new(EventKind::Shell.into(), name, &message));
        }
    }

    /// A shell event: one log line and one journal entry.
    pub(super) fn shell_event(&mut self, warn: bool, name: &str, message: &str) {
        if warn {
            log::warn(format_args!("{message}"));
        } else {
            log::info(format_args!("{message}"));
        }
        self.journal_push(schema::Event::new(EventKind::Shell.into(), name, message));
    }
}
