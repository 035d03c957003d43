//! Top-k selection of influences and the sparse per-class counts `I`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use summit_activation::{ActivationError, ChannelMask, Selection, Selector};

use crate::error::InfluenceError;

/// [`top_influences`] for a hop of any shape (SPEC §2.1): `l` is the hop's influences in the
/// layout of [`influence_cpu_grouped`](crate::influence_cpu_grouped), `[batch, c_out,
/// c_in / groups]`, and the candidates of output channel `j` are the input channels of its
/// group (for a depthwise or identity hop, exactly one, always selected unless excluded).
/// Returns global input indices per row `b * c_out + j`, in selection order.
pub fn top_influences_hop(
    l: &[f32],
    batch: usize,
    hop: &crate::merge::HopSpec,
    excluded_inputs: &ChannelMask,
    sel: &Selection,
) -> Result<Vec<Vec<u32>>, InfluenceError> {
    if hop.groups == 1 {
        return top_influences(l, batch, hop.c_out, hop.c_in, excluded_inputs, sel);
    }
    hop.validate().map_err(|reason| InfluenceError::Mismatch {
        what: "hop shape".into(),
        left: "channels divisible by the groups".into(),
        right: reason,
    })?;
    let cin_g = hop.group_inputs();
    let expected = batch.saturating_mul(hop.c_out).saturating_mul(cin_g);
    if l.len() != expected {
        return Err(InfluenceError::Shape {
            what: "influences L [B, C_out, C_in / groups]",
            dims: vec![batch, hop.c_out, cin_g],
            expected,
            got: l.len(),
        });
    }
    sel.validate()?;
    // the excluded channels of each group, as group-local indices
    let masks: Vec<ChannelMask> = (0..hop.groups)
        .map(|g| {
            let local: Vec<usize> = (0..cin_g)
                .filter(|&q| excluded_inputs.contains(g * cin_g + q))
                .collect();
            ChannelMask::from_channels(&local)
        })
        .collect();
    let cout_g = hop.c_out / hop.groups;
    let rows: Vec<Result<Vec<u32>, ActivationError>> = l
        .par_chunks(cin_g)
        .enumerate()
        .map_init(
            || (Selector::new(), Vec::new()),
            |(selector, out), (r, row)| {
                let g = (r % hop.c_out) / cout_g;
                selector
                    .select(row, &masks[g], sel, out)
                    .map(|()| out.iter().map(|&q| (g * cin_g + q) as u32).collect())
            },
        )
        .collect();
    row_errors(rows, cin_g)
}

/// The per-row selections, a non-finite influence named by its index in `L` (rows of
/// `width` values).
fn row_errors(
    rows: Vec<Result<Vec<u32>, ActivationError>>,
    width: usize,
) -> Result<Vec<Vec<u32>>, InfluenceError> {
    rows.into_iter()
        .enumerate()
        .map(|(r, res)| {
            res.map_err(|e| match e {
                ActivationError::NonFinite { index, value, .. } => InfluenceError::NonFinite {
                    what: "influences L",
                    index: r * width + index,
                    value,
                },
                other => InfluenceError::Activation(other),
            })
        })
        .collect()
}

/// Selects, for every image `b` and output channel `j`, the input channels
/// with the largest influence `L[b, j, :]` by `sel` (SPEC §2: Method 1,
/// `TopK(5)`, by default), excluded input channels removed first, ties to the
/// higher input index. `l` is `[batch, c_out, c_in]` as
/// [`influence_cpu`](crate::influence_cpu) returns it.
///
/// Returns one `Vec` per row `b * c_out + j`, in selection order. Rows are
/// processed in parallel; the result does not depend on the thread count.
pub fn top_influences(
    l: &[f32],
    batch: usize,
    c_out: usize,
    c_in: usize,
    excluded_inputs: &ChannelMask,
    sel: &Selection,
) -> Result<Vec<Vec<u32>>, InfluenceError> {
    let expected = batch.saturating_mul(c_out).saturating_mul(c_in);
    if l.len() != expected {
        return Err(InfluenceError::Shape {
            what: "influences L [B, C_out, C_in]",
            dims: vec![batch, c_out, c_in],
            expected,
            got: l.len(),
        });
    }
    sel.validate()?;
    if c_in == 0 {
        return Ok(vec![Vec::new(); batch * c_out]);
    }
    let rows: Vec<Result<Vec<u32>, ActivationError>> = l
        .par_chunks(c_in)
        .map_init(
            || (Selector::new(), Vec::new()),
            |(selector, out), row| {
                selector
                    .select(row, excluded_inputs, sel, out)
                    .map(|()| out.iter().map(|&i| i as u32).collect())
            },
        )
        .collect();
    row_errors(rows, c_in)
}

