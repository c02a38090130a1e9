//! A PyTorch `state_dict` (tensor names such as `encoder.1.0.weight`) read as a chain of modules.
//!
//! Tensors are grouped by module (the name up to its last `.`); each module must be a
//! `Linear` (`weight` [units, inputs], optional `bias`) or a `BatchNorm1d` (`running_mean`,
//! `running_var`, optional `weight`/`bias`, `num_batches_tracked`). Modules run in the
//! order of their paths, compared segment by segment as PyTorch registers them:
//! numbers numerically (`layers.10` after `layers.9`), names with a number after the same
//! stem by that number (`fc2` after `fc1`). Paths that give no order (`encoder` against
//! `head`) are an error, never a guess. Every message comes from the sorted names, so it
//! is the same on every run.
//!
//! A state_dict does not hold activations, but `nn.Sequential` numbering shows where a
//! module without parameters sits: `0` (Linear), `2` (BatchNorm1d) skips `1`, an activation
//! or a Dropout. Such a BatchNorm is folded into the next Linear, not the previous one.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use ndarray::{Array1, Array2};

use crate::error::{Error, Result};
use crate::graph::batchnorm::BatchNorm;
use crate::io::layers::Stage;

/// Decodes one tensor, by full name, to f32 values.
pub(crate) type Decode<'a> = dyn FnMut(&str) -> Result<Vec<f32>> + 'a;

/// The modules of a state_dict in execution order, from tensor shapes by name.
pub(crate) fn stages(
    shapes: &BTreeMap<String, Vec<usize>>,
    eps: f64,
    decode: &mut Decode<'_>,
) -> Result<Vec<Stage>> {
    let mut modules: BTreeMap<&str, BTreeMap<&str, &[usize]>> = BTreeMap::new();
    for (name, shape) in shapes {
        let (prefix, param) = name.rsplit_once('.').unwrap_or(("", name.as_str()));
        modules
            .entry(prefix)
            .or_default()
            .insert(param, shape.as_slice());
    }
    let mut ordered: Vec<(Vec<Segment>, &str)> = modules
        .keys()
        .map(|prefix| (segments(prefix), *prefix))
        .collect();
    ordered.sort_by(|a, b| total_order(&a.0, &b.0));
    for pair in ordered.windows(2) {
        if registration_order(&pair[0].0, &pair[1].0).is_none() {
            return Err(Error::BadTensor {
                layer: pair[1].1.to_string(),
                reason: format!(
                    "the module paths `{}` and `{}` do not say which runs first (PyTorch orders modules \
                     by registration, which a state_dict does not keep); number them, as nn.Sequential \
                     does, or export with torch.onnx.export",
                    pair[0].1, pair[1].1
                ),
            });
        }
    }
    let mut stages = Vec::with_capacity(ordered.len());
    for (index, (path, prefix)) in ordered.iter().enumerate() {
        let stage = module(prefix, &modules[prefix], eps, decode)?;
        if matches!(stage, Stage::BatchNorm(_))
            && index > 0
            && skips_a_module(&ordered[index - 1].0, path)
        {
            stages.push(Stage::Gap {
                before: prefix.to_string(),
            });
        }
        stages.push(stage);
    }
    Ok(stages)
}

/// Whether `Sequential` numbering leaves a module without parameters (an activation,
/// a Dropout) between `previous` and `next`: `0` then `2` in the same parent skips `1`.
fn skips_a_module(previous: &[Segment], next: &[Segment]) -> bool {
    match (previous.split_last(), next.split_last()) {
        (Some((Segment::Index(a), parent_a)), Some((Segment::Index(b), parent_b))) => {
            parent_a == parent_b && b.saturating_sub(*a) > 1
        }
        _ => false,
    }
}

