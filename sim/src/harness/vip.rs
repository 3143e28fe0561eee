//! The service address on network namespaces: two "machines" (`a`, `b`) and a `client`
//! on one bridge, the address `10.77.0.100/24` moved between the machines either by a
//! twinloop pair running `tools/vip/twinloop-vip` as its role hook or by keepalived
//! (VRRPv3), and the time from a machine's death to the address answering from the other.
//!
//! Who answers is told by the service itself: a UDP responder in each machine's namespace
//! replies with its machine's letter, and the client asks the address every millisecond.
//! The answer goes to whichever MAC the client's neighbour entry names, so "answers from
//! b" means the address is on b *and* the client's neighbour table moved to b's MAC (the
//! gratuitous ARP did its work).
//!
//! A machine dies as an IPC does when it loses power: the program stops (SIGKILL: it runs
//! no `stopped` hook, so the address stays configured in its namespace) and the NIC goes
//! silent at the same instant (its cable end on the bridge is set down). It comes back as
//! after a reboot: without the address (addresses are not persistent), cable up, program
//! started again.
//!
//! Needs root and `ip netns` (iproute2); [`unavailable`] says why not. Every namespace
//! and process is removed when the [`Lab`] is dropped, on a panic too.
#![allow(clippy::disallowed_methods)]

use super::{ms, Percentiles};
use serde_json::{json, Value};
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The service address.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);
/// Its prefix length on the machines' devices.
pub const VIP_PREFIX: u8 = 24;
/// The responders' UDP port.
pub const SERVICE_PORT: u16 = 7999;
/// The device inside each namespace.
pub const DEVICE: &str = "eth0";
/// How often the client asks the address while it waits for an answer.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(1);

/// Machine `i`'s (0 = a, 1 = b) own address; the client is `.3`.
pub fn machine_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 0, 1 + i as u8)
}

/// The client's address.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 3);

/// The shipped hook script (`tools/vip/twinloop-vip` in this workspace), or
/// `TWINLOOP_VIP_SCRIPT`.
pub fn script_path() -> PathBuf {
    std::env::var_os("TWINLOOP_VIP_SCRIPT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/vip/twinloop-vip"),
        PathBuf::from,
    )
}

/// Why the namespaces cannot be made here (not root, no `ip`, no `ip netns`), or `None`.
pub fn unavailable() -> Option<String> {
    let uid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Some(format!("not root (effective uid {uid}): network namespaces need root"));
    }
    match Command::new("ip").args(["netns", "list"]).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`ip netns list` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run `ip` (iproute2): {e}")),
    }
}

/// Runs `ip ARGS`; the error carries its stderr.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A process started in a namespace (`ip netns exec` execs it: the child is the program);
/// SIGKILLed and reaped when dropped.
pub struct NsProcess {
    /// The process.
    pub child: Child,
    /// Its stderr (and stdout) file.
    pub log: PathBuf,
}

impl NsProcess {
    /// Starts `program ARGS` in namespace `ns`, its output appended to `log`.
    pub fn spawn(ns: &str, program: &Path, args: &[&str], log: PathBuf) -> Result<NsProcess, String> {
        // Appended: a restarted program's log follows its earlier runs'.
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        // It dies with the harness even when the harness is SIGKILLed (`setpriv`, as the
        // rig's nodes: the signal survives `ip netns exec`'s exec).
        let mut command = match super::procs::setpriv() {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "ip"]);
                c
            }
            None => Command::new("ip"),
        };
        let child = command
            .args(["netns", "exec", ns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group, so that its death takes what it started with it
            // (keepalived's VRRP child, a node's running hook), as a machine's does.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start {} in {ns}: {e}", program.display()))?;
        Ok(NsProcess { child, log })
    }

    /// SIGKILL to its process group (nothing of the program runs after it: no hook, no
    /// release, no VRRP priority-0 advert).
    pub fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The end of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The namespaces, the bridge, the responders and the client's socket. Dropping it stops
/// the threads and deletes the namespaces (which removes their devices and addresses).
pub struct Lab {
    /// `[bridge, a, b, client]`.
    pub ns: [String; 4],
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    client: Option<UdpSocket>,
    seq: u32,
    /// Frames the source has sent.
    pub frames_sent: Arc<AtomicU32>,
}

/// Runs `f` on a thread that has entered namespace `ns` (sockets made there stay in it).
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || -> Result<T, String> {
        let file = fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns {path}: {e}"))?;
        Ok(f())
    })
    .join()
    .map_err(|_| "a namespace thread panicked".to_string())?
}

