"""Live node benchmark over real DDS: node overhead per pair, output FPS vs the pipeline, CPU use.

A feeder in this process publishes 640×480 IR (mono8) + visible (bgr8) pairs at --rate Hz to the
node, started as tests/ros/ros_harness.py starts it (a subprocess, an isolated DDS domain,
localhost only); this process also subscribes to every output the node publishes. For a null model
(the deterministic contract model of tests/contract_model.py at 640×480: inference ~1 ms) and the
shipped model it prints:
- node overhead p50/p95: the node's own /diagnostics `overhead_*` (message in -> last message out
  minus inference, the wait for the worker excluded) over the measured seconds;
- end to end p50/p95 as the subscriber sees it (stamp at publishing -> the pair's last output
  received), which adds DDS transport and this process' deserialization;
- output FPS (published, by the node's /diagnostics; and received here) against the FPS of
  benchmarks/bench_pipeline.py (same model, frames and threads, in its own process right before
  and right after the live run), capped by the feed rate;
- CPU use of the node process and of this process (% of one core), and the load average.

Both processes use the Fast DDS profile of --dds-profile (default config/fastdds_large_images.xml,
"none": Fast DDS's defaults): with the default 512 kB shared-memory segment a 921 kB bgr8 frame
goes over fragmented loopback UDP, loses fragments, and the node then waits for retransmissions.

usage: python benchmarks/bench_node.py [--rate HZ] [--seconds S] [--models null,shipped]
       [--dds-profile XML|none] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_pipeline import default_frames
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from fusion_node.bench import HEIGHT, WIDTH, BenchError, FramePair, load_frames, summary

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "ros")]  # the test harness and model
from contract_model import make_contract_model  # noqa: E402
from ros_harness import NODE, NodeProcess, RosClient, dict_of, domain_id, image  # noqa: E402

from fusion_node.pipeline import FusionPipeline, PipelineConfig, PipelineError  # noqa: E402
from fusion_node.ros import dds  # noqa: E402
from fusion_node.ros.health import STAGES  # noqa: E402

OUTPUTS = {
    "fused": Image,
    "detections": Detection2DArray,
    "segmentation": Image,
    "segmentation/color": Image,
    "debug_image": Image,
}
TICKS = os.sysconf("SC_CLK_TCK")
DDS_PROFILE = ROOT / dds.PROFILE


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


class Outputs:
    """Arrival times of every output, per visible stamp (ns, on this machine's system clock)."""

    def __init__(self, ros: RosClient, topics: Sequence[str]) -> None:
        self.last: dict[int, int] = {}
        self.count: dict[int, int] = defaultdict(int)
        self.fused: dict[int, int] = {}
        self.diagnostics: list[dict[str, str]] = []
        self._lock = threading.Lock()
        for name in topics:
            topic = f"{NODE}/{name}"
            ros.node.create_subscription(OUTPUTS[name], topic, self._on(name), QoSProfile(depth=10))
        ros.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on(self, name: str) -> Any:
        def store(msg: Any) -> None:
            now = time.time_ns()
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            with self._lock:
                self.last[stamp] = max(self.last.get(stamp, 0), now)
                self.count[stamp] += 1
                if name == "fused":
                    self.fused[stamp] = now

        return store

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        if msg.status and msg.status[0].name.startswith("fusion_node"):
            with self._lock:
                self.diagnostics.append(dict_of(msg.status[0]))


def bench_live(
    model: Path | None, topics: Sequence[str], frames: list[FramePair], args: argparse.Namespace
) -> dict[str, Any]:
    """Run the node on `model`, feed it for warm-up + measured seconds; the numbers of one row."""
    parameters = {
        "model_path": str(model) if model else "",  # "" = the package's default model
        "ir_topic": "/thermal/image_raw",
        "visible_topic": "/camera/image_raw",
        "threads": args.threads,
        "reliability": "reliable",
        "diagnostics_period_s": 0.5,
        "diagnostics_window_s": float(args.seconds),
    }
    domain = domain_id(0)
    with tempfile.TemporaryDirectory() as tmp, NodeProcess(Path(tmp), domain, parameters) as node:
        node.wait_for_line("ready:", timeout=60.0)
        ros = RosClient(domain)
        try:
            outputs = Outputs(ros, topics)
            ir_pub = ros.publisher(Image, "/thermal/image_raw")
            visible_pub = ros.publisher(Image, "/camera/image_raw")
            messages = [
                (image(ir, "mono8", 0, "ir_optical_frame"), image(vi, "bgr8", 0, "visible_optical_frame"))
                for ir, vi in frames
            ]
            deadline = time.monotonic() + 30.0
            while visible_pub.get_subscription_count() == 0 or len(outputs.diagnostics) == 0:
                if time.monotonic() > deadline:
                    raise BenchError(f"the node did not connect within 30 s:\n{node.output}")
                time.sleep(0.1)
            period = 1.0 / args.rate
            start = time.monotonic()
            measure_from = start + args.warmup_s
            end = measure_from + args.seconds
            sent: list[int] = []
            cpu0 = None
            tick = 0
            while (now := time.monotonic()) < end:
                if cpu0 is None and now >= measure_from:
                    cpu0 = (cpu_seconds(node.pid), time.process_time(), now)
                ir_msg, vi_msg = messages[tick % len(messages)]
                stamp = time.time_ns()
                for msg in (ir_msg, vi_msg):
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
                ir_pub.publish(ir_msg)
                visible_pub.publish(vi_msg)
                if now >= measure_from:
                    sent.append(stamp)
                tick += 1
                time.sleep(max(0.0, start + tick * period - time.monotonic()))
            node_cpu, own_cpu, t0 = cpu0 or (0.0, 0.0, measure_from)
            wall = time.monotonic() - t0
            node_cpu = (cpu_seconds(node.pid) - node_cpu) / wall
            own_cpu = (time.process_time() - own_cpu) / wall
            diagnostics = outputs.diagnostics[-1]  # its window: the measured seconds (to <= 0.5 s)
            time.sleep(1.0)  # the last pairs' outputs arrive
        finally:
            ros.close()
    complete = [s for s in sent if outputs.count.get(s, 0) == len(topics)]
    e2e = summary([(outputs.last[s] - s) / 1e6 for s in complete]) if complete else {"p50_ms": 0, "p95_ms": 0}
    return {
        "pairs_sent": len(sent),
        "outputs_complete": len(complete),
        "fps": float(diagnostics["fps"]),  # published, by the node's own count over the window
        "received_fps": sum(1 for s in sent if s in outputs.fused) / args.seconds,
        "overhead": {p: float(diagnostics[f"overhead_{p}"]) for p in ("p50_ms", "p95_ms")},
        "e2e": e2e,
        "stages_p50_ms": {stage: float(diagnostics[f"{stage}_ms"]) for stage in STAGES},
        "dropped": int(diagnostics["dropped"]),
        "outputs_built": diagnostics["outputs_built"],
        "node_cpu_pct": 100.0 * node_cpu,
        "feeder_cpu_pct": 100.0 * own_cpu,
    }


def pipeline_benchmark(model: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    """benchmarks/bench_pipeline.py's result for this run's model, frames and threads.

    In its own process, as the node runs in its own: in this one, which has run DDS, its inference
    measured slower than the node's own on the same loaded machine.
    """
    command = [
        sys.executable,
        str(Path(__file__).with_name("bench_pipeline.py")),
        "--no-anchor",
        "--json",
        *("--threads", str(args.threads), "--iterations", str(args.iterations), "--warmup", str(args.warmup)),
        *(("--model", str(model)) if model else ()),
        *(("--frames", str(args.frames)) if args.frames else ()),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"bench_pipeline.py failed: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)["ours"]
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every model: the pipeline benchmark, then the live node; one JSON-ready dict."""
    frames = load_frames(args.frames or default_frames())
    if args.dds_profile != "none":  # read at participant creation, here and in the node (inherited)
        if not Path(args.dds_profile).is_file():
            raise BenchError(f"no Fast DDS profile at {args.dds_profile}; give an XML file or 'none'")
        os.environ[dds.PROFILE_ENV] = str(Path(args.dds_profile).resolve())
    out: dict[str, Any] = {
        "dds_profile": Path(args.dds_profile).name if args.dds_profile != "none" else "Fast DDS defaults",
        "frame": f"{WIDTH}x{HEIGHT}",
        "rate_hz": args.rate,
        "seconds": args.seconds,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg()[0],
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        models = {
            "null": make_contract_model(Path(tmp) / "null.onnx", input_size=(HEIGHT, WIDTH)),
            "shipped": args.model,
        }
        for name in args.models.split(","):
            if name not in models:
                raise BenchError(f"unknown model {name!r}; use null and/or shipped")
            path = models[name]
            info = FusionPipeline(PipelineConfig(model_path=path)).info
            topics = [
                t
                for t in OUTPUTS
                if (t != "detections" or info.detection_trained)
                and (not t.startswith("segmentation") or info.segmentation_trained)
            ]
            # The pipeline benchmark right before and right after the live run: on a shared machine
            # the load drifts, and their spread shows by how much.
            before = pipeline_benchmark(path, args)
            live = bench_live(path, topics, frames, args)
            after = pipeline_benchmark(path, args)
            mean_fps = (before["fps"] + after["fps"]) / 2
            out["models"][name] = {
                "model": info.model_name,
                "pipeline_before": before,
                "pipeline_after": after,
                "live": live,
                "fps_ratio": live["fps"] / min(args.rate, mean_fps),
            }
    out["load_after"] = os.getloadavg()[0]
    return out


def table(out: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    lines = [
        f"fusion_node live over Fast DDS (localhost): {out['frame']} pairs at {out['rate_hz']:g} Hz, "
        f"{out['seconds']:g} s measured, every output subscribed, {out['threads']} inference threads, "
        f"{out['cpus']} CPUs, load average {out['load_before']:.1f} before / {out['load_after']:.1f} after, "
        f"DDS profile: {out['dds_profile']}",
        f"{'model':<22}{'overhead p50/p95':>18}{'e2e p50/p95':>16}{'out/recv FPS':>14}{'pipeline FPS':>14}"
        f"{'live/expected':>15}{'node CPU':>10}{'ms/output':>11}{'feeder CPU':>12}",
    ]
    notes = []
    for name, m in out["models"].items():
        live, before, after = m["live"], m["pipeline_before"], m["pipeline_after"]
        lines.append(
            f"{name + ' (' + m['model'] + ')':<22}"
            f"{live['overhead']['p50_ms']:>9.2f} /{live['overhead']['p95_ms']:>6.2f}"
            f"{live['e2e']['p50_ms']:>8.1f} /{live['e2e']['p95_ms']:>6.1f}"
            f"{live['fps']:>9.1f}/{live['received_fps']:<5.1f}{before['fps']:>7.1f}/{after['fps']:<6.1f}"
            f"{100 * m['fps_ratio']:>14.0f}%"
            f"{live['node_cpu_pct']:>9.0f}%{10 * live['node_cpu_pct'] / max(live['fps'], 1e-9):>11.1f}"
            f"{live['feeder_cpu_pct']:>11.0f}%"
        )
        notes.append(
            f"{name}: outputs {live['outputs_built']}; {live['outputs_complete']} of {live['pairs_sent']} "
            f"pairs complete; pipeline total p50 {before['stages']['total']['p50_ms']:.1f} / "
            f"{after['stages']['total']['p50_ms']:.1f} ms (before / after)"
        )
    lines.append(f"{'stage p50 ms (node)':<22}{''.join(f'{stage:>12}' for stage in STAGES)}{'dropped':>9}")
    for name, m in out["models"].items():
        stages, dropped = m["live"]["stages_p50_ms"], m["live"]["dropped"]
        lines.append(f"{name:<22}{''.join(f'{stages[stage]:>12.2f}' for stage in STAGES)}{dropped:>9}")
    lines += notes
    lines.append(
        "out FPS = published (node's /diagnostics), recv = fused received here; pipeline FPS "
        "before/after the live run; live/expected = out / min(feed rate, their mean); "
        "overhead = node work minus inference per pair; "
        "CPU in % of one core, ms/output = node CPU time per published pair (inputs it drops included)"
    )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_node", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="null,shipped", help="comma-separated: null, shipped")
    parser.add_argument("--model", type=Path, default=None, help="'shipped' model (default: the package's)")
    parser.add_argument("--frames", type=Path, default=None, help="pairs folder (default: MSRS samples)")
    parser.add_argument("--rate", type=float, default=30.0, help="pairs per second fed to the node")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per model")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="fed seconds before measuring")
    parser.add_argument("--threads", type=int, default=2, help="inference threads, node and pipeline")
    parser.add_argument("--iterations", type=int, default=30, help="timed pipeline benchmark iterations")
    parser.add_argument("--warmup", type=int, default=5, help="untimed pipeline benchmark iterations first")
    parser.add_argument(
        "--dds-profile", default=str(DDS_PROFILE), help="Fast DDS XML profile for both sides, or 'none'"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print a table (or JSON); errors print `ERROR: ...` and return 1."""
    args = parse_args(argv)
    try:
        out = run(args)
    except (BenchError, PipelineError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    print(json.dumps(out, indent=2) if args.json else table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
