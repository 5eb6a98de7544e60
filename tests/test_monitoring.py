"""deploy/monitoring: alert rules checked and unit-tested by promtool, the example Prometheus
config checked, and the Grafana dashboards held to provisioning form, parsed by promtool, and
checked mechanically to name only metrics edgeloop really exposes."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench.micro.metrics import _pipeline_families
from bench.publish import summary_registry
from core.cloud import CloudBatchConfig, CloudSyncConfig
from core.cloud.sync import CloudSync
from core.errors import CloudSyncError, MqttConnectionError
from core.metrics import MetricsRegistry
from core.metrics.collect import Sampler
from core.metrics.config import MetricsConfig, Targets
from core.metrics.exporter import exposition
from core.metrics.gpu import read_gpus, record_gpus
from core.metrics.hardware import HardwareCollector
from core.metrics.jetson import parse_tegrastats, record_tegra
from core.metrics.service import build_collectors, record_info
from core.mqtt import BatchConfig, MqttConfig
from core.mqtt.publisher import MqttPublisher
from core.outbox import Entry, Outbox, OutboxConfig
from deploy.monitoring import dashboards
from tests.mqtt_broker import FAKE_AWS_ENV, Mosquitto, MotoServer
from tests.required_tools import require
from tests.test_bench_publish import REPORT
from tests.test_cloud_sync import BUCKET, TABLE, create_store
from tests.test_metrics_collectors import XAVIER_NX, RecordedNvml, sysfs
from tests.test_mqtt import wait_until

MONITORING = Path(__file__).resolve().parent.parent / "deploy" / "monitoring"
PROMETHEUS = MONITORING / "prometheus"
RULES = PROMETHEUS / "edgeloop.rules.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    return require("promtool")


def _run(*argv: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=cwd)


def test_rules_check(promtool: str) -> None:
    out = _run(promtool, "check", "rules", RULES.name)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 13 rules found" in out.stdout


def test_rules_unit_tests(promtool: str) -> None:
    out = _run(promtool, "test", "rules", "edgeloop.rules.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_example_prometheus_config(promtool: str) -> None:
    out = _run(promtool, "check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_rule_has_a_test() -> None:
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    tests = yaml.safe_load((PROMETHEUS / "edgeloop.rules.test.yml").read_text())["tests"]
    tested = {t["alertname"] for case in tests for t in case.get("alert_rule_test", [])}
    assert {r["alert"] for r in rules} == tested


def test_dashboards_are_what_the_generator_writes() -> None:
    for path, text in dashboards.files():
        assert path.read_text() == text, f"{path.name}: run python -m deploy.monitoring.dashboards"


def test_the_generator_checks_writes_and_reports_as_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dashboards, "FOLDER", tmp_path)
    assert dashboards.main(["--check"]) == 1  # nothing written yet: every file differs
    assert not list(tmp_path.iterdir())
    capsys.readouterr()
    assert dashboards.main(["--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert set(written.values()) == {"written"} and len(written) == len(dashboards.DASHBOARDS)
    assert dashboards.main(["--check", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out).values()) == {"unchanged"}


def _walk(node: object) -> Iterator[tuple[str, object]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_dashboards_are_provisioning_json() -> None:
    paths = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
    assert [p.stem for p in paths] == ["bench", "device", "fleet", "models"]
    uids = set()
    for path in paths:
        text = path.read_text()
        board = json.loads(text)
        assert board["id"] is None and board["uid"].startswith("edgeloop-")
        assert "${DS_" not in text and "__inputs" not in board
        uids.add(board["uid"])
        sources = [v for k, v in _walk(board) if k == "datasource"]
        assert sources and all(s == dashboards.DATASOURCE for s in sources), path.name
        for panel in board["panels"]:
            assert panel["description"] and panel["targets"], panel["title"]
    assert len(uids) == len(paths)
    provisioned = yaml.safe_load(
        (MONITORING / "grafana/provisioning/datasources/edgeloop.yml").read_text()
    )
    assert provisioned["datasources"][0]["uid"] == dashboards.DATASOURCE["uid"]


def _substituted(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m").replace("$device", ".*")


def test_every_dashboard_expression_parses(promtool: str, tmp_path: Path) -> None:
    """Each panel query as a recording rule: promtool parses every expression."""
    rules = [
        {"record": f"edgeloop_dashboard_check_{i}", "expr": _substituted(expr)}
        for i, (_, _, expr) in enumerate(dashboards.expressions())
    ]
    path = tmp_path / "panels.rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "panels", "rules": rules}]}))
    out = _run(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACES = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_NAMES = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (strings, label matchers, ranges, grouping
    clauses and function names removed).

    >>> sorted(metric_names('sum by (device) (rate(edgeloop_frames_total{a="x"}[5m])) > 2'))
    ['edgeloop_frames_total']
    """
    text = _STRINGS.sub('""', expr)
    text = _BRACES.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    return {n for n in _NAMES.findall(text) if n.lower() not in _KEYWORDS}


