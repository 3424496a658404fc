//! `Table<E>`: an open-addressing hash table whose slot array is kept sorted by
//! a 32-bit hash prefix (the entry's `ord`), so that a SCAN cursor can simply be
//! an `ord` value and SCAN's guarantee survives any number of resizes.
//!
//! # Layout
//!
//! * `cap` is the nominal capacity; it is *not* required to be a power of two.
//! * The home position of an ord is `home(ord) = (ord * cap) >> 32` (computed in
//!   wide integers), which is monotone (non-decreasing) in `ord` and always `< cap`.
//! * The slot vector has length `cap + overflow`. The overflow area at the end
//!   (at least `16 + cap / 64` slots, more when a long run already reaches past
//!   `cap`) absorbs runs that start near the end. There is **no wrap-around**:
//!   the array is linear, and a run that would fall off the end triggers a
//!   rebuild with a larger overflow area instead.
//! * Each slot is an `Option<E>`; nothing else is stored per slot.
//!
//! # Invariants
//!
//! * **A (sorted):** reading the occupied slots left to right, ords are
//!   non-decreasing.
//! * **B (linear probing):** an entry at position `p` has `home(ord) <= p`, and
//!   every slot in `[home(ord), p]` is occupied.
//! * `len` is the number of occupied slots, and `len <= cap * 17 / 20` after
//!   every insert (load factor 0.85).
//!
//! Consequences used throughout:
//!
//! * All entries with the same ord form one contiguous block (they share a
//!   home, and anything between two of them in sorted order has the same ord).
//! * If slot `p` is empty, every entry to the right of `p` has `home > p`
//!   (invariant B would otherwise require `p` to be occupied).
//!
//! # Operations
//!
//! * **Lookup** starts at `home(ord)` and walks right, skipping smaller ords,
//!   comparing keys among equal ords, and stopping at an empty slot or a
//!   greater ord.
//! * **Insert** finds the first slot at or after `home(ord)` that is empty or
//!   holds a greater ord, shifts the rest of the run right by one (into the run's
//!   terminating empty slot) and places the entry there.
//! * **Remove** takes the entry out and backward-shifts the following entries
//!   while they are not at their home. Because of invariant A, the first entry
//!   that *is* at its home ends the shift: everything after it has an ord at
//!   least as large, so a home at least as far right.
//! * **Rebuild** (overflow exhaustion, growth or shrink of a small table) is
//!   one ordered pass placing every entry at `max(home_new(ord), last_placed +
//!   1)`; this re-establishes both invariants for any capacity.
//!
//! # Incremental growth
//!
//! Growing a large table in one pass would stall its shard for a time that
//! grows with the dataset (measured before this existed: 21-34 ms for SETs
//! that grew a 500k-entry shard). A table of [`INCREMENTAL_MIN`] entries or
//! more therefore grows (and shrinks) the way Redis rehashes its dicts: the
//! new slot vector is allocated (not initialised: it is extended as entries
//! arrive), the old one is kept as `old`, and every insert and removal moves
//! the next [`MIGRATE_STEP`] entries from the old layout into the new one
//! (the active expiry cycle moves more while `activerehashing` is on). Since both layouts are sorted, the
//! move goes in ord order and the two layouts partition the ord space at
//! `boundary`: every entry with `ord < boundary` lives in the new layout,
//! every other one in the old, so a lookup, insert or removal consults
//! exactly one of them (one comparison), and a SCAN cursor (an ord) still
//! means what it meant. The old layout drops the slots it has handed over
//! (it is a `vec::IntoIter`), so position `i` of what is left is old
//! position `lo + i`, and homes there are clamped to `lo`: invariant B holds
//! with `max(home, lo)`. Equal-ord groups move whole, so the boundary never
//! splits one. An insert into a crowded run (ords arriving sorted, see
//! [`crowded_cap`]) finishes the move at once and takes the ordinary path,
//! where [`Table::spread_out`] answers such streams.
//!
//! # SCAN cursors
//!
//! A cursor `c` means "every entry with `ord < c` has been visited". This does
//! not depend on the layout, so it holds across grows and shrinks: an entry
//! present for the whole iteration has a fixed ord, and the cursors returned by
//! successive calls partition the ord space into visited ranges.
//!
//! A scan starts at `home(c)`. No entry with `ord >= c` can sit left of
//! `home(c)`: by invariant B it sits at `>= home(ord)`, and `home(ord) >= home(c)`
//! because `home` is monotone. Entries with `ord < c` can however sit at or right
//! of `home(c)` (they were pushed there by probing); they are skipped. During
//! incremental growth a cursor below `boundary` scans the new layout and stops
//! at `boundary` at the latest; one at or above it scans the old layout.

#![forbid(unsafe_code)]

use std::mem;

/// An entry stored in a [`Table`].
pub trait TableEntry: Send + 'static {
    /// The 32-bit hash prefix of this entry's key (caller computes it; stable
    /// for the entry's life).
    fn ord(&self) -> u32;
    /// The key bytes, compared on lookup.
    fn key(&self) -> &[u8];
}

/// Smallest non-zero capacity.
const MIN_CAP: usize = 8;
/// Load factor numerator / denominator: grow when `len > cap * 17 / 20`.
const LOAD_NUM: usize = 17;
const LOAD_DEN: usize = 20;

/// An insert landing this far right of its home checks whether its run is
/// crowded (see [`Table::spread_out`]). Keys arriving in ord order (an RDB
/// this process wrote, COPY of SCAN's output into another database) all
/// have homes in the left part of the table, and without a response each
/// insert and lookup walks one ever longer run: quadratic.
const SPREAD_CHECK: usize = 256;
/// A run this long is never random: random ords at the 0.85 load factor
/// essentially never put an entry this far from its home.
const LONG_RUN: usize = 4096;
/// How far past its load-factor size such a table may grow (it keeps that
/// size until nearly empty; see [`Table::floor`]).
const MAX_SPREAD: usize = 64;

/// Tables with at least this many entries grow incrementally (see the module
/// documentation); smaller ones rebuild in one pass (a few tens of µs).
#[cfg(not(test))]
const INCREMENTAL_MIN: usize = 4096;
#[cfg(test)]
const INCREMENTAL_MIN: usize = 24;
/// Entries each insert moves from the old layout while growing. A table
/// grows by 1.5x at load 0.85, so the new layout has room for `0.425 * cap`
/// inserts while `0.85 * cap` entries move: two per insert would do.
const MIGRATE_STEP: usize = 16;
/// An old layout this large (in slots) is freed off the shard's thread.
const LAZY_FREE_SLOTS: usize = 1 << 16;
/// Slots the new layout is initialised by at a time while it fills.
const EXTEND_STEP: usize = 1024;

/// Home position of `ord` in a table of nominal capacity `cap`.
#[inline]
fn home_in(cap: usize, ord: u32) -> usize {
    // `ord < 2^32`, so the result is `< cap` and fits in `usize`.
    ((u128::from(ord) * cap as u128) >> 32) as usize
}

/// Home of `ord` in a slice that starts at position `lo` of a layout of
/// capacity `cap` (homes left of the slice are clamped to its start).
#[inline]
fn home_rel(cap: usize, lo: usize, ord: u32) -> usize {
    home_in(cap, ord).saturating_sub(lo)
}

/// Baseline overflow area for a capacity.
#[inline]
fn base_overflow(cap: usize) -> usize {
    16 + cap / 64
}

/// Smallest capacity that holds `n` entries without exceeding the load factor.
#[inline]
fn cap_for(n: usize) -> usize {
    (n.saturating_mul(LOAD_DEN) / LOAD_NUM + 1).max(MIN_CAP)
}

/// Smallest ord whose home is `>= h` in a layout of capacity `cap`, or
/// `None` if no ord has such a home.
fn min_ord_with_home(cap: usize, h: usize) -> Option<u32> {
    if h >= cap {
        return None;
    }
    // home(o) >= h  <=>  o * cap >= h * 2^32  <=>  o >= ceil(h * 2^32 / cap).
    let o = ((h as u128) << 32).div_ceil(cap as u128);
    u32::try_from(o).ok()
}

