//! Layer-wise relevance propagation (SPEC §4.2): the rules for linear layers and the
//! composites that assign them, with zennit 0.5.1's definitions (the parity tests compare with
//! zennit value by value).
//!
//! Every rule computes, from a linear layer's input `x` and its output relevance `R`, the
//! relevance of `x`: some modified forward passes `zᵢ = layer(xᵢ; wᵢ, bᵢ)`, `sᵢ = R / stab(z)`,
//! `cᵢ = wᵢᵀ sᵢ` and a reduction, exactly as zennit's `BasicHook` does. The graph walk that
//! carries relevance through every other operator is the model's ([`summit_model::OnnxModel::relevance`]).

use serde::{Deserialize, Serialize};
use summit_model::burn::tensor::Tensor;
use summit_model::{LinearKind, LinearLayer, LinearRelevance, divide_stabilized};

use crate::error::{AttributionError, Result};

/// zennit's default stabiliser of every rule but `epsilon`.
pub const STABILIZER: f32 = 1e-6;

/// A rule for linear layers (zennit 0.5.1's definitions; `x⁺ = max(x, 0)`, `w⁻ = min(w, 0)`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "rule")]
pub enum Rule {
    /// `R_x = x · wᵀ(R / stab_ε(z))`, `z = w·x + b` (`ε = 0`: LRP-0, division by zero giving 0).
    Epsilon {
        /// The stabiliser (1e-6 in the composites).
        epsilon: f32,
    },
    /// Positive contributions only: `z = w⁺x⁺ + b⁺ + w⁻x⁻`.
    ZPlus,
    /// `α` times the positive contributions' share minus `β` times the negative ones'
    /// (`α − β = 1`).
    AlphaBeta {
        /// Weight of the positive part.
        alpha: f32,
        /// Weight of the negative part.
        beta: f32,
    },
    /// Generalised gamma: weights `w + γw⁺` for positive outputs, `w + γw⁻` for negative ones.
    Gamma {
        /// `γ` (0.25 in the composites).
        gamma: f32,
    },
    /// Every weight 1, every input 1, no bias: relevance spread uniformly over the receptive
    /// field.
    Flat,
    /// Weights squared, inputs 1.
    WSquare,
    /// The `z^B` rule for bounded inputs, between the model's lowest and highest input values
    /// per channel ([`crate::AttributionParams::input_bounds`]).
    ZBox,
}

impl Rule {
    /// The rule's name (`epsilon`, `zplus`, `alpha2-beta1`, `gamma`, `flat`, `wsquare`,
    /// `zbox`; `z` for `ε = 0`).
    pub fn name(&self) -> String {
        match self {
            Rule::Epsilon { epsilon } if *epsilon == 0.0 => "z".into(),
            Rule::Epsilon { epsilon } if *epsilon == 1e-6 => "epsilon".into(),
            Rule::Epsilon { epsilon } => format!("epsilon={epsilon}"),
            Rule::ZPlus => "zplus".into(),
            Rule::AlphaBeta { alpha, beta } => format!("alpha{alpha}-beta{beta}"),
            Rule::Gamma { gamma } if *gamma == 0.25 => "gamma".into(),
            Rule::Gamma { gamma } => format!("gamma={gamma}"),
            Rule::Flat => "flat".into(),
            Rule::WSquare => "wsquare".into(),
            Rule::ZBox => "zbox".into(),
        }
    }

