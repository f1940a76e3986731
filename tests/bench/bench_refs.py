"""thor beside the shared Protocol references (issue 12, Speed), in one run.

    python3 tests/bench/bench_refs.py [--jobs hello,close,1m,proxy,client,tcp,udp,memory]
        [--rounds 3] [--seconds 3] [--upstream-python PATH] [--profile]

The reference programs are in tests/bench/refs/, copied from the project's
shared references (/work/shared/bench-refs/; refs/README.md says how a
figure is taken, and this driver takes them that way):

- The load generator (wrk, refs/loadgen_echo.py, this driver for the memory
  job) and the nginx origin run on CPU 0 (``taskset -c 0``; this driver pins
  itself there too); the program under test runs on CPU 1
  (``taskset -c 1``), a fresh process per run.
- The figure is the program's CPU time (user + system: the sum of
  /proc/PID/task/*/schedstat, in nanoseconds; /proc/PID/stat when threads
  came and went) over the load window, divided by the work done: us per
  request / round trip / datagram, ms per GB of body (1e9 bytes), and for
  the memory job RSS bytes per idle keep-alive connection. The client job's
  figure is the client's own (getrusage over its timed part: both client
  programs print it). Throughput is shown per run, in the progress lines.
- Each round runs every program of a job once, in an order rotated each
  round; a ratio (thor / reference, thor / upstream) is taken within a
  round, and the table shows the median over the rounds of each figure and
  each ratio.

Jobs (the issue's table):
  hello   thor_http_server.py vs asyncio_http_server.py; wrk -t1 -c50, /
  close   the same with -H 'Connection: close'
  1m      the same, wrk -t1 -c4 on /1m (1 MiB bodies); ms per GB
  proxy   nginx serving a 1 KiB file; wrk -t1 -c50 through: thor_proxy.py
          (public API), ``python3 -m thor.http.proxy --upstream``, and
          ``python3 -m thor.http.proxy`` in forward mode (absolute-form
          requests, a wrk Lua script sets the target) vs asyncio_proxy.py
          given the same requests; and ``--upstream`` with its forwarding
          headers (the default in reverse mode) vs ``--forwarded none``
          (issue 13: within 10%)
  client  thor_http_client.py vs asyncio_http_client.py: 20,000 GETs, 50 in
          flight, to nginx (1 KiB file)
  tcp     thor_tcp_echo.py vs asyncio_tcp_echo.py; loadgen_echo.py stream
          (ms per GB), pingpong and conc 50 (us per round trip)
  udp     thor_udp_echo.py vs asyncio_udp_echo.py; loadgen_echo.py udp, 32
          in flight; us per echoed datagram
  memory  thor_http_server.py vs asyncio_http_server.py: N (2000) keep-alive
          connections opened after one request each; RSS growth / N

Upstream Thor 0.17 runs the same thor_*.py scripts (not the
``thor.http.proxy`` command line, which it does not have) when an
interpreter that imports it is given by ``--upstream-python`` or the
THOR_UPSTREAM_PYTHON environment variable (e.g. /tmp/venv/bin/python); it
runs from a temporary directory with PYTHONPATH unset, so that it imports
its own thor, not this tree's. Without one the column is left empty.

A job whose tool (wrk, nginx) is missing is skipped with a line saying so.
``--profile`` also runs ``python3 -m cProfile -o FILE refs/thor_http_server.py``
once under the hello load and prints the top functions by own time, per
request.
Linux only (/proc, taskset).
"""

import argparse
import json
import os
import pstats
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REFS = os.path.join(HERE, "refs")
ROOT = os.path.dirname(os.path.dirname(HERE))
TICK = os.sysconf("SC_CLK_TCK")
ALL_JOBS = ("hello", "close", "1m", "proxy", "client", "tcp", "udp", "memory")
GB = 1e9
MIB = 1 << 20

# the targets, shown beside the figures (ratio column unless noted)
TARGETS = {
    "hello": "<= 1.3x",
    "close": "<= 0.83x",
    "1m": "<= 1.2x",
    "proxy-api": "<= 1.5x",
    "proxy-cli": "<= 1.6x",
    "proxy-fwd": "<= 2x",
    "proxy-forwarding": "on/off <= 1.1x",
    "udp": "thor/0.17 <= 0.83",
    "memory": "thor <= 2000 B",
}