/// One module's stage from its parameters.
fn module(
    prefix: &str,
    params: &BTreeMap<&str, &[usize]>,
    eps: f64,
    decode: &mut Decode<'_>,
) -> Result<Stage> {
    let full = |param: &str| {
        if prefix.is_empty() {
            param.to_string()
        } else {
            format!("{prefix}.{param}")
        }
    };
    let bad = |reason: String| Error::BadTensor {
        layer: prefix.to_string(),
        reason,
    };
    if params.contains_key("running_mean") || params.contains_key("running_var") {
        return batchnorm(prefix, params, eps, decode, &full);
    }
    if let Some(param) = params.keys().find(|p| !matches!(**p, "weight" | "bias")) {
        return Err(bad(format!(
            "tensor `{}` belongs to no Linear or BatchNorm1d; {}",
            full(param),
            probable_kind(param, params)
        )));
    }
    let Some(weight_shape) = params.get("weight") else {
        return Err(Error::UnpairedTensor {
            layer: prefix.to_string(),
            present: "bias",
            missing: "weight",
        });
    };
    let (units, inputs) = match weight_shape {
        [units, inputs] => (*units, *inputs),
        [_] if params.contains_key("bias") => {
            return Err(bad(format!(
                "`{}` is 1-D with a bias but no running statistics: it looks like a LayerNorm \
                 (or a BatchNorm1d with track_running_stats=False), which vecprop does not fold",
                full("weight")
            )))
        }
        shape => {
            return Err(bad(format!(
                "`{}` has shape {shape:?}; a dense weight must be 2-D [units, inputs]{}",
                full("weight"),
                match shape.len() {
                    3..=5 => format!(
                        " (a {}-D weight is a Conv{}d's)",
                        shape.len(),
                        shape.len() - 2
                    ),
                    _ => String::new(),
                }
            )))
        }
    };
    let bias = match params.get("bias") {
        None => None,
        Some([len]) if *len == units => Some(Array1::from(decode(&full("bias"))?)),
        Some([len]) if *len == inputs => {
            return Err(bad(format!(
                "`{}` has {len} elements, which fits `{}` [{units}, {inputs}] only transposed: \
                 the weight looks like a Keras-style [inputs, units] kernel; save kernel.T",
                full("bias"),
                full("weight")
            )))
        }
        Some(shape) => {
            return Err(bad(format!(
                "`{}` has shape {shape:?}; a bias must be 1-D [units] with units = {units}",
                full("bias")
            )))
        }
    };
    let weight = Array2::from_shape_vec((units, inputs), decode(&full("weight"))?)
        .map_err(|e| bad(format!("`{}`: {e}", full("weight"))))?
        .reversed_axes();
    Ok(Stage::Dense {
        name: prefix.to_string(),
        weight,
        bias,
    })
}

/// A BatchNorm1d module's stage.
fn batchnorm(
    prefix: &str,
    params: &BTreeMap<&str, &[usize]>,
    eps: f64,
    decode: &mut Decode<'_>,
    full: &dyn Fn(&str) -> String,
) -> Result<Stage> {
    let bad = |reason: String| Error::BadTensor {
        layer: prefix.to_string(),
        reason,
    };
    const PARAMS: [&str; 5] = [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ];
    if let Some(param) = params.keys().find(|p| !PARAMS.contains(p)) {
        return Err(bad(format!(
            "tensor `{}` is not a BatchNorm1d parameter (expected {})",
            full(param),
            PARAMS.join(", ")
        )));
    }
    for needed in ["running_mean", "running_var"] {
        if !params.contains_key(needed) {
            return Err(bad(format!(
                "BatchNorm `{prefix}` has running statistics but no `{}`",
                full(needed)
            )));
        }
    }
    let mut vector = |param: &str| -> Result<Option<Array1<f32>>> {
        match params.get(param) {
            None => Ok(None),
            Some([_]) => Ok(Some(Array1::from(decode(&full(param))?))),
            Some(shape) => Err(bad(format!(
                "`{}` has shape {shape:?}; BatchNorm1d parameters are 1-D (a BatchNorm2d's would be too, \
                 but it normalises channels of images, which dense layers never produce)",
                full(param)
            ))),
        }
    };
    let mean = vector("running_mean")?.unwrap_or_default();
    let variance = vector("running_var")?.unwrap_or_default();
    let width = mean.len();
    let scale = vector("weight")?.unwrap_or_else(|| Array1::ones(width));
    let shift = vector("bias")?.unwrap_or_else(|| Array1::zeros(width));
    Ok(Stage::BatchNorm(BatchNorm {
        name: prefix.to_string(),
        scale,
        shift,
        mean,
        variance,
        eps,
    }))
}

