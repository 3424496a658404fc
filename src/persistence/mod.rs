//! Persistence formats: the RDB snapshot/DUMP codec ([`rdb`]) and the
//! packed blobs it embeds ([`blobs`]: listpack, ziplist, intset, zipmap).
//!
//! LZF: [`lzf`] compresses exactly as Redis's bundled liblzf does (the
//! `lzf` crate's compressor differs at the end of inputs) and decompresses
//! with the `lzf` crate. CRC64 is the `crc` crate's CRC-64/REDIS (Jones).

pub mod blobs;
pub mod lzf;
pub mod rdb;
