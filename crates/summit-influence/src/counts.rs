//! Top-k selection of influences and the sparse per-class counts `I`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use summit_activation::{ActivationError, ChannelMask, Selection, Selector};

use crate::error::InfluenceError;

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
    rows.into_iter()
        .enumerate()
        .map(|(r, res)| {
            res.map_err(|e| match e {
                ActivationError::NonFinite { index, value, .. } => InfluenceError::NonFinite {
                    what: "influences L",
                    index: r * c_in + index,
                    value,
                },
                other => InfluenceError::Activation(other),
            })
        })
        .collect()
}

/// Sparse influence counts of one hop: for every (class, output channel `j`)
/// the input channels `i` selected at least once, with their counts
/// `I[class, j, i]`, as a `Vec<(i, count)>` sorted by `i`.
///
/// Memory grows with the number of distinct selections, never with
/// `C · C_out · C_in`. Counts add, so [`merge`](Self::merge) of two shards
/// equals one run over both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfluenceCounts {
    num_classes: usize,
    c_out: usize,
    c_in: usize,
    rows: Vec<Vec<(u32, u32)>>,
}

/// Adds `by` to input `i` of a sorted sparse row.
fn bump(row: &mut Vec<(u32, u32)>, i: u32, by: u32) -> Result<(), ()> {
    match row.binary_search_by_key(&i, |e| e.0) {
        Ok(p) => {
            row[p].1 = row[p].1.checked_add(by).ok_or(())?;
        }
        Err(p) => row.insert(p, (i, by)),
    }
    Ok(())
}

impl InfluenceCounts {
    /// Empty counts for `num_classes` classes of a hop with `c_out` output
    /// and `c_in` input channels.
    pub fn new(num_classes: usize, c_out: usize, c_in: usize) -> Self {
        Self {
            num_classes,
            c_out,
            c_in,
            rows: vec![Vec::new(); num_classes * c_out],
        }
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
            for (i, cnt) in row {
                if i as usize >= c_in {
                    return Err(InfluenceError::IndexOutOfRange {
                        what: "input channel",
                        index: i as usize,
                        len: c_in,
                    });
                }
                if cnt > 0 {
                    bump(&mut out.rows[r], i, cnt).map_err(|()| InfluenceError::CountOverflow {
                        what: format!(
                            "class {}, output channel {}, input {i}",
                            r / c_out.max(1),
                            r % c_out.max(1)
                        ),
                    })?;
                }
            }
        }
        Ok(out)
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

    /// The `(input, count)` pairs of `(class, j)`, sorted by input.
    pub fn row(&self, class: usize, j: usize) -> Option<&[(u32, u32)]> {
        if class >= self.num_classes || j >= self.c_out {
            return None;
        }
        Some(&self.rows[class * self.c_out + j])
    }

    /// The count `I[class, j, i]` (0 when never selected; `None` when out of
    /// range).
    pub fn get(&self, class: usize, j: usize, i: usize) -> Option<u32> {
        if i >= self.c_in {
            return None;
        }
        let row = self.row(class, j)?;
        Some(
            row.binary_search_by_key(&(i as u32), |e| e.0)
                .map_or(0, |p| row[p].1),
        )
    }

    /// The number of stored (class, j, i) entries.
    pub fn num_entries(&self) -> usize {
        self.rows.iter().map(Vec::len).sum()
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

    /// Adds selections `selected[b * c_out + j]` of images labelled `labels`.
    fn add_selected(
        &mut self,
        labels: &[usize],
        selected: &[Vec<u32>],
    ) -> Result<(), InfluenceError> {
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
        let c_out = self.c_out;
        // Overflow check before any change: an entry grows by at most the
        // number of images.
        let room = u32::try_from(labels.len()).unwrap_or(u32::MAX);
        for (r, sel) in selected.iter().enumerate() {
            let (class, j) = (labels[r / c_out], r % c_out);
            let row = &self.rows[class * c_out + j];
            for &i in sel {
                if let Ok(p) = row.binary_search_by_key(&i, |e| e.0)
                    && row[p].1.checked_add(room).is_none()
                {
                    return Err(InfluenceError::CountOverflow {
                        what: format!("class {class}, output channel {j}, input {i}"),
                    });
                }
            }
        }
        for (r, sel) in selected.iter().enumerate() {
            let (class, j) = (labels[r / c_out], r % c_out);
            let row = &mut self.rows[class * c_out + j];
            for &i in sel {
                // cannot fail after the check above
                let _ = bump(row, i, 1);
            }
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
        for (r, (a, b)) in self.rows.iter().zip(&other.rows).enumerate() {
            for &(i, cb) in b {
                if let Ok(p) = a.binary_search_by_key(&i, |e| e.0)
                    && a[p].1.checked_add(cb).is_none()
                {
                    return Err(InfluenceError::CountOverflow {
                        what: format!(
                            "class {}, output channel {}, input {i}",
                            r / self.c_out,
                            r % self.c_out
                        ),
                    });
                }
            }
        }
        for (a, b) in self.rows.iter_mut().zip(&other.rows) {
            if b.is_empty() {
                continue;
            }
            let mut merged = Vec::with_capacity(a.len() + b.len());
            let (mut x, mut y) = (0, 0);
            while x < a.len() || y < b.len() {
                if y == b.len() || (x < a.len() && a[x].0 < b[y].0) {
                    merged.push(a[x]);
                    x += 1;
                } else if x == a.len() || b[y].0 < a[x].0 {
                    merged.push(b[y]);
                    y += 1;
                } else {
                    merged.push((a[x].0, a[x].1.saturating_add(b[y].1)));
                    x += 1;
                    y += 1;
                }
            }
            *a = merged;
        }
        Ok(())
    }

    /// Checks the invariants a loaded file must hold: row count, rows sorted
    /// by input without repeats, inputs in range, counts positive.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.rows.len() != self.num_classes * self.c_out {
            return Err(format!(
                "{} count rows for {} classes × {} output channels",
                self.rows.len(),
                self.num_classes,
                self.c_out
            ));
        }
        for (r, row) in self.rows.iter().enumerate() {
            let sorted = row.windows(2).all(|w| w[0].0 < w[1].0);
            let in_range = row.iter().all(|e| (e.0 as usize) < self.c_in && e.1 > 0);
            if !sorted || !in_range {
                return Err(format!(
                    "invalid count row {r} (class {}, output channel {})",
                    r / self.c_out.max(1),
                    r % self.c_out.max(1)
                ));
            }
        }
        Ok(())
    }
}