// ---- the algorithms, over one layout (a slice starting at position `lo`) ----

#[inline]
fn find_in<E: TableEntry>(
    slots: &[Option<E>],
    cap: usize,
    lo: usize,
    ord: u32,
    key: &[u8],
) -> Option<usize> {
    let start = home_rel(cap, lo, ord);
    for (i, slot) in slots.get(start..)?.iter().enumerate() {
        let e = slot.as_ref()?;
        let o = e.ord();
        if o > ord {
            return None;
        }
        if o == ord && e.key() == key {
            return Some(start + i);
        }
    }
    None
}

/// For an insert of `ord`: `(p, q)` where `p` is the sorted position within
/// the run and `q >= p` the first empty slot at or after `p`; `None` if the
/// slice ends before such slots exist.
fn insert_span_in<E: TableEntry>(
    slots: &[Option<E>],
    cap: usize,
    lo: usize,
    ord: u32,
) -> Option<(usize, usize)> {
    let h = home_rel(cap, lo, ord);
    let p = h + slots
        .get(h..)?
        .iter()
        .position(|s| !matches!(s, Some(x) if x.ord() <= ord))?;
    let q = p + slots[p..].iter().position(Option::is_none)?;
    Some((p, q))
}

/// Removes the entry at `pos`, backward-shifting its run.
fn remove_at_in<E: TableEntry>(
    slots: &mut [Option<E>],
    cap: usize,
    lo: usize,
    pos: usize,
) -> Option<E> {
    let e = slots.get_mut(pos)?.take()?;
    let mut hole = pos;
    loop {
        let next = hole + 1;
        let movable = match slots.get(next) {
            Some(Some(n)) => home_rel(cap, lo, n.ord()) <= hole,
            _ => false,
        };
        if !movable {
            break;
        }
        slots.swap(hole, next);
        hole = next;
    }
    Some(e)
}

/// [`Table::scan_positions`] over one layout (positions relative to the
/// slice).
fn scan_positions_in<E: TableEntry, F: FnMut(usize)>(
    slots: &[Option<E>],
    cap: usize,
    lo: usize,
    cursor: u32,
    count: usize,
    max_slots: usize,
    mut f: F,
) -> Option<u32> {
    let want = count.max(1);
    let mut visited = 0usize;
    let mut last: Option<u32> = None;
    let start = home_rel(cap, lo, cursor);
    for (walked, slot) in slots.get(start..)?.iter().enumerate() {
        let done = visited >= want || walked >= max_slots;
        match slot {
            None => {
                if done {
                    // Progress: home(cursor) <= start + walked, so the
                    // returned ord is > cursor. `None` means no entry can
                    // exist right of this empty slot.
                    return min_ord_with_home(cap, lo + start + walked + 1);
                }
            }
            Some(e) => {
                let o = e.ord();
                if o < cursor {
                    continue;
                }
                // `o > cursor` ensures progress when nothing was visited;
                // otherwise it follows from `o != last >= cursor`.
                if done && o > cursor && last != Some(o) {
                    return Some(o);
                }
                f(start + walked);
                visited += 1;
                last = Some(o);
            }
        }
    }
    None
}

/// Positions (relative to the slice) whose entry has exactly this ord.
fn positions_with_ord_in<E: TableEntry>(
    slots: &[Option<E>],
    cap: usize,
    lo: usize,
    empty: bool,
    ord: u32,
) -> impl Iterator<Item = usize> + '_ {
    let start = if empty {
        slots.len()
    } else {
        home_rel(cap, lo, ord).min(slots.len())
    };
    slots[start..]
        .iter()
        .enumerate()
        .map_while(move |(i, s)| match s {
            Some(e) if e.ord() <= ord => Some((start + i, e.ord())),
            _ => None,
        })
        .filter(move |&(_, o)| o == ord)
        .map(|(p, _)| p)
}

/// Puts `e` at its sorted place in a layout that may still be shorter
/// than its capacity (growing it as needed). For the new layout of a
/// growing table: entries are never shifted past its initialised end.
fn place<E: TableEntry>(slots: &mut Vec<Option<E>>, cap: usize, e: E) -> usize {
    let ord = e.ord();
    loop {
        if let Some((p, q)) = insert_span_in(slots, cap, 0, ord) {
            slots[p..=q].rotate_right(1);
            slots[p] = Some(e);
            return p;
        }
        // Within the allocation when that suffices: growing past it would
        // copy the whole vector.
        let need = (slots.len() + 1).max(home_in(cap, ord) + 1);
        let mut want = (slots.len() + EXTEND_STEP).max(home_in(cap, ord) + EXTEND_STEP);
        if need <= slots.capacity() {
            want = want.min(slots.capacity());
        }
        slots.resize_with(want, || None);
    }
}

/// An insert of `ord` into a layout (a slice starting at position `lo`)
/// would end a run at `q`, far right of its home. Computes the capacity at
/// which the run's entries would find about 1/0.7 home slots each (their
/// ords spread over that many homes). Returns it if it is at least twice
/// `cap` (random ords, even in a long run, need about the current capacity;
/// ords arriving in order need the size of the whole stream), or the run is
/// longer than [`LONG_RUN`], unless it exceeds [`MAX_SPREAD`] times the
/// load-factor size for `len` entries: then the ords are too close to
/// spread (equal ords, or a narrow slice of the ord space), and the long
/// run is cheaper than the memory.
#[cold]
fn crowded_cap<E: TableEntry>(
    slots: &[Option<E>],
    cap: usize,
    lo: usize,
    len: usize,
    ord: u32,
    q: usize,
) -> Option<usize> {
    let limit = cap_for(len).saturating_mul(MAX_SPREAD);
    if cap.saturating_mul(2) > limit {
        return None;
    }
    let h = home_rel(cap, lo, ord);
    let start = slots[..h]
        .iter()
        .rposition(Option::is_none)
        .map_or(0, |i| i + 1);
    let first = slots[start].as_ref().map_or(ord, TableEntry::ord);
    let last = q
        .checked_sub(1)
        .and_then(|i| slots[i].as_ref())
        .map_or(ord, TableEntry::ord)
        .max(ord);
    let span = u128::from(last - first.min(last)) + 1;
    let entries = (q - start + 1) as u128;
    let want = usize::try_from((entries << 32) * 10 / (7 * span)).ok()?;
    if want > limit || want <= cap || (want < 2 * cap && q - h <= LONG_RUN) {
        return None;
    }
    Some(want)
}

/// [`crowded_cap`] for a run ending at `q`, asked only once the run reaches
/// more than [`SPREAD_CHECK`] slots past the home of `ord` (the common case
/// costs one comparison).
#[inline]
fn crowded_run<E: TableEntry>(
    slots: &[Option<E>],
    cap: usize,
    lo: usize,
    len: usize,
    ord: u32,
    q: usize,
) -> Option<usize> {
    if q - home_rel(cap, lo, ord) <= SPREAD_CHECK {
        return None;
    }
    crowded_cap(slots, cap, lo, len, ord, q)
}

/// The old layout of a table that is growing incrementally.
#[derive(Debug, Clone)]
struct Old<E> {
    /// Its slots from position `lo` on (the ones before were handed over).
    rest: std::vec::IntoIter<Option<E>>,
    cap: usize,
    lo: usize,
    /// Entries still here.
    len: usize,
    /// Every entry with `ord < boundary` is in the new layout; every entry
    /// here has `ord >= boundary`.
    boundary: u64,
}

/// Open-addressing hash table sorted by `ord`. See the module documentation.
#[derive(Debug, Clone)]
pub struct Table<E> {
    /// `cap + overflow` slots (empty vector while `cap == 0`); while `old`
    /// exists, only a prefix is initialised (see [`place`]).
    slots: Vec<Option<E>>,
    /// Nominal capacity; homes are in `[0, cap)`.
    cap: usize,
    /// Number of occupied slots in `slots`.
    len: usize,
    /// The capacity a run of clustered ords made the table grow to (see
    /// [`SPREAD_CHECK`]); shrinking stops there (or the next insert would
    /// cluster again) until the table is nearly empty. 0 normally.
    floor: usize,
    /// The layout being moved from while growing incrementally.
    old: Option<Box<Old<E>>>,
}

