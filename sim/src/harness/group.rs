//! Groups in the process harness (issue 16): `--nodes 2..=4` and `--witness`. The shape
//! of the group, the full mesh of sync links between its nodes — every pair of nodes
//! joined by `LINKS` links, each relayed through the fault proxy as one of its two-ended
//! links, so the proxy needs no change — and each node's configuration file with its
//! `[[peers]]`.
//!
//! The rig (`rig.rs`) starts every node of the shape, writes their files from
//! [`node_toml`] and relays their links through the proxy as [`link_ends`] lays them out;
//! `run`, `chaos` and `bench failover` take `--nodes 3|4 [--witness]`.

use super::proxy::{LinkEnds, Proxy};
use super::rig::{RigConfig, LINKS};
use std::net::SocketAddr;
use twinloop::io::config::{ConsoleConfig, FramesConfig, LinkConfig, LogConfig, OutputsConfig, ShutdownConfig};
use twinloop::node_main::config::PeerTable;
use twinloop::testing::{NodePorts, PortPool};
use twinloop_demo::node_config::{NodeFile, NodeTable, Profile};

const LINK_NAMES: [&str; LINKS] = ["sync", "plant"];

/// The most nodes of a group (the core's `GROUP_PEERS_MAX` + 1).
pub const NODES_MAX: usize = twinloop::config::GROUP_PEERS_MAX + 1;

/// How many nodes, and whether the last one is a witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupShape {
    /// 2..=`NODES_MAX`.
    pub nodes: usize,
    /// The last node is the group's witness (`runtime.witness = true`; it runs the
    /// program's binary, see `Rig::prepare`).
    pub witness: bool,
}

impl GroupShape {
    /// The shape `--nodes` and `--witness` ask for, or the one line naming the fix.
    pub fn new(nodes: usize, witness: bool) -> Result<GroupShape, String> {
        if !(2..=NODES_MAX).contains(&nodes) {
            return Err(format!("--nodes {nodes}: a pair or a group has 2..={NODES_MAX} nodes"));
        }
        if witness && nodes < 3 {
            return Err("--witness: a pair has no witness; give --nodes 3 or 4 (the last node is the witness)".into());
        }
        Ok(GroupShape { nodes, witness })
    }

    /// A pair: the harness runs as it always has.
    pub fn is_pair(&self) -> bool {
        self.nodes == 2
    }

    /// Node `i` (0-based) is the witness.
    pub fn is_witness(&self, i: usize) -> bool {
        self.witness && i + 1 == self.nodes
    }

    /// Node `i`'s weight in the succession: node 1 the heaviest, so the expected
    /// successor of a lost primary is the next in order (0 for the witness).
    pub fn weight(&self, i: usize) -> u8 {
        if self.is_witness(i) {
            0
        } else {
            (NODES_MAX - i) as u8
        }
    }

    /// The pairs of nodes `(i, j)`, `i < j`, that sync links join: every pair (a full
    /// mesh), in order.
    pub fn edges(&self) -> Vec<(usize, usize)> {
        let mut edges = Vec::new();
        for i in 0..self.nodes {
            for j in i + 1..self.nodes {
                edges.push((i, j));
            }
        }
        edges
    }
}

/// Every port of a group: each node's own (frames, console), and per node and peer the
/// control and bulk ports of each of its `LINKS` links to that peer.
#[derive(Debug, Clone)]
pub struct GroupPorts {
    /// `nodes[i]`: node `i`'s frames and console ports (its `links` are unused).
    pub nodes: Vec<NodePorts>,
    /// `mesh[i][j]`: node `i`'s sockets for its links to node `j` (`i != j`).
    pub mesh: Vec<Vec<[[u16; 2]; LINKS]>>,
}