class Options:
    "Settings from the command line, shared by the helpers below."

    pin = True
    upstream = None
    thor_root = ROOT  # the directory whose thor/ is measured
    seconds = 3.0
    workdir = None


OPT = Options()


# -- programs under test ---------------------------------------------------------


class Prog:
    """A program under test: ``kind`` is 'thor' (this tree's thor),
    'upstream' (Thor 0.17's interpreter) or 'ref' (stdlib reference)."""

    def __init__(self, label, kind, args):
        self.label = label
        self.kind = kind
        self.args = args  # after the interpreter; {port}, {origin} filled in

    def command(self, **fill):
        python = OPT.upstream if self.kind == "upstream" else sys.executable
        args = [a.format(refs=REFS, **fill) for a in self.args]
        return pin_cmd(1) + [python] + args

    def env_cwd(self):
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        if self.kind == "thor":
            env["PYTHONPATH"] = OPT.thor_root
            return env, OPT.thor_root
        return env, OPT.workdir  # outside the tree: upstream imports its own thor


def pin_cmd(cpu):
    return ["taskset", "-c", str(cpu)] if OPT.pin else []


def script(label, kind, name, *args):
    return Prog(label, kind, ["{refs}/" + name] + list(args))


def http_server_progs():
    progs = [
        ("thor", script("thor thor_http_server.py", "thor", "thor_http_server.py", "{port}")),
        ("ref", script("asyncio_http_server.py", "ref", "asyncio_http_server.py", "{port}")),
    ]
    if OPT.upstream:
        progs.append(("upstream", script("0.17 thor_http_server.py", "upstream",
                                         "thor_http_server.py", "{port}")))
    return progs


# -- measuring a process -----------------------------------------------------------


def cpu_seconds(pid):
    """(schedstat seconds of the live threads, /proc/PID/stat seconds).

    schedstat is in nanoseconds but forgets threads that have exited;
    stat counts them, in clock ticks."""
    sched = 0
    task_dir = "/proc/%d/task" % pid
    try:
        for tid in os.listdir(task_dir):
            try:
                with open("%s/%s/schedstat" % (task_dir, tid)) as handle:
                    sched += int(handle.read().split()[0])
            except OSError:
                pass
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return sched / 1e9, (int(fields[11]) + int(fields[12])) / TICK


def cpu_used(before, after):
    "CPU seconds between two cpu_seconds() readings."
    sched = after[0] - before[0]
    stat = after[1] - before[1]
    # a thread that exited took its schedstat with it; stat still has it
    return stat if stat > sched + 3.0 / TICK else sched


def cpu1_busy():
    "Busy seconds of CPU 1 (all processes), from /proc/stat."
    with open("/proc/stat") as handle:
        for line in handle:
            if line.startswith("cpu1 "):
                f = [int(x) for x in line.split()[1:]]
                return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / TICK
    return 0.0


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise KeyError("VmRSS")


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Running:
    "A started program: its process, port and log."

    def __init__(self, prog, port, origin=None, extra_env=None):
        self.prog = prog
        self.port = port
        self.cmd = prog.command(port=port, origin=origin)
        env, cwd = prog.env_cwd()
        if extra_env:
            env.update(extra_env)
        self.log = tempfile.TemporaryFile(dir=OPT.workdir)
        self.proc = subprocess.Popen(self.cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-1500:]

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class RunFailed(Exception):
    pass


def wait_ready(running, probe, timeout=15.0):
    "Call probe() until it returns True, while the program lives."
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not running.alive():
            raise RunFailed("%s exited: %s" % (running.prog.label, running.output()))
        try:
            if probe():
                return
        except OSError as err:
            last = err
        time.sleep(0.05)
    raise RunFailed("%s did not answer in %ss (%s)" % (running.prog.label, timeout, last))


def read_response(sock):
    "Read one Content-Length response from a blocking socket; return its status."
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed before the response head")
        data += chunk
    end = data.index(b"\r\n\r\n")
    lower = data[:end].lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise OSError("no Content-Length in %r" % data[:200])
    line_end = lower.find(b"\r\n", at + 2)
    need = end + 4 + int(lower[at + 17:line_end if line_end > 0 else end])
    while len(data) < need:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed in the body")
        data += chunk
    return data[9:12]


