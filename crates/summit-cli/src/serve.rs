//! The explorer's HTTP API (axum on tokio) and the output's static files.
//!
//! Every per-image request names an image by dataset index or upload id (`u-…`), never by
//! path, and takes `model=` (the served output, by position; default 0):
//!
//! | request | answer |
//! |---|---|
//! | `GET /` and `GET /{file}` | the first output's page and files (plain paths inside the output only) |
//! | `GET /api/info` | the models (one per output), dataset, classes, summary layers, methods, upload limits |
//! | `GET /api/status` | the compute slots: running, queued, cancelled ablations, uploads, cache use |
//! | `GET /api/images?offset=&limit=&class=&model=&predicted=&correct=&min_confidence=&max_confidence=` | dataset images by index with their labels and every model's top-1, paged (limit ≤ 500), filtered by class and by `model`'s predictions (SPEC §5.1) |
//! | `GET /api/suggestions` | every image with predictions counted by the models' mean top-1 probability (10 bins) and how many classes they predict (one model: correct or not); `/api/images` takes `min_score`, `max_score`, `distinct` to list a cell |
//! | `GET /api/ablate?class=&vertices=&images=&mode=&model=` | ablation of a chosen vertex set (`layer:channel,…`, summary layers by position; default the class's graph) on up to `images` images of the class (default 50, ≤ [`ABLATION_MAX_IMAGES`]), streamed as JSON lines: `{"done", "total"}` after each batch, then `{"result": …}` (or `{"error": …}`); a client that goes away stops it |
//! | `POST /api/upload` (a PNG or JPEG body) | `201 {"id": "u-…"}` (≤ [`UPLOAD_MAX_BYTES`], ≤ [`UPLOAD_LIMITS`] decoded) |
//! | `GET /api/image/{id}/image.png` | the image as the model sees it |
//! | `GET /api/image/{id}/predictions` | the label and every model's top 5 (the pass's where it has them) |
//! | `GET /api/image/{id}/attribution.png?method=&class=` | a heatmap over the image for a class (default: the predicted one) |
//! | `GET /api/image/{id}/attribution.png?method=&layer=&channel=` | the same for one channel of a summary layer (a neuron target) |
//! | `GET /api/image/{id}/activation.png?layer=&channel=` | the activations of one channel of a summary layer over the image |
//! | `GET /api/image/{id}/graph` | the image's attribution graph (SPEC §3.2) and its comparison with its true and predicted classes' graphs |
//!
//! Computations run on tokio's blocking pool, at most [`COMPUTE_SLOTS`] at a time; the others
//! wait their turn in a queue, and one whose client goes away while it waits never runs (its
//! request is dropped with its connection). Answers are cached (a byte-budgeted LRU per model,
//! keyed by image, method and target). Every bad request is a 4xx JSON error
//! `{"error": …, "parameter": …}`; with a token, every request must carry it (`?token=` or the
//! `x-summit-token` header).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use summit_core::attribution::Method;
use tokio::sync::Semaphore;

use crate::CliError;
use crate::explorer::{Explorer, Subject, Target, UPLOAD_LIMITS, UPLOAD_MAX_BYTES, Upload};

/// How many computations (attributions, graphs, forward passes) run at once; the others wait.
pub const COMPUTE_SLOTS: usize = 2;

/// The most images one `GET /api/images` returns.
pub const PAGE_LIMIT: usize = 500;

/// The decoded bytes of uploads kept (the oldest go first): 256 MiB.
pub const UPLOAD_STORE_BYTES: usize = 256 << 20;

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
        match e {
            CliError::Upload(message) => Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                parameter: Some("upload".into()),
                message,
            },
            e => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                parameter: None,
                message: e.to_string(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "parameter": self.parameter});
        (self.status, axum::Json(body)).into_response()
    }
}

/// The outputs a server explores (one model each, over one dataset) and the uploads it holds.
#[derive(Debug)]
pub struct Served {
    explorers: Vec<Explorer>,
    uploads: Mutex<UploadStore>,
}

