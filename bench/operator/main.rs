//! `make bench-operator`: the operator at scale, against the test world.
//!
//! 1. 100 ImagePromotions of small distinct images created at once: the time
//!    until all are Ready, status patches per object (counted from the watch:
//!    every status write is one MODIFIED event), the operator's peak RSS.
//! 2. 1,000 finished promotions (10 objects per image) through one resync: a
//!    restarted operator reconciles every object once, which for a finished
//!    promotion is its drift check; the registry requests it makes are counted
//!    at a proxy in front of the target registry.
//!
//! Results go to standard output and docs/benchmarks-operator.md. Under
//! `cargo test` (no `--bench` argument) it only says how to run it.

#[path = "../../tests/support/mod.rs"]
mod support;

#[path = "../../tests/smoke/oci.rs"]
mod oci;

#[path = "../../tests/promote/world.rs"]
#[allow(dead_code)]
mod world;

#[path = "../../tests/faults/proxy.rs"]
#[allow(dead_code)]
mod proxy;

#[path = "../../tests/api/cluster.rs"]
#[allow(dead_code)]
mod cluster;

#[path = "../../tests/operator/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use image_promoter::api::ImagePromotion;
use kube::api::ListParams;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

use cluster::Cluster;
use harness::{Operator, config_with, create, is, metric, service_account};
use proxy::Proxy;
use world::{GOOD, TAG, World, promotion};

const IMAGES: usize = 100;
const OBJECTS_PER_IMAGE: usize = 10;

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn all_ready(api: &Api<ImagePromotion>, count: usize) -> bool {
    let list = api.list(&ListParams::default()).await.expect("listing");
    list.items.len() >= count
        && list.items.iter().all(|p| {
            p.status
                .as_ref()
                .is_some_and(|s| is(s, "Ready", ("True", "Promoted")))
        })
}

