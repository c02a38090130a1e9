//! The kernel images that build.rs compiled from `kernels/*.cu`: one per module, embedded
//! once and zstd-compressed, decoded the first time the process loads that module.
//!
//! A module is `compute_80` PTX, which the driver JIT-compiles for the GPU at hand, or, for
//! the `_sm90a` modules, an `sm_90a` cubin, which loads without JIT. Decoding runs once a
//! process per module (BENCHMARKS.md, "Kernel images", has its cost); later loads, on another
//! GPU for instance, copy the decoded bytes.

use std::sync::OnceLock;

use crate::error::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/kernel_images.rs"));

/// What a module's decoded bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageFormat {
    /// PTX text, for the driver to JIT-compile.
    Ptx,
    /// A cubin: machine code for one architecture (`sm_90a`).
    Cubin,
}

/// One compiled kernel module, as embedded.
pub(crate) struct KernelImage {
    name: &'static str,
    format: ImageFormat,
    compressed: &'static [u8],
    /// Bytes once decoded.
    len: usize,
    /// The kernels it defines (the `.entry` names of its PTX).
    entries: &'static [&'static str],
    decoded: OnceLock<std::result::Result<Vec<u8>, String>>,
}

impl KernelImage {
    /// PTX or cubin.
    #[cfg(test)]
    pub(crate) fn format(&self) -> ImageFormat {
        self.format
    }

    /// Whether the module defines kernel `name`.
    #[cfg(test)]
    pub(crate) fn defines(&self, name: &str) -> bool {
        self.entries.contains(&name)
    }

    /// The decoded image, decoded on the first call of the process.
    pub(crate) fn bytes(&self) -> Result<&[u8]> {
        self.decoded
            .get_or_init(|| self.decode())
            .as_deref()
            .map_err(|message| Error::Cuda {
                context: format!("decoding kernel module `{}`", self.name),
                message: message.clone(),
            })
    }

    /// What `cuModuleLoadData` takes: the cubin as it is, PTX with a closing NUL.
    pub(crate) fn load_data(&self) -> Result<Vec<u8>> {
        let mut data = Vec::with_capacity(self.len + 1);
        data.extend_from_slice(self.bytes()?);
        if self.format == ImageFormat::Ptx {
            data.push(0);
        }
        Ok(data)
    }

    /// Decodes the embedded bytes afresh, bypassing the once-a-process cache (what
    /// [`KernelImage::bytes`] does on its first call; the benches time it).
    pub(crate) fn decode(&self) -> std::result::Result<Vec<u8>, String> {
        let bytes = zstd::bulk::decompress(self.compressed, self.len).map_err(|e| e.to_string())?;
        if bytes.len() != self.len {
            return Err(format!(
                "decoded {} bytes where build.rs wrote {}",
                bytes.len(),
                self.len
            ));
        }
        Ok(bytes)
    }
}

/// Every module of this build.
pub(crate) fn all() -> &'static [KernelImage] {
    &IMAGES
}

/// One embedded kernel module, as [`kernel_images`] describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelImageInfo {
    /// The module: its file stem in kernels/, e.g. `narrow`.
    pub name: &'static str,
    /// `ptx` (JIT-compiled by the driver for the GPU at hand) or `cubin` (`sm_90a` code).
    pub format: &'static str,
    /// Bytes it takes in the executable (zstd-compressed).
    pub embedded_bytes: usize,
    /// Bytes once decoded, which is what the driver is handed.
    pub bytes: usize,
    /// How many kernels it defines.
    pub kernels: usize,
}

/// The kernel modules this build embeds, with their sizes.
///
/// ```
/// # #[cfg(feature = "cuda")] {
/// let images = vecprop::device::cuda::kernel_images();
/// assert!(images.iter().any(|image| image.name == "epilogue"));
/// assert!(images.iter().all(|image| image.embedded_bytes < image.bytes));
/// # }
/// ```
pub fn kernel_images() -> Vec<KernelImageInfo> {
    all()
        .iter()
        .map(|image| KernelImageInfo {
            name: image.name,
            format: match image.format {
                ImageFormat::Ptx => "ptx",
                ImageFormat::Cubin => "cubin",
            },
            embedded_bytes: image.compressed.len(),
            bytes: image.len,
            kernels: image.entries.len(),
        })
        .collect()
}

