//! The observability stack against the real tools, not against our idea of them:
//!
//! * a real Prometheus scrapes two live allockit servers (segregated and
//!   `--break-lifetimes`) and two live loadgen processes, with a configuration derived from
//!   `dashboards/prometheus.yml` (only the targets are rewritten), and every PromQL
//!   expression of every panel of the Grafana dashboard must return data for each server;
//! * `promtool check config` accepts the configuration, `promtool check metrics` finds
//!   nothing in the expositions of the live server and loadgen;
//! * `docker-compose config` accepts the compose file;
//! * the server's live page, loaded in headless Chromium, charts samples and shows the
//!   mode, and leaves a screenshot in `target/test-artifacts/`.
//!
//! Prometheus, promtool, docker-compose and Chromium come from Debian packages that
//! `scripts/install-deps` installs; a missing tool fails the test. Every wait polls
//! against a generous deadline; nothing here asserts how long anything took.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use allockit_probe::metrics::ARENA_CHUNKS;
use allockit_server::{Config, ServerHandle};
use clap::Parser;
use serde_json::Value;
use support::scratch_dir;

/// The values of the dashboard's `$server` variable: the `server` labels of
/// `dashboards/prometheus.yml`, one per allockit server of the compose stack.
const SERVERS: [&str; 2] = ["server", "server-broken"];

/// What the test substitutes for Grafana's `$__rate_interval` (at least four scrape
/// intervals of `dashboards/prometheus.yml`, as Grafana computes it).
const RATE_INTERVAL: &str = "20s";

/// The datasource uid the dashboard's panels must name (the provisioned one).
const DATASOURCE_UID: &str = "allockit-prometheus";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("loadgen/ sits in the repository").to_owned()
}