/// A UDP socket bound to `bind` in namespace `ns`.
pub fn socket_in(ns: &str, bind: SocketAddr) -> Result<UdpSocket, String> {
    in_ns(ns, move || UdpSocket::bind(bind))?.map_err(|e| format!("bind {bind} in {ns}: {e}"))
}

impl Lab {
    /// Makes the namespaces `<tag>-br`, `<tag>-a`, `<tag>-b`, `<tag>-c` and joins a, b and
    /// the client to a bridge in the first; starts the responders on a and b.
    pub fn new(tag: &str) -> Result<Lab, String> {
        let ns = ["br", "a", "b", "c"].map(|n| format!("{tag}-{n}"));
        // A namespace left by a killed earlier run of the same tag goes first.
        for n in &ns {
            if Path::new("/run/netns").join(n).exists() {
                let _ = ip(&["netns", "del", n]);
            }
        }
        let mut lab = Lab {
            ns: ns.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            client: None,
            seq: 0,
            frames_sent: Arc::new(AtomicU32::new(0)),
        };
        for n in &ns {
            ip(&["netns", "add", n])?;
            ip(&["-n", n, "link", "set", "lo", "up"])?;
        }
        let br = &ns[0];
        ip(&["-n", br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", br, "link", "set", "br0", "up"])?;
        let hosts = [(1, machine_addr(0)), (2, machine_addr(1)), (3, CLIENT)];
        for (k, addr) in hosts {
            let port = format!("v{}", ["", "a", "b", "c"][k]);
            ip(&[
                "-n", br, "link", "add", &port, "type", "veth", "peer", "name", DEVICE, "netns", &ns[k],
            ])?;
            ip(&["-n", br, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", br, "link", "set", &port, "up"])?;
            ip(&["-n", &ns[k], "address", "add", &format!("{addr}/24"), "dev", DEVICE])?;
            ip(&["-n", &ns[k], "link", "set", DEVICE, "up"])?;
        }
        for i in 0..2 {
            let socket = socket_in(&ns[1 + i], SocketAddr::from(([0, 0, 0, 0], SERVICE_PORT)))?;
            socket
                .set_read_timeout(Some(Duration::from_millis(20)))
                .map_err(|e| e.to_string())?;
            let stop = lab.stop.clone();
            let name = [b'a', b'b'][i];
            lab.threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((len, from)) = socket.recv_from(&mut buf) {
                        // The request's number, then who answers.
                        let mut reply = buf[..len.min(4)].to_vec();
                        reply.push(name);
                        let _ = socket.send_to(&reply, from);
                    }
                }
            }));
        }
        let client = socket_in(&ns[3], SocketAddr::from((CLIENT, 0)))?;
        client.set_nonblocking(true).map_err(|e| e.to_string())?;
        lab.client = Some(client);
        Ok(lab)
    }

    /// Machine `i`'s namespace.
    pub fn machine(&self, i: usize) -> &str {
        &self.ns[1 + i]
    }

    /// The client's namespace.
    pub fn client_ns(&self) -> &str {
        &self.ns[3]
    }

    /// Machine `i`'s NIC goes silent: its cable end on the bridge goes down.
    pub fn cut(&self, i: usize) -> Result<(), String> {
        ip(&["-n", &self.ns[0], "link", "set", ["va", "vb"][i], "down"])
    }

    /// Machine `i` as after a reboot, before its program starts: no service address (a
    /// killed program left it configured; a rebooted machine has lost it), cable up.
    pub fn reboot(&self, i: usize) -> Result<(), String> {
        if self.has_vip(i)? {
            ip(&[
                "-n",
                self.machine(i),
                "address",
                "del",
                &format!("{VIP}/{VIP_PREFIX}"),
                "dev",
                DEVICE,
            ])?;
        }
        ip(&["-n", &self.ns[0], "link", "set", ["va", "vb"][i], "up"])
    }

