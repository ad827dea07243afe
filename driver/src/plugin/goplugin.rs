//! go-plugin's side services, which every Go plugin server registers and Nomad's plugin client calls.

use std::pin::Pin;

use dtle_proto::nomad::go_plugin::{self, grpc_broker_server, grpc_controller_server, grpc_stdio_server};
use futures_util::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::info;

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// A stream that sends nothing and ends when the process shuts down (or the client goes away).
fn quiet_until<T: Send + 'static>(shutdown: CancellationToken) -> BoxStream<T> {
    Box::pin(futures_util::stream::once(async move {
        shutdown.cancelled().await;
        Err(Status::unavailable("the plugin is shutting down"))
    }))
}

/// `plugin.GRPCController`: `Shutdown` makes the process exit (Nomad's `client.Kill()`).
pub struct Controller {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<go_plugin::Empty>) -> Result<Response<go_plugin::Empty>, Status> {
        info!("plugin client asked the plugin to exit");
        self.shutdown.cancel();
        Ok(Response::new(go_plugin::Empty {}))
    }
}

/// `plugin.GRPCStdio`: the plugin never writes to stdout/stderr outside its log, so the stream stays quiet.
pub struct Stdio {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = BoxStream<go_plugin::StdioData>;

    async fn stream_stdio(&self, _: Request<()>) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(quiet_until(self.shutdown.clone())))
    }
}

/// `plugin.GRPCBroker`: Nomad drivers never broker connections; the stream stays open and quiet.
pub struct Broker {
    pub shutdown: CancellationToken,
}

#[tonic::async_trait]
impl grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = BoxStream<go_plugin::ConnInfo>;

    async fn start_stream(
        &self,
        request: Request<Streaming<go_plugin::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        let mut inbound = request.into_inner();
        tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
        Ok(Response::new(quiet_until(self.shutdown.clone())))
    }
}
