"""bench.env on a faked machine tree (a Jetson with thermal zones and clocks, cgroups v1 and
v2) and on this machine; the fingerprint ``bench compare`` checks."""

from __future__ import annotations

from pathlib import Path

from bench import env


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_jetson_thermal_clocks_and_throttling_are_read(tmp_path: Path) -> None:
    _write(tmp_path, "etc/nv_tegra_release", "# R36 (release), REVISION: 3.0, GCID: 1\n")
    _write(tmp_path, "proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
    _write(tmp_path, "sys/class/thermal/thermal_zone0/type", "cpu-thermal\n")
    _write(tmp_path, "sys/class/thermal/thermal_zone0/temp", "47500\n")
    _write(tmp_path, "sys/class/thermal/thermal_zone1/type", "cpu-thermal\n")
    _write(tmp_path, "sys/class/thermal/thermal_zone1/temp", "48000\n")
    _write(tmp_path, "sys/class/devfreq/17000000.gpu/cur_freq", "624750000\n")
    _write(tmp_path, "sys/class/hwmon/hwmon3/oc1_event_cnt", "2\n")
    _write(tmp_path, "sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count", "1\n")
    _write(tmp_path, "sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count", "3\n")
    _write(tmp_path, "sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "1510400\n")
    _write(tmp_path, "sys/devices/system/cpu/cpu10/cpufreq/scaling_cur_freq", "729600\n")
    _write(tmp_path, "sys/devices/system/cpu/cpu2/cpufreq/scaling_cur_freq", "1984000\n")
    assert env.thermal(tmp_path) == {"cpu-thermal": 47.5, "cpu-thermal#2": 48.0}
    assert env.throttling(tmp_path) == {"core_throttle_count": 4, "hwmon3/oc1_event_cnt": 2}
    power = env.jetson_power(tmp_path)
    assert power == {"nvpmodel": None, "clocks_hz": {"17000000.gpu": 624750000}}
    assert env.cpu_info(tmp_path)["cur_freq_mhz"] == [1510, 1984, 730]  # numeric core order
    assert env.parse_nvpmodel("NV Power Mode: 15W\n1\n") == {"name": "15W", "id": 1}


def test_absent_is_none(tmp_path: Path) -> None:
    assert env.thermal(tmp_path) is None
    assert env.throttling(tmp_path) is None
    assert env.jetson_power(tmp_path) is None
    assert env.cuda_toolkit(tmp_path) is None
    assert env.cgroup_limits(tmp_path)["version"] is None


def test_cgroup_v2_and_v1_limits(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    _write(v2, "sys/fs/cgroup/cpu.max", "150000 100000\n")
    _write(v2, "sys/fs/cgroup/memory.max", "1073741824\n")
    assert env.cgroup_limits(v2) == {
        "cpu_quota_cores": 1.5,
        "memory_limit_bytes": 1073741824,
        "version": 2,
    }
    _write(v2, "sys/fs/cgroup/cpu.max", "max 100000\n")
    _write(v2, "sys/fs/cgroup/memory.max", "max\n")
    assert env.cgroup_limits(v2)["cpu_quota_cores"] is None
    assert env.cgroup_limits(v2)["memory_limit_bytes"] is None
    v1 = tmp_path / "v1"
    _write(v1, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "200000\n")
    _write(v1, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    _write(v1, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    assert env.cgroup_limits(v1) == {
        "cpu_quota_cores": 2.0,
        "memory_limit_bytes": None,  # v1's "no limit"
        "version": 1,
    }


def test_cuda_toolkit_version(tmp_path: Path) -> None:
    _write(tmp_path, "usr/local/cuda/version.json", '{"cuda": {"version": "12.6.68"}}')
    assert env.cuda_toolkit(tmp_path) == "12.6.68"


def test_capture_here_has_every_block(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really a model")
    captured = env.capture(model)
    for key in (
        "cpu",
        "memory_bytes",
        "cgroup",
        "device",
        "cuda_toolkit",
        "jetson_power",
        "temperatures_c",
        "throttling",
        "libraries",
        "git_commit",
        "git_dirty",
    ):
        assert key in captured, key
    assert captured["cpu"]["logical_cores"] >= 1
    assert captured["model"]["sha256"] == env.file_sha256(model)
    assert captured["model"]["bytes"] == 18
    assert "mlcommons-loadgen" in captured["libraries"]
    fingerprint = env.machine_fingerprint(captured)
    assert fingerprint["cpu_model"] == captured["cpu"]["model"]
    assert "host" not in fingerprint  # CI's VMs change names