    /// Whether the service address is configured on machine `i`'s device.
    pub fn has_vip(&self, i: usize) -> Result<bool, String> {
        let out = Command::new("ip")
            .args(["-n", self.machine(i), "-o", "address", "show", "dev", DEVICE, "to"])
            .arg(format!("{VIP}/32"))
            .output()
            .map_err(|e| e.to_string())?;
        Ok(!out.stdout.is_empty())
    }

    /// Asks the address once and collects the answers that came meanwhile: the machine
    /// (0 = a, 1 = b) of the newest answer to a request sent at or after `since_seq`.
    fn ask(&mut self, since_seq: u32) -> Option<usize> {
        let client = self.client.as_ref()?;
        self.seq = self.seq.wrapping_add(1);
        let _ = client.send_to(&self.seq.to_be_bytes(), SocketAddr::from((VIP, SERVICE_PORT)));
        let mut buf = [0u8; 16];
        let mut who = None;
        while let Ok((len, _)) = client.recv_from(&mut buf) {
            if len == 5 {
                let seq = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
                if seq >= since_seq {
                    who = match buf[4] {
                        b'a' => Some(0),
                        b'b' => Some(1),
                        _ => who,
                    };
                }
            }
        }
        who
    }

    /// Asks the address every [`PROBE_INTERVAL`] until machine `i` answers; the time from
    /// `since` to the answer's arrival. Fails after `limit` naming who answered last.
    pub fn wait_answer_from(&mut self, i: usize, since: Instant, limit: Duration) -> Result<Duration, String> {
        let first = self.seq.wrapping_add(1);
        let mut last = None;
        loop {
            let who = self.ask(first);
            if who == Some(i) {
                return Ok(since.elapsed());
            }
            if who.is_some() {
                last = who;
            }
            if since.elapsed() > limit || super::interrupted() {
                return Err(format!(
                    "the address did not answer from {} within {limit:?} (last answer from: {})",
                    ["a", "b"][i],
                    last.map_or("nobody", |m| ["a", "b"][m])
                ));
            }
            // Pacing the requests is the measurement's resolution, not a wait for a
            // condition that could be awaited otherwise.
            std::thread::sleep(PROBE_INTERVAL);
        }
    }

    /// Sends the tank program's frames from the client to both machines every `cycle`
    /// (the same constant plant inputs each time) and drains the outputs sent to the
    /// client, until the lab is dropped.
    pub fn start_frames(&mut self, cycle: Duration) -> Result<(), String> {
        let source = socket_in(self.client_ns(), SocketAddr::from((CLIENT, 0)))?;
        let sink = socket_in(self.client_ns(), SocketAddr::from((CLIENT, OUTPUT_PORT)))?;
        sink.set_read_timeout(Some(Duration::from_millis(20)))
            .map_err(|e| e.to_string())?;
        let payload = twinloop_demo::plant::Plant::new(twinloop_demo::plant::PlantParams::default())
            .inputs()
            .encode();
        let stop = self.stop.clone();
        let sent = self.frames_sent.clone();
        self.threads.push(std::thread::spawn(move || {
            let targets = [0, 1].map(|i| SocketAddr::from((machine_addr(i), FRAMES_PORT)));
            let mut number = 0u64;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                number += 1;
                if let Ok(datagram) = twinloop::io_protocol::frame_to_vec(number, &payload) {
                    for t in targets {
                        let _ = source.send_to(&datagram, t);
                    }
                }
                sent.store(number as u32, Ordering::Relaxed);
                // The plant's cycle paces the source.
                next += cycle;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        }));
        let stop = self.stop.clone();
        self.threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let _ = sink.recv_from(&mut buf);
            }
        }));
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.client = None;
        for n in &self.ns {
            let _ = ip(&["netns", "del", n]);
        }
    }
}

/// The nodes' frames port (on each machine's address).
pub const FRAMES_PORT: u16 = 7301;
/// The outputs sink's port (on the client).
pub const OUTPUT_PORT: u16 = 7500;