impl Served {
    /// Serves `explorers` side by side: they must be over the same dataset (the same images,
    /// labels and classes), so that an index means one image for every model.
    pub fn new(explorers: Vec<Explorer>) -> crate::Result<Self> {
        let Some(first) = explorers.first() else {
            return Err(CliError::Usage("no output to serve".into()));
        };
        for e in &explorers[1..] {
            let (a, b) = (first.data(), e.data());
            if a.len() != b.len() || a.labels() != b.labels() || a.class_names() != b.class_names()
            {
                return Err(CliError::Data(format!(
                    "{} and {} are over other datasets ({} and {} images, {} and {} classes): \
                     outputs served side by side must share their dataset",
                    first.out().display(),
                    e.out().display(),
                    a.len(),
                    b.len(),
                    a.class_names().len(),
                    b.class_names().len()
                )));
            }
        }
        Ok(Self {
            explorers,
            uploads: Mutex::new(UploadStore::default()),
        })
    }

    /// The outputs served, in the order of the `model=` parameter.
    pub fn explorers(&self) -> &[Explorer] {
        &self.explorers
    }

    fn first(&self) -> &Explorer {
        // `new` refuses an empty list
        &self.explorers[0]
    }
}

/// The uploads, oldest first, within [`UPLOAD_STORE_BYTES`].
#[derive(Debug, Default)]
struct UploadStore {
    items: VecDeque<Arc<Upload>>,
    bytes: usize,
}

impl UploadStore {
    fn insert(&mut self, up: Upload) -> Arc<Upload> {
        if let Some(p) = self.items.iter().position(|u| u.id == up.id)
            && let Some(old) = self.items.remove(p)
        {
            self.items.push_back(old.clone());
            return old;
        }
        let up = Arc::new(up);
        self.bytes += up.bytes();
        self.items.push_back(up.clone());
        while self.bytes > UPLOAD_STORE_BYTES && self.items.len() > 1 {
            if let Some(old) = self.items.pop_front() {
                self.bytes -= old.bytes();
            }
        }
        up
    }

    fn get(&self, id: &str) -> Option<Arc<Upload>> {
        self.items.iter().find(|u| u.id == id).cloned()
    }
}

#[derive(Clone)]
struct AppState {
    served: Arc<Served>,
    slots: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
    token: Option<Arc<str>>,
}

