//! The pass: the dataset streamed once through the model in batches — loaded and recorded on
//! worker threads, aggregated in order — with checkpoints, shards, stop requests and progress.

use super::*;

impl Pipeline<'_> {
    pub(super) fn restrict(&self, range: std::ops::Range<usize>) -> Vec<usize> {
        let labels = self.dataset.labels();
        let mut idx: Vec<usize> = match &self.config.classes {
            Some(cl) => range
                .filter(|&i| labels.get(i).is_some_and(|l| cl.contains(l)))
                .collect(),
            None => range.collect(),
        };
        if let Some(n) = self.config.limit {
            idx.truncate(n);
        }
        idx
    }

    pub(super) fn run_key(&self, indices: &[usize]) -> RunKey {
        RunKey {
            model: self.model.description().name.clone(),
            weights: self.identity.weights.clone(),
            description: self.identity.description.clone(),
            dataset: self.fingerprint.clone(),
            dataset_len: self.dataset.len(),
            indices_len: indices.len(),
            indices_hash: hash_indices(indices),
            hop_input: self.config.hop_input,
            picks: self.config.picks,
        }
    }

    /// Streams the run's images once through the model and aggregates them. With
    /// [`Config::checkpoint`] set, resumes from an existing checkpoint of the same run (same
    /// model name, dataset size, indices, parameters; anything else is an error naming the
    /// file) and writes one every `every_batches` batches; with [`Config::max_batches`] it
    /// stops early (writing a checkpoint first) and reports `complete: false`.
    pub fn aggregate(&self) -> Result<PassReport> {
        let start = Instant::now();
        let indices = self.indices()?;
        let key = self.run_key(&indices);
        let mut position = 0usize;
        let mut skipped = Vec::new();
        let mut aggs = None;
        if let Some(ck) = &self.config.checkpoint {
            // temporaries of a checkpoint write that was killed
            remove_stale_checkpoint_files(&ck.path)?;
        }
        if let Some(ck) = &self.config.checkpoint
            && ck.path.exists()
        {
            let c = Checkpoint::load(&ck.path)?;
            let fail = |reason: String| CoreError::Checkpoint {
                path: ck.path.clone(),
                reason,
            };
            if c.key.weights != key.weights {
                return Err(fail(format!(
                    "was written by model `{}` with weights {}, but this run's model `{}` has \
                     weights {}: other weights; delete it to start over",
                    c.key.model, c.key.weights, key.model, key.weights
                )));
            }
            if c.key != key {
                let diff = c.key.differences(&key);
                let what = if diff.is_empty() {
                    "its run key".to_string()
                } else {
                    diff.join("; ")
                };
                return Err(fail(format!(
                    "belongs to another run ({what}); rerun with the checkpoint's settings to \
                     resume, or delete it to start over"
                )));
            }
            if c.aggregates.params() != &self.params {
                return Err(fail(
                    "was written with other aggregation parameters; delete it to start over".into(),
                ));
            }
            if c.position > indices.len() {
                return Err(fail(format!(
                    "records {} processed indices, the run has {}",
                    c.position,
                    indices.len()
                )));
            }
            position = c.position;
            skipped = c.skipped;
            aggs = Some(c.aggregates);
        }
        let resuming = aggs.is_some();
        let mut log = self.predictions_log(resuming)?;
        let mut aggs = match aggs {
            Some(a) => a,
            None => Aggregates::new(self.params.clone())
                .map(|a| a.with_picks(self.config.picks))
                .map_err(CoreError::aggregate("creating the aggregates"))?,
        };
        let mut halves = if self.config.stability {
            let new = || {
                Aggregates::new(self.params.clone())
                    .map(|a| a.with_picks(self.config.picks))
                    .map_err(CoreError::aggregate("creating the aggregates of a half"))
            };
            Some(Box::new([new()?, new()?]))
        } else {
            None
        };
        let resumed_from = position;
        let total = indices.len();
        let bar = self.progress_bar(total as u64, position as u64);
        let mut batches = 0usize;
        let mut images = 0usize;
        let mut stopped = false;
        let mut interrupted = false;
        let stop_flag = self.stop.as_deref();
        if position < total {
            let options = LoaderOptions {
                batch_size: self.config.batch_size,
                prefetch: self.config.prefetch.max(1),
                pool: None,
            };
            // the model's input shape is authoritative: a sample of another shape is skipped
            // with its reason, wherever it lies in the run (even first)
            let input = self.model.description().input;
            let loader = BatchLoader::with_expected_dims(
                self.dataset.clone(),
                indices[position..].to_vec(),
                options,
                [input.channels, input.height, input.width],
            )
            .map_err(CoreError::data("starting the batch loader"))?;
            // Batches are recorded and prepared (forward pass, influences, selections) by up
            // to `BATCH_WORKERS` threads at once, each taking the next batch from the loader,
            // and added to the aggregates here in run order, so the result is that of the
            // sequential loop whatever the number of threads.
            let model = self.model;
            let device = &self.device;
            let split = self.config.stability;
            let hop_input = self.config.hop_input;
            let kernels = self.kernels.as_ref();
            let params = &self.params;
            let source = std::sync::Mutex::new((loader, 0usize, position));
            let threads = rayon::current_num_threads().max(1);
            let n_workers = BATCH_WORKERS.min(threads);
            let threads_per_worker = (threads / n_workers).max(1);
            std::thread::scope(|scope| -> Result<()> {
                let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Result<PreparedBatches>)>(
                    BATCH_WORKERS,
                );
                let mut workers = Vec::with_capacity(n_workers);
                for _ in 0..n_workers {
                    let tx = tx.clone();
                    let source = &source;
                    workers.push(scope.spawn(move || -> Result<()> {
                        // each worker's inner parallelism runs on a pool of its own, so that
                        // two batches use two cores without waking each other's threads
                        let pool = rayon::ThreadPoolBuilder::new()
                            .num_threads(threads_per_worker)
                            .thread_name(|i| format!("summit-batch-{i}"))
                            .build()
                            .map_err(|e| {
                                CoreError::Config(format!(
                                    "cannot start the thread pool of a batch worker: {e}"
                                ))
                            })?;
                        pool.install(|| {
                            loop {
                                let next = {
                                    let Ok(mut guard) = source.lock() else {
                                        break;
                                    };
                                    let (loader, seq, first) = &mut *guard;
                                    match loader.next() {
                                        Some(batch) => {
                                            let item = (*seq, *first, batch);
                                            *seq += 1;
                                            *first += item.2.len() + item.2.skipped.len();
                                            item
                                        }
                                        None => break,
                                    }
                                };
                                let (seq, first, batch) = next;
                                let prepared = record_parts(model, device, &batch, first, split)
                                    .and_then(|r| r.prepare(model, hop_input, params, kernels));
                                if tx.send((seq, prepared)).is_err() {
                                    break;
                                }
                            }
                        });
                        Ok(())
                    }));
                }
                drop(tx);
                // the receiver is dropped when this returns, which stops the workers
                let mut consume = |rx: std::sync::mpsc::Receiver<_>| -> Result<()> {
                    let mut waiting: BTreeMap<usize, Result<PreparedBatches>> = BTreeMap::new();
                    let mut next = 0usize;
                    for (seq, prepared) in rx.iter() {
                        waiting.insert(seq, prepared);
                        while let Some(prepared) = waiting.remove(&next) {
                            next += 1;
                            let prepared = prepared?;
                            for part in &prepared.parts {
                                let aggs = match (&mut halves, part.half) {
                                    (Some(h), Some(i)) => &mut h[i],
                                    _ => &mut aggs,
                                };
                                part.batch.add_to(aggs)?;
                                part.batch.log_predictions(&mut log)?;
                            }
                            skipped.extend(prepared.skipped);
                            position += prepared.consumed;
                            batches += 1;
                            images += prepared.images;
                            bar.set_position(position as u64);
                            let signalled = stop_flag.is_some_and(|f| f.load(Ordering::SeqCst));
                            let stop =
                                signalled || self.config.max_batches.is_some_and(|m| batches >= m);
                            if let Some(ck) = &self.config.checkpoint
                                && (batches.is_multiple_of(ck.every_batches) || stop)
                            {
                                // the predictions it counts are on disk before it is
                                log.sync()
                                    .map_err(CoreError::export("the predictions log"))?;
                                CheckpointRef {
                                    key: &key,
                                    position,
                                    skipped: &skipped,
                                    aggregates: &aggs,
                                }
                                .save(&ck.path)?;
                            }
                            if stop && position < total {
                                stopped = true;
                                interrupted = signalled;
                                return Ok(());
                            }
                        }
                    }
                    // every batch taken is sent, so a gap means a worker died
                    match waiting.into_iter().next() {
                        Some((_, Err(e))) => Err(e),
                        Some((seq, Ok(_))) => Err(CoreError::Config(format!(
                            "batch {next} of the aggregation was never prepared (batch {seq} was)"
                        ))),
                        None => Ok(()),
                    }
                };
                let result = consume(rx);
                for w in workers {
                    w.join().map_err(|_| {
                        CoreError::Config("a batch worker of the aggregation panicked".into())
                    })??;
                }
                result
            })?;
            let (loader, _, _) = source.into_inner().map_err(|_| {
                CoreError::Config("a batch worker of the aggregation panicked".into())
            })?;
            if !stopped {
                // samples skipped at the very end travel with no batch
                skipped.extend(loader.skipped().iter().cloned());
                position = total;
            }
        }
        let complete = !stopped;
        if let Some(h) = &halves {
            // the whole is the exact merge of the two halves
            let mut whole = h[0].clone();
            whole
                .merge(&h[1])
                .map_err(CoreError::aggregate("merging the two halves"))?;
            aggs = whole;
        }
        if complete && let Some(ck) = &self.config.checkpoint {
            log.sync()
                .map_err(CoreError::export("the predictions log"))?;
            CheckpointRef {
                key: &key,
                position,
                skipped: &skipped,
                aggregates: &aggs,
            }
            .save(&ck.path)?;
        }
        bar.finish_and_clear();
        skipped.sort_by_key(|s| s.index);
        skipped.dedup_by_key(|s| s.index);
        Ok(PassReport {
            aggregates: aggs,
            complete,
            processed: position,
            total,
            resumed_from,
            batches,
            images,
            skipped,
            interrupted,
            elapsed: start.elapsed(),
            halves,
            predictions: Some(Arc::new(log)),
        })
    }

    /// The pass's predictions log: beside the checkpoint (reopened when `resuming` one), or
    /// a temporary file without checkpoints.
    fn predictions_log(&self, resuming: bool) -> Result<summit_export::PredictionLog> {
        let classes = self.model.description().num_classes;
        let images = self.dataset.len() as u64;
        let Some(ck) = &self.config.checkpoint else {
            return summit_export::PredictionLog::temporary(classes, images)
                .map_err(CoreError::export("the predictions log of the pass"));
        };
        let path = super::predictions_log_path(&ck.path);
        if resuming {
            summit_export::PredictionLog::open(&path, classes, images).map_err(|e| {
                CoreError::Checkpoint {
                    path: ck.path.clone(),
                    reason: format!(
                        "its predictions log cannot be resumed ({e}); delete the checkpoint to \
                         start over"
                    ),
                }
            })
        } else {
            summit_export::PredictionLog::create(&path, classes, images).map_err(CoreError::export(
                "the predictions log beside the checkpoint",
            ))
        }
    }

    pub(super) fn progress_bar(&self, total: u64, position: u64) -> ProgressBar {
        let target = if self.config.progress && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:40} {pos}/{len} images  {per_sec}  elapsed {elapsed}  ETA {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_position(position);
        bar.reset_eta();
        bar
    }
}

