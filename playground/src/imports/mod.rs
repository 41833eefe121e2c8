//! The functions a module may import, and loud traps for the ones the host does not implement.

mod calls;
mod headers;
mod proxy;
mod wasi;

use wasmtime::{Engine, ExternType, Linker, Module, Store};

use crate::error::Error;
use crate::state::VmState;

pub(crate) use wasi::ProcExit;

/// A call of an import the host does not implement; becomes [`Error::UnimplementedImport`].
#[derive(Debug)]
pub(crate) struct Unimplemented {
    pub module: String,
    pub name: String,
}

impl std::fmt::Display for Unimplemented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}::{} is not implemented by hrl-playground",
            self.module, self.name
        )
    }
}

impl std::error::Error for Unimplemented {}

/// A linker with every host function, plus a trapping stand-in for each other function the
/// module imports (HTTP calls, gRPC streams, queues, ...): calling one fails with its name.
pub(crate) fn linker(
    engine: &Engine,
    module: &Module,
    probe: &mut Store<VmState>,
) -> Result<Linker<VmState>, Error> {
    let mut linker = Linker::new(engine);
    let linked = proxy::link(&mut linker)
        .and_then(|()| calls::link(&mut linker))
        .and_then(|()| headers::link(&mut linker))
        .and_then(|()| wasi::link(&mut linker));
    linked.map_err(|e| Error::Instantiate(format!("{e:#}")))?;
    for import in module.imports() {
        let (module_name, name) = (import.module().to_string(), import.name().to_string());
        if linker.get(&mut *probe, &module_name, &name).is_ok() {
            continue;
        }
        let ExternType::Func(ty) = import.ty() else {
            return Err(Error::UnsupportedImport {
                module: module_name,
                name,
            });
        };
        let (m, n) = (module_name.clone(), name.clone());
        linker
            .func_new(&module_name, &name, ty, move |_, _, _| {
                Err(wasmtime::Error::new(Unimplemented {
                    module: m.clone(),
                    name: n.clone(),
                }))
            })
            .map_err(|e| Error::Instantiate(format!("{e:#}")))?;
    }
    Ok(linker)
}
