//! What the console shows of the node: the `status` and `config` answers, filled from
//! the core's [`crate::node::Status`], the shell's counters and its configuration into
//! the schema's types (`super::schema`; the fields are documented in docs/CONSOLE.md).
//!
//! Taking a status costs a copy of the core's status and a few small allocations (names,
//! the links): it is done on request only, within the console's time budget.

use super::schema::{self, ConfigReply, IoCounters, LastAlarm, LastTransition, ShellConfigView, Status};
use super::{config, names, Console, Stopping};
use crate::app::App;
use crate::node::LinkStatus;
use crate::time::Instant;

impl<A: App> super::Shell<A> {
    /// The status as the console shows it.
    pub(super) fn status(&self) -> Status {
        let now = self.clock.now();
        let crate::node::Status {
            node_id,
            role,
            sync,
            epoch,
            frame,
            lag_frames,
            peer,
            links,
            link_count,
            false_deaths,
            takeovers,
            switchovers,
            alarms,
            last_alarm,
            last_transition,
            switchover,
            rejections,
            unsent_outputs,
            input,
            source,
            source_restarts,
            commits_lost,
            group,
            release,
        } = self.node.status();
        let ago_ms = |at: Instant| now.saturating_since(at).as_millis() as u64;
        let links = links
            .iter()
            .take(usize::from(link_count))
            .enumerate()
            .map(|(i, l)| {
                let LinkStatus {
                    up,
                    last_heard,
                    rtt_ns,
                    received,
                } = *l;
                let shell = self.links.get(i).map(|l| l.counters).unwrap_or_default();
                schema::Link {
                    index: i as u64,
                    name: self.links.get(i).map_or(String::new(), |l| l.name.clone()),
                    up,
                    rtt_ns,
                    received,
                    last_heard_ms_ago: last_heard.map(ago_ms),
                    sent_control: shell.sent_control,
                    sent_bulk: shell.sent_bulk,
                    received_control: shell.received_control,
                    received_bulk: shell.received_bulk,
                    send_errors: shell.send_errors,
                    foreign_source: shell.foreign_source,
                }
            })
            .collect();
        let runtime = self.node.config();
        let c = &self.counters;
        let cc = self.console.as_ref().map(Console::counters).unwrap_or_default();
        Status {
            node_id: node_id.into(),
            name: self.name.clone(),
            role: role.into(),
            sync: sync.into(),
            epoch,
            epoch_term: epoch >> 8,
            epoch_node: epoch & 0xFF,
            frame,
            lag_frames,
            peer: peer.map(|p| schema::Peer {
                node_id: p.node_id.into(),
                role: p.role.into(),
                sync: p.sync.into(),
                epoch: p.epoch,
                frame: p.frame,
                last_heard_ms_ago: ago_ms(p.last_heard),
            }),
            links,
            false_deaths,
            takeovers,
            switchovers,
            alarms,
            last_alarm: last_alarm.map(|a| LastAlarm {
                name: a.into(),
                frame: schema::alarm_frame(a),
                message: names::alarm_text(a),
            }),
            last_transition: last_transition.map(|t| {
                let (reason, cause) = schema::reason(t.reason);
                LastTransition {
                    role: t.role.into(),
                    sync: t.sync.into(),
                    epoch: t.epoch,
                    frame: t.frame,
                    reason,
                    cause,
                    message: names::reason_text(t.reason).to_string(),
                    unix_ms: self.clock.unix_ms_at(t.at),
                    ago_ms: ago_ms(t.at),
                }
            }),
            switchover_in_progress: switchover.is_some(),
            switchover: switchover.map(str::to_string),
            rejections: rejections.into(),
            unsent_outputs,
            commits_lost,
            transfer: self.node.transfer_progress().map(|t| {
                let elapsed_ms = now.saturating_since(t.started_at).as_millis() as u64;
                schema::Transfer {
                    direction: if t.sending {
                        schema::TransferDirection::Sending
                    } else {
                        schema::TransferDirection::Receiving
                    },
                    bytes_done: t.bytes_done,
                    bytes_total: t.bytes_total,
                    elapsed_ms,
                    rate_bytes_per_s: t.bytes_done.saturating_mul(1000) / elapsed_ms.max(1),
                }
            }),
            source: source.map(|map| schema::Source {
                session: map.session.into(),
                source_first: map.source_first,
                pair_first: map.pair_first,
                restarts: source_restarts,
            }),
            input: Some(schema::Input {
                frame: input.frame,
                last_frame_age_ms: input.heard_at.map(ago_ms),
                silent: input.silent,
                silence_ms: runtime.input_silence_ms,
                handover_ms: runtime.input_handover_ms,
                handovers: input.handovers,
                stale_frames: rejections.stale_frame,
                rejected_frames: self.frames_rejected(),
                stale_per_s: self.frame_rates.stale_per_s,
                rejected_per_s: self.frame_rates.rejected_per_s,
                peer_frame: input.peer_frame,
                peer_last_frame_age_ms: input.peer_heard_at.map(ago_ms),
            }),
            io: IoCounters {
                frames_received: c.frames_received,
                frames_foreign_source: c.frames_foreign_source,
                frames_rejected: c.frames_rejected,
                frames_rejected_by: c
                    .frames_rejected_by
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), *v))
                    .collect(),
                outputs_sent: c.outputs_sent,
                output_send_errors: c.output_send_errors,
                epochs_persisted: c.epochs_persisted,
                console_requests: c.console_requests,
                console_bad_key: c.console_bad_key,
                console_connections: self.console.as_ref().map_or(0, Console::connections_open) as u64,
                console_refused: cc.refused,
                console_timed_out: cc.timed_out,
                console_slow_readers: cc.slow_readers,
                loop_lateness_max_us: c.lateness_max_ns / 1000,
                loop_lateness_recent_max_us: c.lateness_recent_max_ns(now) / 1000,
                loop_late_wakes: c.late_wakes,
                console_turn_max_us: c.console_turn_max_ns / 1000,
                console_turn_cpu_max_us: c.console_turn_cpu_max_ns / 1000,
                hmi_connections: self.hmi.as_ref().map_or(0, |h| h.open() as u64),
                hmi_accepted: self.hmi.as_ref().map_or(0, |h| h.accepted),
                hmi_refused: self.hmi.as_ref().map_or(0, |h| h.refused),
                hmi_requests: self.hmi.as_ref().map_or(0, |h| h.requests),
                hmi_exceptions: self.hmi.as_ref().map_or(0, |h| h.exceptions),
                hmi_writes_acked: self.hmi.as_ref().map_or(0, |h| h.writes_applied),
                hmi_writes_refused: self.hmi.as_ref().map_or(0, |h| h.writes_refused),
            },
            stopping: self.stopping != Stopping::Running,
            uptime_ms: now.as_nanos().saturating_sub(1_000_000) / 1_000_000,
            unix_ms: self.clock.unix_ms_now(),
            boot_id: self.boot_id,
            events_last_seq: self.journal.last_seq(),
            weight: runtime.weight.into(),
            acks: (runtime.ack_sinks > 0).then(|| {
                let a = self.node.ack_status();
                schema::Acks {
                    pending: a.events_unacked,
                    oldest_age_ms: a.oldest_sent_at.map(ago_ms),
                    resent: a.events_resent,
                    dropped: a.events_dropped,
                    acks_taken: a.acks_taken,
                    acks_refused: a.acks_refused,
                    sink_silent: (0..8u64).filter(|s| a.sinks_silent & (1 << s) != 0).collect(),
                }
            }),
            group: group
                .iter()
                .map(|m| schema::GroupPeer {
                    node_id: m.node_id.map(u64::from),
                    role: m.heard.map(|p| p.role.into()),
                    sync: m.heard.map(|p| p.sync.into()),
                    weight: m.weight.into(),
                    witness: m.witness,
                    alive: m.alive,
                    epoch: m.heard.map_or(0, |p| p.epoch),
                    frame: m.heard.map_or(0, |p| p.frame),
                    last_heard_ms_ago: m.heard.map(|p| ago_ms(p.last_heard)),
                    input_frame: m.input_frame,
                    links: m.link_count.into(),
                })
                .collect(),
            outputs_release: Some(schema::OutputsRelease {
                mode: match release.mode {
                    crate::config::OutputsRelease::Immediate => "immediate".into(),
                    crate::config::OutputsRelease::Acked => "acked".into(),
                },
                held: release.held,
                held_oldest_frame: release.held_oldest_frame,
                unguarded: release.unguarded,
                uncertain: release.uncertain,
                released_known: release.released_known,
            }),
        }
    }

    /// The effective configuration as the console shows it: the core's, and the
    /// shell's sections with the links' bulk addresses resolved.
    pub(super) fn config_reply(&self) -> ConfigReply {
        let c = &self.config;
        ConfigReply {
            runtime: self.node.config().clone(),
            shell: ShellConfigView {
                name: self.name.clone(),
                state_file: c.state_file.display().to_string(),
                sync_mac: c.sync_key_file.is_some(),
                frames: c.frames.clone(),
                links: c
                    .links
                    .iter()
                    .map(|l| config::LinkConfig {
                        bulk_bind: l.bulk_bind_addr(),
                        bulk_peer: l.bulk_peer_addr(),
                        ..l.clone()
                    })
                    .collect(),
                outputs: c.outputs.clone(),
                hook: c.hook.clone(),
                shutdown: c.shutdown.clone(),
            },
        }
    }
}
