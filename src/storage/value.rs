//! Values: the borrowed view commands read ([`ValueRef`]), the owned form used
//! to insert and move values ([`Value`]), and out-of-line objects ([`Obj`])
//! kept in a shard's slab (raw strings and collections).

use bytes::Bytes;

/// A value stored out of line, in the shard's object slab.
#[derive(Debug, Clone, PartialEq)]
pub enum Obj {
    /// A string too long for inline storage, or one mutated in place
    /// (APPEND, SETRANGE, SETBIT): "raw" in OBJECT ENCODING. Copy-on-write
    /// (see [`crate::storage::shared`]): a snapshot takes a long string by
    /// reference instead of copying it under the shard lock.
    Raw(crate::storage::shared::Shared<Vec<u8>>),
    Hash(crate::storage::hash::Hash),
    List(crate::storage::list::List),
    Set(crate::storage::set::Set),
    ZSet(crate::storage::zset::ZSet),
    /// Out of line, in a copy-on-write `Shared`: a stream header is large
    /// and rare, and keeping it out keeps every object slot small (see the
    /// size tests).
    Stream(crate::storage::shared::Shared<crate::storage::stream::Stream>),
}

impl Obj {
    /// A raw string object.
    pub fn raw(bytes: Vec<u8>) -> Obj {
        Obj::Raw(crate::storage::shared::Shared::new(bytes))
    }

    /// Redis's TYPE name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Obj::Raw(_) => "string",
            Obj::Hash(_) => "hash",
            Obj::List(_) => "list",
            Obj::Set(_) => "set",
            Obj::ZSet(_) => "zset",
            Obj::Stream(_) => "stream",
        }
    }

    /// Redis's OBJECT ENCODING name.
    pub fn encoding(&self) -> &'static str {
        match self {
            Obj::Raw(_) => "raw",
            Obj::Hash(h) => h.encoding(),
            Obj::List(l) => l.encoding(),
            Obj::Set(x) => x.encoding(),
            Obj::ZSet(z) => z.encoding(),
            Obj::Stream(x) => x.encoding(),
        }
    }

    /// A second reference to a value held in its large representation
    /// (see [`crate::storage::shared`]), taken in O(1); an edit of either
    /// then copies only the chunks, nodes or blocks it touches (a stream's
    /// consumer groups whole). `None` for strings and compact encodings,
    /// which are small enough to copy.
    pub fn share(&self) -> Option<Obj> {
        let large = match self {
            Obj::Raw(_) => false,
            Obj::Hash(h) => h.is_shared(),
            Obj::List(l) => l.is_shared(),
            Obj::Set(x) => x.is_shared(),
            Obj::ZSet(z) => z.is_shared(),
            Obj::Stream(_) => true,
        };
        large.then(|| self.clone())
    }

    /// Approximate heap bytes, for MEMORY USAGE and accounting.
    pub fn memory_usage(&self) -> usize {
        match self {
            // The bytes, the vector's header and the two reference counts.
            Obj::Raw(v) => v.capacity() + 40 + std::mem::size_of::<Obj>(),
            Obj::Hash(h) => h.memory_usage() + std::mem::size_of::<Obj>(),
            Obj::List(l) => l.memory_usage() + std::mem::size_of::<Obj>(),
            Obj::Set(x) => x.memory_usage() + std::mem::size_of::<Obj>(),
            Obj::ZSet(z) => z.memory_usage() + std::mem::size_of::<Obj>(),
            Obj::Stream(x) => x.memory_usage() + std::mem::size_of::<Obj>(),
        }
    }
}

/// A borrowed view of a stored value.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    /// A string stored inline in the entry (embstr, or raw past 44 bytes).
    Str(&'a [u8]),
    /// An integer-encoded string.
    Int(i64),
    /// An out-of-line object.
    Obj(&'a Obj),
}

impl ValueRef<'_> {
    pub fn type_name(&self) -> &'static str {
        match self {
            ValueRef::Str(_) | ValueRef::Int(_) => "string",
            ValueRef::Obj(o) => o.type_name(),
        }
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            ValueRef::Str(s) if s.len() <= crate::storage::entry::EMBSTR_MAX => "embstr",
            ValueRef::Str(_) => "raw",
            ValueRef::Int(_) => "int",
            ValueRef::Obj(o) => o.encoding(),
        }
    }

    /// An owned copy of the value (COPY, DUMP-like uses).
    pub fn to_value(&self) -> Value {
        match self {
            ValueRef::Str(s) => Value::Text(Bytes::copy_from_slice(s)),
            ValueRef::Int(n) => Value::Int(*n),
            ValueRef::Obj(o) => Value::Obj((*o).clone()),
        }
    }

    /// The string value, if this is a string (any encoding).
    pub fn as_string(&self) -> Option<StrRef<'_>> {
        match self {
            ValueRef::Str(s) => Some(StrRef::Bytes(s)),
            ValueRef::Int(n) => Some(StrRef::Int(*n)),
            ValueRef::Obj(Obj::Raw(v)) => Some(StrRef::Bytes(v)),
            ValueRef::Obj(_) => None,
        }
    }
}

/// A string value in either encoding.
#[derive(Debug, Clone, Copy)]
pub enum StrRef<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl StrRef<'_> {
    /// The value as owned bytes (integers formatted in decimal).
    pub fn to_bytes(&self) -> Bytes {
        match self {
            StrRef::Bytes(b) => Bytes::copy_from_slice(b),
            StrRef::Int(n) => Bytes::copy_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            StrRef::Bytes(b) => b.to_vec(),
            StrRef::Int(n) => itoa::Buffer::new().format(*n).as_bytes().to_vec(),
        }
    }

    /// Length in bytes of the string form.
    pub fn len(&self) -> usize {
        match self {
            StrRef::Bytes(b) => b.len(),
            StrRef::Int(n) => itoa::Buffer::new().format(*n).len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An owned value, for inserting and moving keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string; stored as int / embstr / raw by the shard.
    Str(Bytes),
    /// A string stored as these bytes even when they read as an integer:
    /// embstr, or raw past 44 bytes. INCRBYFLOAT's result is one (Redis
    /// stores it without trying the integer encoding), and so is a copy or
    /// move of such a string.
    Text(Bytes),
    /// An integer-valued string (INCR results).
    Int(i64),
    /// An object (collections, raw strings).
    Obj(Obj),
}

impl Value {
    /// The borrowed view of this value.
    pub fn as_value_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Str(b) | Value::Text(b) => ValueRef::Str(b),
            Value::Int(n) => ValueRef::Int(*n),
            Value::Obj(o) => ValueRef::Obj(o),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) | Value::Text(_) | Value::Int(_) => "string",
            Value::Obj(o) => o.type_name(),
        }
    }
}
