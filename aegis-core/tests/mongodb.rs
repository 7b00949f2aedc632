//! MongoDB beyond the conformance suite: connection failures. Runs against the
//! server named by `AEGIS_TEST_MONGODB_URI` (`scripts/test` starts one); without
//! it, it fails.

use std::time::{Duration, Instant};

use aegis_core::{connect, Error, StorageUrl};

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
