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

/// The parameter declarations of kernel `name` in the PTX of `module`, e.g.
/// `[".u64", ".u32", ".f32"]` (a by-value struct reads `.align 8 .b8 [232]`), so that tests
/// can hold each launcher's arguments against what the compiled kernel takes.
#[cfg(test)]
pub(crate) fn entry_params(module: &str, name: &str) -> Option<Vec<String>> {
    let ptx = self::module(module)?;
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
