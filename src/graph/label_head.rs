//! A classifier's label head: each row's class is the label of its largest output, as
//! ONNX's `ArgMax` (first index on ties) then `ArrayFeatureExtractor` over the class labels
//! compute it.

use ndarray::ArrayView2;

use crate::error::{Error, Result};

/// The class labels a classifier's outputs map to, one per output column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelHead {
    classes: Vec<i64>,
}

impl LabelHead {
    /// A head over `classes`, the label of each output column in order.
    pub fn new(classes: Vec<i64>) -> Self {
        LabelHead { classes }
    }

    /// The class labels, one per output column.
    pub fn classes(&self) -> &[i64] {
        &self.classes
    }

    /// Each row's label: the class of its largest value (the first of equal ones; NaN never
    /// wins). The rows must have one value per class.
    pub fn labels(&self, scores: ArrayView2<'_, f32>) -> Result<Vec<i64>> {
        if scores.ncols() != self.classes.len() || self.classes.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "a label head of {} classes cannot label rows of {} values",
                self.classes.len(),
                scores.ncols()
            )));
        }
        Ok(scores
            .rows()
            .into_iter()
            .map(|row| {
                let mut best = 0;
                for (i, v) in row.iter().enumerate() {
                    if *v > row[best] || (row[best].is_nan() && !v.is_nan()) {
                        best = i;
                    }
                }
                self.classes[best]
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn each_row_gets_the_label_of_its_largest_value() {
        let head = LabelHead::new(vec![10, -3, 7]);
        let scores = array![[0.1, 0.7, 0.2], [0.5, 0.5, 0.0], [f32::NAN, 0.0, 1.0]];
        assert_eq!(head.labels(scores.view()).unwrap(), [-3, 10, 7]);
        assert!(head.labels(array![[1.0, 2.0]].view()).is_err());
    }
}
