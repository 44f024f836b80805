//! The server as a browser sees it: headless Chromium (installed by `scripts/install-deps`)
//! loads the live page against a server under load, and a page from another origin tries
//! to change the admin mode.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use allockit_probe::metrics::{CACHE_ENTRIES, HTTP_REQUESTS_TOTAL};
use support::*;

/// Runs headless Chromium on `url` with `extra` flags (virtual time runs the page's timers
/// for `budget_ms` without waiting for them); returns the dumped DOM and the console lines.
fn chromium(url: &str, budget_ms: u32, extra: &[&str]) -> (String, Vec<String>) {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let profile = std::env::temp_dir().join(format!("allockit-chromium-{}-{run}", std::process::id()));
    let budget = format!("--virtual-time-budget={budget_ms}");
    let user_data = format!("--user-data-dir={}", profile.display());
    let output = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,1000",
            &user_data,
            &budget,
        ])
        .args(extra)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs (scripts/install-deps installs it)");
    let _ = std::fs::remove_dir_all(&profile);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chromium failed: {stderr}");
    let console = stderr.lines().filter(|l| l.contains(":CONSOLE")).map(str::to_string).collect();
    (String::from_utf8_lossy(&output.stdout).to_string(), console)
}

/// The value of attribute `name` on the element with `id` in a dumped DOM.
fn attribute(dom: &str, id: &str, name: &str) -> String {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let tag_start = dom[..start].rfind('<').unwrap();
    let tag = &dom[tag_start..tag_start + dom[tag_start..].find('>').unwrap()];
    let key = format!("{name}=\"");
    let value = &tag[tag.find(&key).unwrap_or_else(|| panic!("#{id} has no {name}: {tag}")) + key.len()..];
    value[..value.find('"').unwrap()].to_string()
}

#[test]
fn the_live_page_charts_a_loaded_server_over_a_labelled_time_axis_without_console_errors() {
    let server = start(&[]);
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(post(addr, "/v1/events", &batch(&format!("live-{}", i % 50), 20)).status, 200);
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    while sent.load(Ordering::Relaxed) < 20 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (dom, console) = chromium(&format!("http://{addr}/"), 12_000, &[]);
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();

    assert!(console.is_empty(), "console: {console:#?}");
    assert_eq!(attribute(&dom, "status", "class"), "", "sampling failed: {dom}");
    for chart in ["memory", "arena", "chunks"] {
        let points: usize = attribute(&dom, chart, "data-points").parse().unwrap();
        assert!(points >= 5, "{chart} holds {points} points");
        let labels = attribute(&dom, chart, "data-time-labels");
        assert!(labels.split(',').count() >= 3 && labels.contains("now"), "{chart} time axis: {labels}");
        let rows: usize = attribute(&dom, &format!("legend-{chart}"), "data-rows").parse().unwrap();
        assert_eq!(rows, 1, "the {chart} legend wraps at 1400 px");
    }
    assert_eq!(attribute(&dom, "mode", "class"), "mode segregated");
    assert!(metric(addr, HTTP_REQUESTS_TOTAL, &[("route", "/metrics"), ("status", "200")]) >= 5.0);
    server.shutdown();
}

/// Serves `page` to every request on a loopback port of its own (another origin).
fn serve_page(page: String) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    addr
}

#[test]
fn a_page_from_another_origin_cannot_change_the_admin_mode_or_clear_the_cache() {
    let server = start(&[]);
    assert_eq!(post(server.addr, "/v1/events", &batch("kept", 2)).status, 200);
    let admin = server.admin_addr;
    let page = format!(
        r#"<!doctype html><html><head><link rel="icon" href="data:,"></head><body><div id="done">no</div><script>
Promise.allSettled([
  fetch("http://{admin}/admin/mode?mode=broken", {{method: "POST", mode: "no-cors"}}),
  fetch("http://{admin}/admin/cache/clear", {{method: "POST", mode: "no-cors"}}),
]).then(() => {{ document.getElementById("done").dataset.sent = "yes"; }});
</script></body></html>"#
    );
    let evil = serve_page(page);
    let (dom, _console) = chromium(&format!("http://{evil}/"), 3_000, &[]);
    assert_eq!(attribute(&dom, "done", "data-sent"), "yes", "the page ran its requests: {dom}");
    assert_eq!(get(admin, "/admin/mode").json()["mode"], "segregated");
    assert_eq!(metric(server.addr, CACHE_ENTRIES, &[]), 1.0);
    server.shutdown();
}
