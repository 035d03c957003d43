//! A model seen through a subset or reordering of its outputs.
//!
//! Lucid's InceptionV1 has 1008 outputs in its own label order (an unused `dummy` first, the
//! 1000 ImageNet classes, unused entries after), while Summit numbers classes in sorted-synset
//! order. [`SelectOutputs`] presents the model with exactly the classes wanted, in the order
//! wanted: its logits are the inner model's logit columns `columns[0], columns[1], …`, gathered
//! on the device. Activations are untouched.

use burn::tensor::{Int, Tensor, TensorData};

use crate::describe::{GraphRef, ModelDescription, Recording, Summarizable, TapId, TapSink};
use crate::error::{ModelError, Result};

/// A model whose class `k` is the inner model's output `columns[k]`.
pub struct SelectOutputs<M> {
    inner: M,
    columns: Vec<usize>,
    description: ModelDescription,
}

impl<M: Summarizable> SelectOutputs<M> {
    /// Class `k` of the result is output `columns[k]` of `inner`. Every column must be an
    /// output of `inner` and appear once; at least one is needed.
    pub fn new(inner: M, columns: Vec<usize>) -> Result<Self> {
        let n = inner.description().num_classes;
        if columns.is_empty() {
            return Err(ModelError::Outputs("no output column selected".into()));
        }
        let mut seen = vec![false; n];
        for (k, &c) in columns.iter().enumerate() {
            let Some(s) = seen.get_mut(c) else {
                return Err(ModelError::Outputs(format!(
                    "class {k} maps to output {c}, but {} has {n} outputs",
                    inner.description().name
                )));
            };
            if std::mem::replace(s, true) {
                return Err(ModelError::Outputs(format!(
                    "output {c} is selected twice (class {k} and an earlier one)"
                )));
            }
        }
        let mut description = inner.description().clone();
        description.num_classes = columns.len();
        description.name = format!("{} ({} of {n} outputs)", description.name, columns.len());
        Ok(Self {
            inner,
            columns,
            description,
        })
    }

    /// Selects by name: class `k` is the output of `inner` whose entry in `outputs` (the
    /// model's output names in order, e.g. Lucid's synset list) equals `classes[k]`. Entries of
    /// `outputs` that name no class (Lucid's `dummy`s) are ignored; `outputs` may be shorter
    /// than the model's outputs (the rest are unused). A class missing from `outputs`, or named
    /// twice there, is an error naming it.
    pub fn by_name<S: AsRef<str>, T: AsRef<str>>(
        inner: M,
        outputs: &[S],
        classes: &[T],
    ) -> Result<Self> {
        let n = inner.description().num_classes;
        if outputs.len() > n {
            return Err(ModelError::Outputs(format!(
                "the output list names {} outputs, but {} has {n}",
                outputs.len(),
                inner.description().name
            )));
        }
        let mut columns = Vec::with_capacity(classes.len());
        for class in classes {
            let class = class.as_ref();
            let mut found = outputs
                .iter()
                .enumerate()
                .filter(|(_, o)| o.as_ref() == class)
                .map(|(i, _)| i);
            let Some(c) = found.next() else {
                return Err(ModelError::Outputs(format!(
                    "class `{class}` is not among the model's outputs"
                )));
            };
            if let Some(again) = found.next() {
                return Err(ModelError::Outputs(format!(
                    "class `{class}` names two outputs ({c} and {again})"
                )));
            }
            columns.push(c);
        }
        Self::new(inner, columns)
    }

    /// The inner model's output of each class.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// The inner model.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    fn gather(&self, logits: Tensor<2>) -> Tensor<2> {
        let cols: Vec<i64> = self.columns.iter().map(|&c| c as i64).collect();
        let n = cols.len();
        let indices = Tensor::<1, Int>::from_data(TensorData::new(cols, [n]), &logits.device());
        logits.select(1, indices)
    }
}

impl<M: Summarizable> Summarizable for SelectOutputs<M> {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn forward_taps(&self, images: Tensor<4>, sink: &mut dyn TapSink) -> Result<Tensor<2>> {
        Ok(self.gather(self.inner.forward_taps(images, sink)?))
    }

