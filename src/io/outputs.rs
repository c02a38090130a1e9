//! A model file's outputs: what each graph output is, and which one a loaded network computes.

use std::fmt;

use crate::error::{Error, Result};
use crate::graph::label_head::LabelHead;
use crate::graph::network::Network;

/// What one output of a model file is.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputKind {
    /// The dense stack's float values, one row per example.
    Values,
    /// Each row's class label (int64): the label of its largest value through `head`; a
    /// `(rows, 1)` column when `column`, else a vector.
    Labels {
        /// The class labels, one per output column of the network.
        head: LabelHead,
        /// Whether the labels form a column rather than a vector.
        column: bool,
    },
    /// An output vecprop does not compute, and why.
    NotComputed(String),
}

/// One named output of a model file.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutput {
    /// Its name in the file (`probabilities`, `label`; `output` for a safetensors file).
    pub name: String,
    /// What it is.
    pub kind: OutputKind,
}

/// A loaded model file: the network that computes the selected output, and every output
/// the file declares.
#[derive(Debug, Clone)]
pub struct Model {
    /// The dense layers, with the activation the selected output applies last.
    pub network: Network,
    /// Every output, in the file's order.
    pub outputs: Vec<ModelOutput>,
    /// The index in `outputs` of the one `network` computes.
    pub selected: usize,
}

impl Model {
    /// The output the network computes.
    pub fn output(&self) -> &ModelOutput {
        &self.outputs[self.selected]
    }

    /// One line naming every output, what it is, and which is selected.
    pub fn outputs_line(&self) -> String {
        let listed: Vec<String> = self
            .outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let chosen = if i == self.selected { ", selected" } else { "" };
                format!("{} ({}{chosen})", o.name, o.kind)
            })
            .collect();
        format!("outputs: {}", listed.join(", "))
    }
}

impl fmt::Display for OutputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputKind::Values => write!(f, "float32 values"),
            OutputKind::Labels { head, .. } => {
                write!(f, "int64 labels of classes {:?}", head.classes())
            }
            OutputKind::NotComputed(reason) => write!(f, "not computed: {reason}"),
        }
    }
}

/// The index of the output named `name`, or by default the last output of float values
/// (else the last of labels). Unknown names and outputs not computed are errors that list
/// what there is.
pub(crate) fn select(outputs: &[ModelOutput], name: Option<&str>) -> Result<usize> {
    let names = || {
        outputs
            .iter()
            .map(|o| format!("`{}`", o.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let index = match name {
        Some(name) => outputs.iter().position(|o| o.name == name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "the model has no output `{name}`; its outputs are {}",
                names()
            ))
        })?,
        None => outputs
            .iter()
            .rposition(|o| o.kind == OutputKind::Values)
            .or_else(|| {
                outputs
                    .iter()
                    .rposition(|o| matches!(o.kind, OutputKind::Labels { .. }))
            })
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "none of the model's outputs ({}) is computed by its dense layers",
                    names()
                ))
            })?,
    };
    if let OutputKind::NotComputed(reason) = &outputs[index].kind {
        return Err(Error::InvalidArgument(format!(
            "output `{}` is not computed by vecprop: {reason}; its outputs are {}",
            outputs[index].name,
            names()
        )));
    }
    Ok(index)
}