/// The core timing of the twinloop pair in the lab.
#[derive(Debug, Clone, Copy)]
pub struct PairTiming {
    /// `runtime.heartbeat_interval_ms`.
    pub heartbeat_ms: u64,
    /// `runtime.detection_window_ms`.
    pub window_ms: u64,
    /// `runtime.probe_timeout_ms`.
    pub probe_ms: u64,
    /// `app.cycle_ms` and the source's cycle.
    pub cycle_ms: u32,
}

/// Node `i`'s configuration (node id `i + 1`; node 1 has the priority): links over the
/// machines' addresses, frames from the client, the hook `twinloop-vip VIP/24 eth0`.
pub fn node_toml(i: usize, dir: &Path, script: &Path, t: PairTiming) -> String {
    use twinloop::io::config::{ConsoleConfig, FramesConfig, HookConfig, LinkConfig, OutputsConfig};
    use twinloop_demo::node_config::{NodeFile, NodeTable};
    let me = machine_addr(i);
    let peer = machine_addr(1 - i);
    let at = |addr: Ipv4Addr, port: u16| SocketAddr::V4(SocketAddrV4::new(addr, port));
    let link = |name: &str, port: u16| LinkConfig {
        name: name.into(),
        bind: at(me, port),
        bulk_bind: Some(at(me, port + 1)),
        peer: at(peer, port),
        bulk_peer: Some(at(peer, port + 1)),
        ..LinkConfig::default()
    };
    let file = NodeFile {
        node: NodeTable {
            name: format!("node-{}", ["a", "b"][i]),
            state_file: dir.join(format!("node-{}.epoch", ["a", "b"][i])),
            seed: 77 + i as u64,
            ..NodeTable::default()
        },
        runtime: twinloop::Config {
            node_id: 1 + i as u8,
            links: 2,
            priority: if i == 0 { 1 } else { 0 },
            heartbeat_interval_ms: t.heartbeat_ms,
            detection_window_ms: t.window_ms,
            probe_timeout_ms: t.probe_ms,
            startup_wait_ms: (2 * t.heartbeat_ms).max(100),
            retry_ms: 10,
            ..twinloop::Config::default()
        },
        frames: FramesConfig {
            bind: at(me, FRAMES_PORT),
            ..FramesConfig::default()
        },
        links: vec![link("sync", 7101), link("plant", 7111)],
        outputs: OutputsConfig {
            bind: at(me, 0),
            sinks: vec![at(CLIENT, OUTPUT_PORT)],
            ..OutputsConfig::default()
        },
        // The console on the machine's own loopback (each namespace has its own).
        console: ConsoleConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 7401)),
            ..ConsoleConfig::default()
        },
        hook: HookConfig {
            command: vec![
                script.display().to_string(),
                format!("{VIP}/{VIP_PREFIX}"),
                DEVICE.into(),
            ],
            timeout_ms: 2000,
            ..HookConfig::default()
        },
        app: twinloop_demo::TankParams {
            cycle_ms: Some(t.cycle_ms),
            ..twinloop_demo::TankParams::default()
        },
        ..NodeFile::default()
    };
    file.to_toml().expect("a node file serializes")
}

/// keepalived's configuration for machine `i`: VRRPv3, `advert_int` 0.01 s (10 ms, the
/// shortest VRRPv3 allows), the same address on the same device. Both start as BACKUP
/// with `nopreempt` (like a twinloop pair, a machine that comes back does not take the
/// address back); a has the higher priority so it is master first.
pub fn keepalived_conf(i: usize) -> String {
    format!(
        "global_defs {{\n    router_id twinloop-vip-{name}\n    vrrp_version 3\n}}\n\
         vrrp_instance VIP {{\n    state BACKUP\n    nopreempt\n    interface {DEVICE}\n    virtual_router_id 77\n    \
         priority {prio}\n    advert_int 0.01\n    virtual_ipaddress {{\n        {VIP}/{VIP_PREFIX} dev {DEVICE}\n    }}\n}}\n",
        name = ["a", "b"][i],
        prio = [150, 100][i],
    )
}