/// The explorer's router over `served`; with `token`, every request must carry it.
pub fn router(served: Arc<Served>, token: Option<String>) -> Router {
    let state = AppState {
        served,
        slots: Arc::new(Semaphore::new(COMPUTE_SLOTS)),
        queued: Arc::new(AtomicUsize::new(0)),
        running: Arc::new(AtomicUsize::new(0)),
        cancelled: Arc::new(AtomicUsize::new(0)),
        token: token.map(Arc::from),
    };
    Router::new()
        .route("/api/info", get(info))
        .route("/api/status", get(status))
        .route("/api/images", get(images))
        .route("/api/suggestions", get(suggestions))
        .route("/api/ablate", get(ablate))
        .route("/api/upload", post(upload))
        .route("/api/image/{index}/image.png", get(image_png))
        .route("/api/image/{index}/predictions", get(predictions))
        .route("/api/image/{index}/attribution.png", get(attribution))
        .route("/api/image/{index}/activation.png", get(activation))
        .route("/api/image/{index}/graph", get(graph))
        .route("/api/{*rest}", get(unknown_api))
        .route("/", get(static_index))
        .route("/{*path}", get(static_file))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// Counts a request waiting for a compute slot while it lives (also when its client goes
/// away and the request is dropped).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
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

/// Runs `f` on the blocking pool once a compute slot is free, with the output `model`.
async fn compute<T: Send + 'static>(
    s: &AppState,
    model: usize,
    f: impl FnOnce(&Explorer) -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    s.queued.fetch_add(1, Ordering::SeqCst);
    let waiting = Waiting(s.queued.clone());
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
    drop(waiting);
    let served = s.served.clone();
    let running = s.running.clone();
    running.fetch_add(1, Ordering::SeqCst);
    let out = tokio::task::spawn_blocking(move || {
        let r = match served.explorers.get(model) {
            Some(e) => f(e),
            None => Err(CliError::Usage(format!("no model {model}"))),
        };
        running.fetch_sub(1, Ordering::SeqCst);
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

fn subject(s: &AppState, raw: &str) -> Result<Subject, ApiError> {
    if raw.starts_with("u-") {
        let up = s.served.uploads.lock().ok().and_then(|u| u.get(raw));
        return up.map(Subject::Upload).ok_or_else(|| {
            ApiError::not_found(
                "index",
                format!(
                    "no upload `{raw}`: uploads are kept while the server runs, the oldest \
                     dropped beyond {} MiB; upload it again",
                    UPLOAD_STORE_BYTES >> 20
                ),
            )
        });
    }
    let n = s.served.first().data().len();
    let i: usize = raw.parse().map_err(|_| {
        ApiError::bad(
            "index",
            format!("image `{raw}` is neither a dataset index nor an upload id (u-…)"),
        )
    })?;
    if i >= n {
        return Err(ApiError::not_found(
            "index",
            format!(
                "image {i} does not exist: the dataset has {n} images (0–{})",
                n.saturating_sub(1)
            ),
        ));
    }
    Ok(Subject::Image(i))
}

fn model_param(s: &AppState, q: &HashMap<String, String>) -> Result<usize, ApiError> {
    let n = s.served.explorers.len();
    match number(q, "model")? {
        Some(m) if m >= n => Err(ApiError::bad(
            "model",
            format!(
                "model {m} does not exist: {n} model{} served (0–{})",
                if n == 1 { " is" } else { "s are" },
                n - 1
            ),
        )),
        m => Ok(m.unwrap_or(0)),
    }
}

/// Parameter `key` read by `parse`, which gives `None` for a value it refuses: then a 400
/// saying the value must be `expected`.
fn param<T>(
    q: &HashMap<String, String>,
    key: &str,
    expected: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    q.get(key)
        .map(|v| {
            parse(v)
                .ok_or_else(|| ApiError::bad(key, format!("`{key}` must be {expected}, not `{v}`")))
        })
        .transpose()
}

fn probability(q: &HashMap<String, String>, key: &str) -> Result<Option<f32>, ApiError> {
    param(q, key, "a probability from 0 to 1", |v| {
        v.parse::<f32>().ok().filter(|p| (0.0..=1.0).contains(p))
    })
}

fn flag(q: &HashMap<String, String>, key: &str) -> Result<Option<bool>, ApiError> {
    param(q, key, "true or false", |v| match v {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    })
}

fn number(q: &HashMap<String, String>, key: &str) -> Result<Option<usize>, ApiError> {
    param(q, key, "a non-negative integer", |v| {
        v.parse::<usize>().ok()
    })
}

fn class_param(
    s: &AppState,
    q: &HashMap<String, String>,
    key: &str,
) -> Result<Option<usize>, ApiError> {
    let classes = s.served.first().data().class_names().len();
    match number(q, key)? {
        Some(c) if c >= classes => Err(ApiError::bad(
            key,
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

fn layers_json(e: &Explorer) -> serde_json::Value {
    let desc = e.model().description();
    desc.layers
        .iter()
        .map(|l| json!({"name": l.name, "alias": l.alias, "channels": desc.taps[l.tap.0].channels}))
        .collect()
}

async fn info(State(s): State<AppState>) -> Response {
    let first = s.served.first();
    let models: Vec<_> = s
        .served
        .explorers
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "index": i,
                "name": e.manifest().model,
                "output": e.out().file_name().map(|n| n.to_string_lossy().to_string()),
                "predictions": e.predictions_file().is_some(),
                "layers": layers_json(e),
            })
        })
        .collect();
    axum::Json(json!({
        "model": first.manifest().model,
        "models": models,
        "dataset": first.manifest().dataset.name,
        "images": first.data().len(),
        "classes": first.data().class_names(),
        "layers": layers_json(first),
        "methods": Method::ALL.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "upload": {"max_bytes": UPLOAD_MAX_BYTES, "max_width": UPLOAD_LIMITS.max_width, "max_height": UPLOAD_LIMITS.max_height},
    }))
    .into_response()
}

async fn status(State(s): State<AppState>) -> Response {
    axum::Json(json!({
        "slots": COMPUTE_SLOTS,
        "running": s.running.load(Ordering::SeqCst),
        "queued": s.queued.load(Ordering::SeqCst),
        "cancelled": s.cancelled.load(Ordering::SeqCst),
        "uploads": s.served.uploads.lock().map(|u| u.items.len()).unwrap_or(0),
        "cache": s.served.explorers.iter().map(Explorer::cache_use).collect::<Vec<_>>(),
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
    let class = class_param(&s, &q, "class")?;
    let model = model_param(&s, &q)?;
    let predicted = class_param(&s, &q, "predicted")?;
    let correct = flag(&q, "correct")?;
    let min_conf = probability(&q, "min_confidence")?;
    let max_conf = probability(&q, "max_confidence")?;
    let by_prediction = ["predicted", "correct", "min_confidence", "max_confidence"]
        .into_iter()
        .find(|k| q.contains_key(*k));
    let agreement = Agreement::from_query(&s, &q)?;
    let explorer = &s.served.explorers[model];
    let preds = explorer.predictions_file();
    if let (Some(key), None) = (by_prediction, preds) {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            parameter: Some(key.into()),
            message: format!(
                "`{key}` filters by the run's predictions, but the output {} has no {} (it \
                 was made before runs kept them): run it again to filter",
                explorer.out().display(),
                summit_core::export::PREDICTIONS_FILE
            ),
        });
    }
    let labels = explorer.data().labels();
    let mut without = 0usize;
    let matching: Vec<usize> = (0..labels.len())
        .filter(|&i| class.is_none_or(|c| labels[i] == c))
        .filter(|&i| {
            let (Some(_), Some(p)) = (by_prediction, preds) else {
                return true;
            };
            let Some((top, conf)) = p.top1(i) else {
                without += 1;
                return false;
            };
            predicted.is_none_or(|c| top == c)
                && correct.is_none_or(|ok| (top == labels[i]) == ok)
                && min_conf.is_none_or(|m| conf >= m)
                && max_conf.is_none_or(|m| conf <= m)
        })
        .collect();
    let matching: Vec<usize> = match &agreement {
        None => matching,
        Some(a) => matching.into_iter().filter(|&i| a.admits(&s, i)).collect(),
    };
    let page: Vec<_> = matching
        .iter()
        .skip(offset)
        .take(limit)
        .map(|&i| {
            let tops: Vec<_> = s
                .served
                .explorers
                .iter()
                .map(|e| e.predictions_file().and_then(|p| p.top1(i)))
                .collect();
            json!({"index": i, "label": labels[i], "predicted": tops})
        })
        .collect();
    Ok(axum::Json(json!({
        "total": matching.len(),
        "offset": offset,
        "images": page,
        "without_predictions": without,
    }))
    .into_response())
}

/// The models' agreement on an image (the suggestion panel, iNNvestigate-GUI §4.3): the mean
/// of the models' top-1 probabilities and how many classes they predict between them.
fn agreement_of(s: &AppState, i: usize) -> Option<(f32, usize)> {
    let mut sum = 0.0;
    let mut classes = Vec::with_capacity(s.served.explorers.len());
    for e in &s.served.explorers {
        let (c, p) = e.predictions_file()?.top1(i)?;
        sum += p;
        if !classes.contains(&c) {
            classes.push(c);
        }
    }
    Some((sum / s.served.explorers.len() as f32, classes.len()))
}

/// The `/api/images` filters by agreement: `min_score` ≤ mean top-1 < `max_score` (≤ when
/// `max_score` is 1), and `distinct` classes predicted.
struct Agreement {
    min: f32,
    max: f32,
    distinct: Option<usize>,
}

impl Agreement {
    fn from_query(s: &AppState, q: &HashMap<String, String>) -> Result<Option<Self>, ApiError> {
        let (min, max) = (probability(q, "min_score")?, probability(q, "max_score")?);
        let distinct = number(q, "distinct")?;
        if min.is_none() && max.is_none() && distinct.is_none() {
            return Ok(None);
        }
        if let Some(e) = s
            .served
            .explorers
            .iter()
            .find(|e| e.predictions_file().is_none())
        {
            let key = if distinct.is_some() {
                "distinct"
            } else {
                "min_score"
            };
            return Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                parameter: Some(key.into()),
                message: format!(
                    "`{key}` compares the models' predictions, but the output {} has no {}: \
                     run it again to compare",
                    e.out().display(),
                    summit_core::export::PREDICTIONS_FILE
                ),
            });
        }
        Ok(Some(Self {
            min: min.unwrap_or(0.0),
            max: max.unwrap_or(1.0),
            distinct,
        }))
    }

    fn admits(&self, s: &AppState, i: usize) -> bool {
        agreement_of(s, i).is_some_and(|(score, n)| {
            score >= self.min
                && (score < self.max || self.max >= 1.0)
                && self.distinct.is_none_or(|d| d == n)
        })
    }
}

/// The most images one `/api/ablate` measures.
pub const ABLATION_MAX_IMAGES: usize = 1000;

/// Parses `vertices=l:c,l:c` (summary layers by position) into a channel set of model `m`.
fn vertex_set(
    s: &AppState,
    m: usize,
    raw: &str,
) -> Result<summit_core::model::ChannelSet, ApiError> {
    let desc = s.served.explorers[m].model().description();
    let mut layers = vec![Vec::new(); desc.layers.len()];
    for item in raw.split(',').filter(|v| !v.trim().is_empty()) {
        let bad = |why: String| ApiError::bad("vertices", format!("vertex `{item}`: {why}"));
        let (l, c) = item
            .trim()
            .split_once(':')
            .ok_or_else(|| bad("expected `layer:channel` (summary layer by position)".into()))?;
        let l: usize = l
            .parse()
            .map_err(|_| bad(format!("layer `{l}` is not a number")))?;
        let c: u32 = c
            .parse()
            .map_err(|_| bad(format!("channel `{c}` is not a number")))?;
        let layer = desc.layers.get(l).ok_or_else(|| {
            bad(format!(
                "the model has {} summary layers (0–{})",
                desc.layers.len(),
                desc.layers.len().saturating_sub(1)
            ))
        })?;
        if c as usize >= layer.channels {
            return Err(bad(format!(
                "layer {l} (`{}`) has {} channels",
                layer.name, layer.channels
            )));
        }
        layers[l].push(c);
    }
    for l in &mut layers {
        l.sort_unstable();
        l.dedup();
    }
    Ok(summit_core::model::ChannelSet { layers })
}

/// Ends the ablation when the client goes away: the response stream is dropped, and with it
/// this flag's owner raises it.
struct RaiseOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for RaiseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

async fn ablate(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let m = model_param(&s, &q)?;
    let class = class_param(&s, &q, "class")?
        .ok_or_else(|| ApiError::bad("class", "an ablation needs `class`"))?;
    let images = number(&q, "images")?.unwrap_or(50);
    if images == 0 || images > ABLATION_MAX_IMAGES {
        return Err(ApiError::bad(
            "images",
            format!("`images` must be 1–{ABLATION_MAX_IMAGES}, not {images}"),
        ));
    }
    let mode: summit_core::AblationMode = match q.get("mode") {
        None => summit_core::AblationMode::Zero,
        Some(v) => v
            .parse()
            .map_err(|e: summit_core::CoreError| ApiError::bad("mode", e.to_string()))?,
    };
    let set = match q.get("vertices") {
        Some(raw) => vertex_set(&s, m, raw)?,
        None => {
            let g = s.served.explorers[m].class_graph(class).ok_or_else(|| {
                ApiError::not_found("class", format!("the output has no graph of class {class}"))
            })?;
            summit_core::faithfulness::graph_channels(g)
        }
    };
    if set.is_empty() {
        return Err(ApiError::bad(
            "vertices",
            "nothing to ablate: name vertices, or a class whose graph has some",
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(64);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = s.clone();
    let stop2 = stop.clone();
    tokio::spawn(async move {
        s2.queued.fetch_add(1, Ordering::SeqCst);
        let waiting = Waiting(s2.queued.clone());
        let permit = tokio::select! {
            p = s2.slots.clone().acquire_owned() => p,
            () = tx.closed() => return,
        };
        drop(waiting);
        let Ok(permit) = permit else {
            return;
        };
        let served = s2.served.clone();
        let running = s2.running.clone();
        let cancelled = s2.cancelled.clone();
        running.fetch_add(1, Ordering::SeqCst);
        let _ = tokio::task::spawn_blocking(move || {
            let mut progress = |done: usize, total: usize| {
                let line = json!({"done": done, "total": total}).to_string();
                if tx.is_closed() || tx.blocking_send(line).is_err() {
                    stop2.store(true, Ordering::SeqCst);
                }
            };
            let r =
                served.explorers[m].ablate(class, &set, images, mode, stop2.clone(), &mut progress);
            let last = match r {
                Ok(r) => json!({"result": r}),
                Err(e) => {
                    if stop2.load(Ordering::SeqCst) {
                        cancelled.fetch_add(1, Ordering::SeqCst);
                    }
                    json!({"error": e.to_string()})
                }
            };
            let _ = tx.blocking_send(last.to_string());
            running.fetch_sub(1, Ordering::SeqCst);
            drop(permit);
        })
        .await;
    });
    let guard = RaiseOnDrop(stop);
    let stream = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<_, std::convert::Infallible>(line + "\n"), (rx, guard)))
    });
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        )],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// Score bins of the suggestion panel.
pub const SUGGESTION_BINS: usize = 10;

