//! Carrying out the core's actions, in order: datagrams to the links, outputs to the
//! sinks, and the state file's writes (durable before the next action, or in the
//! background for `PersistEpochLater`). The shell decides nothing here: every durable
//! decision is the core's (`node::epochs`).

use super::*;

impl<A: App> Shell<A> {
    /// Carries out every queued action, in order.
    pub(super) fn drain(&mut self) -> Result<(), ShellError> {
        while let Some(action) = self.node.poll_action() {
            if !matches!(action, Action::Transmit { .. }) {
                // Held datagrams go before anything else the core asked for after them.
                self.send_held();
            }
            match action {
                Action::Transmit { link, class, bytes } => self.transmit_batched(link, class, &bytes),
                Action::Emit(output) => {
                    let node_id = self.node.config().node_id;
                    let mut datagram = [0u8; io_protocol::OUTPUT_DATAGRAM_MAX];
                    let Ok(len) = io_protocol::encode_core_output(node_id, &output, &mut datagram) else {
                        // Outputs are bounded by the core; an unencodable one is a bug, not data.
                        log::error(format_args!("output {}:{} does not encode", output.frame, output.index));
                        continue;
                    };
                    for sink in &self.config.outputs.sinks {
                        match self.outputs.send_to(&datagram[..len], *sink) {
                            Ok(_) => self.counters.outputs_sent += 1,
                            Err(_) => self.counters.output_send_errors += 1,
                        }
                    }
                }
                Action::PersistEpoch(epoch) => {
                    self.store(Stored { epoch, ..self.stored })?;
                    log::debug(format_args!("epoch {epoch} persisted"));
                }
                Action::ReserveEpoch(reserved) => {
                    self.store(Stored {
                        reserved,
                        ..self.stored
                    })?;
                    log::debug(format_args!("epoch {reserved} reserved"));
                }
                Action::PersistEpochLater(epoch) => {
                    self.store_later(Stored { epoch, ..self.stored });
                    log::debug(format_args!("epoch {epoch} to be persisted"));
                }
                Action::Transition(t) => self.on_transition(t),
                Action::Alarm(alarm) => self.on_alarm(alarm),
                Action::Notice(notice) => self.on_notice(notice),
                Action::HmiWriteDone { write, outcome } => self.hmi_answer(write, outcome),
                // For observers only: the commit was not sent, by design.
                Action::CommitHeld { .. } => {}
            }
        }
        self.send_held();
        Ok(())
    }

    /// Holds a datagram for a link's socket while the next actions are for the same one
    /// (a transfer's chunks), to go in one `sendmmsg` (see `batch::SendBatch`).
    pub(super) fn transmit_batched(&mut self, link: u8, class: TrafficClass, bytes: &[u8]) {
        let key = (link, class as u8);
        if self.sends.hold(key, bytes) {
            return;
        }
        self.send_held();
        if !self.sends.hold(key, bytes) {
            // Longer than a slot (no datagram of the wire is): alone.
            self.transmit(link, class, bytes);
        }
    }

    /// Sends the datagrams held for one link's socket, if any.
    pub(super) fn send_held(&mut self) {
        let Some((link, class)) = self.sends.key() else {
            return;
        };
        let Some(l) = self.links.get_mut(usize::from(link)) else {
            let _ = self.sends.send_nowhere();
            return;
        };
        let bulk = class == TrafficClass::Bulk as u8;
        let (socket, peer) = if bulk {
            (&l.bulk, l.peer_bulk)
        } else {
            (&l.control, l.peer_control)
        };
        let (sent, failed) = self.sends.send(socket, peer);
        if bulk {
            l.counters.sent_bulk += sent as u64;
            self.counters.bulk_bytes_sent += self.sends.bytes_of_first(sent) as u64;
        } else {
            l.counters.sent_control += sent as u64;
        }
        l.counters.send_errors += failed as u64;
    }

    /// Stores the state file; a failure is fatal (the core counts on it being durable).
    pub(super) fn store(&mut self, stored: Stored) -> Result<(), ShellError> {
        self.state_file.store(stored).map_err(|error| ShellError::Persist {
            path: self.state_file.path().to_owned(),
            error,
        })?;
        self.counters.epochs_persisted += 1;
        // As the writer does: the file never goes backwards.
        self.stored = self.stored.merge(stored);
        Ok(())
    }

    /// Stores the state file without waiting; a failure is logged by the writer.
    pub(super) fn store_later(&mut self, stored: Stored) {
        self.state_file.store_later(stored);
        self.counters.epochs_persisted += 1;
        self.stored = self.stored.merge(stored);
    }

    pub(super) fn transmit(&mut self, link: u8, class: TrafficClass, bytes: &[u8]) {
        let Some(l) = self.links.get_mut(usize::from(link)) else {
            return;
        };
        let (socket, peer) = match class {
            TrafficClass::Control => (&l.control, l.peer_control),
            TrafficClass::Bulk => (&l.bulk, l.peer_bulk),
        };
        // A datagram that would block is dropped: heartbeats repeat, and the core
        // retries commits (fetch), chunks (go-back-N) and switchover messages.
        match socket.send_to(bytes, peer) {
            Ok(_) => match class {
                TrafficClass::Control => l.counters.sent_control += 1,
                TrafficClass::Bulk => {
                    l.counters.sent_bulk += 1;
                    self.counters.bulk_bytes_sent += bytes.len() as u64;
                }
            },
            Err(_) => l.counters.send_errors += 1,
        }
    }
}
