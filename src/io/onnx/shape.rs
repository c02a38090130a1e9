//! Shape arithmetic of an ONNX graph: the `Shape`, `Gather`, `Slice`, `Concat`, `Unsqueeze`,
//! ... nodes exporters emit to compute a reshape target from the batch's shape. Entries known
//! at load time fold to constants; the batch's row count stays symbolic, so a target that
//! keeps the batch 2-D is recognised and any other is refused as coming from a dynamic shape.

use std::fmt;

use super::elementwise::Binary;
use super::tensor::Constant;

/// One entry of an integer vector (a shape, an index list).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Dim {
    /// Known at load time.
    Known(i64),
    /// The batch's row count, known only at run time.
    Rows,
    /// Computed from the row count: known only at run time.
    Dynamic,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(v) => write!(f, "{v}"),
            Dim::Rows => write!(f, "rows"),
            Dim::Dynamic => write!(f, "f(rows)"),
        }
    }
}

/// An integer scalar or vector some of whose entries depend on the batch's row count.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ints {
    pub(crate) dims: Vec<Dim>,
    /// A scalar (rank 0) rather than a vector of one.
    pub(crate) scalar: bool,
}

impl Ints {
    /// The integer vector of a constant of rank 0 or 1.
    pub(crate) fn of_constant(c: &Constant) -> Option<Ints> {
        (c.dims.len() <= 1).then(|| Ints {
            dims: c.values.iter().map(|v| Dim::Known(*v as i64)).collect(),
            scalar: c.dims.is_empty(),
        })
    }

    /// The vector as a constant, when every entry is known.
    pub(crate) fn to_constant(&self) -> Option<Constant> {
        let values = self
            .dims
            .iter()
            .map(|d| match d {
                Dim::Known(v) => Some(*v as f64),
                _ => None,
            })
            .collect::<Option<Vec<f64>>>()?;
        Some(Constant {
            dims: if self.scalar {
                vec![]
            } else {
                vec![values.len()]
            },
            values,
            dtype: "INT64",
        })
    }

    /// The known entries, or the message for one computed from the row count.
    pub(crate) fn known(&self, what: &str) -> Result<Vec<i64>, String> {
        self.dims
            .iter()
            .map(|d| match d {
                Dim::Known(v) => Ok(*v),
                _ => Err(format!(
                    "its {what} [{}] comes from the batch's dynamic shape (the row count is known \
                     only at run time), so it does not fold to a constant",
                    self.listing()
                )),
            })
            .collect()
    }

    /// The entries, comma-separated, for messages.
    pub(crate) fn listing(&self) -> String {
        self.dims
            .iter()
            .map(Dim::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `Gather` along axis 0 at `indices` (negative ones count from the end).
    pub(crate) fn gather(&self, indices: &Ints) -> Result<Ints, String> {
        let n = self.dims.len() as i64;
        let dims = indices
            .known("indices")?
            .into_iter()
            .map(|i| {
                let at = if i < 0 { i + n } else { i };
                (0..n)
                    .contains(&at)
                    .then(|| self.dims[at as usize])
                    .ok_or_else(|| format!("index {i} is out of range for {n} entries"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ints {
            dims,
            scalar: indices.scalar,
        })
    }

    /// `Slice` of a vector from `start` to `end` by `step`, clamped as ONNX clamps them.
    pub(crate) fn slice(&self, start: i64, end: i64, step: i64) -> Result<Ints, String> {
        if step == 0 {
            return Err("a slice step of 0".into());
        }
        let n = self.dims.len() as i64;
        let wrap = |v: i64| if v < 0 { v + n } else { v };
        let (start, end) = if step > 0 {
            (wrap(start).clamp(0, n), wrap(end).clamp(0, n))
        } else {
            (wrap(start).clamp(-1, n - 1), wrap(end).clamp(-1, n - 1))
        };
        let mut dims = Vec::new();
        let mut i = start;
        while (step > 0 && i < end) || (step < 0 && i > end) {
            dims.push(self.dims[i as usize]);
            i += step;
        }
        Ok(Ints {
            dims,
            scalar: false,
        })
    }

    /// Vectors joined end to end (`Concat` along axis 0).
    pub(crate) fn concat(parts: &[Ints]) -> Ints {
        Ints {
            dims: parts.iter().flat_map(|p| p.dims.iter().copied()).collect(),
            scalar: false,
        }
    }

    /// An elementwise op over two vectors of one length, or a vector and a single entry;
    /// an entry computed from the row count gives one computed from it.
    pub(crate) fn binary(op: Binary, a: &Ints, b: &Ints) -> Result<Ints, String> {
        let len = match (a.dims.len(), b.dims.len()) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            (x, y) => return Err(format!("integer vectors of {x} and {y} entries")),
        };
        let at = |v: &Ints, i: usize| v.dims[if v.dims.len() == 1 { 0 } else { i }];
        let dims = (0..len)
            .map(|i| match (at(a, i), at(b, i)) {
                (Dim::Known(x), Dim::Known(y)) => {
                    Dim::Known(op.apply_integer(x as f64, y as f64) as i64)
                }
                _ => Dim::Dynamic,
            })
            .collect();
        Ok(Ints {
            dims,
            scalar: a.scalar && b.scalar,
        })
    }
}

/// The shape `Reshape` gives a constant of `dims` for `target` (0 copies the input's entry,
/// -1 takes what is left).
pub(crate) fn reshaped(dims: &[usize], target: &[i64]) -> Result<Vec<usize>, String> {
    let count: usize = dims.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, t) in target.iter().enumerate() {
        match *t {
            0 => out.push(*dims.get(i).ok_or("a 0 past the input's rank")?),
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            t if t > 0 => out.push(t as usize),
            t => return Err(format!("a reshape target entry of {t}")),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !count.is_multiple_of(known) {
            return Err(format!("{count} values do not reshape to {target:?}"));
        }
        out[i] = count / known;
    } else if known != count {
        return Err(format!("{count} values do not reshape to {target:?}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(values: &[i64]) -> Ints {
        Ints {
            dims: values.iter().map(|v| Dim::Known(*v)).collect(),
            scalar: false,
        }
    }

    /// The legacy exporter's Unflatten(1, (1, 13)): Concat(Slice(shape, 0, 1), [1, 13],
    /// Slice(shape, 2, max)) of the batch's shape [rows, 13].
    #[test]
    fn the_unflatten_target_folds_to_rows_1_13() {
        let shape = Ints {
            dims: vec![Dim::Rows, Dim::Known(13)],
            scalar: false,
        };
        let split = Ints::binary(Binary::Mod, &known(&[3]), &known(&[2])).unwrap();
        assert_eq!(split, known(&[1]));
        let head = shape.slice(0, 1, 1).unwrap();
        let tail = shape.slice(2, i64::MAX, 1).unwrap();
        let target = Ints::concat(&[head, known(&[1, 13]), tail]);
        assert_eq!(target.dims, [Dim::Rows, Dim::Known(1), Dim::Known(13)]);
        assert!(target.known("shape").unwrap_err().contains("dynamic shape"));
        assert_eq!(shape.gather(&known(&[-1])).unwrap(), known(&[13]));
    }

    #[test]
    fn reshape_targets_resolve_zero_and_minus_one() {
        assert_eq!(reshaped(&[2, 6], &[-1, 3]).unwrap(), [4, 3]);
        assert_eq!(reshaped(&[2, 6], &[0, -1]).unwrap(), [2, 6]);
        assert!(reshaped(&[2, 6], &[5, -1]).is_err());
    }
}