async fn suggestions(State(s): State<AppState>) -> Result<Response, ApiError> {
    if let Some(e) = s
        .served
        .explorers
        .iter()
        .find(|e| e.predictions_file().is_none())
    {
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            parameter: Some("model".into()),
            message: format!(
                "the suggestions need every image's predictions, but the output {} has no {}",
                e.out().display(),
                summit_core::export::PREDICTIONS_FILE
            ),
        });
    }
    let m = s.served.explorers.len();
    let labels = s.served.first().data().labels().to_vec();
    let s2 = s.clone();
    // rows: with several models, by how many classes they predict (1..=m); with one, by
    // correct or not
    let (rows, counted) = tokio::task::spawn_blocking(move || {
        let nrows = if m > 1 { m } else { 2 };
        let mut rows = vec![vec![0u64; SUGGESTION_BINS]; nrows];
        let mut counted = 0u64;
        for (i, &label) in labels.iter().enumerate() {
            let Some((score, n)) = agreement_of(&s2, i) else {
                continue;
            };
            let bin = ((score * SUGGESTION_BINS as f32) as usize).min(SUGGESTION_BINS - 1);
            let row = if m > 1 {
                n - 1
            } else {
                let top = s2.served.first().predictions_file().and_then(|p| p.top1(i));
                usize::from(top.is_some_and(|t| t.0 != label))
            };
            rows[row][bin] += 1;
            counted += 1;
        }
        (rows, counted)
    })
    .await
    .map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        parameter: None,
        message: format!("the suggestions failed: {e}"),
    })?;
    let rows: Vec<_> = rows
        .into_iter()
        .enumerate()
        .map(|(r, counts)| {
            let (label, key) = if m > 1 {
                (
                    format!("{} class{}", r + 1, if r == 0 { "" } else { "es" }),
                    json!({"distinct": r + 1}),
                )
            } else if r == 0 {
                ("correct".to_string(), json!({"correct": true}))
            } else {
                ("misclassified".to_string(), json!({"correct": false}))
            };
            json!({"label": label, "filter": key, "counts": counts})
        })
        .collect();
    Ok(axum::Json(json!({
        "models": m,
        "bins": SUGGESTION_BINS,
        "x": if m > 1 { "mean top-1 probability of the models" } else { "top-1 probability" },
        "rows": rows,
        "images": counted,
    }))
    .into_response())
}

