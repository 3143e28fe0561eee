//! The nodes' disks: what an epoch write asks for and when it survives a crash.
//!
//! `PersistEpoch` and `ReserveEpoch` are durable before the node goes on (the shell
//! blocks on the fsync), so they are durable at once here. `PersistEpochLater` is written
//! in the background (the node goes on at once): it becomes durable only after a delay
//! drawn from the seed — 0 to 20 ms, and in one write of ten a slow disk's 20 to 500 ms —
//! and a crash before then loses it; the restarted node boots from what was durable. One
//! writer writes in the order asked, as the shell's state writer does: a write is never
//! durable before one asked earlier, and a blocking write makes every write asked before
//! it durable first. A freeze does not hold the disk up (the write is the kernel's).

use super::world::{Event, Sim};
use crate::dst::app::Workload;
use crate::dst::clock::{Nanos, NANOS_PER_US};

/// Background epoch writes one node may have in flight; more is a runaway core (a
/// panic, reported for the seed), not a queue that grows.
pub const DISK_LATER_MAX: usize = 1024;

impl<'a, W: Workload> Sim<'a, W> {
    /// How long a background write takes to become durable, in true nanoseconds.
    fn disk_delay_ns(&mut self) -> Nanos {
        let us = if self.disk_rng.chance(1, 10) {
            20_000 + self.disk_rng.below(480_001)
        } else {
            self.disk_rng.below(20_001)
        };
        us * NANOS_PER_US
    }

    /// `PersistEpoch`: durable before the node goes on, after every write asked before.
    pub(super) fn persist_now(&mut self, i: usize, epoch: u64) {
        self.disk_flush(i);
        self.nodes[i].disk_epoch = epoch;
        self.checker.on_persist(self.now, i, epoch);
    }

    /// `ReserveEpoch`: durable before the node goes on, after every write asked before.
    pub(super) fn reserve_now(&mut self, i: usize, epoch: u64) {
        self.disk_flush(i);
        self.nodes[i].disk_reserved = epoch;
        self.checker.on_reserve(self.now, i, epoch);
    }

    /// `PersistEpochLater`: durable after a drawn delay, not before the writes asked
    /// before it.
    pub(super) fn persist_later(&mut self, i: usize, epoch: u64) {
        let delay_ns = self.disk_delay_ns();
        let sn = &mut self.nodes[i];
        assert!(
            sn.disk_later.len() < DISK_LATER_MAX,
            "node {i} has more than {DISK_LATER_MAX} background epoch writes in flight"
        );
        let after = sn.disk_later.back().map_or(0, |&(at, _)| at);
        let at = (self.now + delay_ns).max(after);
        sn.disk_later.push_back((at, epoch));
        self.stats.epoch_writes_later += 1;
        self.trace_u64(0xD15C ^ epoch);
        self.schedule(at, Event::Durable { node: i });
    }

    /// The background writes of node `i` due by now become durable.
    pub(super) fn disk_settle(&mut self, i: usize) {
        while let Some(&(at, epoch)) = self.nodes[i].disk_later.front() {
            if at > self.now {
                break;
            }
            self.nodes[i].disk_later.pop_front();
            self.disk_write(i, epoch);
        }
    }

    /// A blocking write waits for every background write asked before it.
    fn disk_flush(&mut self, i: usize) {
        while let Some((_, epoch)) = self.nodes[i].disk_later.pop_front() {
            self.disk_write(i, epoch);
        }
    }

    fn disk_write(&mut self, i: usize, epoch: u64) {
        // The file never goes backwards (the shell merges what it writes).
        let sn = &mut self.nodes[i];
        sn.disk_epoch = sn.disk_epoch.max(epoch);
        self.checker.on_persist(self.now, i, epoch);
    }

    /// Node `i` crashes: what was due is on disk, the rest is lost.
    pub(super) fn disk_crash(&mut self, i: usize) {
        self.disk_settle(i);
        let lost = core::mem::take(&mut self.nodes[i].disk_later);
        for (_, epoch) in lost {
            self.stats.epoch_writes_lost += 1;
            self.checker.on_write_lost(i, epoch);
            self.trace_u64(0x1057 ^ epoch);
            self.say(format_args!(
                "node {i}: crash loses the background write of epoch {} (not durable yet)",
                twinloop::EpochText(epoch)
            ));
        }
    }
}