    fn weights_hash(&self) -> Result<String> {
        let cols: Vec<u8> = self
            .columns
            .iter()
            .flat_map(|&c| (c as u64).to_le_bytes())
            .collect();
        Ok(crate::identity::extend_hash(
            &self.inner.weights_hash()?,
            &cols,
        ))
    }

    fn forward_to(&self, images: Tensor<4>, tap: TapId) -> Result<Tensor<4>> {
        self.inner.forward_to(images, tap)
    }

    fn accepts_any_size(&self) -> bool {
        self.inner.accepts_any_size()
    }

    fn graph(&self) -> Result<GraphRef<'_>> {
        let inner = self.inner.graph()?;
        let outputs = self
            .columns
            .iter()
            .map(|&c| match &inner.outputs {
                Some(m) => m.get(c).copied().ok_or_else(|| {
                    crate::ModelError::Outputs(format!("output {c} of {} selected", m.len()))
                }),
                None => Ok(c),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GraphRef {
            model: inner.model,
            outputs: Some(outputs),
        })
    }
}

impl<T: Summarizable + ?Sized> Summarizable for Box<T> {
    fn description(&self) -> &ModelDescription {
        (**self).description()
    }

    fn forward(&self, images: Tensor<4>) -> Result<Tensor<2>> {
        (**self).forward(images)
    }

    fn record(&self, images: Tensor<4>) -> Result<Recording> {
        (**self).record(images)
    }

    fn forward_taps(&self, images: Tensor<4>, sink: &mut dyn TapSink) -> Result<Tensor<2>> {
        (**self).forward_taps(images, sink)
    }

    fn weights_hash(&self) -> Result<String> {
        (**self).weights_hash()
    }

    fn forward_to(&self, images: Tensor<4>, tap: TapId) -> Result<Tensor<4>> {
        (**self).forward_to(images, tap)
    }

    fn accepts_any_size(&self) -> bool {
        (**self).accepts_any_size()
    }

    fn graph(&self) -> Result<GraphRef<'_>> {
        (**self).graph()
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::FashionInception;
    use burn::tensor::Device;

    #[test]
    fn gathers_columns_and_rejects_bad_maps() {
        let device = Device::flex();
        let model = FashionInception::embedded(&device).expect("embedded model");
        let x = Tensor::<4>::random(
            [3, 1, 28, 28],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let full =
            crate::to_host(model.forward(x.clone()).expect("forward"), "full").expect("host");
        let sel = SelectOutputs::new(model, vec![7, 2, 9]).expect("select");
        assert_eq!(sel.description().num_classes, 3);
        let got = crate::to_host(sel.record(x).expect("record").logits, "sel").expect("host");
        for b in 0..3 {
            for (k, &c) in [7usize, 2, 9].iter().enumerate() {
                assert_eq!(got[b * 3 + k], full[b * 10 + c]);
            }
        }
        let model = sel.inner;
        let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        let by = SelectOutputs::by_name(model, &names, &["c4", "c0"]).expect("by name");
        assert_eq!(by.columns(), &[4, 0]);
        let model = by.inner;
        let e = SelectOutputs::by_name(model, &names, &["c11"])
            .err()
            .expect("missing class");
        assert!(e.to_string().contains("c11"), "{e}");
        let model = FashionInception::embedded(&device).expect("embedded model");
        let e = SelectOutputs::new(model, vec![1, 10])
            .err()
            .expect("out of range");
        assert!(e.to_string().contains("10"), "{e}");
        let model = FashionInception::embedded(&device).expect("embedded model");
        assert!(SelectOutputs::new(model, vec![1, 1]).is_err());
        let model = FashionInception::embedded(&device).expect("embedded model");
        let dup = ["a", "a", "b"];
        let e = SelectOutputs::by_name(model, &dup, &["a"])
            .err()
            .expect("twice");
        assert!(e.to_string().contains("two outputs"), "{e}");
    }
}