async fn upload(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let too_big = |what: String| ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        parameter: Some("upload".into()),
        message: format!("{what}, over the limit of {UPLOAD_MAX_BYTES} bytes"),
    };
    // a declared length over the limit is refused before a byte is read
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > UPLOAD_MAX_BYTES as u64
    {
        return Err(too_big(format!("the upload declares {len} bytes")));
    }
    let bytes = axum::body::to_bytes(body, UPLOAD_MAX_BYTES)
        .await
        .map_err(|_| too_big("the upload is larger".into()))?;
    if bytes.is_empty() {
        return Err(ApiError::bad(
            "upload",
            "the upload is empty: send a PNG or JPEG file as the request body",
        ));
    }
    let up = compute(&s, 0, move |_| Upload::decode(&bytes)).await?;
    let (w, h) = (up.picture.width(), up.picture.height());
    let up = s
        .served
        .uploads
        .lock()
        .map_err(|_| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            parameter: None,
            message: "the upload store failed".into(),
        })?
        .insert(up);
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": up.id, "width": w, "height": h})),
    )
        .into_response())
}

async fn image_png(
    State(s): State<AppState>,
    Path(index): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let sub = subject(&s, &index)?;
    let m = model_param(&s, &q)?;
    let bytes = compute(&s, m, move |e| e.image_png(&sub)).await?;
    Ok(png_response(bytes))
}