/// The module kind a tensor that vecprop does not read probably comes from.
fn probable_kind(param: &str, params: &BTreeMap<&str, &[usize]>) -> String {
    let kind = if param.starts_with("weight_ih") || param.starts_with("weight_hh") {
        "it looks like an RNN/LSTM/GRU parameter"
    } else if param.starts_with("in_proj") || param.starts_with("out_proj") {
        "it looks like a MultiheadAttention parameter"
    } else if param.ends_with("_orig") || param.ends_with("_g") || param.ends_with("_v") {
        "it looks like a weight_norm or spectral_norm parametrisation; remove it before saving \
         (torch.nn.utils.parametrize.remove_parametrizations)"
    } else if param == "num_batches_tracked" || params.contains_key("num_batches_tracked") {
        "it looks like part of a BatchNorm"
    } else if param.contains("embed") || param.contains("pos") {
        "it looks like an embedding"
    } else {
        "vecprop reads Linear and BatchNorm1d modules only"
    };
    kind.to_string()
}

/// One segment of a module path: a number, or a name with an optional trailing number.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Index(u64),
    Named(String, Option<u64>),
}

fn segments(prefix: &str) -> Vec<Segment> {
    if prefix.is_empty() {
        return Vec::new();
    }
    prefix
        .split('.')
        .map(|segment| {
            let stem = segment.trim_end_matches(|c: char| c.is_ascii_digit());
            let number = segment[stem.len()..].parse().ok();
            match (stem.is_empty(), number) {
                (true, Some(n)) => Segment::Index(n),
                _ => Segment::Named(stem.to_string(), number),
            }
        })
        .collect()
}

/// A total order, used to sort; [`registration_order`] then checks that it means something.
fn total_order(a: &[Segment], b: &[Segment]) -> Ordering {
    fn key(s: &Segment) -> (u8, &str, Option<u64>) {
        match s {
            Segment::Index(n) => (0, "", Some(*n)),
            Segment::Named(stem, n) => (1, stem.as_str(), *n),
        }
    }
    a.iter().map(key).cmp(b.iter().map(key))
}

/// The order of two module paths where their names give one.
fn registration_order(a: &[Segment], b: &[Segment]) -> Option<Ordering> {
    for (x, y) in a.iter().zip(b) {
        let order = match (x, y) {
            (Segment::Index(m), Segment::Index(n)) => m.cmp(n),
            (Segment::Named(s, m), Segment::Named(t, n)) if s == t => match (m, n) {
                (Some(m), Some(n)) => m.cmp(n),
                (None, None) => Ordering::Equal,
                _ => return None,
            },
            _ => return None,
        };
        if order != Ordering::Equal {
            return Some(order);
        }
    }
    // One path is a prefix of the other: a module with parameters that also has children.
    (a.len() == b.len()).then_some(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(a: &str, b: &str) -> Option<Ordering> {
        registration_order(&segments(a), &segments(b))
    }

    #[test]
    fn paths_order_as_pytorch_registers_modules() {
        assert_eq!(order("layers.9", "layers.10"), Some(Ordering::Less));
        assert_eq!(order("encoder.1.0", "encoder.0.3"), Some(Ordering::Greater));
        assert_eq!(order("net.fc2", "net.fc10"), Some(Ordering::Less));
        assert_eq!(order("encoder.0", "head"), None);
        assert_eq!(order("fc", "fc1"), None);
        assert_eq!(order("block", "block.0"), None);
    }

    #[test]
    fn sorting_then_checking_neighbours_orders_nested_modules() {
        let mut paths: Vec<Vec<Segment>> = ["0.1", "1", "0.0", "0.10", "0.2"]
            .iter()
            .map(|p| segments(p))
            .collect();
        paths.sort_by(|a, b| total_order(a, b));
        let want: Vec<Vec<Segment>> = ["0.0", "0.1", "0.2", "0.10", "1"]
            .iter()
            .map(|p| segments(p))
            .collect();
        assert_eq!(paths, want);
    }
}
