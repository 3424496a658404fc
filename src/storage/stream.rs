//! Stream: the stream type.
//!
//! Placeholder: the real encoding lands with the streams work.

/// A stream value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    _todo: (),
}

impl Stream {
    /// Number of entries.
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis's OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        "stream"
    }

    /// Approximate heap bytes (MEMORY USAGE, accounting).
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}