async fn predictions(
    State(s): State<AppState>,
    Path(index): Path<String>,
) -> Result<Response, ApiError> {
    let sub = subject(&s, &index)?;
    let label = s.served.first().label(&sub);
    let mut models = Vec::new();
    for (m, e) in s.served.explorers.iter().enumerate() {
        let sub = sub.clone();
        let (top, origin) = compute(&s, m, move |e| e.predictions(&sub)).await?;
        models.push(json!({"model": m, "name": e.manifest().model, "top": top, "origin": origin}));
    }
    let top = models.first().map(|m| m["top"].clone());
    let origin = models.first().map(|m| m["origin"].clone());
    Ok(axum::Json(json!({
        "index": index,
        "label": label,
        "top": top,
        "origin": origin,
        "models": models,
    }))
    .into_response())
}

async fn attribution(
    State(s): State<AppState>,
    Path(index): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let sub = subject(&s, &index)?;
    let m = model_param(&s, &q)?;
    let method: Method = match q.get("method") {
        None => Method::GradCam,
        Some(m) => m
            .parse()
            .map_err(|e: summit_core::attribution::AttributionError| {
                ApiError::bad("method", e.to_string())
            })?,
    };
    let target = match neuron(&s, m, &q)? {
        Some((layer, channel)) => {
            if q.contains_key("class") {
                return Err(ApiError::bad(
                    "class",
                    "a neuron target (layer, channel) takes no class",
                ));
            }
            Target::Neuron { layer, channel }
        }
        None => Target::Class(class_param(&s, &q, "class")?),
    };
    let bytes = compute(&s, m, move |e| e.attribution_png(&sub, method, &target)).await?;
    Ok(png_response(bytes))
}

