//! HTTP streams on a worker: the request phase, the upstream hand-off, the response phase.

use super::{Started, Worker};
use crate::abi::{ACTION_CONTINUE, buffer_type};
use crate::error::Error;
use crate::http::{Request, Response, ResponseView};
use crate::state::StreamData;

impl Worker {
    /// Runs one whole HTTP stream; an allowed request gets `200` with no headers from the
    /// "upstream".
    pub fn http_stream(&mut self, request: Request) -> Result<Response, Error> {
        self.http_stream_view(&request, &Response::new(200), |view| view.to_response())
    }

    /// Runs one whole HTTP stream with `upstream` as the answer to an allowed request, and
    /// lets `read` look at the response where the host holds it. Nothing is copied out, and
    /// a worker whose buffers have grown to the traffic allocates nothing per stream: the
    /// benchmarks use this.
    pub fn http_stream_view<R>(
        &mut self,
        request: &Request,
        upstream: &Response,
        read: impl FnOnce(&ResponseView<'_>) -> R,
    ) -> Result<R, Error> {
        if !self.begin(request)? {
            self.stream()?.set_response(upstream);
            self.run_response_phase()?;
        }
        self.finish(read)
    }

    /// Runs one whole HTTP stream (create, request headers [, body], response headers
    /// [, body], log, done, delete for every plugin); `upstream` answers allowed requests
    /// and sees the request as the plugins left it.
    pub fn http_stream_with(
        &mut self,
        request: Request,
        upstream: impl FnOnce(&Request) -> Response,
    ) -> Result<Response, Error> {
        if !self.begin(&request)? {
            let response = upstream(&self.stream()?.request());
            self.stream()?.set_response(&response);
            self.run_response_phase()?;
        }
        self.finish(|view| view.to_response())
    }

    /// Runs the request phase; the caller forwards the request and then calls
    /// [`Worker::finish_stream`] (the local proxy does this around its upstream call).
    pub fn start_stream(&mut self, request: Request) -> Result<Started, Error> {
        if self.begin(&request)? {
            let response = self.finish(|view| view.to_response())?;
            return Ok(Started::Responded(response));
        }
        let Some(stream) = self.store.data_mut().active.stream.take() else {
            return Err(Error::Usage("stream vanished".into()));
        };
        let request = stream.request();
        let id = self.next_stream;
        self.next_stream += 1;
        self.parked.insert(id, stream);
        Ok(Started::Forward {
            stream: id,
            request,
        })
    }

    /// Runs the response phase of a started stream with the upstream's response.
    pub fn finish_stream(&mut self, stream: u64, response: Response) -> Result<Response, Error> {
        let data = self
            .parked
            .remove(&stream)
            .ok_or(Error::UnknownStream(stream))?;
        self.store.data_mut().active.stream = Some(data);
        self.stream()?.set_response(&response);
        self.run_response_phase()?;
        self.finish(|view| view.to_response())
    }

    fn stream(&mut self) -> Result<&mut StreamData, Error> {
        let stream = self.store.data_mut().active.stream.as_deref_mut();
        stream.ok_or_else(|| Error::Usage("no active stream".into()))
    }

    /// Creates the stream's contexts and runs the request callbacks. True when a local reply
    /// ended the stream (its response callbacks have run too, as in Envoy).
    fn begin(&mut self, request: &Request) -> Result<bool, Error> {
        self.deliver_answered()?;
        let mut stream = self.spare.take().unwrap_or_default();
        stream.reset();
        for _ in 0..self.roots.len() {
            let context = self.next_context_id();
            stream.contexts.push(context);
        }
        stream.request_headers.assign(&request.headers);
        stream.request_body.extend_from_slice(&request.body);
        stream.source_address.push_str(&request.source_address);
        stream
            .destination_address
            .push_str(&request.destination_address);
        let eos = u32::from(request.body.is_empty());
        self.store.data_mut().active.stream = Some(stream);
        for plugin in 0..self.roots.len() {
            let (context, root) = (self.context(plugin)?, self.roots[plugin]);
            self.activate(context, plugin);
            self.invoke(
                |c| &c.context_create,
                "proxy_on_context_create",
                (context, root),
            )?;
        }
        let mut replied = false;
        for plugin in 0..self.roots.len() {
            let context = self.context(plugin)?;
            self.activate(context, plugin);
            self.stream()?.check_grpc();
            let headers = len32(self.stream()?.request_headers.len());
            let args = (context, headers, eos);
            let action = self.invoke(|c| &c.request_headers, "proxy_on_request_headers", args)?;
            replied = self.settle(action, "proxy_on_request_headers", REQUEST)?;
            if replied {
                break;
            }
        }
        if !replied && eos == 0 {
            for plugin in 0..self.roots.len() {
                let context = self.context(plugin)?;
                self.activate(context, plugin);
                self.store.data_mut().active.body = Some(buffer_type::HTTP_REQUEST_BODY);
                let args = (context, len32(self.stream()?.request_body.len()), 1);
                let action = self.invoke(|c| &c.request_body, "proxy_on_request_body", args)?;
                replied = self.settle(action, "proxy_on_request_body", REQUEST)?;
                if replied {
                    break;
                }
            }
        }
        if replied {
            // Envoy sends the local reply after the callback returns, through the encoder
            // filters: every plugin's response callbacks see it.
            self.stream()?.set_response_from_reply();
            self.run_response_phase()?;
        }
        Ok(replied)
    }

    fn context(&mut self, plugin: usize) -> Result<u32, Error> {
        let context = self.stream()?.contexts.get(plugin).copied();
        context.ok_or_else(|| Error::Usage(format!("no context for plugin {plugin}")))
    }

    /// After a stream callback: true when the module sent a local reply. A Pause waits for
    /// the module's gRPC calls and delivers them, one by one, until a callback replies or
    /// resumes the stream (`proxy_continue_stream`); a stream still paused with nothing
    /// outstanding would hang in Envoy and is `Error::Paused` here.
    fn settle(
        &mut self,
        action: u32,
        callback: &'static str,
        direction: usize,
    ) -> Result<bool, Error> {
        loop {
            let stream = self.stream()?;
            if stream.take_reply() {
                return Ok(true);
            }
            // Taken even on Continue: a stale resume must not end a later pause.
            let resumed = stream.take_resume(direction);
            if action == ACTION_CONTINUE || resumed {
                return Ok(false);
            }
            if !self.deliver(true)? {
                break;
            }
        }
        self.end_contexts()?;
        self.spare = self.store.data_mut().active.stream.take();
        Err(Error::Paused { callback })
    }

    /// Runs the response callbacks (last plugin first) and ends the contexts; the stream's
    /// response is then final.
    fn run_response_phase(&mut self) -> Result<(), Error> {
        for plugin in (0..self.roots.len()).rev() {
            let context = self.context(plugin)?;
            self.activate(context, plugin);
            let stream = self.stream()?;
            let eos = u32::from(stream.response_body.is_empty());
            let args = (context, len32(stream.response_headers.len()), eos);
            let action = self.invoke(|c| &c.response_headers, "proxy_on_response_headers", args)?;
            if self.settle(action, "proxy_on_response_headers", RESPONSE)? {
                // A reply sent while encoding replaces the response (not re-encoded here).
                self.stream()?.set_response_from_reply();
            }
        }
        if !self.stream()?.response_body.is_empty() {
            for plugin in (0..self.roots.len()).rev() {
                let context = self.context(plugin)?;
                self.activate(context, plugin);
                self.store.data_mut().active.body = Some(buffer_type::HTTP_RESPONSE_BODY);
                let args = (context, len32(self.stream()?.response_body.len()), 1);
                let action = self.invoke(|c| &c.response_body, "proxy_on_response_body", args)?;
                if self.settle(action, "proxy_on_response_body", RESPONSE)? {
                    self.stream()?.set_response_from_reply();
                }
            }
        }
        self.end_contexts()
    }

    /// Lets `read` see the finished stream's response, then keeps the stream's buffers for
    /// the next one.
    fn finish<R>(&mut self, read: impl FnOnce(&ResponseView<'_>) -> R) -> Result<R, Error> {
        let Some(stream) = self.store.data_mut().active.stream.take() else {
            return Err(Error::Usage("stream vanished".into()));
        };
        let result = read(&ResponseView::new(&stream));
        self.spare = Some(stream);
        Ok(result)
    }

    /// Envoy's end of a stream: access log, then destroy (done, delete).
    fn end_contexts(&mut self) -> Result<(), Error> {
        // Indexed, not cloned: no allocation per stream.
        for plugin in 0..self.stream()?.contexts.len() {
            let context = self.context(plugin)?;
            self.activate(context, plugin);
            self.invoke(|c| &c.log, "proxy_on_log", context)?;
        }
        for plugin in 0..self.stream()?.contexts.len() {
            let context = self.context(plugin)?;
            self.activate(context, plugin);
            self.invoke(|c| &c.done, "proxy_on_done", context)?;
            self.invoke(|c| &c.delete, "proxy_on_delete", context)?;
        }
        Ok(())
    }
}

/// Directions of `proxy_continue_stream` (`StreamData::resume`).
const REQUEST: usize = 0;
const RESPONSE: usize = 1;

pub(super) fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