/// One (class, output channel) row of counts: sparse pairs while few inputs were counted,
/// dense small integers once many were (see [`InfluenceCounts`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Row {
    /// `(input, count)` sorted by input, counts > 0.
    Sparse(Vec<(u32, u32)>),
    /// One `u16` count per input; `nonzero` of them are > 0.
    Dense16 { nonzero: u32, counts: Vec<u16> },
    /// One `u32` count per input (a count above 65,535); `nonzero` of them are > 0.
    Dense32 { nonzero: u32, counts: Vec<u32> },
}

/// Which representation a row with `nonzero` counted inputs of `c_in`, the largest count
/// `max`, takes: sparse pairs cost 8 bytes an entry, dense rows 2 (or 4) bytes an input.
/// A function of the row's contents only, so equal counts are stored (and saved) alike
/// whatever order they were added in.
fn kind_for(nonzero: usize, max: u32, c_in: usize) -> u8 {
    if max > u32::from(u16::MAX) {
        if nonzero * 2 >= c_in { 2 } else { 0 }
    } else if nonzero * 4 >= c_in && c_in > 0 {
        1
    } else {
        0
    }
}

impl Row {
    const EMPTY: Row = Row::Sparse(Vec::new());

    fn view(&self) -> RowRef<'_> {
        match self {
            Row::Sparse(v) => RowRef::Sparse(v),
            Row::Dense16 { nonzero, counts } => RowRef::Dense16 {
                nonzero: *nonzero as usize,
                counts,
            },
            Row::Dense32 { nonzero, counts } => RowRef::Dense32 {
                nonzero: *nonzero as usize,
                counts,
            },
        }
    }

    fn get(&self, i: u32) -> u32 {
        self.view().get(i as usize)
    }

    /// Adds `by` to input `i`; `Err` on overflow (nothing changed).
    fn bump(&mut self, i: u32, by: u32) -> Result<(), ()> {
        match self {
            Row::Sparse(row) => match row.binary_search_by_key(&i, |e| e.0) {
                Ok(p) => row[p].1 = row[p].1.checked_add(by).ok_or(())?,
                Err(p) => row.insert(p, (i, by)),
            },
            Row::Dense16 { nonzero, counts } => {
                let slot = &mut counts[i as usize];
                let v = u32::from(*slot).checked_add(by).ok_or(())?;
                if *slot == 0 {
                    *nonzero += 1;
                }
                match u16::try_from(v) {
                    Ok(v) => *slot = v,
                    Err(_) => {
                        // widen, then store
                        let nz = *nonzero;
                        let mut wide: Vec<u32> = counts.iter().map(|&c| u32::from(c)).collect();
                        wide[i as usize] = v;
                        *self = Row::Dense32 {
                            nonzero: nz,
                            counts: wide,
                        };
                    }
                }
            }
            Row::Dense32 { nonzero, counts } => {
                let slot = &mut counts[i as usize];
                if *slot == 0 {
                    *nonzero += 1;
                }
                *slot = slot.checked_add(by).ok_or(())?;
            }
        }
        Ok(())
    }

    /// Puts the row into the representation [`kind_for`] gives for its contents.
    fn normalize(&mut self, c_in: usize) {
        let v = self.view();
        let (n, max) = (v.len(), v.iter().map(|e| e.1).max().unwrap_or(0));
        let want = kind_for(n, max, c_in);
        let have = match self {
            Row::Sparse(_) => 0,
            Row::Dense16 { .. } => 1,
            Row::Dense32 { .. } => 2,
        };
        if want == have {
            return;
        }
        let pairs: Vec<(u32, u32)> = self.view().iter().collect();
        *self = match want {
            0 => Row::Sparse(pairs),
            1 => {
                let mut counts = vec![0u16; c_in];
                for &(i, c) in &pairs {
                    counts[i as usize] = u16::try_from(c).unwrap_or(u16::MAX);
                }
                Row::Dense16 {
                    nonzero: pairs.len() as u32,
                    counts,
                }
            }
            _ => {
                let mut counts = vec![0u32; c_in];
                for &(i, c) in &pairs {
                    counts[i as usize] = c;
                }
                Row::Dense32 {
                    nonzero: pairs.len() as u32,
                    counts,
                }
            }
        };
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Row::Sparse(v) => v.capacity() * 8,
            Row::Dense16 { counts, .. } => counts.capacity() * 2,
            Row::Dense32 { counts, .. } => counts.capacity() * 4,
        }
    }
}

