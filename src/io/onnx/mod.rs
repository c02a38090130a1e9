//! Models in ONNX files, as `torch.onnx.export` writes them for an MLP (both the legacy
//! TorchScript exporter and the dynamo one).
//!
//! The graph must be a chain from one input batch (rows × features) to one output:
//! `Gemm` (any `transB`, `alpha`, `beta`; `transA=0`) or `MatMul` + `Add` for each dense
//! layer; `Relu`, `Sigmoid`, `Tanh`, `Softmax` (last axis), `Gelu`, `LeakyRelu`, or
//! elementwise arithmetic that computes one of them; `Identity`, `Dropout`, `Flatten` of
//! the 2-D batch; `BatchNormalization`, folded into the adjacent dense layer; `Constant`
//! nodes, and `Transpose`/`Cast` of weights. Initializers may live in external data files
//! beside the model. Anything else is an error that names the node, its op type and its
//! position.
//!
//! The file is read whole after checking it is a regular file; external data files are
//! read only for the byte ranges the model declares, and only inside the model's folder.

mod constants;
mod elementwise;
mod graph;
mod proto;
mod tensor;

use prost::Message;

use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::network::Network;
use crate::io::layers::{self, Stage};
use crate::io::model_file::ModelFile;

/// ONNX's protobuf limit on a model file (external data aside).
const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Loads a network from an ONNX file that [`ModelFile::format`] recognised.
pub(crate) fn load(
    mut file: ModelFile,
    activations_override: Option<&[Activation]>,
) -> Result<Network> {
    if file.len > MAX_MODEL_BYTES {
        return Err(file.invalid(format!(
            "it has {} bytes, over protobuf's limit of 2 GiB (keep large weights in external data)",
            file.len
        )));
    }
    let bytes = file.read_at(0, file.len, "the model")?;
    let model = proto::ModelProto::decode(bytes.as_slice())
        .map_err(|e| file.invalid(format!("protobuf: {e}")))?;
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| file.invalid("it holds no graph".into()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(1, |o| o.version);
    let walked = graph::walk(graph, &model.functions, opset, &file)?;
    if !walked
        .stages
        .iter()
        .any(|s| matches!(s, Stage::Dense { .. }))
    {
        return Err(Error::NoLayers { path: file.path });
    }
    let mut network = Network::new(layers::assemble(walked.stages)?)?;
    if let Some(list) = activations_override {
        network.set_activations(list, "the activations override")?;
    }
    let dtypes = &walked.weight_dtypes;
    let all = |name: &str| !dtypes.is_empty() && dtypes.iter().all(|d| *d == name);
    if all("FLOAT16") {
        network.set_dtype(DType::F16);
    } else if all("BFLOAT16") {
        network.set_dtype(DType::BF16);
    }
    Ok(network)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::layers::ActivationKind;

    /// Both exporters' spellings of GELU, LeakyReLU(0.2), SiLU and tanh-GELU are recognised,
    /// whether or not this build computes them yet.
    #[test]
    fn activations_of_both_exporters_are_recognised() {
        for name in ["models_act_legacy.onnx", "models_act_dynamo.onnx"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name);
            let file = ModelFile::open(&path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let model = proto::ModelProto::decode(bytes.as_slice()).unwrap();
            let graph = model.graph.as_ref().unwrap();
            let walked = graph::walk(graph, &model.functions, 18, &file).unwrap();
            let kinds: Vec<ActivationKind> = walked
                .stages
                .iter()
                .filter_map(|s| match s {
                    Stage::Activation { kind, .. } => Some(*kind),
                    _ => None,
                })
                .collect();
            assert_eq!(
                kinds,
                [
                    ActivationKind::Gelu,
                    ActivationKind::LeakyRelu(0.2),
                    ActivationKind::Silu,
                    ActivationKind::GeluTanh
                ],
                "{name}"
            );
        }
    }
}
