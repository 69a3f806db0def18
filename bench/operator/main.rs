//! `make bench-operator`: the operator at scale, against a private control
//! plane beside the test world (its own etcd and kube-apiserver with an audit
//! log, see tests/soak/private.rs: 10,000 objects would weigh on the apiserver
//! other tests share).
//!
//! 1. 100 ImagePromotions of small distinct images created at once: the time
//!    until all are Ready, status patches per object (counted from the watch:
//!    every status write is one MODIFIED event), the operator's peak RSS.
//! 2. 1,000 more created at once (the 100 images, 10 write-once tags each):
//!    the time until all are Ready.
//! 3. The 1,100 finished promotions through one resync: a restarted operator
//!    reconciles every object once, which for a finished promotion is its
//!    drift check. Its registry requests are counted at a proxy in front of
//!    the target registry, by method; its apiserver requests in the
//!    apiserver's audit log, by verb and resource (Secret GETs among them:
//!    every object pushes with a dockerconfigjson Secret).
//! 4. The same with 10,000 finished promotions (skipped with BENCH_QUICK=1).
//! 5. Compliance (issue 21): the 1,100 Ready promotions under an operator
//!    restarted with `--compliance-interval 10s`; after its first round, one
//!    more round of 1,100 checks is timed, with its scan-findings reads and
//!    its registry requests (at the proxy and in the operator's metrics).
//!
//! Results go to standard output and the `bench` section of
//! docs/benchmarks-operator.md. Under `cargo test` (no `--bench` argument) it
//! only says how to run it.

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

#[path = "../../tests/soak/private.rs"]
#[allow(dead_code)]
mod private;

#[path = "../../tests/soak/report.rs"]
mod report;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt;
use image_promoter::api::ImagePromotion;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use cluster::Cluster;
use harness::{Operator, config_with, is, metric, service_account};
use private::PrivateWorld;
use proxy::Proxy;
use world::{GOOD, Source, World, promotion};

const IMAGES: usize = 100;
const AT_ONCE: usize = 1_000;
const LARGE: usize = 10_000;
/// Objects created per request batch (concurrently).
const BATCH: usize = 200;

fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// How many promotions exist and how many of them are Ready.
async fn count_ready(api: &Api<ImagePromotion>) -> (usize, usize) {
    let Ok(list) = api.list(&ListParams::default()).await else {
        return (0, 0);
    };
    let ready = list
        .items
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .is_some_and(|s| is(s, "Ready", ("True", "Promoted")))
        })
        .count();
    (list.items.len(), ready)
}

