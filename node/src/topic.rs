//! Cluster topics: how a cluster id becomes the 32-byte Hyperswarm topic.
//!
//! Two derivations are in use by POC nodes in the field:
//! - `sha256`: the SHA-256 of the id's UTF-8 bytes (the POC before its cluster-registry change);
//! - `padded`: the id's UTF-8 bytes truncated to 32 bytes and right-padded with zero bytes
//!   (`opengateway scripts/poc-node.js topicForCluster`), so the id can be read back from a
//!   connection's topics (`decodeTopic`). Ids longer than 32 bytes collide after truncation.
//!
//! A node can join with either or both (`--topic-scheme`, `OPENGATEWAY_TOPIC_SCHEME`). The
//! default is both, so a node meets POC nodes of either version; the padded topic comes first.

use sha2::{Digest, Sha256};

/// Which topic derivation(s) to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TopicScheme {
    /// SHA-256 of the UTF-8 id.
    Sha256,
    /// UTF-8 id, truncated/zero-padded to 32 bytes (the current POC).
    Padded,
    /// Both topics, one join each (the default).
    #[default]
    Both,
}

/// The value of `OPENGATEWAY_TOPIC_SCHEME` is not one of the schemes.
#[derive(Debug, thiserror::Error)]
#[error("unknown topic scheme {0:?}: use sha256, padded or both")]
pub struct UnknownScheme(pub String);

impl std::str::FromStr for TopicScheme {
    type Err = UnknownScheme;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sha256" => Ok(TopicScheme::Sha256),
            "padded" => Ok(TopicScheme::Padded),
            "both" => Ok(TopicScheme::Both),
            _ => Err(UnknownScheme(s.to_owned())),
        }
    }
}

impl TopicScheme {
    /// The topics to join for `cluster_id` (padded first when both).
    pub fn topics(self, cluster_id: &str) -> Vec<[u8; 32]> {
        match self {
            TopicScheme::Sha256 => vec![sha256_topic(cluster_id)],
            TopicScheme::Padded => vec![padded_topic(cluster_id)],
            TopicScheme::Both => vec![padded_topic(cluster_id), sha256_topic(cluster_id)],
        }
    }
}

/// `sha256(utf8(id))`.
pub fn sha256_topic(cluster_id: &str) -> [u8; 32] {
    Sha256::digest(cluster_id.as_bytes()).into()
}

/// The id's UTF-8 bytes, truncated to 32 and zero-padded.
pub fn padded_topic(cluster_id: &str) -> [u8; 32] {
    let mut t = [0u8; 32];
    for (dst, src) in t.iter_mut().zip(cluster_id.as_bytes()) {
        *dst = *src;
    }
    t
}

/// Reads an id back from a padded topic as `poc-node.js decodeTopic` does: UTF-8 (invalid
/// sequences, such as a character cut by truncation, become U+FFFD), trailing zero bytes removed,
/// then surrounding whitespace trimmed.
pub fn decode_padded(topic: &[u8; 32]) -> String {
    let s = String::from_utf8_lossy(topic);
    s.trim_end_matches('\0').trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_known_digest() {
        // The FIPS 180-2 test vector sha256("abc").
        assert_eq!(
            hex::encode(sha256_topic("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn padded_truncates_pads_and_decodes() {
        let t = padded_topic("gatewayai-poc");
        assert_eq!(&t[..13], b"gatewayai-poc");
        assert!(t[13..].iter().all(|b| *b == 0));
        assert_eq!(decode_padded(&t), "gatewayai-poc");
        // 39 bytes: cut to 32, and two ids sharing a 32-byte prefix share the topic.
        let a = "cluster-ap-northeast-1-llama-3_1-70b";
        let b = "cluster-ap-northeast-1-llama-3_1-405b";
        assert_eq!(padded_topic(a), padded_topic(b));
        assert_eq!(decode_padded(&padded_topic(a)), &a[..32]);
        // A multi-byte character cut in half decodes with a replacement character.
        let id = format!("{}é", "x".repeat(31));
        assert_eq!(
            decode_padded(&padded_topic(&id)),
            format!("{}\u{fffd}", "x".repeat(31))
        );
    }

    #[test]
    fn scheme_parsing_and_topics() {
        assert_eq!(
            "SHA256".parse::<TopicScheme>().unwrap(),
            TopicScheme::Sha256
        );
        assert_eq!("both".parse::<TopicScheme>().unwrap().topics("a").len(), 2);
        assert!(
            "md5"
                .parse::<TopicScheme>()
                .unwrap_err()
                .to_string()
                .contains("md5")
        );
        assert_eq!(
            TopicScheme::default().topics("a"),
            vec![padded_topic("a"), sha256_topic("a")]
        );
    }
}
