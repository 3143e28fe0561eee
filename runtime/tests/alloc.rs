//! Zero heap allocations per steady-state cycle, on the primary and on the backup.
//!
//! A counting global allocator counts only while a node is being called (a thread-local
//! switch), so the test driver's own bookkeeping does not blur the figure. This file holds
//! one test so that no other test thread allocates while it counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use twinloop::testing::TestApp;
use twinloop::wire::WireBuf;
use twinloop::{Action, Boot, Config, Instant, Node, Role, SyncState};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with allocation counting on; returns what it returned.
fn counted<T>(f: impl FnOnce() -> T) -> T {
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    out
}

struct Driver {
    nodes: [Node<TestApp>; 2],
    now: Instant,
    /// Messages in flight: (to, link, bytes). Capacity reserved up front.
    wire: Vec<(usize, u8, WireBuf)>,
    emitted: u64,
}

impl Driver {
    fn drain(&mut self, i: usize) {
        loop {
            let action = counted(|| self.nodes[i].poll_action());
            let Some(action) = action else { break };
            match action {
                Action::Transmit { link, bytes, .. } => self.wire.push((1 - i, link, bytes)),
                Action::Emit(_) => self.emitted += 1,
                _ => {}
            }
        }
    }

    fn deliver(&mut self) {
        while !self.wire.is_empty() {
            let (to, link, bytes) = self.wire.remove(0);
            let now = self.now;
            counted(|| self.nodes[to].handle_message(now, link, &bytes));
            self.drain(to);
        }
    }

    fn timeouts(&mut self) {
        for i in 0..2 {
            let now = self.now;
            if self.nodes[i].poll_timeout().is_some_and(|t| t <= now) {
                counted(|| self.nodes[i].handle_timeout(now));
                self.drain(i);
            }
        }
    }

    /// One 1 ms cycle: a frame to both nodes, the sync traffic, the timers.
    fn cycle(&mut self, frame: u64) {
        self.now = Instant::from_nanos(self.now.as_nanos() + 1_000_000);
        let payload = TestApp::payload_for(frame);
        for i in 0..2 {
            let now = self.now;
            counted(|| self.nodes[i].handle_frame(now, frame, &payload));
            self.drain(i);
        }
        self.deliver();
        self.timeouts();
        self.deliver();
    }
}

#[test]
fn steady_state_cycle_allocates_nothing_on_primary_and_backup() {
    let config = Config::fast();
    let mk = |id: u8, seed: u64| {
        let config = Config {
            node_id: id,
            ..config.clone()
        };
        let boot = Boot {
            now: Instant::from_millis(1),
            seed,
            epoch_persisted: 0,
            epoch_reserved: 0,
        };
        Node::new(config, TestApp::new(4096), boot).expect("valid config")
    };
    let mut d = Driver {
        nodes: [mk(1, 1), mk(2, 2)],
        now: Instant::from_millis(1),
        wire: Vec::with_capacity(4096),
        emitted: 0,
    };
    // Warm up: election, join, state transfer, until the backup is in sync.
    let mut frame = 1;
    while frame < 2000 {
        d.cycle(frame);
        frame += 1;
        let roles = [d.nodes[0].role(), d.nodes[1].role()];
        if roles.contains(&Role::Primary)
            && roles.contains(&Role::Backup)
            && d.nodes.iter().any(|n| n.status().sync == SyncState::InSync)
            && frame > 200
        {
            break;
        }
    }
    let backup = d.nodes.iter().position(|n| n.role() == Role::Backup).expect("a backup");
    assert_eq!(
        d.nodes[backup].status().sync,
        SyncState::InSync,
        "backup never got in sync"
    );

    // The counter itself works: one allocation inside `counted` is seen.
    ALLOCATIONS.store(0, Ordering::Relaxed);
    let probe = counted(|| Vec::<u8>::with_capacity(64));
    drop(probe);
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 1);

    ALLOCATIONS.store(0, Ordering::Relaxed);
    let emitted_before = d.emitted;
    let backup_frame_before = d.nodes[backup].frame();
    let cycles = 5000;
    for _ in 0..cycles {
        d.cycle(frame);
        frame += 1;
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    // The cycles really ran on both nodes: outputs left the primary, the backup followed.
    assert!(d.emitted - emitted_before >= cycles);
    assert!(d.nodes[backup].frame() - backup_frame_before >= cycles - 1);
    println!("allocations in {cycles} steady-state cycles (primary + backup): {allocations}");
    assert_eq!(allocations, 0, "{allocations} heap allocations in {cycles} cycles");
}
