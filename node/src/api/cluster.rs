//! What the API needs from the cluster, as a trait the swarm layer will implement.
//!
//! A request for a model this node serves runs on the local queue. Any other model is looked up
//! in [`Cluster::models`] (what peers announced in `peer_hello`'s `supported_models`); when a
//! peer offers it, [`Cluster::forward`] sends it there as an `inference_request` with
//! `"stream": true` and feeds the `inference_chunk` lines back as [`Event`]s. The swarm layer
//! does not exist yet, so the node runs with [`LocalOnly`]: no peer models, and a request that
//! would need a peer is answered 503 (known model, no peer reachable) or 404 (unknown model).

use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

use super::Event;
use crate::inference::request::GenRequest;

/// A model a peer offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerModel {
    /// The model id.
    pub id: String,
    /// The peer's node name.
    pub peer: String,
}

/// A peer, for the cluster view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    /// Its node name.
    pub node_name: String,
    /// Hex public key.
    pub peer_id: String,
    /// Clusters it is in.
    pub clusters: Vec<String>,
    /// Models it announced.
    pub models: Vec<String>,
    /// ISO-8601.
    pub connected_at: String,
    /// ISO-8601.
    pub last_seen_at: String,
    /// Requests this node sent it and it answered.
    pub requests_served: u64,
}

/// Why a request could not go to a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// No connected peer offers the model (or every one that does failed).
    #[error("no peer that serves model `{0}` is reachable")]
    NoPeer(String),
}

/// The cluster as the API sees it.
pub trait Cluster: Send + Sync + std::fmt::Debug + 'static {
    /// The clusters this node is in.
    fn clusters(&self) -> Vec<String>;
    /// Models peers announced, one entry per (model, peer).
    fn models(&self) -> Vec<PeerModel>;
    /// Connected peers.
    fn peers(&self) -> Vec<PeerInfo>;
    /// Sends `req` to a peer that announced `req.model` (least loaded first, another on
    /// failure); the answer arrives on `events` (deltas, then `Done`). Returns the peer's name.
    fn forward(
        &self,
        req: GenRequest,
        events: UnboundedSender<Event>,
    ) -> Result<String, ClusterError>;
}

/// A node without the network: no peers.
#[derive(Debug, Clone, Default)]
pub struct LocalOnly;

impl Cluster for LocalOnly {
    fn clusters(&self) -> Vec<String> {
        Vec::new()
    }

    fn models(&self) -> Vec<PeerModel> {
        Vec::new()
    }

    fn peers(&self) -> Vec<PeerInfo> {
        Vec::new()
    }

    fn forward(
        &self,
        req: GenRequest,
        _events: UnboundedSender<Event>,
    ) -> Result<String, ClusterError> {
        Err(ClusterError::NoPeer(req.model.unwrap_or_default()))
    }
}
