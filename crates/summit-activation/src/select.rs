//! Channel selection: Method 1 (top-k) and Method 2 (top mass), SPEC §1.

use serde::{Deserialize, Serialize};

use crate::error::ActivationError;

/// How the channels of one image (or one output channel's influences) are
/// selected.
///
/// Both methods order the candidates by value, larger first, and among equal
/// values the **higher** channel index first (the original's
/// `sorted(zip(val, idx), reverse=True)`). `-0.0` and `+0.0` are equal.
/// Excluded channels are never candidates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Selection {
    /// Method 1: the `k` largest values.
    ///
    /// Like the original, which sorted every channel, a row with fewer than
    /// `k` positive values also yields zero-valued (and, for influences,
    /// negative) channels, in the tie order above. `TopK(0)` selects nothing;
    /// a `k` larger than the number of candidates selects them all.
    TopK(usize),
    /// Method 2: the top-mass fraction `k_M2`, `0 < k_M2 <= 1`.
    ///
    /// Values are divided by the row sum over channels (excluded channels
    /// count as 0), and channels are taken in order while the running sum of
    /// the mass *already taken* is `< k_M2`, so at least one channel is taken
    /// unless the row is all zero, which selects nothing. Only positive values
    /// carry mass: negative values count as 0, and zero-mass channels are
    /// never taken (with `k_M2 <= 1` the original could only reach them
    /// through floating-point rounding of a cumulative sum near 1).
    /// Masses and their running sum are computed in `f64`, the row sum in
    /// channel order, so the result is the same wherever a row is computed.
    TopMass(f64),
}

impl Default for Selection {
    /// The paper's default, Method 2 with `k_M2 = 0.03`.
    fn default() -> Self {
        Selection::TopMass(0.03)
    }
}

impl Selection {
    /// Checks the rule's parameter: `TopMass(k)` needs a finite `0 < k <= 1`.
    pub fn validate(&self) -> Result<(), ActivationError> {
        match *self {
            Selection::TopK(_) => Ok(()),
            Selection::TopMass(k) if k.is_finite() && k > 0.0 && k <= 1.0 => Ok(()),
            Selection::TopMass(_) => Err(ActivationError::InvalidSelection {
                selection: *self,
                reason: "the top-mass fraction must be finite and in (0, 1]",
            }),
        }
    }
}

/// A set of excluded channels with constant-time lookup.
///
/// Channels beyond the largest excluded one are simply not excluded, so one
/// mask serves rows of any length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelMask {
    bits: Vec<u64>,
    list: Vec<usize>,
}

impl ChannelMask {
    /// The empty mask: nothing excluded.
    pub fn none() -> Self {
        Self::default()
    }

    /// A mask excluding the given channels (any order, duplicates allowed).
    pub fn from_channels(channels: &[usize]) -> Self {
        let mut list = channels.to_vec();
        list.sort_unstable();
        list.dedup();
        let words = list.last().map_or(0, |&c| c / 64 + 1);
        let mut bits = vec![0u64; words];
        for &c in &list {
            bits[c / 64] |= 1 << (c % 64);
        }
        Self { bits, list }
    }

    /// Whether channel `c` is excluded.
    #[inline]
    pub fn contains(&self, c: usize) -> bool {
        self.bits
            .get(c / 64)
            .is_some_and(|w| (w >> (c % 64)) & 1 == 1)
    }

    /// The excluded channels, sorted ascending, without duplicates.
    pub fn channels(&self) -> &[usize] {
        &self.list
    }

