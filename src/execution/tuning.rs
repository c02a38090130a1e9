//! Remembered kernel choices: what `Strategy::Auto` measured, per device and layer shape.
//!
//! Tuning a layer means timing every candidate kernel on the GPU, which takes a few
//! milliseconds per layer. A [`TuningCache`] keeps the outcome in memory for the life of the
//! process and, when given a file (conventionally beside the model,
//! [`TuningCache::path_beside`]), across runs. It is only a cache: a missing, stale or
//! corrupt file is never an error, it is just not used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::dtype::DType;
use crate::error::Result;

/// What a tuned layer is keyed by: the device model, the GEMM shape and the epilogue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TuningKey {
    /// The GPU model and compute capability, e.g. `NVIDIA H100 80GB HBM3 (sm_90)`.
    pub device: String,
    /// Rows the plan runs per pass.
    pub m: usize,
    /// Layer inputs.
    pub k: usize,
    /// Layer units.
    pub n: usize,
    /// Compute precision.
    pub dtype: DType,
    /// Whether the layer's activation is softmax (which cannot be fused).
    pub softmax: bool,
    /// Whether f32 GEMMs may use TF32 tensor cores (which changes what is fastest).
    pub tf32: bool,
}

impl TuningKey {
    /// The key of a layer with `activation` on `device`.
    pub fn new(
        device: &str,
        (m, k, n): (usize, usize, usize),
        dtype: DType,
        activation: Activation,
    ) -> Self {
        TuningKey {
            device: device.to_string(),
            m,
            k,
            n,
            dtype,
            softmax: activation == Activation::Softmax,
            tf32: false,
        }
    }

    /// The same key for a plan that allows (or not) TF32.
    pub fn with_tf32(mut self, tf32: bool) -> Self {
        self.tf32 = tf32;
        self
    }

    fn text(&self) -> String {
        let epilogue = if self.softmax {
            "softmax"
        } else {
            "elementwise"
        };
        let tf32 = if self.tf32 { " | tf32" } else { "" };
        format!(
            "{} | {}x{}x{} | {} | {}{tf32}",
            self.device, self.m, self.k, self.n, self.dtype, epilogue
        )
    }
}

/// The outcome of tuning one layer: the winner and every candidate's median time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuningRecord {
    /// The chosen kernel, e.g. `fused_small`.
    pub choice: String,
    /// Each candidate and its median time in milliseconds, fastest first.
    pub timings_ms: Vec<(String, f64)>,
}

impl TuningRecord {
    /// A record from measured candidates; the fastest becomes the choice. `None` if empty.
    pub fn from_timings(mut timings_ms: Vec<(String, f64)>) -> Option<Self> {
        timings_ms.sort_by(|a, b| a.1.total_cmp(&b.1));
        let choice = timings_ms.first()?.0.clone();
        Some(TuningRecord { choice, timings_ms })
    }

    /// `fused_small 0.012 ms (cublas 0.020, cublaslt 0.019)`: why this kernel was picked.
    pub fn explain(&self) -> String {
        let others: Vec<String> = self
            .timings_ms
            .iter()
            .skip(1)
            .map(|(name, ms)| format!("{name} {ms:.4}"))
            .collect();
        let best = self
            .timings_ms
            .first()
            .map(|(_, ms)| *ms)
            .unwrap_or(f64::NAN);
        if others.is_empty() {
            format!("{} {best:.4} ms", self.choice)
        } else {
            format!("{} {best:.4} ms ({})", self.choice, others.join(", "))
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TuningFile {
    version: u32,
    layers: BTreeMap<String, TuningRecord>,
}

const FILE_VERSION: u32 = 1;

/// Tuning outcomes in memory, optionally backed by a JSON file.
#[derive(Debug, Default)]
pub struct TuningCache {
    file: Option<PathBuf>,
    layers: Mutex<BTreeMap<String, TuningRecord>>,
}

impl TuningCache {
    /// An empty cache that lives as long as it does.
    pub fn in_memory() -> Self {
        TuningCache::default()
    }

    /// A cache backed by `path`: read now if it exists and is readable, written by
    /// [`TuningCache::save`]. An unreadable or foreign file is ignored (and overwritten on save).
    pub fn with_file(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let layers = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<TuningFile>(&bytes).ok())
            .filter(|file| file.version == FILE_VERSION)
            .map(|file| file.layers)
            .unwrap_or_default();
        TuningCache {
            file: Some(path),
            layers: Mutex::new(layers),
        }
    }

    /// `<model>.tuning.json`, the conventional place for a model's tuning file.
    pub fn path_beside(model: &Path) -> PathBuf {
        let mut name = model
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".tuning.json");
        model.with_file_name(name)
    }

    /// The remembered outcome for `key`, if any.
    pub fn get(&self, key: &TuningKey) -> Option<TuningRecord> {
        self.lock().get(&key.text()).cloned()
    }

    /// Remembers an outcome.
    pub fn insert(&self, key: &TuningKey, record: TuningRecord) {
        self.lock().insert(key.text(), record);
    }

    /// Number of remembered layers.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Writes the cache to its file (atomically), if it has one.
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let file = TuningFile {
            version: FILE_VERSION,
            layers: self.lock().clone(),
        };
        let json = serde_json::to_vec_pretty(&file)
            .map_err(|e| crate::error::Error::io(path, std::io::Error::other(e)))?;
        crate::fs::write_atomic(path, &json)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TuningRecord>> {
        self.layers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(m: usize) -> TuningKey {
        TuningKey::new(
            "GPU (sm_90)",
            (m, 784, 512),
            DType::BF16,
            Activation::Sigmoid,
        )
    }

    #[test]
    fn the_fastest_candidate_is_chosen_and_explained() {
        let record = TuningRecord::from_timings(vec![
            ("cublas".into(), 0.020),
            ("fused_small".into(), 0.012),
            ("cublaslt".into(), 0.019),
        ])
        .unwrap();
        assert_eq!(record.choice, "fused_small");
        assert_eq!(
            record.explain(),
            "fused_small 0.0120 ms (cublaslt 0.0190, cublas 0.0200)"
        );
        assert!(TuningRecord::from_timings(Vec::new()).is_none());
    }

    #[test]
    fn outcomes_survive_a_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("mlp.safetensors");
        let path = TuningCache::path_beside(&model);
        assert_eq!(path.file_name().unwrap(), "mlp.safetensors.tuning.json");

        let cache = TuningCache::with_file(&path);
        assert!(cache.is_empty());
        let record = TuningRecord::from_timings(vec![("fused".into(), 1.0)]).unwrap();
        cache.insert(&key(64), record.clone());
        cache.save().unwrap();

        let reloaded = TuningCache::with_file(&path);
        assert_eq!(reloaded.get(&key(64)), Some(record));
        assert_eq!(reloaded.get(&key(65)), None);
    }

    #[test]
    fn a_corrupt_file_is_ignored_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.tuning.json");
        std::fs::write(&path, b"{ not json").unwrap();
        let cache = TuningCache::with_file(&path);
        assert!(cache.is_empty());
        cache.insert(
            &key(1),
            TuningRecord::from_timings(vec![("cublas".into(), 2.0)]).unwrap(),
        );
        cache.save().unwrap();
        assert_eq!(TuningCache::with_file(&path).len(), 1);
    }
}
