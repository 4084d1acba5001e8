"""vs_torch: autonad against PyTorch 1.13 on the same fixed AutoNAD subnets with the same
weights (bench/README-vs-torch.md says how to run it and what each column means).

The driver (this file, without torch) prepares one checkpoint per (subnet, size, width) with
bench/vs_torch.lua (autonad's weights, an input and autonad's logits), measures OpenBLAS's
sgemm at each thread count, then for every row runs the frameworks alternately, round after
round: autonad (a fresh luajit process), PyTorch at its best, PyTorch at its defaults. The
PyTorch sides run in servers (one per style and thread count, started with that style's
environment) that import torch once and fork a fresh child per task, so each task's peak RSS
(VmHWM) is that of a process that has imported torch and run only that task.

  /usr/bin/python3 bench/vs_torch.py --subnets smallest --sizes 200 --widths 64 --threads 1
  /usr/bin/python3 bench/vs_torch.py --help
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODES = ["inf1", "inf8", "train8"]
BATCH = {"inf1": 1, "inf8": 8, "train8": 8}
MAX_CALLS = 60  # timed calls per side and round under --min-time (vs_torch.lua: the same)
# both sides run without these (the build machine's defaults pin a kernel and a cache size)
UNSET = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def vm_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- torch side (servers)

def torch_child(task, parent_rss_kb=None):
    """Runs one task in a forked child; returns the result dict. A forked child's VmHWM counts
    the anonymous pages it inherits but not the library pages only the import touched, so the
    peak is reported as a fresh process's would be: the server's RSS after importing torch
    (parent_rss_kb) plus the child's growth over its RSS at fork."""
    start_rss = vm_kb("VmRSS")
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, HERE)
    import torch_model as tm

    t_threads = task["threads"]
    torch.set_num_threads(t_threads)
    best = task["style"] == "best"
    if task["kind"] == "mm":
        a = torch.rand(2048, 2048)
        b = torch.rand(2048, 2048)
        ts = []
        for i in range(9):
            t0 = time.perf_counter()
            torch.mm(a, b)
            if i >= 2:
                ts.append(time.perf_counter() - t0)
        return {"gflops": 2 * 2048 ** 3 / statistics.median(ts) * 1e-9,
                "threads": torch.get_num_threads()}
    torch.manual_seed(5)
    mode, warmup, repeats = task["mode"], task["warmup"], task["repeats"]
    formats = [False, True] if task["cl"] is None else [task["cl"]]
    rel = {}
    runs = {}
    for cl in formats:
        net, W, meta = tm.load(task["ckpt"], cl)
        if task["check"]:
            rel[str(cl)] = tm.check_logits(net, W, cl)
        size, classes = meta["size"], meta["classes"]
        n = BATCH[mode]
        x = tm.nhwc_to_input(torch.randn(n, size, size, meta["in_channels"]), cl)
        if mode == "train8":
            net.train()
            labels = torch.randint(0, classes, (n, size, size))
            if best:
                opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.05,
                                        foreach=True)
            else:
                opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.05)

            def call(net=net, x=x, labels=labels, opt=opt):
                opt.zero_grad(set_to_none=best)
                loss = F.cross_entropy(net(x), labels, ignore_index=255)
                loss.backward()
                opt.step()
        else:
            ctx = torch.inference_mode if best else torch.no_grad

            def call(net=net, x=x, ctx=ctx):
                with ctx():
                    net(x)
        runs[cl] = call
        del W
    gc.collect()

    def timed(call, w, r, min_s=0.0):
        """w untimed calls, then at least r timed ones, more while their total is below min_s
        (at most MAX_CALLS)"""
        ts = []
        for i in range(w):
            call()
        while len(ts) < r or (sum(ts) < min_s and len(ts) < MAX_CALLS):
            t0 = time.perf_counter()
            call()
            ts.append(time.perf_counter() - t0)
        return ts

    out = {"rel": rel, "threads": torch.get_num_threads()}
    if task["probe"]:
        med = {cl: statistics.median(timed(runs[cl], warmup, repeats)) for cl in formats}
        out["cl"] = min(formats, key=lambda cl: med[cl])
        out["probe"] = {str(cl): med[cl] for cl in formats}
        return out
    (cl,) = formats
    out["times"] = timed(runs[cl], warmup, repeats, task.get("min_s", 0.0))
    out["cl"] = cl
    hwm = vm_kb("VmHWM")
    out["child_hwm_kb"], out["child_start_rss_kb"] = hwm, start_rss
    out["hwm_kb"] = hwm if parent_rss_kb is None else parent_rss_kb + hwm - start_rss
    return out


