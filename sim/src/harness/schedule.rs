//! Fault schedules and their injection.
//!
//! A [`Fault`] is one kind with a hold time; [`inject`] waits for a healthy pair, injects
//! it, holds it, heals it (restarting a killed or stopped node: a late join), and waits
//! for the pair to be healthy again, recording when each step happened and what the sink
//! saw ([`FaultRecord`]). Faults never overlap: recovery comes between them.
//!
//! Every fault says what it must do to the roles ([`Expect`]): a killed primary must be
//! replaced; a freeze shorter than the detection window, a single cut link (the other
//! lives), a small delay or moderate loss must *not* cause a takeover — one that does is
//! a false takeover.
#![allow(clippy::disallowed_methods)]

use super::proxy::LinkFault;
use super::rig::{Health, Rig, Timing, LINKS};
use super::{ms, HarnessError};
use std::time::Duration;
use twinloop::io::schema::CommandResult;
use twinloop::Rng;

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL the primary; restart it after the hold (it joins late, as a backup).
    KillPrimary,
    /// SIGKILL the backup; restart it after the hold.
    KillBackup,
    /// SIGSTOP the primary for less than the detection window, then SIGCONT.
    FreezePrimaryShort,
    /// SIGSTOP the primary for longer than window + probe: the backup takes over, and the
    /// old primary, resumed, is fenced and rejoins.
    FreezePrimaryLong,
    /// SIGSTOP the backup for less than the window.
    FreezeBackupShort,
    /// SIGSTOP the backup for longer than window + probe.
    FreezeBackupLong,
    /// Cut one link (both directions) while the other lives.
    CutLink(u8),
    /// Cut every link, both directions: both nodes lead until it heals, then fencing.
    Partition,
    /// Drop datagrams on every link with this probability (ppm).
    Drop {
        /// Parts per million.
        ppm: u32,
    },
    /// Delay every datagram on every link by this much.
    Delay {
        /// Milliseconds.
        ms: u32,
    },
    /// A planned switchover asked of the primary on its console.
    Switchover,
    /// A planned switchover asked of the backup, which forwards it.
    SwitchoverViaBackup,
    /// SIGTERM to the primary: it hands over, exits, and is restarted after the hold.
    TerminatePrimary,
    /// A group only: one backup (the lightest program backup) cut from every other node,
    /// each link of each of its edges, for longer than window + probe. It loses the
    /// primary and tries to take over, but a minority has no majority: the primary keeps
    /// leading, and the isolated node must never lead (see [`MinorityWatch`]).
    PartitionBackup,
}

/// What a fault must do to the roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The backup must take over.
    Takeover,
    /// A planned handover must happen (no takeover).
    Switchover,
    /// Roles must not change: a takeover is a false takeover.
    NoTakeover,
}

impl Expect {
    /// A name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Expect::Takeover => "takeover",
            Expect::Switchover => "switchover",
            Expect::NoTakeover => "no_takeover",
        }
    }
}

impl FaultKind {
    /// A short name for reports.
    pub fn name(&self) -> String {
        match self {
            FaultKind::KillPrimary => "kill_primary".into(),
            FaultKind::KillBackup => "kill_backup".into(),
            FaultKind::FreezePrimaryShort => "freeze_primary_short".into(),
            FaultKind::FreezePrimaryLong => "freeze_primary_long".into(),
            FaultKind::FreezeBackupShort => "freeze_backup_short".into(),
            FaultKind::FreezeBackupLong => "freeze_backup_long".into(),
            FaultKind::CutLink(l) => format!("cut_link{l}"),
            FaultKind::Partition => "partition".into(),
            FaultKind::Drop { .. } => "drop".into(),
            FaultKind::Delay { .. } => "delay".into(),
            FaultKind::Switchover => "switchover".into(),
            FaultKind::SwitchoverViaBackup => "switchover_via_backup".into(),
            FaultKind::TerminatePrimary => "sigterm_primary".into(),
            FaultKind::PartitionBackup => "partition_backup".into(),
        }
    }

