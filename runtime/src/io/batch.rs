//! Datagrams read a batch at a time: one `recvmmsg` per socket and wake-up, where one
//! `recvfrom` per datagram and a last one answering EAGAIN were made (issue 20: that
//! empty read was one system call in every cycle of a lone primary, and one per socket
//! and wake-up on a pair).
//!
//! mio registers the sockets edge-triggered, which asks a reader to read until the socket
//! is empty. A batch that comes back short of [`BATCH`] found it empty: the kernel's
//! `recvmmsg` stops at the first datagram it does not find. A datagram that arrives after
//! the read raises a new edge — epoll reports every arrival on a socket, not only the
//! first on an empty one — so the empty read `recvfrom` needs to learn the same thing is
//! not needed. A full batch may have left more: the socket stays ready and is read again
//! within the turn's bound. (An error also ends a batch early; these sockets are
//! unconnected and without `IP_RECVERR`, for which the kernel queues no ICMP error, and a
//! datagram another error left behind is read at the socket's next arrival, a heartbeat
//! later on a link.)

use std::io;
use std::net::SocketAddr;

/// Datagrams one call reads at most. The loop reads at most
/// `READS_PER_TURN / BATCH` batches from one socket in a turn, so the bound on the work
/// per wake-up is the one a datagram-at-a-time loop had.
pub(super) const BATCH: usize = 8;

/// The room for one datagram: every datagram of the I/O protocol and the sync links fits
/// (longer ones are truncated and then refused by their decoder, as before).
pub(super) const SLOT_BYTES: usize = 2048;

/// The buffers of one batch, allocated once at start.
pub(super) struct RecvBatch {
    bufs: Vec<u8>,
    lens: [usize; BATCH],
    froms: [Option<SocketAddr>; BATCH],
}

#[cfg(target_os = "linux")]
thread_local! {
    /// The kernel's message headers for a batch. They hold raw pointers, which would make
    /// the shell not `Send` (it is built on one thread and run on another): they live
    /// with the thread that reads, allocated at its first read (see [`RecvBatch::prepare`]).
    static HEADERS: std::cell::RefCell<Option<nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>>> =
        const { std::cell::RefCell::new(None) };
}

impl RecvBatch {
    /// Empty buffers for [`BATCH`] datagrams.
    pub(super) fn new() -> Self {
        RecvBatch {
            bufs: vec![0u8; BATCH * SLOT_BYTES],
            lens: [0; BATCH],
            froms: [None; BATCH],
        }
    }

    /// Allocates the calling thread's headers now rather than at its first read (the
    /// loop calls it before it starts turning).
    pub(super) fn prepare() {
        #[cfg(target_os = "linux")]
        HEADERS.with(|h| {
            h.borrow_mut()
                .get_or_insert_with(|| nix::sys::socket::MultiHeaders::preallocate(BATCH, None));
        });
    }

    /// Datagram `k` of the last batch read and its sender (`None`: the kernel gave no
    /// address, which the loop treats as a foreign sender).
    pub(super) fn datagram(&self, k: usize) -> (&[u8], Option<SocketAddr>) {
        let start = k * SLOT_BYTES;
        (&self.bufs[start..start + self.lens[k]], self.froms[k])
    }

    /// Reads up to [`BATCH`] datagrams in one system call: `Ok(n)` with `n ≥ 1`; fewer
    /// than [`BATCH`] means the socket is empty. `WouldBlock` when there was none.
    #[cfg(target_os = "linux")]
    pub(super) fn recv(&mut self, socket: &mio::net::UdpSocket) -> io::Result<usize> {
        use nix::sys::socket::{recvmmsg, MsgFlags};
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;
        let (bufs, lens, froms) = (&mut self.bufs, &mut self.lens, &mut self.froms);
        let count = HEADERS.with(|h| -> io::Result<usize> {
            let mut h = h.borrow_mut();
            let headers = h.get_or_insert_with(|| nix::sys::socket::MultiHeaders::preallocate(BATCH, None));
            let mut chunks = bufs.chunks_mut(SLOT_BYTES);
            let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(chunks.next().expect("BATCH slots of SLOT_BYTES"))]);
            let results = recvmmsg(
                socket.as_raw_fd(),
                headers,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)?;
            let mut count = 0;
            for (k, message) in results.enumerate() {
                lens[k] = message.bytes.min(SLOT_BYTES);
                froms[k] = message.address.and_then(|a| {
                    if let Some(v4) = a.as_sockaddr_in() {
                        Some(SocketAddr::V4((*v4).into()))
                    } else {
                        a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
                    }
                });
                count = k + 1;
            }
            Ok(count)
        })?;
        if count == 0 {
            // recvmmsg answers EAGAIN rather than 0 when nothing is queued; a 0 from a
            // kernel that did otherwise means the same.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(count)
    }

    /// Elsewhere: a datagram at a time until the batch is full or the socket empty.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn recv(&mut self, socket: &mio::net::UdpSocket) -> io::Result<usize> {
        let mut count = 0;
        while count < BATCH {
            let start = count * SLOT_BYTES;
            match socket.recv_from(&mut self.bufs[start..start + SLOT_BYTES]) {
                Ok((len, from)) => {
                    self.lens[count] = len;
                    self.froms[count] = Some(from);
                    count += 1;
                }
                Err(e) if count > 0 && e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(count)
    }
}

