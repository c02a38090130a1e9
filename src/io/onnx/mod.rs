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
mod report;
mod shape;
mod shape_nodes;
mod tensor;

use prost::Message;

use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::graph::label_head::LabelHead;
use crate::graph::network::Network;
use crate::io::bounded_file::BoundedFile;
use crate::io::layers::{self, Stage};
use crate::io::outputs::{self, Model, ModelOutput, OutputKind};

/// ONNX's protobuf limit on a model file (external data aside).
const MAX_MODEL_BYTES: u64 = 2 << 30;

/// Loads a network from an ONNX file that `load_model` recognised.
/// `output_name` picks the graph output (see [`outputs::select`]).
pub(crate) fn load(
    mut file: BoundedFile,
    activations_override: Option<&[Activation]>,
    output_name: Option<&str>,
) -> Result<Model> {
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
    let units = walked.stages.iter().rev().find_map(|s| match s {
        Stage::Dense { weight, .. } => Some(weight.ncols()),
        _ => None,
    });
    let units = units.unwrap_or(0);
    let model_outputs: Vec<ModelOutput> = walked
        .outputs
        .iter()
        .map(|(name, output)| ModelOutput {
            name: name.clone(),
            kind: output_kind(output, units),
        })
        .collect();
    let selected = outputs::select(&model_outputs, output_name)?;
    let mut stages = walked.stages;
    let last = match &walked.outputs[selected].1 {
        graph::Output::Values { expr } | graph::Output::Labels { expr, .. } => expr,
        graph::Output::NotComputed(_) => unreachable!("select refuses outputs not computed"),
    };
    let name = &model_outputs[selected].name;
    stages.extend(graph::activation_stage(last, name).map_err(|reason| file.invalid(reason))?);
    let mut network = Network::new(layers::assemble(stages)?)?;
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
    Ok(Model {
        network,
        outputs: model_outputs,
        selected,
    })
}

/// What a walked graph output is, for a dense stack of `units` outputs.
fn output_kind(output: &graph::Output, units: usize) -> OutputKind {
    match output {
        graph::Output::Values { .. } => OutputKind::Values,
        graph::Output::Labels {
            classes, column, ..
        } => {
            let classes = classes
                .clone()
                .unwrap_or_else(|| (0..units as i64).collect());
            if classes.len() != units {
                return OutputKind::NotComputed(format!(
                    "{} class labels for {units} outputs of the last layer",
                    classes.len()
                ));
            }
            OutputKind::Labels {
                head: LabelHead::new(classes),
                column: *column,
            }
        }
        graph::Output::NotComputed(reason) => OutputKind::NotComputed(reason.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Activation;

    /// Both exporters' spellings of GELU, LeakyReLU(0.2), SiLU and tanh-GELU are recognised,
    /// whether or not this build computes them yet.
    #[test]
    fn activations_of_both_exporters_are_recognised() {
        for name in ["models_act_legacy.onnx", "models_act_dynamo.onnx"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name);
            let file = BoundedFile::open(&path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let model = proto::ModelProto::decode(bytes.as_slice()).unwrap();
            let graph = model.graph.as_ref().unwrap();
            let walked = graph::walk(graph, &model.functions, 18, &file).unwrap();
            let kinds: Vec<Activation> = walked
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
                    Activation::Gelu,
                    Activation::LeakyRelu { slope: 0.2 },
                    Activation::Silu,
                    Activation::GeluTanh
                ],
                "{name}"
            );
        }
    }
    /// A classifier whose class labels are strings (skl2onnx's export of names such as
    /// "cat") is refused at the node that maps indices to them, saying what to do, not
    /// called an invalid file.
    #[test]
    fn string_class_labels_are_refused_at_their_node_with_the_remedy() {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/skl_classifier.onnx");
        let mut model =
            proto::ModelProto::decode(std::fs::read(fixture).unwrap().as_slice()).unwrap();
        let graph = model.graph.as_mut().unwrap();
        let classes = graph
            .initializer
            .iter_mut()
            .find(|t| t.name == "classes")
            .expect("the fixture's class labels");
        // The names themselves (string_data) are left out: vecprop never reads them.
        classes.data_type = tensor::STRING;
        classes.raw_data.clear();
        classes.int64_data.clear();
        classes.int32_data.clear();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("strings.onnx");
        std::fs::write(&path, model.encode_to_vec()).unwrap();

        let error = load(BoundedFile::open(&path).unwrap(), None, None).unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(&error, Error::UnsupportedOnnxNode { op_type, .. } if op_type.ends_with("ArrayFeatureExtractor")),
            "{message}"
        );
        assert!(message.contains("(`classes`) are strings"), "{message}");
        assert!(message.contains("LabelEncoder"), "{message}");
    }
}

#[cfg(test)]
mod gemm_tests {
    use super::proto::{
        AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
        ValueInfoProto,
    };
    use super::*;
    use ndarray::array;

    fn tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: 1,
            float_data: values.to_vec(),
            ..Default::default()
        }
    }

    fn attribute(name: &str, f: f32, i: i64) -> AttributeProto {
        AttributeProto {
            name: name.into(),
            f,
            i,
            ..Default::default()
        }
    }

    /// A one-Gemm model of the worked example's W (2 x 3) and B, with these attributes.
    fn load_gemm(attributes: Vec<AttributeProto>) -> Result<Network> {
        let node = NodeProto {
            name: "gemm".into(),
            op_type: "Gemm".into(),
            input: vec!["x".into(), "W".into(), "B".into()],
            output: vec!["y".into()],
            attribute: attributes,
            ..Default::default()
        };
        let graph = GraphProto {
            node: vec![node],
            initializer: vec![
                tensor("W", &[2, 3], &[1.0, -3.0, 5.0, -2.0, 4.0, -6.0]),
                tensor("B", &[3], &[-1.0, 1.0, 2.0]),
            ],
            input: vec![ValueInfoProto {
                name: "x".into(),
                r#type: None,
            }],
            output: vec![ValueInfoProto {
                name: "y".into(),
                r#type: None,
            }],
            ..Default::default()
        };
        let model = ModelProto {
            graph: Some(graph),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gemm.onnx");
        std::fs::write(&path, model.encode_to_vec()).unwrap();
        crate::io::load_model(&path, None)
    }

    #[test]
    fn gemm_alpha_and_beta_scale_the_weight_and_the_bias() {
        let network =
            load_gemm(vec![attribute("alpha", 2.0, 0), attribute("beta", 0.5, 0)]).unwrap();
        let layer = &network.layers()[0];
        assert_eq!(
            layer.weight(),
            array![[2.0, -6.0, 10.0], [-4.0, 8.0, -12.0]]
        );
        assert_eq!(layer.bias(), array![-0.5, 0.5, 1.0]);
    }

    #[test]
    fn gemm_trans_b_reads_the_weight_as_units_by_inputs() {
        // [2, 3] read as [units, inputs] is a 3-input, 2-unit layer; the bias of 3 then does not fit.
        let err = load_gemm(vec![attribute("transB", 0.0, 1)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`gemm`") && err.contains("not a bias of 2"),
            "{err}"
        );
        let err = load_gemm(vec![attribute("transA", 0.0, 1)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("op Gemm") && err.contains("transA=1"), "{err}");
    }
}