impl<E> Default for Table<E> {
    fn default() -> Self {
        Table {
            slots: Vec::new(),
            cap: 0,
            len: 0,
            floor: 0,
            old: None,
        }
    }
}

impl<E: TableEntry> Table<E> {
    /// Creates an empty table. Allocates nothing until the first insert.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an empty table able to hold `n` entries without growing.
    pub fn with_capacity(n: usize) -> Self {
        let mut t = Self::new();
        if n > 0 {
            t.rebuild(cap_for(n));
        }
        t
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len + self.old.as_ref().map_or(0, |o| o.len)
    }

    /// True if the table holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Nominal capacity (`cap`, without the overflow area).
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Slots allocated (both layouts while growing), for memory accounting.
    pub fn slots_len(&self) -> usize {
        self.slots.capacity()
            + self
                .old
                .as_ref()
                .map_or(0, |o| o.lo + o.rest.as_slice().len())
    }

    /// True while the table is moving entries to a larger layout.
    pub fn is_growing(&self) -> bool {
        self.old.is_some()
    }

    #[inline]
    fn home(&self, ord: u32) -> usize {
        home_in(self.cap, ord)
    }

    /// The layout holding `ord`: `None` for the current one, the old one
    /// while it still holds that part of the ord space.
    #[inline]
    fn old_for(&self, ord: u32) -> Option<&Old<E>> {
        self.old.as_deref().filter(|o| u64::from(ord) >= o.boundary)
    }

    /// Position of the entry with this ord and key, if present.
    #[inline]
    pub fn find(&self, ord: u32, key: &[u8]) -> Option<usize> {
        if let Some(o) = self.old_for(ord) {
            return find_in(o.rest.as_slice(), o.cap, o.lo, ord, key).map(|p| p + self.slots.len());
        }
        if self.len == 0 {
            return None;
        }
        find_in(&self.slots, self.cap, 0, ord, key)
    }

    /// The number of positions (`0..slot_len()` may hold entries; valid
    /// until the next mutation).
    pub fn slot_len(&self) -> usize {
        self.slots.len() + self.old.as_ref().map_or(0, |o| o.rest.as_slice().len())
    }

    /// The entry at `pos`, if that slot is occupied.
    #[inline]
    pub fn get(&self, pos: usize) -> Option<&E> {
        match self.slots.get(pos) {
            Some(s) => s.as_ref(),
            None => self
                .old
                .as_ref()?
                .rest
                .as_slice()
                .get(pos - self.slots.len())?
                .as_ref(),
        }
    }

    /// Mutable access to the entry at `pos`. The caller must not change the
    /// entry's ord or key.
    #[inline]
    pub fn get_mut(&mut self, pos: usize) -> Option<&mut E> {
        let n = self.slots.len();
        if pos < n {
            return self.slots[pos].as_mut();
        }
        self.old
            .as_mut()?
            .rest
            .as_mut_slice()
            .get_mut(pos - n)?
            .as_mut()
    }

    /// Inserts `e`, whose key the caller guarantees is absent. Returns the
    /// position where it now lives (valid until the next mutation).
    pub fn insert(&mut self, e: E) -> usize {
        debug_assert!(
            self.find(e.ord(), e.key()).is_none(),
            "Table::insert: key already present"
        );
        if self.old.is_some() {
            self.migrate_step(MIGRATE_STEP);
            if (self.len() + 1) * LOAD_DEN > self.cap * LOAD_NUM {
                // Cannot happen at MIGRATE_STEP >= 2; kept for safety.
                self.finish_growth();
            }
        }
        if self.old.is_none() && (self.len + 1) * LOAD_DEN > self.cap * LOAD_NUM {
            // Grow by 1.5x, not 2x: capacities need not be powers of two, and
            // the smaller step keeps the average load (and bytes per key) higher.
            let to = (self.cap + self.cap / 2).max(MIN_CAP);
            if self.len >= INCREMENTAL_MIN {
                self.start_growth(to);
            } else {
                self.rebuild(to);
            }
        }
        let ord = e.ord();
        let total = self.len() + 1;
        if let Some(o) = self
            .old
            .as_deref_mut()
            .filter(|o| u64::from(ord) >= o.boundary)
        {
            let s = o.rest.as_slice();
            match insert_span_in(s, o.cap, o.lo, ord) {
                Some((p, q)) if crowded_run(s, o.cap, o.lo, total, ord, q).is_none() => {
                    let s = o.rest.as_mut_slice();
                    s[p..=q].rotate_right(1);
                    s[p] = Some(e);
                    o.len += 1;
                    return self.slots.len() + p;
                }
                // A crowded run (ords arriving in order), or no room left
                // at the end of the old layout: finish moving, then insert
                // the ordinary way.
                _ => self.finish_growth(),
            }
        }
        if self.old.is_some() {
            let crowded = insert_span_in(&self.slots, self.cap, 0, ord).is_some_and(|(_, q)| {
                crowded_run(&self.slots, self.cap, 0, total, ord, q).is_some()
            });
            if !crowded {
                self.len += 1;
                return place(&mut self.slots, self.cap, e);
            }
            self.finish_growth();
        }
        loop {
            if let Some((p, q)) = insert_span_in(&self.slots, self.cap, 0, ord) {
                if self.spread_out(ord, q) {
                    continue;
                }
                // slots[q] is empty: rotating moves it to p and shifts [p, q) right.
                self.slots[p..=q].rotate_right(1);
                self.slots[p] = Some(e);
                self.len += 1;
                return p;
            }
            // The run reaches the end of the vector. Growing `cap` would not help
            // a cluster of ords near u32::MAX, so rebuild at the same capacity:
            // the rebuild leaves free slack after the last entry.
            self.rebuild(self.cap);
        }
    }

    /// Starts growing to `new_cap` incrementally: the current layout becomes
    /// the old one, and a new one is allocated but not yet initialised.
    fn start_growth(&mut self, new_cap: usize) {
        debug_assert!(self.old.is_none());
        let total = new_cap + base_overflow(new_cap);
        let old = mem::replace(&mut self.slots, Vec::with_capacity(total));
        self.old = Some(Box::new(Old {
            rest: old.into_iter(),
            cap: self.cap,
            lo: 0,
            len: self.len,
            boundary: 0,
        }));
        self.cap = new_cap;
        self.len = 0;
        // A table that needed spreading is rebuilt by `spread_out`, never
        // grown this way; keep the floor as it was.
    }

    /// Moves at least `budget` entries (whole equal-ord groups; fewer if the
    /// old layout runs out) from the old layout to the new one, crossing at
    /// most `4 * budget` empty slots. Ends the growth when nothing is left.
    /// Returns true while the table is still growing.
    pub fn migrate_step(&mut self, budget: usize) -> bool {
        let Some(o) = self.old.as_deref_mut() else {
            return false;
        };
        let mut moved = 0usize;
        let mut empties = 0usize;
        let mut last: Option<u32> = None;
        while o.len > 0 {
            let next_ord = match o.rest.as_slice().first() {
                None => break,
                Some(s) => s.as_ref().map(TableEntry::ord),
            };
            match next_ord {
                None => {
                    // An empty slot ends any equal-ord group.
                    if moved >= budget || empties >= budget.saturating_mul(4) {
                        break;
                    }
                    empties += 1;
                }
                Some(ord) => {
                    if moved >= budget && last != Some(ord) {
                        break;
                    }
                    last = Some(ord);
                    moved += 1;
                }
            }
            o.lo += 1;
            if let Some(Some(e)) = o.rest.next() {
                o.len -= 1;
                o.boundary = u64::from(e.ord()) + 1;
                place(&mut self.slots, self.cap, e);
                self.len += 1;
            }
        }
        if o.len > 0 {
            return true;
        }
        // Everything moved: drop what is left of the old layout (empty
        // slots only; a large buffer is freed by the lazyfree thread, as
        // returning tens of MB to the OS takes about a millisecond) and
        // initialise the rest of the new one.
        if let Some(o) = self.old.take() {
            if o.lo + o.rest.as_slice().len() >= LAZY_FREE_SLOTS {
                crate::storage::lazyfree::defer(o.rest, 0);
            }
        }
        let total = (self.cap + base_overflow(self.cap)).max(self.slots.len());
        self.slots.resize_with(total, || None);
        false
    }

