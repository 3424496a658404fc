//! Persistence formats: the RDB snapshot/DUMP codec ([`rdb`]) and the
//! packed blobs it embeds ([`blobs`]: listpack, ziplist, intset, zipmap).
//!
//! LZF comes from the `lzf` crate (a pure-Rust port of liblzf using the
//! same parameters as Redis's copy, so compressed output matches Redis
//! byte for byte); CRC64 from the `crc` crate's CRC-64/REDIS (Jones).

pub mod blobs;
pub mod rdb;
