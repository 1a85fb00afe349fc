//! `opengateway`: a node of an OpenGateway inference cluster, as a drop-in replacement for the
//! JS proof of concept (`opengateway scripts/cli.js`, `scripts/poc-node.js`).
//!
//! This crate holds everything that does not need the network: the POC root and its JSON files
//! ([`config`], [`jsonfile`]), the model tiers and cluster registry ([`tiers`]), resource gauging
//! ([`gauge`]), cluster topics ([`topic`]), the NDJSON wire messages ([`protocol`]), the inference
//! backends with the model cache and request queue ([`inference`]), and the command line
//! ([`cli`]). Joining clusters (`start`, `prompt`) waits for the `swarm` crate.

pub mod api;
pub mod cli;
pub mod config;
pub mod gauge;
pub mod inference;
pub mod jsonfile;
pub mod protocol;
pub mod tiers;
pub mod topic;