    /// Moves everything that is left (used where an operation needs one
    /// layout: shrink, retain, crowded inserts).
    fn finish_growth(&mut self) {
        while self.migrate_step(usize::MAX / 8) {}
    }

    /// An insert of `ord` would end a run at `q`: if the run is crowded
    /// (see [`crowded_run`]), rebuilds at the capacity it needs and keeps
    /// that as the floor. False if nothing was done.
    #[inline]
    fn spread_out(&mut self, ord: u32, q: usize) -> bool {
        debug_assert!(self.old.is_none());
        let Some(want) = crowded_run(&self.slots, self.cap, 0, self.len + 1, ord, q) else {
            return false;
        };
        self.floor = want;
        self.rebuild(want);
        true
    }

    /// Removes and returns the entry at `pos` (backward-shifting its run).
    fn take_at(&mut self, pos: usize) -> Option<E> {
        let n = self.slots.len();
        if pos < n {
            let e = remove_at_in(&mut self.slots, self.cap, 0, pos)?;
            self.len -= 1;
            return Some(e);
        }
        let o = self.old.as_deref_mut()?;
        let e = remove_at_in(o.rest.as_mut_slice(), o.cap, o.lo, pos - n)?;
        o.len -= 1;
        Some(e)
    }

    /// Removes and returns the entry at `pos`, then, while the table is
    /// changing size, moves a step's worth of entries (positions are valid
    /// only until the next mutation anyway); the step ends the move when
    /// the removal emptied the old layout.
    pub fn remove_at(&mut self, pos: usize) -> Option<E> {
        let e = self.take_at(pos)?;
        if self.old.is_some() {
            self.migrate_step(MIGRATE_STEP);
        }
        Some(e)
    }

    /// Removes and returns the entry with this ord and key, if present.
    pub fn remove(&mut self, ord: u32, key: &[u8]) -> Option<E> {
        let pos = self.find(ord, key)?;
        self.remove_at(pos)
    }

    /// Replaces the entry at `pos` with `e`, which must have the same ord and
    /// key (checked with `debug_assert!`). Returns the old entry, or `None` if
    /// `pos` is not occupied (in which case `e` is dropped and nothing changes).
    pub fn replace_at(&mut self, pos: usize, e: E) -> Option<E> {
        let old = self.get_mut(pos)?;
        debug_assert!(
            old.ord() == e.ord() && old.key() == e.key(),
            "Table::replace_at: ord/key mismatch"
        );
        Some(mem::replace(old, e))
    }

    /// SCAN: visits entries with `ord >= cursor` in ascending ord order.
    ///
    /// Stops after at least `count` entries were visited (`count == 0` is
    /// treated as 1) and the next entry has a different ord from the last
    /// visited one, so a group of equal ords is never split across calls.
    /// Returns `Some(next_cursor)` — every entry with `cursor <= ord <
    /// next_cursor` has been visited, and `next_cursor > cursor` — or `None`
    /// when the end of the table was reached.
    ///
    /// The walk starts at `home(cursor)`: no entry with `ord >= cursor` can be
    /// left of it (invariant B puts an entry at `>= home(ord)`, and `home` is
    /// monotone so `home(ord) >= home(cursor)`); entries with `ord < cursor`
    /// found at or right of it are skipped. If the walk stops on an empty slot
    /// `p`, the next cursor is the smallest ord whose home is `> p`: every entry
    /// with a home `<= p` lies left of `p` (the empty slot ends its run).
    ///
    /// Cost: O(count + size of the last equal-ord group + length of the run it
    /// starts in + empty slots crossed). At the load factors the table keeps
    /// (between 1/8 and 0.85 when the caller uses
    /// [`shrink_to_fit_if_sparse`](Self::shrink_to_fit_if_sparse)), the empty
    /// slots crossed are O(count); use [`scan_bounded`](Self::scan_bounded) to
    /// bound them explicitly.
    pub fn scan<F: FnMut(&E)>(&self, cursor: u32, count: usize, f: F) -> Option<u32> {
        self.scan_bounded(cursor, count, usize::MAX, f)
    }

    /// Like [`scan`](Self::scan), but also stops once `max_slots` slots
    /// (occupied or empty) have been walked, so an almost-empty huge table
    /// cannot make one call O(cap). It still never splits an equal-ord group,
    /// and it only stops where progress is guaranteed (`next_cursor >
    /// cursor`), so the walk may exceed `max_slots` by the length of the run of
    /// smaller ords it starts in plus one equal-ord group. Same return
    /// convention as `scan`.
    pub fn scan_bounded<F: FnMut(&E)>(
        &self,
        cursor: u32,
        count: usize,
        max_slots: usize,
        mut f: F,
    ) -> Option<u32> {
        self.scan_positions(cursor, count, max_slots, |p| {
            if let Some(e) = self.get(p) {
                f(e);
            }
        })
    }

    /// [`scan_bounded`](Self::scan_bounded) reporting the positions of the
    /// entries visited (for a caller that then changes them in place).
    pub fn scan_positions<F: FnMut(usize)>(
        &self,
        cursor: u32,
        count: usize,
        max_slots: usize,
        mut f: F,
    ) -> Option<u32> {
        let n = self.slots.len();
        let Some(o) = self.old.as_deref() else {
            if self.len == 0 {
                return None;
            }
            return scan_positions_in(&self.slots, self.cap, 0, cursor, count, max_slots, f);
        };
        if u64::from(cursor) >= o.boundary {
            return scan_positions_in(
                o.rest.as_slice(),
                o.cap,
                o.lo,
                cursor,
                count,
                max_slots,
                |p| f(p + n),
            );
        }
        // Below the boundary everything is in the new layout; the scan
        // stops at the boundary at the latest (the old layout holds every
        // entry from there on, and `o.len > 0`, so the boundary fits u32).
        let b = u32::try_from(o.boundary).unwrap_or(u32::MAX);
        let r = if self.len == 0 {
            None
        } else {
            scan_positions_in(&self.slots, self.cap, 0, cursor, count, max_slots, f)
        };
        Some(r.map_or(b, |c| c.min(b)))
    }

