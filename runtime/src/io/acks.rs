//! The sinks' acks (issue 22, `[outputs] acks`): datagrams on the outputs socket from a
//! configured sink address go to the core as that sink's ([`Node::handle_ack_datagram`]
//! decodes, authenticates and checks them); from any other address they are dropped
//! unread. At most `ACKS_READ_MAX` datagrams a readiness, so that a flood on the outputs
//! socket cannot hold the loop up.

use super::*;

/// Datagrams read from the outputs socket at one readiness (the rest at the next turn;
/// the socket stays readable, so mio reports it again).
const ACKS_READ_MAX: usize = 64;

impl<A: App> Shell<A> {
    pub(super) fn read_acks(&mut self) -> Result<(), ShellError> {
        let mut buf = [0u8; crate::io_protocol::ACK_DATAGRAM_MAX + 1];
        for _ in 0..ACKS_READ_MAX {
            let (len, from) = match self.outputs.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors of earlier sends (a sink down) surface here: not ours.
                Err(_) => break,
            };
            let Some(sink) = self.config.outputs.sinks.iter().position(|&s| s == from) else {
                continue;
            };
            // At most 8 sinks with acks on (the core's check): the position fits.
            let sink = u8::try_from(sink).unwrap_or(u8::MAX);
            self.node.handle_ack_datagram(self.clock.now(), sink, &buf[..len]);
        }
        self.drain()
    }
}