def http_probe(port, target=b"/", host=b"bench"):
    def probe():
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, host))
            return read_response(sock) == b"200"
    return probe


def tcp_probe(port):
    def probe():
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"ping")
            return sock.recv(16) == b"ping"
    return probe


def udp_probe(port):
    def probe():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.1)
            sock.sendto(b"ping", ("127.0.0.1", port))
            try:
                return sock.recv(16) == b"ping"
            except (socket.timeout, ConnectionRefusedError):
                return False
    return probe


# -- loads -----------------------------------------------------------------------------


def run_wrk(args):
    "Run wrk (pinned to CPU 0); (requests, seconds, errors text, command)."
    cmd = pin_cmd(0) + ["wrk"] + args
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True, timeout=OPT.seconds + 60).stdout
    match = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", out)
    if not match:
        raise RunFailed("wrk: %s" % out.strip()[-500:])
    elapsed = float(match.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[match.group(3)]
    errors = []
    for pattern in (r"Socket errors:[^\n]*", r"Non-2xx or 3xx responses: \d+"):
        found = re.search(pattern, out)
        if found:
            errors.append(found.group(0))
    if re.search(r"Non-2xx or 3xx responses: \d+", out):
        raise RunFailed("wrk: %s" % "; ".join(errors))
    return int(match.group(1)), elapsed, "; ".join(errors), cmd


def wrk_args(connections, url, extra=()):
    return ["-t1", "-c%d" % connections, "-d%ds" % max(1, round(OPT.seconds))] + list(extra) + [url]


def run_loadgen(mode, port, param=None):
    cmd = pin_cmd(0) + [sys.executable, os.path.join(REFS, "loadgen_echo.py"), mode, str(port),
                        "%g" % OPT.seconds] + ([str(param)] if param else [])
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=OPT.seconds + 60)
    if proc.returncode:
        raise RunFailed("loadgen: %s" % (proc.stdout + proc.stderr).strip()[-500:])
    return json.loads(proc.stdout.strip().splitlines()[-1]), cmd


class Result:
    "One program's figure in one round."

    def __init__(self, figure, rate, rate_unit, note="", cmds=(), other=None):
        self.figure = figure
        self.rate = rate
        self.rate_unit = rate_unit
        self.note = note
        self.cmds = cmds
        self.other = other  # CPU 1 busy share not the program's, during the load


def measured(running, load):
    """Run ``load()`` -> (work, rate, rate_unit, note, cmd) while reading the
    program's CPU; return (cpu seconds, load's answer, other CPU 1 share)."""
    before = cpu_seconds(running.pid)
    busy0, wall0 = cpu1_busy(), time.monotonic()
    answer = load()
    after = cpu_seconds(running.pid)
    busy1, wall1 = cpu1_busy(), time.monotonic()
    if before is None or after is None or not running.alive():
        raise RunFailed("%s died under load: %s" % (running.prog.label, running.output()))
    cpu = cpu_used(before, after)
    other = max(0.0, (busy1 - busy0) - cpu) / (wall1 - wall0)
    return cpu, answer, other


def wrk_job(prog, wrk_extra, connections, path, per, unit_scale, probe_target=b"/",
            origin=None, url_port=None, proxy_target=None, host=None):
    """Start prog, run wrk against it; figure = CPU / (requests * per) * scale."""
    port = free_port()
    running = Running(prog, port, origin=origin)
    try:
        wait_ready(running, http_probe(port, probe_target, host or b"bench"))
        extra = list(wrk_extra)
        if proxy_target is not None:
            extra += ["-s", proxy_target]
        if host is not None:
            extra += ["-H", "Host: %s" % host.decode()]
        url = "http://127.0.0.1:%d%s" % (port, path)

        def load():
            return run_wrk(wrk_args(connections, url, extra))

        cpu, (count, elapsed, errors, wrk_cmd), other = measured(running, load)
        if not count:
            raise RunFailed("no requests completed")
        figure = cpu / (count * per) * unit_scale
        return Result(figure, count / elapsed, "req/s", errors,
                      (running.cmd, wrk_cmd), other)
    finally:
        running.stop()