    /// A uniformly random slot index (over [`slot_len`](Self::slot_len)),
    /// walked right (wrapping to 0 once) to the next occupied slot. `r` is a
    /// random `u64` supplied by the caller. `None` if the table is empty.
    pub fn random_pos(&self, r: u64) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        let a: &[Option<E>] = &self.slots;
        let b: &[Option<E>] = self.old.as_ref().map_or(&[], |o| o.rest.as_slice());
        let n = a.len() + b.len();
        let occupied_from = |start: usize| -> Option<usize> {
            if start < a.len() {
                if let Some(i) = a[start..].iter().position(Option::is_some) {
                    return Some(start + i);
                }
            }
            let from = start.saturating_sub(a.len());
            b[from..]
                .iter()
                .position(Option::is_some)
                .map(|i| a.len() + from + i)
        };
        let start = ((u128::from(r) * n as u128) >> 64) as usize;
        occupied_from(start).or_else(|| occupied_from(0))
    }

    /// Iterates over all entries in ascending ord order.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        let rest: &[Option<E>] = self.old.as_ref().map_or(&[], |o| o.rest.as_slice());
        self.slots.iter().flatten().chain(rest.iter().flatten())
    }

    /// Iterates mutably over all entries in ascending ord order. The caller
    /// must not change any entry's ord or key.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut E> {
        let rest: &mut [Option<E>] = match self.old.as_deref_mut() {
            Some(o) => o.rest.as_mut_slice(),
            None => &mut [],
        };
        self.slots
            .iter_mut()
            .flatten()
            .chain(rest.iter_mut().flatten())
    }

    /// All positions whose entry has exactly this ord (a contiguous block).
    pub fn positions_with_ord(&self, ord: u32) -> impl Iterator<Item = usize> + '_ {
        let n = self.slots.len();
        let (slots, cap, lo, empty, off) = match self.old_for(ord) {
            Some(o) => (o.rest.as_slice(), o.cap, o.lo, o.len == 0, n),
            None => (&self.slots[..], self.cap, 0, self.len == 0, 0),
        };
        positions_with_ord_in(slots, cap, lo, empty, ord).map(move |p| p + off)
    }

    /// Removes all entries, returning them in ascending ord order. The table is
    /// left empty with no allocation (entries not consumed are dropped).
    pub fn drain(&mut self) -> impl Iterator<Item = E> + '_ {
        let cur = mem::take(&mut self.slots);
        let old = self.old.take().map(|o| o.rest);
        self.cap = 0;
        self.floor = 0;
        self.len = 0;
        cur.into_iter()
            .flatten()
            .chain(old.into_iter().flatten().flatten())
    }

    /// Removes all entries and releases the slot vector.
    pub fn clear(&mut self) {
        self.slots = Vec::new();
        self.old = None;
        self.cap = 0;
        self.len = 0;
        self.floor = 0;
    }

    /// Call after removals: if `len < cap / 8` and `cap` is above the minimum,
    /// rebuilds at about `len * 2` (never below the minimum capacity, nor
    /// below the size clustered ords needed); an empty table releases its
    /// slots entirely.
    pub fn shrink_to_fit_if_sparse(&mut self) {
        if self.cap > MIN_CAP && self.len() < self.cap / 8 {
            self.finish_growth();
            if self.len == 0 {
                self.clear();
            } else {
                // A table emptied this far is no longer the clustered
                // stream that needed the floor.
                if self.len.saturating_mul(2 * MAX_SPREAD) < self.floor {
                    self.floor = 0;
                }
                let to = (self.len * 2).max(MIN_CAP).max(self.floor);
                if to < self.cap {
                    // Large tables shrink the way they grow: a move spread
                    // over later operations (the new layout is smaller).
                    if self.len >= INCREMENTAL_MIN {
                        self.start_growth(to);
                    } else {
                        self.rebuild(to);
                    }
                }
            }
        }
    }

    /// Keeps only the entries for which `keep` returns true (it may mutate them,
    /// but must not change ord or key). One linear pass, compacting in place.
    pub fn retain<F: FnMut(&mut E) -> bool>(&mut self, mut keep: F) {
        self.finish_growth();
        // Kept entries are re-placed at max(home, last_placed + 1), which is never
        // right of their current position, and every slot in [next, read] has
        // already been emptied by the read cursor, so the target slot is free.
        let mut next = 0usize;
        for read in 0..self.slots.len() {
            let Some(mut e) = self.slots[read].take() else {
                continue;
            };
            if !keep(&mut e) {
                self.len -= 1;
                continue;
            }
            let target = self.home(e.ord()).max(next);
            debug_assert!(target <= read);
            self.slots[target] = Some(e);
            next = target + 1;
        }
    }

    /// Rebuilds the slot vector for nominal capacity `new_cap` (`>= len`,
    /// `> 0`) in one ordered pass, placing each entry at
    /// `max(home_new(ord), last_placed + 1)`. The vector gets the baseline
    /// overflow plus, if the last run already extends past `new_cap`, room for
    /// that run to grow by half again, so repeated inserts at the top end of the
    /// ord space rebuild only geometrically often.
    fn rebuild(&mut self, new_cap: usize) {
        debug_assert!(self.old.is_none());
        debug_assert!(new_cap > 0 && new_cap >= self.len);
        let old = mem::take(&mut self.slots);
        // First pass over ords only: where does the last entry land?
        let mut end = 0usize;
        for e in old.iter().flatten() {
            end = home_in(new_cap, e.ord()).max(end) + 1;
        }
        let tail = end.saturating_sub(new_cap);
        let total = new_cap.max(end) + base_overflow(new_cap) + tail / 2;
        let mut slots: Vec<Option<E>> = Vec::with_capacity(total);
        for e in old.into_iter().flatten() {
            let pos = home_in(new_cap, e.ord()).max(slots.len());
            slots.resize_with(pos, || None);
            slots.push(Some(e));
        }
        slots.resize_with(total, || None);
        self.slots = slots;
        self.cap = new_cap;
    }
}

#[cfg(test)]
impl<E: TableEntry> Table<E> {
    /// Asserts invariants A and B (B with homes clamped to `lo` in the old
    /// layout while growing), the boundary partition, `len`, and the
    /// slot-vector shape.
    fn check_invariants(&self) {
        if self.cap == 0 {
            assert!(self.slots.is_empty());
            assert!(self.old.is_none());
            assert_eq!(self.len, 0);
            return;
        }
        let boundary = self.old.as_ref().map_or(1u64 << 32, |o| o.boundary);
        match &self.old {
            None => assert!(self.slots.len() >= self.cap + base_overflow(self.cap)),
            Some(o) => {
                assert!(o.len > 0, "an emptied old layout must be dropped");
                let n = check_layout(o.rest.as_slice(), o.cap, o.lo);
                assert_eq!(n, o.len);
                assert!(o
                    .rest
                    .as_slice()
                    .iter()
                    .flatten()
                    .all(|e| u64::from(e.ord()) >= boundary));
            }
        }
        let n = check_layout(&self.slots, self.cap, 0);
        assert_eq!(n, self.len);
        assert!(self
            .slots
            .iter()
            .flatten()
            .all(|e| u64::from(e.ord()) < boundary));
        assert!(self.len() * LOAD_DEN <= self.cap * LOAD_NUM || self.len() <= 1);
    }
}

