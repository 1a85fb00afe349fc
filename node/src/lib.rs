//! `opengateway`: one binary that joins an inference cluster over Hyperswarm and answers
//! prompts with a local model, as a drop-in for the JS proof of concept.
//!
//! Nothing is implemented yet; this crate sits on top of `swarm`.