# -- the jobs ----------------------------------------------------------------------------
# Each job returns (runs, rows): runs are (key, label, callable -> Result),
# rotated each round; rows are (row key, title, unit, thor key, ref key,
# upstream key or None).


def job_http(kind):
    progs = http_server_progs()
    if kind == "hello":
        spec = dict(wrk_extra=[], connections=50, path="/", per=1, unit_scale=1e6)
        row = ("hello", "hello keep-alive", "us/req")
    elif kind == "close":
        spec = dict(wrk_extra=["-H", "Connection: close"], connections=50, path="/", per=1,
                    unit_scale=1e6)
        row = ("close", "Connection: close", "us/req")
    else:
        spec = dict(wrk_extra=[], connections=4, path="/1m", per=MIB / GB, unit_scale=1e3)
        row = ("1m", "1 MiB bodies", "ms/GB")
    runs = [(key, prog.label, (lambda prog=prog: wrk_job(prog, **spec))) for key, prog in progs]
    keys = dict(progs)
    return runs, [row + ("thor", "ref", "upstream" if "upstream" in keys else None)]


class Nginx:
    "nginx on CPU 0 serving /small.txt (1 KiB) from a temporary directory."

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=OPT.workdir)
        self.port = free_port()
        with open(os.path.join(self.dir, "small.txt"), "wb") as handle:
            handle.write(b"x" * 1023 + b"\n")
        config = os.path.join(self.dir, "nginx.conf")
        with open(config, "w") as handle:
            handle.write("""
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
error_log %(dir)s/error.log crit;
pid %(dir)s/nginx.pid;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path %(dir)s;
    proxy_temp_path %(dir)s;
    fastcgi_temp_path %(dir)s;
    uwsgi_temp_path %(dir)s;
    scgi_temp_path %(dir)s;
    keepalive_requests 10000000;
    keepalive_timeout 600;
    server {
        listen 127.0.0.1:%(port)d;
        location / { root %(dir)s; default_type text/plain; }
    }
}
""" % {"dir": self.dir, "port": self.port})
        self.cmd = pin_cmd(0) + ["nginx", "-c", config, "-p", self.dir]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if http_probe(self.port, b"/small.txt")():
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RunFailed("nginx did not start")
            time.sleep(0.05)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()
        shutil.rmtree(self.dir, True)


NGINX = []  # the one nginx of this run, started when a job needs it


def nginx():
    if not NGINX:
        NGINX.append(Nginx())
    return NGINX[0]


def job_proxy():
    origin = nginx().port
    fwd_script = os.path.join(OPT.workdir, "absolute_form.lua")
    with open(fwd_script, "w") as handle:
        handle.write('wrk.path = "http://127.0.0.1:%d/small.txt"\n' % origin)
    origin_host = b"127.0.0.1:%d" % origin
    api = script("thor thor_proxy.py", "thor", "thor_proxy.py", "{port}", "{origin}")
    cli = Prog("thor -m thor.http.proxy --upstream", "thor",
               ["-m", "thor.http.proxy", "--listen", "127.0.0.1:{port}",
                "--upstream", "http://127.0.0.1:{origin}"])
    bare = Prog("thor -m thor.http.proxy --upstream --forwarded none", "thor",
                cli.args + ["--forwarded", "none"])
    fwd = Prog("thor -m thor.http.proxy (forward)", "thor",
               ["-m", "thor.http.proxy", "--listen", "127.0.0.1:{port}"])
    ref = script("asyncio_proxy.py", "ref", "asyncio_proxy.py", "{port}", "{origin}")
    common = dict(wrk_extra=[], connections=50, path="/small.txt", per=1, unit_scale=1e6,
                  origin=origin, probe_target=b"/small.txt")
    absolute = dict(common, probe_target=b"http://127.0.0.1:%d/small.txt" % origin,
                    proxy_target=fwd_script, host=origin_host)
    runs = [
        ("api", api.label, lambda: wrk_job(api, **common)),
        ("cli", cli.label, lambda: wrk_job(cli, **common)),
        ("cli-bare", bare.label, lambda: wrk_job(bare, **common)),
        ("ref", ref.label, lambda: wrk_job(ref, **common)),
        ("fwd", fwd.label, lambda: wrk_job(fwd, **absolute)),
        ("ref-fwd", ref.label + " (absolute-form)", lambda: wrk_job(ref, **absolute)),
    ]
    up = None
    if OPT.upstream:
        upstream = script("0.17 thor_proxy.py", "upstream", "thor_proxy.py", "{port}", "{origin}")
        runs.append(("upstream", upstream.label, lambda: wrk_job(upstream, **common)))
        up = "upstream"
    return runs, [
        ("proxy-api", "proxy, public API (thor_proxy.py)", "us/req", "api", "ref", up),
        ("proxy-cli", "proxy, -m thor.http.proxy --upstream", "us/req", "cli", "ref", None),
        ("proxy-fwd", "proxy, -m thor.http.proxy forward", "us/req", "fwd", "ref-fwd", None),
        ("proxy-forwarding", "--upstream, forwarding headers on/off", "us/req", "cli",
         "cli-bare", None),
    ]