impl GroupPorts {
    /// Ports for `shape`, from `pool`.
    pub fn take(shape: GroupShape, pool: &mut PortPool) -> GroupPorts {
        let nodes = (0..shape.nodes).map(|_| pool.node()).collect();
        let mesh = (0..shape.nodes)
            .map(|i| {
                (0..shape.nodes)
                    .map(|j| if i == j { [[0; 2]; LINKS] } else { pool.node().links })
                    .collect()
            })
            .collect();
        GroupPorts { nodes, mesh }
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The proxy's links for the group: one two-ended link per edge and link, in the order of
/// `shape.edges()` then link; its end 0 is the edge's lower node.
pub fn link_ends(shape: GroupShape, ports: &GroupPorts) -> Vec<LinkEnds> {
    let mut ends = Vec::new();
    for (i, j) in shape.edges() {
        for (l, name) in LINK_NAMES.iter().enumerate() {
            let (a, b) = (ports.mesh[i][j][l], ports.mesh[j][i][l]);
            ends.push(LinkEnds {
                name: format!("{name}-{}-{}", i + 1, j + 1),
                targets: [[local(a[0]), local(a[1])], [local(b[0]), local(b[1])]],
            });
        }
    }
    ends
}

/// The index of the proxy link that carries link `l` between nodes `i` and `j`, and which
/// end of it node `i` is.
pub fn proxy_link(shape: GroupShape, i: usize, j: usize, l: usize) -> (usize, usize) {
    let edge = (i.min(j), i.max(j));
    let index = shape.edges().iter().position(|e| *e == edge).unwrap_or(0);
    (index * LINKS + l, usize::from(i > j))
}

/// Node `i`'s configuration file in a group of `shape`: its `[[peers]]`, each with its
/// links (through the proxy when there is one), weights as [`GroupShape::weight`] gives
/// them, the witness flagged; its own `runtime.weight`, or `runtime.witness` for the
/// witness (which `twinloop-witness` forces anyway).
pub fn node_toml(
    config: &RigConfig,
    shape: GroupShape,
    i: usize,
    ports: &GroupPorts,
    proxy: Option<&Proxy>,
    sink: SocketAddr,
) -> String {
    let id = i + 1;
    let t = &config.timing;
    let peers = (0..shape.nodes)
        .filter(|&j| j != i)
        .map(|j| {
            let links = (0..LINKS)
                .map(|l| {
                    let mine = ports.mesh[i][j][l];
                    let theirs = ports.mesh[j][i][l];
                    let (link, end) = proxy_link(shape, i, j, l);
                    let peer = |class: usize| {
                        proxy
                            .and_then(|p| p.address_for(link, end, class))
                            .unwrap_or_else(|| local(theirs[class]))
                    };
                    LinkConfig {
                        name: format!("{}-{}", LINK_NAMES[l], j + 1),
                        bind: local(mine[0]),
                        bulk_bind: Some(local(mine[1])),
                        peer: peer(0),
                        bulk_peer: Some(peer(1)),
                        ..LinkConfig::default()
                    }
                })
                .collect();
            PeerTable {
                id: (j + 1) as u8,
                weight: (!shape.is_witness(j)).then(|| shape.weight(j)),
                witness: shape.is_witness(j),
                links,
            }
        })
        .collect();
    let (profile, base) = if t.base == "fast" {
        (Profile::Fast, twinloop::Config::fast())
    } else {
        (Profile::Default, twinloop::Config::default())
    };
    let witness = shape.is_witness(i);
    let dir = &config.dir;
    let file = NodeFile {
        node: NodeTable {
            name: format!("node-{id}"),
            state_file: dir.join(format!("node-{id}.epoch")),
            seed: (config.seed.wrapping_mul(4).wrapping_add(id as u64) & 0x3FFF_FFFF_FFFF_FFFF).max(1),
            sync_key_file: Some(dir.join("sync.key")),
            profile,
        },
        runtime: twinloop::Config {
            node_id: id as u8,
            priority: if i == 0 { 1 } else { 0 },
            weight: if witness { base.weight } else { shape.weight(i) },
            witness,
            heartbeat_interval_ms: t.heartbeat_ms,
            detection_window_ms: t.window_ms,
            probe_timeout_ms: t.probe_ms,
            startup_wait_ms: t.startup_ms,
            retry_ms: t.retry_ms,
            switchover_timeout_ms: t.switchover_timeout_ms,
            ..base
        },
        frames: FramesConfig {
            bind: local(ports.nodes[i].frames),
            ..FramesConfig::default()
        },
        peers,
        outputs: OutputsConfig {
            bind: local(0),
            sinks: vec![sink],
            level_refresh_ms: config.level_refresh_ms,
            acks: config.acks,
            ack_key_file: config.acks.then(|| dir.join(super::rig::ACK_KEY_FILE)),
            ..OutputsConfig::default()
        },
        console: ConsoleConfig {
            bind: local(ports.nodes[i].console),
            key_file: Some(dir.join("console.key")),
            ..ConsoleConfig::default()
        },
        shutdown: ShutdownConfig {
            switchover: true,
            switchover_wait_ms: (t.switchover_timeout_ms * 3).max(3000),
        },
        log: LogConfig {
            level: config.log_level.clone(),
        },
        app: config.params(),
        ..NodeFile::default()
    };
    // Every value above is representable: a failure is a bug of this function.
    let mut text = file.to_toml().expect("a node file serializes");
    if witness {
        // `twinloop-witness` runs no program: its `[app]` table takes no key.
        let mut table: toml::Table = text.parse().expect("a node file parses");
        table.insert("app".into(), toml::Value::Table(toml::Table::new()));
        text = toml::to_string(&table).expect("a node file serializes");
    }
    format!(
        "# Generated by twinloop-sim for node {id} of a group of {}; every key is in docs/CONFIG.md.\n{text}",
        shape.nodes
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn group_shape_bounds_and_witness_need_a_group() {
        assert!(GroupShape::new(2, false).unwrap().is_pair());
        assert!(GroupShape::new(1, false).unwrap_err().contains("2..=4"));
        assert!(GroupShape::new(5, false).unwrap_err().contains("2..=4"));
        assert!(GroupShape::new(2, true).unwrap_err().contains("a pair has no witness"));
        let three = GroupShape::new(3, true).unwrap();
        assert_eq!((0..3).map(|i| three.weight(i)).collect::<Vec<_>>(), [4, 3, 0]);
        assert_eq!(GroupShape::new(4, false).unwrap().edges().len(), 6);
        assert_eq!(three.edges(), [(0, 1), (0, 2), (1, 2)]);
    }

    /// Three nodes through the proxy: every node's file lists the two others with their
    /// weights and the witness, each link sends to the proxy's relay towards that peer,
    /// which forwards to the peer's own socket for that link; every port is distinct; the
    /// files load, and all three compute one membership digest.
    #[test]
    fn group_node_toml_full_mesh_through_the_proxy() {
        let dir = std::env::temp_dir().join(format!("twinloop-sim-group-{}", std::process::id()));
        let config = RigConfig::new(dir.clone(), PathBuf::from("twinloop-demo"));
        let shape = GroupShape::new(3, true).unwrap();
        let mut pool = PortPool::new();
        let ports = GroupPorts::take(shape, &mut pool);
        let mut all: Vec<u16> = ports.nodes.iter().flat_map(|n| [n.frames, n.console]).collect();
        for (i, row) in ports.mesh.iter().enumerate() {
            for (j, links) in row.iter().enumerate() {
                if i != j {
                    all.extend(links.iter().flatten());
                }
            }
        }
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "every port distinct");

        let ends = link_ends(shape, &ports);
        assert_eq!(ends.len(), 3 * LINKS);
        let proxy = Proxy::start(ends.clone(), 1).unwrap();
        let mut digests = Vec::new();
        for i in 0..3 {
            let text = node_toml(&config, shape, i, &ports, Some(&proxy), local(9));
            let file = NodeFile::parse(&text, &dir, &[]).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(file.shell().links.len(), 2 * LINKS, "the shell opens both peers' links");
            // The same file as its tables say, checked against the shape.
            let table: toml::Table = text.parse().unwrap();
            // `twinloop-witness` refuses any `[app]` key; the program nodes have theirs.
            let app = table["app"].as_table().unwrap();
            assert_eq!(app.is_empty(), shape.is_witness(i), "{text}");
            let peers = table["peers"].as_array().unwrap();
            assert_eq!(peers.len(), 2, "{text}");
            let mut runtime = twinloop::Config {
                node_id: (i + 1) as u8,
                weight: table["runtime"]
                    .get("weight")
                    .map_or(1, |w| w.as_integer().unwrap() as u8),
                witness: shape.is_witness(i),
                ..twinloop::Config::default()
            };
            for peer in peers {
                let j = peer["id"].as_integer().unwrap() as usize - 1;
                assert_ne!(j, i);
                assert_eq!(
                    peer.get("witness").and_then(|w| w.as_bool()).unwrap_or(false),
                    shape.is_witness(j)
                );
                let links = peer["links"].as_array().unwrap();
                assert_eq!(links.len(), LINKS);
                for (l, link) in links.iter().enumerate() {
                    let (index, end) = proxy_link(shape, i, j, l);
                    let sent_to: SocketAddr = link["peer"].as_str().unwrap().parse().unwrap();
                    assert_eq!(
                        Some(sent_to),
                        proxy.address_for(index, end, 0),
                        "node {} to {}",
                        i + 1,
                        j + 1
                    );
                    // The relay forwards to the other end: node j's socket for this link.
                    assert_eq!(ends[index].targets[1 - end][0], local(ports.mesh[j][i][l][0]));
                    let bind: SocketAddr = link["bind"].as_str().unwrap().parse().unwrap();
                    assert_eq!(bind, local(ports.mesh[i][j][l][0]));
                }
                runtime.peers.push(twinloop::config::GroupPeer {
                    id: (j + 1) as u8,
                    weight: shape.weight(j),
                    witness: shape.is_witness(j),
                    links: LINKS as u8,
                });
            }
            assert_eq!(runtime.group_digest(), file.runtime.group_digest());
            digests.push(runtime.group_digest());
        }
        assert!(digests.iter().all(|d| *d == digests[0] && *d != 0), "{digests:?}");
    }
}