    /// True for faults on the links, which need the proxy.
    pub fn needs_proxy(&self) -> bool {
        matches!(
            self,
            FaultKind::CutLink(_)
                | FaultKind::Partition
                | FaultKind::PartitionBackup
                | FaultKind::Drop { .. }
                | FaultKind::Delay { .. }
        )
    }

    /// What the fault must do to the roles, under `timing`, held for `hold_ms`.
    pub fn expect(&self, timing: &Timing, hold_ms: u64) -> Expect {
        match self {
            FaultKind::KillPrimary | FaultKind::Partition => Expect::Takeover,
            FaultKind::FreezePrimaryLong if hold_ms > timing.takeover_ms() => Expect::Takeover,
            FaultKind::Switchover | FaultKind::SwitchoverViaBackup | FaultKind::TerminatePrimary => Expect::Switchover,
            // A moderate loss cannot silence every heartbeat on both links for window +
            // probe; a heavy one might.
            FaultKind::Drop { ppm } if *ppm > 500_000 => Expect::Takeover,
            FaultKind::Delay { ms } if u64::from(*ms) * 2 > timing.window_ms => Expect::Takeover,
            // The majority keeps its primary: any takeover (by the isolated minority or
            // in the majority) is a false one.
            FaultKind::PartitionBackup => Expect::NoTakeover,
            _ => Expect::NoTakeover,
        }
    }
}

/// One fault: a kind and how long it is held (a freeze's duration, a cut's, a killed
/// node's time down before its restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// What.
    pub kind: FaultKind,
    /// How long, ms.
    pub hold_ms: u64,
}

impl Fault {
    /// `kind (hold …, …)` for people.
    pub fn label(&self) -> String {
        match self.kind {
            FaultKind::Drop { ppm } => format!("drop {:.0}% {} ms", f64::from(ppm) / 1e4, self.hold_ms),
            FaultKind::Delay { ms } => format!("delay {ms} ms for {} ms", self.hold_ms),
            FaultKind::Switchover | FaultKind::SwitchoverViaBackup => self.kind.name(),
            _ => format!("{} {} ms", self.kind.name(), self.hold_ms),
        }
    }
}

/// The `run` scenario: one of each kind of fault, held for times scaled to `timing`.
pub fn run_schedule(timing: &Timing) -> Vec<Fault> {
    let window = timing.window_ms;
    let takeover = timing.takeover_ms();
    let f = |kind, hold_ms| Fault { kind, hold_ms };
    vec![
        f(FaultKind::Switchover, 0),
        f(FaultKind::FreezePrimaryShort, (window * 2 / 5).max(1)),
        f(FaultKind::KillPrimary, 1000),
        f(FaultKind::CutLink(0), 2000),
        f(FaultKind::FreezePrimaryLong, takeover * 3 + 100),
        f(FaultKind::Drop { ppm: 300_000 }, 2000),
        f(FaultKind::SwitchoverViaBackup, 0),
        f(FaultKind::Partition, (takeover * 4).max(1000)),
        f(FaultKind::FreezeBackupShort, (window * 2 / 5).max(1)),
        f(FaultKind::KillBackup, 1000),
        f(
            FaultKind::Delay {
                ms: (window / 5).max(1) as u32,
            },
            2000,
        ),
        f(FaultKind::FreezeBackupLong, takeover * 3 + 100),
        f(FaultKind::TerminatePrimary, 500),
        f(FaultKind::CutLink(1), 2000),
    ]
}

