//! The explorer page in a real headless Chromium, driven over WebDriver (chromedriver): start
//! a node, open its page, see the tip height, mine a block through the API and see the page
//! follow, look up a dev account's balance, and keep a screenshot in the target directory.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them the
//! test says it was skipped, and why, and passes.

// A test fails by panicking: unwrap, expect and panic are how it reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{DEADLINE, NodeProcess};
use fantoccini::{Client, ClientBuilder, Locator};
use powchain_testkit::{TempDir, eventually};
use serde_json::{Value, json};

/// Where Debian puts them; `CHROMIUM` and `CHROMEDRIVER` override.
fn program(variable: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    path.exists().then_some(path)
}

/// chromedriver, stopped when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The text of the element with `id`, if it is there.
async fn text_of(browser: &Client, id: &str) -> Option<String> {
    let element = browser.find(Locator::Id(id)).await.ok()?;
    element.text().await.ok()
}

fn api(address: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("http://{address}{path}");
    let mut response = match body {
        Some(body) => agent
            .post(&url)
            .header("Authorization", format!("Bearer {}", token.unwrap_or("")))
            .send_json(&body),
        None => agent.get(&url).call(),
    }
    .expect("the API answers");
    let status = response.status();
    let value: Value = response.body_mut().read_json().expect("JSON");
    assert!(status.is_success(), "{path}: {status} {value}");
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_follows_the_chain_in_a_real_browser() {
    let (Some(chromium), Some(chromedriver)) = (
        program("CHROMIUM", "/usr/bin/chromium"),
        program("CHROMEDRIVER", "/usr/bin/chromedriver"),
    ) else {
        assert!(
            std::env::var_os("POWCHAIN_REQUIRE_BROWSER").is_none(),
            "POWCHAIN_REQUIRE_BROWSER is set but chromium or chromedriver is missing"
        );
        println!(
            "skipped: the explorer's browser test needs Chromium and ChromeDriver \
             (Debian packages chromium and chromium-driver; .ci/run installs them)"
        );
        return;
    };

    let dir = TempDir::new("explorer");
    let mut node = NodeProcess::start(&[
        "--datadir",
        dir.arg(),
        "--difficulty",
        "17",
        "--miner-threads",
        "1",
        "--rpc",
        "127.0.0.1:0",
    ]);
    let line = node.expect("API and explorer on http://");
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    let token = std::fs::read_to_string(dir.file("api.cookie")).unwrap();

    let port = free_port();
    let _driver = Driver(
        Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let profile = TempDir::new("explorer-profile");
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": chromium,
            // Headless, and quiet: this machine's network is closed, and Chromium's own
            // background connections would only fail.
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1280,1100", format!("--user-data-dir={}", profile.arg()),
            ],
        }
    });
    let webdriver = format!("http://127.0.0.1:{port}");
    let browser = eventually("chromedriver to accept a session", DEADLINE, || {
        let capabilities = capabilities.as_object().cloned().unwrap();
        let webdriver = webdriver.clone();
        async move {
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&webdriver)
                .await
                .ok()
        }
    })
    .await;

    // The page shows the tip.
    browser
        .goto(&format!("http://{address}/"))
        .await
        .expect("the page opens");
    eventually("the page to show height 0", DEADLINE, || async {
        (text_of(&browser, "tip-height").await.as_deref() == Some("0")).then_some(())
    })
    .await;

    // A block mined through the API reaches the page through the event stream, no reload.
    let transfer = {
        use powchain_chain::{Amount, Keypair, Memo, UnsignedTransfer};
        let genesis = api(&address, "/api/v1/status", None, None)["genesis"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        UnsignedTransfer {
            to: Keypair::dev(3).address(),
            amount: Amount(40),
            fee: Amount(1),
            nonce: 0,
            memo: Memo::default(),
        }
        .sign(&Keypair::dev(0), &genesis)
    };
    let transfer_id = api(
        &address,
        "/api/v1/tx",
        Some(token.trim()),
        Some(serde_json::to_value(&transfer).unwrap()),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api(
        &address,
        "/api/v1/mine",
        Some(token.trim()),
        Some(json!({})),
    );
    eventually("the page to show height 1", DEADLINE, || async {
        (text_of(&browser, "tip-height").await.as_deref() == Some("1")).then_some(())
    })
    .await;
    let latest = text_of(&browser, "latest-blocks").await.unwrap_or_default();
    assert!(latest.contains('1'), "the new block is listed: {latest}");

    // A dev account's balance, found through the search box.
    let expected = api(&address, "/api/v1/accounts/3", None, None)["balance"]
        .as_u64()
        .unwrap()
        .to_string();
    let search = browser
        .find(Locator::Id("search"))
        .await
        .expect("a search box");
    search.send_keys("dev:3").await.unwrap();
    let form = browser.form(Locator::Id("search-form")).await.unwrap();
    form.submit().await.unwrap();
    eventually("the account's balance", DEADLINE, || async {
        (text_of(&browser, "account-balance").await.as_deref() == Some(expected.as_str()))
            .then_some(())
    })
    .await;
    let url = browser.current_url().await.unwrap();
    assert!(
        url.fragment().is_some_and(|f| f.contains("account")),
        "{url}"
    );

    // A block and a transfer found by their short ids, as the session prints 16 digits.
    let block = api(&address, "/api/v1/blocks/1", None, None);
    let hash = block["hash"].as_str().unwrap().to_owned();
    let id = transfer_id.clone();
    for (digits, page) in [
        (&hash[..16], format!("block/{hash}")),
        (&id[..12], format!("tx/{id}")),
    ] {
        let search = browser.find(Locator::Id("search")).await.unwrap();
        search.clear().await.unwrap();
        search.send_keys(digits).await.unwrap();
        browser
            .form(Locator::Id("search-form"))
            .await
            .unwrap()
            .submit()
            .await
            .unwrap();
        eventually(&format!("{digits} to open {page}"), DEADLINE, || async {
            let url = browser.current_url().await.ok()?;
            (url.fragment() == Some(&format!("/{page}"))).then_some(())
        })
        .await;
    }

    // Back to the front page for the picture, after a few more blocks for the chart.
    browser
        .execute("location.hash = '#/'", vec![])
        .await
        .unwrap();
    api(
        &address,
        "/api/v1/automine",
        Some(token.trim()),
        Some(json!({ "on": true })),
    );
    eventually("a few automined blocks on the page", DEADLINE, || async {
        let height: u64 = text_of(&browser, "tip-height").await?.parse().ok()?;
        (height >= 12).then_some(())
    })
    .await;
    api(
        &address,
        "/api/v1/automine",
        Some(token.trim()),
        Some(json!({ "on": false })),
    );
    eventually("the front page again", DEADLINE, || async {
        text_of(&browser, "interval-chart").await.map(|_| ())
    })
    .await;
    let errors = browser
        .execute("return window.explorerErrors || []", vec![])
        .await
        .unwrap();
    assert_eq!(errors, json!([]), "the page reported errors");
    let png = browser.screenshot().await.unwrap();
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer.png");
    std::fs::write(&shot, png).unwrap();
    println!("screenshot: {}", shot.display());
    browser.close().await.unwrap();
}
