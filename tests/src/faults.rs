//! Injected AWS faults, for tests only: an HTTP client that wraps the SDK's
//! own and fails a share of the requests it is given, as AWS does on a bad
//! day. Three kinds:
//! - `Throttle`: the protocol's throttling error, before the request is sent;
//! - `ServerError`: HTTP 503, before the request is sent;
//! - `TimeoutAfterSend`: the request IS sent and its answer read (so the
//!   call took effect), then the client sees a timeout; the SDK retries it.
//!
//! Deterministic by seed: a request's fate is a hash of the seed, its
//! method, URI, body, the SDK's attempt header and how many times that same
//! request was seen before, so it does not depend on thread scheduling
//! (bodies holding wall-clock time are the exception), and a request that
//! is made again (a storefront's retry) gets a fresh fate.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    Throttle,
    ServerError,
    TimeoutAfterSend,
}

/// What the injector saw.
#[derive(Debug, Default, Clone)]
pub struct FaultCounts {
    /// Requests per `service` (from the SigV4 scope).
    pub calls: BTreeMap<String, usize>,
    /// Requests per JSON-RPC operation (`x-amz-target`, e.g.
    /// `DynamoDB_20120810.Scan`), for calls that name one.
    pub operations: BTreeMap<String, usize>,
    pub faults: BTreeMap<FaultKind, usize>,
}

impl FaultCounts {
    pub fn total_calls(&self) -> usize {
        self.calls.values().sum()
    }
    pub fn total_faults(&self) -> usize {
        self.faults.values().sum()
    }
}

#[derive(Debug)]
struct Plan {
    seed: u64,
    /// Faults per 1,000 requests.
    per_mille: u64,
    counts: Mutex<FaultCounts>,
    seen: Mutex<std::collections::HashMap<u64, u64>>,
}

/// An `HttpClient` failing `per_mille` of the requests it sends.
#[derive(Debug, Clone)]
pub struct FaultyHttpClient {
    inner: SharedHttpClient,
    plan: Arc<Plan>,
}

impl FaultyHttpClient {
    /// `sdk`'s config with a wrapped plain-HTTP client (moto speaks HTTP).
    pub fn wrap(sdk: &SdkConfig, seed: u64, per_mille: u64) -> (SdkConfig, FaultyHttpClient) {
        let inner = sdk.http_client().unwrap_or_else(|| aws_smithy_http_client::Builder::new().build_http());
        let plan =
            Arc::new(Plan { seed, per_mille, counts: Mutex::new(FaultCounts::default()), seen: Mutex::default() });
        let client = FaultyHttpClient { inner, plan };
        (sdk.to_builder().http_client(client.clone()).build(), client)
    }

    pub fn counts(&self) -> FaultCounts {
        self.plan.counts.lock().unwrap().clone()
    }
}

impl HttpClient for FaultyHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(FaultyConnector {
            inner: self.inner.http_connector(settings, components),
            plan: self.plan.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultyConnector {
    inner: SharedHttpConnector,
    plan: Arc<Plan>,
}

fn header(request: &HttpRequest, name: &str) -> Option<String> {
    request.headers().get(name).map(str::to_owned)
}

impl HttpConnector for FaultyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let service = header(&request, "authorization")
            .and_then(|a| a.split("Credential=").nth(1).and_then(|c| c.split('/').nth(3)).map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
        let mut hasher = DefaultHasher::new();
        self.plan.seed.hash(&mut hasher);
        request.method().hash(&mut hasher);
        request.uri().hash(&mut hasher);
        request.body().bytes().hash(&mut hasher);
        header(&request, "amz-sdk-request").hash(&mut hasher);
        let request_key = hasher.finish();
        let occurrence = {
            let mut seen = self.plan.seen.lock().unwrap();
            let n = seen.entry(request_key).or_insert(0);
            *n += 1;
            *n
        };
        occurrence.hash(&mut hasher);
        let roll = hasher.finish();
        let kind = match (roll / 1000) % 3 {
            0 => FaultKind::Throttle,
            1 => FaultKind::ServerError,
            _ => FaultKind::TimeoutAfterSend,
        };
        let fault = (roll % 1000 < self.plan.per_mille).then_some(kind);
        {
            let mut counts = self.plan.counts.lock().unwrap();
            *counts.calls.entry(service).or_insert(0) += 1;
            if let Some(target) = header(&request, "x-amz-target") {
                *counts.operations.entry(target).or_insert(0) += 1;
            }
            if let Some(kind) = fault {
                *counts.faults.entry(kind).or_insert(0) += 1;
            }
        }
        let json_rpc = header(&request, "x-amz-target").is_some();
        let query = header(&request, "content-type").is_some_and(|c| c.contains("x-www-form-urlencoded"));
        match fault {
            None => self.inner.call(request),
            Some(FaultKind::Throttle) => HttpConnectorFuture::ready(Ok(throttle(json_rpc, query))),
            Some(FaultKind::ServerError) => HttpConnectorFuture::ready(Ok(response(503, &[], "Service Unavailable"))),
            Some(FaultKind::TimeoutAfterSend) => {
                let sent = self.inner.call(request);
                HttpConnectorFuture::new(async move {
                    // The request reaches AWS and takes effect; its answer is lost.
                    let _ = sent.await;
                    Err(ConnectorError::timeout("injected: read timed out after the request was sent".into()))
                })
            }
        }
    }
}

fn response(status: u16, headers: &[(&'static str, &'static str)], body: &'static str) -> HttpResponse {
    let mut response = HttpResponse::new(status.try_into().expect("status"), SdkBody::from(body));
    for (name, value) in headers {
        response.headers_mut().insert(*name, *value);
    }
    response
}

fn throttle(json_rpc: bool, query: bool) -> HttpResponse {
    if json_rpc {
        response(
            400,
            &[("content-type", "application/x-amz-json-1.0"), ("x-amzn-errortype", "ThrottlingException")],
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        )
    } else if query {
        response(
            400,
            &[("content-type", "text/xml")],
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>x</RequestId></ErrorResponse>",
        )
    } else {
        response(
            429,
            &[("content-type", "application/json"), ("x-amzn-errortype", "TooManyRequestsException")],
            r#"{"message":"Too many requests"}"#,
        )
    }
}