/// `n` faults drawn from `seed`: every kind, weighted towards the ones that move the
/// primary role, with hold times drawn around `timing`. Link faults only with a proxy;
/// `partition_backup` only in a `group` (with a proxy). A pair's schedule for a seed is
/// the same as before `partition_backup` existed (its kind is last and filtered out
/// before the draw, so the draws do not move).
pub fn chaos_schedule(n: usize, seed: u64, timing: &Timing, proxy: bool, group: bool) -> Vec<Fault> {
    let mut rng = Rng::new(seed ^ 0xC4A0_5EED);
    let window = timing.window_ms.max(1);
    let takeover = timing.takeover_ms();
    let range = |rng: &mut Rng, lo: u64, hi: u64| lo + rng.below(hi.saturating_sub(lo).max(1));
    // (weight, kind index)
    let kinds: [(u64, u8); 14] = [
        (3, 0),  // kill primary
        (1, 1),  // kill backup
        (2, 2),  // freeze primary short
        (2, 3),  // freeze primary long
        (1, 4),  // freeze backup short
        (1, 5),  // freeze backup long
        (2, 6),  // cut one link
        (1, 7),  // partition
        (1, 8),  // drop
        (1, 9),  // delay
        (2, 10), // switchover
        (1, 11), // switchover via backup
        (1, 12), // sigterm
        (2, 13), // partition one backup (groups only)
    ];
    let allowed = |k: u8| (proxy || !(6..=9).contains(&k)) && (k != 13 || (proxy && group));
    let total: u64 = kinds.iter().filter(|(_, k)| allowed(*k)).map(|(w, _)| w).sum();
    let mut faults = Vec::with_capacity(n);
    while faults.len() < n {
        let mut pick = rng.below(total);
        let mut chosen = 0;
        for &(weight, kind) in kinds.iter().filter(|(_, k)| allowed(*k)) {
            if pick < weight {
                chosen = kind;
                break;
            }
            pick -= weight;
        }
        let fault = match chosen {
            0 => Fault {
                kind: FaultKind::KillPrimary,
                hold_ms: range(&mut rng, 200, 1500),
            },
            1 => Fault {
                kind: FaultKind::KillBackup,
                hold_ms: range(&mut rng, 200, 1500),
            },
            2 => Fault {
                kind: FaultKind::FreezePrimaryShort,
                hold_ms: range(&mut rng, (window / 10).max(1), (window / 2).max(2)),
            },
            3 => Fault {
                kind: FaultKind::FreezePrimaryLong,
                hold_ms: range(&mut rng, takeover * 2, takeover * 5 + 200),
            },
            4 => Fault {
                kind: FaultKind::FreezeBackupShort,
                hold_ms: range(&mut rng, (window / 10).max(1), (window / 2).max(2)),
            },
            5 => Fault {
                kind: FaultKind::FreezeBackupLong,
                hold_ms: range(&mut rng, takeover * 2, takeover * 5 + 200),
            },
            6 => Fault {
                kind: FaultKind::CutLink(rng.below(LINKS as u64) as u8),
                hold_ms: range(&mut rng, 500, 2500),
            },
            7 => Fault {
                kind: FaultKind::Partition,
                hold_ms: range(&mut rng, takeover * 3, (takeover * 6).max(1500)),
            },
            8 => Fault {
                kind: FaultKind::Drop {
                    ppm: range(&mut rng, 50_000, 400_000) as u32,
                },
                hold_ms: range(&mut rng, 500, 2000),
            },
            9 => Fault {
                kind: FaultKind::Delay {
                    ms: range(&mut rng, 1, (window / 4).max(2)) as u32,
                },
                hold_ms: range(&mut rng, 500, 2000),
            },
            10 => Fault {
                kind: FaultKind::Switchover,
                hold_ms: 0,
            },
            11 => Fault {
                kind: FaultKind::SwitchoverViaBackup,
                hold_ms: 0,
            },
            // Past window + probe, so that the isolated backup does try to take over.
            13 => Fault {
                kind: FaultKind::PartitionBackup,
                hold_ms: range(&mut rng, takeover * 3, (takeover * 6).max(1500)),
            },
            _ => Fault {
                kind: FaultKind::TerminatePrimary,
                hold_ms: range(&mut rng, 200, 1000),
            },
        };
        faults.push(fault);
    }
    faults
}

