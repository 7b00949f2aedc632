//! MongoDB beyond the conformance suite: connection failures, and the
//! summaries behind the statistics (read instead of the events, built for a
//! store that had none, finished once after an interrupted fold). Runs
//! against the server named by `AEGIS_TEST_MONGODB_URI` (`scripts/test`
//! starts one); without it, it fails.

use std::time::{Duration, Instant};

use aegis_core::{connect, Error, StatsQuery, Storage, StorageUrl, TopBy, Tz};
use aegis_testkit::traffic::{self, at};
use aegis_testkit::TestStore;
use mongodb::bson::{doc, Document};

#[tokio::test]
async fn connection_failures_are_clear_bounded_and_hide_the_password() {
    // Nothing listens on port 9: refused at once, reported within the bound.
    let url = StorageUrl::parse(
        "mongodb://aegis:s3cret-pw@127.0.0.1:9/aegis?serverSelectionTimeoutMS=500&connectTimeoutMS=500",
    )
    .unwrap();
    let started = Instant::now();
    let err = connect(&url).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(shown.contains("127.0.0.1:9"), "{shown}");

    for bad in [
        "mongodb://",
        "mongodb://host:notaport/db",
        "mongodb://127.0.0.1/db?unknownOption=1&w=banana",
    ] {
        let err = match StorageUrl::parse(bad) {
            Ok(url) => connect(&url).await.unwrap_err(),
            Err(e) => e,
        };
        assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
    }
}

/// Every figure a dashboard shows for `q`, as text to compare.
async fn figures(store: &dyn Storage, q: &StatsQuery) -> String {
    let kathmandu: Tz = "Asia/Kathmandu".parse().unwrap();
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        store.summary(q).await.unwrap(),
        store.ban_count(q).await.unwrap(),
        store.bans_per_day(q, kathmandu).await.unwrap(),
        store.top_offenders(q, 50).await.unwrap(),
        store.top(q, TopBy::Country, 50).await.unwrap(),
        store.top(q, TopBy::Network, 50).await.unwrap(),
    )
}

/// Three weeks of skewed traffic in `store`, and a range cut at odd moments.
async fn three_weeks(store: &dyn Storage) -> StatsQuery {
    let mut rng = traffic::Rng::with_seed(0x70a1);
    let events = traffic::skewed_events(&mut rng, at(0, 0, 0), at(21, 0, 0), 900);
    for chunk in events.chunks(150) {
        store.record_batch(chunk).await.unwrap();
    }
    StatsQuery::range(at(1, 7, 13), at(19, 22, 41))
}

fn bson(t: chrono::DateTime<chrono::Utc>) -> mongodb::bson::DateTime {
    mongodb::bson::DateTime::from_millis(t.timestamp_millis())
}

async fn database(db: &TestStore) -> mongodb::Database {
    let client = mongodb::Client::with_uri_str(db.url.expose())
        .await
        .unwrap();
    client.default_database().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_read_the_summaries_not_the_events_inside_the_range() {
    let db = TestStore::mongodb().await;
    let q = three_weeks(db.store.as_ref()).await;
    let before = db.store.summary(&q).await.unwrap();
    // Events deleted behind the store's back, from a whole day inside the
    // range, still count: that day is read from the summaries.
    let events = database(&db).await.collection::<Document>("events");
    let gone = events
        .delete_many(doc! { "time": { "$gte": bson(at(10, 0, 0)), "$lt": bson(at(11, 0, 0)) } })
        .await
        .unwrap()
        .deleted_count;
    assert!(gone > 10, "{gone}");
    assert_eq!(db.store.summary(&q).await.unwrap().bans, before.bans);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_kept_without_summaries_is_exact_and_summarised_by_maintain() {
    let db = TestStore::mongodb().await;
    let q = three_weeks(db.store.as_ref()).await;
    let want = figures(db.store.as_ref(), &q).await;
    // What a store written by a version without summaries looks like.
    let mongo = database(&db).await;
    for coll in ["ip_days", "slot_bans", "meta"] {
        mongo.collection::<Document>(coll).drop().await.unwrap();
    }
    let events = mongo.collection::<Document>("events");
    events
        .update_many(doc! {}, doc! { "$unset": { "t": "" } })
        .await
        .unwrap();

    let reopened = connect(&db.url).await.unwrap();
    assert_eq!(
        figures(reopened.as_ref(), &q).await,
        want,
        "from the events"
    );
    reopened.maintain().await.unwrap();
    let days = mongo.collection::<Document>("ip_days");
    assert!(days.count_documents(doc! {}).await.unwrap() > 0);
    assert_eq!(
        figures(reopened.as_ref(), &q).await,
        want,
        "from the summaries"
    );
    let unsummarised = events
        .count_documents(doc! { "kind": 0, "restored": false, "t": { "$exists": false } })
        .await
        .unwrap();
    assert_eq!(unsummarised, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_left_unfinished_is_finished_once_by_maintain() {
    let db = TestStore::mongodb().await;
    let q = three_weeks(db.store.as_ref()).await;
    let want = figures(db.store.as_ref(), &q).await;
    // A writer that stored its batch and stopped before folding it.
    let mongo = database(&db).await;
    for coll in ["ip_days", "slot_bans"] {
        mongo.collection::<Document>(coll).drop().await.unwrap();
    }
    let events = mongo.collection::<Document>("events");
    let mark = || async {
        let at = bson(chrono::Utc::now() - chrono::Duration::hours(1));
        events
            .update_many(
                doc! { "t": true },
                doc! { "$set": { "fold": { "w": "wgone", "s": 7_i64, "at": at } } },
            )
            .await
            .unwrap()
    };
    mark().await;
    let reopened = connect(&db.url).await.unwrap();
    reopened.maintain().await.unwrap();
    assert_eq!(figures(reopened.as_ref(), &q).await, want);
    // Its marks outlived the fold (it stopped before removing them): folding
    // the batch again adds nothing.
    mark().await;
    reopened.maintain().await.unwrap();
    assert_eq!(figures(reopened.as_ref(), &q).await, want);
    let marked = events
        .count_documents(doc! { "fold": { "$exists": true } })
        .await
        .unwrap();
    assert_eq!(marked, 0);
}