/// Checks invariants A and B of one layout; returns its entry count.
#[cfg(test)]
fn check_layout<E: TableEntry>(slots: &[Option<E>], cap: usize, lo: usize) -> usize {
    let mut count = 0;
    let mut run_start = 0;
    let mut prev_ord: Option<u32> = None;
    for (p, slot) in slots.iter().enumerate() {
        match slot {
            None => run_start = p + 1,
            Some(e) => {
                count += 1;
                let o = e.ord();
                if let Some(prev) = prev_ord {
                    assert!(prev <= o, "invariant A violated at {p}: {prev} > {o}");
                }
                prev_ord = Some(o);
                let h = home_rel(cap, lo, o);
                // [h, p] fully occupied  <=>  run_start <= h <= p.
                assert!(
                    run_start <= h && h <= p,
                    "invariant B violated at {p}: home {h}, run starts at {run_start}"
                );
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::{HashMap, HashSet};

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct T {
        ord: u32,
        key: Vec<u8>,
        val: u32,
    }

    impl TableEntry for T {
        fn ord(&self) -> u32 {
            self.ord
        }
        fn key(&self) -> &[u8] {
            &self.key
        }
    }

    fn t(ord: u32, key: &str) -> T {
        T {
            ord,
            key: key.as_bytes().to_vec(),
            val: 0,
        }
    }

    fn mix(x: u32) -> u32 {
        let mut h = x.wrapping_add(0x9E37_79B9);
        h = (h ^ (h >> 16)).wrapping_mul(0x85EB_CA6B);
        h = (h ^ (h >> 13)).wrapping_mul(0xC2B2_AE35);
        h ^ (h >> 16)
    }

    /// Largest distance of an entry from its home (in either layout).
    fn max_displacement(tb: &Table<T>) -> usize {
        let cur = tb.slots.iter().enumerate();
        let cur = cur.filter_map(|(p, s)| s.as_ref().map(|e| p - tb.home(e.ord())));
        let old = tb.old.iter().flat_map(|o| {
            let s = o.rest.as_slice().iter().enumerate();
            s.filter_map(|(p, s)| s.as_ref().map(|e| p - home_rel(o.cap, o.lo, e.ord())))
        });
        cur.chain(old).max().unwrap_or(0)
    }

    #[test]
    fn ords_inserted_in_order_do_not_pile_up() {
        // What loading an RDB this process wrote does: keys arrive in the
        // order of their ords. Without `spread_out` every insert walked one
        // run holding most of the table.
        let n = 200_000u32;
        let mut ords: Vec<u32> = (0..n).map(mix).collect();
        ords.sort_unstable();
        let mut tb = Table::new();
        for (i, &o) in ords.iter().enumerate() {
            tb.insert(t(o, &format!("k{i}")));
            // Midway the first half of the ord space holds all the keys.
            if i % 50_000 == 49_999 {
                let d = max_displacement(&tb);
                assert!(d <= 4 * SPREAD_CHECK, "after {} inserts: {d}", i + 1);
            }
        }
        tb.check_invariants();
        assert!(
            tb.capacity() <= 4 * cap_for(n as usize),
            "cap {}",
            tb.capacity()
        );
        for (i, &o) in ords.iter().enumerate() {
            assert!(tb.find(o, format!("k{i}").as_bytes()).is_some());
        }
        // Removing most of it shrinks, but not below what the ords needed
        // while the table still holds a fair share of them...
        let floor = tb.floor;
        assert!(floor > 0);
        for (i, &o) in ords.iter().enumerate().filter(|(i, _)| i % 40 != 0) {
            assert!(tb.remove(o, format!("k{i}").as_bytes()).is_some());
            tb.shrink_to_fit_if_sparse();
        }
        tb.check_invariants();
        assert_eq!(tb.len(), 5000);
        assert!(tb.capacity() >= floor, "{} < {floor}", tb.capacity());
        // ...and gives the memory back once nearly empty.
        for (i, &o) in ords
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 40 == 0 && i % 2000 != 0)
        {
            assert!(tb.remove(o, format!("k{i}").as_bytes()).is_some());
            tb.shrink_to_fit_if_sparse();
        }
        tb.check_invariants();
        assert_eq!(tb.len(), 100);
        assert!(tb.capacity() < 1000, "{}", tb.capacity());
    }

    #[test]
    fn large_tables_grow_a_few_entries_per_insert() {
        let mut tb = Table::new();
        let mut k = 0u32;
        // Up to the first incremental growth.
        while !tb.is_growing() {
            tb.insert(ent(0, k));
            k += 1;
        }
        let before = tb.len();
        assert!(before >= INCREMENTAL_MIN);
        let mut inserts = 0;
        let mut seen_both = false;
        while tb.is_growing() {
            let left = tb.old.as_ref().map_or(0, |o| o.len);
            tb.insert(ent(0, k));
            k += 1;
            inserts += 1;
            tb.check_invariants();
            // Each insert moves one step's worth (whole equal-ord groups),
            // never the whole old layout at once.
            let now = tb.old.as_ref().map_or(0, |o| o.len);
            assert!(
                left <= now + MIGRATE_STEP + 2 || now == 0,
                "{left} -> {now}"
            );
            if now > 0 && tb.len > 0 {
                seen_both = true;
            }
            // Every key is found, whichever layout holds it; SCAN sees all.
            for j in 0..k {
                assert!(tb.find(ord_of(0, j), &key_of(j)).is_some(), "key {j}");
            }
            let mut cursor = 0;
            let mut n = 0;
            while let Some(c) = tb.scan(cursor, 3, |_| n += 1) {
                cursor = c;
            }
            assert_eq!(n, tb.len());
            assert_eq!(tb.iter().count(), tb.len());
        }
        assert!(seen_both);
        assert!(inserts > 1 && inserts <= before / 2 + 1, "{inserts}");
        tb.check_invariants();
        // Removal through positions in the old layout, and random picks.
        for j in 0..k {
            if j % 3 == 0 {
                assert!(tb.remove(ord_of(0, j), &key_of(j)).is_some());
            }
        }
        tb.check_invariants();
        assert!(tb.random_pos(7).is_some());
    }

    #[test]
    fn large_tables_shrink_a_few_entries_per_operation() {
        let mut tb = Table::new();
        let n = 40 * INCREMENTAL_MIN as u32;
        for k in 0..n {
            tb.insert(ent(0, k));
        }
        tb.finish_growth();
        let big = tb.capacity();
        // Keep one in sixteen, then ask for the shrink.
        for k in (0..n).filter(|k| k % 16 != 0) {
            assert!(tb.remove(ord_of(0, k), &key_of(k)).is_some());
        }
        tb.finish_growth();
        tb.shrink_to_fit_if_sparse();
        assert!(tb.is_growing(), "a large table shrinks incrementally");
        assert!(tb.capacity() < big / 4);
        tb.check_invariants();
        // Removals move it along too; every survivor stays reachable.
        let mut k = 1;
        while tb.is_growing() {
            let j = k * 16;
            assert!(tb.remove(ord_of(0, j), &key_of(j)).is_some(), "{j}");
            tb.check_invariants();
            k += 1;
        }
        assert!(k < n / 16, "the shrink took {k} removals");
        for j in (k * 16..n).step_by(16) {
            assert!(tb.find(ord_of(0, j), &key_of(j)).is_some(), "{j}");
        }
        assert_eq!(tb.len(), (n / 16 - (k - 1)) as usize);
        assert!(tb.find(ord_of(0, 0), &key_of(0)).is_some());
    }

    #[test]
    fn removal_and_lookup_in_the_old_layout_while_growing() {
        let mut tb = Table::new();
        let mut k = 0u32;
        while !tb.is_growing() {
            tb.insert(ent(4, k));
            k += 1;
        }
        // Remove everything still in the old layout, through find + remove_at.
        let old_keys: Vec<u32> = (0..k)
            .filter(|&j| {
                tb.find(ord_of(4, j), &key_of(j))
                    .is_some_and(|p| p >= tb.slots.len())
            })
            .collect();
        assert!(!old_keys.is_empty());
        for j in old_keys {
            let p = tb.find(ord_of(4, j), &key_of(j)).unwrap();
            assert_eq!(tb.get(p).map(|e| e.val), Some(j));
            assert_eq!(tb.remove_at(p).map(|e| e.val), Some(j));
            tb.check_invariants();
        }
        // The old layout emptied: growth ended without moving anything more.
        assert!(!tb.is_growing());
        tb.check_invariants();
    }

    #[test]
    fn random_ords_never_spread_the_table() {
        let mut tb = Table::new();
        for k in 0..1_000_000u32 {
            tb.insert(t(mix(k), &k.to_string()));
        }
        assert_eq!(tb.floor, 0);
        assert!(tb.capacity() <= cap_for(1_000_000) * 3 / 2 + 1);
    }

    /// Ord as a deterministic function of a key id, with several skews.
    fn ord_of(mode: u8, k: u32) -> u32 {
        match mode {
            0 => mix(k),
            1 => (k % 4) * 1000,      // few, heavily shared ords
            2 => k % 50,              // clustered near 0
            3 => u32::MAX - (k % 50), // clustered near u32::MAX
            _ => match k % 3 {
                0 => u32::MAX,
                1 => 0,
                _ => mix(k),
            },
        }
    }

    fn key_of(k: u32) -> Vec<u8> {
        format!("k{k}").into_bytes()
    }

    fn ent(mode: u8, k: u32) -> T {
        T {
            ord: ord_of(mode, k),
            key: key_of(k),
            val: k,
        }
    }

    #[test]
    fn new_allocates_nothing() {
        let t: Table<T> = Table::new();
        assert_eq!(t.slots_len(), 0);
        assert_eq!(t.capacity(), 0);
        assert!(t.is_empty());
        assert_eq!(t.find(0, b"x"), None);
        assert_eq!(t.scan(0, 10, |_| {}), None);
        assert_eq!(t.random_pos(123), None);
        assert_eq!(t.positions_with_ord(0).count(), 0);
        t.check_invariants();
    }

    #[test]
    fn insert_find_remove_replace() {
        let mut tb = Table::new();
        let pa = tb.insert(t(100, "a"));
        assert_eq!(tb.get(pa).map(|e| e.key.as_slice()), Some(&b"a"[..]));
        tb.insert(t(0, "zero"));
        tb.insert(t(u32::MAX, "max"));
        tb.check_invariants();
        assert_eq!(tb.len(), 3);
        for (o, k) in [(100, "a"), (0, "zero"), (u32::MAX, "max")] {
            let p = tb.find(o, k.as_bytes()).expect("present");
            assert_eq!(tb.get(p).map(|e| e.ord), Some(o));
        }
        assert_eq!(tb.find(100, b"b"), None);
        assert_eq!(tb.find(101, b"a"), None);

        let p = tb.find(100, b"a").expect("present");
        let mut newer = t(100, "a");
        newer.val = 7;
        let old = tb.replace_at(p, newer).expect("occupied");
        assert_eq!(old.val, 0);
        assert_eq!(tb.get(p).map(|e| e.val), Some(7));
        if let Some(e) = tb.get_mut(p) {
            e.val = 9;
        }
        assert_eq!(tb.get(p).map(|e| e.val), Some(9));

        assert_eq!(tb.remove(100, b"a").map(|e| e.val), Some(9));
        assert_eq!(tb.remove(100, b"a"), None);
        assert_eq!(tb.find(100, b"a"), None);
        assert_eq!(tb.len(), 2);
        tb.check_invariants();
        let ords: Vec<u32> = tb.iter().map(|e| e.ord).collect();
        assert_eq!(ords, vec![0, u32::MAX]);
        assert_eq!(tb.remove_at(tb.slots_len() + 5), None);
    }

    #[test]
    fn equal_ord_collisions() {
        let mut tb = Table::new();
        for i in 0..200 {
            tb.insert(t(42, &format!("k{i}")));
            tb.insert(t(43, &format!("j{i}")));
            tb.check_invariants();
        }
        for i in 0..200 {
            assert!(tb.find(42, format!("k{i}").as_bytes()).is_some());
            assert!(tb.find(43, format!("j{i}").as_bytes()).is_some());
            assert!(tb.find(42, format!("j{i}").as_bytes()).is_none());
        }
        let pos: Vec<usize> = tb.positions_with_ord(42).collect();
        assert_eq!(pos.len(), 200);
        assert!(pos.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(tb.positions_with_ord(43).count(), 200);
        assert_eq!(tb.positions_with_ord(44).count(), 0);
        for i in (0..200).step_by(2) {
            assert!(tb.remove(42, format!("k{i}").as_bytes()).is_some());
            tb.check_invariants();
        }
        assert_eq!(tb.positions_with_ord(42).count(), 100);
        assert_eq!(tb.len(), 300);
    }

    #[test]
    fn end_of_table_uses_overflow_and_grows() {
        let mut tb = Table::new();
        for i in 0..2000u32 {
            let ord = if i % 2 == 0 {
                u32::MAX
            } else {
                u32::MAX - (i % 7)
            };
            tb.insert(t(ord, &format!("k{i}")));
            tb.check_invariants();
        }
        assert_eq!(tb.len(), 2000);
        assert!(tb.slots_len() > tb.capacity() + 1000);
        for i in 0..2000u32 {
            let ord = if i % 2 == 0 {
                u32::MAX
            } else {
                u32::MAX - (i % 7)
            };
            assert!(tb.find(ord, format!("k{i}").as_bytes()).is_some());
        }
        // Memory stays bounded: slots are O(cap + len).
        assert!(tb.slots_len() <= 2 * tb.capacity() + 4 * tb.len());
        let mut seen = 0;
        let mut cur = 0;
        while let Some(c) = tb.scan(cur, 10, |_| seen += 1) {
            cur = c;
        }
        assert_eq!(seen, 2000);
    }

    #[test]
    fn ord_zero_cluster() {
        let mut tb = Table::new();
        for i in 0..500 {
            tb.insert(t(0, &format!("k{i}")));
        }
        tb.check_invariants();
        assert_eq!(tb.positions_with_ord(0).count(), 500);
        assert_eq!(tb.positions_with_ord(0).next(), Some(0));
        let mut n = 0;
        // One group: a single scan call must take all of it.
        let next = tb.scan(0, 1, |_| n += 1);
        assert_eq!(n, 500);
        // The walk stopped on the empty slot after the group; the next call
        // finds nothing more.
        let next = next.expect("stopped at an empty slot inside the table");
        assert!(next > 0);
        assert_eq!(tb.scan(next, 1, |_| n += 1), None);
        assert_eq!(n, 500);
    }

    #[test]
    fn growth_and_shrink() {
        let mut tb = Table::new();
        let mut caps = vec![];
        for k in 0..1000u32 {
            tb.insert(ent(0, k));
            if caps.last() != Some(&tb.capacity()) {
                caps.push(tb.capacity());
            }
        }
        tb.check_invariants();
        assert_eq!(caps[0], MIN_CAP);
        assert!(caps.windows(2).all(|w| w[1] == w[0] + w[0] / 2));
        assert!(tb.len() * LOAD_DEN <= tb.capacity() * LOAD_NUM);
        let big = tb.capacity();
        for k in 0..990u32 {
            assert!(tb.remove(ord_of(0, k), &key_of(k)).is_some());
        }
        tb.shrink_to_fit_if_sparse();
        tb.check_invariants();
        assert!(tb.capacity() < big / 8);
        assert!(tb.capacity() >= MIN_CAP);
        for k in 990..1000u32 {
            assert!(tb.find(ord_of(0, k), &key_of(k)).is_some());
        }
        // Not sparse: no-op.
        let c = tb.capacity();
        tb.shrink_to_fit_if_sparse();
        assert_eq!(tb.capacity(), c);
        for k in 990..1000u32 {
            tb.remove(ord_of(0, k), &key_of(k));
        }
        tb.shrink_to_fit_if_sparse();
        assert_eq!(tb.slots_len(), 0);
        tb.check_invariants();
        tb.insert(ent(0, 1));
        tb.check_invariants();
    }

    #[test]
    fn with_capacity_does_not_grow() {
        let mut tb = Table::with_capacity(1000);
        let cap = tb.capacity();
        for k in 0..1000u32 {
            tb.insert(ent(0, k));
        }
        assert_eq!(tb.capacity(), cap);
        tb.check_invariants();
        let t0: Table<T> = Table::with_capacity(0);
        assert_eq!(t0.slots_len(), 0);
    }

    #[test]
    fn drain_clear_retain_iter_mut_random() {
        let mut tb = Table::new();
        for k in 0..300u32 {
            tb.insert(ent(4, k));
        }
        tb.retain(|e| {
            e.val += 1000;
            e.val % 3 != 0
        });
        tb.check_invariants();
        assert_eq!(tb.len(), 200);
        assert!(tb.iter().all(|e| e.val >= 1000 && e.val % 3 != 0));
        for e in tb.iter_mut() {
            e.val = 1;
        }
        assert!(tb.iter().all(|e| e.val == 1));
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let p = tb.random_pos(rng.gen()).expect("non-empty");
            assert!(tb.get(p).is_some());
        }
        assert_eq!(
            tb.random_pos(u64::MAX).map(|p| tb.get(p).is_some()),
            Some(true)
        );
        let drained: Vec<T> = tb.drain().collect();
        assert_eq!(drained.len(), 200);
        assert!(drained.windows(2).all(|w| w[0].ord <= w[1].ord));
        assert!(tb.is_empty());
        assert_eq!(tb.slots_len(), 0);
        tb.check_invariants();
        tb.insert(ent(0, 1));
        tb.clear();
        assert_eq!(tb.slots_len(), 0);
        assert!(tb.is_empty());
    }

    /// Full scan iteration; returns per-call visited ords.
    fn scan_calls(tb: &Table<T>, count: usize, max_slots: usize) -> Vec<Vec<u32>> {
        let mut calls = vec![];
        let mut cur = 0;
        loop {
            let mut v = vec![];
            let next = tb.scan_bounded(cur, count, max_slots, |e| v.push(e.ord));
            calls.push(v);
            match next {
                Some(c) => {
                    assert!(c > cur, "no progress");
                    cur = c;
                }
                None => return calls,
            }
        }
    }

    #[test]
    fn scan_never_splits_equal_ord_groups() {
        let mut rng = StdRng::seed_from_u64(7);
        for mode in 0..5u8 {
            let mut tb = Table::new();
            let mut k = 0u32;
            for g in 0..60u32 {
                let ord = match mode {
                    0 => rng.gen(),
                    1 => g,
                    2 => u32::MAX - g,
                    3 => g * 1000,
                    _ => mix(g),
                };
                for _ in 0..rng.gen_range(1..12) {
                    tb.insert(T {
                        ord,
                        key: key_of(k),
                        val: k,
                    });
                    k += 1;
                }
            }
            for count in [1, 2, 5, 13] {
                for max_slots in [0, 3, usize::MAX] {
                    let calls = scan_calls(&tb, count, max_slots);
                    let mut owner: HashMap<u32, usize> = HashMap::new();
                    let mut total = 0;
                    for (i, c) in calls.iter().enumerate() {
                        total += c.len();
                        for &o in c {
                            let prev = owner.insert(o, i);
                            assert!(prev.is_none() || prev == Some(i), "group {o} split");
                        }
                    }
                    assert_eq!(total, tb.len());
                    for &o in owner.keys() {
                        let size = tb.positions_with_ord(o).count();
                        let seen: usize = calls.iter().flatten().filter(|&&x| x == o).count();
                        assert_eq!(size, seen);
                    }
                }
            }
        }
    }

    #[test]
    fn scan_visits_entries_exactly_at_home_boundaries() {
        // Ords that are the smallest with their home (and the largest of the
        // previous home), separated by empty slots: the cursor computed when a
        // walk stops on an empty slot must not skip them.
        for n in [5usize, 37, 200] {
            let mut tb = Table::with_capacity(n);
            let cap = tb.capacity() as u64;
            let mut k = 0;
            for h in (1..cap).step_by(3) {
                let first = (h << 32).div_ceil(cap);
                for ord in [first, first - 1] {
                    let ord = u32::try_from(ord).expect("< 2^32");
                    if tb.len() < n {
                        tb.insert(T {
                            ord,
                            key: key_of(k),
                            val: k,
                        });
                        k += 1;
                    }
                }
            }
            tb.check_invariants();
            for (count, max_slots) in [(1, 0), (1, usize::MAX), (2, 1), (3, 2)] {
                let calls = scan_calls(&tb, count, max_slots);
                assert_eq!(calls.iter().map(Vec::len).sum::<usize>(), tb.len());
            }
        }
    }

    #[test]
    fn scan_bounded_limits_work_on_sparse_table() {
        let mut tb = Table::with_capacity(100_000);
        for k in 0..10u32 {
            tb.insert(ent(0, k));
        }
        let slots = tb.slots_len();
        // Unbounded: one call takes everything.
        let mut n = 0;
        assert_eq!(tb.scan(0, 100, |_| n += 1), None);
        assert_eq!(n, 10);
        // Bounded: many cheap calls, each entry exactly once.
        let calls = scan_calls(&tb, 100, 64);
        assert_eq!(calls.iter().map(Vec::len).sum::<usize>(), 10);
        assert!(calls.len() >= tb.capacity() / 65 - 1);
        assert!(calls.len() <= slots / 64 + 12);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32),
        Remove(u32),
        Find(u32),
        Replace(u32),
        RemoveRandom(u64),
        Shrink,
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..300).prop_map(Op::Insert),
            3 => (0u32..300).prop_map(Op::Remove),
            2 => (0u32..300).prop_map(Op::Find),
            1 => (0u32..300).prop_map(Op::Replace),
            1 => any::<u64>().prop_map(Op::RemoveRandom),
            1 => Just(Op::Shrink),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn model_matches_hashmap(mode in 0u8..5, ops in prop::collection::vec(op_strategy(), 1..400)) {
            let mut tb: Table<T> = Table::new();
            let mut model: HashMap<Vec<u8>, (u32, u32)> = HashMap::new();
            for (step, op) in ops.into_iter().enumerate() {
                let step = step as u32;
                match op {
                    Op::Insert(k) => {
                        let e = ent(mode, k);
                        if model.contains_key(&e.key) {
                            prop_assert!(tb.find(e.ord, &e.key).is_some());
                        } else {
                            model.insert(e.key.clone(), (e.ord, e.val));
                            let key = e.key.clone();
                            let p = tb.insert(e);
                            prop_assert_eq!(tb.get(p).map(|x| x.key.clone()), Some(key));
                        }
                    }
                    Op::Remove(k) => {
                        let got = tb.remove(ord_of(mode, k), &key_of(k)).map(|e| e.val);
                        prop_assert_eq!(got, model.remove(&key_of(k)).map(|v| v.1));
                    }
                    Op::Find(k) => {
                        let pos = tb.find(ord_of(mode, k), &key_of(k));
                        let got = pos.and_then(|p| tb.get(p)).map(|e| e.val);
                        prop_assert_eq!(got, model.get(&key_of(k)).map(|v| v.1));
                    }
                    Op::Replace(k) => {
                        if let Some(p) = tb.find(ord_of(mode, k), &key_of(k)) {
                            let mut e = ent(mode, k);
                            e.val = step;
                            prop_assert!(tb.replace_at(p, e).is_some());
                            if let Some(v) = model.get_mut(&key_of(k)) {
                                v.1 = step;
                            }
                        }
                    }
                    Op::RemoveRandom(r) => match tb.random_pos(r) {
                        Some(p) => {
                            let e = tb.remove_at(p);
                            prop_assert!(e.is_some());
                            if let Some(e) = e {
                                prop_assert!(model.remove(&e.key).is_some());
                            }
                        }
                        None => prop_assert!(model.is_empty()),
                    },
                    Op::Shrink => tb.shrink_to_fit_if_sparse(),
                }
                tb.check_invariants();
                prop_assert_eq!(tb.len(), model.len());
            }
            let mut got: Vec<(Vec<u8>, u32, u32)> =
                tb.iter().map(|e| (e.key.clone(), e.ord, e.val)).collect();
            let mut want: Vec<(Vec<u8>, u32, u32)> =
                model.into_iter().map(|(k, (o, v))| (k, o, v)).collect();
            got.sort();
            want.sort();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn scan_guarantee_across_resizes(
            mode in 0u8..5,
            initial in 0u32..400,
            count in 1usize..8,
            bounded in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut tb: Table<T> = Table::new();
            let mut live: Vec<u32> = Vec::new();
            for k in 0..initial {
                tb.insert(ent(mode, k));
                live.push(k);
            }
            let mut throughout: HashSet<u32> = live.iter().copied().collect();
            let mut visited: HashSet<u32> = HashSet::new();
            let mut next_key = initial;
            let mut cursor = 0u32;
            let mut calls = 0;
            let max_slots = if bounded { 16 } else { usize::MAX };
            loop {
                calls += 1;
                prop_assert!(calls < 20_000, "scan did not terminate");
                let next = tb.scan_bounded(cursor, count, max_slots, |e| {
                    visited.insert(e.val);
                });
                match next {
                    None => break,
                    Some(c) => {
                        prop_assert!(c > cursor);
                        cursor = c;
                    }
                }
                if calls > 60 {
                    continue; // stop mutating so the iteration can finish
                }
                match rng.gen_range(0..4) {
                    // Burst insert: forces growth.
                    0 if live.len() < 1500 => {
                        let n = rng.gen_range(live.len() / 2 + 1..=2 * live.len() + 20);
                        for _ in 0..n {
                            tb.insert(ent(mode, next_key));
                            live.push(next_key);
                            next_key += 1;
                        }
                    }
                    // Burst removal + shrink.
                    1 => {
                        let keep = live.len() / rng.gen_range(2..20);
                        while live.len() > keep {
                            let i = rng.gen_range(0..live.len());
                            let k = live.swap_remove(i);
                            prop_assert!(tb.remove(ord_of(mode, k), &key_of(k)).is_some());
                            throughout.remove(&k);
                        }
                        tb.shrink_to_fit_if_sparse();
                    }
                    // A few single inserts / removals.
                    _ => {
                        for _ in 0..rng.gen_range(0..4) {
                            if rng.gen::<bool>() || live.is_empty() {
                                tb.insert(ent(mode, next_key));
                                live.push(next_key);
                                next_key += 1;
                            } else {
                                let i = rng.gen_range(0..live.len());
                                let k = live.swap_remove(i);
                                tb.remove(ord_of(mode, k), &key_of(k));
                                throughout.remove(&k);
                            }
                        }
                    }
                }
            }
            tb.check_invariants();
            for k in &throughout {
                prop_assert!(visited.contains(k), "key {} present throughout but not visited", k);
            }
        }
    }
}
