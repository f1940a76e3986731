"""The cost of the proxy's forwarding headers (issue 13): CPU per request
of ``python3 -m thor.http.proxy --upstream`` with them (the default in
reverse mode) beside the same proxy with ``--forwarded none``, in the same
rounds.

nginx serves a 1 KiB file as the origin; wrk loads the proxy. The proxy is
pinned to CPU 1, nginx and wrk to CPU 0 (as bench_refs.py does), and its CPU
time is read from /proc. Needs Linux, nginx, wrk and taskset.

usage: python3 tests/bench/bench_proxy_forwarding.py [--rounds N] [--seconds S]
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
error_log %(dir)s/error.log crit;
pid %(dir)s/nginx.pid;
events { worker_connections 4096; }
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
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url, deadline=10):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                response.read()
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not answer" % url)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(origin_port, seconds, extra):
    port = free_port()
    proxy = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, "-m", "thor.http.proxy",
         "--listen", "127.0.0.1:%d" % port,
         "--upstream", "http://127.0.0.1:%d" % origin_port] + extra,
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("http://127.0.0.1:%d/small.txt" % port)
        before = cpu_seconds(proxy.pid)
        out = subprocess.run(
            ["taskset", "-c", "0", "wrk", "-t1", "-c50", "-d%ds" % seconds,
             "http://127.0.0.1:%d/small.txt" % port],
            capture_output=True, text=True, check=True).stdout
        used = cpu_seconds(proxy.pid) - before
    finally:
        proxy.terminate()
        proxy.wait()
    rate = float(next(line.split()[1] for line in out.splitlines()
                      if line.startswith("Requests/sec")))
    return used / (rate * seconds) * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    opts = parser.parse_args()
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit("%s is not installed" % tool)
    directory = tempfile.mkdtemp(prefix="thor-bench-")
    origin_port = free_port()
    with open(os.path.join(directory, "small.txt"), "wb") as handle:
        handle.write(b"x" * 1023 + b"\n")
    config = os.path.join(directory, "nginx.conf")
    with open(config, "w") as handle:
        handle.write(NGINX_CONF % {"dir": directory, "port": origin_port})
    nginx = subprocess.Popen(["taskset", "-c", "0", "nginx", "-c", config, "-p", directory],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ratios = []
    try:
        wait_for("http://127.0.0.1:%d/small.txt" % origin_port)
        for index in range(opts.rounds):
            on = one_run(origin_port, opts.seconds, [])
            off = one_run(origin_port, opts.seconds, ["--forwarded", "none"])
            ratios.append(on / off)
            print("round %d: forwarding headers on %.2f us/req, off %.2f us/req, ratio %.3f"
                  % (index + 1, on, off, on / off))
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(directory, True)
    print("median ratio %.3f (issue 13: within 1.10)" % statistics.median(ratios))


if __name__ == "__main__":
    main()
