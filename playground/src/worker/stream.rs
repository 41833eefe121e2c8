//! HTTP streams on a worker: the request phase, the upstream hand-off, the response phase.

use super::{Started, Worker};
use crate::abi::{ACTION_CONTINUE, buffer_type};
use crate::error::Error;
use crate::http::{Headers, Request, Response, lowercase};
use crate::state::{LocalReply, StreamData};

impl Worker {
    /// Runs one whole HTTP stream; an allowed request gets `200` with no headers from the
    /// "upstream".
    pub fn http_stream(&mut self, request: Request) -> Result<Response, Error> {
        self.http_stream_with(request, |_| Response::new(200))
    }

    /// Runs one whole HTTP stream (create, request headers [, body], response headers
    /// [, body], log, done, delete for every plugin); `upstream` answers allowed requests.
    pub fn http_stream_with(
        &mut self,
        request: Request,
        upstream: impl FnOnce(&Request) -> Response,
    ) -> Result<Response, Error> {
        if let Some(response) = self.begin(request)? {
            return Ok(response);
        }
        let Some(stream) = self.store.data_mut().active.stream.as_deref_mut() else {
            return Err(Error::Usage("stream vanished".into()));
        };
        // Lend the (possibly modified) request to the upstream without copying it.
        let request = Request {
            headers: std::mem::take(&mut stream.request_headers),
            body: std::mem::take(&mut stream.request_body),
            source_address: std::mem::take(&mut stream.source_address),
            destination_address: std::mem::take(&mut stream.destination_address),
        };
        let response = upstream(&request);
        stream.request_headers = request.headers;
        stream.request_body = request.body;
        stream.source_address = request.source_address;
        stream.destination_address = request.destination_address;
        self.respond(response)
    }

    /// Runs the request phase; the caller forwards the request and then calls
    /// [`Worker::finish_stream`] (the local proxy does this around its upstream call).
    pub fn start_stream(&mut self, request: Request) -> Result<Started, Error> {
        if let Some(response) = self.begin(request)? {
            return Ok(Started::Responded(response));
        }
        let Some(stream) = self.store.data_mut().active.stream.take() else {
            return Err(Error::Usage("stream vanished".into()));
        };
        let request = Request {
            headers: stream.request_headers.clone(),
            body: stream.request_body.clone(),
            source_address: stream.source_address.clone(),
            destination_address: stream.destination_address.clone(),
        };
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
        self.respond(response)
    }

    fn stream(&mut self) -> Result<&mut StreamData, Error> {
        let stream = self.store.data_mut().active.stream.as_deref_mut();
        stream.ok_or_else(|| Error::Usage("no active stream".into()))
    }

    /// Creates the stream's contexts and runs the request callbacks. `Some` when a local reply
    /// ended the stream (its response callbacks have run too, as in Envoy).
    fn begin(&mut self, request: Request) -> Result<Option<Response>, Error> {
        let contexts = (0..self.roots.len())
            .map(|_| self.next_context_id())
            .collect();
        let eos = u32::from(request.body.is_empty());
        self.store.data_mut().active.stream = Some(Box::new(StreamData {
            contexts,
            request_headers: lowercase(request.headers),
            request_body: request.body,
            source_address: request.source_address,
            destination_address: request.destination_address,
            ..StreamData::default()
        }));
        for plugin in 0..self.roots.len() {
            let (context, root) = (self.context(plugin)?, self.roots[plugin]);
            self.activate(context, plugin);
            self.invoke(
                |c| &c.context_create,
                "proxy_on_context_create",
                (context, root),
            )?;
        }
        let mut reply = None;
        for plugin in 0..self.roots.len() {
            let context = self.context(plugin)?;
            self.activate(context, plugin);
            let headers = len32(self.stream()?.request_headers.len());
            let args = (context, headers, eos);
            let action = self.invoke(|c| &c.request_headers, "proxy_on_request_headers", args)?;
            reply = self.stream()?.local_reply.take();
            if reply.is_some() {
                break;
            }
            self.check_continue(action, "proxy_on_request_headers")?;
        }
        if reply.is_none() && eos == 0 {
            for plugin in 0..self.roots.len() {
                let context = self.context(plugin)?;
                self.activate(context, plugin);
                self.store.data_mut().active.body = Some(buffer_type::HTTP_REQUEST_BODY);
                let args = (context, len32(self.stream()?.request_body.len()), 1);
                let action = self.invoke(|c| &c.request_body, "proxy_on_request_body", args)?;
                reply = self.stream()?.local_reply.take();
                if reply.is_some() {
                    break;
                }
                self.check_continue(action, "proxy_on_request_body")?;
            }
        }
        match reply {
            // Envoy sends the local reply after the callback returns, through the encoder
            // filters: every plugin's response callbacks see it.
            Some(reply) => self.respond_with(local_response(reply), true).map(Some),
            None => Ok(None),
        }
    }