/// Which program moves the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mover {
    /// A twinloop pair with the `twinloop-vip` hook.
    Twinloop,
    /// keepalived, VRRPv3.
    Keepalived,
}

/// A lab with the two machines' programs running.
pub struct Pair {
    /// Its programs: `[a, b]`, `None` while a machine is dead.
    pub procs: [Option<NsProcess>; 2],
    /// What moves the address.
    pub mover: Mover,
    /// Where configurations and logs go.
    pub dir: PathBuf,
    binary: PathBuf,
    /// The lab (dropped after the programs: the field order is the drop order).
    pub lab: Lab,
}

impl Pair {
    /// Makes the lab, writes the configurations and starts machine a's program, then b's
    /// once the address answers from a.
    pub fn start(
        tag: &str,
        mover: Mover,
        dir: &Path,
        binary: &Path,
        script: &Path,
        timing: PairTiming,
        limit: Duration,
    ) -> Result<Pair, String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mode = fs::metadata(script)
            .map_err(|e| format!("{}: {e}", script.display()))?
            .permissions()
            .mode();
        if mode & 0o111 == 0 {
            return Err(format!("{} is not executable (chmod +x it)", script.display()));
        }
        let mut lab = Lab::new(tag)?;
        for i in 0..2 {
            let (name, text) = match mover {
                Mover::Twinloop => (
                    format!("node-{}.toml", ["a", "b"][i]),
                    node_toml(i, dir, script, timing),
                ),
                Mover::Keepalived => (format!("keepalived-{}.conf", ["a", "b"][i]), keepalived_conf(i)),
            };
            fs::write(dir.join(name), text).map_err(|e| e.to_string())?;
        }
        if mover == Mover::Twinloop {
            lab.start_frames(Duration::from_millis(u64::from(timing.cycle_ms)))?;
        }
        let mut pair = Pair {
            procs: [None, None],
            mover,
            dir: dir.to_path_buf(),
            binary: binary.to_path_buf(),
            lab,
        };
        pair.spawn(0)?;
        let since = Instant::now();
        pair.lab
            .wait_answer_from(0, since, limit)
            .map_err(|e| format!("{e}\nmachine a's log:\n{}", pair.tail(0)))?;
        pair.spawn(1)?;
        Ok(pair)
    }

    /// Starts machine `i`'s program.
    pub fn spawn(&mut self, i: usize) -> Result<(), String> {
        let name = ["a", "b"][i];
        let ns = self.lab.machine(i).to_string();
        let proc = match self.mover {
            Mover::Twinloop => {
                let config = self.dir.join(format!("node-{name}.toml"));
                NsProcess::spawn(
                    &ns,
                    &self.binary,
                    &["--config", &config.display().to_string()],
                    self.dir.join(format!("node-{name}.log")),
                )?
            }
            Mover::Keepalived => {
                let path = |what: &str| self.dir.join(format!("keepalived-{name}.{what}")).display().to_string();
                // A killed keepalived leaves its pid files, and its processes may linger
                // as zombies where nothing reaps orphans: it would refuse to start.
                for what in ["pid", "vrrp.pid"] {
                    let _ = fs::remove_file(path(what));
                }
                NsProcess::spawn(
                    &ns,
                    Path::new("keepalived"),
                    &[
                        "--dont-fork",
                        "--log-console",
                        "--vrrp",
                        "--use-file",
                        &path("conf"),
                        "--pid",
                        &path("pid"),
                        "--vrrp_pid",
                        &path("vrrp.pid"),
                    ],
                    self.dir.join(format!("keepalived-{name}.log")),
                )?
            }
        };
        self.procs[i] = Some(proc);
        Ok(())
    }

    /// The end of machine `i`'s program log.
    pub fn tail(&self, i: usize) -> String {
        self.procs[i].as_ref().map_or_else(String::new, NsProcess::log_tail)
    }

    /// Machine `i` dies (its NIC silent and its programs SIGKILLed); returns the instant,
    /// taken before either. The cable goes first: nothing the dying programs might send
    /// (a datagram in flight, a goodbye) leaves the machine after the instant.
    pub fn kill_machine(&mut self, i: usize) -> Result<Instant, String> {
        let at = Instant::now();
        self.lab.cut(i)?;
        if let Some(p) = self.procs[i].as_mut() {
            p.kill();
        }
        Ok(at)
    }

    /// Machine `i` comes back (rebooted: no address, cable up, program started).
    pub fn revive(&mut self, i: usize) -> Result<(), String> {
        self.procs[i] = None;
        self.lab.reboot(i)?;
        self.spawn(i)
    }

    /// Twinloop: node `i`'s status from its console (on its machine's loopback), `None`
    /// when it does not answer (yet) or the mover is keepalived.
    pub fn status(&mut self, i: usize) -> Option<twinloop::io::schema::Status> {
        if self.mover != Mover::Twinloop {
            return None;
        }
        in_ns(self.lab.machine(i), || {
            twinloop::io::client::Client::new(SocketAddr::from(([127, 0, 0, 1], 7401)), Duration::from_millis(500))
                .status()
                .ok()
        })
        .ok()
        .flatten()
    }

    /// Twinloop: whether node `i` answers its console as a backup in sync. keepalived:
    /// whether its VRRP process runs (it has no such state to ask).
    pub fn standing_by(&mut self, i: usize) -> bool {
        let Some(p) = self.procs[i].as_mut() else { return false };
        if !p.running() {
            return false;
        }
        if self.mover == Mover::Keepalived {
            return true;
        }
        self.status(i).is_some_and(|s| {
            s.role == twinloop::io::schema::Role::Backup && s.sync == twinloop::io::schema::Sync::InSync
        })
    }
}