def _messaging_families(registry: MetricsRegistry, folder: Path) -> None:
    """The broker and spool families as the real publisher and outbox record them: records
    spooled and drained to a real mosquitto, a publish refused while disconnected."""
    outbox = Outbox(OutboxConfig(path=folder / "outbox.db", sync="normal"), registry)
    try:
        outbox.put_many([Entry("0", b'{"n":%d}' % i) for i in range(10)])
        with Mosquitto(folder / "broker") as broker:
            config = MqttConfig(
                thing="cam-01",
                host="127.0.0.1",
                port=broker.plain,
                transport="tcp",
                batch=BatchConfig(max_delay_s=0.01),
                poll_s=0.01,
            )
            publisher = MqttPublisher(config, outbox, registry=registry)
            with pytest.raises(MqttConnectionError):
                publisher.publish(config.topic("health"), b"{}")  # not started: counted
            publisher.start()
            try:
                assert wait_until(lambda: outbox.depth() == 0), publisher.last_error
            finally:
                publisher.stop()
    finally:
        outbox.close()


def _cloud_families(registry: MetricsRegistry, folder: Path) -> None:
    """The cloud sync families as the real sync records them: a batch stored in moto's S3 and
    indexed in its DynamoDB, then an upload refused with the server gone (a failure by stage)."""
    with (
        pytest.MonkeyPatch.context() as env,
        Outbox(OutboxConfig(path=folder / "cloud.db", sync="normal")) as outbox,
    ):
        for name, value in FAKE_AWS_ENV.items():
            env.setenv(name, value)
        server = MotoServer()
        server.start()
        try:
            create_store(server.url)
            config = CloudSyncConfig(
                thing="cam-01",
                bucket=BUCKET,
                table=TABLE,
                endpoint_url=server.url,
                batch=CloudBatchConfig(max_records=1),
                timeout_s=2.0,
            )
            sync = CloudSync(config, outbox, registry=registry, seed=1)
            outbox.put_many([Entry("cam0", b'{"i":%d}' % i, channels=("s3",)) for i in range(2)])
            sync.sync_once()
            assert outbox.depth("s3") == 1
        finally:
            server.stop()
        with pytest.raises(CloudSyncError):
            sync.sync_once()


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every series name edgeloop exposes, from a registry with every collector filled (the
    absent ones fed from recorded outputs) and a bench summary."""
    root = tmp_path_factory.mktemp("sysfs")
    sysfs(root)
    registry = MetricsRegistry()
    config = MetricsConfig(targets=Targets(fps=5, p99_latency_s=0.1))
    record_info(registry, config)
    _pipeline_families(registry)
    Sampler(registry, build_collectors(config, registry)).sample_once()
    clock = iter(range(100))
    hardware = HardwareCollector(
        registry,
        data_path=root,
        rss_window_s=10,
        sys_root=root,
        clock=lambda: float(next(clock)),
        swap=True,  # this VM has none: the swap families as a device with swap has them
    )
    for _ in range(7):
        hardware.sample()
    _messaging_families(registry, tmp_path_factory.mktemp("messaging"))
    _cloud_families(registry, tmp_path_factory.mktemp("cloud"))
    record_gpus(registry, read_gpus(RecordedNvml()))
    record_tegra(registry, parse_tegrastats(XAVIER_NX))
    texts = [exposition(registry).decode(), generate_latest(summary_registry(REPORT)).decode()]
    return {
        sample.name
        for text in texts
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_dashboards_and_rules_name_only_exposed_metrics(exposed: set[str]) -> None:
    queries = [(f"{uid}: {title}", expr) for uid, title, expr in dashboards.expressions()]
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    queries += [(f"rule {r['alert']}", r["expr"]) for r in rules]
    unknown = {
        where: sorted(metric_names(expr) - exposed)
        for where, expr in queries
        if metric_names(expr) - exposed
    }
    assert not unknown
    named = set().union(*(metric_names(expr) for _, expr in queries))
    assert len(named) > 50  # the check saw the queries, not an empty parse