/// Datagrams one `sendmmsg` carries at most: a paced transfer's millisecond of chunks
/// (16 to 32 at the profiles' `transfer_chunks_per_ms`) in one or two calls.
pub(super) const SEND_BATCH: usize = 16;

#[cfg(target_os = "linux")]
thread_local! {
    /// The kernel's message headers for a send batch (see [`HEADERS`] for why they live
    /// with the thread).
    static SEND_HEADERS: std::cell::RefCell<Option<nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>>> =
        const { std::cell::RefCell::new(None) };
}

/// Datagrams for one socket and address, held while the core's actions queue more for
/// the same, then sent with one `sendmmsg` (issue 20: a state transfer's chunks went out
/// one `sendto` each, 16 to 32 a millisecond on the primary). The loop sends a batch
/// before any action for another socket or of another kind, so the order of everything
/// the core asked for is kept; a batch of one goes with a plain `sendto`.
pub(super) struct SendBatch {
    bufs: Vec<u8>,
    lens: [usize; SEND_BATCH],
    count: usize,
    /// What the held datagrams are for (the loop's key: link and class).
    key: Option<(u8, u8)>,
}

impl SendBatch {
    /// Empty buffers for [`SEND_BATCH`] datagrams.
    pub(super) fn new() -> Self {
        SendBatch {
            bufs: vec![0u8; SEND_BATCH * SLOT_BYTES],
            lens: [0; SEND_BATCH],
            count: 0,
            key: None,
        }
    }

    /// The key of the datagrams held, if any.
    pub(super) fn key(&self) -> Option<(u8, u8)> {
        self.key.filter(|_| self.count > 0)
    }

    /// Holds `bytes` for `key`; `false` (nothing held) when the batch is full, holds
    /// another key's datagrams, or `bytes` is longer than a slot: send it first, or alone.
    pub(super) fn hold(&mut self, key: (u8, u8), bytes: &[u8]) -> bool {
        if self.count == SEND_BATCH || bytes.len() > SLOT_BYTES || self.key().is_some_and(|k| k != key) {
            return false;
        }
        let start = self.count * SLOT_BYTES;
        self.bufs[start..start + bytes.len()].copy_from_slice(bytes);
        self.lens[self.count] = bytes.len();
        self.count += 1;
        self.key = Some(key);
        true
    }

    /// Empties the batch without sending (its link is gone).
    pub(super) fn send_nowhere(&mut self) -> usize {
        self.key = None;
        std::mem::take(&mut self.count)
    }

    /// The bytes of the first `n` datagrams of the batch last held (after a send too:
    /// what `n` sent carried).
    pub(super) fn bytes_of_first(&self, n: usize) -> usize {
        self.lens[..n.min(SEND_BATCH)].iter().sum()
    }

    /// Datagram `k` held.
    fn datagram(&self, k: usize) -> &[u8] {
        &self.bufs[k * SLOT_BYTES..k * SLOT_BYTES + self.lens[k]]
    }