/// One recorded part of a batch: the whole batch, or (with [`Config::stability`]) the images
/// of one half.
pub(super) struct RecordedPart {
    /// `None`: the whole run's aggregates; `Some(h)`: half `h`'s.
    half: Option<usize>,
    ids: Vec<u64>,
    labels: Vec<usize>,
    what: String,
    recording: Recording,
}

/// A batch after its forward pass, ready to be aggregated.
pub(super) struct RecordedBatch {
    parts: Vec<RecordedPart>,
    /// Samples the batch consumed from the run's index list (loaded and skipped).
    consumed: usize,
    /// Images in the batch.
    images: usize,
    skipped: Vec<Skipped>,
}

impl RecordedBatch {
    /// Prepares every part ([`prepare_recording`]).
    fn prepare(
        self,
        model: &dyn Summarizable,
        hop_input: HopInput,
        params: &AggregateParams,
        kernels: Option<&DeviceKernels>,
    ) -> Result<PreparedBatches> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for part in self.parts {
            let batch = prepare_recording(
                model,
                hop_input,
                params,
                part.recording,
                &part.ids,
                &part.labels,
                &part.what,
                kernels,
            )?;
            parts.push(PreparedPart {
                half: part.half,
                batch,
            });
        }
        Ok(PreparedBatches {
            parts,
            consumed: self.consumed,
            images: self.images,
            skipped: self.skipped,
        })
    }
}

