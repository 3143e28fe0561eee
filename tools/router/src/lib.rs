//! `twinloop-router`: one Modbus/TCP endpoint for the HMIs of a fleet of twinloop pairs
//! (issue 18; docs/HMI.md, "The router"). A unit id names a pair; reads go to the
//! least-loaded in-sync node of the pair, writes to its primary, and a request caught by
//! a node's death or demotion is retried on the new primary, a write applied at most
//! once (the nodes' dedup, keyed on the HMI's client id and transaction id).

pub mod config;
pub mod route;
pub mod wire;