    /// Whether nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// The sort key of `(value, channel)`: larger key = earlier in the selection
/// order (value descending, then channel descending). `-0.0` maps like `+0.0`.
#[inline]
pub fn order_key(value: f32, channel: usize) -> u64 {
    let v = if value == 0.0 { 0.0f32 } else { value };
    let b = v.to_bits();
    let ordered = if b >> 31 == 1 { !b } else { b | 0x8000_0000 };
    (u64::from(ordered) << 32) | (channel as u64 & 0xFFFF_FFFF)
}

/// The channel stored in an [`order_key`].
#[inline]
pub fn key_channel(key: u64) -> usize {
    (key & 0xFFFF_FFFF) as usize
}

/// Calls `f` on the keys in descending order until it returns `false`,
/// sorting only as much of `keys` as is visited (chunks growing 4× from
/// `first_chunk`).
fn visit_descending(keys: &mut [u64], first_chunk: usize, mut f: impl FnMut(u64) -> bool) {
    let mut start = 0;
    let mut chunk = first_chunk.max(1);
    while start < keys.len() {
        let rest = &mut keys[start..];
        let m = chunk.min(rest.len());
        if m < rest.len() {
            rest.select_nth_unstable_by(m - 1, |a, b| b.cmp(a));
        }
        let head = &mut rest[..m];
        head.sort_unstable_by(|a, b| b.cmp(a));
        for &key in head.iter() {
            if !f(key) {
                return;
            }
        }
        start += m;
        chunk = chunk.saturating_mul(4);
    }
}

/// Top-k selections up to this k keep a sorted buffer of the best keys instead of
/// partitioning all of them.
const SMALL_K: usize = 32;

/// Values per block of the small-k path's skip test.
const SKIP_BLOCK: usize = 16;

/// A reusable channel selector (keeps its scratch buffer between rows).
#[derive(Debug, Clone, Default)]
pub struct Selector {
    keys: Vec<u64>,
}

impl Selector {
    /// A selector with an empty scratch buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Selects channels of one row `z` by `sel`, skipping `excluded`, and
    /// writes them to `out` (cleared first) in selection order.
    ///
    /// Errors on a non-finite value in `z` or an invalid `sel`.
    pub fn select(
        &mut self,
        z: &[f32],
        excluded: &ChannelMask,
        sel: &Selection,
        out: &mut Vec<usize>,
    ) -> Result<(), ActivationError> {
        out.clear();
        sel.validate()?;
        let non_finite = |index: usize| ActivationError::NonFinite {
            what: "channel values",
            index,
            value: z[index],
        };
        let keys = &mut self.keys;
        keys.clear();
        if let Selection::TopK(k) = *sel
            && k <= SMALL_K
        {
            // a small k: one pass keeping the k largest keys in descending order (keys are
            // distinct, so the order is the generic path's), checking finiteness block by
            // block (the first non-finite value is the one reported, as in the generic
            // path); once k are kept, a value below the k-th's cannot enter (keys are
            // monotone in the value), so most values of a long row cost one vector compare
            if k == 0 {
                return match z.iter().position(|v| !v.is_finite()) {
                    Some(i) => Err(non_finite(i)),
                    None => Ok(()),
                };
            }
            // The k best keys so far, descending, in a fixed buffer; 0 (below every key:
            // a finite value's key has its top 32 bits above 0x0080_0000) fills the rest.
            // Each value of a block that may enter is bubbled through the buffer without
            // branches: on short rows whether a value enters is a coin flip, and a
            // mispredicted branch per value cost more than the k compare-and-swaps.
            let mut best = [0u64; SMALL_K];
            let best = &mut best[..k];
            let mut floor = f32::NEG_INFINITY;
            for (bi, block) in z.chunks(SKIP_BLOCK).enumerate() {
                // a value below the floor cannot enter; the block's test vectorises
                let (mut candidates, finite) =
                    block
                        .iter()
                        .enumerate()
                        .fold((0u32, true), |(mask, fin), (i, &b)| {
                            (mask | (u32::from(b >= floor) << i), fin & b.is_finite())
                        });
                if !finite {
                    let i = block.iter().position(|v| !v.is_finite()).unwrap_or(0);
                    return Err(non_finite(bi * SKIP_BLOCK + i));
                }
                // only the values at or above the block's floor (few, once the buffer fills)
                while candidates != 0 {
                    let i = candidates.trailing_zeros() as usize;
                    candidates &= candidates - 1;
                    let (c, v) = (bi * SKIP_BLOCK + i, block[i]);
                    let mut cur = if excluded.contains(c) {
                        0
                    } else {
                        order_key(v, c)
                    };
                    for b in best.iter_mut() {
                        let (hi, lo) = if cur > *b { (cur, *b) } else { (*b, cur) };
                        *b = hi;
                        cur = lo;
                    }
                }
                if let Some(&last) = best.last()
                    && last != 0
                {
                    floor = z[key_channel(last)];
                }
            }
            let len = best.iter().take_while(|&&key| key != 0).count();
            keys.extend_from_slice(&best[..len]);
            out.extend(keys.iter().map(|&key| key_channel(key)));
            return Ok(());
        }
        if let Some(index) = z.iter().position(|v| !v.is_finite()) {
            return Err(non_finite(index));
        }
        match *sel {
            Selection::TopK(k) => {
                keys.extend(
                    z.iter()
                        .enumerate()
                        .filter(|&(c, _)| !excluded.contains(c))
                        .map(|(c, &v)| order_key(v, c)),
                );
                let mut left = k;
                visit_descending(keys, k, |key| {
                    out.push(key_channel(key));
                    left -= 1;
                    left > 0
                });
            }
            Selection::TopMass(frac) => {
                let mut sum = 0.0f64;
                for (c, &v) in z.iter().enumerate() {
                    if v > 0.0 && !excluded.contains(c) {
                        sum += f64::from(v);
                        keys.push(order_key(v, c));
                    }
                }
                if keys.is_empty() || sum <= 0.0 {
                    return Ok(());
                }
                let mut cum = 0.0f64;
                visit_descending(keys, 16, |key| {
                    if cum < frac {
                        let c = key_channel(key);
                        out.push(c);
                        cum += f64::from(z[c]) / sum;
                        true
                    } else {
                        false
                    }
                });
            }
        }
        Ok(())
    }
}

/// Selects channels of one image row `z` (length `C`) by the SPEC §1 rules,
/// writing them to `out` (cleared first) in selection order.
///
/// A convenience over [`Selector::select`], which reuses its scratch buffer.
///
/// ```
/// use summit_activation::{select_channels, ChannelMask, Selection};
/// let z = [0.0, 5.0, 3.0, 3.0, 1.0];
/// let mut out = Vec::new();
/// select_channels(&z, &ChannelMask::none(), &Selection::TopK(2), &mut out).unwrap();
/// assert_eq!(out, vec![1, 3]); // the tie 3.0/3.0 goes to the higher index
/// // masses 5/12, 3/12, ...: 0 < 0.5 takes channel 1, 5/12 < 0.5 takes channel 3, then stop
/// select_channels(&z, &ChannelMask::none(), &Selection::TopMass(0.5), &mut out).unwrap();
/// assert_eq!(out, vec![1, 3]);
/// select_channels(&z, &ChannelMask::from_channels(&[1]), &Selection::TopMass(0.5), &mut out).unwrap();
/// assert_eq!(out, vec![3, 2]);
/// ```
pub fn select_channels(
    z: &[f32],
    excluded: &ChannelMask,
    sel: &Selection,
    out: &mut Vec<usize>,
) -> Result<(), ActivationError> {
    Selector::new().select(z, excluded, sel, out)
}
