//! The explorer's HTTP API (axum on tokio) and the output's static files.
//!
//! | request | answer |
//! |---|---|
//! | `GET /` and `GET /{file}` | the output's page and files (plain paths inside the output only) |
//! | `GET /api/info` | model, dataset, classes, summary layers, methods |
//! | `GET /api/images?offset=&limit=&class=` | dataset images by index with their labels, paged (limit ≤ 500), filtered by class |
//! | `GET /api/image/{index}/image.png` | the image as the model sees it |
//! | `GET /api/image/{index}/predictions` | the label and the model's top 5 |
//! | `GET /api/image/{index}/attribution.png?method=&class=` | a heatmap over the image for a class (default: the predicted one) |
//! | `GET /api/image/{index}/attribution.png?method=&layer=&channel=` | the same for one channel of a summary layer (a neuron target) |
//! | `GET /api/image/{index}/graph` | the image's attribution graph (SPEC §3.2) and its comparison with its true and predicted classes' graphs |
//!
//! Computations run on tokio's blocking pool, at most [`COMPUTE_SLOTS`] at a time (the others
//! wait their turn), and their answers are cached (a byte-budgeted LRU, keyed by image, method
//! and target). Every bad request is a 4xx JSON error `{"error": …, "parameter": …}`; with a
//! token, every request must carry it (`?token=` or the `x-summit-token` header).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use summit_core::attribution::Method;
use tokio::sync::Semaphore;

use crate::CliError;
use crate::explorer::{Explorer, Target};

/// How many computations (attributions, graphs, forward passes) run at once; the others wait.
pub const COMPUTE_SLOTS: usize = 2;

/// The most images one `GET /api/images` returns.
pub const PAGE_LIMIT: usize = 500;

/// A request the explorer refuses or could not answer: an HTTP status and a JSON body naming
/// the parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The status (4xx for a bad request, 500 when a computation failed).
    pub status: StatusCode,
    /// The parameter at fault, if one is.
    pub parameter: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl ApiError {
    fn bad(parameter: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            parameter: Some(parameter.into()),
            message: message.into(),
        }
    }

    fn not_found(parameter: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            parameter: Some(parameter.into()),
            message: message.into(),
        }
    }
}

impl From<CliError> for ApiError {
    fn from(e: CliError) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            parameter: None,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "parameter": self.parameter});
        (self.status, axum::Json(body)).into_response()
    }
}

#[derive(Clone)]
struct AppState {
    explorer: Arc<Explorer>,
    slots: Arc<Semaphore>,
    token: Option<Arc<str>>,
}

/// The explorer's router over `explorer`; with `token`, every request must carry it.
pub fn router(explorer: Arc<Explorer>, token: Option<String>) -> Router {
    let state = AppState {
        explorer,
        slots: Arc::new(Semaphore::new(COMPUTE_SLOTS)),
        token: token.map(Arc::from),
    };
    Router::new()
        .route("/api/info", get(info))
        .route("/api/images", get(images))
        .route("/api/image/{index}/image.png", get(image_png))
        .route("/api/image/{index}/predictions", get(predictions))
        .route("/api/image/{index}/attribution.png", get(attribution))
        .route("/api/image/{index}/graph", get(graph))
        .route("/api/{*rest}", get(unknown_api))
        .route("/", get(static_index))
        .route("/{*path}", get(static_file))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &s.token {
        let header_ok = req
            .headers()
            .get("x-summit-token")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == &**token);
        let query_ok = req.uri().query().is_some_and(|q| {
            q.split('&')
                .any(|kv| kv.strip_prefix("token=").is_some_and(|v| v == &**token))
        });
        if !(header_ok || query_ok) {
            return ApiError {
                status: StatusCode::UNAUTHORIZED,
                parameter: Some("token".into()),
                message: "this explorer requires its access token (?token= or the \
                          x-summit-token header)"
                    .into(),
            }
            .into_response();
        }
    }
    next.run(req).await
}

/// Runs `f` on the blocking pool once a compute slot is free.
async fn compute<T: Send + 'static>(
    s: &AppState,
    f: impl FnOnce(&Explorer) -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = s
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            parameter: None,
            message: format!("the explorer is shutting down: {e}"),
        })?;
    let explorer = s.explorer.clone();
    let out = tokio::task::spawn_blocking(move || {
        let r = f(&explorer);
        drop(permit);
        r
    })
    .await
    .map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        parameter: None,
        message: format!("the computation failed: {e}"),
    })?;
    Ok(out?)
}

fn image_index(s: &AppState, raw: &str) -> Result<usize, ApiError> {
    let n = s.explorer.data().len();
    let i: usize = raw
        .parse()
        .map_err(|_| ApiError::bad("index", format!("image index `{raw}` is not a number")))?;
    if i >= n {
        return Err(ApiError::not_found(
            "index",
            format!(
                "image {i} does not exist: the dataset has {n} images (0–{})",
                n.saturating_sub(1)
            ),
        ));
    }
    Ok(i)
}

fn number(q: &HashMap<String, String>, key: &str) -> Result<Option<usize>, ApiError> {
    q.get(key)
        .map(|v| {
            v.parse::<usize>().map_err(|_| {
                ApiError::bad(
                    key,
                    format!("`{key}` must be a non-negative integer, not `{v}`"),
                )
            })
        })
        .transpose()
}

fn class_param(s: &AppState, q: &HashMap<String, String>) -> Result<Option<usize>, ApiError> {
    let classes = s.explorer.data().class_names().len();
    match number(q, "class")? {
        Some(c) if c >= classes => Err(ApiError::bad(
            "class",
            format!("class {c} does not exist: the model has {classes} classes"),
        )),
        c => Ok(c),
    }
}