async fn wait_all_ready(operator: &mut Operator, api: &Api<ImagePromotion>, count: usize) {
    let start = Instant::now();
    while !all_ready(api, count).await {
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "not all Ready after 30 min:\n{}",
            operator
                .log()
                .lines()
                .rev()
                .take(50)
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("the operator benchmark runs with `make bench-operator`");
        return;
    }
    let world = World::new().await;
    let cluster = Cluster::start("op-bench").await;
    let proxy = Proxy::start(
        world.env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &world.env.ca_pem(),
        Vec::new(),
    )
    .await;
    let password_file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(support::unique_name("quay-password"));
    std::fs::write(&password_file, world.env.get("PROMOTER_TEST_QUAY_PASSWORD")).unwrap();
    let config = config_with(
        &cluster,
        vec![json!({
            "host": proxy.host(),
            "plainHttp": true,
            "auth": {"basic": {"username": world.env.get("PROMOTER_TEST_QUAY_USER"), "passwordFile": password_file}},
        })],
    );
    let kubeconfig = service_account(&cluster, harness::Rbac::Full).await;

    eprintln!("seeding {IMAGES} images…");
    let mut sources = Vec::new();
    for i in 0..IMAGES {
        let source = world.source(&format!("bench-{i}"), GOOD).await;
        world.scan(&source, "COMPLETE", &[]).await;
        let (quay_name, _) = world.quay_target(&format!("bench-{i}"));
        sources.push((source, quay_name));
    }
    let object = |i: usize, copy: usize| {
        let (source, quay_name) = &sources[i];
        let mut object = promotion(
            &world,
            source,
            json!({"encryption": "KMS"}),
            json!([{"name": "quay", "repository": format!("{}/{quay_name}", proxy.host()), "tags": [TAG]}]),
        );
        object["metadata"]["name"] = json!(format!("p-{i}-{copy}"));
        object
    };

    // Count status writes per object from the watch.
    let api: Api<ImagePromotion> = cluster.typed();
    let modified: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counting = modified.clone();
    let watch_api = api.clone();
    tokio::spawn(async move {
        let mut events = watcher(watch_api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            if let Ok(watcher::Event::Apply(object)) = event {
                *counting
                    .lock()
                    .unwrap()
                    .entry(object.name_any())
                    .or_default() += 1;
            }
        }
    });

    // Phase 1: 100 at once.
    let config_path = config.clone();
    let mut operator = Operator::start_with_config(&cluster, &kubeconfig, &config_path, &[]);
    operator.wait_ready().await;
    let start = Instant::now();
    futures::future::join_all((0..IMAGES).map(|i| create(&cluster, object(i, 0)))).await;
    wait_all_ready(&mut operator, &api, IMAGES).await;
    let ready_after = start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await; // let the last watch events arrive
    let patches: Vec<usize> = modified
        .lock()
        .unwrap()
        .values()
        .map(|n| n.saturating_sub(1)) // the creation itself
        .collect();
    let max_patches = patches.iter().max().copied().unwrap_or(0);
    let mean_patches = patches.iter().sum::<usize>() as f64 / patches.len().max(1) as f64;
    let rss_100 = peak_rss_mib(operator.pid());

    // Phase 2: 1,000 finished promotions, then one resync by a restarted operator.
    futures::future::join_all(
        (0..IMAGES)
            .flat_map(|i| (1..OBJECTS_PER_IMAGE).map(move |c| (i, c)))
            .map(|(i, c)| create(&cluster, object(i, c))),
    )
    .await;
    let total = IMAGES * OBJECTS_PER_IMAGE;
    wait_all_ready(&mut operator, &api, total).await;
    let rss_1000 = peak_rss_mib(operator.pid());
    operator.kill();
    let before = proxy.exchanges().len();
    let mut restarted = Operator::start_with_config(&cluster, &kubeconfig, &config_path, &[]);
    let resync_start = Instant::now();
    let url = restarted.metrics_url.clone();
    restarted
        .eventually("one reconcile of every promotion", || {
            let url = url.clone();
            async move {
                let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
                let done = metric(
                    &text,
                    "controller_runtime_reconcile_total{controller=\"imagepromotion\",result=\"requeue_after\"}",
                )?;
                (done >= total as f64).then_some(())
            }
        })
        .await;
    let resync_time = resync_start.elapsed();
    let exchanges: Vec<proxy::Exchange> = proxy.exchanges().split_off(before);
    let heads = exchanges.iter().filter(|e| e.method == "HEAD").count();
    let requests = exchanges.len();
    let rss_resync = peak_rss_mib(restarted.pid());

    let report = format!(
        "# Benchmarks: the operator\n\n\
         Written by bench/operator/main.rs on {date}: a {build} build, against the local test \
         world (real apiserver, registries, moto), `--concurrency 4`, on a 2-core machine \
         shared with other builds.\n\n\
         | measure | result | goal |\n|---|---|---|\n\
         | 100 promotions created at once: time until all Ready | {ready:.1} s | — |\n\
         | status writes per object (mean / max) | {mean:.2} / {max} | ≤ 4 |\n\
         | operator peak RSS after 100 / after 1,000 | {rss_100:.0} MiB / {rss_1000:.0} MiB | ≤ 128 MiB |\n\
         | 1,000 finished promotions through one resync (restart): time | {resync:.1} s | — |\n\
         | registry requests per promotion in that resync (HEAD / all) | {hpp:.2} / {rpp:.2} | 1 HEAD per target tag (here 1) |\n\
         | restarted operator's peak RSS | {rss_resync:.0} MiB | ≤ 128 MiB |\n",
        date = httpdate::fmt_http_date(std::time::SystemTime::now()),
        build = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        ready = ready_after.as_secs_f64(),
        mean = mean_patches,
        max = max_patches,
        resync = resync_time.as_secs_f64(),
        hpp = heads as f64 / total as f64,
        rpp = requests as f64 / total as f64,
    );
    println!("{report}");
    std::fs::write(
        concat!(env!("CARGO_MANIFEST_DIR"), "/docs/benchmarks-operator.md"),
        &report,
    )
    .expect("writing docs/benchmarks-operator.md");
}
