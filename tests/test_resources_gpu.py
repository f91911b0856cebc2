"""GPU readers: NVML mocked at the pynvml function level, and simulated cards.

There is no GPU on the machines these tests run on, so NVML's behaviour
(missing library, driver not loaded, no devices, per-call errors, devices
appearing later) is reproduced by replacing pynvml's functions.
"""

from __future__ import annotations

import ctypes.util
import logging
import sys
from types import SimpleNamespace

import pynvml
import pytest

from weft.errors import InvalidSpec
from weft.resources import GpuDevice, NvmlReader, SimulatedReader, make_gpu_reader

MIB = 1024 * 1024


def nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)


class FakeNvml:
    """Stands in for the NVML library behind pynvml's public functions."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.init_error: BaseException | None = None
        self.devices: list[dict] = []
        self.fail: dict[tuple[str, int], int] = {}  # (function, device) -> NVML error code
        self.calls: list[str] = []
        for name in (
            "nvmlInit",
            "nvmlShutdown",
            "nvmlDeviceGetCount",
            "nvmlDeviceGetHandleByIndex",
            "nvmlDeviceGetMemoryInfo",
            "nvmlDeviceGetUUID",
            "nvmlDeviceGetName",
            "nvmlDeviceGetUtilizationRates",
            "nvmlDeviceGetComputeRunningProcesses",
            "nvmlDeviceGetGraphicsRunningProcesses",
        ):
            monkeypatch.setattr(pynvml, name, self._wrap(name))

    def _wrap(self, name: str):
        impl = getattr(self, "_" + name)

        def call(*args):
            self.calls.append(name)
            handle = args[0] if args else None
            code = self.fail.get((name, handle if isinstance(handle, int) else -1))
            if code is not None:
                raise nvml_error(code)
            return impl(*args)

        return call

    def add(self, name, total_mb, used_mb, util=50, compute=(), graphics=()):
        self.devices.append(
            dict(
                name=name,
                total=total_mb,
                used=used_mb,
                util=util,
                compute=compute,
                graphics=graphics,
            )
        )

    def _nvmlInit(self):
        if self.init_error is not None:
            raise self.init_error

    def _nvmlShutdown(self):
        pass

    def _nvmlDeviceGetCount(self):
        return len(self.devices)

    def _nvmlDeviceGetHandleByIndex(self, index):
        return index

    def _nvmlDeviceGetMemoryInfo(self, h):
        d = self.devices[h]
        return SimpleNamespace(
            total=d["total"] * MIB, used=d["used"] * MIB, free=(d["total"] - d["used"]) * MIB
        )

    def _nvmlDeviceGetUUID(self, h):
        return f"GPU-fake-{h}"

    def _nvmlDeviceGetName(self, h):
        return self.devices[h]["name"].encode()  # older pynvml returns bytes

    def _nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=self.devices[h]["util"], memory=0)

    @staticmethod
    def _procs(pairs):
        return [
            SimpleNamespace(pid=pid, usedGpuMemory=None if mb is None else mb * MIB)
            for pid, mb in pairs
        ]

    def _nvmlDeviceGetComputeRunningProcesses(self, h):
        return self._procs(self.devices[h]["compute"])

    def _nvmlDeviceGetGraphicsRunningProcesses(self, h):
        return self._procs(self.devices[h]["graphics"])


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def fake(monkeypatch):
    return FakeNvml(monkeypatch)


@pytest.fixture
def clock():
    return Clock()


def warnings_of(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "weft.resources" and r.levelno == logging.WARNING
    ]


@pytest.mark.parametrize(
    "error, words",
    [
        (nvml_error(pynvml.NVML_ERROR_DRIVER_NOT_LOADED), "driver not loaded"),
        (nvml_error(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND), "library (libnvidia-ml) not found"),
        (nvml_error(pynvml.NVML_ERROR_NO_PERMISSION), "NVML init failed"),
        (OSError("libnvidia-ml.so.1: cannot open"), "NVML init failed"),
    ],
)
def test_init_failure_means_zero_gpus_with_one_warning(fake, clock, caplog, error, words):
    fake.init_error = error
    reader = NvmlReader(clock=clock)
    with caplog.at_level(logging.INFO, logger="weft.resources"):
        for _ in range(5):
            assert reader.devices() == []
        clock.t += 61
        assert reader.devices() == []
    assert fake.calls.count("nvmlInit") == 2  # once, then once more after the retry interval
    (line,) = warnings_of(caplog)
    assert words in line and "zero GPUs" in line and "\n" not in line


def test_missing_pynvml_module_means_zero_gpus(monkeypatch, clock, caplog):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with caplog.at_level(logging.WARNING, logger="weft.resources"):
        assert NvmlReader(clock=clock).devices() == []
    assert warnings_of(caplog) == [
        "no GPUs: nvidia-ml-py (pynvml) is not installed; scheduling with zero GPUs"
        " (retrying every 60s)"
    ]


def test_zero_devices_shuts_down_so_a_retry_re_enumerates(fake, clock, caplog):
    reader = NvmlReader(clock=clock)
    with caplog.at_level(logging.WARNING, logger="weft.resources"):
        assert reader.devices() == []
    assert fake.calls == ["nvmlInit", "nvmlDeviceGetCount", "nvmlShutdown"]
    assert len(warnings_of(caplog)) == 1 and "no devices" in warnings_of(caplog)[0]


def test_two_devices_are_read_in_full(fake, clock):
    fake.add("NVIDIA A100", 40960, 1000, util=37, compute=[(200, 700), (100, None)])
    fake.add("NVIDIA T4", 15360, 300, util=0, compute=[(300, 250)], graphics=[(300, 250), (5, 40)])
    reader = NvmlReader(clock=clock)
    assert reader.source == "nvml"
    assert reader.devices() == [
        GpuDevice(0, "GPU-fake-0", "NVIDIA A100", 40960, 1000, 39960, 37.0, ((100, 0), (200, 700))),
        GpuDevice(1, "GPU-fake-1", "NVIDIA T4", 15360, 300, 15060, 0.0, ((5, 40), (300, 250))),
    ]
    reader.devices()
    assert fake.calls.count("nvmlInit") == 1  # initialised once, not per call


def test_per_call_errors_degrade_fields_not_the_reader(fake, clock):
    fake.add("A", 8192, 0, compute=[(1, 10)], graphics=[(2, 20)])
    fake.add("B", 8192, 0)
    fake.add("C", 4096, 0)
    fake.fail[("nvmlDeviceGetUtilizationRates", 0)] = pynvml.NVML_ERROR_NOT_SUPPORTED
    fake.fail[("nvmlDeviceGetGraphicsRunningProcesses", 0)] = pynvml.NVML_ERROR_NOT_SUPPORTED
    fake.fail[("nvmlDeviceGetUUID", 0)] = pynvml.NVML_ERROR_UNKNOWN
    fake.fail[("nvmlDeviceGetMemoryInfo", 1)] = pynvml.NVML_ERROR_GPU_IS_LOST
    fake.fail[("nvmlDeviceGetName", 2)] = pynvml.NVML_ERROR_NOT_SUPPORTED
    devices = NvmlReader(clock=clock).devices()
    assert [d.index for d in devices] == [0, 2]  # the card whose memory is unreadable is skipped
    first, third = devices
    assert first.utilization_pct is None
    assert first.processes == ((1, 10),)
    assert first.uuid == "GPU-unknown-0" and first.name == "A"
    assert third.name == "unknown NVIDIA GPU" and third.memory_total_mb == 4096


def test_device_appears_after_driver_loads(fake, clock, caplog):
    fake.init_error = nvml_error(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    reader = NvmlReader(clock=clock, retry_interval=60)
    with caplog.at_level(logging.INFO, logger="weft.resources"):
        assert reader.devices() == []
        fake.init_error = None
        fake.add("NVIDIA L4", 23034, 0)
        clock.t += 30
        assert reader.devices() == []  # rate-limited: no retry yet
        clock.t += 31
        assert [d.name for d in reader.devices()] == ["NVIDIA L4"]
    assert any("NVML ready" in r.getMessage() for r in caplog.records)


def test_device_appears_after_zero_at_first_init(fake, clock):
    reader = NvmlReader(clock=clock)
    assert reader.devices() == []
    fake.add("NVIDIA L4", 23034, 0)
    assert reader.devices() == []
    clock.t += 60
    assert len(reader.devices()) == 1


def test_losing_nvml_after_init_gives_zero_gpus_then_recovers(fake, clock, caplog):
    fake.add("A", 8192, 0)
    reader = NvmlReader(clock=clock)
    assert len(reader.devices()) == 1
    fake.fail[("nvmlDeviceGetCount", -1)] = pynvml.NVML_ERROR_UNINITIALIZED
    with caplog.at_level(logging.WARNING, logger="weft.resources"):
        assert reader.devices() == []
        assert reader.devices() == []
    assert len(warnings_of(caplog)) == 1
    del fake.fail[("nvmlDeviceGetCount", -1)]
    clock.t += 60
    assert len(reader.devices()) == 1


def test_real_reader_on_this_machine_does_not_raise():
    devices = NvmlReader().devices()
    assert isinstance(devices, list)
    if ctypes.util.find_library("nvidia-ml") is None:
        assert devices == []


# ---------------------------------------------------------------- simulated cards


def test_simulated_reader_parses_the_documented_example():
    reader = SimulatedReader('[{"name": "Sim RTX 4060", "memory_mb": 8192}]')
    assert reader.source == "simulated"
    assert reader.devices() == [
        GpuDevice(0, "GPU-SIM-0000", "Sim RTX 4060", 8192, 0, 8192, 0.0, ())
    ]


def test_simulated_reader_optional_keys_and_indexes():
    reader = SimulatedReader(
        '[{"memory_mb": 4096, "uuid": "u-1", "used_mb": 1000, "utilization_pct": 12.5},'
        ' {"name": "second", "memory_mb": 2048}]'
    )
    first, second = reader.devices()
    assert first == GpuDevice(0, "u-1", "Simulated GPU 0", 4096, 1000, 3096, 12.5, ())
    assert (second.index, second.name, second.memory_used_mb) == (1, "second", 0)
    assert SimulatedReader("[]").devices() == []


@pytest.mark.parametrize(
    "spec, words",
    [
        ("not json", "not JSON"),
        ('{"name": "x", "memory_mb": 1}', "expected a JSON list"),
        ("[1]", "device 0 must be an object"),
        ('[{"name": "x"}]', "memory_mb is required"),
        ('[{"memory_mb": 0}]', "memory_mb is required"),
        ('[{"memory_mb": -5}]', "memory_mb must be a non-negative integer"),
        ('[{"memory_mb": "8192"}]', "memory_mb must be a non-negative integer"),
        ('[{"memory_mb": true}]', "memory_mb must be a non-negative integer"),
        ('[{"memory_mb": 8192.5}]', "memory_mb must be a non-negative integer"),
        (
            '[{"memory_mb": 100}, {"memory_mb": 100, "vram": 1}]',
            "device 1 has unknown key(s) ['vram']",
        ),
        ('[{"memory_mb": 100, "used_mb": 200}]', "used_mb (200) exceeds memory_mb (100)"),
        ('[{"memory_mb": 100, "utilization_pct": 101}]', "utilization_pct must be at most 100"),
        ('[{"memory_mb": 100, "name": 7}]', "must be strings"),
    ],
)
def test_simulated_reader_rejects_bad_input(spec, words):
    with pytest.raises(InvalidSpec) as info:
        SimulatedReader(spec)
    message = str(info.value)
    assert message.startswith("invalid WEFT_GPU_SIMULATE: ")
    assert words in message and "\n" not in message
    assert info.value.exit_code == 2


def test_make_gpu_reader_chooses_by_setting():
    assert isinstance(make_gpu_reader('[{"memory_mb": 1}]'), SimulatedReader)
    assert isinstance(make_gpu_reader(None), NvmlReader)
    assert isinstance(make_gpu_reader("  "), NvmlReader)
    with pytest.raises(InvalidSpec):
        make_gpu_reader("[{]")