def client_run(prog, requests, concurrency):
    origin = nginx().port
    url = "http://127.0.0.1:%d/small.txt" % origin
    cmd = prog.command() + [url, str(requests), str(concurrency)]
    env, cwd = prog.env_cwd()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RunFailed("%s: %s" % (prog.label, (proc.stdout + proc.stderr).strip()[-800:]))
    if out.get("error") or "cpu_us_per_req" not in out:
        raise RunFailed("%s: %s" % (prog.label, out.get("error")))
    return Result(out["cpu_us_per_req"], out["rps"], "req/s", "", (cmd,))


def job_client(requests, concurrency):
    progs = [
        ("thor", Prog("thor thor_http_client.py", "thor", ["{refs}/thor_http_client.py"])),
        ("ref", Prog("asyncio_http_client.py", "ref", ["{refs}/asyncio_http_client.py"])),
    ]
    if OPT.upstream:
        progs.append(("upstream", Prog("0.17 thor_http_client.py", "upstream",
                                       ["{refs}/thor_http_client.py"])))
    runs = [(key, prog.label, (lambda prog=prog: client_run(prog, requests, concurrency)))
            for key, prog in progs]
    return runs, [("client", "client, %d GETs, %d in flight" % (requests, concurrency),
                   "us/req", "thor", "ref", "upstream" if OPT.upstream else None)]


