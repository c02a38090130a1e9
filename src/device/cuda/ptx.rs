//! The PTX that build.rs compiled from `kernels/*.cu`: one `&str` constant per module and
//! `MODULES`, the list of `(name, ptx)` pairs.

include!(concat!(env!("OUT_DIR"), "/ptx.rs"));

/// The PTX of module `name`, if this build has it.
pub(crate) fn module(name: &str) -> Option<&'static str> {
    MODULES
        .iter()
        .find(|(module, _)| *module == name)
        .map(|(_, ptx)| *ptx)
}