/// What happened when one fault was injected.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRecord {
    /// Its position in the schedule (0-based).
    pub index: usize,
    /// The fault.
    pub fault: Fault,
    /// What it had to do to the roles.
    pub expect: Expect,
    /// The node it hit (1 or 2; 0 for link faults).
    pub target: u8,
    /// The primary (node id) and epoch before.
    pub primary_before: u8,
    /// The epoch before.
    pub epoch_before: u64,
    /// Injected, ns since the run began.
    pub start_ns: u64,
    /// Healed (thawed, link restored, node restarted), ns.
    pub end_ns: u64,
    /// The pair healthy again, ns (None: it did not recover in time).
    pub recovered_ns: Option<u64>,
    /// The primary (node id) after recovery.
    pub primary_after: Option<u8>,
    /// The first epoch above `epoch_before` delivered at the sink, and when (ns).
    pub new_epoch: Option<(u64, u64)>,
    /// For a killed primary: kill → first delivered output of the new primary, ms.
    pub failover_ms: Option<f64>,
    /// For a switchover: command → first delivered output of the new primary, ms.
    pub switchover_ms: Option<f64>,
    /// Frames whose command missed its deadline during the fault (filled by the report).
    pub missed_cycles: u64,
    /// What went wrong, if anything (a refused switchover, no recovery).
    pub error: Option<String>,
    /// For `partition_backup`: what the isolated backup showed of itself (None for other
    /// faults).
    pub minority: Option<MinorityWatch>,
}

/// The isolated backup of a `partition_backup`, seen from its own console: its status
/// before the cut, polled during the hold (every [`MINORITY_POLL_MS`]) and read after the
/// group recovered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinorityWatch {
    /// Its node id.
    pub node: u8,
    /// `takeovers` before the cut (None: its console did not answer).
    pub takeovers_before: Option<u64>,
    /// `takeovers` after the recovery (None: its console did not answer).
    pub takeovers_after: Option<u64>,
    /// The epoch it followed before the cut.
    pub epoch_before: Option<u64>,
    /// The highest epoch it reported during the hold or after.
    pub epoch_max: u64,
    /// Reads of its status during the hold (hold / [`MINORITY_POLL_MS`] + 1 at most).
    pub polls: u64,
    /// Polls answered.
    pub answered: u64,
    /// Polls that found it primary.
    pub primary_seen: u64,
    /// It reported an epoch above `epoch_before` whose term it started itself.
    pub own_term_seen: bool,
}

/// How often the isolated backup's status is read during a `partition_backup`, ms.
pub const MINORITY_POLL_MS: u64 = 20;

impl MinorityWatch {
    /// Folds one status (its role and epoch) read during the hold or after it.
    pub fn saw(&mut self, role: twinloop::io::schema::Role, epoch: u64) {
        self.epoch_max = self.epoch_max.max(epoch);
        if role == twinloop::io::schema::Role::Primary {
            self.primary_seen += 1;
        }
        let before = self.epoch_before.unwrap_or(u64::MAX);
        if epoch > before && epoch & 0xFF == u64::from(self.node) {
            self.own_term_seen = true;
        }
    }

    /// Whether the isolated node led: seen primary, its takeover counter moved, or it
    /// reported a term of its own above the one it followed. None when that cannot be
    /// judged (its console answered neither before, nor after, nor during the hold).
    pub fn led(&self) -> Option<bool> {
        let counted = match (self.takeovers_before, self.takeovers_after) {
            (Some(before), Some(after)) => Some(after > before),
            _ => None,
        };
        if self.primary_seen > 0 || self.own_term_seen || counted == Some(true) {
            return Some(true);
        }
        (counted.is_some() && self.answered > 0 && self.epoch_before.is_some()).then_some(false)
    }
}

impl FaultRecord {
    /// The end of the fault's window for attributing events: recovery, or the heal
    /// time when it did not recover.
    pub fn window_end_ns(&self) -> u64 {
        self.recovered_ns.unwrap_or(self.end_ns).max(self.end_ns)
    }
}

/// How long a healthy pair may take to come back after a fault: a restart, a start-up
/// wait, a state transfer and a catch-up, generously for a loaded host.
pub fn recovery_limit(timing: &Timing) -> Duration {
    Duration::from_millis(15_000 + timing.startup_ms * 4 + timing.takeover_ms() * 10)
}