/// Decodes module `name` afresh, bypassing the once-a-process cache, and returns its decoded
/// size: what the first load of that module costs on the host before the driver sees it.
/// For benchmarks (`cargo bench --features cuda --bench all -- kernel_images`).
pub fn decode_kernel_image(name: &str) -> Result<usize> {
    let image = image(name).ok_or_else(|| {
        Error::InvalidArgument(format!("this build has no kernel module `{name}`"))
    })?;
    image
        .decode()
        .map(|bytes| bytes.len())
        .map_err(|message| Error::Cuda {
            context: format!("decoding kernel module `{name}`"),
            message,
        })
}

/// The module `name`, if this build has it.
pub(crate) fn image(name: &str) -> Option<&'static KernelImage> {
    IMAGES.iter().find(|image| image.name == name)
}

/// The PTX text of module `name` (not the `_sm90a` modules, which ship as cubins).
#[cfg(test)]
pub(crate) fn ptx_text(name: &str) -> Option<&'static str> {
    let image = image(name).filter(|image| image.format == ImageFormat::Ptx)?;
    std::str::from_utf8(image.bytes().ok()?).ok()
}

/// The parameter declarations of kernel `name` in the PTX of `module`, e.g.
/// `[".u64", ".u32", ".f32"]` (a by-value struct reads `.align 8 .b8 [232]`), so that tests
/// can hold each launcher's arguments against what the compiled kernel takes.
#[cfg(test)]
pub(crate) fn entry_params(module: &str, name: &str) -> Option<Vec<String>> {
    let ptx = ptx_text(module)?;
    let start = ptx.find(&format!(".entry {name}("))?;
    let body = &ptx[start..];
    let list = &body[body.find('(')? + 1..body.find(')')?];
    Some(
        list.split(',')
            .map(|param| {
                let param = param.trim().trim_start_matches(".param").trim();
                let prefix = format!("{name}_param_");
                match param.find(&prefix) {
                    Some(at) => {
                        let (kind, rest) = param.split_at(at);
                        let array = rest.find('[').map_or("", |i| &rest[i..]);
                        format!("{}{array}", kind.trim())
                    }
                    None => param.to_string(),
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_image_decodes_to_what_build_rs_wrote() {
        assert!(!all().is_empty());
        for image in all() {
            let bytes = image.bytes().unwrap();
            assert_eq!(bytes.len(), image.len, "{}", image.name);
            assert!(
                image.compressed.len() < image.len,
                "{} is not smaller",
                image.name
            );
            match image.format {
                ImageFormat::Ptx => {
                    let text = std::str::from_utf8(bytes).unwrap();
                    assert!(text.contains(".version"), "{} is not PTX", image.name);
                    assert!(!text.contains('\0'), "{} holds a NUL", image.name);
                }
                // ELF magic.
                ImageFormat::Cubin => assert_eq!(&bytes[..4], b"\x7fELF", "{}", image.name),
            }
            assert!(
                !image.entries.is_empty(),
                "{} defines no kernel",
                image.name
            );
            // The second call is served by the cache: the very same bytes.
            assert!(std::ptr::eq(bytes, image.bytes().unwrap()));
        }
    }

    /// Compile only what can be chosen: every kernel a module defines is one a launcher can
    /// name (so the planner, the tuner or `--kernel` can reach it), and every name a launcher
    /// forms is defined.
    #[test]
    fn the_images_hold_exactly_the_kernels_the_launchers_name() {
        use super::super::{kernels, narrow, network_kernel, splitk};
        use std::collections::BTreeSet;
        let launchable: BTreeSet<String> = [
            kernels::launchable(),
            narrow::launchable(),
            splitk::launchable(),
            network_kernel::launchable(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let defined: BTreeSet<String> = all()
            .iter()
            .flat_map(|image| image.entries.iter().map(|e| e.to_string()))
            .collect();
        let unreachable: Vec<_> = defined.difference(&launchable).collect();
        let missing: Vec<_> = launchable.difference(&defined).collect();
        assert!(
            unreachable.is_empty(),
            "compiled but never launched: {unreachable:?}"
        );
        assert!(missing.is_empty(), "launched but not compiled: {missing:?}");
    }

    #[test]
    fn ptx_for_the_loader_ends_in_one_nul() {
        assert_eq!(
            decode_kernel_image("epilogue").unwrap(),
            image("epilogue").unwrap().len
        );
        assert!(decode_kernel_image("no_such_module").is_err());
        let image = image("epilogue").unwrap();
        let data = image.load_data().unwrap();
        assert_eq!(data.len(), image.len + 1);
        assert_eq!(data.last(), Some(&0));
    }
}