/// `target/test-artifacts/`, beside the other build outputs (ignored by git).
fn artifacts_dir() -> PathBuf {
    let directory = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target directory")
        .join("test-artifacts");
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

/// A child process that is killed and reaped when the guard drops, so a failing test
/// leaves nothing running.
struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `program`, failing the test with a hint when it is not installed.
fn spawn(command: &mut Command, program: &str) -> Child {
    command.spawn().unwrap_or_else(|error| {
        panic!("cannot run {program} ({error}): scripts/install-deps installs it from Debian packages")
    })
}

/// Runs `command` to completion, killing it after `limit`.
fn run_with_deadline(mut command: Command, program: &str, limit: Duration) -> Output {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn(&mut command, program);
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// Starts an allockit server on ephemeral loopback ports, one worker, with `extra` flags.
fn start_server(extra: &[&str]) -> ServerHandle {
    let mut args =
        vec!["allockit-server", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--workers", "1"];
    args.extend_from_slice(extra);
    allockit_server::start(Config::parse_from(args)).expect("the server starts")
}

/// Starts the loadgen binary against `server` with its own metrics on an ephemeral port;
/// returns the process and that port's address.
fn start_loadgen(server: SocketAddr) -> (Running, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loadgen"));
    command
        .args(["--rps", "40", "--duration", "10m", "--connections", "4", "--threads", "1", "--quiet"])
        .args(["--users", "2000", "--metrics-addr", "127.0.0.1:0"])
        .arg(format!("http://{server}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut command, "loadgen");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        let read = stderr.read_line(&mut line).unwrap();
        assert!(read > 0, "loadgen exited before serving its metrics");
        if let Some(rest) = line.trim().strip_prefix("loadgen: own metrics on http://") {
            break rest.trim_end_matches("/metrics").parse().unwrap();
        }
    };
    // Keep reading so that loadgen never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (Running { child }, addr)
}

/// A free loopback port (the listener is closed again for the child to bind it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.0 GET; returns the status and the body.
fn http_get(addr: SocketAddr, path_and_query: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(stream, "GET {path_and_query} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// Percent-encodes a query-string value.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Polls `check` every 250 ms until it returns `Some`, failing with `what` at the deadline.
fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A running Prometheus on a loopback port, with its data in a scratch directory.
struct Prometheus {
    addr: SocketAddr,
    log: PathBuf,
    _process: Running,
}

impl Prometheus {
    fn start(config: &Path, directory: &Path) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = directory.join("prometheus.log");
        let output = File::create(&log).unwrap();
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", directory.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output);
        let process = Running { child: spawn(&mut command, "prometheus") };
        let prometheus = Self { addr, log, _process: process };
        let what = format!("Prometheus to be ready on {addr} (its log: {})", prometheus.log.display());
        wait_for(&what, Duration::from_secs(60), || {
            http_get(addr, "/-/ready").ok().filter(|(status, _)| *status == 200)
        });
        prometheus
    }

    /// An instant query through the HTTP API: the result vector.
    fn query(&self, promql: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let (status, body) = http_get(self.addr, &path).unwrap();
        let reply: Value = serde_json::from_str(&body)
            .unwrap_or_else(|error| panic!("Prometheus answered {status} with non-JSON ({error}): {body}"));
        assert_eq!(reply["status"], "success", "query {promql}: {reply}");
        assert_eq!(reply["data"]["resultType"], "vector", "query {promql}: {reply}");
        reply["data"]["result"].as_array().unwrap().clone()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

/// The numeric value of an instant-vector sample.
fn sample_value(sample: &Value) -> f64 {
    sample["value"][1].as_str().and_then(|text| text.parse().ok()).unwrap_or(f64::NAN)
}

/// The `{{label}}` names a legend format refers to.
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}").map(|(label, _)| label.trim().to_owned()))
        .collect()
}

/// One query of one panel of the dashboard.
struct PanelQuery {
    panel: String,
    expr: String,
    legend: String,
}

/// Every panel (rows' nested panels included) of the dashboard.
fn dashboard_panels(dashboard: &Value) -> Vec<Value> {
    let mut panels = Vec::new();
    for panel in dashboard["panels"].as_array().expect("the dashboard has panels") {
        panels.extend(panel["panels"].as_array().into_iter().flatten().cloned());
        panels.push(panel.clone());
    }
    panels
}

/// Every target expression of every panel of the dashboard.
fn dashboard_queries(dashboard: &Value) -> Vec<PanelQuery> {
    let mut queries = Vec::new();
    for panel in dashboard_panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(PanelQuery {
                panel: panel["title"].as_str().unwrap_or("?").to_owned(),
                expr: target["expr"].as_str().expect("every target has a PromQL expr").to_owned(),
                legend: target["legendFormat"].as_str().unwrap_or("").to_owned(),
            });
        }
    }
    queries
}

/// A dashboard expression as Grafana would send it for one value of `$server`.
fn substitute(expr: &str, server: &str) -> String {
    let promql = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$server", server);
    assert!(!promql.contains('$'), "a template variable the test does not know in {expr}");
    promql
}

fn load_dashboard() -> Value {
    let path = repo_root().join("dashboards/grafana/allockit.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Runs `promtool check metrics` on an exposition; returns its findings (empty when clean).
fn promtool_findings(exposition: &str) -> String {
    let mut command = Command::new("promtool");
    command.args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn(&mut command, "promtool");
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let findings =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        findings.trim().to_owned()
    } else {
        format!("{}: {findings}", output.status)
    }
}

fn promtool_check_config(config: &Path) {
    let mut command = Command::new("promtool");
    command.arg("check").arg("config").arg(config);
    let output = run_with_deadline(command, "promtool", Duration::from_secs(60));
    assert!(
        output.status.success(),
        "promtool check config {}: {}{}",
        config.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `dashboards/prometheus.yml` with each compose target replaced by a live address; every
/// compose target must be replaced exactly once, so a change to the file that the test
/// does not follow fails here.
fn derive_prometheus_config(replacements: &[(&str, SocketAddr)]) -> String {
    let mut config = std::fs::read_to_string(repo_root().join("dashboards/prometheus.yml")).unwrap();
    for (compose_target, live) in replacements {
        let quoted = format!("\"{compose_target}\"");
        assert_eq!(config.matches(&quoted).count(), 1, "dashboards/prometheus.yml targets {quoted} once");
        config = config.replace(&quoted, &format!("\"{live}\""));
    }
    config
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus_scraping_live_processes() {
    let segregated = start_server(&[]);
    let broken = start_server(&["--break-lifetimes"]);
    let (_loadgen_segregated, loadgen_segregated_addr) = start_loadgen(segregated.addr);
    let (_loadgen_broken, loadgen_broken_addr) = start_loadgen(broken.addr);

    let directory = scratch_dir("observability-prometheus");
    let config = directory.join("prometheus.yml");
    std::fs::write(
        &config,
        derive_prometheus_config(&[
            ("server:8080", segregated.addr),
            ("server-broken:8080", broken.addr),
            ("loadgen-segregated:9100", loadgen_segregated_addr),
            ("loadgen-broken:9100", loadgen_broken_addr),
        ]),
    )
    .unwrap();
    promtool_check_config(&repo_root().join("dashboards/prometheus.yml"));
    promtool_check_config(&config);

    for (what, addr) in [
        ("the segregated server", segregated.addr),
        ("the broken server", broken.addr),
        ("loadgen", loadgen_segregated_addr),
    ] {
        let (status, exposition) = http_get(addr, "/metrics").unwrap();
        assert_eq!(status, 200, "{what}'s /metrics");
        let findings = promtool_findings(&exposition);
        assert!(findings.is_empty(), "promtool check metrics on {what}'s /metrics: {findings}");
    }

    let prometheus = Prometheus::start(&config, &directory);
    // Every target up, with enough scrapes behind it for rates over RATE_INTERVAL.
    wait_for("five scrapes of each of the four targets", Duration::from_secs(120), || {
        let scrapes = prometheus.query("sum_over_time(up[1m])");
        let ready = scrapes.iter().filter(|sample| sample_value(sample) >= 5.0).count();
        (scrapes.len() == 4 && ready == 4).then_some(())
    });

    let dashboard = load_dashboard();
    let variable = &dashboard["templating"]["list"][0];
    assert_eq!(variable["name"], "server");
    assert_eq!(variable["query"]["query"], "label_values(allockit_lifetime_mode, server)");
    let labelled: BTreeSet<String> = prometheus
        .query("count by (server) (allockit_lifetime_mode)")
        .iter()
        .map(|sample| sample["metric"]["server"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(labelled, SERVERS.iter().map(|s| s.to_string()).collect(), "the $server variable's values");

    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 20, "the dashboard lost panels: {} queries", queries.len());
    let mut problems = Vec::new();
    for query in &queries {
        for server in SERVERS {
            let promql = substitute(&query.expr, server);
            let samples = prometheus.query(&promql);
            if !samples.iter().any(|sample| sample_value(sample).is_finite()) {
                problems.push(format!("[{}] no finite sample: {promql} -> {samples:?}", query.panel));
            }
            for label in legend_labels(&query.legend) {
                if !samples.iter().all(|sample| sample["metric"][&label].is_string()) {
                    problems.push(format!("[{}] legend label {label} not in: {promql}", query.panel));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems with the dashboard's queries:\n{}\nPrometheus log:\n{}",
        problems.len(),
        problems.join("\n"),
        prometheus.log_tail()
    );

    // The lifetime-mode panel encodes the mode as a number its value mappings name.
    let mode_panel = dashboard_panels(&dashboard)
        .into_iter()
        .find(|panel| panel["title"] == "Lifetime mode")
        .expect("the dashboard has a Lifetime mode panel");
    let mappings = &mode_panel["fieldConfig"]["defaults"]["mappings"][0]["options"];
    let modes: BTreeMap<String, f64> = prometheus
        .query(&substitute(mode_panel["targets"][0]["expr"].as_str().unwrap(), &SERVERS.join("|")))
        .iter()
        .map(|sample| (sample["metric"]["server"].as_str().unwrap().to_owned(), sample_value(sample)))
        .collect();
    for (server, mode) in [("server", "segregated"), ("server-broken", "broken")] {
        let value = modes[server];
        assert_eq!(mappings[format!("{value}")]["text"], mode, "{server} shows {value} -> {mappings}");
    }

    drop(prometheus);
    segregated.shutdown();
    broken.shutdown();
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn every_panel_names_the_provisioned_datasource() {
    let provisioning = std::fs::read_to_string(
        repo_root().join("dashboards/grafana/provisioning/datasources/prometheus.yml"),
    )
    .unwrap();
    assert!(provisioning.contains(&format!("uid: {DATASOURCE_UID}")), "{provisioning}");
    let dashboard = load_dashboard();
    for panel in dashboard_panels(&dashboard).iter().filter(|panel| panel["type"] != "row") {
        assert_eq!(panel["datasource"]["uid"], DATASOURCE_UID, "panel {}", panel["title"]);
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["datasource"]["uid"], DATASOURCE_UID, "panel {}", panel["title"]);
        }
    }
}

#[test]
fn the_compose_file_is_valid_and_wires_prometheus_and_grafana_to_the_repository() {
    let mut command = Command::new("docker-compose");
    command.current_dir(repo_root()).args(["--file", "docker-compose.yml", "config", "--services"]);
    let output = run_with_deadline(command, "docker-compose", Duration::from_secs(60));
    assert!(output.status.success(), "docker-compose config: {}", String::from_utf8_lossy(&output.stderr));
    let services: BTreeSet<String> =
        String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
    for service in ["server", "server-broken", "prometheus", "grafana"] {
        assert!(services.contains(service), "no {service} service in {services:?}");
    }

    // Prometheus scrapes compose services by name.
    let prometheus = std::fs::read_to_string(repo_root().join("dashboards/prometheus.yml")).unwrap();
    let hosts: BTreeSet<&str> = prometheus
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- targets: [\""))
        .filter_map(|rest| rest.split_once(':').map(|(host, _)| host))
        .collect();
    assert_eq!(hosts.len(), 4, "four scrape targets in dashboards/prometheus.yml: {hosts:?}");
    for host in hosts {
        assert!(services.contains(host), "Prometheus scrapes {host}, which is no compose service");
    }

    // Grafana's home dashboard is the repository's dashboard, mounted where the variable says.
    let compose = std::fs::read_to_string(repo_root().join("docker-compose.yml")).unwrap();
    let home = compose
        .lines()
        .find_map(|line| line.trim().strip_prefix("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH:"))
        .expect("Grafana has a home dashboard")
        .trim();
    let mount = compose
        .lines()
        .find_map(|line| {
            line.trim().strip_prefix("- ./").and_then(|m| m.strip_suffix(&format!(":{home}:ro")))
        })
        .expect("the home dashboard is mounted from the repository");
    assert_eq!(mount, "dashboards/grafana/allockit.json");
}

/// The `data-points` attribute of the canvas `id` in a dumped DOM.
fn canvas_points(dom: &str, id: &str) -> u64 {
    let start = dom.find(&format!("<canvas id=\"{id}\"")).unwrap_or_else(|| panic!("no canvas {id}"));
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    let value = tag.split("data-points=\"").nth(1).and_then(|rest| rest.split('"').next());
    value
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("canvas {id} has no data-points: {tag}"))
}

/// The text of the element with `id` in a dumped DOM.
fn element_text<'d>(dom: &'d str, id: &str) -> &'d str {
    let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no element {id}"));
    let after = &dom[start..];
    let text = &after[after.find('>').unwrap() + 1..];
    &text[..text.find('<').unwrap()]
}

/// The legend values of a dumped DOM: each `data-last` element's text, by metric key (the
/// page's markup only, not its script).
fn legend_values(dom: &str) -> Vec<(String, String)> {
    let markup = &dom[..dom.find("<script").expect("the page has its script")];
    markup
        .split("<b data-last=\"")
        .skip(1)
        .map(|rest| {
            let (key, after) = rest.split_once('"').unwrap();
            let text = &after[after.find('>').unwrap() + 1..];
            (key.replace("&quot;", "\""), text[..text.find('<').unwrap()].to_owned())
        })
        .collect()
}

/// Headless Chromium on `url` with a fresh profile, `budget_ms` of virtual time (the page's
/// one-second timer fires that many times over, however slow the machine) and `extra` flags.
fn chromium(url: &str, budget_ms: u32, extra: &[String], profile: &Path) -> Output {
    let mut command = Command::new("chromium");
    command
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic"])
        .args(["--no-first-run", "--disable-background-networking", "--disable-component-update"])
        .arg("--disable-sync")
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url);
    let output = run_with_deadline(command, "chromium", Duration::from_secs(180));
    assert!(output.status.success(), "chromium: {}", String::from_utf8_lossy(&output.stderr));
    output
}

#[test]
fn the_live_page_charts_samples_shows_the_mode_and_leaves_a_screenshot() {
    let server = start_server(&["--break-lifetimes"]);
    let (_loadgen, _) = start_loadgen(server.addr);
    let url = format!("http://{}/", server.addr);
    let directory = scratch_dir("observability-chromium");
    let dump = |budget_ms, profile: &str| {
        let output = chromium(&url, budget_ms, &["--dump-dom".into()], &directory.join(profile));
        String::from_utf8(output.stdout).unwrap()
    };

    let early = dump(3_000, "early");
    let later = dump(10_000, "later");
    for canvas in ["memory", "arena", "chunks"] {
        let (before, after) = (canvas_points(&early, canvas), canvas_points(&later, canvas));
        assert!(before >= 2 && after > before, "canvas {canvas}: {before} then {after} data points");
    }
    assert_eq!(element_text(&later, "mode"), "broken");
    assert!(element_text(&later, "status").starts_with("last sample"), "{}", element_text(&later, "status"));
    let legend = legend_values(&later);
    assert_eq!(legend.len(), 8, "{legend:?}");
    for (metric, value) in &legend {
        assert!(value.parse::<f64>().is_ok(), "the legend shows {value:?} for {metric}");
    }
    assert!(legend.iter().any(|(metric, _)| *metric == format!(r#"{ARENA_CHUNKS}{{state="pinned"}}"#)));

    let screenshot = artifacts_dir().join("live-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let flags = [format!("--screenshot={}", screenshot.display()), "--window-size=1280,900".into()];
    chromium(&url, 30_000, &flags, &directory.join("screenshot"));
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "the screenshot is a PNG");

    server.shutdown();
    std::fs::remove_dir_all(&directory).unwrap();
}
