//! Enhanced fan-out end to end on local AWS (kinesis-mock serves SubscribeToShard): a
//! worker reading through a registered consumer gives the results of a polling worker and
//! of `eventide replay`, also when its subscription is replaced in the middle of the
//! stream.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use eventide_aws::kinesis::efo::register_consumer;
use eventide_aws::kinesis::{create_stream_and_wait, put_records, PutEntry};
use eventide_e2e::*;

const LIMIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread")]
async fn efo_worker_equals_polling_worker_and_replay() {
    let c = clients().await;
    let stream = unique("e2e-efo");
    let (polling, efo) = (unique("e2e-efo-poll"), unique("e2e-efo-sub"));
    let lines = generate(800, 12, 7, 0.10);
    let want = replay(reference_spec(), &lines);
    stream_with(&c, &stream, 2, &lines).await;

    // Two pipelines over the same stream: one polls, one reads through its own consumer.
    let bin = consumer_bin();
    let finite = [
        "--create",
        "--finite-quiet-ms",
        "2500",
        "--stop-after-ms",
        "200000",
    ];
    let mut p = spawn_worker_with(&bin, "demo", &stream, &polling, "poller", &finite);
    let mut e = spawn_worker_with(
        &bin,
        "demo",
        &stream,
        &efo,
        "subscriber",
        &[&finite[..], &["--efo", "reporting", "--batch-limit", "100"]].concat(),
    );
    let (sp, se) =
        tokio::task::spawn_blocking(move || (wait_exit(&mut p, LIMIT), wait_exit(&mut e, LIMIT)))
            .await
            .expect("join");
    assert!(sp.success() && se.success(), "workers failed: {sp} {se}");

    let got_polling = results_table(&c, &format!("{polling}-results"), &reference_spec()).await;
    let got_efo = results_table(&c, &format!("{efo}-results"), &reference_spec()).await;
    assert_same(&got_polling, &want, "polling worker vs replay");
    assert_same(&got_efo, &want, "EFO worker vs replay");

    // Registering is idempotent: the worker's consumer is found, ACTIVE, under the same ARN.
    let arn = register_consumer(&c.kinesis, &stream, "reporting")
        .await
        .expect("registered again");
    let listed = c
        .kinesis
        .list_stream_consumers()
        .stream_arn(
            eventide_aws::kinesis::efo::stream_arn(&c.kinesis, &stream)
                .await
                .expect("stream ARN"),
        )
        .send()
        .await
        .expect("list consumers");
    let consumers: Vec<&str> = listed
        .consumers()
        .iter()
        .map(|c| c.consumer_arn())
        .collect();
    assert_eq!(consumers, [arn.as_str()]);
}

/// The lease's checkpoint of the only shard of the pipeline under `prefix`, if any.
async fn checkpoint(c: &eventide_aws::config::Clients, prefix: &str) -> Option<String> {
    let out = c
        .dynamodb
        .scan()
        .table_name(format!("{prefix}-leases"))
        .send()
        .await
        .ok()?;
    out.items()
        .iter()
        .find_map(|item| match item.get("checkpoint") {
            Some(AttributeValue::S(s)) => Some(s.clone()),
            _ => None,
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn efo_resubscribes_in_the_middle_of_the_stream() {
    let c = clients().await;
    let (stream, prefix) = (unique("e2e-resub"), unique("e2e-resub"));
    let lines = generate(600, 10, 11, 0.0);
    let want = replay(reference_spec(), &lines);
    let (first, second) = lines.split_at(300);
    create_stream_and_wait(&c.kinesis, &stream, 1)
        .await
        .expect("stream created");
    let entries: Vec<PutEntry> = first
        .iter()
        .map(|l| PutEntry::new(partition_key(l), l.as_bytes().to_vec()))
        .collect();
    let put = put_records(&c.kinesis, &stream, &entries)
        .await
        .expect("first half written");
    let last_of_first = put.last().expect("records").sequence_number.clone();

    // Subscriptions last 2 s; the worker logs each one on stderr.
    let mut cmd = worker_command(
        &consumer_bin(),
        "demo",
        &stream,
        &prefix,
        "subscriber",
        &[
            "--create",
            "--efo",
            "resubscriber",
            "--efo-resubscribe-after-ms",
            "2000",
            "--finite-quiet-ms",
            "10000",
            "--stop-after-ms",
            "200000",
        ],
    );
    let mut w = cmd
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("worker starts");
    let stderr = w.stderr.take().expect("stderr piped");
    let (tx, subscriptions) = mpsc::channel::<u64>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if line.contains("subscribed") {
                if let Some(n) = line
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("subscription="))
                    .and_then(|n| n.parse().ok())
                {
                    let _ = tx.send(n);
                }
            }
        }
    });

    // The first half is read and checkpointed through the first subscription ...
    let t0 = Instant::now();
    while checkpoint(&c, &prefix).await.as_deref() != Some(last_of_first.as_str()) {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "the first half was not checkpointed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut seen = 0;
    while let Ok(n) = subscriptions.try_recv() {
        seen = seen.max(n);
    }
    // ... then the worker subscribes again, from the continuation, before the second half.
    let resubscribed = tokio::task::spawn_blocking(move || {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(60) {
            match subscriptions.recv_timeout(Duration::from_secs(1)) {
                Ok(n) if n > seen => return Some(n),
                _ => {}
            }
        }
        None
    })
    .await
    .expect("join");
    assert!(
        resubscribed.is_some(),
        "no new subscription after the first half (had {seen})"
    );
    put_lines(&c, &stream, second).await;

    let status = tokio::task::spawn_blocking(move || wait_exit(&mut w, LIMIT))
        .await
        .expect("join");
    assert!(status.success(), "worker failed: {status}");
    let got = results_table(&c, &format!("{prefix}-results"), &reference_spec()).await;
    assert_same(&got, &want, "EFO across resubscriptions vs replay");
}