/// One prepared part of a batch ([`RecordedPart`] after [`prepare_recording`]).
pub(super) struct PreparedPart {
    half: Option<usize>,
    batch: PreparedBatch,
}

/// A batch ready to be added to the aggregates.
pub(super) struct PreparedBatches {
    parts: Vec<PreparedPart>,
    consumed: usize,
    images: usize,
    skipped: Vec<Skipped>,
}

/// How many batches the aggregation records and prepares at once at most (fewer when the
/// rayon pool has fewer threads): each worker runs its batches' inner parallelism on a rayon
/// pool of its own with an equal share of the threads; results are added in run order.
pub const BATCH_WORKERS: usize = 2;

/// Runs the recording forward pass of `batch` (first at run position `first`): the whole
/// batch, or with `split` its two halves by [`stability_half`] apart.
pub(super) fn record_parts(
    model: &dyn Summarizable,
    device: &Device,
    batch: &Batch,
    first: usize,
    split: bool,
) -> Result<RecordedBatch> {
    let what = format!(
        "batch at run position {first} (dataset indices {}..={})",
        batch.indices.first().copied().unwrap_or(0),
        batch.indices.last().copied().unwrap_or(0)
    );
    let per: usize = batch.dims[1..].iter().product();
    let mut parts = Vec::new();
    let groups: Vec<(Option<usize>, Vec<usize>)> = if split {
        (0..2)
            .map(|h| {
                let rows = (0..batch.len())
                    .filter(|&b| stability_half(batch.indices[b]) == h)
                    .collect();
                (Some(h), rows)
            })
            .collect()
    } else {
        vec![(None, (0..batch.len()).collect())]
    };
    for (half, rows) in groups {
        if rows.is_empty() {
            continue;
        }
        let mut images = Vec::with_capacity(rows.len() * per);
        for &b in &rows {
            images.extend_from_slice(&batch.images[b * per..(b + 1) * per]);
        }
        let mut dims = batch.dims;
        dims[0] = rows.len();
        let ids: Vec<u64> = rows.iter().map(|&b| batch.indices[b] as u64).collect();
        let labels: Vec<usize> = rows.iter().map(|&b| batch.labels[b]).collect();
        let x = Tensor::<4>::from_data(TensorData::new(images, dims), device);
        let recording = record_batch(model, x, &ids, &labels, &what)?;
        parts.push(RecordedPart {
            half,
            ids,
            labels,
            what: what.clone(),
            recording,
        });
    }
    Ok(RecordedBatch {
        parts,
        consumed: batch.len() + batch.skipped.len(),
        images: batch.len(),
        skipped: batch.skipped.clone(),
    })
}