/// Waits for a healthy pair, injects `fault`, holds and heals it, and waits for recovery.
/// A pair that is not healthy before is an error (the caller repairs); one that does
/// not recover after is recorded in the record's `error`.
pub fn inject(rig: &mut Rig, index: usize, fault: Fault) -> Result<FaultRecord, HarnessError> {
    let timing = rig.config.timing;
    let limit = recovery_limit(&timing);
    let health = rig.await_healthy(limit)?;
    let (p, b) = (health.primary, health.backup());
    let hold = Duration::from_millis(fault.hold_ms);
    let target = match fault.kind {
        FaultKind::KillBackup | FaultKind::FreezeBackupShort | FaultKind::FreezeBackupLong => b as u8 + 1,
        FaultKind::SwitchoverViaBackup => b as u8 + 1,
        // The lightest program backup (the witness is not one).
        FaultKind::PartitionBackup => {
            let shape = rig.config.shape;
            (0..shape.nodes)
                .rev()
                .find(|&i| i != p && !shape.is_witness(i))
                .unwrap_or(b) as u8
                + 1
        }
        k if k.needs_proxy() => 0,
        _ => p as u8 + 1,
    };
    let mut record = FaultRecord {
        index,
        fault,
        expect: fault.kind.expect(&timing, fault.hold_ms),
        target,
        primary_before: p as u8 + 1,
        epoch_before: health.epoch,
        start_ns: 0,
        end_ns: 0,
        recovered_ns: None,
        primary_after: None,
        new_epoch: None,
        failover_ms: None,
        switchover_ms: None,
        missed_cycles: 0,
        error: None,
        minority: None,
    };
    let target_text = match target {
        0 => "links".to_string(),
        n => format!("node {n}"),
    };
    rig.doing(&format!("fault #{index} {}", fault.label()));
    rig.say(&format!("fault #{index}: {} on {target_text}", fault.label()));
    // Generous: a takeover within this is a pass for the waits below; the figure itself
    // is measured.
    let takeover_limit = Duration::from_millis(timing.takeover_ms() * 20 + 5000);
    record.start_ns = rig.clock.now_ns();
    match fault.kind {
        FaultKind::KillPrimary | FaultKind::KillBackup => {
            let victim = if fault.kind == FaultKind::KillPrimary { p } else { b };
            rig.nodes[victim].kill();
            rig.watchers[victim].forget_status();
            if fault.kind == FaultKind::KillPrimary {
                let (epoch, at_ns) = rig.await_epoch_above(health.epoch, takeover_limit)?;
                record.new_epoch = Some((epoch, at_ns));
                record.failover_ms = Some(ms(at_ns.saturating_sub(record.start_ns)));
                rig.say(&format!(
                    "failover: node {} killed, first output of epoch {} delivered after {:.3} ms",
                    victim + 1,
                    twinloop::EpochText(epoch),
                    ms(at_ns.saturating_sub(record.start_ns))
                ));
            }
            rig.sleep(hold)?;
            rig.say(&format!("restart node {} (late join)", victim + 1));
            rig.nodes[victim].spawn()?;
        }
        FaultKind::FreezePrimaryShort
        | FaultKind::FreezePrimaryLong
        | FaultKind::FreezeBackupShort
        | FaultKind::FreezeBackupLong => {
            let victim = (target - 1) as usize;
            rig.nodes[victim].freeze()?;
            // A plain sleep: the freeze's length is the point, progress can wait.
            std::thread::sleep(hold);
            rig.nodes[victim].thaw()?;
        }
        FaultKind::CutLink(l) => {
            // Link `l` between every two nodes (a pair has one such; a group's proxy
            // numbers its links edge by edge, `LINKS` each).
            link_fault(rig, |proxy| {
                for index in (usize::from(l)..proxy.links()).step_by(LINKS) {
                    proxy.set_link(index, LinkFault::CUT);
                }
            });
            rig.sleep(hold)?;
            link_fault(rig, |proxy| proxy.heal());
        }
        FaultKind::Partition if !rig.config.shape.is_pair() => {
            // A group: the primary cut from every other node (each link of each of its
            // edges); the others keep a majority and elect among themselves.
            link_fault(rig, |proxy| {
                for j in (0..rig.config.shape.nodes).filter(|&j| j != p) {
                    for l in 0..LINKS {
                        proxy.set_link(super::group::proxy_link(rig.config.shape, p, j, l).0, LinkFault::CUT);
                    }
                }
            });
            rig.sleep(hold)?;
            link_fault(rig, |proxy| proxy.heal());
        }
        FaultKind::PartitionBackup => {
            let shape = rig.config.shape;
            if shape.is_pair() || rig.proxy.is_none() {
                return Err(HarnessError::Setup(
                    "partition_backup needs a group with the proxy (--nodes 3|4, no --no-proxy): a pair's backup cut off is a `partition`".into(),
                ));
            }
            let victim = (target - 1) as usize;
            let mut watch = MinorityWatch {
                node: target,
                ..MinorityWatch::default()
            };
            if let Ok(s) = rig.consoles[victim].status() {
                watch.takeovers_before = Some(s.takeovers);
                watch.epoch_before = Some(s.epoch);
                watch.epoch_max = s.epoch;
            }
            link_fault(rig, |proxy| {
                for j in (0..shape.nodes).filter(|&j| j != victim) {
                    for l in 0..LINKS {
                        proxy.set_link(super::group::proxy_link(shape, victim, j, l).0, LinkFault::CUT);
                    }
                }
            });
            // Read its status through the hold: a lead would show as its role. Bounded:
            // hold / MINORITY_POLL_MS polls, each at most the console's timeout.
            let deadline = std::time::Instant::now() + hold;
            loop {
                watch.polls += 1;
                if let Ok(s) = rig.consoles[victim].status() {
                    watch.answered += 1;
                    watch.saw(s.role, s.epoch);
                }
                let now = std::time::Instant::now();
                if now >= deadline {
                    break;
                }
                rig.sleep((deadline - now).min(Duration::from_millis(MINORITY_POLL_MS)))?;
            }
            link_fault(rig, |proxy| proxy.heal());
            record.minority = Some(watch);
        }
        FaultKind::Partition => {
            link_fault(rig, |proxy| proxy.set_all(LinkFault::CUT));
            rig.sleep(hold)?;
            link_fault(rig, |proxy| proxy.heal());
        }
        FaultKind::Drop { ppm } => {
            link_fault(rig, |proxy| {
                proxy.set_all(LinkFault {
                    drop_ppm: ppm,
                    ..LinkFault::HEALTHY
                })
            });
            rig.sleep(hold)?;
            link_fault(rig, |proxy| proxy.heal());
        }
        FaultKind::Delay { ms: delay_ms } => {
            link_fault(rig, |proxy| {
                proxy.set_all(LinkFault {
                    delay_us: delay_ms.saturating_mul(1000),
                    ..LinkFault::HEALTHY
                })
            });
            rig.sleep(hold)?;
            link_fault(rig, |proxy| proxy.heal());
        }
        FaultKind::Switchover | FaultKind::SwitchoverViaBackup => {
            let via = (target - 1) as usize;
            match rig.consoles[via].switchover() {
                Ok(reply) if matches!(reply.result, CommandResult::Started | CommandResult::Forwarded) => {
                    let limit = Duration::from_millis(timing.switchover_timeout_ms * 3 + 3000);
                    match rig.await_epoch_above(health.epoch, limit) {
                        Ok((epoch, at_ns)) => {
                            record.new_epoch = Some((epoch, at_ns));
                            record.switchover_ms = Some(ms(at_ns.saturating_sub(record.start_ns)));
                        }
                        Err(HarnessError::Interrupted) => return Err(HarnessError::Interrupted),
                        Err(e) => record.error = Some(format!("the switchover did not complete: {e}")),
                    }
                }
                Ok(reply) => record.error = Some(format!("switchover not started: {}", reply.message)),
                Err(e) => record.error = Some(format!("console: {e}")),
            }
        }
        FaultKind::TerminatePrimary => {
            rig.nodes[p].terminate()?;
            let limit = Duration::from_millis(timing.switchover_timeout_ms * 3 + 6000);
            let deadline = std::time::Instant::now() + limit;
            while rig.nodes[p].running() {
                if std::time::Instant::now() >= deadline {
                    return Err(HarnessError::Stuck(format!(
                        "node {} did not exit within {limit:?} of SIGTERM\n{}",
                        p + 1,
                        rig.context()
                    )));
                }
                rig.sleep(Duration::from_millis(5))?;
            }
            rig.watchers[p].forget_status();
            match rig.await_epoch_above(health.epoch, takeover_limit) {
                Ok((epoch, at_ns)) => {
                    record.new_epoch = Some((epoch, at_ns));
                    record.switchover_ms = Some(ms(at_ns.saturating_sub(record.start_ns)));
                }
                Err(HarnessError::Interrupted) => return Err(HarnessError::Interrupted),
                Err(e) => record.error = Some(format!("no new primary after SIGTERM: {e}")),
            }
            rig.sleep(hold)?;
            rig.say(&format!("restart node {}", p + 1));
            rig.nodes[p].spawn()?;
        }
    }
    record.end_ns = rig.clock.now_ns();
    rig.doing(&format!("recovery after #{index}"));
    match rig.await_healthy(limit) {
        Ok(after) => {
            record.recovered_ns = Some(rig.clock.now_ns());
            record.primary_after = Some(after.primary as u8 + 1);
            if record.new_epoch.is_none() && after.epoch > health.epoch {
                record.new_epoch = rig
                    .sink
                    .with(|s| s.first_epoch_above(health.epoch))
                    .map(|(e, start)| (e, start.first_accept_ns));
            }
        }
        Err(HarnessError::Interrupted) => return Err(HarnessError::Interrupted),
        Err(e) => record.error = Some(format!("no recovery: {e}")),
    }
    if let Some(watch) = &mut record.minority {
        // After the heal: a lead that the polls missed still shows in its counter.
        if let Ok(s) = rig.consoles[usize::from(watch.node - 1)].status() {
            watch.takeovers_after = Some(s.takeovers);
            watch.saw(s.role, s.epoch);
        }
        rig.say(&format!(
            "partition_backup: node {} cut off, primary seen {} of {} polls, takeovers {:?} -> {:?}, led {:?}",
            watch.node,
            watch.primary_seen,
            watch.answered,
            watch.takeovers_before,
            watch.takeovers_after,
            watch.led()
        ));
    }
    rig.doing("");
    Ok(record)
}

