//! Telling the module how its gRPC calls ended, as Envoy's gRPC client handler does
//! (`context.h` `GrpcCallClientHandler`: `onSuccessRaw` -> `onGrpcReceiveWrapper`,
//! `onFailure` -> `onGrpcCloseWrapper`). A unary call gets exactly one callback: receive
//! with the message when it succeeds, close with the status otherwise; never both, and no
//! metadata callbacks (those are for streams).

use super::Worker;
use crate::error::Error;
use crate::grpc::Outcome;

impl Worker {
    /// Delivers every call answered by now, without waiting (between streams and before
    /// ticks: Envoy delivers whenever the event loop sees the answer).
    pub(crate) fn deliver_answered(&mut self) -> Result<(), Error> {
        while self.deliver(false)? {}
        Ok(())
    }

    /// Delivers the next answered call (with `wait`, the next to be answered); false when no
    /// call is outstanding.
    pub(crate) fn deliver(&mut self, wait: bool) -> Result<bool, Error> {
        let Some((token, plugin, outcome)) = self.store.data_mut().grpc.next(wait) else {
            return Ok(false);
        };
        let Some(&root) = self.roots.get(plugin) else {
            return Err(Error::Usage(format!("no root context for plugin {plugin}")));
        };
        // Contexts of streams waiting for their upstream still exist for the module.
        let parked: Vec<(u32, usize)> = self
            .parked
            .values()
            .flat_map(|stream| stream.contexts.iter().enumerate().map(|(p, c)| (*c, p)))
            .collect();
        let state = self.store.data_mut();
        state.grpc.parked = parked;
        // The callback runs on the root context (Envoy's `id_` of the context that made the
        // call, its root); the stream is out of reach until the module makes one of its
        // contexts effective.
        if let Some(stream) = state.active.stream.take() {
            state.active.hidden = Some(stream);
        }
        self.activate(root, plugin);
        let delivered = match outcome {
            Outcome::Received(message) => {
                let size = super::stream::len32(message.len());
                self.store.data_mut().grpc.received = Some(message);
                let args = (root, token, size);
                let result = self.invoke_optional(
                    |c| c.grpc_receive.as_ref(),
                    "proxy_on_grpc_receive",
                    args,
                );
                self.store.data_mut().grpc.received = None;
                result
            }
            Outcome::Closed { status, message } => {
                let grpc = &mut self.store.data_mut().grpc;
                grpc.set_status(plugin, status);
                grpc.message = message;
                let args = (root, token, status);
                let result =
                    self.invoke_optional(|c| c.grpc_close.as_ref(), "proxy_on_grpc_close", args);
                self.store.data_mut().grpc.message.clear();
                result
            }
        };
        let state = self.store.data_mut();
        state.grpc.parked.clear();
        if let Some(stream) = state.active.hidden.take() {
            state.active.stream = Some(stream);
        }
        delivered.map(|_| true)
    }
}