    /// Checks the parameters (`α − β = 1`, `α, β ≥ 0`, `ε, γ ≥ 0`).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(AttributionError::Params(m));
        match *self {
            Rule::Epsilon { epsilon } if !(epsilon >= 0.0 && epsilon.is_finite()) => {
                bad(format!("rule epsilon: ε must be ≥ 0, got {epsilon}"))
            }
            Rule::Gamma { gamma } if !(gamma >= 0.0 && gamma.is_finite()) => {
                bad(format!("rule gamma: γ must be ≥ 0, got {gamma}"))
            }
            Rule::AlphaBeta { alpha, beta }
                if !(alpha >= 0.0 && beta >= 0.0 && (alpha - beta - 1.0).abs() < 1e-6) =>
            {
                bad(format!(
                    "rule alpha-beta: α, β ≥ 0 with α − β = 1, got α = {alpha}, β = {beta}"
                ))
            }
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for Rule {
    type Err = AttributionError;

    /// `epsilon[=ε]`, `z`, `zplus`, `alpha2-beta1`, `alpha1-beta0` (or `alpha<α>-beta<β>`),
    /// `gamma[=γ]`, `flat`, `wsquare`, `zbox`; case and `_`/`-` do not matter.
    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let unknown = || AttributionError::UnknownRule {
            name: s.to_string(),
            known:
                "epsilon[=ε], z, zplus, alpha2-beta1, alpha1-beta0, gamma[=γ], flat, wsquare, zbox"
                    .into(),
        };
        let num = |v: &str| v.parse::<f32>().map_err(|_| unknown());
        let rule = match norm.as_str() {
            "epsilon" => Rule::Epsilon { epsilon: 1e-6 },
            "z" | "zero" => Rule::Epsilon { epsilon: 0.0 },
            "zplus" | "z-plus" => Rule::ZPlus,
            "gamma" => Rule::Gamma { gamma: 0.25 },
            "flat" => Rule::Flat,
            "wsquare" | "w-square" => Rule::WSquare,
            "zbox" | "z-box" => Rule::ZBox,
            other => {
                if let Some(v) = other.strip_prefix("epsilon=") {
                    Rule::Epsilon { epsilon: num(v)? }
                } else if let Some(v) = other.strip_prefix("gamma=") {
                    Rule::Gamma { gamma: num(v)? }
                } else if let Some(rest) = other.strip_prefix("alpha") {
                    let (a, b) = rest.split_once("-beta").ok_or_else(unknown)?;
                    Rule::AlphaBeta {
                        alpha: num(a)?,
                        beta: num(b)?,
                    }
                } else {
                    return Err(unknown());
                }
            }
        };
        rule.validate()?;
        Ok(rule)
    }
}

/// A composite: which rule each linear layer gets (zennit's names; `lrp-epsilon` and `lrp-z`
/// are iNNvestigate's `lrp.epsilon` and `lrp.z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Composite {
    /// The first linear layer `flat`, other convolutions `zplus`, dense layers `epsilon`
    /// (the default LRP).
    EpsilonPlusFlat,
    /// The first convolution `zbox`, other convolutions `gamma` (0.25), dense `epsilon`.
    EpsilonGammaBox,
    /// The first linear layer `flat`, other convolutions α2β1, dense `epsilon`.
    EpsilonAlpha2Beta1Flat,
    /// Every linear layer `epsilon` (1e-6).
    LrpEpsilon,
    /// Every linear layer `z` (ε = 0): iNNvestigate-GUI's user-study rule.
    LrpZ,
}

impl Composite {
    /// Every composite.
    pub const ALL: [Composite; 5] = [
        Composite::EpsilonPlusFlat,
        Composite::EpsilonGammaBox,
        Composite::EpsilonAlpha2Beta1Flat,
        Composite::LrpEpsilon,
        Composite::LrpZ,
    ];

    /// The composite's name (`epsilon-plus-flat`, …).
    pub fn name(self) -> &'static str {
        match self {
            Composite::EpsilonPlusFlat => "epsilon-plus-flat",
            Composite::EpsilonGammaBox => "epsilon-gamma-box",
            Composite::EpsilonAlpha2Beta1Flat => "epsilon-alpha2-beta1-flat",
            Composite::LrpEpsilon => "lrp-epsilon",
            Composite::LrpZ => "lrp-z",
        }
    }

    /// The rule of a linear layer of `kind`; `first` says whether it is the layer the
    /// composite treats specially (the first linear layer; for `epsilon-gamma-box`, the first
    /// convolution).
    pub fn rule(self, kind: LinearKind, first: bool) -> Rule {
        let eps = Rule::Epsilon { epsilon: 1e-6 };
        match (self, kind, first) {
            (Composite::LrpEpsilon, _, _) => eps,
            (Composite::LrpZ, _, _) => Rule::Epsilon { epsilon: 0.0 },
            (Composite::EpsilonPlusFlat | Composite::EpsilonAlpha2Beta1Flat, _, true) => Rule::Flat,
            (Composite::EpsilonGammaBox, LinearKind::Convolution, true) => Rule::ZBox,
            (_, LinearKind::Dense, _) => eps,
            (Composite::EpsilonPlusFlat, LinearKind::Convolution, false) => Rule::ZPlus,
            (Composite::EpsilonGammaBox, LinearKind::Convolution, false) => {
                Rule::Gamma { gamma: 0.25 }
            }
            (Composite::EpsilonAlpha2Beta1Flat, LinearKind::Convolution, false) => {
                Rule::AlphaBeta {
                    alpha: 2.0,
                    beta: 1.0,
                }
            }
        }
    }
}

impl std::fmt::Display for Composite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Composite {
    type Err = AttributionError;

    fn from_str(s: &str) -> Result<Self> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Composite::ALL
            .into_iter()
            .find(|c| c.name() == norm)
            .ok_or_else(|| AttributionError::UnknownComposite {
                name: s.to_string(),
                known: Composite::ALL.map(Composite::name).join(", "),
            })
    }
}