async fn wait_all_ready(operator: &mut Operator, api: &Api<ImagePromotion>, count: usize) {
    let start = Instant::now();
    loop {
        let (total, ready) = count_ready(api).await;
        if total >= count && ready == total {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3600),
            "{ready}/{total} Ready after 60 min:\n{}",
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

/// Creates `objects` in batches of concurrent requests.
async fn create_all(cluster: &Cluster, objects: Vec<Value>) {
    for chunk in objects.chunks(BATCH) {
        futures::future::join_all(chunk.iter().cloned().map(|mut object| async move {
            object["metadata"]["namespace"] = json!(cluster.namespace);
            cluster
                .create(&object)
                .await
                .expect("creating an ImagePromotion");
        }))
        .await;
    }
}

/// What one resync by a restarted operator cost.
struct Resync {
    objects: usize,
    time: Duration,
    registry: BTreeMap<String, usize>,
    apiserver: BTreeMap<String, usize>,
    peak_rss: f64,
}

impl Resync {
    fn per_object(&self, counts: &BTreeMap<String, usize>) -> String {
        counts
            .iter()
            .map(|(k, n)| format!("{k} {:.2}", *n as f64 / self.objects as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn secret_gets(&self) -> f64 {
        *self.apiserver.get("get secrets").unwrap_or(&0) as f64 / self.objects as f64
    }
}

/// Kills `operator`, starts another and waits until it has reconciled every
/// one of `objects` once; counts the requests meanwhile.
async fn resync(
    operator: &mut Operator,
    cluster: &Cluster,
    private: &PrivateWorld,
    start_operator: &dyn Fn() -> Operator,
    proxy: &Proxy,
    objects: usize,
) -> Operator {
    operator.kill();
    let before = proxy.exchanges().len();
    let audit = private.audit_log();
    let audit_offset = std::fs::metadata(&audit).map_or(0, |m| m.len());
    let mut restarted = start_operator();
    let started = Instant::now();
    let url = restarted.metrics_url.clone();
    let deadline = Duration::from_secs(1800);
    loop {
        let done = async {
            let text = reqwest::get(&url).await.ok()?.text().await.ok()?;
            metric(
                &text,
                "controller_runtime_reconcile_total{controller=\"imagepromotion\",result=\"requeue_after\"}",
            )
        }
        .await;
        if done.is_some_and(|n| n >= objects as f64) {
            break;
        }
        if let Some(exit) = restarted.exited() {
            panic!(
                "the operator exited ({exit}) in the resync:\n{}",
                restarted.log()
            );
        }
        assert!(
            started.elapsed() < deadline,
            "no full resync within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let time = started.elapsed();
    let mut registry = BTreeMap::new();
    for e in proxy.exchanges().split_off(before) {
        *registry.entry(e.method).or_insert(0) += 1;
    }
    let apiserver = audit_counts(&audit, audit_offset, &cluster.namespace);
    let result = Resync {
        objects,
        time,
        registry,
        apiserver,
        peak_rss: peak_rss_mib(restarted.pid()),
    };
    RESYNCS.lock().unwrap().push(result);
    restarted
}

static RESYNCS: Mutex<Vec<Resync>> = Mutex::new(Vec::new());

/// The sum of every line of the counter `name` (all label sets).
fn counter_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What one compliance round of every Ready promotion cost.
struct ComplianceRound {
    objects: usize,
    first: Duration,
    time: Duration,
    scan_reads: f64,
    proxy_requests: usize,
    registry_requests: f64,
    noncompliant: f64,
}

/// Waits for the first round of compliance checks of `objects` promotions,
/// then times the next round of as many checks and counts its requests.
///
/// The first round is taken as over once the checks counter reaches twice
/// `objects`, not `objects`: with a 10 s interval the promotions checked
/// first are checked again before the last are checked once (the restart's
/// drift checks delay those), and their first checks (the signature reads
/// that fill the per-object cache) would otherwise fall in the measured round.
async fn compliance_round(
    operator: &mut Operator,
    proxy: &Proxy,
    objects: usize,
) -> ComplianceRound {
    const CHECKS: &str = "image_promoter_compliance_checks_total";
    let started = Instant::now();
    let url = operator.metrics_url.clone();
    let read = || async { reqwest::get(&url).await.ok()?.text().await.ok() };
    let deadline = Duration::from_secs(1800);
    let until = |target: f64| {
        let read = &read;
        async move {
            let begun = Instant::now();
            loop {
                if let Some(text) = read().await
                    && counter_sum(&text, CHECKS) >= target
                {
                    return text;
                }
                assert!(
                    begun.elapsed() < deadline,
                    "no {target} compliance checks within {deadline:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // The restart's own first reconciles (drift checks) end first, so the
    // round measured is compliance checks alone.
    let reconciled = "controller_runtime_reconcile_total{controller=\"imagepromotion\",result=\"requeue_after\"}";
    loop {
        if let Some(text) = read().await
            && metric(&text, reconciled).is_some_and(|n| n >= objects as f64)
        {
            break;
        }
        assert!(
            started.elapsed() < deadline,
            "no restart resync within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resynced = read().await.unwrap_or_default();
    let before = until(counter_sum(&resynced, CHECKS).max(2.0 * objects as f64)).await;
    let first = started.elapsed();
    let proxied = proxy.exchanges().len();
    let checks = counter_sum(&before, CHECKS);
    let round_start = Instant::now();
    let after = until(checks + objects as f64).await;
    let time = round_start.elapsed();
    assert!(
        operator.exited().is_none(),
        "the operator exited:\n{}",
        operator.log()
    );
    ComplianceRound {
        objects,
        first,
        time,
        scan_reads: counter_sum(&after, "image_promoter_compliance_scan_reads_total")
            - counter_sum(&before, "image_promoter_compliance_scan_reads_total"),
        proxy_requests: proxy.exchanges().len() - proxied,
        registry_requests: counter_sum(&after, "image_promoter_registry_requests_total")
            - counter_sum(&before, "image_promoter_registry_requests_total"),
        noncompliant: counter_sum(&after, "image_promoter_noncompliant_promotions"),
    }
}

/// Requests of the operator's ServiceAccount in the audit log after `offset`,
/// by `verb resource[/subresource]`.
fn audit_counts(path: &std::path::Path, offset: u64, namespace: &str) -> BTreeMap<String, usize> {
    let text = std::fs::read(path).unwrap_or_default();
    let user = format!("system:serviceaccount:{namespace}:image-promoter");
    let mut counts = BTreeMap::new();
    for line in text[offset.min(text.len() as u64) as usize..].split(|b| *b == b'\n') {
        let Ok(event) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        if event["user"]["username"] != user.as_str() || event["stage"] != "ResponseComplete" {
            continue;
        }
        let object = &event["objectRef"];
        let mut resource = object["resource"].as_str().unwrap_or("-").to_string();
        if let Some(sub) = object["subresource"].as_str() {
            resource = format!("{resource}/{sub}");
        }
        let key = format!("{} {resource}", event["verb"].as_str().unwrap_or("-"));
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("the operator benchmark runs with `make bench-operator`");
        return;
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let private = PrivateWorld::start("op-bench-world").await;
    let world = World::with_env(private.env.clone()).await;
    let cluster = Cluster::start_in(private.env.clone(), "op-bench").await;
    let proxy = Proxy::start(
        world.env.get("PROMOTER_TEST_QUAY_REGISTRY"),
        &world.env.ca_pem(),
        Vec::new(),
    )
    .await;
    // The proxy's host is declared (plain HTTP) without credentials: every
    // object pushes with the dockerconfigjson Secret it names.
    let config = config_with(
        &cluster,
        vec![json!({"host": proxy.host(), "plainHttp": true})],
    );
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        world.env.get("PROMOTER_TEST_QUAY_USER"),
        world.env.get("PROMOTER_TEST_QUAY_PASSWORD")
    ));
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "quay-push"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": json!({"auths": {proxy.host(): {"auth": auth}}}).to_string()},
    }))
    .unwrap();
    cluster
        .typed::<Secret>()
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating the push Secret");
    let kubeconfig = service_account(&cluster, harness::Rbac::Full).await;
    let start_operator = || Operator::start_with_config(&cluster, &kubeconfig, &config, &[]);

    eprintln!("seeding {IMAGES} images…");
    let mut sources: Vec<(Source, String)> = Vec::new();
    for i in 0..IMAGES {
        let source = world.source(&format!("bench-{i}"), GOOD).await;
        world.scan(&source, "COMPLETE", &[]).await;
        let (quay_name, _) = world.quay_target(&format!("bench-{i}"));
        sources.push((source, quay_name));
    }
    // Object `copy` of image `i` publishes its own write-once tag.
    let object = |i: usize, copy: usize| {
        let (source, quay_name) = &sources[i];
        let mut object = promotion(
            &world,
            source,
            json!({"encryption": "KMS"}),
            json!([{
                "name": "quay",
                "repository": format!("{}/{quay_name}", proxy.host()),
                "tags": [format!("c{copy}")],
                "credentials": {"secretRef": {"name": "quay-push"}},
            }]),
        );
        object["metadata"]["name"] = json!(format!("p-{i}-{copy}"));
        object
    };

    // Count status writes per object from the watch.
    let api: Api<ImagePromotion> = cluster.typed();
    let modified: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counting = modified.clone();
    let watch_api = api.clone();
    let watch = tokio::spawn(async move {
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
    let mut operator = start_operator();
    operator.wait_ready().await;
    let start = Instant::now();
    create_all(&cluster, (0..IMAGES).map(|i| object(i, 0)).collect()).await;
    wait_all_ready(&mut operator, &api, IMAGES).await;
    let ready_100 = start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await; // let the last watch events arrive
    let patches: Vec<usize> = modified
        .lock()
        .unwrap()
        .values()
        .map(|n| n.saturating_sub(1)) // the creation itself
        .collect();
    watch.abort();
    let max_patches = patches.iter().max().copied().unwrap_or(0);
    let mean_patches = patches.iter().sum::<usize>() as f64 / patches.len().max(1) as f64;
    let rss_100 = peak_rss_mib(operator.pid());

    // Phase 2: 1,000 at once.
    let copies = AT_ONCE / IMAGES;
    let start = Instant::now();
    create_all(
        &cluster,
        (0..IMAGES)
            .flat_map(|i| (1..=copies).map(move |c| (i, c)))
            .map(|(i, c)| object(i, c))
            .collect(),
    )
    .await;
    let created_1000 = start.elapsed();
    let total = IMAGES + AT_ONCE;
    wait_all_ready(&mut operator, &api, total).await;
    let ready_1000 = start.elapsed();
    let rss_1000 = peak_rss_mib(operator.pid());

    // Phase 3: the 1,100 through one resync.
    operator = resync(
        &mut operator,
        &cluster,
        &private,
        &start_operator,
        &proxy,
        total,
    )
    .await;

    // Phase 5: one compliance round of the 1,100.
    operator.kill();
    let mut checking = Operator::start_with_config(
        &cluster,
        &kubeconfig,
        &config,
        &["--compliance-interval", "10s"],
    );
    let round = compliance_round(&mut checking, &proxy, total).await;
    checking.kill();
    operator = start_operator();
    operator.wait_ready().await;

    // Phase 4: 10,000 through one resync.
    let mut large = None;
    if !quick {
        let more = LARGE - total;
        let per_image = more / IMAGES;
        let start = Instant::now();
        create_all(
            &cluster,
            (0..IMAGES)
                .flat_map(|i| (copies + 1..=copies + per_image).map(move |c| (i, c)))
                .map(|(i, c)| object(i, c))
                .collect(),
        )
        .await;
        wait_all_ready(&mut operator, &api, LARGE).await;
        large = Some(start.elapsed());
        operator = resync(
            &mut operator,
            &cluster,
            &private,
            &start_operator,
            &proxy,
            LARGE,
        )
        .await;
    }
    operator.kill();

    let resyncs = RESYNCS.lock().unwrap();
    let mut text = format!(
        "## Scale\n\n\
         `make bench-operator` (bench/operator/main.rs; BENCH_QUICK=1 leaves out the 10,000). Written on {date}: \
         a {build} build of the operator, `--concurrency 4`, against a private control plane (its own etcd \
         and kube-apiserver with an audit log) beside the local test world (real registries, moto), on a \
         2-core machine shared with other builds. Each object has one target with one write-once tag, \
         pushed with the dockerconfigjson Secret it names.\n\n\
         | measure | result | goal |\n|---|---|---|\n\
         | 100 promotions created at once: time until all Ready | {ready_100:.1} s | — |\n\
         | status writes per object (mean / max) | {mean_patches:.2} / {max_patches} | ≤ 4 |\n\
         | 1,000 more created at once (created in {created_1000:.1} s): time until all Ready | {ready_1000:.1} s | ≤ 60 s |\n\
         | operator peak RSS after 100 / after 1,100 | {rss_100:.0} MiB / {rss_1000:.0} MiB | ≤ 128 MiB |\n",
        date = httpdate::fmt_http_date(std::time::SystemTime::now()),
        build = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        ready_100 = ready_100.as_secs_f64(),
        created_1000 = created_1000.as_secs_f64(),
        ready_1000 = ready_1000.as_secs_f64(),
    );
    if let Some(large) = large {
        text.push_str(&format!(
            "| 8,900 more created, until all 10,000 Ready | {:.0} s | — |\n",
            large.as_secs_f64()
        ));
    }
    for r in resyncs.iter() {
        let n = r.objects;
        let limit = if n > 5_000 { 256 } else { 128 };
        text.push_str(&format!(
            "| {n} finished promotions through one resync (restart): time | {:.1} s | — |\n\
             | registry requests per object in that resync, by method | {} | 1 HEAD per write-once tag (here 1) |\n\
             | apiserver requests per object in that resync (audit log), by verb | {} | — |\n\
             | Secret GETs per object in that resync | {:.2} | 0 once cached |\n\
             | restarted operator's peak RSS | {:.0} MiB | ≤ {limit} MiB |\n",
            r.time.as_secs_f64(),
            r.per_object(&r.registry),
            r.per_object(&r.apiserver),
            r.secret_gets(),
            r.peak_rss,
        ));
    }
    text.push_str(&format!(
        "| {n} Ready promotions, first compliance checks after a restart (with its drift checks) | {first:.1} s | — |\n\
         | {n} Ready promotions re-evaluated: one round of compliance checks (`--compliance-interval 10s`, jittered ±10 %) | {time:.1} s | ≤ 30 s |\n\
         | scan-findings reads per object in that round | {scans:.2} | 1 |\n\
         | registry requests in that round (proxy / operator's metric) | {proxied} / {requests:.0} | 0 |\n\
         | promotions found noncompliant | {noncompliant:.0} | 0 |\n",
        n = round.objects,
        first = round.first.as_secs_f64(),
        time = round.time.as_secs_f64(),
        scans = round.scan_reads / round.objects as f64,
        proxied = round.proxy_requests,
        requests = round.registry_requests,
        noncompliant = round.noncompliant,
    ));
    text.push_str(
        "\nHow it is measured: status writes are MODIFIED events of a watch on the namespace \
         (the creation not counted); peak RSS is the operator process's `VmHWM`; a resync is a \
         restarted operator's first reconcile of every object (for a finished promotion, its \
         drift check), counted done when `controller_runtime_reconcile_total{result=\"requeue_after\"}` \
         reaches the number of objects; its registry requests are every request a proxy in front \
         of the target registry saw meanwhile, its apiserver requests every request of the \
         operator's ServiceAccount in the apiserver's audit log meanwhile (list and watch \
         included).\n",
    );
    println!("{text}");
    report::write_section(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/benchmarks-operator.md"
        )),
        "bench",
        &text,
    );
}