    /// Sends what is held to `to` and empties the batch: `(sent, failed)`. Datagrams
    /// the kernel does not take (a full socket buffer) are dropped, as a `sendto` that
    /// would block drops its one: the core's retries cover every kind.
    #[cfg(target_os = "linux")]
    pub(super) fn send(&mut self, socket: &mio::net::UdpSocket, to: SocketAddr) -> (usize, usize) {
        use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage};
        use std::io::IoSlice;
        use std::os::fd::AsRawFd;
        let count = std::mem::take(&mut self.count);
        self.key = None;
        if count <= 1 {
            let sent = (0..count)
                .filter(|&k| socket.send_to(self.datagram(k), to).is_ok())
                .count();
            return (sent, count - sent);
        }
        let mut sent = 0;
        // Bounded: each call sends at least one datagram of at most SEND_BATCH, or ends.
        while sent < count {
            let rest = count - sent;
            let iovs: [[IoSlice<'_>; 1]; SEND_BATCH] =
                std::array::from_fn(|k| [IoSlice::new(self.datagram((sent + k).min(count - 1)))]);
            let addrs: [Option<SockaddrStorage>; SEND_BATCH] = std::array::from_fn(|_| Some(SockaddrStorage::from(to)));
            let result = SEND_HEADERS.with(|h| {
                let mut h = h.borrow_mut();
                let headers = h.get_or_insert_with(|| MultiHeaders::preallocate(SEND_BATCH, None));
                sendmmsg(
                    socket.as_raw_fd(),
                    headers,
                    iovs[..rest].iter(),
                    &addrs[..rest],
                    [] as [ControlMessage<'_>; 0],
                    MsgFlags::MSG_DONTWAIT,
                )
                .map(Iterator::count)
            });
            match result {
                Ok(n) if n > 0 => sent += n,
                // Refused (a full socket buffer): what is left is dropped.
                _ => break,
            }
        }
        (sent, count - sent)
    }

    /// Elsewhere: a `sendto` each.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn send(&mut self, socket: &mio::net::UdpSocket, to: SocketAddr) -> (usize, usize) {
        let count = std::mem::take(&mut self.count);
        self.key = None;
        let sent = (0..count)
            .filter(|&k| socket.send_to(self.datagram(k), to).is_ok())
            .count();
        (sent, count - sent)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // A bound on a wait for the kernel, in a test.
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    /// A receiving socket with `count` datagrams queued (`[k; k + 1]` each) from `sender`.
    fn queued(count: usize) -> (mio::net::UdpSocket, UdpSocket) {
        let receiver = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for k in 0..count {
            sender
                .send_to(&vec![k as u8; k + 1], receiver.local_addr().unwrap())
                .unwrap();
        }
        (receiver, sender)
    }

    /// `recv` until it returns something, for at most a second (loopback delivers at
    /// once; the bound is for a host that stalls).
    fn recv_some(batch: &mut RecvBatch, socket: &mio::net::UdpSocket) -> io::Result<usize> {
        let start = Instant::now();
        loop {
            match batch.recv(socket) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && start.elapsed() < Duration::from_secs(1) => {
                    std::thread::yield_now();
                }
                other => return other,
            }
        }
    }

    #[test]
    fn batch_short_read_empties_the_socket() {
        let (receiver, sender) = queued(3);
        let mut batch = RecvBatch::new();
        let mut got = recv_some(&mut batch, &receiver).unwrap();
        while got < 3 {
            // A datagram still in flight on a stalled host: read the rest.
            let before = got;
            got += recv_some(&mut batch, &receiver).unwrap();
            assert!(got > before);
        }
        assert!(got < BATCH, "three datagrams are a short batch");
        let (bytes, from) = batch.datagram(got - 1);
        assert_eq!(bytes, vec![2u8; 3].as_slice());
        assert_eq!(from, Some(sender.local_addr().unwrap()));
        // Short means empty: the read the loop no longer makes would find nothing.
        assert_eq!(batch.recv(&receiver).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn batch_full_read_leaves_the_rest_for_the_next() {
        let (receiver, _sender) = queued(BATCH + 2);
        let mut batch = RecvBatch::new();
        let mut seen = Vec::new();
        while seen.len() < BATCH + 2 {
            let got = recv_some(&mut batch, &receiver).unwrap();
            assert!((1..=BATCH).contains(&got));
            seen.extend((0..got).map(|k| batch.datagram(k).0.len()));
        }
        // In order, each whole: datagram k is k + 1 bytes long.
        assert_eq!(seen, (1..=BATCH + 2).collect::<Vec<_>>());
        assert_eq!(batch.recv(&receiver).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn batch_long_datagram_is_cut_to_its_slot() {
        let receiver = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender
            .send_to(&vec![7u8; SLOT_BYTES + 100], receiver.local_addr().unwrap())
            .unwrap();
        let mut batch = RecvBatch::new();
        assert_eq!(recv_some(&mut batch, &receiver).unwrap(), 1);
        assert_eq!(batch.datagram(0).0.len(), SLOT_BYTES);
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // A bound on a wait for the kernel, in a test.
mod send_tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn send_batch_holds_one_key_and_sends_in_order() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let sender = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut batch = SendBatch::new();
        // A full batch, then one more: refused, it goes in the next.
        for k in 0..SEND_BATCH {
            assert!(batch.hold((0, 1), &vec![k as u8; k + 1]));
        }
        assert!(!batch.hold((0, 1), &[99]), "a full batch takes no more");
        assert_eq!(batch.key(), Some((0, 1)));
        let (sent, failed) = batch.send(&sender, receiver.local_addr().unwrap());
        assert_eq!((sent, failed), (SEND_BATCH, 0));
        assert_eq!(batch.bytes_of_first(sent), (1..=SEND_BATCH).sum::<usize>());
        assert_eq!(batch.key(), None, "sent: empty");
        // Another key is refused while one is held; a datagram longer than a slot always.
        assert!(batch.hold((1, 0), &[7]));
        assert!(!batch.hold((0, 1), &[8]));
        assert!(!batch.hold((1, 0), &vec![0; SLOT_BYTES + 1]));
        assert_eq!(batch.send(&sender, receiver.local_addr().unwrap()), (1, 0));
        let start = Instant::now();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < SEND_BATCH + 1 && start.elapsed() < Duration::from_secs(5) {
            let (n, _) = receiver.recv_from(&mut buf).unwrap();
            got.push(buf[..n].to_vec());
        }
        let mut want: Vec<Vec<u8>> = (0..SEND_BATCH).map(|k| vec![k as u8; k + 1]).collect();
        want.push(vec![7]);
        assert_eq!(got, want, "every datagram, whole and in order");
    }
}
