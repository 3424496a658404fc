//! List: the list type.
//!
//! Placeholder: the real encodings land with the lists work.

/// A list value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct List {
    _todo: (),
}

impl List {
    /// Number of elements.
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Redis's OBJECT ENCODING name for the encoding in use.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Approximate heap bytes (MEMORY USAGE, accounting).
    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}