/// A read-only view of one (class, output channel) row of [`InfluenceCounts`]: the inputs
/// `i` with a count `I[class, j, i] > 0`.
#[derive(Debug, Clone, Copy)]
pub enum RowRef<'a> {
    /// `(input, count)` pairs sorted by input.
    Sparse(&'a [(u32, u32)]),
    /// One count per input, `nonzero` of them positive.
    Dense16 {
        /// Number of positive counts.
        nonzero: usize,
        /// The counts, by input.
        counts: &'a [u16],
    },
    /// One count per input, `nonzero` of them positive.
    Dense32 {
        /// Number of positive counts.
        nonzero: usize,
        /// The counts, by input.
        counts: &'a [u32],
    },
}

impl<'a> RowRef<'a> {
    /// The number of inputs with a positive count.
    pub fn len(&self) -> usize {
        match self {
            RowRef::Sparse(v) => v.len(),
            RowRef::Dense16 { nonzero, .. } | RowRef::Dense32 { nonzero, .. } => *nonzero,
        }
    }

    /// Whether no input has a positive count.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(input, count)` of every input with a positive count, by ascending input.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (u32, u32)> + 'a> {
        match *self {
            RowRef::Sparse(v) => Box::new(v.iter().copied()),
            RowRef::Dense16 { counts, .. } => Box::new(
                counts
                    .iter()
                    .enumerate()
                    .filter(|e| *e.1 > 0)
                    .map(|(i, &c)| (i as u32, u32::from(c))),
            ),
            RowRef::Dense32 { counts, .. } => Box::new(
                counts
                    .iter()
                    .enumerate()
                    .filter(|e| *e.1 > 0)
                    .map(|(i, &c)| (i as u32, c)),
            ),
        }
    }

    /// The pairs of [`iter`](Self::iter) as a vector.
    pub fn to_vec(&self) -> Vec<(u32, u32)> {
        self.iter().collect()
    }

    /// The count of input `i` (0 when never selected or out of range).
    pub fn get(&self, i: usize) -> u32 {
        match *self {
            RowRef::Sparse(v) => v
                .binary_search_by_key(&(i as u32), |e| e.0)
                .map_or(0, |p| v[p].1),
            RowRef::Dense16 { counts, .. } => counts.get(i).map_or(0, |&c| u32::from(c)),
            RowRef::Dense32 { counts, .. } => counts.get(i).copied().unwrap_or(0),
        }
    }
}

impl<'a> IntoIterator for RowRef<'a> {
    type Item = (u32, u32);
    type IntoIter = Box<dyn Iterator<Item = (u32, u32)> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.view(), other.view());
        a.len() == b.len() && a.iter().eq(b.iter())
    }
}
impl Eq for Row {}

/// Influence counts of one hop: for every (class, output channel `j`) the input channels `i`
/// selected at least once, with their counts `I[class, j, i]`.
///
/// Memory is bounded by classes × channels whatever the number of images: a class without
/// images costs nothing; a row holds `(input, count)` pairs (8 bytes each) while fewer than a
/// quarter of the inputs are counted, and one `u16` per input once more are (a `u32` per
/// input only where a count exceeds 65,535), so a saturated row costs `2 · C_in` bytes.
/// Counts add, so [`merge`](Self::merge) of two shards equals one run over both, and the
/// representation depends only on the counts.
///
/// ```
/// use summit_influence::InfluenceCounts;
///
/// // 2 classes, 2 output channels, 3 input channels
/// let c = InfluenceCounts::from_rows(2, 2, 3, vec![
///     vec![(2, 4), (0, 1)], vec![], // class 0
///     vec![], vec![(1, 7)],         // class 1
/// ])?;
/// assert_eq!(c.row(0, 0).unwrap().to_vec(), vec![(0, 1), (2, 4)]);
/// assert_eq!(c.get(1, 1, 1), Some(7));
/// let m = c.class_matrix(0).unwrap(); // ndarray, [C_out, C_in]
/// assert_eq!(m[[0, 2]], 4);
/// assert_eq!(m.sum(), 5);
/// # Ok::<(), summit_influence::InfluenceError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCounts")]
pub struct InfluenceCounts {
    num_classes: usize,
    c_out: usize,
    c_in: usize,
    /// Per class: `None` until the class is counted, then one row per output channel.
    /// Saved compactly ([`wire`]): each row as the gaps between its inputs and its counts,
    /// as LEB128 varints.
    #[serde(with = "wire")]
    classes: Vec<Option<Vec<Row>>>,
}

