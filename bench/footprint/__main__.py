"""The node memory one function instance costs beyond its own, per execution environment:
the figure the resolver compares (agent/compute/resolver.py ENVIRONMENT_COSTS). Not a test.

    sudo .venv/bin/python -m bench.footprint [--instances 40] [--environment native]

In a namespace of its own (the node), the environment's driver creates and starts
--instances firewalls (the shipped package for native, two ports each); the cost is the
growth of the kernel's own memory (Slab, KernelStack, PageTables, Percpu in /proc/meminfo)
plus the resident memory of the processes the instances left running, divided by their
number, in MiB (other activity on the machine blurs it: run it on a quiet node, and more
than once). Everything is destroyed afterwards. Results also go to
bench/results/footprint.json. Only environments whose driver is registered and usable run.
"""

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from drivers.compute.base import FunctionPort, FunctionSpec
from drivers.compute.native import NativeDriver
from nsf import packages

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ("Slab", "KernelStack", "PageTables", "Percpu")


def meminfo() -> dict:
    out = {}
    with open("/proc/meminfo") as stream:
        for line in stream:
            key, _, rest = line.partition(":")
            out[key] = int(rest.split()[0])     # kB
    return out


def kernel_kb() -> int:
    info = meminfo()
    return sum(info.get(k, 0) for k in KERNEL)


def rss_kb(pids) -> int:
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as stream:
                for line in stream:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def settle() -> int:
    """The kernel's memory once it stops moving (freed objects come back in RCU batches)."""
    time.sleep(2.0)
    return kernel_kb()


def native(count: int, tmp: Path, prefix: str) -> dict:
    node = prefix + "node"
    subprocess.run(["ip", "netns", "add", node], check=True)
    driver = NativeDriver(str(tmp / "native"), netns=node)
    image = packages.build(tmp / "nsf", only=["firewall"])["firewall"]
    template = packages.load_template(image)
    instances = ["%sf%03d" % (prefix, n) for n in range(count)]
    try:
        before = settle()
        for n, instance in enumerate(instances):
            driver.create(FunctionSpec(
                instance=instance, template=template, image=image,
                ports=(FunctionPort("lan", "%sa%03d" % (prefix, n)),
                       FunctionPort("wan", "%sb%03d" % (prefix, n)))))
            driver.start(instance)
        after = settle()
        pids = []
        for instance in instances:
            listed = subprocess.run(["ip", "netns", "pids", instance], capture_output=True,
                                    text=True).stdout.split()
            pids += [int(p) for p in listed]
        processes = rss_kb(pids)
    finally:
        for instance in instances:
            try:
                driver.stop(instance)
                driver.destroy(instance)
            except Exception:   # noqa: BLE001 - clean up what there is
                pass
        driver.settle(30)
        subprocess.run(["ip", "netns", "del", node], check=False)
    per_instance = (after - before + processes) / count / 1024
    return {"instances": count, "kernel-kb": after - before, "processes-rss-kb": processes,
            "mib-per-instance": round(per_instance, 2)}


ENVIRONMENTS = {"native": native}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=40)
    parser.add_argument("--environment", action="append", choices=sorted(ENVIRONMENTS))
    parser.add_argument("--prefix", default="fp", help="of every name it makes (2-4 letters)")
    args = parser.parse_args()
    results = {}
    for env in args.environment or sorted(ENVIRONMENTS):
        with tempfile.TemporaryDirectory(prefix="composer-footprint-") as tmp:
            results[env] = ENVIRONMENTS[env](args.instances, Path(tmp), args.prefix)
        print("%-8s %3d instances: kernel +%d kB, processes %d kB: %.2f MiB per instance"
              % (env, results[env]["instances"], results[env]["kernel-kb"],
                 results[env]["processes-rss-kb"], results[env]["mib-per-instance"]))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "footprint.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