def serve():
    """Reads JSON tasks from stdin, one per line; forks a child per task; writes the child's
    JSON result as one line on stdout."""
    import torch  # noqa: F401  (imported once, before forking; no thread pool started yet)
    sys.path.insert(0, HERE)
    import torch_model  # noqa: F401
    print(json.dumps({"ready": True, "rss_kb": vm_kb("VmRSS")}), flush=True)
    for line in sys.stdin:
        task = json.loads(line)
        r, w = os.pipe()
        parent_rss = vm_kb("VmRSS")
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                res = torch_child(task, parent_rss)
            except BaseException:
                res = {"error": traceback.format_exc()}
            os.write(w, json.dumps(res).encode())
            os.close(w)
            os._exit(0)
        os.close(w)
        chunks = []
        while True:
            b = os.read(r, 65536)
            if not b:
                break
            chunks.append(b)
        os.close(r)
        os.waitpid(pid, 0)
        data = b"".join(chunks).decode() or json.dumps({"error": "child died"})
        print(data, flush=True)


# ---------------------------------------------------------------- driver

def base_env():
    env = dict(os.environ)
    for k in UNSET:
        env.pop(k, None)
    env.setdefault("AUTONAD_LIB", os.path.join(ROOT, "build", "libautonad.so"))
    return env


def best_env(threads):
    env = base_env()
    env.update({"OPENBLAS_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE",
                "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"})
    return env


class Server:
    def __init__(self, style, threads):
        env = best_env(threads) if style == "best" else base_env()
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                  text=True, cwd=ROOT)
        self.style, self.threads = style, threads
        self.rss_kb = self._read()["rss_kb"]

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("torch server (%s, %d threads) died" % (self.style, self.threads))
        res = json.loads(line)
        if "error" in res:
            raise RuntimeError("torch %s: %s" % (self.style, res["error"]))
        return res

    def run(self, **task):
        task.update(style=self.style, threads=self.threads)
        self.p.stdin.write(json.dumps(task) + "\n")
        self.p.stdin.flush()
        return self._read()

    def close(self):
        self.p.stdin.close()
        self.p.wait()