def echo_run(prog, mode, param, udp=False):
    port = free_port(socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    running = Running(prog, port)
    try:
        wait_ready(running, (udp_probe if udp else tcp_probe)(port))
        cpu, (out, load_cmd), other = measured(running, lambda: run_loadgen(mode, port, param))
        if mode == "stream":
            if not out["bytes"]:
                raise RunFailed("nothing echoed")
            figure = cpu * 1e3 / (out["bytes"] / GB)
            rate, unit = out["mb_per_s"], "MB/s"
        elif mode == "udp":
            if not out["echoed"]:
                raise RunFailed("nothing echoed")
            figure = cpu * 1e6 / out["echoed"]
            rate, unit = out["dgram_per_s"], "dgram/s"
        else:
            if not out["round_trips"]:
                raise RunFailed("nothing echoed")
            figure = cpu * 1e6 / out["round_trips"]
            rate, unit = out["rt_per_s"], "rt/s"
        note = "lost %d" % out["lost"] if out.get("lost") else ""
        return Result(figure, rate, unit, note, (running.cmd, load_cmd), other)
    finally:
        running.stop()


def job_echo(mode):
    if mode == "udp":
        names = ("thor_udp_echo.py", "asyncio_udp_echo.py")
        param, row = 32, ("udp", "UDP echo, 32 in flight", "us/dgram")
    else:
        names = ("thor_tcp_echo.py", "asyncio_tcp_echo.py")
        param = 50 if mode == "conc" else None
        row = {"stream": ("tcp-stream", "TCP echo stream", "ms/GB"),
               "pingpong": ("tcp-pingpong", "TCP echo pingpong", "us/rt"),
               "conc": ("tcp-conc", "TCP echo conc 50", "us/rt")}[mode]
    progs = [("thor", script("thor " + names[0], "thor", names[0], "{port}")),
             ("ref", script(names[1], "ref", names[1], "{port}"))]
    if OPT.upstream:
        progs.append(("upstream", script("0.17 " + names[0], "upstream", names[0], "{port}")))
    udp = mode == "udp"
    runs = [(key, prog.label, (lambda prog=prog: echo_run(prog, mode, param, udp)))
            for key, prog in progs]
    return runs, [row + ("thor", "ref", "upstream" if OPT.upstream else None)]


def memory_run(prog, n):
    port = free_port()
    running = Running(prog, port)
    socks = []
    try:
        wait_ready(running, http_probe(port))
        request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
        for _ in range(3):  # warm: what every connection shares is allocated
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(request)
                read_response(sock)
                sock.sendall(request)
                read_response(sock)
        time.sleep(0.2)
        before = rss_bytes(running.pid)
        start = time.monotonic()
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(sock)
            sock.sendall(request)
            if read_response(sock) != b"200":
                raise RunFailed("status not 200")
        elapsed = time.monotonic() - start
        time.sleep(0.3)  # let the server finish its work after the last response
        if not running.alive():
            raise RunFailed("%s died: %s" % (prog.label, running.output()))
        after = rss_bytes(running.pid)
        return Result((after - before) / n, n / elapsed, "conn/s", "RSS %.1f -> %.1f MiB"
                      % (before / MIB, after / MIB), (running.cmd,))
    finally:
        for sock in socks:
            sock.close()
        running.stop()


def job_memory(n):
    progs = http_server_progs()
    runs = [(key, prog.label, (lambda prog=prog: memory_run(prog, n))) for key, prog in progs]
    return runs, [("memory", "idle keep-alive conn, %d conns" % n, "B/conn", "thor", "ref",
                   "upstream" if OPT.upstream else None)]


# -- profile -----------------------------------------------------------------------------


def profile_hello(top, stats_file=None):
    """``python -m cProfile -o FILE refs/thor_http_server.py PORT`` under the
    hello load, stopped by SIGINT (cProfile writes FILE on the way out)."""
    stats_file = os.path.abspath(stats_file or os.path.join(OPT.workdir, "hello.prof"))
    prog = Prog("thor thor_http_server.py under cProfile", "thor",
                ["-m", "cProfile", "-o", stats_file, "{refs}/thor_http_server.py", "{port}"])
    port = free_port()
    running = Running(prog, port)
    try:
        wait_ready(running, http_probe(port))
        count, elapsed, _, wrk_cmd = run_wrk(wrk_args(50, "http://127.0.0.1:%d/" % port))
    finally:
        running.stop(signal.SIGINT)
    print("\nProfile: %s; %s; %d requests (%.0f req/s under the profiler)"
          % (shlex.join(running.cmd), shlex.join(wrk_cmd), count, count / elapsed))
    if not os.path.exists(stats_file):
        print("  no profile written")
        return
    print("  top %d by own time (cProfile's clock is wall time: epoll.poll includes "
          "waiting), us per request:" % top)
    stats = pstats.Stats(stats_file)
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])[:top]
    print("  %9s %9s %8s  %s" % ("tottime", "cumtime", "calls/rq", "function"))
    for (filename, line, name), (cc, nc, tt, ct, _) in rows:
        where = filename.replace(OPT.thor_root + os.sep, "").replace(ROOT + os.sep, "")
        print("  %9.2f %9.2f %8.2f  %s:%d(%s)" % (tt / count * 1e6, ct / count * 1e6,
                                                  nc / count, where, line, name))


# -- driver -------------------------------------------------------------------------------


def tree_state():
    "The commit measured, and whether thor/ has changes not committed."
    try:
        head = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "thor"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               universal_newlines=True).stdout.split("\n")
    except OSError:
        return "unknown (no git)"
    dirty = [line[3:] for line in dirty if line.strip()]
    return "%s%s" % (head[:70] or "unknown", "; uncommitted changes in " + ", ".join(dirty)
                     if dirty else "; thor/ clean")


