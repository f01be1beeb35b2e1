"""`fusion-node`: replay a bag, make a bag from image pairs, run the ROS demo, benchmark.

Errors of the subsystems are caught once here: `ERROR: <message>` on stderr and exit status 1.
SIGINT and SIGTERM stop every command cleanly (bags closed), with exit status 130 or 143. The demo
spins rclpy, where an exception raised by the signal handler would land inside rclpy's C calls
(pybind11 turns it into a RuntimeError): there the signal is only recorded, and the demo's loops
raise it at their next wake-up (within 0.1 s), as the node does.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path

from fusion_node import bench, defaults
from fusion_node.pipeline import PipelineConfig, PipelineError
from fusion_node.replay import BagError, make_bag, replay
from fusion_node.replay.bagio import DEFAULT_IR_TOPIC, DEFAULT_VISIBLE_TOPIC
from fusion_node.shutdown import Stopped, raise_if_stopped, stop_on_signals


class CliError(Exception):
    """A command that cannot run as asked; the message says what to do instead."""


def _replay(args: argparse.Namespace) -> int:
    config = PipelineConfig(
        model_path=args.model,
        backend=args.backend,
        threads=args.threads,
        score_threshold=args.score_threshold,
    )
    stats = replay(
        args.bag,
        args.out,
        ir_topic=args.ir_topic,
        visible_topic=args.visible_topic,
        slop_s=args.slop,
        pipeline_config=config,
        progress=not args.quiet,
    )
    print(
        f"{stats.pairs} pairs from {stats.frames_in} frames ({stats.unpaired_ir + stats.unpaired_visible} "
        f"unpaired, {stats.dropped} dropped) -> {stats.output_bag}, report {stats.report}"
    )
    return 0


def _make_bag(args: argparse.Namespace) -> int:
    count = make_bag(
        args.pairs_dir,
        args.out,
        rate_hz=args.rate,
        ir_encoding=args.ir_encoding,
        compressed=args.compressed,
        storage=args.storage,
        ir_topic=args.ir_topic,
        visible_topic=args.visible_topic,
        loops=args.loops,
        progress=not args.quiet,
    )
    print(f"wrote {count} messages to {args.out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    try:
        from fusion_node.ros.demo import DemoError, run_demo  # needs rclpy and vision_msgs: on demand
    except ImportError as err:
        raise CliError(
            f"the demo needs ROS 2 (rclpy, vision_msgs): {err}. Run scripts/demo.sh, which sets them up"
        ) from err
    try:
        run_demo(args.output, model_path=args.model)
    except DemoError as err:  # the ROS-only module's error, known here once it imported
        raise CliError(str(err)) from err
    return 0


def _bench(args: argparse.Namespace) -> int:
    out = bench.run(args)
    print(bench.render(out, bench.table(out), as_json=args.json))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with its four subcommands."""
    parser = argparse.ArgumentParser(prog="fusion-node", description=__doc__.split("\n")[0])
    parser.set_defaults(interrupt=True)  # a signal raises Stopped where it lands; a command may say False
    sub = parser.add_subparsers(dest="command", required=True)

    def topics(p: argparse.ArgumentParser) -> None:
        p.add_argument("--ir-topic", default=DEFAULT_IR_TOPIC, help="infrared image topic")
        p.add_argument("--visible-topic", default=DEFAULT_VISIBLE_TOPIC, help="visible image topic")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("replay", help="run a rosbag2 through the pipeline: outputs bag + report")
    p.add_argument("bag", type=Path, help="rosbag2 folder (mcap or sqlite3) or its storage file")
    p.add_argument("--out", type=Path, required=True, help="output folder (outputs/ bag, report.md)")
    topics(p)
    p.add_argument(
        "--slop", type=float, default=defaults.SLOP_S, help="largest IR/visible stamp difference, s"
    )
    p.add_argument("--model", type=Path, default=None, help="ONNX model (default: the package's model)")
    p.add_argument("--backend", choices=("onnxruntime", "tensorrt"), default=defaults.BACKEND)
    p.add_argument(
        "--threads",
        type=int,
        default=defaults.THREADS,
        help="CPU inference threads (0: ONNX Runtime's default)",
    )
    p.add_argument(
        "--score-threshold", type=float, default=defaults.SCORE_THRESHOLD, help="minimum detection score"
    )
    p.set_defaults(run=_replay)

    p = sub.add_parser("make-bag", help="write a rosbag2 from a folder of IR/visible image pairs")
    p.add_argument("pairs_dir", type=Path, help="folder with ir/ + vi/ (or infrared/ + visible/)")
    p.add_argument("out", type=Path, help="bag folder to create")
    topics(p)
    # make_bag owns its defaults; the options show them
    made = {name: param.default for name, param in inspect.signature(make_bag).parameters.items()}
    p.add_argument("--rate", type=float, default=made["rate_hz"], help="frame rate of the stamps, Hz")
    p.add_argument("--compressed", action="store_true", help="CompressedImage (IR png, visible jpeg)")
    p.add_argument("--ir-encoding", choices=("mono8", "mono16"), default=made["ir_encoding"])
    p.add_argument("--storage", choices=("mcap", "sqlite3"), default=made["storage"])
    p.add_argument("--loops", type=int, default=made["loops"], help="play the folder this many times")
    p.set_defaults(run=_make_bag)

    p = sub.add_parser("demo", help="the real node fed the bundled sample over DDS (needs ROS 2)")
    p.add_argument("--output", type=Path, default=Path("demo_output"), help="output folder")
    p.add_argument("--model", type=Path, default=None, help="ONNX model (default: the package's model)")
    p.set_defaults(run=_demo, interrupt=False)  # spins rclpy: checks for a signal at wake-ups

    p = sub.add_parser("bench", help="CPU benchmark of the pipeline: per-stage latency and FPS")
    bench.add_arguments(p)
    p.set_defaults(run=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `fusion-node`; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with stop_on_signals(interrupt=args.interrupt):
            status = int(args.run(args))
            raise_if_stopped()  # one recorded while the command was finishing
            return status
    except (PipelineError, BagError, bench.BenchError, CliError) as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    except Stopped as stop:  # outputs are closed by now: bag writers and the demo's node
        print(f"fusion-node {args.command}: stopped by {stop.name}", file=sys.stderr)
        return stop.exit_status


if __name__ == "__main__":
    sys.exit(main())
