//! ZSet: the sorted set type.
//!
//! Placeholder: the real encodings land with the sorted sets work.

/// A sorted set value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ZSet {
    _todo: (),
}

impl ZSet {
    /// Number of elements.
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis's OBJECT ENCODING name for the encoding in use.
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }

    /// Approximate heap bytes (MEMORY USAGE, accounting).
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}