/// What `count` failovers of one mover gave.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Kill → the address answering from the other machine, ms, in kill order.
    pub failover_ms: Vec<f64>,
    /// Failures (no answer within the bound, a machine that did not come back).
    pub problems: Vec<String>,
}

/// Kills the machine holding the address `count` times (a, then b, …), each time
/// measuring kill → the address answering from the other, then reviving the dead one
/// and waiting until it stands by again (and `settle` more) before the next kill.
pub fn failovers(pair: &mut Pair, count: usize, settle: Duration, limit: Duration, progress: bool) -> Figures {
    let mut figures = Figures {
        failover_ms: Vec::with_capacity(count),
        problems: Vec::new(),
    };
    let mut holder = 0;
    for k in 0..count {
        if super::interrupted() {
            break;
        }
        let other = 1 - holder;
        let ready = super::wait_until(
            limit,
            Duration::from_millis(10),
            "the other machine standing by",
            || pair.standing_by(other),
        );
        if let Err(e) = ready {
            figures.problems.push(format!("#{k}: {e}\n{}", pair.tail(other)));
            break;
        }
        std::thread::sleep(settle);
        let result = pair
            .kill_machine(holder)
            .and_then(|at| pair.lab.wait_answer_from(other, at, limit));
        match result {
            Ok(d) => {
                if progress {
                    eprintln!(
                        "  {:?} #{k}: {} killed, answers from {} after {:.1} ms",
                        pair.mover,
                        ["a", "b"][holder],
                        ["a", "b"][other],
                        ms(d.as_nanos() as u64)
                    );
                }
                figures.failover_ms.push(ms(d.as_nanos() as u64));
            }
            Err(e) => {
                figures.problems.push(format!("#{k}: {e}\n{}", pair.tail(other)));
                break;
            }
        }
        if let Err(e) = pair.revive(holder) {
            figures.problems.push(format!("#{k}: revive: {e}"));
            break;
        }
        holder = other;
    }
    figures
}

/// The JSON of one mover's figures.
pub fn figures_json(f: &Figures) -> Value {
    let p = Percentiles::of(&f.failover_ms);
    json!({"kills": f.failover_ms.len(), "failover_ms": p.to_json(), "samples_ms": f.failover_ms})
}