fn link_fault(rig: &Rig, f: impl FnOnce(&super::proxy::Proxy)) {
    if let Some(proxy) = &rig.proxy {
        f(proxy);
    }
}

/// Brings a pair that did not recover back (thaw, heal, restart what is down) and waits
/// for health again. Returns the health, or the error that ends the run.
pub fn repair(rig: &mut Rig) -> Result<Health, HarnessError> {
    rig.say("repair: thaw, heal every link, restart any node that is down");
    if let Some(proxy) = &rig.proxy {
        proxy.heal();
    }
    for i in 0..rig.nodes.len() {
        if rig.nodes[i].frozen() {
            rig.nodes[i].thaw()?;
        }
        if !rig.nodes[i].running() {
            rig.nodes[i].spawn()?;
        }
    }
    let limit = recovery_limit(&rig.config.timing) * 2;
    rig.await_healthy(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chaos_schedule_is_seeded_and_covers_kinds() {
        let t = Timing::HARNESS;
        let a = chaos_schedule(200, 5, &t, true, false);
        assert_eq!(a, chaos_schedule(200, 5, &t, true, false));
        assert_ne!(a, chaos_schedule(200, 6, &t, true, false));
        let names: std::collections::BTreeSet<String> = a.iter().map(|f| f.kind.name()).collect();
        assert!(names.len() >= 12, "{names:?}");
        for f in &a {
            match f.kind {
                FaultKind::FreezePrimaryShort | FaultKind::FreezeBackupShort => {
                    assert!(f.hold_ms < t.window_ms, "a short freeze is shorter than the window")
                }
                FaultKind::FreezePrimaryLong => {
                    assert!(f.hold_ms > t.takeover_ms());
                    assert_eq!(f.kind.expect(&t, f.hold_ms), Expect::Takeover);
                }
                _ => {}
            }
        }
        assert!(chaos_schedule(100, 5, &t, false, false)
            .iter()
            .all(|f| !f.kind.needs_proxy()));
        assert!(
            a.iter().all(|f| f.kind != FaultKind::PartitionBackup),
            "a pair has none"
        );
    }

    /// A group's chaos draws `partition_backup`, held past window + probe (so the cut-off
    /// backup does try to take over) and expected to cause none; without the proxy none.
    #[test]
    fn chaos_schedule_group_draws_partition_backup() {
        let t = Timing::HARNESS;
        let g = chaos_schedule(200, 5, &t, true, true);
        let cuts: Vec<&Fault> = g.iter().filter(|f| f.kind == FaultKind::PartitionBackup).collect();
        assert!(cuts.len() >= 5, "{} of 200", cuts.len());
        for f in cuts {
            assert!(f.hold_ms > t.takeover_ms(), "{f:?}");
            assert_eq!(f.kind.expect(&t, f.hold_ms), Expect::NoTakeover);
            assert!(f.kind.needs_proxy());
        }
        assert_eq!(FaultKind::PartitionBackup.name(), "partition_backup");
        assert!(chaos_schedule(200, 5, &t, false, true)
            .iter()
            .all(|f| f.kind != FaultKind::PartitionBackup));
    }

    /// The isolated backup's own statuses decide `minority_led`: role primary during the
    /// hold, a moved takeover counter, or a term of its own all count as leading; a node
    /// that only followed did not lead; an unreadable one is not judged.
    #[test]
    fn minority_watch_led_from_its_statuses() {
        use twinloop::io::schema::Role;
        let start = |takeovers| MinorityWatch {
            node: 3,
            takeovers_before: Some(takeovers),
            epoch_before: Some(0x201),
            epoch_max: 0x201,
            ..MinorityWatch::default()
        };
        // Followed throughout: did not lead.
        let mut w = start(1);
        for _ in 0..5 {
            w.polls += 1;
            w.answered += 1;
            w.saw(Role::Backup, 0x201);
        }
        w.takeovers_after = Some(1);
        assert_eq!(w.led(), Some(false));
        // Seen primary once.
        let mut p = w;
        p.saw(Role::Primary, 0x201);
        assert_eq!(p.led(), Some(true));
        // Its counter moved though no poll caught it.
        let mut c = w;
        c.takeovers_after = Some(2);
        assert_eq!(c.led(), Some(true));
        // A term of its own (node byte 3) above the one it followed.
        let mut e = w;
        e.saw(Role::Backup, 0x303);
        assert!(e.own_term_seen);
        assert_eq!(e.led(), Some(true));
        // A higher term of another node is not its lead.
        let mut o = w;
        o.saw(Role::Backup, 0x302);
        assert_eq!(o.led(), Some(false));
        // Its console never answered: not judged.
        let none = MinorityWatch {
            node: 3,
            polls: 5,
            ..MinorityWatch::default()
        };
        assert_eq!(none.led(), None);
    }

    #[test]
    fn expectations_follow_the_detection_window() {
        let t = Timing::HARNESS;
        assert_eq!(FaultKind::FreezePrimaryShort.expect(&t, 40), Expect::NoTakeover);
        assert_eq!(FaultKind::CutLink(0).expect(&t, 5000), Expect::NoTakeover);
        assert_eq!(FaultKind::Partition.expect(&t, 500), Expect::Takeover);
        assert_eq!(FaultKind::Delay { ms: 10 }.expect(&t, 1000), Expect::NoTakeover);
        assert_eq!(FaultKind::Delay { ms: 80 }.expect(&t, 1000), Expect::Takeover);
        assert_eq!(FaultKind::TerminatePrimary.expect(&t, 0), Expect::Switchover);
    }

    #[test]
    fn run_schedule_has_every_kind_of_fault() {
        let s = run_schedule(&Timing::HARNESS);
        let names: Vec<String> = s.iter().map(|f| f.kind.name()).collect();
        for kind in [
            "kill_primary",
            "freeze_primary_short",
            "partition",
            "cut_link0",
            "switchover",
        ] {
            assert!(names.iter().any(|n| n == kind), "{kind} missing");
        }
    }
}