def lua(args, env):
    out = subprocess.run(["luajit", os.path.join(HERE, "vs_torch.lua")] + [str(a) for a in args],
                         env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("vs_torch.lua %s failed:\n%s%s" % (args[0], out.stdout, out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


def sgemm(threads, env):
    out = subprocess.run([os.path.join(ROOT, "build", "bench_sgemm"), str(threads)], env=env,
                         capture_output=True, text=True, check=True).stdout.split("|", 1)
    return float(out[0].split()[2]), out[1].strip()


def csv_list(s, cast=str):
    return [cast(v) for v in s.split(",") if v]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subnets", default="smallest,middle,largest")
    ap.add_argument("--sizes", default="200,320")
    ap.add_argument("--widths", default="256,64", help="decoder widths D")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--modes", default="inf1,inf8,train8")
    ap.add_argument("--warmup", type=int, default=2, help="untimed calls per process")
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per process and round")
    ap.add_argument("--min-time", type=float, default=0.5,
                    help="seconds: each side goes on past --repeats timed calls per round until"
                         " their total reaches this (at most %d calls), so that fast rows get"
                         " enough samples for a steady median" % MAX_CALLS)
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternations A B C A B C ...; medians pool all rounds")
    ap.add_argument("--no-default", action="store_true", help="skip PyTorch at its defaults")
    ap.add_argument("--cl", choices=["auto", "on", "off"], default="auto",
                    help="PyTorch best: channels-last auto (probe both, keep the faster)")
    ap.add_argument("--autonad-env", default="",
                    help="extra KEY=VALUE,... for the autonad processes (default: none)")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "vs_torch"),
                    help="checkpoints and the JSON-lines log go here")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve:
        return serve()

    subnets, sizes = csv_list(a.subnets), csv_list(a.sizes, int)
    widths, threads, modes = csv_list(a.widths, int), csv_list(a.threads, int), csv_list(a.modes)
    for m in modes:
        if m not in MODES:
            ap.error("unknown mode %s (%s)" % (m, ", ".join(MODES)))
    for exe in ("libautonad.so", "bench_sgemm"):
        if not os.path.exists(os.path.join(ROOT, "build", exe)):
            sys.exit("vs_torch: build/%s missing: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release"
                     " && cmake --build build -j2" % exe)
    os.makedirs(a.work, exist_ok=True)
    log = open(os.path.join(a.work, "results.jsonl"), "a")
    env_a = base_env()
    for kv in csv_list(a.autonad_env):
        k, v = kv.split("=", 1)
        env_a[k] = v
    t_start = time.time()

    print("# autonad vs PyTorch %s, %s, %s" % (
        subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                       capture_output=True, text=True).stdout.strip(),
        time.strftime("%Y-%m-%d %H:%M"), os.uname().nodename))
    print("# command: %s" % " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]))
    print("# load average at start: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))
    gemm = {}
    for t in threads:
        gemm[t], info = sgemm(t, env_a)
        print("# sgemm 2048^3 (autonad's OpenBLAS) at %d thread(s): %.1f GFLOP/s | %s"
              % (t, gemm[t], info))

    ckpts = {}
    for s in subnets:
        for size in sizes:
            for d in widths:
                path = os.path.join(a.work, "%s-%d-%d.ckpt" % (s, size, d))
                ckpts[s, size, d] = (path, lua(["prepare", s, size, d, path], env_a))

    servers = {}
    styles = ["best"] + ([] if a.no_default else ["default"])
    for t in threads:
        for st in styles:
            servers[st, t] = Server(st, t)
            mm = servers[st, t].run(kind="mm")
            print("# torch.mm 2048^3, PyTorch %s, %d thread(s): %.1f GFLOP/s; RSS after import"
                  " torch: %.0f MB" % (st, t, mm["gflops"], servers[st, t].rss_kb / 1024))

    head = ("%-8s %4s %4s %2s %-6s %7s | %9s %9s %9s | %6s %6s %7s | %6s %6s %6s | %6s %6s %6s | %6s %5s"
            % ("subnet", "size", "D", "T", "mode", "GFLOP", "autonad", "torch", "tdef",
               "t/a", "tdef/a", "min t/a", "a GF/s", "t GF/s", "tdGF/s", "a MB", "t MB", "tdef MB",
               "sgemm", "load"))
    print("# times: ms per image (inf1, inf8) or ms per training step of 8 images (train8); "
          "torch = PyTorch best (c = channels-last, n = NCHW), tdef = PyTorch defaults")
    print(head)
    print("-" * len(head))
    sys.stdout.flush()
    for s in subnets:
        for size in sizes:
            for d in widths:
                path, meta = ckpts[s, size, d]
                flops = 2.0 * (meta["macs"] - fuse_skipped_macs(size, d))
                for t in threads:
                    for mode in modes:
                        row = run_row(a, servers, styles, env_a, path, t, mode)
                        n = BATCH[mode]
                        work = flops * (3 * n if mode == "train8" else 1)
                        per = n if mode == "inf8" else 1
                        ms = {k: 1e3 * statistics.median(v["times"]) / per
                              for k, v in row.items()}
                        gf = {k: work / (ms[k] * 1e-3) * 1e-9
                              for k in ms}
                        tdef = row.get("default")
                        load = float(open("/proc/loadavg").read().split()[0])
                        fmt = "c" if row["best"]["cl"] else "n"
                        print("%-8s %4d %4d %2d %-6s %7.2f | %9.2f %8.2f%s %9s | %6.2f %6s %7.2f | "
                              "%6.1f %6.1f %6s | %6.0f %6.0f %6s | %6.1f %5.1f"
                              % (s, size, d, t, mode, work * 1e-9, ms["autonad"], ms["best"], fmt,
                                 "%.2f" % ms["default"] if tdef else "-",
                                 ms["best"] / ms["autonad"],
                                 "%.2f" % (ms["default"] / ms["autonad"]) if tdef else "-",
                                 min(row["best"]["times"]) / min(row["autonad"]["times"]),
                                 gf["autonad"], gf["best"],
                                 "%.1f" % gf["default"] if tdef else "-",
                                 row["autonad"]["hwm_kb"] / 1024, row["best"]["hwm_kb"] / 1024,
                                 "%.0f" % (tdef["hwm_kb"] / 1024) if tdef else "-", gemm[t], load))
                        sys.stdout.flush()
                        log.write(json.dumps({"subnet": s, "size": size, "D": d, "threads": t,
                                              "mode": mode, "gflop": work * 1e-9, "ms": ms, "load1": load,
                                              "ms_min": {k: 1e3 * min(v["times"]) / per
                                                         for k, v in row.items()},
                                              "raw": row, "sgemm": gemm[t],
                                              "macs": meta["macs"],
                                              "params": meta["params"]}) + "\n")
                        log.flush()
    for srv in servers.values():
        srv.close()
    after = {t: sgemm(t, env_a)[0] for t in threads}
    print("# sgemm again at the end: %s GFLOP/s; load average at end: %s; %.0f s in all"
          % (", ".join("%d thread(s) %.1f" % (t, g) for t, g in after.items()),
             " ".join(open("/proc/loadavg").read().split()[:3]), time.time() - t_start))


def fuse_skipped_macs(size, d):
    """MACs per image that both sides skip by computing the decoder fuse part by part before
    the resize (docs/supernet.md): the counted 4D -> D conv at stage 1's resolution, less the
    three D -> D convs at stages 2-4's. The GFLOP column is the work actually done."""
    h = [(size + 2 * 3 - 7) // 4 + 1]                 # stage 1: 7x7 stride-4 patch embedding
    for _ in range(3):
        h.append((h[-1] + 2 - 3) // 2 + 1)            # stages 2-4: 3x3 stride 2
    return 3 * h[0] ** 2 * d * d - sum(x * x for x in h[1:]) * d * d


def run_row(a, servers, styles, env_a, path, t, mode):
    """One row: (optionally) probe PyTorch's memory format, then the rounds A B C A B C.
    Returns style -> {times (all rounds), hwm_kb (last round), cl}."""
    cl = {"on": True, "off": False}.get(a.cl)
    if cl is None:
        p = servers["best", t].run(kind="bench", ckpt=path, mode=mode, warmup=1,
                                   repeats=max(2, a.repeats // 2), cl=None, check=True,
                                   probe=True)
        if "error" in p:
            raise RuntimeError("torch probe: " + p["error"])
        cl = p["cl"]
    res = {"autonad": {"times": []}}
    for st in styles:
        res[st] = {"times": []}
    for r in range(a.rounds):
        first = r == 0
        out = lua(["run", path, t, mode, a.warmup, a.repeats, 1 if first else 0, a.min_time],
                  env_a)
        res["autonad"]["times"] += out["times"]
        res["autonad"].update(hwm_kb=out["hwm_kb"], blas=out["blas"])
        for st in styles:
            o = servers[st, t].run(kind="bench", ckpt=path, mode=mode, warmup=a.warmup,
                                   repeats=a.repeats, min_s=a.min_time,
                                   cl=cl if st == "best" else False,
                                   check=first and (st == "default" or a.cl != "auto"),
                                   probe=False)
            if "error" in o:
                raise RuntimeError("torch %s: %s" % (st, o["error"]))
            res[st]["times"] += o["times"]
            res[st].update(hwm_kb=o["hwm_kb"], cl=o["cl"])
    return res


if __name__ == "__main__":
    main()