/// Rules by layer name, ahead of the composite (zennit's `NameMap` in a
/// `NameLayerMapComposite`): the first entry naming a layer gives its rule. Names are the
/// layers' module paths ([`summit_model::LinearLayer::name`]: `features.0`,
/// `layer1.0.conv1`, `inception3a.branch2.1`, `fc`).
pub type NameMap = Vec<(Vec<String>, Rule)>;

/// The rules of one relevance pass: a composite, a name map ahead of it, the input bounds of
/// `zbox`.
#[derive(Debug, Clone)]
pub struct LrpRules {
    composite: Composite,
    name_map: NameMap,
    /// index among the linear layers of the composite's special first layer
    first: Option<usize>,
    bounds: Option<(Vec<f32>, Vec<f32>)>,
}

impl LrpRules {
    /// The rules for a model with these linear layers (`(name, kind)` in execution order).
    /// Fails on a name in the name map that is no linear layer of the model, naming it and the
    /// known names, on a rule with bad parameters, and on `zbox` without input bounds.
    pub fn new(
        composite: Composite,
        name_map: &NameMap,
        layers: &[(String, LinearKind)],
        bounds: Option<(Vec<f32>, Vec<f32>)>,
    ) -> Result<Self> {
        for (names, rule) in name_map {
            rule.validate()?;
            for name in names {
                if !layers.iter().any(|(l, _)| l == name) {
                    return Err(AttributionError::UnknownRuleLayer {
                        name: name.clone(),
                        known: layers
                            .iter()
                            .map(|(l, k)| format!("{l} ({})", k.name()))
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
        }
        let first = match composite {
            Composite::EpsilonGammaBox => layers
                .iter()
                .position(|(_, k)| *k == LinearKind::Convolution),
            _ => (!layers.is_empty()).then_some(0),
        };
        let rules = Self {
            composite,
            name_map: name_map.clone(),
            first,
            bounds,
        };
        let needs_box = layers
            .iter()
            .enumerate()
            .any(|(i, (name, kind))| rules.rule_of(name, *kind, i) == Rule::ZBox);
        if needs_box && rules.bounds.is_none() {
            return Err(AttributionError::Params(
                "the zbox rule needs the model's input bounds (AttributionParams::input_bounds: \
                 the lowest and highest value its preprocessing produces, per channel)"
                    .into(),
            ));
        }
        Ok(rules)
    }

    /// The rule of the linear layer `name` of `kind`, `index`-th in execution order.
    pub fn rule_of(&self, name: &str, kind: LinearKind, index: usize) -> Rule {
        self.name_map
            .iter()
            .find(|(names, _)| names.iter().any(|n| n == name))
            .map(|(_, r)| *r)
            .unwrap_or_else(|| self.composite.rule(kind, self.first == Some(index)))
    }

    fn bound(&self, x: &Tensor<4>, high: bool) -> Result<Tensor<4>> {
        let [n, c, h, w] = x.dims();
        let (lo, hi) = self
            .bounds
            .as_ref()
            .ok_or_else(|| AttributionError::Params("zbox: no input bounds".into()))?;
        let v = if high { hi } else { lo };
        if v.len() != c {
            return Err(AttributionError::Params(format!(
                "zbox: {} input bounds for a first layer of {c} input channels",
                v.len()
            )));
        }
        Ok(Tensor::<1>::from_floats(v.as_slice(), &x.device())
            .reshape([1, c, 1, 1])
            .expand([n, c, h, w]))
    }
}

fn apply_rule(
    rules: &LrpRules,
    rule: Rule,
    layer: &LinearLayer<'_>,
    x: Tensor<4>,
    r: Tensor<4>,
) -> Result<Tensor<4>> {
    let w = layer.weight();
    let b = layer.bias();
    let dims = x.dims();
    let t = |s: &Tensor<4>, w: &Tensor<4>| layer.transpose(s, w, dims);
    let pos = |t: &Tensor<4>| t.clone().clamp_min(0.0);
    let neg = |t: &Tensor<4>| t.clone().clamp_max(0.0);
    let bpos = b.clone().map(|b| b.clamp_min(0.0));
    let bneg = b.clone().map(|b| b.clamp_max(0.0));
    let st = STABILIZER;
    // after a ReLU the input has no negative part: its terms are zero and skipped
    let signed = x.clone().min().into_scalar::<f32>() < 0.0;
    Ok(match rule {
        Rule::Epsilon { epsilon } => {
            let z = match layer.output() {
                Some(z) => z,
                None => layer.apply(x.clone(), w.clone(), b),
            };
            let s = divide_stabilized(r, z, epsilon);
            x * t(&s, &w)?
        }
        Rule::ZPlus => {
            let (xp, xn) = (pos(&x), neg(&x));
            let (wp, wn) = (pos(&w), neg(&w));
            let mut z = layer.apply(xp.clone(), wp.clone(), bpos);
            if signed {
                z = z + layer.apply(xn.clone(), wn.clone(), None);
            }
            let s = divide_stabilized(r, z, st);
            let mut out = xp * t(&s, &wp)?;
            if signed {
                out = out + xn * t(&s, &wn)?;
            }
            out
        }
        Rule::AlphaBeta { alpha, beta } => {
            let (xp, xn) = (pos(&x), neg(&x));
            let (wp, wn) = (pos(&w), neg(&w));
            let mut zp = layer.apply(xp.clone(), wp.clone(), bpos);
            let mut zn = layer.apply(xp.clone(), wn.clone(), bneg);
            if signed {
                zp = zp + layer.apply(xn.clone(), wn.clone(), None);
                zn = zn + layer.apply(xn.clone(), wp.clone(), None);
            }
            let sp = divide_stabilized(r.clone(), zp, st);
            let sn = divide_stabilized(r, zn, st);
            let mut positive = xp.clone() * t(&sp, &wp)?;
            let mut negative = xp * t(&sn, &wn)?;
            if signed {
                positive = positive + xn.clone() * t(&sp, &wn)?;
                negative = negative + xn * t(&sn, &wp)?;
            }
            positive * alpha - negative * beta
        }
        Rule::Gamma { gamma } => {
            let (xp, xn) = (pos(&x), neg(&x));
            let up = w.clone() + pos(&w) * gamma; // w + γw⁺
            let down = w.clone() + neg(&w) * gamma; // w + γw⁻
            let b_up = b.clone().map(|b| b.clone() + b.clamp_min(0.0) * gamma);
            let b_down = b.clone().map(|b| b.clone() + b.clamp_max(0.0) * gamma);
            let mut zpos = layer.apply(xp.clone(), up.clone(), b_up);
            let mut zneg = layer.apply(xp.clone(), down.clone(), b_down);
            if signed {
                zpos = zpos + layer.apply(xn.clone(), down.clone(), None);
                zneg = zneg + layer.apply(xn.clone(), up.clone(), None);
            }
            let z = match layer.output() {
                Some(z) => z,
                None => layer.apply(x.clone(), w.clone(), b),
            };
            let gpos = z.clone().greater_elem(0.0).float() * divide_stabilized(r.clone(), zpos, st);
            let gneg = z.lower_elem(0.0).float() * divide_stabilized(r, zneg, st);
            let mut out = xp.clone() * t(&gpos, &up)? + xp * t(&gneg, &down)?;
            if signed {
                out = out + xn.clone() * t(&gpos, &down)? + xn * t(&gneg, &up)?;
            }
            out
        }
        Rule::Flat => {
            let ones_w = w.ones_like();
            let z = layer.apply(x.ones_like(), ones_w.clone(), None);
            let s = divide_stabilized(r, z, st);
            t(&s, &ones_w)?
        }
        Rule::WSquare => {
            let w2 = w.clone() * w;
            let b2 = b.map(|b| b.clone() * b);
            let z = layer.apply(x.ones_like(), w2.clone(), b2);
            let s = divide_stabilized(r, z, st);
            t(&s, &w2)?
        }
        Rule::ZBox => {
            let lo = rules.bound(&x, false)?;
            let hi = rules.bound(&x, true)?;
            let (wp, wn) = (pos(&w), neg(&w));
            let z = layer.apply(x.clone(), w.clone(), b)
                - layer.apply(lo.clone(), wp.clone(), bpos)
                - layer.apply(hi.clone(), wn.clone(), bneg);
            let s = divide_stabilized(r, z, st);
            x * t(&s, &w)? - lo * t(&s, &wp)? - hi * t(&s, &wn)?
        }
    })
}

impl LinearRelevance for LrpRules {
    fn relevance(
        &self,
        layer: &LinearLayer<'_>,
        x: Tensor<4>,
        r: Tensor<4>,
    ) -> summit_model::Result<Tensor<4>> {
        let rule = self.rule_of(layer.name(), layer.kind(), layer.index());
        apply_rule(self, rule, layer, x, r).map_err(|e| match e {
            AttributionError::Model(m) => m,
            other => summit_model::ModelError::Describe(format!(
                "layer `{}` ({}): {other}",
                layer.name(),
                rule.name()
            )),
        })
    }
}