    fn context(&mut self, plugin: usize) -> Result<u32, Error> {
        let context = self.stream()?.contexts.get(plugin).copied();
        context.ok_or_else(|| Error::Usage(format!("no context for plugin {plugin}")))
    }

    fn check_continue(&mut self, action: u32, callback: &'static str) -> Result<(), Error> {
        if action == ACTION_CONTINUE {
            return Ok(());
        }
        self.end_contexts()?;
        self.store.data_mut().active.stream = None;
        Err(Error::Paused { callback })
    }

    fn respond(&mut self, response: Response) -> Result<Response, Error> {
        let mut headers = Vec::with_capacity(response.headers.len() + 1);
        headers.push((":status".to_string(), response.status.to_string()));
        headers.extend(lowercase(response.headers));
        self.respond_with((headers, response.body), false)
    }

    fn respond_with(
        &mut self,
        (headers, body): (Headers, Vec<u8>),
        local: bool,
    ) -> Result<Response, Error> {
        let mut local = local;
        {
            let stream = self.stream()?;
            stream.response_headers = Some(headers);
            stream.response_body = body;
        }
        for plugin in (0..self.roots.len()).rev() {
            let context = self.context(plugin)?;
            self.activate(context, plugin);
            let stream = self.stream()?;
            let eos = u32::from(stream.response_body.is_empty());
            let count = len32(stream.response_headers.as_ref().map_or(0, Vec::len));
            let args = (context, count, eos);
            let action = self.invoke(|c| &c.response_headers, "proxy_on_response_headers", args)?;
            if let Some(reply) = self.stream()?.local_reply.take() {
                // A reply sent while encoding replaces the response (not re-encoded here).
                let (headers, body) = local_response(reply);
                let stream = self.stream()?;
                stream.response_headers = Some(headers);
                stream.response_body = body;
                local = true;
            } else {
                self.check_continue(action, "proxy_on_response_headers")?;
            }
        }
        if !self.stream()?.response_body.is_empty() {
            for plugin in (0..self.roots.len()).rev() {
                let context = self.context(plugin)?;
                self.activate(context, plugin);
                self.store.data_mut().active.body = Some(buffer_type::HTTP_RESPONSE_BODY);
                let args = (context, len32(self.stream()?.response_body.len()), 1);
                let action = self.invoke(|c| &c.response_body, "proxy_on_response_body", args)?;
                self.check_continue(action, "proxy_on_response_body")?;
            }
        }
        self.end_contexts()?;
        let Some(stream) = self.store.data_mut().active.stream.take() else {
            return Err(Error::Usage("stream vanished".into()));
        };
        Ok(final_response(*stream, local))
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

fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The response Envoy's `sendLocalReply` builds: status, content-length and text/plain when
/// there is a body, then the module's headers.
fn local_response(reply: LocalReply) -> (Headers, Vec<u8>) {
    let mut headers = vec![(":status".to_string(), reply.status.to_string())];
    if !reply.body.is_empty() {
        headers.push(("content-length".into(), reply.body.len().to_string()));
        headers.push(("content-type".into(), "text/plain".into()));
    }
    headers.extend(reply.headers);
    (headers, reply.body)
}

fn final_response(stream: StreamData, local: bool) -> Response {
    let headers = stream.response_headers.unwrap_or_default();
    let status = headers
        .iter()
        .find(|(name, _)| name == ":status")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(502);
    let headers = headers
        .into_iter()
        .filter(|(name, _)| !name.starts_with(':'))
        .collect();
    Response {
        status,
        headers,
        body: stream.response_body,
        local,
    }
}