fn png_response(bytes: Arc<Vec<u8>>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("image/png"))],
        bytes.as_ref().clone(),
    )
        .into_response()
}

async fn info(State(s): State<AppState>) -> Response {
    let e = &s.explorer;
    let desc = e.model().description();
    axum::Json(json!({
        "model": e.manifest().model,
        "dataset": e.manifest().dataset.name,
        "images": e.data().len(),
        "classes": e.data().class_names(),
        "layers": desc.layers.iter().map(|l| json!({"name": l.name, "alias": l.alias, "channels": desc.taps[l.tap.0].channels})).collect::<Vec<_>>(),
        "methods": Method::ALL.iter().map(|m| m.name()).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn images(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let offset = number(&q, "offset")?.unwrap_or(0);
    let limit = number(&q, "limit")?.unwrap_or(100);
    if limit == 0 || limit > PAGE_LIMIT {
        return Err(ApiError::bad(
            "limit",
            format!("`limit` must be 1–{PAGE_LIMIT}, not {limit}"),
        ));
    }
    let class = class_param(&s, &q)?;
    let labels = s.explorer.data().labels();
    let matching: Vec<usize> = (0..labels.len())
        .filter(|&i| class.is_none_or(|c| labels[i] == c))
        .collect();
    let page: Vec<_> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|&i| json!({"index": i, "label": labels[i]}))
        .collect();
    Ok(
        axum::Json(json!({"total": matching.len(), "offset": offset, "images": page}))
            .into_response(),
    )
}

async fn image_png(
    State(s): State<AppState>,
    Path(index): Path<String>,
) -> Result<Response, ApiError> {
    let i = image_index(&s, &index)?;
    let bytes = compute(&s, move |e| e.image_png(i)).await?;
    Ok(png_response(bytes))
}

async fn predictions(
    State(s): State<AppState>,
    Path(index): Path<String>,
) -> Result<Response, ApiError> {
    let i = image_index(&s, &index)?;
    let top = compute(&s, move |e| e.top(i, 5)).await?;
    let label = s.explorer.data().labels().get(i).copied();
    Ok(axum::Json(json!({"index": i, "label": label, "top": top})).into_response())
}

async fn attribution(
    State(s): State<AppState>,
    Path(index): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let i = image_index(&s, &index)?;
    let method: Method = match q.get("method") {
        None => Method::GradCam,
        Some(m) => m
            .parse()
            .map_err(|e: summit_core::attribution::AttributionError| {
                ApiError::bad("method", e.to_string())
            })?,
    };
    let desc = s.explorer.model().description();
    let target = match (q.get("layer"), number(&q, "channel")?) {
        (Some(layer), Some(channel)) => {
            let l = desc.layer_index(layer).ok_or_else(|| {
                ApiError::bad(
                    "layer",
                    format!(
                        "no summary layer `{layer}`: the model's are {}",
                        desc.layer_names()
                    ),
                )
            })?;
            let channels = desc.taps[desc.layers[l].tap.0].channels;
            if channel >= channels {
                return Err(ApiError::bad(
                    "channel",
                    format!("layer `{layer}` has {channels} channels, not channel {channel}"),
                ));
            }
            if q.contains_key("class") {
                return Err(ApiError::bad(
                    "class",
                    "a neuron target (layer, channel) takes no class",
                ));
            }
            Target::Neuron {
                layer: desc.layers[l].name.clone(),
                channel,
            }
        }
        (Some(_), None) => {
            return Err(ApiError::bad(
                "channel",
                "a neuron target needs `channel` beside `layer`",
            ));
        }
        (None, Some(_)) => {
            return Err(ApiError::bad(
                "layer",
                "a neuron target needs `layer` beside `channel`",
            ));
        }
        (None, None) => Target::Class(class_param(&s, &q)?),
    };
    let bytes = compute(&s, move |e| e.attribution_png(i, method, &target)).await?;
    Ok(png_response(bytes))
}

async fn graph(State(s): State<AppState>, Path(index): Path<String>) -> Result<Response, ApiError> {
    let i = image_index(&s, &index)?;
    let (g, cmp) = compute(&s, move |e| e.image_graph(i)).await?;
    let layers: Vec<Vec<serde_json::Value>> = g
        .graph
        .layers
        .iter()
        .map(|l| {
            l.vertices
                .iter()
                .map(|v| json!({"channel": v.channel, "count": v.count, "pagerank": v.pagerank, "prev": v.prev}))
                .collect()
        })
        .collect();
    Ok(axum::Json(json!({
        "index": i,
        "class": g.class,
        "predicted": g.predicted,
        "probability": g.probability,
        "layers": layers,
        "compare": cmp,
    }))
    .into_response())
}

async fn unknown_api(Path(rest): Path<String>) -> ApiError {
    ApiError::not_found("path", format!("no API request `/api/{rest}`"))
}

async fn static_index(State(s): State<AppState>) -> Result<Response, ApiError> {
    static_response(&s, "index.html").await
}

async fn static_file(
    State(s): State<AppState>,
    Path(path): Path<String>,
) -> Result<Response, ApiError> {
    static_response(&s, &path).await
}

async fn static_response(s: &AppState, rel: &str) -> Result<Response, ApiError> {
    let file = s
        .explorer
        .output_file(rel)
        .ok_or_else(|| ApiError::not_found("path", format!("no file `{rel}` in the output")))?;
    let bytes = tokio::fs::read(&file).await.map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        parameter: None,
        message: format!("reading `{rel}`: {e}"),
    })?;
    let kind = match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("css") => "text/css",
        _ => "application/octet-stream",
    };
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(kind))],
        bytes,
    )
        .into_response())
}