/// [`InfluenceCounts`] as decoded, before its checks and the canonical form of its rows.
#[derive(Deserialize)]
struct RawCounts {
    num_classes: usize,
    c_out: usize,
    c_in: usize,
    #[serde(with = "wire")]
    classes: Vec<Option<Vec<Row>>>,
}

impl TryFrom<RawCounts> for InfluenceCounts {
    type Error = String;

    fn try_from(r: RawCounts) -> Result<Self, String> {
        let mut c = InfluenceCounts {
            num_classes: r.num_classes,
            c_out: r.c_out,
            c_in: r.c_in,
            classes: r.classes,
        };
        c.validate()?;
        let c_in = c.c_in;
        for row in c.classes.iter_mut().flatten().flatten() {
            row.normalize(c_in);
        }
        Ok(c)
    }
}

/// The saved form of the rows: per class `None`, or one byte string holding every row as
/// `n` then `n` pairs (gap from the previous input + 1, count), each an unsigned LEB128
/// varint. Decoding rebuilds each row in its canonical representation, so a file cannot
/// smuggle in a non-canonical one; the checks of `validate` then apply.
mod wire {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Row;

    fn put(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn take(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *bytes.get(*at).ok_or("truncated row data")?;
            *at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("overlong varint in row data".into())
    }

    pub(super) fn serialize<S: Serializer>(
        classes: &[Option<Vec<Row>>],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        // one class's bytes at a time: the saved file is never held twice in memory
        s.collect_seq(classes.iter().map(|rows| {
            rows.as_ref().map(|rows| {
                let mut out = Vec::new();
                for r in rows {
                    let v = r.view();
                    put(&mut out, v.len() as u64);
                    let mut prev: i64 = -1;
                    for (i, c) in v.iter() {
                        put(&mut out, (i64::from(i) - prev) as u64);
                        put(&mut out, u64::from(c));
                        prev = i64::from(i);
                    }
                }
                (rows.len() as u32, serde_bytes_like::Bytes(out))
            })
        }))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<Option<Vec<Row>>>, D::Error> {
        let encoded: Vec<Option<(u32, serde_bytes_like::Bytes)>> = Vec::deserialize(d)?;
        encoded
            .into_iter()
            .map(|class| {
                let Some((n_rows, bytes)) = class else {
                    return Ok(None);
                };
                let bytes = bytes.0;
                let mut at = 0;
                let mut rows = Vec::with_capacity(n_rows as usize);
                for _ in 0..n_rows {
                    let n = take(&bytes, &mut at).map_err(D::Error::custom)?;
                    let mut pairs = Vec::with_capacity(n.min(1 << 16) as usize);
                    let mut prev: i64 = -1;
                    for _ in 0..n {
                        let gap = take(&bytes, &mut at).map_err(D::Error::custom)?;
                        let c = take(&bytes, &mut at).map_err(D::Error::custom)?;
                        let i = prev + i64::try_from(gap).map_err(D::Error::custom)?;
                        if gap == 0 || i > i64::from(u32::MAX) || c == 0 || c > u64::from(u32::MAX)
                        {
                            return Err(D::Error::custom("invalid row entry"));
                        }
                        pairs.push((i as u32, c as u32));
                        prev = i;
                    }
                    rows.push(Row::Sparse(pairs));
                }
                if at != bytes.len() {
                    return Err(D::Error::custom("trailing bytes in row data"));
                }
                Ok(Some(rows))
            })
            .collect()
    }

    /// A byte string serialised as one length-prefixed blob (not a sequence of numbers).
    mod serde_bytes_like {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        pub(crate) struct Bytes(pub Vec<u8>);

        impl Serialize for Bytes {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for Bytes {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a byte string")
                    }
                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                        Ok(Bytes(v.to_vec()))
                    }
                    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                        Ok(Bytes(v))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<Bytes, A::Error> {
                        let mut out = Vec::new();
                        while let Some(b) = seq.next_element::<u8>()? {
                            out.push(b);
                        }
                        Ok(Bytes(out))
                    }
                }
                d.deserialize_byte_buf(V)
            }
        }
    }
}