/// `twinloop-sim bench vip`: `count` kills with each mover on the same namespaces, one
/// after the other (twinloop first); prints p50/p99/max for both. Exit 0, 11 on a
/// failover that did not happen, 3 when the lab cannot be set up (not root, no
/// keepalived).
pub fn bench_main(args: &super::cli::BenchArgs) -> u8 {
    let fail = |m: String| {
        eprintln!("twinloop-sim bench vip: {m}");
        super::report::EXIT_HARNESS
    };
    if let Some(why) = unavailable() {
        return fail(why);
    }
    if Command::new("keepalived").arg("--version").output().is_err() {
        return fail("keepalived not found: `apt-get install keepalived` (Debian's package)".into());
    }
    let binary = match twinloop_demo::binary::locate() {
        Ok(b) => b,
        Err(e) => return fail(e.to_string()),
    };
    let c = &args.common;
    let timing = PairTiming {
        heartbeat_ms: c.heartbeat_ms.unwrap_or(10),
        window_ms: c.window_ms.unwrap_or(30),
        probe_ms: c.probe_ms.unwrap_or(10),
        cycle_ms: c.cycle_ms.unwrap_or(10),
    };
    if timing.heartbeat_ms == 0 || timing.window_ms < 2 * timing.heartbeat_ms || timing.probe_ms == 0 {
        return fail("timing: heartbeat ≥ 1 ms, window ≥ 2 × heartbeat, probe ≥ 1 ms".into());
    }
    let count = args.count.unwrap_or(10);
    let settle = Duration::from_millis(args.settle_ms.unwrap_or(500));
    let limit = Duration::from_secs(10);
    let dir = c.report.clone().map_or_else(
        || std::env::temp_dir().join(format!("twinloop-sim-bench-vip-{}", std::process::id())),
        |d| d.join("vip"),
    );
    let script = script_path();
    eprintln!(
        "twinloop-sim bench vip: {count} kills each; twinloop heartbeat {} ms, window {} ms, probe {} ms, cycle {} ms; keepalived VRRPv3 advert_int 0.01; the address asked every {} ms; files in {}",
        timing.heartbeat_ms,
        timing.window_ms,
        timing.probe_ms,
        timing.cycle_ms,
        PROBE_INTERVAL.as_millis(),
        dir.display()
    );
    let mut out = serde_json::Map::new();
    let mut problems = Vec::new();
    for mover in [Mover::Twinloop, Mover::Keepalived] {
        if super::interrupted() {
            problems.push("interrupted".to_string());
            break;
        }
        let name = format!("{mover:?}").to_lowercase();
        let tag = format!("tlvb{}", std::process::id() % 100_000);
        let figures = match Pair::start(&tag, mover, &dir.join(&name), &binary, &script, timing, limit) {
            Ok(mut pair) => failovers(&mut pair, count, settle, limit, !c.quiet),
            Err(e) => Figures {
                failover_ms: Vec::new(),
                problems: vec![format!("start: {e}")],
            },
        };
        let p = Percentiles::of(&figures.failover_ms);
        eprintln!(
            "{name:>10}: kill -> address answers from the other machine over {} kills: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            figures.failover_ms.len(),
            p.p50,
            p.p99,
            p.max
        );
        problems.extend(figures.problems.iter().map(|e| format!("{name}: {e}")));
        out.insert(name, figures_json(&figures));
    }
    let mut json = Value::Object(out);
    json["bench"] = json!("vip");
    json["timing"] = json!({"heartbeat_ms": timing.heartbeat_ms, "window_ms": timing.window_ms, "probe_ms": timing.probe_ms, "cycle_ms": timing.cycle_ms});
    json["keepalived_advert_ms"] = json!(10);
    json["probe_interval_ms"] = json!(PROBE_INTERVAL.as_millis() as u64);
    json["load_average_1m"] = json!(super::load_average());
    json["problems"] = json!(problems);
    for p in &problems {
        eprintln!("PROBLEM: {p}");
    }
    println!("{json}");
    if super::interrupted() {
        eprintln!("twinloop-sim bench vip: interrupted; the programs were killed and the namespaces deleted");
        return super::report::EXIT_INTERRUPTED;
    }
    if problems.is_empty() {
        if c.report.is_none() {
            let _ = fs::remove_dir_all(&dir);
        }
        0
    } else {
        eprintln!("configurations and logs kept in {}", dir.display());
        super::report::EXIT_LIVENESS
    }
}
