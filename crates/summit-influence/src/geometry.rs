//! The stride and padding of one convolution hop.

use serde::{Deserialize, Serialize};

use crate::error::InfluenceError;

/// Stride, zero padding and dilation of a convolution hop, as the influence
/// cross-correlation applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HopGeometry {
    /// Stride `[sh, sw]`, both positive.
    pub stride: [usize; 2],
    /// Zero padding `[top, bottom, left, right]`.
    pub padding: [usize; 4],
    /// Dilation `[dh, dw]` of the kernel taps (1: adjacent taps), both positive.
    pub dilation: [usize; 2],
}

impl HopGeometry {
    /// A geometry from its stride and `[top, bottom, left, right]` padding, without
    /// dilation.
    pub fn new(stride: [usize; 2], padding: [usize; 4]) -> Self {
        Self {
            stride,
            padding,
            dilation: [1, 1],
        }
    }

    /// The same geometry with kernel taps `dilation` apart.
    ///
    /// ```
    /// use summit_influence::HopGeometry;
    /// // a dilated 3×3 kernel spans 5×5: 9×9 input, no padding → 5×5 output
    /// let g = HopGeometry::new([1, 1], [0; 4]).with_dilation([2, 2]);
    /// assert_eq!(g.output_hw([9, 9], [3, 3]).unwrap(), [5, 5]);
    /// ```
    pub fn with_dilation(mut self, dilation: [usize; 2]) -> Self {
        self.dilation = dilation;
        self
    }

    /// The extent of a `kernel_hw` kernel under this dilation: `(k − 1)·d + 1` per axis.
    pub fn span(&self, kernel_hw: [usize; 2]) -> [usize; 2] {
        [0, 1].map(|a| kernel_hw[a].saturating_sub(1) * self.dilation[a] + 1)
    }

    /// A convolution's own geometry, PyTorch style: symmetric padding
    /// `[pad_h, pad_w]` on both sides.
    pub fn conv(stride: [usize; 2], padding: [usize; 2]) -> Self {
        Self::new(stride, [padding[0], padding[0], padding[1], padding[1]])
    }

    /// TensorFlow `"SAME"` padding at `stride` for a `kernel_hw` kernel on a
    /// `input_hw` input: `out = ceil(in / stride)`,
    /// `pad_total = max((out - 1) * stride + k - in, 0)`, `pad_top =
    /// pad_total / 2` and the extra one (if odd) at the bottom / right.
    ///
    /// ```
    /// use summit_influence::HopGeometry;
    /// // the summit2019 shortcut: stride 3, SAME, 3×3 kernel on 28×28
    /// let g = HopGeometry::tf_same([28, 28], [3, 3], [3, 3]);
    /// assert_eq!(g.padding, [1, 1, 1, 1]); // out 10, pad_total = 9*3+3-28 = 2
    /// assert_eq!(g.output_hw([28, 28], [3, 3]).unwrap(), [10, 10]);
    /// let g = HopGeometry::tf_same([14, 14], [3, 3], [3, 3]);
    /// assert_eq!(g.padding, [0, 1, 0, 1]); // out 5, pad_total = 4*3+3-14 = 1
    /// ```
    pub fn tf_same(input_hw: [usize; 2], kernel_hw: [usize; 2], stride: [usize; 2]) -> Self {
        let mut padding = [0; 4];
        for a in 0..2 {
            let s = stride[a].max(1);
            let out = input_hw[a].div_ceil(s);
            let total = (out.saturating_sub(1) * s + kernel_hw[a]).saturating_sub(input_hw[a]);
            padding[2 * a] = total / 2;
            padding[2 * a + 1] = total - total / 2;
        }
        Self::new(stride, padding)
    }

    /// The output height and width for a `kernel_hw` kernel on a `input_hw`
    /// input: `(in + pad_a + pad_b - span) / stride + 1` per axis (`span` the dilated
    /// kernel extent, [`span`](Self::span)). Errors on a zero stride or dilation, an empty
    /// kernel or input, or a kernel larger than the padded input.
    pub fn output_hw(
        &self,
        input_hw: [usize; 2],
        kernel_hw: [usize; 2],
    ) -> Result<[usize; 2], InfluenceError> {
        if self.stride.contains(&0) {
            return Err(InfluenceError::InvalidHop {
                reason: "stride must be positive",
            });
        }
        if self.dilation.contains(&0) {
            return Err(InfluenceError::InvalidHop {
                reason: "dilation must be positive",
            });
        }
        if kernel_hw.contains(&0) {
            return Err(InfluenceError::InvalidHop {
                reason: "kernel height and width must be positive",
            });
        }
        let span = self.span(kernel_hw);
        let mut out = [0; 2];
        for a in 0..2 {
            let padded = input_hw[a] + self.padding[2 * a] + self.padding[2 * a + 1];
            if input_hw[a] == 0 || padded < span[a] {
                return Err(InfluenceError::EmptyOutput {
                    input_hw,
                    kernel_hw,
                    geometry: Box::new(*self),
                });
            }
            out[a] = (padded - span[a]) / self.stride[a] + 1;
        }
        Ok(out)
    }
}

/// Which geometry influence hops use (SPEC §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum InfluenceGeometry {
    /// Each hop's own stride and padding (the `paper` preset).
    #[default]
    LayerOwn,
    /// TensorFlow `"SAME"` padding at a fixed stride, whatever the layer's
    /// (the original code's shortcut; the `summit2019` preset uses stride 3).
    TfSame {
        /// The stride `[sh, sw]`.
        stride: [usize; 2],
    },
}

impl InfluenceGeometry {
    /// The geometry of a hop whose convolution has geometry `layer`, for a
    /// `kernel_hw` kernel on a `input_hw` input.
    pub fn resolve(
        &self,
        layer: HopGeometry,
        input_hw: [usize; 2],
        kernel_hw: [usize; 2],
    ) -> HopGeometry {
        match *self {
            InfluenceGeometry::LayerOwn => layer,
            InfluenceGeometry::TfSame { stride } => {
                HopGeometry::tf_same(input_hw, kernel_hw, stride)
            }
        }
    }
}