/// The neuron `layer` + `channel` of model `m` the query names, if it names one (checked).
fn neuron(
    s: &AppState,
    m: usize,
    q: &HashMap<String, String>,
) -> Result<Option<(String, usize)>, ApiError> {
    let desc = s.served.explorers[m].model().description();
    match (q.get("layer"), number(q, "channel")?) {
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
            Ok(Some((desc.layers[l].name.clone(), channel)))
        }
        (Some(_), None) => Err(ApiError::bad(
            "channel",
            "a neuron target needs `channel` beside `layer`",
        )),
        (None, Some(_)) => Err(ApiError::bad(
            "layer",
            "a neuron target needs `layer` beside `channel`",
        )),
        (None, None) => Ok(None),
    }
}

async fn activation(
    State(s): State<AppState>,
    Path(index): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let sub = subject(&s, &index)?;
    let m = model_param(&s, &q)?;
    let Some((layer, channel)) = neuron(&s, m, &q)? else {
        return Err(ApiError::bad(
            "layer",
            "an activation map needs `layer` and `channel`",
        ));
    };
    let bytes = compute(&s, m, move |e| e.activation_png(&sub, &layer, channel)).await?;
    Ok(png_response(bytes))
}

async fn graph(
    State(s): State<AppState>,
    Path(index): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let sub = subject(&s, &index)?;
    let m = model_param(&s, &q)?;
    let (g, cmp) = compute(&s, m, move |e| e.image_graph(&sub)).await?;
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
        "index": index,
        "model": m,
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
        .served
        .first()
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
