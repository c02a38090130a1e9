//! The PTX that build.rs compiled from `kernels/*.cu`: one `&str` constant per module and
//! `MODULES`, the list of `(name, ptx)` pairs; the `_sm90a` modules come as cubins instead
//! (`CUBINS`), which load without JIT compilation.

include!(concat!(env!("OUT_DIR"), "/ptx.rs"));

/// The PTX of module `name`, if this build has it.
pub(crate) fn module(name: &str) -> Option<&'static str> {
    MODULES
        .iter()
        .find(|(module, _)| *module == name)
        .map(|(_, ptx)| *ptx)
}

/// The cubin of module `name`, if this build has it (the `_sm90a` modules).
pub(crate) fn cubin(name: &str) -> Option<&'static [u8]> {
    CUBINS
        .iter()
        .find(|(module, _)| *module == name)
        .map(|(_, cubin)| *cubin)
}
