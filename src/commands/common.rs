//! What the commands share: where the warehouse is, opening it with its KPIs, progress bars,
//! exit codes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use warehouse::Warehouse;
use warehouse::kpi::metrics::Metrics;
use warehouse::place::storage::Storage;
use warehouse::query::cluster::Cluster;

/// Exit code when the input is at fault (a file with problems, a refused query).
pub(super) const INVALID_INPUT: u8 = 2;

/// Problems shown on the terminal per file; all of them go to `--errors-out`.
pub(super) const PROBLEMS_SHOWN: usize = 200;

/// Where the warehouse is, as the command line says (`--data`, `--storage-option`), and the
/// cluster its queries run on (`--cluster`).
pub(super) struct Place {
    pub(super) location: String,
    pub(super) options: Vec<(String, String)>,
    pub(super) cluster: Option<Cluster>,
}

impl Place {
    pub(super) fn storage(&self, create: bool) -> warehouse::Result<Storage> {
        Storage::new(&self.location, &self.options, create)
    }

    /// The warehouse there.
    pub(super) async fn open(&self) -> warehouse::Result<Warehouse> {
        Ok(self.on_cluster(Warehouse::open_in(self.storage(false)?).await?))
    }

    /// The warehouse there, made if need be.
    pub(super) async fn init(&self) -> warehouse::Result<Warehouse> {
        Ok(self.on_cluster(Warehouse::init_in(self.storage(true)?).await?))
    }

    pub(super) fn on_cluster(&self, warehouse: Warehouse) -> Warehouse {
        match &self.cluster {
            Some(cluster) => warehouse.with_cluster(cluster.clone()),
            None => warehouse,
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location)
    }
}

/// The metrics text and where it came from: the given file, else ./metrics.toml, else the
/// built-in copy.
pub(super) fn metrics_source(file: Option<&Path>) -> anyhow::Result<(String, String)> {
    let file = file.map(Path::to_path_buf).or_else(|| {
        let here = PathBuf::from("metrics.toml");
        here.is_file().then_some(here)
    });
    match file {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            Ok((text, path.display().to_string()))
        }
        None => Ok((
            warehouse::kpi::metrics::BUILT_IN.to_string(),
            "built-in metrics.toml".to_string(),
        )),
    }
}

pub(super) async fn load_metrics(file: Option<&Path>) -> anyhow::Result<Arc<Metrics>> {
    let (text, origin) = metrics_source(file)?;
    match Metrics::load(&text).await {
        Ok(metrics) => Ok(Arc::new(metrics)),
        Err(problems) => {
            for problem in &problems {
                eprintln!("{origin}: {problem}");
            }
            bail!(
                "{origin} has {} problem(s); fix them (`khoso check-metrics`) or pass another --metrics",
                problems.len()
            )
        }
    }
}

pub(super) async fn open(data: &Place, metrics_file: Option<&Path>) -> anyhow::Result<Warehouse> {
    let metrics = load_metrics(metrics_file).await?;
    Ok(data.open().await?.with_metrics(metrics))
}

pub(super) fn progress_bar(len: u64, message: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {elapsed} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(message.to_string());
    // A long file is one step: the spinner shows it is being worked on.
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
