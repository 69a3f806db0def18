//! The operator's replicas during a soak: processes of the binary under test
//! with `--leader-elect`, each watched for its memory (`VmRSS`, `VmHWM` from
//! /proc) and its exit. A replica that exits on its own is recorded and
//! replaced, as a Deployment's pod would be; the one the soak kills is not
//! counted as such, nor is a leader that stopped because it could not renew
//! its Lease within the renew deadline (an apiserver away longer than that):
//! that fail-stop is the design (src/controller/leader.rs), and it is noted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::harness::{Operator, metric};

const LEADER: &str = "leader_election_master_status{name=\"image-promoter\"}";

/// What the operator's last error says when it stopped because it lost the
/// Lease (`RunError::LeaseLost`, logged as "the operator stopped").
const LEASE_LOST: &str = "(lost the leader Lease: stopped reconciling";

/// One replica and what was seen of it.
pub struct Replica {
    pub name: String,
    pub operator: Option<Operator>,
    pub peak_rss_mib: f64,
}

/// Every replica started during the run.
pub struct Replicas {
    kubeconfig: PathBuf,
    config: PathBuf,
    args: Vec<String>,
    started: Instant,
    pub all: Vec<Replica>,
    /// `(seconds into the run, replica, exit status, the end of its log)`.
    pub unexpected_exits: Vec<(f64, String, String, String)>,
    /// How many replicas stopped after losing the Lease (fail-stop, by design).
    pub lease_losses: usize,
    /// `(seconds into the run, what happened)`.
    pub timeline: Vec<(f64, String)>,
}

/// `VmRSS` and `VmHWM` of `pid` in MiB, if it runs.
pub fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let [rss, hwm] = status_mib(pid, ["VmRSS:", "VmHWM:"])?;
    Some((rss, hwm))
}

/// Fields of `/proc/<pid>/status` in MiB, if it runs.
fn status_mib<const N: usize>(pid: u32, names: [&str; N]) -> Option<[f64; N]> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    let mut values = [0.0; N];
    for (value, name) in values.iter_mut().zip(names) {
        *value = field(name)?;
    }
    Some(values)
}

/// The last error a replica logged (JSON lines): its message and error.
fn last_error(log: &str) -> String {
    log.lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| line["level"] == "error")
        .map(|line| {
            format!(
                "{} ({})",
                line["msg"].as_str().unwrap_or_default(),
                line["error"].as_str().unwrap_or_default()
            )
        })
        .unwrap_or_else(|| "no error logged".into())
}

impl Replicas {
    pub fn new(
        cluster: &Cluster,
        kubeconfig: &Path,
        config: &Path,
        resync: Duration,
        started: Instant,
    ) -> Self {
        Self {
            kubeconfig: kubeconfig.to_path_buf(),
            config: config.to_path_buf(),
            args: vec![
                "--leader-elect".into(),
                "--leader-election-namespace".into(),
                cluster.namespace.clone(),
                "--resync-interval".into(),
                format!("{}s", resync.as_secs()),
            ],
            started,
            all: Vec::new(),
            unexpected_exits: Vec::new(),
            lease_losses: 0,
            timeline: Vec::new(),
        }
    }

    fn at(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn note(&mut self, what: String) {
        eprintln!("soak: {:>6.1} s  {what}", self.at());
        self.timeline.push((self.at(), what));
    }

    /// Starts another replica; its index.
    pub fn start(&mut self, cluster: &Cluster) -> usize {
        let name = format!("replica-{}", self.all.len() + 1);
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let operator =
            Operator::start_with_config(cluster, &self.kubeconfig.clone(), &self.config, &args);
        self.note(format!("{name} started (pid {})", operator.pid()));
        self.all.push(Replica {
            name,
            operator: Some(operator),
            peak_rss_mib: 0.0,
        });
        self.all.len() - 1
    }

    /// Samples memory, and replaces replicas that exited on their own.
    pub fn tend(&mut self, cluster: &Cluster) {
        let mut exited = Vec::new();
        for (i, replica) in self.all.iter_mut().enumerate() {
            let Some(operator) = replica.operator.as_mut() else {
                continue;
            };
            if let Some((_, hwm)) = rss_mib(operator.pid()) {
                replica.peak_rss_mib = replica.peak_rss_mib.max(hwm);
            }
            if let Some(status) = operator.exited() {
                exited.push((i, status.to_string(), last_error(&operator.log())));
            }
        }
        for (i, status, tail) in exited {
            let name = self.all[i].name.clone();
            self.all[i].operator = None;
            if tail.contains(LEASE_LOST) {
                self.lease_losses += 1;
                self.note(format!(
                    "{name} lost the Lease and stopped, as designed ({status}); replaced"
                ));
            } else {
                self.unexpected_exits
                    .push((self.at(), name.clone(), status.clone(), tail));
                self.note(format!("{name} exited on its own ({status}); replaced"));
            }
            self.start(cluster);
        }
    }

    /// The replica whose /metrics says it leads, if exactly one does.
    pub async fn leader(&self) -> Option<usize> {
        let mut leaders = Vec::new();
        for (i, replica) in self.all.iter().enumerate() {
            let Some(operator) = &replica.operator else {
                continue;
            };
            let Ok(response) = reqwest::get(&operator.metrics_url).await else {
                continue;
            };
            let Ok(text) = response.text().await else {
                continue;
            };
            if metric(&text, LEADER) == Some(1.0) {
                leaders.push(i);
            }
        }
        (leaders.len() == 1).then(|| leaders[0])
    }

    /// SIGKILLs replica `i`, keeping its peak RSS.
    pub fn kill(&mut self, i: usize) {
        let name = self.all[i].name.clone();
        if let Some(mut operator) = self.all[i].operator.take() {
            if let Some((_, hwm)) = rss_mib(operator.pid()) {
                self.all[i].peak_rss_mib = self.all[i].peak_rss_mib.max(hwm);
            }
            operator.kill();
        }
        self.note(format!("{name} killed (SIGKILL)"));
    }

    /// The /metrics text of replica `i`.
    pub async fn metrics(&self, i: usize) -> Option<String> {
        let operator = self.all[i].operator.as_ref()?;
        reqwest::get(&operator.metrics_url)
            .await
            .ok()?
            .text()
            .await
            .ok()
    }

    /// The current RSS of replica `i`.
    pub fn rss(&self, i: usize) -> Option<f64> {
        let operator = self.all[i].operator.as_ref()?;
        rss_mib(operator.pid()).map(|(rss, _)| rss)
    }

    /// The current RSS of replica `i` in its two parts: anonymous memory (the
    /// heap, stacks) and pages of mapped files (the binary's code, read in as
    /// it runs).
    pub fn rss_parts(&self, i: usize) -> Option<(f64, f64)> {
        let operator = self.all[i].operator.as_ref()?;
        let [anonymous, file] = status_mib(operator.pid(), ["RssAnon:", "RssFile:"])?;
        Some((anonymous, file))
    }

    /// `(name, peak RSS)` of every replica.
    pub fn peaks(&self) -> Vec<(String, f64)> {
        self.all
            .iter()
            .map(|r| (r.name.clone(), r.peak_rss_mib))
            .collect()
    }

    /// The end of replica `i`'s log (for failure messages).
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let Some(operator) = self.all[i].operator.as_ref() else {
            return String::new();
        };
        let log = operator.log();
        let tail: Vec<&str> = log.lines().rev().take(lines).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}