def fmt(value):
    if value is None:
        return "-"
    if value >= 1000:
        return "%.0f" % value
    if value >= 100:
        return "%.1f" % value
    return "%.2f" % value


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", default=",".join(ALL_JOBS),
                        help="comma-separated, from: %s" % ",".join(ALL_JOBS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="length of each load run (wrk's -d is rounded to whole seconds)")
    parser.add_argument("--upstream-python", default=os.environ.get("THOR_UPSTREAM_PYTHON"),
                        help="an interpreter that imports Thor 0.17 (default: "
                        "$THOR_UPSTREAM_PYTHON; none: no upstream column)")
    parser.add_argument("--thor-root", default=ROOT,
                        help="measure the thor package in this directory instead of this "
                        "tree's (before/after comparisons: e.g. a `git archive HEAD thor` "
                        "export)")
    parser.add_argument("--connections", type=int, default=2000,
                        help="idle keep-alive connections for the memory job")
    parser.add_argument("--client-requests", type=int, default=20000)
    parser.add_argument("--client-concurrency", type=int, default=50)
    parser.add_argument("--profile", action="store_true",
                        help="also profile thor_http_server.py under the hello load")
    parser.add_argument("--profile-top", type=int, default=10)
    parser.add_argument("--profile-out", metavar="FILE",
                        help="keep the --profile stats in FILE (pstats format)")
    args = parser.parse_args()
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    for job in jobs:
        if job not in ALL_JOBS:
            parser.error("unknown job %r (known: %s)" % (job, ", ".join(ALL_JOBS)))

    OPT.seconds = args.seconds
    OPT.thor_root = os.path.abspath(args.thor_root)
    if not os.path.isfile(os.path.join(OPT.thor_root, "thor", "__init__.py")):
        parser.error("--thor-root %s has no thor/__init__.py" % args.thor_root)
    OPT.workdir = tempfile.mkdtemp(prefix="thor-bench-refs-")
    if not shutil.which("taskset"):
        print("taskset not found: programs run unpinned (figures are less comparable)")
        OPT.pin = False
    elif not {0, 1} <= os.sched_getaffinity(0):
        print("CPUs 0 and 1 are not both available: programs run unpinned")
        OPT.pin = False
    if OPT.pin:
        os.sched_setaffinity(0, {0})  # this driver is a load generator too
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    if args.upstream_python:
        check = subprocess.run(
            [args.upstream_python, "-c", "import thor; print(thor.__version__, thor.__file__)"],
            cwd=OPT.workdir, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if check.returncode or check.stdout.startswith("0.18") or ROOT in check.stdout:
            print("--upstream-python %s does not import upstream thor (%s): no upstream "
                  "column" % (args.upstream_python, check.stdout.strip()[-200:]))
        else:
            OPT.upstream = args.upstream_python
            print("upstream: %s -> thor %s" % (OPT.upstream, check.stdout.strip()))
    else:
        print("upstream: none (set THOR_UPSTREAM_PYTHON or --upstream-python for the 0.17 column)")

    have_wrk, have_nginx = bool(shutil.which("wrk")), bool(shutil.which("nginx"))
    builders = []
    for job in jobs:
        if job in ("hello", "close", "1m", "proxy") and not have_wrk:
            print("SKIPPED %s: wrk is not installed" % job)
        elif job in ("proxy", "client") and not have_nginx:
            print("SKIPPED %s: nginx is not installed (it is the origin)" % job)
        elif job in ("hello", "close", "1m"):
            builders.append(lambda job=job: job_http(job))
        elif job == "proxy":
            builders.append(job_proxy)
        elif job == "client":
            builders.append(lambda: job_client(args.client_requests, args.client_concurrency))
        elif job == "tcp":
            for mode in ("stream", "pingpong", "conc"):
                builders.append(lambda mode=mode: job_echo(mode))
        elif job == "udp":
            builders.append(lambda: job_echo("udp"))
        elif job == "memory":
            builders.append(lambda: job_memory(args.connections))

    with open("/proc/loadavg") as handle:
        load_start = handle.read().split()[:3]
    print("python %s, %d CPUs, pinned: %s, rounds %d, %gs per load run, load average %s"
          % (sys.version.split()[0], os.cpu_count(), OPT.pin, args.rounds, args.seconds,
             " ".join(load_start)))
    if OPT.thor_root == ROOT:
        print("tree: %s" % tree_state())
    else:
        print("thor measured: %s/thor (--thor-root)" % OPT.thor_root)
    started = time.monotonic()
    results = {}  # (row key) -> per-round {run key: Result}
    rows = []  # (row key, title, unit, thor, ref, up)
    commands = {}  # job title -> {run label: commands}
    others = []
    try:
        jobs_built = []
        for build in builders:
            try:
                jobs_built.append(build())
            except RunFailed as err:
                print("SKIPPED a job: %s" % err)
        for _, job_rows in jobs_built:
            rows.extend(job_rows)
        for rnd in range(args.rounds):
            print("round %d" % (rnd + 1))
            for runs, job_rows in jobs_built:
                shift = rnd % len(runs)
                got = {}
                for key, label, run in runs[shift:] + runs[:shift]:
                    try:
                        res = run()
                    except (RunFailed, OSError, subprocess.TimeoutExpired) as err:
                        print("  %-44s FAILED: %s" % (label, str(err)[:600]))
                        continue
                    got[key] = res
                    commands.setdefault(job_rows[0][1], {}).setdefault(label, res.cmds)
                    if res.other is not None:
                        others.append(res.other)
                    print("  %-44s %9s %-8s %9.0f %-7s%s%s" % (
                        label, fmt(res.figure), job_rows[0][2] if len(job_rows) == 1 else "us/req",
                        res.rate, res.rate_unit,
                        "  other on CPU1 %2.0f%%" % (res.other * 100) if res.other is not None else "",
                        "  (%s)" % res.note if res.note else ""))
                for row in job_rows:
                    results.setdefault(row[0], []).append(got)
    finally:
        for server in NGINX:
            server.close()

    with open("/proc/loadavg") as handle:
        load_end = handle.read().split()[:3]
    print("\nMedian of %d rounds (ratios taken within each round); %.0f s in all; load "
          "average %s at the start, %s at the end; CPU 1 busy with other work during "
          "the load runs: median %.0f%%, max %.0f%%" % (
              args.rounds, time.monotonic() - started, " ".join(load_start), " ".join(load_end),
              100 * (median(others) or 0), 100 * max(others or [0])))
    head = ("job", "unit", "thor", "reference", "ratio", "upstream 0.17", "thor/0.17", "target")
    line = "| %-38s | %-8s | %8s | %9s | %6s | %13s | %9s | %-17s |"
    print(line % head)
    print("|" + "|".join("-" * (w + 2) for w in (38, 8, 8, 9, 6, 13, 9, 17)) + "|")
    for key, title, unit, tk, rk, uk in rows:
        per_round = results.get(key, [])

        def fig(k):
            return median([r[k].figure for r in per_round if k in r]) if k else None

        ratios = [r[tk].figure / r[rk].figure for r in per_round if tk in r and rk in r]
        up_ratios = [r[tk].figure / r[uk].figure for r in per_round
                     if uk and tk in r and uk in r]
        ratio, up_ratio = median(ratios), median(up_ratios)
        print(line % (title, unit, fmt(fig(tk)), fmt(fig(rk)),
                      "%.2fx" % ratio if ratio is not None else "-", fmt(fig(uk)),
                      "%.2f" % up_ratio if up_ratio is not None else "-",
                      TARGETS.get(key, "")))
    print("\nCommands (first round; PORT and ORIGIN differ per run; cwd %s for thor with "
          "PYTHONPATH=%s, a temporary directory without PYTHONPATH otherwise):"
          % (OPT.thor_root, OPT.thor_root))
    if NGINX:
        print("  origin: %s  (serves small.txt, 1 KiB)" % " ".join(NGINX[0].cmd))
    for title, by_label in commands.items():
        print("  %s:" % title)
        for label, cmds in by_label.items():
            for cmd in cmds:
                print("    %s" % shlex.join(cmd))
    if "memory" in jobs:
        print("  memory load: this driver (on CPU 0) opens the connections one by one, "
              "each sending one GET and reading its response, and reads VmRSS before "
              "(after 3 warm-up connections) and after")
    if args.profile:
        if have_wrk:
            profile_hello(args.profile_top, args.profile_out)
        else:
            print("SKIPPED --profile: wrk is not installed")


if __name__ == "__main__":
    try:
        main()
    finally:
        if OPT.workdir:
            shutil.rmtree(OPT.workdir, True)