impl InfluenceCounts {
    /// Empty counts for `num_classes` classes of a hop with `c_out` output
    /// and `c_in` input channels.
    pub fn new(num_classes: usize, c_out: usize, c_in: usize) -> Self {
        Self {
            num_classes,
            c_out,
            c_in,
            classes: vec![None; num_classes],
        }
    }

    fn class_rows_mut(&mut self, class: usize) -> &mut Vec<Row> {
        let c_out = self.c_out;
        self.classes[class].get_or_insert_with(|| vec![Row::EMPTY; c_out])
    }

    /// Builds counts from explicit rows: `rows[class * c_out + j]` lists
    /// `(input, count)` pairs. Pairs may come in any order; repeated inputs
    /// add up; zero counts are dropped. Errors on a wrong row count or an
    /// input out of range.
    pub fn from_rows(
        num_classes: usize,
        c_out: usize,
        c_in: usize,
        rows: Vec<Vec<(u32, u32)>>,
    ) -> Result<Self, InfluenceError> {
        if rows.len() != num_classes * c_out {
            return Err(InfluenceError::Shape {
                what: "influence count rows [C, C_out]",
                dims: vec![num_classes, c_out],
                expected: num_classes * c_out,
                got: rows.len(),
            });
        }
        let mut out = Self::new(num_classes, c_out, c_in);
        for (r, row) in rows.into_iter().enumerate() {
            if row.iter().all(|e| e.1 == 0) {
                continue;
            }
            let (class, j) = (r / c_out.max(1), r % c_out.max(1));
            let target = &mut out.class_rows_mut(class)[j];
            for (i, cnt) in row {
                if i as usize >= c_in {
                    return Err(InfluenceError::IndexOutOfRange {
                        what: "input channel",
                        index: i as usize,
                        len: c_in,
                    });
                }
                if cnt > 0 {
                    target
                        .bump(i, cnt)
                        .map_err(|()| InfluenceError::CountOverflow {
                            what: format!("class {class}, output channel {j}, input {i}"),
                        })?;
                }
            }
            target.normalize(c_in);
        }
        Ok(out)
    }

    /// Adds counts computed elsewhere (an importer, a simulation) to row `(class, j)`:
    /// `pairs` lists `(input, count)` in any order, repeated inputs adding up. Checks
    /// everything before changing anything.
    pub fn add_row(
        &mut self,
        class: usize,
        j: usize,
        pairs: &[(u32, u32)],
    ) -> Result<(), InfluenceError> {
        self.check_labels(&[class])?;
        if j >= self.c_out {
            return Err(InfluenceError::IndexOutOfRange {
                what: "output channel",
                index: j,
                len: self.c_out,
            });
        }
        if let Some(&(i, _)) = pairs.iter().find(|e| e.0 as usize >= self.c_in) {
            return Err(InfluenceError::IndexOutOfRange {
                what: "input channel",
                index: i as usize,
                len: self.c_in,
            });
        }
        let overflow = || InfluenceError::CountOverflow {
            what: format!("class {class}, output channel {j}"),
        };
        let total = pairs
            .iter()
            .try_fold(0u32, |t, e| t.checked_add(e.1))
            .ok_or_else(overflow)?;
        if let Some(rows) = &self.classes[class]
            && pairs
                .iter()
                .any(|e| rows[j].get(e.0).checked_add(total).is_none())
        {
            return Err(overflow());
        }
        if pairs.iter().all(|e| e.1 == 0) {
            return Ok(());
        }
        let c_in = self.c_in;
        let row = &mut self.class_rows_mut(class)[j];
        for &(i, n) in pairs.iter().filter(|e| e.1 > 0) {
            // cannot fail after the checks above
            let _ = row.bump(i, n);
        }
        row.normalize(c_in);
        Ok(())
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The hop's output channel count.
    pub fn c_out(&self) -> usize {
        self.c_out
    }

    /// The hop's input channel count.
    pub fn c_in(&self) -> usize {
        self.c_in
    }

    /// The counted inputs of `(class, j)` (`None` when out of range).
    pub fn row(&self, class: usize, j: usize) -> Option<RowRef<'_>> {
        if class >= self.num_classes || j >= self.c_out {
            return None;
        }
        Some(match &self.classes[class] {
            Some(rows) => rows[j].view(),
            None => RowRef::Sparse(&[]),
        })
    }

    /// The count `I[class, j, i]` (0 when never selected; `None` when out of
    /// range).
    pub fn get(&self, class: usize, j: usize, i: usize) -> Option<u32> {
        if i >= self.c_in {
            return None;
        }
        Some(self.row(class, j)?.get(i))
    }

    /// The counts of `class` as a dense `[C_out, C_in]` matrix (`None` when out of range).
    pub fn class_matrix(&self, class: usize) -> Option<ndarray::Array2<u32>> {
        if class >= self.num_classes {
            return None;
        }
        let mut m = ndarray::Array2::<u32>::zeros((self.c_out, self.c_in));
        if let Some(rows) = &self.classes[class] {
            for (j, row) in rows.iter().enumerate() {
                for (i, c) in row.view().iter() {
                    m[[j, i as usize]] = c;
                }
            }
        }
        Some(m)
    }

    /// The number of stored (class, j, i) entries with a positive count.
    pub fn num_entries(&self) -> usize {
        self.classes
            .iter()
            .flatten()
            .flat_map(|rows| rows.iter().map(|r| r.view().len()))
            .sum()
    }

    /// Bytes of memory the counts hold (the rows' storage and the per-class tables), for
    /// memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.classes.capacity() * std::mem::size_of::<Option<Vec<Row>>>()
            + self
                .classes
                .iter()
                .flatten()
                .map(|rows| {
                    rows.capacity() * std::mem::size_of::<Row>()
                        + rows.iter().map(Row::heap_bytes).sum::<usize>()
                })
                .sum::<usize>()
    }

    fn check_labels(&self, labels: &[usize]) -> Result<(), InfluenceError> {
        match labels.iter().position(|&l| l >= self.num_classes) {
            Some(image) => Err(InfluenceError::LabelOutOfRange {
                image,
                label: labels[image],
                classes: self.num_classes,
            }),
            None => Ok(()),
        }
    }

    /// Adds one image's selections: 1 to `I[class, j, i]` for every `i` in
    /// `selected[j]` (one list per output channel).
    pub fn add_image(&mut self, class: usize, selected: &[Vec<u32>]) -> Result<(), InfluenceError> {
        self.check_labels(&[class])?;
        if selected.len() != self.c_out {
            return Err(InfluenceError::Shape {
                what: "selections per output channel",
                dims: vec![self.c_out],
                expected: self.c_out,
                got: selected.len(),
            });
        }
        self.add_selected(&[class], selected)
    }

    /// Adds selections `selected[b * c_out + j]` of images labelled `labels`: 1 to
    /// `I[labels[b], j, i]` for every `i` in the list. Validated before any count changes.
    pub fn add_selected(
        &mut self,
        labels: &[usize],
        selected: &[Vec<u32>],
    ) -> Result<(), InfluenceError> {
        self.check_labels(labels)?;
        if selected.len() != labels.len() * self.c_out {
            return Err(InfluenceError::Shape {
                what: "selections [B, C_out]",
                dims: vec![labels.len(), self.c_out],
                expected: labels.len() * self.c_out,
                got: selected.len(),
            });
        }
        if let Some(&i) = selected
            .iter()
            .flatten()
            .find(|&&i| i as usize >= self.c_in)
        {
            return Err(InfluenceError::IndexOutOfRange {
                what: "input channel",
                index: i as usize,
                len: self.c_in,
            });
        }
        let (c_out, c_in) = (self.c_out, self.c_in);
        // Overflow check before any change: an entry grows by at most the
        // number of images.
        let room = u32::try_from(labels.len()).unwrap_or(u32::MAX);
        for (r, sel) in selected.iter().enumerate() {
            let (class, j) = (labels[r / c_out], r % c_out);
            let Some(rows) = &self.classes[class] else {
                continue;
            };
            for &i in sel {
                if rows[j].get(i).checked_add(room).is_none() {
                    return Err(InfluenceError::CountOverflow {
                        what: format!("class {class}, output channel {j}, input {i}"),
                    });
                }
            }
        }
        let mut touched: Vec<(usize, usize)> = Vec::new();
        for (r, sel) in selected.iter().enumerate() {
            if sel.is_empty() {
                continue;
            }
            let (class, j) = (labels[r / c_out], r % c_out);
            let row = &mut self.class_rows_mut(class)[j];
            for &i in sel {
                // cannot fail after the check above
                let _ = row.bump(i, 1);
            }
            touched.push((class, j));
        }
        touched.sort_unstable();
        touched.dedup();
        for (class, j) in touched {
            self.class_rows_mut(class)[j].normalize(c_in);
        }
        Ok(())
    }

    /// Adds one batch of influences `l` (`[batch, c_out, c_in]`): per image
    /// and output channel, the inputs chosen by `sel` among those not in
    /// `excluded_inputs` (see [`top_influences`]) each add 1 to
    /// `I[label, j, i]`. The batch is validated before any count changes.
    pub fn add_batch(
        &mut self,
        l: &[f32],
        batch: usize,
        labels: &[usize],
        excluded_inputs: &ChannelMask,
        sel: &Selection,
    ) -> Result<(), InfluenceError> {
        if labels.len() != batch {
            return Err(InfluenceError::Shape {
                what: "labels",
                dims: vec![batch],
                expected: batch,
                got: labels.len(),
            });
        }
        self.check_labels(labels)?;
        let selected = top_influences(l, batch, self.c_out, self.c_in, excluded_inputs, sel)?;
        self.add_selected(labels, &selected)
    }

    /// Adds `other`'s counts to these. Refuses different shapes.
    pub fn merge(&mut self, other: &InfluenceCounts) -> Result<(), InfluenceError> {
        let mine = (self.num_classes, self.c_out, self.c_in);
        let theirs = (other.num_classes, other.c_out, other.c_in);
        if mine != theirs {
            return Err(InfluenceError::Mismatch {
                what: "influence count shapes (classes, C_out, C_in)".into(),
                left: format!("{mine:?}"),
                right: format!("{theirs:?}"),
            });
        }
        // Overflow check before any change.
        for (class, (a, b)) in self.classes.iter().zip(&other.classes).enumerate() {
            let (Some(a), Some(b)) = (a, b) else { continue };
            for (j, (ra, rb)) in a.iter().zip(b).enumerate() {
                for (i, cb) in rb.view().iter() {
                    if ra.get(i).checked_add(cb).is_none() {
                        return Err(InfluenceError::CountOverflow {
                            what: format!("class {class}, output channel {j}, input {i}"),
                        });
                    }
                }
            }
        }
        let c_in = self.c_in;
        for (a, b) in self.classes.iter_mut().zip(&other.classes) {
            let Some(b) = b else { continue };
            match a {
                None => *a = Some(b.clone()),
                Some(a) => {
                    for (ra, rb) in a.iter_mut().zip(b) {
                        if rb.view().is_empty() {
                            continue;
                        }
                        for (i, cb) in rb.view().iter() {
                            let _ = ra.bump(i, cb);
                        }
                        ra.normalize(c_in);
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks the invariants a loaded file must hold: row count, rows sorted
    /// by input without repeats, inputs in range, counts positive, dense rows of the
    /// right length and count of positive entries.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.classes.len() != self.num_classes {
            return Err(format!(
                "{} class tables for {} classes",
                self.classes.len(),
                self.num_classes
            ));
        }
        for (class, rows) in self.classes.iter().enumerate() {
            let Some(rows) = rows else { continue };
            if rows.len() != self.c_out {
                return Err(format!(
                    "class {class}: {} count rows for {} output channels",
                    rows.len(),
                    self.c_out
                ));
            }
            for (j, row) in rows.iter().enumerate() {
                let bad = || format!("invalid count row (class {class}, output channel {j})");
                let ok = match row {
                    Row::Sparse(v) => {
                        v.windows(2).all(|w| w[0].0 < w[1].0)
                            && v.iter().all(|e| (e.0 as usize) < self.c_in && e.1 > 0)
                    }
                    Row::Dense16 { nonzero, counts } => {
                        counts.len() == self.c_in
                            && counts.iter().filter(|&&c| c > 0).count() == *nonzero as usize
                    }
                    Row::Dense32 { nonzero, counts } => {
                        counts.len() == self.c_in
                            && counts.iter().filter(|&&c| c > 0).count() == *nonzero as usize
                    }
                };
                if !ok {
                    return Err(bad());
                }
            }
        }
        Ok(())
    }
}
